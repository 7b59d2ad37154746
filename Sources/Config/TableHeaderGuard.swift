/// Finds the table headers that the bundled toml++ cannot be given.
///
/// toml++ as bundled with TOMLKit 0.6.0 checks a table header's first key
/// character with an assertion instead of an error: `[` alone on a line,
/// `[[`, `[[[a]]]`, `[[=` or `[\u{2}` abort the process (LebJe/TOMLKit#30,
/// fixed upstream in marzer/tomlplusplus#301, not in the bundled copy; in a
/// build without assertions the same input is undefined behaviour). The
/// parser never sees such a header: this scan finds the first one, and the
/// config reader reports it as a syntax error at its line.
///
/// The scan follows TOML's statement structure only as far as it needs to:
/// comments, the four kinds of strings and the brackets of array and inline
/// table values, so that a `[` inside a value (a nested array on its own
/// line, a string) is not taken for a header. Pure; linear in the input.
enum TableHeaderGuard {
    struct Finding: Equatable {
        /// 1-based, as toml++ counts.
        var line: Int
        var column: Int
        /// Byte offset of the header's `[` (the text before it is free of findings).
        var offset: Int
    }

    static func firstUnsafeHeader(in bytes: some Collection<UInt8>) -> Finding? {
        let text = Array(bytes)
        var index = 0
        var line = 1
        var lineStart = 0
        /// Nesting of `[` and `{` in values.
        var depth = 0
        /// Only spaces and tabs since the line began.
        var atLineStart = true

        func at(_ offset: Int) -> UInt8? { offset < text.count ? text[offset] : nil }
        func startsWith(_ pattern: [UInt8], at offset: Int) -> Bool {
            offset + pattern.count <= text.count && text[offset..<offset + pattern.count].elementsEqual(pattern)
        }
        func newline(at offset: Int) {
            line += 1
            lineStart = offset + 1
            atLineStart = true
        }

        while index < text.count {
            let byte = text[index]
            switch byte {
            case UInt8(ascii: "\n"):
                newline(at: index)
                index += 1
                continue
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                index += 1
                continue
            case UInt8(ascii: "#"):
                while index < text.count && text[index] != UInt8(ascii: "\n") { index += 1 }
                continue
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                atLineStart = false
                let triple = [byte, byte, byte]
                if startsWith(triple, at: index) {
                    // Multi-line: ends at the next unescaped triple quote.
                    index += 3
                    while index < text.count && !startsWith(triple, at: index) {
                        if byte == UInt8(ascii: "\"") && text[index] == UInt8(ascii: "\\") { index += 1 }
                        if index < text.count && text[index] == UInt8(ascii: "\n") { newline(at: index) }
                        index += 1
                    }
                    atLineStart = false
                    index += 3
                } else {
                    // One line: ends at the closing quote or the line's end.
                    index += 1
                    while let next = at(index), next != byte, next != UInt8(ascii: "\n") {
                        if byte == UInt8(ascii: "\"") && next == UInt8(ascii: "\\")
                            && at(index + 1) != UInt8(ascii: "\n")
                        {
                            index += 1
                        }
                        index += 1
                    }
                    if at(index) == byte { index += 1 }
                }
                continue
            case UInt8(ascii: "[") where depth == 0 && atLineStart:
                // A table header: what toml++ will hand to its key parser.
                let start = index
                var probe = index + 1
                while at(probe) == UInt8(ascii: " ") || at(probe) == UInt8(ascii: "\t") { probe += 1 }
                if probe == index + 1, at(probe) == UInt8(ascii: "[") {
                    probe += 1
                    while at(probe) == UInt8(ascii: " ") || at(probe) == UInt8(ascii: "\t") { probe += 1 }
                } else if at(probe) == UInt8(ascii: "[") {
                    // `[ [`: toml++ reports this one itself.
                    probe = -1
                }
                if probe >= 0, let first = at(probe), !isKeyStart(first), first != UInt8(ascii: "]") {
                    return Finding(line: line, column: start - lineStart + 1, offset: start)
                }
                // The rest of the header line (a quoted key may hold brackets).
                atLineStart = false
                index += 1
                while let next = at(index), next != UInt8(ascii: "\n"), next != UInt8(ascii: "#") {
                    if next == UInt8(ascii: "\"") || next == UInt8(ascii: "'") {
                        index += 1
                        while let inner = at(index), inner != next, inner != UInt8(ascii: "\n") {
                            if next == UInt8(ascii: "\"") && inner == UInt8(ascii: "\\") { index += 1 }
                            index += 1
                        }
                        if at(index) != next { break }  // unterminated: the line ends here
                    }
                    index += 1
                }
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            default:
                break
            }
            atLineStart = false
            index += 1
        }
        return nil
    }

    /// What toml++'s key parser may start with (TOML 1.0: a bare key
    /// character or a quote).
    static func isKeyStart(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""),
            UInt8(ascii: "'"):
            return true
        default:
            return false
        }
    }
}
