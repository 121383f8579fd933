//! The real binary with its blobs in an S3-compatible bucket (moto, `common/s3.rs`): photos, crops
//! and previews are objects below the URL's prefix, read back and deleted through the API; an
//! outage of the store under a running server answers 503 `StorageUnavailable`, health says why,
//! a processing job waits instead of failing, and service resumes by itself; a store that cannot
//! be reached at start stops the server with a clear message and exit status 69.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::pool::{PoolServer, png};
use common::s3::{S3Server, free_port};

fn serve_on(s3: &S3Server, prefix: &str) -> PoolServer {
    let url = s3.url(prefix);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    PoolServer::start(&["--workers", "1", "--blob-url", &url], &env)
}

/// The session's photos as the API lists them.
fn photos(p: &PoolServer, session: i64) -> Vec<serde_json::Value> {
    let reply = p.get(&format!("/api/attendance/sessions/{session}/images/"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json().as_array().unwrap().clone()
}

#[test]
fn photos_crops_and_previews_live_in_the_bucket_and_go_with_their_photo() {
    let Some(s3) =
        S3Server::start("photos_crops_and_previews_live_in_the_bucket_and_go_with_their_photo")
    else {
        return;
    };
    let p = serve_on(&s3, "school");
    let session = p.session();
    let photo = png(900);
    let upload = p.upload(session, &[("a.png", &photo)]);
    assert_eq!(upload.json()["stored"], 1, "{}", upload.body);
    let image = upload.json()["results"][0]["image"]["id"].as_i64().unwrap();
    let sha = upload.json()["results"][0]["image"]["sha256"]
        .as_str()
        .map(str::to_owned);
    let objects = s3.keys("school/");
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(
        objects[0].starts_with(&format!("school/images/{session}/")),
        "{objects:?}"
    );
    if let Some(sha) = sha {
        assert_eq!(objects[0], format!("school/images/{session}/{sha}"));
    }
    // Nothing went to the local blob directory.
    assert!(!p.data_dir().join("blobs").exists());

    let file = p.get(&format!("/api/attendance/images/{image}/file/"));
    assert_eq!(file.status, 200, "{}", file.body);
    assert_eq!(file.bytes, photo, "the photo read back from the bucket");

    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    let objects = s3.keys("school/");
    // Keys name the processing run (`previews/{image}-{run}.jpg`, `crops/{image}/{run}-0.jpg`).
    let has = |prefix: String, suffix: &str| {
        objects
            .iter()
            .filter(|o| o.starts_with(&prefix) && o.ends_with(suffix))
            .count()
    };
    assert_eq!(
        has(format!("school/previews/{image}-"), ".jpg"),
        1,
        "{objects:?}"
    );
    assert_eq!(
        has(format!("school/crops/{image}/"), "-0.jpg"),
        1,
        "the tiny detector finds one face: {objects:?}"
    );
    let preview = p.get(&format!("/api/attendance/images/{image}/preview/"));
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.bytes.starts_with(&[0xff, 0xd8]), "a JPEG preview");
    assert_ne!(preview.bytes, photo);
    let crop = photos(&p, session)[0]["faces"][0]["id"].as_i64().unwrap();
    let face = p.get(&format!("/api/attendance/face-crops/{crop}/image/"));
    assert_eq!(face.status, 200, "{}", face.body);

    let deleted = p.call("DELETE", &format!("/api/attendance/images/{image}/"), None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(s3.keys("school/"), Vec::<String>::new());
}

#[test]
fn an_outage_of_the_bucket_is_503_health_says_why_a_job_waits_and_service_resumes() {
    let Some(s3) = S3Server::start(
        "an_outage_of_the_bucket_is_503_health_says_why_a_job_waits_and_service_resumes",
    ) else {
        return;
    };
    let p = serve_on(&s3, "node");
    let course = p.course("C1");
    let session = p.session_in(course, "Lecture");
    let student = p.call(
        "POST",
        "/api/attendance/students/",
        Some(&serde_json::json!({"course": course, "name": "Ada"})),
    );
    assert_eq!(student.status, 201, "{}", student.body);
    let references = format!(
        "/api/attendance/students/{}/references/",
        student.json()["id"].as_i64().unwrap()
    );
    let (before, during, face) = (png(700), png(720), png(400));
    assert_eq!(
        p.upload(session, &[("before.png", &before)]).json()["stored"],
        1
    );
    let image = photos(&p, session)[0]["id"].as_i64().unwrap();
    let health = p.get("/api/health/");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["blob_store"], "ok", "{}", health.body);

    s3.pause();
    // Health answers within its limit and says which part is down.
    let started = Instant::now();
    let health = p.get("/api/health/");
    assert!(started.elapsed() < Duration::from_secs(5), "health hung");
    assert_eq!(health.status, 503, "{}", health.body);
    let h = health.json();
    assert_eq!(
        (&h["status"], &h["database"], &h["blob_store"]),
        (
            &serde_json::json!("unavailable"),
            &serde_json::json!("ok"),
            &serde_json::json!("error")
        ),
        "{h}"
    );
    assert!(
        h["problems"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("blob store: no answer within")),
        "{h}"
    );
    // An upload cannot store its photo: 503 with a Retry-After, and no row without its blob.
    let upload = p.upload(session, &[("during.png", &during)]);
    assert_eq!(upload.status, 503, "{}", upload.body);
    assert_eq!(upload.json()["error_type"], "StorageUnavailable");
    assert!(upload.header("retry-after").is_some(), "{}", upload.headers);
    assert_eq!(photos(&p, session).len(), 1, "no row for the failed upload");
    // The same for a reference photo: its worker finds the face, its blob cannot be written.
    let enrolled = p.upload_to(&references, &[("ada.png", &face)]);
    assert_eq!(enrolled.status, 503, "{}", enrolled.body);
    assert_eq!(enrolled.json()["error_type"], "StorageUnavailable");
    assert_eq!(p.get(&references).json(), serde_json::json!([]));
    let file = p.get(&format!("/api/attendance/images/{image}/file/"));
    assert_eq!(
        (file.status, file.json()["error_type"].as_str()),
        (503, Some("StorageUnavailable")),
        "{}",
        file.body
    );
    // Processing is queued (the database answers); the job cannot read the photo, and waits.
    let started = p.call(
        "POST",
        &format!("/api/attendance/sessions/{session}/process/"),
        None,
    );
    assert_eq!(started.status, 202, "{}", started.body);
    let job = started.json()["job"]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.server.log().contains("the job resumes when it is back") {
        assert!(
            Instant::now() < deadline,
            "the job never met the outage:\n{}",
            p.server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let waiting = p.get(&format!("/api/attendance/jobs/{job}/")).json();
    assert_eq!(waiting["status"], "running", "{waiting}");
    assert_eq!(photos(&p, session)[0]["status"], "pending");

    s3.resume();
    // Service resumes by itself: same server, same bucket, nothing restarted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.get("/api/health/").status != 200 {
        assert!(
            Instant::now() < deadline,
            "health stayed 503 after the store came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let upload = p.upload(session, &[("during.png", &during)]);
    assert_eq!(upload.status, 200, "{}", upload.body);
    assert_eq!(upload.json()["stored"], 1, "{}", upload.body);
    let file = p.get(&format!("/api/attendance/images/{image}/file/"));
    assert_eq!(
        file.bytes, before,
        "the photo stored before the outage is intact"
    );
    let enrolled = p.upload_to(&references, &[("ada.png", &face)]);
    assert_eq!(enrolled.json()["stored"], 1, "{}", enrolled.body);
    let job = p.wait_for_job(job);
    assert_eq!(job["status"], "succeeded", "{job}");
    // Every face recorded points to a blob that was written.
    let listed = photos(&p, session);
    let processed: Vec<_> = listed
        .iter()
        .filter(|i| i["status"] == "processed")
        .collect();
    assert!(!processed.is_empty(), "{listed:?}");
    for photo in processed {
        let id = photo["id"].as_i64().unwrap();
        let preview = p.get(&format!("/api/attendance/images/{id}/preview/"));
        assert_eq!(preview.status, 200, "{}", preview.body);
        for face in photo["faces"].as_array().unwrap() {
            let crop = face["id"].as_i64().unwrap();
            let image = p.get(&format!("/api/attendance/face-crops/{crop}/image/"));
            assert_eq!(image.status, 200, "crop {crop}: {}", image.body);
        }
    }
}

/// Runs `serve` with `--blob-url url` and `env` until it exits (it must, within a minute); its
/// exit code and standard error.
fn serve_until_exit(url: &str, env: &[(String, String)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut child = common::attendansee(&data)
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1"])
        .args(["--blob-url", url])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit with {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn a_bucket_that_cannot_be_reached_at_start_stops_the_server_with_status_69() {
    let env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "k".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "s".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", free_port()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (code, stderr) = serve_until_exit("s3://bucket/prefix", &env);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(
        stderr.contains("error: cannot reach the blob store s3://bucket/prefix"),
        "{stderr}"
    );
    // A URL of the wrong kind is a configuration error, not an outage.
    let (code, stderr) = serve_until_exit("gs://bucket/prefix", &env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid blob URL 'gs://bucket/prefix'"),
        "{stderr}"
    );
}

#[test]
fn a_bucket_that_does_not_exist_is_a_configuration_error_at_start() {
    let Some(s3) =
        S3Server::start("a_bucket_that_does_not_exist_is_a_configuration_error_at_start")
    else {
        return;
    };
    let (code, stderr) = serve_until_exit("s3://no-such-bucket/x", &s3.env());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("s3://no-such-bucket/x: the bucket does not exist"),
        "{stderr}"
    );
}
