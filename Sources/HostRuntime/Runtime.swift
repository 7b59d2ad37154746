import DequeModule
import EventLoop
import HostingCore
import Logging
import MonotonicTime
import WebSocketClient
import WebSocketProtocol
import World

/// The hosting core, live: carries out the `Hosting` core's effects with
/// real sockets (one `WebSocketClient` per record attempt, Neos #3043) and
/// timers on the loop's wheel, feeds back what the sockets and timers report,
/// and runs the message path (receive → flood rule → delivery turn →
/// reactions and the event stream). It holds no world rule: every decision
/// about records is the core's.
@LoopActor
public final class Runtime {
    public typealias Event = Hosting.Event

    /// Persists one consent decision; throws when it could not be stored (the
    /// answer then does not take effect). The durable store plugs in here.
    public typealias PersistDecision = @LoopActor (UserID, AccessKey, AccessDecision) throws -> Void
    /// Removes a persisted decision; throws when that could not be stored.
    public typealias ForgetDecision = @LoopActor (UserID, AccessKey) throws -> Void
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

    /// What the Text Message Sender reported.
    public enum SendOutcome: Equatable, Sendable {
        case sent
        case failed(reason: String)
    }

    /// The decisions: world, consent, statuses, the stop.
    public private(set) var core: Hosting
    public var world: World { core.world }
    public var consent: ConsentEngine { core.consent }
    /// What the core decided since start, counted.
    public var tally: Hosting.Tally { core.tally }
    public var onEvent: (@LoopActor (consuming Event) -> Void)?
    /// Whether message events (received, send-start, sent, send-error) are
    /// made; a daemon with nobody listening turns them off.
    public var reportsMessages = true
    /// Options for new attempts (a reload changes them; open sockets keep theirs).
    public var options: WebSocketClient.Options
    public var floodLimits: Hosting.FloodLimits
    /// Where records may connect, judged on each resolved address (nil: anywhere).
    public var networkPolicy: NetworkPolicy?
    /// Sends per second per record (0: no limit); also ends echo loops with
    /// a server that echoes back (issue #12).
    public var sendsPerSecond: Int {
        didSet { for box in counters.values { box.sendRate.perSecond = sendsPerSecond } }
    }
    /// Messages delivered per loop turn across all records.
    public var deliveryBudget: Int {
        get { turn.budget }
        set { turn.budget = newValue }
    }
    public var connectionLimits: Hosting.ConnectionLimits {
        get { core.connectionLimits }
        set { core.connectionLimits = newValue }
    }
    public var pacer: AttemptPacer {
        get { core.pacer }
        set { core.pacer = newValue }
    }
    public var recordsPerSession: Int {
        get { core.recordsPerSession }
        set { core.recordsPerSession = newValue }
    }
    public var recordDefaults: RecordSettings {
        get { core.recordDefaults }
        set { core.recordDefaults = newValue }
    }

    private let timers: LoopTimers
    private let persist: PersistDecision
    private let forgetPersisted: ForgetDecision
    private let logger = Logger(label: "wshostd.host")
    /// The loop timer of each armed key, with the arming it belongs to (a
    /// handler already taken out of the wheel cannot fire for a newer arming).
    private var timerIDs: [Hosting.TimerKey: (id: TimerID, arming: Int)] = [:]
    private var armings = 0
    /// Carrying out a list of effects: inputs that arrive meanwhile (a socket
    /// that fails inside `start`) wait until the list is done, so events go
    /// out in the order the core decided them.
    private var running = false
    private var deferredInputs: [Hosting.Input] = []
    /// The live client of each record's current attempt.
    private var clients: [RecordAddress: Link] = [:]
    /// Clients told to close, kept alive until they report closed.
    private var closing: [ObjectIdentifier: Link] = [:]
    /// Per record: the message path's counters and send rate.
    private var counters: [RecordAddress: Counters] = [:]
    /// Daemon-wide counts since start (the metrics read them when scraped).
    public private(set) var totals = Totals()
    /// Counts world changes, so a link knows when its cached reactions are stale.
    private var worldVersion = 0
    /// Links with waiting messages, in delivery order (round robin).
    private var waiting = Deque<Link>()
    private var turn: DeliveryTurn
    private var deliveryScheduled = false

    /// A record's message counters and send rate, shared by the record's
    /// links so the message path counts without a dictionary lookup.
    private final class Counters {
        var value = RecordStatus()
        var sendRate: SendRate
        /// Refusing sends now (logged once per run of refusals).
        var rateLimited = false

