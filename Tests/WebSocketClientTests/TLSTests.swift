import EventLoop
import Foundation
import Glibc
import TLS
import TestSupport
import Testing
import WebSocketClient
import WebSocketProtocol

/// A throw-away PKI made at test time by `Tests/peers/make_certs.py`.
final class TestPKI: @unchecked Sendable {
    let directory: String

    init() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("wshostd-pki-\(UUID().uuidString.prefix(8))")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let python = Peer.packageRoot.appendingPathComponent(".venv/bin/python")
        let script = Peer.packageRoot.appendingPathComponent("Tests/peers/make_certs.py").path
        let child = ChildProcess(executable: python, [script, directory])
        try child.start()
        guard child.wait() == 0 else { throw Peer.Failure.didNotStart(child.standardError) }
    }

    func path(_ name: String) -> String { "\(directory)/\(name)" }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

/// What a client script saw, read after the run.
@LoopActor
final class Seen {
    var value: Bool?
}

/// `openssl s_server` with a given certificate on a free loopback port.
final class OpenSSLServer: @unchecked Sendable {
    let port: UInt16
    private let child: ChildProcess

    init(cert: String, key: String) throws {
        port = try Listener().port
        child = ChildProcess(
            executable: URL(fileURLWithPath: "/usr/bin/openssl"),
            ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-naccept", "1", "-www"])
        try child.start()
        guard child.waitForStandardOutput(timeout: .seconds(10), { $0.contains("ACCEPT") }) else {
            throw Peer.Failure.didNotStart(child.standardOutput + child.standardError)
        }
    }

    deinit {
        child.signal(SIGKILL)
        child.wait(timeout: .seconds(5))
    }
}

@Suite("wss: TLS 1.2+ with the system OpenSSL, SNI and hostname verification (SPEC §6)", .serialized)
struct TLSTests {
    @LoopActor
    static func options(caFile: String?) throws -> WebSocketClient.Options {
        var options = WebSocketClient.Options()
        options.tls = try TLSContext(caFile: caFile)
        options.handshakeTimeout = .seconds(5)
        return options
    }

    @Test("echo over wss through python-websockets, by host name and by IP address")
    func echo() async throws {
        let pki = try TestPKI()
        let peer = try Peer("wss-echo", pki.path("good.pem"), pki.path("good.key"))
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let payload = [UInt8](repeating: 0x5A, count: 300_000)  // many TLS records
            for host in ["localhost", "127.0.0.1"] {
                let events = await run(
                    "wss://\(host):\(peer.port)/secure", options: try Self.options(caFile: pki.path("ca.pem"))
                ) {
                    client, event in
                    switch event {
                    case .opened: try? client.send(text: "over TLS")
                    case .text: try? client.send(binary: payload)
                    case .binary: client.close()
                    case .closed: break
                    }
                }
                #expect(events.prefix(2) == [.opened, .text("over TLS")], "\(host)")
                #expect(events.dropFirst(2).first == .binary(payload))
                #expect(closedReport(events) == CloseReport(initiator: .client, code: .normalClosure, reason: ""))
            }
        }
    }

    @Test(
        "a server's session is resumed by the next connection to it, per host name and port, per context",
        arguments: ["wss-echo", "wss-echo-tls12"])
    func resumption(server: String) async throws {
        let pki = try TestPKI()
        let peer = try Peer(server, pki.path("good.pem"), pki.path("good.key"))
        try await onLoop {
            let context = try TLSContext(caFile: pki.path("ca.pem"))
            var options = WebSocketClient.Options()
            options.tls = context
            options.handshakeTimeout = .seconds(5)
            /// Connects, echoes one message (so the server's tickets are read), closes:
            /// whether the handshake was resumed.
            @LoopActor func connect(_ host: String, _ options: WebSocketClient.Options) async -> Bool? {
                let resumed = Seen()
                let events = await run("wss://\(host):\(peer.port)/", options: options) { client, event in
                    switch event {
                    case .opened:
                        resumed.value = client.resumedTLSSession
                        try? client.send(text: "x")
                    case .text: client.close()
                    default: break
                    }
                }
                #expect(events.prefix(2) == [.opened, .text("x")], "\(host)")
                return resumed.value
            }
            #expect(await connect("localhost", options) == false)
            let tickets = context.resumableSessions  // what the server gave (TLS 1.3, OpenSSL: 2 tickets)
            #expect(tickets >= 1)
            #expect(await connect("localhost", options) == true)
            // TLS 1.3: the ticket used is gone (never offered twice), and the one ticket
            // a server running OpenSSL gives after resuming is kept. TLS 1.2: the one
            // session stays, and a resumed handshake makes no new one.
            #expect(context.resumableSessions == tickets)
            #expect(await connect("localhost", options) == true)
            #expect(await connect("localhost", options) == true)
            #expect(await connect("127.0.0.1", options) == false)  // another name: its own sessions
            #expect(await connect("127.0.0.1", options) == true)
            // A new context (as a reload with another CA file makes) resumes nothing of the old one's.
            var fresh = options
            fresh.tls = try TLSContext(caFile: pki.path("ca.pem"))
            #expect(await connect("localhost", fresh) == false)
        }
    }

    @Test(
        "certificate failures are refused with the verifier's reason",
        arguments: [
            ("expired", "localhost", true, "certificate has expired"),
            ("wronghost", "localhost", true, "hostname mismatch (the certificate is for wrong.example)"),
            ("unknownca", "localhost", true, "unable to get local issuer certificate"),
            ("good", "localhost", false, "unable to get local issuer certificate"),
            ("wronghost", "127.0.0.1", true, "IP address mismatch (the certificate is for wrong.example)"),
        ])
    func refused(cert: String, host: String, trustTestCA: Bool, reason: String) async throws {
        let pki = try TestPKI()
        let server = try OpenSSLServer(cert: pki.path("\(cert).pem"), key: pki.path("\(cert).key"))
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let options = try Self.options(caFile: trustTestCA ? pki.path("ca.pem") : nil)
            let events = await run("wss://\(host):\(server.port)/", options: options)
            #expect(events.count == 1)
            #expect(closedReport(events)?.reason == "TLS certificate verification failed: \(reason)")
        }
    }

    @Test("a missing CA file is a clear setup error")
    func missingCAFile() {
        #expect(throws: TLSContext.Failure.self) { try TLSContext(caFile: "/nonexistent/ca.pem") }
        do {
            _ = try TLSContext(caFile: "/nonexistent/ca.pem")
        } catch {
            #expect(error.description.hasPrefix("cannot load CA file /nonexistent/ca.pem: "))
        }
    }
}
