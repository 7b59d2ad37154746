import Dispatch
import MonotonicTime
import Testing

@testable import EventLoop

/// Signals are covered end to end by the daemon tests (SIGHUP, SIGTERM on a
/// real process): they need the mask set in `main` before any thread exists.
@Suite("The loop: timers delivered on the one queue")
struct LoopTests {
    @Test("timers run on the loop queue, in order, and cancelled ones do not run")
    @LoopActor
    func timersRunOnLoop() async {
        let timers = LoopTimers()
        var order: [Int] = []
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            timers.schedule(after: .milliseconds(30)) {
                order.append(3)
                #expect(LoopExecutor.shared.isCurrent)
                done.resume()
            }
            let cancelled = timers.schedule(after: .milliseconds(15)) { order.append(99) }
            timers.schedule(after: .milliseconds(10)) { order.append(1) }
            timers.schedule(after: .milliseconds(20)) { order.append(2) }
            timers.cancel(cancelled)
        }
        #expect(order == [1, 2, 3])
        #expect(timers.count == 0)
    }

    @Test("a thousand timers with 100 ms slack cost a handful of wake-ups, at most 256 handlers each")
    @LoopActor
    func fewWakeUps() async {
        let timers = LoopTimers()
        var fired = 0
        var perWakeUp: [Int: Int] = [:]
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            for i in 0..<1000 {
                timers.schedule(after: .milliseconds(Int64(i % 100)), slack: .milliseconds(100)) {
                    fired += 1
                    perWakeUp[timers.wakeUps, default: 0] += 1
                    if fired == 1000 { done.resume() }
                }
            }
        }
        #expect(fired == 1000)
        // One or two grid instants, each bucket served 256 handlers a turn.
        #expect(timers.wakeUps <= 2 + (1000 + LoopTimers.perTurn - 1) / LoopTimers.perTurn)
        #expect(perWakeUp.values.max() == LoopTimers.perTurn)
    }

    @Test("LoopActor code runs on the loop queue")
    func isolation() async {
        #expect(!LoopExecutor.shared.isCurrent)
        let onLoop = await LoopActor.run { LoopExecutor.shared.isCurrent }
        #expect(onLoop)
        let viaSource = await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
            LoopExecutor.shared.queue.async {
                done.resume(returning: LoopActor.assumeIsolated { LoopExecutor.shared.isCurrent })
            }
        }
        #expect(viaSource)
    }
}

@Suite("The loop's clock can be a manual one")
struct ManualClockTests {
    @Test("on a manual clock, timers run only when time is advanced past them, in order")
    @LoopActor
    func manual() {
        let clock = ManualClock()
        let timers = LoopTimers(clock: .manual(clock))
        let start = clock.now
        var order: [Int] = []
        timers.schedule(after: .seconds(2)) { order.append(2) }
        timers.schedule(after: .seconds(1)) { order.append(1) }
        let cancelled = timers.schedule(after: .milliseconds(1500)) { order.append(99) }
        timers.cancel(cancelled)
        #expect(timers.now() == start)
        timers.advance(to: start + .milliseconds(999))
        #expect(order.isEmpty)
        timers.advance(to: start + .seconds(1) + .milliseconds(1))
        #expect(order == [1])
        timers.advance(to: start + .seconds(5))
        #expect(order == [1, 2])
        #expect(timers.now() == start + .seconds(5))
        #expect(timers.count == 0)
    }
}

/// Released in a poller turn (which runs on the poller's own thread, inside
/// `DispatchQueue.sync` on the loop's queue).
@LoopActor
private final class DeinitProbe {
    let done: () -> Void
    init(_ done: @escaping () -> Void) { self.done = done }
    isolated deinit { done() }
}

@Suite("The loop: objects released in a poller turn")
struct PollerTurnTests {
    @Test("an object with an isolated deinit released in a turn is deinitialized")
    @LoopActor
    func isolatedDeinitInTurn() async {
        let timers = LoopTimers()
        var log: [String] = []
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            var probe: DeinitProbe? = DeinitProbe {
                log.append("deinit")
                done.resume()
            }
            timers.schedule(after: .milliseconds(5)) {
                probe = nil
                log.append("released")
            }
            _ = probe
        }
        #expect(log.sorted() == ["deinit", "released"])
    }
}
