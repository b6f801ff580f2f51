//! Inverse probability weighting, regression adjustment and augmented IPW (doubly
//! robust), as M-estimators: the propensity logit, the outcome regressions and the
//! effect are the solution of one stacked system of estimating equations, and the
//! standard error is its sandwich, so it accounts for the estimated propensity score
//! and outcome models (as Stata's `teffects` and statsmodels' `TreatmentEffect` do).
//!
//! Nuisance models are parametrised on standardised covariates: the effect and its
//! variance do not depend on that choice, and the Jacobian is far better conditioned.

use ndarray::{Array1, Array2, ArrayView1, Axis, s};
use serde::Serialize;

use super::linalg;
use super::logit::{FittedLogit, Logit, Separation, fit_propensity};
use super::ols::dense_labels;
use super::sample::Sample;
use super::{Effect, Estimand};
use crate::{Error, Result};

/// Which weighting estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Inverse probability weighting with normalised (Hájek) weights.
    Ipw,
    /// Regression adjustment: separate linear outcome models for treated and controls.
    Ra,
    /// Augmented IPW: regression adjustment corrected by weighted residuals.
    Aipw,
}

impl Weighting {
    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Weighting::Ipw => "ipw",
            Weighting::Ra => "ra",
            Weighting::Aipw => "aipw",
        }
    }
}

/// A weighting estimator of a treatment effect.
///
/// ```
/// use ndarray::Array2;
/// use occupa_engine::causal::sample::Sample;
/// use occupa_engine::causal::weighting::{WeightingSpec, Weighting};
/// use occupa_engine::causal::Estimand;
///
/// // Treatment more likely for larger x; the outcome rises by 2 with treatment.
/// let n = 200;
/// let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 2.0).collect();
/// let d: Vec<bool> = (0..n).map(|i| (i as f64 * 0.91).cos() + 0.5 * x[i] > 0.0).collect();
/// let y: Vec<f64> = (0..n).map(|i| 1.0 + x[i] + 2.0 * f64::from(d[i]) + (i as f64 * 1.3).sin() * 0.1).collect();
/// let sample = Sample::new(y, d, Array2::from_shape_vec((n, 1), x).unwrap(), vec!["x".into()])?;
/// let fit = WeightingSpec::new(Weighting::Aipw, Estimand::Ate).fit(&sample)?;
/// assert!((fit.effect.estimate - 2.0).abs() < 0.05);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct WeightingSpec {
    pub(crate) method: Weighting,
    pub(crate) estimand: Estimand,
    pub(crate) trim: Option<(f64, f64)>,
    clustered: bool,
    start: Option<Array1<f64>>,
    weights: Option<Array1<f64>>,
    separation: Separation,
}

/// A fitted weighting estimator.
#[derive(Debug, Clone)]
pub struct FittedWeighting {
    /// The effect, its standard error and interval.
    pub effect: Effect,
    /// Potential-outcome means (treated, control) in the estimand's population.
    pub pom: [f64; 2],
    /// The propensity model (not fitted for regression adjustment).
    pub propensity: Option<FittedLogit>,
    /// Weight of each unit in the comparison (canonical order; 0 for trimmed units and,
    /// for regression adjustment, 1 everywhere).
    pub weights: Array1<f64>,
    /// Units dropped by trimming.
    pub trimmed: usize,
    /// Covariates aliased within one arm and left out of its outcome regression, as
    /// `name (treated)` or `name (controls)`.
    pub aliased_in_arms: Vec<String>,
}

impl WeightingSpec {
    /// The estimator, for the ATE or the ATT, with no trimming and row-level sandwich
    /// standard errors.
    pub fn new(method: Weighting, estimand: Estimand) -> Self {
        WeightingSpec {
            method,
            estimand,
            trim: None,
            clustered: true,
            start: None,
            weights: None,
            separation: Separation::Auto,
        }
    }

