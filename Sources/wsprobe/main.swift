import ArgumentParser
import Config
import EventLoop
import Glibc
import HostRuntime
import HostingCore
import Logging
import TLS
import WebSocketClient
import WebSocketProtocol
import World

/// `wsprobe`: drives wshostd's WebSocket client from the shell: echo against
/// a server, or run the Autobahn|Testsuite client cases.
struct WSProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsprobe",
        abstract: "Exercise wshostd's WebSocket client (echo, Autobahn fuzzing server).",
        subcommands: [Echo.self, Autobahn.self]
    )
}

struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect, optionally send a text message, echo every message back until the server closes.")

    @Argument(help: "ws:// URL") var url: String
    @Option(help: "Text to send once open.") var send: String?
    @Flag(help: "Close after the first message received.") var once = false
    @Option(help: "Extra trusted CA certificates (PEM) for wss.") var caFile: String?

    func run() throws {
        guard case .success(let target) = WebSocketURL.parse(url) else { throw ValidationError("invalid URL \(url)") }
        let send = self.send
        let once = self.once
        var options = WebSocketClient.Options()
        if let caFile { options.tls = try TLSContext(caFile: caFile) }
        let chosen = options
        Task { @LoopActor in
            let timers = LoopTimers()
            let holder = ClientHolder()
            let client = WebSocketClient(url: target, options: chosen, timers: timers) { event in
                let client = holder.client
                switch event {
                case .opened:
                    print("opened \(client?.peer ?? "")")
                    if let send { try? client?.send(text: send) }
                case .text(let text):
                    print("text \(text)")
                    if once { client?.close() } else { try? client?.send(text: text) }
                case .binary(let bytes):
                    print("binary \(bytes.count) bytes")
                    if once { client?.close() } else { try? client?.send(binary: bytes) }
                case .closed(let report):
                    print("closed initiator=\(report.initiator) code=\(report.code) reason=\(report.reason)")
                    fflush(nil)
                    Glibc.exit(report.code == .abnormalClosure ? 1 : 0)
                }
            }
            holder.client = client
            client.start()
        }
        parkMainThread()
    }
}

struct Autobahn: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every case of an Autobahn|Testsuite fuzzing server, then ask it to write its reports.")

    @Option(help: "Fuzzing server base URL.") var base = "ws://127.0.0.1:9001"
    @Option(help: "Agent name in the reports.") var agent = "wshostd"
    @Flag(help: "Run each case through the world engine: an object with an echo reaction per case.")
    var viaWorld = false
    @Option(help: "permessage-deflate: off, on, or an offer such as \"permessage-deflate; client_max_window_bits\".")
    var compression = "off"

    func run() throws {
        let base = self.base
        let agent = self.agent
        let viaWorld = self.viaWorld
        let offer: DeflateOffer?
        switch DeflateOffer.setting(compression) {
        case .success(let value): offer = value
        case .failure(let error): throw ValidationError("--compression: \(error)")
        }
        Task { @LoopActor in
            let driver = AutobahnDriver(base: base, agent: agent, compression: offer)
            if viaWorld {
                driver.runViaWorld()
            } else {
                driver.run()
            }
        }
        parkMainThread()
    }
}

/// The Autobahn client protocol: getCaseCount, runCase 1…N echoing
/// everything, updateReports.
@LoopActor
final class AutobahnDriver {
    let base: String
    let agent: String
    let timers = LoopTimers()
    var count = 0
    var current: WebSocketClient?
    let compression: DeflateOffer?

    init(base: String, agent: String, compression: DeflateOffer?) {
        self.base = base
        self.agent = agent
        self.compression = compression
    }

    /// The client's options for the cases: large limits, no keepalive, the compression asked for.
    var caseOptions: WebSocketClient.Options {
        var websocket = DaemonConfig.WebSocket()
        websocket.compression = compression
        var options = WebSocketClient.Options(websocket)
        options.connection.maxFrameSize = 64 << 20
        options.connection.maxMessageSize = 64 << 20
        options.keepaliveInterval = .zero  // the fuzzing server sees only what its cases ask for
        return options
    }

