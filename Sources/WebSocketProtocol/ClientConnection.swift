/// A sans-I/O RFC 6455 client connection: bytes and commands in, events and
/// bytes out. No sockets, no clocks, no logging; the shell feeds it what the
/// socket read (`receive`, `receiveEOF`), pulls events one at a time with
/// `nextEvent` (frames are parsed lazily, so the application can answer a
/// message before the next frame is judged), writes what `takeOutbound`
/// returns (or drains it in place with `drainOutbound`), and runs the timers (handshake, idle, close), calling `abort`
/// when one fires.
///
/// Ordering guarantee (the reference lost the last message, Neos #2508):
/// events come out in wire order, so every message received before the
/// server's Close precedes the `closed` event.
public struct ClientConnection {
    public struct Configuration: Sendable {
        /// Largest incoming frame payload (→ 1009).
        public var maxFrameSize: Int
        /// Largest incoming message, all fragments together (→ 1009).
        public var maxMessageSize: Int
        /// Most frames in one incoming message (→ 1008): endless empty
        /// continuation frames cost parsing and carry nothing.
        public var maxMessageFrames = 1 << 17
        /// Outgoing messages are split into frames of at most this payload.
        public var fragmentSize: Int
        public var userAgent: String?
        /// Bytes waiting to be written (here and in the shell's `transportBacklog`)
        /// beyond which a ping gets no pong: a server that sends pings and never
        /// reads cannot grow our memory (RFC 6455 §5.5.3 lets an endpoint answer
        /// only the most recent ping).
        public var controlReplyLimit = 16 << 20
        /// permessage-deflate to offer (RFC 7692), with the codec that carries
        /// it out; offered only when both are set.
        public var deflate: DeflateOffer?
        public var deflateCodec: (any DeflateCodec)?
        /// The SHA-1 of the handshake's accept check (`Handshake.SHA1Digest`);
        /// nil: the protocol module's own.
        public var sha1: Handshake.SHA1Digest?

        public init(
            maxFrameSize: Int = 16 << 20, maxMessageSize: Int = 16 << 20, fragmentSize: Int = 64 << 10,
            userAgent: String? = nil
        ) {
            self.maxFrameSize = maxFrameSize
            self.maxMessageSize = maxMessageSize
            self.fragmentSize = max(1, fragmentSize)
            self.userAgent = userAgent
        }
    }

    /// The one state of the connection; each case carries what exists only then.
    public enum State: Equatable, Sendable {
        /// The request is queued; the response header is being read.
        case handshaking
        /// Frames flow both ways.
        case open
        /// We sent Close and wait for the server's.
        case closeSent(code: CloseCode, reason: String, error: ProtocolError?)
        /// Close frames exchanged, or the connection failed; `report` is final,
        /// emitted as `closed` when the transport ends.
        case closing(report: CloseReport, action: TransportAction)
        /// Finished; `closed` was emitted.
        case closed(CloseReport)

        /// Frames from the server are read (RFC 6455 §5.5.1: not after its Close).
        var readsFrames: Bool {
            switch self {
            case .open, .closeSent: return true
            case .handshaking, .closing, .closed: return false
            }
        }
    }

    public typealias Initiator = CloseInitiator
    public typealias Event = ConnectionEvent

    public let configuration: Configuration
    public let handshake: Handshake
    public private(set) var state: State = .handshaking

    /// A fresh, unpredictable masking key per frame (RFC 6455 §5.3); the shell
    /// supplies it (from the system's entropy, in batches).
    private let maskKey: () -> UInt32
    /// Where a message's buffer comes from, and a text message's goes back
    /// to (nil: each message allocates its own).
    private let messageBuffers: MessageBuffers?
    private var outbound: [UInt8] = []
    private var events: [Event] = []
    private var headerBuffer: [UInt8] = []
    private var parser: FrameParser
    /// The message being assembled: its type, bytes so far, whether its current frame is the last.
    /// The type of the message being assembled (nil: none), and its bytes so
    /// far: two properties, so appending is in place (an optional tuple made a
    /// copy of the bytes on every chunk).
    private var messageOpcode: Opcode?
    private var messageBytes: [UInt8] = []
    private var currentFrameIsFinal = false
    /// Frames of the message being assembled.
    private var messageFrames = 0
    private var utf8 = UTF8Validator()
    private var eofReceived = false
    /// permessage-deflate, once negotiated; dropped when the connection ends.
    private var compression: MessageCompression?
    /// The message being assembled is compressed (RSV1 on its first frame),
    /// and the compressed bytes it has had so far.
    private var messageCompressed = false
    private var messageWireBytes = 0
    /// What the handshake agreed for permessage-deflate (nil: none); kept
    /// after the connection ends, for status.
    public private(set) var negotiatedDeflate: DeflateParameters?
    /// Whether compression state (a zlib stream) is held now.
    public var holdsCompressionState: Bool { compression?.holdsState ?? false }

