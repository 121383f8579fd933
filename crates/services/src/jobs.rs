//! Background jobs: what a job is (kind and payload, stored through explicit conversions), how
//! one is queued, and the runner that executes them, one at a time per node — each photo of a
//! processing job is itself a job for the worker pool. A node holds the job it runs by a lease
//! it renews while it works; when it dies, another node takes the job over, photo by photo.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use attendansee_pool::Lane;
use attendansee_pool::protocol::Timings;
use attendansee_store::{
    JobLease, JobRecord, JobStatus, LeaseState, Page, Paged, PhotoCommit, Scope, SessionImage,
    SessionStatus, Store, StoreError, StoredJobKind, User, blob_keys,
};
use attendansee_vocabulary::{ErrorKind, JobKind};

use crate::faces::new_crop;
use crate::recognition::{AssignSummary, ClusterSummary, assign_session, cluster_course};
use crate::{PhotoFaces, ServiceError, ServiceResult, Services};

/// What a job works on, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum JobPayload {
    /// Process the session's photos with the model.
    ProcessSession { session: i64, model: String },
}

/// The stored form of a `process_session` payload.
#[derive(Serialize, Deserialize)]
struct ProcessSessionFields {
    session: i64,
    model: String,
}

/// A job record whose payload cannot be read back as its kind's fields.
#[derive(Debug, thiserror::Error)]
#[error("bad payload: {0}")]
pub struct PayloadError(#[from] serde_json::Error);

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::ProcessSession { .. } => JobKind::ProcessSession,
        }
    }

    /// The session the job is about.
    pub fn session(&self) -> i64 {
        match self {
            JobPayload::ProcessSession { session, .. } => *session,
        }
    }

    /// The kind and payload columns of the job's record.
    pub fn to_record(&self) -> Result<(JobKind, String), serde_json::Error> {
        let text = match self {
            JobPayload::ProcessSession { session, model } => {
                serde_json::to_string(&ProcessSessionFields {
                    session: *session,
                    model: model.clone(),
                })?
            }
        };
        Ok((self.kind(), text))
    }

    /// Reads the kind and payload columns back.
    pub fn from_record(kind: JobKind, payload: &str) -> Result<Self, PayloadError> {
        Ok(match kind {
            JobKind::ProcessSession => {
                let fields: ProcessSessionFields = serde_json::from_str(payload)?;
                JobPayload::ProcessSession {
                    session: fields.session,
                    model: fields.model,
                }
            }
        })
    }
}

/// One item that failed inside a job (e.g. a photo), with why. Stored as JSON in the job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobItemError {
    /// The photo's id.
    pub image: i64,
    pub file: Option<String>,
    pub error_type: ErrorKind,
    pub error: String,
}

/// Where a processing job's time went, summed over its photos (worker-side timings), and what
/// recognition made of them. Stored as JSON in the job record.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    pub photos: u64,
    pub faces: u64,
    pub decode_ms: f64,
    pub detect_ms: f64,
    pub align_ms: f64,
    pub embed_ms: f64,
    /// What automatic assignment decided once the photos were done.
    #[serde(default)]
    pub assignment: Option<AssignSummary>,
    /// The course's clusters of unknown faces afterwards.
    #[serde(default)]
    pub clustering: Option<ClusterSummary>,
}

impl JobStats {
    fn add(&mut self, faces: usize, t: &Timings) {
        self.photos += 1;
        self.faces += faces as u64;
        self.decode_ms += f64::from(t.decode_ms);
        self.detect_ms += f64::from(t.detect_ms);
        self.align_ms += f64::from(t.align_ms);
        self.embed_ms += f64::from(t.embed_ms);
    }
}