        init(sendsPerSecond: Int) {
            sendRate = SendRate(perSecond: sendsPerSecond)
        }
    }

    /// One attempt's socket and everything the message path needs, found
    /// without hashing the record's address: the client's events carry it.
    private final class Link {
        enum State {
            /// The record's current attempt: its messages are delivered.
            case current
            /// Current, but closed for flooding: further messages are shed.
            case shedding
            /// No longer the current attempt (closing, or replaced).
            case retired
        }

        let address: RecordAddress
        let attempt: Int
        let counters: Counters
        var client: WebSocketClient!
        var state = State.current
        /// Its socket opened (counted in `openCount` until it closes).
        var opened = false
        var queue = InboundQueue()
        /// In the round robin of links with waiting messages.
        var waiting = false
        /// The object's reactions as of `reactionsVersion` of the world.
        var reactions: [Reaction] = []
        var reactionsVersion = -1

        init(address: RecordAddress, attempt: Int, counters: Counters) {
            self.address = address
            self.attempt = attempt
            self.counters = counters
        }

        var isCurrent: Bool { state != .retired }
    }

    public init(
        core: Hosting, options: WebSocketClient.Options, limits: Limits, timers: LoopTimers,
        persist: @escaping PersistDecision = { _, _, _ in }, forget: @escaping ForgetDecision = { _, _ in }
    ) {
        self.core = core
        self.options = options
        floodLimits = limits.flood
        sendsPerSecond = limits.sendsPerSecond
        turn = DeliveryTurn(budget: limits.deliveryBudget)
        self.timers = timers
        self.persist = persist
        forgetPersisted = forget
    }

    /// What every record together did since start: plain integers on the loop,
    /// so that counting costs the message path nothing measurable.
    public struct Totals: Equatable, Sendable {
        /// Sockets opened for connection attempts.
        public var attempts = 0
        /// Attempts whose WebSocket opened.
        public var opened = 0
        /// Attempts that ended before opening, by why.
        public var failures: [WebSocketClient.AttemptFailure: Int] = [:]
        public var messagesIn = 0
        public var bytesIn = 0
        public var messagesOut = 0
        public var bytesOut = 0
        /// Received messages shed by the flood limits or the inbound budget.
        public var dropped = 0
        /// Inbound floods (a record's queue overflowed, or the budget was spent).
        public var floods = 0
        /// Sends refused by `[limits] sends_per_second`.
        public var sendsRefused = 0

        public init() {}
    }

    /// The message path's limits (the config's `[limits]` and `[websocket]`).
    public struct Limits: Sendable {
        public var flood: Hosting.FloodLimits
        public var sendsPerSecond: Int
        /// Messages delivered per loop turn across all records.
        public var deliveryBudget: Int

        public init(flood: Hosting.FloodLimits, sendsPerSecond: Int, deliveryBudget: Int = 1_000) {
            self.flood = flood
            self.sendsPerSecond = sendsPerSecond
            self.deliveryBudget = deliveryBudget
        }
    }

    /// New allow-list, prompt timeout and declared decisions (a reload).
    public func updateConsentRules(
        allowList: Set<AccessKey>, timeout: Duration, declared: [UserID: [AccessKey: AccessDecision]] = [:]
    ) {
        core.updateConsentRules(allowList: allowList, timeout: timeout, declared: declared)
    }

    // MARK: - Requests

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
    /// `by`: who asked, carried into the `worldChanged` event.
    public func apply(_ change: WorldChange, persist: PersistChange?, by: String? = nil) throws(ApplyFailure) {
        let effects: [Hosting.Effect]
        let now = timers.now()
        syncLogLevel()
        if let persist {
            var next = core
            do {
                effects = try next.apply(change, by: by, now: now)
            } catch {
                throw .refused(error)
            }
            do {
                try persist(change, next.world)
            } catch {
                throw .notStored(error)
            }
            core = next
        } else {
            do {
                effects = try core.apply(change, by: by, now: now)
            } catch {
                throw .refused(error)
            }
        }
        worldVersion &+= 1
        run(effects)
    }

    /// A user answers a prompt (SPEC §4): persisted first, then in effect.
    /// `by` says who answered, for the journal.
    public func answer(promptID: Int, user: UserID, _ answer: ConsentEngine.Answer, by: String = "") throws {
        let prepared = try core.consent.prepare(promptID: promptID, user: user, answer: answer).get()
        if let change = prepared.change { try persist(user, change.key, change.decision) }
        syncLogLevel()
        run(core.answered(prepared, by: by, now: timers.now()))
    }

