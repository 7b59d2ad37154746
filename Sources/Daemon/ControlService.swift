import Config
import Control
import EventLoop
import Glibc
import HostRuntime
import HostingCore
import JSONValue
import Logging
import MonotonicTime
import WebSocketProtocol
import World

/// What the control service needs of the daemon it runs in.
@LoopActor
protocol DaemonControl: AnyObject, Sendable {
    var isStopping: Bool { get }
    /// created, running or stopping.
    var stateName: String { get }
    var configPath: String { get }
    var configGeneration: Int { get }
    var lastReloadError: String? { get }
    func statusLine() -> String
    /// The metrics as Prometheus text.
    func scrapeMetrics() -> [UInt8]
    /// Reloads the config file (like SIGHUP); `lastReloadError` says how it went.
    func reload()
    /// Stores a world change before it takes effect (`Runtime.PersistChange`).
    func persistChange(_ change: WorldChange, _ world: World) throws
    /// This host in a fleet, or nil.
    var fleet: FleetMember? { get }
}

/// What each control request does to the running daemon
/// (docs/control-protocol.md): `ControlAccess` checks who asks, the command
/// runs against the hosting runtime, and the answer is a result or a clear
/// error. A refused request changes nothing. World rules are the world's:
/// this only translates.
@LoopActor
final class ControlService {
    private unowned let daemon: any DaemonControl
    private let runtime: Runtime
    private let server: ControlServer
    private let tokens: TokenStore
    private let access: ControlAccess
    let events: ControlEvents
    private let clock: LoopClock
    private let logger = Logger(label: "wshostd.control")
    /// The headless user that hosts sessions started without `--host`.
    static let defaultHost: UserID = "wshostd"

    init(
        daemon: any DaemonControl, runtime: Runtime, server: ControlServer, tokens: TokenStore, clock: LoopClock,
        history: Int, historyBytes: Int
    ) {
        self.daemon = daemon
        self.clock = clock
        self.runtime = runtime
        self.server = server
        self.tokens = tokens
        access = ControlAccess(tokens: tokens, operators: server.operators)
        events = ControlEvents(server: server, history: history, historyBytes: historyBytes)
        // Message events cost something per message; the runtime makes them only
        // while someone subscribes.
        runtime.reportsMessages = server.hasSubscribers
        server.onSubscribersChanged = { [unowned runtime] subscribed in runtime.reportsMessages = subscribed }
        server.handle = { [unowned self] client, request in respond(to: request, from: client) }
        daemon.fleet?.onForwarded = { [unowned self] command in carryOutForwarded(command) }
    }

    private var view: ControlView {
        let wall = ControlEvents.wallNow()
        let monotonic = clock.now()
        return ControlView(world: world, statuses: runtime.statuses) { instant in
            wall - Double((monotonic - instant).nanosecondsClamped) / 1e9
        }
    }

    // MARK: - Requests

    private func respond(to request: ControlRequest, from client: ControlClient) -> ControlServer.Reply {
        do throws(ControlError) {
            try access.authorize(request.command, client)
            if daemon.isStopping && request.command.changesState {
                throw ControlError(.unavailable, "the daemon is stopping")
            }
            if let later = try fleetRequest(request, client) { return later }
            if case .subscribe(let filter, let since) = request.command {
                let (result, backlogAfter) = try events.subscribe(client, filter, since: since)
                return ControlServer.Reply(.success(id: request.id, result), backlogAfter: backlogAfter)
            }
            if let fleet = daemon.fleet, scratch == nil {
                switch request.command {
                case .wsSend, .wsDisconnect:
                    break  // the sockets of a session held here: no world change
                default:
                    return inFleet(request, client, fleet).map { ControlServer.Reply($0) } ?? .later
                }
            }
            let result = try run(request.command, client)
            return ControlServer.Reply(.success(id: request.id, result))
        } catch {
            if error.code == .forbidden {
                logger.warning(
                    "control request refused: \(error.message)",
                    metadata: ["control.peer": "\(client.peerDescription)", "control.op": "\(request.command)"])
            }
            return ControlServer.Reply(.failure(id: request.id, error))
        }
    }

