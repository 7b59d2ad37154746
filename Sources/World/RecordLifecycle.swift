import MonotonicTime
import WebSocketProtocol

/// What a record should be connected to now (SPEC §2): its URL, when it is
/// enabled and a handling user is present; else nothing.
public struct EffectiveTarget: Equatable, Sendable, CustomStringConvertible {
    public var url: WebSocketURL
    public var user: UserID

    public init(url: WebSocketURL, user: UserID) {
        self.url = url
        self.user = user
    }

    public var description: String { "\(url) as \(user)" }
}

/// One try at connecting to a target; its number tells stale reports apart.
public struct Attempt: Equatable, Sendable {
    public var number: Int
    public var target: EffectiveTarget
}

/// SPEC §2's record lifecycle as one state machine: inputs with an injected
/// `now`, outputs as actions for the shell. No sockets, clocks or logging.
public struct RecordLifecycle: Sendable {
    /// Every case is one status of the record.
    public enum State: Equatable, Sendable {
        /// No effective target (disabled, no URL, or no handling user present).
        case idle
        /// Asked the handling user's consent for the attempt's target (SPEC §4).
        case awaitingConsent(Attempt)
        /// Allowed: resolving, connecting, TLS, WebSocket handshake.
        case connecting(Attempt)
        /// The WebSocket is open: the only state where `IsConnected` is true.
        case open(Attempt)
        /// After a failure, a server close, an idle timeout or an ignored
        /// prompt: a new attempt (asking consent again) at `at`.
        case waitingToRetry(EffectiveTarget, at: MonotonicInstant)
        /// The handling user denied the target: no retries until URL,
        /// HandlingUser or Enabled changes.
        case denied(EffectiveTarget)
        /// Disconnected on request (the explicit disconnect, Neos #1039): no
        /// retries until the target changes or the record restarts (Connect,
        /// a change of URL, Enabled or HandlingUser).
        case stopped(EffectiveTarget)
    }

    /// What the shell must do, in order.
    public enum Action: Equatable, Sendable {
        /// Ask the target user's consent channel (the consent engine decides).
        case askConsent(Attempt)
        /// The attempt no longer needs an answer (its target changed).
        case withdrawConsent(Attempt)
        /// Open a socket for the attempt.
        case openSocket(Attempt)
        /// Tear the attempt's socket down now (Neos #1375, #2470).
        case closeSocket(Attempt, reason: String)
        /// Call `retryDue` at this instant (and not before).
        case scheduleRetry(at: MonotonicInstant)
        case cancelRetry
        /// `OnConnected`.
        case connected(Attempt)
        /// `OnDisconnected`, with who closed and why.
        case disconnected(Attempt, CloseReport)
        /// An attempt ended before opening (network, TLS or handshake failure).
        case attemptFailed(Attempt, reason: String)
    }

    public private(set) var state = State.idle
    /// `ConnectRetryInterval`.
    public var retryInterval: Duration
    private var attempts = 0
    /// When the open attempt opened (nil: not open, or not told).
    private var openedAt: MonotonicInstant?
    /// After a healthy connection ended: the next quick wait (it doubles with
    /// every failed attempt until it reaches the interval); nil: the interval.
    private var backoff: Duration?

    /// A connection open at least this long was healthy: when it ends, the
    /// retries come quickly, about `quickRetry`, then twice that, and so on up
    /// to the interval (a server restart costs a second or two, not
    /// `ConnectRetryInterval`).
    public static let healthyAfter: Duration = .seconds(30)
    public static let quickRetry: Duration = .seconds(1)

    public init(retryInterval: Duration) {
        self.retryInterval = retryInterval
    }

    /// `IsConnected` (SPEC §2).
    public var isConnected: Bool {
        if case .open = state { return true }
        return false
    }

    /// The state and the handling user of its target (what the event stream
    /// reports), read together from one copy of the lifecycle.
    public var report: (state: State, user: UserID?) { (state, target?.user) }

    /// The target the record is working on, if any.
    public var target: EffectiveTarget? {
        switch state {
        case .idle: return nil
        case .awaitingConsent(let a), .connecting(let a), .open(let a): return a.target
        case .waitingToRetry(let t, _), .denied(let t), .stopped(let t): return t
        }
    }

    /// The effective target was (re)computed: after any change of URL, Enabled,
    /// HandlingUser, or of who is present. A different target closes what is
    /// open and starts a new attempt; the same target changes nothing.
    /// `reason`, when given, says why the target went away.
    public mutating func targetChanged(_ newTarget: EffectiveTarget?, now: MonotonicInstant, reason: String? = nil)
        -> [Action]
    {
        guard newTarget != target || (newTarget == nil && state != .idle) else { return [] }
        forgetHealth()  // a new target's failures wait the interval
        var actions = tearDown(
            reason: newTarget == nil ? reason ?? "no effective target" : "target changed to \(newTarget!)")
        if let newTarget {
            actions += startAttempt(newTarget)
        } else {
            state = .idle
        }
        return actions
    }

