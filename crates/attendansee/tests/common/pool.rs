//! A server whose workers run the tiny generated models (so pool tests run everywhere), with an
//! admin token, and helpers to talk to its face routes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Reply, Server, create_user_with, multipart, request};

pub struct PoolServer {
    pub server: Server,
    pub token: String,
    _dir: tempfile::TempDir,
}

/// The workspace root (the checkout).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Generates the tiny models into `dir` and writes a config whose catalog names them.
fn tiny_setup(dir: &Path) -> PathBuf {
    let status = std::process::Command::new(root().join(".local/venv/bin/python"))
        .arg(root().join("tools/make_test_models.py"))
        .arg(dir.join("models"))
        .status()
        .expect(
            "run tools/make_test_models.py (scripts/setup.sh --test installs its dependencies)",
        );
    assert!(status.success());
    let config = dir.join("attendansee.toml");
    std::fs::write(
        &config,
        r#"
[[models]]
name = "tiny-yunet"
kind = "detector"
file = "tiny_yunet.onnx"
input_size = [640, 640]
color = "bgr"
normalization = { mean = [0, 0, 0], std = [1, 1, 1] }
family = "yunet"
score_threshold = 0.5
nms_threshold = 0.3

[[models]]
name = "tiny"
kind = "recognizer"
file = "tiny_fixed.onnx"
input_size = [112, 112]
color = "rgb"
normalization = { mean = [127.5, 127.5, 127.5], std = [127.5, 127.5, 127.5] }
dimension = 16
template = [[38.29, 51.69], [73.53, 51.50], [56.02, 71.73], [41.54, 92.36], [70.72, 92.20]]
"#,
    )
    .unwrap();
    config
}

