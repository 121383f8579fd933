//! Class sessions through the real server and its workers: photo upload, processing as a job,
//! face crops with embeddings, the old service's compatible embedding routes, and recovery.

mod common;

use common::shared;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::pool::{PoolServer, png};

/// Faces expected per photo of face_recognition_examples: the identities its labels name, except
/// test_obama_and_biden.jpg, which shows a third person (a girl, lower right) the label leaves out.
fn expected_faces(folder: &Path) -> BTreeMap<String, usize> {
    let labels = std::fs::read_to_string(folder.join("labels.csv")).unwrap();
    labels
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.splitn(3, ',');
            let (file, identities) = (fields.next()?, fields.next()?);
            let count = match file {
                "test_obama_and_biden.jpg" => 3,
                _ if identities.is_empty() => return None,
                _ => identities.split(';').count(),
            };
            Some((file.to_owned(), count))
        })
        .collect()
}

fn crops_of(p: &PoolServer, session: i64) -> Vec<Value> {
    let page = p
        .get(&format!(
            "/api/attendance/sessions/{session}/face-crops/?page_size=500"
        ))
        .json();
    page["results"].as_array().unwrap().clone()
}

#[test]
fn a_full_session_on_the_face_recognition_examples_and_the_old_services_checklist() {
    let Some(shared) =
        shared("a_full_session_on_the_face_recognition_examples_and_the_old_services_checklist")
    else {
        return;
    };
    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "2"]);
    let session = p.session();
    let folder = shared.join("faces/face_recognition_examples");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            ["jpg", "jpeg", "png"]
                .contains(&path.extension()?.to_str()?)
                .then(|| (name, std::fs::read(&path).unwrap()))
        })
        .collect();
    files.sort();
    let (mut stored, mut duplicates) = (0, 0);
    for chunk in files.chunks(8) {
        let refs: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let reply = p.upload(session, &refs);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["failed"], 0, "{body}");
        stored += body["stored"].as_u64().unwrap();
        duplicates += body["duplicates"].as_u64().unwrap();
    }
    // Some files of the folder are byte-identical copies (obama.jpg and train_obama_obama.jpg…).
    let distinct = files
        .iter()
        .map(|(_, bytes)| bytes)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    assert!(
        distinct < files.len() as u64,
        "the folder was expected to hold duplicates"
    );
    assert_eq!(
        (stored, duplicates),
        (distinct, files.len() as u64 - distinct)
    );

    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["done"], job["total"]);
    assert_eq!(job["errors"], json!([]), "{job}");
    assert_eq!(
        p.get(&format!("/api/attendance/sessions/{session}/"))
            .json()["status"],
        "processed"
    );

    let images = p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json();
    let expected = expected_faces(&folder);
    let mut checked = 0;
    for image in images.as_array().unwrap() {
        assert_eq!(image["status"], "processed", "{image}");
        let name = image["original_name"].as_str().unwrap();
        let faces = image["faces"].as_array().unwrap().len();
        if let Some(want) = expected.get(name) {
            assert_eq!(faces, *want, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} photos checked");
    let crops = crops_of(&p, session);
    for crop in &crops {
        let id = crop["id"].as_i64().unwrap();
        let embeddings = p
            .get(&format!("/api/attendance/face-crops/{id}/embeddings/"))
            .json();
        assert_eq!(embeddings[0]["model_name"], "mobilefacenet", "crop {id}");
        assert_eq!(embeddings[0]["dimension"], 128, "crop {id}");
        let image = p.get(&format!("/api/attendance/face-crops/{id}/image/"));
        assert!(image.status == 200 && image.header("content-type") == Some("image/jpeg"));
        assert!(
            crop["quality"]["size"].as_f64().unwrap() > 10.0
                && crop["quality"]["blur"].as_f64().unwrap() > 0.0
        );
    }

    // The old service's checklist. 1: one crop, the response checked field by field.
    let crop = crops[0]["id"].as_i64().unwrap();
    let path = format!("/api/attendance/face-crops/{crop}/generate-embedding/");
    let reply = p.call(
        "POST",
        &path,
        Some(&json!({"model_name": "mobilefacenet", "force_regenerate": true})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"status": "success", "crop_id": crop, "embedding_model": "mobilefacenet",
               "embedding_dimension": 128, "message": "Embedding generated successfully"})
    );
    let kept = p
        .call("POST", &path, Some(&json!({"model_name": "mobilefacenet"})))
        .json();
    assert_eq!(
        (
            kept["status"].as_str(),
            kept["embedding_dimension"].as_u64()
        ),
        (Some("exists"), Some(128))
    );

    // 2: a batch of 3.
    let ids: Vec<i64> = crops
        .iter()
        .take(3)
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    let body =
        json!({"face_crop_ids": ids, "model_name": "mobilefacenet", "force_regenerate": true});
    let batch = p
        .call(
            "POST",
            "/api/attendance/face-crops/generate-embeddings-batch/",
            Some(&body),
        )
        .json();
    assert_eq!(batch["status"], "success", "{batch}");
    assert_eq!(
        (
            batch["total"].as_u64(),
            batch["success_count"].as_u64(),
            batch["failed_count"].as_u64(),
            batch["skipped_count"].as_u64()
        ),
        (Some(3), Some(3), Some(0), Some(0))
    );
    assert_eq!(batch["results"][2]["crop_id"], ids[2]);
    let without_force = json!({"face_crop_ids": [ids[0], 99999], "model_name": "mobilefacenet"});
    let partial = p
        .call(
            "POST",
            "/api/attendance/face-crops/generate-embeddings-batch/",
            Some(&without_force),
        )
        .json();
    assert_eq!(
        (
            partial["status"].as_str(),
            partial["skipped_count"].as_u64(),
            partial["failed_count"].as_u64()
        ),
        (Some("partial"), Some(1), Some(1))
    );
    assert_eq!(partial["results"][1]["error_type"], "NotFound");

    // 3: a crop that does not exist, an unknown model, a model not installed.
    let missing = p.call(
        "POST",
        "/api/attendance/face-crops/99999/generate-embedding/",
        Some(&json!({"model_name": "mobilefacenet"})),
    );
    assert_eq!(missing.status, 404);
    assert_eq!(
        (
            missing.json()["error_type"].as_str(),
            missing.json()["error"].as_str()
        ),
        (Some("NotFound"), Some("Face crop 99999 not found"))
    );
    let unknown = p.call("POST", &path, Some(&json!({"model_name": "vgg-face"})));
    assert_eq!(
        (unknown.status, unknown.json()["error_type"].as_str()),
        (400, Some("ValidationError"))
    );
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .contains("mobilefacenet"),
        "{}",
        unknown.body
    );
    let not_installed = p.call("POST", &path, Some(&json!({"model_name": "arcface"})));
    assert_eq!(
        (
            not_installed.status,
            not_installed.json()["error_type"].as_str()
        ),
        (503, Some("ModelNotAvailable"))
    );

    // 4: two concurrent calls for the same crop and model store one embedding.
    let fresh = crops.last().unwrap()["id"].as_i64().unwrap();
    let fresh_path = format!("/api/attendance/face-crops/{fresh}/generate-embedding/");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    p.call(
                        "POST",
                        &fresh_path,
                        Some(&json!({"model_name": "mobilefacenet", "force_regenerate": true})),
                    )
                    .status
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(statuses, [200, 200]);
    let embeddings = p
        .get(&format!("/api/attendance/face-crops/{fresh}/embeddings/"))
        .json();
    assert_eq!(embeddings.as_array().unwrap().len(), 1, "{embeddings}");

    // Processing again finds nothing to do and duplicates nothing.
    let again = p.process(session);
    assert_eq!(
        (again["status"].as_str(), again["total"].as_i64()),
        (Some("succeeded"), Some(0))
    );
    assert_eq!(crops_of(&p, session).len(), crops.len());
}

