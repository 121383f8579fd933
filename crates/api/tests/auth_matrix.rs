//! Authentication and ownership over every route. The routes come from the served OpenAPI
//! document, so a new route is covered (and must be listed below) the moment it exists.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use attendansee_store::{ImageInsert, NewCrop, NewImage, NewReference, Role, Scope};
use axum::body::Bytes;
use common::{TestApp, app};

const PUBLIC: [(&str, &str); 3] = [
    ("POST", "/api/auth/login/"),
    ("GET", "/api/health/"),
    ("GET", "/metrics"),
];

/// Every (method, path template) the OpenAPI document lists.
async fn operations(t: &TestApp, token: &str) -> BTreeSet<(String, String)> {
    let schema = t.get("/api/schema/", token).await;
    assert_eq!(schema.status, StatusCode::OK);
    let mut ops = BTreeSet::new();
    for (path, item) in schema.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

struct World {
    t: TestApp,
    admin: String,
    alice: String,
    bob: String,
    expired: String,
    revoked: String,
    deactivated: String,
    course: i64,
    student: i64,
    session: i64,
    alice_token_id: i64,
    bob_id: i64,
    image: i64,
    crop: i64,
    job: i64,
    reference: i64,
    cluster: i64,
}

/// A face vector orthogonal to the reference face: never matched to the student.
const STRANGER: [f32; 2] = [0.8, -0.6];

fn face(vector: [f32; 2]) -> NewCrop {
    NewCrop {
        bbox: [1.0, 1.0, 4.0, 4.0],
        landmarks: [[2.0, 2.0]; 5],
        score: 0.9,
        quality_size: 4.0,
        quality_blur: Some(1.0),
        crop_blob_key: Some("crops/t.jpg".into()),
        embedding: Some(("mobilefacenet".into(), vector.to_vec())),
    }
}

/// A processed photo of the session with these faces; returns its id and their crop ids.
async fn photo_with_faces(t: &TestApp, session: i64, faces: &[NewCrop]) -> (i64, Vec<i64>) {
    let sha256 = attendansee_store::credentials::hex(&rand_bytes());
    let new_image = NewImage {
        blob_key: "images/t".into(),
        sha256,
        original_name: None,
        width: 8,
        height: 8,
    };
    let ImageInsert::Stored(image) = t
        .store
        .add_session_image(Scope::All, session, &new_image)
        .await
        .unwrap()
    else {
        panic!("fresh photo")
    };
    let crops = t.store.record_image_faces(image.id, faces).await.unwrap();
    (image.id, crops)
}

fn rand_bytes() -> [u8; 32] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    bytes
}

/// A reference photo of the student whose face has this vector.
async fn reference_of(t: &TestApp, student: i64, vector: [f32; 2]) -> i64 {
    let sha256 = attendansee_store::credentials::hex(&rand_bytes());
    // Its own blob keys: removing the reference deletes them.
    let reference = NewReference {
        blob_key: format!("references/{sha256}"),
        width: 8,
        height: 8,
        crop: NewCrop {
            crop_blob_key: Some(format!("references/{sha256}.jpg")),
            ..face(vector)
        },
        sha256,
    };
    t.store
        .add_reference_photo(Scope::All, student, &reference)
        .await
        .unwrap()
        .id
}

/// Two single-face clusters of unknown faces; returns their ids.
async fn two_clusters(t: &TestApp, course: i64, session: i64) -> (i64, i64) {
    let (_, faces) = photo_with_faces(t, session, &[face(STRANGER), face(STRANGER)]).await;
    let ids = t
        .store
        .add_to_clusters(
            course,
            "mobilefacenet",
            &[],
            &[vec![faces[0]], vec![faces[1]]],
        )
        .await
        .unwrap();
    (ids[0], ids[1])
}

