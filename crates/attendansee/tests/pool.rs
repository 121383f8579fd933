//! The worker pool through the real server: the embed route, health, metrics, overload, worker
//! recycling, and no orphaned workers when the server is killed. Runs everywhere (tiny models).

mod common;

use std::time::{Duration, Instant};

use common::pool::{PoolServer, alive, children, png};

#[test]
fn embed_route_runs_in_workers_and_health_and_metrics_report_the_pool() {
    let p = PoolServer::start(&["--workers", "2"], &[]);
    let health = p.wait_for_workers(Some(2));
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["pool"]["models_loaded"],
        serde_json::json!(["tiny-yunet", "tiny"])
    );

    let reply = p.embed(&png(300), &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(
        (
            body["width"].as_u64(),
            body["height"].as_u64(),
            body["model_name"].as_str()
        ),
        (Some(300), Some(300), Some("tiny"))
    );
    let face = &body["faces"][0];
    assert_eq!(face["embedding_dimension"], 16);
    assert!(face.get("embedding").is_none(), "vectors only on request");
    assert!(body["timings"]["detect_ms"].as_f64().unwrap() > 0.0);

    let with_vectors = p.embed(&png(300), &[("include_vectors", "true")]).json();
    let vector = with_vectors["faces"][0]["embedding"].as_array().unwrap();
    let norm: f64 = vector.iter().map(|v| v.as_f64().unwrap().powi(2)).sum();
    assert!(vector.len() == 16 && (norm - 1.0).abs() < 1e-4);

    // Errors from inside a healthy worker keep their error types; the server decodes nothing.
    let bad = p.embed(b"not an image", &[]);
    assert_eq!(
        (bad.status, bad.json()["error_type"].as_str()),
        (422, Some("UnsupportedImage")),
        "{}",
        bad.body
    );
    let unknown = p.embed(&png(300), &[("model_name", "nope")]);
    assert_eq!(
        (unknown.status, unknown.json()["error_type"].as_str()),
        (400, Some("ValidationError"))
    );
    assert!(
        unknown.body.contains("tiny"),
        "should list the available models: {}",
        unknown.body
    );

    // A catalog model the workers do not load says how to get it: `facenet` has no download
    // source, so the advice is where its file goes and the script that makes it, not a
    // `models fetch` that cannot work.
    let course = p.call(
        "POST",
        "/api/attendance/courses/",
        Some(&serde_json::json!({"name": "F", "code": "F1", "embedding_model": "facenet"})),
    );
    let session = p.session_in(course.json()["id"].as_i64().unwrap(), "F");
    let facenet = p.call(
        "POST",
        &format!("/api/attendance/sessions/{session}/process/"),
        None,
    );
    assert_eq!(facenet.status, 503, "{}", facenet.body);
    assert_eq!(facenet.json()["error_type"], "ModelNotAvailable");
    assert!(
        facenet
            .body
            .contains("no download source: place its ONNX file at")
            && facenet
                .body
                .contains("tools/export_facenet.py --variant facenet")
            && !facenet.body.contains("models fetch facenet"),
        "{}",
        facenet.body
    );

    assert_eq!(p.metric("attendansee_workers_alive"), 2.0);
    assert!(p.metric("attendansee_worker_starts_total") >= 2.0);
    // Three jobs reached the workers; the unknown model was refused before any job was queued.
    assert_eq!(
        p.metric("attendansee_job_duration_seconds_count{kind=\"detect_and_embed\"}"),
        3.0
    );
    assert!(
        p.server.log().contains("[WORKER "),
        "worker log lines should be forwarded into the server log"
    );
}

