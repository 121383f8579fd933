//! `attendansee bench`, recognition part: the pure algorithms of `attendansee-recognition` at
//! the sizes of a real deployment, on synthetic embeddings so the benchmark needs no models and
//! replays exactly.
//!
//! Two workloads, each at a base size and at double that size, so the report shows how time and
//! memory grow rather than one absolute number from a shared, noisy machine:
//!
//! - assignment: 1,000 face crops in photos of 25, each photo assigned with [`assign_photo`]
//!   against a gallery of 500 enrolled students with 2 reference faces each. Every crop scans the
//!   whole gallery, so time should grow with crops × students (×4 when both double).
//! - clustering: [`dbscan`] over 10,000 unmatched crops. Every point's neighbourhood is a full
//!   scan, so time should grow as N² (×4 when N doubles), while memory should stay linear.
//!
//! Each case runs in a fresh child process (this binary, `bench --recognition-case <case>`), so
//! the peak resident memory it reports (VmHWM) belongs to that case alone and not to whatever
//! the cases before it left in the allocator.
//!
//! The synthetic embeddings behave like a face model's: each identity is a random direction in
//! 128-D, and a face of it is that direction plus Gaussian noise, renormalised. The noise is
//! scaled so two faces of one person have cosine similarity about 0.7 and faces of different
//! people about 0 ± 0.09 (random directions in 128-D), like real embeddings with clean crops.
//! Accuracy on this data is reported only as a sanity check that the timed work did the right
//! thing; it says nothing about accuracy on real faces.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use attendansee_recognition::{
    BruteForceIndex, ClusterParams, Decision, Reason, Thresholds, assign_photo, bcubed, dbscan,
};

/// Embedding dimension of the synthetic faces (MobileFaceNet's is 128).
const DIMENSION: usize = 128;

/// The sizes the benchmark starts from (the issue's: 1,000 crops against 500 students, and
/// 10,000 crops to cluster); each is measured again doubled.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub assign_crops: usize,
    pub assign_students: usize,
    pub cluster_crops: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            assign_crops: 1_000,
            assign_students: 500,
            cluster_crops: 10_000,
        }
    }
}

/// The measured cases, in the order they run; consecutive cases of the same kind double the
/// numbers, which is what the growth lines compare.
fn cases(sizes: Sizes) -> [Case; 4] {
    let Sizes {
        assign_crops: crops,
        assign_students: students,
        cluster_crops,
    } = sizes;
    [
        Case::Assign { crops, students },
        Case::Assign {
            crops: 2 * crops,
            students: 2 * students,
        },
        Case::Cluster {
            crops: cluster_crops,
        },
        Case::Cluster {
            crops: 2 * cluster_crops,
        },
    ]
}

/// Thresholds of the assignment case: a clear match on this data is ~0.7, a stranger's best
/// ~0.3, so these separate them the way the calibrated server thresholds do on real faces.
const THRESHOLDS: Thresholds = Thresholds {
    similarity: 0.5,
    margin: 0.05,
};

const CLUSTER_PARAMS: ClusterParams = ClusterParams {
    max_distance: 0.5,
    min_cluster_size: 2,
};

/// Faces per photo in the assignment case (a class photo).
const PHOTO_FACES: usize = 25;
/// Reference faces per enrolled student.
const REFERENCES_PER_STUDENT: usize = 2;
/// Share of faces in a photo that belong to no enrolled student (visitors, other classes).
const STRANGER_SHARE: f64 = 0.1;
/// Faces per identity in the clustering case.
const FACES_PER_IDENTITY: usize = 10;
/// Share of the clustering case's crops that are people seen only once.
const SINGLETON_SHARE: usize = 10;

/// Length of the noise added to an identity's unit direction: two faces of one identity then
/// have cosine similarity about 1 / (1 + NOISE²) ≈ 0.7.
const NOISE: f64 = 0.65;

