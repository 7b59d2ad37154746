import WebSocketProtocol
import World

/// The world the config file declares (`[[users]]`, `[[sessions]]`,
/// `[[sessions.objects]]`, `[[sessions.objects.reactions]]`), as the world
/// changes that build it, in order.
public struct DeclaredWorld: Equatable, Sendable {
    public var users: [User] = []
    public var sessions: [Session] = []
    /// Objects by session, in file order.
    public var objects: [SessionID: [WorldObject]] = [:]
    /// Pre-made host-access decisions per user (`allowed_hosts`, `blocked_hosts`).
    public var decisions: [UserID: [AccessKey: AccessDecision]] = [:]
    /// Consent tokens set in the file (`token`); other users' are generated.
    public var tokens: [UserID: String] = [:]

    public init() {}

    /// The changes that create this world from nothing.
    public var changes: [WorldChange] {
        users.map { .addUser($0) }
            + sessions.flatMap { session in
                [.startSession(session)] + (objects[session.id] ?? []).map { .spawn(session.id, $0) }
            }
    }

    static let userKeys = ["id", "name", "kind", "allowed_hosts", "blocked_hosts", "token"]
    static let sessionKeys = ["id", "name", "host", "present", "objects"]
    static let objectKeys = [
        "id", "name", "worn_by", "defined_user", "spawned_by", "interacting_user", "url", "handling_user",
        "access_reason",
        "connect_retry_interval", "enabled", "compression", "reactions",
    ]
    static let reactionKeys = ["on", "echo", "send", "forward"]

    static func read(_ document: SchemaReader.Table, defaults: DaemonConfig.WebSocket) -> DeclaredWorld {
        var world = DeclaredWorld()
        let string: (TOMLValue) -> Result<String, SchemaReader.Expected> = { raw in
            guard let text = raw.string, !text.isEmpty else { return .failure(.init(what: "a non-empty string")) }
            return .success(text)
        }
        var userIDs = Set<UserID>()
        for table in document.tables("users") {
            table.rejectUnknownKeys(userKeys)
            let id = UserID(table.value("id", default: "", string))
            if id.rawValue.isEmpty {
                table.reader.report(table.keyPath("id"), "a user needs an id")
                continue
            }
            if !userIDs.insert(id).inserted { table.reader.report(table.keyPath("id"), "user \(id) is declared twice") }
            let name = table.value("name", default: id.rawValue, string)
            let kind = table.value("kind", default: UserKind.headless, Decode.oneOf(UserKind.self))
            world.users.append(User(id: id, name: name, kind: kind))
            let token = table.value("token", default: "") { raw -> Result<String, SchemaReader.Expected> in
                guard let text = raw.string, text.utf8.count >= 16, text.utf8.count <= 256,
                    text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
                else {
                    return .failure(.init(what: "a token of 16 to 256 printable ASCII characters", showFound: false))
                }
                return .success(text)
            }
            if !token.isEmpty { world.tokens[id] = token }
            for (key, verdict) in [("allowed_hosts", AccessDecision.Verdict.allowed), ("blocked_hosts", .blocked)] {
                let entries = table.value("\(key)", default: [AllowedHost](), Decode.list(DaemonConfig.allowedHost))
                for entry in entries {
                    world.decisions[id, default: [:]][AccessKey(host: entry.host, port: entry.port)] = AccessDecision(
                        verdict: verdict, reason: "declared in the config file")
                }
            }
        }
        let user: (TOMLValue) -> Result<UserID, SchemaReader.Expected> = { raw in
            guard let text = raw.string, !text.isEmpty else { return .failure(.init(what: "a user id")) }
            guard userIDs.contains(UserID(text)) else {
                return .failure(.init(what: "no [[users]] entry has id \"\(text)\"", showFound: false))
            }
            return .success(UserID(text))
        }
        var sessionIDs = Set<SessionID>()
        for table in document.tables("sessions") {
            table.rejectUnknownKeys(sessionKeys)
            let id = SessionID(table.value("id", default: "", string))
            if id.rawValue.isEmpty {
                table.reader.report(table.keyPath("id"), "a session needs an id")
                continue
            }
            if !sessionIDs.insert(id).inserted {
                table.reader.report(table.keyPath("id"), "session \(id) is declared twice")
            }
            guard let host = table.value("host", default: nil as UserID?, { user($0).map { Optional($0) } }) else {
                if table.table?["host"] == nil {
                    table.reader.report(table.keyPath("host"), "a session needs a host user")
                }
                continue
            }
            let present = table.value("present", default: [host]) { raw in
                Decode.list { text in
                    userIDs.contains(UserID(text))
                        ? .success(UserID(text)) : .failure(.init(what: "no [[users]] entry has id \"\(text)\""))
                }(raw)
            }
            world.sessions.append(
                Session(
                    id: id, name: table.value("name", default: id.rawValue, string), host: host, present: Set(present)))
            var objectIDs = Set<ObjectID>()
            var objects: [WorldObject] = []
            let objectTables = table.tables("objects")
            let declaredIDs = Set(objectTables.compactMap { $0.table?["id"]?.string }.map { ObjectID($0) })
            for objectTable in objectTables {
                objectTable.rejectUnknownKeys(objectKeys)
                let objectID = ObjectID(objectTable.value("id", default: "", string))
                if objectID.rawValue.isEmpty {
                    objectTable.reader.report(objectTable.keyPath("id"), "an object needs an id")
                    continue
                }
                if !objectIDs.insert(objectID).inserted {
                    objectTable.reader.report(
                        objectTable.keyPath("id"), "object \(objectID) is declared twice in session \(id)")
                }
                let optionalUser: (TOMLValue) -> Result<UserID?, SchemaReader.Expected> = {
                    user($0).map { Optional($0) }
                }
                var object = WorldObject(
                    id: objectID, name: objectTable.value("name", default: objectID.rawValue, string),
                    wornBy: objectTable.value("worn_by", default: nil, optionalUser),
                    definedUser: objectTable.value("defined_user", default: nil, optionalUser),
                    spawnedBy: objectTable.value("spawned_by", default: nil, optionalUser),
                    interactingUser: objectTable.value("interacting_user", default: nil, optionalUser))
                if objectTable.table?["url"] != nil {
                    let url = objectTable.value("url", default: nil as WebSocketURL?) { raw in
                        guard let text = raw.string else { return .failure(.init(what: "a ws:// or wss:// URL")) }
                        if text.isEmpty { return .success(nil) }
                        return WebSocketURL.parse(text).map { Optional($0) }.mapError {
                            .init(what: $0.description, showFound: false)
                        }
                    }
                    let handling = objectTable.value("handling_user", default: HandlingUserSetting.automatic) { raw in
                        if raw.string == "auto" { return .success(.automatic) }
                        return user(raw).map { .pinned($0) }.mapError {
                            .init(what: "\"auto\" or a user id (\($0.what))", showFound: false)
                        }
                    }
                    object.record = RecordSettings(
                        url: url, handlingUser: handling,
                        accessReason: objectTable.value("access_reason", default: "") { raw in
                            raw.string.map { .success($0) } ?? .failure(.init(what: "a string"))
                        },
                        connectRetryInterval: objectTable.value(
                            "connect_retry_interval", default: defaults.connectRetryInterval,
                            Decode.duration(
                                min: RecordSettings.connectRetryIntervalBounds.lowerBound, allowZero: false,
                                max: RecordSettings.connectRetryIntervalBounds.upperBound)),
                        enabled: objectTable.value("enabled", default: true) { raw in
                            raw.bool.map { .success($0) } ?? .failure(.init(what: "true or false"))
                        },
                        compression: objectTable.value("compression", default: nil) { raw in
                            Decode.compression(raw).map { $0.map { .offer($0) } ?? .off }
                        })
                } else {
                    for key in [
                        "handling_user", "access_reason", "connect_retry_interval", "enabled", "compression",
                        "reactions",
                    ]
                    where objectTable.table?[key] != nil {
                        objectTable.reader.report(
                            objectTable.keyPath(key), "only objects with a url have a WebSocket Client record")
                    }
                }
                for reactionTable in objectTable.tables("reactions") where object.record != nil {
                    reactionTable.rejectUnknownKeys(reactionKeys)
                    let trigger = reactionTable.value(
                        "on", default: Reaction.Trigger.received, Decode.oneOf(Reaction.Trigger.self))
                    let effects = ["echo", "send", "forward"].filter { reactionTable.table?[$0] != nil }
                    guard effects.count == 1 else {
                        reactionTable.reader.report(
                            reactionTable.path,
                            "a reaction needs exactly one of echo = true, send = \"text\", forward = \"object\"")
                        continue
                    }
                    switch effects[0] {
                    case "echo":
                        let echo = reactionTable.value("echo", default: false) { raw in
                            raw.bool == true ? .success(true) : .failure(.init(what: "true"))
                        }
                        if echo { object.reactions.append(Reaction(on: trigger, .echo)) }
                    case "send":
                        object.reactions.append(
                            Reaction(on: trigger, .send(template: reactionTable.value("send", default: "", string))))
                    default:
                        let target = reactionTable.value("forward", default: ObjectID("")) { raw in
                            guard let text = raw.string, declaredIDs.contains(ObjectID(text)) else {
                                return .failure(.init(what: "the id of another object in session \(id)"))
                            }
                            return .success(ObjectID(text))
                        }
                        if !target.rawValue.isEmpty {
                            object.reactions.append(Reaction(on: trigger, .forward(to: target)))
                        }
                    }
                }
                objects.append(object)
            }
            world.objects[id] = objects
        }
        return world
    }
}

