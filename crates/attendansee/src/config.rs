//! Configuration, layered: built-in defaults < TOML config file < `ATTENDANSEE_…` environment
//! variables < command-line flags. Clap merges the last two; this module adds the file and the
//! defaults and resolves the result once, at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_TOKEN_TTL_DAYS: u32 = 14;
/// Looked for in the working directory when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "attendansee.toml";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The config file's keys; every one optional, unknown keys refused (typos surface at once).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub blob_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub token_ttl_days: Option<u32>,
    pub workers: Option<usize>,
    pub queue: Option<usize>,
    pub job_timeout: Option<u64>,
    pub job_lease_seconds: Option<u64>,
    pub worker_max_jobs: Option<u64>,
    pub worker_max_rss_mb: Option<u64>,
    pub detector: Option<String>,
    pub recognizers: Option<Vec<String>>,
    pub max_upload_mb: Option<usize>,
    pub login_failures_per_user: Option<u32>,
    pub login_failures_per_address: Option<u32>,
    pub model_dir: Option<PathBuf>,
    pub ort_lib: Option<PathBuf>,
    /// Catalog entries to add, or to replace built-ins of the same name (`[[models]]`).
    #[serde(default)]
    pub models: Vec<attendansee_faces::ModelSpec>,
    /// Where this was read from (not a key of the file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl FileConfig {
    /// Reads `path`; relative paths inside it are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: FileConfig = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        if let Some(base) = path.parent() {
            for dir in [
                config.data_dir.as_mut(),
                config.model_dir.as_mut(),
                config.ort_lib.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if dir.is_relative() {
                    *dir = base.join(&*dir);
                }
            }
        }
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The file named by `--config`, else `./attendansee.toml` if present, else nothing.
    pub fn discover(explicit: Option<&Path>) -> Result<Self> {
        match explicit {
            Some(path) => Self::load(path),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::load(Path::new(DEFAULT_CONFIG_FILE))
            }
            None => Ok(Self::default()),
        }
    }
}

/// Settings every command shares, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Common {
    pub data_dir: PathBuf,
    /// `postgres://…`, or `None` for SQLite in the data directory.
    pub database_url: Option<String>,
    /// `s3://bucket/prefix`; `None` for the blob directory inside the data directory.
    pub blob_url: Option<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub model_dir: PathBuf,
    pub ort_lib: Option<PathBuf>,
    pub catalog: Vec<attendansee_faces::ModelSpec>,
    /// The config file in effect, if any (workers are started with it too).
    pub config_file: Option<PathBuf>,
}

/// Settings of `serve`, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub token_ttl_days: u32,
    pub workers: usize,
    pub queue: usize,
    pub job_timeout: u64,
    pub job_lease_seconds: u64,
    pub worker_max_jobs: u64,
    pub worker_max_rss_mb: u64,
    pub detector: String,
    pub recognizers: Vec<String>,
    pub max_upload_mb: usize,
    pub login_failures_per_user: u32,
    pub login_failures_per_address: u32,
}

impl Common {
    pub fn resolve(flags: &crate::cli::GlobalArgs, file: &FileConfig) -> Self {
        let data_dir: PathBuf = flags
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        Self {
            model_dir: flags
                .model_dir
                .clone()
                .or_else(|| file.model_dir.clone())
                .unwrap_or_else(|| data_dir.join("models")),
            ort_lib: flags.ort_lib.clone().or_else(|| file.ort_lib.clone()),
            blob_url: flags.blob_url.clone().or_else(|| file.blob_url.clone()),
            catalog: attendansee_faces::catalog::with_overrides(&file.models),
            config_file: file.path.clone(),
            database_url: flags
                .database_url
                .clone()
                .or_else(|| file.database_url.clone()),
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
            log_level: flags
                .log_level
                .clone()
                .or_else(|| file.log_level.clone())
                .unwrap_or_else(|| "info".into()),
            data_dir,
        }
    }

