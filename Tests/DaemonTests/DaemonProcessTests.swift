import Config
import Foundation
import Glibc
import TestSupport
import Testing

@testable import Daemon

let exampleConfig = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("config/wshostd.toml").path

@Suite("wshostd --check-config: exit 0 or 78 with the exact message")
struct CheckConfigTests {
    @Test("the shipped example is valid")
    func example() throws {
        let result = try ChildProcess.run("wshostd", ["--check-config", "--config", exampleConfig])
        #expect(result.status == 0)
        #expect(result.stdout == "wshostd: \(exampleConfig): configuration OK\n")
    }

    @Test(
        "invalid files exit 78 (EX_CONFIG) naming file, line, key and expectation",
        arguments: [
            (
                "[log]\nlevel = 3\n",
                ":2: log.level: expected one of \"trace\", \"debug\", \"info\", \"notice\", \"warning\", \"error\", \"critical\", found integer 3"
            ),
            (
                "[security]\nallowed_url_hosts = [\"example.com\"]\n",
                ":2: security.allowed_url_hosts: element 0 (\"example.com\"): no port; write \"host:port\" (the port is required), or a ws:// or wss:// URL"
            ),
            ("[daemon]\nstop_timeot = \"5s\"\n", ":2: daemon.stop_timeot: unknown key; did you mean 'stop_timeout'?"),
            (
                "= 1\n",
                ":1:1: TOML syntax error: Error while parsing root table: expected keys, tables, whitespace or comments, saw '='"
            ),
        ])
    func invalid(text: String, message: String) throws {
        let file = try TemporaryFile(text)
        let result = try ChildProcess.run("wshostd", ["--check-config", "--config", file.path])
        #expect(result.status == 78)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "wshostd: invalid configuration:\n\(file.path)\(message)\n")
    }

    @Test("every problem in one run, each at its line: two bad allow-list entries and a missing CA file (issue #14)")
    func allProblems() throws {
        let file = try TemporaryFile(
            """
            [security]
            allowed_url_hosts = [
              "example.com",
              "ok.example:443",
              "also-bad",
            ]
            [tls]
            ca_file = "/nonexistent/ca.pem"
            """)
        let result = try ChildProcess.run("wshostd", ["--check-config", "--config", file.path])
        #expect(result.status == 78)
        let lines = result.stderr.split(separator: "\n").dropFirst().map(String.init)
        #expect(
            lines == [
                "\(file.path):2: security.allowed_url_hosts: element 0 (\"example.com\"): no port; write \"host:port\" (the port is required), or a ws:// or wss:// URL",
                "\(file.path):2: security.allowed_url_hosts: element 2 (\"also-bad\"): no port; write \"host:port\" (the port is required), or a ws:// or wss:// URL",
                "\(file.path):8: tls.ca_file: cannot read /nonexistent/ca.pem: No such file or directory",
            ], "\(result.stderr)")
        let notPEM = try TemporaryFile("not a certificate\n", suffix: ".pem")
        let second = try TemporaryFile("[tls]\nca_file = \"\(notPEM.path)\"\n")
        let out = try ChildProcess.run("wshostd", ["--check-config", "--config", second.path])
        #expect(out.status == 78)
        #expect(
            out.stderr.contains(":2: tls.ca_file: \(notPEM.path) holds no PEM certificate OpenSSL accepts"),
            "\(out.stderr)")
    }

    @Test("a missing or unreadable file named with --config is an error, also without --check-config")
    func missing() throws {
        let result = try ChildProcess.run("wshostd", ["--config", "/nonexistent/wshostd.toml"])
        #expect(result.status == 78)
        #expect(
            result.stderr
                == "wshostd: invalid configuration:\n/nonexistent/wshostd.toml: cannot read the file: No such file or directory\n"
        )
        let directory = try ChildProcess.run("wshostd", ["--check-config", "--config", "/tmp"])
        #expect(directory.status == 78)
        #expect(directory.stderr.contains("/tmp: cannot read the file: Is a directory"))
        let binary = try TemporaryFile("")
        try Data([0x5b, 0xff, 0xfe, 0x5d]).write(to: URL(fileURLWithPath: binary.path))
        let notText = try ChildProcess.run("wshostd", ["--check-config", "--config", binary.path])
        #expect(notText.status == 78)
        #expect(notText.stderr.contains(": cannot read the file: not valid UTF-8 text"))
    }

    @Test("without --config the unit's CONFIGURATION_DIRECTORY is used")
    func configurationDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "wshostd-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "[log]\nlevel = \"loud\"\n".write(
            to: directory.appendingPathComponent("wshostd.toml"), atomically: true, encoding: .utf8)
        let result = try ChildProcess.run(
            "wshostd", ["--check-config"], environment: ["CONFIGURATION_DIRECTORY": directory.path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(directory.path)/wshostd.toml:2: log.level"))
    }
}

