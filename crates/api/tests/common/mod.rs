//! The application under test: the real router on a fresh data directory, called without a socket.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use std::sync::Arc;

use attendansee_api::{AppState, Settings, router};
use attendansee_services::Inference;
use attendansee_store::{BlobStore, Role, Store, User};

pub struct TestApp {
    pub store: Store,
    pub blobs: BlobStore,
    pub router: Router,
    /// The application's state (its services run the job runner in flow tests).
    pub state: AppState,
    _dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Response {
    /// Asserts an error response of this status and type, and returns its message.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, error_type: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["status"], "error", "body: {}", self.body);
        assert_eq!(self.body["error_type"], error_type, "body: {}", self.body);
        let request_id = self.headers["x-request-id"].to_str().unwrap();
        assert_eq!(self.body["request_id"], request_id, "body: {}", self.body);
        self.body["error"].as_str().unwrap().to_owned()
    }
}

pub async fn app() -> TestApp {
    app_with(Settings::default()).await
}

/// The application with these settings.
pub async fn app_with(settings: Settings) -> TestApp {
    app_built(settings, |state| state).await
}

/// The application whose inference is `inference` (the deterministic fake), with its job runner
/// running.
pub async fn app_with_inference(inference: Arc<dyn Inference>) -> TestApp {
    let app = app_built(Settings::default(), |state| state.with_inference(inference)).await;
    tokio::spawn(attendansee_services::jobs::run_jobs(
        app.state.services.clone(),
        attendansee_services::jobs::JobLeases::new(std::time::Duration::from_secs(30)),
    ));
    app
}

async fn app_built(settings: Settings, finish: impl FnOnce(AppState) -> AppState) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite3")).await.unwrap();
    let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
    let state = finish(AppState::new(store.clone(), blobs.clone(), settings));
    TestApp {
        store,
        blobs,
        router: router(state.clone()),
        state,
        _dir: dir,
    }
}

impl TestApp {
    /// The directory the blob store keeps its files in.
    pub fn blob_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("blobs")
    }

    /// A user and a live token for them.
    pub async fn user(&self, name: &str, role: Role) -> (User, String) {
        let user = self
            .store
            .create_user(name, "horse battery staple", role)
            .await
            .unwrap();
        let token = self
            .store
            .issue_token(user.id, "test", chrono::Duration::days(1))
            .await
            .unwrap();
        (user, token.secret)
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// A request with an optional bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// A multipart upload of `files` (name, bytes) as repeated fields named `field`.
    pub async fn upload(
        &self,
        path: &str,
        token: &str,
        field: &str,
        files: &[(&str, &[u8])],
    ) -> Response {
        let boundary = "fl0w-b0undary";
        let mut body = Vec::new();
        for (name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
                     filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// Creates an object through the API and returns its id.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> i64 {
        let response = self.post(path, token, body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body["id"].as_i64().unwrap()
    }
}
