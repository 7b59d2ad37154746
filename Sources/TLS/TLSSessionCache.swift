import COpenSSL
import Synchronization

/// Sessions to resume (RFC 8446 §2.2; RFC 5246 §7.3 and RFC 5077 for TLS
/// 1.2), per server (host and port): a new connection to a server offers the
/// newest session that server gave. A TLS 1.3 ticket is offered only once
/// (RFC 8446 C.4), and every TLS 1.3 connection, resumed or not, adds the
/// tickets its server gives; a TLS 1.2 session stays to be offered again (a
/// resumed TLS 1.2 handshake makes no new one). A few are kept per server, so
/// that records reconnecting to one server together each find one. A resumed
/// handshake skips the certificate chain's verification and the server's
/// signature, the largest part of a handshake's CPU. Owned by one
/// `TLSContext`, so every session in it was verified under that context's
/// trust settings.
final class TLSSessionCache: Sendable {
    /// Sessions kept per server, and in all (past it, the sessions of an
    /// arbitrary other server are forgotten).
    let perServer: Int
    let capacity: Int

    /// An `SSL_SESSION` (immutable once made, reference-counted by OpenSSL).
    private struct Session: @unchecked Sendable {
        let raw: OpaquePointer
    }

    private struct State: Sendable {
        /// Per server, oldest first.
        var sessions: [String: [Session]] = [:]
        var count = 0
    }

    private let state = Mutex(State())

    init(perServer: Int = 32, capacity: Int = 2048) {
        self.perServer = perServer
        self.capacity = capacity
    }

    deinit {
        state.withLock { state in
            for list in state.sessions.values { for session in list { SSL_SESSION_free(session.raw) } }
        }
    }

    /// The session to offer to `key`'s server (a TLS 1.3 one leaves the
    /// cache); the caller frees the reference it gets (nil: none).
    func take(_ key: String) -> OpaquePointer? {
        state.withLock { state -> Session? in
            guard let session = state.sessions[key]?.last else { return nil }
            if SSL_SESSION_get_protocol_version(session.raw) < wshostd_TLS1_3_VERSION() {
                _ = SSL_SESSION_up_ref(session.raw)  // reusable: it stays, the caller gets its own reference
                return session
            }
            state.sessions[key]?.removeLast()
            state.count -= 1
            if state.sessions[key]?.isEmpty == true { state.sessions[key] = nil }
            return session
        }?.raw
    }

    /// A session `key`'s server gave (the cache holds the reference it is given).
    func store(_ key: String, _ session: OpaquePointer) {
        guard SSL_SESSION_is_resumable(session) == 1 else { return SSL_SESSION_free(session) }
        let evicted: [Session] = state.withLock { state in
            var evicted: [Session] = []
            var list = state.sessions.removeValue(forKey: key) ?? []
            list.append(Session(raw: session))
            state.count += 1
            if list.count > perServer {
                evicted.append(list.removeFirst())
                state.count -= 1
            }
            while state.count > capacity, let other = state.sessions.first {
                evicted += other.value
                state.count -= other.value.count
                state.sessions.removeValue(forKey: other.key)
            }
            state.sessions[key] = list
            return evicted
        }
        for session in evicted { SSL_SESSION_free(session.raw) }
    }

    /// Sessions kept now, in all.
    var count: Int { state.withLock { $0.count } }
}
