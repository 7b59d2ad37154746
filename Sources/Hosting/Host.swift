import DequeModule
import EventLoop
import Logging
import MonotonicTime
import WebSocketClient
import WebSocketProtocol
import World

/// The world, live: executes what the pure `World` and `ConsentEngine` decide
/// with real sockets (one `WebSocketClient` per record attempt, Neos #3043),
/// timers on the loop's wheel, reactions, and an event stream.
@LoopActor
public final class Host {
    /// The ordered event stream (SPEC §5 nodes, consent, lifecycle).
    public enum Event: Equatable, Sendable {
        case connected(RecordAddress, user: UserID)
        case disconnected(RecordAddress, CloseReport)
        case attemptFailed(RecordAddress, reason: String)
        case receivedText(RecordAddress, String)
        case receivedBinary(RecordAddress, [UInt8])
        case sendStart(RecordAddress)
        case sent(RecordAddress)
        case sendError(RecordAddress, reason: String)
        case consentAsked(RecordAddress, user: UserID, key: AccessKey)
        case consentDecided(RecordAddress, allowed: Bool?, ConsentEngine.Outcome)
        /// A prompt for an interactive user's consent channel.
        case prompt(ConsentPrompt)
        case promptDismissed(ConsentPrompt)
        /// The record's status changed (SPEC §2 states).
        case stateChanged(RecordAddress, RecordLifecycle.State)
        /// The record's handling user changed (SPEC §3 failover, pinning); nil: nobody.
        case handlingUserChanged(RecordAddress, UserID?)
        /// A world change was applied (before the records act on it).
        case worldChanged(WorldChange)
    }

    /// Limits on messages received but not yet delivered (to reactions and the
    /// event stream), per record: a flood is shed or closed, never a crash
    /// (Resonite #19, #3365).
    public struct FloodLimits: Equatable, Sendable {
        public enum Policy: String, Equatable, Sendable, CaseIterable {
            /// Close the connection with 1008 (policy violation); the retry rule applies.
            case close
            /// Drop the oldest waiting messages.
            case dropOldest = "drop-oldest"
        }

        public var messages: Int
        public var bytes: Int
        public var policy: Policy

        public init(messages: Int = 10_000, bytes: Int = 64 << 20, policy: Policy = .close) {
            self.messages = messages
            self.bytes = bytes
            self.policy = policy
        }
    }

    /// Messages delivered per loop turn across all records, so one flooding
    /// record cannot starve the others or the loop's timers.
    public var deliveryBudget = 1_000

    /// Persists one consent decision; throws when it could not be stored (the
    /// answer then does not take effect). The durable store plugs in here.
    public typealias PersistDecision = @LoopActor (UserID, AccessKey, AccessDecision) throws -> Void
    /// Removes a persisted decision; throws when that could not be stored.
    public typealias ForgetDecision = @LoopActor (UserID, AccessKey) throws -> Void

    public private(set) var world = World()
    /// Records one session may hold (`World.recordsPerSession`; 0: no limit).
    public var recordsPerSession: Int {
        get { world.recordsPerSession }
        set { world.recordsPerSession = newValue }
    }

    /// Where records made at run time start (`World.recordDefaults`).
    public var recordDefaults: RecordSettings {
        get { world.recordDefaults }
        set { world.recordDefaults = newValue }
    }
    public private(set) var consent: ConsentEngine
    public var onEvent: (@LoopActor (Event) -> Void)?
    /// Whether message events (received, send-start, sent, send-error) are
    /// made; a daemon with nobody listening turns them off.
    public var reportsMessages = true

    private let timers: LoopTimers
    /// Options for new attempts (a reload changes them; open sockets keep theirs).
    public var options: WebSocketClient.Options
    private let persist: PersistDecision
    private let forgetPersisted: ForgetDecision
    private let logger = Logger(label: "wshostd.host")
    /// The live client of each record's current attempt.
    private var clients: [RecordAddress: Link] = [:]
    /// Clients told to close, kept alive until they report closed.
    private var closing: [ObjectIdentifier: Link] = [:]
    /// Per record: last error, timestamps, counters (SPEC §2).
    public var statuses: [RecordAddress: RecordStatus] { statusBoxes.mapValues(\.value) }
    private var statusBoxes: [RecordAddress: StatusBox] = [:]
    /// Counts world changes, so a link knows when its cached reactions are stale.
    private var worldVersion = 0
    private var retryTimers: [RecordAddress: TimerID] = [:]
    private var promptTimers: [Int: TimerID] = [:]
    /// Set by `stop`: no new attempts, prompts or retries from then on.
    private var stopping = false
    public var floodLimits = FloodLimits()
    /// Where records may connect, judged on each resolved address (nil: anywhere).
    public var networkPolicy: NetworkPolicy?

