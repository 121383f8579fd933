//! Whole photos through the photo path on the real models of ../shared (skipped, saying so,
//! where it is absent): the small-face pass finds the crowd's faces and leaves easy photos alone,
//! and reduced-scale decoding keeps the counts and the embeddings of the full-scale path.

mod common;

use std::path::Path;

use attendansee_faces::catalog::builtin;
use attendansee_faces::imageops::face_sharpness;
use attendansee_faces::pipeline::{Photo, PhotoOptions, Pipeline, align_faces};
use attendansee_faces::{Detector, Recognizer};

use common::{runtime, shared};

fn pipeline(shared: &Path, detector: &str, recognizer: Option<&str>) -> Pipeline {
    let load = |name: &str| builtin().into_iter().find(|s| s.name == name).unwrap();
    let models = shared.join("models");
    let spec = load(detector);
    let detector = Detector::load(&runtime(), &spec, &models.join(&spec.file)).unwrap();
    let recognizer = recognizer.map(|name| {
        let spec = load(name);
        Recognizer::load(&runtime(), &spec, &models.join(&spec.file)).unwrap()
    });
    Pipeline::new(detector, recognizer)
}

fn photo(p: &mut Pipeline, path: &Path) -> Photo {
    p.detect(&std::fs::read(path).unwrap(), None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_small_face_pass_finds_the_crowd_a_full_resolution_pass_finds() {
    let Some(shared) = shared("the_small_face_pass_finds_the_crowd_a_full_resolution_pass_finds")
    else {
        return;
    };
    let group = shared.join("faces/crowd/group.jpg");
    let mut p = pipeline(&shared, "yunet", None);
    // YuNet at its catalog threshold, 0.75, as the photo's labels.csv counts.
    assert_eq!(p.detector.spec().score_threshold, Some(0.75));
    let found = photo(&mut p, &group);
    assert!(found.tiles > 0, "the crowd must get the small-face pass");
    assert!(
        found.faces.len() >= 52,
        "{} faces in crowd/group.jpg; a full-resolution pass finds 52",
        found.faces.len()
    );
    // What the single pass finds (and the pass off finds the same).
    p.options = PhotoOptions::SINGLE_PASS_FULL_DECODE;
    assert_eq!(photo(&mut p, &group).faces.len(), 49);
    p.options.small_face_zoom = 1.0;
    p.options.reduced_decoding = true;
    let off = photo(&mut p, &group);
    assert_eq!((off.faces.len(), off.tiles), (49, 0));
    // Every face once: no two boxes of the merged list overlap much, and none lies inside
    // another (a face cut by a tile's edge next to the whole one).
    for (i, a) in found.faces.iter().enumerate() {
        for b in &found.faces[i + 1..] {
            assert!(a.bbox.iou(&b.bbox) <= 0.3, "{a:?} and {b:?}");
            let (a, b) = (a.bbox, b.bbox);
            let w = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
            let h = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
            assert!(w * h <= 0.6 * a.area().min(b.area()), "{a:?} inside {b:?}");
        }
    }
}

#[test]
fn solvay_keeps_its_29_faces_with_the_small_face_pass() {
    let Some(shared) = shared("solvay_keeps_its_29_faces_with_the_small_face_pass") else {
        return;
    };
    let solvay = shared.join("faces/scrfd_testimages/solvay_conference_1927.png");
    for detector in ["yunet", "scrfd"] {
        let mut p = pipeline(&shared, detector, None);
        let found = photo(&mut p, &solvay);
        assert_eq!(found.faces.len(), 29, "{detector}");
        assert_eq!(found.divisor, 1, "PNG has no reduced decoding");
        if detector == "yunet" {
            assert!(found.tiles > 0, "29 small faces: the pass runs");
        }
    }
}

/// Faces in the five 24-megapixel classroom photos, as the single full-scale pass finds them.
const CLASSROOM: [(&str, usize); 5] = [
    ("photo1.jpeg", 5),
    ("photo2.jpeg", 4),
    ("photo3.jpeg", 5),
    ("photo4.jpeg", 4),
    ("photo5.jpeg", 6),
];

#[test]
fn classroom_photos_keep_their_faces_decoded_at_a_quarter_with_no_extra_pass() {
    let Some(shared) =
        shared("classroom_photos_keep_their_faces_decoded_at_a_quarter_with_no_extra_pass")
    else {
        return;
    };
    let dir = shared.join("faces/classroom_photos");
    let mut old = pipeline(&shared, "yunet", Some("mobilefacenet"));
    old.options = PhotoOptions::SINGLE_PASS_FULL_DECODE;
    let mut new = pipeline(&shared, "yunet", Some("mobilefacenet"));
    let mut worst = 1f32;
    for (file, count) in CLASSROOM {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let mut before = old.detect(&bytes, None).unwrap();
        let mut after = new.detect(&bytes, None).unwrap();
        assert_eq!(before.faces.len(), count, "{file}: today's count");
        assert_eq!(after.faces.len(), count, "{file}: the new path's count");
        assert_eq!(
            after.tiles, 0,
            "{file}: a few large faces need no second pass"
        );
        assert_eq!(after.divisor, 4, "{file}: 5712 px decoded at 1/4");
        assert_eq!(after.image().width(), 1428, "{file}");
        assert_eq!(
            (after.width, after.height),
            (before.width, before.height),
            "{file}: faces are in full-scale coordinates"
        );
        let faces = before.faces.clone();
        let full = old.embed(&mut before, &bytes, &faces).unwrap();
        let faces = after.faces.clone();
        let reduced = new.embed(&mut after, &bytes, &faces).unwrap();
        assert_eq!(after.divisor, 4, "{file}: the crops needed no finer decode");
        assert_eq!(reduced.len(), count);
        for f in &full {
            // The same face: the nearest box, within a few full-scale pixels.
            let same = reduced
                .iter()
                .min_by(|a, b| {
                    let d = |x: &attendansee_faces::pipeline::EmbeddedFace| {
                        (x.face.bbox.x - f.face.bbox.x).abs()
                            + (x.face.bbox.y - f.face.bbox.y).abs()
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert!((same.face.bbox.x - f.face.bbox.x).abs() < 0.05 * f.face.bbox.w);
            let cos = same.embedding.cosine_similarity(&f.embedding).unwrap();
            worst = worst.min(cos);
        }
    }
    eprintln!("classroom embeddings, reduced vs full-scale decoding: cosine ≥ {worst:.3}");
    // MobileFaceNet's match threshold is 0.50; a fraction of a pixel of landmark shift gives 0.99.
    assert!(worst >= 0.9, "cosine {worst}");
}

/// The sharpness limit was calibrated on crops aligned from photos as given; the workers align
/// a large JPEG's faces from its reduced decode (enlarged up to 2×), which measures lower. On the
/// classroom photos — sharp phone photos — no face may fall under the limit that way: it would
/// be marked `blurred` and never assigned.
#[test]
fn classroom_faces_aligned_from_the_reduced_decode_stay_above_the_sharpness_limit() {
    let Some(shared) =
        shared("classroom_faces_aligned_from_the_reduced_decode_stay_above_the_sharpness_limit")
    else {
        return;
    };
    let limit = attendansee_recognition::QualityLimits::CALIBRATED.min_sharpness;
    let dir = shared.join("faces/classroom_photos");
    let mut old = pipeline(&shared, "yunet", Some("mobilefacenet"));
    old.options = PhotoOptions::SINGLE_PASS_FULL_DECODE;
    let mut new = pipeline(&shared, "yunet", Some("mobilefacenet"));
    let spec = new.recognizer.as_ref().unwrap().spec().clone();
    let (mut lowest, mut lowest_full) = (f32::MAX, f32::MAX);
    for (file, _) in CLASSROOM {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        for (pipeline, lowest) in [(&mut new, &mut lowest), (&mut old, &mut lowest_full)] {
            let mut photo = pipeline.detect(&bytes, None).unwrap();
            let faces = photo.faces.clone();
            for (_, crop) in align_faces(&mut photo, &bytes, u64::MAX, &faces, &spec).unwrap() {
                *lowest = lowest.min(face_sharpness(&crop));
            }
        }
    }
    eprintln!(
        "classroom faces' sharpness: lowest {lowest:.0} from the reduced decode, {lowest_full:.0} at full scale (limit {limit})"
    );
    assert!(
        lowest >= 2.0 * limit,
        "lowest sharpness {lowest} against the limit {limit}"
    );
}

#[test]
fn small_faces_in_a_reduced_decode_are_aligned_from_a_finer_one() {
    let Some(shared) = shared("small_faces_in_a_reduced_decode_are_aligned_from_a_finer_one")
    else {
        return;
    };
    // A classroom photo with its faces shrunk to a fifth, as the back of a hall: the crops
    // would be enlarged more than the limit from the 1/4 decode.
    let bytes = std::fs::read(shared.join("faces/classroom_photos/photo4.jpeg")).unwrap();
    let mut p = pipeline(&shared, "yunet", Some("mobilefacenet"));
    let mut found = p.detect(&bytes, None).unwrap();
    assert_eq!(found.divisor, 4);
    let tiny: Vec<_> = found
        .faces
        .iter()
        .map(|f| {
            let (cx, cy) = (f.bbox.x + f.bbox.w / 2.0, f.bbox.y + f.bbox.h / 2.0);
            let mut small = *f;
            small.bbox.w /= 5.0;
            small.bbox.h /= 5.0;
            for l in &mut small.landmarks {
                *l = [cx + (l[0] - cx) / 5.0, cy + (l[1] - cy) / 5.0];
            }
            small
        })
        .collect();
    let embedded = p.embed(&mut found, &bytes, &tiny).unwrap();
    assert_eq!(embedded.len(), tiny.len());
    assert!(
        found.divisor < 4,
        "decoded again finer: 1/{}",
        found.divisor
    );
}

/// The labelled photos of face_recognition_examples are all under 2560 px, so the accuracy tests
/// on them decode at full scale. Here each is enlarged to a phone photo's 2600–5712 px and
/// re-encoded as a JPEG, which is decoded at 1/2 or 1/4: identification must be as good.
#[test]
fn enlarged_labelled_photos_decoded_at_a_reduced_scale_identify_as_well() {
    let Some(shared) =
        shared("enlarged_labelled_photos_decoded_at_a_reduced_scale_identify_as_well")
    else {
        return;
    };
    let dir = shared.join("faces/face_recognition_examples");
    let mut p = pipeline(&shared, "yunet", Some("mobilefacenet"));
    let mut original = Vec::new();
    let mut enlarged = Vec::new();
    let mut worst = 1f32;
    for (file, identity) in common::labels(&dir) {
        if identity.contains(';') {
            continue; // several people
        }
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        let Ok(face) = p.embed_largest(&bytes) else {
            continue;
        };
        let image = image::load_from_memory(&bytes).unwrap().into_rgb8();
        let k = (2600.0 / image.width().max(image.height()) as f32).max(2.0);
        let (w, h) = (
            (image.width() as f32 * k) as u32,
            (image.height() as f32 * k) as u32,
        );
        let big = image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle);
        let mut jpeg = std::io::Cursor::new(Vec::new());
        big.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        let found = p.detect(&jpeg, None).unwrap();
        assert!(
            found.divisor >= 2,
            "{file}: {w}×{h} decoded at 1/{}",
            found.divisor
        );
        let face_big = p.embed_largest(&jpeg).unwrap();
        worst = worst.min(
            face.embedding
                .cosine_similarity(&face_big.embedding)
                .unwrap(),
        );
        original.push((file.clone(), identity.clone(), face.embedding));
        enlarged.push((file, identity, face_big.embedding));
    }
    // Nearest other original photo: the same person?
    let correct = |set: &[(String, String, attendansee_faces::FaceEmbedding)]| {
        set.iter()
            .filter(|(file, identity, e)| {
                original
                    .iter()
                    .filter(|(other, ..)| other != file)
                    .max_by(|a, b| {
                        e.cosine_similarity(&a.2)
                            .unwrap()
                            .total_cmp(&e.cosine_similarity(&b.2).unwrap())
                    })
                    .is_some_and(|(_, id, _)| id == identity)
            })
            .count()
    };
    let (before, after) = (correct(&original), correct(&enlarged));
    eprintln!(
        "{} photos: nearest neighbour right for {before} at full scale, {after} enlarged and \
         reduced; embeddings at cosine ≥ {worst:.3}",
        original.len()
    );
    assert!(original.len() >= 15 && before >= 10, "too few to compare");
    assert!(after >= before, "{after} < {before}");
    assert!(worst >= 0.85, "cosine {worst}");
}
