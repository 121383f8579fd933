//! The model catalog as data: what each model file is, where it comes from, how to feed it and
//! what it returns. Built-in entries below; users add or override entries in the config file.

use serde::{Deserialize, Serialize};

use crate::geometry::Point;
use crate::imageops::{ColorOrder, Normalization};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Detector,
    Recognizer,
}

/// How a model's file is obtained, as `models list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// `models fetch` downloads the file itself.
    Download { url: &'a str },
    /// `models fetch` downloads a zip archive and installs one member of it.
    ArchiveMember { url: &'a str, member: &'a str },
    /// Not published: a command makes it from the upstream weights.
    Export { command: &'a str },
    /// The user brings the file.
    OwnFile,
}

impl ModelSpec {
    pub fn source(&self) -> Source<'_> {
        match (&self.url, &self.member, &self.export) {
            (Some(url), Some(member), _) => Source::ArchiveMember { url, member },
            (Some(url), None, _) => Source::Download { url },
            (None, _, Some(command)) => Source::Export { command },
            (None, _, None) => Source::OwnFile,
        }
    }
}

impl std::fmt::Display for Source<'_> {
    /// One short line for `models list`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Download { .. } => write!(f, "download"),
            Source::ArchiveMember { url, member } => write!(
                f,
                "archive member {member} of {}",
                url.rsplit('/').next().unwrap_or(url)
            ),
            Source::Export { command } => {
                let script = command
                    .split_whitespace()
                    .find(|w| w.starts_with("tools/"))
                    .unwrap_or("a script");
                write!(f, "export script {script}")
            }
            Source::OwnFile => write!(f, "your own file"),
        }
    }
}

/// How a detector's outputs are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorFamily {
    /// OpenCV Zoo YuNet: outputs named `cls_8` … `kps_32`.
    Yunet,
    /// InsightFace SCRFD: 9 outputs, scores/bbox/kps × strides 8, 16, 32, in that order.
    Scrfd,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// What the API and the command line call it.
    pub name: String,
    pub kind: ModelKind,
    /// File name inside the model directory.
    pub file: String,
    /// Where `models fetch` downloads it from; `None` when it must be obtained by hand.
    #[serde(default)]
    pub url: Option<String>,
    /// When `url` is a zip archive: the member to install from it (its path inside the archive, or
    /// just its file name when that is unique there). Only that member is extracted.
    #[serde(default)]
    pub member: Option<String>,
    /// When no file is published: the command that makes it (shown by `models list` and in the
    /// "not installed" errors).
    #[serde(default)]
    pub export: Option<String>,
    /// Lower-case hex SHA-256 of the installed file (of the member, for an archive); `None` when
    /// unknown (then it cannot be verified).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Input width and height in pixels.
    pub input_size: [u32; 2],
    pub color: ColorOrder,
    pub normalization: Normalization,
    /// Detectors: which output layout.
    #[serde(default)]
    pub family: Option<DetectorFamily>,
    /// Detectors: minimum score of a face.
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Detectors: IoU above which the weaker of two faces is dropped.
    #[serde(default)]
    pub nms_threshold: Option<f32>,
    /// Detectors: how many times closer the second pass over overlapping tiles looks at a photo
    /// crowded with small faces (default 3; 1 turns it off). docs/photos.md has its cost.
    #[serde(default)]
    pub small_face_zoom: Option<f32>,
    /// Recognizers: where the five landmarks go in the aligned crop.
    #[serde(default)]
    pub template: Option<[Point; 5]>,
    /// Recognizers: length of the embedding.
    #[serde(default)]
    pub dimension: Option<usize>,
    /// Recognizers: the cosine similarity from which a face is assigned to a student
    /// automatically (calibrated: docs/calibration.md).
    #[serde(default)]
    pub match_threshold: Option<f32>,
    /// Recognizers: how far the best student must lead the runner-up to be assigned.
    #[serde(default)]
    pub match_margin: Option<f32>,
    /// Recognizers: the similarity from which a face below the threshold is shown as a
    /// suggestion only (never assigned automatically).
    #[serde(default)]
    pub suggest_threshold: Option<f32>,
    /// Licence and origin, shown by `models list`.
    #[serde(default)]
    pub notes: String,
}

