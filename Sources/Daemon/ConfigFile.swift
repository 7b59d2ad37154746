import Config
import Glibc
import TLS

/// Reads a config file from disk and parses it: the only I/O around the pure
/// `DaemonConfig.parse`.
public enum ConfigFile {
    /// The packaged location.
    public static let defaultPath = "/etc/wshostd/wshostd.toml"

    /// Where to read the config when `--config` is not given: the unit's
    /// `ConfigurationDirectory=` when systemd set it, else `/etc/wshostd`.
    public static func implicitPath(environment: [String: String]) -> String {
        if let directory = environment["CONFIGURATION_DIRECTORY"]?.split(separator: ":").first {
            return "\(directory)/wshostd.toml"
        }
        return defaultPath
    }

    /// Largest config file accepted; a bigger one is surely not a config file.
    static let maximumSize = 4 << 20

    /// Loads `path`. With `missingIsDefault`, an absent file means "all defaults"
    /// (the implicit path); a file named explicitly must exist.
    public static func load(_ path: String, missingIsDefault: Bool = false) throws(ConfigError) -> DaemonConfig {
        let text: String
        switch read(path) {
        case .success(let contents):
            text = contents
        case .failure(let error) where error.code == ENOENT && missingIsDefault:
            return DaemonConfig()
        case .failure(let error):
            let code = error.code
            let reason =
                code == EFBIG
                ? "larger than \(maximumSize / 1024 / 1024) MiB"
                : code == EILSEQ ? "not valid UTF-8 text" : String(cString: strerror(code))
            throw ConfigError(
                file: path, issues: [ConfigIssue(keyPath: "", line: nil, message: "cannot read the file: \(reason)")])
        }
        let config = try DaemonConfig.parse(text, file: path, fileProblem: caFileProblem)
        // TLS set-up itself (the system trust store); with a CA file the check above did it.
        if config.tls.caFile.isEmpty { _ = try tlsContext(for: config, file: path) }
        return config
    }

    /// Why `path` cannot serve as `tls.ca_file`, in a few words (nil: it can).
    static func caFileProblem(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "cannot read \(path): \(String(cString: strerror(errno)))" }
        close(fd)
        do {
            _ = try TLSContext(caFile: path)
            return nil
        } catch {
            switch error {
            case .caFile: return "\(path) holds no PEM certificate OpenSSL accepts"
            case .setup: return error.description
            }
        }
    }

    /// The TLS context `config` asks for: the system trust store plus
    /// `tls.ca_file`. A CA file that cannot be loaded is a config error.
    public static func tlsContext(for config: DaemonConfig, file: String) throws(ConfigError) -> TLSContext {
        do {
            return try TLSContext(caFile: config.tls.caFile.isEmpty ? nil : config.tls.caFile)
        } catch {
            throw ConfigError(
                file: file, issues: [ConfigIssue(keyPath: "tls.ca_file", line: nil, message: error.description)])
        }
    }

    private struct Errno: Error { var code: Int32 }

    private static func read(_ path: String) -> Result<String, Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(code: errno)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(Errno(code: errno)) }
        guard (info.st_mode & S_IFMT) != S_IFDIR else { return .failure(Errno(code: EISDIR)) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(code: errno))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maximumSize { return .failure(Errno(code: EFBIG)) }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(Errno(code: EILSEQ)) }
        return .success(text)
    }
}
