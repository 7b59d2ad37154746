import Dispatch

/// The daemon's event loop: one Dispatch serial queue. The poller's turns
/// (every socket and timer), the signal sources and the control listener all
/// run on this queue, and
/// `LoopActor` (whose executor this is) confines the daemon's state to it.
///
/// Linux has no `DispatchSerialQueue` executor, so this small `SerialExecutor`
/// runs actor jobs with `queue.async`; `checkIsolated` lets the runtime and
/// `LoopActor.assumeIsolated` verify that code runs on the queue.
public final class LoopExecutor: SerialExecutor, @unchecked Sendable {
    /// The one loop of this process.
    public static let shared = LoopExecutor(label: "wshostd.loop")

    public let queue: DispatchQueue
    private static let key = DispatchSpecificKey<ObjectIdentifier>()

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
        queue.setSpecific(key: Self.key, value: ObjectIdentifier(self))
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { unowned.runSynchronously(on: executor) }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }

    /// True when the calling code runs on this loop's queue.
    public var isCurrent: Bool {
        DispatchQueue.getSpecific(key: Self.key) == ObjectIdentifier(self)
    }
}

/// The isolation domain of everything that lives on the event loop. Types and
/// functions marked `@LoopActor` may only be touched from the loop queue, and
/// the compiler checks it.
@globalActor
public actor LoopActor {
    public static let shared = LoopActor()

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        LoopExecutor.shared.asUnownedSerialExecutor()
    }

    /// Runs `body` on the loop and returns its result.
    public static func run<T: Sendable>(_ body: @LoopActor @Sendable () throws -> T) async rethrows -> T {
        try await body()
    }

    /// Runs `operation` as loop-isolated code when the caller is known to be on
    /// the loop queue (a Dispatch source handler on it, a block queued on it, the
    /// poller's turn run with `sync`). Traps otherwise.
    public static func assumeIsolated<T>(
        _ operation: @LoopActor () throws -> T,
        file: StaticString = #fileID,
        line: UInt = #line
    ) rethrows -> T {
        precondition(LoopExecutor.shared.isCurrent, "not on the event loop queue", file: file, line: line)
        return try withoutActuallyEscaping(operation) { operation in
            // Same technique as `MainActor.assumeIsolated`: the precondition above
            // established the isolation the function type claims.
            try unsafeBitCast(operation, to: (() throws -> T).self)()
        }
    }
}

/// The loop's turns, numbered: a poller wake-up, a delivery round. Work that is
/// bounded per turn (deliveries) starts its count over when the number moves,
/// with no block queued to reset it.
@LoopActor
public enum LoopTurn {
    public private(set) static var number: UInt64 = 0
    /// This turn has more to do than its budget: deliveries are waiting for a
    /// later turn. The poller serves no further ready descriptors in it (what
    /// sockets hold would only be parsed and queued, with nothing answered
    /// meanwhile); they come first next turn.
    public private(set) static var isFull = false

    /// A new turn begins (called first thing by the block that is the turn).
    public static func begin() {
        number &+= 1
        isFull = false
    }

    /// Work of this turn was put off to a later one.
    public static func markFull() { isFull = true }
}
