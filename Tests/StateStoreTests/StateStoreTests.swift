import Foundation
import GRDB
import JSONValue
import Testing
import WebSocketProtocol
import World

@testable import StateStore

private func temporaryDirectory() -> String {
    var template = Array("/tmp/wshostd-state-XXXXXX".utf8CString)
    return String(cString: mkdtemp(&template)!)
}

private let ticker = WorldObject(
    id: "ticker", name: "Ticker \"1\"", wornBy: "ann", definedUser: nil, spawnedBy: "bob", interactingUser: "cy",
    record: RecordSettings(
        url: try! WebSocketURL.parse("wss://feed.example:8443/x?y=1").get(), handlingUser: .pinned("ann"),
        accessReason: "Shows the feed", connectRetryInterval: .milliseconds(2500), enabled: false,
        compression: .offer(DeflateOffer(clientMaxWindowBits: 15, serverMaxWindowBits: 10))),
    reactions: [
        Reaction(on: .connected, .send(template: "hi {data}")), Reaction(on: .received, .echo),
        Reaction(on: .disconnected, .forward(to: "other")),
    ])

@Suite("WorldCoding: world values as the store writes them")
struct WorldCodingTests {
    /// One of every kind of change (both forms where a value is optional).
    static let changes: [WorldChange] = [
        .addUser(User(id: "ann", name: "Ann ✓", kind: .interactive)),
        .startSession(Session(id: "lobby", name: "Lobby", host: "host", present: ["host", "ann"])),
        .closeSession("lobby"), .join("lobby", "ann"), .leave("lobby", "ann"), .setHost("lobby", "bob"),
        .spawn("lobby", ticker), .spawn("lobby", WorldObject(id: "plain", name: "plain")), .remove("lobby", "ticker"),
        .wear("lobby", "ticker", by: "ann"), .wear("lobby", "ticker", by: nil), .grab("lobby", "ticker", by: "cy"),
        .grab("lobby", "ticker", by: nil), .defineUser("lobby", "ticker", "bob"), .defineUser("lobby", "ticker", nil),
        .setRecord("lobby", "ticker", ticker.record), .setRecord("lobby", "ticker", nil),
        .connect("lobby", "ticker", url: try! WebSocketURL.parse("ws://[::1]:9000/a").get(), user: "ann"),
        .connect("lobby", "ticker", url: nil, user: nil), .setReactions("lobby", "ticker", ticker.reactions),
        .setReactions("lobby", "ticker", []),
    ]

    @Test("every kind of world change reads back as written (the fleet's change log)")
    func changes() throws {
        for change in Self.changes {
            let text = WorldCoding.encode(change).description
            #expect(try WorldCoding.change(try JSON.parse(text)) == change, "\(text)")
        }
        #expect(throws: WorldCoding.Failure.self) { try WorldCoding.change(try JSON.parse(#"{"op":"explode"}"#)) }
        #expect(throws: WorldCoding.Failure.self) {
            try WorldCoding.change(try JSON.parse(#"{"op":"join","session":"s"}"#))
        }
    }

    @Test("users, sessions and objects (record, pinned user, reactions) read back as written")
    func roundTrip() throws {
        let user = User(id: "ann", name: "Ann ✓", kind: .interactive)
        #expect(try WorldCoding.user(try JSON.parse(WorldCoding.encode(user).description)) == user)
        let session = Session(id: "lobby", name: "Lobby", host: "host", present: ["host", "ann"])
        #expect(try WorldCoding.session(try JSON.parse(WorldCoding.encode(session).description)) == session)
        #expect(try WorldCoding.object(try JSON.parse(WorldCoding.encode(ticker).description)) == ticker)
        let bare = WorldObject(id: "plain", name: "plain")
        #expect(try WorldCoding.object(try JSON.parse(WorldCoding.encode(bare).description)) == bare)
    }

    @Test("damaged documents are refused with a reason, not half-read")
    func damaged() {
        #expect(throws: WorldCoding.Failure.self) { try WorldCoding.user(.object(["id": .string("x")])) }
        #expect(throws: WorldCoding.Failure.self) {
            try WorldCoding.user(.object(["id": .string("x"), "name": .string("x"), "kind": .string("robot")]))
        }
        #expect(throws: WorldCoding.Failure.self) {
            try WorldCoding.record(
                .object([
                    "url": .string("http://x/"), "accessReason": .string(""), "enabled": .bool(true),
                    "connectRetryIntervalNs": .int(1),
                ]))
        }
        #expect(throws: WorldCoding.Failure.self) { try WorldCoding.reaction(.object(["on": .string("received")])) }
    }
}

