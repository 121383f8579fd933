//! An S3-compatible server for tests: moto in server mode (`moto[server]` from PyPI, installed into
//! `.local/venv` by `scripts/setup.sh --test`) on a free loopback port, with a bucket, the `AWS_…`
//! variables that point `object_store` at it, and a minimal client for looking at what it holds.
//! Killed on drop. Without moto the calling test says `SKIPPED …` and passes — except under
//! `ATTENDANSEE_REQUIRE_S3=1` (CI), where that is a failure.
//!
//! Self-contained (std only): the store's tests include it by path as well.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub port: u16,
    pub bucket: String,
    log: PathBuf,
}

/// The `moto_server` script of the project's venv, else one on `PATH`.
fn moto_server() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join("moto_server"))
        .find(|p| p.is_file())
}

impl S3Server {
    /// Starts moto with an empty bucket, or — moto not installed — says the test is skipped.
    pub fn start(test: &str) -> Option<S3Server> {
        let Some(program) = moto_server() else {
            assert!(
                std::env::var_os("ATTENDANSEE_REQUIRE_S3").is_none(),
                "{test}: moto_server is not installed (scripts/setup.sh --test) but ATTENDANSEE_REQUIRE_S3 is set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: moto_server is not installed (scripts/setup.sh --test installs it)"
            );
            return None;
        };
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start moto_server");
        let server = S3Server {
            child,
            port,
            bucket: "attendansee-test".into(),
            log,
        };
        server.wait_until_up();
        let (status, body) = server.raw("PUT", &format!("/{}", server.bucket));
        assert_eq!(status, 200, "create bucket: {body}");
        Some(server)
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not listen in 30 s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `--blob-url` of `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The variables that point `object_store` at this server. Timeouts are short, so that a
    /// paused server is noticed within seconds.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "attendansee-test-key".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "attendansee-test-secret".to_owned(),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_TIMEOUT", "2s".to_owned()),
            ("AWS_CONNECT_TIMEOUT", "1s".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but never answered,
    /// as with a hung or partitioned store; what it holds is kept for [`Self::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The keys in the bucket below `prefix` (unsigned: moto does not check signatures).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self.raw(
            "GET",
            &format!("/{}?list-type=2&max-keys=1000&prefix={prefix}", self.bucket),
        );
        assert_eq!(status, 200, "{body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect();
        keys.sort();
        keys
    }

    /// One plain HTTP/1.1 request to the server; the status and the body.
    pub fn raw(&self, method: &str, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // A paused process must be woken to die of SIGTERM; SIGKILL needs no waking.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
