//! Embeddings and their maths: L2 normalisation, cosine similarity and distance. Pure functions.

use serde::{Deserialize, Serialize};

/// An L2-normalised face embedding produced by one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceEmbedding {
    pub model: String,
    pub vector: Vec<f32>,
}

impl FaceEmbedding {
    /// Normalises `raw`; `None` if it is empty, all zeros or not finite.
    pub fn new(model: impl Into<String>, raw: Vec<f32>) -> Option<Self> {
        l2_normalized(raw).map(|vector| Self {
            model: model.into(),
            vector,
        })
    }

    pub fn dimension(&self) -> usize {
        self.vector.len()
    }

    /// Cosine similarity in [-1, 1]; `None` across models or dimensions.
    pub fn cosine_similarity(&self, other: &FaceEmbedding) -> Option<f32> {
        (self.model == other.model)
            .then(|| cosine_similarity(&self.vector, &other.vector))
            .flatten()
    }

    /// `1 - cosine similarity`, in [0, 2].
    pub fn cosine_distance(&self, other: &FaceEmbedding) -> Option<f32> {
        self.cosine_similarity(other).map(|s| 1.0 - s)
    }
}

/// `v / |v|`, or `None` when that is undefined.
pub fn l2_normalized(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if v.is_empty() || !norm.is_finite() || norm < 1e-12 {
        return None;
    }
    for x in &mut v {
        *x = (f64::from(*x) / norm) as f32;
    }
    Some(v)
}

/// Cosine similarity of two vectors of equal length (need not be normalised); `None` if the
/// lengths differ or either vector has no direction.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denominator = (na * nb).sqrt();
    if !denominator.is_finite() || denominator < 1e-12 {
        return None;
    }
    Some((dot / denominator).clamp(-1.0, 1.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_gives_unit_length_and_refuses_zero_and_nan() {
        let v = l2_normalized(vec![3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(l2_normalized(vec![0.0, 0.0]).is_none());
        assert!(l2_normalized(vec![]).is_none());
        assert!(l2_normalized(vec![f32::NAN, 1.0]).is_none());
    }

    #[test]
    fn cosine_of_same_opposite_and_orthogonal_vectors() {
        assert!((cosine_similarity(&[1.0, 2.0], &[2.0, 4.0]).unwrap() - 1.0).abs() < 1e-6);
        assert!((cosine_similarity(&[1.0, 2.0], &[-1.0, -2.0]).unwrap() + 1.0).abs() < 1e-6);
        assert!(cosine_similarity(&[1.0, 0.0], &[0.0, 3.0]).unwrap().abs() < 1e-6);
        assert!(cosine_similarity(&[1.0], &[1.0, 2.0]).is_none());
        assert!(cosine_similarity(&[0.0, 0.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn embeddings_compare_only_within_one_model() {
        let a = FaceEmbedding::new("m", vec![1.0, 0.0]).unwrap();
        let b = FaceEmbedding::new("m", vec![1.0, 1.0]).unwrap();
        let c = FaceEmbedding::new("other", vec![1.0, 0.0]).unwrap();
        assert!((a.cosine_similarity(&b).unwrap() - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(
            (a.cosine_distance(&b).unwrap() - (1.0 - std::f32::consts::FRAC_1_SQRT_2)).abs() < 1e-6
        );
        assert!(a.cosine_similarity(&c).is_none());
        assert_eq!(a.dimension(), 2);
    }
}