impl PoolServer {
    /// Starts `serve` with tiny models, `extra` serve flags and `env` variables.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> PoolServer {
        Self::start_in(tempfile::tempdir().unwrap(), extra, env)
    }

    /// Like [`PoolServer::start`], in `dir` (its `data` directory may already be prepared, e.g.
    /// a mounted file system).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> PoolServer {
        let config = tiny_setup(dir.path());
        let models = dir.path().join("models");
        let global = [
            "--config".into(),
            config.into_os_string(),
            "--model-dir".into(),
            models.into_os_string(),
        ];
        Self::launch(
            dir,
            &global,
            &["--detector", "tiny-yunet", "--recognizers", "tiny"],
            extra,
            env,
        )
    }

    /// Starts `serve` with the models of `model_dir` and these `--detector`/`--recognizers`.
    pub fn start_real_with(model_dir: &Path, models: &[&str], extra: &[&str]) -> PoolServer {
        let dir = tempfile::tempdir().unwrap();
        let global = ["--model-dir".into(), model_dir.as_os_str().to_owned()];
        Self::launch(dir, &global, models, extra, &[])
    }

    /// Starts `serve` with the real models of `../shared/models` (yunet, mobilefacenet).
    pub fn start_real(shared_models: &Path, extra: &[&str]) -> PoolServer {
        Self::start_real_env(shared_models, extra, &[])
    }

    /// Like [`PoolServer::start_real`], with `env` set for `serve` and for the `users create`
    /// that makes its admin (e.g. `ATTENDANSEE_DATABASE_URL`, `ATTENDANSEE_BLOB_URL`, `AWS_*`).
    pub fn start_real_env(
        shared_models: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> PoolServer {
        let dir = tempfile::tempdir().unwrap();
        let global = ["--model-dir".into(), shared_models.as_os_str().to_owned()];
        Self::launch(
            dir,
            &global,
            &["--detector", "yunet", "--recognizers", "mobilefacenet"],
            extra,
            env,
        )
    }

    fn launch(
        dir: tempfile::TempDir,
        global: &[std::ffi::OsString],
        models: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> PoolServer {
        let data = dir.path().join("data");
        let (ok, out) = create_user_with(&data, "admin", "horse battery staple", true, env);
        assert!(ok, "{out}");
        let mut command = super::attendansee(&data);
        command
            .args(global)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(models)
            .args(extra);
        if std::env::var_os("ORT_DYLIB_PATH").is_none() {
            command.env(
                "ORT_DYLIB_PATH",
                root().join(".local/onnxruntime/libonnxruntime.so"),
            );
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let server = Server::spawn(command).unwrap();
        let token = server.login("admin", "horse battery staple");
        let pool = PoolServer {
            server,
            token,
            _dir: dir,
        };
        pool.wait_for_workers(None);
        pool
    }

    /// The data directory of this server.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// A JSON request with the admin token.
    pub fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Reply {
        let headers = self.auth();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        request(
            &self.server.addr,
            method,
            path,
            &headers,
            "application/json",
            body.as_bytes(),
        )
    }

    /// Uploads `files` (name, bytes) to a session in one multipart request.
    pub fn upload(&self, session: i64, files: &[(&str, &[u8])]) -> Reply {
        self.upload_to(
            &format!("/api/attendance/sessions/{session}/images/"),
            files,
        )
    }

    /// POSTs `files` (name, bytes) as repeated `images` fields of one multipart request.
    pub fn upload_to(&self, path: &str, files: &[(&str, &[u8])]) -> Reply {
        let boundary = "attendansee-upload-boundary";
        let mut body = Vec::new();
        for (name, bytes) in files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let headers = self.auth();
        let content_type = format!("multipart/form-data; boundary={boundary}");
        request(
            &self.server.addr,
            "POST",
            path,
            &headers,
            &content_type,
            &body,
        )
    }

    /// A new course and session; returns the session id.
    pub fn session(&self) -> i64 {
        let course = self.course("C1");
        self.session_in(course, "Lecture")
    }

    /// A new course with this code; returns its id.
    pub fn course(&self, code: &str) -> i64 {
        let course = self.call(
            "POST",
            "/api/attendance/courses/",
            Some(&serde_json::json!({"name": "Class", "code": code})),
        );
        assert_eq!(course.status, 201, "{}", course.body);
        course.json()["id"].as_i64().unwrap()
    }

    /// A new session of `course`; returns its id.
    pub fn session_in(&self, course: i64, title: &str) -> i64 {
        let body = serde_json::json!({"course": course, "title": title, "held_at": "2026-11-25T09:00:00Z"});
        let session = self.call("POST", "/api/attendance/sessions/", Some(&body));
        assert_eq!(session.status, 201, "{}", session.body);
        session.json()["id"].as_i64().unwrap()
    }

    /// Starts processing a session and waits for the job to end; returns the finished job.
    pub fn process(&self, session: i64) -> serde_json::Value {
        let started = self.call(
            "POST",
            &format!("/api/attendance/sessions/{session}/process/"),
            None,
        );
        assert_eq!(started.status, 202, "{}", started.body);
        let id = started.json()["job"]["id"].as_i64().unwrap();
        self.wait_for_job(id)
    }

    pub fn wait_for_job(&self, id: i64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let job = self.get(&format!("/api/attendance/jobs/{id}/")).json();
            if ["succeeded", "partial", "failed", "cancelled"]
                .contains(&job["status"].as_str().unwrap_or(""))
            {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not finish: {job}\n{}",
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin's `Authorization` header.
    fn auth(&self) -> Vec<(String, String)> {
        vec![("Authorization".to_owned(), format!("Bearer {}", self.token))]
    }

    /// `POST /api/attendance/embed/` with these image bytes.
    pub fn embed(&self, image: &[u8], fields: &[(&str, &str)]) -> Reply {
        self.try_embed_with(image, fields)
            .unwrap_or_else(|e| panic!("POST /api/attendance/embed/: {e}"))
    }

    /// Like [`PoolServer::embed`], but `None` when the connection fails (server stopping).
    pub fn try_embed(&self, image: &[u8]) -> Option<Reply> {
        self.try_embed_with(image, &[]).ok()
    }

    fn try_embed_with(&self, image: &[u8], fields: &[(&str, &str)]) -> std::io::Result<Reply> {
        let (content_type, body) = multipart(image, fields);
        super::try_request(
            &self.server.addr,
            "POST",
            "/api/attendance/embed/",
            &self.auth(),
            &content_type,
            &body,
        )
    }

    pub fn get(&self, path: &str) -> Reply {
        let headers = self.auth();
        request(&self.server.addr, "GET", path, &headers, "", b"")
    }

    /// Waits until `/api/health/` reports all configured workers alive (or `expected` of them).
    pub fn wait_for_workers(&self, expected: Option<i64>) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.get("/api/health/").json();
            let pool = &health["pool"];
            let want = expected.unwrap_or_else(|| pool["workers_configured"].as_i64().unwrap_or(1));
            if pool["workers_alive"].as_i64() == Some(want) {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "workers not back to {want}: {health}\n{}",
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of one Prometheus sample line (`name{labels}`), or 0 if absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|v| v.trim().parse().unwrap_or(0.0))
            })
            .unwrap_or(0.0)
    }
}

/// A PNG photo of `size`×`size` pixels (the tiny detector finds one face in anything ≥ 256 px).
pub fn png(size: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Worker pids: the children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .is_some_and(|stat| {
                    // pid (comm) state ppid …; comm may contain spaces, so split after the last ')'.
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                        == Some(pid)
                })
        })
        .collect()
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .is_some_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        })
}