async fn world() -> World {
    let t = app().await;
    let (_, admin) = t.user("root", Role::Admin).await;
    let (alice_user, alice) = t.user("alice", Role::Instructor).await;
    let (bob_user, bob) = t.user("bob", Role::Instructor).await;
    let expired = t
        .store
        .issue_token(alice_user.id, "old", chrono::Duration::seconds(-1))
        .await
        .unwrap();
    let revoked = t
        .store
        .issue_token(alice_user.id, "gone", chrono::Duration::days(1))
        .await
        .unwrap();
    t.store
        .revoke_token(alice_user.id, revoked.token.id)
        .await
        .unwrap();
    let (carol, deactivated) = t.user("carol", Role::Instructor).await;
    let update = attendansee_store::UserUpdate {
        active: Some(false),
        ..Default::default()
    };
    t.store.update_user(carol.id, update).await.unwrap();
    let extra = t
        .store
        .issue_token(alice_user.id, "extra", chrono::Duration::days(1))
        .await
        .unwrap();

    let course = t
        .create(
            "/api/attendance/courses/",
            &alice,
            json!({"name": "Databases", "code": "CS305"}),
        )
        .await;
    let student = t
        .create(
            "/api/attendance/students/",
            &alice,
            json!({"course": course, "name": "Ada", "external_id": "s1"}),
        )
        .await;
    let session = t
        .create(
            "/api/attendance/sessions/",
            &alice,
            json!({"course": course, "title": "W1", "held_at": "2026-09-01T09:00:00Z"}),
        )
        .await;
    // A processed photo with one face (crop image and embedding), and a queued job: made through
    // the store, since this socket-free app has no workers.
    t.blobs
        .put("images/t", Bytes::from_static(b"\x89PNG fake"))
        .await
        .unwrap();
    t.blobs
        .put("crops/t.jpg", Bytes::from_static(b"\xff\xd8\xff fake"))
        .await
        .unwrap();
    let (image, crops) = photo_with_faces(&t, session, &[face([0.6, 0.8])]).await;
    let crop = crops[0];
    // The student's reference face matches `crop`; a locked cluster of two strangers survives
    // re-clustering and re-assignment.
    let reference = reference_of(&t, student, [0.6, 0.8]).await;
    let (a, b) = two_clusters(&t, course, session).await;
    let cluster = t
        .store
        .merge_clusters(Scope::All, &[a, b])
        .await
        .unwrap()
        .id;
    let (job, _) = t
        .store
        .queue_job(
            attendansee_services::JobKind::ProcessSession,
            "{}",
            course,
            alice_user.id,
            1,
        )
        .await
        .unwrap();
    World {
        reference,
        cluster,
        image,
        crop,
        job: job.id,
        t,
        admin,
        alice,
        bob,
        expired: expired.secret,
        revoked: revoked.secret,
        deactivated,
        course,
        student,
        session,
        alice_token_id: extra.token.id,
        bob_id: bob_user.id,
    }
}

/// A multipart upload request with one small file in field `images`.
fn upload(path: &str, token: &str) -> Request<Body> {
    let boundary = "b0undary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"x.png\"\r\n\r\nxx\r\n--{boundary}--\r\n"
    );
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(form))
        .unwrap()
}

