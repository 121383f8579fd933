//! A full disk under a running server (its data directory on a 20 MB tmpfs that the test fills):
//! a write that cannot commit is answered 503 `StorageUnavailable`, never 2xx; once space is
//! freed every route works again (no connection left broken by a failed transaction) and no
//! processing job stays `running`.

mod common;

use std::time::{Duration, Instant};

use common::Tmpfs;
use common::pool::{PoolServer, png};
use serde_json::json;

/// What one write attempt answered.
struct Attempt {
    status: u16,
    body: String,
}

impl Attempt {
    fn is_storage_unavailable(&self) -> bool {
        self.status == 503 && self.body.contains("\"StorageUnavailable\"")
    }
}

#[test]
fn a_full_disk_fails_writes_with_503_and_service_recovers_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(
        &dir.path().join("data"),
        20,
        "a_full_disk_fails_writes_with_503_and_service_recovers_once_space_is_freed",
    ) else {
        return;
    };
    let p = PoolServer::start_in(dir, &["--workers", "1"], &[]);
    let course = p.course("BASE");
    let session = p.session_in(course, "Before");
    let upload = p.upload(session, &[("a.png", &png(700)), ("b.png", &png(720))]);
    assert_eq!(upload.json()["stored"], 2, "{}", upload.body);

    disk.fill();
    // Every kind of write the review found answering 2xx without storing anything, several
    // times: some may still commit (SQLite reuses space its WAL already has); each answer must
    // be either a committed success or 503 StorageUnavailable.
    let mut created = Vec::new();
    let mut refused = Vec::new();
    let mut storage_errors = 0;
    for i in 0..12 {
        let code = format!("FULL{i}");
        let a = attempt(
            &p,
            "POST",
            "/api/attendance/courses/",
            json!({"name": "Full", "code": code}),
        );
        match a.status {
            201 => created.push(code),
            _ => {
                assert!(
                    a.is_storage_unavailable(),
                    "create course: {} {}",
                    a.status,
                    a.body
                );
                storage_errors += 1;
                refused.push(code);
            }
        }
        let renamed = format!("Renamed {i}");
        let a = attempt(
            &p,
            "PATCH",
            &format!("/api/attendance/courses/{course}/"),
            json!({"name": renamed}),
        );
        if a.status == 200 {
            let now = p.get(&format!("/api/attendance/courses/{course}/")).json();
            assert_eq!(now["name"], renamed.as_str(), "a 200 PATCH was not stored");
        } else {
            assert!(
                a.is_storage_unavailable(),
                "patch course: {} {}",
                a.status,
                a.body
            );
            storage_errors += 1;
        }
        let a = attempt(
            &p,
            "POST",
            "/api/auth/tokens/",
            json!({"label": format!("t{i}")}),
        );
        match a.status {
            201 => {
                let token: serde_json::Value = serde_json::from_str(&a.body).unwrap();
                let secret = token["token"].as_str().unwrap();
                let (status, body) = p.server.request("GET", "/api/auth/me/", Some(secret), None);
                assert_eq!(status, 200, "a token answered 201 does not work: {body}");
            }
            _ => {
                assert!(
                    a.is_storage_unavailable(),
                    "create token: {} {}",
                    a.status,
                    a.body
                );
                storage_errors += 1;
            }
        }
        let (status, body) = p.server.request(
            "POST",
            "/api/auth/login/",
            None,
            Some(r#"{"username": "admin", "password": "horse battery staple"}"#),
        );
        match status {
            200 => {
                let login: serde_json::Value = serde_json::from_str(&body).unwrap();
                let secret = login["token"].as_str().unwrap();
                let (status, body) = p.server.request("GET", "/api/auth/me/", Some(secret), None);
                assert_eq!(
                    status, 200,
                    "a token from a 200 login does not work: {body}"
                );
            }
            _ => {
                let a = Attempt { status, body };
                assert!(a.is_storage_unavailable(), "login: {} {}", a.status, a.body);
                storage_errors += 1;
            }
        }
    }
    assert!(
        storage_errors > 0,
        "the full disk refused no write at all; the test did not test anything"
    );
    // Reads still work on a full disk.
    let listed = p.get("/api/attendance/courses/?page_size=100");
    assert_eq!(listed.status, 200, "{}", listed.body);
    // A processing job started on the full disk cannot store its faces: it must end (failed,
    // or done if space sufficed), never stay running, once space is back.
    let started = p.call(
        "POST",
        &format!("/api/attendance/sessions/{session}/process/"),
        None,
    );
    let stuck_job = match started.status {
        202 => started.json()["job"]["id"].as_i64(),
        _ => {
            assert!(
                Attempt {
                    status: started.status,
                    body: started.body.clone()
                }
                .is_storage_unavailable(),
                "process: {} {}",
                started.status,
                started.body
            );
            None
        }
    };
    std::thread::sleep(Duration::from_millis(500));

    disk.free();
    let codes: Vec<String> = p.get("/api/attendance/courses/?page_size=100").json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect();
    for code in &created {
        assert!(
            codes.contains(code),
            "course {code} was answered 201 but is not stored"
        );
    }
    for code in &refused {
        assert!(
            !codes.contains(code),
            "course {code} was refused but is stored"
        );
    }
    if let Some(job) = stuck_job {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = p.get(&format!("/api/attendance/jobs/{job}/")).json()["status"].clone();
            if status != "running" && status != "queued" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} still {status} a minute after space was freed\n{}",
                p.server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // No connection is left broken: every write works again, many times over (the pool has
    // several connections; a poisoned one fails a share of these).
    for i in 0..20 {
        let a = attempt(
            &p,
            "POST",
            "/api/attendance/students/",
            json!({"course": course, "name": format!("Student {i}")}),
        );
        assert_eq!(
            a.status, 201,
            "student {i} after the disk was freed: {}",
            a.body
        );
        let a = attempt(
            &p,
            "POST",
            &format!("/api/attendance/sessions/{session}/process/"),
            json!(null),
        );
        assert_eq!(
            a.status, 202,
            "process {i} after the disk was freed: {}",
            a.body
        );
    }
    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["done"], job["total"], "{job}");
    let images = p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json();
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "processed"),
        "{images}"
    );
    drop(p);
    drop(disk);
}

fn attempt(p: &PoolServer, method: &str, path: &str, body: serde_json::Value) -> Attempt {
    let body = (!body.is_null()).then_some(body);
    let reply = p.call(method, path, body.as_ref());
    Attempt {
        status: reply.status,
        body: reply.body,
    }
}