/// A job as the services report it: its record with kind, payload, errors and stats read back.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: StoredJobKind,
    pub status: JobStatus,
    pub done: i64,
    pub total: i64,
    pub errors: Vec<JobItemError>,
    /// Why the whole job failed, if it did.
    pub error: Option<String>,
    /// The session it processes.
    pub session: Option<i64>,
    pub stats: JobStats,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for Job {
    /// Reads a record back. A kind this version does not know, or a payload, errors or stats
    /// column that cannot be read (a record written by another version, or by hand), is logged
    /// and shown as it is or as empty, so that one odd record never makes the job list fail.
    fn from(j: JobRecord) -> Self {
        let payload = match &j.kind {
            StoredJobKind::Known(kind) => JobPayload::from_record(*kind, &j.payload)
                .map_err(|e| tracing::warn!(job = j.id, error = %e, "unreadable job payload"))
                .ok(),
            StoredJobKind::Unknown(_) => None,
        };
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status,
            done: j.done,
            total: j.total,
            errors: read_column(j.id, "errors", &j.errors),
            error: j.error,
            session: payload.map(|p| p.session()),
            stats: read_column(j.id, "stats", &j.stats),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// A JSON column of a job record, or its empty value when it cannot be read.
fn read_column<T: serde::de::DeserializeOwned + Default>(job: i64, column: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(job, column, error = %e, "unreadable job column");
        T::default()
    })
}

impl Services {
    /// Queues the processing of every photo of the session not yet processed (or failed
    /// before). A job already queued or running for the session is returned instead.
    pub async fn queue_processing(&self, actor: &User, session_id: i64) -> ServiceResult<Job> {
        let session = self.store.get_session(actor.scope(), session_id).await?;
        let course = self
            .store
            .get_course(actor.scope(), session.course_id)
            .await?;
        let model = self.course_model(&course);
        self.check_recognizer("model_name", &model)?;
        self.inference()?;
        let pending = self.store.unprocessed_images(session_id).await?.len() as i64;
        let payload = JobPayload::ProcessSession {
            session: session_id,
            model,
        };
        let (kind, text) = payload.to_record().map_err(ServiceError::internal)?;
        let (job, _) = self
            .store
            .queue_job(kind, &text, course.id, actor.id, pending)
            .await?;
        self.jobs_queued.notify_one();
        Ok(job.into())
    }

    /// The jobs `scope` sees, newest first.
    pub async fn list_jobs(&self, scope: Scope, page: Page) -> ServiceResult<Paged<Job>> {
        let paged = self.store.list_jobs(scope, page).await?;
        Ok(Paged {
            total: paged.total,
            items: paged.items.into_iter().map(Job::from).collect(),
        })
    }

    pub async fn get_job(&self, scope: Scope, id: i64) -> ServiceResult<Job> {
        Ok(self.store.get_job(scope, id).await?.into())
    }

    /// Cancels a queued or running job; photos already processed stay processed.
    pub async fn cancel_job(&self, scope: Scope, id: i64) -> ServiceResult<Job> {
        let session = Job::from(self.store.get_job(scope, id).await?).session;
        Ok(self.store.cancel_job(scope, id, session).await?.into())
    }
}

/// How this node holds the jobs it runs. Several nodes (`serve` processes on one database) share
/// one queue: each claims a job under a lease naming it, and renews the lease every `heartbeat`
/// while it works; a job whose lease runs out (its node died) is claimed by another node.
#[derive(Clone, Debug)]
pub struct JobLeases {
    pub lease: JobLease,
    pub heartbeat: Duration,
}

impl JobLeases {
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

    /// A lease of `duration` for a new node id, renewed every third of it: two renewals may fail
    /// (storage briefly away) before another node may take the job over.
    pub fn new(duration: Duration) -> Self {
        Self {
            lease: JobLease {
                owner: format!("node-{}", attendansee_store::credentials::random_id(6)),
                duration,
            },
            heartbeat: duration / 3,
        }
    }

    /// This node's id, as jobs' `lease_owner` names it.
    pub fn node(&self) -> &str {
        &self.lease.owner
    }
}

