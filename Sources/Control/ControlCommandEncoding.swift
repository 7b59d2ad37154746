import JSONValue
import WebSocketProtocol
import World

/// The values a request carries as text, read the same way (with the same
/// errors) by the daemon when it decodes a request and by the CLI when it
/// builds one from its arguments.
public enum ControlValue {
    /// A record's URL; empty text is no URL.
    public static func url(_ text: String, key: String) throws(ControlError) -> WebSocketURL? {
        guard !text.isEmpty else { return nil }
        switch WebSocketURL.parse(text) {
        case .success(let url): return url
        case .failure(let error): throw ControlError(.invalidArgs, "\"\(key)\": \(error)")
        }
    }

    public static func trigger(_ text: String, key: String) throws(ControlError) -> Reaction.Trigger {
        guard let trigger = Reaction.Trigger(rawValue: text) else {
            throw ControlError(.invalidArgs, "\"\(key)\" must be connected, received or disconnected, not \"\(text)\"")
        }
        return trigger
    }

    public static func userKind(_ text: String) throws(ControlError) -> UserKind {
        guard let kind = UserKind(rawValue: text) else {
            throw ControlError(.invalidArgs, "\"kind\" must be \"headless\" or \"interactive\", not \"\(text)\"")
        }
        return kind
    }

    public static func answer(_ text: String) throws(ControlError) -> ConsentEngine.Answer {
        guard let answer = ConsentEngine.Answer(rawValue: text) else {
            throw ControlError(.invalidArgs, "\"answer\" must be allow, deny or ignore, not \"\(text)\"")
        }
        return answer
    }

    /// A consent decision's host: host:port or a ws(s):// URL.
    public static func accessKey(_ text: String) throws(ControlError) -> AccessKey {
        guard case .success(let entry) = AllowedHost.parse(text) else {
            throw ControlError(.invalidArgs, "\"host\" must be host:port or a ws(s):// URL, not \"\(text)\"")
        }
        return AccessKey(host: entry.host, port: entry.port)
    }

    public static func eventType(_ name: String) throws(ControlError) -> ControlEventType {
        guard let type = ControlEventType(rawValue: name) else {
            let known = ControlEventType.allCases.map(\.rawValue).joined(separator: ", ")
            throw ControlError(.invalidArgs, "unknown event type \"\(name)\" (one of: \(known))")
        }
        return type
    }

    /// A record's retry interval in seconds, within the same bounds as the
    /// config's connect_retry_interval: a value outside them is refused here,
    /// never stored (a 0 s interval once made the store unreadable).
    public static func retryInterval(seconds: Double) throws(ControlError) -> Duration {
        let bounds = RecordSettings.connectRetryIntervalBounds
        let milliseconds = (seconds * 1000).rounded()
        guard milliseconds.isFinite, abs(milliseconds) < 1e15, bounds.contains(.milliseconds(Int64(milliseconds)))
        else {
            throw ControlError(
                .invalidArgs,
                "\"connectRetryInterval\" must be from \(bounds.lowerBound) to \(bounds.upperBound), not \(seconds) seconds"
            )
        }
        return .milliseconds(Int64(milliseconds))
    }

    /// A record's compression as written: "off", "on" or a permessage-deflate offer.
    public static func compression(_ text: String, key: String) throws(ControlError) -> RecordCompression {
        switch RecordCompression.parse(text) {
        case .success(let value): return value
        case .failure(let error):
            throw ControlError(
                .invalidArgs, "\"\(key)\" must be \"off\", \"on\", \"inherit\" or a permessage-deflate offer: \(error)")
        }
    }
}

extension ControlCommand {
    /// The operation this command is sent as.
    public var operation: ControlOperation {
        switch self {
        case .hello: .hello
        case .status: .status
        case .metrics: .metrics
        case .reload: .reload
        case .sessionsList: .sessionsList
        case .sessionsShow: .sessionsShow
        case .sessionsStart: .sessionsStart
        case .sessionsClose: .sessionsClose
        case .usersList: .usersList
        case .usersAdd: .usersAdd
        case .usersToken: .usersToken
        case .usersJoin: .usersJoin
        case .usersLeave: .usersLeave
        case .usersKick: .usersKick
        case .usersHost: .usersHost
        case .objectsList: .objectsList
        case .objectsShow: .objectsShow
        case .objectsSpawn: .objectsSpawn
        case .objectsRemove: .objectsRemove
        case .objectsWear(_, let user): user == nil ? .objectsUnwear : .objectsWear
        case .objectsGrab(_, let user): user == nil ? .objectsRelease : .objectsGrab
        case .objectsDefineUser: .objectsDefineUser
        case .objectsReact: .objectsReact
        case .objectsReactions: .objectsReactions
        case .objectsUnreact: .objectsUnreact
        case .wsShow: .wsShow
        case .wsSet: .wsSet
        case .wsConnect: .wsConnect
        case .wsSend: .wsSend
        case .wsDisconnect: .wsDisconnect
        case .subscribe: .subscribe
        case .consentWatch: .consentWatch
        case .consentAnswer: .consentAnswer
        case .consentList: .consentList
        case .consentForget: .consentForget
        case .fleetShow: .fleetShow
        case .fleetDrain: .fleetDrain
        case .fleetMove: .fleetMove
        }
    }

