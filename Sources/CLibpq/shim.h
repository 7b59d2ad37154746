// libpq, PostgreSQL's client library (Debian: libpq-dev), for the fleet.
#include <libpq-fe.h>
