/// An IPv4 or IPv6 address as bytes (4 or 16), with the parsing and the
/// canonical text that make one key per address: `127.1`, `2130706433`,
/// `0x7f000001`, `0177.0.0.1` and `[::ffff:127.0.0.1]` are all `127.0.0.1`
/// (issue #12: every spelling was a different consent key). Pure.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 (IPv6), network order.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`),
    /// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4
    /// (`2002:AABB:CCDD::`) IPv6 address; itself when IPv4.
    public var embeddedIPv4: IPAddress? {
        if isIPv4 { return self }
        // NAT64's well-known prefix 64:ff9b::/96 (RFC 6052) and 6to4's 2002::/16
        // (RFC 3056) reach the IPv4 address inside them.
        if bytes[0...11].elementsEqual([0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0]) {
            return IPAddress(bytes: Array(bytes[12...]))
        }
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return IPAddress(bytes: Array(bytes[2...5])) }
        let prefix = bytes[0..<10]
        guard prefix.allSatisfy({ $0 == 0 }) else { return nil }
        if bytes[10] == 0xFF && bytes[11] == 0xFF { return IPAddress(bytes: Array(bytes[12...])) }
        // ::a.b.c.d (deprecated, RFC 4291 §2.5.5.1), not :: and ::1 themselves.
        if bytes[10] == 0 && bytes[11] == 0 && bytes[12...].contains(where: { $0 != 0 })
            && !(bytes[12] == 0 && bytes[13] == 0 && bytes[14] == 0)
        {
            return IPAddress(bytes: Array(bytes[12...]))
        }
        return nil
    }

    /// Dotted quad, or RFC 5952 text for IPv6 (lower case, the longest run
    /// of two or more zero groups as `::`); a mapped IPv4 address is its IPv4 text.
    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return bytes[12...].map(String.init).joined(separator: ".")
        }
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - index > best.length && end - index >= 2 { best = (index, end - index) }
                index = end
            } else {
                index += 1
            }
        }
        func text(_ slice: ArraySlice<UInt16>) -> String { slice.map { String($0, radix: 16) }.joined(separator: ":") }
        guard best.start >= 0 else { return text(groups[...]) }
        return text(groups[..<best.start]) + "::" + text(groups[(best.start + best.length)...])
    }

    /// IPv4 in any form `inet_aton` (and so the resolver) accepts: one to
    /// four parts, each decimal, `0x` hexadecimal or `0` octal, the last
    /// filling the remaining bytes. A trailing dot is allowed.
    public static func parseIPv4(_ text: Substring) -> IPAddress? {
        var text = text
        if text.hasSuffix(".") { text = text.dropLast() }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            guard !part.isEmpty, part.utf8.count <= 12 else { return nil }
            let value: UInt64?
            if part.hasPrefix("0x") || part.hasPrefix("0X") {
                value = part.count == 2 ? 0 : UInt64(part.dropFirst(2), radix: 16)
            } else if part.hasPrefix("0") && part.count > 1 {
                value = UInt64(part.dropFirst(), radix: 8)
            } else {
                value = UInt64(part, radix: 10)
            }
            guard let value, part.allSatisfy({ $0.isHexDigit || $0 == "x" || $0 == "X" }) else { return nil }
            values.append(value)
        }
        // All parts but the last are one byte; the last fills the rest.
        let lastBytes = 5 - values.count
        guard values.dropLast().allSatisfy({ $0 <= 0xFF }), values.last! < (1 << (8 * UInt64(lastBytes))) else {
            return nil
        }
        var address = values.dropLast().map { UInt8($0) }
        let last = values.last!
        for shift in stride(from: 8 * (lastBytes - 1), through: 0, by: -8) {
            address.append(UInt8((last >> UInt64(shift)) & 0xFF))
        }
        return IPAddress(bytes: address)
    }

    /// Exactly four decimal parts of 0–255 without leading zeros (as
    /// `inet_pton` reads them): where an address is written out in full, as
    /// in a network or an IPv6 address's IPv4 tail, `010` is not 8.
    public static func parseDottedQuad(_ text: Substring) -> IPAddress? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part == "0" || !part.hasPrefix("0"), let value = UInt8(part)
            else { return nil }
            bytes.append(value)
        }
        return IPAddress(bytes: bytes)
    }

    /// IPv6 text (RFC 4291 §2.2), with `::` and an IPv4 tail; no zone.
    public static func parseIPv6(_ text: Substring) -> IPAddress? {
        guard text.utf8.count <= 45, text.contains(":") else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        let pieces = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard pieces.count <= 2 else { return nil }
        func groups(_ part: String, allowIPv4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if index == fields.count - 1 && allowIPv4Tail && field.contains(".") {
                    guard let v4 = parseDottedQuad(field) else { return nil }
                    result.append(UInt16(v4.bytes[0]) << 8 | UInt16(v4.bytes[1]))
                    result.append(UInt16(v4.bytes[2]) << 8 | UInt16(v4.bytes[3]))
                } else {
                    guard (1...4).contains(field.count), field.allSatisfy(\.isHexDigit),
                        let value = UInt16(field, radix: 16)
                    else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        if pieces.count == 2 {
            sawDoubleColon = true
            guard let first = groups(pieces[0], allowIPv4Tail: false),
                let second = groups(pieces[1], allowIPv4Tail: true)
            else { return nil }
            head = first
            tail = second
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard let all = groups(pieces[0], allowIPv4Tail: true), all.count == 8 else { return nil }
            head = all
        }
        let zeros = sawDoubleColon ? [UInt16](repeating: 0, count: 8 - head.count - tail.count) : []
        let all = head + zeros + tail
        return IPAddress(bytes: all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
    }
}