    /// Connections (connecting or open) one handling user, and one session,
    /// may have at once; 0 is no limit. An attempt over a limit fails, and
    /// the retry rule applies.
    public struct ConnectionLimits: Equatable, Sendable {
        public var perUser: Int
        public var perSession: Int

        public init(perUser: Int = 0, perSession: Int = 0) {
            self.perUser = perUser
            self.perSession = perSession
        }
    }
    public var connectionLimits = ConnectionLimits()
    private var liveByUser: [UserID: Int] = [:]
    private var liveBySession: [SessionID: Int] = [:]
    /// The pace of connection attempts, in all and per destination (0: no limit).
    public var pacer = AttemptPacer(perSecond: 0, perDestination: 0)
    /// Attempts waiting for their turn under the pace.
    private var pacingTimers: [RecordAddress: TimerID] = [:]

    private enum Inbound {
        case text(String)
        case binary([UInt8])

        var size: Int {
            switch self {
            case .text(let text): return text.utf8.count
            case .binary(let bytes): return bytes.count
            }
        }
    }

    /// Received, not yet delivered, per attempt.
    private struct InboundQueue {
        var messages = Deque<Inbound>()
        var bytes = 0
        var flooding = false
    }

    /// A record's status, shared by the record's links so the message path
    /// counts without a dictionary lookup.
    private final class StatusBox {
        var value = RecordStatus()
        var sendRate: SendRate
        /// Refusing sends now (logged once per run of refusals).
        var rateLimited = false
        /// The last attempt failure logged as a warning: the same again is
        /// logged at debug level until the record connects or the reason changes.
        var loggedFailure: String?

        init(sendsPerSecond: Int) {
            sendRate = SendRate(perSecond: sendsPerSecond)
        }
    }

    /// Sends per second per record (0: no limit); also ends echo loops with
    /// a server that echoes back (issue #12).
    public var sendsPerSecond = 1_000 {
        didSet { for box in statusBoxes.values { box.sendRate.perSecond = sendsPerSecond } }
    }

    /// One attempt's socket and everything the message path needs, found
    /// without hashing the record's address: the client's events carry it.
    private final class Link {
        let address: RecordAddress
        let attempt: Int
        let status: StatusBox
        var client: WebSocketClient!
        /// Still the record's current attempt (its messages are delivered).
        var current = true
        /// The handling user, counted in the per-user and per-session connection counts while current.
        var user: UserID?
        var queue = InboundQueue()
        /// In the round-robin of links with waiting messages.
        var waiting = false
        /// Closed for flooding: further messages are shed.
        var shedding = false
        /// The object's reactions as of `reactionsVersion` of the world.
        var reactions: [Reaction] = []
        var reactionsVersion = -1

        init(address: RecordAddress, attempt: Int, status: StatusBox) {
            self.address = address
            self.attempt = attempt
            self.status = status
        }
    }

    /// Links with waiting messages, in delivery order (round robin).
    private var waiting = Deque<Link>()
    /// Messages delivered in the current loop turn (reset at the turn's end).
    private var deliveredThisTurn = 0
    private var turnResetScheduled = false
    private var deliveryScheduled = false

    public init(
        consent: ConsentEngine, options: WebSocketClient.Options, timers: LoopTimers,
        persist: @escaping PersistDecision = { _, _, _ in }, forget: @escaping ForgetDecision = { _, _ in }
    ) {
        self.consent = consent
        self.options = options
        self.timers = timers
        world.jitterSeed = UInt64.random(in: 1...UInt64.max)
        self.persist = persist
        forgetPersisted = forget
    }

