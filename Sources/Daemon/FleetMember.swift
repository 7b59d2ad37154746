import Config
import Control
import EventLoop
import FleetCore
import HostRuntime
import JSONValue
import Logging
import MonotonicTime
import Postgres
import StateStore
import World

/// This host in a fleet (`[fleet]`, docs/fleet.md): the shell around
/// `FleetMembership`. It talks to PostgreSQL from the loop (one libpq
/// connection, asynchronous), joins, runs a round every retry period (renew
/// the lease, claim orphaned sessions, list the sessions held), tells the
/// runtime which sessions to hold, and fences: past the renew deadline it
/// closes every socket and aborts what has not closed before the lease can
/// have expired.
@LoopActor
final class FleetMember {
    let hostID: String
    private(set) var core: FleetMembership
    private let settings: DaemonConfig.Fleet
    private let connection: PostgresConnection
    private let timers: LoopTimers
    private let runtime: Runtime
    private let logger = Logger(label: "wshostd.fleet")
    /// Told when what `status` says changed.
    var onChange: (@LoopActor () -> Void)?
    /// A user's decision made on another host (nil: forgotten there).
    var onDecision: (@LoopActor (UserID, AccessKey, AccessDecision?) -> Void)?
    /// The config's declared world (the daemon sets it at start and reload):
    /// applied to the shared world once this host has caught up with it.
    var declared = DeclaredWorld()
    /// The version of the shared world this host has applied (`wshostd_world_log.seq`).
    private(set) var worldVersion: Int64 = 0
    /// The declared world last applied to the shared world (its stored text).
    private var storedDeclared: String?
    /// Caught up with the shared world and applied the config's declared
    /// world: only then does this host claim sessions.
    private(set) var worldReady = false
    private var catchingUp = false
    private var catchUpAgain = false
    private var catchUpWaiters: [@LoopActor (Bool) -> Void] = []
    /// Log entries read per query (one entry may hold a whole declaration).
    private static let catchUpPage = 20
    /// A consent token stored in the fleet (by any host), for this host's token store.
    var onToken: (@LoopActor (UserID, String) -> Void)?
    /// The tokens this host generated (not the config's).
    var localTokens: (@LoopActor () -> [UserID: String])?
    /// Carries out a request another host forwarded (ws.send, ws.disconnect
    /// for a session this host holds): its result, or the error.
    var onForwarded: (@LoopActor (ControlCommand) -> Result<JSON, ControlError>)?
    /// Requests forwarded to a session's holder, waiting for its answer.
    private var forwarded: [Int64: (answer: Answer, timer: TimerID)] = [:]
    /// Answers announced before their request's id was known here.
    private var earlyAnswers: Set<Int64> = []
    /// The newest shared decision this host has applied (`wshostd_decisions.seq`).
    private var decisionSeq: Int64 = 0
    private var syncing = false
    private var syncAgain = false

    private var migrated = false
    private var roundInFlight = false
    /// After a fence: no join (a new epoch) before the fenced sockets are surely gone.
    private var fenceAbortAt: MonotonicInstant?
    /// Sessions handed over, and when their sockets are surely closed (the
    /// release is stored after that, at the next round).
    private var releaseDue: [SessionID: MonotonicInstant] = [:]
    private var roundTimer: TimerID?
    private var checkTimer: TimerID?
    /// Why the database cannot be reached, while it cannot (logged once per outage).
    private(set) var databaseProblem: String?
    /// Cleared when the daemon starts to stop: it claims nothing more.
    private var claiming = true

    /// The daemon stops: its sessions close now and go at `leave`; it claims
    /// nothing meanwhile (rounds go on, so the lease holds until then).
    func stopClaiming() {
        claiming = false
    }

    /// Set by `leave`: no more rounds.
    private(set) var leaving = false

    init(settings: DaemonConfig.Fleet, hostID: String, runtime: Runtime, timers: LoopTimers) {
        self.settings = settings
        self.hostID = hostID
        self.runtime = runtime
        self.timers = timers
        core = FleetMembership(timing: settings.timing, batch: settings.claimBatch)
        // A query that takes longer than a retry period is as good as lost.
        connection = PostgresConnection(
            conninfo: settings.database, timers: timers, timeout: max(settings.timing.retryPeriod, .seconds(1)))
        connection.onLost = { [unowned self] failure in lost(failure) }
        connection.onReady = { [unowned self] in connected() }
        connection.onNotify = { [unowned self] _, payload in
            let words = payload.split(separator: " ")
            switch words.first {
            case "decision": syncDecisions()
            case "token": syncTokens()
            case "world": catchUp { _ in }
            case "request" where words.count == 3 && words[2] == hostID:
                if let id = Int64(words[1]) { carryOut(id) }
            case "answer" where words.count == 3 && words[2] == hostID:
                if let id = Int64(words[1]) { answered(id) }
            case "request", "answer": break
            default: roundSoon()
            }
        }
    }

