/*
 * wsbench_server: the one server peer of every benchmark run (bench/README.md).
 * A small epoll WebSocket server (RFC 6455 framing, no extensions) that drives
 * closed-loop echo round trips and measures them: it waits for CONNS clients,
 * then keeps one message of SIZE bytes in flight per connection; each echo
 * that comes back (masked, as clients must) is timed and answered with the
 * next message. After WARMUP seconds it counts for DURATION seconds and prints
 * one JSON line: messages, messages/s, p50/p99 round-trip latency (µs).
 *
 *   wsbench_server PORT CONNS SIZE DURATION [WARMUP [MODE [K]]]
 *
 * Modes (MODE; echo by default):
 *   echo     closed-loop round trips, as above.
 *   idle     holds CONNS open connections for DURATION and answers the
 *            clients' heartbeat pings; reports the pings seen and the longest
 *            gap between two pings of one connection.
 *   burst    pushes K messages of SIZE bytes to every connection at once and
 *            times until every echo is back: drain rate, and the longest gap
 *            during the drain in which no echo arrived (a stalled client).
 *   connect  connection setup: every handshake is answered, then the server
 *            closes (Close 1000, then TCP); the clients reconnect. Reports
 *            handshakes completed per second in the window.
 *   hold     the restart benchmark (bench/restart.sh): accepts any number of
 *            connections, answers every handshake and ping, lets clients
 *            come and go, and for DURATION seconds prints a line every
 *            100 ms: {"t_ms":…,"open":…,"handshakes":…} (handshakes completed
 *            in that 100 ms), so the script sees the connection rate over time.
 *            SIGUSR1 cuts every connection (TCP, no Close: a server restart
 *            as its clients see it), for reconnect waves.
 * With WSBENCH_CERT and WSBENCH_KEY set (PEM files), every connection is TLS
 * (wss) through OpenSSL.
 *
 * Binary frames for SIZE > 0 bytes; the clients echo whatever they receive.
 *
 * With WSBENCH_DEFLATE set to a permessage-deflate response (RFC 7692), e.g.
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
 * every client must offer permessage-deflate and is answered with it; the
 * messages are then JSON-like text of SIZE bytes in 64 variants, sent
 * compressed (wsbench_json.h), and every echo in mode echo is inflated and its
 * length checked (a wrong echo ends the run). In mode idle, every connection
 * gets one compressed message when all are open (its echo is not checked), so
 * that a client holding compression state per connection shows it.
 * Build: cc -O2 -o wsbench_server wsbench_server.c -lssl -lcrypto -lz
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsbench_json.h"

typedef struct {
    int fd;
    int open;            /* handshake done */
    unsigned char *in;   /* received, not yet parsed */
    size_t in_len, in_cap;
    unsigned char *out;  /* to send */
    size_t out_len, out_off, out_cap;
    uint64_t sent_at;    /* ns, the message in flight */
    size_t echo_got;     /* payload bytes of the current echo message */
    int want_out;        /* EPOLLOUT registered */
    SSL *ssl;            /* wss only */
    int tls_done;        /* TLS handshake complete */
    int closing;         /* connect mode: close once the output is flushed */
    int held;            /* hold mode: index in the held list */
    uint64_t last_ping;  /* idle mode */
    uint64_t burst_left; /* burst mode: echoes still to come */
    z_stream *inflater;  /* deflate: the echoes' inflate stream */
    int echo_compressed; /* deflate: the current echo message has RSV1 */
    uint64_t echo_inflated;
} conn_t;

enum { ECHO, IDLE, BURST, CONNECT, HOLD };
static int mode = ECHO;
static SSL_CTX *tls;
static uint64_t pings, max_ping_gap, handshakes, burst_total, burst_done, last_echo, max_echo_gap, max_echo_gap_done;

