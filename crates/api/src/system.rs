//! Operational routes: health, metrics, the OpenAPI document, and the answers for unknown routes.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorType};
use crate::extract::Json;

/// How long health waits for the database before calling it down: health must answer even when
/// storage hangs (the blob store has its own limit, the same).
const DATABASE_CHECK_TIMEOUT: std::time::Duration = attendansee_store::BLOB_CHECK_TIMEOUT;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when no inference worker is alive (the rest of the API works);
    /// `unavailable` when the database or the blob store is down (then the status code is 503).
    pub status: &'static str,
    pub version: &'static str,
    /// `ok` or `error`.
    pub database: &'static str,
    /// `ok` or `error`: whether the blob store (the local directory or the S3 bucket) answers.
    pub blob_store: &'static str,
    /// Why storage is down, one line per part that is (`database: …`, `blob store: …`); absent
    /// when everything answers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The inference worker pool; absent on a server without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolHealth>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolHealth {
    pub workers_configured: usize,
    pub workers_alive: i64,
    pub queue_depth: usize,
    pub in_flight: i64,
    /// Models loaded in the workers.
    pub models_loaded: Vec<String>,
    /// Models the workers could not load, with why.
    pub models_unavailable: Vec<UnavailableModelDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnavailableModelDto {
    pub name: String,
    pub error_type: ErrorType,
    pub message: String,
}

/// Liveness and readiness; needs no token.
#[utoipa::path(get, path = "/api/health/", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = async {
        match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, state.services.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!(error = %e, cause = e.cause.as_deref().unwrap_or(""), "health check: database unavailable");
                Err("unreachable or failing; the server log has the cause".to_owned())
            }
            Err(_) => Err(format!(
                "no answer within {}s",
                DATABASE_CHECK_TIMEOUT.as_secs()
            )),
        }
    };
    let blobs = async {
        state
            .services
            .check_blobs()
            .await
            .map_err(|e| e.to_string())
    };
    let (database, blobs) = tokio::join!(database, blobs);
    let problems: Vec<String> = [("database", &database), ("blob store", &blobs)]
        .into_iter()
        .filter_map(|(part, result)| result.as_ref().err().map(|why| format!("{part}: {why}")))
        .collect();
    let (database_ok, blobs_ok) = (database.is_ok(), blobs.is_ok());
    let storage_ok = database_ok && blobs_ok;
    let pool = state.pool.as_ref().map(|pool| {
        let status = pool.status();
        PoolHealth {
            workers_configured: status.workers,
            workers_alive: status.alive,
            queue_depth: status.queue_depth,
            in_flight: status.in_flight,
            models_loaded: status.models.into_iter().map(|m| m.name).collect(),
            models_unavailable: status
                .unavailable
                .into_iter()
                .map(|u| UnavailableModelDto {
                    name: u.name,
                    error_type: u.kind.into(),
                    message: u.message,
                })
                .collect(),
        }
    });
    let workers_down = pool.as_ref().is_some_and(|p| p.workers_alive == 0);
    let health = Health {
        status: match (storage_ok, workers_down) {
            (false, _) => "unavailable",
            (true, true) => "degraded",
            (true, false) => "ok",
        },
        version: env!("CARGO_PKG_VERSION"),
        database: if database_ok { "ok" } else { "error" },
        blob_store: if blobs_ok { "ok" } else { "error" },
        problems,
        pool,
    };
    let status = if storage_ok {
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
    let mut text = state.metrics.render();
    if let Some(pool) = &state.pool {
        pool.render_metrics(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
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
