import TestSupport
import Testing

@testable import WebSocketProtocol

@Suite("UTF8Validator: incremental, fail-fast (RFC 6455 §8.1, RFC 3629)")
struct UTF8ValidatorTests {
    @Test(
        "invalid sequences are rejected",
        arguments: [
            [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0xFF], [0x80],
            [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80],
            [0xF0, 0x80, 0x80, 0x80],
        ] as [[UInt8]])
    func invalid(bytes: [UInt8]) {
        var validator = UTF8Validator()
        #expect(validator.feed(bytes) == .invalid)
    }

    @Test("valid text, split anywhere, is complete only at character boundaries")
    func valid() {
        let text = Array("κόσμε Hello 𝄞 ∑ 日本語 \u{10FFFF}".utf8)
        for split in 0...text.count {
            var validator = UTF8Validator()
            let first = validator.feed(text[..<split])
            #expect(first != .invalid)
            #expect(validator.feed(text[split...]) == .complete)
        }
        var validator = UTF8Validator()
        #expect(validator.feed([0xF0, 0x9D]) == .incomplete)
    }

    @Test("fails on the first invalid byte, before the message ends")
    func failFast() {
        var validator = UTF8Validator()
        #expect(validator.feed(Array("abc".utf8)) == .complete)
        #expect(validator.feed([0xED, 0xA0]) == .invalid)  // a surrogate is known bad after 2 bytes
        #expect(validator.feed(Array("more".utf8)) == .invalid)
    }

    @Test("agrees with the standard library on random byte strings")
    func randomAgreement() {
        var rng = TestRNG(seed: 7)
        for _ in 0..<5000 {
            let length = Int(rng.next() % 12)
            let bytes = (0..<length).map { _ in
                // Bias towards interesting bytes.
                let pick = rng.next() % 4
                return pick == 0 ? UInt8(rng.next() % 128) : UInt8(0x80 + rng.next() % 128)
            }
            var validator = UTF8Validator()
            let ours = validator.feed(bytes) == .complete
            let library = String(validating: bytes, as: UTF8.self) != nil
            #expect(ours == library, "\(bytes)")
        }
    }
}