#[test]
fn two_hundred_concurrent_requests_each_get_a_result_or_overloaded_and_none_is_lost() {
    let p = PoolServer::start(&["--workers", "2", "--queue", "16"], &[]);
    let image = std::sync::Arc::new(png(2400)); // big enough that jobs take a while and the queue fills
    let started = Instant::now();
    let replies: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                let (image, p) = (image.clone(), &p);
                scope.spawn(move || {
                    let reply = p.embed(&image, &[]);
                    (
                        reply.status,
                        reply.header("retry-after").map(str::to_owned),
                        reply.body,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = replies.iter().filter(|(s, _, _)| *s == 200).count();
    let overloaded: Vec<_> = replies.iter().filter(|(s, _, _)| *s == 503).collect();
    for (status, retry_after, body) in &replies {
        assert!(
            *status == 200 || *status == 503,
            "unexpected {status}: {body}"
        );
        if *status == 503 {
            assert!(
                body.contains("\"Overloaded\"") && retry_after.is_some(),
                "{body}"
            );
        }
    }
    assert_eq!(ok + overloaded.len(), 200, "every request answered");
    // One user may fill half the queue (the other half stays free for other users).
    assert!(
        ok >= 2 + 8,
        "at least the 2 running and this user's 8 queued jobs succeed: {ok}"
    );
    assert!(!overloaded.is_empty(), "the queue should have overflowed");
    assert_eq!(
        p.metric("attendansee_jobs_rejected_total"),
        overloaded.len() as f64
    );
    eprintln!(
        "200 concurrent: {ok} ok, {} overloaded, in {:?}",
        overloaded.len(),
        started.elapsed()
    );
    assert_eq!(p.metric("attendansee_queue_depth"), 0.0);
    assert_eq!(p.metric("attendansee_jobs_in_flight"), 0.0);
}

#[test]
fn workers_are_recycled_after_their_job_quota_without_failing_requests() {
    let p = PoolServer::start(&["--workers", "1", "--worker-max-jobs", "3"], &[]);
    for i in 0..7 {
        let reply = p.embed(&png(300), &[]);
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
    }
    p.wait_for_workers(Some(1));
    assert_eq!(
        p.metric("attendansee_worker_recycles_total{reason=\"jobs\"}"),
        2.0
    );
    assert!(p.metric("attendansee_worker_starts_total") >= 3.0);
}

#[test]
fn kill_9_of_the_server_leaves_no_worker_alive_two_seconds_later() {
    let p = PoolServer::start(&["--workers", "2"], &[]);
    let workers = children(p.server.child.id());
    assert_eq!(workers.len(), 2, "expected 2 worker processes");
    p.server.signal("KILL");
    std::thread::sleep(Duration::from_secs(2));
    let survivors: Vec<u32> = workers.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(
        survivors.is_empty(),
        "workers still alive after the server was killed: {survivors:?}"
    );
}

#[test]
fn graceful_shutdown_answers_in_flight_work_and_leaves_no_worker_behind() {
    let mut p = PoolServer::start(&["--workers", "2"], &[]);
    let workers = children(p.server.child.id());
    assert_eq!(workers.len(), 2);
    let image = png(2400);
    let replies = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| p.try_embed(&image).map(|r| r.status)))
            .collect();
        // Signal only once work is really in the workers' hands.
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.metric("attendansee_jobs_in_flight") < 1.0 {
            assert!(Instant::now() < deadline, "no job ever reached a worker");
            std::thread::sleep(Duration::from_millis(5));
        }
        p.server.signal("TERM");
        requests
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<Option<u16>>>()
    });
    // Accepted requests got an answer (done, or refused because the pool was stopping); a
    // connection the server had not yet accepted may be refused, which is not in-flight work.
    assert!(
        replies.iter().flatten().all(|s| [200, 503].contains(s)),
        "{replies:?}"
    );
    assert!(
        replies.contains(&Some(200)),
        "the job in flight should have finished: {replies:?}"
    );
    assert!(p.server.wait(20).success(), "{}", p.server.log());
    let survivors: Vec<u32> = workers.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(survivors.is_empty(), "workers left behind: {survivors:?}");
}

#[test]
fn a_sigterm_meant_for_the_whole_service_does_not_kill_a_worker() {
    let p = PoolServer::start(&["--workers", "1"], &[]);
    let worker = children(p.server.child.id())[0];
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(worker), "the worker died of SIGTERM");
    assert_eq!(p.embed(&png(300), &[]).status, 200);
    assert_eq!(
        p.metric("attendansee_worker_starts_total"),
        1.0,
        "no replacement was needed"
    );
}

/// The server log's lines that contain every one of `parts`.
fn log_lines_with(log: &str, parts: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_owned)
        .collect()
}

/// The pid in a `[WORKER <pid>]` line.
fn worker_pid(line: &str) -> u32 {
    let rest = line.split("[WORKER ").nth(1).unwrap();
    rest.split(']').next().unwrap().parse().unwrap()
}

#[test]
fn every_worker_job_logs_its_models_counts_and_stage_times_and_the_supervisor_its_end() {
    let p = PoolServer::start(&["--workers", "2"], &[]);
    p.wait_for_workers(Some(2));
    let session = p.session();
    let photos: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("p{i}.png"), png(300 + 10 * i)))
        .collect();
    let files: Vec<(&str, &[u8])> = photos
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    assert_eq!(p.upload(session, &files).json()["stored"], 3);
    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");

    // The worker's line for one photo: kind, model, dimension, detector, counts, stage times.
    let log = p.server.log();
    let processed = log_lines_with(
        &log,
        &[
            "[WORKER ",
            "] detect_and_embed model=tiny dim=16 detector=tiny-yunet image=300x300 faces=",
            " decode=",
            "ms detect=",
            "ms align=",
            "ms embed=",
        ],
    );
    assert_eq!(processed.len(), 1, "{log}");
    assert!(processed[0].contains(" INFO "), "{}", processed[0]);
    let pid = worker_pid(&processed[0]);
    // And the supervisor's when the job ended: the same worker, the duration, the outcome.
    let ended = log_lines_with(
        &log,
        &[
            &format!("[WORKER {pid}] detect_and_embed job "),
            " completed in ",
            "s: ok",
        ],
    );
    assert!(!ended.is_empty(), "{log}");
    eprintln!("{}\n{}", processed[0], ended[0]);
    assert!(ended[0].contains(" INFO "), "{}", ended[0]);
    // A job that fails inside the worker ends with its error kind.
    assert_eq!(p.embed(b"not an image", &[]).status, 422);
    let log = p.server.log();
    assert_eq!(
        log_lines_with(
            &log,
            &["detect_and_embed job ", "s: failed (UnsupportedImage)"]
        )
        .len(),
        1,
        "{log}"
    );
}
