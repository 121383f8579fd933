//! SQL for session photos, the faces found in them, and their embeddings.

use chrono::{DateTime, Utc};

use crate::blob_refs::Owner;
use crate::error::conflict_on_unique;
use crate::names;
use crate::scope::{Filter, Table};
use crate::{
    CropFilter, EmbeddingRecord, FaceCrop, ImageInsert, MatchDecision, NewCrop, NewImage, Page,
    Paged, PhotoCommit, Result, Scope, SessionImage, Store, StoreError,
};

const IMAGE_COLUMNS: &str = "i.id, i.session_id, i.blob_key, i.sha256, i.original_name, i.width, i.height, i.status, i.error, i.created_at, i.preview_blob_key";
const CROP_COLUMNS: &str = "f.id, f.image_id, f.reference_photo_id, f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h, f.landmarks, \
     f.det_score, f.quality_size, f.quality_blur, f.crop_blob_key, f.student_id, f.assignment_source, f.confidence, \
     f.cluster_id, f.not_a_student, f.match_model, f.match_reason, f.best_student_id, f.best_similarity, \
     f.runner_up_student_id, f.runner_up_similarity, f.created_at";
/// Joins that tie a crop (of a session photo or of a reference photo) to its course as `c`.
const CROP_COURSE_FROM: &str = "face_crops f
     LEFT JOIN session_images i ON i.id = f.image_id
     LEFT JOIN sessions s ON s.id = i.session_id
     LEFT JOIN reference_photos r ON r.id = f.reference_photo_id
     LEFT JOIN students st ON st.id = r.student_id
     JOIN courses c ON c.id = COALESCE(s.course_id, st.course_id)";
const CROPS: Table = Table {
    entity: "Face crop",
    from: CROP_COURSE_FROM,
    id: "f.id",
};
pub(crate) const IMAGES: Table = Table {
    entity: "Image",
    from: "session_images i JOIN sessions s ON s.id = i.session_id JOIN courses c ON c.id = s.course_id",
    id: "i.id",
};

#[derive(sqlx::FromRow)]
struct CropRow {
    id: i64,
    image_id: Option<i64>,
    reference_photo_id: Option<i64>,
    bbox_x: f64,
    bbox_y: f64,
    bbox_w: f64,
    bbox_h: f64,
    landmarks: String,
    det_score: f64,
    quality_size: Option<f64>,
    quality_blur: Option<f64>,
    crop_blob_key: Option<String>,
    student_id: Option<i64>,
    assignment_source: Option<String>,
    confidence: Option<f64>,
    cluster_id: Option<i64>,
    not_a_student: bool,
    match_model: Option<String>,
    match_reason: Option<String>,
    best_student_id: Option<i64>,
    best_similarity: Option<f64>,
    runner_up_student_id: Option<i64>,
    runner_up_similarity: Option<f64>,
    created_at: DateTime<Utc>,
}

impl TryFrom<CropRow> for FaceCrop {
    type Error = StoreError;

    fn try_from(r: CropRow) -> Result<Self> {
        Ok(FaceCrop {
            id: r.id,
            image_id: r.image_id,
            reference_photo_id: r.reference_photo_id,
            bbox: [
                r.bbox_x as f32,
                r.bbox_y as f32,
                r.bbox_w as f32,
                r.bbox_h as f32,
            ],
            // Written by this module from `[[f32; 2]; 5]`; a corrupt value reads as zeros.
            landmarks: serde_json::from_str(&r.landmarks).unwrap_or_default(),
            score: r.det_score as f32,
            quality_size: r.quality_size.map(|v| v as f32),
            quality_blur: r.quality_blur.map(|v| v as f32),
            crop_blob_key: r.crop_blob_key,
            student_id: r.student_id,
            assignment_source: names::decode_optional(r.assignment_source.as_deref())?,
            confidence: r.confidence.map(|v| v as f32),
            cluster_id: r.cluster_id,
            not_a_student: r.not_a_student,
            decision: match (r.match_model, r.match_reason) {
                (Some(model), Some(reason)) => Some(MatchDecision {
                    model,
                    reason: names::decode(&reason)?,
                    best: pair(r.best_student_id, r.best_similarity),
                    runner_up: pair(r.runner_up_student_id, r.runner_up_similarity),
                }),
                _ => None,
            },
            created_at: r.created_at,
        })
    }
}