    /// Bytes the shell holds for the socket beyond `outboundCount` (set before
    /// `receive`): counted against `controlReplyLimit`.
    public var transportBacklog = 0
    /// Pings left unanswered because too much was waiting to be written.
    public private(set) var pongsSkipped = 0

    /// Inbound bytes held now: the message being assembled and bytes not yet
    /// parsed (what a daemon-wide budget counts).
    public var bufferedInboundBytes: Int { messageBytes.count + parser.bufferedCount + headerBuffer.count }

    /// Fails the connection for a reason the shell decided (RFC 6455 §7.1.7):
    /// a Close with the error's code, buffered input dropped, then the
    /// transport closes.
    public mutating func fail(_ error: ProtocolError) {
        switch state {
        case .handshaking:
            headerBuffer = []
            finish(CloseReport(initiator: .transport, code: .abnormalClosure, reason: error.description))
        case .open, .closeSent:
            failConnection(error)
        case .closing, .closed:
            break
        }
    }

    /// The connection is ending and waits on the server: for its answer to
    /// our Close, for it to close TCP after the handshake, or for our failing
    /// Close to be flushed to it. The shell bounds every such wait with one
    /// deadline (close_timeout), whoever sent the first Close.
    public var awaitsServerClose: Bool {
        switch state {
        case .closeSent, .closing: return true
        case .handshaking, .open, .closed: return false
        }
    }

    /// `maskKey` gives one masking key per call; the handshake nonce is made of
    /// its first four keys. Received messages are assembled in buffers from
    /// `messageBuffers` when given (the consumer of a binary message gives
    /// its buffer back there).
    public init(
        url: WebSocketURL, configuration: Configuration = Configuration(), maskKey: @escaping () -> UInt32,
        messageBuffers: MessageBuffers? = nil
    ) {
        self.configuration = configuration
        self.maskKey = maskKey
        self.messageBuffers = messageBuffers
        var key = [UInt8](repeating: 0, count: 16)
        for i in stride(from: 0, to: 16, by: 4) {
            let word = maskKey()
            for j in 0..<4 { key[i + j] = UInt8(truncatingIfNeeded: word >> UInt32(8 * j)) }
        }
        handshake = Handshake(
            url: url, keyBytes: key, deflate: configuration.deflateCodec == nil ? nil : configuration.deflate,
            sha1: configuration.sha1)
        parser = FrameParser(maxFrameSize: configuration.maxFrameSize)
        outbound = handshake.request(userAgent: configuration.userAgent)
    }

    /// Keys from any random number generator (tests use a seeded one).
    public init(url: WebSocketURL, configuration: Configuration = Configuration(), rng: some RandomNumberGenerator) {
        var rng = rng
        self.init(url: url, configuration: configuration, maskKey: { UInt32(truncatingIfNeeded: rng.next()) })
    }

    // MARK: - Outputs

    /// Bytes to write to the socket, in order; the buffer is handed over.
    public mutating func takeOutbound() -> [UInt8] {
        defer { outbound.removeAll(keepingCapacity: false) }
        return outbound
    }

    public var hasOutbound: Bool { !outbound.isEmpty }

    /// Bytes queued for the socket and not yet taken.
    public var outboundCount: Int { outbound.count }