/// A PNG whose header claims `side`×`side` pixels, with no pixel data behind it.
fn huge_png(side: u32) -> Vec<u8> {
    let mut png = png(1);
    png[16..20].copy_from_slice(&side.to_be_bytes());
    png[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_uploads_get_their_own_errors_while_good_ones_are_stored_and_nothing_half_written_remains() {
    let p = PoolServer::start(&["--workers", "2"], &[]);
    let session = p.session();
    let good = png(300);
    let truncated = &good[..good.len() / 2];
    let files: [(&str, &[u8]); 6] = [
        ("good.png", &good),
        ("truncated.png", truncated),
        ("empty.jpg", b""),
        ("notes.txt", b"this is not a photo"),
        ("huge.png", &huge_png(100_000)),
        ("again.png", &good),
    ];
    let reply = p.upload(session, &files);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let outcome: Vec<(&str, &str, &str)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["error_type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [
            ("good.png", "stored", ""),
            ("truncated.png", "error", "UnsupportedImage"),
            ("empty.jpg", "error", "UnsupportedImage"),
            ("notes.txt", "error", "UnsupportedImage"),
            ("huge.png", "error", "UnsupportedImage"),
            ("again.png", "duplicate", ""),
        ]
    );
    assert!(
        body["results"][4]["error"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit"),
        "{body}"
    );
    assert_eq!(
        (
            body["stored"].as_u64(),
            body["duplicates"].as_u64(),
            body["failed"].as_u64()
        ),
        (Some(1), Some(1), Some(4))
    );
    let images = p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json();
    assert_eq!(images.as_array().unwrap().len(), 1);
    let stored: Vec<_> = walk(&p.data_dir().join("blobs"))
        .into_iter()
        .filter(|f| !f.ends_with(".partial"))
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "only the good photo's bytes are stored: {stored:?}"
    );
    let file = p.get(&format!("/api/attendance/images/{}/file/", images[0]["id"]));
    assert_eq!(
        (file.status, file.header("content-type")),
        (200, Some("image/png"))
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

#[test]
fn processing_resumes_after_the_server_is_killed_and_duplicates_no_face() {
    let dir_holder;
    let (data, session, job_id) = {
        let mut p = PoolServer::start(&["--workers", "1"], &[]);
        let session = p.session();
        let photos: Vec<Vec<u8>> = (0..12).map(|i| png(1400 + i)).collect();
        let files: Vec<(String, &[u8])> = photos
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("p{i}.png"), b.as_slice()))
            .collect();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        assert_eq!(p.upload(session, &refs).json()["stored"], 12);
        let started = p
            .call(
                "POST",
                &format!("/api/attendance/sessions/{session}/process/"),
                None,
            )
            .json();
        let job = started["job"]["id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while p.get(&format!("/api/attendance/jobs/{job}/")).json()["done"]
            .as_i64()
            .unwrap_or(0)
            < 2
        {
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(10));
        }
        p.server.signal("KILL");
        p.server.wait(10);
        let data = p.data_dir();
        dir_holder = p; // keep the data directory
        (data, session, job)
    };
    // The same data directory, a new server: the interrupted job is queued again and finishes.
    let server = common::Server::start(&data, &restart_args(&dir_holder)).unwrap();
    let token = server.login("admin", "horse battery staple");
    let headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    let get = |path: &str| common::request(&server.addr, "GET", path, &headers, "", b"").json();
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = get(&format!("/api/attendance/jobs/{job_id}/"));
        if job["status"] == "succeeded" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the interrupted job did not finish after the restart: {job}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        server
            .log()
            .contains("resuming jobs interrupted by the last stop"),
        "{}",
        server.log()
    );
    assert_eq!(
        (job["done"].as_i64(), job["total"].as_i64()),
        (Some(12), Some(12)),
        "a resumed job keeps its original total and counts what was done before: {job}"
    );
    let images = get(&format!("/api/attendance/sessions/{session}/images/"));
    for image in images.as_array().unwrap() {
        assert_eq!(image["status"], "processed", "{image}");
        assert_eq!(
            image["faces"].as_array().unwrap().len(),
            1,
            "the tiny detector finds one face per photo, exactly once: {image}"
        );
    }
}

