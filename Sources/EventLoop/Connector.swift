import Glibc

/// Opens a TCP connection without ever blocking the loop: resolve (off the
/// loop), then Happy Eyeballs (RFC 8305 §5): start with the first address,
/// start the next one every `attemptDelay` while none has connected (or at
/// once when one fails), keep the first that connects, close the others.
/// The whole operation is bounded by `timeout` (Resonite #4714: a dead host
/// must never stall anything).
@LoopActor
public final class Connector {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case resolution(Resolver.Failure)
        case timedOut(after: Duration)
        /// Every address refused or failed; the last error, with its address.
        case failed(address: String, errno: Int32)
        /// Every address was refused by the caller's policy; the first reason.
        case denied(String)
        case cancelled

        public var description: String {
            switch self {
            case .resolution(let failure): return failure.description
            case .timedOut(let after): return "connect timed out after \(after)"
            case .failed(let address, let code):
                return "connect to \(address) failed: \(String(cString: strerror(code)))"
            case .denied(let reason): return "denied by the network policy: \(reason)"
            case .cancelled: return "connect cancelled"
            }
        }
    }

    /// RFC 8305 §5: the recommended Connection Attempt Delay.
    public static let attemptDelay: Duration = .milliseconds(250)

    private let timers: LoopTimers
    private var completion: (@LoopActor (Result<TCPSocket, Failure>) -> Void)?
    private var addresses: [SocketAddress] = []
    private var nextIndex = 0
    /// The attempts under way (Happy Eyeballs keeps a few at most).
    private var attempts: [TCPSocket] = []
    private var lastError: (String, Int32)?
    private var deadlineTimer: TimerID?
    private var staggerTimer: TimerID?

    public init(timers: LoopTimers) {
        self.timers = timers
    }

    /// `permit` judges each resolved address before it is connected (nil:
    /// allowed, else why not); the address connected is the one judged.
    public func connect(
        host: String, port: UInt16, timeout: Duration, permit: (@LoopActor (SocketAddress) -> String?)? = nil,
        _ completion: @escaping @LoopActor (Result<TCPSocket, Failure>) -> Void
    ) {
        self.completion = completion
        Resolver.resolve(host: host, port: port, timeout: timeout, timers: timers) { [weak self] result in
            guard let self, self.completion != nil else { return }
            switch result {
            case .failure(let failure): finish(.failure(.resolution(failure)))
            case .success(let addresses):
                var refusals: [String] = []
                if let permit {
                    (self.addresses, refusals) = Self.permitted(addresses, by: permit)
                } else {
                    self.addresses = addresses
                }
                if self.addresses.isEmpty, let reason = refusals.first { return finish(.failure(.denied(reason))) }
                startNextAttempt()
            }
        }
        // Bounded from here: a literal address to a local listener is often
        // connected (or refused) before `resolve` returns, and then no timer
        // is scheduled (and cancelled) at all.
        guard self.completion != nil else { return }
        deadlineTimer = timers.schedule(after: timeout, slack: .milliseconds(10)) { [weak self] in
            self?.finish(.failure(.timedOut(after: timeout)))
        }
    }

    /// The addresses `permit` allows, in their order, and the reasons it gave
    /// for the others. The array is copied only when one is refused. (A loop,
    /// not `filter`: a closure isolated to the loop made a runtime check of
    /// the executor at every call.)
    static func permitted(_ addresses: [SocketAddress], by permit: @LoopActor (SocketAddress) -> String?) -> (
        addresses: [SocketAddress], refusals: [String]
    ) {
        var permitted = addresses
        var refusals: [String] = []
        var index = permitted.startIndex
        while index < permitted.endIndex {
            if let reason = permit(permitted[index]) {
                refusals.append(reason)
                permitted.remove(at: index)
            } else {
                index += 1
            }
        }
        return (permitted, refusals)
    }

    /// Abandons the attempt; the completion is called with `.cancelled`.
    public func cancel() {
        finish(.failure(.cancelled))
    }

    private func startNextAttempt() {
        guard completion != nil else { return }
        if let staggerTimer { timers.cancel(staggerTimer) }
        staggerTimer = nil
        while nextIndex < addresses.count {
            let address = addresses[nextIndex]
            nextIndex += 1
            if attempt(address) {
                // (The attempt may have connected at once, and finished.)
                if completion != nil && nextIndex < addresses.count {
                    staggerTimer = timers.schedule(after: Self.attemptDelay) { [weak self] in self?.startNextAttempt() }
                }
                return
            }
        }
        if attempts.isEmpty {
            let (address, code) = lastError ?? ("?", ECONNREFUSED)
            finish(.failure(.failed(address: address, errno: code)))
        }
    }

    /// Starts one non-blocking connect; false when it failed at once.
    private func attempt(_ address: SocketAddress) -> Bool {
        let fd = socket(
            address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0)
        guard fd >= 0 else {
            lastError = (address.description, errno)
            return false
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = Self.connect(fd, to: address)
        if result != 0 && errno != EINPROGRESS {
            lastError = (address.description, errno)
            close(fd)
            return false
        }
        let socket = TCPSocket(fd: fd, peer: address)
        attempts.append(socket)
        if result == 0 || Self.isConnected(fd) {
            // Connected already: finished now; the socket joins the poller
            // only when its owner starts it.
            attemptFinished(fd, error: 0)
        } else {
            socket.awaitConnect { [weak self] error in self?.attemptFinished(fd, error: error) }
        }
        return true
    }

    /// `connect(2)`. Not isolated: its closures, isolated to the loop inside
    /// a method of the Connector, made two runtime checks of the executor
    /// per connect.
    private nonisolated static func connect(_ fd: Int32, to address: SocketAddress) -> Int32 {
        var storage = address.storage
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
    }

    /// True when a non-blocking connect that said EINPROGRESS has already
    /// completed: on loopback the kernel runs the whole TCP handshake inside
    /// `connect`. One `poll` that does not wait, instead of a round through
    /// the epoll set (register for writability, wake up, change the interest).
    private static func isConnected(_ fd: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        return poll(&entry, 1, 0) == 1 && entry.revents == Int16(POLLOUT)
    }

    private func attemptFinished(_ fd: Int32, error: Int32) {
        // (A loop, not `firstIndex(where:)`: see `permitted` in `connect`.)
        var found: Int?
        for index in attempts.indices where attempts[index].fd == fd {
            found = index
            break
        }
        guard let index = found else { return }
        let socket = attempts.remove(at: index)
        if error == 0 {
            finish(.success(socket))
            return
        }
        lastError = (socket.peer.description, error)
        socket.close()
        // RFC 8305 §5: a failure starts the next attempt without waiting.
        startNextAttempt()
    }

    private func finish(_ result: Result<TCPSocket, Failure>) {
        guard let completion else {
            if case .success(let socket) = result { socket.close() }
            return
        }
        self.completion = nil
        if let deadlineTimer { timers.cancel(deadlineTimer) }
        if let staggerTimer { timers.cancel(staggerTimer) }
        for socket in attempts { socket.close() }
        attempts.removeAll()
        completion(result)
    }
}
