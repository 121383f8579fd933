//! The face engine: everything between image bytes and an L2-normalised embedding.
//!
//! Pure parts (no I/O, no panics on bad input): [`geometry`], [`detect`] decoding, [`embedding`]
//! maths, [`imageops`]. Around them: [`image_io`] decoding of untrusted bytes ([`heif`] for
//! HEIC), the model [`catalog`], model files ([`models`]), the ONNX Runtime [`engine`] and photo
//! [`preview`]s.

pub mod catalog;
pub mod detect;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod geometry;
pub mod heif;
pub mod image_io;
pub mod imageops;
pub mod models;
pub mod pipeline;
pub mod preview;
pub mod reduced;
pub mod tiles;

pub use catalog::{ModelKind, ModelSpec};
pub use embedding::FaceEmbedding;
pub use engine::{Detector, Recognizer, Runtime};
pub use error::FaceError;
pub use geometry::{BBox, Face};
