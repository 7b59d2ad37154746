import GRDB
import JSONValue
import World

/// The daemon's durable state (SPEC §8): users, sessions, objects with their
/// records and reactions, every user's host-access decisions, consent tokens,
/// and the declared world last applied from the config. SQLite through GRDB,
/// WAL, `synchronous = FULL`: a write returns only once it is on disk, so a
/// change is acknowledged (or a decision takes effect) after it is stored.
/// Each `write` is one transaction: all of it or nothing.
public final class StateStore {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// What the store holds, read back at start.
    public struct Snapshot {
        public var users: [User] = []
        public var sessions: [Session] = []
        /// Objects by session, ordered by id.
        public var objects: [(session: SessionID, object: WorldObject)] = []
        public var decisions: [UserID: [AccessKey: AccessDecision]] = [:]
        public var tokens: [UserID: String] = [:]
        /// The declared world last applied (nil: never started with this store).
        public var declared: JSON?
        /// Rows that could not be read (left out) or were repaired, one line
        /// each: the store starts without them rather than not at all.
        public var problems: [String] = []

        public var isEmpty: Bool { users.isEmpty && sessions.isEmpty && declared == nil }
    }

    /// One transaction's worth of changes.
    public struct Delta {
        public var users: [User] = []
        public var sessions: [Session] = []
        /// Removing a session removes its objects.
        public var removedSessions: [SessionID] = []
        public var objects: [(session: SessionID, object: WorldObject)] = []
        public var removedObjects: [RecordAddress] = []
        /// A nil decision forgets it.
        public var decisions: [(user: UserID, key: AccessKey, decision: AccessDecision?)] = []
        public var tokens: [(user: UserID, token: String)] = []
        public var declared: JSON?

        public init() {}

        public var isEmpty: Bool {
            users.isEmpty && sessions.isEmpty && removedSessions.isEmpty && objects.isEmpty && removedObjects.isEmpty
                && decisions.isEmpty && tokens.isEmpty && declared == nil
        }
    }

    /// The file, in the state directory.
    public let path: String
    private let database: DatabaseQueue