    /// What to do when the propensity model's likelihood has no maximum.
    pub fn separation(mut self, s: Separation) -> Self {
        self.separation = s;
        self
    }

    /// Drops units whose propensity score is outside `[lo, hi]` from the effect (the
    /// propensity model stays fitted on every unit). The count is reported.
    pub fn trim(mut self, lo: f64, hi: f64) -> Result<Self> {
        if !(0.0..0.5).contains(&lo) || !(0.5..=1.0).contains(&hi) || lo >= hi {
            return Err(Error::Param {
                name: "trim",
                reason: format!("bounds [{lo}, {hi}] must satisfy 0 ≤ lo < 0.5 ≤ hi ≤ 1"),
            });
        }
        self.trim = Some((lo, hi));
        Ok(self)
    }

    /// Whether to use the sample's cluster labels (when it has some) for cluster-robust
    /// standard errors; on by default.
    pub fn use_clusters(mut self, on: bool) -> Self {
        self.clustered = on;
        self
    }

    /// Frequency weights in the sample's (canonical) order, e.g. a bootstrap replicate's
    /// counts: the estimate is that of the sample with each unit repeated that often.
    pub fn frequency_weights(mut self, w: Array1<f64>) -> Self {
        self.weights = Some(w);
        self
    }

    /// Starts the propensity fit from these coefficients (see [`Logit::start`]).
    pub fn start_from(mut self, coef: Array1<f64>) -> Self {
        self.start = Some(coef);
        self
    }

    /// Estimates the effect on `sample`.
    pub fn fit(&self, sample: &Sample) -> Result<FittedWeighting> {
        self.fit_inner(sample, true)
    }

    /// The point estimate alone (no sandwich): what a bootstrap replicate needs.
    pub fn estimate(&self, sample: &Sample) -> Result<f64> {
        Ok(self.fit_inner(sample, false)?.effect.estimate)
    }

