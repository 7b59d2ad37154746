import Testing
import Zlib

@testable import WebSocketProtocol

/// A fixed masking key sequence: frames decode the same every run.
private func keys() -> () -> UInt32 {
    var next: UInt32 = 0x1234_5678
    return {
        next = next &* 1_103_515_245 &+ 12345
        return next
    }
}

private func deflating(
    _ answer: String?, offer: DeflateOffer = DeflateOffer(clientNoContextTakeover: true, serverNoContextTakeover: true),
    maxMessageSize: Int = 1 << 20, fragmentSize: Int = 64 << 10
) -> ClientConnection {
    var configuration = ClientConnection.Configuration(maxMessageSize: maxMessageSize, fragmentSize: fragmentSize)
    configuration.deflate = offer
    configuration.deflateCodec = ZlibCodec()
    var connection = ClientConnection(
        url: WebSocketURL(secure: false, host: "example.com"), configuration: configuration, maskKey: keys())
    let request = String(decoding: connection.takeOutbound(), as: UTF8.self)
    #expect(request.contains("Sec-WebSocket-Extensions: \(offer)\r\n"))
    var response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(connection.handshake.expectedAccept)\r\n"
    if let answer { response += "Sec-WebSocket-Extensions: \(answer)\r\n" }
    connection.receive(Array((response + "\r\n").utf8))
    return connection
}

private let bothNCT = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/// A server frame; `rsv1` marks a compressed message's first frame.
private func frame(fin: Bool = true, rsv1: Bool = false, opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
    if payload.count < 126 {
        bytes.append(UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        bytes += [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        bytes.append(127)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((payload.count >> shift) & 0xFF)) }
    }
    return bytes + payload
}

private let helloCompressed: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]

/// The client's frames as a server reads them: (first byte, unmasked payload).
private func clientFrames(_ bytes: [UInt8]) -> [(UInt8, [UInt8])] {
    var frames: [(UInt8, [UInt8])] = []
    var i = 0
    while i + 2 <= bytes.count {
        let b0 = bytes[i]
        var length = Int(bytes[i + 1] & 0x7F)
        i += 2
        if length == 126 {
            length = Int(bytes[i]) << 8 | Int(bytes[i + 1])
            i += 2
        } else if length == 127 {
            length = 0
            for j in 0..<8 { length = length << 8 | Int(bytes[i + j]) }
            i += 8
        }
        let key = Array(bytes[i..<(i + 4)])
        i += 4
        frames.append((b0, (0..<length).map { bytes[i + $0] ^ key[$0 % 4] }))
        i += length
    }
    return frames
}

private func closeCode(_ connection: inout ClientConnection) -> UInt16? {
    for event in connection.takeEvents() {
        if case .closed(let report) = event { return report.code.rawValue }
    }
    for (b0, payload) in clientFrames(connection.takeOutbound()) where b0 & 0x0F == 8 && payload.count >= 2 {
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }
    return nil
}

@Suite("permessage-deflate in the protocol core, with the system zlib")
struct DeflateConnectionTests {
    @Test("negotiated: compressed messages in, whole, split byte by byte, and fragmented; plain ones still pass")
    func receiving() {
        var connection = deflating(bothNCT)
        #expect(connection.isOpen)
        #expect(connection.negotiatedDeflate?.serverNoContextTakeover == true)
        #expect(connection.takeEvents() == [.opened])
        connection.receive(frame(rsv1: true, opcode: 1, helloCompressed))
        #expect(connection.takeEvents() == [.text("Hello")])
        for byte in frame(rsv1: true, opcode: 1, helloCompressed) { connection.receive([byte]) }
        #expect(connection.takeEvents() == [.text("Hello")])
        connection.receive(frame(fin: false, rsv1: true, opcode: 1, Array(helloCompressed.prefix(3))))
        connection.receive(frame(opcode: 9, [1]))  // a ping between fragments
        connection.receive(frame(opcode: 0, Array(helloCompressed.dropFirst(3))))
        #expect(connection.takeEvents() == [.ping([1]), .text("Hello")])
        connection.receive(frame(opcode: 2, [1, 2, 3]))
        #expect(connection.takeEvents() == [.binary([1, 2, 3])])
        // No context takeover both ways: nothing held between messages.
        #expect(!connection.holdsCompressionState)
    }

