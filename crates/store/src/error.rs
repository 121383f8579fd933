//! The store's error type: what went wrong, in terms a caller can map to a response.

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

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}

impl StoreError {
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
