//! Authentication: bearer tokens on every protected route, login and logout, and a user's own
//! token management under `/api/auth/`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Extension;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_store::{ApiToken, Scope, User, credentials};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorType};
use crate::extract::{Json, Path};
use crate::users::UserDto;
use attendansee_services::users::{check_token_label, normalize_username};

/// The authenticated user of a request, put there by [`require_token`].
#[derive(Clone, Debug)]
pub struct Actor {
    pub user: User,
    pub token_id: i64,
}

impl Actor {
    pub fn scope(&self) -> Scope {
        self.user.scope()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Actor>().cloned().ok_or_else(|| {
            ApiError::internal("handler needs an Actor but its route has no authentication layer")
        })
    }
}

/// Middleware for every protected route: a valid `Authorization: Bearer <token>` or 401.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> ApiResult<Response> {
    let header = request.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("Authentication credentials were not provided: send `Authorization: Bearer <token>`")
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| credentials::is_well_formed_token(token))
        .ok_or_else(|| {
            ApiError::unauthorized("Malformed Authorization header: expected `Bearer <token>`")
        })?;
    let (user, token_id) = state
        .services
        .accounts()
        .authenticate(token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("Invalid, expired or revoked token"))?;
    tracing::Span::current().record("user", user.id);
    request.extensions_mut().insert(Actor { user, token_id });
    Ok(next.run(request).await)
}

pub fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// What the token is for, shown when listing tokens (default "login").
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is stored.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDto {
    pub id: i64,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for TokenDto {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            label: t.label,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub label: String,
    /// Lifetime in days, 1–365 (default: the server's token lifetime).
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret, shown only in this response.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenDto,
}

/// Exchange a username and password for an API token. After a few failed attempts, a username
/// and a client address must each wait before their next try (429 `TooManyRequests` with
/// `Retry-After`), twice as long after every further failure.
#[utoipa::path(post, path = "/api/auth/login/", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let label = body.label.unwrap_or_else(|| "login".into());
    check_token_label(&label)?;
    let address = connection.map(|Extension(ConnectInfo(peer))| peer.ip());
    // The check runs in a task of its own: a client that hangs up cannot cut it short, so its
    // try is counted and its password thread stays taken until the check is done.
    let check = tokio::spawn(check_password(
        state.clone(),
        body.username,
        body.password,
        address,
    ));
    let user = check
        .await
        .map_err(|e| ApiError::internal(format!("login check failed: {e}")))??;
    let issued = state
        .services
        .accounts()
        .issue_token(&user, &label, state.settings.token_ttl)
        .await?;
    tracing::info!(user = user.id, token = issued.token.id, "login");
    Ok(Json(LoginResponse {
        token: issued.secret,
        expires_at: issued.token.expires_at,
        user: user.into(),
    }))
}

/// Longest password looked at: anything longer is no password of ours (and would only cost the
/// hash function time).
const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a login's password under the failed-login limits: the user, or 401, or 429.
async fn check_password(
    state: AppState,
    username: String,
    password: String,
    address: Option<std::net::IpAddr>,
) -> ApiResult<User> {
    let invalid = || ApiError::unauthorized("Invalid username or password");
    let username = normalize_username(&username);
    // No account has such a name or password (`check_username`): no check, no record.
    if username.is_empty() || username.chars().count() > 150 || password.len() > MAX_PASSWORD_BYTES
    {
        return Err(invalid());
    }
    let attempt = state
        .login_throttle
        .begin(&username, address, Instant::now())
        .map_err(|wait| {
            let seconds = u32::try_from(wait.as_secs_f64().ceil() as u64)
                .unwrap_or(u32::MAX)
                .max(1);
            ApiError {
                retry_after: Some(seconds),
                ..ApiError::new(
                    ErrorType::TooManyRequests,
                    format!("Too many failed logins; try again in {seconds} s"),
                )
            }
        })?;
    // A storage error ends the try without counting it (dropping `attempt`).
    let Some(user) = state
        .services
        .accounts()
        .verify_login(&username, &password)
        .await?
    else {
        attempt.failed();
        tracing::info!(%username, address = ?address, "login failed");
        return Err(invalid());
    };
    attempt.succeeded();
    Ok(user)
}

/// Revoke the token this request was made with.
#[utoipa::path(post, path = "/api/auth/logout/", tag = "auth", responses((status = 204)))]
async fn logout(State(state): State<AppState>, actor: Actor) -> ApiResult<StatusCode> {
    state
        .services
        .accounts()
        .revoke_token(&actor.user, actor.token_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user this token belongs to.
#[utoipa::path(get, path = "/api/auth/me/", tag = "auth", responses((status = 200, body = UserDto)))]
async fn me(actor: Actor) -> Json<UserDto> {
    Json(actor.user.into())
}

/// The caller's live tokens (never their secrets).
#[utoipa::path(get, path = "/api/auth/tokens/", tag = "auth", responses((status = 200, body = Vec<TokenDto>)))]
async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<TokenDto>>> {
    let tokens = state.services.accounts().list_tokens(&actor.user).await?;
    Ok(Json(tokens.into_iter().map(TokenDto::from).collect()))
}

/// Issue another token for the caller, e.g. for a script.
#[utoipa::path(post, path = "/api/auth/tokens/", tag = "auth", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    check_token_label(&body.label)?;
    let ttl = match body.expires_in_days {
        None => state.settings.token_ttl,
        Some(days @ 1..=365) => Duration::days(i64::from(days)),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "expires_in_days",
                "expires_in_days must be 1 to 365",
            ));
        }
    };
    let issued = state
        .services
        .accounts()
        .issue_token(&actor.user, body.label.trim(), ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: issued.secret,
            info: issued.token.into(),
        }),
    ))
}

/// Revoke one of the caller's tokens.
#[utoipa::path(delete, path = "/api/auth/tokens/{id}/", tag = "auth",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state
        .services
        .accounts()
        .revoke_token(&actor.user, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
