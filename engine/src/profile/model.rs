//! The employability index as an ordinary estimator: a [`ProfileSpec`] (outcome,
//! covariates, model, the period column and the day validation starts) is checked, then
//! [`ProfileSpec::fit`] learns the model on the earlier persons and validates it on the
//! later ones (never a random split: a score is used on persons who come after those it
//! was fitted on), giving a [`FittedProfile`] that scores new persons and a
//! [`ProfileReport`] of what was measured: discrimination, calibration, the reliability
//! curve, the same by group, drift between the periods, coefficients and average marginal
//! effects.
//!
//! ```
//! use occupa_engine::columns::{Table, Values};
//! use occupa_engine::profile::model::{ModelKind, ProfileSpec};
//!
//! // 400 persons over two years; the younger find work more often.
//! let n = 400;
//! let age: Vec<f64> = (0..n).map(|i| 20.0 + (i * 7 % 40) as f64).collect();
//! let month: Vec<Option<String>> =
//!     (0..n).map(|i| Some(format!("{}-{:02}", 2024 + i % 2, 1 + i % 12))).collect();
//! let y: Vec<f64> = (0..n).map(|i| f64::from(u8::from((i * 37 % 100) as f64 > age[i]))).collect();
//! let table = Table::from_values(
//!     "example",
//!     vec![
//!         ("age".into(), Values::Numbers(age)),
//!         ("intake_month".into(), Values::Texts(month)),
//!         ("employed_12m".into(), Values::Numbers(y)),
//!     ],
//! )?;
//! let spec = ProfileSpec {
//!     covariates: vec!["age".into()],
//!     validate_from: Some("2025-01".into()),
//!     model: ModelKind::Logit,
//!     ..ProfileSpec::default()
//! };
//! let (fitted, report) = spec.fit(&table)?;
//! assert_eq!(report.n_train + report.n_validate, 400);
//! assert!(report.validation.discrimination.auc > 0.6);
//! let scores = fitted.predict(&table)?;
//! assert!(scores.p.iter().all(|p| (0.0..=1.0).contains(p)));
//! # Ok::<(), occupa_engine::Error>(())
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::design::{Encoding, Rows};
use super::ensemble::{self, BoostingSpec, FittedBoosting};
use super::glm::{self, Covariance, FittedGlm, Link, MarginalEffect};
use super::metrics::{self, Bins, Calibration, Discrimination, ReliabilityBin};
use crate::columns::Table;
use crate::{Error, Result};

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic regression.
    #[default]
    Logit,
    /// Probit regression.
    Probit,
    /// Gradient-boosted trees.
    Boosting,
}

impl ModelKind {
    /// Parses `logit`, `probit`, `boosting` (also `gbm`, `trees`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_lowercase().as_str() {
            "logit" | "logistic" => Ok(ModelKind::Logit),
            "probit" => Ok(ModelKind::Probit),
            "boosting" | "gbm" | "trees" | "ensemble" => Ok(ModelKind::Boosting),
            other => Err(Error::Param {
                name: "model",
                reason: format!(
                    "'{other}' is not a profiling model: give logit, probit or boosting"
                ),
            }),
        }
    }
}

/// What to fit and how to validate it (the `[design]` of a profiling study; the CLI's
/// options by the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileSpec {
    /// The 0/1 outcome column (default `employed_12m`: employed 12 months after taking
    /// charge); rows where it is empty (not yet observed) are left out and counted.
    pub outcome: String,
    /// Covariate terms (`age`, `age^2`, `C(education)`, `sex`, `age*female`).
    pub covariates: Vec<String>,
    /// The model.
    pub model: ModelKind,
    /// Standard errors of a regression: `model` or `robust` (HC0).
    pub covariance: Covariance,
    /// The column that orders persons in time (default `intake_month`): a date, a month
    /// `YYYY-MM`, or a number.
    pub period: String,
    /// First period of the training persons (default: the earliest).
    pub train_from: Option<String>,
    /// First period of the validation persons; the training persons come before it.
    pub validate_from: Option<String>,
    /// Last period of the validation persons (default: the latest).
    pub validate_to: Option<String>,
    /// Levels of a categorical covariate held by fewer training persons are pooled into
    /// `(other)` (when at least two are).
    pub min_level: usize,
    /// Settings of the ensemble.
    pub boosting: BoostingSpec,
    /// Columns whose groups get their own validation (`age_band` is made from `age`).
    pub groups: Vec<String>,
    /// Cut-offs of the risk of *not* being employed that make the risk classes (four
    /// classes at 0.25, 0.5, 0.75, as Garanzia Giovani's index).
    pub classes: Vec<f64>,
    /// Bins of the reliability curve.
    pub bins: usize,
    /// The risk from which a person is flagged, for the fairness tables' error rates.
    pub threshold: f64,
}

