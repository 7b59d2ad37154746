import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Delivers process signals (SIGTERM, SIGINT, SIGHUP, …) as calls on the loop.
///
/// Dispatch on Linux reads signals through a `signalfd`, which only sees a
/// signal that no thread lets through to a handler: call `blockInAllThreads`
/// first thing in `main`, before any thread exists, so that every thread
/// inherits the mask. The signals' default actions are disabled while watched.
@LoopActor
public final class SignalWatcher {
    private var sources: [any DispatchSourceSignal] = []

    public init() {}

    /// Blocks `signals` in the calling thread and in every thread created after.
    public nonisolated static func blockInAllThreads(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals { sigaddset(&set, number) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Calls `handler` on the loop each time `signal` arrives.
    public func watch(_ signalNumber: Int32, _ handler: @escaping @LoopActor () -> Void) {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: LoopExecutor.shared.queue)
        source.setEventHandler {
            LoopActor.assumeIsolated { handler() }
        }
        source.activate()
        sources.append(source)
    }

    /// Stops watching every signal (their actions stay ignored).
    public func cancelAll() {
        for source in sources { source.cancel() }
        sources.removeAll()
    }
}

/// Hands the main thread over for good, keeping its signal mask.
///
/// `dispatchMain()` is not used: on Linux it makes the main thread wait in
/// `sigsuspend` with every signal unblocked, so the signals the loop watches
/// (through Dispatch's `signalfd`) would be delivered to that thread instead
/// and lost. The loop queue runs on Dispatch's worker threads and the poller's
/// thread either way.
public func parkMainThread() -> Never {
    while true { pause() }
}
