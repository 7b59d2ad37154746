import JSONValue
import WebSocketProtocol
import World

/// The operations of the control protocol: one table of names for the daemon and the CLI.
public enum ControlOperation: String, CaseIterable, Sendable {
    case hello
    case status
    case metrics
    case reload
    case sessionsList = "sessions.list"
    case sessionsShow = "sessions.show"
    case sessionsStart = "sessions.start"
    case sessionsClose = "sessions.close"
    case usersList = "users.list"
    case usersAdd = "users.add"
    case usersToken = "users.token"
    case usersJoin = "users.join"
    case usersLeave = "users.leave"
    case usersKick = "users.kick"
    case usersHost = "users.host"
    case objectsList = "objects.list"
    case objectsShow = "objects.show"
    case objectsSpawn = "objects.spawn"
    case objectsRemove = "objects.remove"
    case objectsWear = "objects.wear"
    case objectsUnwear = "objects.unwear"
    case objectsGrab = "objects.grab"
    case objectsRelease = "objects.release"
    case objectsDefineUser = "objects.define-user"
    case objectsReact = "objects.react"
    case objectsReactions = "objects.reactions"
    case objectsUnreact = "objects.unreact"
    case wsShow = "ws.show"
    case wsSet = "ws.set"
    case wsConnect = "ws.connect"
    case wsSend = "ws.send"
    case wsDisconnect = "ws.disconnect"
    case subscribe
    case consentWatch = "consent.watch"
    case consentAnswer = "consent.answer"
    case consentList = "consent.list"
    case consentForget = "consent.forget"
    case fleetShow = "fleet.show"
    case fleetDrain = "fleet.drain"
    case fleetMove = "fleet.move"
}

/// Every operation of the control protocol, with typed arguments. Decoding
/// checks types, required and unknown arguments; whether the ids exist is the
/// daemon's question.
public enum ControlCommand: Equatable, Sendable {
    case hello
    case status
    /// The metrics as Prometheus text (docs/operations.md).
    case metrics
    case reload

    case sessionsList
    case sessionsShow(SessionID)
    case sessionsStart(SessionID, name: String?, host: UserID?)
    case sessionsClose(SessionID)

    case usersList(session: SessionID?)
    case usersAdd(UserID, name: String?, kind: UserKind)
    case usersToken(UserID)
    case usersJoin(SessionID, UserID)
    case usersLeave(SessionID, UserID)
    /// Like leave, logged as a kick with the operator's identity.
    case usersKick(SessionID, UserID)
    case usersHost(SessionID, UserID)

    case objectsList(SessionID)
    case objectsShow(RecordAddress)
    case objectsSpawn(RecordAddress, name: String?, spawnedBy: UserID?)
    case objectsRemove(RecordAddress)
    /// nil: unwear.
    case objectsWear(RecordAddress, UserID?)
    /// nil: release.
    case objectsGrab(RecordAddress, UserID?)
    /// nil: no defined user.
    case objectsDefineUser(RecordAddress, UserID?)
    case objectsReact(RecordAddress, Reaction)
    case objectsReactions(RecordAddress)
    /// nil: every reaction.
    case objectsUnreact(RecordAddress, on: Reaction.Trigger?)

    case wsShow(RecordAddress)
    case wsSet(RecordAddress, RecordPatch)
    /// The Websocket Connect node: nil URL keeps the current one, nil user is automatic.
    case wsConnect(RecordAddress, url: WebSocketURL?, user: UserID?)
    case wsSend(RecordAddress, Payload)
    case wsDisconnect(RecordAddress)

    /// Turns the connection into an event stream (it still takes requests).
    case subscribe(EventFilter, since: Int?)

    case consentWatch(UserID, token: String?)
    case consentAnswer(UserID, prompt: Int, ConsentEngine.Answer, token: String?)
    case consentList(UserID, token: String?)
    case consentForget(UserID, AccessKey, token: String?)

    /// The fleet (docs/fleet.md): hosts, leases, who holds which session.
    case fleetShow
    /// Drain a host (true: it hands every session over and claims none) or
    /// let it take sessions again (false).
    case fleetDrain(host: String, Bool)
    /// Move a session to a host: its holder hands it over, that host claims it.
    case fleetMove(SessionID, host: String)

    /// `ws.set`: only the fields given change.
    public struct RecordPatch: Equatable, Sendable {
        /// `.some(nil)` clears the URL.
        public var url: WebSocketURL??
        public var accessReason: String?
        public var connectRetryInterval: Duration?
        public var enabled: Bool?
        /// `.some(nil)`: back to the daemon's `[websocket] compression`.
        public var compression: RecordCompression??