impl Default for ProfileSpec {
    fn default() -> Self {
        ProfileSpec {
            outcome: "employed_12m".into(),
            covariates: Vec::new(),
            model: ModelKind::Logit,
            covariance: Covariance::Model,
            period: "intake_month".into(),
            train_from: None,
            validate_from: None,
            validate_to: None,
            min_level: 20,
            boosting: BoostingSpec::default(),
            groups: vec!["sex".into(), "citizenship_group".into(), "age_band".into()],
            classes: vec![0.25, 0.5, 0.75],
            bins: 10,
            threshold: 0.5,
        }
    }
}

/// The person's covariates a profiling model of an analysis table uses when none are
/// given: what is known on the day of taking charge (see [`default_covariates`]).
pub const DEFAULT_COVARIATES: &[&str] = &[
    "age",
    "age^2",
    "sex",
    "citizenship_group",
    "C(education)",
    "disability_l68",
    "social_services_care",
    "income_support",
    "gol_a",
    "gol_b",
    "gol_cd",
];

/// The default covariates present in `table`, then the intake's ASSO and ISA scale scores
/// (`asso_*`, `isa_*` but not the item answers `asso_q*` nor the follow-up ISA `isa2_*`),
/// whatever scales the instruments' definitions name.
pub fn default_covariates(table: &Table) -> Vec<String> {
    let has = |c: &str| table.headers().iter().any(|h| h == c);
    let mut out: Vec<String> = DEFAULT_COVARIATES
        .iter()
        .filter(|t| {
            let col = t.trim_start_matches("C(").trim_end_matches(')');
            has(col.split('^').next().unwrap_or(col))
        })
        .map(|s| s.to_string())
        .collect();
    for h in table.headers() {
        let item = h
            .strip_prefix("asso_q")
            .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()));
        if (h.starts_with("asso_") || h.starts_with("isa_")) && !item {
            out.push(h.clone());
        }
    }
    out
}

/// The fitted model inside a profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FittedModel {
    /// A logit or probit.
    Regression(FittedGlm),
    /// A tree ensemble.
    Boosting(FittedBoosting),
}

/// A fitted profiling model: everything needed to score a person later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedProfile {
    /// The spec it was fitted with.
    pub spec: ProfileSpec,
    /// The covariates' encoding, learnt on the training persons.
    pub encoding: Encoding,
    /// The model.
    pub model: FittedModel,
}

/// Scores of a table's rows.
#[derive(Debug, Clone)]
pub struct Scores {
    /// P(outcome) per row; NaN where the row cannot be scored.
    pub p: Vec<f64>,
    /// Per row, why it was not scored.
    pub unscored: Vec<Option<String>>,
    /// Per row, the risk class (1 = lowest risk of not being employed), 0 where unscored.
    pub class: Vec<u8>,
}

/// A validation of predictions against outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Persons.
    pub n: usize,
    /// AUC with DeLong's interval.
    pub discrimination: Discrimination,
    /// Brier score.
    pub brier: f64,
    /// Calibration slope and intercepts.
    pub calibration: Calibration,
    /// The reliability curve (equal-width bins).
    pub reliability: Vec<ReliabilityBin>,
}

/// One group's validation.
#[derive(Debug, Clone, Serialize)]
pub struct GroupValidation {
    /// The column.
    pub column: String,
    /// The group.
    pub group: String,
    /// Persons.
    pub n: usize,
    /// Share with the outcome.
    pub observed: f64,
    /// Mean prediction.
    pub predicted: f64,
    /// Brier score.
    pub brier: f64,
    /// AUC, when the group has at least two persons with and without the outcome.
    pub auc: Option<f64>,
    /// Calibration-in-the-large and slope, when the AUC exists.
    pub calibration_intercept: Option<f64>,
    /// Calibration slope.
    pub calibration_slope: Option<f64>,
}

