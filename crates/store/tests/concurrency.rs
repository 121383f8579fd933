//! Writers of one course on several nodes at once: recognition, clustering and corrections of one
//! course racing on two stores (two connection pools, as two nodes have) never fail, whichever
//! order they touch the course's faces in (each on SQLite and on PostgreSQL, where writers really
//! run at once: a deadlock there aborts one of them with SQLSTATE 40P01); a write below a row
//! another node deletes meanwhile is `NotFound`, as if the row had been gone before (PostgreSQL).

use attendansee_store::testing::each_backend;
use attendansee_store::{
    AttendanceStatus, AutoDecision, Correction, CourseFields, ImageInsert, NewCrop, NewImage, Role,
    Scope, SessionFields, Store, StoreError, StudentFields,
};
use attendansee_vocabulary::Reason;

/// How many rounds each racer runs: enough for an unlucky interleaving to occur many times over.
const ROUNDS: usize = 60;
/// Faces per photo (two photos, one per session).
const FACES: usize = 12;

/// A deterministic pseudo-random sequence (xorshift), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A course with a student and two sessions of one photo each, with `FACES` faces apiece.
/// Returns the course, the student and each session's crops.
async fn course_with_two_sessions(store: &Store) -> (i64, i64, [Vec<i64>; 2]) {
    let owner = store
        .create_user("ada", "password-a", Role::Instructor)
        .await
        .unwrap();
    let course = store
        .create_course(
            owner.id,
            &CourseFields {
                name: "Course".into(),
                code: "C1".into(),
                embedding_model: None,
                match_threshold: None,
                match_margin: None,
            },
        )
        .await
        .unwrap();
    let student = store
        .create_student(
            Scope::All,
            course.id,
            &StudentFields {
                name: "Bo".into(),
                external_id: None,
            },
        )
        .await
        .unwrap();
    let mut crops = [Vec::new(), Vec::new()];
    for (n, ids) in crops.iter_mut().enumerate() {
        let session = store
            .create_session(
                Scope::All,
                course.id,
                &SessionFields {
                    title: format!("W{n}"),
                    held_at: chrono::Utc::now(),
                },
            )
            .await
            .unwrap();
        let image = NewImage {
            blob_key: format!("k{n}"),
            sha256: format!("{n}").repeat(64),
            original_name: None,
            width: 8,
            height: 8,
        };
        let ImageInsert::Stored(image) = store
            .add_session_image(Scope::All, session.id, &image)
            .await
            .unwrap()
        else {
            panic!("a fresh photo");
        };
        let faces: Vec<NewCrop> = (0..FACES)
            .map(|i| NewCrop {
                bbox: [0.0, 0.0, 4.0, 4.0],
                landmarks: [[1.0, 1.0]; 5],
                score: 0.9,
                quality_size: 4.0,
                quality_blur: None,
                crop_blob_key: None,
                embedding: Some(("m".into(), vec![1.0, i as f32])),
            })
            .collect();
        *ids = store.record_image_faces(image.id, &faces).await.unwrap();
    }
    (course.id, student.id, crops)
}

