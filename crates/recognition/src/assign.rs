//! Automatic assignment of the faces of one photo to students, with the reason for each outcome.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::hungarian::max_weight_assignment;
use crate::index::{Candidate, VectorIndex};

/// How sure a match must be: `similarity` is the least acceptable cosine similarity, `margin`
/// the least lead the best student must have over the runner-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub similarity: f32,
    pub margin: f32,
}

/// Why a decision was made (shared with the store and the API, which spell it the same way).
pub use attendansee_vocabulary::Reason;

/// The outcome for one face crop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub crop: i64,
    pub student: Option<i64>,
    pub best: Option<Candidate>,
    pub runner_up: Option<Candidate>,
    pub reason: Reason,
}

/// Candidates fetched per face in small photos. Any count of at least the number of faces
/// yields the same assignment (see [`assign_photo`]), so the floor costs only a little sorting.
const MIN_CANDIDATES: usize = 32;

/// Assigns the crops of one photo to students of `gallery` (labels are student ids; a student's
/// score for a crop is its best vector's similarity). Returns one [`Decision`] per crop, in
/// order.
///
/// A student is given to at most one face of the photo, chosen to maximise the total similarity
/// above threshold (not greedily). A face keeps its student only if that is its best student
/// and the best leads the runner-up by `t.margin`.
pub fn assign_photo(
    crops: &[(i64, &[f32])],
    gallery: &dyn VectorIndex,
    t: Thresholds,
) -> Vec<Decision> {
    if gallery.is_empty() {
        return crops
            .iter()
            .map(|&(crop, _)| Decision {
                crop,
                student: None,
                best: None,
                runner_up: None,
                reason: Reason::NoStudents,
            })
            .collect();
    }

    // A face never needs more options than there are faces: the others hold at most
    // crops - 1 students, so one of its top `crops` is always free for it.
    let per_crop = crops.len().max(MIN_CANDIDATES);
    let candidates: Vec<Vec<Candidate>> = crops
        .iter()
        .map(|(_, vector)| gallery.best_labels(vector, per_crop))
        .collect();

    let mut columns: Vec<i64> = Vec::new();
    let mut column_of: HashMap<i64, usize> = HashMap::new();
    for c in candidates.iter().flatten() {
        if c.similarity >= t.similarity && !column_of.contains_key(&c.student) {
            column_of.insert(c.student, columns.len());
            columns.push(c.student);
        }
    }
    let weights: Vec<Vec<f64>> = candidates
        .iter()
        .map(|list| {
            let mut row = vec![0.0; columns.len()];
            for c in list.iter().filter(|c| c.similarity >= t.similarity) {
                if let Some(&col) = column_of.get(&c.student) {
                    // The epsilon keeps a pair exactly at threshold allowed (weight > 0).
                    row[col] = f64::from(c.similarity) - f64::from(t.similarity) + 1e-6;
                }
            }
            row
        })
        .collect();
    let matched = max_weight_assignment(&weights);

    crops
        .iter()
        .zip(&candidates)
        .zip(matched)
        .map(|((&(crop, _), list), column)| {
            let best = list.first().copied();
            let runner_up = list.get(1).copied();
            let given = column.and_then(|col| columns.get(col).copied());
            let (student, reason) = decide(best, runner_up, given, t);
            Decision {
                crop,
                student,
                best,
                runner_up,
                reason,
            }
        })
        .collect()
}

/// The verdict for one crop given the student the solver gave it, if any.
fn decide(
    best: Option<Candidate>,
    runner_up: Option<Candidate>,
    given: Option<i64>,
    t: Thresholds,
) -> (Option<i64>, Reason) {
    let Some(best) = best else {
        return (None, Reason::NoStudents);
    };
    match given {
        Some(student) if student != best.student => (None, Reason::Conflict),
        Some(student) => {
            let clear = runner_up.is_none_or(|r| best.similarity - r.similarity >= t.margin);
            if clear {
                (Some(student), Reason::Matched)
            } else {
                (None, Reason::Ambiguous)
            }
        }
        None if best.similarity >= t.similarity => (None, Reason::Conflict),
        None => (None, Reason::BelowThreshold),
    }
}

