import MonotonicTime

/// SPEC §2: a record's read-only status beside `IsConnected`: the last error,
/// when it last connected and disconnected, and traffic in each direction.
public struct RecordStatus: Equatable, Sendable {
    public var lastError: String?
    public var connectedAt: MonotonicInstant?
    public var disconnectedAt: MonotonicInstant?
    public var messagesIn = 0
    public var messagesOut = 0
    public var bytesIn = 0
    public var bytesOut = 0
    /// Inbound floods met (each closed the connection or started dropping).
    public var floods = 0
    /// Messages dropped under the drop-oldest policy.
    public var dropped = 0
    /// Sends refused because the record was past its sends per second.
    public var sendsRefused = 0
    /// permessage-deflate on the last connection: the parameters agreed, or
    /// why there are none ("declined by the server"); nil: not offered.
    public var compression: String?

    public init() {}
}
