import DequeModule
import JSONValue
import World

/// Every event type, as named in the stream (docs/control-protocol.md).
public enum ControlEventType: String, CaseIterable, Sendable {
    case connected, disconnected
    case attemptFailed = "attempt-failed"
    case received
    case sendStart = "send-start"
    case sent
    case sendError = "send-error"
    case consentAsked = "consent-asked"
    case consentDecided = "consent-decided"
    case prompt
    case promptDismissed = "prompt-dismissed"
    case stateChanged = "state-changed"
    case handlingUserChanged = "handling-user-changed"
    case worldChanged = "world-changed"
    /// The daemon stops: the last event of every stream.
    case stopping
}

/// One line of the event stream: a sequence number, a wall-clock time, a type,
/// where it happened and what it carries.
public struct ControlEvent: Equatable, Sendable {
    /// Increases by one per event; a subscriber resumes with `since`.
    public var seq: Int
    /// Seconds since the Unix epoch.
    public var time: Double
    public var type: ControlEventType
    public var session: SessionID?
    public var object: ObjectID?
    public var user: UserID?
    public var fields: [String: JSON]

    public init(
        seq: Int = 0, time: Double, type: ControlEventType, session: SessionID? = nil, object: ObjectID? = nil,
        user: UserID? = nil, fields: [String: JSON] = [:]
    ) {
        self.seq = seq
        self.time = time
        self.type = type
        self.session = session
        self.object = object
        self.user = user
        self.fields = fields
    }

    public var json: JSON {
        var members = fields
        members["seq"] = .int(seq)
        members["time"] = .number((time * 1000).rounded() / 1000)
        members["type"] = .string(type.rawValue)
        if let session { members["session"] = .string(session.rawValue) }
        if let object { members["object"] = .string(object.rawValue) }
        if let user { members["user"] = .string(user.rawValue) }
        return .object(members)
    }

    /// The stream line, newline included.
    public var line: String { JSON.object(["event": json]).description + "\n" }

    /// Reads an event back from its JSON (the CLI's side).
    public init?(json: JSON) {
        guard case .object(var members) = json, let seq = members.removeValue(forKey: "seq")?.intValue,
            let time = members.removeValue(forKey: "time")?.doubleValue,
            let type = members.removeValue(forKey: "type")?.stringValue.flatMap(ControlEventType.init(rawValue:))
        else { return nil }
        self.init(
            seq: seq, time: time, type: type,
            session: members.removeValue(forKey: "session")?.stringValue.map { SessionID($0) },
            object: members.removeValue(forKey: "object")?.stringValue.map { ObjectID($0) },
            user: members.removeValue(forKey: "user")?.stringValue.map { UserID($0) }, fields: members)
    }
}

/// The recent events, so that a subscriber can resume with `since` after a
/// reconnect. Bounded in count and in bytes: the oldest events fall out (a
/// stream of large messages cannot make the history hold gigabytes).
public struct EventJournal: Sendable {
    public let capacity: Int
    /// Roughly the bytes the kept events may hold (their lines' length).
    public let byteCapacity: Int
    private var events = Deque<(event: ControlEvent, size: Int)>()
    /// The kept events' sizes, added up.
    public private(set) var bytes = 0
    /// The sequence number of the newest event (0: none yet).
    public private(set) var lastSeq = 0

    public init(capacity: Int, byteCapacity: Int = .max) {
        precondition(capacity > 0 && byteCapacity > 0)
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Numbers and keeps `event`; returns it numbered.
    public mutating func append(_ event: ControlEvent) -> ControlEvent {
        var event = event
        lastSeq += 1
        event.seq = lastSeq
        let size = event.approximateSize
        events.append((event, size))
        bytes += size
        while events.count > capacity || (bytes > byteCapacity && events.count > 1), let first = events.popFirst() {
            bytes -= first.size
        }
        return event
    }

    /// The oldest event kept (nil: none).
    public var oldestSeq: Int? { events.first?.event.seq }

    /// The events after `seq` matching `filter`; nil when some of them are no
    /// longer kept (the subscriber missed events and must start afresh).
    /// `seq` 0 means from the beginning: every event still kept.
    public func events(after seq: Int, matching filter: EventFilter) -> [ControlEvent]? {
        guard let start = index(after: seq) else { return nil }
        return events[start...].lazy.map(\.event).filter(filter.matches)
    }

    /// How many events after `seq` match (nil: some are no longer kept).
    public func count(after seq: Int, matching filter: EventFilter) -> Int? {
        guard let start = index(after: seq) else { return nil }
        return events[start...].lazy.filter { filter.matches($0.event) }.count
    }

    /// Up to `limit` events after `seq` matching `filter`, and the sequence
    /// number to continue after (the last one looked at): a backlog is
    /// written in pieces as the subscriber reads, never built whole. Nil when
    /// events after `seq` are no longer kept.
    public func page(after seq: Int, matching filter: EventFilter, limit: Int) -> (
        events: [ControlEvent], next: Int
    )? {
        guard let start = index(after: seq) else { return nil }
        var found: [ControlEvent] = []
        var next = seq
        var position = start
        while position < events.count && found.count < limit {
            let event = events[position].event
            if filter.matches(event) { found.append(event) }
            next = event.seq
            position += 1
        }
        if position == events.count { next = max(next, lastSeq) }
        return (found, next)
    }

    /// Where the events after `seq` begin in `events`; nil when some are gone.
    private func index(after seq: Int) -> Int? {
        if seq >= lastSeq { return events.count }
        guard let first = events.first?.event.seq else { return seq == 0 ? 0 : nil }
        if seq == 0 { return 0 }
        guard first <= seq + 1 else { return nil }
        return seq + 1 - first
    }
}

extension ControlEvent {
    /// About the length of the event's line, without making it.
    var approximateSize: Int {
        fields.reduce(96 + type.rawValue.utf8.count) { $0 + $1.key.utf8.count + 4 + $1.value.approximateSize }
    }
}

extension JSON {
    /// About the length of the value's text, without making it.
    var approximateSize: Int {
        switch self {
        case .null, .bool, .number: return 8
        case .string(let text): return text.utf8.count + 2
        case .array(let items): return items.reduce(2) { $0 + $1.approximateSize + 1 }
        case .object(let members): return members.reduce(2) { $0 + $1.key.utf8.count + 4 + $1.value.approximateSize }
        }
    }
}
