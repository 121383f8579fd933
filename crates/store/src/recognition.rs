//! SQL for recognition: students' reference photos, the vectors assignment and clustering read,
//! the automatic decisions they write, and the manual corrections that always win over them.

use attendansee_vocabulary::{Reason, Source};
use chrono::{DateTime, Utc};

use crate::blob_refs::Owner;
use crate::courses::STUDENTS;
use crate::photos::{CropOwner, vector_from_bytes};
use crate::scope::Table;
use crate::{FaceCrop, NewCrop, Result, Scope, Store, StoreError};

/// A student's enrollment photo and the face taken from it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReferencePhoto {
    pub id: i64,
    pub student_id: i64,
    pub blob_key: String,
    pub sha256: String,
    pub width: i64,
    pub height: i64,
    pub created_at: DateTime<Utc>,
    /// The face used as the reference (the largest one of the photo).
    pub crop_id: Option<i64>,
    pub crop_blob_key: Option<String>,
}

/// A reference photo to record, with its face.
#[derive(Clone, Debug)]
pub struct NewReference {
    pub blob_key: String,
    pub sha256: String,
    pub width: i64,
    pub height: i64,
    pub crop: NewCrop,
}

/// A stored embedding with what it belongs to: a student (gallery), a cluster, or nothing.
#[derive(Clone, Debug)]
pub struct LabelledVector {
    pub crop_id: i64,
    /// Student id in a gallery, cluster id for clustered crops, the photo id for a session's crops.
    pub label: i64,
    pub vector: Vec<f32>,
}

/// A crop whose embedding is missing for a model but whose aligned image is stored.
#[derive(Clone, Debug)]
pub struct CropToEmbed {
    pub crop_id: i64,
    pub crop_blob_key: String,
}

/// What the automatic assignment decided about one crop.
#[derive(Clone, Debug)]
pub struct AutoDecision {
    pub crop_id: i64,
    pub student_id: Option<i64>,
    pub reason: Reason,
    pub best: Option<(i64, f32)>,
    pub runner_up: Option<(i64, f32)>,
}

/// A person's correction of a crop. Each one wins over automatic decisions until reset with
/// [`Correction::Automatic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    /// This face is that student.
    Assign(i64),
    /// This face is nobody enrolled (yet); it stays among the unknown faces and in clusters.
    Unassign,
    /// This face is not a student at all (a visitor, a poster): never suggested again.
    NotAStudent,
    /// Forget the manual decision; the next automatic assignment decides.
    Automatic,
}

const REFERENCE_COLUMNS: &str = "r.id, r.student_id, r.blob_key, r.sha256, r.width, r.height, r.created_at, \
     f.id AS crop_id, f.crop_blob_key";
const REFERENCES: Table = Table {
    entity: "Reference photo",
    from: "reference_photos r
     JOIN students st ON st.id = r.student_id
     JOIN courses c ON c.id = st.course_id
     LEFT JOIN face_crops f ON f.reference_photo_id = r.id",
    id: "r.id",
};

#[derive(sqlx::FromRow)]
struct VectorRow {
    crop_id: i64,
    label: i64,
    vector: Vec<u8>,
}

impl From<VectorRow> for LabelledVector {
    fn from(r: VectorRow) -> Self {
        LabelledVector {
            crop_id: r.crop_id,
            label: r.label,
            vector: vector_from_bytes(&r.vector),
        }
    }
}

