//! Login under attack, and the rules for usernames and passwords: failed logins make a username
//! from that address, and the address, wait (429 `TooManyRequests` with `Retry-After`, doubling);
//! refused tries cost no password check; the account's owner gets in from elsewhere meanwhile.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use attendansee_api::Settings;
use attendansee_api::login_limits::LoginLimits;
use attendansee_store::Role;
use common::{Response, TestApp, app, app_with};

/// A login from this client address.
async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> Response {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .unwrap();
    let peer: SocketAddr = format!("{address}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app.send(request).await
}

fn quick_limits() -> Settings {
    Settings {
        login_limits: LoginLimits {
            failures_per_user: 3,
            failures_per_address: 6,
            first_wait: Duration::from_millis(400),
            ..LoginLimits::default()
        },
        ..Settings::default()
    }
}

fn retry_after(response: &Response) -> u64 {
    response.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_attackers_failures_make_the_attacker_wait_and_never_lock_the_owner_out() {
    let app = app_with(quick_limits()).await;
    app.user("alice", Role::Instructor).await;
    for _ in 0..3 {
        login_from(&app, "127.0.0.9", "alice", "wrong password")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    // The attacker is refused without a password check, even with the right password...
    let refused = login_from(&app, "127.0.0.9", "alice", "horse battery staple").await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    assert!(retry_after(&refused) >= 1);
    // ...while the owner, from another address, gets in at once, again and again, whatever the
    // attacker keeps trying each time its wait runs out.
    for _ in 0..3 {
        let alice = login_from(&app, "127.0.0.2", "alice", "horse battery staple").await;
        assert_eq!(alice.status, StatusCode::OK, "{}", alice.body);
        tokio::time::sleep(Duration::from_millis(450)).await;
        login_from(&app, "127.0.0.9", "alice", "another guess").await;
    }
    // Another user is not affected.
    app.user("bob", Role::Instructor).await;
    let bob = login_from(&app, "127.0.0.2", "bob", "horse battery staple").await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);
}

#[tokio::test]
async fn the_wait_doubles_with_every_further_failure_and_then_the_right_password_works() {
    let mut settings = quick_limits();
    settings.login_limits.first_wait = Duration::from_millis(600);
    let app = app_with(settings).await;
    app.user("alice", Role::Instructor).await;
    for _ in 0..3 {
        login_from(&app, "127.0.0.9", "alice", "wrong").await;
    }
    tokio::time::sleep(Duration::from_millis(650)).await;
    login_from(&app, "127.0.0.9", "alice", "wrong")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    // Now 1200 ms: still refused after 700 ms.
    tokio::time::sleep(Duration::from_millis(700)).await;
    login_from(&app, "127.0.0.9", "alice", "horse battery staple")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ok = login_from(&app, "127.0.0.9", "alice", "horse battery staple").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // The success cleared alice's records: a typo now is an ordinary 401.
    login_from(&app, "127.0.0.9", "alice", "typo")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
}

#[tokio::test]
async fn absurdly_long_usernames_and_passwords_are_refused_without_a_check_or_a_record() {
    let app = app_with(quick_limits()).await;
    app.user("alice", Role::Instructor).await;
    let long_name = "x".repeat(100_000);
    let long_password = "y".repeat(100_000);
    for _ in 0..10 {
        login_from(&app, "127.0.0.9", &long_name, "wrong")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        login_from(&app, "127.0.0.9", "alice", &long_password)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    // None of them counted against the address or alice.
    let ok = login_from(&app, "127.0.0.9", "alice", "horse battery staple").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn an_address_guessing_many_usernames_waits_too() {
    let app = app_with(quick_limits()).await;
    app.user("carol", Role::Instructor).await;
    for i in 0..6 {
        login_from(&app, "127.0.0.9", &format!("nobody{i}"), "wrong")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    login_from(&app, "127.0.0.9", "carol", "horse battery staple")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    let elsewhere = login_from(&app, "127.0.0.2", "carol", "horse battery staple").await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
}

#[tokio::test]
async fn concurrent_guesses_cannot_slip_past_the_limit() {
    let app = app_with(quick_limits()).await;
    app.user("dave", Role::Instructor).await;
    let guesses = (0..24).map(|_| login_from(&app, "127.0.0.9", "dave", "wrong"));
    let answers = futures::future::join_all(guesses).await;
    let unauthorized = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (unauthorized, throttled),
        (3, 21),
        "only the free failures reach a password check"
    );
}

#[tokio::test]
async fn usernames_are_case_insensitive_and_nfkc_normalized() {
    let app = app().await;
    let (_, admin) = app.user("admin", Role::Admin).await;
    let created = app
        .post(
            "/api/auth/users/",
            &admin,
            json!({"username": "Inst1", "password": "a good long password"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["username"], "inst1");
    for look_alike in ["inst1", "INST1", "ｉｎｓｔ１"] {
        app.post(
            "/api/auth/users/",
            &admin,
            json!({"username": look_alike, "password": "a good long password"}),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "Conflict");
    }
    let login = login_from(&app, "127.0.0.2", "INST1", "a good long password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["username"], "inst1");
}

#[tokio::test]
async fn weak_passwords_are_refused() {
    let app = app().await;
    let (_, admin) = app.user("admin", Role::Admin).await;
    for (username, password) in [
        ("erin", "password123"),
        ("erin", "PASSWORD123"),
        ("erin", "12345678"),
        ("erin", "qwertyuiop"),
        ("frank.smith", "Frank.Smith"),
        ("erin", "          "),
        ("erin", "short"),
    ] {
        let message = app
            .post(
                "/api/auth/users/",
                &admin,
                json!({"username": username, "password": password}),
            )
            .await
            .assert_error(StatusCode::BAD_REQUEST, "ValidationError");
        assert!(
            message.contains("password"),
            "{username}/{password}: {message}"
        );
    }
    // Changing a password follows the same rules.
    let user: Value = app
        .post(
            "/api/auth/users/",
            &admin,
            json!({"username": "erin", "password": "a good long password"}),
        )
        .await
        .body;
    let id = user["id"].as_i64().unwrap();
    let response = app
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{id}/"),
            Some(&admin),
            Some(json!({"password": "erin"})),
        )
        .await;
    response.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
    let response = app
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{id}/"),
            Some(&admin),
            Some(json!({"password": "iloveyou"})),
        )
        .await;
    response.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
}
