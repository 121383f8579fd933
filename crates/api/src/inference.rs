//! The server's two inference calls as typed answers: the worker job, and the check that the
//! worker answered with the kind of output asked for — written once for the routes and the job
//! runner that need them; and how many jobs batch work keeps in the pool at once.

use attendansee_pool::Lane;
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
    /// crops come back as JPEGs when `return_crops`). `lane` says whose work it is and whether it
    /// waits for room in the pool's queue (batch) or is refused when it is full (interactive).
    pub async fn detect_and_embed(
        &self,
        image: Vec<u8>,
        model: &str,
        return_crops: bool,
        lane: Lane,
    ) -> ApiResult<PhotoFaces> {
        let job = Job::DetectAndEmbed {
            image,
            detector: self.settings.detector.clone(),
            model: model.to_owned(),
            return_crops,
        };
        let (output, timings) = self.pool()?.submit(job, lane).await?;
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
    pub async fn embed_crops(
        &self,
        crops: Vec<Vec<u8>>,
        model: &str,
        lane: Lane,
    ) -> ApiResult<Vec<Vec<f32>>> {
        let job = Job::EmbedCrops {
            crops,
            model: model.to_owned(),
        };
        let (output, _) = self.pool()?.submit(job, lane).await?;
        let Output::Embeddings { embeddings } = output else {
            return Err(ApiError::internal(
                "worker answered an embed job with another kind of output",
            ));
        };
        Ok(embeddings)
    }

    /// How many jobs one piece of batch work (a processing job's photos, an upload's files)
    /// keeps in the pool at once; 1 without a pool. The rule is the free function below.
    pub fn jobs_in_flight(&self) -> usize {
        self.pool.as_ref().map_or(1, |pool| {
            let status = pool.status();
            jobs_in_flight(status.workers, status.queue_capacity)
        })
    }
}

/// One job per worker, plus one waiting in the queue for each worker if the queue has room, so
/// that a worker that finishes starts the next job at once instead of idling while the server
/// stores the last answer. Never more than half the queue, leaving room for others.
fn jobs_in_flight(workers: usize, queue_capacity: usize) -> usize {
    let workers = workers.max(1);
    workers + workers.min(queue_capacity / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_one_job_waiting_when_the_queue_has_room() {
        assert_eq!(jobs_in_flight(2, 32), 4);
        assert_eq!(jobs_in_flight(4, 4), 6);
        assert_eq!(jobs_in_flight(2, 1), 2);
        assert_eq!(jobs_in_flight(0, 0), 1);
    }
}
