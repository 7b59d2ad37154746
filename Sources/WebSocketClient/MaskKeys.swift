import Glibc
import Synchronization

/// Masking keys for every connection (RFC 6455 §5.3: fresh and unpredictable
/// per frame, from a strong source of entropy). The kernel's CSPRNG is asked
/// for a batch (`getentropy`, 256 bytes a call), not once per frame: one
/// system call per 64 frames instead of one per frame.
enum MaskKeys {
    private static let pool = Mutex(Pool())

    private struct Pool: ~Copyable {
        var keys = [UInt32](repeating: 0, count: 1024)
        var next = 1024

        mutating func take() -> UInt32 {
            if next == keys.count {
                keys.withUnsafeMutableBytes { Self.fill($0) }
                next = 0
            }
            defer { next += 1 }
            return keys[next]
        }

        static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
            var offset = 0
            while offset < buffer.count {
                let count = min(256, buffer.count - offset)
                if getentropy(buffer.baseAddress! + offset, count) == 0 {
                    offset += count
                } else if errno != EINTR {
                    // getentropy does not fail on a supported kernel; fall back
                    // to the standard library's generator all the same.
                    var rng = SystemRandomNumberGenerator()
                    while offset < buffer.count {
                        buffer[offset] = UInt8(truncatingIfNeeded: rng.next())
                        offset += 1
                    }
                }
            }
        }
    }

    static func next() -> UInt32 {
        pool.withLock { $0.take() }
    }
}
