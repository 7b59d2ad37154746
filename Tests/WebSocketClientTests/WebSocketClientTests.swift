import Dispatch
import EventLoop
import Glibc
import TestSupport
import Testing
import WebSocketClient
import WebSocketProtocol

/// Runs one client to its `closed` event, calling `script` for every event
/// (the client is passed in so the script can send or close), and returns all events.
/// Runs a test's body on the loop. Tests start their peers (child processes,
/// which block while they start) before hopping here, so the loop, shared by
/// every suite running in parallel, never waits for a peer to start.
func onLoop(_ body: @LoopActor @Sendable () async throws -> Void) async throws {
    try await body()
}

@LoopActor
func run(
    _ urlText: String, options: WebSocketClient.Options = WebSocketClient.Options(),
    _ script: @escaping @LoopActor (WebSocketClient, WebSocketClient.Event) -> Void = { _, _ in }
) async -> [WebSocketClient.Event] {
    let url = try! WebSocketURL.parse(urlText).get()
    let timers = LoopTimers()
    var events: [WebSocketClient.Event] = []
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        let holder = Holder()
        let client = WebSocketClient(url: url, options: options, timers: timers) { event in
            events.append(event)
            if let client = holder.client { script(client, event) }
            if case .closed = event {
                holder.client = nil
                done.resume()
            }
        }
        holder.client = client  // the holder keeps the client alive until closed
        client.start()
    }
    return events
}

@LoopActor
final class Holder {
    var client: WebSocketClient?
}

func closedReport(_ events: [WebSocketClient.Event]) -> CloseReport? {
    if case .closed(let report) = events.last { return report }
    return nil
}

