import MonotonicTime
import Testing

@testable import World

private let now = MonotonicInstant(nanoseconds: 1_000_000_000)
private func request(
    _ object: ObjectID, user: UserID = "ann", host: String = "chat.example", port: UInt16 = 443, attempt: Int = 1
)
    -> AccessRequest
{
    AccessRequest(
        requester: .init(session: "s", object: object, attempt: attempt), user: user,
        key: AccessKey(host: host, port: port),
        reason: "\(object) wants to talk to \(host)")
}

private func prompts(_ actions: [ConsentEngine.Action]) -> [ConsentPrompt] {
    actions.compactMap { if case .prompt(let p) = $0 { return p } else { return nil } }
}

@Suite("ConsentEngine: the SPEC §4 host-access model")
struct ConsentEngineTests {
    @Test("steps 1-4 decide without a prompt: empty host, allow-list, earlier decisions, headless users")
    func withoutPrompt() {
        var engine = ConsentEngine(
            allowList: [AccessKey(host: "localhost", port: 8080)],
            decisions: [
                "ann": [AccessKey(host: "blocked.example", port: 443): AccessDecision(verdict: .blocked, reason: "r")]
            ])
        let r = request("o")
        #expect(
            engine.request(request("o", host: ""), userKind: .interactive, now: now)
                == [.decide(r.requester, .denied, .emptyHost)])
        #expect(
            engine.request(request("o", host: "LOCALHOST", port: 8080), userKind: .headless, now: now)
                == [.decide(r.requester, .allowed, .allowedByAllowList)])
        #expect(
            engine.request(request("o", host: "blocked.example"), userKind: .interactive, now: now)
                == [.decide(r.requester, .denied, .decidedBefore(.blocked))])
        #expect(
            engine.request(request("o", host: "new.example", port: 9000), userKind: .headless, now: now)
                == [.decide(r.requester, .denied, .headlessDenied(hostPort: "new.example:9000"))])
        #expect(engine.decisions["ann"]?.count == 1)  // the headless denial persisted nothing
    }

    @Test("identical pending requests share one prompt; one prompt at a time; a 6th distinct request is denied at once")
    func pendingRules() {
        var engine = ConsentEngine()
        let first = engine.request(request("a", host: "h1"), userKind: .interactive, now: now)
        #expect(prompts(first).map(\.key.host) == ["h1"])
        #expect(engine.request(request("b", host: "h1"), userKind: .interactive, now: now) == [])  // shares the prompt
        for host in ["h2", "h3", "h4", "h5"] {
            // Queued behind the shown prompt, not shown.
            #expect(engine.request(request("c", host: host), userKind: .interactive, now: now) == [])
        }
        let sixth = request("d", host: "h6")
        #expect(
            engine.request(sixth, userKind: .interactive, now: now) == [
                .decide(sixth.requester, .denied, .tooManyPending)
            ])
        #expect(engine.pendingPrompts(for: "ann").map(\.key.host) == ["h1", "h2", "h3", "h4", "h5"])
    }

    @Test("allow is persisted (prepare → persist → commit), reaches every sharer, and the next prompt shows")
    func allow() throws {
        var engine = ConsentEngine()
        let shown = prompts(engine.request(request("a", host: "h1"), userKind: .interactive, now: now))[0]
        _ = engine.request(request("b", host: "h1"), userKind: .interactive, now: now)
        _ = engine.request(request("c", host: "h2"), userKind: .interactive, now: now)
        let prepared = try engine.prepare(promptID: shown.id, user: "ann", answer: .allow).get()
        #expect(prepared.change?.decision == AccessDecision(verdict: .allowed, reason: "a wants to talk to h1"))
        #expect(engine.decisions.isEmpty)  // nothing takes effect before commit
        let actions = engine.commit(prepared, now: now)
        #expect(actions.count == 3)
        #expect(actions[0] == .decide(request("a").requester, .allowed, .answered(.allow)))
        #expect(actions[1] == .decide(request("b").requester, .allowed, .answered(.allow)))
        #expect(prompts(actions).map(\.key.host) == ["h2"])
        // Persisted: the next request for h1 is decided without a prompt.
        #expect(
            engine.request(request("z", host: "h1"), userKind: .interactive, now: now)
                == [.decide(request("z").requester, .allowed, .decidedBefore(.allowed))])
        // Forgotten: asked again.
        let forgotten = engine.forget(user: "ann", key: AccessKey(host: "h1", port: 443))
        #expect(forgotten)
        _ = engine.commit(
            try engine.prepare(promptID: prompts(actions)[0].id, user: "ann", answer: .deny).get(), now: now)
        #expect(prompts(engine.request(request("z", host: "h1"), userKind: .interactive, now: now)).count == 1)
    }

    @Test("ignore is not persisted: the next attempt asks again")
    func ignore() throws {
        var engine = ConsentEngine()
        let shown = prompts(engine.request(request("a"), userKind: .interactive, now: now))[0]
        let prepared = try engine.prepare(promptID: shown.id, user: "ann", answer: .ignore).get()
        #expect(prepared.change == nil)
        #expect(
            engine.commit(prepared, now: now) == [.decide(request("a").requester, .ignored, .answered(.ignore))])
        #expect(prompts(engine.request(request("a", attempt: 2), userKind: .interactive, now: now)).count == 1)
    }

    @Test("nobody can answer for another user; unknown prompts are refused")
    func wrongUser() {
        var engine = ConsentEngine()
        let shown = prompts(engine.request(request("a"), userKind: .interactive, now: now))[0]
        #expect(throws: ConsentEngine.AnswerError.notYourPrompt(prompt: shown.id, user: "bob")) {
            try engine.prepare(promptID: shown.id, user: "bob", answer: .allow).get()
        }
        #expect(throws: ConsentEngine.AnswerError.noSuchPrompt(99)) {
            try engine.prepare(promptID: 99, user: "ann", answer: .allow).get()
        }
    }

    @Test("the optional timeout counts as ignore and shows the next prompt")
    func timeout() {
        var engine = ConsentEngine(timeout: .seconds(30))
        let first = engine.request(request("a", host: "h1"), userKind: .interactive, now: now)
        let shown = prompts(first)[0]
        #expect(first.last == .scheduleTimeout(promptID: shown.id, at: now + .seconds(30)))
        _ = engine.request(request("b", host: "h2"), userKind: .interactive, now: now)
        let actions = engine.timedOut(promptID: shown.id, now: now + .seconds(30))
        #expect(actions.first == .decide(request("a").requester, .ignored, .timedOut))
        #expect(prompts(actions).map(\.key.host) == ["h2"])
        #expect(engine.decisions.isEmpty)
    }

    @Test("withdrawing the last requester dismisses a shown prompt and shows the next")
    func withdraw() {
        var engine = ConsentEngine()
        let shown = prompts(engine.request(request("a", host: "h1"), userKind: .interactive, now: now))[0]
        _ = engine.request(request("b", host: "h2"), userKind: .interactive, now: now)
        let actions = engine.withdraw(request("a").requester, now: now)
        #expect(actions.first == .dismiss(shown))
        #expect(prompts(actions).map(\.key.host) == ["h2"])
    }
}
