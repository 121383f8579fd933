//! Clusters of unknown faces across a course's sessions: listing, a full re-cluster on request,
//! and the edits that name a whole group at once (assign it, or enroll a new student from it)
//! or merge groups.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_store::ClusterRecord;

use crate::AppState;
use crate::auth::Actor;
use crate::corrections::ClusterSummaryDto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::students::StudentDto;
use attendansee_services::review::ClusterName;

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionDto {
    pub student: i64,
    /// Cosine similarity between the cluster's average face and the student's nearest face.
    pub similarity: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDto {
    pub id: i64,
    pub course: i64,
    pub model_name: String,
    /// The face crops in the group.
    pub members: Vec<i64>,
    /// A student the group resembles; never applied without a person.
    pub suggestion: Option<SuggestionDto>,
    /// Edited by hand (merged): a full re-cluster keeps it together.
    pub locked: bool,
    pub created_at: DateTime<Utc>,
}

impl From<ClusterRecord> for ClusterDto {
    fn from(c: ClusterRecord) -> Self {
        Self {
            id: c.id,
            course: c.course_id,
            model_name: c.model_name,
            members: c.members,
            suggestion: c.suggested.map(|(student, similarity)| SuggestionDto {
                student,
                similarity,
            }),
            locked: c.locked,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReclusterResponse {
    pub summary: ClusterSummaryDto,
    pub clusters: Vec<ClusterDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStudent {
    pub name: String,
    pub external_id: Option<String>,
}

/// Name a cluster: give `student_id` (an enrolled student) or `new_student` (enrolled now).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameCluster {
    pub student_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::extract::object")]
    pub new_student: Option<NewStudent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NameClusterResponse {
    pub student: StudentDto,
    /// Faces assigned to the student (they become part of the student's known faces).
    pub assigned: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeClusters {
    /// Two or more clusters of one course; all are merged into the first.
    pub cluster_ids: Vec<i64>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clusters))
        .routes(routes!(recluster))
        .routes(routes!(get_cluster))
        .routes(routes!(name_cluster))
        .routes(routes!(merge_clusters))
}

/// A course's clusters of unknown faces, largest first.
#[utoipa::path(get, path = "/api/attendance/courses/{id}/clusters/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ClusterDto>), (status = 404, body = ErrorBody)))]
async fn list_clusters(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<ClusterDto>>> {
    let clusters = state.services.list_clusters(actor.scope(), id).await?;
    Ok(Json(clusters.into_iter().map(ClusterDto::from).collect()))
}

/// Re-cluster all of the course's unknown faces from scratch; clusters edited by hand are kept.
#[utoipa::path(post, path = "/api/attendance/courses/{id}/clusters/recluster/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = ReclusterResponse), (status = 404, body = ErrorBody)))]
async fn recluster(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<ReclusterResponse>> {
    let (summary, clusters) = state.services.recluster(actor.scope(), id).await?;
    Ok(Json(ReclusterResponse {
        summary: summary.into(),
        clusters: clusters.into_iter().map(ClusterDto::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/attendance/clusters/{id}/", tag = "recognition",
    params(("id" = i64, Path)),
    responses((status = 200, body = ClusterDto), (status = 404, body = ErrorBody)))]
async fn get_cluster(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<ClusterDto>> {
    Ok(Json(
        state.services.get_cluster(actor.scope(), id).await?.into(),
    ))
}

/// Name a cluster: all its faces are assigned to the student (an enrolled one, or a new student
/// enrolled from the cluster), which also makes them part of the student's known faces.
#[utoipa::path(post, path = "/api/attendance/clusters/{id}/name/", tag = "recognition",
    params(("id" = i64, Path)), request_body = NameCluster,
    responses((status = 200, body = NameClusterResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn name_cluster(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<NameCluster>,
) -> ApiResult<Json<NameClusterResponse>> {
    // The cluster first: a foreign or missing one is 404 whatever the body says.
    state.services.get_cluster(actor.scope(), id).await?;
    let name = match (body.student_id, body.new_student) {
        (Some(student), None) => ClusterName::Existing(student),
        (None, Some(new)) => ClusterName::New {
            name: new.name,
            external_id: new.external_id,
        },
        _ => {
            return Err(ApiError::validation(
                "give exactly one of student_id and new_student",
            ));
        }
    };
    let (student, assigned) = state.services.name_cluster(actor.scope(), id, name).await?;
    Ok(Json(NameClusterResponse {
        student: student.into(),
        assigned,
    }))
}

/// Merge clusters of one course into the first; the result is kept by later re-clustering.
#[utoipa::path(post, path = "/api/attendance/clusters/merge/", tag = "recognition",
    request_body = MergeClusters,
    responses((status = 200, body = ClusterDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn merge_clusters(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<MergeClusters>,
) -> ApiResult<Json<ClusterDto>> {
    Ok(Json(
        state
            .services
            .merge_clusters(actor.scope(), &body.cluster_ids)
            .await?
            .into(),
    ))
}
