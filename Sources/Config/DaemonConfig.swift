import FleetCore
import WebSocketProtocol
import World

/// The daemon's configuration: what `config/wshostd.toml` can say, with the
/// defaults that apply when a key is absent. A value type; the daemon builds a
/// new one on reload and swaps it in only when the whole file is valid.
public struct DaemonConfig: Equatable, Sendable {
    public var log = Log()
    public var daemon = Daemon()
    public var websocket = WebSocket()
    public var security = Security()
    public var tls = TLS()
    public var control = Control()
    public var limits = Limits()
    public var metrics = Metrics()
    public var fleet = Fleet()
    /// The world declared in the file: users, sessions, objects, records, reactions.
    public var world = DeclaredWorld()

    public init() {}

    /// `[log]`
    public struct Log: Equatable, Sendable {
        /// Lowest level written.
        public var level: LogLevel = .info
        /// Where log entries go.
        public var target: LogTarget = .auto
    }

    /// `[daemon]`
    public struct Daemon: Equatable, Sendable {
        /// How long a stop waits for servers to answer the Close handshake
        /// before the remaining sockets are shut down (SPEC §8 Stop).
        public var stopTimeout: Duration = .seconds(5)
        /// Where the state store (`state.sqlite`) lives.
        /// Empty: `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`), else
        /// /var/lib/wshostd.
        public var stateDirectory: String = ""
    }

    /// `[websocket]`: defaults for every WebSocket Client record (SPEC §2, §7).
    public struct WebSocket: Equatable, Sendable {
        public init() {}

        public var connectTimeout: Duration = .seconds(10)
        public var handshakeTimeout: Duration = .seconds(10)
        /// No inbound frame of any kind for this long closes the connection.
        public var idleTimeout: Duration = .seconds(60)
        /// Client pings at this interval; zero means off (the reference has none).
        public var keepaliveInterval: Duration = .seconds(25)
        /// The record's default `ConnectRetryInterval` (the record's own default).
        public var connectRetryInterval: Duration = RecordSettings().connectRetryInterval
        /// How long to wait for the server's Close and TCP close after ours.
        public var closeTimeout: Duration = .seconds(5)
        // The protocol core's own limits are the defaults.
        public var maxFrameSize = Int64(ClientConnection.Configuration().maxFrameSize)
        public var maxMessageSize = Int64(ClientConnection.Configuration().maxMessageSize)
        /// Outgoing messages are split into frames of at most this payload size.
        public var fragmentSize = Int64(ClientConnection.Configuration().fragmentSize)
        /// Bytes queued for sending per connection before senders see backpressure.
        public var sendQueueLimit: Int64 = 16 << 20
        /// Received messages waiting for delivery per record before the flood policy applies.
        public var inboundQueueMessages = 10_000
        /// Received bytes waiting for delivery per record before the flood policy applies.
        public var inboundQueueSize: Int64 = 64 << 20
        /// What a flood does: close the connection with 1008, or drop the oldest messages.
        public var floodPolicy: FloodPolicy = .close
        /// permessage-deflate to offer (RFC 7692); nil: none ("off").
        public var compression: DeflateOffer? = nil
    }

    /// `[security]`: the host-access model (SPEC §4).
    public struct Security: Equatable, Sendable {
        /// Hosts every user may connect to without a prompt.
        public var allowedURLHosts: [AllowedHost] = []
        /// How long a consent prompt waits for an answer; zero means forever
        /// (the reference has no timeout). A timeout counts as "ignore".
        public var consentTimeout: Duration = .zero
        /// Networks records may reach although they are denied by default
        /// (loopback, private, link-local, …; `NetworkPolicy`).
        public var allowedNetworks: [IPNetwork] = []
        /// Networks records never reach, whatever else allows them.
        public var deniedNetworks: [IPNetwork] = []
    }
}

extension DaemonConfig {
    /// `[metrics]`: the Prometheus endpoint (docs/operations.md).
    public struct Metrics: Equatable, Sendable {
        /// Where `GET /metrics` is served; nil: no listener (the metrics are
        /// still read through `wshostctl metrics`).
        public var listen: Endpoint?
    }

    /// A numeric IP address and a TCP port to listen on.
    public struct Endpoint: Equatable, Sendable, CustomStringConvertible {
        /// Dotted quad or IPv6 text, without brackets.
        public var host: String
        public var port: UInt16

        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
        }

        /// "127.0.0.1:9464", "[::1]:9464".
        public var description: String { HostPort.text(host: host, port: port) }