    /// One line for STATUS= and `wshostctl status`.
    var status: String {
        var line = "fleet host \(hostID)"
        if let epoch = core.epoch {
            line += " epoch \(epoch), \(core.held.count) sessions held"
        } else {
            line += " joining"
        }
        if let databaseProblem { line += "; database unreachable (\(databaseProblem))" }
        return line
    }

    /// Holds nothing until the first round says what: the world's records
    /// idle until this host claims their sessions.
    func start() {
        runtime.hold([])
        logger.notice(
            "joining the fleet",
            metadata: [
                "fleet.host": "\(hostID)", "fleet.lease": "\(settings.timing.lease)",
                "fleet.renew_deadline": "\(settings.timing.renewDeadline)",
            ])
        connection.connect()
        scheduleRound(after: settings.timing.retryPeriod)
    }

    /// The daemon stops: once its sockets are closed, give the sessions up
    /// so the others claim them at once; `done` runs when that is stored or
    /// has failed (at most a retry period).
    func leave(_ done: @escaping @LoopActor () -> Void) {
        leaving = true
        if let roundTimer { timers.cancel(roundTimer) }
        if let checkTimer { timers.cancel(checkTimer) }
        guard let epoch = core.epoch, connection.state == .ready else { return done() }
        connection.query("SELECT wshostd_leave($1, $2)", [hostID, "\(epoch)"]) { [unowned self] result in
            switch result {
            case .success(let rows):
                logger.notice(
                    "left the fleet", metadata: ["fleet.sessions.released": "\(rows.rows.first?[0] ?? "0")"])
            case .failure(let failure):
                logger.warning("leaving the fleet failed: \(failure); the lease expires by itself")
            }
            connection.close()
            done()
        }
    }

    // MARK: - The shared world

    /// Applies the changes other hosts appended since this host's version,
    /// in order; `then` runs when caught up (or the read failed).
    /// `then` is told whether this host is caught up (false: the read failed;
    /// a reconnect catches up again).
    func catchUp(_ then: @escaping @LoopActor (Bool) -> Void) {
        catchUpWaiters.append(then)
        guard !catchingUp else {
            catchUpAgain = true
            return
        }
        catchingUp = true
        connection.query(
            "SELECT seq, changes, declared, by FROM wshostd_world_log WHERE seq > $1 ORDER BY seq LIMIT \(Self.catchUpPage)",
            ["\(worldVersion)"]
        ) { [unowned self] result in
            catchingUp = false
            var caughtUp = false
            var gap = false
            switch result {
            case .success(let rows):
                caughtUp = rows.rows.count < Self.catchUpPage
                for row in rows.rows where row.count == 4 {
                    guard let seq = Int64(row[0] ?? ""), seq > worldVersion else { continue }
                    guard seq == worldVersion + 1 else {
                        logger.error("shared world: change \(seq) follows \(worldVersion); a change is missing")
                        gap = true
                        break
                    }
                    applyLogged(seq: seq, changes: row[1] ?? "[]", declared: row[2] ?? nil, by: row[3] ?? "")
                }
                // A full page: more to read.
                if !caughtUp && !gap { catchUpAgain = true }
            case .failure(let failure):
                if !failure.connectionLost { logger.warning("reading the shared world failed: \(failure)") }
                gap = true
            }
            if gap {
                catchUpAgain = false
                let waiters = catchUpWaiters
                catchUpWaiters = []
                for waiter in waiters { waiter(false) }
                return
            }
            if catchUpAgain {
                catchUpAgain = false
                return catchUp { _ in }
            }
            let waiters = catchUpWaiters
            catchUpWaiters = []
            for waiter in waiters { waiter(true) }
        }
    }