impl Store {
    /// Records a reference photo and its face (with the face's embedding) in one transaction.
    /// The same photo twice for one student is a conflict.
    pub async fn add_reference_photo(
        &self,
        scope: Scope,
        student_id: i64,
        reference: &NewReference,
    ) -> Result<ReferencePhoto> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            require_visible(&mut tx, &STUDENTS, scope, student_id).await?;
            let now = Utc::now();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO reference_photos (student_id, blob_key, sha256, width, height, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(student_id)
            .bind(&reference.blob_key)
            .bind(&reference.sha256)
            .bind(reference.width)
            .bind(reference.height)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(crate::error::conflict_on_unique(|| {
                "this photo is already one of the student's reference photos".into()
            }))
            // The student was deleted by another request since the check.
            .map_err(crate::error::not_found_if_gone("Student", student_id))?;
            insert_crop(&mut tx, CropOwner::Reference(id), &reference.crop, now).await?;
            tx.commit().await?;
            self.get_reference_photo(scope, id).await
        })
    }

    pub async fn get_reference_photo(&self, scope: Scope, id: i64) -> Result<ReferencePhoto> {
        self.get_visible(&REFERENCES, REFERENCE_COLUMNS, scope, id)
            .await
    }

    /// A student's reference photos, oldest first.
    pub async fn list_reference_photos(
        &self,
        scope: Scope,
        student_id: i64,
    ) -> Result<Vec<ReferencePhoto>> {
        with_pool!(self, pool => {
            self.get_student(scope, student_id).await?;
            let sql = format!(
                "SELECT {REFERENCE_COLUMNS} FROM {} WHERE r.student_id = $1 ORDER BY r.id",
                REFERENCES.from
            );
            Ok(sqlx::query_as::<_, ReferencePhoto>(&sql)
                .bind(student_id)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Removes a reference photo with its face and embeddings; returns the blob keys only they
    /// referenced, for the caller to delete after the commit.
    pub async fn delete_reference_photo(&self, scope: Scope, id: i64) -> Result<Vec<String>> {
        self.delete_visible(scope, Owner::Reference(id), &REFERENCES)
            .await
    }

    /// The course's known faces for a model, labelled with their student: every reference
    /// face, and every session face a person assigned (by hand or by naming its cluster).
    pub async fn course_gallery(&self, course_id: i64, model: &str) -> Result<Vec<LabelledVector>> {
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, VectorRow>(
                "SELECT f.id AS crop_id, st.id AS label, e.vector
             FROM face_crops f
             JOIN reference_photos r ON r.id = f.reference_photo_id
             JOIN students st ON st.id = r.student_id
             JOIN face_embeddings e ON e.crop_id = f.id AND e.model_name = $2
             WHERE st.course_id = $1
             UNION ALL
             SELECT f.id, f.student_id, e.vector
             FROM face_crops f
             JOIN session_images i ON i.id = f.image_id
             JOIN sessions s ON s.id = i.session_id
             JOIN face_embeddings e ON e.crop_id = f.id AND e.model_name = $2
             WHERE s.course_id = $1 AND f.student_id IS NOT NULL
               AND f.assignment_source IN ($3, $4)
             ORDER BY 1",
            )
            .bind(course_id)
            .bind(model)
            .bind(Source::Manual.as_str())
            .bind(Source::Cluster.as_str())
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(LabelledVector::from).collect())
        })
    }

    /// Every face of the course (session and reference faces) with a `model` embedding,
    /// labelled with its student (0 when assigned to nobody): what similarity search runs over.
    pub async fn course_vectors(&self, course_id: i64, model: &str) -> Result<Vec<LabelledVector>> {
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, VectorRow>(
                "SELECT f.id AS crop_id, COALESCE(f.student_id, st.id, 0) AS label, e.vector
             FROM face_crops f
             JOIN face_embeddings e ON e.crop_id = f.id AND e.model_name = $2
             LEFT JOIN session_images i ON i.id = f.image_id
             LEFT JOIN sessions s ON s.id = i.session_id
             LEFT JOIN reference_photos r ON r.id = f.reference_photo_id
             LEFT JOIN students st ON st.id = r.student_id
             WHERE COALESCE(s.course_id, st.course_id) = $1
             ORDER BY f.id",
            )
            .bind(course_id)
            .bind(model)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(LabelledVector::from).collect())
        })
    }

    /// Faces of the course's reference photos (and of one session, if given) that have a stored
    /// crop but no embedding for `model` — e.g. after the course switched models.
    pub async fn crops_to_embed(
        &self,
        course_id: i64,
        session: Option<i64>,
        model: &str,
    ) -> Result<Vec<CropToEmbed>> {
        with_pool!(self, pool => {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT f.id, f.crop_blob_key
             FROM face_crops f
             LEFT JOIN session_images i ON i.id = f.image_id
             LEFT JOIN reference_photos r ON r.id = f.reference_photo_id
             LEFT JOIN students st ON st.id = r.student_id
             WHERE f.crop_blob_key IS NOT NULL
               AND (st.course_id = $1 OR (i.session_id = $2))
               AND NOT EXISTS (SELECT 1 FROM face_embeddings e WHERE e.crop_id = f.id AND e.model_name = $3)
             ORDER BY f.id",
            )
            .bind(course_id)
            .bind(session)
            .bind(model)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(crop_id, crop_blob_key)| CropToEmbed {
                    crop_id,
                    crop_blob_key,
                })
                .collect())
        })
    }

    /// The session's faces that automatic assignment may decide (no manual decision, not marked
    /// "not a student"), with their `model` embeddings, labelled with their photo.
    pub async fn assignable_crops(
        &self,
        session_id: i64,
        model: &str,
    ) -> Result<Vec<LabelledVector>> {
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, VectorRow>(
                "SELECT f.id AS crop_id, f.image_id AS label, e.vector
             FROM face_crops f
             JOIN session_images i ON i.id = f.image_id
             JOIN face_embeddings e ON e.crop_id = f.id AND e.model_name = $2
             WHERE i.session_id = $1 AND f.not_a_student = FALSE
               AND (f.assignment_source IS NULL OR f.assignment_source = $3)
             ORDER BY f.image_id, f.id",
            )
            .bind(session_id)
            .bind(model)
            .bind(Source::Auto.as_str())
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(LabelledVector::from).collect())
        })
    }

    /// (photo, student) for every face of the session a person assigned (by hand or by naming
    /// its cluster): automatic assignment must not give those students another face of the photo.
    pub async fn decided_students(&self, session_id: i64) -> Result<Vec<(i64, i64)>> {
        with_pool!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT f.image_id, f.student_id FROM face_crops f JOIN session_images i ON i.id = f.image_id
             WHERE i.session_id = $1 AND f.student_id IS NOT NULL
               AND f.assignment_source IN ($2, $3)",
            )
            .bind(session_id)
            .bind(Source::Manual.as_str())
            .bind(Source::Cluster.as_str())
            .fetch_all(pool)
            .await?)
        })
    }

    /// Writes automatic decisions about faces of course `course_id` in one transaction. A crop
    /// that got a manual decision or was marked "not a student" meanwhile is left alone: people
    /// win over the machine.
    pub async fn save_auto_decisions(
        &self,
        course_id: i64,
        model: &str,
        decisions: &[AutoDecision],
    ) -> Result<()> {
        retry_on_conflict!({
            with_pool!(self, pool => {
                let mut tx = begin_write(pool).await?;
                lock_course(&mut tx, course_id).await?;
                for d in decisions {
                    sqlx::query(
                        "UPDATE face_crops SET student_id = $1,
                     assignment_source = CASE WHEN $1 IS NULL THEN NULL ELSE $9 END,
                     confidence = CASE WHEN $1 IS NULL THEN NULL ELSE $2 END,
                     cluster_id = CASE WHEN $1 IS NULL THEN cluster_id ELSE NULL END,
                     match_model = $3, match_reason = $4,
                     best_student_id = $5, best_similarity = $2,
                     runner_up_student_id = $6, runner_up_similarity = $7
                 WHERE id = $8 AND not_a_student = FALSE
                   AND (assignment_source IS NULL OR assignment_source = $9)",
                    )
                    .bind(d.student_id)
                    .bind(d.best.map(|(_, s)| s))
                    .bind(model)
                    .bind(d.reason.as_str())
                    .bind(d.best.map(|(id, _)| id))
                    .bind(d.runner_up.map(|(id, _)| id))
                    .bind(d.runner_up.map(|(_, s)| s))
                    .bind(d.crop_id)
                    .bind(Source::Auto.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                prune_empty_clusters(&mut tx, course_id).await?;
                tx.commit().await?;
                Ok(())
            })
        })
    }

    /// Applies a person's correction to a session face. Assigning checks that the student is
    /// enrolled in the crop's course.
    pub async fn correct_crop(
        &self,
        scope: Scope,
        crop_id: i64,
        correction: Correction,
    ) -> Result<FaceCrop> {
        let crop = self.get_crop(scope, crop_id).await?;
        let Some(image_id) = crop.image_id else {
            return Err(StoreError::Invalid(format!(
                "face crop {crop_id} is a student's reference face; remove the reference photo instead"
            )));
        };
        retry_on_conflict!(with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let course_id = crop_course(&mut tx, image_id, crop_id).await?;
            lock_course(&mut tx, course_id).await?;
            save_undo(&mut tx, "f.id = $1", crop_id).await?;
            let sql = match correction {
                Correction::Assign(student) => {
                    // On the transaction's own connection: a second pool connection while holding
                    // the write lock could wait for a connection that waits for the lock.
                    let same_course: Option<i64> = sqlx::query_scalar(
                        "SELECT st.id FROM students st JOIN session_images i ON i.id = $2
                     JOIN sessions s ON s.id = i.session_id
                     WHERE st.id = $1 AND st.course_id = s.course_id",
                    )
                    .bind(student)
                    .bind(image_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if same_course.is_none() {
                        return Err(StoreError::Invalid(format!(
                            "student {student} is not enrolled in the course of face crop {crop_id}"
                        )));
                    }
                    "UPDATE face_crops SET student_id = $2, assignment_source = $3, confidence = NULL,
                         cluster_id = NULL, not_a_student = FALSE WHERE id = $1"
                }
                Correction::Unassign => {
                    "UPDATE face_crops SET student_id = NULL, assignment_source = $3, confidence = NULL,
                         not_a_student = FALSE WHERE id = $1 AND $2 IS NULL"
                }
                Correction::NotAStudent => {
                    "UPDATE face_crops SET student_id = NULL, assignment_source = $3, confidence = NULL,
                     cluster_id = NULL, not_a_student = TRUE, match_model = NULL, match_reason = NULL,
                     best_student_id = NULL, best_similarity = NULL,
                     runner_up_student_id = NULL, runner_up_similarity = NULL
                 WHERE id = $1 AND $2 IS NULL"
                }
                Correction::Automatic => {
                    "UPDATE face_crops SET student_id = NULL, assignment_source = $3, confidence = NULL,
                         not_a_student = FALSE WHERE id = $1 AND $2 IS NULL"
                }
            };
            let student = match correction {
                Correction::Assign(student) => Some(student),
                _ => None,
            };
            // Every correction but a reset is a person's decision; a reset leaves the face to the
            // next automatic assignment.
            let source = match correction {
                Correction::Automatic => None,
                _ => Some(Source::Manual),
            };
            sqlx::query(sql)
                .bind(crop_id)
                .bind(student)
                .bind(source.map(Source::as_str))
                .execute(&mut *tx)
                .await?;
            prune_empty_clusters(&mut tx, course_id).await?;
            tx.commit().await?;
            Ok(())
        }))?;
        self.get_crop(scope, crop_id).await
    }
}

