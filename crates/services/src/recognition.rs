//! Recognition as the service runs it: gathers a course's vectors from the store, runs the pure
//! algorithms of `attendansee-recognition` (assignment, clustering) and writes their decisions
//! back. Used by the processing job and by the operations that re-run a step on request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use attendansee_pool::Lane;
use attendansee_recognition::{
    BruteForceIndex, Decision, Reason, VectorIndex, assign_photo, dbscan, incremental,
};
use attendansee_store::{AutoDecision, Course, CropFilter, LabelledVector, Page, Scope};

use crate::models::Matching;
use crate::{ServiceError, ServiceResult, Services};

/// Crops sent to a worker per embedding job.
const EMBED_BATCH: usize = 16;

/// What an assignment run decided, counted by outcome.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
// Counts added later read as 0 from the stats of jobs that ran before.
#[serde(default)]
pub struct AssignSummary {
    /// Faces the run looked at (those without a manual decision).
    pub faces: usize,
    pub matched: usize,
    pub below_threshold: usize,
    pub ambiguous: usize,
    pub conflict: usize,
    pub no_students: usize,
    /// Faces too poor to recognise, never assigned automatically.
    pub too_small: usize,
    pub blurred: usize,
    pub profile: usize,
}

impl AssignSummary {
    fn count(&mut self, reason: Reason) {
        self.faces += 1;
        match reason {
            Reason::Matched => self.matched += 1,
            Reason::BelowThreshold => self.below_threshold += 1,
            Reason::Ambiguous => self.ambiguous += 1,
            Reason::Conflict => self.conflict += 1,
            Reason::NoStudents => self.no_students += 1,
            Reason::TooSmall => self.too_small += 1,
            Reason::Blurred => self.blurred += 1,
            Reason::Profile => self.profile += 1,
        }
    }
}

/// What a clustering run left behind.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Clusters of the course after the run.
    pub clusters: usize,
    /// Unknown faces in a cluster, and in none.
    pub clustered_faces: usize,
    pub unclustered_faces: usize,
}

/// Embeds the stored crops that have no `model` embedding yet: the course's reference faces and,
/// if given, one session's faces (needed after a course changes model).
pub async fn embed_missing(
    services: &Services,
    course_id: i64,
    session: Option<i64>,
    model: &str,
    lane: Lane,
) -> ServiceResult<usize> {
    let missing = services
        .store
        .crops_to_embed(course_id, session, model)
        .await?;
    for chunk in missing.chunks(EMBED_BATCH) {
        let mut crops = Vec::with_capacity(chunk.len());
        for crop in chunk {
            crops.push(services.blobs.get(&crop.crop_blob_key).await?.to_vec());
        }
        let embeddings = services.embed_crops(crops, model, lane).await?;
        for (crop, vector) in chunk.iter().zip(embeddings) {
            services
                .store
                .save_embedding(crop.crop_id, model, &vector, false)
                .await?;
        }
    }
    Ok(missing.len())
}

/// An index over labelled vectors (all of one model, so of one dimension).
pub fn index_of(vectors: &[LabelledVector]) -> ServiceResult<BruteForceIndex> {
    let dimension = vectors.first().map_or(0, |v| v.vector.len());
    let mut index = BruteForceIndex::new(dimension);
    for v in vectors {
        index
            .push(v.crop_id, v.label, &v.vector)
            .map_err(ServiceError::internal)?;
    }
    Ok(index)
}

/// Assigns the session's faces that have no manual decision to the course's students: per
/// photo, optimally, above the threshold and with the margin. Every decision is stored with its
/// best and runner-up candidates so it can be explained.
pub async fn assign_session(
    services: &Services,
    course: &Course,
    session_id: i64,
) -> ServiceResult<AssignSummary> {
    let (model, matching) = services.course_matching(course);
    embed_missing(
        services,
        course.id,
        Some(session_id),
        &model,
        Lane::batch(course.owner_id),
    )
    .await?;
    let gallery = index_of(&services.store.course_gallery(course.id, &model).await?)?;
    let crops = services.store.assignable_crops(session_id, &model).await?;
    // Faces too poor to recognise take no part in the photo's assignment (they could take a
    // student from a good face); they are decided on their own, with their candidates shown.
    let poor = poor_quality_faces(services, session_id).await?;
    let (poor_crops, crops): (Vec<LabelledVector>, Vec<LabelledVector>) = crops
        .into_iter()
        .partition(|c| poor.contains_key(&c.crop_id));
    let photo_of: BTreeMap<i64, i64> = crops.iter().map(|c| (c.crop_id, c.label)).collect();
    let decided: std::collections::BTreeSet<(i64, i64)> = services
        .store
        .decided_students(session_id)
        .await?
        .into_iter()
        .collect();
    let thresholds = matching.thresholds();
    let decisions = tokio::task::spawn_blocking(move || {
        let mut decisions: Vec<Decision> = Vec::with_capacity(crops.len());
        for photo in crops.chunk_by(|a, b| a.label == b.label) {
            let faces: Vec<(i64, &[f32])> = photo
                .iter()
                .map(|c| (c.crop_id, c.vector.as_slice()))
                .collect();
            decisions.extend(assign_photo(&faces, &gallery, thresholds));
        }
        for crop in poor_crops {
            let mut candidates = gallery.best_labels(&crop.vector, 2).into_iter();
            decisions.push(Decision {
                crop: crop.crop_id,
                student: None,
                best: candidates.next(),
                runner_up: candidates.next(),
                reason: poor[&crop.crop_id],
            });
        }
        decisions
    })
    .await
    .map_err(ServiceError::internal)?;
    let mut summary = AssignSummary::default();
    let records: Vec<AutoDecision> = decisions
        .into_iter()
        .map(|mut d| {
            // A student a person put in this photo is taken: the machine never adds a second.
            if let (Some(student), Some(&photo)) = (d.student, photo_of.get(&d.crop))
                && decided.contains(&(photo, student))
            {
                d.student = None;
                d.reason = Reason::Conflict;
            }
            summary.count(d.reason);
            AutoDecision {
                crop_id: d.crop,
                student_id: d.student,
                reason: d.reason,
                best: d.best.map(|c| (c.student, c.similarity)),
                runner_up: d.runner_up.map(|c| (c.student, c.similarity)),
            }
        })
        .collect();
    services
        .store
        .save_auto_decisions(course.id, &model, &records)
        .await?;
    Ok(summary)
}

