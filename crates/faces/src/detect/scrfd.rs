//! SCRFD (InsightFace `det_500m`, `det_2.5g`, `det_10g`): per stride, scores, box distances and
//! landmark offsets for two anchors per grid cell, anchors centred at (col, row)·stride.
//! Decoded as InsightFace's `scrfd.py`: box = centre ∓ distance·stride, landmark = centre + offset·stride.

use super::{DecodeError, STRIDES, check_len};
use crate::geometry::{BBox, Face};

pub const ANCHORS_PER_CELL: usize = 2;

/// One stride's raw outputs, flattened: `scores` [cells·anchors], `bbox` [·4], `kps` [·10].
#[derive(Clone, Copy, Debug)]
pub struct Level<'a> {
    pub scores: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Faces scoring at least `score_threshold`, before NMS, for an input of `width`×`height`.
/// `levels` are for strides 8, 16, 32 in that order.
pub fn decode(
    levels: &[Level; 3],
    width: usize,
    height: usize,
    score_threshold: f32,
) -> Result<Vec<Face>, DecodeError> {
    let mut faces = Vec::new();
    for (level, stride) in levels.iter().zip(STRIDES) {
        let (cols, rows) = (width / stride, height / stride);
        let anchors = rows * cols * ANCHORS_PER_CELL;
        check_len(format!("scores (stride {stride})"), level.scores, anchors)?;
        check_len(format!("bbox (stride {stride})"), level.bbox, anchors * 4)?;
        check_len(format!("kps (stride {stride})"), level.kps, anchors * 10)?;
        let s = stride as f32;
        for (i, &score) in level.scores.iter().enumerate() {
            if score.is_nan() || score < score_threshold {
                continue;
            }
            let cell = i / ANCHORS_PER_CELL;
            let (cx, cy) = ((cell % cols) as f32 * s, (cell / cols) as f32 * s);
            let d = &level.bbox[i * 4..i * 4 + 4];
            let (x1, y1, x2, y2) = (cx - d[0] * s, cy - d[1] * s, cx + d[2] * s, cy + d[3] * s);
            let k = &level.kps[i * 10..i * 10 + 10];
            let landmarks = std::array::from_fn(|n| [cx + k[2 * n] * s, cy + k[2 * n + 1] * s]);
            let face = Face {
                bbox: BBox {
                    x: x1,
                    y: y1,
                    w: x2 - x1,
                    h: y2 - y1,
                },
                score,
                landmarks,
            };
            if face.is_finite() {
                faces.push(face);
            }
        }
    }
    Ok(faces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(width: usize, height: usize) -> Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        STRIDES
            .iter()
            .map(|s| (width / s) * (height / s) * ANCHORS_PER_CELL)
            .map(|n| (vec![0.0; n], vec![0.0; n * 4], vec![0.0; n * 10]))
            .collect()
    }

    fn levels(raw: &[(Vec<f32>, Vec<f32>, Vec<f32>)]) -> [Level<'_>; 3] {
        std::array::from_fn(|i| Level {
            scores: &raw[i].0,
            bbox: &raw[i].1,
            kps: &raw[i].2,
        })
    }

    #[test]
    fn decodes_the_second_anchor_of_a_cell_on_a_non_square_input() {
        // 64 wide, 32 high: stride 8 has 8 cols × 4 rows.
        let mut raw = empty(64, 32);
        let (scores, bbox, kps) = &mut raw[0];
        // cell (row 2, col 3) = 19; second anchor → index 39.
        scores[39] = 0.7;
        bbox[156..160].copy_from_slice(&[1.0, 2.0, 3.0, 0.5]);
        kps[390..400].copy_from_slice(&[0.5, -0.5, 1.0, 0.0, 0.0, 0.0, -1.0, 1.0, 0.25, 0.25]);
        let faces = decode(&levels(&raw), 64, 32, 0.5).unwrap();
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        // centre (24, 16): x1 = 24 − 8, y1 = 16 − 16, x2 = 24 + 24, y2 = 16 + 4
        assert_eq!(
            f.bbox,
            BBox {
                x: 16.0,
                y: 0.0,
                w: 32.0,
                h: 20.0
            }
        );
        assert_eq!(f.landmarks[0], [28.0, 12.0]);
        assert_eq!(f.landmarks[3], [16.0, 24.0]);
        assert_eq!(f.score, 0.7);
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut raw = empty(64, 64);
        raw[1].1.truncate(3);
        assert!(decode(&levels(&raw), 64, 64, 0.5).is_err());
        assert!(decode(&levels(&empty(64, 64)), 128, 64, 0.5).is_err());
    }
}
