//! Several nodes on one store: jobs claimed under leases (never one job by two nodes, an expired
//! lease taken over, a stale holder's writes refused) and a photo's results committed once however
//! many nodes race to commit them. Each test runs on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use attendansee_store::testing::each_backend;
use attendansee_store::{
    CourseFields, ImageInsert, JobLease, JobStatus, LeaseState, NewCrop, NewImage, PhotoCommit,
    Role, SessionFields, SessionStatus, Store, StoreError,
};
use attendansee_vocabulary::JobKind;

fn lease(owner: &str, duration: Duration) -> JobLease {
    JobLease {
        owner: owner.into(),
        duration,
    }
}

/// A user, a course and a session; returns the user's id, the course and the session.
async fn session(store: &Store) -> (i64, i64, i64) {
    let ada = store
        .create_user("ada", "password-a", Role::Instructor)
        .await
        .unwrap();
    let fields = CourseFields {
        name: "Course".into(),
        code: "C1".into(),
        embedding_model: None,
        match_threshold: None,
        match_margin: None,
    };
    let course = store.create_course(ada.id, &fields).await.unwrap();
    let session = store
        .create_session(
            ada.scope(),
            course.id,
            &SessionFields {
                title: "W1".into(),
                held_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    (ada.id, course.id, session.id)
}

async fn queue(store: &Store, course: i64, user: i64, payload: &str) -> i64 {
    let (job, created) = store
        .queue_job(JobKind::ProcessSession, payload, course, user, 1)
        .await
        .unwrap();
    assert!(created);
    job.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_get_the_same_job() {
    each_backend("concurrent_claimers_never_get_the_same_job", async |db| {
        let store = db.open().await;
        let (user, course, _) = session(&store).await;
        let mut queued = HashSet::new();
        for i in 0..40 {
            queued.insert(queue(&store, course, user, &format!("job {i}")).await);
        }
        let mut claimers = tokio::task::JoinSet::new();
        for node in 0..4 {
            let store = store.clone();
            claimers.spawn(async move {
                let lease = lease(&format!("node {node}"), Duration::from_secs(600));
                let mut mine = Vec::new();
                while let Some(job) = store.claim_job(&lease).await.unwrap() {
                    assert_eq!(job.lease_owner.as_deref(), Some(lease.owner.as_str()));
                    mine.push(job.id);
                    // As a runner would work on it: the others claim meanwhile.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                mine
            });
        }
        let mut claimed = Vec::new();
        let mut busy_nodes = 0;
        while let Some(mine) = claimers.join_next().await {
            let mine = mine.unwrap();
            busy_nodes += usize::from(!mine.is_empty());
            claimed.extend(mine);
        }
        let distinct: HashSet<i64> = claimed.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            claimed.len(),
            "a job claimed twice: {claimed:?}"
        );
        assert_eq!(distinct, queued, "every job claimed");
        assert!(busy_nodes >= 2, "the claimers did not run side by side");
    })
    .await;
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_stale_holder_writes_nothing() {
    each_backend(
        "an_expired_lease_is_taken_over_and_the_stale_holder_writes_nothing",
        async |db| {
            let store = db.open().await;
            let (user, course, session) = session(&store).await;
            let job = queue(&store, course, user, "p").await;
            let short = Duration::from_millis(400);
            let (a, b) = (lease("a", short), lease("b", short));

            let claimed = store.claim_job(&a).await.unwrap().unwrap();
            assert_eq!((claimed.id, claimed.attempts), (job, 1));
            assert!(store.claim_job(&b).await.unwrap().is_none(), "held by a");
            // Renewed in time, the lease holds past its first end.
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert_eq!(
                store.renew_job_lease(job, &a).await.unwrap(),
                LeaseState::Held
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(store.claim_job(&b).await.unwrap().is_none(), "renewed by a");
            assert!(
                store
                    .job_progress(job, "a", (3, 10), "[]", "{}")
                    .await
                    .unwrap()
            );

            // a stops renewing (it died, or stalled): b takes the job over where a left it.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let taken = store.claim_job(&b).await.unwrap().unwrap();
            assert_eq!(
                (
                    taken.id,
                    taken.status,
                    taken.attempts,
                    taken.done,
                    taken.total
                ),
                (job, JobStatus::Running, 2, 3, 10)
            );
            assert_eq!(taken.lease_owner.as_deref(), Some("b"));

            // a's writes are refused and change nothing.
            assert_eq!(
                store.renew_job_lease(job, &a).await.unwrap(),
                LeaseState::Lost
            );
            assert_eq!(
                store.job_lease_state(job, "a").await.unwrap(),
                LeaseState::Lost
            );
            assert!(
                !store
                    .job_progress(job, "a", (9, 10), "[\"a\"]", "{}")
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .finish_job(
                        job,
                        "a",
                        (JobStatus::Failed, Some("a gave up")),
                        Some((session, SessionStatus::Failed)),
                    )
                    .await
                    .unwrap()
            );
            let now = store
                .get_job(attendansee_store::Scope::All, job)
                .await
                .unwrap();
            assert_eq!(
                (now.status, now.done, now.errors.as_str(), now.error),
                (JobStatus::Running, 3, "[]", None)
            );
            let s = store
                .get_session(attendansee_store::Scope::All, session)
                .await
                .unwrap();
            assert_ne!(s.status, SessionStatus::Failed, "a's end was not recorded");

            // b's are taken, and end the job.
            assert_eq!(
                store.renew_job_lease(job, &b).await.unwrap(),
                LeaseState::Held
            );
            assert!(
                store
                    .job_progress(job, "b", (10, 10), "[]", "{}")
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .finish_job(
                        job,
                        "b",
                        (JobStatus::Succeeded, None),
                        Some((session, SessionStatus::Processed)),
                    )
                    .await
                    .unwrap()
            );
            let ended = store
                .get_job(attendansee_store::Scope::All, job)
                .await
                .unwrap();
            assert_eq!((ended.status, ended.done), (JobStatus::Succeeded, 10));
            assert!(ended.lease_expires_at.is_none());
            let s = store
                .get_session(attendansee_store::Scope::All, session)
                .await
                .unwrap();
            assert_eq!(s.status, SessionStatus::Processed);
            // A finished job is nobody's to renew, and never claimed again.
            assert_eq!(
                store.renew_job_lease(job, &b).await.unwrap(),
                LeaseState::Lost
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(store.claim_job(&a).await.unwrap().is_none());
        },
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_job_tells_its_holder_to_stop_and_stays_cancelled() {
    each_backend(
        "a_cancelled_job_tells_its_holder_to_stop_and_stays_cancelled",
        async |db| {
            let store = db.open().await;
            let (user, course, session) = session(&store).await;
            let job = queue(&store, course, user, "p").await;
            let a = lease("a", Duration::from_secs(600));
            store.claim_job(&a).await.unwrap().unwrap();
            store
                .cancel_job(attendansee_store::Scope::All, job, Some(session))
                .await
                .unwrap();
            assert_eq!(
                store.renew_job_lease(job, &a).await.unwrap(),
                LeaseState::Cancelled
            );
            assert!(
                !store
                    .job_progress(job, "a", (1, 1), "[]", "{}")
                    .await
                    .unwrap()
            );
            // The holder records the session's status; the job stays cancelled.
            assert!(
                store
                    .finish_job(
                        job,
                        "a",
                        (JobStatus::Succeeded, None),
                        Some((session, SessionStatus::Open)),
                    )
                    .await
                    .unwrap()
            );
            assert_eq!(store.job_status(job).await.unwrap(), JobStatus::Cancelled);
            assert!(
                store
                    .claim_job(&lease("b", Duration::from_secs(1)))
                    .await
                    .unwrap()
                    .is_none()
            );
        },
    )
    .await;
}

#[tokio::test]
async fn jobs_left_running_by_the_only_node_are_queued_again_at_its_start() {
    each_backend(
        "jobs_left_running_by_the_only_node_are_queued_again_at_its_start",
        async |db| {
            let store = db.open().await;
            let (user, course, _) = session(&store).await;
            let job = queue(&store, course, user, "p").await;
            store
                .claim_job(&lease("before", Duration::from_secs(600)))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(store.requeue_interrupted_jobs().await.unwrap(), 1);
            let again = store
                .claim_job(&lease("after", Duration::from_secs(600)))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((again.id, again.attempts), (job, 2));
        },
    )
    .await;
}

fn crop(key: &str) -> NewCrop {
    NewCrop {
        bbox: [1.0, 2.0, 30.0, 40.0],
        landmarks: [[5.0, 6.0]; 5],
        score: 0.9,
        quality_size: 30.0,
        quality_blur: Some(12.5),
        crop_blob_key: Some(key.into()),
        embedding: Some(("m".into(), vec![0.6, 0.8])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_photo_raced_by_several_nodes_keeps_one_set_of_crops() {
    each_backend(
        "a_photo_raced_by_several_nodes_keeps_one_set_of_crops",
        async |db| {
            let store = db.open().await;
            let (user, _, session) = session(&store).await;
            let scope = store.get_user(user).await.unwrap().scope();
            let mut images = Vec::new();
            for i in 0..8 {
                let new = NewImage {
                    blob_key: format!("images/{i}"),
                    sha256: format!("{i:064}"),
                    original_name: None,
                    width: 10,
                    height: 10,
                };
                let ImageInsert::Stored(image) =
                    store.add_session_image(scope, session, &new).await.unwrap()
                else {
                    panic!("stored twice")
                };
                images.push(image.id);
            }
            // Four nodes commit every photo at once, each its own crops (two faces) and preview.
            let mut racers = tokio::task::JoinSet::new();
            for node in 0..4 {
                for &image in &images {
                    let store = store.clone();
                    racers.spawn(async move {
                        let crops = [
                            crop(&format!("crops/{image}/{node}-0.jpg")),
                            crop(&format!("crops/{image}/{node}-1.jpg")),
                        ];
                        let preview = format!("previews/{image}-{node}.jpg");
                        let commit = store
                            .commit_photo_results(image, &crops, Some(&preview))
                            .await
                            .unwrap();
                        (image, node, commit)
                    });
                }
            }
            let mut winners = std::collections::HashMap::new();
            while let Some(raced) = racers.join_next().await {
                let (image, node, commit) = raced.unwrap();
                match commit {
                    PhotoCommit::Recorded(ids) => {
                        assert_eq!(ids.len(), 2);
                        assert!(
                            winners.insert(image, node).is_none(),
                            "photo {image} recorded twice"
                        );
                    }
                    PhotoCommit::AlreadyProcessed => {}
                }
            }
            assert_eq!(winners.len(), images.len(), "every photo recorded once");
            assert!(store.unprocessed_images(session).await.unwrap().is_empty());
            for image in &images {
                let crops = store
                    .list_crops(
                        attendansee_store::Scope::All,
                        &attendansee_store::CropFilter {
                            image: Some(*image),
                            ..Default::default()
                        },
                        attendansee_store::Page::ALL,
                    )
                    .await
                    .unwrap()
                    .items;
                let node = winners[image];
                let keys: Vec<_> = crops
                    .iter()
                    .map(|c| c.crop_blob_key.clone().unwrap())
                    .collect();
                assert_eq!(
                    keys,
                    [
                        format!("crops/{image}/{node}-0.jpg"),
                        format!("crops/{image}/{node}-1.jpg")
                    ],
                    "the winner's crops, and only those"
                );
                for c in &crops {
                    assert_eq!(store.crop_embeddings(c.id).await.unwrap().len(), 1);
                }
                let photo = store
                    .get_session_image(attendansee_store::Scope::All, *image)
                    .await
                    .unwrap();
                assert_eq!(
                    photo.preview_blob_key,
                    Some(format!("previews/{image}-{node}.jpg")),
                    "the winner's preview"
                );
            }
            // The losers' keys are referenced by no row: their writers may delete them.
            let losers: Vec<String> = images
                .iter()
                .flat_map(|image| {
                    (0..4)
                        .filter(|node| *node != winners[image])
                        .map(move |node| format!("crops/{image}/{node}-0.jpg"))
                })
                .collect();
            assert_eq!(
                store.unreferenced_blob_keys(losers.clone()).await.unwrap(),
                losers
            );
            assert!(matches!(
                store
                    .commit_photo_results(999_999, &[crop("x")], None)
                    .await,
                Err(StoreError::NotFound { .. })
            ));
        },
    )
    .await;
}
