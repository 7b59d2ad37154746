import COpenSSL
import Synchronization

/// Sessions to resume (RFC 8446 §2.2; RFC 5077 for TLS 1.2), one per server
/// (host and port): a new connection to a server offers the last session that
/// server gave, once (a TLS 1.3 ticket is not offered twice, RFC 8446 C.4),
/// and the server's next ticket takes its place. A resumed handshake skips
/// the certificate chain's verification and the server's signature, the
/// largest part of a handshake's CPU. Owned by one `TLSContext`, so every
/// session in it was verified under that context's trust settings.
final class TLSSessionCache: Sendable {
    /// Servers remembered at most; past it, an arbitrary one is forgotten.
    let capacity: Int

    /// An `SSL_SESSION` (immutable once made, reference-counted by OpenSSL).
    private struct Session: @unchecked Sendable {
        let raw: OpaquePointer
    }

    private let state = Mutex([String: Session]())

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    deinit {
        state.withLock { state in
            for session in state.values { SSL_SESSION_free(session.raw) }
        }
    }

    /// The session to offer to `key`'s server, removed from the cache; the
    /// caller frees it (nil: none, or none resumable).
    func take(_ key: String) -> OpaquePointer? {
        state.withLock { $0.removeValue(forKey: key) }?.raw
    }

    /// A session `key`'s server gave (the cache holds the reference it is given).
    func store(_ key: String, _ session: OpaquePointer) {
        guard SSL_SESSION_is_resumable(session) == 1 else { return SSL_SESSION_free(session) }
        let evicted: Session? = state.withLock { sessions in
            if let old = sessions.updateValue(Session(raw: session), forKey: key) { return old }
            guard sessions.count > capacity, let other = sessions.first(where: { $0.key != key }) else { return nil }
            sessions.removeValue(forKey: other.key)
            return other.value
        }
        if let evicted { SSL_SESSION_free(evicted.raw) }
    }

    /// Servers with a session kept now.
    var count: Int { state.withLock { $0.count } }
}