    /// The fleet's operations wait for the database: answered later.
    private func fleetRequest(_ request: ControlRequest, _ client: ControlClient) throws(ControlError)
        -> ControlServer.Reply?
    {
        let answer: FleetMember.Answer = { [weak client, id = request.id] result in
            switch result {
            case .success(let json): client?.complete(.success(id: id, json))
            case .failure(let error): client?.complete(.failure(id: id, error))
            }
        }
        switch request.command {
        case .fleetShow: try fleet().show(answer)
        case .fleetDrain(let host, let drain):
            let fleet = try fleet()
            logger.notice(
                drain ? "drain requested" : "undrain requested",
                metadata: ["fleet.host": "\(host)", "control.peer": "\(client.peerDescription)"])
            fleet.drain(host, drain, answer)
        case .fleetMove(let session, let host):
            let fleet = try fleet()
            logger.notice(
                "move requested",
                metadata: [
                    "session.id": "\(session)", "fleet.to": "\(host)", "control.peer": "\(client.peerDescription)",
                ])
            fleet.move(session, to: host, answer)
        case .consentAnswer(let user, let prompt, let consentAnswer, _):
            // In a fleet an allow or a deny is stored in the database first
            // (every host then knows it), then here, then it takes effect.
            guard let fleet = daemon.fleet else { return nil }
            let prepared: ConsentEngine.PreparedAnswer
            switch runtime.consent.prepare(promptID: prompt, user: user, answer: consentAnswer) {
            case .success(let value): prepared = value
            case .failure(let error):
                switch error {
                case .noSuchPrompt: throw ControlError(.notFound, error.description)
                case .notYourPrompt: throw ControlError(.forbidden, error.description)
                }
            }
            guard let change = prepared.change else { return nil }
            fleet.storeDecision(user, change.key, change.decision) { [weak self, weak client] error in
                guard let self, let client else { return }
                client.complete(finish(request, client, afterStoring: error))
            }
        case .wsSend(let address, _), .wsDisconnect(let address):
            // A session held elsewhere: its holder's socket does it.
            guard let fleet = daemon.fleet, runtime.world.sessions[address.session] != nil,
                !runtime.world.holds(address.session)
            else { return nil }
            fleet.forward(address.session, request.command, answer)
        case .usersToken(let user):
            // In a fleet the first token made for a user, by any host, is the user's token everywhere.
            guard let fleet = daemon.fleet, runtime.world.users[user] != nil, tokens.configured[user] == nil else {
                return nil
            }
            let candidate = tokens.generated[user] ?? TokenStore.generate()
            fleet.storeToken(user, candidate) { [weak self, weak client] result in
                guard let self, let client else { return }
                switch result {
                case .failure(let error):
                    client.complete(.failure(id: request.id, error))
                case .success(let token):
                    tokens.adopt(user, token)
                    client.complete(finish(request, client, afterStoring: nil))
                }
            }
        case .consentForget(let user, let key, _):
            guard let fleet = daemon.fleet, runtime.consent.decisions[user]?[key] != nil else { return nil }
            fleet.storeDecision(user, key, nil) { [weak self, weak client] error in
                guard let self, let client else { return }
                client.complete(finish(request, client, afterStoring: error))
            }
        default:
            return nil
        }
        return .later
    }

