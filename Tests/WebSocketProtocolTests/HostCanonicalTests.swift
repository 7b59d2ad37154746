import Testing

@testable import WebSocketProtocol

/// Issue #12: every spelling of one address was a different consent key.
@Suite("Hosts: one canonical spelling per address")
struct HostCanonicalTests {
    @Test(
        "every spelling of 127.0.0.1 (and of ::1, and names) is one key",
        arguments: [
            ("ws://127.0.0.1/", "127.0.0.1"), ("ws://127.1/", "127.0.0.1"), ("ws://2130706433/", "127.0.0.1"),
            ("ws://0x7f000001/", "127.0.0.1"), ("ws://0177.0.0.1/", "127.0.0.1"), ("ws://127.0.0.1./", "127.0.0.1"),
            ("ws://[::ffff:127.0.0.1]/", "127.0.0.1"), ("ws://[::FFFF:7f00:1]/", "127.0.0.1"),
            ("ws://LocalHost./", "localhost"), ("ws://[0:0:0:0:0:0:0:1]/", "::1"), ("ws://[::1]/", "::1"),
            ("ws://[2001:DB8:0:0:1:0:0:1]/", "2001:db8::1:0:0:1"), ("ws://[fe80::0:1]/", "fe80::1"),
            ("ws://10.1/", "10.0.0.1"), ("ws://feed.example/", "feed.example"), ("ws://1.2.3.4.5/", "1.2.3.4.5"),
            ("ws://feed.example../", "feed.example"),
        ])
    func canonical(url: String, host: String) throws {
        let parsed = try WebSocketURL.parse(url).get()
        #expect(parsed.host == host)
        #expect(try AllowedHost.parse(url).get().host == host)
    }

    @Test(
        "canonical again is the same: a URL's text parses back to the same URL",
        arguments: ["1..", "127.1..", "LocalHost.", "0x7f000001.", "::FFFF:7f00:1", "feed.example..", ".", "10.1"])
    func idempotent(host: String) throws {
        let once = HostPort.canonical(host)
        #expect(HostPort.canonical(once) == once)
        if !host.contains(":") && host != "." {
            let url = try WebSocketURL.parse("ws://\(host)/x").get()
            #expect(try WebSocketURL.parse(url.description).get() == url)
        }
    }

    @Test("out-of-range and malformed numbers are not addresses")
    func notAddresses() {
        #expect(IPAddress.parseIPv4("256.0.0.1") == nil)
        #expect(IPAddress.parseIPv4("1.2.3.4.5") == nil)
        #expect(IPAddress.parseIPv4("4294967296") == nil)
        #expect(IPAddress.parseIPv4("08.0.0.1") == nil)
        #expect(IPAddress.parseIPv4("+1.2.3.4") == nil)
        #expect(IPAddress.parseIPv4("1..2") == nil)
        #expect(IPAddress.parseIPv6("1:2:3:4:5:6:7:8:9") == nil)
        #expect(IPAddress.parseIPv6("::1::") == nil)
        #expect(IPAddress.parseIPv6("12345::") == nil)
        #expect(IPAddress.parseIPv6("::+1") == nil)
        #expect(IPAddress.parseIPv6("::ffff:010.0.0.1") == nil)
        #expect(IPAddress.parseIPv4("1.2.3.4")?.description == "1.2.3.4")
        #expect(IPAddress.parseIPv6("::")?.description == "::")
        #expect(IPAddress.parseIPv6("1::")?.description == "1::")
        #expect(IPAddress.parseIPv6("::1.2.3.4")?.embeddedIPv4?.description == "1.2.3.4")
    }

    @Test("the Host header and the URL text use the canonical host")
    func headers() throws {
        let url = try WebSocketURL.parse("ws://[::ffff:7f00:1]:8080/x").get()
        #expect(url.hostHeader == "127.0.0.1:8080")
        #expect(url.description == "ws://127.0.0.1:8080/x")
    }
}
