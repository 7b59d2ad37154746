import CZlib
import Synchronization
import WebSocketProtocol

/// permessage-deflate's DEFLATE through the system zlib: raw streams
/// (negative window bits, no zlib header, RFC 7692 §7.2.1).
public struct ZlibCodec: DeflateCodec {
    /// zlib's memLevel for compressing (1...9): 8 is zlib's default, and what
    /// a busy compressed connection costs with context takeover; streams
    /// without takeover are held only while a message is compressed, then go
    /// back to a small shared pool (`StreamPool`).
    public var memLevel: Int32
    /// Compression level (0...9); 6 is zlib's default.
    public var level: Int32

    public init(level: Int32 = 6, memLevel: Int32 = 8) {
        self.level = level
        self.memLevel = memLevel
    }

    public func makeInflater(windowBits: Int) -> (any MessageInflater)? {
        ZlibInflater(windowBits: Int32(windowBits))
    }

    public func makeDeflater(windowBits: Int) -> (any MessageDeflater)? {
        // zlib refuses a raw deflate window of 8 (zlib.h: "windowBits = 8 ...
        // is changed to 9"; for raw deflate it is an error since 1.2.9). A
        // window of 9 never reaches further back than 256 bytes (zlib keeps
        // MIN_LOOKAHEAD of the window free), so a peer with 8 inflates it.
        ZlibDeflater(windowBits: Int32(max(9, windowBits)), level: level, memLevel: memLevel)
    }
}

/// One raw inflate stream (from the pool when one is kept, back to it after).
final class ZlibInflater: MessageInflater {
    private let key: StreamPool.Key
    private let pointer: UnsafeMutablePointer<z_stream>
    private var stream: z_stream {
        _read { yield pointer.pointee }
        _modify { yield &pointer.pointee }
    }

    init?(windowBits: Int32) {
        key = StreamPool.Key(inflating: true, windowBits: windowBits, level: 0, memLevel: 0)
        guard
            let pointer = StreamPool.shared.take(key)
                ?? StreamPool.make({ wshostd_inflateInit2($0, -windowBits) })
        else { return nil }
        self.pointer = pointer
    }

    deinit { StreamPool.shared.give(pointer, key, reset: { inflateReset($0) }, end: { inflateEnd($0) }) }

    func inflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], limit: Int) -> InflateOutcome {
        guard let base = input.baseAddress, !input.isEmpty else { return .ok }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = UInt32(input.count)
        defer {
            stream.next_in = nil
            stream.avail_in = 0
        }
        let step = 16 << 10
        return withUnsafeTemporaryAllocation(of: Bytef.self, capacity: step) { buffer in
            while true {
                // One byte past the limit at most: enough to know it is passed.
                let room = min(step, limit + 1 - output.count)
                guard room > 0 else { return .limitExceeded }
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(room)
                let before = stream.avail_in
                let status = CZlib.inflate(pointer, Z_SYNC_FLUSH)
                let made = room - Int(stream.avail_out)
                output.append(contentsOf: UnsafeBufferPointer(start: buffer.baseAddress, count: made))
                if output.count > limit { return .limitExceeded }
                switch status {
                case Z_OK:
                    if stream.avail_in == 0 && stream.avail_out > 0 { return .ok }
                    if made == 0 && stream.avail_in == before { return .ok }  // no progress: wants more input
                case Z_BUF_ERROR:
                    return .ok  // everything given was consumed; nothing more to make
                case Z_STREAM_END:
                    // A final block (BFINAL, RFC 7692 §7.2.3.4): the stream ends
                    // here; what follows starts a new one with the same window.
                    guard restartKeepingWindow() else { return .corrupt("cannot restart the stream") }
                    if stream.avail_in == 0 { return .ok }
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    return .corrupt(reason)
                }
            }
        }
    }

    /// After a final block: the same window, a fresh stream.
    private func restartKeepingWindow() -> Bool {
        var window = [Bytef](repeating: 0, count: 1 << 15)
        var length: uInt = 0
        guard inflateGetDictionary(pointer, &window, &length) == Z_OK, inflateReset(pointer) == Z_OK else {
            return false
        }
        return length == 0 || inflateSetDictionary(pointer, window, length) == Z_OK
    }
}