    fn fit_inner(&self, sample: &Sample, with_se: bool) -> Result<FittedWeighting> {
        if self.method == Weighting::Aipw && self.estimand != Estimand::Ate {
            return Err(Error::Param {
                name: "estimand",
                reason: "AIPW is implemented for the ATE; use ipw, ra or psm for the ATT or \
                         the ATC"
                    .into(),
            });
        }
        let n = sample.len();
        let d: Array1<f64> = sample.d().iter().map(|&t| f64::from(t)).collect();
        let y = sample.y();
        let propensity = match self.method {
            Weighting::Ra => None,
            _ => {
                let mut logit = Logit::new();
                if let Some(c) = &self.start {
                    logit = logit.start(c.clone());
                }
                if let Some(w) = &self.weights {
                    logit = logit.weights(w.clone());
                }
                Some(fit_propensity(
                    &logit,
                    sample.x(),
                    sample.d(),
                    Some(sample.names()),
                    self.separation,
                )?)
            }
        };
        // Standardised covariates with an intercept: the propensity fit's, or built here.
        let z = match &propensity {
            Some(ps) => ps.design_std.clone(),
            None => std::sync::Arc::new(standardised(sample)?),
        };
        let z: &Array2<f64> = &z;
        let ps: Array1<f64> = propensity
            .as_ref()
            .map_or_else(|| Array1::from_elem(n, 0.5), |f| f.fitted().clone());
        // The propensity model's estimating equation in the stack: the score Z'(d − p),
        // or Firth's modified score Z'(d − p + h(½ − p)) with the leverages held fixed.
        let logit_y: Array1<f64> = match propensity.as_ref().and_then(|f| f.firth_h.as_ref()) {
            Some(h) => Array1::from_shape_fn(n, |i| d[i] + h[i] * (0.5 - ps[i])),
            None => d.clone(),
        };
        let mut keep: Array1<f64> = match self.trim {
            Some((lo, hi)) => ps.mapv(|p| f64::from(p >= lo && p <= hi)),
            None => Array1::ones(n),
        };
        // Frequency weights enter every sum through `keep`.
        if let Some(w) = &self.weights {
            keep *= w;
        }
        let trimmed = keep.iter().filter(|&&v| v == 0.0).count();
        let kept_treated = (0..n).filter(|&i| keep[i] > 0.0 && d[i] > 0.0).count();
        let kept_control = (0..n).filter(|&i| keep[i] > 0.0 && d[i] == 0.0).count();
        if kept_treated == 0 || kept_control == 0 {
            return Err(Error::Estimation {
                method: "weighting",
                reason: format!(
                    "after trimming {kept_treated} treated and {kept_control} controls remain; \
                     widen the trimming bounds"
                ),
            });
        }
        // Outcome regressions by arm (RA, AIPW), on the kept units. A covariate aliased
        // within one arm (a dummy no treated unit holds, dummies that add up among the
        // treated) is left out of that arm's regression, as R's `lm` does; its
        // coefficient is zero, as `predict` takes R's `NA`, and the arm's fitted values
        // are those of any least-squares solution.
        let mut aliased_in_arms = Vec::new();
        let mut arm_fit = |arm: f64| -> Result<(Array1<f64>, Vec<bool>)> {
            let sel: Array1<f64> =
                Array1::from_shape_fn(n, |i| if d[i] == arm { keep[i] } else { 0.0 });
            let rows = sel.iter().filter(|&&w| w > 0.0).count();
            // The design is standardised, so the (weighted) normal equations are accurate.
            let xtx = mean_weighted_gram(z, &sel);
            let xty = z.t().dot(&(&sel * y)) / n as f64;
            let kept = linalg::independent_in_gram(&xtx);
            let group = if arm > 0.0 { "treated" } else { "controls" };
            for (j, &k) in kept.iter().enumerate() {
                if !k {
                    let name = match j {
                        0 => "(intercept)".to_string(),
                        _ => sample.names()[j - 1].clone(),
                    };
                    aliased_in_arms.push(format!("{name} ({group})"));
                }
            }
            let g = linalg::solve_spd_kept(&xtx, &xty, &kept).ok_or_else(|| Error::Estimation {
                method: "outcome regression",
                reason: format!(
                    "the outcome regression among the {group} ({rows} units) cannot be \
                         solved"
                ),
            })?;
            Ok((g, kept))
        };
        let stacked = match self.method {
            Weighting::Ipw => ipw_moments(
                z,
                &d,
                &logit_y,
                y.view(),
                &ps,
                &keep,
                self.estimand,
                with_se,
            )?,
            Weighting::Ra => {
                let ((g1, k1), (g0, k0)) = (arm_fit(1.0)?, arm_fit(0.0)?);
                ra_moments(
                    z,
                    &d,
                    y.view(),
                    &keep,
                    [&g1, &g0],
                    [&k1, &k0],
                    self.estimand,
                    with_se,
                )?
            }
            Weighting::Aipw => {
                let ((g1, k1), (g0, k0)) = (arm_fit(1.0)?, arm_fit(0.0)?);
                aipw_moments(
                    z,
                    &d,
                    &logit_y,
                    y.view(),
                    &ps,
                    &keep,
                    [&g1, &g0],
                    [&k1, &k0],
                    with_se,
                )?
            }
        };
        let q = stacked.theta.len();
        let (mu1, mu0) = (stacked.theta[q - 2], stacked.theta[q - 1]);
        let clusters = if self.clustered {
            sample.cluster()
        } else {
            None
        };
        let var = if with_se {
            let v = stacked.vcov(clusters)?;
            v[[q - 2, q - 2]] + v[[q - 1, q - 1]] - 2.0 * v[[q - 2, q - 1]]
        } else {
            f64::NAN
        };
        let se_kind = match clusters {
            Some(c) => format!(
                "M-estimation sandwich, cluster-robust ({} clusters, G/(G-1))",
                dense_labels(c).1
            ),
            None => "M-estimation sandwich (accounts for estimated nuisance models)".into(),
        };
        let weights = match self.method {
            Weighting::Ra => keep.clone(),
            _ => &keep * &ipw_weights(sample.d(), &ps, self.estimand),
        };
        Ok(FittedWeighting {
            effect: Effect::new(
                self.method.name(),
                self.estimand,
                mu1 - mu0,
                var.max(0.0).sqrt(),
                se_kind,
                kept_treated,
                kept_control,
            ),
            pom: [mu1, mu0],
            propensity,
            weights,
            trimmed,
            aliased_in_arms,
        })
    }
}

