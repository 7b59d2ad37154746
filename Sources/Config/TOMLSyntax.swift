/// A strict recognizer of TOML 1.0 syntax (toml.io/en/v1.0.0, its ABNF), run
/// before the document is handed to toml++.
///
/// toml++ as bundled with TOMLKit 0.6.0 checks some malformed input with
/// assertions instead of errors: `[` alone on a line, `[[[a]]]`, a `}` where
/// an array expects a value, and more; each aborts the process
/// (LebJe/TOMLKit#30, marzer/tomlplusplus#301; in a build without assertions
/// the same input is undefined behaviour). So toml++ is only ever given a
/// document that is syntactically valid TOML: anything else is reported here
/// with its line and column, in toml++'s wording where there is one. What
/// toml++ checks beyond syntax (redefined keys and tables) it still reports.
///
/// Pure; one pass over the bytes; nesting depth bounded.
struct TOMLSyntax {
    struct Failure: Error, Equatable {
        var line: Int
        var column: Int
        var message: String
    }

    /// Arrays and inline tables nested deeper than this are refused (toml++'s
    /// own limit is 256).
    static let maxDepth = 128

    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    private var lineStart = 0
    private var depth = 0

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Checks a whole document; nil when it is valid TOML 1.0 syntax.
    static func check(_ text: some Collection<UInt8>) -> Failure? {
        var checker = TOMLSyntax(Array(text))
        do {
            try checker.document()
            return nil
        } catch {
            return error
        }
    }

    // MARK: - Document structure

