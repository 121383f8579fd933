//! ONNX Runtime, loaded at run time from the shared library, and the two kinds of model on top of
//! it: a [`Detector`] (image → faces) and a [`Recognizer`] (aligned crops → embeddings).
//!
//! Each model gets one single-threaded session without thread spinning: on a small machine one
//! such session per worker process, and one worker per core, is the fastest layout.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, ValueType};

use crate::catalog::{DetectorFamily, ModelKind, ModelSpec};
use crate::detect::{STRIDES, scrfd, yunet};
use crate::embedding::FaceEmbedding;
use crate::error::FaceError;
use crate::geometry::{Face, nms, similarity_transform};
use crate::imageops::{letterbox, to_nchw, warp_affine};

/// Batch size for recognizers with a dynamic batch axis.
pub const MAX_BATCH: usize = 16;

/// The loaded ONNX Runtime library. One per process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Runtime {
    env: Environment,
}

impl Runtime {
    /// Loads the library at `path`. Never panics: a missing or wrong library is an error that
    /// says how to install the right one.
    pub fn load(path: &Path) -> Result<Self, FaceError> {
        let missing = |detail: String| FaceError::RuntimeMissing {
            path: path.display().to_string(),
            detail,
        };
        let absolute = std::fs::canonicalize(path).map_err(|e| missing(e.to_string()))?;
        let builder = ort::init_from(&absolute).map_err(|e| missing(e.to_string()))?;
        let env = builder
            .with_name("attendansee")
            .with_telemetry(false)
            .build()
            .map_err(|e| missing(e.to_string()))?;
        Ok(Self { env })
    }

    /// Where to look for the library, in order: `explicit`, `$ORT_DYLIB_PATH`, then the
    /// project-local install (`.local/onnxruntime/`) next to the working directory or the binary.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(path) = explicit {
            return path.to_path_buf();
        }
        if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let local = Path::new(".local/onnxruntime/libonnxruntime.so");
        let beside_binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(|root| root.join(local)));
        [Some(local.to_path_buf()), beside_binary]
            .into_iter()
            .flatten()
            .find(|p| p.exists())
            .unwrap_or_else(|| local.to_path_buf())
    }

    fn session(&self, spec: &ModelSpec, path: &Path) -> Result<Session, FaceError> {
        if !path.is_file() {
            return Err(FaceError::ModelNotAvailable {
                name: spec.name.clone(),
                path: path.display().to_string(),
                hint: crate::models::install_advice(spec, path),
            });
        }
        let inference = |e: ort::Error| FaceError::Inference {
            name: spec.name.clone(),
            detail: e.to_string(),
        };
        let build = || -> ort::Result<Session> {
            Session::builder(&self.env)?
                .with_optimization_level(GraphOptimizationLevel::Level3)?
                .with_intra_threads(1)?
                .with_inter_threads(1)?
                .with_intra_op_spinning(false)?
                .with_inter_op_spinning(false)?
                .commit_from_file(path)
        };
        build().map_err(inference)
    }
}

/// Shape of a model's single image input: batch (`None` = dynamic), height, width.
fn image_input(spec: &ModelSpec, session: &Session) -> Result<(String, Option<usize>), FaceError> {
    let incompatible = |detail: String| FaceError::IncompatibleModel {
        name: spec.name.clone(),
        detail,
    };
    let input = session
        .inputs()
        .first()
        .ok_or_else(|| incompatible("no inputs".into()))?;
    let ValueType::Tensor { shape, .. } = input.dtype() else {
        return Err(incompatible(format!(
            "input {} is not a tensor",
            input.name()
        )));
    };
    if shape.len() != 4 || (shape[1] != 3 && shape[1] != -1) {
        return Err(incompatible(format!(
            "input {} has shape {:?}, expected [N, 3, H, W]",
            input.name(),
            &shape[..]
        )));
    }
    let [w, h] = spec.input_size.map(i64::from);
    if (shape[2] != -1 && shape[2] != h) || (shape[3] != -1 && shape[3] != w) {
        return Err(incompatible(format!(
            "input is {}×{}, the catalog says {w}×{h}",
            shape[3], shape[2]
        )));
    }
    let batch = (shape[0] > 0).then_some(shape[0] as usize);
    Ok((input.name().to_owned(), batch))
}

/// Runs `session` on one NCHW tensor and copies out every output as (name, values).
fn run(
    spec: &ModelSpec,
    session: &mut Session,
    input: &str,
    shape: [usize; 4],
    data: Vec<f32>,
) -> Result<Vec<(String, Vec<f32>)>, FaceError> {
    let inference = |e: ort::Error| FaceError::Inference {
        name: spec.name.clone(),
        detail: e.to_string(),
    };
    let tensor = Tensor::from_array((shape, data)).map_err(inference)?;
    let outputs = session
        .run(ort::inputs![input => tensor])
        .map_err(inference)?;
    let mut copied = Vec::with_capacity(outputs.len());
    for (name, value) in outputs.iter() {
        let (_, values) = value.try_extract_tensor::<f32>().map_err(inference)?;
        copied.push((name.to_owned(), values.to_vec()));
    }
    Ok(copied)
}

