//! Whether a face is good enough to recognise: its size, sharpness and pose, measured from what
//! the detector and the worker report (box, 5 landmarks, the aligned crop's Laplacian variance),
//! and the limits below which it is never assigned automatically. The limits are calibrated in
//! docs/calibration.md ("Face quality") with `tools/calibrate_quality.py`.

use serde::{Deserialize, Serialize};

use crate::Reason;

/// A face's measured quality.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceQuality {
    /// The box's shorter side, in the photo's pixels.
    pub size: f32,
    /// Distance between the eye landmarks, in the photo's pixels.
    pub eye_distance: f32,
    /// Variance of the aligned crop's Laplacian (low = blurred); `None` when not measured.
    pub sharpness: Option<f32>,
    /// How far the face is turned: see [`yaw_proxy`].
    pub yaw: f32,
}

/// How far a face is turned sideways, from its landmarks (eyes first, then the nose): the nose's
/// offset from the eyes' midpoint along the line between the eyes, in half eye distances: about
/// 0.8·tan(yaw) for a nose tip as far in front of the eyes as a typical adult's, so 0 for a
/// frontal face, ~0.5 at 30°, ~0.8 at 45°, 1 (the nose in front of an eye) near 50°. Infinite
/// when the eyes coincide or a coordinate is not finite: such landmarks describe no face that
/// can be aligned.
pub fn yaw_proxy(landmarks: &[[f32; 2]; 5]) -> f32 {
    let [left, right, nose] = [landmarks[0], landmarks[1], landmarks[2]];
    let eyes = [right[0] - left[0], right[1] - left[1]];
    let squared = eyes[0] * eyes[0] + eyes[1] * eyes[1];
    let middle = [(left[0] + right[0]) / 2.0, (left[1] + right[1]) / 2.0];
    let along = (nose[0] - middle[0]) * eyes[0] + (nose[1] - middle[1]) * eyes[1];
    let yaw = 2.0 * along.abs() / squared;
    if yaw.is_finite() { yaw } else { f32::INFINITY }
}

impl FaceQuality {
    /// The measures of a face with this box (x, y, width, height), these landmarks and this
    /// crop sharpness.
    pub fn measure(bbox: [f32; 4], landmarks: &[[f32; 2]; 5], sharpness: Option<f32>) -> Self {
        let [left, right] = [landmarks[0], landmarks[1]];
        FaceQuality {
            size: bbox[2].min(bbox[3]),
            eye_distance: (right[0] - left[0]).hypot(right[1] - left[1]),
            sharpness,
            yaw: yaw_proxy(landmarks),
        }
    }
}

/// The limits below which a face is too poor to recognise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityLimits {
    /// Smallest box side (pixels) recognised reliably.
    pub min_size: f32,
    /// Lowest crop sharpness recognised reliably.
    pub min_sharpness: f32,
    /// Largest yaw proxy recognised reliably.
    pub max_yaw: f32,
}

impl QualityLimits {
    /// Calibrated for MobileFaceNet on ../shared/faces (docs/calibration.md, "Face quality").
    pub const CALIBRATED: QualityLimits = QualityLimits {
        min_size: 32.0,
        min_sharpness: 20.0,
        max_yaw: 1.0,
    };

    /// Why the face is too poor to recognise, if it is. One reason, the most useful to act on:
    /// a face too small is also blurred once enlarged to the recognizer's input, and a turned
    /// face looks narrower, so size comes first, then pose, then sharpness. A measure that is
    /// not a number fails its limit; a sharpness not measured passes.
    pub fn verdict(&self, q: &FaceQuality) -> Option<Reason> {
        // `at_least(a, b)` is false for NaN, unlike `a < b` negated.
        let at_least = |a: f32, b: f32| a.partial_cmp(&b).is_some_and(|o| o.is_ge());
        if !at_least(q.size, self.min_size) {
            Some(Reason::TooSmall)
        } else if !at_least(self.max_yaw, q.yaw) {
            Some(Reason::Profile)
        } else if q
            .sharpness
            .is_some_and(|s| !at_least(s, self.min_sharpness))
        {
            Some(Reason::Blurred)
        } else {
            None
        }
    }
}

