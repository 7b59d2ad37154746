import Config
import Control
import JSONValue
import StateStore
import World

/// What world changes write to the state store: the rows they touched, as
/// they are in `world` (the world after the changes). Rows are taken from the
/// final world, so a batch may touch an item more than once.
extension StateStore.Delta {
    static func after(_ changes: [WorldChange], in world: World) -> StateStore.Delta {
        var users = Set<UserID>()
        var sessions = Set<SessionID>()
        var closed = Set<SessionID>()
        var objects = Set<RecordAddress>()
        for change in changes {
            switch change {
            case .addUser(let user): users.insert(user.id)
            case .startSession(let session): sessions.insert(session.id)
            case .closeSession(let id): closed.insert(id)
            case .join(let id, _), .leave(let id, _), .setHost(let id, _): sessions.insert(id)
            case .spawn(let id, let object): objects.insert(RecordAddress(session: id, object: object.id))
            case .remove(let id, let object), .wear(let id, let object, _), .grab(let id, let object, _),
                .defineUser(let id, let object, _), .setRecord(let id, let object, _),
                .connect(let id, let object, _, _), .setReactions(let id, let object, _):
                objects.insert(RecordAddress(session: id, object: object))
            }
        }
        var delta = StateStore.Delta()
        delta.users = users.sorted().compactMap { world.users[$0] }
        // A closed session goes with its objects; started again in the same
        // batch, it comes back with the objects it has now.
        delta.removedSessions = closed.sorted()
        for id in closed where world.sessions[id] != nil {
            sessions.insert(id)
            objects.formUnion(world.objects.keys.filter { $0.session == id })
        }
        for id in sessions.sorted() {
            if let session = world.sessions[id] {
                delta.sessions.append(session)
            } else if !closed.contains(id) {
                delta.removedSessions.append(id)
            }
        }
        for address in objects.sorted(by: { ($0.session, $0.object) < ($1.session, $1.object) }) {
            if let object = world.objects[address] {
                delta.objects.append((address.session, object))
            } else {
                delta.removedObjects.append(address)
            }
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
