// epoll(7) for Swift: Glibc's module map leaves <sys/epoll.h> out.
#include <sys/epoll.h>
