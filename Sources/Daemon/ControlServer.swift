import Control
import Dispatch
import EventLoop
import Glibc
import Logging
import MonotonicTime

/// The control socket's transport: accepts `wshostctl` connections, splits
/// request lines (with a length limit), identifies peers (`SO_PEERCRED`),
/// writes responses and event lines, and drops any client whose unread
/// output passes the limit, so that no client can block or grow the loop.
/// What a request does is the `ControlService`'s business.
@LoopActor
final class ControlServer {
    struct Limits {
        var maxClients: Int
        /// Of `maxClients`, the connections only operators may take.
        var operatorReserve: Int
        /// Connections one non-operator uid may hold at once.
        var maxClientsPerUID: Int
        var maxLine: Int
        var clientBuffer: Int
    }

    /// Who is connected, as the admission rule counts them.
    struct Occupancy: Equatable {
        var total = 0
        var nonOperators = 0
        var byUID: [UInt32: Int] = [:]
    }

    /// Whether a new connection is served; the refusal's message otherwise.
    /// Operators may use every connection; other local users share what the
    /// operators' reserve leaves, each uid at most `maxClientsPerUID` of it,
    /// so no local user can lock the operators (or the other users) out.
    static func admission(
        isOperator: Bool, uid: UInt32?, _ occupancy: Occupancy, _ limits: Limits
    ) -> String? {
        guard occupancy.total < limits.maxClients else {
            return "the daemon serves \(limits.maxClients) control clients already"
        }
        if isOperator { return nil }
        let shared = limits.maxClients - limits.operatorReserve
        guard occupancy.nonOperators < shared else {
            return "the \(shared) control connections open to users who are not operators are taken"
        }
        if let uid, occupancy.byUID[uid, default: 0] >= limits.maxClientsPerUID {
            return "uid \(uid) holds \(limits.maxClientsPerUID) control connections already"
        }
        return nil
    }

    /// Who may operate the daemon (besides holders of a user's consent token).
    struct Operators {
        /// The daemon's own user.
        var uid: UInt32
        /// The configured group, if any.
        var gid: UInt32?
        var groupName: String

        func permit(_ credentials: PeerCredentials?) -> Bool {
            guard let credentials else { return false }
            if credentials.uid == 0 || credentials.uid == uid { return true }
            guard let gid else { return false }
            return credentials.gid == gid
                || Self.supplementaryGroups(of: credentials.pid, uid: credentials.uid).contains(gid)
        }

        /// The groups the peer process holds (`Groups:` in /proc/PID/status);
        /// where procfs hides other users' processes (`ProtectProc=invisible`),
        /// the groups the peer's user belongs to (`getgrouplist`).
        static func supplementaryGroups(of pid: Int32, uid: UInt32) -> [UInt32] {
            if let status = readSmallFile("/proc/\(pid)/status") {
                for line in status.split(separator: "\n") where line.hasPrefix("Groups:") {
                    return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
                        .compactMap { UInt32($0) }
                }
            }
            guard let account = getpwuid(uid) else { return [] }
            var count: Int32 = 64
            var groups = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(account.pointee.pw_name, account.pointee.pw_gid, &groups, &count) < 0 {
                groups = [gid_t](repeating: 0, count: Int(count))
                guard getgrouplist(account.pointee.pw_name, account.pointee.pw_gid, &groups, &count) >= 0 else {
                    return []
                }
            }
            return Array(groups.prefix(Int(count)))
        }

        var description: String {
            "root, uid \(uid)" + (gid.map { " and members of group \(groupName) (gid \($0))" } ?? "")
        }
    }