    /// The request's arguments: `ControlCommand(op: operation.rawValue, args: arguments)` is this command again.
    public var arguments: [String: JSON] {
        var args: [String: JSON] = [:]
        func put(_ key: String, _ value: String?) { if let value { args[key] = .string(value) } }
        func put<Tag>(_ key: String, _ id: Identifier<Tag>?) { put(key, id?.rawValue) }
        func put(_ address: RecordAddress) {
            put("session", address.session)
            put("object", address.object)
        }
        switch self {
        case .hello, .status, .metrics, .reload, .sessionsList, .fleetShow:
            break
        case .fleetDrain(let host, let drain):
            put("host", host)
            args["drain"] = .bool(drain)
        case .fleetMove(let session, let host):
            put("session", session)
            put("host", host)
        case .sessionsShow(let session), .sessionsClose(let session), .objectsList(let session):
            put("session", session)
        case .sessionsStart(let session, let name, let host):
            put("session", session)
            put("name", name)
            put("host", host)
        case .usersList(let session):
            put("session", session)
        case .usersAdd(let user, let name, let kind):
            put("user", user)
            put("name", name)
            put("kind", kind.rawValue)
        case .usersToken(let user):
            put("user", user)
        case .usersJoin(let session, let user), .usersLeave(let session, let user), .usersKick(let session, let user),
            .usersHost(let session, let user):
            put("session", session)
            put("user", user)
        case .objectsShow(let address), .objectsRemove(let address), .objectsReactions(let address),
            .wsShow(let address), .wsDisconnect(let address):
            put(address)
        case .objectsSpawn(let address, let name, let spawnedBy):
            put(address)
            put("name", name)
            put("spawnedBy", spawnedBy)
        case .objectsWear(let address, let user), .objectsGrab(let address, let user):
            put(address)
            put("user", user)
        case .objectsDefineUser(let address, let user):
            put(address)
            args["user"] = user.map { .string($0.rawValue) } ?? .null
        case .objectsReact(let address, let reaction):
            put(address)
            put("on", reaction.on.rawValue)
            switch reaction.effect {
            case .echo: args["echo"] = .bool(true)
            case .send(let template): put("send", template)
            case .forward(let target): put("forward", target)
            }
        case .objectsUnreact(let address, let trigger):
            put(address)
            put("on", trigger?.rawValue)
        case .wsSet(let address, let patch):
            put(address)
            // An empty URL clears it.
            if let url = patch.url { put("url", url?.description ?? "") }
            put("accessReason", patch.accessReason)
            if let interval = patch.connectRetryInterval {
                // Whole milliseconds, rounded as decoding rounds.
                args["connectRetryInterval"] = .number((Double(interval.nanosecondsClamped) / 1e6).rounded() / 1000)
            }
            if let enabled = patch.enabled { args["enabled"] = .bool(enabled) }
            if let compression = patch.compression {
                args["compression"] = .string(compression?.description ?? "inherit")
            }
        case .wsConnect(let address, let url, let user):
            put(address)
            put("url", url?.description)
            put("user", user)
        case .wsSend(let address, let payload):
            put(address)
            switch payload {
            case .text(let text): put("text", text)
            case .binary(let bytes): put("binary", Base64.encode(bytes))
            }
        case .subscribe(let filter, let since):
            put("session", filter.session)
            put("object", filter.object)
            if !filter.types.isEmpty {
                args["types"] = .array(filter.types.map(\.rawValue).sorted().map { .string($0) })
            }
            if let since { args["since"] = .int(since) }
        case .consentWatch(let user, let token), .consentList(let user, let token):
            put("user", user)
            put("token", token)
        case .consentAnswer(let user, let prompt, let answer, let token):
            put("user", user)
            args["prompt"] = .int(prompt)
            put("answer", answer.rawValue)
            put("token", token)
        case .consentForget(let user, let key, let token):
            put("user", user)
            put("host", key.hostPort)
            put("token", token)
        }
        return args
    }
}
