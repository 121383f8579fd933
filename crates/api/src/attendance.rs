//! Attendance: derived on every read from who was seen in a session's faces, with a person's
//! overrides winning; per-session lists, the course matrix, and both as CSV.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_services::attendance::{
    self as domain, CourseRow as DomainRow, Evidence, SessionColumn as DomainColumn,
    StudentAttendance as DomainStudent,
};
use attendansee_store::AttendanceStatus;

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, nullable};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusDto {
    Present,
    Absent,
    Unknown,
}

impl From<AttendanceStatus> for StatusDto {
    fn from(s: AttendanceStatus) -> Self {
        match s {
            AttendanceStatus::Present => Self::Present,
            AttendanceStatus::Absent => Self::Absent,
            AttendanceStatus::Unknown => Self::Unknown,
        }
    }
}

impl From<StatusDto> for AttendanceStatus {
    fn from(s: StatusDto) -> Self {
        match s {
            StatusDto::Present => Self::Present,
            StatusDto::Absent => Self::Absent,
            StatusDto::Unknown => Self::Unknown,
        }
    }
}

/// A face that shows the student in the session.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceDto {
    pub crop: i64,
    pub image: i64,
    /// `auto`, `manual` or `cluster`.
    pub source: &'static str,
    /// Similarity of an automatic match.
    pub similarity: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StudentAttendance {
    pub student: i64,
    pub name: String,
    pub external_id: Option<String>,
    pub status: StatusDto,
    /// `auto` (derived from the faces) or `manual` (a person's override).
    pub source: &'static str,
    /// Why, in one sentence.
    pub reason: String,
    pub evidence: Vec<EvidenceDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAttendance {
    pub session: i64,
    pub title: String,
    pub held_at: chrono::DateTime<chrono::Utc>,
    pub photos: i64,
    /// Photos not processed yet (or failed): until they are, nobody is "absent".
    pub unfinished_photos: i64,
    /// Faces nobody is assigned to (and not marked "not a student"): until they are resolved,
    /// students not seen are "unknown" rather than "absent".
    pub unresolved_faces: i64,
    pub present: usize,
    pub absent: usize,
    pub unknown: usize,
    pub students: Vec<StudentAttendance>,
}

impl From<Evidence> for EvidenceDto {
    fn from(e: Evidence) -> Self {
        Self {
            crop: e.crop,
            image: e.image,
            source: e.source.as_str(),
            similarity: e.similarity,
        }
    }
}

impl From<DomainStudent> for StudentAttendance {
    fn from(s: DomainStudent) -> Self {
        Self {
            student: s.student,
            name: s.name,
            external_id: s.external_id,
            status: s.status.into(),
            source: s.source.as_str(),
            reason: s.reason,
            evidence: s.evidence.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<domain::SessionAttendance> for SessionAttendance {
    fn from(a: domain::SessionAttendance) -> Self {
        Self {
            session: a.session,
            title: a.title,
            held_at: a.held_at,
            photos: a.photos,
            unfinished_photos: a.unfinished_photos,
            unresolved_faces: a.unresolved_faces,
            present: a.present,
            absent: a.absent,
            unknown: a.unknown,
            students: a.students.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<DomainColumn> for SessionColumn {
    fn from(c: DomainColumn) -> Self {
        Self {
            id: c.id,
            title: c.title,
            held_at: c.held_at,
        }
    }
}

impl From<DomainRow> for CourseRow {
    fn from(r: DomainRow) -> Self {
        Self {
            student: r.student,
            name: r.name,
            external_id: r.external_id,
            statuses: r.statuses.into_iter().map(Into::into).collect(),
            present: r.present,
        }
    }
}

impl From<domain::CourseAttendance> for CourseAttendance {
    fn from(m: domain::CourseAttendance) -> Self {
        Self {
            course: m.course,
            sessions: m.sessions.into_iter().map(Into::into).collect(),
            students: m.students.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAttendance {
    /// `present`, `absent` or `unknown`; `null` removes the override.
    #[serde(deserialize_with = "nullable")]
    #[schema(value_type = Option<StatusDto>)]
    pub status: Option<Option<StatusDto>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseAttendance {
    pub course: i64,
    pub sessions: Vec<SessionColumn>,
    pub students: Vec<CourseRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionColumn {
    pub id: i64,
    pub title: String,
    pub held_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseRow {
    pub student: i64,
    pub name: String,
    pub external_id: Option<String>,
    /// One status per session, in the order of `sessions`.
    pub statuses: Vec<StatusDto>,
    pub present: usize,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_session_attendance))
        .routes(routes!(set_attendance))
        .routes(routes!(session_csv))
        .routes(routes!(get_course_attendance))
        .routes(routes!(course_csv))
}

/// Each enrolled student's status in the session, with the faces that show them.
#[utoipa::path(get, path = "/api/attendance/sessions/{id}/attendance/", tag = "attendance",
    params(("id" = i64, Path)),
    responses((status = 200, body = SessionAttendance), (status = 404, body = ErrorBody)))]
async fn get_session_attendance(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<SessionAttendance>> {
    let attendance = state.services.session_attendance(actor.scope(), id).await?;
    Ok(Json(attendance.into()))
}

/// Override a student's status in a session by hand (`null` goes back to the derived status).
#[utoipa::path(put, path = "/api/attendance/sessions/{id}/attendance/{student}/", tag = "attendance",
    params(("id" = i64, Path), ("student" = i64, Path)), request_body = SetAttendance,
    responses((status = 200, body = SessionAttendance), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_attendance(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, student)): Path<(i64, i64)>,
    Json(body): Json<SetAttendance>,
) -> ApiResult<Json<SessionAttendance>> {
    let Some(status) = body.status else {
        return Err(ApiError::invalid_field(
            "status",
            "status is required: present, absent, unknown or null",
        ));
    };
    let attendance = state
        .services
        .set_attendance(actor.scope(), id, student, status.map(Into::into))
        .await?;
    Ok(Json(attendance.into()))
}

/// The session's attendance as CSV: one row per student.
#[utoipa::path(get, path = "/api/attendance/sessions/{id}/attendance/csv/", tag = "attendance",
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
async fn session_csv(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let attendance = state.services.session_attendance(actor.scope(), id).await?;
    let csv = domain::session_csv(&attendance);
    Ok(csv_response(csv, &format!("session-{id}-attendance.csv")))
}

/// The course's attendance matrix: students × sessions.
#[utoipa::path(get, path = "/api/attendance/courses/{id}/attendance/", tag = "attendance",
    params(("id" = i64, Path)),
    responses((status = 200, body = CourseAttendance), (status = 404, body = ErrorBody)))]
async fn get_course_attendance(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<CourseAttendance>> {
    let matrix = state.services.course_attendance(actor.scope(), id).await?;
    Ok(Json(matrix.into()))
}

/// The course's attendance matrix as CSV: one row per student, one column per session.
#[utoipa::path(get, path = "/api/attendance/courses/{id}/attendance/csv/", tag = "attendance",
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
async fn course_csv(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let matrix = state.services.course_attendance(actor.scope(), id).await?;
    let csv = domain::course_csv(&matrix);
    Ok(csv_response(csv, &format!("course-{id}-attendance.csv")))
}

fn csv_response(body: String, file_name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        body,
    )
        .into_response()
}
