//! Multipart uploads without holding bodies in memory: each file field is streamed to a
//! temporary file (hashed with SHA-256 on the way, its size limit enforced as it arrives), handed
//! to the services as an `Upload`, and read back only when a worker needs it; how many uploads
//! are processed at once is bounded.
//!
//! Without this, every field was collected whole (`field.bytes()`), so concurrent large uploads
//! grew the server by their full size each, and glibc kept much of it afterwards.

use std::path::PathBuf;

use axum::extract::multipart::Field;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;

use attendansee_services::uploads::Upload;

use crate::AppState;
use crate::embed::multipart_error;
use crate::error::{ApiError, ApiResult, ErrorType};

/// Longest text field (model name, flag) an upload form may carry.
const TEXT_FIELD_LIMIT: usize = 1024;

impl AppState {
    /// The directory uploads are streamed to (created if missing).
    fn upload_dir(&self) -> PathBuf {
        self.settings
            .upload_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("attendansee-uploads"))
    }

    /// A share of the upload memory as large as the files about to be read back (at most all
    /// of it), taken once they are on disk: receiving a body costs no memory, so slow clients
    /// hold nothing, and a refusal is an answer the client reads after sending. Waits at most
    /// `upload_wait`, then answers `Overloaded` with `Retry-After`.
    pub async fn upload_permit(&self, files: &[Upload]) -> ApiResult<OwnedSemaphorePermit> {
        let settings = &self.settings;
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let share = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(settings.upload_memory);
        let share = u32::try_from(kib(share)).unwrap_or(u32::MAX);
        let acquire = self.uploads.clone().acquire_many_owned(share);
        match tokio::time::timeout(settings.upload_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError {
                retry_after: Some(2),
                ..ApiError::new(
                    ErrorType::Overloaded,
                    "Too many uploads are being processed; retry after the Retry-After seconds",
                )
            }),
        }
    }

    /// Streams one file field to a temporary file, hashing it; a file larger than the upload
    /// limit is refused as soon as it is (`PayloadTooLarge`) and its partial file removed.
    pub async fn save_field(&self, mut field: Field<'_>) -> ApiResult<Upload> {
        let name = field.file_name().map(str::to_owned);
        let dir = self.upload_dir();
        let io = |e: std::io::Error| ApiError::internal(format!("cannot save an upload: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&dir)
            .map_err(io)?;
        let (file, path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let limit = self.settings.upload_body_limit as u64;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::new(
                    ErrorType::PayloadTooLarge,
                    format!("a file of the upload is larger than the limit of {limit} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        // Completes the writes tokio runs in the background before anyone reads the file.
        file.flush().await.map_err(io)?;
        Ok(Upload::new(
            name,
            crate::hex(&hasher.finalize()),
            size,
            path,
        ))
    }
}

/// Bytes as the semaphore's units (KiB, rounded up; at least 1, at most what it can hold).
pub(crate) fn kib(bytes: usize) -> usize {
    bytes
        .div_ceil(1024)
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

/// A short text field, read with a bound (a huge "model name" is refused, not collected).
pub async fn small_text(mut field: Field<'_>) -> ApiResult<String> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > TEXT_FIELD_LIMIT {
            return Err(ApiError::invalid_field(
                &name,
                format!("`{name}` is longer than {TEXT_FIELD_LIMIT} bytes"),
            ));
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::invalid_field(&name, format!("`{name}` is not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    async fn state(upload_memory: usize) -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = attendansee_store::Store::open(&dir.path().join("db.sqlite3"))
            .await
            .unwrap();
        let blobs = attendansee_store::BlobStore::local(&dir.path().join("blobs")).unwrap();
        let settings = Settings {
            upload_memory,
            upload_wait: std::time::Duration::from_millis(100),
            ..Settings::default()
        };
        (AppState::new(store, blobs, settings), dir)
    }

    fn file(size: u64) -> Upload {
        let path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        Upload::new(None, String::new(), size, path)
    }

    #[tokio::test]
    async fn uploads_beyond_the_memory_budget_wait_then_are_overloaded_with_retry_after() {
        let (state, _dir) = state(4 * 1024 * 1024).await;
        let big = state.upload_permit(&[file(3 * 1024 * 1024)]).await.unwrap();
        // Small ones still fit beside it; one more large one does not.
        let small = state.upload_permit(&[file(500 * 1024)]).await.unwrap();
        let err = state
            .upload_permit(&[file(2 * 1024 * 1024)])
            .await
            .unwrap_err();
        assert_eq!(err.error_type, ErrorType::Overloaded);
        assert_eq!(err.retry_after, Some(2));
        // A file larger than the whole budget takes all of it, once the others are done.
        drop((big, small));
        let all = state
            .upload_permit(&[file(64 * 1024 * 1024)])
            .await
            .unwrap();
        assert!(state.upload_permit(&[file(1)]).await.is_err());
        drop(all);
        let _last = state.upload_permit(&[file(1)]).await.unwrap();
    }
}
