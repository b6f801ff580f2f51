//! One entry to every impact-evaluation design: a serialisable [`EvaluationSpec`] (what a
//! study file or the command line says), checked once into a [`ValidEvaluation`], run on a
//! [`Table`] in memory or read from a file, giving one serialisable [`EvaluationOutput`]
//! (the JSON `occupa evaluate --json` prints).
//!
//! ```
//! use occupa_engine::causal::runner::EvaluationSpec;
//!
//! let spec: EvaluationSpec = toml::from_str(r#"
//!     method = "aipw"
//!     treatment = "treat"
//!     outcome = "y"
//!     covariates = ["x1", "x2"]
//! "#)?;
//! let valid = spec.check()?;
//! assert_eq!(valid.columns(), ["treat", "y", "x1", "x2"]);
//! // A misspelt field is refused, not ignored.
//! assert!(toml::from_str::<EvaluationSpec>("method = \"ipw\"\noutcom = \"y\"").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Estimand;
use super::density::{DensityTest, density_test};
use super::did::{CallawaySantAnna, FittedDid, callaway_santanna, did};
use super::evaluate::{EvaluateSpec, Evaluation, Method, evaluate_table};
use super::logit::Separation;
use super::ols::CovType;
use super::rdd::{FittedRd, RdSpec, Vce};
use super::table::{SampleSpec, Table};
use crate::read::ReadOptions;
use crate::{Error, Result};

/// The design and estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// Propensity-score (or Mahalanobis) nearest-neighbour matching.
    #[serde(alias = "matching")]
    Psm,
    /// Inverse probability weighting.
    Ipw,
    /// Augmented IPW (doubly robust).
    #[serde(alias = "dr")]
    Aipw,
    /// Regression adjustment.
    Ra,
    /// One linear regression of the outcome on treatment and covariates.
    Ols,
    /// Difference-in-differences on a panel.
    Did,
    /// Regression discontinuity.
    Rdd,
}

impl Design {
    /// Parses a method name as the command line takes it.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "did" => Design::Did,
            "rdd" => Design::Rdd,
            other => match Method::parse(other)? {
                Method::Psm => Design::Psm,
                Method::Ipw => Design::Ipw,
                Method::Aipw => Design::Aipw,
                Method::Ra => Design::Ra,
                Method::Ols => Design::Ols,
            },
        })
    }
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn five() -> usize {
    5
}
fn caliper() -> f64 {
    0.2
}
fn smd_bound() -> f64 {
    0.1
}
fn seed() -> u64 {
    1
}
fn hc1() -> String {
    "hc1".into()
}
fn nn() -> String {
    "nn".into()
}
fn auto() -> String {
    "auto".into()
}

/// An evaluation as a study file or the command line states it. Unknown fields are
/// refused; [`EvaluationSpec::check`] validates the rest once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// psm, ipw, aipw, ra, ols, did or rdd.
    pub method: Design,
    /// The treatment column (0/1); for a fuzzy RD see `fuzzy`, a sharp RD needs none.
    #[serde(default)]
    pub treatment: Option<String>,
    /// The outcome column.
    pub outcome: String,
    /// Covariate terms: a column, `col^k`, `a*b`; a text column enters as dummies.
    #[serde(default)]
    pub covariates: Vec<String>,
    /// att, atc or ate (default: att for matching, ate otherwise).
    #[serde(default)]
    pub estimand: Option<String>,
    /// auto, firth, merge, trim or refuse.
    #[serde(default = "auto")]
    pub separation: String,
    /// With `separation = "merge"`: a level fewer treated or controls hold is rare.
    #[serde(default = "five")]
    pub merge_below: usize,
    /// Cluster column for cluster-robust standard errors.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Matching: columns to match exactly on.
    #[serde(default)]
    pub exact: Vec<String>,
    /// Matching: controls per treated unit.
    #[serde(default = "one")]
    pub ratio: usize,
    /// Matching: with replacement.
    #[serde(default = "yes")]
    pub replace: bool,
    /// Matching: caliper in SDs of the logit of the propensity score; 0 for none.
    #[serde(default = "caliper")]
    pub caliper: f64,
    /// Matching: Mahalanobis distance on the covariates.
    #[serde(default)]
    pub mahalanobis: bool,
    /// Weighting: drop units with a propensity outside [lo, hi].
    #[serde(default)]
    pub trim: Option<[f64; 2]>,
    /// OLS covariance: classical, hc0, hc1, hc2, hc3.
    #[serde(default = "hc1")]
    pub se: String,
    /// Largest |SMD| after adjustment that passes the balance check.
    #[serde(default = "smd_bound")]
    pub smd_bound: f64,
    /// Bootstrap replicates, if wanted.
    #[serde(default)]
    pub bootstrap: Option<usize>,
    /// Seed of the bootstrap.
    #[serde(default = "seed")]
    pub seed: u64,
    /// A column whose values define subgroups, each evaluated on its own.
    #[serde(default)]
    pub by: Option<String>,
    /// did: the period column.
    #[serde(default)]
    pub time: Option<String>,
    /// did: the unit column.
    #[serde(default)]
    pub unit: Option<String>,
    /// rdd: the running variable.
    #[serde(default)]
    pub running: Option<String>,
    /// rdd: the cut-off (units at or above are on the treated side).
    #[serde(default)]
    pub cutoff: Option<f64>,
    /// rdd: a fuzzy design with this take-up column.
    #[serde(default)]
    pub fuzzy: Option<String>,
    /// rdd: a fixed bandwidth instead of the MSE-optimal one.
    #[serde(default)]
    pub bandwidth: Option<f64>,
    /// rdd: variance, nn (3 neighbours) or hc0..hc3.
    #[serde(default = "nn")]
    pub vce: String,
    /// The sheet of a workbook input.
    #[serde(default)]
    pub sheet: Option<String>,
}

