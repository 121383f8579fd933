//! Records as the store hands them out, and the inputs it takes. These are not API types:
//! the HTTP layer converts them into its own DTOs.

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

impl Scope {
    pub(crate) fn owner(self) -> Option<UserId> {
        match self {
            Scope::All => None,
            Scope::OwnedBy(id) => Some(id),
        }
    }
}

/// One page of a listing, numbered from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
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
    pub created_at: DateTime<Utc>,
}

/// A course's writable fields, complete (create and update alike).
#[derive(Clone, Debug)]
pub struct CourseFields {
    pub name: String,
    pub code: String,
    pub embedding_model: Option<String>,
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
