//! The real binary on PostgreSQL: `--database-url` chooses it for `serve` and `users`, nodes
//! share it without the data-directory lock, and a database that cannot be reached stops `serve`
//! at once with a clear message and its own exit code.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use attendansee_store::testing::TestDatabase;
use common::{Server, attendansee};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn postgres(test: &str) -> Option<TestDatabase> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(TestDatabase::postgres(test))
}

/// `users create` against `url`.
fn create_user(data: &std::path::Path, url: &str, username: &str, admin: bool) {
    let env = [("ATTENDANSEE_DATABASE_URL", url)];
    let (ok, out) = common::create_user_with(data, username, "correct horse", admin, &env);
    assert!(ok, "{out}");
}

#[test]
fn an_unreachable_database_stops_serve_at_once_with_the_url_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = closed_port();
    let started = Instant::now();
    let out = attendansee(&data)
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(format!(
            "postgres://attendansee:s3cret@127.0.0.1:{port}/nowhere"
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot open the database postgres://attendansee:***@127.0.0.1:{port}/nowhere"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // What failed, in the operating system's words.
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
}

#[test]
fn an_unsupported_database_url_is_refused_by_every_command_that_opens_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for command in [&["serve", "--bind", "127.0.0.1:0"][..], &["users", "list"]] {
        let out = attendansee(&data)
            .env("ATTENDANSEE_DATABASE_URL", "mysql://u:pw@127.0.0.1/db")
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains("unsupported database URL mysql://u:***@127.0.0.1/db"),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn two_nodes_on_one_postgresql_database_share_users_tokens_and_courses() {
    let Some(database) =
        postgres("two_nodes_on_one_postgresql_database_share_users_tokens_and_courses")
    else {
        return;
    };
    let url = database.url();
    let dir = tempfile::tempdir().unwrap();
    // One data directory for both: the one-server lock is SQLite's only.
    let data = dir.path().join("data");
    create_user(&data, &url, "admin", true);

    let a = Server::start(&data, &["--database-url", &url]).unwrap();
    let b = Server::start(&data, &["--database-url", &url]).unwrap();
    assert!(!a.log().contains("s3cret"));
    let token = a.login("admin", "correct horse");
    let (status, body) = a.request(
        "POST",
        "/api/attendance/courses/",
        Some(&token),
        Some(r#"{"name": "Databases", "code": "CS305"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let course = json(&body)["id"].as_i64().unwrap();
    // The token issued by A and the course written through A, read through B.
    let (status, body) = b.request(
        "GET",
        &format!("/api/attendance/courses/{course}/"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["code"], "CS305");
    let (status, body) = b.request("GET", "/api/health/", None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["database"], "ok");

    // `users list` through the same URL sees the account.
    let out = attendansee(&data)
        .args(["--database-url", &url, "users", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
