//! Small files that describe absurd images, through the real server and workers: a 60 KB PNG of
//! 64000000 × 1 pixels (which used to make the no-face retry ask for petabytes and kill the
//! worker, twice per upload) and a 2 KB JPEG claiming 8000 × 8000. Each is refused as
//! `UnsupportedImage` at upload, on the embed route and at enrollment, and no worker dies.

mod common;

use common::pool::{PoolServer, children, png};
use serde_json::json;

fn panorama_strip() -> Vec<u8> {
    let strip = image::GrayImage::new(64_000_000, 1);
    let mut out = std::io::Cursor::new(Vec::new());
    strip.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_claiming_8000_square() -> Vec<u8> {
    let small =
        image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    small.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    let mut jpeg = out.into_inner();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&8000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&8000u16.to_be_bytes());
    jpeg
}

#[test]
fn absurd_images_are_refused_everywhere_without_killing_a_worker() {
    let p = PoolServer::start(&["--workers", "2"], &[]);
    let workers = children(p.server.child.id());
    let strip = panorama_strip();
    let bomb = jpeg_claiming_8000_square();
    assert!(strip.len() < 1_000_000 && bomb.len() < 4_000);

    for _ in 0..10 {
        for image in [&strip, &bomb] {
            let reply = p.embed(image, &[]);
            assert_eq!(reply.status, 422, "{}", reply.body);
            assert_eq!(
                reply.json()["error_type"],
                "UnsupportedImage",
                "{}",
                reply.body
            );
        }
    }

    let session = p.session();
    let good = png(400);
    let upload = p.upload(
        session,
        &[
            ("strip.png", &strip),
            ("bomb.jpg", &bomb),
            ("good.png", &good),
        ],
    );
    let results = upload.json()["results"].clone();
    assert_eq!(results[0]["error_type"], "UnsupportedImage", "{results}");
    assert!(
        results[0]["error"]
            .as_str()
            .unwrap()
            .contains("too long and thin"),
        "{results}"
    );
    assert_eq!(results[1]["error_type"], "UnsupportedImage", "{results}");
    assert_eq!(results[2]["status"], "stored", "{results}");

    let course = p.course("ENR");
    let student = p.call(
        "POST",
        "/api/attendance/students/",
        Some(&json!({"course": course, "name": "Ada"})),
    );
    let student = student.json()["id"].as_i64().unwrap();
    let enrolled = p.upload_to(
        &format!("/api/attendance/students/{student}/references/"),
        &[("strip.png", &strip), ("bomb.jpg", &bomb)],
    );
    let results = enrolled.json()["results"].clone();
    for result in results.as_array().unwrap() {
        assert_eq!(result["error_type"], "UnsupportedImage", "{results}");
    }

    // The processing job of the session has only the good photo: it succeeds.
    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        children(p.server.child.id()),
        workers,
        "no worker was replaced:\n{}",
        p.server.log()
    );
    assert_eq!(p.metric("attendansee_worker_starts_total"), 2.0);
}
