import WebSocketProtocol
import World

extension DaemonConfig {
    /// Every key the schema knows, by table; the example file must list them all.
    public static let schema: [String: [String]] = [
        "log": ["level", "target"],
        "daemon": ["stop_timeout", "state_directory"],
        "websocket": [
            "connect_timeout", "handshake_timeout", "idle_timeout", "keepalive_interval",
            "connect_retry_interval", "close_timeout", "max_frame_size", "max_message_size",
            "fragment_size", "send_queue_limit", "inbound_queue_messages", "inbound_queue_size", "flood_policy",
            "compression",
        ],
        "security": ["allowed_url_hosts", "consent_timeout", "allowed_networks", "denied_networks"],
        "tls": ["ca_file"],
        "limits": [
            "sends_per_second", "frames_per_message", "inbound_budget", "records_per_session", "connections_per_user",
            "connections_per_session", "connect_attempts_per_second", "connect_attempts_per_destination",
        ],
        "control": [
            "socket", "socket_mode", "group", "max_clients", "operator_reserve", "max_clients_per_uid",
            "max_request_size", "client_buffer", "event_history", "event_history_size",
        ],
        "metrics": ["listen"],
        "fleet": ["database", "host_id", "lease", "renew_deadline", "retry_period", "max_sessions", "claim_batch"],
    ]

    /// Top-level arrays of tables (the declared world).
    static let worldTables = ["users", "sessions"]

