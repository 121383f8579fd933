//! `attendansee bench`, whole photos: per photo, read + decode + detect + align + embed on the
//! phone photos of `classroom_photos`, by the photo path (reduced-scale decoding, the small-face
//! pass when a photo needs it) against the path before it (full decode, one 640 pass, still
//! callable as `PhotoOptions::SINGLE_PASS_FULL_DECODE`) and against the Python reference
//! (`tools/photo_bench.py`: OpenCV + onnxruntime, when the venv has them); then what the small-face
//! pass costs on the crowded photos. Best of the rounds per photo; the paths interleaved, so the
//! ratios come from one run on the same (noisy) machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use attendansee_faces::pipeline::{PhotoOptions, Pipeline};

/// What one path took for one photo, best of the rounds.
#[derive(Clone, Copy)]
struct Run {
    ms: f64,
    faces: usize,
    decode_ms: f32,
    detect_ms: f32,
    divisor: u32,
    tiles: usize,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            ms: f64::INFINITY,
            faces: 0,
            decode_ms: 0.0,
            detect_ms: 0.0,
            divisor: 1,
            tiles: 0,
        }
    }
}

/// Reads, decodes, detects, aligns and embeds every face of `path` with `options`.
fn whole_photo(pipeline: &mut Pipeline, path: &Path, options: PhotoOptions) -> Result<Run> {
    pipeline.options = options;
    let start = Instant::now();
    let bytes = std::fs::read(path)?;
    let mut photo = pipeline.detect(&bytes, None)?;
    let faces = photo.faces.clone();
    let embedded = pipeline.embed(&mut photo, &bytes, &faces)?;
    Ok(Run {
        ms: start.elapsed().as_secs_f64() * 1e3,
        faces: embedded.len(),
        decode_ms: photo.decode_ms,
        detect_ms: photo.detect_ms,
        divisor: photo.divisor,
        tiles: photo.tiles,
    })
}

/// Reads, decodes and detects only.
fn detection(pipeline: &mut Pipeline, path: &Path, options: PhotoOptions) -> Result<Run> {
    pipeline.options = options;
    let start = Instant::now();
    let photo = pipeline.detect(&std::fs::read(path)?, None)?;
    Ok(Run {
        ms: start.elapsed().as_secs_f64() * 1e3,
        faces: photo.faces.len(),
        decode_ms: photo.decode_ms,
        detect_ms: photo.detect_ms,
        divisor: photo.divisor,
        tiles: photo.tiles,
    })
}

/// Best of `rounds` per photo for each of `paths`, the paths interleaved photo by photo.
fn best_of(
    rounds: usize,
    photos: &[PathBuf],
    paths: &[PhotoOptions],
    mut measure: impl FnMut(&Path, PhotoOptions) -> Result<Run>,
) -> Result<Vec<Vec<Run>>> {
    let mut best = vec![vec![Run::default(); photos.len()]; paths.len()];
    for _ in 0..rounds.max(1) {
        for (i, photo) in photos.iter().enumerate() {
            for (p, options) in paths.iter().enumerate() {
                let run = measure(photo, *options)?;
                if run.ms < best[p][i].ms {
                    best[p][i] = run;
                }
            }
        }
    }
    Ok(best)
}

fn mean_ms(runs: &[Run]) -> f64 {
    runs.iter().map(|r| r.ms).sum::<f64>() / runs.len().max(1) as f64
}

/// A file of the project's local install (`.local/…`, `tools/…`) next to the working directory
/// or the binary, as `Runtime::locate` finds ONNX Runtime.
fn project_file(relative: &str) -> Option<PathBuf> {
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|root| root.join(relative)));
    [Some(PathBuf::from(relative)), beside_binary]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
}

/// The Python reference's best time (ms) and face count per photo, or why it could not run.
fn python_reference(
    detector_file: &Path,
    recognizer_file: &Path,
    threshold: f32,
    rounds: usize,
    photos: &[PathBuf],
) -> Result<Vec<(f64, usize)>> {
    let python = project_file(".local/venv/bin/python")
        .context("no .local/venv (scripts/setup.sh --test installs it)")?;
    let script = project_file("tools/photo_bench.py").context("tools/photo_bench.py not found")?;
    let out = Command::new(python)
        .arg(script)
        .arg(detector_file)
        .arg(recognizer_file)
        .arg(threshold.to_string())
        .arg(rounds.max(1).to_string())
        .args(photos)
        .output()
        .context("cannot run the Python reference")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_owned();
        bail!(
            "the Python reference failed ({last}); it needs opencv-python-headless and onnxruntime"
        );
    }
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let seconds = parsed["seconds"].as_array().context("no seconds")?;
    let faces = parsed["faces"].as_array().context("no faces")?;
    Ok(seconds
        .iter()
        .zip(faces)
        .map(|(s, f)| {
            (
                s.as_f64().unwrap_or(f64::NAN) * 1e3,
                f.as_u64().unwrap_or(0) as usize,
            )
        })
        .collect())
}

