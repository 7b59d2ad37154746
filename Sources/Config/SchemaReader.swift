import WebSocketProtocol

/// Reads typed values out of a parsed TOML table, strictly: every key must be
/// known, every value of the expected type and range. Problems are collected
/// (with key path and line) instead of thrown, so one run reports them all.
final class SchemaReader {
    private(set) var issues: [ConfigIssue] = []
    private let locator: KeyLocator

    init(locator: KeyLocator) {
        self.locator = locator
    }

    func report(_ keyPath: String, _ message: String) {
        issues.append(ConfigIssue(keyPath: keyPath, line: locator.line(of: keyPath), message: message))
    }

    /// A view of one table of the document.
    struct Table {
        let reader: SchemaReader
        let table: TOMLTable?
        let path: String

        func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        /// The sub-table `name`, or an empty view when absent or of the wrong type.
        func table(_ name: String) -> Table {
            let keyPath = keyPath(name)
            guard let value = table?[name] else { return Table(reader: reader, table: nil, path: keyPath) }
            guard let sub = value.table else {
                reader.report(keyPath, "expected a table ([\(keyPath)]), found \(describe(value))")
                return Table(reader: reader, table: nil, path: keyPath)
            }
            return Table(reader: reader, table: sub, path: keyPath)
        }

        /// The array of tables `name` (`[[name]]`), each as a view with an indexed path.
        func tables(_ name: String) -> [Table] {
            let keyPath = keyPath(name)
            guard let value = table?[name] else { return [] }
            guard let array = value.array else {
                reader.report(keyPath, "expected an array of tables ([[\(keyPath)]]), found \(describe(value))")
                return []
            }
            var result: [Table] = []
            for (index, element) in array.enumerated() {
                guard let sub = element.table else {
                    reader.report("\(keyPath)[\(index)]", "expected a table, found \(describe(element))")
                    continue
                }
                result.append(Table(reader: reader, table: sub, path: "\(keyPath)[\(index)]"))
            }
            return result
        }

        /// Reports every key not in `known`, suggesting the closest known one.
        func rejectUnknownKeys(_ known: [String]) {
            guard let table else { return }
            for key in table.keys.sorted() where !known.contains(key) {
                var message = "unknown key"
                if let suggestion = closest(to: key, in: known) {
                    message += "; did you mean '\(suggestion)'?"
                } else if !known.isEmpty {
                    message += " (known keys\(path.isEmpty ? "" : " in [\(path)]"): \(known.joined(separator: ", ")))"
                }
                reader.report(keyPath(key), message)
            }
        }

        /// Decodes `key` with `decode`, which returns the value or what was
        /// expected; absent keys keep `defaultValue`.
        func value<T>(
            _ key: String,
            default defaultValue: T,
            _ decode: (TOMLValue) -> Result<T, Expected>
        ) -> T {
            guard let raw = table?[key] else { return defaultValue }
            switch decode(raw) {
            case .success(let value):
                return value
            case .failure(let expected):
                reader.report(keyPath(key), expected.message(found: raw))
                return defaultValue
            }
        }
    }

    /// An array of strings, each decoded by `element`; every bad element is
    /// reported (one line each), the good ones kept.
    func list<T>(
        _ table: Table, _ key: String, default defaultValue: [T],
        _ element: (String) -> Result<T, Expected>
    ) -> [T] {
        guard let raw = table.table?[key] else { return defaultValue }
        guard let array = raw.array else {
            report(table.keyPath(key), Expected(what: "an array of strings").message(found: raw))
            return defaultValue
        }
        var values: [T] = []
        var failed = false
        for (index, item) in array.enumerated() {
            guard let text = item.string else {
                report(table.keyPath(key), "expected element \(index) to be a string, found \(describe(item))")
                failed = true
                continue
            }
            switch element(text) {
            case .success(let value): values.append(value)
            case .failure(let expected):
                report(table.keyPath(key), "element \(index) (\"\(text)\"): \(expected.what)")
                failed = true
            }
        }
        return failed ? defaultValue : values
    }

    /// What a value should have been; `found:` completes the message.
    struct Expected: Error {
        var what: String
        var showFound = true

        func message(found value: TOMLValue) -> String {
            showFound ? "expected \(what), found \(describe(value))" : what
        }
    }
}

/// A short description of a TOML value for error messages.
func describe(_ value: TOMLValue) -> String {
    switch value {
    case .string(let text): return "\"\(text)\""
    case .integer(let number): return "integer \(number)"
    case .float(let number): return "float \(number)"
    case .boolean(let flag): return "boolean \(flag)"
    case .table: return "a table"
    case .array: return "an array"
    case .dateTime: return "a date/time"
    }
}

