/// The opening handshake of a client (RFC 6455 §4.1): the request, and the
/// strict validation of the server's response.
public struct Handshake: Sendable {
    /// RFC 6455 §1.3: the GUID appended to the key for `Sec-WebSocket-Accept`.
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Largest response header accepted.
    public static let maxResponseHeaderSize = 16 << 10

    public let url: WebSocketURL
    /// The base64 of the 16 random bytes sent as `Sec-WebSocket-Key`.
    public let key: String
    /// permessage-deflate as offered in the request (RFC 7692), or nil.
    public let deflateOffer: DeflateOffer?

    /// - Parameter keyBytes: 16 bytes from a CSPRNG (RFC 6455 §4.1 item 7).
    public init(url: WebSocketURL, keyBytes: [UInt8], deflate: DeflateOffer? = nil) {
        precondition(keyBytes.count == 16, "Sec-WebSocket-Key needs 16 random bytes")
        self.url = url
        self.key = Base64.encode(keyBytes)
        self.deflateOffer = deflate
    }

    /// The `Sec-WebSocket-Accept` value a correct server answers with.
    public var expectedAccept: String { Self.accept(for: key) }

    public static func accept(for key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + guid).utf8)))
    }

    /// The HTTP/1.1 upgrade request.
    public func request(userAgent: String? = nil) -> [UInt8] {
        // Appended as bytes into one buffer (string concatenation reallocated per line).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + url.resource.utf8.count + url.host.utf8.count + (userAgent?.utf8.count ?? 0))
        func add(_ text: String) { bytes.append(contentsOf: text.utf8) }
        add("GET ")
        add(url.resource)
        add(" HTTP/1.1\r\nHost: ")
        add(url.hostHeader)
        add("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ")
        add(key)
        add("\r\nSec-WebSocket-Version: 13\r\n")
        if let deflateOffer {
            add("Sec-WebSocket-Extensions: ")
            add(deflateOffer.description)
            add("\r\n")
        }
        if let userAgent {
            add("User-Agent: ")
            add(userAgent)
            add("\r\n")
        }
        add("\r\n")
        return bytes
    }

    /// Why a response was refused.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case headerTooLarge
        case malformedStatusLine(String)
        case unexpectedStatus(code: Int, reason: String)
        case malformedHeader(String)
        case missingUpgrade
        case missingConnectionUpgrade
        case missingAccept
        case wrongAccept(String)
        case unexpectedExtension(String)
        case malformedExtensions(String)
        case extensionNegotiation(DeflateNegotiationError)
        case unexpectedSubprotocol(String)

        public var description: String {
            switch self {
            case .headerTooLarge:
                return "handshake response header larger than \(Handshake.maxResponseHeaderSize) bytes"
            case .malformedStatusLine(let line): return "malformed HTTP status line \"\(line)\""
            case .unexpectedStatus(let code, let reason):
                return "server answered \(code) \(reason) instead of 101 Switching Protocols"
            case .malformedHeader(let line): return "malformed HTTP header line \"\(line)\""
            case .missingUpgrade: return "response lacks \"Upgrade: websocket\""
            case .missingConnectionUpgrade: return "response lacks \"Connection: upgrade\""
            case .missingAccept: return "response lacks Sec-WebSocket-Accept"
            case .wrongAccept(let value): return "Sec-WebSocket-Accept \"\(value)\" does not match the key sent"
            case .unexpectedExtension(let value): return "server selected extension \"\(value)\" that was not offered"
            case .malformedExtensions(let value): return "malformed Sec-WebSocket-Extensions \"\(value.prefix(200))\""
            case .extensionNegotiation(let error): return "extension negotiation failed: \(error)"
            case .unexpectedSubprotocol(let value):
                return "server selected subprotocol \"\(value)\" that was not offered"
            }
        }
    }

    /// A response the client accepted: its header fields (names in lower
    /// case) and the permessage-deflate parameters in force (nil: none).
    public struct Response {
        public var headers: [(String, String)]
        public var deflate: DeflateParameters?
    }

    /// Validates a complete response header (up to, not including, the blank line).
    public func validate(responseHeader: ArraySlice<UInt8>) -> Result<Response, Failure> {
        // Lines end with CRLF; parsed as bytes (String splitting walks graphemes,
        // which cost a tenth of a connection's CPU time).
        var lines = Self.lines(responseHeader)[...]
        guard let statusBytes = lines.popFirst() else { return .failure(.malformedStatusLine("")) }
        guard let (code, reason) = Self.status(statusBytes) else {
            return .failure(.malformedStatusLine(String(String(decoding: statusBytes, as: UTF8.self).prefix(200))))
        }
        var headers: [(String, String)] = []
        for line in lines where !line.isEmpty {
            // A field name is a token (RFC 9110 §5.1): no spaces or tabs before the colon.
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon != line.startIndex,
                !line[..<colon].contains(where: Self.isSpaceOrTab)
            else {
                return .failure(.malformedHeader(String(String(decoding: line, as: UTF8.self).prefix(200))))
            }
            // Names compare case-insensitively in ASCII only.
            let name = String(decoding: line[..<colon].lazy.map(Self.asciiLowercased), as: UTF8.self)
            let value = line[(colon + 1)...].trimming(while: Self.isSpaceOrTab)
            headers.append((name, String(decoding: value, as: UTF8.self)))
        }
        guard code == 101 else {
            return .failure(
                .unexpectedStatus(code: code, reason: String(String(decoding: reason, as: UTF8.self).prefix(200))))
        }
        // §4.1 items 2-4 of the client's validation.
        guard Self.listsToken(headers, "upgrade", "websocket") else { return .failure(.missingUpgrade) }
        guard Self.listsToken(headers, "connection", "upgrade") else { return .failure(.missingConnectionUpgrade) }
        let accepts = headers.filter { $0.0 == "sec-websocket-accept" }.map(\.1)
        guard let accept = accepts.first else { return .failure(.missingAccept) }
        guard accepts.count == 1, accept == expectedAccept else { return .failure(.wrongAccept(accept)) }
        // §4.1 items 5-6: nothing we did not offer (no subprotocol; at most permessage-deflate).
        var deflate: DeflateParameters?
        let extensions = headers.filter { $0.0 == "sec-websocket-extensions" }.map(\.1)
        if let deflateOffer {
            guard let elements = ExtensionHeader.parse(extensions) else {
                return .failure(.malformedExtensions(extensions.joined(separator: ", ")))
            }
            switch deflateOffer.accept(elements) {
            case .success(let parameters): deflate = parameters
            case .failure(let error): return .failure(.extensionNegotiation(error))
            }
        } else if let value = extensions.first(where: { !$0.isEmpty }) {
            return .failure(.unexpectedExtension(value))
        }
        if let value = headers.first(where: { $0.0 == "sec-websocket-protocol" && !$0.1.isEmpty })?.1 {
            return .failure(.unexpectedSubprotocol(value))
        }
        return .success(Response(headers: headers, deflate: deflate))
    }

    /// The code and reason of a status line, "HTTP/1.1 101 Switching Protocols":
    /// a version starting "HTTP/1.", a space, three digits, then the end or a
    /// space and the reason. Nil when it is not one.
    static func status(_ line: ArraySlice<UInt8>) -> (code: Int, reason: ArraySlice<UInt8>)? {
        guard line.starts(with: "HTTP/1.".utf8), let space = line.firstIndex(of: UInt8(ascii: " ")) else {
            return nil
        }
        let digits = line[(space + 1)...].prefix(3)
        guard digits.count == 3, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        let rest = line[digits.endIndex...]
        guard let first = rest.first else { return (Self.number(digits), rest) }
        guard first == UInt8(ascii: " ") else { return nil }
        return (Self.number(digits), rest.dropFirst())
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int {
        digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    /// True when a header `name` (lowercase) lists `token` (lowercase ASCII) among
    /// its comma-separated values, compared case-insensitively, spaces and tabs
    /// around each value ignored. Walks the bytes: no strings made per value.
    static func listsToken(_ headers: [(String, String)], _ name: String, _ token: String) -> Bool {
        let wanted = Array(token.utf8)
        for (field, value) in headers where field == name {
            var element = value.utf8[...]
            while true {
                let comma = element.firstIndex(of: UInt8(ascii: ","))
                let item = element[..<(comma ?? element.endIndex)].trimming(while: Self.isSpaceOrTab)
                if item.count == wanted.count && zip(item, wanted).allSatisfy({ Self.asciiLowercased($0) == $1 }) {
                    return true
                }
                guard let comma else { break }
                element = element[element.index(after: comma)...]
            }
        }
        return false
    }

    /// Optional whitespace around HTTP field values and list elements (RFC 9110 §5.6.3).
    static func isSpaceOrTab(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// A-Z to a-z, every other byte as it is: HTTP names and tokens fold case in
    /// ASCII only.
    static func asciiLowercased(_ byte: UInt8) -> UInt8 { byte &- 65 < 26 ? byte | 0x20 : byte }

    /// The CRLF-terminated lines of `bytes` (the last one may lack its CRLF).
    static func lines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var i = start
        while i + 1 < bytes.endIndex {
            if bytes[i] == 13 && bytes[i + 1] == 10 {
                lines.append(bytes[start..<i])
                i += 2
                start = i
            } else {
                i += 1
            }
        }
        lines.append(bytes[start...])
        return lines
    }

    /// The end of the response header in `bytes` (index just past `\r\n\r\n`).
    public static func headerEnd(in bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8>.Index? {
        guard bytes.count >= 4 else { return nil }
        var i = bytes.startIndex
        let last = bytes.endIndex - 4
        while i <= last {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }
}

extension BidirectionalCollection where SubSequence == Self {
    /// Without the leading and trailing elements that match.
    func trimming(while matches: (Element) -> Bool) -> Self {
        var s = self
        while let first = s.first, matches(first) { s.removeFirst() }
        while let last = s.last, matches(last) { s.removeLast() }
        return s
    }
}
