import CSystemd
import Glibc
import Logging

/// A swift-log backend writing structured entries to journald with
/// `sd_journal_sendv`: `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`,
/// `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, and each metadata key as an upper-case
/// field (`session.id` → `SESSION_ID`, `ws.url` → `WS_URL`).
public struct JournalLogHandler: ControlledLogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let identifier: String
    let levelControl: LogLevelControl
    var levelOverride: Logger.Level?

    public init(label: String, identifier: String, level: LogLevelControl) {
        self.label = label
        self.identifier = identifier
        self.levelControl = level
    }

    public func log(event: LogEvent) {
        var fields = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(event.level.syslogPriority)",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
            "LOGGER=\(label)",
        ]
        let merged = Self.merge(metadata, provider: metadataProvider, event: event.metadata)
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            guard let name = Self.fieldName(key) else { continue }
            fields.append("\(name)=\(value)")
        }
        Self.send(fields)
    }

    /// Journal field names are `[A-Z0-9_]`, at most 64 bytes, not starting with `_`
    /// (those are trusted fields) or a digit.
    public static func fieldName(_ key: String) -> String? {
        var name = String(
            key.uppercased().unicodeScalars.map { scalar -> Character in
                (scalar.isASCII && (("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)))
                    ? Character(scalar) : "_"
            })
        while name.hasPrefix("_") { name.removeFirst() }
        if let first = name.unicodeScalars.first, ("0"..."9").contains(first) { name = "F_" + name }
        guard !name.isEmpty else { return nil }
        return String(name.prefix(64))
    }

    static func merge(
        _ base: Logger.Metadata, provider: Logger.MetadataProvider?, event: Logger.Metadata?
    ) -> Logger.Metadata {
        var merged = base
        if let provided = provider?.get() { merged.merge(provided) { _, new in new } }
        if let event { merged.merge(event) { _, new in new } }
        return merged
    }

    private static func send(_ fields: [String]) {
        var storage = fields.map { Array($0.utf8) }
        var iovecs: [iovec] = []
        iovecs.reserveCapacity(storage.count)
        storage.withUnsafeMutableBufferPointer { buffers in
            for index in buffers.indices {
                buffers[index].withUnsafeMutableBytes { bytes in
                    iovecs.append(iovec(iov_base: bytes.baseAddress, iov_len: bytes.count))
                }
            }
            // The pointers stay valid: `storage` is not mutated while they are used.
            _ = sd_journal_sendv(iovecs, Int32(iovecs.count))
        }
    }

    /// True when stderr is connected to the journal (systemd sets `JOURNAL_STREAM`
    /// to the device and inode of that stream; see systemd.exec(5)).
    public static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}
