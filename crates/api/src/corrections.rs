//! Assignment of faces to students: re-running the automatic assignment, the corrections a
//! person makes (which always win over it), and the faces most similar to one face.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::recognition::{AssignSummary, ClusterSummary};
use attendansee_store::Correction;

use crate::AppState;
use crate::auth::Actor;
use crate::crops::CropDto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query, nullable};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assign_session_route))
        .routes(routes!(assign_crop))
        .routes(routes!(not_a_student))
        .routes(routes!(reset_crop))
        .routes(routes!(undo_correction))
        .routes(routes!(similar_crops))
}

/// What an assignment run decided, counted by outcome.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AssignSummary)]
pub struct AssignSummaryDto {
    /// Faces the run looked at (those without a manual decision).
    pub faces: usize,
    pub matched: usize,
    pub below_threshold: usize,
    pub ambiguous: usize,
    pub conflict: usize,
    pub no_students: usize,
    /// Faces below the quality limits, never assigned automatically.
    pub too_small: usize,
    pub blurred: usize,
    pub profile: usize,
}

impl From<AssignSummary> for AssignSummaryDto {
    fn from(s: AssignSummary) -> Self {
        Self {
            faces: s.faces,
            matched: s.matched,
            below_threshold: s.below_threshold,
            ambiguous: s.ambiguous,
            conflict: s.conflict,
            no_students: s.no_students,
            too_small: s.too_small,
            blurred: s.blurred,
            profile: s.profile,
        }
    }
}

/// What a clustering run left behind.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ClusterSummary)]
pub struct ClusterSummaryDto {
    /// Clusters of the course after the run.
    pub clusters: usize,
    /// Unknown faces in a cluster, and in none.
    pub clustered_faces: usize,
    pub unclustered_faces: usize,
}

impl From<ClusterSummary> for ClusterSummaryDto {
    fn from(s: ClusterSummary) -> Self {
        Self {
            clusters: s.clusters,
            clustered_faces: s.clustered_faces,
            unclustered_faces: s.unclustered_faces,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignResponse {
    pub assignment: AssignSummaryDto,
    pub clustering: ClusterSummaryDto,
}

/// Match the session's faces against the course's students again (e.g. after enrolling), then
/// add the faces still unknown to the course's clusters. Manual decisions are kept.
#[utoipa::path(post, path = "/api/attendance/sessions/{id}/assign/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = AssignResponse), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn assign_session_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<AssignResponse>> {
    let (assignment, clustering) = state.services.reassign_session(actor.scope(), id).await?;
    Ok(Json(AssignResponse {
        assignment: assignment.into(),
        clustering: clustering.into(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignCrop {
    /// The student this face is; `null` for "nobody enrolled" (it stays an unknown face).
    #[serde(deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub student_id: Option<Option<i64>>,
}

/// Assign a face to a student by hand (or to nobody, with `null`). Wins over automatic
/// assignment until reset.
#[utoipa::path(post, path = "/api/attendance/face-crops/{id}/assign/", tag = "recognition",
    params(("id" = i64, Path)), request_body = AssignCrop,
    responses((status = 200, body = CropDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn assign_crop(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<AssignCrop>,
) -> ApiResult<Json<CropDto>> {
    let correction = match body.student_id {
        None => {
            return Err(ApiError::invalid_field(
                "student_id",
                "student_id is required (null for nobody)",
            ));
        }
        Some(Some(student)) => Correction::Assign(student),
        Some(None) => Correction::Unassign,
    };
    let crop = state
        .services
        .correct_face(actor.scope(), id, correction)
        .await?;
    Ok(Json(crop.into()))
}

/// Mark a face as "not a student" (a visitor, a poster): it is never assigned, clustered or
/// suggested again, and does not make attendance "unknown".
#[utoipa::path(post, path = "/api/attendance/face-crops/{id}/not-a-student/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = CropDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn not_a_student(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<CropDto>> {
    let crop = state
        .services
        .correct_face(actor.scope(), id, Correction::NotAStudent)
        .await?;
    Ok(Json(crop.into()))
}

/// Forget the manual decision about a face and let the automatic assignment decide again
/// (it runs at once for the face's session).
#[utoipa::path(post, path = "/api/attendance/face-crops/{id}/reset/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = CropDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_crop(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<CropDto>> {
    let crop = state
        .services
        .correct_face(actor.scope(), id, Correction::Automatic)
        .await?;
    Ok(Json(crop.into()))
}

/// Undo the last correction of a face (assign, not a student, reset, or naming its group): the
/// face is put back exactly as it was before it. One level: 409 when there is nothing to undo.
#[utoipa::path(post, path = "/api/attendance/face-crops/{id}/undo/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = CropDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn undo_correction(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<CropDto>> {
    let crop = state
        .services
        .undo_face_correction(actor.scope(), id)
        .await?;
    Ok(Json(crop.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// How many faces to return (1–100, default 10).
    #[param(minimum = 1, maximum = 100)]
    pub k: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarFace {
    pub crop: CropDto,
    pub similarity: f32,
}

/// The faces of the same course most similar to this one (cosine similarity of the course
/// model's embeddings), most similar first.
#[utoipa::path(get, path = "/api/attendance/face-crops/{id}/similar/", tag = "recognition",
    params(("id" = i64, Path), SimilarQuery),
    responses((status = 200, body = Vec<SimilarFace>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn similar_crops(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Query(query): Query<SimilarQuery>,
) -> ApiResult<Json<Vec<SimilarFace>>> {
    let k = query.k.unwrap_or(10);
    if !(1..=100).contains(&k) {
        return Err(ApiError::invalid_field("k", "k must be between 1 and 100"));
    }
    let similar = state.services.similar_faces(actor.scope(), id, k).await?;
    Ok(Json(
        similar
            .into_iter()
            .map(|s| SimilarFace {
                crop: s.crop.into(),
                similarity: s.similarity,
            })
            .collect(),
    ))
}