/// The columns of a face that a person's correction changes, as [`Store::undo_crop`] puts them
/// back.
const UNDO_COLUMNS: &str = "student_id, assignment_source, confidence, cluster_id, not_a_student, \
     match_model, match_reason, best_student_id, best_similarity, runner_up_student_id, runner_up_similarity";

#[derive(sqlx::FromRow)]
struct UndoRow {
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
}

impl Store {
    /// Puts a session face back as it was before the last correction a person made (one level:
    /// the saved state is used up). [`StoreError::Conflict`] when there is nothing to undo.
    pub async fn undo_crop(&self, scope: Scope, crop_id: i64) -> Result<FaceCrop> {
        let crop = self.get_crop(scope, crop_id).await?;
        retry_on_conflict!(with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            // A write to the course's decisions: it takes the course's lock first, as they all do.
            if let Some(image_id) = crop.image_id {
                let course_id = crop_course(&mut tx, image_id, crop_id).await?;
                lock_course(&mut tx, course_id).await?;
            }
            let saved: Option<UndoRow> = sqlx::query_as(&format!(
                "SELECT {UNDO_COLUMNS} FROM crop_undo WHERE crop_id = $1 {FOR_UPDATE}"
            ))
            .bind(crop_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(u) = saved else {
                return Err(StoreError::Conflict(format!(
                    "face crop {crop_id} has no correction to undo (only the last one can be undone, once)"
                )));
            };
            sqlx::query(
                "UPDATE face_crops SET student_id = $2, assignment_source = $3, confidence = $4,
                     cluster_id = (SELECT id FROM clusters WHERE id = $5), not_a_student = $6, match_model = $7, match_reason = $8,
                     best_student_id = $9, best_similarity = $10, runner_up_student_id = $11,
                     runner_up_similarity = $12
                 WHERE id = $1",
            )
            .bind(crop_id)
            .bind(u.student_id)
            .bind(u.assignment_source)
            .bind(u.confidence)
            .bind(u.cluster_id)
            .bind(u.not_a_student)
            .bind(u.match_model)
            .bind(u.match_reason)
            .bind(u.best_student_id)
            .bind(u.best_similarity)
            .bind(u.runner_up_student_id)
            .bind(u.runner_up_similarity)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM crop_undo WHERE crop_id = $1")
                .bind(crop_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }))?;
        self.get_crop(scope, crop_id).await
    }
}

