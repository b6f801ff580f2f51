//! One evaluation end to end, as `occupa evaluate` runs it: read the units, estimate the
//! effect, measure balance, overlap and effective sample size, grade them, and gather
//! everything in one serialisable [`Evaluation`].

use ndarray::{Array1, Array2};
use serde::Serialize;

use super::balance::{Balance, balance, effective_sample_size};
use super::logit::FittedLogit;
use super::matching::{Caliper, Distance, MatchingSpec};
use super::ols::{CovType, Ols};
use super::sample::Sample;
use super::table::{SampleSpec, load_csv};
use super::weighting::{Weighting, WeightingSpec};
use super::{Effect, Estimand};
use crate::{Error, Result};

/// Which estimator `occupa evaluate` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Propensity-score nearest-neighbour matching (ATT).
    Psm,
    /// Inverse probability weighting.
    Ipw,
    /// Augmented IPW (doubly robust).
    Aipw,
    /// Regression adjustment with separate outcome models per arm.
    Ra,
    /// One linear regression of the outcome on treatment and covariates.
    Ols,
}

impl Method {
    /// Parses `psm`, `ipw`, `aipw`, `ra`, `ols`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "psm" | "matching" => Method::Psm,
            "ipw" => Method::Ipw,
            "aipw" | "dr" => Method::Aipw,
            "ra" => Method::Ra,
            "ols" => Method::Ols,
            other => {
                return Err(Error::Param {
                    name: "method",
                    reason: format!("unknown method '{other}'; use psm, ipw, aipw, ra or ols"),
                });
            }
        })
    }
}

/// Everything an evaluation needs besides the data.
#[derive(Debug, Clone)]
pub struct EvaluateSpec {
    /// Columns and terms.
    pub columns: SampleSpec,
    /// The estimator.
    pub method: Method,
    /// ATT or ATE (matching estimates the ATT only).
    pub estimand: Estimand,
    /// Matching: controls per treated unit.
    pub ratio: usize,
    /// Matching: with replacement.
    pub replace: bool,
    /// Matching: caliper in SDs of the logit of the propensity score (`None`: none).
    pub caliper: Option<f64>,
    /// Matching: Mahalanobis distance on the covariates instead of the propensity score.
    pub mahalanobis: bool,
    /// Columns for exact matching (strata).
    pub exact: Vec<String>,
    /// Weighting: drop units with a propensity outside these bounds.
    pub trim: Option<(f64, f64)>,
    /// OLS: covariance of the coefficients (cluster-robust when a cluster column is set).
    pub cov: CovType,
    /// Largest |SMD| after adjustment that passes the balance check.
    pub smd_bound: f64,
}

impl Default for EvaluateSpec {
    fn default() -> Self {
        EvaluateSpec {
            columns: SampleSpec::default(),
            method: Method::Aipw,
            estimand: Estimand::Ate,
            ratio: 1,
            replace: true,
            caliper: Some(0.2),
            mahalanobis: false,
            exact: Vec::new(),
            trim: None,
            cov: CovType::Hc1,
            smd_bound: 0.1,
        }
    }
}

/// The result of `occupa evaluate`, as its JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The estimator.
    pub method: String,
    /// ATT or ATE.
    pub estimand: Estimand,
    /// The point estimate.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// Normal 95 % interval.
    pub ci95: [f64; 2],
    /// Two-sided p-value of no effect.
    pub p_value: f64,
    /// How the standard error was computed.
    pub se_kind: String,
    /// Treated units in the comparison.
    pub n_treated: usize,
    /// Control units in the comparison.
    pub n_control: usize,
    /// Rows read, and rows left out for a missing value in a used column.
    pub rows: usize,
    /// Rows left out because a used column was empty.
    pub dropped_missing: usize,
    /// Units dropped by trimming (weighting) or unmatched within the caliper (matching).
    pub dropped_by_design: usize,
    /// Why units were dropped by design, if any were.
    pub dropped_reason: Option<String>,
    /// The matching caliper, stated on its scale.
    pub caliper: Option<Caliper>,
    /// Covariate balance before and after adjustment.
    pub balance: Vec<Balance>,
    /// Propensity-score summary (absent for OLS and regression adjustment).
    pub propensity: Option<PropensitySummary>,
    /// Kish effective sample sizes of the adjusted treated and control groups.
    pub effective_sample_size: [f64; 2],
    /// Balance, overlap and effective-sample-size grades.
    pub diagnostics: Diagnostics,
    /// Potential-outcome means (treated, control), where the estimator gives them.
    pub potential_outcome_means: Option<[f64; 2]>,
    /// Wall-clock seconds: reading the file (0 when given a sample) and estimating
    /// (models, effect, standard error and diagnostics).
    pub seconds: Timings,
}

/// Where the time went.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timings {
    /// Reading and checking the input.
    pub read: f64,
    /// Estimation and diagnostics.
    pub estimate: f64,
}

