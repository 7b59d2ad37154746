import HeapModule
import MonotonicTime

/// Identifies one scheduled timer.
public struct TimerID: Hashable, Sendable {
    /// Unique for the wheel's life: a slot's next timer has another.
    let raw: UInt64
    /// Where the timer's entry lives in the wheel's slots.
    let slot: UInt32
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
/// min-heap, each instant once. Cancelling is O(1): a bucket counts its live
/// timers and lets go of its list when the last one is cancelled, so finding
/// the next wake-up never walks cancelled timers (it had looked each one up,
/// for every re-arm); an empty bucket and its instant go when they come first.
/// A timer's entry lives in a slot of an array, found by its ID without
/// hashing; freed slots are reused.
public struct TimerWheel<Payload> {
    private struct Entry {
        var fireAt: UInt64
        var payload: Payload
    }

    private struct Slot {
        /// The ID of the timer in the slot (its `raw`); the entry is nil once
        /// it fired or was cancelled.
        var raw: UInt64
        var entry: Entry?
    }

    private var slots: [Slot] = []
    private var freeSlots: [UInt32] = []
    private var live = 0
    private struct Bucket {
        var ids: [TimerID]
        /// How many of `ids` are still scheduled.
        var live: Int
    }

    private var buckets: [FireInstant: Bucket] = [:]
    /// Emptied buckets' arrays, their storage kept for new buckets: a new
    /// array was an allocation (and a free) per firing instant, two or three
    /// per connection.
    private var spareIDs: [[TimerID]] = []
    private static var spareLimit: Int { 64 }
    private var instants = Heap<UInt64>()
    private var nextID: UInt64 = 0

    public init() {}

    /// Number of live timers.
    public var count: Int { live }

    /// Firing instants held (live or not yet dropped): for tests.
    var instantCount: Int { instants.count }

    /// Schedules `payload` to fire at `deadline` or up to `slack` later.
    public mutating func schedule(
        at deadline: MonotonicInstant, slack: Duration = .milliseconds(1), _ payload: Payload
    ) -> TimerID {
        nextID += 1
        let grid = Self.gridStep(forSlack: UInt64(max(1, slack.nanosecondsClamped)))
        let (rounded, overflow) = deadline.nanoseconds.addingReportingOverflow(grid - 1)
        let fireAt = overflow ? UInt64.max : rounded / grid * grid
        let entry = Entry(fireAt: fireAt, payload: payload)
        let id: TimerID
        if let slot = freeSlots.popLast() {
            id = TimerID(raw: nextID, slot: slot)
            slots[Int(slot)] = Slot(raw: nextID, entry: entry)
        } else {
            precondition(slots.count < UInt32.max, "too many timers")
            id = TimerID(raw: nextID, slot: UInt32(slots.count))
            slots.append(Slot(raw: nextID, entry: entry))
        }
        live += 1
        if let index = buckets.index(forKey: FireInstant(fireAt)) {
            if buckets.values[index].ids.capacity == 0 { buckets.values[index].ids = spareIDs.popLast() ?? [] }
            buckets.values[index].ids.append(id)
            buckets.values[index].live += 1
        } else {
            var ids = spareIDs.popLast() ?? []
            ids.append(id)
            buckets[FireInstant(fireAt)] = Bucket(ids: ids, live: 1)
            instants.insert(fireAt)
        }
        return id
    }

    /// Empties `ids`, keeping its storage among the spares (up to a number,
    /// and not a large one).
    private static func recycle(_ ids: inout [TimerID], into spares: inout [[TimerID]]) {
        var emptied: [TimerID] = []
        swap(&emptied, &ids)
        guard emptied.capacity > 0, spares.count < spareLimit, emptied.capacity <= 1024 else { return }
        emptied.removeAll(keepingCapacity: true)
        spares.append(emptied)
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
        guard let entry = take(id) else { return false }
        if let index = buckets.index(forKey: FireInstant(entry.fireAt)) {
            buckets.values[index].live -= 1
            if buckets.values[index].live == 0 { Self.recycle(&buckets.values[index].ids, into: &spareIDs) }
        }
        return true
    }

    /// Removes and returns the timer's entry; nil when it is no longer live.
    private mutating func take(_ id: TimerID) -> Entry? {
        let index = Int(id.slot)
        guard index < slots.count, slots[index].raw == id.raw, let entry = slots[index].entry else { return nil }
        slots[index].entry = nil
        freeSlots.append(id.slot)
        live -= 1
        return entry
    }

    /// The instant the loop must wake up next, or nil with no live timers.
    /// Drops the instants of buckets whose timers were all cancelled, so they
    /// cost no wake-up.
    public mutating func nextFireInstant() -> MonotonicInstant? {
        while let first = instants.min {
            if let live = buckets[FireInstant(first)]?.live, live > 0 { return MonotonicInstant(nanoseconds: first) }
            buckets[FireInstant(first)] = nil
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
            guard var bucket = buckets.removeValue(forKey: FireInstant(first)) else {
                instants.removeMin()
                continue
            }
            var taken = 0
            while taken < bucket.ids.count && due.count < limit {
                if let entry = take(bucket.ids[taken]) {
                    due.append(entry.payload)
                    bucket.live -= 1
                }
                taken += 1
            }
            if bucket.live == 0 {
                instants.removeMin()
                Self.recycle(&bucket.ids, into: &spareIDs)
            } else {
                bucket.ids.removeFirst(taken)
                buckets[FireInstant(first)] = bucket
            }
        }
        return due
    }
}

/// A bucket's firing instant as the buckets' key. Dictionary asks a key for
/// `_rawHashValue(seed:)` at every lookup, and a `UInt64`'s runs a SipHash
/// round (about 90 instructions; several lookups per connection attempt):
/// here the instant is mixed with the table's seed by splitmix64's finalizer
/// (as `World.HashMix` mixes identifiers; EventLoop does not depend on World).
/// The instants come from the loop's clock on a grid, not from input.
struct FireInstant: Hashable {
    let nanoseconds: UInt64

    init(_ nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    func hash(into hasher: inout Hasher) { hasher.combine(nanoseconds) }

    func _rawHashValue(seed: Int) -> Int {
        var z = (nanoseconds ^ UInt64(truncatingIfNeeded: seed)) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: z ^ (z >> 31))
    }
}
