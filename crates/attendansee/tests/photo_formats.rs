//! Phone photos through the real server and workers: HEIC uploads (made at run time with
//! Debian's `heif-enc` from photos of ../shared) are processed upright whatever carries their
//! rotation, a cut one fails alone without costing a worker, and a processed 24-megapixel
//! classroom photo gets a small preview that goes with the photo.

mod common;
#[path = "../../faces/tests/common/heif_samples.rs"]
mod heif_samples;

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use common::pool::{PoolServer, children};
use common::shared;
use heif_samples::{heif_enc, heif_enc_available, jpeg, with_exif_orientation, with_irot};

/// A photo's faces' boxes, sorted left to right.
fn boxes(image: &Value) -> Vec<[f64; 4]> {
    let mut boxes: Vec<[f64; 4]> = image["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let b = f["bbox"].as_array().unwrap();
            [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap())
        })
        .collect();
    boxes.sort_by(|a, b| a[0].total_cmp(&b[0]));
    boxes
}

#[test]
fn heic_photos_are_processed_upright_and_a_cut_one_fails_alone() {
    let test = "heic_photos_are_processed_upright_and_a_cut_one_fails_alone";
    let Some(shared) = shared(test) else {
        return;
    };
    if !heif_enc_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photo =
        std::fs::read(shared.join("faces/face_recognition_examples/test_obama_and_biden.jpg"))
            .unwrap();
    let upright = image::load_from_memory(&photo).unwrap().into_rgb8();
    let stored_ccw = image::imageops::rotate270(&upright);
    let plain = heif_enc(&jpeg(&upright), dir.path(), "plain");
    // As a camera writes it: stored sideways, EXIF orientation 6 (heif-enc adds no irot).
    let exif = heif_enc(
        &with_exif_orientation(&jpeg(&stored_ccw), 6),
        dir.path(),
        "exif",
    );
    // As an iPhone writes it: stored sideways, with irot and the same turn as EXIF tag.
    let iphone = with_irot(&exif, 3);
    let cut = plain[..plain.len() / 2].to_vec();

    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "1"]);
    let workers = children(p.server.child.id());
    let session = p.session();
    let reply = p.upload(
        session,
        &[
            ("upright.jpg", &photo),
            ("plain.heic", &plain),
            ("exif.heic", &exif),
            ("iphone.heic", &iphone),
            ("cut.heic", &cut),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let results = reply.json()["results"].clone();
    for i in 0..4 {
        assert_eq!(results[i]["status"], "stored", "{results}");
    }
    assert_eq!(results[4]["status"], "error", "{results}");
    assert_eq!(results[4]["error_type"], "UnsupportedImage", "{results}");
    assert!(
        results[4]["error"].as_str().unwrap().contains("HEIF"),
        "{results}"
    );
    let heic_id = results[1]["image"]["id"].as_i64().unwrap();
    let file = p.get(&format!("/api/attendance/images/{heic_id}/file/"));
    assert_eq!(file.header("content-type"), Some("image/heic"));

    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    let images = p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json();
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), 4);
    let (references, heics): (Vec<&Value>, Vec<&Value>) = images
        .iter()
        .partition(|i| i["original_name"] == "upright.jpg");
    let reference = references[0];
    let expected = boxes(reference);
    assert_eq!(expected.len(), 3, "{reference}");
    assert_eq!(heics.len(), 3);
    for image in heics {
        let name = &image["original_name"];
        assert_eq!(
            (&image["width"], &image["height"]),
            (&reference["width"], &reference["height"]),
            "{name}: the size of the upright photo"
        );
        let found = boxes(image);
        assert_eq!(found.len(), expected.len(), "{name}: {image}");
        for (a, b) in found.iter().zip(&expected) {
            let off = (0..4).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max);
            assert!(off < 12.0, "{name}: box {a:?} instead of {b:?}");
        }
        // Its preview is a JPEG the browser can show, upright.
        let id = image["id"].as_i64().unwrap();
        let preview = p.get(&format!("/api/attendance/images/{id}/preview/"));
        assert_eq!(preview.header("content-type"), Some("image/jpeg"));
        let shown = image::load_from_memory(&preview.bytes).unwrap();
        assert_eq!((shown.width(), shown.height()), (1600, 1142), "{name}");
    }
    assert_eq!(
        children(p.server.child.id()),
        workers,
        "no worker was replaced:\n{}",
        p.server.log()
    );
}

