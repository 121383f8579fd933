//! Blob storage (photos, face crops) behind one small interface. The embedded default is a local
//! directory; `object_store` makes S3-compatible storage a matter of configuration later.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::{Result, StoreError};

#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Blobs as files below `dir` (created if missing). Writes go to a temporary file that is
    /// renamed into place, so a blob is either complete or absent.
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(format!(
            "cannot create blob directory {}",
            dir.display()
        )))?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            inner: Arc::new(fs),
        })
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner
            .put(&parse_key(key)?, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
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
    async fn keys_cannot_escape_the_blob_directory() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        assert!(blobs.put("../escape", Bytes::new()).await.is_err());
    }
}
