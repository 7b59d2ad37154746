import FleetCore
import Foundation
import Testing
import WebSocketProtocol

@testable import Config

/// The shipped example, found relative to this source file.
let exampleConfigPath = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("config/wshostd.toml").path

@Suite("DaemonConfig.parse: the TOML schema (SPEC §8)")
struct ConfigParserTests {
    @Test("an empty file gives every default")
    func emptyFile() throws {
        #expect(try DaemonConfig.parse("", file: "empty.toml") == DaemonConfig())
    }

    @Test("keepalive is on by default, below the idle timeout even when that is set shorter")
    func keepaliveDefault() throws {
        #expect(DaemonConfig().websocket.keepaliveInterval == .seconds(25))
        let short = try DaemonConfig.parse("[websocket]\nidle_timeout = \"20s\"\n", file: "k.toml")
        #expect(short.websocket.keepaliveInterval == .seconds(10))
        let off = try DaemonConfig.parse("[websocket]\nkeepalive_interval = \"0s\"\n", file: "k.toml")
        #expect(off.websocket.keepaliveInterval == .zero)
        // Half of a very short idle timeout is under the 100 ms floor: off.
        let tiny = try DaemonConfig.parse("[websocket]\nidle_timeout = \"150ms\"\n", file: "k.toml")
        #expect(tiny.websocket.keepaliveInterval == .zero)
        // A keepalive that does not read is one problem, not two.
        do {
            _ = try DaemonConfig.parse("[websocket]\nidle_timeout = \"20s\"\nkeepalive_interval = 5\n", file: "k.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.issues.count == 1, "\(error.description)")
        }
    }

    @Test("the shipped example lists every key, each with its default")
    func exampleIsDefaults() throws {
        let text = try String(contentsOfFile: exampleConfigPath, encoding: .utf8)
        #expect(try DaemonConfig.parse(text, file: exampleConfigPath) == DaemonConfig())
        for (table, keys) in DaemonConfig.schema {
            #expect(text.contains("[\(table)]\n"), "example lacks [\(table)]")
            for key in keys {
                #expect(text.contains("\n\(key) = "), "example lacks \(table).\(key)")
            }
        }
    }

    @Test("every value can be set")
    func everyValue() throws {
        let config = try DaemonConfig.parse(
            """
            [log]
            level = "debug"
            target = "journald"
            [daemon]
            stop_timeout = "2s"
            [websocket]
            connect_timeout = "3s"
            handshake_timeout = "4s"
            idle_timeout = "30s"
            keepalive_interval = "15s"
            connect_retry_interval = "500ms"
            close_timeout = "1s"
            max_frame_size = "1MiB"
            max_message_size = "4MiB"
            fragment_size = "16KiB"
            send_queue_limit = "2MiB"
            inbound_queue_messages = 500
            inbound_queue_size = "1MiB"
            flood_policy = "drop-oldest"
            [security]
            allowed_url_hosts = ["localhost:8080", "wss://echo.example:443", "ws://[::1]"]
            consent_timeout = "1m"
            [tls]
            ca_file = "/etc/wshostd/ca.pem"
            """, file: "all.toml")
        #expect(config.log.level == .debug)
        #expect(config.log.target == .journald)
        #expect(config.daemon.stopTimeout == .seconds(2))
        #expect(config.websocket.connectTimeout == .seconds(3))
        #expect(config.websocket.handshakeTimeout == .seconds(4))
        #expect(config.websocket.idleTimeout == .seconds(30))
        #expect(config.websocket.keepaliveInterval == .seconds(15))
        #expect(config.websocket.connectRetryInterval == .milliseconds(500))
        #expect(config.websocket.closeTimeout == .seconds(1))
        #expect(config.websocket.maxFrameSize == 1 << 20)
        #expect(config.websocket.maxMessageSize == 4 << 20)
        #expect(config.websocket.fragmentSize == 16 << 10)
        #expect(config.websocket.sendQueueLimit == 2 << 20)
        #expect(config.websocket.inboundQueueMessages == 500)
        #expect(config.websocket.inboundQueueSize == 1 << 20)
        #expect(config.websocket.floodPolicy == .dropOldest)
        #expect(
            config.security.allowedURLHosts == [
                AllowedHost(host: "localhost", port: 8080), AllowedHost(host: "echo.example", port: 443),
                AllowedHost(host: "::1", port: 80),
            ])
        #expect(config.security.consentTimeout == .seconds(60))
        #expect(config.tls.caFile == "/etc/wshostd/ca.pem")
    }

