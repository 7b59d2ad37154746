import MonotonicTime
import Testing
import WebSocketProtocol

@testable import World

private func at(_ seconds: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: seconds * 1_000_000_000) }
private let echo = EffectiveTarget(url: WebSocketURL(secure: false, host: "127.0.0.1", port: 9000), user: "alice")
private let other = EffectiveTarget(url: WebSocketURL(secure: false, host: "127.0.0.1", port: 9001), user: "alice")
private let serverClose = CloseReport(initiator: .server, code: .goingAway, reason: "restart")

@Suite("RecordLifecycle: SPEC §2 as one state machine (injected clock)")
struct RecordLifecycleTests {
    @Test("a target asks consent; allowed → connect → open (IsConnected only then)")
    func happyPath() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        #expect(record.targetChanged(echo, now: at(0)) == [.askConsent(Attempt(number: 1, target: echo))])
        #expect(!record.isConnected)
        #expect(
            record.consentAnswered(.allowed, attempt: 1, now: at(0)) == [.openSocket(Attempt(number: 1, target: echo))])
        #expect(record.socketOpened(attempt: 1) == [.connected(Attempt(number: 1, target: echo))])
        #expect(record.isConnected)
    }

    @Test("retries spread ± 10 % around ConnectRetryInterval; after a healthy connection they back off from a second")
    func jitterAndQuickRetry() {
        let refused = CloseReport(initiator: .transport, code: .abnormalClosure, reason: "refused")
        func retryAt(_ actions: [RecordLifecycle.Action]) -> MonotonicInstant? {
            for case .scheduleRetry(let instant) in actions { return instant }
            return nil
        }
        // A failure: the interval, placed by the jitter between 90 % and 110 %.
        for (jitter, seconds) in [(0.0, 9.0), (0.5, 10.0), (1.0, 11.0)] {
            var record = RecordLifecycle(retryInterval: .seconds(10))
            _ = record.targetChanged(echo, now: at(0))
            _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
            let actions = record.socketClosed(attempt: 1, report: refused, now: at(100), jitter: jitter)
            #expect(retryAt(actions) == at(100) + .milliseconds(Int64(seconds * 1000)))
        }
        // Open for 30 s or more, then closed: the first retry after 0.5–1.5 s.
        var healthy = RecordLifecycle(retryInterval: .seconds(10))
        _ = healthy.targetChanged(echo, now: at(0))
        _ = healthy.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = healthy.socketOpened(attempt: 1, now: at(0))
        #expect(
            retryAt(healthy.socketClosed(attempt: 1, report: serverClose, now: at(60), jitter: 0)) == at(60)
                + .milliseconds(500))
        // Those retries fail (the server is still restarting): 2 s, 4 s, 8 s (jitter 0.5:
        // × 1.0), then the interval again; a connection in between starts over.
        var now = at(61)
        for (attempt, wait) in [(2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (6, 10.0)] {
            _ = healthy.retryDue(now: now)
            _ = healthy.consentAnswered(.allowed, attempt: attempt, now: now)
            let next = retryAt(healthy.socketClosed(attempt: attempt, report: refused, now: now, jitter: 0.5))
            #expect(next == now + .milliseconds(Int64(wait * 1000)), "attempt \(attempt)")
            now = next ?? now
        }
        _ = healthy.retryDue(now: now)
        _ = healthy.consentAnswered(.allowed, attempt: 7, now: now)
        _ = healthy.socketOpened(attempt: 7, now: now)
        // Connected only briefly this time: no quick retry.
        #expect(
            retryAt(healthy.socketClosed(attempt: 7, report: serverClose, now: now + .seconds(1), jitter: 0.5))
                == now + .seconds(11))
        // Open only briefly: the full interval (a server that accepts and drops is not hammered).
        var brief = RecordLifecycle(retryInterval: .seconds(10))
        _ = brief.targetChanged(echo, now: at(0))
        _ = brief.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = brief.socketOpened(attempt: 1, now: at(0))
        #expect(retryAt(brief.socketClosed(attempt: 1, report: serverClose, now: at(5), jitter: 0.5)) == at(15))
    }

    @Test(
        "the quick retries belong to the connection that was healthy: a new target or an ignored prompt waits the interval"
    )
    func quickRetriesEnd() {
        let refused = CloseReport(initiator: .transport, code: .abnormalClosure, reason: "refused")
        func retryAt(_ actions: [RecordLifecycle.Action]) -> MonotonicInstant? {
            for case .scheduleRetry(let instant) in actions { return instant }
            return nil
        }
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = record.socketOpened(attempt: 1, now: at(0))
        #expect(retryAt(record.socketClosed(attempt: 1, report: serverClose, now: at(60), jitter: 0.5)) == at(61))
        // An unanswered prompt on the retry: the interval, not a quick re-prompt.
        _ = record.retryDue(now: at(61))
        #expect(retryAt(record.consentAnswered(.ignored, attempt: 2, now: at(61), jitter: 0.5)) == at(71))
        // The target changes (failover): its failures wait the interval too.
        let other = EffectiveTarget(url: echo.url, user: "ann")
        _ = record.targetChanged(other, now: at(72))
        _ = record.consentAnswered(.allowed, attempt: 3, now: at(72))
        #expect(retryAt(record.socketClosed(attempt: 3, report: refused, now: at(73), jitter: 0.5)) == at(83))
    }

    @Test("the world's jitter is spread over the whole range, and deterministic for a seed")
    func worldJitter() throws {
        var values: [MonotonicInstant] = []
        for _ in 0..<200 {
            var world = World()
            world.jitterSeed = UInt64(values.count + 1)
            _ = try world.apply(.addUser(User(id: "a", name: "a", kind: .headless)), now: at(0))
            _ = try world.apply(.startSession(Session(id: "s", name: "s", host: "a", present: ["a"])), now: at(0))
            _ = try world.apply(
                .spawn("s", WorldObject(id: "o", name: "o", record: RecordSettings(url: echo.url))), now: at(0))
            let address = RecordAddress(session: "s", object: "o")
            _ = world.consentAnswered(address, attempt: 1, .allowed, now: at(0))
            for case .scheduleRetry(let instant) in world.socketClosed(
                address, attempt: 1, report: serverClose, now: at(100)
            ).map(\.action) {
                values.append(instant)
            }
        }
        #expect(values.count == 200)
        #expect(values.allSatisfy { $0 >= at(109) && $0 <= at(111) })
        #expect(values.min()! < at(109) + .milliseconds(200) && values.max()! > at(110) + .milliseconds(800))
    }

    @Test("retry cadence: a server close or failure waits ConnectRetryInterval, then asks consent again")
    func retryCadence() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = record.socketOpened(attempt: 1)
        #expect(
            record.socketClosed(attempt: 1, report: serverClose, now: at(100))
                == [.disconnected(Attempt(number: 1, target: echo), serverClose), .scheduleRetry(at: at(110))])
        #expect(record.state == .waitingToRetry(echo, at: at(110)))
        #expect(record.retryDue(now: at(109)) == [.scheduleRetry(at: at(110))])  // early wake-up: wait on
        #expect(record.retryDue(now: at(110)) == [.askConsent(Attempt(number: 2, target: echo))])
        _ = record.consentAnswered(.allowed, attempt: 2, now: at(110))
        let refused = CloseReport(initiator: .transport, code: .abnormalClosure, reason: "connect refused")
        #expect(
            record.socketClosed(attempt: 2, report: refused, now: at(111))
                == [
                    .attemptFailed(Attempt(number: 2, target: echo), reason: "connect refused"),
                    .scheduleRetry(at: at(121)),
                ])
    }

    @Test("a denial stops retrying until a field changes; then consent is asked again")
    func denial() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        #expect(record.consentAnswered(.denied, attempt: 1, now: at(0)) == [])
        #expect(record.state == .denied(echo))
        #expect(record.retryDue(now: at(1000)) == [])
        #expect(record.targetChanged(echo, now: at(5)) == [])  // nothing changed: still denied
        #expect(record.targetChanged(other, now: at(6)) == [.askConsent(Attempt(number: 2, target: other))])
    }

    @Test("the explicit disconnect (Neos #1039) closes now and stays down; no retry until the record restarts")
    func explicitDisconnect() {
        var record = RecordLifecycle(retryInterval: .seconds(1))
        _ = record.targetChanged(echo, now: at(0))
        _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = record.socketOpened(attempt: 1)
        let attempt = Attempt(number: 1, target: echo)
        #expect(
            record.disconnectRequested(now: at(5))
                == [
                    .closeSocket(attempt, reason: "disconnect requested"),
                    .disconnected(
                        attempt, CloseReport(initiator: .client, code: .normalClosure, reason: "disconnect requested")),
                ])
        #expect(record.state == .stopped(echo))
        #expect(!record.isConnected)
        // The old socket's late report changes nothing; nothing is retried.
        #expect(record.socketClosed(attempt: 1, report: serverClose, now: at(6)) == [])
        #expect(record.retryDue(now: at(100)) == [])
        #expect(record.disconnectRequested(now: at(101)) == [])
        #expect(record.targetChanged(echo, now: at(102)) == [])
        // Connect again (a restart) starts a new attempt.
        #expect(record.restart(echo, now: at(103)) == [.askConsent(Attempt(number: 2, target: echo))])
        // Disconnecting while waiting to retry cancels the retry.
        _ = record.consentAnswered(.ignored, attempt: 2, now: at(104))
        #expect(record.disconnectRequested(now: at(104)) == [.cancelRetry])
        #expect(record.state == .stopped(echo))
    }

    @Test("an ignored prompt is not a denial: retry after the interval, asking again")
    func ignored() {
        var record = RecordLifecycle(retryInterval: .seconds(3))
        _ = record.targetChanged(echo, now: at(0))
        #expect(record.consentAnswered(.ignored, attempt: 1, now: at(2)) == [.scheduleRetry(at: at(5))])
        #expect(record.retryDue(now: at(5)) == [.askConsent(Attempt(number: 2, target: echo))])
    }

    @Test("Neos #2470: disabling (no target) closes an open socket at once and cancels a pending retry")
    func disable() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = record.socketOpened(attempt: 1)
        let actions = record.targetChanged(nil, now: at(1))
        #expect(actions.first == .closeSocket(Attempt(number: 1, target: echo), reason: "no effective target"))
        #expect(actions.count == 2)
        #expect(record.state == .idle && !record.isConnected)

        var retrying = RecordLifecycle(retryInterval: .seconds(10))
        _ = retrying.targetChanged(echo, now: at(0))
        _ = retrying.consentAnswered(.ignored, attempt: 1, now: at(0))
        #expect(retrying.targetChanged(nil, now: at(1)) == [.cancelRetry])
        #expect(retrying.retryDue(now: at(100)) == [])
    }

    @Test("failover: a new handling user closes the old socket and asks the new user")
    func failover() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
        _ = record.socketOpened(attempt: 1)
        let bob = EffectiveTarget(url: echo.url, user: "bob")
        let actions = record.targetChanged(bob, now: at(1))
        #expect(actions.first == .closeSocket(Attempt(number: 1, target: echo), reason: "target changed to \(bob)"))
        #expect(actions.last == .askConsent(Attempt(number: 2, target: bob)))
        // The old socket's late report is stale and changes nothing.
        #expect(record.socketClosed(attempt: 1, report: serverClose, now: at(2)) == [])
        #expect(record.consentAnswered(.allowed, attempt: 1, now: at(2)) == [])
        #expect(record.state == .awaitingConsent(Attempt(number: 2, target: bob)))
    }

    @Test("a change while waiting for consent withdraws the request")
    func withdraw() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        #expect(
            record.targetChanged(other, now: at(1))
                == [.withdrawConsent(Attempt(number: 1, target: echo)), .askConsent(Attempt(number: 2, target: other))])
    }

    @Test("restart: the same target after a settings change (Connect again, re-enable) starts over")
    func restart() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        _ = record.targetChanged(echo, now: at(0))
        _ = record.consentAnswered(.denied, attempt: 1, now: at(0))
        #expect(record.restart(echo, now: at(1)) == [.askConsent(Attempt(number: 2, target: echo))])
    }

    @Test("report: the state and its target's user, through every state")
    func reportMatchesStateAndTarget() {
        var record = RecordLifecycle(retryInterval: .seconds(10))
        var seen: [RecordLifecycle.State] = []
        func check() {
            #expect(record.report.state == record.state)
            #expect(record.report.user == record.target?.user)
            seen.append(record.state)
        }
        check()  // idle: no user
        #expect(record.report.user == nil)
        _ = record.targetChanged(echo, now: at(0))
        check()  // awaiting consent
        _ = record.consentAnswered(.allowed, attempt: 1, now: at(0))
        check()  // connecting
        _ = record.socketOpened(attempt: 1)
        check()  // open
        _ = record.socketClosed(attempt: 1, report: serverClose, now: at(1))
        check()  // waiting to retry
        _ = record.retryDue(now: at(100))
        _ = record.consentAnswered(.denied, attempt: 2, now: at(100))
        check()  // denied
        _ = record.targetChanged(other, now: at(101))
        _ = record.disconnectRequested(now: at(101))
        check()  // stopped
        #expect(record.report.user == "alice")
        func name(_ state: RecordLifecycle.State) -> String {
            switch state {
            case .idle: "idle"
            case .awaitingConsent: "awaiting"
            case .connecting: "connecting"
            case .open: "open"
            case .waitingToRetry: "waiting"
            case .denied: "denied"
            case .stopped: "stopped"
            }
        }
        #expect(seen.map(name) == ["idle", "awaiting", "connecting", "open", "waiting", "denied", "stopped"])
    }
}

@Suite("Array.take: an element moved out, a stand-in left")
struct ArrayTakeTests {
    final class Box {
        let value: Int
        init(_ value: Int) { self.value = value }
    }

    @Test("the element comes out whole and alone; the rest stays in order")
    func movesOut() {
        var boxes = [Box(1), Box(2), Box(3)]
        let standIn = Box(0)
        var taken = boxes.take(at: 1, leaving: standIn)
        #expect(taken.value == 2)
        // Moved, not copied: the array no longer holds a reference to it.
        #expect(isKnownUniquelyReferenced(&taken))
        #expect(boxes.map(\.value) == [1, 0, 3])
        #expect(boxes[1] === standIn)
        var actions: [RecordLifecycle.Action] = [.cancelRetry, .openSocket(Attempt(number: 4, target: echo))]
        #expect(actions.take(at: 1, leaving: .cancelRetry) == .openSocket(Attempt(number: 4, target: echo)))
        #expect(actions == [.cancelRetry, .cancelRetry])
    }
}