impl World {
    /// The request a client would send: multipart for photo uploads, JSON otherwise.
    async fn send_as(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> common::Response {
        if method == Method::POST && (path.ends_with("/images/") || path.ends_with("/references/"))
        {
            self.t.send(upload(path, token)).await
        } else {
            self.t.call(method, path, Some(token), body).await
        }
    }

    fn concrete(&self, path: &str) -> String {
        let id = if path.starts_with("/api/attendance/sessions/") {
            self.session
        } else if path.contains("/images/") {
            self.image
        } else if path.contains("/face-crops/") {
            self.crop
        } else if path.contains("/jobs/") {
            self.job
        } else if path.contains("/courses/") {
            self.course
        } else if path.contains("/students/") {
            self.student
        } else if path.contains("/clusters/") {
            self.cluster
        } else if path.contains("/references/") {
            self.reference
        } else if path.contains("/sessions/") {
            self.session
        } else if path.contains("/tokens/") {
            self.alice_token_id
        } else {
            self.bob_id
        };
        path.replace("{id}", &id.to_string())
            .replace("{student}", &self.student.to_string())
    }
}

#[tokio::test]
async fn every_protected_route_answers_401_to_missing_malformed_expired_revoked_and_deactivated_tokens()
 {
    let w = world().await;
    let ops = operations(&w.t, &w.admin).await;
    let public: BTreeSet<_> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert!(
        public.is_subset(&ops),
        "public routes missing from the schema"
    );
    let upper_hex = format!("ats_{}", "AB".repeat(32));
    let bad_headers: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer not-a-token".into()),
        Some(format!("Bearer {upper_hex}")),
        Some(format!("Basic {}", w.alice)),
        Some(format!("Bearer ats_{}", "0".repeat(64))),
        Some(format!("Bearer {}", w.expired)),
        Some(format!("Bearer {}", w.revoked)),
        Some(format!("Bearer {}", w.deactivated)),
    ];
    let mut checked = 0;
    for (method, path) in ops.difference(&public) {
        for auth in &bad_headers {
            let mut request = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(w.concrete(path))
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let response = w.t.send(request.body(Body::from("{}")).unwrap()).await;
            let message = response.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
            assert!(!message.is_empty(), "{method} {path} with {auth:?}");
            assert_eq!(response.headers[header::WWW_AUTHENTICATE], "Bearer");
            checked += 1;
        }
    }
    assert!(
        checked >= 20 * bad_headers.len(),
        "only {checked} checks: did the schema lose routes?"
    );
    // Nothing was changed by any of the rejected requests.
    assert_eq!(
        w.t.get(&format!("/api/attendance/courses/{}/", w.course), &w.alice)
            .await
            .body["name"],
        "Databases"
    );
}

#[tokio::test]
async fn another_instructors_objects_answer_404_exactly_like_missing_ones() {
    let w = world().await;
    let bodies = |path: &str| -> Value {
        if path.ends_with("/assign/") {
            json!({"student_id": null})
        } else if path.contains("/attendance/{student}/") {
            json!({"status": null})
        } else if path.ends_with("/name/") {
            json!({"student_id": 1})
        } else if path.ends_with("/generate-embedding/") {
            // Its body names no session field: an unknown one is refused before the lookup.
            json!({"force_regenerate": false})
        } else if path.contains("courses") {
            json!({"name": "Stolen", "code": "X1"})
        } else if path.contains("students") {
            json!({"name": "Stolen", "external_id": null})
        } else {
            json!({"title": "Stolen", "held_at": "2026-09-02T09:00:00Z"})
        }
    };
    let ops = operations(&w.t, &w.admin).await;
    let owned: Vec<_> = ops
        .iter()
        .filter(|(_, p)| p.starts_with("/api/attendance/") && p.contains("{id}"))
        .collect();
    assert!(owned.len() >= 12, "{owned:?}");
    for (method, path) in owned {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = Some(bodies(path));
        let foreign = w
            .send_as(method.clone(), &w.concrete(path), &w.bob, body.clone())
            .await;
        let missing = w
            .send_as(
                method.clone(),
                &path
                    .replace("{id}", "99999")
                    .replace("{student}", &w.student.to_string()),
                &w.bob,
                body,
            )
            .await;
        foreign.assert_error(StatusCode::NOT_FOUND, "NotFound");
        missing.assert_error(StatusCode::NOT_FOUND, "NotFound");
        let strip = |m: String| {
            m.replace(&w.course.to_string(), "N")
                .replace(&w.student.to_string(), "N")
                .replace(&w.session.to_string(), "N")
                .replace(&w.image.to_string(), "N")
                .replace(&w.crop.to_string(), "N")
                .replace(&w.job.to_string(), "N")
                .replace(&w.reference.to_string(), "N")
                .replace(&w.cluster.to_string(), "N")
                .replace("99999", "N")
        };
        assert_eq!(
            strip(foreign.body["error"].as_str().unwrap().into()),
            strip(missing.body["error"].as_str().unwrap().into())
        );
    }
    // Listings and references do not leak either.
    for list in [
        "/api/attendance/courses/",
        "/api/attendance/students/",
        "/api/attendance/sessions/",
    ] {
        assert_eq!(w.t.get(list, &w.bob).await.body["count"], 0, "{list}");
    }
    let student = json!({"course": w.course, "name": "Mallory"});
    w.t.post("/api/attendance/students/", &w.bob, student)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
    let session = json!({"course": w.course, "title": "x", "held_at": "2026-09-01T09:00:00Z"});
    w.t.post("/api/attendance/sessions/", &w.bob, session)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
    // Other users' tokens and the admin's user management are out of reach too.
    let revoke =
        w.t.call(
            Method::DELETE,
            &format!("/api/auth/tokens/{}/", w.alice_token_id),
            Some(&w.bob),
            None,
        )
        .await;
    revoke.assert_error(StatusCode::NOT_FOUND, "NotFound");
    w.t.get("/api/auth/users/", &w.bob)
        .await
        .assert_error(StatusCode::FORBIDDEN, "Forbidden");
    let create = json!({"username": "eve", "password": "horse battery staple", "role": "admin"});
    w.t.post("/api/auth/users/", &w.bob, create)
        .await
        .assert_error(StatusCode::FORBIDDEN, "Forbidden");
}

