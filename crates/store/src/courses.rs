//! SQL for courses and what hangs off them directly: students and class sessions.
//!
//! Every read and write takes a [`Scope`]; an object outside it is reported exactly like a
//! missing one, so callers cannot leak another instructor's data by accident.

use chrono::Utc;

use crate::blob_refs::Owner;
use crate::error::{conflict_on_unique, not_found_if_gone};
use crate::scope::{Filter, Table};
use crate::{
    ClassSession, Course, CourseFields, Page, Paged, Result, Scope, SessionFields, Store, Student,
    StudentFields, UserId,
};

// Unqualified, for RETURNING (SQLite does not allow table aliases there) and one-table queries.
// The overrides are `f32`: PostgreSQL's DOUBLE PRECISION does not decode as one, its REAL does.
const COURSE_COLUMNS: &str = "id, owner_id, name, code, embedding_model, \
     CAST(match_threshold AS REAL) AS match_threshold, CAST(match_margin AS REAL) AS match_margin, \
     created_at";
const STUDENT_COLUMNS: &str = "id, course_id, name, external_id, created_at";
const STUDENT_COLUMNS_S: &str = "s.id, s.course_id, s.name, s.external_id, s.created_at";
const SESSION_COLUMNS: &str = "id, course_id, title, held_at, status, created_at";
const SESSION_COLUMNS_S: &str = "s.id, s.course_id, s.title, s.held_at, s.status, s.created_at";

pub(crate) const COURSES: Table = Table {
    entity: "Course",
    from: "courses c",
    id: "c.id",
};
pub(crate) const STUDENTS: Table = Table {
    entity: "Student",
    from: "students s JOIN courses c ON c.id = s.course_id",
    id: "s.id",
};
pub(crate) const SESSIONS: Table = Table {
    entity: "Session",
    from: "sessions s JOIN courses c ON c.id = s.course_id",
    id: "s.id",
};

fn course_code_taken(code: &str) -> String {
    format!("you already have a course with code '{code}'")
}

fn external_id_taken(external_id: &Option<String>) -> String {
    format!(
        "a student with external id '{}' is already enrolled in this course",
        external_id.as_deref().unwrap_or_default()
    )
}

