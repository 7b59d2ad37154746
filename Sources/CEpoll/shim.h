// epoll(7) and timerfd_create(2) for Swift: Glibc's module map leaves
// <sys/epoll.h> and <sys/timerfd.h> out.
#include <sys/epoll.h>
#include <sys/timerfd.h>
