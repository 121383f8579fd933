//! The face commands as a user runs them: `embed`'s one-shot contract, `detect`, and `models`.
//! Tests marked "everywhere" need only ONNX Runtime; the rest use ../shared and say when skipped.

mod common;

use common::shared;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The binary with a private data directory (models in `<data>/models`).
fn run(data: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(common::BIN);
    command
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("ATTENDANSEE_CONFIG")
        .current_dir(data.parent().unwrap());
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        command.env(
            "ORT_DYLIB_PATH",
            root().join(".local/onnxruntime/libonnxruntime.so"),
        );
    }
    command.output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A data directory with the real detector and recognizer installed through `models fetch --mirror`.
fn installed(shared: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mirror = shared.join("models");
    let out = run(
        &data,
        &[
            "models",
            "fetch",
            "yunet",
            "mobilefacenet",
            "--mirror",
            mirror.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn everywhere_a_missing_onnx_runtime_is_reported_with_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = dir.path().join("x.png");
    std::fs::write(&image, b"irrelevant").unwrap();
    let out = run(
        &data,
        &[
            "--ort-lib",
            "/nonexistent/libonnxruntime.so",
            "embed",
            image.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let result = &json_lines(&out)[0];
    assert_eq!(result["success"], false);
    assert_eq!(result["error_type"], "ModelNotAvailable");
    let message = result["error"].as_str().unwrap();
    assert!(
        message.contains("scripts/setup.sh") && message.contains("ORT_DYLIB_PATH"),
        "{message}"
    );
    assert!(result["traceback"].is_string());
}

#[test]
fn everywhere_unknown_and_uninstalled_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let image = dir.path().join("x.png");
    std::fs::write(&image, b"irrelevant").unwrap();
    let out = run(
        &data,
        &["embed", image.to_str().unwrap(), "--model", "vggface9000"],
    );
    let result = &json_lines(&out)[0];
    assert_eq!(result["error_type"], "ValidationError", "{result}");
    assert!(
        result["error"].as_str().unwrap().contains("mobilefacenet"),
        "should list the available models: {result}"
    );
    let out = run(&data, &["embed", image.to_str().unwrap()]);
    let result = &json_lines(&out)[0];
    assert_eq!(result["error_type"], "ModelNotAvailable", "{result}");
    assert!(
        result["error"].as_str().unwrap().contains("models fetch"),
        "{result}"
    );
}

/// A config file whose catalog adds the tiny generated recognizer, with a given checksum.
fn tiny_catalog(dir: &Path, sha256: &str) -> PathBuf {
    let config = dir.join("attendansee.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"tiny\"\nkind = \"recognizer\"\nfile = \"tiny_fixed.onnx\"\nsha256 = \"{sha256}\"\n\
             input_size = [112, 112]\ncolor = \"rgb\"\nnormalization = {{ mean = [127.5, 127.5, 127.5], std = [127.5, 127.5, 127.5] }}\n\
             dimension = 16\ntemplate = [[38.29, 51.69], [73.53, 51.50], [56.02, 71.73], [41.54, 92.36], [70.72, 92.20]]\n\n\
             [[models]]\nname = \"tiny-wrong\"\nkind = \"recognizer\"\nfile = \"tiny_wrong_dim.onnx\"\n\
             input_size = [112, 112]\ncolor = \"rgb\"\nnormalization = {{ mean = [0, 0, 0], std = [1, 1, 1] }}\n\
             dimension = 16\ntemplate = [[38.29, 51.69], [73.53, 51.50], [56.02, 71.73], [41.54, 92.36], [70.72, 92.20]]\n"
        ),
    )
    .unwrap();
    config
}

#[test]
fn everywhere_fetch_from_a_mirror_checks_sha256_installs_atomically_and_verify_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let status = std::process::Command::new(root().join(".local/venv/bin/python"))
        .arg(root().join("tools/make_test_models.py"))
        .arg(&mirror)
        .status()
        .unwrap();
    assert!(status.success());
    let sha = attendansee_faces::models::sha256_file(&mirror.join("tiny_fixed.onnx")).unwrap();
    let data = dir.path().join("data");
    let models = data.join("models");

    let wrong = tiny_catalog(dir.path(), &"0".repeat(64));
    let out = run(
        &data,
        &[
            "--config",
            wrong.to_str().unwrap(),
            "models",
            "fetch",
            "tiny",
            "--mirror",
            mirror.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_dir(&models).map(|d| d.count()).unwrap_or(0) == 0,
        "a failed fetch left files in {}",
        models.display()
    );

    let good = tiny_catalog(dir.path(), &sha);
    let config = good.to_str().unwrap();
    let out = run(
        &data,
        &[
            "--config",
            config,
            "models",
            "fetch",
            "tiny",
            "--mirror",
            mirror.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(models.join("tiny_fixed.onnx").is_file());
    let list = run(&data, &["--config", config, "models", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("tiny ") && l.contains(" yes ")),
        "{listing}"
    );
    assert!(
        run(&data, &["--config", config, "models", "verify"])
            .status
            .success()
    );

    // A file whose output dimension differs from its entry is refused and not installed.
    let out = run(
        &data,
        &[
            "--config",
            config,
            "models",
            "fetch",
            "tiny-wrong",
            "--mirror",
            mirror.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("8-dimensional output") && stderr.contains("says 16"),
        "{stderr}"
    );
    assert!(
        !models.join("tiny_wrong_dim.onnx").exists()
            && !models.join(".tiny_wrong_dim.onnx.partial").exists()
    );

    std::fs::OpenOptions::new()
        .append(true)
        .open(models.join("tiny_fixed.onnx"))
        .unwrap()
        .write_all(b"junk")
        .unwrap();
    let out = run(&data, &["--config", config, "models", "verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("tiny: CORRUPT"));
}

/// Generates the tiny test models into `dir` (tools/make_test_models.py).
fn make_tiny_models(dir: &Path) {
    let status = std::process::Command::new(root().join(".local/venv/bin/python"))
        .arg(root().join("tools/make_test_models.py"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A config whose catalog has `tiny-packed`: tiny_fixed.onnx as a member of a zip "published" at
/// an address that is never contacted (the tests use `--mirror`).
fn packed_catalog(dir: &Path, sha256: &str) -> PathBuf {
    let config = dir.join("packed.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"tiny-packed\"\nkind = \"recognizer\"\nfile = \"tiny_packed.onnx\"\n\
             url = \"https://models.invalid/v1/tiny_pack.zip\"\nmember = \"tiny_fixed.onnx\"\nsha256 = \"{sha256}\"\n\
             input_size = [112, 112]\ncolor = \"rgb\"\nnormalization = {{ mean = [127.5, 127.5, 127.5], std = [127.5, 127.5, 127.5] }}\n\
             dimension = 16\ntemplate = [[38.29, 51.69], [73.53, 51.50], [56.02, 71.73], [41.54, 92.36], [70.72, 92.20]]\n"
        ),
    )
    .unwrap();
    config
}

#[test]
fn everywhere_fetch_installs_one_archive_member_by_its_checksum_and_a_wrong_one_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated");
    make_tiny_models(&generated);
    let model = std::fs::read(generated.join("tiny_fixed.onnx")).unwrap();
    let sha = attendansee_faces::models::sha256_file(&generated.join("tiny_fixed.onnx")).unwrap();
    // The mirror holds only the pack (a folder, a decoy, the member deflated), as upstream does.
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    {
        use zip::write::SimpleFileOptions;
        let mut zip =
            zip::ZipWriter::new(std::fs::File::create(mirror.join("tiny_pack.zip")).unwrap());
        let deflated =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("tiny_pack/decoy.onnx", deflated).unwrap();
        zip.write_all(b"not a model").unwrap();
        zip.start_file("tiny_pack/tiny_fixed.onnx", deflated)
            .unwrap();
        zip.write_all(&model).unwrap();
        zip.finish().unwrap();
    }
    let data = dir.path().join("data");
    let models = data.join("models");
    let fetch = |config: &Path| {
        run(
            &data,
            &[
                "--config",
                config.to_str().unwrap(),
                "models",
                "fetch",
                "tiny-packed",
                "--mirror",
                mirror.to_str().unwrap(),
            ],
        )
    };

    let out = fetch(&packed_catalog(dir.path(), &"0".repeat(64)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("checksum mismatch") && stderr.contains(&sha),
        "{stderr}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&models)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "a refused fetch left {leftovers:?}");

    let good = packed_catalog(dir.path(), &sha);
    let out = fetch(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(models.join("tiny_packed.onnx")).unwrap(),
        model
    );
    let files: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["tiny_packed.onnx"], "only the member is kept");
    let list = run(
        &data,
        &["--config", good.to_str().unwrap(), "models", "list"],
    );
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        listing.lines().any(|l| l.starts_with("tiny-packed ")
            && l.contains(" yes ")
            && l.contains("archive member tiny_fixed.onnx of tiny_pack.zip")),
        "{listing}"
    );
}

#[test]
fn everywhere_models_list_says_how_each_model_is_obtained_and_fetch_says_how_to_make_facenet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let list = run(&data, &["models", "list"]);
    assert!(list.status.success());
    let listing = String::from_utf8_lossy(&list.stdout);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {listing}"))
            .to_owned()
    };
    assert!(line("yunet").contains(" download "), "{listing}");
    assert!(
        line("arcface").contains(" archive member w600k_r50.onnx of buffalo_l.zip "),
        "{listing}"
    );
    for name in ["facenet", "facenet512"] {
        assert!(
            line(name).contains(" export script tools/export_facenet.py "),
            "{listing}"
        );
        assert!(
            listing.contains(&format!(
                "{name}: download https://github.com/serengil/deepface_models/releases/download/v1.0/{name}_weights.h5, \
                 then: python tools/export_facenet.py --variant {name} --weights {name}_weights.h5 --out {name}.onnx"
            )),
            "{listing}"
        );
    }
    assert!(
        line("mobilefacenet-batch").contains(" your own file "),
        "{listing}"
    );

    // No network is touched: the entry has nothing to download.
    let out = run(&data, &["models", "fetch", "facenet"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let target = data.join("models/facenet.onnx");
    assert!(
        stderr.contains(&format!("place its ONNX file at {}", target.display()))
            && stderr.contains(
                "python tools/export_facenet.py --variant facenet --weights facenet_weights.h5 --out facenet.onnx"
            ),
        "{stderr}"
    );
}

#[test]
fn embed_keeps_the_one_shot_contract_for_success_and_each_failure() {
    let Some(shared) = shared("embed_keeps_the_one_shot_contract_for_success_and_each_failure")
    else {
        return;
    };
    let dir = installed(&shared);
    let data = dir.path().join("data");
    let obama = shared.join("faces/face_recognition_examples/obama.jpg");
    let output = dir.path().join("result.json");
    let out = run(
        &data,
        &[
            "embed",
            obama.to_str().unwrap(),
            "--model",
            "mobilefacenet",
            "--output",
            output.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    let keys: Vec<&str> = result
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["dimensions", "embedding", "model", "success"]);
    assert_eq!(
        (
            result["success"].as_bool(),
            result["dimensions"].as_u64(),
            result["model"].as_str()
        ),
        (Some(true), Some(128), Some("mobilefacenet"))
    );
    let norm: f64 = result["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-4 && result["embedding"].as_array().unwrap().len() == 128);

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let jpeg = std::fs::read(&obama).unwrap();
    std::fs::write(bad.join("empty.jpg"), b"").unwrap();
    std::fs::write(bad.join("text.png"), b"definitely not an image").unwrap();
    std::fs::write(bad.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    image::RgbImage::from_pixel(300, 200, image::Rgb([128, 128, 128]))
        .save(bad.join("no_face.png"))
        .unwrap();
    let cases = [
        ("missing.jpg", "FileNotFoundError"),
        ("empty.jpg", "UnsupportedImage"),
        ("text.png", "UnsupportedImage"),
        ("truncated.jpg", "UnsupportedImage"),
        ("no_face.png", "NoFaceDetected"),
    ];
    for (file, error_type) in cases {
        let out = run(&data, &["embed", bad.join(file).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let result = &json_lines(&out)[0];
        let keys: Vec<&str> = result
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["error", "error_type", "success", "traceback"],
            "{file}"
        );
        assert_eq!(
            (result["success"].as_bool(), result["error_type"].as_str()),
            (Some(false), Some(error_type)),
            "{file}: {result}"
        );
    }

    // A directory: one JSON line per image, named, exit 1 because some failed.
    std::fs::copy(&obama, bad.join("obama.jpg")).unwrap();
    let out = run(&data, &["embed", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let names: Vec<String> = lines
        .iter()
        .map(|l| {
            Path::new(l["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into()
        })
        .collect();
    assert_eq!(
        names,
        [
            "empty.jpg",
            "no_face.png",
            "obama.jpg",
            "text.png",
            "truncated.jpg"
        ]
    );
    assert_eq!(lines.iter().filter(|l| l["success"] == true).count(), 1);
}

#[test]
fn detect_prints_faces_per_image_and_draws_them() {
    let Some(shared) = shared("detect_prints_faces_per_image_and_draws_them") else {
        return;
    };
    let dir = installed(&shared);
    let data = dir.path().join("data");
    let two = shared.join("faces/face_recognition_examples/examples__two_people.jpg");
    let drawn = dir.path().join("drawn.png");
    let out = run(
        &data,
        &[
            "detect",
            two.to_str().unwrap(),
            "--annotate",
            drawn.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = &json_lines(&out)[0];
    let faces = result["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2, "{result}");
    for face in faces {
        assert_eq!(face["bbox"].as_array().unwrap().len(), 4);
        assert_eq!(face["landmarks"].as_array().unwrap().len(), 5);
        assert!(face["score"].as_f64().unwrap() >= 0.7);
    }
    let original = image::open(&two).unwrap().into_rgb8();
    let annotated = image::open(&drawn).unwrap().into_rgb8();
    assert_eq!(original.dimensions(), annotated.dimensions());
    assert!(
        annotated.pixels().filter(|p| p.0 == [0, 255, 0]).count() > 100,
        "no boxes drawn"
    );
}

#[test]
fn bench_runs_and_reports_the_end_to_end_ratio() {
    let Some(shared) = shared("bench_runs_and_reports_the_end_to_end_ratio") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let models = shared.join("models");
    let images = shared.join("faces/face_recognition_examples");
    let faces = shared.join("faces");
    let out = run(
        &dir.path().join("data"),
        &[
            "--model-dir",
            models.to_str().unwrap(),
            "bench",
            "--images",
            images.to_str().unwrap(),
            "--crops",
            "8",
            "--rounds",
            "1",
            "--requests",
            "120",
            "--faces",
            faces.to_str().unwrap(),
            // Small recognition cases: this is a debug build.
            "--assign-crops",
            "50",
            "--assign-students",
            "20",
            "--cluster-crops",
            "300",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "pool, 1 worker",
        "old design, a fresh process per embedding",
        "ratio pool (1 worker) / in-process engine",
        "server resident memory after 100 embeddings",
        "session of 20 photos",
        "share of wall time outside model inference",
        "recognition benchmark",
        "cluster: ×2 crops → time ×",
        "model only, batch 1",
        "model only, batch 16",
        "end to end",
        "ratio end-to-end / model-only",
        "whole photos",
        "classroom photos, mean per photo",
        "easy photos",
        "crowded photos",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

#[test]
fn attend_enrolls_a_folder_per_person_and_reports_who_is_in_the_photos() {
    let Some(shared) =
        shared("attend_enrolls_a_folder_per_person_and_reports_who_is_in_the_photos")
    else {
        return;
    };
    let dir = installed(&shared);
    let faces = shared.join("faces/face_recognition_examples");
    let copy = |from: &str, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        std::fs::copy(faces.join(from), to.join(from)).unwrap();
    };
    let class = dir.path().join("class");
    for (person, photos) in [
        ("Barack Obama", &["obama.jpg", "train_obama_obama2.jpg"][..]),
        ("Joe Biden", &["biden.jpg", "train_biden_biden2.jpg"]),
        ("Kit Harington", &["train_kit_harington_john1.jpeg"]),
        ("Rose Leslie", &["train_rose_leslie_img1.jpg"]),
        // A group photo cannot enroll anyone: skipped with a warning, the other photo is used.
        (
            "Alex Lacamoire",
            &["train_alex_lacamoire_img1.jpg", "examples__two_people.jpg"],
        ),
    ] {
        for photo in photos {
            copy(photo, &class.join(person));
        }
    }
    let lecture = dir.path().join("lecture");
    copy("examples__two_people.jpg", &lecture);
    copy("test_kit_with_rose.jpg", &lecture);
    let csv = dir.path().join("lecture.csv");
    let out = run(
        &dir.path().join("data"),
        &[
            "attend",
            "--enroll",
            class.to_str().unwrap(),
            "--photos",
            lecture.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Alex Lacamoire/examples__two_people.jpg: not enrolled: 2 faces of similar size"
        ),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(csv).unwrap();
    let status: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let mut cells = l.split(',');
            (
                cells.next().unwrap().to_owned(),
                cells.next().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("Alex Lacamoire", "absent"),
        ("Barack Obama", "present"),
        ("Joe Biden", "present"),
        ("Kit Harington", "present"),
        ("Rose Leslie", "present"),
    ]
    .iter()
    .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
    .collect();
    assert_eq!(status, expected, "{csv}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 face(s) matched nobody"), "{stdout}");
}
