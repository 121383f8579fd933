//! The one error type of the HTTP edge. Every failure leaves the server as the JSON body of
//! DESIGN.md §4 — `{"status": "error", "error_type", "error", "request_id", "details"?}` — with
//! the status code that belongs to its `error_type`. Internal causes are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use attendansee_services::{ErrorKind, ServiceError};

use crate::request_id;

/// The fixed, documented set of error types. Clients switch on these strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum ErrorType {
    /// The request is well-formed HTTP but its content is not acceptable (400).
    ValidationError,
    /// No token, or a token that is malformed, unknown, expired or revoked (401).
    Unauthorized,
    /// Authenticated, but the action needs a role the user does not have (403).
    Forbidden,
    /// No such object, or one that belongs to someone else (404).
    NotFound,
    /// The route exists but not with this HTTP method (405).
    MethodNotAllowed,
    /// The request clashes with existing data, e.g. a duplicate code (409).
    Conflict,
    /// The body is larger than the route accepts (413).
    PayloadTooLarge,
    /// The body is not of a content type the route accepts (415).
    UnsupportedMediaType,
    /// An uploaded file is not an image we can decode, or is too large in pixels (422).
    UnsupportedImage,
    /// An image in which a face was required has none (422).
    NoFaceDetected,
    /// An image that must show one person shows several faces of similar size (422).
    MultipleFaces,
    /// The requested model is known but its weights are not installed (503).
    ModelNotAvailable,
    /// A model's output dimension differs from its catalog entry (500).
    DimensionMismatch,
    /// The inference worker handling the request died (502).
    WorkerCrashed,
    /// The inference worker handling the request took too long and was stopped (504).
    WorkerTimeout,
    /// Too much work is queued; retry after the `Retry-After` seconds (503).
    Overloaded,
    /// Too many attempts (e.g. failed logins) from this client or for this account; retry after
    /// the `Retry-After` seconds (429).
    TooManyRequests,
    /// The database or blob storage cannot take the request now (disk full, I/O error); nothing
    /// was changed. Retry after the `Retry-After` seconds (503).
    StorageUnavailable,
    /// Anything else; the cause is in the server log under the request id (500).
    Internal,
}

impl ErrorType {
    /// Every error type, for documentation and for tests that must cover them all.
    pub const ALL: [ErrorType; 19] = [
        Self::ValidationError,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::UnsupportedImage,
        Self::NoFaceDetected,
        Self::MultipleFaces,
        Self::ModelNotAvailable,
        Self::DimensionMismatch,
        Self::WorkerCrashed,
        Self::WorkerTimeout,
        Self::Overloaded,
        Self::TooManyRequests,
        Self::StorageUnavailable,
        Self::Internal,
    ];

    pub fn status_code(self) -> StatusCode {
        match self {
            Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnsupportedImage | Self::NoFaceDetected | Self::MultipleFaces => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::ModelNotAvailable | Self::Overloaded | Self::StorageUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::DimensionMismatch | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::WorkerCrashed => StatusCode::BAD_GATEWAY,
            Self::WorkerTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The name clients see in `error_type` (also what job records store).
    pub fn name(self) -> &'static str {
        match self {
            Self::ValidationError => "ValidationError",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::UnsupportedImage => "UnsupportedImage",
            Self::NoFaceDetected => "NoFaceDetected",
            Self::MultipleFaces => "MultipleFaces",
            Self::ModelNotAvailable => "ModelNotAvailable",
            Self::DimensionMismatch => "DimensionMismatch",
            Self::WorkerCrashed => "WorkerCrashed",
            Self::WorkerTimeout => "WorkerTimeout",
            Self::Overloaded => "Overloaded",
            Self::TooManyRequests => "TooManyRequests",
            Self::StorageUnavailable => "StorageUnavailable",
            Self::Internal => "Internal",
        }
    }

    /// The error type that answers a bare HTTP status (used for errors no handler produced).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => Self::Overloaded,
            StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests,
            s if s.is_client_error() => Self::ValidationError,
            _ => Self::Internal,
        }
    }
}

