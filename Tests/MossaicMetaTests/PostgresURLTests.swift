import MossaicMeta
import Testing

/// `format --meta`'s URL: what libpq accepts, never with a password, always naming a database.
@Suite struct PostgresURLTests {
    @Test(arguments: ["postgres://db.example.org/photos", "postgresql://mossaic@db.example.org:5433/photos?sslmode=require",
                      "postgres:///photos?host=/var/run/postgresql", "postgres://mossaic@127.0.0.1/photos?passfile=/etc/mossaicfs/pgpass"])
    func aURLWithoutPasswordIsKeptAsGiven(url: String) throws {
        let parsed = try PostgresURL(parsing: url)
        #expect(parsed.string == url && parsed.database == "photos")
    }

    @Test(arguments: ["postgres://mossaic:secret@db/photos", "postgres://db/photos?password=secret", "postgres://:secret@db/photos"])
    func aPasswordIsRefusedWithoutBeingRepeated(url: String) {
        #expect {
            try PostgresURL(parsing: url)
        } throws: { error in
            let said = "\(error)"
            return said.contains("a password does not go in the URL") && !said.contains("secret")
        }
    }

    @Test(arguments: [("postgres://db", "names no database"), ("mysql://db/photos", "not a postgres:// URL"),
                      ("postgres://db/photos?colour=blue", "invalid PostgreSQL URL"), ("host=db dbname=photos", "not a postgres:// URL")])
    func aURLThatNamesNoDatabaseOrIsNotOneIsRefused(url: String, says: String) {
        #expect {
            try PostgresURL(parsing: url)
        } throws: { error in "\(error)".contains(says) }
    }
}
