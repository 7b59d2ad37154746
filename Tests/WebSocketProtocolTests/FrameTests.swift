import TestSupport
import Testing

@testable import WebSocketProtocol

/// Feeds `bytes` split at `split` and collects the parser's events, merging payload chunks.
private func parse(_ bytes: [UInt8], split: Int? = nil, maxFrameSize: Int = 1 << 20) -> (
    events: [String], error: ProtocolError?
) {
    var parser = FrameParser(maxFrameSize: maxFrameSize)
    var events: [String] = []
    var payload: [UInt8] = []
    let parts = split.map { [Array(bytes[..<$0]), Array(bytes[$0...])] } ?? [bytes]
    for part in parts {
        parser.append(part)
        while let result = parser.next() {
            switch result {
            case .failure(let error): return (events, error)
            case .success(.frameStart(let header)):
                events.append("start \(header.opcode) fin=\(header.fin) len=\(header.payloadLength)")
            case .success(.payload(let chunk)): payload += chunk
            case .success(.frameEnd):
                events.append(
                    "end \(payload.count <= 16 ? String(decoding: payload, as: UTF8.self) : "\(payload.count) bytes")")
                payload = []
            case .success(.control(let opcode, let body)):
                events.append("control \(opcode) \(String(decoding: body, as: UTF8.self))")
            }
        }
    }
    return (events, nil)
}