    /// Hands the queued bytes to `write`, which returns how many it took; the
    /// rest stay queued. The buffer is reused, so steady sending allocates nothing.
    public mutating func drainOutbound(_ write: (UnsafeRawBufferPointer) -> Int) {
        guard !outbound.isEmpty else { return }
        let taken = outbound.withUnsafeBytes { write($0) }
        if taken >= outbound.count {
            outbound.removeAll(keepingCapacity: outbound.capacity <= Self.keptOutboundCapacity)
        } else if taken > 0 {
            outbound.removeSubrange(0..<taken)
        }
    }

    /// A drained outbound buffer up to this size is kept for the next message.
    static let keptOutboundCapacity = 256 << 10

    /// The next event, parsing buffered bytes as far as needed; nil when more
    /// bytes are needed.
    public mutating func nextEvent() -> Event? {
        while events.isEmpty {
            switch state {
            case .open, .closeSent:
                if step() { continue }
                if eofReceived {
                    handleEOF()
                    continue
                }
            case .closing:
                if eofReceived {
                    handleEOF()
                    continue
                }
            case .handshaking, .closed:
                break
            }
            break
        }
        return events.isEmpty ? nil : events.removeFirst()
    }

    /// Every event available now, in wire order.
    public mutating func takeEvents() -> [Event] {
        var all: [Event] = []
        while let event = nextEvent() { all.append(event) }
        return all
    }

    public var transportAction: TransportAction {
        switch state {
        case .handshaking, .open, .closeSent: return .keepOpen
        case .closing(_, let action): return action
        case .closed: return .close
        }
    }

    public var isOpen: Bool {
        if case .open = state { return true }
        return false
    }

    // MARK: - Inputs from the transport

