//! One evaluation end to end, as `occupa evaluate` runs it: read the units, estimate the
//! effect, measure balance, overlap and effective sample size, grade them, and gather
//! everything in one serialisable [`Evaluation`].

use ndarray::{Array1, Array2};
use serde::Serialize;

use super::balance::{Balance, balance, effective_sample_size};
use super::bootstrap::{Bootstrap, BootstrapResult};
use super::logit::{FittedLogit, Separation};
use super::matching::{Caliper, Distance, MatchingSpec};
use super::ols::{CovType, Ols};
use super::replicate::Replicates;
use super::sample::Sample;
use super::sensitivity::{EValue, RosenbaumBound, SignedRanks, e_value_continuous};
use super::support::{Merged, Trimmed, merge_rare_levels, one_group_levels, support_bounds};
use super::table::SampleSpec;
use super::weighting::{Weighting, WeightingSpec, ipw_weights};
use super::{Effect, Estimand, z_quantile};
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
    /// ATT, ATC or ATE.
    pub estimand: Estimand,
    /// What to do when the propensity model's likelihood has no maximum.
    pub separation: super::logit::Separation,
    /// `--separation merge`: a level held by fewer treated or fewer controls than this
    /// is rare and merged.
    pub merge_below: usize,
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
    /// Bootstrap replicates and seed, if wanted.
    pub bootstrap: Option<(usize, u64)>,
    /// A column whose values define subgroups, each evaluated on its own.
    pub by: Option<String>,
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
            bootstrap: None,
            by: None,
            separation: super::logit::Separation::Auto,
            merge_below: 5,
        }
    }
}

/// The result of `occupa evaluate`, as its JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The estimate, its standard error, interval and group sizes (flattened in the JSON:
    /// method, estimand, estimate, se, ci95, p_value, se_kind, n_treated, n_control).
    #[serde(flatten)]
    pub effect: Effect,
    /// How the input file was read (format, separator, encoding, decimal commas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<crate::columns::SourceInfo>,
    /// Covariate terms left out because they are aliased (linear combinations of the
    /// intercept and the terms before them), as R's `lm` and `glm` leave them out.
    pub aliased: Vec<String>,
    /// Terms aliased within one group only, left out of that group's outcome regression
    /// (their coefficient is zero there, as R's `predict` takes an `NA` one).
    pub aliased_in_outcome_models: Vec<String>,
    /// Why the propensity score is Firth's penalised-likelihood fit, if it is.
    pub firth_propensity: Option<String>,
    /// Rare levels merged (`--separation merge`).
    pub merged: Vec<Merged>,
    /// Units dropped outside the overlap before estimating (`--separation trim`).
    pub trimmed: Option<Trimmed>,
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
    /// The smallest effect this design would detect, and the power at the estimate.
    pub power: Power,
    /// How strong hidden confounding would have to be to explain the effect away.
    pub sensitivity: Sensitivity,
    /// Bootstrap standard error and intervals, when asked for.
    pub bootstrap: Option<BootstrapResult>,
    /// The same evaluation within each value of `--by`.
    pub subgroups: Vec<Subgroup>,
    /// Wall-clock seconds: reading the file (0 when given a sample) and estimating
    /// (models, effect, standard error and diagnostics).
    pub seconds: Timings,
}

/// Minimum detectable effect (two-sided 5 % test, 80 % power).
#[derive(Debug, Clone, Serialize)]
pub struct Power {
    /// Test level.
    pub alpha: f64,
    /// Power.
    pub power: f64,
    /// (z₀.₉₇₅ + z₀.₈₀) × the estimator's standard error: the effect this analysis
    /// would detect 80 % of the time.
    pub mde: f64,
    /// The same for a plain comparison of means of these treated and controls (the
    /// design-stage figure, as the JRC CRIE sample-size tool gives it): 2.80 × pooled SD
    /// of the outcome × √(1/n₁ + 1/n₀).
    pub mde_design: f64,
    /// Probability of a significant result if the true effect equalled the estimate.
    pub power_at_estimate: f64,
}

/// Sensitivity to unmeasured confounding.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// E-values of the estimate and of the confidence limit nearer to no effect
    /// (standardised by the outcome's standard deviation).
    pub e_value: EValue,
    /// Rosenbaum bounds of the signed-rank test on matched differences (matching only).
    pub rosenbaum: Option<Vec<RosenbaumBound>>,
    /// The Γ at which the upper bound of the p-value reaches 0.05 (matching only; absent
    /// when the effect is not significant even with no hidden bias).
    pub critical_gamma: Option<f64>,
}

