/// The journal's storage: a ring of slots, oldest first, that takes each
/// entry by moving it in and gives the oldest back by moving it out.
/// (A `Deque` copied every appended entry, through its value witnesses, and
/// destroyed the caller's: about 3k instructions per connection, seven events.)
@usableFromInline
struct EventRing<Element: Sendable>: Sendable {
    /// Capacity `slots.count`; `count` of them, from `head` on (wrapping), hold elements.
    @usableFromInline var slots: [Element?] = []
    @usableFromInline var head = 0
    @usableFromInline private(set) var count = 0

    @inlinable init() {}

    @inlinable var isEmpty: Bool { count == 0 }

    /// The slot of the element at `position` (0: the oldest).
    @inlinable func slot(_ position: Int) -> Int {
        let slot = head + position
        return slot >= slots.count ? slot - slots.count : slot
    }

    @inlinable mutating func append(_ element: consuming Element) {
        if count == slots.count { grow() }
        slots[slot(count)] = consume element
        count += 1
    }

    /// The oldest element, moved out; nil when empty.
    @inlinable mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = slots[head].take()
        head = head + 1 == slots.count ? 0 : head + 1
        count -= 1
        return element
    }

    /// The element at `position` (0: the oldest), which must be below `count`.
    @inlinable subscript(position: Int) -> Element {
        precondition(position >= 0 && position < count, "position out of the ring")
        return slots[slot(position)]!
    }

    /// Twice the slots (16 at first), the elements moved to the front in order.
    /// (Written in place: `Array(repeating: nil, count:)` copied its nil into
    /// every slot through the value witnesses.)
    @inlinable mutating func grow() {
        let capacity = max(16, slots.count * 2)
        let larger = [Element?](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            let base = buffer.baseAddress!
            for position in 0..<count { (base + position).initialize(to: slots[slot(position)].take()) }
            for position in count..<capacity { (base + position).initialize(to: nil) }
            initialized = capacity
        }
        slots = larger
        head = 0
    }
}
