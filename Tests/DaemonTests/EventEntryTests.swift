import Control
import HostingCore
import JSONValue
import Testing
import WebSocketProtocol

@testable import Daemon
@testable import World

/// The journal keeps the hosting core's events compact and makes their
/// fields when a subscriber reads them: the events must come out as the
/// stream documents them (docs/control-protocol.md), and the size estimate
/// that bounds the history in bytes must follow the lines' real length.
@Suite("The journal's compact events")
struct EventEntryTests {
    static let address = RecordAddress(session: "s", object: "o")

    static let prompt = ConsentPrompt(
        id: 4, user: "ann", key: AccessKey(host: "h", port: 1),
        request: AccessRequest(
            requester: .init(session: "s", object: "o", attempt: 2), user: "ann", key: AccessKey(host: "h", port: 1),
            reason: ""))

    /// Each event, its type, the user it names and its fields.
    static let events: [(Hosting.Event, ControlEventType, UserID?, [String: JSON])] = [
        (.connected(address, user: "ann"), .connected, "ann", [:]),
        (
            .disconnected(address, CloseReport(initiator: .server, code: .normalClosure, reason: "bye")), .disconnected,
            nil,
            ["initiator": .string("server"), "code": .int(1000), "reason": .string("bye")]
        ),
        (.attemptFailed(address, reason: "refused"), .attemptFailed, nil, ["reason": .string("refused")]),
        (.sendError(address, reason: "too fast"), .sendError, nil, ["reason": .string("too fast")]),
        (
            .consentAsked(address, user: "ann", key: AccessKey(host: "::1", port: 8080)), .consentAsked, "ann",
            ["hostPort": .string("[::1]:8080")]
        ),
        (
            .consentDecided(address, .allowed, .allowedByAllowList), .consentDecided, nil,
            ["allowed": .bool(true), "outcome": .string("allowed by security.allowed_url_hosts")]
        ),
        (
            .consentDecided(address, .denied, .headlessDenied(hostPort: "h:1")), .consentDecided, nil,
            [
                "allowed": .bool(false),
                "outcome": .string("the handling user is headless and cannot be asked; allow-list h:1"),
            ]
        ),
        (.stateChanged(address, .idle), .stateChanged, nil, ["state": .string("idle")]),
        (.handlingUserChanged(address, nil), .handlingUserChanged, nil, ["handlingUser": .null]),
        (.handlingUserChanged(address, "bob"), .handlingUserChanged, "bob", ["handlingUser": .string("bob")]),
        (
            .worldChanged(.join("s", "bob"), by: "op"), .worldChanged, "bob",
            ["op": .string("join"), "by": .string("op")]
        ),
        (
            .receivedText(address, String(repeating: "é", count: 40_000)), .received, nil,
            [
                "text": .string(String(repeating: "é", count: 32_768)), "size": .int(80_000),
                "truncated": .bool(true),
            ]
        ),
        (
            .receivedBinary(address, [0, 1, 2, 255]), .received, nil,
            ["binary": .string("AAEC/w=="), "size": .int(4), "truncated": .bool(false)]
        ),
        (.sendStart(address), .sendStart, nil, [:]),
        (.sent(address), .sent, nil, [:]),
        (
            .prompt(prompt), .prompt, "ann",
            [
                "prompt": .object([
                    "prompt": .int(4), "user": .string("ann"), "host": .string("h"), "port": .int(1),
                    "hostPort": .string("h:1"), "scope": .string("websocket"), "reason": .string("s/o connects to h:1"),
                    "session": .string("s"), "object": .string("o"),
                ])
            ]
        ),
        (.promptDismissed(prompt), .promptDismissed, "ann", ["prompt": .int(4)]),
    ]

    @Test("each kind of event comes out with its documented fields, numbered when read")
    func fields() {
        for (event, type, user, fields) in Self.events {
            let made = HostingEventEntry(event, time: 12.5).event(seq: 7)
            #expect(made.seq == 7 && made.time == 12.5 && made.type == type, "\(event)")
            #expect(made.user == user, "\(event)")
            #expect(made.fields == fields, "\(event)")
            if case .worldChanged = event {
                #expect(made.session == "s" && made.object == nil && made.user == "bob")
            } else {
                #expect(made.session == "s" && made.object == "o", "\(event)")
            }
        }
    }

    @Test("the size estimate stays within half and twice the line's length")
    func sizes() {
        for (event, _, _, _) in Self.events {
            let entry = HostingEventEntry(event, time: 1_700_000_000.123)
            let line = entry.event(seq: 123_456).line.utf8.count
            #expect(entry.approximateSize * 2 >= line && entry.approximateSize <= line * 2, "\(event): \(line)")
        }
    }
}