/// One subgroup's result.
#[derive(Debug, Clone, Serialize)]
pub struct Subgroup {
    /// The value of the `--by` column.
    pub group: String,
    /// Its evaluation (without further subgroups), or why it could not be done; in the
    /// JSON the evaluation itself or `{"error": "..."}`.
    #[serde(serialize_with = "result_or_error")]
    pub result: std::result::Result<Box<Evaluation>, String>,
}

fn result_or_error<S: serde::Serializer>(
    r: &std::result::Result<Box<Evaluation>, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    match r {
        Ok(ev) => ev.serialize(s),
        Err(e) => {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("error", e)?;
            m.end()
        }
    }
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
    /// Units per twentieth of the propensity scale, by arm, for the overlap plot. Not in
    /// the JSON: counts of persons are published only through small-cell suppression,
    /// which the plot applies.
    #[serde(skip)]
    pub histogram: Histogram,
}

/// Counts of propensity scores in 20 equal bins of [0, 1].
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Treated units per bin.
    pub treated: Vec<u64>,
    /// Controls per bin.
    pub control: Vec<u64>,
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
    /// Share of the estimand's population (the treated for the ATT, the controls for the
    /// ATC, every unit for the ATE) that the estimate describes, after trimming and
    /// unmatched units.
    pub kept: Check,
    /// The worst of the four.
    pub overall: Grade,
}

/// Reads `path` and runs the evaluation `spec` describes.
pub fn evaluate_csv(path: &std::path::Path, spec: &EvaluateSpec) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let table = super::table::Table::read_csv(path, &full_columns(spec))?;
    let read = start.elapsed().as_secs_f64();
    let mut ev = evaluate_table(&table, spec)?;
    ev.seconds.read = read;
    Ok(ev)
}

/// The columns `spec` reads, strata and subgroups included.
fn full_columns(spec: &EvaluateSpec) -> SampleSpec {
    let mut columns = spec.columns.clone();
    columns.strata = spec.exact.clone();
    columns.by = spec.by.clone();
    columns
}

/// Runs the evaluation `spec` describes on a table in memory, and within each subgroup.
pub fn evaluate_table(table: &super::table::Table, spec: &EvaluateSpec) -> Result<Evaluation> {
    let loaded = table.sample(&full_columns(spec))?;
    let mut ev = evaluate(&loaded.sample, spec, loaded.rows, loaded.dropped_missing)?;
    for (group, sub) in &loaded.subgroups {
        let inner = EvaluateSpec {
            by: None,
            ..spec.clone()
        };
        let result = sub
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|s| evaluate(s, &inner, s.len(), 0).map_err(|e| e.to_string()))
            .map(Box::new);
        ev.subgroups.push(Subgroup {
            group: group.clone(),
            result,
        });
    }
    ev.input = Some(loaded.source);
    Ok(ev)
}