    /// One entry of the log, applied here.
    private func applyLogged(seq: Int64, changes text: String, declared: String?, by: String) {
        do {
            for item in try JSON.parse(text).arrayValue ?? [] {
                let change = try WorldCoding.change(item)
                do {
                    try runtime.apply(change, persist: nil, by: by)
                } catch {
                    // Every host applies the same changes to the same world: a refusal means they differ.
                    logger.error("shared world: change \(seq) refused here: \(error)")
                }
            }
        } catch {
            logger.error("shared world: change \(seq) unreadable: \(error)")
        }
        worldVersion = seq
        if let declared { storedDeclared = declared }
    }

    /// Appends `changes` (checked on this host's world first) to the shared
    /// world, then applies them here; `done` gets nil, or why nothing changed.
    /// `world` is the world after them (computed by the caller, who checked
    /// them on a copy): its sessions become the fleet's.
    func write(
        _ changes: [WorldChange], leading world: World, declared: String? = nil, by: String,
        _ done: @escaping @LoopActor (ControlError?) -> Void
    ) {
        guard worldReady || declared != nil else {
            return done(ControlError(.unavailable, "this host has not caught up with the fleet's world yet"))
        }
        let sessions = world.sessions.keys.sorted()
        let base = worldVersion
        let text = JSON.array(changes.map(WorldCoding.encode)).description
        connection.query(
            "SELECT wshostd_world_append($1, $2, $3, $4, $5::text[], $6::integer[])",
            [
                "\(base)", text, declared, by, Self.arrayLiteral(sessions.map(\.rawValue)),
                "{" + sessions.map { "\(world.recordCount($0))" }.joined(separator: ",") + "}",
            ]
        ) { [unowned self] result in
            switch result {
            case .success(let rows):
                guard let seq = Int64((rows.rows.first?.first ?? nil) ?? ""), seq == base + 1, worldVersion == base
                else {
                    logger.error("shared world: an append answered out of order; catching up")
                    return catchUp { _ in done(nil) }
                }
                applyLogged(seq: seq, changes: text, declared: declared, by: by)
                done(nil)
            case .failure(let failure) where failure.sqlState == "WS003":
                catchUp { _ in }
                done(
                    ControlError(
                        .conflict, "the world changed on another host meanwhile; try again (\(failure.message))"))
            case .failure(let failure)
            where failure.connectionLost && failure.message != "not connected to the database":
                // Sent, but no answer: it may be stored (the next catch-up applies it then).
                done(
                    ControlError(
                        .unavailable,
                        "the fleet's database did not answer (\(failure.message)); the change may or may not be stored: look before trying again"
                    ))
            case .failure(let failure):
                done(Self.controlError(failure))
            }
        }
    }

    /// Applies what the config's declared world changed since it was last
    /// applied to the shared world (the first host to start or reload with a
    /// new config does it; the others find nothing to do), then this host
    /// is ready to claim sessions.
    func applyDeclared(attempt: Int = 1) {
        let text = DeclaredCoding.encode(declared).description
        guard text != storedDeclared else { return ready() }
        var previous = DeclaredWorld()
        if let storedDeclared {
            do {
                previous = try DeclaredCoding.decode(try JSON.parse(storedDeclared))
            } catch {
                logger.error("the shared declared world is unreadable (\(error)); applying the config's in full")
            }
        }
        // Checked here first: a change the world refuses is logged and left out, as on a single host.
        var scratch = runtime.core
        var accepted: [WorldChange] = []
        for change in declared.changes(from: previous) {
            do {
                _ = try scratch.apply(change, now: timers.now())
                accepted.append(change)
            } catch {
                logger.error("declared world: \(error)")
            }
        }
        write(accepted, leading: scratch.world, declared: text, by: "the config of \(hostID)") { [unowned self] error in
            guard let error else {
                if !accepted.isEmpty {
                    logger.notice(
                        "declared world applied to the fleet", metadata: ["world.changes": "\(accepted.count)"])
                }
                return ready()
            }
            if error.code == .conflict, attempt < 5 {
                // Another host changed the world (perhaps with the same config): again, on top of that.
                return catchUp { [unowned self] caughtUp in if caughtUp { applyDeclared(attempt: attempt + 1) } }
            }
            logger.error("declared world not applied to the fleet: \(error.message)")
            // Without the database, the reconnect applies it (this host is not ready before).
            if connection.state == .ready { ready() }
        }
    }

    private func ready() {
        guard !worldReady else { return round() }
        worldReady = true
        logger.notice(
            "fleet world loaded",
            metadata: ["fleet.world.version": "\(worldVersion)", "world.sessions": "\(runtime.world.sessions.count)"])
        round()
    }

