import Foundation
import JSONValue
import TestSupport
import Testing

@Suite("permessage-deflate through the daemon: per record, shown by ws show", .serialized)
struct CompressionTests {
    @Test(
        "a record with compression \"on\" agrees it with python-websockets; one that inherits \"off\" does not; ws set changes it for the next connection"
    )
    func perRecord() throws {
        let peer = try Peer("deflate-echo")
        let daemon = try ControlledDaemon(
            """
            [security]
            allowed_url_hosts = ["127.0.0.1:\(peer.port)"]
            [[users]]
            id = "host"
            kind = "headless"
            [[sessions]]
            id = "s"
            host = "host"
            [[sessions.objects]]
            id = "zipped"
            url = "ws://127.0.0.1:\(peer.port)/"
            compression = "on"
            [[sessions.objects.reactions]]
            on = "connected"
            send = "{\\"hello\\":\\"compressed\\"}"
            [[sessions.objects]]
            id = "plain"
            url = "ws://127.0.0.1:\(peer.port)/"
            """)
        let zipped = try daemon.waitForRecord("s", "zipped") { $0["messagesIn"]?.intValue == 1 }
        #expect(zipped["compressionSetting"]?.stringValue == "on")
        let agreed = zipped["compression"]?.stringValue ?? ""
        #expect(agreed.hasPrefix("permessage-deflate;") && agreed.contains("server_no_context_takeover"), "\(agreed)")
        let plain = try daemon.waitForRecord("s", "plain") { $0["state"]?.stringValue == "open" }
        #expect(plain["compression"] == .null && plain["compressionSetting"] == .null)
        #expect(peer.waitForOutput { $0.contains("EXT none") && $0.contains("EXT PerMessageDeflate") })
        // ws show in words.
        let shown = try daemon.ctl(["ws", "show", "s", "zipped"])
        let lines = shown.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("compression") && $0.hasSuffix(" on") }, "\(shown.stdout)")
        #expect(lines.contains { $0.hasPrefix("negotiated") && $0.contains(" permessage-deflate;") }, "\(shown.stdout)")
        // A bad setting is refused and changes nothing; a good one reaches the next connection.
        let bad = try daemon.ctl(["ws", "set", "s", "plain", "--compression", "permessage-deflate; level=9"])
        #expect(
            bad.status != 0 && bad.stderr.contains("unknown permessage-deflate parameter \"level\""), "\(bad.stderr)")
        _ = try daemon.json(["ws", "set", "s", "plain", "--compression", "on"])
        _ = try daemon.json(["ws", "disconnect", "s", "plain"])
        _ = try daemon.json(["ws", "connect", "s", "plain"])
        let again = try daemon.waitForRecord("s", "plain") {
            $0["state"]?.stringValue == "open" && $0["compression"]?.stringValue != nil
        }
        #expect(again["compressionSetting"]?.stringValue == "on")
        #expect(again["compression"]?.stringValue?.hasPrefix("permessage-deflate;") == true)
        #expect(daemon.stop() == 0)
    }
}