/// Runs the evaluation on a sample.
pub fn evaluate(
    sample: &Sample,
    spec: &EvaluateSpec,
    rows: usize,
    dropped_missing: usize,
) -> Result<Evaluation> {
    use std::borrow::Cow;
    let start = std::time::Instant::now();
    let (mut base, mut aliased) = match sample.without_aliased()? {
        Some((s, names)) => (Cow::Owned(s), names),
        None => (Cow::Borrowed(sample), Vec::new()),
    };
    // The sample the estimator sees: `base` with rare levels merged, or without the units
    // outside the overlap; `base` keeps the user's covariates for the balance table, which
    // must show what merging hid.
    let mut work = base.clone();
    let mut merged = Vec::new();
    if spec.separation == Separation::Merge {
        let (m, report) = merge_rare_levels(&base, spec.merge_below);
        if !report.is_empty() {
            merged = report;
            work = match m.without_aliased()? {
                Some((s, names)) => {
                    aliased.extend(names.into_iter().map(|n| format!("{n} (after merging)")));
                    Cow::Owned(s)
                }
                None => Cow::Owned(m),
            };
        }
    }
    let target_before = target_count(&work, spec.estimand);
    let mut trimmed = None;
    if spec.separation == Separation::Trim {
        // First the units in a level only one group holds (no counterpart can exist),
        // then those whose propensity, fitted on the rest, is outside the bounds.
        let (lonely, levels) = one_group_levels(&work);
        let mut keep: Vec<usize> = (0..work.len()).filter(|&i| !lonely[i]).collect();
        let first = work.subset(&keep).map_err(|e| Error::Estimation {
            method: "trim",
            reason: format!(
                "the levels only one group holds ({}) leave no comparison: {e}",
                levels.join(", ")
            ),
        })?;
        let first = match first.without_aliased()? {
            Some((s, _)) => s,
            None => first,
        };
        let ps = super::logit::fit_propensity(
            &super::logit::Logit::new(),
            first.x(),
            first.d(),
            Some(first.names()),
            Separation::Auto,
        )?;
        let p = ps.fitted().to_vec();
        let (b, mut rule) = support_bounds(&p, first.d(), spec.estimand, spec.trim);
        keep = keep
            .iter()
            .zip(&p)
            .filter(|(_, v)| **v >= b[0] && **v <= b[1])
            .map(|(i, _)| *i)
            .collect();
        if !levels.is_empty() {
            rule = format!(
                "levels held by one group only: {}; then {rule}",
                levels.join(", ")
            );
        }
        let gone = |arm: bool| {
            work.d().iter().filter(|&&t| t == arm).count()
                - keep.iter().filter(|&&i| work.d()[i] == arm).count()
        };
        let (t, c) = (gone(true), gone(false));
        if keep.len() < work.len() {
            let kept = work.subset(&keep).map_err(|e| Error::Estimation {
                method: "trim",
                reason: format!("{rule} leaves no comparison: {e}"),
            })?;
            base = Cow::Owned(base.subset(&keep)?);
            work = match kept.without_aliased()? {
                Some((s, names)) => {
                    aliased.extend(names.into_iter().map(|n| format!("{n} (after trimming)")));
                    Cow::Owned(s)
                }
                None => Cow::Owned(kept),
            };
        }
        trimmed = Some(Trimmed {
            population: match spec.estimand {
                Estimand::Ate => "the units within the overlap (not every unit)".into(),
                Estimand::Att => "the treated units within the common support".into(),
                Estimand::Atc => "the controls within the common support".into(),
            },
            rule,
            bounds: b,
            treated: t,
            controls: c,
        });
    }
    let sample: &Sample = &work;
    let Adjusted {
        effect,
        weights,
        propensity,
        dropped,
        reason,
        caliper,
        pom,
        pair_diffs,
        aliased_in_outcome_models,
        lost_target,
    } = adjust(sample, spec)?;
    let balance_rows = balance(&base, weights.view());
    let ess = [
        effective_sample_size(sample, weights.view(), true),
        effective_sample_size(sample, weights.view(), false),
    ];
    let propensity_summary = propensity.as_ref().map(|ps| summary(sample, ps));
    let trimmed_target = target_count(sample, spec.estimand);
    let kept = if target_before == 0 {
        1.0
    } else {
        trimmed_target.saturating_sub(lost_target) as f64 / target_before as f64
    };
    let diagnostics = grade(
        spec,
        &balance_rows,
        propensity_summary.as_ref(),
        propensity.as_ref().is_some_and(FittedLogit::separated),
        &effect,
        ess,
        kept,
    );
    let power = power(sample, &effect);
    let sensitivity = sensitivity(sample, &effect, pair_diffs.as_deref())?;
    if spec.bootstrap.is_some()
        && let Some(why) = propensity.as_ref().and_then(|p| p.penalised())
    {
        return Err(Error::Param {
            name: "bootstrap",
            reason: format!(
                "the propensity score is Firth's penalised fit ({why}); the bootstrap refits \
                 it by maximum likelihood, which need not exist in a resample: use the \
                 sandwich standard error (drop --bootstrap), or leave out the separating \
                 covariate"
            ),
        });
    }
    let ps_start = propensity.as_ref().map(|p| p.coef().clone());
    let bootstrap = match spec.bootstrap {
        Some((b, seed)) => {
            let boot = Bootstrap::new(b, seed)?;
            let result = match weighting_spec(spec)? {
                // Weighting estimators take the replicate as frequency weights: no copies.
                Some(w) => {
                    let w = match &ps_start {
                        Some(c) => w.start_from(c.clone()),
                        None => w,
                    };
                    // Replicates start from the full fit; the few the shortcut cannot
                    // settle are refitted from scratch (which says why, if they fail).
                    let fast = Replicates::new(&w, sample, propensity.as_ref())?;
                    boot.run_weighted(sample, |fw| {
                        match fw.as_slice().and_then(|s| fast.estimate(s)) {
                            Some(v) => Ok(v),
                            None => w.clone().frequency_weights(fw.clone()).estimate(sample),
                        }
                    })?
                }
                None => {
                    let mut b = boot.run(sample, |s| adjust(s, spec).map(|a| a.effect.estimate))?;
                    if spec.method == Method::Psm {
                        b.caution = Some(
                            "the bootstrap is not valid for nearest-neighbour matching with a \
                             fixed number of matches (Abadie and Imbens 2008): its SE can be \
                             too large or too small; report the Abadie-Imbens SE"
                                .into(),
                        );
                    }
                    b
                }
            };
            Some(result.with_estimate(effect.estimate))
        }
        None => None,
    };
    Ok(Evaluation {
        effect,
        input: None,
        aliased,
        aliased_in_outcome_models,
        firth_propensity: propensity
            .as_ref()
            .and_then(|p| p.penalised().map(str::to_string)),
        dropped_by_design: dropped + trimmed.as_ref().map_or(0, |t| t.treated + t.controls),
        dropped_reason: match (&trimmed, reason) {
            (Some(t), r) if t.treated + t.controls > 0 => Some(
                [format!(
                    "{} treated and {} controls outside the overlap ({})",
                    t.treated, t.controls, t.rule
                )]
                .into_iter()
                .chain(r)
                .collect::<Vec<_>>()
                .join("; "),
            ),
            (_, r) => r,
        },
        merged,
        trimmed,
        rows,
        dropped_missing,
        caliper,
        balance: balance_rows,
        propensity: propensity_summary,
        effective_sample_size: ess,
        diagnostics,
        potential_outcome_means: pom,
        power,
        sensitivity,
        bootstrap,
        subgroups: Vec::new(),
        seconds: Timings {
            read: 0.0,
            estimate: start.elapsed().as_secs_f64(),
        },
    })
}