/// The JSON error body, as documented in the OpenAPI schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `"error"`.
    #[schema(example = "error")]
    pub status: &'static str,
    pub error_type: ErrorType,
    /// A message meant for people.
    #[schema(example = "Course 99999 not found")]
    pub error: String,
    /// The id also sent in the `x-request-id` header and written in every log line of the request.
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct ApiError {
    pub error_type: ErrorType,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds for the `Retry-After` header.
    pub retry_after: Option<u32>,
    /// Logged with the request id, never sent to the client.
    pub cause: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
            details: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorType::ValidationError, message)
    }

    /// A validation error about one field of the body.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(message).with_details(serde_json::json!({ "field": field }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorType::NotFound, message)
    }

    /// An unexpected failure: the client sees a generic message, the log sees `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(
                ErrorType::Internal,
                "Internal server error; the log has the details under this request id",
            )
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<ErrorKind> for ErrorType {
    /// Every kind the layers below can produce is an error type of the same name.
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::ValidationError => Self::ValidationError,
            ErrorKind::Unauthorized => Self::Unauthorized,
            ErrorKind::Forbidden => Self::Forbidden,
            ErrorKind::NotFound => Self::NotFound,
            ErrorKind::Conflict => Self::Conflict,
            ErrorKind::PayloadTooLarge => Self::PayloadTooLarge,
            ErrorKind::UnsupportedImage => Self::UnsupportedImage,
            ErrorKind::NoFaceDetected => Self::NoFaceDetected,
            ErrorKind::MultipleFaces => Self::MultipleFaces,
            ErrorKind::ModelNotAvailable => Self::ModelNotAvailable,
            ErrorKind::DimensionMismatch => Self::DimensionMismatch,
            ErrorKind::WorkerCrashed => Self::WorkerCrashed,
            ErrorKind::WorkerTimeout => Self::WorkerTimeout,
            ErrorKind::Overloaded => Self::Overloaded,
            ErrorKind::TooManyRequests => Self::TooManyRequests,
            ErrorKind::StorageUnavailable => Self::StorageUnavailable,
            ErrorKind::Internal => Self::Internal,
        }
    }
}

/// The one mapping from the domain's errors to HTTP errors: by kind, with the message, details,
/// `Retry-After` and logged-only cause carried over.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error.cause {
            // An internal failure answers as every internal failure does: with the request id.
            Some(cause) if error.kind == ErrorKind::Internal => Self::internal(cause),
            cause => Self {
                error_type: error.kind.into(),
                message: error.message,
                details: error.details,
                retry_after: error.retry_after,
                cause,
            },
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = match &rejection {
            JsonRejection::JsonSyntaxError(_) => {
                format!("Malformed JSON: {}", rejection.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => {
                "Expected a body with `Content-Type: application/json`".into()
            }
            _ => rejection.body_text(),
        };
        let error = Self::new(from_rejection_status(rejection.status()), message);
        // serde names a field it does not know in backticks; clients get it as `details.field`
        // like every other field error.
        match unknown_field(&error.message) {
            Some(field) => {
                let details = serde_json::json!({ "field": field });
                error.with_details(details)
            }
            None => error,
        }
    }
}

/// The field named in serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    Some(rest[..rest.find('`')?].to_owned())
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::validation(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        // `/courses/abc/` names no course, exactly as `/courses/99999/` does not.
        Self::not_found(format!("Not found: {}", rejection.body_text()))
    }
}

/// Axum's rejections carry statuses like 422 for bad JSON data; ours are fixed per error type.
fn from_rejection_status(status: StatusCode) -> ErrorType {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorType::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorType::UnsupportedMediaType,
        s if s.is_server_error() => ErrorType::Internal,
        _ => ErrorType::ValidationError,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.error_type.status_code();
        let request_id = request_id::current();
        match &self.cause {
            Some(cause) => {
                tracing::error!(error_type = ?self.error_type, %cause, "{}", self.message)
            }
            None if status.is_server_error() => {
                tracing::warn!(error_type = ?self.error_type, "{}", self.message)
            }
            None => tracing::info!(error_type = ?self.error_type, "{}", self.message),
        }
        let body = ErrorBody {
            status: "error",
            error_type: self.error_type,
            error: self.message,
            request_id,
            details: self.details,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.error_type == ErrorType::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_of_an_error_type_is_its_json_rendering() {
        for t in ErrorType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
    }

    #[test]
    fn every_error_kind_is_the_error_type_of_the_same_name() {
        for &kind in ErrorKind::ALL {
            assert_eq!(ErrorType::from(kind).name(), kind.as_str());
        }
    }

    #[test]
    fn a_service_error_keeps_its_message_details_retry_and_hidden_cause() {
        let error = ApiError::from(
            ServiceError::new(ErrorKind::PayloadTooLarge, "too big")
                .with_details(serde_json::json!({"limit": 1}))
                .with_retry_after(3),
        );
        assert_eq!(error.error_type, ErrorType::PayloadTooLarge);
        assert_eq!(error.message, "too big");
        assert_eq!(error.details, Some(serde_json::json!({"limit": 1})));
        assert_eq!(error.retry_after, Some(3));
        let internal = ApiError::from(ServiceError::internal("disk on fire"));
        assert_eq!(internal.error_type, ErrorType::Internal);
        assert!(!internal.message.contains("disk on fire"));
        assert_eq!(internal.cause.as_deref(), Some("disk on fire"));
    }

    #[test]
    fn every_error_type_maps_back_from_its_status_where_the_status_is_unique() {
        for t in [
            ErrorType::Unauthorized,
            ErrorType::Forbidden,
            ErrorType::NotFound,
            ErrorType::MethodNotAllowed,
            ErrorType::Conflict,
            ErrorType::PayloadTooLarge,
            ErrorType::UnsupportedMediaType,
            ErrorType::ValidationError,
            ErrorType::TooManyRequests,
            ErrorType::Internal,
        ] {
            assert_eq!(ErrorType::for_status(t.status_code()), t);
        }
    }
}
