import Config
import Glibc
import Logging
import Systemd

/// Chooses and installs the swift-log backend once per process.
public enum LogSetup {
    /// The daemon-wide level; reloads change it through this control.
    public static let level = LogLevelControl(.info)

    /// The backend in use, decided at start (it cannot change without a restart).
    public enum Backend: String, Sendable {
        case journald, stderr
    }

    public static func backend(for target: LogTarget) -> Backend {
        switch target {
        case .journald: return .journald
        case .stderr: return .stderr
        case .auto: return JournalLogHandler.stderrIsJournal() ? .journald : .stderr
        }
    }

    /// Installs the backend for `config`; call once, before any logger exists.
    public static func bootstrap(_ config: DaemonConfig.Log) -> Backend {
        level.level = Logger.Level(config.level)
        let backend = backend(for: config.target)
        let stderrIsJournal = JournalLogHandler.stderrIsJournal()
        LoggingSystem.bootstrap { label in
            switch backend {
            case .journald:
                return JournalLogHandler(label: label, identifier: "wshostd", level: level)
            case .stderr:
                return StderrLogHandler(identifier: "wshostd", level: level, timestamps: !stderrIsJournal)
            }
        }
        return backend
    }
}

extension Logger.Level {
    init(_ level: LogLevel) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}
