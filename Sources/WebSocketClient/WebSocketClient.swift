import Config
import EventLoop
import Glibc
import MonotonicTime
import TLS
import WebSocketProtocol
import Zlib

/// One outbound WebSocket on the loop: the thin shell around the pure
/// `ClientConnection`. It connects (resolver + Happy Eyeballs), feeds socket
/// input to the connection, writes what the connection produces, runs the
/// handshake, idle, keepalive and close timers, and reports events. Every
/// path ends in exactly one `closed` event and a closed socket (Neos #1375).
@LoopActor
public final class WebSocketClient {
    /// A connection's settings. Their defaults are the config schema's
    /// (`DaemonConfig`): `Options()` is what a config without `[websocket]`
    /// and `[limits]` gives, so every default is written once, there.
    public struct Options: Sendable {
        public var connectTimeout: Duration
        public var handshakeTimeout: Duration
        /// No inbound frame of any kind for this long ends the connection (SPEC §2).
        public var idleTimeout: Duration
        /// Client pings at this interval; zero is off.
        public var keepaliveInterval: Duration
        /// After the Close handshake, how long to wait for the server to close TCP.
        public var closeTimeout: Duration
        /// Bytes waiting for the socket beyond which `send` refuses (backpressure).
        public var sendQueueLimit: Int
        public var connection: ClientConnection.Configuration
        /// TLS settings for wss (trust store, CA file); nil uses the system defaults.
        public var tls: TLSContext?
        /// The daemon-wide budget for inbound bytes, if any.
        public var inboundBudget: InboundBudget?
        /// Judges each resolved address (its bytes) before it is connected:
        /// nil allows, a reason refuses. Nil: every address is allowed.
        public var permitAddress: (@Sendable ([UInt8]) -> String?)?

        /// The options `[websocket]` and `[limits]` describe.
        public init(_ websocket: DaemonConfig.WebSocket = .init(), limits: DaemonConfig.Limits = .init()) {
            connectTimeout = websocket.connectTimeout
            handshakeTimeout = websocket.handshakeTimeout
            idleTimeout = websocket.idleTimeout
            keepaliveInterval = websocket.keepaliveInterval
            closeTimeout = websocket.closeTimeout
            sendQueueLimit = Int(websocket.sendQueueLimit)
            connection = ClientConnection.Configuration(
                maxFrameSize: Int(websocket.maxFrameSize), maxMessageSize: Int(websocket.maxMessageSize),
                fragmentSize: Int(websocket.fragmentSize))
            connection.maxMessageFrames = limits.framesPerMessage
            // The accept check's SHA-1 by OpenSSL: its block function takes
            // about half the portable one's instructions even without the
            // CPU's SHA instructions (callgrind), and far fewer with them.
            connection.sha1 = { Digest.sha1($0, into: $1) }
            offerCompression(websocket.compression)
        }

        /// permessage-deflate to offer (nil: none), carried out by the system zlib.
        public mutating func offerCompression(_ offer: DeflateOffer?) {
            connection.deflate = offer
            connection.deflateCodec = offer == nil ? nil : ZlibCodec()
        }
    }

    public enum Event: Equatable, Sendable {
        case opened
        case text(String)
        case binary([UInt8])
        case closed(CloseReport)
    }

    public enum SendFailure: Error, Equatable, Sendable, CustomStringConvertible {
        case notConnected
        case closing
        /// More than `sendQueueLimit` bytes are waiting for the socket.
        case queueFull(pending: Int)

        public var description: String {
            switch self {
            case .notConnected: return "not connected"
            case .closing: return "the connection is closing"
            case .queueFull(let pending): return "send queue full (\(pending) bytes waiting)"
            }
        }
    }

    /// Why an attempt ended before its WebSocket opened (the metrics count
    /// failed attempts by this); nil when it opened or was ended on request.
    public enum AttemptFailure: String, CaseIterable, Equatable, Sendable {
        /// The host name did not resolve.
        case resolve
        /// TCP connect refused or failed at every address.
        case connect
        /// `connect_timeout` passed.
        case timeout
        /// Every address was refused by the network policy.
        case policy
        /// TLS setup, handshake or certificate verification.
        case tls
        /// The HTTP upgrade: refused, malformed, timed out, or the connection
        /// ended during it.
        case handshake
    }

    /// Set when the client finished without ever opening (see `AttemptFailure`).
    public private(set) var attemptFailure: AttemptFailure?

    /// Where the client is; the connection's own state refines `.connected`.
    public enum Phase: Equatable, Sendable {
        case created
        /// Resolving and opening TCP.
        case connecting
        /// TCP is up; the WebSocket handshake and frames run.
        case connected
        /// `closed` was reported.
        case finished
    }

