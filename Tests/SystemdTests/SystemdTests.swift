import Glibc
import Logging
import TestSupport
import Testing

@testable import Systemd

@Suite("Journal field names from swift-log metadata keys")
struct JournalFieldNameTests {
    @Test(
        "metadata keys become upper-case journal fields",
        arguments: [
            ("session.id", "SESSION_ID"), ("object.id", "OBJECT_ID"), ("user.id", "USER_ID"), ("ws.url", "WS_URL"),
            ("ws-state", "WS_STATE"), ("_hidden", "HIDDEN"), ("1st", "F_1ST"), ("ünï", "N_"),
        ])
    func names(key: String, field: String) {
        #expect(JournalLogHandler.fieldName(key) == field)
    }

    @Test("names journald would refuse are dropped or cut")
    func limits() {
        #expect(JournalLogHandler.fieldName("___") == nil)
        #expect(JournalLogHandler.fieldName(String(repeating: "a", count: 100))?.count == 64)
    }
}

/// These set NOTIFY_SOCKET in this process, so they run one at a time.
@Suite("Notifier: sd_notify through libsystemd to a real socket", .serialized)
struct NotifierTests {
    @Test("without NOTIFY_SOCKET nothing is sent and nothing fails")
    func inactive() {
        unsetenv("NOTIFY_SOCKET")
        let notifier = Notifier()
        #expect(!notifier.isActive)
        #expect(!notifier.ready(status: "x"))
        #expect(notifier.watchdogTimeout() == nil)
    }

    @Test("READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING and WATCHDOG arrive as systemd reads them")
    func messages() throws {
        let listener = try NotifyListener()
        setenv("NOTIFY_SOCKET", listener.path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        let notifier = Notifier()
        #expect(notifier.ready(status: "running\nwith a newline"))
        #expect(listener.receive(timeout: .seconds(2)) == ["READY": "1", "STATUS": "running with a newline"])
        #expect(notifier.reloading(status: "reloading"))
        let reloading = try #require(listener.receive(timeout: .seconds(2)))
        #expect(reloading["RELOADING"] == "1")
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = try #require(UInt64(reloading["MONOTONIC_USEC"] ?? ""))
        let nowUsec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        #expect(usec <= nowUsec && nowUsec - usec < 5_000_000)
        #expect(notifier.stopping(status: "bye"))
        #expect(listener.receive(timeout: .seconds(2)) == ["STOPPING": "1", "STATUS": "bye"])
        #expect(notifier.watchdog())
        #expect(listener.receive(timeout: .seconds(2)) == ["WATCHDOG": "1"])
    }

    @Test("the watchdog interval comes from WATCHDOG_USEC, and only for our PID")
    func watchdogTimeout() {
        setenv("WATCHDOG_USEC", "3000000", 1)
        defer {
            unsetenv("WATCHDOG_USEC")
            unsetenv("WATCHDOG_PID")
        }
        #expect(Notifier().watchdogTimeout() == .seconds(3))
        setenv("WATCHDOG_PID", "\(getpid())", 1)
        #expect(Notifier().watchdogTimeout() == .seconds(3))
        setenv("WATCHDOG_PID", "1", 1)
        #expect(Notifier().watchdogTimeout() == nil)
    }
}

@Suite("Log level control")
struct LogLevelControlTests {
    @Test("a shared level changes every handler that has no override")
    func shared() {
        let control = LogLevelControl(.info)
        var a = StderrLogHandler(identifier: "t", level: control)
        let b = JournalLogHandler(label: "t", identifier: "t", level: control)
        #expect(a.logLevel == .info && b.logLevel == .info)
        control.level = .debug
        #expect(a.logLevel == .debug && b.logLevel == .debug)
        a.logLevel = .error
        control.level = .trace
        #expect(a.logLevel == .error && b.logLevel == .trace)
        #expect(Logger.Level.allCases.map(\.syslogPriority) == [7, 7, 6, 5, 4, 3, 2])
    }
}
