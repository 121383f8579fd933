//! Model files on disk: where each catalog entry lives, whether it is intact (SHA-256), and
//! installing it from a local mirror directory or its upstream URL — atomically, so that a
//! half-written or wrong file never carries the final name.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::catalog::{ModelKind, ModelSpec};
use crate::error::FaceError;

/// The model directory and the catalog that says what belongs in it.
#[derive(Clone, Debug)]
pub struct ModelDir {
    pub dir: PathBuf,
    pub catalog: Vec<ModelSpec>,
}

/// What is on disk for one catalog entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    Missing,
    /// Present; the catalog has no checksum to compare with.
    Unverified,
    Verified,
    /// Present but with another checksum.
    Corrupt {
        actual: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Model(#[from] FaceError),
    #[error("no source for '{name}': {hint}")]
    NoSource { name: String, hint: String },
    #[error(
        "checksum mismatch for '{name}': expected {expected}, got {actual}; nothing was installed"
    )]
    Checksum {
        name: String,
        expected: String,
        actual: String,
    },
    #[error(
        "'{name}' has no SHA-256 in the catalog; refusing to install an unverifiable file from the network"
    )]
    NoChecksum { name: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("download of '{name}' from {url} failed: {detail}")]
    Download {
        name: String,
        url: String,
        detail: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let context = context.into();
    move |source| InstallError::Io { context, source }
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModelDir {
    pub fn new(dir: impl Into<PathBuf>, catalog: Vec<ModelSpec>) -> Self {
        Self {
            dir: dir.into(),
            catalog,
        }
    }

    /// The entry named `name`, or `UnknownModel` listing the names there are.
    pub fn spec(&self, name: &str) -> Result<&ModelSpec, FaceError> {
        self.catalog
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| FaceError::UnknownModel {
                name: name.into(),
                available: self.names(None).join(", "),
            })
    }

    /// Names in the catalog, optionally only of one kind.
    pub fn names(&self, kind: Option<ModelKind>) -> Vec<String> {
        self.catalog
            .iter()
            .filter(|s| kind.is_none_or(|k| s.kind == k))
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn path(&self, spec: &ModelSpec) -> PathBuf {
        self.dir.join(&spec.file)
    }

    pub fn status(&self, spec: &ModelSpec) -> std::io::Result<FileStatus> {
        let path = self.path(spec);
        if !path.is_file() {
            return Ok(FileStatus::Missing);
        }
        let Some(expected) = &spec.sha256 else {
            return Ok(FileStatus::Unverified);
        };
        let actual = sha256_file(&path)?;
        Ok(if &actual == expected {
            FileStatus::Verified
        } else {
            FileStatus::Corrupt { actual }
        })
    }

    /// Installs `spec`'s file from `mirror` (a directory holding it under the same name) or, with
    /// no mirror, from its URL. `progress(done, total)` is called as bytes arrive.
    ///
    /// `validate` is called on the complete, checksum-verified file before it gets its final
    /// name (the CLI loads it with ONNX Runtime to check the output dimension); an error there
    /// also leaves nothing installed.
    pub fn install(
        &self,
        spec: &ModelSpec,
        mirror: Option<&Path>,
        progress: &mut dyn FnMut(u64, Option<u64>),
        validate: &dyn Fn(&Path) -> Result<(), FaceError>,
    ) -> Result<PathBuf, InstallError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("cannot create {}", self.dir.display())))?;
        let target = self.path(spec);
        let partial = self.dir.join(format!(".{}.partial", spec.file));
        let result = match mirror {
            Some(mirror) => {
                let source = mirror.join(&spec.file);
                let file =
                    File::open(&source).map_err(io(format!("cannot read {}", source.display())))?;
                let total = file.metadata().ok().map(|m| m.len());
                copy_hashing(file, &partial, total, progress)
            }
            None => {
                let Some(url) = &spec.url else {
                    return Err(InstallError::NoSource {
                        name: spec.name.clone(),
                        hint: format!(
                            "it has no download URL; copy {} into {} or use --mirror DIR",
                            spec.file,
                            self.dir.display()
                        ),
                    });
                };
                if spec.sha256.is_none() {
                    return Err(InstallError::NoChecksum {
                        name: spec.name.clone(),
                    });
                }
                download(spec, url, &partial, progress)
            }
        };
        let actual = match result {
            Ok(actual) => actual,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        if let Some(expected) = &spec.sha256
            && &actual != expected
        {
            let _ = std::fs::remove_file(&partial);
            return Err(InstallError::Checksum {
                name: spec.name.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        if let Err(e) = validate(&partial) {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
        std::fs::rename(&partial, &target).map_err(io(format!(
            "cannot move the file into place at {}",
            target.display()
        )))?;
        Ok(target)
    }
}

/// Copies `reader` into `path`, fsyncs, and returns the SHA-256 of what was written.
fn copy_hashing(
    mut reader: impl Read,
    path: &Path,
    total: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<String, InstallError> {
    let mut out = File::create(path).map_err(io(format!("cannot create {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buffer).map_err(io("read failed"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])
            .map_err(io(format!("cannot write {}", path.display())))?;
        done += n as u64;
        progress(done, total);
    }
    out.sync_all()
        .map_err(io(format!("cannot flush {}", path.display())))?;
    Ok(hex(&hasher.finalize()))
}

fn download(
    spec: &ModelSpec,
    url: &str,
    path: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<String, InstallError> {
    let failed = |detail: String| InstallError::Download {
        name: spec.name.clone(),
        url: url.into(),
        detail,
    };
    let mut response = ureq::get(url).call().map_err(|e| failed(e.to_string()))?;
    let total = response.body().content_length();
    let reader = response.body_mut().with_config().limit(2 << 30).reader();
    copy_hashing(reader, path, total, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::builtin;

    fn dir_with(spec_sha: Option<String>) -> (tempfile::TempDir, ModelDir, ModelSpec) {
        let tmp = tempfile::tempdir().unwrap();
        let mut spec = builtin().into_iter().find(|s| s.name == "facenet").unwrap();
        spec.sha256 = spec_sha;
        let models = ModelDir::new(tmp.path().join("models"), vec![spec.clone()]);
        (tmp, models, spec)
    }

    #[test]
    fn install_from_a_mirror_verifies_the_checksum_and_leaves_nothing_on_mismatch() {
        let content = b"pretend onnx bytes";
        let good = hex(&Sha256::digest(content));
        let (tmp, models, spec) = dir_with(Some(good.clone()));
        let mirror = tmp.path().join("mirror");
        std::fs::create_dir_all(&mirror).unwrap();
        std::fs::write(mirror.join(&spec.file), content).unwrap();
        assert_eq!(models.status(&spec).unwrap(), FileStatus::Missing);
        let mut calls = 0;
        let path = models
            .install(&spec, Some(&mirror), &mut |_, _| calls += 1, &|_| Ok(()))
            .unwrap();
        assert!(calls > 0);
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert_eq!(models.status(&spec).unwrap(), FileStatus::Verified);

        let (_, wrong_models, wrong) = dir_with(Some("0".repeat(64)));
        let err = wrong_models
            .install(&wrong, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, InstallError::Checksum { .. }), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(&wrong_models.dir).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "a failed install left files behind: {leftovers:?}"
        );
    }

    #[test]
    fn a_tampered_file_is_reported_corrupt_and_unknown_names_list_the_catalog() {
        let (_tmp, models, spec) = dir_with(Some("0".repeat(64)));
        std::fs::create_dir_all(&models.dir).unwrap();
        std::fs::write(models.path(&spec), b"x").unwrap();
        assert!(matches!(
            models.status(&spec).unwrap(),
            FileStatus::Corrupt { .. }
        ));
        let err = models.spec("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("facenet"), "{err}");
    }

    #[test]
    fn a_model_without_url_or_checksum_is_not_fetched_from_the_network() {
        let (_tmp, models, spec) = dir_with(None);
        let err = models
            .install(&spec, None, &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, InstallError::NoSource { .. }), "{err}");
    }
}
