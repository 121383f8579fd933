//! Test databases on both backends (feature `testing`): a SQLite file in a temporary directory,
//! and a fresh PostgreSQL database per test on the server of `ATTENDANSEE_TEST_DATABASE_URL`,
//! dropped afterwards. Without that variable the PostgreSQL half is skipped with `SKIPPED …`,
//! unless `ATTENDANSEE_REQUIRE_POSTGRES=1` (as CI sets it) makes it fail.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, Executor};

use crate::{DatabaseLocation, Store};

/// The PostgreSQL server tests create their databases on (a role with CREATEDB).
pub const TEST_DATABASE_URL: &str = "ATTENDANSEE_TEST_DATABASE_URL";
/// Set to `1` to fail, rather than skip, a test whose PostgreSQL half cannot run.
pub const REQUIRE_POSTGRES: &str = "ATTENDANSEE_REQUIRE_POSTGRES";

/// One test's database. A PostgreSQL one is dropped (with its open connections) on drop.
pub struct TestDatabase {
    location: DatabaseLocation,
    /// Holds a SQLite database's directory.
    dir: Option<tempfile::TempDir>,
    /// The server's own URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A SQLite database in a new temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self {
            location: DatabaseLocation::Sqlite(dir.path().join(crate::DB_FILE_NAME)),
            dir: Some(dir),
            postgres: None,
        }
    }

    /// A new, empty PostgreSQL database, or `None` (after printing why) when no test server is
    /// configured. `test` names the caller in the message.
    ///
    /// # Panics
    /// When no server is configured but `ATTENDANSEE_REQUIRE_POSTGRES=1`, or the server refuses.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Some(server) = std::env::var(TEST_DATABASE_URL)
            .ok()
            .filter(|url| !url.is_empty())
        else {
            assert!(
                std::env::var(REQUIRE_POSTGRES).as_deref() != Ok("1"),
                "{test}: {REQUIRE_POSTGRES}=1 but {TEST_DATABASE_URL} is not set"
            );
            // Past the test harness's capture, so that a skip is seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} on PostgreSQL: set {TEST_DATABASE_URL} to run it"
            );
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect to {TEST_DATABASE_URL}: {e}"));
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot create a test database: {e}"));
        let _ = admin.close().await;
        Some(Self {
            location: DatabaseLocation::Postgres(with_database(&server, &name)),
            dir: None,
            postgres: Some((server, name)),
        })
    }

    pub fn location(&self) -> &DatabaseLocation {
        &self.location
    }

    /// What `--database-url` takes to open this database (a `postgres://` or `sqlite://` URL).
    pub fn url(&self) -> String {
        match &self.location {
            DatabaseLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseLocation::Postgres(url) => url.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// A temporary directory that lives as long as this database (for blobs and the like).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Opens the store on this database (migrating it on first use).
    ///
    /// # Panics
    /// When it cannot be opened.
    pub async fn open(&self) -> Store {
        Store::connect(&self.location)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test database {}: {e}", self.location))
    }

    /// Runs `sql` (one or more statements, no parameters) on a connection of its own, to do
    /// what the store never would (corrupt a row, inject a fault).
    ///
    /// # Panics
    /// When the SQL fails.
    pub async fn execute(&self, sql: &str) {
        let result = match &self.location {
            DatabaseLocation::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    // The schema's CHECKs would refuse the corrupt values tests write.
                    .pragma("ignore_check_constraints", "ON");
                let mut connection = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("a raw SQLite connection");
                let result = sqlx::raw_sql(sql).execute(&mut connection).await.map(drop);
                let _ = connection.close().await;
                result
            }
            DatabaseLocation::Postgres(url) => {
                let mut connection = sqlx::PgConnection::connect(url)
                    .await
                    .expect("a raw PostgreSQL connection");
                let result = sqlx::raw_sql(sql).execute(&mut connection).await.map(drop);
                let _ = connection.close().await;
                result
            }
        };
        result.unwrap_or_else(|e| panic!("raw SQL failed: {e}\n{sql}"));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime (which cannot block) or after a panic: a thread of its
        // own with a runtime of its own drops the database either way.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server).await.ok()?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop a test database on {TEST_DATABASE_URL}");
        }
    }
}

/// Runs `test` on a SQLite database, then on a PostgreSQL one when a server is configured (see
/// [`TestDatabase::postgres`]). `name` says which test is skipped.
pub async fn each_backend(name: &str, mut test: impl AsyncFnMut(TestDatabase)) {
    test(TestDatabase::sqlite()).await;
    if let Some(database) = TestDatabase::postgres(name).await {
        test(database).await;
    }
}

/// `url` naming database `name` instead of the one it names (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// `text` (an API answer, a row dump) with every fraction of a second in an RFC 3339 time cut to
/// microseconds, trailing zeros dropped as chrono drops them: PostgreSQL keeps microseconds where
/// SQLite keeps what chrono wrote (nanoseconds), so answers from a copy compare equal through it.
pub fn to_micros(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '.' && i > 0 && chars[i - 1].is_ascii_digit() {
            let digits: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if chars.get(i + 1 + digits.len()) == Some(&'Z') && !digits.is_empty() {
                let kept: String = digits.chars().take(6).collect();
                let kept = kept.trim_end_matches('0');
                if !kept.is_empty() {
                    out.push('.');
                    out.push_str(kept);
                }
                i += 1 + digits.len();
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn a_database_name_replaces_the_one_in_the_url() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t1"),
            "postgres://u:p@h:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u@h?sslmode=disable", "t2"),
            "postgres://u@h/t2?sslmode=disable"
        );
    }
}
