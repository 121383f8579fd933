//! User administration for admins: `/api/auth/users/`.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_store::{Role, User, UserUpdate};

use crate::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::pagination::{PageParams, PagedResponse};

pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleDto {
    Admin,
    Instructor,
}

impl From<Role> for RoleDto {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::Instructor => Self::Instructor,
        }
    }
}

impl From<RoleDto> for Role {
    fn from(role: RoleDto) -> Self {
        match role {
            RoleDto::Admin => Self::Admin,
            RoleDto::Instructor => Self::Instructor,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: i64,
    pub username: String,
    pub role: RoleDto,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role.into(),
            active: u.active,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    /// Default: instructor.
    pub role: Option<RoleDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub role: Option<RoleDto>,
    /// Deactivating a user revokes all their tokens.
    pub active: Option<bool>,
    /// Changing the password revokes all the user's tokens.
    pub password: Option<String>,
}

/// The form a username is stored and looked up in: NFKC (a full-width `ｉｎｓｔ１` is `inst1`),
/// then lower case, so that `Inst1` and `inst1` are one user.
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.nfkc().collect::<String>().to_lowercase()
}

/// Checks a new username: 1–150 characters of letters, digits and `.@+-_` (Django's rule), and
/// returns it normalized (see [`normalize_username`]).
pub fn check_username(username: &str) -> Result<String, String> {
    let username = normalize_username(username);
    let ok_chars = username
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    if username.is_empty() || username.chars().count() > 150 || !ok_chars {
        return Err("username must be 1 to 150 letters, digits or @.+-_".into());
    }
    Ok(username)
}

/// Passwords attackers try first; refused whatever their length (compared in lower case).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "87654321",
    "11111111",
    "00000000",
    "12341234",
    "11223344",
    "qwertyui",
    "qwerty12",
    "qwerty123",
    "qwertyuiop",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "asdfghjk",
    "asdf1234",
    "abcd1234",
    "abc12345",
    "aaaaaaaa",
    "iloveyou",
    "letmein1",
    "welcome1",
    "welcome123",
    "admin123",
    "administrator",
    "changeme",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "starwars",
    "whatever",
    "computer",
    "internet",
    "attendansee",
    "teacher1",
    "student1",
    "university",
    "school123",
];

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters, not only whitespace, not
/// the username, not one of the commonest passwords.
pub fn check_password(password: &str, username: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.trim().is_empty() {
        return Err("password must not be only spaces".into());
    }
    let lower = password.to_lowercase();
    if normalize_username(password) == normalize_username(username) {
        return Err("password must not be the username".into());
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err("this password is among the most common ones; choose another".into());
    }
    Ok(())
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
}

/// All users (admin only).
#[utoipa::path(get, path = "/api/auth/users/", tag = "users", params(PageParams),
    responses((status = 200, body = PagedResponse<UserDto>), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<PagedResponse<UserDto>>> {
    actor.require_admin()?;
    let page = params.page()?;
    let users = state.store.list_users(page).await?;
    Ok(Json(PagedResponse::new(&uri, page, users, UserDto::from)))
}

/// Create a user (admin only).
#[utoipa::path(post, path = "/api/auth/users/", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserDto>)> {
    actor.require_admin()?;
    let username =
        check_username(&body.username).map_err(|m| ApiError::invalid_field("username", m))?;
    check_password(&body.password, &username)
        .map_err(|m| ApiError::invalid_field("password", m))?;
    let role = body.role.unwrap_or(RoleDto::Instructor).into();
    let user = state
        .store
        .create_user(&username, &body.password, role)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user (admin only).
#[utoipa::path(get, path = "/api/auth/users/{id}/", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserDto), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserDto>> {
    actor.require_admin()?;
    Ok(Json(state.store.get_user(id).await?.into()))
}

/// Change a user's role, active flag or password (admin only).
#[utoipa::path(patch, path = "/api/auth/users/{id}/", tag = "users", request_body = UpdateUser, params(("id" = i64, Path)),
    responses((status = 200, body = UserDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<Json<UserDto>> {
    actor.require_admin()?;
    if id == actor.user.id && (body.active == Some(false) || body.role == Some(RoleDto::Instructor))
    {
        return Err(ApiError::validation(
            "You cannot deactivate or demote your own account",
        ));
    }
    if let Some(password) = &body.password {
        let user = state.store.get_user(id).await?;
        check_password(password, &user.username)
            .map_err(|m| ApiError::invalid_field("password", m))?;
    }
    let update = UserUpdate {
        role: body.role.map(Role::from),
        active: body.active,
        password: body.password,
    };
    Ok(Json(state.store.update_user(id, update).await?.into()))
}
