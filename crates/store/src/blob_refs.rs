//! Which blobs the rows reference: the keys a deletion frees (collected inside its transaction,
//! before the rows go), and the orphan sweep that removes blobs no row references.
//!
//! Rows are deleted first and blobs after the commit, so a crash in between leaves blobs without
//! rows (swept at the next start), never rows pointing to missing blobs.

use std::collections::HashSet;

use futures::TryStreamExt;

use crate::scope::Table;
use crate::{BlobStore, Result, Scope, Store};

/// What is being deleted; each owns photos and reference photos, and the crops found in them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner {
    Course(i64),
    Session(i64),
    Student(i64),
    Reference(i64),
    Image(i64),
}

impl Owner {
    /// The conditions on `session_images` and on `reference_photos` that select the owned rows
    /// (`$1` is the id).
    fn conditions(self) -> (&'static str, &'static str) {
        match self {
            Owner::Course(_) => (
                "session_id IN (SELECT id FROM sessions WHERE course_id = $1)",
                "student_id IN (SELECT id FROM students WHERE course_id = $1)",
            ),
            Owner::Session(_) => ("session_id = $1", "FALSE"),
            Owner::Image(_) => ("id = $1", "FALSE"),
            Owner::Student(_) => ("FALSE", "student_id = $1"),
            Owner::Reference(_) => ("FALSE", "id = $1"),
        }
    }

    /// The table of the owner's own row (its dependants go with it by cascade).
    fn table(self) -> &'static str {
        match self {
            Owner::Course(_) => "courses",
            Owner::Session(_) => "sessions",
            Owner::Student(_) => "students",
            Owner::Reference(_) => "reference_photos",
            Owner::Image(_) => "session_images",
        }
    }

    pub(crate) fn id(self) -> i64 {
        match self {
            Owner::Course(id)
            | Owner::Session(id)
            | Owner::Student(id)
            | Owner::Reference(id)
            | Owner::Image(id) => id,
        }
    }
}

impl Store {
    /// Deletes `owner` (and what hangs off it) in one transaction, if `scope` sees its row of
    /// `table`; else `NotFound`. Returns the blob keys only the deleted rows referenced, for the
    /// caller to delete after the commit.
    pub(crate) async fn delete_visible(
        &self,
        scope: Scope,
        owner: Owner,
        table: &Table,
    ) -> Result<Vec<String>> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, table, scope, owner.id()).await?;
            let keys = delete_owner(&mut tx, owner).await?;
            tx.commit().await?;
            Ok(keys)
        })
    }

    /// Of `keys`, those no row references. A failed write cleans up with this: its keys are
    /// content-addressed, so one may already belong to a row stored before (the same photo,
    /// uploaded again), whose blob must stay.
    pub async fn unreferenced_blob_keys(&self, keys: Vec<String>) -> Result<Vec<String>> {
        with_pool!(self, pool => {
            let mut connection = pool.acquire().await?;
            unreferenced(&mut connection, keys).await
        })
    }

    /// Every blob key some row references.
    pub async fn referenced_blob_keys(&self) -> Result<HashSet<String>> {
        with_pool!(self, pool => {
            let keys: Vec<String> = sqlx::query_scalar(
                "SELECT blob_key FROM session_images
             UNION SELECT preview_blob_key FROM session_images WHERE preview_blob_key IS NOT NULL
             UNION SELECT blob_key FROM reference_photos
             UNION SELECT crop_blob_key FROM face_crops WHERE crop_blob_key IS NOT NULL",
            )
            .fetch_all(pool)
            .await?;
            Ok(keys.into_iter().collect())
        })
    }
}

/// Removes every blob no row references that is older than `grace`; returns how many. An upload
/// stores its blob before its row, so a blob written moments ago may be about to be recorded:
/// with one server under the data-directory lock (nothing written yet) the grace is zero; with
/// several nodes on one bucket it must exceed any upload's time from blob to row (see
/// [`BlobStore::sweep_grace`]). The blobs are listed before the rows are read, so a row recorded
/// meanwhile is seen.
pub async fn sweep_orphan_blobs(
    store: &Store,
    blobs: &BlobStore,
    grace: std::time::Duration,
) -> Result<usize> {
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let old: Vec<String> = blobs
        .list()
        .try_filter_map(|(key, written)| std::future::ready(Ok((written <= cutoff).then_some(key))))
        .try_collect()
        .await?;
    let referenced = store.referenced_blob_keys().await?;
    let orphans: Vec<String> = old
        .into_iter()
        .filter(|key| !referenced.contains(key))
        .collect();
    for key in &orphans {
        blobs.delete(key).await?;
    }
    Ok(orphans.len())
}

per_backend! {
    /// Deletes `owner`'s row (and by cascade what hangs off it) inside `tx`, and returns the blob
    /// keys that only the deleted rows referenced, for the caller to delete after the commit.
    pub(crate) async fn delete_owner(tx: &mut Conn, owner: Owner) -> Result<Vec<String>> {
        let keys = owned_keys(tx, owner).await?;
        sqlx::query(&format!("DELETE FROM {} WHERE id = $1", owner.table()))
            .bind(owner.id())
            .execute(&mut *tx)
            .await?;
        unreferenced(tx, keys).await
    }

    /// The blob keys of everything `owner` owns: photos (and their previews), reference photos, and
    /// their face crops.
    /// Called inside the deleting transaction, before the `DELETE`.
    pub(crate) async fn owned_keys(tx: &mut Conn, owner: Owner) -> Result<Vec<String>> {
        let (images, references) = owner.conditions();
        let sql = format!(
            "WITH imgs AS (SELECT id, blob_key, preview_blob_key FROM session_images WHERE {images}),
                  refs AS (SELECT id, blob_key FROM reference_photos WHERE {references})
             SELECT blob_key FROM imgs
             UNION SELECT preview_blob_key FROM imgs WHERE preview_blob_key IS NOT NULL
             UNION SELECT blob_key FROM refs
             UNION SELECT crop_blob_key FROM face_crops
                   WHERE crop_blob_key IS NOT NULL
                     AND (image_id IN (SELECT id FROM imgs) OR reference_photo_id IN (SELECT id FROM refs))"
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(owner.id())
            .fetch_all(&mut *tx)
            .await?)
    }

    /// `keys` without those some row still references (a key two rows share, such as the same
    /// photo's, must outlive the first row). Called inside the transaction, after the `DELETE`.
    pub(crate) async fn unreferenced(tx: &mut Conn, keys: Vec<String>) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(keys);
        }
        let list = serde_json::Value::from(keys.clone()).to_string();
        // `IN (subquery)` is materialised once, so each table is scanned once however many keys.
        let still: HashSet<String> = sqlx::query_scalar(&format!(
            "WITH k AS ({JSON_VALUES})
             SELECT blob_key FROM session_images WHERE blob_key IN (SELECT value FROM k)
             UNION SELECT preview_blob_key FROM session_images WHERE preview_blob_key IN (SELECT value FROM k)
             UNION SELECT blob_key FROM reference_photos WHERE blob_key IN (SELECT value FROM k)
             UNION SELECT crop_blob_key FROM face_crops WHERE crop_blob_key IN (SELECT value FROM k)",
        ))
        .bind(list)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        Ok(keys.into_iter().filter(|k| !still.contains(k)).collect())
    }
}
