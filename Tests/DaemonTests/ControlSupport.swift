import Control
import Foundation
import Glibc
import JSONValue
import TestSupport
import Testing

/// A daemon started for a control test: its own directory (mode 0755, so a
/// second uid can reach the socket when the test asks), its socket and state.
final class ControlledDaemon: @unchecked Sendable {
    let directory: String
    let socket: String
    let config: TemporaryFile
    /// The config's fixed part ([daemon], [control]) after [log]; tests add the rest.
    private let fixed: String
    /// [log] level of the config (the next `rewrite` may change it).
    private var logLevel = "debug"
    private var header: String { Self.header(logLevel: logLevel, fixed) }
    private static func header(logLevel: String, _ fixed: String) -> String {
        "[log]\nlevel = \"\(logLevel)\"\ntarget = \"stderr\"\n\n" + fixed
    }
    private(set) var process: ChildProcess
    /// Runs the daemon as `state: DIR` mounted by the launcher (see `tmpfsState`).
    private let launcher: [String]

    /// `tmpfsState: N` runs the daemon in its own mount namespace with the
    /// state directory on a tmpfs of N KiB (to fill it up in a test).
    init(_ extra: String, socketMode: String = "0660", control: String = "", tmpfsState: Int? = nil) throws {
        var template = Array("/tmp/wshostd-ctl-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        directory = String(cString: made)
        chmod(directory, 0o755)
        socket = directory + "/control.sock"
        if let size = tmpfsState {
            mkdir(directory + "/state", 0o750)
            launcher = [
                "/usr/bin/unshare", "-m", "/bin/sh", "-c",
                "mount -t tmpfs -o size=\(size)k tmpfs \(directory)/state && exec \"$0\" \"$@\"",
            ]
        } else {
            launcher = []
        }
        fixed = """
            [daemon]
            state_directory = "\(directory)/state"
            stop_timeout = "2s"

            [control]
            socket = "\(socket)"
            socket_mode = "\(socketMode)"
            \(control)

            """
        config = try TemporaryFile(Self.header(logLevel: "debug", fixed) + extra)
        process = ChildProcess("wshostd", [])
        process = try launch()
    }

    private func launch() throws -> ChildProcess {
        let binary = ChildProcess.productsDirectory.appendingPathComponent("wshostd")
        let process =
            launcher.isEmpty
            ? ChildProcess("wshostd", ["--config", config.path])
            : ChildProcess(
                executable: URL(fileURLWithPath: launcher[0]),
                Array(launcher.dropFirst()) + [binary.path, "--config", config.path])
        try process.start()
        guard process.waitForStandardError(timeout: .seconds(20), { $0.contains("control socket listening") }) else {
            process.signal(SIGKILL)
            throw Failure(description: "the daemon did not start: \(process.standardError)")
        }
        return process
    }

    /// Rewrites the config with another test part (for the next reload or start).
    func rewrite(_ extra: String, logLevel: String? = nil) throws {
        if let logLevel { self.logLevel = logLevel }
        try config.write(header + extra)
    }

    /// `kill -9`, then start again with the same config and state directory.
    func crashAndRestart() throws {
        process.signal(SIGKILL)
        process.wait()
        process = try launch()
    }

    /// Runs a shell command in the daemon's mount namespace (its tmpfs state).
    func inDaemonNamespace(_ command: String) throws -> Int32 {
        let child = ChildProcess(
            executable: URL(fileURLWithPath: "/usr/bin/nsenter"),
            ["-t", "\(process.pid)", "-m", "/bin/sh", "-c", command])
        try child.start()
        return child.wait()
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `wshostctl --socket … ARGS`.
    func ctl(_ arguments: [String], environment: [String: String] = [:]) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try ChildProcess.run("wshostctl", ["--socket", socket] + arguments, environment: environment)
    }

    /// `wshostctl --json ARGS`, which must succeed; its result.
    func json(_ arguments: [String]) throws -> JSON {
        let result = try ctl(["--json"] + arguments)
        guard result.status == 0 else {
            throw Failure(description: "wshostctl \(arguments) exited \(result.status): \(result.stderr)")
        }
        return try JSON.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Polls `ws show` until `condition` holds on the record.
    func waitForRecord(
        _ session: String, _ object: String, timeout: Duration = .seconds(10), _ condition: (JSON) -> Bool
    )
        throws -> JSON
    {
        let deadline = ContinuousClock.now + timeout
        var last = JSON.null
        while ContinuousClock.now < deadline {
            last = try json(["ws", "show", session, object])["record"] ?? .null
            if condition(last) { return last }
            usleep(50_000)
        }
        return last
    }

    func stop() -> Int32 {
        process.signal(SIGTERM)
        return process.wait()
    }

    deinit {
        if process.isRunning { process.signal(SIGKILL) }
        process.wait(timeout: .seconds(5))
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A raw connection to the control socket, for requests the CLI never sends.
final class RawControlClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String, receiveTimeout: Int = 5) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written <= 0 { return }
            offset += written
        }
    }

    /// The next line (without the newline); nil on EOF or timeout.
    func readLine() -> String? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { return nil }
            buffer += chunk[0..<count]
        }
    }

    /// Sends a line and reads the response line as JSON.
    func request(_ line: String) throws -> JSON {
        send(line + "\n")
        guard let response = readLine() else { throw POSIXError(.ETIMEDOUT) }
        return try JSON.parse(response)
    }
}
