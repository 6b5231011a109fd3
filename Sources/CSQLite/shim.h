// The system SQLite (Debian's libsqlite3-dev). No wrappers: the API Swift needs is not variadic;
// SQLITE_TRANSIENT (a macro cast) is rebuilt in Swift where it is used.
// Debian builds the library with the session extension (row changesets, used for incremental
// metadata snapshots); these two make sqlite3.h declare its API.
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>
