import ArgumentParser
import Control
import JSONValue
import World

/// Shell completion of names the running daemon knows: sessions, users and a
/// session's objects. The generated bash, zsh and fish scripts call
/// `wshostctl ---completion …` on Tab; these closures ask the daemon at the
/// socket the command line names (`--socket`, else `$WSHOSTCTL_SOCKET`, else
/// the default) with a short timeout. Any failure completes nothing: a Tab
/// never prints an error or waits on a stuck daemon.
enum Complete {
    /// How long a completion waits for the daemon (connect, send, receive).
    static let timeoutSeconds = 1

    static let sessions = CompletionKind.custom { words, _, prefix in
        names(words: words, prefix: prefix, request: .sessionsList, list: "sessions")
    }

    static let users = CompletionKind.custom { words, _, prefix in
        names(words: words, prefix: prefix, request: .usersList(session: nil), list: "users")
    }

    /// The objects of the session named by the positional argument before
    /// the one completed (`objects show SESSION <Tab>`).
    static let objects = CompletionKind.custom { words, index, prefix in
        objectNames(in: Line(words: words, index: index).positionals.last, words: words, prefix: prefix)
    }

    /// The objects of the session given with `--session` (`events --session
    /// S --object <Tab>`); nothing without one.
    static let objectsOfSessionOption = CompletionKind.custom { words, index, prefix in
        objectNames(in: Line(words: words, index: index).options["--session"], words: words, prefix: prefix)
    }

    private static func objectNames(in session: String?, words: [String], prefix: String) -> [String] {
        guard let session else { return [] }
        return names(words: words, prefix: prefix, request: .objectsList(SessionID(session)), list: "objects")
    }

    static let userKinds = CompletionKind.list(["headless", "interactive"])
    static let answers = CompletionKind.list(["allow", "deny", "ignore"])
    static let compression = CompletionKind.list(["off", "on", "inherit"])
    static let reactionEvents = CompletionKind.list(["connected", "received", "disconnected"])

    /// The ids in `result[list]` that start with `prefix`, sorted.
    static func names(words: [String], prefix: String, request: ControlCommand, list: String) -> [String] {
        guard let connection = try? Connection(path: socket(in: words), timeoutSeconds: timeoutSeconds),
            let result = try? connection.request(request)
        else { return [] }
        return matching(result[list]?.arrayValue ?? [], prefix: prefix)
    }

    /// The `id` fields of `items` that start with `prefix`, sorted (pure).
    static func matching(_ items: [JSON], prefix: String) -> [String] {
        items.compactMap { $0["id"]?.stringValue }.filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// The socket the command line names (pure but for the environment).
    static func socket(in words: [String]) -> String {
        SocketPath.resolve(Line(words: words, index: words.count).options["--socket"])
    }

    /// The long options of wshostctl that take a value; every other option is
    /// a flag. `CompletionTests` checks this list against the parser's own.
    static let valueOptions: Set<String> = [
        "--access-reason", "--binary-file", "--compression", "--enabled", "--forward", "--host", "--kind",
        "--name", "--object", "--on", "--retry-interval", "--send", "--session", "--since", "--socket",
        "--spawned-by", "--text", "--token", "--type", "--url", "--user",
    ]

    /// A command line as the shell split it, read without the parser (pure):
    /// the positional words before the one completed (subcommand names
    /// included) and the value of each option anywhere on the line but the
    /// word completed, the last occurrence winning. `--opt=value` arrives
    /// whole from zsh and fish, and as `--opt`, `=`, `value` from bash,
    /// which breaks words at `=`.
    struct Line {
        var positionals: [String] = []
        var options: [String: String] = [:]

        init(words: [String], index: Int) {
            var position = 1  // words[0] is the command itself
            var afterTerminator = false
            while position < words.count {
                defer { position += 1 }
                let word = words[position]
                if position == index { continue }
                if afterTerminator || !word.hasPrefix("-") || word == "-" {
                    if position < index { positionals.append(word) }
                    continue
                }
                if word == "--" {
                    afterTerminator = true
                    continue
                }
                if let equals = word.firstIndex(of: "=") {
                    options[String(word[..<equals])] = String(word[word.index(after: equals)...])
                    continue
                }
                guard Complete.valueOptions.contains(word) else { continue }
                var value = position + 1
                if value < words.count, words[value] == "=" { value += 1 }
                guard value < words.count, value != index else {
                    position = value
                    continue
                }
                options[word] = words[value]
                position = value
            }
        }
    }
}