    // MARK: - Consent decisions, shared

    /// Stores a user's decision for the whole fleet (nil: forgotten); the
    /// answer is told when it is stored, and only then may it take effect.
    func storeDecision(
        _ user: UserID, _ key: AccessKey, _ decision: AccessDecision?,
        _ stored: @escaping @LoopActor (ControlError?) -> Void
    ) {
        connection.query(
            "SELECT wshostd_decide($1, $2, $3, $4, $5, $6)",
            [
                user.rawValue, key.host, "\(key.port)", key.scope.rawValue, decision?.verdict.rawValue,
                decision?.reason ?? "",
            ]
        ) { result in
            switch result {
            case .success: stored(nil)
            case .failure(let failure): stored(Self.controlError(failure))
            }
        }
    }

    /// Reads the decisions newer than the last one applied (at connect, and
    /// when another host NOTIFYs one) and applies them here.
    private func syncDecisions() {
        guard !syncing else {
            syncAgain = true
            return
        }
        syncing = true
        connection.query(
            "SELECT \"user\", host, port, scope, verdict, reason, seq FROM wshostd_decisions WHERE seq > $1 ORDER BY seq",
            ["\(decisionSeq)"]
        ) { [unowned self] result in
            syncing = false
            if case .success(let rows) = result {
                for row in rows.rows where row.count == 7 {
                    guard let user = row[0], let host = row[1], let port = UInt16(row[2] ?? ""),
                        let scope = AccessScope(rawValue: row[3] ?? ""), let seq = Int64(row[6] ?? "")
                    else { continue }
                    let key = AccessKey(host: host, port: port, scope: scope)
                    let decision = row[4].flatMap(AccessDecision.Verdict.init(rawValue:)).map {
                        AccessDecision(verdict: $0, reason: row[5] ?? "")
                    }
                    onDecision?(UserID(user), key, decision)
                    decisionSeq = max(decisionSeq, seq)
                }
            }
            if syncAgain {
                syncAgain = false
                syncDecisions()
            }
        }
    }

    // MARK: - Consent tokens, shared

    /// Stores `candidate` as the user's token unless the fleet has one
    /// already; `done` gets the user's token in the fleet.
    func storeToken(
        _ user: UserID, _ candidate: String, _ done: @escaping @LoopActor (Result<String, ControlError>) -> Void
    ) {
        connection.query("SELECT wshostd_token($1, $2)", [user.rawValue, candidate]) { result in
            switch result {
            case .success(let rows):
                guard let token = rows.rows.first?.first ?? nil else {
                    return done(.failure(ControlError(.unavailable, "the fleet's database stored no token")))
                }
                done(.success(token))
            case .failure(let failure):
                done(.failure(Self.controlError(failure)))
            }
        }
    }

    /// Every token of the fleet, for this host's token store (at connect and
    /// on NOTIFY); a token generated here that the fleet does not have (made
    /// before this host joined) is offered to it first.
    private func syncTokens() {
        connection.query("SELECT \"user\", token FROM wshostd_tokens") { [unowned self] result in
            guard case .success(let rows) = result else { return }
            var fleet: Set<UserID> = []
            for row in rows.rows where row.count == 2 {
                guard let user = row[0], let token = row[1] else { continue }
                fleet.insert(UserID(user))
                onToken?(UserID(user), token)
            }
            for (user, token) in localTokens?() ?? [:] where !fleet.contains(user) {
                storeToken(user, token) { [unowned self] result in
                    if case .success(let stored) = result { onToken?(user, stored) }
                }
            }
        }
    }

    // MARK: - Requests for another host's sockets

    /// Sends `command` (ws.send, ws.disconnect) to the holder of `session`,
    /// which carries it out; `answer` gets its result, or why not.
    func forward(_ session: SessionID, _ command: ControlCommand, _ answer: @escaping Answer) {
        let request = JSON.object([
            "op": .string(command.operation.rawValue), "args": .object(command.arguments),
        ]).description
        connection.query("SELECT wshostd_forward($1, $2, $3)", [hostID, session.rawValue, request]) {
            [unowned self] result in
            switch result {
            case .failure(let failure) where failure.sqlState == "WS004":
                answer(.failure(ControlError(.unavailable, failure.message)))
            case .failure(let failure):
                answer(.failure(Self.controlError(failure)))
            case .success(let rows):
                let words = ((rows.rows.first?.first ?? nil) ?? "").split(separator: " ")
                guard words.count == 2, let id = Int64(words[0]) else {
                    return answer(.failure(ControlError(.unavailable, "the fleet's database did not take the request")))
                }
                let target = String(words[1])
                let wait = forwardWait
                let timer = timers.schedule(after: wait, slack: .milliseconds(50)) { [unowned self] in
                    guard let pending = forwarded.removeValue(forKey: id) else { return }
                    pending.answer(
                        .failure(
                            ControlError(
                                .unavailable, "no answer from \(target), the holder of \(session), within \(wait)")))
                }
                forwarded[id] = (answer, timer)
                if earlyAnswers.remove(id) != nil { answered(id) }
            }
        }
    }

