import Foundation
import Testing

@testable import Config

/// The configuration's man page, man/wshostd.toml.5 (installed as
/// wshostd.toml(5) by the Debian package), cannot fall behind the schema:
/// every key has an entry in its table's subsection, with the default the
/// example file (proven elsewhere to be the real default) gives, and what a
/// reload does with it.
@Suite("man/wshostd.toml.5 documents every key, its default and its reload behaviour")
struct ManPageTests {
    static let pagePath = URL(fileURLWithPath: exampleConfigPath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("man/wshostd.toml.5").path

    /// One `.It Cm KEY` entry: the lines up to the next entry or heading.
    struct Entry {
        var key: String
        var lines: [String]
    }

    /// Subsection title (`.Ss [log]`) → its entries, in order.
    static func entries(of page: String) -> [String: [Entry]] {
        var result: [String: [Entry]] = [:]
        var section: String?
        for line in page.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix(".Sh ") {
                section = nil
            } else if line.hasPrefix(".Ss ") {
                section = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces)
                result[section!, default: []] += []
            } else if let section, line.hasPrefix(".It Cm ") {
                let key = line.dropFirst(7).split(separator: " ").first.map(String.init) ?? ""
                result[section]!.append(Entry(key: key, lines: []))
            } else if let section, !(result[section]?.isEmpty ?? true) {
                result[section]![result[section]!.count - 1].lines.append(line)
            }
        }
        return result
    }

    /// `[table]` → key → the text right of `=` in the example file.
    static func exampleValues() throws -> [String: [String: String]] {
        var values: [String: [String: String]] = [:]
        var table = ""
        for line in try String(contentsOfFile: exampleConfigPath, encoding: .utf8).split(separator: "\n") {
            if line.hasPrefix("[") && !line.hasPrefix("[[") {
                table = String(line.dropFirst().prefix { $0 != "]" })
            } else if !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces)
                values[table, default: [:]][key] = line[line.index(after: equals)...].trimmingCharacters(
                    in: .whitespaces)
            }
        }
        return values
    }

    /// `.Ql "info"` → `"info"` (the mdoc escapes this page uses undone).
    static func literal(_ line: String) -> String? {
        guard line.hasPrefix(".Ql ") else { return nil }
        return String(line.dropFirst(4)).replacingOccurrences(of: "\\&", with: "")
            .replacingOccurrences(of: "\\e", with: "\\")
    }

    @Test("every table and key of the schema, with its default and reload line")
    func everyDaemonKey() throws {
        let entries = Self.entries(of: try String(contentsOfFile: Self.pagePath, encoding: .utf8))
        let example = try Self.exampleValues()
        #expect(!DaemonConfig.schema.isEmpty)
        for (table, keys) in DaemonConfig.schema.sorted(by: { $0.key < $1.key }) {
            guard let documented = entries["[\(table)]"] else {
                Issue.record("no .Ss [\(table)] subsection")
                continue
            }
            #expect(documented.map(\.key).sorted() == keys.sorted(), "[\(table)]: keys documented ≠ schema")
            for key in keys {
                guard let entry = documented.first(where: { $0.key == key }) else { continue }
                #expect(entry.lines.contains { $0.hasPrefix("Reload:") }, "[\(table)] \(key): no Reload: line")
                guard let index = entry.lines.firstIndex(where: { $0.hasPrefix("Default:") }) else {
                    Issue.record("[\(table)] \(key): no Default: line")
                    continue
                }
                let shown =
                    entry.lines[index] == "Default:" && index + 1 < entry.lines.count
                    ? Self.literal(entry.lines[index + 1]) : nil
                #expect(
                    shown == example[table]?[key],
                    "[\(table)] \(key): the page's default \(shown ?? "(none)") ≠ the example file's \(example[table]?[key] ?? "(none)")"
                )
            }
        }
    }

    @Test("every key of the declared world")
    func everyWorldKey() throws {
        let entries = Self.entries(of: try String(contentsOfFile: Self.pagePath, encoding: .utf8))
        let tables: [(String, [String])] = [
            ("[[users]]", DeclaredWorld.userKeys), ("[[sessions]]", DeclaredWorld.sessionKeys),
            ("[[sessions.objects]]", DeclaredWorld.objectKeys),
            ("[[sessions.objects.reactions]]", DeclaredWorld.reactionKeys),
        ]
        for (table, keys) in tables {
            guard let documented = entries[table] else {
                Issue.record("no .Ss \(table) subsection")
                continue
            }
            #expect(documented.map(\.key).sorted() == keys.sorted(), "\(table): keys documented ≠ the parser's")
        }
    }

    @Test("the parser of this test finds what it looks for (a page with a missing key fails)")
    func parserSeesAMissingKey() {
        let page = """
            .Sh FILE FORMAT
            .Ss [log]
            .Bl -tag -width Ds
            .It Cm level
            Default:
            .Ql "info"
            .Pp
            Reload: applied.
            .El
            .Sh SEE ALSO
            """
        let entries = Self.entries(of: page)
        #expect(entries["[log]"]?.map(\.key) == ["level"])
        #expect(entries["[log]"]?.first?.lines.contains("Reload: applied.") == true)
        #expect(Self.literal(".Ql \"info\"") == "\"info\"")
        #expect(!(entries["[log]"]?.map(\.key).contains("target") ?? true))
    }
}
