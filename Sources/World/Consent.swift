import MonotonicTime
import WebSocketProtocol

/// SPEC §4: what a user is asked to allow.
public enum AccessScope: String, Sendable, CaseIterable {
    case websocket
}

/// The key of a decision: host, port and scope (SPEC §4 step 3).
public struct AccessKey: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var scope: AccessScope

    public init(host: String, port: UInt16, scope: AccessScope = .websocket) {
        self.host = host.lowercased()
        self.port = port
        self.scope = scope
    }

    /// `host:port`, as an operator would add it to `allowed_url_hosts`.
    public var hostPort: String { HostPort.text(host: host, port: port) }
    public var description: String { "\(scope.rawValue) \(hostPort)" }
}

/// A persisted answer of one user for one key.
public struct AccessDecision: Equatable, Sendable {
    public enum Verdict: String, Equatable, Sendable {
        case allowed, blocked
    }

    public var verdict: Verdict
    /// The reason shown when the user decided (SPEC §4: "plus the last reason shown").
    public var reason: String

    public init(verdict: Verdict, reason: String) {
        self.verdict = verdict
        self.reason = reason
    }
}

/// One record's request for consent.
/// What a consent decision means for the attempt that asked.
public enum ConsentVerdict: Equatable, Sendable {
    case allowed, denied
    /// No answer (ignored, timed out): the attempt fails and retries later.
    case ignored
}

public struct AccessRequest: Equatable, Sendable {
    /// The asking record's attempt (its identity for the answer).
    public var requester: Requester
    public var user: UserID
    public var key: AccessKey
    /// The record's `AccessReason`; empty when it states none.
    public var statedReason: String
    /// Shown in the prompt: the stated reason, or which record connects where
    /// (made when asked for: most requests are decided without a prompt).
    public var reason: String {
        statedReason.isEmpty ? "\(requester.session)/\(requester.object) connects to \(key.hostPort)" : statedReason
    }

    public struct Requester: Hashable, Sendable {
        public var session: SessionID
        public var object: ObjectID
        public var attempt: Int

        public init(session: SessionID, object: ObjectID, attempt: Int) {
            self.session = session
            self.object = object
            self.attempt = attempt
        }
    }

    public init(requester: Requester, user: UserID, key: AccessKey, reason: String) {
        self.requester = requester
        self.user = user
        self.key = key
        self.statedReason = reason
    }
}

/// A prompt on a user's consent channel.
public struct ConsentPrompt: Equatable, Sendable {
    public var id: Int
    public var user: UserID
    public var key: AccessKey
    /// The first requester's reason, object and session (identical requests share the prompt).
    public var request: AccessRequest
}

/// SPEC §4 as a pure engine: requests in, answers and prompts out. The
/// decisions it holds are the persisted ones; an answer takes effect only
/// after the shell has persisted it (`prepare` → persist → `commit`).
public struct ConsentEngine: Sendable {
    public enum Answer: String, Equatable, Sendable {
        case allow, deny, ignore
    }

    /// Why a request was decided without a prompt, or how a prompt ended.
    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case allowedByAllowList
        case decidedBefore(AccessDecision.Verdict)
        case emptyHost
        /// Headless users cannot be asked: add `hostPort` to `allowed_url_hosts`.
        case headlessDenied(hostPort: String)
        /// Five distinct requests already wait for this user.
        case tooManyPending
        case answered(Answer)
        case timedOut

