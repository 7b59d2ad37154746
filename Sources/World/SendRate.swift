import MonotonicTime

/// A record's send budget: a token bucket of `perSecond` tokens a second,
/// holding at most one second's worth. A send takes a token; without one it
/// is refused. Bounds what one record (an echo reaction whose server echoes
/// back, a runaway sender) can put on the wire. Pure: the time is passed in.
public struct SendRate: Equatable, Sendable {
    /// Sends per second; 0 is no limit.
    public var perSecond: Int
    private var tokens: Double
    private var refilled: MonotonicInstant?

    public init(perSecond: Int) {
        self.perSecond = perSecond
        tokens = Double(perSecond)
    }

    /// Takes a token for one send at `now`; false when none is left.
    public mutating func take(now: MonotonicInstant) -> Bool {
        guard perSecond > 0 else { return true }
        if let refilled {
            let elapsed = Double((now - refilled).nanosecondsClamped) / 1e9
            tokens = min(Double(perSecond), tokens + max(0, elapsed) * Double(perSecond))
        }
        refilled = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
