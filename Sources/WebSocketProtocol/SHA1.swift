/// SHA-1 (FIPS 180-4), only for `Sec-WebSocket-Accept` (RFC 6455 §4.2.2),
/// where it is a checksum of the handshake, not a security measure. Pure Swift
/// so that this core needs no crypto library.
enum SHA1 {
    static func hash<Bytes: Collection>(_ message: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        let bytes = Array(message)
        return [UInt8](unsafeUninitializedCapacity: 20) { digest, count in
            bytes.withUnsafeBytes { hash($0, into: UnsafeMutableRawBufferPointer(digest)) }
            count = 20
        }
    }

    /// The digest of `message` into the first 20 bytes of `digest`. The
    /// padded message is built on the stack: no allocation (a handshake
    /// checks one accept value per connection).
    static func hash(_ message: UnsafeRawBufferPointer, into digest: UnsafeMutableRawBufferPointer) {
        precondition(digest.count >= 20)
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
            0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0
        )
        let padded = (message.count + 8) / 64 * 64 + 64
        let bitLength = UInt64(message.count) * 8
        // The message schedule on the stack, and the rounds in four loops of
        // their own (a switch per round and bounds checks cost more than the
        // rounds: this runs once per connection).
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: padded) { data in
            let base = data.baseAddress!
            if let source = message.baseAddress {
                base.initialize(from: source.assumingMemoryBound(to: UInt8.self), count: message.count)
            }
            (base + message.count).initialize(repeating: 0, count: padded - message.count)
            base[message.count] = 0x80
            for index in 0..<8 {
                base[padded - 1 - index] = UInt8(truncatingIfNeeded: bitLength >> UInt64(index * 8))
            }
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { w in
                for chunk in stride(from: 0, to: padded, by: 64) {
                    for i in 0..<16 {
                        let j = chunk + i * 4
                        w[i] =
                            UInt32(base[j]) << 24 | UInt32(base[j + 1]) << 16 | UInt32(base[j + 2]) << 8
                            | UInt32(base[j + 3])
                    }
                    for i in 16..<80 {
                        let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                        w[i] = x << 1 | x >> 31
                    }
                    var (a, b, c, d, e) = h
                    @inline(__always) func round(_ f: UInt32, _ k: UInt32, _ word: UInt32) {
                        let temp = (a << 5 | a >> 27) &+ f &+ e &+ k &+ word
                        (e, d, c, b, a) = (d, c, b << 30 | b >> 2, a, temp)
                    }
                    for i in 0..<20 { round((b & c) | (~b & d), 0x5A82_7999, w[i]) }
                    for i in 20..<40 { round(b ^ c ^ d, 0x6ED9_EBA1, w[i]) }
                    for i in 40..<60 { round((b & c) | (b & d) | (c & d), 0x8F1B_BCDC, w[i]) }
                    for i in 60..<80 { round(b ^ c ^ d, 0xCA62_C1D6, w[i]) }
                    h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
                }
            }
        }
        func put(_ word: UInt32, at offset: Int) {
            digest[offset] = UInt8(truncatingIfNeeded: word >> 24)
            digest[offset + 1] = UInt8(truncatingIfNeeded: word >> 16)
            digest[offset + 2] = UInt8(truncatingIfNeeded: word >> 8)
            digest[offset + 3] = UInt8(truncatingIfNeeded: word)
        }
        put(h.0, at: 0)
        put(h.1, at: 4)
        put(h.2, at: 8)
        put(h.3, at: 12)
        put(h.4, at: 16)
    }
}