@Suite("The daemon under a notify socket: READY, STATUS, watchdog, reload, stop")
struct DaemonLifecycleTests {
    @Test(
        "start → READY=1 with STATUS; WATCHDOG=1 at half the interval; SIGHUP reloads or refuses; SIGTERM → STOPPING=1, exit 0"
    )
    func lifecycle() throws {
        let listener = try NotifyListener()
        let socket = TemporaryFile.path(suffix: ".sock")
        defer { try? FileManager.default.removeItem(atPath: socket + ".state") }
        let control = "[control]\nsocket = \"\(socket)\"\n[daemon]\nstate_directory = \"\(socket).state\"\n"
        let config = try TemporaryFile("[log]\nlevel = \"info\"\ntarget = \"stderr\"\n" + control)
        let daemon = ChildProcess(
            "wshostd", ["--config", config.path],
            environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"])
        try daemon.start()
        defer { if daemon.isRunning { daemon.signal(SIGKILL) } }
        var seen: [[String: String]] = []

        // READY=1 once the loop runs, with a status line.
        let ready = try #require(listener.receive(until: "READY", timeout: .seconds(10), seen: &seen))
        #expect(ready["STATUS"] == "running; 0 sessions, 0 records, 0 open; config generation 1 from \(config.path)")

        // The watchdog is pinged from the loop about every 200 ms.
        let start = ContinuousClock.now
        var pings = 0
        while pings < 4, ContinuousClock.now - start < .seconds(5) {
            if listener.receive(timeout: .seconds(1))?["WATCHDOG"] == "1" { pings += 1 }
        }
        #expect(pings == 4)
        #expect(ContinuousClock.now - start < .seconds(2))

        // A valid reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1, generation 2.
        try config.write("[log]\nlevel = \"debug\"\ntarget = \"stderr\"\n" + control)
        daemon.signal(SIGHUP)
        let reloading = try #require(listener.receive(until: "RELOADING", timeout: .seconds(5), seen: &seen))
        #expect(UInt64(reloading["MONOTONIC_USEC"] ?? "") != nil)
        let reloaded = try #require(listener.receive(until: "READY", timeout: .seconds(5), seen: &seen))
        #expect(reloaded["STATUS"] == "running; 0 sessions, 0 records, 0 open; config generation 2 from \(config.path)")
        #expect(daemon.waitForStandardError { $0.contains("configuration reloaded") })

        // A broken file: refused, logged, the daemon keeps running on generation 2.
        try config.write("[log]\nlevel = \"loud\"\n")
        daemon.signal(SIGHUP)
        _ = try #require(listener.receive(until: "RELOADING", timeout: .seconds(5), seen: &seen))
        let refused = try #require(listener.receive(until: "READY", timeout: .seconds(5), seen: &seen))
        #expect(
            refused["STATUS"]
                == "running; 0 sessions, 0 records, 0 open; config generation 2 from \(config.path); last reload failed: \(config.path):2: log.level: expected one of \"trace\", \"debug\", \"info\", \"notice\", \"warning\", \"error\", \"critical\", found \"loud\""
        )
        #expect(
            daemon.waitForStandardError {
                $0.contains(
                    "error wshostd: configuration reload refused, keeping the running configuration: \(config.path):2: log.level"
                )
            })
        #expect(daemon.isRunning)

        // Stop: STOPPING=1, exit status 0.
        daemon.signal(SIGTERM)
        let stopping = try #require(listener.receive(until: "STOPPING", timeout: .seconds(5), seen: &seen))
        #expect(stopping["STATUS"]?.hasPrefix("stopping;") == true)
        #expect(daemon.wait() == 0)
        #expect(daemon.standardError.contains("notice wshostd: stopped"))
    }

    @Test("without systemd the daemon runs, logs readable lines to stderr and stops on SIGINT")
    func plain() throws {
        // The example's default paths, but the state in a scratch directory.
        let state = TemporaryFile.path(suffix: ".state")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let daemon = ChildProcess("wshostd", ["--config", exampleConfig], environment: ["STATE_DIRECTORY": state])
        try daemon.start()
        defer { if daemon.isRunning { daemon.signal(SIGKILL) } }
        #expect(daemon.waitForStandardError { $0.contains("notice wshostd: started") })
        // ISO-8601 UTC timestamp, level, identifier, message, sorted metadata.
        let line = daemon.standardError.split(separator: "\n").first { $0.contains("started") } ?? ""
        #expect(
            line.range(
                of:
                    #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z notice wshostd: started config\.file=\S+ log\.backend=stderr log\.level=info openssl="OpenSSL 3\.[^"]+" pid=\d+ version=\S+$"#,
                options: .regularExpression) != nil, "\(line)")
        daemon.signal(SIGINT)
        #expect(daemon.wait() == 0)
    }
}
