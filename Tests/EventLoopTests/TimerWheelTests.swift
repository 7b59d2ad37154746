import MonotonicTime
import TestSupport
import Testing

@testable import EventLoop

private func at(_ ms: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: ms * 1_000_000) }

@Suite("TimerWheel: many deadlines, few wake-ups (pure, injected time)")
struct TimerWheelTests {
    @Test("timers fire in deadline order, only once due")
    func order() {
        var wheel = TimerWheel<String>()
        _ = wheel.schedule(at: at(30), "c")
        _ = wheel.schedule(at: at(10), "a")
        _ = wheel.schedule(at: at(20), "b")
        var next = wheel.nextFireInstant()
        #expect(next == at(10))
        var due = wheel.expire(now: at(9))
        #expect(due == [])
        due = wheel.expire(now: at(20))
        #expect(due == ["a", "b"])
        next = wheel.nextFireInstant()
        #expect(next == at(30))
        due = wheel.expire(now: at(100))
        #expect(due == ["c"])
        next = wheel.nextFireInstant()
        #expect(next == nil)
        #expect(wheel.count == 0)
    }

    @Test("expiring with a limit leaves the rest due, in order, and still cancellable")
    func limit() {
        var wheel = TimerWheel<Int>()
        var ids: [TimerID] = []
        for i in 0..<10 { ids.append(wheel.schedule(at: at(10), slack: .milliseconds(100), i)) }
        _ = wheel.schedule(at: at(500), 99)
        var due = wheel.expire(now: at(200), limit: 4)
        #expect(due == [0, 1, 2, 3])
        var next = wheel.nextFireInstant()
        #expect(next == at(100))  // the same bucket, still due
        let cancelled = wheel.cancel(ids[5])
        #expect(cancelled)
        due = wheel.expire(now: at(200), limit: 4)
        #expect(due == [4, 6, 7, 8])
        due = wheel.expire(now: at(200), limit: 4)
        #expect(due == [9])
        next = wheel.nextFireInstant()
        #expect(next == at(500))
        due = wheel.expire(now: at(200), limit: 4)
        #expect(due == [])
        #expect(wheel.count == 1)
    }

    @Test("a cancelled timer never fires and costs no wake-up")
    func cancel() {
        var wheel = TimerWheel<Int>()
        let first = wheel.schedule(at: at(10), 1)
        _ = wheel.schedule(at: at(20), 2)
        let cancelledOnce = wheel.cancel(first)
        let cancelledTwice = wheel.cancel(first)
        #expect(cancelledOnce)
        #expect(!cancelledTwice)
        let next = wheel.nextFireInstant()
        #expect(next == at(20))
        let due = wheel.expire(now: at(20))
        #expect(due == [2])
    }

    @Test("an ID whose slot went to a later timer cancels nothing")
    func staleID() {
        var wheel = TimerWheel<Int>()
        let first = wheel.schedule(at: at(10), 1)
        let firedFirst = wheel.expire(now: at(10))
        #expect(firedFirst == [1])
        let second = wheel.schedule(at: at(20), 2)  // reuses the first one's slot
        #expect(second.slot == first.slot)
        let cancelledStale = wheel.cancel(first)
        #expect(!cancelledStale)
        let third = wheel.schedule(at: at(30), 3)
        let cancelledThird = wheel.cancel(third)
        #expect(cancelledThird && wheel.count == 1)
        let due = wheel.expire(now: at(100))
        #expect(due == [2])
        #expect(wheel.count == 0)
    }

    @Test("cancelled timers before a live one in a bucket are not walked, and re-use keeps one instant")
    func cancelledInBucket() {
        var wheel = TimerWheel<Int>()
        // A connect timeout armed and cancelled per connection, all on one grid instant:
        for i in 0..<1000 {
            let id = wheel.schedule(at: at(10_000), slack: .seconds(1), i)
            let armed = wheel.nextFireInstant()
            let cancelled = wheel.cancel(id)
            let after = wheel.nextFireInstant()
            #expect(armed == at(10_000) && cancelled && after == nil)
        }
        #expect(wheel.instantCount <= 1)
        var ids: [TimerID] = []
        for i in 0..<100 { ids.append(wheel.schedule(at: at(10_000), slack: .seconds(1), i)) }
        for id in ids.dropLast() { wheel.cancel(id) }
        let next = wheel.nextFireInstant()
        #expect(next == at(10_000))
        #expect(wheel.instantCount == 1)
        let due = wheel.expire(now: at(10_000))
        #expect(due == [99])
        let none = wheel.nextFireInstant()
        #expect(none == nil)
        #expect(wheel.count == 0 && wheel.instantCount == 0)
    }

