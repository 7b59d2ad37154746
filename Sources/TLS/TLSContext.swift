import COpenSSL

/// Client-side TLS settings shared by every `wss` connection: TLS 1.2 or
/// newer, peer verification against the system trust store (plus an optional
/// CA file), ALPN `http/1.1` (SPEC §6: Neos #1755, #2618).
public final class TLSContext: @unchecked Sendable {
    let raw: OpaquePointer
    /// Sessions to resume, per server.
    let sessions = TLSSessionCache()

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case setup(String)
        case caFile(path: String, reason: String)

        public var description: String {
            switch self {
            case .setup(let reason): return "TLS setup failed: \(reason)"
            case .caFile(let path, let reason): return "cannot load CA file \(path): \(reason)"
            }
        }
    }

    /// - Parameter caFile: extra trusted certificates (PEM), e.g. a private CA.
    public init(caFile: String? = nil) throws(Failure) {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw .setup(TLSErrors.drain()) }
        raw = context
        guard wshostd_SSL_CTX_set_min_proto_version(context, wshostd_TLS1_2_VERSION()) == 1 else {
            throw .setup(TLSErrors.drain())
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        guard SSL_CTX_set_default_verify_paths(context) == 1 else { throw .setup(TLSErrors.drain()) }
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw .caFile(path: caFile, reason: TLSErrors.drain())
            }
        }
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        guard SSL_CTX_set_alpn_protos(context, alpn, UInt32(alpn.count)) == 0 else { throw .setup(TLSErrors.drain()) }
        _ = wshostd_SSL_CTX_set_mode(context, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        wshostd_SSL_CTX_cache_sessions_externally(context)
        SSL_CTX_sess_set_new_cb(context, tlsNewSession)
    }

    /// Sessions kept for resumption now (all servers).
    public var resumableSessions: Int { sessions.count }

    deinit { SSL_CTX_free(raw) }
}

/// OpenSSL hands a client session over (after a full handshake in TLS 1.2,
/// with each ticket in TLS 1.3): kept under its connection's server, if that
/// connection resumes sessions. 1: the reference is taken.
private let tlsNewSession: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
    guard let ssl, let session, let owner = wshostd_SSL_get_app_data(ssl) else { return 0 }
    return Unmanaged<TLSSession>.fromOpaque(owner).takeUnretainedValue().keep(session) ? 1 : 0
}

/// OpenSSL's thread-local error queue, as text.
enum TLSErrors {
    static func drain() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.isEmpty ? "unknown error" : messages.joined(separator: "; ")
    }
}
