import COpenSSL

/// One TLS client session over memory BIOs: ciphertext from the socket in,
/// plaintext out, and the reverse. No file descriptors: the shell moves bytes
/// between the socket and this stage (the shape of swift-nio-ssl's BIO).
public final class TLSSession {
    private let ssl: OpaquePointer
    private let input: OpaquePointer  // socket → OpenSSL
    private let output: OpaquePointer  // OpenSSL → socket
    public private(set) var isEstablished = false
    /// The ALPN protocol the server chose, if any.
    public private(set) var negotiatedProtocol: String?
    private let context: TLSContext
    /// Where this server's sessions are kept for resumption (nil: not resumed, not kept).
    private let resumptionKey: String?

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The server's certificate was refused: the verifier's reason
        /// ("certificate has expired", "hostname mismatch", …).
        case certificate(String)
        case handshake(String)
        case protocolError(String)

        public var description: String {
            switch self {
            case .certificate(let reason): return "TLS certificate verification failed: \(reason)"
            case .handshake(let reason): return "TLS handshake failed: \(reason)"
            case .protocolError(let reason): return "TLS error: \(reason)"
            }
        }
    }

    /// - Parameters:
    ///   - serverName: the host from the URL: sent as SNI (names only) and verified
    ///     against the certificate (names and IP addresses).
    ///   - port: the server's port: with it, the session offers to resume the
    ///     last session this server gave on `context`, and keeps the next.
    public init(context: TLSContext, serverName: String, port: Int? = nil) throws(Failure) {
        guard let ssl = SSL_new(context.raw), let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            throw .handshake(TLSErrors.drain())
        }
        self.ssl = ssl
        self.input = input
        self.output = output
        self.context = context
        resumptionKey = port.map { "\(serverName) \($0)" }
        wshostd_BIO_set_mem_eof_return(input, -1)  // empty means "want more", not EOF
        SSL_set_bio(ssl, input, output)
        SSL_set_connect_state(ssl)
        let isIPAddress = serverName.contains(":") || serverName.allSatisfy { $0.isNumber || $0 == "." }
        if isIPAddress {
            // RFC 6066 §3: SNI carries host names only.
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 else {
                throw .handshake("invalid IP address \(serverName)")
            }
        } else {
            _ = wshostd_SSL_set_tlsext_host_name(ssl, serverName)
            guard SSL_set1_host(ssl, serverName) == 1 else { throw .handshake("invalid host name \(serverName)") }
        }
        if let resumptionKey {
            if let session = context.sessions.take(resumptionKey) {
                _ = SSL_set_session(ssl, session)  // a session OpenSSL finds unusable is a full handshake
                SSL_SESSION_free(session)
            }
            _ = wshostd_SSL_set_app_data(ssl, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    deinit { SSL_free(ssl) }  // frees both BIOs

    /// The handshake resumed an earlier session (no certificate was verified:
    /// the earlier handshake with this server did that).
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// A session this connection's server gave: kept for the next connection to it.
    func keep(_ session: OpaquePointer) -> Bool {
        guard let resumptionKey else { return false }
        context.sessions.store(resumptionKey, session)
        return true
    }

    /// Ciphertext read from the socket.
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        _ = BIO_write(input, base, Int32(bytes.count))
    }

    /// What one `advance` call achieved.
    public struct Progress: Equatable, Sendable {
        /// The handshake completed during this call.
        public var established = false
        /// The peer sent close_notify: the plaintext stream has ended.
        public var peerClosed = false
    }

    /// Drives the handshake, then decrypts what has arrived, handing the
    /// plaintext to `plaintext` a piece at a time (each piece valid only during
    /// the call). `scratch` is the caller's buffer for decrypting into, so a
    /// session owns no buffer of its own.
    public func advance(
        scratch: UnsafeMutableRawBufferPointer, plaintext: (UnsafeRawBufferPointer) -> Void
    ) throws(Failure) -> Progress {
        var progress = Progress()
        if !isEstablished {
            let result = SSL_do_handshake(ssl)
            if result != 1 {
                let error = SSL_get_error(ssl, result)
                if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return progress }
                let verify = SSL_get_verify_result(ssl)
                if verify != X509_V_OK {
                    ERR_clear_error()
                    var reason = String(cString: X509_verify_cert_error_string(verify))
                    if verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH {
                        // Which names the certificate is for, so the mismatch can be fixed.
                        var buffer = [CChar](repeating: 0, count: 512)
                        let count = Int(wshostd_peer_names(ssl, &buffer, Int32(buffer.count)))
                        let names = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                            .unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "?" }.joined()
                        if !names.isEmpty { reason += " (the certificate is for \(names))" }
                    }
                    throw .certificate(reason)
                }
                throw .handshake(TLSErrors.drain())
            }
            isEstablished = true
            progress.established = true
            var data: UnsafePointer<UInt8>?
            var length: UInt32 = 0
            SSL_get0_alpn_selected(ssl, &data, &length)
            if let data, length > 0 {
                negotiatedProtocol = String(
                    decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
            }
        }
        // OpenSSL buffers whole records: read until it wants more.
        while true {
            let count = SSL_read(ssl, scratch.baseAddress, Int32(clamping: scratch.count))
            if count > 0 {
                plaintext(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(count)]))
                continue
            }
            let error = SSL_get_error(ssl, count)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE {
                ERR_clear_error()
                return progress
            }
            if error == SSL_ERROR_ZERO_RETURN {
                ERR_clear_error()
                progress.peerClosed = true
                return progress
            }
            throw .protocolError(TLSErrors.drain())
        }
    }

    /// Encrypts `plaintext`; the records become available from `drainCiphertext`.
    public func write(_ plaintext: UnsafeRawBufferPointer) throws(Failure) {
        guard let base = plaintext.baseAddress, !plaintext.isEmpty else { return }
        var offset = 0
        while offset < plaintext.count {
            let count = SSL_write(ssl, base + offset, Int32(clamping: plaintext.count - offset))
            guard count > 0 else { throw .protocolError(TLSErrors.drain()) }
            offset += Int(count)
        }
    }

    /// Sends close_notify (RFC 8446 §6.1).
    public func shutdown() {
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Ciphertext for the socket (handshake messages and records), handed to
    /// `write` a piece at a time through the caller's `scratch` buffer.
    public func drainCiphertext(scratch: UnsafeMutableRawBufferPointer, _ write: (UnsafeRawBufferPointer) -> Void) {
        while wshostd_BIO_pending(output) > 0 {
            let count = BIO_read(output, scratch.baseAddress, Int32(clamping: scratch.count))
            guard count > 0 else { return }
            write(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(count)]))
        }
    }
}