@Suite("FrameParser: RFC 6455 §5.2 server frames, split at every byte boundary")
struct FrameParserTests {
    /// RFC 6455 §5.7 examples (the server-to-client, unmasked ones).
    static let vectors: [(name: String, bytes: [UInt8], events: [String])] = [
        (
            "single-frame unmasked text", [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F],
            ["start text fin=true len=5", "end Hello"]
        ),
        (
            "fragmented unmasked text", [0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F],
            ["start text fin=false len=3", "end Hel", "start continuation fin=true len=2", "end lo"]
        ),
        ("unmasked ping", [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], ["control ping Hello"]),
        (
            "256-byte binary, 16-bit length", [0x82, 0x7E, 0x01, 0x00] + [UInt8](repeating: 7, count: 256),
            ["start binary fin=true len=256", "end 256 bytes"]
        ),
        (
            "64 KiB binary, 64-bit length", [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + [UInt8](repeating: 9, count: 65536),
            ["start binary fin=true len=65536", "end 65536 bytes"]
        ),
        ("empty text", [0x81, 0x00], ["start text fin=true len=0", "end "]),
    ]

    @Test("§5.7 examples parse the same whole and split at every byte", arguments: 0..<6)
    func goldenVectors(index: Int) {
        let vector = Self.vectors[index]
        #expect(parse(vector.bytes).events == vector.events, "\(vector.name)")
        // Every split of the small vectors; a sample of splits of the 64 KiB one.
        let splits =
            vector.bytes.count < 300
            ? Array(0...vector.bytes.count) : [0, 1, 2, 5, 9, 10, 11, 1000, vector.bytes.count - 1]
        for split in splits {
            let result = parse(vector.bytes, split: split)
            #expect(result.error == nil)
            #expect(result.events == vector.events, "\(vector.name) split at \(split)")
        }
    }

    @Test(
        "malformed headers fail with the right error",
        arguments: [
            ([0xC1, 0x00], ProtocolError.reservedBitsSet), ([0xA1, 0x00], .reservedBitsSet),
            ([0x83, 0x00], .reservedOpcode(3)),
            ([0x8B, 0x00], .reservedOpcode(11)), ([0x81, 0x80, 1, 2, 3, 4], .maskedServerFrame),
            ([0x82, 0x7E, 0x00, 0x7D], .nonMinimalLength),
            ([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], .nonMinimalLength),
            ([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], .lengthTooLarge), ([0x09, 0x00], .fragmentedControlFrame),
            ([0x89, 0x7E, 0x00, 0x7E], .controlFrameTooLong(126)),
            ([0x82, 0x7E, 0x04, 0x01], .frameTooBig(limit: 1024)),
        ] as [([UInt8], ProtocolError)])
    func malformed(bytes: [UInt8], error: ProtocolError) {
        #expect(parse(bytes, maxFrameSize: 1024).error == error)
    }

    @Test("random bytes never crash the parser: it progresses or fails")
    func fuzz() {
        var rng = TestRNG(seed: 99)
        for _ in 0..<3000 {
            var parser = FrameParser(maxFrameSize: 4096)
            let length = Int(rng.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty && rng.next() % 2 == 0 { bytes[0] &= 0x8F }  // often valid RSV bits
            if bytes.count > 1 && rng.next() % 2 == 0 { bytes[1] &= 0x7F }  // often unmasked
            var offset = 0
            while offset < bytes.count {
                let step = 1 + Int(rng.next() % 8)
                parser.append(bytes[offset..<min(bytes.count, offset + step)])
                offset += step
                var guardCount = 0
                while let result = parser.next() {
                    guardCount += 1
                    #expect(guardCount < 1000)
                    if case .failure = result { break }
                }
            }
        }
    }
}

@Suite("FrameWriter: masked client frames (RFC 6455 §5.3)")
struct FrameWriterTests {
    @Test("§5.7: masked \"Hello\" with key 37 fa 21 3d")
    func maskedHello() {
        var out: [UInt8] = []
        FrameWriter.append(fin: true, opcode: .text, payload: Array("Hello".utf8), maskKey: 0x37FA_213D, to: &out)
        #expect(out == [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        out = []
        FrameWriter.append(fin: true, opcode: .pong, payload: Array("Hello".utf8), maskKey: 0x37FA_213D, to: &out)
        #expect(out == [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    }

    @Test("lengths use the shortest encoding", arguments: [(0, 6), (125, 6), (126, 8), (65535, 8), (65536, 14)])
    func lengths(count: Int, headerSize: Int) {
        var out: [UInt8] = []
        let payload = [UInt8](repeating: 0x55, count: count)
        FrameWriter.append(fin: true, opcode: .binary, payload: payload, maskKey: 0xDEAD_BEEF, to: &out)
        #expect(out.count == headerSize + count)
        let decoded = ClientFrame.decodeAll(out)
        #expect(decoded == [ClientFrame(fin: true, opcode: 2, masked: true, payload: payload)])
    }

    @Test("frames masked while copied decode to their payload: every length and alignment, contiguous or not")
    func maskedWhileCopied() {
        var rng = TestRNG()
        for length in 0..<70 {
            for offset in 0..<3 {
                let key = UInt32(truncatingIfNeeded: rng.next())
                let storage = (0..<(length + offset)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let payload = storage[offset...]  // an ArraySlice: contiguous, copied and masked in one pass
                var out: [UInt8] = [0xEE]  // a byte already there: the frame is appended after it
                FrameWriter.append(fin: true, opcode: .binary, payload: payload, maskKey: key, to: &out)
                #expect(out.first == 0xEE)
                let frames = ClientFrame.decodeAll(Array(out.dropFirst()))
                #expect(frames == [ClientFrame(fin: true, opcode: 2, masked: true, payload: Array(payload))])
            }
            // Not contiguous: appended, then masked in place.
            var out: [UInt8] = []
            FrameWriter.append(
                fin: true, opcode: .binary, payload: repeatElement(UInt8(0x5A), count: length), maskKey: 0x0102_0304,
                to: &out)
            #expect(ClientFrame.decodeAll(out).first?.payload == [UInt8](repeating: 0x5A, count: length))
        }
    }

    @Test("masking equals the byte-wise definition at every length and alignment")
    func maskMatchesDefinition() {
        var rng = TestRNG()
        for length in 0..<40 {
            for offset in 0..<8 {
                let key = UInt32(truncatingIfNeeded: rng.next())
                var storage = (0..<(length + offset)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let original = Array(storage[offset...])
                storage.withUnsafeMutableBytes {
                    FrameWriter.mask(UnsafeMutableRawBufferPointer(rebasing: $0[offset...]), key: key)
                }
                let keyBytes = [
                    UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF),
                ]
                let expected = original.enumerated().map { $0.element ^ keyBytes[$0.offset % 4] }
                #expect(Array(storage[offset...]) == expected)
            }
        }
    }
}
