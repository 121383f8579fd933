//! An uploaded file as the services take it: already on disk (the HTTP layer streams bodies to
//! temporary files), with its SHA-256 and size. The file is removed when this is dropped.

use std::path::Path;

use tokio::io::AsyncReadExt;

use attendansee_vocabulary::ErrorKind;

use crate::{ServiceError, ServiceResult};

#[derive(Debug)]
pub struct Upload {
    /// The file name as sent.
    pub name: Option<String>,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
    path: tempfile::TempPath,
}

impl Upload {
    pub fn new(name: Option<String>, sha256: String, size: u64, path: tempfile::TempPath) -> Self {
        Self {
            name,
            sha256,
            size,
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content, read back for a worker.
    pub async fn read(&self) -> ServiceResult<Vec<u8>> {
        let io =
            |e: std::io::Error| ServiceError::internal(format!("cannot read back an upload: {e}"));
        // Allocated here, on a runtime thread, rather than by `tokio::fs::read` on one of the
        // many blocking threads: glibc gives each thread its own arena and keeps what a photo
        // took in every arena that held one.
        let mut bytes = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        let mut file = tokio::fs::File::open(&self.path).await.map_err(io)?;
        file.read_to_end(&mut bytes).await.map_err(io)?;
        Ok(bytes)
    }

    /// Refuses an empty file the way a worker would refuse an undecodable one.
    pub fn require_content(&self) -> ServiceResult<()> {
        if self.size == 0 {
            return Err(ServiceError::new(
                ErrorKind::UnsupportedImage,
                "unsupported image: the file is empty",
            ));
        }
        Ok(())
    }
}
