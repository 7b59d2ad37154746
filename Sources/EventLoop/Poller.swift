import CEpoll
import Dispatch
import Glibc

/// One readiness source for every stream socket of the loop: the sockets sit
/// in the loop's own epoll set, and one thread of ours waits on that set
/// (`epoll_wait`) and runs each batch of ready events as a block on the loop's
/// queue (`DispatchQueue.sync`). On an idle queue Dispatch runs that block on
/// the waiting thread itself, so a wake-up costs one context switch. A Dispatch
/// read source on the epoll descriptor cost three: Dispatch's manager thread
/// woke from its own `epoll_wait`, woke a worker to run the handler, and the
/// worker woke the manager again to re-arm the source (measured with perf:
/// docs/performance.md). One Dispatch source per socket cost, per event, a
/// FIONREAD ioctl and two epoll_ctl calls besides.
///
/// The sockets are still served on the loop's queue only, in its order: a
/// batch waits behind the blocks queued before it, and everything queued while
/// it runs waits for it.
///
/// Level-triggered: a socket that still has bytes after its read budget is
/// reported again on the next turn; write interest (EPOLLOUT) is registered
/// only while bytes wait for the kernel. Events carry a slot number and a
/// generation, so an event for a socket closed earlier in the same batch (or
/// whose descriptor number was reused) is ignored.
@LoopActor
final class Poller {
    static let shared = Poller()

    /// What a registered socket is told.
    struct Readiness {
        var readable: Bool
        var writable: Bool
        /// EPOLLERR or EPOLLHUP (readable and writable are set too, so that
        /// the socket reads or writes and learns the error).
        var failed: Bool
        /// EPOLLRDHUP: the peer has shut down its side; what it sent before
        /// is all in the kernel already.
        var peerShutDown: Bool
    }

