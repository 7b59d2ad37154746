/// Spare buffers for received messages, so that steady receiving allocates
/// nothing: whoever consumed a delivered message gives its buffer back, and
/// the next message is assembled into it. Shared by every connection of one
/// loop (an idle connection holds no buffer); bounded in count and in the
/// capacity of each buffer kept. Not thread-safe: one loop owns it.
public final class MessageBuffers {
    /// Buffers kept at most.
    public let maxKept: Int
    /// A buffer with more capacity than this is let go (larger messages are rare,
    /// and a pool of them would hold memory long after).
    public let maxCapacity: Int
    private var spares: [[UInt8]] = []

    public init(maxKept: Int = 32, maxCapacity: Int = 128 << 10) {
        self.maxKept = maxKept
        self.maxCapacity = maxCapacity
        spares.reserveCapacity(maxKept)
    }

    /// Buffers kept now.
    public var count: Int { spares.count }

    /// An empty buffer, with the capacity of a message given back if any.
    /// (Emptied here, not in `give`: by now the consumer's copies are gone,
    /// so emptying keeps the storage instead of copying it.)
    public func take() -> [UInt8] {
        guard var buffer = spares.popLast() else { return [] }
        buffer.removeAll(keepingCapacity: true)
        return buffer
    }

    /// A consumed message's buffer, for a later `take`.
    public func give(_ buffer: [UInt8]) {
        guard spares.count < maxKept, buffer.capacity > 0, buffer.capacity <= maxCapacity else { return }
        spares.append(buffer)
    }
}
