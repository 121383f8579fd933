//! Face crops as people look at them: a session's faces, one face with its embeddings, its
//! image.

use attendansee_store::{CropFilter, EmbeddingRecord, FaceCrop, Page, Paged, Scope};

use crate::{ServiceError, ServiceResult, Services};

impl Services {
    /// The faces found in a session's photos, filtered and a page at a time.
    pub async fn session_crops(
        &self,
        scope: Scope,
        session_id: i64,
        filter: CropFilter,
        page: Page,
    ) -> ServiceResult<Paged<FaceCrop>> {
        self.store.get_session(scope, session_id).await?;
        let filter = CropFilter {
            session: Some(session_id),
            ..filter
        };
        Ok(self.store.list_crops(scope, &filter, page).await?)
    }

    pub async fn get_crop(&self, scope: Scope, id: i64) -> ServiceResult<FaceCrop> {
        Ok(self.store.get_crop(scope, id).await?)
    }

    /// A face's embeddings, one per model.
    pub async fn crop_embeddings(
        &self,
        scope: Scope,
        id: i64,
    ) -> ServiceResult<Vec<EmbeddingRecord>> {
        self.store.get_crop(scope, id).await?;
        Ok(self.store.crop_embeddings(id).await?)
    }

    /// The aligned face as a JPEG.
    pub async fn crop_image(&self, scope: Scope, id: i64) -> ServiceResult<bytes::Bytes> {
        let crop = self.store.get_crop(scope, id).await?;
        let key = crop.crop_blob_key.ok_or_else(|| {
            ServiceError::not_found(format!("Face crop {id} has no stored image"))
        })?;
        Ok(self.blobs.get(&key).await?)
    }
}
