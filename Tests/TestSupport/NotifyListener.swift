import Foundation
import Glibc

/// The receiving end of the `sd_notify` protocol: an `AF_UNIX` datagram socket
/// at a temporary path, as systemd's `NOTIFY_SOCKET` is.
public final class NotifyListener: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("wshostd-notify-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8.prefix(buffer.count - 1))
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    }

    deinit {
        close(fd)
        unlink(path)
        rmdir((path as NSString).deletingLastPathComponent)
    }

    /// One notification as `KEY -> value`, or nil after `timeout`.
    public func receive(timeout: Duration) -> [String: String]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, millis) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        var fields: [String: String] = [:]
        for line in String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return fields
    }

    /// Receives until a notification has `key` (returning it), or nil after `timeout`.
    /// Every notification seen on the way is appended to `seen`.
    public func receive(until key: String, timeout: Duration, seen: inout [[String: String]]) -> [String: String]? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let message = receive(timeout: deadline - ContinuousClock.now) else { return nil }
            seen.append(message)
            if message[key] != nil { return message }
        }
        return nil
    }
}
