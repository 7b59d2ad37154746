/// Incremental UTF-8 validation (RFC 3629), fed as bytes arrive so that text
/// fails on the first invalid byte, not at the end of the message (RFC 6455
/// §8.1). A table-driven DFA after Björn Höhrmann's decoder, checking
/// overlongs, surrogates and code points above U+10FFFF.
public struct UTF8Validator: Sendable {
    public enum Status: Equatable, Sendable {
        /// Every byte so far is valid and ends on a character boundary.
        case complete
        /// Valid so far, in the middle of a multi-byte character.
        case incomplete
        /// An invalid byte was seen.
        case invalid
    }

    private var state: UInt8 = Self.accept

    public init() {}

    static let accept: UInt8 = 0
    static let reject: UInt8 = 12

    /// Byte classes (Höhrmann's table, first 256 entries).
    private static let classes: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256)
        for b in 0x80...0x8F { table[b] = 1 }
        for b in 0x90...0x9F { table[b] = 9 }
        for b in 0xA0...0xBF { table[b] = 7 }
        for b in 0xC0...0xC1 { table[b] = 8 }
        for b in 0xC2...0xDF { table[b] = 2 }
        table[0xE0] = 10
        for b in 0xE1...0xEC { table[b] = 3 }
        table[0xED] = 4
        for b in 0xEE...0xEF { table[b] = 3 }
        table[0xF0] = 11
        for b in 0xF1...0xF3 { table[b] = 6 }
        table[0xF4] = 5
        for b in 0xF5...0xFF { table[b] = 8 }
        return table
    }()

    /// Transitions: state (multiple of 12) + class → next state.
    private static let transitions: [UInt8] = [
        0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
        12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12, 12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
        12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    ]

    /// Feeds `bytes`; returns the status after them. Once invalid, stays invalid.
    @discardableResult
    public mutating func feed<Bytes: Collection>(_ bytes: Bytes) -> Status where Bytes.Element == UInt8 {
        var state = self.state
        if state == Self.reject { return .invalid }
        Self.classes.withUnsafeBufferPointer { classes in
            Self.transitions.withUnsafeBufferPointer { transitions in
                for byte in bytes {
                    // ASCII fast path: from the accept state an ASCII byte stays there.
                    if byte < 0x80 && state == Self.accept { continue }
                    state = transitions[Int(state) + Int(classes[Int(byte)])]
                    if state == Self.reject { break }
                }
            }
        }
        self.state = state
        return status
    }

    public var status: Status {
        switch state {
        case Self.accept: return .complete
        case Self.reject: return .invalid
        default: return .incomplete
        }
    }

    public mutating func reset() { state = Self.accept }
}