impl EvaluationSpec {
    /// A spec with the defaults for `method` on these columns.
    pub fn new(method: Design, treatment: Option<&str>, outcome: &str) -> Self {
        EvaluationSpec {
            method,
            treatment: treatment.map(str::to_string),
            outcome: outcome.into(),
            covariates: Vec::new(),
            estimand: None,
            separation: auto(),
            merge_below: five(),
            cluster: None,
            exact: Vec::new(),
            ratio: one(),
            replace: true,
            caliper: caliper(),
            mahalanobis: false,
            trim: None,
            se: hc1(),
            smd_bound: smd_bound(),
            bootstrap: None,
            seed: seed(),
            by: None,
            time: None,
            unit: None,
            running: None,
            cutoff: None,
            fuzzy: None,
            bandwidth: None,
            vce: nn(),
            sheet: None,
        }
    }

    /// Checks every field once; only a valid spec runs.
    pub fn check(&self) -> Result<ValidEvaluation> {
        let need = |name: &'static str, v: &Option<String>, why: &str| -> Result<String> {
            v.clone().ok_or_else(|| Error::Param {
                name,
                reason: format!("{why} needs `{name}`"),
            })
        };
        let method = self.method;
        let kind = match method {
            Design::Did => Kind::Did {
                treatment: need(
                    "treatment",
                    &self.treatment,
                    "did (treated in that period, 0/1)",
                )?,
                time: need("time", &self.time, "did")?,
                unit: need("unit", &self.unit, "did")?,
            },
            Design::Rdd => {
                let cutoff = self.cutoff.ok_or_else(|| Error::Param {
                    name: "cutoff",
                    reason: "rdd needs `cutoff`".into(),
                })?;
                if !cutoff.is_finite() {
                    return Err(Error::Param {
                        name: "cutoff",
                        reason: format!("{cutoff} is not a number"),
                    });
                }
                let vce = match self.vce.to_ascii_lowercase().as_str() {
                    "nn" => Vce::Nn(3),
                    "hc0" => Vce::Hc0,
                    "hc1" => Vce::Hc1,
                    "hc2" => Vce::Hc2,
                    "hc3" => Vce::Hc3,
                    other => {
                        return Err(Error::Param {
                            name: "vce",
                            reason: format!("{other}: use nn, hc0, hc1, hc2 or hc3"),
                        });
                    }
                };
                let mut rd = RdSpec::new(cutoff).vce(vce);
                if let Some(h) = self.bandwidth {
                    rd = rd.bandwidth(h, None)?;
                }
                Kind::Rdd {
                    running: need("running", &self.running, "rdd")?,
                    fuzzy: self.fuzzy.clone(),
                    spec: rd,
                }
            }
            _ => {
                // OLS on the treatment alone is the difference in means (with its robust
                // SE): the experimental benchmark. The other methods model something.
                if self.covariates.is_empty() && method != Design::Ols {
                    return Err(Error::Param {
                        name: "covariates",
                        reason: format!("{method:?} needs covariates").to_lowercase(),
                    });
                }
                let treatment = need("treatment", &self.treatment, "this method")?;
                if method == Design::Ols
                    && self
                        .estimand
                        .as_deref()
                        .is_some_and(|e| !e.eq_ignore_ascii_case("ate"))
                {
                    return Err(Error::Param {
                        name: "estimand",
                        reason: "ols gives one coefficient, the ATE under a constant effect; \
                                 for the ATT or ATC use ipw or ra"
                            .into(),
                    });
                }
                let weighting = match method {
                    Design::Psm => Method::Psm,
                    Design::Ipw => Method::Ipw,
                    Design::Aipw => Method::Aipw,
                    Design::Ra => Method::Ra,
                    _ => Method::Ols,
                };
                let estimand = match &self.estimand {
                    Some(e) => Estimand::parse(e)?,
                    None if weighting == Method::Psm => Estimand::Att,
                    None => Estimand::Ate,
                };
                if self.ratio == 0 {
                    return Err(Error::Param {
                        name: "ratio",
                        reason: "at least one control per treated unit".into(),
                    });
                }
                if !(self.caliper.is_finite() && self.caliper >= 0.0) {
                    return Err(Error::Param {
                        name: "caliper",
                        reason: format!("{}: give a positive number, or 0 for none", self.caliper),
                    });
                }
                if !(self.smd_bound.is_finite() && self.smd_bound > 0.0) {
                    return Err(Error::Param {
                        name: "smd_bound",
                        reason: format!("{} is not a positive number", self.smd_bound),
                    });
                }
                if let Some([lo, hi]) = self.trim
                    && !((0.0..0.5).contains(&lo) && (0.5..=1.0).contains(&hi))
                {
                    return Err(Error::Param {
                        name: "trim",
                        reason: format!("bounds [{lo}, {hi}] must satisfy 0 ≤ lo < 0.5 ≤ hi ≤ 1"),
                    });
                }
                if self.bootstrap.is_some_and(|b| b < 2) {
                    return Err(Error::Param {
                        name: "bootstrap",
                        reason: "at least 2 replicates".into(),
                    });
                }
                Kind::Adjusted(Box::new(EvaluateSpec {
                    columns: SampleSpec {
                        treatment,
                        outcome: self.outcome.clone(),
                        covariates: self.covariates.clone(),
                        cluster: self.cluster.clone(),
                        strata: self.exact.clone(),
                        by: self.by.clone(),
                        sheet: self.sheet.clone(),
                    },
                    method: weighting,
                    estimand,
                    separation: Separation::parse(&self.separation)?,
                    merge_below: self.merge_below,
                    ratio: self.ratio,
                    replace: self.replace,
                    caliper: (self.caliper > 0.0).then_some(self.caliper),
                    mahalanobis: self.mahalanobis,
                    exact: self.exact.clone(),
                    trim: self.trim.map(|[lo, hi]| (lo, hi)),
                    cov: CovType::parse(&self.se)?,
                    smd_bound: self.smd_bound,
                    bootstrap: self.bootstrap.map(|b| (b, self.seed)),
                    by: self.by.clone(),
                }))
            }
        };
        Ok(ValidEvaluation {
            kind,
            outcome: self.outcome.clone(),
            sheet: self.sheet.clone(),
        })
    }
}

