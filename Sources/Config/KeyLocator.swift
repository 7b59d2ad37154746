/// Finds the line on which a key path is written in a TOML document.
///
/// The parser (`TOMLSyntax`) reports positions for syntax errors; this
/// scanner recovers the line of `[table]` headers and `key = value` lines so
/// that schema errors can name it too. It runs only on documents that already
/// parsed, so it can be simple: it follows table headers (including arrays of
/// tables, numbered as `name[0]`), dotted and quoted keys, and skips the inside
/// of multi-line strings and arrays.
struct KeyLocator {
    private var lines: [String: Int] = [:]

    init(source: String) {
        var table: [String] = []
        var arrayCounts: [String: Int] = [:]
        var multilineString: String?  // the delimiter while inside one
        var bracketDepth = 0
        for (index, rawLine) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var line = Substring(rawLine)
            if let delimiter = multilineString {
                guard let end = line.firstRange(of: delimiter) else { continue }
                multilineString = nil
                line = line[end.upperBound...]
                bracketDepth += Self.bracketDelta(line, multiline: &multilineString)
                continue
            }
            if bracketDepth > 0 {
                bracketDepth += Self.bracketDelta(line, multiline: &multilineString)
                continue
            }
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.hasPrefix("[[") {
                let parts = Self.keyParts(trimmed.dropFirst(2).prefix(while: { $0 != "]" }))
                var resolved = Self.resolve(parts.dropLast(), arrayCounts: arrayCounts)
                let name = (resolved.isEmpty ? "" : resolved + ".") + (parts.last ?? "")
                let count = arrayCounts[name, default: 0]
                arrayCounts[name] = count + 1
                resolved = "\(name)[\(count)]"
                table = [resolved]
                record(resolved, lineNumber)
            } else if trimmed.hasPrefix("[") {
                let parts = Self.keyParts(trimmed.dropFirst().prefix(while: { $0 != "]" }))
                let resolved = Self.resolve(parts[...], arrayCounts: arrayCounts)
                table = [resolved]
                record(resolved, lineNumber)
            } else if let equals = Self.assignment(trimmed) {
                let parts = Self.keyParts(trimmed[..<equals])
                let prefix = table.first.map { $0.isEmpty ? "" : $0 + "." } ?? ""
                record(prefix + parts.joined(separator: "."), lineNumber)
                let value = trimmed[trimmed.index(after: equals)...]
                bracketDepth = Self.bracketDelta(value, multiline: &multilineString)
            }
        }
    }

    private mutating func record(_ path: String, _ line: Int) {
        if lines[path] == nil { lines[path] = line }
    }

    /// The line of `path`, or of its nearest written ancestor.
    func line(of path: String) -> Int? {
        var candidate = path
        while true {
            if let line = lines[candidate] { return line }
            guard let dot = candidate.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            candidate = String(candidate[..<dot])
        }
    }

    /// Replaces each prefix that names an array of tables by its latest element.
    private static func resolve(_ parts: ArraySlice<String>, arrayCounts: [String: Int]) -> String {
        var resolved = ""
        for part in parts {
            resolved = resolved.isEmpty ? part : resolved + "." + part
            if let count = arrayCounts[resolved] { resolved += "[\(count - 1)]" }
        }
        return resolved
    }

    /// The index of the `=` of a `key = value` line, if this is one.
    private static func assignment(_ line: Substring) -> Substring.Index? {
        guard let first = line.first, first != "#" else { return nil }
        var quote: Character?
        for index in line.indices {
            let c = line[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "=" {
                return index
            }
        }
        return nil
    }

    /// Splits `a."b.c".d` into `["a", "b.c", "d"]`.
    private static func keyParts(_ key: Substring) -> [String] {
        var parts: [String] = []
        var current = ""
        var quote: Character?
        for c in key {
            if let q = quote {
                if c == q { quote = nil } else { current.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "." {
                parts.append(current)
                current = ""
            } else if c != " " && c != "\t" {
                current.append(c)
            }
        }
        parts.append(current)
        return parts
    }

    /// Net `[`/`{` minus `]`/`}` outside strings and comments; notes an
    /// unterminated multi-line string.
    private static func bracketDelta(_ text: Substring, multiline: inout String?) -> Int {
        var depth = 0
        var rest = text
        while let c = rest.first {
            if rest.hasPrefix("\"\"\"") || rest.hasPrefix("'''") {
                let delimiter = String(rest.prefix(3))
                rest = rest.dropFirst(3)
                guard let end = rest.firstRange(of: delimiter) else {
                    multiline = delimiter
                    return depth
                }
                rest = rest[end.upperBound...]
                continue
            }
            rest = rest.dropFirst()
            switch c {
            case "#": return depth
            case "[", "{": depth += 1
            case "]", "}": depth -= 1
            case "\"", "'":
                var escaped = false
                while let d = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        escaped = false
                    } else if d == "\\" && c == "\"" {
                        escaped = true
                    } else if d == c {
                        break
                    }
                }
            default: break
            }
        }
        return depth
    }
}