    /// Parses and validates a whole config document. Absent keys take their
    /// defaults; unknown keys, wrong types and out-of-range values are errors.
    ///
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - file: the file's name, used in messages only.
    /// - Throws: `ConfigError` listing every problem, with line numbers where known.
    /// - Parameter fileProblem: checks a file the config names (`tls.ca_file`):
    ///   nil when it is usable, else why not. The shell passes the check that
    ///   reads the file, so that its problem is reported with the others, at
    ///   its line; this core reads no files.
    public static func parse(
        _ text: String, file: String, fileProblem: ((String) -> String?)? = nil
    ) throws(ConfigError) -> DaemonConfig {
        if text.utf8.contains(0) {
            throw ConfigError(
                file: file,
                issues: [
                    ConfigIssue(keyPath: "", line: nil, message: "the file contains a NUL byte; is it a text file?")
                ])
        }
        let root = try syntax(text, file: file)

        let reader = SchemaReader(locator: KeyLocator(source: text))
        let document = SchemaReader.Table(reader: reader, table: root, path: "")
        document.rejectUnknownKeys((schema.keys + worldTables).sorted())
        var config = DaemonConfig()
        let defaults = DaemonConfig()

        let log = document.table("log")
        log.rejectUnknownKeys(schema["log"]!)
        config.log.level = log.value("level", default: defaults.log.level, Decode.oneOf(LogLevel.self))
        config.log.target = log.value("target", default: defaults.log.target, Decode.oneOf(LogTarget.self))

        let daemon = document.table("daemon")
        daemon.rejectUnknownKeys(schema["daemon"]!)
        config.daemon.stopTimeout = daemon.value(
            "stop_timeout", default: defaults.daemon.stopTimeout,
            Decode.duration(min: .milliseconds(1), allowZero: false, max: .seconds(600)))
        config.daemon.stateDirectory = daemon.value(
            "state_directory", default: defaults.daemon.stateDirectory, Decode.absolutePath(allowEmpty: true))

        let ws = document.table("websocket")
        ws.rejectUnknownKeys(schema["websocket"]!)
        let w = defaults.websocket
        let timeout = Decode.duration(min: .milliseconds(1), allowZero: false, max: .seconds(3600))
        config.websocket.connectTimeout = ws.value("connect_timeout", default: w.connectTimeout, timeout)
        config.websocket.handshakeTimeout = ws.value("handshake_timeout", default: w.handshakeTimeout, timeout)
        config.websocket.idleTimeout = ws.value("idle_timeout", default: w.idleTimeout, timeout)
        let issuesBefore = reader.issues.count
        config.websocket.keepaliveInterval = ws.value(
            "keepalive_interval", default: w.keepaliveInterval,
            Decode.duration(min: .milliseconds(100), allowZero: true, max: .seconds(3600)))
        let keepaliveRead = reader.issues.count == issuesBefore
        if ws.table?["keepalive_interval"] == nil {
            // The default keeps below a shorter idle timeout by itself (off
            // when half of it would be under the 100 ms any ping interval needs).
            let half = config.websocket.idleTimeout / 2
            config.websocket.keepaliveInterval =
                half < .milliseconds(100) ? .zero : min(w.keepaliveInterval, half)
        } else if keepaliveRead, config.websocket.keepaliveInterval >= config.websocket.idleTimeout {
            ws.reader.report(
                ws.keyPath("keepalive_interval"),
                "keepalive_interval (\(Units.format(config.websocket.keepaliveInterval))) must be shorter than idle_timeout (\(Units.format(config.websocket.idleTimeout))): the server's pong is what keeps a quiet connection inside it"
            )
        }
        config.websocket.connectRetryInterval = ws.value(
            "connect_retry_interval", default: w.connectRetryInterval,
            Decode.duration(
                min: RecordSettings.connectRetryIntervalBounds.lowerBound, allowZero: false,
                max: RecordSettings.connectRetryIntervalBounds.upperBound))
        config.websocket.closeTimeout = ws.value("close_timeout", default: w.closeTimeout, timeout)
        let maxSize: Int64 = 1 << 30
        config.websocket.maxFrameSize = ws.value(
            "max_frame_size", default: w.maxFrameSize, Decode.size(min: 125, max: maxSize))
        config.websocket.maxMessageSize = ws.value(
            "max_message_size", default: w.maxMessageSize, Decode.size(min: 125, max: maxSize))
        config.websocket.fragmentSize = ws.value(
            "fragment_size", default: w.fragmentSize, Decode.size(min: 1, max: maxSize))
        config.websocket.sendQueueLimit = ws.value(
            "send_queue_limit", default: w.sendQueueLimit, Decode.size(min: 1 << 10, max: maxSize))

        config.websocket.inboundQueueMessages = ws.value(
            "inbound_queue_messages", default: w.inboundQueueMessages, Decode.integer(1...10_000_000))
        config.websocket.inboundQueueSize = ws.value(
            "inbound_queue_size", default: w.inboundQueueSize, Decode.size(min: 1 << 10, max: 4 << 30))
        config.websocket.floodPolicy = ws.value("flood_policy", default: w.floodPolicy, Decode.oneOf(FloodPolicy.self))
        config.websocket.compression = ws.value("compression", default: w.compression, Decode.compression)

        let security = document.table("security")
        security.rejectUnknownKeys(schema["security"]!)
        // Every bad entry of a list is reported, not only the first.
        config.security.allowedURLHosts = reader.list(
            security, "allowed_url_hosts", default: defaults.security.allowedURLHosts, Self.allowedHost)
        config.security.allowedNetworks = reader.list(
            security, "allowed_networks", default: defaults.security.allowedNetworks, Self.network)
        config.security.deniedNetworks = reader.list(
            security, "denied_networks", default: defaults.security.deniedNetworks, Self.network)
        config.security.consentTimeout = security.value(
            "consent_timeout", default: defaults.security.consentTimeout,
            Decode.duration(min: .seconds(1), allowZero: true, max: .seconds(86_400)))

        let limits = document.table("limits")
        limits.rejectUnknownKeys(schema["limits"]!)
        let count = Decode.integer(0...10_000_000, zeroIsOff: true)
        config.limits.sendsPerSecond = limits.value("sends_per_second", default: defaults.limits.sendsPerSecond, count)
        config.limits.framesPerMessage = limits.value(
            "frames_per_message", default: defaults.limits.framesPerMessage, Decode.integer(1...1 << 30))
        config.limits.inboundBudget = limits.value(
            "inbound_budget", default: defaults.limits.inboundBudget, Decode.size(min: 1 << 20, max: 1 << 40))
        let l = defaults.limits
        config.limits.recordsPerSession = limits.value("records_per_session", default: l.recordsPerSession, count)
        config.limits.connectionsPerUser = limits.value("connections_per_user", default: l.connectionsPerUser, count)
        config.limits.connectionsPerSession = limits.value(
            "connections_per_session", default: l.connectionsPerSession, count)
        config.limits.connectAttemptsPerSecond = limits.value(
            "connect_attempts_per_second", default: l.connectAttemptsPerSecond, count)
        config.limits.connectAttemptsPerDestination = limits.value(
            "connect_attempts_per_destination", default: l.connectAttemptsPerDestination, count)

        let tls = document.table("tls")
        tls.rejectUnknownKeys(schema["tls"]!)
        config.tls.caFile = tls.value("ca_file", default: defaults.tls.caFile, Decode.absolutePath(allowEmpty: true))
        if !config.tls.caFile.isEmpty, config.tls.caFile.hasPrefix("/"), let fileProblem,
            let problem = fileProblem(config.tls.caFile)
        {
            reader.report(tls.keyPath("ca_file"), problem)
        }

        let control = document.table("control")
        control.rejectUnknownKeys(schema["control"]!)
        let c = defaults.control
        config.control.socket = control.value("socket", default: c.socket, Decode.absolutePath(allowEmpty: false))
        config.control.socketMode = control.value("socket_mode", default: c.socketMode) { raw in
            guard let text = raw.string, text.count >= 3, text.count <= 4, let mode = UInt32(text, radix: 8),
                mode <= 0o777
            else {
                return .failure(SchemaReader.Expected(what: "an octal mode string such as \"0660\""))
            }
            return .success(mode)
        }
        config.control.group = control.value("group", default: c.group) { raw in
            guard let text = raw.string else { return .failure(SchemaReader.Expected(what: "a group name")) }
            return .success(text)
        }
        config.control.maxClients = control.value("max_clients", default: c.maxClients, Decode.integer(1...10_000))
        config.control.operatorReserve = control.value(
            "operator_reserve", default: min(c.operatorReserve, config.control.maxClients / 4),
            Decode.integer(0...10_000))
        if config.control.operatorReserve >= config.control.maxClients, control.table?["operator_reserve"] != nil {
            control.reader.report(
                control.keyPath("operator_reserve"),
                "must be less than max_clients (\(config.control.maxClients)): the rest is what other users may use")
        }
        config.control.maxClientsPerUID = control.value(
            "max_clients_per_uid", default: c.maxClientsPerUID, Decode.integer(1...10_000))
        config.control.maxRequestSize = control.value(
            "max_request_size", default: c.maxRequestSize, Decode.size(min: 1 << 10, max: 64 << 20))
        config.control.clientBuffer = control.value(
            "client_buffer", default: c.clientBuffer, Decode.size(min: 64 << 10, max: 1 << 30))
        config.control.eventHistory = control.value(
            "event_history", default: c.eventHistory, Decode.integer(1...10_000_000))

        config.control.eventHistorySize = control.value(
            "event_history_size", default: c.eventHistorySize, Decode.size(min: 64 << 10, max: 64 << 30))

        let metrics = document.table("metrics")
        metrics.rejectUnknownKeys(schema["metrics"]!)
        config.metrics.listen = metrics.value("listen", default: defaults.metrics.listen) { raw in
            guard let text = raw.string else {
                return .failure(SchemaReader.Expected(what: "an address such as \"127.0.0.1:9464\" or a port"))
            }
            if text.isEmpty { return .success(nil) }
            guard let endpoint = Endpoint.parse(text) else {
                return .failure(
                    SchemaReader.Expected(
                        what:
                            "\"\(text)\" is not an address to listen on; write \"127.0.0.1:9464\", \"[::1]:9464\" or a port (loopback)",
                        showFound: false))
            }
            return .success(endpoint)
        }

        config.fleet = Self.fleet(document.table("fleet"), defaults: defaults.fleet)

        config.world = DeclaredWorld.read(document, defaults: config.websocket)

        guard reader.issues.isEmpty else {
            // File order (stable: issues without a line keep their place at the end).
            let ordered = reader.issues.enumerated().sorted { a, b in
                (a.element.line ?? Int.max, a.offset) < (b.element.line ?? Int.max, b.offset)
            }.map(\.element)
            throw ConfigError(file: file, issues: ordered)
        }
        return config
    }

