//! The engine on tiny models the project generates itself: runs everywhere.

mod common;

use attendansee_faces::{FaceError, Recognizer};
use attendansee_vocabulary::ErrorKind;
use image::{Rgb, RgbImage};

use common::{runtime, tiny_models, tiny_spec};

fn crops(n: usize) -> Vec<RgbImage> {
    (0..n)
        .map(|i| {
            RgbImage::from_fn(112, 112, |x, y| {
                Rgb([(x * 2 + i as u32 * 7) as u8, (y * 2) as u8, (i * 20) as u8])
            })
        })
        .collect()
}

#[test]
fn fixed_batch_model_embeds_crop_by_crop_and_dynamic_batch_model_in_batches_with_equal_results() {
    let dir = tiny_models();
    let mut fixed = Recognizer::load(
        &runtime(),
        &tiny_spec("tiny", "tiny_fixed.onnx", 16),
        &dir.join("tiny_fixed.onnx"),
    )
    .unwrap();
    let mut dynamic = Recognizer::load(
        &runtime(),
        &tiny_spec("tiny", "tiny_dynamic.onnx", 16),
        &dir.join("tiny_dynamic.onnx"),
    )
    .unwrap();
    assert_eq!(fixed.batch_size(), 1);
    assert_eq!(dynamic.batch_size(), attendansee_faces::engine::MAX_BATCH);

    let images = crops(21); // two dynamic batches: 16 + 5
    let refs: Vec<&RgbImage> = images.iter().collect();
    let a = fixed.embed(&refs).unwrap();
    let b = dynamic.embed(&refs).unwrap();
    assert_eq!((a.len(), b.len()), (21, 21));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.dimension(), 16);
        let norm: f32 = x.vector.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
        assert!(x.cosine_similarity(y).unwrap() > 0.99999);
    }
    assert!(
        a[0].cosine_similarity(&a[20]).unwrap() < 0.9999,
        "different crops should differ"
    );
    assert!(fixed.embed(&[]).unwrap().is_empty());
}

#[test]
fn a_model_whose_dimension_differs_from_its_entry_is_refused() {
    let dir = tiny_models();
    let err = Recognizer::load(
        &runtime(),
        &tiny_spec("tiny", "tiny_wrong_dim.onnx", 16),
        &dir.join("tiny_wrong_dim.onnx"),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            FaceError::DimensionMismatch {
                expected: 16,
                actual: 8,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::DimensionMismatch);
}

#[test]
fn a_missing_model_file_is_model_not_available_and_a_wrong_kind_is_refused() {
    let dir = tiny_models();
    // Without a download source the advice is where the file goes, not a fetch that cannot work.
    let mut spec = tiny_spec("tiny", "nope.onnx", 16);
    let err = Recognizer::load(&runtime(), &spec, &dir.join("nope.onnx"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::ModelNotAvailable);
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "place its ONNX file at {}",
            dir.join("nope.onnx").display()
        )) && !message.contains("models fetch"),
        "{message}"
    );
    spec.url = Some("https://models.invalid/nope.onnx".into());
    let err = Recognizer::load(&runtime(), &spec, &dir.join("nope.onnx"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("models fetch tiny"), "{err}");

    let mut detector_spec = tiny_spec("tiny", "tiny_fixed.onnx", 16);
    detector_spec.kind = attendansee_faces::ModelKind::Detector;
    let err = Recognizer::load(&runtime(), &detector_spec, &dir.join("tiny_fixed.onnx"))
        .err()
        .unwrap();
    assert!(matches!(err, FaceError::WrongKind { .. }), "{err}");
}

#[test]
fn a_recognizer_is_not_accepted_as_a_detector() {
    let dir = tiny_models();
    let mut spec = tiny_spec("tiny", "tiny_fixed.onnx", 16);
    spec.kind = attendansee_faces::ModelKind::Detector;
    spec.family = Some(attendansee_faces::catalog::DetectorFamily::Yunet);
    let err = attendansee_faces::Detector::load(&runtime(), &spec, &dir.join("tiny_fixed.onnx"))
        .err()
        .unwrap();
    assert!(matches!(err, FaceError::IncompatibleModel { .. }), "{err}");
}