    let limits: Limits
    let operators: Operators
    private var listeners: [StreamListener] = []
    private var clients: [ObjectIdentifier: ControlClient] = [:]
    private var occupancy = Occupancy()
    private let logger = Logger(label: "wshostd.control")
    /// A response, and for a subscription with `since` where its backlog
    /// starts (written after the response, in pieces as the client reads).
    /// Nil `response`: the answer comes later, through `ControlClient.complete`
    /// (a request that waits for the database); the client's next requests
    /// wait for it, so answers keep the order of the requests.
    struct Reply {
        var response: ControlResponse?
        var backlogAfter: Int?

        init(_ response: ControlResponse, backlogAfter: Int? = nil) {
            self.response = response
            self.backlogAfter = backlogAfter
        }

        private init() {}

        static let later = Reply()
    }

    /// One page of kept events after a sequence number for a filter: their
    /// lines, the number to continue after, and whether that is the newest.
    /// Nil when events after it are no longer kept.
    typealias BacklogPage = (lines: [String], next: Int, caughtUp: Bool)
    var backlogPage: (@LoopActor (Int, EventFilter) -> BacklogPage?)?

    /// Runs one request.
    var handle: (@LoopActor (ControlClient, ControlRequest) -> Reply)?
    /// Whether any client subscribes (message events are journaled only then).
    private(set) var hasSubscribers = false {
        didSet { if hasSubscribers != oldValue { onSubscribersChanged?(hasSubscribers) } }
    }
    /// Told when the first client subscribes and when the last one stops.
    var onSubscribersChanged: (@LoopActor (Bool) -> Void)?

    init(limits: Limits, operators: Operators) {
        self.limits = limits
        self.operators = operators
    }

    var clientCount: Int { clients.count }

    func listen(on listener: StreamListener) {
        listeners.append(listener)
        listener.start { [weak self] socket, credentials in self?.accept(socket, credentials) }
    }

    /// Clients with a subscription whose filter matches get the event line.
    func broadcast(_ event: ControlEvent) {
        var line: String?
        for client in clients.values {
            // A client still reading its backlog gets this event from the journal, in order.
            guard let filter = client.subscription, client.backlogCursor == nil, filter.matches(event) else {
                continue
            }
            if line == nil { line = event.line }
            client.write(line!)
        }
    }

    /// Stops taking connections, lets every client's queued output reach it
    /// (the last events of a stop), then closes them; `then` runs when all are
    /// closed or after `within`, whichever comes first.
    func closeGracefully(within: Duration, timers: LoopTimers, then: @escaping @LoopActor () -> Void) {
        for listener in listeners { listener.close() }
        listeners.removeAll()
        for client in clients.values {
            client.subscription = nil
            client.backlogCursor = nil
            client.closeWhenWritten()
        }
        subscriptionsChanged()
        let deadline = timers.now() + within
        func wait() {
            if clients.isEmpty || timers.now() >= deadline {
                close()
                return then()
            }
            timers.schedule(after: .milliseconds(10)) { wait() }
        }
        wait()
    }

    func close() {
        for listener in listeners { listener.close() }
        listeners.removeAll()
        for client in clients.values { client.close() }
        clients.removeAll()
        occupancy = Occupancy()
    }

    private func accept(_ socket: TCPSocket, _ credentials: PeerCredentials?) {
        let client = ControlClient(
            socket: socket, credentials: credentials, isOperator: operators.permit(credentials), server: self)
        if let refusal = Self.admission(
            isOperator: client.isOperator, uid: credentials?.uid, occupancy, limits)
        {
            logger.warning(
                "control client refused: \(refusal)",
                metadata: ["control.peer": "\(credentials.map(\.description) ?? "unknown")"])
            client.refuse(ControlResponse.failure(id: nil, ControlError(.tooManyClients, refusal)).line)
            return
        }
        clients[ObjectIdentifier(client)] = client
        count(client, +1)
        client.start()
    }

    private func count(_ client: ControlClient, _ delta: Int) {
        occupancy.total += delta
        guard !client.isOperator else { return }
        occupancy.nonOperators += delta
        if let uid = client.credentials?.uid {
            let held = occupancy.byUID[uid, default: 0] + delta
            occupancy.byUID[uid] = held > 0 ? held : nil
        }
    }

