import MonotonicTime
import Testing
import WebSocketProtocol
import World

@testable import HostingCore

/// A manual clock: instants are written by the test, nothing sleeps.
private func at(_ seconds: Double) -> MonotonicInstant { MonotonicInstant(nanoseconds: UInt64(seconds * 1e9)) }

private let server = WebSocketURL(secure: false, host: "127.0.0.1", port: 9000)
private let ticker = RecordAddress(session: "s", object: "ticker")

/// A session "s" hosted by headless "host" with interactive ann and bob present.
private func makeHosting(allow: [AccessKey] = []) throws -> Hosting {
    var hosting = Hosting(consent: ConsentEngine(allowList: Set(allow), timeout: .seconds(30)))
    for (id, kind) in [("host", UserKind.headless), ("ann", .interactive), ("bob", .interactive)] {
        _ = try hosting.apply(.addUser(User(id: UserID(id), name: id, kind: kind)), now: at(0))
    }
    _ = try hosting.apply(
        .startSession(Session(id: "s", name: "w", host: "host", present: ["host", "ann", "bob"])), now: at(0))
    return hosting
}

private func spawn(
    _ id: ObjectID, by user: UserID? = nil, reactions: [Reaction] = [], retry: Duration = .seconds(10)
) -> WorldChange {
    .spawn(
        "s",
        WorldObject(
            id: id, name: "\(id)", spawnedBy: user, record: RecordSettings(url: server, connectRetryInterval: retry),
            reactions: reactions))
}

private func opens(_ effects: [Hosting.Effect]) -> [(RecordAddress, Int)] {
    effects.compactMap { if case .open(let address, let attempt, _, _) = $0 { (address, attempt) } else { nil } }
}

private func closes(_ effects: [Hosting.Effect]) -> [(RecordAddress, Int, CloseCode)] {
    effects.compactMap {
        if case .close(let address, let attempt, let code, _) = $0 { (address, attempt, code) } else { nil }
    }
}

private func events(_ effects: [Hosting.Effect]) -> [Hosting.Event] {
    effects.compactMap { if case .emit(let event) = $0 { event } else { nil } }
}

private func prompts(_ effects: [Hosting.Effect]) -> [ConsentPrompt] {
    events(effects).compactMap { if case .prompt(let prompt) = $0 { prompt } else { nil } }
}

private func armed(_ effects: [Hosting.Effect]) -> [(Hosting.TimerKey, MonotonicInstant)] {
    effects.compactMap { if case .arm(let key, let instant, _) = $0 { (key, instant) } else { nil } }
}

private func sends(_ effects: [Hosting.Effect]) -> [(RecordAddress, Payload)] {
    effects.compactMap { if case .send(let address, let payload) = $0 { (address, payload) } else { nil } }
}

@Suite("Hosting core: decisions as effects, with a manual clock")
struct HostingTests {
    @Test("consent is asked per attempt: an allow-listed host opens at once; an interactive user is prompted")
    func consentPerAttempt() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        // Headless host (nobody claims the object): allow-listed, so it opens at once, trusted.
        let effects = try hosting.apply(spawn("ticker"), now: at(1))
        #expect(events(effects).first == .worldChanged(spawn("ticker"), by: nil))
        #expect(events(effects).contains(.consentDecided(ticker, .allowed, .allowedByAllowList)))
        #expect(effects.contains(.open(ticker, attempt: 1, url: server, trusted: true)))