        public init(
            url: WebSocketURL?? = nil, accessReason: String? = nil, connectRetryInterval: Duration? = nil,
            enabled: Bool? = nil, compression: RecordCompression?? = nil
        ) {
            self.url = url
            self.accessReason = accessReason
            self.connectRetryInterval = connectRetryInterval
            self.enabled = enabled
            self.compression = compression
        }

        public var isEmpty: Bool {
            url == nil && accessReason == nil && connectRetryInterval == nil && enabled == nil && compression == nil
        }

        public func applied(to settings: RecordSettings) -> RecordSettings {
            var settings = settings
            if let url { settings.url = url }
            if let accessReason { settings.accessReason = accessReason }
            if let connectRetryInterval { settings.connectRetryInterval = connectRetryInterval }
            if let enabled { settings.enabled = enabled }
            if let compression { settings.compression = compression }
            return settings
        }
    }

    /// The operation names, as sent in `op`.
    public static let operations: [String] = ControlOperation.allCases.map(\.rawValue)

    /// Commands that change the world or the decisions (the rest only read).
    public var changesState: Bool {
        switch self {
        case .hello, .status, .metrics, .sessionsList, .sessionsShow, .usersList, .usersToken, .objectsList,
            .objectsShow,
            .objectsReactions, .wsShow, .subscribe, .consentWatch, .consentList, .fleetShow:
            return false
        default:
            return true
        }
    }

    /// The user whose token authorizes this command for a peer that is not an operator.
    public var consentUser: (UserID, token: String?)? {
        switch self {
        case .consentWatch(let user, let token), .consentList(let user, let token),
            .consentAnswer(let user, _, _, let token), .consentForget(let user, _, let token):
            return (user, token)
        default:
            return nil
        }
    }

    public init(op name: String, args: [String: JSON]) throws(ControlError) {
        guard let op = ControlOperation(rawValue: name) else {
            throw ControlError(.unknownOp, "unknown operation \"\(name)\"")
        }
        var a = Arguments(args)
        switch op {
        case .hello: self = .hello
        case .status: self = .status
        case .metrics: self = .metrics
        case .reload: self = .reload
        case .sessionsList: self = .sessionsList
        case .sessionsShow: self = .sessionsShow(try a.session())
        case .sessionsStart:
            self = .sessionsStart(
                try a.newID("session"), name: try a.optionalString("name"), host: try a.optionalID("host"))
        case .sessionsClose: self = .sessionsClose(try a.session())
        case .usersList: self = .usersList(session: try a.optionalID("session"))
        case .usersAdd:
            let kind = try ControlValue.userKind(try a.optionalString("kind") ?? "headless")
            self = .usersAdd(try a.newID("user"), name: try a.optionalString("name"), kind: kind)
        case .usersToken: self = .usersToken(try a.user())
        case .usersJoin: self = .usersJoin(try a.session(), try a.user())
        case .usersLeave: self = .usersLeave(try a.session(), try a.user())
        case .usersKick: self = .usersKick(try a.session(), try a.user())
        case .usersHost: self = .usersHost(try a.session(), try a.user())
        case .objectsList: self = .objectsList(try a.session())
        case .objectsShow: self = .objectsShow(try a.address())
        case .objectsSpawn:
            let session: SessionID = try a.id("session")
            let object: ObjectID = try a.newID("object")
            self = .objectsSpawn(
                RecordAddress(session: session, object: object), name: try a.optionalString("name"),
                spawnedBy: try a.optionalID("spawnedBy"))
        case .objectsRemove: self = .objectsRemove(try a.address())
        case .objectsWear: self = .objectsWear(try a.address(), try a.user())
        case .objectsUnwear: self = .objectsWear(try a.address(), nil)
        case .objectsGrab: self = .objectsGrab(try a.address(), try a.user())
        case .objectsRelease: self = .objectsGrab(try a.address(), nil)
        case .objectsDefineUser: self = .objectsDefineUser(try a.address(), try a.nullableID("user"))
        case .objectsReact:
            let address = try a.address()
            let trigger = try a.trigger("on")
            let echo = try a.optionalBool("echo") ?? false
            let send = try a.optionalString("send")
            let forward: ObjectID? = try a.optionalID("forward")
            let effects = [
                echo ? Reaction.Effect.echo : nil, send.map { .send(template: $0) }, forward.map { .forward(to: $0) },
            ]
            .compactMap { $0 }
            guard effects.count == 1 else {
                throw ControlError(
                    .invalidArgs, "a reaction needs exactly one of \"echo\": true, \"send\" or \"forward\"")
            }
            self = .objectsReact(address, Reaction(on: trigger, effects[0]))
        case .objectsReactions: self = .objectsReactions(try a.address())
        case .objectsUnreact:
            let address = try a.address()
            self = .objectsUnreact(address, on: try a.has("on") ? a.trigger("on") : nil)
        case .wsShow: self = .wsShow(try a.address())
        case .wsSet:
            let address = try a.address()
            var patch = RecordPatch()
            if a.has("url") { patch.url = .some(try a.nullableURL("url")) }
            patch.accessReason = try a.optionalString("accessReason")
            if let seconds = try a.optionalNumber("connectRetryInterval") {
                patch.connectRetryInterval = try ControlValue.retryInterval(seconds: seconds)
            }
            patch.enabled = try a.optionalBool("enabled")
            if a.has("compression") { patch.compression = .some(try a.compression("compression")) }
            guard !patch.isEmpty else {
                throw ControlError(
                    .invalidArgs,
                    "ws.set needs at least one of url, accessReason, connectRetryInterval, enabled, compression")
            }
            self = .wsSet(address, patch)
        case .wsConnect:
            self = .wsConnect(try a.address(), url: try a.nullableURL("url"), user: try a.optionalID("user"))
        case .wsSend:
            let address = try a.address()
            let text = try a.optionalString("text")
            let binary = try a.optionalString("binary")
            switch (text, binary) {
            case (let text?, nil): self = .wsSend(address, .text(text))
            case (nil, let encoded?):
                guard let bytes = Base64.decode(encoded) else {
                    throw ControlError(.invalidArgs, "\"binary\" must be padded base64")
                }
                self = .wsSend(address, .binary(bytes))
            default: throw ControlError(.invalidArgs, "ws.send needs exactly one of \"text\" or \"binary\" (base64)")
            }
        case .wsDisconnect: self = .wsDisconnect(try a.address())
        case .fleetShow: self = .fleetShow
        case .fleetDrain:
            self = .fleetDrain(host: try a.hostID(), try a.optionalBool("drain") ?? true)
        case .fleetMove: self = .fleetMove(try a.session(), host: try a.hostID())
        case .subscribe:
            var filter = EventFilter()
            filter.session = try a.optionalID("session")
            filter.object = try a.optionalID("object")
            if let types = try a.optionalStrings("types") {
                for name in types { filter.types.insert(try ControlValue.eventType(name)) }
            }
            let since = try a.optionalInteger("since", in: 0...Arguments.largestInteger, "a sequence number")
            self = .subscribe(filter, since: since)
        case .consentWatch: self = .consentWatch(try a.user(), token: try a.optionalString("token"))
        case .consentAnswer:
            let user = try a.user()
            guard let prompt = try a.optionalInteger("prompt", in: 0...Arguments.largestInteger, "a prompt id") else {
                throw ControlError(.invalidArgs, "\"prompt\" (a prompt id) is required")
            }
            let answer = try ControlValue.answer(try a.string("answer"))
            self = .consentAnswer(user, prompt: prompt, answer, token: try a.optionalString("token"))
        case .consentList: self = .consentList(try a.user(), token: try a.optionalString("token"))
        case .consentForget:
            let user = try a.user()
            let key = try ControlValue.accessKey(try a.string("host"))
            self = .consentForget(user, key, token: try a.optionalString("token"))
        }
        try a.finish(op: name)
    }
}