/// Runs jobs one after the other, for the life of the server: queued ones, and running ones
/// whose node stopped renewing their lease. (The only node on SQLite queues the jobs its previous
/// process left running at start instead: see `Store::requeue_interrupted_jobs`.)
pub async fn run_jobs(services: Services, leases: JobLeases) {
    loop {
        match services.store.claim_job(&leases.lease).await {
            Ok(Some(job)) => run_claimed(&services, &leases, job).await,
            Ok(None) => {
                // Woken when a job is queued; the timeout also catches jobs queued by another
                // process (or node), and leases that ran out. Both simply mean: look again.
                let _woken_or_timed_out =
                    tokio::time::timeout(Duration::from_secs(2), services.jobs_queued.notified())
                        .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot claim a job; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// How many times a job is started before a claim fails it instead (see `run_claimed`).
pub const MAX_JOB_ATTEMPTS: i64 = 3;

/// Runs a claimed job to its end and records it, renewing the lease meanwhile.
async fn run_claimed(services: &Services, leases: &JobLeases, job: JobRecord) {
    let id = job.id;
    tracing::info!(
        job = id,
        kind = job.kind.name(),
        node = leases.node(),
        attempt = job.attempts,
        "job started"
    );
    let (state, held) = tokio::sync::watch::channel(LeaseState::Held);
    let heartbeat = tokio::spawn(keep_lease(
        services.store.clone(),
        id,
        leases.clone(),
        state,
    ));
    let holder = Holder {
        job: id,
        owner: leases.node(),
        held,
    };
    let end = match &job.kind {
        StoredJobKind::Known(kind) => match JobPayload::from_record(*kind, &job.payload) {
            // Every node that took it stopped before its end, each after a lease: a job that
            // kills its node would otherwise take down one node after another, forever.
            Ok(payload) if job.attempts > MAX_JOB_ATTEMPTS => Some(JobEnd::failed(
                Some(payload.session()),
                format!(
                    "the job was started {} times and never finished: each time its server \
                     stopped (crashed, was killed or lost the database) before the end; it is \
                     not tried again",
                    job.attempts - 1
                ),
            )),
            Ok(payload) => run(services, &job, &payload, &holder).await,
            Err(e) => Some(JobEnd::failed(None, e.to_string())),
        },
        // The store fails these when it claims them; never run one regardless.
        StoredJobKind::Unknown(name) => {
            Some(JobEnd::failed(None, format!("unknown job kind '{name}'")))
        }
    };
    match end {
        Some(end) => {
            tracing::info!(
                job = id,
                status = ?end.status,
                error = end.error.as_deref().unwrap_or(""),
                "job finished"
            );
            record_end(&services.store, id, leases.node(), &end).await;
        }
        None => tracing::info!(
            job = id,
            node = leases.node(),
            "job lease lost: another node has the job now; stopped"
        ),
    }
    heartbeat.abort();
}

/// Renews a job's lease every heartbeat until the job ends (the task is aborted) or the lease is
/// no longer this node's, which it publishes. A renewal that fails (storage away) is retried at
/// the next beat; once a whole lease has passed without one, the job may be another node's, and
/// it counts as lost.
async fn keep_lease(
    store: Store,
    job: i64,
    leases: JobLeases,
    state: tokio::sync::watch::Sender<LeaseState>,
) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(leases.heartbeat).await;
        match store.renew_job_lease(job, &leases.lease).await {
            Ok(LeaseState::Held) => renewed = tokio::time::Instant::now(),
            Ok(other) => {
                let _ = state.send(other);
                return;
            }
            Err(e) if renewed.elapsed() >= leases.lease.duration => {
                tracing::warn!(job, error = %e, "cannot renew the job's lease, which has run out");
                let _ = state.send(LeaseState::Lost);
                return;
            }
            Err(e) => tracing::warn!(job, error = %e, "cannot renew the job's lease; retrying"),
        }
    }
}

/// A running job's hold on its lease, as the runner checks it between photos.
struct Holder<'a> {
    job: i64,
    owner: &'a str,
    /// What the heartbeat last learnt.
    held: tokio::sync::watch::Receiver<LeaseState>,
}

impl Holder<'_> {
    /// Whether the job is still this node's to run: what the heartbeat learnt, else the job's
    /// row (so that a cancellation stops the job before its next photo, not its next beat).
    async fn state(&self, store: &Store) -> Result<LeaseState, StoreError> {
        let learnt = *self.held.borrow();
        match learnt {
            LeaseState::Held => store.job_lease_state(self.job, self.owner).await,
            other => Ok(other),
        }
    }
}

