import JSONValue
import MonotonicTime
import WebSocketProtocol
import World

/// The JSON shapes of the control protocol's results (docs/control-protocol.md).
/// Record fields carry their reference names. Pure: times are converted by
/// the `wallClock` the caller passes (monotonic instant → Unix seconds).
public struct ControlView {
    public var world: World
    public var statuses: [RecordAddress: RecordStatus]
    public var wallClock: (MonotonicInstant) -> Double

    public init(
        world: World, statuses: [RecordAddress: RecordStatus], wallClock: @escaping (MonotonicInstant) -> Double
    ) {
        self.world = world
        self.statuses = statuses
        self.wallClock = wallClock
    }

    public func user(_ user: User) -> JSON {
        let sessions = world.sessions.values.filter { $0.present.contains(user.id) }.map(\.id).sorted()
        return .object([
            "id": .string(user.id.rawValue), "name": .string(user.name), "kind": .string(user.kind.rawValue),
            "sessions": .array(sessions.map { .string($0.rawValue) }),
        ])
    }

    public func session(_ session: Session) -> JSON {
        let objects = world.objects.keys.filter { $0.session == session.id }.map(\.object).sorted()
        return .object([
            "id": .string(session.id.rawValue), "name": .string(session.name), "host": .string(session.host.rawValue),
            "present": .array(session.present.sorted().map { .string($0.rawValue) }),
            "objects": .array(objects.map { .string($0.rawValue) }),
        ])
    }

    public func object(_ address: RecordAddress) -> JSON? {
        guard let object = world.objects[address] else { return nil }
        return .object([
            "session": .string(address.session.rawValue), "id": .string(object.id.rawValue),
            "name": .string(object.name), "wornBy": Self.id(object.wornBy), "definedUser": Self.id(object.definedUser),
            "spawnedBy": Self.id(object.spawnedBy), "interactingUser": Self.id(object.interactingUser),
            "record": record(address) ?? .null, "reactions": .array(object.reactions.map(Self.reaction)),
        ])
    }

    /// The WebSocket Client record: the reference fields, then the status.
    public func record(_ address: RecordAddress) -> JSON? {
        guard let object = world.objects[address], let settings = object.record else { return nil }
        let lifecycle = world.lifecycles[address]
        let status = statuses[address] ?? RecordStatus()
        var handlingUser: JSON = .null
        var pinned = false
        switch settings.handlingUser {
        case .pinned(let user):
            handlingUser = .string(user.rawValue)
            pinned = true
        case .automatic:
            if let session = world.sessions[address.session],
                let (user, _) = HandlingUserResolver.resolve(.automatic, object: object, session: session)
            {
                handlingUser = .string(user.rawValue)
            }
        }
        var source: JSON = .null
        if let session = world.sessions[address.session],
            let (_, from) = HandlingUserResolver.resolve(settings.handlingUser, object: object, session: session)
        {
            source = .string(from.rawValue)
        }
        return .object([
            "session": .string(address.session.rawValue), "object": .string(address.object.rawValue),
            "url": settings.url.map { .string($0.description) } ?? .null,
            "handlingUser": handlingUser, "handlingUserPinned": .bool(pinned), "handlingUserSource": source,
            "accessReason": .string(settings.accessReason),
            "connectRetryInterval": .number(Double(settings.connectRetryInterval.nanosecondsClamped) / 1e9),
            "isConnected": .bool(lifecycle?.isConnected ?? false), "enabled": .bool(settings.enabled),
            "state": .string(Self.stateName(lifecycle?.state ?? .idle)),
            "retryAt": retryAt(lifecycle?.state),
            "lastError": status.lastError.map { .string($0) } ?? .null,
            "connectedAt": status.connectedAt.map { .number(wallClock($0)) } ?? .null,
            "disconnectedAt": status.disconnectedAt.map { .number(wallClock($0)) } ?? .null,
            "messagesIn": .int(status.messagesIn), "messagesOut": .int(status.messagesOut),
            "bytesIn": .int(status.bytesIn), "bytesOut": .int(status.bytesOut),
            "floods": .int(status.floods), "dropped": .int(status.dropped),
            "sendsRefused": .int(status.sendsRefused),
            "compression": status.compression.map { .string($0) } ?? .null,
            "compressionSetting": settings.compression.map { .string($0.description) } ?? .null,
        ])
    }

    private func retryAt(_ state: RecordLifecycle.State?) -> JSON {
        if case .waitingToRetry(_, let at)? = state { return .number(wallClock(at)) }
        return .null
    }

    public static func stateName(_ state: RecordLifecycle.State) -> String {
        switch state {
        case .idle: return "idle"
        case .awaitingConsent: return "awaiting-consent"
        case .connecting: return "connecting"
        case .open: return "open"
        case .waitingToRetry: return "waiting-to-retry"
        case .denied: return "denied"
        case .stopped: return "stopped"
        }
    }

    public static func reaction(_ reaction: Reaction) -> JSON {
        var members: [String: JSON] = ["on": .string(reaction.on.rawValue)]
        switch reaction.effect {
        case .echo: members["echo"] = .bool(true)
        case .send(let template): members["send"] = .string(template)
        case .forward(let target): members["forward"] = .string(target.rawValue)
        }
        return .object(members)
    }

    public static func decision(_ key: AccessKey, _ decision: AccessDecision) -> JSON {
        .object([
            "host": .string(key.host), "port": .int(Int(key.port)), "hostPort": .string(key.hostPort),
            "scope": .string(key.scope.rawValue), "verdict": .string(decision.verdict.rawValue),
            "reason": .string(decision.reason),
        ])
    }

    public static func prompt(_ prompt: ConsentPrompt) -> JSON {
        .object([
            "prompt": .int(prompt.id), "user": .string(prompt.user.rawValue), "host": .string(prompt.key.host),
            "port": .int(Int(prompt.key.port)), "hostPort": .string(prompt.key.hostPort),
            "scope": .string(prompt.key.scope.rawValue), "reason": .string(prompt.request.reason),
            "session": .string(prompt.request.requester.session.rawValue),
            "object": .string(prompt.request.requester.object.rawValue),
        ])
    }

    static func id<Tag>(_ id: Identifier<Tag>?) -> JSON { id.map { .string($0.rawValue) } ?? .null }
}
