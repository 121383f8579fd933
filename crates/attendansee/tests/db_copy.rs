//! `attendansee db copy` through the real binary: a SQLite installation populated through the API
//! (real models: enrollment, a processed session, a correction, an attendance override) is copied
//! into a fresh PostgreSQL database and an S3 bucket (moto); the binary started on the copy gives
//! the same API answers, the same files, accepts the old token, and numbers new rows past the
//! copied ones. A second copy into the same target, and a copy beside a running server, are refused.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use attendansee_store::testing::{TestDatabase, to_micros};
use serde_json::{Value, json};

use common::s3::S3Server;
use common::{Server, attendansee, create_user, request, shared};

const NAME: &str =
    "db_copy_of_a_populated_sqlite_installation_answers_the_same_from_postgresql_and_s3";

struct Installation<'a> {
    server: Server,
    token: String,
    _data: &'a Path,
}

impl Installation<'_> {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let headers = vec![("Authorization".to_owned(), format!("Bearer {}", self.token))];
        let body = body.map(Value::to_string).unwrap_or_default();
        let reply = request(
            &self.server.addr,
            method,
            path,
            &headers,
            "application/json",
            body.as_bytes(),
        );
        (reply.status, reply.body)
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    fn get_bytes(&self, path: &str) -> Vec<u8> {
        let headers = vec![("Authorization".to_owned(), format!("Bearer {}", self.token))];
        let reply = request(&self.server.addr, "GET", path, &headers, "", b"");
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.bytes
    }

    fn upload(&self, path: &str, files: &[(&str, Vec<u8>)]) -> Value {
        let boundary = "db-copy-boundary";
        let mut body = Vec::new();
        for (name, bytes) in files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let headers = vec![("Authorization".to_owned(), format!("Bearer {}", self.token))];
        let reply = request(
            &self.server.addr,
            "POST",
            path,
            &headers,
            &format!("multipart/form-data; boundary={boundary}"),
            &body,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        assert_eq!(json["failed"], 0, "{json}");
        json
    }
}

/// `serve` with the real models on `data`, plus `extra` global flags and `env`.
fn serve(models: &Path, data: &Path, extra: &[&str], env: &[(String, String)]) -> Server {
    let mut command = attendansee(data);
    command
        .arg("--model-dir")
        .arg(models)
        .args(extra)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(["--detector", "yunet", "--recognizers", "mobilefacenet"])
        .args(["--workers", "2"]);
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        command.env(
            "ORT_DYLIB_PATH",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../.local/onnxruntime/libonnxruntime.so"),
        );
    }
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Server::spawn(command).unwrap()
}