    /// A user forgets a decision (SPEC §4); false when there was none. The
    /// next attempt to that host asks again.
    public func forget(user: UserID, key: AccessKey) throws -> Bool {
        guard core.consent.decisions[user]?[key] != nil else { return false }
        try forgetPersisted(user, key)
        return core.forget(user: user, key: key)
    }

    /// A decision made on another host of the fleet (nil: forgotten there),
    /// stored there: in effect here from the next attempt.
    public func declare(user: UserID, key: AccessKey, _ decision: AccessDecision?) {
        core.declare(user: user, key: key, decision)
    }

    /// A fleet member now holds `sessions` (nil: all): decided by the core.
    public func hold(_ sessions: Set<SessionID>?) {
        syncLogLevel()
        run(core.hold(sessions, now: timers.now()))
    }

    /// The explicit disconnect (Neos #1039), decided by the core.
    public func disconnect(_ address: RecordAddress) throws(World.Failure) {
        syncLogLevel()
        run(try core.disconnect(address, now: timers.now()))
    }

    /// Starts the stop (SPEC §8): every socket gets a Close with `code` and
    /// nothing new starts. `liveSockets` reaches 0 as the servers answer.
    public func stop(code: CloseCode = .goingAway, reason: String = "going away") {
        syncLogLevel()
        run(core.stop(code: code, reason: reason))
    }

    /// Past the stop deadline: ends what is left without waiting.
    public func abortAll(reason: String) {
        for link in closing.values { link.client.abort(reason: reason) }
        closing.removeAll()
    }

    /// Per record: last error, timestamps, counters (SPEC §2).
    public var statuses: [RecordAddress: RecordStatus] {
        var statuses = core.statuses
        for (address, box) in counters {
            let counted = box.value
            var status = statuses[address] ?? RecordStatus()
            status.messagesIn = counted.messagesIn
            status.messagesOut = counted.messagesOut
            status.bytesIn = counted.bytesIn
            status.bytesOut = counted.bytesOut
            status.floods = counted.floods
            status.dropped = counted.dropped
            status.sendsRefused = counted.sendsRefused
            status.compression = counted.compression
            statuses[address] = status
        }
        return statuses
    }

    /// Gives every open (or opening) connection the timing of `options`
    /// (a reload): idle timeout, keepalive interval, close timeout. The other
    /// options reach connections opened from now on. Returns how many
    /// connections took it.
    @discardableResult
    public func retimeConnections() -> Int {
        for link in clients.values {
            link.client.retime(
                idleTimeout: options.idleTimeout, keepaliveInterval: options.keepaliveInterval,
                closeTimeout: options.closeTimeout)
        }
        return clients.count
    }

    /// Records with an open socket right now.
    public var openRecords: [RecordAddress] { clients.filter { $0.value.client.isOpen }.map(\.key) }

    /// Connections opened and not yet closed, counted as they come and go
    /// (the STATUS= line reads it every 100 ms while thousands connect).
    public private(set) var openCount = 0

    /// Sockets not yet closed (open, connecting, or finishing their Close handshake).
    public var liveSockets: Int {
        clients.values.filter { $0.client.phase != .finished }.count
            + closing.values.filter { $0.client.phase != .finished }.count
    }

    // MARK: - Carrying out the core's effects

    private func run(_ effects: consuming [Hosting.Effect]) {
        let outermost = !running
        running = true
        perform(consume effects)
        guard outermost else { return }
        while !deferredInputs.isEmpty {
            let input = deferredInputs.removeFirst()
            var effects = takeSpareEffects()
            core.handle(input, now: timers.now(), into: &effects)
            perform(consume effects)
        }
        running = false
    }

    /// What sockets and timers report goes to the core (after the effects being carried out).
    private func feed(_ input: Hosting.Input) {
        if running { return deferredInputs.append(input) }
        syncLogLevel()
        var effects = takeSpareEffects()
        core.handle(input, now: timers.now(), into: &effects)
        run(consume effects)  // (`perform` changes it: a second reference would make it copy)
    }

    /// An empty array for the core's effects, with the storage of the last
    /// one carried out (see `perform`).
    private func takeSpareEffects() -> [Hosting.Effect] {
        var effects: [Hosting.Effect] = []
        swap(&effects, &spareEffects)
        if effects.capacity == 0 { effects.reserveCapacity(8) }  // a connect's inputs make 4 to 8 effects each
        return effects
    }

