//! Runs the real `attendansee` binary: servers on free loopback ports, a minimal HTTP/1.1 client,
//! signals. Nothing here talks to anything but 127.0.0.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod own_postgres;
pub mod pool;
pub mod s3;

/// `../shared` when its models are there; otherwise says plainly (past the test harness's output
/// capture) that the calling test is skipped — or fails it under `ATTENDANSEE_REQUIRE_SHARED=1`
/// (CI), where a skip would hide that the test never ran.
pub fn shared(test: &str) -> Option<std::path::PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if shared.join("models").is_dir() {
        return Some(shared.canonicalize().unwrap());
    }
    assert!(
        std::env::var_os("ATTENDANSEE_REQUIRE_SHARED").is_none(),
        "{test}: ../shared/models is not present but ATTENDANSEE_REQUIRE_SHARED is set"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: ../shared/models is not present"
    );
    None
}

pub const BIN: &str = env!("CARGO_BIN_EXE_attendansee");

pub fn attendansee(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ATTENDANSEE_CONFIG")
        .current_dir(data_dir.parent().unwrap());
    command
}

/// `users create`, feeding the password on stdin; returns the exit status and combined output.
pub fn create_user(data_dir: &Path, username: &str, password: &str, admin: bool) -> (bool, String) {
    create_user_with(data_dir, username, password, admin, &[])
}

/// [`create_user`] with `env` set (e.g. `ATTENDANSEE_DATABASE_URL`).
pub fn create_user_with(
    data_dir: &Path,
    username: &str,
    password: &str,
    admin: bool,
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut command = attendansee(data_dir);
    command.envs(env.iter().copied());
    command.args([
        "users",
        "create",
        "--username",
        username,
        "--password-stdin",
    ]);
    if admin {
        command.arg("--admin");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `serve` on a free port and waits until it listens; `Err(log)` if it exits instead.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut command = attendansee(data_dir);
        command.args(["serve", "--bind", "127.0.0.1:0"]).args(extra);
        Self::spawn(command)
    }

    /// Runs a prepared `serve` command and waits until it listens.
    // The child either moves into `Server`, whose `Drop` kills and waits for it, or is waited here.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(mut command: Command) -> Result<Server, String> {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let found = log.lock().unwrap().iter().find_map(|l| {
                let at = l.find("listening on http://")?;
                let rest = &l[at + "listening on http://".len()..];
                Some(
                    rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                        .next()?
                        .to_owned(),
                )
            });
            if let Some(addr) = found {
                return Ok(Server { child, addr, log });
            }
            if child.try_wait().unwrap().is_some() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain stderr
                return Err(log.lock().unwrap().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        Err(format!(
            "server did not start in 30 s:\n{}",
            log.lock().unwrap().join("\n")
        ))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, failing the test after `seconds`.
    pub fn wait(&mut self, seconds: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {seconds} s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        http(&self.addr, method, path, &headers(token), body)
    }

    pub fn login(&self, username: &str, password: &str) -> String {
        let body = format!(r#"{{"username": "{username}", "password": "{password}"}}"#);
        let (status, text) = self.request("POST", "/api/auth/login/", None, Some(&body));
        assert_eq!(status, 200, "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn headers(token: Option<&str>) -> Vec<(String, String)> {
    token
        .map(|t| vec![("Authorization".to_owned(), format!("Bearer {t}"))])
        .unwrap_or_default()
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> (u16, String) {
    let reply = request(
        addr,
        method,
        path,
        headers,
        "application/json",
        body.unwrap_or_default().as_bytes(),
    );
    (reply.status, reply.body)
}

pub struct Reply {
    pub status: u16,
    /// Raw header lines.
    pub headers: String,
    pub body: String,
    /// The body as received (`body` is its lossy text).
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.body))
    }
}

/// One HTTP/1.1 request with a raw body of the given content type (sent only if non-empty).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Reply {
    try_request(addr, method, path, headers, content_type, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`request`], with connection errors returned instead of panicking.
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    let bytes = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| response[at + 4..].to_vec())
        .unwrap_or_default();
    Ok(Reply {
        status,
        headers,
        body,
        bytes,
    })
}

/// A multipart/form-data body with an `image` file field and text fields; returns (content type, body).
pub fn multipart(image: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "attendansee-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(image);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A small tmpfs mounted at a directory (a disk that can really fill up); unmounted on drop.
pub struct Tmpfs {
    pub path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `megabytes` at `path` (created). Mounting needs root: elsewhere the
    /// calling test is skipped, saying so — except under `ATTENDANSEE_REQUIRE_TMPFS=1` (CI),
    /// where that is a failure.
    pub fn mount(path: &Path, megabytes: u32, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Some(Tmpfs {
                path: path.to_owned(),
            });
        }
        assert!(
            std::env::var_os("ATTENDANSEE_REQUIRE_TMPFS").is_none(),
            "{test}: cannot mount a tmpfs (needs root) but ATTENDANSEE_REQUIRE_TMPFS is set"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: cannot mount a tmpfs here (needs root)"
        );
        None
    }

    /// Fills the file system up with a file named `filler`, to the last byte it takes.
    pub fn fill(&self) {
        let mut file = std::fs::File::create(self.path.join("filler")).unwrap();
        for chunk in [1 << 20, 4096, 512, 1] {
            let block = vec![0u8; chunk];
            while file.write_all(&block).is_ok() && file.flush().is_ok() {}
        }
        let _ = file.sync_all();
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The resident memory of a running process, in bytes (the pool's own reading of `VmRSS`).
pub fn resident_bytes(pid: u32) -> u64 {
    attendansee_pool::supervisor::resident_bytes(pid)
        .unwrap_or_else(|| panic!("cannot read the resident memory of process {pid}"))
}
