import ArgumentParser
import Config
import Control
import Glibc
import WebSocketProtocol

/// `wshostctl`: operates a running wshostd over its control socket
/// (docs/control-protocol.md). Every command prints readable output, or the
/// daemon's JSON result with `--json`.
struct Wshostctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wshostctl",
        abstract: "Operate a running wshostd: worlds, records, consent, events.",
        discussion: """
            wshostctl talks to wshostd over its control socket (default \(SocketPath.default); \
            --socket or $WSHOSTCTL_SOCKET name another). Root, the daemon's own user and members \
            of the configured [control] group may operate it; a user's consent token lets its \
            holder watch and answer that user's prompts.

            EXIT STATUS
              0   success
              1   the daemon refused the request (its message is printed)
              2   usage error
              69  the daemon is unreachable (the socket path is printed)
            """,
        version: ReleaseVersion.current,
        subcommands: [
            Status.self, Sessions.self, Users.self, Objects.self, WS.self, Events.self, Consent.self, Reload.self,
        ]
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The control socket (default: $WSHOSTCTL_SOCKET, else \(SocketPath.default)).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print the daemon's JSON result (stable field names) instead of readable output.")
    var json = false

    /// Sends one request; prints the result as JSON or with `human`.
    func run(_ op: String, _ args: [String: JSON] = [:], human: (JSON) -> Void) throws {
        let result = try call(op, args)
        if json { Output.print(result.description) } else { human(result) }
    }

    func call(_ op: String, _ args: [String: JSON] = [:]) throws -> JSON {
        do {
            let connection = try Connection(path: SocketPath.resolve(socket))
            return try connection.request(op, args)
        } catch {
            Output.error(error.message)
            throw ExitCode(error.status)
        }
    }
}

func args(_ pairs: [String: JSON?]) -> [String: JSON] { pairs.compactMapValues { $0 } }
func str(_ value: String?) -> JSON? { value.map { .string($0) } }

// MARK: - status, reload

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's state: version, world counts, records by state, config.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run("status") { result in
            let states = (result["recordStates"]?.objectValue ?? [:]).sorted { $0.key < $1.key }
                .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            Output.block([
                (
                    "daemon",
                    "wshostd \(Output.text(result["daemon"])) (protocol \(Output.text(result["protocol"])), pid \(Output.text(result["pid"])))"
                ),
                ("state", Output.text(result["state"])),
                ("status", Output.text(result["status"])),
                (
                    "world",
                    "\(Output.text(result["sessions"])) sessions, \(Output.text(result["users"])) users, \(Output.text(result["objects"])) objects"
                ),
                (
                    "records",
                    "\(Output.text(result["records"])) (\(states.isEmpty ? "none" : states))"
                ),
                (
                    "config",
                    "\(Output.text(result["configFile"])) (generation \(Output.text(result["configGeneration"])))"
                ),
                ("last reload error", Output.text(result["lastReloadError"])),
                ("control clients", Output.text(result["controlClients"])),
                ("events", "last seq \(Output.text(result["eventSeq"])) (epoch \(Output.text(result["epoch"])))"),
            ])
        }
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload the config file (like SIGHUP): applied only when valid.",
        discussion: "A refused reload keeps the running configuration; the reason is printed and the exit status is 1.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run("reload") { result in
            Output.print("configuration reloaded (generation \(Output.text(result["configGeneration"])))")
        }
    }
}

// MARK: - sessions

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, start and close sessions (worlds).",
        subcommands: [List.self, Show.self, Start.self, Close.self])

    static func print(_ session: JSON) {
        Output.block([
            ("session", Output.text(session["id"])), ("name", Output.text(session["name"])),
            ("host", Output.text(session["host"])), ("present", Output.text(session["present"])),
            ("objects", Output.text(session["objects"])),
        ])
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the sessions.")
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try global.run("sessions.list") { result in
                let rows = (result["sessions"]?.arrayValue ?? []).map { s in
                    [
                        Output.text(s["id"]), Output.text(s["name"]), Output.text(s["host"]), Output.text(s["present"]),
                        String(s["objects"]?.arrayValue?.count ?? 0),
                    ]
                }
                Output.table(["SESSION", "NAME", "HOST", "PRESENT", "OBJECTS"], rows)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one session.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        func run() throws {
            try global.run("sessions.show", ["session": .string(session)]) { Sessions.print($0["session"]!) }
        }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a session.",
            discussion: "Without --host the session is hosted by the daemon's own headless user \"wshostd\".")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The new session's id (letters, digits, ._:@-).") var session: String
        @Option(help: "A display name (default: the id).") var name: String?
        @Option(help: "The hosting user (present from the start).") var host: String?
        func run() throws {
            try global.run("sessions.start", args(["session": .string(session), "name": str(name), "host": str(host)]))
            {
                Sessions.print($0["session"]!)
            }
        }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close a session: every record in it disconnects and its objects are removed.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        func run() throws {
            try global.run("sessions.close", ["session": .string(session)]) { _ in
                Output.print("session \(session) closed")
            }
        }
    }
}

