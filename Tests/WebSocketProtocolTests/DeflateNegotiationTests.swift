import Testing

@testable import WebSocketProtocol

/// Offers used below: D offers only `client_max_window_bits`; S bounds both
/// windows to 10; N asks for no context takeover both ways.
private let offerD = DeflateOffer()
private let offerS = DeflateOffer(clientMaxWindowBits: 10, serverMaxWindowBits: 10)
private let offerN = DeflateOffer(clientNoContextTakeover: true, serverNoContextTakeover: true)
private let offerPlain = DeflateOffer(clientMaxWindowBits: nil)

private func agreed(_ client: Int, _ server: Int, _ clientNCT: Bool = false, _ serverNCT: Bool = false)
    -> DeflateParameters
{
    DeflateParameters(
        clientMaxWindowBits: client, serverMaxWindowBits: server, clientNoContextTakeover: clientNCT,
        serverNoContextTakeover: serverNCT)
}

@Suite("permessage-deflate negotiation (RFC 7692 §5, §7.1)")
struct DeflateNegotiationTests {
    @Test("the list grammar: parameters, quoted values, whitespace, empty elements, several lines")
    func grammar() {
        #expect(
            ExtensionHeader.parse(["permessage-deflate ; server_max_window_bits = \"10\" ;client_no_context_takeover"])
                == [
                    ExtensionElement(
                        "permessage-deflate",
                        [.init("server_max_window_bits", "10"), .init("client_no_context_takeover")])
                ])
        #expect(
            ExtensionHeader.parse([" , a, ,b;x=1", "", "c"]) == [.init("a"), .init("b", [.init("x", "1")]), .init("c")])
        #expect(ExtensionHeader.parse(["a; x=\"1\\0\""]) == [.init("a", [.init("x", "10")])])
        for bad in [
            "permessage-deflate;", ";x", "permessage-deflate; =10", "a; x=\"10", "a; x=\"\"", "a; x=\"1 0\"", "a b",
            "a; x=1 2", "a\u{1}", "a; x=", "é",
        ] {
            #expect(ExtensionHeader.parse([bad]) == nil, "\(bad)")
        }
    }

    @Test(
        "accepted answers and what is then in force",
        arguments: [
            (offerD, "permessage-deflate", agreed(15, 15)),
            (offerD, "permessage-deflate; client_max_window_bits=8", agreed(8, 15)),
            (offerD, "permessage-deflate; server_max_window_bits=10", agreed(15, 10)),
            (offerD, "permessage-deflate; server_no_context_takeover", agreed(15, 15, false, true)),
            (offerD, "permessage-deflate; client_no_context_takeover", agreed(15, 15, true, false)),
            (
                offerN, "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                agreed(15, 15, true, true)
            ),
            (offerN, "permessage-deflate; server_no_context_takeover", agreed(15, 15, true, true)),
            (offerS, "permessage-deflate; server_max_window_bits=9", agreed(10, 9)),
            (offerS, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", agreed(9, 10)),
            (offerS, "permessage-deflate; server_max_window_bits=\"10\"", agreed(10, 10)),
            (offerPlain, "permessage-deflate", agreed(15, 15)),
        ] as [(DeflateOffer, String, DeflateParameters)])
    func accepted(offer: DeflateOffer, answer: String, expected: DeflateParameters) throws {
        let elements = try #require(ExtensionHeader.parse([answer]))
        #expect(offer.accept(elements) == .success(expected))
    }

    @Test("no answer is a decline: the connection runs uncompressed")
    func declined() throws {
        #expect(offerD.accept([]) == .success(nil))
        #expect(offerD.accept(try #require(ExtensionHeader.parse(["", " , "]))) == .success(nil))
    }

    @Test(
        "refused answers, each with its reason",
        arguments: [
            (offerD, "x-webkit-deflate-frame", DeflateNegotiationError.unknownExtension("x-webkit-deflate-frame")),
            (offerD, "permessage-deflate, permessage-deflate", .duplicateExtension),
            (offerD, "permessage-deflate, x-foo", .unknownExtension("x-foo")),
            (offerD, "Permessage-Deflate", .unknownExtension("Permessage-Deflate")),
            (offerD, "permessage-deflate; foo", .unknownParameter("foo")),
            (offerD, "permessage-deflate; Server_No_Context_Takeover", .unknownParameter("Server_No_Context_Takeover")),
            (
                offerD, "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                .duplicateParameter("server_no_context_takeover")
            ),
            (
                offerD, "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
                .duplicateParameter("server_max_window_bits")
            ),
            (
                offerD, "permessage-deflate; server_no_context_takeover=1",
                .invalidValue(.init("server_no_context_takeover", "1"))
            ),
            (offerD, "permessage-deflate; server_max_window_bits", .invalidValue(.init("server_max_window_bits"))),
            (offerD, "permessage-deflate; client_max_window_bits", .invalidValue(.init("client_max_window_bits"))),
            (
                offerD, "permessage-deflate; server_max_window_bits=7",
                .invalidValue(.init("server_max_window_bits", "7"))
            ),
            (
                offerD, "permessage-deflate; server_max_window_bits=16",
                .invalidValue(.init("server_max_window_bits", "16"))
            ),
            (
                offerD, "permessage-deflate; server_max_window_bits=010",
                .invalidValue(.init("server_max_window_bits", "010"))
            ),
            (
                offerD, "permessage-deflate; server_max_window_bits=+9",
                .invalidValue(.init("server_max_window_bits", "+9"))
            ),
            (
                offerS, "permessage-deflate; server_max_window_bits=11",
                .windowTooLarge("server_max_window_bits", 11, offered: 10)
            ),
            (
                offerS, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
                .windowTooLarge("client_max_window_bits", 11, offered: 10)
            ),
            (offerPlain, "permessage-deflate; client_max_window_bits=10", .notOffered("client_max_window_bits")),
            (offerN, "permessage-deflate", .missing("server_no_context_takeover")),
            (offerS, "permessage-deflate", .missing("server_max_window_bits")),
        ] as [(DeflateOffer, String, DeflateNegotiationError)])
    func refused(offer: DeflateOffer, answer: String, expected: DeflateNegotiationError) throws {
        let elements = try #require(ExtensionHeader.parse([answer]))
        #expect(offer.accept(elements) == .failure(expected))
    }

    @Test("offers: written as the header value, read back the same; bad offers refused")
    func offers() {
        #expect(offerD.description == "permessage-deflate; client_max_window_bits")
        #expect(
            offerN.description
                == "permessage-deflate; client_max_window_bits; client_no_context_takeover; server_no_context_takeover")
        #expect(offerS.description == "permessage-deflate; client_max_window_bits=10; server_max_window_bits=10")
        #expect(offerPlain.description == "permessage-deflate")
        for offer in [offerD, offerS, offerN, offerPlain] {
            #expect(DeflateOffer.parse(offer.description) == .success(offer))
        }
        #expect(DeflateOffer.parse("x-foo") == .failure(.unknownExtension("x-foo")))
        #expect(DeflateOffer.parse("permessage-deflate, permessage-deflate") == .failure(.duplicateExtension))
        #expect(DeflateOffer.parse("permessage-deflate; level=9") == .failure(.unknownParameter("level")))
        #expect(
            DeflateOffer.parse("permessage-deflate; server_max_window_bits")
                == .failure(.invalidValue(.init("server_max_window_bits"))))
        #expect(DeflateOffer.parse("permessage-deflate;") == .failure(.malformed("permessage-deflate;")))
        #expect(DeflateOffer.parse("") == .failure(.malformed("")))
        #expect(
            agreed(10, 9, true, false).description
                == "permessage-deflate; client_no_context_takeover; client_max_window_bits=10; server_max_window_bits=9"
        )
    }

    @Test("the handshake: the offer in the request; the answer read from every Extensions line")
    func handshake() throws {
        let key = [UInt8](repeating: 7, count: 16)
        let url = WebSocketURL(secure: false, host: "h")
        let offering = Handshake(url: url, keyBytes: key, deflate: offerN)
        let request = String(decoding: offering.request(), as: UTF8.self)
        #expect(request.contains("\r\nSec-WebSocket-Extensions: \(offerN)\r\n"))
        #expect(!String(decoding: Handshake(url: url, keyBytes: key).request(), as: UTF8.self).contains("Extensions"))
        func answer(_ extensionLines: [String], to handshake: Handshake) -> Result<
            DeflateParameters?, Handshake.Failure
        > {
            var text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            text += "Sec-WebSocket-Accept: \(handshake.expectedAccept)"
            for line in extensionLines { text += "\r\nSec-WebSocket-Extensions: \(line)" }
            return handshake.validate(responseHeader: Array(text.utf8)[...]).map(\.deflate)
        }
        #expect(
            answer(["permessage-deflate; server_no_context_takeover", "client_no_context_takeover"], to: offering)
                == .failure(.extensionNegotiation(.unknownExtension("client_no_context_takeover"))))
        #expect(
            answer(["", "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"], to: offering)
                == .success(agreed(9, 15, true, true)))
        #expect(answer([], to: offering) == .success(nil))
        #expect(
            answer(["permessage-deflate; server_max_window_bits=\"10"], to: offering)
                == .failure(.malformedExtensions("permessage-deflate; server_max_window_bits=\"10")))
        // Nothing offered: any extension is refused, as before.
        let plain = Handshake(url: url, keyBytes: key)
        #expect(answer(["permessage-deflate"], to: plain) == .failure(.unexpectedExtension("permessage-deflate")))
        #expect(answer([""], to: plain) == .success(nil))
    }
}