        /// Reads "host:port", "[v6]:port" or a bare port (which means loopback:
        /// metrics are not for the whole network unless the operator says so).
        public static func parse(_ text: String) -> Endpoint? {
            if let port = UInt16(text), port > 0 { return Endpoint(host: "127.0.0.1", port: port) }
            let host: Substring
            let portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                    return nil
                }
                host = text[text.index(after: text.startIndex)..<close]
                portText = text[text.index(close, offsetBy: 2)...]
                guard IPAddress.parseIPv6(host) != nil else { return nil }
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
                guard IPAddress.parseDottedQuad(host) != nil else { return nil }
            }
            // Port 0 (any free port, which the daemon logs) only with an address.
            guard let port = UInt16(portText) else { return nil }
            return Endpoint(host: String(host), port: port)
        }
    }

    /// `[control]`: the control socket `wshostctl` talks to.
    public struct Control: Equatable, Sendable {
        /// The socket's path (unused when systemd passes the socket).
        public var socket: String = "/run/wshostd/control.sock"
        /// The socket file's permission bits.
        public var socketMode: UInt32 = 0o660
        /// The group that owns the socket and may operate the daemon; empty: none
        /// (root and the daemon's own user only).
        public var group: String = ""
        /// Connections served at once; more are refused with too_many_clients.
        public var maxClients = 256
        /// Of `maxClients`, connections only operators may take: local users
        /// who are not operators can never lock operators out.
        public var operatorReserve = 32
        /// Connections one local user who is not an operator may hold at once.
        public var maxClientsPerUID = 16
        /// Longest request line.
        public var maxRequestSize: Int64 = 64 << 10
        /// Bytes queued for a client that does not read; past this it is dropped.
        public var clientBuffer: Int64 = 4 << 20
        /// Events kept for subscribers resuming with `since`.
        public var eventHistory = 10_000
        /// Bytes the kept events may hold (about their lines' length).
        public var eventHistorySize: Int64 = 64 << 20
    }

    /// `[limits]`: what one record, one server or all of them together may
    /// cost (docs/security.md).
    public struct Limits: Equatable, Sendable {
        public init() {}

        /// Sends per second per record (reactions and `ws send`); 0 is no limit.
        public var sendsPerSecond = 1_000
        /// Frames in one incoming message (→ 1008).
        public var framesPerMessage = ClientConnection.Configuration().maxMessageFrames
        /// Inbound bytes all records together may hold (partial messages and
        /// messages waiting for delivery); past it the record that asks for
        /// more is closed with 1008.
        public var inboundBudget: Int64 = 512 << 20
        /// Records one session may hold; 0 is no limit.
        public var recordsPerSession = 20_000
        /// Connections one handling user may have at once (the session's host
        /// is not counted against it); 0 is no limit.
        public var connectionsPerUser = 100
        /// Connections one session may have at once; 0 is no limit.
        public var connectionsPerSession = 0
        /// Connection attempts per second, in all and to one host:port; an
        /// attempt over the pace waits its turn. 0 is no limit.
        public var connectAttemptsPerSecond = 1_000
        public var connectAttemptsPerDestination = 100
    }

    /// `[fleet]`: several hosts sharing sessions through PostgreSQL (docs/fleet.md).
    public struct Fleet: Equatable, Sendable {
        /// A libpq connection string or URI ("service=wshostd",
        /// "host=db.example port=5432 dbname=wshostd"); empty: no fleet. Never a
        /// password: libpq reads it from a password file or a service file.
        public var database: String = ""
        /// This host's name in the fleet; empty: the machine's host name.
        public var hostID: String = ""
        public var timing = FleetTiming()
        /// Sessions this host holds at most; 0 is no limit.
        public var maxSessions = 0
        /// Sessions claimed per round at most: the pace of a takeover.
        public var claimBatch = 50

        public var enabled: Bool { !database.isEmpty }
    }

    /// `[tls]`: settings for `wss://` connections.
    public struct TLS: Equatable, Sendable {
        /// Extra trusted CA certificates (PEM file), added to the system trust
        /// store; empty for the system store only.
        public var caFile: String = ""
    }
}

/// `[websocket] flood_policy`.
public enum FloodPolicy: String, CaseIterable, Sendable {
    case close
    case dropOldest = "drop-oldest"
}

/// Log levels, as named in the config file (swift-log's levels).
public enum LogLevel: String, CaseIterable, Sendable {
    case trace, debug, info, notice, warning, error, critical
}

/// Where the daemon logs.
public enum LogTarget: String, CaseIterable, Sendable {
    /// journald when started by systemd (`JOURNAL_STREAM` set), stderr otherwise.
    case auto
    /// Always journald (`sd_journal_sendv`), with structured fields.
    case journald
    /// Always readable lines on stderr.
    case stderr
}

extension DaemonConfig.Fleet {
    /// Why `text` cannot be the database setting, or nil. A password in the
    /// config file would be readable by everyone who may read the file (and
    /// end up in backups and package diffs): libpq reads it from a password
    /// file (~/.pgpass, PGPASSFILE, passfile=) or a service file instead.
    public static func databaseProblem(_ text: String) -> String? {
        let lowered = text.lowercased()
        if lowered.hasPrefix("postgresql://") || lowered.hasPrefix("postgres://") {
            let rest = lowered.drop { $0 != "/" }.dropFirst(2)
            let authority = rest.prefix { $0 != "/" && $0 != "?" }
            if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") {
                return "a password in the URI; put it in a password file (passfile=, PGPASSFILE or ~/.pgpass)"
            }
            if lowered.contains("password=") {
                return "a password parameter; put it in a password file (passfile=, PGPASSFILE or ~/.pgpass)"
            }
            return nil
        }
        // key = value pairs: a keyword "password" anywhere (spaces around '=' allowed).
        let bytes = Array(lowered.utf8)
        let word = Array("password".utf8)
        var index = 0
        while index + word.count <= bytes.count {
            defer { index += 1 }
            guard bytes[index..<index + word.count].elementsEqual(word) else { continue }
            guard index == 0 || bytes[index - 1] == 0x20 || bytes[index - 1] == 0x09 else { continue }
            var next = index + word.count
            while next < bytes.count, bytes[next] == 0x20 || bytes[next] == 0x09 { next += 1 }
            if next < bytes.count, bytes[next] == UInt8(ascii: "=") {
                return "a password keyword; put it in a password file (passfile=, PGPASSFILE or ~/.pgpass)"
            }
        }
        return nil
    }

    /// 1 to 63 of [A-Za-z0-9._-].
    public static func isHostID(_ text: String) -> Bool {
        (1...63).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2E || byte == 0x2D || byte == 0x5F
            }
    }
}