    /// In a fleet, a request runs once against a copy of this host's core:
    /// the world changes it makes there are appended to the fleet's log as one
    /// entry (all of them or none), applied here, and then the answer it gave
    /// on the copy (what a single host would answer) goes out. A request that
    /// fails stores nothing. Nil: the answer comes later (`ControlClient.complete`).
    private func inFleet(_ request: ControlRequest, _ client: ControlClient, _ fleet: FleetMember) -> ControlResponse? {
        scratch = Scratch(core: runtime.core)
        let response: ControlResponse
        var failed = false
        do throws(ControlError) {
            response = .success(id: request.id, try run(request.command, client))
        } catch {
            response = .failure(id: request.id, error)
            failed = true
        }
        let made = scratch?.made ?? []
        let after = scratch?.core.world ?? runtime.world
        scratch = nil
        guard !made.isEmpty, !failed else { return response }
        fleet.write(made.map(\.change), leading: after, by: "\(client.peerDescription) on \(fleet.hostID)") {
            [weak self, weak client] error in
            guard let self, let client else { return }
            if let error { return client.complete(.failure(id: request.id, error)) }
            for item in made {
                logChange(item.change, client, session: item.session, object: item.object, user: item.user)
            }
            client.complete(response)
        }
        return nil
    }

    /// The Text Message Sender (and binary) on this host's socket.
    private func send(_ address: RecordAddress, _ payload: Payload) throws(ControlError) -> JSON {
        _ = try object(address)
        switch runtime.send(address, payload) {
        case .sent: return .object(["outcome": .string("sent")])
        case .failed(let reason): throw ControlError(.sendFailed, reason)
        }
    }

    /// The explicit disconnect on this host's socket.
    private func disconnect(_ address: RecordAddress, by peer: String) throws(ControlError) -> JSON {
        do {
            try runtime.disconnect(address)
        } catch {
            throw Self.translate(error)
        }
        logger.info(
            "disconnect requested",
            metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)", "control.peer": "\(peer)"])
        return .object(["record": try record(address)])
    }

    /// A request another host of the fleet forwarded for a session this host holds.
    private func carryOutForwarded(_ command: ControlCommand) -> Result<JSON, ControlError> {
        do throws(ControlError) {
            switch command {
            case .wsSend(let address, let payload): return .success(try send(address, payload))
            case .wsDisconnect(let address): return .success(try disconnect(address, by: "another host of the fleet"))
            default: throw ControlError(.forbidden, "only ws.send and ws.disconnect are forwarded")
            }
        } catch {
            return .failure(error)
        }
    }

    /// A fleet request's copy of the core, and the changes made on it.
    private struct Scratch {
        var core: Hosting
        var made: [(change: WorldChange, session: SessionID?, object: ObjectID?, user: UserID?)] = []
    }
    private var scratch: Scratch?

    /// The world requests see: the fleet request's copy while one runs.
    private var world: World { scratch?.core.world ?? runtime.world }

    /// A consent request whose decision the fleet's database has stored (or
    /// refused: then nothing changes): carried out here as on a single host.
    private func finish(_ request: ControlRequest, _ client: ControlClient, afterStoring error: ControlError?)
        -> ControlResponse
    {
        if let error {
            return .failure(
                id: request.id,
                ControlError(
                    error.code, "the decision could not be stored, so it does not take effect: \(error.message)"))
        }
        do throws(ControlError) {
            return .success(id: request.id, try run(request.command, client))
        } catch {
            return .failure(id: request.id, error)
        }
    }

    private func fleet() throws(ControlError) -> FleetMember {
        guard let fleet = daemon.fleet else {
            throw ControlError(.notFound, "this host is not in a fleet ([fleet] database is not set)")
        }
        return fleet
    }

