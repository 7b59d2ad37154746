import Logging
import Synchronization

/// The daemon-wide log level, shared by every logger's handler so that a
/// config reload changes the level of all of them at once.
public final class LogLevelControl: Sendable {
    private let raw: Atomic<UInt8>

    public init(_ level: Logger.Level) {
        raw = Atomic(Self.code(level))
    }

    public var level: Logger.Level {
        get { Self.levels[Int(raw.load(ordering: .relaxed))] }
        set { raw.store(Self.code(newValue), ordering: .relaxed) }
    }

    private static let levels = Logger.Level.allCases
    private static func code(_ level: Logger.Level) -> UInt8 {
        UInt8(levels.firstIndex(of: level)!)
    }
}

extension Logger.Level {
    /// syslog priority (RFC 5424), as journald's `PRIORITY=` expects.
    public var syslogPriority: Int {
        switch self {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}

/// A log handler whose level follows a shared `LogLevelControl` unless set
/// on the handler itself; the common parts of the daemon's two backends.
protocol ControlledLogHandler: LogHandler {
    var levelControl: LogLevelControl { get }
    var levelOverride: Logger.Level? { get set }
}

extension ControlledLogHandler {
    public var logLevel: Logger.Level {
        get { levelOverride ?? levelControl.level }
        set { levelOverride = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
}