    /// How long a forwarded request waits for the holder's answer (and after
    /// which the holder no longer carries it out).
    private var forwardWait: Duration { max(settings.timing.retryPeriod * 2, .seconds(2)) }

    /// The holder answered request `id`: read its answer.
    private func answered(_ id: Int64) {
        guard forwarded[id] != nil else {
            earlyAnswers.insert(id)
            if earlyAnswers.count > 1000 { earlyAnswers.removeAll() }
            return
        }
        connection.query("SELECT answer FROM wshostd_requests WHERE id = $1", ["\(id)"]) { [unowned self] result in
            guard let pending = forwarded.removeValue(forKey: id) else { return }
            timers.cancel(pending.timer)
            switch result {
            case .failure(let failure):
                pending.answer(.failure(Self.controlError(failure)))
            case .success(let rows):
                let text = (rows.rows.first?.first ?? nil) ?? ""
                guard let json = try? JSON.parse(text), let ok = json["ok"]?.boolValue else {
                    return pending.answer(.failure(ControlError(.unavailable, "the holder's answer is unreadable")))
                }
                if ok {
                    pending.answer(.success(json["result"] ?? .object([:])))
                } else {
                    let code =
                        json["error"]?["code"]?.stringValue.flatMap(ControlError.Code.init(rawValue:)) ?? .unavailable
                    pending.answer(.failure(ControlError(code, json["error"]?["message"]?.stringValue ?? "")))
                }
            }
        }
    }

    /// Another host forwarded request `id` to this host: carry it out, answer.
    private func carryOut(_ id: Int64) {
        connection.query(
            "SELECT request FROM wshostd_requests WHERE id = $1 AND answer IS NULL AND taken IS NULL", ["\(id)"]
        ) { [unowned self] result in
            guard case .success(let rows) = result, let text = rows.rows.first?.first ?? nil else { return }
            let command: ControlCommand
            do {
                let json = try JSON.parse(text)
                command = try ControlCommand(op: json["op"]?.stringValue ?? "", args: json["args"]?.objectValue ?? [:])
            } catch {
                return logger.warning("a forwarded request is unreadable: \(error)")
            }
            // Only the holder carries it out (another process with this host's id does not).
            switch command {
            case .wsSend(let address, _), .wsDisconnect(let address):
                guard runtime.world.holds(address.session), core.epoch != nil else { return }
            default:
                return logger.warning("a forwarded request that is not ws.send or ws.disconnect was refused")
            }
            // Taken once, and not after its asker stopped waiting.
            connection.query("SELECT wshostd_take($1, $2::interval)", ["\(id)", Self.interval(forwardWait)]) {
                [unowned self] taken in
                guard case .success(let rows) = taken, (rows.rows.first?.first ?? nil) != nil else { return }
                answer(id, onForwarded?(command) ?? .failure(ControlError(.unavailable, "not ready")))
            }
        }
    }

    /// Writes the answer of a forwarded request (its asker is NOTIFYed).
    private func answer(_ id: Int64, _ outcome: Result<JSON, ControlError>) {
        let answer: JSON
        switch outcome {
        case .success(let result): answer = .object(["ok": .bool(true), "result": result])
        case .failure(let error): answer = .object(["ok": .bool(false), "error": error.json])
        }
        connection.query("SELECT wshostd_answer($1, $2)", ["\(id)", answer.description]) { _ in }
    }

    // MARK: - Operators (wshostctl fleet)

    typealias Answer = @LoopActor (Result<JSON, ControlError>) -> Void