    /// New allow-list, prompt timeout and declared decisions (a reload); decisions
    /// users made and pending prompts stay.
    public func updateConsentRules(
        allowList: Set<AccessKey>, timeout: Duration, declared: [UserID: [AccessKey: AccessDecision]] = [:]
    ) {
        consent.allowList = allowList
        consent.timeout = timeout
        for (user, decisions) in declared {
            for (key, decision) in decisions { consent.declare(user: user, key: key, decision) }
        }
    }

    /// Stores the world after a change, before the change takes effect;
    /// throws when it could not be stored.
    public typealias PersistChange = @LoopActor (WorldChange, World) throws -> Void

    /// Why a change was not applied (either way, nothing changed).
    public enum ApplyFailure: Error, CustomStringConvertible {
        /// The world refused it (unknown ids, duplicates).
        case refused(World.Failure)
        /// It could not be stored.
        case notStored(any Error)

        public var description: String {
            switch self {
            case .refused(let failure): return failure.description
            case .notStored(let error): return "\(error)"
            }
        }
    }

    /// Applies a world change; a refused change changes nothing.
    public func apply(_ change: WorldChange) throws(World.Failure) {
        do {
            try apply(change, persist: nil)
        } catch {
            switch error {
            case .refused(let failure): throw failure
            case .notStored: preconditionFailure("nothing to store")
            }
        }
    }

    /// Applies a world change after `persist` stored its result: computed on
    /// a copy, stored, and only then in effect (sockets, events). A refused or
    /// unstored change changes nothing. Without `persist` the change is made in
    /// place (no copy of the world: restoring thousands of records stays linear).
    public func apply(_ change: WorldChange, persist: PersistChange?) throws(ApplyFailure) {
        let actions: [RecordAction]
        if let persist {
            var next = world
            do {
                actions = try next.apply(change, now: LoopTimers.now())
            } catch {
                throw .refused(error)
            }
            do {
                try persist(change, next)
            } catch {
                throw .notStored(error)
            }
            world = next
        } else {
            do {
                actions = try world.apply(change, now: LoopTimers.now())  // a refused change changes nothing
            } catch {
                throw .refused(error)
            }
        }
        worldVersion &+= 1
        emit(.worldChanged(change))
        execute(actions)
        // Statuses of records that are gone go with them.
        switch change {
        case .remove(let session, let object), .setRecord(let session, let object, nil):
            statusBoxes[RecordAddress(session: session, object: object)] = nil
        case .closeSession(let session):
            statusBoxes = statusBoxes.filter { $0.key.session != session }
        default:
            break
        }
    }

    /// A user answers a prompt (SPEC §4): persisted first, then in effect.
    /// `by` says who answered, for the log.
    public func answer(promptID: Int, user: UserID, _ answer: ConsentEngine.Answer, by: String = "") throws {
        let prepared = try consent.prepare(promptID: promptID, user: user, answer: answer).get()
        if let change = prepared.change { try persist(user, change.key, change.decision) }
        if let timer = promptTimers.removeValue(forKey: promptID) { timers.cancel(timer) }
        var metadata: Logger.Metadata = [
            "user.id": "\(user)", "consent.answer": "\(answer.rawValue)", "consent.prompt": "\(promptID)",
        ]
        if let change = prepared.change { metadata["consent.host"] = "\(change.key.hostPort)" }
        if !by.isEmpty { metadata["consent.by"] = "\(by)" }
        logger.notice("consent answered", metadata: metadata)
        execute(consent.commit(prepared, now: LoopTimers.now()))
    }

    /// A user forgets a decision (SPEC §4); false when there was none. The
    /// next attempt to that host asks again.
    public func forget(user: UserID, key: AccessKey) throws -> Bool {
        guard consent.decisions[user]?[key] != nil else { return false }
        try forgetPersisted(user, key)
        return consent.forget(user: user, key: key)
    }

    /// What the Text Message Sender reported.
    public enum SendOutcome: Equatable, Sendable {
        case sent
        case failed(reason: String)
    }

    /// The Text Message Sender node (and its binary extension): OnSendStart,
    /// then OnSent or OnSendError with the reason.
    @discardableResult
    public func send(_ address: RecordAddress, text: String? = nil, binary: [UInt8]? = nil) -> SendOutcome {
        guard let link = clients[address] else {
            if reportsMessages {
                emit(.sendStart(address))
                emit(.sendError(address, reason: "not connected"))
            }
            return .failed(reason: "not connected")
        }
        return send(link, text: text, binary: binary)
    }