/// The whole-photo comparison; `easy` are small photos with a few large faces each.
pub fn run(
    pipeline: &mut Pipeline,
    model_files: (&Path, &Path),
    faces_dir: &Path,
    easy: &[PathBuf],
    rounds: usize,
) -> Result<()> {
    let new = PhotoOptions::for_detector(pipeline.detector.spec());
    let old = PhotoOptions::SINGLE_PASS_FULL_DECODE;
    let classroom_dir = faces_dir.join("classroom_photos");
    let classroom =
        crate::faces::image_paths(std::slice::from_ref(&classroom_dir)).unwrap_or_default();
    println!(
        "whole photos, read + decode + detect + align + embed, best of {} rounds per photo",
        rounds.max(1)
    );
    println!(
        "  new: reduced-scale JPEG decoding + small-face pass when needed; old: full decode + one {} pass",
        pipeline.detector.spec().input_size[0]
    );
    if classroom.is_empty() {
        println!(
            "  classroom photos: skipped ({} has none)",
            classroom_dir.display()
        );
    } else {
        let best = best_of(rounds, &classroom, &[old, new], |p, o| {
            whole_photo(pipeline, p, o)
        })?;
        let threshold = pipeline.detector.spec().score_threshold.unwrap_or(0.5);
        // A reference that timed a different number of photos is no reference.
        let python = python_reference(model_files.0, model_files.1, threshold, rounds, &classroom)
            .and_then(|times| {
                if times.len() == classroom.len() {
                    Ok(times)
                } else {
                    anyhow::bail!(
                        "the Python reference timed {} photos of {}",
                        times.len(),
                        classroom.len()
                    )
                }
            });
        for (i, path) in classroom.iter().enumerate() {
            let (o, n) = (best[0][i], best[1][i]);
            let reference = match &python {
                Ok(times) => format!("  Python {:6.1} ms ({} faces)", times[i].0, times[i].1),
                Err(_) => String::new(),
            };
            println!(
                "  {:<14} old {:6.1} ms ({} faces)  new {:6.1} ms ({} faces; decode 1/{} {:.1} ms, detect {:.1} ms, {} tiles){reference}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                o.ms,
                o.faces,
                n.ms,
                n.faces,
                n.divisor,
                n.decode_ms,
                n.detect_ms,
                n.tiles,
            );
        }
        let (old_ms, new_ms) = (mean_ms(&best[0]), mean_ms(&best[1]));
        println!(
            "  classroom photos, mean per photo: old {old_ms:.1} ms, new {new_ms:.1} ms; ratio old / new: {:.2}",
            old_ms / new_ms
        );
        match python {
            Ok(times) => {
                let python_ms = times.iter().map(|t| t.0).sum::<f64>() / times.len().max(1) as f64;
                println!(
                    "  ratio Python reference / new, per photo: {:.2}  (Python {python_ms:.1} ms; target ≥ 1.5); Python / old: {:.2}",
                    python_ms / new_ms,
                    python_ms / old_ms
                );
            }
            Err(e) => println!("  Python reference: skipped ({e:#})"),
        }
    }
    if !easy.is_empty() {
        let best = best_of(rounds, easy, &[old, new], |p, o| {
            whole_photo(pipeline, p, o)
        })?;
        let (old_ms, new_ms) = (mean_ms(&best[0]), mean_ms(&best[1]));
        let tiles: usize = best[1].iter().map(|r| r.tiles).sum();
        println!(
            "  easy photos ({} small photos, few faces), mean per photo: old {old_ms:.1} ms, new {new_ms:.1} ms; ratio new / old: {:.2} (target ≤ 1; {tiles} tiles run)",
            easy.len(),
            new_ms / old_ms
        );
    }
    let crowded: Vec<PathBuf> = [
        "crowd/group.jpg",
        "scrfd_testimages/solvay_conference_1927.png",
    ]
    .iter()
    .map(|p| faces_dir.join(p))
    .filter(|p| p.is_file())
    .collect();
    if !crowded.is_empty() {
        println!("  crowded photos, read + decode + detect only:");
        let best = best_of(rounds, &crowded, &[old, new], |p, o| {
            detection(pipeline, p, o)
        })?;
        for (i, path) in crowded.iter().enumerate() {
            let (o, n) = (best[0][i], best[1][i]);
            println!(
                "    {:<30} one pass {} faces in {:.1} ms (detect {:.1}); with the small-face pass {} faces in {:.1} ms (detect {:.1}, {} tiles): ×{:.2} the time",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                o.faces,
                o.ms,
                o.detect_ms,
                n.faces,
                n.ms,
                n.detect_ms,
                n.tiles,
                n.ms / o.ms
            );
        }
    }
    Ok(())
}
