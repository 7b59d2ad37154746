/// Writes client-to-server frames (RFC 6455 §5.2–§5.3): every frame masked
/// with a fresh key, lengths in the shortest encoding, the payload masked a
/// machine word at a time.
public enum FrameWriter {
    /// Appends one frame to `output`.
    public static func append<Payload: Collection>(
        fin: Bool, opcode: Opcode, payload: Payload, maskKey: UInt32, to output: inout [UInt8]
    ) where Payload.Element == UInt8 {
        let count = payload.count
        // The header (at most 2 + 8 + 4 bytes) is built in place, then appended once.
        var header: (UInt64, UInt64) = (0, 0)
        let headerLength = withUnsafeMutableBytes(of: &header) { h -> Int in
            h[0] = (fin ? 0x80 : 0) | opcode.rawValue
            var n = 2
            if count < 126 {
                h[1] = 0x80 | UInt8(count)
            } else if count <= 0xFFFF {
                h[1] = 0x80 | 126
                h[2] = UInt8(count >> 8)
                h[3] = UInt8(count & 0xFF)
                n = 4
            } else {
                h[1] = 0x80 | 127
                for i in 0..<8 { h[2 + i] = UInt8(truncatingIfNeeded: UInt64(count) >> UInt64(56 - 8 * i)) }
                n = 10
            }
            for i in 0..<4 { h[n + i] = UInt8(truncatingIfNeeded: maskKey >> UInt32(24 - 8 * i)) }
            return n + 4
        }
        withUnsafeBytes(of: &header) { output.append(contentsOf: $0[0..<headerLength]) }
        let start = output.count
        output.append(contentsOf: payload)
        output.withUnsafeMutableBytes { bytes in
            mask(UnsafeMutableRawBufferPointer(rebasing: bytes[start...]), key: maskKey)
        }
    }

    /// RFC 6455 §5.3: octet i is XORed with octet i mod 4 of the key (key's
    /// most significant byte first). Eight bytes at a time.
    public static func mask(_ bytes: UnsafeMutableRawBufferPointer, key: UInt32) {
        guard let base = bytes.baseAddress else { return }
        @inline(__always) func keyByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: key >> UInt32(24 - 8 * (i & 3))) }
        var word: UInt64 = 0
        withUnsafeMutableBytes(of: &word) { raw in
            for i in 0..<8 { raw[i] = keyByte(i) }
        }
        let count = bytes.count
        var offset = 0
        while offset + 8 <= count {
            let value = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            base.storeBytes(of: value ^ word, toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            let value = base.load(fromByteOffset: offset, as: UInt8.self)
            base.storeBytes(of: value ^ keyByte(offset), toByteOffset: offset, as: UInt8.self)
            offset += 1
        }
    }
}
