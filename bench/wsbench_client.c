/*
 * wsbench_client: the limit line of the benchmarks — a raw C WebSocket client
 * with the same framing as the server (bench/README.md). Opens CONNS
 * connections to ws://127.0.0.1:PORT/, then echoes every message it receives
 * (masked with a fresh key per frame, as RFC 6455 requires), until the server
 * goes away. One thread, epoll.
 *
 *   wsbench_client PORT CONNS
 *
 * Build: cc -O2 -o wsbench_client wsbench_client.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
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

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s PORT CONNS\n", argv[0]); return 2; }
    int port = atoi(argv[1]), conns = atoi(argv[2]), one = 1;
    getrandom(&rng_state, sizeof rng_state, 0);
    rng_state |= 1;
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        conn_t *c = calloc(1, sizeof *c);
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
        int n = epoll_wait(ep, events, 256, -1);
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
            while (c->out_off < c->out_len) {
                ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
                if (w > 0) { c->out_off += (size_t)w; continue; }
                if (errno == EAGAIN) break;
                return 0;
            }
            if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
            int want = c->out_len > 0;
            if (want != c->want_out) {
                c->want_out = want;
                struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
}