    public let url: WebSocketURL
    /// The options it started with; `retime` changes the timing of an open connection.
    public private(set) var options: Options
    /// The server's address, "127.0.0.1:80" (formatted when asked: `getnameinfo`
    /// on every connect cost more than its readers ever use).
    public var peer: String? { peerAddress?.description }
    private var peerAddress: SocketAddress?

    /// Where the client is, with what exists only then.
    private enum Stage {
        case created
        /// Resolving and opening TCP; for wss, the TLS session waits for the socket.
        case connecting(Connector, TLSSession?)
        /// The socket is up: the handshake and frames run over it.
        case connected(Wire)
        case finished
    }

    /// A connected client's transport and timers.
    private final class Wire {
        let socket: TCPSocket
        /// The TLS stage between socket and connection, for wss only (plain ws
        /// never touches OpenSSL: Neos #2618).
        let tls: TLSSession?
        var handshakeTimer: TimerID?
        var idleTimer: TimerID?
        var keepaliveTimer: TimerID?
        var closeTimer: TimerID?
        /// The WebSocket opened on this wire.
        var opened = false
        /// `close` or `abort` was called: an end before opening is no failure.
        var endRequested = false

        init(socket: TCPSocket, tls: TLSSession?) {
            self.socket = socket
            self.tls = tls
        }
    }

    private var stage = Stage.created

    public var phase: Phase {
        switch stage {
        case .created: return .created
        case .connecting: return .connecting
        case .connected: return .connected
        case .finished: return .finished
        }
    }

    private var wire: Wire? {
        if case .connected(let wire) = stage { return wire }
        return nil
    }
    private var socket: TCPSocket? { wire?.socket }
    private var tls: TLSSession? { wire?.tls }

    private let timers: LoopTimers
    private let onEvent: @LoopActor (Event) -> Void
    private var connection: ClientConnection
    private var lastInbound = MonotonicInstant(nanoseconds: 0)
    /// Inbound bytes charged to `options.inboundBudget`.
    private var charged = 0
    /// Events are being delivered: sends are queued and written when the pump ends.
    private var pumping = false

    public init(
        url: WebSocketURL, options: Options = Options(), timers: LoopTimers,
        onEvent: @escaping @LoopActor (Event) -> Void
    ) {
        self.url = url
        self.options = options
        self.timers = timers
        self.onEvent = onEvent
        var configuration = options.connection
        configuration.controlReplyLimit = options.sendQueueLimit
        connection = ClientConnection(
            url: url, configuration: configuration, maskKey: MaskKeys.next, messageBuffers: Self.messageBuffers)
    }

    /// Starts connecting; events follow on the loop.
    public func start() {
        guard case .created = stage else { return }
        var tls: TLSSession?
        if url.secure {
            do {
                guard let context = options.tls ?? Self.systemTLS else {
                    throw TLSContext.Failure.setup("no TLS context")
                }
                tls = try TLSSession(context: context, serverName: url.host, port: Int(url.port))
            } catch {
                attemptFailure = .tls
                return finish(CloseReport(initiator: .transport, code: .abnormalClosure, reason: "\(error)"))
            }
        }
        let connector = Connector(timers: timers)
        stage = .connecting(connector, tls)
        var permit: (@LoopActor (SocketAddress) -> String?)?
        if let judge = options.permitAddress {
            permit = { address in address.ipBytes.flatMap(judge) }
        }
        connector.connect(host: url.host, port: url.port, timeout: options.connectTimeout, permit: permit) {
            [weak self] result in
            guard let self else {
                if case .success(let socket) = result { socket.close() }
                return
            }
            switch result {
            case .failure(.cancelled):
                break
            case .failure(let failure):
                switch failure {
                case .resolution: attemptFailure = .resolve
                case .timedOut: attemptFailure = .timeout
                case .failed: attemptFailure = .connect
                case .denied: attemptFailure = .policy
                case .cancelled: break
                }
                finish(CloseReport(initiator: .transport, code: .abnormalClosure, reason: failure.description))
            case .success(let socket):
                connected(socket)
            }
        }
    }

    public func send(text: String) throws(SendFailure) {
        try checkQueue(adding: text.utf8.count)
        do { try connection.send(text: text) } catch { throw map(error) }
        flushAfterSend()
    }

    public func send(binary: [UInt8]) throws(SendFailure) {
        try checkQueue(adding: binary.count)
        do { try connection.send(binary: binary) } catch { throw map(error) }
        flushAfterSend()
    }