/// Inverse probability weights of the estimand: ATE 1/p and 1/(1−p); ATT 1 and p/(1−p);
/// ATC (1−p)/p and 1.
pub fn ipw_weights(d: &[bool], ps: &Array1<f64>, estimand: Estimand) -> Array1<f64> {
    Array1::from_shape_fn(d.len(), |i| match estimand {
        Estimand::Ate if d[i] => 1.0 / ps[i],
        Estimand::Ate => 1.0 / (1.0 - ps[i]),
        Estimand::Att if d[i] => 1.0,
        Estimand::Att => ps[i] / (1.0 - ps[i]),
        Estimand::Atc if d[i] => (1.0 - ps[i]) / ps[i],
        Estimand::Atc => 1.0,
    })
}

/// Intercept and standardised covariates (population standard deviation).
pub(crate) fn standardised(sample: &Sample) -> Result<Array2<f64>> {
    let x = sample.x();
    let (n, p) = x.dim();
    let mut z = Array2::<f64>::ones((n, p + 1));
    for j in 0..p {
        let col = x.column(j);
        let m = col.sum() / n as f64;
        let sd = (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64).sqrt();
        if sd.is_nan() || sd <= 0.0 {
            return Err(Error::Estimation {
                method: "outcome regression",
                reason: format!("{} takes a single value; leave it out", sample.names()[j]),
            });
        }
        z.column_mut(j + 1).assign(&col.mapv(|v| (v - m) / sd));
    }
    Ok(z)
}

/// Columns of the moment matrix Ψ (one row ψᵢ per unit), kept implicit: Ψ has as many
/// rows as units and, for AIPW on a million units, over sixty columns, so it is built a
/// block of rows at a time whenever a sum over units needs it.
pub(crate) enum Part {
    /// k columns: the row zᵢ of the design times a per-unit scalar.
    Scaled(Array1<f64>),
    /// The same with the columns not marked kept set to zero (pinned coefficients).
    ScaledKept(Array1<f64>, Vec<bool>),
    /// One column.
    Column(Array1<f64>),
}

/// A solved system of stacked estimating equations: the parameters, each unit's moment
/// contributions ψᵢ(θ̂) (as [`Part`]s over the design `z`) and the Jacobian
/// Ĝ = (1/n) Σ ∂ψᵢ/∂θ.
pub(crate) struct Stacked<'z> {
    pub theta: Array1<f64>,
    pub z: &'z Array2<f64>,
    pub parts: Vec<Part>,
    pub jac: Array2<f64>,
}

/// Rows per block when Ψ is built piecewise (small enough to stay in cache).
const BLOCK: usize = 4096;

