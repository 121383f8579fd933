//! SQL for courses and what hangs off them directly: students and class sessions.
//!
//! Every read and write takes a [`Scope`]; an object outside it is reported exactly like a
//! missing one, so callers cannot leak another instructor's data by accident.

use chrono::Utc;

use crate::blob_refs::Owner;
use crate::error::conflict_on_unique;
use crate::{
    ClassSession, Course, CourseFields, Page, Paged, Result, Scope, SessionFields, Store,
    StoreError, Student, StudentFields, UserId,
};

// Unqualified, for RETURNING (SQLite does not allow table aliases there) and one-table queries.
const COURSE_COLUMNS: &str =
    "id, owner_id, name, code, embedding_model, match_threshold, match_margin, created_at";
const STUDENT_COLUMNS: &str = "id, course_id, name, external_id, created_at";
const STUDENT_COLUMNS_S: &str = "s.id, s.course_id, s.name, s.external_id, s.created_at";
const SESSION_COLUMNS: &str = "id, course_id, title, held_at, status, created_at";
const SESSION_COLUMNS_S: &str = "s.id, s.course_id, s.title, s.held_at, s.status, s.created_at";

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
        let sql = format!(
            "INSERT INTO courses (owner_id, name, code, embedding_model, match_threshold, match_margin, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COURSE_COLUMNS}"
        );
        let mut tx = self.write_tx().await?;
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
    }

    pub async fn get_course(&self, scope: Scope, id: i64) -> Result<Course> {
        let sql = format!(
            "SELECT {COURSE_COLUMNS} FROM courses WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)"
        );
        sqlx::query_as::<_, Course>(&sql)
            .bind(id)
            .bind(scope.owner())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "Course",
                id,
            })
    }

    pub async fn list_courses(&self, scope: Scope, page: Page) -> Result<Paged<Course>> {
        let filter = "($1 IS NULL OR owner_id = $1)";
        let total = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM courses WHERE {filter}"))
            .bind(scope.owner())
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT {COURSE_COLUMNS} FROM courses WHERE {filter} ORDER BY id LIMIT $2 OFFSET $3"
        );
        let items = sqlx::query_as::<_, Course>(&sql)
            .bind(scope.owner())
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Paged { total, items })
    }

    pub async fn update_course(
        &self,
        scope: Scope,
        id: i64,
        fields: &CourseFields,
    ) -> Result<Course> {
        let sql = format!(
            "UPDATE courses SET name = $1, code = $2, embedding_model = $3, match_threshold = $4, match_margin = $5
             WHERE id = $6 AND ($7 IS NULL OR owner_id = $7) RETURNING {COURSE_COLUMNS}"
        );
        let mut tx = self.write_tx().await?;
        let course = sqlx::query_as::<_, Course>(&sql)
            .bind(&fields.name)
            .bind(&fields.code)
            .bind(&fields.embedding_model)
            .bind(fields.match_threshold)
            .bind(fields.match_margin)
            .bind(id)
            .bind(scope.owner())
            .fetch_optional(&mut *tx)
            .await
            .map_err(conflict_on_unique(|| course_code_taken(&fields.code)))?
            .ok_or(StoreError::NotFound {
                entity: "Course",
                id,
            })?;
        tx.commit().await?;
        Ok(course)
    }

    /// Deletes a course with its students, sessions and everything recorded for them. Returns
    /// the blob keys that belonged to the deleted rows, for the caller to delete after the
    /// commit (see [`crate::sweep_orphan_blobs`] for why in that order).
    pub async fn delete_course(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        let visible = "SELECT id FROM courses WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)";
        self.delete_visible(scope, Owner::Course(id), "Course", visible)
            .await
    }

    pub async fn create_student(
        &self,
        scope: Scope,
        course_id: i64,
        fields: &StudentFields,
    ) -> Result<Student> {
        let mut tx = self.write_tx().await?;
        require_course(&mut tx, scope, course_id).await?;
        let sql = format!(
            "INSERT INTO students (course_id, name, external_id, created_at)
             VALUES ($1, $2, $3, $4) RETURNING {STUDENT_COLUMNS}"
        );
        let student = sqlx::query_as::<_, Student>(&sql)
            .bind(course_id)
            .bind(&fields.name)
            .bind(&fields.external_id)
            .bind(Utc::now())
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_on_unique(|| {
                external_id_taken(&fields.external_id)
            }))?;
        tx.commit().await?;
        Ok(student)
    }

    pub async fn get_student(&self, scope: Scope, id: i64) -> Result<Student> {
        let sql = format!(
            "SELECT {STUDENT_COLUMNS_S} FROM students s JOIN courses c ON c.id = s.course_id
             WHERE s.id = $1 AND ($2 IS NULL OR c.owner_id = $2)"
        );
        sqlx::query_as::<_, Student>(&sql)
            .bind(id)
            .bind(scope.owner())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "Student",
                id,
            })
    }

    /// Students visible in `scope`, optionally of one course, ordered by id.
    pub async fn list_students(
        &self,
        scope: Scope,
        course: Option<i64>,
        page: Page,
    ) -> Result<Paged<Student>> {
        let from = "FROM students s JOIN courses c ON c.id = s.course_id
                    WHERE ($1 IS NULL OR c.owner_id = $1) AND ($2 IS NULL OR s.course_id = $2)";
        let total = sqlx::query_scalar(&format!("SELECT COUNT(*) {from}"))
            .bind(scope.owner())
            .bind(course)
            .fetch_one(&self.pool)
            .await?;
        let sql = format!("SELECT {STUDENT_COLUMNS_S} {from} ORDER BY s.id LIMIT $3 OFFSET $4");
        let items = sqlx::query_as::<_, Student>(&sql)
            .bind(scope.owner())
            .bind(course)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Paged { total, items })
    }

    pub async fn update_student(
        &self,
        scope: Scope,
        id: i64,
        fields: &StudentFields,
    ) -> Result<Student> {
        let sql = format!(
            "UPDATE students SET name = $1, external_id = $2
             WHERE id = $3 AND course_id IN (SELECT id FROM courses WHERE $4 IS NULL OR owner_id = $4)
             RETURNING {STUDENT_COLUMNS}"
        );
        let mut tx = self.write_tx().await?;
        let student = sqlx::query_as::<_, Student>(&sql)
            .bind(&fields.name)
            .bind(&fields.external_id)
            .bind(id)
            .bind(scope.owner())
            .fetch_optional(&mut *tx)
            .await
            .map_err(conflict_on_unique(|| {
                external_id_taken(&fields.external_id)
            }))?
            .ok_or(StoreError::NotFound {
                entity: "Student",
                id,
            })?;
        tx.commit().await?;
        Ok(student)
    }

    /// Deletes a student with their reference photos; returns the blob keys to delete.
    pub async fn delete_student(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_in_course("students", "Student", Owner::Student(id), scope)
            .await
    }

    pub async fn create_session(
        &self,
        scope: Scope,
        course_id: i64,
        fields: &SessionFields,
    ) -> Result<ClassSession> {
        let mut tx = self.write_tx().await?;
        require_course(&mut tx, scope, course_id).await?;
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
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    pub async fn get_session(&self, scope: Scope, id: i64) -> Result<ClassSession> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS_S} FROM sessions s JOIN courses c ON c.id = s.course_id
             WHERE s.id = $1 AND ($2 IS NULL OR c.owner_id = $2)"
        );
        sqlx::query_as::<_, ClassSession>(&sql)
            .bind(id)
            .bind(scope.owner())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "Session",
                id,
            })
    }

    /// Sessions visible in `scope`, optionally of one course, most recently held first.
    pub async fn list_sessions(
        &self,
        scope: Scope,
        course: Option<i64>,
        page: Page,
    ) -> Result<Paged<ClassSession>> {
        let from = "FROM sessions s JOIN courses c ON c.id = s.course_id
                    WHERE ($1 IS NULL OR c.owner_id = $1) AND ($2 IS NULL OR s.course_id = $2)";
        let total = sqlx::query_scalar(&format!("SELECT COUNT(*) {from}"))
            .bind(scope.owner())
            .bind(course)
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT {SESSION_COLUMNS_S} {from} ORDER BY s.held_at DESC, s.id DESC LIMIT $3 OFFSET $4"
        );
        let items = sqlx::query_as::<_, ClassSession>(&sql)
            .bind(scope.owner())
            .bind(course)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Paged { total, items })
    }

    pub async fn update_session(
        &self,
        scope: Scope,
        id: i64,
        fields: &SessionFields,
    ) -> Result<ClassSession> {
        let sql = format!(
            "UPDATE sessions SET title = $1, held_at = $2
             WHERE id = $3 AND course_id IN (SELECT id FROM courses WHERE $4 IS NULL OR owner_id = $4)
             RETURNING {SESSION_COLUMNS}"
        );
        let mut tx = self.write_tx().await?;
        let session = sqlx::query_as::<_, ClassSession>(&sql)
            .bind(&fields.title)
            .bind(fields.held_at)
            .bind(id)
            .bind(scope.owner())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound {
                entity: "Session",
                id,
            })?;
        tx.commit().await?;
        Ok(session)
    }

    /// Sets a session's processing status (not scoped: the job runner's bookkeeping).
    pub async fn set_session_status(&self, id: i64, status: crate::SessionStatus) -> Result<()> {
        sqlx::query("UPDATE sessions SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a session with its photos and their faces; returns the blob keys to delete.
    pub async fn delete_session(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_in_course("sessions", "Session", Owner::Session(id), scope)
            .await
    }

    /// Deletes one row of a table whose rows belong to a course, if the course is in scope;
    /// returns the blob keys only the deleted rows referenced.
    async fn delete_in_course(
        &self,
        table: &'static str,
        entity: &'static str,
        owner: Owner,
        scope: Scope,
    ) -> Result<Vec<String>> {
        let visible = format!(
            "SELECT id FROM {table} WHERE id = $1
             AND course_id IN (SELECT id FROM courses WHERE $2 IS NULL OR owner_id = $2)"
        );
        self.delete_visible(scope, owner, entity, &visible).await
    }
}

/// Fails with `NotFound` unless the course exists in `scope`. Called inside the transaction that
/// then writes below the course, so the course cannot vanish between the check and the insert.
async fn require_course(
    tx: &mut sqlx::SqliteConnection,
    scope: Scope,
    course_id: i64,
) -> Result<()> {
    let visible: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM courses WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)",
    )
    .bind(course_id)
    .bind(scope.owner())
    .fetch_optional(&mut *tx)
    .await?;
    match visible {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            entity: "Course",
            id: course_id,
        }),
    }
}
