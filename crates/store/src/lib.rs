//! All persistence of AttendanSee: the SQL store (the only place with SQL), the blob store for
//! images and crops, credential hashing, and the lock that keeps one server per data directory.

/// Expands `$body` once per backend, with `$pool` bound to the concrete pool and that backend's
/// helpers (see [`backends`]) in scope, so each query is written once and compiles concretely for
/// both (binds, `FromRow` and decoding included).
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => {
                #[allow(unused_imports)]
                use $crate::backends::sqlite::*;
                $body
            }
            $crate::Pool::Postgres($pool) => {
                #[allow(unused_imports)]
                use $crate::backends::postgres::*;
                $body
            }
        }
    };
}

/// Defines helper items (functions taking a backend's connection) once per backend, in modules
/// `sqlite` and `postgres` that see the enclosing module and the backend's [`backends`] items.
macro_rules! per_backend {
    ($($item:item)*) => {
        pub(crate) mod sqlite {
            #![allow(unused_imports)]
            use super::*;
            use $crate::backends::sqlite::*;
            $($item)*
        }
        pub(crate) mod postgres {
            #![allow(unused_imports)]
            use super::*;
            use $crate::backends::postgres::*;
            $($item)*
        }
    };
}

/// Runs `$body` (a whole write transaction, as an async block's body) again when PostgreSQL
/// aborted it for a deadlock or a serialization failure, a few times (see
/// `error::again_after_conflict`). The store's writers take their locks in one order (a course's
/// row first, see `lock_course`), so this is the last line, for a conflict that order does not
/// foresee. (A macro, not a function taking a closure: an async closure's future is not known to
/// be `Send`, and the services spawn the store's futures.)
macro_rules! retry_on_conflict {
    ($body:expr) => {{
        let mut attempt = 1;
        loop {
            let result: $crate::Result<_> = async { $body }.await;
            match result {
                Err(error) => {
                    if $crate::error::again_after_conflict(&error, attempt).await {
                        attempt += 1;
                    } else {
                        break Err(error);
                    }
                }
                done => break done,
            }
        }
    }};
}

mod attendance;
pub mod blob_keys;
mod blob_refs;
mod blobs;
mod clusters;
pub mod copy;
mod courses;
pub mod credentials;
mod data_dir;
mod database;
mod error;
mod jobs;
mod models;
mod names;
mod password_work;
mod photos;
mod recognition;
mod scope;
mod users;

#[cfg(feature = "testing")]
pub mod testing;

pub use attendance::{AttendanceStatus, Evidence, SessionFacts};
pub use blob_refs::sweep_orphan_blobs;
pub use blobs::{BLOB_CHECK_TIMEOUT, BlobCheckError, BlobStore};
pub use clusters::{ClusterInputs, ClusterRecord};
pub use data_dir::{DB_FILE_NAME, DataDirLock};
pub use database::DatabaseLocation;
pub use error::StoreError;
pub use models::*;
pub use recognition::{
    AutoDecision, Correction, CropToEmbed, LabelledVector, NewReference, ReferencePhoto,
};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, SqlitePool};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the relational store. Cheap to clone; every method is one unit of work.
///
/// Callers see only these methods and the types of [`models`], whichever backend holds the data.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Password hashing and checking, on one dedicated thread per core.
    password_work: Arc<password_work::PasswordWork>,
}

/// The database behind a [`Store`]: SQLite (embedded, one server) or PostgreSQL (shared by nodes).
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What differs between the backends, beside the SQL both accept: write transactions, a few
/// dialect fragments, and (re-exported here) each module's per-backend helpers.
pub(crate) mod backends {
    pub(crate) mod sqlite {
        pub(crate) use crate::blob_refs::sqlite::*;
        pub(crate) use crate::clusters::sqlite::*;
        pub(crate) use crate::courses::sqlite::*;
        pub(crate) use crate::jobs::sqlite::*;
        pub(crate) use crate::photos::sqlite::*;
        pub(crate) use crate::recognition::sqlite::*;
        pub(crate) use crate::scope::sqlite::*;

