import HeapModule
import MonotonicTime

/// Identifies one scheduled timer.
public struct TimerID: Hashable, Sendable {
    let raw: UInt64
}

/// Many deadlines, few wake-ups: a pure timer queue (no clock, no Dispatch).
///
/// Each timer has a deadline and a *slack*: it may fire up to `slack` late.
/// Its firing instant is the deadline rounded up to a multiple of its grid
/// step, the largest of 1, 2 and 5 × 10ⁿ ns not above the slack, on a grid
/// shared by all timers: timers with similar slack land in the same bucket and
/// fire in one wake-up. With thousands of idle and retry timers at one-second
/// slack the loop wakes at most once a second for all of them; a protocol
/// timer with 1 ms slack is still precise. (The slack itself as the step put
/// retries at 90–110 ms, whose slack is a tenth of the wait, each on a grid of
/// its own: one wake-up per retry.)
///
/// Buckets live in a dictionary keyed by firing instant, the instants in a
/// min-heap. Cancelling is O(1); a bucket left empty is dropped lazily.
public struct TimerWheel<Payload> {
    private struct Entry {
        var fireAt: UInt64
        var payload: Payload
    }

    private var entries: [TimerID: Entry] = [:]
    private var buckets: [UInt64: [TimerID]] = [:]
    private var instants = Heap<UInt64>()
    private var nextID: UInt64 = 0

    public init() {}

    /// Number of live timers.
    public var count: Int { entries.count }

    /// Schedules `payload` to fire at `deadline` or up to `slack` later.
    public mutating func schedule(
        at deadline: MonotonicInstant, slack: Duration = .milliseconds(1), _ payload: Payload
    ) -> TimerID {
        nextID += 1
        let id = TimerID(raw: nextID)
        let grid = Self.gridStep(forSlack: UInt64(max(1, slack.nanosecondsClamped)))
        let (rounded, overflow) = deadline.nanoseconds.addingReportingOverflow(grid - 1)
        let fireAt = overflow ? UInt64.max : rounded / grid * grid
        entries[id] = Entry(fireAt: fireAt, payload: payload)
        if buckets[fireAt]?.append(id) == nil {
            buckets[fireAt] = [id]
            instants.insert(fireAt)
        }
        return id
    }

    /// The largest of 1, 2 and 5 × 10ⁿ nanoseconds that is at most `slack` (1 for 0).
    static func gridStep(forSlack slack: UInt64) -> UInt64 {
        var decade: UInt64 = 1
        while decade <= slack / 10 { decade *= 10 }
        // decade ≤ slack < 10 × decade (for slack ≥ 1)
        if slack / 5 >= decade { return 5 * decade }
        if slack / 2 >= decade { return 2 * decade }
        return decade
    }

    /// Cancels a timer; returns false when it had already fired or been cancelled.
    @discardableResult
    public mutating func cancel(_ id: TimerID) -> Bool {
        entries.removeValue(forKey: id) != nil
    }

    /// The instant the loop must wake up next, or nil with no live timers.
    /// Drops buckets whose timers were all cancelled, so they cost no wake-up.
    public mutating func nextFireInstant() -> MonotonicInstant? {
        while let first = instants.min {
            if let ids = buckets[first], ids.contains(where: { entries[$0] != nil }) {
                return MonotonicInstant(nanoseconds: first)
            }
            buckets[first] = nil
            instants.removeMin()
        }
        return nil
    }

    /// Removes and returns, in firing order, the payloads due at `now`, at
    /// most `limit` of them: the rest stay scheduled (and cancellable), due.
    public mutating func expire(now: MonotonicInstant, limit: Int = .max) -> [Payload] {
        var due: [Payload] = []
        while due.count < limit, let first = instants.min, first <= now.nanoseconds {
            // Moved out of the dictionary, so that trimming it below does not copy it.
            guard var ids = buckets.removeValue(forKey: first) else {
                instants.removeMin()
                continue
            }
            var taken = 0
            while taken < ids.count && due.count < limit {
                if let entry = entries.removeValue(forKey: ids[taken]) { due.append(entry.payload) }
                taken += 1
            }
            if taken == ids.count {
                instants.removeMin()
            } else {
                ids.removeFirst(taken)
                buckets[first] = ids
            }
        }
        return due
    }
}
