/// RFC 6455 §5.2: the frame opcode.
public enum Opcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// RFC 6455 §5.5: opcodes with the high bit set are control frames.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}