/// The successful call for each protected operation, as (method, path, body, expected status).
fn success_cases(
    w: &World,
    token_to_revoke: i64,
    user_id: i64,
) -> Vec<(Method, String, Option<Value>, StatusCode)> {
    let (c, s, ss) = (w.course, w.student, w.session);
    let (image, crop) = (w.image, w.crop);
    let ok = StatusCode::OK;
    let unavailable = StatusCode::SERVICE_UNAVAILABLE; // this socket-free app runs no workers
    let model = json!({"model_name": "mobilefacenet"});
    vec![
        (
            Method::GET,
            format!("/api/attendance/sessions/{ss}/images/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/sessions/{ss}/images/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/sessions/{ss}/process/"),
            None,
            unavailable,
        ),
        (
            Method::GET,
            format!("/api/attendance/sessions/{ss}/face-crops/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/images/{image}/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/images/{image}/file/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/images/{image}/preview/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/face-crops/{crop}/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/face-crops/{crop}/image/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/face-crops/{crop}/embeddings/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/face-crops/{crop}/generate-embedding/"),
            Some(model.clone()),
            ok,
        ),
        (
            Method::POST,
            "/api/attendance/face-crops/generate-embeddings-batch/".into(),
            Some(json!({"face_crop_ids": [crop], "model_name": "mobilefacenet"})),
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/students/{s}/references/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/students/{s}/references/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/sessions/{ss}/assign/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/face-crops/{crop}/assign/"),
            Some(json!({"student_id": s})),
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/face-crops/{crop}/similar/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/face-crops/{crop}/not-a-student/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/face-crops/{crop}/reset/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/face-crops/{crop}/undo/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/courses/{c}/clusters/"),
            None,
            ok,
        ),
        (
            Method::POST,
            format!("/api/attendance/courses/{c}/clusters/recluster/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/clusters/{}/", w.cluster),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/sessions/{ss}/attendance/"),
            None,
            ok,
        ),
        (
            Method::PUT,
            format!("/api/attendance/sessions/{ss}/attendance/{s}/"),
            Some(json!({"status": "absent"})),
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/sessions/{ss}/attendance/csv/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/courses/{c}/attendance/"),
            None,
            ok,
        ),
        (
            Method::GET,
            format!("/api/attendance/courses/{c}/attendance/csv/"),
            None,
            ok,
        ),
        (Method::GET, "/api/attendance/jobs/".into(), None, ok),
        (
            Method::GET,
            format!("/api/attendance/jobs/{}/", w.job),
            None,
            ok,
        ),
        (Method::GET, "/api/schema/".into(), None, ok),
        (Method::GET, "/api/auth/me/".into(), None, ok),
        (Method::GET, "/api/auth/tokens/".into(), None, ok),
        (
            Method::POST,
            "/api/auth/tokens/".into(),
            Some(json!({"label": "script"})),
            StatusCode::CREATED,
        ),
        (
            Method::DELETE,
            format!("/api/auth/tokens/{token_to_revoke}/"),
            None,
            StatusCode::NO_CONTENT,
        ),
        (Method::GET, "/api/attendance/courses/".into(), None, ok),
        (
            Method::GET,
            format!("/api/attendance/courses/{c}/"),
            None,
            ok,
        ),
        (
            Method::PUT,
            format!("/api/attendance/courses/{c}/"),
            Some(json!({"name": "Databases", "code": "CS305"})),
            ok,
        ),
        (
            Method::PATCH,
            format!("/api/attendance/courses/{c}/"),
            Some(json!({"name": "Databases II"})),
            ok,
        ),
        (Method::GET, "/api/attendance/students/".into(), None, ok),
        (
            Method::GET,
            format!("/api/attendance/students/{s}/"),
            None,
            ok,
        ),
        (
            Method::PUT,
            format!("/api/attendance/students/{s}/"),
            Some(json!({"name": "Ada L", "external_id": "s1"})),
            ok,
        ),
        (
            Method::PATCH,
            format!("/api/attendance/students/{s}/"),
            Some(json!({"external_id": null})),
            ok,
        ),
        (Method::GET, "/api/attendance/sessions/".into(), None, ok),
        (
            Method::GET,
            format!("/api/attendance/sessions/{ss}/"),
            None,
            ok,
        ),
        (
            Method::PUT,
            format!("/api/attendance/sessions/{ss}/"),
            Some(json!({"title": "W1", "held_at": "2026-09-01T10:00:00Z"})),
            ok,
        ),
        (
            Method::PATCH,
            format!("/api/attendance/sessions/{ss}/"),
            Some(json!({"title": "Week 1"})),
            ok,
        ),
        (Method::GET, "/api/auth/users/".into(), None, ok),
        (Method::GET, format!("/api/auth/users/{user_id}/"), None, ok),
        (
            Method::PATCH,
            format!("/api/auth/users/{user_id}/"),
            Some(json!({"active": true})),
            ok,
        ),
    ]
}

