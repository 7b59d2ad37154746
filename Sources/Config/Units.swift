/// Parsing of the human units the config file uses: durations such as `"60s"`,
/// `"250ms"`, `"1m30s"` and sizes such as `"16MiB"`, `"64KiB"`, `"512B"`.
///
/// Pure functions: no I/O. They return `nil` for anything that is not exactly
/// one of the accepted spellings, and the schema turns that into a message.
public enum Units {
    /// Duration units, longest suffix first so that `ms` is not read as `m` + `s`.
    static let durationUnits: [(suffix: String, nanoseconds: Int64)] = [
        ("ms", 1_000_000), ("us", 1_000), ("ns", 1),
        ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
    ]

    /// Parses `"250ms"`, `"60s"`, `"1m30s"`, `"2h"`, `"0s"`: one or more
    /// `<integer><unit>` groups, units ns, us, ms, s, m, h. No sign, no spaces,
    /// no fractions, no bare numbers (a bare number is ambiguous).
    public static func duration(_ text: String) -> Duration? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var total: Int64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 12, let value = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let unit = durationUnits.first(where: { rest.hasPrefix($0.suffix) }) else { return nil }
            rest = rest.dropFirst(unit.suffix.count)
            let (product, overflow1) = value.multipliedReportingOverflow(by: unit.nanoseconds)
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow1, !overflow2 else { return nil }
            total = sum
        }
        return .nanoseconds(total)
    }

    static let sizeUnits: [(suffix: String, bytes: Int64)] = [
        ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1),
    ]

    /// Parses `"16MiB"`, `"64KiB"`, `"1GiB"`, `"512B"`: one integer and a binary unit.
    public static func size(_ text: String) -> Int64? {
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, digits.count <= 12, let value = Int64(digits) else { return nil }
        let unitText = text.dropFirst(digits.count)
        guard let unit = sizeUnits.first(where: { $0.suffix == unitText }) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit.bytes)
        return overflow ? nil : product
    }

    /// The shortest exact spelling of a duration, the inverse of `duration(_:)`.
    public static func format(_ duration: Duration) -> String {
        let ns = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        if ns == 0 { return "0s" }
        for unit in [("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000)]
        where ns % Int64(unit.1) == 0 {
            return "\(ns / Int64(unit.1))\(unit.0)"
        }
        return ns % 1_000 == 0 ? "\(ns / 1_000)us" : "\(ns)ns"
    }

    /// The shortest exact spelling of a size, the inverse of `size(_:)`.
    public static func format(bytes: Int64) -> String {
        for unit in sizeUnits where unit.bytes > 1 && bytes != 0 && bytes % unit.bytes == 0 {
            return "\(bytes / unit.bytes)\(unit.suffix)"
        }
        return "\(bytes)B"
    }
}