/// One raw deflate stream (from the pool when one is kept, back to it after).
final class ZlibDeflater: MessageDeflater {
    private let key: StreamPool.Key
    private let pointer: UnsafeMutablePointer<z_stream>
    private var stream: z_stream {
        _read { yield pointer.pointee }
        _modify { yield &pointer.pointee }
    }

    init?(windowBits: Int32, level: Int32, memLevel: Int32) {
        key = StreamPool.Key(inflating: false, windowBits: windowBits, level: level, memLevel: memLevel)
        guard
            let pointer = StreamPool.shared.take(key)
                ?? StreamPool.make({ wshostd_deflateInit2($0, level, -windowBits, memLevel) })
        else { return nil }
        self.pointer = pointer
    }

    deinit { StreamPool.shared.give(pointer, key, reset: { deflateReset($0) }, end: { deflateEnd($0) }) }

    func deflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Bool {
        // (zlib takes no input pointer when there is no input: an empty message)
        stream.next_in = input.baseAddress.map {
            UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self))
        }
        stream.avail_in = UInt32(input.count)
        defer {
            stream.next_in = nil
            stream.avail_in = 0
        }
        let step = 16 << 10
        return withUnsafeTemporaryAllocation(of: Bytef.self, capacity: step) { buffer in
            while true {
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(step)
                let status = CZlib.deflate(pointer, Z_SYNC_FLUSH)
                guard status == Z_OK || status == Z_BUF_ERROR else { return false }
                output.append(
                    contentsOf: UnsafeBufferPointer(start: buffer.baseAddress, count: step - Int(stream.avail_out)))
                // Done when the flush left room in the output (zlib's rule for Z_SYNC_FLUSH).
                if stream.avail_out > 0 { return stream.avail_in == 0 }
            }
        }
    }
}

/// zlib streams given back when a message or a connection is done, reset and
/// kept for the next one of the same kind. Without context takeover a stream
/// lives for one message: making it each time costs zlib's allocations (about
/// 270 KiB for a 15-bit compressor, much of it touched for the first time) and
/// clearing its hash table, while a reset costs only the latter — measured in
/// the compressed echo benchmark (docs/performance.md). At most `perKind`
/// streams of each kind are kept, so what an idle daemon holds is bounded
/// (about 1.2 MiB for four 15-bit compressors) whatever the number of
/// connections. One lock, taken twice per message: the loop is one thread.
final class StreamPool: Sendable {
    struct Key: Hashable {
        var inflating: Bool
        var windowBits: Int32
        var level: Int32
        var memLevel: Int32
    }

    /// A stream's address, stable for its life (zlib's state points back to it).
    private struct Stream: @unchecked Sendable { var pointer: UnsafeMutablePointer<z_stream> }

    static let shared = StreamPool(perKind: 4)

    let perKind: Int
    private let kept = Mutex<[Key: [Stream]]>([:])

    init(perKind: Int) { self.perKind = perKind }

    /// A new stream, or nil when zlib cannot make one (out of memory).
    static func make(_ initialize: (UnsafeMutablePointer<z_stream>) -> Int32) -> UnsafeMutablePointer<z_stream>? {
        let pointer = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        pointer.initialize(to: z_stream())
        guard initialize(pointer) == Z_OK else {
            pointer.deallocate()
            return nil
        }
        return pointer
    }

    func take(_ key: Key) -> UnsafeMutablePointer<z_stream>? {
        kept.withLock { $0[key]?.popLast()?.pointer }
    }

    /// Keeps the stream, reset, when there is room; ends it otherwise.
    func give(
        _ pointer: UnsafeMutablePointer<z_stream>, _ key: Key, reset: (UnsafeMutablePointer<z_stream>) -> Int32,
        end: (UnsafeMutablePointer<z_stream>) -> Int32
    ) {
        if reset(pointer) == Z_OK {
            let stored = kept.withLock { kept -> Bool in
                guard kept[key, default: []].count < perKind else { return false }
                kept[key, default: []].append(Stream(pointer: pointer))
                return true
            }
            if stored { return }
        }
        _ = end(pointer)
        pointer.deallocate()
    }
}
