/// Why a connection failed, with the close code RFC 6455 §7.4.1 assigns.
/// Protocol errors never escape as thrown errors from the connection: they
/// become a queued Close frame and a `closed` event.
public enum ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    // Frames (RFC 6455 §5)
    case reservedBitsSet
    case reservedOpcode(UInt8)
    case maskedServerFrame
    case nonMinimalLength
    case lengthTooLarge
    case fragmentedControlFrame
    case controlFrameTooLong(Int)
    case unexpectedContinuation
    case expectedContinuation
    case frameTooBig(limit: Int)
    case messageTooBig(limit: Int)
    /// More frames in one message than allowed (endless empty continuations).
    case tooManyFrames(limit: Int)
    /// The daemon-wide budget for buffered inbound bytes is spent (the shell's decision).
    case inboundBudgetExceeded(limit: Int)
    case invalidUTF8
    case invalidCloseCode(UInt16)
    case closePayloadTooShort
    case dataAfterClose
    // permessage-deflate (RFC 7692)
    case compressedControlFrame
    case compressedContinuation
    /// The compressed data is not valid DEFLATE (zlib's reason).
    case invalidCompressedData(String)

    /// The close code to send for this error.
    public var closeCode: CloseCode {
        switch self {
        case .invalidUTF8: return .invalidPayload
        case .frameTooBig, .messageTooBig: return .messageTooBig
        case .tooManyFrames, .inboundBudgetExceeded: return .policyViolation
        default: return .protocolError
        }
    }

    public var description: String {
        switch self {
        case .reservedBitsSet: return "frame has reserved bits set without a negotiated extension"
        case .reservedOpcode(let opcode): return "frame uses reserved opcode \(opcode)"
        case .maskedServerFrame: return "server sent a masked frame"
        case .nonMinimalLength: return "frame length is not minimally encoded"
        case .lengthTooLarge: return "frame length has the most significant bit set"
        case .fragmentedControlFrame: return "control frame is fragmented"
        case .controlFrameTooLong(let length): return "control frame payload is \(length) bytes (at most 125)"
        case .unexpectedContinuation: return "continuation frame without a message to continue"
        case .expectedContinuation: return "new data frame inside a fragmented message"
        case .frameTooBig(let limit): return "frame larger than the \(limit)-byte limit"
        case .messageTooBig(let limit): return "message larger than the \(limit)-byte limit"
        case .tooManyFrames(let limit): return "message of more than \(limit) frames"
        case .inboundBudgetExceeded(let limit):
            return "the \(limit)-byte budget for inbound data of all connections is spent"
        case .invalidUTF8: return "text is not valid UTF-8"
        case .invalidCloseCode(let code): return "close code \(code) is not allowed on the wire"
        case .closePayloadTooShort: return "close frame payload of 1 byte"
        case .dataAfterClose: return "data received after the Close frame"
        case .compressedControlFrame: return "control frame has RSV1 (compressed) set"
        case .compressedContinuation: return "continuation frame has RSV1 (compressed) set"
        case .invalidCompressedData(let reason): return "compressed message is not valid DEFLATE: \(reason.prefix(80))"
        }
    }
}
