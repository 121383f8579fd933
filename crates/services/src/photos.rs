//! Session photos: an upload's files are each validated by a worker, stored, and recorded
//! (deduplicated by SHA-256 within the session); listing with the faces found; their files and
//! previews; deletion.

use std::sync::Arc;

use attendansee_pool::Lane;
use attendansee_store::{
    CropFilter, FaceCrop, ImageInsert, NewImage, Page, Scope, SessionImage, User, blob_keys,
};
use attendansee_vocabulary::{ErrorKind, UploadStatus};

use crate::error::nothing_stored_for_storage;
use crate::uploads::Upload;
use crate::{ServiceError, ServiceResult, Services};

/// What became of one uploaded file.
#[derive(Debug)]
pub struct UploadOutcome {
    /// The file name as sent.
    pub file: Option<String>,
    pub status: UploadStatus,
    /// The photo stored (or the one it duplicates).
    pub image: Option<SessionImage>,
    /// Why the file was refused.
    pub error: Option<ServiceError>,
}

impl UploadOutcome {
    fn stored(file: Option<String>, status: UploadStatus, image: SessionImage) -> Self {
        Self {
            file,
            status,
            image: Some(image),
            error: None,
        }
    }

    fn failed(file: Option<String>, error: ServiceError) -> Self {
        Self {
            file,
            status: UploadStatus::Failed,
            image: None,
            error: Some(error),
        }
    }
}

/// A photo with the faces found in it (none before it is processed).
#[derive(Debug)]
pub struct PhotoWithFaces {
    pub image: SessionImage,
    pub faces: Vec<FaceCrop>,
    /// What makes faces of this photo unrecognisable, and what to do about it.
    pub quality_hint: Option<String>,
}