    /// The configured database; an unsupported URL is an error naming it.
    pub fn database(&self) -> Result<attendansee_store::DatabaseLocation> {
        Ok(attendansee_store::DatabaseLocation::resolve(
            self.database_url.as_deref(),
            &self.data_dir,
        )?)
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// The blob store every command that reads or writes photos uses: `--blob-url`, else the
    /// blob directory.
    pub fn blob_store(&self) -> Result<attendansee_store::BlobStore> {
        Ok(match &self.blob_url {
            Some(url) => attendansee_store::BlobStore::from_url(url)?,
            None => attendansee_store::BlobStore::local(&self.blob_dir())?,
        })
    }

    /// The arguments that start this binary as `attendansee worker` with these settings (config
    /// file, data and model directories, ONNX Runtime), loading `detector` and `recognizers`.
    pub fn worker_args(
        &self,
        detector: Option<&str>,
        recognizers: &[String],
    ) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(file) = &self.config_file {
            args.extend(["--config".into(), file.into()]);
        }
        args.extend(["--data-dir".into(), self.data_dir.clone().into()]);
        args.extend(["--model-dir".into(), self.model_dir.clone().into()]);
        if let Some(lib) = &self.ort_lib {
            args.extend(["--ort-lib".into(), lib.into()]);
        }
        args.push("worker".into());
        if let Some(detector) = detector {
            args.extend(["--detector".into(), detector.into()]);
        }
        for recognizer in recognizers {
            args.extend(["--recognizer".into(), recognizer.into()]);
        }
        args
    }

    pub fn models(&self) -> attendansee_faces::models::ModelDir {
        attendansee_faces::models::ModelDir::new(&self.model_dir, self.catalog.clone())
    }
}