    private mutating func document() throws(Failure) {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {  // a byte order mark, as toml++ allows
            index = 3
            lineStart = 3
        }
        while !atEnd {
            skipWhitespace()
            guard let byte = peek else { break }
            switch byte {
            case UInt8(ascii: "#"): try comment()
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"): break
            case UInt8(ascii: "["): try tableHeader()
            default:
                guard isBareKeyByte(byte) || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") else {
                    throw fail(
                        "Error while parsing root table: expected keys, tables, whitespace or comments, saw \(shown(byte))"
                    )
                }
                try keyValue(scope: "key-value pair")
            }
            try endOfLine()
        }
    }

    /// Whitespace, an optional comment, then a line break or the end.
    private mutating func endOfLine() throws(Failure) {
        skipWhitespace()
        if peek == UInt8(ascii: "#") { try comment() }
        guard let byte = peek else { return }
        guard try lineBreak() else {
            throw fail("Error while parsing root table: expected a comment or whitespace, saw \(shown(byte))")
        }
    }

    /// Consumes `\n` or `\r\n`; false when neither is next.
    private mutating func lineBreak() throws(Failure) -> Bool {
        if peek == UInt8(ascii: "\r") {
            guard byte(at: index + 1) == UInt8(ascii: "\n") else {
                throw fail("expected '\\n' after '\\r', saw \(shown(byte(at: index + 1)))")
            }
            index += 1
        }
        guard peek == UInt8(ascii: "\n") else { return false }
        index += 1
        line += 1
        lineStart = index
        return true
    }

    private mutating func comment() throws(Failure) {
        index += 1  // '#'
        while let byte = peek, byte != UInt8(ascii: "\n") {
            if byte == UInt8(ascii: "\r") && self.byte(at: index + 1) == UInt8(ascii: "\n") { return }
            if isControl(byte) && byte != UInt8(ascii: "\t") {
                throw fail("Error while parsing comment: control characters are not allowed, saw \(shown(byte))")
            }
            if byte >= 0x80 { try utf8Scalar() } else { index += 1 }
        }
    }

    private mutating func tableHeader() throws(Failure) {
        let scope = "Error while parsing table header"
        index += 1  // '['
        let array = peek == UInt8(ascii: "[")
        if array { index += 1 }
        skipWhitespace()
        guard let first = peek, isKeyStart(first) else {
            if peek == UInt8(ascii: "]") {
                throw fail("\(scope): tables with blank bare keys are explicitly prohibited")
            }
            throw fail("\(scope): expected a table name (a bare or quoted key), saw \(shown(peek))")
        }
        try key(scope: scope)
        skipWhitespace()
        for _ in 0..<(array ? 2 : 1) {
            guard peek == UInt8(ascii: "]") else { throw fail("\(scope): expected ']', saw \(shown(peek))") }
            index += 1
        }
    }

    private mutating func keyValue(scope: String) throws(Failure) {
        try key(scope: "Error while parsing \(scope)")
        skipWhitespace()
        guard peek == UInt8(ascii: "=") else {
            throw fail("Error while parsing \(scope): expected '=', saw \(shown(peek))")
        }
        index += 1
        skipWhitespace()
        try value()
    }

    /// A simple or dotted key.
    private mutating func key(scope: String) throws(Failure) {
        while true {
            guard let byte = peek else { throw fail("\(scope): expected a key, saw end of file") }
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                if self.byte(at: index + 1) == byte && self.byte(at: index + 2) == byte {
                    throw fail("\(scope): multi-line strings are prohibited in keys")
                }
                try singleLineString()
            } else if isBareKeyByte(byte) {
                while let next = peek, isBareKeyByte(next) { index += 1 }
            } else {
                throw fail("\(scope): expected bare key starting character or string delimiter, saw \(shown(byte))")
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ".") else { return }
            index += 1
            skipWhitespace()
        }
    }

    // MARK: - Values

    private mutating func value() throws(Failure) {
        guard let byte = peek else { throw fail("Error while parsing value: expected a value, saw end of file") }
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            if self.byte(at: index + 1) == byte && self.byte(at: index + 2) == byte {
                try multiLineString()
            } else {
                try singleLineString()
            }
        case UInt8(ascii: "["): try array()
        case UInt8(ascii: "{"): try inlineTable()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "i"): try literal("inf")
        case UInt8(ascii: "n"): try literal("nan")
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            index += 1
            if peek == UInt8(ascii: "i") { return try literal("inf") }
            if peek == UInt8(ascii: "n") { return try literal("nan") }
            try number(signed: true)
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            if digit(at: index + 1) && digit(at: index + 2) && digit(at: index + 3)
                && self.byte(at: index + 4) == UInt8(ascii: "-")
            {
                try dateTime()
            } else if digit(at: index + 1) && self.byte(at: index + 2) == UInt8(ascii: ":") {
                try time()
            } else {
                try number(signed: false)
            }
        default:
            throw fail("Error while parsing value: expected a value, saw \(shown(byte))")
        }
    }

    private mutating func array() throws(Failure) {
        try enter("array")
        index += 1  // '['
        var expectValue = true
        while true {
            try skipWhitespaceCommentsAndNewlines()
            guard let byte = peek else { throw fail("Error while parsing array: expected ']', saw end of file") }
            if byte == UInt8(ascii: "]") {
                index += 1
                break
            }
            if byte == UInt8(ascii: ",") {
                throw fail("Error while parsing array: expected value or closing ']', saw comma")
            }
            guard expectValue else {
                throw fail("Error while parsing array: expected comma or closing ']', saw \(shown(byte))")
            }
            try value()
            try skipWhitespaceCommentsAndNewlines()
            if peek == UInt8(ascii: ",") {
                index += 1
                expectValue = true
            } else {
                expectValue = false
            }
        }
        depth -= 1
    }

    private mutating func inlineTable() throws(Failure) {
        try enter("inline table")
        index += 1  // '{'
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            guard let byte = peek, isKeyStart(byte) else {
                throw fail("Error while parsing inline table: expected key, saw \(shown(peek))")
            }
            try keyValue(scope: "inline table")
            skipWhitespace()
            if peek == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard peek == UInt8(ascii: "}") else {
                throw fail("Error while parsing inline table: expected comma or closing '}', saw \(shown(peek))")
            }
            index += 1
            break
        }
        depth -= 1
    }

    private mutating func enter(_ what: String) throws(Failure) {
        depth += 1
        guard depth <= Self.maxDepth else {
            throw fail("Error while parsing \(what): nested deeper than \(Self.maxDepth) levels")
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        for expected in word.utf8 {
            guard peek == expected else {
                throw fail("Error while parsing value: expected '\(word)', saw \(shown(peek))")
            }
            index += 1
        }
        try valueEnds()
    }

    /// After a scalar: a value terminator (or the end).
    private mutating func valueEnds() throws(Failure) {
        guard let byte = peek else { return }
        switch byte {
        case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: ","),
            UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: "#"):
            return
        default:
            throw fail("Error while parsing value: unexpected \(shown(byte))")
        }
    }

    /// Integers (decimal, 0x, 0o, 0b) and floats; a sign was consumed already.
    private mutating func number(signed: Bool) throws(Failure) {
        let scope = "Error while parsing number"
        if peek == UInt8(ascii: "0"), let radix = byte(at: index + 1),
            radix == UInt8(ascii: "x") || radix == UInt8(ascii: "o") || radix == UInt8(ascii: "b")
        {
            guard !signed else { throw fail("\(scope): a sign is not allowed before 0x, 0o or 0b") }
            index += 2
            let isDigit: (UInt8) -> Bool
            switch radix {
            case UInt8(ascii: "x"): isDigit = { isDigitByte($0) || (0x61...0x66).contains($0 | 0x20) }
            case UInt8(ascii: "o"): isDigit = { (0x30...0x37).contains($0) }
            default: isDigit = { $0 == 0x30 || $0 == 0x31 }
            }
            try digits(scope, isDigit)
            return try valueEnds()
        }
        let start = index
        try digits(scope, isDigitByte)
        if bytes[start] == UInt8(ascii: "0") && index - start > 1 {
            throw fail("\(scope): leading zeros are not allowed")
        }
        if peek == UInt8(ascii: ".") {
            index += 1
            try digits(scope, isDigitByte)
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            try digits(scope, isDigitByte)
        }
        try valueEnds()
    }

    /// One or more digits, single underscores only between digits.
    private mutating func digits(_ scope: String, _ isDigit: (UInt8) -> Bool) throws(Failure) {
        guard let first = peek, isDigit(first) else { throw fail("\(scope): expected a digit, saw \(shown(peek))") }
        index += 1
        while let byte = peek {
            if isDigit(byte) {
                index += 1
            } else if byte == UInt8(ascii: "_") {
                guard let next = self.byte(at: index + 1), isDigit(next) else {
                    throw fail("\(scope): an underscore must be between digits")
                }
                index += 2
            } else {
                break
            }
        }
    }

    /// A date, or a date-time with an optional offset (RFC 3339 as TOML has it).
    private mutating func dateTime() throws(Failure) {
        let scope = "Error while parsing date-time"
        _ = try fixedDigits(4, scope)
        try expect(UInt8(ascii: "-"), scope)
        let month = try fixedDigits(2, scope)
        try expect(UInt8(ascii: "-"), scope)
        let day = try fixedDigits(2, scope)
        guard (1...12).contains(month), (1...31).contains(day) else { throw fail("\(scope): no such date") }
        let separator = peek
        if separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t")
            || (separator == UInt8(ascii: " ") && byte(at: index + 1).map(isDigitByte) == true)
        {
            index += 1
            try time(valueEnds: false)
            if peek == UInt8(ascii: "Z") || peek == UInt8(ascii: "z") {
                index += 1
            } else if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") {
                index += 1
                guard try fixedDigits(2, scope) <= 23 else { throw fail("\(scope): offset hour out of range") }
                try expect(UInt8(ascii: ":"), scope)
                guard try fixedDigits(2, scope) <= 59 else { throw fail("\(scope): offset minute out of range") }
            }
        }
        try valueEnds()
    }

    private mutating func time(valueEnds ends: Bool = true) throws(Failure) {
        let scope = "Error while parsing time"
        let hour = try fixedDigits(2, scope)
        try expect(UInt8(ascii: ":"), scope)
        let minute = try fixedDigits(2, scope)
        try expect(UInt8(ascii: ":"), scope)
        let second = try fixedDigits(2, scope)
        guard hour <= 23, minute <= 59, second <= 60 else { throw fail("\(scope): out of range") }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let digit = peek, isDigitByte(digit) else { throw fail("\(scope): expected a digit after '.'") }
            while let digit = peek, isDigitByte(digit) { index += 1 }
        }
        if ends { try valueEnds() }
    }

    private mutating func fixedDigits(_ count: Int, _ scope: String) throws(Failure) -> Int {
        var value = 0
        for _ in 0..<count {
            guard let digit = peek, isDigitByte(digit) else {
                throw fail("\(scope): expected a digit, saw \(shown(peek))")
            }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
            index += 1
        }
        return value
    }

    private mutating func expect(_ byte: UInt8, _ scope: String) throws(Failure) {
        guard peek == byte else {
            throw fail("\(scope): expected '\(Character(Unicode.Scalar(byte)))', saw \(shown(peek))")
        }
        index += 1
    }

    // MARK: - Strings

    private mutating func singleLineString() throws(Failure) {
        let quote = bytes[index]
        let scope = "Error while parsing string"
        index += 1
        while true {
            guard let byte = peek else { throw fail("\(scope): encountered end-of-file") }
            if byte == quote {
                index += 1
                return
            }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                throw fail("\(scope): encountered a line break before the closing quote")
            }
            try stringByte(quote: quote, scope: scope)
        }
    }

    private mutating func multiLineString() throws(Failure) {
        let quote = bytes[index]
        let scope = "Error while parsing multi-line string"
        index += 3
        _ = try lineBreak()  // a line break right after the opening quotes is trimmed
        while true {
            guard let byte = peek else { throw fail("\(scope): encountered end-of-file") }
            if byte == quote && self.byte(at: index + 1) == quote && self.byte(at: index + 2) == quote {
                index += 3
                // Up to two more quotes belong to the content.
                for _ in 0..<2 where peek == quote { index += 1 }
                return
            }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                guard try lineBreak() else { throw fail("\(scope): a lone '\\r'") }
                continue
            }
            if quote == UInt8(ascii: "\"") && byte == UInt8(ascii: "\\") {
                // A line-ending backslash: whitespace and line breaks up to the next text are trimmed.
                var probe = index + 1
                while self.byte(at: probe) == UInt8(ascii: " ") || self.byte(at: probe) == UInt8(ascii: "\t") {
                    probe += 1
                }
                if self.byte(at: probe) == UInt8(ascii: "\n") || self.byte(at: probe) == UInt8(ascii: "\r") {
                    index = probe
                    continue
                }
            }
            try stringByte(quote: quote, scope: scope)
        }
    }

    /// One character of a string's content (an escape in a basic string).
    private mutating func stringByte(quote: UInt8, scope: String) throws(Failure) {
        let byte = bytes[index]
        if quote == UInt8(ascii: "\"") && byte == UInt8(ascii: "\\") {
            index += 1
            guard let escape = peek else { throw fail("\(scope): encountered end-of-file") }
            index += 1
            switch escape {
            case UInt8(ascii: "b"), UInt8(ascii: "t"), UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "r"),
                UInt8(ascii: "\""), UInt8(ascii: "\\"):
                return
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                var scalar: UInt32 = 0
                for _ in 0..<(escape == UInt8(ascii: "u") ? 4 : 8) {
                    guard let digit = peek, let value = hexValue(digit) else {
                        throw fail("\(scope): expected a hexadecimal digit, saw \(shown(peek))")
                    }
                    scalar = scalar << 4 | UInt32(value)
                    index += 1
                }
                guard Unicode.Scalar(scalar) != nil else {
                    throw fail("\(scope): \\\(Character(Unicode.Scalar(escape))) escape is not a Unicode scalar value")
                }
            default:
                throw fail("\(scope): unknown escape sequence '\\\(Character(Unicode.Scalar(escape)))'")
            }
            return
        }
        if isControl(byte) && byte != UInt8(ascii: "\t") {
            throw fail("\(scope): control characters must be escaped, saw \(shown(byte))")
        }
        if byte >= 0x80 { try utf8Scalar() } else { index += 1 }
    }

    /// One well-formed UTF-8 sequence (no surrogates, no overlong forms).
    private mutating func utf8Scalar() throws(Failure) {
        let lead = bytes[index]
        let count: Int
        var scalar: UInt32
        switch lead {
        case 0xC2...0xDF: (count, scalar) = (2, UInt32(lead & 0x1F))
        case 0xE0...0xEF: (count, scalar) = (3, UInt32(lead & 0x0F))
        case 0xF0...0xF4: (count, scalar) = (4, UInt32(lead & 0x07))
        default: throw fail("invalid UTF-8 (byte 0x\(String(lead, radix: 16)))")
        }
        for offset in 1..<count {
            guard let next = byte(at: index + offset), next & 0xC0 == 0x80 else {
                throw fail("invalid UTF-8 (a truncated sequence)")
            }
            scalar = scalar << 6 | UInt32(next & 0x3F)
        }
        let smallest: UInt32 = count == 2 ? 0x80 : count == 3 ? 0x800 : 0x10000
        guard scalar >= smallest, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else {
            throw fail("invalid UTF-8 (an overlong form, a surrogate or out of range)")
        }
        index += count
    }

    // MARK: - Helpers

    private var atEnd: Bool { index >= bytes.count }
    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
    private func byte(at offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

    private mutating func skipWhitespace() {
        while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
    }

    private mutating func skipWhitespaceCommentsAndNewlines() throws(Failure) {
        while true {
            skipWhitespace()
            if peek == UInt8(ascii: "#") {
                try comment()
            } else if try !lineBreak() {
                return
            }
        }
    }

    private func digit(at offset: Int) -> Bool { byte(at: offset).map(isDigitByte) ?? false }

    private func fail(_ message: String) -> Failure {
        // Columns count characters, as toml++'s do.
        let column = bytes[lineStart..<min(index, bytes.count)].filter { $0 & 0xC0 != 0x80 }.count + 1
        return Failure(line: line, column: column, message: message)
    }

    private func shown(_ byte: UInt8?) -> String {
        guard let byte else { return "end of file" }
        switch byte {
        case UInt8(ascii: "\n"): return "'\\n'"
        case UInt8(ascii: "\r"): return "'\\r'"
        case UInt8(ascii: "\t"): return "'\\t'"
        case 0x20..<0x7F: return "'\(Character(Unicode.Scalar(byte)))'"
        default: return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }
    }
}

private func isDigitByte(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }

private func isBareKeyByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
        return true
    default:
        return false
    }
}

private func isKeyStart(_ byte: UInt8) -> Bool {
    isBareKeyByte(byte) || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'")
}

/// TOML 1.0: U+0000–U+001F and U+007F.
private func isControl(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x7F }

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}
