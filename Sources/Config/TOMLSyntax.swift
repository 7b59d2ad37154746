/// A TOML value as the config reader sees it.
enum TOMLValue {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    /// An offset or local date-time, date or time, as written.
    case dateTime(String)
    case array([TOMLValue])
    case table(TOMLTable)

    var string: String? { if case .string(let value) = self { value } else { nil } }
    var int: Int? { if case .integer(let value) = self { value } else { nil } }
    var double: Double? { if case .float(let value) = self { value } else { nil } }
    var bool: Bool? { if case .boolean(let value) = self { value } else { nil } }
    var array: [TOMLValue]? { if case .array(let values) = self { values } else { nil } }
    var table: TOMLTable? { if case .table(let table) = self { table } else { nil } }

    /// The kind, as error messages name it ("cannot redefine existing string 'a'").
    var kindName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "floating-point"
        case .boolean: "boolean"
        case .dateTime: "date-time"
        case .array: "array"
        case .table: "table"
        }
    }
}

/// A TOML table: its keys in the order they were defined, and how it was
/// made (which decides what may still be added to it, TOML 1.0 §Table).
final class TOMLTable {
    enum Origin {
        /// A parent made on the way to a header (`[a.b]` makes `a`): a header may still define it.
        case implicit
        /// Defined by a `[header]`: never again.
        case header
        /// Made by dotted keys (`a.b = 1` makes `a`): more dotted keys may add to it.
        case dotted
        /// `{ … }`: closed.
        case inline
        /// An element of an array of tables (`[[a]]`).
        case arrayElement
    }

    enum Entry {
        case value(TOMLValue)
        case table(TOMLTable)
        /// An array of tables (`[[a]]`), which later headers append to.
        case tableArray([TOMLTable])
    }

    var origin: Origin
    /// How deep it is nested (the document is 0): bounded, so that no
    /// document can make a tree deep enough to exhaust the stack.
    let level: Int
    private(set) var keys: [String] = []
    private(set) var entries: [String: Entry] = [:]

    init(origin: Origin, level: Int) {
        self.origin = origin
        self.level = level
    }

    subscript(key: String) -> TOMLValue? {
        switch entries[key] {
        case nil: return nil
        case .value(let value)?: return value
        case .table(let table)?: return .table(table)
        case .tableArray(let tables)?: return .array(tables.map { .table($0) })
        }
    }

    func entry(_ key: String) -> Entry? { entries[key] }

    func set(_ key: String, _ entry: Entry) {
        if entries.updateValue(entry, forKey: key) == nil { keys.append(key) }
    }

    /// Appends to the array of tables at `key` in place (taken out of the
    /// dictionary first, so appending does not copy it: thousands of `[[a]]`
    /// stay linear).
    func appendElement(_ key: String, _ element: TOMLTable) {
        guard case .tableArray(var tables)? = entries.removeValue(forKey: key) else { return }
        tables.append(element)
        entries[key] = .tableArray(tables)
    }
}

