//! `POST /api/attendance/embed/`: the API twin of `attendansee embed`, and the route the pool is
//! tested and debugged through. The image goes to a worker; the server never decodes it.

use axum::extract::{Multipart, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_pool::protocol::Timings;
use attendansee_services::PhotoFaces;

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorType};
use crate::extract::Json;
use crate::uploads::small_text;

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedResponse {
    pub model_name: String,
    pub detector: String,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<EmbeddedFaceDto>,
    pub timings: TimingsDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddedFaceDto {
    /// x, y, width, height in image pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corner.
    pub landmarks: [[f32; 2]; 5],
    pub embedding_dimension: usize,
    /// The L2-normalised embedding, when `include_vectors` is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// Milliseconds per stage inside the worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimingsDto {
    pub decode_ms: f32,
    pub detect_ms: f32,
    pub align_ms: f32,
    pub embed_ms: f32,
}

impl From<Timings> for TimingsDto {
    fn from(t: Timings) -> Self {
        Self {
            decode_ms: t.decode_ms,
            detect_ms: t.detect_ms,
            align_ms: t.align_ms,
            embed_ms: t.embed_ms,
        }
    }
}

/// The multipart form of the request, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
struct EmbedForm {
    /// The photo (JPEG, PNG or WebP).
    #[schema(format = Binary, value_type = String)]
    image: Vec<u8>,
    /// Recognizer to use (default: the server's first recognizer).
    model_name: Option<String>,
    /// `true` to include the embedding vectors.
    include_vectors: Option<bool>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(embed))
}

/// Detect every face of an uploaded photo and embed it, in an isolated worker.
#[utoipa::path(post, path = "/api/attendance/embed/", tag = "faces",
    request_body(content = EmbedForm, content_type = "multipart/form-data"),
    responses((status = 200, body = EmbedResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
async fn embed(
    State(state): State<AppState>,
    actor: Actor,
    mut form: Multipart,
) -> ApiResult<Json<EmbedResponse>> {
    let (mut image, mut model_name, mut include_vectors) = (None, None, false);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "image" => image = Some(state.save_field(field).await?),
            "model_name" => model_name = Some(small_text(field).await?.trim().to_owned()),
            "include_vectors" => {
                include_vectors = match small_text(field).await?.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(ApiError::invalid_field(
                            "include_vectors",
                            format!("include_vectors must be true or false, not {other:?}"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let image = image.ok_or_else(|| {
        ApiError::invalid_field(
            "image",
            "a multipart field `image` with the photo is required",
        )
    })?;
    // Not under the upload memory budget: this interactive route keeps the pool's answer, an
    // immediate `Overloaded` when the queue is full, and the queue bounds how many images wait.
    let (
        model,
        PhotoFaces {
            width,
            height,
            faces,
            timings,
            ..
        },
    ) = state
        .services
        .embed_photo(&actor.user, &image, model_name)
        .await?;
    let faces = faces
        .into_iter()
        .map(|f| EmbeddedFaceDto {
            bbox: f.bbox,
            score: f.score,
            landmarks: f.landmarks,
            embedding_dimension: f.embedding.as_ref().map_or(0, Vec::len),
            embedding: f.embedding.filter(|_| include_vectors),
        })
        .collect();
    Ok(Json(EmbedResponse {
        model_name: model,
        detector: state.services.settings.detector.clone(),
        width,
        height,
        faces,
        timings: timings.into(),
    }))
}

pub(crate) fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    let status = error.status();
    let error_type = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ErrorType::PayloadTooLarge
    } else {
        ErrorType::ValidationError
    };
    ApiError::new(
        error_type,
        format!("Malformed multipart body: {}", error.body_text()),
    )
}
