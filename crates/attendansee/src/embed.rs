//! `attendansee embed`: the old worker's one-shot contract. One image → one JSON object;
//! several images or a directory → JSON lines with the file name. Exit 0 only if all succeeded.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use attendansee_faces::FaceError;
use attendansee_faces::pipeline::Pipeline;

use crate::cli::EmbedArgs;
use crate::config::Common;
use crate::faces::{Progress, image_paths, load_pipeline, read_image};

pub fn run(common: &Common, args: &EmbedArgs) -> Result<()> {
    let paths = image_paths(&args.images).context("cannot list the images")?;
    let many = paths.len() != 1 || args.images.iter().any(|p| p.is_dir());
    let mut pipeline = load_pipeline(common, &args.detector, Some(&args.model));
    let progress = Progress::new(paths.len());
    let mut lines = Vec::with_capacity(paths.len());
    let mut all_ok = !paths.is_empty();
    for (i, path) in paths.iter().enumerate() {
        progress.step(i + 1, path);
        let mut result = match &mut pipeline {
            Ok(pipeline) => embed_one(pipeline, path, &args.model),
            Err(e) => failure(&e.to_string(), e.kind().as_str(), &format!("{e:?}")),
        };
        all_ok &= result["success"] == true;
        if many {
            result
                .as_object_mut()
                .map(|o| o.insert("file".into(), json!(path.display().to_string())));
        }
        lines.push(result);
    }
    progress.finish();
    let text = if many {
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    } else {
        format!(
            "{}\n",
            lines
                .first()
                .cloned()
                .unwrap_or_else(|| failure("no images given", "ValueError", ""))
        )
    };
    match &args.output {
        Some(file) => std::fs::write(file, text)
            .with_context(|| format!("cannot write {}", file.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    if all_ok {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

fn embed_one(pipeline: &mut Pipeline, path: &Path, model: &str) -> Value {
    let bytes = match read_image(path) {
        Ok(bytes) => bytes,
        Err((message, kind)) => return failure(&message, kind, &message),
    };
    match pipeline.embed_largest(&bytes) {
        Ok(face) => json!({
            "success": true,
            "embedding": face.embedding.vector,
            "dimensions": face.embedding.dimension(),
            "model": model,
        }),
        Err(e) => failure(&e.to_string(), e.kind().as_str(), &traceback(&e, path)),
    }
}

fn traceback(error: &FaceError, path: &Path) -> String {
    format!("embed {} → {error:?}", path.display())
}

fn failure(message: &str, error_type: &str, traceback: &str) -> Value {
    json!({"success": false, "error": message, "error_type": error_type, "traceback": traceback})
}
