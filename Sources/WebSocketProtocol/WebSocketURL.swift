/// A `ws://` or `wss://` target (RFC 6455 §3): scheme, host, port and the
/// request target. Userinfo is dropped (never sent); a fragment is dropped
/// (meaningless for WebSocket URIs).
public struct WebSocketURL: Hashable, Sendable, CustomStringConvertible {
    public var secure: Bool
    /// The canonical host (`HostPort.canonical`): a lower-cased name without
    /// a trailing dot, a dotted-quad IPv4 address, or RFC 5952 IPv6 text
    /// (without brackets). One spelling per address, so that consent and the
    /// allow-list see one key.
    public var host: String
    public var port: UInt16
    /// Path and query, `"/"` when the URL has no path.
    public var resource: String

    public var defaultPort: UInt16 { secure ? 443 : 80 }

    /// The `Host` header (RFC 6455 §4.1 item 4): the port only when not the default.
    public var hostHeader: String {
        port == defaultPort ? HostPort.bracketed(host) : HostPort.text(host: host, port: port)
    }

    /// The URL without userinfo, as it is logged and shown.
    public var description: String {
        "\(secure ? "wss" : "ws")://\(HostPort.bracketed(host))\(port == defaultPort ? "" : ":\(port)")\(resource)"
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case notWebSocketScheme
        case missingHost
        case invalidHost(String)
        case invalidPort(String)
        case invalidCharacter

        public var description: String {
            switch self {
            case .notWebSocketScheme: return "the URL must start with ws:// or wss://"
            case .missingHost: return "the URL has no host"
            case .invalidHost(let host): return "\"\(host)\" is not a host name or IP address"
            case .invalidPort(let port): return "\"\(port)\" is not a port (1-65535)"
            case .invalidCharacter: return "the URL contains spaces or control characters"
            }
        }
    }

    public init(secure: Bool, host: String, port: UInt16? = nil, resource: String = "/") {
        self.secure = secure
        self.host = HostPort.canonical(host)
        self.port = port ?? (secure ? 443 : 80)
        self.resource = resource
    }

    public static func parse(_ text: String) -> Result<WebSocketURL, ParseError> {
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
            return .failure(.invalidCharacter)
        }
        var rest = Substring(text)
        let secure: Bool
        if rest.lowercased().hasPrefix("wss://") {
            secure = true
            rest = rest.dropFirst(6)
        } else if rest.lowercased().hasPrefix("ws://") {
            secure = false
            rest = rest.dropFirst(5)
        } else {
            return .failure(.notWebSocketScheme)
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var resource = String(rest[authorityEnd...])
        if resource.isEmpty {
            resource = "/"
        } else if resource.hasPrefix("?") {
            resource = "/" + resource
        }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        switch HostPort.split(authority) {
        case .failure(let error): return .failure(error)
        case .success(let (host, portText)):
            guard !host.isEmpty else { return .failure(.missingHost) }
            var port: UInt16?
            if let portText {
                guard let value = UInt16(portText), value > 0 else { return .failure(.invalidPort(String(portText))) }
                port = value
            }
            return .success(WebSocketURL(secure: secure, host: String(host), port: port, resource: resource))
        }
    }
}

/// Splitting `host[:port]` and `[v6][:port]`, shared by URL and allow-list parsing.
public enum HostPort {
    /// A host as an authority writes it: IPv6 text in brackets, any other host as it is.
    public static func bracketed(_ host: String) -> String {
        host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host
    }

    /// `host:port`, IPv6 text in brackets: how consent keys, allow-list entries
    /// and attempt paces name a destination.
    public static func text(host: String, port: UInt16) -> String { "\(bracketed(host)):\(port)" }

    public static func split(_ authority: Substring) -> Result<
        (host: Substring, port: Substring?), WebSocketURL.ParseError
    > {
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return .failure(.invalidHost(String(authority))) }
            let host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            guard host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }), host.contains(":") else {
                return .failure(.invalidHost(String(host)))
            }
            if after.isEmpty { return .success((host, nil)) }
            guard after.hasPrefix(":") else { return .failure(.invalidHost(String(authority))) }
            return .success((host, after.dropFirst()))
        }
        var host = authority
        var port: Substring?
        if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            port = authority[authority.index(after: colon)...]
        }
        guard host.allSatisfy(isHostCharacter), !host.contains(":") else { return .failure(.invalidHost(String(host))) }
        return .success((host, port))
    }

    /// One spelling per host: IPv4 in any form the resolver accepts becomes
    /// its dotted quad (`127.1`, `2130706433`, `0x7f000001` → `127.0.0.1`),
    /// IPv6 its RFC 5952 text (an IPv4-mapped address its IPv4 text), a name
    /// is lower-cased without its trailing dot (`localhost.` → `localhost`).
    /// Names are ASCII only (`isHostCharacter`): an internationalized name is
    /// written in its `xn--` form, so the prompt shows what is connected.
    /// Canonical again is the same (`canonical(canonical(h)) == canonical(h)`):
    /// trailing dots go before the IPv4 forms are read.
    public static func canonical(_ host: String) -> String {
        let lower = host.lowercased()
        if lower.contains(":") { return IPAddress.parseIPv6(Substring(lower))?.description ?? lower }
        var name = Substring(lower)
        while name.count > 1 && name.hasSuffix(".") { name = name.dropLast() }
        if let v4 = IPAddress.parseIPv4(name) { return v4.description }
        return String(name)
    }

    static func isHostCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "." || c == "_")
    }
}
