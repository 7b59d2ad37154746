import CEpoll
import Dispatch
import Glibc

/// One readiness source for every stream socket of the loop: the sockets sit
/// in the loop's own epoll set, and that set's descriptor is the one Dispatch
/// read source. One Dispatch wake-up then serves every socket that is ready,
/// instead of one Dispatch source per socket paying, per event, a FIONREAD
/// ioctl, two epoll_ctl calls (disarm, re-arm) and the hand-off from
/// Dispatch's manager thread (measured with strace: docs/performance.md).
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
    }

    private let epollFD: Int32
    private let source: any DispatchSourceRead
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
        source = DispatchSource.makeReadSource(fileDescriptor: epollFD, queue: LoopExecutor.shared.queue)
        source.setEventHandler { [unowned self] in poll() }
        source.activate()
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

    private static func mask(read: Bool, write: Bool) -> UInt32 {
        var mask: UInt32 = 0
        if read { mask |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if write { mask |= EPOLLOUT.rawValue }
        return mask
    }

    /// Bytes read per Dispatch wake-up before the loop's other work (deliveries,
    /// control requests) gets a turn: bounds a turn at a burst. The timers'
    /// timerfd is one of the events: when the budget is spent before it, it is
    /// served first next turn, as every event left over is.
    var wakeupBudget = 256 << 10

    /// Events of the last wake-up that the budget left unserved: served first
    /// next time. Without this, epoll (which hands level-triggered events back
    /// in the order it reported them) put the same sockets first every turn,
    /// and when they were ready again by then — a server that answers while
    /// the loop compresses — the ones behind them waited for seconds (the
    /// compressed echo benchmark: p99 2 s at 100 connections × 64 KiB).
    private var deferred: [epoll_event] = []

    /// One Dispatch wake-up: every ready socket, up to a batch and the budget
    /// (bytes read, and the deliveries of the turn: `LoopTurn.isFull`), those
    /// the previous wake-up left over first. Sockets left out are still
    /// ready (level-triggered) and come next turn: a full batch, a spent budget
    /// or a socket that used its own budget queues that turn itself, behind the
    /// loop's other work. (Dispatch did not always report the set again while it
    /// stayed ready: the 300-socket test lost reads under load until this was
    /// explicit.)
    private func poll() {
        LoopTurn.begin()
        let count = Int(max(0, epoll_wait(epollFD, events, Int32(Self.batch), 0)))
        guard count > 0 || !deferred.isEmpty else { return }
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
        if leftOver || count == Self.batch || !deferred.isEmpty {
            LoopExecutor.shared.queue.async { [self] in LoopActor.assumeIsolated { poll() } }
        }
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
                writable: flags & EPOLLOUT.rawValue != 0 || failed))
        read += bytes
        // A socket that used its whole budget may hold more.
        if bytes >= target.readBudget { leftOver = true }
    }
}
