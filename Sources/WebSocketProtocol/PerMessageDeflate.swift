/// One element of a `Sec-WebSocket-Extensions` list (RFC 6455 §9.1): an
/// extension's name and its parameters, in order.
public struct ExtensionElement: Equatable, Sendable {
    public struct Parameter: Equatable, Sendable {
        public var name: String
        /// nil: the parameter has no value; a quoted value is unquoted.
        public var value: String?

        public init(_ name: String, _ value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    public var name: String
    public var parameters: [Parameter]

    public init(_ name: String, _ parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }
}

/// The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1, with the list rule of
/// RFC 9110 §5.6.1: empty elements and optional whitespace around separators):
///
///     extension-list = 1#extension
///     extension = extension-token *( ";" extension-param )
///     extension-param = token [ "=" (token | quoted-string) ]
///
/// A quoted value must be a token once unquoted (§9.1).
public enum ExtensionHeader {
    /// Every element of every field value, in order; nil when a value breaks the grammar.
    public static func parse(_ fieldValues: [String]) -> [ExtensionElement]? {
        var elements: [ExtensionElement] = []
        for value in fieldValues {
            var reader = Reader(bytes: Array(value.utf8))
            while true {
                reader.skipWhitespace()
                guard let byte = reader.peek else { break }
                if byte == UInt8(ascii: ",") {  // an empty element
                    reader.index += 1
                    continue
                }
                guard let name = reader.token() else { return nil }
                var element = ExtensionElement(name)
                reader.skipWhitespace()
                while reader.peek == UInt8(ascii: ";") {
                    reader.index += 1
                    reader.skipWhitespace()
                    guard let parameter = reader.token() else { return nil }
                    reader.skipWhitespace()
                    var parameterValue: String?
                    if reader.peek == UInt8(ascii: "=") {
                        reader.index += 1
                        reader.skipWhitespace()
                        guard let value = reader.peek == UInt8(ascii: "\"") ? reader.quotedToken() : reader.token()
                        else { return nil }
                        parameterValue = value
                        reader.skipWhitespace()
                    }
                    element.parameters.append(.init(parameter, parameterValue))
                }
                elements.append(element)
                guard let next = reader.peek else { break }
                guard next == UInt8(ascii: ",") else { return nil }
                reader.index += 1
            }
        }
        return elements
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
        }

        /// One or more token characters (RFC 9110 §5.6.2).
        mutating func token() -> String? {
            let start = index
            while let byte = peek, Self.isTokenByte(byte) { index += 1 }
            return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
        }

        /// A quoted-string whose content, unescaped, is a token.
        mutating func quotedToken() -> String? {
            index += 1  // the opening quote
            var content: [UInt8] = []
            while let byte = peek {
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard !content.isEmpty, content.allSatisfy(Self.isTokenByte) else { return nil }
                    return String(decoding: content, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek else { return nil }
                    index += 1
                    content.append(escaped)
                default:
                    content.append(byte)
                }
            }
            return nil  // unterminated
        }

        static func isTokenByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
            }
        }
    }
}

