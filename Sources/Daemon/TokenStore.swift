import Control
import EventLoop
import Glibc
import JSONValue
import World

/// Consent tokens: a user's token lets its holder act as that user's consent
/// channel (SPEC §4: nobody can answer for another user). Tokens set in the
/// config file win; the others are generated on first request and kept in the
/// state store (stored before they are shown).
@LoopActor
final class TokenStore {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    var configured: [UserID: String]
    private var stored: [UserID: String]
    private let persist: @LoopActor (UserID, String) throws -> Void

    init(
        configured: [UserID: String], stored: [UserID: String],
        persist: @escaping @LoopActor (UserID, String) throws -> Void
    ) {
        self.configured = configured
        self.stored = stored
        self.persist = persist
    }

    /// The user's token, generated (and stored) when `create` and none exists.
    func token(for user: UserID, create: Bool) throws(Failure) -> String? {
        if let token = configured[user] ?? stored[user] { return token }
        guard create else { return nil }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in
            let byte = String(UInt8.random(in: 0...255, using: &generator), radix: 16)
            return byte.count == 1 ? "0" + byte : byte
        }.joined()
        do {
            try persist(user, token)
        } catch {
            throw Failure(description: "\(error)")
        }
        stored[user] = token
        return token
    }

    /// Whether `candidate` is the user's token (compared in constant time).
    func verify(_ candidate: String?, for user: UserID) -> Bool {
        guard let candidate, let expected = configured[user] ?? stored[user] else { return false }
        let a = Array(candidate.utf8)
        let b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Tokens that version 0.2.0 kept in `tokens.json` in the state directory;
    /// the store's schema migration v2 imports them once.
    nonisolated static func legacyTokens(in directory: String) -> [UserID: String] {
        guard let text = readSmallFile(directory + "/tokens.json"),
            case .object(let members)? = try? JSON.parse(text)
        else { return [:] }
        var tokens: [UserID: String] = [:]
        for (user, value) in members {
            if let token = value.stringValue { tokens[UserID(user)] = token }
        }
        return tokens
    }
}
