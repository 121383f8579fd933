//! The domain services of AttendanSee, between the HTTP API (and the CLI) and storage: what
//! happens when photos are uploaded and processed, how faces are matched and grouped, how
//! attendance is derived, the rules for accounts. Nothing here knows HTTP; nothing here writes
//! SQL; inference is reached through the [`Inference`] trait.
//!
//! [`Services`] is the handle every operation takes: storage, blob storage, inference and the
//! domain settings. Errors are [`ServiceError`]s, whose kind comes from the shared vocabulary.

pub mod attendance;
pub mod courses;
pub mod crops;
pub mod embeddings;
pub mod enrollment;
pub mod error;
pub mod faces;
#[cfg(any(test, feature = "fake-inference"))]
pub mod fake;
pub mod inference;
pub mod jobs;
pub mod models;
pub mod photos;
pub mod recognition;
pub mod review;
pub mod uploads;
pub mod users;
pub mod validate;

use std::sync::Arc;

use attendansee_pool::Lane;
use attendansee_store::{BlobStore, Store};

pub use attendansee_vocabulary::{ErrorKind, JobKind, Reason, Source, UploadStatus};
pub use error::{ServiceError, ServiceResult};
pub use inference::{Capacity, DetectRequest, Inference, PhotoFaces};
pub use models::{Matching, MatchingTable};

/// The long side, in pixels, of the previews made of session photos when they are processed.
pub const PREVIEW_SIDE: u32 = 1600;

/// The settings the domain needs (the binary's configuration fills them in).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The detector the workers run.
    pub detector: String,
    /// The recognizers the workers load; the first is the default.
    pub recognizers: Vec<String>,
    /// Every recognizer in the model catalog (a known name that the workers do not load is
    /// "not installed", an unknown one a validation error).
    pub catalog_recognizers: Vec<String>,
    /// How to install each catalog model, for the "not installed" error: a `models fetch`
    /// command, or where to put a file that has no download source.
    pub install_advice: std::collections::BTreeMap<String, String>,
    /// Each recognizer's calibrated matching (threshold, margin, suggestions), from the catalog.
    pub matching: MatchingTable,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            detector: "yunet".into(),
            recognizers: vec!["mobilefacenet".into()],
            catalog_recognizers: [
                "mobilefacenet",
                "mobilefacenet-batch",
                "arcface",
                "facenet",
                "facenet512",
            ]
            .map(String::from)
            .to_vec(),
            install_advice: Default::default(),
            matching: ["mobilefacenet", "mobilefacenet-batch"]
                .map(|m| (m.to_owned(), Matching::FALLBACK))
                .into_iter()
                .collect(),
        }
    }
}

/// Storage, inference and settings: what every service operation works with. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    // Private: callers go through the operations, which keep the domain's rules (scopes, files
    // deleted after their rows, …), never around them.
    store: Store,
    blobs: BlobStore,
    pub settings: Arc<Settings>,
    /// `None` on a server without inference workers (face operations are `ModelNotAvailable`).
    inference: Option<Arc<dyn Inference>>,
    /// Wakes the job runner when a job is queued.
    jobs_queued: Arc<tokio::sync::Notify>,
}

impl Services {
    pub fn new(store: Store, blobs: BlobStore, settings: Settings) -> Self {
        Self {
            store,
            blobs,
            settings: Arc::new(settings),
            inference: None,
            jobs_queued: Arc::default(),
        }
    }

    pub fn with_inference(mut self, inference: Arc<dyn Inference>) -> Self {
        self.inference = Some(inference);
        self
    }

    /// The inference side, or `ModelNotAvailable` on a server without one.
    pub fn inference(&self) -> ServiceResult<&dyn Inference> {
        self.inference.as_deref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::ModelNotAvailable,
                "this server runs no inference workers",
            )
        })
    }

    /// How many jobs one piece of batch work keeps in flight (1 without inference).
    pub fn jobs_in_flight(&self) -> usize {
        self.inference
            .as_ref()
            .map_or(1, |i| inference::jobs_in_flight(i.capacity()))
    }

    /// Finds and embeds every face of `image` with `model` (and the server's detector).
    pub async fn detect_and_embed(
        &self,
        image: Vec<u8>,
        model: &str,
        return_crops: bool,
        lane: Lane,
    ) -> ServiceResult<PhotoFaces> {
        self.detect(image, model, return_crops, None, lane).await
    }

    /// [`detect_and_embed`](Self::detect_and_embed) of a session photo being processed: its
    /// faces with their crops, and its preview ([`PREVIEW_SIDE`]), from one decode in a worker.
    pub(crate) async fn process_photo_faces(
        &self,
        image: Vec<u8>,
        model: &str,
        lane: Lane,
    ) -> ServiceResult<PhotoFaces> {
        self.detect(image, model, true, Some(PREVIEW_SIDE), lane)
            .await
    }

    async fn detect(
        &self,
        image: Vec<u8>,
        model: &str,
        return_crops: bool,
        preview_side: Option<u32>,
        lane: Lane,
    ) -> ServiceResult<PhotoFaces> {
        let request = DetectRequest {
            image,
            detector: self.settings.detector.clone(),
            model: model.to_owned(),
            return_crops,
            preview_side,
        };
        self.inference()?.detect_and_embed(request, lane).await
    }

    /// Embeds aligned crop images with `model`, one vector per crop.
    pub async fn embed_crops(
        &self,
        crops: Vec<Vec<u8>>,
        model: &str,
        lane: Lane,
    ) -> ServiceResult<Vec<Vec<f32>>> {
        self.inference()?
            .embed_crops(crops, model.to_owned(), lane)
            .await
    }

    /// Whether the database answers (for the health check).
    pub async fn ping(&self) -> ServiceResult<()> {
        Ok(self.store.ping().await?)
    }

    /// Whether the blob store answers, within [`attendansee_store::BLOB_CHECK_TIMEOUT`] (for
    /// the health check), and if not, why — in words that can be shown without a token.
    pub async fn check_blobs(&self) -> Result<(), attendansee_store::BlobCheckError> {
        self.blobs.check().await
    }

    /// Cleans up after a write that failed: deletes those of the blobs it wrote that no row
    /// references. Keys are content-addressed, so a blob may belong to a row stored before (the
    /// same photo again); that one stays. If storage cannot say, nothing is deleted: the orphan
    /// sweep at the next start removes what is left.
    pub async fn discard_blobs(&self, keys: Vec<String>) {
        match self.store.unreferenced_blob_keys(keys).await {
            Ok(unreferenced) => self.delete_blobs(unreferenced).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell which blobs of a failed write to delete; the next start sweeps them");
            }
        }
    }

    /// Deletes the blobs a committed deletion freed. A blob that cannot be deleted now is only
    /// logged: no row points to it any more, so the orphan sweep at the next start removes it.
    /// The deleting runs in a task of its own, so a caller that goes away cannot cut it short.
    pub async fn delete_blobs(&self, keys: Vec<String>) {
        let blobs = self.blobs.clone();
        let deleting = tokio::spawn(async move {
            for key in keys {
                if let Err(e) = blobs.delete(&key).await {
                    tracing::warn!(%key, error = %e, "cannot delete a blob; the next start sweeps it");
                }
            }
        });
        if let Err(e) = deleting.await {
            tracing::error!(error = %e, "the task deleting blobs failed; the next start sweeps them");
        }
    }
}
