//! Session photos: upload (each file validated by a worker, stored, deduplicated by SHA-256),
//! listing with the faces found in them, and the photo file itself.

use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::UploadStatus;
use attendansee_services::photos::UploadOutcome;
use attendansee_services::uploads::Upload;
use attendansee_store::{ImageStatus, SessionImage};

use crate::AppState;
use crate::auth::Actor;
use crate::crops::{FaceDto, face_dto};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path};

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatusDto {
    Pending,
    Processed,
    Failed,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageDto {
    pub id: i64,
    pub session: i64,
    pub original_name: Option<String>,
    pub sha256: String,
    pub width: i64,
    pub height: i64,
    /// `pending` until processed; `failed` with `error` when processing it failed.
    pub status: ImageStatusDto,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The faces found (after processing), boxes ready for drawing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<Vec<FaceDto>>,
    /// With the faces, when some are too poor to recognise: what is wrong and what to do about
    /// it, e.g. "8 faces too small to recognise: take the photo closer".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_hint: Option<String>,
}

impl From<SessionImage> for ImageDto {
    fn from(i: SessionImage) -> Self {
        Self {
            id: i.id,
            session: i.session_id,
            original_name: i.original_name,
            sha256: i.sha256,
            width: i.width,
            height: i.height,
            status: match i.status {
                ImageStatus::Pending => ImageStatusDto::Pending,
                ImageStatus::Processed => ImageStatusDto::Processed,
                ImageStatus::Failed => ImageStatusDto::Failed,
            },
            error: i.error,
            created_at: i.created_at,
            faces: None,
            quality_hint: None,
        }
    }
}

/// What became of one uploaded file.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResult {
    /// The file name as sent.
    pub file: Option<String>,
    /// `stored`, `duplicate` (the same bytes are already in this session) or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    pub stored: usize,
    pub duplicates: usize,
    pub failed: usize,
    pub results: Vec<UploadResult>,
}

/// The multipart form, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// One or more photos (JPEG, PNG, WebP or HEIC); repeat the field for several.
    #[schema(format = Binary, value_type = Vec<String>)]
    images: Vec<u8>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_images, list_images))
        .routes(routes!(get_image, delete_image))
        .routes(routes!(image_file))
        .routes(routes!(image_preview))
}

/// Upload photos to a session. Each file gets its own result; a bad file does not stop the others.
#[utoipa::path(post, path = "/api/attendance/sessions/{id}/images/", tag = "photos", params(("id" = i64, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = UploadResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn upload_images(
    State(state): State<AppState>,
    actor: Actor,
    Path(session_id): Path<i64>,
    mut form: Multipart,
) -> ApiResult<Json<UploadResponse>> {
    // Checked before the body is read: a wrong session is refused without storing anything.
    state
        .services
        .get_session(actor.scope(), session_id)
        .await?;
    let files = image_fields(&state, &mut form).await?;
    let _turn = state.upload_permit(&files).await?;
    let outcomes = state
        .services
        .upload_photos(&actor.user, session_id, files)
        .await?;
    let count = |status: UploadStatus| outcomes.iter().filter(|o| o.status == status).count();
    Ok(Json(UploadResponse {
        stored: count(UploadStatus::Stored),
        duplicates: count(UploadStatus::Duplicate),
        failed: count(UploadStatus::Failed),
        results: outcomes.into_iter().map(UploadResult::from).collect(),
    }))
}

impl From<UploadOutcome> for UploadResult {
    fn from(o: UploadOutcome) -> Self {
        Self {
            file: o.file,
            status: o.status.as_str(),
            image: o.image.map(Into::into),
            error_type: o.error.as_ref().map(|e| e.kind.into()),
            error: o.error.map(|e| e.message),
        }
    }
}

/// The files of the form's `images` fields (at least one), each streamed to a temporary file.
pub async fn image_fields(state: &AppState, form: &mut Multipart) -> ApiResult<Vec<Upload>> {
    let mut files = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(crate::embed::multipart_error)?
    {
        if field.name() != Some("images") {
            continue;
        }
        files.push(state.save_field(field).await?);
    }
    if files.is_empty() {
        return Err(ApiError::invalid_field(
            "images",
            "send the photos as multipart fields named `images`",
        ));
    }
    Ok(files)
}

