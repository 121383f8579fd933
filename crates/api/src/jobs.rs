//! Background jobs: processing a session's photos is one. Routes to follow and cancel them, and
//! the runner that executes them (one at a time; each photo is itself a job for the worker pool).

use std::time::Duration;

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_pool::Lane;
use attendansee_pool::protocol::Timings;
use attendansee_store::{JobRecord, JobStatus, NewCrop, Scope, SessionImage, SessionStatus, Store};

use crate::AppState;
use crate::auth::Actor;
use crate::crops::crop_blob_key;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path, Query};
use crate::inference::PhotoFaces;
use crate::pagination::{PageParams, PagedResponse};
use crate::recognition::{AssignSummary, ClusterSummary, assign_session, cluster_course};

pub const PROCESS_SESSION: &str = "process_session";

/// What a `process_session` job works on.
#[derive(Debug, Serialize, Deserialize)]
struct ProcessPayload {
    session: i64,
    model: String,
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatusDto {
    Queued,
    Running,
    Succeeded,
    /// Finished, but some photos failed (`errors` lists them); the others were processed.
    Partial,
    Failed,
    Cancelled,
}

/// One item that failed inside a job (e.g. a photo), with why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobItemError {
    /// The photo's id.
    pub image: i64,
    pub file: Option<String>,
    pub error_type: String,
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobDto {
    pub id: i64,
    pub kind: String,
    pub status: JobStatusDto,
    /// Items done so far, of `total`.
    pub done: i64,
    pub total: i64,
    /// Items that failed (the job still goes on with the others).
    pub errors: Vec<JobItemError>,
    /// Why the whole job failed, if it did.
    pub error: Option<String>,
    /// The session it processes.
    pub session: Option<i64>,
    /// Photos and faces done, and the time the workers spent per stage.
    pub stats: JobStats,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for JobDto {
    fn from(j: JobRecord) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            status: match j.status {
                JobStatus::Queued => JobStatusDto::Queued,
                JobStatus::Running => JobStatusDto::Running,
                JobStatus::Succeeded => JobStatusDto::Succeeded,
                JobStatus::Partial => JobStatusDto::Partial,
                JobStatus::Failed => JobStatusDto::Failed,
                JobStatus::Cancelled => JobStatusDto::Cancelled,
            },
            done: j.done,
            total: j.total,
            errors: serde_json::from_str(&j.errors).unwrap_or_default(),
            error: j.error,
            session: serde_json::from_str::<ProcessPayload>(&j.payload)
                .ok()
                .map(|p| p.session),
            stats: serde_json::from_str(&j.stats).unwrap_or_default(),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobEnvelope {
    pub job: JobDto,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(process_session))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

/// Detect, crop and embed the faces of every photo of the session not yet processed (or failed
/// before). Answers at once with the job; follow it at `/api/attendance/jobs/{id}/`. A job
/// already queued or running for the session is returned instead of a second one.
#[utoipa::path(post, path = "/api/attendance/sessions/{id}/process/", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 202, body = JobEnvelope), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn process_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<JobEnvelope>)> {
    let session = state.store.get_session(actor.scope(), id).await?;
    let course = state
        .store
        .get_course(actor.scope(), session.course_id)
        .await?;
    let model = state.course_model(&course);
    state.check_recognizer("model_name", &model)?;
    state.pool()?;
    let pending = state.store.unprocessed_images(id).await?.len() as i64;
    let payload = serde_json::to_string(&ProcessPayload { session: id, model })
        .map_err(ApiError::internal)?;
    let (job, _) = state
        .store
        .queue_job(PROCESS_SESSION, &payload, course.id, actor.user.id, pending)
        .await?;
    state.jobs_queued.notify_one();
    Ok((StatusCode::ACCEPTED, Json(JobEnvelope { job: job.into() })))
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/api/attendance/jobs/", tag = "jobs", params(PageParams),
    responses((status = 200, body = PagedResponse<JobDto>)))]
async fn list_jobs(
    State(state): State<AppState>,
    actor: Actor,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PagedResponse<JobDto>>> {
    let page = params.page()?;
    let jobs = state.store.list_jobs(actor.scope(), page).await?;
    Ok(Json(PagedResponse::new(&uri, page, jobs, JobDto::from)))
}

/// A job's status, progress and per-item errors.
#[utoipa::path(get, path = "/api/attendance/jobs/{id}/", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobDto), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobDto>> {
    Ok(Json(state.store.get_job(actor.scope(), id).await?.into()))
}

/// Cancel a queued or running job; photos already processed stay processed.
#[utoipa::path(post, path = "/api/attendance/jobs/{id}/cancel/", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobDto>> {
    Ok(Json(
        state.store.cancel_job(actor.scope(), id).await?.into(),
    ))
}

