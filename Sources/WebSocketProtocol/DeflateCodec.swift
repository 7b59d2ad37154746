/// What the protocol core needs of a raw DEFLATE (RFC 1951) implementation
/// for permessage-deflate. The core stays pure: the daemon passes the system
/// zlib (`Zlib.ZlibCodec`), tests may pass anything that speaks DEFLATE.
public protocol DeflateCodec: Sendable {
    /// A decompressor for a window of `windowBits` (8...15); nil when it
    /// cannot be made (out of memory).
    func makeInflater(windowBits: Int) -> (any MessageInflater)?
    /// A compressor with a window of at most `windowBits` (8...15).
    func makeDeflater(windowBits: Int) -> (any MessageDeflater)?
}

public enum InflateOutcome: Equatable, Sendable {
    case ok
    /// The output would pass the limit: inflating stopped there.
    case limitExceeded
    case corrupt(String)
}

/// One direction's decompression state (its window lives between messages
/// while the server keeps its context).
public protocol MessageInflater: AnyObject {
    /// Decompresses `input`, appending to `output`, and stops as soon as
    /// `output` would hold more than `limit` bytes: however much the input
    /// expands, at most `limit` bytes (and a step's worth) are ever made.
    func inflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], limit: Int) -> InflateOutcome
}

/// One direction's compression state.
public protocol MessageDeflater: AnyObject {
    /// Compresses a whole message and flushes it to a byte boundary
    /// (Z_SYNC_FLUSH: the output ends with 00 00 ff ff). False on failure.
    func deflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Bool
}

/// permessage-deflate on one connection (RFC 7692 §7.2): the parameters agreed
/// and the compression state in each direction, made when first needed and
/// dropped after each message where the context is not taken over (an idle
/// connection then holds no compression memory).
struct MessageCompression {
    let parameters: DeflateParameters
    let codec: any DeflateCodec
    private var inflater: (any MessageInflater)?
    private var deflater: (any MessageDeflater)?

    init(parameters: DeflateParameters, codec: any DeflateCodec) {
        self.parameters = parameters
        self.codec = codec
    }

    /// §7.2.1 step 4: what an empty DEFLATE block with BFINAL 0 ends with.
    static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// Whether a stream is held in either direction (tests, memory accounting).
    var holdsState: Bool { inflater != nil || deflater != nil }

    /// Part of a compressed message's payload, decompressed onto `output`.
    mutating func inflate(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], limit: Int) -> InflateOutcome {
        if inflater == nil { inflater = codec.makeInflater(windowBits: parameters.serverMaxWindowBits) }
        guard let inflater else { return .corrupt("no memory for a decompressor") }
        return inflater.inflate(input, into: &output, limit: limit)
    }

    /// The end of a compressed message (§7.2.2): the tail the sender removed.
    mutating func finishMessage(into output: inout [UInt8], limit: Int) -> InflateOutcome {
        let outcome = Self.tail.withUnsafeBytes { inflate($0, into: &output, limit: limit) }
        if parameters.serverNoContextTakeover { inflater = nil }
        return outcome
    }

    /// A message was abandoned mid-way (the connection fails or closes).
    mutating func abandonInbound() { inflater = nil }

    /// A whole message compressed, without the §7.2.1 tail; nil when it
    /// cannot be (the message then goes uncompressed).
    mutating func compress(_ message: UnsafeRawBufferPointer) -> [UInt8]? {
        if deflater == nil { deflater = codec.makeDeflater(windowBits: parameters.clientMaxWindowBits) }
        guard let deflater else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(message.count / 2 + 64)
        let done = deflater.deflate(message, into: &output)
        if parameters.clientNoContextTakeover || !done { self.deflater = nil }
        guard done, output.count >= 4, Array(output.suffix(4)) == Self.tail else { return nil }
        output.removeLast(4)
        // §7.2.3.6: an empty message compresses to one byte 0x00.
        if output.isEmpty { output = [0x00] }
        return output
    }
}
