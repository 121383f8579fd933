//! The whole path from image bytes to faces and embeddings, as the CLI and the workers use it:
//! decode → detect → align → embed.

use image::RgbImage;

use crate::embedding::FaceEmbedding;
use crate::engine::{Detector, Recognizer};
use crate::error::FaceError;
use crate::geometry::Face;
use crate::image_io::decode_rgb;
use crate::imageops::{pad, resize_bilinear};

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

/// The border retry works on a copy whose longer side is at most this: a face that fills the
/// frame is found at this size as well as at any larger one, and the padded copy stays small
/// (≤ 2048 × 2048 pixels) whatever the photo's size.
pub const BORDER_RETRY_MAX_SIDE: u32 = 1024;

/// Detects faces; if there are none, tries again with a black border of half the image's larger
/// side: detectors miss faces that fill the whole frame (tight enrollment crops), and find them
/// once there is context around them. A large image is shrunk first, so the retry's memory is
/// bounded whatever the image's size.
pub fn detect_with_border_retry(
    detector: &mut Detector,
    image: &RgbImage,
    score_threshold: Option<f32>,
) -> Result<Vec<Face>, FaceError> {
    let faces = detector.detect(image, score_threshold)?;
    if !faces.is_empty() {
        return Ok(faces);
    }
    let (scaled, scale) = shrunk_to(image, BORDER_RETRY_MAX_SIDE);
    let source = scaled.as_ref().unwrap_or(image);
    let border = source.width().max(source.height()) / 2;
    let padded = pad(source, border);
    let shift = -(border as f32);
    Ok(detector
        .detect(&padded, score_threshold)?
        .into_iter()
        .map(|f| f.translated(shift, shift).unscaled(scale))
        .collect())
}

/// A copy of `image` whose longer side is `max_side` (`None` and scale 1 if it already fits).
fn shrunk_to(image: &RgbImage, max_side: u32) -> (Option<RgbImage>, f32) {
    let longer = image.width().max(image.height());
    if longer <= max_side {
        return (None, 1.0);
    }
    let scale = max_side as f32 / longer as f32;
    let width = ((image.width() as f32 * scale).round() as u32).max(1);
    let height = ((image.height() as f32 * scale).round() as u32).max(1);
    (Some(resize_bilinear(image, width, height)), scale)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_border_retry_works_on_a_copy_of_bounded_size() {
        let (copy, scale) = shrunk_to(&RgbImage::new(6000, 200), BORDER_RETRY_MAX_SIDE);
        let copy = copy.unwrap();
        assert_eq!((copy.width(), copy.height()), (1024, 34));
        assert!((scale - 1024.0 / 6000.0).abs() < 1e-6);
        // What is found in the copy maps back onto the original.
        let face = Face {
            bbox: crate::geometry::BBox {
                x: 512.0,
                y: 10.0,
                w: 10.0,
                h: 10.0,
            },
            score: 0.9,
            landmarks: [[512.0, 10.0]; 5],
        };
        assert!((face.unscaled(scale).bbox.x - 3000.0).abs() < 0.01);
        // Small images are used as they are.
        let (copy, scale) = shrunk_to(&RgbImage::new(800, 600), BORDER_RETRY_MAX_SIDE);
        assert!(copy.is_none() && scale == 1.0);
    }
}
