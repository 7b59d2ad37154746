import Dispatch
import Glibc

/// A non-blocking stream socket on the loop (TCP, or an accepted Unix
/// connection), owning its fd until `close()`: reads arrive through a Dispatch
/// read source (up to a byte budget per wake-up so one busy socket cannot
/// starve the others); writes go out directly and, when the kernel buffer is
/// full, through a write source that exists only while bytes wait (and while a
/// connect completes). The write source is cancelled when drained, never left
/// suspended: on Linux a suspended write source on the same fd can swallow the
/// read source's events (measured: reads stalled until the peer hung up).
/// `close()` cancels the sources and closes the fd once every cancel handler
/// has run (closing earlier would let Dispatch act on a reused descriptor).
@LoopActor
public final class TCPSocket {
    public enum Input {
        case data(UnsafeRawBufferPointer)
        case eof
        case error(Int32)
    }

    public let fd: Int32
    public let peer: SocketAddress
    /// Bytes read per wake-up before yielding to other sources.
    public var readBudget = 256 << 10

    private let readSource: any DispatchSourceRead
    /// Present only while bytes wait for the kernel, or a connect completes.
    private var writeSource: (any DispatchSourceWrite)?
    private let descriptor: Descriptor
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var closed = false
    private var started = false
    /// One read buffer for every socket: they all read on the one loop, one at
    /// a time, and `onInput` consumers copy what they keep (the bytes are only
    /// valid during the call). Saves 64 KiB per connection.
    private static let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
    private var onInput: (@LoopActor (Input) -> Void)?
    private var onDrained: (@LoopActor () -> Void)?
    private var onConnected: (@LoopActor (Int32) -> Void)?

    /// Takes ownership of a connected, non-blocking `fd`.
    init(fd: Int32, peer: SocketAddress) {
        self.fd = fd
        self.peer = peer
        descriptor = Descriptor(fd)
        readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: LoopExecutor.shared.queue)
        descriptor.sources += 1
        readSource.setCancelHandler { [descriptor] in descriptor.sourceCancelled() }
        readSource.setEventHandler { [weak self] in self?.readable() }
    }

    /// Waits for a non-blocking `connect` to finish; `completion` gets 0 or the errno.
    func awaitConnect(_ completion: @escaping @LoopActor (Int32) -> Void) {
        onConnected = completion
        resumeWrites()
    }

    /// Starts delivering input; `onInput` is called on the loop.
    public func start(onInput: @escaping @LoopActor (Input) -> Void, onDrained: (@LoopActor () -> Void)? = nil) {
        guard !started else { return }
        started = true
        self.onInput = onInput
        self.onDrained = onDrained
        readSource.activate()
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
        pending.removeAll(keepingCapacity: true)
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[max(0, written)...]))
        pendingOffset = 0
        resumeWrites()
    }

    private func writable() {
        guard !closed else { return }
        if let onConnected {
            self.onConnected = nil
            suspendWrites()
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            onConnected(error)
            return
        }
        while pendingCount > 0 {
            let written = pending.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + pendingOffset, raw.count - pendingOffset, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                pendingOffset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {
                let code = errno
                suspendWrites()
                onInput?(.error(code))
                return
            }
        }
        pending.removeAll(keepingCapacity: pending.capacity <= 64 << 10)
        pendingOffset = 0
        suspendWrites()
        onDrained?()
    }

    private func readable() {
        var total = 0
        while !closed && total < readBudget {
            let readBuffer = Self.readBuffer
            let count = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if count > 0 {
                total += count
                onInput?(.data(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])))
                // A short read emptied the socket: no second recv just to see
                // EAGAIN. Dispatch re-arms the fd level-triggered (EPOLLONESHOT
                // then MOD), so bytes that arrive meanwhile wake us again.
                if count < readBuffer.count { return }
            } else if count == 0 {
                onInput?(.eof)
                return
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else {
                let code = errno
                onInput?(.error(code))
                return
            }
        }
    }

    /// True when the kernel holds received bytes not yet read (FIONREAD): after
    /// a loop stall, an idle timer may run before the read source does.
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
        descriptor.closing = true
        // A never-activated source must not be released: activate before cancelling.
        if !started {
            started = true
            readSource.activate()
        }
        readSource.cancel()
        writeSource?.cancel()
        writeSource = nil
    }

    isolated deinit {
        close()
    }

    /// Makes the write source (writability, or connect completion, is awaited).
    private func resumeWrites() {
        guard writeSource == nil, !closed else { return }
        let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: LoopExecutor.shared.queue)
        descriptor.sources += 1
        source.setCancelHandler { [descriptor] in descriptor.sourceCancelled() }
        source.setEventHandler { [weak self] in self?.writable() }
        source.activate()
        writeSource = source
    }

    /// Nothing waits: the write source goes (cancelled, not suspended).
    private func suspendWrites() {
        writeSource?.cancel()
        writeSource = nil
    }
}

/// The fd and its live Dispatch sources: closed when the socket is closing
/// and the last source's cancel handler has run. Cancel handlers run on the
/// loop queue.
private final class Descriptor: @unchecked Sendable {
    let fd: Int32
    var sources = 0
    var closing = false

    init(_ fd: Int32) { self.fd = fd }

    func sourceCancelled() {
        sources -= 1
        if sources == 0 && closing { Glibc.close(fd) }
    }
}
