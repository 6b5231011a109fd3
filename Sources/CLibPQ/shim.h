// The PostgreSQL client library (Debian's libpq-dev), for the PostgreSQL metadata engine
// (MossaicMeta/PostgresMetaStore). Everything it needs imports as is: no forwarders.
#include <libpq-fe.h>
