import WebSocketProtocol
import Zlib

/// The client core fed by a hostile server: the input is what the server
/// sends after a valid handshake (or, with the first byte odd, as the
/// handshake response itself), in chunks whose sizes the first byte picks,
/// through both of `receive`'s paths. The application answers every message
/// (echo) and closes at some point, as reactions do. With the first byte's
/// top bit set, permessage-deflate is offered (and, after a valid handshake,
/// agreed: without context takeover, or with it when bit 3 is set too) and
/// the system zlib inflates what the server sends. Invariants checked:
/// nothing after `closed`, no message larger than the limit (however far
/// compressed input expands), a send never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let mode = input[0]
    let body = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[1...])
    let limit = 1 << 16
    var configuration = ClientConnection.Configuration(
        maxFrameSize: limit / 2, maxMessageSize: limit, fragmentSize: 1000)
    let deflate = mode & 0x80 != 0
    let takeover = mode & 0x08 != 0
    if deflate {
        configuration.deflate = takeover ? DeflateOffer() : .noContextTakeover
        configuration.deflateCodec = ZlibCodec()
    }
    var connection = ClientConnection(
        url: WebSocketURL(secure: false, host: "fuzz.example", port: 80), configuration: configuration,
        maskKey: { 0x1234_5678 })
    _ = connection.takeOutbound()
    if mode & 1 == 0 {
        var response =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(connection.handshake.expectedAccept)\r\n"
        if deflate {
            response +=
                takeover
                ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n"
                : "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        }
        connection.receive(Array((response + "\r\n").utf8))
    }
    let chunk = [1, 2, 3, 7, 64, 509, 4096, Int.max][Int(mode >> 1) & 7]
    let generic = mode & 0x10 != 0
    var closed = false
    var handled = 0
    func drain() {
        while let event = connection.nextEvent() {
            precondition(!closed, "an event after closed: \(event)")
            handled += 1
            switch event {
            case .text(let text):
                precondition(text.utf8.count <= limit)
                try? connection.send(text: text)
            case .binary(let bytes):
                precondition(bytes.count <= limit)
                try? connection.send(binary: bytes)
            case .closed:
                closed = true
            case .opened, .ping, .pong, .handshakeFailed:
                break
            }
            if handled == 5 && mode & 0x20 != 0 { connection.close(code: .goingAway, reason: "enough") }
            _ = connection.takeOutbound()
        }
    }
    var offset = 0
    while offset < body.count {
        let end = min(body.count, offset + min(chunk, body.count - offset))
        let piece = UnsafeRawBufferPointer(rebasing: body[offset..<end])
        if generic { connection.receive(Array(piece)) } else { connection.receive(piece) }
        drain()
        offset = end
    }
    connection.receiveEOF()
    drain()
    if mode & 0x40 != 0 { connection.abort(reason: "fuzz over") }
    drain()
    return 0
}