    @Test("against a model: random schedules, cancels and expiries (some limited) over a few instants")
    func againstModel() {
        var generator = SplitMix64(seed: 7)
        var wheel = TimerWheel<Int>()
        // The model: live timers in scheduling order, with their instants;
        // and IDs of timers that fired or were cancelled.
        var model: [(id: TimerID, at: UInt64, payload: Int)] = []
        var stale: [TimerID] = []
        var now: UInt64 = 0
        for step in 0..<20_000 {
            switch generator.next() % 12 {
            case 0...4:  // schedule, at one of a few instants ahead (often one a bucket had)
                let instant = now + 1 + generator.next() % 4
                model.append((wheel.schedule(at: at(instant), step), instant, step))
            case 5...7:  // cancel a live one
                guard !model.isEmpty else { continue }
                let index = Int(generator.next() % UInt64(model.count))
                let cancelled = wheel.cancel(model[index].id)
                let again = wheel.cancel(model[index].id)
                #expect(cancelled && !again)
                stale.append(model.remove(at: index).id)
            case 8:  // cancel one that fired or was cancelled: nothing
                guard !stale.isEmpty else { continue }
                let cancelled = wheel.cancel(stale[Int(generator.next() % UInt64(stale.count))])
                #expect(!cancelled)
            default:
                // Time passes: up to a limit of what is due fires, earliest
                // instant first, then in scheduling order.
                now += generator.next() % 3
                let limit = Int(1 + generator.next() % 4)
                let expected = model.filter { $0.at <= now }.sorted { ($0.at, $0.payload) < ($1.at, $1.payload) }
                    .prefix(limit)
                let fired = wheel.expire(now: at(now), limit: limit)
                #expect(fired == expected.map(\.payload))
                let gone = Set(expected.map(\.payload))
                model.removeAll { gone.contains($0.payload) }
                stale.append(contentsOf: expected.map(\.id))
            }
            if stale.count > 64 { stale.removeFirst(32) }
            #expect(wheel.count == model.count)
            let next = wheel.nextFireInstant()
            #expect(next == model.map(\.at).min().map { at($0) })
        }
    }