// MARK: - users

struct Users: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Users: list, add, show a consent token; join, leave, kick, make host.",
        subcommands: [List.self, Add.self, Token.self, Join.self, Leave.self, Kick.self, Host.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users (all, or those present in a session).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only the users present in this session.") var session: String?
        func run() throws {
            try global.run("users.list", args(["session": str(session)])) { result in
                let rows = (result["users"]?.arrayValue ?? []).map { u in
                    [Output.text(u["id"]), Output.text(u["name"]), Output.text(u["kind"]), Output.text(u["sessions"])]
                }
                Output.table(["USER", "NAME", "KIND", "SESSIONS"], rows)
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user.",
            discussion:
                "Headless users are never prompted: unknown hosts are denied for them. Interactive users are asked through their consent channel (wshostctl consent watch)."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The new user's id.") var user: String
        @Option(help: "A display name (default: the id).") var name: String?
        @Option(help: "headless or interactive.") var kind: String = "headless"
        func run() throws {
            try global.run("users.add", args(["user": .string(user), "name": str(name), "kind": .string(kind)])) { r in
                let u = r["user"]!
                Output.print("user \(Output.text(u["id"])) added (\(Output.text(u["kind"])))")
            }
        }
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a user's consent token (generated and stored on first use).",
            discussion:
                "Give the token to the user: with it they can run `wshostctl consent watch` and answer their own prompts. Operators only."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.") var user: String
        func run() throws {
            try global.run("users.token", ["user": .string(user)]) { Output.print(Output.text($0["token"])) }
        }
    }

    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A user joins a session (handling users are re-resolved).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        @Argument(help: "The user id.") var user: String
        func run() throws { try sessionChange(global, "users.join", session, user, "joined") }
    }

    struct Leave: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A user leaves a session (their records fail over).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        @Argument(help: "The user id.") var user: String
        func run() throws { try sessionChange(global, "users.leave", session, user, "left") }
    }

    struct Kick: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a user from a session (logged as a kick, with who kicked).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        @Argument(help: "The user id.") var user: String
        func run() throws { try sessionChange(global, "users.kick", session, user, "kicked from") }
    }

    struct Host: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a user the session's host (the last fallback of the handling-user rule).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        @Argument(help: "The user id.") var user: String
        func run() throws { try sessionChange(global, "users.host", session, user, "now hosts") }
    }

    static func sessionChange(_ global: GlobalOptions, _ op: String, _ session: String, _ user: String, _ verb: String)
        throws
    {
        try global.run(op, ["session": .string(session), "user": .string(user)]) { _ in
            Output.print("\(user) \(verb) \(session)")
        }
    }
}

// MARK: - objects

