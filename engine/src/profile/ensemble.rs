//! A gradient-boosted tree ensemble for the same probability, through forust-ml
//! (histogram boosting with the log-loss objective; trees grown best-first to a number of
//! leaves, as scikit-learn's `HistGradientBoostingClassifier` does). Its settings are
//! checked here, so a bad one is an error naming it rather than a panic in the crate.

use forust_ml::data::Matrix;
use forust_ml::gradientbooster::{GradientBooster, GrowPolicy, MissingNodeTreatment};
use forust_ml::objective::ObjectiveType;
use forust_ml::sampler::SampleMethod;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Settings of the ensemble; the defaults are scikit-learn's `HistGradientBoostingClassifier`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoostingSpec {
    /// Trees (boosting rounds).
    pub iterations: usize,
    /// Shrinkage of each tree.
    pub learning_rate: f32,
    /// Leaves per tree (trees grow best-first).
    pub max_leaves: usize,
    /// Depth limit of a tree (0: none but the leaves).
    pub max_depth: usize,
    /// Smallest sum of hessians p(1−p) in a leaf (about 20 persons at p = 0.5 with 5).
    pub min_leaf_weight: f32,
    /// L2 penalty on the leaf values.
    pub l2: f32,
    /// Histogram bins per covariate.
    pub bins: u16,
    /// Seed (the fit is deterministic without subsampling; kept for the record).
    pub seed: u64,
}

impl Default for BoostingSpec {
    fn default() -> Self {
        BoostingSpec {
            iterations: 100,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 0,
            min_leaf_weight: 5.0,
            l2: 0.0,
            bins: 255,
            seed: 0,
        }
    }
}

impl BoostingSpec {
    /// Checks every setting's domain.
    pub fn check(&self) -> Result<()> {
        let bad = |name: &'static str, reason: &str| {
            Err(Error::Param {
                name,
                reason: reason.into(),
            })
        };
        if !(1..=10_000).contains(&self.iterations) {
            return bad("iterations", "give from 1 to 10,000 trees");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate", "give a learning rate in (0, 1]");
        }
        if !(2..=4096).contains(&self.max_leaves) {
            return bad("max_leaves", "give from 2 to 4,096 leaves");
        }
        if self.max_depth > 64 {
            return bad("max_depth", "give a depth up to 64 (0 for no limit)");
        }
        if !(self.min_leaf_weight >= 0.0 && self.min_leaf_weight.is_finite()) {
            return bad("min_leaf_weight", "give a non-negative number");
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return bad("l2", "give a non-negative number");
        }
        if !(2..=255).contains(&self.bins) {
            return bad("bins", "give from 2 to 255 bins");
        }
        Ok(())
    }
}

/// A fitted ensemble, kept as forust's own JSON (what a scoring rule stores).
#[derive(Clone, Serialize, Deserialize)]
pub struct FittedBoosting {
    /// The settings.
    pub spec: BoostingSpec,
    /// forust's model.
    model: String,
    #[serde(skip)]
    booster: Option<std::sync::Arc<GradientBooster>>,
}

impl std::fmt::Debug for FittedBoosting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FittedBoosting")
            .field("spec", &self.spec)
            .field("model_bytes", &self.model.len())
            .finish()
    }
}

fn column_major(x: ArrayView2<f64>) -> Vec<f64> {
    // forust reads a column-major matrix.
    x.t().iter().copied().collect()
}

fn crate_error(e: impl std::fmt::Display) -> Error {
    Error::Estimation {
        method: "boosting",
        reason: e.to_string(),
    }
}

/// Fits the ensemble on the design `x` (its intercept column is ignored by the trees).
pub fn fit(x: ArrayView2<f64>, y: &[bool], spec: &BoostingSpec) -> Result<FittedBoosting> {
    spec.check()?;
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::Param {
            name: "covariates",
            reason: "a covariate value is not a finite number".into(),
        });
    }
    let positives = y.iter().filter(|&&v| v).count();
    if positives == 0 || positives == y.len() {
        return Err(Error::Estimation {
            method: "boosting",
            reason: "the outcome takes one value only: nothing to model".into(),
        });
    }
    let rate = positives as f64 / y.len() as f64;
    let mut booster = GradientBooster::new(
        ObjectiveType::LogLoss,
        spec.iterations,
        spec.learning_rate,
        if spec.max_depth == 0 {
            usize::MAX
        } else {
            spec.max_depth
        },
        spec.max_leaves,
        0.0,
        spec.l2,
        0.0,
        0.0,
        spec.min_leaf_weight,
        (rate / (1.0 - rate)).ln(),
        spec.bins,
        true,
        true,
        None,
        1.0,
        0.2,
        0.1,
        1.0,
        spec.seed,
        f64::NAN,
        false,
        SampleMethod::None,
        GrowPolicy::LossGuide,
        None,
        None,
        false,
        Default::default(),
        MissingNodeTreatment::AssignToParent,
        0,
        false,
    )
    .map_err(crate_error)?;
    let data = column_major(x);
    let matrix = Matrix::new(&data, x.nrows(), x.ncols());
    let yf: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
    booster
        .fit_unweighted(&matrix, &yf, None)
        .map_err(crate_error)?;
    let model = booster.json_dump().map_err(crate_error)?;
    Ok(FittedBoosting {
        spec: spec.clone(),
        model,
        booster: Some(std::sync::Arc::new(booster)),
    })
}

impl FittedBoosting {
    fn booster(&self) -> Result<std::sync::Arc<GradientBooster>> {
        match &self.booster {
            Some(b) => Ok(b.clone()),
            None => GradientBooster::from_json(&self.model)
                .map(std::sync::Arc::new)
                .map_err(crate_error),
        }
    }

    /// Rebuilds the booster after the model was read back from JSON.
    pub fn loaded(mut self) -> Result<Self> {
        self.booster = Some(self.booster()?);
        Ok(self)
    }

    /// P(y = 1) for each row of the design `x`.
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<f64>> {
        let booster = self.booster()?;
        let data = column_major(x);
        let matrix = Matrix::new(&data, x.nrows(), x.ncols());
        Ok(booster
            .predict(&matrix, true)
            .into_iter()
            .map(|eta| 1.0 / (1.0 + (-eta).exp()))
            .collect())
    }
}