/// Every case draws from the same seed, so a rerun measures the same data.
const SEED: u64 = 0x5EED_FACE_2026;

/// One measurement case, run in a fresh child process so its peak memory is its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Assign { crops: usize, students: usize },
    Cluster { crops: usize },
}

impl std::str::FromStr for Case {
    type Err = anyhow::Error;

    /// `assign:<crops>:<students>` or `cluster:<crops>`, every number positive.
    fn from_str(text: &str) -> Result<Self> {
        let number = |part: &str| -> Result<usize> {
            match part.parse::<usize>() {
                Ok(0) => bail!("'{text}': numbers must be positive"),
                Ok(n) => Ok(n),
                Err(e) => Err(anyhow::anyhow!("'{text}': '{part}' is not a number: {e}")),
            }
        };
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["assign", crops, students] => Ok(Self::Assign {
                crops: number(crops)?,
                students: number(students)?,
            }),
            ["cluster", crops] => Ok(Self::Cluster {
                crops: number(crops)?,
            }),
            _ => bail!(
                "'{text}' is not a recognition case: expected assign:<crops>:<students> or cluster:<crops>"
            ),
        }
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Assign { crops, students } => write!(f, "assign:{crops}:{students}"),
            Self::Cluster { crops } => write!(f, "cluster:{crops}"),
        }
    }
}

/// The one JSON line a child prints.
#[derive(Debug, Serialize, Deserialize)]
struct Measurement {
    case: String,
    /// The timed work only: the assignment of every photo, or the clustering.
    seconds: f64,
    /// VmHWM right after the timed work.
    peak_rss_bytes: u64,
    /// VmRSS before any data was made: the binary and runtime, which are not the case's.
    baseline_rss_bytes: u64,
    /// What the case's data structures reserve: index plus query crops. Counts the spare
    /// capacity the index's vectors keep from growing by doubling, so it can exceed what the
    /// data adds to resident memory.
    data_bytes: u64,
    result: CaseResult,
}

