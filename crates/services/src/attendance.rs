//! Attendance: derived on every read from who was seen in a session's faces, with a person's
//! overrides winning; per-session lists, the course matrix, and both as CSV.

use chrono::{DateTime, Utc};

use attendansee_store::{AttendanceStatus, Page, Scope, SessionFacts};
use attendansee_vocabulary::Source;

use crate::{ServiceResult, Services};

/// A face that shows the student in the session.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub crop: i64,
    pub image: i64,
    pub source: Source,
    /// Similarity of an automatic match.
    pub similarity: Option<f64>,
}

/// One student's status in one session, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct StudentAttendance {
    pub student: i64,
    pub name: String,
    pub external_id: Option<String>,
    pub status: AttendanceStatus,
    /// `Auto` (derived from the faces) or `Manual` (a person's override).
    pub source: Source,
    /// Why, in one sentence.
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionAttendance {
    pub session: i64,
    pub title: String,
    pub held_at: DateTime<Utc>,
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

/// The course's matrix: students × sessions.
#[derive(Clone, Debug, PartialEq)]
pub struct CourseAttendance {
    pub course: i64,
    pub sessions: Vec<SessionColumn>,
    pub students: Vec<CourseRow>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionColumn {
    pub id: i64,
    pub title: String,
    pub held_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CourseRow {
    pub student: i64,
    pub name: String,
    pub external_id: Option<String>,
    /// One status per session, in the order of the sessions.
    pub statuses: Vec<AttendanceStatus>,
    pub present: usize,
}

/// The name of a status, as the API and the CSV files spell it.
pub fn status_name(status: AttendanceStatus) -> &'static str {
    match status {
        AttendanceStatus::Present => "present",
        AttendanceStatus::Absent => "absent",
        AttendanceStatus::Unknown => "unknown",
    }
}

/// Derives each student's status: seen in a face → present; otherwise absent only when every
/// photo is processed and every face is resolved, else unknown. An override wins.
pub fn session_attendance(facts: SessionFacts) -> SessionAttendance {
    let unresolved = facts.unresolved_faces > 0;
    let unfinished = facts.unfinished_photos > 0 || facts.photos == 0;
    let evidence = facts
        .evidence
        .iter()
        .map(|e| {
            (
                e.student_id,
                Evidence {
                    crop: e.crop_id,
                    image: e.image_id,
                    source: e.source,
                    similarity: e.similarity,
                },
            )
        })
        .collect::<Vec<(i64, Evidence)>>();
    let students: Vec<StudentAttendance> = facts
        .students
        .iter()
        .map(|student| {
            let evidence: Vec<Evidence> = evidence
                .iter()
                .filter(|(id, _)| *id == student.id)
                .map(|(_, e)| e.clone())
                .collect();
            let overridden = facts
                .overrides
                .iter()
                .find(|(id, _)| *id == student.id)
                .map(|(_, status)| *status);
            let (status, source, reason) = match overridden {
                Some(status) => (status, Source::Manual, "set by hand".to_owned()),
                None if !evidence.is_empty() => (
                    AttendanceStatus::Present,
                    Source::Auto,
                    format!("seen in {} face(s)", evidence.len()),
                ),
                None if facts.photos == 0 => (
                    AttendanceStatus::Unknown,
                    Source::Auto,
                    "no photo uploaded yet".to_owned(),
                ),
                None if unfinished => (
                    AttendanceStatus::Unknown,
                    Source::Auto,
                    format!("{} photo(s) not processed yet", facts.unfinished_photos),
                ),
                None if unresolved => (
                    AttendanceStatus::Unknown,
                    Source::Auto,
                    format!(
                        "not seen, but {} face(s) are not identified yet",
                        facts.unresolved_faces
                    ),
                ),
                None => (
                    AttendanceStatus::Absent,
                    Source::Auto,
                    "not seen in any face".to_owned(),
                ),
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
    let count = |s: AttendanceStatus| students.iter().filter(|a| a.status == s).count();
    SessionAttendance {
        session: facts.session.id,
        title: facts.session.title.clone(),
        held_at: facts.session.held_at,
        photos: facts.photos,
        unfinished_photos: facts.unfinished_photos,
        unresolved_faces: facts.unresolved_faces,
        present: count(AttendanceStatus::Present),
        absent: count(AttendanceStatus::Absent),
        unknown: count(AttendanceStatus::Unknown),
        students,
    }
}

impl Services {
    /// Each enrolled student's status in the session, with the faces that show them.
    pub async fn session_attendance(
        &self,
        scope: Scope,
        session_id: i64,
    ) -> ServiceResult<SessionAttendance> {
        Ok(session_attendance(
            self.store.session_facts(scope, session_id).await?,
        ))
    }

    /// Overrides a student's status in a session by hand (`None` goes back to the derived
    /// status), and returns the session's attendance afterwards.
    pub async fn set_attendance(
        &self,
        scope: Scope,
        session_id: i64,
        student_id: i64,
        status: Option<AttendanceStatus>,
    ) -> ServiceResult<SessionAttendance> {
        self.store
            .set_attendance_override(scope, session_id, student_id, status)
            .await?;
        self.session_attendance(scope, session_id).await
    }

    /// The course's attendance matrix.
    pub async fn course_attendance(
        &self,
        scope: Scope,
        course_id: i64,
    ) -> ServiceResult<CourseAttendance> {
        let mut sessions = Vec::new();
        for session in self.store.course_session_ids(scope, course_id).await? {
            sessions.push(self.session_attendance(scope, session).await?);
        }
        let students = self
            .store
            .list_students(scope, Some(course_id), Page::ALL)
            .await?
            .items
            .into_iter()
            .map(|student| {
                let statuses: Vec<AttendanceStatus> = sessions
                    .iter()
                    .map(|s| {
                        s.students
                            .iter()
                            .find(|a| a.student == student.id)
                            .map_or(AttendanceStatus::Unknown, |a| a.status)
                    })
                    .collect();
                CourseRow {
                    student: student.id,
                    name: student.name,
                    external_id: student.external_id,
                    present: statuses
                        .iter()
                        .filter(|s| **s == AttendanceStatus::Present)
                        .count(),
                    statuses,
                }
            })
            .collect();
        Ok(CourseAttendance {
            course: course_id,
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
}

/// The session's attendance as CSV: one row per student.
pub fn session_csv(attendance: &SessionAttendance) -> String {
    let mut out = String::from("student_id,external_id,name,status,source,evidence_crops\n");
    for s in &attendance.students {
        let crops: Vec<String> = s.evidence.iter().map(|e| e.crop.to_string()).collect();
        csv_row(
            &mut out,
            &[
                &s.student.to_string(),
                s.external_id.as_deref().unwrap_or(""),
                &s.name,
                status_name(s.status),
                s.source.as_str(),
                &crops.join(" "),
            ],
        );
    }
    out
}

/// The course's matrix as CSV: one row per student, one column per session.
pub fn course_csv(matrix: &CourseAttendance) -> String {
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
        cells.extend(row.statuses.iter().map(|s| status_name(*s).to_owned()));
        cells.push(row.present.to_string());
        csv_row(
            &mut out,
            &cells.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
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
