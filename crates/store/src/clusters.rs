//! SQL for clusters of unknown faces: what clustering reads, the clusters it writes, and the
//! edits people make (merge, name). Clusters a person edited are locked: re-clustering keeps them.

use attendansee_vocabulary::{Reason, Source};
use chrono::{DateTime, Utc};

use crate::courses::STUDENTS;
use crate::photos::vector_from_bytes;
use crate::recognition::LabelledVector;
use crate::scope::Table;
use crate::{Result, Scope, Store, StoreError, Student, StudentFields};

/// A group of unknown faces of one course.
#[derive(Clone, Debug)]
pub struct ClusterRecord {
    pub id: i64,
    pub course_id: i64,
    pub model_name: String,
    /// The student the group's average face resembles most, when close enough to suggest.
    pub suggested: Option<(i64, f32)>,
    /// Edited by hand (merged): a full re-cluster keeps its members together.
    pub locked: bool,
    pub created_at: DateTime<Utc>,
    /// Member crop ids, ascending.
    pub members: Vec<i64>,
}

/// What clustering works on for one course and model.
#[derive(Clone, Debug, Default)]
pub struct ClusterInputs {
    /// Faces already in a cluster of this model; `label` is the cluster id.
    pub clustered: Vec<LabelledVector>,
    /// Faces nobody matched that are in no cluster; `label` is 0.
    pub unclustered: Vec<LabelledVector>,
    /// Ids of the locked clusters (a full re-cluster leaves them and their members alone).
    pub locked: Vec<i64>,
}

/// An unknown face with the cluster it is in, if any.
#[derive(sqlx::FromRow)]
struct InputRow {
    crop_id: i64,
    cluster: Option<i64>,
    locked: Option<bool>,
    vector: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ClusterRow {
    id: i64,
    course_id: i64,
    model_name: String,
    suggested_student_id: Option<i64>,
    suggested_similarity: Option<f64>,
    locked: bool,
    created_at: DateTime<Utc>,
    members: Option<String>,
}

impl From<ClusterRow> for ClusterRecord {
    fn from(r: ClusterRow) -> Self {
        let mut members: Vec<i64> = r
            .members
            .unwrap_or_default()
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect();
        members.sort_unstable();
        ClusterRecord {
            id: r.id,
            course_id: r.course_id,
            model_name: r.model_name,
            suggested: r
                .suggested_student_id
                .zip(r.suggested_similarity)
                .map(|(s, v)| (s, v as f32)),
            locked: r.locked,
            created_at: r.created_at,
            members,
        }
    }
}

const CLUSTER_COLUMNS: &str = "k.id, k.course_id, k.model_name, k.suggested_student_id, k.suggested_similarity,
     k.locked, k.created_at, (SELECT string_agg(CAST(f.id AS TEXT), ',') FROM face_crops f WHERE f.cluster_id = k.id) AS members";
const CLUSTERS: Table = Table {
    entity: "Cluster",
    from: "clusters k JOIN courses c ON c.id = k.course_id",
    id: "k.id",
};

impl Store {
    /// The unknown faces of a course (unassigned, not "not a student", with a `model` embedding),
    /// except those automatic assignment found too poor to recognise (`too_small`, `blurred`,
    /// `profile`): their vectors would link strangers into one cluster.
    pub async fn cluster_inputs(&self, course_id: i64, model: &str) -> Result<ClusterInputs> {
        with_pool!(self, pool => {
            let rows: Vec<InputRow> = sqlx::query_as(
                "SELECT f.id AS crop_id, k.id AS cluster, k.locked, e.vector
             FROM face_crops f
             JOIN session_images i ON i.id = f.image_id
             JOIN sessions s ON s.id = i.session_id
             JOIN face_embeddings e ON e.crop_id = f.id AND e.model_name = $2
             LEFT JOIN clusters k ON k.id = f.cluster_id AND k.model_name = $2
             WHERE s.course_id = $1 AND f.student_id IS NULL AND f.not_a_student = FALSE
               AND (f.match_reason IS NULL OR f.match_reason NOT IN ($3, $4, $5))
             ORDER BY f.id",
            )
            .bind(course_id)
            .bind(model)
            .bind(Reason::TooSmall.as_str())
            .bind(Reason::Blurred.as_str())
            .bind(Reason::Profile.as_str())
            .fetch_all(pool)
            .await?;
            let mut inputs = ClusterInputs::default();
            for InputRow {
                crop_id,
                cluster,
                locked,
                vector,
            } in rows
            {
                let vector = vector_from_bytes(&vector);
                match cluster {
                    Some(cluster) => {
                        if locked == Some(true) && !inputs.locked.contains(&cluster) {
                            inputs.locked.push(cluster);
                        }
                        inputs.clustered.push(LabelledVector {
                            crop_id,
                            label: cluster,
                            vector,
                        });
                    }
                    None => inputs.unclustered.push(LabelledVector {
                        crop_id,
                        label: 0,
                        vector,
                    }),
                }
            }
            Ok(inputs)
        })
    }