/// One node's recognition of one session, then clustering of the course, `ROUNDS` times: the
/// session's decisions (some faces given to the student, the rest unknown), then an incremental
/// clustering step over every unknown face of the course (joins to existing clusters and new
/// clusters), suggestions, and now and then a full re-cluster. `reverse` walks faces in the
/// opposite order, as a node whose snapshot differs may.
async fn recognise(
    store: Store,
    course: i64,
    student: i64,
    session_crops: Vec<i64>,
    reverse: bool,
    seed: u64,
) -> Result<(), String> {
    let mut rng = Rng(seed);
    for round in 0..ROUNDS {
        let mut decisions: Vec<AutoDecision> = session_crops
            .iter()
            .map(|&crop_id| {
                let matched = rng.below(3) == 0;
                AutoDecision {
                    crop_id,
                    student_id: matched.then_some(student),
                    reason: if matched {
                        Reason::Matched
                    } else {
                        Reason::BelowThreshold
                    },
                    best: Some((student, 0.5)),
                    runner_up: None,
                }
            })
            .collect();
        if reverse {
            decisions.reverse();
        }
        store
            .save_auto_decisions(course, "m", &decisions)
            .await
            .map_err(|e| format!("round {round}: saving decisions: {e}"))?;
        let inputs = store
            .cluster_inputs(course, "m")
            .await
            .map_err(|e| format!("round {round}: reading cluster inputs: {e}"))?;
        let mut unknown: Vec<i64> = inputs.unclustered.iter().map(|v| v.crop_id).collect();
        let mut existing: Vec<i64> = inputs.clustered.iter().map(|v| v.label).collect();
        existing.dedup();
        if reverse {
            unknown.reverse();
        }
        if round % 7 == 6 {
            let mut all: Vec<i64> = inputs
                .clustered
                .iter()
                .chain(&inputs.unclustered)
                .map(|v| v.crop_id)
                .collect();
            if reverse {
                all.reverse();
            }
            let groups: Vec<Vec<i64>> = all.chunks(3).map(<[i64]>::to_vec).collect();
            store
                .replace_clusters(course, "m", &groups)
                .await
                .map_err(|e| format!("round {round}: re-clustering: {e}"))?;
        } else {
            let split = unknown.len() / 2;
            let joins: Vec<(i64, i64)> = if existing.is_empty() {
                Vec::new()
            } else {
                unknown[..split]
                    .iter()
                    .map(|&crop| (crop, existing[rng.below(existing.len())]))
                    .collect()
            };
            let rest = if joins.is_empty() {
                &unknown[..]
            } else {
                &unknown[split..]
            };
            let new_clusters: Vec<Vec<i64>> = rest.chunks(2).map(<[i64]>::to_vec).collect();
            store
                .add_to_clusters(course, "m", &joins, &new_clusters)
                .await
                .map_err(|e| format!("round {round}: clustering: {e}"))?;
        }
        let clusters = store
            .list_clusters(Scope::All, course)
            .await
            .map_err(|e| format!("round {round}: listing clusters: {e}"))?;
        let mut suggestions: Vec<(i64, Option<(i64, f32)>)> = clusters
            .iter()
            .map(|k| (k.id, Some((student, 0.6))))
            .collect();
        if reverse {
            suggestions.reverse();
        }
        store
            .set_cluster_suggestions(course, &suggestions)
            .await
            .map_err(|e| format!("round {round}: suggestions: {e}"))?;
    }
    Ok(())
}

