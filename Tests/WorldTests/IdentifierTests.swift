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
}
