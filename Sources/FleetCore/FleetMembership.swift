import MonotonicTime
import World

/// The lease timing of a fleet (`[fleet]`, docs/fleet.md): a host's lease
/// runs `lease` past the database's clock at each renewal; a host that has
/// not renewed for `renewDeadline` (by its own clock, counted from when the
/// last successful renewal was *sent*) fences itself: it closes every socket
/// it holds, and aborts what has not closed `fenceGrace` later, all before
/// its lease can have expired. Renewals go every `retryPeriod`.
public struct FleetTiming: Equatable, Sendable {
    public var lease: Duration
    public var renewDeadline: Duration
    public var retryPeriod: Duration

    public init(
        lease: Duration = .seconds(15), renewDeadline: Duration = .seconds(10), retryPeriod: Duration = .seconds(2)
    ) {
        self.lease = lease
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
    }

    /// From the fence to the abort of sockets that have not closed: half the
    /// gap between the renew deadline and the lease, so the other half is the
    /// safety margin (clock rates, scheduling).
    public var fenceGrace: Duration { (lease - renewDeadline) / 2 }

    /// What is wrong with the timing, or nil: the abort must come before the
    /// lease can expire, with a margin; a renewal must fit twice in the deadline.
    public var problem: String? {
        if lease - renewDeadline < .seconds(2) {
            return "lease must exceed renew_deadline by at least 2s (the time to close sockets, and a margin)"
        }
        if retryPeriod * 2 > renewDeadline {
            return "retry_period must be at most half of renew_deadline (two renewals before the deadline)"
        }
        return nil
    }
}

/// One host's membership in the fleet, pure: what it knows of its lease and
/// which sessions it holds, from the answers of the database (sent and
/// answered instants are the shell's). Inputs in, effects out; no clock.
///
/// The safety rule: the host may hold sessions only until `validUntil`, the
/// instant a renewal was last *sent* plus the renew deadline. The database
/// stamped that renewal with its own `now()` (no earlier than the sending)
/// plus the lease, so the host fences itself at least `lease − renewDeadline`
/// before any other host can see the lease expired and claim its sessions.
public struct FleetMembership: Sendable {
    public enum Phase: Equatable, Sendable {
        /// Not a member: joining (again) takes a new epoch.
        case joining
        /// A member with this join epoch.
        case member(epoch: Int64)
    }

    public enum Effect: Equatable, Sendable {
        /// Hold exactly these sessions (session → its fencing epoch).
        case hold([SessionID: Int64])
        /// Give up every session now: close every socket, abort at `abortAt`.
        case fence(reason: String, abortAt: MonotonicInstant)
        /// Hand these sessions to the others (more than a fair share is
        /// held): they are no longer held (`hold` came first); once their
        /// sockets are closed, store the release (`released` when stored).
        case release(Set<SessionID>)
    }

    public let timing: FleetTiming
    public private(set) var phase = Phase.joining
    /// Until when this host may hold sessions (nil: not a member).
    public private(set) var validUntil: MonotonicInstant?
    /// The sessions held, with the fencing epoch each was claimed with.
    public private(set) var held: [SessionID: Int64] = [:]
    /// Sessions the database still lists as this host's while it hands them
    /// over (not held: their sockets are closing).
    public private(set) var releasing: Set<SessionID> = []
    /// Sessions given up per round at most (the pace of a hand-over).
    public let batch: Int
    /// Bumped at each fence: answers to requests sent before it are stale.
    public private(set) var generation = 0
    /// How many times this host fenced itself.
    public private(set) var fences = 0

    public init(timing: FleetTiming, batch: Int = 50) {
        self.timing = timing
        self.batch = max(1, batch)
    }

    public var epoch: Int64? {
        if case .member(let epoch) = phase { return epoch }
        return nil
    }

    /// The database answered a join sent at `sentAt` (in `generation`) with `epoch`.
    public mutating func joined(epoch: Int64, sentAt: MonotonicInstant, generation: Int, now: MonotonicInstant)
        -> [Effect]
    {
        guard generation == self.generation, phase == .joining else { return [] }
        guard now < sentAt + timing.renewDeadline else { return [] }  // too late to count: join again
        phase = .member(epoch: epoch)
        validUntil = sentAt + timing.renewDeadline
        return []
    }

    /// A round (renewal, claims, the list of sessions held) sent at `sentAt`
    /// was answered: the lease runs on, and this host holds `sessions`.
    /// `share` is the fair share (sessions ÷ live hosts, rounded up): past
    /// it, the host hands the excess over, up to `batch` a round, never a
    /// session `pinned` to it. Sessions in `handOver` (pinned to another host,
    /// or all of them while this host drains) are handed over whatever the share.
    public mutating func renewed(
        epoch: Int64, sessions: [SessionID: Int64], share: Int? = nil, handOver: Set<SessionID> = [],
        pinned: Set<SessionID> = [], sentAt: MonotonicInstant, generation: Int, now: MonotonicInstant
    ) -> [Effect] {
        guard generation == self.generation, phase == .member(epoch: epoch) else { return [] }
        let until = sentAt + timing.renewDeadline
        guard now < until else {
            // Answered after the deadline it would set: the host is late anyway.
            return check(now: now)
        }
        validUntil = max(validUntil ?? until, until)
        // Released sessions the database no longer lists are handed over.
        releasing.formIntersection(sessions.keys)
        var hold = sessions.filter { !releasing.contains($0.key) }
        var given: Set<SessionID> = []
        for session in hold.keys.sorted() where handOver.contains(session) && given.count < batch {
            given.insert(session)
            hold[session] = nil
        }
        if let share, hold.count > share {
            // The latest names go first (any order would do; this one is stable).
            let movable = hold.keys.filter { !pinned.contains($0) }.sorted(by: >)
            for session in movable.prefix(max(0, min(hold.count - share, batch - given.count))) {
                given.insert(session)
                hold[session] = nil
            }
        }
        releasing.formUnion(given)
        var effects: [Effect] = []
        if hold != held {
            held = hold
            effects.append(.hold(hold))
        }
        if !given.isEmpty { effects.append(.release(given)) }
        return effects
    }

    /// The release of `sessions` is stored: the others may claim them.
    public mutating func released(_ sessions: Set<SessionID>) {
        releasing.subtract(sessions)
    }

    /// The database says this host's epoch is over (another process joined
    /// with its id, or an operator removed it): fence now, join again.
    public mutating func membershipLost(reason: String, now: MonotonicInstant) -> [Effect] {
        guard phase != .joining else { return [] }
        return fence(reason: reason, now: now)
    }

    /// Time passed: past `validUntil` without a renewal, the host fences.
    public mutating func check(now: MonotonicInstant) -> [Effect] {
        guard let validUntil, phase != .joining, now >= validUntil else { return [] }
        return fence(reason: "lease not renewed within \(timing.renewDeadline)", now: now)
    }

    private mutating func fence(reason: String, now: MonotonicInstant) -> [Effect] {
        // A host that noticed late (paused, overloaded) aborts at once.
        let abortAt = min(now, validUntil ?? now) + timing.fenceGrace
        phase = .joining
        validUntil = nil
        held = [:]
        releasing = []
        generation += 1
        fences += 1
        return [.fence(reason: reason, abortAt: abortAt)]
    }
}
