//! The whole path from image bytes to faces and embeddings, as the CLI and the workers use it:
//! decode (at a reduced scale when the faces allow) → detect (one pass over the whole photo, then
//! overlapping tiles when it is crowded with small faces, and the border retry when it finds
//! nothing) → align (from enough pixels) → embed.

use std::time::Instant;

use image::RgbImage;

use crate::catalog::ModelSpec;
use crate::embedding::FaceEmbedding;
use crate::engine::{Detector, Recognizer};
use crate::error::FaceError;
use crate::geometry::Face;
use crate::image_io::DEFAULT_MAX_PIXELS;
use crate::image_io::decode_rgb;
use crate::imageops::{pad, resize_bilinear};
use crate::reduced::{Decoded, decode_reduced};
use crate::tiles;

/// A detector, optionally a recognizer, the decoding limit and how photos are searched.
pub struct Pipeline {
    pub detector: Detector,
    pub recognizer: Option<Recognizer>,
    pub max_pixels: u64,
    pub options: PhotoOptions,
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

/// The small-face pass looks this many times closer than the single pass when the detector's
/// catalog entry does not say (`small_face_zoom`; 1 or less turns the pass off).
pub const DEFAULT_SMALL_FACE_ZOOM: f32 = 3.0;

/// A reduced decode keeps at least this many times the detector's input on its longer side: the
/// single pass then shrinks a well-sampled image, and most faces keep enough pixels for their
/// crops (24 MP: 1/4 scale, 1428 px).
pub const DECODE_OVERSAMPLING: u32 = 2;

/// A face is small at the detector's scale below this many pixels tall (YuNet's finest stride is
/// 8 px: faces much below 4 strides are where it starts to miss them)…
pub const SMALL_FACE_PX: f32 = 32.0;

/// …and a photo is crowded from this many small faces on: its farther rows are likely smaller
/// still, below what the single pass sees. A class photo of a few people, however small, is
/// left as the single pass found it (and costs nothing extra).
pub const CROWD_FACES: usize = 8;

/// The small-face pass must see at least this many times more pixels than the single pass to be
/// worth running (a photo not much larger than the detector's input has nothing more to show).
const MIN_GAIN: f32 = 1.5;

/// Neighbouring tiles overlap by this fraction of a tile: a face up to that wide is seen whole
/// by one of them. Larger faces are the single pass's.
const TILE_OVERLAP: f32 = 0.25;

/// Tiles start at multiples of this: the coarsest stride of YuNet and SCRFD.
const TILE_ALIGN: u32 = 32;

/// A tile's face within this many pixels of an inner edge may be cut: the neighbour has it.
const EDGE_MARGIN: f32 = 2.0;

/// How many times a face's pixels may be enlarged by the alignment before the crop is taken from
/// a finer decode. On ../shared/faces/classroom_photos (24 MP, decoded at 1/4) no face comes near
/// it, and the embeddings match the full-scale path's at cosine 0.92–0.99, as much as a landmark
/// shift of a fraction of a pixel moves them (docs/photos.md).
pub const MAX_CROP_UPSCALE: f32 = 2.0;

/// How a photo is decoded and searched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhotoOptions {
    /// Decode large JPEGs at a reduced DCT scale when the faces keep enough pixels.
    pub reduced_decoding: bool,
    /// The small-face pass's zoom over the single pass (≤ 1: no such pass).
    pub small_face_zoom: f32,
}

impl PhotoOptions {
    /// What every photo got before the small-face pass and reduced decoding existed: a
    /// full-scale decode and one pass over a letterbox of the whole photo.
    pub const SINGLE_PASS_FULL_DECODE: Self = Self {
        reduced_decoding: false,
        small_face_zoom: 1.0,
    };

    /// The default for `detector`: reduced decoding, and its catalog entry's zoom.
    pub fn for_detector(spec: &ModelSpec) -> Self {
        Self {
            reduced_decoding: true,
            small_face_zoom: spec.small_face_zoom.unwrap_or(DEFAULT_SMALL_FACE_ZOOM),
        }
    }
}

/// A photo's faces, in the coordinates of the full-scale upright photo, with the decoded image
/// they were found in (kept for the alignment).
pub struct Photo {
    /// The full-scale upright size.
    pub width: u32,
    pub height: u32,
    /// Best first.
    pub faces: Vec<Face>,
    /// Tiles the small-face pass ran on (0: the photo did not need it).
    pub tiles: usize,
    /// The DCT scale divisor of the decode the faces were aligned from (1: full scale).
    pub divisor: u32,
    pub decode_ms: f32,
    pub detect_ms: f32,
    decoded: Decoded,
}