    /// Bad files and the exact messages they produce: file, line, key path, expectation.
    @Test(
        "bad files give one exact message per problem",
        arguments: [
            (
                "[log]\nlevel = \"loud\"\n",
                "bad.toml:2: log.level: expected one of \"trace\", \"debug\", \"info\", \"notice\", \"warning\", \"error\", \"critical\", found \"loud\""
            ),
            (
                "[websocket]\n# comment\nidle_timeout = 60\n",
                "bad.toml:3: websocket.idle_timeout: expected a duration such as \"60s\", \"250ms\" or \"1m30s\", found integer 60"
            ),
            (
                "[websocket]\nidle_timeot = \"60s\"\n",
                "bad.toml:2: websocket.idle_timeot: unknown key; did you mean 'idle_timeout'?"
            ),
            (
                "[websoket]\nidle_timeout = \"60s\"\n",
                "bad.toml:1: websoket: unknown key; did you mean 'websocket'?"
            ),
            (
                "[frobnicate]\n",
                "bad.toml:1: frobnicate: unknown key (known keys: control, daemon, fleet, limits, log, metrics, security, sessions, tls, users, websocket)"
            ),
            (
                "[websocket]\nmax_frame_size = \"16MB\"\n",
                "bad.toml:2: websocket.max_frame_size: expected a size such as \"16MiB\", \"64KiB\" or \"512B\", found \"16MB\""
            ),
            (
                "[websocket]\nmax_frame_size = \"2GiB\"\n",
                "bad.toml:2: websocket.max_frame_size: expected a size between 125B and 1GiB, found \"2GiB\""
            ),
            (
                "[websocket]\nconnect_timeout = \"0s\"\n",
                "bad.toml:2: websocket.connect_timeout: expected at least 1ms, found \"0s\""
            ),
            (
                "[websocket]\nkeepalive_interval = \"10ms\"\n",
                "bad.toml:2: websocket.keepalive_interval: expected 0s (off) or at least 100ms, found \"10ms\""
            ),
            (
                "[security]\nallowed_url_hosts = [\n  \"localhost:8080\",\n  \"example.com\",\n]\n",
                "bad.toml:2: security.allowed_url_hosts: element 1 (\"example.com\"): no port; write \"host:port\" (the port is required), or a ws:// or wss:// URL"
            ),
            (
                "[security]\nallowed_url_hosts = \"localhost:80\"\n",
                "bad.toml:2: security.allowed_url_hosts: expected an array of strings, found \"localhost:80\""
            ),
            (
                "[security]\nallowed_url_hosts = [80]\n",
                "bad.toml:2: security.allowed_url_hosts: expected element 0 to be a string, found integer 80"
            ),
            ("log = \"debug\"\n", "bad.toml:1: log: expected a table ([log]), found \"debug\""),
            (
                "[websocket]\nflood_policy = \"panic\"\n",
                "bad.toml:2: websocket.flood_policy: expected one of \"close\", \"drop-oldest\", found \"panic\""
            ),
            (
                "[websocket]\nidle_timeout = \"30s\"\nkeepalive_interval = \"30s\"\n",
                "bad.toml:3: websocket.keepalive_interval: keepalive_interval (30s) must be shorter than idle_timeout (30s): the server's pong is what keeps a quiet connection inside it"
            ),
            (
                "[control]\nmax_clients = 10\noperator_reserve = 10\n",
                "bad.toml:3: control.operator_reserve: must be less than max_clients (10): the rest is what other users may use"
            ),
            (
                "[metrics]\nlisten = \"localhost:9464\"\n",
                "bad.toml:2: metrics.listen: \"localhost:9464\" is not an address to listen on; write \"127.0.0.1:9464\", \"[::1]:9464\" or a port (loopback)"
            ),
            (
                "[fleet]\ndatabase = \"host=db user=w password=secret\"\n",
                "bad.toml:2: fleet.database: a password keyword; put it in a password file (passfile=, PGPASSFILE or ~/.pgpass)"
            ),
            (
                "[fleet]\ndatabase = \"postgresql://w:secret@db/fleet\"\n",
                "bad.toml:2: fleet.database: a password in the URI; put it in a password file (passfile=, PGPASSFILE or ~/.pgpass)"
            ),
            (
                "[fleet]\nlease = \"11s\"\n",
                "bad.toml:2: fleet.lease: lease must exceed renew_deadline by at least 2s (the time to close sockets, and a margin)"
            ),
            (
                "[fleet]\nretry_period = \"6s\"\n",
                "bad.toml:2: fleet.retry_period: retry_period must be at most half of renew_deadline (two renewals before the deadline)"
            ),
            (
                "[fleet]\nhost_id = \"a b\"\n",
                "bad.toml:2: fleet.host_id: expected a name of 1 to 63 letters, digits, '.', '-' or '_' (empty: the machine's host name), found \"a b\""
            ),
            (
                "[metrics]\nlisten = 9464\n",
                "bad.toml:2: metrics.listen: expected an address such as \"127.0.0.1:9464\" or a port, found integer 9464"
            ),
            ("[tls]\nca_file = \"ca.pem\"\n", "bad.toml:2: tls.ca_file: expected an absolute path, found \"ca.pem\""),
            (
                "[log]\nlevel = \"info\"\nlevel = \"debug\"\n",
                "bad.toml:3:9: TOML syntax error: Error while parsing key-value pair: cannot redefine existing string 'level'"
            ),
            ("[log\n", "bad.toml:1:5: TOML syntax error: Error while parsing table header: expected ']', saw '\\n'"),
            (
                "log.level = \"debug\"\nlog.target = 3\n",
                "bad.toml:2: log.target: expected one of \"auto\", \"journald\", \"stderr\", found integer 3"
            ),
        ])
    func badFile(text: String, message: String) {
        #expect(throws: ConfigError.self) { try DaemonConfig.parse(text, file: "bad.toml") }
        do {
            _ = try DaemonConfig.parse(text, file: "bad.toml")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test("[fleet]: off by default; a connection string without a password, timing that fences before the lease ends")
    func fleet() throws {
        #expect(try DaemonConfig.parse("", file: "f").fleet.enabled == false)
        let config = try DaemonConfig.parse(
            """
            [fleet]
            database = "service=wshostd passfile=/etc/wshostd/pgpass"
            host_id = "h-1.example"
            lease = "6s"
            renew_deadline = "4s"
            retry_period = "1s"
            max_sessions = 100
            claim_batch = 5
            """, file: "f")
        #expect(config.fleet.enabled)
        #expect(config.fleet.database == "service=wshostd passfile=/etc/wshostd/pgpass")
        #expect(config.fleet.hostID == "h-1.example")
        #expect(
            config.fleet.timing == FleetTiming(lease: .seconds(6), renewDeadline: .seconds(4), retryPeriod: .seconds(1))
        )
        #expect(config.fleet.maxSessions == 100)
        #expect(config.fleet.claimBatch == 5)
        // "passfile" and a user named "password" are not passwords.
        #expect(DaemonConfig.Fleet.databaseProblem("user=password passfile=/x") == nil)
        #expect(DaemonConfig.Fleet.databaseProblem("postgresql://password@db/x") == nil)
        #expect(DaemonConfig.Fleet.databaseProblem("host=db password =x") != nil)
        #expect(DaemonConfig.Fleet.databaseProblem("postgres://db/x?password=y") != nil)
    }

    @Test("[metrics] listen: off by default; an address, an IPv6 address in brackets, or a port on loopback")
    func metricsListen() throws {
        #expect(try DaemonConfig.parse("", file: "m.toml").metrics.listen == nil)
        #expect(try DaemonConfig.parse("[metrics]\nlisten = \"\"\n", file: "m.toml").metrics.listen == nil)
        let cases: [(String, DaemonConfig.Endpoint?)] = [
            ("9464", .init(host: "127.0.0.1", port: 9464)),
            ("0.0.0.0:9464", .init(host: "0.0.0.0", port: 9464)),
            ("[::1]:9100", .init(host: "::1", port: 9100)),
            ("127.0.0.1:0", .init(host: "127.0.0.1", port: 0)),
            ("0", nil), ("65536", nil), ("::1:9100", nil), ("[::1]9100", nil), ("[nothost]:1", nil),
            ("host:80", nil), ("127.0.0.1:", nil), ("127.0.0.1:http", nil), ("", nil),
        ]
        for (text, expected) in cases {
            #expect(DaemonConfig.Endpoint.parse(text) == expected, "\(text)")
        }
        #expect(DaemonConfig.Endpoint(host: "::1", port: 9100).description == "[::1]:9100")
    }

    @Test("[websocket] compression: off by default, \"on\" without context takeover, or an offer as written")
    func compression() throws {
        func parsed(_ value: String) throws -> DeflateOffer? {
            try DaemonConfig.parse("[websocket]\ncompression = \"\(value)\"\n", file: "c.toml").websocket.compression
        }
        #expect(try DaemonConfig.parse("", file: "c.toml").websocket.compression == nil)
        #expect(try parsed("off") == nil)
        #expect(try parsed("on") == DeflateOffer.noContextTakeover)
        #expect(
            try parsed("permessage-deflate; client_max_window_bits; server_max_window_bits=10")
                == DeflateOffer(clientMaxWindowBits: 15, serverMaxWindowBits: 10))
        let bad: [(String, String)] = [
            ("yes", "unknown extension \"yes\" (only permessage-deflate is known)"),
            (
                "permessage-deflate; server_max_window_bits=16",
                "invalid permessage-deflate parameter server_max_window_bits=16"
            ),
            (
                "x-webkit-deflate-frame",
                "unknown extension \"x-webkit-deflate-frame\" (only permessage-deflate is known)"
            ),
            ("permessage-deflate;", "malformed extension list \"permessage-deflate;\""),
            ("permessage-deflate; level=9", "unknown permessage-deflate parameter \"level\""),
        ]
        for (value, reason) in bad {
            do {
                _ = try parsed(value)
                Issue.record("accepted \(value)")
            } catch {
                #expect(
                    "\(error)"
                        == "c.toml:2: websocket.compression: expected \"off\", \"on\" or an offer such as \"permessage-deflate; server_max_window_bits=10\", found \"\(value)\": \(reason)"
                )
            }
        }
        #expect(DeflateOffer.describe(nil) == "off" && DeflateOffer.describe(.noContextTakeover) == "on")
    }

    @Test("all problems of a file are reported together, in file order")
    func severalProblems() {
        let text = """
            [log]
            level = "loud"
            [websocket]
            idle_timeout = "forever"
            bogus = 1
            """
        do {
            _ = try DaemonConfig.parse(text, file: "x.toml")
            Issue.record("parse succeeded")
        } catch {
            #expect(error.issues.map(\.keyPath) == ["log.level", "websocket.idle_timeout", "websocket.bogus"])
            #expect(error.issues.map(\.line) == [2, 4, 5])
        }
    }
}

