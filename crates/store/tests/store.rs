//! The store against real databases, each test on SQLite and on PostgreSQL (see
//! `attendansee_store::testing`): scoping, conflicts, tokens, persistence across reopen.

use attendansee_store::testing::each_backend;
use attendansee_store::{CourseFields, Page, Role, Scope, Store, StoreError, StudentFields};
use attendansee_vocabulary::{JobKind, Reason, Source};
use chrono::Duration;

/// A node's lease on the jobs it claims: long enough never to run out during a test.
fn node(name: &str) -> attendansee_store::JobLease {
    attendansee_store::JobLease {
        owner: name.into(),
        duration: std::time::Duration::from_secs(600),
    }
}

fn course(code: &str) -> CourseFields {
    CourseFields {
        name: format!("Course {code}"),
        code: code.into(),
        embedding_model: None,
        match_threshold: None,
        match_margin: None,
    }
}

#[tokio::test]
async fn scoped_reads_and_writes_treat_foreign_objects_as_missing() {
    each_backend(
        "scoped_reads_and_writes_treat_foreign_objects_as_missing",
        async |db| {
            let store = db.open().await;
            let alice = store
                .create_user("alice", "password-a", Role::Instructor)
                .await
                .unwrap();
            let bob = store
                .create_user("bob", "password-b", Role::Instructor)
                .await
                .unwrap();
            let c = store
                .create_course(alice.id, &course("CS101"))
                .await
                .unwrap();

            assert_eq!(
                store.get_course(alice.scope(), c.id).await.unwrap().code,
                "CS101"
            );
            assert_eq!(store.get_course(Scope::All, c.id).await.unwrap().id, c.id);
            for result in [
                store.get_course(bob.scope(), c.id).await.map(|_| ()),
                store
                    .update_course(bob.scope(), c.id, &course("X"))
                    .await
                    .map(|_| ()),
                store.delete_course(bob.scope(), c.id).await.map(|_| ()),
                store
                    .create_student(
                        bob.scope(),
                        c.id,
                        &StudentFields {
                            name: "Eve".into(),
                            external_id: None,
                        },
                    )
                    .await
                    .map(|_| ()),
            ] {
                assert!(
                    matches!(
                        result,
                        Err(StoreError::NotFound {
                            entity: "Course",
                            ..
                        })
                    ),
                    "{result:?}"
                );
            }
            assert_eq!(
                store
                    .list_courses(
                        bob.scope(),
                        Page {
                            number: 1,
                            size: 10
                        }
                    )
                    .await
                    .unwrap()
                    .total,
                0
            );
            assert_eq!(
                store
                    .list_courses(
                        Scope::All,
                        Page {
                            number: 1,
                            size: 10
                        }
                    )
                    .await
                    .unwrap()
                    .total,
                1
            );

            let s = store
                .create_student(
                    alice.scope(),
                    c.id,
                    &StudentFields {
                        name: "Ada".into(),
                        external_id: Some("1".into()),
                    },
                )
                .await
                .unwrap();
            assert!(matches!(
                store.get_student(bob.scope(), s.id).await,
                Err(StoreError::NotFound { .. })
            ));
            assert!(matches!(
                store.delete_student(bob.scope(), s.id).await,
                Err(StoreError::NotFound { .. })
            ));
            store.delete_student(alice.scope(), s.id).await.unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn usernames_from_before_normalization_are_renamed_unless_two_would_merge() {
    each_backend(
        "usernames_from_before_normalization_are_renamed_unless_two_would_merge",
        async |db| {
            let store = db.open().await;
            // As an older version stored them (the store itself does not normalize).
            for name in ["ÉMILE", "Bob", "bob", "ｉｎｓｔ１"] {
                store
                    .create_user(name, "horse battery staple", Role::Instructor)
                    .await
                    .unwrap();
            }
            let normalize = |name: &str| -> String {
                // Stands in for the API's rule (NFKC, then lower case) on these names.
                match name {
                    "ｉｎｓｔ１" => "inst1".into(),
                    other => other.to_lowercase(),
                }
            };
            let clashes = store.normalize_usernames(normalize).await.unwrap();
            assert_eq!(clashes, ["Bob"]);
            for name in ["émile", "bob", "Bob", "inst1"] {
                assert!(
                    store.find_user_by_name(name).await.unwrap().is_some(),
                    "{name}"
                );
            }
            assert!(store.find_user_by_name("ÉMILE").await.unwrap().is_none());
            // Running it again changes nothing.
            assert_eq!(store.normalize_usernames(normalize).await.unwrap(), ["Bob"]);
        },
    )
    .await;
}

#[tokio::test]
async fn unique_violations_are_conflicts_and_quotes_are_just_data() {
    each_backend(
        "unique_violations_are_conflicts_and_quotes_are_just_data",
        async |db| {
            let store = db.open().await;
            let alice = store
                .create_user("alice", "password-a", Role::Instructor)
                .await
                .unwrap();
            let tricky = "x'); DROP TABLE courses; --";
            store
                .create_course(alice.id, &course(tricky))
                .await
                .unwrap();
            let err = store
                .create_course(alice.id, &course(tricky))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err}");
            let err = store
                .create_user("alice", "whatever1", Role::Admin)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err}");
            assert_eq!(
                store
                    .list_courses(
                        Scope::All,
                        Page {
                            number: 1,
                            size: 10
                        }
                    )
                    .await
                    .unwrap()
                    .items[0]
                    .code,
                tricky
            );
        },
    )
    .await;
}

#[tokio::test]
async fn tokens_authenticate_until_revoked_or_expired_and_survive_reopen() {
    each_backend(
        "tokens_authenticate_until_revoked_or_expired_and_survive_reopen",
        async |db| {
            let store = db.open().await;
            let alice = store
                .create_user("alice", "password-a", Role::Instructor)
                .await
                .unwrap();
            assert!(
                store
                    .verify_login("alice", "password-a")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                store
                    .verify_login("alice", "password-b")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(
                store
                    .verify_login("nobody", "password-a")
                    .await
                    .unwrap()
                    .is_none()
            );

            let live = store
                .issue_token(alice.id, "cli", Duration::days(1))
                .await
                .unwrap();
            let expired = store
                .issue_token(alice.id, "old", Duration::seconds(-1))
                .await
                .unwrap();
            let revoked = store
                .issue_token(alice.id, "gone", Duration::days(1))
                .await
                .unwrap();
            store
                .revoke_token(alice.id, revoked.token.id)
                .await
                .unwrap();

            assert_eq!(
                store
                    .authenticate(&live.secret)
                    .await
                    .unwrap()
                    .unwrap()
                    .0
                    .id,
                alice.id
            );
            assert!(store.authenticate(&expired.secret).await.unwrap().is_none());
            assert!(store.authenticate(&revoked.secret).await.unwrap().is_none());
            let listed: Vec<_> = store
                .list_tokens(alice.id)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.label)
                .collect();
            assert_eq!(listed, ["cli"]);

            store.close().await;
            let store = db.open().await;
            assert_eq!(
                store
                    .authenticate(&live.secret)
                    .await
                    .unwrap()
                    .unwrap()
                    .0
                    .username,
                "alice"
            );

            let update = attendansee_store::UserUpdate {
                active: Some(false),
                ..Default::default()
            };
            store.update_user(alice.id, update).await.unwrap();
            assert!(store.authenticate(&live.secret).await.unwrap().is_none());
            assert!(
                store
                    .verify_login("alice", "password-a")
                    .await
                    .unwrap()
                    .is_none()
            );
        },
    )
    .await;
}

mod photos_and_jobs {
    use super::*;
    use attendansee_store::{CropFilter, ImageInsert, JobStatus, NewCrop, NewImage, SessionFields};

    async fn session(store: &Store) -> (attendansee_store::User, i64, i64) {
        let alice = store
            .create_user("alice", "password-a", Role::Instructor)
            .await
            .unwrap();
        let c = store.create_course(alice.id, &course("CS1")).await.unwrap();
        let fields = SessionFields {
            title: "W1".into(),
            held_at: chrono::Utc::now(),
        };
        let s = store
            .create_session(alice.scope(), c.id, &fields)
            .await
            .unwrap();
        (alice, c.id, s.id)
    }

    fn image(sha: &str) -> NewImage {
        NewImage {
            blob_key: format!("images/{sha}"),
            sha256: sha.into(),
            original_name: Some("a.jpg".into()),
            width: 640,
            height: 480,
        }
    }

    fn crop(model: &str) -> NewCrop {
        NewCrop {
            bbox: [1.0, 2.0, 30.0, 40.0],
            landmarks: [[5.0, 6.0]; 5],
            score: 0.9,
            quality_size: 30.0,
            quality_blur: Some(12.5),
            crop_blob_key: None,
            embedding: Some((model.into(), vec![0.6, 0.8])),
        }
    }

    #[tokio::test]
    async fn duplicate_photos_are_reported_and_faces_are_recorded_once() {
        each_backend(
            "duplicate_photos_are_reported_and_faces_are_recorded_once",
            async |db| {
                let store = db.open().await;
                let (alice, _, s) = session(&store).await;
                let ImageInsert::Stored(first) = store
                    .add_session_image(alice.scope(), s, &image("aa"))
                    .await
                    .unwrap()
                else {
                    panic!()
                };
                let ImageInsert::Duplicate(again) = store
                    .add_session_image(alice.scope(), s, &image("aa"))
                    .await
                    .unwrap()
                else {
                    panic!()
                };
                assert_eq!(first.id, again.id);
                assert_eq!(store.unprocessed_images(s).await.unwrap().len(), 1);

                let ids = store
                    .record_image_faces(first.id, &[crop("m"), crop("m")])
                    .await
                    .unwrap();
                assert_eq!(ids.len(), 2);
                assert!(
                    store
                        .record_image_faces(first.id, &[crop("m")])
                        .await
                        .unwrap()
                        .is_empty(),
                    "processed photos are not re-recorded"
                );
                assert!(store.unprocessed_images(s).await.unwrap().is_empty());
                let filter = CropFilter {
                    session: Some(s),
                    ..Default::default()
                };
                let crops = store
                    .list_crops(
                        alice.scope(),
                        &filter,
                        Page {
                            number: 1,
                            size: 50,
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(crops.total, 2);
                assert_eq!(crops.items[0].landmarks, [[5.0, 6.0]; 5]);
                assert_eq!(
                    store.crop_embeddings(ids[0]).await.unwrap()[0].vector,
                    [0.6, 0.8]
                );

                assert!(
                    !store
                        .save_embedding(ids[0], "m", &[1.0, 0.0], false)
                        .await
                        .unwrap(),
                    "kept without replace"
                );
                assert_eq!(
                    store.crop_embeddings(ids[0]).await.unwrap()[0].vector,
                    [0.6, 0.8]
                );
                assert!(
                    store
                        .save_embedding(ids[0], "m", &[1.0, 0.0], true)
                        .await
                        .unwrap()
                );
                let embeddings = store.crop_embeddings(ids[0]).await.unwrap();
                assert_eq!(
                    (embeddings.len(), embeddings[0].vector.clone()),
                    (1, vec![1.0, 0.0])
                );

                let bob = store
                    .create_user("bob", "password-b", Role::Instructor)
                    .await
                    .unwrap();
                assert!(matches!(
                    store.get_crop(bob.scope(), ids[0]).await,
                    Err(StoreError::NotFound { .. })
                ));
                assert!(matches!(
                    store.get_session_image(bob.scope(), first.id).await,
                    Err(StoreError::NotFound { .. })
                ));
            },
        )
        .await;
    }

    #[tokio::test]
    async fn users_take_turns_for_the_job_runner() {
        each_backend("users_take_turns_for_the_job_runner", async |db| {
            let store = db.open().await;
            let (alice, c, _) = session(&store).await;
            let bob = store
                .create_user("bob", "password-b", Role::Instructor)
                .await
                .unwrap();
            // Alice queues three sessions, then Bob one.
            let mut ids = Vec::new();
            for (user, payload) in [
                (alice.id, "a1"),
                (alice.id, "a2"),
                (alice.id, "a3"),
                (bob.id, "b1"),
            ] {
                let (job, _) = store
                    .queue_job(JobKind::ProcessSession, payload, c, user, 1)
                    .await
                    .unwrap();
                ids.push(job.id);
            }
            let mut order = Vec::new();
            while let Some(job) = store.claim_job(&node("a")).await.unwrap() {
                order.push(job.payload);
                store
                    .finish_job(job.id, "a", (JobStatus::Succeeded, None), None)
                    .await
                    .unwrap();
                // Started one after the other, as the runner does.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert_eq!(order, ["a1", "b1", "a2", "a3"]);
        })
        .await;
    }

    #[tokio::test]
    async fn jobs_are_deduplicated_claimed_cancelled_and_requeued_after_a_restart() {
        each_backend(
            "jobs_are_deduplicated_claimed_cancelled_and_requeued_after_a_restart",
            async |db| {
                let store = db.open().await;
                let (alice, c, _) = session(&store).await;
                let (job, created) = store
                    .queue_job(JobKind::ProcessSession, "{\"session\":1}", c, alice.id, 3)
                    .await
                    .unwrap();
                assert!(created);
                let (same, created) = store
                    .queue_job(JobKind::ProcessSession, "{\"session\":1}", c, alice.id, 3)
                    .await
                    .unwrap();
                assert!(!created && same.id == job.id);
                let claimed = store.claim_job(&node("a")).await.unwrap().unwrap();
                assert_eq!((claimed.id, claimed.status), (job.id, JobStatus::Running));
                assert!(store.claim_job(&node("a")).await.unwrap().is_none());
                assert_eq!(store.requeue_interrupted_jobs().await.unwrap(), 1);
                assert_eq!(store.job_status(job.id).await.unwrap(), JobStatus::Queued);
                store.claim_job(&node("a")).await.unwrap().unwrap();
                assert!(
                    store
                        .job_progress(job.id, "a", (2, 3), "[]", "{}")
                        .await
                        .unwrap()
                );
                let cancelled = store.cancel_job(alice.scope(), job.id, None).await.unwrap();
                assert_eq!(
                    (cancelled.status, cancelled.done),
                    (JobStatus::Cancelled, 2)
                );
                store
                    .finish_job(job.id, "a", (JobStatus::Succeeded, None), None)
                    .await
                    .unwrap();
                assert_eq!(
                    store.job_status(job.id).await.unwrap(),
                    JobStatus::Cancelled,
                    "a cancelled job stays cancelled"
                );
                assert!(matches!(
                    store.cancel_job(alice.scope(), job.id, None).await,
                    Err(StoreError::Conflict(_))
                ));
                let bob = store
                    .create_user("bob", "password-b", Role::Instructor)
                    .await
                    .unwrap();
                assert!(matches!(
                    store.get_job(bob.scope(), job.id).await,
                    Err(StoreError::NotFound { .. })
                ));
            },
        )
        .await;
    }
}

mod concurrency {
    use super::*;
    use attendansee_store::{ImageInsert, NewCrop, NewImage, SessionFields};

    /// Nodes of one PostgreSQL database run their transactions at once (no database-wide write
    /// lock as in SQLite): the same job queued by many at once is queued once, and the same
    /// photo's faces recorded by many at once are recorded once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_queue_one_job_and_record_a_photos_faces_once() {
        each_backend(
            "racing_writers_queue_one_job_and_record_a_photos_faces_once",
            async |db| {
                let store = db.open().await;
                let alice = store
                    .create_user("alice", "password-a", Role::Instructor)
                    .await
                    .unwrap();
                let c = store.create_course(alice.id, &course("C")).await.unwrap();
                let fields = SessionFields {
                    title: "W".into(),
                    held_at: chrono::Utc::now(),
                };
                let s = store
                    .create_session(alice.scope(), c.id, &fields)
                    .await
                    .unwrap();
                let new = NewImage {
                    blob_key: "k".into(),
                    sha256: "0".repeat(64),
                    original_name: None,
                    width: 1,
                    height: 1,
                };
                let ImageInsert::Stored(image) = store
                    .add_session_image(alice.scope(), s.id, &new)
                    .await
                    .unwrap()
                else {
                    panic!("a new photo")
                };
                let crop = NewCrop {
                    bbox: [0.0; 4],
                    landmarks: [[0.0; 2]; 5],
                    score: 1.0,
                    quality_size: 1.0,
                    quality_blur: None,
                    crop_blob_key: None,
                    embedding: Some(("m".into(), vec![1.0])),
                };
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..16 {
                    let (store, crop) = (store.clone(), crop.clone());
                    let (course, user) = (c.id, alice.id);
                    tasks.spawn(async move {
                        let (job, _) = store
                            .queue_job(JobKind::ProcessSession, "{\"same\": 1}", course, user, 1)
                            .await?;
                        let crops = store.record_image_faces(image.id, &[crop]).await?;
                        Ok::<_, StoreError>((job.id, crops.len()))
                    });
                }
                let mut jobs = std::collections::HashSet::new();
                let mut recorded = 0;
                while let Some(result) = tasks.join_next().await {
                    let (job, crops) = result.unwrap().unwrap();
                    jobs.insert(job);
                    recorded += crops;
                }
                assert_eq!(jobs.len(), 1, "{jobs:?}");
                assert_eq!(recorded, 1);
                let listed = store
                    .list_crops(
                        Scope::All,
                        &attendansee_store::CropFilter::default(),
                        Page::ALL,
                    )
                    .await
                    .unwrap();
                assert_eq!(listed.total, 1);
            },
        )
        .await;
    }

    /// Write transactions that read first must not fail with SQLITE_BUSY when they race
    /// (found when session photos began to be processed concurrently).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_write_transactions_all_succeed() {
        each_backend("concurrent_write_transactions_all_succeed", async |db| {
            let store = db.open().await;
            let alice = store
                .create_user("alice", "password-a", Role::Instructor)
                .await
                .unwrap();
            let c = store.create_course(alice.id, &course("C")).await.unwrap();
            let s = store
                .create_session(
                    alice.scope(),
                    c.id,
                    &SessionFields {
                        title: "W".into(),
                        held_at: chrono::Utc::now(),
                    },
                )
                .await
                .unwrap();
            let mut images = Vec::new();
            for i in 0..24 {
                let new = NewImage {
                    blob_key: format!("k{i}"),
                    sha256: format!("{i:064}"),
                    original_name: None,
                    width: 1,
                    height: 1,
                };
                let ImageInsert::Stored(image) = store
                    .add_session_image(alice.scope(), s.id, &new)
                    .await
                    .unwrap()
                else {
                    panic!()
                };
                images.push(image.id);
            }
            let crop = NewCrop {
                bbox: [0.0; 4],
                landmarks: [[0.0; 2]; 5],
                score: 1.0,
                quality_size: 1.0,
                quality_blur: None,
                crop_blob_key: None,
                embedding: Some(("m".into(), vec![1.0])),
            };
            let mut tasks = tokio::task::JoinSet::new();
            for (i, image) in images.into_iter().enumerate() {
                let (store, crop) = (store.clone(), crop.clone());
                let scope = alice.scope();
                let course = c.id;
                tasks.spawn(async move {
                    store
                        .record_image_faces(image, &[crop.clone(), crop])
                        .await
                        .map(drop)?;
                    let student = StudentFields {
                        name: format!("S{i}"),
                        external_id: Some(format!("{i}")),
                    };
                    store
                        .create_student(scope, course, &student)
                        .await
                        .map(drop)?;
                    store
                        .queue_job(JobKind::ProcessSession, &format!("{i}"), course, 1, 1)
                        .await
                        .map(drop)
                });
            }
            while let Some(result) = tasks.join_next().await {
                result.unwrap().unwrap();
            }
        })
        .await;
    }
}

/// A session of a new course with one processed photo of `faces` faces (2-D embeddings).
#[tokio::test]
async fn faces_too_poor_to_recognise_are_left_out_of_clustering() {
    each_backend(
        "faces_too_poor_to_recognise_are_left_out_of_clustering",
        async |db| {
            let store = db.open().await;
            let (course, _, crops) = photo_with_faces(&store, &[[1.0, 0.0]; 5]).await;
            use attendansee_store::AutoDecision;
            let reasons = [
                Reason::BelowThreshold,
                Reason::TooSmall,
                Reason::Blurred,
                Reason::Profile,
            ];
            let decisions: Vec<AutoDecision> = reasons
                .iter()
                .zip(&crops)
                .map(|(&reason, &crop_id)| AutoDecision {
                    crop_id,
                    student_id: None,
                    reason,
                    best: None,
                    runner_up: None,
                })
                .collect();
            store
                .save_auto_decisions(course, "m", &decisions)
                .await
                .unwrap();
            let inputs = store.cluster_inputs(course, "m").await.unwrap();
            let mut unknown: Vec<i64> = inputs.unclustered.iter().map(|v| v.crop_id).collect();
            unknown.sort();
            // The below-threshold face, and the one no assignment has looked at yet.
            assert_eq!(unknown, vec![crops[0], crops[4]]);
        },
    )
    .await;
}

async fn photo_with_faces(store: &Store, faces: &[[f32; 2]]) -> (i64, i64, Vec<i64>) {
    let owner = store
        .create_user("rec", "horse battery staple", Role::Instructor)
        .await
        .unwrap();
    let course = store.create_course(owner.id, &course("REC")).await.unwrap();
    let session = store
        .create_session(
            Scope::All,
            course.id,
            &attendansee_store::SessionFields {
                title: "W1".into(),
                held_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    let image = attendansee_store::NewImage {
        blob_key: "k".into(),
        sha256: "ab".repeat(32),
        original_name: None,
        width: 8,
        height: 8,
    };
    let attendansee_store::ImageInsert::Stored(image) = store
        .add_session_image(Scope::All, session.id, &image)
        .await
        .unwrap()
    else {
        panic!("fresh photo");
    };
    let crops: Vec<attendansee_store::NewCrop> = faces
        .iter()
        .map(|v| attendansee_store::NewCrop {
            bbox: [0.0, 0.0, 4.0, 4.0],
            landmarks: [[1.0, 1.0]; 5],
            score: 0.9,
            quality_size: 4.0,
            quality_blur: None,
            crop_blob_key: None,
            embedding: Some(("m".into(), v.to_vec())),
        })
        .collect();
    let ids = store.record_image_faces(image.id, &crops).await.unwrap();
    (course.id, session.id, ids)
}

#[tokio::test]
async fn automatic_decisions_never_overwrite_a_manual_one_and_not_a_student_leaves_every_list() {
    each_backend(
        "automatic_decisions_never_overwrite_a_manual_one_and_not_a_student_leaves_every_list",
        async |db| {
            let store = db.open().await;
            let (course, session, crops) =
                photo_with_faces(&store, &[[1.0, 0.0], [0.0, 1.0]]).await;
            let fields = |name: &str| StudentFields {
                name: name.into(),
                external_id: None,
            };
            let ada = store
                .create_student(Scope::All, course, &fields("Ada"))
                .await
                .unwrap();
            let bob = store
                .create_student(Scope::All, course, &fields("Bob"))
                .await
                .unwrap();
            use attendansee_store::{AutoDecision, Correction};
            store
                .correct_crop(Scope::All, crops[0], Correction::Assign(ada.id))
                .await
                .unwrap();
            store
                .correct_crop(Scope::All, crops[1], Correction::NotAStudent)
                .await
                .unwrap();
            // An automatic run that would decide otherwise for both (e.g. one that started earlier).
            let decisions: Vec<AutoDecision> = crops
                .iter()
                .map(|&crop_id| AutoDecision {
                    crop_id,
                    student_id: Some(bob.id),
                    reason: Reason::Matched,
                    best: Some((bob.id, 0.9)),
                    runner_up: None,
                })
                .collect();
            store
                .save_auto_decisions(course, "m", &decisions)
                .await
                .unwrap();
            let first = store.get_crop(Scope::All, crops[0]).await.unwrap();
            assert_eq!(
                (first.student_id, first.assignment_source),
                (Some(ada.id), Some(Source::Manual))
            );
            let second = store.get_crop(Scope::All, crops[1]).await.unwrap();
            assert!(
                second.not_a_student && second.student_id.is_none() && second.decision.is_none()
            );
            // Neither is offered to assignment or clustering again; the manual face is a known face of Ada.
            assert!(
                store
                    .assignable_crops(session, "m")
                    .await
                    .unwrap()
                    .is_empty()
            );
            let inputs = store.cluster_inputs(course, "m").await.unwrap();
            assert!(inputs.clustered.is_empty() && inputs.unclustered.is_empty());
            let gallery = store.course_gallery(course, "m").await.unwrap();
            assert_eq!(
                gallery
                    .iter()
                    .map(|v| (v.crop_id, v.label))
                    .collect::<Vec<_>>(),
                vec![(crops[0], ada.id)]
            );
            // Back to automatic: the next run decides again.
            store
                .correct_crop(Scope::All, crops[0], Correction::Automatic)
                .await
                .unwrap();
            store
                .save_auto_decisions(course, "m", &decisions[..1])
                .await
                .unwrap();
            let first = store.get_crop(Scope::All, crops[0]).await.unwrap();
            assert_eq!(
                (first.student_id, first.assignment_source),
                (Some(bob.id), Some(Source::Auto))
            );
        },
    )
    .await;
}

#[tokio::test]
async fn a_correction_is_undone_once_back_to_exactly_what_the_face_was() {
    each_backend(
        "a_correction_is_undone_once_back_to_exactly_what_the_face_was",
        async |db| {
            let store = db.open().await;
            let (course, _, crops) =
                photo_with_faces(&store, &[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).await;
            let fields = |name: &str| StudentFields {
                name: name.into(),
                external_id: None,
            };
            let ada = store
                .create_student(Scope::All, course, &fields("Ada"))
                .await
                .unwrap();
            let bob = store
                .create_student(Scope::All, course, &fields("Bob"))
                .await
                .unwrap();
            use attendansee_store::{AutoDecision, Correction, StoreError};
            let nothing = store.undo_crop(Scope::All, crops[0]).await.unwrap_err();
            assert!(matches!(nothing, StoreError::Conflict(_)), "{nothing:?}");
            // An automatic decision, with its candidates, then a person's "not a student" (which
            // forgets the candidates): undo brings all of it back.
            let auto = AutoDecision {
                crop_id: crops[0],
                student_id: Some(bob.id),
                reason: Reason::Matched,
                best: Some((bob.id, 0.9)),
                runner_up: Some((ada.id, 0.4)),
            };
            store
                .save_auto_decisions(course, "m", &[auto])
                .await
                .unwrap();
            let before = store.get_crop(Scope::All, crops[0]).await.unwrap();
            assert_eq!(before.assignment_source, Some(Source::Auto));
            store
                .correct_crop(Scope::All, crops[0], Correction::NotAStudent)
                .await
                .unwrap();
            let undone = store.undo_crop(Scope::All, crops[0]).await.unwrap();
            assert_eq!(format!("{undone:?}"), format!("{before:?}"));
            // One level: the second undo has nothing left.
            let again = store.undo_crop(Scope::All, crops[0]).await.unwrap_err();
            assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
            // Assign by hand twice: undo goes back to the first manual choice only.
            store
                .correct_crop(Scope::All, crops[0], Correction::Assign(ada.id))
                .await
                .unwrap();
            store
                .correct_crop(Scope::All, crops[0], Correction::Assign(bob.id))
                .await
                .unwrap();
            let undone = store.undo_crop(Scope::All, crops[0]).await.unwrap();
            assert_eq!(
                (undone.student_id, undone.assignment_source),
                (Some(ada.id), Some(Source::Manual))
            );
            // Naming a group: each face goes back to unknown, in its group again.
            let clusters = store
                .replace_clusters(course, "m", &[vec![crops[1], crops[2]]])
                .await
                .unwrap();
            store
                .correct_crop(Scope::All, crops[2], Correction::Assign(ada.id))
                .await
                .unwrap();
            store
                .name_cluster(Scope::All, clusters[0], bob.id)
                .await
                .unwrap();
            let named = store.get_crop(Scope::All, crops[1]).await.unwrap();
            assert_eq!(
                (named.student_id, named.assignment_source, named.cluster_id),
                (Some(bob.id), Some(Source::Cluster), None)
            );
            let undone = store.undo_crop(Scope::All, crops[1]).await.unwrap();
            assert_eq!(
                (
                    undone.student_id,
                    undone.assignment_source,
                    undone.cluster_id
                ),
                (None, None, None),
                "its emptied group is gone, so the face is back without one"
            );
            // The face assigned by hand out of that group comes back unknown, without the group.
            let undone = store.undo_crop(Scope::All, crops[2]).await.unwrap();
            assert_eq!(
                (
                    undone.student_id,
                    undone.assignment_source,
                    undone.cluster_id
                ),
                (None, None, None)
            );
        },
    )
    .await;
}

#[tokio::test]
async fn cluster_ids_are_never_reused_and_stale_cluster_writes_change_nothing() {
    each_backend(
        "cluster_ids_are_never_reused_and_stale_cluster_writes_change_nothing",
        async |db| {
            let store = db.open().await;
            let (course, _, crops) =
                photo_with_faces(&store, &[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).await;
            let first = store
                .replace_clusters(course, "m", &[vec![crops[0], crops[1]]])
                .await
                .unwrap();
            // A re-cluster deletes that cluster and makes a new one: it must get a new id, or a client
            // still naming the old id would name other faces.
            let second = store
                .replace_clusters(course, "m", &[vec![crops[1], crops[2]]])
                .await
                .unwrap();
            assert!(second[0] > first[0], "{first:?} then {second:?}");
            // An incremental step computed before the re-cluster joins a face to the deleted cluster:
            // nothing happens (no foreign-key failure, no face moved).
            store
                .add_to_clusters(course, "m", &[(crops[0], first[0])], &[])
                .await
                .unwrap();
            let crop = store.get_crop(Scope::All, crops[0]).await.unwrap();
            assert_eq!(crop.cluster_id, None);
            // Nor does it pull a face out of a cluster a person merged (locked).
            let (a, b) = (second[0], {
                let ids = store
                    .add_to_clusters(course, "m", &[], &[vec![crops[0]]])
                    .await
                    .unwrap();
                ids[0]
            });
            let merged = store.merge_clusters(Scope::All, &[a, b]).await.unwrap();
            assert!(merged.locked);
            store
                .add_to_clusters(course, "m", &[], &[vec![crops[0], crops[2]]])
                .await
                .unwrap();
            let kept = store.get_cluster(Scope::All, a).await.unwrap();
            assert_eq!(kept.members, vec![crops[0], crops[1], crops[2]]);
        },
    )
    .await;
}

#[tokio::test]
async fn a_face_a_person_set_to_nobody_is_resolved_for_attendance() {
    each_backend(
        "a_face_a_person_set_to_nobody_is_resolved_for_attendance",
        async |db| {
            let store = db.open().await;
            let (_, session, crops) = photo_with_faces(&store, &[[1.0, 0.0]]).await;
            assert_eq!(
                store
                    .session_facts(Scope::All, session)
                    .await
                    .unwrap()
                    .unresolved_faces,
                1
            );
            store
                .correct_crop(
                    Scope::All,
                    crops[0],
                    attendansee_store::Correction::Unassign,
                )
                .await
                .unwrap();
            assert_eq!(
                store
                    .session_facts(Scope::All, session)
                    .await
                    .unwrap()
                    .unresolved_faces,
                0
            );
        },
    )
    .await;
}

/// Deletions hand back the blob keys of what they deleted (photos, reference photos and the
/// crops of both), and only keys no remaining row references; the sweep removes the rest.
mod deleted_blobs {
    use super::*;
    use attendansee_store::{
        BlobStore, ImageInsert, NewCrop, NewImage, NewReference, SessionFields, sweep_orphan_blobs,
    };
    use bytes::Bytes;

    /// A course with a student (one reference photo) and a session (one processed photo with
    /// its preview and two faces, one of them without a crop image), and the blob keys of all
    /// of it.
    struct Fixture {
        course: i64,
        student: i64,
        session: i64,
        image: i64,
        reference: i64,
        photo_keys: Vec<String>,
        reference_keys: Vec<String>,
    }

    impl Fixture {
        fn all_keys(&self) -> Vec<String> {
            sorted([self.photo_keys.clone(), self.reference_keys.clone()].concat())
        }
    }

    fn sorted(mut keys: Vec<String>) -> Vec<String> {
        keys.sort();
        keys
    }

    fn face(crop_blob_key: Option<String>) -> NewCrop {
        NewCrop {
            bbox: [1.0, 2.0, 30.0, 40.0],
            landmarks: [[5.0, 6.0]; 5],
            score: 0.9,
            quality_size: 30.0,
            quality_blur: None,
            crop_blob_key,
            embedding: Some(("m".into(), vec![0.6, 0.8])),
        }
    }

    async fn fixture(store: &Store, owner: &attendansee_store::User, code: &str) -> Fixture {
        let c = store.create_course(owner.id, &course(code)).await.unwrap();
        let student = store
            .create_student(
                owner.scope(),
                c.id,
                &StudentFields {
                    name: "Ada".into(),
                    external_id: None,
                },
            )
            .await
            .unwrap();
        let session = store
            .create_session(
                owner.scope(),
                c.id,
                &SessionFields {
                    title: "W1".into(),
                    held_at: chrono::Utc::now(),
                },
            )
            .await
            .unwrap();
        let photo_key = format!("images/{}/{code}", session.id);
        let new_image = NewImage {
            blob_key: photo_key.clone(),
            sha256: format!("{code}-sha"),
            original_name: None,
            width: 640,
            height: 480,
        };
        let ImageInsert::Stored(image) = store
            .add_session_image(owner.scope(), session.id, &new_image)
            .await
            .unwrap()
        else {
            panic!("fresh photo")
        };
        let crop_key = format!("crops/{}/0.jpg", image.id);
        store
            .record_image_faces(image.id, &[face(Some(crop_key.clone())), face(None)])
            .await
            .unwrap();
        let preview_key = attendansee_store::blob_keys::session_preview(image.id, "run");
        store
            .set_image_preview(image.id, &preview_key)
            .await
            .unwrap();
        let recorded = store.get_session_image(Scope::All, image.id).await.unwrap();
        assert_eq!(recorded.preview_blob_key.as_deref(), Some(&*preview_key));
        let reference_key = format!("references/{}/{code}", student.id);
        let reference_crop = format!("{reference_key}.face.jpg");
        let reference = store
            .add_reference_photo(
                owner.scope(),
                student.id,
                &NewReference {
                    blob_key: reference_key.clone(),
                    sha256: format!("{code}-ref"),
                    width: 8,
                    height: 8,
                    crop: face(Some(reference_crop.clone())),
                },
            )
            .await
            .unwrap();
        Fixture {
            course: c.id,
            student: student.id,
            session: session.id,
            image: image.id,
            reference: reference.id,
            photo_keys: sorted(vec![photo_key, crop_key, preview_key]),
            reference_keys: sorted(vec![reference_key, reference_crop]),
        }
    }

    #[tokio::test]
    async fn each_deletion_returns_the_blob_keys_of_the_rows_it_deleted() {
        each_backend(
            "each_deletion_returns_the_blob_keys_of_the_rows_it_deleted",
            async |db| {
                let store = db.open().await;
                let alice = store
                    .create_user("alice", "password-a", Role::Instructor)
                    .await
                    .unwrap();
                let bob = store
                    .create_user("bob", "password-b", Role::Instructor)
                    .await
                    .unwrap();
                let [a, b, c, d, e] =
                    ["A", "B", "C", "D", "E"].map(|code| fixture(&store, &alice, code));
                let (a, b, c, d, e) = (a.await, b.await, c.await, d.await, e.await);

                // Out of scope: refused, and nothing is deleted.
                assert!(matches!(
                    store.delete_session_image(bob.scope(), a.image).await,
                    Err(StoreError::NotFound { .. })
                ));
                assert!(matches!(
                    store.delete_reference_photo(bob.scope(), a.reference).await,
                    Err(StoreError::NotFound { .. })
                ));
                let referenced = store.referenced_blob_keys().await.unwrap();
                assert!(a.all_keys().iter().all(|k| referenced.contains(k)));

                let keys = store.delete_course(alice.scope(), a.course).await.unwrap();
                assert_eq!(sorted(keys), a.all_keys());
                let keys = store
                    .delete_session(alice.scope(), b.session)
                    .await
                    .unwrap();
                assert_eq!(sorted(keys), b.photo_keys);
                let keys = store
                    .delete_student(alice.scope(), c.student)
                    .await
                    .unwrap();
                assert_eq!(sorted(keys), c.reference_keys);
                let keys = store
                    .delete_reference_photo(alice.scope(), d.reference)
                    .await
                    .unwrap();
                assert_eq!(sorted(keys), d.reference_keys);
                let keys = store
                    .delete_session_image(Scope::All, e.image)
                    .await
                    .unwrap();
                assert_eq!(sorted(keys), e.photo_keys);
                assert!(matches!(
                    store.delete_session_image(Scope::All, e.image).await,
                    Err(StoreError::NotFound { .. })
                ));

                // What is left references exactly the keys that were not handed back.
                let mut left: Vec<String> = store
                    .referenced_blob_keys()
                    .await
                    .unwrap()
                    .into_iter()
                    .collect();
                left.sort();
                let expected = sorted(
                    [
                        b.reference_keys.clone(),
                        c.photo_keys.clone(),
                        d.photo_keys.clone(),
                        e.reference_keys.clone(),
                    ]
                    .concat(),
                );
                assert_eq!(left, expected);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_failed_writes_cleanup_is_told_only_the_keys_no_row_references() {
        each_backend(
            "a_failed_writes_cleanup_is_told_only_the_keys_no_row_references",
            async |db| {
                let store = db.open().await;
                let alice = store
                    .create_user("alice", "password-a", Role::Instructor)
                    .await
                    .unwrap();
                let a = fixture(&store, &alice, "A").await;
                // A failed upload of a photo already stored wrote to the same content-addressed keys:
                // those stay; only its own new key may go.
                let mut keys = [a.photo_keys.clone(), a.reference_keys.clone()].concat();
                keys.push("images/999/never-recorded".into());
                assert_eq!(
                    store.unreferenced_blob_keys(keys).await.unwrap(),
                    ["images/999/never-recorded"]
                );
                assert!(
                    store
                        .unreferenced_blob_keys(Vec::new())
                        .await
                        .unwrap()
                        .is_empty()
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_blob_another_row_still_references_is_not_handed_back() {
        each_backend(
            "a_blob_another_row_still_references_is_not_handed_back",
            async |db| {
                let store = db.open().await;
                let alice = store
                    .create_user("alice", "password-a", Role::Instructor)
                    .await
                    .unwrap();
                let a = fixture(&store, &alice, "A").await;
                let b = fixture(&store, &alice, "B").await;
                // A second photo of session B that shares its bytes' key with course A's photo.
                let shared = NewImage {
                    blob_key: a
                        .photo_keys
                        .iter()
                        .find(|k| k.starts_with("images/"))
                        .unwrap()
                        .clone(),
                    sha256: "shared".into(),
                    original_name: None,
                    width: 1,
                    height: 1,
                };
                store
                    .add_session_image(Scope::All, b.session, &shared)
                    .await
                    .unwrap();
                let keys = store.delete_course(alice.scope(), a.course).await.unwrap();
                assert_eq!(
                    sorted(keys),
                    sorted(
                        [
                            a.reference_keys.clone(),
                            a.photo_keys
                                .iter()
                                .filter(|k| !k.starts_with("images/"))
                                .cloned()
                                .collect(),
                        ]
                        .concat()
                    )
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn the_sweep_removes_blobs_no_row_references_and_keeps_the_others() {
        each_backend(
            "the_sweep_removes_blobs_no_row_references_and_keeps_the_others",
            async |db| {
                let dir = tempfile::tempdir().unwrap();
                let store = db.open().await;
                let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
                let alice = store
                    .create_user("alice", "password-a", Role::Instructor)
                    .await
                    .unwrap();
                let a = fixture(&store, &alice, "A").await;
                let orphans = [
                    "images/999/gone",
                    "crops/999/0.jpg",
                    "references/999/x",
                    "previews/999.jpg",
                ];
                for key in a.all_keys().iter().map(String::as_str).chain(orphans) {
                    blobs.put(key, Bytes::from_static(b"data")).await.unwrap();
                }
                assert_eq!(
                    sweep_orphan_blobs(&store, &blobs, std::time::Duration::ZERO)
                        .await
                        .unwrap(),
                    4
                );
                for key in a.all_keys() {
                    assert_eq!(blobs.get(&key).await.unwrap(), Bytes::from_static(b"data"));
                }
                for key in orphans {
                    assert!(matches!(
                        blobs.get(key).await,
                        Err(StoreError::BlobNotFound { .. })
                    ));
                }
                // Their emptied directories went with them.
                assert!(!dir.path().join("blobs/images/999").exists());
                assert_eq!(
                    sweep_orphan_blobs(&store, &blobs, std::time::Duration::ZERO)
                        .await
                        .unwrap(),
                    0
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_preview_for_a_photo_deleted_meanwhile_is_not_recorded() {
        each_backend(
            "a_preview_for_a_photo_deleted_meanwhile_is_not_recorded",
            async |db| {
                let store = db.open().await;
                assert!(matches!(
                    store.set_image_preview(12345, "previews/12345.jpg").await,
                    Err(StoreError::NotFound { .. })
                ));
                assert!(store.referenced_blob_keys().await.unwrap().is_empty());
            },
        )
        .await;
    }
}

/// Every scoped read, listing, update and deletion of every kind of object: another
/// instructor's object is missing (never forbidden), the owner and an admin see it.
#[tokio::test]
async fn every_scoped_query_hides_other_owners_objects() {
    use attendansee_store::{CropFilter, NewCrop, NewReference, SessionFields};
    each_backend(
        "every_scoped_query_hides_other_owners_objects",
        async |db| {
            let store = db.open().await;
            let (course, session, crops) = photo_with_faces(&store, &[[1.0, 0.0]]).await;
            let owner =
                Scope::OwnedBy(store.get_course(Scope::All, course).await.unwrap().owner_id);
            let stranger = store
                .create_user("stranger", "password-s", Role::Instructor)
                .await
                .unwrap()
                .scope();
            let image = store
                .get_crop(Scope::All, crops[0])
                .await
                .unwrap()
                .image_id
                .unwrap();
            let student = store
                .create_student(
                    owner,
                    course,
                    &StudentFields {
                        name: "Ada".into(),
                        external_id: None,
                    },
                )
                .await
                .unwrap();
            let reference = store
                .add_reference_photo(
                    owner,
                    student.id,
                    &NewReference {
                        blob_key: "r".into(),
                        sha256: "cd".repeat(32),
                        width: 8,
                        height: 8,
                        crop: NewCrop {
                            bbox: [0.0, 0.0, 4.0, 4.0],
                            landmarks: [[1.0, 1.0]; 5],
                            score: 0.9,
                            quality_size: 4.0,
                            quality_blur: None,
                            crop_blob_key: None,
                            embedding: None,
                        },
                    },
                )
                .await
                .unwrap();
            let cluster = store
                .replace_clusters(course, "m", std::slice::from_ref(&crops))
                .await
                .unwrap()[0];
            let creator = store.get_course(Scope::All, course).await.unwrap().owner_id;
            let (job, _) = store
                .queue_job(JobKind::ProcessSession, "{}", course, creator, 1)
                .await
                .unwrap();
            let page = Page {
                number: 1,
                size: 10,
            };
            let session_fields = SessionFields {
                title: "W2".into(),
                held_at: chrono::Utc::now(),
            };
            let student_fields = StudentFields {
                name: "Bea".into(),
                external_id: None,
            };
            let filter = CropFilter {
                session: Some(session),
                ..Default::default()
            };

            for scope in [owner, Scope::All] {
                store.get_course(scope, course).await.unwrap();
                store.get_student(scope, student.id).await.unwrap();
                store.get_session(scope, session).await.unwrap();
                store.get_session_image(scope, image).await.unwrap();
                store.get_crop(scope, crops[0]).await.unwrap();
                store
                    .get_crop(scope, reference.crop_id.unwrap())
                    .await
                    .unwrap();
                store
                    .get_reference_photo(scope, reference.id)
                    .await
                    .unwrap();
                store.get_cluster(scope, cluster).await.unwrap();
                store.get_job(scope, job.id).await.unwrap();
                assert_eq!(store.list_courses(scope, page).await.unwrap().total, 1);
                assert_eq!(
                    store
                        .list_students(scope, Some(course), page)
                        .await
                        .unwrap()
                        .total,
                    1
                );
                assert_eq!(
                    store
                        .list_students(scope, None, page)
                        .await
                        .unwrap()
                        .items
                        .len(),
                    1
                );
                assert_eq!(
                    store
                        .list_sessions(scope, Some(course), page)
                        .await
                        .unwrap()
                        .total,
                    1
                );
                assert_eq!(store.list_jobs(scope, page).await.unwrap().total, 1);
                assert_eq!(
                    store.list_crops(scope, &filter, page).await.unwrap().total,
                    1
                );
                assert_eq!(
                    store
                        .list_crops(scope, &CropFilter::default(), page)
                        .await
                        .unwrap()
                        .total,
                    2
                );
            }

            assert_eq!(store.list_courses(stranger, page).await.unwrap().total, 0);
            assert_eq!(
                store
                    .list_students(stranger, None, page)
                    .await
                    .unwrap()
                    .total,
                0
            );
            assert_eq!(
                store
                    .list_sessions(stranger, Some(course), page)
                    .await
                    .unwrap()
                    .total,
                0
            );
            assert_eq!(store.list_jobs(stranger, page).await.unwrap().total, 0);
            let crop_list = store
                .list_crops(stranger, &CropFilter::default(), page)
                .await
                .unwrap();
            assert_eq!((crop_list.total, crop_list.items.len()), (0, 0));
            let missing = |result: Result<(), StoreError>, entity: &str, id: i64| match result {
                Err(StoreError::NotFound { entity: e, id: i }) if e == entity && i == id => {}
                other => panic!("{entity} {id}: {other:?}"),
            };
            missing(
                store.get_course(stranger, course).await.map(drop),
                "Course",
                course,
            );
            missing(
                store
                    .update_course(stranger, course, &self::course("X"))
                    .await
                    .map(drop),
                "Course",
                course,
            );
            missing(
                store.get_student(stranger, student.id).await.map(drop),
                "Student",
                student.id,
            );
            missing(
                store
                    .update_student(stranger, student.id, &student_fields)
                    .await
                    .map(drop),
                "Student",
                student.id,
            );
            missing(
                store
                    .create_student(stranger, course, &student_fields)
                    .await
                    .map(drop),
                "Course",
                course,
            );
            missing(
                store.get_session(stranger, session).await.map(drop),
                "Session",
                session,
            );
            missing(
                store
                    .update_session(stranger, session, &session_fields)
                    .await
                    .map(drop),
                "Session",
                session,
            );
            missing(
                store
                    .create_session(stranger, course, &session_fields)
                    .await
                    .map(drop),
                "Course",
                course,
            );
            missing(
                store.get_session_image(stranger, image).await.map(drop),
                "Image",
                image,
            );
            missing(
                store.get_crop(stranger, crops[0]).await.map(drop),
                "Face crop",
                crops[0],
            );
            let reference_crop = reference.crop_id.unwrap();
            missing(
                store.get_crop(stranger, reference_crop).await.map(drop),
                "Face crop",
                reference_crop,
            );
            missing(
                store
                    .get_reference_photo(stranger, reference.id)
                    .await
                    .map(drop),
                "Reference photo",
                reference.id,
            );
            missing(
                store.get_cluster(stranger, cluster).await.map(drop),
                "Cluster",
                cluster,
            );
            missing(
                store.get_job(stranger, job.id).await.map(drop),
                "Job",
                job.id,
            );
            missing(
                store
                    .delete_reference_photo(stranger, reference.id)
                    .await
                    .map(drop),
                "Reference photo",
                reference.id,
            );
            missing(
                store.delete_session_image(stranger, image).await.map(drop),
                "Image",
                image,
            );
            missing(
                store.delete_student(stranger, student.id).await.map(drop),
                "Student",
                student.id,
            );
            missing(
                store.delete_session(stranger, session).await.map(drop),
                "Session",
                session,
            );
            missing(
                store.delete_course(stranger, course).await.map(drop),
                "Course",
                course,
            );
            // Nothing the stranger tried changed or removed anything.
            assert_eq!(store.get_course(owner, course).await.unwrap().code, "REC");
            assert_eq!(
                store.get_student(owner, student.id).await.unwrap().name,
                "Ada"
            );
            assert_eq!(store.get_session(owner, session).await.unwrap().title, "W1");
            store.get_session_image(owner, image).await.unwrap();
            store
                .get_reference_photo(owner, reference.id)
                .await
                .unwrap();
            assert_eq!(
                store
                    .list_sessions(owner, Some(course), page)
                    .await
                    .unwrap()
                    .total,
                1
            );
            assert_eq!(
                store
                    .list_students(owner, Some(course), page)
                    .await
                    .unwrap()
                    .total,
                1
            );
            // The owner may change and delete them.
            store
                .update_student(owner, student.id, &student_fields)
                .await
                .unwrap();
            store
                .update_session(owner, session, &session_fields)
                .await
                .unwrap();
            store
                .update_course(owner, course, &self::course("REC2"))
                .await
                .unwrap();
            store
                .delete_reference_photo(owner, reference.id)
                .await
                .unwrap();
            store.delete_session_image(owner, image).await.unwrap();
            store.delete_course(owner, course).await.unwrap();
            assert_eq!(store.list_courses(Scope::All, page).await.unwrap().total, 0);
        },
    )
    .await;
}

/// Naming a cluster after a new student enrols the student and assigns the faces together: when
/// naming fails for any reason, no student without faces is left behind.
#[tokio::test]
async fn naming_a_cluster_as_a_new_student_enrols_nobody_when_naming_fails() {
    each_backend("naming_a_cluster_as_a_new_student_enrols_nobody_when_naming_fails", async |db| {
    let store = db.open().await;
    let (course, _, crops) = photo_with_faces(&store, &[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).await;
    let owner = Scope::OwnedBy(store.get_course(Scope::All, course).await.unwrap().owner_id);
    let stranger = store
        .create_user("stranger", "password-s", Role::Instructor)
        .await
        .unwrap()
        .scope();
    let fields = |name: &str, external_id: Option<&str>| StudentFields {
        name: name.into(),
        external_id: external_id.map(Into::into),
    };
    let enrolled = |store: Store| async move {
        store
            .list_students(Scope::All, Some(course), Page::ALL)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
    };
    let clusters = store
        .replace_clusters(course, "m", &[vec![crops[0], crops[1]], vec![crops[2]]])
        .await
        .unwrap();

    // Another instructor's cluster is missing, and nobody is enrolled.
    let result = store
        .name_cluster_as_new_student(stranger, clusters[0], &fields("Eve", None))
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { entity: "Cluster", id }) if id == clusters[0]),
        "{result:?}"
    );
    // The assignment itself fails (a fault injected into the database): the student goes too.
    db.execute(if db.is_postgres() {
        "CREATE FUNCTION fail_naming() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
         CREATE TRIGGER fail_naming BEFORE UPDATE OF student_id ON face_crops
             FOR EACH ROW EXECUTE FUNCTION fail_naming();"
    } else {
        "CREATE TRIGGER fail_naming BEFORE UPDATE OF student_id ON face_crops
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    })
    .await;
    let result = store
        .name_cluster_as_new_student(owner, clusters[0], &fields("Fay", None))
        .await;
    assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
    assert!(enrolled(store.clone()).await.is_empty());
    db.execute(if db.is_postgres() {
        "DROP TRIGGER fail_naming ON face_crops"
    } else {
        "DROP TRIGGER fail_naming"
    })
    .await;

    // Naming works, and the named cluster is gone with its faces assigned by `cluster`.
    let (ada, assigned) = store
        .name_cluster_as_new_student(owner, clusters[0], &fields("Ada", Some("7")))
        .await
        .unwrap();
    assert_eq!(
        (ada.name.as_str(), ada.course_id, assigned),
        ("Ada", course, 2)
    );
    for crop in &crops[..2] {
        let crop = store.get_crop(owner, *crop).await.unwrap();
        assert_eq!(
            (crop.student_id, crop.assignment_source, crop.cluster_id),
            (Some(ada.id), Some(Source::Cluster), None)
        );
    }
    // Naming it again: it no longer exists, and nobody is enrolled for it.
    let result = store
        .name_cluster_as_new_student(owner, clusters[0], &fields("Bob", None))
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    // A student that cannot be enrolled (external id taken) leaves the cluster as it was.
    let result = store
        .name_cluster_as_new_student(owner, clusters[1], &fields("Ann", Some("7")))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(
        store.get_cluster(owner, clusters[1]).await.unwrap().members,
        vec![crops[2]]
    );
    assert_eq!(enrolled(store.clone()).await, vec!["Ada".to_string()]);
    })
    .await;
}

/// The shared vocabulary's enums in their TEXT columns: what is written is read back, and a name
/// no variant has is a typed error.
mod vocabulary_columns {
    use super::*;
    use attendansee_store::{AutoDecision, Correction, CropFilter, JobStatus, StoredJobKind};

    fn decision(crop_id: i64, student_id: Option<i64>, reason: Reason) -> AutoDecision {
        AutoDecision {
            crop_id,
            student_id,
            reason,
            best: Some((1, 0.5)),
            runner_up: None,
        }
    }

    #[tokio::test]
    async fn every_reason_source_and_job_kind_reads_back_as_the_variant_written() {
        each_backend(
            "every_reason_source_and_job_kind_reads_back_as_the_variant_written",
            async |db| {
                let store = db.open().await;
                let faces = vec![[1.0, 0.0]; Reason::ALL.len().max(Source::ALL.len())];
                let (course, session, crops) = photo_with_faces(&store, &faces).await;
                let ada = store
                    .create_student(
                        Scope::All,
                        course,
                        &StudentFields {
                            name: "Ada".into(),
                            external_id: None,
                        },
                    )
                    .await
                    .unwrap();

                // Reasons, one per face (only a match names a student).
                let decisions: Vec<AutoDecision> = Reason::ALL
                    .iter()
                    .zip(&crops)
                    .map(|(&reason, &crop)| {
                        let student = match reason {
                            Reason::Matched => Some(ada.id),
                            Reason::NoStudents
                            | Reason::BelowThreshold
                            | Reason::Ambiguous
                            | Reason::Conflict
                            | Reason::TooSmall
                            | Reason::Blurred
                            | Reason::Profile => None,
                        };
                        decision(crop, student, reason)
                    })
                    .collect();
                store
                    .save_auto_decisions(course, "m", &decisions)
                    .await
                    .unwrap();
                let listed = store
                    .list_crops(Scope::All, &CropFilter::default(), Page::ALL)
                    .await
                    .unwrap()
                    .items;
                for d in &decisions {
                    let crop = store.get_crop(Scope::All, d.crop_id).await.unwrap();
                    assert_eq!(crop.decision.map(|m| m.reason), Some(d.reason));
                    let expected_source = d.student_id.map(|_| Source::Auto);
                    assert_eq!(crop.assignment_source, expected_source, "{:?}", d.reason);
                    let listed = listed.iter().find(|c| c.id == d.crop_id).unwrap();
                    assert_eq!(listed.decision.as_ref().map(|m| m.reason), Some(d.reason));
                }

                // Sources, one per face, each written the way the store writes it.
                let written: Vec<(i64, Source)> = Source::ALL
                    .iter()
                    .copied()
                    .zip(crops)
                    .map(|(s, c)| (c, s))
                    .collect();
                for &(crop, source) in &written {
                    match source {
                        Source::Manual => {
                            store
                                .correct_crop(Scope::All, crop, Correction::Assign(ada.id))
                                .await
                                .unwrap();
                        }
                        Source::Auto => {
                            store
                                .save_auto_decisions(
                                    course,
                                    "m",
                                    &[decision(crop, Some(ada.id), Reason::Matched)],
                                )
                                .await
                                .unwrap();
                        }
                        Source::Cluster => {
                            let cluster = store
                                .replace_clusters(course, "m", &[vec![crop]])
                                .await
                                .unwrap()[0];
                            store
                                .name_cluster(Scope::All, cluster, ada.id)
                                .await
                                .unwrap();
                        }
                    }
                }
                let facts = store.session_facts(Scope::All, session).await.unwrap();
                for &(crop, source) in &written {
                    let read = store.get_crop(Scope::All, crop).await.unwrap();
                    assert_eq!(
                        (read.student_id, read.assignment_source),
                        (Some(ada.id), Some(source))
                    );
                    let evidence = facts.evidence.iter().find(|e| e.crop_id == crop).unwrap();
                    assert_eq!(evidence.source, source);
                }

                // Job kinds, through every way a job is read.
                for &kind in JobKind::ALL {
                    let payload = format!("{{\"kind\": \"{kind}\"}}");
                    let (queued, created) = store
                        .queue_job(kind, &payload, course, ada.id, 1)
                        .await
                        .unwrap();
                    assert!(created);
                    let (again, created) = store
                        .queue_job(kind, &payload, course, ada.id, 1)
                        .await
                        .unwrap();
                    let known = StoredJobKind::Known(kind);
                    assert_eq!((again.id, &again.kind, created), (queued.id, &known, false));
                    assert_eq!(queued.kind, known);
                    assert_eq!(
                        store.get_job(Scope::All, queued.id).await.unwrap().kind,
                        known
                    );
                    let claimed = store.claim_job(&node("a")).await.unwrap().unwrap();
                    assert_eq!((claimed.id, claimed.kind), (queued.id, known));
                }
                let listed = store.list_jobs(Scope::All, Page::ALL).await.unwrap().items;
                let mut kinds: Vec<&str> = listed.iter().map(|j| j.kind.name()).collect();
                kinds.reverse();
                let all: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
                assert_eq!(kinds, all);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn an_unknown_name_in_a_column_is_a_corrupt_error_naming_it() {
        each_backend(
            "an_unknown_name_in_a_column_is_a_corrupt_error_naming_it",
            async |db| {
                let store = db.open().await;
                let (course, session, crops) =
                    photo_with_faces(&store, &[[1.0, 0.0], [0.0, 1.0]]).await;
                let ada = store
                    .create_student(
                        Scope::All,
                        course,
                        &StudentFields {
                            name: "Ada".into(),
                            external_id: None,
                        },
                    )
                    .await
                    .unwrap();
                store
                    .save_auto_decisions(
                        course,
                        "m",
                        &[
                            decision(crops[0], None, Reason::BelowThreshold),
                            decision(crops[1], Some(ada.id), Reason::Matched),
                        ],
                    )
                    .await
                    .unwrap();
                if db.is_postgres() {
                    // PostgreSQL cannot ignore a CHECK for one connection: drop it.
                    db.execute(
                        "ALTER TABLE face_crops DROP CONSTRAINT face_crops_assignment_source_check",
                    )
                    .await;
                }
                db.execute(&format!(
                    "UPDATE face_crops SET match_reason = 'telepathy' WHERE id = {};
                     UPDATE face_crops SET assignment_source = 'psychic' WHERE id = {};",
                    crops[0], crops[1]
                ))
                .await;
                let corrupt = |result: Result<_, StoreError>, what: &str, name: &str| match result {
                    Err(StoreError::Corrupt { what: w, name: n }) => {
                        assert_eq!((w, n.as_str()), (what, name));
                    }
                    other => panic!(
                        "expected an unknown {what} '{name}', got {:?}",
                        other.map(drop)
                    ),
                };
                corrupt(
                    store.get_crop(Scope::All, crops[0]).await.map(drop),
                    "decision reason",
                    "telepathy",
                );
                corrupt(
                    store.get_crop(Scope::All, crops[1]).await.map(drop),
                    "assignment source",
                    "psychic",
                );
                let listing = store
                    .list_crops(Scope::All, &CropFilter::default(), Page::ALL)
                    .await;
                assert!(
                    matches!(listing, Err(StoreError::Corrupt { .. })),
                    "{:?}",
                    listing.map(drop)
                );
                corrupt(
                    store.session_facts(Scope::All, session).await.map(drop),
                    "assignment source",
                    "psychic",
                );

                // A job of a kind this version does not know (queued by another): still listed and
                // shown with its name, and failed (not run) when its turn comes, so the job queued after
                // it still runs.
                let (odd, _) = store
                    .queue_job(JobKind::ProcessSession, "{\"n\": 1}", course, ada.id, 1)
                    .await
                    .unwrap();
                let (next, _) = store
                    .queue_job(JobKind::ProcessSession, "{\"n\": 2}", course, ada.id, 1)
                    .await
                    .unwrap();
                db.execute(&format!(
                    "UPDATE jobs SET kind = 'teleport' WHERE id = {}",
                    odd.id
                ))
                .await;
                let unknown = StoredJobKind::Unknown("teleport".into());
                assert_eq!(
                    store.get_job(Scope::All, odd.id).await.unwrap().kind,
                    unknown
                );
                let listed = store.list_jobs(Scope::All, Page::ALL).await.unwrap();
                assert!(
                    listed
                        .items
                        .iter()
                        .any(|j| j.id == odd.id && j.kind == unknown)
                );
                let claimed = store.claim_job(&node("a")).await.unwrap().unwrap();
                assert_eq!(claimed.id, next.id);
                assert!(store.claim_job(&node("a")).await.unwrap().is_none());
                assert_eq!(store.job_status(odd.id).await.unwrap(), JobStatus::Failed);
                let error = store.get_job(Scope::All, odd.id).await.unwrap().error;
                assert!(
                    error.as_deref().unwrap_or("").contains("'teleport'"),
                    "{error:?}"
                );
            },
        )
        .await;
    }
}

/// Migrations on both backends: an installation made by an earlier version still opens, and
/// nodes starting together on an empty PostgreSQL database both come up.
mod migrations {
    use super::*;
    use attendansee_store::testing::TestDatabase;

    /// `_sqlx_migrations` of a database the version before the PostgreSQL backend created (the
    /// SQLite migrations then lived in `migrations/`): sqlx refuses to open a database whose
    /// applied migrations' checksums differ from the embedded ones, so these must never change.
    const RELEASED_SQLITE_CHECKSUMS: [(i64, &str); 8] = [
        (
            1,
            "36b5544dd7d8f80f57bbc5bfcfc45005eec75a664569405bd0b374096e26bd3a9c5d5df33977f5256dec6e3d4d5f75db",
        ),
        (
            2,
            "527341c6b28b57ae4dd748dc5cc7bde8cd05dcf6ae87b920cb47e812038dc160d8cc585c2644c8f3478f050882f73211",
        ),
        (
            3,
            "cbfbc34096cb81e69e35abce78f86ceda3c4783dac6fdd1fe17ba6c3c483eba45995a6a4d823dd5ad5d096742fa3ed9c",
        ),
        (
            4,
            "08be9a0f758c99793da04baab3482b257c224a8d6cffc82d10c8450e2c7c6f577e27348eb0b19f3efcd4aa76e2c2de72",
        ),
        (
            5,
            "c41135b8f397892343610da4d896f95e9eb61ab166f32d2329d1d6e46f45927d6b755af4093ad4efa2f9e5240d9bcee6",
        ),
        (
            6,
            "e3e0dcba2b97634b7abeaa887772707b75a8727fd2420efd4dde2f0a95b85522454583a16327e45ae757d852a600cabb",
        ),
        (
            7,
            "119a77c81d312999a068f1e99a65c85311e1162f8d51188e99970cae6f8c7be201f7b5d8759dc426e1b2608e4f4c4146",
        ),
        (
            8,
            "47506e163cfe3f0a60f7c9d7cb9266c7305ed9ebad5122d91eb6455031c6369f818212c1869cc69af3e34fcc39560660",
        ),
    ];

    #[tokio::test]
    async fn sqlite_migrations_keep_the_checksums_installations_have_recorded() {
        let db = TestDatabase::sqlite();
        db.open().await.close().await;
        let attendansee_store::DatabaseLocation::Sqlite(path) = db.location() else {
            unreachable!()
        };
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        let applied: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        for (version, checksum) in RELEASED_SQLITE_CHECKSUMS {
            let found = applied
                .iter()
                .find(|(v, _)| *v == version)
                .map(|(_, c)| attendansee_store::credentials::hex(c));
            assert_eq!(found.as_deref(), Some(checksum), "migration {version}");
        }
    }

    /// A TCP relay on a loopback port to `target`, until the returned handle is aborted (which
    /// drops every relayed connection, as a server that went away would).
    async fn relay(port: u16, target: String) -> tokio::task::JoinHandle<()> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        })
    }

    /// The store reaches PostgreSQL through a relay that is cut and restored: while it is cut
    /// a query fails within seconds as unavailable (never hangs), and the store resumes by
    /// itself when the server is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_postgresql_server_is_unavailable_within_seconds_and_the_store_resumes() {
        let Some(db) = TestDatabase::postgres(
            "a_lost_postgresql_server_is_unavailable_within_seconds_and_the_store_resumes",
        )
        .await
        else {
            return;
        };
        let url = db.url();
        let (prefix, rest) = url.split_once('@').unwrap();
        let (server, path) = rest.split_once('/').unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let relayed = attendansee_store::DatabaseLocation::Postgres(format!(
            "{prefix}@127.0.0.1:{port}/{path}"
        ));
        let up = relay(port, server.to_owned()).await;
        let store = Store::connect(&relayed).await.unwrap();
        store
            .create_user("alice", "password-a", Role::Instructor)
            .await
            .unwrap();

        up.abort();
        let _ = up.await;
        let started = std::time::Instant::now();
        let error = store.count_users().await.unwrap_err();
        assert!(error.is_unavailable(), "{error:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(store.ping().await.unwrap_err().is_unavailable());

        let _up = relay(port, server.to_owned()).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            match store.count_users().await {
                Ok(users) => {
                    assert_eq!(users, 1);
                    break;
                }
                Err(error) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "not back after the server was: {error:?}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_migrating_an_empty_postgresql_database_at_once_both_come_up() {
        let Some(db) = TestDatabase::postgres(
            "two_nodes_migrating_an_empty_postgresql_database_at_once_both_come_up",
        )
        .await
        else {
            return;
        };
        let nodes: Vec<_> = (0..4)
            .map(|_| {
                let location = db.location().clone();
                tokio::spawn(async move { Store::connect(&location).await })
            })
            .collect();
        let mut stores = Vec::new();
        for node in nodes {
            stores.push(
                node.await
                    .unwrap()
                    .expect("every node migrates or finds it done"),
            );
        }
        // One schema: a user created through one node is seen by all, and counted once.
        stores[0]
            .create_user("alice", "password-a", Role::Instructor)
            .await
            .unwrap();
        for store in &stores {
            assert_eq!(store.count_users().await.unwrap(), 1);
            store.close().await;
        }
    }
}