/* recv/send over TCP or TLS: > 0 bytes, 0 would block, -1 gone. */
static ssize_t c_recv(conn_t *c, void *b, size_t n) {
    if (!c->ssl) {
        ssize_t r = recv(c->fd, b, n, 0);
        if (r > 0) return r;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1;
    }
    int r = SSL_read(c->ssl, b, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    return -1;
}

static ssize_t c_send(conn_t *c, const void *b, size_t n) {
    if (!c->ssl) {
        ssize_t r = send(c->fd, b, n, MSG_NOSIGNAL);
        if (r > 0) return r;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1;
    }
    int r = SSL_write(c->ssl, b, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    return -1;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what) { perror(what); exit(1); }

static void reserve(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    *buf = realloc(*buf, n);
    if (!*buf) die("realloc");
    *cap = n;
}

static unsigned char *payload;
static size_t size;
static uint64_t *lat;   /* latencies (ns) in the measured window */
static size_t lat_len, lat_cap;
static int measuring;
static uint64_t counted;

static void queue_bytes(conn_t *c, const void *b, size_t n) {
    reserve(&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, b, n);
    c->out_len += n;
}

/* A server frame's header: FIRST (FIN, RSV and opcode), then the length. */
static void queue_header(conn_t *c, unsigned char first, size_t n) {
    unsigned char h[10];
    size_t hl;
    h[0] = first;
    if (n < 126) { h[1] = (unsigned char)n; hl = 2; }
    else if (n < 65536) { h[1] = 126; h[2] = n >> 8; h[3] = n & 255; hl = 4; }
    else { h[1] = 127; for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(n >> (56 - 8 * i)); hl = 10; }
    queue_bytes(c, h, hl);
}

static void queue_frame(conn_t *c) {
    queue_header(c, 0x82, size); /* FIN + binary */
    queue_bytes(c, payload, size);
}

static const char *deflate_response; /* WSBENCH_DEFLATE */
static int deflate_client_reset;      /* the response has client_no_context_takeover */
static json_variant_t variants[VARIANTS];
static unsigned next_variant;

static void queue_message(conn_t *c) {
    if (deflate_response) { /* FIN + RSV1 + text, the next variant deflated */
        json_variant_t *v = &variants[next_variant++ % VARIANTS];
        queue_header(c, 0xC1, v->deflated_len);
        queue_bytes(c, v->deflated, v->deflated_len);
    } else {
        queue_frame(c);
    }
    c->sent_at = now_ns();
    c->echo_got = 0;
}

static int flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = c_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n == 0) return 0;
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static int handshake(conn_t *c) {
    c->in[c->in_len < c->in_cap ? c->in_len : c->in_cap - 1] = 0;
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    char *key = strcasestr((char *)c->in, "Sec-WebSocket-Key:");
    if (!key) return -1;
    key += 18;
    while (*key == ' ') key++;
    char k[128];
    size_t kl = 0;
    while (key[kl] && key[kl] != '\r' && kl < 100) { k[kl] = key[kl]; kl++; }
    memcpy(k + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char digest[20];
    SHA1((unsigned char *)k, kl + 36, digest);
    unsigned char accept[64];
    EVP_EncodeBlock(accept, digest, 20);
    char extensions[300] = "";
    if (deflate_response) {
        if (!memmem(c->in, (size_t)(end - (char *)c->in), "permessage-deflate", 18)) {
            fprintf(stderr, "the client did not offer permessage-deflate\n");
            return -1;
        }
        snprintf(extensions, sizeof extensions, "Sec-WebSocket-Extensions: %s\r\n", deflate_response);
    }
    char response[512];
    int rl = snprintf(response, sizeof response,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept, extensions);
    queue_bytes(c, response, (size_t)rl);
    size_t used = (size_t)(end + 4 - (char *)c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->open = 1;
    return 1;
}

/* Deflate: unmasks one frame's payload and inflates it into a scratch
 * buffer, counting the text; the message's last frame gets the 00 00 ff ff
 * tail (RFC 7692 §7.2.2), and the stream is reset when the client does not
 * keep its context. */
static int inflate_echo(conn_t *c, unsigned char *data, uint64_t len, const unsigned char *mask, int fin) {
    static unsigned char out[1 << 16];
    if (!c->inflater) {
        c->inflater = calloc(1, sizeof *c->inflater);
        if (inflateInit2(c->inflater, -15) != Z_OK) return -1;
    }
    for (uint64_t i = 0; i < len; i++) data[i] ^= mask[i & 3];
    static unsigned char tail[4] = {0, 0, 0xff, 0xff};
    for (int pass = 0; pass < (fin ? 2 : 1); pass++) {
        c->inflater->next_in = pass ? tail : data;
        c->inflater->avail_in = pass ? 4 : (uInt)len;
        while (c->inflater->avail_in > 0) {
            c->inflater->next_out = out;
            c->inflater->avail_out = sizeof out;
            int r = inflate(c->inflater, Z_SYNC_FLUSH);
            c->echo_inflated += sizeof out - c->inflater->avail_out;
            if (r != Z_OK && r != Z_BUF_ERROR) { fprintf(stderr, "a corrupt echo\n"); return -1; }
            if (r == Z_BUF_ERROR && c->inflater->avail_out != 0) break;
        }
    }
    if (fin && deflate_client_reset) inflateReset(c->inflater);
    return 0;
}

/* Parses client frames; each complete echo message is timed and answered. */
static int parse(conn_t *c) {
    size_t off = 0;
    for (;;) {
        unsigned char *p = c->in + off;
        size_t avail = c->in_len - off;
        if (avail < 2) break;
        int fin = p[0] & 0x80, op = p[0] & 0x0f;
        if (!(p[1] & 0x80)) return -1; /* clients must mask */
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) { if (avail < 4) break; len = (uint64_t)p[2] << 8 | p[3]; hl = 4; }
        else if (len == 127) { if (avail < 10) break; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i]; hl = 10; }
        if (avail < hl + 4 + len) break;
        off += hl + 4 + len;
        if (op == 0x8) return mode == CONNECT ? 0 : -1; /* close: the client is going (hold: dropped) */
        if (op == 0x9) {                   /* ping: answered with a pong (the clients' heartbeats) */
            uint64_t t = now_ns();
            if (measuring) {
                pings++;
                if (c->last_ping && t - c->last_ping > max_ping_gap) max_ping_gap = t - c->last_ping;
            }
            c->last_ping = t;
            unsigned char pong[2 + 125];
            pong[0] = 0x8A;
            pong[1] = (unsigned char)len;
            for (uint64_t i = 0; i < len && i < 125; i++) pong[2 + i] = p[hl + 4 + i] ^ p[hl + (i & 3)];
            queue_bytes(c, pong, 2 + (len < 125 ? len : 125));
            continue;
        }
        if (op == 0xA) continue;           /* pong: ignored */
        c->echo_got += len;                /* text, binary or continuation */
        if (mode == BURST) {
            if (fin && c->echo_got >= size) {
                c->echo_got = 0;
                uint64_t t = now_ns();
                if (last_echo && t - last_echo > max_echo_gap) {
                    max_echo_gap = t - last_echo;
                    max_echo_gap_done = burst_done; /* echoes back when the longest gap began */
                }
                last_echo = t;
                burst_done++;
            }
            continue;
        }
        if (mode != ECHO) continue;
        if (deflate_response) { /* inflate the echo, count its text */
            if (op != 0x0) c->echo_compressed = (p[0] & 0x40) != 0, c->echo_inflated = 0;
            if (c->echo_compressed && inflate_echo(c, p + hl + 4, len, p + hl, fin) < 0) return -1;
            if (!c->echo_compressed) c->echo_inflated += len;
            if (!fin) continue;
            if (c->echo_inflated != size) {
                fprintf(stderr, "an echo of %llu bytes, not %zu\n", (unsigned long long)c->echo_inflated, size);
                return -1;
            }
            c->echo_got = size;
        }
        if (fin && c->echo_got >= size) {
            uint64_t t = now_ns();
            if (measuring) {
                counted++;
                if (lat_len == lat_cap) { lat_cap = lat_cap ? lat_cap * 2 : 1 << 20; lat = realloc(lat, lat_cap * 8); }
                lat[lat_len++] = t - c->sent_at;
            }
            queue_message(c);
        }
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Hold mode: every connection, so that SIGUSR1 can cut them all. */
static conn_t **held_list;
static int held_len, held_cap;
static volatile sig_atomic_t cut_requested;
static void on_usr1(int sig) { (void)sig; cut_requested = 1; }

static void drop(conn_t *c) {
    if (mode == HOLD) { /* swap-remove from the held list */
        held_list[c->held] = held_list[--held_len];
        held_list[c->held]->held = c->held;
    }
    if (c->ssl) { SSL_shutdown(c->ssl); SSL_free(c->ssl); }
    if (c->inflater) { inflateEnd(c->inflater); free(c->inflater); }
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s PORT CONNS SIZE DURATION [WARMUP [echo|idle|burst|connect [K]]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), conns = atoi(argv[2]);
    size = (size_t)atol(argv[3]);
    double duration = atof(argv[4]), warmup = argc > 5 ? atof(argv[5]) : 1.0;
    if (argc > 6) {
        if (!strcmp(argv[6], "idle")) mode = IDLE;
        else if (!strcmp(argv[6], "burst")) mode = BURST;
        else if (!strcmp(argv[6], "connect")) mode = CONNECT;
        else if (!strcmp(argv[6], "hold")) mode = HOLD;
        else if (strcmp(argv[6], "echo")) { fprintf(stderr, "unknown mode %s\n", argv[6]); return 2; }
    }
    uint64_t k = argc > 7 ? (uint64_t)atol(argv[7]) : 1000;
    payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) payload[i] = (unsigned char)(i * 31 + 7);
    deflate_response = getenv("WSBENCH_DEFLATE");
    if (deflate_response && !*deflate_response) deflate_response = NULL;
    if (deflate_response) {
        deflate_client_reset = strstr(deflate_response, "client_no_context_takeover") != NULL;
        if (json_variants(variants, size) < 0) { fprintf(stderr, "deflate failed\n"); return 1; }
    }
    const char *cert = getenv("WSBENCH_CERT"), *key = getenv("WSBENCH_KEY");
    if (cert && key) {
        tls = SSL_CTX_new(TLS_server_method());
        if (!tls || SSL_CTX_use_certificate_chain_file(tls, cert) != 1
            || SSL_CTX_use_PrivateKey_file(tls, key, SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
    }

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) die("bind/listen");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    printf("LISTENING %d\n", port);
    fflush(stdout);

    conn_t **all = calloc((size_t)conns, sizeof *all);
    int accepted = 0, opened = 0, started = 0, pushed = 0;
    uint64_t start = 0, window_start = 0, window_end = 0, first_accept = 0;
    struct epoll_event events[256];
    uint64_t hold_start = now_ns(), hold_tick = hold_start;
    int hold_open = 0, hold_handshakes = 0;
    if (mode == HOLD) {
        signal(SIGUSR1, on_usr1);
        signal(SIGPIPE, SIG_IGN); /* a cut TLS connection must not end the server */
    }
    for (;;) {
        if (cut_requested) {
            cut_requested = 0;
            for (int j = 0; j < held_len; j++) shutdown(held_list[j]->fd, SHUT_RDWR);
        }
        int n = epoll_wait(ep, events, 256, mode == HOLD ? 10 : 100);
        uint64_t t = now_ns();
        if (mode == HOLD) {
            while (t >= hold_tick + 100000000ull) {
                hold_tick += 100000000ull;
                printf("{\"t_ms\":%llu,\"open\":%d,\"handshakes\":%d}\n",
                    (unsigned long long)((hold_tick - hold_start) / 1000000), hold_open, hold_handshakes);
                hold_handshakes = 0;
            }
            fflush(stdout);
            if (t >= hold_start + (uint64_t)(duration * 1e9)) return 0;
        }
        if (started && !measuring && t >= start + (uint64_t)(warmup * 1e9) && window_end == 0) {
            measuring = 1;
            window_start = t;
            if (mode == BURST) { /* every connection gets K messages at once */
                burst_total = (uint64_t)conns * k;
                last_echo = t;
                for (int j = 0; j < conns; j++)
                    for (uint64_t m = 0; m < k; m++) queue_frame(all[j]);
                pushed = 1;
            }
            printf("WINDOW START\n");
            fflush(stdout);
            if (pushed) {
                for (int j = 0; j < conns; j++) {
                    if (flush_out(all[j]) < 0) { fprintf(stderr, "send failed\n"); return 1; }
                    all[j]->want_out = all[j]->out_len > 0;
                    struct epoll_event ce = {.events = EPOLLIN | (all[j]->want_out ? EPOLLOUT : 0), .data.ptr = all[j]};
                    epoll_ctl(ep, EPOLL_CTL_MOD, all[j]->fd, &ce);
                }
            }
        }
        if (measuring && mode == BURST && burst_done >= burst_total) { window_end = now_ns(); break; }
        if (!first_accept && accepted > 0) first_accept = t;
        if (!started && first_accept && t > first_accept + 180 * 1000000000ull) {
            printf("{\"error\":\"only %d of %d clients connected within 180 s\"}\n", opened, conns);
            return 1;
        }
        if (measuring && t >= window_start + (uint64_t)(duration * 1e9)) { window_end = t; break; }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (mode != CONNECT && mode != HOLD && accepted == conns) { close(fd); continue; }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    if (tls) {
                        c->ssl = SSL_new(tls);
                        SSL_set_fd(c->ssl, fd);
                        SSL_set_accept_state(c->ssl);
                    }
                    if (mode != CONNECT && mode != HOLD) all[accepted++] = c;
                    if (mode == HOLD) {
                        if (held_len == held_cap) {
                            held_cap = held_cap ? held_cap * 2 : 1024;
                            held_list = realloc(held_list, (size_t)held_cap * sizeof *held_list);
                        }
                        c->held = held_len;
                        held_list[held_len++] = c;
                    }
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            int gone = 0;
            if (c->ssl && !c->tls_done) {
                int r = SSL_do_handshake(c->ssl);
                if (r == 1) c->tls_done = 1;
                else {
                    int e = SSL_get_error(c->ssl, r);
                    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) gone = 1;
                    ERR_clear_error();
                }
            }
            if (!gone && (!c->ssl || c->tls_done) && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                for (;;) {
                    reserve(&c->in, &c->in_cap, c->in_len + 65536 + 1);
                    ssize_t r = c_recv(c, c->in + c->in_len, 65536);
                    if (r > 0) { c->in_len += (size_t)r; continue; }
                    if (r < 0) gone = 1;
                    break;
                }
                if (!c->open) {
                    int h = handshake(c);
                    if (h < 0) { fprintf(stderr, "bad handshake\n"); return 1; }
                    if (h > 0 && mode == HOLD) {
                        hold_open++;
                        hold_handshakes++;
                    } else if (h > 0 && mode == CONNECT) {
                        if (!started) { started = 1; start = now_ns(); }
                        if (measuring) handshakes++;
                        static const unsigned char close_frame[] = {0x88, 2, 0x03, 0xE8}; /* Close 1000 */
                        queue_bytes(c, close_frame, sizeof close_frame);
                        c->closing = 1;
                    } else if (h > 0 && ++opened == conns) {
                        if (mode == ECHO || (mode == IDLE && deflate_response)) {
                            for (int j = 0; j < conns; j++) queue_message(all[j]);
                            for (int j = 0; j < conns; j++) flush_out(all[j]);
                        }
                        started = 1;
                        start = now_ns();
                    }
                }
                if (c->open && parse(c) < 0) {
                    if (mode != HOLD) { fprintf(stderr, "a client closed\n"); return 1; }
                    gone = 1;
                }
            }
            if (!gone && flush_out(c) < 0) gone = 1;
            if (!gone && c->closing && c->out_len == 0) gone = 1;
            if (gone) {
                if (mode != CONNECT && mode != HOLD) { fprintf(stderr, "a client went away\n"); return 1; }
                if (mode == HOLD && c->open) hold_open--;
                drop(c);
                continue;
            }
            int want = c->out_len > 0 || (c->ssl && !c->tls_done && SSL_want_write(c->ssl));
            if (want != c->want_out) { /* a system call only when it changes */
                c->want_out = want;
                struct epoll_event ce = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ce);
            }
        }
    }
    printf("WINDOW END\n");
    fflush(stdout);
    double seconds = (double)(window_end - window_start) / 1e9;
    switch (mode) {
    case ECHO: {
        qsort(lat, lat_len, 8, cmp);
        uint64_t p50 = lat_len ? lat[lat_len / 2] : 0, p99 = lat_len ? lat[lat_len * 99 / 100] : 0;
        printf("{\"mode\":\"echo\",\"conns\":%d,\"size\":%zu,\"messages\":%llu,\"seconds\":%.3f,\"messages_per_s\":%.0f,"
               "\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
            conns, size, (unsigned long long)counted, seconds, counted / seconds, p50 / 1e3, p99 / 1e3);
        break;
    }
    case IDLE:
        printf("{\"mode\":\"idle\",\"conns\":%d,\"seconds\":%.3f,\"pings\":%llu,\"max_ping_gap_ms\":%.1f}\n", conns,
            seconds, (unsigned long long)pings, max_ping_gap / 1e6);
        break;
    case BURST:
        printf("{\"mode\":\"burst\",\"conns\":%d,\"size\":%zu,\"k\":%llu,\"messages\":%llu,\"complete\":%s,"
               "\"seconds\":%.3f,\"messages_per_s\":%.0f,\"max_gap_ms\":%.2f,\"max_gap_after\":%llu,\"pings\":%llu,"
               "\"max_ping_gap_ms\":%.1f}\n",
            conns, size, (unsigned long long)k, (unsigned long long)burst_done,
            burst_done >= burst_total ? "true" : "false", seconds, burst_done / seconds, max_echo_gap / 1e6,
            (unsigned long long)max_echo_gap_done, (unsigned long long)pings, max_ping_gap / 1e6);
        break;
    case CONNECT:
        printf("{\"mode\":\"connect\",\"conns\":%d,\"tls\":%s,\"connects\":%llu,\"seconds\":%.3f,\"connects_per_s\":%.0f}\n",
            conns, tls ? "true" : "false", (unsigned long long)handshakes, seconds, handshakes / seconds);
        break;
    }
    fflush(stdout);
    usleep(300000); /* the clients stay up a moment, so their CPU time can be read */
    return 0;
}
