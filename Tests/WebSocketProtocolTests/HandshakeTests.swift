import Foundation
import Testing

@testable import WebSocketProtocol

@Suite("Opening handshake (RFC 6455 §4.1, §4.2.2)")
struct HandshakeTests {
    @Test("§1.3: the accept value for the sample nonce")
    func sampleAccept() {
        #expect(Handshake.accept(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("a header lists a token among comma-separated values, in any ASCII case, spaces and tabs ignored")
    func listsToken() {
        // (Several fields of one name: any of them may list it, as validation reads them.)
        func lists(_ values: [String], _ token: StaticString = "upgrade") -> Bool {
            values.contains { Handshake.listsToken(Array($0.utf8)[...], token) }
        }
        #expect(lists(["Upgrade"]))
        #expect(lists(["UPGRADE"]))
        #expect(lists(["keep-alive, Upgrade"]))
        #expect(lists(["keep-alive,upgrade"]))
        #expect(lists([" \tupgrade\t , close"]))
        #expect(lists(["keep-alive", "Upgrade"]))
        #expect(!lists(["upgrades"]))
        #expect(!lists(["up grade"]))
        #expect(!lists(["keep-alive"]))
        #expect(!lists([""]))
        #expect(!lists([","]))
        #expect(!lists([]))
        // ASCII case folding only: the Kelvin sign is not a "k".
        #expect(!lists(["\u{212A}eep-alive"], "keep-alive"))
        #expect(lists(["Keep-Alive"], "keep-alive"))
    }

    @Test("the status line: HTTP/1.x, a space, three digits, then the end or a space and the reason")
    func statusLine() {
        func status(_ line: String) -> String? {
            Handshake.status(Array(line.utf8)[...]).map { "\($0.code) \(String(decoding: $0.reason, as: UTF8.self))" }
        }
        #expect(status("HTTP/1.1 101 Switching Protocols") == "101 Switching Protocols")
        #expect(status("HTTP/1.0 403 Forbidden by policy") == "403 Forbidden by policy")
        #expect(status("HTTP/1.1 101") == "101 ")
        #expect(status("HTTP/1.1 101 ") == "101 ")
        #expect(status("HTTP/1.1 200 a  b") == "200 a  b")
        #expect(status("HTTP/1.1 +01 x") == nil)
        #expect(status("HTTP/1.1 -01 x") == nil)
        #expect(status("HTTP/1.1 10") == nil)
        #expect(status("HTTP/1.1 1011 x") == nil)
        #expect(status("HTTP/1.1  101 x") == nil)
        #expect(status("HTTP/1.1 1\u{0663}1 x") == nil)  // an Arabic-Indic digit is no digit here
        #expect(status("HTTP/2 101 x") == nil)
        #expect(status("http/1.1 101 x") == nil)
        #expect(status("HTTP/1.1") == nil)
        #expect(status("") == nil)
    }

    @Test("SHA-1 and base64 against FIPS 180 and RFC 4648 vectors")
    func primitives() {
        func hex(_ bytes: [UInt8]) -> String {
            bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
                .joined()
        }
        #expect(hex(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.hash([UInt8]())) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(
            hex(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(
            hex(
                SHA1.hash(
                    Array(
                        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
                            .utf8))) == "a49b2446a02c645bf419f995b67091253a04a259")
        // Lengths around the padding's edges (one or two blocks), against Python's hashlib.
        let edges: [(Int, String)] = [
            (55, "ddf57317ef34bfee3b6df83d359098930eb278bc"), (63, "c55856749bef509bdfe6bfebfc7bf4e793e82132"),
            (64, "bede92be29c3874e1b54ddc77988d606fc857a8e"), (65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f"),
            (119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23"), (120, "82134b02fb3f702491be9bed581eeab59334acb2"),
        ]
        for (length, digest) in edges {
            let message = (0..<length).map { UInt8(($0 * 7 + 3) % 256) }
            #expect(hex(SHA1.hash(message)) == digest, "\(length) bytes")
        }
        #expect(
            ["", "f", "fo", "foo", "foob", "fooba", "foobar"].map { Base64.encode(Array($0.utf8)) } == [
                "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
            ])
        // RFC 4648 §10 vectors decode back; anything not padded base64 is refused.
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            #expect(Base64.decode(Base64.encode(Array(text.utf8))) == Array(text.utf8))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(all)) == all)
        for bad in ["Zg", "Zg=", "Z===", "Zm9v!", "Zg==Zg==", "=Zm8", "Zm=v", "Zm9\n"] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
        }
    }

    @Test("the request: path and query, Host with a non-default port, no userinfo, version 13")
    func request() throws {
        let url = try WebSocketURL.parse("ws://user:secret@Example.com:8080/chat/room?x=1&y=2#frag").get()
        let handshake = Handshake(url: url, keyBytes: Array(1...16))
        let text = String(decoding: handshake.request(userAgent: "wshostd/0.1.0"), as: UTF8.self)
        #expect(
            text
                == "GET /chat/room?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\nUser-Agent: wshostd/0.1.0\r\n\r\n"
        )
        #expect(!text.contains("secret"))
        let secure = try WebSocketURL.parse("wss://[::1]:443").get()
        #expect(secure.hostHeader == "[::1]")
        #expect(secure.resource == "/")
    }

    /// The request writes the Host line itself, digit by digit: it must say
    /// what `hostHeader` says, for every width of port and for IPv6.
    @Test("the request's Host line is the URL's Host header, for every port width and IPv6")
    func hostLine() throws {
        for text in [
            "ws://h/", "ws://h:80/", "ws://h:1/", "ws://h:9/", "ws://h:10/", "ws://h:99/", "ws://h:100/",
            "ws://h:1000/", "ws://h:9999/", "ws://h:10000/", "ws://h:65535/", "wss://h:443/", "wss://h:80/",
            "ws://[::1]/", "ws://[::1]:8080/", "wss://[2001:db8::1]:443/",
        ] {
            let url = try WebSocketURL.parse(text).get()
            let request = String(decoding: Handshake(url: url, keyBytes: Self.key).request(), as: UTF8.self)
            #expect(request.contains("\r\nHost: \(url.hostHeader)\r\n"), "\(text)")
        }
    }

    static let key: [UInt8] = Array(1...16)
    static var accept: String { Handshake(url: WebSocketURL(secure: false, host: "h"), keyBytes: key).expectedAccept }

    @Test(
        "bad responses are refused with a clear reason",
        arguments: [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0", "server answered 200 OK instead of 101 Switching Protocols"),
            ("HTTP/1.1 404 Not Found", "server answered 404 Not Found instead of 101 Switching Protocols"),
            ("SSH-2.0-OpenSSH_9.2", "malformed HTTP status line \"SSH-2.0-OpenSSH_9.2\""),
            (
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT",
                "response lacks \"Upgrade: websocket\""
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ACCEPT",
                "response lacks \"Connection: upgrade\""
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade",
                "response lacks Sec-WebSocket-Accept"
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA",
                "Sec-WebSocket-Accept \"AAAA\" does not match the key sent"
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Extensions: permessage-deflate",
                "server selected extension \"permessage-deflate\" that was not offered"
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Protocol: chat",
                "server selected subprotocol \"chat\" that was not offered"
            ),
            ("HTTP/1.1 101 Switching Protocols\r\nno colon here", "malformed HTTP header line \"no colon here\""),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade : websocket",
                "malformed HTTP header line \"Upgrade : websocket\""
            ),
            // Field names fold case in ASCII only: the Kelvin sign is not a "k".
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-Websoc\u{212A}et-Accept: ACCEPT",
                "response lacks Sec-WebSocket-Accept"
            ),
            // Only the fields of those names count: a longer name that ends in one is another field.
            (
                "HTTP/1.1 101 Switching Protocols\r\nX-Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT",
                "response lacks \"Upgrade: websocket\""
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\nSec-WebSocket-Accept: ACCEPT",
                "Sec-WebSocket-Accept \"AAAA\" does not match the key sent"
            ),
            // A bare LF does not end a line: the Upgrade value is not "websocket".
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT",
                "response lacks \"Upgrade: websocket\""
            ),
        ])
    func badResponses(header: String, message: String) {
        let handshake = Handshake(url: WebSocketURL(secure: false, host: "h"), keyBytes: Self.key)
        let text = header.replacingOccurrences(of: "ACCEPT", with: Self.accept)
        switch handshake.validate(responseHeader: Array(text.utf8)[...]) {
        case .success: Issue.record("accepted: \(header)")
        case .failure(let failure): #expect(failure.description == message)
        }
    }

    @Test("an injected SHA-1 is the one the accept check uses")
    func injectedDigest() {
        let response =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        func validates(_ sha1: Handshake.SHA1Digest?) -> Bool {
            let handshake = Handshake(
                url: WebSocketURL(secure: false, host: "h"), keyBytes: Array("the sample nonce".utf8), sha1: sha1)
            return (try? handshake.validate(responseHeader: Array(response.utf8)[...]).get()) != nil
        }
        #expect(validates(nil))
        #expect(validates { SHA1.hash($0, into: $1) })
        // A digest that is not SHA-1: the right answer no longer matches.
        #expect(!validates { _, digest in digest.initializeMemory(as: UInt8.self, repeating: 0) })
    }

    @Test("the accept value compares byte for byte: a Kelvin sign is not the K of the base64")
    func acceptBytes() {
        let handshake = Handshake(url: WebSocketURL(secure: false, host: "h"), keyBytes: Array("the sample nonce".utf8))
        #expect(handshake.expectedAccept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        func accepted(_ accept: String) -> Bool {
            let text =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)"
            return (try? handshake.validate(responseHeader: Array(text.utf8)[...]).get()) != nil
        }
        let kelvin = handshake.expectedAccept.replacingOccurrences(of: "K", with: "\u{212A}")
        #expect(kelvin == handshake.expectedAccept)  // equal as Strings (canonically equivalent)…
        #expect(accepted(handshake.expectedAccept))
        #expect(!accepted(kelvin))  // …but not the bytes the server must send
    }

    @Test("token lists and header case are accepted")
    func lenient() {
        let handshake = Handshake(url: WebSocketURL(secure: false, host: "h"), keyBytes: Self.key)
        let text =
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\nsec-websocket-accept:   \(Self.accept)  \r\nSec-WebSocket-Extensions: "
        #expect((try? handshake.validate(responseHeader: Array(text.utf8)[...]).get()) != nil)
    }
}