impl Photo {
    /// The decoded image the faces were found in (or, after [`align_faces`] needed more pixels,
    /// the finer one): `scale()` of its pixels per full-scale pixel.
    pub fn image(&self) -> &RgbImage {
        &self.decoded.image
    }

    pub fn scale(&self) -> f32 {
        self.decoded.scale()
    }
}

fn ms(since: Instant) -> f32 {
    since.elapsed().as_secs_f32() * 1000.0
}

/// Decodes `bytes` and finds its faces: one pass over the whole photo (with the border retry),
/// then, when that pass found a crowd of small faces and the photo has the pixels, a second pass
/// over overlapping tiles at `small_face_zoom` times the scale, merged with the first.
pub fn detect_photo(
    detector: &mut Detector,
    bytes: &[u8],
    max_pixels: u64,
    score_threshold: Option<f32>,
    options: &PhotoOptions,
) -> Result<Photo, FaceError> {
    let t = Instant::now();
    let [iw, ih] = detector.spec().input_size;
    let mut decoded = if options.reduced_decoding {
        decode_reduced(bytes, max_pixels, iw.max(ih) * DECODE_OVERSAMPLING)?
    } else {
        Decoded::full(decode_rgb(bytes, max_pixels)?)
    };
    let mut decode_ms = ms(t);
    let decode_first = decode_ms;
    let t = Instant::now();
    let mut faces = detect_with_border_retry(detector, &decoded.image, score_threshold)?;
    let mut tiles = 0;
    let pass = small_face_pass_scale(
        &faces,
        decoded.image.dimensions(),
        [iw, ih],
        options.small_face_zoom,
        1.0 / decoded.scale(),
    );
    if let Some(mut scale) = pass {
        if scale > 1.0 {
            // The pass wants more pixels than this decode has: decode finer.
            let started = Instant::now();
            let before = decoded.scale();
            let long = decoded.full_width.max(decoded.full_height) as f32;
            let wanted = (long * before * scale).ceil() as u32;
            decoded = decode_reduced(bytes, max_pixels, wanted)?;
            let factor = decoded.scale() / before;
            faces = faces
                .into_iter()
                .map(|f| f.unscaled(1.0 / factor))
                .collect();
            scale /= factor;
            decode_ms += ms(started);
        }
        let (found, count) = detect_in_tiles(detector, &decoded.image, scale, score_threshold)?;
        tiles = count;
        let iou = detector.spec().nms_threshold.unwrap_or(0.4);
        faces = tiles::merge([faces, found], iou);
    }
    // The finer decode, if any, is counted as decoding.
    let detect_ms = ms(t) - (decode_ms - decode_first);
    let scale = decoded.scale();
    Ok(Photo {
        width: decoded.full_width,
        height: decoded.full_height,
        faces: faces.into_iter().map(|f| f.unscaled(scale)).collect(),
        tiles,
        divisor: decoded.divisor,
        decode_ms,
        detect_ms,
        decoded,
    })
}

/// The scale (tiled pixels per pixel of an image of `size`) of the small-face pass, or `None`
/// when the single pass's `faces` are few or large, or the photo has too few pixels to show more.
/// At most `max_scale`: the full-scale photo's pixels per pixel of the image.
pub fn small_face_pass_scale(
    faces: &[Face],
    (width, height): (u32, u32),
    [input_width, input_height]: [u32; 2],
    zoom: f32,
    max_scale: f32,
) -> Option<f32> {
    // A zoom of 1 or less, or none at all (NaN from a config file), turns the pass off.
    if !(zoom.is_finite() && zoom > 1.0) {
        return None;
    }
    let single = (input_width as f32 / width.max(1) as f32)
        .min(input_height as f32 / height.max(1) as f32)
        .min(1.0);
    let closer = (single * zoom).min(max_scale.max(1.0));
    if closer < single * MIN_GAIN {
        return None;
    }
    let small = faces
        .iter()
        .filter(|f| f.bbox.h * single < SMALL_FACE_PX)
        .count();
    (small >= CROWD_FACES).then_some(closer)
}