/// What a client offers for permessage-deflate (RFC 7692 §7.1), and the
/// client's side of the negotiation: which responses it accepts.
public struct DeflateOffer: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// `client_max_window_bits`: nil, not offered; 15, offered without a value
    /// (the server may choose any window); 8...14, "=N".
    public var clientMaxWindowBits: Int?
    /// `server_max_window_bits=N` (8...15), or nil: not offered.
    public var serverMaxWindowBits: Int?
    public var clientNoContextTakeover: Bool
    public var serverNoContextTakeover: Bool

    public init(
        clientMaxWindowBits: Int? = 15, serverMaxWindowBits: Int? = nil, clientNoContextTakeover: Bool = false,
        serverNoContextTakeover: Bool = false
    ) {
        self.clientMaxWindowBits = clientMaxWindowBits
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverNoContextTakeover = serverNoContextTakeover
    }

    public static let name = "permessage-deflate"
    static let windowBits = 8...15

    /// What `compression = "on"` offers: no context takeover either way, so
    /// that a connection holds compression memory only while a message is in
    /// flight (docs/operations.md has the measured cost of the alternatives).
    public static let noContextTakeover = DeflateOffer(
        clientMaxWindowBits: 15, clientNoContextTakeover: true, serverNoContextTakeover: true)

    /// A `compression` setting as written (config, control protocol): "off"
    /// (nil), "on", or an offer in the header's words.
    public static func setting(_ text: String) -> Result<DeflateOffer?, DeflateNegotiationError> {
        switch text {
        case "off": return .success(nil)
        case "on": return .success(noContextTakeover)
        default: return parse(text).map { $0 }
        }
    }

    /// The spelling of a setting: "off", "on" or the offer.
    public static func describe(_ offer: DeflateOffer?) -> String {
        guard let offer else { return "off" }
        return offer == noContextTakeover ? "on" : offer.description
    }

    /// The request's header value, parameters in a fixed order.
    public var description: String {
        var text = Self.name
        if let bits = clientMaxWindowBits {
            text += bits == 15 ? "; client_max_window_bits" : "; client_max_window_bits=\(bits)"
        }
        if let bits = serverMaxWindowBits { text += "; server_max_window_bits=\(bits)" }
        if clientNoContextTakeover { text += "; client_no_context_takeover" }
        if serverNoContextTakeover { text += "; server_no_context_takeover" }
        return text
    }

    /// An offer written as the header's value (the config's and the control
    /// protocol's spelling): `permessage-deflate` and the §7.1 parameters.
    public static func parse(_ text: String) -> Result<DeflateOffer, DeflateNegotiationError> {
        guard let elements = ExtensionHeader.parse([text]) else { return .failure(.malformed(text)) }
        guard elements.count == 1, let element = elements.first else {
            return .failure(elements.isEmpty ? .malformed(text) : .duplicateExtension)
        }
        guard element.name == name else { return .failure(.unknownExtension(element.name)) }
        var offer = DeflateOffer(clientMaxWindowBits: nil)
        var seen = Set<String>()
        for parameter in element.parameters {
            guard seen.insert(parameter.name).inserted else { return .failure(.duplicateParameter(parameter.name)) }
            switch parameter.name {
            case "client_max_window_bits":
                if let value = parameter.value {
                    guard let bits = Self.bits(value) else { return .failure(.invalidValue(parameter)) }
                    offer.clientMaxWindowBits = bits
                } else {
                    offer.clientMaxWindowBits = 15
                }
            case "server_max_window_bits":
                guard let value = parameter.value, let bits = Self.bits(value) else {
                    return .failure(.invalidValue(parameter))
                }
                offer.serverMaxWindowBits = bits
            case "client_no_context_takeover", "server_no_context_takeover":
                guard parameter.value == nil else { return .failure(.invalidValue(parameter)) }
                if parameter.name == "client_no_context_takeover" {
                    offer.clientNoContextTakeover = true
                } else {
                    offer.serverNoContextTakeover = true
                }
            default:
                return .failure(.unknownParameter(parameter.name))
            }
        }
        return .success(offer)
    }

    /// RFC 7692 §7.1: the server's answer to this offer (every element of its
    /// `Sec-WebSocket-Extensions`): nil when it declined (no element), the
    /// parameters in force when it accepted exactly what §7 allows, else why not.
    public func accept(_ response: [ExtensionElement]) -> Result<DeflateParameters?, DeflateNegotiationError> {
        guard let element = response.first else { return .success(nil) }
        if let other = response.first(where: { $0.name != Self.name }) {
            return .failure(.unknownExtension(other.name))
        }
        guard response.count == 1 else { return .failure(.duplicateExtension) }
        var agreed = DeflateParameters(
            clientMaxWindowBits: clientMaxWindowBits ?? 15, serverMaxWindowBits: 15,
            clientNoContextTakeover: clientNoContextTakeover, serverNoContextTakeover: false)
        var seen = Set<String>()
        for parameter in element.parameters {
            guard seen.insert(parameter.name).inserted else { return .failure(.duplicateParameter(parameter.name)) }
            switch parameter.name {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard parameter.value == nil else { return .failure(.invalidValue(parameter)) }
                if parameter.name == "server_no_context_takeover" {
                    agreed.serverNoContextTakeover = true
                } else {
                    agreed.clientNoContextTakeover = true
                }
            case "server_max_window_bits":
                guard let value = parameter.value, let bits = Self.bits(value) else {
                    return .failure(.invalidValue(parameter))
                }
                if let offered = serverMaxWindowBits, bits > offered {
                    return .failure(.windowTooLarge(parameter.name, bits, offered: offered))
                }
                agreed.serverMaxWindowBits = bits
            case "client_max_window_bits":
                guard let offered = clientMaxWindowBits else { return .failure(.notOffered(parameter.name)) }
                guard let value = parameter.value, let bits = Self.bits(value) else {
                    return .failure(.invalidValue(parameter))
                }
                guard bits <= offered else { return .failure(.windowTooLarge(parameter.name, bits, offered: offered)) }
                agreed.clientMaxWindowBits = bits
            default:
                return .failure(.unknownParameter(parameter.name))
            }
        }
        // §7.1.1.1, §7.1.2.1: a server that accepts an offer of these answers with them.
        if serverNoContextTakeover, !agreed.serverNoContextTakeover {
            return .failure(.missing("server_no_context_takeover"))
        }
        if serverMaxWindowBits != nil, !seen.contains("server_max_window_bits") {
            return .failure(.missing("server_max_window_bits"))
        }
        return .success(agreed)
    }

    /// A window size: 1*DIGIT without a leading zero, 8 to 15 (§7.1.2.1).
    static func bits(_ text: String) -> Int? {
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), !text.hasPrefix("0"),
            text.utf8.count <= 2, let bits = Int(text), windowBits.contains(bits)
        else { return nil }
        return bits
    }
}

