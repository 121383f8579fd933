//! Embeddings on request: of one stored face crop or several (the old service's compatible
//! routes), and of every face of a photo that is not stored (`POST /embed/`, `attendansee embed`'s
//! twin).

use futures::StreamExt;

use attendansee_pool::Lane;
use attendansee_store::{FaceCrop, User};

use crate::uploads::Upload;
use crate::{PhotoFaces, ServiceError, ServiceResult, Services};

/// Most crops one batch request may name.
pub const MAX_BATCH: usize = 500;

/// Whether a crop's embedding was computed now or already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedStatus {
    Generated,
    Existed,
}

/// One crop's embedding, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropEmbedding {
    pub status: EmbedStatus,
    pub dimension: usize,
}

impl Services {
    /// The recognizer of the course a crop belongs to.
    async fn crop_course_model(&self, actor: &User, crop_id: i64) -> ServiceResult<String> {
        let course_id = self.store.course_of_crop(crop_id).await?;
        let course = self.store.get_course(actor.scope(), course_id).await?;
        Ok(self.course_model(&course))
    }

    /// Generates (or keeps, without `force`) one crop's embedding. Returns the crop, the model
    /// used and what was done.
    pub async fn embed_stored_crop(
        &self,
        actor: &User,
        crop_id: i64,
        model: Option<String>,
        force: bool,
    ) -> ServiceResult<(FaceCrop, String, CropEmbedding)> {
        let crop = self.store.get_crop(actor.scope(), crop_id).await?;
        let model = match model {
            Some(model) => model,
            None => self.crop_course_model(actor, crop.id).await?,
        };
        self.check_recognizer("model_name", &model)?;
        let lane = Lane::interactive(actor.id);
        let done = self.embed_crop(&crop, &model, force, lane).await?;
        Ok((crop, model, done))
    }

    /// Generates (or keeps) the embeddings of several crops, each with its own outcome; the
    /// model is the one asked for, else the first crop's course's, else the server's default.
    pub async fn embed_stored_crops(
        &self,
        actor: &User,
        crop_ids: &[i64],
        model: Option<String>,
        force: bool,
    ) -> ServiceResult<(String, Vec<ServiceResult<CropEmbedding>>)> {
        let Some(&first) = crop_ids.first() else {
            return Err(batch_size_error());
        };
        if crop_ids.len() > MAX_BATCH {
            return Err(batch_size_error());
        }
        let model = match model {
            Some(model) => model,
            None => self
                .crop_course_model(actor, first)
                .await
                .unwrap_or_else(|_| self.default_model()),
        };
        self.check_recognizer("model_name", &model)?;
        // As many crops at once as the workers take, so that a batch is spread over all of them;
        // `buffered` answers in the ids' order whatever order the workers finish in.
        let lane = Lane::batch(actor.id);
        let model_name = model.as_str();
        let results = futures::stream::iter(crop_ids.to_vec())
            .map(|crop_id| async move {
                let crop = self.store.get_crop(actor.scope(), crop_id).await?;
                self.embed_crop(&crop, model_name, force, lane).await
            })
            .buffered(self.jobs_in_flight())
            .collect()
            .await;
        Ok((model, results))
    }

    /// Embeds one stored crop with `model` in a worker, unless it has an embedding for it and
    /// `force` is off.
    async fn embed_crop(
        &self,
        crop: &FaceCrop,
        model: &str,
        force: bool,
        lane: Lane,
    ) -> ServiceResult<CropEmbedding> {
        let existing = |embeddings: Vec<attendansee_store::EmbeddingRecord>| {
            embeddings.into_iter().find(|e| e.model_name == model)
        };
        if !force && let Some(kept) = existing(self.store.crop_embeddings(crop.id).await?) {
            return Ok(CropEmbedding {
                status: EmbedStatus::Existed,
                dimension: kept.vector.len(),
            });
        }
        let key = crop.crop_blob_key.as_ref().ok_or_else(|| {
            ServiceError::validation(format!(
                "Face crop {} has no stored image to embed",
                crop.id
            ))
        })?;
        let bytes = self.blobs.get(key).await?;
        let mut embeddings = self.embed_crops(vec![bytes.to_vec()], model, lane).await?;
        let vector = embeddings
            .pop()
            .ok_or_else(|| ServiceError::internal("worker returned no embedding"))?;
        let mut dimension = vector.len();
        if !self
            .store
            .save_embedding(crop.id, model, &vector, force)
            .await?
        {
            // A concurrent request stored it first: one embedding per crop and model, theirs.
            if let Some(kept) = existing(self.store.crop_embeddings(crop.id).await?) {
                dimension = kept.vector.len();
            }
        }
        Ok(CropEmbedding {
            status: EmbedStatus::Generated,
            dimension,
        })
    }

    /// Finds and embeds every face of a photo that is not stored. Interactive: refused at once
    /// with `Overloaded` when the queue has no room, before the photo is read into memory.
    pub async fn embed_photo(
        &self,
        actor: &User,
        image: &Upload,
        model: Option<String>,
    ) -> ServiceResult<(String, PhotoFaces)> {
        let lane = Lane::interactive(actor.id);
        self.inference()?.check_room(lane)?;
        let model = model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.default_model());
        if !self.settings.recognizers.contains(&model) {
            return Err(ServiceError::invalid_field(
                "model_name",
                format!(
                    "unknown model '{model}'; available: {}",
                    self.settings.recognizers.join(", ")
                ),
            ));
        }
        let faces = self
            .detect_and_embed(image.read().await?, &model, false, lane)
            .await?;
        Ok((model, faces))
    }
}

fn batch_size_error() -> ServiceError {
    ServiceError::invalid_field(
        "face_crop_ids",
        format!("face_crop_ids must hold 1 to {MAX_BATCH} ids"),
    )
}
