/*
 * wsbench_server: the one server peer of every benchmark run (bench/README.md).
 * A small epoll WebSocket server (RFC 6455 framing, no extensions) that drives
 * closed-loop echo round trips and measures them: it waits for CONNS clients,
 * then keeps one message of SIZE bytes in flight per connection; each echo
 * that comes back (masked, as clients must) is timed and answered with the
 * next message. After WARMUP seconds it counts for DURATION seconds and prints
 * one JSON line: messages, messages/s, p50/p99 round-trip latency (µs).
 *
 *   wsbench_server PORT CONNS SIZE DURATION [WARMUP]
 *
 * Binary frames for SIZE > 0 bytes; the clients echo whatever they receive.
 * Build: cc -O2 -o wsbench_server wsbench_server.c -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
} conn_t;

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

static void queue_message(conn_t *c) {
    unsigned char h[10];
    size_t hl;
    h[0] = 0x82; /* FIN + binary */
    if (size < 126) { h[1] = (unsigned char)size; hl = 2; }
    else if (size < 65536) { h[1] = 126; h[2] = size >> 8; h[3] = size & 255; hl = 4; }
    else { h[1] = 127; for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(size >> (56 - 8 * i)); hl = 10; }
    queue_bytes(c, h, hl);
    queue_bytes(c, payload, size);
    c->sent_at = now_ns();
    c->echo_got = 0;
}

static int flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
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
    char response[256];
    int rl = snprintf(response, sizeof response,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    queue_bytes(c, response, (size_t)rl);
    size_t used = (size_t)(end + 4 - (char *)c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->open = 1;
    return 1;
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
        if (op == 0x8) return -1;          /* close: the client is going */
        if (op == 0x9 || op == 0xA) continue; /* ping/pong: ignored */
        c->echo_got += len;                /* text, binary or continuation */
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

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s PORT CONNS SIZE DURATION [WARMUP]\n", argv[0]); return 2; }
    int port = atoi(argv[1]), conns = atoi(argv[2]);
    size = (size_t)atol(argv[3]);
    double duration = atof(argv[4]), warmup = argc > 5 ? atof(argv[5]) : 1.0;
    payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) payload[i] = (unsigned char)(i * 31 + 7);

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
    int accepted = 0, opened = 0, started = 0;
    uint64_t start = 0, window_start = 0, window_end = 0;
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, 100);
        uint64_t t = now_ns();
        if (started && !measuring && t >= start + (uint64_t)(warmup * 1e9) && window_end == 0) {
            measuring = 1;
            window_start = t;
            printf("WINDOW START\n");
            fflush(stdout);
        }
        if (measuring && t >= window_start + (uint64_t)(duration * 1e9)) { window_end = t; break; }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (accepted == conns) { close(fd); continue; }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    all[accepted++] = c;
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            if (events[i].events & EPOLLIN) {
                for (;;) {
                    reserve(&c->in, &c->in_cap, c->in_len + 65536 + 1);
                    ssize_t r = recv(c->fd, c->in + c->in_len, 65536, 0);
                    if (r > 0) { c->in_len += (size_t)r; continue; }
                    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) { fprintf(stderr, "a client went away\n"); return 1; }
                    break;
                }
                if (!c->open) {
                    int h = handshake(c);
                    if (h < 0) { fprintf(stderr, "bad handshake\n"); return 1; }
                    if (h > 0 && ++opened == conns) {
                        for (int k = 0; k < conns; k++) queue_message(all[k]);
                        for (int k = 0; k < conns; k++) flush_out(all[k]);
                        started = 1;
                        start = now_ns();
                    }
                }
                if (c->open && parse(c) < 0) { fprintf(stderr, "a client closed\n"); return 1; }
            }
            if (flush_out(c) < 0) { fprintf(stderr, "send failed\n"); return 1; }
            int want = c->out_len > 0;
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
    qsort(lat, lat_len, 8, cmp);
    uint64_t p50 = lat_len ? lat[lat_len / 2] : 0, p99 = lat_len ? lat[lat_len * 99 / 100] : 0;
    printf("{\"conns\":%d,\"size\":%zu,\"messages\":%llu,\"seconds\":%.3f,\"messages_per_s\":%.0f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
        conns, size, (unsigned long long)counted, seconds, counted / seconds, p50 / 1e3, p99 / 1e3);
    fflush(stdout);
    usleep(300000); /* the clients stay up a moment, so their CPU time can be read */
    return 0;
}