    func run() {
        open("\(base)/getCaseCount") { client, event in
            if case .text(let text) = event { self.count = Int(text) ?? 0 }
            if case .closed = event {
                print("\(self.count) cases")
                fflush(nil)
                self.runCase(1)
            }
        }
    }

    func runCase(_ index: Int) {
        guard index <= count else { return updateReports() }
        open("\(base)/runCase?case=\(index)&agent=\(agent)") { client, event in
            switch event {
            case .text(let text): try? client.send(text: text)
            case .binary(let bytes): try? client.send(binary: bytes)
            case .opened: break
            case .closed: self.runCase(index + 1)
            }
        }
    }

    /// The same cases, each driven by the world engine (the hosting core and its runtime): a
    /// headless host, an allow-listed server, and per case one object whose
    /// record points at runCase and whose reaction echoes what it receives.
    /// The object is removed when its connection ends (or retrying would run
    /// the case again).
    func runViaWorld() {
        open("\(base)/getCaseCount") { _, event in
            if case .text(let text) = event { self.count = Int(text) ?? 0 }
            if case .closed = event {
                print("\(self.count) cases through the world engine")
                fflush(nil)
                do {
                    try self.setUpWorld()
                    self.worldCase(1)
                } catch {
                    print("world setup failed: \(error)")
                    Glibc.exit(1)
                }
            }
        }
    }

    var host: Runtime?

    func setUpWorld() throws {
        guard case .success(let url) = WebSocketURL.parse(base) else { throw ValidationError("bad base URL \(base)") }
        let options = caseOptions
        let defaults = DaemonConfig()
        let host = Runtime(
            core: Hosting(consent: ConsentEngine(allowList: [AccessKey(host: url.host, port: url.port)])),
            options: options,
            limits: Runtime.Limits(
                flood: Hosting.FloodLimits(
                    messages: defaults.websocket.inboundQueueMessages, bytes: Int(defaults.websocket.inboundQueueSize),
                    policy: .close),
                sendsPerSecond: defaults.limits.sendsPerSecond),
            timers: timers)
        try host.apply(.addUser(User(id: "host", name: "Autobahn host", kind: .headless)))
        try host.apply(.startSession(Session(id: "autobahn", name: "Autobahn", host: "host", present: ["host"])))
        self.host = host
    }

    func worldCase(_ index: Int) {
        guard let host else { return }
        guard index <= count else { return updateReports() }
        guard case .success(let url) = WebSocketURL.parse("\(base)/runCase?case=\(index)&agent=\(agent)") else {
            return
        }
        let object = ObjectID("case-\(index)")
        host.onEvent = { [unowned self] event in
            switch event {
            case .disconnected(let address, _), .attemptFailed(let address, _):
                guard address.object == object else { return }
                try? host.apply(.remove("autobahn", object))
                // Continue on the next loop turn, outside this event's delivery.
                timers.schedule(after: .zero) { self.worldCase(index + 1) }
            default:
                break
            }
        }
        do {
            try host.apply(
                .spawn(
                    "autobahn",
                    WorldObject(
                        id: object, name: "Autobahn case \(index)", record: RecordSettings(url: url),
                        reactions: [Reaction(on: .received, .echo)])))
        } catch {
            print("case \(index): \(error)")
            Glibc.exit(1)
        }
    }

    func updateReports() {
        open("\(base)/updateReports?agent=\(agent)") { _, event in
            if case .closed = event {
                print("reports updated")
                fflush(nil)
                Glibc.exit(0)
            }
        }
    }

    func open(_ text: String, _ handler: @escaping @LoopActor (WebSocketClient, WebSocketClient.Event) -> Void) {
        guard case .success(let url) = WebSocketURL.parse(text) else { fatalError("bad URL \(text)") }
        let options = caseOptions
        let holder = ClientHolder()
        let client = WebSocketClient(url: url, options: options, timers: timers) { event in
            if let client = holder.client { handler(client, event) }
            if case .closed = event { holder.client = nil }
        }
        holder.client = client
        current = client
        client.start()
    }
}

/// Lets an event handler reach the client that calls it, and keeps the client
/// alive until it reports `closed`.
@LoopActor
final class ClientHolder {
    var client: WebSocketClient?
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
WSProbe.main()