impl ServeConfig {
    pub fn resolve(flags: &crate::cli::ServeArgs, file: &FileConfig) -> Result<Self> {
        let bind = match flags.bind.or(file.bind) {
            Some(bind) => bind,
            None => DEFAULT_BIND.parse().context("default bind address")?,
        };
        let token_ttl_days = flags
            .token_ttl_days
            .or(file.token_ttl_days)
            .unwrap_or(DEFAULT_TOKEN_TTL_DAYS);
        anyhow::ensure!(
            (1..=3650).contains(&token_ttl_days),
            "token_ttl_days must be 1 to 3650, got {token_ttl_days}"
        );
        let workers = flags.workers.or(file.workers).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        anyhow::ensure!(
            (1..=256).contains(&workers),
            "workers must be 1 to 256, got {workers}"
        );
        let max_upload_mb = flags.max_upload_mb.or(file.max_upload_mb).unwrap_or(32);
        // Frames to workers are limited to 256 MiB; an upload must fit in one with room to spare.
        anyhow::ensure!(
            (1..=200).contains(&max_upload_mb),
            "max_upload_mb must be 1 to 200, got {max_upload_mb}"
        );
        let job_timeout = flags.job_timeout.or(file.job_timeout).unwrap_or(60);
        anyhow::ensure!(job_timeout >= 1, "job_timeout must be at least 1 second");
        let job_lease_seconds = flags
            .job_lease_seconds
            .or(file.job_lease_seconds)
            .unwrap_or(30);
        // Renewed every third of it: at least a second between renewals.
        anyhow::ensure!(
            (3..=3600).contains(&job_lease_seconds),
            "job_lease_seconds must be 3 to 3600, got {job_lease_seconds}"
        );
        let recognizers = flags
            .recognizers
            .clone()
            .or_else(|| file.recognizers.clone())
            .unwrap_or_else(|| vec![attendansee_faces::catalog::DEFAULT_RECOGNIZER.into()]);
        anyhow::ensure!(
            !recognizers.is_empty() && recognizers.iter().all(|r| !r.trim().is_empty()),
            "recognizers must name at least one model (and no empty name), got {recognizers:?}"
        );
        let login_failures_per_user = flags
            .login_failures_per_user
            .or(file.login_failures_per_user)
            .unwrap_or(5);
        let login_failures_per_address = flags
            .login_failures_per_address
            .or(file.login_failures_per_address)
            .unwrap_or(20);
        anyhow::ensure!(
            login_failures_per_user >= 1 && login_failures_per_address >= 1,
            "login_failures_per_user and login_failures_per_address must be at least 1"
        );
        Ok(Self {
            bind,
            token_ttl_days,
            workers,
            queue: flags.queue.or(file.queue).unwrap_or(32),
            job_timeout,
            job_lease_seconds,
            worker_max_jobs: flags
                .worker_max_jobs
                .or(file.worker_max_jobs)
                .unwrap_or(10_000),
            worker_max_rss_mb: flags
                .worker_max_rss_mb
                .or(file.worker_max_rss_mb)
                .unwrap_or(2048),
            detector: flags
                .detector
                .clone()
                .or_else(|| file.detector.clone())
                .unwrap_or_else(|| attendansee_faces::catalog::DEFAULT_DETECTOR.into()),
            recognizers,
            max_upload_mb,
            login_failures_per_user,
            login_failures_per_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{GlobalArgs, ServeArgs};

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let common = Common::resolve(&GlobalArgs::default(), &FileConfig::default());
        assert_eq!(common.data_dir, PathBuf::from("./data"));
        assert_eq!(common.log_format, LogFormat::Text);
        let serve = ServeConfig::resolve(&ServeArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(serve.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(serve.token_ttl_days, 14);
        assert_eq!(serve.job_lease_seconds, 30);
    }

    #[test]
    fn the_blob_url_is_unset_by_default_and_layered_like_the_rest() {
        assert_eq!(
            Common::resolve(&GlobalArgs::default(), &FileConfig::default()).blob_url,
            None
        );
        let f = file("blob_url = \"s3://from-file/a\"\n");
        assert_eq!(
            Common::resolve(&GlobalArgs::default(), &f)
                .blob_url
                .as_deref(),
            Some("s3://from-file/a")
        );
        let flags = GlobalArgs {
            blob_url: Some("s3://from-flag/b".into()),
            ..Default::default()
        };
        assert_eq!(
            Common::resolve(&flags, &f).blob_url.as_deref(),
            Some("s3://from-flag/b")
        );
        let bad = GlobalArgs {
            blob_url: Some("ftp://x/y".into()),
            ..Default::default()
        };
        let err = Common::resolve(&bad, &f).blob_store().unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn file_overrides_defaults_and_flags_or_environment_override_the_file() {
        let f = file(
            "bind = \"0.0.0.0:9000\"\ndata_dir = \"/srv/a\"\nlog_format = \"json\"\ntoken_ttl_days = 3\n",
        );
        let common = Common::resolve(&GlobalArgs::default(), &f);
        assert_eq!(common.data_dir, PathBuf::from("/srv/a"));
        assert_eq!(common.log_format, LogFormat::Json);
        assert_eq!(
            ServeConfig::resolve(&ServeArgs::default(), &f)
                .unwrap()
                .bind
                .to_string(),
            "0.0.0.0:9000"
        );

        let flags = GlobalArgs {
            data_dir: Some("/srv/b".into()),
            ..Default::default()
        };
        assert_eq!(
            Common::resolve(&flags, &f).data_dir,
            PathBuf::from("/srv/b")
        );
        assert_eq!(
            Common::resolve(&flags, &f).model_dir,
            PathBuf::from("/srv/b/models")
        );
        let serve_flags = ServeArgs {
            bind: Some("127.0.0.1:1".parse().unwrap()),
            ..Default::default()
        };
        let serve = ServeConfig::resolve(&serve_flags, &f).unwrap();
        assert_eq!(serve.bind.to_string(), "127.0.0.1:1");
        assert_eq!(serve.token_ttl_days, 3);
    }

    #[test]
    fn unknown_keys_and_bad_values_in_the_file_are_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "bnid = \"x\"\n").unwrap();
        let message = format!("{:#}", FileConfig::load(&path).unwrap_err());
        assert!(
            message.contains("a.toml") && message.contains("bnid"),
            "{message}"
        );
        std::fs::write(&path, "token_ttl_days = 0\n").unwrap();
        let f = FileConfig::load(&path).unwrap();
        assert!(ServeConfig::resolve(&ServeArgs::default(), &f).is_err());
    }

    #[test]
    fn serve_refuses_an_empty_recognizer_list_at_start() {
        // It used to start and panic later, on the first request that needed `recognizers[0]`.
        let error = ServeConfig::resolve(&ServeArgs::default(), &file("recognizers = []\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("recognizers must name at least one model"),
            "{error}"
        );
        assert!(
            ServeConfig::resolve(&ServeArgs::default(), &file("recognizers = [\"\"]\n")).is_err()
        );
    }

    #[test]
    fn catalog_entries_in_the_file_add_to_the_builtin_catalog() {
        let f = file(
            "[[models]]\nname = \"tiny\"\nkind = \"recognizer\"\nfile = \"tiny.onnx\"\ninput_size = [112, 112]\n\
             color = \"rgb\"\nnormalization = { mean = [0, 0, 0], std = [1, 1, 1] }\ndimension = 8\n\
             template = [[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]]\n",
        );
        let common = Common::resolve(&GlobalArgs::default(), &f);
        let tiny = common.catalog.iter().find(|s| s.name == "tiny").unwrap();
        assert_eq!(tiny.dimension, Some(8));
        assert!(common.catalog.iter().any(|s| s.name == "mobilefacenet"));
    }

    #[test]
    fn workers_are_started_with_the_config_file_and_directories_in_effect() {
        let mut f = file("");
        f.path = Some("/etc/a.toml".into());
        let flags = GlobalArgs {
            data_dir: Some("/srv/d".into()),
            ort_lib: Some("/lib/ort.so".into()),
            ..Default::default()
        };
        let common = Common::resolve(&flags, &f);
        let args: Vec<String> = common
            .worker_args(Some("yunet"), &["a".into(), "b".into()])
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--config",
                "/etc/a.toml",
                "--data-dir",
                "/srv/d",
                "--model-dir",
                "/srv/d/models",
                "--ort-lib",
                "/lib/ort.so",
                "worker",
                "--detector",
                "yunet",
                "--recognizer",
                "a",
                "--recognizer",
                "b"
            ]
        );
        let bare = common.worker_args(None, &[]);
        assert_eq!(bare.last().unwrap(), "worker");
    }

    #[test]
    fn the_database_is_sqlite_in_the_data_directory_unless_a_url_is_set() {
        use attendansee_store::DatabaseLocation;
        let common = Common::resolve(&GlobalArgs::default(), &FileConfig::default());
        assert_eq!(
            common.database().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("./data").join(attendansee_store::DB_FILE_NAME))
        );
        let f = file("database_url = \"postgres://a:b@db/x\"\n");
        assert_eq!(
            Common::resolve(&GlobalArgs::default(), &f)
                .database()
                .unwrap(),
            DatabaseLocation::Postgres("postgres://a:b@db/x".into())
        );
        let flags = GlobalArgs {
            database_url: Some("postgres://c@db/y".into()),
            ..Default::default()
        };
        assert_eq!(
            Common::resolve(&flags, &f).database().unwrap(),
            DatabaseLocation::Postgres("postgres://c@db/y".into())
        );
        let flags = GlobalArgs {
            database_url: Some("mongodb://db/z".into()),
            ..Default::default()
        };
        let error = Common::resolve(&flags, &f)
            .database()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unsupported database URL mongodb://db/z"),
            "{error}"
        );
    }

    #[test]
    fn relative_data_dir_in_a_file_is_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "data_dir = \"state\"\n").unwrap();
        assert_eq!(
            FileConfig::load(&path).unwrap().data_dir.unwrap(),
            dir.path().join("state")
        );
    }
}