/// Runs queued jobs one after the other, for the life of the server. Jobs left running by a
/// previous process were queued again at start (see `Store::requeue_interrupted_jobs`).
pub async fn run_jobs(state: AppState) {
    loop {
        match state.store.claim_job().await {
            Ok(Some(job)) => {
                let id = job.id;
                tracing::info!(job = id, kind = %job.kind, "job started");
                let end = match job.kind.as_str() {
                    PROCESS_SESSION => process(&state, &job).await,
                    other => JobEnd::failed(None, format!("unknown job kind '{other}'")),
                };
                tracing::info!(
                    job = id,
                    status = ?end.status,
                    error = end.error.as_deref().unwrap_or(""),
                    "job finished"
                );
                record_end(&state.store, id, &end).await;
            }
            Ok(None) => {
                // Woken when a job is queued; the timeout also catches jobs queued by another process.
                let _ = tokio::time::timeout(Duration::from_secs(2), state.jobs_queued.notified())
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot claim a job; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
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
/// job whose end cannot be saved (a full disk) must not stay `running` once storage is back.
async fn record_end(store: &Store, id: i64, end: &JobEnd) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let saved = async {
            if let Some((session, status)) = end.session {
                store.set_session_status(session, status).await?;
            }
            store.finish_job(id, end.status, end.error.as_deref()).await
        };
        match saved.await {
            Ok(()) => return,
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

/// Where a processing job's time went, summed over its photos (worker-side timings).
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
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

/// Processes every photo of the session still to do, keeping every worker busy; a photo that
/// fails is recorded with its error and the others go on.
async fn process(state: &AppState, job: &JobRecord) -> JobEnd {
    let payload: ProcessPayload = match serde_json::from_str(&job.payload) {
        Ok(payload) => payload,
        Err(e) => return JobEnd::failed(None, format!("bad payload: {e}")),
    };
    let session = payload.session;
    match process_photos(state, job, &payload).await {
        Ok(end) => end,
        Err(e) => JobEnd::failed(Some(session), e.to_string()),
    }
}

/// Why a job stopped before its end.
#[derive(Debug, thiserror::Error)]
enum JobFailure {
    #[error("storage failed: {0}")]
    Store(#[from] attendansee_store::StoreError),
    #[error("a photo's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Recognition failed, or storage failed while a photo was stored.
    #[error("{0}")]
    Stopped(String),
}

async fn process_photos(
    state: &AppState,
    job: &JobRecord,
    payload: &ProcessPayload,
) -> Result<JobEnd, JobFailure> {
    let store = &state.store;
    let mut images = store.unprocessed_images(payload.session).await?;
    largest_first(&mut images);
    let (mut done, total) = starting_progress(job, images.len());
    // Photos done before a restart were processed (the failed ones are among those to do).
    let processed_before = usize::try_from(done).unwrap_or(0);
    let parallel = state.jobs_in_flight();
    // The pool's lanes take turns per user: a flood of requests from someone else waits its
    // turn instead of starving this job, and this job's photos wait for room, never failing.
    let lane = Lane::batch(job.created_by.unwrap_or_default());
    store
        .set_session_status(payload.session, SessionStatus::Processing)
        .await?;
    let (mut errors, mut stats) = (Vec::<JobItemError>::new(), JobStats::default());
    let mut pending = images.into_iter();
    let mut running = tokio::task::JoinSet::new();
    let mut cancelled = false;
    let mut processed = 0usize;
    loop {
        while running.len() < parallel && !cancelled {
            let Some(image) = pending.next() else { break };
            if store.job_status(job.id).await? == JobStatus::Cancelled {
                cancelled = true;
                break;
            }
            let (state, model) = (state.clone(), payload.model.clone());
            running.spawn(async move {
                let result = process_image(&state, &image, &model, lane).await;
                (image, result)
            });
        }
        let Some(finished) = running.join_next().await else {
            break;
        };
        let (image, result) = finished?;
        match result {
            Ok((faces, timings)) => {
                processed += 1;
                stats.add(faces, &timings);
            }
            Err(e) => {
                // A storage failure is not the photo's fault: the job stops, and the photo is
                // tried again by the next run.
                if e.error_type == ErrorType::StorageUnavailable {
                    return Err(JobFailure::Stopped(format!(
                        "storage failed while processing photo {}: {}",
                        image.id, e.message
                    )));
                }
                store
                    .mark_image_failed(image.id, &format!("{}: {}", e.error_type.name(), e.message))
                    .await?;
                errors.push(JobItemError {
                    image: image.id,
                    file: image.original_name.clone(),
                    error_type: e.error_type.name().to_owned(),
                    error: e.message,
                });
            }
        }
        done += 1;
        save_progress(store, job.id, (done, total), &errors, &stats).await?;
    }
    if cancelled {
        return Ok(JobEnd {
            status: JobStatus::Cancelled,
            error: None,
            session: Some((payload.session, SessionStatus::Open)),
        });
    }
    // Recognition runs over the whole session, so faces of photos processed earlier are matched
    // against students enrolled since.
    recognise(state, payload.session, &mut stats)
        .await
        .map_err(JobFailure::Stopped)?;
    save_progress(store, job.id, (done, total), &errors, &stats).await?;
    let (status, session_status, error) = outcome(processed_before + processed, errors.len());
    Ok(JobEnd {
        status,
        error,
        session: Some((payload.session, session_status)),
    })
}

/// Records a job's progress, its per-photo errors and its stats.
async fn save_progress(
    store: &Store,
    job: i64,
    (done, total): (i64, i64),
    errors: &[JobItemError],
    stats: &JobStats,
) -> Result<(), attendansee_store::StoreError> {
    let errors_json = serde_json::to_string(errors).unwrap_or_else(|_| "[]".into());
    let stats_json = serde_json::to_string(stats).unwrap_or_else(|_| "{}".into());
    store
        .job_progress(job, done, total, &errors_json, &stats_json)
        .await
}

/// Assigns the session's faces and clusters the course's unknown ones, recording both in `stats`.
async fn recognise(state: &AppState, session: i64, stats: &mut JobStats) -> Result<(), String> {
    let store = &state.store;
    let session = store
        .get_session(Scope::All, session)
        .await
        .map_err(|e| e.to_string())?;
    let course = store
        .get_course(Scope::All, session.course_id)
        .await
        .map_err(|e| e.to_string())?;
    stats.assignment = Some(
        assign_session(state, &course, session.id)
            .await
            .map_err(|e| format!("assignment failed: {}", e.message))?,
    );
    stats.clustering = Some(
        cluster_course(state, &course, false)
            .await
            .map_err(|e| format!("clustering failed: {}", e.message))?,
    );
    Ok(())
}

/// One photo: detect, align and embed in a worker; store each face's crop, then record them all
/// (with their embeddings) in one transaction. Returns the number of faces and the timings.
async fn process_image(
    state: &AppState,
    image: &SessionImage,
    model: &str,
    lane: Lane,
) -> ApiResult<(usize, Timings)> {
    let bytes = state.blobs.get(&image.blob_key).await?;
    let PhotoFaces { faces, timings, .. } = state
        .detect_and_embed(bytes.to_vec(), model, true, lane)
        .await?;
    let mut crops = Vec::with_capacity(faces.len());
    for (index, face) in faces.into_iter().enumerate() {
        let key = match face.crop_jpeg {
            Some(jpeg) => {
                let key = crop_blob_key(image.id, index);
                state.blobs.put(&key, jpeg.into()).await?;
                Some(key)
            }
            None => None,
        };
        crops.push(NewCrop {
            bbox: face.bbox,
            landmarks: face.landmarks,
            score: face.score,
            quality_size: face.bbox[2].min(face.bbox[3]),
            quality_blur: face.blur,
            crop_blob_key: key,
            embedding: face.embedding.map(|v| (model.to_owned(), v)),
        });
    }
    let count = crops.len();
    if let Err(e) = state.store.record_image_faces(image.id, &crops).await {
        // Nothing records these crops (the photo was deleted meanwhile, or storage failed; a
        // later run writes them again): their files must not stay behind.
        let keys = crops.into_iter().filter_map(|c| c.crop_blob_key).collect();
        state.delete_blobs(keys).await;
        return Err(e.into());
    }
    Ok((count, timings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use attendansee_store::ImageStatus;

    fn job(done: i64, total: i64) -> JobRecord {
        JobRecord {
            id: 1,
            kind: PROCESS_SESSION.into(),
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
        }
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
