import Foundation
import Glibc
import JSONValue
import TestSupport
import Testing

@testable import Daemon

@Suite("metrics: the HTTP endpoint's answers, and the counters of a running daemon")
struct MetricsTests {
    private func respond(_ text: String) -> MetricsHTTP.Response? {
        MetricsHTTP.respond(to: Array(text.utf8)) { Array("m 1\n".utf8) }
    }

    @Test("GET /metrics is served; other paths, methods and malformed or endless heads are refused")
    func httpAnswers() {
        let ok = respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(ok?.status == 200 && ok?.body == Array("m 1\n".utf8))
        #expect(ok?.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(respond("GET /metrics?x=1 HTTP/1.0\n\n")?.status == 200)
        let head = respond("HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(
            head?.status == 200
                && head.map { String(decoding: $0.bytes(), as: UTF8.self) }?.hasSuffix("\r\n\r\n") == true)
        #expect(respond("GET /metrics HTTP/1.1\r\nHost: x\r\n") == nil)  // not complete yet
        #expect(respond("GET / HTTP/1.1\r\n\r\n")?.status == 404)
        #expect(respond("POST /metrics HTTP/1.1\r\n\r\n")?.status == 405)
        #expect(respond("GET /metrics\r\n\r\n")?.status == 400)
        #expect(respond("hello there\r\n\r\n")?.status == 400)
        #expect(respond("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000))?.status == 431)
        let bytes = String(decoding: ok!.bytes(), as: UTF8.self)
        #expect(bytes.hasPrefix("HTTP/1.1 200 OK\r\n") && bytes.contains("Content-Length: 4\r\n"))
        #expect(bytes.contains("Connection: close\r\n") && bytes.hasSuffix("\r\n\r\nm 1\n"))
    }

    @Test("a running daemon counts attempts, failures by reason, messages and bytes, consent; served over HTTP")
    func runningDaemon() throws {
        let peer = try Peer("echo")
        let daemon = try ControlledDaemon(
            """
            [metrics]
            listen = "127.0.0.1:0"
            [security]
            allowed_url_hosts = ["127.0.0.1:\(peer.port)", "127.0.0.1:9"]
            [[users]]
            id = "host"
            kind = "headless"
            [[sessions]]
            id = "s"
            host = "host"
            [[sessions.objects]]
            id = "echo"
            url = "ws://127.0.0.1:\(peer.port)/"
            [[sessions.objects]]
            id = "refused"
            url = "ws://127.0.0.1:9/"
            connect_retry_interval = "1h"
            [[sessions.objects]]
            id = "unasked"
            url = "ws://127.0.0.1:1/"
            """)
        // The listener is logged after the control socket: wait for its line.
        #expect(daemon.process.waitForStandardError { $0.contains("metrics.listen=http://") })
        let port = try #require(Self.boundPort(daemon.process.standardError))
        _ = try daemon.waitForRecord("s", "echo") { $0["isConnected"]?.boolValue == true }
        #expect(try daemon.ctl(["ws", "send", "s", "echo", "--text", "hello"]).status == 0)
        let binary = try TemporaryFile("abc")
        #expect(try daemon.ctl(["ws", "send", "s", "echo", "--binary-file", binary.path]).status == 0)

        // The echoes come back: 2 messages of 5 + 3 bytes each way.
        var text = ""
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            text = try Self.get(port: port, path: "/metrics")
            if Self.value(text, "wshostd_messages_received_total") == 2 { break }
            usleep(50_000)
        } while ContinuousClock.now < deadline
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text.prefix(200))")
        #expect(Self.value(text, "wshostd_messages_received_total") == 2)
        #expect(Self.value(text, "wshostd_messages_sent_total") == 2)
        #expect(Self.value(text, "wshostd_received_bytes_total") == 8)
        #expect(Self.value(text, "wshostd_sent_bytes_total") == 8)
        #expect(Self.value(text, "wshostd_connection_attempts_total") == 2)
        #expect(Self.value(text, "wshostd_connections_opened_total") == 1)
        #expect(Self.value(text, #"wshostd_connection_failures_total{reason="connect"}"#) == 1)
        #expect(Self.value(text, #"wshostd_connection_failures_total{reason="tls"}"#) == 0)
        #expect(Self.value(text, #"wshostd_records{state="open"}"#) == 1)
        #expect(Self.value(text, #"wshostd_records{state="waiting-to-retry"}"#) == 1)
        #expect(Self.value(text, #"wshostd_records{state="denied"}"#) == 1)
        #expect(Self.value(text, #"wshostd_consent_decisions_total{source="allow_list",verdict="allowed"}"#) == 2)
        #expect(Self.value(text, #"wshostd_consent_decisions_total{source="headless",verdict="denied"}"#) == 1)
        #expect(Self.value(text, "wshostd_sockets") == 1)
        #expect((Self.value(text, "wshostd_state_store_write_seconds_count") ?? 0) >= 1)
        #expect((Self.value(text, "process_resident_memory_bytes") ?? 0) > 1_000_000)

        // The same through the control socket; a counter never goes back.
        let ctl = try daemon.ctl(["metrics"])
        #expect(ctl.status == 0 && Self.value(ctl.stdout, "wshostd_messages_received_total") == 2, "\(ctl.stderr)")
        #expect(Self.value(ctl.stdout, "wshostd_control_clients") == 1)
        #expect(try Self.get(port: port, path: "/other").hasPrefix("HTTP/1.1 404 "))
        #expect(daemon.stop() == 0)
    }

    /// The port from "metrics listening … http://127.0.0.1:PORT/metrics".
    static func boundPort(_ log: String) -> UInt16? {
        guard let range = log.range(of: "metrics.listen=http://127.0.0.1:") else { return nil }
        return UInt16(log[range.upperBound...].prefix { $0.isNumber })
    }

    /// The value of the sample line that starts with `series` (name and labels).
    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// One HTTP/1.1 request over a plain socket; the whole response.
    static func get(port: UInt16, path: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { break }
            response += chunk[0..<count]
        }
        return String(decoding: response, as: UTF8.self)
    }
}