fn db_copy(data: &Path, to: &str, blobs_to: &str, s3: &S3Server) -> Output {
    let mut command: Command = attendansee(data);
    command
        .args(["db", "copy", "--to", to, "--blobs-to", blobs_to])
        .envs(s3.env())
        .stdin(Stdio::null());
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn db_copy_of_a_populated_sqlite_installation_answers_the_same_from_postgresql_and_s3() {
    let Some(shared) = shared(NAME) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(pg) = runtime.block_on(TestDatabase::postgres(NAME)) else {
        return;
    };
    let Some(s3) = S3Server::start(NAME) else {
        return;
    };
    let models = shared.join("models");
    let folder = shared.join("faces/face_recognition_examples");
    let read = |name: &str| std::fs::read(folder.join(name)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = create_user(&data, "admin", "horse battery staple", true);
    assert!(ok, "{out}");

    // The SQLite installation, populated through the API.
    let server = serve(&models, &data, &[], &[]);
    let token = server.login("admin", "horse battery staple");
    let old = Installation {
        server,
        token,
        _data: &data,
    };
    let (status, body) = old.call(
        "POST",
        "/api/attendance/courses/",
        Some(&json!({"name": "Examples", "code": "FRE", "match_threshold": 0.5})),
    );
    assert_eq!(status, 201, "{body}");
    let course = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut students = BTreeMap::new();
    for (name, photos) in [
        ("Barack Obama", ["obama.jpg", "train_obama_obama2.jpg"]),
        ("Joe Biden", ["biden.jpg", "train_biden_biden2.jpg"]),
    ] {
        let (status, body) = old.call(
            "POST",
            "/api/attendance/students/",
            Some(&json!({"course": course, "name": name})),
        );
        assert_eq!(status, 201, "{body}");
        let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_i64()
            .unwrap();
        let files: Vec<(&str, Vec<u8>)> = photos.iter().map(|p| (*p, read(p))).collect();
        old.upload(
            &format!("/api/attendance/students/{id}/references/"),
            &files,
        );
        students.insert(name, id);
    }
    let (status, body) = old.call(
        "POST",
        "/api/attendance/sessions/",
        Some(&json!({"course": course, "title": "Lecture 1", "held_at": "2026-11-25T09:00:00Z"})),
    );
    assert_eq!(status, 201, "{body}");
    let session = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let photos = ["examples__two_people.jpg", "test_obama_and_biden.jpg"];
    let files: Vec<(&str, Vec<u8>)> = photos.iter().map(|p| (*p, read(p))).collect();
    old.upload(
        &format!("/api/attendance/sessions/{session}/images/"),
        &files,
    );
    let (status, body) = old.call(
        "POST",
        &format!("/api/attendance/sessions/{session}/process/"),
        None,
    );
    assert_eq!(status, 202, "{body}");
    let job = serde_json::from_str::<Value>(&body).unwrap()["job"]["id"]
        .as_i64()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let state = old.get_json(&format!("/api/attendance/jobs/{job}/"));
        if state["status"] == "succeeded" {
            break;
        }
        assert!(
            !["failed", "partial", "cancelled"].contains(&state["status"].as_str().unwrap_or(""))
                && std::time::Instant::now() < deadline,
            "{state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let crops = old.get_json(&format!(
        "/api/attendance/sessions/{session}/face-crops/?page_size=500"
    ))["results"]
        .as_array()
        .unwrap()
        .clone();
    assert!(crops.len() >= 4, "{crops:?}");
    // A correction: the unlabelled third person of test_obama_and_biden.jpg (or any face nobody
    // was given) assigned to Biden by hand; an attendance override.
    let unassigned = crops
        .iter()
        .find(|c| c["student"].is_null())
        .unwrap_or(&crops[0])["id"]
        .as_i64()
        .unwrap();
    let (status, body) = old.call(
        "POST",
        &format!("/api/attendance/face-crops/{unassigned}/assign/"),
        Some(&json!({"student_id": students["Joe Biden"]})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = old.call(
        "PUT",
        &format!(
            "/api/attendance/sessions/{session}/attendance/{}/",
            students["Barack Obama"]
        ),
        Some(&json!({"status": "absent"})),
    );
    assert_eq!(status, 200, "{body}");

    let mut paths = vec![
        "/api/attendance/courses/".to_owned(),
        format!("/api/attendance/courses/{course}/"),
        format!("/api/attendance/students/?course={course}"),
        "/api/attendance/sessions/".to_owned(),
        format!("/api/attendance/sessions/{session}/"),
        format!("/api/attendance/sessions/{session}/images/"),
        format!("/api/attendance/sessions/{session}/face-crops/?page_size=500"),
        format!("/api/attendance/courses/{course}/clusters/"),
        format!("/api/attendance/sessions/{session}/attendance/"),
        format!("/api/attendance/sessions/{session}/attendance/csv/"),
        format!("/api/attendance/courses/{course}/attendance/"),
        format!("/api/attendance/courses/{course}/attendance/csv/"),
        "/api/attendance/jobs/".to_owned(),
        format!("/api/attendance/jobs/{job}/"),
        "/api/auth/me/".to_owned(),
        "/api/auth/users/".to_owned(),
    ];
    for id in students.values() {
        paths.push(format!("/api/attendance/students/{id}/"));
        paths.push(format!("/api/attendance/students/{id}/references/"));
    }
    for crop in &crops {
        let id = crop["id"].as_i64().unwrap();
        paths.push(format!("/api/attendance/face-crops/{id}/"));
        paths.push(format!("/api/attendance/face-crops/{id}/embeddings/"));
    }
    let answers: Vec<(String, u16, String)> = paths
        .iter()
        .map(|path| {
            let (status, body) = old.call("GET", path, None);
            (path.clone(), status, body)
        })
        .collect();
    for (path, status, body) in &answers {
        assert_eq!(*status, 200, "{path}: {body}");
    }
    let image = old.get_json(&format!("/api/attendance/sessions/{session}/images/"))[0]["id"]
        .as_i64()
        .unwrap();
    let files = [
        format!("/api/attendance/images/{image}/file/"),
        format!("/api/attendance/face-crops/{}/image/", crops[0]["id"]),
    ];
    let old_files: Vec<Vec<u8>> = files.iter().map(|f| old.get_bytes(f)).collect();

    // A copy beside the running server is refused: the data directory is in use.
    let out = db_copy(&data, &pg.url(), &s3.url("copy"), &s3);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already in use by another attendansee server"),
        "{}",
        text(&out)
    );

    let old_token = old.token.clone();
    let Installation { mut server, .. } = old;
    server.signal("TERM");
    assert!(server.wait(30).success(), "{}", server.log());

    let out = db_copy(&data, &pg.url(), &s3.url("copy"), &s3);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    eprintln!("{said}");
    assert!(said.contains("counts and checksums verified"), "{said}");
    assert!(said.contains("face_crops: "), "{said}");
    // Photos (2), references (4), their faces (4), the session's crops and previews.
    let blobs = s3.keys("copy/");
    assert!(blobs.len() >= 10 + crops.len() + 2, "{blobs:?}");
    assert!(
        said.contains(&format!("{} blobs", blobs.len())),
        "{said}\n{blobs:?}"
    );

    // The same target again: refused, by the first table with rows.
    let again = db_copy(&data, &pg.url(), &s3.url("copy"), &s3);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("the target is not empty: table"),
        "{}",
        text(&again)
    );

    // The copy, served from another data directory: nothing of the old one is used.
    let data2 = dir.path().join("data2");
    let blob_url = s3.url("copy");
    let url = pg.url();
    let server = serve(
        &models,
        &data2,
        &["--database-url", &url, "--blob-url", &blob_url],
        &s3.env(),
    );
    let new = Installation {
        server,
        // The old token: issued by the SQLite installation, accepted by the copy.
        token: old_token,
        _data: &data2,
    };
    for (path, _, old_body) in &answers {
        let (status, body) = new.call("GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        if path.ends_with("/csv/") {
            assert_eq!(to_micros(&body), to_micros(old_body), "{path}");
        } else {
            let parsed = |b: &str| serde_json::from_str::<Value>(&to_micros(b)).unwrap();
            assert_eq!(parsed(&body), parsed(old_body), "{path}");
        }
    }
    for (path, old_bytes) in files.iter().zip(&old_files) {
        assert_eq!(&new.get_bytes(path), old_bytes, "{path}");
    }
    // New rows are numbered past the copied ones.
    let (status, body) = new.call(
        "POST",
        "/api/attendance/courses/",
        Some(&json!({"name": "New", "code": "NEW"})),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(id > course, "{id} after {course}");
    eprintln!(
        "{} answers and {} files the same from the copy; new course {id} after {course}",
        answers.len(),
        files.len()
    );
}

#[test]
fn db_copy_refuses_what_it_cannot_copy_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let out = attendansee(&data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        text(&out)
    };
    // Nothing installed yet: nothing to copy (and no empty database made by looking).
    let said = run(&["db", "copy", "--to", "postgres://u:secret@127.0.0.1:1/x"]);
    assert!(said.contains("there is no SQLite database at"), "{said}");
    assert!(!data.join("attendansee.sqlite3").exists());
    assert!(!said.contains("secret"), "{said}");
    // The target must be PostgreSQL, the source SQLite.
    let said = run(&["db", "copy", "--to", "sqlite:///tmp/elsewhere.db"]);
    assert!(
        said.contains("db copy --to takes a postgres:// URL"),
        "{said}"
    );
    let said = run(&[
        "--database-url",
        "postgres://u:secret@127.0.0.1:1/x",
        "db",
        "copy",
        "--to",
        "postgres://u:secret@127.0.0.1:1/y",
    ]);
    assert!(said.contains("already PostgreSQL"), "{said}");
}
