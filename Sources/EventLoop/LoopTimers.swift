import CEpoll
import Dispatch
import Glibc
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
/// clock, by a single `timerfd` armed for the wheel's next firing instant and
/// watched in the poller's epoll set; on a manual clock, by `advance(to:)`.
///
/// A timerfd rather than a `DispatchSourceTimer`: re-arming a Dispatch timer
/// from the loop wakes Dispatch's manager thread (an eventfd write and a
/// context switch) every time the earliest deadline moves, which a connection
/// attempt does several times; re-arming a timerfd is one system call on the
/// loop's own thread (docs/performance.md).
@LoopActor
public final class LoopTimers {
    public typealias Handler = @LoopActor () -> Void

    private var wheel = TimerWheel<Handler>()
    public let clock: LoopClock
    /// The timerfd and its watch (system clock only).
    private let timerFD: Int32
    private var watch: FDWatch?
    private var armedFor: MonotonicInstant?
    /// Number of times the underlying timer woke the loop.
    public private(set) var wakeUps = 0
    /// Told, at every wake-up on the system clock, how late the loop ran the
    /// timers due (after the instant they were armed for): the loop's lag.
    public var onLag: (@LoopActor (Duration) -> Void)?

    public init(clock: LoopClock = .system) {
        self.clock = clock
        guard case .system = clock else {
            timerFD = -1
            return
        }
        timerFD = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        precondition(timerFD >= 0, "timerfd_create failed: errno \(errno)")
        watch = FDWatch(fd: timerFD) { [weak self] readable, _ in
            guard readable, let self else { return }
            var expirations: UInt64 = 0
            guard read(timerFD, &expirations, 8) == 8 else { return }  // EAGAIN: re-armed meanwhile
            fire()
        }
        precondition(watch != nil, "epoll refused the timerfd: errno \(errno)")
    }

    isolated deinit {
        guard timerFD >= 0 else { return }
        watch?.cancel()
        close(timerFD)
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
        // (A wake-up that goes on with handlers left due is not lag of its own.)
        if let armedFor, timerFD >= 0, !catchingUp, let onLag { onLag(armedFor < now ? now - armedFor : .zero) }
        armedFor = nil
        // On the system clock, at most `perTurn` handlers a turn: the rest stay due
        // (and cancellable) and run in later turns, with other ready descriptors
        // served between (a thousand heartbeats due together would otherwise hold
        // the loop for milliseconds: the burst benchmark's longest gap,
        // docs/performance.md).
        let limit = timerFD >= 0 ? Self.perTurn : .max
        let handlers = wheel.expire(now: now, limit: limit)
        catchingUp = handlers.count == limit
        for handler in handlers { handler() }
        rearm()
    }

    /// The last wake-up ran as many handlers as a turn may: more may be due.
    private var catchingUp = false

    /// Timer handlers run in one turn of the loop at most.
    public static let perTurn = 256

    private func rearm() {
        guard timerFD >= 0 else { return }
        let next = wheel.nextFireInstant()
        guard next != armedFor else { return }
        armedFor = next
        // Relative to now (a zero value would disarm it: at least 1 ns); nothing due: disarmed.
        var delay: UInt64 = 0
        if let next {
            let now = now()
            delay = next > now ? next.nanoseconds - now.nanoseconds : 1
        }
        var spec = itimerspec(
            it_interval: timespec(tv_sec: 0, tv_nsec: 0),
            it_value: timespec(tv_sec: Int(delay / 1_000_000_000), tv_nsec: Int(delay % 1_000_000_000)))
        timerfd_settime(timerFD, 0, &spec, nil)
    }
}
