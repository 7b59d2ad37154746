import Foundation
import Glibc

/// A third-party WebSocket server (`Tests/peers/ws_peer.py` in the project's
/// `.venv`, made by `scripts/setup.sh`) listening on loopback.
public final class Peer: @unchecked Sendable {
    public let port: UInt16
    private let child: ChildProcess

    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public enum Failure: Error, CustomStringConvertible {
        case noVenv(String)
        case didNotStart(String)
        public var description: String {
            switch self {
            case .noVenv(let path): return "\(path) missing: run scripts/setup.sh to install the test peers"
            case .didNotStart(let output): return "peer did not start: \(output)"
            }
        }
    }

    /// Starts `ws_peer.py MODE [ARGS…]` and waits for its port.
    public init(_ mode: String, _ arguments: String...) throws {
        let python = Self.packageRoot.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else { throw Failure.noVenv(python.path) }
        let script = Self.packageRoot.appendingPathComponent("Tests/peers/ws_peer.py").path
        child = ChildProcess(executable: python, [script, mode] + arguments)
        try child.start()
        guard child.waitForStandardOutput(timeout: .seconds(20), { $0.contains("\n") }),
            let line = child.standardOutput.split(separator: "\n").first, line.hasPrefix("PORT "),
            let port = UInt16(line.dropFirst(5))
        else {
            child.signal(SIGKILL)
            throw Failure.didNotStart(child.standardOutput + child.standardError)
        }
        self.port = port
    }

    /// What the peer printed so far.
    public var output: String { child.standardOutput }

    /// Waits until `condition` holds on the peer's output.
    public func waitForOutput(timeout: Duration = .seconds(10), _ condition: (String) -> Bool) -> Bool {
        child.waitForStandardOutput(timeout: timeout, condition)
    }

    deinit {
        child.signal(SIGKILL)
        child.wait(timeout: .seconds(5))
    }
}

/// Open file descriptors of this process (for leak checks).
public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Reads a /proc file to its end. procfs reports a size of 0, so readers that
/// trust the size (or read one page) can return a truncated table.
public func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// TCP sockets held open by this process whose remote port is in `ports`:
/// the descriptors in /proc/self/fd that are sockets, matched by inode against
/// /proc/net/tcp and tcp6. Immune to other tests' files, pipes and sockets.
public func openTCPSockets(toPorts ports: Set<UInt16>) -> Int {
    let directory = "/proc/self/fd"
    var inodes = Set<String>()
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(entry)"),
            target.hasPrefix("socket:[")
        else { continue }
        inodes.insert(String(target.dropFirst(8).dropLast()))
    }
    var count = 0
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = readProcFile(table) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, inodes.contains(String(fields[9])),
                let portHex = fields[2].split(separator: ":").last, let port = UInt16(portHex, radix: 16),
                ports.contains(port)
            else { continue }
            count += 1
        }
    }
    return count
}
