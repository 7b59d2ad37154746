import COpenSSL

/// OpenSSL's digests, for the protocol core's checksums.
public enum Digest {
    /// SHA-1 of `message` into the first 20 bytes of `digest`, with the CPU's
    /// SHA instructions where it has them (`Handshake.SHA1Digest`).
    public static func sha1(_ message: UnsafeRawBufferPointer, into digest: UnsafeMutableRawBufferPointer) {
        precondition(digest.count >= 20, "a SHA-1 digest is 20 bytes")
        wshostd_sha1(message.baseAddress, message.count, digest.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
}
