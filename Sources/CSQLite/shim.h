// The system SQLite (Debian's libsqlite3-dev). No wrappers: the API Swift needs is not variadic;
// SQLITE_TRANSIENT (a macro cast) is rebuilt in Swift where it is used.
#include <sqlite3.h>
