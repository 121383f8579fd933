//! Background jobs: queue a session's processing, follow and cancel jobs. The jobs themselves
//! run in the services' job runner.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::jobs::{Job, JobItemError, JobStats};
use attendansee_store::JobStatus;

use crate::AppState;
use crate::auth::Actor;
use crate::corrections::{AssignSummaryDto, ClusterSummaryDto};
use crate::error::{ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path, Query};
use crate::pagination::{PageParams, PagedResponse};

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
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobItemError)]
pub struct JobItemErrorDto {
    /// The photo's id.
    pub image: i64,
    pub file: Option<String>,
    pub error_type: ErrorType,
    pub error: String,
}

impl From<JobItemError> for JobItemErrorDto {
    fn from(e: JobItemError) -> Self {
        Self {
            image: e.image,
            file: e.file,
            error_type: e.error_type.into(),
            error: e.error,
        }
    }
}

/// Where a processing job's time went, summed over its photos (worker-side timings).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobStats)]
pub struct JobStatsDto {
    pub photos: u64,
    pub faces: u64,
    pub decode_ms: f64,
    pub detect_ms: f64,
    pub align_ms: f64,
    pub embed_ms: f64,
    /// What automatic assignment decided once the photos were done.
    pub assignment: Option<AssignSummaryDto>,
    /// The course's clusters of unknown faces afterwards.
    pub clustering: Option<ClusterSummaryDto>,
}

impl From<JobStats> for JobStatsDto {
    fn from(s: JobStats) -> Self {
        Self {
            photos: s.photos,
            faces: s.faces,
            decode_ms: s.decode_ms,
            detect_ms: s.detect_ms,
            align_ms: s.align_ms,
            embed_ms: s.embed_ms,
            assignment: s.assignment.map(Into::into),
            clustering: s.clustering.map(Into::into),
        }
    }
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
    pub errors: Vec<JobItemErrorDto>,
    /// Why the whole job failed, if it did.
    pub error: Option<String>,
    /// The session it processes.
    pub session: Option<i64>,
    /// Photos and faces done, and the time the workers spent per stage.
    pub stats: JobStatsDto,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobDto {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind.name().to_owned(),
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
            errors: j.errors.into_iter().map(Into::into).collect(),
            error: j.error,
            session: j.session,
            stats: j.stats.into(),
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
    let job = state.services.queue_processing(&actor.user, id).await?;
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
    let jobs = state.services.list_jobs(actor.scope(), page).await?;
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
    Ok(Json(
        state.services.get_job(actor.scope(), id).await?.into(),
    ))
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
        state.services.cancel_job(actor.scope(), id).await?.into(),
    ))
}