    @Test("timers with the same slack share one firing instant on a common grid")
    func coalescing() {
        var wheel = TimerWheel<Int>()
        // 5000 idle timers spread over one second, each allowed to be 1 s late:
        for i in 0..<5000 {
            _ = wheel.schedule(
                at: MonotonicInstant(nanoseconds: 60_000_000_000 + UInt64(i) * 200_000), slack: .seconds(1), i)
        }
        var wakeUps = 0
        var fired = 0
        while let next = wheel.nextFireInstant() {
            wakeUps += 1
            let due = wheel.expire(now: next)
            fired += due.count
            // Nothing fires early: every deadline is at or before the wake-up.
            for i in due { #expect(60_000_000_000 + UInt64(i) * 200_000 <= next.nanoseconds) }
        }
        #expect(fired == 5000)
        #expect(wakeUps == 2)  // deadlines in [60 s, 61 s) round up to 60 s (only i = 0) and 61 s
    }

    @Test("the grid step is the largest of 1, 2 and 5 × 10ⁿ ns within the slack")
    func gridSteps() {
        let cases: [(UInt64, UInt64)] = [
            (0, 1), (1, 1), (2, 2), (4, 2), (5, 5), (9, 5), (10, 10), (19, 10), (20, 20), (49, 20),
            (9_400_000, 5_000_000), (10_000_000, 10_000_000), (11_000_000, 10_000_000),
            (250_000_000, 200_000_000), (1_000_000_000, 1_000_000_000),
            (UInt64.max, 10_000_000_000_000_000_000),
        ]
        for (slack, step) in cases { #expect(TimerWheel<Int>.gridStep(forSlack: slack) == step, "slack \(slack)") }
    }

    @Test("timers whose slack differs a little still share wake-ups (retries at 90–110 ms, slack a tenth)")
    func similarSlack() {
        var wheel = TimerWheel<Int>()
        // A thousand retries armed over one second, each 90–110 ms ahead, as the
        // hosting core arms them (its slack: a tenth of the wait).
        var deadlines: [UInt64] = []
        var slacks: [UInt64] = []
        for i in 0..<1000 {
            let armedAt = UInt64(i) * 1_000_000
            let wait = 90_000_000 + UInt64(i * 7919 % 1000) * 20_000
            deadlines.append(armedAt + wait)
            slacks.append(wait / 10)
            _ = wheel.schedule(
                at: MonotonicInstant(nanoseconds: armedAt + wait), slack: .nanoseconds(Int64(wait / 10)), i)
        }
        var wakeUps = 0
        var fired = 0
        while let next = wheel.nextFireInstant() {
            wakeUps += 1
            for i in wheel.expire(now: next) {
                fired += 1
                #expect(next.nanoseconds >= deadlines[i])
                #expect(next.nanoseconds <= deadlines[i] + slacks[i])
            }
        }
        #expect(fired == 1000)
        // Steps of 5 and 10 ms over about 1.1 s: at most one wake-up per 5 ms.
        #expect(wakeUps <= 230)
    }

    @Test("slack never makes a timer fire later than deadline + slack")
    func slackBound() {
        var wheel = TimerWheel<Int>()
        for (i, deadline) in [1, 999, 1000, 1001, 123_456].enumerated() {
            _ = wheel.schedule(at: at(UInt64(deadline)), slack: .milliseconds(250), i)
        }
        let deadlines: [UInt64] = [1, 999, 1000, 1001, 123_456]
        while let next = wheel.nextFireInstant() {
            for i in wheel.expire(now: next) {
                let deadline = deadlines[i] * 1_000_000
                #expect(next.nanoseconds >= deadline)
                #expect(next.nanoseconds <= deadline + 250_000_000)
            }
        }
    }
}

@Suite("Duration and nanoseconds through attoseconds")
struct DurationNanosecondsTests {
    /// The reference: the conversion as it was, through `components`.
    static func reference(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (seconds < 0 ? .min : .max) : sum
    }

    @Test("nanosecondsClamped agrees with components, on both sides of 64-bit attoseconds, and clamps")
    func clamped() {
        let durations: [Duration] = [
            .zero, .nanoseconds(1), .nanoseconds(-1), .milliseconds(100), .milliseconds(-250), .seconds(9),
            .seconds(10), .seconds(-10), .seconds(3600), .seconds(86_400 * 365), .nanoseconds(9_223_372_036),
            .nanoseconds(9_223_372_037), .nanoseconds(-9_223_372_037), .nanoseconds(Int64.max),
            .nanoseconds(Int64.min), Duration(attoseconds: 1), Duration(attoseconds: -1),
            Duration(attoseconds: 1_999_999_999), Duration(attoseconds: -1_999_999_999),
        ]
        for duration in durations {
            #expect(duration.nanosecondsClamped == Self.reference(duration), "\(duration)")
        }
        #expect(Duration.seconds(Int64.max).nanosecondsClamped == .max)
        #expect(Duration.seconds(Int64.min).nanosecondsClamped == .min)
    }

    @Test("fromNanoseconds is .nanoseconds; an instant's difference is exact both ways")
    func fromNanoseconds() {
        for value: Int64 in [0, 1, -1, 999_999_999, 1_000_000_000, -86_400_000_000_000, .max, .min] {
            #expect(Duration.fromNanoseconds(value) == .nanoseconds(value), "\(value)")
        }
        let a = MonotonicInstant(nanoseconds: 5_000_000_123)
        let b = MonotonicInstant(nanoseconds: 1_000_000_000)
        #expect(a - b == .nanoseconds(4_000_000_123))
        #expect(b - a == .nanoseconds(-4_000_000_123))
        #expect(b + (a - b) == a)
    }
}
