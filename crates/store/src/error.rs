//! The store's error type: what went wrong, in terms a caller can map to a response.

use sqlx::postgres::PgDatabaseError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: i64 },

    #[error("{0}")]
    Conflict(String),

    /// The request names things that exist but do not fit together (a student of another course).
    #[error("{0}")]
    Invalid(String),

    #[error(
        "data directory {dir} is already in use by another attendansee server (pid {pid}); \
         stop it or choose another --data-dir"
    )]
    DataDirInUse { dir: String, pid: String },

    #[error(
        "unsupported database URL {0}: use postgres://USER:PASSWORD@HOST:PORT/DATABASE, or leave \
         it unset for SQLite in the data directory"
    )]
    UnsupportedDatabaseUrl(String),

    #[error("cannot open the database {path}: {source}")]
    Open { path: String, source: sqlx::Error },

    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        path: String,
        source: sqlx::migrate::MigrateError,
    },

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("blob {key} not found")]
    BlobNotFound { key: String },

    #[error("blob storage error: {0}")]
    Blob(#[from] object_store::Error),

    /// A `--blob-url` that names no blob store this build can use.
    #[error("invalid blob URL '{url}': {why}")]
    BlobUrl { url: String, why: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("password hashing failed: {0}")]
    PasswordHash(String),

    /// A name column holds a name its enum does not have: a bug or a hand-edited database,
    /// never the caller's fault.
    #[error("the database holds an unknown {what} '{name}'")]
    Corrupt { what: &'static str, name: String },

    /// Every password-checking slot stayed busy (a flood of logins); try again shortly.
    #[error("too many password checks at once; try again in a moment")]
    PasswordChecksBusy,
}

impl StoreError {
    /// Whether the storage itself failed (disk full, I/O error, database locked or gone): the
    /// request may succeed later, unlike a conflict or a bug. Callers answer "unavailable".
    /// A transaction PostgreSQL aborted to break a deadlock or a serialization conflict counts
    /// too (the store has already run it again, see `retry_on_conflict!`): nothing was
    /// written, and the same request later succeeds.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) | Self::Open { source: error, .. } => {
                sqlx_error_is_unavailable(error) || sqlx_error_is_transaction_conflict(error)
            }
            // The backend failed to read or write (a full disk, a lost connection); a missing
            // blob or a bad key is not that.
            Self::Blob(object_store::Error::Generic { .. }) | Self::Io { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with a caller-supplied message.
pub(crate) fn conflict_on_unique(
    message: impl Fn() -> String,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(error),
    }
}

/// Maps what a write below row `id` (an `entity`) meets when another request deleted that row
/// after the write checked it — a foreign-key violation (an insert below it), no row where the
/// check found one (an update of it) — to that row's `NotFound`, as if it had been gone before.
pub(crate) fn not_found_if_gone(
    entity: &'static str,
    id: i64,
) -> impl FnOnce(StoreError) -> StoreError {
    move |error| {
        if is_parent_gone(&error) {
            StoreError::NotFound { entity, id }
        } else {
            error
        }
    }
}

/// Whether `error` says a row the write relied on is gone (see [`not_found_if_gone`]).
pub(crate) fn is_parent_gone(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::RowNotFound) => true,
        StoreError::Database(sqlx::Error::Database(db)) => db.is_foreign_key_violation(),
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs for a transaction it aborted because of other transactions, not
/// because of what it did: a deadlock (one of the waiters is chosen) or a serialization failure.
/// Run again, it succeeds.
const PG_TRANSACTION_CONFLICTS: [&str; 2] = ["40P01", "40001"];

fn sqlx_error_is_transaction_conflict(error: &sqlx::Error) -> bool {
    // SQLite's codes are numbers: only a PostgreSQL error can carry these.
    matches!(error, sqlx::Error::Database(db)
        if db.code().is_some_and(|code| PG_TRANSACTION_CONFLICTS.contains(&code.as_ref())))
}

/// How many times a write transaction that PostgreSQL aborted for a deadlock or a serialization
/// failure is run in all before its error is returned.
pub(crate) const CONFLICT_ATTEMPTS: u32 = 4;

/// Whether a transaction that failed with `error` on its `attempt`th run (from 1) runs again:
/// PostgreSQL aborted it for a deadlock or a serialization failure, and attempts are left. Then
/// it first pauses a little, differently for each racer. See `retry_on_conflict!`.
pub(crate) async fn again_after_conflict(error: &StoreError, attempt: u32) -> bool {
    let StoreError::Database(error) = error else {
        return false;
    };
    if attempt >= CONFLICT_ATTEMPTS || !sqlx_error_is_transaction_conflict(error) {
        return false;
    }
    tracing::warn!(%error, attempt, "the database aborted a write transaction to break a conflict; running it again");
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos() % 25));
    tokio::time::sleep(std::time::Duration::from_millis(
        25 * u64::from(attempt) + jitter,
    ))
    .await;
    true
}

