import Foundation
import Glibc
import TestSupport
import Testing

/// A declared world pointing at `port`; `extra` adds objects to the session.
private func worldConfig(port: UInt16, deniedPort: UInt16, socket: String, extra: String = "") -> String {
    """
    [log]
    level = "debug"
    target = "stderr"

    [daemon]
    state_directory = "\(socket).state"
    stop_timeout = "3s"

    [control]
    socket = "\(socket)"

    [websocket]
    connect_timeout = "10s"

    [security]
    allowed_url_hosts = ["127.0.0.1:\(port)"]

    [[users]]
    id = "host"
    kind = "headless"

    [[sessions]]
    id = "lobby"
    host = "host"

    [[sessions.objects]]
    id = "greeter"
    url = "ws://127.0.0.1:\(port)/greet"

    [[sessions.objects.reactions]]
    on = "connected"
    send = "hello from wshostd"

    [[sessions.objects]]
    id = "stranger"
    url = "ws://127.0.0.1:\(deniedPort)/"
    \(extra)
    """
}

@Suite("The daemon hosts its declared world against a real peer", .serialized)
struct DaemonWorldTests {
    @Test(
        "connect, greet, receive the echo; headless denial names the host:port; reload adds an object; stop sends 1001")
    func declaredWorld() throws {
        let peer = try Peer("echo-log")
        let socket = TemporaryFile.path(suffix: ".sock")
        defer { try? FileManager.default.removeItem(atPath: socket + ".state") }
        let config = try TemporaryFile(worldConfig(port: peer.port, deniedPort: 9, socket: socket))
        let daemon = ChildProcess("wshostd", ["--config", config.path])
        try daemon.start()
        defer { if daemon.isRunning { daemon.signal(SIGKILL) } }

        #expect(
            daemon.waitForStandardError { $0.contains("notice wshostd: connected") && $0.contains("object.id=greeter") }
        )
        #expect(
            daemon.waitForStandardError {
                $0.contains("received text") && $0.contains("ws.data=\"hello from wshostd\"")
            })
        #expect(
            daemon.waitForStandardError {
                $0.contains("add \"127.0.0.1:9\" to security.allowed_url_hosts to allow it")
                    && $0.contains("object.id=stranger")
            })

        try config.write(
            worldConfig(
                port: peer.port, deniedPort: 9, socket: socket,
                extra: "\n[[sessions.objects]]\nid = \"second\"\nurl = \"ws://127.0.0.1:\(peer.port)/second\"\n"))
        daemon.signal(SIGHUP)
        #expect(
            daemon.waitForStandardError { $0.contains("object.id=second") && $0.contains("notice wshostd: connected") })

        let stopStart = ContinuousClock.now
        daemon.signal(SIGTERM)
        #expect(daemon.wait() == 0)
        #expect(ContinuousClock.now - stopStart < .seconds(3))
        // The peer saw both connections end with 1001 (going away).
        #expect(peer.waitForOutput { $0.components(separatedBy: "CLOSED 1001").count - 1 == 2 }, "\(peer.output)")
        #expect(!daemon.standardError.contains("stop timeout"))
    }
}