impl Stacked<'_> {
    fn width(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Scaled(_) | Part::ScaledKept(..) => self.z.ncols(),
                Part::Column(_) => 1,
            })
            .sum()
    }

    /// Rows `a..b` of Ψ.
    fn psi_block(&self, a: usize, b: usize) -> Array2<f64> {
        let k = self.z.ncols();
        let mut out = Array2::<f64>::zeros((b - a, self.width()));
        let mut col = 0;
        for part in &self.parts {
            match part {
                Part::Scaled(s) => {
                    for i in a..b {
                        let si = s[i];
                        let zr = self.z.row(i);
                        let mut o = out.row_mut(i - a);
                        for j in 0..k {
                            o[col + j] = zr[j] * si;
                        }
                    }
                    col += k;
                }
                Part::ScaledKept(s, kept) => {
                    for i in a..b {
                        let si = s[i];
                        let zr = self.z.row(i);
                        let mut o = out.row_mut(i - a);
                        for j in (0..k).filter(|&j| kept[j]) {
                            o[col + j] = zr[j] * si;
                        }
                    }
                    col += k;
                }
                Part::Column(c) => {
                    for i in a..b {
                        out[[i - a, col]] = c[i];
                    }
                    col += 1;
                }
            }
        }
        out
    }

    /// The sandwich V = Ĝ⁻¹ Ω̂ Ĝ⁻ᵀ / n, with Ω̂ = (1/n) Σ ψᵢψᵢᵀ, or with clusters
    /// Ω̂ = G/(G−1) · (1/n) Σ_g (Σ_{i∈g} ψᵢ)(Σ_{i∈g} ψᵢ)ᵀ.
    pub fn vcov(&self, clusters: Option<&[u32]>) -> Result<Array2<f64>> {
        use rayon::prelude::*;
        let n = self.z.nrows();
        let q = self.width();
        let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
        let omega = match clusters {
            None => {
                starts
                    .par_iter()
                    .map(|&a| {
                        let p = self.psi_block(a, (a + BLOCK).min(n));
                        p.t().dot(&p)
                    })
                    .collect::<Vec<Array2<f64>>>()
                    .into_iter()
                    .fold(Array2::zeros((q, q)), |x, y| x + y)
                    / n as f64
            }
            Some(labels) => {
                let (dense, g) = dense_labels(labels);
                if g < 2 {
                    return Err(Error::Estimation {
                        method: "cluster-robust standard errors",
                        reason: "only one cluster; at least two are needed".into(),
                    });
                }
                let mut sums = Array2::<f64>::zeros((g, q));
                for &a in &starts {
                    let b = (a + BLOCK).min(n);
                    let p = self.psi_block(a, b);
                    for i in a..b {
                        sums.row_mut(dense[i]).scaled_add(1.0, &p.row(i - a));
                    }
                }
                let gf = g as f64;
                sums.t().dot(&sums) / n as f64 * (gf / (gf - 1.0))
            }
        };
        let ginv = linalg::inverse(&self.jac).ok_or_else(|| Error::Estimation {
            method: "sandwich standard errors",
            reason: "the Jacobian of the estimating equations is singular (no unit of one \
                     group in the comparison, or collinear covariates)"
                .into(),
        })?;
        Ok(ginv.dot(&omega).dot(&ginv.t()) / n as f64)
    }
}

/// (1/n) Σ wᵢ zᵢ.
fn mean_rows(z: &Array2<f64>, w: &Array1<f64>) -> Array1<f64> {
    z.t().dot(w) / z.nrows() as f64
}

/// (1/n) Σ wᵢ zᵢ zᵢᵀ, by blocks of rows on all cores.
fn mean_weighted_gram(z: &Array2<f64>, w: &Array1<f64>) -> Array2<f64> {
    use rayon::prelude::*;
    let (n, k) = z.dim();
    let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
    starts
        .par_iter()
        .map(|&a| {
            let b = (a + BLOCK).min(n);
            let zb = z.slice(s![a..b, ..]);
            let zw = &zb * &w.slice(s![a..b]).insert_axis(Axis(1));
            zb.t().dot(&zw)
        })
        .collect::<Vec<Array2<f64>>>()
        .into_iter()
        .fold(Array2::zeros((k, k)), |x, y| x + y)
        / n as f64
}

/// Logit block: ψ = (d − p) z, ∂ψ/∂β = −p(1−p) z zᵀ.
/// (Without `with_se` the Jacobian blocks are left at zero: a point estimate needs none.)
fn logit_block(
    z: &Array2<f64>,
    d: &Array1<f64>,
    ps: &Array1<f64>,
    with_se: bool,
) -> (Part, Array2<f64>) {
    let k = z.ncols();
    let jac = if with_se {
        let w = ps.mapv(|p| p * (1.0 - p));
        -mean_weighted_gram(z, &w)
    } else {
        Array2::zeros((k, k))
    };
    (Part::Scaled(d - ps), jac)
}

