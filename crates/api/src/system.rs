//! Operational routes: health, metrics, the OpenAPI document, and the answers for unknown routes.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Json;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is down (then the status code is 503).
    pub status: &'static str,
    pub version: &'static str,
    /// `ok` or `error`.
    pub database: &'static str,
}

/// Liveness and readiness; needs no token.
#[utoipa::path(get, path = "/api/health/", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database_ok = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            false
        }
    };
    let health = Health {
        status: if database_ok { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        database: if database_ok { "ok" } else { "error" },
    };
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

/// Counters in the Prometheus text format; needs no token.
#[utoipa::path(get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/schema/", tag = "system",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn schema(State(state): State<AppState>) -> Response {
    match state.openapi.get() {
        Some(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        None => ApiError::internal("OpenAPI document not built").into_response(),
    }
}

/// Any path no route matches.
pub async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    let hint = if uri.path().ends_with('/') {
        ""
    } else {
        " (API paths end with '/')"
    };
    ApiError::not_found(format!("No route for {method} {}{hint}", uri.path()))
}