fn check_kind(spec: &ModelSpec, wanted: ModelKind) -> Result<(), FaceError> {
    let word = |k: ModelKind| match k {
        ModelKind::Detector => "detector",
        ModelKind::Recognizer => "recognizer",
    };
    if spec.kind == wanted {
        Ok(())
    } else {
        Err(FaceError::WrongKind {
            name: spec.name.clone(),
            wanted: word(wanted),
            actual: word(spec.kind),
        })
    }
}

/// A face detector: image in, faces in image coordinates out, best first.
pub struct Detector {
    spec: ModelSpec,
    session: Session,
    input: String,
    family: DetectorFamily,
    /// YuNet: output index of cls, obj, bbox, kps for each stride.
    yunet_outputs: Option<[[usize; 4]; 3]>,
}

impl Detector {
    pub fn load(runtime: &Runtime, spec: &ModelSpec, path: &Path) -> Result<Self, FaceError> {
        check_kind(spec, ModelKind::Detector)?;
        let family = spec.family.ok_or_else(|| FaceError::IncompatibleModel {
            name: spec.name.clone(),
            detail: "the catalog entry names no detector family".into(),
        })?;
        let session = runtime.session(spec, path)?;
        let (input, _) = image_input(spec, &session)?;
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let incompatible = |detail: String| FaceError::IncompatibleModel {
            name: spec.name.clone(),
            detail,
        };
        let yunet_outputs = match family {
            DetectorFamily::Yunet => {
                let find = |prefix: &str, stride: usize| {
                    let wanted = format!("{prefix}_{stride}");
                    names.iter().position(|n| *n == wanted).ok_or_else(|| {
                        incompatible(format!("no output named {wanted}; outputs: {names:?}"))
                    })
                };
                let mut indices = [[0usize; 4]; 3];
                for (level, stride) in STRIDES.iter().enumerate() {
                    for (slot, prefix) in ["cls", "obj", "bbox", "kps"].iter().enumerate() {
                        indices[level][slot] = find(prefix, *stride)?;
                    }
                }
                Some(indices)
            }
            DetectorFamily::Scrfd if names.len() == 9 => None,
            DetectorFamily::Scrfd => {
                return Err(incompatible(format!(
                    "{} outputs, SCRFD with landmarks has 9",
                    names.len()
                )));
            }
        };
        Ok(Self {
            spec: spec.clone(),
            session,
            input,
            family,
            yunet_outputs,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Faces in `image` scoring at least the catalog threshold (or `score_threshold`).
    pub fn detect(
        &mut self,
        image: &RgbImage,
        score_threshold: Option<f32>,
    ) -> Result<Vec<Face>, FaceError> {
        let [w, h] = self.spec.input_size;
        let (canvas, scale) = letterbox(image, w, h);
        let data = to_nchw(&[&canvas], self.spec.color, &self.spec.normalization);
        let outputs = run(
            &self.spec,
            &mut self.session,
            &self.input,
            [1, 3, h as usize, w as usize],
            data,
        )?;
        let threshold = score_threshold.or(self.spec.score_threshold).unwrap_or(0.5);
        let (w, h) = (w as usize, h as usize);
        let faces = match (self.family, self.yunet_outputs) {
            (DetectorFamily::Yunet, Some(idx)) => {
                let levels = idx.map(|[c, o, b, k]| yunet::Level {
                    cls: &outputs[c].1,
                    obj: &outputs[o].1,
                    bbox: &outputs[b].1,
                    kps: &outputs[k].1,
                });
                yunet::decode(&levels, w, h, threshold)?
            }
            _ => {
                let levels: [scrfd::Level; 3] = std::array::from_fn(|i| scrfd::Level {
                    scores: &outputs[i].1,
                    bbox: &outputs[i + 3].1,
                    kps: &outputs[i + 6].1,
                });
                scrfd::decode(&levels, w, h, threshold)?
            }
        };
        let iou = self.spec.nms_threshold.unwrap_or(0.4);
        Ok(nms(faces, iou)
            .into_iter()
            .map(|f| f.unscaled(scale))
            .collect())
    }
}

/// A face recognizer: aligned crops in, L2-normalised embeddings out.
pub struct Recognizer {
    spec: ModelSpec,
    session: Session,
    input: String,
    fixed_batch: Option<usize>,
    dimension: usize,
}

impl Recognizer {
    /// Loads the model and runs it once on a blank crop, so that a wrong output dimension is
    /// refused now (`DimensionMismatch`) rather than on the first real face.
    pub fn load(runtime: &Runtime, spec: &ModelSpec, path: &Path) -> Result<Self, FaceError> {
        check_kind(spec, ModelKind::Recognizer)?;
        let session = runtime.session(spec, path)?;
        let (input, fixed_batch) = image_input(spec, &session)?;
        let expected = spec.dimension.unwrap_or(0);
        let mut recognizer = Self {
            spec: spec.clone(),
            session,
            input,
            fixed_batch,
            dimension: expected,
        };
        let [w, h] = spec.input_size;
        let probe = RgbImage::new(w, h);
        let raw = recognizer.raw(&[&probe])?;
        let actual = raw.first().map_or(0, Vec::len);
        if actual != expected {
            return Err(FaceError::DimensionMismatch {
                name: spec.name.clone(),
                expected,
                actual,
            });
        }
        Ok(recognizer)
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Model batch size: the fixed one, or [`MAX_BATCH`] for a dynamic batch axis.
    pub fn batch_size(&self) -> usize {
        self.fixed_batch.unwrap_or(MAX_BATCH)
    }

    /// Runs the model once on an already packed NCHW tensor of `batch` crops and returns how many
    /// values came out: the model-only cost, for benchmarks.
    pub fn infer_packed(&mut self, batch: usize, data: Vec<f32>) -> Result<usize, FaceError> {
        let [w, h] = self.spec.input_size.map(|v| v as usize);
        let outputs = run(
            &self.spec,
            &mut self.session,
            &self.input,
            [batch, 3, h, w],
            data,
        )?;
        Ok(outputs.iter().map(|(_, v)| v.len()).sum())
    }

    /// The embedding of an already aligned crop stored as an image file (JPEG, PNG, WebP),
    /// resized to the input size if it is not already.
    pub fn embed_crop_bytes(
        &mut self,
        bytes: &[u8],
        max_pixels: u64,
    ) -> Result<FaceEmbedding, FaceError> {
        let image = crate::image_io::decode_rgb(bytes, max_pixels)?;
        let [w, h] = self.spec.input_size;
        let crop = if image.dimensions() == (w, h) {
            image
        } else {
            crate::imageops::resize_bilinear(&image, w, h)
        };
        self.embed(&[&crop])?
            .pop()
            .ok_or_else(|| FaceError::Inference {
                name: self.spec.name.clone(),
                detail: "no embedding returned".into(),
            })
    }

    /// Raw outputs per crop, batched as the model allows.
    fn raw(&mut self, crops: &[&RgbImage]) -> Result<Vec<Vec<f32>>, FaceError> {
        let [w, h] = self.spec.input_size.map(|v| v as usize);
        let batch = self.batch_size();
        let mut result = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(batch) {
            let n = if self.fixed_batch.is_some() {
                batch
            } else {
                chunk.len()
            };
            let mut data = to_nchw(chunk, self.spec.color, &self.spec.normalization);
            data.resize(n * 3 * h * w, 0.0); // a fixed batch larger than the chunk is zero-padded
            let outputs = run(
                &self.spec,
                &mut self.session,
                &self.input,
                [n, 3, h, w],
                data,
            )?;
            let (_, values) =
                outputs
                    .into_iter()
                    .next()
                    .ok_or_else(|| FaceError::IncompatibleModel {
                        name: self.spec.name.clone(),
                        detail: "no outputs".into(),
                    })?;
            let per = values.len() / n.max(1);
            result.extend(
                values
                    .chunks(per.max(1))
                    .take(chunk.len())
                    .map(<[f32]>::to_vec),
            );
        }
        Ok(result)
    }

    /// Embeddings of aligned crops (each `input_size`); a crop whose output cannot be normalised
    /// (all zeros, NaN) is an inference error.
    pub fn embed(&mut self, crops: &[&RgbImage]) -> Result<Vec<FaceEmbedding>, FaceError> {
        let raw = self.raw(crops)?;
        raw.into_iter()
            .map(|v| {
                FaceEmbedding::new(&self.spec.name, v).ok_or_else(|| FaceError::Inference {
                    name: self.spec.name.clone(),
                    detail: "the embedding has no direction (all zeros or not finite)".into(),
                })
            })
            .collect()
    }

    /// The crop this recognizer wants for `face`: the similarity transform of its landmarks onto
    /// the template, warped to the input size. `None` for degenerate landmarks.
    pub fn align(&self, image: &RgbImage, face: &Face) -> Option<RgbImage> {
        align(image, face, &self.spec)
    }
}

/// Aligns `face` for the recognizer described by `spec` (see [`Recognizer::align`]).
pub fn align(image: &RgbImage, face: &Face, spec: &ModelSpec) -> Option<RgbImage> {
    let template = spec.template?;
    let m = similarity_transform(&face.landmarks, &template)?;
    let [w, h] = spec.input_size;
    Some(warp_affine(image, &m, w, h))
}