    /// The TOML document, or its syntax error with line and column.
    private static func syntax(_ text: String, file: String) throws(ConfigError) -> TOMLTable {
        switch TOMLSyntax.parse(text.utf8) {
        case .success(let root):
            return root
        case .failure(let failure):
            throw ConfigError(
                file: file,
                issues: [
                    ConfigIssue(
                        keyPath: "", line: failure.line, column: failure.column,
                        message: "TOML syntax error: \(failure.message)")
                ])
        }
    }

    private static func fleet(_ table: SchemaReader.Table, defaults f: Fleet) -> Fleet {
        table.rejectUnknownKeys(schema["fleet"]!)
        var fleet = f
        fleet.database = table.value("database", default: f.database) { raw in
            guard let text = raw.string else {
                return .failure(SchemaReader.Expected(what: "a libpq connection string"))
            }
            if let problem = Fleet.databaseProblem(text) {
                return .failure(SchemaReader.Expected(what: problem, showFound: false))
            }
            return .success(text)
        }
        fleet.hostID = table.value("host_id", default: f.hostID) { raw in
            guard let text = raw.string, text.isEmpty || Fleet.isHostID(text) else {
                return .failure(
                    SchemaReader.Expected(
                        what: "a name of 1 to 63 letters, digits, '.', '-' or '_' (empty: the machine's host name)"))
            }
            return .success(text)
        }
        let before = table.reader.issues.count
        let duration = Decode.duration(min: .milliseconds(100), allowZero: false, max: .seconds(3600))
        fleet.timing.lease = table.value("lease", default: f.timing.lease, duration)
        fleet.timing.renewDeadline = table.value("renew_deadline", default: f.timing.renewDeadline, duration)
        fleet.timing.retryPeriod = table.value("retry_period", default: f.timing.retryPeriod, duration)
        if table.reader.issues.count == before, let problem = fleet.timing.problem {
            let key = table.table?["retry_period"] != nil && problem.hasPrefix("retry") ? "retry_period" : "lease"
            table.reader.report(table.keyPath(key), problem)
        }
        fleet.maxSessions = table.value(
            "max_sessions", default: f.maxSessions, Decode.integer(0...10_000_000, zeroIsOff: true))
        fleet.claimBatch = table.value("claim_batch", default: f.claimBatch, Decode.integer(1...100_000))
        return fleet
    }

    static func network(_ text: String) -> Result<IPNetwork, SchemaReader.Expected> {
        guard let network = IPNetwork(text) else {
            return .failure(
                SchemaReader.Expected(
                    what:
                        "\"\(text)\" is not a network; write an address with a prefix length, such as \"10.0.0.0/8\" or \"fd00::/8\"",
                    showFound: false))
        }
        return .success(network)
    }

    static func allowedHost(_ text: String) -> Result<AllowedHost, SchemaReader.Expected> {
        switch AllowedHost.parse(text) {
        case .success(let entry):
            return .success(entry)
        case .failure(let error):
            let what: String
            switch error {
            case .empty: what = "an empty entry; expected \"host:port\" or a ws:// or wss:// URL"
            case .missingPort: what = "no port; write \"host:port\" (the port is required), or a ws:// or wss:// URL"
            case .badPort(let port): what = "\"\(port)\" is not a port (1-65535)"
            case .badHost(let host): what = "\"\(host)\" is not a host name or IP address"
            case .unsupportedScheme(let scheme): what = "scheme \"\(scheme)\" is not ws or wss"
            }
            return .failure(SchemaReader.Expected(what: what, showFound: false))
        }
    }
}