/// A session's photos, each with the faces found in it.
#[utoipa::path(get, path = "/api/attendance/sessions/{id}/images/", tag = "photos", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ImageDto>), (status = 404, body = ErrorBody)))]
async fn list_images(
    State(state): State<AppState>,
    actor: Actor,
    Path(session_id): Path<i64>,
) -> ApiResult<Json<Vec<ImageDto>>> {
    let photos = state
        .services
        .session_photos(actor.scope(), session_id)
        .await?;
    Ok(Json(
        photos
            .into_iter()
            .map(|p| ImageDto {
                faces: Some(p.faces.iter().map(face_dto).collect()),
                quality_hint: p.quality_hint,
                ..p.image.into()
            })
            .collect(),
    ))
}

/// One photo's record.
#[utoipa::path(get, path = "/api/attendance/images/{id}/", tag = "photos", params(("id" = i64, Path)),
    responses((status = 200, body = ImageDto), (status = 404, body = ErrorBody)))]
async fn get_image(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<ImageDto>> {
    Ok(Json(
        state.services.get_photo(actor.scope(), id).await?.into(),
    ))
}

/// Delete a photo with the faces found in it, their embeddings and decisions; the photo and
/// face-crop files are erased from storage. The session's attendance follows (it is derived).
#[utoipa::path(delete, path = "/api/attendance/images/{id}/", tag = "photos", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_image(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<axum::http::StatusCode> {
    state.services.delete_photo(actor.scope(), id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The photo as uploaded.
#[utoipa::path(get, path = "/api/attendance/images/{id}/file/", tag = "photos", params(("id" = i64, Path)),
    responses((status = 200, content_type = "image/*", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn image_file(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let bytes = state.services.photo_file(actor.scope(), id).await?;
    Ok(([(header::CONTENT_TYPE, sniff_content_type(&bytes))], bytes).into_response())
}

/// The photo to show: a JPEG whose long side is at most 1600 px, made when the photo was
/// processed. Until then (or when processing failed) the photo as uploaded.
#[utoipa::path(get, path = "/api/attendance/images/{id}/preview/", tag = "photos", params(("id" = i64, Path)),
    responses((status = 200, content_type = "image/*", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn image_preview(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let bytes = state.services.photo_preview(actor.scope(), id).await?;
    Ok(([(header::CONTENT_TYPE, sniff_content_type(&bytes))], bytes).into_response())
}

/// The content type from the first bytes (the server never decodes an upload; it only looks).
pub fn sniff_content_type(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => "image/webp",
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] => heif_content_type(brand),
        _ => "application/octet-stream",
    }
}

/// The content type an ISO-BMFF file's major brand (after `ftyp`) names among the photos
/// workers decode: HEIC as iPhones save it (`heic`; `heix` 10-bit, `heim`/`heis` multi-layer),
/// or any HEIF image (`mif1`). Others (videos, AVIF) are plain bytes.
fn heif_content_type(brand: &[u8]) -> &'static str {
    match brand.get(..4) {
        Some(b"heic" | b"heix" | b"heim" | b"heis") => "image/heic",
        Some(b"mif1") => "image/heif",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_types_are_sniffed_from_their_first_bytes() {
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(sniff_content_type(heic), "image/heic");
        assert_eq!(
            sniff_content_type(b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic"),
            "image/heif"
        );
        for other in [
            &b"\0\0\0\x18ftypavif\0\0\0\0mif1miaf"[..],
            b"\0\0\0\x18ftypisom\0\0\0\0mp41",
            b"\0\0\0\x18ftyp",
            b"GIF89a",
        ] {
            assert_eq!(sniff_content_type(other), "application/octet-stream");
        }
        assert_eq!(sniff_content_type(b"\xFF\xD8\xFF\xE0"), "image/jpeg");
    }
}
