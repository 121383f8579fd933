//! The supervisor: N long-lived `attendansee worker` processes fed from one bounded queue.
//!
//! Each worker slot is a task that starts a worker, checks its handshake, and hands it one job at
//! a time. A worker that dies, writes garbage, exceeds the job timeout or its memory limit is
//! killed and replaced (with backoff if it fails to start); the job gets a structured error, and a
//! job whose worker crashed is retried once on another worker first. After a number of jobs, or
//! above the memory limit between jobs, a worker is retired gracefully and replaced.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use attendansee_vocabulary::ErrorKind;

use crate::metrics::PoolMetrics;
use crate::protocol::{
    FrameError, Hello, Job, JobError, LoadedModel, Output, PROTOCOL_VERSION, Request, Response,
    Timings, UnavailableModel, encode, read_frame_async,
};
use crate::queue::{FairQueue, Lane, Refused};

/// How many of a worker's last stderr lines are kept for crash reports.
const STDERR_TAIL_LINES: usize = 20;
/// How long a retiring worker gets to exit after its stdin is closed.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The `attendansee` binary, and the arguments that make it a worker.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub workers: usize,
    /// Interactive jobs that may wait for a worker; beyond that, `Overloaded` (half of them at
    /// most for one user). As many batch jobs may wait again; beyond that they wait for room.
    pub queue: usize,
    pub job_timeout: Duration,
    /// Time for a worker to load its models and say hello.
    pub start_timeout: Duration,
    /// Jobs after which a worker is replaced (0: never).
    pub max_jobs_per_worker: u64,
    /// Resident memory above which a worker is replaced (0: no limit).
    pub max_rss_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("all workers are busy and the queue is full; retry in {retry_after} s")]
    Overloaded { retry_after: u32 },
    #[error("the worker took longer than {} s and was stopped", timeout.as_secs_f32())]
    Timeout {
        timeout: Duration,
        stderr_tail: Vec<String>,
    },
    #[error("the worker handling this job crashed ({reason}); tried {attempts} times")]
    Crashed {
        reason: String,
        attempts: u32,
        stderr_tail: Vec<String>,
    },
    #[error("{}", .0.message)]
    Job(JobError),
    #[error("the worker pool is shutting down")]
    ShuttingDown,
    #[error("no inference worker is running: {message}")]
    Unavailable { message: String },
}

impl PoolError {
    /// The shared kind of this error, for any layer that reports it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Overloaded { .. } | Self::ShuttingDown => ErrorKind::Overloaded,
            Self::Unavailable { .. } => ErrorKind::ModelNotAvailable,
            Self::Timeout { .. } => ErrorKind::WorkerTimeout,
            Self::Crashed { .. } => ErrorKind::WorkerCrashed,
            Self::Job(job) => job.kind,
        }
    }
}

/// A snapshot for the health endpoint.
#[derive(Clone, Debug)]
pub struct PoolStatus {
    pub workers: usize,
    pub alive: i64,
    pub queue_depth: usize,
    /// How many jobs the queue holds before `Overloaded`.
    pub queue_capacity: usize,
    pub in_flight: i64,
    pub models: Vec<LoadedModel>,
    pub unavailable: Vec<UnavailableModel>,
}

type Reply = oneshot::Sender<Result<(Output, Timings), PoolError>>;

struct QueuedJob {
    id: u64,
    job: Job,
    attempts: u32,
    reply: Reply,
}

