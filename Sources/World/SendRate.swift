import MonotonicTime

/// A token bucket: `perSecond` tokens a second, holding at most one second's
/// worth. A record's sends (`[limits] sends_per_second`) and the pace of
/// connection attempts (`AttemptPacer`) are bounded with it. Pure: the time
/// is passed in.
public struct SendRate: Equatable, Sendable {
    /// Tokens per second; 0 is no limit. A new rate starts with a full bucket.
    public var perSecond: Int {
        didSet {
            tokens = Double(perSecond)
            refilled = nil
        }
    }
    private var tokens: Double
    private var refilled: MonotonicInstant?

    public init(perSecond: Int) {
        self.perSecond = perSecond
        tokens = Double(perSecond)
    }

    /// Takes a token at `now`; false when none is left.
    public mutating func take(now: MonotonicInstant) -> Bool {
        guard wait(now: now) == .zero else { return false }
        consume()
        return true
    }

    /// How long until a token is there (zero: now), without taking it.
    public mutating func wait(now: MonotonicInstant) -> Duration {
        guard perSecond > 0 else { return .zero }
        if let refilled {
            // An earlier `now` than the last one adds nothing and does not move
            // the refill back (that would count the same time twice).
            guard now > refilled else { return tokens < 1 ? untilNextToken : .zero }
            let elapsed = Double((now - refilled).nanosecondsClamped) / 1e9
            tokens = min(Double(perSecond), tokens + elapsed * Double(perSecond))
        }
        refilled = now
        guard tokens < 1 else { return .zero }
        return untilNextToken
    }

    private var untilNextToken: Duration {
        .nanoseconds(Int64(((1 - tokens) / Double(perSecond) * 1e9).rounded(.up)))
    }

    /// Takes a token that `wait` said is there.
    public mutating func consume() {
        guard perSecond > 0 else { return }
        tokens -= 1
    }

    /// Full again: nothing taken for a second or more (a pacer forgets it).
    public func isFull(now: MonotonicInstant) -> Bool {
        guard let refilled else { return true }
        return now - refilled >= .seconds(1)
    }
}

/// The pace of connection attempts: at most `perSecond` in all and
/// `perDestination` a second to one host:port (a burst of one second's worth
/// each). An attempt over the pace waits for its turn instead of failing: a
/// reconnect wave of thousands of records is spread out, and world users
/// cannot point the daemon at a third party as a connection flood. Pure.
public struct AttemptPacer: Sendable {
    private var global: SendRate
    private var destinations: [String: SendRate] = [:]
    public var perDestination: Int {
        didSet { destinations.removeAll() }
    }

    public init(perSecond: Int, perDestination: Int) {
        global = SendRate(perSecond: perSecond)
        self.perDestination = perDestination
    }

    public var perSecond: Int {
        get { global.perSecond }
        set { global.perSecond = newValue }
    }

    /// Zero: go now (the attempt is counted); else how long to wait before asking again.
    public mutating func admit(_ destination: String, now: MonotonicInstant) -> Duration {
        var rate = destinations[destination] ?? SendRate(perSecond: perDestination)
        let wait = max(rate.wait(now: now), global.wait(now: now))
        if wait == .zero {
            rate.consume()
            global.consume()
        }
        destinations[destination] = rate
        if destinations.count > 4096 { destinations = destinations.filter { !$0.value.isFull(now: now) } }
        return wait
    }
}
