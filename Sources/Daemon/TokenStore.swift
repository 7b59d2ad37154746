import Control
import EventLoop
import Glibc
import World

/// Consent tokens: a user's token lets its holder act as that user's consent
/// channel (SPEC §4: nobody can answer for another user). Tokens set in the
/// config file win; the others are generated on first request and kept in
/// `tokens.json` in the state directory (mode 0600, written atomically).
@LoopActor
final class TokenStore {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let directory: String
    var configured: [UserID: String]
    private var generated: [UserID: String]?

    init(directory: String, configured: [UserID: String]) {
        self.directory = directory
        self.configured = configured
    }

    private var path: String { directory + "/tokens.json" }

    /// The user's token, generated (and stored) when `create` and none exists.
    func token(for user: UserID, create: Bool) throws(Failure) -> String? {
        if let token = configured[user] { return token }
        var tokens = try load()
        if let token = tokens[user] { return token }
        guard create else { return nil }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(UInt8.random(in: 0...255, using: &generator), radix: 16) }
            .map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        tokens[user] = token
        try save(tokens)
        generated = tokens
        return token
    }

    /// Whether `candidate` is the user's token (compared in constant time).
    func verify(_ candidate: String?, for user: UserID) -> Bool {
        guard let candidate, let expected = try? token(for: user, create: false) else { return false }
        let a = Array(candidate.utf8)
        let b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    private func load() throws(Failure) -> [UserID: String] {
        if let generated { return generated }
        guard let text = readSmallFile(path) else {
            if errno == ENOENT {
                generated = [:]
                return [:]
            }
            throw Failure(description: "\(path): \(String(cString: strerror(errno)))")
        }
        guard case .object(let members)? = try? JSON.parse(text) else {
            throw Failure(description: "\(path): not a JSON object of user ids and tokens")
        }
        var tokens: [UserID: String] = [:]
        for (user, value) in members {
            if let token = value.stringValue { tokens[UserID(user)] = token }
        }
        generated = tokens
        return tokens
    }

    private func save(_ tokens: [UserID: String]) throws(Failure) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw Failure(description: "\(directory): \(String(cString: strerror(errno)))")
        }
        let text =
            JSON.object(Dictionary(uniqueKeysWithValues: tokens.map { ($0.key.rawValue, .string($0.value)) }))
            .description + "\n"
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "\(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw Failure(description: "\(temporary): \(message)")
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw Failure(description: "\(temporary): \(message)")
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure(description: "\(path): \(message)")
        }
        // The rename itself is durable once the directory is synced.
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }
}
