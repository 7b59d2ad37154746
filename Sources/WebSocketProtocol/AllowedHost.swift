/// One entry of `security.allowed_url_hosts` (SPEC §4 step 2): a host and a
/// port, written either `host:port` or as a full `ws://` / `wss://` URL whose
/// port is explicit or implied by the scheme. Entries without a port are
/// rejected: the reference system is ambiguous about what they mean.
public struct AllowedHost: Hashable, Sendable, CustomStringConvertible {
    /// The canonical host (`HostPort.canonical`).
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = HostPort.canonical(host)
        self.port = port
    }

    public var description: String { HostPort.text(host: host, port: port) }

    /// Why an entry was refused; the schema turns this into a config message.
    public enum ParseError: Error, Equatable, Sendable {
        case empty
        case missingPort
        case badPort(String)
        case badHost(String)
        case unsupportedScheme(String)
    }

    /// Parses `host:port`, `[v6]:port`, `ws://host[:port][/path]` or `wss://…`
    /// with the same host and URL rules as connection targets.
    public static func parse(_ text: String) -> Result<AllowedHost, ParseError> {
        guard !text.isEmpty else { return .failure(.empty) }
        if let schemeEnd = text.utf8.firstRange(of: "://".utf8) {
            let scheme = String(text[..<schemeEnd.lowerBound]).lowercased()
            guard scheme == "ws" || scheme == "wss" else { return .failure(.unsupportedScheme(scheme)) }
            switch WebSocketURL.parse(text) {
            case .success(let url): return .success(AllowedHost(host: url.host, port: url.port))
            case .failure(.invalidPort(let port)): return .failure(.badPort(port))
            case .failure(.invalidHost(let host)): return .failure(.badHost(host))
            case .failure: return .failure(.badHost(String(text[schemeEnd.upperBound...])))
            }
        }
        switch HostPort.split(Substring(text)) {
        case .failure(.invalidHost(let host)), .failure(.invalidPort(let host)):
            return .failure(.badHost(host))
        case .failure:
            return .failure(.badHost(text))
        case .success(let (host, portText)):
            guard !host.isEmpty else { return .failure(.badHost("")) }
            guard let portText else { return .failure(.missingPort) }
            guard let port = UInt16(portText), port > 0 else { return .failure(.badPort(String(portText))) }
            return .success(AllowedHost(host: String(host), port: port))
        }
    }
}
