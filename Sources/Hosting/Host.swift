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
    public private(set) var consent: ConsentEngine
    public var onEvent: (@LoopActor (Event) -> Void)?

    private let timers: LoopTimers
    /// Options for new attempts (a reload changes them; open sockets keep theirs).
    public var options: WebSocketClient.Options
    private let persist: PersistDecision
    private let forgetPersisted: ForgetDecision
    private let logger = Logger(label: "wshostd.host")
    /// The live client of each record's current attempt.
    private var clients: [RecordAddress: (attempt: Int, client: WebSocketClient)] = [:]
    /// Clients told to close, kept alive until they report closed.
    private var closing: [ObjectIdentifier: WebSocketClient] = [:]
    /// Per record: last error, timestamps, counters (SPEC §2).
    public private(set) var statuses: [RecordAddress: RecordStatus] = [:]
    private var retryTimers: [RecordAddress: TimerID] = [:]
    private var promptTimers: [Int: TimerID] = [:]
    /// Set by `stop`: no new attempts, prompts or retries from then on.
    private var stopping = false
    public var floodLimits = FloodLimits()

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

    /// Received, not yet delivered, per record.
    private struct InboundQueue {
        var attempt: Int
        var messages = Deque<Inbound>()
        var bytes = 0
        var flooding = false
    }

    private var inbound: [RecordAddress: InboundQueue] = [:]
    /// Messages delivered in the current loop turn (reset at the turn's end).
    private var deliveredThisTurn = 0
    private var turnResetScheduled = false
    /// Attempts being closed for flooding: their further messages are shed.
    private var shedding: [RecordAddress: Int] = [:]
    private var deliveryScheduled = false

    public init(
        consent: ConsentEngine, options: WebSocketClient.Options, timers: LoopTimers,
        persist: @escaping PersistDecision = { _, _, _ in }, forget: @escaping ForgetDecision = { _, _ in }
    ) {
        self.consent = consent
        self.options = options
        self.timers = timers
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
        emit(.worldChanged(change))
        execute(actions)
        // Statuses of records that are gone go with them.
        switch change {
        case .remove(let session, let object), .setRecord(let session, let object, nil):
            statuses[RecordAddress(session: session, object: object)] = nil
        case .closeSession(let session):
            statuses = statuses.filter { $0.key.session != session }
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
        emit(.sendStart(address))
        guard let client = clients[address]?.client, client.isOpen else {
            emit(.sendError(address, reason: "not connected"))
            return .failed(reason: "not connected")
        }
        do {
            if let text { try client.send(text: text) } else { try client.send(binary: binary ?? []) }
            statuses[address, default: RecordStatus()].messagesOut += 1
            statuses[address, default: RecordStatus()].bytesOut += text?.utf8.count ?? binary?.count ?? 0
            logger.debug(
                "sent",
                metadata: [
                    "session.id": "\(address.session)", "object.id": "\(address.object)",
                    "ws.bytes": "\(text?.utf8.count ?? binary?.count ?? 0)",
                ])
            emit(.sent(address))
            return .sent
        } catch {
            statuses[address, default: RecordStatus()].lastError = "send: \(error.description)"
            emit(.sendError(address, reason: error.description))
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
            + closing.values.filter { $0.phase != .finished }.count
    }

    /// Starts the stop (SPEC §8): every socket gets a Close with `code` and
    /// nothing new starts. `liveSockets` reaches 0 as the servers answer.
    public func stop(code: CloseCode = .goingAway, reason: String = "going away") {
        stopping = true
        for timer in retryTimers.values { timers.cancel(timer) }
        retryTimers.removeAll()
        for (_, entry) in clients.sorted(by: { $0.key.object < $1.key.object }) {
            closing[ObjectIdentifier(entry.client)] = entry.client
            entry.client.close(code: code, reason: reason)
        }
        clients.removeAll()
    }

    /// Past the stop deadline: ends what is left without waiting.
    public func abortAll(reason: String) {
        for client in closing.values { client.abort(reason: reason) }
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
            closing[ObjectIdentifier(current.client)] = current.client
            current.client.close(code: .normalClosure, reason: reason)
        case .scheduleRetry(let instant):
            if let old = retryTimers[address] { timers.cancel(old) }
            retryTimers[address] = timers.schedule(at: instant, slack: .milliseconds(250)) { [weak self] in
                guard let self else { return }
                retryTimers[address] = nil
                execute(world.retryDue(address, now: LoopTimers.now()))
            }
        case .cancelRetry:
            if let timer = retryTimers.removeValue(forKey: address) { timers.cancel(timer) }
        case .connected(let attempt):
            statuses[address, default: RecordStatus()].connectedAt = LoopTimers.now()
            logger.notice("connected", metadata: metadata(address, attempt))
            emit(.connected(address, user: attempt.target.user))
            react(address, on: .connected, text: nil, binary: nil)
        case .disconnected(let attempt, let report):
            var meta = metadata(address, attempt)
            meta["ws.close.initiator"] = "\(report.initiator)"
            meta["ws.close.code"] = "\(report.code)"
            logger.notice("disconnected: \(report.reason)", metadata: meta)
            statuses[address, default: RecordStatus()].disconnectedAt = LoopTimers.now()
            if report.code != .normalClosure && report.code != .goingAway {
                statuses[address, default: RecordStatus()].lastError = "closed \(report.code): \(report.reason)"
            }
            emit(.disconnected(address, report))
            react(address, on: .disconnected, text: nil, binary: nil)
        case .attemptFailed(let attempt, let reason):
            statuses[address, default: RecordStatus()].lastError = reason
            logger.warning("connection attempt failed: \(reason)", metadata: metadata(address, attempt))
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
                    statuses[address, default: RecordStatus()].lastError = "access denied: \(outcome)"
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

    private func open(_ address: RecordAddress, _ attempt: Attempt) {
        let number = attempt.number
        let client = WebSocketClient(url: attempt.target.url, options: options, timers: timers) { [weak self] event in
            self?.clientEvent(address, attempt: number, event)
        }
        clients[address] = (number, client)
        client.start()
    }

    private func clientEvent(_ address: RecordAddress, attempt: Int, _ event: WebSocketClient.Event) {
        let current = clients[address]?.attempt == attempt
        switch event {
        case .opened:
            if current { execute(world.socketOpened(address, attempt: attempt)) }
        case .text(let text):
            if current { receive(address, attempt: attempt, .text(text)) }
        case .binary(let bytes):
            if current { receive(address, attempt: attempt, .binary(bytes)) }
        case .closed(let report):
            if current {
                // Neos #2508: what arrived before the close is delivered before OnDisconnected.
                deliverAll(address)
                shedding[address] = nil
                clients[address] = nil
                execute(world.socketClosed(address, attempt: attempt, report: report, now: LoopTimers.now()))
            } else {
                closing = closing.filter { $0.value.phase != .finished }
            }
            if stopping { clients[address] = nil }
        }
    }

    /// Queues a received message for delivery, enforcing the flood limits.
    private func receive(_ address: RecordAddress, attempt: Int, _ message: Inbound) {
        statuses[address, default: RecordStatus()].messagesIn += 1
        statuses[address, default: RecordStatus()].bytesIn += message.size
        if shedding[address] == attempt {
            statuses[address, default: RecordStatus()].dropped += 1
            return
        }
        var queue = inbound[address].flatMap { $0.attempt == attempt ? $0 : nil } ?? InboundQueue(attempt: attempt)
        // Fast path: nothing waits for this record and the turn's budget allows:
        // deliver now, so reactions answer before the next frame is judged.
        if queue.messages.isEmpty && deliveredThisTurn < deliveryBudget {
            countDelivery()
            inbound[address] = nil
            deliver(address, message)
            return
        }
        queue.messages.append(message)
        queue.bytes += message.size
        let limits = floodLimits
        if queue.messages.count > limits.messages || queue.bytes > limits.bytes {
            switch limits.policy {
            case .close:
                inbound[address] = nil
                shedding[address] = attempt
                statuses[address, default: RecordStatus()].dropped += queue.messages.count
                statuses[address, default: RecordStatus()].floods += 1
                let reason = "inbound flood: more than \(limits.messages) messages or \(limits.bytes) bytes waiting"
                statuses[address, default: RecordStatus()].lastError = reason
                logger.warning(
                    "\(reason); closing with 1008",
                    metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
                clients[address]?.client.close(code: .policyViolation, reason: "inbound flood")
                return
            case .dropOldest:
                var dropped = 0
                while queue.messages.count > limits.messages || queue.bytes > limits.bytes,
                    let first = queue.messages.popFirst()
                {
                    queue.bytes -= first.size
                    dropped += 1
                }
                statuses[address, default: RecordStatus()].dropped += dropped
                if !queue.flooding {
                    queue.flooding = true
                    statuses[address, default: RecordStatus()].floods += 1
                    logger.warning(
                        "inbound flood: dropping the oldest messages beyond \(limits.messages) messages or \(limits.bytes) bytes",
                        metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
                }
            }
        }
        inbound[address] = queue
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

    /// One loop turn of delivery: round robin across records, within the budget.
    private func deliverSome() {
        deliveryScheduled = false
        while deliveredThisTurn < deliveryBudget, !inbound.isEmpty {
            for address in Array(inbound.keys) where deliveredThisTurn < deliveryBudget {
                if deliverOne(address) { countDelivery() }
            }
        }
        if !inbound.isEmpty { scheduleDelivery() }
    }

    private func deliverAll(_ address: RecordAddress) {
        while deliverOne(address) {}
    }

    /// Delivers the oldest waiting message of `address`; false when none waits.
    private func deliverOne(_ address: RecordAddress) -> Bool {
        guard var queue = inbound[address], let message = queue.messages.popFirst() else {
            inbound[address] = nil
            return false
        }
        queue.bytes -= message.size
        if queue.messages.isEmpty { queue.flooding = false }
        inbound[address] = queue.messages.isEmpty ? nil : queue
        // A message of an attempt that has been torn down is not delivered.
        guard clients[address]?.attempt == queue.attempt else { return true }
        deliver(address, message)
        return true
    }

    private func deliver(_ address: RecordAddress, _ message: Inbound) {
        switch message {
        case .text(let text):
            logger.debug(
                "received text",
                metadata: [
                    "session.id": "\(address.session)", "object.id": "\(address.object)",
                    "ws.data": "\(text.prefix(200))",
                ])
            emit(.receivedText(address, text))
            react(address, on: .received, text: text, binary: nil)
        case .binary(let bytes):
            emit(.receivedBinary(address, bytes))
            react(address, on: .received, text: nil, binary: bytes)
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
