//! The face engine's errors, each with the shared [`ErrorKind`] the API and CLI report.

use attendansee_vocabulary::ErrorKind;

use crate::detect::DecodeError;
use crate::image_io::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("unsupported image: {0}")]
    Image(#[from] ImageError),

    #[error("no face detected")]
    NoFaceDetected,

    #[error("unknown model '{name}'; available: {available}")]
    UnknownModel { name: String, available: String },

    #[error("model '{name}' is a {actual}, not a {wanted}")]
    WrongKind {
        name: String,
        wanted: &'static str,
        actual: &'static str,
    },

    #[error("model '{name}' is not installed: {path} is missing; {hint}")]
    ModelNotAvailable {
        name: String,
        path: String,
        hint: String,
    },

    #[error(
        "model '{name}' returns {actual}-dimensional output, but its catalog entry says {expected}"
    )]
    DimensionMismatch {
        name: String,
        expected: usize,
        actual: usize,
    },

    #[error("model '{name}' does not have the expected inputs or outputs: {detail}")]
    IncompatibleModel { name: String, detail: String },

    #[error(
        "ONNX Runtime could not be loaded from {path}: {detail}. Install it with `scripts/setup.sh` \
         (or `pip install onnxruntime==1.32.0`) and point ORT_DYLIB_PATH or --ort-lib at \
         onnxruntime/capi/libonnxruntime.so.1.32.0"
    )]
    RuntimeMissing { path: String, detail: String },

    #[error("inference failed in model '{name}': {detail}")]
    Inference { name: String, detail: String },

    #[error("detector output: {0}")]
    Decode(#[from] DecodeError),
}

impl FaceError {
    /// The kind of this error (the API's `error_type`, the CLI's `error_type`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Image(_) => ErrorKind::UnsupportedImage,
            Self::NoFaceDetected => ErrorKind::NoFaceDetected,
            Self::UnknownModel { .. } | Self::WrongKind { .. } => ErrorKind::ValidationError,
            Self::ModelNotAvailable { .. } | Self::RuntimeMissing { .. } => {
                ErrorKind::ModelNotAvailable
            }
            Self::DimensionMismatch { .. } => ErrorKind::DimensionMismatch,
            Self::IncompatibleModel { .. } | Self::Inference { .. } | Self::Decode(_) => {
                ErrorKind::Internal
            }
        }
    }
}
