import JSONValue
import WebSocketProtocol
import World

/// How world values are written in the state store: one JSON document per
/// row, so that a new optional field needs no schema change. The store's own
/// format (not the control protocol's views, which may change with the
/// protocol); databases written by earlier releases read back (a checked-in
/// fixture is tested). Pure; every value reads back as what was written.
public enum WorldCoding {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    // MARK: Users

    public static func encode(_ user: User) -> JSON {
        .object(["id": .string(user.id.rawValue), "name": .string(user.name), "kind": .string(user.kind.rawValue)])
    }

    public static func user(_ json: JSON) throws(Failure) -> User {
        User(
            id: UserID(try string(json, "id")), name: try string(json, "name"),
            kind: try enumeration(json, "kind", UserKind.self))
    }

    // MARK: Sessions

    public static func encode(_ session: Session) -> JSON {
        .object([
            "id": .string(session.id.rawValue), "name": .string(session.name), "host": .string(session.host.rawValue),
            "present": .array(session.present.sorted().map { .string($0.rawValue) }),
        ])
    }

    public static func session(_ json: JSON) throws(Failure) -> Session {
        guard let present = json["present"]?.arrayValue else { throw Failure(description: "session: no present list") }
        var users = Set<UserID>()
        for item in present {
            guard let id = item.stringValue else {
                throw Failure(description: "session: a present user is not a string")
            }
            users.insert(UserID(id))
        }
        return Session(
            id: SessionID(try string(json, "id")), name: try string(json, "name"),
            host: UserID(try string(json, "host")), present: users)
    }

    // MARK: Objects, with their record and reactions

    public static func encode(_ object: WorldObject) -> JSON {
        var members: [String: JSON] = [
            "id": .string(object.id.rawValue), "name": .string(object.name),
            "reactions": .array(object.reactions.map(encode)),
        ]
        for (key, value) in [
            ("wornBy", object.wornBy), ("definedUser", object.definedUser), ("spawnedBy", object.spawnedBy),
            ("interactingUser", object.interactingUser),
        ] {
            if let value { members[key] = .string(value.rawValue) }
        }
        if let record = object.record { members["record"] = encode(record) }
        return .object(members)
    }

    /// An object; values out of range are brought into it silently.
    public static func object(_ json: JSON) throws(Failure) -> WorldObject {
        var repairs: [String] = []
        return try object(json, repairs: &repairs)
    }

    /// An object; `repairs` gets a line for each value that was out of range
    /// and was brought back into it.
    public static func object(_ json: JSON, repairs: inout [String]) throws(Failure) -> WorldObject {
        var object = WorldObject(id: ObjectID(try string(json, "id")), name: try string(json, "name"))
        object.wornBy = try optionalString(json, "wornBy").map { UserID($0) }
        object.definedUser = try optionalString(json, "definedUser").map { UserID($0) }
        object.spawnedBy = try optionalString(json, "spawnedBy").map { UserID($0) }
        object.interactingUser = try optionalString(json, "interactingUser").map { UserID($0) }
        if let record = json["record"], record != .null { object.record = try self.record(record, repairs: &repairs) }
        guard let reactions = json["reactions"]?.arrayValue else { throw Failure(description: "object: no reactions") }
        for reaction in reactions { object.reactions.append(try self.reaction(reaction)) }
        return object
    }

    public static func encode(_ record: RecordSettings) -> JSON {
        var members: [String: JSON] = [
            "accessReason": .string(record.accessReason), "enabled": .bool(record.enabled),
            "connectRetryIntervalNs": .int(Int(record.connectRetryInterval.nanosecondsClamped)),
        ]
        if let url = record.url { members["url"] = .string(url.description) }
        if case .pinned(let user) = record.handlingUser { members["pinnedUser"] = .string(user.rawValue) }
        if let compression = record.compression { members["compression"] = .string(compression.description) }
        return .object(members)
    }

    public static func record(_ json: JSON) throws(Failure) -> RecordSettings {
        var repairs: [String] = []
        return try record(json, repairs: &repairs)
    }

    public static func record(_ json: JSON, repairs: inout [String]) throws(Failure) -> RecordSettings {
        var record = RecordSettings()
        if let text = try optionalString(json, "url") {
            guard case .success(let url) = WebSocketURL.parse(text) else {
                throw Failure(description: "record: bad url \"\(text)\"")
            }
            record.url = url
        }
        record.handlingUser = try optionalString(json, "pinnedUser").map { .pinned(UserID($0)) } ?? .automatic
        record.accessReason = try string(json, "accessReason")
        guard let enabled = json["enabled"]?.boolValue else { throw Failure(description: "record: no enabled") }
        record.enabled = enabled
        // Absent in rows stored before records had their own compression: the daemon's setting.
        if let text = try optionalString(json, "compression") {
            guard case .success(let compression) = RecordCompression.parse(text) else {
                throw Failure(description: "record: bad compression \"\(text)\"")
            }
            record.compression = compression
        }
        guard let nanoseconds = json["connectRetryIntervalNs"]?.intValue else {
            throw Failure(description: "record: no connectRetryIntervalNs")
        }
        // Out of range (an older release stored 0 s): brought into range, reported.
        let bounds = RecordSettings.connectRetryIntervalBounds
        let interval = Duration.nanoseconds(nanoseconds)
        record.connectRetryInterval = min(max(interval, bounds.lowerBound), bounds.upperBound)
        if record.connectRetryInterval != interval {
            repairs.append(
                "connectRetryInterval \(interval) is out of range; \(record.connectRetryInterval) instead")
        }
        return record
    }

    public static func encode(_ reaction: Reaction) -> JSON {
        var members: [String: JSON] = ["on": .string(reaction.on.rawValue)]
        switch reaction.effect {
        case .echo: members["echo"] = .bool(true)
        case .send(let template): members["send"] = .string(template)
        case .forward(let target): members["forward"] = .string(target.rawValue)
        }
        return .object(members)
    }

    public static func reaction(_ json: JSON) throws(Failure) -> Reaction {
        let trigger = try enumeration(json, "on", Reaction.Trigger.self)
        if json["echo"]?.boolValue == true { return Reaction(on: trigger, .echo) }
        if let template = try optionalString(json, "send") { return Reaction(on: trigger, .send(template: template)) }
        if let target = try optionalString(json, "forward") {
            return Reaction(on: trigger, .forward(to: ObjectID(target)))
        }
        throw Failure(description: "reaction: no effect")
    }

    // MARK: Helpers (also ChangeCoding's)

    static func string(_ json: JSON, _ key: String) throws(Failure) -> String {
        guard let value = json[key]?.stringValue else { throw Failure(description: "missing \"\(key)\"") }
        return value
    }

    static func optionalString(_ json: JSON, _ key: String) throws(Failure) -> String? {
        switch json[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw Failure(description: "\"\(key)\" is not a string")
        }
    }

    private static func enumeration<E: RawRepresentable>(_ json: JSON, _ key: String, _: E.Type) throws(Failure) -> E
    where E.RawValue == String {
        let text = try string(json, key)
        guard let value = E(rawValue: text) else { throw Failure(description: "\"\(key)\": unknown value \"\(text)\"") }
        return value
    }
}
