//! Enrollment: a student's reference photos. Each photo must show one clear face — the largest;
//! a photo with none, or with two faces of similar size, is refused — and that face's embedding
//! joins the student's prototype set.

use axum::extract::{Multipart, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::UploadStatus;
use attendansee_services::enrollment::EnrollOutcome;
use attendansee_store::ReferencePhoto;

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path};
use crate::photos::image_fields;

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferenceDto {
    pub id: i64,
    pub student: i64,
    pub sha256: String,
    pub width: i64,
    pub height: i64,
    /// The face used: see `/api/attendance/face-crops/{face}/` and its `image/`.
    pub face: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<ReferencePhoto> for ReferenceDto {
    fn from(r: ReferencePhoto) -> Self {
        Self {
            id: r.id,
            student: r.student_id,
            sha256: r.sha256,
            width: r.width,
            height: r.height,
            face: r.crop_id,
            created_at: r.created_at,
        }
    }
}

/// What became of one enrollment photo.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollResult {
    pub file: Option<String>,
    /// `stored` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollResponse {
    pub stored: usize,
    pub failed: usize,
    pub results: Vec<EnrollResult>,
}

/// The multipart form, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
struct EnrollForm {
    /// One or more photos of the student alone (JPEG, PNG or WebP); repeat the field for several.
    #[schema(format = Binary, value_type = Vec<String>)]
    images: Vec<u8>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_references, list_references))
        .routes(routes!(delete_reference))
}

/// Enroll reference photos of a student. Each file gets its own result; a refused photo does
/// not stop the others. Run `POST /api/attendance/sessions/{id}/assign/` afterwards to match
/// sessions already processed against the new references.
#[utoipa::path(post, path = "/api/attendance/students/{id}/references/", tag = "recognition",
    params(("id" = i64, Path)),
    request_body(content = EnrollForm, content_type = "multipart/form-data"),
    responses((status = 200, body = EnrollResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn add_references(
    State(state): State<AppState>,
    actor: Actor,
    Path(student_id): Path<i64>,
    mut form: Multipart,
) -> ApiResult<Json<EnrollResponse>> {
    let model = state
        .services
        .enrollment_model(&actor.user, student_id)
        .await?;
    let uploads = image_fields(&state, &mut form).await?;
    let _turn = state.upload_permit(&uploads).await?;
    let outcomes = state
        .services
        .enroll(&actor.user, student_id, &model, uploads)
        .await?;
    let stored = outcomes
        .iter()
        .filter(|o| o.status == UploadStatus::Stored)
        .count();
    Ok(Json(EnrollResponse {
        stored,
        failed: outcomes.len() - stored,
        results: outcomes.into_iter().map(EnrollResult::from).collect(),
    }))
}

impl From<EnrollOutcome> for EnrollResult {
    fn from(o: EnrollOutcome) -> Self {
        Self {
            file: o.file,
            status: o.status.as_str(),
            reference: o.reference.map(Into::into),
            error_type: o.error.as_ref().map(|e| e.kind.into()),
            error: o.error.map(|e| e.message),
        }
    }
}

/// A student's reference photos.
#[utoipa::path(get, path = "/api/attendance/students/{id}/references/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ReferenceDto>), (status = 404, body = ErrorBody)))]
async fn list_references(
    State(state): State<AppState>,
    actor: Actor,
    Path(student_id): Path<i64>,
) -> ApiResult<Json<Vec<ReferenceDto>>> {
    let photos = state
        .services
        .reference_photos(actor.scope(), student_id)
        .await?;
    Ok(Json(photos.into_iter().map(ReferenceDto::from).collect()))
}

/// Remove a reference photo with its face and embeddings.
#[utoipa::path(delete, path = "/api/attendance/references/{id}/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_reference(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<axum::http::StatusCode> {
    state
        .services
        .delete_reference_photo(actor.scope(), id)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
