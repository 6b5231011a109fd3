// The system SQLite (Debian's libsqlite3-dev). SQLITE_TRANSIENT (a macro cast) is rebuilt in
// Swift where it is used; the one variadic call Swift needs has a one-line forwarder below.
// Debian builds the library with the session extension (row changesets, used for incremental
// metadata snapshots); these two make sqlite3.h declare its API.
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

// sqlite3_db_config is variadic (Swift cannot call it): switches the connection's triggers off.
static inline int mossaic_sqlite3_disable_triggers(sqlite3 *db) { return sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)0); }
