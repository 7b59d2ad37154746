import CMalloc
import Config
import EventLoop
import Glibc
import HostRuntime
import HostingCore
import Logging
import MonotonicTime
import StateStore
import Systemd
import TLS
import WebSocketClient
import World

/// The running daemon: owns the configuration, the loop's timers and signal
/// sources, and talks to systemd. Lives on the event loop.
@LoopActor
public final class Daemon {
    /// Where the daemon is in its life; each case says what it is doing and
    /// holds what exists only then.
    public enum State {
        /// Constructed; `start()` not yet called.
        case created
        /// Config loaded, state restored, control socket open, `READY=1` sent.
        case running(Running)
        /// A stop signal arrived; waiting (up to the stop timeout) for
        /// connections to close before exiting.
        case stopping(Running, signal: String)
    }

    /// The parts of a started daemon, made together by `start()`.
    public struct Running {
        /// The durable state (SPEC §8).
        let store: StateStore
        /// The world, live.
        public let runtime: Runtime
        /// The control socket and what its requests do.
        let controlServer: ControlServer
        let control: ControlService
        let tokens: TokenStore
    }

    public private(set) var state: State = .created
    /// The started daemon's parts (nil before `start()`).
    public var running: Running? {
        switch state {
        case .created: return nil
        case .running(let running), .stopping(let running, _): return running
        }
    }

    public var isStopping: Bool {
        if case .stopping = state { return true }
        return false
    }

    /// created, running or stopping (the status line, `wshostctl status`).
    public var stateName: String {
        switch state {
        case .created: return "created"
        case .running: return "running"
        case .stopping: return "stopping"
        }
    }
    public private(set) var config: DaemonConfig
    /// Increases with every applied config (1 = the one loaded at start).
    public private(set) var configGeneration = 1
    /// Why the latest reload was refused, until a reload succeeds.
    public private(set) var lastReloadError: String?

    let configPath: String
    private let configPathIsImplicit: Bool
    private let logBackend: LogSetup.Backend
    private let logger = Logger(label: "wshostd.daemon")
    private let notifier = Notifier()
    private let timers = LoopTimers()
    private let signals = SignalWatcher()
    /// Inbound bytes all records together may hold ([limits] inbound_budget).
    private let inboundBudget: InboundBudget
    private let exit: @LoopActor (Int32) -> Never
    /// Why the last write to the store failed, until one succeeds again.
    public private(set) var storageError: String?
    private var storageProbeScheduled = false
    /// The metrics (always counted; served over HTTP when `[metrics] listen` is set).
    private let metrics = DaemonMetrics()
    private var metricsEndpoint: MetricsEndpoint?
    /// This host in a fleet (`[fleet] database` set), else nil.
    private(set) var fleet: FleetMember?

    /// The started daemon; keeps it (and its sources and timers) alive until exit.
    private static var running: Daemon?

