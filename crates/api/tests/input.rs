//! Malformed and hostile input answers with the JSON error body, the right status and
//! error_type, and leaves nothing half-written. Also the HTTP conventions every route shares.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use attendansee_store::Role;
use common::app;

const COURSES: &str = "/api/attendance/courses/";

fn raw(
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn malformed_bodies_get_the_right_error_and_change_nothing() {
    let t = app().await;
    let (_, token) = t.user("alice", Role::Instructor).await;
    let course = t
        .create(
            COURSES,
            &token,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let json_type = Some("application/json");
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                json_type,
                "{\"name\": \"x\",",
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(Method::POST, COURSES, &token, json_type, "not json at all"),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(Method::POST, COURSES, &token, json_type, ""),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(Method::POST, COURSES, &token, json_type, "[1, 2]"),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                json_type,
                r#"{"name": 5, "code": "A"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(Method::POST, COURSES, &token, json_type, r#"{"name": "A"}"#),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                json_type,
                r#"{"name": "  ", "code": "A"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                json_type,
                r#"{"name": "A\u0000", "code": "A"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                Some("text/plain"),
                r#"{"name": "A", "code": "B"}"#,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                None,
                r#"{"name": "A", "code": "B"}"#,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                json_type,
                format!(r#"{{"name": "{}", "code": "A"}}"#, "n".repeat(201)),
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::POST,
                COURSES,
                &token,
                json_type,
                r#"{"name": "Dup", "code": "CS305"}"#,
            ),
            StatusCode::CONFLICT,
            "Conflict",
        ),
        (
            raw(
                Method::POST,
                "/api/attendance/students/",
                &token,
                json_type,
                r#"{"course": "one", "name": "A"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::POST,
                "/api/attendance/sessions/",
                &token,
                json_type,
                format!(r#"{{"course": {course}, "title": "A", "held_at": "yesterday"}}"#),
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::PATCH,
                &format!("{COURSES}{course}/"),
                &token,
                json_type,
                r#"{"code": ""}"#,
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::PUT,
                &format!("{COURSES}{course}/"),
                &token,
                json_type,
                r#"{"name": "only the name"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(Method::GET, &format!("{COURSES}abc/"), &token, None, ""),
            StatusCode::NOT_FOUND,
            "NotFound",
        ),
        (
            raw(Method::GET, &format!("{COURSES}?page=0"), &token, None, ""),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
        (
            raw(
                Method::GET,
                &format!("{COURSES}?page_size=many"),
                &token,
                None,
                "",
            ),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        ),
    ];
    for (request, status, error_type) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let response = t.send(request).await;
        let message = response.assert_error(status, error_type);
        assert!(!message.is_empty(), "{what}");
    }
    let courses = t.get(COURSES, &token).await;
    assert_eq!(
        courses.body["count"], 1,
        "a rejected request wrote something: {}",
        courses.body
    );
    assert_eq!(courses.body["results"][0]["name"], "Databases");
    assert_eq!(courses.body["results"][0]["code"], "CS305");
}

#[tokio::test]
async fn a_10_mb_body_is_refused_with_413_and_writes_nothing() {
    let t = app().await;
    let (_, token) = t.user("alice", Role::Instructor).await;
    let huge = format!(
        r#"{{"name": "{}", "code": "BIG"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let response = t
        .send(raw(
            Method::POST,
            COURSES,
            &token,
            Some("application/json"),
            huge,
        ))
        .await;
    response.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
    assert_eq!(t.get(COURSES, &token).await.body["count"], 0);
}

#[tokio::test]
async fn sql_metacharacters_and_unicode_are_stored_and_returned_verbatim() {
    let t = app().await;
    let (_, token) = t.user("alice", Role::Instructor).await;
    let names = [
        "Robert'); DROP TABLE students;--",
        "\" OR 1=1 --",
        "%_\\ LIKE wildcards",
        "Zoë Ångström-Łukasiewicz",
        "日本語の授業 🎓",
        "עברית / العربية",
    ];
    let course = t
        .create(COURSES, &token, json!({"name": names[0], "code": "'; --"}))
        .await;
    for name in names {
        let id = t
            .create(
                "/api/attendance/students/",
                &token,
                json!({"course": course, "name": name, "external_id": name}),
            )
            .await;
        let back = t
            .get(&format!("/api/attendance/students/{id}/"), &token)
            .await;
        assert_eq!(back.body["name"], name);
        assert_eq!(back.body["external_id"], name);
    }
    let listed = t
        .get(
            &format!("/api/attendance/students/?course={course}"),
            &token,
        )
        .await;
    assert_eq!(listed.body["count"], names.len());
    assert_eq!(
        t.get(&format!("{COURSES}{course}/"), &token).await.body["code"],
        "'; --"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json_errors() {
    let t = app().await;
    let (_, token) = t.user("alice", Role::Instructor).await;
    let r = t.get("/api/nothing/here/", &token).await;
    r.assert_error(StatusCode::NOT_FOUND, "NotFound");
    let r = t.get("/api/attendance/courses", &token).await;
    assert!(
        r.assert_error(StatusCode::NOT_FOUND, "NotFound")
            .contains("end with '/'")
    );
    let r = t.call(Method::DELETE, COURSES, Some(&token), None).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    assert!(r.headers.contains_key(header::ALLOW));
    let r = t.call(Method::PUT, "/api/health/", None, None).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_incoming_one_is_kept() {
    let t = app().await;
    let a = t.call(Method::GET, "/api/health/", None, None).await;
    let b = t.call(Method::GET, "/api/health/", None, None).await;
    assert_ne!(a.headers["x-request-id"], b.headers["x-request-id"]);
    let with_id = |id: &str| {
        Request::builder()
            .uri("/api/health/")
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        t.send(with_id("lb-1234.abc")).await.headers["x-request-id"],
        "lb-1234.abc"
    );
    let forged = t.send(with_id("x\" injected=1")).await;
    assert_ne!(forged.headers["x-request-id"], "x\" injected=1");
    let long = "a".repeat(65);
    assert_ne!(
        t.send(with_id(&long)).await.headers["x-request-id"],
        long.as_str()
    );
}

#[tokio::test]
async fn pagination_counts_and_links_pages() {
    let t = app().await;
    let (_, token) = t.user("alice", Role::Instructor).await;
    for i in 0..7 {
        t.create(
            COURSES,
            &token,
            json!({"name": format!("C{i}"), "code": format!("C{i}")}),
        )
        .await;
    }
    let first = t.get(&format!("{COURSES}?page_size=3"), &token).await;
    assert_eq!(first.body["count"], 7);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 3);
    assert_eq!(first.body["previous"], serde_json::Value::Null);
    let next = first.body["next"].as_str().unwrap().to_owned();
    let second = t.get(&next, &token).await;
    assert_eq!(second.body["results"][0]["name"], "C3");
    let last = t
        .get(&format!("{COURSES}?page=3&page_size=3"), &token)
        .await;
    assert_eq!(last.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(last.body["next"], serde_json::Value::Null);
    let beyond = t
        .get(&format!("{COURSES}?page=9&page_size=3"), &token)
        .await;
    assert_eq!(
        (
            beyond.status,
            beyond.body["results"].as_array().unwrap().len()
        ),
        (StatusCode::OK, 0)
    );
}

#[tokio::test]
async fn admins_manage_users_and_deactivation_or_new_password_revokes_tokens() {
    let t = app().await;
    let (admin, admin_token) = t.user("root", Role::Admin).await;
    let (bob, bob_token) = t.user("bob", Role::Instructor).await;
    let bad = [
        json!({"username": "bad name", "password": "horse battery staple"}),
        json!({"username": "ok", "password": "short"}),
        json!({"username": "ok", "password": "horse battery staple", "role": "superuser"}),
    ];
    for body in bad {
        t.post("/api/auth/users/", &admin_token, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "ValidationError");
    }
    let dup = json!({"username": "bob", "password": "horse battery staple"});
    t.post("/api/auth/users/", &admin_token, dup)
        .await
        .assert_error(StatusCode::CONFLICT, "Conflict");
    let own = t
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{}/", admin.id),
            Some(&admin_token),
            Some(json!({"active": false})),
        )
        .await;
    own.assert_error(StatusCode::BAD_REQUEST, "ValidationError");

    let reset = json!({"password": "a new password"});
    let r = t
        .call(
            Method::PATCH,
            &format!("/api/auth/users/{}/", bob.id),
            Some(&admin_token),
            Some(reset),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.get("/api/auth/me/", &bob_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    let login = json!({"username": "bob", "password": "a new password"});
    let fresh = t
        .call(Method::POST, "/api/auth/login/", None, Some(login))
        .await;
    let fresh_token = fresh.body["token"].as_str().unwrap().to_owned();
    let off = json!({"active": false});
    t.call(
        Method::PATCH,
        &format!("/api/auth/users/{}/", bob.id),
        Some(&admin_token),
        Some(off),
    )
    .await;
    t.get("/api/auth/me/", &fresh_token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
}

/// Every JSON body refuses a field it does not know (a client's typo, or `ttl_days` meant for
/// another API, must not be silently dropped), names the field, and writes nothing.
#[tokio::test]
async fn unknown_json_fields_are_refused_by_name_on_every_json_route() {
    let t = app().await;
    let (_, admin) = t.user("root", Role::Admin).await;
    let (alice_user, alice) = t.user("alice", Role::Instructor).await;
    let course = t
        .create(
            COURSES,
            &alice,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let student = t
        .create(
            "/api/attendance/students/",
            &alice,
            json!({"course": course, "name": "Ada"}),
        )
        .await;
    let session = t
        .create(
            "/api/attendance/sessions/",
            &alice,
            json!({"course": course, "title": "W1", "held_at": "2026-09-01T09:00:00Z"}),
        )
        .await;
    let held_at = "2026-09-02T09:00:00Z";
    let cases: Vec<(Method, String, Option<&str>, serde_json::Value)> = vec![
        (
            Method::POST,
            "/api/auth/login/".into(),
            None,
            json!({"username": "alice", "password": "horse battery staple"}),
        ),
        (
            Method::POST,
            "/api/auth/tokens/".into(),
            Some(&alice),
            json!({"label": "script"}),
        ),
        (
            Method::POST,
            "/api/auth/users/".into(),
            Some(&admin),
            json!({"username": "carol", "password": "horse battery staple"}),
        ),
        (
            Method::PATCH,
            format!("/api/auth/users/{}/", alice_user.id),
            Some(&admin),
            json!({"active": true}),
        ),
        (
            Method::POST,
            COURSES.into(),
            Some(&alice),
            json!({"name": "N", "code": "NEW"}),
        ),
        (
            Method::PUT,
            format!("{COURSES}{course}/"),
            Some(&alice),
            json!({"name": "N", "code": "C"}),
        ),
        (
            Method::PATCH,
            format!("{COURSES}{course}/"),
            Some(&alice),
            json!({"name": "N"}),
        ),
        (
            Method::POST,
            "/api/attendance/students/".into(),
            Some(&alice),
            json!({"course": course, "name": "Bo"}),
        ),
        (
            Method::PUT,
            format!("/api/attendance/students/{student}/"),
            Some(&alice),
            json!({"name": "Bo"}),
        ),
        (
            Method::PATCH,
            format!("/api/attendance/students/{student}/"),
            Some(&alice),
            json!({"name": "Bo"}),
        ),
        (
            Method::POST,
            "/api/attendance/sessions/".into(),
            Some(&alice),
            json!({"course": course, "title": "W2", "held_at": held_at}),
        ),
        (
            Method::PUT,
            format!("/api/attendance/sessions/{session}/"),
            Some(&alice),
            json!({"title": "W2", "held_at": held_at}),
        ),
        (
            Method::PATCH,
            format!("/api/attendance/sessions/{session}/"),
            Some(&alice),
            json!({"title": "W2"}),
        ),
        (
            Method::PUT,
            format!("/api/attendance/sessions/{session}/attendance/{student}/"),
            Some(&alice),
            json!({"status": "present"}),
        ),
        (
            Method::POST,
            "/api/attendance/face-crops/1/generate-embedding/".into(),
            Some(&alice),
            json!({}),
        ),
        (
            Method::POST,
            "/api/attendance/face-crops/generate-embeddings-batch/".into(),
            Some(&alice),
            json!({"face_crop_ids": [1]}),
        ),
        (
            Method::POST,
            "/api/attendance/face-crops/1/assign/".into(),
            Some(&alice),
            json!({"student_id": student}),
        ),
        (
            Method::POST,
            "/api/attendance/clusters/1/name/".into(),
            Some(&alice),
            json!({"student_id": student}),
        ),
        (
            Method::POST,
            "/api/attendance/clusters/merge/".into(),
            Some(&alice),
            json!({"cluster_ids": [1, 2]}),
        ),
    ];
    let tokens_before = t.get("/api/auth/tokens/", &alice).await.body;
    for (method, path, token, mut body) in cases {
        body["ttl_days"] = json!(30);
        let what = format!("{method} {path}");
        let r = t.call(method, &path, token, Some(body)).await;
        let message = r.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
        assert!(message.contains("ttl_days"), "{what}: {message}");
        assert_eq!(r.body["details"]["field"], "ttl_days", "{what}: {}", r.body);
    }
    // A nested object is held to the same rule.
    let nested = json!({"new_student": {"name": "Cy", "nickname": "C"}});
    let r = t
        .post("/api/attendance/clusters/1/name/", &alice, nested)
        .await;
    assert!(
        r.assert_error(StatusCode::BAD_REQUEST, "ValidationError")
            .contains("nickname")
    );

    assert_eq!(
        t.get(COURSES, &alice).await.body["results"][0]["name"],
        "Databases"
    );
    assert_eq!(t.get(COURSES, &alice).await.body["count"], 1);
    let students = t.get("/api/attendance/students/", &alice).await.body;
    assert_eq!(
        (
            students["count"].clone(),
            students["results"][0]["name"].clone()
        ),
        (json!(1), json!("Ada"))
    );
    let sessions = t.get("/api/attendance/sessions/", &alice).await.body;
    assert_eq!(
        (
            sessions["count"].clone(),
            sessions["results"][0]["title"].clone()
        ),
        (json!(1), json!("W1"))
    );
    assert_eq!(t.get("/api/auth/users/", &admin).await.body["count"], 2);
    assert_eq!(t.get("/api/auth/tokens/", &alice).await.body, tokens_before);
}

#[tokio::test]
async fn merging_a_cluster_with_itself_is_refused() {
    use attendansee_store::{ImageInsert, NewCrop, NewImage, Scope};
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let course = t
        .create(
            COURSES,
            &alice,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let session = t
        .create(
            "/api/attendance/sessions/",
            &alice,
            json!({"course": course, "title": "W1", "held_at": "2026-09-01T09:00:00Z"}),
        )
        .await;
    let image = NewImage {
        blob_key: "images/t".into(),
        sha256: "ab".repeat(32),
        original_name: None,
        width: 8,
        height: 8,
    };
    let ImageInsert::Stored(image) = t
        .store
        .add_session_image(Scope::All, session, &image)
        .await
        .unwrap()
    else {
        panic!("a fresh photo")
    };
    let face = NewCrop {
        bbox: [1.0, 1.0, 4.0, 4.0],
        landmarks: [[2.0, 2.0]; 5],
        score: 0.9,
        quality_size: 4.0,
        quality_blur: Some(1.0),
        crop_blob_key: None,
        embedding: Some(("mobilefacenet".into(), vec![0.6, 0.8])),
    };
    let crops = t
        .store
        .record_image_faces(image.id, &[face.clone(), face])
        .await
        .unwrap();
    let clusters = t
        .store
        .add_to_clusters(
            course,
            "mobilefacenet",
            &[],
            &[vec![crops[0]], vec![crops[1]]],
        )
        .await
        .unwrap();
    let (a, b) = (clusters[0], clusters[1]);
    for ids in [json!([a, a]), json!([a, b, a]), json!([b, b, b])] {
        let r = t
            .post(
                "/api/attendance/clusters/merge/",
                &alice,
                json!({"cluster_ids": ids}),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
        assert_eq!(r.body["details"]["field"], "cluster_ids", "{}", r.body);
    }
    // Both clusters are untouched, and a proper merge still works.
    for id in [a, b] {
        let cluster = t
            .get(&format!("/api/attendance/clusters/{id}/"), &alice)
            .await;
        assert_eq!(cluster.status, StatusCode::OK, "{}", cluster.body);
    }
    let merged = t
        .post(
            "/api/attendance/clusters/merge/",
            &alice,
            json!({"cluster_ids": [a, b]}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
}

/// `held_at` is refused unless it has an RFC 3339 form that sorts as text: years 1970–9999, no
/// leap second; what is accepted is answered in RFC 3339 UTC.
#[tokio::test]
async fn held_at_outside_sane_years_or_on_a_leap_second_is_refused() {
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let course = t
        .create(
            COURSES,
            &alice,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let sessions = "/api/attendance/sessions/";
    let session = t
        .create(
            sessions,
            &alice,
            json!({"course": course, "title": "W1", "held_at": "2026-09-01T09:00:00Z"}),
        )
        .await;
    let bad = [
        "-0001-01-01T00:00:00Z",
        "0000-06-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "+10000-01-01T00:00:00Z",
        "2026-06-30T23:59:60Z",
        "2016-12-31T23:59:60.5Z",
        "9999-12-31T23:00:00-05:00",
    ];
    for held_at in bad {
        let create = json!({"course": course, "title": "W2", "held_at": held_at});
        let r = t.post(sessions, &alice, create).await;
        let message = r.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
        assert!(message.contains("held_at"), "{held_at}: {message}");
        let r = t
            .call(
                Method::PATCH,
                &format!("{sessions}{session}/"),
                Some(&alice),
                Some(json!({"held_at": held_at})),
            )
            .await;
        let message = r.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
        assert!(message.contains("held_at"), "{held_at}: {message}");
    }
    let listed = t.get(sessions, &alice).await.body;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["held_at"], "2026-09-01T09:00:00Z");

    let good = [
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
        ("2026-11-25T10:00:00+01:00", "2026-11-25T09:00:00Z"),
        ("2026-11-25T09:00:00.250Z", "2026-11-25T09:00:00.250Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
    ];
    for (held_at, answered) in good {
        let create = json!({"course": course, "title": "W", "held_at": held_at});
        let r = t.post(sessions, &alice, create).await;
        assert_eq!(r.status, StatusCode::CREATED, "{held_at}: {}", r.body);
        assert_eq!(r.body["held_at"], answered);
        let parsed = chrono::DateTime::parse_from_rfc3339(r.body["held_at"].as_str().unwrap());
        assert!(parsed.is_ok(), "{}", r.body);
    }
}

/// serde fills a struct from an array of its fields in order; a body (or a nested object) sent as
/// an array is refused instead of being read positionally.
#[tokio::test]
async fn bodies_and_nested_objects_sent_as_arrays_are_refused() {
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let course = t
        .create(
            COURSES,
            &alice,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let cases = [
        (
            Method::PATCH,
            format!("{COURSES}{course}/"),
            json!([null, null]),
        ),
        (
            Method::PATCH,
            format!("{COURSES}{course}/"),
            json!(["Renamed", "X1"]),
        ),
        (
            Method::PUT,
            format!("{COURSES}{course}/"),
            json!(["Renamed", "X1"]),
        ),
        (Method::POST, COURSES.to_owned(), json!(["Other", "X2"])),
        (
            Method::POST,
            "/api/attendance/clusters/1/name/".to_owned(),
            json!({"new_student": ["Cy", null]}),
        ),
    ];
    for (method, path, body) in cases {
        let what = format!("{method} {path} {body}");
        let r = t.call(method, &path, Some(&alice), Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.body["error_type"], "ValidationError", "{what}");
    }
    let courses = t.get(COURSES, &alice).await.body;
    assert_eq!(courses["count"], 1);
    assert_eq!(courses["results"][0]["name"], "Databases");
    // The object form still works.
    let r = t
        .call(
            Method::PATCH,
            &format!("{COURSES}{course}/"),
            Some(&alice),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["name"].clone()),
        (StatusCode::OK, json!("Renamed"))
    );
}

/// The document calls `page` an int32 of at least 1: what lies outside is refused, not served.
#[tokio::test]
async fn page_numbers_beyond_int32_are_refused() {
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    t.get(&format!("{COURSES}?page=2147483648"), &alice)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "ValidationError");
    let r = t.get(&format!("{COURSES}?page=2147483647"), &alice).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// `include_vectors` is a boolean form field: anything but `true`/`false` is refused by name
/// rather than read as false.
#[tokio::test]
async fn embed_refuses_an_include_vectors_that_is_not_a_boolean() {
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\
         not really a png\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"include_vectors\"\r\n\r\n\
         {{}}\r\n--{boundary}--\r\n"
    );
    let r = t
        .send(raw(
            Method::POST,
            "/api/attendance/embed/",
            &alice,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
        ))
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "ValidationError");
    assert_eq!(r.body["details"]["field"], "include_vectors", "{}", r.body);
}

/// `nosniff` and `no-referrer` on every answer, `no-store` on every answer but the UI's static
/// files (which keep their own `no-cache`): API data, errors, photos, face crops and CSV exports.
#[tokio::test]
async fn every_answer_carries_nosniff_no_referrer_and_api_answers_no_store() {
    use attendansee_store::{ImageInsert, NewCrop, NewImage, Scope};
    use axum::body::Bytes;
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let course = t
        .create(
            COURSES,
            &alice,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let session = t
        .create(
            "/api/attendance/sessions/",
            &alice,
            json!({"course": course, "title": "W1", "held_at": "2026-09-01T09:00:00Z"}),
        )
        .await;
    t.blobs
        .put("images/h", Bytes::from_static(b"\x89PNG fake"))
        .await
        .unwrap();
    t.blobs
        .put("crops/h.jpg", Bytes::from_static(b"\xff\xd8\xff fake"))
        .await
        .unwrap();
    let image = NewImage {
        blob_key: "images/h".into(),
        sha256: "cd".repeat(32),
        original_name: None,
        width: 8,
        height: 8,
    };
    let ImageInsert::Stored(image) = t
        .store
        .add_session_image(Scope::All, session, &image)
        .await
        .unwrap()
    else {
        panic!("a fresh photo")
    };
    let face = NewCrop {
        bbox: [1.0, 1.0, 4.0, 4.0],
        landmarks: [[2.0, 2.0]; 5],
        score: 0.9,
        quality_size: 4.0,
        quality_blur: Some(1.0),
        crop_blob_key: Some("crops/h.jpg".into()),
        embedding: None,
    };
    let crop = t.store.record_image_faces(image.id, &[face]).await.unwrap()[0];

    let authorised = [
        (COURSES.to_owned(), StatusCode::OK),
        (
            format!("/api/attendance/images/{}/file/", image.id),
            StatusCode::OK,
        ),
        (
            format!("/api/attendance/images/{}/preview/", image.id),
            StatusCode::OK,
        ),
        (
            format!("/api/attendance/face-crops/{crop}/image/"),
            StatusCode::OK,
        ),
        (
            format!("/api/attendance/sessions/{session}/attendance/csv/"),
            StatusCode::OK,
        ),
        (
            format!("/api/attendance/courses/{course}/attendance/csv/"),
            StatusCode::OK,
        ),
        (format!("{COURSES}99999/"), StatusCode::NOT_FOUND),
        ("/api/no/such/route/".to_owned(), StatusCode::NOT_FOUND),
    ];
    let mut answers = Vec::new();
    for (path, status) in authorised {
        answers.push((path.clone(), status, t.get(&path, &alice).await));
    }
    for (method, path, status) in [
        (Method::GET, "/api/auth/me/", StatusCode::UNAUTHORIZED),
        (Method::GET, "/api/health/", StatusCode::OK),
        (Method::GET, "/metrics", StatusCode::OK),
        (
            Method::DELETE,
            "/api/health/",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        answers.push((
            path.to_owned(),
            status,
            t.call(method, path, None, None).await,
        ));
    }
    for (path, status, r) in &answers {
        assert_eq!(r.status, *status, "{path}: {}", r.body);
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
    }
    for path in ["/", "/ui/main.js", "/ui/page-review.js", "/ui/app.css"] {
        let r = t.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(r.headers["cache-control"], "no-cache", "{path}");
    }
}
