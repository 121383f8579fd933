//! Response headers every answer carries, and the request-size limits the HTTP layer leaves to us.
//!
//! hyper refuses only what it cannot hold (a URI over 64 KiB, more than 100 headers or about
//! 400 KiB of them), with an empty body. Below that, requests reach the router; these limits are
//! much lower and are answered here, as the JSON error body like every other refusal.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes accepted (names, values and the `: ` and CRLF of each line).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// `nosniff` and `no-referrer` on every answer (the UI's included); `no-store` on every answer
/// that does not choose its own caching (the UI's static files do), so that photos, face crops,
/// CSV exports and API data are never kept by a browser or a proxy.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// 414 for a request target over [`MAX_URI_BYTES`], 431 for headers over [`MAX_HEADER_BYTES`].
pub async fn request_limits(request: Request, next: Next) -> Response {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        let message =
            format!("The request URI is {uri} bytes; at most {MAX_URI_BYTES} are accepted");
        return refuse(StatusCode::URI_TOO_LONG, message);
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        let message = format!(
            "The request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
        );
        return refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message);
    }
    next.run(request).await
}

/// A `ValidationError` body with the HTTP status of the limit (no error type of its own: the
/// status says which limit).
fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = ApiError::validation(message).into_response();
    *response.status_mut() = status;
    response
}