/// What the propensity model says about overlap.
#[derive(Debug, Clone, Serialize)]
pub struct PropensitySummary {
    /// Newton iterations.
    pub iterations: usize,
    /// Log-likelihood.
    pub loglik: f64,
    /// Smallest and largest score among treated.
    pub treated_range: [f64; 2],
    /// Smallest and largest score among controls.
    pub control_range: [f64; 2],
    /// Units with a score below 0.01 or above 0.99 (nothing is clipped: see `trim`).
    pub extreme: usize,
    /// Share of units whose preference score (Walker et al. 2013: the propensity with
    /// the treated share taken out) lies in [0.3, 0.7].
    pub equipoise: f64,
}

/// A grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Within the bound.
    Pass,
    /// Near the bound: read with care.
    Warn,
    /// The estimate should not be trusted as it stands.
    Fail,
}

/// One graded check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The grade.
    pub grade: Grade,
    /// The measured value.
    pub value: f64,
    /// The rule applied.
    pub rule: String,
}

/// The graded diagnostics that decide whether an estimate can be shown.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostics {
    /// Largest |SMD| after adjustment.
    pub balance: Check,
    /// Equipoise of the propensity score (when there is one).
    pub overlap: Option<Check>,
    /// Effective sample size of the adjusted comparison group.
    pub effective_sample_size: Check,
    /// The worst of the three.
    pub overall: Grade,
}

/// Reads `path` and runs the evaluation `spec` describes.
pub fn evaluate_csv(path: &std::path::Path, spec: &EvaluateSpec) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let mut columns = spec.columns.clone();
    columns.strata = spec.exact.clone();
    let loaded = load_csv(path, &columns)?;
    let read = start.elapsed().as_secs_f64();
    let mut ev = evaluate(&loaded.sample, spec, loaded.rows, loaded.dropped_missing)?;
    ev.seconds.read = read;
    Ok(ev)
}

/// Runs the evaluation on a sample.
pub fn evaluate(
    sample: &Sample,
    spec: &EvaluateSpec,
    rows: usize,
    dropped_missing: usize,
) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let n = sample.len();
    let ones = Array1::<f64>::ones(n);
    let Adjusted {
        effect,
        weights,
        propensity,
        dropped,
        reason,
        caliper,
        pom,
    } = match spec.method {
        Method::Psm => {
            if spec.estimand != Estimand::Att {
                return Err(Error::Param {
                    name: "estimand",
                    reason: "matching estimates the ATT here; use --estimand att, or ipw/aipw \
                             for the ATE"
                        .into(),
                });
            }
            let m = MatchingSpec::new()
                .ratio(spec.ratio)?
                .replace(spec.replace)
                .caliper(spec.caliper)?
                .distance(if spec.mahalanobis {
                    Distance::Mahalanobis
                } else {
                    Distance::PropensityLogit
                })
                .fit(sample)?;
            let reason = (m.unmatched_treated > 0).then(|| {
                format!(
                    "{} treated units had no control within the caliper (or in their stratum)",
                    m.unmatched_treated
                )
            });
            Adjusted {
                effect: m.effect,
                weights: m.weights,
                propensity: Some(m.propensity),
                dropped: m.unmatched_treated,
                reason,
                caliper: m.caliper,
                pom: None,
            }
        }
        Method::Ipw | Method::Aipw | Method::Ra => {
            let method = match spec.method {
                Method::Ipw => Weighting::Ipw,
                Method::Aipw => Weighting::Aipw,
                _ => Weighting::Ra,
            };
            let mut w = WeightingSpec::new(method, spec.estimand);
            if let Some((lo, hi)) = spec.trim {
                w = w.trim(lo, hi)?;
            }
            let f = w.fit(sample)?;
            let reason = (f.trimmed > 0).then(|| {
                let (lo, hi) = spec.trim.unwrap_or((0.0, 1.0));
                format!(
                    "{} units with a propensity outside [{lo}, {hi}] trimmed",
                    f.trimmed
                )
            });
            // Balance weights: the IPW weights of the estimand (for RA too, from a
            // propensity fit made only for this diagnostic).
            let (weights, ps) = match f.propensity {
                Some(ps) => (f.weights.clone(), Some(ps)),
                None => {
                    let ps = super::logit::Logit::new().fit_named(
                        sample.x(),
                        sample.d(),
                        Some(sample.names()),
                    )?;
                    let w = WeightingSpec::new(Weighting::Ipw, spec.estimand).fit(sample)?;
                    (w.weights, Some(ps))
                }
            };
            Adjusted {
                effect: f.effect,
                weights,
                propensity: ps,
                dropped: f.trimmed,
                reason,
                caliper: None,
                pom: Some(f.pom),
            }
        }
        Method::Ols => {
            let (nn, p) = sample.x().dim();
            let design = Array2::from_shape_fn((nn, p + 2), |(i, j)| match j {
                0 => 1.0,
                1 => f64::from(sample.d()[i]),
                _ => sample.x()[[i, j - 2]],
            });
            let mut ols = Ols::new(spec.cov);
            if let Some(c) = sample.cluster() {
                ols = ols.clusters(c.to_vec());
            }
            let fit = ols.fit(design.view(), sample.y().view())?;
            let effect = Effect::new(
                "ols",
                spec.estimand,
                fit.coef()[1],
                fit.se()[1],
                format!("OLS, {}", fit.cov_name()),
                sample.n_treated(),
                sample.n_control(),
            );
            Adjusted {
                effect,
                weights: ones.clone(),
                propensity: None,
                dropped: 0,
                reason: None,
                caliper: None,
                pom: None,
            }
        }
    };
    let balance_rows = balance(sample, weights.view());
    let ess = [
        effective_sample_size(sample, weights.view(), true),
        effective_sample_size(sample, weights.view(), false),
    ];
    let propensity_summary = propensity.as_ref().map(|ps| summary(sample, ps));
    let diagnostics = grade(
        spec,
        &balance_rows,
        propensity_summary.as_ref(),
        &effect,
        ess,
    );
    Ok(Evaluation {
        method: effect.method.clone(),
        estimand: effect.estimand,
        estimate: effect.estimate,
        se: effect.se,
        ci95: effect.ci95,
        p_value: effect.p_value,
        se_kind: effect.se_kind.clone(),
        n_treated: effect.n_treated,
        n_control: effect.n_control,
        rows,
        dropped_missing,
        dropped_by_design: dropped,
        dropped_reason: reason,
        caliper,
        balance: balance_rows,
        propensity: propensity_summary,
        effective_sample_size: ess,
        diagnostics,
        potential_outcome_means: pom,
        seconds: Timings {
            read: 0.0,
            estimate: start.elapsed().as_secs_f64(),
        },
    })
}