    private let epollFD: Int32
    private var slots: [Slot] = []
    private var free: [Int] = []
    private let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Poller.batch)
    private static let batch = 256

    private struct Slot {
        var generation: UInt32 = 0
        /// The loop turn in which an event left over from the turn before was
        /// handled for this slot (so that epoll's report of it is not served twice).
        var leftOverTurn: UInt64 = 0
        weak var target: TCPSocket?
        /// A descriptor that is not a stream socket of ours (a database connection).
        weak var watch: FDWatch?
    }

    /// A registration: the slot and its generation, as carried in `epoll_data`.
    struct Token: Equatable {
        fileprivate let slot: Int
        fileprivate let generation: UInt32
        fileprivate var raw: UInt64 { UInt64(generation) << 32 | UInt64(slot) }
    }

    private init() {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epollFD >= 0, "epoll_create1 failed: errno \(errno)")
        let waiter = Waiter(epollFD: epollFD, events: events, capacity: Self.batch, poller: self)
        startThread(named: "wshostd-poll") { waiter.run() }
    }

    /// The thread that waits on the epoll set and hands each batch to the loop.
    private struct Waiter: @unchecked Sendable {  // `events` is touched by one side at a time
        let epollFD: Int32
        let events: UnsafeMutablePointer<epoll_event>
        let capacity: Int
        let poller: Poller

        func run() {
            blockAsynchronousSignals()
            var again = false
            while true {
                // Blocks until a socket is ready; polls (timeout 0) when the last
                // turn left work for the next.
                let count = epoll_wait(epollFD, events, Int32(capacity), again ? 0 : -1)
                if count < 0 {
                    precondition(errno == EINTR, "epoll_wait failed: errno \(errno)")
                    continue
                }
                guard count > 0 || again else { continue }
                // Behind whatever the loop has queued; on the loop's queue, so on
                // the loop's isolation. The buffer is the turn's until it returns.
                again = LoopExecutor.shared.queue.sync {
                    LoopActor.assumeIsolated { poller.turn(ready: Int(count)) }
                }
            }
        }
    }

    /// Adds `fd` with the given interest; events go to `target`.
    func register(_ fd: Int32, _ target: TCPSocket, read: Bool, write: Bool) -> Token {
        let token = claimSlot()
        slots[token.slot].target = target
        var event = epoll_event(events: Self.mask(read: read, write: write), data: epoll_data_t(u64: token.raw))
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
            // Cannot happen for a fresh socket; report it as an error the next turn.
            let code = errno
            LoopExecutor.shared.queue.async { [weak target] in
                LoopActor.assumeIsolated { target?.pollFailed(code) }
            }
        }
        return token
    }

    /// Adds a descriptor that someone else reads and writes (`FDWatch`); false
    /// when epoll refuses it (errno tells why).
    func register(_ fd: Int32, _ watch: FDWatch, read: Bool, write: Bool) -> Token? {
        let token = claimSlot()
        slots[token.slot].watch = watch
        var event = epoll_event(events: Self.mask(read: read, write: write), data: epoll_data_t(u64: token.raw))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
            releaseSlot(token)
            return nil
        }
        return token
    }

    private func claimSlot() -> Token {
        let index: Int
        if let reused = free.popLast() {
            index = reused
        } else {
            index = slots.count
            slots.append(Slot())
        }
        return Token(slot: index, generation: slots[index].generation)
    }

    private func releaseSlot(_ token: Token) {
        guard slots.indices.contains(token.slot), slots[token.slot].generation == token.generation else { return }
        slots[token.slot].target = nil
        slots[token.slot].watch = nil
        slots[token.slot].generation &+= 1
        free.append(token.slot)
    }

    /// Changes the interest of a registered `fd`.
    func modify(_ fd: Int32, _ token: Token, read: Bool, write: Bool) {
        var event = epoll_event(events: Self.mask(read: read, write: write), data: epoll_data_t(u64: token.raw))
        epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// Removes `fd` (before it is closed); later events for the token are ignored.
    func unregister(_ fd: Int32, _ token: Token) {
        var event = epoll_event()
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
        releaseSlot(token)
    }

    /// Frees the token of a descriptor its owner closes right after (no
    /// EPOLL_CTL_DEL: closing the last descriptor of a file leaves every epoll
    /// set by itself, and the daemon neither forks nor duplicates its sockets).
    /// Events already collected for it are ignored, like those of `unregister`.
    func forget(_ token: Token) {
        releaseSlot(token)
    }

    private static func mask(read: Bool, write: Bool) -> UInt32 {
        var mask: UInt32 = 0
        if read { mask |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if write { mask |= EPOLLOUT.rawValue }
        return mask
    }

    /// Bytes read per turn before the loop's other work (deliveries,
    /// control requests) gets a turn: bounds a turn at a burst. The timers'
    /// timerfd is one of the events: when the budget is spent before it, it is
    /// served first next turn, as every event left over is.
    var wakeupBudget = 256 << 10

    /// Events of the last turn that the budget left unserved: served first
    /// next time. Without this, epoll (which hands level-triggered events back
    /// in the order it reported them) put the same sockets first every turn,
    /// and when they were ready again by then — a server that answers while
    /// the loop compresses — the ones behind them waited for seconds (the
    /// compressed echo benchmark: p99 2 s at 100 connections × 64 KiB).
    private var deferred: [epoll_event] = []

    /// One turn: the `ready` events the waiter put in `events` (at most a batch),
    /// up to the budget (bytes read, and the deliveries of the turn:
    /// `LoopTurn.isFull`), those the previous turn left over first. Sockets left
    /// out are still ready (level-triggered) and come next turn. Returns true
    /// when the next turn should follow at once, behind the loop's other work:
    /// a full batch, a spent budget or a socket that used its own budget.
    /// (Readiness is asked for again each turn: Dispatch had not always reported
    /// the set again while it stayed ready, and the 300-socket test lost reads
    /// under load until this was explicit.)
    fileprivate func turn(ready count: Int) -> Bool {
        LoopTurn.begin()
        guard count > 0 || !deferred.isEmpty else { return false }
        var read = 0
        var leftOver = false
        // Those left over last time first (no allocation when there are none).
        swap(&serving, &deferred)
        let turn = LoopTurn.number
        for event in serving {
            // An event for a socket closed since is dropped (its slot may serve a new
            // socket already, whose own event must not be taken for this one).
            let slot = Int(event.data.u64 & 0xFFFF_FFFF)
            guard slots.indices.contains(slot), slots[slot].generation == UInt32(event.data.u64 >> 32) else {
                continue
            }
            slots[slot].leftOverTurn = turn
            if read >= wakeupBudget || LoopTurn.isFull {
                deferred.append(event)
            } else {
                serve(event, read: &read, leftOver: &leftOver)
            }
        }
        for i in 0..<count {
            let event = events[i]
            if !serving.isEmpty {
                // Already handled above (served, or left over again): one check per event.
                let slot = Int(event.data.u64 & 0xFFFF_FFFF)
                if slots.indices.contains(slot) && slots[slot].leftOverTurn == turn { continue }
            }
            if read >= wakeupBudget || LoopTurn.isFull {
                deferred.append(event)
            } else {
                serve(event, read: &read, leftOver: &leftOver)
            }
        }
        serving.removeAll(keepingCapacity: true)
        return leftOver || count == Self.batch || !deferred.isEmpty
    }

    /// The deferred events being served this turn (kept to reuse its storage).
    private var serving: [epoll_event] = []

    private func serve(_ event: epoll_event, read: inout Int, leftOver: inout Bool) {
        let raw = event.data.u64
        let slot = Int(raw & 0xFFFF_FFFF)
        guard slots.indices.contains(slot), slots[slot].generation == UInt32(raw >> 32) else { return }
        let flags = event.events
        let failed = flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
        guard let target = slots[slot].target else {
            slots[slot].watch?.ready(
                readable: flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 || failed,
                writable: flags & EPOLLOUT.rawValue != 0 || failed)
            return
        }
        let bytes = target.ready(
            Readiness(
                readable: flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 || failed,
                writable: flags & EPOLLOUT.rawValue != 0 || failed, failed: failed,
                peerShutDown: flags & EPOLLRDHUP.rawValue != 0))
        read += bytes
        // A socket that used its whole budget may hold more.
        if bytes >= target.readBudget { leftOver = true }
    }
}

/// Starts a detached thread running `body` (which must not return while the
/// process needs it).
private func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
    let started = pthread_create(
        &thread, nil,
        { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            nameThisThread(box.name)
            box.body()
            return nil
        }, box)
    precondition(started == 0, "pthread_create failed: \(started)")
    pthread_detach(thread)
}

/// Names the calling thread as `ps -L`, `top -H` and perf show it (at most 15
/// bytes; glibc's `pthread_setname_np` writes the same file).
private func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Blocks, in the calling thread, the signals Dispatch blocks in its workers
/// (libdispatch's `_dispatch_sigmask`): signals are the loop's to read
/// (`SignalWatcher`), never a handler's on this thread. Left open, as there:
/// the thread's own faults, SIGPIPE, and SIGPROF, with which Swift's crash
/// handler stops the other threads to trace them.
private func blockAsynchronousSignals() {
    var set = sigset_t()
    sigfillset(&set)
    for open in [SIGILL, SIGTRAP, SIGFPE, SIGBUS, SIGSEGV, SIGSYS, SIGPIPE, SIGPROF] { sigdelset(&set, open) }
    pthread_sigmask(SIG_BLOCK, &set, nil)
}
