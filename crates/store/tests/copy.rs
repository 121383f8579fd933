//! `db copy` in the store: a populated SQLite store copied into a fresh PostgreSQL database reads
//! back the same through the store (ids, gaps and identity sequences included); a target with a
//! row, or whose schema differs, is refused before anything is written; a value that cannot be
//! read leaves the target empty; blobs go to an S3 bucket and read back the same.

#[path = "../../attendansee/tests/common/s3.rs"]
mod s3;

use attendansee_store::copy::{CopyError, RowCopy, copy_blobs};
use attendansee_store::testing::{TestDatabase, to_micros};
use attendansee_store::{
    BlobStore, CourseFields, CropFilter, ImageInsert, NewCrop, NewImage, NewReference, Page, Role,
    Scope, SessionFields, Store, StudentFields,
};
use attendansee_vocabulary::JobKind;
use bytes::Bytes;

fn face(key: Option<String>, vector: Vec<f32>) -> NewCrop {
    NewCrop {
        bbox: [1.5, 2.25, 30.0, 40.125],
        landmarks: [[5.0, 6.0]; 5],
        score: 0.93,
        quality_size: 30.0,
        quality_blur: Some(117.3),
        crop_blob_key: key,
        embedding: Some(("m".into(), vector)),
    }
}

/// A store with two users, a token, two courses, students (one deleted: a gap in the ids), a
/// reference photo, a session with a processed photo and its faces, and a queued job.
async fn populate(store: &Store) -> String {
    let admin = store
        .create_user("admin", "password-a", Role::Admin)
        .await
        .unwrap();
    let ann = store
        .create_user("ann", "password-b", Role::Instructor)
        .await
        .unwrap();
    let token = store
        .issue_token(ann.id, "laptop", chrono::Duration::days(3))
        .await
        .unwrap();
    for code in ["CS1", "CS2"] {
        let course = store
            .create_course(
                ann.id,
                &CourseFields {
                    name: format!("Course {code}"),
                    code: code.into(),
                    embedding_model: Some("m".into()),
                    match_threshold: Some(0.42),
                    match_margin: None,
                },
            )
            .await
            .unwrap();
        let mut students = Vec::new();
        for name in ["Ada", "Gone", "Bo"] {
            let student = store
                .create_student(
                    ann.scope(),
                    course.id,
                    &StudentFields {
                        name: name.into(),
                        external_id: Some(format!("{code}-{name}")),
                    },
                )
                .await
                .unwrap();
            students.push(student);
        }
        store
            .delete_student(ann.scope(), students[1].id)
            .await
            .unwrap();
        store
            .add_reference_photo(
                ann.scope(),
                students[0].id,
                &NewReference {
                    blob_key: format!("references/{}/r", students[0].id),
                    sha256: format!("{code}-ref"),
                    width: 8,
                    height: 8,
                    crop: face(None, vec![0.6, 0.8]),
                },
            )
            .await
            .unwrap();
        let session = store
            .create_session(
                ann.scope(),
                course.id,
                &SessionFields {
                    title: "W1 — ünïcode".into(),
                    held_at: chrono::Utc::now(),
                },
            )
            .await
            .unwrap();
        let ImageInsert::Stored(image) = store
            .add_session_image(
                ann.scope(),
                session.id,
                &NewImage {
                    blob_key: format!("images/{}/p", session.id),
                    sha256: format!("{code}-sha"),
                    original_name: Some("class.jpg".into()),
                    width: 640,
                    height: 480,
                },
            )
            .await
            .unwrap()
        else {
            panic!("a fresh photo");
        };
        store
            .record_image_faces(
                image.id,
                &[
                    face(Some(format!("crops/{}/0.jpg", image.id)), vec![0.8, 0.6]),
                    face(None, vec![1.0 / 3.0, (8.0f32 / 9.0).sqrt()]),
                ],
            )
            .await
            .unwrap();
        store
            .queue_job(
                JobKind::ProcessSession,
                &format!("{{\"session\":{}}}", session.id),
                course.id,
                admin.id,
                1,
            )
            .await
            .unwrap();
    }
    token.secret
}

