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
            ? .nanoseconds(Int64(a.nanoseconds - b.nanoseconds)) : .nanoseconds(-Int64(b.nanoseconds - a.nanoseconds))
    }

    public var description: String { "\(nanoseconds)ns" }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int64`.
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (seconds < 0 ? .min : .max) : sum
    }
}