struct Shared {
    config: PoolConfig,
    queue: FairQueue<QueuedJob>,
    metrics: Arc<PoolMetrics>,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    hello: Mutex<Option<Hello>>,
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
    slots: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Pool {
    /// Starts the worker slots; workers come up in the background (see [`Pool::status`]).
    pub fn start(config: PoolConfig) -> Pool {
        let workers = config.workers.max(1);
        let shared = Arc::new(Shared {
            queue: FairQueue::new(config.queue),
            config,
            metrics: Arc::default(),
            next_id: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
            hello: Mutex::new(None),
        });
        let slots = (0..workers)
            .map(|index| tokio::spawn(slot(shared.clone(), index)))
            .collect();
        Pool {
            shared,
            slots: Arc::new(Mutex::new(slots)),
        }
    }

    pub fn metrics(&self) -> &PoolMetrics {
        &self.shared.metrics
    }

    /// Appends the pool's metrics, with the queue depth read now.
    pub fn render_metrics(&self, out: &mut String) {
        self.shared.update_queue_depth();
        self.shared.metrics.render(out);
    }

    pub fn status(&self) -> PoolStatus {
        let hello = self.shared.hello.lock().ok().and_then(|h| h.clone());
        let (models, unavailable) = hello.map(|h| (h.models, h.unavailable)).unwrap_or_default();
        let m = &self.shared.metrics;
        PoolStatus {
            workers: self.shared.config.workers.max(1),
            alive: m.alive.load(Ordering::Relaxed),
            queue_depth: self.shared.queue.len(),
            queue_capacity: self.shared.config.queue,
            in_flight: m.in_flight.load(Ordering::Relaxed),
            models,
            unavailable,
        }
    }

    /// Runs `job` on a worker and waits for its answer. Never hangs: every path answers. An
    /// interactive job finding the queue full is answered at once with `Overloaded`; a batch
    /// job waits for room. Owners' lanes take turns for the workers.
    pub async fn submit(&self, job: Job, lane: Lane) -> Result<(Output, Timings), PoolError> {
        if *self.shared.shutdown.borrow() {
            return Err(PoolError::ShuttingDown);
        }
        let kind = job.kind();
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let queued = QueuedJob {
            id,
            job,
            attempts: 0,
            reply,
        };
        let queued = match lane.batch {
            true => self.shared.queue.push_waiting(queued, lane).await,
            false => self.shared.queue.try_push(queued, lane),
        };
        match queued {
            // Shutdown may have drained the queue between the check above and this push.
            Ok(()) if self.shared.stopping() => {
                self.shared.fail_waiting(|| PoolError::ShuttingDown)
            }
            Ok(()) => self.shared.update_queue_depth(),
            Err(Refused::Full(_)) => {
                self.shared.metrics.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(PoolError::Overloaded { retry_after: 1 });
            }
            Err(Refused::Closed(_)) => return Err(PoolError::ShuttingDown),
        }
        let result = answer.await.unwrap_or(Err(PoolError::ShuttingDown));
        self.shared.metrics.observe(kind, started.elapsed());
        result
    }

    /// `Overloaded` (counted as a rejection) when an interactive job of `lane` would be refused
    /// now: lets a route refuse before it loads a large input it would only have to drop.
    pub fn check_room(&self, lane: Lane) -> Result<(), PoolError> {
        if lane.batch || self.shared.queue.has_room(lane.owner) {
            return Ok(());
        }
        self.shared.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        Err(PoolError::Overloaded { retry_after: 1 })
    }

    /// Stops taking jobs, fails the queued ones, lets each worker finish its current job, then
    /// stops every worker; whatever is still running after `grace` is killed.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.shutdown.send_replace(true);
        self.shared.queue.close();
        self.shared.fail_waiting(|| PoolError::ShuttingDown);
        let slots: Vec<JoinHandle<()>> = self
            .slots
            .lock()
            .map(|mut s| s.drain(..).collect())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + grace;
        for slot in slots {
            let abort = slot.abort_handle();
            if tokio::time::timeout_at(deadline, slot).await.is_err() {
                abort.abort(); // dropping the worker kills its process (kill_on_drop)
            }
        }
        // A job retried while the slots were stopping has nobody left to run it.
        self.shared.fail_waiting(|| PoolError::ShuttingDown);
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Answers every job still waiting with `error`.
    fn fail_waiting(&self, error: impl Fn() -> PoolError) {
        for job in self.queue.drain() {
            let _ = job.reply.send(Err(error()));
        }
        self.update_queue_depth();
    }

    fn update_queue_depth(&self) {
        let waiting = self.queue.len();
        self.metrics
            .queue_depth
            .store(waiting as i64, Ordering::Relaxed);
    }

    /// A job whose worker crashed: once more on another worker, else the crash is its answer.
    fn retry_or_fail(&self, mut job: QueuedJob, reason: &str, stderr_tail: Vec<String>) {
        if job.attempts == 0 && self.stopping() {
            // No worker will take it any more: answer now rather than strand it.
            let _ = job.reply.send(Err(PoolError::ShuttingDown));
        } else if job.attempts == 0 {
            job.attempts = 1;
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                job = job.id,
                kind = job.job.kind(),
                reason,
                "retrying the job on another worker"
            );
            // If shutdown began meanwhile, the final drain in `Pool::shutdown` answers the job.
            self.queue.push_retry(job);
        } else {
            let error = PoolError::Crashed {
                reason: reason.to_owned(),
                attempts: job.attempts + 1,
                stderr_tail,
            };
            let _ = job.reply.send(Err(error));
        }
    }
}

