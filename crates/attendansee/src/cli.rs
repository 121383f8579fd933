//! The command line: subcommands and flags. Every flag also reads an `ATTENDANSEE_…` variable;
//! see [`crate::config`] for how flags, environment, config file and defaults combine.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "attendansee",
    version,
    about = "Face-recognition attendance: photograph a class, get who was there.",
    after_help = "Configuration is layered: defaults < config file < ATTENDANSEE_* environment < flags.\n\
                  The config file is --config, else ./attendansee.toml if it exists; its keys are the\n\
                  long flag names with '_' for '-' (bind, data_dir, database_url, blob_url, log_format, log_level,\n                  token_ttl_days, model_dir, ort_lib) plus [[models]] catalog entries."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Default, Args)]
pub struct GlobalArgs {
    /// TOML config file [default: ./attendansee.toml if present]
    #[arg(long, global = true, env = "ATTENDANSEE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database and stored photos [default: ./data]
    #[arg(long, global = true, env = "ATTENDANSEE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: postgres://USER:PASSWORD@HOST:PORT/DB [default: SQLite in the data directory]
    #[arg(
        long,
        global = true,
        env = "ATTENDANSEE_DATABASE_URL",
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// Log line format [default: text]
    #[arg(long, global = true, env = "ATTENDANSEE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `debug,sqlx=warn` [default: info]
    #[arg(
        long,
        global = true,
        env = "ATTENDANSEE_LOG_LEVEL",
        value_name = "FILTER"
    )]
    pub log_level: Option<String>,
    /// Where photos and face crops are stored: `s3://bucket/prefix` (credentials and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP)
    /// [default: <data-dir>/blobs]
    #[arg(long, global = true, env = "ATTENDANSEE_BLOB_URL", value_name = "URL")]
    pub blob_url: Option<String>,
    /// Directory of model files [default: <data-dir>/models]
    #[arg(long, global = true, env = "ATTENDANSEE_MODEL_DIR", value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// ONNX Runtime shared library [default: $ORT_DYLIB_PATH, else .local/onnxruntime/libonnxruntime.so]
    #[arg(long, global = true, env = "ATTENDANSEE_ORT_LIB", value_name = "FILE")]
    pub ort_lib: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API server.
    Serve(ServeArgs),
    /// Administer user accounts from the shell.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Database administration: move a SQLite installation to PostgreSQL (and S3).
    #[command(subcommand)]
    Db(DbCommand),
    /// Embed the largest face of each image; writes the one-shot result JSON.
    Embed(EmbedArgs),
    /// Detect faces: boxes, scores and 5 landmarks as JSON; optionally draw them.
    Detect(DetectArgs),
    /// The model catalog: list, fetch, verify.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Internal: one isolated inference process, speaking the worker protocol on stdin/stdout.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Run the project's benchmarks (needs yunet, mobilefacenet and mobilefacenet-batch installed).
    Bench(BenchArgs),
    /// Attendance for a folder of photos, without a server: enroll one person per sub-folder,
    /// then report who appears in the photos.
    Attend(AttendArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:
  attendansee attend --enroll class/ --photos lecture-1/ --csv lecture-1.csv
                        where class/alice/*.jpg and class/bob/*.jpg are photos of each person alone.")]
pub struct AttendArgs {
    /// Folder with one sub-folder per person (named after them) holding photos of them alone.
    #[arg(long, value_name = "DIR")]
    pub enroll: PathBuf,
    /// Folder of class photos.
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Also write the attendance as CSV (name, status, photos, best_similarity).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Recognizer to use.
    #[arg(long, default_value = attendansee_faces::catalog::DEFAULT_RECOGNIZER)]
    pub model: String,
    /// Detector to use.
    #[arg(long, default_value = attendansee_faces::catalog::DEFAULT_DETECTOR)]
    pub detector: String,
    /// Match threshold (cosine similarity) [default: the model's calibrated one]
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Margin the best person must lead the runner-up by [default: the model's]
    #[arg(long)]
    pub margin: Option<f32>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Detectors to load (catalog names).
    #[arg(long = "detector")]
    pub detectors: Vec<String>,
    /// Recognizers to load (catalog names).
    #[arg(long = "recognizer")]
    pub recognizers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Photos to take faces from.
    #[arg(
        long,
        default_value = "../shared/faces/face_recognition_examples",
        value_name = "DIR"
    )]
    pub images: PathBuf,
    /// Number of aligned face crops to embed per round.
    #[arg(long, default_value_t = 100)]
    pub crops: usize,
    /// Interleaved measurement rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The labelled photos of ../shared (for the session benchmark).
    #[arg(long, default_value = "../shared/faces", value_name = "DIR")]
    pub faces: PathBuf,
    /// Embeddings sent through a real server's HTTP API for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Only the face engine part (skip the worker pool part).
    #[arg(long)]
    pub engine_only: bool,
    /// Only the recognition part: assignment and clustering on synthetic embeddings (no models).
    #[arg(long)]
    pub recognition_only: bool,
    /// Only the store part: SQLite against PostgreSQL (the server of
    /// ATTENDANSEE_TEST_DATABASE_URL, a role with CREATEDB) on the store's hot paths.
    #[arg(long)]
    pub store_only: bool,
    /// Only the nodes part: a 20-photo session and two 10-photo sessions through one `serve`
    /// node against two, on a fresh database of the ATTENDANSEE_TEST_DATABASE_URL server.
    #[arg(long)]
    pub nodes_only: bool,
    /// Recognition part: faces assigned (then twice as many).
    #[arg(long, default_value_t = 1_000)]
    pub assign_crops: usize,
    /// Recognition part: enrolled students they are assigned against (then twice as many).
    #[arg(long, default_value_t = 500)]
    pub assign_students: usize,
    /// Recognition part: faces clustered (then twice as many).
    #[arg(long, default_value_t = 10_000)]
    pub cluster_crops: usize,
    /// Internal: run one recognition measurement in this (fresh) process and print it as JSON.
    #[arg(long, hide = true, value_name = "CASE")]
    pub recognition_case: Option<String>,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Image files or directories (every JPEG, PNG or WebP inside, sorted by name).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Recognizer to use.
    #[arg(long, default_value = attendansee_faces::catalog::DEFAULT_RECOGNIZER)]
    pub model: String,
    /// Detector to use.
    #[arg(long, default_value = attendansee_faces::catalog::DEFAULT_DETECTOR)]
    pub detector: String,
    /// Write the result here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Detector to use.
    #[arg(long, default_value = attendansee_faces::catalog::DEFAULT_DETECTOR)]
    pub detector: String,
    /// Minimum face score [default: the detector's catalog threshold]
    #[arg(long)]
    pub score_threshold: Option<f32>,
    /// How many times closer the second pass looks at a photo crowded with small faces
    /// (1 turns it off) [default: the detector's catalog entry, else 3]
    #[arg(long, value_name = "ZOOM")]
    pub small_face_zoom: Option<f32>,
    /// Draw boxes and landmarks onto a copy of the (single) image, written as PNG.
    #[arg(long, value_name = "OUT.png")]
    pub annotate: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The catalog, and which files are installed.
    List,
    /// Install model files (SHA-256 checked, written atomically).
    Fetch {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Copy from this directory instead of downloading.
        #[arg(long, env = "ATTENDANSEE_MODEL_MIRROR", value_name = "DIR")]
        mirror: Option<PathBuf>,
    },
    /// Check the installed files against their checksums; exit 1 if any is wrong.
    Verify,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8000]
    #[arg(long, env = "ATTENDANSEE_BIND", value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Lifetime of tokens issued by login, in days [default: 14]
    #[arg(long, env = "ATTENDANSEE_TOKEN_TTL_DAYS", value_name = "DAYS")]
    pub token_ttl_days: Option<u32>,
    /// Inference worker processes [default: the number of CPU cores]
    #[arg(long, env = "ATTENDANSEE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Jobs that may wait for a worker before requests get `Overloaded` [default: 32]
    #[arg(long, env = "ATTENDANSEE_QUEUE", value_name = "N")]
    pub queue: Option<usize>,
    /// Seconds a worker may spend on one job before it is killed [default: 60]
    #[arg(long, env = "ATTENDANSEE_JOB_TIMEOUT", value_name = "SECONDS")]
    pub job_timeout: Option<u64>,
    /// Seconds a node holds a processing job without renewing its lease (renewed every third of
    /// it); a job whose node died is taken over by another node after this [default: 30]
    #[arg(long, env = "ATTENDANSEE_JOB_LEASE_SECONDS", value_name = "SECONDS")]
    pub job_lease_seconds: Option<u64>,
    /// Jobs after which a worker is replaced; 0 for never [default: 10000]
    #[arg(long, env = "ATTENDANSEE_WORKER_MAX_JOBS", value_name = "N")]
    pub worker_max_jobs: Option<u64>,
    /// Resident memory (MB) above which a worker is replaced; 0 for no limit [default: 2048]
    #[arg(long, env = "ATTENDANSEE_WORKER_MAX_RSS_MB", value_name = "MB")]
    pub worker_max_rss_mb: Option<u64>,
    /// Detector the workers load [default: yunet]
    #[arg(long, env = "ATTENDANSEE_DETECTOR", value_name = "NAME")]
    pub detector: Option<String>,
    /// Recognizers the workers load, comma-separated [default: mobilefacenet]
    #[arg(
        long,
        env = "ATTENDANSEE_RECOGNIZERS",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub recognizers: Option<Vec<String>>,
    /// Largest image upload accepted, in MB [default: 32]
    #[arg(long, env = "ATTENDANSEE_MAX_UPLOAD_MB", value_name = "MB")]
    pub max_upload_mb: Option<usize>,
    /// Failed logins for one username from one address before it must wait there (1 s, doubling
    /// per failure; 20 times as many from all addresses make it wait everywhere) [default: 5]
    #[arg(long, env = "ATTENDANSEE_LOGIN_FAILURES_PER_USER", value_name = "N")]
    pub login_failures_per_user: Option<u32>,
    /// Failed logins from one client address before it must wait [default: 20]
    #[arg(long, env = "ATTENDANSEE_LOGIN_FAILURES_PER_ADDRESS", value_name = "N")]
    pub login_failures_per_address: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy this SQLite installation (every row, ids kept, and every blob) into an empty
    /// PostgreSQL database, verifying counts and checksums. The server must be stopped.
    #[command(after_help = "Example:
  attendansee --data-dir data db copy --to postgres://attendansee:PASSWORD@db:5432/attendansee \\
      --blobs-to s3://attendance/school-a
                        (AWS_* variables as for --blob-url)")]
    Copy {
        /// The target database: postgres://USER:PASSWORD@HOST:PORT/DB (empty; migrated here).
        #[arg(long, value_name = "URL")]
        to: String,
        /// Also copy the blobs to this store (s3://bucket/prefix); without it they stay where
        /// they are.
        #[arg(long, value_name = "URL")]
        blobs_to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
        /// Make the user an admin (default: instructor).
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Issue an API token for a user and print it.
    Token {
        #[arg(long)]
        username: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        label: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// List users.
    List,
}
