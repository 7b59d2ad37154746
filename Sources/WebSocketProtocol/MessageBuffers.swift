/// Spare buffers for received messages, so that steady receiving allocates
/// nothing: whoever consumed a delivered message gives its buffer back, and
/// the next message is assembled into it. Shared by every connection of one
/// loop (an idle connection holds none); bounded by the capacity it keeps in
/// all and by the capacity of each buffer. Not thread-safe: one loop owns it.
public final class MessageBuffers {
    /// Capacity kept in all, in bytes: enough for a burst's worth of small
    /// messages queued at once, little beside a daemon's other memory.
    public let maxBytes: Int
    /// A buffer with more capacity than this is let go (larger messages are
    /// rare, and a pool of them would hold memory long after).
    public let maxCapacity: Int
    private var spares: [[UInt8]] = []
    private var keptBytes = 0

    public init(maxBytes: Int = 1 << 20, maxCapacity: Int = 128 << 10) {
        self.maxBytes = maxBytes
        self.maxCapacity = maxCapacity
    }

    /// Buffers kept now.
    public var count: Int { spares.count }

    /// An empty buffer, with the capacity of a message given back if any.
    /// (Emptied here, not in `give`: by now the consumer's copies are usually
    /// gone, so emptying keeps the storage. A copy still held elsewhere, say by
    /// an event waiting for a subscriber, keeps it: emptying then allocates a
    /// new buffer of the same capacity, as many bytes as receiving without the
    /// pool would have.)
    public func take() -> [UInt8] {
        guard var buffer = spares.popLast() else { return [] }
        keptBytes -= buffer.capacity
        buffer.removeAll(keepingCapacity: true)
        return buffer
    }

    /// A consumed message's buffer, for a later `take`.
    public func give(_ buffer: [UInt8]) {
        let capacity = buffer.capacity
        guard capacity > 0, capacity <= maxCapacity, keptBytes + capacity <= maxBytes else { return }
        keptBytes += capacity
        spares.append(buffer)
    }
}
