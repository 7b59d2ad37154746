import WebSocketProtocol

/// A block of addresses, `10.0.0.0/8` or `fe80::/10`.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let host = parts[0].hasPrefix("[") && parts[0].hasSuffix("]") ? parts[0].dropFirst().dropLast() : parts[0]
        // Strictly dotted-quad IPv4 or IPv6 text here: a network is written out.
        guard let address = host.contains(":") ? IPAddress.parseIPv6(host) : IPAddress.parseDottedQuad(host) else {
            return nil
        }
        let bits = address.bytes.count * 8
        var length = bits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...bits).contains(value), parts[1].allSatisfy(\.isNumber) else {
                return nil
            }
            length = value
        }
        self.init(address: address, prefixLength: length)
    }

    public init(address: IPAddress, prefixLength: Int) {
        // `contains` reads this many bits (the parser checks the range).
        precondition((0...address.bytes.count * 8).contains(prefixLength), "prefix length out of range")
        // Host bits are cleared: 10.1.2.3/8 is 10.0.0.0/8.
        var bytes = address.bytes
        for index in bytes.indices {
            let kept = max(0, min(8, prefixLength - index * 8))
            bytes[index] &= kept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - kept))
        }
        self.address = IPAddress(bytes: bytes)!
        self.prefixLength = prefixLength
    }

    /// The candidate's prefix bits equal the network's (whose host bits are
    /// clear); compared byte by byte, without making a network of the
    /// candidate (an allocation per network judged, a dozen per connection).
    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        var index = 0
        while remaining > 0 {
            let kept = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - kept))
            if candidate.bytes[index] & mask != address.bytes[index] { return false }
            remaining -= kept
            index += 1
        }
        return true
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// Where records may connect, judged on the resolved address that is about
/// to be connected (issue #12: consent and the allow-list compare names; the
/// address is what is reached). Pure.
///
/// In order:
/// 1. Never: unspecified, multicast and broadcast addresses (no server is there).
/// 2. `denied` (the operator's `denied_networks`): never, whatever else says.
/// 3. `allowed` (`allowed_networks`): allowed.
/// 4. The built-in denied blocks (loopback, private, shared, link-local and
///    so the cloud metadata address, unique-local, …): denied, unless the
///    destination is one the operator named in `allowed_url_hosts` (`trusted`).
/// 5. Anything else (the public Internet): allowed.
///
/// IPv4-mapped and -compatible, NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`)
/// IPv6 addresses are judged as the IPv4 address inside them.
public struct NetworkPolicy: Equatable, Sendable {
    public var allowed: [IPNetwork]
    public var denied: [IPNetwork]

    public init(allowed: [IPNetwork] = [], denied: [IPNetwork] = []) {
        self.allowed = allowed
        self.denied = denied
    }

    /// Blocks no WebSocket server can be at.
    public static let never: [(IPNetwork, String)] = [
        ("0.0.0.0/8", "unspecified"), ("::/128", "unspecified"), ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"), ("ff00::/8", "multicast"),
    ].map { (IPNetwork($0.0)!, $0.1) }

    /// Blocks a server daemon should not reach on a world user's say-so:
    /// its own host, the local networks, link-local (cloud metadata at
    /// 169.254.169.254) and other special-purpose blocks (RFC 6890).
    public static let builtInDenied: [(IPNetwork, String)] = [
        ("127.0.0.0/8", "loopback"), ("::1/128", "loopback"), ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"), ("192.168.0.0/16", "private"), ("100.64.0.0/10", "shared address space"),
        ("169.254.0.0/16", "link-local (cloud metadata)"), ("fe80::/10", "link-local"),
        ("fc00::/7", "unique local"), ("192.0.0.0/24", "IETF protocol assignments"),
        ("198.18.0.0/15", "benchmarking"), ("240.0.0.0/4", "reserved"), ("64:ff9b:1::/48", "local-use NAT64"),
    ].map { (IPNetwork($0.0)!, $0.1) }

    /// Nil when `address` may be connected; else why not, naming the rule.
    public func refusal(_ address: IPAddress, trusted: Bool) -> String? {
        let judged = address.embeddedIPv4 ?? address
        if let (network, what) = Self.never.first(where: { $0.0.contains(judged) }) {
            return "\(address) is \(what) (\(network)): never connected"
        }
        if let network = denied.first(where: { $0.contains(judged) }) {
            return "\(address) is in \(network) (security.denied_networks)"
        }
        if allowed.contains(where: { $0.contains(judged) }) { return nil }
        if !trusted, let (network, what) = Self.builtInDenied.first(where: { $0.0.contains(judged) }) {
            return
                "\(address) is \(what) (\(network)), denied by default; allow it with security.allowed_networks or name the destination in security.allowed_url_hosts"
        }
        return nil
    }
}
