//! Model files on disk: where each catalog entry lives, whether it is intact (SHA-256), and
//! installing it from a local mirror directory or its upstream URL — the file itself or one member
//! of a zip archive — atomically, so that a half-written or wrong file never carries the final name.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::catalog::{ModelKind, ModelSpec, Source};
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
    #[error("'{name}': {archive} is not a usable zip archive: {detail}; nothing was installed")]
    Archive {
        name: String,
        archive: String,
        detail: String,
    },
    #[error(
        "'{name}': {archive} has no member '{member}'; nothing was installed (members: {members})"
    )]
    MemberMissing {
        name: String,
        archive: String,
        member: String,
        members: String,
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

/// Largest file `models fetch` writes (downloads and archive members alike): the biggest model
/// here is ~170 MB, and the cap keeps a hostile archive from filling the disk.
const MAX_FILE_BYTES: u64 = 2 << 30;

/// What to tell someone whose model file is missing: the `models fetch` that installs it, or,
/// when nothing can be downloaded, where its file goes and how to make it.
pub fn install_advice(spec: &ModelSpec, path: &Path) -> String {
    match spec.source() {
        Source::Download { .. } | Source::ArchiveMember { .. } => {
            format!("install it with `attendansee models fetch {}`", spec.name)
        }
        Source::Export { command } => format!(
            "it has no download source: place its ONNX file at {}; make it with: {command}",
            path.display()
        ),
        Source::OwnFile => format!(
            "it has no download source: place its ONNX file at {} (see `attendansee models list`)",
            path.display()
        ),
    }
}

/// The last path segment of an archive URL: the name `--mirror` looks for.
fn archive_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
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

    /// Installs `spec`'s file from `mirror` (a directory holding it under the same name or, for an
    /// archive member, the archive under its URL's file name) or, with no mirror, from its URL.
    /// `progress(done, total)` is called as bytes arrive.
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
        let result = self.fetch_into(spec, mirror, &partial, progress);
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
        if let Err(e) = std::fs::rename(&partial, &target) {
            let _ = std::fs::remove_file(&partial);
            return Err(io(format!(
                "cannot move the file into place at {}",
                target.display()
            ))(e));
        }
        Ok(target)
    }
}

