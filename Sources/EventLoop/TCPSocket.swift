import Dispatch
import Glibc

/// A non-blocking stream socket on the loop (TCP, or an accepted Unix
/// connection), owning its fd until `close()`. Readiness comes from the
/// loop's `Poller` (one epoll set for every socket, its batches run on the
/// loop's queue). Reads run up to a byte budget per wake-up so one busy socket
/// cannot starve the others; writes go out directly and, when the kernel
/// buffer is full, wait for writability, which is asked for only while bytes
/// wait (and while a connect completes). `close()` closes the fd at once (which
/// takes it out of the epoll set): events for it already collected are ignored.
@LoopActor
public final class TCPSocket {
    public enum Input {
        case data(UnsafeRawBufferPointer)
        case eof
        case error(Int32)
    }

    public let fd: Int32
    public let peer: SocketAddress
    /// Bytes read per wake-up before yielding to other sockets (one read of
    /// the shared buffer): the poll is level-triggered, so the rest comes on
    /// the next turn at no extra system call.
    public var readBudget = 64 << 10

    private var token: Poller.Token?
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var closed = false
    private var started = false
    /// Write interest is registered (bytes wait, or a connect completes).
    private var wantsWrite = false
    /// One read buffer for every socket: they all read on the one loop, one at
    /// a time, and `onInput` consumers copy what they keep (the bytes are only
    /// valid during the call). Saves 64 KiB per connection.
    private static let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
    private var onInput: (@LoopActor (Input) -> Void)?
    private var onDrained: (@LoopActor () -> Void)?
    private var onConnected: (@LoopActor (Int32) -> Void)?

    /// Takes ownership of a connected (or connecting), non-blocking `fd`.
    init(fd: Int32, peer: SocketAddress) {
        self.fd = fd
        self.peer = peer
    }

    /// Waits for a non-blocking `connect` to finish; `completion` gets 0 or the errno.
    func awaitConnect(_ completion: @escaping @LoopActor (Int32) -> Void) {
        onConnected = completion
        wantsWrite = true
        updateInterest()
    }

    /// Starts delivering input; `onInput` is called on the loop.
    public func start(onInput: @escaping @LoopActor (Input) -> Void, onDrained: (@LoopActor () -> Void)? = nil) {
        guard !started, !closed else { return }
        started = true
        self.onInput = onInput
        self.onDrained = onDrained
        updateInterest()
    }

    /// Registers with the poller, or changes what is asked for (a system call
    /// only when that differs from what is registered).
    private func updateInterest() {
        guard !closed && !hungUp else { return }
        let interest = (read: started && !inputEnded, write: wantsWrite)
        if let token {
            guard interest != registered else { return }
            Poller.shared.modify(fd, token, read: interest.read, write: interest.write)
        } else {
            token = Poller.shared.register(fd, self, read: interest.read, write: interest.write)
        }
        registered = interest
    }

    /// The interest registered with the poller.
    private var registered = (read: false, write: false)
    /// The peer's end of the stream was read: nothing more to read, and no
    /// more read interest (a level-triggered end of stream would be reported
    /// again every turn while the owner keeps the socket, as a control
    /// subscriber that half-closes does).
    private var inputEnded = false
    /// Gone both ways after the end of the stream: out of the poller, whose
    /// EPOLLHUP would otherwise come every turn until the owner closes.
    private var hungUp = false

    /// The poller says the socket is ready; returns the bytes read.
    func ready(_ readiness: Poller.Readiness) -> Int {
        if readiness.writable && wantsWrite { writable(failed: readiness.failed) }
        guard started && !closed else { return 0 }
        if !inputEnded {
            if readiness.readable { return readable(toEnd: readiness.peerShutDown, failed: readiness.failed) }
        } else if readiness.failed && !wantsWrite && !hungUp {
            // EPOLLERR/EPOLLHUP come whatever is asked for: after the end of the
            // stream they mean the connection is gone both ways. Told once, as
            // an error; the descriptor leaves the poller until it is closed.
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            hungUp = true
            if let token { Poller.shared.unregister(fd, token) }
            token = nil
            onInput?(.error(error == 0 ? EPIPE : error))
        }
        return 0
    }

    /// Registration failed (reported on the next turn).
    func pollFailed(_ code: Int32) {
        guard !closed else { return }
        if let onConnected {
            self.onConnected = nil
            onConnected(code)
        } else {
            onInput?(.error(code))
        }
    }

    /// Bytes accepted but not yet written to the kernel.
    public var pendingCount: Int { pending.count - pendingOffset }