    /// The whole fleet, as the database has it: hosts with their leases, and
    /// who holds which session.
    func show(_ answer: @escaping Answer) {
        let hostsSQL = """
            SELECT h.id, h.epoch, extract(epoch FROM h.lease_until - now())::float8, extract(epoch FROM now() - h.renewed)::float8,
                   h.draining, h.max_sessions,
                   (SELECT count(*) FROM wshostd_sessions s WHERE s.owner = h.id AND s.owner_epoch = h.epoch)
              FROM wshostd_hosts h ORDER BY h.id
            """
        let sessionsSQL = """
            SELECT s.session, s.records,
                   CASE WHEN h.epoch = s.owner_epoch AND h.lease_until > now() THEN s.owner END,
                   s.fence, s.pinned_to
              FROM wshostd_sessions s LEFT JOIN wshostd_hosts h ON h.id = s.owner ORDER BY s.session
            """
        connection.query(hostsSQL) { [unowned self] hosts in
            switch hosts {
            case .failure(let failure): answer(.failure(Self.controlError(failure)))
            case .success(let hosts):
                connection.query(sessionsSQL) { [unowned self] sessions in
                    switch sessions {
                    case .failure(let failure): answer(.failure(Self.controlError(failure)))
                    case .success(let sessions): answer(.success(view(hosts: hosts, sessions: sessions)))
                    }
                }
            }
        }
    }

    private func view(hosts: PostgresConnection.Rows, sessions: PostgresConnection.Rows) -> JSON {
        func number(_ text: String??) -> JSON { (text ?? nil).flatMap(Double.init).map { .number($0) } ?? .null }
        func string(_ text: String??) -> JSON { (text ?? nil).map { .string($0) } ?? .null }
        let hostRows: [JSON] = hosts.rows.filter { $0.count == 7 }.map { row in
            let leaseLeft = (row[2]).flatMap(Double.init) ?? 0
            return .object([
                "id": string(row[0]), "epoch": number(row[1]), "leaseLeft": .number((leaseLeft * 10).rounded() / 10),
                "renewedAgo": number(row[3]), "live": .bool(leaseLeft > 0), "draining": .bool(row[4] == "t"),
                "maxSessions": number(row[5]), "sessions": number(row[6]), "this": .bool(row[0] == hostID),
            ])
        }
        let sessionRows: [JSON] = sessions.rows.filter { $0.count == 5 }.map { row in
            .object([
                "session": string(row[0]), "records": number(row[1]), "holder": string(row[2]),
                "fence": number(row[3]), "pinnedTo": string(row[4]),
            ])
        }
        return .object(["host": .string(hostID), "hosts": .array(hostRows), "sessions": .array(sessionRows)])
    }

    /// An operator drains a host (or lets it take sessions again).
    func drain(_ host: String, _ drain: Bool, _ answer: @escaping Answer) {
        connection.query("SELECT wshostd_drain($1, $2)", [host, drain ? "true" : "false"]) { [unowned self] result in
            switch result {
            case .failure(let failure): answer(.failure(Self.controlError(failure)))
            case .success:
                logger.notice(
                    drain ? "host draining" : "host takes sessions again", metadata: ["fleet.host": "\(host)"])
                answer(.success(.object(["host": .string(host), "draining": .bool(drain)])))
            }
        }
    }

    /// An operator pins a session to a host: its holder hands it over.
    func move(_ session: SessionID, to host: String, _ answer: @escaping Answer) {
        connection.query("SELECT wshostd_move($1, $2)", [session.rawValue, host]) { [unowned self] result in
            switch result {
            case .failure(let failure): answer(.failure(Self.controlError(failure)))
            case .success(let rows):
                let from = rows.rows.first?.first ?? nil
                logger.notice(
                    "session moving",
                    metadata: ["session.id": "\(session)", "fleet.to": "\(host)", "fleet.from": "\(from ?? "-")"])
                answer(
                    .success(
                        .object([
                            "session": .string(session.rawValue), "to": .string(host),
                            "from": from.map { .string($0) } ?? .null,
                        ])))
            }
        }
    }

    private static func controlError(_ failure: PostgresConnection.Failure) -> ControlError {
        switch failure.sqlState {
        case "WS002": ControlError(.notFound, failure.message)
        default: ControlError(.unavailable, "the fleet's database: \(failure.message)")
        }
    }

    // MARK: - The connection