/// Runs one job to its end; `None` when it stopped because another node has it now. A storage
/// outage (the database or the blob store not answering) is nobody's fault and passes: the job
/// waits and resumes where it stopped — photos done stay done — instead of failing; every storage
/// call has a time limit, so a wait never hangs.
async fn run(
    services: &Services,
    job: &JobRecord,
    payload: &JobPayload,
    holder: &Holder<'_>,
) -> Option<JobEnd> {
    match payload {
        JobPayload::ProcessSession { session, model } => {
            let mut job = job.clone();
            let mut backoff = Duration::from_secs(1);
            loop {
                let e = match process_photos(services, &mut job, *session, model, holder).await {
                    Ok(end) => return Some(end),
                    Err(JobFailure::LeaseLost) => return None,
                    Err(e) => e,
                };
                let cause = e.cause().unwrap_or("");
                if !e.is_storage_outage() {
                    tracing::error!(job = job.id, error = %e, %cause, "job stopped");
                    return Some(JobEnd::failed(Some(*session), e.to_string()));
                }
                tracing::warn!(job = job.id, error = %e, %cause, "storage is unavailable; the job resumes when it is back (next try in {backoff:?})");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RECORD_BACKOFF);
                // The photos still to do are read again; the progress carries on from what this
                // run counted (`job` holds it), which is right even when the last save was lost.
            }
        }
    }
}

/// How a job ended, and the session status that goes with it.
#[derive(Debug)]
struct JobEnd {
    status: JobStatus,
    error: Option<String>,
    session: Option<(i64, SessionStatus)>,
}

impl JobEnd {
    fn failed(session: Option<i64>, error: String) -> Self {
        Self {
            status: JobStatus::Failed,
            error: Some(error),
            session: session.map(|id| (id, SessionStatus::Failed)),
        }
    }
}

/// The longest pause between attempts to record a job's end while storage is failing.
const MAX_RECORD_BACKOFF: Duration = Duration::from_secs(30);

/// Records the end of a job and its session's status, trying again until storage takes it: a
/// job whose end cannot be saved (a full disk) must not stay `running` once storage is back. A
/// job another node holds by then is that node's to end.
async fn record_end(store: &Store, id: i64, owner: &str, end: &JobEnd) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let saved = store
            .finish_job(id, owner, (end.status, end.error.as_deref()), end.session)
            .await;
        match saved {
            Ok(true) => return,
            Ok(false) => {
                tracing::info!(
                    job = id,
                    "job taken over by another node before its end was recorded; left to it"
                );
                return;
            }
            Err(e) if !e.is_unavailable() => {
                // Not a storage outage that will pass: retrying would stall every later job.
                tracing::error!(job = id, error = %e, "cannot record the end of a job; giving up");
                return;
            }
            Err(e) => {
                tracing::error!(job = id, error = %e, "cannot record the end of a job; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RECORD_BACKOFF);
            }
        }
    }
}

/// The order to process photos in: largest first. Photos take time roughly in proportion to
/// their pixels, and a big one started last would leave the other workers idle at the end.
fn largest_first(images: &mut [SessionImage]) {
    images.sort_by_key(|i| (std::cmp::Reverse(i.width.saturating_mul(i.height)), i.id));
}

/// Where a job starts counting: a fresh job counts the photos to do; a job resumed after a
/// restart keeps its original total and counts the photos done before as done.
fn starting_progress(job: &JobRecord, remaining: usize) -> (i64, i64) {
    let remaining = remaining as i64;
    if job.done == 0 {
        return (0, remaining);
    }
    let total = job.total.max(remaining);
    (total - remaining, total)
}

/// The status of a job whose photos are all through: `succeeded` when none failed, `partial`
/// when some did and others were processed, `failed` when every photo failed.
fn outcome(processed: usize, failed: usize) -> (JobStatus, SessionStatus, Option<String>) {
    match (processed, failed) {
        (_, 0) => (JobStatus::Succeeded, SessionStatus::Processed, None),
        (0, failed) => (
            JobStatus::Failed,
            SessionStatus::Failed,
            Some(format!("all {failed} photos failed; see errors")),
        ),
        (processed, failed) => (
            JobStatus::Partial,
            SessionStatus::Failed,
            Some(format!(
                "{failed} of {} photos failed; see errors (the others were processed)",
                processed + failed
            )),
        ),
    }
}