/// How the later period differs from the training one.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// Population stability index of the scores (training deciles): below 0.1 stable,
    /// 0.1–0.25 a shift to watch, above 0.25 a shift that calls for recalibration.
    pub psi: f64,
    /// Observed and mean predicted share by period of the validation persons.
    pub by_period: Vec<PeriodDrift>,
    /// Standardised mean differences of the design's columns between the periods, largest
    /// first (at most ten).
    pub covariates: Vec<(String, f64)>,
}

/// One period of the validation.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodDrift {
    /// The period.
    pub period: String,
    /// Persons.
    pub n: usize,
    /// Share with the outcome.
    pub observed: f64,
    /// Mean prediction.
    pub predicted: f64,
}

/// A coefficient with its standard error.
#[derive(Debug, Clone, Serialize)]
pub struct Coefficient {
    /// Design column.
    pub name: String,
    /// Estimate (NaN if aliased).
    pub estimate: f64,
    /// Standard error.
    pub se: f64,
    /// Left out as a linear combination of the others.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aliased: bool,
}

/// What a fit measured.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// The model.
    pub model: ModelKind,
    /// The outcome column.
    pub outcome: String,
    /// Training persons.
    pub n_train: usize,
    /// Validation persons.
    pub n_validate: usize,
    /// Rows left out, by reason.
    pub left_out: BTreeMap<String, usize>,
    /// On the training persons (apparent: optimistic for the ensemble).
    pub training: Validation,
    /// On the later period.
    pub validation: Validation,
    /// The later period by group.
    pub by_group: Vec<GroupValidation>,
    /// Error rates by group at the threshold, and with a threshold per group.
    pub fairness: Vec<super::fairness::Fairness>,
    /// Drift between the periods.
    pub drift: Drift,
    /// The regression's coefficients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coefficients: Vec<Coefficient>,
    /// Average marginal effects on the training persons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marginal_effects: Vec<MarginalEffect>,
    /// Pooled levels and other things done.
    pub notes: Vec<String>,
    /// Seconds: fit, marginal effects, validation.
    pub timings: BTreeMap<String, f64>,
    /// The table's rows of the validation persons (to score them with another version).
    #[serde(skip)]
    pub validation_rows: Vec<usize>,
    /// The table's rows of the training persons.
    #[serde(skip)]
    pub training_rows: Vec<usize>,
}

/// Whether a period value lies between two bounds (each optional, inclusive, compared on
/// the bound's precision: 2025-01-15 is in 2025-01), as the spec's periods are.
pub fn in_period(value: &str, from: Option<&str>, to: Option<&str>) -> bool {
    from.is_none_or(|f| period_cmp(value, f).is_ge())
        && to.is_none_or(|t| period_cmp(value, t).is_le())
}

/// Where a period value falls against a bound.
fn period_cmp(value: &str, bound: &str) -> std::cmp::Ordering {
    match (value.trim().parse::<f64>(), bound.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => a.total_cmp(&b),
        // ISO dates and months order as text; a date is compared on the bound's
        // precision (2025-01-15 is in 2025-01).
        _ => {
            let v = value.trim();
            let b = bound.trim();
            v.get(..b.len()).unwrap_or(v).cmp(b)
        }
    }
}

fn check_bound(name: &'static str, b: &Option<String>) -> Result<()> {
    if let Some(b) = b {
        let t = b.trim();
        let iso = t.len() >= 4
            && t.chars().all(|c| c.is_ascii_digit() || c == '-')
            && t.chars().take(4).all(|c| c.is_ascii_digit());
        if !(iso || t.parse::<f64>().is_ok()) {
            return Err(Error::Param {
                name,
                reason: format!("'{t}' is not a period: write 2025-01, 2025-01-15 or a number"),
            });
        }
    }
    Ok(())
}

