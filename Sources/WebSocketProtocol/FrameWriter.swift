/// Writes client-to-server frames (RFC 6455 §5.2–§5.3): every frame masked
/// with a fresh key, lengths in the shortest encoding, the payload masked
/// sixteen bytes at a time while it is copied.
public enum FrameWriter {
    /// Appends one frame to `output`; `rsv1` marks the first frame of a
    /// compressed message (RFC 7692 §6).
    public static func append<Payload: Collection>(
        fin: Bool, opcode: Opcode, payload: Payload, maskKey: UInt32, rsv1: Bool = false, to output: inout [UInt8]
    ) where Payload.Element == UInt8 {
        let count = payload.count
        // The header (at most 2 + 8 + 4 bytes) is built in place, then appended once.
        var header: (UInt64, UInt64) = (0, 0)
        let headerLength = withUnsafeMutableBytes(of: &header) { h -> Int in
            h[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode.rawValue
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
        let contiguous: Void? = payload.withContiguousStorageIfAvailable { source in
            // Copied and masked in one pass, straight into the output's new tail.
            output.append(contentsOf: MaskedBytes(source: UnsafeRawBufferPointer(source), key: maskKey))
        }
        if contiguous == nil {
            let start = output.count
            output.append(contentsOf: payload)
            output.withUnsafeMutableBytes { bytes in
                mask(UnsafeMutableRawBufferPointer(rebasing: bytes[start...]), key: maskKey)
            }
        }
    }

    /// Bytes masked while they are copied: `Array.append(contentsOf:)` hands
    /// `_copyContents` the array's uninitialized tail, so the payload is read
    /// and written once instead of copied and then masked in place.
    struct MaskedBytes: Sequence {
        let source: UnsafeRawBufferPointer
        let key: UInt32

        var underestimatedCount: Int { source.count }

        func makeIterator() -> Iterator { Iterator(source: source, key: key) }

        struct Iterator: IteratorProtocol {
            let source: UnsafeRawBufferPointer
            let key: UInt32
            var offset = 0

            mutating func next() -> UInt8? {
                guard offset < source.count else { return nil }
                defer { offset += 1 }
                return source[offset] ^ UInt8(truncatingIfNeeded: key >> UInt32(24 - 8 * (offset & 3)))
            }
        }

        func _copyContents(initializing buffer: UnsafeMutableBufferPointer<UInt8>) -> (Iterator, Int) {
            let count = Swift.min(buffer.count, source.count)
            if count > 0, let from = source.baseAddress, let to = buffer.baseAddress {
                FrameWriter.mask(from: from, to: UnsafeMutableRawPointer(to), count: count, key: key)
            }
            return (Iterator(source: source, key: key, offset: count), count)
        }
    }

    /// Writes `count` bytes of `from`, masked with `key` (offset 0 = key's
    /// first octet), to `to`, sixteen bytes at a time.
    static func mask(from: UnsafeRawPointer, to: UnsafeMutableRawPointer, count: Int, key: UInt32) {
        @inline(__always) func keyByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: key >> UInt32(24 - 8 * (i & 3))) }
        var pattern = SIMD16<UInt8>()
        for i in 0..<16 { pattern[i] = keyByte(i) }
        var offset = 0
        while offset + 16 <= count {
            let value = from.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
            to.storeBytes(of: value ^ pattern, toByteOffset: offset, as: SIMD16<UInt8>.self)
            offset += 16
        }
        while offset < count {
            to.storeBytes(
                of: from.load(fromByteOffset: offset, as: UInt8.self) ^ keyByte(offset), toByteOffset: offset,
                as: UInt8.self)
            offset += 1
        }
    }

    /// RFC 6455 §5.3: octet i is XORed with octet i mod 4 of the key (key's
    /// most significant byte first). In place.
    public static func mask(_ bytes: UnsafeMutableRawBufferPointer, key: UInt32) {
        guard let base = bytes.baseAddress else { return }
        mask(from: UnsafeRawPointer(base), to: base, count: bytes.count, key: key)
    }
}
