import Control
import Foundation
import Glibc
import JSONValue
import TestSupport
import Testing

private func world(allowed port: UInt16) -> String {
    """
    [security]
    allowed_url_hosts = ["127.0.0.1:\(port)"]

    [[users]]
    id = "host"
    kind = "headless"
    """
}

private func isOpen(_ record: JSON) -> Bool { record["isConnected"]?.boolValue == true }

@Suite("wshostctl drives a running daemon over the control socket", .serialized)
struct ControlEndToEndTests {
    @Test("every command: sessions, users, objects, reactions, the record and its nodes, events, reload")
    func everyCommand() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(world(allowed: peer.port))
        let url = "ws://127.0.0.1:\(peer.port)/feed"

        // Status and users.
        #expect(try daemon.json(["status"])["state"] == .string("running"))
        var out = try daemon.ctl(["status"])
        #expect(out.status == 0 && out.stdout.contains("state:") && out.stdout.contains("running"))
        #expect(try daemon.ctl(["users", "add", "ann", "--kind", "interactive"]).status == 0)
        #expect(try daemon.ctl(["users", "add", "bob", "--name", "Bob B"]).status == 0)
        out = try daemon.ctl(["users", "list"])
        #expect(out.stdout.contains("ann") && out.stdout.contains("interactive") && out.stdout.contains("Bob B"))

        // Sessions.
        #expect(try daemon.ctl(["sessions", "start", "lobby", "--host", "host", "--name", "The Lobby"]).status == 0)
        #expect(try daemon.ctl(["sessions", "start", "solo"]).status == 0)  // hosted by the daemon's own user
        #expect(try daemon.json(["sessions", "show", "solo"])["session"]?["host"] == .string("wshostd"))
        out = try daemon.ctl(["sessions", "list"])
        #expect(out.stdout.contains("The Lobby") && out.stdout.contains("solo"))
        for user in ["ann", "bob"] { #expect(try daemon.ctl(["users", "join", "lobby", user]).status == 0) }
        #expect(try daemon.ctl(["users", "host", "lobby", "bob"]).status == 0)
        #expect(try daemon.json(["sessions", "show", "lobby"])["session"]?["host"] == .string("bob"))
        #expect(try daemon.ctl(["users", "host", "lobby", "host"]).status == 0)
        let present = try daemon.json(["users", "list", "--session", "lobby"])["users"]?.arrayValue?.count
        #expect(present == 3)

        // An object with a record: set fields, enable, it connects (allow-listed).
        #expect(try daemon.ctl(["objects", "spawn", "lobby", "feed", "--spawned-by", "bob"]).status == 0)
        var record = try daemon.json([
            "ws", "set", "lobby", "feed", "--url", url, "--access-reason", "Reads the feed", "--retry-interval", "0.2",
            "--enabled", "false",
        ])["record"]!
        #expect(record["url"] == .string(url))
        #expect(record["enabled"] == .bool(false))
        #expect(record["state"] == .string("idle"))
        #expect(record["accessReason"] == .string("Reads the feed"))
        #expect(record["connectRetryInterval"] == .number(0.2))
        #expect(record["handlingUser"] == .string("bob"))  // spawned by bob, bob present
        #expect(record["handlingUserPinned"] == .bool(false))
        _ = try daemon.json(["ws", "set", "lobby", "feed", "--enabled", "true"])
        record = try daemon.waitForRecord("lobby", "feed", isOpen)
        #expect(isOpen(record))
        out = try daemon.ctl(["objects", "list", "lobby"])
        #expect(out.stdout.contains("feed") && out.stdout.contains("open"))

        // The Text Message Sender, text and binary; the echo arrives as OnReceived.
        // (Message events are kept for `events` while someone subscribes.)
        let follower = ChildProcess("wshostctl", ["--socket", daemon.socket, "events", "--follow"])
        try follower.start()
        defer { follower.signal(SIGKILL) }
        #expect(
            daemon.process.waitForStandardError { _ in (try? daemon.json(["status"])["controlClients"]) == .int(2) })
        out = try daemon.ctl(["ws", "send", "lobby", "feed", "--text", "hello there"])
        #expect(out.status == 0 && out.stdout == "sent\n")
        let binary = try TemporaryFile("", suffix: ".bin")
        try Data([0, 1, 2, 255]).write(to: URL(fileURLWithPath: binary.path))
        #expect(try daemon.ctl(["ws", "send", "lobby", "feed", "--binary-file", binary.path]).status == 0)
        record = try daemon.waitForRecord("lobby", "feed") { $0["messagesIn"]?.intValue == 2 }
        #expect(record["messagesOut"]?.intValue == 2)
        let received = try daemon.ctl(["--json", "events", "--object", "feed", "--type", "received"]).stdout
            .split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
        #expect(received.map { $0["text"] ?? $0["binary"] } == [.string("hello there"), .string("AAEC/w==")])