/// What a connection's permessage-deflate runs with, as agreed.
public struct DeflateParameters: Equatable, Sendable, CustomStringConvertible {
    /// The window of what we compress (8...15).
    public var clientMaxWindowBits: Int
    /// The window of what the server compresses: our inflater's (8...15).
    public var serverMaxWindowBits: Int
    /// We start every message with an empty window (we may always choose to).
    public var clientNoContextTakeover: Bool
    /// The server starts every message with an empty window: our inflater need
    /// not outlive a message.
    public var serverNoContextTakeover: Bool

    public init(
        clientMaxWindowBits: Int, serverMaxWindowBits: Int, clientNoContextTakeover: Bool,
        serverNoContextTakeover: Bool
    ) {
        self.clientMaxWindowBits = clientMaxWindowBits
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverNoContextTakeover = serverNoContextTakeover
    }

    /// In the header's words, every parameter spelled out (what `ws show` prints).
    public var description: String {
        var text = DeflateOffer.name
        if clientNoContextTakeover { text += "; client_no_context_takeover" }
        if serverNoContextTakeover { text += "; server_no_context_takeover" }
        text += "; client_max_window_bits=\(clientMaxWindowBits); server_max_window_bits=\(serverMaxWindowBits)"
        return text
    }
}

/// Why an offer (config) or a server's answer (handshake) is refused.
public enum DeflateNegotiationError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case unknownExtension(String)
    case duplicateExtension
    case unknownParameter(String)
    case duplicateParameter(String)
    case invalidValue(ExtensionElement.Parameter)
    case notOffered(String)
    case missing(String)
    case windowTooLarge(String, Int, offered: Int)

    public var description: String {
        switch self {
        case .malformed(let text): return "malformed extension list \"\(text.prefix(200))\""
        case .unknownExtension(let name):
            return "unknown extension \"\(name.prefix(100))\" (only permessage-deflate is known)"
        case .duplicateExtension: return "permessage-deflate given more than once"
        case .unknownParameter(let name): return "unknown permessage-deflate parameter \"\(name.prefix(100))\""
        case .duplicateParameter(let name): return "permessage-deflate parameter \(name) given more than once"
        case .invalidValue(let parameter):
            let value = parameter.value.map { "=\($0.prefix(50))" } ?? " without a value"
            return "invalid permessage-deflate parameter \(parameter.name)\(value)"
        case .notOffered(let name): return "permessage-deflate parameter \(name) was not offered"
        case .missing(let name): return "the server accepted permessage-deflate without the offered \(name)"
        case .windowTooLarge(let name, let bits, let offered):
            return "permessage-deflate \(name)=\(bits) is larger than the \(offered) offered"
        }
    }
}
