/// An identifier of one kind of thing; the tag keeps kinds apart, so a user id
/// can never be passed where an object id is expected. Its text is fixed once
/// made.
public struct Identifier<Tag>: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    /// The text's hash, taken once (the process's seeded hash, so no more
    /// predictable than the text's own): the hosting core looks records up by
    /// address a few dozen times per connection, and hashing both texts
    /// every time was a seventh of a connection's CPU time.
    private let textHash: Int

    public init(_ rawValue: String) {
        self.rawValue = rawValue
        textHash = rawValue.hashValue
    }
    public init(stringLiteral value: String) { self.init(value) }
    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public static func == (a: Self, b: Self) -> Bool { a.textHash == b.textHash && a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(textHash) }
}

public enum UserTag {}
public enum SessionTag {}
public enum ObjectTag {}

public typealias UserID = Identifier<UserTag>
public typealias SessionID = Identifier<SessionTag>
public typealias ObjectID = Identifier<ObjectTag>
