//! Uploads through the real server: memory stays flat however large and concurrent they are
//! (bodies go to temporary files, not to memory), and nothing is left in the temporary directory.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::pool::PoolServer;
use common::{resident_bytes, shared};

/// `len` bytes that no decoder accepts and no other call produces (xorshift from `seed`).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn files_below(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_below(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

const MB: u64 = 1024 * 1024;

#[test]
fn eight_concurrent_31_mb_uploads_keep_the_server_memory_flat() {
    let Some(shared) = shared("eight_concurrent_31_mb_uploads_keep_the_server_memory_flat") else {
        return;
    };
    let p = Arc::new(PoolServer::start_real(
        &shared.join("models"),
        &["--workers", "2"],
    ));
    let session = p.session();
    let pid = p.server.child.id();
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| noise(31 * MB as usize, i + 1)).collect();
    // Settle: the first requests allocate the server's pools and caches.
    std::thread::sleep(Duration::from_millis(500));
    let before = resident_bytes(pid);

    let (peak, stop) = (
        Arc::new(AtomicU64::new(before)),
        Arc::new(AtomicBool::new(false)),
    );
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let uploads: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let p = p.clone();
            std::thread::spawn(move || p.upload(session, &[(&format!("noise{i}.jpg"), &body)]))
        })
        .collect();
    let replies: Vec<_> = uploads.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let after = resident_bytes(pid);
    let peak = peak.load(Ordering::Relaxed).max(after);

    println!(
        "server RSS for 8 concurrent 31 MiB uploads: before {} MiB, peak {} MiB (+{}), after {} MiB (+{})",
        before / MB,
        peak / MB,
        (peak - before) / MB,
        after / MB,
        after.saturating_sub(before) / MB
    );
    // Every upload went through the whole path: streamed, validated by a worker, refused.
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["failed"], 1, "{body}");
        assert_eq!(
            body["results"][0]["error_type"], "UnsupportedImage",
            "{body}"
        );
    }
    assert!(
        peak - before < 150 * MB,
        "peak RSS grew by {} MiB",
        (peak - before) / MB
    );
    // No upload is left behind in the temporary directory, nor stored.
    let data = p.data_dir();
    assert_eq!(files_below(&data.join("tmp")), Vec::<String>::new());
    assert_eq!(files_below(&data.join("blobs")), Vec::<String>::new());
}

#[test]
fn serve_sweeps_orphan_blobs_and_empties_the_upload_directory_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = common::create_user(&data, "admin", "horse battery staple", true);
    assert!(ok, "{out}");
    // Left by a stop between a deletion's commit and its blobs' removal, and mid-upload.
    let orphan = data.join("blobs/images/9/deadbeef");
    let partial = data.join("tmp/upload-leftover");
    for file in [&orphan, &partial] {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, b"bytes").unwrap();
    }
    let server = common::Server::start(&data, &[]).unwrap();
    assert!(!orphan.exists(), "{}", server.log());
    assert!(!partial.exists());
    assert!(data.join("tmp").is_dir());
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("removed orphan blobs"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("blobs=1"), "{line}");
}