fn pair(student: Option<i64>, similarity: Option<f64>) -> Option<(i64, f32)> {
    Some((student?, similarity? as f32))
}

#[derive(sqlx::FromRow)]
struct EmbeddingRow {
    id: i64,
    crop_id: i64,
    model_name: String,
    vector: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl From<EmbeddingRow> for EmbeddingRecord {
    fn from(r: EmbeddingRow) -> Self {
        EmbeddingRecord {
            id: r.id,
            crop_id: r.crop_id,
            model_name: r.model_name,
            vector: vector_from_bytes(&r.vector),
            created_at: r.created_at,
        }
    }
}

/// A stored vector: little-endian f32s (a trailing partial value is ignored).
pub(crate) fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub(crate) fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Store {
    /// Adds a photo to a session, or reports the photo with the same bytes already there.
    pub async fn add_session_image(
        &self,
        scope: Scope,
        session_id: i64,
        image: &NewImage,
    ) -> Result<ImageInsert> {
        with_pool!(self, pool => {
            self.get_session(scope, session_id).await?;
            if let Some(existing) = self.find_session_image(session_id, &image.sha256).await? {
                return Ok(ImageInsert::Duplicate(existing));
            }
            let sql = format!(
                "INSERT INTO session_images (session_id, blob_key, sha256, original_name, width, height, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) RETURNING {}",
                IMAGE_COLUMNS.replace("i.", "")
            );
            let mut tx = begin_write(pool).await?;
            let inserted = sqlx::query_as::<_, SessionImage>(&sql)
                .bind(session_id)
                .bind(&image.blob_key)
                .bind(&image.sha256)
                .bind(&image.original_name)
                .bind(image.width)
                .bind(image.height)
                .bind(Utc::now())
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_on_unique(String::new));
            let inserted = match inserted {
                Ok(image) => tx.commit().await.map(|()| image).map_err(StoreError::from),
                // The session was deleted by another request since the check.
                Err(e) => Err(crate::error::not_found_if_gone("Session", session_id)(e)),
            };
            match inserted {
                Ok(image) => Ok(ImageInsert::Stored(image)),
                // The same photo uploaded twice at once: the other request stored it.
                Err(StoreError::Conflict(_)) => {
                    match self.find_session_image(session_id, &image.sha256).await? {
                        Some(existing) => Ok(ImageInsert::Duplicate(existing)),
                        None => Err(StoreError::Conflict(
                            "the photo was stored and removed concurrently".into(),
                        )),
                    }
                }
                Err(e) => Err(e),
            }
        })
    }

