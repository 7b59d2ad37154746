#ifndef WSHOSTD_COPENSSL_SHIM_H
#define WSHOSTD_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/crypto.h>

/* OpenSSL macros that Swift cannot import. */
static inline int wshostd_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}
static inline long wshostd_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
static inline int wshostd_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline void wshostd_OPENSSL_free(void *p) { OPENSSL_free(p); }
static inline long wshostd_SSL_set_mode(SSL *ssl, long mode) { return SSL_set_mode(ssl, mode); }
static inline int wshostd_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }
static inline int wshostd_TLS1_3_VERSION(void) { return TLS1_3_VERSION; }
static inline long wshostd_BIO_pending(BIO *bio) { return (long)BIO_pending(bio); }
static inline void wshostd_BIO_set_mem_eof_return(BIO *bio, int value) { BIO_set_mem_eof_return(bio, value); }
/* Client sessions handed to the new-session callback, none kept by OpenSSL itself. */
static inline void wshostd_SSL_CTX_cache_sessions_externally(SSL_CTX *ctx) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
}
static inline int wshostd_SSL_set_app_data(SSL *ssl, void *data) { return SSL_set_app_data(ssl, data); }
static inline void *wshostd_SSL_get_app_data(const SSL *ssl) { return SSL_get_app_data(ssl); }

/* SHA-1 for the WebSocket handshake's accept check (RFC 6455 §4.2.2: a
   checksum of the handshake, not a security measure). The low-level calls are
   deprecated in OpenSSL 3 in favour of EVP, whose provider lookup (SHA1()
   too goes through it) costs more than the two blocks hashed here; these go
   straight to the block function, with the CPU's SHA instructions. */
#include <openssl/sha.h>
#include <string.h>
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline void wshostd_sha1(const void *data, size_t count, unsigned char *digest) {
    SHA_CTX context;
    if (SHA1_Init(&context) != 1 || SHA1_Update(&context, data, count) != 1 || SHA1_Final(digest, &context) != 1) {
        memset(digest, 0, SHA_DIGEST_LENGTH); /* a failure is a digest no server sends: a wrong accept, never garbage */
    }
}
#pragma clang diagnostic pop

/* The names the peer's certificate covers (subjectAltName DNS names and IP
   addresses, else its common name), ", "-separated into out; its length. From
   the received chain: after a failed verification there is no verified peer. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
static inline int wshostd_peer_names(const SSL *ssl, char *out, int size) {
    if (size < 2) return 0;
    out[0] = 0;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    if (!chain || sk_X509_num(chain) < 1) return 0;
    X509 *leaf = sk_X509_value(chain, 0);
    int used = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    if (names) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names) && used < size - 1; i++) {
            const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
            char text[INET6_ADDRSTRLEN + 1] = {0};
            const char *item = NULL;
            int length = 0;
            if (name->type == GEN_DNS) {
                item = (const char *)ASN1_STRING_get0_data(name->d.dNSName);
                length = ASN1_STRING_length(name->d.dNSName);
            } else if (name->type == GEN_IPADD) {
                int count = ASN1_STRING_length(name->d.iPAddress);
                const unsigned char *bytes = ASN1_STRING_get0_data(name->d.iPAddress);
                if (count == 4) inet_ntop(AF_INET, bytes, text, sizeof text);
                else if (count == 16) inet_ntop(AF_INET6, bytes, text, sizeof text);
                item = text;
                length = (int)strlen(text);
            }
            if (!item || length <= 0) continue;
            int written = snprintf(out + used, (size_t)(size - used), "%s%.*s", used ? ", " : "", length, item);
            if (written < 0) break;
            used += written;
            if (used > size - 1) used = size - 1;
        }
        GENERAL_NAMES_free(names);
    }
    if (used == 0) {
        int length = X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, out, size);
        used = length > 0 ? length : 0;
        out[used < size ? used : size - 1] = 0;
    }
    return used;
}

#endif