    @discardableResult
    private func send(_ link: Link, text: String?, binary: [UInt8]?) -> SendOutcome {
        let address = link.address
        if reportsMessages { emit(.sendStart(address)) }
        guard let client = link.client, client.isOpen else {
            if reportsMessages { emit(.sendError(address, reason: "not connected")) }
            return .failed(reason: "not connected")
        }
        guard sendsPerSecond == 0 || link.status.sendRate.take(now: LoopTimers.now()) else {
            let reason = "more than \(sendsPerSecond) sends per second ([limits] sends_per_second)"
            link.status.value.sendsRefused += 1
            if !link.status.rateLimited {
                link.status.rateLimited = true
                link.status.value.lastError = "send: \(reason)"
                logger.warning(
                    "sends refused: \(reason)",
                    metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
            }
            if reportsMessages { emit(.sendError(address, reason: reason)) }
            return .failed(reason: reason)
        }
        link.status.rateLimited = false
        do {
            let size: Int
            if let text {
                try client.send(text: text)
                size = text.utf8.count
            } else {
                let binary = binary ?? []
                try client.send(binary: binary)
                size = binary.count
            }
            link.status.value.messagesOut += 1
            link.status.value.bytesOut += size
            logger.debug(
                "sent",
                metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)", "ws.bytes": "\(size)"])
            if reportsMessages { emit(.sent(address)) }
            return .sent
        } catch {
            link.status.value.lastError = "send: \(error.description)"
            if reportsMessages { emit(.sendError(address, reason: error.description)) }
            return .failed(reason: error.description)
        }
    }

    /// The explicit disconnect (Neos #1039): closes now (Close 1000) and the
    /// record stays down until it restarts (Connect, or a change of URL,
    /// Enabled or HandlingUser); no retry follows.
    public func disconnect(_ address: RecordAddress) throws(World.Failure) {
        execute(try world.disconnectRequested(address, now: LoopTimers.now()))
    }

    /// Records with an open socket right now.
    public var openRecords: [RecordAddress] { clients.filter { $0.value.client.isOpen }.map(\.key) }

    /// Sockets not yet closed (open, connecting, or finishing their Close handshake).
    public var liveSockets: Int {
        clients.values.filter { $0.client.phase != .finished }.count
            + closing.values.filter { $0.client.phase != .finished }.count
    }

    /// Starts the stop (SPEC §8): every socket gets a Close with `code` and
    /// nothing new starts. `liveSockets` reaches 0 as the servers answer.
    public func stop(code: CloseCode = .goingAway, reason: String = "going away") {
        stopping = true
        for timer in retryTimers.values { timers.cancel(timer) }
        retryTimers.removeAll()
        for timer in pacingTimers.values { timers.cancel(timer) }
        pacingTimers.removeAll()
        for (address, link) in clients.sorted(by: { $0.key.object < $1.key.object }) {
            let wasOpen = world.lifecycles[address]?.isConnected == true
            retire(link)
            closing[ObjectIdentifier(link)] = link
            link.client.close(code: code, reason: reason)
            // OnDisconnected for the stop: subscribers see every connection end.
            if wasOpen { emit(.disconnected(address, CloseReport(initiator: .client, code: code, reason: reason))) }
        }
        clients.removeAll()
    }

    /// Past the stop deadline: ends what is left without waiting.
    public func abortAll(reason: String) {
        for link in closing.values { link.client.abort(reason: reason) }
        closing.removeAll()
    }

    // MARK: - Executing the cores' decisions

    private func execute(_ actions: [RecordAction]) {
        for item in actions { execute(item.action, at: item.address) }
        reportChanges(for: Set(actions.map(\.address)))
    }

    /// Last reported state and handling user per record.
    private var reported: [RecordAddress: (state: RecordLifecycle.State, user: UserID?)] = [:]

    /// Emits `stateChanged` / `handlingUserChanged` for records whose lifecycle moved.
    private func reportChanges(for addresses: Set<RecordAddress>) {
        for address in addresses.sorted(by: { $0.object < $1.object }) {
            guard let lifecycle = world.lifecycles[address] else {
                reported[address] = nil
                continue
            }
            let user = lifecycle.target?.user
            let previous = reported[address]
            reported[address] = (lifecycle.state, user)
            if previous?.user != user { emit(.handlingUserChanged(address, user)) }
            if previous?.state != lifecycle.state { emit(.stateChanged(address, lifecycle.state)) }
        }
    }

    private func execute(_ action: RecordLifecycle.Action, at address: RecordAddress) {
        if stopping {
            switch action {
            case .askConsent, .openSocket, .scheduleRetry: return
            default: break
            }
        }
        switch action {
        case .askConsent(let attempt):
            let key = AccessKey(host: attempt.target.url.host, port: attempt.target.url.port)
            let reason = world.objects[address]?.record?.accessReason ?? ""
            let request = AccessRequest(
                requester: .init(session: address.session, object: address.object, attempt: attempt.number),
                user: attempt.target.user, key: key,
                reason: reason.isEmpty ? "\(address) connects to \(key.hostPort)" : reason)
            emit(.consentAsked(address, user: attempt.target.user, key: key))
            let kind = world.users[attempt.target.user]?.kind ?? .headless
            execute(consent.request(request, userKind: kind, now: LoopTimers.now()))
        case .withdrawConsent(let attempt):
            execute(
                consent.withdraw(
                    .init(session: address.session, object: address.object, attempt: attempt.number),
                    now: LoopTimers.now()))
        case .openSocket(let attempt):
            open(address, attempt)
        case .closeSocket(let attempt, let reason):
            guard let current = clients[address], current.attempt == attempt.number else { return }
            clients[address] = nil
            retire(current)
            closing[ObjectIdentifier(current)] = current
            current.client.close(code: .normalClosure, reason: reason)
        case .scheduleRetry(let instant):
            if let old = retryTimers[address] { timers.cancel(old) }
            // Slack a tenth of the wait, at most 250 ms: a 100 ms retry stays near 100 ms.
            let slack = min(.milliseconds(250), max(.milliseconds(1), (instant - LoopTimers.now()) / 10))
            retryTimers[address] = timers.schedule(at: instant, slack: slack) { [weak self] in
                guard let self else { return }
                retryTimers[address] = nil
                execute(world.retryDue(address, now: LoopTimers.now()))
            }
        case .cancelRetry:
            if let timer = retryTimers.removeValue(forKey: address) { timers.cancel(timer) }
        case .connected(let attempt):
            let box = status(address)
            box.value.connectedAt = LoopTimers.now()
            // The previous connection's error is history now.
            box.value.lastError = nil
            box.loggedFailure = nil
            logger.notice("connected", metadata: metadata(address, attempt))
            emit(.connected(address, user: attempt.target.user))
            react(address, on: .connected, text: nil, binary: nil)
        case .disconnected(let attempt, let report):
            var meta = metadata(address, attempt)
            meta["ws.close.initiator"] = "\(report.initiator)"
            meta["ws.close.code"] = "\(report.code)"
            logger.notice("disconnected: \(report.reason)", metadata: meta)
            status(address).value.disconnectedAt = LoopTimers.now()
            if report.code != .normalClosure && report.code != .goingAway {
                status(address).value.lastError = "closed \(report.code): \(report.reason)"
            }
            emit(.disconnected(address, report))
            react(address, on: .disconnected, text: nil, binary: nil)
        case .attemptFailed(let attempt, let reason):
            let box = status(address)
            box.value.lastError = reason
            if box.loggedFailure == reason {
                // While a server stays down, one warning per record, not one per retry.
                logger.debug("connection attempt failed again: \(reason)", metadata: metadata(address, attempt))
            } else {
                box.loggedFailure = reason
                logger.warning("connection attempt failed: \(reason)", metadata: metadata(address, attempt))
            }
            emit(.attemptFailed(address, reason: reason))
        }
    }

    private func execute(_ actions: [ConsentEngine.Action]) {
        for action in actions {
            switch action {
            case .decide(let requester, let allowed, let outcome):
                let address = RecordAddress(session: requester.session, object: requester.object)
                if allowed == false {
                    let meta: Logger.Metadata = ["session.id": "\(address.session)", "object.id": "\(address.object)"]
                    if case .headlessDenied(let hostPort) = outcome {
                        logger.warning(
                            "denied: the handling user is headless and cannot be asked; add \"\(hostPort)\" to security.allowed_url_hosts to allow it",
                            metadata: meta)
                    } else {
                        logger.notice("access denied: \(outcome)", metadata: meta)
                    }
                    status(address).value.lastError = "access denied: \(outcome)"
                }
                emit(.consentDecided(address, allowed: allowed, outcome))
                let answer: RecordLifecycle.ConsentAnswer = allowed.map { $0 ? .allowed : .denied } ?? .ignored
                execute(world.consentAnswered(address, attempt: requester.attempt, answer, now: LoopTimers.now()))
            case .prompt(let prompt):
                logger.notice(
                    "consent prompt for \(prompt.key.hostPort): \(prompt.request.reason)",
                    metadata: ["user.id": "\(prompt.user)", "consent.prompt": "\(prompt.id)"])
                emit(.prompt(prompt))
            case .dismiss(let prompt):
                if let timer = promptTimers.removeValue(forKey: prompt.id) { timers.cancel(timer) }
                emit(.promptDismissed(prompt))
            case .scheduleTimeout(let promptID, let instant):
                promptTimers[promptID] = timers.schedule(at: instant, slack: .milliseconds(250)) { [weak self] in
                    guard let self else { return }
                    promptTimers[promptID] = nil
                    execute(consent.timedOut(promptID: promptID, now: LoopTimers.now()))
                }
            }
        }
    }

    /// The status of the record at `address`, made on first use.
    private func status(_ address: RecordAddress) -> StatusBox {
        if let box = statusBoxes[address] { return box }
        let box = StatusBox(sendsPerSecond: sendsPerSecond)
        statusBoxes[address] = box
        return box
    }

    /// A link is no longer its record's current attempt.
    private func retire(_ link: Link) {
        guard link.current else { return }
        link.current = false
        guard let user = link.user else { return }
        link.user = nil
        liveByUser[user] = liveByUser[user, default: 1] > 1 ? liveByUser[user]! - 1 : nil
        let session = link.address.session
        liveBySession[session] = liveBySession[session, default: 1] > 1 ? liveBySession[session]! - 1 : nil
    }

    /// Why an attempt may not open a socket now (a connection limit), or nil.
    private func connectionLimitRefusal(user: UserID, session: SessionID) -> String? {
        let limits = connectionLimits
        // The session's host (the operator's account, by the SPEC §3 rule the
        // handling user of every object nobody else claims) is not limited per user.
        if limits.perUser > 0, user != world.sessions[session]?.host, liveByUser[user, default: 0] >= limits.perUser {
            return "limit: \(user) already handles \(limits.perUser) connections ([limits] connections_per_user)"
        }
        if limits.perSession > 0, liveBySession[session, default: 0] >= limits.perSession {
            return
                "limit: session \(session) already has \(limits.perSession) connections ([limits] connections_per_session)"
        }
        return nil
    }

    private func open(_ address: RecordAddress, _ attempt: Attempt) {
        if let timer = pacingTimers.removeValue(forKey: address) { timers.cancel(timer) }
        let now = LoopTimers.now()
        if let refusal = connectionLimitRefusal(user: attempt.target.user, session: address.session) {
            execute(
                world.socketClosed(
                    address, attempt: attempt.number,
                    report: CloseReport(initiator: .transport, code: .abnormalClosure, reason: refusal), now: now))
            return
        }
        let url = attempt.target.url
        let wait = pacer.admit(
            url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)", now: now)
        if wait > .zero {
            // Over the pace: this attempt waits its turn (a little jitter, so
            // that a wave of records does not come back as one).
            let jitter = Duration.microseconds(Int64.random(in: 0...max(1, wait.nanosecondsClamped / 1000)))
            pacingTimers[address] = timers.schedule(after: wait + jitter, slack: .milliseconds(5)) { [weak self] in
                guard let self else { return }
                pacingTimers[address] = nil
                guard !stopping, case .connecting(let current) = world.lifecycles[address]?.state,
                    current.number == attempt.number
                else { return }
                open(address, attempt)
            }
            return
        }
        let link = Link(address: address, attempt: attempt.number, status: status(address))
        link.user = attempt.target.user
        liveByUser[attempt.target.user, default: 0] += 1
        liveBySession[address.session, default: 0] += 1
        var options = options
        if let policy = networkPolicy {
            // A destination the operator named in allowed_url_hosts is trusted
            // with the blocks denied by default (not with denied_networks).
            let url = attempt.target.url
            let trusted = consent.allowList.contains(AccessKey(host: url.host, port: url.port))
            options.permitAddress = { bytes in IPAddress(bytes: bytes).flatMap { policy.refusal($0, trusted: trusted) }
            }
        }
        link.client = WebSocketClient(url: attempt.target.url, options: options, timers: timers) {
            [weak self, weak link] event in
            guard let link else { return }
            self?.clientEvent(link, event)
        }
        if let previous = clients[address] { retire(previous) }
        clients[address] = link
        link.client.start()
    }

    private func clientEvent(_ link: Link, _ event: WebSocketClient.Event) {
        let address = link.address
        switch event {
        case .opened:
            if link.current { execute(world.socketOpened(address, attempt: link.attempt, now: LoopTimers.now())) }
        case .text(let text):
            if link.current { receive(link, .text(text)) }
        case .binary(let bytes):
            if link.current { receive(link, .binary(bytes)) }
        case .closed(let report):
            if link.current {
                // Neos #2508: what arrived before the close is delivered before OnDisconnected.
                while deliverOne(link) {}
                link.shedding = false
                retire(link)
                clients[address] = nil
                execute(world.socketClosed(address, attempt: link.attempt, report: report, now: LoopTimers.now()))
            } else {
                closing = closing.filter { $0.value.client.phase != .finished }
            }
            if stopping { clients[address] = nil }
        }
    }

    /// Queues a received message for delivery, enforcing the flood limits.
    private func receive(_ link: Link, _ message: Inbound) {
        let status = link.status
        status.value.messagesIn += 1
        status.value.bytesIn += message.size
        if link.shedding {
            status.value.dropped += 1
            return
        }
        // Fast path: nothing waits for this record and the turn's budget allows:
        // deliver now, so reactions answer before the next frame is judged.
        if link.queue.messages.isEmpty && deliveredThisTurn < deliveryBudget {
            countDelivery()
            deliver(link, message)
            return
        }
        link.queue.messages.append(message)
        link.queue.bytes += message.size
        let withinBudget = options.inboundBudget?.charge(message.size) ?? true
        let limits = floodLimits
        if !withinBudget, let budget = options.inboundBudget {
            // The daemon-wide budget is spent: this record sheds what waits and closes.
            let address = link.address
            status.value.dropped += link.queue.messages.count
            budget.charge(-link.queue.bytes)
            link.queue = InboundQueue()
            link.shedding = true
            status.value.floods += 1
            let reason = "the \(budget.limit)-byte budget for inbound data of all records is spent"
            status.value.lastError = reason
            logger.warning(
                "\(reason); closing with 1008",
                metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
            link.client.close(code: .policyViolation, reason: "inbound budget")
            return
        }
        if link.queue.messages.count > limits.messages || link.queue.bytes > limits.bytes {
            let address = link.address
            switch limits.policy {
            case .close:
                status.value.dropped += link.queue.messages.count
                options.inboundBudget?.charge(-link.queue.bytes)
                link.queue = InboundQueue()
                link.shedding = true
                status.value.floods += 1
                let reason = "inbound flood: more than \(limits.messages) messages or \(limits.bytes) bytes waiting"
                status.value.lastError = reason
                logger.warning(
                    "\(reason); closing with 1008",
                    metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
                link.client.close(code: .policyViolation, reason: "inbound flood")
                return
            case .dropOldest:
                var dropped = 0
                while link.queue.messages.count > limits.messages || link.queue.bytes > limits.bytes,
                    let first = link.queue.messages.popFirst()
                {
                    link.queue.bytes -= first.size
                    options.inboundBudget?.charge(-first.size)
                    dropped += 1
                }
                status.value.dropped += dropped
                if !link.queue.flooding {
                    link.queue.flooding = true
                    status.value.floods += 1
                    logger.warning(
                        "inbound flood: dropping the oldest messages beyond \(limits.messages) messages or \(limits.bytes) bytes",
                        metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
                }
            }
        }
        if !link.waiting {
            link.waiting = true
            waiting.append(link)
        }
        scheduleDelivery()
    }

    private func scheduleDelivery() {
        guard !deliveryScheduled else { return }
        deliveryScheduled = true
        LoopExecutor.shared.queue.async { [weak self] in
            LoopActor.assumeIsolated { self?.deliverSome() }
        }
    }

    /// Counts a delivery against this loop turn's budget.
    private func countDelivery() {
        deliveredThisTurn += 1
        guard !turnResetScheduled else { return }
        turnResetScheduled = true
        LoopExecutor.shared.queue.async { [weak self] in
            LoopActor.assumeIsolated {
                self?.deliveredThisTurn = 0
                self?.turnResetScheduled = false
            }
        }
    }

    /// One loop turn of delivery: round robin across records, a few messages
    /// each in turn (their answers written together), within the budget.
    private func deliverSome() {
        deliveryScheduled = false
        while deliveredThisTurn < deliveryBudget, let link = waiting.popFirst() {
            link.waiting = false
            let deliver = { [self] in
                var count = 0
                while count < Self.deliveriesPerVisit, deliveredThisTurn < deliveryBudget, deliverOne(link) {
                    countDelivery()
                    count += 1
                }
            }
            if link.current, let client = link.client { client.batchingWrites(deliver) } else { deliver() }
            if !link.queue.messages.isEmpty && !link.waiting {
                link.waiting = true
                waiting.append(link)
            }
        }
        if !waiting.isEmpty { scheduleDelivery() }
    }

    /// Messages delivered to one record before the round robin moves on.
    static let deliveriesPerVisit = 64

    /// Delivers the oldest waiting message of `link`; false when none waits.
    private func deliverOne(_ link: Link) -> Bool {
        guard let message = link.queue.messages.popFirst() else { return false }
        link.queue.bytes -= message.size
        options.inboundBudget?.charge(-message.size)
        if link.queue.messages.isEmpty { link.queue.flooding = false }
        // A message of an attempt that has been torn down is not delivered.
        if link.current { deliver(link, message) }
        return true
    }

    private func deliver(_ link: Link, _ message: Inbound) {
        let address = link.address
        switch message {
        case .text(let text):
            logger.debug(
                "received text",
                metadata: [
                    "session.id": "\(address.session)", "object.id": "\(address.object)",
                    "ws.data": "\(text.prefix(200))",
                ])
            if reportsMessages { emit(.receivedText(address, text)) }
            react(link, text: text, binary: nil)
        case .binary(let bytes):
            if reportsMessages { emit(.receivedBinary(address, bytes)) }
            react(link, text: nil, binary: bytes)
        }
    }

    /// The `received` reactions, from the link's cache of the object's reactions.
    private func react(_ link: Link, text: String?, binary: [UInt8]?) {
        if link.reactionsVersion != worldVersion {
            link.reactions = world.objects[link.address]?.reactions ?? []
            link.reactionsVersion = worldVersion
        }
        for reaction in link.reactions where reaction.on == .received {
            switch reaction.effect {
            case .echo:
                send(link, text: text, binary: binary)
            case .send(let template):
                send(link, text: Reaction.render(template, data: text ?? ""), binary: nil)
            case .forward(let target):
                send(RecordAddress(session: link.address.session, object: target), text: text, binary: binary)
            }
        }
    }

    /// SPEC §5 reactions of the object at `address` for `trigger`.
    private func react(_ address: RecordAddress, on trigger: Reaction.Trigger, text: String?, binary: [UInt8]?) {
        for reaction in world.objects[address]?.reactions ?? [] where reaction.on == trigger {
            switch reaction.effect {
            case .echo:
                if text != nil || binary != nil { send(address, text: text, binary: binary) }
            case .send(let template):
                send(address, text: Reaction.render(template, data: text ?? ""))
            case .forward(let target):
                if text != nil || binary != nil {
                    send(RecordAddress(session: address.session, object: target), text: text, binary: binary)
                }
            }
        }
    }

    private func emit(_ event: Event) { onEvent?(event) }

    private func metadata(_ address: RecordAddress, _ attempt: Attempt) -> Logger.Metadata {
        [
            "session.id": "\(address.session)", "object.id": "\(address.object)", "user.id": "\(attempt.target.user)",
            "ws.url": "\(attempt.target.url)",
        ]
    }
}
