//! Optimal assignment (Kuhn–Munkres with potentials) for rectangular weight matrices.

/// For each row, the column it is matched to, maximising the total weight. Pairs with weight
/// <= 0 are never returned (a row may stay unmatched), so callers encode "not allowed" as 0 or
/// negative. Missing entries of short rows count as 0, and so do non-finite weights.
///
/// O(r²·c) time for r = min(rows, cols) and c = max(rows, cols); O(r + c) extra memory.
pub fn max_weight_assignment(weights: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = weights.len();
    let cols = weights.iter().map(Vec::len).max().unwrap_or(0);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    // Potentials accumulate sums of weights; capping keeps every sum finite, so no NaN appears.
    let cap = f64::MAX / (4.0 * (rows + cols) as f64);
    let weight = |row: usize, col: usize| -> f64 {
        match weights[row].get(col) {
            Some(&w) if w.is_finite() && w > 0.0 => w.min(cap),
            _ => 0.0,
        }
    };

    // Clamping at 0 makes "unmatched" free: a full assignment on the clamped costs is optimal
    // for the partial problem, and its zero-weight pairs are dropped afterwards.
    let mut assignment = vec![None; rows];
    if rows <= cols {
        let matched = min_cost_assignment(rows, cols, |r, c| -weight(r, c));
        for (row, col) in matched.into_iter().enumerate() {
            if weight(row, col) > 0.0 {
                assignment[row] = Some(col);
            }
        }
    } else {
        let matched = min_cost_assignment(cols, rows, |c, r| -weight(r, c));
        for (col, row) in matched.into_iter().enumerate() {
            if weight(row, col) > 0.0 {
                assignment[row] = Some(col);
            }
        }
    }
    assignment
}