/// Everything a store answers about its rows, as text with times to the microsecond (all that
/// PostgreSQL keeps), to compare two stores.
async fn answers(store: &Store) -> String {
    let mut out = String::new();
    out += &format!("{:?}\n", store.list_users(Page::ALL).await.unwrap());
    for user in store.list_users(Page::ALL).await.unwrap().items {
        out += &format!("{:?}\n", store.list_tokens(user.id).await.unwrap());
    }
    let courses = store.list_courses(Scope::All, Page::ALL).await.unwrap();
    out += &format!("{courses:?}\n");
    for course in courses.items {
        let students = store
            .list_students(Scope::All, Some(course.id), Page::ALL)
            .await
            .unwrap();
        for student in &students.items {
            out += &format!(
                "{:?}\n",
                store
                    .list_reference_photos(Scope::All, student.id)
                    .await
                    .unwrap()
            );
        }
        out += &format!("{students:?}\n");
        let sessions = store
            .list_sessions(Scope::All, Some(course.id), Page::ALL)
            .await
            .unwrap();
        for session in &sessions.items {
            out += &format!(
                "{:?}\n",
                store
                    .list_session_images(Scope::All, session.id)
                    .await
                    .unwrap()
            );
        }
        out += &format!("{sessions:?}\n");
        out += &format!(
            "{:?}\n",
            store.course_gallery(course.id, "m").await.unwrap()
        );
    }
    let mut crops = store
        .list_crops(Scope::All, &CropFilter::default(), Page::ALL)
        .await
        .unwrap()
        .items;
    // Across sessions and reference photos the listing's order is the backend's (NULL image ids
    // sort first on SQLite, last on PostgreSQL): by id here.
    crops.sort_by_key(|c| c.id);
    for crop in &crops {
        out += &format!("{:?}\n", store.crop_embeddings(crop.id).await.unwrap());
    }
    out += &format!("{crops:?}\n");
    out += &format!(
        "{:?}\n",
        store.list_jobs(Scope::All, Page::ALL).await.unwrap()
    );
    to_micros(&out)
}

async fn postgres(test: &str) -> Option<(TestDatabase, Store)> {
    let db = TestDatabase::postgres(test).await?;
    let store = db.open().await;
    Some((db, store))
}