/// Which events a subscriber wants; empty fields match everything.
public struct EventFilter: Equatable, Sendable {
    public var session: SessionID?
    public var object: ObjectID?
    public var types: Set<ControlEventType> = []
    /// Set for a consent channel: only this user's prompts.
    public var promptsFor: UserID?

    public init(
        session: SessionID? = nil, object: ObjectID? = nil, types: Set<ControlEventType> = [], promptsFor: UserID? = nil
    ) {
        self.session = session
        self.object = object
        self.types = types
        self.promptsFor = promptsFor
    }

    public func matches(_ event: some JournalEntry) -> Bool {
        // The end of the stream reaches every subscriber, whatever it filters.
        if event.type == .stopping { return true }
        if let promptsFor {
            return (event.type == .prompt || event.type == .promptDismissed) && event.user == promptsFor
        }
        if let session, event.session != session { return false }
        if let object, event.object != object { return false }
        if !types.isEmpty, !types.contains(event.type) { return false }
        return true
    }
}

/// Reads a request's arguments, remembering which were used so that unknown
/// ones are refused.
struct Arguments {
    private let values: [String: JSON]
    private var used: Set<String> = []

    init(_ values: [String: JSON]) { self.values = values }

    mutating func has(_ key: String) -> Bool {
        guard let value = values[key] else { return false }
        if case .null = value {
            used.insert(key)
            return false
        }
        return true
    }