    @Test("sent: RSV1 on the first frame only, the tail removed; control frames never compressed")
    func sending() throws {
        var connection = deflating(bothNCT, fragmentSize: 4)
        _ = connection.takeEvents()
        let text = String(repeating: "Hello, ", count: 20)
        try connection.send(text: text)
        let frames = clientFrames(connection.takeOutbound())
        // Text + RSV1, not final; then continuations, the last one final.
        #expect(frames.first?.0 == 0x41 && frames.last?.0 == 0x80 && frames.count > 2)
        #expect(frames.dropFirst().dropLast().allSatisfy { $0.0 == 0x00 })
        var reader = MessageCompression(
            parameters: DeflateParameters(
                clientMaxWindowBits: 15, serverMaxWindowBits: 15, clientNoContextTakeover: true,
                serverNoContextTakeover: true), codec: ZlibCodec())
        var inflated: [UInt8] = []
        let payload = frames.flatMap(\.1)
        #expect(payload.count < 30 && payload.suffix(4) != [0x00, 0x00, 0xFF, 0xFF])
        _ = payload.withUnsafeBytes { reader.inflate($0, into: &inflated, limit: 1000) }
        #expect(reader.finishMessage(into: &inflated, limit: 1000) == .ok)
        #expect(inflated == Array(text.utf8))
        // "Hello" does not shrink: without takeover it goes as it is.
        try connection.send(text: "Hello")
        #expect(clientFrames(connection.takeOutbound()).map(\.0) == [0x01, 0x80])
        try connection.send(binary: [0x01])
        #expect(clientFrames(connection.takeOutbound()).map(\.0) == [0x82])
        try connection.ping([7])
        #expect(clientFrames(connection.takeOutbound()).map(\.0) == [0x89])
        connection.close()
        #expect(clientFrames(connection.takeOutbound()).map(\.0) == [0x88])
    }

    @Test("a decompression bomb is a 1009 at the limit, never an allocation of what it expands to")
    func bomb() {
        var sender = MessageCompression(
            parameters: DeflateParameters(
                clientMaxWindowBits: 15, serverMaxWindowBits: 15, clientNoContextTakeover: true,
                serverNoContextTakeover: true), codec: ZlibCodec())
        let bomb = [UInt8](repeating: 0x41, count: 32 << 20).withUnsafeBytes { sender.compress($0) } ?? []
        var connection = deflating(bothNCT, maxMessageSize: 1 << 20)
        _ = connection.takeEvents()
        // In 1 KiB frames, as a hostile server would trickle it.
        var offset = 0
        var first = true
        while offset < bomb.count && connection.isOpen {
            let end = min(offset + 1024, bomb.count)
            connection.receive(
                frame(fin: end == bomb.count, rsv1: first, opcode: first ? 1 : 0, Array(bomb[offset..<end])))
            #expect(connection.bufferedInboundBytes <= (1 << 20) + 1 + 2048)
            _ = connection.nextEvent()
            first = false
            offset = end
        }
        #expect(closeCode(&connection) == 1009)
        #expect(offset < bomb.count)  // stopped early
    }

    @Test(
        "broken compressed input fails the connection with the right code",
        arguments: [
            // RSV1 on a continuation (RFC 7692 §6.1)
            (frame(fin: false, rsv1: true, opcode: 1, [0xF2]) + frame(rsv1: true, opcode: 0, [0x48]), UInt16(1002)),
            // RSV1 on a control frame
            (frame(rsv1: true, opcode: 9, []), 1002),
            // not DEFLATE
            (frame(rsv1: true, opcode: 2, [0xFF, 0xFF, 0xFF]), 1002),
            // invalid UTF-8 once inflated: a stored block holding 0xFF
            (frame(rsv1: true, opcode: 1, [0x00, 0x01, 0x00, 0xFE, 0xFF, 0xFF]), 1007),
        ] as [([UInt8], UInt16)])
    func broken(bytes: [UInt8], code: UInt16) {
        var connection = deflating(bothNCT)
        _ = connection.takeEvents()
        connection.receive(bytes)
        #expect(closeCode(&connection) == code)
        #expect(!connection.holdsCompressionState)
    }

    @Test("not negotiated: a declined offer runs plain, and RSV1 is a protocol error")
    func declined() {
        var connection = deflating(nil)
        #expect(connection.isOpen && connection.negotiatedDeflate == nil)
        _ = connection.takeEvents()
        connection.receive(frame(rsv1: true, opcode: 1, helloCompressed))
        #expect(closeCode(&connection) == 1002)
        // A bad answer fails the handshake with the reason.
        var refused = deflating("permessage-deflate; server_max_window_bits=16")
        #expect(
            refused.takeEvents().first
                == .handshakeFailed(
                    .extensionNegotiation(.invalidValue(.init("server_max_window_bits", "16")))))
    }
}
