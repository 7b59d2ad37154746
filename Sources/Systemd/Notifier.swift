import CSystemd
import Glibc

/// The service manager's notification protocol (`sd_notify(3)`), through
/// libsystemd. Without `NOTIFY_SOCKET` (not started by systemd) every call is
/// a no-op that returns false.
public struct Notifier: Sendable {
    public init() {}

    /// Whether a service manager listens (`NOTIFY_SOCKET` is set).
    public var isActive: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// Sends `KEY=value` lines as one notification; true when delivered.
    @discardableResult
    public func send(_ fields: [(String, String)]) -> Bool {
        let state = fields.map { "\($0.0)=\(sanitize($0.1))" }.joined(separator: "\n")
        return sd_notify(0, state) > 0
    }

    /// `READY=1` with a status line: startup (or a reload) finished.
    @discardableResult
    public func ready(status: String) -> Bool { send([("READY", "1"), ("STATUS", status)]) }

    /// `STATUS=…`: the one-line summary `systemctl status` shows.
    @discardableResult
    public func status(_ text: String) -> Bool { send([("STATUS", text)]) }

    /// `RELOADING=1` with `MONOTONIC_USEC` (systemd.service(5), Type=notify-reload):
    /// a reload started; `ready(status:)` ends it.
    @discardableResult
    public func reloading(status: String) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        return send([("RELOADING", "1"), ("MONOTONIC_USEC", String(usec)), ("STATUS", status)])
    }

    /// `STOPPING=1`: the daemon is shutting down.
    @discardableResult
    public func stopping(status: String) -> Bool { send([("STOPPING", "1"), ("STATUS", status)]) }

    /// `WATCHDOG=1`: the loop is alive.
    @discardableResult
    public func watchdog() -> Bool { sd_notify(0, "WATCHDOG=1") > 0 }

    /// The watchdog interval systemd expects pings within (`WatchdogSec=`), or
    /// nil when no watchdog is armed for this process (`sd_watchdog_enabled(3)`).
    public func watchdogTimeout() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// Values are single lines: a newline would start a new assignment.
    private func sanitize(_ value: String) -> String {
        value.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ")
    }
}
