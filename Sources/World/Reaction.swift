/// SPEC §5: a small in-world program wired to a record's events.
public struct Reaction: Equatable, Sendable {
    public enum Trigger: String, Equatable, Sendable, CaseIterable {
        case connected, received, disconnected
    }

    public enum Effect: Equatable, Sendable {
        /// Send the received message back unchanged (text or binary).
        case echo
        /// Send a text; `{data}` in the template becomes the received text.
        case send(template: String)
        /// Send the received message through another object's record.
        case forward(to: ObjectID)
    }

    public var on: Trigger
    public var effect: Effect

    public init(on: Trigger, _ effect: Effect) {
        self.on = on
        self.effect = effect
    }

    /// The template with `{data}` replaced.
    public static func render(_ template: String, data: String) -> String {
        template.split(separator: "{data}", omittingEmptySubsequences: false).joined(separator: data)
    }
}

/// A WebSocket message's content: received, or on its way out through a record.
public enum Payload: Equatable, Sendable {
    case text(String)
    case binary([UInt8])

    public var size: Int {
        switch self {
        case .text(let text): return text.utf8.count
        case .binary(let bytes): return bytes.count
        }
    }
}

extension Reaction {
    /// What this reaction sends, and through which object of the session, when
    /// its trigger fires on `object` (`message`: what was received, nil for
    /// connected and disconnected); nil when it sends nothing (an echo or a
    /// forward with no message). A binary message renders `{data}` as empty.
    public func response(to message: Payload?, at object: ObjectID) -> (object: ObjectID, message: Payload)? {
        switch effect {
        case .echo:
            return message.map { (object, $0) }
        case .send(let template):
            let data: String
            if case .text(let text) = message { data = text } else { data = "" }
            return (object, .text(Self.render(template, data: data)))
        case .forward(let target):
            return message.map { (target, $0) }
        }
    }
}
