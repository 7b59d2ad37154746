/// One entry of `security.allowed_url_hosts` (SPEC §4 step 2): a host and a
/// port, written either `host:port` or as a full `ws://` / `wss://` URL whose
/// port is explicit or implied by the scheme. Entries without a port are
/// rejected: the reference system is ambiguous about what they mean.
public struct AllowedHost: Hashable, Sendable, CustomStringConvertible {
    /// Lower-cased host name or IP address literal (IPv6 without brackets).
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host.lowercased()
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Why an entry was refused; the schema turns this into a config message.
    public enum ParseError: Error, Equatable, Sendable {
        case empty
        case missingPort
        case badPort(String)
        case badHost(String)
        case unsupportedScheme(String)
    }

    /// Parses `host:port`, `[v6]:port`, `ws://host[:port][/path]` or `wss://…`.
    public static func parse(_ text: String) -> Result<AllowedHost, ParseError> {
        var rest = Substring(text)
        guard !rest.isEmpty else { return .failure(.empty) }
        var defaultPort: UInt16?
        if let schemeEnd = rest.range(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            switch scheme {
            case "ws": defaultPort = 80
            case "wss": defaultPort = 443
            default: return .failure(.unsupportedScheme(String(scheme)))
            }
            rest = rest[schemeEnd.upperBound...]
            if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
                rest = rest[..<slash]
            }
            if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        }
        let hostPart: Substring
        var portPart: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return .failure(.badHost(String(rest))) }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                portPart = after.dropFirst()
            } else if !after.isEmpty {
                return .failure(.badHost(String(rest)))
            }
        } else if let colon = rest.lastIndex(of: ":") {
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
            if hostPart.contains(":") { return .failure(.badHost(String(rest))) }
        } else {
            hostPart = rest
        }
        guard !hostPart.isEmpty, hostPart.allSatisfy(isHostCharacter) else {
            return .failure(.badHost(String(hostPart)))
        }
        let port: UInt16
        if let portPart {
            guard let value = UInt16(portPart), value > 0 else { return .failure(.badPort(String(portPart))) }
            port = value
        } else if let defaultPort {
            port = defaultPort
        } else {
            return .failure(.missingPort)
        }
        return .success(AllowedHost(host: String(hostPart), port: port))
    }

    private static func isHostCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "." || c == ":" || c == "_")
    }
}
