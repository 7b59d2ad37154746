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

/// What the journal keeps of one event: what a filter reads, and the event
/// itself made when asked. The daemon keeps the hosting core's events in a
/// compact form and makes their fields only when a subscriber reads them
/// (building every event's fields at once was a seventh of a connection's CPU
/// time with nobody subscribed).
public protocol JournalEntry: Sendable {
    var type: ControlEventType { get }
    var session: SessionID? { get }
    var object: ObjectID? { get }
    var user: UserID? { get }
    /// About the length of the event's line, without making it.
    var approximateSize: Int { get }
    /// The event, numbered `seq`.
    func event(seq: Int) -> ControlEvent
}

extension ControlEvent: JournalEntry {
    public func event(seq: Int) -> ControlEvent {
        var event = self
        event.seq = seq
        return event
    }
}

/// The recent events, so that a subscriber can resume with `since` after a
/// reconnect. Bounded in count and in bytes: the oldest events fall out (a
/// stream of large messages cannot make the history hold gigabytes).
public struct EventJournal<Entry: JournalEntry>: Sendable {
    public let capacity: Int
    /// Roughly the bytes the kept events may hold (their lines' length).
    public let byteCapacity: Int
    /// The kept entries, oldest first: the first is number `lastSeq - entries.count + 1`.
    /// (Usable from inline code, with `append`: the journal is then
    /// specialized for the daemon's entries; generic, it cost more than the
    /// conversion it saves.)
    @usableFromInline var entries = EventRing<Kept>()
    /// An entry and its size (a struct, not a tuple: a tuple of a generic
    /// entry was copied and destroyed through the runtime's tuple witnesses).
    @usableFromInline struct Kept: Sendable {
        @usableFromInline var entry: Entry
        @usableFromInline var size: Int
        @inlinable init(entry: consuming Entry, size: Int) {
            self.entry = entry
            self.size = size
        }
    }
    @usableFromInline var keptBytes = 0
    @usableFromInline var newestSeq = 0
    /// The kept events' sizes, added up.
    public var bytes: Int { keptBytes }
    /// The sequence number of the newest event (0: none yet).
    public var lastSeq: Int { newestSeq }

    public init(capacity: Int, byteCapacity: Int = .max) {
        precondition(capacity > 0 && byteCapacity > 0)
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Numbers and keeps `entry` (moved in: no copy); returns its number.
    @discardableResult @inlinable
    public mutating func append(_ entry: consuming Entry) -> Int {
        newestSeq += 1
        let size = entry.approximateSize
        entries.append(Kept(entry: entry, size: size))
        keptBytes += size
        while entries.count > capacity || (keptBytes > byteCapacity && entries.count > 1),
            let first = entries.popFirst()
        {
            keptBytes -= first.size
        }
        return newestSeq
    }

    /// The newest entry kept (nil: none), as appended.
    public var newest: Entry? { entries.isEmpty ? nil : entries[entries.count - 1].entry }

    /// The oldest event kept (nil: none).
    public var oldestSeq: Int? { entries.isEmpty ? nil : lastSeq - entries.count + 1 }

    /// The events after `seq` matching `filter`; nil when some of them are no
    /// longer kept (the subscriber missed events and must start afresh).
    /// `seq` 0 means from the beginning: every event still kept.
    public func events(after seq: Int, matching filter: EventFilter) -> [ControlEvent]? {
        guard let start = index(after: seq) else { return nil }
        return (start..<entries.count).compactMap { position in
            let entry = entries[position].entry
            return filter.matches(entry) ? entry.event(seq: self.seq(at: position)) : nil
        }
    }

    /// How many events after `seq` match (nil: some are no longer kept).
    public func count(after seq: Int, matching filter: EventFilter) -> Int? {
        guard let start = index(after: seq) else { return nil }
        var count = 0
        for position in start..<entries.count where filter.matches(entries[position].entry) { count += 1 }
        return count
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
        while position < entries.count && found.count < limit {
            let entry = entries[position].entry
            next = self.seq(at: position)
            if filter.matches(entry) { found.append(entry.event(seq: next)) }
            position += 1
        }
        if position == entries.count { next = max(next, lastSeq) }
        return (found, next)
    }

    /// The number of the entry at `position` in `entries`.
    private func seq(at position: Int) -> Int { lastSeq - entries.count + 1 + position }

    /// Where the events after `seq` begin in `entries`; nil when some are gone.
    private func index(after seq: Int) -> Int? {
        if seq >= lastSeq { return entries.count }
        guard let first = oldestSeq else { return seq == 0 ? 0 : nil }
        if seq == 0 { return 0 }
        guard first <= seq + 1 else { return nil }
        return seq + 1 - first
    }
}

extension ControlEvent {
    /// About the length of the event's line, without making it.
    public var approximateSize: Int {
        fields.reduce(96 + type.rawValue.utf8.count) { $0 + $1.key.utf8.count + 4 + $1.value.approximateSize }
    }
}

extension JSON {
    /// About the length of the value's text, without making it.
    public var approximateSize: Int {
        switch self {
        case .null, .bool, .number: return 8
        case .string(let text): return text.utf8.count + 2
        case .array(let items): return items.reduce(2) { $0 + $1.approximateSize + 1 }
        case .object(let members): return members.reduce(2) { $0 + $1.key.utf8.count + 4 + $1.value.approximateSize }
        }
    }
}
