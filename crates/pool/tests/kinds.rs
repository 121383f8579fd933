//! Error kinds through a real pool: a stand-in worker process (a shell replaying a recorded hello,
//! so no face engine is needed) reports an unavailable model, and a job too large to frame is
//! answered `PayloadTooLarge`, all as the shared enum.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use attendansee_pool::protocol::{
    Hello, Job, JobError, MAX_FRAME_BYTES, PROTOCOL_VERSION, UnavailableModel, encode,
};
use attendansee_pool::{Lane, Pool, PoolConfig, PoolError};
use attendansee_vocabulary::ErrorKind;

/// A pool of one worker that says `hello`, then reads (and ignores) whatever it is sent.
fn stand_in_pool(dir: &tempfile::TempDir, hello: &Hello) -> Pool {
    let recorded = dir.path().join("hello.bin");
    std::fs::write(&recorded, encode(hello).unwrap()).unwrap();
    Pool::start(PoolConfig {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            r#"cat "$1"; exec cat >/dev/null"#.into(),
            "stand-in".into(),
            recorded.into_os_string(),
        ],
        workers: 1,
        queue: 4,
        job_timeout: Duration::from_secs(30),
        start_timeout: Duration::from_secs(10),
        max_jobs_per_worker: 0,
        max_rss_bytes: 0,
    })
}

async fn wait_until_alive(pool: &Pool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.status().alive < 1 {
        assert!(
            Instant::now() < deadline,
            "the stand-in worker never said hello"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_too_large_to_frame_is_payload_too_large_and_hello_kinds_arrive_intact() {
    let dir = tempfile::tempdir().unwrap();
    let pool = stand_in_pool(
        &dir,
        &Hello {
            protocol_version: PROTOCOL_VERSION,
            pid: 1,
            models: Vec::new(),
            unavailable: vec![UnavailableModel {
                name: "facenet".into(),
                kind: ErrorKind::ModelNotAvailable,
                message: "not installed".into(),
            }],
        },
    );
    wait_until_alive(&pool).await;
    let unavailable = pool.status().unavailable;
    assert_eq!(
        unavailable
            .iter()
            .map(|u| (u.name.as_str(), u.kind))
            .collect::<Vec<_>>(),
        [("facenet", ErrorKind::ModelNotAvailable)]
    );

    // Zeroed (untouched) pages: the photo costs address space, not memory.
    let image = vec![0u8; MAX_FRAME_BYTES + 1];
    let error = pool
        .submit(Job::Validate { image }, Lane::interactive(1))
        .await
        .expect_err("a frame above the limit cannot be sent");
    assert_eq!(error.kind(), ErrorKind::PayloadTooLarge, "{error}");
    assert!(
        matches!(
            &error,
            PoolError::Job(JobError { kind: ErrorKind::PayloadTooLarge, message })
                if message.contains("too large")
        ),
        "{error:?}"
    );
    // The worker never saw the request: the one that started still serves, none was replaced.
    let metrics = pool.metrics();
    assert_eq!(
        (pool.status().alive, metrics.starts.load(Ordering::Relaxed)),
        (1, 1)
    );
    pool.shutdown(Duration::from_secs(2)).await;
}

#[test]
fn every_pool_error_has_the_kind_the_api_reports_for_it() {
    let job = |kind| {
        PoolError::Job(JobError {
            kind,
            message: String::new(),
        })
    };
    let cases = [
        (
            PoolError::Overloaded { retry_after: 1 },
            ErrorKind::Overloaded,
        ),
        (PoolError::ShuttingDown, ErrorKind::Overloaded),
        (
            PoolError::Unavailable {
                message: String::new(),
            },
            ErrorKind::ModelNotAvailable,
        ),
        (
            PoolError::Timeout {
                timeout: Duration::from_secs(1),
                stderr_tail: Vec::new(),
            },
            ErrorKind::WorkerTimeout,
        ),
        (
            PoolError::Crashed {
                reason: String::new(),
                attempts: 2,
                stderr_tail: Vec::new(),
            },
            ErrorKind::WorkerCrashed,
        ),
        (job(ErrorKind::NoFaceDetected), ErrorKind::NoFaceDetected),
        (job(ErrorKind::Internal), ErrorKind::Internal),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error:?}");
    }
}