/// The weighting estimator `spec` names, if it names one (for bootstrap replicates).
fn weighting_spec(spec: &EvaluateSpec) -> Result<Option<WeightingSpec>> {
    let method = match spec.method {
        Method::Ipw => Weighting::Ipw,
        Method::Aipw => Weighting::Aipw,
        Method::Ra => Weighting::Ra,
        _ => return Ok(None),
    };
    let w = WeightingSpec::new(method, spec.estimand).separation(spec.separation);
    // With `--separation trim` the bounds were applied before the fit.
    Ok(Some(match spec.trim {
        Some((lo, hi)) if spec.separation != Separation::Trim => w.trim(lo, hi)?,
        _ => w,
    }))
}

/// Runs the estimator `spec` names.
fn adjust(sample: &Sample, spec: &EvaluateSpec) -> Result<Adjusted> {
    let n = sample.len();
    let ones = Array1::<f64>::ones(n);
    Ok(match spec.method {
        Method::Psm => {
            let m = MatchingSpec::new()
                .estimand(spec.estimand)
                .separation(spec.separation)
                .ratio(spec.ratio)?
                .replace(spec.replace)
                .caliper(spec.caliper)?
                .distance(if spec.mahalanobis {
                    Distance::Mahalanobis
                } else {
                    Distance::PropensityLogit
                })
                .fit(sample)?;
            let lost = m.unmatched_treated + m.unmatched_controls;
            let reason = (lost > 0).then(|| {
                let mut parts = Vec::new();
                // With ratio k a unit needs k matches within the caliper, not one.
                let (control, treated) = if spec.ratio > 1 {
                    (
                        format!("{} controls", spec.ratio),
                        format!("{} treated units", spec.ratio),
                    )
                } else {
                    ("control".to_string(), "treated unit".to_string())
                };
                let fewer = if spec.ratio > 1 { "fewer than " } else { "no " };
                if m.unmatched_treated > 0 {
                    parts.push(format!(
                        "{} treated units had {fewer}{control}",
                        m.unmatched_treated
                    ));
                }
                if m.unmatched_controls > 0 {
                    parts.push(format!(
                        "{} controls had {fewer}{treated}",
                        m.unmatched_controls
                    ));
                }
                format!(
                    "{} within the caliper (or in their stratum)",
                    parts.join(" and ")
                )
            });
            let pair_diffs = m.pair_diffs.clone();
            let lost_target = match spec.estimand {
                Estimand::Att => m.unmatched_treated,
                Estimand::Atc => m.unmatched_controls,
                Estimand::Ate => lost,
            };
            Adjusted {
                lost_target,
                effect: m.effect,
                weights: m.weights,
                propensity: Some(m.propensity),
                dropped: lost,
                reason,
                caliper: m.caliper,
                pom: None,
                pair_diffs: Some(pair_diffs),
                aliased_in_outcome_models: Vec::new(),
            }
        }
        Method::Ipw | Method::Aipw | Method::Ra => {
            let f = weighting_spec(spec)?
                .ok_or_else(|| Error::Param {
                    name: "method",
                    reason: "internal: not a weighting method".into(),
                })?
                .fit(sample)?;
            let lost_target =
                target_count(sample, spec.estimand).saturating_sub(match spec.estimand {
                    Estimand::Att => f.effect.n_treated,
                    Estimand::Atc => f.effect.n_control,
                    Estimand::Ate => f.effect.n_treated + f.effect.n_control,
                });
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
                    let ps = super::logit::fit_propensity(
                        &super::logit::Logit::new(),
                        sample.x(),
                        sample.d(),
                        Some(sample.names()),
                        spec.separation,
                    )?;
                    (
                        ipw_weights(sample.d(), ps.fitted(), spec.estimand),
                        Some(ps),
                    )
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
                pair_diffs: None,
                aliased_in_outcome_models: f.aliased_in_arms,
                lost_target,
            }
        }
        Method::Ols => {
            let (nn, p) = sample.x().dim();
            let design = Array2::from_shape_fn((nn, p + 2), |(i, j)| match j {
                0 => 1.0,
                1 => f64::from(sample.d()[i]),
                _ => sample.x()[[i, j - 2]],
            });
            // Covariates aliased with the treatment (given the others) are left out, as
            // `lm(y ~ d + x)` leaves them out; the treatment itself must stay.
            let keep = super::linalg::independent_columns(design.view());
            let aliased: Vec<String> = (0..p)
                .filter(|&j| !keep[j + 2])
                .map(|j| format!("{} (aliased with the treatment)", sample.names()[j]))
                .collect();
            let cols: Vec<usize> = (0..p + 2).filter(|&j| keep[j]).collect();
            if !keep[1] {
                return Err(Error::Estimation {
                    method: "ols",
                    reason: "the treatment is a linear combination of the covariates: no \
                             effect can be told apart from them; leave out the covariate \
                             that repeats the treatment"
                        .into(),
                });
            }
            let design = design.select(ndarray::Axis(1), &cols);
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
                pair_diffs: None,
                aliased_in_outcome_models: aliased,
                lost_target: 0,
            }
        }
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
    /// Matching: each matched treated unit's outcome minus its controls' mean.
    pair_diffs: Option<Vec<f64>>,
    /// Covariates left out of one arm's outcome regression.
    aliased_in_outcome_models: Vec<String>,
    /// Units of the estimand's population the estimator could not use (unmatched within
    /// the caliper, trimmed).
    lost_target: usize,
}