/// SQLite's primary result codes for a storage that cannot take the write now.
const SQLITE_BUSY: u32 = 5;
const SQLITE_LOCKED: u32 = 6;
const SQLITE_READONLY: u32 = 8;
const SQLITE_IOERR: u32 = 10;
const SQLITE_FULL: u32 = 13;
const SQLITE_CANTOPEN: u32 = 14;

fn sqlx_error_is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) if db.try_downcast_ref::<PgDatabaseError>().is_some() => {
            db.code().is_some_and(|code| pg_code_is_unavailable(&code))
        }
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            // Extended result codes carry the primary code in their low byte.
            .is_some_and(|code| {
                matches!(
                    code & 0xff,
                    SQLITE_BUSY
                        | SQLITE_LOCKED
                        | SQLITE_READONLY
                        | SQLITE_IOERR
                        | SQLITE_FULL
                        | SQLITE_CANTOPEN
                )
            }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs for a server that cannot serve now: connection exceptions (08),
/// insufficient resources (53), operator intervention such as a shutdown (57P), system errors
/// (58), and a write refused as read-only (25006: a standby, as after a failover until the pool
/// reaches the new primary).
fn pg_code_is_unavailable(code: &str) -> bool {
    code == "25006"
        || ["08", "53", "57P", "58"]
            .iter()
            .any(|class| code.starts_with(class))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A database error with a given SQLSTATE, as a driver would return it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn coded(code: &'static str) -> StoreError {
        StoreError::Database(sqlx::Error::Database(Box::new(Coded(code))))
    }

    #[tokio::test]
    async fn a_deadlocked_or_serialization_failed_transaction_is_run_again_and_others_are_not() {
        for code in ["40P01", "40001"] {
            let mut runs = 0;
            let result: Result<u32, StoreError> = retry_on_conflict!({
                runs += 1;
                if runs < 3 { Err(coded(code)) } else { Ok(runs) }
            });
            assert_eq!(result.unwrap(), 3, "{code}");
            // Past the attempts, the error is returned, and answered as "unavailable".
            let mut runs = 0;
            let error = retry_on_conflict!({
                runs += 1;
                Err::<(), _>(coded(code))
            })
            .unwrap_err();
            assert_eq!(runs, CONFLICT_ATTEMPTS, "{code}");
            assert!(error.is_unavailable(), "{code}");
        }
        for code in ["23505", "23503", "2067"] {
            let mut runs = 0;
            let error = retry_on_conflict!({
                runs += 1;
                Err::<(), _>(coded(code))
            })
            .unwrap_err();
            assert_eq!(runs, 1, "{code}");
            assert!(!error.is_unavailable(), "{code}");
        }
    }

    #[test]
    fn postgresql_connection_and_shutdown_states_are_unavailable_constraint_ones_are_not() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "58030", "25006",
        ] {
            assert!(pg_code_is_unavailable(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "40001"] {
            assert!(!pg_code_is_unavailable(code), "{code}");
        }
    }
}
