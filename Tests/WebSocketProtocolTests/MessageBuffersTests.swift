import TestSupport
import Testing

@testable import WebSocketProtocol

@Suite("MessageBuffers: received messages assembled in buffers given back")
struct MessageBuffersTests {
    /// An open connection that takes its message buffers from `buffers`.
    func pooledConnection(_ buffers: MessageBuffers) -> ClientConnection {
        var rng = TestRNG()
        var connection = ClientConnection(
            url: WebSocketURL(secure: false, host: "example.com"), maskKey: { UInt32(truncatingIfNeeded: rng.next()) },
            messageBuffers: buffers)
        _ = connection.takeOutbound()
        connection.receive(
            Array(
                ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Accept: \(connection.handshake.expectedAccept)\r\n\r\n").utf8))
        #expect(connection.takeEvents() == [.opened])
        return connection
    }

    @Test("a binary message's buffer given back serves the next message, whatever arrives in it")
    func reused() {
        let buffers = MessageBuffers()
        var connection = pooledConnection(buffers)
        var kept: [[UInt8]] = []
        for (index, size) in [16, 1000, 3, 200_000, 40].enumerated() {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ index) }
            connection.receive(serverFrame(opcode: 2, payload))
            guard case .binary(let bytes) = connection.nextEvent() else {
                Issue.record("no message")
                return
            }
            #expect(bytes == payload)
            if index == 1 {
                kept.append(bytes)  // a consumer that keeps its copy
            }
            buffers.give(bytes)
        }
        // The kept message was not overwritten by the ones assembled after it.
        #expect(kept == [(0..<1000).map { UInt8(truncatingIfNeeded: $0 &+ 1) }])
        #expect(buffers.count == 1)  // the 200,000-byte buffer was let go, the 40-byte one is back
    }

    @Test("a text message's buffer goes back by itself; fragments and pings between them")
    func textAndFragments() {
        let buffers = MessageBuffers()
        var connection = pooledConnection(buffers)
        let text = String(repeating: "é", count: 40)
        connection.receive(serverFrame(opcode: 1, Array(text.utf8)))
        #expect(connection.takeEvents() == [.text(text)])
        #expect(buffers.count == 1)
        connection.receive(
            serverFrame(fin: false, opcode: 2, [1, 2]) + serverFrame(opcode: 9, [7])
                + serverFrame(opcode: 0, [3]))
        #expect(connection.takeEvents() == [.ping([7]), .binary([1, 2, 3])])
        #expect(buffers.count == 0)  // taken for the binary message, not given back yet
    }

    @Test("bounded: by the capacity kept in all and per buffer; none empty")
    func bounded() {
        let buffers = MessageBuffers(maxBytes: 100, maxCapacity: 60)
        buffers.give([])
        buffers.give([UInt8](repeating: 1, count: 61))
        #expect(buffers.count == 0)
        var small: [UInt8] = []
        small.reserveCapacity(40)
        let capacity = small.capacity  // at least 40, as the allocator rounds it
        for _ in 0..<5 { buffers.give(small) }
        #expect(buffers.count == 100 / capacity)
        let taken = buffers.take()
        #expect(taken.isEmpty && taken.capacity == capacity)
        buffers.give(small)  // room again for what was taken
        #expect(buffers.count == 100 / capacity)
        while buffers.count > 0 { _ = buffers.take() }
        #expect(buffers.take().capacity == 0)
    }

    @Test("a buffer grown a little at a time doubles, up to a limit, so it is copied a few times, not every time")
    func reserveRoom() {
        var bytes: [UInt8] = []
        var capacities: Set<Int> = []
        for _ in 0..<1000 {
            bytes.reserveRoom(for: 100)
            bytes.append(contentsOf: repeatElement(1, count: 100))
            capacities.insert(bytes.capacity)
        }
        #expect(bytes.count == 100_000)
        #expect(capacities.count <= 12)  // 100 B to 100 KB in doublings
        var limited: [UInt8] = []
        limited.reserveRoom(for: 600, upTo: 1000)
        limited.append(contentsOf: repeatElement(1, count: 600))
        limited.reserveRoom(for: 100, upTo: 1000)
        #expect(limited.capacity >= 700 && limited.capacity < 1200)  // 1000 and the allocator's rounding, not 1200
    }
}
