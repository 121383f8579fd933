//! The whole path from image bytes to faces and embeddings, as the CLI and the workers use it:
//! decode → detect → align → embed.

use image::RgbImage;

use crate::embedding::FaceEmbedding;
use crate::engine::{Detector, Recognizer};
use crate::error::FaceError;
use crate::geometry::Face;
use crate::image_io::decode_rgb;
use crate::imageops::pad;

/// A detector, optionally a recognizer, and the decoding limit.
pub struct Pipeline {
    pub detector: Detector,
    pub recognizer: Option<Recognizer>,
    pub max_pixels: u64,
}

/// A face and its embedding.
#[derive(Clone, Debug)]
pub struct EmbeddedFace {
    pub face: Face,
    pub embedding: FaceEmbedding,
}

/// Detects faces; if there are none, tries again with a black border of half the image's larger
/// side: detectors miss faces that fill the whole frame (tight enrollment crops), and find them
/// once there is context around them.
pub fn detect_with_border_retry(
    detector: &mut Detector,
    image: &RgbImage,
    score_threshold: Option<f32>,
) -> Result<Vec<Face>, FaceError> {
    let faces = detector.detect(image, score_threshold)?;
    if !faces.is_empty() {
        return Ok(faces);
    }
    let border = image.width().max(image.height()) / 2;
    let padded = pad(image, border);
    let shift = -(border as f32);
    Ok(detector
        .detect(&padded, score_threshold)?
        .into_iter()
        .map(|f| f.translated(shift, shift))
        .collect())
}

/// The face with the largest box, if any.
pub fn largest(faces: &[Face]) -> Option<Face> {
    faces
        .iter()
        .copied()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
}

impl Pipeline {
    /// Decodes `bytes` and detects faces, best first.
    pub fn detect(
        &mut self,
        bytes: &[u8],
        score_threshold: Option<f32>,
    ) -> Result<(RgbImage, Vec<Face>), FaceError> {
        let image = decode_rgb(bytes, self.max_pixels)?;
        let faces = self.detector.detect(&image, score_threshold)?;
        Ok((image, faces))
    }

    /// Every face of the image with its embedding (in detection order).
    pub fn embed_all(&mut self, bytes: &[u8]) -> Result<Vec<EmbeddedFace>, FaceError> {
        let (image, faces) = self.detect(bytes, None)?;
        self.embed_faces(&image, &faces)
    }

    /// The largest face of the image and its embedding; `NoFaceDetected` if there is none.
    pub fn embed_largest(&mut self, bytes: &[u8]) -> Result<EmbeddedFace, FaceError> {
        let (image, faces) = self.detect(bytes, None)?;
        let face = largest(&faces).ok_or(FaceError::NoFaceDetected)?;
        self.embed_faces(&image, &[face])?
            .pop()
            .ok_or(FaceError::NoFaceDetected)
    }

    /// Aligns and embeds the given faces of `image` (faces with degenerate landmarks are skipped).
    pub fn embed_faces(
        &mut self,
        image: &RgbImage,
        faces: &[Face],
    ) -> Result<Vec<EmbeddedFace>, FaceError> {
        let recognizer = self
            .recognizer
            .as_mut()
            .ok_or_else(|| FaceError::IncompatibleModel {
                name: "pipeline".into(),
                detail: "no recognizer loaded".into(),
            })?;
        let aligned: Vec<(Face, RgbImage)> = faces
            .iter()
            .filter_map(|f| recognizer.align(image, f).map(|crop| (*f, crop)))
            .collect();
        let crops: Vec<&RgbImage> = aligned.iter().map(|(_, crop)| crop).collect();
        let embeddings = recognizer.embed(&crops)?;
        Ok(aligned
            .into_iter()
            .zip(embeddings)
            .map(|((face, _), embedding)| EmbeddedFace { face, embedding })
            .collect())
    }
}
