//! Attendance: derived on every read from who was seen in a session's faces, with a person's
//! overrides winning; per-session lists, the course matrix, and both as CSV.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_store::{AttendanceStatus, Page, SessionFacts};

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

impl StatusDto {
    fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Absent => "absent",
            Self::Unknown => "unknown",
        }
    }
}

/// A face that shows the student in the session.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceDto {
    pub crop: i64,
    pub image: i64,
    /// `auto`, `manual` or `cluster`.
    pub source: String,
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

/// Derives each student's status: seen in a face → present; otherwise absent only when every
/// photo is processed and every face is resolved, else unknown. An override wins.
pub fn session_attendance(facts: SessionFacts) -> SessionAttendance {
    let unresolved = facts.unresolved_faces > 0;
    let unfinished = facts.unfinished_photos > 0 || facts.photos == 0;
    let students: Vec<StudentAttendance> = facts
        .students
        .iter()
        .map(|student| {
            let evidence: Vec<EvidenceDto> = facts
                .evidence
                .iter()
                .filter(|e| e.student_id == student.id)
                .map(|e| EvidenceDto {
                    crop: e.crop_id,
                    image: e.image_id,
                    source: e.source.clone(),
                    similarity: e.similarity,
                })
                .collect();
            let overridden = facts
                .overrides
                .iter()
                .find(|(id, _)| *id == student.id)
                .map(|(_, status)| StatusDto::from(*status));
            let (status, source, reason) = match overridden {
                Some(status) => (status, "manual", "set by hand".to_owned()),
                None if !evidence.is_empty() => (
                    StatusDto::Present,
                    "auto",
                    format!("seen in {} face(s)", evidence.len()),
                ),
                None if facts.photos == 0 => (
                    StatusDto::Unknown,
                    "auto",
                    "no photo uploaded yet".to_owned(),
                ),
                None if unfinished => (
                    StatusDto::Unknown,
                    "auto",
                    format!("{} photo(s) not processed yet", facts.unfinished_photos),
                ),
                None if unresolved => (
                    StatusDto::Unknown,
                    "auto",
                    format!(
                        "not seen, but {} face(s) are not identified yet",
                        facts.unresolved_faces
                    ),
                ),
                None => (StatusDto::Absent, "auto", "not seen in any face".to_owned()),
            };
            StudentAttendance {
                student: student.id,
                name: student.name.clone(),
                external_id: student.external_id.clone(),
                status,
                source,
                reason,
                evidence,
            }
        })
        .collect();
    let count = |s: StatusDto| students.iter().filter(|a| a.status == s).count();
    SessionAttendance {
        session: facts.session.id,
        title: facts.session.title.clone(),
        held_at: facts.session.held_at,
        photos: facts.photos,
        unfinished_photos: facts.unfinished_photos,
        unresolved_faces: facts.unresolved_faces,
        present: count(StatusDto::Present),
        absent: count(StatusDto::Absent),
        unknown: count(StatusDto::Unknown),
        students,
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

async fn load_session(state: &AppState, actor: &Actor, id: i64) -> ApiResult<SessionAttendance> {
    Ok(session_attendance(
        state.store.session_facts(actor.scope(), id).await?,
    ))
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
    Ok(Json(load_session(&state, &actor, id).await?))
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
    state
        .store
        .set_attendance_override(actor.scope(), id, student, status.map(Into::into))
        .await?;
    Ok(Json(load_session(&state, &actor, id).await?))
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
    let a = load_session(&state, &actor, id).await?;
    let mut out = String::from("student_id,external_id,name,status,source,evidence_crops\n");
    for s in &a.students {
        let crops: Vec<String> = s.evidence.iter().map(|e| e.crop.to_string()).collect();
        csv_row(
            &mut out,
            &[
                &s.student.to_string(),
                s.external_id.as_deref().unwrap_or(""),
                &s.name,
                s.status.as_str(),
                s.source,
                &crops.join(" "),
            ],
        );
    }
    Ok(csv_response(out, &format!("session-{id}-attendance.csv")))
}

async fn load_course(state: &AppState, actor: &Actor, id: i64) -> ApiResult<CourseAttendance> {
    let mut sessions = Vec::new();
    for session in state.store.course_session_ids(actor.scope(), id).await? {
        sessions.push(load_session(state, actor, session).await?);
    }
    let students = state
        .store
        .list_students(actor.scope(), Some(id), Page::ALL)
        .await?
        .items
        .into_iter()
        .map(|student| {
            let statuses: Vec<StatusDto> = sessions
                .iter()
                .map(|s| {
                    s.students
                        .iter()
                        .find(|a| a.student == student.id)
                        .map_or(StatusDto::Unknown, |a| a.status)
                })
                .collect();
            CourseRow {
                student: student.id,
                name: student.name,
                external_id: student.external_id,
                present: statuses
                    .iter()
                    .filter(|s| **s == StatusDto::Present)
                    .count(),
                statuses,
            }
        })
        .collect();
    Ok(CourseAttendance {
        course: id,
        sessions: sessions
            .iter()
            .map(|s| SessionColumn {
                id: s.session,
                title: s.title.clone(),
                held_at: s.held_at,
            })
            .collect(),
        students,
    })
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
    Ok(Json(load_course(&state, &actor, id).await?))
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
    let matrix = load_course(&state, &actor, id).await?;
    let mut header: Vec<String> = vec!["student_id".into(), "external_id".into(), "name".into()];
    header.extend(
        matrix
            .sessions
            .iter()
            .map(|s| format!("{} ({})", s.title, s.held_at.format("%Y-%m-%d"))),
    );
    header.push("present".into());
    let mut out = String::new();
    csv_row(
        &mut out,
        &header.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for row in &matrix.students {
        let mut cells: Vec<String> = vec![
            row.student.to_string(),
            row.external_id.clone().unwrap_or_default(),
            row.name.clone(),
        ];
        cells.extend(row.statuses.iter().map(|s| s.as_str().to_owned()));
        cells.push(row.present.to_string());
        csv_row(
            &mut out,
            &cells.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    Ok(csv_response(out, &format!("course-{id}-attendance.csv")))
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

/// Appends one CSV record (RFC 4180 quoting). A cell that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@`, tab or carriage return first) is prefixed with `'`: names are typed by
/// users.
pub fn csv_row(out: &mut String, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guarded;
        let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            guarded = format!("'{cell}");
            guarded.as_str()
        } else {
            cell
        };
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        csv_row(
            &mut out,
            &["1", "a,b", "say \"hi\"", "=SUM(A1)", "-3", "\t=1", "@x"],
        );
        assert_eq!(
            out,
            "1,\"a,b\",\"say \"\"hi\"\"\",'=SUM(A1),'-3,'\t=1,'@x\n"
        );
    }
}
