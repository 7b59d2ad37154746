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
