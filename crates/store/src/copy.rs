//! `db copy`: every row of a SQLite store into an empty PostgreSQL one (ids kept), and every blob
//! of one blob store into another, each verified. One generic copier driven by the two schemas as
//! their catalogs describe them, so a new table or column is copied without code here — and a
//! schema on one side only is refused rather than half copied.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

use crate::credentials::hex;
use crate::{BlobStore, Pool, Store, StoreError};

/// sqlx's own bookkeeping: each backend numbers its migrations its own way.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Tables the target's migrations fill with starting values, and the condition every such row
/// meets while nothing has been written: they count as empty then, and are replaced by the copy.
const SEEDED: &[(&str, &str)] = &[("id_counters", "value = 0")];

/// Rows per INSERT: far below PostgreSQL's 65,535 bound parameters for any table here.
const BATCH_ROWS: usize = 500;

/// Blobs in flight at once (each is held in memory while it is copied and read back).
const BLOBS_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the source of a copy must be a SQLite store")]
    SourceNotSqlite,
    #[error("the target of a copy must be a PostgreSQL store")]
    TargetNotPostgres,
    #[error(
        "the target is not empty: table {table} has rows; copy into a new, empty database only"
    )]
    TargetNotEmpty { table: String },
    /// The target blob store holds a blob the source does not have: it (its bucket and prefix)
    /// is in use by something else. The source's own blobs there are a copy that stopped
    /// half-way, which may be run again.
    #[error(
        "the target blob store is not empty: it holds {key}, which is not one of this \
         installation's blobs; copy into a new, empty bucket or prefix only"
    )]
    BlobTargetNotEmpty { key: String },
    #[error("the source and target schemas differ: {}", .0.join("; "))]
    SchemaMismatch(Vec<String>),
    #[error("column {table}.{column} has type '{kind}' on the target, which the copy cannot carry")]
    UnsupportedType {
        table: String,
        column: String,
        kind: String,
    },
    #[error("table {0} has no primary key to order its rows by")]
    NoPrimaryKey(String),
    #[error("the foreign keys of tables {0:?} form a cycle; no insertion order exists")]
    ForeignKeyCycle(Vec<String>),
    #[error("cannot read {table}.{column} of the source: {source}")]
    BadValue {
        table: String,
        column: String,
        source: sqlx::Error,
    },
    #[error("verification failed for table {table}: {what}")]
    RowsDiffer { table: String, what: String },
    #[error("verification failed for blob {key}: {what}")]
    BlobDiffers { key: String, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// What the copy has done so far, for a progress line.
#[derive(Clone, Debug)]
pub enum CopyProgress {
    /// One table copied: its rows, verified.
    Table { table: String, rows: u64 },
    /// Blobs copied and read back so far, of `total`.
    Blobs { done: u64, total: u64 },
}

/// A table as copied: its rows and the checksum both sides gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    pub checksum: String,
}

/// How a column's values are read on both sides and bound on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Float,
    Text,
    Bytes,
    Time,
}

impl Kind {
    /// The PostgreSQL type names (`information_schema.columns.data_type`) the copy carries.
    fn of_postgres(data_type: &str) -> Option<Self> {
        Some(match data_type {
            "bigint" => Self::Int,
            "boolean" => Self::Bool,
            "double precision" => Self::Float,
            "text" => Self::Text,
            "bytea" => Self::Bytes,
            "timestamp with time zone" => Self::Time,
            _ => return None,
        })
    }
}

/// One value, normalised so that both sides compare equal when they hold the same thing.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Float(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    /// Truncated to the microsecond: PostgreSQL keeps no finer time (SQLite's text may).
    Time(Option<DateTime<Utc>>),
}

