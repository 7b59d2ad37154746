/// RFC 6455 §5.2: the fields of a frame header, as received from the server.
public struct FrameHeader: Equatable, Sendable {
    public var fin: Bool
    public var opcode: Opcode
    public var payloadLength: Int

    public init(fin: Bool, opcode: Opcode, payloadLength: Int) {
        self.fin = fin
        self.opcode = opcode
        self.payloadLength = payloadLength
    }
}
