//! YuNet (OpenCV Zoo `face_detection_yunet_2023mar`): per stride, `cls`, `obj`, `bbox` and `kps`
//! maps over a grid of `input / stride` cells, one prior per cell. Decoded exactly as OpenCV's
//! `FaceDetectorYN` does: score = sqrt(clamp(cls)·clamp(obj)); box centre = (cell + offset)·stride,
//! size = exp(log-size)·stride; landmark = (cell + offset)·stride.

use super::{DecodeError, STRIDES, check_len};
use crate::geometry::{BBox, Face};

/// One stride's raw outputs, flattened row-major.
#[derive(Clone, Copy, Debug)]
pub struct Level<'a> {
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Faces scoring at least `score_threshold`, before NMS, for an input of `width`×`height`
/// (multiples of 32). `levels` are for strides 8, 16, 32 in that order.
pub fn decode(
    levels: &[Level; 3],
    width: usize,
    height: usize,
    score_threshold: f32,
) -> Result<Vec<Face>, DecodeError> {
    let mut faces = Vec::new();
    for (level, stride) in levels.iter().zip(STRIDES) {
        let (cols, rows) = (width / stride, height / stride);
        let cells = rows * cols;
        check_len(format!("cls_{stride}"), level.cls, cells)?;
        check_len(format!("obj_{stride}"), level.obj, cells)?;
        check_len(format!("bbox_{stride}"), level.bbox, cells * 4)?;
        check_len(format!("kps_{stride}"), level.kps, cells * 10)?;
        let s = stride as f32;
        for r in 0..rows {
            for c in 0..cols {
                let i = r * cols + c;
                let score = (level.cls[i].clamp(0.0, 1.0) * level.obj[i].clamp(0.0, 1.0)).sqrt();
                if score.is_nan() || score < score_threshold {
                    continue;
                }
                let b = &level.bbox[i * 4..i * 4 + 4];
                let (cx, cy) = ((c as f32 + b[0]) * s, (r as f32 + b[1]) * s);
                let (w, h) = (b[2].exp() * s, b[3].exp() * s);
                let k = &level.kps[i * 10..i * 10 + 10];
                let landmarks = std::array::from_fn(|n| {
                    [(k[2 * n] + c as f32) * s, (k[2 * n + 1] + r as f32) * s]
                });
                let face = Face {
                    bbox: BBox {
                        x: cx - w / 2.0,
                        y: cy - h / 2.0,
                        w,
                        h,
                    },
                    score,
                    landmarks,
                };
                if face.is_finite() {
                    faces.push(face);
                }
            }
        }
    }
    Ok(faces)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cls, obj, bbox, kps of one stride.
    type Raw = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// Zeroed outputs for a 64×64 input (8×8, 4×4 and 2×2 cells), with the scores at 0.
    fn empty() -> Vec<Raw> {
        STRIDES
            .iter()
            .map(|s| (64 / s) * (64 / s))
            .map(|n| {
                (
                    vec![0.0; n],
                    vec![0.0; n],
                    vec![0.0; n * 4],
                    vec![0.0; n * 10],
                )
            })
            .collect()
    }

    fn levels(raw: &[Raw]) -> [Level<'_>; 3] {
        std::array::from_fn(|i| Level {
            cls: &raw[i].0,
            obj: &raw[i].1,
            bbox: &raw[i].2,
            kps: &raw[i].3,
        })
    }

    #[test]
    fn decodes_one_hand_made_face_at_stride_16() {
        let mut raw = empty();
        // Stride 16, cell (row 1, col 2) = index 1*4 + 2 = 6.
        let (cls, obj, bbox, kps) = &mut raw[1];
        cls[6] = 0.81;
        obj[6] = 1.5; // clamped to 1
        bbox[24..28].copy_from_slice(&[0.5, 0.25, 1.0f32.ln(), 2.0f32.ln()]);
        for n in 0..5 {
            kps[60 + 2 * n] = 0.1 * n as f32;
            kps[60 + 2 * n + 1] = -0.1 * n as f32;
        }
        let faces = decode(&levels(&raw), 64, 64, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        // centre ((2 + 0.5)·16, (1 + 0.25)·16) = (40, 20); size (16, 32)
        assert_eq!(
            f.bbox,
            BBox {
                x: 32.0,
                y: 4.0,
                w: 16.0,
                h: 32.0
            }
        );
        assert!((f.landmarks[3][0] - (0.3 + 2.0) * 16.0).abs() < 1e-5);
        assert!((f.landmarks[3][1] - (-0.3 + 1.0) * 16.0).abs() < 1e-5);
    }

    #[test]
    fn threshold_and_nan_scores_filter_and_wrong_sizes_are_errors() {
        let mut raw = empty();
        raw[0].0[0] = 0.2;
        raw[0].1[0] = 0.2; // score 0.2
        raw[0].0[1] = f32::NAN;
        raw[0].1[1] = 1.0;
        assert!(decode(&levels(&raw), 64, 64, 0.5).unwrap().is_empty());
        assert_eq!(decode(&levels(&raw), 64, 64, 0.1).unwrap().len(), 1);
        raw[2].3.pop();
        let err = decode(&levels(&raw), 64, 64, 0.5).unwrap_err();
        assert_eq!(
            err,
            DecodeError {
                name: "kps_32".into(),
                actual: 39,
                expected: 40
            }
        );
    }
}
