/// Base64 (RFC 4648 §4) with padding: the handshake key and accept value, and
/// binary payloads in the control protocol.
public enum Base64 {
    public static func encode<Bytes: Collection>(_ input: Bytes) -> String where Bytes.Element == UInt8 {
        if let text = input.withContiguousStorageIfAvailable({ encode(UnsafeRawBufferPointer($0)) }) { return text }
        return Array(input).withUnsafeBytes { encode($0) }
    }

    /// Written straight into the string's storage: no intermediate arrays
    /// (two handshake keys per connection went through three allocations each).
    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: encodedCount(bytes.count)) { encode(bytes, into: $0) }
    }

    /// The length of the base64 text of `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Writes the base64 text of `bytes` at the start of `output` (at least
    /// `encodedCount(bytes.count)` long); returns its length.
    @discardableResult
    public static func encode(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let count = encodedCount(bytes.count)
        precondition(output.count >= count)
        var i = 0
        var o = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            output[o] = digit(triple >> 18)
            output[o + 1] = digit(triple >> 12)
            output[o + 2] = i + 1 < bytes.count ? digit(triple >> 6) : UInt8(ascii: "=")
            output[o + 3] = i + 2 < bytes.count ? digit(triple) : UInt8(ascii: "=")
            i += 3
            o += 4
        }
        return count
    }

    /// The base64 digit of the low six bits of `bits`.
    @inline(__always)
    static func digit(_ bits: UInt32) -> UInt8 {
        let value = UInt8(truncatingIfNeeded: bits & 63)
        switch value {
        case 0..<26: return value &+ UInt8(ascii: "A")
        case 26..<52: return value &- 26 &+ UInt8(ascii: "a")
        case 52..<62: return value &- 52 &+ UInt8(ascii: "0")
        case 62: return UInt8(ascii: "+")
        default: return UInt8(ascii: "/")
        }
    }

    /// The bytes of canonical padded base64; nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            var quad: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let byte = input[index + offset]
                let value: UInt32
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): value = 62
                case UInt8(ascii: "/"): value = 63
                case UInt8(ascii: "=") where index + 4 == input.count && offset >= 2:
                    padding += 1
                    value = 0
                default: return nil
                }
                // Nothing but padding may follow padding.
                if padding > 0 && byte != UInt8(ascii: "=") { return nil }
                quad = quad << 6 | value
            }
            output.append(UInt8(quad >> 16 & 0xFF))
            if padding < 2 { output.append(UInt8(quad >> 8 & 0xFF)) }
            if padding < 1 { output.append(UInt8(quad & 0xFF)) }
            index += 4
        }
        return output
    }
}