struct Objects: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Objects in a session: spawn, remove, wear, grab, define a user, reactions.",
        subcommands: [
            List.self, Show.self, Spawn.self, Remove.self, Wear.self, Unwear.self, Grab.self, Release.self,
            DefineUser.self, React.self, Reactions.self, Unreact.self,
        ])

    struct Address: ParsableArguments {
        @Argument(help: "The session id.") var session: String
        @Argument(help: "The object id.") var object: String
        var json: [String: JSON] { ["session": .string(session), "object": .string(object)] }
    }

    static func print(_ object: JSON) {
        Output.block([
            ("object", "\(Output.text(object["session"]))/\(Output.text(object["id"]))"),
            ("name", Output.text(object["name"])), ("worn by", Output.text(object["wornBy"])),
            ("defined user", Output.text(object["definedUser"])), ("spawned by", Output.text(object["spawnedBy"])),
            ("interacting user", Output.text(object["interactingUser"])),
            (
                "reactions",
                (object["reactions"]?.arrayValue ?? []).map { Output.reaction($0).joined(separator: " → ") }.joined(
                    separator: "; ")
            ),
        ])
        if let record = object["record"], record != .null {
            Output.print("")
            Output.record(record)
        } else {
            Output.print("record:           none")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a session's objects with their record's state.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var session: String
        func run() throws {
            try global.run("objects.list", ["session": .string(session)]) { result in
                let rows = (result["objects"]?.arrayValue ?? []).map { o -> [String] in
                    let record = o["record"]
                    return [
                        Output.text(o["id"]), Output.text(o["name"]), Output.text(record?["state"]),
                        Output.text(record?["handlingUser"]), Output.text(record?["url"]),
                    ]
                }
                Output.table(["OBJECT", "NAME", "STATE", "HANDLING-USER", "URL"], rows)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show an object, its relations, reactions and record.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws { try global.run("objects.show", address.json) { Objects.print($0["object"]!) } }
    }

    struct Spawn: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Spawn an object (without a record; give it one with `ws set` or `ws connect`).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Option(help: "A display name (default: the id).") var name: String?
        @Option(name: .customLong("spawned-by"), help: "The user who spawned it (third in the handling-user rule).")
        var spawnedBy: String?
        func run() throws {
            try global.run(
                "objects.spawn", address.json.merging(args(["name": str(name), "spawnedBy": str(spawnedBy)])) { $1 }
            ) { _ in
                Output.print("object \(address.session)/\(address.object) spawned")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an object (its socket is torn down).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws {
            try global.run("objects.remove", address.json) { _ in
                Output.print("object \(address.session)/\(address.object) removed")
            }
        }
    }

    struct Wear: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A user wears the object (first in the handling-user rule).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Argument(help: "The user id.") var user: String
        func run() throws { try change(global, "objects.wear", address, ["user": .string(user)]) }
    }

    struct Unwear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Nobody wears the object.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws { try change(global, "objects.unwear", address, [:]) }
    }

    struct Grab: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A user grabs the object (the interacting user, fourth in the rule).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Argument(help: "The user id.") var user: String
        func run() throws { try change(global, "objects.grab", address, ["user": .string(user)]) }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Nobody interacts with the object.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws { try change(global, "objects.release", address, [:]) }
    }

    struct DefineUser: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "define-user",
            abstract: "Set (or clear with --none) the object's defined user (second in the rule).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Argument(help: "The user id.") var user: String?
        @Flag(help: "No defined user.") var none = false
        func validate() throws {
            guard (user == nil) != !none else { throw ValidationError("give a user id or --none (not both)") }
        }
        func run() throws {
            try change(global, "objects.define-user", address, ["user": user.map { .string($0) } ?? .null])
        }
    }

    static func change(_ global: GlobalOptions, _ op: String, _ address: Address, _ extra: [String: JSON]) throws {
        try global.run(op, address.json.merging(extra) { $1 }) { result in
            let object = result["object"]!
            let record = object["record"]
            Output.print(
                "\(address.session)/\(address.object): handling user \(Output.text(record?["handlingUser"])), state \(Output.text(record?["state"]))"
            )
        }
    }

    struct React: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a reaction: on an event, echo, send a text, or forward to another object.",
            discussion: "In --send templates, {data} is replaced with the received text.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Option(help: "connected, received or disconnected.") var on: String
        @Flag(help: "Send the received message back unchanged.") var echo = false
        @Option(help: "Send this text ({data} = the received text).") var send: String?
        @Option(help: "Send the received message through this object's record.") var forward: String?
        func validate() throws {
            guard [echo ? 1 : 0, send == nil ? 0 : 1, forward == nil ? 0 : 1].reduce(0, +) == 1 else {
                throw ValidationError("give exactly one of --echo, --send TEMPLATE, --forward OBJECT")
            }
        }
        func run() throws {
            let extra = args([
                "on": .string(on), "echo": echo ? .bool(true) : nil, "send": str(send), "forward": str(forward),
            ])
            try global.run("objects.react", address.json.merging(extra) { $1 }) { result in
                Output.table(["ON", "EFFECT"], (result["reactions"]?.arrayValue ?? []).map(Output.reaction))
            }
        }
    }

    struct Reactions: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the object's reactions.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        func run() throws {
            try global.run("objects.reactions", address.json) { result in
                Output.table(["ON", "EFFECT"], (result["reactions"]?.arrayValue ?? []).map(Output.reaction))
            }
        }
    }

    struct Unreact: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the object's reactions (all, or those on one event).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Address
        @Option(help: "Only reactions on this event.") var on: String?
        func run() throws {
            try global.run("objects.unreact", address.json.merging(args(["on": str(on)])) { $1 }) { result in
                Output.print("\(Output.text(result["removed"])) reactions removed")
            }
        }
    }
}