@Suite("WebSocketURL: ws:// and wss:// targets (RFC 6455 §3)")
struct WebSocketURLTests {
    @Test(
        "accepted URLs",
        arguments: [
            ("ws://example.com", "ws://example.com/", "example.com", UInt16(80), "/"),
            ("wss://example.com", "wss://example.com/", "example.com", 443, "/"),
            ("WS://Example.COM:9000/a/b?c=d", "ws://example.com:9000/a/b?c=d", "example.com", 9000, "/a/b?c=d"),
            ("ws://127.0.0.1:8765?x", "ws://127.0.0.1:8765/?x", "127.0.0.1", 8765, "/?x"),
            ("wss://[2001:db8::1]:8443/p", "wss://[2001:db8::1]:8443/p", "2001:db8::1", 8443, "/p"),
            ("ws://u:p@h:81/#f", "ws://h:81/", "h", 81, "/"),
        ])
    func accepted(text: String, normalized: String, host: String, port: UInt16, resource: String) throws {
        let url = try WebSocketURL.parse(text).get()
        #expect(url.description == normalized)
        #expect(url.host == host && url.port == port && url.resource == resource)
    }

    @Test(
        "refused URLs",
        arguments: [
            ("http://example.com", WebSocketURL.ParseError.notWebSocketScheme), ("ws://", .missingHost),
            ("ws://:80/", .missingHost),
            ("ws://h:0", .invalidPort("0")), ("ws://h:99999", .invalidPort("99999")), ("ws://h:x", .invalidPort("x")),
            ("ws://exa mple", .invalidCharacter), ("ws://[::1", .invalidHost("[::1")),
            ("ws://a:b:c", .invalidHost("a:b")),
        ])
    func refused(text: String, error: WebSocketURL.ParseError) {
        #expect(throws: error) { try WebSocketURL.parse(text).get() }
    }
}
