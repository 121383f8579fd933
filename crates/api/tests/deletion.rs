//! Deleting a course, session, student, reference photo or photo erases its files from blob
//! storage (photos, reference photos, face crops), and only its files.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::json;

use attendansee_store::{ImageInsert, NewCrop, NewImage, NewReference, Role, Scope};
use common::{TestApp, app};

/// Every file below `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.insert(relative.display().to_string());
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(dir, dir, &mut found);
    found
}

fn face(crop_blob_key: Option<String>) -> NewCrop {
    NewCrop {
        bbox: [1.0, 1.0, 4.0, 4.0],
        landmarks: [[2.0, 2.0]; 5],
        score: 0.9,
        quality_size: 4.0,
        quality_blur: None,
        crop_blob_key,
        embedding: Some(("mobilefacenet".into(), vec![0.6, 0.8])),
    }
}

/// A course of `token`'s user with a student (two reference photos) and two sessions (two
/// processed photos each, with face crops and a preview), every blob stored under the keys the
/// server uses.
struct Course {
    id: i64,
    students: Vec<i64>,
    sessions: Vec<i64>,
    /// (photo id, its blob files).
    photos: Vec<(i64, BTreeSet<String>)>,
    /// (reference photo id, its blob files).
    references: Vec<(i64, BTreeSet<String>)>,
}

impl Course {
    fn files(&self) -> BTreeSet<String> {
        self.photos
            .iter()
            .chain(&self.references)
            .flat_map(|(_, f)| f.iter().cloned())
            .collect()
    }
}

async fn put(t: &TestApp, key: &str) {
    t.blobs
        .put(key, Bytes::from_static(b"bytes"))
        .await
        .unwrap();
}

async fn course(t: &TestApp, token: &str, code: &str) -> Course {
    let id = t
        .create(
            "/api/attendance/courses/",
            token,
            json!({"name": "Course", "code": code}),
        )
        .await;
    let student = t
        .create(
            "/api/attendance/students/",
            token,
            json!({"course": id, "name": "Ada"}),
        )
        .await;
    let mut references = Vec::new();
    for n in 0..2 {
        let sha256 = format!("{code}-ref-{n}");
        let (photo_key, crop_key) = (
            format!("references/{student}/{sha256}"),
            format!("references/{student}/{sha256}.face.jpg"),
        );
        put(t, &photo_key).await;
        put(t, &crop_key).await;
        let reference = NewReference {
            blob_key: photo_key.clone(),
            sha256,
            width: 8,
            height: 8,
            crop: face(Some(crop_key.clone())),
        };
        let stored = t
            .store
            .add_reference_photo(Scope::All, student, &reference)
            .await
            .unwrap();
        references.push((stored.id, BTreeSet::from([photo_key, crop_key])));
    }
    let (mut sessions, mut photos) = (Vec::new(), Vec::new());
    for title in ["W1", "W2"] {
        let session = t
            .create(
                "/api/attendance/sessions/",
                token,
                json!({"course": id, "title": title, "held_at": "2026-09-01T09:00:00Z"}),
            )
            .await;
        sessions.push(session);
        for n in 0..2 {
            let sha256 = format!("{code}-{title}-{n}");
            let photo_key = format!("images/{session}/{sha256}");
            put(t, &photo_key).await;
            let new = NewImage {
                blob_key: photo_key.clone(),
                sha256,
                original_name: None,
                width: 8,
                height: 8,
            };
            let ImageInsert::Stored(image) = t
                .store
                .add_session_image(Scope::All, session, &new)
                .await
                .unwrap()
            else {
                panic!("fresh photo")
            };
            let crops = [0, 1].map(|i| format!("crops/{}/{i}.jpg", image.id));
            for key in &crops {
                put(t, key).await;
            }
            let faces = [
                face(Some(crops[0].clone())),
                face(Some(crops[1].clone())),
                face(None),
            ];
            t.store.record_image_faces(image.id, &faces).await.unwrap();
            let preview_key = attendansee_store::blob_keys::session_preview(image.id, "run");
            put(t, &preview_key).await;
            t.store
                .set_image_preview(image.id, &preview_key)
                .await
                .unwrap();
            let mut files = BTreeSet::from(crops);
            files.insert(photo_key);
            files.insert(preview_key);
            photos.push((image.id, files));
        }
    }
    Course {
        id,
        students: vec![student],
        sessions,
        photos,
        references,
    }
}

