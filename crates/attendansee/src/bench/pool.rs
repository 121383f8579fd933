//! `attendansee bench`, worker pool part: the pool against the old design (a fresh process per
//! embedding), the pool's overhead against the in-process engine, and the server's resident
//! memory over a long run. All on the same JPEG face crops, measured in this one run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use attendansee_faces::Recognizer;
use attendansee_faces::image_io::{DEFAULT_MAX_PIXELS, decode_rgb};
use attendansee_pool::protocol::{Hello, Job, Request, Response, read_frame, write_frame};
use attendansee_pool::{Lane, Pool, PoolConfig};

use crate::config::Common;

const MODEL: &str = "mobilefacenet";

/// Runs the three comparisons on `crops` (JPEG files of aligned faces).
pub fn run(
    common: &Common,
    recognizer: &mut Recognizer,
    crops: &[PathBuf],
    requests: usize,
    faces_dir: &std::path::Path,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = crops
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<_>>()?;
    println!(
        "worker pool benchmark: {} crops, model {MODEL}; in-process and pools in {ROUNDS} interleaved rounds",
        bytes.len()
    );

    // The in-process engine and the pools take turns, several rounds each, so that a noisy
    // neighbour on the machine slows all of them alike rather than whichever ran at that moment.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let [in_process, pool_one, pool_all] = runtime.block_on(async {
        let one = started_pool(common, 1, bytes.len()).await?;
        let all = started_pool(common, cores, bytes.len()).await?;
        let mut spent = [Duration::ZERO; 3];
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for crop in &bytes {
                let image = decode_rgb(crop, DEFAULT_MAX_PIXELS)?;
                std::hint::black_box(recognizer.embed(&[&image])?);
            }
            spent[0] += start.elapsed();
            spent[1] += through_pool(&one, &bytes).await?;
            spent[2] += through_pool(&all, &bytes).await?;
        }
        one.shutdown(Duration::from_secs(5)).await;
        all.shutdown(Duration::from_secs(5)).await;
        anyhow::Ok(spent.map(|d| rate(ROUNDS * bytes.len(), d)))
    })?;

    let start = Instant::now();
    for crop in &bytes {
        fresh_process_embedding(common, crop)?;
    }
    let old_design = rate(bytes.len(), start.elapsed());

    println!("  in-process engine, 1 thread:                  {in_process:8.1} embeddings/s");
    println!("  pool, 1 worker:                               {pool_one:8.1} embeddings/s");
    println!(
        "  pool, {} workers:                              {:8.1} embeddings/s",
        cores, pool_all
    );
    println!(
        "  old design, a fresh process per embedding:    {old_design:8.2} embeddings/s ({:.0} ms each)",
        1000.0 / old_design
    );
    println!(
        "  ratio pool (1 worker) / old design:           {:8.1}×  (target ≥ 50)",
        pool_one / old_design
    );
    println!(
        "  ratio pool (1 worker) / in-process engine:    {:8.3}   (target ≥ 0.9)",
        pool_one / in_process
    );

    server_memory(common, &bytes[0], requests, faces_dir)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// How many times the in-process engine and the pools each embed the crops.
const ROUNDS: usize = 5;

