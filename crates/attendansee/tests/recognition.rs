//! Recognition and attendance through the real server, its workers and the real models:
//! enrollment, automatic assignment, clustering, corrections that survive re-runs, attendance
//! and its CSV — on the labelled photos of ../shared/faces.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use attendansee_recognition::bcubed;
use common::pool::{PoolServer, png};
use common::shared;

fn read(folder: &Path, name: &str) -> Vec<u8> {
    std::fs::read(folder.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn student(p: &PoolServer, course: i64, name: &str) -> i64 {
    let reply = p.call(
        "POST",
        "/api/attendance/students/",
        Some(&json!({"course": course, "name": name})),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_i64().unwrap()
}

/// Enrolls `files` of `folder` as the student's reference photos; all must be accepted.
fn enroll(p: &PoolServer, student: i64, folder: &Path, files: &[&str]) {
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| read(folder, f)).collect();
    let parts: Vec<(&str, &[u8])> = files
        .iter()
        .zip(&bytes)
        .map(|(f, b)| (*f, b.as_slice()))
        .collect();
    let reply = p.upload_to(
        &format!("/api/attendance/students/{student}/references/"),
        &parts,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["failed"], 0, "{}", reply.body);
}

/// Uploads files of `folder` to a session; returns image id → file name (of the first upload,
/// when a folder holds byte-identical copies).
fn upload(p: &PoolServer, session: i64, folder: &Path, files: &[&str]) -> BTreeMap<i64, String> {
    let mut images = BTreeMap::new();
    for chunk in files.chunks(16) {
        let bytes: Vec<Vec<u8>> = chunk.iter().map(|f| read(folder, f)).collect();
        let parts: Vec<(&str, &[u8])> = chunk
            .iter()
            .zip(&bytes)
            .map(|(f, b)| (*f, b.as_slice()))
            .collect();
        let reply = p.upload(session, &parts);
        assert_eq!(reply.status, 200, "{}", reply.body);
        for result in reply.json()["results"].as_array().unwrap() {
            assert!(
                ["stored", "duplicate"].contains(&result["status"].as_str().unwrap()),
                "{result}"
            );
            images
                .entry(result["image"]["id"].as_i64().unwrap())
                .or_insert_with(|| result["file"].as_str().unwrap().to_owned());
        }
    }
    images
}

fn crops(p: &PoolServer, session: i64) -> Vec<Value> {
    p.get(&format!(
        "/api/attendance/sessions/{session}/face-crops/?page_size=500"
    ))
    .json()["results"]
        .as_array()
        .unwrap()
        .clone()
}

fn present(p: &PoolServer, session: i64) -> BTreeSet<String> {
    let attendance = p
        .get(&format!("/api/attendance/sessions/{session}/attendance/"))
        .json();
    attendance["students"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "present")
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_small_class_is_recognised_in_its_group_photos_and_corrections_survive_reruns() {
    let Some(shared) =
        shared("a_small_class_is_recognised_in_its_group_photos_and_corrections_survive_reruns")
    else {
        return;
    };
    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "2"]);
    small_class_flow(&p, &shared);
}

/// The same flow on PostgreSQL with the blobs in an S3 bucket: the answers are the SQLite
/// installation's, and the photos, previews and crops are objects in the bucket.
#[test]
fn a_small_class_on_postgresql_and_s3_goes_through_the_same_flow() {
    const TEST: &str = "a_small_class_on_postgresql_and_s3_goes_through_the_same_flow";
    let Some(shared) = shared(TEST) else {
        return;
    };
    let Some(database) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(attendansee_store::testing::TestDatabase::postgres(TEST))
    else {
        return;
    };
    let Some(s3) = common::s3::S3Server::start(TEST) else {
        return;
    };
    let mut env = s3.env();
    env.push(("ATTENDANSEE_DATABASE_URL".into(), database.url()));
    env.push(("ATTENDANSEE_BLOB_URL".into(), s3.url("school")));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let p = PoolServer::start_real_env(&shared.join("models"), &["--workers", "2"], &env);
    small_class_flow(&p, &shared);
    for kind in ["images", "previews", "crops", "references"] {
        assert!(
            !s3.keys(&format!("school/{kind}/")).is_empty(),
            "no {kind} in the bucket"
        );
    }
    assert!(
        !p.data_dir().join("blobs").exists()
            || std::fs::read_dir(p.data_dir().join("blobs"))
                .unwrap()
                .next()
                .is_none(),
        "blobs were written to the local directory"
    );
}

/// Enrolment, three sessions of group photos, automatic assignment, clustering, corrections that
/// survive re-runs, and both attendance CSVs, through `p`.
fn small_class_flow(p: &PoolServer, shared: &Path) {
    let folder = shared.join("faces/face_recognition_examples");
    let course = p.course("FRE");
    let class: [(&str, &[&str]); 5] = [
        ("Barack Obama", &["obama.jpg", "train_obama_obama2.jpg"]),
        ("Joe Biden", &["biden.jpg", "train_biden_biden2.jpg"]),
        (
            "Kit Harington",
            &[
                "train_kit_harington_john1.jpeg",
                "train_kit_harington_john2.jpeg",
            ],
        ),
        (
            "Rose Leslie",
            &["train_rose_leslie_img1.jpg", "train_rose_leslie_img2.jpg"],
        ),
        (
            "Alex Lacamoire",
            &[
                "train_alex_lacamoire_img1.jpg",
                "examples__alex-lacamoire.png",
            ],
        ),
    ];
    let mut ids = BTreeMap::new();
    for (name, photos) in class {
        let id = student(p, course, name);
        enroll(p, id, &folder, photos);
        ids.insert(name, id);
    }

    // Enrollment refuses, each with its own error, a group photo and a photo without a face.
    let group = read(&folder, "examples__two_people.jpg");
    let blank = png(200);
    let reply = p.upload_to(
        &format!("/api/attendance/students/{}/references/", ids["Joe Biden"]),
        &[("group.jpg", &group), ("blank.png", &blank)],
    );
    let body = reply.json();
    assert_eq!(body["failed"], 2, "{body}");
    assert_eq!(body["results"][0]["error_type"], "MultipleFaces", "{body}");
    assert_eq!(body["results"][1]["error_type"], "NoFaceDetected", "{body}");
    let refs = p
        .get(&format!(
            "/api/attendance/students/{}/references/",
            ids["Joe Biden"]
        ))
        .json();
    assert_eq!(refs.as_array().unwrap().len(), 2, "{refs}");

    // One session per group photo: exactly the labelled people are present.
    let photos = [
        (
            "examples__two_people.jpg",
            names(&["Barack Obama", "Joe Biden"]),
        ),
        (
            "test_obama_and_biden.jpg",
            names(&["Barack Obama", "Joe Biden"]),
        ),
        (
            "test_kit_with_rose.jpg",
            names(&["Kit Harington", "Rose Leslie"]),
        ),
    ];
    let mut sessions = Vec::new();
    for (photo, expected) in &photos {
        let session = p.session_in(course, photo);
        upload(p, session, &folder, &[photo]);
        let job = p.process(session);
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(&present(p, session), expected, "{photo}");
        sessions.push(session);
    }

    // Every automatic match explains itself: similarity, threshold passed, runner-up behind.
    let first = crops(p, sessions[0]);
    for crop in &first {
        let decision = &crop["decision"];
        assert_eq!(decision["reason"], "matched", "{crop}");
        let best = decision["best"]["similarity"].as_f64().unwrap();
        let runner_up = decision["runner_up"]["similarity"].as_f64().unwrap();
        assert!(best >= 0.5 && best - runner_up >= 0.05, "{crop}");
        assert_eq!(crop["assignment_source"], "auto");
    }

    // A student a person put in a photo is taken there: with Kit's face assigned to Rose by hand,
    // Rose's own face is not given to her a second time (`conflict`). Reset, all is as before.
    let third = crops(p, sessions[2]);
    let face_of = |name: &str| {
        third
            .iter()
            .find(|c| c["student"] == ids[name])
            .unwrap_or_else(|| panic!("{name}: {third:?}"))["id"]
            .as_i64()
            .unwrap()
    };
    let (kit_face, rose_face) = (face_of("Kit Harington"), face_of("Rose Leslie"));
    let reply = p.call(
        "POST",
        &format!("/api/attendance/face-crops/{kit_face}/assign/"),
        Some(&json!({"student_id": ids["Rose Leslie"]})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = p.call(
        "POST",
        &format!("/api/attendance/sessions/{}/assign/", sessions[2]),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rose = p
        .get(&format!("/api/attendance/face-crops/{rose_face}/"))
        .json();
    assert!(rose["student"].is_null(), "{rose}");
    assert_eq!(rose["decision"]["reason"], "conflict", "{rose}");
    let reply = p.call(
        "POST",
        &format!("/api/attendance/face-crops/{kit_face}/reset/"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        present(p, sessions[2]),
        names(&["Kit Harington", "Rose Leslie"])
    );

    // The third person of test_obama_and_biden.jpg is nobody enrolled: until someone says so,
    // the others are "unknown", not "absent".
    let second = crops(p, sessions[1]);
    let stranger = second
        .iter()
        .find(|c| c["student"].is_null())
        .expect("an unassigned face")
        .clone();
    let attendance = p
        .get(&format!(
            "/api/attendance/sessions/{}/attendance/",
            sessions[1]
        ))
        .json();
    assert_eq!(attendance["unresolved_faces"], 1, "{attendance}");
    assert_eq!(attendance["unknown"], 3, "{attendance}");

    // Corrections: the stranger is assigned by hand to a student enrolled without references;
    // Obama's face in the first session is marked "not a student" — automatic assignment would
    // match it again if it could.
    let girl = student(p, course, "Girl in the corner");
    let stranger_id = stranger["id"].as_i64().unwrap();
    let reply = p.call(
        "POST",
        &format!("/api/attendance/face-crops/{stranger_id}/assign/"),
        Some(&json!({"student_id": girl})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["assignment_source"], "manual");
    let obama_face = first
        .iter()
        .find(|c| c["student"] == ids["Barack Obama"])
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let reply = p.call(
        "POST",
        &format!("/api/attendance/face-crops/{obama_face}/not-a-student/"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Re-processing, re-assigning and re-clustering keep both decisions.
    for session in &sessions {
        assert_eq!(p.process(*session)["status"], "succeeded");
        let reply = p.call(
            "POST",
            &format!("/api/attendance/sessions/{session}/assign/"),
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = p.call(
        "POST",
        &format!("/api/attendance/courses/{course}/clusters/recluster/"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let crop = p
        .get(&format!("/api/attendance/face-crops/{stranger_id}/"))
        .json();
    assert_eq!(crop["student"], girl, "{crop}");
    assert_eq!(crop["assignment_source"], "manual", "{crop}");
    assert_eq!(
        present(p, sessions[1]),
        names(&["Barack Obama", "Joe Biden", "Girl in the corner"])
    );
    let obama = p
        .get(&format!("/api/attendance/face-crops/{obama_face}/"))
        .json();
    assert_eq!(obama["not_a_student"], true, "{obama}");
    assert!(
        obama["student"].is_null() && obama["cluster"].is_null() && obama["decision"].is_null(),
        "{obama}"
    );
    assert_eq!(present(p, sessions[0]), names(&["Joe Biden"]));
    let unassigned = p
        .get(&format!(
            "/api/attendance/sessions/{}/face-crops/?unassigned=true",
            sessions[0]
        ))
        .json();
    assert_eq!(unassigned["count"], 0, "{unassigned}");
    let clusters = p
        .get(&format!("/api/attendance/courses/{course}/clusters/"))
        .json();
    assert_eq!(clusters, json!([]), "{clusters}");
    // Every face resolved: those not seen are absent now.
    let attendance = p
        .get(&format!(
            "/api/attendance/sessions/{}/attendance/",
            sessions[1]
        ))
        .json();
    assert_eq!(
        (
            attendance["present"].as_u64(),
            attendance["absent"].as_u64()
        ),
        (Some(3), Some(3)),
        "{attendance}"
    );

    // A manual override of attendance wins, and both CSVs carry the rows.
    let reply = p.call(
        "PUT",
        &format!(
            "/api/attendance/sessions/{}/attendance/{}/",
            sessions[2], ids["Alex Lacamoire"]
        ),
        Some(&json!({"status": "present"})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let csv = p.get(&format!(
        "/api/attendance/sessions/{}/attendance/csv/",
        sessions[2]
    ));
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let rows: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        rows[0],
        "student_id,external_id,name,status,source,evidence_crops"
    );
    assert_eq!(rows.len(), 7, "{}", csv.body);
    assert!(
        rows.iter()
            .any(|r| r.contains(",Alex Lacamoire,present,manual,")),
        "{}",
        csv.body
    );
    assert!(
        rows.iter()
            .any(|r| r.contains(",Rose Leslie,present,auto,")),
        "{}",
        csv.body
    );
    let matrix = p.get(&format!("/api/attendance/courses/{course}/attendance/csv/"));
    let rows: Vec<&str> = matrix.body.lines().collect();
    assert_eq!(rows.len(), 7, "{}", matrix.body);
    assert!(
        rows.iter()
            .any(|r| r.ends_with(",Joe Biden,present,present,absent,2")
                && matrix
                    .body
                    .contains(",Girl in the corner,absent,present,absent,1")),
        "{}",
        matrix.body
    );
}

#[test]
fn faceapi_bbt_people_enrolled_from_one_crop_each_are_recognised_in_the_others() {
    let Some(shared) =
        shared("faceapi_bbt_people_enrolled_from_one_crop_each_are_recognised_in_the_others")
    else {
        return;
    };
    let folder = shared.join("faces/faceapi_bbt");
    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "2"]);
    let course = p.course("BBT");
    let people = [
        "amy",
        "bernadette",
        "howard",
        "leonard",
        "penny",
        "raj",
        "sheldon",
        "stuart",
    ];
    let mut ids = BTreeMap::new();
    for person in people {
        let id = student(&p, course, person);
        enroll(&p, id, &folder, &[&format!("{person}_{person}1.png")]);
        ids.insert(id, person);
    }
    let session = p.session_in(course, "bbt");
    let files: Vec<String> = people
        .iter()
        .flat_map(|person| (2..=5).map(move |i| format!("{person}_{person}{i}.png")))
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let images = upload(&p, session, &folder, &files);
    assert_eq!(p.process(session)["status"], "succeeded");
    let (mut right, mut wrong, mut unassigned) = (0, 0, Vec::new());
    for crop in crops(&p, session) {
        let file = &images[&crop["image"].as_i64().unwrap()];
        match crop["student"].as_i64() {
            Some(id) if file.starts_with(&format!("{}_", ids[&id])) => right += 1,
            Some(id) => {
                wrong += 1;
                eprintln!("WRONG: {file} assigned to {}: {crop}", ids[&id]);
            }
            None => unassigned.push(format!(
                "{file} ({} {:.3})",
                crop["decision"]["reason"], crop["decision"]["best"]["similarity"]
            )),
        }
    }
    let accuracy = f64::from(right) / files.len() as f64;
    eprintln!(
        "faceapi_bbt: {right}/{} correct ({:.1}%), {wrong} wrong, unassigned: {unassigned:?}",
        files.len(),
        100.0 * accuracy
    );
    // Conservative by design: a wrong assignment is a failure; an unsure face is left for a person.
    assert_eq!(wrong, 0);
    assert!(accuracy >= 0.8, "accuracy {accuracy}");
}

#[test]
fn dlib_johns_cluster_into_their_five_people_with_nobody_enrolled() {
    let Some(shared) = shared("dlib_johns_cluster_into_their_five_people_with_nobody_enrolled")
    else {
        return;
    };
    let folder = shared.join("faces/dlib_johns");
    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "2"]);
    let course = p.course("JOHNS");
    let session = p.session_in(course, "johns");
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".jpg").then_some(name)
        })
        .collect();
    files.sort();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let images = upload(&p, session, &folder, &files);
    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["stats"]["assignment"]["no_students"],
        images.len(),
        "{job}"
    );

    let score = |p: &PoolServer| {
        let clusters = p
            .get(&format!("/api/attendance/courses/{course}/clusters/"))
            .json();
        let mut cluster_of = BTreeMap::new();
        for (k, cluster) in clusters.as_array().unwrap().iter().enumerate() {
            for member in cluster["members"].as_array().unwrap() {
                cluster_of.insert(member.as_i64().unwrap(), k);
            }
        }
        let (mut truth, mut predicted) = (Vec::new(), Vec::new());
        for crop in crops(p, session) {
            let file = &images[&crop["image"].as_i64().unwrap()];
            let person = file.rsplitn(3, '_').nth(2).unwrap().to_owned();
            truth.push(person);
            predicted.push(cluster_of.get(&crop["id"].as_i64().unwrap()).copied());
        }
        (
            bcubed(&truth, &predicted),
            clusters.as_array().unwrap().len(),
        )
    };
    let (incremental, count) = score(&p);
    eprintln!("dlib_johns incremental: {count} clusters for 5 people, {incremental:?}");
    assert!(incremental.f1 >= 0.95, "{incremental:?}");
    let reply = p.call(
        "POST",
        &format!("/api/attendance/courses/{course}/clusters/recluster/"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (full, count) = score(&p);
    eprintln!("dlib_johns full re-cluster: {count} clusters for 5 people, {full:?}");
    assert!(full.f1 >= 0.95, "{full:?}");

    // Naming a cluster assigns all its faces; merging two clusters locks the result.
    let clusters = p
        .get(&format!("/api/attendance/courses/{course}/clusters/"))
        .json();
    let first = &clusters[0];
    let members = first["members"].as_array().unwrap().len() as u64;
    let reply = p.call(
        "POST",
        &format!("/api/attendance/clusters/{}/name/", first["id"]),
        Some(&json!({"new_student": {"name": "First John"}})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["assigned"], members);
    let merged = p.call(
        "POST",
        "/api/attendance/clusters/merge/",
        Some(&json!({"cluster_ids": [clusters[1]["id"], clusters[2]["id"]]})),
    );
    assert_eq!(merged.status, 200, "{}", merged.body);
    assert_eq!(merged.json()["locked"], true);
    let reply = p.call(
        "POST",
        &format!("/api/attendance/courses/{course}/clusters/recluster/"),
        None,
    );
    let after = reply.json();
    let kept = after["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == clusters[1]["id"])
        .expect("the merged cluster survives re-clustering");
    assert_eq!(kept["members"], merged.json()["members"]);
}

/// Every file under `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_failed_recognition_step_fails_the_job_and_the_session_never_stays_processing() {
    let Some(shared) =
        shared("a_failed_recognition_step_fails_the_job_and_the_session_never_stays_processing")
    else {
        return;
    };
    let folder = shared.join("faces/face_recognition_examples");
    let p = PoolServer::start_real(
        &shared.join("models"),
        &["--workers", "1", "--recognizers", "mobilefacenet-batch"],
    );
    let course = p.course("FAIL");
    let obama = student(&p, course, "Barack Obama");
    enroll(&p, obama, &folder, &["obama.jpg"]);
    // The course switches model, so the reference face must be embedded again from its stored
    // crop — which is gone.
    let crops = files_ending(&p.data_dir(), ".face.jpg");
    assert_eq!(crops.len(), 1, "{crops:?}");
    std::fs::remove_file(&crops[0]).unwrap();
    let reply = p.call(
        "PATCH",
        &format!("/api/attendance/courses/{course}/"),
        Some(&json!({"embedding_model": "mobilefacenet-batch"})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = p.session_in(course, "W1");
    upload(&p, session, &folder, &["examples__two_people.jpg"]);
    let job = p.process(session);
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .starts_with("assignment failed"),
        "{job}"
    );
    assert_eq!(job["done"], 1, "{job}");
    let status = p
        .get(&format!("/api/attendance/sessions/{session}/"))
        .json();
    assert_eq!(status["status"], "failed", "{status}");
}

/// `name` of `folder` scaled by `factor` (an area-averaging filter, as a camera's sensor).
fn scaled(folder: &Path, name: &str, factor: f64) -> image::RgbImage {
    let photo = image::load_from_memory(&read(folder, name))
        .unwrap()
        .to_rgb8();
    let (w, h) = photo.dimensions();
    let size = |v: u32| ((f64::from(v) * factor).round() as u32).max(1);
    image::imageops::resize(
        &photo,
        size(w),
        size(h),
        image::imageops::FilterType::Triangle,
    )
}

#[test]
fn a_face_shrunk_below_the_size_limit_is_reported_too_small_and_never_assigned() {
    let Some(shared) =
        shared("a_face_shrunk_below_the_size_limit_is_reported_too_small_and_never_assigned")
    else {
        return;
    };
    let folder = shared.join("faces/face_recognition_examples");
    let p = PoolServer::start_real(&shared.join("models"), &["--workers", "1"]);
    let course = p.course("SMALL");
    let obama = student(&p, course, "Barack Obama");
    enroll(&p, obama, &folder, &["obama.jpg"]);
    let biden = student(&p, course, "Joe Biden");
    enroll(&p, biden, &folder, &["biden.jpg"]);

    // A 640×640 photo (the detector sees it unscaled): Obama at ~100 px, and Biden shrunk until
    // his face's box is ~30 px — below the 32 px limit, yet still close enough to his reference
    // photo that, without the limit, he would be assigned.
    let mut class = image::RgbImage::from_pixel(640, 640, image::Rgb([128, 128, 128]));
    let near = scaled(&folder, "train_obama_obama2.jpg", 0.367);
    image::imageops::overlay(&mut class, &near, 20, 20);
    let far = scaled(&folder, "train_biden_biden2.jpg", 28.0 / 437.0);
    image::imageops::overlay(&mut class, &far, 450, 200);
    let mut png = std::io::Cursor::new(Vec::new());
    class.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let session = p.session_in(course, "far away");
    let reply = p.upload(session, &[("class.png", png.get_ref())]);
    assert_eq!(reply.json()["stored"], 1, "{}", reply.body);
    assert_eq!(p.process(session)["status"], "succeeded");

    let faces = crops(&p, session);
    let near_face = faces
        .iter()
        .find(|c| c["quality"]["size"].as_f64().unwrap() > 80.0)
        .unwrap_or_else(|| panic!("Obama's face not found: {faces:?}"));
    assert_eq!(near_face["student"], obama, "{near_face}");
    assert!(near_face["quality"]["issue"].is_null(), "{near_face}");
    let far_face = faces
        .iter()
        .find(|c| c["decision"]["best"]["student"] == biden)
        .unwrap_or_else(|| panic!("Biden's face not found: {faces:?}"));
    let size = far_face["quality"]["size"].as_f64().unwrap();
    let similarity = far_face["decision"]["best"]["similarity"].as_f64().unwrap();
    eprintln!("Biden shrunk: box {size:.1} px, similarity to his reference {similarity:.3}");
    assert!(size < 32.0, "{far_face}");
    assert_eq!(far_face["quality"]["issue"], "too_small", "{far_face}");
    assert_eq!(far_face["decision"]["reason"], "too_small", "{far_face}");
    assert!(far_face["student"].is_null(), "{far_face}");
    // Not vacuous: at this size he still matches his reference above the threshold (0.50).
    assert!(similarity >= 0.5, "{far_face}");
    // Every face too small is unassigned, whatever its similarity.
    for face in &faces {
        if face["quality"]["issue"] == "too_small" {
            assert!(face["student"].is_null(), "{face}");
        }
    }
    let photo = &p
        .get(&format!("/api/attendance/sessions/{session}/images/"))
        .json()[0];
    let hint = photo["quality_hint"].as_str().unwrap_or_default();
    assert!(
        hint.ends_with("too small to recognise: take the photo closer"),
        "{photo}"
    );
    // Biden is not present (his only face is unrecognisable) and not absent either.
    let attendance = p
        .get(&format!("/api/attendance/sessions/{session}/attendance/"))
        .json();
    let status = |id: i64| {
        attendance["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["student"] == id)
            .map(|s| s["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status(biden).as_deref(), Some("unknown"), "{attendance}");
    assert_eq!(status(obama).as_deref(), Some("present"), "{attendance}");
}