/// A TOML 1.0 parser (toml.io/en/v1.0.0, its ABNF and its rules on defining
/// tables), in Swift, that reports every error with its line and column and
/// cannot abort.
///
/// It replaced toml++ (through TOMLKit 0.6.0), which checked some malformed
/// input with assertions instead of errors: `[` alone on a line, `[[[a]]]`, a
/// `}` where an array expects a value, and more, each aborting the process
/// (LebJe/TOMLKit#30, marzer/tomlplusplus#301; undefined behaviour in a build
/// without assertions), and whose key listing leaked memory on every read.
/// Messages keep toml++'s wording where it had one.
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
    private let root = TOMLTable(origin: .header, level: 0)
    /// The table the key-value pairs below the last header go to.
    private var current: TOMLTable

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
        current = root
    }

    /// Parses a whole document.
    static func parse(_ text: some Collection<UInt8>) -> Result<TOMLTable, Failure> {
        var parser = TOMLSyntax(Array(text))
        do {
            try parser.document()
            return .success(parser.root)
        } catch {
            return .failure(error)
        }
    }

    /// Nil when `text` is a valid TOML 1.0 document, else its first error.
    static func check(_ text: some Collection<UInt8>) -> Failure? {
        if case .failure(let failure) = parse(text) { return failure }
        return nil
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
                try keyValue(scope: "key-value pair", into: current)
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
        let path = try key(scope: scope)
        skipWhitespace()
        for _ in 0..<(array ? 2 : 1) {
            guard peek == UInt8(ascii: "]") else { throw fail("\(scope): expected ']', saw \(shown(peek))") }
            index += 1
        }
        // The parents: made implicitly, or walked into (an array of tables: its last element).
        var table = root
        func written(_ position: Int) -> String { path[...position].joined(separator: ".") }
        for (position, segment) in path.dropLast().enumerated() {
            switch table.entry(segment) {
            case nil:
                let made = try child(of: table, .implicit)
                table.set(segment, .table(made))
                table = made
            case .table(let next)?:
                guard next.origin != .inline else {
                    throw fail("\(scope): cannot extend inline table '\(written(position))'")
                }
                table = next
            case .tableArray(let tables)?:
                table = tables[tables.count - 1]
            case .value(.table)?:
                throw fail("\(scope): cannot extend inline table '\(written(position))'")
            case .value(let value)?:
                throw fail("\(scope): cannot redefine existing \(value.kindName) '\(written(position))' as a table")
            }
        }
        let last = path[path.count - 1]
        let written = path.joined(separator: ".")
        if array {
            switch table.entry(last) {
            case nil:
                let element = try child(of: table, .arrayElement)
                table.set(last, .tableArray([element]))
                current = element
            case .tableArray?:
                let element = try child(of: table, .arrayElement)
                table.appendElement(last, element)
                current = element
            case .table?:
                throw fail("\(scope): cannot redefine existing table '\(written)' as an array of tables")
            case .value(let value)?:
                throw fail("\(scope): cannot redefine existing \(value.kindName) '\(written)' as an array of tables")
            }
        } else {
            switch table.entry(last) {
            case nil:
                let made = try child(of: table, .header)
                table.set(last, .table(made))
                current = made
            case .table(let existing)? where existing.origin == .implicit:
                existing.origin = .header
                current = existing
            case .table?, .tableArray?:
                throw fail("\(scope): cannot redefine existing table '\(written)'")
            case .value(let value)?:
                throw fail("\(scope): cannot redefine existing \(value.kindName) '\(written)'")
            }
        }
    }

    private mutating func keyValue(scope: String, into table: TOMLTable) throws(Failure) {
        let scope = "Error while parsing \(scope)"
        let path = try key(scope: scope)
        skipWhitespace()
        guard peek == UInt8(ascii: "=") else { throw fail("\(scope): expected '=', saw \(shown(peek))") }
        index += 1
        skipWhitespace()
        // Dotted keys make (or extend) tables of their own kind only (TOML 1.0:
        // not tables defined by a header, not inline ones, not arrays of tables).
        var target = table
        func written(_ position: Int) -> String { path[...position].joined(separator: ".") }
        for (position, segment) in path.dropLast().enumerated() {
            switch target.entry(segment) {
            case nil:
                let made = try child(of: target, .dotted)
                target.set(segment, .table(made))
                target = made
            case .table(let next)? where next.origin == .dotted:
                target = next
            case .table?, .tableArray?:
                throw fail("\(scope): cannot redefine existing table '\(written(position))'")
            case .value(let value)?:
                throw fail("\(scope): cannot redefine existing \(value.kindName) '\(written(position))'")
            }
        }
        let last = path[path.count - 1]
        if let existing = target[last] {
            throw fail("\(scope): cannot redefine existing \(existing.kindName) '\(written(path.count - 1))'")
        }
        target.set(last, .value(try value(level: target.level + 1)))
    }

    /// A new table inside `parent`, within the nesting bound.
    private func child(of parent: TOMLTable, _ origin: TOMLTable.Origin) throws(Failure) -> TOMLTable {
        guard parent.level < Self.maxDepth else {
            throw fail("Error while parsing table: nested deeper than \(Self.maxDepth) levels")
        }
        return TOMLTable(origin: origin, level: parent.level + 1)
    }

    /// A simple or dotted key: its segments, unquoted.
    private mutating func key(scope: String) throws(Failure) -> [String] {
        var segments: [String] = []
        while true {
            guard let byte = peek else { throw fail("\(scope): expected a key, saw end of file") }
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                if self.byte(at: index + 1) == byte && self.byte(at: index + 2) == byte {
                    throw fail("\(scope): multi-line strings are prohibited in keys")
                }
                segments.append(try singleLineString())
            } else if isBareKeyByte(byte) {
                let start = index
                while let next = peek, isBareKeyByte(next) { index += 1 }
                segments.append(String(decoding: bytes[start..<index], as: UTF8.self))
            } else {
                throw fail("\(scope): expected bare key starting character or string delimiter, saw \(shown(byte))")
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ".") else { return segments }
            index += 1
            skipWhitespace()
        }
    }

    // MARK: - Values

    /// A value; `level` is how deep a table made here would be.
    private mutating func value(level: Int) throws(Failure) -> TOMLValue {
        guard let byte = peek else { throw fail("Error while parsing value: expected a value, saw end of file") }
        let start = index
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            if self.byte(at: index + 1) == byte && self.byte(at: index + 2) == byte {
                return .string(try multiLineString())
            }
            return .string(try singleLineString())
        case UInt8(ascii: "["): return try array(level: level)
        case UInt8(ascii: "{"): return try inlineTable(level: level)
        case UInt8(ascii: "t"):
            try literal("true")
            return .boolean(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .boolean(false)
        case UInt8(ascii: "i"):
            try literal("inf")
            return .float(.infinity)
        case UInt8(ascii: "n"):
            try literal("nan")
            return .float(.nan)
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let negative = byte == UInt8(ascii: "-")
            index += 1
            if peek == UInt8(ascii: "i") {
                try literal("inf")
                return .float(negative ? -.infinity : .infinity)
            }
            if peek == UInt8(ascii: "n") {
                try literal("nan")
                return .float(.nan)
            }
            return try number(signed: true, from: start)
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            if digit(at: index + 1) && digit(at: index + 2) && digit(at: index + 3)
                && self.byte(at: index + 4) == UInt8(ascii: "-")
            {
                try dateTime()
                return .dateTime(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            if digit(at: index + 1) && self.byte(at: index + 2) == UInt8(ascii: ":") {
                try time()
                return .dateTime(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            return try number(signed: false, from: start)
        default:
            throw fail("Error while parsing value: expected a value, saw \(shown(byte))")
        }
    }

    private mutating func array(level: Int) throws(Failure) -> TOMLValue {
        try enter("array")
        index += 1  // '['
        var values: [TOMLValue] = []
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
            values.append(try value(level: level + 1))
            try skipWhitespaceCommentsAndNewlines()
            if peek == UInt8(ascii: ",") {
                index += 1
                expectValue = true
            } else {
                expectValue = false
            }
        }
        depth -= 1
        return .array(values)
    }

    private mutating func inlineTable(level: Int) throws(Failure) -> TOMLValue {
        try enter("inline table")
        guard level <= Self.maxDepth else {
            throw fail("Error while parsing inline table: nested deeper than \(Self.maxDepth) levels")
        }
        index += 1  // '{'
        let table = TOMLTable(origin: .inline, level: level)
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .table(table)
        }
        while true {
            skipWhitespace()
            guard let byte = peek, isKeyStart(byte) else {
                throw fail("Error while parsing inline table: expected key, saw \(shown(peek))")
            }
            try keyValue(scope: "inline table", into: table)
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
        return .table(table)
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

    /// Integers (decimal, 0x, 0o, 0b) and floats; a sign at `start` was consumed already.
    private mutating func number(signed: Bool, from start: Int) throws(Failure) -> TOMLValue {
        let scope = "Error while parsing number"
        if peek == UInt8(ascii: "0"), let radix = byte(at: index + 1),
            radix == UInt8(ascii: "x") || radix == UInt8(ascii: "o") || radix == UInt8(ascii: "b")
        {
            guard !signed else { throw fail("\(scope): a sign is not allowed before 0x, 0o or 0b") }
            index += 2
            let digitsStart = index
            let isDigit: (UInt8) -> Bool
            switch radix {
            case UInt8(ascii: "x"): isDigit = { isDigitByte($0) || (0x61...0x66).contains($0 | 0x20) }
            case UInt8(ascii: "o"): isDigit = { (0x30...0x37).contains($0) }
            default: isDigit = { $0 == 0x30 || $0 == 0x31 }
            }
            try digits(scope, isDigit)
            let text = String(decoding: bytes[digitsStart..<index].filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
            let base = radix == UInt8(ascii: "x") ? 16 : radix == UInt8(ascii: "o") ? 8 : 2
            guard let value = Int(text, radix: base) else { throw fail("\(scope): integer out of range") }
            try valueEnds()
            return .integer(value)
        }
        let integerStart = index
        try digits(scope, isDigitByte)
        if bytes[integerStart] == UInt8(ascii: "0") && index - integerStart > 1 {
            throw fail("\(scope): leading zeros are not allowed")
        }
        var isFloat = false
        if peek == UInt8(ascii: ".") {
            index += 1
            try digits(scope, isDigitByte)
            isFloat = true
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            try digits(scope, isDigitByte)
            isFloat = true
        }
        let text = String(decoding: bytes[start..<index].filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
        try valueEnds()
        if isFloat {
            guard let value = Double(text) else { throw fail("\(scope): not a number") }
            return .float(value)
        }
        guard let value = Int(text.hasPrefix("+") ? String(text.dropFirst()) : text) else {
            throw fail("\(scope): integer out of range")
        }
        return .integer(value)
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

    private mutating func singleLineString() throws(Failure) -> String {
        let quote = bytes[index]
        let scope = "Error while parsing string"
        index += 1
        var content: [UInt8] = []
        while true {
            guard let byte = peek else { throw fail("\(scope): encountered end-of-file") }
            if byte == quote {
                index += 1
                return String(decoding: content, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                throw fail("\(scope): encountered a line break before the closing quote")
            }
            try stringByte(quote: quote, scope: scope, into: &content)
        }
    }

    private mutating func multiLineString() throws(Failure) -> String {
        let quote = bytes[index]
        let scope = "Error while parsing multi-line string"
        index += 3
        _ = try lineBreak()  // a line break right after the opening quotes is trimmed
        var content: [UInt8] = []
        while true {
            guard let byte = peek else { throw fail("\(scope): encountered end-of-file") }
            if byte == quote && self.byte(at: index + 1) == quote && self.byte(at: index + 2) == quote {
                index += 3
                // Up to two more quotes belong to the content.
                for _ in 0..<2 where peek == quote {
                    content.append(quote)
                    index += 1
                }
                return String(decoding: content, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                guard try lineBreak() else { throw fail("\(scope): a lone '\\r'") }
                content.append(UInt8(ascii: "\n"))
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
                    while true {
                        skipWhitespace()
                        guard try lineBreak() else { break }
                    }
                    continue
                }
            }
            try stringByte(quote: quote, scope: scope, into: &content)
        }
    }

    /// One character of a string's content (an escape in a basic string), decoded into `content`.
    private mutating func stringByte(quote: UInt8, scope: String, into content: inout [UInt8]) throws(Failure) {
        let byte = bytes[index]
        if quote == UInt8(ascii: "\"") && byte == UInt8(ascii: "\\") {
            index += 1
            guard let escape = peek else { throw fail("\(scope): encountered end-of-file") }
            index += 1
            switch escape {
            case UInt8(ascii: "b"): content.append(0x08)
            case UInt8(ascii: "t"): content.append(0x09)
            case UInt8(ascii: "n"): content.append(0x0A)
            case UInt8(ascii: "f"): content.append(0x0C)
            case UInt8(ascii: "r"): content.append(0x0D)
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): content.append(escape)
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                var value: UInt32 = 0
                for _ in 0..<(escape == UInt8(ascii: "u") ? 4 : 8) {
                    guard let digit = peek, let nibble = hexValue(digit) else {
                        throw fail("\(scope): expected a hexadecimal digit, saw \(shown(peek))")
                    }
                    value = value << 4 | UInt32(nibble)
                    index += 1
                }
                guard let scalar = Unicode.Scalar(value) else {
                    throw fail("\(scope): \\\(Character(Unicode.Scalar(escape))) escape is not a Unicode scalar value")
                }
                content.append(contentsOf: String(Character(scalar)).utf8)
            default:
                throw fail("\(scope): unknown escape sequence '\\\(Character(Unicode.Scalar(escape)))'")
            }
            return
        }
        if isControl(byte) && byte != UInt8(ascii: "\t") {
            throw fail("\(scope): control characters must be escaped, saw \(shown(byte))")
        }
        let start = index
        if byte >= 0x80 { try utf8Scalar() } else { index += 1 }
        content.append(contentsOf: bytes[start..<index])
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