    /// Feeds bytes read from the socket.
    public mutating func receive<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        ingest(bytes)
    }

    /// What the socket read, straight from its buffer (copied; the buffer is
    /// free again on return). The concrete form the shell calls, so the hot
    /// path runs specialized code.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        // With every earlier byte already turned into events, a data frame's
        // header is judged at once and its payload goes straight into the
        // message instead of through the parser's buffer: one copy less for
        // large messages, and the same outcome as parsing lazily (nothing
        // earlier waits to be answered first).
        var rest = bytes[...]
        while !rest.isEmpty && events.isEmpty && state.readsFrames {
            if messageOpcode != nil, let remaining = parser.directPayloadRemaining {
                let count = min(remaining, rest.count)
                parser.consumedDirectly(count)
                acceptPayload(UnsafeRawBufferPointer(rebasing: rest.prefix(count)))
                rest = rest.dropFirst(count)
            } else if let length = parser.directHeaderLength(rest) {
                parser.append(UnsafeRawBufferPointer(rebasing: rest.prefix(length)))
                rest = rest.dropFirst(length)
                _ = step()
            } else {
                break
            }
        }
        if !rest.isEmpty { ingest(UnsafeRawBufferPointer(rebasing: rest)) }
    }

    private mutating func ingest<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        switch state {
        case .handshaking:
            headerBuffer.append(contentsOf: bytes)
            guard let end = Handshake.headerEnd(in: headerBuffer[...]) else {
                if headerBuffer.count > Handshake.maxResponseHeaderSize { failHandshake(.headerTooLarge) }
                return
            }
            guard end <= Handshake.maxResponseHeaderSize + 4 else { return failHandshake(.headerTooLarge) }
            switch handshake.validate(responseHeader: headerBuffer[..<(end - 4)]) {
            case .failure(let failure):
                failHandshake(failure)
            case .success(let response):
                if let agreed = response.deflate, let codec = configuration.deflateCodec {
                    compression = MessageCompression(parameters: agreed, codec: codec)
                    negotiatedDeflate = agreed
                    parser.allowsCompressedFrames = true
                }
                state = .open
                events.append(.opened)
                // RFC 6455 §4.1: bytes after the header are the first frames.
                let rest = headerBuffer[end...]
                headerBuffer = []
                if !rest.isEmpty { parser.append(rest) }
            }
        case .open, .closeSent:
            parser.append(bytes)
        case .closing, .closed:
            // RFC 6455 §5.5.1: after the server's Close, nothing more is read.
            break
        }
    }

    /// The server closed the TCP connection (read returned 0). Takes effect
    /// after the bytes already received have been turned into events.
    public mutating func receiveEOF() {
        eofReceived = true
        if case .open = state { return }
        if case .closeSent = state { return }
        handleEOF()
    }

    private mutating func handleEOF() {
        switch state {
        case .handshaking:
            finish(
                CloseReport(
                    initiator: .transport, code: .abnormalClosure, reason: "connection closed during the handshake"))
        case .open, .closeSent:
            finish(
                CloseReport(
                    initiator: .transport, code: .abnormalClosure, reason: "connection closed without a Close frame"))
        case .closing(let report, _):
            finish(report)
        case .closed:
            break
        }
    }

    /// The shell ends the connection without a Close handshake (a timeout, a
    /// socket error, removal). Emits `closed` with 1006 unless a Close
    /// handshake already completed.
    public mutating func abort(reason: String) {
        switch state {
        case .closing(let report, _):
            finish(report)
        case .closed:
            break
        case .handshaking, .open, .closeSent:
            finish(CloseReport(initiator: .transport, code: .abnormalClosure, reason: reason))
        }
    }

    // MARK: - Commands

    /// Queues a text message, fragmented at `fragmentSize`.
    public mutating func send(text: String) throws(SendError) {
        if let error = sendError { throw error }
        var text = text
        text.withUTF8 { writeMessage(.text, $0) }
    }

    /// Queues a binary message, fragmented at `fragmentSize`.
    public mutating func send(binary: [UInt8]) throws(SendError) {
        if let error = sendError { throw error }
        binary.withUnsafeBufferPointer { writeMessage(.binary, $0) }
    }

    /// Queues a binary message, fragmented at `fragmentSize`.
    public mutating func send(binary: some Collection<UInt8>) throws(SendError) {
        if let error = sendError { throw error }
        writeMessage(.binary, binary)
    }

    /// Queues a ping (at most 125 bytes of payload).
    public mutating func ping(_ payload: [UInt8] = []) throws(SendError) {
        if let error = sendError { throw error }
        writeFrame(fin: true, opcode: .ping, payload: payload.prefix(125))
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2) with a valid code and a
    /// reason cut to 123 bytes at a character boundary.
    public mutating func close(code: CloseCode = .normalClosure, reason: String = "") {
        switch state {
        case .handshaking:
            finish(
                CloseReport(initiator: .client, code: .abnormalClosure, reason: "closed before the handshake completed")
            )
        case .open:
            let code = code.isValidOnWire ? code : .normalClosure
            let reason = Self.truncate(reason, toUTF8Bytes: 123)
            writeClose(code: code, reason: reason)
            state = .closeSent(code: code, reason: reason, error: nil)
        case .closeSent, .closing, .closed:
            break
        }
    }

    // MARK: - Internals

    private var sendError: SendError? {
        switch state {
        case .handshaking: return .notOpen
        case .open: return nil
        case .closeSent, .closing, .closed: return .closing
        }
    }

    private mutating func writeMessage(_ opcode: Opcode, _ payload: some Collection<UInt8>) {
        if compression != nil, let compressed = compressed(payload) {
            return writeFragments(opcode, compressed, rsv1: true)
        }
        writeFragments(opcode, payload, rsv1: false)
    }

    /// The message compressed (RFC 7692 §7.2.1), or nil to send it as it is:
    /// the compressor failed, or without context takeover it did not shrink
    /// (with takeover the server's window must follow ours: always compressed).
    private mutating func compressed(_ payload: some Collection<UInt8>) -> [UInt8]? {
        guard var state = compression else { return nil }
        compression = nil
        defer { compression = state }
        let result =
            payload.withContiguousStorageIfAvailable { state.compress(UnsafeRawBufferPointer($0)) }
            ?? Array(payload).withUnsafeBytes { state.compress($0) }
        guard let bytes = result else { return nil }
        if state.parameters.clientNoContextTakeover, bytes.count >= payload.count { return nil }
        return bytes
    }

    private mutating func writeFragments(_ opcode: Opcode, _ payload: some Collection<UInt8>, rsv1: Bool) {
        let size = configuration.fragmentSize
        // Room for every frame at once (a header is at most 14 bytes): a large
        // message is not copied again and again while the buffer doubles.
        let total = payload.count
        outbound.reserveRoom(for: total + (total / size + 1) * 14)
        var start = payload.startIndex
        var first = true
        repeat {
            let end = payload.index(start, offsetBy: size, limitedBy: payload.endIndex) ?? payload.endIndex
            writeFrame(
                fin: end == payload.endIndex, opcode: first ? opcode : .continuation, payload: payload[start..<end],
                rsv1: first && rsv1)
            first = false
            start = end
        } while start != payload.endIndex
    }

    private mutating func writeFrame(fin: Bool, opcode: Opcode, payload: some Collection<UInt8>, rsv1: Bool = false) {
        // RFC 6455 §5.3: a fresh, unpredictable masking key for every frame.
        FrameWriter.append(fin: fin, opcode: opcode, payload: payload, maskKey: maskKey(), rsv1: rsv1, to: &outbound)
    }

    private mutating func writeClose(code: CloseCode, reason: String) {
        var payload = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
        payload.append(contentsOf: reason.utf8)
        writeFrame(fin: true, opcode: .close, payload: payload)
    }

    /// Handles one parser event; false when more bytes are needed.
    private mutating func step() -> Bool {
        guard let result = parser.next() else { return false }
        switch result {
        case .failure(let error):
            failConnection(error)
        case .success(.frameStart(let header)):
            if header.opcode == .continuation {
                guard messageOpcode != nil else {
                    failConnection(.unexpectedContinuation)
                    return true
                }
            } else {
                guard messageOpcode == nil else {
                    failConnection(.expectedContinuation)
                    return true
                }
                messageOpcode = header.opcode
                messageBytes = messageBuffers?.take() ?? []
                messageFrames = 0
                messageCompressed = header.rsv1
                messageWireBytes = 0
                utf8.reset()
            }
            messageFrames += 1
            guard messageFrames <= configuration.maxMessageFrames else {
                failConnection(.tooManyFrames(limit: configuration.maxMessageFrames))
                return true
            }
            currentFrameIsFinal = header.fin
            if messageCompressed {
                // What it inflates to is bounded as it grows (`acceptPayload`);
                // the compressed bytes are bounded too, so that endless empty
                // blocks cannot keep the loop busy (DEFLATE grows incompressible
                // data by far less than an eighth).
                messageWireBytes += header.payloadLength
                let limit = configuration.maxMessageSize + configuration.maxMessageSize / 8 + 1024
                guard messageWireBytes <= limit else {
                    failConnection(.messageTooBig(limit: configuration.maxMessageSize))
                    return true
                }
                return true
            }
            // Fail as soon as the header announces too much (RFC 6455 §10.4).
            guard messageBytes.count + header.payloadLength <= configuration.maxMessageSize else {
                failConnection(.messageTooBig(limit: configuration.maxMessageSize))
                return true
            }
            messageBytes.reserveRoom(for: header.payloadLength, upTo: configuration.maxMessageSize)
        case .success(.payload(let chunk)):
            acceptPayload(chunk)
        case .success(.frameEnd):
            guard currentFrameIsFinal, let opcode = messageOpcode else { return true }
            if messageCompressed {
                messageCompressed = false
                let start = messageBytes.count
                let outcome = withCompression { compression, bytes, limit in
                    compression.finishMessage(into: &bytes, limit: limit)
                }
                guard inflated(outcome, from: start) else { return true }
            }
            let bytes = messageBytes
            messageOpcode = nil
            messageBytes = []
            if opcode == .text {
                guard utf8.status == .complete else {
                    failConnection(.invalidUTF8)
                    return true
                }
                events.append(.text(String(decoding: bytes, as: UTF8.self)))
                messageBuffers?.give(bytes)  // the text is a copy: the buffer serves the next message
            } else {
                events.append(.binary(bytes))
            }
        case .success(.control(let opcode, let payload)):
            handleControl(opcode, payload)
        }
        return true
    }

    /// Part of the current message's payload.
    private mutating func acceptPayload<Bytes: Collection>(_ chunk: Bytes) where Bytes.Element == UInt8 {
        if messageCompressed { return acceptCompressed(chunk) }
        // RFC 6455 §8.1: fail on the first invalid byte, not at the end.
        if messageOpcode == .text, utf8.feed(chunk) == .invalid { return failConnection(.invalidUTF8) }
        messageBytes.append(contentsOf: chunk)
    }

    /// Part of a compressed message, inflated onto the message as it comes:
    /// never more than `maxMessageSize` bytes are made, however far it expands.
    private mutating func acceptCompressed<Bytes: Collection>(_ chunk: Bytes) where Bytes.Element == UInt8 {
        let start = messageBytes.count
        let outcome = withCompression { compression, bytes, limit in
            chunk.withContiguousStorageIfAvailable {
                compression.inflate(UnsafeRawBufferPointer($0), into: &bytes, limit: limit)
            } ?? Array(chunk).withUnsafeBytes { compression.inflate($0, into: &bytes, limit: limit) }
        }
        _ = inflated(outcome, from: start)
    }

    /// Runs `body` with the compression state and the message's bytes moved
    /// out (no copy, no overlapping access), then puts them back.
    private mutating func withCompression(
        _ body: (inout MessageCompression, inout [UInt8], Int) -> InflateOutcome
    ) -> InflateOutcome {
        guard var state = compression else { return .corrupt("permessage-deflate was not negotiated") }
        compression = nil
        var bytes = messageBytes
        messageBytes = []
        let outcome = body(&state, &bytes, configuration.maxMessageSize)
        messageBytes = bytes
        compression = state
        return outcome
    }

    /// Judges what inflating added to the message from `start`: false (and
    /// the connection failed) on a bomb, bad DEFLATE or invalid UTF-8.
    private mutating func inflated(_ outcome: InflateOutcome, from start: Int) -> Bool {
        switch outcome {
        case .ok:
            if messageOpcode == .text, utf8.feed(messageBytes[start...]) == .invalid {
                failConnection(.invalidUTF8)
                return false
            }
            return true
        case .limitExceeded:
            failConnection(.messageTooBig(limit: configuration.maxMessageSize))
        case .corrupt(let reason):
            failConnection(.invalidCompressedData(reason))
        }
        return false
    }

    private mutating func handleControl(_ opcode: Opcode, _ payload: ArraySlice<UInt8>) {
        switch opcode {
        case .ping:
            // RFC 6455 §5.5.2: answer with a pong carrying the same payload.
            if state == .open {
                if outbound.count + transportBacklog < configuration.controlReplyLimit {
                    writeFrame(fin: true, opcode: .pong, payload: payload)
                } else {
                    pongsSkipped += 1
                }
            }
            events.append(.ping(Array(payload)))
        case .pong:
            events.append(.pong(Array(payload)))
        case .close:
            receivedClose(payload)
        default:
            break
        }
    }

    private mutating func receivedClose(_ payload: ArraySlice<UInt8>) {
        var code = CloseCode.noStatusReceived
        var reason = ""
        if payload.count == 1 { return failConnection(.closePayloadTooShort) }
        if payload.count >= 2 {
            code = CloseCode(UInt16(payload[payload.startIndex]) << 8 | UInt16(payload[payload.startIndex + 1]))
            guard code.isValidOnWire else { return failConnection(.invalidCloseCode(code.rawValue)) }
            let text = payload.dropFirst(2)
            var validator = UTF8Validator()
            guard validator.feed(text) == .complete else { return failConnection(.invalidUTF8) }
            reason = String(decoding: text, as: UTF8.self)
        }
        messageOpcode = nil
        messageBytes = []
        abandonCompressedMessage()
        switch state {
        case .open:
            // Server-initiated: echo the code (an empty Close for 1005), then wait for TCP close.
            if code == .noStatusReceived {
                writeFrame(fin: true, opcode: .close, payload: [UInt8]())
            } else {
                writeClose(code: code, reason: "")
            }
            state = .closing(
                report: CloseReport(initiator: .server, code: code, reason: reason), action: .awaitServerClose)
        case .closeSent(_, _, let error):
            state = .closing(
                report: CloseReport(initiator: .client, code: code, reason: reason, error: error),
                action: .awaitServerClose)
        default:
            break
        }
    }

    /// RFC 6455 §7.1.7: fail the connection: send a Close with the error's code
    /// (unless one was sent already), then close the transport.
    private mutating func failConnection(_ error: ProtocolError) {
        let reason = Self.truncate(error.description, toUTF8Bytes: 123)
        if case .open = state { writeClose(code: error.closeCode, reason: reason) }
        messageOpcode = nil
        messageBytes = []
        abandonCompressedMessage()
        headerBuffer = []
        parser.discardBuffered()
        state = .closing(
            report: CloseReport(initiator: .client, code: error.closeCode, reason: reason, error: error),
            action: .closeAfterFlush)
    }

    private mutating func failHandshake(_ failure: Handshake.Failure) {
        headerBuffer = []
        events.append(.handshakeFailed(failure))
        finish(CloseReport(initiator: .transport, code: .abnormalClosure, reason: "handshake failed: \(failure)"))
    }

    private mutating func abandonCompressedMessage() {
        messageCompressed = false
        compression?.abandonInbound()
    }

    private mutating func finish(_ report: CloseReport) {
        messageCompressed = false
        compression = nil
        state = .closed(report)
        events.append(.closed(report))
    }

    static func truncate(_ text: String, toUTF8Bytes limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var result = ""
        var count = 0
        for character in text {
            let size = character.utf8.count
            guard count + size <= limit else { break }
            result.append(character)
            count += size
        }
        return result
    }
}