/// The units the estimand averages over: the treated (ATT), the controls (ATC), all (ATE).
fn target_count(sample: &Sample, estimand: Estimand) -> usize {
    match estimand {
        Estimand::Att => sample.n_treated(),
        Estimand::Atc => sample.n_control(),
        Estimand::Ate => sample.len(),
    }
}

fn power(sample: &Sample, effect: &Effect) -> Power {
    let z = z_quantile(0.975) + z_quantile(0.8);
    let (mut s, mut s2, mut k) = ([0.0f64; 2], [0.0f64; 2], [0.0f64; 2]);
    for (&y, &t) in sample.y().iter().zip(sample.d()) {
        let g = usize::from(t);
        s[g] += y;
        s2[g] += y * y;
        k[g] += 1.0;
    }
    let ss = |g: usize| s2[g] - s[g] * s[g] / k[g];
    let pooled = ((ss(0) + ss(1)) / (k[0] + k[1] - 2.0)).sqrt();
    let (n1, n0) = (effect.n_treated as f64, effect.n_control as f64);
    let normal = statrs::distribution::Normal::standard();
    use statrs::distribution::ContinuousCDF;
    Power {
        alpha: 0.05,
        power: 0.8,
        mde: z * effect.se,
        mde_design: z * pooled * (1.0 / n1 + 1.0 / n0).sqrt(),
        power_at_estimate: if effect.se > 0.0 {
            let r = effect.estimate.abs() / effect.se;
            normal.cdf(r - z_quantile(0.975)) + normal.cdf(-r - z_quantile(0.975))
        } else {
            f64::NAN
        },
    }
}