@Suite("KeyLocator: lines of key paths")
struct KeyLocatorTests {
    @Test("tables, dotted keys, arrays of tables, and multi-line values")
    func locations() {
        let source = """
            top = 1
            [a]
            x = \"\"\"
            y = not a key
            \"\"\"
            z = [
              "w = still in the array",
            ]
            b.c = 2
            "q.r" = 3
            [[s]]
            k = 1
            [[s]]
            k = 2
            [[s.o]]
            n = 1
            """
        let locator = KeyLocator(source: source)
        #expect(locator.line(of: "top") == 1)
        #expect(locator.line(of: "a") == 2)
        #expect(locator.line(of: "a.x") == 3)
        #expect(locator.line(of: "a.y") == 2)  // not a key: falls back to its table
        #expect(locator.line(of: "a.z") == 6)
        #expect(locator.line(of: "a.b.c") == 9)
        #expect(locator.line(of: "a.q.r") == 10)
        #expect(locator.line(of: "s[0].k") == 12)
        #expect(locator.line(of: "s[1].k") == 14)
        #expect(locator.line(of: "s[1].o[0].n") == 16)
        #expect(locator.line(of: "nowhere") == nil)
    }
}

/// Issue #12 row 2: the TOML 1.0 parser. toml++ (through TOMLKit 0.6.0), which
/// it replaced, aborted on some of these inputs; this one reports each with its line.
@Suite("TOMLSyntax: the config's TOML 1.0 parser")
struct TOMLSyntaxTests {
    @Test(
        "a header without a name is a located syntax error, not an abort",
        arguments: [
            ("[\n", 1), ("[", 1), ("[[\n", 1), ("[[[a]]]\n", 1), ("[[=\n", 1), ("[\u{2}\n", 1), ("[ \t\n", 1),
            ("[log]\nlevel = \"info\"\n\n  [\n", 4), ("[[ =]]\n", 1), ("a = 1 # [\n[.]\n", 2),
            ("\u{FEFF} [\n", 1),  // after a byte order mark (found by FuzzConfig)
        ])
    func unsafeHeaders(text: String, line: Int) {
        do {
            _ = try DaemonConfig.parse(text, file: "bad.toml")
            Issue.record("parsed: \(text.debugDescription)")
        } catch {
            #expect(error.issues.count == 1)
            #expect(error.issues.first?.line == line, "\(text.debugDescription): \(error.description)")
            #expect(
                error.description.contains("TOML syntax error: Error while parsing table header"),
                "\(error.description)")
        }
    }

    @Test("an earlier syntax error is still the one reported")
    func earlierErrorFirst() {
        do {
            _ = try DaemonConfig.parse("[log\nlevel = 1\n[\n", file: "bad.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.description.hasPrefix("bad.toml:1:5: TOML syntax error"), "\(error.description)")
        }
    }

    @Test("brackets inside values, strings and comments are not headers")
    func notHeaders() {
        let text = """
            a = [
            [1, 2],
              [
                3,
              ],
            ]
            b = \"\"\"
            [
            [[=
            \"\"\"
            c = '''
            [
            '''
            d = "[" # [
            e = { f = "[" }
            ["quoted ] key"]
            g = 1
            [ "x" . y ]
            [[z]]
            """
        #expect(TOMLSyntax.check(text.utf8) == nil)
    }

    @Test("valid TOML 1.0 of every kind parses")
    func validDocuments() throws {
        let text = #"""
            # a comment
            title = "TOML \\ \"Example\" \u00e9 \U0001F600"
            'literal key' = 'C:\Users'
            "quoted"."dotted" . bare = 1
            ints = [+99, 42, 0, -17, 1_000, 0xDEAD_beef, 0o755, 0b1101]
            floats = [+1.0, 3.1415, -0.01, 5e+22, 1e06, -2E-2, 6.626e-34, 9_224_617.445_991, inf, -inf, +nan]
            dates = [1979-05-27T07:32:00Z, 1979-05-27T00:32:00.999999-07:00, 1979-05-27 07:32:00, 1979-05-27, 07:32:00.5]
            bools = [true, false]
            ml = """
            Roses are red\
              Violets are blue \""" """"
            ml2 = '''
            raw \n text ''''
            nested = [ [ 1, 2 ], ["a", 'b'], [ { x = 1 }, {} ], ]
            inline = { a = 1, b.c = "d", e = [1, 2] }
            [table-1]
            key1 = "some string"
            [ dog . "tater.man" ]
            type.name = "pug"
            [[products]]
            name = "Hammer"
            [[products]]

            [[fruits.varieties]]
            name = "red delicious"
            """#
        #expect(TOMLSyntax.check(text.utf8) == nil, "\(String(describing: TOMLSyntax.check(text.utf8)))")
        // The schema then finds unknown keys: what it says is about the schema, not the syntax.
        do {
            _ = try DaemonConfig.parse(text, file: "valid.toml")
        } catch {
            #expect(!error.description.contains("syntax error"), "\(error.description)")
        }
    }

    @Test(
        "malformed TOML is refused with its line (some of these aborted toml++)",
        arguments: [
            ("aA = [\n[2, 2,}\n", 2),  // found by FuzzConfig: an assertion in toml++'s parse_value
            ("a = }\n", 1), ("a = ,\n", 1), ("a = [1 2]\n", 1), ("a = [,]\n", 1), ("[a]]\n", 1), ("a = 1__0\n", 1),
            ("a = \"\\x\"\n", 1), ("a = \"\"\"\nabc\n", 3), ("a = 0x\n", 1), ("a = -0x1\n", 1), ("a = 01\n", 1),
            ("a = 1979-13-01\n", 1), ("a = \"open\n", 1), ("# \u{1}\n", 1), ("a = { b = 1, }\n", 1),
            ("a = { b = 1\n", 1),
            ("a = 1.\n", 1), ("a = .5\n", 1), ("a = truex\n", 1), ("a = \"\\uD800\"\n", 1), ("a\n", 1), ("= 1\n", 1),
            ("a = 1 b = 2\n", 1), ("a = '''x\n", 2), ("\n\na = \"\u{7F}\"\n", 3), ("a = 1\rb = 2\n", 1),
        ])
    func malformed(text: String, line: Int) {
        guard let failure = TOMLSyntax.check(text.utf8) else {
            Issue.record("accepted: \(text.debugDescription)")
            return
        }
        #expect(failure.line == line, "\(text.debugDescription): \(failure)")
        do {
            _ = try DaemonConfig.parse(text, file: "bad.toml")
            Issue.record("parsed: \(text.debugDescription)")
        } catch {
            #expect(error.description.hasPrefix("bad.toml:\(line):"), "\(error.description)")
            #expect(error.description.contains("TOML syntax error: "))
        }
    }

    @Test("values read as TOML 1.0 says: escapes, line-ending backslashes, numbers in every base, nesting")
    func values() throws {
        let text = #"""
            s = "tab\there \u00e9 \U0001F600 \"q\""
            l = 'C:\path'
            ml = """
            one \
              two"""
            ml2 = '''
            raw\n'''
            n = [0xf_f, 0o17, 0b101, -17, +3, 1_000]
            f = [1.5, -2e3, inf]
            d = 1979-05-27T07:32:00Z
            t = { a.b = 1 }
            [[x]]
            y = 1
            [[x]]
            y = 2
            [x.z]
            w = true
            """#
        guard case .success(let root) = TOMLSyntax.parse(text.utf8) else {
            Issue.record("\(String(describing: TOMLSyntax.check(text.utf8)))")
            return
        }
        #expect(root["s"]?.string == "tab\there é 😀 \"q\"")
        #expect(root["l"]?.string == "C:\\path")
        #expect(root["ml"]?.string == "one two")
        #expect(root["ml2"]?.string == "raw\\n")
        #expect(root["n"]?.array?.compactMap(\.int) == [255, 15, 5, -17, 3, 1000])
        #expect(root["f"]?.array?.compactMap(\.double) == [1.5, -2000, .infinity])
        #expect(root["d"].map(describe) == "a date/time")
        #expect(root["t"]?.table?["a"]?.table?["b"]?.int == 1)
        let xs = root["x"]?.array?.compactMap(\.table) ?? []
        #expect(xs.map { $0["y"]?.int } == [1, 2])
        #expect(xs.last?["z"]?.table?["w"]?.bool == true)
        #expect(root.keys == ["s", "l", "ml", "ml2", "n", "f", "d", "t", "x"])
        // Many elements of one array of tables (appended in place).
        let many = String(repeating: "[[a]]\nb = 1\n", count: 20_000)
        guard case .success(let big) = TOMLSyntax.parse(many.utf8) else {
            Issue.record("many [[a]] refused")
            return
        }
        #expect(big["a"]?.array?.count == 20_000)
    }

    @Test(
        "tables are defined once (TOML 1.0 §Table): each redefinition is a located error",
        arguments: [
            ("[a]\n[a]\n", 2, "cannot redefine existing table 'a'"),
            ("[a.b]\n[a]\n[a]\n", 3, "cannot redefine existing table 'a'"),
            ("[a]\nb.c = 1\n[a.b]\n", 3, "cannot redefine existing table 'a.b'"),
            ("[a.b]\nc = 1\n[a]\nb.d = 2\n", 4, "cannot redefine existing table 'b'"),
            ("a = { b = 1 }\n[a.c]\n", 2, "cannot extend inline table 'a'"),
            ("a = { b = 1 }\na.c = 2\n", 2, "cannot redefine existing table 'a'"),
            ("a = [1]\n[[a]]\n", 2, "cannot redefine existing array 'a' as an array of tables"),
            ("[[a]]\n[a]\n", 2, "cannot redefine existing table 'a'"),
            ("a = 1\n[a.b]\n", 2, "cannot redefine existing integer 'a' as a table"),
            ("a = 1\na = 2\n", 2, "cannot redefine existing integer 'a'"),
            ("\"a\" = 1\na = 2\n", 2, "cannot redefine existing integer 'a'"),
            ("a = 99999999999999999999\n", 1, "integer out of range"),
            ("a = 0x_ff\n", 1, "expected a digit"),
        ])
    func definedOnce(text: String, line: Int, message: String) {
        let failure = TOMLSyntax.check(text.utf8)
        #expect(failure?.line == line, "\(text.debugDescription): \(String(describing: failure))")
        #expect(failure?.message.contains(message) == true, "\(text.debugDescription): \(String(describing: failure))")
    }

    @Test("tables may be completed as TOML 1.0 allows: a parent after its child, sub-tables of dotted tables")
    func allowedCompletions() {
        for text in [
            "[a.b]\nc = 1\n[a]\nd = 2\n", "[fruit]\napple.color = 'red'\n[fruit.apple.texture]\nsmooth = true\n",
            "[[a]]\n[a.b]\n[[a]]\n[a.b]\n", "a.b = 1\na.c = 2\n",
        ] {
            #expect(TOMLSyntax.check(text.utf8) == nil, "\(text.debugDescription)")
        }
    }

    @Test("nesting is bounded: arrays, inline tables, dotted keys and headers alike")
    func deepNesting() {
        let deep = "a = " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "\n"
        #expect(TOMLSyntax.check(deep.utf8)?.message.contains("nested deeper") == true)
        let dotted = Array(repeating: "a", count: 100_000).joined(separator: ".") + " = 1\n"
        #expect(TOMLSyntax.check(dotted.utf8)?.message.contains("nested deeper") == true)
        let header = "[" + Array(repeating: "a", count: 200).joined(separator: ".") + "]\n"
        #expect(TOMLSyntax.check(header.utf8)?.message.contains("nested deeper") == true)
        let inline =
            "a = " + String(repeating: "{b.c.d.e = ", count: 60) + "1" + String(repeating: "}", count: 60) + "\n"
        #expect(TOMLSyntax.check(inline.utf8)?.message.contains("nested deeper") == true)
    }

    @Test("mutated config files never abort the reader (2000 seeded mutations of the shipped files)")
    func mutations() throws {
        let seeds = try [
            exampleConfigPath, exampleConfigPath.replacingOccurrences(of: "wshostd.toml", with: "demo-world.toml"),
        ]
        .map { Array(try String(contentsOfFile: $0, encoding: .utf8).utf8) }
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("[]{}\"'=#.\n \t,\\\u{2}ab1".utf8)
        var outcomes = (ok: 0, refused: 0)
        for _ in 0..<2_000 {
            var bytes = seeds.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[index] = alphabet.randomElement(using: &random)!
                case 1: bytes.insert(alphabet.randomElement(using: &random)!, at: index)
                default: bytes.remove(at: index)
                }
            }
            // A header line on its own (toml++ aborted on it).
            if Int.random(in: 0..<4, using: &random) == 0 {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes.insert(contentsOf: Array("\n[\n".utf8), at: index)
            }
            do {
                _ = try DaemonConfig.parse(String(decoding: bytes, as: UTF8.self), file: "m.toml")
                outcomes.ok += 1
            } catch {
                outcomes.refused += 1
            }
        }
        #expect(outcomes.refused > 0)
    }
}
