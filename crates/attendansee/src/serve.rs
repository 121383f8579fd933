//! `attendansee serve`: takes the data directory, opens the store, listens, and shuts down
//! gracefully on SIGTERM or SIGINT.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use attendansee_api::{AppState, Settings, router};
use attendansee_pool::{Pool, PoolConfig};
use attendansee_services::jobs::{JobLeases, run_jobs};
use attendansee_store::{BlobCheckError, DataDirLock, Store, sweep_orphan_blobs};

use crate::config::{Common, ServeConfig};
use crate::faces::model_matching;

/// The blob store did not answer at start (or said it has no such bucket): the process exits with
/// [`EXIT_STORAGE_UNAVAILABLE`](crate::EXIT_STORAGE_UNAVAILABLE), as for a database that cannot be
/// reached, so that a supervisor can tell "try again later" from a configuration error.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the blob store {location}: {reason}")]
pub struct BlobStoreUnreachable {
    location: String,
    reason: BlobCheckError,
}

impl BlobStoreUnreachable {
    /// Whether the store may come back by itself (else it is misconfigured: exit status 1).
    pub fn is_outage(&self) -> bool {
        self.reason.is_outage()
    }
}

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub async fn run(common: &Common, config: &ServeConfig) -> Result<()> {
    return_large_buffers_to_the_system();
    let database = common.database()?;
    // Several nodes may share a PostgreSQL database; a SQLite file has one server.
    let lock = if database.is_shared() {
        std::fs::create_dir_all(&common.data_dir).with_context(|| {
            format!("cannot create data directory {}", common.data_dir.display())
        })?;
        None
    } else {
        Some(DataDirLock::acquire(&common.data_dir)?)
    };
    let store = Store::connect(&database).await?;
    tracing::info!(database = %database, "database opened");
    let blobs = common.blob_store()?;
    blobs.check().await.map_err(|reason| BlobStoreUnreachable {
        location: blobs.location().to_owned(),
        reason,
    })?;
    let upload_dir = common.data_dir.join("tmp");
    if lock.is_some() {
        // Under the lock, nothing is in flight: what is in the upload directory was left by a
        // stop mid-upload, and a blob no row references by a stop between a deletion's commit
        // and its blobs' removal (or between an upload's blob and its row). A bucket may be
        // shared by other nodes, still writing: their newest blobs are spared.
        empty_dir(&upload_dir)?;
        let swept = sweep_orphan_blobs(&store, &blobs, blobs.sweep_grace()).await?;
        tracing::info!(
            blobs = swept,
            "removed orphan blobs (no row references them)"
        );
    } else {
        // Another node may be writing an upload's blob before its row right now.
        std::fs::create_dir_all(&upload_dir)
            .with_context(|| format!("cannot create {}", upload_dir.display()))?;
        tracing::info!("shared database: orphan blobs are not swept at start");
    }
    for name in store
        .normalize_usernames(attendansee_services::users::normalize_username)
        .await?
    {
        tracing::warn!(
            username = %name,
            "this user's name differs from another's only by case or Unicode form; it cannot log in until an admin renames one of them"
        );
    }
    if store.count_users().await? == 0 {
        tracing::warn!(
            "no users yet: create an admin with `attendansee users create --username admin --admin --password-stdin`"
        );
    }
    let settings = Settings {
        token_ttl: chrono::Duration::days(i64::from(config.token_ttl_days)),
        upload_body_limit: config.max_upload_mb * 1024 * 1024,
        upload_dir: Some(upload_dir),
        domain: attendansee_services::Settings {
            detector: config.detector.clone(),
            recognizers: config.recognizers.clone(),
            catalog_recognizers: common
                .catalog
                .iter()
                .filter(|spec| spec.kind == attendansee_faces::ModelKind::Recognizer)
                .map(|spec| spec.name.clone())
                .collect(),
            install_advice: common
                .catalog
                .iter()
                .map(|spec| (spec.name.clone(), install_advice(common, spec)))
                .collect(),
            matching: common
                .catalog
                .iter()
                // Only calibrated models get an entry; the others fall back as a whole.
                .filter(|spec| spec.match_threshold.is_some())
                .map(|spec| (spec.name.clone(), model_matching(spec)))
                .collect(),
        },
        login_limits: attendansee_api::login_limits::LoginLimits {
            failures_per_user: config.login_failures_per_user,
            failures_per_address: config.login_failures_per_address,
            ..Default::default()
        },
        ..Settings::default()
    };
    // The data-directory lock makes this the only node: jobs still running were its previous
    // process's, and resume at once instead of after their leases run out. On a shared database
    // they may be other nodes' live jobs: only an expired lease frees them.
    if lock.is_some() {
        let requeued = store.requeue_interrupted_jobs().await?;
        if requeued > 0 {
            tracing::info!(
                jobs = requeued,
                "resuming jobs interrupted by the last stop"
            );
        }
    }
    let leases = JobLeases::new(Duration::from_secs(config.job_lease_seconds));
    tracing::info!(
        node = leases.node(),
        job_lease_seconds = config.job_lease_seconds,
        "this node's id (jobs it runs name it as their lease owner)"
    );
    // Bind first: a port in use should fail before any worker is started.
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let pool = Pool::start(pool_config(common, config)?);
    tracing::info!(
        workers = config.workers,
        queue = config.queue,
        detector = %config.detector,
        recognizers = ?config.recognizers,
        "worker pool starting"
    );
    let state = AppState::new(store.clone(), blobs, settings).with_pool(pool.clone());
    let job_runner = tokio::spawn(run_jobs(state.services.clone(), leases));
    let app = router(state);
    let addr = listener.local_addr()?;
    // Listening for the signals starts before "listening on" is said: a SIGTERM sent the moment
    // the server is reachable must stop it gracefully, not kill it with the default action.
    let signals = ShutdownSignals::listen()?;
    tracing::info!(data_dir = %common.data_dir.display(), "listening on http://{addr}");

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        signals.received().await;
        let _ = stop_tx.send(true);
    });
    let stopping = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // The peer address reaches handlers (failed-login limits are per client address).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(stopping(stop_rx.clone()));
    tokio::select! {
        result = server => result.context("server failed")?,
        () = async { stopping(stop_rx).await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; stopping anyway");
        }
    }
    // The runner stops between photos; a photo it was processing is picked up again next start
    // (or, with several nodes, by another node once the job's lease runs out).
    job_runner.abort();
    pool.shutdown(Duration::from_secs(10)).await;
    store.close().await;
    match &lock {
        Some(lock) => tracing::info!(lock = %lock.path().display(), "stopped"),
        None => tracing::info!("stopped"),
    }
    Ok(())
}

