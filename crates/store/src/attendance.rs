//! SQL for attendance: the facts a session's attendance is derived from (who was seen in which
//! face, what is still unresolved) and the manual overrides, which always win.

use attendansee_vocabulary::Source;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::{ClassSession, Result, Scope, Store, StoreError, Student, names};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum AttendanceStatus {
    Present,
    Absent,
    Unknown,
}

/// A face in the session assigned to a student: why we think they were there.
#[derive(Clone, Debug)]
pub struct Evidence {
    pub student_id: i64,
    pub crop_id: i64,
    pub image_id: i64,
    /// Who assigned the face to the student.
    pub source: Source,
    /// The similarity of an automatic match.
    pub similarity: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct EvidenceRow {
    student_id: i64,
    crop_id: i64,
    image_id: i64,
    source: String,
    similarity: Option<f64>,
}

impl TryFrom<EvidenceRow> for Evidence {
    type Error = StoreError;

    fn try_from(r: EvidenceRow) -> Result<Self> {
        Ok(Evidence {
            student_id: r.student_id,
            crop_id: r.crop_id,
            image_id: r.image_id,
            source: names::decode(&r.source)?,
            similarity: r.similarity,
        })
    }
}

/// Everything a session's attendance is derived from.
#[derive(Clone, Debug)]
pub struct SessionFacts {
    pub session: ClassSession,
    /// The course's students, by id.
    pub students: Vec<Student>,
    pub evidence: Vec<Evidence>,
    /// Faces nobody is assigned to and no person has decided about: one may be a student.
    pub unresolved_faces: i64,
    /// Photos uploaded but not (successfully) processed yet.
    pub unfinished_photos: i64,
    pub photos: i64,
    /// Manual overrides: (student, status).
    pub overrides: Vec<(i64, AttendanceStatus)>,
}

impl Store {
    pub async fn session_facts(&self, scope: Scope, session_id: i64) -> Result<SessionFacts> {
        with_pool!(self, pool => {
            let session = self.get_session(scope, session_id).await?;
            let students: Vec<Student> = sqlx::query_as(
                "SELECT id, course_id, name, external_id, created_at FROM students WHERE course_id = $1 ORDER BY id",
            )
            .bind(session.course_id)
            .fetch_all(pool)
            .await?;
            let evidence: Vec<EvidenceRow> = sqlx::query_as(
                "SELECT f.student_id, f.id AS crop_id, f.image_id, f.assignment_source AS source, f.confidence AS similarity
             FROM face_crops f JOIN session_images i ON i.id = f.image_id
             WHERE i.session_id = $1 AND f.student_id IS NOT NULL ORDER BY f.student_id, f.id",
            )
            .bind(session_id)
            .fetch_all(pool)
            .await?;
            let evidence = evidence
                .into_iter()
                .map(Evidence::try_from)
                .collect::<Result<_>>()?;
            let (unresolved_faces,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM face_crops f JOIN session_images i ON i.id = f.image_id
             WHERE i.session_id = $1 AND f.student_id IS NULL AND f.not_a_student = FALSE
               AND (f.assignment_source IS NULL OR f.assignment_source <> $2)",
            )
            .bind(session_id)
            .bind(Source::Manual.as_str())
            .fetch_one(pool)
            .await?;
            let (photos, unfinished_photos): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COUNT(CASE WHEN status <> 'processed' THEN 1 END) FROM session_images WHERE session_id = $1",
            )
            .bind(session_id)
            .fetch_one(pool)
            .await?;
            let overrides: Vec<(i64, AttendanceStatus)> = sqlx::query_as(
                "SELECT student_id, status FROM attendance WHERE session_id = $1 AND source = $2",
            )
            .bind(session_id)
            .bind(Source::Manual.as_str())
            .fetch_all(pool)
            .await?;
            Ok(SessionFacts {
                session,
                students,
                evidence,
                unresolved_faces,
                unfinished_photos,
                photos,
                overrides,
            })
        })
    }

    /// Sets (or with `None` clears) a person's override of a student's attendance.
    pub async fn set_attendance_override(
        &self,
        scope: Scope,
        session_id: i64,
        student_id: i64,
        status: Option<AttendanceStatus>,
    ) -> Result<()> {
        with_pool!(self, pool => {
            let session = self.get_session(scope, session_id).await?;
            let student = self.get_student(scope, student_id).await?;
            if student.course_id != session.course_id {
                return Err(StoreError::Invalid(format!(
                    "student {student_id} is not enrolled in the course of session {session_id}"
                )));
            }
            match status {
                Some(status) => {
                    let written = sqlx::query(
                        "INSERT INTO attendance (session_id, student_id, status, source, updated_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (session_id, student_id) DO UPDATE SET status = excluded.status,
                         source = excluded.source, updated_at = excluded.updated_at",
                    )
                    .bind(session_id)
                    .bind(student_id)
                    .bind(status)
                    .bind(Source::Manual.as_str())
                    .bind(Utc::now())
                    .execute(pool)
                    .await;
                    if let Err(error) = written {
                        let error = StoreError::from(error);
                        if crate::error::is_parent_gone(&error) {
                            // The session or the student was deleted by another request since
                            // the checks above: whichever is gone is not found.
                            self.get_session(scope, session_id).await?;
                            self.get_student(scope, student_id).await?;
                        }
                        return Err(error);
                    }
                }
                None => {
                    sqlx::query("DELETE FROM attendance WHERE session_id = $1 AND student_id = $2")
                        .bind(session_id)
                        .bind(student_id)
                        .execute(pool)
                        .await?;
                }
            }
            Ok(())
        })
    }

    /// All sessions of a course, oldest first (for the course's attendance matrix).
    pub async fn course_session_ids(&self, scope: Scope, course_id: i64) -> Result<Vec<i64>> {
        with_pool!(self, pool => {
            self.get_course(scope, course_id).await?;
            Ok(
                sqlx::query_scalar("SELECT id FROM sessions WHERE course_id = $1 ORDER BY held_at, id")
                    .bind(course_id)
                    .fetch_all(pool)
                    .await?,
            )
        })
    }
}