    /// Writes `bytes` now as far as the kernel takes them; queues the rest.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Writes `bytes` now as far as the kernel takes them; copies the rest into
    /// the queue (the caller's buffer is free again on return).
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !closed, let base = bytes.baseAddress, !bytes.isEmpty else { return }
        if pendingCount > 0 {
            pending.append(contentsOf: bytes)
            return
        }
        let written = Glibc.send(fd, base, bytes.count, Int32(MSG_NOSIGNAL))
        if written == bytes.count { return }
        if written < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            let code = errno
            onInput?(.error(code))
            return
        }
        if hungUp {
            // Out of the poller: what the kernel did not take would never go.
            onInput?(.error(EPIPE))
            return
        }
        pending.removeAll(keepingCapacity: true)
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[max(0, written)...]))
        pendingOffset = 0
        wantsWrite = true
        updateInterest()
    }

    /// `send(2)` of `bytes` from `offset`. Not isolated: a closure isolated
    /// to the loop makes a runtime check of the executor at every call.
    private nonisolated static func send(_ fd: Int32, _ bytes: [UInt8], from offset: Int) -> Int {
        bytes.withUnsafeBytes { raw in
            Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
        }
    }

    private func writable(failed: Bool) {
        guard !closed else { return }
        if let onConnected {
            // Writable without an error: connected (a failed connect reports
            // EPOLLERR, whose errno SO_ERROR then tells). The interest is
            // updated after the completion, which starts reading as a rule:
            // one epoll_ctl for both changes.
            self.onConnected = nil
            wantsWrite = pendingCount > 0
            var error: Int32 = 0
            if failed {
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            }
            onConnected(error)
            updateInterest()
            return
        }
        while pendingCount > 0 {
            let written = Self.send(fd, pending, from: pendingOffset)
            if written > 0 {
                pendingOffset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {
                let code = errno
                wantsWrite = false
                updateInterest()
                onInput?(.error(code))
                return
            }
        }
        pending.removeAll(keepingCapacity: pending.capacity <= 64 << 10)
        pendingOffset = 0
        wantsWrite = false
        updateInterest()
        onDrained?()
    }

    /// Reads up to the budget. `toEnd`: the peer has shut down its side, so
    /// the end of the stream comes in this turn rather than on the next
    /// wake-up: after a short read at once, or (`failed`: EPOLLERR or EPOLLHUP,
    /// a reset whose error the next read tells) from the read after it.
    private func readable(toEnd: Bool, failed: Bool) -> Int {
        var total = 0
        while !closed && total < readBudget {
            let readBuffer = Self.readBuffer
            let count = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if count > 0 {
                total += count
                onInput?(.data(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])))
                // A short read emptied the socket: no second recv just to see
                // EAGAIN. The poll is level-triggered, so bytes that arrive
                // meanwhile are reported on the next turn.
                if count < readBuffer.count {
                    // After the peer's FIN (EPOLLRDHUP when the poll returned) no
                    // byte can come, and every byte sent before it was queued: a
                    // short read took them all, so this is the end of the stream,
                    // without the recv that would return 0. TCP only: a Unix
                    // stream read also stops short at a message that carries
                    // descriptors or credentials. (A TCP read also stops short at
                    // an urgent mark. No WebSocket server sends urgent data; one
                    // that did would lose what it sent after the mark, as the
                    // stream ends there.)
                    if !toEnd { return total }
                    if !failed && peer.family != AF_UNIX {
                        ended()
                        return total
                    }
                }
            } else if count == 0 {
                ended()
                return total
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return total
            } else {
                let code = errno
                onInput?(.error(code))
                return total
            }
        }
        return total
    }

    /// The end of the stream: told once, and no more read interest.
    private func ended() {
        inputEnded = true
        onInput?(.eof)
        // An owner that stays (a half-closed subscriber) reads no more; most
        // close at the end of the stream, and then there is nothing to change.
        updateInterest()
    }

    /// True when the kernel holds received bytes not yet read (FIONREAD): after
    /// a loop stall, an idle timer may run before the socket's turn does.
    public var hasUnreadInput: Bool {
        guard !closed else { return false }
        var count: Int32 = 0
        return ioctl(fd, UInt(FIONREAD), &count) == 0 && count > 0
    }

    /// Half-closes the sending side once everything queued is written.
    public func shutdownWrite() {
        guard !closed else { return }
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Tears the socket down; safe to call more than once.
    public func close() {
        guard !closed else { return }
        closed = true
        onInput = nil
        onDrained = nil
        onConnected = nil
        Self.release(fd, token)
        token = nil
    }

    /// Frees the poller's token (first: events already collected for it are then
    /// ignored) and closes `fd`, which takes it out of the epoll set.
    private static func release(_ fd: Int32, _ token: Poller.Token?) {
        if let token { Poller.shared.forget(token) }
        Glibc.close(fd)
    }

    /// A socket dropped without `close()` is closed here, at once when the last
    /// reference goes on the loop (where it always goes: the socket is the
    /// loop's). Not an `isolated deinit`: the runtime runs that as a job queued
    /// on the loop's executor unless it is already inside one of its jobs, and a
    /// poller turn is not, so every connection's end cost a Dispatch hand-off
    /// and a context switch (docs/performance.md). Elsewhere the token is freed
    /// and the descriptor closed on the loop, as that job did; the poller ignores
    /// its events meanwhile (its weak reference is nil).
    deinit {
        guard !closed else { return }
        let fd = fd
        let token = token
        if LoopExecutor.shared.isCurrent {
            LoopActor.assumeIsolated { Self.release(fd, token) }
        } else {
            LoopExecutor.shared.queue.async { LoopActor.assumeIsolated { Self.release(fd, token) } }
        }
    }
}
