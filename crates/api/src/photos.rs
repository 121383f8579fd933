//! Session photos: upload (each file validated by a worker, stored, deduplicated by SHA-256),
//! listing with the faces found in them, and the photo file itself.

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_pool::Lane;
use attendansee_pool::protocol::{Job, Output};
use attendansee_store::{CropFilter, ImageInsert, ImageStatus, NewImage, Page, SessionImage};

use crate::AppState;
use crate::auth::Actor;
use crate::crops::{FaceDto, face_dto};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path};
use crate::uploads::UploadedFile;

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
    /// One or more photos (JPEG, PNG or WebP); repeat the field for several.
    #[schema(format = Binary, value_type = Vec<String>)]
    images: Vec<u8>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_images, list_images))
        .routes(routes!(get_image, delete_image))
        .routes(routes!(image_file))
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
    state.store.get_session(actor.scope(), session_id).await?;
    let files = image_fields(&state, &mut form).await?;
    let _turn = state.upload_permit(&files).await?;
    let results = store_all(&state, &actor, session_id, files).await;
    let count = |status: &str| results.iter().filter(|r| r.status == status).count();
    Ok(Json(UploadResponse {
        stored: count("stored"),
        duplicates: count("duplicate"),
        failed: count("error"),
        results,
    }))
}

/// The files of the form's `images` fields (at least one), each streamed to a temporary file.
pub async fn image_fields(state: &AppState, form: &mut Multipart) -> ApiResult<Vec<UploadedFile>> {
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

/// Stores every file, as many at once as the workers can validate, and answers in the files'
/// order. A file identical to an earlier one of the same upload is only looked at once that one
/// is done, so that the first is the one "stored" and the others are its duplicates.
async fn store_all(
    state: &AppState,
    actor: &Actor,
    session_id: i64,
    files: Vec<UploadedFile>,
) -> Vec<UploadResult> {
    let parallel = state.jobs_in_flight();
    let files: Vec<Arc<UploadedFile>> = files.into_iter().map(Arc::new).collect();
    let mut seen = std::collections::HashSet::new();
    let first_of_its_kind: Vec<bool> = files.iter().map(|f| seen.insert(&f.sha256)).collect();
    let mut results: Vec<Option<UploadResult>> = files.iter().map(|_| None).collect();
    for first_pass in [true, false] {
        let mut pending = files
            .iter()
            .enumerate()
            .filter(|(i, _)| first_of_its_kind[*i] == first_pass);
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < parallel {
                let Some((i, upload)) = pending.next() else {
                    break;
                };
                let (state, actor, upload) = (state.clone(), actor.clone(), upload.clone());
                running.spawn(async move {
                    let stored = store_one(&state, &actor, session_id, &upload)
                        .await
                        .unwrap_or_else(|e| UploadResult::failed(upload.name.clone(), e));
                    (i, stored)
                });
            }
            let Some(finished) = running.join_next().await else {
                break;
            };
            // A task that panicked leaves its file's slot empty; it is reported below.
            if let Ok((i, stored)) = finished {
                results[i] = Some(stored);
            }
        }
    }
    files
        .iter()
        .zip(results)
        .map(|(upload, result)| {
            result.unwrap_or_else(|| {
                let e = ApiError::new(
                    ErrorType::Internal,
                    "the upload of this file failed unexpectedly",
                );
                UploadResult::failed(upload.name.clone(), e)
            })
        })
        .collect()
}

impl UploadResult {
    /// A file's result when it could not be stored.
    fn failed(file: Option<String>, e: ApiError) -> Self {
        Self {
            file,
            status: "error",
            image: None,
            error_type: Some(e.error_type),
            error: Some(e.message),
        }
    }
}

/// Validates one file in a worker, moves it into blob storage, then records it; nothing is
/// recorded without its bytes, and bytes whose record fails are removed again.
async fn store_one(
    state: &AppState,
    actor: &Actor,
    session_id: i64,
    upload: &UploadedFile,
) -> ApiResult<UploadResult> {
    upload.require_content()?;
    let (file, sha256) = (upload.name.clone(), upload.sha256.clone());
    if let Some(existing) = state.store.find_session_image(session_id, &sha256).await? {
        return Ok(UploadResult {
            file,
            status: "duplicate",
            image: Some(existing.into()),
            error_type: None,
            error: None,
        });
    }
    let image = upload.read().await?;
    let (output, _) = state
        .pool()?
        .submit(Job::Validate { image }, Lane::batch(actor.user.id))
        .await?;
    let Output::ImageInfo { width, height } = output else {
        return Err(ApiError::internal(
            "worker answered a validate job with another kind of output",
        ));
    };
    let blob_key = format!("images/{session_id}/{sha256}");
    state.blobs.put_file(&blob_key, upload.path()).await?;
    let new = NewImage {
        blob_key: blob_key.clone(),
        sha256,
        original_name: file.clone(),
        width: i64::from(width),
        height: i64::from(height),
    };
    match state
        .store
        .add_session_image(actor.scope(), session_id, &new)
        .await
    {
        Ok(ImageInsert::Stored(image)) => Ok(UploadResult {
            file,
            status: "stored",
            image: Some(image.into()),
            error_type: None,
            error: None,
        }),
        Ok(ImageInsert::Duplicate(image)) => Ok(UploadResult {
            file,
            status: "duplicate",
            image: Some(image.into()),
            error_type: None,
            error: None,
        }),
        Err(e) => {
            let _ = state.blobs.delete(&blob_key).await;
            Err(e.into())
        }
    }
}

/// A session's photos, each with the faces found in it.
#[utoipa::path(get, path = "/api/attendance/sessions/{id}/images/", tag = "photos", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ImageDto>), (status = 404, body = ErrorBody)))]
async fn list_images(
    State(state): State<AppState>,
    actor: Actor,
    Path(session_id): Path<i64>,
) -> ApiResult<Json<Vec<ImageDto>>> {
    let images = state
        .store
        .list_session_images(actor.scope(), session_id)
        .await?;
    let filter = CropFilter {
        session: Some(session_id),
        ..Default::default()
    };
    let crops = state
        .store
        .list_crops(actor.scope(), &filter, Page::ALL)
        .await?
        .items;
    Ok(Json(
        images
            .into_iter()
            .map(|image| {
                let id = image.id;
                let faces = crops
                    .iter()
                    .filter(|c| c.image_id == Some(id))
                    .map(face_dto)
                    .collect();
                ImageDto {
                    faces: Some(faces),
                    ..image.into()
                }
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
        state
            .store
            .get_session_image(actor.scope(), id)
            .await?
            .into(),
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
    let blobs = state.store.delete_session_image(actor.scope(), id).await?;
    state.delete_blobs(blobs).await;
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
    let image = state.store.get_session_image(actor.scope(), id).await?;
    let bytes = state.blobs.get(&image.blob_key).await?;
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
        _ => "application/octet-stream",
    }
}