/// What an estimator hands to the diagnostics.
struct Adjusted {
    effect: Effect,
    weights: Array1<f64>,
    propensity: Option<FittedLogit>,
    dropped: usize,
    reason: Option<String>,
    caliper: Option<Caliper>,
    pom: Option<[f64; 2]>,
}

fn summary(sample: &Sample, ps: &FittedLogit) -> PropensitySummary {
    let p = ps.fitted();
    let d = sample.d();
    let range = |arm: bool| {
        let mut r = [f64::INFINITY, f64::NEG_INFINITY];
        for (i, &v) in p.iter().enumerate() {
            if d[i] == arm {
                r[0] = r[0].min(v);
                r[1] = r[1].max(v);
            }
        }
        r
    };
    let share = sample.n_treated() as f64 / sample.len() as f64;
    let base = (share / (1.0 - share)).ln();
    let equipoise = ps
        .linear_predictor()
        .iter()
        .filter(|&&eta| {
            let pref = super::logit::sigmoid(eta - base);
            (0.3..=0.7).contains(&pref)
        })
        .count() as f64
        / sample.len() as f64;
    PropensitySummary {
        iterations: ps.converged_in(),
        loglik: ps.loglik(),
        treated_range: range(true),
        control_range: range(false),
        extreme: p.iter().filter(|&&v| !(0.01..=0.99).contains(&v)).count(),
        equipoise,
    }
}

/// The grades. Balance: max |SMD| after ≤ bound passes, ≤ 2·bound warns. Overlap: at
/// least half the units in equipoise passes, a quarter warns. Effective sample size of the
/// comparison group (controls for the ATT, the smaller arm for the ATE): 100 or more
/// passes, 30 or more warns.
fn grade(
    spec: &EvaluateSpec,
    rows: &[Balance],
    ps: Option<&PropensitySummary>,
    effect: &Effect,
    ess: [f64; 2],
) -> Diagnostics {
    let worst = rows
        .iter()
        .map(|b| b.smd_after.abs())
        .fold(0.0f64, |m, v| if v.is_nan() { m } else { m.max(v) });
    let b = spec.smd_bound;
    let balance = Check {
        grade: if worst <= b {
            Grade::Pass
        } else if worst <= 2.0 * b {
            Grade::Warn
        } else {
            Grade::Fail
        },
        value: worst,
        rule: format!("max |SMD| after adjustment: pass ≤ {b}, warn ≤ {}", 2.0 * b),
    };
    let overlap = ps.map(|s| Check {
        grade: if s.equipoise >= 0.5 {
            Grade::Pass
        } else if s.equipoise >= 0.25 {
            Grade::Warn
        } else {
            Grade::Fail
        },
        value: s.equipoise,
        rule: "share of units with preference score in [0.3, 0.7]: pass ≥ 0.5, warn ≥ 0.25".into(),
    });
    let comparison = match effect.estimand {
        Estimand::Att => ess[1],
        Estimand::Ate => ess[0].min(ess[1]),
    };
    let effective_sample_size = Check {
        grade: if comparison >= 100.0 {
            Grade::Pass
        } else if comparison >= 30.0 {
            Grade::Warn
        } else {
            Grade::Fail
        },
        value: comparison,
        rule: "effective sample size of the comparison group: pass ≥ 100, warn ≥ 30".into(),
    };
    let overall = [
        Some(balance.grade),
        overlap.as_ref().map(|c| c.grade),
        Some(effective_sample_size.grade),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|g| match g {
        Grade::Pass => 0,
        Grade::Warn => 1,
        Grade::Fail => 2,
    })
    .unwrap_or(Grade::Pass);
    Diagnostics {
        balance,
        overlap,
        effective_sample_size,
        overall,
    }
}