    /// Before every call into the core that may log: the core builds the lines
    /// the logger prints, at the level it has now (a reload changes it).
    private func syncLogLevel() {
        core.logLevel = Self.coreLevel(logger.logLevel)
    }

    /// The core's least log level for the logger's: the lines the logger would drop
    /// are not built.
    private static func coreLevel(_ level: Logger.Level) -> Hosting.LogLine.Level {
        switch level {
        case .trace, .debug: .debug
        case .info, .notice: .notice
        case .warning, .error, .critical: .warning
        }
    }

    private func perform(_ effects: consuming [Hosting.Effect]) {
        for index in effects.indices {
            // Moved out, so that the events go on without further copies.
            switch effects.take(at: index, leaving: .movedOut) {
            case .open(let address, let attempt, let url, let trusted):
                open(address, attempt: attempt, url: url, trusted: trusted)
            case .close(let address, let attempt, let code, let reason):
                guard let link = clients[address], link.attempt == attempt else { continue }
                clients[address] = nil
                link.state = .retired
                closing[ObjectIdentifier(link)] = link
                link.client.close(code: code, reason: reason)
            case .send(let address, let payload):
                send(address, payload)
            case .arm(let key, let instant, let slack):
                if let old = timerIDs[key] { timers.cancel(old.id) }
                armings &+= 1
                let arming = armings
                let id = timers.schedule(at: instant, slack: slack) { [weak self] in
                    guard let self, timerIDs[key]?.arming == arming else { return }
                    timerIDs[key] = nil
                    feed(.timerFired(key))
                }
                timerIDs[key] = (id, arming)
            case .cancel(let key):
                if let timer = timerIDs.removeValue(forKey: key) { timers.cancel(timer.id) }
            case .emit(let event):
                onEvent?(event)
            case .log(let line):
                let level: Logger.Level =
                    switch line.level {
                    case .debug: .debug
                    case .notice: .notice
                    case .warning: .warning
                    }
                logger.log(level: level, "\(line.message)", metadata: line.fields.mapValues { .string($0) })
            case .forget(let address):
                counters[address] = nil
            }
        }
        // The storage serves the next input (up to a size: not the thousands
        // of effects of a reload or a stop).
        effects.removeAll(keepingCapacity: true)
        if effects.capacity <= Self.spareEffectsCapacity && spareEffects.capacity == 0 { spareEffects = effects }
    }
    private var spareEffects: [Hosting.Effect] = []
    private static let spareEffectsCapacity = 64

    /// A record's counters, made on first use.
    private func counters(_ address: RecordAddress) -> Counters {
        if let box = counters[address] { return box }
        let box = Counters(sendsPerSecond: sendsPerSecond)
        counters[address] = box
        return box
    }

    private func open(_ address: RecordAddress, attempt: Int, url: WebSocketURL, trusted: Bool) {
        let link = Link(address: address, attempt: attempt, counters: counters(address))
        var options = options
        // The record's own compression, if it has one, over the daemon's.
        if let compression = core.world.objects[address]?.record?.compression {
            options.offerCompression(compression.offer)
        }
        if let policy = networkPolicy {
            options.permitAddress = { bytes in IPAddress(bytes: bytes).flatMap { policy.refusal($0, trusted: trusted) }
            }
        }
        link.client = WebSocketClient(url: url, options: options, timers: timers) { [weak self, weak link] event in
            guard let link else { return }
            self?.clientEvent(link, event)
        }
        clients[address]?.state = .retired
        clients[address] = link
        totals.attempts += 1
        link.client.start()
    }

    private func clientEvent(_ link: Link, _ event: WebSocketClient.Event) {
        let address = link.address
        switch event {
        case .opened:
            totals.opened += 1
            link.opened = true
            openCount += 1
            if let agreed = link.client.negotiatedCompression {
                link.counters.value.compression = agreed.description
            } else {
                link.counters.value.compression =
                    link.client.options.connection.deflate == nil ? nil : "declined by the server"
            }
            if link.isCurrent { feed(.socketOpened(address, attempt: link.attempt)) }
        case .text(let text):
            if link.isCurrent { receive(link, .text(text)) }
        case .binary(let bytes):
            if link.isCurrent { receive(link, .binary(bytes)) }
        case .closed(let report):
            if link.opened {
                link.opened = false
                openCount -= 1
            }
            if let failure = link.client.attemptFailure { totals.failures[failure, default: 0] += 1 }
            if link.isCurrent {
                // Neos #2508: what arrived before the close is delivered before OnDisconnected.
                while deliverOne(link) {}
                link.state = .retired
                if clients[address] === link { clients[address] = nil }
                feed(.socketClosed(address, attempt: link.attempt, report))
            } else {
                closing[ObjectIdentifier(link)] = nil
            }
        }
    }

