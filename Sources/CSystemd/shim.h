#ifndef WSHOSTD_CSYSTEMD_SHIM_H
#define WSHOSTD_CSYSTEMD_SHIM_H

/* The daemon passes CODE_FILE/CODE_LINE/CODE_FUNC itself (from swift-log's
   source location), so the header's location-adding macro is not wanted. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/* SD_LISTEN_FDS_START is a macro; Swift cannot import it. */
static inline int wshostd_sd_listen_fds_start(void) { return SD_LISTEN_FDS_START; }

#endif
