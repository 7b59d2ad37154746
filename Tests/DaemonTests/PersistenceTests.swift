import MonotonicTime
import StateStore
import Testing
import World

@testable import Daemon

@Suite("What a batch of world changes writes to the store")
struct PersistenceTests {
    @Test(
        "rows come from the final world: a session restarted in the batch is rewritten whole; removed items are deleted"
    )
    func batch() throws {
        var world = World()
        let now = MonotonicInstant(nanoseconds: 0)
        let setup: [WorldChange] = [
            .addUser(User(id: "host", name: "host", kind: .headless)),
            .startSession(Session(id: "s", name: "s", host: "host", present: ["host"])),
            .spawn("s", WorldObject(id: "old", name: "old")), .spawn("s", WorldObject(id: "kept", name: "kept")),
        ]
        for change in setup { _ = try world.apply(change, now: now) }
        let batch: [WorldChange] = [
            .closeSession("s"), .startSession(Session(id: "s", name: "s2", host: "host", present: ["host"])),
            .spawn("s", WorldObject(id: "new", name: "new")), .remove("s", "new"),
            .spawn("s", WorldObject(id: "other", name: "other")),
        ]
        for change in batch { _ = try world.apply(change, now: now) }
        let delta = StateStore.Delta.after(batch, in: world)
        #expect(delta.removedSessions == ["s"])  // deletes the session's old objects
        #expect(delta.sessions.map(\.name) == ["s2"])
        #expect(delta.objects.map(\.object.id) == ["other"])
        #expect(delta.removedObjects == [RecordAddress(session: "s", object: "new")])
        #expect(delta.users.isEmpty)
    }
}