        // Reactions.
        _ = try daemon.json(["objects", "react", "lobby", "feed", "--on", "connected", "--send", "hi {data}"])
        _ = try daemon.json(["objects", "react", "lobby", "feed", "--on", "disconnected", "--forward", "feed"])
        out = try daemon.ctl(["objects", "reactions", "lobby", "feed"])
        #expect(out.stdout.contains("connected") && out.stdout.contains("send \"hi {data}\""))
        #expect(try daemon.json(["objects", "unreact", "lobby", "feed", "--on", "disconnected"])["removed"] == .int(1))
        #expect(try daemon.json(["objects", "reactions", "lobby", "feed"])["reactions"]?.arrayValue?.count == 1)
        #expect(try daemon.json(["objects", "unreact", "lobby", "feed"])["removed"] == .int(1))

        // The handling-user rule through wear, grab, define-user; failover on leave.
        func handler() throws -> JSON? { try daemon.json(["ws", "show", "lobby", "feed"])["record"]?["handlingUser"] }
        _ = try daemon.json(["objects", "grab", "lobby", "feed", "ann"])
        #expect(try handler() == .string("bob"))  // spawnedBy outranks interactingUser
        _ = try daemon.json(["objects", "define-user", "lobby", "feed", "ann"])
        #expect(try handler() == .string("ann"))
        _ = try daemon.json(["objects", "define-user", "lobby", "feed", "--none"])
        _ = try daemon.json(["objects", "release", "lobby", "feed"])
        _ = try daemon.json(["objects", "wear", "lobby", "feed", "ann"])
        #expect(try handler() == .string("ann"))
        _ = try daemon.json(["objects", "unwear", "lobby", "feed"])
        #expect(try handler() == .string("bob"))
        #expect(try daemon.ctl(["users", "leave", "lobby", "bob"]).status == 0)
        #expect(try handler() == .string("host"))  // failover to the session host
        #expect(try daemon.ctl(["users", "kick", "lobby", "ann"]).status == 0)
        #expect(daemon.process.waitForStandardError { $0.contains("user kicked") && $0.contains("user.id=ann") })
        record = try daemon.waitForRecord("lobby", "feed", isOpen)
        #expect(isOpen(record))

        // Explicit disconnect stays down; Connect brings it back; a pinned user.
        record = try daemon.json(["ws", "disconnect", "lobby", "feed"])["record"]!
        #expect(record["state"] == .string("stopped"))
        usleep(500_000)  // longer than the retry interval: nothing reconnects
        #expect(try daemon.json(["ws", "show", "lobby", "feed"])["record"]?["state"] == .string("stopped"))
        _ = try daemon.json(["ws", "connect", "lobby", "feed", "--user", "host"])
        record = try daemon.waitForRecord("lobby", "feed", isOpen)
        #expect(isOpen(record) && record["handlingUserPinned"] == .bool(true))
        out = try daemon.ctl(["ws", "show", "lobby", "feed"])
        #expect(out.stdout.contains("HandlingUser:         host (pinned)"))
        _ = try daemon.json(["ws", "connect", "lobby", "feed"])  // no --user: automatic again
        #expect(try daemon.json(["ws", "show", "lobby", "feed"])["record"]?["handlingUserPinned"] == .bool(false))
        out = try daemon.ctl(["objects", "show", "lobby", "feed"])
        #expect(out.stdout.contains("spawned by:       bob"))