extension DeclaredWorld {
    /// The changes that turn `old` (the running declaration) into this one, for
    /// a reload: new users are added; sessions gone are closed; a session whose
    /// own fields changed is restarted with its objects; objects gone are
    /// removed, new ones spawned, changed ones removed and spawned again.
    /// (Users cannot be removed or edited at run time: such edits take effect
    /// at the next start.)
    public func changes(from old: DeclaredWorld) -> [WorldChange] {
        let oldUsers = Set(old.users.map(\.id))
        var result: [WorldChange] = users.filter { !oldUsers.contains($0.id) }.map { .addUser($0) }
        let newIDs = Set(sessions.map(\.id))
        for session in old.sessions where !newIDs.contains(session.id) {
            result.append(.closeSession(session.id))
        }
        for session in sessions {
            let newObjects = objects[session.id] ?? []
            guard let previous = old.sessions.first(where: { $0.id == session.id }), previous == session else {
                if old.sessions.contains(where: { $0.id == session.id }) { result.append(.closeSession(session.id)) }
                result.append(.startSession(session))
                result += newObjects.map { .spawn(session.id, $0) }
                continue
            }
            // By id: a session of 15,000 objects is compared in linear time.
            let oldObjects = old.objects[session.id] ?? []
            let newIDs = Set(newObjects.map(\.id))
            let oldByID = Dictionary(oldObjects.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for object in oldObjects where !newIDs.contains(object.id) {
                result.append(.remove(session.id, object.id))
            }
            for object in newObjects {
                if let before = oldByID[object.id] {
                    if before != object { result += [.remove(session.id, object.id), .spawn(session.id, object)] }
                } else {
                    result.append(.spawn(session.id, object))
                }
            }
        }
        return result
    }
}
