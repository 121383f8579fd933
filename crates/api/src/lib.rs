//! The HTTP API of AttendanSee: the axum router with its routes, authentication, the JSON error
//! contract and the OpenAPI document generated from the handlers.
//!
//! [`router`] builds the whole application; tests call it without a socket.

mod attendance;
mod auth;
mod clusters;
mod corrections;
mod courses;
mod crops;
mod embed;
mod enrollment;
pub mod error;
mod extract;
pub mod headers;
mod jobs;
pub mod login_limits;
pub mod metrics;
mod openapi;
mod pagination;
mod photos;
pub mod request_id;
mod sessions;
mod students;
mod system;
mod ui;
mod uploads;
mod users;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::{router::OpenApiRouter, routes};

use attendansee_pool::Pool;
use attendansee_services::{Inference, Services};
use attendansee_store::{BlobStore, Store};

pub use error::{ApiError, ApiResult, ErrorType};

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    attendansee_store::credentials::hex(bytes)
}

/// Server settings the API needs (the binary's configuration fills them in).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Lifetime of tokens issued by login.
    pub token_ttl: chrono::Duration,
    /// Largest JSON body accepted, in bytes.
    pub json_body_limit: usize,
    /// Largest image upload accepted, in bytes.
    pub upload_body_limit: usize,
    /// Where uploads are streamed while they are processed (`serve`: `<data dir>/tmp`, emptied
    /// at start); `None`: the system's temporary directory.
    pub upload_dir: Option<std::path::PathBuf>,
    /// How many bytes of uploads are processed at once (each upload counts with the size of its
    /// files, at most this): an upload's files are in memory while workers look at them (twice,
    /// with the frame sent to the worker), so this bounds the server's memory, while many small
    /// uploads still run side by side. Receiving bodies takes none: they go to `upload_dir`.
    pub upload_memory: usize,
    /// How long an upload waits for its turn before `Overloaded`.
    pub upload_wait: std::time::Duration,
    /// Failed logins allowed per username and per client address before they must wait.
    pub login_limits: login_limits::LoginLimits,
    /// What the domain services need: models, matching.
    pub domain: attendansee_services::Settings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: chrono::Duration::days(14),
            json_body_limit: 1024 * 1024,
            upload_body_limit: 32 * 1024 * 1024,
            upload_dir: None,
            upload_memory: 48 * 1024 * 1024,
            upload_wait: std::time::Duration::from_secs(30),
            login_limits: login_limits::LoginLimits::default(),
            domain: attendansee_services::Settings::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The domain: every handler's work is done by a service.
    pub services: Services,
    pub settings: Arc<Settings>,
    pub metrics: Arc<metrics::Metrics>,
    /// The worker pool, for its health and metrics; inference itself goes through `services`.
    pub pool: Option<Pool>,
    /// Failed logins per username and client address.
    pub login_throttle: Arc<login_limits::LoginThrottle>,
    /// KiB of uploads being processed (`Settings::upload_memory`).
    uploads: Arc<tokio::sync::Semaphore>,
    openapi: Arc<OnceLock<String>>,
}

impl AppState {
    pub fn new(store: Store, blobs: BlobStore, settings: Settings) -> Self {
        Self {
            uploads: Arc::new(tokio::sync::Semaphore::new(uploads::kib(
                settings.upload_memory,
            ))),
            services: Services::new(store, blobs, settings.domain.clone()),
            login_throttle: Arc::new(login_limits::LoginThrottle::new(
                settings.login_limits.clone(),
            )),
            settings: Arc::new(settings),
            metrics: Arc::default(),
            pool: None,
            openapi: Arc::default(),
        }
    }

    /// Inference by the worker pool (also shown in health and metrics).
    pub fn with_pool(mut self, pool: Pool) -> Self {
        self.services = self.services.with_inference(Arc::new(pool.clone()));
        self.pool = Some(pool);
        self
    }

    /// Inference by something else than a pool: the deterministic fake of in-process tests.
    pub fn with_inference(mut self, inference: Arc<dyn Inference>) -> Self {
        self.services = self.services.with_inference(inference);
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AttendanSee API",
        description = "Face-recognition attendance. Every route but login, health and metrics needs \
                       `Authorization: Bearer <token>`. Errors are `ErrorBody` JSON with a fixed `error_type`."
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    components(schemas(error::ErrorBody, ErrorType))
)]
struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The whole application: public and protected routes, the fallback, and the middleware that
/// gives every request an id, counts it, and turns every error into the JSON error body.
pub fn router(state: AppState) -> Router {
    let protected = OpenApiRouter::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(courses::routes())
        .merge(students::routes())
        .merge(sessions::routes())
        .merge(crops::routes())
        .merge(corrections::routes())
        .merge(clusters::routes())
        .merge(attendance::routes())
        .merge(enrollment::routes().layer(DefaultBodyLimit::max(state.settings.upload_body_limit)))
        .merge(jobs::routes())
        .merge(photos::routes().layer(DefaultBodyLimit::max(state.settings.upload_body_limit)))
        // Uploads get their own, larger body limit (the innermost limit wins).
        .merge(embed::routes().layer(DefaultBodyLimit::max(state.settings.upload_body_limit)))
        .routes(routes!(system::schema))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));
    let public = OpenApiRouter::new()
        .merge(auth::public_routes())
        .routes(routes!(system::health))
        .routes(routes!(system::metrics));
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public)
        .merge(protected)
        .split_for_parts();
    openapi::document_errors(&mut openapi);
    let document = openapi
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    let _ = state.openapi.set(document);

    router
        .merge(ui::routes())
        .fallback(system::unknown_route)
        .layer(DefaultBodyLimit::max(state.settings.json_body_limit))
        .layer(from_fn(errors_as_json))
        .layer(CatchPanicLayer::custom(panic_as_json))
        .layer(from_fn(headers::request_limits))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            metrics::count_responses,
        ))
        .layer(from_fn(request_id::middleware))
        .layer(from_fn(headers::security_headers))
        .with_state(state)
}

/// Safety net: an error response that no handler shaped (a 405 from the method router, a body
/// limit hit outside an extractor…) becomes the JSON error body too.
async fn errors_as_json(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error_type = ErrorType::for_status(status);
    let message = match error_type {
        ErrorType::MethodNotAllowed => format!("Method {method} is not allowed on {path}"),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let mut shaped = ApiError::new(error_type, message).into_response();
    *shaped.status_mut() = status;
    if let Some(allow) = response.headers().get(header::ALLOW) {
        shaped.headers_mut().insert(header::ALLOW, allow.clone());
    }
    shaped
}

/// A handler that panics answers 500 `Internal` and leaves the server running.
fn panic_as_json(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}
