//! Which recognizer a course uses and how its faces are matched, and whether a model named by a
//! request is known and installed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use attendansee_recognition::{ClusterParams, Thresholds};
use attendansee_store::Course;
use attendansee_vocabulary::ErrorKind;

use crate::{ServiceError, ServiceResult, Services};

/// How a recognizer's faces are matched: assigned from `threshold` with `margin` over the
/// runner-up; shown as a suggestion only from `suggest`. Clusters link faces at least as similar
/// as `threshold` (the same number, so one number explains both).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matching {
    pub threshold: f32,
    pub margin: f32,
    pub suggest: f32,
}

/// The default matching of each model, from the catalog.
pub type MatchingTable = BTreeMap<String, Matching>;

/// A group needs two faces: one face alone is just an unknown face.
pub const MIN_CLUSTER_SIZE: usize = 2;

impl Matching {
    /// For a model the catalog has no calibration for: MobileFaceNet's numbers.
    pub const FALLBACK: Matching = Matching {
        threshold: 0.50,
        margin: 0.05,
        suggest: 0.30,
    };

    pub fn thresholds(self) -> Thresholds {
        Thresholds {
            similarity: self.threshold,
            margin: self.margin,
        }
    }

    pub fn cluster_params(self) -> ClusterParams {
        ClusterParams {
            max_distance: 1.0 - self.threshold,
            min_cluster_size: MIN_CLUSTER_SIZE,
        }
    }
}

impl Services {
    /// Checks a recognizer name given in `field`: unknown → `ValidationError` listing the
    /// catalog; known but not loaded by the workers → `ModelNotAvailable` with how to install it.
    pub fn check_recognizer(&self, field: &str, name: &str) -> ServiceResult<()> {
        let settings = &self.settings;
        if !settings
            .catalog_recognizers
            .iter()
            .chain(&settings.recognizers)
            .any(|m| m == name)
        {
            let mut available = settings.catalog_recognizers.clone();
            available.extend(
                settings
                    .recognizers
                    .iter()
                    .filter(|r| !settings.catalog_recognizers.contains(r))
                    .cloned(),
            );
            return Err(ServiceError::invalid_field(
                field,
                format!(
                    "Unknown model '{name}'. Available models: {}",
                    available.join(", ")
                ),
            )
            .with_details(serde_json::json!({"field": field, "available_models": available})));
        }
        if !settings.recognizers.iter().any(|m| m == name) {
            let install = settings
                .install_advice
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("install it with `attendansee models fetch {name}`"));
            return Err(ServiceError::new(
                ErrorKind::ModelNotAvailable,
                format!(
                    "Model '{name}' is not installed on this server (loaded: {}); {install}, \
                     and start the server with `--recognizers`",
                    settings.recognizers.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The server's default recognizer.
    pub fn default_model(&self) -> String {
        self.settings
            .recognizers
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// The recognizer a course uses: its own setting, else the server's default.
    pub fn course_model(&self, course: &Course) -> String {
        course
            .embedding_model
            .clone()
            .unwrap_or_else(|| self.default_model())
    }

    /// The model a course uses and how its faces are matched: the course's overrides, else the
    /// model's calibrated values, else [`Matching::FALLBACK`].
    pub fn course_matching(&self, course: &Course) -> (String, Matching) {
        let model = self.course_model(course);
        let base = self
            .settings
            .matching
            .get(&model)
            .copied()
            .unwrap_or(Matching::FALLBACK);
        let matching = Matching {
            threshold: course.match_threshold.unwrap_or(base.threshold),
            margin: course.match_margin.unwrap_or(base.margin),
            suggest: base
                .suggest
                .min(course.match_threshold.unwrap_or(base.threshold)),
        };
        (model, matching)
    }
}
