import EventLoop
import Glibc
import HostingCore
import MonotonicTime
import TestSupport
import Testing
import WebSocketClient
import WebSocketProtocol
import World

@testable import HostRuntime

/// A host with users host (headless), ann (interactive), and a session "s".
/// Runs a test's body on the loop. Tests start their peers (child processes,
/// which block while they start) before hopping here, so the loop, shared by
/// every suite running in parallel, never waits for a peer to start.
func onLoop(_ body: @LoopActor @Sendable () async throws -> Void) async throws {
    try await body()
}

/// A runtime with the configuration's default limits, on a fresh loop timer wheel.
@LoopActor
func makeRuntime(
    _ consent: ConsentEngine, timers: LoopTimers = LoopTimers(),
    persist: @escaping Runtime.PersistDecision = { _, _, _ in }
) -> Runtime {
    Runtime(
        core: Hosting(consent: consent), options: WebSocketClient.Options(),
        limits: Runtime.Limits(
            flood: Hosting.FloodLimits(messages: 10_000, bytes: 64 << 20, policy: .close), sendsPerSecond: 1_000),
        timers: timers, persist: persist)
}

@LoopActor
private func makeHost(allow: [AccessKey] = [], timers: LoopTimers = LoopTimers()) throws -> Runtime {
    let host = makeRuntime(ConsentEngine(allowList: Set(allow)), timers: timers)
    try host.apply(.addUser(User(id: "host", name: "Host", kind: .headless)))
    try host.apply(.addUser(User(id: "ann", name: "Ann", kind: .interactive)))
    try host.apply(.startSession(Session(id: "s", name: "World", host: "host", present: ["host", "ann"])))
    return host
}

/// Collects events until `done` says stop (or a timeout), on the loop.
@LoopActor
private func collect(
    _ host: Runtime, timeout: Duration = .seconds(10), start: @LoopActor () throws -> Void,
    until done: @escaping @LoopActor ([Hosting.Event]) -> Bool
) async throws -> [Hosting.Event] {
    var events: [Hosting.Event] = []
    host.onEvent = { events.append($0) }
    try start()
    let deadline = ContinuousClock.now + timeout
    while !done(events) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    host.onEvent = nil
    return events
}

private func url(_ port: UInt16, _ path: String = "/") -> WebSocketURL {
    WebSocketURL(secure: false, host: "127.0.0.1", port: port, resource: path)
}

private let echoer = RecordAddress(session: "s", object: "echoer")

/// The node and consent events, without the status events (state, handling user).
private func nodeEvents(_ events: [Hosting.Event]) -> [Hosting.Event] {
    events.filter {
        switch $0 {
        case .stateChanged, .handlingUserChanged, .worldChanged: return false
        default: return true
        }
    }
}

