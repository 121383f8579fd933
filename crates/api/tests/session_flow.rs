//! The whole session flow in process — enroll, upload, process, assign, correct, cluster,
//! attendance and its CSV — through the real router and services, with the deterministic fake
//! inference instead of worker processes. (The real-binary tests run the same flow with real
//! workers and models.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use attendansee_services::fake::{FakeFace, FakeInference};
use attendansee_store::Role;

use common::TestApp;

/// A unit vector along axis `i` (of 8), nudged along axis 7 by `noise`: faces of one person are
/// the same axis, different people are orthogonal.
fn person(i: usize, noise: f32) -> Vec<f32> {
    let mut v = vec![0.0; 8];
    v[i] = 1.0;
    v[7] += noise;
    v
}

fn face(x: f32, vector: Vec<f32>) -> FakeFace {
    FakeFace::new([x, 100.0, 120.0, 150.0], vector)
}

async fn wait_for_job(app: &TestApp, token: &str, job: i64) -> Value {
    for _ in 0..200 {
        let body = app
            .get(&format!("/api/attendance/jobs/{job}/"), token)
            .await
            .body;
        if !matches!(body["status"].as_str(), Some("queued" | "running")) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {job} did not finish");
}

/// A course of the user's, by its code.
async fn new_course(app: &TestApp, token: &str, code: &str) -> i64 {
    app.create(
        "/api/attendance/courses/",
        token,
        json!({"name": code, "code": code}),
    )
    .await
}

/// A session of the course.
async fn new_session(app: &TestApp, token: &str, course: i64) -> i64 {
    app.create(
        "/api/attendance/sessions/",
        token,
        json!({"course": course, "title": "Week 1", "held_at": "2026-11-30T09:00:00Z"}),
    )
    .await
}

/// Enrolls each `(name, reference photo)` as a student of the course; returns their ids.
async fn enroll(app: &TestApp, token: &str, course: i64, people: &[(&str, &str)]) -> Vec<i64> {
    let mut students = Vec::new();
    for (name, photo) in people {
        let id = app
            .create(
                "/api/attendance/students/",
                token,
                json!({"course": course, "name": name}),
            )
            .await;
        let enrolled = app
            .upload(
                &format!("/api/attendance/students/{id}/references/"),
                token,
                "images",
                &[(photo, photo.as_bytes())],
            )
            .await;
        assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
        assert_eq!(enrolled.body["stored"], 1, "{}", enrolled.body);
        students.push(id);
    }
    students
}

/// Queues the session's processing and waits for the job's end; returns the job.
async fn process(app: &TestApp, token: &str, session: i64) -> Value {
    let queued = app
        .post(
            &format!("/api/attendance/sessions/{session}/process/"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    wait_for_job(app, token, queued.body["job"]["id"].as_i64().unwrap()).await
}

fn status_of<'a>(attendance: &'a Value, name: &str) -> &'a str {
    attendance["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {attendance}"))["status"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn upload_process_assign_correct_and_attendance_with_the_fake_inference() {
    let fake = Arc::new(FakeInference::new());
    let (alice, bob, carol, visitor) = (
        person(0, 0.0),
        person(1, 0.0),
        person(2, 0.0),
        person(3, 0.0),
    );
    fake.photo(b"ref-alice", 400, 500, vec![face(100.0, alice.clone())]);
    fake.photo(b"ref-bob", 400, 500, vec![face(100.0, bob.clone())]);
    fake.photo(b"ref-carol", 400, 500, vec![face(100.0, carol.clone())]);
    fake.photo(
        b"class-1",
        3000,
        2000,
        vec![
            face(100.0, person(0, 0.1)),
            face(400.0, person(1, 0.1)),
            face(700.0, visitor.clone()),
        ],
    );
    fake.photo(
        b"class-2",
        2000,
        1500,
        vec![face(100.0, person(0, 0.05)), face(500.0, person(3, 0.05))],
    );
    let app = common::app_with_inference(fake.clone()).await;
    let (_, token) = app.user("inst", Role::Instructor).await;

    let course = new_course(&app, &token, "FL-1").await;
    let students = enroll(
        &app,
        &token,
        course,
        &[
            ("Alice", "ref-alice"),
            ("Bob", "ref-bob"),
            ("Carol", "ref-carol"),
        ],
    )
    .await;

    // The same reference photo again is refused as a duplicate, and the files of the one
    // already enrolled stay (its keys are the same: the failed write must not delete them).
    let again = app
        .upload(
            &format!("/api/attendance/students/{}/references/", students[0]),
            &token,
            "images",
            &[("ref-alice", b"ref-alice")],
        )
        .await;
    assert_eq!(
        again.body["results"][0]["error_type"], "Conflict",
        "{}",
        again.body
    );
    let references = app
        .get(
            &format!("/api/attendance/students/{}/references/", students[0]),
            &token,
        )
        .await
        .body;
    let face = references[0]["face"].as_i64().unwrap();
    let image = app
        .call(
            axum::http::Method::GET,
            &format!("/api/attendance/face-crops/{face}/image/"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(image.status, StatusCode::OK, "{}", image.body);

    let session = new_session(&app, &token, course).await;
    let images = format!("/api/attendance/sessions/{session}/images/");
    let uploaded = app
        .upload(
            &images,
            &token,
            "images",
            &[
                ("a.jpg", b"class-1"),
                ("b.jpg", b"class-2"),
                ("again.jpg", b"class-1"),
                ("junk.jpg", b"not a photo"),
            ],
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.body);
    let statuses: Vec<&str> = uploaded.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stored", "stored", "duplicate", "error"]);
    assert_eq!(
        uploaded.body["results"][3]["error_type"],
        "UnsupportedImage"
    );
    assert_eq!(
        (
            &uploaded.body["stored"],
            &uploaded.body["duplicates"],
            &uploaded.body["failed"]
        ),
        (&json!(2), &json!(1), &json!(1))
    );

    // Before processing a photo has no preview: its "preview" is the file as uploaded.
    let photo = uploaded.body["results"][0]["image"]["id"].as_i64().unwrap();
    let preview = format!("/api/attendance/images/{photo}/preview/");
    let original = app.get(&preview, &token).await;
    assert_eq!(original.status, StatusCode::OK);
    assert_eq!(original.body, "class-1");

    // Before processing nobody can be absent.
    let attendance = format!("/api/attendance/sessions/{session}/attendance/");
    let before = app.get(&attendance, &token).await.body;
    assert_eq!(before["unfinished_photos"], 2, "{before}");
    assert_eq!(status_of(&before, "Carol"), "unknown");

    let job = process(&app, &token, session).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "process_session");
    assert_eq!(job["session"], session);
    assert_eq!(
        (&job["done"], &job["total"]),
        (&json!(2), &json!(2)),
        "{job}"
    );
    assert_eq!(job["stats"]["photos"], 2, "{job}");
    assert_eq!(job["stats"]["faces"], 5, "{job}");
    // Alice twice (once per photo), Bob once; the visitor twice, unmatched, in one cluster.
    assert_eq!(job["stats"]["assignment"]["matched"], 3, "{job}");
    assert_eq!(job["stats"]["assignment"]["below_threshold"], 2, "{job}");
    assert_eq!(job["stats"]["clustering"]["clusters"], 1, "{job}");
    // The worker made the 3000×2000 photo's preview while processing it, 1600 px on its long
    // side, and it is what the preview route serves now.
    let made = app.get(&preview, &token).await;
    assert_eq!(made.status, StatusCode::OK);
    assert_eq!(made.body, "fake-preview:1600x1067");

    let after = app.get(&attendance, &token).await.body;
    assert_eq!(status_of(&after, "Alice"), "present", "{after}");
    assert_eq!(status_of(&after, "Bob"), "present", "{after}");
    // Carol is not seen, but two faces are unidentified: not "absent" yet.
    assert_eq!(status_of(&after, "Carol"), "unknown", "{after}");
    assert_eq!(after["unresolved_faces"], 2, "{after}");
    let alice_row = after["students"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Alice")
        .unwrap();
    assert_eq!(alice_row["evidence"].as_array().unwrap().len(), 2);
    assert_eq!(alice_row["evidence"][0]["source"], "auto");

    // The visitor's two faces form one cluster; naming it enrolls a new student at once.
    let clusters = app
        .get(
            &format!("/api/attendance/courses/{course}/clusters/"),
            &token,
        )
        .await
        .body;
    let cluster = &clusters[0];
    assert_eq!(
        cluster["members"].as_array().unwrap().len(),
        2,
        "{clusters}"
    );
    let named = app
        .post(
            &format!("/api/attendance/clusters/{}/name/", cluster["id"]),
            &token,
            json!({"new_student": {"name": "Dave"}}),
        )
        .await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.body);
    assert_eq!(named.body["assigned"], 2);
    let named_after = app.get(&attendance, &token).await.body;
    assert_eq!(status_of(&named_after, "Dave"), "present", "{named_after}");
    // Every face is identified now: Carol, not seen, is absent.
    assert_eq!(status_of(&named_after, "Carol"), "absent", "{named_after}");

    // A manual correction wins: Bob's face is not Bob after all.
    let crops = app
        .get(
            &format!("/api/attendance/sessions/{session}/face-crops/"),
            &token,
        )
        .await
        .body;
    let bob_face = crops["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["student"] == students[1])
        .unwrap_or_else(|| panic!("no face of Bob in {crops}"));
    let corrected = app
        .post(
            &format!("/api/attendance/face-crops/{}/assign/", bob_face["id"]),
            &token,
            json!({"student_id": students[2]}),
        )
        .await;
    assert_eq!(corrected.status, StatusCode::OK, "{}", corrected.body);
    let corrected_after = app.get(&attendance, &token).await.body;
    assert_eq!(
        status_of(&corrected_after, "Bob"),
        "absent",
        "{corrected_after}"
    );
    assert_eq!(
        status_of(&corrected_after, "Carol"),
        "present",
        "{corrected_after}"
    );

    // The CSV says the same, row by row.
    let csv = app.get(&format!("{attendance}csv/"), &token).await.body;
    let csv = csv.as_str().unwrap();
    assert!(
        csv.starts_with("student_id,external_id,name,status,source,evidence_crops\n"),
        "{csv}"
    );
    assert!(csv.contains(",Bob,absent,auto,"), "{csv}");
    assert!(csv.contains(",Carol,present,auto,"), "{csv}");

    // Re-processing finds nothing new to do; the fake saw each photo once.
    let again = process(&app, &token, session).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(
        (&again["done"], &again["total"]),
        (&json!(0), &json!(0)),
        "{again}"
    );
    let calls = fake.calls();
    // Three references, the duplicate one (found a duplicate only when stored), two photos.
    assert_eq!(
        calls.iter().filter(|c| **c == "detect_and_embed").count(),
        3 + 1 + 2
    );
    assert_eq!(
        calls.iter().filter(|c| **c == "validate").count(),
        3,
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_photo_the_worker_refuses_fails_alone_and_the_job_is_partial() {
    let fake = Arc::new(FakeInference::new());
    fake.photo(b"good", 800, 600, vec![face(10.0, person(0, 0.0))]);
    let app = common::app_with_inference(fake.clone()).await;
    let (_, token) = app.user("inst", Role::Instructor).await;
    let course = new_course(&app, &token, "P-1").await;
    let session = new_session(&app, &token, course).await;
    let uploaded = app
        .upload(
            &format!("/api/attendance/sessions/{session}/images/"),
            &token,
            "images",
            &[
                ("good.jpg", b"good"),
                ("later-bad.jpg", b"changes after upload"),
            ],
        )
        .await;
    assert_eq!(
        uploaded.body["results"][1]["status"], "error",
        "{}",
        uploaded.body
    );
    // Registered after the upload refused it: upload it again now, then forget it, so that
    // processing meets a photo the worker does not know.
    fake.photo(b"changes after upload", 800, 600, vec![]);
    let again = app
        .upload(
            &format!("/api/attendance/sessions/{session}/images/"),
            &token,
            "images",
            &[("later-bad.jpg", b"changes after upload")],
        )
        .await;
    assert_eq!(again.body["stored"], 1, "{}", again.body);
    fake.forget(b"changes after upload");
    let job = process(&app, &token, session).await;
    assert_eq!(job["status"], "partial", "{job}");
    assert_eq!(job["errors"][0]["error_type"], "UnsupportedImage", "{job}");
    assert_eq!(job["errors"][0]["file"], "later-bad.jpg", "{job}");
}

/// Creates a course and a session, uploads `photos` and processes them; returns the session.
async fn processed_session(app: &TestApp, token: &str, photos: &[(&str, &[u8])]) -> i64 {
    let course = new_course(app, token, "Q-1").await;
    let session = new_session(app, token, course).await;
    let images = format!("/api/attendance/sessions/{session}/images/");
    let uploaded = app.upload(&images, token, "images", photos).await;
    assert_eq!(uploaded.body["failed"], 0, "{}", uploaded.body);
    let job = process(app, token, session).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    session
}

#[tokio::test]
async fn a_batch_of_crops_is_embedded_on_several_workers_at_once_and_answered_in_order() {
    let fake = Arc::new(FakeInference::new());
    let faces = (0..7).map(|i| face(10.0 + 150.0 * i as f32, person(i, 0.0)));
    fake.photo(b"seven", 1200, 400, faces.collect());
    let app = common::app_with_inference(fake.clone()).await;
    let (_, token) = app.user("inst", Role::Instructor).await;
    let session = processed_session(&app, &token, &[("seven.jpg", b"seven")]).await;
    let crops = app
        .get(
            &format!("/api/attendance/sessions/{session}/face-crops/"),
            &token,
        )
        .await
        .body;
    let mut ids: Vec<i64> = crops["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 7, "{crops}");
    // Not in storage order, and one that does not exist, to see that order is kept per item.
    ids.reverse();
    ids.insert(3, 99_999);

    fake.set_embed_delay(Duration::from_millis(100));
    let batch = app
        .post(
            "/api/attendance/face-crops/generate-embeddings-batch/",
            &token,
            json!({"face_crop_ids": ids, "force_regenerate": true}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let results = batch.body["results"].as_array().unwrap();
    let answered: Vec<i64> = results
        .iter()
        .map(|r| r["crop_id"].as_i64().unwrap())
        .collect();
    assert_eq!(answered, ids);
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    let mut expected = vec!["success"; 8];
    expected[3] = "error";
    assert_eq!(statuses, expected, "{}", batch.body);
    assert_eq!(results[3]["error_type"], "NotFound");
    assert_eq!(batch.body["status"], "partial");
    // The fake has two workers: a batch one after another would never overlap.
    assert!(
        fake.most_concurrent_embeds() >= 2,
        "at most {} embedding at once",
        fake.most_concurrent_embeds()
    );
}

#[tokio::test]
async fn faces_too_poor_to_recognise_are_shown_with_their_reason_never_assigned_nor_clustered() {
    let fake = Arc::new(FakeInference::new());
    let (alice, bob, carol, dave) = (
        person(0, 0.0),
        person(1, 0.0),
        person(2, 0.0),
        person(3, 0.0),
    );
    for (bytes, vector) in [
        (&b"ref-alice"[..], &alice),
        (b"ref-bob", &bob),
        (b"ref-carol", &carol),
        (b"ref-dave", &dave),
    ] {
        fake.photo(bytes, 400, 500, vec![face(100.0, vector.clone())]);
    }
    // Each face is the enrolled person exactly; only its quality differs.
    let small = FakeFace::new([100.0, 100.0, 20.0, 24.0], alice.clone());
    let blurred = FakeFace {
        blur: 5.0,
        ..face(400.0, bob.clone())
    };
    // The nose beyond the right eye: a profile.
    let [x, y] = [700.0, 100.0];
    let profile = FakeFace {
        landmarks: Some([
            [x + 36.0, y + 52.0],
            [x + 84.0, y + 52.0],
            [x + 90.0, y + 82.0],
            [x + 42.0, y + 112.0],
            [x + 78.0, y + 112.0],
        ]),
        ..face(x, carol.clone())
    };
    let good = face(1000.0, dave.clone());
    fake.photo(b"class", 3000, 2000, vec![small, blurred, profile, good]);
    // The same three faces again in a second photo: clustering would group them if it saw them.
    let small_again = FakeFace::new([100.0, 100.0, 20.0, 24.0], person(0, 0.01));
    let blurred_again = FakeFace {
        blur: 5.0,
        ..face(400.0, person(1, 0.01))
    };
    fake.photo(b"class-2", 3000, 2000, vec![small_again, blurred_again]);
    let app = common::app_with_inference(fake.clone()).await;
    let (_, token) = app.user("inst", Role::Instructor).await;
    let course = new_course(&app, &token, "QA-1").await;
    let students = enroll(
        &app,
        &token,
        course,
        &[
            ("alice", "ref-alice"),
            ("bob", "ref-bob"),
            ("carol", "ref-carol"),
            ("dave", "ref-dave"),
        ],
    )
    .await;
    let session = new_session(&app, &token, course).await;
    let images = format!("/api/attendance/sessions/{session}/images/");
    let uploaded = app
        .upload(
            &images,
            &token,
            "images",
            &[("class.jpg", b"class"), ("class-2.jpg", b"class-2")],
        )
        .await;
    assert_eq!(uploaded.body["stored"], 2, "{}", uploaded.body);
    let job = process(&app, &token, session).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let counts = &job["stats"]["assignment"];
    assert_eq!(
        (
            &counts["matched"],
            &counts["too_small"],
            &counts["blurred"],
            &counts["profile"]
        ),
        (&json!(1), &json!(2), &json!(2), &json!(1)),
        "{job}"
    );
    assert_eq!(job["stats"]["clustering"]["clusters"], 0, "{job}");

    let crops = app
        .get(
            &format!("/api/attendance/sessions/{session}/face-crops/"),
            &token,
        )
        .await
        .body;
    let crops = crops["results"].as_array().unwrap();
    // The photo with four faces (uploads are stored concurrently: either may come first).
    let class = &crops.iter().find(|c| c["bbox"][0] == 1000.0).unwrap()["image"];
    let by_x = |x: f64| {
        crops
            .iter()
            .find(|c| &c["image"] == class && c["bbox"][0] == x)
            .unwrap_or_else(|| panic!("no face at {x}: {crops:?}"))
    };
    for (x, reason, student) in [
        (100.0, "too_small", 0),
        (400.0, "blurred", 1),
        (700.0, "profile", 2),
    ] {
        let crop = by_x(x);
        assert!(crop["student"].is_null(), "{crop}");
        assert_eq!(crop["quality"]["issue"], reason, "{crop}");
        assert_eq!(crop["decision"]["reason"], reason, "{crop}");
        // Who it probably is stays visible for the person who decides.
        assert_eq!(
            crop["decision"]["best"]["student"], students[student],
            "{crop}"
        );
        assert!(crop["cluster"].is_null(), "{crop}");
    }
    let good = by_x(1000.0);
    assert_eq!(good["student"], students[3], "{good}");
    assert!(good["quality"]["issue"].is_null(), "{good}");
    assert_eq!(good["decision"]["reason"], "matched");

    let photos = app.get(&images, &token).await.body;
    let hints: Vec<&str> = photos
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["quality_hint"].as_str().unwrap_or_else(|| panic!("{p}")))
        .collect();
    assert!(
        hints.contains(
            &"1 face too small to recognise: take the photo closer; 1 face too blurred to \
              recognise: hold the camera still, with more light; 1 face turned away: ask \
              everyone to face the camera"
        ),
        "{hints:?}"
    );

    // Re-running assignment keeps them out; a person can still assign one by hand.
    let again = app
        .post(
            &format!("/api/attendance/sessions/{session}/assign/"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["assignment"]["matched"], 1, "{}", again.body);
    assert_eq!(again.body["assignment"]["too_small"], 2, "{}", again.body);
    let small = app
        .get(
            &format!("/api/attendance/face-crops/{}/", by_x(100.0)["id"]),
            &token,
        )
        .await
        .body;
    assert!(small["student"].is_null(), "{small}");
    assert_eq!(small["decision"]["reason"], "too_small", "{small}");
    let attendance = app
        .get(
            &format!("/api/attendance/sessions/{session}/attendance/"),
            &token,
        )
        .await
        .body;
    assert_eq!(status_of(&attendance, "alice"), "unknown", "{attendance}");
    assert_eq!(status_of(&attendance, "dave"), "present", "{attendance}");
    let assigned = app
        .post(
            &format!("/api/attendance/face-crops/{}/assign/", by_x(100.0)["id"]),
            &token,
            json!({"student_id": students[0]}),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    assert_eq!(assigned.body["student"], students[0]);
}