#[test]
fn a_processed_classroom_photo_gets_a_small_preview_that_goes_with_it() {
    let test = "a_processed_classroom_photo_gets_a_small_preview_that_goes_with_it";
    let Some(shared) = shared(test) else {
        return;
    };
    let photo = std::fs::read(shared.join("faces/classroom_photos/photo1.jpeg")).unwrap();
    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "1"]);
    let session = p.session();
    let reply = p.upload(session, &[("photo1.jpeg", &photo)]);
    let image = reply.json()["results"][0]["image"].clone();
    let id = image["id"].as_i64().unwrap();
    let (width, height) = (
        image["width"].as_u64().unwrap(),
        image["height"].as_u64().unwrap(),
    );
    assert!(width * height > 20_000_000, "a 24 MP photo: {image}");
    let preview_path = format!("/api/attendance/images/{id}/preview/");

    // Before processing, the preview route answers the photo as uploaded.
    let before = p.get(&preview_path);
    assert_eq!(before.status, 200);
    assert_eq!(before.bytes, photo);

    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    let preview = p.get(&preview_path);
    assert_eq!(preview.status, 200);
    assert_eq!(preview.header("content-type"), Some("image/jpeg"));
    let shown = image::load_from_memory(&preview.bytes).unwrap();
    let long = shown.width().max(shown.height());
    // Made from the image decoded for detection: a large JPEG is decoded at a reduced DCT scale
    // that keeps at least 1280 px on its long side, and the preview is at most 1600.
    assert!(
        (1280..=1600).contains(&long),
        "{}×{}",
        shown.width(),
        shown.height()
    );
    let aspect = |w: f64, h: f64| w / h;
    assert!(
        (aspect(shown.width().into(), shown.height().into()) - aspect(width as f64, height as f64))
            .abs()
            < 0.01
    );
    assert!(
        preview.bytes.len() * 10 < photo.len(),
        "{} bytes for a {}-byte photo",
        preview.bytes.len(),
        photo.len()
    );
    let _ = writeln!(
        std::io::stderr(),
        "preview of photo1.jpeg ({width}×{height}, {} bytes): {}×{}, {} bytes",
        photo.len(),
        shown.width(),
        shown.height(),
        preview.bytes.len()
    );

    // Deleting the photo deletes its preview.
    // Its key names the processing run: `previews/{id}-{run}.jpg`.
    let previews = p.data_dir().join("blobs/previews");
    let blob = std::fs::read_dir(&previews)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{id}-")) && n.ends_with(".jpg"))
        })
        .unwrap_or_else(|| panic!("no preview of photo {id} in {}", previews.display()));
    let deleted = p.call("DELETE", &format!("/api/attendance/images/{id}/"), None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(!blob.exists());
    assert_eq!(p.get(&preview_path).status, 404);
}

#[test]
fn the_detect_command_reads_a_heic_photo_upright() {
    let test = "the_detect_command_reads_a_heic_photo_upright";
    let Some(shared) = shared(test) else {
        return;
    };
    if !heif_enc_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photo = shared.join("faces/face_recognition_examples/examples__two_people.jpg");
    let upright = image::open(&photo).unwrap().into_rgb8();
    let sideways = image::imageops::rotate270(&upright);
    let heic = heif_enc(
        &with_exif_orientation(&jpeg(&sideways), 6),
        dir.path(),
        "two",
    );
    let file = dir.path().join("two.heic");
    std::fs::write(&file, heic).unwrap();
    let detect = |path: &Path| {
        let mut command = common::attendansee(&dir.path().join("data"));
        command
            .arg("--model-dir")
            .arg(shared.join("models"))
            .arg("detect")
            .arg(path);
        if std::env::var_os("ORT_DYLIB_PATH").is_none() {
            command.env(
                "ORT_DYLIB_PATH",
                common::pool::root().join(".local/onnxruntime/libonnxruntime.so"),
            );
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let from_jpeg = detect(&photo);
    let from_heic = detect(&file);
    assert_eq!(from_heic["success"], true, "{from_heic}");
    assert_eq!(
        (&from_heic["width"], &from_heic["height"]),
        (&json!(upright.width()), &json!(upright.height())),
        "{from_heic}"
    );
    assert_eq!(
        from_heic["faces"].as_array().unwrap().len(),
        2,
        "{from_heic}"
    );
    assert_eq!(boxes(&from_heic).len(), boxes(&from_jpeg).len());
    for (a, b) in boxes(&from_heic).iter().zip(&boxes(&from_jpeg)) {
        let off = (0..4).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max);
        assert!(off < 8.0, "box {a:?} instead of {b:?}");
    }
}
