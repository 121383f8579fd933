//! Enrollment: a student's reference photos. Each photo must show one clear face — the largest;
//! a photo with none, or with two faces of similar size, is refused — and that face's embedding
//! joins the student's prototype set.

use axum::extract::{Multipart, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_pool::Lane;
use attendansee_pool::protocol::DetectedFace;
use attendansee_recognition::OneFace;
use attendansee_store::{NewCrop, NewReference, ReferencePhoto};

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path};
use crate::inference::PhotoFaces;
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
    let student = state.store.get_student(actor.scope(), student_id).await?;
    let course = state
        .store
        .get_course(actor.scope(), student.course_id)
        .await?;
    let (model, _) = state.course_matching(&course);
    state.check_recognizer("model_name", &model)?;
    let mut results = Vec::new();
    for (file, bytes) in image_fields(&mut form).await? {
        results.push(
            match enroll_one(&state, &actor, student_id, &model, &bytes).await {
                Ok(reference) => EnrollResult {
                    file,
                    status: "stored",
                    reference: Some(reference.into()),
                    error_type: None,
                    error: None,
                },
                Err(e) => EnrollResult {
                    file,
                    status: "error",
                    reference: None,
                    error_type: Some(e.error_type),
                    error: Some(e.message),
                },
            },
        );
    }
    let stored = results.iter().filter(|r| r.status == "stored").count();
    Ok(Json(EnrollResponse {
        stored,
        failed: results.len() - stored,
        results,
    }))
}

/// Finds the photo's faces in a worker, keeps the largest, stores the photo and its face.
async fn enroll_one(
    state: &AppState,
    actor: &Actor,
    student_id: i64,
    model: &str,
    bytes: &[u8],
) -> ApiResult<ReferencePhoto> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorType::UnsupportedImage,
            "unsupported image: the file is empty",
        ));
    }
    let PhotoFaces {
        width,
        height,
        faces,
        ..
    } = state
        .detect_and_embed(bytes.to_vec(), model, true, Lane::batch(actor.user.id))
        .await?;
    let face = the_one_face(faces)?;
    let sha256 = crate::hex(&Sha256::digest(bytes));
    let photo_key = format!("references/{student_id}/{sha256}");
    let crop_key = format!("references/{student_id}/{sha256}.face.jpg");
    state.blobs.put(&photo_key, bytes.to_vec().into()).await?;
    // Recorded only when stored: a key without its blob would fail every later re-embedding.
    let crop_blob_key = match face.crop_jpeg {
        Some(jpeg) => {
            state.blobs.put(&crop_key, jpeg.into()).await?;
            Some(crop_key.clone())
        }
        None => None,
    };
    let reference = NewReference {
        blob_key: photo_key.clone(),
        sha256,
        width: i64::from(width),
        height: i64::from(height),
        crop: NewCrop {
            bbox: face.bbox,
            landmarks: face.landmarks,
            score: face.score,
            quality_size: face.bbox[2].min(face.bbox[3]),
            quality_blur: face.blur,
            crop_blob_key,
            embedding: face.embedding.map(|v| (model.to_owned(), v)),
        },
    };
    match state
        .store
        .add_reference_photo(actor.scope(), student_id, &reference)
        .await
    {
        Ok(photo) => Ok(photo),
        Err(e) => {
            // A duplicate shares its keys with the photo already stored: keep those blobs.
            if !matches!(e, attendansee_store::StoreError::Conflict(_)) {
                let _ = state.blobs.delete(&photo_key).await;
                let _ = state.blobs.delete(&crop_key).await;
            }
            Err(e.into())
        }
    }
}

/// The face an enrollment photo is about: the largest, provided no other comes close in size.
pub fn the_one_face(mut faces: Vec<DetectedFace>) -> ApiResult<DetectedFace> {
    let sizes: Vec<f32> = faces.iter().map(|f| f.bbox[2].min(f.bbox[3])).collect();
    match attendansee_recognition::the_one_face(&sizes) {
        OneFace::Found(index) => Ok(faces.swap_remove(index)),
        OneFace::NoFace => Err(ApiError::new(
            ErrorType::NoFaceDetected,
            "No face detected in the photo; use a photo where the student's face is clearly visible",
        )),
        OneFace::Ambiguous {
            faces,
            largest,
            second,
        } => Err(ApiError::new(
            ErrorType::MultipleFaces,
            format!(
                "The photo shows {faces} faces of similar size ({largest:.0} and {second:.0} px); use a photo of the student alone"
            ),
        )),
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
        .store
        .list_reference_photos(actor.scope(), student_id)
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
    let photo = state
        .store
        .delete_reference_photo(actor.scope(), id)
        .await?;
    let _ = state.blobs.delete(&photo.blob_key).await;
    if let Some(key) = photo.crop_blob_key {
        let _ = state.blobs.delete(&key).await;
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
