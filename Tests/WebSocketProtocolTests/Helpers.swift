import TestSupport

@testable import WebSocketProtocol

/// A deterministic generator for tests (TestSupport's SplitMix64, seed 42 by default).
typealias TestRNG = SplitMix64

/// A server's view of client frames: decodes (and unmasks) what the client wrote.
struct ClientFrame: Equatable {
    var fin: Bool
    var opcode: UInt8
    var masked: Bool
    var payload: [UInt8]

    static func decodeAll(_ bytes: [UInt8]) -> [ClientFrame] {
        var frames: [ClientFrame] = []
        var i = 0
        while i + 2 <= bytes.count {
            let fin = bytes[i] & 0x80 != 0
            let opcode = bytes[i] & 0x0F
            let masked = bytes[i + 1] & 0x80 != 0
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
            var key: [UInt8] = [0, 0, 0, 0]
            if masked {
                key = Array(bytes[i..<(i + 4)])
                i += 4
            }
            var payload = Array(bytes[i..<(i + length)])
            for j in payload.indices { payload[j] ^= key[j % 4] }
            i += length
            frames.append(ClientFrame(fin: fin, opcode: opcode, masked: masked, payload: payload))
        }
        return frames
    }
}

/// An unmasked server frame.
func serverFrame(fin: Bool = true, opcode: UInt8, _ payload: [UInt8], rsv: UInt8 = 0) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
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

func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
    [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
}

/// A connection whose handshake has completed against a correct response.
func openConnection(
    _ configuration: ClientConnection.Configuration = .init(), extra: [UInt8] = []
) -> ClientConnection {
    var connection = ClientConnection(
        url: WebSocketURL(secure: false, host: "example.com", resource: "/chat"), configuration: configuration,
        rng: TestRNG())
    _ = connection.takeOutbound()
    let response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(connection.handshake.expectedAccept)\r\n\r\n"
    connection.receive(Array(response.utf8) + extra)
    return connection
}
