//! What the face commands share: finding image files, loading the engine, a progress line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use attendansee_faces::pipeline::Pipeline;
use attendansee_faces::{Detector, FaceError, ModelSpec, Recognizer, Runtime};
use attendansee_services::Matching;

use crate::config::Common;

/// How a recognizer's faces are matched, from its catalog entry; what the entry leaves out comes
/// from [`Matching::FALLBACK`]. The server and `attend` both use it.
pub fn model_matching(spec: &ModelSpec) -> Matching {
    let fallback = Matching::FALLBACK;
    Matching {
        threshold: spec.match_threshold.unwrap_or(fallback.threshold),
        margin: spec.match_margin.unwrap_or(fallback.margin),
        suggest: spec.suggest_threshold.unwrap_or(fallback.suggest),
    }
}

const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// The images named on the command line: files as given (even missing ones, so that each gets
/// its own error), directories expanded to their image files sorted by name.
pub fn image_paths(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            found.sort();
            paths.extend(found);
        } else {
            paths.push(input.clone());
        }
    }
    Ok(paths)
}

/// Loads ONNX Runtime, the detector and (if named) the recognizer.
pub fn load_pipeline(
    common: &Common,
    detector: &str,
    recognizer: Option<&str>,
) -> Result<Pipeline, FaceError> {
    let models = common.models();
    // Names first: a typo is reported as such, not as whatever fails to load first.
    let detector_spec = models.spec(detector)?;
    let recognizer_spec = recognizer.map(|name| models.spec(name)).transpose()?;
    let runtime = Runtime::load(&Runtime::locate(common.ort_lib.as_deref()))?;
    let detector = Detector::load(&runtime, detector_spec, &models.path(detector_spec))?;
    let recognizer = match recognizer_spec {
        Some(spec) => Some(Recognizer::load(&runtime, spec, &models.path(spec))?),
        None => None,
    };
    Ok(Pipeline::new(detector, recognizer))
}

/// Reads a file, as an error of the one-shot contract's kind when it is missing.
pub fn read_image(path: &Path) -> Result<Vec<u8>, (String, &'static str)> {
    std::fs::read(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            "FileNotFoundError"
        } else {
            "IOError"
        };
        (format!("cannot read {}: {e}", path.display()), kind)
    })
}

/// `[done/total] name` on one line of a terminal's stderr; silent otherwise.
pub struct Progress {
    total: usize,
    enabled: bool,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            enabled: total > 1 && std::io::stderr().is_terminal(),
        }
    }

    pub fn step(&self, done: usize, name: &Path) {
        if self.enabled {
            let name = name
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            eprint!("\r\x1b[2K[{done}/{}] {name}", self.total);
        }
    }

    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