#[allow(clippy::too_many_arguments)]
fn ipw_moments<'z>(
    z: &'z Array2<f64>,
    d: &Array1<f64>,
    logit_y: &Array1<f64>,
    y: ArrayView1<f64>,
    ps: &Array1<f64>,
    keep: &Array1<f64>,
    estimand: Estimand,
    with_se: bool,
) -> Result<Stacked<'z>> {
    let (n, k) = z.dim();
    let nf = n as f64;
    // Weights of the two arms: ATE 1/p and 1/(1−p); ATT 1 and p/(1−p). Their derivative
    // in β: ∂(1/p) = −(1−p)/p · z, ∂(1/(1−p)) = p/(1−p) · z, ∂(p/(1−p)) = p/(1−p) · z.
    let (w1, dw1, w0, dw0): (Array1<f64>, Array1<f64>, Array1<f64>, Array1<f64>) = match estimand {
        Estimand::Ate => (
            ps.mapv(|p| 1.0 / p),
            ps.mapv(|p| -(1.0 - p) / p),
            ps.mapv(|p| 1.0 / (1.0 - p)),
            ps.mapv(|p| p / (1.0 - p)),
        ),
        Estimand::Att => (
            Array1::ones(n),
            Array1::zeros(n),
            ps.mapv(|p| p / (1.0 - p)),
            ps.mapv(|p| p / (1.0 - p)),
        ),
        // ATC: (1−p)/p and 1; ∂((1−p)/p) = −(1−p)/p · z.
        Estimand::Atc => (
            ps.mapv(|p| (1.0 - p) / p),
            ps.mapv(|p| -(1.0 - p) / p),
            Array1::ones(n),
            Array1::zeros(n),
        ),
    };
    let a1: Array1<f64> = Array1::from_shape_fn(n, |i| keep[i] * d[i] * w1[i]);
    let a0: Array1<f64> = Array1::from_shape_fn(n, |i| keep[i] * (1.0 - d[i]) * w0[i]);
    let mu1 = a1.dot(&y) / a1.sum();
    let mu0 = a0.dot(&y) / a0.sum();
    let (lpart, ljac) = logit_block(z, logit_y, ps, with_se);
    let q = k + 2;
    let mut jac = Array2::<f64>::zeros((q, q));
    jac.slice_mut(s![..k, ..k]).assign(&ljac);
    let r1: Array1<f64> = Array1::from_shape_fn(n, |i| y[i] - mu1);
    let r0: Array1<f64> = Array1::from_shape_fn(n, |i| y[i] - mu0);
    let g1 = Array1::from_shape_fn(n, |i| a1[i] / w1[i] * dw1[i] * r1[i]);
    let g0 = Array1::from_shape_fn(n, |i| a0[i] / w0[i] * dw0[i] * r0[i]);
    jac.slice_mut(s![k, ..k]).assign(&mean_rows(z, &g1));
    jac.slice_mut(s![k + 1, ..k]).assign(&mean_rows(z, &g0));
    jac[[k, k]] = -a1.sum() / nf;
    jac[[k + 1, k + 1]] = -a0.sum() / nf;
    let mut theta = Array1::<f64>::zeros(q);
    theta[k] = mu1;
    theta[k + 1] = mu0;
    Ok(Stacked {
        theta,
        z,
        parts: vec![lpart, Part::Column(&a1 * &r1), Part::Column(&a0 * &r0)],
        jac,
    })
}