    // MARK: - Sending

    /// The Text Message Sender node (and its binary extension): OnSendStart,
    /// then OnSent or OnSendError with the reason.
    @discardableResult
    public func send(_ address: RecordAddress, _ payload: Payload) -> SendOutcome {
        guard let link = clients[address] else {
            if reportsMessages {
                onEvent?(.sendStart(address))
                onEvent?(.sendError(address, reason: "not connected"))
            }
            return .failed(reason: "not connected")
        }
        return send(link, payload)
    }

    @discardableResult
    private func send(_ link: Link, _ payload: Payload) -> SendOutcome {
        let address = link.address
        if reportsMessages { onEvent?(.sendStart(address)) }
        guard let client = link.client, client.isOpen else {
            if reportsMessages { onEvent?(.sendError(address, reason: "not connected")) }
            return .failed(reason: "not connected")
        }
        let box = link.counters
        guard sendsPerSecond == 0 || box.sendRate.take(now: timers.now()) else {
            let reason = "more than \(sendsPerSecond) sends per second ([limits] sends_per_second)"
            box.value.sendsRefused += 1
            totals.sendsRefused += 1
            if !box.rateLimited {
                box.rateLimited = true
                problem(address, "send: \(reason)")
                logger.warning(
                    "sends refused: \(reason)",
                    metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)"])
            }
            if reportsMessages { onEvent?(.sendError(address, reason: reason)) }
            return .failed(reason: reason)
        }
        box.rateLimited = false
        do {
            switch payload {
            case .text(let text): try client.send(text: text)
            case .binary(let bytes): try client.send(binary: bytes)
            }
            let size = payload.size
            box.value.messagesOut += 1
            box.value.bytesOut += size
            totals.messagesOut += 1
            totals.bytesOut += size
            logger.debug(
                "sent",
                metadata: ["session.id": "\(address.session)", "object.id": "\(address.object)", "ws.bytes": "\(size)"])
            if reportsMessages { onEvent?(.sent(address)) }
            return .sent
        } catch {
            problem(address, "send: \(error.description)")
            if reportsMessages { onEvent?(.sendError(address, reason: error.description)) }
            return .failed(reason: error.description)
        }
    }

    private func problem(_ address: RecordAddress, _ reason: String) {
        feed(.problem(address, reason))
    }

    // MARK: - Receiving

    /// Queues a received message for delivery, enforcing the flood limits
    /// and the daemon-wide inbound budget.
    private func receive(_ link: Link, _ message: Payload) {
        let box = link.counters
        let size = message.size
        box.value.messagesIn += 1
        box.value.bytesIn += size
        totals.messagesIn += 1
        totals.bytesIn += size
        if link.state == .shedding {
            box.value.dropped += 1
            totals.dropped += 1
            return
        }
        // Fast path: nothing waits for this record and the turn's budget allows:
        // deliver now, so reactions answer before the next frame is judged.
        turn.enter(LoopTurn.number)
        if link.queue.isEmpty && turn.take() {
            deliver(link, message)
            return
        }
        if let budget = options.inboundBudget, !budget.charge(size) {
            // The daemon-wide budget is spent: this record sheds what waits and closes.
            let shed = link.queue.shed()
            box.value.dropped += shed.count + 1
            totals.dropped += shed.count + 1
            budget.charge(-(shed.bytes + size))
            shedAndClose(link, reason: InboundQueue.budgetSpent(limit: budget.limit), closeReason: "inbound budget")
            return
        }
        switch link.queue.push(Self.fitted(message), limits: floodLimits) {
        case .queued:
            break
        case .droppedOldest(let count, let bytes, let newFlood):
            box.value.dropped += count
            totals.dropped += count
            options.inboundBudget?.charge(-bytes)
            if newFlood {
                box.value.floods += 1
                totals.floods += 1
                let limits = floodLimits
                logger.warning(
                    "inbound flood: dropping the oldest messages beyond \(limits.messages) messages or \(limits.bytes) bytes",
                    metadata: ["session.id": "\(link.address.session)", "object.id": "\(link.address.object)"])
            }
        case .overflow(let reason):
            let shed = link.queue.shed()
            box.value.dropped += shed.count
            totals.dropped += shed.count
            options.inboundBudget?.charge(-shed.bytes)
            shedAndClose(link, reason: reason, closeReason: "inbound flood")
            return
        }
        if !link.waiting {
            link.waiting = true
            waiting.append(link)
        }
        // Put off to a later turn: this one serves no further ready descriptors.
        LoopTurn.markFull()
        scheduleDelivery()
    }