/// Why a job stopped before its end. Its text is the job's `error`, shown to people: services
/// errors contribute their message; their internal cause goes to the log (see [`Self::cause`]).
#[derive(Debug, thiserror::Error)]
enum JobFailure {
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("a photo's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("storage failed while processing photo {image}: {}", error.message)]
    PhotoStorage { image: i64, error: ServiceError },
    /// The session or its course could not be read for recognition (deleted meanwhile…).
    #[error("{0}")]
    Recognition(StoreError),
    #[error("assignment failed: {}", .0.message)]
    Assignment(ServiceError),
    #[error("clustering failed: {}", .0.message)]
    Clustering(ServiceError),
    /// Another node holds the job now (this one's lease ran out): stop, recording nothing.
    #[error("the job's lease was lost")]
    LeaseLost,
}

impl JobFailure {
    /// Whether storage failed to answer (a passing outage), rather than the job's data or a bug.
    fn is_storage_outage(&self) -> bool {
        match self {
            Self::Store(e) | Self::Recognition(e) => e.is_unavailable(),
            Self::PhotoStorage { .. } => true,
            Self::Assignment(e) | Self::Clustering(e) => e.kind == ErrorKind::StorageUnavailable,
            Self::Task(_) | Self::LeaseLost => false,
        }
    }