/// Minimum-cost assignment of every one of `n` rows to a distinct one of `m >= n` columns
/// (e-maxx formulation, 1-based internally with index 0 as the sentinel). Returns each row's
/// column.
fn min_cost_assignment(n: usize, m: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    // p[j]: the row holding column j (0 = free); way[j]: the previous column on the
    // augmenting path, to flip it once a free column is reached.
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![f64::INFINITY; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            // j1 = 0 means "none yet": always taking some unused column guarantees progress
            // even if comparisons fail, and one exists because m >= n.
            let mut j1 = 0;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if reduced < minv[j] {
                    minv[j] = reduced;
                    way[j] = j0;
                }
                if j1 == 0 || minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        }
    }
    let mut row_to_col = vec![0; n];
    for (j, &row) in p.iter().enumerate().skip(1) {
        if row != 0 {
            row_to_col[row - 1] = j - 1;
        }
    }
    row_to_col
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    use std::time::{Duration, Instant};

    fn total(weights: &[Vec<f64>], assignment: &[Option<usize>]) -> f64 {
        assignment
            .iter()
            .enumerate()
            .filter_map(|(r, c)| c.map(|c| weights[r][c]))
            .sum()
    }

    /// Checks the assignment is a valid partial matching of positive pairs.
    fn check_valid(weights: &[Vec<f64>], assignment: &[Option<usize>]) {
        assert_eq!(assignment.len(), weights.len());
        let mut taken = std::collections::HashSet::new();
        for (r, c) in assignment.iter().enumerate() {
            if let Some(c) = *c {
                assert!(weights[r][c] > 0.0, "row {r} got non-positive column {c}");
                assert!(taken.insert(c), "column {c} assigned twice");
            }
        }
    }

    fn brute_force(weights: &[Vec<f64>], row: usize, taken: &mut Vec<bool>) -> f64 {
        if row == weights.len() {
            return 0.0;
        }
        let mut best = brute_force(weights, row + 1, taken);
        for c in 0..taken.len() {
            if !taken[c] && weights[row][c] > 0.0 {
                taken[c] = true;
                best = best.max(weights[row][c] + brute_force(weights, row + 1, taken));
                taken[c] = false;
            }
        }
        best
    }

    #[test]
    fn hand_examples() {
        let w = vec![
            vec![4.0, 1.0, 3.0],
            vec![2.0, 0.0, 5.0],
            vec![3.0, 2.0, 2.0],
        ];
        assert_eq!(max_weight_assignment(&w), vec![Some(0), Some(2), Some(1)]);
        // Greedy would take (0,0)=10 and leave row 1 with nothing; 9 + 8 is better.
        let w = vec![vec![10.0, 9.0], vec![8.0, 0.0]];
        assert_eq!(max_weight_assignment(&w), vec![Some(1), Some(0)]);
        // Non-positive pairs are never matched, even when a column is free.
        let w = vec![vec![0.0, -1.0], vec![2.0, 0.0]];
        assert_eq!(max_weight_assignment(&w), vec![None, Some(0)]);
    }

    #[test]
    fn empty_and_degenerate_shapes() {
        assert!(max_weight_assignment(&[]).is_empty());
        assert_eq!(max_weight_assignment(&[vec![], vec![]]), vec![None, None]);
        assert_eq!(max_weight_assignment(&[vec![3.0]]), vec![Some(0)]);
        // More rows than columns: solved transposed.
        let w = vec![vec![1.0], vec![5.0], vec![2.0]];
        assert_eq!(max_weight_assignment(&w), vec![None, Some(0), None]);
        // Ragged rows: missing entries are 0.
        let w = vec![vec![1.0], vec![1.0, 2.0, 3.0]];
        assert_eq!(max_weight_assignment(&w), vec![Some(0), Some(2)]);
        // Non-finite weights are not allowed pairs.
        let w = vec![vec![f64::NAN, 1.0], vec![f64::INFINITY, f64::NEG_INFINITY]];
        assert_eq!(max_weight_assignment(&w), vec![Some(1), None]);
        // Huge weights do not overflow into NaN.
        let w = vec![vec![f64::MAX, f64::MAX], vec![f64::MAX, 1.0]];
        let a = max_weight_assignment(&w);
        check_valid(&w, &a);
        assert_eq!(a, vec![Some(1), Some(0)]);
    }

    #[test]
    fn matches_brute_force_on_random_small_matrices() {
        let mut rng = Rng::new(42);
        for case in 0..3000 {
            let rows = rng.below(6);
            let cols = rng.below(7);
            let (rows, cols) = if case % 2 == 0 {
                (rows, cols)
            } else {
                (cols, rows)
            };
            // Integer-ish weights make ties common; negatives exercise "not allowed".
            let integral = case % 3 == 0;
            let w: Vec<Vec<f64>> = (0..rows)
                .map(|_| {
                    (0..cols)
                        .map(|_| {
                            let x = rng.range(-3.0, 10.0);
                            if integral { x.floor() } else { x }
                        })
                        .collect()
                })
                .collect();
            let a = max_weight_assignment(&w);
            check_valid(&w, &a);
            let expected = brute_force(&w, 0, &mut vec![false; cols]);
            let got = total(&w, &a);
            assert!(
                (got - expected).abs() < 1e-9,
                "case {case}: {rows}x{cols} got {got}, best {expected}, {w:?}"
            );
        }
    }

    #[test]
    fn large_rectangular_matrices_finish_fast() {
        let mut rng = Rng::new(3);
        let w: Vec<Vec<f64>> = (0..30)
            .map(|_| (0..500).map(|_| rng.range(-0.5, 1.0)).collect())
            .collect();
        let start = Instant::now();
        let a = max_weight_assignment(&w);
        check_valid(&w, &a);
        assert_eq!(a.iter().flatten().count(), 30);

        let transposed: Vec<Vec<f64>> = (0..500)
            .map(|c| (0..30).map(|r| w[r][c]).collect())
            .collect();
        let b = max_weight_assignment(&transposed);
        check_valid(&transposed, &b);
        assert!((total(&w, &a) - total(&transposed, &b)).abs() < 1e-9);
        // Generous: this is milliseconds even unoptimised, but the machine may be busy.
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