#[tokio::test]
async fn a_populated_sqlite_store_reads_back_the_same_from_its_postgresql_copy() {
    let Some((_pg, target)) =
        postgres("a_populated_sqlite_store_reads_back_the_same_from_its_postgresql_copy").await
    else {
        return;
    };
    let sqlite = TestDatabase::sqlite();
    let source = sqlite.open().await;
    let secret = populate(&source).await;

    let copy = RowCopy::prepare(&source, &target).await.unwrap();
    let mut seen = Vec::new();
    let tables = copy
        .run(&mut |step| seen.push(format!("{step:?}")))
        .await
        .unwrap();
    assert_eq!(seen.len(), tables.len());
    let rows = |name: &str| tables.iter().find(|t| t.table == name).unwrap().rows;
    assert_eq!(
        (rows("users"), rows("students"), rows("face_crops")),
        (2, 4, 6)
    );
    // Every table is copied, parents before children.
    let order: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
    for (parent, child) in [
        ("users", "courses"),
        ("session_images", "face_crops"),
        ("face_crops", "face_embeddings"),
    ] {
        let at = |name| order.iter().position(|t| *t == name).unwrap();
        assert!(at(parent) < at(child), "{order:?}");
    }
    assert!(order.len() >= 14, "{order:?}");

    let expected = answers(&source).await;
    assert!(expected.contains("W1 — ünïcode") && expected.contains("0.42"));
    assert_eq!(answers(&target).await, expected);
    // The token still opens the account; new rows get ids past the copied ones.
    let (user, _) = target.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(user.username, "ann");
    let max_course = source
        .list_courses(Scope::All, Page::ALL)
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.id)
        .max()
        .unwrap();
    let course = target
        .create_course(
            user.id,
            &CourseFields {
                name: "New".into(),
                code: "NEW".into(),
                embedding_model: None,
                match_threshold: None,
                match_margin: None,
            },
        )
        .await
        .unwrap();
    assert!(course.id > max_course, "{} after {max_course}", course.id);
    let student = target
        .create_student(
            user.scope(),
            course.id,
            &StudentFields {
                name: "Cy".into(),
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert!(student.id > 6, "{}", student.id);

    // Now the target has rows: a second copy is refused and changes nothing.
    let refused = RowCopy::prepare(&source, &target).await.err().unwrap();
    assert!(
        matches!(&refused, CopyError::TargetNotEmpty { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("has rows"), "{refused}");
}

#[tokio::test]
async fn a_target_with_one_row_is_refused_by_name_and_nothing_is_copied() {
    let Some((_pg, target)) =
        postgres("a_target_with_one_row_is_refused_by_name_and_nothing_is_copied").await
    else {
        return;
    };
    let sqlite = TestDatabase::sqlite();
    let source = sqlite.open().await;
    populate(&source).await;
    target
        .create_user("someone", "password-c", Role::Admin)
        .await
        .unwrap();
    let refused = RowCopy::prepare(&source, &target).await.err().unwrap();
    assert_eq!(
        refused.to_string(),
        "the target is not empty: table users has rows; copy into a new, empty database only"
    );
    assert_eq!(
        target
            .list_courses(Scope::All, Page::ALL)
            .await
            .unwrap()
            .items
            .len(),
        0
    );
}

#[tokio::test]
async fn schemas_that_differ_are_refused_naming_what_differs() {
    let Some((pg, target)) = postgres("schemas_that_differ_are_refused_naming_what_differs").await
    else {
        return;
    };
    let sqlite = TestDatabase::sqlite();
    let source = sqlite.open().await;
    populate(&source).await;
    sqlite
        .execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .await;
    pg.execute("ALTER TABLE courses ADD COLUMN colour TEXT")
        .await;
    let refused = RowCopy::prepare(&source, &target).await.err().unwrap();
    let CopyError::SchemaMismatch(differences) = &refused else {
        panic!("{refused}");
    };
    assert_eq!(
        differences,
        &[
            "table notes only in the source".to_owned(),
            "column courses.colour only in the target".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_value_that_cannot_be_read_fails_the_copy_and_leaves_the_target_empty() {
    let Some((_pg, target)) =
        postgres("a_value_that_cannot_be_read_fails_the_copy_and_leaves_the_target_empty").await
    else {
        return;
    };
    let sqlite = TestDatabase::sqlite();
    let source = sqlite.open().await;
    populate(&source).await;
    // Sessions come after users, courses and students: those are written, then rolled back.
    sqlite
        .execute("UPDATE sessions SET held_at = 'next tuesday' WHERE id = 2")
        .await;
    let copy = RowCopy::prepare(&source, &target).await.unwrap();
    let failed = copy.run(&mut |_| {}).await.err().unwrap();
    assert!(
        failed
            .to_string()
            .starts_with("cannot read sessions.held_at"),
        "{failed}"
    );
    assert_eq!(target.count_users().await.unwrap(), 0);
    // With the value repaired, the same target takes the copy.
    sqlite
        .execute("UPDATE sessions SET held_at = created_at WHERE id = 2")
        .await;
    copy.run(&mut |_| {}).await.unwrap();
    assert_eq!(target.count_users().await.unwrap(), 2);
}

#[tokio::test]
async fn blobs_are_copied_to_a_bucket_and_read_back_the_same() {
    let Some(s3) = s3::S3Server::start("blobs_are_copied_to_a_bucket_and_read_back_the_same")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = BlobStore::local(dir.path()).unwrap();
    let mut blobs = Vec::new();
    for (i, key) in [
        "images/1/abc",
        "crops/1/0.jpg",
        "previews/1-run.jpg",
        "references/4/def.face.jpg",
    ]
    .into_iter()
    .enumerate()
    {
        let bytes: Vec<u8> = (0..1000 * (i + 1)).map(|b| (b * 7 + i) as u8).collect();
        source.put(key, Bytes::from(bytes.clone())).await.unwrap();
        blobs.push((key, bytes));
    }
    let target = BlobStore::from_url_with(&s3.url("school"), s3.env()).unwrap();
    let mut progress = Vec::new();
    let copied = copy_blobs(&source, &target, &mut |step| {
        progress.push(format!("{step:?}"))
    })
    .await
    .unwrap();
    assert_eq!(copied, 4);
    assert_eq!(progress, ["Blobs { done: 4, total: 4 }"]);
    for (key, bytes) in &blobs {
        assert_eq!(target.get(key).await.unwrap(), Bytes::from(bytes.clone()));
    }
    assert_eq!(s3.keys("school/").len(), 4);
}

#[tokio::test]
async fn blobs_are_never_copied_into_a_store_holding_blobs_of_something_else() {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = BlobStore::local(from.path()).unwrap();
    let target = BlobStore::local(to.path()).unwrap();
    for key in ["images/1/abc", "crops/1/0.jpg"] {
        source.put(key, Bytes::from_static(b"ours")).await.unwrap();
    }
    // Another application's object under the target prefix: refused, nothing copied.
    target
        .put("backups/2024.tar", Bytes::from_static(b"theirs"))
        .await
        .unwrap();
    let refused = copy_blobs(&source, &target, &mut |_| {}).await;
    assert!(
        matches!(&refused, Err(CopyError::BlobTargetNotEmpty { key }) if key == "backups/2024.tar"),
        "{refused:?}"
    );
    assert!(target.get("images/1/abc").await.is_err(), "copied anyway");
    // A copy that stopped half-way (only the source's own blobs there) may be run again.
    target.delete("backups/2024.tar").await.unwrap();
    target
        .put("images/1/abc", Bytes::from_static(b"ou"))
        .await
        .unwrap();
    assert_eq!(copy_blobs(&source, &target, &mut |_| {}).await.unwrap(), 2);
    assert_eq!(
        target.get("images/1/abc").await.unwrap(),
        Bytes::from_static(b"ours")
    );
}
