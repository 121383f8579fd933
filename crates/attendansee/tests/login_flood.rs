//! The login flood of the hardening review, through the real server: 256 wrong-password logins,
//! 128 at a time, with no token. Password checks run a core's worth at a time, so the server's
//! memory stays bounded even with throttling turned off; with the default limits almost every
//! guess is refused before any check, and the owner logs in from another address all along.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, create_user, resident_bytes};

/// The server's resident memory must stay below this under the flood (the review saw 7.6 GB).
const RSS_LIMIT_BYTES: u64 = 300 * 1024 * 1024;

/// A login from `source` (a loopback address); returns the status and the headers and body.
fn login_from(addr: &str, source: &str, username: &str, password: &str) -> (u16, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    let target: SocketAddr = addr.parse().unwrap();
    socket.connect(&target.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = format!(r#"{{"username": "{username}", "password": "{password}"}}"#);
    let request = format!(
        "POST /api/auth/login/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// 256 wrong logins for `admin` from 127.0.0.1, 128 at a time, while the server's resident
/// memory is sampled; returns the statuses, the peak memory and the memory afterwards.
fn flood(server: &Server) -> (Vec<u16>, u64, u64) {
    let pid = server.child.id();
    let before = resident_bytes(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut statuses = Vec::new();
    for _round in 0..2 {
        let round: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..128)
                .map(|_| {
                    scope.spawn(|| {
                        login_from(&server.addr, "127.0.0.1", "admin", "a wrong password").0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        statuses.extend(round);
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let after = resident_bytes(pid);
    eprintln!("server RSS before the flood: {} MB", before / 1_000_000);
    (statuses, peak.load(Ordering::Relaxed), after)
}

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = create_user(&data, "admin", "horse battery staple", true);
    assert!(ok, "{out}");
    let mut args = vec!["--workers", "1"];
    args.extend_from_slice(extra);
    let server = Server::start(&data, &args).unwrap();
    (dir, server)
}

#[test]
fn a_login_flood_with_throttling_off_keeps_memory_bounded() {
    // Throttling off: every guess reaches a password check, as with many addresses and names.
    let (_dir, server) = start(&[
        "--login-failures-per-user",
        "100000",
        "--login-failures-per-address",
        "100000",
    ]);
    let started = Instant::now();
    let (statuses, peak, after) = flood(&server);
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let overloaded = statuses.iter().filter(|s| **s == 503).count();
    eprintln!(
        "flood, throttling off: {unauthorized} × 401, {overloaded} × 503 in {:?}; \
         server RSS peak {} MB, {} MB after",
        started.elapsed(),
        peak / 1_000_000,
        after / 1_000_000
    );
    assert_eq!(unauthorized + overloaded, 256, "{statuses:?}");
    assert!(
        peak < RSS_LIMIT_BYTES,
        "the server reached {} MB under the login flood",
        peak / 1_000_000
    );
}

#[test]
fn a_login_flood_is_throttled_and_the_owner_gets_in_from_another_address_meanwhile() {
    let (_dir, server) = start(&[]);
    let (statuses, peak, after) = flood(&server);
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    eprintln!(
        "flood, default limits: {unauthorized} × 401, {throttled} × 429; server RSS peak {} MB, {} MB after",
        peak / 1_000_000,
        after / 1_000_000
    );
    assert_eq!(unauthorized + throttled, 256, "{statuses:?}");
    assert!(
        unauthorized <= 6,
        "only the free failures are checked: {unauthorized}"
    );
    // The owner, from another address, gets in at once — while the attacker keeps guessing.
    let attacking = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while attacking.load(Ordering::Relaxed) {
                let (status, _) = login_from(&server.addr, "127.0.0.1", "admin", "guess");
                assert!(status == 429 || status == 401, "{status}");
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        for _ in 0..5 {
            let (status, response) =
                login_from(&server.addr, "127.0.0.2", "admin", "horse battery staple");
            assert_eq!(status, 200, "{response}");
            std::thread::sleep(Duration::from_millis(200));
        }
        attacking.store(false, Ordering::Relaxed);
    });
    // The attacker is still refused.
    let (status, response) = login_from(&server.addr, "127.0.0.1", "admin", "horse battery staple");
    assert_eq!(status, 429, "{response}");
    assert!(
        response.contains("TooManyRequests") && response.contains("retry-after"),
        "{response}"
    );
}
