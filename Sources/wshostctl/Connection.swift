import Control
import Glibc
import JSONValue

/// Where `wshostctl` finds the daemon: `--socket`, else `$WSHOSTCTL_SOCKET`,
/// else the default path.
enum SocketPath {
    static let `default` = "/run/wshostd/control.sock"

    static func resolve(_ option: String?) -> String {
        if let option { return option }
        if let value = getenv("WSHOSTCTL_SOCKET"), value.pointee != 0 { return String(cString: value) }
        return Self.default
    }
}

/// Exit statuses (the CLI contract): 0 success, 1 the daemon refused, 2 usage,
/// 69 the daemon is unreachable (EX_UNAVAILABLE).
enum Exit {
    static let refused: Int32 = 1
    static let usage: Int32 = 2
    static let unreachable: Int32 = 69
}

/// A failure that ends the command with `status` after printing `message`.
struct CommandFailure: Error {
    var status: Int32
    var message: String

    /// Runs `body`; a value it refuses is refused as the daemon would refuse
    /// it (the same message and code, exit status 1).
    static func refusing<T>(_ body: () throws(ControlError) -> T) throws(CommandFailure) -> T {
        do {
            return try body()
        } catch {
            throw CommandFailure(status: Exit.refused, message: "\(error.message) (\(error.code.rawValue))")
        }
    }
}

/// One blocking connection to the control socket: requests out, lines in.
final class Connection {
    let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var nextID = 1
    /// Event lines that arrived while waiting for a response.
    private var pendingEvents: [JSON] = []

    /// Connects to `path`. With `timeoutSeconds`, every later send and
    /// receive gives up after that long (a completion must not hang on a
    /// stuck daemon); without, they block as long as the daemon takes.
    init(path: String, timeoutSeconds: Int? = nil) throws(CommandFailure) {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw CommandFailure(status: Exit.usage, message: "\(path): too long for a socket path")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw CommandFailure(status: Exit.unreachable, message: "socket: \(String(cString: strerror(errno)))")
        }
        if let timeoutSeconds {
            // On a Unix stream socket SO_SNDTIMEO also bounds a blocking connect.
            var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            let size = socklen_t(MemoryLayout<timeval>.size)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, size)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, size)
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw CommandFailure(
                status: Exit.unreachable,
                message:
                    "cannot reach wshostd at \(path): \(reason) (is it running? --socket or WSHOSTCTL_SOCKET name another path)"
            )
        }
    }

    deinit { close(fd) }

    var descriptor: Int32 { fd }

    /// Sends one request and waits for its response; events that arrive
    /// meanwhile are kept for `nextEvent`.
    func request(_ command: ControlCommand) throws(CommandFailure) -> JSON {
        let id = nextID
        nextID += 1
        try send(ControlRequest.line(id: id, op: command.operation.rawValue, args: command.arguments))
        while true {
            guard let line = try readLine() else {
                throw CommandFailure(status: Exit.unreachable, message: "wshostd closed the connection at \(path)")
            }
            guard let json = try? JSON.parse(line) else { continue }
            if let event = json["event"] {
                pendingEvents.append(event)
                continue
            }
            guard let response = ControlResponse.parse(line) else { continue }
            switch response {
            case .success(.number(let number)?, let result) where Int(number) == id:
                return result
            case .failure(.number(let number)?, let error) where Int(number) == id:
                throw CommandFailure(status: Exit.refused, message: "\(error.message) (\(error.code.rawValue))")
            case .failure(nil, let error):
                throw CommandFailure(status: Exit.refused, message: "\(error.message) (\(error.code.rawValue))")
            default:
                continue
            }
        }
    }

    /// The next event line (blocking); nil when the daemon closed the connection.
    func nextEvent() throws(CommandFailure) -> JSON? {
        if !pendingEvents.isEmpty { return pendingEvents.removeFirst() }
        while let line = try readLine() {
            if let event = (try? JSON.parse(line))?["event"] { return event }
        }
        return nil
    }

    /// Whether a full line is already buffered (so `poll` would not see it).
    var hasBufferedInput: Bool { !pendingEvents.isEmpty || buffer.contains(UInt8(ascii: "\n")) }

    func send(_ line: String) throws(CommandFailure) {
        let bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw CommandFailure(
                    status: Exit.unreachable,
                    message: "lost the connection to \(path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    private func readLine() throws(CommandFailure) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            let count = recv(fd, &chunk, chunk.count, 0)
            if count < 0 && errno == EINTR { continue }
            if count < 0 {
                throw CommandFailure(
                    status: Exit.unreachable,
                    message: "lost the connection to \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { return nil }
            buffer += chunk[0..<count]
        }
    }
}
