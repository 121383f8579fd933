//! Faces as a worker found them, turned into what the store records: the one place that maps
//! the worker protocol's `DetectedFace` to a `NewCrop`; and whether a stored face is good enough
//! to recognise.

use attendansee_pool::protocol::DetectedFace;
use attendansee_recognition::{FaceQuality, QualityLimits, photo_hint};
use attendansee_store::{FaceCrop, NewCrop};
use attendansee_vocabulary::Reason;

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

/// A stored face's measured quality and, when it is too poor to recognise (`too_small`,
/// `blurred`, `profile`), why: such a face is shown but never assigned automatically.
pub fn crop_quality(crop: &FaceCrop) -> (FaceQuality, Option<Reason>) {
    let quality = FaceQuality::measure(crop.bbox, &crop.landmarks, crop.quality_blur);
    (quality, QualityLimits::CALIBRATED.verdict(&quality))
}

/// What to tell the instructor about a photo with these faces, e.g. "8 faces too small to
/// recognise: take the photo closer"; `None` when every face is good enough.
pub fn photo_quality_hint(faces: &[FaceCrop]) -> Option<String> {
    photo_hint(faces.iter().map(|f| crop_quality(f).1))
}