    private func run(_ command: ControlCommand, _ client: ControlClient) throws(ControlError) -> JSON {
        let world = self.world
        switch command {
        case .hello:
            return .object([
                "protocol": .int(ControlProtocol.version), "daemon": .string(BuildInfo.version),
                "operator": .bool(client.isOperator), "uid": client.credentials.map { .int(Int($0.uid)) } ?? .null,
            ])
        case .status:
            return status()
        case .metrics:
            return .object(["text": .string(String(decoding: daemon.scrapeMetrics(), as: UTF8.self))])
        case .reload:
            daemon.reload()
            if let error = daemon.lastReloadError { throw ControlError(.reloadFailed, error) }
            return .object(["configGeneration": .int(daemon.configGeneration)])

        case .sessionsList:
            return .object(["sessions": .array(world.sessions.values.sorted { $0.id < $1.id }.map(view.session))])
        case .sessionsShow(let id):
            return .object(["session": view.session(try session(id))])
        case .sessionsStart(let id, let name, let hostUser):
            let hostID = hostUser ?? Self.defaultHost
            if hostUser == nil && world.users[hostID] == nil {
                try apply(.addUser(User(id: hostID, name: "wshostd (this daemon)", kind: .headless)), client)
            }
            try apply(
                .startSession(Session(id: id, name: name ?? id.rawValue, host: hostID, present: [hostID])), client,
                session: id)
            return .object(["session": view.session(try session(id))])
        case .sessionsClose(let id):
            try apply(.closeSession(id), client, session: id)
            return .object(["closed": .string(id.rawValue)])

        case .usersList(let sessionID):
            var users = world.users.values.sorted { $0.id < $1.id }
            if let sessionID {
                let present = try session(sessionID).present
                users = users.filter { present.contains($0.id) }
            }
            return .object(["users": .array(users.map(view.user))])
        case .usersAdd(let id, let name, let kind):
            try apply(.addUser(User(id: id, name: name ?? id.rawValue, kind: kind)), client, user: id)
            guard let user = self.world.users[id] else { throw ControlError(.notFound, "no user \(id)") }
            return .object(["user": view.user(user)])
        case .usersToken(let id):
            guard world.users[id] != nil else { throw ControlError(.notFound, "no user \(id)") }
            do {
                let token = try tokens.token(for: id, create: true) ?? ""
                logger.notice(
                    "consent token shown", metadata: ["user.id": "\(id)", "control.peer": "\(client.peerDescription)"])
                return .object(["user": .string(id.rawValue), "token": .string(token)])
            } catch {
                throw ControlError(.unavailable, "cannot store the token: \(error)")
            }
        case .usersJoin(let s, let u): return try sessionChange(.join(s, u), client, s, u)
        case .usersLeave(let s, let u): return try sessionChange(.leave(s, u), client, s, u)
        case .usersKick(let s, let u):
            let result = try sessionChange(.leave(s, u), client, s, u)
            logger.notice(
                "user kicked",
                metadata: ["session.id": "\(s)", "user.id": "\(u)", "control.peer": "\(client.peerDescription)"])
            return result
        case .usersHost(let s, let u): return try sessionChange(.setHost(s, u), client, s, u)

        case .objectsList(let id):
            _ = try session(id)
            let objects = world.objects.keys.filter { $0.session == id }.sorted { $0.object < $1.object }
            return .object(["objects": .array(objects.compactMap(view.object))])
        case .objectsShow(let address):
            _ = try object(address)
            return .object(["object": view.object(address)!])
        case .objectsSpawn(let address, let name, let spawnedBy):
            try apply(
                .spawn(
                    address.session,
                    WorldObject(id: address.object, name: name ?? address.object.rawValue, spawnedBy: spawnedBy)),
                client, address)
            return .object(["object": view.object(address)!])
        case .objectsRemove(let address):
            try apply(.remove(address.session, address.object), client, address)
            return .object(["removed": .string(address.description)])
        case .objectsWear(let address, let user):
            return try objectChange(.wear(address.session, address.object, by: user), client, address)
        case .objectsGrab(let address, let user):
            return try objectChange(.grab(address.session, address.object, by: user), client, address)
        case .objectsDefineUser(let address, let user):
            return try objectChange(.defineUser(address.session, address.object, user), client, address)
        case .objectsReact(let address, let reaction):
            let current = try object(address)
            try apply(.setReactions(address.session, address.object, current.reactions + [reaction]), client, address)
            let reactions = self.world.objects[address]?.reactions ?? []
            return .object(["reactions": .array(reactions.map(ControlView.reaction))])
        case .objectsReactions(let address):
            return .object(["reactions": .array(try object(address).reactions.map(ControlView.reaction))])
        case .objectsUnreact(let address, let trigger):
            let current = try object(address)
            let kept = current.reactions.filter { trigger != nil && $0.on != trigger }
            try apply(.setReactions(address.session, address.object, kept), client, address)
            return .object([
                "reactions": .array(kept.map(ControlView.reaction)),
                "removed": .int(current.reactions.count - kept.count),
            ])

        case .wsShow(let address):
            return .object(["record": try record(address)])
        case .wsSet(let address, let patch):
            let current = try object(address)
            let base = current.record ?? runtime.recordDefaults
            try apply(.setRecord(address.session, address.object, patch.applied(to: base)), client, address)
            return .object(["record": try record(address)])
        case .wsConnect(let address, let url, let user):
            // One change: on an object without a record, the record starts from
            // the configured defaults; a refused connect makes none.
            _ = try object(address)
            try apply(.connect(address.session, address.object, url: url, user: user), client, address)
            return .object(["record": try record(address)])
        case .wsSend(let address, let payload):
            return try send(address, payload)
        case .wsDisconnect(let address):
            return try disconnect(address, by: client.peerDescription)

        case .subscribe:
            preconditionFailure("subscriptions are the event stream's (respond)")
        case .consentWatch(let user, _):
            guard world.users[user] != nil else { throw ControlError(.notFound, "no user \(user)") }
            client.subscription = EventFilter(promptsFor: user)
            server.subscriptionsChanged()
            logger.notice(
                "consent channel attached",
                metadata: ["user.id": "\(user)", "control.peer": "\(client.peerDescription)"])
            let shown = runtime.consent.pendingPrompts(for: user).prefix(1)
            return .object(["user": .string(user.rawValue), "pending": .array(shown.map(ControlView.prompt))])
        case .consentAnswer(let user, let prompt, let answer, _):
            do {
                try runtime.answer(promptID: prompt, user: user, answer, by: client.peerDescription)
            } catch let error as ConsentEngine.AnswerError {
                switch error {
                case .noSuchPrompt: throw ControlError(.notFound, error.description)
                case .notYourPrompt: throw ControlError(.forbidden, error.description)
                }
            } catch {
                throw ControlError(
                    .unavailable, "the decision could not be stored, so it does not take effect: \(error)")
            }
            return .object(["prompt": .int(prompt), "answer": .string(answer.rawValue)])
        case .consentList(let user, _):
            guard world.users[user] != nil else { throw ControlError(.notFound, "no user \(user)") }
            let decisions = (runtime.consent.decisions[user] ?? [:]).sorted { $0.key.hostPort < $1.key.hostPort }
            return .object([
                "user": .string(user.rawValue),
                "decisions": .array(decisions.map { ControlView.decision($0.key, $0.value) }),
                "pending": .array(runtime.consent.pendingPrompts(for: user).map(ControlView.prompt)),
            ])
        case .fleetShow, .fleetDrain, .fleetMove:
            // Answered later, by `fleetRequest`.
            throw ControlError(.unavailable, "the fleet's operations are answered asynchronously")
        case .consentForget(let user, let key, _):
            guard world.users[user] != nil else { throw ControlError(.notFound, "no user \(user)") }
            do {
                guard try runtime.forget(user: user, key: key) else {
                    throw ControlError(.notFound, "\(user) has no decision for \(key.hostPort)")
                }
            } catch let error as ControlError {
                throw error
            } catch {
                throw ControlError(.unavailable, "the change could not be stored: \(error)")
            }
            logger.notice(
                "consent decision forgotten",
                metadata: [
                    "user.id": "\(user)", "consent.host": "\(key.hostPort)",
                    "control.peer": "\(client.peerDescription)",
                ])
            return .object(["user": .string(user.rawValue), "forgotten": .string(key.hostPort)])
        }
    }

