//! Test helpers: a tiny deterministic PRNG and unit-vector builders, so randomised tests replay.

/// xorshift64*: statistically plenty for test data and needs no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // A zero state would stay zero forever.
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n; n must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random direction: uniform coordinates, normalised.
    pub fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f64> = (0..dim).map(|_| self.range(-1.0, 1.0)).collect();
        normalised(&v)
    }

    /// `centre` pushed by a random offset of up to `spread` per coordinate, normalised again.
    pub fn jitter(&mut self, centre: &[f32], spread: f64) -> Vec<f32> {
        let v: Vec<f64> = centre
            .iter()
            .map(|&c| f64::from(c) + self.range(-spread, spread))
            .collect();
        normalised(&v)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

pub fn normalised(v: &[f64]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / norm) as f32).collect()
}

/// A unit vector in `dim` dimensions whose dot product with the basis vector e0 is `similarity`.
pub fn at_similarity(similarity: f32, dim: usize) -> Vec<f32> {
    let s = f64::from(similarity);
    let mut v = vec![0.0; dim];
    v[0] = s;
    v[1] = (1.0 - s * s).max(0.0).sqrt();
    v.iter().map(|&x| x as f32).collect()
}

pub fn basis(axis: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    v[axis] = 1.0;
    v
}