/// The known key nearest to `key` by edit distance, if it is plausibly a typo.
func closest(to key: String, in known: [String]) -> String? {
    let scored = known.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
    guard let (best, distance) = scored, distance <= max(2, key.count / 4) else { return nil }
    return best
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

// MARK: - Decoders for the value kinds the schema uses

extension SchemaReader.Expected {
    static let durationHint = "a duration such as \"60s\", \"250ms\" or \"1m30s\""
}

enum Decode {
    typealias Expected = SchemaReader.Expected

    static func duration(
        min: Duration = .zero, allowZero: Bool = true, max: Duration = .seconds(86_400)
    ) -> (TOMLValue) -> Result<Duration, Expected> {
        { raw in
            guard let text = raw.string, let value = Units.duration(text) else {
                return .failure(Expected(what: Expected.durationHint))
            }
            if value == .zero && allowZero { return .success(value) }
            guard value >= min, value > .zero || allowZero else {
                let floor =
                    allowZero
                    ? "0s (off) or at least \(Units.format(min))"
                    : "at least \(Units.format(Swift.max(min, .nanoseconds(1))))"
                return .failure(Expected(what: "expected \(floor), found \"\(text)\"", showFound: false))
            }
            guard value <= max else {
                return .failure(
                    Expected(what: "expected at most \(Units.format(max)), found \"\(text)\"", showFound: false))
            }
            return .success(value)
        }
    }

    /// An integer in `range`; `zeroIsOff` says so in the message when 0 means "no limit".
    static func integer(_ range: ClosedRange<Int>, zeroIsOff: Bool = false) -> (TOMLValue) -> Result<Int, Expected> {
        { raw in
            guard let count = raw.int, range.contains(count) else {
                let low = zeroIsOff && range.lowerBound == 0 ? "0 (no limit)" : "\(range.lowerBound)"
                return .failure(Expected(what: "an integer from \(low) to \(range.upperBound)"))
            }
            return .success(count)
        }
    }

    static func size(min: Int64, max: Int64) -> (TOMLValue) -> Result<Int64, Expected> {
        { raw in
            guard let text = raw.string, let value = Units.size(text) else {
                return .failure(Expected(what: "a size such as \"16MiB\", \"64KiB\" or \"512B\""))
            }
            guard value >= min, value <= max else {
                let range = "between \(Units.format(bytes: min)) and \(Units.format(bytes: max))"
                return .failure(Expected(what: "expected a size \(range), found \"\(text)\"", showFound: false))
            }
            return .success(value)
        }
    }

    static func absolutePath(allowEmpty: Bool) -> (TOMLValue) -> Result<String, Expected> {
        { raw in
            guard let path = raw.string else { return .failure(Expected(what: "a file path")) }
            guard (allowEmpty && path.isEmpty) || path.hasPrefix("/") else {
                return .failure(Expected(what: "expected an absolute path, found \"\(path)\"", showFound: false))
            }
            return .success(path)
        }
    }

    static func oneOf<E: RawRepresentable & CaseIterable>(
        _: E.Type
    ) -> (TOMLValue) -> Result<E, Expected> where E.RawValue == String {
        { raw in
            let names = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            guard let text = raw.string, let value = E(rawValue: text) else {
                return .failure(Expected(what: "one of \(names)"))
            }
            return .success(value)
        }
    }

    /// `compression`: "off", "on" or a permessage-deflate offer (RFC 7692 §7.1).
    static func compression(_ raw: TOMLValue) -> Result<DeflateOffer?, Expected> {
        let hint = "\"off\", \"on\" or an offer such as \"permessage-deflate; server_max_window_bits=10\""
        guard let text = raw.string else { return .failure(Expected(what: hint)) }
        switch DeflateOffer.setting(text) {
        case .success(let offer): return .success(offer)
        case .failure(let error):
            return .failure(Expected(what: "expected \(hint), found \"\(text)\": \(error)", showFound: false))
        }
    }

    /// An array of strings, each decoded by `element`; the first bad element is reported.
    static func list<T>(
        _ element: @escaping (String) -> Result<T, Expected>
    ) -> (TOMLValue) -> Result<[T], Expected> {
        { raw in
            guard let array = raw.array else { return .failure(Expected(what: "an array of strings")) }
            var values: [T] = []
            for (index, item) in array.enumerated() {
                guard let text = item.string else {
                    return .failure(
                        Expected(
                            what: "expected element \(index) to be a string, found \(describe(item))", showFound: false)
                    )
                }
                switch element(text) {
                case .success(let value): values.append(value)
                case .failure(var expected):
                    expected.what = "element \(index) (\"\(text)\"): \(expected.what)"
                    expected.showFound = false
                    return .failure(expected)
                }
            }
            return .success(values)
        }
    }
}
