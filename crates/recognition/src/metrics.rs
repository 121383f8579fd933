//! BCubed precision, recall and F1: how well a clustering matches the true identities, scored
//! per item so large clusters do not dominate.

use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BCubed {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// truth: a label per item; predicted: a cluster per item, None = noise (each noise item is its
/// own singleton cluster).
///
/// Precision averages, over items, the share of the item's cluster that has its label; recall
/// the share of the item's label that is in its cluster. Only the common length of the two
/// slices is scored; with no items every score is 0 (nothing was evaluated).
pub fn bcubed<L: Eq + Hash>(truth: &[L], predicted: &[Option<usize>]) -> BCubed {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return BCubed {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
        };
    }
    // Noise items get a key of their own, so each is a singleton.
    let cluster_of = |i: usize| match predicted[i] {
        Some(c) => (true, c),
        None => (false, i),
    };
    let mut cluster_size: HashMap<(bool, usize), usize> = HashMap::new();
    let mut label_size: HashMap<&L, usize> = HashMap::new();
    let mut overlap: HashMap<((bool, usize), &L), usize> = HashMap::new();
    for (i, label) in truth.iter().enumerate().take(n) {
        *cluster_size.entry(cluster_of(i)).or_default() += 1;
        *label_size.entry(label).or_default() += 1;
        *overlap.entry((cluster_of(i), label)).or_default() += 1;
    }
    let (mut precision, mut recall) = (0.0, 0.0);
    for (i, label) in truth.iter().enumerate().take(n) {
        let cluster = cluster_of(i);
        let shared = overlap[&(cluster, label)] as f64;
        precision += shared / cluster_size[&cluster] as f64;
        recall += shared / label_size[label] as f64;
    }
    let (precision, recall) = (precision / n as f64, recall / n as f64);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    BCubed {
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: BCubed, precision: f64, recall: f64, f1: f64) {
        let ok = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            ok(got.precision, precision) && ok(got.recall, recall) && ok(got.f1, f1),
            "{got:?} vs ({precision}, {recall}, {f1})"
        );
    }

    #[test]
    fn perfect_clustering_scores_one() {
        close(
            bcubed(&["a", "a", "b", "c"], &[Some(3), Some(3), Some(0), None]),
            1.0,
            1.0,
            1.0,
        );
    }

    #[test]
    fn everything_in_one_cluster() {
        // Items a, a see a cluster of 3 with 2 a's: 2/3 each; b sees 1/3. Precision
        // (2/3 + 2/3 + 1/3) / 3 = 5/9; recall 1; F1 = 2·(5/9) / (14/9) = 5/7.
        close(
            bcubed(&['a', 'a', 'b'], &[Some(0), Some(0), Some(0)]),
            5.0 / 9.0,
            1.0,
            5.0 / 7.0,
        );
    }

    #[test]
    fn all_singletons_and_noise_are_the_same() {
        // Precision 1; recall: each a finds 1 of 2 a's, b finds itself: (1/2 + 1/2 + 1) / 3
        // = 2/3; F1 = 2·(2/3) / (5/3) = 4/5.
        close(
            bcubed(&['a', 'a', 'b'], &[Some(0), Some(1), Some(2)]),
            1.0,
            2.0 / 3.0,
            0.8,
        );
        close(
            bcubed(&['a', 'a', 'b'], &[None, None, None]),
            1.0,
            2.0 / 3.0,
            0.8,
        );
    }

    #[test]
    fn a_mixed_clustering() {
        // Truth a a a b b, clusters {0,1} {2,3,4}. Precision per item: 1, 1, 1/3, 2/3, 2/3
        // = 11/15 on average. Recall: 2/3, 2/3, 1/3, 1, 1 = 11/15. F1 = 11/15.
        close(
            bcubed(
                &[1, 1, 1, 2, 2],
                &[Some(0), Some(0), Some(1), Some(1), Some(1)],
            ),
            11.0 / 15.0,
            11.0 / 15.0,
            11.0 / 15.0,
        );
        // A noise item in an otherwise perfect clustering only costs recall.
        // Truth a a b, clusters {0,1} and noise: precision 1; recall 1,1,1 = 1.
        close(bcubed(&[1, 1, 2], &[Some(0), Some(0), None]), 1.0, 1.0, 1.0);
        // a a a with one as noise: precision 1; recall 2/3, 2/3, 1/3 = 5/9; F1 = 10/9 / 14/9.
        close(
            bcubed(&[1, 1, 1], &[Some(0), Some(0), None]),
            1.0,
            5.0 / 9.0,
            10.0 / 14.0,
        );
    }

    #[test]
    fn empty_and_mismatched_lengths_do_not_panic() {
        close(bcubed::<i32>(&[], &[]), 0.0, 0.0, 0.0);
        close(bcubed(&[1, 1, 2], &[Some(0), Some(0)]), 1.0, 1.0, 1.0);
    }
}