    fileprivate func removed(_ client: ControlClient) {
        guard clients.removeValue(forKey: ObjectIdentifier(client)) != nil else { return }
        count(client, -1)
        subscriptionsChanged()
    }

    func subscriptionsChanged() {
        hasSubscribers = clients.values.contains { $0.subscription != nil }
    }

    fileprivate func received(_ line: ArraySlice<UInt8>, from client: ControlClient) {
        switch ControlRequest.decode(line) {
        case .failure(let rejected):
            client.write(ControlResponse.failure(id: rejected.id, rejected.error).line)
        case .success(let request):
            guard let reply = handle?(client, request) else { return }
            guard let response = reply.response else {
                // Answered already (a database that is not connected answers at once), or later.
                if let early = client.earlyAnswer {
                    client.earlyAnswer = nil
                    client.write(early.line)
                } else {
                    client.awaiting = true
                }
                return
            }
            client.write(response.line)
            if let after = reply.backlogAfter {
                client.backlogCursor = after
                pumpBacklog(client)
            }
        }
    }

    /// Writes a subscriber's backlog while its unread output stays under half
    /// its buffer (at most 256 KiB); the rest follows as it reads (`onDrained`), so a large
    /// history is never turned into lines all at once.
    fileprivate func pumpBacklog(_ client: ControlClient) {
        let chunk = min(256 << 10, limits.clientBuffer / 2)
        while let cursor = client.backlogCursor, let filter = client.subscription, client.isServing,
            client.pendingOutput < chunk
        {
            guard let page = backlogPage?(cursor, filter) else {
                client.backlogCursor = nil
                client.write(
                    ControlResponse.failure(
                        id: nil,
                        ControlError(
                            .historyGone, "the history moved past event \(cursor) while the backlog was being written")
                    )
                    .line)
                client.subscription = nil
                client.closeWhenWritten()
                return
            }
            for line in page.lines { client.write(line) }
            client.backlogCursor = page.caughtUp ? nil : page.next
        }
    }

    fileprivate func dropped(_ client: ControlClient, reason: String) {
        logger.warning(
            "control client dropped: \(reason)",
            metadata: ["control.peer": "\(client.credentials.map(\.description) ?? "unknown")"])
    }
}

/// One connection to the control socket.
@LoopActor
final class ControlClient {
    let credentials: PeerCredentials?
    let isOperator: Bool
    /// Set by `subscribe` (and `consent.watch`): matching events are written to it.
    var subscription: EventFilter?
    /// While a backlog is being written: the sequence number written up to.
    var backlogCursor: Int?
    private let socket: TCPSocket
    private unowned let server: ControlServer
    private var input: [UInt8] = []
    /// Skipping the rest of an over-long line.
    private var discarding = false
    private var closed = false
    private var closeWhenDrained = false
    /// A request is being answered later (`Reply.later`): lines that come
    /// meanwhile wait in `waitingLines`, in order.
    fileprivate(set) var awaiting = false
    /// The answer of a request answered `later` that came before the
    /// request's handler returned.
    fileprivate var earlyAnswer: ControlResponse?
    private var waitingLines: [[UInt8]] = []
    /// The peer half-closed while a request was being answered.
    private var endAfterAnswers = false

    init(socket: TCPSocket, credentials: PeerCredentials?, isOperator: Bool, server: ControlServer) {
        self.socket = socket
        self.credentials = credentials
        self.isOperator = isOperator
        self.server = server
    }

    var peerDescription: String { credentials.map(\.description) ?? "an unidentified peer" }

    var isServing: Bool { !closed }
    var pendingOutput: Int { socket.pendingCount }

    func start() {
        socket.start(
            onInput: { [weak self] event in self?.handle(event) },
            onDrained: { [weak self] in
                guard let self else { return }
                if backlogCursor != nil { server.pumpBacklog(self) }
                if closeWhenDrained { close() }
            })
    }