    /// A field changed that restarts the record even when the target is the
    /// same (SPEC §2: any change of URL, Enabled or HandlingUser), e.g. the
    /// Connect node run again, or re-enabling after a denial.
    public mutating func restart(_ newTarget: EffectiveTarget?, now: MonotonicInstant) -> [Action] {
        forgetHealth()
        var actions = tearDown(reason: "record settings changed")
        if let newTarget {
            actions += startAttempt(newTarget)
        } else {
            state = .idle
        }
        return actions
    }

    /// The explicit disconnect (Neos #1039): ends whatever the record is doing
    /// and stays down; unlike a server close, no retry follows.
    public mutating func disconnectRequested(now: MonotonicInstant) -> [Action] {
        forgetHealth()
        guard let target, state != .stopped(target) else { return [] }
        let actions = tearDown(reason: "disconnect requested")
        state = .stopped(target)
        return actions
    }

    public mutating func consentAnswered(
        _ answer: ConsentVerdict, attempt number: Int, now: MonotonicInstant, jitter: Double = 0.5
    ) -> [Action] {
        guard case .awaitingConsent(let attempt) = state, attempt.number == number else { return [] }
        switch answer {
        case .allowed:
            state = .connecting(attempt)
            return [.openSocket(attempt)]
        case .denied:
            forgetHealth()
            state = .denied(attempt.target)
            return []
        case .ignored:
            // An unanswered prompt is asked again after the interval, never
            // in quick succession (the quick retries are for connections).
            return [waitToRetry(attempt.target, now: now, jitter: jitter, quickAllowed: false)]
        }
    }

    public mutating func socketOpened(attempt number: Int, now: MonotonicInstant? = nil) -> [Action] {
        guard case .connecting(let attempt) = state, attempt.number == number else { return [] }
        state = .open(attempt)
        openedAt = now
        backoff = nil
        return [.connected(attempt)]
    }

    /// The attempt's socket ended: before opening (a failure) or after (a
    /// server close, an idle timeout, a protocol error). Either way: retry,
    /// after `ConnectRetryInterval` ± 10 % (`jitter` in 0..<1 places it), or
    /// after about a second when a healthy connection ended.
    public mutating func socketClosed(
        attempt number: Int, report: CloseReport, now: MonotonicInstant, jitter: Double = 0.5
    ) -> [Action] {
        switch state {
        case .connecting(let attempt) where attempt.number == number:
            // (One array literal: concatenating two cost an allocation and a copy.)
            return [
                .attemptFailed(attempt, reason: report.reason), waitToRetry(attempt.target, now: now, jitter: jitter),
            ]
        case .open(let attempt) where attempt.number == number:
            let healthy = openedAt.map { now - $0 >= Self.healthyAfter } ?? false
            openedAt = nil
            if healthy { backoff = Self.quickRetry }
            return [.disconnected(attempt, report), waitToRetry(attempt.target, now: now, jitter: jitter)]
        default:
            return []  // a stale report from an attempt already torn down
        }
    }

    /// The retry timer fired: a new attempt, asking consent again.
    public mutating func retryDue(now: MonotonicInstant) -> [Action] {
        guard case .waitingToRetry(let target, let at) = state else { return [] }
        guard now >= at else { return [.scheduleRetry(at: at)] }
        return startAttempt(target)
    }

    private mutating func startAttempt(_ target: EffectiveTarget) -> [Action] {
        attempts += 1
        let attempt = Attempt(number: attempts, target: target)
        state = .awaitingConsent(attempt)
        return [.askConsent(attempt)]
    }

    /// The wait before the next attempt: the interval ± 10 % (a wave of
    /// records that failed together does not come back together), or after
    /// a healthy connection ended the quick backoff × 0.5–1.5 (1 s, 2 s,
    /// 4 s, … never more than the interval; then the interval again).
    private mutating func waitToRetry(
        _ target: EffectiveTarget, now: MonotonicInstant, jitter: Double = 0.5, quickAllowed: Bool = true
    ) -> Action {
        let jitter = min(max(jitter, 0), 1)
        let wait: Duration
        if !quickAllowed {
            wait = retryInterval * (0.9 + 0.2 * jitter)
        } else if let quick = backoff, quick < retryInterval {
            wait = min(retryInterval, quick * (0.5 + jitter))
            backoff = quick * 2
        } else {
            backoff = nil
            wait = retryInterval * (0.9 + 0.2 * jitter)
        }
        let at = now + wait
        state = .waitingToRetry(target, at: at)
        return .scheduleRetry(at: at)
    }

    /// A new target, a restart or a disconnect: the health of a connection
    /// before it does not speed up the retries after it.
    private mutating func forgetHealth() {
        backoff = nil
        openedAt = nil
    }

    /// What ends the current state's work; leaves `state` to the caller.
    private func tearDown(reason: String) -> [Action] {
        switch state {
        case .idle, .denied, .stopped:
            return []
        case .awaitingConsent(let attempt):
            return [.withdrawConsent(attempt)]
        case .connecting(let attempt):
            return [.closeSocket(attempt, reason: reason)]
        case .open(let attempt):
            // OnDisconnected now: the record's connection ends here, whatever
            // the old socket reports later (a stale attempt).
            return [
                .closeSocket(attempt, reason: reason),
                .disconnected(attempt, CloseReport(initiator: .client, code: .normalClosure, reason: reason)),
            ]
        case .waitingToRetry:
            return [.cancelRetry]
        }
    }
}
