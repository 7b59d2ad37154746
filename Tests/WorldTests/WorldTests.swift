import MonotonicTime
import Testing
import WebSocketProtocol

@testable import World

private let t0 = MonotonicInstant(nanoseconds: 0)
private let url = WebSocketURL(secure: false, host: "127.0.0.1", port: 9000)
private let ticker = RecordAddress(session: "s", object: "ticker")

/// A session "s" hosted by "host" with ann and bob present, and an object "ticker"
/// spawned by bob with a record pointing at `url`.
private func world() throws -> World {
    var world = World()
    for (id, kind) in [
        ("host", UserKind.headless), ("ann", .interactive), ("bob", .interactive), ("cat", .interactive),
    ] {
        _ = try world.apply(.addUser(User(id: UserID(id), name: id, kind: kind)), now: t0)
    }
    _ = try world.apply(
        .startSession(Session(id: "s", name: "world", host: "host", present: ["host", "ann", "bob"])), now: t0)
    _ = try world.apply(
        .spawn("s", WorldObject(id: "ticker", name: "Ticker", spawnedBy: "bob", record: RecordSettings(url: url))),
        now: t0)
    return world
}

private func asked(_ actions: [RecordAction]) -> [UserID] {
    actions.compactMap {
        if case .askConsent(let attempt) = $0.action { return attempt.target.user } else { return nil }
    }
}

private func closes(_ actions: [RecordAction]) -> Int {
    actions.filter { if case .closeSocket = $0.action { return true } else { return false } }.count
}

@Suite("World: changes re-resolve handling users and drive record lifecycles")
struct WorldTests {
    @Test("spawning an object with a record asks the handling user (the spawner) at once")
    func spawnAsks() throws {
        var world = World()
        _ = try world.apply(.addUser(User(id: "bob", name: "Bob", kind: .interactive)), now: t0)
        _ = try world.apply(.startSession(Session(id: "s", name: "w", host: "bob", present: ["bob"])), now: t0)
        let actions = try world.apply(
            .spawn("s", WorldObject(id: "ticker", name: "T", record: RecordSettings(url: url))), now: t0)
        #expect(asked(actions) == ["bob"])
        #expect(world.effectiveTarget(ticker) == EffectiveTarget(url: url, user: "bob"))
    }

    @Test("report(of:): the record's state and handling user, as its lifecycle says; nil without a record")
    func reportOfAddress() throws {
        var world = try world()
        let lifecycle = try #require(world.lifecycles[ticker])
        let report = try #require(world.report(of: ticker))
        #expect(report.state == lifecycle.state && report.user == "bob")
        _ = world.consentAnswered(ticker, attempt: 1, .allowed, now: t0)
        #expect(world.report(of: ticker)?.state == world.lifecycles[ticker]?.state)
        if case .connecting = world.report(of: ticker)?.state {} else { Issue.record("not connecting") }
        #expect(world.report(of: RecordAddress(session: "s", object: "nothing")) == nil)
    }

    @Test("failover: when the handling user leaves, the next applicable user is asked; wearing takes priority")
    func failover() throws {
        var world = try world()
        _ = world.consentAnswered(ticker, attempt: 1, .allowed, now: t0)
        _ = world.socketOpened(ticker, attempt: 1)
        let leave = try world.apply(.leave("s", "bob"), now: t0)
        #expect(closes(leave) == 1)
        #expect(asked(leave) == ["host"])  // spawner gone: the session host
        #expect(asked(try world.apply(.wear("s", "ticker", by: "ann"), now: t0)) == ["ann"])
        // cat is not present, and ann still wears it: nothing changes.
        #expect(try world.apply(.grab("s", "ticker", by: "cat"), now: t0) == [])
        #expect(asked(try world.apply(.wear("s", "ticker", by: nil), now: t0)) == ["host"])
        #expect(asked(try world.apply(.join("s", "bob"), now: t0)) == ["bob"])
    }

    @Test("the Connect node pins a user until cleared; an omitted URL keeps the current one")
    func connectNode() throws {
        var world = try world()
        let pinned = try world.apply(.connect("s", "ticker", url: nil, user: "ann"), now: t0)
        #expect(asked(pinned) == ["ann"])
        #expect(world.objects[ticker]?.record?.url == url)
        #expect(try world.apply(.leave("s", "bob"), now: t0).isEmpty)  // pinned: the spawner leaving changes nothing
        let gone = try world.apply(.leave("s", "ann"), now: t0)
        #expect(asked(gone).isEmpty)  // pinned user absent: no effective target
        #expect(world.effectiveTarget(ticker) == nil)
        // No user: automatic again.
        #expect(asked(try world.apply(.connect("s", "ticker", url: nil, user: nil), now: t0)) == ["host"])
    }