    /// The photo of this session with these bytes, if any (the caller has checked the scope).
    pub async fn find_session_image(
        &self,
        session_id: i64,
        sha256: &str,
    ) -> Result<Option<SessionImage>> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {IMAGE_COLUMNS} FROM session_images i WHERE i.session_id = $1 AND i.sha256 = $2"
            );
            Ok(sqlx::query_as::<_, SessionImage>(&sql)
                .bind(session_id)
                .bind(sha256)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn get_session_image(&self, scope: Scope, id: i64) -> Result<SessionImage> {
        self.get_visible(&IMAGES, IMAGE_COLUMNS, scope, id).await
    }

    /// Deletes a photo with its faces and their embeddings; returns the blob keys only they
    /// referenced, for the caller to delete after the commit.
    pub async fn delete_session_image(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_visible(scope, Owner::Image(id), &IMAGES).await
    }

    /// A session's photos in upload order.
    pub async fn list_session_images(
        &self,
        scope: Scope,
        session_id: i64,
    ) -> Result<Vec<SessionImage>> {
        with_pool!(self, pool => {
            self.get_session(scope, session_id).await?;
            let sql = format!(
                "SELECT {IMAGE_COLUMNS} FROM session_images i WHERE i.session_id = $1 ORDER BY i.id"
            );
            Ok(sqlx::query_as::<_, SessionImage>(&sql)
                .bind(session_id)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Photos of a session that still need processing (never processed, or failed).
    pub async fn unprocessed_images(&self, session_id: i64) -> Result<Vec<SessionImage>> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {IMAGE_COLUMNS} FROM session_images i WHERE i.session_id = $1 AND i.status <> 'processed' ORDER BY i.id"
            );
            Ok(sqlx::query_as::<_, SessionImage>(&sql)
                .bind(session_id)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Records the faces of a photo with their embeddings and marks it processed, in one
    /// transaction (see [`Store::commit_photo_results`]); returns the new crops' ids, none for a
    /// photo already processed.
    pub async fn record_image_faces(&self, image_id: i64, crops: &[NewCrop]) -> Result<Vec<i64>> {
        Ok(
            match self.commit_photo_results(image_id, crops, None).await? {
                PhotoCommit::Recorded(ids) => ids,
                PhotoCommit::AlreadyProcessed => Vec::new(),
            },
        )
    }

    /// Records a processed photo's results — its faces with their embeddings, and its preview —
    /// and marks it processed, all in one transaction, once: a photo already processed is left
    /// as it is ([`PhotoCommit::AlreadyProcessed`]), so two nodes that processed the same photo
    /// leave one set of crops. `NotFound` when the photo is gone.
    pub async fn commit_photo_results(
        &self,
        image_id: i64,
        crops: &[NewCrop],
        preview_key: Option<&str>,
    ) -> Result<PhotoCommit> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            // Locked (PostgreSQL) until the commit: a second committer waits here, then reads
            // `processed`.
            let status: Option<String> = sqlx::query_scalar(&format!(
                "SELECT status FROM session_images WHERE id = $1{FOR_UPDATE}"
            ))
            .bind(image_id)
            .fetch_optional(&mut *tx)
            .await?;
            match status.as_deref() {
                None => {
                    return Err(StoreError::NotFound {
                        entity: "Image",
                        id: image_id,
                    });
                }
                Some("processed") => return Ok(PhotoCommit::AlreadyProcessed),
                Some(_) => {}
            }
            sqlx::query(
                "UPDATE session_images SET status = 'processed', error = NULL,
                     preview_blob_key = COALESCE($1, preview_blob_key)
                 WHERE id = $2",
            )
            .bind(preview_key)
            .bind(image_id)
            .execute(&mut *tx)
            .await?;
            let now = Utc::now();
            let mut ids = Vec::with_capacity(crops.len());
            for crop in crops {
                let id = insert_crop(&mut tx, CropOwner::Image(image_id), crop, now).await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(PhotoCommit::Recorded(ids))
        })
    }

    /// Records the blob key of a photo's preview; `NotFound` when the photo is gone (the caller
    /// then deletes the blob it wrote).
    pub async fn set_image_preview(&self, image_id: i64, key: &str) -> Result<()> {
        with_pool!(self, pool => {
            let updated = sqlx::query("UPDATE session_images SET preview_blob_key = $1 WHERE id = $2")
                .bind(key)
                .bind(image_id)
                .execute(pool)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    entity: "Image",
                    id: image_id,
                });
            }
            Ok(())
        })
    }

    /// Marks a photo as failed with the reason, unless it was processed meanwhile.
    pub async fn mark_image_failed(&self, image_id: i64, error: &str) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE session_images SET status = 'failed', error = $1 WHERE id = $2 AND status <> 'processed'")
                .bind(error)
                .bind(image_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn get_crop(&self, scope: Scope, id: i64) -> Result<FaceCrop> {
        self.get_visible::<CropRow>(&CROPS, CROP_COLUMNS, scope, id)
            .await?
            .try_into()
    }

    /// Crops visible in `scope` that match `filter`, by photo then position.
    pub async fn list_crops(
        &self,
        scope: Scope,
        filter: &CropFilter,
        page: Page,
    ) -> Result<Paged<FaceCrop>> {
        let filter = Filter::default()
            .equal("i.session_id", filter.session)
            .equal("f.image_id", filter.image)
            .and_if(
                filter.unassigned,
                "f.student_id IS NULL AND f.not_a_student = FALSE",
            )
            .at_least("f.quality_size", filter.min_size);
        let page = self
            .list_visible::<CropRow>(
                &CROPS,
                CROP_COLUMNS,
                scope,
                filter,
                "f.image_id, f.id",
                page,
            )
            .await?;
        Ok(Paged {
            total: page.total,
            items: page
                .items
                .into_iter()
                .map(FaceCrop::try_from)
                .collect::<Result<_>>()?,
        })
    }

    /// The course a crop belongs to (for its embedding model).
    pub async fn course_of_crop(&self, crop_id: i64) -> Result<i64> {
        with_pool!(self, pool => {
            let sql = format!("SELECT c.id FROM {CROP_COURSE_FROM} WHERE f.id = $1");
            sqlx::query_scalar(&sql)
                .bind(crop_id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound {
                    entity: "Face crop",
                    id: crop_id,
                })
        })
    }

    pub async fn crop_embeddings(&self, crop_id: i64) -> Result<Vec<EmbeddingRecord>> {
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, EmbeddingRow>(
                "SELECT id, crop_id, model_name, vector, created_at FROM face_embeddings WHERE crop_id = $1 ORDER BY model_name",
            )
            .bind(crop_id)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(EmbeddingRecord::from).collect())
        })
    }

    /// Stores a crop's embedding for a model: keeps an existing one unless `replace`. One row per
    /// (crop, model) however many requests race; returns whether this call wrote it.
    pub async fn save_embedding(
        &self,
        crop_id: i64,
        model: &str,
        vector: &[f32],
        replace: bool,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let conflict = if replace {
                "DO UPDATE SET dimension = excluded.dimension, vector = excluded.vector, created_at = excluded.created_at"
            } else {
                "DO NOTHING"
            };
            let sql = format!(
                "INSERT INTO face_embeddings (crop_id, model_name, dimension, vector, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (crop_id, model_name) {conflict}"
            );
            let written = sqlx::query(&sql)
                .bind(crop_id)
                .bind(model)
                .bind(vector.len() as i64)
                .bind(vector_bytes(vector))
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected();
            Ok(written > 0)
        })
    }
}

