import Glibc
import Logging

/// A swift-log backend writing one readable line per entry to stderr:
/// `2026-11-26T18:00:00.123Z info wshostd: message key=value …`.
/// Each line goes out in a single `write(2)`.
public struct StderrLogHandler: ControlledLogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let identifier: String
    let levelControl: LogLevelControl
    var levelOverride: Logger.Level?
    private let timestamps: Bool

    /// - Parameter timestamps: false when journald stamps the lines already.
    public init(identifier: String, level: LogLevelControl, timestamps: Bool = true) {
        self.identifier = identifier
        self.levelControl = level
        self.timestamps = timestamps
    }

    public func log(event: LogEvent) {
        var line = timestamps ? Self.timestamp() + " " : ""
        line += "\(event.level) \(identifier): \(event.message)"
        let merged = JournalLogHandler.merge(metadata, provider: metadataProvider, event: event.metadata)
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            let text = "\(value)"
            let needsQuotes = text.isEmpty || text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
            line +=
                needsQuotes
                ? " \(key)=\"\(text.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\\\""))\""
                : " \(key)=\(text)"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    /// UTC, millisecond precision, ISO 8601.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let base = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let millis = now.tv_nsec / 1_000_000
        return base + "." + (millis < 10 ? "00" : millis < 100 ? "0" : "") + "\(millis)Z"
    }
}
