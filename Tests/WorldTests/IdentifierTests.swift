import Testing

@testable import World

@Suite("Identifiers: equality and hashing follow their text")
struct IdentifierTests {
    @Test("equal texts are equal ids with equal hashes, canonical equivalents included; others differ")
    func equality() {
        let composed = ObjectID("caf\u{E9}")
        let decomposed = ObjectID("cafe\u{301}")
        #expect(composed == decomposed)
        #expect(composed.hashValue == decomposed.hashValue)
        #expect(ObjectID("door") != ObjectID("Door"))
        #expect(ObjectID("door") != ObjectID("door "))
        var records: [RecordAddress: Int] = [:]
        for session in 0..<50 {
            for object in 0..<50 {
                records[RecordAddress(session: SessionID("s\(session)"), object: ObjectID("o\(object)"))] =
                    session * 100 + object
            }
        }
        #expect(records.count == 2500)
        #expect(records[RecordAddress(session: "s7", object: "o42")] == 742)
        #expect(records[RecordAddress(session: "s42", object: "o7")] == 4207)
        #expect(records[RecordAddress(session: "s7", object: "o50")] == nil)
        #expect(records[RecordAddress(session: "s1", object: "caf\u{E9}")] == nil)
    }

    @Test("table hashes: equal ids hash alike under every seed; swapped or different ids and seeds spread")
    func tableHashes() {
        let composed = ObjectID("caf\u{E9}")
        let decomposed = ObjectID("cafe\u{301}")
        for seed in [0, 1, -1, 0x5EED, Int.max] {
            #expect(composed._rawHashValue(seed: seed) == decomposed._rawHashValue(seed: seed))
            let a = RecordAddress(session: "lobby", object: composed)
            let b = RecordAddress(session: SessionID("lobby"), object: decomposed)
            #expect(a._rawHashValue(seed: seed) == b._rawHashValue(seed: seed))
        }
        // The same two texts as session and object, swapped, are other addresses with other hashes.
        let ab = RecordAddress(session: "x", object: "y")
        let ba = RecordAddress(session: "y", object: "x")
        #expect(ab._rawHashValue(seed: 0) != ba._rawHashValue(seed: 0))
        #expect(ab._rawHashValue(seed: 1) != ab._rawHashValue(seed: 2))
        // 4096 addresses (64 sessions × 64 objects) over 4096 buckets, as a Dictionary's
        // mask takes them: random hashes fill about 63 % (1 - 1/e); a hash that lost
        // either id would fill at most 64. Two seeds, as two tables of one size have.
        let addresses = (0..<4096).map { i in
            RecordAddress(session: SessionID("s\(i % 64)"), object: ObjectID("o\(i / 64)"))
        }
        for seed in [7, 0x1234_5678] {
            let buckets = Set(addresses.map { $0._rawHashValue(seed: seed) & 4095 })
            #expect(buckets.count > 2400, "\(buckets.count) of 4096 buckets used")
        }
    }
}
