import TestSupport
import Testing

@testable import WebSocketProtocol

@Suite("ClientConnection: the sans-I/O client (RFC 6455)")
struct ClientConnectionTests {
    @Test("handshake, then bytes after the header are the first frames")
    func openWithTrailingFrame() {
        var connection = openConnection(extra: serverFrame(opcode: 1, Array("hi".utf8)))
        #expect(connection.state == .open)
        #expect(connection.takeEvents() == [.opened, .text("hi")])
    }

    @Test("the handshake may arrive one byte at a time")
    func byteByByteHandshake() {
        var connection = ClientConnection(url: WebSocketURL(secure: false, host: "h"), rng: TestRNG())
        let request = connection.takeOutbound()
        #expect(String(decoding: request, as: UTF8.self).hasPrefix("GET / HTTP/1.1\r\nHost: h\r\n"))
        let response =
            Array(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(connection.handshake.expectedAccept)\r\n\r\n"
                    .utf8) + serverFrame(opcode: 2, [1, 2, 3])
        for byte in response { connection.receive([byte]) }
        #expect(connection.takeEvents() == [.opened, .binary([1, 2, 3])])
    }

    @Test("the configuration's SHA-1 is the one the connection's accept check uses")
    func configuredDigest() {
        for broken in [false, true] {
            var configuration = ClientConnection.Configuration()
            if broken {
                configuration.sha1 = { _, digest in digest.initializeMemory(as: UInt8.self, repeating: 0) }
            } else {
                configuration.sha1 = { SHA1.hash($0, into: $1) }
            }
            var connection = ClientConnection(
                url: WebSocketURL(secure: false, host: "h"), configuration: configuration, rng: TestRNG())
            let accept = Handshake.accept(for: connection.handshake.key)  // the right answer, by the core's own SHA-1
            connection.receive(
                Array(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n"
                        .utf8))
            let events = connection.takeEvents()
            if broken {
                #expect(events.first == .handshakeFailed(.wrongAccept(accept)))
            } else {
                #expect(events == [.opened])
            }
        }
    }

    @Test("a failed handshake reports why and closes")
    func failedHandshake() {
        var connection = ClientConnection(url: WebSocketURL(secure: false, host: "h"), rng: TestRNG())
        connection.receive(Array("HTTP/1.1 403 Forbidden\r\n\r\n".utf8))
        let events = connection.takeEvents()
        #expect(events.first == .handshakeFailed(.unexpectedStatus(code: 403, reason: "Forbidden")))
        #expect(connection.transportAction == .close)
        let endless = [UInt8](repeating: 0x41, count: Handshake.maxResponseHeaderSize + 10)
        var other = ClientConnection(url: WebSocketURL(secure: false, host: "h"), rng: TestRNG())
        other.receive(Array("HTTP/1.1 101 OK\r\nX: ".utf8) + endless)
        #expect(other.takeEvents().first == .handshakeFailed(.headerTooLarge))
    }