/// A person correcting faces of the course while the nodes work (an answer of 500 otherwise).
async fn correct(store: Store, student: i64, crops: Vec<i64>, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    for round in 0..ROUNDS * 2 {
        let crop = crops[rng.below(crops.len())];
        let correction = match rng.below(4) {
            0 => Correction::Assign(student),
            1 => Correction::Unassign,
            2 => Correction::NotAStudent,
            _ => Correction::Automatic,
        };
        store
            .correct_crop(Scope::All, crop, correction)
            .await
            .map_err(|e| format!("round {round}: correcting crop {crop}: {e}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_recognising_one_course_and_a_person_correcting_it_never_fail() {
    each_backend(
        "two_nodes_recognising_one_course_and_a_person_correcting_it_never_fail",
        async |db| {
            let (a, b) = (db.open().await, db.open().await);
            let (course, student, [first, second]) = course_with_two_sessions(&a).await;
            let everyone: Vec<i64> = first.iter().chain(&second).copied().collect();
            let node_a = tokio::spawn(recognise(a.clone(), course, student, first, false, 7));
            let node_b = tokio::spawn(recognise(b.clone(), course, student, second, true, 11));
            let person = tokio::spawn(correct(a.clone(), student, everyone, 13));
            let mut failures = Vec::new();
            for (who, task) in [("node A", node_a), ("node B", node_b), ("person", person)] {
                if let Err(e) = task.await.unwrap() {
                    failures.push(format!("{who}: {e}"));
                }
            }
            assert!(failures.is_empty(), "{failures:#?}");
            // The work was real: the course has clusters and decided faces.
            assert!(
                !a.list_clusters(Scope::All, course)
                    .await
                    .unwrap()
                    .is_empty()
            );
        },
    )
    .await;
}

/// Runs `write` while another connection changes a row (`change`, in a transaction held open
/// until `write` waits for it), then lets that change commit: `write` read the row before the
/// change and writes after it. Returns what `write` answered.
async fn changed_meanwhile<T: Send + 'static>(
    db: &attendansee_store::testing::TestDatabase,
    change: String,
    write: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    use sqlx::{Connection, Executor};
    let mut deleter = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    deleter.execute("BEGIN").await.unwrap();
    deleter.execute(change.as_str()).await.unwrap();
    let write = tokio::spawn(write);
    // Until the write waits for the deleter's lock (its check saw the row, still there).
    let mut watcher = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !write.is_finished(),
            "the write ended without waiting for the delete"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    deleter.execute("COMMIT").await.unwrap();
    write.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_below_a_row_deleted_after_its_check_is_not_found_not_a_database_error() {
    let Some(db) = attendansee_store::testing::TestDatabase::postgres(
        "a_write_below_a_row_deleted_after_its_check_is_not_found_not_a_database_error",
    )
    .await
    else {
        return;
    };
    let store = db.open().await;
    let (course, student, _) = course_with_two_sessions(&store).await;
    let session = |title: &str| SessionFields {
        title: title.into(),
        held_at: chrono::Utc::now(),
    };
    let not_found = |what: &str, result: Result<(), StoreError>, entity: &str| match result {
        Err(StoreError::NotFound { entity: e, .. }) if e == entity => {}
        other => panic!("{what}: {other:?}"),
    };
    let fields = StudentFields {
        name: "Cy".into(),
        external_id: None,
    };

    // A student is renamed while another request deletes them.
    let s = store.clone();
    let (f, id) = (fields.clone(), student);
    let result = changed_meanwhile(
        &db,
        format!("DELETE FROM students WHERE id = {student}"),
        async move { s.update_student(Scope::All, id, &f).await.map(drop) },
    )
    .await;
    not_found("renaming a deleted student", result, "Student");

    // A photo is added to, and attendance set in, a session deleted meanwhile.
    let target = store
        .create_session(Scope::All, course, &session("W9"))
        .await
        .unwrap();
    let pupil = store
        .create_student(Scope::All, course, &fields)
        .await
        .unwrap();
    let s = store.clone();
    let result = changed_meanwhile(
        &db,
        format!("DELETE FROM sessions WHERE id = {}", target.id),
        async move {
            let image = NewImage {
                blob_key: "k".into(),
                sha256: "f".repeat(64),
                original_name: None,
                width: 8,
                height: 8,
            };
            s.add_session_image(Scope::All, target.id, &image)
                .await
                .map(drop)
        },
    )
    .await;
    not_found("a photo for a deleted session", result, "Session");
    let target = store
        .create_session(Scope::All, course, &session("W10"))
        .await
        .unwrap();
    let s = store.clone();
    let result = changed_meanwhile(
        &db,
        format!("DELETE FROM sessions WHERE id = {}", target.id),
        async move {
            s.set_attendance_override(
                Scope::All,
                target.id,
                pupil.id,
                Some(AttendanceStatus::Present),
            )
            .await
        },
    )
    .await;
    not_found("attendance in a deleted session", result, "Session");

    // A student and a session are created in a course deleted meanwhile.
    let s = store.clone();
    let f = fields.clone();
    let result = changed_meanwhile(
        &db,
        format!("DELETE FROM courses WHERE id = {course}"),
        async move { s.create_student(Scope::All, course, &f).await.map(drop) },
    )
    .await;
    not_found("a student in a deleted course", result, "Course");
    let owner = store
        .create_user("cy", "password-c", Role::Instructor)
        .await
        .unwrap();
    let other = store
        .create_course(
            owner.id,
            &CourseFields {
                name: "Other".into(),
                code: "C2".into(),
                embedding_model: None,
                match_threshold: None,
                match_margin: None,
            },
        )
        .await
        .unwrap();
    let s = store.clone();
    let result = changed_meanwhile(
        &db,
        format!("DELETE FROM courses WHERE id = {}", other.id),
        async move {
            s.create_session(Scope::All, other.id, &session("W1"))
                .await
                .map(drop)
        },
    )
    .await;
    not_found("a session in a deleted course", result, "Course");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changing_a_role_never_undoes_a_deactivation_made_meanwhile() {
    let Some(db) = attendansee_store::testing::TestDatabase::postgres(
        "an_admin_changing_a_role_never_undoes_a_deactivation_made_meanwhile",
    )
    .await
    else {
        return;
    };
    let store = db.open().await;
    let user = store
        .create_user("dee", "password-d", Role::Instructor)
        .await
        .unwrap();
    let s = store.clone();
    let updated = changed_meanwhile(
        &db,
        format!("UPDATE users SET active = FALSE WHERE id = {}", user.id),
        async move {
            let update = attendansee_store::UserUpdate {
                role: Some(Role::Admin),
                active: None,
                password: None,
            };
            s.update_user(user.id, update).await
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.role, Role::Admin);
    assert!(!updated.active, "the deactivation made meanwhile was lost");
}
