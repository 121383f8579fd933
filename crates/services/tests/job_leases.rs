//! The job runner with several nodes on one store (each test on SQLite and on PostgreSQL): a job
//! whose node died is finished by another, photo by photo — the photos the first node committed
//! are not processed again and keep their one set of faces — and a node whose job was taken over
//! stops without writing over the new holder.

use std::sync::Arc;
use std::time::Duration;

use attendansee_services::Services;
use attendansee_services::fake::{FakeFace, FakeInference};
use attendansee_services::jobs::{JobLeases, run_jobs};
use attendansee_store::testing::{TestDatabase, each_backend};
use attendansee_store::{
    BlobStore, CourseFields, CropFilter, ImageInsert, JobLease, JobStatus, NewCrop, NewImage, Page,
    PhotoCommit, Role, Scope, SessionFields, Store, User, blob_keys,
};

const PHOTOS: usize = 6;
const FACES: usize = 2;

/// A session of `photos` photos of two faces each, known to the fake inference.
struct Fixture {
    store: Store,
    blobs: BlobStore,
    inference: Arc<FakeInference>,
    user: User,
    session: i64,
    images: Vec<i64>,
    _blob_dir: tempfile::TempDir,
}

async fn fixture(db: &TestDatabase, photos: usize) -> Fixture {
    let store = db.open().await;
    let blob_dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::local(blob_dir.path()).unwrap();
    let inference = Arc::new(FakeInference::new());
    let user = store
        .create_user("ada", "password-a", Role::Instructor)
        .await
        .unwrap();
    let course = store
        .create_course(
            user.id,
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
    let session = store
        .create_session(
            user.scope(),
            course.id,
            &SessionFields {
                title: "W1".into(),
                held_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap()
        .id;
    let mut images = Vec::new();
    for i in 0..photos {
        let bytes = format!("photo {i}").into_bytes();
        let faces = (0..FACES)
            .map(|f| {
                let mut vector = vec![0.0; 8];
                vector[(i + f) % 8] = 1.0;
                FakeFace::new([10.0 + 100.0 * f as f32, 10.0, 80.0, 80.0], vector)
            })
            .collect();
        inference.photo(&bytes, 640, 480, faces);
        let sha = format!("{i:064}");
        let key = blob_keys::session_photo(session, &sha);
        blobs.put(&key, bytes.into()).await.unwrap();
        let new = NewImage {
            blob_key: key,
            sha256: sha,
            original_name: Some(format!("{i}.jpg")),
            width: 640,
            height: 480,
        };
        let ImageInsert::Stored(image) = store
            .add_session_image(user.scope(), session, &new)
            .await
            .unwrap()
        else {
            panic!("stored twice")
        };
        images.push(image.id);
    }
    Fixture {
        store,
        blobs,
        inference,
        user,
        session,
        images,
        _blob_dir: blob_dir,
    }
}

impl Fixture {
    fn services(&self) -> Services {
        Services::new(
            self.store.clone(),
            self.blobs.clone(),
            attendansee_services::Settings::default(),
        )
        .with_inference(self.inference.clone())
    }

    /// The crop keys of each photo, in photo order.
    async fn crop_keys(&self) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        for image in &self.images {
            let filter = CropFilter {
                image: Some(*image),
                ..Default::default()
            };
            let crops = self
                .store
                .list_crops(Scope::All, &filter, Page::ALL)
                .await
                .unwrap()
                .items;
            for crop in &crops {
                assert_eq!(
                    self.store.crop_embeddings(crop.id).await.unwrap().len(),
                    1,
                    "one embedding per face"
                );
            }
            all.push(
                crops
                    .into_iter()
                    .map(|c| c.crop_blob_key.unwrap_or_default())
                    .collect(),
            );
        }
        all
    }

    /// Waits for the job to end (or fails the test after `seconds`).
    async fn ended(&self, job: i64, seconds: u64) -> attendansee_store::JobRecord {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let record = self.store.get_job(Scope::All, job).await.unwrap();
            if record.status.is_finished() {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} still {:?} after {seconds} s ({} of {} done)",
                record.status,
                record.done,
                record.total
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The faces a worker would have found in photo `index` of the fixture, as the dead node
/// committed them (crop keys of its own run).
fn committed_faces(image: i64, run: &str) -> Vec<NewCrop> {
    (0..FACES)
        .map(|f| NewCrop {
            bbox: [10.0 + 100.0 * f as f32, 10.0, 80.0, 80.0],
            landmarks: [[20.0, 20.0]; 5],
            score: 0.9,
            quality_size: 80.0,
            quality_blur: Some(100.0),
            crop_blob_key: Some(blob_keys::session_face(image, run, f)),
            embedding: Some(("mobilefacenet".into(), vec![1.0; 8])),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_node_died_is_finished_by_another_photo_by_photo() {
    each_backend(
        "a_job_whose_node_died_is_finished_by_another_photo_by_photo",
        async |db| {
            let f = fixture(&db, PHOTOS).await;
            let services = f.services();
            let job = services.queue_processing(&f.user, f.session).await.unwrap();
            assert_eq!(job.total, PHOTOS as i64);

            // Node A claims the job, commits two photos and records its progress, then dies:
            // its lease is never renewed.
            let dead = JobLease {
                owner: "node-dead".into(),
                duration: Duration::from_millis(300),
            };
            let claimed = f.store.claim_job(&dead).await.unwrap().unwrap();
            assert_eq!(claimed.id, job.id);
            for &image in &f.images[..2] {
                let commit = f
                    .store
                    .commit_photo_results(image, &committed_faces(image, "dead"), None)
                    .await
                    .unwrap();
                assert!(matches!(commit, PhotoCommit::Recorded(_)));
            }
            assert!(
                f.store
                    .job_progress(job.id, "node-dead", (2, PHOTOS as i64), "[]", "{}")
                    .await
                    .unwrap()
            );

            // Node B's runner takes the job over once A's lease has run out.
            let b = JobLeases::new(Duration::from_secs(3));
            let runner = tokio::spawn(run_jobs(services.clone(), b.clone()));
            let ended = f.ended(job.id, 20).await;
            runner.abort();

            assert_eq!(ended.status, JobStatus::Succeeded, "{:?}", ended.error);
            assert_eq!((ended.done, ended.total), (PHOTOS as i64, PHOTOS as i64));
            assert_eq!(ended.attempts, 2);
            assert_eq!(ended.lease_owner.as_deref(), Some(b.node()));
            let detections = f
                .inference
                .calls()
                .iter()
                .filter(|c| **c == "detect_and_embed")
                .count();
            assert_eq!(
                detections,
                PHOTOS - 2,
                "the photos A committed are not processed again"
            );
            let keys = f.crop_keys().await;
            for (i, photo) in keys.iter().enumerate() {
                assert_eq!(photo.len(), FACES, "photo {i}: one set of faces");
                let by_dead = photo.iter().filter(|k| k.contains("/dead-")).count();
                assert_eq!(
                    by_dead,
                    if i < 2 { FACES } else { 0 },
                    "photo {i}: {photo:?}"
                );
            }
            let session = f.store.get_session(Scope::All, f.session).await.unwrap();
            assert_eq!(session.status, attendansee_store::SessionStatus::Processed);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_job_was_taken_over_stops_and_writes_nothing_more() {
    each_backend(
        "a_node_whose_job_was_taken_over_stops_and_writes_nothing_more",
        async |db| {
            // Several rounds of photos (the fake runs four at once), so that the job is only
            // under way when it is taken over.
            let photos = 16;
            let f = fixture(&db, photos).await;
            f.inference.set_detect_delay(Duration::from_millis(300));
            let services = f.services();
            let job = services.queue_processing(&f.user, f.session).await.unwrap();
            let a = JobLeases::new(Duration::from_secs(3));
            let runner = tokio::spawn(run_jobs(services.clone(), a.clone()));
            // Once A is under way, another node holds the job (as after A stalled past its
            // lease): its lease and progress are written over A's.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while f.store.get_job(Scope::All, job.id).await.unwrap().done == 0 {
                assert!(tokio::time::Instant::now() < deadline, "A never progressed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            db.execute(&format!(
                "UPDATE jobs SET lease_owner = 'node-new', done = 1, errors = '[\"new\"]' WHERE id = {}",
                job.id
            ))
            .await;
            // A notices before its next photo (or at its next beat) and stops.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let detections = f
                .inference
                .calls()
                .iter()
                .filter(|c| **c == "detect_and_embed")
                .count();
            runner.abort();
            assert!(
                detections <= photos / 2,
                "A went on after it lost the job ({detections} photos)"
            );
            let now = f.store.get_job(Scope::All, job.id).await.unwrap();
            assert_eq!(
                (
                    now.status,
                    now.lease_owner.as_deref(),
                    now.done,
                    now.errors.as_str()
                ),
                (JobStatus::Running, Some("node-new"), 1, "[\"new\"]"),
                "A wrote over the new holder"
            );
            // The photos A finished have one set of faces each; the others are left to the new
            // holder.
            for photo in f.crop_keys().await {
                assert!(photo.is_empty() || photo.len() == FACES, "{photo:?}");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_from_an_outage_after_its_job_was_finished_elsewhere_leaves_the_session_alone()
{
    each_backend(
        "a_node_back_from_an_outage_after_its_job_was_finished_elsewhere_leaves_the_session_alone",
        async |db| {
            let f = fixture(&db, 1).await;
            let services = f.services();
            let job = services.queue_processing(&f.user, f.session).await.unwrap();
            // The photo cannot be read (its directory is a file: an I/O error, as when the
            // storage is away), so node A's job waits for the storage to come back.
            let photos_dir = f._blob_dir.path().join(format!("images/{}", f.session));
            let aside = f._blob_dir.path().join("aside");
            std::fs::rename(&photos_dir, &aside).unwrap();
            std::fs::write(&photos_dir, b"not a directory").unwrap();
            let a = JobLeases::new(Duration::from_secs(3));
            let runner = tokio::spawn(run_jobs(services.clone(), a.clone()));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let session = f.store.get_session(Scope::All, f.session).await.unwrap();
                if session.status == attendansee_store::SessionStatus::Processing {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "A never started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // While A waits (its first pause is a second), another node takes the job over and
            // finishes it, and the storage comes back.
            tokio::time::sleep(Duration::from_millis(200)).await;
            db.execute(&format!(
                "UPDATE jobs SET lease_owner = 'node-b', status = 'succeeded' WHERE id = {job};
                 UPDATE sessions SET status = 'processed' WHERE id = {session};",
                job = job.id,
                session = f.session
            ))
            .await;
            std::fs::remove_file(&photos_dir).unwrap();
            std::fs::rename(&aside, &photos_dir).unwrap();
            // A tries again, finds the job is not its own any more, and stops: the session stays
            // as the node that finished it left it.
            tokio::time::sleep(Duration::from_secs(3)).await;
            runner.abort();
            let session = f.store.get_session(Scope::All, f.session).await.unwrap();
            assert_eq!(
                session.status,
                attendansee_store::SessionStatus::Processed,
                "A wrote over the session's status after it lost the job"
            );
            let now = f.store.get_job(Scope::All, job.id).await.unwrap();
            assert_eq!(
                (now.status, now.lease_owner.as_deref()),
                (JobStatus::Succeeded, Some("node-b"))
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_whose_node_died_reopens_its_session() {
    each_backend(
        "cancelling_a_job_whose_node_died_reopens_its_session",
        async |db| {
            let f = fixture(&db, 1).await;
            let services = f.services();
            let status = async || {
                f.store
                    .get_session(Scope::All, f.session)
                    .await
                    .unwrap()
                    .status
            };
            // A node claims the job, marks the session processing and dies.
            let job = services.queue_processing(&f.user, f.session).await.unwrap();
            let dead = JobLease {
                owner: "node-dead".into(),
                duration: Duration::from_millis(200),
            };
            f.store.claim_job(&dead).await.unwrap().unwrap();
            assert!(
                f.store
                    .mark_session_processing(f.session, job.id, "node-dead")
                    .await
                    .unwrap()
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
            // Nobody is left to end it: the cancellation does.
            let cancelled = services.cancel_job(f.user.scope(), job.id).await.unwrap();
            assert_eq!(cancelled.status, JobStatus::Cancelled);
            assert_eq!(status().await, attendansee_store::SessionStatus::Open);

            // A live holder ends its own job (and the session) when it sees the cancellation:
            // the cancellation leaves the session to it.
            let job = services.queue_processing(&f.user, f.session).await.unwrap();
            let live = JobLease {
                owner: "node-live".into(),
                duration: Duration::from_secs(600),
            };
            f.store.claim_job(&live).await.unwrap().unwrap();
            assert!(
                f.store
                    .mark_session_processing(f.session, job.id, "node-live")
                    .await
                    .unwrap()
            );
            services.cancel_job(f.user.scope(), job.id).await.unwrap();
            assert_eq!(status().await, attendansee_store::SessionStatus::Processing);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_nodes_keep_dying_is_failed_instead_of_claimed_forever() {
    each_backend(
        "a_job_whose_nodes_keep_dying_is_failed_instead_of_claimed_forever",
        async |db| {
            let f = fixture(&db, 1).await;
            let services = f.services();
            let job = services.queue_processing(&f.user, f.session).await.unwrap();
            // Every node that took it died (a photo that kills its node, say).
            for n in 0..attendansee_services::jobs::MAX_JOB_ATTEMPTS {
                let dead = JobLease {
                    owner: format!("node-dead-{n}"),
                    duration: Duration::from_millis(100),
                };
                let claimed = f.store.claim_job(&dead).await.unwrap().unwrap();
                assert_eq!(claimed.id, job.id);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let runner = tokio::spawn(run_jobs(
                services.clone(),
                JobLeases::new(Duration::from_secs(3)),
            ));
            let ended = f.ended(job.id, 10).await;
            runner.abort();
            assert_eq!(ended.status, JobStatus::Failed);
            let error = ended.error.unwrap_or_default();
            assert!(error.contains("never finished"), "{error}");
            assert!(
                f.inference.calls().is_empty(),
                "the job was run again: {:?}",
                f.inference.calls()
            );
            let session = f.store.get_session(Scope::All, f.session).await.unwrap();
            assert_eq!(session.status, attendansee_store::SessionStatus::Failed);
        },
    )
    .await;
}