/// The session's faces too poor to recognise, with why.
async fn poor_quality_faces(
    services: &Services,
    session_id: i64,
) -> ServiceResult<BTreeMap<i64, Reason>> {
    let filter = CropFilter {
        session: Some(session_id),
        ..Default::default()
    };
    let crops = services
        .store
        .list_crops(Scope::All, &filter, Page::ALL)
        .await?;
    Ok(crops
        .items
        .iter()
        .filter_map(|c| Some((c.id, crate::faces::crop_quality(c).1?)))
        .collect())
}

/// Clusters the course's unknown faces. Incremental (`full == false`): new unknown faces join
/// the nearest existing cluster or form new ones; a full run rebuilds every cluster nobody
/// edited. Then each cluster's suggested student is recomputed.
pub async fn cluster_course(
    services: &Services,
    course: &Course,
    full: bool,
) -> ServiceResult<ClusterSummary> {
    let (model, matching) = services.course_matching(course);
    let inputs = services.store.cluster_inputs(course.id, &model).await?;
    let params = matching.cluster_params();
    if full {
        // Locked clusters (edited by hand) keep their members; the rest is clustered afresh.
        let free: Vec<LabelledVector> = inputs
            .clustered
            .iter()
            .filter(|v| !inputs.locked.contains(&v.label))
            .chain(&inputs.unclustered)
            .cloned()
            .collect();
        let index = index_of(&free)?;
        let groups =
            tokio::task::spawn_blocking(move || groups_of(&index, &dbscan(&index, params)))
                .await
                .map_err(ServiceError::internal)?;
        services
            .store
            .replace_clusters(course.id, &model, &groups)
            .await?;
    } else if !inputs.unclustered.is_empty() {
        let clustered = index_of(&inputs.clustered)?;
        let unclustered = index_of(&inputs.unclustered)?;
        let step =
            tokio::task::spawn_blocking(move || incremental(&clustered, &unclustered, params))
                .await
                .map_err(ServiceError::internal)?;
        services
            .store
            .add_to_clusters(course.id, &model, &step.joins, &step.new_clusters)
            .await?;
    }
    suggest_students(services, course, &model, matching).await
}

/// Point ids grouped by the cluster number `dbscan` gave them (noise left out).
fn groups_of(index: &BruteForceIndex, clusters: &[Option<usize>]) -> Vec<Vec<i64>> {
    let mut groups: Vec<Vec<i64>> = Vec::new();
    for (&id, cluster) in index.ids().iter().zip(clusters) {
        if let Some(k) = *cluster {
            if groups.len() <= k {
                groups.resize(k + 1, Vec::new());
            }
            groups[k].push(id);
        }
    }
    groups
}

/// Each cluster's suggestion: the student nearest to the cluster's average face, when at least
/// the model's suggestion similarity. A suggestion is never applied without a person.
async fn suggest_students(
    services: &Services,
    course: &Course,
    model: &str,
    matching: Matching,
) -> ServiceResult<ClusterSummary> {
    let inputs = services.store.cluster_inputs(course.id, model).await?;
    let gallery = index_of(&services.store.course_gallery(course.id, model).await?)?;
    let mut sums: BTreeMap<i64, Vec<f32>> = BTreeMap::new();
    for member in &inputs.clustered {
        let sum = sums
            .entry(member.label)
            .or_insert_with(|| vec![0.0; member.vector.len()]);
        for (s, v) in sum.iter_mut().zip(&member.vector) {
            *s += v;
        }
    }
    let suggestions: Vec<(i64, Option<(i64, f32)>)> = sums
        .iter()
        .map(|(&cluster, sum)| {
            let norm = sum
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt()
                .max(f32::EPSILON);
            let centroid: Vec<f32> = sum.iter().map(|v| v / norm).collect();
            let best = gallery
                .best_labels(&centroid, 1)
                .into_iter()
                .next()
                .filter(|c| c.similarity >= matching.suggest)
                .map(|c| (c.student, c.similarity));
            (cluster, best)
        })
        .collect();
    services
        .store
        .set_cluster_suggestions(course.id, &suggestions)
        .await?;
    Ok(ClusterSummary {
        clusters: sums.len(),
        clustered_faces: inputs.clustered.len(),
        unclustered_faces: inputs.unclustered.len(),
    })
}
