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
        weak var target: TCPSocket?
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
        let index: Int
        if let reused = free.popLast() {
            index = reused
        } else {
            index = slots.count
            slots.append(Slot())
        }
        slots[index].target = target
        let token = Token(slot: index, generation: slots[index].generation)
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

    /// Changes the interest of a registered `fd`.
    func modify(_ fd: Int32, _ token: Token, read: Bool, write: Bool) {
        var event = epoll_event(events: Self.mask(read: read, write: write), data: epoll_data_t(u64: token.raw))
        epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// Removes `fd` (before it is closed); later events for the token are ignored.
    func unregister(_ fd: Int32, _ token: Token) {
        var event = epoll_event()
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
        guard slots.indices.contains(token.slot), slots[token.slot].generation == token.generation else { return }
        slots[token.slot].target = nil
        slots[token.slot].generation &+= 1
        free.append(token.slot)
    }

    private static func mask(read: Bool, write: Bool) -> UInt32 {
        var mask: UInt32 = 0
        if read { mask |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if write { mask |= EPOLLOUT.rawValue }
        return mask
    }

    /// Bytes read per Dispatch wake-up before the loop's other work (timers,
    /// deliveries, control requests) gets a turn: bounds a turn at a burst.
    var wakeupBudget = 256 << 10

    /// One Dispatch wake-up: every ready socket, up to a batch and the budget.
    /// Sockets left out are still ready (level-triggered) and come next turn:
    /// a full batch, a spent budget or a socket that used its own budget queues
    /// that turn itself, behind the loop's other work. (Dispatch did not always
    /// report the set again while it stayed ready: the 300-socket test lost
    /// reads under load until this was explicit.)
    private func poll() {
        let count = epoll_wait(epollFD, events, Int32(Self.batch), 0)
        guard count > 0 else { return }
        var read = 0
        var leftOver = false
        defer {
            if leftOver || Int(count) == Self.batch || read >= wakeupBudget {
                LoopExecutor.shared.queue.async { [self] in LoopActor.assumeIsolated { poll() } }
            }
        }
        for i in 0..<Int(count) where read < wakeupBudget {
            let event = events[i]
            let raw = event.data.u64
            let slot = Int(raw & 0xFFFF_FFFF)
            guard slots.indices.contains(slot), slots[slot].generation == UInt32(raw >> 32),
                let target = slots[slot].target
            else { continue }
            let flags = event.events
            let failed = flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            let bytes = target.ready(
                Readiness(
                    readable: flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 || failed,
                    writable: flags & EPOLLOUT.rawValue != 0 || failed))
            read += bytes
            // A socket that used its whole budget may hold more.
            if bytes >= target.readBudget { leftOver = true }
        }
    }
}