impl ProfileSpec {
    /// Checks the spec's own domain (the table's columns are checked by `fit`).
    pub fn check(&self) -> Result<()> {
        if self.covariates.is_empty() {
            return Err(Error::Param {
                name: "covariates",
                reason: "name the covariates of the model".into(),
            });
        }
        if self.validate_from.is_none() {
            return Err(Error::Param {
                name: "validate_from",
                reason: "a profiling model is validated on a later period, never on a random \
                         split: give the first period of the validation persons (2025-01)"
                    .into(),
            });
        }
        check_bound("train_from", &self.train_from)?;
        check_bound("validate_from", &self.validate_from)?;
        check_bound("validate_to", &self.validate_to)?;
        if let (Some(a), Some(b)) = (&self.train_from, &self.validate_from)
            && period_cmp(a, b).is_ge()
        {
            return Err(Error::Param {
                name: "train_from",
                reason: format!("training from {a} leaves no period before validation from {b}"),
            });
        }
        if self.classes.windows(2).any(|w| w[0] >= w[1])
            || self.classes.iter().any(|c| !(*c > 0.0 && *c < 1.0))
            || self.classes.len() > 9
        {
            return Err(Error::Param {
                name: "classes",
                reason: "give up to nine increasing cut-offs between 0 and 1".into(),
            });
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(Error::Param {
                name: "threshold",
                reason: "give a risk between 0 and 1".into(),
            });
        }
        if !(2..=100).contains(&self.bins) {
            return Err(Error::Param {
                name: "bins",
                reason: "give from 2 to 100 bins".into(),
            });
        }
        if self.model == ModelKind::Boosting {
            self.boosting.check()?;
        }
        Ok(())
    }

