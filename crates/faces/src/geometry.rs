//! Face geometry as pure functions: boxes, IoU, non-maximum suppression, and the 2-D similarity
//! transform (rotation, uniform scale, translation; never a reflection) fitted by least squares.

use serde::{Deserialize, Serialize};

/// A point in image coordinates (pixels, x right, y down).
pub type Point = [f32; 2];

/// An axis-aligned box: top-left corner, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union; 0 for degenerate boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let x1 = self.x.max(other.x);
        let y1 = self.y.max(other.y);
        let x2 = (self.x + self.w).min(other.x + other.w);
        let y2 = (self.y + self.h).min(other.y + other.h);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// A detected face: box, confidence and the five landmarks (left eye, right eye, nose tip,
/// left and right mouth corners, "left" as seen in the image).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: [Point; 5],
}

impl Face {
    /// Maps a face found in a scaled copy back to the original image (`original = scaled / scale`).
    pub fn unscaled(mut self, scale: f32) -> Face {
        let inv = 1.0 / scale;
        self.bbox = BBox {
            x: self.bbox.x * inv,
            y: self.bbox.y * inv,
            w: self.bbox.w * inv,
            h: self.bbox.h * inv,
        };
        for p in &mut self.landmarks {
            *p = [p[0] * inv, p[1] * inv];
        }
        self
    }

    /// Moves the face by (`dx`, `dy`).
    pub fn translated(mut self, dx: f32, dy: f32) -> Face {
        self.bbox.x += dx;
        self.bbox.y += dy;
        for p in &mut self.landmarks {
            *p = [p[0] + dx, p[1] + dy];
        }
        self
    }

    /// True when every number is finite (decoders drop faces from NaN or infinite outputs).
    pub fn is_finite(&self) -> bool {
        let b = &self.bbox;
        [b.x, b.y, b.w, b.h, self.score]
            .iter()
            .chain(self.landmarks.iter().flatten())
            .all(|v| v.is_finite())
    }
}

/// Greedy non-maximum suppression: keeps the best-scoring faces, dropping any that overlaps a
/// kept one by more than `iou_threshold`. The result is sorted by descending score.
pub fn nms(mut faces: Vec<Face>, iou_threshold: f32) -> Vec<Face> {
    faces.retain(Face::is_finite);
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::with_capacity(faces.len());
    for face in faces {
        if kept.iter().all(|k| k.bbox.iou(&face.bbox) <= iou_threshold) {
            kept.push(face);
        }
    }
    kept
}

/// A 2×3 affine matrix `[[a, b, c], [d, e, f]]` mapping (x, y) to (ax + by + c, dx + ey + f),
/// laid out as OpenCV's `warpAffine` expects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [[f32; 3]; 2]);

impl Affine {
    pub fn apply(&self, p: Point) -> Point {
        let m = &self.0;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// The inverse map, or `None` for a singular matrix.
    pub fn inverse(&self) -> Option<Affine> {
        let [[a, b, c], [d, e, f]] = self.0;
        let det = a * e - b * d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([
            [ia, ib, -(ia * c + ib * f)],
            [id, ie, -(id * c + ie * f)],
        ]))
    }
}

