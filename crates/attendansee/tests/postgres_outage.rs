//! PostgreSQL stopped and started again under a running node (the real binary with the real
//! models of ../shared, on a PostgreSQL server of the test's own): while the database is down,
//! requests answer 503 `StorageUnavailable` at once and health says the database is down; once it
//! is back, service resumes by itself and the processing job that was under way finishes — no
//! restart, no hung job.

mod common;

#[cfg(not(feature = "fault-injection"))]
#[test]
fn the_postgres_outage_test_needs_the_fault_injection_feature() {
    use std::io::Write;
    // The workers are slowed down (ATTENDANSEE_FAULT_DELAY_MS) so that a job is still running
    // when the database goes away; CI builds with the feature, so landing here there is a failure.
    assert!(
        std::env::var_os("ATTENDANSEE_REQUIRE_FAULT_INJECTION").is_none(),
        "the PostgreSQL outage test was built without `--features attendansee/fault-injection`"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the PostgreSQL outage test: build with `--features attendansee/fault-injection`"
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn postgres_stopped_under_a_running_node_is_503_then_service_and_the_job_resume_by_themselves() {
    use std::time::{Duration, Instant};

    use common::own_postgres::OwnPostgres;
    use common::pool::PoolServer;
    use common::shared;
    use serde_json::json;

    const TEST: &str = "postgres_stopped_under_a_running_node_is_503_then_service_and_the_job_resume_by_themselves";
    let Some(shared) = shared(TEST) else {
        return;
    };
    let Some(postgres) = OwnPostgres::start(TEST) else {
        return;
    };
    let url = postgres.url();
    let p = PoolServer::start_real_env(
        &shared.join("models"),
        &["--workers", "1"],
        &[
            ("ATTENDANSEE_DATABASE_URL", url.as_str()),
            // Every worker job this much slower, so the job is under way when the database stops.
            ("ATTENDANSEE_FAULT_DELAY_MS", "700"),
        ],
    );
    let health = p.get("/api/health/").json();
    assert_eq!(health["database"], "ok", "{health}");

    let course = p.course("PG1");
    let session = p.session_in(course, "Week 1");
    let folder = shared.join("faces/face_recognition_examples");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_str()?.to_owned();
            name.ends_with(".jpg").then_some(name)
        })
        .collect();
    names.sort();
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .take(10)
        .map(|n| (n.clone(), std::fs::read(folder.join(n)).unwrap()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let uploaded = p.upload(session, &refs);
    assert_eq!(uploaded.status, 200, "{}", uploaded.body);
    let stored = uploaded.json()["stored"].as_i64().unwrap();
    assert!(stored >= 8, "{}", uploaded.body);

    let started = p.call(
        "POST",
        &format!("/api/attendance/sessions/{session}/process/"),
        None,
    );
    assert_eq!(started.status, 202, "{}", started.body);
    let job = started.json()["job"]["id"].as_i64().unwrap();
    let job_path = format!("/api/attendance/jobs/{job}/");
    let deadline = Instant::now() + Duration::from_secs(120);
    while p.get(&job_path).json()["done"].as_i64().unwrap_or(0) < 1 {
        assert!(
            Instant::now() < deadline,
            "no progress:\n{}",
            p.server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    postgres.stop();
    let down_at = Instant::now();
    // A read answers 503 StorageUnavailable within seconds — never a hang, never a 500.
    let reply = p.get("/api/attendance/courses/");
    let answered_in = down_at.elapsed();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(
        reply.json()["error_type"],
        "StorageUnavailable",
        "{}",
        reply.body
    );
    assert!(reply.header("retry-after").is_some(), "{}", reply.body);
    assert!(
        answered_in < Duration::from_secs(10),
        "took {answered_in:?}"
    );
    // So does a write, and nothing of it is kept.
    let write = p.call(
        "POST",
        "/api/attendance/courses/",
        Some(&json!({"name": "Lost", "code": "LOST1"})),
    );
    assert_eq!(write.status, 503, "{}", write.body);
    let health = p.get("/api/health/");
    assert_eq!(health.status, 503, "{}", health.body);
    let health = health.json();
    assert_eq!(health["database"], "error", "{health}");
    assert!(
        health["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|l| l.as_str().unwrap_or("").starts_with("database"))),
        "{health}"
    );
    // Long enough for the job's next write (a photo every 0.7 s or so) to meet the outage.
    std::thread::sleep(Duration::from_secs(3));
    let log = p.server.log();

    postgres.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = p.get("/api/health/");
        if health.status == 200 {
            assert_eq!(health.json()["database"], "ok", "{}", health.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not resume: {}\n{}",
            health.body,
            p.server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let courses = p.get("/api/attendance/courses/");
    assert_eq!(courses.status, 200, "{}", courses.body);
    let codes: Vec<String> = courses.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        codes,
        ["PG1"],
        "the write made during the outage was not kept"
    );

    let done = p.wait_for_job(job);
    assert_eq!(done["status"], "succeeded", "{done}\n{}", p.server.log());
    let images = p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json();
    let images = images.as_array().unwrap();
    assert_eq!(images.len() as i64, stored, "{images:?}");
    for image in images {
        assert_eq!(image["status"], "processed", "{image}");
    }
    // Counted across the outage: every photo once, the ones done before it included.
    assert_eq!(
        (done["done"].as_i64(), done["total"].as_i64()),
        (Some(stored), Some(stored)),
        "{done}"
    );
    assert!(
        log.contains("the job resumes when it is back"),
        "the job never met the outage:\n{log}"
    );
}
