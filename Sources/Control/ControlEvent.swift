import DequeModule
import World

/// One line of the event stream: a sequence number, a wall-clock time, a type
/// (`EventFilter.types`), where it happened and what it carries.
public struct ControlEvent: Equatable, Sendable {
    /// Increases by one per event; a subscriber resumes with `since`.
    public var seq: Int
    /// Seconds since the Unix epoch.
    public var time: Double
    public var type: String
    public var session: SessionID?
    public var object: ObjectID?
    public var user: UserID?
    public var fields: [String: JSON]

    public init(
        seq: Int = 0, time: Double, type: String, session: SessionID? = nil, object: ObjectID? = nil,
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
        members["type"] = .string(type)
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
            let type = members.removeValue(forKey: "type")?.stringValue
        else { return nil }
        self.init(
            seq: seq, time: time, type: type,
            session: members.removeValue(forKey: "session")?.stringValue.map { SessionID($0) },
            object: members.removeValue(forKey: "object")?.stringValue.map { ObjectID($0) },
            user: members.removeValue(forKey: "user")?.stringValue.map { UserID($0) }, fields: members)
    }
}

/// The recent events, so that a subscriber can resume with `since` after a
/// reconnect. Bounded: the oldest events fall out.
public struct EventJournal: Sendable {
    public let capacity: Int
    private var events = Deque<ControlEvent>()
    /// The sequence number of the newest event (0: none yet).
    public private(set) var lastSeq = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Numbers and keeps `event`; returns it numbered.
    public mutating func append(_ event: ControlEvent) -> ControlEvent {
        var event = event
        lastSeq += 1
        event.seq = lastSeq
        events.append(event)
        if events.count > capacity { events.removeFirst() }
        return event
    }

    /// The oldest event kept (nil: none).
    public var oldestSeq: Int? { events.first?.seq }

    /// The events after `seq` matching `filter`; nil when some of them are no
    /// longer kept (the subscriber missed events and must start afresh).
    /// `seq` 0 means from the beginning: every event still kept.
    public func events(after seq: Int, matching filter: EventFilter) -> [ControlEvent]? {
        if seq >= lastSeq { return [] }
        if seq == 0 { return events.filter(filter.matches) }
        guard let first = events.first, first.seq <= seq + 1 else { return nil }
        return events.dropFirst(seq + 1 - first.seq).filter(filter.matches)
    }
}
