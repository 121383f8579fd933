//! The server's two inference calls as typed answers: the worker job, and the check that the
//! worker answered with the kind of output asked for — written once for the routes and the job
//! runner that need them.

use attendansee_pool::protocol::{DetectedFace, Job, Output, Timings};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// A photo's faces as a worker found them, with the photo's size and the worker's timings.
pub struct PhotoFaces {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<DetectedFace>,
    pub timings: Timings,
}

impl AppState {
    /// Detects, aligns and embeds every face of `image` with `model` in a worker (the aligned
    /// crops come back as JPEGs when `return_crops`).
    pub async fn detect_and_embed(
        &self,
        image: Vec<u8>,
        model: &str,
        return_crops: bool,
    ) -> ApiResult<PhotoFaces> {
        let job = Job::DetectAndEmbed {
            image,
            detector: self.settings.detector.clone(),
            model: model.to_owned(),
            return_crops,
        };
        let (output, timings) = self.pool()?.submit(job).await?;
        let Output::Faces {
            width,
            height,
            faces,
        } = output
        else {
            return Err(ApiError::internal(
                "worker answered a detect-and-embed job with another kind of output",
            ));
        };
        Ok(PhotoFaces {
            width,
            height,
            faces,
            timings,
        })
    }

    /// Embeds aligned crops (image files) with `model` in a worker, one vector per crop.
    pub async fn embed_crops(&self, crops: Vec<Vec<u8>>, model: &str) -> ApiResult<Vec<Vec<f32>>> {
        let job = Job::EmbedCrops {
            crops,
            model: model.to_owned(),
        };
        let (output, _) = self.pool()?.submit(job).await?;
        let Output::Embeddings { embeddings } = output else {
            return Err(ApiError::internal(
                "worker answered an embed job with another kind of output",
            ));
        };
        Ok(embeddings)
    }
}
