import Testing
import Zlib

@testable import WebSocketProtocol

private func hex(_ text: String) -> [UInt8] {
    text.split(separator: " ").map { UInt8($0, radix: 16)! }
}

private func compression(
    client: Int = 15, server: Int = 15, clientNCT: Bool = false, serverNCT: Bool = false
) -> MessageCompression {
    MessageCompression(
        parameters: DeflateParameters(
            clientMaxWindowBits: client, serverMaxWindowBits: server, clientNoContextTakeover: clientNCT,
            serverNoContextTakeover: serverNCT),
        codec: ZlibCodec())
}

/// A message as the server sends it: its compressed frames' payloads, then the end.
private func receive(_ parts: [[UInt8]], with state: inout MessageCompression, limit: Int = 1 << 20) -> (
    [UInt8], InflateOutcome
) {
    var output: [UInt8] = []
    for part in parts {
        let outcome = part.withUnsafeBytes { state.inflate($0, into: &output, limit: limit) }
        guard outcome == .ok else { return (output, outcome) }
    }
    return (output, state.finishMessage(into: &output, limit: limit))
}

/// Some text that compresses, as a JSON feed would.
private func sample(_ count: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var i = 0
    while bytes.count < count {
        bytes += Array("{\"seq\":\(i),\"price\":\(i * 7919 % 10007),\"side\":\"\(i % 3 == 0 ? "buy" : "sell")\"},".utf8)
        i += 1
    }
    return Array(bytes.prefix(count))
}

@Suite("permessage-deflate through the system zlib (RFC 7692 §7.2)")
struct ZlibCodecTests {
    @Test("§7.2.3.1: \"Hello\" compresses to the RFC's bytes (the tail removed) and back")
    func hello() {
        var state = compression()
        let compressed = Array("Hello".utf8).withUnsafeBytes { state.compress($0) }
        #expect(compressed == hex("f2 48 cd c9 c9 07 00"))
        var reader = compression()
        let (text, outcome) = receive([hex("f2 48 cd c9 c9 07 00")], with: &reader)
        #expect(outcome == .ok && text == Array("Hello".utf8))
    }

    @Test("streams kept for reuse start clean: after a used stream is given back, the next one is as new")
    func reusedStreamsAreReset() {
        let codec = ZlibCodec()
        let text = sample(40_000)
        for _ in 0..<12 {
            // A stream that has seen a message (a window and hash full of it)…
            var used: [UInt8] = []
            let dirty = codec.makeDeflater(windowBits: 15)
            #expect(text.withUnsafeBytes { dirty?.deflate($0, into: &used) } == true)
            var inflated: [UInt8] = []
            let reader = codec.makeInflater(windowBits: 15)
            let partial = used.prefix(used.count / 2)
            #expect(Array(partial).withUnsafeBytes { reader?.inflate($0, into: &inflated, limit: 1 << 20) } == .ok)
            _ = (dirty, reader)
        }
        // …given back mid-message: the next ones compress and inflate as new
        // streams would (a stream not reset would refer back to the old text,
        // or fail on the fresh one).
        let message = sample(2_000)
        for _ in 0..<12 {
            var writer = compression(clientNCT: true, serverNCT: true)
            let compressed = message.withUnsafeBytes { writer.compress($0) } ?? []
            var reader = compression(clientNCT: true, serverNCT: true)
            let (text, outcome) = receive([compressed], with: &reader)
            #expect(outcome == .ok && text == message)
            #expect(!writer.holdsState && !reader.holdsState)
        }
    }

    @Test("§7.2.3: the RFC's other messages: shared window, stored block, BFINAL, two blocks, empty")
    func rfcVectors() {
        // §7.2.3.2: the second "Hello" refers back into the first's window.
        var shared = compression()
        #expect(receive([hex("f2 48 cd c9 c9 07 00")], with: &shared).0 == Array("Hello".utf8))
        #expect(receive([hex("f2 00 11 00 00")], with: &shared).0 == Array("Hello".utf8))
        // §7.2.3.3: no compression (a stored block).
        var stored = compression()
        #expect(receive([hex("00 05 00 fa ff 48 65 6c 6c 6f 00")], with: &stored).0 == Array("Hello".utf8))
        // §7.2.3.4: BFINAL set; the connection goes on with the next message.
        var final = compression()
        #expect(receive([hex("f3 48 cd c9 c9 07 00 00")], with: &final).0 == Array("Hello".utf8))
        #expect(receive([hex("f2 48 cd c9 c9 07 00")], with: &final).0 == Array("Hello".utf8))
        // §7.2.3.5: two DEFLATE blocks in one message, split across "frames" anywhere.
        var two = compression()
        let blocks = hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")
        #expect(receive(blocks.map { [$0] }, with: &two).0 == Array("Hello".utf8))
        // §7.2.3.6: an empty message is one byte, 0x00.
        var empty = compression()
        #expect([UInt8]().withUnsafeBytes { empty.compress($0) } == [0x00])
        var emptyReader = compression()
        #expect(receive([[0x00]], with: &emptyReader) == ([], .ok))
    }

    @Test("every window size round-trips; a window of 8 is compressed with 9 and still read at 8", arguments: 8...15)
    func windows(bits: Int) {
        let message = sample(100_000)
        var sender = compression(client: bits)
        var receiver = compression(server: bits)
        for _ in 0..<3 {  // several messages: the windows carry over (context takeover)
            let compressed = message.withUnsafeBytes { sender.compress($0) }
            #expect((compressed?.count ?? .max) < message.count / 3)
            let (back, outcome) = receive([compressed ?? []], with: &receiver, limit: 1 << 20)
            #expect(outcome == .ok && back == message)
        }
    }

    @Test("no context takeover: nothing is held between messages")
    func noContextTakeover() {
        var state = compression(clientNCT: true, serverNCT: true)
        let compressed = sample(10_000).withUnsafeBytes { state.compress($0) }
        #expect(compressed != nil && !state.holdsState)
        #expect(receive([compressed ?? []], with: &state).0 == sample(10_000))
        #expect(!state.holdsState)
        var takeover = compression()
        _ = sample(10_000).withUnsafeBytes { takeover.compress($0) }
        #expect(takeover.holdsState)
    }

    @Test("a bomb: 64 MiB of zeros in ~64 KiB inflates only up to the limit")
    func bomb() {
        var sender = compression(clientNCT: true)
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        let bomb = zeros.withUnsafeBytes { sender.compress($0) } ?? []
        #expect(bomb.count < 100_000)
        var receiver = compression()
        var output: [UInt8] = []
        let limit = 1 << 20
        let outcome = bomb.withUnsafeBytes { receiver.inflate($0, into: &output, limit: limit) }
        #expect(outcome == .limitExceeded)
        #expect(output.count <= limit + 1)
    }

    @Test("corrupt DEFLATE is refused with zlib's reason")
    func corrupt() {
        var state = compression()
        var output: [UInt8] = []
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        let outcome = [UInt8]([0xFF, 0xFF, 0xFF]).withUnsafeBytes { state.inflate($0, into: &output, limit: 1000) }
        guard case .corrupt(let reason) = outcome else {
            Issue.record("accepted: \(outcome)")
            return
        }
        #expect(reason.contains("invalid"))
    }
}
