import EventLoop

/// The bytes all connections together may hold on the way in: messages
/// being assembled, bytes not yet parsed, and (charged by the host) messages
/// waiting for delivery. One per daemon, on the loop. Whoever asks for more
/// while it is spent is refused (its connection fails with 1008), so many
/// servers each sending a large partial message cannot add up to an
/// unbounded heap (issue #12).
@LoopActor
public final class InboundBudget {
    public var limit: Int
    public private(set) var used = 0

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes `count` more bytes (negative gives back); false when that goes
    /// past the limit (the bytes are counted all the same, and the caller
    /// gives them back as it sheds them).
    @discardableResult
    public func charge(_ count: Int) -> Bool {
        used += count
        return count <= 0 || used <= limit
    }
}