        // Not allow-listed, spawned by ann: ann gets a prompt; her allow opens attempt 1.
        var other = try makeHosting()
        let asked = try other.apply(spawn("ticker", by: "ann"), now: at(1))
        #expect(opens(asked).isEmpty)
        let prompt = try #require(prompts(asked).first)
        #expect(prompt.user == "ann" && prompt.key == AccessKey(host: "127.0.0.1", port: 9000))
        #expect(armed(asked).map(\.0) == [.prompt(prompt.id)])
        let prepared = try other.consent.prepare(promptID: prompt.id, user: "ann", answer: .allow).get()
        let answered = other.answered(prepared, by: "uid 1000", now: at(2))
        #expect(answered.contains(.cancel(.prompt(prompt.id))))
        #expect(opens(answered).map(\.1) == [1])
        #expect(
            answered.contains { if case .log(let line) = $0 { line.fields["consent.by"] == "uid 1000" } else { false } }
        )

        // The next attempt (after the server closed) is decided by the stored decision: no prompt.
        _ = other.handle(.socketOpened(ticker, attempt: 1), now: at(3))
        let closed = other.handle(
            .socketClosed(ticker, attempt: 1, CloseReport(initiator: .server, code: .goingAway, reason: "bye")),
            now: at(4))
        let retry = try #require(armed(closed).first)
        #expect(retry.0 == .retry(ticker))
        let again = other.handle(.timerFired(.retry(ticker)), now: retry.1)
        #expect(prompts(again).isEmpty)
        #expect(events(again).contains(.consentDecided(ticker, .allowed, .decidedBefore(.allowed))))
        #expect(opens(again).map(\.1) == [2])
    }

    @Test("handle(into:) appends to what the array holds, as handle returns it")
    func handleInto() throws {
        var returning = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        _ = try returning.apply(spawn("ticker"), now: at(1))
        var appending = returning  // the same core, twice
        let input = Hosting.Input.socketOpened(ticker, attempt: 1)
        let returned = returning.handle(input, now: at(2))
        let marker = Hosting.Effect.cancel(.prompt(99))
        var effects = [marker]
        appending.handle(input, now: at(2), into: &effects)
        // What the socket's opening produces: the connected event and the new state.
        #expect(returned.contains(.emit(.connected(ticker, user: "host"))))
        #expect(returned.contains { if case .emit(.stateChanged(ticker, .open)) = $0 { true } else { false } })
        #expect(effects == [marker] + returned)
        #expect(appending.world.lifecycles[ticker]?.state == returning.world.lifecycles[ticker]?.state)
    }

    @Test("a fleet member runs only the sessions it holds: given up → Close 1001 and idle; taken → a new attempt")
    func heldSessions() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        #expect(hosting.hold([], now: at(0)).isEmpty)  // nothing to close yet
        // Spawned while the session is held elsewhere: no attempt.
        let spawned = try hosting.apply(spawn("ticker"), now: at(1))
        #expect(opens(spawned).isEmpty)
        #expect(hosting.world.lifecycles[ticker]?.state == .idle)
        // Taken: attempt 1 opens.
        let taken = hosting.hold(["s"], now: at(2))
        #expect(opens(taken).map(\.1) == [1])
        _ = hosting.handle(.socketOpened(ticker, attempt: 1), now: at(3))
        // Holding another session as well changes nothing for "s".
        #expect(hosting.hold(["s", "other"], now: at(4)).isEmpty)
        // Given up: the socket closes with 1001 (the server sees the host go away), no retry is armed.
        let given = hosting.hold(["other"], now: at(5))
        #expect(closes(given).map(\.2) == [.goingAway])
        #expect(armed(given).isEmpty)
        #expect(events(given).contains { if case .disconnected(ticker, _) = $0 { true } else { false } })
        #expect(hosting.world.lifecycles[ticker]?.state == .idle)
        // A late report of the old attempt changes nothing; taken again, attempt 2 opens.
        let late = hosting.handle(
            .socketClosed(ticker, attempt: 1, CloseReport(initiator: .client, code: .goingAway, reason: "")), now: at(6)
        )
        #expect(opens(late).isEmpty && armed(late).isEmpty)
        #expect(opens(hosting.hold(nil, now: at(7))).map(\.1) == [2])

        // A held session closed and started again under its id is a new one: not held until the fleet says so.
        _ = hosting.hold(["s"], now: at(8))
        _ = try hosting.apply(.closeSession("s"), now: at(9))
        #expect(hosting.world.heldSessions == [])
        _ = try hosting.apply(.startSession(Session(id: "s", name: "w", host: "host", present: ["host"])), now: at(10))
        #expect(opens(try hosting.apply(spawn("ticker"), now: at(11))).isEmpty)
    }

    @Test("a denial and an ignored prompt: the verdict decides between no retry and a retry")
    func verdicts() throws {
        var hosting = try makeHosting()
        let first = try hosting.apply(spawn("ticker", by: "ann"), now: at(0))
        let prompt = try #require(prompts(first).first)
        let timedOut = hosting.handle(.timerFired(.prompt(prompt.id)), now: at(30))
        #expect(events(timedOut).contains(.consentDecided(ticker, .ignored, .timedOut)))
        #expect(armed(timedOut).map(\.0) == [.retry(ticker)])
        #expect(hosting.statuses[ticker]?.lastError == nil)
        // A timer that was cancelled or already fired does nothing.
        #expect(hosting.handle(.timerFired(.prompt(prompt.id)), now: at(31)).isEmpty)

        var denying = try makeHosting()
        let asked = try denying.apply(spawn("ticker", by: "ann"), now: at(0))
        let prepared = try denying.consent.prepare(promptID: prompts(asked)[0].id, user: "ann", answer: .deny).get()
        let denied = denying.answered(prepared, by: "", now: at(1))
        #expect(events(denied).contains(.consentDecided(ticker, .denied, .answered(.deny))))
        #expect(armed(denied).isEmpty && opens(denied).isEmpty)
        #expect(denying.statuses[ticker]?.lastError == "access denied: the user answered deny")
        // The metrics' counts: one prompt each; the verdicts by where they came from.
        #expect(hosting.tally.prompts == 1 && denying.tally.prompts == 1)
        #expect(hosting.tally.decisions == [Hosting.Tally.Decision(verdict: .ignored, source: .timeout): 1])
        #expect(denying.tally.decisions == [Hosting.Tally.Decision(verdict: .denied, source: .user): 1])
    }

    @Test("failover: the handling user leaves; the open socket closes and the next user's attempt opens")
    func failover() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        _ = try hosting.apply(spawn("ticker", by: "bob"), now: at(0))
        // bob is interactive and not allow-listed for himself... the allow-list covers everyone.
        #expect(hosting.sockets[ticker] == Hosting.Socket(attempt: 1, user: "bob"))
        _ = hosting.handle(.socketOpened(ticker, attempt: 1), now: at(1))
        let leave = try hosting.apply(.leave("s", "bob"), now: at(2))
        #expect(closes(leave).map(\.1) == [1])
        #expect(opens(leave).map(\.1) == [2])
        #expect(events(leave).contains(.handlingUserChanged(ticker, "host")))
        #expect(hosting.sockets[ticker] == Hosting.Socket(attempt: 2, user: "host"))
        // The old socket's late close report changes nothing for the new attempt.
        let late = hosting.handle(
            .socketClosed(ticker, attempt: 1, CloseReport(initiator: .client, code: .normalClosure, reason: "")),
            now: at(3))
        #expect(opens(late).isEmpty && closes(late).isEmpty)
        #expect(hosting.sockets[ticker]?.attempt == 2)
    }

    @Test("stop: every socket closes with 1001, open records report disconnected, retries and new attempts stop")
    func stop() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        _ = try hosting.apply(spawn("a"), now: at(0))
        _ = try hosting.apply(spawn("b"), now: at(0))
        _ = try hosting.apply(spawn("c"), now: at(0))
        let a = RecordAddress(session: "s", object: "a")
        let c = RecordAddress(session: "s", object: "c")
        _ = hosting.handle(.socketOpened(a, attempt: 1), now: at(1))
        // c failed and waits to retry.
        let failed = hosting.handle(
            .socketClosed(c, attempt: 1, CloseReport(initiator: .transport, code: .abnormalClosure, reason: "refused")),
            now: at(1))
        #expect(armed(failed).map(\.0) == [.retry(c)])
        let stop = hosting.stop(code: .goingAway, reason: "going away")
        #expect(closes(stop).map(\.0.object) == ["a", "b"])
        #expect(closes(stop).allSatisfy { $0.2 == .goingAway })
        #expect(stop.contains(.cancel(.retry(c))))
        #expect(
            events(stop) == [
                .disconnected(a, CloseReport(initiator: .client, code: .goingAway, reason: "going away"))
            ])
        // Nothing new starts while stopping: not a spawn, not a late retry.
        let spawned = try hosting.apply(spawn("d"), now: at(2))
        #expect(opens(spawned).isEmpty && armed(spawned).isEmpty)
        #expect(hosting.handle(.timerFired(.retry(c)), now: at(11)).isEmpty)
        #expect(hosting.sockets.isEmpty)
    }

    @Test("reactions on connect and disconnect become sends; a forward goes through the other object")
    func reactions() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        _ = try hosting.apply(
            spawn(
                "ticker",
                reactions: [
                    Reaction(on: .connected, .send(template: "hello {data}")), Reaction(on: .connected, .echo),
                    Reaction(on: .disconnected, .send(template: "bye")),
                    Reaction(on: .received, .send(template: "never on connect")),
                ]), now: at(0))
        let opened = hosting.handle(.socketOpened(ticker, attempt: 1), now: at(1))
        #expect(sends(opened).map(\.1) == [.text("hello ")])
        #expect(hosting.statuses[ticker]?.connectedAt == at(1))
        let closed = hosting.handle(
            .socketClosed(ticker, attempt: 1, CloseReport(initiator: .server, code: .init(4000), reason: "x")),
            now: at(2))
        #expect(sends(closed).map(\.1) == [.text("bye")])
        #expect(hosting.statuses[ticker]?.lastError == "closed 4000: x")

        // The pure rule the runtime applies per received message.
        let forward = Reaction(on: .received, .forward(to: "other"))
        #expect(forward.response(to: .binary([1, 2]), at: "ticker")! == ("other", .binary([1, 2])))
        #expect(forward.response(to: nil, at: "ticker") == nil)
        #expect(Reaction(on: .received, .echo).response(to: .text("x"), at: "ticker")! == ("ticker", .text("x")))
        #expect(
            Reaction(on: .received, .send(template: "<{data}>")).response(to: .binary([1]), at: "ticker")!
                == ("ticker", .text("<>")))
    }

    @Test("limits: connections per user (the session's host exempt) fail the attempt; the pace delays it")
    func connectionLimitsAndPace() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        hosting.connectionLimits = Hosting.ConnectionLimits(perUser: 1)
        _ = try hosting.apply(spawn("a1", by: "ann"), now: at(0))
        let second = try hosting.apply(spawn("a2", by: "ann"), now: at(0))
        let a2 = RecordAddress(session: "s", object: "a2")
        #expect(opens(second).isEmpty)
        #expect(
            events(second).contains(
                .attemptFailed(a2, reason: "limit: ann already handles 1 connections ([limits] connections_per_user)")))
        _ = try hosting.apply(spawn("h1"), now: at(0))
        let host2 = try hosting.apply(spawn("h2"), now: at(0))
        #expect(opens(host2).count == 1)
        #expect(hosting.tally.limitHits == [.connectionsPerUser: 1] && hosting.tally.pacedAttempts == 0)
        #expect(hosting.tally.decisions[Hosting.Tally.Decision(verdict: .allowed, source: .allowList)] == 4)
        hosting.recordsPerSession = 4
        #expect(throws: World.Failure.self) { try hosting.apply(spawn("h3"), now: at(0)) }
        #expect(hosting.tally.limitHits == [.connectionsPerUser: 1, .recordsPerSession: 1])

        var paced = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        paced.pacer = AttemptPacer(perSecond: 0, perDestination: 1)
        _ = try paced.apply(spawn("p1"), now: at(0))
        let waits = try paced.apply(spawn("p2"), now: at(0))
        #expect(opens(waits).isEmpty)
        let turn = try #require(armed(waits).first)
        #expect(turn.0 == .pacing("127.0.0.1:9000"))
        #expect(turn.1 == at(1))  // the destination's next token
        #expect(paced.tally.pacedAttempts == 1)
        // Later attempts queue behind it without a timer of their own: waiting
        // costs nothing per record.
        for name: ObjectID in ["p3", "p4", "p5"] {
            let queued = try paced.apply(spawn(name), now: at(0.5))
            #expect(armed(queued).isEmpty && opens(queued).isEmpty)
        }
        #expect(paced.tally.pacedAttempts == 4)
        // p3 goes away while it waits: its turn is skipped.
        _ = try paced.apply(.remove("s", "p3"), now: at(0.6))
        // First come, first served, one a second, each turn arming the next.
        var now = turn.1
        var order: [String] = []
        for _ in 0..<3 {
            let effects = paced.handle(.timerFired(.pacing("127.0.0.1:9000")), now: now)
            order += opens(effects).map(\.0.object.rawValue)
            if let next = armed(effects).first {
                #expect(next.0 == .pacing("127.0.0.1:9000") && next.1 == now + .seconds(1))
                now = next.1
            }
        }
        #expect(order == ["p2", "p4", "p5"])
        // The queue is empty: a new attempt after a quiet second goes at once.
        #expect(opens(try paced.apply(spawn("p6"), now: now + .seconds(1))).map(\.0.object.rawValue) == ["p6"])
    }

    @Test("one failure reason is one warning per record; a connect clears the last error")
    func failureLogging() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        _ = try hosting.apply(spawn("ticker", retry: .seconds(1)), now: at(0))
        var levels: [Hosting.LogLine.Level] = []
        var now = at(0)
        for attempt in 1...3 {
            let effects = hosting.handle(
                .socketClosed(
                    ticker, attempt: attempt,
                    CloseReport(initiator: .transport, code: .abnormalClosure, reason: "connection refused")),
                now: now)
            levels += effects.compactMap { if case .log(let line) = $0 { line.level } else { nil } }
            let retry = try #require(armed(effects).first)
            now = retry.1
            _ = hosting.handle(.timerFired(retry.0), now: now)
        }
        #expect(levels == [.warning, .debug, .debug])
        #expect(hosting.statuses[ticker]?.lastError == "connection refused")
        _ = hosting.handle(.socketOpened(ticker, attempt: 4), now: now)
        #expect(hosting.statuses[ticker]?.lastError == nil)
    }

    @Test("log lines below the core's level are not emitted; the record's state moves the same")
    func logLevelThreshold() throws {
        func lines(at level: Hosting.LogLine.Level) throws -> ([Hosting.LogLine], RecordStatus?) {
            var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
            hosting.logLevel = level
            var effects = try hosting.apply(spawn("ticker", retry: .seconds(1)), now: at(0))
            effects += hosting.handle(.socketOpened(ticker, attempt: 1), now: at(1))
            effects += hosting.handle(
                .socketClosed(
                    ticker, attempt: 1, CloseReport(initiator: .server, code: .internalError, reason: "bye")),
                now: at(2))
            let logged = effects.compactMap { if case .log(let line) = $0 { line } else { nil } }
            return (logged, hosting.statuses[ticker])
        }
        let (all, allStatus) = try lines(at: .debug)
        #expect(all.map(\.message) == ["connected", "disconnected: bye"])
        #expect(all.last?.fields["ws.close.code"] == "\(CloseCode.internalError)")
        let (warnings, warningStatus) = try lines(at: .warning)
        #expect(warnings.isEmpty)
        #expect(warningStatus?.lastError == allStatus?.lastError)
        #expect(warningStatus?.lastError?.hasSuffix("bye") == true)
    }

    @Test("removing a record forgets its status and tells the runtime to drop its counters")
    func removal() throws {
        var hosting = try makeHosting(allow: [AccessKey(host: "127.0.0.1", port: 9000)])
        _ = try hosting.apply(spawn("ticker"), now: at(0))
        _ = hosting.handle(.problem(ticker, "send: boom"), now: at(1))
        #expect(hosting.statuses[ticker]?.lastError == "send: boom")
        let removed = try hosting.apply(.remove("s", "ticker"), now: at(2))
        #expect(removed.last == .forget(ticker))
        #expect(closes(removed).map(\.1) == [1])
        #expect(hosting.statuses[ticker] == nil)
        // A refused change changes nothing and yields nothing.
        #expect(throws: World.Failure.unknownObject(ticker)) { try hosting.apply(.remove("s", "ticker"), now: at(3)) }
    }
}

