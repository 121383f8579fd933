//! The real binary as a process: persistence across restarts, one server per data directory,
//! graceful shutdown on signals, JSON logs with request ids, and the `users` command.

mod common;

use common::{Server, attendansee, create_user};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_restart_on_the_same_data_directory_keeps_users_tokens_and_objects() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = create_user(&data, "admin", "correct horse", true);
    assert!(ok, "{out}");

    let mut server = Server::start(&data, &[]).unwrap();
    let token = server.login("admin", "correct horse");
    let (status, body) = server.request(
        "POST",
        "/api/attendance/courses/",
        Some(&token),
        Some(r#"{"name": "Databases", "code": "CS305"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let course = json(&body)["id"].as_i64().unwrap();
    server.signal("TERM");
    assert!(server.wait(20).success(), "{}", server.log());
    assert!(
        server.log().contains("SIGTERM received"),
        "{}",
        server.log()
    );

    let mut server = Server::start(&data, &[]).unwrap();
    let (status, body) = server.request(
        "GET",
        &format!("/api/attendance/courses/{course}/"),
        Some(&token),
        None,
    );
    assert_eq!(
        status, 200,
        "the old token or the course did not survive: {body}"
    );
    assert_eq!(json(&body)["code"], "CS305");
    server.signal("INT");
    assert!(server.wait(20).success(), "{}", server.log());
    assert!(server.log().contains("SIGINT received"), "{}", server.log());
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start(&data, &[]).unwrap();
    let started = std::time::Instant::now();
    let log = Server::start(&data, &[])
        .err()
        .expect("second server must not start");
    assert!(started.elapsed().as_secs() < 10);
    assert!(log.contains("already in use"), "{log}");
    assert!(
        log.contains(&first.child.id().to_string()),
        "the message should name the running server's pid: {log}"
    );
    let (status, body) = first.request("GET", "/api/health/", None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["database"], "ok");
    // The local blob directory is the blob store when no --blob-url is given.
    assert_eq!(json(&body)["blob_store"], "ok");
    assert!(json(&body).get("problems").is_none(), "{body}");
}

#[test]
fn json_logs_carry_the_request_id_on_every_line_of_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--log-format", "json"]).unwrap();
    let headers = vec![("X-Request-Id".to_owned(), "trace-me-42".to_owned())];
    let (status, body) = common::http(
        &server.addr,
        "GET",
        "/api/attendance/courses/",
        &headers,
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(json(&body)["request_id"], "trace-me-42");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let lines: Vec<serde_json::Value> = server
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_request: Vec<_> = lines
        .iter()
        .filter(|l| l["span"]["id"] == "trace-me-42")
        .collect();
    assert!(
        of_request.len() >= 2,
        "expected the error and the 'answered' line: {lines:?}"
    );
    assert!(
        of_request
            .iter()
            .any(|l| l["fields"]["error_type"] == "Unauthorized"),
        "{of_request:?}"
    );
}

#[test]
fn users_command_creates_accounts_refuses_bad_ones_and_issues_working_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = create_user(&data, "ada", "short", false);
    assert!(!ok && out.contains("at least 8"), "{out}");
    let (ok, out) = create_user(&data, "ada", "long enough pw", false);
    assert!(ok && out.contains("instructor 'ada'"), "{out}");
    let (ok, out) = create_user(&data, "ada", "another one!", false);
    assert!(!ok && out.contains("already exists"), "{out}");
    let out = attendansee(&data)
        .args(["users", "create", "--username", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));

    let server = Server::start(&data, &[]).unwrap();
    let out = attendansee(&data)
        .args(["users", "token", "--username", "ada", "--label", "script"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (status, body) = server.request("GET", "/api/auth/me/", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["username"], "ada");
    let out = attendansee(&data)
        .args(["users", "token", "--username", "nobody"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no user named")
    );
}

#[test]
fn config_file_environment_and_flags_combine_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("attendansee.toml");
    std::fs::write(
        &config,
        "data_dir = \"from-file\"\nbind = \"127.0.0.1:1\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    // The file's data_dir applies; the file's bind is overridden by the environment; the
    // file's log format is overridden by the flag.
    let mut command = std::process::Command::new(common::BIN);
    command
        .args([
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "text",
            "serve",
        ])
        .env("ATTENDANSEE_BIND", "127.0.0.1:0");
    let mut server = Server::spawn(command).unwrap();
    assert!(
        server.addr.starts_with("127.0.0.1:") && server.addr != "127.0.0.1:1",
        "{}",
        server.addr
    );
    server.signal("TERM");
    assert!(server.wait(20).success(), "{}", server.log());
    assert!(
        !server.log().trim_start().starts_with('{'),
        "the --log-format flag should win over the file"
    );
    assert!(
        dir.path()
            .join("from-file")
            .join(attendansee_store::DB_FILE_NAME)
            .exists()
    );
}

/// A request target over 8 KiB answers 414 and headers over 16 KiB answer 431, both with the JSON
/// error body and the usual headers (hyper's own refusals, much further out, have no body).
#[test]
fn oversized_uris_and_headers_answer_the_json_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--workers", "1"]).unwrap();
    let long_query = format!("/api/health/?pad={}", "a".repeat(9 * 1024));
    let big_header = vec![("X-Padding".to_owned(), "b".repeat(17 * 1024))];
    let cases = [
        (long_query.as_str(), vec![], 414),
        ("/api/health/", big_header, 431),
    ];
    for (path, headers, status) in cases {
        let reply = common::request(&server.addr, "GET", path, &headers, "", b"");
        assert_eq!(reply.status, status, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["error_type"], "ValidationError", "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("at most"),
            "{body}"
        );
        assert_eq!(reply.header("x-request-id").unwrap(), body["request_id"]);
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    }
    // Just inside both limits is served.
    let fits = format!("/api/health/?pad={}", "a".repeat(7 * 1024));
    let header = vec![("X-Padding".to_owned(), "b".repeat(14 * 1024))];
    let reply = common::request(&server.addr, "GET", &fits, &header, "", b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
}