/// Who ended the connection.
public enum CloseInitiator: String, Equatable, Sendable {
    /// We sent the first Close (by request, or failing the connection).
    case client
    /// The server sent the first Close.
    case server
    /// No Close handshake: the TCP connection ended, or the shell aborted it.
    case transport
}

/// How the connection ended (RFC 6455 §7.1.5, §7.1.6).
public struct CloseReport: Equatable, Sendable {
    public var initiator: CloseInitiator
    /// The code of the server's Close frame; 1005 when it had none, 1006 with no Close frame.
    /// When we failed the connection, the code we sent.
    public var code: CloseCode
    public var reason: String
    /// The protocol error that made us fail the connection, if any.
    public var error: ProtocolError?

    public init(initiator: CloseInitiator, code: CloseCode, reason: String, error: ProtocolError? = nil) {
        self.initiator = initiator
        self.code = code
        self.reason = reason
        self.error = error
    }
}

/// What a connection reports, in wire order.
public enum ConnectionEvent: Equatable, Sendable {
    /// The handshake succeeded; frames flow.
    case opened
    case text(String)
    case binary([UInt8])
    /// A ping from the server (already answered with a pong).
    case ping([UInt8])
    case pong([UInt8])
    /// The handshake failed; the transport should be closed now.
    case handshakeFailed(Handshake.Failure)
    /// The connection is over; nothing more will come.
    case closed(CloseReport)
}