    /// Fits the model on the persons before `validate_from` and validates it on the later
    /// ones.
    pub fn fit(&self, table: &Table) -> Result<(FittedProfile, ProfileReport)> {
        self.check()?;
        let n = table.len();
        let mut left_out: BTreeMap<String, usize> = BTreeMap::new();
        let y_all = table.numeric(&self.outcome)?;
        if let Some(i) = y_all
            .iter()
            .position(|&v| !v.is_nan() && v != 0.0 && v != 1.0)
        {
            return Err(table.bad(
                i,
                &self.outcome,
                format!("the outcome must be 0 or 1, not {}", y_all[i]),
            ));
        }
        let period = table.column(&self.period)?;
        let labels: Vec<Option<String>> = (0..n).map(|i| period.label(i)).collect();
        let validate_from = self.validate_from.as_deref().unwrap_or_default();
        // 0: before the training window or after the validation one; 1 train; 2 validate.
        let mut role = vec![0u8; n];
        for i in 0..n {
            let Some(p) = &labels[i] else {
                *left_out
                    .entry(format!("no value of {}", self.period))
                    .or_default() += 1;
                continue;
            };
            if y_all[i].is_nan() {
                *left_out
                    .entry("outcome not yet observed".into())
                    .or_default() += 1;
                continue;
            }
            role[i] = if period_cmp(p, validate_from).is_lt() {
                u8::from(
                    self.train_from
                        .as_ref()
                        .is_none_or(|f| period_cmp(p, f).is_ge()),
                )
            } else if self
                .validate_to
                .as_ref()
                .is_none_or(|t| period_cmp(p, t).is_le())
            {
                2
            } else {
                0
            };
            if role[i] == 0 {
                *left_out.entry("outside the periods".into()).or_default() += 1;
            }
        }
        let train_mask: Vec<bool> = role.iter().map(|&r| r == 1).collect();
        let encoding = Encoding::learn(table, &self.covariates, &train_mask, self.min_level)?;
        let rows = encoding.rows(table)?;
        let mut notes = Vec::new();
        for v in &encoding.variables {
            if let super::design::Variable::Categorical {
                column,
                levels,
                catch_all,
                pooled_names: pooled,
                ..
            } = v
                && !pooled.is_empty()
            {
                let into = match catch_all {
                    Some(k) => format!(
                        "the most frequent level {} (together they are too few for a level \
                         of their own)",
                        levels[*k]
                    ),
                    None => super::design::OTHER.to_string(),
                };
                notes.push(format!(
                    "{column}: {} level(s) with fewer than {} training persons pooled into \
                     {into} ({})",
                    pooled.len(),
                    self.min_level,
                    pooled.join(", ")
                ));
            }
        }
        let pick = |want: u8, left_out: &mut BTreeMap<String, usize>| -> Vec<usize> {
            let mut v = Vec::new();
            for (i, _) in role.iter().enumerate().filter(|(_, r)| **r == want) {
                match &rows.unusable[i] {
                    None => v.push(i),
                    Some(why) => *left_out.entry(why.clone()).or_default() += 1,
                }
            }
            v
        };
        let train = pick(1, &mut left_out);
        let validate = pick(2, &mut left_out);
        for (what, set) in [("training", &train), ("validation", &validate)] {
            if set.len() < 20 {
                return Err(Error::Param {
                    name: "validate_from",
                    reason: format!(
                        "{} {what} persons with the outcome observed: too few; move \
                         validate_from or widen the periods",
                        set.len()
                    ),
                });
            }
        }
        let y = |set: &[usize]| -> Vec<bool> { set.iter().map(|&i| y_all[i] == 1.0).collect() };
        let (y_train, y_val) = (y(&train), y(&validate));
        let x_train = encoding.matrix(&rows, &train);
        let mut timings = BTreeMap::new();
        let t = Instant::now();
        let model = match self.model {
            ModelKind::Logit | ModelKind::Probit => {
                let link = if self.model == ModelKind::Logit {
                    Link::Logit
                } else {
                    Link::Probit
                };
                FittedModel::Regression(glm::fit(
                    x_train.view(),
                    &y_train,
                    &encoding.names,
                    link,
                    self.covariance,
                )?)
            }
            ModelKind::Boosting => {
                FittedModel::Boosting(ensemble::fit(x_train.view(), &y_train, &self.boosting)?)
            }
        };
        timings.insert("fit_s".to_string(), t.elapsed().as_secs_f64());
        let fitted = FittedProfile {
            spec: self.clone(),
            encoding,
            model,
        };
        let (mut coefficients, mut marginal_effects) = (Vec::new(), Vec::new());
        if let FittedModel::Regression(g) = &fitted.model {
            let se = g.se();
            coefficients = fitted
                .encoding
                .names
                .iter()
                .enumerate()
                .map(|(j, name)| Coefficient {
                    name: name.clone(),
                    estimate: if g.aliased[j] { f64::NAN } else { g.coef[j] },
                    se: se[j],
                    aliased: g.aliased[j],
                })
                .collect();
            let aliased: Vec<&str> = coefficients
                .iter()
                .filter(|c| c.aliased)
                .map(|c| c.name.as_str())
                .collect();
            if !aliased.is_empty() {
                notes.push(format!(
                    "left out as linear combinations of the other columns (R's NA): {}",
                    aliased.join(", ")
                ));
            }
            let t = Instant::now();
            marginal_effects = glm::average_marginal_effects(g, &fitted.encoding, &rows, &train)?;
            timings.insert("effects_s".to_string(), t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        let p_train = fitted.predict_rows(&rows, &train, Some(&x_train))?;
        drop(x_train);
        let p_val = fitted.predict_rows(&rows, &validate, None)?;
        let training = validation(&p_train, &y_train, self.bins)?;
        let held_out = validation(&p_val, &y_val, self.bins)?;
        let by_group = by_group(table, &self.groups, &validate, &p_val, &y_val, &mut notes)?;
        let mut fairness = Vec::new();
        let risk: Vec<f64> = p_val.iter().map(|p| 1.0 - p).collect();
        let event: Vec<bool> = y_val.iter().map(|y| !y).collect();
        for column in &self.groups {
            let Ok(labels) = group_labels(table, column) else {
                continue;
            };
            let labels: Vec<Option<String>> = validate.iter().map(|&i| labels[i].clone()).collect();
            if let Ok(f) = super::fairness::fairness(column, &labels, &risk, &event, self.threshold)
            {
                fairness.push(f);
            }
        }
        let drift = drift(
            &fitted, &rows, &train, &validate, &labels, &p_train, &p_val, &y_val,
        );
        timings.insert("validate_s".to_string(), t.elapsed().as_secs_f64());
        let report = ProfileReport {
            model: self.model,
            outcome: self.outcome.clone(),
            n_train: train.len(),
            n_validate: validate.len(),
            left_out,
            training,
            validation: held_out,
            by_group,
            fairness,
            drift,
            coefficients,
            marginal_effects,
            notes,
            timings,
            validation_rows: validate,
            training_rows: train,
        };
        Ok((fitted, report))
    }
}

impl ProfileReport {
    /// The report as the command line prints it: the held-out figures the design names at
    /// the top (`auc`, `auc_ci95`, `brier`, `calibration_slope`, `calibration_intercept`,
    /// `calibration_intercept_joint`, `by_group`), then every field of the report.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let v = &self.validation;
        let mut json = serde_json::json!({
            "model": self.model,
            "outcome": self.outcome,
            "n_train": self.n_train,
            "n_validate": self.n_validate,
            "auc": v.discrimination.auc,
            "auc_ci95": [v.discrimination.ci95.0, v.discrimination.ci95.1],
            "brier": v.brier,
            "calibration_slope": v.calibration.slope,
            "calibration_intercept": v.calibration.intercept,
            "calibration_intercept_joint": v.calibration.intercept_joint,
            "by_group": self.by_group,
        });
        if let (Some(obj), serde_json::Value::Object(rest)) =
            (json.as_object_mut(), serde_json::to_value(self)?)
        {
            for (k, val) in rest {
                obj.entry(k).or_insert(val);
            }
        }
        Ok(json)
    }
}

/// Validates predictions `p` against outcomes `y`: discrimination, Brier, calibration and
/// the reliability curve in `bins` equal-width bins.
pub fn validation(p: &[f64], y: &[bool], bins: usize) -> Result<Validation> {
    // A probability of exactly 0 or 1 has no logit; the ensemble can round to it.
    let clipped: Vec<f64> = p.iter().map(|v| v.clamp(1e-12, 1.0 - 1e-12)).collect();
    Ok(Validation {
        n: p.len(),
        discrimination: metrics::auc_delong(p, y)?,
        brier: metrics::brier(p, y)?,
        calibration: metrics::calibration(&clipped, y)?,
        reliability: metrics::reliability(p, y, bins, Bins::Uniform)?,
    })
}

/// The age bands of the fairness tables.
pub fn age_band(age: f64) -> Option<&'static str> {
    if age.is_nan() {
        None
    } else if age < 25.0 {
        Some("15-24")
    } else if age < 35.0 {
        Some("25-34")
    } else if age < 50.0 {
        Some("35-49")
    } else {
        Some("50+")
    }
}

