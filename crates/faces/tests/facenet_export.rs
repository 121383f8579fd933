//! `tools/export_facenet.py` on DeepFace's real FaceNet architecture with seeded random weights
//! (no download): the exported ONNX matches Keras within 1e-4 and loads through the engine with
//! its built-in catalog entry as a 128-D / 512-D recognizer. Needs the venv of `scripts/setup.sh --test` and fails without it, like
//! every Python-backed test (a skip here would hide an untested export path).

mod common;

use std::path::PathBuf;
use std::process::Command;

use attendansee_faces::{ModelSpec, Recognizer};
use image::{Rgb, RgbImage};
use sha2::{Digest, Sha256};

use common::{runtime, workspace_root};

/// The export script's report: the SHA-256 it printed and the max |Keras - ONNX| it measured.
struct Export {
    path: PathBuf,
    sha256: String,
    max_abs_diff: f64,
}

fn export(variant: &str) -> Export {
    let root = workspace_root();
    let python = root.join(".local/venv/bin/python");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("export-{variant}.onnx"));
    let _ = std::fs::remove_file(&path); // a stale file must not stand in for this run's export
    let output = Command::new(&python)
        .arg(root.join("tools/export_facenet.py"))
        .args([
            "--variant",
            variant,
            "--random-weights",
            "7",
            "--check",
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run scripts/setup.sh --test first)",
                python.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "export_facenet.py --variant {variant} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{stdout}"))
            .to_owned()
    };
    let max_abs_diff: f64 = field("max_abs_diff ").parse().unwrap();
    println!("{variant}: max |Keras - ONNX| = {max_abs_diff:e}");
    Export {
        sha256: field("sha256 "),
        path,
        max_abs_diff,
    }
}

/// The built-in catalog entry of `variant`, as the workers load it.
fn spec(variant: &str, dimension: usize) -> ModelSpec {
    let spec = attendansee_faces::catalog::builtin()
        .into_iter()
        .find(|s| s.name == variant)
        .unwrap_or_else(|| panic!("no catalog entry {variant}"));
    assert_eq!(spec.dimension, Some(dimension), "{variant}");
    assert_eq!(spec.input_size, [160, 160], "{variant}");
    spec
}

fn face_sized(seed: u32) -> RgbImage {
    RgbImage::from_fn(160, 160, |x, y| {
        Rgb([
            (x + seed * 31) as u8,
            (y * 3 + seed) as u8,
            ((x ^ y) + seed * 7) as u8,
        ])
    })
}

fn exported_variant_matches_keras_and_loads_with_dimension(variant: &str, dimension: usize) {
    let export = export(variant);
    assert!(
        export.max_abs_diff < 1e-4,
        "{variant}: max |Keras - ONNX| = {}",
        export.max_abs_diff
    );
    let bytes = std::fs::read(&export.path).unwrap();
    assert_eq!(
        export.sha256,
        format!("{:x}", Sha256::digest(&bytes)),
        "the printed SHA-256 (to pin in the catalog) is not the file's"
    );

    let mut recognizer = Recognizer::load(&runtime(), &spec(variant, dimension), &export.path)
        .unwrap_or_else(|e| panic!("{variant}: {e}"));
    assert_eq!(recognizer.dimension(), dimension);
    let (a, b) = (face_sized(1), face_sized(2));
    let embeddings = recognizer.embed(&[&a, &b]).unwrap();
    assert_eq!(embeddings.len(), 2);
    for e in &embeddings {
        assert_eq!(e.dimension(), dimension);
        let norm: f32 = e.vector.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
    let similarity = embeddings[0].cosine_similarity(&embeddings[1]).unwrap();
    assert!(
        similarity < 0.9999,
        "{variant}: different images gave the same embedding ({similarity})"
    );
}

#[test]
fn facenet_export_matches_keras_and_loads_as_a_128_d_recognizer() {
    exported_variant_matches_keras_and_loads_with_dimension("facenet", 128);
}

#[test]
fn facenet512_export_matches_keras_and_loads_as_a_512_d_recognizer() {
    exported_variant_matches_keras_and_loads_with_dimension("facenet512", 512);
}