    /// Starts the closing handshake (explicit disconnect, Neos #1039; stop with 1001).
    public func close(code: CloseCode = .normalClosure, reason: String = "") {
        switch stage {
        case .created, .connecting:
            if case .connecting(let connector, _) = stage { connector.cancel() }
            finish(
                CloseReport(
                    initiator: .client, code: .abnormalClosure,
                    reason: reason.isEmpty ? "closed before connecting" : reason))
        case .connected(let wire):
            wire.endRequested = true
            connection.close(code: code, reason: reason)
            pump()
        case .finished:
            break
        }
    }

    /// Ends at once without a Close handshake (removal, shutdown deadline).
    public func abort(reason: String) {
        switch stage {
        case .created, .connecting:
            if case .connecting(let connector, _) = stage { connector.cancel() }
            finish(CloseReport(initiator: .transport, code: .abnormalClosure, reason: reason))
        case .connected(let wire):
            wire.endRequested = true
            connection.abort(reason: reason)
            pump()
        case .finished:
            break
        }
    }

    public var isOpen: Bool { phase == .connected && connection.isOpen }

    /// A reload's timing for this connection from now on: the idle timeout
    /// (counted from the last frame received), the keepalive interval (the
    /// next ping one interval from now) and the close timeout of a Close not
    /// yet sent. A connection still connecting or handshaking takes them when
    /// it opens; a Close already under way keeps its deadline.
    public func retime(idleTimeout: Duration, keepaliveInterval: Duration, closeTimeout: Duration) {
        let idleChanged = idleTimeout != options.idleTimeout
        let keepaliveChanged = keepaliveInterval != options.keepaliveInterval
        options.idleTimeout = idleTimeout
        options.keepaliveInterval = keepaliveInterval
        options.closeTimeout = closeTimeout
        guard let wire, connection.isOpen else { return }
        if idleChanged, wire.idleTimer != nil {
            cancel(&wire.idleTimer)
            // Quiet for longer than the new timeout already: it has run out.
            if timers.now() - lastInbound >= idleTimeout { return closeIdle() }
            scheduleIdleCheck()
        }
        if keepaliveChanged {
            cancel(&wire.keepaliveTimer)
            scheduleKeepalive()
        }
    }

    /// Pings left unanswered because the server was not reading (the send queue was full).
    public var pongsSkipped: Int { connection.pongsSkipped }

    /// permessage-deflate as agreed in the handshake (nil: none).
    public var negotiatedCompression: DeflateParameters? { connection.negotiatedDeflate }

    /// The TLS handshake resumed an earlier session with this server (false
    /// for ws, and until the handshake is done).
    public var resumedTLSSession: Bool { tls?.isEstablished == true && tls?.resumed == true }

    /// Runs `body` (which sends) and writes what it sent together at the end:
    /// one system call for a batch of messages.
    public func batchingWrites(_ body: () -> Void) {
        guard !pumping else { return body() }
        pumping = true
        body()
        pumping = false
        flush()
        if connection.transportAction != .keepOpen { pump() }
    }

    /// Bytes accepted by `send` and not yet taken by the kernel.
    public var pendingBytes: Int { (socket?.pendingCount ?? 0) + connection.outboundCount }

    /// Answers queued inside a pump beyond this many bytes are written at once.
    static let deferredWriteLimit = 64 << 10

    // MARK: - Internals

    private func connected(_ socket: TCPSocket) {
        guard case .connecting(_, let tls) = stage else { return socket.close() }
        let wire = Wire(socket: socket, tls: tls)
        stage = .connected(wire)
        peerAddress = socket.peer
        lastInbound = timers.now()
        wire.handshakeTimer = timers.schedule(after: options.handshakeTimeout, slack: .milliseconds(10)) {
            [weak self] in
            guard let self else { return }
            connection.abort(reason: "handshake timed out after \(options.handshakeTimeout)")
            pump()
        }
        socket.start(
            onInput: { [weak self] input in self?.input(input) },
            onDrained: { [weak self] in self?.drained() })
        if tls != nil {
            driveTLS(nil)  // sends the ClientHello
            pump()
        } else {
            flush()
        }
    }

    /// The shared TLS context with the system trust store.
    private static let systemTLS: TLSContext? = try? TLSContext()

