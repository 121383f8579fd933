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
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) | Self::Open { source: error, .. } => {
                sqlx_error_is_unavailable(error)
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
/// (58).
fn pg_code_is_unavailable(code: &str) -> bool {
    ["08", "53", "57P", "58"]
        .iter()
        .any(|class| code.starts_with(class))
}

#[cfg(test)]
mod tests {
    use super::pg_code_is_unavailable;

    #[test]
    fn postgresql_connection_and_shutdown_states_are_unavailable_constraint_ones_are_not() {
        for code in ["08006", "08001", "57P01", "57P03", "53300", "58030"] {
            assert!(pg_code_is_unavailable(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "40001"] {
            assert!(!pg_code_is_unavailable(code), "{code}");
        }
    }
}
