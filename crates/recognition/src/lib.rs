//! The pure algorithms of recognition: nearest-neighbour search over embeddings ([`index`]),
//! optimal per-photo assignment of faces to students ([`hungarian`], [`assign`]), density-based
//! clustering of unmatched faces ([`cluster`]), clustering metrics ([`metrics`]), the
//! choice of an enrollment photo's face ([`enrollment`]) and whether a face is good enough to
//! recognise ([`quality`]).
//!
//! No I/O, no async, no panics on caller input. Vectors are f32 embeddings assumed
//! L2-normalised, so similarity is the dot product (cosine) and distance is `1 - similarity`.

pub mod assign;
pub mod cluster;
pub mod enrollment;
pub mod hungarian;
pub mod index;
pub mod metrics;
pub mod quality;

#[cfg(test)]
mod testutil;

pub use assign::{Decision, Reason, Thresholds, assign_photo};
pub use cluster::{ClusterParams, Incremental, dbscan, incremental};
pub use enrollment::{OneFace, the_one_face};
pub use hungarian::max_weight_assignment;
pub use index::{BruteForceIndex, Candidate, IndexError, Neighbour, VectorIndex, dot};
pub use metrics::{BCubed, bcubed};
pub use quality::{FaceQuality, QualityLimits, photo_hint, yaw_proxy};
