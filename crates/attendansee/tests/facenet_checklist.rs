//! The old service asked for `"model_name": "facenet"` and expected 128-D embeddings. Here the
//! server's `facenet.onnx` is DeepFace's FaceNet architecture exported by
//! `tools/export_facenet.py` with seeded random weights (the real weights cannot be downloaded
//! here): the old service's single and batch embedding requests pass verbatim through the real
//! binary, workers and catalog entry.

mod common;

use std::process::Command;

use common::pool::{PoolServer, root};
use common::shared;
use serde_json::json;

#[test]
fn the_old_services_facenet_requests_pass_against_a_random_weight_export() {
    let Some(shared) =
        shared("the_old_services_facenet_requests_pass_against_a_random_weight_export")
    else {
        return;
    };
    // A model directory with the real detector and the exported FaceNet.
    let models = tempfile::tempdir().unwrap();
    let detector = "face_detection_yunet_2023mar.onnx";
    std::fs::copy(
        shared.join("models").join(detector),
        models.path().join(detector),
    )
    .unwrap();
    let status = Command::new(root().join(".local/venv/bin/python"))
        .arg(root().join("tools/export_facenet.py"))
        .args(["--variant", "facenet", "--random-weights", "7", "--out"])
        .arg(models.path().join("facenet.onnx"))
        .status()
        .expect("run tools/export_facenet.py (scripts/setup.sh --test installs its dependencies)");
    assert!(status.success());

    let p = PoolServer::start_real_with(
        models.path(),
        &["--detector", "yunet", "--recognizers", "facenet"],
        &["--workers", "1"],
    );
    let course = p.course("FN1");
    let session = p.session_in(course, "FaceNet");
    let photo =
        std::fs::read(shared.join("faces/face_recognition_examples/examples__two_people.jpg"))
            .unwrap();
    let upload = p.upload(session, &[("two_people.jpg", &photo)]);
    assert_eq!(upload.json()["stored"], 1, "{}", upload.body);
    let job = p.process(session);
    assert_eq!(job["status"], "succeeded", "{job}");
    let crops = p
        .get(&format!("/api/attendance/sessions/{session}/face-crops/"))
        .json()["results"]
        .as_array()
        .unwrap()
        .clone();
    assert!(crops.len() >= 2, "{crops:?}");
    let ids: Vec<i64> = crops.iter().map(|c| c["id"].as_i64().unwrap()).collect();

    // One crop, as the old service's checklist sends it.
    let reply = p.call(
        "POST",
        &format!("/api/attendance/face-crops/{}/generate-embedding/", ids[0]),
        Some(&json!({"model_name": "facenet", "force_regenerate": true})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"status": "success", "crop_id": ids[0], "embedding_model": "facenet",
               "embedding_dimension": 128, "message": "Embedding generated successfully"})
    );
    // A batch, as the checklist sends it.
    let batch = p
        .call(
            "POST",
            "/api/attendance/face-crops/generate-embeddings-batch/",
            Some(&json!({"face_crop_ids": ids, "model_name": "facenet", "force_regenerate": true})),
        )
        .json();
    assert_eq!(batch["status"], "success", "{batch}");
    assert_eq!(
        batch["success_count"].as_u64(),
        Some(ids.len() as u64),
        "{batch}"
    );
    for result in batch["results"].as_array().unwrap() {
        assert_eq!(result["embedding_dimension"], 128, "{batch}");
    }
    let embeddings = p
        .get(&format!(
            "/api/attendance/face-crops/{}/embeddings/",
            ids[0]
        ))
        .json();
    assert_eq!(
        (
            embeddings[0]["model_name"].as_str(),
            embeddings[0]["dimension"].as_u64()
        ),
        (Some("facenet"), Some(128))
    );
}
