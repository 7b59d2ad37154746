import MonotonicTime
import WebSocketProtocol

/// Where a record lives.
public struct RecordAddress: Hashable, Sendable, CustomStringConvertible {
    public var session: SessionID
    public var object: ObjectID

    public init(session: SessionID, object: ObjectID) {
        self.session = session
        self.object = object
    }

    public var description: String { "\(session)/\(object)" }
    /// Both identifiers' text hashes, mixed once (see `HashMix`).
    public func _rawHashValue(seed: Int) -> Int {
        HashMix.mix(HashMix.combine(session.textHash, object.textHash), seed: seed)
    }
}

/// One lifecycle action for one record.
public struct RecordAction: Equatable, Sendable {
    public var address: RecordAddress
    public var action: RecordLifecycle.Action

    public init(address: RecordAddress, action: RecordLifecycle.Action) {
        self.address = address
        self.action = action
    }
}

/// A change to the world, as a value: what the config declares, what the
/// control socket asks, what persistence replays. Applying one re-resolves
/// every affected record's handling user and drives its lifecycle.
public enum WorldChange: Equatable, Sendable {
    case addUser(User)
    case startSession(Session)
    case closeSession(SessionID)
    case join(SessionID, UserID)
    case leave(SessionID, UserID)
    case setHost(SessionID, UserID)
    case spawn(SessionID, WorldObject)
    case remove(SessionID, ObjectID)
    case wear(SessionID, ObjectID, by: UserID?)
    case grab(SessionID, ObjectID, by: UserID?)
    case defineUser(SessionID, ObjectID, UserID?)
    /// Sets (or clears, with nil) the object's record settings.
    case setRecord(SessionID, ObjectID, RecordSettings?)
    /// The Websocket Connect node: URL (nil keeps the current one), user (nil: automatic).
    case connect(SessionID, ObjectID, url: WebSocketURL?, user: UserID?)
    /// Replaces the object's reactions (SPEC §5).
    case setReactions(SessionID, ObjectID, [Reaction])
}

/// The world and the lifecycle of every record in it. Pure: changes and
/// socket/consent reports in, per-record actions out.
public struct World: Sendable {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case unknownUser(UserID)
        case unknownSession(SessionID)
        case unknownObject(RecordAddress)
        case duplicateUser(UserID)
        case duplicateSession(SessionID)
        case duplicateObject(RecordAddress)
        case noRecord(RecordAddress)
        /// The session has `recordsPerSession` records already.
        case recordLimit(SessionID, Int)
        /// The user is not in the session (it cannot leave it).
        case notPresent(SessionID, UserID)
        /// A new forward reaction names an object the session does not have.
        case noForwardTarget(RecordAddress)