/// The global and serve flags of `p`'s server, for starting another on its data directory.
fn restart_args(p: &PoolServer) -> Vec<&'static str> {
    let dir = p.data_dir().parent().unwrap().to_owned();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        "--config",
        leak(dir.join("attendansee.toml").display().to_string()),
        "--model-dir",
        leak(dir.join("models").display().to_string()),
        "--workers",
        "1",
        "--detector",
        "tiny-yunet",
        "--recognizers",
        "tiny",
    ]
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_worker_crash_fails_only_that_photo_and_processing_again_handles_only_what_failed() {
    let p = PoolServer::start(&["--workers", "2"], &[]);
    let session = p.session();
    let mut poisoned = png(320);
    poisoned.extend_from_slice(b"ATTENDANSEE-FAULT-ON-DETECT:abort");
    let (a, b, c) = (png(300), png(310), png(330));
    let files: [(&str, &[u8]); 4] = [
        ("a.png", &a),
        ("poison.png", &poisoned),
        ("b.png", &b),
        ("c.png", &c),
    ];
    let uploaded = p.upload(session, &files).json();
    assert_eq!(uploaded["stored"], 4, "{uploaded}");

    let job = p.process(session);
    assert_eq!(
        (
            job["status"].as_str(),
            job["done"].as_i64(),
            job["total"].as_i64()
        ),
        (Some("partial"), Some(4), Some(4)),
        "a job with a failed photo is not `succeeded`: {job}"
    );
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{job}");
    assert_eq!(
        (errors[0]["file"].as_str(), errors[0]["error_type"].as_str()),
        (Some("poison.png"), Some("WorkerCrashed"))
    );
    let crops_before: Vec<i64> = crops_of(&p, session)
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(crops_before.len(), 3);
    let images = p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json();
    let failed: Vec<&Value> = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("WorkerCrashed"),
        "{}",
        failed[0]
    );

    let again = p.process(session);
    assert_eq!(
        (
            again["total"].as_i64(),
            again["errors"].as_array().unwrap().len()
        ),
        (Some(1), 1),
        "only the failed photo: {again}"
    );
    assert_eq!(again["status"], "failed", "every photo failed: {again}");
    let crops_after: Vec<i64> = crops_of(&p, session)
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        crops_after, crops_before,
        "the processed photos were not touched"
    );
    assert_eq!(p.embed(&png(300), &[]).status, 200, "the pool is healthy");
}
