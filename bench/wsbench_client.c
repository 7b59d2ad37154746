/*
 * wsbench_client: the limit line of the benchmarks — a raw C WebSocket client
 * with the same framing as the server (bench/README.md). Opens CONNS
 * connections to ws://127.0.0.1:PORT/, then echoes every message it receives
 * (masked with a fresh key per frame, as RFC 6455 requires), until the server
 * goes away. One thread, epoll. With WSBENCH_PING_S set, every connection
 * sends a ping that often (the idle scenario's heartbeats).
 *
 *   wsbench_client PORT CONNS
 *   wsbench_client PORT CONNS connect [tls]
 *
 * The connect form is the setup scenario: CONNS threads, each connecting
 * (blocking; with TLS when asked), upgrading, waiting for the server's Close,
 * closing, and connecting again 100 ms later, until the server is gone.
 *
 * Build: cc -O2 -o wsbench_client wsbench_client.c -lssl -lcrypto -lpthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd, open, want_out;
    unsigned char *in, *out;
    size_t in_len, in_cap, out_len, out_off, out_cap;
} conn_t;

static void reserve(unsigned char **b, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    *b = realloc(*b, n);
    *cap = n;
}

static uint64_t rng_state;
static uint32_t mask_key(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static void echo(conn_t *c, int op, const unsigned char *data, uint64_t len) {
    reserve(&c->out, &c->out_cap, c->out_len + len + 14);
    unsigned char *h = c->out + c->out_len;
    size_t hl;
    h[0] = (unsigned char)(0x80 | op);
    if (len < 126) { h[1] = 0x80 | (unsigned char)len; hl = 2; }
    else if (len < 65536) { h[1] = 0x80 | 126; h[2] = len >> 8; h[3] = len & 255; hl = 4; }
    else { h[1] = 0x80 | 127; for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(len >> (56 - 8 * i)); hl = 10; }
    uint32_t key = mask_key();
    memcpy(h + hl, &key, 4);
    unsigned char *dst = h + hl + 4;
    uint64_t key64 = (uint64_t)key << 32 | key;
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) { uint64_t w; memcpy(&w, data + i, 8); w ^= key64; memcpy(dst + i, &w, 8); }
    const unsigned char *k = (const unsigned char *)&key;
    for (; i < len; i++) dst[i] = data[i] ^ k[i & 3];
    c->out_len += hl + 4 + len;
}

static int port;
static SSL_CTX *tls;

/* The setup scenario: one connection after another, 100 ms apart. */
static void *connector(void *arg) {
    (void)arg;
    char req[256], buf[4096];
    int n = snprintf(req, sizeof req,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", port);
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a)) exit(0); /* the server is done */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        SSL *ssl = NULL;
        if (tls) {
            ssl = SSL_new(tls);
            SSL_set_fd(ssl, fd);
            if (SSL_connect(ssl) != 1) { SSL_free(ssl); close(fd); goto next; }
        }
        if ((ssl ? SSL_write(ssl, req, n) : send(fd, req, (size_t)n, MSG_NOSIGNAL)) != n) goto done;
        size_t got = 0;
        for (;;) { /* the 101 response, then the server's Close (or its EOF) */
            int r = ssl ? SSL_read(ssl, buf + got, (int)(sizeof buf - got)) : (int)recv(fd, buf + got, sizeof buf - got, 0);
            if (r <= 0) break;
            got += (size_t)r;
            unsigned char *end = memmem(buf, got, "\r\n\r\n", 4);
            if (end && got >= (size_t)(end + 4 - (unsigned char *)buf) + 2 && (end[4] & 0x0f) == 8) break;
            if (got == sizeof buf) break;
        }
    done:
        if (ssl) { SSL_shutdown(ssl); SSL_free(ssl); }
        close(fd);
    next:;
        struct timespec pause = {0, 100 * 1000000};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static int flush(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) { c->out_off += (size_t)w; continue; }
        if (errno == EAGAIN) break;
        return -1;
    }
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    return 0;
}

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s PORT CONNS [connect [tls]]\n", argv[0]); return 2; }
    port = atoi(argv[1]);
    int conns = atoi(argv[2]), one = 1;
    getrandom(&rng_state, sizeof rng_state, 0);
    rng_state |= 1;
    if (argc > 3 && !strcmp(argv[3], "connect")) {
        if (argc > 4 && !strcmp(argv[4], "tls")) {
            tls = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, NULL); /* loopback, the bench's own certificate */
        }
        pthread_t thread;
        for (int i = 0; i < conns; i++) pthread_create(&thread, NULL, connector, NULL);
        for (;;) pause();
    }
    const char *ping_env = getenv("WSBENCH_PING_S");
    uint64_t ping_ms = ping_env ? (uint64_t)(atof(ping_env) * 1000) : 0, next_ping = now_ms() + ping_ms;
    conn_t **all = calloc((size_t)conns, sizeof *all);
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        conn_t *c = calloc(1, sizeof *c);
        all[i] = c;
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(c->fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char req[256];
        int n = snprintf(req, sizeof req,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", port);
        send(c->fd, req, (size_t)n, 0);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    struct epoll_event events[256];
    for (;;) {
        int timeout = -1;
        if (ping_ms) {
            uint64_t now = now_ms();
            if (now >= next_ping) { /* heartbeats: a ping on every connection */
                for (int i = 0; i < conns; i++) {
                    if (!all[i]->open) continue;
                    echo(all[i], 9, NULL, 0);
                    if (flush(all[i]) < 0) return 0;
                }
                next_ping = now + ping_ms;
            }
            timeout = (int)(next_ping - now_ms());
            if (timeout < 0) timeout = 0;
        }
        int n = epoll_wait(ep, events, 256, timeout);
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            for (;;) {
                reserve(&c->in, &c->in_cap, c->in_len + 65536);
                ssize_t r = recv(c->fd, c->in + c->in_len, 65536, 0);
                if (r > 0) { c->in_len += (size_t)r; continue; }
                if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return 0; /* the server is done */
                break;
            }
            size_t off = 0;
            if (!c->open) {
                unsigned char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
                if (!end) continue;
                off = (size_t)(end + 4 - c->in);
                c->open = 1;
            }
            for (;;) {
                unsigned char *p = c->in + off;
                size_t avail = c->in_len - off;
                if (avail < 2) break;
                uint64_t len = p[1] & 0x7f;
                size_t hl = 2;
                if (len == 126) { if (avail < 4) break; len = (uint64_t)p[2] << 8 | p[3]; hl = 4; }
                else if (len == 127) { if (avail < 10) break; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i]; hl = 10; }
                if (avail < hl + len) break;
                int op = p[0] & 0x0f;
                if (op == 1 || op == 2 || op == 0) echo(c, op ? op : 2, p + hl, len);
                off += hl + len;
            }
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
            if (flush(c) < 0) return 0;
            int want = c->out_len > 0;
            if (want != c->want_out) {
                c->want_out = want;
                struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
}