/// Regression adjustment: γ₁, γ₀ by least squares in each arm, then the potential-outcome
/// means over the estimand's population (everyone, or the treated).
#[allow(clippy::too_many_arguments)]
fn ra_moments<'z>(
    z: &'z Array2<f64>,
    d: &Array1<f64>,
    y: ArrayView1<f64>,
    keep: &Array1<f64>,
    [g1, g0]: [&Array1<f64>; 2],
    kept: [&[bool]; 2],
    estimand: Estimand,
    with_se: bool,
) -> Result<Stacked<'z>> {
    let (n, k) = z.dim();
    let nf = n as f64;
    let q = 2 * k + 2;
    let m1 = z.dot(g1);
    let m0 = z.dot(g0);
    // Population weights: everyone kept (ATE) or the kept treated (ATT).
    let pop: Array1<f64> = match estimand {
        Estimand::Ate => keep.clone(),
        Estimand::Att => keep * d,
        Estimand::Atc => keep * &d.mapv(|t| 1.0 - t),
    };
    let mu1 = pop.dot(&m1) / pop.sum();
    let mu0 = pop.dot(&m0) / pop.sum();
    let mut jac = Array2::<f64>::zeros((q, q));
    let mut parts = arm_blocks(z, d, y, keep, [g1, g0], kept, &mut jac, with_se);
    parts.push(Part::Column(Array1::from_shape_fn(n, |i| {
        pop[i] * (m1[i] - mu1)
    })));
    parts.push(Part::Column(Array1::from_shape_fn(n, |i| {
        pop[i] * (m0[i] - mu0)
    })));
    jac.slice_mut(s![2 * k, ..k]).assign(&mean_rows(z, &pop));
    jac.slice_mut(s![2 * k + 1, k..2 * k])
        .assign(&mean_rows(z, &pop));
    jac[[2 * k, 2 * k]] = -pop.sum() / nf;
    jac[[2 * k + 1, 2 * k + 1]] = -pop.sum() / nf;
    let mut theta = Array1::<f64>::zeros(q);
    theta.slice_mut(s![..k]).assign(g1);
    theta.slice_mut(s![k..2 * k]).assign(g0);
    theta[2 * k] = mu1;
    theta[2 * k + 1] = mu0;
    Ok(Stacked {
        theta,
        z,
        parts,
        jac,
    })
}

/// The outcome-regression blocks, written into the Jacobian's first 2k rows and columns:
/// ψ = 1{arm} keep · z (y − zᵀγ), ∂ψ/∂γ = −1{arm} keep · z zᵀ.
#[allow(clippy::too_many_arguments)]
fn arm_blocks(
    z: &Array2<f64>,
    d: &Array1<f64>,
    y: ArrayView1<f64>,
    keep: &Array1<f64>,
    [g1, g0]: [&Array1<f64>; 2],
    [k1, k0]: [&[bool]; 2],
    jac: &mut Array2<f64>,
    with_se: bool,
) -> Vec<Part> {
    let (n, k) = z.dim();
    let mut parts = Vec::new();
    for (arm, g, kept, off) in [(1.0, g1, k1, 0), (0.0, g0, k0, k)] {
        let sel: Array1<f64> =
            Array1::from_shape_fn(n, |i| keep[i] * if d[i] == arm { 1.0 } else { 0.0 });
        let fitted = z.dot(g);
        let score = Array1::from_shape_fn(n, |i| sel[i] * (y[i] - fitted[i]));
        // An aliased coefficient is pinned at zero: its equation is γⱼ = 0, with no
        // score, so it adds no variance to the means.
        parts.push(if kept.iter().all(|&t| t) {
            Part::Scaled(score)
        } else {
            Part::ScaledKept(score, kept.to_vec())
        });
        if with_se {
            let mut block = -mean_weighted_gram(z, &sel);
            for j in (0..k).filter(|&j| !kept[j]) {
                block.row_mut(j).fill(0.0);
                block[[j, j]] = -1.0;
            }
            jac.slice_mut(s![off..off + k, off..off + k]).assign(&block);
        }
    }
    parts
}

