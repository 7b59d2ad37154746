import TLS
import Testing
import WebSocketClient
import WebSocketProtocol

@Suite("OpenSSL's SHA-1 for the accept check")
struct DigestTests {
    private func sha1Hex(_ message: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 20)
        message.withUnsafeBytes { source in digest.withUnsafeMutableBytes { Digest.sha1(source, into: $0) } }
        return digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test("FIPS 180 vectors and the lengths around the padding's edges (against Python's hashlib)")
    func vectors() {
        #expect(sha1Hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(sha1Hex([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(
            sha1Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        let edges: [(Int, String)] = [
            (55, "ddf57317ef34bfee3b6df83d359098930eb278bc"), (63, "c55856749bef509bdfe6bfebfc7bf4e793e82132"),
            (64, "bede92be29c3874e1b54ddc77988d606fc857a8e"), (65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f"),
            (119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23"), (120, "82134b02fb3f702491be9bed581eeab59334acb2"),
        ]
        for (length, digest) in edges {
            #expect(sha1Hex((0..<length).map { UInt8(($0 * 7 + 3) % 256) }) == digest, "\(length) bytes")
        }
    }

    @Test("RFC 6455 §1.3's accept value through it; the client's options use it")
    func acceptAndDefault() {
        let sample = "dGhlIHNhbXBsZSBub25jZQ=="
        #expect(Handshake.accept(for: sample, sha1: { Digest.sha1($0, into: $1) }) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(WebSocketClient.Options().connection.sha1 != nil)
    }
}
