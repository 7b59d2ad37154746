// malloc_trim(3) for Swift: Glibc's module map leaves <malloc.h> out.
#include <malloc.h>
