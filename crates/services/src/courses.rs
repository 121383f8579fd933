//! Courses, their students and their sessions: the rules for their fields (lengths, similarity
//! ranges, the years a session may be held in, who may own a course), reading them, and the
//! deletions, which also erase every file the deleted rows pointed to.

use chrono::{DateTime, Datelike, Timelike, Utc};

use attendansee_store::{
    ClassSession, Course, CourseFields, Page, Paged, Scope, SessionFields, Student, StudentFields,
    User,
};
use attendansee_vocabulary::ErrorKind;

use crate::users::require_admin;
use crate::validate::{optional_text, text};
use crate::{ServiceError, ServiceResult, Services};

/// Longest course and student name, and session title.
pub const NAME_MAX: usize = 200;
/// Longest course code.
pub const CODE_MAX: usize = 50;
/// Longest student number.
pub const EXTERNAL_ID_MAX: usize = 64;

/// A match threshold must lie here (far outside it would match everyone or nobody).
const THRESHOLD_RANGE: std::ops::Range<f32> = 0.05..1.0;
/// A margin over the runner-up must lie here.
const MARGIN_RANGE: std::ops::Range<f32> = 0.0..1.0;

/// Years a session may be held in. Outside them a time has no RFC 3339 form (years beyond 4
/// digits or before year 0), and the store keeps times as text whose order is the time's order
/// only while every year has 4 digits. Nobody recorded attendance with this service before 1970.
const HELD_AT_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// A new course, as asked for.
#[derive(Clone, Debug, Default)]
pub struct NewCourse {
    pub name: String,
    pub code: String,
    /// Admins only: the instructor who owns it (default: the caller).
    pub owner: Option<i64>,
    pub embedding_model: Option<String>,
    pub match_threshold: Option<f32>,
    pub match_margin: Option<f32>,
}

/// Changes to a course: `None` keeps a field; `Some(None)` returns it to the default.
#[derive(Clone, Debug, Default)]
pub struct CourseChanges {
    pub name: Option<String>,
    pub code: Option<String>,
    pub embedding_model: Option<Option<String>>,
    pub match_threshold: Option<Option<f32>>,
    pub match_margin: Option<Option<f32>>,
}

/// Changes to a student: `None` keeps a field; `Some(None)` clears the external id.
#[derive(Clone, Debug, Default)]
pub struct StudentChanges {
    pub name: Option<String>,
    pub external_id: Option<Option<String>>,
}

/// Changes to a session: `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct SessionChanges {
    pub title: Option<String>,
    pub held_at: Option<DateTime<Utc>>,
}

/// A similarity setting must lie in `range`.
fn check_similarity(
    field: &str,
    value: Option<f32>,
    range: std::ops::Range<f32>,
) -> ServiceResult<Option<f32>> {
    match value {
        Some(v) if !range.contains(&v) => Err(ServiceError::invalid_field(
            field,
            format!(
                "{field} must be at least {} and below {}",
                range.start, range.end
            ),
        )),
        other => Ok(other),
    }
}

/// `held_at` must be a time we can answer in RFC 3339 and sort: no leap second (chrono keeps
/// `23:59:60` as a nanosecond count past 10⁹, which it then writes back as `:59.1000000000`).
fn check_held_at(held_at: DateTime<Utc>) -> ServiceResult<DateTime<Utc>> {
    if !HELD_AT_YEARS.contains(&held_at.year()) {
        return Err(ServiceError::invalid_field(
            "held_at",
            format!(
                "held_at must be in the years {} to {}",
                HELD_AT_YEARS.start(),
                HELD_AT_YEARS.end()
            ),
        ));
    }
    if held_at.nanosecond() >= 1_000_000_000 {
        return Err(ServiceError::invalid_field(
            "held_at",
            "held_at must not be a leap second (second 60)",
        ));
    }
    Ok(held_at)
}

impl Services {
    /// A course's recognizer must be a known one (installed or not: processing says which is
    /// missing).
    fn check_course_model(&self, model: Option<String>) -> ServiceResult<Option<String>> {
        match model {
            Some(model) => match self.check_recognizer("embedding_model", &model) {
                Err(e) if e.kind == ErrorKind::ValidationError => Err(e),
                _ => Ok(Some(model)),
            },
            None => Ok(None),
        }
    }

    pub async fn list_courses(&self, scope: Scope, page: Page) -> ServiceResult<Paged<Course>> {
        Ok(self.store.list_courses(scope, page).await?)
    }

    pub async fn get_course(&self, scope: Scope, id: i64) -> ServiceResult<Course> {
        Ok(self.store.get_course(scope, id).await?)
    }

