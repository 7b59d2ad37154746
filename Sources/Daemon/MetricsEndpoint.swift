import EventLoop
import Logging

/// What the metrics endpoint answers to one HTTP request head (pure: bytes
/// in, a response out). Only `GET /metrics` (and `HEAD`) is served; the
/// connection closes after every response (Prometheus opens one per scrape).
enum MetricsHTTP {
    /// The longest request head read; longer ones get 431.
    static let maxHead = 8 << 10

    struct Response: Equatable {
        var status: Int
        var reason: String
        var contentType = "text/plain; charset=utf-8"
        var body: [UInt8]
        /// HEAD: the headers only.
        var headOnly = false

        func bytes() -> [UInt8] {
            var text = "HTTP/1.1 \(status) \(reason)\r\n"
            text += "Content-Type: \(contentType)\r\n"
            text += "Content-Length: \(body.count)\r\n"
            if status == 405 { text += "Allow: GET, HEAD\r\n" }
            text += "Connection: close\r\n\r\n"
            return Array(text.utf8) + (headOnly ? [] : body)
        }
    }

    /// The Prometheus text exposition format's content type.
    static let exposition = "text/plain; version=0.0.4; charset=utf-8"

    /// The answer once the head is complete; nil while more bytes are needed.
    static func respond(to received: [UInt8], metrics: () -> [UInt8]) -> Response? {
        guard let end = headEnd(received) else {
            if received.count > maxHead { return plain(431, "Request Header Fields Too Large") }
            return nil
        }
        let head = received[..<end]
        let line = head.prefix { $0 != 13 && $0 != 10 }
        let parts = line.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].starts(with: Array("HTTP/1.".utf8)) else {
            return plain(400, "Bad Request")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
        guard path == "/metrics" else { return plain(404, "Not Found", "wshostd serves /metrics only\n") }
        guard method == "GET" || method == "HEAD" else { return plain(405, "Method Not Allowed") }
        var response = Response(status: 200, reason: "OK", contentType: exposition, body: metrics())
        response.headOnly = method == "HEAD"
        return response
    }

    private static func plain(_ status: Int, _ reason: String, _ body: String? = nil) -> Response {
        Response(status: status, reason: reason, body: Array((body ?? "\(reason)\n").utf8))
    }

    /// Where the head ends (after CRLF CRLF, or LF LF).
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 1..<bytes.count where bytes[index] == 10 {
            if bytes[index - 1] == 10 { return index + 1 }
            if index >= 3, bytes[index - 1] == 13, bytes[index - 2] == 10, bytes[index - 3] == 13 { return index + 1 }
        }
        return nil
    }
}

/// The `[metrics] listen` endpoint on the loop: accepts, reads one request
/// head (10 s at most), writes the answer, closes. At most `maxClients`
/// connections at once; more are closed at accept.
@LoopActor
final class MetricsEndpoint {
    static let maxClients = 16
    static let readTimeout: Duration = .seconds(10)

    private let listener: StreamListener
    private let timers: LoopTimers
    private let metrics: @LoopActor () -> [UInt8]
    private var clients: [ObjectIdentifier: Client] = [:]
    private let logger = Logger(label: "wshostd.metrics")

    private final class Client {
        let socket: TCPSocket
        var received: [UInt8] = []
        var timeout: TimerID?
        var answered = false
        init(socket: TCPSocket) { self.socket = socket }
    }

    init(listener: StreamListener, timers: LoopTimers, metrics: @escaping @LoopActor () -> [UInt8]) {
        self.listener = listener
        self.timers = timers
        self.metrics = metrics
        listener.start { [weak self] socket, _ in self?.accepted(socket) }
    }

    var port: UInt16? { listener.port }

    private func accepted(_ socket: TCPSocket) {
        guard clients.count < Self.maxClients else {
            logger.warning(
                "metrics connection refused: \(Self.maxClients) already open",
                metadata: ["metrics.peer": "\(socket.peer)"])
            return socket.close()
        }
        let client = Client(socket: socket)
        let id = ObjectIdentifier(client)
        clients[id] = client
        client.timeout = timers.schedule(after: Self.readTimeout, slack: .milliseconds(100)) { [weak self] in
            self?.finish(id)
        }
        socket.start(
            onInput: { [weak self] input in self?.input(id, input) },
            onDrained: { [weak self] in
                guard let self, let client = clients[id], client.answered else { return }
                finish(id)
            })
    }

    private func input(_ id: ObjectIdentifier, _ input: TCPSocket.Input) {
        guard let client = clients[id], !client.answered else { return }
        switch input {
        case .data(let bytes):
            client.received.append(contentsOf: bytes)
            guard let response = MetricsHTTP.respond(to: client.received, metrics: metrics) else { return }
            client.answered = true
            client.received = []
            client.socket.write(response.bytes())
            if client.socket.pendingCount == 0 { finish(id) }
        case .eof, .error:
            finish(id)
        }
    }

    private func finish(_ id: ObjectIdentifier) {
        guard let client = clients.removeValue(forKey: id) else { return }
        if let timeout = client.timeout { timers.cancel(timeout) }
        client.socket.close()
    }

    func close() {
        listener.close()
        for id in Array(clients.keys) { finish(id) }
    }
}