/// MobileFaceNet's matching, calibrated with `tools/calibrate.py` on ../shared/faces (157 faces,
/// 446 genuine and 2192 impostor pairs): the highest impostor pair is 0.491, so 0.50 accepts none
/// of them and rejects 3.6% of genuine pairs; 99% of impostor pairs are below 0.30.
const MOBILEFACENET_MATCHING: Matching = Matching(0.50, 0.05, 0.30);

/// Placeholders until `tools/calibrate.py` runs on the real weights (none on this machine): the
/// thresholds are DeepFace's published cosine *distance* thresholds (`verification.py`
/// `find_threshold`) as similarities, 1 − distance — `Facenet` 0.40, `Facenet512` 0.30,
/// `Buffalo_L` (InsightFace's buffalo_l recognizer, our `arcface`) 0.55. The margin and the
/// suggestion level (0.15 below) are ours; docs/calibration.md.
const FACENET_MATCHING: Matching = Matching(0.60, 0.05, 0.45);
const FACENET512_MATCHING: Matching = Matching(0.70, 0.05, 0.55);
const ARCFACE_MATCHING: Matching = Matching(0.45, 0.05, 0.30);

/// InsightFace's model pack release that holds `arcface` and the SCRFD detectors.
const INSIGHTFACE_RELEASE: &str =
    "https://github.com/deepinsight/insightface/releases/download/v0.7";