/// What a crop was found in.
#[derive(Clone, Copy)]
pub(crate) enum CropOwner {
    Image(i64),
    Reference(i64),
}

per_backend! {
    /// Inserts one crop and its embedding (if any) inside the caller's transaction.
    pub(crate) async fn insert_crop(
        tx: &mut Conn,
        owner: CropOwner,
        crop: &NewCrop,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (image_id, reference_id) = match owner {
            CropOwner::Image(id) => (Some(id), None),
            CropOwner::Reference(id) => (None, Some(id)),
        };
        let [x, y, w, h] = crop.bbox;
        let landmarks = serde_json::to_string(&crop.landmarks).unwrap_or_else(|_| "[]".into());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO face_crops (image_id, reference_photo_id, bbox_x, bbox_y, bbox_w, bbox_h, landmarks, det_score,
                 quality_size, quality_blur, crop_blob_key, not_a_student, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE, $12) RETURNING id",
        )
        .bind(image_id)
        .bind(reference_id)
        .bind(x)
        .bind(y)
        .bind(w)
        .bind(h)
        .bind(landmarks)
        .bind(crop.score)
        .bind(crop.quality_size)
        .bind(crop.quality_blur)
        .bind(&crop.crop_blob_key)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if let Some((model, vector)) = &crop.embedding {
            sqlx::query(
                "INSERT INTO face_embeddings (crop_id, model_name, dimension, vector, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(model)
            .bind(vector.len() as i64)
            .bind(vector_bytes(vector))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        Ok(id)
    }
}