/// The instructor's hint for a photo whose faces have these verdicts: what is wrong and what to
/// do about it, e.g. "8 faces too small to recognise: take the photo closer". `None` when every
/// face is good enough.
pub fn photo_hint(verdicts: impl IntoIterator<Item = Option<Reason>>) -> Option<String> {
    let (mut small, mut blurred, mut profile) = (0usize, 0usize, 0usize);
    for verdict in verdicts.into_iter().flatten() {
        match verdict {
            Reason::TooSmall => small += 1,
            Reason::Blurred => blurred += 1,
            Reason::Profile => profile += 1,
            _ => {}
        }
    }
    let faces = |n: usize| {
        if n == 1 {
            "1 face".to_owned()
        } else {
            format!("{n} faces")
        }
    };
    let parts: Vec<String> = [
        (small, "too small to recognise: take the photo closer"),
        (
            blurred,
            "too blurred to recognise: hold the camera still, with more light",
        ),
        (profile, "turned away: ask everyone to face the camera"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{} {what}", faces(n)))
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frontal face in a box of side `side` at the origin, its landmarks where YuNet puts them.
    fn frontal(side: f32) -> ([f32; 4], [[f32; 2]; 5]) {
        let at = |fx: f32, fy: f32| [fx * side, fy * side];
        (
            [0.0, 0.0, side, side * 1.2],
            [
                at(0.3, 0.4),
                at(0.7, 0.4),
                at(0.5, 0.6),
                at(0.35, 0.8),
                at(0.65, 0.8),
            ],
        )
    }

    #[test]
    fn a_frontal_face_has_no_yaw_and_its_size_is_the_shorter_side_of_its_box() {
        let (bbox, landmarks) = frontal(100.0);
        let q = FaceQuality::measure(bbox, &landmarks, Some(50.0));
        assert_eq!(q.size, 100.0);
        assert!((q.eye_distance - 40.0).abs() < 1e-4, "{q:?}");
        assert!(q.yaw.abs() < 1e-6, "{q:?}");
        assert_eq!(QualityLimits::CALIBRATED.verdict(&q), None);
    }

    #[test]
    fn the_yaw_proxy_grows_as_the_nose_moves_towards_an_eye_whatever_the_roll_or_side() {
        let (_, mut landmarks) = frontal(100.0);
        let mut last = 0.0;
        for nose_x in [55.0, 60.0, 65.0, 70.0, 80.0] {
            landmarks[2][0] = nose_x;
            let yaw = yaw_proxy(&landmarks);
            assert!(yaw > last, "{nose_x}: {yaw}");
            last = yaw;
        }
        // The nose in front of the right eye: exactly 1; to the left instead: the same.
        landmarks[2] = [70.0, 60.0];
        assert!((yaw_proxy(&landmarks) - 1.0).abs() < 1e-6);
        landmarks[2] = [30.0, 60.0];
        assert!((yaw_proxy(&landmarks) - 1.0).abs() < 1e-6);
        // A head tilted by 90° (eyes one above the other) with a centred nose is frontal.
        let tilted = [
            [40.0, 30.0],
            [40.0, 70.0],
            [60.0, 50.0],
            [0.0, 0.0],
            [0.0, 0.0],
        ];
        assert!(yaw_proxy(&tilted).abs() < 1e-6);
    }

    #[test]
    fn degenerate_landmarks_are_infinitely_turned_not_a_panic() {
        let same = [[10.0, 10.0]; 5];
        assert_eq!(yaw_proxy(&same), f32::INFINITY);
        let mut nan = frontal(100.0).1;
        nan[2][0] = f32::NAN;
        assert_eq!(yaw_proxy(&nan), f32::INFINITY);
        let q = FaceQuality::measure([0.0, 0.0, 50.0, 50.0], &same, None);
        assert_eq!(QualityLimits::CALIBRATED.verdict(&q), Some(Reason::Profile));
    }

    #[test]
    fn each_limit_gives_its_reason_and_size_comes_first_then_pose_then_sharpness() {
        let limits = QualityLimits {
            min_size: 24.0,
            min_sharpness: 10.0,
            max_yaw: 0.8,
        };
        let good = FaceQuality {
            size: 24.0,
            eye_distance: 10.0,
            sharpness: Some(10.0),
            yaw: 0.8,
        };
        assert_eq!(limits.verdict(&good), None, "the limits themselves pass");
        let small = FaceQuality { size: 23.9, ..good };
        let blurred = FaceQuality {
            sharpness: Some(9.9),
            ..good
        };
        let turned = FaceQuality { yaw: 0.81, ..good };
        assert_eq!(limits.verdict(&small), Some(Reason::TooSmall));
        assert_eq!(limits.verdict(&blurred), Some(Reason::Blurred));
        assert_eq!(limits.verdict(&turned), Some(Reason::Profile));
        let all = FaceQuality {
            size: 10.0,
            sharpness: Some(1.0),
            yaw: 2.0,
            ..good
        };
        assert_eq!(limits.verdict(&all), Some(Reason::TooSmall));
        assert_eq!(
            limits.verdict(&FaceQuality { size: 30.0, ..all }),
            Some(Reason::Profile)
        );
        let unmeasured = FaceQuality {
            sharpness: None,
            ..good
        };
        assert_eq!(limits.verdict(&unmeasured), None);
        let nan = FaceQuality {
            size: f32::NAN,
            ..good
        };
        assert_eq!(limits.verdict(&nan), Some(Reason::TooSmall));
        for reason in [Reason::TooSmall, Reason::Blurred, Reason::Profile] {
            assert!(reason.is_poor_quality());
        }
        assert!(!Reason::BelowThreshold.is_poor_quality());
    }

    #[test]
    fn a_photo_hint_counts_each_problem_and_says_what_to_do() {
        assert_eq!(photo_hint([None, None]), None);
        assert_eq!(photo_hint([]), None);
        let small = std::iter::repeat_n(Some(Reason::TooSmall), 8);
        assert_eq!(
            photo_hint(small.chain([None, Some(Reason::Matched)])).as_deref(),
            Some("8 faces too small to recognise: take the photo closer")
        );
        assert_eq!(
            photo_hint([
                Some(Reason::Blurred),
                Some(Reason::Profile),
                Some(Reason::TooSmall)
            ])
            .as_deref(),
            Some(
                "1 face too small to recognise: take the photo closer; 1 face too blurred to \
                 recognise: hold the camera still, with more light; 1 face turned away: ask \
                 everyone to face the camera"
            )
        );
    }
}