    private func connected() {
        if databaseProblem != nil {
            logger.notice("database reachable again", metadata: ["fleet.host": "\(hostID)"])
            databaseProblem = nil
            onChange?()
        }
        guard !migrated else {
            listen()
            syncDecisions()
            syncTokens()
            // (A reload made while the database was away is applied now.)
            return catchUp { [unowned self] caughtUp in if caughtUp { applyDeclared() } }
        }
        connection.query(FleetSchema.migrationScript) { [unowned self] result in
            switch result {
            case .success:
                migrated = true
                listen()
                syncDecisions()
                syncTokens()
                catchUp { [unowned self] caughtUp in if caughtUp { applyDeclared() } }
            case .failure(let failure):
                // The script's transaction failed: a fresh connection tries again at the next round.
                logger.error("fleet schema: \(failure)")
                connection.close()
            }
        }
    }

    /// Hand-overs, drains and moves NOTIFY `wshostd_fleet`: every host runs
    /// a round at once instead of at its next period.
    private func listen() {
        connection.query("LISTEN wshostd_fleet") { [unowned self] in
            if case .failure(let failure) = $0, !failure.connectionLost { logger.warning("LISTEN failed: \(failure)") }
        }
    }

    /// A round as soon as the one in flight is answered (at most one at a time).
    private var roundWanted = false
    private func roundSoon() {
        if roundInFlight {
            roundWanted = true
            return
        }
        scheduleRound(after: .milliseconds(5))
    }

    private func lost(_ failure: PostgresConnection.Failure) {
        roundInFlight = false
        if databaseProblem == nil {
            var metadata: Logger.Metadata = ["fleet.host": "\(hostID)"]
            if let until = core.validUntil {
                let left = until - timers.now()
                metadata["fleet.fence_in"] = "\(left > .zero ? left : .zero)"
            }
            logger.warning("database unreachable: \(failure.message)", metadata: metadata)
        }
        databaseProblem = failure.message
        onChange?()
    }