@Suite("StateStore: SQLite through GRDB, one transaction per change", .serialized)
struct StateStoreTests {
    @Test("a fresh store is empty, at the newest schema, in WAL mode")
    func fresh() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try StateStore(directory: directory)
        #expect(try store.load().isEmpty)
        #expect(try store.appliedMigrations() == ["v1", "v2"])
        let mode = try DatabaseQueue(path: store.path).read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test("writes read back after reopening; removing a session removes its objects; forget deletes a decision")
    func writeAndReload() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = AccessKey(host: "feed.example", port: 8443)
        do {
            let store = try StateStore(directory: directory)
            var delta = StateStore.Delta()
            delta.users = [
                User(id: "ann", name: "Ann", kind: .interactive), User(id: "host", name: "H", kind: .headless),
            ]
            delta.sessions = [
                Session(id: "lobby", name: "Lobby", host: "host", present: ["host", "ann"]),
                Session(id: "gone", name: "Gone", host: "host", present: ["host"]),
            ]
            delta.objects = [("lobby", ticker), ("gone", WorldObject(id: "x", name: "x"))]
            delta.decisions = [
                ("ann", key, AccessDecision(verdict: .allowed, reason: "Shows the feed")),
                ("ann", AccessKey(host: "evil.example", port: 443), AccessDecision(verdict: .blocked, reason: "no")),
            ]
            delta.tokens = [("ann", "secret-token-1234567890")]
            delta.declared = .object(["users": .array([])])
            try store.write(delta)
            var second = StateStore.Delta()
            second.removedSessions = ["gone"]
            second.decisions = [("ann", AccessKey(host: "evil.example", port: 443), nil)]
            try store.write(second)
        }
        let snapshot = try StateStore(directory: directory).load()
        #expect(snapshot.users.map(\.id) == ["ann", "host"])
        #expect(snapshot.sessions.map(\.id) == ["lobby"])
        #expect(snapshot.objects.count == 1)
        #expect(snapshot.objects.first?.session == "lobby")
        #expect(snapshot.objects.first?.object == ticker)
        #expect(snapshot.decisions == ["ann": [key: AccessDecision(verdict: .allowed, reason: "Shows the feed")]])
        #expect(snapshot.tokens == ["ann": "secret-token-1234567890"])
        #expect(snapshot.declared == .object(["users": .array([])]))
    }

    @Test("a transaction is all or nothing: a failing write leaves the previous state")
    func atomic() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try StateStore(directory: directory)
        var first = StateStore.Delta()
        first.users = [User(id: "ann", name: "Ann", kind: .interactive)]
        try store.write(first)
        // A trigger makes the second statement of the next transaction fail.
        try DatabaseQueue(path: store.path).write { db in
            try db.execute(
                sql: "CREATE TRIGGER refuse BEFORE INSERT ON sessions BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        }
        var second = StateStore.Delta()
        second.users = [User(id: "bob", name: "Bob", kind: .headless)]
        second.sessions = [Session(id: "s", name: "s", host: "bob", present: ["bob"])]
        #expect(throws: StateStore.Failure.self) { try store.write(second) }
        #expect(try store.load().users.map(\.id) == ["ann"])
    }

    @Test("a database made by the previous schema (v1) opens: migrated to v2, data kept, old token file imported")
    func migrationFromV1() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // What the previous version wrote: the v1 schema and its rows.
        let old = try DatabaseQueue(path: directory + "/state.sqlite")
        try StateStore.migrator(legacyTokens: [:]).migrate(old, upTo: "v1")
        try old.write { db in
            try db.execute(
                sql: "INSERT INTO users (id, body) VALUES ('ann', ?)",
                arguments: [#"{"id":"ann","kind":"interactive","name":"Ann"}"#])
            try db.execute(
                sql: "INSERT INTO decisions VALUES ('ann', 'feed.example', 8443, 'websocket', 'allowed', 'ok')")
        }
        #expect(try old.read { try DatabaseMigrator().appliedIdentifiers($0) } == ["v1"])
        try old.close()

        let store = try StateStore(directory: directory, legacyTokens: ["ann": "from-the-json-file-0123"])
        #expect(try store.appliedMigrations() == ["v1", "v2"])
        let snapshot = try store.load()
        #expect(snapshot.users == [User(id: "ann", name: "Ann", kind: .interactive)])
        #expect(snapshot.decisions["ann"]?[AccessKey(host: "feed.example", port: 8443)]?.verdict == .allowed)
        #expect(snapshot.tokens == ["ann": "from-the-json-file-0123"])
        // Migrations run once: a later legacy file changes nothing.
        let again = try StateStore(directory: directory, legacyTokens: ["ann": "other"])
        #expect(try again.load().tokens == ["ann": "from-the-json-file-0123"])
    }

    @Test("one unreadable row never keeps the store from opening: it is reported and left out, the rest loads")
    func badRowsAreReported() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try StateStore(directory: directory)
        var delta = StateStore.Delta()
        delta.users = [User(id: "ann", name: "Ann", kind: .interactive)]
        delta.sessions = [Session(id: "lobby", name: "Lobby", host: "ann", present: ["ann"])]
        delta.objects = [("lobby", ticker)]
        try store.write(delta)
        // What an older release could write (issue #12 row 3: a 0 s retry
        // interval), and rows damaged outright.
        try DatabaseQueue(path: store.path).write { db in
            try db.execute(
                sql: "INSERT INTO objects (session, id, body) VALUES ('lobby', 'zero', ?)",
                arguments: [
                    #"{"id":"zero","name":"zero","reactions":[],"record":{"accessReason":"","enabled":true,"connectRetryIntervalNs":0,"url":"ws://127.0.0.1:9/"}}"#
                ])
            try db.execute(sql: "INSERT INTO objects (session, id, body) VALUES ('lobby', 'junk', '{not json')")
            try db.execute(sql: "INSERT INTO users (id, body) VALUES ('bob', '[]')")
            try db.execute(
                sql: "INSERT INTO decisions VALUES ('ann', 'x.example', 70000, 'websocket', 'allowed', 'ok')")
        }
        let snapshot = try StateStore(directory: directory).load()
        #expect(snapshot.users.map(\.id) == ["ann"])
        #expect(snapshot.objects.map(\.object.id).sorted() == ["ticker", "zero"])
        let repaired = snapshot.objects.first { $0.object.id == "zero" }?.object.record
        #expect(repaired?.connectRetryInterval == RecordSettings.connectRetryIntervalBounds.lowerBound)
        #expect(snapshot.problems.count == 4)
        #expect(snapshot.problems.contains { $0.hasPrefix("object lobby/junk:") && $0.hasSuffix("left out") })
        #expect(snapshot.problems.contains { $0.hasPrefix("object lobby/zero: connectRetryInterval") })
        #expect(snapshot.problems.contains { $0.hasPrefix("user bob:") })
        #expect(snapshot.problems.contains { $0.contains("decision of ann for x.example") })
    }

    @Test("a value that would not read back is refused before anything is stored")
    func unreadableValuesAreNotStored() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try StateStore(directory: directory)
        var zero = ticker
        zero.record?.connectRetryInterval = .zero
        var delta = StateStore.Delta()
        delta.users = [User(id: "ann", name: "Ann", kind: .interactive)]
        delta.objects = [("lobby", zero)]
        #expect(throws: StateStore.Failure.self) { try store.write(delta) }
        let snapshot = try store.load()
        #expect(snapshot.users.isEmpty && snapshot.objects.isEmpty && snapshot.problems.isEmpty)
    }
}

