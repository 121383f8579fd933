//! schemathesis (PyPI, pinned in requirements/test.txt) against the served OpenAPI document,
//! through the real binary with the tiny models, so that the face routes answer for real.
//!
//! It fails on any server error (except `503 ModelNotAvailable` for a catalog model the tiny
//! workers do not load, a documented answer) and on any answer the document does not describe
//! (status code, content type, headers, body schema), and on schema-violating requests that are
//! accepted. The checks, and the few exceptions with their reasons, are in
//! tests/fuzz/schemathesis.toml; the hooks that aim at real objects and keep the fuzzer's token
//! alive are in tests/fuzz/attendansee_fuzz_hooks.py. The run is bounded: fixed examples per
//! operation, a fixed seed, and a hard time limit.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::pool::{PoolServer, png};

/// Examples per operation and phase; with the seed, this fixes the run.
const MAX_EXAMPLES: &str = "40";
const SEED: &str = "20261130";
/// The run is killed (and the test fails) past this.
const TIME_LIMIT: Duration = Duration::from_secs(180);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The `st` command of the project's venv, or why the test is skipped.
fn schemathesis() -> Option<PathBuf> {
    let st = root().join(".local/venv/bin/st");
    if st.is_file() {
        return Some(st);
    }
    let reason = "schemathesis is not installed (scripts/setup.sh --test installs it)";
    if std::env::var("ATTENDANSEE_REQUIRE_SCHEMATHESIS").as_deref() == Ok("1") {
        panic!("{reason}, and ATTENDANSEE_REQUIRE_SCHEMATHESIS=1");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED schemathesis_finds_no_server_error_or_undocumented_answer: {reason}"
    );
    None
}

fn created(server: &PoolServer, path: &str, body: Value) -> i64 {
    let reply = server.call("POST", path, Some(&body));
    assert_eq!(reply.status, 201, "{path}: {}", reply.body);
    reply.json()["id"].as_i64().unwrap()
}

fn ids(server: &PoolServer, path: &str) -> Vec<i64> {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    let json = reply.json();
    let items = json.get("results").unwrap_or(&json);
    items
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["id"].as_i64())
        .collect()
}

/// Objects of every kind for the fuzzer to aim at, and the ids its hooks need (see
/// tests/fuzz/attendansee_fuzz_hooks.py).
fn seed(server: &PoolServer) -> Value {
    let admin_id = server.get("/api/auth/me/").json()["id"].as_i64().unwrap();
    let token_id = ids(server, "/api/auth/tokens/")[0];
    let spare_user_id = created(
        server,
        "/api/auth/users/",
        json!({"username": "spare", "password": "a spare pass phrase 7"}),
    );
    let course = server.course("FUZZ1");
    let student = created(
        server,
        "/api/attendance/students/",
        json!({"course": course, "name": "Ada", "external_id": "s1"}),
    );
    let reference = server.upload_to(
        &format!("/api/attendance/students/{student}/references/"),
        &[("ada.png", &png(48))],
    );
    assert_eq!(reference.status, 200, "{}", reference.body);
    let session = server.session_in(course, "Week 1");
    let upload = server.upload(session, &[("a.png", &png(64)), ("b.png", &png(72))]);
    assert_eq!(upload.status, 200, "{}", upload.body);
    let job = server.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    // A course nobody is enrolled in: its faces are unknown and form clusters.
    let strangers = server.course("FUZZ2");
    let unknown = server.session_in(strangers, "Week 1");
    let photos: Vec<Vec<u8>> = [80, 88, 96].map(png).into();
    let files: Vec<(&str, &[u8])> = photos.iter().map(|p| ("s.png", p.as_slice())).collect();
    assert_eq!(server.upload(unknown, &files).status, 200);
    server.process(unknown);
    let recluster = server.call(
        "POST",
        &format!("/api/attendance/courses/{strangers}/clusters/recluster/"),
        None,
    );
    assert_eq!(recluster.status, 200, "{}", recluster.body);

    let mut crops = Vec::new();
    for s in [session, unknown] {
        crops.extend(ids(
            server,
            &format!("/api/attendance/sessions/{s}/face-crops/"),
        ));
    }
    assert!(!crops.is_empty(), "processing found no face to fuzz with");
    let mut images = ids(
        server,
        &format!("/api/attendance/sessions/{session}/images/"),
    );
    images.extend(ids(
        server,
        &format!("/api/attendance/sessions/{unknown}/images/"),
    ));
    json!({
        "admin_id": admin_id,
        "spare_user_id": spare_user_id,
        "token_id": token_id,
        "ids": {
            "courses": [course, strangers],
            "students": [student],
            "sessions": [session, unknown],
            "images": images,
            "face-crops": crops,
            "jobs": ids(server, "/api/attendance/jobs/"),
            "references": ids(server, &format!("/api/attendance/students/{student}/references/")),
            "clusters": ids(server, &format!("/api/attendance/courses/{strangers}/clusters/")),
            "users": [admin_id, spare_user_id],
            "tokens": [token_id],
        }
    })
}

#[test]
fn schemathesis_finds_no_server_error_or_undocumented_answer() {
    let Some(st) = schemathesis() else { return };
    let server = PoolServer::start(&["--workers", "1"], &[]);
    let fuzz = seed(&server);

    let document = server.get("/api/schema/");
    assert_eq!(document.status, 200);
    let operations: usize = document.json()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, &document.body).unwrap();
    let output = dir.path().join("schemathesis.log");

    let started = Instant::now();
    let fuzz_dir = root().join("crates/attendansee/tests/fuzz");
    let mut child = Command::new(&st)
        .arg("--config-file")
        .arg(fuzz_dir.join("schemathesis.toml"))
        .arg("run")
        .arg(&schema)
        .args(["--url", &format!("http://{}", server.server.addr)])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.token),
        ])
        // The checks are chosen in tests/fuzz/schemathesis.toml.
        // Logout ends the fuzzer's token: everything after it would be a 401.
        .args(["--exclude-path", "/api/auth/logout/"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--request-timeout", "60", "--no-color"])
        // schemathesis keeps a cache of past failures in its working directory: a fresh one
        // per run keeps the run what the seed says.
        .current_dir(dir.path())
        .env("PYTHONPATH", &fuzz_dir)
        .env("SCHEMATHESIS_HOOKS", "attendansee_fuzz_hooks")
        .env("ATTENDANSEE_FUZZ", fuzz.to_string())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("stderr")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis ran past {TIME_LIMIT:?}:\n{}",
                tail(&output, 4000)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut report = String::new();
    std::fs::File::open(&output)
        .unwrap()
        .read_to_string(&mut report)
        .unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    eprintln!(
        "schemathesis: {operations} operations, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{}\n{stderr}\nserver log:\n{}",
        tail(&output, 20000),
        server
            .server
            .log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Not vacuous: every operation but logout was tested, cases were generated, and the token
    // the fuzzer used still works at the end (a revoked one would have made it all 401s).
    let tested = format!("Tested: {}", operations - 1);
    assert!(report.contains(&tested), "expected '{tested}':\n{report}");
    let generated: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" generated,")?.0.parse().ok())
        .unwrap_or(0);
    assert!(generated > 1000, "only {generated} cases:\n{report}");
    let me = server.get("/api/auth/me/");
    assert_eq!(me.status, 200, "the fuzzer lost its token: {}", me.body);
}

fn tail(path: &Path, chars: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(chars);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}