    private func status() -> JSON {
        let world = runtime.world
        var states: [String: JSON] = [:]
        for lifecycle in world.lifecycles.values {
            let name = ControlView.stateName(lifecycle.state)
            states[name] = .int((states[name]?.intValue ?? 0) + 1)
        }
        return .object([
            "daemon": .string(BuildInfo.version), "protocol": .int(ControlProtocol.version), "pid": .int(Int(getpid())),
            "state": .string(daemon.stateName), "status": .string(daemon.statusLine()),
            "configFile": .string(daemon.configPath), "configGeneration": .int(daemon.configGeneration),
            "lastReloadError": daemon.lastReloadError.map { .string($0) } ?? .null,
            "users": .int(world.users.count), "sessions": .int(world.sessions.count),
            "objects": .int(world.objects.count), "records": .int(world.lifecycles.count),
            "open": .int(runtime.openRecords.count), "recordStates": .object(states),
            "controlClients": .int(server.clientCount), "eventSeq": .int(events.journal.lastSeq),
            "epoch": .string(events.epoch),
        ])
    }

    // MARK: - Helpers

    private func session(_ id: SessionID) throws(ControlError) -> Session {
        guard let session = world.sessions[id] else { throw ControlError(.notFound, "no session \(id)") }
        return session
    }

