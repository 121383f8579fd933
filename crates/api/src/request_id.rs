//! A request id for every request: taken from a sane incoming `x-request-id` or made fresh, put
//! on the tracing span (so every log line of the request carries it), echoed in the response
//! header and in error bodies.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, or `"-"` outside of one.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".into())
}

/// A short, process-unique id: 8 hex digits of start time and a counter.
fn fresh() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id()
    });
    format!("{start:08x}-{:06x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Accepts a client's id only if it is short and plain, so it cannot forge log lines.
fn incoming(request: &Request) -> Option<String> {
    let value = request.headers().get(HEADER)?.to_str().ok()?;
    let plain = value.len() <= 64
        && !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| value.to_owned())
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let id = incoming(&request).unwrap_or_else(fresh);
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        user = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), async move { next.run(request).await })
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