/// A pool of `workers` with every worker up.
async fn started_pool(common: &Common, workers: usize, queue: usize) -> Result<Pool> {
    let pool = Pool::start(PoolConfig {
        program: std::env::current_exe()?,
        args: common.worker_args(None, &[MODEL.to_owned()]),
        workers,
        queue,
        job_timeout: Duration::from_secs(60),
        start_timeout: Duration::from_secs(60),
        max_jobs_per_worker: 0,
        max_rss_bytes: 0,
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool.status().alive < workers as i64 {
        if Instant::now() > deadline {
            bail!("the pool's workers did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(pool)
}

/// Embeds every crop as its own job through `pool`, all submitted at once (as batch work, which
/// waits for room in the queue) so that every worker stays busy; returns the time taken.
async fn through_pool(pool: &Pool, crops: &[Vec<u8>]) -> Result<Duration> {
    let start = Instant::now();
    let jobs = crops.iter().map(|crop| {
        let pool = pool.clone();
        let job = Job::EmbedCrops {
            crops: vec![crop.clone()],
            model: MODEL.into(),
        };
        tokio::spawn(async move { pool.submit(job, Lane::batch(0)).await })
    });
    for handle in jobs.collect::<Vec<_>>() {
        handle
            .await?
            .map_err(|e| anyhow::anyhow!("pool job failed: {e}"))?;
    }
    Ok(start.elapsed())
}

/// The old design: start a process, load the model, embed one crop, exit.
fn fresh_process_embedding(common: &Common, crop: &[u8]) -> Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(common.worker_args(None, &[MODEL.to_owned()]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (mut stdin, mut stdout) = (
        child.stdin.take().context("stdin")?,
        child.stdout.take().context("stdout")?,
    );
    let _hello: Hello = read_frame(&mut stdout)?;
    write_frame(
        &mut stdin,
        &Request {
            id: 1,
            job: Job::EmbedCrops {
                crops: vec![crop.to_vec()],
                model: MODEL.into(),
            },
        },
    )?;
    let response: Response = read_frame(&mut stdout)?;
    response
        .result
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    drop(stdin);
    child.wait()?;
    Ok(())
}

/// Starts a real server, sends `requests` embeddings through its HTTP API, and compares its
/// resident memory after 100 of them with after all of them.
fn server_memory(
    common: &Common,
    crop: &[u8],
    requests: usize,
    faces_dir: &std::path::Path,
) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let data = scratch.path().join("data");
    let exe = std::env::current_exe()?;
    let base = |command: &mut Command| {
        command
            .arg("--data-dir")
            .arg(&data)
            .arg("--model-dir")
            .arg(&common.model_dir);
        if let Some(lib) = &common.ort_lib {
            command.arg("--ort-lib").arg(lib);
        }
    };
    let mut create = Command::new(&exe);
    base(&mut create);
    let mut child = create
        .args(["users", "create", "--username", "bench", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(b"bench-password\n")?;
    child.wait()?;
    let mut token = Command::new(&exe);
    base(&mut token);
    let token = String::from_utf8(
        token
            .args(["users", "token", "--username", "bench"])
            .output()?
            .stdout,
    )?
    .trim()
    .to_owned();

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut serve = Command::new(&exe);
    base(&mut serve);
    let server = ServerGuard(
        serve
            .args([
                "serve",
                "--bind",
                &addr,
                "--recognizers",
                MODEL,
                "--queue",
                "256",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health_ok(&addr) {
        if Instant::now() > deadline {
            bail!("the benchmark server did not become healthy");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = server.0.id();
    let send = |count: usize| -> Result<()> {
        for _ in 0..count {
            let status = embed_request(&addr, &token, crop)?;
            if status != 200 {
                bail!("embed request answered {status}");
            }
        }
        Ok(())
    };
    let first = requests.min(100);
    send(first)?;
    let early = attendansee_pool::supervisor::resident_bytes(pid).context("server memory")?;
    let start = Instant::now();
    send(requests - first)?;
    let late = attendansee_pool::supervisor::resident_bytes(pid).context("server memory")?;
    println!(
        "  server resident memory after {first} embeddings: {:.1} MB; after {requests}: {:.1} MB; growth {:+.1}%  (target < 5%)",
        early as f64 / 1e6,
        late as f64 / 1e6,
        (late as f64 / early as f64 - 1.0) * 100.0
    );
    session_benchmark(&addr, &token, faces_dir)?;
    println!(
        "  HTTP end to end (detect + embed on each crop, 2 workers): {:.1} requests/s",
        rate(requests - first, start.elapsed())
    );
    Ok(())
}

/// 20 photos with 1 to 30 faces each, from ../shared/faces.
const SESSION_PHOTOS: [&str; 20] = [
    "scrfd_testimages/solvay_conference_1927.png",
    "scrfd_testimages/newton.png",
    "scrfd_testimages/gauss.png",
    "faceapi_bbt/bbt1.jpg",
    "faceapi_bbt/bbt2.jpg",
    "faceapi_bbt/bbt3.jpg",
    "faceapi_bbt/bbt4.jpg",
    "faceapi_bbt/bbt5.jpg",
    "face_recognition_examples/examples__two_people.jpg",
    "face_recognition_examples/test_obama_and_biden.jpg",
    "face_recognition_examples/test_kit_with_rose.jpg",
    "face_recognition_examples/obama.jpg",
    "face_recognition_examples/biden.jpg",
    "face_recognition_examples/examples__obama-1080p.jpg",
    "face_recognition_examples/train_alex_lacamoire_img1.jpg",
    "openface_examples/longoria-cooper.jpg",
    "openface_examples/clapton-1.jpg",
    "openface_examples/lennon-1.jpg",
    "facenet_pytorch_images/multiface.jpg",
    "faceonnx_images/score_brad_1.jpg",
];

/// Uploads the session photos to the running server, processes them, and reports throughput and
/// the share of the workers' time not spent in model inference.
fn session_benchmark(addr: &str, token: &str, faces_dir: &std::path::Path) -> Result<()> {
    let auth = format!("Authorization: Bearer {token}");
    let json_call = |line: &str, body: &str| -> Result<serde_json::Value> {
        let headers = [auth.clone(), "Content-Type: application/json".to_owned()];
        let (status, response) = http(addr, line, &headers, body.as_bytes())?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if status >= 300 {
            bail!("{line} answered {status}: {body}");
        }
        Ok(serde_json::from_str(body)?)
    };
    let course = json_call(
        "POST /api/attendance/courses/ HTTP/1.1",
        r#"{"name": "Bench", "code": "BENCH"}"#,
    )?;
    let session = json_call(
        "POST /api/attendance/sessions/ HTTP/1.1",
        &format!(
            r#"{{"course": {}, "title": "Bench", "held_at": "2026-01-01T00:00:00Z"}}"#,
            course["id"]
        ),
    )?["id"]
        .as_i64()
        .context("session id")?;
    let upload_started = Instant::now();
    for chunk in SESSION_PHOTOS.chunks(5) {
        let boundary = "bench-session";
        let mut body = Vec::new();
        for name in chunk {
            let path = faces_dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let headers = [
            auth.clone(),
            format!("Content-Type: multipart/form-data; boundary={boundary}"),
        ];
        let (status, _) = http(
            addr,
            &format!("POST /api/attendance/sessions/{session}/images/ HTTP/1.1"),
            &headers,
            &body,
        )?;
        if status != 200 {
            bail!("photo upload answered {status}");
        }
    }
    println!(
        "  upload of the session's {} photos, 5 per request, each validated by a worker: {:.1} photos/s",
        SESSION_PHOTOS.len(),
        rate(SESSION_PHOTOS.len(), upload_started.elapsed())
    );
    let started = json_call(
        &format!("POST /api/attendance/sessions/{session}/process/ HTTP/1.1"),
        "",
    )?;
    let job = started["job"]["id"].as_i64().context("job id")?;
    let job = loop {
        let job = json_call(&format!("GET /api/attendance/jobs/{job}/ HTTP/1.1"), "")?;
        if ["succeeded", "partial", "failed", "cancelled"]
            .contains(&job["status"].as_str().unwrap_or(""))
        {
            break job;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let time = |field: &str| -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(job[field].as_str().context("job time")?.parse()?)
    };
    let wall_ms = (time("finished_at")? - time("started_at")?)
        .num_microseconds()
        .unwrap_or(0) as f64
        / 1000.0;
    let stat = |name: &str| job["stats"][name].as_f64().unwrap_or(0.0);
    let inference_ms = stat("detect_ms") + stat("embed_ms");
    let workers = 2.0;
    println!(
        "  session of {} photos, {} faces, end to end with {workers} workers: {:.1} photos/s, {:.1} faces/s",
        stat("photos"),
        stat("faces"),
        stat("photos") / (wall_ms / 1000.0),
        stat("faces") / (wall_ms / 1000.0)
    );
    println!(
        "    worker time per stage: decode {:.0} ms, detect {:.0} ms, align {:.0} ms, embed {:.0} ms; wall {:.0} ms",
        stat("decode_ms"),
        stat("detect_ms"),
        stat("align_ms"),
        stat("embed_ms"),
        wall_ms
    );
    println!(
        "    share of wall time outside model inference: {:.1}%  (1 − inference / (wall × workers); target < 15%)",
        (1.0 - inference_ms / (wall_ms * workers)) * 100.0
    );
    // Decoding the photos has to happen whatever else is made faster, so this share is the floor
    // of the one above for these photos, decoders and models.
    println!(
        "    of which decoding the photos alone: {:.1}% of the workers' decode + inference time",
        stat("decode_ms") / (stat("decode_ms") + inference_ms) * 100.0
    );
    Ok(())
}

/// Kills the benchmark server however the benchmark ends.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn health_ok(addr: &str) -> bool {
    http(addr, "GET /api/health/ HTTP/1.1", &[], b"")
        .is_ok_and(|(status, body)| status == 200 && body.contains("\"workers_alive\":2"))
}

fn embed_request(addr: &str, token: &str, image: &[u8]) -> Result<u16> {
    let boundary = "bench-boundary";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"crop.jpg\"\r\n\r\n").into_bytes();
    body.extend_from_slice(image);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let headers = [
        format!("Authorization: Bearer {token}"),
        format!("Content-Type: multipart/form-data; boundary={boundary}"),
    ];
    Ok(http(
        addr,
        "POST /api/attendance/embed/ HTTP/1.1",
        &headers,
        &body,
    )?
    .0)
}

/// A minimal HTTP/1.1 exchange on a fresh loopback connection.
fn http(
    addr: &str,
    request_line: &str,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    let mut head = format!(
        "{request_line}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response))
}
