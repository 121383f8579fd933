//! Students of a course: `/api/attendance/students/`. Visible to whoever sees the course.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::courses::StudentChanges;
use attendansee_store::Student;

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, nullable, required};
use crate::pagination::{PageParams, PagedResponse};

#[derive(Debug, Serialize, ToSchema)]
pub struct StudentDto {
    pub id: i64,
    pub course: i64,
    pub name: String,
    /// The institution's student number; unique within the course.
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Student> for StudentDto {
    fn from(s: Student) -> Self {
        Self {
            id: s.id,
            course: s.course_id,
            name: s.name,
            external_id: s.external_id,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStudent {
    pub course: i64,
    pub name: String,
    pub external_id: Option<String>,
}

/// For PUT `name` is required and a missing `external_id` clears it; for PATCH any subset.
/// A student's course is fixed at creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStudent {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CourseFilter {
    /// Only this course's objects.
    pub course: Option<i64>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_students, create_student))
        .routes(routes!(
            get_student,
            replace_student,
            patch_student,
            delete_student
        ))
}

/// Students the caller can see, optionally of one course.
#[utoipa::path(get, path = "/api/attendance/students/", tag = "students", params(PageParams, CourseFilter),
    responses((status = 200, body = PagedResponse<StudentDto>)))]
async fn list_students(
    State(state): State<AppState>,
    actor: Actor,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
    Query(filter): Query<CourseFilter>,
) -> ApiResult<Json<PagedResponse<StudentDto>>> {
    let page = params.page()?;
    let students = state
        .services
        .list_students(actor.scope(), filter.course, page)
        .await?;
    Ok(Json(PagedResponse::new(
        &uri,
        page,
        students,
        StudentDto::from,
    )))
}

/// Add a student to one of the caller's courses.
#[utoipa::path(post, path = "/api/attendance/students/", tag = "students", request_body = CreateStudent,
    responses((status = 201, body = StudentDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_student(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<CreateStudent>,
) -> ApiResult<(StatusCode, Json<StudentDto>)> {
    let student = state
        .services
        .create_student(
            actor.scope(),
            body.course,
            &body.name,
            body.external_id.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(student.into())))
}

/// One student.
#[utoipa::path(get, path = "/api/attendance/students/{id}/", tag = "students", params(("id" = i64, Path)),
    responses((status = 200, body = StudentDto), (status = 404, body = ErrorBody)))]
async fn get_student(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<StudentDto>> {
    Ok(Json(
        state.services.get_student(actor.scope(), id).await?.into(),
    ))
}

/// Replace a student's name and external id.
#[utoipa::path(put, path = "/api/attendance/students/{id}/", tag = "students", request_body = UpdateStudent, params(("id" = i64, Path)),
    responses((status = 200, body = StudentDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn replace_student(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(mut body): Json<UpdateStudent>,
) -> ApiResult<Json<StudentDto>> {
    required("name", body.name.as_ref())?;
    body.external_id = Some(body.external_id.flatten());
    update(state, actor, id, body).await
}

/// Change some of a student's fields.
#[utoipa::path(patch, path = "/api/attendance/students/{id}/", tag = "students", request_body = UpdateStudent, params(("id" = i64, Path)),
    responses((status = 200, body = StudentDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn patch_student(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<UpdateStudent>,
) -> ApiResult<Json<StudentDto>> {
    update(state, actor, id, body).await
}

async fn update(
    state: AppState,
    actor: Actor,
    id: i64,
    body: UpdateStudent,
) -> ApiResult<Json<StudentDto>> {
    let changes = StudentChanges {
        name: body.name,
        external_id: body.external_id,
    };
    let student = state
        .services
        .update_student(actor.scope(), id, changes)
        .await?;
    Ok(Json(student.into()))
}

/// Remove a student with their reference photos (erased from storage with their face crops);
/// their faces in session photos become unassigned.
#[utoipa::path(delete, path = "/api/attendance/students/{id}/", tag = "students", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_student(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.services.delete_student(actor.scope(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