    /// Opens (creating if needed) `directory/state.sqlite` and brings its
    /// schema up to date. `legacyTokens` are tokens an older version kept
    /// outside the database; the schema migration imports them once.
    public init(directory: String, legacyTokens: [UserID: String] = [:]) throws(Failure) {
        path = directory + "/state.sqlite"
        do {
            var configuration = Configuration()
            configuration.journalMode = .wal
            configuration.prepareDatabase { db in
                // Durable at commit, also across power loss (WAL + FULL).
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            database = try DatabaseQueue(path: path, configuration: configuration)
            try Self.migrator(legacyTokens: legacyTokens).migrate(database)
        } catch {
            throw Failure("\(path): \(error)")
        }
    }

    /// The schema, one migration per version. A new version appends a
    /// migration; old ones never change.
    static func migrator(legacyTokens: [UserID: String]) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // v1: the world and the decisions.
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL);
                    CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL);
                    CREATE TABLE objects (
                        session TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session, id));
                    CREATE TABLE decisions (
                        user TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL, scope TEXT NOT NULL,
                        verdict TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (user, host, port, scope));
                    CREATE TABLE declared (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
                    """)
        }
        // v2: consent tokens move into the database (they were a JSON file);
        // a meta table for the store's own bookkeeping (the write probe).
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tokens (user TEXT PRIMARY KEY NOT NULL, token TEXT NOT NULL);
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    """)
            for (user, token) in legacyTokens {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO tokens (user, token) VALUES (?, ?)", arguments: [user.rawValue, token])
            }
        }
        return migrator
    }

    /// The migrations applied to the file, oldest first.
    public func appliedMigrations() throws(Failure) -> [String] {
        do {
            return try database.read { db in try Self.migrator(legacyTokens: [:]).appliedMigrations(db) }
        } catch {
            throw Failure("\(path): \(error)")
        }
    }

    public func load() throws(Failure) -> Snapshot {
        do {
            return try database.read { db in
                var snapshot = Snapshot()
                // A row that cannot be read is reported and left out: one bad
                // row never keeps the daemon from starting.
                func each(_ sql: String, _ name: (Row) -> String, _ read: (Row) throws -> Void) throws {
                    for row in try Row.fetchAll(db, sql: sql) {
                        do {
                            try read(row)
                        } catch {
                            snapshot.problems.append("\(name(row)): \(error); left out")
                        }
                    }
                }
                try each("SELECT id, body FROM users ORDER BY id", { "user \($0["id"] as String)" }) {
                    snapshot.users.append(try WorldCoding.user(try Self.json($0)))
                }
                try each("SELECT id, body FROM sessions ORDER BY id", { "session \($0["id"] as String)" }) {
                    snapshot.sessions.append(try WorldCoding.session(try Self.json($0)))
                }
                let objectName = { (row: Row) in "object \(row["session"] as String)/\(row["id"] as String)" }
                try each("SELECT session, id, body FROM objects ORDER BY session, id", objectName) { row in
                    var repairs: [String] = []
                    let object = try WorldCoding.object(try Self.json(row), repairs: &repairs)
                    snapshot.objects.append((SessionID(row["session"] as String), object))
                    for repair in repairs { snapshot.problems.append("\(objectName(row)): \(repair)") }
                }
                for row in try Row.fetchAll(db, sql: "SELECT * FROM decisions") {
                    let user: String = row["user"]
                    let host: String = row["host"]
                    let port: Int = row["port"]
                    let verdict: String = row["verdict"]
                    let reason: String = row["reason"]
                    guard let port = UInt16(exactly: port), let verdict = AccessDecision.Verdict(rawValue: verdict)
                    else {
                        snapshot.problems.append("a decision of \(user) for \(host) is unreadable; left out")
                        continue
                    }
                    snapshot.decisions[UserID(user), default: [:]][AccessKey(host: host, port: port)] =
                        AccessDecision(verdict: verdict, reason: reason)
                }
                for row in try Row.fetchAll(db, sql: "SELECT user, token FROM tokens") {
                    let user: String = row["user"]
                    snapshot.tokens[UserID(user)] = row["token"]
                }
                if let row = try Row.fetchOne(db, sql: "SELECT body FROM declared WHERE id = 1") {
                    do {
                        snapshot.declared = try Self.json(row)
                    } catch {
                        snapshot.problems.append("the declared world: \(error); the config applies in full")
                    }
                }
                return snapshot
            }
        } catch let failure as Failure {
            throw Failure("\(path): \(failure.description)")
        } catch {
            throw Failure("\(path): \(error)")
        }
    }

    /// Stores `delta` in one transaction; on disk when this returns. A value
    /// that would not read back as written is refused before anything is
    /// stored (a bad row must never reach the disk).
    public func write(_ delta: Delta) throws(Failure) {
        guard !delta.isEmpty else { return }
        for (session, object) in delta.objects {
            var repairs: [String] = []
            let encoded = WorldCoding.encode(object)
            do {
                let decoded = try WorldCoding.object(try JSON.parse(encoded.description), repairs: &repairs)
                guard repairs.isEmpty, decoded == object else {
                    throw WorldCoding.Failure(description: repairs.first ?? "reads back differently")
                }
            } catch {
                throw Failure("object \(session)/\(object.id) cannot be stored: \(error)")
            }
        }
        do {
            try database.write { db in
                for user in delta.users {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO users (id, body) VALUES (?, ?)",
                        arguments: [user.id.rawValue, WorldCoding.encode(user).description])
                }
                for id in delta.removedSessions {
                    try db.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [id.rawValue])
                    try db.execute(sql: "DELETE FROM objects WHERE session = ?", arguments: [id.rawValue])
                }
                for session in delta.sessions {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO sessions (id, body) VALUES (?, ?)",
                        arguments: [session.id.rawValue, WorldCoding.encode(session).description])
                }
                for address in delta.removedObjects {
                    try db.execute(
                        sql: "DELETE FROM objects WHERE session = ? AND id = ?",
                        arguments: [address.session.rawValue, address.object.rawValue])
                }
                for (session, object) in delta.objects {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO objects (session, id, body) VALUES (?, ?, ?)",
                        arguments: [session.rawValue, object.id.rawValue, WorldCoding.encode(object).description])
                }
                for (user, key, decision) in delta.decisions {
                    if let decision {
                        try db.execute(
                            sql: """
                                INSERT OR REPLACE INTO decisions (user, host, port, scope, verdict, reason)
                                VALUES (?, ?, ?, ?, ?, ?)
                                """,
                            arguments: [
                                user.rawValue, key.host, Int(key.port), key.scope.rawValue, decision.verdict.rawValue,
                                decision.reason,
                            ])
                    } else {
                        try db.execute(
                            sql: "DELETE FROM decisions WHERE user = ? AND host = ? AND port = ? AND scope = ?",
                            arguments: [user.rawValue, key.host, Int(key.port), key.scope.rawValue])
                    }
                }
                for (user, token) in delta.tokens {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO tokens (user, token) VALUES (?, ?)",
                        arguments: [user.rawValue, token])
                }
                if let declared = delta.declared {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO declared (id, body) VALUES (1, ?)",
                        arguments: [declared.description])
                }
            }
        } catch {
            throw Failure("cannot store the change in \(path): \(error)")
        }
    }

    /// A write that changes nothing, to see whether the disk takes writes again.
    public func probe() throws(Failure) {
        do {
            try database.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', datetime('now'))")
            }
        } catch {
            throw Failure("\(path): \(error)")
        }
    }

    private static func json(_ row: Row) throws -> JSON {
        let text: String = row["body"]
        return try JSON.parse(text)
    }
}