/// Untagged so the JSON stays the plain result object; the two kinds have disjoint fields, so
/// reading it back picks the right one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum CaseResult {
    Assign(AssignResult),
    Cluster(ClusterResult),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct AssignResult {
    photos: usize,
    /// Crops of enrolled students.
    enrolled: usize,
    /// Crops of people not in the gallery.
    strangers: usize,
    /// An enrolled face given its own student, or a stranger left unassigned.
    correct: usize,
    /// A face given someone else's student (including a stranger given anyone).
    wrong: usize,
    /// An enrolled face left unassigned.
    unassigned: usize,
    /// Why faces ended unassigned, from the decisions.
    below_threshold: usize,
    ambiguous: usize,
    conflict: usize,
    generate_seconds: f64,
    index_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ClusterResult {
    /// Identities with several faces: the clusters a perfect result would find.
    true_clusters: usize,
    singletons: usize,
    clusters: usize,
    noise: usize,
    bcubed_precision: f64,
    bcubed_recall: f64,
    bcubed_f1: f64,
    generate_seconds: f64,
    index_seconds: f64,
}

/// Parent: runs every case in its own child process and prints a table, then how time and memory
/// grew between each case and the next one of its kind (which doubles the numbers).
pub fn run(sizes: Sizes) -> Result<()> {
    let cases = cases(sizes);
    println!(
        "recognition benchmark: synthetic {DIMENSION}-D embeddings, each case in a fresh process, timed once"
    );
    println!(
        "  {:<18} {:>10} {:>10} {:>10} {:>10} {:>10}  result",
        "case", "time", "baseline", "peak", "above", "data"
    );
    let mut measured = Vec::with_capacity(cases.len());
    for case in cases {
        let m = measure(case)?;
        println!(
            "  {:<18} {:>8.3} s {:>7.1} MB {:>7.1} MB {:>7.1} MB {:>7.2} MB  {}",
            m.case,
            m.seconds,
            megabytes(m.baseline_rss_bytes),
            megabytes(m.peak_rss_bytes),
            megabytes(above_baseline(&m)),
            megabytes(m.data_bytes),
            summary(&m.result)
        );
        measured.push((case, m));
    }
    println!(
        "  (time: the assignment or clustering only; above: peak minus baseline resident memory; data: what the index and crops reserve, growth slack included, which is not resident until touched)"
    );
    for pair in measured.windows(2) {
        let [(small, a), (large, b)] = pair else {
            continue;
        };
        let time = ratio(b.seconds, a.seconds);
        let memory = ratio(above_baseline(b) as f64, above_baseline(a) as f64);
        let data = ratio(b.data_bytes as f64, a.data_bytes as f64);
        match (small, large) {
            (
                Case::Assign { crops, students },
                Case::Assign {
                    crops: crops_b,
                    students: students_b,
                },
            ) => {
                let (c, s) = (
                    *crops_b as f64 / *crops as f64,
                    *students_b as f64 / *students as f64,
                );
                println!(
                    "  assign: ×{c} crops and ×{s} students → time {time} (O(crops·students·d) expected: ×{}), peak memory above baseline {memory} (data {data})",
                    c * s
                );
            }
            (Case::Cluster { crops }, Case::Cluster { crops: crops_b }) => {
                let n = *crops_b as f64 / *crops as f64;
                println!(
                    "  cluster: ×{n} crops → time {time} (O(N²·d) expected: ×{}), peak memory above baseline {memory} (data {data})",
                    n * n
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs one case in a child process and reads back its measurement.
fn measure(case: Case) -> Result<Measurement> {
    let output = Command::new(std::env::current_exe()?)
        .args(["bench", "--recognition-case", &case.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start the child for {case}"))?;
    if !output.status.success() {
        bail!("the child for {case} failed: {}", output.status);
    }
    let stdout = String::from_utf8(output.stdout)
        .with_context(|| format!("the child for {case} printed non-UTF-8"))?;
    // The last JSON-looking line, so a stray line printed before it does not break the read.
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .with_context(|| format!("the child for {case} printed no measurement"))?;
    serde_json::from_str(line)
        .with_context(|| format!("the child for {case} printed an unreadable measurement"))
}

/// Child: builds the case's synthetic data, runs it once, and prints one JSON line.
pub fn run_case(case: Case) -> Result<()> {
    // Before any data exists: what remains above this at the peak is the case's own memory.
    let baseline_rss_bytes = proc_status_bytes("VmRSS")?;
    let mut rng = Rng::new(SEED);
    let (seconds, peak_rss_bytes, data_bytes, result) = match case {
        Case::Assign { crops, students } => {
            let data = assign_data(&mut rng, crops, students)?;
            let start = Instant::now();
            let decisions = assign_all(&data);
            let seconds = start.elapsed().as_secs_f64();
            // Read before scoring, whose bookkeeping is not part of the assignment.
            let peak = proc_status_bytes("VmHWM")?;
            let result = CaseResult::Assign(score_assignment(&data, &decisions));
            (seconds, peak, data.memory_bytes(), result)
        }
        Case::Cluster { crops } => {
            let data = cluster_data(&mut rng, crops)?;
            let start = Instant::now();
            let clusters = dbscan(&data.index, CLUSTER_PARAMS);
            let seconds = start.elapsed().as_secs_f64();
            // Read before scoring: BCubed's hash maps would otherwise set the peak.
            let peak = proc_status_bytes("VmHWM")?;
            let result = CaseResult::Cluster(score_clusters(&data, &clusters));
            (seconds, peak, data.index.memory_bytes(), result)
        }
    };
    let measurement = Measurement {
        case: case.to_string(),
        seconds,
        peak_rss_bytes,
        baseline_rss_bytes,
        data_bytes: data_bytes as u64,
        result,
    };
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(())
}

/// The assignment case's inputs.
struct AssignData {
    /// Reference faces; label = student id (0..students).
    gallery: BruteForceIndex,
    /// Query crops, row-major: crop i is `queries[i*DIMENSION..(i+1)*DIMENSION]`, id i.
    queries: Vec<f32>,
    /// Each crop's true student, None for a stranger.
    truth: Vec<Option<i64>>,
    /// Each photo's crops, as a range of crop numbers.
    photos: Vec<std::ops::Range<usize>>,
    generate: Duration,
    index: Duration,
}

impl AssignData {
    fn memory_bytes(&self) -> usize {
        self.gallery.memory_bytes() + self.queries.capacity() * size_of::<f32>()
    }
}

/// `students` with 2 reference faces each in the gallery, and `crops` query faces in photos of
/// 25: each face a distinct enrolled student of that photo, or (with probability 0.1, or when
/// the photo has more faces than there are students) a stranger seen nowhere else.
fn assign_data(rng: &mut Rng, crops: usize, students: usize) -> Result<AssignData> {
    let (mut generate, mut index) = (Duration::ZERO, Duration::ZERO);
    let mut gallery = BruteForceIndex::new(DIMENSION);
    for student in 0..students {
        for reference in 0..REFERENCES_PER_STUDENT {
            let start = Instant::now();
            let face = rng.face(student as u64);
            let made = Instant::now();
            let id = (student * REFERENCES_PER_STUDENT + reference) as i64;
            gallery.push(id, student as i64, &face)?;
            generate += made - start;
            index += made.elapsed();
        }
    }

    let start = Instant::now();
    let mut queries = Vec::with_capacity(crops * DIMENSION);
    let mut truth = Vec::with_capacity(crops);
    let mut photos = Vec::with_capacity(crops.div_ceil(PHOTO_FACES));
    // Strangers get identities after the students', each its own.
    let mut next_stranger = students as u64;
    // Drawing each photo's students is a partial Fisher-Yates over this, which works whatever
    // order earlier photos left it in.
    let mut roster: Vec<usize> = (0..students).collect();
    while truth.len() < crops {
        let first = truth.len();
        let faces = PHOTO_FACES.min(crops - first);
        let mut present = 0;
        for _ in 0..faces {
            let stranger = rng.unit() < STRANGER_SHARE || present == students;
            if stranger {
                queries.extend(rng.face(next_stranger));
                next_stranger += 1;
                truth.push(None);
            } else {
                let pick = present + rng.below(students - present);
                roster.swap(present, pick);
                let student = roster[present];
                present += 1;
                queries.extend(rng.face(student as u64));
                truth.push(Some(student as i64));
            }
        }
        photos.push(first..truth.len());
    }
    generate += start.elapsed();
    Ok(AssignData {
        gallery,
        queries,
        truth,
        photos,
        generate,
        index,
    })
}

/// The timed work: every photo through [`assign_photo`], as the server does per photo.
fn assign_all(data: &AssignData) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(data.truth.len());
    for photo in &data.photos {
        let crops: Vec<(i64, &[f32])> = photo
            .clone()
            .map(|i| {
                let start = i * DIMENSION;
                (i as i64, &data.queries[start..start + DIMENSION])
            })
            .collect();
        decisions.extend(assign_photo(&crops, &data.gallery, THRESHOLDS));
    }
    decisions
}

fn score_assignment(data: &AssignData, decisions: &[Decision]) -> AssignResult {
    let mut result = AssignResult {
        photos: data.photos.len(),
        enrolled: data.truth.iter().filter(|t| t.is_some()).count(),
        strangers: data.truth.iter().filter(|t| t.is_none()).count(),
        correct: 0,
        wrong: 0,
        unassigned: 0,
        below_threshold: 0,
        ambiguous: 0,
        conflict: 0,
        generate_seconds: data.generate.as_secs_f64(),
        index_seconds: data.index.as_secs_f64(),
    };
    for decision in decisions {
        // Decisions carry the crop id, which is the crop's number.
        let truth = usize::try_from(decision.crop)
            .ok()
            .and_then(|i| data.truth.get(i))
            .copied()
            .flatten();
        match (decision.student, truth) {
            (Some(given), Some(actual)) if given == actual => result.correct += 1,
            (Some(_), _) => result.wrong += 1,
            (None, None) => result.correct += 1,
            (None, Some(_)) => result.unassigned += 1,
        }
        match decision.reason {
            Reason::BelowThreshold => result.below_threshold += 1,
            Reason::Ambiguous => result.ambiguous += 1,
            Reason::Conflict => result.conflict += 1,
            // assign_photo never judges quality: the services do, before it.
            Reason::Matched
            | Reason::NoStudents
            | Reason::TooSmall
            | Reason::Blurred
            | Reason::Profile => {}
        }
    }
    result
}

/// The clustering case's inputs.
struct ClusterData {
    /// The crops, id = position, label -1 (unmatched crops have no student).
    index: BruteForceIndex,
    /// Each crop's identity.
    truth: Vec<usize>,
    true_clusters: usize,
    singletons: usize,
    generate: Duration,
    index_time: Duration,
}

/// `crops` faces: 10% people seen once, the rest 10 faces per identity, in random order (as
/// unmatched crops of many sessions arrive).
fn cluster_data(rng: &mut Rng, crops: usize) -> Result<ClusterData> {
    let start = Instant::now();
    let singletons = crops / SINGLETON_SHARE;
    let grouped = crops - singletons;
    let true_clusters = if grouped == 0 {
        0
    } else {
        (grouped / FACES_PER_IDENTITY).max(1)
    };
    // Identities 0..true_clusters share the grouped faces round-robin; each singleton gets its
    // own identity after them.
    let mut truth: Vec<usize> = (0..grouped)
        .map(|i| i % true_clusters.max(1))
        .chain((0..singletons).map(|i| true_clusters + i))
        .collect();
    rng.shuffle(&mut truth);
    let mut generate = start.elapsed();

    let mut index_time = Duration::ZERO;
    let mut index = BruteForceIndex::new(DIMENSION);
    for (id, &identity) in truth.iter().enumerate() {
        let start = Instant::now();
        let face = rng.face(identity as u64);
        let made = Instant::now();
        index.push(id as i64, -1, &face)?;
        generate += made - start;
        index_time += made.elapsed();
    }
    Ok(ClusterData {
        index,
        truth,
        true_clusters,
        singletons,
        generate,
        index_time,
    })
}

fn score_clusters(data: &ClusterData, clusters: &[Option<usize>]) -> ClusterResult {
    let found: std::collections::HashSet<usize> = clusters.iter().flatten().copied().collect();
    let score = bcubed(&data.truth, clusters);
    ClusterResult {
        true_clusters: data.true_clusters,
        singletons: data.singletons,
        clusters: found.len(),
        noise: clusters.iter().filter(|c| c.is_none()).count(),
        bcubed_precision: score.precision,
        bcubed_recall: score.recall,
        bcubed_f1: score.f1,
        generate_seconds: data.generate.as_secs_f64(),
        index_seconds: data.index_time.as_secs_f64(),
    }
}

/// One line of the table's result column.
fn summary(result: &CaseResult) -> String {
    match result {
        CaseResult::Assign(r) => format!(
            "{} photos: correct {}, wrong {}, unassigned {} of {} faces ({} strangers); setup {:.2} s",
            r.photos,
            r.correct,
            r.wrong,
            r.unassigned,
            r.enrolled + r.strangers,
            r.strangers,
            r.generate_seconds + r.index_seconds
        ),
        CaseResult::Cluster(r) => format!(
            "{} clusters (truth {}), {} noise ({} singletons), BCubed F1 {:.3}; setup {:.2} s",
            r.clusters,
            r.true_clusters,
            r.noise,
            r.singletons,
            r.bcubed_f1,
            r.generate_seconds + r.index_seconds
        ),
    }
}

fn above_baseline(m: &Measurement) -> u64 {
    m.peak_rss_bytes.saturating_sub(m.baseline_rss_bytes)
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// "×1.9", or "n/a" when the smaller case measured nothing to divide by.
fn ratio(large: f64, small: f64) -> String {
    if small > 0.0 {
        format!("×{:.1}", large / small)
    } else {
        "n/a".to_owned()
    }
}

/// A `kB` field of /proc/self/status, in bytes (Linux only, like the rest of the deployment).
fn proc_status_bytes(field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    let kib: u64 = value
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("unreadable {field} in /proc/self/status: '{value}'"))?;
    Ok(kib * 1024)
}

/// splitmix64: deterministic, fast, and good enough for synthetic data without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n; n must be positive.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller). Gaussian coordinates make a normalised vector's direction
    /// uniform on the sphere, which uniform coordinates would not.
    fn gaussian(&mut self) -> f64 {
        // 1 - unit() is in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.unit()).cos()
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// A new face of `identity`: its direction plus noise of length about [`NOISE`],
    /// normalised.
    fn face(&mut self, identity: u64) -> Vec<f32> {
        let centre = identity_direction(identity);
        // Per-coordinate deviation NOISE/√d gives the noise vector a length of about NOISE.
        let spread = NOISE / (DIMENSION as f64).sqrt();
        let face: Vec<f64> = centre
            .iter()
            .map(|c| c + spread * self.gaussian())
            .collect();
        normalised(&face)
    }
}

/// An identity's unit direction, derived from its number alone: no table of centres, so the
/// only memory the data takes is the faces themselves.
fn identity_direction(identity: u64) -> Vec<f64> {
    let mut rng = Rng::new(SEED ^ identity.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let v: Vec<f64> = (0..DIMENSION).map(|_| rng.gaussian()).collect();
    let norm = length(&v);
    v.into_iter().map(|x| x / norm).collect()
}

fn normalised(v: &[f64]) -> Vec<f32> {
    let norm = length(v);
    v.iter().map(|x| (x / norm) as f32).collect()
}

/// Euclidean length, never zero, so dividing by it cannot make NaNs.
fn length(v: &[f64]) -> f64 {
    v.iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attendansee_recognition::{VectorIndex, dot};

    #[test]
    fn cases_parse_and_print_the_same_syntax() {
        for text in ["assign:1000:500", "cluster:10000", "assign:50:20"] {
            let case: Case = text.parse().unwrap();
            assert_eq!(case.to_string(), text);
        }
        assert_eq!(
            "assign:1000:500".parse::<Case>().unwrap(),
            Case::Assign {
                crops: 1000,
                students: 500
            }
        );
        for bad in [
            "",
            "assign",
            "assign:10",
            "assign:10:0",
            "cluster:0",
            "cluster:-1",
            "cluster:10:10",
            "sort:10",
            "cluster:ten",
        ] {
            assert!(bad.parse::<Case>().is_err(), "{bad}");
        }
        for case in cases(Sizes::default()) {
            assert_eq!(case.to_string().parse::<Case>().unwrap(), case);
        }
    }

    #[test]
    fn synthetic_faces_have_face_like_similarities() {
        let mut rng = Rng::new(1);
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for identity in 0..200 {
            let (a, b) = (rng.face(identity), rng.face(identity));
            let other = rng.face(identity + 1000);
            same.push(f64::from(dot(&a, &b)));
            different.push(f64::from(dot(&a, &other)));
            assert!((f64::from(dot(&a, &a)) - 1.0).abs() < 1e-5);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let deviation = |v: &[f64]| {
            let m = mean(v);
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
        };
        assert!((0.6..0.8).contains(&mean(&same)), "same {}", mean(&same));
        assert!(
            mean(&different).abs() < 0.03,
            "different {}",
            mean(&different)
        );
        assert!(deviation(&different) < 0.12, "{}", deviation(&different));
        // The same identity gives the same direction every time.
        assert_eq!(identity_direction(7), identity_direction(7));
    }

    #[test]
    fn a_small_assignment_is_right_on_easy_data() {
        let data = assign_data(&mut Rng::new(SEED), 50, 20).unwrap();
        assert_eq!(data.truth.len(), 50);
        assert_eq!(data.queries.len(), 50 * DIMENSION);
        assert_eq!(data.gallery.len(), 20 * REFERENCES_PER_STUDENT);
        assert_eq!(data.photos, vec![0..25, 25..50]);
        // A photo never shows one student twice.
        for photo in &data.photos {
            let students: Vec<i64> = data.truth[photo.clone()]
                .iter()
                .flatten()
                .copied()
                .collect();
            let distinct: std::collections::HashSet<i64> = students.iter().copied().collect();
            assert_eq!(distinct.len(), students.len());
            assert!(students.len() <= 20);
        }
        let decisions = assign_all(&data);
        assert_eq!(decisions.len(), 50);
        let result = score_assignment(&data, &decisions);
        assert_eq!(result.enrolled + result.strangers, 50);
        // 25 faces and only 20 students: every photo has strangers.
        assert!(result.strangers >= 10, "{result:?}");
        assert_eq!(result.wrong, 0, "{result:?}");
        assert_eq!(result.unassigned, 0, "{result:?}");
        assert_eq!(result.correct, 50, "{result:?}");
    }

    #[test]
    fn a_small_clustering_recovers_the_identities() {
        let data = cluster_data(&mut Rng::new(SEED), 300).unwrap();
        assert_eq!(data.index.len(), 300);
        assert_eq!((data.true_clusters, data.singletons), (27, 30));
        let clusters = dbscan(&data.index, CLUSTER_PARAMS);
        let result = score_clusters(&data, &clusters);
        assert!(result.bcubed_f1 > 0.9, "{result:?}");
        assert!(result.clusters.abs_diff(27) <= 2, "{result:?}");
    }

    #[test]
    fn tiny_and_odd_sizes_do_not_panic() {
        let data = cluster_data(&mut Rng::new(3), 5).unwrap();
        assert_eq!((data.true_clusters, data.singletons), (1, 0));
        let data = assign_data(&mut Rng::new(3), 3, 1).unwrap();
        assert_eq!(data.truth.iter().flatten().count(), 1);
        assert_eq!(score_assignment(&data, &assign_all(&data)).wrong, 0);
    }

    #[test]
    fn a_measurement_reads_back_as_the_kind_it_was() {
        let cluster = CaseResult::Cluster(ClusterResult {
            true_clusters: 1,
            singletons: 2,
            clusters: 3,
            noise: 4,
            bcubed_precision: 0.5,
            bcubed_recall: 0.25,
            bcubed_f1: 1.0 / 3.0,
            generate_seconds: 0.1,
            index_seconds: 0.2,
        });
        let m = Measurement {
            case: "cluster:7".into(),
            seconds: 1.5,
            peak_rss_bytes: 10,
            baseline_rss_bytes: 4,
            data_bytes: 3,
            result: cluster.clone(),
        };
        let line = serde_json::to_string(&m).unwrap();
        assert!(line.contains(r#""result":{"true_clusters":1"#), "{line}");
        let back: Measurement = serde_json::from_str(&line).unwrap();
        assert_eq!(back.result, cluster);
        assert_eq!(above_baseline(&back), 6);
    }

    #[test]
    fn proc_status_fields_are_read_in_bytes() {
        let rss = proc_status_bytes("VmRSS").unwrap();
        let peak = proc_status_bytes("VmHWM").unwrap();
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
        assert!(proc_status_bytes("NoSuchField").is_err());
    }
}
