//! `attendansee bench`: the project's benchmarks, reported as ratios measured in one run (the
//! machine is shared and noisy, so absolute numbers matter less than the ratios between them).
//!
//! Face engine, MobileFaceNet: model-only throughput at batch 1 and 16, against end-to-end
//! throughput from a JPEG crop file to a normalised embedding; and whole photos through
//! decode → detect → align → embed, and the photo path against the one before it and against
//! the Python reference (`bench::photos`). Then the worker pool part (`bench::pool`) and the
//! recognition part (`bench::recognition`: assignment and clustering, time and memory), and the
//! store part (`bench::store`: SQLite against PostgreSQL) and the nodes part (`bench::nodes`: one
//! `serve` node against two on one PostgreSQL).

mod nodes;
mod photos;
mod pool;
mod recognition;
mod store;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use image::{ImageFormat, RgbImage};

use attendansee_faces::image_io::{DEFAULT_MAX_PIXELS, decode_rgb};
use attendansee_faces::imageops::to_nchw;
use attendansee_faces::pipeline::{Pipeline, detect_with_border_retry};
use attendansee_faces::{Detector, Recognizer, Runtime};

use crate::cli::BenchArgs;
use crate::config::Common;
use crate::faces::image_paths;

fn recognition_sizes(args: &BenchArgs) -> recognition::Sizes {
    recognition::Sizes {
        assign_crops: args.assign_crops,
        assign_students: args.assign_students,
        cluster_crops: args.cluster_crops,
    }
}

