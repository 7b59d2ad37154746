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
    private(set) var journal: EventJournal
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
    static let eventDataLimit = 64 << 10

    /// The last event of the stream: the daemon is stopping (after the
    /// disconnects of its records); then the connections are closed.
    func stopping(signal: String) {
        let event = ControlEvent(time: Self.wallNow(), type: .stopping, fields: ["signal": .string(signal)])
        server.broadcast(journal.append(event))
    }

    /// Journals an event and fans it out. Message events are journaled only
    /// while someone subscribes: they are the bulk of the stream, and with
    /// nobody listening they cost nothing (no conversion, no allocation).
    func record(_ event: Hosting.Event) {
        switch event {
        case .receivedText, .receivedBinary, .sendStart, .sent, .sendError:
            guard server.hasSubscribers else { return }
        default:
            break
        }
        guard let converted = convert(event) else { return }
        server.broadcast(journal.append(converted))
    }

    private func convert(_ event: Hosting.Event) -> ControlEvent? {
        let now = Self.wallNow()
        func at(_ address: RecordAddress, _ type: ControlEventType, user: UserID? = nil, _ fields: [String: JSON] = [:])
            -> ControlEvent
        {
            ControlEvent(
                time: now, type: type, session: address.session, object: address.object, user: user, fields: fields)
        }
        switch event {
        case .connected(let address, let user): return at(address, .connected, user: user)
        case .disconnected(let address, let report):
            return at(
                address, .disconnected,
                [
                    "initiator": .string(report.initiator.rawValue), "code": .int(Int(report.code.rawValue)),
                    "reason": .string(report.reason),
                ])
        case .attemptFailed(let address, let reason): return at(address, .attemptFailed, ["reason": .string(reason)])
        case .receivedText(let address, let text):
            let size = text.utf8.count
            let shown =
                size > Self.eventDataLimit
                ? String(decoding: text.utf8.prefix(Self.eventDataLimit), as: UTF8.self) : text
            return at(
                address, .received,
                ["text": .string(shown), "size": .int(size), "truncated": .bool(size > Self.eventDataLimit)])
        case .receivedBinary(let address, let bytes):
            return at(
                address, .received,
                [
                    "binary": .string(Base64.encode(bytes.prefix(Self.eventDataLimit))), "size": .int(bytes.count),
                    "truncated": .bool(bytes.count > Self.eventDataLimit),
                ])
        case .sendStart(let address): return at(address, .sendStart)
        case .sent(let address): return at(address, .sent)
        case .sendError(let address, let reason): return at(address, .sendError, ["reason": .string(reason)])
        case .consentAsked(let address, let user, let key):
            return at(address, .consentAsked, user: user, ["hostPort": .string(key.hostPort)])
        case .consentDecided(let address, let verdict, let outcome):
            let allowed: JSON =
                switch verdict {
                case .allowed: .bool(true)
                case .denied: .bool(false)
                case .ignored: .null
                }
            return at(address, .consentDecided, ["allowed": allowed, "outcome": .string(outcome.description)])
        case .prompt(let prompt):
            return ControlEvent(
                time: now, type: .prompt, session: prompt.request.requester.session,
                object: prompt.request.requester.object, user: prompt.user,
                fields: ["prompt": ControlView.prompt(prompt)])
        case .promptDismissed(let prompt):
            return ControlEvent(
                time: now, type: .promptDismissed, session: prompt.request.requester.session,
                object: prompt.request.requester.object, user: prompt.user, fields: ["prompt": .int(prompt.id)])
        case .stateChanged(let address, let state):
            return at(address, .stateChanged, ["state": .string(ControlView.stateName(state))])
        case .worldChanged(let change, let requester):
            var fields: [String: JSON] = ["op": .string(Self.name(of: change))]
            if let requester { fields["by"] = .string(requester) }
            let (session, object, user) = Self.subjects(of: change)
            return ControlEvent(
                time: now, type: .worldChanged, session: session, object: object, user: user, fields: fields)
        case .handlingUserChanged(let address, let user):
            return at(
                address, .handlingUserChanged, user: user,
                ["handlingUser": user.map { .string($0.rawValue) } ?? .null])
        }
    }

    static func wallNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// The session, object and user a change is about, for the event stream.
    static func subjects(of change: WorldChange) -> (SessionID?, ObjectID?, UserID?) {
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

    static func name(of change: WorldChange) -> String {
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
