import Config
import Control
import StateStore
import World

/// What a world change writes to the state store: the rows it touched, as
/// they are in the world after the change.
extension StateStore.Delta {
    static func after(_ change: WorldChange, in world: World) -> StateStore.Delta {
        var delta = StateStore.Delta()
        func session(_ id: SessionID) {
            if let session = world.sessions[id] { delta.sessions.append(session) }
        }
        func object(_ id: SessionID, _ objectID: ObjectID) {
            let address = RecordAddress(session: id, object: objectID)
            if let object = world.objects[address] {
                delta.objects.append((id, object))
            } else {
                delta.removedObjects.append(address)
            }
        }
        switch change {
        case .addUser(let user):
            if let stored = world.users[user.id] { delta.users.append(stored) }
        case .startSession(let new): session(new.id)
        case .closeSession(let id): delta.removedSessions.append(id)
        case .join(let id, _), .leave(let id, _), .setHost(let id, _): session(id)
        case .spawn(let id, let new): object(id, new.id)
        case .remove(let id, let objectID): delta.removedObjects.append(RecordAddress(session: id, object: objectID))
        case .wear(let id, let objectID, _), .grab(let id, let objectID, _), .defineUser(let id, let objectID, _),
            .setRecord(let id, let objectID, _), .connect(let id, let objectID, _, _),
            .setReactions(let id, let objectID, _):
            object(id, objectID)
        }
        return delta
    }
}

/// The declared world as the store keeps it: what the config declared when
/// it was last applied, so that the next start (like a reload) applies only
/// what the config changed since.
enum DeclaredCoding {
    static func encode(_ declared: DeclaredWorld) -> JSON {
        var objects: [String: JSON] = [:]
        for (session, list) in declared.objects { objects[session.rawValue] = .array(list.map(WorldCoding.encode)) }
        return .object([
            "users": .array(declared.users.map(WorldCoding.encode)),
            "sessions": .array(declared.sessions.map(WorldCoding.encode)), "objects": .object(objects),
        ])
    }

    static func decode(_ json: JSON) throws -> DeclaredWorld {
        var declared = DeclaredWorld()
        for user in json["users"]?.arrayValue ?? [] { declared.users.append(try WorldCoding.user(user)) }
        for session in json["sessions"]?.arrayValue ?? [] { declared.sessions.append(try WorldCoding.session(session)) }
        for (session, list) in json["objects"]?.objectValue ?? [:] {
            declared.objects[SessionID(session)] = try (list.arrayValue ?? []).map(WorldCoding.object)
        }
        return declared
    }
}
