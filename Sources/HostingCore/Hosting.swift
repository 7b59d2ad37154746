import DequeModule
import MonotonicTime
import WebSocketProtocol
import World

/// The hosting core: the world, the consent engine, the records' statuses and
/// the stop, as one value with one way in. Every decision the daemon makes
/// about records lives here (which attempt asks whom, what a verdict means,
/// which socket opens or closes, when a retry or a prompt times out, what a
/// reaction sends on connect and disconnect, who may open more connections,
/// the pace of attempts); the runtime only carries out the `Effect`s it
/// returns with sockets and timers, and feeds back what happened as `Input`s.
/// Pure: no sockets, clocks or logging (the time is passed in, log lines are
/// effects).
public struct Hosting: Sendable {
    // MARK: - Vocabulary

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
        case consentDecided(RecordAddress, ConsentVerdict, ConsentEngine.Outcome)
        /// A prompt for an interactive user's consent channel. (Boxed, with
        /// the world changes: rare and large, they had made every event and
        /// effect 328 bytes, copied whole a few dozen times per connect.)
        indirect case prompt(ConsentPrompt)
        indirect case promptDismissed(ConsentPrompt)
        /// The record's status changed (SPEC §2 states).
        case stateChanged(RecordAddress, RecordLifecycle.State)
        /// The record's handling user changed (SPEC §3 failover, pinning); nil: nobody.
        case handlingUserChanged(RecordAddress, UserID?)
        /// A world change was applied (before the records act on it); `by`:
        /// who asked for it (a control client), when known.
        indirect case worldChanged(WorldChange, by: String?)
    }

    /// The runtime's timers, one per key at most.
    public enum TimerKey: Hashable, Sendable {
        /// The record's next attempt (`connect_retry_interval`).
        case retry(RecordAddress)
        /// The next turn of a destination's ("host:port") attempts waiting
        /// under the attempt pace.
        case pacing(String)
        /// A consent prompt's optional timeout.
        case prompt(Int)

        /// The table hash (see `HashMix`): a retry, the common key, mixes
        /// its address's identifiers without a SipHash round per lookup.
        public func _rawHashValue(seed: Int) -> Int {
            switch self {
            case .retry(let address): return address._rawHashValue(seed: seed)
            case .pacing(let destination): return HashMix.mix(HashMix.combine(1, destination.hashValue), seed: seed)
            case .prompt(let number): return HashMix.mix(HashMix.combine(2, number), seed: seed)
            }
        }
    }

    /// A journal line the runtime writes (fields by their journal names).
    public struct LogLine: Equatable, Sendable {
        public enum Level: Comparable, Sendable { case debug, notice, warning }
        public var level: Level
        public var message: String
        public var fields: [String: String]

        public init(_ level: Level, _ message: String, _ fields: [String: String]) {
            self.level = level
            self.message = message
            self.fields = fields
        }
    }

    /// What the runtime carries out, in order.
    public enum Effect: Equatable, Sendable {
        /// Open a socket for the record's attempt. `trusted`: the destination
        /// is on the allow-list (the network policy's default-denied blocks do
        /// not apply to it).
        case open(RecordAddress, attempt: Int, url: WebSocketURL, trusted: Bool)
        /// Close the attempt's socket (it reports closed later, or never matters again).
        case close(RecordAddress, attempt: Int, CloseCode, reason: String)
        /// Send through the record's open socket (a reaction on connect or disconnect).
        case send(RecordAddress, Payload)
        case arm(TimerKey, at: MonotonicInstant, slack: Duration)
        case cancel(TimerKey)
        case emit(Event)
        case log(LogLine)
        /// The record is gone: the runtime drops what it kept for it (its counters).
        case forget(RecordAddress)
    }

    /// What happened outside: sockets and timers, reported by the runtime.
    public enum Input: Equatable, Sendable {
        case socketOpened(RecordAddress, attempt: Int)
        /// The current attempt's socket closed (whatever it received before was delivered).
        case socketClosed(RecordAddress, attempt: Int, CloseReport)
        case timerFired(TimerKey)
        /// A message-path problem (a refused send, a flood): the record's last error.
        case problem(RecordAddress, String)
    }

    /// Limits on messages received but not yet delivered (to reactions and the
    /// event stream), per record: a flood is shed or closed, never a crash
    /// (Resonite #19, #3365).
    /// Counts of the core's decisions since start.
    public struct Tally: Equatable, Sendable {
        /// A limit that refused something, by its config key.
        public enum Limit: String, CaseIterable, Sendable {
            case recordsPerSession = "records_per_session"
            case connectionsPerUser = "connections_per_user"
            case connectionsPerSession = "connections_per_session"
        }

        /// Where a consent verdict came from.
        public enum Source: String, CaseIterable, Sendable {
            case allowList = "allow_list"
            case earlierDecision = "earlier_decision"
            case user
            case timeout
            case headless
            case tooManyPending = "too_many_pending"
            case emptyHost = "empty_host"

            init(_ outcome: ConsentEngine.Outcome) {
                switch outcome {
                case .allowedByAllowList: self = .allowList
                case .decidedBefore: self = .earlierDecision
                case .emptyHost: self = .emptyHost
                case .headlessDenied: self = .headless
                case .tooManyPending: self = .tooManyPending
                case .answered: self = .user
                case .timedOut: self = .timeout
                }
            }
        }

        public struct Decision: Hashable, Sendable {
            public var verdict: ConsentVerdict
            public var source: Source

            public init(verdict: ConsentVerdict, source: Source) {
                self.verdict = verdict
                self.source = source
            }
        }

        public var limitHits: [Limit: Int] = [:]
        /// Attempts that waited their turn under the connection-attempt pace.
        public var pacedAttempts = 0
        /// Consent prompts shown to users.
        public var prompts = 0
        public var decisions: [Decision: Int] = [:]

        public init() {}
    }

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

        public init(messages: Int, bytes: Int, policy: Policy) {
            self.messages = messages
            self.bytes = bytes
            self.policy = policy
        }
    }

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

    // MARK: - State

    public private(set) var world = World()
    public private(set) var consent: ConsentEngine
    /// Set by `stop`: no new attempts, prompts or retries from then on.
    public private(set) var stopping = false
    public var connectionLimits = ConnectionLimits()
    /// The pace of connection attempts, in all and per destination (0: no limit).
    public var pacer = AttemptPacer(perSecond: 0, perDestination: 0)
    /// The least level of the log lines the core emits (the shell sets it from
    /// the daemon's log level; lines below it would only be dropped there).
    public var logLevel: LogLine.Level = .debug

    /// Per record: last error and timestamps (the message counters are the
    /// runtime's, kept beside its sockets).
    public private(set) var statuses: [RecordAddress: RecordStatus] = [:]
    /// What the core decided since start, counted (the metrics read it).
    public private(set) var tally = Tally()
    /// The last attempt failure logged as a warning per record: the same
    /// again is logged at debug level until the record connects or the reason changes.
    private var loggedFailures: [RecordAddress: String] = [:]
    /// The current attempt of each record that has a socket (connecting or open).
    public private(set) var sockets: [RecordAddress: Socket] = [:]
    private var liveByUser: [UserID: Int] = [:]
    private var liveBySession: [SessionID: Int] = [:]
    /// Attempts waiting for their turn under the pace, and per destination
    /// their order (first come, first served). One timer per destination
    /// wakes its queue's head when the pace has room again: waiting costs
    /// nothing per record, however many wait. An entry whose attempt has
    /// ended meanwhile is skipped when it comes up.
    private var pacing: [RecordAddress: Attempt] = [:]
    private var paceQueues: [String: Deque<(address: RecordAddress, attempt: Int)>] = [:]
    /// Timers armed (and not yet fired or cancelled).
    private var armed: Set<TimerKey> = []
    /// Last reported state and handling user per record.
    private var reported: [RecordAddress: Reported] = [:]
    /// A struct, not a tuple: copying or destroying an optional tuple went
    /// through the runtime's generic tuple witnesses, a third of
    /// `reportChange`'s instructions (callgrind, docs/performance.md).
    private struct Reported {
        var state: RecordLifecycle.State
        var user: UserID?

        /// Takes the new state and user; tells which of them changed.
        static func update(_ report: inout Reported, to state: RecordLifecycle.State, _ user: UserID?) -> (
            user: Bool, state: Bool
        ) {
            let userChanged = report.user != user
            let stateChanged = report.state != state
            if userChanged { report.user = user }
            if stateChanged { report.state = state }
            return (userChanged, stateChanged)
        }
    }

    public struct Socket: Equatable, Sendable {
        public var attempt: Int
        public var user: UserID
    }

    /// `seed` makes the retry jitter (a daemon passes a random one).
    public init(consent: ConsentEngine, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        self.consent = consent
        world.jitterSeed = seed
    }

    // MARK: - Configuration

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

    /// New allow-list, prompt timeout and declared decisions (a reload); decisions
    /// users made and pending prompts stay.
    public mutating func updateConsentRules(
        allowList: Set<AccessKey>, timeout: Duration, declared: [UserID: [AccessKey: AccessDecision]] = [:]
    ) {
        consent.allowList = allowList
        consent.timeout = timeout
        for (user, decisions) in declared {
            for (key, decision) in decisions { consent.declare(user: user, key: key, decision) }
        }
    }

    // MARK: - Requests

    /// Applies a world change (asked for `by` someone, for the event stream);
    /// a refused change changes nothing.
    public mutating func apply(_ change: WorldChange, by: String? = nil, now: MonotonicInstant) throws(World.Failure)
        -> [Effect]
    {
        let gone: [RecordAddress]
        switch change {
        case .remove(let session, let object), .setRecord(let session, let object, nil):
            gone = [RecordAddress(session: session, object: object)]
        case .closeSession(let session):
            gone = world.objects.keys.filter { $0.session == session }.sorted { $0.object < $1.object }
        default:
            gone = []
        }
        let actions: World.Actions
        do {
            actions = try world.apply(change, now: now)
        } catch {
            if case .recordLimit = error { tally.limitHits[.recordsPerSession, default: 0] += 1 }
            throw error
        }
        var effects: [Effect] = [.emit(.worldChanged(change, by: by))]
        execute(actions, now: now, into: &effects)
        // Statuses of records that are gone go with them.
        for address in gone where world.objects[address]?.record == nil {
            statuses[address] = nil
            loggedFailures[address] = nil
            effects.append(.forget(address))
        }
        return effects
    }

    /// A fleet member now holds `sessions` (nil: all, no fleet): the records
    /// of sessions taken start, those of sessions given up close (1001).
    public mutating func hold(_ sessions: Set<SessionID>?, now: MonotonicInstant) -> [Effect] {
        var effects: [Effect] = []
        execute(world.hold(sessions, now: now), now: now, into: &effects)
        return effects
    }

    /// The explicit disconnect (Neos #1039): closes now (Close 1000) and the
    /// record stays down until it restarts (Connect, or a change of URL,
    /// Enabled or HandlingUser); no retry follows.
    public mutating func disconnect(_ address: RecordAddress, now: MonotonicInstant) throws(World.Failure) -> [Effect] {
        let actions = try world.disconnectRequested(address, now: now)
        var effects: [Effect] = []
        execute(actions, now: now, into: &effects)
        return effects
    }

    /// A user's answer, prepared by `consent.prepare` and (allow, deny) stored:
    /// now it takes effect. `by` says who answered, for the journal.
    public mutating func answered(_ prepared: ConsentEngine.PreparedAnswer, by: String, now: MonotonicInstant)
        -> [Effect]
    {
        var effects: [Effect] = []
        disarm(.prompt(prepared.promptID), into: &effects)
        var fields = [
            "user.id": "\(prepared.user)", "consent.answer": prepared.answer.rawValue,
            "consent.prompt": "\(prepared.promptID)",
        ]
        if let change = prepared.change { fields["consent.host"] = change.key.hostPort }
        if !by.isEmpty { fields["consent.by"] = by }
        log(.notice, "consent answered", fields, into: &effects)
        execute(consent.commit(prepared, now: now), now: now, into: &effects)
        return effects
    }

    /// A decision made elsewhere (another host of the fleet): in effect from
    /// the next attempt; nil forgets it.
    public mutating func declare(user: UserID, key: AccessKey, _ decision: AccessDecision?) {
        if let decision {
            consent.declare(user: user, key: key, decision)
        } else {
            consent.forget(user: user, key: key)
        }
    }

    /// A user forgets a decision (SPEC §4), already removed from the store;
    /// false when there was none. The next attempt to that host asks again.
    public mutating func forget(user: UserID, key: AccessKey) -> Bool {
        consent.forget(user: user, key: key)
    }

    /// Starts the stop (SPEC §8): every socket gets a Close with `code`, open
    /// records report their disconnect, and nothing new starts.
    public mutating func stop(code: CloseCode, reason: String) -> [Effect] {
        stopping = true
        var effects: [Effect] = []
        for key in armed.sorted(by: Self.timerOrder) {
            switch key {
            case .retry, .pacing:
                armed.remove(key)
                effects.append(.cancel(key))
            case .prompt:
                break
            }
        }
        pacing.removeAll()
        paceQueues.removeAll()
        for (address, socket) in sockets.sorted(by: { $0.key.object < $1.key.object }) {
            let wasOpen = world.lifecycles[address]?.isConnected == true
            retire(address)
            effects.append(.close(address, attempt: socket.attempt, code, reason: reason))
            // OnDisconnected for the stop: subscribers see every connection end.
            if wasOpen {
                effects.append(
                    .emit(.disconnected(address, CloseReport(initiator: .client, code: code, reason: reason))))
            }
        }
        return effects
    }

    // MARK: - Inputs

    public mutating func handle(_ input: Input, now: MonotonicInstant) -> [Effect] {
        var effects: [Effect] = []
        effects.reserveCapacity(8)  // a connect's inputs make 4 to 8 effects each
        handle(input, now: now, into: &effects)
        return effects
    }

    /// `handle`, appending to `effects` (a runtime reuses one array's storage
    /// from input to input: a new array was an allocation per input).
    public mutating func handle(_ input: Input, now: MonotonicInstant, into effects: inout [Effect]) {
        switch input {
        case .socketOpened(let address, let attempt):
            execute(world.socketOpened(address, attempt: attempt, now: now), now: now, into: &effects)
        case .socketClosed(let address, let attempt, let report):
            if sockets[address]?.attempt == attempt { retire(address) }
            execute(world.socketClosed(address, attempt: attempt, report: report, now: now), now: now, into: &effects)
        case .timerFired(let key):
            guard armed.remove(key) != nil else { break }  // cancelled meanwhile
            switch key {
            case .retry(let address):
                execute(world.retryDue(address, now: now), now: now, into: &effects)
            case .pacing(let destination):
                guard !stopping else { break }
                nextTurns(destination, now: now, into: &effects)
            case .prompt(let id):
                execute(consent.timedOut(promptID: id, now: now), now: now, into: &effects)
            }
        case .problem(let address, let reason):
            if world.objects[address]?.record != nil { statuses[address, default: RecordStatus()].lastError = reason }
        }
    }

    // MARK: - Carrying out the world's and the consent engine's actions

    private mutating func execute(
        _ actions: consuming [RecordAction], now: MonotonicInstant, into effects: inout [Effect]
    ) {
        for index in actions.indices {
            // Each action moved out (see `Array.take`), its address read in place.
            var action = RecordLifecycle.Action.cancelRetry
            swap(&action, &actions[index].action)
            execute(action, at: actions[index].address, now: now, into: &effects)
        }
        guard let first = actions.first?.address else { return }
        if actions.allSatisfy({ $0.address == first }) {
            // One record's actions (a socket event, a timer): no set to build and sort.
            reportChange(for: first, into: &effects)
        } else {
            for address in Set(actions.map(\.address)).sorted(by: { $0.object < $1.object }) {
                reportChange(for: address, into: &effects)
            }
        }
    }

    /// Emits `stateChanged` / `handlingUserChanged` when the record's lifecycle moved.
    private mutating func reportChange(for address: RecordAddress, into effects: inout [Effect]) {
        guard let (state, user) = world.report(of: address) else {
            reported[address] = nil
            return
        }
        // (No optional of the previous report: each such temporary was
        // destroyed through the runtime's generic Optional witness.)
        let userChanged: Bool
        let stateChanged: Bool
        if let index = reported.index(forKey: address) {  // one lookup for the read and the write
            // In place (each read of `values[index]` copied the whole report).
            (userChanged, stateChanged) = Reported.update(&reported.values[index], to: state, user)
        } else {
            userChanged = user != nil
            stateChanged = true
            reported[address] = Reported(state: state, user: user)
        }
        if userChanged { effects.append(.emit(.handlingUserChanged(address, user))) }
        if stateChanged { effects.append(.emit(.stateChanged(address, state))) }
    }

    private mutating func execute(
        _ action: consuming RecordLifecycle.Action, at address: RecordAddress, now: MonotonicInstant,
        into effects: inout [Effect]
    ) {
        if stopping {
            switch action {
            case .askConsent, .openSocket, .scheduleRetry: return
            default: break
            }
        }
        switch consume action {
        case .askConsent(let attempt):
            let request = accessRequest(address, attempt)
            effects.append(.emit(.consentAsked(address, user: attempt.target.user, key: request.key)))
            let kind = world.users[attempt.target.user]?.kind ?? .headless
            execute(consent.request(request, userKind: kind, now: now), now: now, into: &effects)
        case .withdrawConsent(let attempt):
            let requester = AccessRequest.Requester(
                session: address.session, object: address.object, attempt: attempt.number)
            execute(consent.withdraw(requester, now: now), now: now, into: &effects)
        case .openSocket(let attempt):
            open(address, attempt, now: now, into: &effects)
        case .closeSocket(let attempt, let reason):
            if pacing[address]?.number == attempt.number { pacing[address] = nil }
            guard sockets[address]?.attempt == attempt.number else { return }
            retire(address)
            // A session this host gave up: the server sees the host go away.
            let code: CloseCode = world.holds(address.session) ? .normalClosure : .goingAway
            effects.append(.close(address, attempt: attempt.number, code, reason: reason))
        case .scheduleRetry(let instant):
            // Slack a tenth of the wait, at most 250 ms: a 100 ms retry stays near 100 ms.
            // (In nanoseconds: a Duration divided is a 128-bit division.)
            let slack = Duration.fromNanoseconds(
                min(250_000_000, max(1_000_000, (instant - now).nanosecondsClamped / 10)))
            arm(.retry(address), at: instant, slack: slack, into: &effects)
        case .cancelRetry:
            disarm(.retry(address), into: &effects)
        case .connected(let attempt):
            statuses[address, default: RecordStatus()].connectedAt = now
            // The previous connection's error is history now.
            statuses[address]?.lastError = nil
            loggedFailures[address] = nil
            log(.notice, "connected", fields(address, attempt), into: &effects)
            effects.append(.emit(.connected(address, user: attempt.target.user)))
            react(address, on: .connected, into: &effects)
        case .disconnected(let attempt, let report):
            log(
                .notice, "disconnected: \(report.reason)",
                fields(address, attempt).merging(
                    ["ws.close.initiator": report.initiator.rawValue, "ws.close.code": "\(report.code)"]) { $1 },
                into: &effects)
            statuses[address, default: RecordStatus()].disconnectedAt = now
            if report.code != .normalClosure && report.code != .goingAway {
                statuses[address]?.lastError = "closed \(report.code): \(report.reason)"
            }
            effects.append(.emit(.disconnected(address, report)))
            react(address, on: .disconnected, into: &effects)
        case .attemptFailed(let attempt, let reason):
            statuses[address, default: RecordStatus()].lastError = reason
            if loggedFailures[address] == reason {
                // While a server stays down, one warning per record, not one per retry.
                log(.debug, "connection attempt failed again: \(reason)", fields(address, attempt), into: &effects)
            } else {
                loggedFailures[address] = reason
                log(.warning, "connection attempt failed: \(reason)", fields(address, attempt), into: &effects)
            }
            effects.append(.emit(.attemptFailed(address, reason: reason)))
        }
    }

    private mutating func execute(
        _ actions: [ConsentEngine.Action], now: MonotonicInstant, into effects: inout [Effect]
    ) {
        for action in actions {
            switch action {
            case .decide(let requester, let verdict, let outcome):
                let address = RecordAddress(session: requester.session, object: requester.object)
                if verdict == .denied {
                    let fields = ["session.id": "\(address.session)", "object.id": "\(address.object)"]
                    if case .headlessDenied(let hostPort) = outcome {
                        log(
                            .warning,
                            "denied: the handling user is headless and cannot be asked; add \"\(hostPort)\" to security.allowed_url_hosts to allow it",
                            fields, into: &effects)
                    } else {
                        log(.notice, "access denied: \(outcome)", fields, into: &effects)
                    }
                    statuses[address, default: RecordStatus()].lastError = "access denied: \(outcome)"
                }
                tally.decisions[Tally.Decision(verdict: verdict, source: Tally.Source(outcome)), default: 0] += 1
                effects.append(.emit(.consentDecided(address, verdict, outcome)))
                execute(
                    world.consentAnswered(address, attempt: requester.attempt, verdict, now: now), now: now,
                    into: &effects)
            case .prompt(let prompt):
                tally.prompts += 1
                log(
                    .notice, "consent prompt for \(prompt.key.hostPort): \(prompt.request.reason)",
                    ["user.id": "\(prompt.user)", "consent.prompt": "\(prompt.id)"], into: &effects)
                effects.append(.emit(.prompt(prompt)))
            case .dismiss(let prompt):
                disarm(.prompt(prompt.id), into: &effects)
                effects.append(.emit(.promptDismissed(prompt)))
            case .scheduleTimeout(let promptID, let instant):
                arm(.prompt(promptID), at: instant, slack: .milliseconds(250), into: &effects)
            }
        }
    }

    /// The consent request for an attempt: its URL's host and port and the
    /// record's stated reason (the request makes a plain one if it has none).
    private func accessRequest(_ address: RecordAddress, _ attempt: Attempt) -> AccessRequest {
        let key = AccessKey(host: attempt.target.url.host, port: attempt.target.url.port)
        return AccessRequest(
            requester: .init(session: address.session, object: address.object, attempt: attempt.number),
            user: attempt.target.user, key: key, reason: world.objects[address]?.record?.accessReason ?? "")
    }

    /// An attempt's socket: refused over a connection limit, queued behind
    /// the attempts already waiting for the same destination or over the
    /// pace, else opened.
    private mutating func open(
        _ address: RecordAddress, _ attempt: Attempt, now: MonotonicInstant, into effects: inout [Effect]
    ) {
        pacing[address] = nil
        guard withinConnectionLimits(address, attempt, now: now, into: &effects) else { return }
        let url = attempt.target.url
        let destination = HostPort.text(host: url.host, port: url.port)
        if paceQueues[destination] == nil {
            let wait = pacer.admit(destination, now: now)
            if wait == .zero { return launch(address, attempt, into: &effects) }
            arm(.pacing(destination), at: now + wait, slack: .milliseconds(1), into: &effects)
        }
        // Over the pace: the attempt waits its turn, after those already waiting.
        pacing[address] = attempt
        paceQueues[destination, default: []].append((address, attempt.number))
        tally.pacedAttempts += 1
    }

    /// A destination's turn: its waiting attempts go, first come first served,
    /// while the pace has room; the timer is armed again for the rest.
    private mutating func nextTurns(_ destination: String, now: MonotonicInstant, into effects: inout [Effect]) {
        guard var queue = paceQueues.removeValue(forKey: destination) else { return }
        while let head = queue.first {
            guard let attempt = pacing[head.address], attempt.number == head.attempt,
                case .connecting(let current) = world.lifecycles[head.address]?.state, current.number == head.attempt
            else {
                queue.removeFirst()  // ended while it waited
                continue
            }
            let wait = pacer.admit(destination, now: now)
            if wait > .zero {
                // (an attempt that came meanwhile, from a world action above, queues after)
                queue.append(contentsOf: paceQueues[destination] ?? [])
                paceQueues[destination] = queue
                arm(.pacing(destination), at: now + wait, slack: .milliseconds(1), into: &effects)
                return
            }
            queue.removeFirst()
            pacing[head.address] = nil
            if withinConnectionLimits(head.address, attempt, now: now, into: &effects) {
                launch(head.address, attempt, into: &effects)
            }
        }
    }

    /// False (and the attempt failed) over a connection limit.
    private mutating func withinConnectionLimits(
        _ address: RecordAddress, _ attempt: Attempt, now: MonotonicInstant, into effects: inout [Effect]
    ) -> Bool {
        guard let (limit, refusal) = connectionLimitRefusal(user: attempt.target.user, session: address.session) else {
            return true
        }
        tally.limitHits[limit, default: 0] += 1
        let report = CloseReport(initiator: .transport, code: .abnormalClosure, reason: refusal)
        execute(
            world.socketClosed(address, attempt: attempt.number, report: report, now: now), now: now, into: &effects)
        return false
    }

    /// Opens the attempt's socket.
    private mutating func launch(_ address: RecordAddress, _ attempt: Attempt, into effects: inout [Effect]) {
        let url = attempt.target.url
        if sockets[address] != nil { retire(address) }
        sockets[address] = Socket(attempt: attempt.number, user: attempt.target.user)
        liveByUser[attempt.target.user, default: 0] += 1
        liveBySession[address.session, default: 0] += 1
        let trusted = consent.allowList.contains(AccessKey(host: url.host, port: url.port))
        effects.append(.open(address, attempt: attempt.number, url: url, trusted: trusted))
    }

    /// Why an attempt may not open a socket now (a connection limit), or nil.
    private func connectionLimitRefusal(user: UserID, session: SessionID) -> (Tally.Limit, String)? {
        let limits = connectionLimits
        // The session's host (the operator's account, by the SPEC §3 rule the
        // handling user of every object nobody else claims) is not limited per user.
        if limits.perUser > 0, user != world.sessions[session]?.host, liveByUser[user, default: 0] >= limits.perUser {
            return (
                .connectionsPerUser,
                "limit: \(user) already handles \(limits.perUser) connections ([limits] connections_per_user)"
            )
        }
        if limits.perSession > 0, liveBySession[session, default: 0] >= limits.perSession {
            return (
                .connectionsPerSession,
                "limit: session \(session) already has \(limits.perSession) connections ([limits] connections_per_session)"
            )
        }
        return nil
    }

    /// The record's socket is no longer counted (closed, or told to close).
    private mutating func retire(_ address: RecordAddress) {
        guard let socket = sockets.removeValue(forKey: address) else { return }
        let user = socket.user
        liveByUser[user] = liveByUser[user, default: 1] > 1 ? liveByUser[user]! - 1 : nil
        let session = address.session
        liveBySession[session] = liveBySession[session, default: 1] > 1 ? liveBySession[session]! - 1 : nil
    }

    /// SPEC §5 reactions of the object at `address` on connect or disconnect.
    private func react(_ address: RecordAddress, on trigger: Reaction.Trigger, into effects: inout [Effect]) {
        for reaction in world.objects[address]?.reactions ?? [] where reaction.on == trigger {
            if let (object, message) = reaction.response(to: nil, at: address.object) {
                effects.append(.send(RecordAddress(session: address.session, object: object), message))
            }
        }
    }

    private mutating func arm(
        _ key: TimerKey, at instant: MonotonicInstant, slack: Duration, into effects: inout [Effect]
    ) {
        armed.insert(key)
        effects.append(.arm(key, at: instant, slack: slack))
    }

    private mutating func disarm(_ key: TimerKey, into effects: inout [Effect]) {
        if armed.remove(key) != nil { effects.append(.cancel(key)) }
    }

    /// A log line, when its level is one the daemon logs: below `logLevel` its
    /// message and fields are not even built (formatting them was a tenth of a
    /// connection's user-space work with the lines filtered out).
    private func log(
        _ level: LogLine.Level, _ message: @autoclosure () -> String, _ fields: @autoclosure () -> [String: String],
        into effects: inout [Effect]
    ) {
        guard level >= logLevel else { return }
        effects.append(.log(LogLine(level, message(), fields())))
    }

    private func fields(_ address: RecordAddress, _ attempt: Attempt) -> [String: String] {
        [
            "session.id": "\(address.session)", "object.id": "\(address.object)", "user.id": "\(attempt.target.user)",
            "ws.url": "\(attempt.target.url)",
        ]
    }

    private static func timerOrder(_ a: TimerKey, _ b: TimerKey) -> Bool {
        func rank(_ key: TimerKey) -> (Int, String) {
            switch key {
            case .retry(let address): return (0, "\(address)")
            case .pacing(let destination): return (1, destination)
            case .prompt(let id): return (2, String(id))
            }
        }
        return rank(a) < rank(b)
    }
}
