//! Blob storage (photos, face crops) behind one small interface: a local directory (the embedded
//! default) or an S3-compatible bucket (`s3://bucket/prefix`), both through `object_store`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use crate::{Result, StoreError};

#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The same store when it is a local directory: a file there can be moved in by rename.
    local: Option<Arc<LocalFileSystem>>,
    /// Where the blobs are, for messages (`s3://bucket/prefix`, or the directory).
    location: String,
}

/// How long a health or start-up check waits for the blob store before calling it down.
pub const BLOB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the blob store failed a check, in words safe to show without a token (the log has the rest).
#[derive(Debug, thiserror::Error)]
pub enum BlobCheckError {
    #[error("no answer within {}s", BLOB_CHECK_TIMEOUT.as_secs())]
    TimedOut,
    #[error("access refused; check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    Refused,
    #[error("the bucket does not exist")]
    NoBucket,
    #[error("unreachable or failing; the server log has the cause")]
    Failed,
}

impl BlobCheckError {
    /// Whether the store may answer later by itself (an outage), rather than being misconfigured.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::TimedOut | Self::Failed)
    }
}

impl BlobStore {
    /// Blobs as files below `dir` (created if missing). Writes go to a temporary file that is
    /// renamed into place, so a blob is either complete or absent.
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(format!(
            "cannot create blob directory {}",
            dir.display()
        )))?;
        // Empty directories are removed with their last blob, so a deleted session or course
        // leaves nothing behind, not even its directory.
        let fs = Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true));
        Ok(Self {
            inner: fs.clone(),
            local: Some(fs),
            location: dir.display().to_string(),
        })
    }

    /// The blob store a `--blob-url` names, configured from the standard `AWS_…` variables of
    /// the environment (see [`Self::from_url_with`]).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_with(url, std::env::vars())
    }

    /// `s3://bucket[/prefix]`: an S3-compatible bucket, every key below `prefix`. `options` are
    /// `object_store`'s `AWS_…` settings by name (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_TIMEOUT`, …); other names are
    /// ignored. Another scheme is refused with what is supported.
    pub fn from_url_with(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let bad = |why: &str| StoreError::BlobUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected s3://bucket/prefix"))?;
        if scheme != "s3" {
            return Err(bad(&format!(
                "the scheme '{scheme}' is not supported; use s3://bucket/prefix, or leave the \
                 blob URL unset for the local blob directory"
            )));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name (s3://bucket/prefix)"));
        }
        let prefix = ObjectPath::parse(prefix.trim_matches('/'))
            .map_err(|e| bad(&format!("bad prefix: {e}")))?;
        // A request to a store that is down fails within seconds (answered 503), instead of
        // object_store's default of retrying for three minutes; the variables can change it.
        let mut builder = AmazonS3Builder::new()
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(30)),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            });
        for (name, value) in options {
            if !name.starts_with("AWS_") {
                continue;
            }
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        let s3 = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        let inner: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            inner,
            local: None,
            location: url.to_owned(),
        })
    }

    /// Where the blobs are: the directory, or the `s3://` URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// How old an unreferenced blob must be before the orphan sweep removes it. A local
    /// directory belongs to one server, which sweeps under its lock before writing anything; a
    /// bucket may be shared by several nodes, and one of them may have just written a blob whose
    /// row it has not recorded yet.
    pub fn sweep_grace(&self) -> Duration {
        if self.local.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(15 * 60)
        }
    }

    /// Whether the store answers, within [`BLOB_CHECK_TIMEOUT`]: the top level of the keys is
    /// listed (a few names: `images/`, `crops/`, …), which also finds a bucket that is missing.
    pub async fn check(&self) -> std::result::Result<(), BlobCheckError> {
        match tokio::time::timeout(BLOB_CHECK_TIMEOUT, self.inner.list_with_delimiter(None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(object_store::Error::NotFound { .. })) => Err(BlobCheckError::NoBucket),
            Ok(Err(
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. },
            )) => Err(BlobCheckError::Refused),
            // object_store reports a failed listing as `Generic` whatever the status; S3's
            // error code in the body is what says the bucket is missing.
            Ok(Err(e)) if e.to_string().contains("NoSuchBucket") => Err(BlobCheckError::NoBucket),
            Ok(Err(e)) => {
                tracing::warn!(location = %self.location, error = %e, "blob store check failed");
                Err(BlobCheckError::Failed)
            }
            Err(_) => Err(BlobCheckError::TimedOut),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&parse_key(key)?, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Stores the file at `file` under `key`, taking the file: on the local backend it is renamed
    /// into place (atomic, no copy through memory) when it is on the same file system.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let location = parse_key(key)?;
        let Some(local) = &self.local else {
            let bytes = tokio::fs::read(file)
                .await
                .map_err(StoreError::io(format!("cannot read {}", file.display())))?;
            return self.put(key, bytes.into()).await;
        };
        let target = local.path_to_filesystem(&location)?;
        let (file, context) = (file.to_owned(), format!("cannot store blob {key}"));
        tokio::task::spawn_blocking(move || move_into_place(&file, &target))
            .await
            .map_err(|e| StoreError::io(context.clone())(std::io::Error::other(e)))?
            .map_err(StoreError::io(context))
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        match self.inner.get(&parse_key(key)?).await {
            Ok(result) => Ok(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::BlobNotFound {
                key: key.to_owned(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a blob; removing one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&parse_key(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key in the store (in no particular order).
    pub fn keys(&self) -> impl Stream<Item = Result<String>> + use<> {
        self.list().map_ok(|(key, _)| key)
    }

    /// Every key in the store with when it was last written (in no particular order).
    pub fn list(&self) -> impl Stream<Item = Result<(String, DateTime<Utc>)>> + use<> {
        self.inner
            .list(None)
            .map_ok(|meta| (meta.location.to_string(), meta.last_modified))
            .map(|item| item.map_err(StoreError::from))
    }
}

/// Renames `file` to `target`, creating its directory; copies through a temporary file beside
/// the target when they are on different file systems, so that `target` is complete or absent.
fn move_into_place(file: &Path, target: &Path) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    // A concurrent delete may remove an empty directory between the two steps: retry once.
    for _ in 0..2 {
        std::fs::create_dir_all(dir)?;
        match std::fs::rename(file, target) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.exists() => continue,
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                // `name#<digits>` is what `object_store` names its own staging files: they are
                // never listed as blobs.
                static NEXT: AtomicU64 = AtomicU64::new(1);
                let mut staging = target.as_os_str().to_owned();
                staging.push(format!("#{}", NEXT.fetch_add(1, Ordering::Relaxed)));
                let staging = std::path::PathBuf::from(staging);
                std::fs::copy(file, &staging)?;
                std::fs::rename(&staging, target)?;
                return std::fs::remove_file(file);
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::rename(file, target)
}

fn parse_key(key: &str) -> Result<ObjectPath> {
    Ok(ObjectPath::parse(key).map_err(object_store::Error::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_round_trip_and_missing_blob_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
        blobs
            .put("images/ab/cd.jpg", Bytes::from_static(b"jpeg bytes"))
            .await
            .unwrap();
        assert_eq!(
            blobs.get("images/ab/cd.jpg").await.unwrap(),
            Bytes::from_static(b"jpeg bytes")
        );
        blobs.delete("images/ab/cd.jpg").await.unwrap();
        blobs.delete("images/ab/cd.jpg").await.unwrap();
        let err = blobs.get("images/ab/cd.jpg").await.unwrap_err();
        assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_file_is_moved_in_listed_and_its_emptied_directory_removed_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
        let upload = dir.path().join("upload");
        std::fs::write(&upload, b"photo").unwrap();
        let (photo, face) = (
            crate::blob_keys::session_photo(7, "abc"),
            crate::blob_keys::session_face(1, "run", 0),
        );
        blobs.put_file(&photo, &upload).await.unwrap();
        assert!(!upload.exists(), "moved, not copied");
        assert_eq!(
            blobs.get(&photo).await.unwrap(),
            Bytes::from_static(b"photo")
        );
        blobs.put(&face, Bytes::new()).await.unwrap();
        let mut keys: Vec<String> = blobs.keys().try_collect().await.unwrap();
        keys.sort();
        assert_eq!(keys, [face, photo.clone()]);
        blobs.delete(&photo).await.unwrap();
        assert!(!dir.path().join("blobs/images/7").exists());
        assert!(dir.path().join("blobs").exists());
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_blob_directory() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        assert!(blobs.put("../escape", Bytes::new()).await.is_err());
    }
}