    /// The answer of the request that was answered `later`; then the
    /// requests that waited for it run, in order.
    func complete(_ response: ControlResponse) {
        guard awaiting else {
            earlyAnswer = response
            return
        }
        awaiting = false
        write(response.line)
        while !awaiting, !closed, !waitingLines.isEmpty {
            let line = waitingLines.removeFirst()
            server.received(line[...], from: self)
        }
        if !awaiting, endAfterAnswers, subscription == nil { closeWhenWritten() }
    }

    /// A complete request line: run now, or after the answer being waited for.
    private func request(_ line: [UInt8]) {
        if awaiting {
            // Bounded: a client that pipelines without reading answers is dropped.
            guard waitingLines.count < 64 else {
                server.dropped(self, reason: "more than 64 requests waiting for an answer")
                return close()
            }
            waitingLines.append(line)
        } else {
            server.received(line[...], from: self)
        }
    }

    /// Queues a line; a client with more than the limit unread is dropped.
    func write(_ line: String) {
        guard !closed else { return }
        if socket.pendingCount + line.utf8.count > server.limits.clientBuffer {
            server.dropped(
                self, reason: "more than \(server.limits.clientBuffer) bytes unread (it does not read its output)")
            close()
            return
        }
        socket.write(Array(line.utf8))
    }

    func close() {
        guard !closed else { return }
        closed = true
        socket.close()
        server.removed(self)
    }

    /// Closes once what is queued has been written (an error line must arrive).
    func closeWhenWritten() {
        if socket.pendingCount == 0 { close() } else { closeWhenDrained = true }
    }

    /// Answers a connection that is not served (over the client limit): the
    /// error line, then the sending side is shut, and the socket closes when
    /// the peer does or after a second. (Closing at once with the peer's
    /// request unread would reset the connection and could lose the line.)
    func refuse(_ line: String) {
        socket.write(Array(line.utf8))
        socket.shutdownWrite()
        socket.start(onInput: { [socket] input in
            if case .data = input { return }
            socket.close()
        })
        LoopExecutor.shared.queue.asyncAfter(deadline: .now() + .seconds(1)) { [socket] in
            LoopActor.assumeIsolated { socket.close() }
        }
    }

    private func handle(_ event: TCPSocket.Input) {
        switch event {
        case .data(let bytes):
            receive(bytes)
        case .eof:
            if !input.isEmpty && !discarding {
                let line = self.input
                self.input.removeAll()
                request(line)
            }
            // A subscriber may half-close and keep reading its stream.
            guard subscription == nil else { return }
            // Answers still to come are written first.
            if awaiting {
                endAfterAnswers = true
                return
            }
            closeWhenWritten()
        case .error:
            close()
        }
    }

    private func receive(_ bytes: UnsafeRawBufferPointer) {
        // A client being closed (a stop, an error line on its way) runs no more requests.
        guard !closeWhenDrained else { return }
        var start = 0
        for index in 0..<bytes.count where bytes[index] == UInt8(ascii: "\n") {
            if discarding {
                discarding = false
            } else if input.count + index - start > server.limits.maxLine {
                input.removeAll(keepingCapacity: true)
                tooLong()
            } else {
                input.append(contentsOf: bytes[start..<index])
                let line = input
                input.removeAll(keepingCapacity: true)
                request(line)
                if closed { return }
            }
            start = index + 1
        }
        guard !discarding else { return }
        input.append(contentsOf: bytes[start...])
        if input.count > server.limits.maxLine {
            input.removeAll()
            discarding = true
            tooLong()
        }
    }

    private func tooLong() {
        write(
            ControlResponse.failure(
                id: nil, ControlError(.lineTooLong, "a request line may have at most \(server.limits.maxLine) bytes")
            ).line)
    }
}

/// A small file read whole (procfs files report size 0, so read to EOF).
func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
