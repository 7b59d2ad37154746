import Testing
import WebSocketProtocol

@testable import Config

@Suite("Units: durations and sizes as the config file writes them")
struct UnitsTests {
    @Test(
        "durations parse to exact values",
        arguments: [
            ("250ms", Duration.milliseconds(250)), ("60s", .seconds(60)), ("1m30s", .seconds(90)),
            ("2h", .seconds(7200)), ("0s", .zero), ("10us", .microseconds(10)), ("5ns", .nanoseconds(5)),
            ("1h1m1s1ms", .milliseconds(3_661_001)),
        ])
    func durations(text: String, expected: Duration) {
        #expect(Units.duration(text) == expected)
    }

    @Test(
        "malformed durations are refused",
        arguments: ["", "60", "s", "1.5s", "-1s", " 1s", "1s ", "1 s", "1sec", "1S", "ms", "99999999999999h"])
    func badDurations(text: String) {
        #expect(Units.duration(text) == nil)
    }

    @Test(
        "sizes parse to bytes",
        arguments: [("16MiB", Int64(16 << 20)), ("64KiB", 64 << 10), ("1GiB", 1 << 30), ("512B", 512), ("0B", 0)])
    func sizes(text: String, expected: Int64) {
        #expect(Units.size(text) == expected)
    }

    @Test("malformed sizes are refused", arguments: ["", "16", "16MB", "16mib", "1.5MiB", "-1KiB", "MiB", "16 MiB"])
    func badSizes(text: String) {
        #expect(Units.size(text) == nil)
    }

    @Test("formatting is the inverse of parsing")
    func roundTrip() {
        for text in ["250ms", "60s", "90s", "2h", "0s", "10us", "5ns", "3m"] {
            let value = Units.duration(text)!
            #expect(Units.duration(Units.format(value)) == value)
        }
        #expect(Units.format(.seconds(90)) == "90s")
        #expect(Units.format(.seconds(120)) == "2m")
        #expect(Units.format(bytes: 16 << 20) == "16MiB")
        #expect(Units.format(bytes: 1000) == "1000B")
    }
}

@Suite("AllowedHost: entries of security.allowed_url_hosts (SPEC §4)")
struct AllowedHostTests {
    @Test(
        "accepted spellings",
        arguments: [
            ("localhost:8080", "localhost", UInt16(8080)), ("Example.COM:443", "example.com", 443),
            ("ws://example.com", "example.com", 80), ("wss://example.com", "example.com", 443),
            ("wss://user:pw@example.com:8443/path?q=1", "example.com", 8443), ("[::1]:9000", "::1", 9000),
            ("ws://[::1]:9001/x", "::1", 9001), ("127.0.0.1:1", "127.0.0.1", 1),
        ])
    func accepted(text: String, host: String, port: UInt16) throws {
        #expect(try AllowedHost.parse(text).get() == AllowedHost(host: host, port: port))
    }

    @Test(
        "refused spellings",
        arguments: [
            ("example.com", AllowedHost.ParseError.missingPort), ("", .empty), ("example.com:0", .badPort("0")),
            ("example.com:70000", .badPort("70000")), ("http://example.com", .unsupportedScheme("http")),
            ("exa mple.com:80", .badHost("exa mple.com")), ("::1:80", .badHost("::1")), ("[::1]", .missingPort),
        ])
    func refused(text: String, error: AllowedHost.ParseError) {
        #expect(throws: error) { try AllowedHost.parse(text).get() }
    }
}