@Suite("WebSocketClient against real peers on loopback", .serialized)
struct WebSocketClientTests {
    @Test("echo through python-websockets: text, a 1 MiB binary (fragmented), then a clean close")
    func echoWebsockets() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var rng = SystemRandomNumberGenerator()
            let big = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let events = await run("ws://127.0.0.1:\(peer.port)/echo?x=1") { client, event in
                switch event {
                case .opened: try? client.send(text: "héllo 𝄞")
                case .text: try? client.send(binary: big)
                case .binary: client.close(code: .normalClosure, reason: "thanks")
                case .closed: break
                }
            }
            #expect(events.count == 4)
            #expect(events.prefix(2) == [.opened, .text("héllo 𝄞")])
            #expect(events.dropFirst(2).first == .binary(big))
            #expect(closedReport(events) == CloseReport(initiator: .client, code: .normalClosure, reason: "thanks"))
        }
    }

    @Test("Happy Eyeballs: localhost reaches a server listening on 127.0.0.1 only (::1 is refused first)")
    func happyEyeballs() async throws {
        let peer = try Peer("echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let events = await run("ws://localhost:\(peer.port)/") { client, event in
                if case .opened = event { client.close() }
            }
            #expect(events.first == .opened)
            #expect(closedReport(events)?.code == .normalClosure)
        }
    }

    @Test("echo through picows")
    func echoPicows() async throws {
        let peer = try Peer("picows-echo")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let payload = [UInt8](repeating: 0xAB, count: 200_000)
            let events = await run("ws://127.0.0.1:\(peer.port)/") { client, event in
                switch event {
                case .opened: try? client.send(text: "ping")
                case .text("ping"): try? client.send(binary: payload)
                case .binary: client.close(code: .goingAway, reason: "")
                default: break
                }
            }
            #expect(events.prefix(2) == [.opened, .text("ping")])
            #expect(events.dropFirst(2).first == .binary(payload))
            #expect(closedReport(events)?.initiator == .client)
            #expect(closedReport(events)?.code == .goingAway)
        }
    }

    @Test("Neos #2508: a message sent right before the server's Close arrives before closed")
    func lastMessageBeforeClose() async throws {
        let peer = try Peer("say-close")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let events = await run("ws://127.0.0.1:\(peer.port)/")
            #expect(
                events == [
                    .opened, .text("last words"),
                    .closed(CloseReport(initiator: .server, code: .normalClosure, reason: "done")),
                ])
        }
    }

    @Test("a server that goes silent after the handshake hits the idle timeout")
    func idleTimeout() async throws {
        let peer = try Peer("silent")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var options = WebSocketClient.Options()
            options.idleTimeout = .milliseconds(400)
            let start = ContinuousClock.now
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options)
            let elapsed = ContinuousClock.now - start
            #expect(events.first == .opened)
            let report = try #require(closedReport(events))
            #expect(report.initiator == .transport && report.code == .abnormalClosure)
            #expect(report.reason.hasPrefix("idle timeout: no frame from the server for"))
            #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(3))
        }
    }

    @Test("a stall of the loop itself is not the server's silence: the idle check grants a new period")
    func loopStallIsNotIdle() async throws {
        let peer = try Peer("silent")
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var options = WebSocketClient.Options()
            options.idleTimeout = .milliseconds(300)
            var stallEnded: ContinuousClock.Instant?
            var closedAt: ContinuousClock.Instant?
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options) { _, event in
                switch event {
                case .opened:
                    usleep(1_000_000)  // the loop is stuck for a second (as under a heavy load)
                    stallEnded = .now
                case .closed: closedAt = .now
                default: break
                }
            }
            #expect(events.first == .opened)
            #expect(closedReport(events)?.reason.hasPrefix("idle timeout") == true)
            // Not closed at once when the loop came back, but a full period later.
            let after = try #require(closedAt) - (try #require(stallEnded))
            #expect(after >= .milliseconds(250), "closed \(after) after the stall")
        }
    }

    @Test("client keepalive pings draw pongs that keep a quiet connection inside the idle timeout")
    func keepalive() async throws {
        let peer = try Peer("silent")  // sends no messages, but its library answers pings
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var options = WebSocketClient.Options()
            // Generous: on a loaded machine the peer's pongs can take a while.
            options.idleTimeout = .milliseconds(3000)
            options.keepaliveInterval = .milliseconds(200)
            let timers = LoopTimers()
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options) { client, event in
                if case .opened = event {
                    timers.schedule(after: .milliseconds(7000)) { client.close(code: .normalClosure, reason: "done") }
                }
            }
            #expect(events.first == .opened)
            // Alive after more than 2 idle timeouts; the server echoes our Close reason.
            #expect(closedReport(events) == CloseReport(initiator: .client, code: .normalClosure, reason: "done"))
        }
    }

    @Test("a server that stops reading makes send refuse with queueFull, never an unbounded queue")
    func backpressure() async throws {
        let peer = try Peer("silent")  // never reads its messages
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var options = WebSocketClient.Options()
            options.sendQueueLimit = 1 << 20
            var refusal: WebSocketClient.SendFailure?
            var accepted = 0
            var largestQueue = 0
            let chunk = [UInt8](repeating: 1, count: 64 << 10)
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options) { client, event in
                guard case .opened = event else { return }
                for _ in 0..<4000 {
                    do throws(WebSocketClient.SendFailure) {
                        try client.send(binary: chunk)
                        accepted += 1
                        largestQueue = max(largestQueue, client.pendingBytes)
                    } catch {
                        refusal = error
                        break
                    }
                }
                client.abort(reason: "test over")
            }
            guard case .queueFull(let pending) = refusal else {
                Issue.record("send never refused; accepted \(accepted) chunks")
                return
            }
            #expect(pending > 0 && pending + chunk.count > options.sendQueueLimit)
            #expect(largestQueue <= options.sendQueueLimit + chunk.count)
            #expect(closedReport(events)?.reason == "test over")
        }
    }

    @Test("issue #12 row 4: a server that ignores our Close and keeps sending is cut off after close_timeout")
    func ignoredClose() async throws {
        let peer = try Peer("ignore-close")
        try await onLoop {
            var options = WebSocketClient.Options()
            options.closeTimeout = .milliseconds(300)
            var closedAt: ContinuousClock.Instant?
            let events = await run("ws://127.0.0.1:\(peer.port)/", options: options) { client, event in
                if case .text = event, closedAt == nil {
                    closedAt = .now
                    client.close(code: .normalClosure, reason: "bye")
                    // Bounded even if the close timeout never fires.
                    LoopExecutor.shared.queue.asyncAfter(deadline: .now() + .seconds(5)) {
                        LoopActor.assumeIsolated { client.abort(reason: "test safety net") }
                    }
                }
            }
            let elapsed = closedAt.map { ContinuousClock.now - $0 } ?? .zero
            #expect(elapsed >= .milliseconds(280) && elapsed < .seconds(3), "\(elapsed)")
            let report = closedReport(events)
            #expect(report?.code == .abnormalClosure)
            #expect(report?.reason.contains("did not end the connection") == true, "\(String(describing: report))")
        }
        // The socket is closed, not just forgotten: the server sees EOF.
        #expect(peer.waitForOutput(timeout: .seconds(5)) { $0.contains("EOF") })
    }

    @Test("a connection we failed, to a server that does not read and keeps trickling, still ends at close_timeout")
    func failedAndStuck() async throws {
        let peer = try Peer("stuck-then-bad", "3000000")
        try await onLoop {
            var options = WebSocketClient.Options()
            options.closeTimeout = .milliseconds(500)
            options.idleTimeout = .seconds(60)
            options.sendQueueLimit = 32 << 20  // our pongs back up behind the kernel's buffers
            var failedAt: ContinuousClock.Instant?
            var wasOpen = false
            let url = try! WebSocketURL.parse("ws://127.0.0.1:\(peer.port)/").get()
            let timers = LoopTimers()
            let holder = Holder()
            var report: CloseReport?
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let client = WebSocketClient(url: url, options: options, timers: timers) { event in
                    if case .closed(let closed) = event {
                        report = closed
                        done.resume()
                    }
                }
                holder.client = client
                client.start()
                // Bounded even if nothing ends the connection.
                LoopExecutor.shared.queue.asyncAfter(deadline: .now() + .seconds(60)) {
                    LoopActor.assumeIsolated { client.abort(reason: "test safety net") }
                }
                @LoopActor func watch() {
                    guard let client = holder.client, client.phase != .finished else { return }
                    if client.isOpen { wasOpen = true }
                    if failedAt == nil && wasOpen && !client.isOpen { failedAt = .now }
                    _ = timers.schedule(after: .milliseconds(20), slack: .milliseconds(1)) { watch() }
                }
                watch()
            }
            holder.client = nil
            #expect(report?.reason != "test safety net", "\(String(describing: report))")
            #expect(report?.code == .protocolError, "\(String(describing: report))")  // the failure we sent
            #expect(failedAt.map { ContinuousClock.now - $0 < .seconds(3) } == true)
        }
    }

    @Test("issue #12 row 5: pings from a server that never reads get no pongs past the send queue limit")
    func pingFlood() async throws {
        let peer = try Peer("ping-flood", "2000000")
        try await onLoop {
            var options = WebSocketClient.Options()
            options.sendQueueLimit = 256 << 10
            options.idleTimeout = .seconds(30)
            let holder = Holder()
            var largest = 0
            var skipped = 0
            let timers = LoopTimers()
            let url = try! WebSocketURL.parse("ws://127.0.0.1:\(peer.port)/").get()
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let client = WebSocketClient(url: url, options: options, timers: timers) { event in
                    if case .closed = event { done.resume() }
                }
                holder.client = client
                client.start()
                // Sample the queue while the pings pour in (6 s at most), then end.
                @LoopActor func sample(_ round: Int) {
                    guard let client = holder.client else { return }
                    largest = max(largest, client.pendingBytes)
                    skipped = client.pongsSkipped
                    if round == 300 || skipped > 100_000 {
                        client.abort(reason: "test over")
                        return
                    }
                    _ = timers.schedule(after: .milliseconds(20), slack: .milliseconds(1)) { sample(round + 1) }
                }
                sample(0)
            }
            holder.client = nil
            // Bounded by the limit plus what one read's pings can add.
            #expect(largest <= options.sendQueueLimit + (256 << 10) * 4, "\(largest)")
            #expect(skipped > 0)
        }
    }

    @Test("issue #12 row 8: endless empty continuation frames end with 1008, not an open record forever")
    func emptyContinuations() async throws {
        let peer = try Peer("empty-continuations")
        try await onLoop {
            let started = ContinuousClock.now
            let events = await run("ws://127.0.0.1:\(peer.port)/")
            #expect(ContinuousClock.now - started < .seconds(10))
            let report = closedReport(events)
            #expect(report?.code == .policyViolation, "\(String(describing: report))")
            #expect(report?.reason.contains("more than 131072 frames") == true)
        }
    }

    @Test("issue #12 row 9: partial messages of many servers cannot add up past the daemon-wide inbound budget")
    func inboundBudget() async throws {
        let peer = try Peer("partial", "\(1 << 20)")
        try await onLoop {
            let budget = InboundBudget(limit: 3 << 20)
            var options = WebSocketClient.Options()
            options.inboundBudget = budget
            options.connection.maxMessageSize = 4 << 20
            options.connection.maxFrameSize = 4 << 20
            let url = try! WebSocketURL.parse("ws://127.0.0.1:\(peer.port)/").get()
            let timers = LoopTimers()
            var clients: [WebSocketClient] = []
            var reports: [CloseReport] = []
            for _ in 0..<5 {
                let client = WebSocketClient(url: url, options: options, timers: timers) { event in
                    if case .closed(let report) = event { reports.append(report) }
                }
                clients.append(client)
                client.start()
            }
            // Every server has sent all but one byte of its 1 MiB frame.
            var largest = 0
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline && budget.used + reports.count * (1 << 20) < 5 << 20 - 5 {
                largest = max(largest, budget.used)
                try await Task.sleep(for: .milliseconds(20))
            }
            largest = max(largest, budget.used)
            #expect(reports.count >= 2, "\(reports)")
            #expect(reports.allSatisfy { $0.code == .policyViolation && $0.reason.contains("budget") })
            #expect(largest <= budget.limit + (256 << 10), "\(largest)")
            for client in clients { client.abort(reason: "test over") }
            #expect(budget.used == 0)
        }
    }

    @Test("a peer that accepts TCP but never answers the handshake hits the handshake timeout")
    func handshakeTimeout() async throws {
        let listener = try Listener()
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var options = WebSocketClient.Options()
            options.handshakeTimeout = .milliseconds(300)
            let events = await run("ws://127.0.0.1:\(listener.port)/", options: options)
            #expect(events.count == 1)
            #expect(closedReport(events)?.reason == "handshake timed out after 0.3 seconds")
        }
    }

    @Test("nothing listening: connection refused, reported with the address")
    func refused() async throws {
        let port = try Listener().port  // bound, then closed again: nothing listens there now
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let events = await run("ws://127.0.0.1:\(port)/")
            #expect(closedReport(events)?.reason == "connect to 127.0.0.1:\(port) failed: Connection refused")
        }
    }

    @Test("Resonite #4714: a connect that hangs is bounded by the connect timeout")
    func connectTimeout() async throws {
        // A listener whose accept queue is full: the kernel drops further SYNs.
        let listener = try Listener(backlog: 0)
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            var fillers: [Int32] = []
            for _ in 0..<4 { fillers.append(listener.connectBlocking()) }
            defer { for filler in fillers { close(filler) } }
            var options = WebSocketClient.Options()
            options.connectTimeout = .milliseconds(400)
            let start = ContinuousClock.now
            let events = await run("ws://127.0.0.1:\(listener.port)/", options: options)
            #expect(ContinuousClock.now - start < .seconds(3))
            #expect(closedReport(events)?.reason == "connect timed out after 0.4 seconds")
        }
    }

    @Test("Neos #1375: no file descriptor outlives its connection, on any path")
    func noLeaks() async throws {
        let echo = try Peer("echo")
        let silent = try Peer("silent")
        let refusedPort = try Listener().port
        // The peers start off the loop (starting them blocks); the test runs on it.
        try await onLoop {
            let ports: Set<UInt16> = [echo.port, silent.port, refusedPort]
            let before = openTCPSockets(toPorts: ports)
            #expect(before == 0)
            var seenWhileOpen: [Int] = []
            var notOpened: [String] = []
            for round in 0..<10 {
                let echoed = await run("ws://127.0.0.1:\(echo.port)/") { client, event in
                    if case .opened = event {
                        // Positive control: the counter does see an open connection.
                        seenWhileOpen.append(openTCPSockets(toPorts: ports))
                        try? client.send(text: "x")
                    }
                    if case .text = event { client.close() }
                }
                if echoed.first != .opened { notOpened.append("round \(round): \(echoed)") }
                _ = await run("ws://127.0.0.1:\(refusedPort)/")
                var options = WebSocketClient.Options()
                options.idleTimeout = .milliseconds(50)
                _ = await run("ws://127.0.0.1:\(silent.port)/", options: options)
                _ = await run("ws://127.0.0.1:\(echo.port)/") { client, event in
                    if case .opened = event { client.abort(reason: "removed in round \(round)") }
                }
            }
            // Cancel handlers close the fds on the next loop turns.
            // Positive control: every connection that opened was seen by the counter.
            #expect(seenWhileOpen.count == 10 - notOpened.count && seenWhileOpen.count >= 5, "\(notOpened)")
            #expect(seenWhileOpen.allSatisfy { $0 == 1 })
            if !notOpened.isEmpty { print("noLeaks: connections that did not open: \(notOpened)") }
            for _ in 0..<50 where openTCPSockets(toPorts: ports) > 0 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(openTCPSockets(toPorts: ports) == 0)
        }
    }
}

/// A plain TCP listener on 127.0.0.1 that never accepts.
final class Listener {
    let fd: Int32
    let port: UInt16

    init(backlog: Int32 = 16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        listen(fd, backlog)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
    }

    /// A client connection from this process, left pending in the accept queue.
    func connectBlocking() -> Int32 {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return client
    }

    deinit { close(fd) }
}