@Suite("Inbound queue and delivery turn: the flood rule without sockets")
struct InboundTests {
    @Test("close policy: past the limit the queue overflows (the runtime sheds and closes with 1008)")
    func closePolicy() {
        var queue = InboundQueue()
        let limits = Hosting.FloodLimits(messages: 2, bytes: 100, policy: .close)
        #expect(queue.push(.text("a"), limits: limits) == .queued)
        #expect(queue.push(.binary([1, 2]), limits: limits) == .queued)
        #expect(
            queue.push(.text("c"), limits: limits)
                == .overflow(reason: "inbound flood: more than 2 messages or 100 bytes waiting"))
        #expect(queue.shed() == (3, 4))
        #expect(queue.isEmpty && queue.bytes == 0)
        // Bytes count too.
        #expect(queue.push(.binary(Array(repeating: 0, count: 101)), limits: limits) != .queued)
    }

    @Test("drop-oldest: the oldest go, one flood per run of drops; delivery order is arrival order")
    func dropOldest() {
        var queue = InboundQueue()
        let limits = Hosting.FloodLimits(messages: 2, bytes: 1 << 20, policy: .dropOldest)
        _ = queue.push(.text("1"), limits: limits)
        _ = queue.push(.text("2"), limits: limits)
        #expect(queue.push(.text("3"), limits: limits) == .droppedOldest(count: 1, bytes: 1, newFlood: true))
        #expect(queue.push(.text("44"), limits: limits) == .droppedOldest(count: 1, bytes: 1, newFlood: false))
        #expect(queue.popFirst() == .text("3"))
        #expect(queue.popFirst() == .text("44"))
        #expect(queue.popFirst() == nil)
        // Emptied: the next drop is a new flood.
        _ = queue.push(.text("5"), limits: limits)
        _ = queue.push(.text("6"), limits: limits)
        #expect(queue.push(.text("7"), limits: limits) == .droppedOldest(count: 1, bytes: 1, newFlood: true))
    }

    @Test("the delivery turn counts to its budget and starts over")
    func deliveryTurn() {
        var turn = DeliveryTurn(budget: 3)
        var taken: [Bool] = []
        for _ in 0..<5 { taken.append(turn.take()) }
        #expect(taken == [true, true, true, false, false])
        #expect(!turn.hasRoom)
        turn.reset()
        let again = turn.take()
        #expect(again)
        // Counted per loop turn: the same turn keeps its count, the next starts over.
        turn.enter(7)
        #expect(turn.take() && turn.take() && turn.take() && !turn.take())
        turn.enter(7)
        #expect(!turn.hasRoom)
        turn.enter(8)
        #expect(turn.hasRoom && turn.delivered == 0)
    }
}
