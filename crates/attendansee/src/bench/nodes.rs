//! Benchmark of several nodes: `serve` processes of this binary on one PostgreSQL database (a
//! fresh one on the server of `ATTENDANSEE_TEST_DATABASE_URL`) and one data directory, driven
//! over HTTP on loopback. A 20-photo session through one node against the same through two
//! nodes, and two 10-photo sessions at once through two nodes against one. Each session is one
//! job and a job runs on one node, so two nodes can only help with several sessions at once —
//! and on a 2-core machine both nodes share the same cores.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use attendansee_store::testing::TestDatabase;
use serde_json::{Value, json};

const PASSWORD: &str = "bench nodes password";

/// One `serve` process of the installation.
struct Node {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Result<Value> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match (method, body) {
        ("GET", _) => {
            let mut request = ureq::get(url);
            if let Some(auth) = &auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        }
        (_, body) => {
            let mut request = ureq::post(url);
            if let Some(auth) = &auth {
                request = request.header("Authorization", auth);
            }
            let (content_type, bytes) = body.unwrap_or(("application/json", b"{}".to_vec()));
            request
                .header("Content-Type", content_type)
                .send(&bytes[..])
        }
    };
    let mut response = response.with_context(|| format!("{method} {url}"))?;
    let text = response.body_mut().read_to_string()?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Node {
    fn start(exe: &Path, common: &[String], models: &Path, data: &Path) -> Result<Node> {
        let port = free_port()?;
        let child = Command::new(exe)
            .args(common)
            .arg("--model-dir")
            .arg(models)
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--workers",
                "1",
            ])
            .args(["--detector", "yunet", "--recognizers", "mobilefacenet"])
            .current_dir(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let token = loop {
            let login = json!({"username": "bench", "password": PASSWORD});
            let body = ("application/json", login.to_string().into_bytes());
            match call("POST", &format!("{base}/api/auth/login/"), None, Some(body)) {
                Ok(reply) => break reply["token"].as_str().unwrap_or_default().to_owned(),
                Err(e) if Instant::now() > deadline => bail!("node on {base} did not start: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let mut node = Node { child, base, token };
        // Ready when its workers are.
        loop {
            let health = node.get("/api/health/")?;
            let pool = &health["pool"];
            if pool["workers_alive"].as_i64() >= Some(1)
                && pool["workers_alive"] == pool["workers_configured"]
            {
                break;
            }
            if Instant::now() > deadline {
                node.child.kill().ok();
                bail!("the workers of {} did not start: {health}", node.base);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(node)
    }

    fn get(&self, path: &str) -> Result<Value> {
        call(
            "GET",
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        let body = ("application/json", body.to_string().into_bytes());
        call(
            "POST",
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body),
        )
    }

    fn session(&self, course: i64, title: &str, photos: &[PathBuf]) -> Result<i64> {
        let body = json!({"course": course, "title": title, "held_at": "2026-11-30T09:00:00Z"});
        let session = self.post("/api/attendance/sessions/", body)?["id"]
            .as_i64()
            .context("session id")?;
        let boundary = "attendansee-bench-nodes";
        let mut body = Vec::new();
        for path in photos {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("photo.jpg");
            write!(
                body,
                "--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n\r\n"
            )?;
            body.extend_from_slice(&std::fs::read(path)?);
            body.extend_from_slice(b"\r\n");
        }
        write!(body, "--{boundary}--\r\n")?;
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let url = format!("{}/api/attendance/sessions/{session}/images/", self.base);
        call("POST", &url, Some(&self.token), Some((&content_type, body)))?;
        Ok(session)
    }

    fn process(&self, session: i64) -> Result<i64> {
        let reply = self.post(
            &format!("/api/attendance/sessions/{session}/process/"),
            json!({}),
        )?;
        reply["job"]["id"].as_i64().context("job id")
    }

    fn wait(&self, job: i64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let job = self.get(&format!("/api/attendance/jobs/{job}/"))?;
            match job["status"].as_str() {
                Some("succeeded" | "partial") => return Ok(()),
                Some("failed" | "cancelled") => bail!("job ended {job}"),
                _ if Instant::now() > deadline => bail!("job did not end: {job}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Processes `sessions` (each a list of photos) at once, each through the next node in turn;
/// returns the wall time from the first request to the last job's end.
fn process(nodes: &[Node], course: i64, run: &str, sessions: &[&[PathBuf]]) -> Result<Duration> {
    let mut ids = Vec::new();
    for (i, photos) in sessions.iter().enumerate() {
        ids.push(nodes[i % nodes.len()].session(course, &format!("{run} {i}"), photos)?);
    }
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (i, session) in ids.iter().enumerate() {
        jobs.push((i % nodes.len(), nodes[i % nodes.len()].process(*session)?));
    }
    for (node, job) in jobs {
        nodes[node].wait(job)?;
    }
    Ok(started.elapsed())
}

pub fn run(models: &Path, faces: &Path) -> Result<()> {
    println!("\n== several nodes: one PostgreSQL, one data directory, 1 worker each ==");
    let folder = faces.join("face_recognition_examples");
    let mut seen = std::collections::HashSet::new();
    let photos: Vec<PathBuf> = crate::faces::image_paths(std::slice::from_ref(&folder))?
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|bytes| seen.insert(bytes)))
        .collect();
    if photos.len() < 20 {
        bail!(
            "the node benchmark needs 20 distinct photos in {}, found {}",
            folder.display(),
            photos.len()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let Some(database) = runtime.block_on(TestDatabase::postgres("bench nodes")) else {
        println!("skipped: set ATTENDANSEE_TEST_DATABASE_URL to a PostgreSQL server");
        return Ok(());
    };
    let exe = std::env::current_exe()?;
    // The nodes run in a directory of their own: a relative model directory must not move.
    let models = &std::fs::canonicalize(models)
        .with_context(|| format!("no model directory {}", models.display()))?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let common = vec![
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--database-url".to_owned(),
        database.url(),
    ];
    let mut create = Command::new(&exe)
        .args(&common)
        .args([
            "users",
            "create",
            "--username",
            "bench",
            "--admin",
            "--password-stdin",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    writeln!(create.stdin.take().context("stdin")?, "{PASSWORD}")?;
    if !create.wait()?.success() {
        bail!("cannot create the benchmark's user");
    }
    let photos = &photos[..20];
    let mut nodes = vec![Node::start(&exe, &common, models, dir.path())?];
    let course = nodes[0].post(
        "/api/attendance/courses/",
        json!({"name": "Bench", "code": "BENCH"}),
    )?["id"]
        .as_i64()
        .context("course id")?;
    // Warm-up: the first photos through a fresh worker pay for loading its models.
    process(&nodes, course, "warm-up", &[&photos[..2]])?;
    let one_whole = process(&nodes, course, "one node, 20 photos", &[photos])?;
    let one_halves = process(
        &nodes,
        course,
        "one node, 2 x 10",
        &[&photos[..10], &photos[10..]],
    )?;
    nodes.push(Node::start(&exe, &common, models, dir.path())?);
    process(&nodes[1..], course, "warm-up B", &[&photos[..2]])?;
    let two_whole = process(&nodes, course, "two nodes, 20 photos", &[photos])?;
    let two_halves = process(
        &nodes,
        course,
        "two nodes, 2 x 10",
        &[&photos[..10], &photos[10..]],
    )?;
    drop(nodes);
    drop(database);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| work | one node | two nodes | one/two |");
    println!("|---|---|---|---|");
    for (what, one, two) in [
        ("one 20-photo session", one_whole, two_whole),
        ("two 10-photo sessions at once", one_halves, two_halves),
    ] {
        println!(
            "| {what} | {:.0} ms | {:.0} ms | {:.2}x |",
            ms(one),
            ms(two),
            ms(one) / ms(two)
        );
    }
    println!(
        "(a session is one job, run by one node: two nodes help only several sessions at once, \
         and here both share this machine's {} cores)",
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    Ok(())
}
