import Dispatch
import MonotonicTime

/// Where the loop's time comes from: the system's monotonic clock, or a
/// manual one that a test moves forward.
public enum LoopClock: Sendable {
    case system
    case manual(ManualClock)

    @LoopActor
    public func now() -> MonotonicInstant {
        switch self {
        case .system: return MonotonicInstant(nanoseconds: DispatchTime.now().uptimeNanoseconds)
        case .manual(let clock): return clock.now
        }
    }
}

/// A clock that stands still until `LoopTimers.advance` moves it.
@LoopActor
public final class ManualClock: Sendable {
    public fileprivate(set) var now: MonotonicInstant

    public init(start: MonotonicInstant = MonotonicInstant(nanoseconds: 1_000_000_000)) {
        now = start
    }
}

/// The loop's one timer mechanism: a `TimerWheel` driven, on the system
/// clock, by a single `DispatchSourceTimer` armed for the wheel's next
/// firing instant; on a manual clock, by `advance(to:)`.
@LoopActor
public final class LoopTimers {
    public typealias Handler = @LoopActor () -> Void

    private var wheel = TimerWheel<Handler>()
    public let clock: LoopClock
    private let source: (any DispatchSourceTimer)?
    private var armedFor: MonotonicInstant?
    /// Number of times the underlying Dispatch timer woke the loop.
    public private(set) var wakeUps = 0
    /// Told, at every wake-up on the system clock, how late the loop ran the
    /// timers due (after the instant they were armed for): the loop's lag.
    public var onLag: (@LoopActor (Duration) -> Void)?

    public init(clock: LoopClock = .system) {
        self.clock = clock
        guard case .system = clock else {
            source = nil
            return
        }
        let source = DispatchSource.makeTimerSource(queue: LoopExecutor.shared.queue)
        self.source = source
        source.setEventHandler { [weak self] in
            LoopActor.assumeIsolated { self?.fire() }
        }
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    isolated deinit {
        source?.cancel()
    }

    /// The loop's time.
    public func now() -> MonotonicInstant { clock.now() }

    /// Manual clock only: moves time to `instant` and runs every timer due by then.
    public func advance(to instant: MonotonicInstant) {
        guard case .manual(let manual) = clock else { preconditionFailure("advance needs a manual clock") }
        manual.now = max(manual.now, instant)
        fire()
    }

    public var count: Int { wheel.count }

    /// Runs `handler` on the loop after `delay`, or up to `slack` later.
    @discardableResult
    public func schedule(after delay: Duration, slack: Duration = .milliseconds(1), _ handler: @escaping Handler)
        -> TimerID
    {
        schedule(at: now() + delay, slack: slack, handler)
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
        let now = now()
        if let armedFor, source != nil, let onLag { onLag(armedFor < now ? now - armedFor : .zero) }
        armedFor = nil
        for handler in wheel.expire(now: now) { handler() }
        rearm()
    }

    private func rearm() {
        guard let source else { return }
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