pub fn run(common: &Common, args: &BenchArgs) -> Result<()> {
    if let Some(case) = &args.recognition_case {
        return recognition::run_case(case.parse()?);
    }
    if args.recognition_only {
        return recognition::run(recognition_sizes(args));
    }
    if args.store_only {
        return store::run();
    }
    if args.nodes_only {
        return nodes::run(&common.model_dir, &args.faces);
    }
    let models = common.models();
    let runtime = Runtime::load(&Runtime::locate(common.ort_lib.as_deref()))?;
    let load_recognizer = |name: &str| -> Result<Recognizer> {
        let spec = models.spec(name)?;
        Ok(Recognizer::load(&runtime, spec, &models.path(spec))?)
    };
    let detector_spec = models.spec("yunet")?;
    let model_files = (
        models.path(detector_spec),
        models.path(models.spec("mobilefacenet")?),
    );
    let mut detector = Detector::load(&runtime, detector_spec, &models.path(detector_spec))?;
    let mut fixed = load_recognizer("mobilefacenet")?;
    let mut batched = load_recognizer("mobilefacenet-batch").ok();

    let photos = image_paths(std::slice::from_ref(&args.images))?;
    if photos.is_empty() {
        bail!("no images in {}", args.images.display());
    }
    let scratch = tempfile::tempdir()?;
    let crop_files = write_crops(&mut detector, &fixed, &photos, args.crops, scratch.path())?;
    let crops: Vec<RgbImage> = crop_files
        .iter()
        .map(|p| Ok(decode_rgb(&std::fs::read(p)?, DEFAULT_MAX_PIXELS)?))
        .collect::<Result<_>>()?;
    let spec = fixed.spec().clone();
    let packed: Vec<Vec<f32>> = crops
        .iter()
        .map(|c| to_nchw(&[c], spec.color, &spec.normalization))
        .collect();

    println!(
        "face engine benchmark: {} aligned crops (JPEG, 112×112) from {} photos in {}",
        crops.len(),
        photos.len(),
        args.images.display()
    );
    println!(
        "one ONNX Runtime session per model, 1 intra-op thread; {} interleaved rounds",
        args.rounds
    );
    let (mut raw1, mut raw16, mut e2e) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut decode_time, mut n16) = (Duration::ZERO, 0usize);
    for _ in 0..args.rounds {
        let start = Instant::now();
        for tensor in &packed {
            fixed.infer_packed(1, tensor.clone())?;
        }
        raw1 += start.elapsed();

        let start = Instant::now();
        for file in &crop_files {
            let t = Instant::now();
            let bytes = std::fs::read(file)?;
            let image = decode_rgb(&bytes, DEFAULT_MAX_PIXELS)?;
            decode_time += t.elapsed();
            let embedding = fixed.embed(&[&image])?;
            std::hint::black_box(embedding);
        }
        e2e += start.elapsed();

        if let Some(batched) = batched.as_mut() {
            let start = Instant::now();
            for chunk in packed.chunks(16).filter(|c| c.len() == 16) {
                batched.infer_packed(16, chunk.concat())?;
                n16 += 16;
            }
            raw16 += start.elapsed();
        }
    }
    let n = (crops.len() * args.rounds) as f64;
    let rate = |count: f64, time: Duration| count / time.as_secs_f64().max(1e-9);
    let (raw1_rate, e2e_rate) = (rate(n, raw1), rate(n, e2e));
    println!("  model only, batch 1  (mobilefacenet):         {raw1_rate:8.1} embeddings/s");
    match batched {
        Some(_) => println!(
            "  model only, batch 16 (mobilefacenet-batch):   {:8.1} embeddings/s",
            rate(n16 as f64, raw16)
        ),
        None => println!("  model only, batch 16: skipped (mobilefacenet-batch is not installed)"),
    }
    println!(
        "  end to end, JPEG crop file → embedding:       {e2e_rate:8.1} embeddings/s  (read+decode {:.3} ms per crop)",
        decode_time.as_secs_f64() * 1e3 / n
    );
    println!(
        "  ratio end-to-end / model-only (batch 1):      {:8.3}  (target ≥ 0.8)",
        e2e_rate / raw1_rate
    );

    let mut pipeline = Pipeline::new(detector, Some(fixed));
    let (mut faces, start) = (0usize, Instant::now());
    for photo in &photos {
        faces += pipeline
            .embed_all(&std::fs::read(photo)?)
            .map(|f| f.len())
            .unwrap_or(0);
    }
    let elapsed = start.elapsed();
    println!(
        "  whole photos, decode → detect → align → embed: {:.1} photos/s, {:.1} faces/s ({} faces in {} photos)",
        rate(photos.len() as f64, elapsed),
        rate(faces as f64, elapsed),
        faces,
        photos.len()
    );
    println!();
    photos::run(
        &mut pipeline,
        (&model_files.0, &model_files.1),
        &args.faces,
        &photos,
        args.rounds,
    )?;
    if let (false, Some(recognizer)) = (args.engine_only, pipeline.recognizer.as_mut()) {
        println!();
        pool::run(common, recognizer, &crop_files, args.requests, &args.faces)?;
    }
    if !args.engine_only {
        println!();
        recognition::run(recognition_sizes(args))?;
        store::run()?;
        nodes::run(&common.model_dir, &args.faces)?;
    }
    Ok(())
}

/// Detects and aligns faces in `photos` (cycling through them) until `count` crops are written
/// as JPEG files to `dir`; returns their paths.
fn write_crops(
    detector: &mut Detector,
    recognizer: &Recognizer,
    photos: &[PathBuf],
    count: usize,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let mut aligned = Vec::new();
    for photo in photos {
        let Ok(image) = decode_rgb(&std::fs::read(photo)?, DEFAULT_MAX_PIXELS) else {
            continue;
        };
        for face in detect_with_border_retry(detector, &image, None)? {
            aligned.extend(recognizer.align(&image, &face));
        }
    }
    if aligned.is_empty() {
        bail!("no faces found in the benchmark photos");
    }
    (0..count)
        .map(|i| {
            let path = dir.join(format!("crop_{i:04}.jpg"));
            let mut bytes = Cursor::new(Vec::new());
            aligned[i % aligned.len()].write_to(&mut bytes, ImageFormat::Jpeg)?;
            std::fs::write(&path, bytes.into_inner())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}
