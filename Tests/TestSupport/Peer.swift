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

    /// Starts `ws_peer.py MODE` and waits for its port.
    public init(_ mode: String) throws {
        let python = Self.packageRoot.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else { throw Failure.noVenv(python.path) }
        let script = Self.packageRoot.appendingPathComponent("Tests/peers/ws_peer.py").path
        child = ChildProcess(executable: python, [script, mode])
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

    deinit {
        child.signal(SIGKILL)
        child.wait(timeout: .seconds(5))
    }
}

/// Open file descriptors of this process (for leak checks).
public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}
