/// An identifier of one kind of thing; the tag keeps kinds apart, so a user id
/// can never be passed where an object id is expected.
public struct Identifier<Tag>: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

public enum UserTag {}
public enum SessionTag {}
public enum ObjectTag {}

public typealias UserID = Identifier<UserTag>
public typealias SessionID = Identifier<SessionTag>
public typealias ObjectID = Identifier<ObjectTag>