    @Test("disabling, removing the object and closing the session all close the socket")
    func teardown() throws {
        for change in [
            WorldChange.remove("s", "ticker"), .closeSession("s"),
            .setRecord("s", "ticker", RecordSettings(url: url, enabled: false)),
        ] {
            var world = try world()
            _ = world.consentAnswered(ticker, attempt: 1, .allowed, now: t0)
            _ = world.socketOpened(ticker, attempt: 1)
            #expect(closes(try world.apply(change, now: t0)) == 1, "\(change)")
        }
    }

    @Test("two records of one user to one URL are independent (Neos #3043)")
    func independentRecords() throws {
        var world = try world()
        let second = try world.apply(
            .spawn("s", WorldObject(id: "twin", name: "Twin", spawnedBy: "bob", record: RecordSettings(url: url))),
            now: t0)
        #expect(second.map(\.address.object) == ["twin"])
        #expect(asked(second) == ["bob"])
        #expect(world.lifecycles.count == 2)
    }

    @Test("bad changes are refused with a clear error and change nothing")
    func refused() throws {
        var world = try world()
        let before = world.objects
        #expect(throws: World.Failure.unknownUser("zed")) { try world.apply(.join("s", "zed"), now: t0) }
        #expect(throws: World.Failure.unknownSession("nope")) { try world.apply(.leave("nope", "ann"), now: t0) }
        #expect(throws: World.Failure.unknownObject(RecordAddress(session: "s", object: "x"))) {
            try world.apply(.wear("s", "x", by: "ann"), now: t0)
        }
        #expect(throws: World.Failure.duplicateObject(ticker)) {
            try world.apply(.spawn("s", WorldObject(id: "ticker", name: "again")), now: t0)
        }
        #expect(throws: World.Failure.unknownUser("zed")) {
            try world.apply(.connect("s", "ticker", url: nil, user: "zed"), now: t0)
        }
        #expect(world.objects == before)
        #expect(World.Failure.unknownUser("zed").description == "no user zed")
    }

    @Test("Connect on an object without a record makes one from the world's defaults; refused, it makes none")
    func connectMakesOneRecord() throws {
        var world = try world()
        _ = try world.apply(.spawn("s", WorldObject(id: "bare", name: "Bare")), now: t0)
        let bare = RecordAddress(session: "s", object: "bare")
        world.recordDefaults = RecordSettings(connectRetryInterval: .seconds(3))
        #expect(throws: World.Failure.unknownUser("nobody")) {
            try world.apply(.connect("s", "bare", url: url, user: "nobody"), now: t0)
        }
        #expect(world.objects[bare]?.record == nil)
        let actions = try world.apply(.connect("s", "bare", url: url, user: nil), now: t0)
        #expect(asked(actions) == ["host"])
        #expect(world.objects[bare]?.record?.connectRetryInterval == .seconds(3))
        #expect(world.objects[bare]?.record?.url == url)
    }

}

@Suite("SendRate: a record's sends per second")
struct SendRateTests {
    @Test("a second's worth at once, then one per 1/rate; refused sends take nothing; 0 is no limit")
    func bucket() {
        var rate = SendRate(perSecond: 10)
        func taken(_ count: Int, at now: MonotonicInstant) -> Int {
            (0..<count).filter { _ in rate.take(now: now) }.count
        }
        #expect(taken(11, at: t0) == 10)
        #expect(taken(1, at: t0 + .milliseconds(50)) == 0)
        #expect(taken(1, at: t0 + .milliseconds(100)) == 1)
        #expect(taken(1, at: t0 + .milliseconds(150)) == 0)
        // A long pause refills one second's worth, no more.
        #expect(taken(20, at: t0 + .seconds(60)) == 10)
        rate = SendRate(perSecond: 0)
        #expect(taken(100_000, at: t0) == 100_000)
        // A limit set later (a reload) starts with a full bucket.
        rate.perSecond = 5
        #expect(taken(6, at: t0) == 5)
    }

