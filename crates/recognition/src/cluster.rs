//! Density-based clustering (DBSCAN, cosine distance) of faces that matched no student, so
//! recurring unknown people can be offered for enrolment as groups.
//!
//! Time is O(N²·d) for N points of dimension d: every point's neighbourhood is a full scan.
//! Memory is O(N) beyond the points: neighbourhoods are computed one row at a time when needed
//! and never kept as an N×N matrix, so 10,000 × 128-D stays a few megabytes.

use serde::{Deserialize, Serialize};

use crate::index::{BruteForceIndex, VectorIndex, dot};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterParams {
    /// Largest cosine distance (1 - similarity) at which two faces are neighbours.
    pub max_distance: f32,
    /// Least number of points (itself included) in a core point's neighbourhood, and the least
    /// size of a cluster that is returned.
    pub min_cluster_size: usize,
}

/// DBSCAN with cosine distance: a point is a core point if at least min_cluster_size points
/// (itself included) lie within max_distance. Returns a cluster number per point (0..k, numbered
/// in order of each cluster's first point) or None for noise. Clusters smaller than
/// min_cluster_size never come out (min_cluster_size <= 1 means every point is at least its own
/// cluster).
pub fn dbscan(points: &BruteForceIndex, p: ClusterParams) -> Vec<Option<usize>> {
    let rows: Vec<usize> = (0..points.len()).collect();
    dbscan_rows(points, &rows, p)
}

/// The result of one [`incremental`] step.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Incremental {
    /// (point id, existing cluster id) for each point that joins an existing cluster.
    pub joins: Vec<(i64, i64)>,
    /// Point ids of each new cluster, in order of their first point.
    pub new_clusters: Vec<Vec<i64>>,
}

/// Incremental step as new sessions arrive: `clustered` holds members of existing clusters
/// (label = cluster id); `unclustered` holds every point not in a cluster (new ones and earlier
/// noise; label ignored). Each unclustered point within max_distance of an existing member joins
/// the cluster of its nearest member; the rest are clustered among themselves with [`dbscan`]
/// and come back as new clusters. Existing clusters are never split or merged here.
///
/// If the two indexes differ in dimension nothing can join, and every point is treated as a
/// leftover.
pub fn incremental(
    clustered: &BruteForceIndex,
    unclustered: &BruteForceIndex,
    p: ClusterParams,
) -> Incremental {
    let min_similarity = 1.0 - p.max_distance;
    let mut result = Incremental::default();
    let mut leftovers = Vec::new();
    for (row, &id) in unclustered.ids().iter().enumerate() {
        let nearest = clustered.nearest(unclustered.vector(row), 1);
        match nearest.first() {
            Some(member) if member.similarity >= min_similarity => {
                result.joins.push((id, member.label));
            }
            _ => leftovers.push(row),
        }
    }

    let clusters = dbscan_rows(unclustered, &leftovers, p);
    for (&row, cluster) in leftovers.iter().zip(clusters) {
        let (Some(cluster), Some(&id)) = (cluster, unclustered.ids().get(row)) else {
            continue;
        };
        if result.new_clusters.len() <= cluster {
            result.new_clusters.resize_with(cluster + 1, Vec::new);
        }
        result.new_clusters[cluster].push(id);
    }
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unvisited,
    Noise,
    Member(usize),
}

/// DBSCAN over the given rows of `points` only; the result is indexed like `rows`. Lets
/// [`incremental`] cluster its leftovers without copying their vectors.
fn dbscan_rows(points: &BruteForceIndex, rows: &[usize], p: ClusterParams) -> Vec<Option<usize>> {
    let min_similarity = 1.0 - p.max_distance;
    // A point always counts itself, even when rounding (or a non-normalised vector) would put
    // its self-similarity below the bar: min_cluster_size <= 1 must make every point a cluster.
    let region = |i: usize| -> Vec<usize> {
        let v = points.vector(rows[i]);
        (0..rows.len())
            .filter(|&j| j == i || dot(v, points.vector(rows[j])) >= min_similarity)
            .collect()
    };

    let mut state = vec![State::Unvisited; rows.len()];
    let mut found = 0;
    // Each point is queued at most once (it is claimed when queued), so this stays O(N).
    let mut queue = Vec::new();
    for i in 0..rows.len() {
        if state[i] != State::Unvisited {
            continue;
        }
        let neighbours = region(i);
        if neighbours.len() < p.min_cluster_size {
            // May still become a border point of a later cluster.
            state[i] = State::Noise;
            continue;
        }
        let cluster = found;
        found += 1;
        state[i] = State::Member(cluster);
        claim(&neighbours, cluster, &mut state, &mut queue);
        while let Some(q) = queue.pop() {
            let neighbours = region(q);
            if neighbours.len() >= p.min_cluster_size {
                claim(&neighbours, cluster, &mut state, &mut queue);
            }
        }
    }
    renumber(&state, found, p.min_cluster_size)
}

