//! `attendansee bench`, store part: the store's hot paths on SQLite and on PostgreSQL, on this
//! machine, each backend on a database of its own created for the run — inserting 10,000 face
//! crops with embeddings (25 per photo, one transaction per photo as the job runner does),
//! loading a course gallery of 500 students (2 reference faces each), and claiming and
//! completing 1,000 jobs. PostgreSQL is the server of `ATTENDANSEE_TEST_DATABASE_URL` (a role
//! with CREATEDB); without it only SQLite is measured.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use attendansee_store::testing::TestDatabase;
use attendansee_store::{
    CourseFields, ImageInsert, JobStatus, NewCrop, NewImage, NewReference, Role, Scope,
    SessionFields, Store, StudentFields,
};
use attendansee_vocabulary::JobKind;

const CROPS: usize = 10_000;
const CROPS_PER_PHOTO: usize = 25;
const STUDENTS: usize = 500;
const REFERENCES_PER_STUDENT: usize = 2;
const GALLERY_LOADS: usize = 20;
const JOBS: usize = 1_000;
const DIMENSION: usize = 128;
const MODEL: &str = "mobilefacenet";

/// Reads one measurement of a backend's times.
type Measure = fn(&Times) -> Duration;

/// One backend's times.
struct Times {
    insert_crops: Duration,
    load_gallery: Duration,
    claim_jobs: Duration,
}

pub fn run() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "\nstore benchmark: {CROPS} crops with {DIMENSION}-D embeddings ({CROPS_PER_PHOTO} per photo), \
             a gallery of {STUDENTS} students × {REFERENCES_PER_STUDENT} faces (mean of {GALLERY_LOADS} loads), \
             {JOBS} jobs claimed and completed"
        );
        let sqlite = measure(&TestDatabase::sqlite()).await?;
        let postgres = match TestDatabase::postgres("the store benchmark").await {
            Some(database) => Some(measure(&database).await?),
            None => None,
        };
        print_table(&sqlite, postgres.as_ref());
        Ok(())
    })
}

fn print_table(sqlite: &Times, postgres: Option<&Times>) {
    println!(
        "{:<42} {:>12} {:>12} {:>16}",
        "", "SQLite", "PostgreSQL", "PostgreSQL/SQLite"
    );
    let rows: [(&str, Measure); 3] = [
        ("insert 10,000 crops with embeddings", |t| t.insert_crops),
        ("load a gallery of 500 students (one load)", |t| {
            t.load_gallery
        }),
        ("claim and complete 1,000 jobs", |t| t.claim_jobs),
    ];
    for (name, time) in rows {
        let s = time(sqlite);
        match postgres.map(time) {
            Some(p) => println!(
                "{name:<42} {:>10.1}ms {:>10.1}ms {:>15.2}×",
                s.as_secs_f64() * 1e3,
                p.as_secs_f64() * 1e3,
                p.as_secs_f64() / s.as_secs_f64()
            ),
            None => println!(
                "{name:<42} {:>10.1}ms {:>12} {:>16}",
                s.as_secs_f64() * 1e3,
                "—",
                "—"
            ),
        }
    }
}

/// A deterministic unit vector (no two alike), as an embedding would be.
fn vector(seed: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..DIMENSION)
        .map(|i| (((seed * 131 + i * 7919) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let norm = raw
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|v| v / norm).collect()
}

fn crop(seed: usize) -> NewCrop {
    NewCrop {
        bbox: [10.0, 20.0, 60.0, 60.0],
        landmarks: [[30.0, 40.0]; 5],
        score: 0.9,
        quality_size: 60.0,
        quality_blur: Some(100.0),
        crop_blob_key: Some(format!("crops/{seed}.jpg")),
        embedding: Some((MODEL.into(), vector(seed))),
    }
}

async fn measure(database: &TestDatabase) -> Result<Times> {
    let store = database.open().await;
    let times = measure_store(&store)
        .await
        .with_context(|| format!("store benchmark on {}", database.location()));
    store.close().await;
    times
}

async fn measure_store(store: &Store) -> Result<Times> {
    let owner = store
        .create_user("bench", "bench password", Role::Instructor)
        .await?;
    let course = store
        .create_course(
            owner.id,
            &CourseFields {
                name: "Benchmark".into(),
                code: "BENCH".into(),
                embedding_model: Some(MODEL.into()),
                match_threshold: None,
                match_margin: None,
            },
        )
        .await?;
    let session = store
        .create_session(
            Scope::All,
            course.id,
            &SessionFields {
                title: "Benchmark".into(),
                held_at: chrono::Utc::now(),
            },
        )
        .await?;

    // Photos are stored first (their rows are not what is measured), then their faces.
    let mut images = Vec::new();
    for photo in 0..CROPS / CROPS_PER_PHOTO {
        let new = NewImage {
            blob_key: format!("images/{photo}"),
            sha256: format!("{photo:064}"),
            original_name: None,
            width: 4000,
            height: 3000,
        };
        if let ImageInsert::Stored(image) = store
            .add_session_image(Scope::All, session.id, &new)
            .await?
        {
            images.push(image.id);
        }
    }
    let started = Instant::now();
    for (photo, image) in images.iter().enumerate() {
        let crops: Vec<NewCrop> = (0..CROPS_PER_PHOTO)
            .map(|i| crop(photo * CROPS_PER_PHOTO + i))
            .collect();
        store.record_image_faces(*image, &crops).await?;
    }
    let insert_crops = started.elapsed();

    for s in 0..STUDENTS {
        let student = store
            .create_student(
                Scope::All,
                course.id,
                &StudentFields {
                    name: format!("Student {s}"),
                    external_id: Some(s.to_string()),
                },
            )
            .await?;
        for r in 0..REFERENCES_PER_STUDENT {
            let seed = 1_000_000 + s * REFERENCES_PER_STUDENT + r;
            store
                .add_reference_photo(
                    Scope::All,
                    student.id,
                    &NewReference {
                        blob_key: format!("references/{seed}"),
                        sha256: format!("{seed:064}"),
                        width: 640,
                        height: 480,
                        crop: crop(seed),
                    },
                )
                .await?;
        }
    }
    let started = Instant::now();
    for _ in 0..GALLERY_LOADS {
        let gallery = store.course_gallery(course.id, MODEL).await?;
        anyhow::ensure!(
            gallery.len() == STUDENTS * REFERENCES_PER_STUDENT,
            "the gallery has {} faces",
            gallery.len()
        );
    }
    let load_gallery = started.elapsed() / GALLERY_LOADS as u32;

    for j in 0..JOBS {
        store
            .queue_job(
                JobKind::ProcessSession,
                &format!("{{\"session_id\": {j}}}"),
                course.id,
                owner.id,
                1,
            )
            .await?;
    }
    let lease = attendansee_store::JobLease {
        owner: "bench".into(),
        duration: Duration::from_secs(600),
    };
    let started = Instant::now();
    let mut completed = 0;
    while let Some(job) = store.claim_job(&lease).await? {
        store
            .finish_job(job.id, &lease.owner, (JobStatus::Succeeded, None), None)
            .await?;
        completed += 1;
    }
    let claim_jobs = started.elapsed();
    anyhow::ensure!(completed == JOBS, "{completed} jobs completed");
    Ok(Times {
        insert_crops,
        load_gallery,
        claim_jobs,
    })
}
