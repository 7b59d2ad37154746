/*
 * zlib_alone: the limit line of the compressed echo scenarios (bench/README.md).
 * What any permessage-deflate client must at least do per echoed message, with
 * the system zlib and nothing else: inflate the server's message (the same
 * bytes wsbench_server sends, wsbench_json.h) and deflate the text again, as
 * one thread on one core, for SECONDS. Prints one JSON line like the server's
 * (messages, messages/s, and the CPU seconds it used).
 *
 *   zlib_alone SIZE SECONDS nct|takeover [MEMLEVEL]
 *
 * nct: no context takeover either way (wshostd's "on"): the streams are reset
 * after every message. takeover: one stream per direction for the whole run.
 * MEMLEVEL (default 8, zlib's and wshostd's) is the deflater's.
 * Build: cc -O2 -o zlib_alone zlib_alone.c -lz
 */
#include <stdint.h>
#include <time.h>

#include "wsbench_json.h"

static double seconds_of(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s SIZE SECONDS nct|takeover [MEMLEVEL]\n", argv[0]);
        return 2;
    }
    size_t size = (size_t)atol(argv[1]);
    double duration = atof(argv[2]);
    int reset = !strcmp(argv[3], "nct");
    int mem_level = argc > 4 ? atoi(argv[4]) : 8;
    static json_variant_t variants[VARIANTS];
    if (json_variants(variants, size) < 0) return 1;
    z_stream in = {0}, out = {0};
    if (inflateInit2(&in, -15) != Z_OK) return 1;
    if (deflateInit2(&out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
    unsigned char *text = malloc(size + 1), *deflated = NULL;
    size_t deflated_cap = 0;
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    uint64_t messages = 0, wire = 0;
    double wall0 = seconds_of(CLOCK_MONOTONIC), cpu0 = seconds_of(CLOCK_PROCESS_CPUTIME_ID), wall = wall0;
    while (wall < wall0 + duration) {
        for (int batch = 0; batch < 64; batch++) {
            json_variant_t *v = &variants[messages % VARIANTS];
            size_t got = 0;
            for (int pass = 0; pass < 2; pass++) {
                in.next_in = pass ? (unsigned char *)tail : v->deflated;
                in.avail_in = pass ? 4 : (uInt)v->deflated_len;
                in.next_out = text + got;
                in.avail_out = (uInt)(size + 1 - got);
                int r = inflate(&in, Z_SYNC_FLUSH);
                got = (size_t)(in.next_out - text);
                if ((r != Z_OK && r != Z_BUF_ERROR) || in.avail_in != 0) {
                    fprintf(stderr, "inflate failed\n");
                    return 1;
                }
            }
            if (got != size || memcmp(text, v->text, size)) {
                fprintf(stderr, "inflated %zu bytes, not the text of %zu\n", got, size);
                return 1;
            }
            long n = json_deflate(&out, text, size, &deflated, &deflated_cap);
            if (n < 0) {
                fprintf(stderr, "deflate failed\n");
                return 1;
            }
            wire += (uint64_t)n;
            if (reset) {
                inflateReset(&in);
                deflateReset(&out);
            }
            messages++;
        }
        wall = seconds_of(CLOCK_MONOTONIC);
    }
    double cpu = seconds_of(CLOCK_PROCESS_CPUTIME_ID) - cpu0, elapsed = wall - wall0;
    printf("{\"mode\":\"echo\",\"size\":%zu,\"messages\":%llu,\"seconds\":%.3f,\"messages_per_s\":%.0f,"
           "\"cpu_s\":%.3f,\"deflated_bytes_per_msg\":%.0f,\"server_bytes_per_msg\":%zu}\n",
        size, (unsigned long long)messages, elapsed, messages / elapsed, cpu, (double)wire / (double)messages,
        variants[0].deflated_len);
    return 0;
}