        // Reload, then removal and close: the socket goes, the world shrinks.
        #expect(try daemon.json(["reload"])["configGeneration"] == .int(2))
        #expect(try daemon.ctl(["objects", "remove", "lobby", "feed"]).status == 0)
        #expect(try daemon.json(["objects", "list", "lobby"])["objects"]?.arrayValue == [])
        #expect(try daemon.ctl(["sessions", "close", "lobby"]).status == 0)
        #expect(try daemon.json(["sessions", "list"])["sessions"]?.arrayValue?.count == 1)
        #expect(daemon.stop() == 0)
    }

    @Test("exit statuses: 1 refused (with the daemon's message), 2 usage, 69 unreachable (with the path)")
    func exitStatuses() throws {
        let daemon = try ControlledDaemon(world(allowed: 9))
        var out = try daemon.ctl(["objects", "show", "nowhere", "thing"])
        #expect(out.status == 1)
        #expect(out.stderr == "wshostctl: no session nowhere (not_found)\n")
        out = try daemon.ctl(["users", "add", "host"])
        #expect(out.status == 1 && out.stderr.contains("exists already (conflict)"))
        out = try daemon.ctl(["objects", "define-user", "s", "o"])
        #expect(out.status == 2 && out.stderr.contains("--none"))
        out = try daemon.ctl(["frobnicate"])
        #expect(out.status == 2)
        out = try ChildProcess.run("wshostctl", ["--socket", daemon.directory + "/absent.sock", "status"])
        #expect(out.status == 69 && out.stderr.contains(daemon.directory + "/absent.sock"))
        out = try ChildProcess.run(
            "wshostctl", ["status"], environment: ["WSHOSTCTL_SOCKET": daemon.socket])
        #expect(out.status == 0)
        out = try ChildProcess.run("wshostctl", ["ws", "--help"])
        #expect(out.status == 0 && out.stdout.contains("Connect"))
    }

    @Test("a reload that lowers the log level logs what the world's change then does (a consent prompt)")
    func reloadLowersLogLevel() throws {
        let steadyPeer = try Peer("echo")
        let promptPeer = try Peer("echo")
        // The steady record's server is allowed (headless host); ann is asked for the
        // other one before any connection to it is tried.
        let base =
            world(allowed: steadyPeer.port)
                + """

                [[users]]
                id = "ann"
                kind = "interactive"

                [[sessions]]
                id = "lobby"
                host = "host"
                present = ["host", "ann"]

                [[sessions.objects]]
                id = "steady"
                url = "ws://127.0.0.1:\(steadyPeer.port)/steady"
                connect_retry_interval = "100ms"

                """
        let daemon = try ControlledDaemon(base)
        #expect(isOpen(try daemon.waitForRecord("lobby", "steady", isOpen)))
        // At warning, a disconnect, a connect and the socket's input go through the core: it no
        // longer builds notice lines.
        try daemon.rewrite(base, logLevel: "warning")
        #expect(try daemon.ctl(["reload"]).status == 0)
        #expect(try daemon.ctl(["ws", "disconnect", "lobby", "steady"]).status == 0)
        #expect(try daemon.ctl(["ws", "connect", "lobby", "steady"]).status == 0)
        #expect(isOpen(try daemon.waitForRecord("lobby", "steady", isOpen)))
        // Back to info, with a record that has to ask ann: its prompt is logged.
        try daemon.rewrite(
            base + """
                [[sessions.objects]]
                id = "ticker"
                worn_by = "ann"
                url = "ws://127.0.0.1:\(promptPeer.port)/ticker"
                access_reason = "The ticker shows the feed"
                """, logLevel: "info")
        #expect(try daemon.ctl(["reload"]).status == 0)
        #expect(
            daemon.process.waitForStandardError { $0.contains("consent prompt for 127.0.0.1:\(promptPeer.port)") },
            "\(daemon.process.standardError)")
    }

    @Test("consent round trip through `consent watch`: prompt, allow persisted, list, forget, asked again, deny")
    func consentRoundTrip() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(
            """
            [security]
            # The test peers are on loopback, which is denied unless allowed.
            allowed_networks = ["127.0.0.0/8"]

            [[users]]
            id = "host"

            [[users]]
            id = "ann"
            kind = "interactive"

            [[sessions]]
            id = "lobby"
            host = "host"
            present = ["host", "ann"]

            [[sessions.objects]]
            id = "ticker"
            worn_by = "ann"
            url = "ws://127.0.0.1:\(peer.port)/ticker"
            access_reason = "The ticker shows the feed"
            connect_retry_interval = "200ms"
            """)
        let token = try daemon.json(["users", "token", "ann"])["token"]?.stringValue ?? ""
        #expect(token.count == 64)
        #expect(try daemon.json(["users", "token", "ann"])["token"]?.stringValue == token)  // stable

        let watch = ChildProcess("wshostctl", ["--socket", daemon.socket, "consent", "watch", "ann", "--token", token])
        watch.pipeStandardInput()
        try watch.start()
        defer { watch.signal(SIGKILL) }
        #expect(
            watch.waitForStandardOutput {
                $0.contains("prompt 1: lobby/ticker asks ann to allow 127.0.0.1:\(peer.port) (websocket)")
                    && $0.contains("reason: The ticker shows the feed")
            }, "\(watch.standardOutput)")
        #expect(try daemon.json(["ws", "show", "lobby", "ticker"])["record"]?["state"] == .string("awaiting-consent"))

        // A wrong token is refused, and changes nothing.
        var out = try daemon.ctl([
            "consent", "answer", "ann", "1", "allow", "--token", String(repeating: "0", count: 64),
        ])
        #expect(out.status == 1 && out.stderr.contains("wrong token for user ann (forbidden)"))
        #expect(try daemon.json(["ws", "show", "lobby", "ticker"])["record"]?["state"] == .string("awaiting-consent"))

        watch.writeStandardInput("allow\n")
        #expect(watch.waitForStandardOutput { $0.contains("prompt 1: allow") })
        #expect(isOpen(try daemon.waitForRecord("lobby", "ticker", isOpen)))
        #expect(
            daemon.process.waitForStandardError {
                $0.contains("consent answered") && $0.contains("consent.by=\"uid 0")
                    && $0.contains("consent.answer=allow")
            })
        let decisions = try daemon.json(["consent", "list", "ann"])["decisions"]?.arrayValue ?? []
        #expect(decisions.count == 1)
        #expect(decisions.first?["hostPort"] == .string("127.0.0.1:\(peer.port)"))
        #expect(decisions.first?["verdict"] == .string("allowed"))
        #expect(decisions.first?["reason"] == .string("The ticker shows the feed"))

        // Persisted: a reconnect does not ask again.
        _ = try daemon.json(["ws", "disconnect", "lobby", "ticker"])
        _ = try daemon.json(["ws", "connect", "lobby", "ticker"])
        #expect(isOpen(try daemon.waitForRecord("lobby", "ticker", isOpen)))
        #expect(!watch.standardOutput.contains("prompt 2"))

        // Forget → the next attempt asks again; deny (from another process, with the token).
        out = try daemon.ctl(["consent", "forget", "ann", "127.0.0.1:\(peer.port)"])
        #expect(out.status == 0)
        _ = try daemon.json(["ws", "connect", "lobby", "ticker"])
        #expect(watch.waitForStandardOutput { $0.contains("prompt 2: lobby/ticker asks ann") })
        out = try daemon.ctl(["consent", "answer", "ann", "2", "deny", "--token", token])
        #expect(out.status == 0)
        let denied = try daemon.waitForRecord("lobby", "ticker") { $0["state"] == .string("denied") }
        #expect(denied["state"] == .string("denied"))
        #expect(
            try daemon.json(["consent", "list", "ann"])["decisions"]?.arrayValue?.first?["verdict"]
                == .string("blocked"))
        // Watching without the token is refused.
        out = try daemon.ctl(["consent", "watch", "ann", "--token", "nope-nope-nope-nope"])
        #expect(out.status == 1 && out.stderr.contains("forbidden"))
    }

    @Test("issue #12: a loopback target a user consented to is refused on its resolved address, every spelling alike")
    func networkPolicy() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(
            world(allowed: 9)
                + """

                [[users]]
                id = "ann"
                kind = "interactive"

                [[sessions]]
                id = "lobby"
                host = "host"
                present = ["host", "ann"]
                """)
        let token = try daemon.json(["users", "token", "ann"])["token"]?.stringValue ?? ""
        // Four spellings of one address: one consent key, one prompt.
        for (index, spelling) in ["127.0.0.1", "127.1", "2130706433", "[::ffff:127.0.0.1]"].enumerated() {
            _ = try daemon.json(["objects", "spawn", "lobby", "o\(index)", "--spawned-by", "ann"])
            _ = try daemon.json(["ws", "connect", "lobby", "o\(index)", "--url", "ws://\(spelling):\(peer.port)/"])
        }
        let answer = try daemon.ctl(["consent", "answer", "ann", "1", "allow", "--token", token])
        #expect(answer.status == 0, "\(answer.stderr)")
        let decisions = try daemon.json(["consent", "list", "ann"])["decisions"]?.arrayValue ?? []
        #expect(decisions.count == 1 && decisions.first?["hostPort"] == .string("127.0.0.1:\(peer.port)"))
        for index in 0..<4 {
            let record = try daemon.waitForRecord("lobby", "o\(index)") {
                $0["lastError"]?.stringValue?.contains("network policy") == true
            }
            #expect(record["url"] == .string("ws://127.0.0.1:\(peer.port)/"))
            #expect(
                record["lastError"]?.stringValue?.contains(
                    "denied by the network policy: 127.0.0.1 is loopback (127.0.0.0/8), denied by default") == true,
                "\(record)")
            #expect(!isOpen(record))
        }
        #expect(daemon.process.waitForStandardError { $0.contains("denied by the network policy") })
    }

    @Test("issue #14 friction: CLI durations, one open count, one warning per failing record, lastError cleared")
    func operatorFriction() throws {
        let peer = try Peer("echo")
        let world = """
            [security]
            allowed_url_hosts = ["127.0.0.1:9", "127.0.0.1:\(peer.port)"]
            [[users]]
            id = "host"
            [[sessions]]
            id = "s"
            host = "host"
            [[sessions.objects]]
            id = "o"
            url = "ws://127.0.0.1:9/"
            connect_retry_interval = "100ms"
            """
        let daemon = try ControlledDaemon(world)
        var out = try daemon.ctl(["ws", "set", "s", "o", "--retry-interval", "150ms"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(try daemon.json(["ws", "show", "s", "o"])["record"]?["connectRetryInterval"] == .number(0.15))
        out = try daemon.ctl(["ws", "set", "s", "o", "--retry-interval", "soon"])
        #expect(out.status == 2 && out.stderr.contains("is not a duration"), "\(out.stderr)")
        // Nothing listens on port 9: attempts fail every 150 ms, one warning in all.
        usleep(1_500_000)
        let warnings = daemon.process.standardError.components(separatedBy: "connection attempt failed:").count - 1
        #expect(warnings == 1, "\(warnings) warnings")
        var record = try daemon.json(["ws", "show", "s", "o"])["record"]!
        #expect(record["lastError"]?.stringValue?.contains("refused") == true, "\(record)")
        _ = try daemon.json(["ws", "set", "s", "o", "--url", "ws://127.0.0.1:\(peer.port)/"])
        record = try daemon.waitForRecord("s", "o", isOpen)
        #expect(record["lastError"] == .null, "\(record)")
        let status = try daemon.ctl(["status"]).stdout
        let line = status.split(separator: "\n").first { $0.hasPrefix("records") } ?? ""
        #expect(line.components(separatedBy: "open").count == 2, "\(line)")  // "open" once
        // A reload that changes connection timing applies it to the open connection and
        // says so; one that changes a size limit says it reaches new connections only.
        try daemon.rewrite(world + "\n[websocket]\nkeepalive_interval = \"5s\"\n")
        #expect(try daemon.ctl(["reload"]).status == 0)
        #expect(
            daemon.process.waitForStandardError {
                $0.contains(
                    "websocket timing changed (keepalive_interval): applied to the 1 open or opening connections")
            })
        try daemon.rewrite(world + "\n[websocket]\nkeepalive_interval = \"5s\"\nmax_frame_size = \"1MiB\"\n")
        #expect(try daemon.ctl(["reload"]).status == 0)
        #expect(
            daemon.process.waitForStandardError {
                $0.contains("websocket settings changed (max_frame_size): connections opened from now on use them")
            })
    }

    @Test("issue #14: a reload's idle timeout reaches a connection that is already open")
    func reloadRetimesOpenConnections() throws {
        let peer = try Peer("silent")
        let world = """
            [security]
            allowed_url_hosts = ["127.0.0.1:\(peer.port)"]
            [[users]]
            id = "host"
            [[sessions]]
            id = "s"
            host = "host"
            [[sessions.objects]]
            id = "o"
            url = "ws://127.0.0.1:\(peer.port)/"
            connect_retry_interval = "1h"
            """
        let daemon = try ControlledDaemon(
            world + "\n[websocket]\nidle_timeout = \"60s\"\nkeepalive_interval = \"0s\"\n")
        #expect(try daemon.waitForRecord("s", "o", isOpen)["isConnected"] == .bool(true))
        // The server stays silent; with 60 s nothing happens. Reloaded to 1 s, the
        // open connection ends within a few seconds, not after the old 60 s.
        try daemon.rewrite(world + "\n[websocket]\nidle_timeout = \"1s\"\nkeepalive_interval = \"0s\"\n")
        let reloaded = ContinuousClock.now
        #expect(try daemon.ctl(["reload"]).status == 0)
        let record = try daemon.waitForRecord("s", "o", timeout: .seconds(10)) { $0["isConnected"] == .bool(false) }
        #expect(record["isConnected"] == .bool(false), "\(record)")
        #expect(ContinuousClock.now - reloaded < .seconds(5))
        #expect(record["lastError"]?.stringValue?.contains("idle timeout") == true, "\(record)")
    }

    @Test("issue #14: a stop shows every subscriber the disconnects, then a final stopping event, then the stream ends")
    func stopEvents() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(
            world(allowed: peer.port)
                + """

                [[sessions]]
                id = "s"
                host = "host"

                [[sessions.objects]]
                id = "a"
                url = "ws://127.0.0.1:\(peer.port)/"

                [[sessions.objects]]
                id = "b"
                url = "ws://127.0.0.1:\(peer.port)/"
                """)
        _ = try daemon.waitForRecord("s", "a", isOpen)
        _ = try daemon.waitForRecord("s", "b", isOpen)
        let follower = ChildProcess(
            "wshostctl",
            ["--socket", daemon.socket, "--json", "events", "--follow", "--type", "disconnected", "--type", "stopping"])
        try follower.start()
        defer { follower.signal(SIGKILL) }
        // A subscriber filtered to one object gets the end of the stream too.
        let narrow = ChildProcess(
            "wshostctl", ["--socket", daemon.socket, "--json", "events", "--follow", "--object", "a"])
        try narrow.start()
        defer { narrow.signal(SIGKILL) }
        usleep(300_000)
        #expect(daemon.stop() == 0)
        #expect(follower.wait(timeout: .seconds(5)) == 0)
        #expect(narrow.wait(timeout: .seconds(5)) == 0)
        let narrowTypes = narrow.standardOutput.split(separator: "\n").compactMap {
            try? JSON.parse(String($0))["type"]?.stringValue
        }
        #expect(narrowTypes.suffix(2) == ["disconnected", "stopping"], "\(narrow.standardOutput)")
        let types = follower.standardOutput.split(separator: "\n").compactMap {
            try? JSON.parse(String($0))["type"]?.stringValue
        }
        #expect(types == ["disconnected", "disconnected", "stopping"], "\(follower.standardOutput)")
        #expect(follower.standardOutput.contains("\"code\":1001"))
    }

    @Test("a second local uid: refused as an operator, allowed to list its own consent with its token")
    func unauthorizedUID() throws {
        let daemon = try ControlledDaemon(
            world(allowed: 9) + "\n[[users]]\nid = \"ann\"\nkind = \"interactive\"\n", socketMode: "0666")
        let token = try daemon.json(["users", "token", "ann"])["token"]?.stringValue ?? ""
        let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        let ctl = ChildProcess.productsDirectory.appendingPathComponent("wshostctl").path
        var out = try run("/usr/bin/setpriv", nobody + [ctl, "--socket", daemon.socket, "status"])
        #expect(out.status == 1)
        #expect(
            out.stderr.contains("uid 65534") && out.stderr.contains("may not operate wshostd")
                && out.stderr.contains("(forbidden)"))
        out = try run("/usr/bin/setpriv", nobody + [ctl, "--socket", daemon.socket, "users", "add", "mallory"])
        #expect(out.status == 1)
        #expect(try daemon.json(["users", "list"])["users"]?.arrayValue?.count == 2)  // nothing added
        out = try run("/usr/bin/setpriv", nobody + [ctl, "--socket", daemon.socket, "users", "token", "ann"])
        #expect(out.status == 1)  // tokens are shown to operators only
        out = try run(
            "/usr/bin/setpriv", nobody + [ctl, "--socket", daemon.socket, "consent", "list", "ann", "--token", token])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(
            daemon.process.waitForStandardError { $0.contains("control request refused") && $0.contains("uid 65534") })
    }

    @Test("local users who are not operators cannot lock operators out: a reserve, and a cap per uid (issue #12 row 6)")
    func operatorReserve() throws {
        let daemon = try ControlledDaemon(
            world(allowed: 9), socketMode: "0666",
            control: "max_clients = 40\noperator_reserve = 8\nmax_clients_per_uid = 16")
        // Each holder opens `count` connections, says hello on each, keeps the
        // served ones open and prints "served refused".
        let holder = """
            import socket, sys, time
            path, count = sys.argv[1], int(sys.argv[2])
            held, served, refused = [], 0, 0
            for _ in range(count):
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                s.sendall(b'{"id":1,"op":"hello"}\\n')
                line = s.makefile('rb').readline()
                if b'too_many_clients' in line: refused += 1
                elif b'"ok":true' in line: served += 1; held.append(s)
            print(served, refused, flush=True)
            time.sleep(60)
            """
        func hold(uid: Int, _ count: Int) throws -> ChildProcess {
            let child = ChildProcess(
                executable: URL(fileURLWithPath: "/usr/bin/setpriv"),
                [
                    "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--", "/usr/bin/python3", "-c", holder,
                    daemon.socket, "\(count)",
                ])
            try child.start()
            return child
        }
        let first = try hold(uid: 65534, 100)
        defer { first.signal(SIGKILL) }
        #expect(first.waitForStandardOutput(timeout: .seconds(20)) { $0.contains("16 84") }, "\(first.standardOutput)")
        // A second uid gets the rest of what is shared (40 − 8 reserved − 16).
        let second = try hold(uid: 65533, 20)
        defer { second.signal(SIGKILL) }
        #expect(second.waitForStandardOutput(timeout: .seconds(20)) { $0.contains("16 4") }, "\(second.standardOutput)")
        let third = try hold(uid: 65532, 5)
        defer { third.signal(SIGKILL) }
        #expect(third.waitForStandardOutput(timeout: .seconds(20)) { $0.contains("0 5") }, "\(third.standardOutput)")
        // The operators' reserve is still there.
        let status = try daemon.json(["status"])
        #expect(status["controlClients"]?.intValue == 33)
        #expect(daemon.process.waitForStandardError { $0.contains("uid 65534 holds 16 control connections already") })
    }

    @Test("the event stream: ordered sequence numbers, filters, resume with --since, history gone")
    func eventStream() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(world(allowed: peer.port), control: "event_history = 40")
        let follower = ChildProcess("wshostctl", ["--socket", daemon.socket, "--json", "events", "--follow"])
        try follower.start()
        defer { follower.signal(SIGKILL) }
        usleep(300_000)
        _ = try daemon.json(["sessions", "start", "s", "--host", "host"])
        _ = try daemon.json(["objects", "spawn", "s", "o"])
        _ = try daemon.json(["ws", "connect", "s", "o", "--url", "ws://127.0.0.1:\(peer.port)/"])
        _ = try daemon.waitForRecord("s", "o", isOpen)
        for index in 0..<5 { #expect(try daemon.ctl(["ws", "send", "s", "o", "--text", "m\(index)"]).status == 0) }
        _ = try daemon.waitForRecord("s", "o") { $0["messagesIn"]?.intValue == 5 }

        let all = try daemon.ctl(["--json", "events"]).stdout.split(separator: "\n").map { try JSON.parse(String($0)) }
        let seqs = all.compactMap { $0["seq"]?.intValue }
        #expect(seqs.count > 10)
        #expect(seqs == Array(seqs[0]...seqs[seqs.count - 1]))  // consecutive, in order
        // Causal order within the record: asked → decided → connected → sent → received.
        let types = all.filter { $0["object"] == .string("o") }.compactMap { $0["type"]?.stringValue }
        let firstIndex = { (type: String) in types.firstIndex(of: type) ?? Int.max }
        #expect(firstIndex("consent-asked") < firstIndex("consent-decided"))
        #expect(firstIndex("consent-decided") < firstIndex("connected"))
        #expect(firstIndex("connected") < firstIndex("send-start"))
        #expect(firstIndex("sent") < firstIndex("received"))
        let texts = all.filter { $0["type"] == .string("received") }.compactMap { $0["text"]?.stringValue }
        #expect(texts == ["m0", "m1", "m2", "m3", "m4"])

        // The live follower saw the same events, in the same order.
        #expect(follower.waitForStandardOutput { $0.split(separator: "\n").count >= all.count })
        let followed = follower.standardOutput.split(separator: "\n").compactMap {
            try? JSON.parse(String($0))["seq"]?.intValue
        }
        #expect(Array(followed.prefix(seqs.count)) == seqs)

        // Resume: exactly what followed; a filter narrows it.
        let middle = seqs[seqs.count / 2]
        let resumed = try daemon.ctl(["--json", "events", "--since", "\(middle)"]).stdout.split(separator: "\n")
            .compactMap { try JSON.parse(String($0))["seq"]?.intValue }
        #expect(resumed == seqs.filter { $0 > middle })
        let onlySent = try daemon.ctl(["--json", "events", "--since", "\(seqs[0])", "--type", "sent"]).stdout
            .split(separator: "\n")
        #expect(onlySent.count == 5)

        // Older than the kept history: refused with a clear message.
        for index in 0..<40 { _ = try daemon.ctl(["ws", "send", "s", "o", "--text", "x\(index)"]) }
        let gone = try daemon.ctl(["events", "--since", "1"])
        #expect(gone.status == 1 && gone.stderr.contains("(history_gone)"))
    }

    @Test(
        "issue #12 row 10: the history is bounded in bytes; a backlog larger than the client buffer is streamed, not dropped"
    )
    func largeBacklog() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(
            world(allowed: peer.port), control: "client_buffer = \"64KiB\"\nevent_history_size = \"1MiB\"")
        // Message events are journaled while someone subscribes.
        let subscriber = try RawControlClient(path: daemon.socket)
        #expect(
            try subscriber.request(#"{"id":1,"op":"subscribe","args":{"types":["world-changed"]}}"#)["ok"]
                == .bool(true))
        _ = try daemon.json(["sessions", "start", "s", "--host", "host"])
        _ = try daemon.json(["objects", "spawn", "s", "o"])
        _ = try daemon.json(["ws", "connect", "s", "o", "--url", "ws://127.0.0.1:\(peer.port)/"])
        for _ in 0..<100 where !isOpen(try daemon.json(["ws", "show", "s", "o"])["record"]!) { usleep(20_000) }
        let text = String(repeating: "y", count: 30_000)
        for _ in 0..<60 { _ = try daemon.ctl(["ws", "send", "s", "o", "--text", text]) }
        for _ in 0..<100 where try daemon.json(["ws", "show", "s", "o"])["record"]!["messagesIn"]?.intValue != 60 {
            usleep(20_000)
        }
        // The whole kept history, about 1 MiB, through a 64 KiB client buffer.
        let out = try daemon.ctl(["--json", "events", "--since", "0"])
        #expect(out.status == 0, "\(out.stderr)")
        let lines = out.stdout.split(separator: "\n")
        let seqs = lines.compactMap { try? JSON.parse(String($0))["seq"]?.intValue }
        #expect(seqs.count == lines.count && seqs.count > 20)
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
        #expect(out.stdout.utf8.count > 200 << 10 && out.stdout.utf8.count < 3 << 20, "\(out.stdout.utf8.count)")
        #expect(seqs.first ?? 0 > 1)  // the oldest fell out: bounded by bytes, not by the 10000 count
        #expect(!daemon.process.standardError.contains("control client dropped"))
        #expect(seqs.last == seqs.first.map { $0 + seqs.count - 1 })  // nothing missing
    }

    @Test("a subscriber that never reads is dropped; another keeps receiving; the daemon keeps serving")
    func stuckSubscriber() throws {
        // 9000 messages: under the inbound queue limit, so every one is delivered as an event.
        let peer = try Peer("flood", "9000")
        let daemon = try ControlledDaemon(
            world(allowed: peer.port) + "\n[websocket]\nconnect_retry_interval = \"60s\"\n",
            control: "client_buffer = \"256KiB\"")
        let stuck = try RawControlClient(path: daemon.socket)
        let subscribed = try stuck.request(#"{"id":1,"op":"subscribe","args":{"types":["received"]}}"#)
        #expect(subscribed["ok"] == .bool(true))
        // `stuck` reads nothing from here on.
        let follower = ChildProcess(
            "wshostctl", ["--socket", daemon.socket, "--json", "events", "--follow", "--type", "disconnected"])
        try follower.start()
        defer { follower.signal(SIGKILL) }
        usleep(300_000)
        _ = try daemon.json(["sessions", "start", "s", "--host", "host"])
        _ = try daemon.json(["objects", "spawn", "s", "flood"])
        _ = try daemon.json(["ws", "connect", "s", "flood", "--url", "ws://127.0.0.1:\(peer.port)/"])
        #expect(
            daemon.process.waitForStandardError(timeout: .seconds(30)) {
                $0.contains("control client dropped: more than 262144 bytes unread")
            })
        #expect(follower.waitForStandardOutput(timeout: .seconds(30)) { $0.contains("\"type\":\"disconnected\"") })
        let record = try daemon.json(["ws", "show", "s", "flood"])["record"]!
        #expect(record["messagesIn"]?.intValue == 9_000)
        #expect(record["floods"]?.intValue == 0)
        #expect(try daemon.json(["status"])["state"] == .string("running"))
        #expect(follower.isRunning)
    }

    @Test("bad requests each get their error and change nothing; long lines; too many clients")
    func badRequests() throws {
        let daemon = try ControlledDaemon(
            world(allowed: 9)
                + """

                [[users]]
                id = "ann"
                kind = "interactive"

                [[sessions]]
                id = "lobby"
                host = "host"

                [[sessions.objects]]
                id = "o"
                url = "ws://127.0.0.1:9/"

                [[sessions.objects]]
                id = "bare"
                """,
            control: "max_request_size = \"1KiB\"")
        // The world as declared (the record's status moves on its own: it retries port 9).
        func declared() throws -> JSON {
            var object = try daemon.json(["objects", "show", "lobby", "o"])["object"]?.objectValue ?? [:]
            let record = object["record"] ?? .null
            object["record"] = .object(
                ["url", "enabled", "accessReason", "connectRetryInterval", "handlingUser", "handlingUserPinned"]
                    .reduce(into: [:]) { $0[$1] = record[$1] })
            return .object(object)
        }
        let before = try declared()
        let beforeUsers = try daemon.json(["users", "list"])
        let client = try RawControlClient(path: daemon.socket)
        let table: [(String, String)] = [
            ("{not json", "parse_error"), ("42", "invalid_request"), (#"{"id":1,"op":"explode"}"#, "unknown_op"),
            (#"{"id":2,"op":"users.add","args":{"user":7}}"#, "invalid_args"),
            (#"{"id":3,"op":"ws.connect","args":{"session":"lobby"}}"#, "invalid_args"),
            (#"{"id":4,"op":"ws.connect","args":{"session":"lobby","object":"nope"}}"#, "not_found"),
            (#"{"id":5,"op":"users.join","args":{"session":"lobby","user":"ghost"}}"#, "not_found"),
            (#"{"id":6,"op":"users.add","args":{"user":"ann"}}"#, "conflict"),
            (#"{"id":7,"op":"ws.set","args":{"session":"lobby","object":"o","url":"ftp://x/"}}"#, "invalid_args"),
            (#"{"id":8,"op":"ws.send","args":{"session":"lobby","object":"o","text":"x"}}"#, "send_failed"),
            (
                #"{"id":9,"op":"consent.answer","args":{"user":"ann","prompt":1,"answer":"allow","token":"x"}}"#,
                "forbidden"
            ),
            (#"{"id":10,"op":"consent.answer","args":{"user":"ann","prompt":1,"answer":"allow"}}"#, "forbidden"),
            (
                #"{"id":11,"op":"objects.react","args":{"session":"lobby","object":"o","on":"received","forward":"zz"}}"#,
                "not_found"
            ),
            (#"{"id":12,"op":"subscribe","args":{"since":-3}}"#, "invalid_args"),
            ("{\"id\":13,\"op\":\"status\",\"args\":{\"x\":\"\u{00}\"}}", "parse_error"),
            // Issue #12: numbers no Int holds (row 1, from any peer: decoded before
            // access is checked), a retry interval that rounds to 0 (row 3), and a
            // refused Connect on an object without a record (row 7).
            (#"{"id":14,"op":"subscribe","args":{"since":1e300}}"#, "invalid_args"),
            (#"{"id":15,"op":"consent.answer","args":{"user":"ann","prompt":1e300,"answer":"allow"}}"#, "invalid_args"),
            (
                #"{"id":16,"op":"ws.set","args":{"session":"lobby","object":"o","connectRetryInterval":0.0004}}"#,
                "invalid_args"
            ),
            (#"{"id":17,"op":"ws.connect","args":{"session":"lobby","object":"bare","user":"ghost"}}"#, "not_found"),
        ]
        for (line, expected) in table {
            let response = try client.request(line)
            #expect(response["ok"] == .bool(false), "\(line)")
            #expect(response["error"]?["code"] == .string(expected), "\(line) → \(response)")
            #expect(response["error"]?["message"]?.stringValue?.isEmpty == false)
        }
        // An over-long line: one error, the rest of it skipped, the connection still serves.
        let long = #"{"id":99,"op":"status","args":{"pad":""# + String(repeating: "x", count: 5000) + "\"}}"
        let response = try client.request(long)
        #expect(response["error"]?["code"] == .string("line_too_long"))
        #expect(try client.request(#"{"id":100,"op":"status"}"#)["ok"] == .bool(true))
        // A slow writer: a request in pieces, with pauses, is answered once it is whole.
        client.send(#"{"id":101,"op":"#)
        usleep(100_000)
        client.send(#""status"}"#)
        usleep(100_000)
        #expect(try client.request("")["id"] == .int(101))
        // Nothing changed.
        #expect(try daemon.json(["objects", "show", "lobby", "bare"])["object"]?["record"] == .null)
        #expect(try declared() == before)
        #expect(try daemon.json(["users", "list"]) == beforeUsers)

        // Hundreds of clients at once: past max_clients (256) each extra one gets
        // too_many_clients; every other one is served. First wait until the CLI
        // connections above are gone (the daemon sees their EOF asynchronously),
        // asking over `client`, which is then the only one.
        for _ in 0..<100 {
            if try client.request(#"{"id":102,"op":"status"}"#)["result"]?["controlClients"]?.intValue == 1 { break }
            usleep(50_000)
        }
        var clients: [RawControlClient] = []
        for _ in 0..<300 { clients.append(try RawControlClient(path: daemon.socket)) }
        var refused = 0
        var served = 0
        for extra in clients {
            extra.send(#"{"id":1,"op":"hello"}"# + "\n")
            let line = extra.readLine() ?? ""
            if line.contains("too_many_clients") { refused += 1 }
            if line.contains(#""ok":true"#) { served += 1 }
        }
        #expect(refused == 300 - 255)  // 256 allowed, one of them is `client`
        #expect(served == 255)
        clients.removeAll()
        usleep(200_000)
        #expect(try daemon.json(["status"])["controlClients"]?.intValue == 2)  // `client` and this one
        #expect(daemon.process.isRunning)
    }
}

/// Runs a program to completion; (status, stdout, stderr).
private func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let child = ChildProcess(executable: URL(fileURLWithPath: path), arguments)
    try child.start()
    let status = child.wait()
    return (status, child.standardOutput, child.standardError)
}
