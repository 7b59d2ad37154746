import CSystemd
import Glibc

/// Sockets passed by systemd socket activation (`sd_listen_fds(3)`).
public enum ListenFDs {
    /// The passed listening Unix stream sockets, taking them over (the
    /// `LISTEN_*` variables are removed so children do not see them).
    /// Empty when the daemon was not socket-activated.
    public static func unixStreamListeners() -> [Int32] {
        let count = sd_listen_fds(1)
        guard count > 0 else { return [] }
        let start = wshostd_sd_listen_fds_start()
        return (start..<start + count).filter { sd_is_socket_unix($0, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0 }
    }
}
