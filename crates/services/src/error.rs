//! The services' one error type: a kind from the shared vocabulary, a message meant for people,
//! optional details, and — for failures nobody outside should see — a cause that is logged, never
//! sent. The HTTP API maps it to its JSON error once, by kind.

use attendansee_pool::PoolError;
use attendansee_store::StoreError;
use attendansee_vocabulary::ErrorKind;

#[derive(Clone, Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
    /// Machine-readable specifics (the field at fault, the models available…).
    pub details: Option<serde_json::Value>,
    /// Seconds after which trying again may succeed.
    pub retry_after: Option<u32>,
    /// The internal cause, for the log only.
    pub cause: Option<String>,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// What people are told of an internal failure (the cause is for the log).
pub const INTERNAL_MESSAGE: &str = "Internal error; the log has the details";

/// How long a client should wait before retrying after a storage failure.
const STORAGE_RETRY_AFTER_SECONDS: u32 = 5;

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ValidationError, message)
    }

    /// A validation error about one field of the request.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(message).with_details(serde_json::json!({ "field": field }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// An unexpected failure: people see a generic message, the log sees `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(ErrorKind::Internal, INTERNAL_MESSAGE)
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// A request of several files in which storage failed and nothing was stored failed as a whole:
/// it is answered `StorageUnavailable` (retry it all, later) rather than as a list of failures.
/// Returns that error, given each file's stored-or-not and error.
pub(crate) fn nothing_stored_for_storage<'a>(
    files: impl IntoIterator<Item = (bool, Option<&'a ServiceError>)>,
) -> Option<ServiceError> {
    let mut storage_failed = None;
    for (stored, error) in files {
        if stored {
            return None;
        }
        if let Some(e) = error.filter(|e| e.kind == ErrorKind::StorageUnavailable) {
            storage_failed.get_or_insert(e);
        }
    }
    storage_failed.cloned()
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::not_found(error.to_string()),
            StoreError::Conflict(message) => Self::new(ErrorKind::Conflict, message),
            StoreError::Invalid(message) => Self::validation(message),
            StoreError::PasswordChecksBusy => {
                Self::new(ErrorKind::Overloaded, error.to_string()).with_retry_after(1)
            }
            other if other.is_unavailable() => Self {
                cause: Some(other.to_string()),
                ..Self::new(
                    ErrorKind::StorageUnavailable,
                    "Storage is unavailable (e.g. the disk is full); nothing was changed. Try again later",
                )
                .with_retry_after(STORAGE_RETRY_AFTER_SECONDS)
            },
            other => Self::internal(other),
        }
    }
}

impl From<PoolError> for ServiceError {
    fn from(error: PoolError) -> Self {
        let kind = error.kind();
        let message = error.to_string();
        match error {
            PoolError::Overloaded { retry_after } => {
                Self::new(kind, message).with_retry_after(retry_after)
            }
            PoolError::ShuttingDown => Self::new(kind, message).with_retry_after(5),
            PoolError::Unavailable { .. } => Self::new(kind, message),
            PoolError::Timeout {
                timeout,
                ref stderr_tail,
            } => Self::new(kind, message).with_details(serde_json::json!({
                "timeout_ms": timeout.as_millis() as u64,
                "stderr_tail": stderr_tail,
            })),
            PoolError::Crashed {
                ref reason,
                attempts,
                ref stderr_tail,
            } => Self::new(kind, message).with_details(serde_json::json!({
                "reason": reason,
                "attempts": attempts,
                "stderr_tail": stderr_tail,
            })),
            // A worker's own failure that it could not name is a bug: log it, do not show it.
            PoolError::Job(job) if job.kind == ErrorKind::Internal => {
                Self::internal(format!("worker: {}", job.message))
            }
            PoolError::Job(job) => Self::new(kind, job.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attendansee_pool::protocol::JobError;

    #[test]
    fn a_worker_job_error_keeps_its_kind_and_an_internal_one_hides_its_cause() {
        for &kind in ErrorKind::ALL {
            let job = JobError {
                kind,
                message: "detail".into(),
            };
            let error = ServiceError::from(PoolError::Job(job));
            assert_eq!(error.kind, kind);
            if kind == ErrorKind::Internal {
                assert_eq!(error.cause.as_deref(), Some("worker: detail"));
                assert_ne!(error.message, "detail");
            } else {
                assert_eq!(error.message, "detail");
            }
        }
    }

    #[test]
    fn a_worker_refusing_a_too_large_request_is_payload_too_large_not_internal() {
        let refused = PoolError::Job(JobError {
            kind: ErrorKind::PayloadTooLarge,
            message: "the request is too large for a worker".into(),
        });
        assert_eq!(ServiceError::from(refused).kind, ErrorKind::PayloadTooLarge);
    }

    #[test]
    fn an_unknown_name_in_the_database_is_internal_and_its_name_stays_in_the_log() {
        let error = ServiceError::from(StoreError::Corrupt {
            what: "job kind",
            name: "teleport".into(),
        });
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(!error.message.contains("teleport"), "{}", error.message);
        assert!(error.cause.as_deref().unwrap_or("").contains("'teleport'"));
    }

    #[test]
    fn a_request_of_files_fails_as_a_whole_only_when_storage_failed_and_nothing_was_stored() {
        let storage = ServiceError::new(ErrorKind::StorageUnavailable, "down").with_retry_after(5);
        let bad = ServiceError::new(ErrorKind::UnsupportedImage, "bad");
        let whole = nothing_stored_for_storage([(false, Some(&bad)), (false, Some(&storage))]);
        assert_eq!(
            whole.map(|e| (e.kind, e.retry_after)),
            Some((ErrorKind::StorageUnavailable, Some(5)))
        );
        // Something was stored: the files answer one by one.
        assert!(nothing_stored_for_storage([(true, None), (false, Some(&storage))]).is_none());
        // Nothing stored, but not for storage: the files' own errors.
        assert!(nothing_stored_for_storage([(false, Some(&bad))]).is_none());
    }

    #[test]
    fn a_full_queue_is_overloaded_with_its_retry_after() {
        let error = ServiceError::from(PoolError::Overloaded { retry_after: 7 });
        assert_eq!(
            (error.kind, error.retry_after),
            (ErrorKind::Overloaded, Some(7))
        );
    }
}