/// Faces of `image` found in overlapping detector-sized tiles of it shrunk by `scale`, in
/// `image`'s coordinates, and how many tiles there were.
fn detect_in_tiles(
    detector: &mut Detector,
    image: &RgbImage,
    scale: f32,
    score_threshold: Option<f32>,
) -> Result<(Vec<Face>, usize), FaceError> {
    let [iw, ih] = detector.spec().input_size;
    let side = iw.min(ih);
    let scaled = (scale < 1.0).then(|| {
        let width = ((image.width() as f32 * scale).round() as u32).max(1);
        let height = ((image.height() as f32 * scale).round() as u32).max(1);
        resize_bilinear(image, width, height)
    });
    let source = scaled.as_ref().unwrap_or(image);
    let (width, height) = source.dimensions();
    let overlap = (side as f32 * TILE_OVERLAP) as u32;
    let layout = tiles::layout(width, height, side, overlap, TILE_ALIGN);
    let mut found = Vec::with_capacity(layout.len());
    for tile in &layout {
        let crop = crop(source, tile);
        let faces = detector.detect(&crop, score_threshold)?;
        found.push(
            faces
                .into_iter()
                .filter(|f| !tiles::touches_inner_edge(f, tile, width, height, EDGE_MARGIN))
                .map(|f| {
                    f.translated(tile.x as f32, tile.y as f32)
                        .unscaled(scale.min(1.0))
                })
                .collect(),
        );
    }
    let iou = detector.spec().nms_threshold.unwrap_or(0.4);
    Ok((tiles::merge(found, iou), layout.len()))
}

/// The part of `image` under `tile`, copied row by row.
fn crop(image: &RgbImage, tile: &tiles::Tile) -> RgbImage {
    let row = image.width() as usize * 3;
    let (x, w) = (tile.x as usize * 3, tile.w as usize * 3);
    let mut raw = Vec::with_capacity(w * tile.h as usize);
    for line in image
        .as_raw()
        .chunks_exact(row)
        .skip(tile.y as usize)
        .take(tile.h as usize)
    {
        raw.extend_from_slice(&line[x..x + w]);
    }
    RgbImage::from_raw(tile.w, tile.h, raw).unwrap_or_default()
}

/// How many crop pixels the alignment makes of one pixel of the full-scale photo around `face`
/// (the scale of its similarity transform onto the template); `None` for degenerate landmarks.
fn crop_zoom(face: &Face, spec: &ModelSpec) -> Option<f32> {
    let template = spec.template?;
    let m = crate::geometry::similarity_transform(&face.landmarks, &template)?;
    let [[a, b, _], [d, e, _]] = m.0;
    Some((a * e - b * d).abs().sqrt())
}

/// The crops `spec`'s recognizer wants for `faces` (full-scale coordinates, as in `photo`), each
/// aligned from a decode with enough pixels: from the one the faces were found in when the
/// alignment enlarges none of them more than [`MAX_CROP_UPSCALE`] times, else from a finer
/// decode of `bytes` (then kept in `photo`, its time added to `decode_ms`). Faces with degenerate
/// landmarks are skipped.
pub fn align_faces(
    photo: &mut Photo,
    bytes: &[u8],
    max_pixels: u64,
    faces: &[Face],
    spec: &ModelSpec,
) -> Result<Vec<(Face, RgbImage)>, FaceError> {
    let needed = faces
        .iter()
        .filter_map(|f| crop_zoom(f, spec))
        .fold(0.0f32, f32::max)
        / MAX_CROP_UPSCALE;
    if photo.decoded.divisor > 1 && photo.decoded.scale() < needed.min(1.0) * 0.999 {
        let t = Instant::now();
        let long = photo.width.max(photo.height);
        let wanted = (long as f32 * needed.min(1.0)).ceil() as u32;
        photo.decoded = decode_reduced(bytes, max_pixels, wanted)?;
        photo.divisor = photo.decoded.divisor;
        photo.decode_ms += ms(t);
    }
    let scale = photo.decoded.scale();
    Ok(faces
        .iter()
        .filter_map(|f| {
            crate::engine::align(&photo.decoded.image, &f.unscaled(1.0 / scale), spec)
                .map(|crop| (*f, crop))
        })
        .collect())
}

impl Pipeline {
    /// The default limit and the detector's default options.
    pub fn new(detector: Detector, recognizer: Option<Recognizer>) -> Self {
        let options = PhotoOptions::for_detector(detector.spec());
        Self {
            detector,
            recognizer,
            max_pixels: DEFAULT_MAX_PIXELS,
            options,
        }
    }

    /// Decodes `bytes` and finds its faces, best first ([`detect_photo`]).
    pub fn detect(
        &mut self,
        bytes: &[u8],
        score_threshold: Option<f32>,
    ) -> Result<Photo, FaceError> {
        detect_photo(
            &mut self.detector,
            bytes,
            self.max_pixels,
            score_threshold,
            &self.options,
        )
    }

