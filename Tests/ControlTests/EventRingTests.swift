import Testing

@testable import Control

@Suite("The journal's ring: oldest first through wrapping and growth, moved in and out")
struct EventRingTests {
    final class Box: Sendable {
        let value: Int
        init(_ value: Int) { self.value = value }
    }

    /// The ring's contents, oldest first, read by position.
    private func contents(_ ring: EventRing<Box>) -> [Int] { (0..<ring.count).map { ring[$0].value } }

    @Test("appends and pops keep the order across the wrap and across growth while wrapped")
    func orderThroughWrapAndGrowth() {
        var ring = EventRing<Box>()
        var model: [Int] = []  // what a plain array says
        var next = 0
        // Fill part way, drop some from the front (the head moves), then fill
        // past the capacity while the elements wrap around the end.
        for round in 0..<6 {
            for _ in 0..<(13 + round * 7) {
                ring.append(Box(next))
                model.append(next)
                next += 1
            }
            for _ in 0..<(9 + round * 3) {
                #expect(ring.popFirst()?.value == model.removeFirst())
            }
            #expect(ring.count == model.count)
            #expect(contents(ring) == model)
        }
        #expect(ring.slots.count > 16)  // it grew, more than once
        while let box = ring.popFirst() { #expect(box.value == model.removeFirst()) }
        #expect(model.isEmpty && ring.isEmpty && ring.popFirst() == nil)
    }

    @Test("an element goes in and comes out without a copy left behind")
    func movesInAndOut() {
        var ring = EventRing<Box>()
        ring.append(Box(1))
        ring.append(Box(2))
        var first = ring.popFirst()!
        #expect(isKnownUniquelyReferenced(&first))  // the ring no longer holds it
        #expect(first.value == 1 && ring.count == 1 && ring[0].value == 2)
    }
}
