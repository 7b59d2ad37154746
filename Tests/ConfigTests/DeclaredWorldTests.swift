import Testing
import WebSocketProtocol
import World

@testable import Config

private let worldText = """
    [[users]]
    id = "host"
    name = "Headless host"
    kind = "headless"

    [[users]]
    id = "ann"
    kind = "interactive"
    allowed_hosts = ["127.0.0.1:9000", "wss://feed.example"]
    blocked_hosts = ["evil.example:443"]

    [[sessions]]
    id = "lobby"
    name = "Lobby"
    host = "host"
    present = ["host", "ann"]

    [[sessions.objects]]
    id = "echo"
    url = "ws://127.0.0.1:9000/echo"
    access_reason = "echo loop"
    connect_retry_interval = "2s"
    compression = "on"

    [[sessions.objects.reactions]]
    on = "received"
    echo = true

    [[sessions.objects]]
    id = "greeter"
    spawned_by = "ann"
    url = "ws://127.0.0.1:9000/greet"
    handling_user = "ann"

    [[sessions.objects.reactions]]
    on = "connected"
    send = "hello from {data}"

    [[sessions.objects.reactions]]
    on = "received"
    forward = "echo"

    [[sessions.objects]]
    id = "lamp"
    """

@Suite("The declared world in the config file")
struct DeclaredWorldTests {
    @Test("users, sessions, objects, records and reactions become world changes in file order")
    func valid() throws {
        let world = try DaemonConfig.parse(worldText, file: "w.toml").world
        #expect(
            world.users == [
                User(id: "host", name: "Headless host", kind: .headless),
                User(id: "ann", name: "ann", kind: .interactive),
            ])
        #expect(world.sessions == [Session(id: "lobby", name: "Lobby", host: "host", present: ["host", "ann"])])
        let objects = try #require(world.objects["lobby"])
        #expect(objects.map(\.id) == ["echo", "greeter", "lamp"])
        #expect(
            objects[0].record
                == RecordSettings(
                    url: try WebSocketURL.parse("ws://127.0.0.1:9000/echo").get(), accessReason: "echo loop",
                    connectRetryInterval: .seconds(2), compression: .offer(.noContextTakeover)))
        #expect(objects[1].record?.compression == nil)  // the daemon's [websocket] compression
        #expect(objects[0].reactions == [Reaction(on: .received, .echo)])
        #expect(objects[1].record?.handlingUser == .pinned("ann"))
        #expect(objects[1].spawnedBy == "ann")
        #expect(
            objects[1].reactions == [
                Reaction(on: .connected, .send(template: "hello from {data}")),
                Reaction(on: .received, .forward(to: "echo")),
            ])
        #expect(objects[2].record == nil)
        #expect(world.changes.count == 2 + 1 + 3)
        let declared = "declared in the config file"
        #expect(
            world.decisions == [
                "ann": [
                    AccessKey(host: "127.0.0.1", port: 9000): AccessDecision(verdict: .allowed, reason: declared),
                    AccessKey(host: "feed.example", port: 443): AccessDecision(verdict: .allowed, reason: declared),
                    AccessKey(host: "evil.example", port: 443): AccessDecision(verdict: .blocked, reason: declared),
                ]
            ])
    }

    @Test(
        "bad declarations name the file, line and key path",
        arguments: [
            (
                "[[users]]\nid = \"a\"\n[[sessions]]\nid = \"s\"\nhost = \"nobody\"\n",
                "bad.toml:5: sessions[0].host: no [[users]] entry has id \"nobody\""
            ),
            (
                "[[users]]\nid = \"a\"\nkind = \"robot\"\n",
                "bad.toml:3: users[0].kind: expected one of \"headless\", \"interactive\", found \"robot\""
            ),
            (
                "[[users]]\nid = \"a\"\n[[sessions]]\nid = \"s\"\nhost = \"a\"\n[[sessions.objects]]\nid = \"o\"\nurl = \"http://x\"\n",
                "bad.toml:8: sessions[0].objects[0].url: the URL must start with ws:// or wss://"
            ),
            (
                "[[users]]\nid = \"a\"\n[[sessions]]\nid = \"s\"\nhost = \"a\"\n[[sessions.objects]]\nid = \"o\"\nurl = \"ws://h:1\"\n[[sessions.objects.reactions]]\non = \"received\"\nforward = \"ghost\"\n",
                "bad.toml:11: sessions[0].objects[0].reactions[0].forward: expected the id of another object in session s, found \"ghost\""
            ),
            (
                "[[users]]\nid = \"a\"\n[[sessions]]\nid = \"s\"\nhost = \"a\"\n[[sessions.objects]]\nid = \"o\"\nurl = \"ws://h:1\"\n[[sessions.objects.reactions]]\necho = true\nsend = \"x\"\n",
                "bad.toml:9: sessions[0].objects[0].reactions[0]: a reaction needs exactly one of echo = true, send = \"text\", forward = \"object\""
            ),
            (
                "[[users]]\nid = \"a\"\n[[sessions]]\nid = \"s\"\nhost = \"a\"\n[[sessions.objects]]\nid = \"o\"\nenabled = false\n",
                "bad.toml:8: sessions[0].objects[0].enabled: only objects with a url have a WebSocket Client record"
            ),
            ("[[users]]\nid = \"a\"\n[[users]]\nid = \"a\"\n", "bad.toml:4: users[1].id: user a is declared twice"),
            ("users = 3\n", "bad.toml:1: users: expected an array of tables ([[users]]), found integer 3"),
            (
                "[[users]]\nid = \"a\"\nallowed_hosts = [\"example.com\"]\n",
                "bad.toml:3: users[0].allowed_hosts: element 0 (\"example.com\"): no port; write \"host:port\" (the port is required), or a ws:// or wss:// URL"
            ),
        ])
    func invalid(text: String, message: String) {
        do {
            _ = try DaemonConfig.parse(text, file: "bad.toml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description == message)
        }
    }
}

@Suite("Reloading the declared world: the diff")
struct DeclaredWorldDiffTests {
    @Test("objects added, changed and removed; sessions added, changed and closed; users added")
    func diff() throws {
        let old = try DaemonConfig.parse(worldText, file: "old.toml").world
        var new = old
        new.users.append(User(id: "bob", name: "bob", kind: .interactive))
        var objects = new.objects["lobby"]!
        objects.removeAll { $0.id == "lamp" }
        objects[0].record?.accessReason = "changed"
        objects.append(WorldObject(id: "fresh", name: "Fresh"))
        new.objects["lobby"] = objects
        new.sessions.append(Session(id: "annex", name: "Annex", host: "host", present: ["host"]))
        #expect(
            new.changes(from: old) == [
                .addUser(User(id: "bob", name: "bob", kind: .interactive)), .remove("lobby", "lamp"),
                .remove("lobby", "echo"), .spawn("lobby", objects[0]),
                .spawn("lobby", WorldObject(id: "fresh", name: "Fresh")),
                .startSession(Session(id: "annex", name: "Annex", host: "host", present: ["host"])),
            ])
        #expect(old.changes(from: old) == [])
        var moved = old
        moved.sessions[0].host = "ann"
        #expect(moved.changes(from: old).prefix(2) == [.closeSession("lobby"), .startSession(moved.sessions[0])])
        #expect(DeclaredWorld().changes(from: old) == [.closeSession("lobby")])
    }
}