    /// Every face of the image with its embedding (best first).
    pub fn embed_all(&mut self, bytes: &[u8]) -> Result<Vec<EmbeddedFace>, FaceError> {
        let mut photo = self.detect(bytes, None)?;
        let faces = photo.faces.clone();
        self.embed(&mut photo, bytes, &faces)
    }

    /// The largest face of the image and its embedding; `NoFaceDetected` if there is none.
    pub fn embed_largest(&mut self, bytes: &[u8]) -> Result<EmbeddedFace, FaceError> {
        let mut photo = self.detect(bytes, None)?;
        let face = largest(&photo.faces).ok_or(FaceError::NoFaceDetected)?;
        self.embed(&mut photo, bytes, &[face])?
            .pop()
            .ok_or(FaceError::NoFaceDetected)
    }

    /// Aligns ([`align_faces`]) and embeds the given faces of `photo` (decoded from `bytes`);
    /// faces with degenerate landmarks are skipped.
    pub fn embed(
        &mut self,
        photo: &mut Photo,
        bytes: &[u8],
        faces: &[Face],
    ) -> Result<Vec<EmbeddedFace>, FaceError> {
        let recognizer = self
            .recognizer
            .as_mut()
            .ok_or_else(|| FaceError::IncompatibleModel {
                name: "pipeline".into(),
                detail: "no recognizer loaded".into(),
            })?;
        let aligned = align_faces(photo, bytes, self.max_pixels, faces, recognizer.spec())?;
        let crops: Vec<&RgbImage> = aligned.iter().map(|(_, crop)| crop).collect();
        let embeddings = recognizer.embed(&crops)?;
        Ok(aligned
            .into_iter()
            .zip(embeddings)
            .map(|((face, _), embedding)| EmbeddedFace { face, embedding })
            .collect())
    }

    /// Aligns and embeds `faces` of an already decoded full-scale `image` (for comparisons with
    /// a reference implementation; photos go through [`Pipeline::embed`]).
    pub fn embed_faces(
        &mut self,
        image: &RgbImage,
        faces: &[Face],
    ) -> Result<Vec<EmbeddedFace>, FaceError> {
        let mut photo = Photo {
            width: image.width(),
            height: image.height(),
            faces: faces.to_vec(),
            tiles: 0,
            divisor: 1,
            decode_ms: 0.0,
            detect_ms: 0.0,
            decoded: Decoded::full(image.clone()),
        };
        self.embed(&mut photo, &[], faces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faces_of_height(count: usize, height: f32) -> Vec<Face> {
        (0..count)
            .map(|i| Face {
                bbox: crate::geometry::BBox {
                    x: i as f32 * 100.0,
                    y: 0.0,
                    w: height,
                    h: height,
                },
                score: 0.9,
                landmarks: [[0.0; 2]; 5],
            })
            .collect()
    }

    #[test]
    fn only_a_crowd_of_small_faces_in_a_large_photo_gets_the_small_face_pass() {
        let input = [640, 640];
        // 1732 px wide: the single pass sees it at 640/1732; 20 px there is 54 px here.
        let crowd = faces_of_height(10, 54.0);
        let scale = small_face_pass_scale(&crowd, (1732, 1080), input, 3.0, 1.0).unwrap();
        assert_eq!(scale, 1.0, "zoom 3 is capped at the photo's own pixels");
        let scale = small_face_pass_scale(&crowd, (1732, 1080), input, 2.0, 1.0).unwrap();
        assert!((scale - 2.0 * 640.0 / 1732.0).abs() < 1e-6);
        // A reduced decode (1/4 of the photo): the pass may ask for more than it has.
        let scale = small_face_pass_scale(&crowd, (1732, 1080), input, 3.0, 4.0).unwrap();
        assert!(scale > 1.0);
        // Few small faces, large faces, the pass off, a photo the single pass sees whole.
        let few = faces_of_height(CROWD_FACES - 1, 54.0);
        assert_eq!(
            small_face_pass_scale(&few, (1732, 1080), input, 3.0, 1.0),
            None
        );
        let large = faces_of_height(20, 200.0);
        assert_eq!(
            small_face_pass_scale(&large, (1732, 1080), input, 3.0, 1.0),
            None
        );
        assert_eq!(
            small_face_pass_scale(&crowd, (1732, 1080), input, 1.0, 1.0),
            None
        );
        assert_eq!(
            small_face_pass_scale(&crowd, (800, 600), input, 3.0, 1.0),
            None
        );
        assert_eq!(
            small_face_pass_scale(&crowd, (1732, 1080), input, f32::NAN, 1.0),
            None
        );
    }

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