/// The similarity transform (rotation, uniform scale, translation — no reflection) that maps
/// `src` onto `dst` with the least squared error. `None` when `src` has no spread (all points
/// equal) or the input is not finite.
///
/// Closed form: with centred points, the matrix is `[[a, -b], [b, a]]` where
/// `a = Σ x·y / Σ |x|²` and `b = Σ x×y / Σ |x|²` (the 2-D case of Umeyama's method).
pub fn similarity_transform(src: &[Point], dst: &[Point]) -> Option<Affine> {
    if src.len() != dst.len() || src.len() < 2 {
        return None;
    }
    let n = src.len() as f64;
    let mean = |pts: &[Point]| {
        let (sx, sy) = pts.iter().fold((0.0f64, 0.0f64), |(sx, sy), p| {
            (sx + f64::from(p[0]), sy + f64::from(p[1]))
        });
        (sx / n, sy / n)
    };
    let (mxs, mys) = mean(src);
    let (mxd, myd) = mean(dst);
    let (mut dot, mut cross, mut norm) = (0.0f64, 0.0f64, 0.0f64);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (f64::from(s[0]) - mxs, f64::from(s[1]) - mys);
        let (dx, dy) = (f64::from(d[0]) - mxd, f64::from(d[1]) - myd);
        dot += sx * dx + sy * dy;
        cross += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    if norm < 1e-12 || !(dot.is_finite() && cross.is_finite() && norm.is_finite()) {
        return None;
    }
    let (a, b) = (dot / norm, cross / norm);
    let tx = mxd - (a * mxs - b * mys);
    let ty = myd - (b * mxs + a * mys);
    Some(Affine([
        [a as f32, -b as f32, tx as f32],
        [b as f32, a as f32, ty as f32],
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, size: f32, score: f32) -> Face {
        Face {
            bbox: BBox {
                x,
                y,
                w: size,
                h: size,
            },
            score,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(
            a.iou(&BBox {
                x: 20.0,
                y: 0.0,
                w: 10.0,
                h: 10.0
            }),
            0.0
        );
        let half = BBox {
            x: 5.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(
            BBox {
                x: 0.0,
                y: 0.0,
                w: 0.0,
                h: 0.0
            }
            .iou(&BBox {
                x: 0.0,
                y: 0.0,
                w: 0.0,
                h: 0.0
            }),
            0.0
        );
    }

    #[test]
    fn nms_keeps_the_best_of_each_overlapping_group_and_drops_non_finite_faces() {
        let faces = vec![
            face(0.0, 0.0, 10.0, 0.8),
            face(1.0, 1.0, 10.0, 0.9), // overlaps the first heavily and scores higher
            face(50.0, 50.0, 10.0, 0.7),
            face(f32::NAN, 0.0, 10.0, 0.99),
        ];
        let kept = nms(faces, 0.4);
        let scores: Vec<f32> = kept.iter().map(|f| f.score).collect();
        assert_eq!(scores, [0.9, 0.7]);
        assert!(nms(vec![], 0.4).is_empty());
    }

    #[test]
    fn similarity_transform_recovers_a_known_rotation_scale_and_translation() {
        let (angle, scale, tx, ty) = (0.3f32, 1.7f32, 12.5f32, -4.0f32);
        let truth = Affine([
            [scale * angle.cos(), -scale * angle.sin(), tx],
            [scale * angle.sin(), scale * angle.cos(), ty],
        ]);
        let src: Vec<Point> = vec![
            [10.0, 20.0],
            [40.0, 22.0],
            [25.0, 40.0],
            [13.0, 55.0],
            [38.0, 57.0],
        ];
        let dst: Vec<Point> = src.iter().map(|&p| truth.apply(p)).collect();
        let fitted = similarity_transform(&src, &dst).unwrap();
        for (row_f, row_t) in fitted.0.iter().zip(truth.0.iter()) {
            for (f, t) in row_f.iter().zip(row_t) {
                assert!((f - t).abs() < 1e-4, "{fitted:?} vs {truth:?}");
            }
        }
    }

    #[test]
    fn similarity_transform_never_reflects_and_refuses_degenerate_input() {
        let src: Vec<Point> = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let mirrored: Vec<Point> = src.iter().map(|p| [-p[0], p[1]]).collect();
        let m = similarity_transform(&src, &mirrored).unwrap();
        let det = m.0[0][0] * m.0[1][1] - m.0[0][1] * m.0[1][0];
        assert!(det >= 0.0, "a reflection was fitted: {m:?}");
        assert!(similarity_transform(&[[1.0, 1.0]; 5], &src).is_none());
        assert!(
            similarity_transform(&[[f32::NAN, 0.0], [1.0, 1.0]], &[[0.0, 0.0], [1.0, 1.0]])
                .is_none()
        );
        assert!(similarity_transform(&src, &src[..2]).is_none());
    }

    #[test]
    fn affine_inverse_round_trips_and_singular_has_none() {
        let m = Affine([[1.2, -0.4, 5.0], [0.4, 1.2, -3.0]]);
        let inv = m.inverse().unwrap();
        let p = inv.apply(m.apply([7.0, -2.0]));
        assert!((p[0] - 7.0).abs() < 1e-4 && (p[1] + 2.0).abs() < 1e-4);
        assert!(Affine([[0.0; 3]; 2]).inverse().is_none());
    }
}
