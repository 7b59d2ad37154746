import Testing
import WebSocketProtocol

@testable import World

private func address(_ text: String) -> IPAddress {
    (text.contains(":") ? IPAddress.parseIPv6(Substring(text)) : IPAddress.parseIPv4(Substring(text)))!
}

/// Issue #12: where a record may connect is judged on the resolved address.
@Suite("NetworkPolicy: the resolved address decides")
struct NetworkPolicyTests {
    @Test(
        "denied by default, also as IPv4-mapped IPv6; the public Internet allowed",
        arguments: [
            ("127.0.0.1", "loopback"), ("127.255.1.2", "loopback"), ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.31.0.1", "private"),
            ("192.168.1.1", "private"), ("::ffff:192.168.1.1", "private"), ("169.254.169.254", "link-local"),
            ("::ffff:169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fd00::1", "unique local"),
            ("100.64.0.1", "shared"), ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"), ("255.255.255.255", "broadcast"), ("::ffff:0.0.0.0", "unspecified"),
        ])
    func deniedByDefault(text: String, what: String) {
        let refusal = NetworkPolicy().refusal(address(text), trusted: false)
        #expect(refusal?.contains(what) == true, "\(text): \(String(describing: refusal))")
    }

    @Test("NAT64 and 6to4 addresses are judged by the IPv4 address inside them")
    func embeddedIPv4() {
        #expect(NetworkPolicy().refusal(address("64:ff9b::a00:1"), trusted: false)?.contains("private") == true)
        #expect(NetworkPolicy().refusal(address("64:ff9b::a9fe:a9fe"), trusted: false)?.contains("link-local") == true)
        #expect(NetworkPolicy().refusal(address("2002:7f00:1::1"), trusted: false)?.contains("loopback") == true)
        #expect(NetworkPolicy().refusal(address("64:ff9b::5db8:d822"), trusted: false) == nil)  // 93.184.216.34
    }

    @Test("public addresses are allowed")
    func publicAllowed() {
        for text in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34", "172.32.0.1"] {
            #expect(NetworkPolicy().refusal(address(text), trusted: false) == nil, "\(text)")
        }
    }

    @Test("allowed_networks open a default-denied block; denied_networks win over everything; never is never")
    func operatorRules() {
        let policy = NetworkPolicy(
            allowed: [IPNetwork("127.0.0.0/8")!, IPNetwork("10.0.0.0/8")!, IPNetwork("224.0.0.0/4")!],
            denied: [IPNetwork("10.9.0.0/16")!, IPNetwork("93.184.216.0/24")!])
        #expect(policy.refusal(address("127.0.0.1"), trusted: false) == nil)
        #expect(policy.refusal(address("::ffff:127.0.0.1"), trusted: false) == nil)
        #expect(policy.refusal(address("10.1.1.1"), trusted: false) == nil)
        #expect(policy.refusal(address("10.9.1.1"), trusted: true)?.contains("denied_networks") == true)
        #expect(policy.refusal(address("93.184.216.34"), trusted: false)?.contains("10.9") == false)
        #expect(policy.refusal(address("93.184.216.34"), trusted: false)?.contains("93.184.216.0/24") == true)
        #expect(policy.refusal(address("224.0.0.1"), trusted: true)?.contains("never") == true)
        #expect(policy.refusal(address("::1"), trusted: false)?.contains("loopback") == true)
    }

    @Test("a destination named in allowed_url_hosts is trusted with the default-denied blocks")
    func trustedDestination() {
        #expect(NetworkPolicy().refusal(address("127.0.0.1"), trusted: true) == nil)
        #expect(NetworkPolicy().refusal(address("169.254.169.254"), trusted: true) == nil)
        #expect(NetworkPolicy().refusal(address("0.0.0.0"), trusted: true) != nil)
    }

    @Test("a network holds exactly its prefix, on and off byte boundaries, IPv4 and IPv6")
    func containsAtTheEdges() {
        let cases: [(network: String, inside: [String], outside: [String])] = [
            ("10.0.0.0/8", ["10.0.0.0", "10.255.255.255"], ["9.255.255.255", "11.0.0.0", "::ffff:10.0.0.1"]),
            ("172.16.0.0/12", ["172.16.0.0", "172.31.255.255"], ["172.15.255.255", "172.32.0.0"]),
            ("192.0.2.128/25", ["192.0.2.128", "192.0.2.255"], ["192.0.2.127", "192.0.3.128"]),
            ("198.51.100.7/32", ["198.51.100.7"], ["198.51.100.6", "198.51.100.8"]),
            ("0.0.0.0/0", ["0.0.0.0", "255.255.255.255", "93.184.216.34"], ["::1"]),
            ("fe80::/10", ["fe80::", "febf:ffff::1"], ["fe7f::1", "fec0::1", "10.0.0.1"]),
            ("2001:db8::/127", ["2001:db8::", "2001:db8::1"], ["2001:db8::2"]),
        ]
        for (text, inside, outside) in cases {
            let network = IPNetwork(text)!
            for candidate in inside { #expect(network.contains(address(candidate)), "\(candidate) in \(text)") }
            for candidate in outside { #expect(!network.contains(address(candidate)), "\(candidate) not in \(text)") }
        }
    }

    @Test("networks parse strictly; host bits are cleared")
    func parsing() {
        #expect(IPNetwork("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(IPNetwork("fe80::1/10")?.description == "fe80::/10")
        #expect(IPNetwork("[::1]")?.description == "::1/128")
        #expect(IPNetwork("192.168.0.1")?.description == "192.168.0.1/32")
        // Written out in full: 010 is not read as octal 8, as inet_pton would not either.
        for bad in [
            "10/8", "10.0.0.0/33", "::/129", "x", "10.0.0.0/-1", "10.0.0.0/8/8", "127.1/8", "", "010.0.0.0/8",
            "192.168.010.0/24", "::ffff:010.0.0.1/128", "::+1/128",
        ] {
            #expect(IPNetwork(bad) == nil, "\(bad)")
        }
    }
}