impl Decision {
    /// One human sentence explaining the decision with its numbers.
    pub fn explain(&self, t: Thresholds) -> String {
        let runner_up = |r: Option<Candidate>| match r {
            Some(r) => format!("runner-up student {} at {:.2}", r.student, r.similarity),
            None => "no runner-up".to_string(),
        };
        match (self.reason, self.best) {
            (Reason::TooSmall | Reason::Blurred | Reason::Profile, best) => {
                let what = match self.reason {
                    Reason::TooSmall => "too small",
                    Reason::Blurred => "too blurred",
                    _ => "turned too far sideways",
                };
                let likely = best.map_or(String::new(), |b| {
                    format!(" (best match student {} at {:.2})", b.student, b.similarity)
                });
                format!(
                    "the face is {what} to recognise reliably: never assigned automatically{likely}"
                )
            }
            (Reason::NoStudents, _) | (_, None) => {
                "no student has a reference face this face can be compared with".to_string()
            }
            (Reason::Matched, Some(best)) => {
                let lead = match self.runner_up {
                    Some(r) => format!(
                        "{}, margin {:.2} ≥ {:.2}",
                        runner_up(Some(r)),
                        best.similarity - r.similarity,
                        t.margin
                    ),
                    None => "no other student to compare with".to_string(),
                };
                format!(
                    "matched student {} at {:.2} (threshold {:.2}); {lead}",
                    self.student.unwrap_or(best.student),
                    best.similarity,
                    t.similarity
                )
            }
            (Reason::BelowThreshold, Some(best)) => format!(
                "best match student {} at {:.2} is below the threshold {:.2}",
                best.student, best.similarity, t.similarity
            ),
            (Reason::Ambiguous, Some(best)) => {
                let margin = self
                    .runner_up
                    .map_or(f32::NAN, |r| best.similarity - r.similarity);
                format!(
                    "best match student {} at {:.2} is too close to the {}: margin {:.2} < {:.2}",
                    best.student,
                    best.similarity,
                    runner_up(self.runner_up),
                    margin,
                    t.margin
                )
            }
            (Reason::Conflict, Some(best)) => format!(
                "best match student {} at {:.2} (threshold {:.2}) went to another face in this photo",
                best.student, best.similarity, t.similarity
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{BruteForceIndex, Neighbour};
    use crate::testutil::{Rng, at_similarity, basis};

    /// A gallery given directly as similarities: query `[k]` is crop k of `table`.
    struct Table(Vec<Vec<(i64, f32)>>);

    impl VectorIndex for Table {
        fn dimension(&self) -> usize {
            1
        }
        fn len(&self) -> usize {
            self.0.iter().map(Vec::len).max().unwrap_or(0)
        }
        fn nearest(&self, _: &[f32], _: usize) -> Vec<Neighbour> {
            Vec::new()
        }
        fn within(&self, _: &[f32], _: f32) -> Vec<Neighbour> {
            Vec::new()
        }
        fn best_labels(&self, query: &[f32], n: usize) -> Vec<Candidate> {
            let row = &self.0[query[0] as usize];
            let mut found: Vec<Candidate> = row
                .iter()
                .map(|&(student, similarity)| Candidate {
                    student,
                    similarity,
                })
                .collect();
            found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            found.truncate(n);
            found
        }
    }

    fn run_table(table: Vec<Vec<(i64, f32)>>, t: Thresholds) -> Vec<Decision> {
        let queries: Vec<[f32; 1]> = (0..table.len()).map(|k| [k as f32]).collect();
        let crops: Vec<(i64, &[f32])> = queries
            .iter()
            .enumerate()
            .map(|(k, q)| (100 + k as i64, q.as_slice()))
            .collect();
        assign_photo(&crops, &Table(table), t)
    }

    const T: Thresholds = Thresholds {
        similarity: 0.5,
        margin: 0.1,
    };

    /// Students 1..=students, student s on axis s - 1, one vector each.
    fn orthogonal_gallery(students: usize, dim: usize) -> BruteForceIndex {
        let mut g = BruteForceIndex::new(dim);
        for s in 0..students {
            g.push(s as i64, s as i64 + 1, &basis(s, dim)).unwrap();
        }
        g
    }

    #[test]
    fn single_crop_above_and_below_threshold() {
        let gallery = orthogonal_gallery(1, 4);
        let above = at_similarity(0.7, 4);
        let below = at_similarity(0.4, 4);
        let decisions = assign_photo(&[(1, &above), (2, &below)], &gallery, T);
        assert_eq!(decisions.len(), 2);
        assert_eq!(decisions[0].student, Some(1));
        assert_eq!(decisions[0].reason, Reason::Matched);
        assert!(decisions[0].runner_up.is_none());
        assert!((decisions[0].best.unwrap().similarity - 0.7).abs() < 1e-6);
        assert_eq!(decisions[1].student, None);
        assert_eq!(decisions[1].reason, Reason::BelowThreshold);
        assert_eq!(decisions[1].crop, 2);
    }

    #[test]
    fn threshold_is_inclusive() {
        let decisions = run_table(vec![vec![(1, 0.5)]], T);
        assert_eq!(decisions[0].reason, Reason::Matched);
    }

    #[test]
    fn a_close_runner_up_makes_it_ambiguous() {
        let decisions = run_table(vec![vec![(1, 0.70), (2, 0.65)]], T);
        assert_eq!(decisions[0].student, None);
        assert_eq!(decisions[0].reason, Reason::Ambiguous);
        assert_eq!(decisions[0].runner_up.map(|c| c.student), Some(2));

        let decisions = run_table(vec![vec![(1, 0.70), (2, 0.55)]], T);
        assert_eq!(decisions[0].reason, Reason::Matched);
        assert_eq!(decisions[0].student, Some(1));
    }

    #[test]
    fn an_empty_gallery_means_no_students() {
        let gallery = BruteForceIndex::new(4);
        let v = basis(0, 4);
        let decisions = assign_photo(&[(1, &v), (2, &v)], &gallery, T);
        assert!(
            decisions
                .iter()
                .all(|d| d.student.is_none() && d.reason == Reason::NoStudents && d.best.is_none())
        );
        assert!(assign_photo(&[], &gallery, T).is_empty());
    }

    #[test]
    fn a_crop_of_the_wrong_dimension_has_no_students() {
        let gallery = orthogonal_gallery(2, 4);
        let good = basis(0, 4);
        let bad = [1.0, 0.0];
        let decisions = assign_photo(&[(1, &good), (2, &bad)], &gallery, T);
        assert_eq!(decisions[0].reason, Reason::Matched);
        assert_eq!(decisions[1].reason, Reason::NoStudents);
    }

    #[test]
    fn the_optimal_matching_beats_greedy() {
        const A: i64 = 1;
        const B: i64 = 2;
        let t = Thresholds {
            similarity: 0.5,
            margin: 0.0,
        };
        // Greedy gives A to c1 (0.80) and leaves c2 with nothing: total above threshold 0.30.
        // Optimal gives A to c2 and B to c1: 0.28 + 0.25 = 0.53 (similarities 1.53 in all).
        let decisions = run_table(
            vec![vec![(A, 0.80), (B, 0.75)], vec![(A, 0.78), (B, 0.30)]],
            t,
        );
        assert_eq!(decisions[1].student, Some(A));
        assert_eq!(decisions[1].reason, Reason::Matched);
        assert_eq!(decisions[0].student, None);
        assert_eq!(decisions[0].reason, Reason::Conflict);
        assert_eq!(decisions[0].best.map(|c| c.student), Some(A));
    }

    #[test]
    fn a_face_whose_students_all_went_elsewhere_is_a_conflict() {
        let decisions = run_table(vec![vec![(1, 0.9)], vec![(1, 0.8)]], T);
        assert_eq!(decisions[0].reason, Reason::Matched);
        assert_eq!(decisions[1].student, None);
        assert_eq!(decisions[1].reason, Reason::Conflict);
    }

    #[test]
    fn a_student_is_never_assigned_twice_in_one_photo() {
        let mut rng = Rng::new(11);
        let dim = 8;
        for case in 0..200 {
            let students = 1 + rng.below(6);
            let centres: Vec<Vec<f32>> = (0..students).map(|_| rng.unit_vector(dim)).collect();
            let mut gallery = BruteForceIndex::new(dim);
            let mut id = 0;
            for (s, centre) in centres.iter().enumerate() {
                for _ in 0..1 + rng.below(3) {
                    gallery
                        .push(id, s as i64, &rng.jitter(centre, 0.3))
                        .unwrap();
                    id += 1;
                }
            }
            // Several faces near the same few students, so they compete.
            let vectors: Vec<Vec<f32>> = (0..1 + rng.below(8))
                .map(|_| {
                    let centre = &centres[rng.below(students)];
                    rng.jitter(centre, 0.4)
                })
                .collect();
            let crops: Vec<(i64, &[f32])> = vectors
                .iter()
                .enumerate()
                .map(|(k, v)| (k as i64, v.as_slice()))
                .collect();
            let t = Thresholds {
                similarity: rng.range(0.3, 0.9) as f32,
                margin: rng.range(0.0, 0.1) as f32,
            };
            let decisions = assign_photo(&crops, &gallery, t);
            assert_eq!(decisions.len(), crops.len());
            let mut seen = std::collections::HashSet::new();
            for (d, (crop, _)) in decisions.iter().zip(&crops) {
                assert_eq!(d.crop, *crop);
                if let Some(s) = d.student {
                    assert!(seen.insert(s), "case {case}: student {s} twice");
                    assert_eq!(d.reason, Reason::Matched);
                    let best = d.best.unwrap();
                    assert_eq!(best.student, s);
                    assert!(best.similarity >= t.similarity);
                } else {
                    assert_ne!(d.reason, Reason::Matched);
                }
            }
        }
    }

    #[test]
    fn explanations_mention_the_numbers() {
        let t = Thresholds {
            similarity: 0.45,
            margin: 0.08,
        };
        let d = run_table(vec![vec![(7, 0.62), (3, 0.31)]], t).remove(0);
        assert_eq!(
            d.explain(t),
            "matched student 7 at 0.62 (threshold 0.45); runner-up student 3 at 0.31, margin 0.31 ≥ 0.08"
        );
        let d = run_table(vec![vec![(7, 0.62)]], t).remove(0);
        assert_eq!(
            d.explain(t),
            "matched student 7 at 0.62 (threshold 0.45); no other student to compare with"
        );
        let d = run_table(vec![vec![(7, 0.40)]], t).remove(0);
        assert_eq!(
            d.explain(t),
            "best match student 7 at 0.40 is below the threshold 0.45"
        );
        let d = run_table(vec![vec![(7, 0.62), (3, 0.60)]], t).remove(0);
        assert_eq!(
            d.explain(t),
            "best match student 7 at 0.62 is too close to the runner-up student 3 at 0.60: margin 0.02 < 0.08"
        );
        let d = run_table(vec![vec![(7, 0.90)], vec![(7, 0.62)]], t).remove(1);
        assert_eq!(
            d.explain(t),
            "best match student 7 at 0.62 (threshold 0.45) went to another face in this photo"
        );
        let d = assign_photo(&[(1, &[1.0])], &BruteForceIndex::new(1), t).remove(0);
        assert!(d.explain(t).starts_with("no student"));
    }
}
