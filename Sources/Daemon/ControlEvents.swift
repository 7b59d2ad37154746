import Control
import EventLoop
import Glibc
import HostingCore
import JSONValue
import WebSocketProtocol
import World

/// The event stream of the control socket: the hosting core's events as
/// control events, numbered in a bounded journal (so that a subscriber can
/// resume with `since`) and fanned out to the subscribers.
@LoopActor
final class ControlEvents {
    private let server: ControlServer
    private(set) var journal: EventJournal<HostingEventEntry>
    /// Distinguishes this run's sequence numbers from an earlier run's.
    let epoch: String

    init(server: ControlServer, history: Int, historyBytes: Int) {
        self.server = server
        journal = EventJournal(capacity: history, byteCapacity: historyBytes)
        var generator = SystemRandomNumberGenerator()
        epoch = String(UInt64.random(in: 1...UInt64.max, using: &generator), radix: 36)
        server.backlogPage = { [unowned self] after, filter in
            // One event a page: the server checks the client's output between lines.
            guard let page = journal.page(after: after, matching: filter, limit: 1) else { return nil }
            return (page.events.map(\.line), page.next, page.next >= journal.lastSeq)
        }
    }

    /// Starts `client`'s subscription (replacing an earlier one): the
    /// response says where the stream stands and how many kept events
    /// follow it (those after `since`); nil `backlogAfter` means none.
    func subscribe(_ client: ControlClient, _ filter: EventFilter, since: Int?) throws(ControlError) -> (
        result: JSON, backlogAfter: Int?
    ) {
        client.backlogCursor = nil  // a new subscription replaces what an earlier one still had to write
        var backlog = 0
        var backlogAfter: Int?
        if let since {
            guard let count = journal.count(after: since, matching: filter) else {
                throw ControlError(
                    .historyGone,
                    "events after \(since) are no longer kept (the oldest kept is \(journal.oldestSeq ?? 0)); resume from there or subscribe without since"
                )
            }
            backlog = count
            if count > 0 { backlogAfter = since }
        }
        client.subscription = filter
        server.subscriptionsChanged()
        // The response goes out first; then the backlog, then live events.
        let result = JSON.object([
            "seq": .int(journal.lastSeq), "epoch": .string(epoch), "backlog": .int(backlog),
            "oldest": journal.oldestSeq.map { .int($0) } ?? .null,
        ])
        return (result, backlogAfter)
    }

    /// Received data carried in an event, at most.
    nonisolated static let eventDataLimit = 64 << 10

    /// The last event of the stream: the daemon is stopping (after the
    /// disconnects of its records); then the connections are closed.
    func stopping(signal: String) {
        let entry = HostingEventEntry(
            time: Self.wallNow(), type: .stopping, detail: .fields(["signal": .string(signal)]))
        server.broadcast(entry.event(seq: journal.append(entry)))
    }

    /// Journals an event and fans it out. Message events are journaled only
    /// while someone subscribes: they are the bulk of the stream, and with
    /// nobody listening they cost nothing (no conversion, no allocation).
    /// The others are kept compact and their fields made only when a
    /// subscriber reads them.
    func record(_ event: consuming Hosting.Event) {
        switch event {
        case .receivedText, .receivedBinary, .sendStart, .sent, .sendError:
            guard server.hasSubscribers else { return }
        default:
            break
        }
        // Moved into the journal, and read back from it for the subscribers.
        let seq = journal.append(HostingEventEntry(consume event, time: Self.wallNow()))
        if server.hasSubscribers, let entry = journal.newest { server.broadcast(entry.event(seq: seq)) }
    }

    static func wallNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// The session, object and user a change is about, for the event stream.
    nonisolated static func subjects(of change: WorldChange) -> (SessionID?, ObjectID?, UserID?) {
        switch change {
        case .addUser(let user): return (nil, nil, user.id)
        case .startSession(let session): return (session.id, nil, session.host)
        case .closeSession(let id): return (id, nil, nil)
        case .join(let id, let user), .leave(let id, let user), .setHost(let id, let user): return (id, nil, user)
        case .spawn(let id, let object): return (id, object.id, nil)
        case .remove(let id, let object), .setRecord(let id, let object, _), .setReactions(let id, let object, _):
            return (id, object, nil)
        case .wear(let id, let object, let user), .grab(let id, let object, let user),
            .defineUser(let id, let object, let user):
            return (id, object, user)
        case .connect(let id, let object, _, let user): return (id, object, user)
        }
    }

    nonisolated static func name(of change: WorldChange) -> String {
        switch change {
        case .addUser: return "add-user"
        case .startSession: return "start-session"
        case .closeSession: return "close-session"
        case .join: return "join"
        case .leave: return "leave"
        case .setHost: return "set-host"
        case .spawn: return "spawn"
        case .remove: return "remove"
        case .wear: return "wear"
        case .grab: return "grab"
        case .defineUser: return "define-user"
        case .setRecord: return "set-record"
        case .connect: return "connect"
        case .setReactions: return "set-reactions"
        }
    }
}

/// A hosting core event as the journal keeps it: who and what it is about,
/// and its details in their own form; `event(seq:)` makes the stream's fields.
struct HostingEventEntry: JournalEntry {
    let time: Double
    let type: ControlEventType
    var session: SessionID?
    var object: ObjectID?
    var user: UserID?
    var detail: Detail = .none