    private func object(_ address: RecordAddress) throws(ControlError) -> WorldObject {
        _ = try session(address.session)
        guard let object = world.objects[address] else { throw ControlError(.notFound, "no object \(address)") }
        return object
    }

    private func record(_ address: RecordAddress) throws(ControlError) -> JSON {
        _ = try object(address)
        guard let record = view.record(address) else {
            throw ControlError(.notFound, "object \(address) has no WebSocket Client record (give it one with ws set)")
        }
        return record
    }

    private func sessionChange(_ change: WorldChange, _ client: ControlClient, _ id: SessionID, _ user: UserID)
        throws(ControlError) -> JSON
    {
        try apply(change, client, session: id, user: user)
        return .object(["session": view.session(try session(id))])
    }

    private func objectChange(_ change: WorldChange, _ client: ControlClient, _ address: RecordAddress)
        throws(ControlError) -> JSON
    {
        try apply(change, client, address)
        return .object(["object": view.object(address)!])
    }

    private func apply(_ change: WorldChange, _ client: ControlClient, _ address: RecordAddress) throws(ControlError) {
        try apply(change, client, session: address.session, object: address.object)
    }

    /// Applies a change for a client, logs it with who asked, and tells subscribers.
    private func apply(
        _ change: WorldChange, _ client: ControlClient, session: SessionID? = nil, object: ObjectID? = nil,
        user: UserID? = nil
    ) throws(ControlError) {
        if scratch != nil {
            // A fleet request: made on the copy; stored and applied when the request is done.
            do {
                _ = try scratch!.core.apply(change, by: client.peerDescription, now: clock.now())
            } catch {
                throw Self.translate(error)
            }
            scratch!.made.append((change, session, object, user))
            return
        }
        do {
            try runtime.apply(change, persist: daemon.persistChange, by: client.peerDescription)
        } catch {
            switch error {
            case .refused(let failure): throw Self.translate(failure)
            case .notStored(let reason):
                throw ControlError(.unavailable, "the change could not be stored, so it was not made: \(reason)")
            }
        }
        logChange(change, client, session: session, object: object, user: user)
    }

    private func logChange(
        _ change: WorldChange, _ client: ControlClient, session: SessionID?, object: ObjectID?, user: UserID?
    ) {
        let op = ControlEvents.name(of: change)
        var metadata: Logger.Metadata = ["control.peer": "\(client.peerDescription)", "control.change": "\(op)"]
        if let session { metadata["session.id"] = "\(session)" }
        if let object { metadata["object.id"] = "\(object)" }
        if let user { metadata["user.id"] = "\(user)" }
        logger.info("world changed", metadata: metadata)
    }

    static func translate(_ error: World.Failure) -> ControlError {
        switch error {
        case .unknownUser, .unknownSession, .unknownObject, .noRecord: return ControlError(.notFound, error.description)
        case .duplicateUser, .duplicateSession, .duplicateObject: return ControlError(.conflict, error.description)
        case .recordLimit: return ControlError(.limitReached, error.description)
        case .notPresent, .noForwardTarget: return ControlError(.notFound, error.description)
        }
    }

}

extension Daemon: DaemonControl {}