        public var description: String {
            switch self {
            case .unknownUser(let id): return "no user \(id)"
            case .unknownSession(let id): return "no session \(id)"
            case .unknownObject(let address): return "no object \(address)"
            case .duplicateUser(let id): return "user \(id) exists already"
            case .duplicateSession(let id): return "session \(id) exists already"
            case .duplicateObject(let address): return "object \(address) exists already"
            case .noRecord(let address): return "object \(address) has no WebSocket Client record"
            case .recordLimit(let session, let limit):
                return "session \(session) has \(limit) WebSocket Client records already ([limits] records_per_session)"
            case .notPresent(let session, let user): return "\(user) is not in session \(session)"
            case .noForwardTarget(let address): return "no object \(address) to forward to"
            }
        }
    }

    public private(set) var users: [UserID: User] = [:]
    public private(set) var sessions: [SessionID: Session] = [:]
    public private(set) var objects: [RecordAddress: WorldObject] = [:]
    public private(set) var lifecycles: [RecordAddress: RecordLifecycle] = [:]

    /// The record's state and handling user (`RecordLifecycle.report`), nil
    /// without a record: read in place, where `lifecycles[address]` copied
    /// the whole lifecycle for every field read from it.
    public func report(of address: RecordAddress) -> (state: RecordLifecycle.State, user: UserID?)? {
        guard let index = lifecycles.index(forKey: address) else { return nil }
        return lifecycles.values[index].report
    }
    /// What a record made by the Connect node on an object without one starts
    /// from (the daemon sets it from the config).
    public var recordDefaults = RecordSettings()
    /// Records one session may hold; 0 is no limit. A change that would add
    /// one more is refused (records already there stay).
    public var recordsPerSession = 0
    private var recordCounts: [SessionID: Int] = [:]

    /// Records in a session now.
    public func recordCount(_ session: SessionID) -> Int { recordCounts[session, default: 0] }
    /// Records in all sessions (counted as they come and go: no walk over the objects).
    public var recordTotal: Int { recordCounts.values.reduce(0, +) }

    /// Refuses a new record in `session` past the limit.
    private func checkNewRecord(in session: SessionID) throws(Failure) {
        guard recordsPerSession > 0, recordCounts[session, default: 0] >= recordsPerSession else { return }
        throw .recordLimit(session, recordsPerSession)
    }

    private mutating func countRecord(_ session: SessionID, had: Bool, has: Bool) {
        guard had != has else { return }
        let count = recordCounts[session, default: 0] + (has ? 1 : -1)
        recordCounts[session] = count > 0 ? count : nil
    }

    public init() {}

    public typealias Actions = [RecordAction]

    /// Applies `change` after checking it; a refused change changes nothing.
    public mutating func apply(_ change: WorldChange, now: MonotonicInstant) throws(Failure) -> Actions {
        switch change {
        case .addUser(let user):
            guard users[user.id] == nil else { throw .duplicateUser(user.id) }
            users[user.id] = user
            return []
        case .startSession(let session):
            guard sessions[session.id] == nil else { throw .duplicateSession(session.id) }
            try requireUsers([session.host] + session.present)
            sessions[session.id] = session
            return []
        case .closeSession(let id):
            guard sessions.removeValue(forKey: id) != nil else { throw .unknownSession(id) }
            recordCounts[id] = nil
            var actions: Actions = []
            for address in objects.keys.sorted(by: { $0.object < $1.object }) where address.session == id {
                actions += removeRecord(address, now: now)
                objects[address] = nil
            }
            // A session started again under this id is a new one: held only once the fleet says so.
            heldSessions?.remove(id)
            return actions
        case .join(let id, let user):
            try requireUsers([user])
            return try updateSession(id, now: now) { $0.present.insert(user) }
        case .leave(let id, let user):
            guard let session = sessions[id] else { throw .unknownSession(id) }
            guard session.present.contains(user) else { throw .notPresent(id, user) }
            return try updateSession(id, now: now) { $0.present.remove(user) }
        case .setHost(let id, let user):
            try requireUsers([user])
            return try updateSession(id, now: now) { $0.host = user }
        case .spawn(let id, let object):
            guard sessions[id] != nil else { throw .unknownSession(id) }
            let address = RecordAddress(session: id, object: object.id)
            guard objects[address] == nil else { throw .duplicateObject(address) }
            try requireUsers(
                [object.wornBy, object.definedUser, object.spawnedBy, object.interactingUser].compactMap { $0 })
            if object.record != nil { try checkNewRecord(in: id) }
            objects[address] = object
            countRecord(id, had: false, has: object.record != nil)
            return refresh(address, now: now)
        case .remove(let id, let objectID):
            let address = RecordAddress(session: id, object: objectID)
            guard let old = objects[address] else { throw .unknownObject(address) }
            let actions = removeRecord(address, now: now)
            objects[address] = nil
            countRecord(id, had: old.record != nil, has: false)
            return actions
        case .wear(let id, let objectID, let user):
            return try updateObject(id, objectID, users: [user], now: now) { $0.wornBy = user }
        case .grab(let id, let objectID, let user):
            return try updateObject(id, objectID, users: [user], now: now) { $0.interactingUser = user }
        case .defineUser(let id, let objectID, let user):
            return try updateObject(id, objectID, users: [user], now: now) { $0.definedUser = user }
        case .setRecord(let id, let objectID, let settings):
            let address = RecordAddress(session: id, object: objectID)
            guard let old = objects[address] else { throw .unknownObject(address) }
            if case .pinned(let user) = settings?.handlingUser { try requireUsers([user]) }
            if old.record == nil && settings != nil { try checkNewRecord(in: id) }
            objects[address]?.record = settings
            countRecord(id, had: old.record != nil, has: settings != nil)
            guard settings != nil else { return removeRecord(address, now: now) }
            // SPEC §2: any change of URL, Enabled or HandlingUser restarts the record.
            let restarts =
                old.record?.url != settings?.url || old.record?.enabled != settings?.enabled
                || old.record?.handlingUser != settings?.handlingUser
            return refresh(address, now: now, restart: restarts && old.record != nil)
        case .setReactions(let id, let objectID, let reactions):
            let address = RecordAddress(session: id, object: objectID)
            guard let old = objects[address] else { throw .unknownObject(address) }
            // A forward added now must name an object that exists (one kept
            // from before may outlive its target: it then sends nothing). An
            // identical copy of a kept one is added too.
            var kept = old.reactions
            for reaction in reactions {
                if let index = kept.firstIndex(of: reaction) {
                    kept.remove(at: index)
                    continue
                }
                guard case .forward(let target) = reaction.effect else { continue }
                let targetAddress = RecordAddress(session: id, object: target)
                guard objects[targetAddress] != nil else { throw .noForwardTarget(targetAddress) }
            }
            objects[address]?.reactions = reactions
            return []
        case .connect(let id, let objectID, let url, let user):
            let address = RecordAddress(session: id, object: objectID)
            guard var object = objects[address] else { throw .unknownObject(address) }
            if let user { try requireUsers([user]) }
            if object.record == nil { try checkNewRecord(in: id) }
            countRecord(id, had: object.record != nil, has: true)
            var settings = object.record ?? recordDefaults
            if let url { settings.url = url }
            settings.handlingUser = user.map { .pinned($0) } ?? .automatic
            object.record = settings
            objects[address] = object
            return refresh(address, now: now, restart: true)
        }
    }

    /// The sessions whose records this host runs; nil: every session (a
    /// daemon on its own). A fleet member holds some: a record of a session
    /// held elsewhere has no effective target here (it idles while its holder
    /// runs it).
    public private(set) var heldSessions: Set<SessionID>?

    /// Whether this host runs the records of `session`.
    public func holds(_ session: SessionID) -> Bool { heldSessions?.contains(session) ?? true }

    /// This host now holds `sessions` (nil: all): records of sessions it took
    /// start, records of sessions it gave up close and idle.
    public mutating func hold(_ sessions: Set<SessionID>?, now: MonotonicInstant) -> Actions {
        let before = heldSessions
        heldSessions = sessions
        func changed(_ session: SessionID) -> Bool {
            (before?.contains(session) ?? true) != (sessions?.contains(session) ?? true)
        }
        var actions: Actions = []
        for address in objects.keys.sorted(by: { ($0.session, $0.object) < ($1.session, $1.object) })
        where changed(address.session) {
            let reason = holds(address.session) ? nil : "session held by another host"
            actions += refresh(address, now: now, reason: reason)
        }
        return actions
    }

    /// The record's effective target now (SPEC §2), and where its user came from.
    public func effectiveTarget(_ address: RecordAddress) -> EffectiveTarget? {
        guard holds(address.session), let object = objects[address], let settings = object.record, settings.enabled,
            let url = settings.url,
            let session = sessions[address.session],
            let (user, _) = HandlingUserResolver.resolve(settings.handlingUser, object: object, session: session)
        else { return nil }
        return EffectiveTarget(url: url, user: user)
    }

    // MARK: - Reports from the shell, routed to the record's lifecycle

    public mutating func consentAnswered(
        _ address: RecordAddress, attempt: Int, _ answer: ConsentVerdict, now: MonotonicInstant
    ) -> Actions {
        let jitter = nextJitter()
        return drive(address) { $0.consentAnswered(answer, attempt: attempt, now: now, jitter: jitter) }
    }

    public mutating func socketOpened(_ address: RecordAddress, attempt: Int, now: MonotonicInstant? = nil) -> Actions {
        drive(address) { $0.socketOpened(attempt: attempt, now: now) }
    }

    public mutating func socketClosed(
        _ address: RecordAddress, attempt: Int, report: CloseReport, now: MonotonicInstant
    ) -> Actions {
        let jitter = nextJitter()
        return drive(address) { $0.socketClosed(attempt: attempt, report: report, now: now, jitter: jitter) }
    }

    /// Where in its ± 10 % the next retry falls: a deterministic sequence
    /// (SplitMix64) from `jitterSeed`, which the shell sets from entropy.
    public var jitterSeed: UInt64 = 0x9E37_79B9_7F4A_7C15
    private mutating func nextJitter() -> Double {
        jitterSeed &+= 0x9E37_79B9_7F4A_7C15
        var z = jitterSeed
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }

    /// The explicit disconnect (Neos #1039): the record stays down until it restarts.
    public mutating func disconnectRequested(_ address: RecordAddress, now: MonotonicInstant) throws(Failure) -> Actions
    {
        guard objects[address] != nil else { throw .unknownObject(address) }
        guard objects[address]?.record != nil else { throw .noRecord(address) }
        return drive(address) { $0.disconnectRequested(now: now) }
    }

    public mutating func retryDue(_ address: RecordAddress, now: MonotonicInstant) -> Actions {
        drive(address) { $0.retryDue(now: now) }
    }

    // MARK: - Internals

    private func requireUsers(_ ids: some Sequence<UserID>) throws(Failure) {
        for id in ids where users[id] == nil { throw .unknownUser(id) }
    }

    private mutating func updateSession(_ id: SessionID, now: MonotonicInstant, _ change: (inout Session) -> Void)
        throws(Failure)
        -> Actions
    {
        guard sessions[id] != nil else { throw .unknownSession(id) }
        change(&sessions[id]!)
        var actions: Actions = []
        for address in objects.keys.sorted(by: { $0.object < $1.object }) where address.session == id {
            actions += refresh(address, now: now)
        }
        return actions
    }

    private mutating func updateObject(
        _ id: SessionID, _ objectID: ObjectID, users ids: [UserID?], now: MonotonicInstant,
        _ change: (inout WorldObject) -> Void
    ) throws(Failure) -> Actions {
        let address = RecordAddress(session: id, object: objectID)
        guard objects[address] != nil else { throw .unknownObject(address) }
        try requireUsers(ids.compactMap { $0 })
        change(&objects[address]!)
        return refresh(address, now: now)
    }

    /// Re-resolves the record's effective target and tells its lifecycle.
    private mutating func refresh(
        _ address: RecordAddress, now: MonotonicInstant, restart: Bool = false, reason: String? = nil
    ) -> Actions {
        guard let settings = objects[address]?.record else { return [] }
        let target = effectiveTarget(address)
        // Changed in place: one lookup, no copy of the lifecycle.
        let index: [RecordAddress: RecordLifecycle].Index
        if let existing = lifecycles.index(forKey: address) {
            index = existing
        } else {
            lifecycles[address] = RecordLifecycle(retryInterval: settings.connectRetryInterval)
            index = lifecycles.index(forKey: address)!
        }
        lifecycles.values[index].retryInterval = settings.connectRetryInterval
        let actions =
            restart
            ? lifecycles.values[index].restart(target, now: now)
            : lifecycles.values[index].targetChanged(target, now: now, reason: reason)
        return actions.map { RecordAction(address: address, action: $0) }
    }

    /// Removing the object, its record or its session tears the socket down (Neos #1375).
    private mutating func removeRecord(_ address: RecordAddress, now: MonotonicInstant) -> Actions {
        guard var lifecycle = lifecycles.removeValue(forKey: address) else { return [] }
        return lifecycle.targetChanged(nil, now: now).map { RecordAction(address: address, action: $0) }
    }

    private mutating func drive(_ address: RecordAddress, _ step: (inout RecordLifecycle) -> [RecordLifecycle.Action])
        -> Actions
    {
        // Changed in place: one lookup, no copy of the lifecycle.
        guard let index = lifecycles.index(forKey: address) else { return [] }
        var actions = step(&lifecycles.values[index])
        var result = Actions()
        result.reserveCapacity(actions.count)
        for position in actions.indices {
            result.append(RecordAction(address: address, action: actions.take(at: position, leaving: .cancelRetry)))
        }
        return result
    }
}