    enum Detail: Sendable {
        case none
        case disconnected(CloseReport)
        /// attempt-failed, send-error
        case reason(String)
        case consentAsked(AccessKey)
        case consentDecided(ConsentVerdict, ConsentEngine.Outcome)
        /// The state's name (not the state: it holds the attempt's URL,
        /// which the history's byte bound does not count).
        case state(String)
        case handlingUser(UserID?)
        case worldChanged(op: String, by: String?)
        /// Made at once: received data (truncated), prompts, the stop.
        case fields([String: JSON])
    }

}

extension HostingEventEntry {
    // (In an extension, so that the memberwise initializer stays.)
    init(_ event: consuming Hosting.Event, time: Double) {
        func at(_ address: RecordAddress, _ type: ControlEventType, user: UserID? = nil, _ detail: Detail = .none)
            -> HostingEventEntry
        {
            HostingEventEntry(
                time: time, type: type, session: address.session, object: address.object, user: user, detail: detail)
        }
        switch consume event {
        case .connected(let address, let user): self = at(address, .connected, user: user)
        case .disconnected(let address, let report): self = at(address, .disconnected, .disconnected(report))
        case .attemptFailed(let address, let reason): self = at(address, .attemptFailed, .reason(reason))
        case .receivedText(let address, let text):
            let size = text.utf8.count
            let limit = ControlEvents.eventDataLimit
            let shown = size > limit ? String(decoding: text.utf8.prefix(limit), as: UTF8.self) : text
            self = at(
                address, .received,
                .fields(["text": .string(shown), "size": .int(size), "truncated": .bool(size > limit)]))
        case .receivedBinary(let address, let bytes):
            let limit = ControlEvents.eventDataLimit
            self = at(
                address, .received,
                .fields([
                    "binary": .string(Base64.encode(bytes.prefix(limit))), "size": .int(bytes.count),
                    "truncated": .bool(bytes.count > limit),
                ]))
        case .sendStart(let address): self = at(address, .sendStart)
        case .sent(let address): self = at(address, .sent)
        case .sendError(let address, let reason): self = at(address, .sendError, .reason(reason))
        case .consentAsked(let address, let user, let key):
            self = at(address, .consentAsked, user: user, .consentAsked(key))
        case .consentDecided(let address, let verdict, let outcome):
            self = at(address, .consentDecided, .consentDecided(verdict, outcome))
        case .prompt(let prompt):
            self = HostingEventEntry(
                time: time, type: .prompt, session: prompt.request.requester.session,
                object: prompt.request.requester.object, user: prompt.user,
                detail: .fields(["prompt": ControlView.prompt(prompt)]))
        case .promptDismissed(let prompt):
            self = HostingEventEntry(
                time: time, type: .promptDismissed, session: prompt.request.requester.session,
                object: prompt.request.requester.object, user: prompt.user, detail: .fields(["prompt": .int(prompt.id)])
            )
        case .stateChanged(let address, let state):
            self = at(address, .stateChanged, .state(ControlView.stateName(state)))
        case .worldChanged(let change, let requester):
            let (session, object, user) = ControlEvents.subjects(of: change)
            self = HostingEventEntry(
                time: time, type: .worldChanged, session: session, object: object, user: user,
                detail: .worldChanged(op: ControlEvents.name(of: change), by: requester))
        case .handlingUserChanged(let address, let user):
            self = at(address, .handlingUserChanged, user: user, .handlingUser(user))
        }
    }

    var fields: [String: JSON] {
        switch detail {
        case .none: return [:]
        case .disconnected(let report):
            return [
                "initiator": .string(report.initiator.rawValue), "code": .int(Int(report.code.rawValue)),
                "reason": .string(report.reason),
            ]
        case .reason(let reason): return ["reason": .string(reason)]
        case .consentAsked(let key): return ["hostPort": .string(key.hostPort)]
        case .consentDecided(let verdict, let outcome):
            let allowed: JSON =
                switch verdict {
                case .allowed: .bool(true)
                case .denied: .bool(false)
                case .ignored: .null
                }
            return ["allowed": allowed, "outcome": .string(outcome.description)]
        case .state(let name): return ["state": .string(name)]
        case .handlingUser(let user): return ["handlingUser": user.map { .string($0.rawValue) } ?? .null]
        case .worldChanged(let op, let requester):
            var fields: [String: JSON] = ["op": .string(op)]
            if let requester { fields["by"] = .string(requester) }
            return fields
        case .fields(let fields): return fields
        }
    }

    func event(seq: Int) -> ControlEvent {
        ControlEvent(seq: seq, time: time, type: type, session: session, object: object, user: user, fields: fields)
    }

    /// About the length of the line, as `ControlEvent.approximateSize` counts
    /// it, from the details (a fixed share for the short ones).
    var approximateSize: Int {
        let base = 96 + type.rawValue.utf8.count
        switch detail {
        case .none: return base
        case .disconnected(let report): return base + 64 + report.reason.utf8.count
        case .reason(let reason): return base + 12 + reason.utf8.count
        case .consentAsked(let key): return base + 24 + key.host.utf8.count
        case .consentDecided(_, let outcome):
            if case .headlessDenied(let hostPort) = outcome { return base + 140 + hostPort.utf8.count }
            return base + 80
        case .state: return base + 30
        case .handlingUser(let user): return base + 20 + (user?.rawValue.utf8.count ?? 4)
        case .worldChanged(let op, let requester): return base + 16 + op.utf8.count + (requester?.utf8.count ?? 0)
        case .fields(let fields):
            return fields.reduce(base) { $0 + $1.key.utf8.count + 4 + $1.value.approximateSize }
        }
    }
}