    /// An interval literal in milliseconds.
    static func interval(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) milliseconds"
    }

    /// A text[] literal ("{"a","b\"c"}").
    static func arrayLiteral(_ items: [String]) -> String {
        let quoted = items.map { item in
            var text = "\""
            for character in item {
                if character == "\"" || character == "\\" { text.append("\\") }
                text.append(character)
            }
            return text + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }

    // MARK: - Rounds

    private func scheduleRound(after delay: Duration) {
        if let roundTimer { timers.cancel(roundTimer) }
        roundTimer = timers.schedule(after: delay, slack: .milliseconds(10)) { [unowned self] in
            roundTimer = nil
            round()
        }
    }

    private func round() {
        guard !leaving else { return }
        scheduleRound(after: settings.timing.retryPeriod)
        guard connection.state == .ready, migrated, worldReady else {
            if connection.state == .idle { connection.connect() }
            return
        }
        guard !roundInFlight else { return }
        roundInFlight = true
        let sentAt = timers.now()
        let generation = core.generation
        let lease = Self.interval(settings.timing.lease)
        guard let epoch = core.epoch else {
            if let fenceAbortAt, sentAt < fenceAbortAt {
                roundInFlight = false
                return
            }
            connection.query("SELECT wshostd_join($1, $2::interval, $3)", [hostID, lease, "\(settings.maxSessions)"]) {
                [unowned self] result in
                roundInFlight = false
                switch result {
                case .success(let rows):
                    guard let text = rows.rows.first?[0], let epoch = Int64(text) else {
                        return logger.error("joining the fleet: no epoch in the answer")
                    }
                    perform(core.joined(epoch: epoch, sentAt: sentAt, generation: generation, now: timers.now()))
                    if core.epoch == epoch {
                        logger.notice(
                            "joined the fleet", metadata: ["fleet.host": "\(hostID)", "fleet.epoch": "\(epoch)"])
                        armCheck()
                        onChange?()
                        round()  // claim at once
                    }
                case .failure(let failure):
                    logger.warning("joining the fleet failed: \(failure)")
                }
            }
            return
        }
        storeReleases(epoch: epoch)
        connection.query(
            "SELECT held_session, held_fence, fair_share, hand_over, pinned FROM wshostd_round($1, $2, $3::interval, $4, $5)",
            [hostID, "\(epoch)", lease, "\(settings.maxSessions)", "\(claiming ? settings.claimBatch : 0)"]
        ) { [unowned self] result in
            roundInFlight = false
            let now = timers.now()
            if roundWanted {
                roundWanted = false
                scheduleRound(after: .milliseconds(5))
            }
            switch result {
            case .success(let rows):
                var held: [SessionID: Int64] = [:]
                var share: Int?
                var handOver: Set<SessionID> = []
                var pinned: Set<SessionID> = []
                for row in rows.rows where row.count == 5 {
                    guard let name = row[0], let fence = Int64(row[1] ?? "") else { continue }
                    let session = SessionID(name)
                    held[session] = fence
                    share = Int(row[2] ?? "")
                    if row[3] == "t" { handOver.insert(session) }
                    if row[4] == "t" { pinned.insert(session) }
                }
                perform(
                    core.renewed(
                        epoch: epoch, sessions: held, share: share, handOver: handOver, pinned: pinned, sentAt: sentAt,
                        generation: generation, now: now))
                // The world lets go of a session that closes (and may start again under its id): what
                // the database just said this host holds is held again.
                let holding = Set(core.held.keys)
                if core.epoch == epoch, runtime.world.heldSessions != holding { runtime.hold(holding) }
                armCheck()
            case .failure(let failure) where failure.sqlState == "WS001":
                perform(core.membershipLost(reason: failure.message, now: now))
            case .failure(let failure):
                if !failure.connectionLost { logger.warning("fleet round failed: \(failure)") }
            }
        }
    }

    /// Stores the release of the sessions handed over whose sockets are
    /// closed by now (aborted at the grace, like a fence).
    private func storeReleases(epoch: Int64) {
        let now = timers.now()
        // Sessions the database no longer lists as this host's are released already.
        releaseDue = releaseDue.filter { core.releasing.contains($0.key) }
        let due = Set(releaseDue.filter { $0.value <= now }.keys)
        guard !due.isEmpty else { return }
        let names = Self.arrayLiteral(due.map(\.rawValue).sorted())
        connection.query("SELECT wshostd_release($1, $2, $3::text[])", [hostID, "\(epoch)", names]) {
            [unowned self] result in
            switch result {
            case .success:
                core.released(due)
                for session in due { releaseDue[session] = nil }
                logger.notice(
                    "sessions handed over: \(due.count)", metadata: ["fleet.host": "\(hostID)"])
            case .failure(let failure):
                if !failure.connectionLost { logger.warning("handing sessions over failed: \(failure)") }
            }
        }
    }

    /// A timer at the instant the lease stops being safe to hold.
    private func armCheck() {
        if let checkTimer { timers.cancel(checkTimer) }
        checkTimer = nil
        guard let until = core.validUntil else { return }
        checkTimer = timers.schedule(at: until, slack: .milliseconds(1)) { [unowned self] in
            checkTimer = nil
            perform(core.check(now: timers.now()))
        }
    }

    private func perform(_ effects: [FleetMembership.Effect]) {
        for effect in effects {
            switch effect {
            case .hold(let sessions):
                let before = runtime.world.heldSessions ?? []
                let now = Set(sessions.keys)
                let taken = now.subtracting(before)
                let given = before.subtracting(now)
                runtime.hold(now)
                if !taken.isEmpty || !given.isEmpty {
                    logger.notice(
                        "sessions held: \(now.count)",
                        metadata: [
                            "fleet.host": "\(hostID)", "fleet.sessions.taken": "\(taken.count)",
                            "fleet.sessions.given_up": "\(given.count)",
                        ])
                }
                onChange?()
            case .release(let sessions):
                // Their sockets got their Close with the hold above; what is
                // still open at the grace is aborted, then the release is stored.
                let due = timers.now() + settings.timing.fenceGrace
                for session in sessions { releaseDue[session] = due }
                timers.schedule(at: due, slack: .milliseconds(1)) { [runtime] in
                    runtime.abortAll(reason: "session handed over")
                }
            case .fence(let reason, let abortAt):
                releaseDue = [:]
                fenceAbortAt = abortAt
                let held = runtime.world.heldSessions?.count ?? 0
                logger.warning(
                    "fenced: \(reason); closing the sockets of \(held) sessions",
                    metadata: ["fleet.host": "\(hostID)", "fleet.fences": "\(core.fences)"])
                runtime.hold([])
                if let checkTimer { timers.cancel(checkTimer) }
                checkTimer = nil
                let abort = { @LoopActor [runtime] in runtime.abortAll(reason: "fenced: lease not renewed") }
                if abortAt <= timers.now() {
                    abort()
                } else {
                    timers.schedule(at: abortAt, slack: .milliseconds(1)) { abort() }
                }
                onChange?()
            }
        }
    }
}
