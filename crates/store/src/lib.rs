//! All persistence of AttendanSee: the SQL store (the only place with SQL), the blob store for
//! images and crops, credential hashing, and the lock that keeps one server per data directory.

mod attendance;
pub mod blob_keys;
mod blob_refs;
mod blobs;
mod clusters;
mod courses;
pub mod credentials;
mod data_dir;
mod error;
mod jobs;
mod models;
mod names;
mod password_work;
mod photos;
mod recognition;
mod scope;
mod users;

pub use attendance::{AttendanceStatus, Evidence, SessionFacts};
pub use blob_refs::sweep_orphan_blobs;
pub use blobs::{BLOB_CHECK_TIMEOUT, BlobCheckError, BlobStore};
pub use clusters::{ClusterInputs, ClusterRecord};
pub use data_dir::{DB_FILE_NAME, DataDirLock};
pub use error::StoreError;
pub use models::*;
pub use recognition::{
    AutoDecision, Correction, CropToEmbed, LabelledVector, NewReference, ReferencePhoto,
};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqlitePool};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the relational store. Cheap to clone; every method is one unit of work.
///
/// Callers see only these methods and the types of [`models`]: a PostgreSQL backend can later sit
/// behind the same API without touching them.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Password hashing and checking, on one dedicated thread per core.
    password_work: Arc<password_work::PasswordWork>,
}

/// How long a password check waits for its turn before the caller is told to come back.
const PASSWORD_WAIT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if missing) the SQLite database at `path` and runs the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(StoreError::Database)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Writers from another process (the `users` command beside a running server) wait
            // for each other instead of failing at once.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A transaction whose COMMIT failed (disk full) may have been rolled back by SQLite
            // itself; sqlx's own ROLLBACK then fails and leaves the connection believing it is
            // still inside a transaction, so every later `begin` on it would fail. Such a
            // connection is closed instead of going back to the pool.
            .after_release(|connection, _| {
                Box::pin(async move {
                    // Flushes the rollback a dropped transaction queued before looking.
                    connection.ping().await?;
                    Ok(!connection.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.display().to_string(),
                source,
            })?;
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Ok(Self {
            pool,
            password_work: Arc::new(password_work::PasswordWork::start(cores, PASSWORD_WAIT)?),
        })
    }

    /// A transaction for writing. `BEGIN IMMEDIATE` takes SQLite's write lock at the start, so
    /// concurrent writers queue behind the busy timeout; a deferred transaction that read first
    /// would instead fail at once ("database is locked") when it tried to write.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Runs CPU- and memory-heavy password work (argon2) on the password threads, at most one
    /// per core at a time; `PasswordChecksBusy` if no turn comes within a few seconds.
    pub(crate) async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.password_work.run(work).await
    }

    /// Cheap liveness probe for the health endpoint.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for open connections to finish and closes the pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
