import Config
import Foundation
import TestSupport
import Testing
import WebSocketClient
import WebSocketProtocol

/// JSON-like text that compresses well, as a streaming server would send.
private func feed(_ count: Int) -> String {
    var text = ""
    var i = 0
    while text.utf8.count < count {
        text += "{\"seq\":\(i),\"price\":\(i * 7919 % 10007),\"side\":\"\(i % 3 == 0 ? "buy" : "sell")\"},"
        i += 1
    }
    return text
}

/// The options `[websocket] compression` gives.
private func compressing(_ offer: DeflateOffer = .noContextTakeover) -> WebSocketClient.Options {
    var websocket = DaemonConfig.WebSocket()
    websocket.compression = offer
    return WebSocketClient.Options(websocket)
}

@Suite("permessage-deflate against python-websockets servers", .serialized)
struct DeflateTests {
    @Test(
        "compressed echo: server defaults (takeover, 12-bit), no context takeover, 9-bit windows; both offers",
        arguments: [
            ("deflate-echo", DeflateOffer.noContextTakeover, "server_no_context_takeover"),
            ("deflate-echo", DeflateOffer(), "server_max_window_bits=12"),
            ("deflate-nct", DeflateOffer(), "server_no_context_takeover"),
            ("deflate-small", DeflateOffer.noContextTakeover, "server_max_window_bits=9"),
            ("deflate-small", DeflateOffer(), "client_max_window_bits=9"),
        ] as [(String, DeflateOffer, String)])
    func echo(mode: String, offer: DeflateOffer, agreed: String) async throws {
        let peer = try Peer(mode)
        let texts = [feed(1 << 10), feed(64 << 10), "", "héllo 𝄞", feed(300 << 10)]
        let options = compressing(offer)
        try await onLoop {
            var negotiated: DeflateParameters?
            var sent = 0
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options) { client, event in
                switch event {
                case .opened:
                    negotiated = client.negotiatedCompression
                    try? client.send(text: texts[0])
                case .text:
                    sent += 1
                    if sent < texts.count { try? client.send(text: texts[sent]) } else { client.close() }
                default: break
                }
            }
            #expect(negotiated?.description.contains(agreed) == true, "\(String(describing: negotiated))")
            #expect(events.dropFirst().prefix(texts.count) == texts.map { .text($0) }[...])
            #expect(closedReport(events)?.code == .normalClosure)
        }
        #expect(peer.waitForOutput { $0.contains("EXT PerMessageDeflate") })
    }

    @Test("a decompression bomb (1 GiB of zeros in about 1 MiB) is a 1009 at max_message_size, not a gigabyte")
    func bomb() async throws {
        let peer = try Peer("deflate-bomb", "1024")
        var options = compressing()
        options.connection.maxMessageSize = 4 << 20
        let before = residentKiB()
        try await onLoop {
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options)
            #expect(events.first == .opened)
            let report = closedReport(events)
            #expect(report?.code == .messageTooBig, "\(String(describing: report))")
        }
        #expect(peer.waitForOutput { $0.contains("SENT") })
        // What was inflated stayed near the limit (4 MiB), far from 1 GiB.
        #expect(residentKiB() - before < 64 << 10)
    }

    @Test("a server without permessage-deflate: the offer is declined and the connection runs uncompressed")
    func declined() async throws {
        let plain = try Peer("picows-echo")  // picows does not do permessage-deflate
        let options = compressing()
        try await onLoop {
            var negotiated: DeflateParameters? = .init(
                clientMaxWindowBits: 0, serverMaxWindowBits: 0, clientNoContextTakeover: false,
                serverNoContextTakeover: false)
            let events = await run("ws://127.0.0.1:\(plain.port)/", options: options) { client, event in
                switch event {
                case .opened:
                    negotiated = client.negotiatedCompression
                    try? client.send(text: "plain")
                case .text: client.close()
                default: break
                }
            }
            #expect(negotiated == nil)
            #expect(events.dropFirst().first == .text("plain"))
        }
    }
}

private func residentKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ")[1]) ?? 0
    }
    return 0
}
