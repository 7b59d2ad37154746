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
    /// The SHA-1 the accept check uses; nil: this module's own.
    public let sha1: SHA1Digest?

    /// SHA-1 of the first buffer into the first 20 bytes of the second. A
    /// shell may pass its crypto library's, which can use the CPU's SHA
    /// instructions (this core's own is portable Swift).
    public typealias SHA1Digest = @Sendable (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) -> Void

    /// - Parameter keyBytes: 16 bytes from a CSPRNG (RFC 6455 §4.1 item 7).
    public init(url: WebSocketURL, keyBytes: [UInt8], deflate: DeflateOffer? = nil, sha1: SHA1Digest? = nil) {
        precondition(keyBytes.count == 16, "Sec-WebSocket-Key needs 16 random bytes")
        self.url = url
        self.key = Base64.encode(keyBytes)
        self.deflateOffer = deflate
        self.sha1 = sha1
    }

    /// The `Sec-WebSocket-Accept` value a correct server answers with.
    public var expectedAccept: String { Self.accept(for: key, sha1: sha1) }

    public static func accept(for key: String, sha1: SHA1Digest? = nil) -> String {
        withAccept(for: key, sha1: sha1) { String(decoding: $0, as: UTF8.self) }
    }

    /// `body` gets the accept value for `key` (RFC 6455 §4.2.2 item 5.4): the
    /// base64 of the SHA-1 of the key and the GUID, all built on the stack.
    static func withAccept<Result>(
        for key: String, sha1: SHA1Digest? = nil, _ body: (UnsafeBufferPointer<UInt8>) -> Result
    ) -> Result {
        var key = key
        return key.withUTF8 { key in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: key.count + guidBytes.count + 20 + 28) { scratch in
                let material = UnsafeMutableBufferPointer(rebasing: scratch[0..<(key.count + guidBytes.count)])
                _ = material.initialize(fromContentsOf: key)
                _ = UnsafeMutableBufferPointer(rebasing: material[key.count...]).initialize(fromContentsOf: guidBytes)
                let digest = UnsafeMutableBufferPointer(rebasing: scratch[material.count..<(material.count + 20)])
                if let sha1 {
                    sha1(UnsafeRawBufferPointer(material), UnsafeMutableRawBufferPointer(digest))
                } else {
                    SHA1.hash(UnsafeRawBufferPointer(material), into: UnsafeMutableRawBufferPointer(digest))
                }
                let text = UnsafeMutableBufferPointer(rebasing: scratch[(material.count + 20)...])
                let length = Base64.encode(UnsafeRawBufferPointer(digest), into: text)
                return body(UnsafeBufferPointer(rebasing: text[0..<length]))
            }
        }
    }

    private static let guidBytes = Array(guid.utf8)

    /// The HTTP/1.1 upgrade request.
    public func request(userAgent: String? = nil) -> [UInt8] {
        // Appended as bytes into one buffer (string concatenation reallocated per line).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + url.resource.utf8.count + url.host.utf8.count + (userAgent?.utf8.count ?? 0))
        func add(_ text: String) { bytes.append(contentsOf: text.utf8) }
        add("GET ")
        add(url.resource)
        add(" HTTP/1.1\r\nHost: ")
        // `url.hostHeader`, without building it as a string of its own.
        let bracket = url.host.utf8.contains(UInt8(ascii: ":"))
        if bracket { add("[") }
        add(url.host)
        if bracket { add("]") }
        if url.port != url.defaultPort {
            add(":")
            Self.appendDecimal(url.port, to: &bytes)
        }
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

    static func appendDecimal(_ value: UInt16, to bytes: inout [UInt8]) {
        var divisor: UInt16 = 10_000
        while divisor > 1 && value < divisor { divisor /= 10 }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(value / divisor % 10))
            divisor /= 10
        }
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

    /// A response the client accepted: the permessage-deflate parameters in
    /// force (nil: none).
    public struct Response {
        public var deflate: DeflateParameters?
    }

    /// The header fields the client's validation reads (RFC 6455 §4.1), by
    /// their lower-case names; every other field is checked for form only.
    private enum Field {
        case upgrade, connection, accept, extensions, subprotocol

        static func named(_ name: ArraySlice<UInt8>) -> Field? {
            if Handshake.equalsLowercased(name, "upgrade") { return .upgrade }
            if Handshake.equalsLowercased(name, "connection") { return .connection }
            if Handshake.equalsLowercased(name, "sec-websocket-accept") { return .accept }
            if Handshake.equalsLowercased(name, "sec-websocket-extensions") { return .extensions }
            if Handshake.equalsLowercased(name, "sec-websocket-protocol") { return .subprotocol }
            return nil
        }
    }

    /// Validates a complete response header (up to, not including, the blank line).
    /// One pass over the bytes: strings are made only for what an error
    /// message or the extension negotiation needs (building every field as a
    /// string pair was a seventh of a connection's CPU time).
    public func validate(responseHeader: ArraySlice<UInt8>) -> Result<Response, Failure> {
        var rest = responseHeader
        let statusBytes = Self.nextLine(&rest)
        guard let (code, reason) = Self.status(statusBytes) else {
            return .failure(.malformedStatusLine(String(String(decoding: statusBytes, as: UTF8.self).prefix(200))))
        }
        var upgrade = false
        var connectionUpgrade = false
        var accepts = 0
        var acceptValue: ArraySlice<UInt8> = []
        var extensions: [String] = []
        var subprotocol: String?
        while let line = Self.nextLineIfAny(&rest) {
            if line.isEmpty { continue }
            // A field name is a token (RFC 9110 §5.1): no spaces or tabs before the colon.
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon != line.startIndex,
                !line[..<colon].contains(where: Self.isSpaceOrTab)
            else {
                return .failure(.malformedHeader(String(String(decoding: line, as: UTF8.self).prefix(200))))
            }
            let value = line[(colon + 1)...].trimming(while: Self.isSpaceOrTab)
            // Names compare case-insensitively in ASCII only.
            switch Field.named(line[..<colon]) {
            case .upgrade: upgrade = upgrade || Self.listsToken(value, "websocket")
            case .connection: connectionUpgrade = connectionUpgrade || Self.listsToken(value, "upgrade")
            case .accept:
                accepts += 1
                if accepts == 1 { acceptValue = value }
            case .extensions: extensions.append(String(decoding: value, as: UTF8.self))
            case .subprotocol:
                if subprotocol == nil && !value.isEmpty { subprotocol = String(decoding: value, as: UTF8.self) }
            case nil: break
            }
        }
        guard code == 101 else {
            return .failure(
                .unexpectedStatus(code: code, reason: String(String(decoding: reason, as: UTF8.self).prefix(200))))
        }
        // §4.1 items 2-4 of the client's validation.
        guard upgrade else { return .failure(.missingUpgrade) }
        guard connectionUpgrade else { return .failure(.missingConnectionUpgrade) }
        guard accepts > 0 else { return .failure(.missingAccept) }
        guard accepts == 1, Self.withAccept(for: key, sha1: sha1, { $0.elementsEqual(acceptValue) }) else {
            return .failure(.wrongAccept(String(decoding: acceptValue, as: UTF8.self)))
        }
        // §4.1 items 5-6: nothing we did not offer (no subprotocol; at most permessage-deflate).
        var deflate: DeflateParameters?
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
        if let subprotocol { return .failure(.unexpectedSubprotocol(subprotocol)) }
        return .success(Response(deflate: deflate))
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

    /// True when a field value lists `token` (lowercase ASCII) among its
    /// comma-separated elements, compared case-insensitively, spaces and tabs
    /// around each element ignored.
    static func listsToken(_ value: ArraySlice<UInt8>, _ token: StaticString) -> Bool {
        var element = value
        while true {
            let comma = element.firstIndex(of: UInt8(ascii: ","))
            if equalsLowercased(element[..<(comma ?? element.endIndex)].trimming(while: isSpaceOrTab), token) {
                return true
            }
            guard let comma else { return false }
            element = element[(comma + 1)...]
        }
    }

    /// True when `bytes`, folded to lower case in ASCII, are `lowercase`.
    static func equalsLowercased(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { wanted in
            var i = bytes.startIndex
            for byte in wanted {
                guard asciiLowercased(bytes[i]) == byte else { return false }
                i += 1
            }
            return true
        }
    }

    /// Optional whitespace around HTTP field values and list elements (RFC 9110 §5.6.3).
    static func isSpaceOrTab(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// A-Z to a-z, every other byte as it is: HTTP names and tokens fold case in
    /// ASCII only.
    static func asciiLowercased(_ byte: UInt8) -> UInt8 { byte &- 65 < 26 ? byte | 0x20 : byte }

    /// The first CRLF-terminated line of `bytes` (all of it when there is no
    /// CRLF), removed from `bytes` with its CRLF.
    static func nextLine(_ bytes: inout ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex {
            if bytes[i] == 13 && bytes[i + 1] == 10 {
                let line = bytes[..<i]
                bytes = bytes[(i + 2)...]
                return line
            }
            i += 1
        }
        let line = bytes
        bytes = bytes[bytes.endIndex...]
        return line
    }

    /// The next line after the status line, nil at the end: a header that
    /// ends with CRLF has no empty line after it.
    static func nextLineIfAny(_ bytes: inout ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        bytes.isEmpty ? nil : nextLine(&bytes)
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