/// A checked evaluation, ready to run.
#[derive(Debug, Clone)]
pub struct ValidEvaluation {
    kind: Kind,
    outcome: String,
    sheet: Option<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    Adjusted(Box<EvaluateSpec>),
    Did {
        treatment: String,
        time: String,
        unit: String,
    },
    Rdd {
        running: String,
        fuzzy: Option<String>,
        spec: RdSpec,
    },
}

/// What an evaluation gives, by design (the JSON of `occupa evaluate --json`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EvaluationOutput {
    /// Matching, weighting, doubly robust, regression adjustment or OLS.
    Adjusted(Box<Evaluation>),
    /// Difference-in-differences.
    Did(Box<DidOutput>),
    /// Regression discontinuity.
    Rdd(Box<RdOutput>),
}

/// Difference-in-differences with the rows read.
#[derive(Debug, Clone, Serialize)]
pub struct DidOutput {
    /// The 2×2 or TWFE effect, the event study and the panel.
    #[serde(flatten)]
    pub fit: FittedDid,
    /// Rows read.
    pub rows: usize,
    /// Rows left out for a missing value.
    pub dropped_missing: usize,
    /// Callaway and Sant'Anna's estimator when there are more than two periods, or why it
    /// could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callaway_santanna: Option<Outcome<CallawaySantAnna>>,
}

