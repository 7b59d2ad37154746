/// A point on the monotonic clock, in nanoseconds since an arbitrary origin
/// (Dispatch's uptime clock). Pure cores take these as inputs; only the loop
/// reads the clock.
public struct MonotonicInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (instant: Self, duration: Duration) -> Self {
        let ns = duration.nanosecondsClamped
        return Self(nanoseconds: ns >= 0 ? instant.nanoseconds &+ UInt64(ns) : instant.nanoseconds &- UInt64(-ns))
    }

    public static func - (a: Self, b: Self) -> Duration {
        a >= b
            ? .fromNanoseconds(Int64(a.nanoseconds - b.nanoseconds))
            : .fromNanoseconds(-Int64(b.nanoseconds - a.nanoseconds))
    }

    public var description: String { "\(nanoseconds)ns" }
}

/// Durations to and from nanoseconds through their attoseconds: `components`
/// divides 128 bits by 10¹⁸ and the generic `.nanoseconds(_:)` checks a
/// 128-bit product for overflow, about 2k instructions per connection
/// attempt between the timers and the core's retry arithmetic.
extension Duration {
    /// Whole nanoseconds (rounded toward zero), clamped to `Int64`.
    public var nanosecondsClamped: Int64 {
        let attoseconds = self.attoseconds
        // Within ±9.2 s a 64-bit division (a multiplication by the inverse).
        if let small = Int64(exactly: attoseconds) { return small / 1_000_000_000 }
        let nanoseconds = attoseconds / 1_000_000_000
        if nanoseconds > Int128(Int64.max) { return .max }
        if nanoseconds < Int128(Int64.min) { return .min }
        return Int64(nanoseconds)
    }

    /// `.nanoseconds(n)`, exact: any `Int64` of nanoseconds fits.
    public static func fromNanoseconds(_ nanoseconds: Int64) -> Duration {
        Duration(attoseconds: Int128(nanoseconds) * 1_000_000_000)
    }
}