impl ModelDir {
    /// Writes `spec`'s file to `partial` and returns its SHA-256; cleans up after itself except
    /// for `partial`, which the caller removes on error.
    fn fetch_into(
        &self,
        spec: &ModelSpec,
        mirror: Option<&Path>,
        partial: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<String, InstallError> {
        if let Some(mirror) = mirror {
            let bare = mirror.join(&spec.file);
            let archive = match spec.source() {
                Source::ArchiveMember { url, member } => {
                    Some((mirror.join(archive_name(url)), member))
                }
                _ => None,
            };
            return match archive {
                Some((archive, member)) if !bare.is_file() && archive.is_file() => {
                    extract_member(spec, &archive, member, partial, progress)
                }
                _ => {
                    let file = File::open(&bare).map_err(io(match &archive {
                        Some((archive, _)) => format!(
                            "cannot read {} (nor the archive {})",
                            bare.display(),
                            archive.display()
                        ),
                        None => format!("cannot read {}", bare.display()),
                    }))?;
                    let total = file.metadata().ok().map(|m| m.len());
                    copy_hashing(file, partial, total, progress)
                }
            };
        }
        let (url, member) = match spec.source() {
            Source::Download { url } => (url, None),
            Source::ArchiveMember { url, member } => (url, Some(member)),
            Source::Export { .. } | Source::OwnFile => {
                return Err(InstallError::NoSource {
                    name: spec.name.clone(),
                    hint: format!(
                        "{}, or use --mirror DIR",
                        install_advice(spec, &self.path(spec))
                    ),
                });
            }
        };
        // Nothing from the network is installed unverified; for an archive the checksum is the
        // member's, since upstreams re-pack archives without changing what is in them.
        if spec.sha256.is_none() {
            return Err(InstallError::NoChecksum {
                name: spec.name.clone(),
            });
        }
        let Some(member) = member else {
            return download(spec, url, partial, progress);
        };
        let archive = self.dir.join(format!(".{}.archive.partial", spec.file));
        let result = download(spec, url, &archive, progress)
            .and_then(|_| extract_member(spec, &archive, member, partial, progress));
        let _ = std::fs::remove_file(&archive);
        result
    }
}

/// Copies member `member` of the zip at `archive` into `path`, returning its SHA-256. `member` is
/// a path inside the archive or, when unique there, a bare file name (packs differ in whether
/// they have a top-level folder).
fn extract_member(
    spec: &ModelSpec,
    archive: &Path,
    member: &str,
    path: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<String, InstallError> {
    let file = File::open(archive).map_err(io(format!("cannot read {}", archive.display())))?;
    let bad = |detail: String| InstallError::Archive {
        name: spec.name.clone(),
        archive: archive.display().to_string(),
        detail,
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let by_file_name: Vec<&String> = names
        .iter()
        .filter(|n| n.rsplit('/').next() == Some(member))
        .collect();
    let found = if names.iter().any(|n| n == member) {
        member.to_owned()
    } else if let [only] = by_file_name.as_slice() {
        (*only).clone()
    } else {
        let mut members = names.clone();
        members.sort();
        return Err(InstallError::MemberMissing {
            name: spec.name.clone(),
            archive: archive.display().to_string(),
            member: member.into(),
            members: members.join(", "),
        });
    };
    let entry = zip.by_name(&found).map_err(|e| bad(e.to_string()))?;
    let total = Some(entry.size());
    // `take` bounds what a lying header can make us write; the checksum then fails.
    copy_hashing(entry.take(MAX_FILE_BYTES), path, total, progress)
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
    let reader = response
        .body_mut()
        .with_config()
        .limit(MAX_FILE_BYTES)
        .reader();
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

    /// A zip like a model pack: a folder, the wanted member deflated, and a decoy.
    fn pack(path: &Path, member: &str, content: &[u8]) {
        use zip::write::SimpleFileOptions;
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        let deflated =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pack/decoy.onnx", deflated).unwrap();
        zip.write_all(b"not this one").unwrap();
        zip.start_file(format!("pack/{member}"), deflated).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }

    /// An entry installed from member `member.onnx` of `https://models.invalid/pack.zip`.
    fn archived(sha256: String) -> (tempfile::TempDir, ModelDir, ModelSpec, PathBuf) {
        let (tmp, _, mut spec) = dir_with(Some(sha256));
        spec.url = Some("https://models.invalid/pack.zip".into());
        spec.member = Some("member.onnx".into());
        let models = ModelDir::new(tmp.path().join("models"), vec![spec.clone()]);
        let mirror = tmp.path().join("mirror");
        std::fs::create_dir_all(&mirror).unwrap();
        (tmp, models, spec, mirror)
    }

    #[test]
    fn an_archive_member_is_installed_from_a_mirror_by_name_with_its_checksum() {
        let content = b"pretend onnx bytes, long enough to be deflated ".repeat(50);
        let (_tmp, models, spec, mirror) = archived(hex(&Sha256::digest(&content)));
        pack(&mirror.join("pack.zip"), "member.onnx", &content);
        let path = models
            .install(&spec, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap();
        assert_eq!(path, models.dir.join("facenet.onnx"));
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert_eq!(models.status(&spec).unwrap(), FileStatus::Verified);
        // Nothing but the installed file: no archive copy, no partial file.
        let files: Vec<_> = std::fs::read_dir(&models.dir).unwrap().collect();
        assert_eq!(files.len(), 1, "{files:?}");
    }

    #[test]
    fn a_wrong_member_checksum_or_a_missing_member_installs_nothing() {
        let (_tmp, models, spec, mirror) = archived("0".repeat(64));
        pack(&mirror.join("pack.zip"), "member.onnx", b"some bytes");
        let err = models
            .install(&spec, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, InstallError::Checksum { .. }), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(&models.dir).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        pack(&mirror.join("pack.zip"), "another.onnx", b"some bytes");
        let err = models
            .install(&spec, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(err, InstallError::MemberMissing { .. })
                && err.to_string().contains("pack/another.onnx"),
            "{err}"
        );
        std::fs::write(mirror.join("pack.zip"), b"not a zip").unwrap();
        let err = models
            .install(&spec, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, InstallError::Archive { .. }), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(&models.dir).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_mirror_may_hold_the_bare_file_of_an_archive_entry_instead() {
        let content = b"the bare file";
        let (_tmp, models, spec, mirror) = archived(hex(&Sha256::digest(content)));
        std::fs::write(mirror.join(&spec.file), content).unwrap();
        models
            .install(&spec, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap();
        assert_eq!(models.status(&spec).unwrap(), FileStatus::Verified);
        // Neither there: the error names both places looked in.
        let (_tmp, models, spec, mirror) = archived("0".repeat(64));
        let err = models
            .install(&spec, Some(&mirror), &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("facenet.onnx") && err.contains("pack.zip"),
            "{err}"
        );
    }

    #[test]
    fn an_exported_model_says_where_its_file_goes_and_the_command_that_makes_it() {
        let (_tmp, models, spec) = dir_with(None);
        let err = models
            .install(&spec, None, &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&models.path(&spec).display().to_string())
                && err.contains(
                    "python tools/export_facenet.py --variant facenet --weights facenet_weights.h5 --out facenet.onnx"
                )
                && err.contains("facenet_weights.h5")
                && err.contains("--mirror DIR"),
            "{err}"
        );
    }

    /// Serves `body` once per connection on loopback, `times` times, and returns the base URL.
    fn serve(body: Vec<u8>, times: usize) -> String {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(times) {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // The request's head ends with an empty line.
                while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        url
    }

    #[test]
    fn an_archive_member_is_downloaded_extracted_and_verified_and_the_archive_is_not_kept() {
        let content = b"member bytes from the network".to_vec();
        let (tmp, _, mut spec, _) = archived(hex(&Sha256::digest(&content)));
        let zip_path = tmp.path().join("served.zip");
        pack(&zip_path, "member.onnx", &content);
        spec.url = Some(format!(
            "{}/pack.zip",
            serve(std::fs::read(&zip_path).unwrap(), 2)
        ));
        let models = ModelDir::new(tmp.path().join("models"), vec![spec.clone()]);
        let path = models
            .install(&spec, None, &mut |_, _| {}, &|_| Ok(()))
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content);
        let files: Vec<_> = std::fs::read_dir(&models.dir).unwrap().collect();
        assert_eq!(
            files.len(),
            1,
            "the archive or a partial file was kept: {files:?}"
        );

        // The same archive against a wrong checksum: refused, nothing at all left behind.
        let mut wrong = spec.clone();
        wrong.sha256 = Some("0".repeat(64));
        let models = ModelDir::new(tmp.path().join("other-models"), vec![wrong.clone()]);
        let err = models
            .install(&wrong, None, &mut |_, _| {}, &|_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, InstallError::Checksum { .. }), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(&models.dir).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
