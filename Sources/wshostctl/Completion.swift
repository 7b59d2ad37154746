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

    /// The objects of the session named by the word before the one completed
    /// (`objects show SESSION <Tab>`), or of `--session` when there is one.
    static let objects = CompletionKind.custom { words, index, prefix in
        guard let session = sessionWord(words: words, index: index) else { return [] }
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
    static func socket(in words: [String]) -> String { SocketPath.resolve(socketOption(in: words)) }

    /// The value of the last `--socket X` or `--socket=X` among `words` (pure).
    static func socketOption(in words: [String]) -> String? {
        var found: String?
        var index = words.startIndex
        while index < words.endIndex {
            let word = words[index]
            if word == "--socket", index + 1 < words.endIndex {
                found = words[index + 1]
                index += 1
            } else if word.hasPrefix("--socket=") {
                found = String(word.dropFirst("--socket=".count))
            }
            index += 1
        }
        return found
    }

    /// The session an object completion is for: `--session X` anywhere on
    /// the line, else the word just before the one completed when that is not
    /// an option (pure).
    static func sessionWord(words: [String], index: Int) -> String? {
        if let option = option("--session", in: words) { return option }
        guard index >= 1, index - 1 < words.count else { return nil }
        let previous = words[index - 1]
        return previous.isEmpty || previous.hasPrefix("-") ? nil : previous
    }

    private static func option(_ name: String, in words: [String]) -> String? {
        for (offset, word) in words.enumerated() {
            if word == name, offset + 1 < words.count { return words[offset + 1] }
            if word.hasPrefix(name + "=") { return String(word.dropFirst(name.count + 1)) }
        }
        return nil
    }
}
