//! A deterministic stand-in for the worker pool, for in-process tests of the whole flow
//! (upload → process → assign → attendance) without models or worker processes.
//!
//! A test registers each photo's bytes with the faces it shows (box and vector). The fake then
//! answers like a worker: `validate` gives the registered size (unregistered bytes are an
//! `UnsupportedImage`), `detect_and_embed` the registered faces with their vectors and, when
//! asked, crop "images" that carry the vector, so that re-embedding a stored crop gives back
//! exactly the same vector, and a "preview" that names the size a worker's would have
//! ([`fake_preview`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use attendansee_pool::Lane;
use attendansee_pool::protocol::{DetectedFace, Timings};
use attendansee_vocabulary::ErrorKind;

use crate::{Capacity, DetectRequest, Inference, PhotoFaces, ServiceError, ServiceResult};

/// What every fake crop image starts with.
const CROP_MAGIC: &[u8] = b"fake-crop:";

/// One face of a registered photo.
#[derive(Clone, Debug)]
pub struct FakeFace {
    /// x, y, width, height in the photo's pixels.
    pub bbox: [f32; 4],
    /// The embedding (normalised by the fake).
    pub vector: Vec<f32>,
    /// Eyes, nose, mouth corners; `None`: a frontal face's, placed inside the box.
    pub landmarks: Option<[[f32; 2]; 5]>,
    /// Sharpness of the aligned crop, as a worker measures it.
    pub blur: f32,
}

impl FakeFace {
    /// A sharp frontal face in `bbox`.
    pub fn new(bbox: [f32; 4], vector: Vec<f32>) -> Self {
        Self {
            bbox,
            vector,
            landmarks: None,
            blur: 100.0,
        }
    }
}

#[derive(Clone, Debug)]
struct FakePhoto {
    width: u32,
    height: u32,
    faces: Vec<FakeFace>,
}

/// The fake inference side. Every model gives the registered vectors.
#[derive(Default)]
pub struct FakeInference {
    photos: Mutex<HashMap<Vec<u8>, FakePhoto>>,
    calls: Mutex<Vec<&'static str>>,
    /// How long each `embed_crops` call takes, to let concurrent calls overlap.
    embed_delay: Mutex<Duration>,
    /// How long each `detect_and_embed` call takes, so that a job is still running when a test
    /// acts on it.
    detect_delay: Mutex<Duration>,
    embeds_running: AtomicUsize,
    most_embeds_running: AtomicUsize,
}

impl FakeInference {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a photo: these bytes show these faces.
    pub fn photo(&self, bytes: &[u8], width: u32, height: u32, faces: Vec<FakeFace>) {
        let photo = FakePhoto {
            width,
            height,
            faces,
        };
        self.lock_photos().insert(bytes.to_vec(), photo);
    }

    /// Forgets a photo: from now on its bytes are an `UnsupportedImage`, as a file that a worker
    /// cannot decode.
    pub fn forget(&self, bytes: &[u8]) {
        self.lock_photos().remove(bytes);
    }

    /// The calls made so far, by kind (`validate`, `detect_and_embed`, `embed_crops`).
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Makes every later `embed_crops` call take `delay`.
    pub fn set_embed_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.embed_delay.lock() {
            *d = delay;
        }
    }

    /// Makes every later `detect_and_embed` call take `delay`.
    pub fn set_detect_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.detect_delay.lock() {
            *d = delay;
        }
    }

    /// The most `embed_crops` calls that were running at the same time.
    pub fn most_concurrent_embeds(&self) -> usize {
        self.most_embeds_running.load(Ordering::SeqCst)
    }

    fn lock_photos(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, FakePhoto>> {
        // A test that panicked while holding the lock has failed already; its data is still fine.
        self.photos.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }

    fn find(&self, image: &[u8]) -> ServiceResult<FakePhoto> {
        self.lock_photos().get(image).cloned().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::UnsupportedImage,
                "unsupported image: the fake inference does not know these bytes",
            )
        })
    }
}