impl Value {
    /// Feeds the value to a row checksum: a tag, then its bytes (floats by their bits, times as
    /// microseconds since the epoch, text and blobs length-prefixed).
    fn hash(&self, hasher: &mut Sha256) {
        fn put<T>(
            hasher: &mut Sha256,
            tag: u8,
            value: Option<T>,
            bytes: impl FnOnce(T) -> Vec<u8>,
        ) {
            match value {
                None => hasher.update([0]),
                Some(v) => {
                    hasher.update([tag]);
                    hasher.update(bytes(v));
                }
            }
        }
        let sized = |b: &[u8]| {
            let mut out = (b.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(b);
            out
        };
        match self {
            Self::Int(v) => put(hasher, 1, *v, |v| v.to_le_bytes().to_vec()),
            Self::Bool(v) => put(hasher, 2, *v, |v| vec![u8::from(v)]),
            Self::Float(v) => put(hasher, 3, *v, |v| v.to_bits().to_le_bytes().to_vec()),
            Self::Text(v) => put(hasher, 4, v.as_deref(), |v| sized(v.as_bytes())),
            Self::Bytes(v) => put(hasher, 5, v.as_deref(), sized),
            Self::Time(v) => put(hasher, 6, *v, |v| {
                v.timestamp_micros().to_le_bytes().to_vec()
            }),
        }
    }
}

fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// Reads column `i` of a row as `kind` (a macro: the two backends' rows share no trait bound
/// short of naming every type).
macro_rules! read_value {
    ($row:expr, $i:expr, $kind:expr) => {
        match $kind {
            Kind::Int => $row.try_get::<Option<i64>, _>($i).map(Value::Int),
            Kind::Bool => $row.try_get::<Option<bool>, _>($i).map(Value::Bool),
            Kind::Float => $row.try_get::<Option<f64>, _>($i).map(Value::Float),
            Kind::Text => $row.try_get::<Option<String>, _>($i).map(Value::Text),
            Kind::Bytes => $row.try_get::<Option<Vec<u8>>, _>($i).map(Value::Bytes),
            Kind::Time => $row
                .try_get::<Option<DateTime<Utc>>, _>($i)
                .map(|t| Value::Time(t.map(truncate_to_micros))),
        }
    };
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    kind: Kind,
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
    /// Primary-key columns, in key order: rows are read in this order on both sides.
    key: Vec<String>,
    /// Identity columns of the target, whose sequences must go past the copied ids.
    identity: Vec<String>,
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT` of every column in key order; on PostgreSQL text keys sort bytewise, as SQLite's.
    fn select(&self, postgres: bool) -> String {
        let order = self
            .key
            .iter()
            .map(|k| {
                let text = self
                    .columns
                    .iter()
                    .any(|c| &c.name == k && c.kind == Kind::Text);
                if postgres && text {
                    format!("{} COLLATE \"C\"", quote(k))
                } else {
                    quote(k)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {} FROM {} ORDER BY {order}",
            self.column_list(),
            quote(&self.name)
        )
    }
}

/// A quoted SQL identifier (names come from the catalogs, never from a user).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a copy from `source` into `target` will do: the tables in foreign-key order with their
/// columns as the target types them. Made by [`RowCopy::prepare`], which refuses differing
/// schemas and a target with rows before anything is written.
pub struct RowCopy {
    source: sqlx::SqlitePool,
    target: sqlx::PgPool,
    tables: Vec<Table>,
}

impl RowCopy {
    /// Reads both schemas, checks that they have the same tables and columns and that the
    /// target holds no rows.
    pub async fn prepare(source: &Store, target: &Store) -> Result<Self, CopyError> {
        let Pool::Sqlite(source) = &source.pool else {
            return Err(CopyError::SourceNotSqlite);
        };
        let Pool::Postgres(target) = &target.pool else {
            return Err(CopyError::TargetNotPostgres);
        };
        let tables = plan(source, target).await?;
        let copy = Self {
            source: source.clone(),
            target: target.clone(),
            tables,
        };
        let mut conn = copy.target.acquire().await?;
        copy.ensure_empty(&mut conn).await?;
        Ok(copy)
    }

    /// The tables, in the order they are copied.
    pub fn tables(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.clone()).collect()
    }

    async fn ensure_empty(&self, conn: &mut sqlx::PgConnection) -> Result<(), CopyError> {
        for table in &self.tables {
            let seeded = SEEDED.iter().find(|(name, _)| *name == table.name);
            let sql = match seeded {
                Some((_, condition)) => format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE NOT ({condition}))",
                    quote(&table.name)
                ),
                None => format!("SELECT EXISTS (SELECT 1 FROM {})", quote(&table.name)),
            };
            let has_rows: bool = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?;
            if has_rows {
                return Err(CopyError::TargetNotEmpty {
                    table: table.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Copies every row in one target transaction, table by table in foreign-key order, moves
    /// the identity sequences past the copied ids, and verifies each table's row count and
    /// checksum on the target before committing: on any failure nothing is left on the target.
    pub async fn run(
        &self,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> Result<Vec<TableCopy>, CopyError> {
        // One read transaction: every table from the same snapshot.
        let mut source = self.source.begin().await?;
        let mut target = self.target.begin().await?;
        self.ensure_empty(&mut target).await?;
        for (name, _) in SEEDED {
            if self.tables.iter().any(|t| t.name == *name) {
                sqlx::query(&format!("DELETE FROM {}", quote(name)))
                    .execute(&mut *target)
                    .await?;
            }
        }
        let mut copied = Vec::new();
        for table in &self.tables {
            let (rows, checksum) = copy_table(table, &mut source, &mut target).await?;
            let source_count: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&table.name)))
                    .fetch_one(&mut *source)
                    .await?;
            if u64::try_from(source_count).ok() != Some(rows) {
                return Err(CopyError::RowsDiffer {
                    table: table.name.clone(),
                    what: format!("{source_count} rows counted on the source, {rows} read"),
                });
            }
            for column in &table.identity {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), MAX({c})) FROM {t} \
                     HAVING MAX({c}) IS NOT NULL",
                    c = quote(column),
                    t = quote(&table.name)
                ))
                .bind(quote(&table.name))
                .bind(column)
                .execute(&mut *target)
                .await?;
            }
            let (target_rows, target_checksum) = checksum_target(table, &mut target).await?;
            if target_rows != rows {
                return Err(CopyError::RowsDiffer {
                    table: table.name.clone(),
                    what: format!("{rows} rows on the source, {target_rows} on the target"),
                });
            }
            if target_checksum != checksum {
                return Err(CopyError::RowsDiffer {
                    table: table.name.clone(),
                    what: format!(
                        "checksum {checksum} on the source, {target_checksum} on the target"
                    ),
                });
            }
            progress(CopyProgress::Table {
                table: table.name.clone(),
                rows,
            });
            copied.push(TableCopy {
                table: table.name.clone(),
                rows,
                checksum,
            });
        }
        target.commit().await?;
        source.rollback().await?;
        Ok(copied)
    }
}

/// Copies one table's rows in key order, in batches; returns how many and their checksum.
async fn copy_table(
    table: &Table,
    source: &mut sqlx::SqliteConnection,
    target: &mut sqlx::PgConnection,
) -> Result<(u64, String), CopyError> {
    let select = table.select(false);
    let mut rows = sqlx::query(&select).fetch(&mut *source);
    let mut hasher = Sha256::new();
    let (mut count, mut batch) = (0u64, Vec::with_capacity(BATCH_ROWS));
    while let Some(row) = rows.try_next().await? {
        let mut values = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            let value = read_value!(row, i, column.kind).map_err(|source| CopyError::BadValue {
                table: table.name.clone(),
                column: column.name.clone(),
                source,
            })?;
            value.hash(&mut hasher);
            values.push(value);
        }
        batch.push(values);
        count += 1;
        if batch.len() == BATCH_ROWS {
            insert(table, std::mem::take(&mut batch), target).await?;
        }
    }
    if !batch.is_empty() {
        insert(table, batch, target).await?;
    }
    Ok((count, hex(&hasher.finalize())))
}

async fn insert(
    table: &Table,
    rows: Vec<Vec<Value>>,
    target: &mut sqlx::PgConnection,
) -> Result<(), CopyError> {
    let mut query = QueryBuilder::<sqlx::Postgres>::new(format!(
        "INSERT INTO {} ({}) ",
        quote(&table.name),
        table.column_list()
    ));
    query.push_values(rows, |mut row, values| {
        for value in values {
            match value {
                Value::Int(v) => row.push_bind(v),
                Value::Bool(v) => row.push_bind(v),
                Value::Float(v) => row.push_bind(v),
                Value::Text(v) => row.push_bind(v),
                Value::Bytes(v) => row.push_bind(v),
                Value::Time(v) => row.push_bind(v),
            };
        }
    });
    query.build().execute(target).await?;
    Ok(())
}

/// The target's rows of `table` counted and checksummed as [`copy_table`] did the source's.
async fn checksum_target(
    table: &Table,
    target: &mut sqlx::PgConnection,
) -> Result<(u64, String), CopyError> {
    let select = table.select(true);
    let mut rows = sqlx::query(&select).fetch(target);
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        for (i, column) in table.columns.iter().enumerate() {
            read_value!(row, i, column.kind)?.hash(&mut hasher);
        }
        count += 1;
    }
    Ok((count, hex(&hasher.finalize())))
}

/// Both schemas read and compared; the tables in an order where every table comes after those
/// its foreign keys name.
async fn plan(source: &sqlx::SqlitePool, target: &sqlx::PgPool) -> Result<Vec<Table>, CopyError> {
    let source_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(source)
    .await?
    .into_iter()
    .collect();
    let target_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(target)
    .await?
    .into_iter()
    .collect();
    let mut differences = Vec::new();
    for name in source_tables.difference(&target_tables) {
        differences.push(format!("table {name} only in the source"));
    }
    for name in target_tables.difference(&source_tables) {
        differences.push(format!("table {name} only in the target"));
    }
    let mut tables = BTreeMap::new();
    let mut references = BTreeMap::new();
    for name in source_tables.intersection(&target_tables) {
        // SQLite's columns in their order, with their place in the primary key (0: not in it).
        let source_columns: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(name)
                .fetch_all(source)
                .await?;
        let target_columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(name)
        .fetch_all(target)
        .await?;
        let target_types: BTreeMap<&str, (&str, bool)> = target_columns
            .iter()
            .map(|(c, t, identity)| (c.as_str(), (t.as_str(), identity == "YES")))
            .collect();
        let source_names: BTreeSet<&str> = source_columns.iter().map(|(c, _)| c.as_str()).collect();
        for (column, _) in &source_columns {
            if !target_types.contains_key(column.as_str()) {
                differences.push(format!("column {name}.{column} only in the source"));
            }
        }
        for (column, _, _) in &target_columns {
            if !source_names.contains(column.as_str()) {
                differences.push(format!("column {name}.{column} only in the target"));
            }
        }
        let mut columns = Vec::new();
        let mut identity = Vec::new();
        for (column, _) in &source_columns {
            let Some((data_type, is_identity)) = target_types.get(column.as_str()) else {
                continue;
            };
            let kind = Kind::of_postgres(data_type).ok_or_else(|| CopyError::UnsupportedType {
                table: name.clone(),
                column: column.clone(),
                kind: (*data_type).to_owned(),
            })?;
            columns.push(Column {
                name: column.clone(),
                kind,
            });
            if *is_identity {
                identity.push(column.clone());
            }
        }
        let mut key: Vec<(i64, String)> = source_columns
            .iter()
            .filter(|(_, pk)| *pk > 0)
            .map(|(c, pk)| (*pk, c.clone()))
            .collect();
        key.sort();
        if key.is_empty() {
            return Err(CopyError::NoPrimaryKey(name.clone()));
        }
        let parents: BTreeSet<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(name)
                .fetch_all(source)
                .await?
                .into_iter()
                .filter(|parent| parent != name)
                .collect();
        references.insert(name.clone(), parents);
        tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                columns,
                key: key.into_iter().map(|(_, c)| c).collect(),
                identity,
            },
        );
    }
    if !differences.is_empty() {
        return Err(CopyError::SchemaMismatch(differences));
    }
    // Parents first; the smallest name among the ready ones, so the order is always the same.
    let mut ordered = Vec::new();
    while !references.is_empty() {
        let ready = references
            .iter()
            .find(|(_, parents)| parents.iter().all(|p| !references.contains_key(p)))
            .map(|(name, _)| name.clone());
        let Some(ready) = ready else {
            return Err(CopyError::ForeignKeyCycle(references.into_keys().collect()));
        };
        references.remove(&ready);
        ordered.extend(tables.remove(&ready));
    }
    Ok(ordered)
}

/// Copies every blob `source` lists into `target` and reads each back: its SHA-256 there must be
/// the source's. Returns how many were copied. A target holding any blob the source does not
/// have is refused before anything is written; one of the source's blobs already on the target
/// is overwritten, so a copy that failed half-way can be run again.
pub async fn copy_blobs(
    source: &BlobStore,
    target: &BlobStore,
    progress: &mut (dyn FnMut(CopyProgress) + Send),
) -> Result<u64, CopyError> {
    let keys: Vec<String> = source.keys().try_collect().await?;
    let ours: std::collections::HashSet<&str> = keys.iter().map(String::as_str).collect();
    let mut present = target.keys();
    while let Some(key) = present.next().await {
        let key = key?;
        if !ours.contains(key.as_str()) {
            return Err(CopyError::BlobTargetNotEmpty { key });
        }
    }
    drop(present);
    let total = keys.len() as u64;
    let mut copies = futures::stream::iter(keys)
        .map(|key| async move {
            let bytes = source.get(&key).await?;
            let digest = Sha256::digest(&bytes);
            target.put(&key, bytes).await?;
            let back = target.get(&key).await?;
            if Sha256::digest(&back) != digest {
                return Err(CopyError::BlobDiffers {
                    key,
                    what: "its SHA-256 read back from the target differs from the source's".into(),
                });
            }
            Ok(())
        })
        .buffer_unordered(BLOBS_IN_FLIGHT);
    let mut done = 0;
    while let Some(copied) = copies.next().await {
        copied?;
        done += 1;
        if done % 100 == 0 || done == total {
            progress(CopyProgress::Blobs { done, total });
        }
    }
    Ok(done)
}
