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
static inline long wshostd_BIO_pending(BIO *bio) { return (long)BIO_pending(bio); }
static inline void wshostd_BIO_set_mem_eof_return(BIO *bio, int value) { BIO_set_mem_eof_return(bio, value); }

#endif
