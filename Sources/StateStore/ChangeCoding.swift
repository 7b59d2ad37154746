import JSONValue
import WebSocketProtocol
import World

/// World changes as JSON (the fleet's change log in PostgreSQL, docs/fleet.md):
/// every host applies the same changes in the same order. Built on
/// `WorldCoding`'s values; every change reads back as what was written.
extension WorldCoding {
    public static func encode(_ change: WorldChange) -> JSON {
        func object(_ op: String, _ session: SessionID, _ members: [String: JSON] = [:]) -> JSON {
            .object(members.merging(["op": .string(op), "session": .string(session.rawValue)]) { $1 })
        }
        func id<Tag>(_ id: Identifier<Tag>?) -> JSON { id.map { .string($0.rawValue) } ?? .null }
        switch change {
        case .addUser(let user): return .object(["op": .string("addUser"), "user": encode(user)])
        case .startSession(let session): return .object(["op": .string("startSession"), "body": encode(session)])
        case .closeSession(let session): return object("closeSession", session)
        case .join(let session, let user): return object("join", session, ["user": id(user)])
        case .leave(let session, let user): return object("leave", session, ["user": id(user)])
        case .setHost(let session, let user): return object("setHost", session, ["user": id(user)])
        case .spawn(let session, let worldObject): return object("spawn", session, ["body": encode(worldObject)])
        case .remove(let session, let target): return object("remove", session, ["object": id(target)])
        case .wear(let session, let target, let user):
            return object("wear", session, ["object": id(target), "user": id(user)])
        case .grab(let session, let target, let user):
            return object("grab", session, ["object": id(target), "user": id(user)])
        case .defineUser(let session, let target, let user):
            return object("defineUser", session, ["object": id(target), "user": id(user)])
        case .setRecord(let session, let target, let record):
            return object("setRecord", session, ["object": id(target), "record": record.map(encode) ?? .null])
        case .connect(let session, let target, let url, let user):
            return object(
                "connect", session,
                ["object": id(target), "url": url.map { .string($0.description) } ?? .null, "user": id(user)])
        case .setReactions(let session, let target, let reactions):
            return object("setReactions", session, ["object": id(target), "reactions": .array(reactions.map(encode))])
        }
    }

    public static func change(_ json: JSON) throws(Failure) -> WorldChange {
        func session() throws(Failure) -> SessionID { SessionID(try string(json, "session")) }
        func target() throws(Failure) -> ObjectID { ObjectID(try string(json, "object")) }
        func user() throws(Failure) -> UserID { UserID(try string(json, "user")) }
        func optionalUser() throws(Failure) -> UserID? { try optionalString(json, "user").map { UserID($0) } }
        func body() throws(Failure) -> JSON {
            guard let body = json["body"] else { throw Failure(description: "change: no body") }
            return body
        }
        let op = try string(json, "op")
        switch op {
        case "addUser":
            guard let body = json["user"] else { throw Failure(description: "change: no user") }
            return .addUser(try WorldCoding.user(body))
        case "startSession": return .startSession(try WorldCoding.session(try body()))
        case "closeSession": return .closeSession(try session())
        case "join": return .join(try session(), try user())
        case "leave": return .leave(try session(), try user())
        case "setHost": return .setHost(try session(), try user())
        case "spawn": return .spawn(try session(), try WorldCoding.object(try body()))
        case "remove": return .remove(try session(), try target())
        case "wear": return .wear(try session(), try target(), by: try optionalUser())
        case "grab": return .grab(try session(), try target(), by: try optionalUser())
        case "defineUser": return .defineUser(try session(), try target(), try optionalUser())
        case "setRecord":
            let record: RecordSettings?
            switch json["record"] {
            case nil, .null?: record = nil
            case let value?: record = try WorldCoding.record(value)
            }
            return .setRecord(try session(), try target(), record)
        case "connect":
            var url: WebSocketURL?
            if let text = try optionalString(json, "url") {
                guard case .success(let parsed) = WebSocketURL.parse(text) else {
                    throw Failure(description: "change: bad url \"\(text)\"")
                }
                url = parsed
            }
            return .connect(try session(), try target(), url: url, user: try optionalUser())
        case "setReactions":
            guard let items = json["reactions"]?.arrayValue else { throw Failure(description: "change: no reactions") }
            var reactions: [Reaction] = []
            for item in items { reactions.append(try WorldCoding.reaction(item)) }
            return .setReactions(try session(), try target(), reactions)
        default:
            throw Failure(description: "change: unknown op \"\(op)\"")
        }
    }
}
