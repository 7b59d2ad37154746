import Dispatch
import Glibc

/// A non-blocking TCP socket on the loop, owning its fd from `socket()` to
/// `close()` (its two Dispatch sources are the only ones ever made for the
/// fd): connect completion is seen by its write source, reads arrive through a
/// Dispatch read source (up to a byte budget per wake-up so one busy socket
/// cannot starve the others), writes go out directly and, when the kernel
/// buffer is full, through a write source that is suspended whenever there
/// is nothing to write. `close()` cancels both sources and closes the file
/// descriptor once both cancel handlers have run (closing earlier would let
/// Dispatch act on a reused descriptor).
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
    private let writeSource: any DispatchSourceWrite
    private var writeSuspended = true
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var closed = false
    private var started = false
    private var readBuffer: UnsafeMutableRawBufferPointer
    private var onInput: (@LoopActor (Input) -> Void)?
    private var onDrained: (@LoopActor () -> Void)?
    private var onConnected: (@LoopActor (Int32) -> Void)?

    /// Takes ownership of a connected, non-blocking `fd`.
    init(fd: Int32, peer: SocketAddress) {
        self.fd = fd
        self.peer = peer
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
        readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: LoopExecutor.shared.queue)
        writeSource = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: LoopExecutor.shared.queue)
        let remaining = Box(2)
        let cancelled: @Sendable () -> Void = {
            remaining.value -= 1
            if remaining.value == 0 {
                Glibc.close(fd)
            }
        }
        readSource.setCancelHandler(handler: cancelled)
        writeSource.setCancelHandler(handler: cancelled)
        readSource.setEventHandler { [weak self] in LoopActor.assumeIsolated { self?.readable() } }
        writeSource.setEventHandler { [weak self] in LoopActor.assumeIsolated { self?.writable() } }
        // The write source runs only while bytes wait; suspended otherwise.
        writeSource.activate()
        writeSource.suspend()
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
        guard !closed, !bytes.isEmpty else { return }
        if pendingCount > 0 {
            pending.append(contentsOf: bytes)
            return
        }
        let written = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written == bytes.count { return }
        if written < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            let code = errno
            onInput?(.error(code))
            return
        }
        pending = Array(bytes[max(0, written)...])
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
        pending.removeAll(keepingCapacity: true)
        pendingOffset = 0
        suspendWrites()
        onDrained?()
    }

    private func readable() {
        var total = 0
        while !closed && total < readBudget {
            let count = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if count > 0 {
                total += count
                onInput?(.data(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])))
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
        // A never-activated or suspended source must not be released: activate
        // and resume before cancelling.
        if !started {
            started = true
            readSource.activate()
        }
        if writeSuspended {
            writeSuspended = false
            writeSource.resume()
        }
        readSource.cancel()
        writeSource.cancel()
    }

    isolated deinit {
        close()
        // No handler can read into it any more: they hold `self` weakly.
        readBuffer.deallocate()
    }

    private func resumeWrites() {
        if writeSuspended {
            writeSuspended = false
            writeSource.resume()
        }
    }

    private func suspendWrites() {
        if !writeSuspended {
            writeSuspended = true
            writeSource.suspend()
        }
    }
}

/// A counter shared by the two cancel handlers; both run on the loop queue.
private final class Box: @unchecked Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
}
