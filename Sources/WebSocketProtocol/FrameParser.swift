/// An incremental parser of server-to-client frames (RFC 6455 §5.2), fed with
/// whatever bytes the socket produced and split anywhere.
///
/// Data frames are streamed: `frameStart`, then their payload in one or more
/// `payload` chunks as bytes arrive (so text can be validated, and limits
/// enforced, before the frame is complete), then `frameEnd`. Control frames,
/// at most 125 bytes, are returned whole. Frame-level rules are checked here;
/// message-level rules (fragmentation order, UTF-8, message size) belong to
/// the connection.
public struct FrameParser: Sendable {
    public enum Event: Equatable, Sendable {
        case frameStart(FrameHeader)
        /// Part of the current data frame's payload (server frames are unmasked).
        case payload(ArraySlice<UInt8>)
        case frameEnd
        /// A whole control frame (close, ping, pong).
        case control(Opcode, ArraySlice<UInt8>)
    }

    private enum State: Sendable {
        /// Waiting for a frame header.
        case header
        /// Inside a data frame's payload; `remaining` bytes still to come.
        case payload(remaining: Int)
    }

    public let maxFrameSize: Int
    /// RSV1 is allowed on a message's first frame: permessage-deflate was
    /// negotiated (RFC 7692 §6).
    public var allowsCompressedFrames = false
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var state = State.header
    private var failed = false

    public init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes received and not yet consumed.
    public var bufferedCount: Int { buffer.count - readIndex }

    /// Forgets what is buffered (the connection failed; nothing more is parsed).
    public mutating func discardBuffered() {
        buffer = []
        readIndex = 0
        failed = true
    }

    public mutating func append<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if readIndex > 0 && readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex > 4096 && readIndex * 2 > buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Payload bytes of the current data frame still to come, when every byte
    /// received so far has been consumed (so the next bytes received begin
    /// with them); nil otherwise.
    public var directPayloadRemaining: Int? {
        guard !failed, readIndex == buffer.count, case .payload(let remaining) = state, remaining > 0 else {
            return nil
        }
        return remaining
    }

    /// The length of the data frame header that begins `bytes`, when nothing
    /// is buffered and a header is due; nil otherwise (a control or masked
    /// frame, a header cut short), and those bytes go through `append`.
    public func directHeaderLength(_ bytes: Slice<UnsafeRawBufferPointer>) -> Int? {
        guard !failed, readIndex == buffer.count, case .header = state, bytes.count >= 2 else { return nil }
        let b0 = bytes[bytes.startIndex]
        let b1 = bytes[bytes.startIndex + 1]
        guard b0 & 0x08 == 0, b1 & 0x80 == 0 else { return nil }
        let length = Self.headerLength(b1)
        return bytes.count >= length ? length : nil
    }

    /// A server frame's header length from its second byte (RFC 6455 §5.2:
    /// 7-bit length, or 126 / 127 for a 16- / 64-bit length that follows).
    private static func headerLength(_ b1: UInt8) -> Int {
        switch b1 & 0x7F {
        case 126: return 4
        case 127: return 10
        default: return 2
        }
    }

    /// Records that the caller took `count` payload bytes of the current data
    /// frame straight from its input (at most `directPayloadRemaining`).
    public mutating func consumedDirectly(_ count: Int) {
        guard case .payload(let remaining) = state, count <= remaining, readIndex == buffer.count else {
            preconditionFailure("consumedDirectly outside a data frame's payload")
        }
        state = .payload(remaining: remaining - count)
    }

    /// The next event, nil when more bytes are needed, or the protocol error.
    /// After an error the parser stays failed.
    public mutating func next() -> Result<Event, ProtocolError>? {
        if failed { return nil }
        switch state {
        case .payload(let remaining):
            if remaining == 0 {
                state = .header
                return .success(.frameEnd)
            }
            let available = buffer.count - readIndex
            guard available > 0 else { return nil }
            let count = min(available, remaining)
            let chunk = buffer[readIndex..<(readIndex + count)]
            readIndex += count
            state = .payload(remaining: remaining - count)
            return .success(.payload(chunk))
        case .header:
            return parseHeader()
        }
    }

    private mutating func parseHeader() -> Result<Event, ProtocolError>? {
        let available = buffer.count - readIndex
        guard available >= 2 else { return nil }
        let b0 = buffer[readIndex]
        let b1 = buffer[readIndex + 1]
        // RFC 6455 §5.2: RSV1-3 MUST be 0 unless an extension defines them
        // (RFC 7692 §6: permessage-deflate defines RSV1).
        let rsv1 = b0 & 0x40 != 0
        guard b0 & 0x30 == 0, !rsv1 || allowsCompressedFrames else { return fail(.reservedBitsSet) }
        guard let opcode = Opcode(rawValue: b0 & 0x0F) else { return fail(.reservedOpcode(b0 & 0x0F)) }
        let fin = b0 & 0x80 != 0
        // RFC 6455 §5.1: a client MUST close the connection on a masked frame.
        guard b1 & 0x80 == 0 else { return fail(.maskedServerFrame) }
        let headerLength = Self.headerLength(b1)
        guard available >= headerLength else { return nil }
        var length = UInt64(b1 & 0x7F)
        if headerLength == 4 {
            length = UInt64(buffer[readIndex + 2]) << 8 | UInt64(buffer[readIndex + 3])
            // §5.2: the minimal number of bytes MUST be used to encode the length.
            guard length >= 126 else { return fail(.nonMinimalLength) }
        } else if headerLength == 10 {
            length = 0
            for i in 2..<10 { length = length << 8 | UInt64(buffer[readIndex + i]) }
            // §5.2: the most significant bit MUST be 0.
            guard length & (1 << 63) == 0 else { return fail(.lengthTooLarge) }
            guard length >= 65_536 else { return fail(.nonMinimalLength) }
        }
        if opcode.isControl {
            // §5.5: control frames MUST NOT be fragmented and have at most 125 bytes.
            guard fin else { return fail(.fragmentedControlFrame) }
            guard !rsv1 else { return fail(.compressedControlFrame) }  // RFC 7692 §6.1
            guard length <= 125 else { return fail(.controlFrameTooLong(Int(length))) }
            guard available >= headerLength + Int(length) else { return nil }
            let start = readIndex + headerLength
            readIndex = start + Int(length)
            return .success(.control(opcode, buffer[start..<readIndex]))
        }
        // RFC 7692 §6.1: RSV1 on the first frame of a message only.
        guard !rsv1 || opcode != .continuation else { return fail(.compressedContinuation) }
        guard length <= UInt64(maxFrameSize) else { return fail(.frameTooBig(limit: maxFrameSize)) }
        readIndex += headerLength
        state = .payload(remaining: Int(length))
        return .success(.frameStart(FrameHeader(fin: fin, opcode: opcode, payloadLength: Int(length), rsv1: rsv1)))
    }

    private mutating func fail(_ error: ProtocolError) -> Result<Event, ProtocolError> {
        failed = true
        return .failure(error)
    }
}