    mutating func optionalString(_ key: String) throws(ControlError) -> String? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .string(let value)?:
            guard value.utf8.count <= 64 << 10 else { throw ControlError(.invalidArgs, "\"\(key)\" is too long") }
            return value
        default: throw ControlError(.invalidArgs, "\"\(key)\" must be a string")
        }
    }

    mutating func string(_ key: String) throws(ControlError) -> String {
        guard let value = try optionalString(key) else { throw ControlError(.invalidArgs, "\"\(key)\" is required") }
        return value
    }

    mutating func optionalStrings(_ key: String) throws(ControlError) -> [String]? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            var strings: [String] = []
            for item in items {
                guard let text = item.stringValue else {
                    throw ControlError(.invalidArgs, "\"\(key)\" must be an array of strings")
                }
                strings.append(text)
            }
            return strings
        default: throw ControlError(.invalidArgs, "\"\(key)\" must be an array of strings")
        }
    }

    mutating func optionalBool(_ key: String) throws(ControlError) -> Bool? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw ControlError(.invalidArgs, "\"\(key)\" must be true or false")
        }
    }

    mutating func optionalNumber(_ key: String) throws(ControlError) -> Double? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .number(let value)?: return value
        default: throw ControlError(.invalidArgs, "\"\(key)\" must be a number")
        }
    }

    /// The largest integer a JSON number carries exactly (2^53 − 1).
    static let largestInteger = (1 << 53) - 1

    /// A whole number within `range`, checked here so that no later
    /// conversion can trap (`Int(1e300)` would).
    mutating func optionalInteger(_ key: String, in range: ClosedRange<Int>, _ what: String) throws(ControlError)
        -> Int?
    {
        guard let number = try optionalNumber(key) else { return nil }
        guard number.isFinite, number.rounded() == number, number >= Double(range.lowerBound),
            number <= Double(range.upperBound)
        else {
            throw ControlError(
                .invalidArgs, "\"\(key)\" must be \(what): an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(number)
    }

    /// An id that refers to something (any non-empty string of sane length).
    mutating func optionalID<Tag>(_ key: String) throws(ControlError) -> Identifier<Tag>? {
        guard let text = try optionalString(key) else { return nil }
        guard !text.isEmpty, text.utf8.count <= 256 else {
            throw ControlError(.invalidArgs, "\"\(key)\" must be a non-empty id of at most 256 bytes")
        }
        return Identifier(text)
    }

    mutating func id<Tag>(_ key: String) throws(ControlError) -> Identifier<Tag> {
        guard let id: Identifier<Tag> = try optionalID(key) else {
            throw ControlError(.invalidArgs, "\"\(key)\" is required")
        }
        return id
    }

    /// An id given explicitly as null clears; absent is an error.
    mutating func nullableID<Tag>(_ key: String) throws(ControlError) -> Identifier<Tag>? {
        guard values[key] != nil else {
            throw ControlError(.invalidArgs, "\"\(key)\" is required (a user id, or null for none)")
        }
        return try optionalID(key)
    }

    /// The id of something new: letters, digits and `._:@-`, 1–128 characters.
    mutating func newID<Tag>(_ key: String) throws(ControlError) -> Identifier<Tag> {
        let id: Identifier<Tag> = try id(key)
        let allowed = id.rawValue.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || "._:@-".unicodeScalars.contains($0)
        }
        guard allowed, id.rawValue.count <= 128 else {
            throw ControlError(
                .invalidArgs, "\"\(key)\" must be 1–128 letters, digits or ._:@- (got \"\(id.rawValue)\")")
        }
        return id
    }

    mutating func session() throws(ControlError) -> SessionID { try id("session") }

    /// A fleet host's id (`[fleet] host_id`: 1–63 of letters, digits, `.-_`).
    mutating func hostID() throws(ControlError) -> String {
        let text = try string("host")
        let allowed = text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || "._-".unicodeScalars.contains($0)
        }
        guard allowed, (1...63).contains(text.utf8.count) else {
            throw ControlError(
                .invalidArgs, "\"host\" must be a fleet host id: 1–63 letters, digits or ._- (got \"\(text)\")")
        }
        return text
    }
    mutating func user() throws(ControlError) -> UserID { try id("user") }

    mutating func address() throws(ControlError) -> RecordAddress {
        RecordAddress(session: try id("session"), object: try id("object"))
    }

    mutating func trigger(_ key: String) throws(ControlError) -> Reaction.Trigger {
        try ControlValue.trigger(try string(key), key: key)
    }

    /// A record's compression: "off", "on", an offer, or null / "inherit" (nil: the daemon's setting).
    mutating func compression(_ key: String) throws(ControlError) -> RecordCompression? {
        guard let text = try optionalString(key), text != "inherit" else { return nil }
        return try ControlValue.compression(text, key: key)
    }

    mutating func nullableURL(_ key: String) throws(ControlError) -> WebSocketURL? {
        guard let text = try optionalString(key) else { return nil }
        return try ControlValue.url(text, key: key)
    }

    func finish(op: String) throws(ControlError) {
        for key in values.keys.sorted() where !used.contains(key) {
            throw ControlError(.invalidArgs, "\(op) takes no argument \"\(key)\"")
        }
    }
}
