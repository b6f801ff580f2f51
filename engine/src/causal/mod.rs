//! Counterfactual impact evaluation of services: did a service raise employment, for
//! whom, and how sure are we.
//!
//! Units come in a [`sample::Sample`] (outcome, treatment, covariates, optional clusters
//! and strata), read from CSV by [`table`] and held in a canonical order so that no
//! result depends on the input's row order. The estimators follow one vocabulary,
//! spec → `fit` → fitted result:
//!
//! * [`logit::Logit`]: the propensity score, by Newton–Raphson with separation checks;
//! * [`ols::Ols`]: least squares with classical, HC0–HC3 and cluster-robust covariance;
//! * [`weighting::WeightingSpec`]: IPW, regression adjustment and AIPW as M-estimators
//!   whose sandwich standard errors account for the estimated nuisance models;
//! * [`matching::MatchingSpec`]: nearest-neighbour matching with Abadie–Imbens errors;
//! * [`did`]: 2×2, two-way fixed effects, event study, Callaway–Sant'Anna;
//! * [`balance`], [`sensitivity`] (Rosenbaum bounds, E-values), [`bootstrap`];
//! * [`evaluate`]: one run of `occupa evaluate`, with graded diagnostics and power.
//!
//! Each is checked against a reference tool's output in `tests/fixtures/` (statsmodels,
//! R Matching and MatchIt, rbounds' formulas, csdid) and against the simulator's
//! planted effects (`benches/validate_causal_coverage.py`).

// Numerical code indexes several arrays in step; index loops read like the formulas.
#![allow(clippy::needless_range_loop)]

pub mod balance;
pub mod bootstrap;
pub mod density;
pub mod did;
pub mod evaluate;
pub use crate::linalg;
pub mod logit;
pub mod matching;
pub mod ols;
pub mod rdd;
mod replicate;
pub mod runner;
pub mod sample;
pub mod sensitivity;
pub mod support;
pub mod table;
pub mod weighting;

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// Whose effect: everyone's (ATE) or the treated's (ATT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimand {
    /// Average treatment effect over the whole population.
    Ate,
    /// Average treatment effect on the treated.
    Att,
    /// Average treatment effect on the controls (matching).
    Atc,
}

impl Estimand {
    /// Parses `ate`, `att` or `atc`.
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ate" => Ok(Estimand::Ate),
            "att" => Ok(Estimand::Att),
            "atc" => Ok(Estimand::Atc),
            other => Err(crate::Error::Param {
                name: "estimand",
                reason: format!("unknown estimand '{other}'; use att, atc or ate"),
            }),
        }
    }
}

/// An estimated effect with its uncertainty.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    /// The estimator (`ipw`, `aipw`, `ra`, `ols`, `psm`, ...).
    pub method: String,
    /// ATE or ATT.
    pub estimand: Estimand,
    /// The point estimate.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// Normal 95 % confidence interval.
    pub ci95: [f64; 2],
    /// Two-sided p-value of no effect (normal reference).
    pub p_value: f64,
    /// How the standard error was computed.
    pub se_kind: String,
    /// Treated units in the comparison.
    pub n_treated: usize,
    /// Control units in the comparison.
    pub n_control: usize,
}

impl Effect {
    /// An effect with its normal interval and p-value.
    pub fn new(
        method: &str,
        estimand: Estimand,
        estimate: f64,
        se: f64,
        se_kind: String,
        n_treated: usize,
        n_control: usize,
    ) -> Self {
        let z = z_quantile(0.975);
        let p_value = if se > 0.0 {
            2.0 * (1.0 - std_normal().cdf((estimate / se).abs()))
        } else {
            f64::NAN
        };
        Effect {
            method: method.to_string(),
            estimand,
            estimate,
            se,
            ci95: [estimate - z * se, estimate + z * se],
            p_value,
            se_kind,
            n_treated,
            n_control,
        }
    }
}

fn std_normal() -> Normal {
    Normal::standard()
}

pub use crate::linalg::normal_quantile as z_quantile;
