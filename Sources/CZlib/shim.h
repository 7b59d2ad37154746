// The system zlib for permessage-deflate (Debian: zlib1g-dev).
#include <zlib.h>

// deflateInit2 and inflateInit2 are macros over functions that take the
// version and the stream's size: Swift cannot call the macros.
static inline int wshostd_deflateInit2(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

static inline int wshostd_inflateInit2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}