    @Test("fragmented messages with interleaved pings; pings are answered with the same payload")
    func fragmentsAndPings() {
        var connection = openConnection()
        _ = connection.takeEvents()
        connection.receive(
            serverFrame(fin: false, opcode: 1, Array("Hel".utf8)) + serverFrame(opcode: 9, Array("p1".utf8))
                + serverFrame(fin: true, opcode: 0, Array("lo".utf8)))
        #expect(connection.takeEvents() == [.ping(Array("p1".utf8)), .text("Hello")])
        #expect(
            ClientFrame.decodeAll(connection.takeOutbound()) == [
                ClientFrame(fin: true, opcode: 0xA, masked: true, payload: Array("p1".utf8))
            ])
    }

    @Test("issue #12 row 5: past controlReplyLimit bytes waiting, pings get no pong (counted), and then do again")
    func pongsAreBounded() {
        var connection = openConnection()
        _ = connection.takeEvents()
        _ = connection.takeOutbound()
        connection.transportBacklog = connection.configuration.controlReplyLimit
        connection.receive(serverFrame(opcode: 9, Array("p1".utf8)) + serverFrame(opcode: 9, Array("p2".utf8)))
        #expect(connection.takeEvents() == [.ping(Array("p1".utf8)), .ping(Array("p2".utf8))])
        #expect(!connection.hasOutbound)
        #expect(connection.pongsSkipped == 2)
        connection.transportBacklog = 0
        connection.receive(serverFrame(opcode: 9, Array("p3".utf8)))
        _ = connection.takeEvents()
        #expect(
            ClientFrame.decodeAll(connection.takeOutbound()) == [
                ClientFrame(fin: true, opcode: 0xA, masked: true, payload: Array("p3".utf8))
            ])
    }

    @Test("issue #12 row 8: a message of more frames than allowed fails with 1008, on both receive paths")
    func tooManyFrames() {
        var configuration = ClientConnection.Configuration()
        configuration.maxMessageFrames = 10
        let atLimit =
            serverFrame(fin: false, opcode: 1, Array("a".utf8))
            + (0..<8).flatMap { _ in serverFrame(fin: false, opcode: 0, []) } + serverFrame(fin: true, opcode: 0, [])
        var fine = openConnection(configuration, extra: atLimit)
        #expect(fine.takeEvents() == [.opened, .text("a")])
        let endless =
            serverFrame(fin: false, opcode: 1, []) + (0..<20).flatMap { _ in serverFrame(fin: false, opcode: 0, []) }
        for direct in [false, true] {
            var connection = openConnection(configuration)
            _ = connection.takeEvents()
            if direct { endless.withUnsafeBytes { connection.receive($0) } } else { connection.receive(endless) }
            _ = connection.takeEvents()
            #expect(connection.transportAction == .closeAfterFlush)
            let close = ClientFrame.decodeAll(connection.takeOutbound()).last
            #expect(close?.opcode == 8 && close?.payload.prefix(2) == [0x03, 0xF0])  // 1008
        }
    }

    @Test("issue #12 row 4: the shell bounds the wait for the server's answer after either side's Close")
    func awaitsServerClose() {
        var ours = openConnection()
        _ = ours.takeEvents()
        #expect(!ours.awaitsServerClose)
        ours.close(code: .normalClosure, reason: "bye")
        #expect(ours.awaitsServerClose)
        #expect(ours.transportAction == .keepOpen)  // frames are still read until the server's Close
        var theirs = openConnection()
        _ = theirs.takeEvents()
        theirs.receive(serverFrame(opcode: 8, closePayload(1000, "bye")))
        _ = theirs.takeEvents()
        #expect(theirs.awaitsServerClose)
    }

    @Test("Neos #2508: a message right before the server's Close is delivered before closed")
    func lastMessageBeforeClose() {
        var connection = openConnection()
        _ = connection.takeEvents()
        connection.receive(
            serverFrame(opcode: 1, Array("last words".utf8)) + serverFrame(opcode: 8, closePayload(1000, "bye")))
        #expect(connection.takeEvents() == [.text("last words")])
        // We echo the Close, then wait for the server to close TCP.
        #expect(
            ClientFrame.decodeAll(connection.takeOutbound()) == [
                ClientFrame(fin: true, opcode: 8, masked: true, payload: closePayload(1000))
            ])
        #expect(connection.transportAction == .awaitServerClose)
        connection.receiveEOF()
        #expect(connection.takeEvents() == [.closed(.init(initiator: .server, code: .normalClosure, reason: "bye"))])
    }

    @Test("client-initiated close: Close sent, server's Close completes it, report names the client")
    func clientClose() {
        var connection = openConnection()
        connection.close(code: .goingAway, reason: "going away")
        #expect(
            ClientFrame.decodeAll(connection.takeOutbound()) == [
                ClientFrame(fin: true, opcode: 8, masked: true, payload: closePayload(1001, "going away"))
            ])
        #expect(throws: SendError.closing) { try connection.send(text: "late") }
        connection.receive(serverFrame(opcode: 8, closePayload(1001)))
        connection.receiveEOF()
        #expect(connection.takeEvents().last == .closed(.init(initiator: .client, code: .goingAway, reason: "")))
    }

    @Test("an empty Close is reported as 1005 and echoed empty; a dropped connection as 1006")
    func noStatus() {
        var connection = openConnection()
        connection.receive(serverFrame(opcode: 8, []))
        _ = connection.takeEvents()
        #expect(ClientFrame.decodeAll(connection.takeOutbound()).first?.payload == [])
        connection.receiveEOF()
        #expect(connection.takeEvents().last == .closed(.init(initiator: .server, code: .noStatusReceived, reason: "")))
        var dropped = openConnection()
        dropped.receiveEOF()
        #expect(
            dropped.takeEvents().last
                == .closed(
                    .init(
                        initiator: .transport, code: .abnormalClosure, reason: "connection closed without a Close frame"
                    )))
    }

    @Test(
        "protocol errors queue a Close with the right code and fail the connection",
        arguments: [
            (serverFrame(opcode: 0, Array("x".utf8)), ProtocolError.unexpectedContinuation),
            (serverFrame(fin: false, opcode: 1, [0x41]) + serverFrame(opcode: 1, [0x42]), .expectedContinuation),
            (serverFrame(opcode: 1, [0x41], rsv: 4), .reservedBitsSet),
            (serverFrame(opcode: 1, [0xCE, 0xBA, 0xED, 0xA0, 0x80]), .invalidUTF8),
            (serverFrame(opcode: 8, [0x03]), .closePayloadTooShort),
            (serverFrame(opcode: 8, closePayload(1005)), .invalidCloseCode(1005)),
            (serverFrame(opcode: 8, closePayload(999)), .invalidCloseCode(999)),
            (serverFrame(opcode: 8, closePayload(1000) + [0xFF]), .invalidUTF8),
            (serverFrame(opcode: 2, [UInt8](repeating: 0, count: 300)), .messageTooBig(limit: 200)),
        ])
    func protocolErrors(bytes: [UInt8], error: ProtocolError) {
        var connection = openConnection(.init(maxFrameSize: 1000, maxMessageSize: 200))
        _ = connection.takeEvents()
        connection.receive(bytes)
        _ = connection.takeEvents()
        let close = ClientFrame.decodeAll(connection.takeOutbound())
        #expect(close.count == 1)
        #expect(close.first?.opcode == 8)
        #expect(close.first.map { UInt16($0.payload[0]) << 8 | UInt16($0.payload[1]) } == error.closeCode.rawValue)
        #expect(connection.transportAction == .closeAfterFlush)
        connection.abort(reason: "flushed")
        #expect(
            connection.takeEvents().last
                == .closed(.init(initiator: .client, code: error.closeCode, reason: error.description, error: error)))
    }

    @Test("invalid UTF-8 fails on the first bad byte, before the frame is complete")
    func utf8FailFast() {
        var connection = openConnection()
        _ = connection.takeEvents()
        // Header announces 100 bytes; only a prefix with a bad byte has arrived.
        connection.receive([0x81, 100, 0x41, 0x42, 0xFF])
        #expect(connection.takeEvents() == [])
        #expect(connection.transportAction == .closeAfterFlush)
    }

    @Test("outgoing messages are fragmented at fragmentSize, masked, and reassemble")
    func fragmentation() throws {
        var connection = openConnection(.init(fragmentSize: 4))
        try connection.send(text: "Hello, world")
        let frames = ClientFrame.decodeAll(connection.takeOutbound())
        #expect(frames.map(\.opcode) == [1, 0, 0])
        #expect(frames.map(\.fin) == [false, false, true])
        #expect(frames.allSatisfy { $0.masked })
        #expect(frames.flatMap(\.payload) == Array("Hello, world".utf8))
        try connection.send(binary: [UInt8]())
        #expect(
            ClientFrame.decodeAll(connection.takeOutbound()) == [
                ClientFrame(fin: true, opcode: 2, masked: true, payload: [])
            ])
    }

    @Test("sending before the handshake is refused")
    func notOpen() {
        var connection = ClientConnection(url: WebSocketURL(secure: false, host: "h"), rng: TestRNG())
        #expect(throws: SendError.notOpen) { try connection.send(text: "x") }
    }

    @Test("every frame gets a different masking key")
    func freshKeys() {
        var connection = openConnection()
        for _ in 0..<50 { try? connection.send(text: "x") }
        let bytes = connection.takeOutbound()
        var keys = Set<[UInt8]>()
        for i in stride(from: 0, to: bytes.count, by: 7) { keys.insert(Array(bytes[(i + 2)..<(i + 6)])) }
        #expect(keys.count == 50)
    }

    @Test("random server bytes never crash the connection; it stays consistent")
    func fuzz() {
        var rng = TestRNG(seed: 2024)
        for _ in 0..<2000 {
            var connection = openConnection(.init(maxFrameSize: 256, maxMessageSize: 512))
            for _ in 0..<Int(rng.next() % 6) {
                let length = Int(rng.next() % 40)
                var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if bytes.count > 1 { bytes[1] &= 0x7F }
                connection.receive(bytes)
            }
            connection.receiveEOF()
            let events = connection.takeEvents()
            #expect(events.filter { if case .closed = $0 { return true } else { return false } }.count == 1)
            if case .closed = events.last {} else { Issue.record("last event is not closed: \(events)") }
        }
    }

    @Test(
        "payload taken straight from the socket's buffer gives the same events and answers as parsing it",
        arguments: [false, true])
    func directPayload(invalidText: Bool) {
        var rng = TestRNG(seed: 7)
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let text = Array(String(repeating: "zażółć gęślą jaźń ✓ ", count: 150).utf8)
        var frames = [serverFrame(opcode: 0x2, Array(big[..<70_000]))]
        frames.append(serverFrame(fin: false, opcode: 0x1, Array(text[..<1001])))  // splits a multi-byte character
        frames.append(serverFrame(opcode: 0x9, Array("between fragments".utf8)))
        frames.append(serverFrame(fin: false, opcode: 0x0, Array(text[1001..<2500])))
        frames.append(serverFrame(opcode: 0x0, Array(text[2500...])))
        var bad = text
        if invalidText { bad[1700] = 0xFF }
        frames.append(serverFrame(opcode: 0x1, bad))
        frames.append(serverFrame(opcode: 0x2, []))
        frames.append(serverFrame(opcode: 0x2, big))
        frames.append(serverFrame(opcode: 0x8, closePayload(1000)))
        let wire = frames.flatMap { $0 }
        for round in 0..<22 {
            // Chunks: whole frames, frames cut after their header, or random sizes.
            var chunks: [[UInt8]] = []
            switch round {
            case 0: chunks = frames
            case 1: chunks = frames.flatMap { [Array($0[..<min(4, $0.count)]), Array($0[min(4, $0.count)...])] }
            default:
                var offset = 0
                while offset < wire.count {
                    let count = min(wire.count - offset, 1 + Int(rng.next() % 9000))
                    chunks.append(Array(wire[offset..<(offset + count)]))
                    offset += count
                }
            }
            // The same chunks through both inputs, events taken after every chunk as the shell does.
            var generic = openConnection(.init(maxFrameSize: 1 << 20, maxMessageSize: 1 << 20))
            var direct = openConnection(.init(maxFrameSize: 1 << 20, maxMessageSize: 1 << 20))
            var genericEvents = generic.takeEvents()
            var directEvents = direct.takeEvents()
            for chunk in chunks {
                generic.receive(chunk[...])
                chunk.withUnsafeBytes { direct.receive($0) }
                genericEvents += generic.takeEvents()
                directEvents += direct.takeEvents()
            }
            #expect(directEvents == genericEvents)
            #expect(direct.takeOutbound() == generic.takeOutbound())
            let messages = directEvents.filter {
                switch $0 {
                case .text, .binary: return true
                default: return false
                }
            }
            #expect(messages.count == (invalidText ? 2 : 5))
            #expect(directEvents.contains(.binary(big)) != invalidText)
        }
    }
}