        pub(crate) type Db = sqlx::Sqlite;
        pub(crate) type Conn = sqlx::SqliteConnection;
        /// SQLite's write lock already serialises writers; it has no row locks.
        pub(crate) const FOR_UPDATE: &str = "";
        /// Claimers are serialised by the write lock: nothing to skip.
        pub(crate) const SKIP_LOCKED: &str = "";
        /// The larger of two values (SQLite's scalar `MAX`).
        pub(crate) const GREATEST: &str = "MAX";
        /// The text values of a JSON array bound as `$1`, as rows of `value`.
        pub(crate) const JSON_VALUES: &str = "SELECT value FROM json_each($1)";

        /// A transaction for writing. `BEGIN IMMEDIATE` takes SQLite's write lock at the start,
        /// so concurrent writers queue behind the busy timeout; a deferred transaction that read
        /// first would instead fail at once ("database is locked") when it tried to write.
        pub(crate) async fn begin_write(
            pool: &sqlx::SqlitePool,
        ) -> crate::Result<sqlx::Transaction<'static, Db>> {
            Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
        }
    }

    pub(crate) mod postgres {
        pub(crate) use crate::blob_refs::postgres::*;
        pub(crate) use crate::clusters::postgres::*;
        pub(crate) use crate::courses::postgres::*;
        pub(crate) use crate::jobs::postgres::*;
        pub(crate) use crate::photos::postgres::*;
        pub(crate) use crate::recognition::postgres::*;
        pub(crate) use crate::scope::postgres::*;

        pub(crate) type Db = sqlx::Postgres;
        pub(crate) type Conn = sqlx::PgConnection;
        /// Writers on other nodes run at once (read committed): a row read to decide a write is
        /// locked until the commit.
        pub(crate) const FOR_UPDATE: &str = " FOR UPDATE";
        /// A row another transaction has locked (another node claiming it) is passed over, not
        /// waited for.
        pub(crate) const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
        pub(crate) const GREATEST: &str = "GREATEST";
        pub(crate) const JSON_VALUES: &str =
            "SELECT value FROM json_array_elements_text(CAST($1 AS JSON))";

        /// A plain transaction: unique constraints and `FOR UPDATE` keep concurrent writers
        /// correct, so nothing needs to wait for a database-wide lock.
        pub(crate) async fn begin_write(
            pool: &sqlx::PgPool,
        ) -> crate::Result<sqlx::Transaction<'static, Db>> {
            Ok(pool.begin().await?)
        }
    }
}

/// How long a password check waits for its turn before the caller is told to come back.
const PASSWORD_WAIT: Duration = Duration::from_secs(5);

/// How long a request waits for a PostgreSQL connection (or the start for the first one) before
/// it fails as unavailable: a lost database must not hang requests.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Store {
    /// Opens the database at `location` (creating a SQLite file if missing) and runs that
    /// backend's embedded migrations.
    pub async fn connect(location: &DatabaseLocation) -> Result<Self> {
        match location {
            DatabaseLocation::Sqlite(path) => Self::open(path).await,
            DatabaseLocation::Postgres(url) => Self::open_postgres(url, location).await,
        }
    }

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
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.display().to_string(),
                source,
            })?;
        Self::with_pool(Pool::Sqlite(pool))
    }

    async fn open_postgres(url: &str, location: &DatabaseLocation) -> Result<Self> {
        let shown = location.to_string();
        let open_error = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(open_error)?;
        // One connection first, so that an unreachable server or a refused login is reported
        // as what it is (the pool would only say that it timed out).
        let first = tokio::time::timeout(
            PG_ACQUIRE_TIMEOUT,
            sqlx::PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| open_error(sqlx::Error::PoolTimedOut))?
        .map_err(open_error)?;
        first.close().await.map_err(open_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        // sqlx's PostgreSQL migrator holds an advisory lock while it runs, so nodes starting
        // together migrate one after the other.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: shown.clone(),
                source,
            })?;
        Self::with_pool(Pool::Postgres(pool))
    }

    fn with_pool(pool: Pool) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Ok(Self {
            pool,
            password_work: Arc::new(password_work::PasswordWork::start(cores, PASSWORD_WAIT)?),
        })
    }

    /// Whether this store is PostgreSQL (shared by nodes) rather than a SQLite file.
    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
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
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Waits for open connections to finish and closes the pool (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}