fn sensitivity(sample: &Sample, effect: &Effect, diffs: Option<&[f64]>) -> Result<Sensitivity> {
    let y = sample.y();
    let n = y.len() as f64;
    let m = y.sum() / n;
    let sd = (y.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)).sqrt();
    let e_value = e_value_continuous(effect.estimate, effect.ci95, sd);
    let (rosenbaum, critical_gamma) = match diffs {
        Some(d) if d.iter().any(|v| *v != 0.0) => {
            // Test in the direction of the estimate.
            let signed: Vec<f64> = if effect.estimate < 0.0 {
                d.iter().map(|v| -v).collect()
            } else {
                d.to_vec()
            };
            let grid = [1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0];
            let ranks = SignedRanks::new(&signed)?;
            let bounds = grid
                .iter()
                .map(|&g| ranks.bound(g))
                .collect::<Result<Vec<_>>>()?;
            let upper = |g: f64| -> Result<f64> { Ok(ranks.bound(g)?.upper_p) };
            let critical = if upper(1.0)? >= 0.05 {
                None
            } else {
                // Bisection on the monotone upper bound, between 1 and 100.
                let (mut lo, mut hi) = (1.0f64, 100.0f64);
                if upper(hi)? < 0.05 {
                    Some(hi)
                } else {
                    for _ in 0..60 {
                        let mid = (lo * hi).sqrt();
                        if upper(mid)? < 0.05 {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    Some(hi)
                }
            };
            (Some(bounds), critical)
        }
        _ => (None, None),
    };
    Ok(Sensitivity {
        e_value,
        rosenbaum,
        critical_gamma,
    })
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
    let mut histogram = Histogram {
        treated: vec![0; 20],
        control: vec![0; 20],
    };
    for (i, &v) in p.iter().enumerate() {
        let b = ((v * 20.0) as usize).min(19);
        if d[i] {
            histogram.treated[b] += 1;
        } else {
            histogram.control[b] += 1;
        }
    }
    PropensitySummary {
        histogram,
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
///
/// Overlap cannot pass when the propensity likelihood had no maximum (some units have a
/// covariate pattern the other group lacks). Kept share of the estimand's population: 0.9
/// or more passes, 0.75 or more warns (below, the estimate describes another population).
fn grade(
    spec: &EvaluateSpec,
    rows: &[Balance],
    ps: Option<&PropensitySummary>,
    separated: bool,
    effect: &Effect,
    ess: [f64; 2],
    kept: f64,
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
    let overlap = ps.map(|s| {
        let by_equipoise = if s.equipoise >= 0.5 {
            Grade::Pass
        } else if s.equipoise >= 0.25 {
            Grade::Warn
        } else {
            Grade::Fail
        };
        let mut rule =
            "share of units with preference score in [0.3, 0.7]: pass ≥ 0.5, warn ≥ 0.25"
                .to_string();
        let grade = if separated && by_equipoise == Grade::Pass {
            rule.push_str(
                "; at most warn: the propensity likelihood has no maximum (a covariate \
                 pattern only one group has)",
            );
            Grade::Warn
        } else {
            by_equipoise
        };
        Check {
            grade,
            value: s.equipoise,
            rule,
        }
    });
    let comparison = match effect.estimand {
        Estimand::Att => ess[1],
        Estimand::Atc => ess[0],
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
    let kept = Check {
        grade: if kept >= 0.9 {
            Grade::Pass
        } else if kept >= 0.75 {
            Grade::Warn
        } else {
            Grade::Fail
        },
        value: kept,
        rule: format!(
            "share of the {} the estimate describes (after trimming and unmatched units): \
             pass ≥ 0.9, warn ≥ 0.75",
            match effect.estimand {
                Estimand::Att => "treated",
                Estimand::Atc => "controls",
                Estimand::Ate => "units",
            }
        ),
    };
    let overall = [
        Some(balance.grade),
        overlap.as_ref().map(|c| c.grade),
        Some(effective_sample_size.grade),
        Some(kept.grade),
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
        kept,
        overall,
    }
}