/// What the shell should do with the transport.
public enum TransportAction: Equatable, Sendable {
    /// Keep reading and writing.
    case keepOpen
    /// Write what is queued, then close the socket (we failed the connection).
    case closeAfterFlush
    /// The Close handshake is done: wait (with a timeout) for the server to
    /// close TCP (RFC 6455 §7.1.1), then call `receiveEOF` or `abort`.
    case awaitServerClose
    /// Over: close the socket.
    case close
}

public enum SendError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The handshake has not completed.
    case notOpen
    /// A Close was sent or received; nothing more can be sent.
    case closing

    public var description: String {
        switch self {
        case .notOpen: return "not connected"
        case .closing: return "the connection is closing"
        }
    }
}

extension Array where Element == UInt8 {
    /// Room for `count` more bytes. Growing at least to double the capacity:
    /// `reserveCapacity(count + n)` alone allocates exactly that, so a buffer
    /// grown by it message after message (answers batched in one write) or
    /// frame after frame (a fragmented message) was copied every time.
    /// (Doubling stops at `limit`, unless more is needed.)
    mutating func reserveRoom(for count: Int, upTo limit: Int = .max) {
        let needed = self.count + count
        guard needed > capacity else { return }
        reserveCapacity(Swift.max(needed, Swift.min(capacity * 2, limit)))
    }
}