#[tokio::test]
async fn owner_and_admin_succeed_on_every_route_and_every_route_is_exercised() {
    let w = world().await;
    let mut exercised = BTreeSet::new();
    for (who, token) in [("owner", w.alice.clone()), ("admin", w.admin.clone())] {
        let me = w.t.get("/api/auth/me/", &token).await.body["id"]
            .as_i64()
            .unwrap();
        let spare =
            w.t.post("/api/auth/tokens/", &token, json!({"label": "spare"}))
                .await
                .body["id"]
                .as_i64()
                .unwrap();
        for (method, path, body, expected) in success_cases(&w, spare, w.bob_id) {
            let admin_only = path.starts_with("/api/auth/users/");
            let response = w.send_as(method.clone(), &path, &token, body).await;
            if admin_only && who == "owner" {
                response.assert_error(StatusCode::FORBIDDEN, "Forbidden");
            } else {
                assert_eq!(
                    response.status, expected,
                    "{who} {method} {path}: {}",
                    response.body
                );
            }
            exercised.insert((method.to_string(), template(&path)));
        }
        // Cancelling, on a job made for the purpose (a cancelled job cannot be cancelled again).
        let course = w.course;
        let (job, _) =
            w.t.store
                .queue_job(
                    attendansee_services::JobKind::ProcessSession,
                    &format!("{{\"for\": \"{who}\"}}"),
                    course,
                    1,
                    1,
                )
                .await
                .unwrap();
        let cancelled =
            w.t.call(
                Method::POST,
                &format!("/api/attendance/jobs/{}/cancel/", job.id),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(
            (cancelled.status, cancelled.body["status"].as_str()),
            (StatusCode::OK, Some("cancelled")),
            "{}",
            cancelled.body
        );
        let again =
            w.t.call(
                Method::POST,
                &format!("/api/attendance/jobs/{}/cancel/", job.id),
                Some(&token),
                None,
            )
            .await;
        again.assert_error(StatusCode::CONFLICT, "Conflict");
        exercised.insert(("POST".into(), "/api/attendance/jobs/{id}/cancel/".into()));
        // Creations and deletions, on objects made for the purpose.
        let c =
            w.t.create(
                "/api/attendance/courses/",
                &token,
                json!({"name": "Tmp", "code": format!("T-{who}")}),
            )
            .await;
        let s =
            w.t.create(
                "/api/attendance/students/",
                &token,
                json!({"course": c, "name": "Tmp"}),
            )
            .await;
        let ss =
            w.t.create(
                "/api/attendance/sessions/",
                &token,
                json!({"course": c, "title": "Tmp", "held_at": "2026-01-01T00:00:00Z"}),
            )
            .await;
        for path in [
            format!("/api/attendance/sessions/{ss}/"),
            format!("/api/attendance/students/{s}/"),
            format!("/api/attendance/courses/{c}/"),
        ] {
            let response = w.t.call(Method::DELETE, &path, Some(&token), None).await;
            assert_eq!(
                response.status,
                StatusCode::NO_CONTENT,
                "{who} DELETE {path}"
            );
            w.t.get(&path, &token)
                .await
                .assert_error(StatusCode::NOT_FOUND, "NotFound");
            exercised.insert(("DELETE".into(), template(&path)));
        }
        for path in [
            "/api/attendance/courses/",
            "/api/attendance/students/",
            "/api/attendance/sessions/",
        ] {
            exercised.insert(("POST".into(), path.into()));
        }
        // Reference photos and clusters, made for the purpose: removed, merged, named.
        let reference = reference_of(&w.t, w.student, STRANGER).await;
        let path = format!("/api/attendance/references/{reference}/");
        let response = w.t.call(Method::DELETE, &path, Some(&token), None).await;
        assert_eq!(
            response.status,
            StatusCode::NO_CONTENT,
            "{who} DELETE {path}"
        );
        exercised.insert(("DELETE".into(), template(&path)));
        // A photo made for the purpose; it shares its blobs with the world's photo, whose file
        // must stay (the admin's round fetches it after the owner's deletion).
        let (photo, _) = photo_with_faces(&w.t, w.session, &[face(STRANGER)]).await;
        let path = format!("/api/attendance/images/{photo}/");
        let response = w.t.call(Method::DELETE, &path, Some(&token), None).await;
        assert_eq!(
            response.status,
            StatusCode::NO_CONTENT,
            "{who} DELETE {path}"
        );
        w.t.get(&path, &token)
            .await
            .assert_error(StatusCode::NOT_FOUND, "NotFound");
        exercised.insert(("DELETE".into(), template(&path)));
        let (a, b) = two_clusters(&w.t, w.course, w.session).await;
        let merged =
            w.t.post(
                "/api/attendance/clusters/merge/",
                &token,
                json!({"cluster_ids": [a, b]}),
            )
            .await;
        assert_eq!(merged.status, StatusCode::OK, "{who}: {}", merged.body);
        assert_eq!(merged.body["members"].as_array().unwrap().len(), 2);
        exercised.insert(("POST".into(), "/api/attendance/clusters/merge/".into()));
        let path = format!("/api/attendance/clusters/{a}/name/");
        let named =
            w.t.post(&path, &token, json!({"new_student": {"name": "Grace"}}))
                .await;
        assert_eq!(
            (named.status, named.body["assigned"].as_i64()),
            (StatusCode::OK, Some(2)),
            "{who}: {}",
            named.body
        );
        exercised.insert(("POST".into(), template(&path)));
        if who == "admin" {
            let created =
                w.t.post(
                    "/api/auth/users/",
                    &token,
                    json!({"username": "dave", "password": "horse battery staple"}),
                )
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
            assert_eq!(created.body["role"], "instructor");
            exercised.insert(("POST".into(), "/api/auth/users/".into()));
        }
        // The face route is reached (this socket-free app has no worker pool: a structured 503).
        let boundary = "b0undary";
        let form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n\r\nxx\r\n--{boundary}--\r\n"
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/attendance/embed/")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(form))
            .unwrap();
        w.t.send(request)
            .await
            .assert_error(StatusCode::SERVICE_UNAVAILABLE, "ModelNotAvailable");
        exercised.insert(("POST".into(), "/api/attendance/embed/".into()));

        // Logout revokes the token it was sent with, and only that one.
        let session_token =
            w.t.post("/api/auth/tokens/", &token, json!({"label": "bye"}))
                .await
                .body["token"]
                .as_str()
                .unwrap()
                .to_owned();
        assert_eq!(
            w.t.call(
                Method::POST,
                "/api/auth/logout/",
                Some(&session_token),
                None
            )
            .await
            .status,
            StatusCode::NO_CONTENT
        );
        w.t.get("/api/auth/me/", &session_token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        assert_eq!(w.t.get("/api/auth/me/", &token).await.body["id"], me);
        exercised.insert(("POST".into(), "/api/auth/logout/".into()));
    }
    let public: BTreeSet<_> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let protected: BTreeSet<_> = operations(&w.t, &w.admin)
        .await
        .difference(&public)
        .cloned()
        .collect();
    assert_eq!(
        protected, exercised,
        "a route is missing from this test, or the test names a route that does not exist"
    );
}

/// `/api/x/12/` → `/api/x/{id}/`.
fn template(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    segments
        .iter()
        .enumerate()
        .map(|(i, seg)| match seg.parse::<i64>() {
            // `/sessions/{id}/attendance/{student}/`: the second id is a student.
            Ok(_) if i > 0 && segments[i - 1] == "attendance" => "{student}",
            Ok(_) => "{id}",
            Err(_) => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn login_issues_tokens_that_work_and_bad_credentials_do_not() {
    let t = app().await;
    t.user("alice", Role::Instructor).await;
    let login = |u: &str, p: &str| json!({"username": u, "password": p});
    let ok = t
        .call(
            Method::POST,
            "/api/auth/login/",
            None,
            Some(login("alice", "horse battery staple")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let token = ok.body["token"].as_str().unwrap();
    assert!(ok.body["expires_at"].is_string());
    assert_eq!(
        t.get("/api/auth/me/", token).await.body["username"],
        "alice"
    );
    let tokens = t.get("/api/auth/tokens/", token).await;
    assert!(
        !tokens.body.to_string().contains(token),
        "token lists must never contain secrets"
    );

    for (user, password) in [
        ("alice", "wrong-password"),
        ("nobody", "horse battery staple"),
        ("", ""),
    ] {
        let response = t
            .call(
                Method::POST,
                "/api/auth/login/",
                None,
                Some(login(user, password)),
            )
            .await;
        response.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let health = t.call(Method::GET, "/api/health/", None, None).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let metrics = t.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("attendansee_http_responses_total{class=\"4xx\"} 3"),
        "{}",
        metrics.body
    );
}

/// Undo over HTTP: a correction is undone once, back to what the face was; a second undo, or an
/// undo of a face nobody corrected, is 409 Conflict with a message that says why.
#[tokio::test]
async fn a_correction_is_undone_once_then_undo_answers_409() {
    let w = world().await;
    let undo = format!("/api/attendance/face-crops/{}/undo/", w.crop);
    let first = w.send_as(Method::POST, &undo, &w.alice, None).await;
    let message = first.assert_error(StatusCode::CONFLICT, "Conflict");
    assert!(message.contains("no correction to undo"), "{message}");
    // The detail also lists the face's embeddings, which a correction's answer leaves out.
    let mut before =
        w.t.get(&format!("/api/attendance/face-crops/{}/", w.crop), &w.alice)
            .await
            .body;
    before.as_object_mut().unwrap().remove("embeddings");
    let assigned = w
        .send_as(
            Method::POST,
            &format!("/api/attendance/face-crops/{}/assign/", w.crop),
            &w.alice,
            Some(json!({"student_id": w.student})),
        )
        .await;
    assert_eq!(
        assigned.body["assignment_source"], "manual",
        "{}",
        assigned.body
    );
    let undone = w.send_as(Method::POST, &undo, &w.alice, None).await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.body);
    assert_eq!(undone.body, before);
    w.send_as(Method::POST, &undo, &w.alice, None)
        .await
        .assert_error(StatusCode::CONFLICT, "Conflict");
}
