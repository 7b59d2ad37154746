import DequeModule
import World

/// Messages received for one attempt and not yet delivered (to reactions and
/// the event stream), with the flood rule (Resonite #19, #3365): past
/// `Hosting.FloodLimits` the queue is shed and the connection closed, or its
/// oldest messages dropped. Pure.
public struct InboundQueue: Sendable {
    public private(set) var messages = Deque<Payload>()
    public private(set) var bytes = 0
    /// Dropping under drop-oldest since the queue last emptied (one flood counted).
    private var flooding = false

    public init() {}

    public var isEmpty: Bool { messages.isEmpty }

    /// What the flood rule says after a message was queued.
    public enum Verdict: Equatable, Sendable {
        /// Within the limits: the message waits for its turn.
        case queued
        /// Drop-oldest: `count` oldest messages (`bytes` of them) were dropped;
        /// `newFlood` on the first drop since the queue was last within its limits.
        case droppedOldest(count: Int, bytes: Int, newFlood: Bool)
        /// Close policy, past a limit: shed the queue and close with 1008.
        case overflow(reason: String)
    }

    /// Queues `message` and applies `limits`.
    public mutating func push(_ message: Payload, limits: Hosting.FloodLimits) -> Verdict {
        messages.append(message)
        bytes += message.size
        guard messages.count > limits.messages || bytes > limits.bytes else { return .queued }
        switch limits.policy {
        case .close:
            return .overflow(
                reason: "inbound flood: more than \(limits.messages) messages or \(limits.bytes) bytes waiting")
        case .dropOldest:
            var count = 0
            var size = 0
            while messages.count > limits.messages || bytes > limits.bytes, let first = messages.popFirst() {
                bytes -= first.size
                size += first.size
                count += 1
            }
            let newFlood = !flooding
            flooding = true
            return .droppedOldest(count: count, bytes: size, newFlood: newFlood)
        }
    }

    /// The oldest waiting message.
    public mutating func popFirst() -> Payload? {
        guard let message = messages.popFirst() else { return nil }
        bytes -= message.size
        if messages.isEmpty { flooding = false }
        return message
    }

    /// Empties the queue; what was shed.
    public mutating func shed() -> (count: Int, bytes: Int) {
        defer { self = InboundQueue() }
        return (messages.count, bytes)
    }

    /// Why a record is closed when the daemon-wide inbound budget is spent.
    public static func budgetSpent(limit: Int) -> String {
        "the \(limit)-byte budget for inbound data of all records is spent"
    }
}

/// How many messages one loop turn delivers across all records, so one
/// flooding record cannot starve the others or the loop's timers; records
/// with waiting messages take turns (`perVisit` each). Pure.
public struct DeliveryTurn: Sendable {
    /// Messages delivered to one record before the round robin moves on.
    public static let perVisit = 64

    public var budget: Int
    public private(set) var delivered = 0
    /// The loop turn being counted (the shell numbers its turns).
    public private(set) var turn: UInt64 = 0

    public init(budget: Int) {
        self.budget = budget
    }

    /// Counts for loop turn `number`: a turn other than the one counted so
    /// far starts the count over.
    public mutating func enter(_ number: UInt64) {
        guard number != turn else { return }
        turn = number
        delivered = 0
    }

    /// Counts one delivery if the turn has room for it.
    public mutating func take() -> Bool {
        guard delivered < budget else { return false }
        delivered += 1
        return true
    }

    public var hasRoom: Bool { delivered < budget }

    /// A new loop turn.
    public mutating func reset() { delivered = 0 }
}
