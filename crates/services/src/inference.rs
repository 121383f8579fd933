//! Inference as the services see it: a small trait with the three calls they make (validate a
//! photo, find and embed its faces, embed stored crops), implemented by the worker pool and — for
//! in-process tests — by a deterministic fake. Nothing here decodes an image.

use futures::future::BoxFuture;

use attendansee_pool::protocol::{DetectedFace, Job, Output, Timings};
use attendansee_pool::{Lane, Pool};

use crate::error::{ServiceError, ServiceResult};

/// A photo's faces as a worker found them, with the photo's size and the worker's timings.
#[derive(Clone, Debug)]
pub struct PhotoFaces {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<DetectedFace>,
    pub timings: Timings,
    /// The photo's preview (a JPEG), when the request asked for one.
    pub preview: Option<Vec<u8>>,
}

/// What asks the pool for work: the detector and recognizer by catalog name, and the image as
/// its file's bytes.
#[derive(Clone, Debug)]
pub struct DetectRequest {
    pub image: Vec<u8>,
    pub detector: String,
    pub model: String,
    /// Also return each aligned face as a JPEG.
    pub return_crops: bool,
    /// Also return the photo as a JPEG whose long side is at most this many pixels.
    pub preview_side: Option<u32>,
}

/// How much work the inference side takes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub workers: usize,
    pub queue: usize,
}

/// The inference calls the services make. `lane` says whose work it is and whether it waits for
/// room (batch) or is refused at once when the queue is full (interactive).
pub trait Inference: Send + Sync + 'static {
    /// Decodes the image with every check and returns its width and height.
    fn validate(&self, image: Vec<u8>, lane: Lane) -> BoxFuture<'_, ServiceResult<(u32, u32)>>;

    /// Detects, aligns and embeds every face of an image.
    fn detect_and_embed(
        &self,
        request: DetectRequest,
        lane: Lane,
    ) -> BoxFuture<'_, ServiceResult<PhotoFaces>>;

    /// Embeds aligned crops (image files at the model's input size), one vector per crop.
    fn embed_crops(
        &self,
        crops: Vec<Vec<u8>>,
        model: String,
        lane: Lane,
    ) -> BoxFuture<'_, ServiceResult<Vec<Vec<f32>>>>;

    /// `Overloaded` now, before any work, when an interactive request of `lane` would be refused.
    fn check_room(&self, lane: Lane) -> ServiceResult<()>;

    fn capacity(&self) -> Capacity;
}

impl Inference for Pool {
    fn validate(&self, image: Vec<u8>, lane: Lane) -> BoxFuture<'_, ServiceResult<(u32, u32)>> {
        Box::pin(async move {
            match self.submit(Job::Validate { image }, lane).await? {
                (Output::ImageInfo { width, height }, _) => Ok((width, height)),
                _ => Err(wrong_output("validate")),
            }
        })
    }

    fn detect_and_embed(
        &self,
        request: DetectRequest,
        lane: Lane,
    ) -> BoxFuture<'_, ServiceResult<PhotoFaces>> {
        let job = Job::DetectAndEmbed {
            image: request.image,
            detector: request.detector,
            model: request.model,
            return_crops: request.return_crops,
            preview_side: request.preview_side,
        };
        Box::pin(async move {
            match self.submit(job, lane).await? {
                (
                    Output::Faces {
                        width,
                        height,
                        faces,
                        preview,
                    },
                    timings,
                ) => Ok(PhotoFaces {
                    width,
                    height,
                    faces,
                    timings,
                    preview,
                }),
                _ => Err(wrong_output("detect-and-embed")),
            }
        })
    }

    fn embed_crops(
        &self,
        crops: Vec<Vec<u8>>,
        model: String,
        lane: Lane,
    ) -> BoxFuture<'_, ServiceResult<Vec<Vec<f32>>>> {
        Box::pin(async move {
            match self.submit(Job::EmbedCrops { crops, model }, lane).await? {
                (Output::Embeddings { embeddings }, _) => Ok(embeddings),
                _ => Err(wrong_output("embed")),
            }
        })
    }

    fn check_room(&self, lane: Lane) -> ServiceResult<()> {
        Ok(Pool::check_room(self, lane)?)
    }

    fn capacity(&self) -> Capacity {
        let status = self.status();
        Capacity {
            workers: status.workers,
            queue: status.queue_capacity,
        }
    }
}

fn wrong_output(job: &str) -> ServiceError {
    ServiceError::internal(format!(
        "worker answered a {job} job with another kind of output"
    ))
}

/// How many jobs one piece of batch work (a processing job's photos, an upload's files) keeps
/// in flight: one per worker, plus one waiting in the queue for each worker if the queue has
/// room, so that a worker that finishes starts the next job at once instead of idling while the
/// server stores the last answer. Never more than half the queue, leaving room for others.
pub fn jobs_in_flight(capacity: Capacity) -> usize {
    let workers = capacity.workers.max(1);
    workers + workers.min(capacity.queue / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(workers: usize, queue: usize) -> usize {
        jobs_in_flight(Capacity { workers, queue })
    }

    #[test]
    fn each_worker_gets_one_job_waiting_when_the_queue_has_room() {
        assert_eq!(jobs(2, 32), 4);
        assert_eq!(jobs(4, 4), 6);
        assert_eq!(jobs(2, 1), 2);
        assert_eq!(jobs(0, 0), 1);
    }
}