@Suite("Runtime: the hosting core live against real peers", .serialized)
struct HostTests {
    @Test("issue #12 limits: connections per handling user (not the session's host); attempts paced per destination")
    func connectionLimitsAndPacing() async throws {
        let peer = try Peer("echo")
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            host.connectionLimits = Hosting.ConnectionLimits(perUser: 2)
            let events = try await collect(host) {
                for index in 0..<3 {
                    try host.apply(
                        .spawn(
                            "s",
                            WorldObject(
                                id: ObjectID("ann\(index)"), name: "a", spawnedBy: "ann",
                                record: RecordSettings(url: url(peer.port), connectRetryInterval: .seconds(60)))))
                }
            } until: { events in
                events.filter { if case .connected = $0 { true } else { false } }.count >= 2
                    && events.contains { if case .attemptFailed = $0 { true } else { false } }
            }
            let failures = events.compactMap { if case .attemptFailed(_, let reason) = $0 { reason } else { nil } }
            #expect(failures == ["limit: ann already handles 2 connections ([limits] connections_per_user)"])
            // The session's host is not limited per user; the pace is: 2 a second to one destination.
            // Load can only delay connections, so the bound checked is an upper one: with a burst
            // of 2 and 2 a second, at most 3 may open in the first 400 ms; all 5 open later.
            host.pacer = AttemptPacer(perSecond: 0, perDestination: 2)
            var opened: [(ObjectID, ContinuousClock.Instant)] = []
            host.onEvent = { event in
                if case .connected(let address, _) = event, address.object.rawValue.hasPrefix("h") {
                    opened.append((address.object, .now))
                }
            }
            let spawned = ContinuousClock.now
            for index in 0..<5 {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(id: ObjectID("h\(index)"), name: "h", record: RecordSettings(url: url(peer.port)))))
            }
            try await Task.sleep(for: .milliseconds(400))
            let early = opened.filter { $0.1 - spawned < .milliseconds(400) }.count
            #expect(early <= 3, "\(early) opened within 400 ms")
            for _ in 0..<500 where opened.count < 5 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(opened.count == 5)
            host.onEvent = nil
            for index in 0..<3 { try host.apply(.remove("s", ObjectID("ann\(index)"))) }
            for index in 0..<5 { try host.apply(.remove("s", ObjectID("h\(index)"))) }
        }
    }

    @Test("issue #12 row 11: an echo reaction and a server that echoes back stop at sends_per_second")
    func echoLoopEnds() async throws {
        let peer = try Peer("echo")
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            host.sendsPerSecond = 50
            let events = try await collect(host) {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(
                            id: "echoer", name: "Echo", record: RecordSettings(url: url(peer.port)),
                            reactions: [
                                Reaction(on: .connected, .send(template: "ping")), Reaction(on: .received, .echo),
                            ])
                    ))
            } until: { events in
                events.contains { if case .sendError = $0 { true } else { false } }
            }
            guard
                let refusal = events.compactMap({ if case .sendError(_, let reason) = $0 { reason } else { nil } })
                    .first
            else {
                Issue.record("the loop never stopped")
                return
            }
            #expect(refusal.contains("more than 50 sends per second"))
            let sent = host.statuses[echoer]?.messagesOut ?? 0
            #expect(sent >= 50 && sent < 200, "\(sent)")
            // The loop is over: nothing more goes back and forth.
            try await Task.sleep(for: .milliseconds(300))
            let later = host.statuses[echoer]
            try await Task.sleep(for: .milliseconds(300))
            #expect(host.statuses[echoer]?.messagesIn == later?.messagesIn)
            #expect((host.statuses[echoer]?.sendsRefused ?? 0) >= 1)
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("an allow-listed echo object is a closed loop: greet on connect, echo every reply; removal closes the socket")
    func echoLoop() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            host.sendsPerSecond = 0  // the endless loop itself (its limit: echoLoopEnds)
            let events = try await collect(host) {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(
                            id: "echoer", name: "Echo", record: RecordSettings(url: url(peer.port)),
                            reactions: [
                                Reaction(on: .connected, .send(template: "hello")), Reaction(on: .received, .echo),
                            ])
                    ))
            } until: { events in
                events.filter { if case .receivedText = $0 { true } else { false } }.count >= 20
            }
            // The change comes first, then what the record does about it.
            #expect(events.first.map { if case .worldChanged(.spawn, _) = $0 { true } else { false } } == true)
            #expect(
                nodeEvents(events).first
                    == .consentAsked(echoer, user: "host", key: AccessKey(host: "127.0.0.1", port: peer.port)))
            #expect(events.contains(.consentDecided(echoer, .allowed, .allowedByAllowList)))
            #expect(events.contains(.connected(echoer, user: "host")))
            #expect(events.filter { $0 == .receivedText(echoer, "hello") }.count >= 20)
            let status = try #require(host.statuses[echoer])
            #expect(status.messagesIn >= 20 && status.messagesOut >= status.messagesIn)
            #expect(status.bytesIn == status.messagesIn * 5)
            #expect(status.connectedAt != nil && status.lastError == nil)
            try host.apply(.remove("s", "echoer"))
            #expect(host.statuses[echoer] == nil)
            for _ in 0..<100 where openTCPSockets(toPorts: [peer.port]) > 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(openTCPSockets(toPorts: [peer.port]) == 0)
            #expect(host.openRecords.isEmpty)
        }
    }

    @Test("a headless handling user is denied at once, nothing is retried")
    func headlessDenied() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost()
            let events = try await collect(host, timeout: .milliseconds(800)) {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(
                            id: "echoer", name: "Echo",
                            record: RecordSettings(url: url(peer.port), connectRetryInterval: .milliseconds(100)))))
            } until: { _ in
                false
            }
            #expect(
                nodeEvents(events) == [
                    .consentAsked(echoer, user: "host", key: AccessKey(host: "127.0.0.1", port: peer.port)),
                    .consentDecided(echoer, .denied, .headlessDenied(hostPort: "127.0.0.1:\(peer.port)")),
                ])
            #expect(events.contains(.handlingUserChanged(echoer, "host")))
            #expect(events.last == .stateChanged(echoer, .denied(EffectiveTarget(url: url(peer.port), user: "host"))))
            #expect(host.world.lifecycles[echoer]?.state == .denied(EffectiveTarget(url: url(peer.port), user: "host")))
            #expect(
                host.statuses[echoer]?.lastError
                    == "access denied: the handling user is headless and cannot be asked; allow-list 127.0.0.1:\(peer.port)"
            )
        }
    }

    @Test("an interactive user is prompted; allow is persisted first, then the record connects")
    func interactivePrompt() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var persisted: [(UserID, AccessKey, AccessDecision)] = []
            let host = makeRuntime(ConsentEngine()) { user, key, decision in persisted.append((user, key, decision)) }
            try host.apply(.addUser(User(id: "host", name: "Host", kind: .headless)))
            try host.apply(.addUser(User(id: "ann", name: "Ann", kind: .interactive)))
            try host.apply(.startSession(Session(id: "s", name: "World", host: "host", present: ["host", "ann"])))
            var prompt: ConsentPrompt?
            let events = try await collect(host) {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(
                            id: "echoer", name: "Echo", spawnedBy: "ann",
                            record: RecordSettings(url: url(peer.port), accessReason: "the echo object wants to talk")))
                )
            } until: { events in
                for case .prompt(let p) in events where prompt == nil {
                    prompt = p
                    try? host.answer(promptID: p.id, user: "ann", .allow)
                }
                return events.contains(.connected(echoer, user: "ann"))
            }
            #expect(prompt?.request.reason == "the echo object wants to talk")
            #expect(persisted.count == 1 && persisted.first?.2.verdict == .allowed)
            #expect(events.contains(.consentDecided(echoer, .allowed, .answered(.allow))))
            #expect(nodeEvents(events).last == .connected(echoer, user: "ann"))
            #expect(throws: ConsentEngine.AnswerError.self) {
                try host.answer(promptID: prompt?.id ?? 0, user: "ann", .allow)
            }
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("Neos #2508 through the host: the last message precedes OnDisconnected, then the record reconnects")
    func lastMessageThenRetry() async throws {
        let peer = try Peer("say-close")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            let events = try await collect(host) {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(
                            id: "echoer", name: "Echo",
                            record: RecordSettings(url: url(peer.port), connectRetryInterval: .milliseconds(200)))))
            } until: { events in
                events.filter { if case .connected = $0 { true } else { false } }.count >= 2
            }
            let interesting = events.filter {
                switch $0 {
                case .connected, .receivedText, .disconnected: return true
                default: return false
                }
            }
            #expect(
                Array(interesting.prefix(4)) == [
                    .connected(echoer, user: "host"), .receivedText(echoer, "last words"),
                    .disconnected(echoer, CloseReport(initiator: .server, code: .normalClosure, reason: "done")),
                    .connected(echoer, user: "host"),
                ])
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("Resonite #19/#3365: a flood over the limit closes with 1008 under the close policy; counted, not a crash")
    func floodClose() async throws {
        let peer = try Peer("flood", "20000")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            host.floodLimits = Hosting.FloodLimits(messages: 100, bytes: 1 << 20, policy: .close)
            // A small budget per loop turn, so that the flood outruns delivery even
            // when the peer's writes trickle in (a loaded machine).
            host.deliveryBudget = 10
            let events = try await collect(host) {
                try host.apply(
                    .spawn("s", WorldObject(id: "echoer", name: "Flooded", record: RecordSettings(url: url(peer.port))))
                )
            } until: { events in
                events.contains { if case .disconnected = $0 { true } else { false } }
            }
            let report = events.compactMap { if case .disconnected(_, let r) = $0 { r } else { nil } }.first
            #expect(report?.initiator == .client)
            let status = try #require(host.statuses[echoer])
            #expect(status.floods == 1)
            #expect(status.lastError?.hasPrefix("inbound flood: more than 100 messages") == true)
            #expect(status.messagesIn > 100)
            let delivered = events.filter { if case .receivedText = $0 { true } else { false } }.count
            #expect(delivered + status.dropped == status.messagesIn)
            try host.apply(.remove("s", "echoer"))
        }
        // The report carries the server's Close code (RFC 6455 §7.1.5); the peer saw ours.
        // The peer reads our Close after it has written its flood (slow on a loaded machine);
        // waiting for it happens off the loop, which other suites share.
        #expect(peer.waitForOutput(timeout: .seconds(40)) { $0.contains("RCVD 1008") }, "\(peer.output)")
    }

    @Test("under drop-oldest a flood is shed and counted; the connection lives on and ends normally")
    func floodDrop() async throws {
        let peer = try Peer("flood", "20000")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            host.floodLimits = Hosting.FloodLimits(messages: 100, bytes: 1 << 20, policy: .dropOldest)
            host.deliveryBudget = 10
            let events = try await collect(host, timeout: .seconds(30)) {
                try host.apply(
                    .spawn("s", WorldObject(id: "echoer", name: "Flooded", record: RecordSettings(url: url(peer.port))))
                )
            } until: { events in
                events.contains { if case .disconnected = $0 { true } else { false } }
            }
            let report = events.compactMap { if case .disconnected(_, let r) = $0 { r } else { nil } }.first
            #expect(report == CloseReport(initiator: .server, code: .normalClosure, reason: "flood over"))
            let status = try #require(host.statuses[echoer])
            #expect(status.messagesIn == 20_000)
            #expect(status.dropped > 0 && status.floods >= 1)
            let delivered = events.filter { if case .receivedText = $0 { true } else { false } }.count
            #expect(delivered + status.dropped == 20_000)
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("on a manual clock: the idle timeout and the retry wait for time to move, not for the test to sleep")
    func idleReconnect() async throws {
        let peer = try Peer("silent")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let clock = ManualClock()
            let timers = LoopTimers(clock: .manual(clock))
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)], timers: timers)
            host.options.idleTimeout = .seconds(20)
            host.options.keepaliveInterval = .zero
            var events: [Hosting.Event] = []
            host.onEvent = { events.append($0) }
            func connections() -> Int { events.filter { if case .connected = $0 { true } else { false } }.count }
            try host.apply(
                .spawn(
                    "s",
                    WorldObject(
                        id: "echoer", name: "Quiet",
                        record: RecordSettings(url: url(peer.port), connectRetryInterval: .seconds(10)))))
            // Socket I/O is real (on the loop): wait for it; the clock stands still meanwhile.
            for _ in 0..<1000 where connections() < 1 { try await Task.sleep(for: .milliseconds(5)) }
            #expect(connections() == 1)
            // A silent server for 19 s of manual time: still connected.
            timers.advance(to: clock.now + .seconds(19))
            #expect(!events.contains { if case .disconnected = $0 { true } else { false } })
            // Past 20 s the idle timeout fires; the retry is due 10 s later (± 10 % jitter), not before
            // (a connection shorter than 30 s was not healthy: no quick first retry).
            timers.advance(to: clock.now + .seconds(2))
            let disconnect = events.compactMap { if case .disconnected(_, let r) = $0 { r } else { nil } }.first
            #expect(disconnect?.initiator == .transport)
            #expect(disconnect?.reason.hasPrefix("idle timeout") == true)
            timers.advance(to: clock.now + .seconds(8))
            #expect(
                host.world.lifecycles[echoer].map { if case .waitingToRetry = $0.state { true } else { false } } == true
            )
            timers.advance(to: clock.now + .seconds(4))
            for _ in 0..<1000 where connections() < 2 { try await Task.sleep(for: .milliseconds(5)) }
            #expect(connections() == 2)
            host.onEvent = nil
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("Neos #3043: two records of one user to one URL each get their own socket and their own messages")
    func twins() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            let twin = RecordAddress(session: "s", object: "twin")
            let events = try await collect(host) {
                for id in ["echoer", "twin"] {
                    try host.apply(
                        .spawn(
                            "s",
                            WorldObject(
                                id: ObjectID(id), name: id, record: RecordSettings(url: url(peer.port)),
                                reactions: [Reaction(on: .connected, .send(template: "I am \(id)"))])))
                }
            } until: { events in
                events.filter { if case .receivedText = $0 { true } else { false } }.count >= 2
            }
            #expect(events.contains(.receivedText(echoer, "I am echoer")))
            #expect(events.contains(.receivedText(twin, "I am twin")))
            #expect(openTCPSockets(toPorts: [peer.port]) == 2)
            try host.apply(.closeSession("s"))
            for _ in 0..<100 where openTCPSockets(toPorts: [peer.port]) > 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(openTCPSockets(toPorts: [peer.port]) == 0)
        }
    }

    @Test("failover shows in the event stream: handling user changed, then state changes of the new attempt")
    func failoverEvents() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: peer.port)])
            _ = try await collect(host) {
                try host.apply(
                    .spawn(
                        "s",
                        WorldObject(
                            id: "echoer", name: "Worn", wornBy: "ann", record: RecordSettings(url: url(peer.port))))
                )
            } until: { events in
                events.contains(.connected(echoer, user: "ann"))
            }
            let events = try await collect(host) {
                try host.apply(.leave("s", "ann"))
            } until: { events in
                events.contains(.connected(echoer, user: "host"))
            }
            let users = events.compactMap { if case .handlingUserChanged(_, let user) = $0 { user } else { nil } }
            #expect(users == ["host"])
            let states = events.compactMap { event -> String? in
                guard case .stateChanged(_, let state) = event else { return nil }
                switch state {
                case .awaitingConsent: return "awaitingConsent"
                case .connecting: return "connecting"
                case .open: return "open"
                default: return "other"
                }
            }
            #expect(Array(states.suffix(2)) == ["connecting", "open"])
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("an attempt that fails inside the socket's start is reported after the attempt it ends, never before")
    func failureInsideStart() async throws {
        try await onLoop {
            // A denied network refuses the literal address before anything is sent:
            // the client reports closed from inside start().
            let host = try makeHost(allow: [AccessKey(host: "127.0.0.1", port: 9)])
            host.networkPolicy = NetworkPolicy(denied: [IPNetwork("127.0.0.0/8")!])
            var states: [RecordLifecycle.State] = []
            var failures = 0
            host.onEvent = { event in
                switch event {
                case .stateChanged(let address, let state) where address == echoer: states.append(state)
                case .attemptFailed: failures += 1
                default: break
                }
            }
            try host.apply(
                .spawn(
                    "s",
                    WorldObject(
                        id: "echoer", name: "Refused",
                        record: RecordSettings(url: url(9), connectRetryInterval: .seconds(60)))))
            #expect(failures == 1)
            // The subscriber's last word on the record is where it is: waiting to retry.
            let last = try #require(states.last)
            #expect({ if case .waitingToRetry = last { true } else { false } }(), "\(states)")
            #expect({ if case .waitingToRetry = host.world.lifecycles[echoer]!.state { true } else { false } }())
            host.onEvent = nil
            try host.apply(.remove("s", "echoer"))
        }
    }

    @Test("the Text Sender reports OnSendError when not connected")
    @LoopActor
    func sendNotConnected() throws {
        let host = try makeHost()
        var events: [Hosting.Event] = []
        host.onEvent = { events.append($0) }
        host.send(echoer, .text("x"))
        #expect(events == [.sendStart(echoer), .sendError(echoer, reason: "not connected")])
    }
}