/// Each row's group in `column` (`age_band` from `age` when the table has no such column).
pub fn group_labels(table: &Table, column: &str) -> Result<Vec<Option<String>>> {
    if column == "age_band" && !table.headers().iter().any(|h| h == "age_band") {
        let age = table.numeric("age")?;
        return Ok(age
            .iter()
            .map(|&a| age_band(a).map(str::to_string))
            .collect());
    }
    let c = table.column(column)?;
    Ok((0..table.len()).map(|i| c.label(i)).collect())
}

fn by_group(
    table: &Table,
    groups: &[String],
    rows: &[usize],
    p: &[f64],
    y: &[bool],
    notes: &mut Vec<String>,
) -> Result<Vec<GroupValidation>> {
    let mut out = Vec::new();
    for column in groups {
        let labels = match group_labels(table, column) {
            Ok(l) => l,
            Err(_) => {
                notes.push(format!("no column {column}: no validation by it"));
                continue;
            }
        };
        let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (k, &i) in rows.iter().enumerate() {
            if let Some(l) = &labels[i] {
                members.entry(l.clone()).or_default().push(k);
            }
        }
        for (group, ks) in members {
            let gp: Vec<f64> = ks.iter().map(|&k| p[k]).collect();
            let gy: Vec<bool> = ks.iter().map(|&k| y[k]).collect();
            let n = ks.len() as f64;
            let auc = metrics::auc_delong(&gp, &gy).ok().map(|d| d.auc);
            let cal = auc.and_then(|_| {
                let c: Vec<f64> = gp.iter().map(|v| v.clamp(1e-12, 1.0 - 1e-12)).collect();
                metrics::calibration(&c, &gy).ok()
            });
            out.push(GroupValidation {
                column: column.clone(),
                group,
                n: ks.len(),
                observed: gy.iter().filter(|&&v| v).count() as f64 / n,
                predicted: gp.iter().sum::<f64>() / n,
                brier: metrics::brier(&gp, &gy)?,
                auc,
                calibration_intercept: cal.as_ref().map(|c| c.intercept),
                calibration_slope: cal.as_ref().map(|c| c.slope),
            });
        }
    }
    Ok(out)
}

/// Population stability index of `b` against `a`'s deciles.
pub fn psi(a: &[f64], b: &[f64]) -> f64 {
    let mut sorted = a.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edges: Vec<f64> = (1..10)
        .map(|k| crate::linalg::quantile_sorted(&sorted, k as f64 / 10.0))
        .collect();
    let share = |v: &[f64]| -> Vec<f64> {
        let mut c = [0usize; 10];
        for x in v {
            c[edges.partition_point(|e| e < x)] += 1;
        }
        c.iter()
            .map(|&k| (k as f64 / v.len() as f64).max(1e-6))
            .collect()
    };
    let (sa, sb) = (share(a), share(b));
    sa.iter()
        .zip(&sb)
        .map(|(x, y)| (y - x) * (y / x).ln())
        .sum()
}