/// AIPW for the ATE: θ = (β, γ₁, γ₀, μ₁, μ₀) with
/// ψ_μ₁ = zᵀγ₁ + d (y − zᵀγ₁)/p − μ₁ and ψ_μ₀ = zᵀγ₀ + (1−d)(y − zᵀγ₀)/(1−p) − μ₀.
#[allow(clippy::too_many_arguments)]
fn aipw_moments<'z>(
    z: &'z Array2<f64>,
    d: &Array1<f64>,
    logit_y: &Array1<f64>,
    y: ArrayView1<f64>,
    ps: &Array1<f64>,
    keep: &Array1<f64>,
    [g1, g0]: [&Array1<f64>; 2],
    arm_kept: [&[bool]; 2],
    with_se: bool,
) -> Result<Stacked<'z>> {
    let (n, k) = z.dim();
    let nf = n as f64;
    let q = 3 * k + 2;
    let m1 = z.dot(g1);
    let m0 = z.dot(g0);
    let kept = keep.sum();
    let t1 = Array1::from_shape_fn(n, |i| keep[i] * (m1[i] + d[i] * (y[i] - m1[i]) / ps[i]));
    let t0 = Array1::from_shape_fn(n, |i| {
        keep[i] * (m0[i] + (1.0 - d[i]) * (y[i] - m0[i]) / (1.0 - ps[i]))
    });
    let mu1 = t1.sum() / kept;
    let mu0 = t0.sum() / kept;
    let mut jac = Array2::<f64>::zeros((q, q));
    let (lpart, ljac) = logit_block(z, logit_y, ps, with_se);
    jac.slice_mut(s![..k, ..k]).assign(&ljac);
    let mut arm_jac = Array2::<f64>::zeros((2 * k, 2 * k));
    let arm_parts = arm_blocks(z, d, y, keep, [g1, g0], arm_kept, &mut arm_jac, with_se);
    jac.slice_mut(s![k..3 * k, k..3 * k]).assign(&arm_jac);
    let (c1, c0) = (3 * k, 3 * k + 1);
    // ∂ψ_μ₁/∂β = keep · d (y − m₁) · (−(1−p)/p) z; ∂ψ_μ₁/∂γ₁ = keep (1 − d/p) z.
    let b1 = Array1::from_shape_fn(n, |i| {
        keep[i] * d[i] * (y[i] - m1[i]) * (-(1.0 - ps[i]) / ps[i])
    });
    let b0 = Array1::from_shape_fn(n, |i| {
        keep[i] * (1.0 - d[i]) * (y[i] - m0[i]) * (ps[i] / (1.0 - ps[i]))
    });
    let c1w = Array1::from_shape_fn(n, |i| keep[i] * (1.0 - d[i] / ps[i]));
    let c0w = Array1::from_shape_fn(n, |i| keep[i] * (1.0 - (1.0 - d[i]) / (1.0 - ps[i])));
    jac.slice_mut(s![c1, ..k]).assign(&mean_rows(z, &b1));
    jac.slice_mut(s![c0, ..k]).assign(&mean_rows(z, &b0));
    jac.slice_mut(s![c1, k..2 * k]).assign(&mean_rows(z, &c1w));
    jac.slice_mut(s![c0, 2 * k..3 * k])
        .assign(&mean_rows(z, &c0w));
    jac[[c1, c1]] = -kept / nf;
    jac[[c0, c0]] = -kept / nf;
    let mut theta = Array1::<f64>::zeros(q);
    theta[c1] = mu1;
    theta[c0] = mu0;
    let mut parts = vec![lpart];
    parts.extend(arm_parts);
    parts.push(Part::Column(Array1::from_shape_fn(n, |i| {
        t1[i] - keep[i] * mu1
    })));
    parts.push(Part::Column(Array1::from_shape_fn(n, |i| {
        t0[i] - keep[i] * mu0
    })));
    Ok(Stacked {
        theta,
        z,
        parts,
        jac,
    })
}
