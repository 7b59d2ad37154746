// epoll(7) and timerfd_create(2) for Swift: Glibc's module map leaves
// <sys/epoll.h> and <sys/timerfd.h> out; accept4(2) is declared only with
// _GNU_SOURCE, so a wrapper gives it.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

static inline int cepoll_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}
