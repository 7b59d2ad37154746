import CEpoll
import Dispatch
import Glibc

/// Who is at the other end of a Unix socket (`SO_PEERCRED`, unix(7)).
public struct PeerCredentials: Equatable, Sendable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "uid \(uid) gid \(gid) pid \(pid)" }

    /// The credentials of the process at the other end of `fd`.
    public static func of(_ fd: Int32) -> PeerCredentials? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (Glibc hides it without _GNU_SOURCE).
        var fields: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: fields))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &fields, &length) == 0, length == 12 else { return nil }
        return PeerCredentials(pid: fields.0, uid: fields.1, gid: fields.2)
    }
}

/// A listening stream socket on the loop: accepts connections as
/// `TCPSocket`s (the same non-blocking stream shell), with their peer's
/// credentials on a Unix socket. Made by binding a path (the control socket)
/// or a TCP address (the metrics endpoint), or adopted from systemd socket
/// activation.
@LoopActor
public final class StreamListener {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let fd: Int32
    /// The path bound by this listener (removed on close); nil when adopted.
    public let path: String?
    /// AF_UNIX or AF_INET/AF_INET6.
    public let family: Int32
    private let source: any DispatchSourceRead
    private var closed = false
    private var paused = false
    private var onAccept: (@LoopActor (TCPSocket, PeerCredentials?) -> Void)?

    /// Binds `path` with `mode` (and `group` when given), replacing a stale
    /// socket left by an earlier run (never a file of another kind, nor a
    /// socket a live process still listens on).
    public static func bind(path: String, mode: mode_t, group: gid_t?, backlog: Int32 = 128) throws(Failure)
        -> StreamListener
    {
        guard var address = Self.address(path) else {
            throw Failure(description: "\(path): longer than a socket path may be")
        }
        if Self.someoneListens(at: path) {
            throw Failure(description: "another process listens on \(path) (is wshostd running already?)")
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw Failure(description: "\(path) exists and is not a socket")
            }
            unlink(path)
        }
        let fd = socket(
            AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        // The mode applies from the moment the path exists: no window with wider permissions.
        let oldMask = umask(0o777 & ~mode)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        let bindError = errno
        umask(oldMask)
        guard bound == 0 else {
            Glibc.close(fd)
            throw Failure(description: "bind \(path): \(String(cString: strerror(bindError)))")
        }
        // The socket is created with the process's group; chown(2) only when
        // another group is asked for. The shipped unit's system call filter
        // refuses chown, so the packaged config names the daemon's own group.
        var created = stat()
        if let group, lstat(path, &created) != 0 || created.st_gid != group, chown(path, uid_t.max, group) != 0 {
            let code = errno
            Glibc.close(fd)
            unlink(path)
            let hint =
                code == EPERM ? " (another group than the daemon's own: see [control] group in wshostd.toml(5))" : ""
            throw Failure(
                description: "chown \(path) to group \(group): \(String(cString: strerror(code)))\(hint)")
        }
        if chmod(path, mode) != 0 || listen(fd, backlog) != 0 {
            let code = errno
            Glibc.close(fd)
            unlink(path)
            throw Failure(description: "listen \(path): \(String(cString: strerror(code)))")
        }
        return StreamListener(fd: fd, path: path, family: AF_UNIX)
    }

    /// Binds a TCP listener on a numeric address (`host` without brackets).
    public static func bind(host: String, port: UInt16, backlog: Int32 = 64) throws(Failure) -> StreamListener {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let shown = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let code = getaddrinfo(host, String(port), &hints, &list)
        guard code == 0, let info = list else {
            throw Failure(description: "\(shown): \(String(cString: gai_strerror(code)))")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(
            info.pointee.ai_family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, backlog) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw Failure(description: "listen on \(shown): \(String(cString: strerror(code)))")
        }
        return StreamListener(fd: fd, path: nil, family: info.pointee.ai_family)
    }

    /// The port a TCP listener is bound to (a test binds port 0).
    public var port: UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: &storage) { raw in
            switch family {
            case AF_INET, AF_INET6:
                // sin_port and sin6_port sit at the same offset, in network order.
                return UInt16(raw[2]) << 8 | UInt16(raw[3])
            default:
                return nil
            }
        }
    }

    /// The `sockaddr_un` of `path`; nil when the path is too long.
    static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return address
    }

    /// Whether a live listener answers at `path` (a stale socket file does not).
    static func someoneListens(at path: String) -> Bool {
        guard var address = address(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }

    /// Adopts a listening socket passed by systemd (`sd_listen_fds`).
    public static func adopt(fd: Int32) -> StreamListener {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return StreamListener(fd: fd, path: nil, family: AF_UNIX)
    }

    private init(fd: Int32, path: String?, family: Int32) {
        self.fd = fd
        self.path = path
        self.family = family
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: LoopExecutor.shared.queue)
        source.setEventHandler { [weak self] in LoopActor.assumeIsolated { self?.acceptPending() } }
        source.setCancelHandler { Glibc.close(fd) }
    }

    /// Starts accepting; `onAccept` gets each new connection (not yet started).
    public func start(onAccept: @escaping @LoopActor (TCPSocket, PeerCredentials?) -> Void) {
        self.onAccept = onAccept
        source.activate()
    }

    /// Accepts what waits, up to a batch per wake-up.
    private func acceptPending() {
        for _ in 0..<64 {
            guard !closed else { return }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                // Close-on-exec from the start (a child spawned meanwhile must not
                // hold the socket: its close leaves the epoll set only as the last
                // descriptor of the file), and non-blocking.
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    cepoll_accept4(fd, $0, &length, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
                }
            }
            var peer = SocketAddress(family: family, storage: storage, length: length)
            if client < 0 {
                let code = errno
                if code == EINTR || code == ECONNABORTED { continue }
                if code != EAGAIN && code != EWOULDBLOCK { pause() }
                return
            }
            if family == AF_UNIX {
                peer.storage.ss_family = sa_family_t(AF_UNIX)
                onAccept?(TCPSocket(fd: client, peer: peer), PeerCredentials.of(client))
            } else {
                peer.family = Int32(peer.storage.ss_family)
                onAccept?(TCPSocket(fd: client, peer: peer), nil)
            }
        }
    }

    /// Out of descriptors (EMFILE, ENFILE) or memory: the pending connection
    /// stays queued and the source would fire again at once, so rest 100 ms.
    private func pause() {
        guard !paused else { return }
        paused = true
        source.suspend()
        LoopExecutor.shared.queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [weak self] in
            LoopActor.assumeIsolated {
                guard let self, self.paused else { return }
                self.paused = false
                self.source.resume()
            }
        }
    }

    /// Stops accepting and closes the socket (a bound path is removed; an
    /// adopted socket stays with systemd for the next start).
    public func close() {
        guard !closed else { return }
        closed = true
        onAccept = nil
        if let path { unlink(path) }
        source.activate()
        if paused {
            paused = false
            source.resume()
        }
        source.cancel()
    }

    isolated deinit { close() }
}