    /// The signals the daemon handles; block them in `main` before any thread exists.
    #if WSHOSTD_FAULT_INJECTION
        public nonisolated static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR2]
    #else
        public nonisolated static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]
    #endif

    public init(
        config: DaemonConfig, configPath: String, configPathIsImplicit: Bool, logBackend: LogSetup.Backend,
        exit: @escaping @LoopActor (Int32) -> Never = { Glibc.exit($0) }
    ) {
        self.config = config
        inboundBudget = InboundBudget(limit: Int(config.limits.inboundBudget))
        self.configPath = configPath
        self.configPathIsImplicit = configPathIsImplicit
        self.logBackend = logBackend
        self.exit = exit
    }

    /// Installs signal handling and the watchdog, then tells systemd we are ready.
    public func start() {
        guard case .created = state else { preconditionFailure("started twice") }
        Self.running = self
        raiseFileLimit()
        signals.watch(SIGHUP) { [unowned self] in reload() }
        signals.watch(SIGTERM) { [unowned self] in stop(signal: "SIGTERM") }
        signals.watch(SIGINT) { [unowned self] in stop(signal: "SIGINT") }
        #if WSHOSTD_FAULT_INJECTION
            // Test builds only: SIGUSR2 stalls the loop, so the watchdog must fire.
            signals.watch(SIGUSR2) { [unowned self] in
                logger.warning("fault injection: stalling the event loop for 120 s")
                sleep(120)
            }
        #endif
        if let timeout = notifier.watchdogTimeout() {
            startWatchdog(every: timeout / 2)
            logger.info("watchdog armed", metadata: ["watchdog.timeout": "\(Units.format(timeout))"])
        }
        let store: StateStore
        let snapshot: StateStore.Snapshot
        do {
            (store, snapshot) = try openStore()
        } catch {
            logger.critical("cannot open the state store: \(error)")
            exit(73)  // EX_CANTCREAT
        }
        timers.onLag = { [metrics] lag in metrics.loopLagged(lag) }
        let runtime = startRuntime(store: store, restoring: snapshot)
        if config.fleet.enabled {
            let fleet = FleetMember(settings: config.fleet, hostID: fleetHostID, runtime: runtime, timers: timers)
            fleet.onChange = { [unowned self] in statusSoon() }
            fleet.declared = config.world
            fleet.onToken = { [unowned self] user, token in running?.tokens.adopt(user, token) }
            fleet.localTokens = { [unowned self] in running?.tokens.generated ?? [:] }
            fleet.onDecision = { [unowned self, runtime, store] user, key, decision in
                // Made on another host (or here, coming back): in effect here, and kept in the local store.
                guard runtime.consent.decisions[user]?[key] != decision else { return }
                runtime.declare(user: user, key: key, decision)
                var delta = StateStore.Delta()
                delta.decisions = [(user, key, decision)]
                try? persist(delta, to: store)
            }
            self.fleet = fleet
            fleet.start()
        }
        do {
            let running = try startControl(store: store, runtime: runtime, tokens: snapshot.tokens)
            state = .running(running)
            // The event stream from here (nothing connects before the loop
            // turns). The journal is captured, not read through self: the
            // runtime calls this seven times per connection.
            let events = running.control.events
            runtime.onEvent = { [unowned self] event in
                switch event {
                case .connected, .disconnected: statusSoon()
                default: break
                }
                events.record(consume event)
            }
        } catch {
            logger.critical("cannot open the control socket: \(error)")
            exit(73)  // EX_CANTCREAT
        }
        startMetricsEndpoint()
        logger.notice(
            "started",
            metadata: [
                "version": "\(BuildInfo.version)", "openssl": "\(BuildInfo.openSSLVersion)",
                "config.file": "\(configPath)", "log.backend": "\(logBackend.rawValue)",
                "log.level": "\(config.log.level.rawValue)", "pid": "\(getpid())",
            ])
        returnFreeMemory()
        notifier.ready(status: statusLine())
    }

    /// Hands the heap that parsing the config and restoring the world left
    /// free back to the kernel (glibc keeps it otherwise: with 15k objects,
    /// about a fifth of the daemon's RSS was free heap after starting). Once
    /// now, and once more when the records' first connections have settled.
    private func returnFreeMemory() {
        malloc_trim(0)
        if let settleTrim { timers.cancel(settleTrim) }
        settleTrim = timers.schedule(after: .seconds(10), slack: .seconds(1)) { [weak self] in
            self?.settleTrim = nil
            malloc_trim(0)
        }
    }
    private var settleTrim: TimerID?

    /// The one-line summary for `STATUS=` (and `systemctl status`).
    private var statusScheduled = false

    /// Connects and disconnects update STATUS= at most every 100 ms: the line
    /// counts every record, so one update per event would make starting
    /// thousands of records quadratic.
    private func statusSoon() {
        guard !statusScheduled else { return }
        statusScheduled = true
        timers.schedule(after: .milliseconds(100), slack: .milliseconds(20)) { [weak self] in
            guard let self else { return }
            statusScheduled = false
            notifier.status(statusLine())
        }
    }

    /// Every record holds a socket: the soft descriptor limit (often 1024)
    /// goes up to the hard one (the unit sets 65536), as systemd advises for
    /// programs that do not use select().
    private func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let old = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.info("file descriptor limit raised from \(old) to \(limit.rlim_max)")
        }
    }

    public func statusLine() -> String {
        var line = stateName == "created" ? "starting" : stateName
        if let runtime = running?.runtime {
            // Counters, not walks over 15,000 records: this runs every 100 ms while they connect.
            let world = runtime.world
            line += "; \(world.sessions.count) sessions, \(world.recordTotal) records, \(runtime.openCount) open"
        }
        if let fleet { line += "; \(fleet.status)" }
        if let storageError { line += "; degraded: state not stored (\(storageError))" }
        line += "; config generation \(configGeneration) from \(configPath)"
        if let lastReloadError { line += "; last reload failed: \(lastReloadError)" }
        return line
    }

    // MARK: - Reload (SIGHUP): build new, then swap

    /// Parses the whole file again and applies it only if it is valid;
    /// otherwise keeps the running configuration and logs why.
    public func reload() {
        guard case .running = state else { return }
        notifier.reloading(status: "reloading configuration from \(configPath)")
        do {
            let fresh = try ConfigFile.load(configPath, missingIsDefault: configPathIsImplicit)
            apply(fresh)
            configGeneration += 1
            lastReloadError = nil
            logger.notice(
                "configuration reloaded",
                metadata: ["config.file": "\(configPath)", "config.generation": "\(configGeneration)"])
            returnFreeMemory()
        } catch {
            lastReloadError = error.issues.count == 1 ? error.description : "\(error.issues.count) problems"
            for line in error.description.split(separator: "\n") {
                logger.error(
                    "configuration reload refused, keeping the running configuration: \(line)",
                    metadata: ["config.file": "\(configPath)"])
            }
        }
        notifier.ready(status: statusLine())
    }

    private func apply(_ fresh: DaemonConfig) {
        // First: what the rest of the reload logs (the world's changes too) is at the new level.
        if fresh.log.level != config.log.level {
            LogSetup.level.level = Logger.Level(fresh.log.level)
        }
        if let running {
            let runtime = running.runtime
            runtime.updateConsentRules(
                allowList: Self.allowList(fresh), timeout: fresh.security.consentTimeout,
                declared: fresh.world.decisions)
            runtime.options = clientOptions(fresh)
            configure(runtime, fresh)
            if let fleet {
                // The fleet's world: what the config changed goes to the database, then to every host.
                fleet.declared = fresh.world
                if fleet.worldReady { fleet.applyDeclared() }
            } else {
                let changes = fresh.world.changes(from: config.world)
                applyDeclared(changes, declared: fresh.world, runtime: runtime, store: running.store)
                if !changes.isEmpty {
                    logger.notice("declared world updated", metadata: ["world.changes": "\(changes.count)"])
                }
            }
        }
        let (timing, connectionSettings) = Self.changedConnectionSettings(config, fresh)
        if !timing.isEmpty, let runtime = running?.runtime {
            // Timing reaches the open connections at once (a keepalive turned on
            // by reload keeps quiet connections up without a reconnect).
            let count = runtime.retimeConnections()
            if count > 0 {
                logger.notice(
                    "websocket timing changed (\(timing.joined(separator: ", "))): applied to the \(count) open or opening connections",
                    metadata: ["config.file": "\(configPath)"])
            }
        }
        if !connectionSettings.isEmpty, let runtime = running?.runtime, !runtime.openRecords.isEmpty {
            // Limits, sizes and how a connection is made are fixed while it lives; say so.
            logger.notice(
                "websocket settings changed (\(connectionSettings.joined(separator: ", "))): connections opened from now on use them; the \(runtime.openRecords.count) open now keep theirs until they reconnect",
                metadata: ["config.file": "\(configPath)"])
        }
        running?.tokens.configured = fresh.world.tokens
        if fresh.metrics != config.metrics {
            logger.warning("[metrics] changed; the new settings take effect at the next start")
        }
        if fresh.daemon.stateDirectory != config.daemon.stateDirectory {
            logger.warning("[daemon] state_directory changed; the state store moves at the next start")
        }
        if fresh.fleet != config.fleet {
            logger.warning("[fleet] changed; the new settings take effect at the next start")
        }
        if fresh.control != config.control {
            logger.warning("[control] changed; the new settings take effect at the next start")
        }
        if LogSetup.backend(for: fresh.log.target) != logBackend {
            logger.warning(
                "log.target changed; the new target takes effect at the next start",
                metadata: ["log.target": "\(fresh.log.target.rawValue)"])
        }
        config = fresh
    }

    // MARK: - Stop (SIGTERM/SIGINT)

    /// First stop signal: `STOPPING=1`, close what is open within the stop
    /// timeout, exit 0. A second one exits at once.
    public func stop(signal: String) {
        let running: Running
        switch state {
        case .stopping:
            logger.warning("second stop signal; exiting now", metadata: ["signal": "\(signal)"])
            exit(0)
        case .created:
            logger.notice("stopping before the start finished", metadata: ["signal": "\(signal)"])
            exit(0)
        case .running(let current):
            running = current
        }
        state = .stopping(running, signal: signal)
        logger.notice(
            "stopping", metadata: ["signal": "\(signal)", "stop.timeout": "\(Units.format(config.daemon.stopTimeout))"])
        notifier.stopping(status: statusLine())
        // SPEC §8: Close 1001 on every socket, wait for the servers up to the deadline.
        // (Always: it also stops retries, pacing and prompts from starting anything.)
        fleet?.stopClaiming()
        running.runtime.stop(code: .goingAway, reason: "going away")
        waitForSockets(running, signal: signal, until: timers.now() + config.daemon.stopTimeout)
    }

    private func waitForSockets(_ running: Running, signal: String, until deadline: MonotonicInstant) {
        let runtime = running.runtime
        if runtime.liveSockets == 0 { return finishStop(running, signal: signal) }
        if timers.now() >= deadline {
            logger.warning("stop timeout: closing \(runtime.liveSockets) sockets without waiting")
            runtime.abortAll(reason: "stop timeout")
            return finishStop(running, signal: signal)
        }
        timers.schedule(after: .milliseconds(20)) { [unowned self] in
            waitForSockets(running, signal: signal, until: deadline)
        }
    }

    // MARK: - The world

    /// Builds the live world: consent rules and client options from the
    /// config, the world and decisions from the state store, then what the
    /// config's declared world changed since it was last applied (a restart
    /// is a reload; docs/state.md).
    private func startRuntime(store: StateStore, restoring snapshot: StateStore.Snapshot) -> Runtime {
        var decisions = snapshot.decisions
        for (user, declared) in config.world.decisions {
            decisions[user, default: [:]].merge(declared) { _, config in config }
        }
        let consent = ConsentEngine(
            allowList: Self.allowList(config), timeout: config.security.consentTimeout, decisions: decisions)
        let runtime = Runtime(
            core: Hosting(consent: consent, seed: UInt64.random(in: 1...UInt64.max)), options: clientOptions(config),
            limits: Runtime.Limits(
                flood: Self.floodLimits(config), sendsPerSecond: config.limits.sendsPerSecond),
            timers: timers,
            persist: { [unowned self] user, key, decision in
                var delta = StateStore.Delta()
                delta.decisions = [(user, key, decision)]
                try persist(delta, to: store)
            },
            forget: { [unowned self] user, key in
                var delta = StateStore.Delta()
                delta.decisions = [(user, key, nil)]
                try persist(delta, to: store)
            })
        configure(runtime, config)
        // A fleet member holds no session until the fleet says which: the
        // world is built, and its records idle, until then.
        if config.fleet.enabled { runtime.hold([]) }
        // Message events only matter to subscribers; the control service turns
        // them on while someone subscribes.
        runtime.reportsMessages = false

        // In a fleet the world is the fleet's (PostgreSQL): the fleet member
        // loads it, then applies the config's declared world to it.
        if config.fleet.enabled { return runtime }
        // The stored world, as it was: users, sessions, objects (records connect as they come back).
        let records = snapshot.objects.filter { $0.object.record != nil }.count
        if !snapshot.isEmpty {
            notifier.status("restoring \(snapshot.sessions.count) sessions, \(records) records")
        }
        let restore: [WorldChange] =
            snapshot.users.map { .addUser($0) } + snapshot.sessions.map { .startSession($0) }
            + snapshot.objects.map { .spawn($0.session, $0.object) }
        for change in restore {
            do {
                try runtime.apply(change)
            } catch {
                logger.error("stored world: \(error); left out")
            }
        }
        if !snapshot.isEmpty {
            logger.notice(
                "state restored",
                metadata: [
                    "state.users": "\(snapshot.users.count)", "state.sessions": "\(snapshot.sessions.count)",
                    "state.records": "\(records)",
                    "state.decisions": "\(snapshot.decisions.values.map(\.count).reduce(0, +))",
                ])
        }
        // Then the config: all of it the first time, else what changed since.
        var previous = DeclaredWorld()
        if let stored = snapshot.declared {
            do {
                previous = try DeclaredCoding.decode(stored)
            } catch {
                logger.error("stored declared world unreadable (\(error)); applying the config's in full")
            }
        }
        applyDeclared(config.world.changes(from: previous), declared: config.world, runtime: runtime, store: store)
        return runtime
    }

    /// Applies declared-world changes, then stores what they touched together
    /// with the declared world they lead to, in one transaction (one fsync, not
    /// one per item: a first start with thousands of declared records). If
    /// that write fails, the stored declared world is the old one, so the next
    /// start applies the same changes again from the config, their durable source.
    private func applyDeclared(
        _ changes: [WorldChange], declared: DeclaredWorld, runtime: Runtime, store: StateStore
    ) {
        var applied: [WorldChange] = []
        for change in changes {
            do {
                try runtime.apply(change)
                applied.append(change)
            } catch {
                logger.error("declared world: \(error)", metadata: ["config.file": "\(configPath)"])
            }
        }
        var delta = StateStore.Delta.after(applied, in: runtime.world)
        delta.declared = DeclaredCoding.encode(declared)
        try? persist(delta, to: store)
    }

    // MARK: - The state store

    private func openStore() throws -> (StateStore, StateStore.Snapshot) {
        let directory = stateDirectory
        if mkdir(directory, 0o750) != 0 && errno != EEXIST {
            throw StateStore.Failure("\(directory): \(String(cString: strerror(errno)))")
        }
        let store = try StateStore(directory: directory, legacyTokens: TokenStore.legacyTokens(in: directory))
        let snapshot = try store.load()
        for problem in snapshot.problems {
            logger.error("state store: \(problem)", metadata: ["state.file": "\(store.path)"])
        }
        let schema = try store.appliedMigrations().last ?? ""
        logger.info("state store open", metadata: ["state.file": "\(store.path)", "state.schema": "\(schema)"])
        return (store, snapshot)
    }

    /// Stores a world change (the `Runtime.PersistChange` hook).
    func persistChange(_ change: WorldChange, _ world: World) throws {
        if fleet != nil {
            // A fleet's world lives in its database: changes go through the
            // fleet's log (ControlService.inFleet), never to this store.
            throw StateStore.Failure("this host is in a fleet: world changes go through the fleet's database")
        }
        guard let store = running?.store else { throw StateStore.Failure("the daemon is not running") }
        try persist(.after([change], in: world), to: store)
    }

    /// Writes to the store; a failure marks the daemon degraded (STATUS says
    /// so) until a write succeeds again, and is rethrown so the change is refused.
    private func persist(_ delta: StateStore.Delta, to store: StateStore) throws {
        do {
            let started = timers.now()
            try store.write(delta)
            metrics.storeWrote(in: timers.now() - started)
            if storageError != nil { recovered() }
        } catch {
            if storageError == nil {
                logger.error("state store failing: \(error); changes are refused until it recovers")
            }
            storageError = error.description
            notifier.status(statusLine())
            scheduleStorageProbe(store)
            throw error
        }
    }

    private func recovered() {
        storageError = nil
        logger.notice("state store writable again")
        notifier.status(statusLine())
    }

    /// While degraded, try a write every few seconds so STATUS clears when the disk does.
    private func scheduleStorageProbe(_ store: StateStore) {
        guard !storageProbeScheduled else { return }
        storageProbeScheduled = true
        timers.schedule(after: .seconds(5), slack: .seconds(1)) { [unowned self] in
            storageProbeScheduled = false
            guard storageError != nil else { return }
            do {
                try store.probe()
                recovered()
            } catch {
                scheduleStorageProbe(store)
            }
        }
    }

    private static func floodLimits(_ config: DaemonConfig) -> Hosting.FloodLimits {
        Hosting.FloodLimits(
            messages: config.websocket.inboundQueueMessages, bytes: Int(config.websocket.inboundQueueSize),
            policy: config.websocket.floodPolicy == .close ? .close : .dropOldest)
    }

    private static func allowList(_ config: DaemonConfig) -> Set<AccessKey> {
        Set(config.security.allowedURLHosts.map { AccessKey(host: $0.host, port: $0.port) })
    }

    /// The changed keys a reload gives open connections (timing), and those
    /// that reach only connections opened from now on.
    static func changedConnectionSettings(_ old: DaemonConfig, _ new: DaemonConfig) -> (
        timing: [String], newConnections: [String]
    ) {
        let (o, n) = (old.websocket, new.websocket)
        var timing: [String] = []
        if o.idleTimeout != n.idleTimeout { timing.append("idle_timeout") }
        if o.keepaliveInterval != n.keepaliveInterval { timing.append("keepalive_interval") }
        if o.closeTimeout != n.closeTimeout { timing.append("close_timeout") }
        var changed: [String] = []
        if o.connectTimeout != n.connectTimeout { changed.append("connect_timeout") }
        if o.handshakeTimeout != n.handshakeTimeout { changed.append("handshake_timeout") }
        if o.maxFrameSize != n.maxFrameSize { changed.append("max_frame_size") }
        if o.maxMessageSize != n.maxMessageSize { changed.append("max_message_size") }
        if o.fragmentSize != n.fragmentSize { changed.append("fragment_size") }
        if o.sendQueueLimit != n.sendQueueLimit { changed.append("send_queue_limit") }
        if o.compression != n.compression { changed.append("compression") }
        if old.limits.framesPerMessage != new.limits.framesPerMessage { changed.append("limits.frames_per_message") }
        if old.tls != new.tls { changed.append("tls.ca_file") }
        return (timing, changed)
    }

    /// What the runtime takes from the config besides its client options and
    /// consent rules, at start and at every reload alike.
    private func configure(_ runtime: Runtime, _ config: DaemonConfig) {
        runtime.floodLimits = Self.floodLimits(config)
        runtime.recordDefaults = RecordSettings(connectRetryInterval: config.websocket.connectRetryInterval)
        runtime.networkPolicy = NetworkPolicy(
            allowed: config.security.allowedNetworks, denied: config.security.deniedNetworks)
        inboundBudget.limit = Int(config.limits.inboundBudget)
        let limits = config.limits
        runtime.sendsPerSecond = limits.sendsPerSecond
        runtime.recordsPerSession = limits.recordsPerSession
        runtime.connectionLimits = Hosting.ConnectionLimits(
            perUser: limits.connectionsPerUser, perSession: limits.connectionsPerSession)
        runtime.pacer.perSecond = limits.connectAttemptsPerSecond
        runtime.pacer.perDestination = limits.connectAttemptsPerDestination
    }

    private func clientOptions(_ config: DaemonConfig) -> WebSocketClient.Options {
        var options = WebSocketClient.Options(config.websocket, limits: config.limits)
        options.connection.userAgent = "wshostd/\(BuildInfo.version)"
        if config.fleet.enabled {
            // Servers (and their operators) see which host of the fleet connects.
            options.connection.userAgent! += " (fleet host \(fleetHostID(config)))"
        }
        options.tls = try? ConfigFile.tlsContext(for: config, file: configPath)
        options.inboundBudget = inboundBudget
        return options
    }

    private func finishStop(_ running: Running, signal: String) {
        if let fleet, !fleet.leaving {
            // The sockets are closed: the sessions go to the others now, not when the lease runs out.
            return fleet.leave { [unowned self] in finishStop(running, signal: signal) }
        }
        metricsEndpoint?.close()
        running.control.events.stopping(signal: signal)
        logger.notice("stopped")
        // Subscribers get what is queued for them (the disconnects, the
        // stopping event) before their stream ends; at most a quarter second.
        running.controlServer.closeGracefully(within: .milliseconds(250), timers: timers) { [unowned self] in exit(0) }
    }

    // MARK: - The control socket

    /// The state directory: `[daemon] state_directory`, else systemd's
    /// `$STATE_DIRECTORY` (its first entry), else /var/lib/wshostd.
    var stateDirectory: String {
        if !config.daemon.stateDirectory.isEmpty { return config.daemon.stateDirectory }
        if let value = getenv("STATE_DIRECTORY"), let first = String(cString: value).split(separator: ":").first {
            return String(first)
        }
        return "/var/lib/wshostd"
    }

    /// `[fleet] host_id`, else the machine's host name.
    var fleetHostID: String { fleetHostID(config) }

    private func fleetHostID(_ config: DaemonConfig) -> String {
        if !config.fleet.hostID.isEmpty { return config.fleet.hostID }
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private struct ControlFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Opens the control socket: the one systemd passes (socket activation),
    /// else binds `[control] socket`.
    private func startControl(store: StateStore, runtime: Runtime, tokens snapshotTokens: [UserID: String]) throws
        -> Running
    {
        var gid: UInt32?
        let groupName = config.control.group
        if !groupName.isEmpty {
            guard let group = getgrnam(groupName) else {
                throw ControlFailure(description: "control.group: no group named \"\(groupName)\"")
            }
            gid = group.pointee.gr_gid
        }
        let server = ControlServer(
            limits: .init(
                maxClients: config.control.maxClients,
                operatorReserve: min(config.control.operatorReserve, config.control.maxClients - 1),
                maxClientsPerUID: config.control.maxClientsPerUID, maxLine: Int(config.control.maxRequestSize),
                clientBuffer: Int(config.control.clientBuffer)),
            operators: .init(uid: geteuid(), gid: gid, groupName: groupName))
        let tokens = TokenStore(configured: config.world.tokens, stored: snapshotTokens) { [unowned self] user, token in
            var delta = StateStore.Delta()
            delta.tokens = [(user, token)]
            try persist(delta, to: store)
        }
        let control = ControlService(
            daemon: self, runtime: runtime, server: server, tokens: tokens, clock: timers.clock,
            history: config.control.eventHistory,
            historyBytes: Int(config.control.eventHistorySize))
        let running = Running(store: store, runtime: runtime, controlServer: server, control: control, tokens: tokens)
        let passed = ListenFDs.unixStreamListeners()
        if !passed.isEmpty {
            for fd in passed { server.listen(on: StreamListener.adopt(fd: fd)) }
            logger.info("control socket passed by systemd", metadata: ["control.sockets": "\(passed.count)"])
            return running
        }
        let path = config.control.socket
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !parent.isEmpty { mkdir(parent, 0o755) }
        do {
            let listener = try StreamListener.bind(path: path, mode: mode_t(config.control.socketMode), group: gid)
            server.listen(on: listener)
        } catch {
            throw ControlFailure(description: error.description)
        }
        logger.info(
            "control socket listening",
            metadata: [
                "control.socket": "\(path)", "control.mode": "\(String(config.control.socketMode, radix: 8))",
            ])
        return running
    }

    // MARK: - Metrics

    /// Binds `[metrics] listen`, if set. A failure is logged and the daemon
    /// runs on (its main job does not depend on being scraped); the same text
    /// stays available through `wshostctl metrics`.
    private func startMetricsEndpoint() {
        guard let endpoint = config.metrics.listen else { return }
        do {
            let listener = try StreamListener.bind(host: endpoint.host, port: endpoint.port)
            metricsEndpoint = MetricsEndpoint(listener: listener, timers: timers) { [unowned self] in
                scrapeMetrics()
            }
            let bound = DaemonConfig.Endpoint(host: endpoint.host, port: listener.port ?? endpoint.port)
            logger.info("metrics listening", metadata: ["metrics.listen": "http://\(bound)/metrics"])
        } catch {
            logger.error(
                "cannot serve metrics on \(endpoint): \(error); they stay readable with `wshostctl metrics`",
                metadata: ["config.file": "\(configPath)"])
        }
    }

    /// The Prometheus text of the metrics as of now.
    func scrapeMetrics() -> [UInt8] {
        guard let running else { return [] }
        return metrics.scrape(
            running.runtime,
            DaemonMetrics.Sample(
                controlClients: running.controlServer.clientCount, storageDegraded: storageError != nil,
                configGeneration: configGeneration, reloadFailed: lastReloadError != nil,
                inboundBytes: inboundBudget.used))
    }

    // MARK: - Watchdog: pinged from the loop, so a stuck loop stops pinging

    private func startWatchdog(every interval: Duration) {
        timers.schedule(after: interval, slack: interval / 10) { [unowned self] in
            notifier.watchdog()
            startWatchdog(every: interval)
        }
    }
}