/// How a user gets a catalog model's file: a download, or (no download source) where to put it.
fn install_advice(common: &Common, spec: &attendansee_faces::ModelSpec) -> String {
    attendansee_faces::models::install_advice(spec, &common.model_dir.join(&spec.file))
}

/// Workers are this same binary, started as `attendansee worker` with the server's settings
/// (`Common::worker_args`), so that they resolve the same catalog, model directory and ONNX Runtime.
fn pool_config(common: &Common, config: &ServeConfig) -> Result<PoolConfig> {
    let program =
        std::env::current_exe().context("cannot find the attendansee binary to start workers")?;
    Ok(PoolConfig {
        program,
        args: common.worker_args(Some(&config.detector), &config.recognizers),
        workers: config.workers,
        queue: config.queue,
        job_timeout: Duration::from_secs(config.job_timeout),
        start_timeout: Duration::from_secs(60),
        max_jobs_per_worker: config.worker_max_jobs,
        max_rss_bytes: config.worker_max_rss_mb * 1024 * 1024,
    })
}

/// Makes every allocation of 1 MiB or more its own mapping, given back when freed. glibc's
/// default threshold rises to the largest block freed (up to 32 MiB), after which photo-sized
/// buffers (an upload read back for a worker, its frame) come from per-thread arenas that keep
/// them. Measured with 8 concurrent 31 MiB uploads (crates/attendansee/tests/uploads.rs): resident
/// memory +120..147 MiB at the peak and +91..119 MiB after without this; +77 and +4 with it.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; glibc takes its own locks for it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Creates `dir`, or empties it.
fn empty_dir(dir: &std::path::Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot empty the upload directory {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the upload directory {}", dir.display()))
}

/// SIGINT and SIGTERM, listened for from the moment this is made.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received: finishing in-flight requests"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received: finishing in-flight requests"),
        }
    }
}