    @Test("an attempt pacer: one second's worth at once, then the wait; per destination and in all")
    func pacer() {
        var pacer = AttemptPacer(perSecond: 3, perDestination: 2)
        #expect(pacer.admit("a:1", now: t0) == .zero)
        #expect(pacer.admit("a:1", now: t0) == .zero)
        #expect(pacer.admit("a:1", now: t0) == .milliseconds(500))  // a's pace: 2/s
        #expect(pacer.admit("b:1", now: t0) == .zero)
        #expect(pacer.admit("c:1", now: t0) > .zero)  // 3 in all this second
        #expect(pacer.admit("a:1", now: t0 + .milliseconds(500)) == .zero)
        var open = AttemptPacer(perSecond: 0, perDestination: 0)
        #expect((0..<1000).allSatisfy { _ in open.admit("a:1", now: t0) == .zero })
    }

    @Test("an earlier time than the last one refills nothing and does not count the same time twice")
    func timeGoingBack() {
        var rate = SendRate(perSecond: 10)
        var taken: [Bool] = []
        for _ in 0..<10 { taken.append(rate.take(now: t0 + .milliseconds(100))) }
        taken.append(rate.take(now: t0))  // earlier: nothing added
        taken.append(rate.take(now: t0 + .milliseconds(200)))  // 100 ms later: one token, not two
        taken.append(rate.take(now: t0 + .milliseconds(200)))
        #expect(taken == Array(repeating: true, count: 10) + [false, true, false])
    }
}

@Suite("World: records per session")
struct RecordLimitTests {
    @Test("past records_per_session a new record is refused (spawn, set, Connect); removal makes room")
    func recordsPerSession() throws {
        var world = try world()  // "ticker" has a record
        world.recordsPerSession = 2
        _ = try world.apply(.spawn("s", WorldObject(id: "b", name: "b", record: RecordSettings(url: url))), now: t0)
        #expect(world.recordCount("s") == 2)
        #expect(throws: World.Failure.recordLimit("s", 2)) {
            try world.apply(.spawn("s", WorldObject(id: "c", name: "c", record: RecordSettings(url: url))), now: t0)
        }
        _ = try world.apply(.spawn("s", WorldObject(id: "d", name: "d")), now: t0)  // no record: fine
        #expect(throws: World.Failure.recordLimit("s", 2)) {
            try world.apply(.setRecord("s", "d", RecordSettings(url: url)), now: t0)
        }
        #expect(throws: World.Failure.recordLimit("s", 2)) {
            try world.apply(.connect("s", "d", url: url, user: nil), now: t0)
        }
        #expect(world.objects[RecordAddress(session: "s", object: "d")]?.record == nil)
        _ = try world.apply(.setRecord("s", "b", nil), now: t0)
        #expect(world.recordCount("s") == 1)
        _ = try world.apply(.connect("s", "d", url: url, user: nil), now: t0)
        _ = try world.apply(.remove("s", "ticker"), now: t0)
        #expect(world.recordCount("s") == 1)
        _ = try world.apply(.closeSession("s"), now: t0)
        #expect(world.recordCount("s") == 0)
    }
}

@Suite("World: rules the control socket used to keep")
struct WorldRuleTests {
    @Test("only a present user can leave; a new forward must name an existing object, an old one may outlive it")
    func leaveAndForward() throws {
        var world = try world()
        #expect(throws: World.Failure.notPresent("s", "cat")) { try world.apply(.leave("s", "cat"), now: t0) }
        #expect(throws: World.Failure.unknownSession("nope")) { try world.apply(.leave("nope", "ann"), now: t0) }
        let forward = Reaction(on: .received, .forward(to: "relay"))
        #expect(throws: World.Failure.noForwardTarget(RecordAddress(session: "s", object: "relay"))) {
            try world.apply(.setReactions("s", "ticker", [forward]), now: t0)
        }
        _ = try world.apply(.spawn("s", WorldObject(id: "relay", name: "Relay")), now: t0)
        _ = try world.apply(.setReactions("s", "ticker", [forward]), now: t0)
        _ = try world.apply(.remove("s", "relay"), now: t0)
        // The kept forward does not block other edits of the list.
        let echo = Reaction(on: .received, .echo)
        _ = try world.apply(.setReactions("s", "ticker", [forward, echo]), now: t0)
        #expect(world.objects[ticker]?.reactions == [forward, echo])
    }
}