        public var description: String {
            switch self {
            case .allowedByAllowList: return "allowed by security.allowed_url_hosts"
            case .decidedBefore(let verdict): return "\(verdict.rawValue) by an earlier decision"
            case .emptyHost: return "the URL has no host"
            case .headlessDenied(let hostPort):
                return "the handling user is headless and cannot be asked; allow-list \(hostPort)"
            case .tooManyPending: return "too many requests are waiting for this user's answer"
            case .answered(let answer): return "the user answered \(answer.rawValue)"
            case .timedOut: return "the prompt timed out"
            }
        }
    }

    public enum Action: Equatable, Sendable {
        /// Deliver the decision to one record's attempt.
        case decide(AccessRequest.Requester, ConsentVerdict, Outcome)
        /// Show this prompt on the user's consent channel.
        case prompt(ConsentPrompt)
        /// The prompt needs no answer any more.
        case dismiss(ConsentPrompt)
        /// Call `timedOut(prompt:)` at this instant.
        case scheduleTimeout(promptID: Int, at: MonotonicInstant)
    }

    public enum AnswerError: Error, Equatable, Sendable, CustomStringConvertible {
        case noSuchPrompt(Int)
        case notYourPrompt(prompt: Int, user: UserID)

        public var description: String {
            switch self {
            case .noSuchPrompt(let id): return "no pending prompt \(id)"
            case .notYourPrompt(let id, let user): return "prompt \(id) is not addressed to \(user)"
            }
        }
    }

    /// A validated answer, to be persisted (when it has a `change`) before `commit`.
    public struct PreparedAnswer: Equatable, Sendable {
        public var promptID: Int
        public var user: UserID
        public var answer: Answer
        /// The decision to persist first; nil for ignore (not persisted).
        public var change: (key: AccessKey, decision: AccessDecision)?

        public static func == (a: Self, b: Self) -> Bool {
            a.promptID == b.promptID && a.user == b.user && a.answer == b.answer && a.change?.key == b.change?.key
                && a.change?.decision == b.change?.decision
        }
    }

    /// SPEC §4 step 5: at most this many distinct requests wait per user.
    public static let maxPendingPerUser = 5

    public var allowList: Set<AccessKey>
    /// Zero: prompts wait forever (the reference has no timeout).
    public var timeout: Duration
    public private(set) var decisions: [UserID: [AccessKey: AccessDecision]]

    private struct Pending {
        var prompt: ConsentPrompt
        var requesters: [AccessRequest]
        var shown: Bool
    }

    /// Per user, the distinct pending requests in arrival order.
    private var pending: [UserID: [Pending]] = [:]
    private var nextPromptID = 0

    public init(
        allowList: Set<AccessKey> = [], timeout: Duration = .zero,
        decisions: [UserID: [AccessKey: AccessDecision]] = [:]
    ) {
        self.allowList = allowList
        self.timeout = timeout
        self.decisions = decisions
    }

    /// Prompts currently waiting for `user`, the shown one first.
    public func pendingPrompts(for user: UserID) -> [ConsentPrompt] {
        (pending[user] ?? []).map(\.prompt)
    }

    /// Prompts waiting for any user.
    public var pendingCount: Int { pending.values.reduce(0) { $0 + $1.count } }

    /// SPEC §4 steps 1–5 for one request.
    public mutating func request(_ request: AccessRequest, userKind: UserKind, now: MonotonicInstant) -> [Action] {
        let key = request.key
        if key.host.isEmpty { return [.decide(request.requester, .denied, .emptyHost)] }
        if allowList.contains(AccessKey(host: key.host, port: key.port)) {
            return [.decide(request.requester, .allowed, .allowedByAllowList)]
        }
        if let decision = decisions[request.user]?[key] {
            return [
                .decide(
                    request.requester, decision.verdict == .allowed ? .allowed : .denied,
                    .decidedBefore(decision.verdict))
            ]
        }
        guard userKind == .interactive else {
            return [.decide(request.requester, .denied, .headlessDenied(hostPort: key.hostPort))]
        }
        var queue = pending[request.user] ?? []
        if let index = queue.firstIndex(where: { $0.prompt.key == key }) {
            queue[index].requesters.append(request)  // identical requests share one prompt
            pending[request.user] = queue
            return []
        }
        guard queue.count < Self.maxPendingPerUser else {
            return [.decide(request.requester, .denied, .tooManyPending)]
        }
        nextPromptID += 1
        let prompt = ConsentPrompt(id: nextPromptID, user: request.user, key: key, request: request)
        queue.append(Pending(prompt: prompt, requesters: [request], shown: false))
        pending[request.user] = queue
        return showNext(for: request.user, now: now)
    }

    /// Checks an answer without changing anything. Allow and deny carry the
    /// decision to persist; the shell persists it, then calls `commit`.
    public func prepare(promptID: Int, user: UserID, answer: Answer) -> Result<PreparedAnswer, AnswerError> {
        guard let owner = pending.first(where: { $0.value.contains { $0.prompt.id == promptID } })?.key,
            let entry = pending[owner]?.first(where: { $0.prompt.id == promptID })
        else { return .failure(.noSuchPrompt(promptID)) }
        // Nobody can answer for another user (SPEC §4).
        guard owner == user else { return .failure(.notYourPrompt(prompt: promptID, user: user)) }
        var change: (AccessKey, AccessDecision)?
        switch answer {
        case .allow: change = (entry.prompt.key, AccessDecision(verdict: .allowed, reason: entry.prompt.request.reason))
        case .deny: change = (entry.prompt.key, AccessDecision(verdict: .blocked, reason: entry.prompt.request.reason))
        case .ignore: change = nil
        }
        return .success(PreparedAnswer(promptID: promptID, user: user, answer: answer, change: change))
    }

    /// Applies a prepared (and, for allow/deny, persisted) answer: every record
    /// sharing the prompt gets it, and the user's next prompt is shown.
    public mutating func commit(_ prepared: PreparedAnswer, now: MonotonicInstant) -> [Action] {
        guard var queue = pending[prepared.user],
            let index = queue.firstIndex(where: { $0.prompt.id == prepared.promptID })
        else { return [] }
        let entry = queue.remove(at: index)
        pending[prepared.user] = queue.isEmpty ? nil : queue
        if let change = prepared.change { decisions[prepared.user, default: [:]][change.key] = change.decision }
        let verdict: ConsentVerdict =
            switch prepared.answer {
            case .allow: .allowed
            case .deny: .denied
            case .ignore: .ignored
            }
        return entry.requesters.map { .decide($0.requester, verdict, .answered(prepared.answer)) }
            + showNext(for: prepared.user, now: now)
    }

    /// The optional timeout fired: counts as ignore (SPEC §4).
    public mutating func timedOut(promptID: Int, now: MonotonicInstant) -> [Action] {
        guard let user = pending.first(where: { $0.value.contains { $0.prompt.id == promptID && $0.shown } })?.key,
            var queue = pending[user], let index = queue.firstIndex(where: { $0.prompt.id == promptID })
        else { return [] }
        let entry = queue.remove(at: index)
        pending[user] = queue.isEmpty ? nil : queue
        return entry.requesters.map { .decide($0.requester, .ignored, .timedOut) } + showNext(for: user, now: now)
    }

    /// A record no longer needs its answer (its target changed, it was removed).
    public mutating func withdraw(_ requester: AccessRequest.Requester, now: MonotonicInstant) -> [Action] {
        for (user, var queue) in pending {
            guard let index = queue.firstIndex(where: { $0.requesters.contains { $0.requester == requester } }) else {
                continue
            }
            queue[index].requesters.removeAll { $0.requester == requester }
            guard queue[index].requesters.isEmpty else {
                pending[user] = queue
                return []
            }
            let entry = queue.remove(at: index)
            pending[user] = queue.isEmpty ? nil : queue
            return (entry.shown ? [.dismiss(entry.prompt)] : []) + showNext(for: user, now: now)
        }
        return []
    }

    /// Sets a decision made elsewhere (declared in the config, restored from the store).
    public mutating func declare(user: UserID, key: AccessKey, _ decision: AccessDecision) {
        decisions[user, default: [:]][key] = decision
    }

    /// Users list and forget their decisions (SPEC §4).
    @discardableResult
    public mutating func forget(user: UserID, key: AccessKey) -> Bool {
        decisions[user]?.removeValue(forKey: key) != nil
    }

    /// One prompt at a time per user: show the oldest when none is shown.
    private mutating func showNext(for user: UserID, now: MonotonicInstant) -> [Action] {
        guard var queue = pending[user], !queue.isEmpty, !queue.contains(where: \.shown) else { return [] }
        queue[0].shown = true
        pending[user] = queue
        var actions: [Action] = [.prompt(queue[0].prompt)]
        if timeout > .zero { actions.append(.scheduleTimeout(promptID: queue[0].prompt.id, at: now + timeout)) }
        return actions
    }
}
