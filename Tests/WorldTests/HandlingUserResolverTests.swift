import Testing

@testable import World

@Suite("Handling user: the SPEC §3 priority")
struct HandlingUserResolverTests {
    static let object = WorldObject(
        id: "o", name: "ticker", wornBy: "wearer", definedUser: "defined", spawnedBy: "spawner",
        interactingUser: "grabber")

    /// Who is present → who handles (automatic), and from which rule.
    @Test(
        "automatic: the first present of wornBy, definedUser, spawnedBy, interactingUser, host",
        arguments: [
            (["wearer", "defined", "spawner", "grabber", "host"], "wearer", HandlingUserResolver.Source.wornBy),
            (["defined", "spawner", "grabber", "host"], "defined", .definedUser),
            (["spawner", "grabber", "host"], "spawner", .spawnedBy),
            (["grabber", "host"], "grabber", .interactingUser),
            (["host"], "host", .sessionHost),
            (["wearer", "host"], "wearer", .wornBy),
            (["grabber"], "grabber", .interactingUser),  // the host may be absent too
            (["spawner", "host", "stranger"], "spawner", .spawnedBy),
        ] as [([String], String, HandlingUserResolver.Source)])
    func priority(present: [String], expected: String, source: HandlingUserResolver.Source) {
        let session = Session(id: "s", name: "world", host: "host", present: Set(present.map { UserID($0) }))
        let result = HandlingUserResolver.resolve(.automatic, object: Self.object, session: session)
        #expect(result?.user == UserID(expected))
        #expect(result?.source == source)
    }

    @Test("absent relations are skipped; nobody applicable present means no handling user")
    func nobody() {
        let session = Session(id: "s", name: "world", host: "host", present: ["stranger"])
        #expect(HandlingUserResolver.resolve(.automatic, object: Self.object, session: session) == nil)
        let bare = WorldObject(id: "b", name: "bare")
        let withHost = Session(id: "s", name: "world", host: "host", present: ["host"])
        #expect(HandlingUserResolver.resolve(.automatic, object: bare, session: withHost)?.user == "host")
    }

    @Test("a pinned user handles only while present, whatever the priority says")
    func pinned() {
        let session = Session(id: "s", name: "world", host: "host", present: ["wearer", "pinned"])
        #expect(
            HandlingUserResolver.resolve(.pinned("pinned"), object: Self.object, session: session)?.user == "pinned")
        #expect(
            HandlingUserResolver.resolve(.pinned("pinned"), object: Self.object, session: session)?.source == .pinned)
        let gone = Session(id: "s", name: "world", host: "host", present: ["wearer", "host"])
        #expect(HandlingUserResolver.resolve(.pinned("pinned"), object: Self.object, session: gone) == nil)
    }
}