/// One worker slot, for the life of the pool: start a worker, serve it, replace it.
async fn slot(shared: Arc<Shared>, index: usize) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match Worker::start(&shared).await {
            Ok(worker) => {
                backoff = Duration::from_millis(100);
                shared.metrics.starts.fetch_add(1, Ordering::Relaxed);
                shared.metrics.alive.fetch_add(1, Ordering::Relaxed);
                tracing::info!(slot = index, pid = worker.pid, "worker ready");
                let stop = serve(&shared, worker, &mut shutdown).await;
                shared.metrics.alive.fetch_sub(1, Ordering::Relaxed);
                if stop {
                    return;
                }
            }
            Err(error) => {
                shared
                    .metrics
                    .start_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(slot = index, %error, "worker failed to start; trying again in {backoff:?}");
                if shared.metrics.alive.load(Ordering::Relaxed) == 0 {
                    // Nobody can run the waiting jobs now: answer them instead of letting them wait.
                    shared.fail_waiting(|| PoolError::Unavailable {
                        message: error.clone(),
                    });
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopped(&mut shutdown) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// What came of handing one job to a worker.
enum Outcome {
    Answered(Response),
    /// The request could not be framed (too large); the worker was not involved.
    Unsendable(String),
    Died,
    Protocol(String),
    TimedOut,
    MemoryExceeded(u64),
}

impl Outcome {
    /// `ok`, or what went wrong, in a word or two.
    fn describe(&self) -> String {
        match self {
            Outcome::Answered(Response { result: Ok(_), .. }) => "ok".into(),
            Outcome::Answered(Response { result: Err(e), .. }) => format!("failed ({})", e.kind),
            Outcome::Unsendable(_) => format!("not sent ({})", ErrorKind::PayloadTooLarge),
            Outcome::Died => "worker died".into(),
            Outcome::Protocol(_) => "protocol violation".into(),
            Outcome::TimedOut => "timed out".into(),
            Outcome::MemoryExceeded(_) => "memory limit exceeded".into(),
        }
    }
}

/// Feeds jobs to `worker` until it must be replaced (`false`) or the pool stops (`true`).
async fn serve(shared: &Shared, mut worker: Worker, shutdown: &mut watch::Receiver<bool>) -> bool {
    let config = &shared.config;
    loop {
        let mut job = tokio::select! {
            biased;
            () = stopped(shutdown) => {
                worker.retire().await;
                return true;
            }
            job = shared.queue.pop() => job,
            status = worker.child.wait() => {
                let reason = status.map_or_else(|e| format!("wait failed: {e}"), |s| describe_exit(&s));
                tracing::warn!(pid = worker.pid, %reason, "idle worker died");
                shared.metrics.crash(&metric_reason(&reason));
                return false;
            }
        };
        shared.update_queue_depth();
        if job.reply.is_closed() {
            continue; // the client gave up (e.g. disconnected) while the job waited
        }
        if let Ok(Some(status)) = worker.child.try_wait() {
            // Died while idle, just as this job arrived: not the job's fault, so its retry is kept.
            let reason = describe_exit(&status);
            tracing::warn!(pid = worker.pid, %reason, "idle worker died");
            shared.metrics.crash(&metric_reason(&reason));
            match shared.stopping() {
                true => drop(job.reply.send(Err(PoolError::ShuttingDown))),
                false => shared.queue.push_retry(job),
            }
            return false;
        }
        shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        // Lent to the request, not cloned: a job carries a whole photo. Returned for a retry.
        let request = Request {
            id: job.id,
            job: std::mem::replace(&mut job.job, Job::Ping),
        };
        let started = Instant::now();
        let outcome = worker
            .run(&request, config.job_timeout, config.max_rss_bytes)
            .await;
        job.job = request.job;
        shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        // One line per job whatever became of it, the modern form of the old service's
        // "Subprocess completed in X.XXs with code 0"; failures get their own line below too.
        let seconds = started.elapsed().as_secs_f64();
        let ended = outcome.describe();
        tracing::info!(
            "[WORKER {}] {} job {} completed in {seconds:.2}s: {ended}",
            worker.pid,
            job.job.kind(),
            job.id,
        );
        match outcome {
            Outcome::Answered(response) => {
                let result = response
                    .result
                    .map(|output| (output, response.timings))
                    .map_err(PoolError::Job);
                let _ = job.reply.send(result);
                worker.jobs += 1;
                if config.max_jobs_per_worker > 0 && worker.jobs >= config.max_jobs_per_worker {
                    shared.metrics.recycle("jobs");
                    tracing::info!(
                        pid = worker.pid,
                        jobs = worker.jobs,
                        "recycling worker after its job quota"
                    );
                    worker.retire().await;
                    return false;
                }
                if let Some(rss) = resident_bytes(worker.pid)
                    .filter(|rss| config.max_rss_bytes > 0 && *rss > config.max_rss_bytes)
                {
                    shared.metrics.recycle("memory");
                    tracing::info!(
                        pid = worker.pid,
                        rss,
                        "recycling worker above its memory limit"
                    );
                    worker.retire().await;
                    return false;
                }
            }
            Outcome::Unsendable(detail) => {
                let error = JobError {
                    kind: ErrorKind::PayloadTooLarge,
                    message: format!("the request is too large for a worker: {detail}"),
                };
                let _ = job.reply.send(Err(PoolError::Job(error)));
            }
            Outcome::TimedOut => {
                shared.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
                worker.kill().await;
                tracing::error!(
                    pid = worker.pid,
                    job = job.id,
                    kind = job.job.kind(),
                    "job timed out; worker killed"
                );
                let _ = job.reply.send(Err(PoolError::Timeout {
                    timeout: config.job_timeout,
                    stderr_tail: worker.stderr_tail(),
                }));
                return false;
            }
            Outcome::Died => {
                let reason = worker.kill().await;
                tracing::error!(pid = worker.pid, job = job.id, %reason, "worker crashed during a job");
                shared.metrics.crash(&metric_reason(&reason));
                shared.retry_or_fail(job, &reason, worker.stderr_tail());
                return false;
            }
            Outcome::Protocol(detail) => {
                worker.kill().await;
                let reason = format!("protocol violation: {detail}");
                tracing::error!(pid = worker.pid, job = job.id, %reason, "worker killed");
                shared.metrics.crash("protocol");
                shared.retry_or_fail(job, &reason, worker.stderr_tail());
                return false;
            }
            Outcome::MemoryExceeded(rss) => {
                worker.kill().await;
                let reason = format!("memory limit exceeded ({} MB resident)", rss / 1_000_000);
                tracing::error!(pid = worker.pid, job = job.id, %reason, "worker killed");
                shared.metrics.crash("memory");
                shared.retry_or_fail(job, &reason, worker.stderr_tail());
                return false;
            }
        }
    }
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    pid: u32,
    jobs: u64,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<JoinHandle<()>>,
}

impl Worker {
    /// Spawns a worker and waits for its hello.
    async fn start(shared: &Shared) -> Result<Worker, String> {
        let config = &shared.config;
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C meant for the server must not kill in-flight jobs;
            // the supervisor stops workers itself.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", config.program.display()))?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("worker pipes missing".into());
        };
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let sink = tail.clone();
        // Forwards the worker's log lines (already prefixed `[WORKER <pid>]`) into ours.
        let stderr_task = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "attendansee::worker", "{line}");
                if let Ok(mut tail) = sink.lock() {
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
        let mut worker = Worker {
            child,
            stdin: Some(stdin),
            stdout,
            pid,
            jobs: 0,
            stderr: tail,
            stderr_task: Some(stderr_task),
        };
        let hello = tokio::time::timeout(
            config.start_timeout,
            read_frame_async::<Hello>(&mut worker.stdout),
        )
        .await;
        let failure = match hello {
            Ok(Ok(hello)) if hello.protocol_version == PROTOCOL_VERSION => {
                for model in &hello.unavailable {
                    tracing::warn!(pid, model = %model.name, "model unavailable in worker: {}", model.message);
                }
                if let Ok(mut slot) = shared.hello.lock() {
                    *slot = Some(hello);
                }
                return Ok(worker);
            }
            Ok(Ok(hello)) => format!(
                "protocol version {} (this server speaks {PROTOCOL_VERSION})",
                hello.protocol_version
            ),
            Ok(Err(e)) => format!("no handshake: {e}"),
            Err(_) => format!("no handshake within {:?}", config.start_timeout),
        };
        let exit = worker.kill().await;
        Err(format!(
            "{failure}; {exit}; stderr: {}",
            worker.stderr_tail().join(" | ")
        ))
    }

    async fn run(&mut self, request: &Request, timeout: Duration, max_rss: u64) -> Outcome {
        // A request that cannot be framed never reaches (or harms) the worker.
        let frame = match encode(request) {
            Ok(frame) => frame,
            Err(e) => return Outcome::Unsendable(e.to_string()),
        };
        let pid = self.pid;
        let (stdin, stdout) = (&mut self.stdin, &mut self.stdout);
        // Writing is inside the timeout too: a stopped worker with a full pipe must not wedge the slot.
        let exchange = async move {
            let Some(stdin) = stdin.as_mut() else {
                return Outcome::Died;
            };
            if stdin.write_all(&frame).await.is_err() || stdin.flush().await.is_err() {
                return Outcome::Died;
            }
            drop(frame); // a photo's size: not kept while the worker works
            match read_frame_async::<Response>(stdout).await {
                Ok(response) if response.id == request.id => Outcome::Answered(response),
                Ok(response) => Outcome::Protocol(format!(
                    "answer to request {} while {} was asked",
                    response.id, request.id
                )),
                Err(FrameError::Closed | FrameError::Io(_)) => Outcome::Died,
                Err(e) => Outcome::Protocol(e.to_string()),
            }
        };
        tokio::select! {
            outcome = exchange => outcome,
            () = tokio::time::sleep(timeout) => Outcome::TimedOut,
            rss = memory_exceeded(pid, max_rss) => Outcome::MemoryExceeded(rss),
        }
    }

    /// Kills the process (if it still runs) and describes how it ended.
    async fn kill(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => Ok(status),
            _ => {
                let _ = self.child.start_kill();
                self.child.wait().await
            }
        };
        self.drain_stderr().await;
        status.map_or_else(|e| format!("wait failed: {e}"), |s| describe_exit(&s))
    }

    /// Closes stdin (the worker exits on end of input) and waits; kills it if it lingers.
    async fn retire(&mut self) {
        self.stdin.take();
        if tokio::time::timeout(RETIRE_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.drain_stderr().await;
    }

    async fn drain_stderr(&mut self) {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
    }

    fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Resolves once the pool is stopping (dropping the watch guard before anything else awaits).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// "killed by SIGSEGV", "exited with code 1", …
fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
        _ => "ended".into(),
    }
}

/// The short label for the crash metric: the signal name, `exit_<code>`, or `other`.
fn metric_reason(reason: &str) -> String {
    if let Some(signal) = reason.strip_prefix("killed by ") {
        signal.to_owned()
    } else if let Some(code) = reason.strip_prefix("exited with code ") {
        format!("exit_{code}")
    } else {
        "other".into()
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        4 => "SIGILL".into(),
        6 => "SIGABRT".into(),
        7 => "SIGBUS".into(),
        8 => "SIGFPE".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        13 => "SIGPIPE".into(),
        15 => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// Resident memory of a process, from `/proc` (Linux).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resolves (with the resident size) once `pid` holds more than `limit` bytes; never if 0.
async fn memory_exceeded(pid: u32, limit: u64) -> u64 {
    if limit == 0 {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(rss) = resident_bytes(pid).filter(|rss| *rss > limit) {
            return rss;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_by_signal_name_or_code_and_labelled_for_metrics() {
        use std::os::unix::process::ExitStatusExt;
        let segv = ExitStatus::from_raw(11);
        assert_eq!(describe_exit(&segv), "killed by SIGSEGV");
        assert_eq!(metric_reason(&describe_exit(&segv)), "SIGSEGV");
        let code = ExitStatus::from_raw(1 << 8);
        assert_eq!(describe_exit(&code), "exited with code 1");
        assert_eq!(metric_reason(&describe_exit(&code)), "exit_1");
        assert_eq!(metric_reason("protocol violation"), "other");
    }

    #[test]
    fn own_resident_memory_is_readable() {
        assert!(resident_bytes(std::process::id()).unwrap() > 0);
    }
}
