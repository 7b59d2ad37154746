import COpenSSL
import Control

/// What this build is, for `--version` and the startup log line.
public enum BuildInfo {
    public static let version = ReleaseVersion.current

    /// The OpenSSL library loaded at run time (`OpenSSL_version(3)`).
    public static var openSSLVersion: String {
        String(cString: OpenSSL_version(OPENSSL_VERSION))
    }

    public static var summary: String {
        "wshostd \(version) (\(openSSLVersion))"
    }
}
