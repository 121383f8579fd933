//! Faces as a worker found them, turned into what the store records: the one place that maps
//! the worker protocol's `DetectedFace` to a `NewCrop`.

use attendansee_pool::protocol::DetectedFace;
use attendansee_store::NewCrop;

/// The record of one detected face, its crop image stored under `crop_blob_key` (if any) and its
/// embedding (if any) made with `model`.
pub fn new_crop(face: DetectedFace, crop_blob_key: Option<String>, model: &str) -> NewCrop {
    NewCrop {
        bbox: face.bbox,
        landmarks: face.landmarks,
        score: face.score,
        quality_size: face.bbox[2].min(face.bbox[3]),
        quality_blur: face.blur,
        crop_blob_key,
        embedding: face.embedding.map(|v| (model.to_owned(), v)),
    }
}