    /// The internal cause behind the message, for the log only.
    fn cause(&self) -> Option<&str> {
        match self {
            Self::PhotoStorage { error, .. }
            | Self::Assignment(error)
            | Self::Clustering(error) => error.cause.as_deref(),
            Self::Store(_) | Self::Task(_) | Self::Recognition(_) | Self::LeaseLost => None,
        }
    }
}

/// Processes every photo of the session still to do, keeping every worker busy; a photo that
/// fails is recorded with its error and the others go on. Then assigns and clusters. A job taken
/// over from a node that died starts with the photos that node had not committed.
async fn process_photos(
    services: &Services,
    job: &mut JobRecord,
    session: i64,
    model: &str,
    holder: &Holder<'_>,
) -> Result<JobEnd, JobFailure> {
    let store = &services.store;
    let mut images = store.unprocessed_images(session).await?;
    largest_first(&mut images);
    let (mut done, total) = starting_progress(job, images.len());
    // Photos done before a restart were processed (the failed ones are among those to do).
    let processed_before = usize::try_from(done).unwrap_or(0);
    let parallel = services.jobs_in_flight();
    // The pool's lanes take turns per user: a flood of requests from someone else waits its
    // turn instead of starving this job, and this job's photos wait for room, never failing.
    let lane = Lane::batch(job.created_by.unwrap_or_default());
    // Why the job stops before its photos are all through: cancelled, or lost to another node.
    // Either way the photos in flight are let finish (their results commit once, whoever
    // commits first), and no new one is started.
    let mut stop = None;
    // Only while the job is still this node's: after an outage longer than a lease, another
    // node may have finished it, and the session's status is that node's.
    if !store
        .mark_session_processing(session, holder.job, holder.owner)
        .await?
    {
        match holder.state(store).await? {
            LeaseState::Lost => return Err(JobFailure::LeaseLost),
            // The session is gone (deleted meanwhile) or the job cancelled: the loop below
            // finds out and ends the job as it does then.
            LeaseState::Cancelled => stop = Some(LeaseState::Cancelled),
            LeaseState::Held => {}
        }
    }
    let (mut errors, mut stats) = (Vec::<JobItemError>::new(), JobStats::default());
    let mut pending = images.into_iter();
    let mut running = tokio::task::JoinSet::new();
    let mut processed = 0usize;
    loop {
        while running.len() < parallel && stop.is_none() {
            let Some(image) = pending.next() else { break };
            match holder.state(store).await? {
                LeaseState::Held => {}
                other => {
                    stop = Some(other);
                    break;
                }
            }
            let (services, model) = (services.clone(), model.to_owned());
            running.spawn(async move {
                let result = process_image(&services, &image, &model, lane).await;
                (image, result)
            });
        }
        let Some(finished) = running.join_next().await else {
            break;
        };
        let (image, result) = finished?;
        match result {
            Ok(Some((faces, timings))) => {
                processed += 1;
                stats.add(faces, &timings);
            }
            Ok(None) => {
                // Another node committed it first (it had this job before this node did).
                processed += 1;
            }
            // A storage failure is not the photo's fault: the job stops, and the photo is
            // tried again by the next run.
            Err(error) if error.kind == ErrorKind::StorageUnavailable => {
                return Err(JobFailure::PhotoStorage {
                    image: image.id,
                    error,
                });
            }
            Err(e) => {
                store
                    .mark_image_failed(image.id, &format!("{}: {}", e.kind, e.message))
                    .await?;
                errors.push(JobItemError {
                    image: image.id,
                    file: image.original_name.clone(),
                    error_type: e.kind,
                    error: e.message,
                });
            }
        }
        done += 1;
        // Kept in memory as well: a run that stops for a storage outage resumes from here even
        // when the outage also lost the save below.
        (job.done, job.total) = (done, total);
        if stop != Some(LeaseState::Lost)
            && !save_progress(store, holder, (done, total), &errors, &stats).await?
        {
            match holder.state(store).await? {
                LeaseState::Held => {}
                other => stop = Some(other),
            }
        }
    }
    match stop {
        Some(LeaseState::Cancelled) => {
            return Ok(JobEnd {
                status: JobStatus::Cancelled,
                error: None,
                session: Some((session, SessionStatus::Open)),
            });
        }
        Some(LeaseState::Lost) => return Err(JobFailure::LeaseLost),
        Some(LeaseState::Held) | None => {}
    }
    // Recognition runs over the whole session, so faces of photos processed earlier are matched
    // against students enrolled since. A node that lost the job leaves it to the new holder.
    if holder.state(store).await? == LeaseState::Lost {
        return Err(JobFailure::LeaseLost);
    }
    recognise(services, session, &mut stats).await?;
    if !save_progress(store, holder, (done, total), &errors, &stats).await?
        && holder.state(store).await? == LeaseState::Lost
    {
        return Err(JobFailure::LeaseLost);
    }
    let (status, session_status, error) = outcome(processed_before + processed, errors.len());
    Ok(JobEnd {
        status,
        error,
        session: Some((session, session_status)),
    })
}

/// Records a job's progress, its per-photo errors and its stats; `false` when nothing was
/// written because the job is no longer this node's running job (cancelled, or taken over).
async fn save_progress(
    store: &Store,
    holder: &Holder<'_>,
    progress: (i64, i64),
    errors: &[JobItemError],
    stats: &JobStats,
) -> Result<bool, StoreError> {
    let errors_json = serde_json::to_string(errors).unwrap_or_else(|_| "[]".into());
    let stats_json = serde_json::to_string(stats).unwrap_or_else(|_| "{}".into());
    store
        .job_progress(
            holder.job,
            holder.owner,
            progress,
            &errors_json,
            &stats_json,
        )
        .await
}

/// Assigns the session's faces and clusters the course's unknown ones, recording both in `stats`.
async fn recognise(
    services: &Services,
    session: i64,
    stats: &mut JobStats,
) -> Result<(), JobFailure> {
    let store = &services.store;
    let session = store
        .get_session(Scope::All, session)
        .await
        .map_err(JobFailure::Recognition)?;
    let course = store
        .get_course(Scope::All, session.course_id)
        .await
        .map_err(JobFailure::Recognition)?;
    stats.assignment = Some(
        assign_session(services, &course, session.id)
            .await
            .map_err(JobFailure::Assignment)?,
    );
    stats.clustering = Some(
        cluster_course(services, &course, false)
            .await
            .map_err(JobFailure::Clustering)?,
    );
    Ok(())
}

/// One photo: detect, align and embed in a worker, which also makes its preview; store the
/// preview and each face's crop under keys of their own (a new run), then commit the faces (with
/// their embeddings) and the preview in one transaction. Returns the number of faces and the
/// timings, or `None` when another node had committed the photo first — whose blobs this run
/// never touches, and this run's are deleted.
async fn process_image(
    services: &Services,
    image: &SessionImage,
    model: &str,
    lane: Lane,
) -> ServiceResult<Option<(usize, Timings)>> {
    let bytes = services.blobs.get(&image.blob_key).await?;
    let PhotoFaces {
        faces,
        timings,
        preview,
        ..
    } = services
        .process_photo_faces(bytes.to_vec(), model, lane)
        .await?;
    let run = blob_keys::new_run();
    let mut written = Vec::new();
    let preview_key = match preview {
        Some(preview) => {
            let key = blob_keys::session_preview(image.id, &run);
            services.blobs.put(&key, preview.into()).await?;
            written.push(key.clone());
            Some(key)
        }
        None => None,
    };
    let mut crops = Vec::with_capacity(faces.len());
    for (index, mut face) in faces.into_iter().enumerate() {
        let key = match face.crop_jpeg.take() {
            Some(jpeg) => {
                let key = blob_keys::session_face(image.id, &run, index);
                if let Err(e) = services.blobs.put(&key, jpeg.into()).await {
                    services.discard_blobs(written).await;
                    return Err(e.into());
                }
                written.push(key.clone());
                Some(key)
            }
            None => None,
        };
        crops.push(new_crop(face, key, model));
    }
    let count = crops.len();
    match services
        .store
        .commit_photo_results(image.id, &crops, preview_key.as_deref())
        .await
    {
        Ok(PhotoCommit::Recorded(_)) => Ok(Some((count, timings))),
        Ok(PhotoCommit::AlreadyProcessed) => {
            services.discard_blobs(written).await;
            Ok(None)
        }
        Err(e) => {
            // Nothing records these blobs (the photo was deleted meanwhile, or storage failed; a
            // later run writes its own): they must not stay behind.
            services.discard_blobs(written).await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attendansee_store::ImageStatus;

    fn job(done: i64, total: i64) -> JobRecord {
        JobRecord {
            id: 1,
            kind: StoredJobKind::Known(JobKind::ProcessSession),
            payload: String::new(),
            status: JobStatus::Running,
            done,
            total,
            error: None,
            errors: "[]".into(),
            stats: "{}".into(),
            course_id: None,
            created_by: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            lease_owner: None,
            lease_expires_at: None,
            attempts: 1,
        }
    }

    #[test]
    fn a_process_payload_is_stored_as_it_always_was_and_reads_back() {
        // `queue_job` finds a job already queued by comparing this text byte for byte, also with
        // jobs queued by the previous version: the layout must not change.
        let payload = JobPayload::ProcessSession {
            session: 7,
            model: "m".into(),
        };
        let (kind, text) = payload.to_record().unwrap();
        assert_eq!(
            (kind, text.as_str()),
            (JobKind::ProcessSession, r#"{"session":7,"model":"m"}"#)
        );
        assert_eq!(JobPayload::from_record(kind, &text).unwrap(), payload);
        assert!(JobPayload::from_record(kind, "{}").is_err());
    }

    #[test]
    fn a_resumed_job_keeps_its_total_and_counts_what_was_done_before() {
        assert_eq!(starting_progress(&job(0, 48), 48), (0, 48));
        // Killed after 38 of 48 (two of them failed, so 12 are still to do).
        assert_eq!(starting_progress(&job(38, 48), 12), (36, 48));
        // More photos than the job knew of: the total grows.
        assert_eq!(starting_progress(&job(5, 10), 12), (0, 12));
    }

    #[test]
    fn a_job_succeeds_only_when_no_photo_failed() {
        assert_eq!(outcome(20, 0).0, JobStatus::Succeeded);
        assert_eq!(outcome(0, 0).0, JobStatus::Succeeded);
        let (status, session, error) = outcome(17, 3);
        assert_eq!(
            (status, session),
            (JobStatus::Partial, SessionStatus::Failed)
        );
        assert!(error.unwrap().starts_with("3 of 20 photos failed"));
        assert_eq!(outcome(0, 4).0, JobStatus::Failed);
    }

    fn image(id: i64, width: i64, height: i64) -> SessionImage {
        SessionImage {
            id,
            session_id: 1,
            blob_key: String::new(),
            sha256: String::new(),
            original_name: None,
            width,
            height,
            status: ImageStatus::Pending,
            error: None,
            created_at: Utc::now(),
            preview_blob_key: None,
        }
    }

    #[test]
    fn photos_are_processed_largest_first_and_in_upload_order_among_equals() {
        let mut images = vec![
            image(1, 640, 480),
            image(2, 3000, 2171),
            image(3, 480, 640),
            image(4, 1024, 1305),
        ];
        largest_first(&mut images);
        let order: Vec<i64> = images.iter().map(|i| i.id).collect();
        assert_eq!(order, [2, 4, 1, 3]);
    }
}
