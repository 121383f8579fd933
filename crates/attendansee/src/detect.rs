//! `attendansee detect`: faces with boxes, scores and landmarks as JSON (one object per image;
//! JSON lines for several), and optionally the image with them drawn.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::{Rgb, RgbImage};
use serde_json::{Value, json};

use attendansee_faces::Face;
use attendansee_faces::image_io::decode_rgb;
use attendansee_faces::pipeline::Photo;

use crate::cli::DetectArgs;
use crate::config::Common;
use crate::faces::{Progress, image_paths, load_pipeline, read_image};

pub fn run(common: &Common, args: &DetectArgs) -> Result<()> {
    let paths = image_paths(&args.images).context("cannot list the images")?;
    if args.annotate.is_some() && paths.len() != 1 {
        bail!(
            "--annotate draws onto one image; {} were given",
            paths.len()
        );
    }
    let mut pipeline = load_pipeline(common, &args.detector, None)?;
    if let Some(zoom) = args.small_face_zoom {
        pipeline.options.small_face_zoom = zoom;
    }
    let progress = Progress::new(paths.len());
    let mut out = std::io::stdout().lock();
    let mut all_ok = true;
    for (i, path) in paths.iter().enumerate() {
        progress.step(i + 1, path);
        let result = read_image(path)
            .map_err(|(m, kind)| (m, kind.to_owned()))
            .and_then(|bytes| {
                pipeline
                    .detect(&bytes, args.score_threshold)
                    .map_err(|e| (e.to_string(), e.kind().as_str().to_owned()))
            });
        let line = match result {
            Ok(photo) => {
                if let Some(target) = &args.annotate {
                    // Drawn on the full-scale photo, whatever scale the faces were found at.
                    let image = decode_rgb(&std::fs::read(path)?, pipeline.max_pixels)?;
                    annotate(&image, &photo.faces)
                        .save(target)
                        .with_context(|| format!("cannot write {}", target.display()))?;
                }
                describe(path, &photo)
            }
            Err((message, error_type)) => {
                all_ok = false;
                json!({"file": path.display().to_string(), "success": false, "error": message, "error_type": error_type})
            }
        };
        writeln!(out, "{line}")?;
    }
    progress.finish();
    if all_ok {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

fn describe(path: &Path, photo: &Photo) -> Value {
    let faces: Vec<Value> = photo
        .faces
        .iter()
        .map(|f| json!({"bbox": [f.bbox.x, f.bbox.y, f.bbox.w, f.bbox.h], "score": f.score, "landmarks": f.landmarks}))
        .collect();
    json!({
        "file": path.display().to_string(),
        "success": true,
        "width": photo.width,
        "height": photo.height,
        "faces": faces,
    })
}

/// The image with each box outlined in green and each landmark marked in red.
fn annotate(image: &RgbImage, faces: &[Face]) -> RgbImage {
    let mut canvas = image.clone();
    let thickness = (image.width().max(image.height()) / 400).max(1) as i64;
    let mut put = |x: i64, y: i64, colour: Rgb<u8>| {
        if x >= 0 && y >= 0 && (x as u32) < canvas.width() && (y as u32) < canvas.height() {
            canvas.put_pixel(x as u32, y as u32, colour);
        }
    };
    for face in faces {
        let b = face.bbox;
        let (x0, y0, x1, y1) = (
            b.x as i64,
            b.y as i64,
            (b.x + b.w) as i64,
            (b.y + b.h) as i64,
        );
        let green = Rgb([0, 255, 0]);
        for t in 0..thickness {
            for x in x0..=x1 {
                put(x, y0 + t, green);
                put(x, y1 - t, green);
            }
            for y in y0..=y1 {
                put(x0 + t, y, green);
                put(x1 - t, y, green);
            }
        }
        for [lx, ly] in face.landmarks {
            let r = thickness * 2;
            for dy in -r..=r {
                for dx in -r..=r {
                    put(lx as i64 + dx, ly as i64 + dy, Rgb([255, 0, 0]));
                }
            }
        }
    }
    canvas
}