per_backend! {
    /// Keeps what the faces matching `filter` (over `face_crops f`, binding `$1` to `value`) are
    /// now, as the state an undo of the correction about to be made puts back.
    pub(crate) async fn save_undo(tx: &mut Conn, filter: &str, value: i64) -> Result<()> {
        sqlx::query(&format!(
            "DELETE FROM crop_undo WHERE crop_id IN (SELECT f.id FROM face_crops f WHERE {filter})"
        ))
        .bind(value)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO crop_undo (crop_id, {UNDO_COLUMNS})
             SELECT f.id, {cols} FROM face_crops f WHERE {filter}",
            cols = UNDO_COLUMNS.split(", ").map(|c| format!("f.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(value)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// The course of the session face `crop_id` (of photo `image_id`), read in the transaction.
    pub(crate) async fn crop_course(tx: &mut Conn, image_id: i64, crop_id: i64) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT s.course_id FROM session_images i JOIN sessions s ON s.id = i.session_id
             WHERE i.id = $1",
        )
        .bind(image_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound {
            entity: "Face crop",
            id: crop_id,
        })
    }

    /// Takes the course's lock for the rest of the transaction: the first thing every write to a
    /// course's decisions and clusters does (recognition, clustering, corrections, cluster edits).
    /// On PostgreSQL these writers would otherwise lock the course's faces, clusters and the
    /// cluster id counter in differing orders and deadlock; holding the course's row first, they
    /// take turns per course (other courses go on). On SQLite the write lock already serialises
    /// them. A course deleted meanwhile is `NotFound`.
    pub(crate) async fn lock_course(tx: &mut Conn, course_id: i64) -> Result<()> {
        let found: Option<i64> =
            sqlx::query_scalar(&format!("SELECT id FROM courses WHERE id = $1{FOR_UPDATE}"))
                .bind(course_id)
                .fetch_optional(&mut *tx)
                .await?;
        found.map(drop).ok_or(StoreError::NotFound {
            entity: "Course",
            id: course_id,
        })
    }

    /// The course's clusters left without members (their faces were assigned) are removed. Only
    /// that course's, whose lock the caller holds (see [`lock_course`]).
    pub(crate) async fn prune_empty_clusters(tx: &mut Conn, course_id: i64) -> Result<()> {
        sqlx::query(
            "DELETE FROM clusters WHERE course_id = $1
                 AND NOT EXISTS (SELECT 1 FROM face_crops f WHERE f.cluster_id = clusters.id)",
        )
        .bind(course_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
