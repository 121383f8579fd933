//! One user flooding the embed route must not starve another user's batch work: the pool's
//! queue has a lane per user, taken in turns, and uploads and processing wait for room instead
//! of failing with `Overloaded`, while the flood's own requests still get `Overloaded` at once.

mod common;

use std::time::{Duration, Instant};

use common::pool::{PoolServer, png};
use common::request;
use serde_json::json;

#[test]
fn a_flood_of_embed_requests_does_not_starve_another_users_upload_and_processing() {
    let p = PoolServer::start(&["--workers", "1", "--queue", "4"], &[]);
    // A second user, with their own course and session.
    let created = p.call(
        "POST",
        "/api/auth/users/",
        Some(&json!({"username": "bob", "password": "bobs own passphrase"})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let bob = p.server.login("bob", "bobs own passphrase");
    let bob_headers = vec![("Authorization".to_owned(), format!("Bearer {bob}"))];
    let bob_call = |method: &str, path: &str, body: serde_json::Value| {
        request(
            &p.server.addr,
            method,
            path,
            &bob_headers,
            "application/json",
            body.to_string().as_bytes(),
        )
    };
    let course = bob_call(
        "POST",
        "/api/attendance/courses/",
        json!({"name": "B", "code": "B1"}),
    );
    let course = course.json()["id"].as_i64().unwrap();
    let session = bob_call(
        "POST",
        "/api/attendance/sessions/",
        json!({"course": course, "title": "Monday", "held_at": "2026-11-30T09:00:00Z"}),
    );
    let session = session.json()["id"].as_i64().unwrap();

    let flood_image = png(1800); // slow enough that the flood keeps the worker busy
    let photos: Vec<Vec<u8>> = (0..20).map(|i| png(300 + i)).collect();
    let stop_flood = std::sync::atomic::AtomicBool::new(false);
    let (flood, upload, job) = std::thread::scope(|scope| {
        // The admin floods /embed/ from 12 threads until Bob's work is done.
        let flooders: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let mut statuses = Vec::new();
                    while !stop_flood.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let reply = p.embed(&flood_image, &[]);
                        statuses.push((reply.status, started.elapsed()));
                    }
                    statuses
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // Bob uploads 20 photos in one request and processes them.
        let files: Vec<(String, &[u8])> = photos
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("p{i}.png"), b.as_slice()))
            .collect();
        let boundary = "fair-pool-boundary";
        let mut body = Vec::new();
        for (name, bytes) in &files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let upload = request(
            &p.server.addr,
            "POST",
            &format!("/api/attendance/sessions/{session}/images/"),
            &bob_headers,
            &format!("multipart/form-data; boundary={boundary}"),
            &body,
        )
        .json();
        let started = bob_call(
            "POST",
            &format!("/api/attendance/sessions/{session}/process/"),
            serde_json::Value::Null,
        );
        assert_eq!(started.status, 202, "{}", started.body);
        let id = started.json()["job"]["id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        let job = loop {
            let job = request(
                &p.server.addr,
                "GET",
                &format!("/api/attendance/jobs/{id}/"),
                &bob_headers,
                "",
                b"",
            )
            .json();
            if !["queued", "running"].contains(&job["status"].as_str().unwrap_or("")) {
                break job;
            }
            assert!(Instant::now() < deadline, "Bob's job did not finish: {job}");
            std::thread::sleep(Duration::from_millis(50));
        };
        stop_flood.store(true, std::sync::atomic::Ordering::Relaxed);
        let flood: Vec<(u16, Duration)> = flooders
            .into_iter()
            .flat_map(|f| f.join().unwrap())
            .collect();
        (flood, upload, job)
    });

    assert_eq!(upload["stored"], 20, "no photo lost to the flood: {upload}");
    assert_eq!(
        (
            job["status"].as_str(),
            job["done"].as_i64(),
            job["errors"].as_array().map(Vec::len)
        ),
        (Some("succeeded"), Some(20), Some(0)),
        "{job}"
    );
    let overloaded: Vec<&(u16, Duration)> = flood.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        flood.iter().all(|(s, _)| *s == 200 || *s == 503),
        "the flood gets answers or Overloaded: {flood:?}"
    );
    assert!(
        !overloaded.is_empty(),
        "the flood filled its share of the queue"
    );
    let slowest_refusal = overloaded.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!(
        "flood: {} requests, {} overloaded (slowest refusal {slowest_refusal:?}); Bob: 20 stored, job {}",
        flood.len(),
        overloaded.len(),
        job["status"]
    );
    assert!(
        slowest_refusal < Duration::from_secs(5),
        "Overloaded comes at once, not after a wait: {slowest_refusal:?}"
    );
}
