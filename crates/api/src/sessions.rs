//! Class sessions (one lecture each): `/api/attendance/sessions/`.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::courses::SessionChanges;
use attendansee_store::{ClassSession, SessionStatus};

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, required};
use crate::pagination::{PageParams, PagedResponse};
use crate::students::CourseFilter;

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatusDto {
    Open,
    Processing,
    Processed,
    Failed,
}

impl From<SessionStatus> for SessionStatusDto {
    fn from(status: SessionStatus) -> Self {
        match status {
            SessionStatus::Open => Self::Open,
            SessionStatus::Processing => Self::Processing,
            SessionStatus::Processed => Self::Processed,
            SessionStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    pub id: i64,
    pub course: i64,
    pub title: String,
    pub held_at: DateTime<Utc>,
    pub status: SessionStatusDto,
    pub created_at: DateTime<Utc>,
}

impl From<ClassSession> for SessionDto {
    fn from(s: ClassSession) -> Self {
        Self {
            id: s.id,
            course: s.course_id,
            title: s.title,
            held_at: s.held_at,
            status: s.status.into(),
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub course: i64,
    #[schema(example = "Week 3 lecture")]
    pub title: String,
    /// RFC 3339 date and time, e.g. `2026-11-25T09:00:00Z`, in the years 1970–9999; no leap
    /// second. Answers give it in UTC.
    pub held_at: DateTime<Utc>,
}

/// For PUT every field is required; for PATCH any subset. A session's course is fixed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    pub title: Option<String>,
    /// As for creating: RFC 3339, years 1970–9999, no leap second.
    pub held_at: Option<DateTime<Utc>>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(
            get_session,
            replace_session,
            patch_session,
            delete_session
        ))
}

/// Sessions the caller can see, most recently held first, optionally of one course.
#[utoipa::path(get, path = "/api/attendance/sessions/", tag = "sessions", params(PageParams, CourseFilter),
    responses((status = 200, body = PagedResponse<SessionDto>)))]
async fn list_sessions(
    State(state): State<AppState>,
    actor: Actor,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
    Query(filter): Query<CourseFilter>,
) -> ApiResult<Json<PagedResponse<SessionDto>>> {
    let page = params.page()?;
    let sessions = state
        .services
        .list_sessions(actor.scope(), filter.course, page)
        .await?;
    Ok(Json(PagedResponse::new(
        &uri,
        page,
        sessions,
        SessionDto::from,
    )))
}

/// Create a session in one of the caller's courses.
#[utoipa::path(post, path = "/api/attendance/sessions/", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_session(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<CreateSession>,
) -> ApiResult<(StatusCode, Json<SessionDto>)> {
    let session = state
        .services
        .create_session(actor.scope(), body.course, &body.title, body.held_at)
        .await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// One session.
#[utoipa::path(get, path = "/api/attendance/sessions/{id}/", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = SessionDto), (status = 404, body = ErrorBody)))]
async fn get_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<SessionDto>> {
    Ok(Json(
        state.services.get_session(actor.scope(), id).await?.into(),
    ))
}

/// Replace a session's title and time.
#[utoipa::path(put, path = "/api/attendance/sessions/{id}/", tag = "sessions", request_body = UpdateSession, params(("id" = i64, Path)),
    responses((status = 200, body = SessionDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<UpdateSession>,
) -> ApiResult<Json<SessionDto>> {
    required("title", body.title.as_ref())?;
    required("held_at", body.held_at.as_ref())?;
    update(state, actor, id, body).await
}

/// Change some of a session's fields.
#[utoipa::path(patch, path = "/api/attendance/sessions/{id}/", tag = "sessions", request_body = UpdateSession, params(("id" = i64, Path)),
    responses((status = 200, body = SessionDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn patch_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<UpdateSession>,
) -> ApiResult<Json<SessionDto>> {
    update(state, actor, id, body).await
}

async fn update(
    state: AppState,
    actor: Actor,
    id: i64,
    body: UpdateSession,
) -> ApiResult<Json<SessionDto>> {
    let changes = SessionChanges {
        title: body.title,
        held_at: body.held_at,
    };
    let session = state
        .services
        .update_session(actor.scope(), id, changes)
        .await?;
    Ok(Json(session.into()))
}

/// Delete a session with its photos, faces and attendance; the photo and face-crop files are
/// erased from storage.
#[utoipa::path(delete, path = "/api/attendance/sessions/{id}/", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.services.delete_session(actor.scope(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
