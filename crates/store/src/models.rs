//! Records as the store hands them out, and the inputs it takes. These are not API types:
//! the HTTP layer converts them into its own DTOs.

use attendansee_vocabulary::{JobKind, Reason, Source};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type UserId = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum Role {
    Admin,
    Instructor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Instructor => "instructor",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// What this user may see: everything for an admin, their own courses otherwise.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Admin => Scope::All,
            Role::Instructor => Scope::OwnedBy(self.id),
        }
    }
}

/// Fields an admin may change on a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub password: Option<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: UserId,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A freshly issued token: the only moment its secret exists outside the client.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

/// Which objects a query may touch. Ownership is enforced in the SQL, not by callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    OwnedBy(UserId),
}

/// One page of a listing, numbered from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
    /// Every row at once, for callers that need the whole list (an export, a report).
    pub const ALL: Page = Page {
        number: 1,
        size: u32::MAX / 2,
    };

    pub(crate) fn limit(self) -> i64 {
        i64::from(self.size)
    }
    pub(crate) fn offset(self) -> i64 {
        i64::from(self.number.saturating_sub(1)) * i64::from(self.size)
    }
}

/// A page of results and the total count across all pages.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    pub total: i64,
    pub items: Vec<T>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Course {
    pub id: i64,
    pub owner_id: UserId,
    pub name: String,
    pub code: String,
    pub embedding_model: Option<String>,
    /// Overrides the model's calibrated match threshold for this course.
    pub match_threshold: Option<f32>,
    /// Overrides the model's margin over the runner-up for this course.
    pub match_margin: Option<f32>,
    pub created_at: DateTime<Utc>,
}

/// A course's writable fields, complete (create and update alike).
#[derive(Clone, Debug)]
pub struct CourseFields {
    pub name: String,
    pub code: String,
    pub embedding_model: Option<String>,
    pub match_threshold: Option<f32>,
    pub match_margin: Option<f32>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Student {
    pub id: i64,
    pub course_id: i64,
    pub name: String,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct StudentFields {
    pub name: String,
    pub external_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum SessionStatus {
    Open,
    Processing,
    Processed,
    Failed,
}

/// A class session (one lecture), not an HTTP session.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClassSession {
    pub id: i64,
    pub course_id: i64,
    pub title: String,
    pub held_at: DateTime<Utc>,
    pub status: SessionStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct SessionFields {
    pub title: String,
    pub held_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum ImageStatus {
    Pending,
    Processed,
    Failed,
}

/// A photo of a class session, as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionImage {
    pub id: i64,
    pub session_id: i64,
    pub blob_key: String,
    pub sha256: String,
    pub original_name: Option<String>,
    pub width: i64,
    pub height: i64,
    pub status: ImageStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The preview the worker made when it processed the photo (`blob_keys::session_preview`).
    pub preview_blob_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NewImage {
    pub blob_key: String,
    pub sha256: String,
    pub original_name: Option<String>,
    pub width: i64,
    pub height: i64,
}

/// What adding a photo to a session did.
#[derive(Clone, Debug)]
pub enum ImageInsert {
    Stored(SessionImage),
    /// The same bytes were already in this session: nothing was added.
    Duplicate(SessionImage),
}

/// What committing a processed photo's results did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhotoCommit {
    /// They are the photo's results: the ids of its new crops.
    Recorded(Vec<i64>),
    /// The photo had been processed already (by another node that was given the same job after
    /// this one's lease ran out): nothing was recorded, and the blobs written for it are nobody's.
    AlreadyProcessed,
}

/// A face found in a session photo (or a reference photo).
#[derive(Clone, Debug)]
pub struct FaceCrop {
    pub id: i64,
    pub image_id: Option<i64>,
    pub reference_photo_id: Option<i64>,
    /// x, y, width, height in the photo's pixels.
    pub bbox: [f32; 4],
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
    /// Face size in pixels (the smaller side of the box).
    pub quality_size: Option<f32>,
    /// Sharpness of the aligned crop (variance of its Laplacian).
    pub quality_blur: Option<f32>,
    pub crop_blob_key: Option<String>,
    pub student_id: Option<i64>,
    /// Who assigned the student (or decided there is none); `None` when nobody has yet.
    pub assignment_source: Option<Source>,
    pub confidence: Option<f32>,
    pub cluster_id: Option<i64>,
    pub not_a_student: bool,
    /// The last automatic decision about this crop, if one was made.
    pub decision: Option<MatchDecision>,
    pub created_at: DateTime<Utc>,
}

/// Why the automatic assignment did what it did to a crop (kept whatever it decided).
#[derive(Clone, Debug, PartialEq)]
pub struct MatchDecision {
    pub model: String,
    pub reason: Reason,
    pub best: Option<(i64, f32)>,
    pub runner_up: Option<(i64, f32)>,
}

/// A face to record for a photo, with its embedding.
#[derive(Clone, Debug)]
pub struct NewCrop {
    pub bbox: [f32; 4],
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
    pub quality_size: f32,
    pub quality_blur: Option<f32>,
    pub crop_blob_key: Option<String>,
    /// (model name, L2-normalised vector).
    pub embedding: Option<(String, Vec<f32>)>,
}

/// Which crops a listing returns.
#[derive(Clone, Debug, Default)]
pub struct CropFilter {
    pub session: Option<i64>,
    pub image: Option<i64>,
    /// Only crops assigned to no student and not marked "not a student".
    pub unassigned: bool,
    /// Only faces at least this many pixels in size.
    pub min_size: Option<f32>,
}

#[derive(Clone, Debug)]
pub struct EmbeddingRecord {
    pub id: i64,
    pub crop_id: i64,
    pub model_name: String,
    pub vector: Vec<f32>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    /// Finished, but some of its items (photos) failed; the others were done.
    Partial,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Partial | Self::Failed | Self::Cancelled
        )
    }
}

/// A job's kind as stored: one this version runs, or the name of one it does not know (queued by
/// another version of AttendanSee). The unknown one is kept, not refused, so that such a job can
/// still be listed, shown and cancelled; `claim_job` fails it instead of running it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredJobKind {
    Known(JobKind),
    Unknown(String),
}

impl StoredJobKind {
    /// The stored name.
    pub fn name(&self) -> &str {
        match self {
            Self::Known(kind) => kind.as_str(),
            Self::Unknown(name) => name,
        }
    }
}

/// A unit of background work (e.g. processing a session's photos).
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub id: i64,
    pub kind: StoredJobKind,
    /// JSON.
    pub payload: String,
    pub status: JobStatus,
    pub done: i64,
    pub total: i64,
    pub error: Option<String>,
    /// JSON list of per-item errors.
    pub errors: String,
    /// JSON object of timings and counts.
    pub stats: String,
    pub course_id: Option<i64>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The node that claimed it last (a running job: the node working on it).
    pub lease_owner: Option<String>,
    /// Until when that claim holds unless renewed (a running job past it is claimed again).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// How many times it has been claimed.
    pub attempts: i64,
}

/// A node's hold on the jobs it runs: its id, and how long a claim or a renewal holds. Several
/// nodes share one queue; a job whose lease runs out (its node died) is claimed by another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLease {
    /// The node's id, random per process start.
    pub owner: String,
    pub duration: std::time::Duration,
}

/// Whether a node still holds a job it claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Still its own and running.
    Held,
    /// Its own, but cancelled by a user: stop, and record the end.
    Cancelled,
    /// Another node has it, or it has ended: stop quietly, writing nothing more.
    Lost,
}
