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
mod inference;
pub mod jobs;
pub mod login_limits;
pub mod metrics;
mod openapi;
mod pagination;
mod photos;
pub mod recognition;
pub mod request_id;
mod sessions;
mod students;
mod system;
mod ui;
mod uploads;
mod users;
mod validate;

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
use attendansee_store::{BlobStore, Store};

pub use attendance::csv_row;
pub use error::{ApiError, ApiResult, ErrorType};

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    attendansee_store::credentials::hex(bytes)
}
pub use users::{check_password, check_username, normalize_username};

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
    /// The detector the workers run.
    pub detector: String,
    /// The recognizers the workers load; the first is the default.
    pub recognizers: Vec<String>,
    /// Every recognizer in the model catalog (a known name that the workers do not load is
    /// "not installed", an unknown one a validation error).
    pub catalog_recognizers: Vec<String>,
    /// How to install each catalog model, for the "not installed" error: a `models fetch`
    /// command, or where to put a file that has no download source.
    pub install_advice: std::collections::BTreeMap<String, String>,
    /// Each recognizer's calibrated matching (threshold, margin, suggestions), from the catalog.
    pub matching: recognition::MatchingTable,
    /// Failed logins allowed per username and per client address before they must wait.
    pub login_limits: login_limits::LoginLimits,
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
            detector: "yunet".into(),
            recognizers: vec!["mobilefacenet".into()],
            catalog_recognizers: ["mobilefacenet", "mobilefacenet-batch", "arcface", "facenet"]
                .map(String::from)
                .to_vec(),
            install_advice: Default::default(),
            matching: ["mobilefacenet", "mobilefacenet-batch"]
                .map(|m| (m.to_owned(), recognition::Matching::FALLBACK))
                .into_iter()
                .collect(),
            login_limits: login_limits::LoginLimits::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub blobs: BlobStore,
    pub settings: Arc<Settings>,
    pub metrics: Arc<metrics::Metrics>,
    /// The inference workers; `None` for a server without them (then face routes answer
    /// `ModelNotAvailable`).
    pub pool: Option<Pool>,
    /// Wakes the job runner when a job is queued.
    pub jobs_queued: Arc<tokio::sync::Notify>,
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
            store,
            blobs,
            login_throttle: Arc::new(login_limits::LoginThrottle::new(
                settings.login_limits.clone(),
            )),
            settings: Arc::new(settings),
            metrics: Arc::default(),
            pool: None,
            jobs_queued: Arc::default(),
            openapi: Arc::default(),
        }
    }

    pub fn with_pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The worker pool, or `ModelNotAvailable` on a server without one.
    pub fn pool(&self) -> ApiResult<&Pool> {
        self.pool.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorType::ModelNotAvailable,
                "this server runs no inference workers",
            )
        })
    }

    /// Checks a recognizer name: unknown → `ValidationError` listing the catalog; known but not
    /// loaded by the workers → `ModelNotAvailable`.
    pub fn check_recognizer(&self, field: &str, name: &str) -> ApiResult<()> {
        let settings = &self.settings;
        if !settings
            .catalog_recognizers
            .iter()
            .chain(&settings.recognizers)
            .any(|m| m == name)
        {
            let mut available = settings.catalog_recognizers.clone();
            available.extend(
                settings
                    .recognizers
                    .iter()
                    .filter(|r| !settings.catalog_recognizers.contains(r))
                    .cloned(),
            );
            return Err(ApiError::invalid_field(
                field,
                format!(
                    "Unknown model '{name}'. Available models: {}",
                    available.join(", ")
                ),
            )
            .with_details(serde_json::json!({"field": field, "available_models": available})));
        }
        if !settings.recognizers.iter().any(|m| m == name) {
            let install = settings
                .install_advice
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("install it with `attendansee models fetch {name}`"));
            return Err(ApiError::new(
                ErrorType::ModelNotAvailable,
                format!(
                    "Model '{name}' is not installed on this server (loaded: {}); {install}, \
                     and start the server with `--recognizers`",
                    settings.recognizers.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Deletes the blobs a committed deletion freed. A blob that cannot be deleted now is only
    /// logged: no row points to it any more, so the orphan sweep at the next start removes it.
    /// The deleting runs in a task of its own, so a client that hangs up cannot cut it short.
    pub async fn delete_blobs(&self, keys: Vec<String>) {
        let blobs = self.blobs.clone();
        let deleting = tokio::spawn(async move {
            for key in keys {
                if let Err(e) = blobs.delete(&key).await {
                    tracing::warn!(%key, error = %e, "cannot delete a blob; the next start sweeps it");
                }
            }
        });
        let _ = deleting.await;
    }

    /// The recognizer a course uses: its own setting, else the server's default.
    pub fn course_model(&self, course: &attendansee_store::Course) -> String {
        course
            .embedding_model
            .clone()
            .or_else(|| self.settings.recognizers.first().cloned())
            .unwrap_or_default()
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
