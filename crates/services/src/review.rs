//! Reviewing what recognition decided: a person's corrections of single faces, the faces most
//! like one, and the clusters of unknown faces — re-built, named and merged.

use attendansee_recognition::VectorIndex;
use attendansee_store::{ClusterRecord, Correction, FaceCrop, Scope, Student, StudentFields};

use crate::courses::{EXTERNAL_ID_MAX, NAME_MAX};
use crate::recognition::{AssignSummary, ClusterSummary, assign_session, cluster_course, index_of};
use crate::validate::{optional_text, text};
use crate::{ServiceError, ServiceResult, Services};

/// Who a cluster is: a student already enrolled, or a new one enrolled from the cluster (name
/// and external id as given; checked like a new student's, under `new_student.…`).
#[derive(Clone, Debug)]
pub enum ClusterName {
    Existing(i64),
    New {
        name: String,
        external_id: Option<String>,
    },
}

/// A face like another, with how alike.
#[derive(Clone, Debug)]
pub struct SimilarFace {
    pub crop: FaceCrop,
    pub similarity: f32,
}

impl Services {
    /// Runs automatic assignment for the session again (after enrolling new references, say),
    /// then clusters the course's unknown faces.
    pub async fn reassign_session(
        &self,
        scope: Scope,
        session_id: i64,
    ) -> ServiceResult<(AssignSummary, ClusterSummary)> {
        let session = self.store.get_session(scope, session_id).await?;
        let course = self.store.get_course(scope, session.course_id).await?;
        let assignment = assign_session(self, &course, session_id).await?;
        let clustering = cluster_course(self, &course, false).await?;
        Ok((assignment, clustering))
    }

    /// A person's decision about a face. Forgetting it (`Automatic`) lets the automatic
    /// assignment decide again at once, for the face's session.
    pub async fn correct_face(
        &self,
        scope: Scope,
        crop_id: i64,
        correction: Correction,
    ) -> ServiceResult<FaceCrop> {
        let crop = self.store.correct_crop(scope, crop_id, correction).await?;
        if correction != Correction::Automatic {
            return Ok(crop);
        }
        if let Some(image) = crop.image_id {
            let image = self.store.get_session_image(scope, image).await?;
            let session = self.store.get_session(scope, image.session_id).await?;
            let course = self.store.get_course(scope, session.course_id).await?;
            assign_session(self, &course, session.id).await?;
        }
        Ok(self.store.get_crop(scope, crop_id).await?)
    }

    /// Undoes the last correction a person made about a face (assign, not a student, reset, or
    /// naming its group): the face is put back exactly as it was before it, once.
    pub async fn undo_face_correction(
        &self,
        scope: Scope,
        crop_id: i64,
    ) -> ServiceResult<FaceCrop> {
        Ok(self.store.undo_crop(scope, crop_id).await?)
    }

    /// The `k` faces of the same course most similar to this one (cosine similarity of the
    /// course model's embeddings), most similar first.
    pub async fn similar_faces(
        &self,
        scope: Scope,
        crop_id: i64,
        k: usize,
    ) -> ServiceResult<Vec<SimilarFace>> {
        let crop = self.store.get_crop(scope, crop_id).await?;
        let course_id = self.store.course_of_crop(crop_id).await?;
        let course = self.store.get_course(scope, course_id).await?;
        let model = self.course_model(&course);
        let Some(query) = self
            .store
            .crop_embeddings(crop.id)
            .await?
            .into_iter()
            .find(|e| e.model_name == model)
        else {
            return Err(ServiceError::validation(format!(
                "Face crop {crop_id} has no '{model}' embedding yet; generate it first"
            )));
        };
        let index = index_of(&self.store.course_vectors(course_id, &model).await?)?;
        let neighbours: Vec<_> = index
            .nearest(&query.vector, k + 1)
            .into_iter()
            .filter(|n| n.id != crop_id)
            .take(k)
            .collect();
        let mut out = Vec::with_capacity(neighbours.len());
        for n in neighbours {
            out.push(SimilarFace {
                crop: self.store.get_crop(scope, n.id).await?,
                similarity: n.similarity,
            });
        }
        Ok(out)
    }

    /// A course's clusters of unknown faces, largest first.
    pub async fn list_clusters(
        &self,
        scope: Scope,
        course_id: i64,
    ) -> ServiceResult<Vec<ClusterRecord>> {
        Ok(self.store.list_clusters(scope, course_id).await?)
    }

    pub async fn get_cluster(&self, scope: Scope, id: i64) -> ServiceResult<ClusterRecord> {
        Ok(self.store.get_cluster(scope, id).await?)
    }

    /// Re-clusters all of the course's unknown faces from scratch; clusters edited by hand are
    /// kept. Returns the summary and the clusters afterwards.
    pub async fn recluster(
        &self,
        scope: Scope,
        course_id: i64,
    ) -> ServiceResult<(ClusterSummary, Vec<ClusterRecord>)> {
        let course = self.store.get_course(scope, course_id).await?;
        let summary = cluster_course(self, &course, true).await?;
        Ok((summary, self.store.list_clusters(scope, course_id).await?))
    }

    /// Names a cluster: all its faces are assigned to the student, which also makes them part of
    /// the student's known faces. A new student is enrolled in the same transaction, so a naming
    /// that fails leaves no student behind. Returns the student and how many faces were assigned.
    pub async fn name_cluster(
        &self,
        scope: Scope,
        cluster_id: i64,
        name: ClusterName,
    ) -> ServiceResult<(Student, u64)> {
        match name {
            ClusterName::Existing(student_id) => {
                let student = self.store.get_student(scope, student_id).await?;
                let assigned = self
                    .store
                    .name_cluster(scope, cluster_id, student.id)
                    .await?;
                Ok((student, assigned))
            }
            ClusterName::New { name, external_id } => {
                let fields = StudentFields {
                    name: text("new_student.name", &name, NAME_MAX)?,
                    external_id: optional_text(
                        "new_student.external_id",
                        external_id.as_deref(),
                        EXTERNAL_ID_MAX,
                    )?,
                };
                Ok(self
                    .store
                    .name_cluster_as_new_student(scope, cluster_id, &fields)
                    .await?)
            }
        }
    }

    /// Merges clusters of one course into the first; the result is kept by later re-clustering.
    pub async fn merge_clusters(
        &self,
        scope: Scope,
        cluster_ids: &[i64],
    ) -> ServiceResult<ClusterRecord> {
        if cluster_ids.len() < 2 {
            return Err(ServiceError::invalid_field(
                "cluster_ids",
                "name at least two clusters to merge",
            ));
        }
        // Naming a cluster twice would merge it into itself: the store would delete the cluster
        // that is also the merge target.
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = cluster_ids.iter().find(|id| !seen.insert(**id)) {
            return Err(ServiceError::invalid_field(
                "cluster_ids",
                format!("cluster {twice} is named more than once"),
            ));
        }
        Ok(self.store.merge_clusters(scope, cluster_ids).await?)
    }
}
