/// One problem found in a config file: where it is and what was expected.
public struct ConfigIssue: Equatable, Sendable, CustomStringConvertible {
    /// The dotted key path (`websocket.idle_timeout`), empty for syntax errors.
    public var keyPath: String
    /// 1-based line in the file, when known.
    public var line: Int?
    /// 1-based column, known for syntax errors only.
    public var column: Int?
    /// What is wrong, and what was expected.
    public var message: String

    public init(keyPath: String, line: Int?, column: Int? = nil, message: String) {
        self.keyPath = keyPath
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line 12: websocket.idle_timeout: expected …`
    public var description: String {
        var parts: [String] = []
        if let line {
            parts.append(column.map { "line \(line), column \($0)" } ?? "line \(line)")
        }
        if !keyPath.isEmpty { parts.append(keyPath) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// A config file that cannot be used, with every problem found in it.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file, as the operator named it.
    public var file: String
    public var issues: [ConfigIssue]

    public init(file: String, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }

    /// One line per issue, each starting with the file name (and line, when
    /// known) in the `file:line:` form editors and grep understand.
    public var description: String {
        issues.map { issue in
            var location = file
            if let line = issue.line { location += ":\(line)" }
            if let column = issue.column { location += ":\(column)" }
            let key = issue.keyPath.isEmpty ? "" : "\(issue.keyPath): "
            return "\(location): \(key)\(issue.message)"
        }.joined(separator: "\n")
    }
}