impl Store {
    pub async fn create_course(&self, owner: UserId, fields: &CourseFields) -> Result<Course> {
        with_pool!(self, pool => {
            let sql = format!(
                "INSERT INTO courses (owner_id, name, code, embedding_model, match_threshold, match_margin, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COURSE_COLUMNS}"
            );
            let mut tx = begin_write(pool).await?;
            let course = sqlx::query_as::<_, Course>(&sql)
                .bind(owner)
                .bind(&fields.name)
                .bind(&fields.code)
                .bind(&fields.embedding_model)
                .bind(fields.match_threshold)
                .bind(fields.match_margin)
                .bind(Utc::now())
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_on_unique(|| course_code_taken(&fields.code)))?;
            tx.commit().await?;
            Ok(course)
        })
    }

    pub async fn get_course(&self, scope: Scope, id: i64) -> Result<Course> {
        self.get_visible(&COURSES, COURSE_COLUMNS, scope, id).await
    }

    pub async fn list_courses(&self, scope: Scope, page: Page) -> Result<Paged<Course>> {
        self.list_visible(
            &COURSES,
            COURSE_COLUMNS,
            scope,
            Filter::default(),
            "c.id",
            page,
        )
        .await
    }

    pub async fn update_course(
        &self,
        scope: Scope,
        id: i64,
        fields: &CourseFields,
    ) -> Result<Course> {
        with_pool!(self, pool => {
            let sql = format!(
                "UPDATE courses SET name = $1, code = $2, embedding_model = $3, match_threshold = $4, match_margin = $5
                 WHERE id = $6 RETURNING {COURSE_COLUMNS}"
            );
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, &COURSES, scope, id).await?;
            let course = sqlx::query_as::<_, Course>(&sql)
                .bind(&fields.name)
                .bind(&fields.code)
                .bind(&fields.embedding_model)
                .bind(fields.match_threshold)
                .bind(fields.match_margin)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_on_unique(|| course_code_taken(&fields.code)))
                .map_err(not_found_if_gone("Course", id))?;
            tx.commit().await?;
            Ok(course)
        })
    }

    /// Deletes a course with its students, sessions and everything recorded for them. Returns
    /// the blob keys that belonged to the deleted rows, for the caller to delete after the
    /// commit (see [`crate::sweep_orphan_blobs`] for why in that order).
    pub async fn delete_course(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_visible(scope, Owner::Course(id), &COURSES)
            .await
    }

    pub async fn create_student(
        &self,
        scope: Scope,
        course_id: i64,
        fields: &StudentFields,
    ) -> Result<Student> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, &COURSES, scope, course_id).await?;
            // Deleted by another request since the check: as if it had been gone before.
            let student = insert_student(&mut tx, course_id, fields)
                .await
                .map_err(not_found_if_gone("Course", course_id))?;
            tx.commit().await?;
            Ok(student)
        })
    }

    pub async fn get_student(&self, scope: Scope, id: i64) -> Result<Student> {
        self.get_visible(&STUDENTS, STUDENT_COLUMNS_S, scope, id)
            .await
    }

    /// Students visible in `scope`, optionally of one course, ordered by id.
    pub async fn list_students(
        &self,
        scope: Scope,
        course: Option<i64>,
        page: Page,
    ) -> Result<Paged<Student>> {
        self.list_visible(
            &STUDENTS,
            STUDENT_COLUMNS_S,
            scope,
            Filter::default().equal("s.course_id", course),
            "s.id",
            page,
        )
        .await
    }

    pub async fn update_student(
        &self,
        scope: Scope,
        id: i64,
        fields: &StudentFields,
    ) -> Result<Student> {
        with_pool!(self, pool => {
            let sql = format!(
                "UPDATE students SET name = $1, external_id = $2
                 WHERE id = $3 RETURNING {STUDENT_COLUMNS}"
            );
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, &STUDENTS, scope, id).await?;
            let student = sqlx::query_as::<_, Student>(&sql)
                .bind(&fields.name)
                .bind(&fields.external_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_on_unique(|| {
                    external_id_taken(&fields.external_id)
                }))
                .map_err(not_found_if_gone("Student", id))?;
            tx.commit().await?;
            Ok(student)
        })
    }

    /// Deletes a student with their reference photos; returns the blob keys to delete.
    pub async fn delete_student(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_visible(scope, Owner::Student(id), &STUDENTS)
            .await
    }

    pub async fn create_session(
        &self,
        scope: Scope,
        course_id: i64,
        fields: &SessionFields,
    ) -> Result<ClassSession> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, &COURSES, scope, course_id).await?;
            let sql = format!(
                "INSERT INTO sessions (course_id, title, held_at, status, created_at)
                 VALUES ($1, $2, $3, 'open', $4) RETURNING {SESSION_COLUMNS}"
            );
            let session = sqlx::query_as::<_, ClassSession>(&sql)
                .bind(course_id)
                .bind(&fields.title)
                .bind(fields.held_at)
                .bind(Utc::now())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| not_found_if_gone("Course", course_id)(e.into()))?;
            tx.commit().await?;
            Ok(session)
        })
    }

    pub async fn get_session(&self, scope: Scope, id: i64) -> Result<ClassSession> {
        self.get_visible(&SESSIONS, SESSION_COLUMNS_S, scope, id)
            .await
    }

    /// Sessions visible in `scope`, optionally of one course, most recently held first.
    pub async fn list_sessions(
        &self,
        scope: Scope,
        course: Option<i64>,
        page: Page,
    ) -> Result<Paged<ClassSession>> {
        self.list_visible(
            &SESSIONS,
            SESSION_COLUMNS_S,
            scope,
            Filter::default().equal("s.course_id", course),
            "s.held_at DESC, s.id DESC",
            page,
        )
        .await
    }

    pub async fn update_session(
        &self,
        scope: Scope,
        id: i64,
        fields: &SessionFields,
    ) -> Result<ClassSession> {
        with_pool!(self, pool => {
            let sql = format!(
                "UPDATE sessions SET title = $1, held_at = $2
                 WHERE id = $3 RETURNING {SESSION_COLUMNS}"
            );
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, &SESSIONS, scope, id).await?;
            let session = sqlx::query_as::<_, ClassSession>(&sql)
                .bind(&fields.title)
                .bind(fields.held_at)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| not_found_if_gone("Session", id)(e.into()))?;
            tx.commit().await?;
            Ok(session)
        })
    }

    /// Deletes a session with its photos and their faces; returns the blob keys to delete.
    pub async fn delete_session(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_visible(scope, Owner::Session(id), &SESSIONS)
            .await
    }
}

per_backend! {
    /// Enrols a student in a course inside the caller's transaction (which has checked the scope).
    pub(crate) async fn insert_student(
        tx: &mut Conn,
        course_id: i64,
        fields: &StudentFields,
    ) -> Result<Student> {
        let sql = format!(
            "INSERT INTO students (course_id, name, external_id, created_at)
             VALUES ($1, $2, $3, $4) RETURNING {STUDENT_COLUMNS}"
        );
        sqlx::query_as::<_, Student>(&sql)
            .bind(course_id)
            .bind(&fields.name)
            .bind(&fields.external_id)
            .bind(Utc::now())
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_on_unique(|| {
                external_id_taken(&fields.external_id)
            }))
    }
}