/// Deletes and checks it is gone: deleting again is `NotFound`.
async fn delete(t: &TestApp, token: &str, path: &str) {
    let response = t.call(Method::DELETE, path, Some(token), None).await;
    assert_eq!(
        response.status,
        StatusCode::NO_CONTENT,
        "{path}: {}",
        response.body
    );
    t.call(Method::DELETE, path, Some(token), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn deleting_a_course_leaves_no_file_of_it_and_every_file_of_the_others() {
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let (_, bob) = t.user("bob", Role::Instructor).await;
    let doomed = course(&t, &alice, "GONE").await;
    let kept = course(&t, &alice, "KEPT").await;
    let foreign = course(&t, &bob, "BOBS").await;
    let all: BTreeSet<String> = [&doomed, &kept, &foreign]
        .iter()
        .flat_map(|c| c.files())
        .collect();
    assert_eq!(files(&t.blob_dir()), all);
    // Per photo: the photo, two crops and the preview.
    assert_eq!(doomed.files().len(), 2 * 2 + 2 * 2 * 4);

    // Another instructor cannot delete it, and nothing goes.
    t.call(
        Method::DELETE,
        &format!("/api/attendance/courses/{}/", doomed.id),
        Some(&bob),
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(files(&t.blob_dir()), all);

    delete(
        &t,
        &alice,
        &format!("/api/attendance/courses/{}/", doomed.id),
    )
    .await;
    let left = files(&t.blob_dir());
    assert!(left.is_disjoint(&doomed.files()), "{left:?}");
    assert_eq!(
        left,
        kept.files().union(&foreign.files()).cloned().collect()
    );
    // Not even the emptied directories remain.
    for session in &doomed.sessions {
        assert!(!t.blob_dir().join(format!("images/{session}")).exists());
    }
}

#[tokio::test]
async fn deleting_a_session_student_reference_or_photo_erases_exactly_its_files() {
    let t = app().await;
    let (_, alice) = t.user("alice", Role::Instructor).await;
    let c = course(&t, &alice, "C1").await;
    let mut expected = c.files();

    // A photo: the photo and its face crops.
    let (photo, photo_files) = &c.photos[0];
    delete(&t, &alice, &format!("/api/attendance/images/{photo}/")).await;
    expected.retain(|f| !photo_files.contains(f));
    assert_eq!(files(&t.blob_dir()), expected);
    let faces = t
        .get(
            &format!("/api/attendance/sessions/{}/face-crops/", c.sessions[0]),
            &alice,
        )
        .await;
    assert_eq!(faces.body["count"], 3, "{}", faces.body);

    // A session: its remaining photo and their crops; the other session's stay.
    delete(
        &t,
        &alice,
        &format!("/api/attendance/sessions/{}/", c.sessions[0]),
    )
    .await;
    for (_, photo_files) in &c.photos[..2] {
        expected.retain(|f| !photo_files.contains(f));
    }
    assert_eq!(files(&t.blob_dir()), expected);

    // A reference photo: it and its face crop.
    let (reference, reference_files) = &c.references[0];
    delete(
        &t,
        &alice,
        &format!("/api/attendance/references/{reference}/"),
    )
    .await;
    expected.retain(|f| !reference_files.contains(f));
    assert_eq!(files(&t.blob_dir()), expected);

    // A student: their other reference photo.
    delete(
        &t,
        &alice,
        &format!("/api/attendance/students/{}/", c.students[0]),
    )
    .await;
    expected.retain(|f| !c.references[1].1.contains(f));
    assert_eq!(files(&t.blob_dir()), expected);

    // What is left is exactly the other session's photos.
    let rest: BTreeSet<String> = c.photos[2..].iter().flat_map(|(_, f)| f.clone()).collect();
    assert_eq!(expected, rest);
    assert_eq!(rest.len(), 2 * 4);
}