/// The vector scaled to unit length, as a real recognizer returns it.
fn normalised(vector: &[f32]) -> Vec<f32> {
    let norm = vector
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    vector.iter().map(|v| v / norm).collect()
}

/// The preview the fake returns for a `width` × `height` photo asked for with `side`: the text
/// `fake-preview:{w}x{h}` with the size a worker's preview would have (long side at most `side`,
/// never enlarged).
pub fn fake_preview(width: u32, height: u32, side: u32) -> Vec<u8> {
    let long = width.max(height).max(1);
    let scale = f64::from(side.min(long)) / f64::from(long);
    let size = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    format!("fake-preview:{}x{}", size(width), size(height)).into_bytes()
}

fn crop_image(vector: &[f32]) -> Vec<u8> {
    let mut bytes = CROP_MAGIC.to_vec();
    bytes.extend(vector.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

fn crop_vector(image: &[u8]) -> ServiceResult<Vec<f32>> {
    let Some(body) = image.strip_prefix(CROP_MAGIC) else {
        return Err(ServiceError::new(
            ErrorKind::UnsupportedImage,
            "unsupported image: not a crop made by the fake inference",
        ));
    };
    Ok(body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Five landmarks inside the box (eyes, nose, mouth corners), so that geometry looks right.
fn landmarks(b: [f32; 4]) -> [[f32; 2]; 5] {
    let at = |fx: f32, fy: f32| [b[0] + fx * b[2], b[1] + fy * b[3]];
    [
        at(0.3, 0.35),
        at(0.7, 0.35),
        at(0.5, 0.55),
        at(0.35, 0.75),
        at(0.65, 0.75),
    ]
}

impl Inference for FakeInference {
    fn validate(&self, image: Vec<u8>, _lane: Lane) -> BoxFuture<'_, ServiceResult<(u32, u32)>> {
        self.record("validate");
        let found = self.find(&image).map(|p| (p.width, p.height));
        Box::pin(async move { found })
    }

    fn detect_and_embed(
        &self,
        request: DetectRequest,
        _lane: Lane,
    ) -> BoxFuture<'_, ServiceResult<PhotoFaces>> {
        self.record("detect_and_embed");
        let found = self.find(&request.image).map(|photo| PhotoFaces {
            width: photo.width,
            height: photo.height,
            faces: photo
                .faces
                .iter()
                .map(|f| {
                    let vector = normalised(&f.vector);
                    DetectedFace {
                        bbox: f.bbox,
                        score: 0.9,
                        landmarks: f.landmarks.unwrap_or_else(|| landmarks(f.bbox)),
                        crop_jpeg: request.return_crops.then(|| crop_image(&vector)),
                        embedding: Some(vector),
                        blur: Some(f.blur),
                    }
                })
                .collect(),
            timings: Timings::default(),
            preview: request
                .preview_side
                .map(|side| fake_preview(photo.width, photo.height, side)),
        });
        let delay = self.detect_delay.lock().map(|d| *d).unwrap_or_default();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            found
        })
    }

    fn embed_crops(
        &self,
        crops: Vec<Vec<u8>>,
        _model: String,
        _lane: Lane,
    ) -> BoxFuture<'_, ServiceResult<Vec<Vec<f32>>>> {
        self.record("embed_crops");
        let vectors = crops.iter().map(|c| crop_vector(c)).collect();
        let delay = self.embed_delay.lock().map(|d| *d).unwrap_or_default();
        Box::pin(async move {
            let running = self.embeds_running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_embeds_running
                .fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            self.embeds_running.fetch_sub(1, Ordering::SeqCst);
            vectors
        })
    }

    fn check_room(&self, _lane: Lane) -> ServiceResult<()> {
        Ok(())
    }

    fn capacity(&self) -> Capacity {
        Capacity {
            workers: 2,
            queue: 8,
        }
    }
}