/// A result or the reason there is none, in the JSON as the result or `{"error": ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome<T> {
    /// The result.
    Done(T),
    /// Why it could not be computed.
    Failed {
        /// The reason.
        error: String,
    },
}

impl<T> From<Result<T>> for Outcome<T> {
    fn from(r: Result<T>) -> Self {
        match r {
            Ok(v) => Outcome::Done(v),
            Err(e) => Outcome::Failed {
                error: e.to_string(),
            },
        }
    }
}

/// Regression discontinuity with the rows read and the manipulation test.
#[derive(Debug, Clone, Serialize)]
pub struct RdOutput {
    /// The estimates, bandwidths and counts.
    #[serde(flatten)]
    pub fit: FittedRd,
    /// Seconds spent estimating (reading excluded).
    pub seconds: f64,
    /// The density of the running variable at the cut-off (a jump suggests sorting).
    pub density_test: Outcome<DensityTest>,
    /// Rows read.
    pub rows: usize,
    /// Rows left out for a missing value.
    pub dropped_missing: usize,
}

impl ValidEvaluation {
    /// The columns the evaluation reads (covariate terms resolved to their columns).
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |c: &str| {
            if !c.is_empty() && !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        };
        match &self.kind {
            Kind::Adjusted(s) => {
                add(&s.columns.treatment);
                add(&s.columns.outcome);
                for t in &s.columns.covariates {
                    super::table::term_columns(t).for_each(&mut add);
                }
                s.columns.cluster.iter().for_each(|c| add(c));
                s.exact.iter().for_each(|c| add(c));
                s.by.iter().for_each(|c| add(c));
            }
            Kind::Did {
                treatment,
                time,
                unit,
            } => {
                add(treatment);
                add(&self.outcome);
                add(time);
                add(unit);
            }
            Kind::Rdd { running, fuzzy, .. } => {
                add(running);
                add(&self.outcome);
                fuzzy.iter().for_each(|c| add(c));
            }
        }
        out
    }

    /// Reads the columns it needs from `path` (any format the reader takes) and runs.
    pub fn run_file(&self, path: &Path) -> Result<EvaluationOutput> {
        let start = std::time::Instant::now();
        let cols = self.columns();
        let wanted: Vec<&str> = cols.iter().map(String::as_str).collect();
        let table = Table::read_with(
            path,
            &wanted,
            &ReadOptions {
                sheet: self.sheet.clone(),
            },
        )?;
        let read = start.elapsed().as_secs_f64();
        let mut out = self.run(&table)?;
        if let EvaluationOutput::Adjusted(ev) = &mut out {
            ev.seconds.read = read;
        }
        Ok(out)
    }

    /// Runs on a table in memory.
    pub fn run(&self, table: &Table) -> Result<EvaluationOutput> {
        match &self.kind {
            Kind::Adjusted(spec) => Ok(EvaluationOutput::Adjusted(Box::new(evaluate_table(
                table, spec,
            )?))),
            Kind::Did {
                treatment,
                time,
                unit,
            } => {
                let loaded = table.sample(&SampleSpec {
                    treatment: treatment.clone(),
                    outcome: self.outcome.clone(),
                    covariates: vec![time.clone()],
                    cluster: Some(unit.clone()),
                    ..SampleSpec::default()
                })?;
                let fit = did(&loaded.sample)?;
                // Staggered adoption: the two-way regression mixes already-treated units
                // into the comparison; Callaway–Sant'Anna does not (it needs never-treated
                // units and a balanced panel, and says why when it cannot run).
                let callaway_santanna =
                    (fit.periods > 2).then(|| callaway_santanna(&loaded.sample).into());
                Ok(EvaluationOutput::Did(Box::new(DidOutput {
                    fit,
                    rows: loaded.rows,
                    dropped_missing: loaded.dropped_missing,
                    callaway_santanna,
                })))
            }
            Kind::Rdd {
                running,
                fuzzy,
                spec,
            } => {
                // Sharp: the treatment is the side of the cut-off, so only the running
                // variable and the outcome are read. Fuzzy: the take-up rides as treatment.
                let (x, y, take_up, rows, dropped_missing) = match fuzzy {
                    Some(take_up) => {
                        let loaded = table.sample(&SampleSpec {
                            treatment: take_up.clone(),
                            outcome: self.outcome.clone(),
                            covariates: vec![running.clone()],
                            ..SampleSpec::default()
                        })?;
                        let s = &loaded.sample;
                        let t: Vec<f64> = s.d().iter().map(|&v| f64::from(v)).collect();
                        (
                            s.x().column(0).to_vec(),
                            s.y().to_vec(),
                            Some(t),
                            loaded.rows,
                            loaded.dropped_missing,
                        )
                    }
                    None => {
                        let (xs, ys) = (table.numeric(running)?, table.numeric(&self.outcome)?);
                        let keep: Vec<usize> = (0..xs.len())
                            .filter(|&i| xs[i].is_finite() && ys[i].is_finite())
                            .collect();
                        (
                            keep.iter().map(|&i| xs[i]).collect(),
                            keep.iter().map(|&i| ys[i]).collect(),
                            None,
                            xs.len(),
                            xs.len() - keep.len(),
                        )
                    }
                };
                let start = std::time::Instant::now();
                let fit = match &take_up {
                    Some(t) => spec.fit_fuzzy(&x, &y, t)?,
                    None => spec.fit(&x, &y)?,
                };
                let seconds = start.elapsed().as_secs_f64();
                Ok(EvaluationOutput::Rdd(Box::new(RdOutput {
                    fit,
                    seconds,
                    density_test: density_test(&x, spec.cutoff(), None).into(),
                    rows,
                    dropped_missing,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> std::result::Result<EvaluationSpec, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = spec("method = \"aipw\"\noutcome = \"y\"\ncovariate = [\"x\"]").unwrap_err();
        assert!(e.to_string().contains("covariate"), "{e}");
    }

    #[test]
    fn an_unknown_method_is_refused_with_the_choices() {
        let e = spec("method = \"psx\"\noutcome = \"y\"").unwrap_err();
        assert!(e.to_string().contains("psm"), "{e}");
    }

    #[test]
    fn weighting_needs_covariates_and_a_treatment() {
        let s = spec("method = \"ipw\"\noutcome = \"y\"").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("covariates"));
        let s = spec("method = \"ipw\"\noutcome = \"y\"\ncovariates = [\"x\"]").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("treatment"));
    }

    #[test]
    fn did_needs_time_and_unit_and_rdd_a_cutoff_and_running_variable() {
        let s = spec("method = \"did\"\noutcome = \"y\"\ntreatment = \"d\"\ntime = \"t\"").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("unit"));
        let s = spec("method = \"rdd\"\noutcome = \"y\"\nrunning = \"x\"").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("cutoff"));
        let s = spec("method = \"rdd\"\noutcome = \"y\"\ncutoff = 0.0").unwrap();
        assert!(s.check().unwrap_err().to_string().contains("running"));
        // A sharp design needs no treatment.
        let s = spec("method = \"rdd\"\noutcome = \"y\"\nrunning = \"x\"\ncutoff = 12.0").unwrap();
        assert_eq!(s.check().unwrap().columns(), ["x", "y"]);
    }

    #[test]
    fn ratio_caliper_trim_and_bootstrap_are_checked() {
        let base = "method = \"psm\"\noutcome = \"y\"\ntreatment = \"d\"\ncovariates = [\"x\"]\n";
        for (extra, field) in [
            ("ratio = 0", "ratio"),
            ("caliper = -1.0", "caliper"),
            ("trim = [0.6, 0.9]", "trim"),
            ("bootstrap = 1", "bootstrap"),
            ("smd_bound = 0.0", "smd_bound"),
            ("separation = \"drop\"", "separation"),
            ("estimand = \"atx\"", "estimand"),
            ("se = \"hc9\"", "se"),
        ] {
            let s = spec(&format!("{base}{extra}")).unwrap();
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains(field), "{extra}: {e}");
        }
    }

    #[test]
    fn the_columns_of_terms_are_read_once() {
        let s = spec(
            "method = \"aipw\"\noutcome = \"y\"\ntreatment = \"d\"\n\
             covariates = [\"age\", \"age^2\", \"age*educ\"]\nby = \"sex\"",
        )
        .unwrap();
        assert_eq!(
            s.check().unwrap().columns(),
            ["d", "y", "age", "educ", "sex"]
        );
    }
}
