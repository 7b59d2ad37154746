/*
 * The compressed scenarios' payloads (bench/README.md), shared by
 * wsbench_server.c and zlib_alone.c so that both work on the same bytes:
 * JSON-like text (a stream of trade records) of exactly SIZE bytes, in
 * VARIANTS versions that differ in their numbers, each also deflated as a
 * permessage-deflate sender would (a fresh raw stream, window 15, zlib's
 * default level and memLevel, sync-flushed, the 00 00 ff ff tail removed:
 * RFC 7692 §7.2.1). A fresh stream's bytes inflate the same in any context,
 * so a server may send them with or without context takeover.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { VARIANTS = 64 }; /* 64 KiB of distinct text at 1 KiB: more than a 32 KiB window */

typedef struct {
    unsigned char *text;     /* SIZE bytes of JSON-like ASCII */
    unsigned char *deflated; /* its permessage-deflate payload */
    size_t deflated_len;
} json_variant_t;

static void json_text(unsigned char *out, size_t size, unsigned seed) {
    static const char *symbols[] = {"AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "ASML"};
    unsigned x = seed * 2654435761u + 12345u;
    size_t n = 0;
    char rec[160];
    if (size > 0) out[n++] = '[';
    for (unsigned seq = seed * 100000u; n < size; seq++) {
        x = x * 1103515245u + 12345u;
        unsigned r = x >> 8;
        int l = snprintf(rec, sizeof rec,
            "{\"seq\":%u,\"sym\":\"%s\",\"px\":%u.%02u,\"qty\":%u,\"side\":\"%s\",\"venue\":\"X%u\"},", seq,
            symbols[r % 8], 100 + r % 400, r % 100, 1 + (r >> 5) % 900, (r >> 3) & 1 ? "buy" : "sell", (r >> 11) % 6);
        for (int i = 0; i < l && n < size; i++) out[n++] = (unsigned char)rec[i];
    }
    if (size > 1) out[size - 1] = ']';
}

/* Deflates LEN bytes with STREAM (sync flush) into a growing buffer; returns
 * the length without the 4-byte tail, or -1. */
static long json_deflate(z_stream *stream, const unsigned char *in, size_t len, unsigned char **out, size_t *cap) {
    size_t need = len + len / 8 + 64;
    if (*cap < need) {
        *out = realloc(*out, need);
        if (!*out) return -1;
        *cap = need;
    }
    stream->next_in = (unsigned char *)in;
    stream->avail_in = (uInt)len;
    stream->next_out = *out;
    stream->avail_out = (uInt)*cap;
    if (deflate(stream, Z_SYNC_FLUSH) != Z_OK || stream->avail_in != 0 || stream->avail_out == 0) return -1;
    size_t made = *cap - stream->avail_out;
    if (made < 4 || memcmp(*out + made - 4, "\0\0\xff\xff", 4)) return -1;
    return (long)(made - 4);
}

static int json_variants(json_variant_t *v, size_t size) {
    for (unsigned i = 0; i < VARIANTS; i++) {
        v[i].text = malloc(size ? size : 1);
        json_text(v[i].text, size, i + 1);
        z_stream s = {0};
        if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
        size_t cap = 0;
        v[i].deflated = NULL;
        long n = json_deflate(&s, v[i].text, size, &v[i].deflated, &cap);
        deflateEnd(&s);
        if (n < 0) return -1;
        v[i].deflated_len = (size_t)n;
    }
    return 0;
}
