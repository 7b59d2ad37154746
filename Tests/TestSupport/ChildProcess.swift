import Foundation
import Glibc

/// A built executable of this package, run as a child process with a chosen
/// environment, its output collected.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private var stdinPipe: Pipe?
    private let lock = NSLock()
    private var stdoutData = Data()
    private var stderrData = Data()

    /// The directory holding the package's built products (next to the test bundle).
    public static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// Runs a built product of this package (`wshostd`, `wsprobe`, …).
    public convenience init(_ product: String, _ arguments: [String], environment: [String: String] = [:]) {
        self.init(
            executable: Self.productsDirectory.appendingPathComponent(product), arguments, environment: environment)
    }

    public init(executable: URL, _ arguments: [String], environment: [String: String] = [:]) {
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID"] {
            env[key] = nil
        }
        env.merge(environment) { _, new in new }
        process.environment = env
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        stdoutPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.lock.withLock { self?.stdoutData.append(data) }
        }
        stderrPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            self?.lock.withLock { self?.stderrData.append(data) }
        }
    }

    public func start() throws { try process.run() }

    /// Gives the child a pipe as standard input (call before `start`).
    public func pipeStandardInput() {
        let pipe = Pipe()
        stdinPipe = pipe
        process.standardInput = pipe
    }

    /// Writes to the child's standard input (after `pipeStandardInput`).
    public func writeStandardInput(_ text: String) {
        stdinPipe?.fileHandleForWriting.write(Data(text.utf8))
    }

    public func closeStandardInput() {
        try? stdinPipe?.fileHandleForWriting.close()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Signals the child; never its process group (pid 0 before start).
    public func signal(_ number: Int32) {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        kill(pid, number)
    }

    /// Waits for exit (killing the process after `timeout`); returns its status.
    @discardableResult
    public func wait(timeout: Duration = .seconds(20)) -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        // Drain what the pipes still hold.
        stdoutPipe.fileHandleForReading.readabilityHandler = nil
        stderrPipe.fileHandleForReading.readabilityHandler = nil
        let restOut = stdoutPipe.fileHandleForReading.readDataToEndOfFile()
        let restErr = stderrPipe.fileHandleForReading.readDataToEndOfFile()
        lock.withLock {
            stdoutData.append(restOut)
            stderrData.append(restErr)
        }
        return process.terminationStatus
    }

    public var standardOutput: String { lock.withLock { String(decoding: stdoutData, as: UTF8.self) } }
    public var standardError: String { lock.withLock { String(decoding: stderrData, as: UTF8.self) } }

    /// Runs to completion and returns (status, stdout, stderr).
    public static func run(
        _ product: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let child = ChildProcess(product, arguments, environment: environment)
        try child.start()
        let status = child.wait()
        return (status, child.standardOutput, child.standardError)
    }

    /// Waits until `condition` holds on stdout, or `timeout` passes.
    public func waitForStandardOutput(timeout: Duration = .seconds(10), _ condition: (String) -> Bool) -> Bool {
        waitFor(timeout: timeout) { condition(standardOutput) }
    }

    /// Waits until `condition` holds on stderr, or `timeout` passes.
    public func waitForStandardError(timeout: Duration = .seconds(10), _ condition: (String) -> Bool) -> Bool {
        waitFor(timeout: timeout) { condition(standardError) }
    }

    private func waitFor(timeout: Duration, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}

/// A temporary file that disappears with the value.
public final class TemporaryFile: @unchecked Sendable {
    public let path: String

    public init(_ contents: String, suffix: String = ".toml") throws {
        path = Self.path(suffix: suffix)
        try write(contents)
    }

    /// A fresh path in the temporary directory (nothing is created).
    public static func path(suffix: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("wshostd-\(UUID().uuidString)\(suffix)").path
    }

    public func write(_ contents: String) throws {
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
    }

    deinit { unlink(path) }
}