/// Puts a core point's neighbours into its cluster, queueing the unvisited ones for expansion.
fn claim(neighbours: &[usize], cluster: usize, state: &mut [State], queue: &mut Vec<usize>) {
    for &q in neighbours {
        match state[q] {
            State::Unvisited => {
                state[q] = State::Member(cluster);
                queue.push(q);
            }
            // Already known not to be core: a border point, nothing to expand.
            State::Noise => state[q] = State::Member(cluster),
            State::Member(_) => {}
        }
    }
}

/// Drops clusters below the minimum size (possible when an earlier cluster already took some
/// of a core point's border neighbours) and numbers the rest in order of their first point.
fn renumber(state: &[State], found: usize, min_size: usize) -> Vec<Option<usize>> {
    let mut sizes = vec![0usize; found];
    for s in state {
        if let State::Member(c) = *s {
            sizes[c] += 1;
        }
    }
    let mut number: Vec<Option<usize>> = vec![None; found];
    let mut next = 0;
    state
        .iter()
        .map(|s| {
            let State::Member(c) = *s else {
                return None;
            };
            if sizes[c] < min_size {
                return None;
            }
            Some(*number[c].get_or_insert_with(|| {
                next += 1;
                next - 1
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, basis};

    fn index_of(vectors: &[Vec<f32>], dim: usize) -> BruteForceIndex {
        let mut index = BruteForceIndex::new(dim);
        for (id, v) in vectors.iter().enumerate() {
            index.push(id as i64 + 1000, 0, v).unwrap();
        }
        index
    }

    /// Points on a circle in the first two axes, at the given angles (radians).
    fn on_circle(angles: &[f64], dim: usize) -> Vec<Vec<f32>> {
        angles
            .iter()
            .map(|a| {
                let mut v = vec![0.0; dim];
                v[0] = a.cos() as f32;
                v[1] = a.sin() as f32;
                v
            })
            .collect()
    }

    /// `groups` members (sizes given) jittered around random centres, plus `noise` random
    /// points; shuffled. Returns the vectors and each one's group (None for noise).
    fn synthetic(
        rng: &mut Rng,
        dim: usize,
        sizes: &[usize],
        noise: usize,
    ) -> (Vec<Vec<f32>>, Vec<Option<usize>>) {
        let mut points: Vec<(Vec<f32>, Option<usize>)> = Vec::new();
        for (g, &size) in sizes.iter().enumerate() {
            let centre = rng.unit_vector(dim);
            for _ in 0..size {
                points.push((rng.jitter(&centre, 0.05), Some(g)));
            }
        }
        for _ in 0..noise {
            points.push((rng.unit_vector(dim), None));
        }
        rng.shuffle(&mut points);
        points.into_iter().unzip()
    }

    /// Same partition, and clusters numbered by first appearance.
    fn assert_recovered(got: &[Option<usize>], truth: &[Option<usize>]) {
        let mut map = std::collections::HashMap::new();
        let mut next = 0;
        for (g, t) in got.iter().zip(truth) {
            match (g, t) {
                (None, None) => {}
                (Some(g), Some(t)) => {
                    let expected = *map.entry(*t).or_insert_with(|| {
                        next += 1;
                        next - 1
                    });
                    assert_eq!(*g, expected, "got {got:?}, truth {truth:?}");
                }
                _ => panic!("noise mismatch: got {got:?}, truth {truth:?}"),
            }
        }
    }

    const PARAMS: ClusterParams = ClusterParams {
        max_distance: 0.25,
        min_cluster_size: 3,
    };

    #[test]
    fn separated_groups_are_recovered_exactly_and_noise_stays_noise() {
        let mut rng = Rng::new(5);
        for _ in 0..5 {
            let (vectors, truth) = synthetic(&mut rng, 64, &[3, 5, 8, 12, 4], 6);
            let got = dbscan(&index_of(&vectors, 64), PARAMS);
            assert_recovered(&got, &truth);
        }
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(dbscan(&BruteForceIndex::new(64), PARAMS).is_empty());
        let empty = BruteForceIndex::new(8);
        assert_eq!(incremental(&empty, &empty, PARAMS), Incremental::default());
    }

    #[test]
    fn groups_below_the_minimum_size_are_noise() {
        let mut rng = Rng::new(9);
        let (vectors, truth) = synthetic(&mut rng, 64, &[2, 3, 4], 0);
        let index = index_of(&vectors, 64);
        let small_is_noise: Vec<Option<usize>> =
            truth.iter().map(|t| t.filter(|&g| g != 0)).collect();
        assert_recovered(&dbscan(&index, PARAMS), &small_is_noise);

        let four = ClusterParams {
            min_cluster_size: 4,
            ..PARAMS
        };
        let only_largest: Vec<Option<usize>> =
            truth.iter().map(|t| t.filter(|&g| g == 2)).collect();
        assert_recovered(&dbscan(&index, four), &only_largest);
    }

    #[test]
    fn a_minimum_of_one_makes_every_point_a_cluster() {
        let mut rng = Rng::new(13);
        let (vectors, truth) = synthetic(&mut rng, 64, &[3], 4);
        let index = index_of(&vectors, 64);
        for min_cluster_size in [0, 1] {
            let got = dbscan(
                &index,
                ClusterParams {
                    min_cluster_size,
                    ..PARAMS
                },
            );
            assert!(got.iter().all(Option::is_some));
            let distinct: std::collections::HashSet<_> = got.iter().collect();
            assert_eq!(distinct.len(), 1 + 4);
            // The group still comes out as one cluster.
            let group: std::collections::HashSet<_> = got
                .iter()
                .zip(&truth)
                .filter(|(_, t)| t.is_some())
                .map(|(g, _)| g)
                .collect();
            assert_eq!(group.len(), 1);
        }
    }

    #[test]
    fn a_cluster_left_too_small_by_a_shared_border_point_is_dropped() {
        // Units of 0.2 rad with max_distance exactly one unit. a3 is core (a1, a2, b); b is a
        // border point (a3, x) that A claims first; x is core (b, y, z) but without b its
        // cluster has only three points, below the minimum of four.
        let unit = 0.2;
        let angles = [-0.3, -0.2, 0.0, 0.95, 1.9, 2.0, 2.05].map(|a| a * unit);
        let index = index_of(&on_circle(&angles, 3), 3);
        let p = ClusterParams {
            max_distance: 1.0 - (unit as f32).cos(),
            min_cluster_size: 4,
        };
        assert_eq!(
            dbscan(&index, p),
            vec![Some(0), Some(0), Some(0), Some(0), None, None, None]
        );
    }

    #[test]
    fn clusters_are_numbered_by_their_first_point() {
        // Point 0 is only a border point of the cluster found second (its core comes later).
        let unit = 0.2;
        let angles = [10.0, 0.0, 0.1, 0.2, 10.9, 11.0, 11.1].map(|a| a * unit);
        let index = index_of(&on_circle(&angles, 2), 2);
        let p = ClusterParams {
            max_distance: 1.0 - (unit as f32).cos(),
            min_cluster_size: 3,
        };
        assert_eq!(
            dbscan(&index, p),
            vec![
                Some(0),
                Some(1),
                Some(1),
                Some(1),
                Some(0),
                Some(0),
                Some(0)
            ]
        );
    }

    #[test]
    fn incremental_joins_existing_clusters_and_groups_the_rest() {
        let mut rng = Rng::new(21);
        let dim = 64;
        let (a, b, c, d) = (
            rng.unit_vector(dim),
            rng.unit_vector(dim),
            rng.unit_vector(dim),
            rng.unit_vector(dim),
        );
        let mut clustered = BruteForceIndex::new(dim);
        for id in 0..3 {
            clustered.push(id, 100, &rng.jitter(&a, 0.05)).unwrap();
            clustered.push(10 + id, 200, &rng.jitter(&b, 0.05)).unwrap();
        }
        let mut unclustered = BruteForceIndex::new(dim);
        let mut push = |id: i64, v: Vec<f32>| unclustered.push(id, -1, &v).unwrap();
        push(1, rng.jitter(&a, 0.05));
        push(2, rng.jitter(&c, 0.05));
        push(3, rng.jitter(&b, 0.05));
        push(4, rng.jitter(&c, 0.05));
        push(5, rng.unit_vector(dim));
        push(6, rng.jitter(&d, 0.05));
        push(7, rng.jitter(&c, 0.05));
        push(8, rng.jitter(&a, 0.05));
        push(9, rng.jitter(&d, 0.05));

        let step = incremental(&clustered, &unclustered, PARAMS);
        assert_eq!(step.joins, vec![(1, 100), (3, 200), (8, 100)]);
        // C has three leftovers and forms a cluster; D's two and the stray point stay out.
        assert_eq!(step.new_clusters, vec![vec![2, 4, 7]]);
    }

    #[test]
    fn incremental_joins_the_nearest_member_when_two_clusters_are_in_reach() {
        let mut clustered = BruteForceIndex::new(3);
        clustered.push(1, 100, &basis(0, 3)).unwrap();
        clustered.push(2, 200, &on_circle(&[0.5], 3)[0]).unwrap();
        let mut unclustered = BruteForceIndex::new(3);
        unclustered.push(7, 0, &on_circle(&[0.3], 3)[0]).unwrap();
        unclustered.push(8, 0, &on_circle(&[0.15], 3)[0]).unwrap();
        let p = ClusterParams {
            max_distance: 1.0 - 0.4f32.cos(),
            min_cluster_size: 2,
        };
        let step = incremental(&clustered, &unclustered, p);
        assert_eq!(step.joins, vec![(7, 200), (8, 100)]);
        assert!(step.new_clusters.is_empty());
    }

    #[test]
    fn incremental_across_dimensions_joins_nothing() {
        let mut clustered = BruteForceIndex::new(2);
        clustered.push(1, 100, &[1.0, 0.0]).unwrap();
        let mut unclustered = BruteForceIndex::new(3);
        for id in 0..3 {
            unclustered.push(id, 0, &basis(0, 3)).unwrap();
        }
        let step = incremental(&clustered, &unclustered, PARAMS);
        assert!(step.joins.is_empty());
        assert_eq!(step.new_clusters, vec![vec![0, 1, 2]]);
    }
}