#[allow(clippy::too_many_arguments)]
fn drift(
    fitted: &FittedProfile,
    rows: &Rows,
    train: &[usize],
    validate: &[usize],
    labels: &[Option<String>],
    p_train: &[f64],
    p_val: &[f64],
    y_val: &[bool],
) -> Drift {
    let mut periods: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for (k, &i) in validate.iter().enumerate() {
        let e = periods
            .entry(labels[i].as_deref().unwrap_or(""))
            .or_default();
        e.0 += 1;
        e.1 += f64::from(u8::from(y_val[k]));
        e.2 += p_val[k];
    }
    let by_period = periods
        .into_iter()
        .map(|(period, (n, o, p))| PeriodDrift {
            period: period.to_string(),
            n,
            observed: o / n as f64,
            predicted: p / n as f64,
        })
        .collect();
    // Means and variances of each design column in each period, in one pass.
    let enc = &fitted.encoding;
    let w = enc.width();
    let moments = |set: &[usize]| -> Vec<(f64, f64)> {
        let mut s = vec![(0.0, 0.0); w];
        let mut buf = vec![0.0; w];
        for &i in set {
            enc.encode(&|v| rows.values[v][i], &mut buf);
            for (a, x) in s.iter_mut().zip(&buf) {
                a.0 += x;
                a.1 += x * x;
            }
        }
        let n = set.len() as f64;
        s.iter()
            .map(|(m, q)| (m / n, (q / n - (m / n).powi(2)).max(0.0)))
            .collect()
    };
    let (ma, mb) = (moments(train), moments(validate));
    let mut covariates: Vec<(String, f64)> = (1..w)
        .filter_map(|j| {
            let pooled = ((ma[j].1 + mb[j].1) / 2.0).sqrt();
            (pooled > 0.0).then(|| (enc.names[j].clone(), (mb[j].0 - ma[j].0) / pooled))
        })
        .collect();
    covariates.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    covariates.truncate(10);
    Drift {
        psi: psi(p_train, p_val),
        by_period,
        covariates,
    }
}

impl FittedProfile {
    fn predict_rows(
        &self,
        rows: &Rows,
        pick: &[usize],
        x: Option<&ndarray::Array2<f64>>,
    ) -> Result<Vec<f64>> {
        let owned;
        let x = match x {
            Some(x) => x,
            None => {
                owned = self.encoding.matrix(rows, pick);
                &owned
            }
        };
        match &self.model {
            FittedModel::Regression(g) => Ok(x
                .rows()
                .into_iter()
                .map(|r| {
                    let eta: f64 = r.iter().zip(&g.coef).map(|(a, b)| a * b).sum();
                    g.link.inverse(eta)
                })
                .collect()),
            FittedModel::Boosting(b) => b.predict(x.view()),
        }
    }

    /// Scores every row of `table`: P(outcome), and the risk class of 1 − P by the spec's
    /// cut-offs. Rows missing a covariate, or with a level the model was not fitted on,
    /// are not scored and say why.
    pub fn predict(&self, table: &Table) -> Result<Scores> {
        let rows = self.encoding.rows(table)?;
        let pick: Vec<usize> = (0..table.len())
            .filter(|&i| rows.unusable[i].is_none())
            .collect();
        let p_pick = self.predict_rows(&rows, &pick, None)?;
        let mut p = vec![f64::NAN; table.len()];
        let mut class = vec![0u8; table.len()];
        for (&i, &v) in pick.iter().zip(&p_pick) {
            p[i] = v;
            class[i] = self.class_of(v);
        }
        Ok(Scores {
            p,
            unscored: rows.unusable,
            class,
        })
    }

    /// The risk class (1 = lowest risk of not being employed) of a probability.
    pub fn class_of(&self, p: f64) -> u8 {
        let risk = 1.0 - p;
        1 + self.spec.classes.iter().filter(|&&c| risk >= c).count() as u8
    }

    /// Rebuilds what is not serialised (the ensemble's booster) after reading from JSON.
    pub fn loaded(mut self) -> Result<Self> {
        if let FittedModel::Boosting(b) = self.model {
            self.model = FittedModel::Boosting(b.loaded()?);
        }
        Ok(self)
    }
}