// MARK: - ws (the record and the four nodes)

struct WS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws",
        abstract: "An object's WebSocket Client record: show, set fields, Connect, send, disconnect.",
        subcommands: [Show.self, Set.self, Connect.self, Send.self, Disconnect.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the record's fields (reference names) and status.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        func run() throws { try global.run("ws.show", address.json) { Output.record($0["record"]!) } }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set record fields; gives the object a record if it has none.",
            discussion: "A change of URL or Enabled restarts the record (closes, then connects again through consent).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        @Option(help: "URL: ws:// or wss:// (\"\" clears).") var url: String?
        @Option(name: .customLong("access-reason"), help: "AccessReason, shown in consent prompts.") var accessReason:
            String?
        @Option(
            name: .customLong("retry-interval"),
            help:
                "ConnectRetryInterval: a duration as in the config (\"10s\", \"250ms\", \"1m30s\") or seconds (\"10\", \"0.5\").",
            transform: { text in
                if let seconds = Double(text), seconds.isFinite { return seconds }
                guard let duration = Units.duration(text) else {
                    throw ValidationError("\"\(text)\" is not a duration such as \"10s\", \"250ms\" or \"1m30s\"")
                }
                return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            })
        var retryInterval: Double?
        @Option(help: "Enabled: true or false.") var enabled: Bool?
        func run() throws {
            let extra = args([
                "url": str(url), "accessReason": str(accessReason),
                "connectRetryInterval": retryInterval.map { .number($0) }, "enabled": enabled.map { .bool($0) },
            ])
            try global.run("ws.set", address.json.merging(extra) { $1 }) { Output.record($0["record"]!) }
        }
    }

    struct Connect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Websocket Connect node: set URL and HandlingUser, then connect.",
            discussion:
                "Without --url the current URL stays; without --user the handling user is automatic (worn by → defined user → spawned by → interacting user → session host). Returns at once; connecting happens through consent and the lifecycle."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        @Option(help: "The URL (ws:// or wss://).") var url: String?
        @Option(help: "Pin the handling user.") var user: String?
        func run() throws {
            try global.run("ws.connect", address.json.merging(args(["url": str(url), "user": str(user)])) { $1 }) {
                Output.record($0["record"]!)
            }
        }
    }

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Text Message Sender (or binary): OnSent, or OnSendError with the reason (exit 1).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        @Option(help: "A text message.") var text: String?
        @Option(name: .customLong("binary-file"), help: "Send this file's bytes as one binary message.") var binaryFile:
            String?
        func validate() throws {
            guard (text == nil) != (binaryFile == nil) else {
                throw ValidationError("give exactly one of --text or --binary-file")
            }
        }
        func run() throws {
            var extra: [String: JSON] = [:]
            if let text { extra["text"] = .string(text) }
            if let binaryFile {
                guard let bytes = readFile(binaryFile) else {
                    Output.error("cannot read \(binaryFile): \(String(cString: strerror(errno)))")
                    throw ExitCode(Exit.usage)
                }
                extra["binary"] = .string(Base64.encode(bytes))
            }
            try global.run("ws.send", address.json.merging(extra) { $1 }) { _ in Output.print("sent") }
        }
    }

    struct Disconnect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disconnect now (Close 1000); the record stays down until Connect or a field change.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var address: Objects.Address
        func run() throws {
            try global.run("ws.disconnect", address.json) { result in
                Output.print("\(address.session)/\(address.object): \(Output.text(result["record"]?["state"]))")
            }
        }
    }
}