@Suite("StateStore: a database written by an earlier release opens and restores")
struct StateStoreUpgradeTests {
    /// `Fixtures/state-0.2.0.sqlite`: written by wshostd 0.2.0 through wshostctl (users ann and bot,
    /// session lobby, objects ticker/relay/feed with records and reactions, ann's allow for
    /// 127.0.0.2:9, ann's token), then checkpointed into one file.
    @Test("release 0.2.0's state: every user, session, object, record, reaction, decision and token")
    func opensRelease020() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/state-0.2.0.sqlite").path
        let directory = temporaryDirectory()
        #expect(
            FileManager.default.createFile(
                atPath: "\(directory)/state.sqlite", contents: FileManager.default.contents(atPath: fixture)))
        let store = try StateStore(directory: directory)
        #expect(try store.appliedMigrations() == ["v1", "v2"])
        let snapshot = try store.load()
        #expect(snapshot.problems.isEmpty)
        #expect(
            snapshot.users.sorted { $0.id < $1.id } == [
                User(id: "ann", name: "Ann A.", kind: .interactive), User(id: "bot", name: "bot", kind: .headless),
            ])
        #expect(snapshot.sessions == [Session(id: "lobby", name: "The Lobby", host: "bot", present: ["ann", "bot"])])
        let objects = Dictionary(uniqueKeysWithValues: snapshot.objects.map { ($0.object.id, $0) })
        #expect(Set(objects.keys) == ["ticker", "relay", "feed"])
        #expect(objects.values.allSatisfy { $0.session == "lobby" })
        #expect(
            objects["ticker"]?.object
                == WorldObject(
                    id: "ticker", name: "Ticker", wornBy: "ann", spawnedBy: "ann",
                    record: RecordSettings(
                        url: try WebSocketURL.parse("ws://127.0.0.1:9/feed?x=1").get(), accessReason: "prices",
                        connectRetryInterval: .milliseconds(2500), enabled: false),
                    reactions: [
                        Reaction(on: .received, .echo), Reaction(on: .connected, .send(template: "hello {data}")),
                        Reaction(on: .received, .forward(to: "relay")),
                    ]))
        #expect(
            objects["relay"]?.object.record
                == RecordSettings(
                    url: try WebSocketURL.parse("wss://127.0.0.1:9/r").get(), handlingUser: .pinned("bot"),
                    connectRetryInterval: .seconds(10)))
        #expect(objects["feed"]?.object.record?.accessReason == "news")
        #expect(
            snapshot.decisions["ann"]?[AccessKey(host: "127.0.0.2", port: 9)]
                == AccessDecision(verdict: .allowed, reason: "news"))
        #expect(snapshot.tokens["ann"]?.count == 64)
        #expect(snapshot.declared == .object(["objects": .object([:]), "sessions": .array([]), "users": .array([])]))

        // It goes on working: a change written now reads back beside the old rows.
        var delta = StateStore.Delta()
        delta.users = [User(id: "cy", name: "Cy", kind: .headless)]
        try store.write(delta)
        #expect(try store.load().users.count == 3)
    }
}
