import Dispatch
import MonotonicTime

/// The loop's one timer mechanism: a `TimerWheel` driven by a single
/// `DispatchSourceTimer`, armed for the wheel's next firing instant.
@LoopActor
public final class LoopTimers {
    public typealias Handler = @LoopActor () -> Void

    private var wheel = TimerWheel<Handler>()
    private let source: any DispatchSourceTimer
    private var armedFor: MonotonicInstant?
    /// Number of times the underlying Dispatch timer woke the loop.
    public private(set) var wakeUps = 0

    public init() {
        source = DispatchSource.makeTimerSource(queue: LoopExecutor.shared.queue)
        source.setEventHandler { [weak self] in
            LoopActor.assumeIsolated { self?.fire() }
        }
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    isolated deinit {
        source.cancel()
    }

    /// The loop's clock.
    public nonisolated static func now() -> MonotonicInstant {
        MonotonicInstant(nanoseconds: DispatchTime.now().uptimeNanoseconds)
    }

    public var count: Int { wheel.count }

    /// Runs `handler` on the loop after `delay`, or up to `slack` later.
    @discardableResult
    public func schedule(after delay: Duration, slack: Duration = .milliseconds(1), _ handler: @escaping Handler)
        -> TimerID
    {
        schedule(at: Self.now() + delay, slack: slack, handler)
    }

    @discardableResult
    public func schedule(
        at deadline: MonotonicInstant, slack: Duration = .milliseconds(1), _ handler: @escaping Handler
    )
        -> TimerID
    {
        let id = wheel.schedule(at: deadline, slack: slack, handler)
        rearm()
        return id
    }

    public func cancel(_ id: TimerID) {
        if wheel.cancel(id) { rearm() }
    }

    private func fire() {
        wakeUps += 1
        armedFor = nil
        for handler in wheel.expire(now: Self.now()) { handler() }
        rearm()
    }

    private func rearm() {
        let next = wheel.nextFireInstant()
        guard next != armedFor else { return }
        armedFor = next
        if let next {
            source.schedule(
                deadline: DispatchTime(uptimeNanoseconds: max(1, next.nanoseconds)), leeway: .nanoseconds(0))
        } else {
            source.schedule(deadline: .distantFuture)
        }
    }
}
