//! Nearest-neighbour search over embeddings, behind [`VectorIndex`] so a database-backed index
//! (pgvector) can replace the in-memory [`BruteForceIndex`] without touching its callers.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;

/// One stored vector found by a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Neighbour {
    pub id: i64,
    pub label: i64,
    pub similarity: f32,
}

/// A student (a gallery label) and its best similarity to a query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    pub student: i64,
    pub similarity: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("vector has {got} dimensions, the index holds {expected}")]
    Dimension { expected: usize, got: usize },
}

/// Similarity search over labelled vectors. A query whose dimension differs from the index's
/// matches nothing: the search methods return an empty list rather than panic.
pub trait VectorIndex {
    fn dimension(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The k most similar vectors, most similar first (ties: smaller id first).
    fn nearest(&self, query: &[f32], k: usize) -> Vec<Neighbour>;
    /// Every vector with similarity >= min_similarity, most similar first.
    fn within(&self, query: &[f32], min_similarity: f32) -> Vec<Neighbour>;
    /// The best `n` distinct labels with each label's best similarity (max over its vectors),
    /// best first (ties: smaller label first).
    fn best_labels(&self, query: &[f32], n: usize) -> Vec<Candidate>;
}

/// Exact search by scanning every vector: O(N·d) per query, fine for a course's gallery.
#[derive(Debug, Clone)]
pub struct BruteForceIndex {
    dim: usize,
    ids: Vec<i64>,
    labels: Vec<i64>,
    /// Row-major and contiguous so a scan streams through memory.
    data: Vec<f32>,
}

impl BruteForceIndex {
    pub fn new(dimension: usize) -> Self {
        Self {
            dim: dimension,
            ids: Vec::new(),
            labels: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn push(&mut self, id: i64, label: i64, vector: &[f32]) -> Result<(), IndexError> {
        if vector.len() != self.dim {
            return Err(IndexError::Dimension {
                expected: self.dim,
                got: vector.len(),
            });
        }
        self.ids.push(id);
        self.labels.push(label);
        self.data.extend_from_slice(vector);
        Ok(())
    }

    /// The similarity of `query` to every stored vector, in insertion order; empty when the
    /// dimensions differ.
    pub fn similarities(&self, query: &[f32]) -> Vec<f32> {
        if query.len() != self.dim {
            return Vec::new();
        }
        (0..self.ids.len())
            .map(|row| dot(query, self.vector(row)))
            .collect()
    }

    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// The vector stored at `row` (insertion order); empty if there is no such row.
    pub fn vector(&self, row: usize) -> &[f32] {
        let start = row.saturating_mul(self.dim);
        self.data
            .get(start..start.saturating_add(self.dim))
            .filter(|_| row < self.ids.len())
            .unwrap_or(&[])
    }

    /// Heap bytes reserved by the index plus its own size.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.ids.capacity() * size_of::<i64>()
            + self.labels.capacity() * size_of::<i64>()
            + self.data.capacity() * size_of::<f32>()
    }

    fn neighbours(&self, query: &[f32]) -> impl Iterator<Item = Neighbour> + '_ {
        self.similarities(query)
            .into_iter()
            .zip(self.ids.iter().zip(&self.labels))
            .map(|(similarity, (&id, &label))| Neighbour {
                id,
                label,
                similarity,
            })
    }
}

impl VectorIndex for BruteForceIndex {
    fn dimension(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn nearest(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        if k == 0 {
            return Vec::new();
        }
        let mut found: Vec<Neighbour> = self.neighbours(query).collect();
        if k < found.len() {
            // Partition first so a small k over a large gallery does not pay for a full sort.
            found.select_nth_unstable_by(k - 1, by_rank);
            found.truncate(k);
        }
        found.sort_unstable_by(by_rank);
        found
    }

    fn within(&self, query: &[f32], min_similarity: f32) -> Vec<Neighbour> {
        let mut found: Vec<Neighbour> = self
            .neighbours(query)
            .filter(|n| n.similarity >= min_similarity)
            .collect();
        found.sort_unstable_by(by_rank);
        found
    }

    fn best_labels(&self, query: &[f32], n: usize) -> Vec<Candidate> {
        if n == 0 {
            return Vec::new();
        }
        let mut best: HashMap<i64, f32> = HashMap::new();
        for neighbour in self.neighbours(query) {
            best.entry(neighbour.label)
                .and_modify(|s| {
                    if rank(neighbour.similarity) > rank(*s) {
                        *s = neighbour.similarity;
                    }
                })
                .or_insert(neighbour.similarity);
        }
        let mut candidates: Vec<Candidate> = best
            .into_iter()
            .map(|(student, similarity)| Candidate {
                student,
                similarity,
            })
            .collect();
        candidates.sort_unstable_by(|a, b| {
            rank(b.similarity)
                .total_cmp(&rank(a.similarity))
                .then(a.student.cmp(&b.student))
        });
        candidates.truncate(n);
        candidates
    }
}

/// Most similar first, then smaller id, so results do not depend on sort stability.
fn by_rank(a: &Neighbour, b: &Neighbour) -> Ordering {
    rank(b.similarity)
        .total_cmp(&rank(a.similarity))
        .then(a.id.cmp(&b.id))
}

/// A sort key that ranks NaN (a corrupt vector) below everything, and makes -0.0 tie with 0.0
/// (`total_cmp` would otherwise order them).
fn rank(similarity: f32) -> f32 {
    if similarity.is_nan() {
        f32::NEG_INFINITY
    } else {
        similarity + 0.0
    }
}

/// Dot product over the common length of `a` and `b`. Eight independent accumulators break the
/// serial dependency of a running sum, which lets LLVM vectorise the loop without fast-math.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (chunks_a, chunks_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (xs, ys) in chunks_a.zip(chunks_b) {
        for ((s, x), y) in acc.iter_mut().zip(xs).zip(ys) {
            *s += x * y;
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, basis};

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn dot_matches_the_naive_sum_for_every_length() {
        let mut rng = Rng::new(1);
        for len in 0..40 {
            let a: Vec<f32> = (0..len).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let b: Vec<f32> = (0..len).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            assert!(
                (f64::from(dot(&a, &b)) - naive_dot(&a, &b)).abs() < 1e-4,
                "len {len}"
            );
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    fn sample() -> BruteForceIndex {
        let mut index = BruteForceIndex::new(3);
        index.push(10, 1, &basis(0, 3)).unwrap();
        index.push(11, 1, &[0.6, 0.8, 0.0]).unwrap();
        index.push(12, 2, &[0.8, 0.6, 0.0]).unwrap();
        index.push(13, 3, &basis(2, 3)).unwrap();
        index
    }

    #[test]
    fn push_refuses_a_wrong_dimension_and_keeps_the_index_unchanged() {
        let mut index = sample();
        let error = index.push(99, 9, &[1.0, 0.0]).unwrap_err();
        assert!(matches!(
            error,
            IndexError::Dimension {
                expected: 3,
                got: 2
            }
        ));
        assert_eq!(
            error.to_string(),
            "vector has 2 dimensions, the index holds 3"
        );
        assert_eq!(index.len(), 4);
        assert_eq!(index.ids(), &[10, 11, 12, 13]);
        assert_eq!(index.labels(), &[1, 1, 2, 3]);
        assert_eq!(index.vector(2), &[0.8, 0.6, 0.0]);
        assert!(index.vector(4).is_empty());
        assert!(index.vector(usize::MAX).is_empty());
    }

    #[test]
    fn searches_rank_by_similarity_then_id() {
        let index = sample();
        let query = basis(0, 3);
        assert_eq!(index.similarities(&query), vec![1.0, 0.6, 0.8, 0.0]);
        let ids = |found: Vec<Neighbour>| found.iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(index.nearest(&query, 2)), vec![10, 12]);
        assert_eq!(ids(index.nearest(&query, 10)), vec![10, 12, 11, 13]);
        assert!(index.nearest(&query, 0).is_empty());
        assert_eq!(ids(index.within(&query, 0.6)), vec![10, 12, 11]);

        let mut tied = BruteForceIndex::new(2);
        for id in [5, 3, 4] {
            tied.push(id, 0, &[1.0, 0.0]).unwrap();
        }
        assert_eq!(ids(tied.nearest(&[1.0, 0.0], 2)), vec![3, 4]);
    }

    #[test]
    fn best_labels_takes_each_labels_best_vector() {
        let index = sample();
        let found = index.best_labels(&[0.6, 0.8, 0.0], 5);
        let students: Vec<i64> = found.iter().map(|c| c.student).collect();
        assert_eq!(students, vec![1, 2, 3]);
        let expected = [1.0, 0.96, 0.0];
        for (c, e) in found.iter().zip(expected) {
            assert!((c.similarity - e).abs() < 1e-6, "{found:?}");
        }
        assert_eq!(index.best_labels(&[0.6, 0.8, 0.0], 1).len(), 1);
        assert!(index.best_labels(&[0.6, 0.8, 0.0], 0).is_empty());
    }

    #[test]
    fn a_query_of_the_wrong_dimension_matches_nothing() {
        let index = sample();
        assert!(index.similarities(&[1.0]).is_empty());
        assert!(index.nearest(&[1.0], 3).is_empty());
        assert!(index.within(&[1.0, 0.0, 0.0, 0.0], -1.0).is_empty());
        assert!(index.best_labels(&[], 3).is_empty());
    }

    #[test]
    fn nan_similarities_rank_last() {
        let mut index = BruteForceIndex::new(2);
        index.push(1, 1, &[f32::NAN, 0.0]).unwrap();
        index.push(2, 2, &[0.0, 1.0]).unwrap();
        let found = index.nearest(&[0.0, 1.0], 2);
        assert_eq!(found[0].id, 2);
        assert_eq!(index.best_labels(&[0.0, 1.0], 2)[0].student, 2);
    }

    #[test]
    fn nearest_agrees_with_a_full_sort() {
        let mut rng = Rng::new(7);
        let mut index = BruteForceIndex::new(16);
        for id in 0..300 {
            index.push(id, id % 17, &rng.unit_vector(16)).unwrap();
        }
        let query = rng.unit_vector(16);
        let mut all = index.within(&query, f32::NEG_INFINITY);
        assert_eq!(all.len(), 300);
        all.truncate(25);
        assert_eq!(index.nearest(&query, 25), all);
    }

    #[test]
    fn zero_dimensional_index_does_not_panic() {
        let mut index = BruteForceIndex::new(0);
        index.push(1, 1, &[]).unwrap();
        assert_eq!(index.similarities(&[]), vec![0.0]);
        assert!(index.vector(0).is_empty());
        assert_eq!(index.nearest(&[], 1).len(), 1);
    }

    #[test]
    fn memory_grows_with_the_data() {
        let mut index = BruteForceIndex::new(128);
        let empty = index.memory_bytes();
        for id in 0..100 {
            index.push(id, id, &[0.0; 128]).unwrap();
        }
        assert!(index.memory_bytes() >= empty + 100 * (128 * 4 + 16));
    }
}