/// The ArcFace 5-point template for 112×112 crops (InsightFace `arcface_dst`).
pub const ARCFACE_TEMPLATE_112: [Point; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The recognizer used when none is named.
pub const DEFAULT_RECOGNIZER: &str = "mobilefacenet";
/// The detector used when none is named.
pub const DEFAULT_DETECTOR: &str = "yunet";

fn scaled_template(size: u32) -> [Point; 5] {
    let k = size as f32 / 112.0;
    ARCFACE_TEMPLATE_112.map(|[x, y]| [x * k, y * k])
}

const IMAGENET: Normalization = Normalization::channels(
    [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
    [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
);

/// DeepFace's default input (`normalization="base"`): its faces arrive as RGB scaled to [0, 1]
/// (`extract_faces` divides by 255) and `represent` flips them to BGR before the model.
const DEEPFACE_BASE: Normalization = Normalization::channels([0.0; 3], [255.0; 3]);

fn detector(name: &str, file: &str, family: DetectorFamily, score: f32, nms: f32) -> ModelSpec {
    let (color, normalization) = match family {
        DetectorFamily::Yunet => (ColorOrder::Bgr, Normalization::channels([0.0; 3], [1.0; 3])),
        DetectorFamily::Scrfd => (
            ColorOrder::Rgb,
            Normalization::channels([127.5; 3], [128.0; 3]),
        ),
    };
    ModelSpec {
        name: name.into(),
        kind: ModelKind::Detector,
        file: file.into(),
        url: None,
        member: None,
        export: None,
        sha256: None,
        input_size: [640, 640],
        color,
        normalization,
        family: Some(family),
        score_threshold: Some(score),
        nms_threshold: Some(nms),
        small_face_zoom: None,
        template: None,
        dimension: None,
        match_threshold: None,
        match_margin: None,
        suggest_threshold: None,
        notes: String::new(),
    }
}

/// Where a recognizer's automatic assignment starts: (threshold, margin, suggestions from).
struct Matching(f32, f32, f32);

fn recognizer(
    name: &str,
    file: &str,
    size: u32,
    color: ColorOrder,
    normalization: Normalization,
    dimension: usize,
    Matching(threshold, margin, suggest): Matching,
) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        kind: ModelKind::Recognizer,
        file: file.into(),
        url: None,
        member: None,
        export: None,
        sha256: None,
        input_size: [size, size],
        color,
        normalization,
        family: None,
        score_threshold: None,
        nms_threshold: None,
        small_face_zoom: None,
        template: Some(scaled_template(size)),
        dimension: Some(dimension),
        match_threshold: Some(threshold),
        match_margin: Some(margin),
        suggest_threshold: Some(suggest),
        notes: String::new(),
    }
}

fn with(mut spec: ModelSpec, url: Option<&str>, sha256: Option<&str>, notes: &str) -> ModelSpec {
    spec.url = url.map(Into::into);
    spec.sha256 = sha256.map(Into::into);
    spec.notes = notes.into();
    spec
}

/// `spec` installed from member `member` of the zip archive at `url`.
fn in_archive(mut spec: ModelSpec, url: &str, member: &str) -> ModelSpec {
    spec.url = Some(url.into());
    spec.member = Some(member.into());
    spec
}

/// `spec` made by the FaceNet export script from DeepFace's published Keras weights.
fn exported(mut spec: ModelSpec, variant: &str, weights: &str) -> ModelSpec {
    spec.export = Some(format!(
        "download {weights}, then: python tools/export_facenet.py --variant {variant} --weights {} --out {}",
        weights.rsplit('/').next().unwrap_or(weights),
        spec.file
    ));
    spec
}

/// The built-in catalog. YuNet's threshold is 0.75, not OpenCV's default 0.9: on the 1927 Solvay
/// photo (29 faces, shrunk to 640×640) 0.9 finds 2 — measured identically with OpenCV's
/// `FaceDetectorYN` and with this crate. Over every photo in ../shared/faces, the detections
/// between 0.6 and 0.8 are false positives at 0.607, 0.625 (foliage) and 0.715 (a painting), and
/// true faces from 0.775 up: 0.75 separates them.
pub fn builtin() -> Vec<ModelSpec> {
    let arcface_input = Normalization::channels([127.5; 3], [127.5; 3]);
    vec![
        with(
            detector(
                "yunet",
                "face_detection_yunet_2023mar.onnx",
                DetectorFamily::Yunet,
                0.75,
                0.3,
            ),
            Some(
                "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
            ),
            Some("8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"),
            "YuNet-s, OpenCV Zoo, MIT",
        ),
        in_archive(
            with(
                detector("scrfd", "det_2.5g.onnx", DetectorFamily::Scrfd, 0.5, 0.4),
                None,
                Some("041f73f47371333d1d17a6fee6c8ab4e6aecabefe398ff32cca4e2d5eaee0af9"),
                "SCRFD-2.5GF from InsightFace buffalo_m.zip; non-commercial research only",
            ),
            &format!("{INSIGHTFACE_RELEASE}/buffalo_m.zip"),
            "det_2.5g.onnx",
        ),
        in_archive(
            with(
                detector(
                    "scrfd-500m",
                    "det_500m.onnx",
                    DetectorFamily::Scrfd,
                    0.5,
                    0.4,
                ),
                None,
                Some("5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a"),
                "SCRFD-0.5GF from InsightFace buffalo_s.zip; non-commercial research only",
            ),
            &format!("{INSIGHTFACE_RELEASE}/buffalo_s.zip"),
            "det_500m.onnx",
        ),
        with(
            recognizer(
                "mobilefacenet",
                "MobileFaceNet.onnx",
                112,
                ColorOrder::Rgb,
                IMAGENET,
                128,
                MOBILEFACENET_MATCHING,
            ),
            Some("https://github.com/foamliu/MobileFaceNet/raw/master/weights/MobileFaceNet.onnx"),
            Some("b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507"),
            "foamliu/MobileFaceNet, Apache-2.0, LFW 99.48% (published); fixed batch 1",
        ),
        with(
            recognizer(
                "mobilefacenet-batch",
                "mobilefacenet_dynbatch.onnx",
                112,
                ColorOrder::Rgb,
                IMAGENET,
                128,
                MOBILEFACENET_MATCHING,
            ),
            None,
            Some("4bc1ac98f9d75932bea11c09720a91af0866401c817ec2b1dd7b87f3b952b95a"),
            "mobilefacenet with a dynamic batch axis; same outputs",
        ),
        in_archive(
            with(
                recognizer(
                    "arcface",
                    "w600k_r50.onnx",
                    112,
                    ColorOrder::Rgb,
                    arcface_input,
                    512,
                    ARCFACE_MATCHING,
                ),
                None,
                // The member's checksum, not the archive's: the archive is never kept.
                Some("4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"),
                "ArcFace R50 (WebFace600K), member w600k_r50.onnx of InsightFace buffalo_l.zip; \
                 non-commercial research only; RGB (x-127.5)/127.5 as InsightFace's ArcFaceONNX",
            ),
            &format!("{INSIGHTFACE_RELEASE}/buffalo_l.zip"),
            "w600k_r50.onnx",
        ),
        exported(
            with(
                recognizer(
                    "facenet",
                    "facenet.onnx",
                    160,
                    ColorOrder::Bgr,
                    DEEPFACE_BASE,
                    128,
                    FACENET_MATCHING,
                ),
                None,
                None,
                "DeepFace Facenet (InceptionResNetV1, 128-D; Sandberg's FaceNet weights as converted \
                 by DeepFace, MIT); input as DeepFace's default normalization=\"base\": BGR scaled to \
                 [0, 1] (its \"Facenet\" option = per_image_standardization = true); no published \
                 ONNX, so no SHA-256 here: pin the one the export script prints",
            ),
            "facenet",
            "https://github.com/serengil/deepface_models/releases/download/v1.0/facenet_weights.h5",
        ),
        exported(
            with(
                recognizer(
                    "facenet512",
                    "facenet512.onnx",
                    160,
                    ColorOrder::Bgr,
                    DEEPFACE_BASE,
                    512,
                    FACENET512_MATCHING,
                ),
                None,
                None,
                "DeepFace Facenet512 (InceptionResNetV1, 512-D; Sandberg's FaceNet weights as \
                 converted by DeepFace, MIT); input as DeepFace's default normalization=\"base\": \
                 BGR scaled to [0, 1]; no published ONNX, so no SHA-256 here: pin the one the \
                 export script prints",
            ),
            "facenet512",
            "https://github.com/serengil/deepface_models/releases/download/v1.0/facenet512_weights.h5",
        ),
    ]
}

/// The built-in catalog with `extra` entries added, replacing built-ins of the same name.
pub fn with_overrides(extra: &[ModelSpec]) -> Vec<ModelSpec> {
    let mut catalog = builtin();
    for spec in extra {
        match catalog.iter_mut().find(|s| s.name == spec.name) {
            Some(existing) => *existing = spec.clone(),
            None => catalog.push(spec.clone()),
        }
    }
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_unique_and_entries_are_complete_for_their_kind() {
        let catalog = builtin();
        let mut names: Vec<_> = catalog.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), catalog.len());
        for spec in &catalog {
            match spec.kind {
                ModelKind::Detector => assert!(
                    spec.family.is_some() && spec.score_threshold.is_some(),
                    "{}",
                    spec.name
                ),
                ModelKind::Recognizer => assert!(
                    spec.template.is_some() && spec.dimension.is_some(),
                    "{}",
                    spec.name
                ),
            }
            if let Some(sha) = &spec.sha256 {
                assert!(
                    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{}",
                    spec.name
                );
            }
        }
        for required in ["yunet", "scrfd", "arcface", "facenet", "mobilefacenet"] {
            assert!(names.contains(&required), "{required}");
        }
    }

    /// What issue 17 promised about the models of the service this one replaces.
    #[test]
    fn deepface_and_insightface_entries_say_what_their_upstreams_do() {
        let get = |name: &str| builtin().into_iter().find(|s| s.name == name).unwrap();
        for (name, dimension, threshold) in [("facenet", 128, 0.60), ("facenet512", 512, 0.70)] {
            let spec = get(name);
            assert_eq!(spec.dimension, Some(dimension), "{name}");
            assert_eq!(spec.input_size, [160, 160], "{name}");
            // DeepFace's default: faces in [0, 1], flipped to BGR by `represent`.
            assert_eq!(spec.color, ColorOrder::Bgr, "{name}");
            assert_eq!(spec.normalization, DEEPFACE_BASE, "{name}");
            assert_eq!(spec.match_threshold, Some(threshold), "{name}");
            let export = spec.export.as_deref().unwrap_or_default();
            assert!(
                export.contains(&format!(
                    "tools/export_facenet.py --variant {name} --weights {name}_weights.h5 --out {name}.onnx"
                )),
                "{export}"
            );
            assert!(spec.url.is_none() && spec.sha256.is_none(), "{name}");
        }
        let arcface = get("arcface");
        assert_eq!(
            (arcface.url.as_deref(), arcface.member.as_deref()),
            (
                Some(
                    "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
                ),
                Some("w600k_r50.onnx")
            )
        );
        assert_eq!(arcface.dimension, Some(512));
        assert_eq!(arcface.match_threshold, Some(0.45));
    }

    #[test]
    fn overrides_replace_by_name_and_add_new_entries() {
        let mut changed = builtin().into_iter().find(|s| s.name == "facenet").unwrap();
        changed.sha256 = Some("ab".repeat(32));
        let mut new = changed.clone();
        new.name = "my-model".into();
        let catalog = with_overrides(&[changed.clone(), new]);
        assert_eq!(
            catalog.iter().find(|s| s.name == "facenet").unwrap(),
            &changed
        );
        assert!(catalog.iter().any(|s| s.name == "my-model"));
        assert_eq!(catalog.len(), builtin().len() + 1);
    }
}