    /// Feeds ciphertext to the TLS stage and the plaintext it yields to the connection.
    private func driveTLS(_ ciphertext: UnsafeRawBufferPointer?) {
        guard let tls, socket != nil else { return }
        if let ciphertext { tls.feed(ciphertext) }
        do {
            let progress = try tls.advance(scratch: Self.tlsScratch) { connection.receive($0) }
            sendCiphertext()
            if progress.established { flush() }  // the upgrade request waited for the handshake
            if progress.peerClosed {
                // close_notify: answer it, and the stream has ended (TLS's EOF).
                tls.shutdown()
                sendCiphertext()
                connection.receiveEOF()
            }
        } catch {
            sendCiphertext()  // the alert, if any
            connection.abort(reason: error.description)
        }
    }

    /// What the TLS stage has encrypted goes to the socket.
    private func sendCiphertext() {
        guard let tls, let socket else { return }
        tls.drainCiphertext(scratch: Self.tlsScratch) { socket.write($0) }
    }

    /// Buffers for received messages, shared by every client on the loop: the
    /// consumer of a binary message gives its buffer back here once done.
    public static let messageBuffers = MessageBuffers()

    /// One buffer for every TLS session's decryption and ciphertext moves: all
    /// run on the loop, one at a time, and consumers copy what they keep.
    private static let tlsScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 32 << 10, alignment: 64)

    private func input(_ input: TCPSocket.Input) {
        switch input {
        case .data(let bytes):
            // Traffic counts as life only while frames are read (after a failure
            // the bytes are dropped, and close_timeout ends the connection).
            if connection.transportAction == .keepOpen { lastInbound = timers.now() }
            connection.transportBacklog = socket?.pendingCount ?? 0
            if tls != nil { driveTLS(bytes) } else { connection.receive(bytes) }
        case .eof:
            connection.receiveEOF()
        case .error(let code):
            connection.abort(reason: "socket error: \(String(cString: strerror(code)))")
        }
        pump()
        chargeInbound()
    }

    /// A message left the connection's buffers (the host charges it anew if it queues it).
    private func released(_ count: Int) {
        guard let budget = options.inboundBudget, charged > 0 else { return }
        let given = min(count, charged)
        budget.charge(-given)
        charged -= given
    }

    /// Brings the budget up to what the connection holds now; a connection
    /// that grows while the budget is spent fails with 1008.
    private func chargeInbound() {
        guard let budget = options.inboundBudget, phase == .connected else { return }
        let held = connection.bufferedInboundBytes
        let grew = held > charged
        let fits = budget.charge(held - charged)
        charged = held
        if grew && !fits {
            connection.fail(.inboundBudgetExceeded(limit: budget.limit))
            pump()
            guard phase == .connected else { return }  // finish() gave back what was charged
            budget.charge(connection.bufferedInboundBytes - charged)
            charged = connection.bufferedInboundBytes
        }
    }

    /// Writes what the connection queued, delivers its events, and acts on its transport request.
    private func pump() {
        let outermost = !pumping
        pumping = true
        defer { if outermost { pumping = false } }
        flush()
        while let event = connection.nextEvent() {
            switch event {
            case .opened:
                if let wire {
                    wire.opened = true
                    cancel(&wire.handshakeTimer)
                }
                // The idle and keepalive timers start at the end of this pump,
                // if the connection is still open then (a server that answers
                // the upgrade with a Close, in the same read, costs no timers).
                onEvent(.opened)
            case .text(let text):
                released(text.utf8.count)
                onEvent(.text(text))
            case .binary(let bytes):
                released(bytes.count)
                onEvent(.binary(bytes))
            case .ping, .pong, .handshakeFailed: break
            case .closed(let report):
                flush()  // answers to earlier messages go out before the socket closes
                finish(report)
            }
            if phase == .finished { return }
            // What the application sends in answer is queued (in order) before the
            // next frame is judged, and written with the rest: one write per read.
        }
        // Frames that produce no event (a Close to echo, a ping to answer) queue bytes too.
        flush()
        if connection.awaitsServerClose, let wire, wire.closeTimer == nil {
            // Whoever sent the first Close, the server gets close_timeout to end
            // the connection; then the socket is closed hard (a server that
            // ignores our Close, or keeps flooding, cannot keep it open).
            wire.closeTimer = timers.schedule(after: options.closeTimeout, slack: .milliseconds(50)) { [weak self] in
                guard let self else { return }
                connection.abort(
                    reason: "the server did not end the connection within \(options.closeTimeout) of the Close")
                pump()
            }
        }
        if connection.transportAction == .closeAfterFlush && pendingBytes == 0 {
            connection.abort(reason: "failed")
            pump()
            return
        }
        if let wire, wire.opened, connection.isOpen {
            if wire.idleTimer == nil { scheduleIdleCheck() }
            if wire.keepaliveTimer == nil { scheduleKeepalive() }
        }
    }

    /// Writes a sent message (at the end of the pump when sent from inside one);
    /// a TLS failure while encrypting ends the connection.
    private func flushAfterSend() {
        // Inside a pump (an answer to a received message) the pump writes at its
        // end, unless a lot is already waiting.
        if pumping && connection.transportAction == .keepOpen && connection.outboundCount < Self.deferredWriteLimit {
            return
        }
        flush()
        if connection.transportAction != .keepOpen { pump() }
    }

    private func drained() {
        if connection.transportAction == .closeAfterFlush { pump() }
    }

    private func flush() {
        guard connection.hasOutbound, let socket else { return }
        guard let tls else {
            return connection.drainOutbound { bytes in
                socket.write(bytes)
                return bytes.count
            }
        }
        guard tls.isEstablished else { return }
        var failure: TLSSession.Failure?
        connection.drainOutbound { bytes in
            do throws(TLSSession.Failure) { try tls.write(bytes) } catch { failure = error }
            return bytes.count
        }
        sendCiphertext()
        if let failure { connection.abort(reason: failure.description) }
    }

    private func checkQueue(adding count: Int) throws(SendFailure) {
        switch phase {
        case .created, .connecting: throw .notConnected
        case .finished: throw .closing
        case .connected: break
        }
        let pending = pendingBytes
        if pending > 0 && pending + count > options.sendQueueLimit { throw .queueFull(pending: pending) }
    }

    private func map(_ error: SendError) -> SendFailure {
        switch error {
        case .notOpen: return .notConnected
        case .closing: return .closing
        }
    }

    private func scheduleIdleCheck() {
        guard let wire else { return }
        let deadline = lastInbound + options.idleTimeout
        wire.idleTimer = timers.schedule(at: deadline, slack: Self.slack(for: options.idleTimeout)) { [weak self] in
            guard let self, let wire = self.wire else { return }
            wire.idleTimer = nil
            let now = timers.now()
            if now - deadline > max(.milliseconds(500), options.idleTimeout / 4) {
                // The check runs far past its deadline: the loop itself was stalled,
                // so the server's silence (and our missed keepalive pings) cannot be
                // judged. One more full period, from now.
                lastInbound = now
                scheduleIdleCheck()
            } else if socket?.hasUnreadInput == true {
                // Bytes arrived but the loop has not read them yet (it was busy): not idle.
                lastInbound = now
                scheduleIdleCheck()
            } else if now - lastInbound >= options.idleTimeout {
                closeIdle()
            } else {
                scheduleIdleCheck()
            }
        }
    }

    /// No frame from the server for the idle timeout: Close 1001, then the socket at once.
    private func closeIdle() {
        connection.close(code: .goingAway, reason: "idle timeout")
        flush()
        connection.abort(reason: "idle timeout: no frame from the server for \(options.idleTimeout)")
        pump()
    }

    private func scheduleKeepalive() {
        guard options.keepaliveInterval > .zero, let wire else { return }
        wire.keepaliveTimer = timers.schedule(
            after: options.keepaliveInterval, slack: Self.slack(for: options.keepaliveInterval)
        ) {
            [weak self] in
            guard let self, self.wire != nil else { return }
            try? connection.ping()
            flush()
            scheduleKeepalive()
        }
    }

    /// Coarse timers share wake-ups (TimerWheel); the slack never exceeds a
    /// tenth of the interval, and at most 250 ms.
    static func slack(for interval: Duration) -> Duration {
        min(.milliseconds(250), max(.milliseconds(1), interval / 10))
    }

    private func cancel(_ timer: inout TimerID?) {
        if let id = timer { timers.cancel(id) }
        timer = nil
    }

    private func finish(_ report: CloseReport) {
        let previous = stage
        if case .finished = previous { return }
        stage = .finished  // first: what follows cannot finish twice
        if case .connected(let wire) = previous {
            if !wire.opened && !wire.endRequested {
                attemptFailure = wire.tls.map { $0.isEstablished } == false ? .tls : .handshake
            }
            cancel(&wire.handshakeTimer)
            cancel(&wire.idleTimer)
            cancel(&wire.keepaliveTimer)
            cancel(&wire.closeTimer)
            if let tls = wire.tls, tls.isEstablished {
                tls.shutdown()  // close_notify, best effort
                tls.drainCiphertext(scratch: Self.tlsScratch) { wire.socket.write($0) }
            }
            wire.socket.close()
        }
        options.inboundBudget?.charge(-charged)
        charged = 0
        onEvent(.closed(report))
    }
}
