//! Face crops: listing with filters, one crop, its image and embeddings, and the two routes kept
//! compatible with the service this one replaces (`generate-embedding` and its batch form).

use axum::extract::{OriginalUri, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::Source;
use attendansee_services::embeddings::{CropEmbedding, EmbedStatus};
use attendansee_services::faces::crop_quality;
use attendansee_store::{CropFilter, EmbeddingRecord, FaceCrop};

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path, Query};
use crate::pagination::{PageParams, PagedResponse};

/// A face as drawn on its photo.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceDto {
    pub id: i64,
    /// x, y, width, height in the photo's pixels.
    pub bbox: [f32; 4],
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
}

pub fn face_dto(c: &FaceCrop) -> FaceDto {
    FaceDto {
        id: c.id,
        bbox: c.bbox,
        landmarks: c.landmarks,
        score: c.score,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityDto {
    /// Face size in pixels (the smaller side of the box).
    pub size: Option<f32>,
    /// Sharpness of the aligned face (variance of the Laplacian of its middle; low means blurred).
    pub blur: Option<f32>,
    /// Distance between the eyes, in pixels.
    pub eye_distance: f32,
    /// How far the face is turned: the nose's offset from the middle of the eyes, in half eye
    /// distances (0 frontal, 1 a profile).
    pub yaw: f32,
    /// `too_small`, `blurred` or `profile` when the face is below the calibrated limits: it is
    /// shown but never assigned automatically.
    pub issue: Option<&'static str>,
}

impl QualityDto {
    fn of(c: &FaceCrop) -> Self {
        let (measured, issue) = crop_quality(c);
        QualityDto {
            size: c.quality_size,
            blur: c.quality_blur,
            eye_distance: measured.eye_distance,
            // JSON has no infinity: landmarks that give none are a full profile.
            yaw: measured.yaw.min(9.99),
            issue: issue.map(|r| r.as_str()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CropDto {
    pub id: i64,
    /// The session photo it was found in.
    pub image: Option<i64>,
    pub bbox: [f32; 4],
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
    pub quality: QualityDto,
    /// The student it is assigned to, if any.
    pub student: Option<i64>,
    /// `manual`, `auto` or `cluster`.
    pub assignment_source: Option<&'static str>,
    pub confidence: Option<f32>,
    pub not_a_student: bool,
    /// The cluster of unknown faces it is in.
    pub cluster: Option<i64>,
    /// The last automatic decision about it, with the candidates that explain it.
    pub decision: Option<DecisionDto>,
    pub created_at: DateTime<Utc>,
    /// Models it has embeddings for (in the single-crop view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Vec<EmbeddingDto>>,
}

impl From<FaceCrop> for CropDto {
    fn from(c: FaceCrop) -> Self {
        Self {
            id: c.id,
            image: c.image_id,
            bbox: c.bbox,
            landmarks: c.landmarks,
            score: c.score,
            quality: QualityDto::of(&c),
            student: c.student_id,
            assignment_source: c.assignment_source.map(Source::as_str),
            confidence: c.confidence,
            not_a_student: c.not_a_student,
            cluster: c.cluster_id,
            decision: c.decision.map(|d| DecisionDto {
                model: d.model,
                reason: d.reason.as_str(),
                best: d.best.map(CandidateDto::from),
                runner_up: d.runner_up.map(CandidateDto::from),
            }),
            created_at: c.created_at,
            embeddings: None,
        }
    }
}

/// A student a face was compared with.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateDto {
    pub student: i64,
    /// Cosine similarity to the student's nearest known face.
    pub similarity: f32,
}

impl From<(i64, f32)> for CandidateDto {
    fn from((student, similarity): (i64, f32)) -> Self {
        Self {
            student,
            similarity,
        }
    }
}

/// Why automatic assignment did what it did: `matched` (best ≥ threshold and ahead of the
/// runner-up by the margin), `below_threshold`, `ambiguous` (runner-up too close), `conflict`
/// (its best student went to a likelier face of the same photo), `no_students`, or — never
/// assigned, whatever the similarity — `too_small`, `blurred`, `profile` (the face is below the
/// calibrated quality limits).
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDto {
    pub model: String,
    pub reason: &'static str,
    pub best: Option<CandidateDto>,
    pub runner_up: Option<CandidateDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingDto {
    pub model_name: String,
    pub dimension: usize,
    pub created_at: DateTime<Utc>,
    /// The L2-normalised vector, when asked for with `?vectors=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

fn embedding_dto(e: EmbeddingRecord, with_vector: bool) -> EmbeddingDto {
    EmbeddingDto {
        model_name: e.model_name,
        dimension: e.vector.len(),
        created_at: e.created_at,
        vector: with_vector.then_some(e.vector),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CropQuery {
    /// Only faces assigned to nobody (and not marked "not a student").
    #[serde(default)]
    pub unassigned: bool,
    /// Only faces of this photo.
    pub image: Option<i64>,
    /// Only faces at least this many pixels in size.
    pub min_size: Option<f32>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VectorsQuery {
    /// Include the vectors themselves.
    #[serde(default)]
    pub vectors: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateEmbedding {
    /// Recognizer (default: the course's model).
    #[schema(example = "mobilefacenet")]
    pub model_name: Option<String>,
    /// Recompute even if an embedding for this model exists.
    #[serde(default)]
    pub force_regenerate: bool,
}

/// The answer of the single-crop compatibility route, exactly as the old service gave it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingResult {
    /// `success`, or `exists` when an embedding was kept (no `force_regenerate`).
    pub status: &'static str,
    pub crop_id: i64,
    pub embedding_model: String,
    pub embedding_dimension: usize,
    pub message: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateEmbeddingsBatch {
    /// 1 to 500 crop ids.
    #[schema(min_items = 1, max_items = 500)]
    pub face_crop_ids: Vec<i64>,
    pub model_name: Option<String>,
    #[serde(default)]
    pub force_regenerate: bool,
}

/// One crop's outcome in a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    pub crop_id: i64,
    /// `success`, `exists` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_dimension: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// `success` when no crop failed, `partial` when some did, `error` when all did.
    pub status: &'static str,
    pub model_name: String,
    pub total: usize,
    pub success_count: usize,
    pub failed_count: usize,
    /// Crops that already had an embedding and were kept.
    pub skipped_count: usize,
    pub results: Vec<BatchItem>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session_crops))
        .routes(routes!(get_crop))
        .routes(routes!(crop_image))
        .routes(routes!(crop_embeddings))
        .routes(routes!(generate_embedding))
        .routes(routes!(generate_embeddings_batch))
}

/// The faces found in a session's photos.
#[utoipa::path(get, path = "/api/attendance/sessions/{id}/face-crops/", tag = "faces",
    params(("id" = i64, Path), PageParams, CropQuery),
    responses((status = 200, body = PagedResponse<CropDto>), (status = 404, body = ErrorBody)))]
async fn session_crops(
    State(state): State<AppState>,
    actor: Actor,
    Path(session_id): Path<i64>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
    Query(query): Query<CropQuery>,
) -> ApiResult<Json<PagedResponse<CropDto>>> {
    let page = params.page()?;
    let filter = CropFilter {
        session: None,
        image: query.image,
        unassigned: query.unassigned,
        min_size: query.min_size,
    };
    let crops = state
        .services
        .session_crops(actor.scope(), session_id, filter, page)
        .await?;
    Ok(Json(PagedResponse::new(&uri, page, crops, CropDto::from)))
}

/// One face crop, with the models it has embeddings for.
#[utoipa::path(get, path = "/api/attendance/face-crops/{id}/", tag = "faces", params(("id" = i64, Path)),
    responses((status = 200, body = CropDto), (status = 404, body = ErrorBody)))]
async fn get_crop(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<CropDto>> {
    let crop = state.services.get_crop(actor.scope(), id).await?;
    let embeddings = state
        .services
        .crop_embeddings(actor.scope(), id)
        .await?
        .into_iter()
        .map(|e| embedding_dto(e, false))
        .collect();
    Ok(Json(CropDto {
        embeddings: Some(embeddings),
        ..crop.into()
    }))
}

/// The aligned face as a JPEG.
#[utoipa::path(get, path = "/api/attendance/face-crops/{id}/image/", tag = "faces", params(("id" = i64, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn crop_image(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let bytes = state.services.crop_image(actor.scope(), id).await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

/// A crop's embeddings (metadata; the vectors with `?vectors=true`).
#[utoipa::path(get, path = "/api/attendance/face-crops/{id}/embeddings/", tag = "faces",
    params(("id" = i64, Path), VectorsQuery),
    responses((status = 200, body = Vec<EmbeddingDto>), (status = 404, body = ErrorBody)))]
async fn crop_embeddings(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Query(query): Query<VectorsQuery>,
) -> ApiResult<Json<Vec<EmbeddingDto>>> {
    let embeddings = state.services.crop_embeddings(actor.scope(), id).await?;
    Ok(Json(
        embeddings
            .into_iter()
            .map(|e| embedding_dto(e, query.vectors))
            .collect(),
    ))
}

/// Generate (or keep) one crop's embedding — compatible with the old service.
#[utoipa::path(post, path = "/api/attendance/face-crops/{id}/generate-embedding/", tag = "faces", request_body = GenerateEmbedding,
    params(("id" = i64, Path)),
    responses((status = 200, body = EmbeddingResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn generate_embedding(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<GenerateEmbedding>,
) -> ApiResult<Json<EmbeddingResult>> {
    let (crop, model, done) = state
        .services
        .embed_stored_crop(&actor.user, id, body.model_name, body.force_regenerate)
        .await?;
    let message = match done.status {
        EmbedStatus::Existed => "Embedding already exists",
        EmbedStatus::Generated => "Embedding generated successfully",
    };
    Ok(Json(EmbeddingResult {
        status: status_name(done.status),
        crop_id: crop.id,
        embedding_model: model,
        embedding_dimension: done.dimension,
        message,
    }))
}

/// The old service's word for what was done to a crop.
fn status_name(status: EmbedStatus) -> &'static str {
    match status {
        EmbedStatus::Generated => "success",
        EmbedStatus::Existed => "exists",
    }
}

/// Generate (or keep) embeddings for several crops — compatible with the old service.
#[utoipa::path(post, path = "/api/attendance/face-crops/generate-embeddings-batch/", tag = "faces", request_body = GenerateEmbeddingsBatch,
    responses((status = 200, body = BatchResult), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn generate_embeddings_batch(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<GenerateEmbeddingsBatch>,
) -> ApiResult<Json<BatchResult>> {
    let (model, outcomes) = state
        .services
        .embed_stored_crops(
            &actor.user,
            &body.face_crop_ids,
            body.model_name,
            body.force_regenerate,
        )
        .await?;
    let results: Vec<BatchItem> = body
        .face_crop_ids
        .iter()
        .zip(outcomes)
        .map(|(&crop_id, outcome)| batch_item(crop_id, outcome))
        .collect();
    let count = |status: &str| results.iter().filter(|r| r.status == status).count();
    let (success_count, skipped_count, failed_count) =
        (count("success"), count("exists"), count("error"));
    let status = match failed_count {
        0 => "success",
        n if n == results.len() => "error",
        _ => "partial",
    };
    Ok(Json(BatchResult {
        status,
        model_name: model,
        total: results.len(),
        success_count,
        failed_count,
        skipped_count,
        results,
    }))
}

fn batch_item(
    crop_id: i64,
    outcome: attendansee_services::ServiceResult<CropEmbedding>,
) -> BatchItem {
    match outcome {
        Ok(done) => BatchItem {
            crop_id,
            status: status_name(done.status),
            embedding_dimension: Some(done.dimension),
            error_type: None,
            error: None,
        },
        Err(e) => BatchItem {
            crop_id,
            status: "error",
            embedding_dimension: None,
            error_type: Some(e.kind.into()),
            error: Some(e.message),
        },
    }
}
