import WebSocketProtocol

/// SPEC §1: who a user is. `headless` users cannot answer prompts (a server
/// account, the daemon's own host account); `interactive` users can.
public enum UserKind: String, Sendable, CaseIterable {
    case headless, interactive
}

public struct User: Equatable, Sendable {
    public var id: UserID
    public var name: String
    public var kind: UserKind

    public init(id: UserID, name: String, kind: UserKind) {
        self.id = id
        self.name = name
        self.kind = kind
    }
}

/// SPEC §1: a world, with a host and the users present in it.
public struct Session: Equatable, Sendable {
    public var id: SessionID
    public var name: String
    public var host: UserID
    public var present: Set<UserID>

    public init(id: SessionID, name: String, host: UserID, present: Set<UserID>) {
        self.id = id
        self.name = name
        self.host = host
        self.present = present
    }
}

/// SPEC §1: a slot in a session, with the relations the handling-user rule reads.
public struct WorldObject: Equatable, Sendable {
    public var id: ObjectID
    public var name: String
    /// The user whose avatar contains the object.
    public var wornBy: UserID?
    /// A user explicitly named as expected to be present.
    public var definedUser: UserID?
    public var spawnedBy: UserID?
    /// The user currently grabbing or using the object.
    public var interactingUser: UserID?
    /// The object's WebSocket Client record, if it has one (at most one).
    public var record: RecordSettings?
    /// What the object does on its record's events (SPEC §5).
    public var reactions: [Reaction]

    public init(
        id: ObjectID, name: String, wornBy: UserID? = nil, definedUser: UserID? = nil, spawnedBy: UserID? = nil,
        interactingUser: UserID? = nil, record: RecordSettings? = nil, reactions: [Reaction] = []
    ) {
        self.id = id
        self.name = name
        self.wornBy = wornBy
        self.definedUser = definedUser
        self.spawnedBy = spawnedBy
        self.interactingUser = interactingUser
        self.record = record
        self.reactions = reactions
    }
}

/// SPEC §2: the writable fields of a WebSocket Client record, with the
/// reference names. (`IsConnected` and the status are the lifecycle's.)
public struct RecordSettings: Equatable, Sendable {
    /// `URL`: the target; nil when empty.
    public var url: WebSocketURL?
    /// `HandlingUser`: automatic (SPEC §3) or pinned by the Connect node.
    public var handlingUser: HandlingUserSetting
    /// `AccessReason`: shown in the consent prompt.
    public var accessReason: String
    /// `ConnectRetryInterval`: wait between attempts after failures (not denials).
    public var connectRetryInterval: Duration
    /// `Enabled`: disabled means no connection and no retries.
    public var enabled: Bool
    /// The record's own permessage-deflate setting; nil: the daemon's
    /// `[websocket] compression`. Takes effect at the next connection.
    public var compression: RecordCompression?

    /// The retry intervals a record may have, wherever they come from (config,
    /// control, the state store): shorter would hammer servers, and every
    /// value inside reads back from the store.
    public static let connectRetryIntervalBounds: ClosedRange<Duration> = .milliseconds(100) ... .seconds(86_400)

    public init(
        url: WebSocketURL? = nil, handlingUser: HandlingUserSetting = .automatic, accessReason: String = "",
        connectRetryInterval: Duration = .seconds(10), enabled: Bool = true, compression: RecordCompression? = nil
    ) {
        self.url = url
        self.handlingUser = handlingUser
        self.accessReason = accessReason
        self.connectRetryInterval = connectRetryInterval
        self.enabled = enabled
        self.compression = compression
    }
}

/// A record's permessage-deflate setting (RFC 7692), spelled as the config's
/// `compression`: "off", "on" (no context takeover) or an offer as written.
public enum RecordCompression: Equatable, Sendable, CustomStringConvertible {
    case off
    case offer(DeflateOffer)

    /// What is offered (nil: nothing).
    public var offer: DeflateOffer? {
        if case .offer(let offer) = self { return offer }
        return nil
    }

    public static func parse(_ text: String) -> Result<RecordCompression, DeflateNegotiationError> {
        DeflateOffer.setting(text).map { $0.map { .offer($0) } ?? .off }
    }

    public var description: String { DeflateOffer.describe(offer) }
}

/// How a record's handling user is chosen.
public enum HandlingUserSetting: Equatable, Sendable {
    /// The first present user of the SPEC §3 priority.
    case automatic
    /// Set explicitly (the Connect node with a user); stays until cleared.
    case pinned(UserID)
}
