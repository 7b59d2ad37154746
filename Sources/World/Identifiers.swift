/// An identifier of one kind of thing; the tag keeps kinds apart, so a user id
/// can never be passed where an object id is expected. Its text is fixed once
/// made.
public struct Identifier<Tag>: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    /// The text's hash, taken once (the process's seeded hash, so no more
    /// predictable than the text's own): the hosting core looks records up by
    /// address a few dozen times per connection, and hashing both texts
    /// every time was a seventh of a connection's CPU time.
    let textHash: Int

    public init(_ rawValue: String) {
        self.rawValue = rawValue
        textHash = rawValue.hashValue
    }
    public init(stringLiteral value: String) { self.init(value) }
    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public static func == (a: Self, b: Self) -> Bool { a.textHash == b.textHash && a.rawValue == b.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(textHash) }
    /// What Dictionary and Set hash: the text's hash mixed with the table's
    /// seed, without a SipHash round of its own (see `HashMix`).
    public func _rawHashValue(seed: Int) -> Int { HashMix.mix(textHash, seed: seed) }
}

/// Table hashes for keys whose bits are already a seeded SipHash (an
/// identifier's `textHash`): Dictionary and Set ask for `_rawHashValue(seed:)`
/// at every lookup, and the default runs a whole SipHash over `hash(into:)`,
/// about 300 instructions, some 50 times per connection in the hosting core.
/// The bits are as unpredictable as the text's own hash; the mix (splitmix64's
/// finalizer) spreads the table's seed over every bit, so that copying one
/// table into a smaller one does not cluster.
public enum HashMix {
    public static func mix(_ bits: Int, seed: Int) -> Int {
        var z = UInt64(truncatingIfNeeded: bits ^ seed) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: z ^ (z >> 31))
    }

    /// Two such hashes as one: the first multiplied by an odd constant, so
    /// that swapping them changes the result.
    public static func combine(_ a: Int, _ b: Int) -> Int { (a &* -0x61C8_8646_80B5_83EB) ^ b }
}

public enum UserTag {}
public enum SessionTag {}
public enum ObjectTag {}

public typealias UserID = Identifier<UserTag>
public typealias SessionID = Identifier<SessionTag>
public typealias ObjectID = Identifier<ObjectTag>
