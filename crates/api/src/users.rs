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
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::pagination::{PageParams, PagedResponse};

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
    let page = params.page()?;
    let users = state.services.accounts().list(&actor.user, page).await?;
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
    let role = body.role.unwrap_or(RoleDto::Instructor).into();
    let user = state
        .services
        .accounts()
        .create_as(&actor.user, &body.username, &body.password, role)
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
    let user = state.services.accounts().get(&actor.user, id).await?;
    Ok(Json(user.into()))
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
    let update = UserUpdate {
        role: body.role.map(Role::from),
        active: body.active,
        password: body.password,
    };
    let user = state
        .services
        .accounts()
        .update(&actor.user, id, update)
        .await?;
    Ok(Json(user.into()))
}
