//! Blob storage (photos, face crops) behind one small interface. The embedded default is a local
//! directory; `object_store` makes S3-compatible storage a matter of configuration later.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::{Result, StoreError};

#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The same store when it is a local directory: a file there can be moved in by rename.
    local: Option<Arc<LocalFileSystem>>,
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
        })
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
        self.inner
            .list(None)
            .map_ok(|meta| meta.location.to_string())
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