    /// Records an incremental clustering step: `joins` put faces into existing clusters,
    /// `new_clusters` are created. Returns the new clusters' ids.
    pub async fn add_to_clusters(
        &self,
        course_id: i64,
        model: &str,
        joins: &[(i64, i64)],
        new_clusters: &[Vec<i64>],
    ) -> Result<Vec<i64>> {
        retry_on_conflict!({
            with_pool!(self, pool => {
                let mut tx = begin_write(pool).await?;
                lock_course(&mut tx, course_id).await?;
                for (crop, cluster) in joins {
                    set_cluster(&mut tx, course_id, *crop, Some(*cluster)).await?;
                }
                let ids = insert_clusters(&mut tx, course_id, model, new_clusters).await?;
                tx.commit().await?;
                Ok(ids)
            })
        })
    }

    /// A full re-cluster: the course's unlocked clusters of `model` are replaced by `clusters`
    /// (locked ones and their members stay). Returns the new clusters' ids.
    pub async fn replace_clusters(
        &self,
        course_id: i64,
        model: &str,
        clusters: &[Vec<i64>],
    ) -> Result<Vec<i64>> {
        retry_on_conflict!(with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            lock_course(&mut tx, course_id).await?;
            sqlx::query(
                "UPDATE face_crops SET cluster_id = NULL WHERE cluster_id IN
                     (SELECT id FROM clusters WHERE course_id = $1 AND model_name = $2 AND locked = FALSE)",
            )
            .bind(course_id)
            .bind(model)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM clusters WHERE course_id = $1 AND model_name = $2 AND locked = FALSE",
            )
            .bind(course_id)
            .bind(model)
            .execute(&mut *tx)
            .await?;
            let ids = insert_clusters(&mut tx, course_id, model, clusters).await?;
            tx.commit().await?;
            Ok(ids)
        }))
    }

    /// Stores each cluster's suggested student (or none), for clusters of course `course_id`.
    pub async fn set_cluster_suggestions(
        &self,
        course_id: i64,
        suggestions: &[(i64, Option<(i64, f32)>)],
    ) -> Result<()> {
        retry_on_conflict!(with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            lock_course(&mut tx, course_id).await?;
            for (cluster, suggestion) in suggestions {
                sqlx::query("UPDATE clusters SET suggested_student_id = $1, suggested_similarity = $2 WHERE id = $3 AND course_id = $4")
                    .bind(suggestion.map(|(s, _)| s))
                    .bind(suggestion.map(|(_, v)| v))
                    .bind(cluster)
                    .bind(course_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }))
    }

    /// A course's clusters, largest first.
    pub async fn list_clusters(&self, scope: Scope, course_id: i64) -> Result<Vec<ClusterRecord>> {
        with_pool!(self, pool => {
            self.get_course(scope, course_id).await?;
            let sql = format!(
                "SELECT {CLUSTER_COLUMNS} FROM {} WHERE k.course_id = $1",
                CLUSTERS.from
            );
            let rows = sqlx::query_as::<_, ClusterRow>(&sql)
                .bind(course_id)
                .fetch_all(pool)
                .await?;
            let mut clusters: Vec<ClusterRecord> = rows.into_iter().map(ClusterRecord::from).collect();
            clusters.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then(a.id.cmp(&b.id)));
            Ok(clusters)
        })
    }

    pub async fn get_cluster(&self, scope: Scope, id: i64) -> Result<ClusterRecord> {
        self.get_visible::<ClusterRow>(&CLUSTERS, CLUSTER_COLUMNS, scope, id)
            .await
            .map(ClusterRecord::from)
    }

    /// Merges clusters of one course into the first of `ids`, which becomes locked.
    pub async fn merge_clusters(&self, scope: Scope, ids: &[i64]) -> Result<ClusterRecord> {
        let Some((&into, others)) = ids.split_first() else {
            return Err(StoreError::Invalid(
                "name at least two clusters to merge".into(),
            ));
        };
        let target = self.get_cluster(scope, into).await?;
        for &id in others {
            let other = self.get_cluster(scope, id).await?;
            if other.course_id != target.course_id || other.model_name != target.model_name {
                return Err(StoreError::Invalid(format!(
                    "clusters {into} and {id} belong to different courses or models"
                )));
            }
        }
        retry_on_conflict!({
            with_pool!(self, pool => {
                let mut tx = begin_write(pool).await?;
                lock_course(&mut tx, target.course_id).await?;
                // Both clusters must still exist in the course checked above when the write happens.
                for &id in others {
                    sqlx::query(
                        "UPDATE face_crops SET cluster_id = $1 WHERE cluster_id = $2
                 AND EXISTS (SELECT 1 FROM clusters WHERE id = $2 AND course_id = $3)
                 AND EXISTS (SELECT 1 FROM clusters WHERE id = $1 AND course_id = $3)",
                    )
                    .bind(into)
                    .bind(id)
                    .bind(target.course_id)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query("UPDATE clusters SET locked = TRUE WHERE id = $1")
                    .bind(into)
                    .execute(&mut *tx)
                    .await?;
                prune_empty_clusters(&mut tx, target.course_id).await?;
                tx.commit().await?;
                Ok(())
            })
        })?;
        self.get_cluster(scope, into).await
    }

    /// Names a cluster: every member becomes the student's (source `cluster`, which wins over
    /// automatic decisions like a manual one) and the cluster, now empty, is removed.
    /// Returns how many faces were assigned.
    pub async fn name_cluster(&self, scope: Scope, id: i64, student_id: i64) -> Result<u64> {
        retry_on_conflict!({
            with_pool!(self, pool => {
                let mut tx = begin_write(pool).await?;
                let course_id = cluster_course(&mut tx, scope, id).await?;
                let (student_course,): (i64,) =
                    fetch_visible(&mut *tx, &STUDENTS, "s.course_id", scope, student_id).await?;
                if student_course != course_id {
                    return Err(StoreError::Invalid(format!(
                        "student {student_id} is not enrolled in the course of cluster {id}"
                    )));
                }
                let assigned = assign_cluster(&mut tx, course_id, id, student_id).await?;
                tx.commit().await?;
                Ok(assigned)
            })
        })
    }

    /// Enrols a new student in the course of cluster `id` and names the cluster after them (as
    /// [`Store::name_cluster`] does), in one transaction: when naming fails, nobody was enrolled.
    /// Returns the student and how many faces were assigned.
    pub async fn name_cluster_as_new_student(
        &self,
        scope: Scope,
        id: i64,
        fields: &StudentFields,
    ) -> Result<(Student, u64)> {
        retry_on_conflict!({
            with_pool!(self, pool => {
                let mut tx = begin_write(pool).await?;
                let course_id = cluster_course(&mut tx, scope, id).await?;
                let student = insert_student(&mut tx, course_id, fields).await?;
                let assigned = assign_cluster(&mut tx, course_id, id, student.id).await?;
                tx.commit().await?;
                Ok((student, assigned))
            })
        })
    }
}

