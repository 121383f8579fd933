//! Courses: `/api/attendance/courses/`. An instructor owns theirs; an admin sees all.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::courses::{CourseChanges, NewCourse};
use attendansee_store::Course;

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, required};
use crate::pagination::{PageParams, PagedResponse};

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseDto {
    pub id: i64,
    pub name: String,
    pub code: String,
    /// The owning instructor's user id.
    pub owner: i64,
    /// The recognizer this course's faces are embedded with; `null` means the server's default.
    pub embedding_model: Option<String>,
    /// This course's match threshold (cosine similarity); `null` means the model's calibrated one.
    pub match_threshold: Option<f32>,
    /// This course's margin over the runner-up; `null` means the model's.
    pub match_margin: Option<f32>,
    pub created_at: DateTime<Utc>,
}

impl From<Course> for CourseDto {
    fn from(c: Course) -> Self {
        Self {
            id: c.id,
            name: c.name,
            code: c.code,
            owner: c.owner_id,
            embedding_model: c.embedding_model,
            match_threshold: c.match_threshold,
            match_margin: c.match_margin,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCourse {
    #[schema(example = "Introduction to Databases")]
    pub name: String,
    /// Unique among the owner's courses.
    #[schema(example = "CS305")]
    pub code: String,
    /// Admins only: create the course for this instructor (default: the caller).
    pub owner: Option<i64>,
    /// Recognizer for this course (default: the server's, `mobilefacenet`).
    pub embedding_model: Option<String>,
    /// Override of the model's calibrated match threshold (0 < t < 1); see docs/calibration.md.
    pub match_threshold: Option<f32>,
    /// Override of the model's margin over the runner-up (0 ≤ m < 1).
    pub match_margin: Option<f32>,
}

/// For PUT every field is required; for PATCH any subset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCourse {
    pub name: Option<String>,
    pub code: Option<String>,
    /// `null` returns the course to the server's default recognizer.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>)]
    pub embedding_model: Option<Option<String>>,
    /// `null` returns to the model's calibrated threshold.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<f32>)]
    pub match_threshold: Option<Option<f32>>,
    /// `null` returns to the model's margin.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<f32>)]
    pub match_margin: Option<Option<f32>>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_courses, create_course))
        .routes(routes!(
            get_course,
            replace_course,
            patch_course,
            delete_course
        ))
}

/// The courses the caller can see.
#[utoipa::path(get, path = "/api/attendance/courses/", tag = "courses", params(PageParams),
    responses((status = 200, body = PagedResponse<CourseDto>)))]
async fn list_courses(
    State(state): State<AppState>,
    actor: Actor,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PagedResponse<CourseDto>>> {
    let page = params.page()?;
    let courses = state.services.list_courses(actor.scope(), page).await?;
    Ok(Json(PagedResponse::new(
        &uri,
        page,
        courses,
        CourseDto::from,
    )))
}

/// Create a course owned by the caller (or, for admins, by `owner`).
#[utoipa::path(post, path = "/api/attendance/courses/", tag = "courses", request_body = CreateCourse,
    responses((status = 201, body = CourseDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_course(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<CreateCourse>,
) -> ApiResult<(StatusCode, Json<CourseDto>)> {
    let new = NewCourse {
        name: body.name,
        code: body.code,
        owner: body.owner,
        embedding_model: body.embedding_model,
        match_threshold: body.match_threshold,
        match_margin: body.match_margin,
    };
    let course = state.services.create_course(&actor.user, new).await?;
    Ok((StatusCode::CREATED, Json(course.into())))
}

/// One course.
#[utoipa::path(get, path = "/api/attendance/courses/{id}/", tag = "courses", params(("id" = i64, Path)),
    responses((status = 200, body = CourseDto), (status = 404, body = ErrorBody)))]
async fn get_course(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<CourseDto>> {
    Ok(Json(
        state.services.get_course(actor.scope(), id).await?.into(),
    ))
}

/// Replace a course's name and code.
#[utoipa::path(put, path = "/api/attendance/courses/{id}/", tag = "courses", request_body = UpdateCourse, params(("id" = i64, Path)),
    responses((status = 200, body = CourseDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn replace_course(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<UpdateCourse>,
) -> ApiResult<Json<CourseDto>> {
    required("name", body.name.as_ref())?;
    required("code", body.code.as_ref())?;
    update(state, actor, id, body).await
}

/// Change some of a course's fields.
#[utoipa::path(patch, path = "/api/attendance/courses/{id}/", tag = "courses", request_body = UpdateCourse, params(("id" = i64, Path)),
    responses((status = 200, body = CourseDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn patch_course(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<UpdateCourse>,
) -> ApiResult<Json<CourseDto>> {
    update(state, actor, id, body).await
}

async fn update(
    state: AppState,
    actor: Actor,
    id: i64,
    body: UpdateCourse,
) -> ApiResult<Json<CourseDto>> {
    let changes = CourseChanges {
        name: body.name,
        code: body.code,
        embedding_model: body.embedding_model,
        match_threshold: body.match_threshold,
        match_margin: body.match_margin,
    };
    let course = state
        .services
        .update_course(actor.scope(), id, changes)
        .await?;
    Ok(Json(course.into()))
}

/// Delete a course with its students, sessions, photos and attendance. The files go too: photos,
/// reference photos and face crops are erased from storage.
#[utoipa::path(delete, path = "/api/attendance/courses/{id}/", tag = "courses", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_course(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.services.delete_course(actor.scope(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