// MARK: - events

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print recent events, or follow the live stream.",
        discussion: """
            Each line: SEQ TIME TYPE SESSION/OBJECT and the event's fields. Without --since the \
            events still kept are printed; --since SEQ prints those after SEQ (fails when they \
            are no longer kept). --follow keeps printing live events. Types: \
            \(EventFilter.types.joined(separator: ", ")).
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this session's events.") var session: String?
    @Option(help: "Only this object's events.") var object: String?
    @Option(help: "Only events of this type (repeatable).") var type: [String] = []
    @Flag(help: "Keep printing live events until interrupted.") var follow = false
    @Option(help: "Only events after this sequence number.") var since: Int?

    func run() throws {
        do throws(CommandFailure) {
            let connection = try Connection(path: SocketPath.resolve(global.socket))
            var request = args(["session": str(session), "object": str(object), "since": .int(since ?? 0)])
            if !type.isEmpty { request["types"] = .array(type.map { .string($0) }) }
            let result = try connection.request("subscribe", request)
            var remaining = result["backlog"]?.intValue ?? 0
            while follow || remaining > 0, let event = try connection.nextEvent() {
                remaining -= 1
                Output.print(global.json ? event.description : Output.event(event))
                Output.flush()
            }
        } catch {
            Output.error(error.message)
            throw ExitCode(error.status)
        }
    }
}

// MARK: - consent

struct Consent: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A user's consent: watch and answer prompts, list and forget decisions.",
        discussion:
            "Watching and answering need the user's token (--token, $WSHOSTCTL_TOKEN; operators without one get it from the daemon).",
        subcommands: [Watch.self, Answer.self, List.self, Forget.self])

    struct TokenOption: ParsableArguments {
        @Option(help: "The user's consent token (default: $WSHOSTCTL_TOKEN, else asked of the daemon, operators only).")
        var token: String?

        func resolve(_ connection: Connection, user: String) throws(CommandFailure) -> String {
            if let token { return token }
            if let value = getenv("WSHOSTCTL_TOKEN"), value.pointee != 0 { return String(cString: value) }
            return try connection.request("users.token", ["user": .string(user)])["token"]?.stringValue ?? ""
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Act as the user's consent channel: prompts are printed, answers read from stdin.",
            discussion: """
                Each prompt shows the asking object and session, host:port, scope and reason. Type \
                allow, deny or ignore (for the latest prompt) or "ID allow". Allow and deny are stored \
                before they take effect; ignore is not stored (the next attempt asks again). The \
                command ends at the end of its input. With --json, prompts are printed as JSON lines.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.") var user: String
        @OptionGroup var token: TokenOption

        func run() throws {
            do throws(CommandFailure) {
                let connection = try Connection(path: SocketPath.resolve(global.socket))
                let secret = try token.resolve(connection, user: user)
                let result = try connection.request("consent.watch", ["user": .string(user), "token": .string(secret)])
                var latest: Int?
                func show(_ prompt: JSON) {
                    latest = prompt["prompt"]?.intValue
                    Output.print(global.json ? JSON.object(["prompt": prompt]).description : Output.prompt(prompt))
                    Output.flush()
                }
                if !global.json { Output.print("watching consent prompts for \(user)") }
                for prompt in result["pending"]?.arrayValue ?? [] { show(prompt) }
                Output.flush()
                while true {
                    if !connection.hasBufferedInput {
                        var fds = [
                            pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0),
                            pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                        ]
                        let ready = poll(&fds, nfds_t(fds.count), -1)
                        if ready < 0 && errno == EINTR { continue }
                        if fds[1].revents != 0 {
                            // End of input: the user is done answering.
                            guard let line = readLine() else { return }
                            try answer(line, latest: latest, connection: connection, secret: secret)
                            continue
                        }
                    }
                    guard let event = try connection.nextEvent() else {
                        throw CommandFailure(status: Exit.unreachable, message: "wshostd closed the connection")
                    }
                    if event["type"]?.stringValue == "prompt", let prompt = event["prompt"] {
                        show(prompt)
                    } else if event["type"]?.stringValue == "prompt-dismissed" {
                        Output.print(
                            global.json
                                ? event.description
                                : "prompt \(Output.text(event["prompt"])) withdrawn (no longer needed)")
                        Output.flush()
                    }
                }
            } catch {
                Output.error(error.message)
                throw ExitCode(error.status)
            }
        }

        private func answer(_ line: String, latest: Int?, connection: Connection, secret: String) throws(CommandFailure)
        {
            let words = line.split(separator: " ").map(String.init)
            guard !words.isEmpty else { return }
            var prompt = latest
            var verdict = words[0]
            if words.count == 2, let id = Int(words[0]) {
                prompt = id
                verdict = words[1]
            }
            guard let prompt, ["allow", "deny", "ignore"].contains(verdict) else {
                Output.error("answer with allow, deny or ignore (or \"ID allow\")")
                return
            }
            do {
                _ = try connection.request(
                    "consent.answer",
                    [
                        "user": .string(user), "prompt": .int(prompt), "answer": .string(verdict),
                        "token": .string(secret),
                    ])
                if !global.json { Output.print("prompt \(prompt): \(verdict)") }
            } catch  where error.status == Exit.refused {
                Output.error(error.message)
            }
            Output.flush()
        }
    }

    struct Answer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Answer one prompt as the user: allow, deny or ignore.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.") var user: String
        @Argument(help: "The prompt id (shown by watch, list and events).") var request: Int
        @Argument(help: "allow, deny or ignore.") var answer: String
        @OptionGroup var token: TokenOption

        func run() throws {
            do throws(CommandFailure) {
                let connection = try Connection(path: SocketPath.resolve(global.socket))
                let secret = try token.resolve(connection, user: user)
                let result = try connection.request(
                    "consent.answer",
                    [
                        "user": .string(user), "prompt": .int(request), "answer": .string(answer),
                        "token": .string(secret),
                    ])
                Output.print(global.json ? result.description : "prompt \(request): \(answer)")
            } catch {
                Output.error(error.message)
                throw ExitCode(error.status)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the user's decisions and pending prompts.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.") var user: String
        @Option(help: "The user's token (needed by non-operators).") var token: String?
        func run() throws {
            try global.run("consent.list", args(["user": .string(user), "token": str(token)])) { result in
                let rows = (result["decisions"]?.arrayValue ?? []).map { d in
                    [
                        Output.text(d["hostPort"]), Output.text(d["scope"]), Output.text(d["verdict"]),
                        Output.text(d["reason"]),
                    ]
                }
                Output.table(["HOST:PORT", "SCOPE", "VERDICT", "REASON"], rows)
                for prompt in result["pending"]?.arrayValue ?? [] {
                    Output.print(
                        "pending: prompt \(Output.text(prompt["prompt"])) for \(Output.text(prompt["hostPort"])) from \(Output.text(prompt["session"]))/\(Output.text(prompt["object"]))"
                    )
                }
            }
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget a decision: the next attempt to that host asks again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The user id.") var user: String
        @Argument(help: "host:port (or a ws:// / wss:// URL).") var host: String
        @Option(help: "The user's token (needed by non-operators).") var token: String?
        func run() throws {
            try global.run("consent.forget", args(["user": .string(user), "host": .string(host), "token": str(token)]))
            { r in
                Output.print("\(user) forgot \(Output.text(r["forgotten"]))")
            }
        }
    }
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count < 0 { return nil }
        if count == 0 { return bytes }
        bytes += chunk[0..<count]
    }
}

/// Global options may come before the command (`wshostctl --json status`):
/// they are moved behind it, where the subcommands read them.
func reorderGlobalOptions(_ arguments: [String]) -> [String] {
    var leading: [String] = []
    var rest = arguments[...]
    while let first = rest.first, first.hasPrefix("--") {
        if first == "--json" || first.hasPrefix("--socket=") {
            leading.append(first)
            rest = rest.dropFirst()
        } else if first == "--socket", rest.count >= 2 {
            leading += rest.prefix(2)
            rest = rest.dropFirst(2)
        } else {
            break
        }
    }
    // A bare `wshostctl --json` keeps its options where ArgumentParser reports them.
    return rest.isEmpty ? arguments : Array(rest) + leading
}

// Usage errors exit 2 (the contract), not ArgumentParser's 64.
do {
    var command = try Wshostctl.parseAsRoot(reorderGlobalOptions(Array(CommandLine.arguments.dropFirst())))
    try command.run()
} catch {
    let code = Wshostctl.exitCode(for: error)
    if code == .validationFailure {
        var message = Wshostctl.fullMessage(for: error)
        if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
        Output.error(message)
        exit(Exit.usage)
    }
    Wshostctl.exit(withError: error)
}