per_backend! {
    /// The course of cluster `id`, if `scope` sees the cluster, whose lock (see [`lock_course`])
    /// the transaction then holds.
    pub(crate) async fn cluster_course(tx: &mut Conn, scope: Scope, id: i64) -> Result<i64> {
        let (course_id,): (i64,) = fetch_visible(&mut *tx, &CLUSTERS, "k.course_id", scope, id).await?;
        lock_course(&mut *tx, course_id).await?;
        Ok(course_id)
    }

    /// Gives every member of cluster `id` to the student and removes the emptied cluster. The
    /// caller has checked, in the same transaction, that both are of course `course_id`.
    pub(crate) async fn assign_cluster(
        tx: &mut Conn,
        course_id: i64,
        id: i64,
        student_id: i64,
    ) -> Result<u64> {
        // Each face's naming can be undone on its own (`Store::undo_crop`).
        save_undo(&mut *tx, "f.cluster_id = $1", id).await?;
        let assigned = sqlx::query(
            "UPDATE face_crops SET student_id = $1, assignment_source = $3, confidence = NULL,
                 cluster_id = NULL
             WHERE cluster_id = $2",
        )
        .bind(student_id)
        .bind(id)
        .bind(Source::Cluster.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        prune_empty_clusters(&mut *tx, course_id).await?;
        Ok(assigned)
    }

    pub(crate) async fn set_cluster(
        tx: &mut Conn,
        course_id: i64,
        crop: i64,
        cluster: Option<i64>,
    ) -> Result<()> {
        // Only a face that is still unknown joins, only a cluster of the course that still exists,
        // and never out of a cluster a person merged meanwhile: clustering works from a snapshot
        // read earlier.
        sqlx::query(
            "UPDATE face_crops SET cluster_id = $1 WHERE id = $2 AND student_id IS NULL AND not_a_student = FALSE
                 AND EXISTS (SELECT 1 FROM clusters WHERE id = $1 AND course_id = $3)
                 AND (cluster_id IS NULL OR cluster_id NOT IN (SELECT id FROM clusters WHERE locked = TRUE))",
        )
        .bind(cluster)
        .bind(crop)
        .bind(course_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    pub(crate) async fn insert_clusters(
        tx: &mut Conn,
        course_id: i64,
        model: &str,
        clusters: &[Vec<i64>],
    ) -> Result<Vec<i64>> {
        let now = Utc::now();
        let mut ids = Vec::with_capacity(clusters.len());
        for members in clusters {
            // A fresh id, never one a deleted cluster had (migration 0005).
            let id: i64 = sqlx::query_scalar(&format!(
                "UPDATE id_counters SET value = {GREATEST}(value, (SELECT COALESCE(MAX(id), 0) FROM clusters)) + 1
                 WHERE name = 'clusters' RETURNING value",
            ))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO clusters (id, course_id, model_name, locked, created_at) VALUES ($1, $2, $3, FALSE, $4)",
            )
            .bind(id)
            .bind(course_id)
            .bind(model)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for crop in members {
                set_cluster(&mut *tx, course_id, *crop, Some(id)).await?;
            }
            ids.push(id);
        }
        prune_empty_clusters(&mut *tx, course_id).await?;
        Ok(ids)
    }
}