    /// A message to queue, in a buffer of its own size: a pooled buffer can be
    /// far larger than the message assembled in it, and the flood limits and
    /// the inbound budget count the message's bytes, not its buffer's. The
    /// pooled buffer goes back for the next message.
    private static func fitted(_ message: Payload) -> Payload {
        guard case .binary(let bytes) = message, bytes.capacity - bytes.count > max(bytes.count / 8, 4096) else {
            return message
        }
        var fitted: [UInt8] = []
        fitted.reserveCapacity(bytes.count)
        fitted.append(contentsOf: bytes)
        WebSocketClient.messageBuffers.give(bytes)
        return .binary(fitted)
    }

    private func shedAndClose(_ link: Link, reason: String, closeReason: String) {
        link.state = .shedding
        link.counters.value.floods += 1
        totals.floods += 1
        problem(link.address, reason)
        logger.warning(
            "\(reason); closing with 1008",
            metadata: ["session.id": "\(link.address.session)", "object.id": "\(link.address.object)"])
        link.client.close(code: .policyViolation, reason: closeReason)
    }

    private func scheduleDelivery() {
        guard !deliveryScheduled else { return }
        deliveryScheduled = true
        LoopExecutor.shared.queue.async { [weak self] in
            LoopActor.assumeIsolated { self?.deliverSome() }
        }
    }

    /// One loop turn of delivery: round robin across records, a few messages
    /// each in turn (their answers written together), within the budget.
    private func deliverSome() {
        deliveryScheduled = false
        LoopTurn.begin()  // a Dispatch block of its own: a turn of its own
        turn.enter(LoopTurn.number)
        while turn.hasRoom, let link = waiting.popFirst() {
            link.waiting = false
            // (A closure literal for the non-escaping argument: its context stays on the stack.)
            if link.isCurrent, let client = link.client {
                client.batchingWrites { visit(link) }
            } else {
                visit(link)
            }
            if !link.queue.isEmpty && !link.waiting {
                link.waiting = true
                waiting.append(link)
            }
        }
        if !waiting.isEmpty { scheduleDelivery() }
    }

    /// Delivers up to `DeliveryTurn.perVisit` waiting messages of `link`, within the turn's budget.
    private func visit(_ link: Link) {
        var count = 0
        while count < DeliveryTurn.perVisit, turn.hasRoom, deliverOne(link) {
            _ = turn.take()
            count += 1
        }
    }

    /// Delivers the oldest waiting message of `link`; false when none waits.
    private func deliverOne(_ link: Link) -> Bool {
        guard let message = link.queue.popFirst() else { return false }
        options.inboundBudget?.charge(-message.size)
        // A message of an attempt that has been torn down is not delivered.
        if link.isCurrent { deliver(link, message) }
        return true
    }

    private func deliver(_ link: Link, _ message: Payload) {
        let address = link.address
        switch message {
        case .text(let text):
            logger.debug(
                "received text",
                metadata: [
                    "session.id": "\(address.session)", "object.id": "\(address.object)",
                    "ws.data": "\(text.prefix(200))",
                ])
            if reportsMessages { onEvent?(.receivedText(address, text)) }
        case .binary(let bytes):
            if reportsMessages { onEvent?(.receivedBinary(address, bytes)) }
        }
        // SPEC §5 `received` reactions, from the link's cache of the object's reactions.
        if link.reactionsVersion != worldVersion {
            link.reactions = world.objects[address]?.reactions ?? []
            link.reactionsVersion = worldVersion
        }
        for reaction in link.reactions where reaction.on == .received {
            guard let (object, payload) = reaction.response(to: message, at: address.object) else { continue }
            if object == address.object {
                send(link, payload)
            } else {
                send(RecordAddress(session: address.session, object: object), payload)
            }
        }
        // Answered: the buffer serves the next message received on the loop.
        if case .binary(let bytes) = message { WebSocketClient.messageBuffers.give(bytes) }
    }
}

extension Hosting.Effect {
    /// What `perform` leaves in the array in place of an effect it moved
    /// out: no references in it, so destroying it costs nothing.
    fileprivate static let movedOut = Hosting.Effect.cancel(.prompt(-1))
}