impl Services {
    /// Stores every file of an upload to a session, as many at once as the workers can
    /// validate, and answers in the files' order; a bad file does not stop the others. A file
    /// identical to an earlier one of the same upload is only looked at once that one is done,
    /// so that the first is the one "stored" and the others are its duplicates.
    pub async fn upload_photos(
        &self,
        actor: &User,
        session_id: i64,
        files: Vec<Upload>,
    ) -> ServiceResult<Vec<UploadOutcome>> {
        self.store.get_session(actor.scope(), session_id).await?;
        let parallel = self.jobs_in_flight();
        let files: Vec<Arc<Upload>> = files.into_iter().map(Arc::new).collect();
        let mut seen = std::collections::HashSet::new();
        let first_of_its_kind: Vec<bool> = files.iter().map(|f| seen.insert(&f.sha256)).collect();
        let mut results: Vec<Option<UploadOutcome>> = files.iter().map(|_| None).collect();
        for first_pass in [true, false] {
            let mut pending = files
                .iter()
                .enumerate()
                .filter(|(i, _)| first_of_its_kind[*i] == first_pass);
            let mut running = tokio::task::JoinSet::new();
            loop {
                while running.len() < parallel {
                    let Some((i, upload)) = pending.next() else {
                        break;
                    };
                    let (services, actor, upload) = (self.clone(), actor.clone(), upload.clone());
                    running.spawn(async move {
                        let stored = services
                            .store_photo(&actor, session_id, &upload)
                            .await
                            .unwrap_or_else(|e| UploadOutcome::failed(upload.name.clone(), e));
                        (i, stored)
                    });
                }
                let Some(finished) = running.join_next().await else {
                    break;
                };
                // A task that panicked leaves its file's slot empty; it is reported below.
                if let Ok((i, stored)) = finished {
                    results[i] = Some(stored);
                }
            }
        }
        let outcomes: Vec<UploadOutcome> = files
            .iter()
            .zip(results)
            .map(|(upload, result)| {
                result.unwrap_or_else(|| {
                    let e = ServiceError::new(
                        ErrorKind::Internal,
                        "the upload of this file failed unexpectedly",
                    );
                    UploadOutcome::failed(upload.name.clone(), e)
                })
            })
            .collect();
        let files = outcomes
            .iter()
            .map(|o| (o.status != UploadStatus::Failed, o.error.as_ref()));
        match nothing_stored_for_storage(files) {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }

    /// Validates one file in a worker, moves it into blob storage, then records it; nothing is
    /// recorded without its bytes, and bytes whose record fails are removed again.
    async fn store_photo(
        &self,
        actor: &User,
        session_id: i64,
        upload: &Upload,
    ) -> ServiceResult<UploadOutcome> {
        upload.require_content()?;
        let (file, sha256) = (upload.name.clone(), upload.sha256.clone());
        if let Some(existing) = self.store.find_session_image(session_id, &sha256).await? {
            return Ok(UploadOutcome::stored(
                file,
                UploadStatus::Duplicate,
                existing,
            ));
        }
        let image = upload.read().await?;
        let (width, height) = self
            .inference()?
            .validate(image, Lane::batch(actor.id))
            .await?;
        let blob_key = blob_keys::session_photo(session_id, &sha256);
        self.blobs.put_file(&blob_key, upload.path()).await?;
        let new = NewImage {
            blob_key: blob_key.clone(),
            sha256,
            original_name: file.clone(),
            width: i64::from(width),
            height: i64::from(height),
        };
        match self
            .store
            .add_session_image(actor.scope(), session_id, &new)
            .await
        {
            Ok(ImageInsert::Stored(image)) => {
                Ok(UploadOutcome::stored(file, UploadStatus::Stored, image))
            }
            // Stored meanwhile by another upload of the same bytes, under the same key.
            Ok(ImageInsert::Duplicate(image)) => {
                Ok(UploadOutcome::stored(file, UploadStatus::Duplicate, image))
            }
            Err(e) => {
                self.discard_blobs(vec![blob_key]).await;
                Err(e.into())
            }
        }
    }

    /// One photo's record.
    pub async fn get_photo(&self, scope: Scope, id: i64) -> ServiceResult<SessionImage> {
        Ok(self.store.get_session_image(scope, id).await?)
    }

    /// A session's photos, each with the faces found in it.
    pub async fn session_photos(
        &self,
        scope: Scope,
        session_id: i64,
    ) -> ServiceResult<Vec<PhotoWithFaces>> {
        let images = self.store.list_session_images(scope, session_id).await?;
        let filter = CropFilter {
            session: Some(session_id),
            ..Default::default()
        };
        let crops = self
            .store
            .list_crops(scope, &filter, Page::ALL)
            .await?
            .items;
        Ok(images
            .into_iter()
            .map(|image| {
                let faces = crops
                    .iter()
                    .filter(|c| c.image_id == Some(image.id))
                    .cloned()
                    .collect::<Vec<_>>();
                let quality_hint = crate::faces::photo_quality_hint(&faces);
                PhotoWithFaces {
                    image,
                    faces,
                    quality_hint,
                }
            })
            .collect())
    }

    /// Deletes a photo with its faces, their embeddings and decisions, and erases the photo and
    /// face-crop files.
    pub async fn delete_photo(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_session_image(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }

    /// A photo's file as uploaded.
    pub async fn photo_file(&self, scope: Scope, id: i64) -> ServiceResult<bytes::Bytes> {
        let image = self.store.get_session_image(scope, id).await?;
        Ok(self.blobs.get(&image.blob_key).await?)
    }

    /// A photo's preview (a JPEG whose long side is at most [`PREVIEW_SIDE`](crate::PREVIEW_SIDE)),
    /// made by the worker that processed it. Until the photo is processed — or when it could not
    /// be — the file as uploaded: a client always gets something to show, and the server never
    /// decodes a photo to make one itself.
    pub async fn photo_preview(&self, scope: Scope, id: i64) -> ServiceResult<bytes::Bytes> {
        let image = self.store.get_session_image(scope, id).await?;
        let key = image.preview_blob_key.as_ref().unwrap_or(&image.blob_key);
        Ok(self.blobs.get(key).await?)
    }
}
