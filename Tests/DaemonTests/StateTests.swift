import Control
import Foundation
import Glibc
import JSONValue
import TestSupport
import Testing

/// The world as wshostctl shows it, without what moves on its own (status,
/// counters, times), for before/after comparisons.
private func declaredView(_ daemon: ControlledDaemon, session: String) throws -> JSON {
    let statusKeys = [
        "state", "isConnected", "retryAt", "lastError", "connectedAt", "disconnectedAt", "messagesIn", "messagesOut",
        "bytesIn", "bytesOut", "floods", "dropped",
    ]
    var objects: [JSON] = []
    for object in try daemon.json(["objects", "list", session])["objects"]?.arrayValue ?? [] {
        var members = object.objectValue ?? [:]
        if var record = members["record"]?.objectValue {
            for key in statusKeys { record[key] = nil }
            members["record"] = .object(record)
        }
        objects.append(.object(members))
    }
    return .object([
        "objects": .array(objects), "users": try daemon.json(["users", "list"])["users"] ?? .null,
        "sessions": try daemon.json(["sessions", "list"])["sessions"] ?? .null,
    ])
}

private func open(_ record: JSON) -> Bool { record["isConnected"]?.boolValue == true }

@Suite("Durable state: kill -9 loses nothing acknowledged; config and state merge; a failing disk", .serialized)
struct StateTests {
    @Test("kill -9, restart: the world (pinned users, reactions), decisions and tokens come back; records reconnect")
    func crashRestore() throws {
        let peer = try Peer("echo")
        let asked = try Peer("echo")
        let daemon = try ControlledDaemon(
            """
            [security]
            allowed_url_hosts = ["127.0.0.1:\(peer.port)"]
            allowed_networks = ["127.0.0.0/8"]

            [[users]]
            id = "host"

            [[users]]
            id = "ann"
            kind = "interactive"
            """)
        let url = "ws://127.0.0.1:\(peer.port)/"
        for args in [
            ["users", "add", "bob"], ["sessions", "start", "s", "--host", "host"], ["users", "join", "s", "ann"],
            ["users", "join", "s", "bob"], ["objects", "spawn", "s", "greeter", "--spawned-by", "bob"],
            ["ws", "set", "s", "greeter", "--url", url, "--retry-interval", "0.5", "--access-reason", "says hi"],
            ["objects", "react", "s", "greeter", "--on", "connected", "--send", "hi"],
            ["objects", "spawn", "s", "pinned"], ["ws", "connect", "s", "pinned", "--url", url, "--user", "host"],
            ["objects", "spawn", "s", "badge"], ["objects", "wear", "s", "badge", "ann"],
            ["ws", "set", "s", "badge", "--url", "ws://127.0.0.1:\(asked.port)/"],
        ] {
            let out = try daemon.ctl(args)
            #expect(out.status == 0, "\(args): \(out.stderr)")
        }
        // ann allows the badge's host through her token.
        let token = try daemon.json(["users", "token", "ann"])["token"]?.stringValue ?? ""
        let pending = try daemon.json(["consent", "list", "ann"])["pending"]?.arrayValue?.first?["prompt"]?.intValue
        let answered = try daemon.ctl(["consent", "answer", "ann", "\(pending ?? 0)", "allow", "--token", token])
        #expect(answered.status == 0, "\(answered.stderr)")
        for object in ["greeter", "pinned", "badge"] { #expect(open(try daemon.waitForRecord("s", object, open))) }
        let before = try declaredView(daemon, session: "s")
        let decisionsBefore = try daemon.json(["consent", "list", "ann"])["decisions"]

        try daemon.crashAndRestart()
        #expect(daemon.process.standardError.contains("state restored"))
        for object in ["greeter", "pinned", "badge"] {
            #expect(open(try daemon.waitForRecord("s", object, open)), "\(object) reconnected")
        }
        #expect(try declaredView(daemon, session: "s") == before)
        #expect(try daemon.json(["consent", "list", "ann"])["decisions"] == decisionsBefore)
        #expect(try daemon.json(["users", "token", "ann"])["token"]?.stringValue == token)
        // The badge's host was not asked again: the stored decision answered.
        #expect(try daemon.json(["consent", "list", "ann"])["pending"]?.arrayValue == [])
        let pinned = try daemon.json(["ws", "show", "s", "pinned"])["record"]
        #expect(pinned?["handlingUserPinned"] == .bool(true) && pinned?["handlingUser"] == .string("host"))
        #expect(try daemon.json(["objects", "reactions", "s", "greeter"])["reactions"]?.arrayValue?.count == 1)
        #expect(daemon.stop() == 0)
    }

    @Test("merge rule: run-time edits survive a restart until the config changes that item; run-time items stay")
    func mergeRule() throws {
        let peer = try Peer("echo")
        func world(_ objects: String) -> String {
            """
            [security]
            allowed_url_hosts = ["127.0.0.1:\(peer.port)"]

            [[users]]
            id = "host"

            [[sessions]]
            id = "lobby"
            host = "host"
            \(objects)
            """
        }
        let declared = "\n[[sessions.objects]]\nid = \"decl\"\nurl = \"ws://127.0.0.1:\(peer.port)/a\"\n"
        let daemon = try ControlledDaemon(world(declared))
        #expect(try daemon.ctl(["ws", "set", "lobby", "decl", "--access-reason", "edited at run time"]).status == 0)
        #expect(try daemon.ctl(["objects", "spawn", "lobby", "rt"]).status == 0)

        // Same config: the run-time edit and the run-time object stay.
        try daemon.crashAndRestart()
        var record = try daemon.json(["ws", "show", "lobby", "decl"])["record"]
        #expect(record?["accessReason"] == .string("edited at run time"))
        #expect(try daemon.ctl(["objects", "show", "lobby", "rt"]).status == 0)

        // The config changes the declared object: the config's version wins; rt stays.
        try daemon.rewrite(world(declared.replacingOccurrences(of: "/a\"", with: "/b\"")))
        try daemon.crashAndRestart()
        record = try daemon.json(["ws", "show", "lobby", "decl"])["record"]
        #expect(record?["url"] == .string("ws://127.0.0.1:\(peer.port)/b"))
        #expect(record?["accessReason"] == .string(""))
        #expect(try daemon.ctl(["objects", "show", "lobby", "rt"]).status == 0)

        // The config drops it: gone after the restart; rt still there.
        try daemon.rewrite(world(""))
        try daemon.crashAndRestart()
        #expect(try daemon.ctl(["objects", "show", "lobby", "decl"]).status == 1)
        #expect(try daemon.ctl(["objects", "show", "lobby", "rt"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    @Test("a full disk: changes are refused with a clear error, connections live on, STATUS degraded; then recovery")
    func fullDisk() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(
            """
            [security]
            allowed_url_hosts = ["127.0.0.1:\(peer.port)"]

            [[users]]
            id = "host"

            [[sessions]]
            id = "lobby"
            host = "host"

            [[sessions.objects]]
            id = "live"
            url = "ws://127.0.0.1:\(peer.port)/"
            """, tmpfsState: 1024)
        #expect(open(try daemon.waitForRecord("lobby", "live", open)))
        // Fill the state directory's file system.
        #expect(
            try daemon.inDaemonNamespace(
                "dd if=/dev/zero of=\(daemon.directory)/state/filler bs=1k count=4096 2>/dev/null; true") == 0)
        var refused = try daemon.ctl(["users", "add", "x1"])
        for index in 2...20 where refused.status == 0 {  // SQLite may fit a few rows in pages it has
            refused = try daemon.ctl(["users", "add", "x\(index)"])
        }
        #expect(refused.status == 1)
        #expect(
            refused.stderr.contains("could not be stored, so it was not made")
                && refused.stderr.contains("(unavailable)"))
        let status = try daemon.json(["status"])
        #expect(status["status"]?.stringValue?.contains("degraded: state not stored") == true)
        #expect(
            try daemon.json(["users", "list"])["users"]?.arrayValue?.contains { $0["id"] == .string("x20") } == false)
        // The live connection is untouched.
        #expect(try daemon.ctl(["ws", "send", "lobby", "live", "--text", "still here"]).status == 0)
        #expect(open(try daemon.json(["ws", "show", "lobby", "live"])["record"] ?? .null))

        // Space again: the probe clears the state; changes are accepted.
        #expect(try daemon.inDaemonNamespace("rm -f \(daemon.directory)/state/filler") == 0)
        #expect(
            daemon.process.waitForStandardError(timeout: .seconds(15)) { $0.contains("state store writable again") })
        #expect(try daemon.json(["status"])["status"]?.stringValue?.contains("degraded") == false)
        #expect(try daemon.ctl(["users", "add", "after"]).status == 0)
        #expect(daemon.stop() == 0)
    }
}