    /// Creates a course owned by the caller (or, for admins, by `owner`).
    pub async fn create_course(&self, actor: &User, new: NewCourse) -> ServiceResult<Course> {
        let fields = CourseFields {
            name: text("name", &new.name, NAME_MAX)?,
            code: text("code", &new.code, CODE_MAX)?,
            embedding_model: self.check_course_model(new.embedding_model)?,
            match_threshold: check_similarity(
                "match_threshold",
                new.match_threshold,
                THRESHOLD_RANGE,
            )?,
            match_margin: check_similarity("match_margin", new.match_margin, MARGIN_RANGE)?,
        };
        let owner = match new.owner {
            None => actor.id,
            Some(owner) if owner == actor.id => owner,
            Some(owner) => {
                require_admin(actor)?;
                self.store
                    .get_user(owner)
                    .await
                    .map_err(|_| {
                        ServiceError::invalid_field("owner", format!("User {owner} not found"))
                    })?
                    .id
            }
        };
        Ok(self.store.create_course(owner, &fields).await?)
    }

    pub async fn update_course(
        &self,
        scope: Scope,
        id: i64,
        changes: CourseChanges,
    ) -> ServiceResult<Course> {
        let current = self.store.get_course(scope, id).await?;
        let fields = CourseFields {
            name: text(
                "name",
                changes.name.as_deref().unwrap_or(&current.name),
                NAME_MAX,
            )?,
            code: text(
                "code",
                changes.code.as_deref().unwrap_or(&current.code),
                CODE_MAX,
            )?,
            embedding_model: match changes.embedding_model {
                None => current.embedding_model,
                Some(model) => self.check_course_model(model)?,
            },
            match_threshold: match changes.match_threshold {
                None => current.match_threshold,
                Some(v) => check_similarity("match_threshold", v, THRESHOLD_RANGE)?,
            },
            match_margin: match changes.match_margin {
                None => current.match_margin,
                Some(v) => check_similarity("match_margin", v, MARGIN_RANGE)?,
            },
        };
        Ok(self.store.update_course(scope, id, &fields).await?)
    }

    /// Deletes a course with everything in it, then its files.
    pub async fn delete_course(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_course(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }

    pub async fn list_students(
        &self,
        scope: Scope,
        course: Option<i64>,
        page: Page,
    ) -> ServiceResult<Paged<Student>> {
        Ok(self.store.list_students(scope, course, page).await?)
    }

    pub async fn get_student(&self, scope: Scope, id: i64) -> ServiceResult<Student> {
        Ok(self.store.get_student(scope, id).await?)
    }

    /// The fields of a student, checked.
    pub fn student_fields(name: &str, external_id: Option<&str>) -> ServiceResult<StudentFields> {
        Ok(StudentFields {
            name: text("name", name, NAME_MAX)?,
            external_id: optional_text("external_id", external_id, EXTERNAL_ID_MAX)?,
        })
    }

    pub async fn create_student(
        &self,
        scope: Scope,
        course: i64,
        name: &str,
        external_id: Option<&str>,
    ) -> ServiceResult<Student> {
        let fields = Self::student_fields(name, external_id)?;
        Ok(self.store.create_student(scope, course, &fields).await?)
    }

    pub async fn update_student(
        &self,
        scope: Scope,
        id: i64,
        changes: StudentChanges,
    ) -> ServiceResult<Student> {
        let current = self.store.get_student(scope, id).await?;
        let external_id = match changes.external_id {
            None => current.external_id,
            Some(value) => optional_text("external_id", value.as_deref(), EXTERNAL_ID_MAX)?,
        };
        let fields = StudentFields {
            name: text(
                "name",
                changes.name.as_deref().unwrap_or(&current.name),
                NAME_MAX,
            )?,
            external_id,
        };
        Ok(self.store.update_student(scope, id, &fields).await?)
    }

    /// Deletes a student with their reference photos (faces assigned to them become unknown).
    pub async fn delete_student(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_student(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }

    pub async fn list_sessions(
        &self,
        scope: Scope,
        course: Option<i64>,
        page: Page,
    ) -> ServiceResult<Paged<ClassSession>> {
        Ok(self.store.list_sessions(scope, course, page).await?)
    }

    pub async fn get_session(&self, scope: Scope, id: i64) -> ServiceResult<ClassSession> {
        Ok(self.store.get_session(scope, id).await?)
    }

    pub async fn create_session(
        &self,
        scope: Scope,
        course: i64,
        title: &str,
        held_at: DateTime<Utc>,
    ) -> ServiceResult<ClassSession> {
        let fields = SessionFields {
            title: text("title", title, NAME_MAX)?,
            held_at: check_held_at(held_at)?,
        };
        Ok(self.store.create_session(scope, course, &fields).await?)
    }

    pub async fn update_session(
        &self,
        scope: Scope,
        id: i64,
        changes: SessionChanges,
    ) -> ServiceResult<ClassSession> {
        let current = self.store.get_session(scope, id).await?;
        let fields = SessionFields {
            title: text(
                "title",
                changes.title.as_deref().unwrap_or(&current.title),
                NAME_MAX,
            )?,
            held_at: changes
                .held_at
                .map(check_held_at)
                .transpose()?
                .unwrap_or(current.held_at),
        };
        Ok(self.store.update_session(scope, id, &fields).await?)
    }

    /// Deletes a session with its photos and faces, then their files.
    pub async fn delete_session(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_session(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }
}
