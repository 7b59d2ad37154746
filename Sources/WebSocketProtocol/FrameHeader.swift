/// RFC 6455 §5.2: the fields of a frame header, as received from the server.
public struct FrameHeader: Equatable, Sendable {
    public var fin: Bool
    public var opcode: Opcode
    public var payloadLength: Int
    /// RSV1: the message is compressed (RFC 7692 §6; first frame only).
    public var rsv1: Bool

    public init(fin: Bool, opcode: Opcode, payloadLength: Int, rsv1: Bool = false) {
        self.fin = fin
        self.opcode = opcode
        self.payloadLength = payloadLength
        self.rsv1 = rsv1
    }
}
