//! Binary regression for profiling: logit and probit by Newton's method on the observed
//! information (what statsmodels' `Logit`/`Probit` and R's `glm` converge to), the
//! model-based or robust (HC0 sandwich) covariance, and average marginal effects with
//! delta-method standard errors (Stata's `margins, dydx(*)`, R's `marginaleffects`):
//! derivatives for numbers (through every term a variable enters: `age`, `age^2`,
//! `age*female`), discrete changes for 0/1 columns and for each level of a categorical
//! column against its reference (every other dummy of that column set to zero).
//!
//! Written here rather than taken from linfa-logistic: it has neither probit nor the
//! covariance, and a million persons need the sums in parallel blocks (the weighted Gram
//! of each block is one matrix product).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

use super::design::{Encoding, Raw, Rows, Variable};
use crate::linalg;
use crate::{Error, Result};

/// The link of a binary regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// P = 1 / (1 + e^−η).
    #[default]
    Logit,
    /// P = Φ(η).
    Probit,
}

/// Which covariance the standard errors come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Covariance {
    /// The inverse observed information (statsmodels' default, R's `vcov(glm)`).
    #[default]
    Model,
    /// The sandwich H⁻¹ (Σ sᵢsᵢ') H⁻¹ (statsmodels' `cov_type="HC0"`, R's
    /// `sandwich::vcovHC(type = "HC0")`): right when the model is only an approximation of
    /// the true probability, as a profiling model always is.
    Robust,
}

const SQRT_2: f64 = std::f64::consts::SQRT_2;
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

fn phi(z: f64) -> f64 {
    (-0.5 * z * z - LN_SQRT_2PI).exp()
}

/// Φ(z), accurate in both tails.
fn big_phi(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

/// (log Φ(z), φ(z)/Φ(z)), with the asymptotic Mills ratio far in the lower tail, where
/// Φ underflows.
fn log_phi_and_ratio(z: f64) -> (f64, f64) {
    if z > -30.0 {
        let c = big_phi(z);
        (c.ln(), phi(z) / c)
    } else {
        let z2 = z * z;
        let series = 1.0 - 1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2);
        (
            -0.5 * z2 - LN_SQRT_2PI - (-z).ln() + series.ln(),
            -z / series,
        )
    }
}

impl Link {
    /// P(y = 1 | η).
    pub fn inverse(self, eta: f64) -> f64 {
        match self {
            Link::Logit => 1.0 / (1.0 + (-eta).exp()),
            Link::Probit => big_phi(eta),
        }
    }

    /// dP/dη.
    pub fn density(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let p = self.inverse(eta);
                p * (1.0 - p)
            }
            Link::Probit => phi(eta),
        }
    }

    /// d²P/dη².
    fn density_slope(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let p = self.inverse(eta);
                p * (1.0 - p) * (1.0 - 2.0 * p)
            }
            Link::Probit => -eta * phi(eta),
        }
    }

    /// One person's (log-likelihood, score weight s, observed-information weight w): the
    /// score is s·x and minus the Hessian w·xx'.
    fn unit(self, eta: f64, y: bool) -> (f64, f64, f64) {
        match self {
            Link::Logit => {
                let p = self.inverse(eta);
                // log(1 + e^x) without overflow.
                let softplus = |x: f64| {
                    if x > 0.0 {
                        x + (-x).exp().ln_1p()
                    } else {
                        x.exp().ln_1p()
                    }
                };
                let ll = if y { -softplus(-eta) } else { -softplus(eta) };
                (ll, f64::from(u8::from(y)) - p, p * (1.0 - p))
            }
            Link::Probit => {
                let q = if y { 1.0 } else { -1.0 };
                let (ll, ratio) = log_phi_and_ratio(q * eta);
                let lambda = q * ratio;
                (ll, lambda, lambda * (lambda + eta))
            }
        }
    }
}

/// A fitted binary regression.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedGlm {
    /// The link.
    pub link: Link,
    /// Coefficients, intercept first; 0 for an aliased column (reported as such).
    pub coef: Vec<f64>,
    /// Whether each column was aliased (a linear combination of the earlier ones) and
    /// left out, as R reports `NA`.
    pub aliased: Vec<bool>,
    /// Covariance of `coef` (rows and columns of aliased columns are zero).
    pub cov: Vec<Vec<f64>>,
    /// Which covariance `cov` is.
    pub covariance: Covariance,
    /// Log-likelihood at the estimate.
    pub loglik: f64,
    /// Log-likelihood of the intercept-only model.
    pub loglik_null: f64,
    /// Newton iterations used.
    pub iterations: usize,
    /// Persons fitted.
    pub n: usize,
}

/// Sums over blocks of rows in parallel: log-likelihood, score, information (and the
/// outer product of the scores, for the sandwich).
fn sums(
    x: ArrayView2<f64>,
    y: &[bool],
    beta: &Array1<f64>,
    link: Link,
    outer: bool,
) -> (f64, Array1<f64>, Array2<f64>, Option<Array2<f64>>) {
    const BLOCK: usize = 8192;
    let p = x.ncols();
    let starts: Vec<usize> = (0..x.nrows()).step_by(BLOCK).collect();
    starts
        .par_iter()
        .map(|&s| {
            let e = (s + BLOCK).min(x.nrows());
            let xb = x.slice(ndarray::s![s..e, ..]);
            let eta = xb.dot(beta);
            let mut ll = 0.0;
            let mut score_w = Array1::<f64>::zeros(e - s);
            let mut info_w = Array2::<f64>::zeros((e - s, p));
            let mut outer_w = outer.then(|| Array2::<f64>::zeros((e - s, p)));
            for r in 0..e - s {
                let (l, sw, w) = link.unit(eta[r], y[s + r]);
                ll += l;
                score_w[r] = sw;
                let root = w.max(0.0).sqrt();
                info_w
                    .row_mut(r)
                    .iter_mut()
                    .zip(xb.row(r))
                    .for_each(|(a, b)| *a = root * b);
                if let Some(o) = outer_w.as_mut() {
                    let a = sw.abs();
                    o.row_mut(r)
                        .iter_mut()
                        .zip(xb.row(r))
                        .for_each(|(c, b)| *c = a * b);
                }
            }
            let score = xb.t().dot(&score_w);
            let info = info_w.t().dot(&info_w);
            let outer = outer_w.map(|o| o.t().dot(&o));
            (ll, score, info, outer)
        })
        .reduce(
            || {
                (
                    0.0,
                    Array1::zeros(p),
                    Array2::zeros((p, p)),
                    outer.then(|| Array2::zeros((p, p))),
                )
            },
            |a, b| {
                (
                    a.0 + b.0,
                    a.1 + b.1,
                    a.2 + b.2,
                    match (a.3, b.3) {
                        (Some(x), Some(y)) => Some(x + y),
                        _ => None,
                    },
                )
            },
        )
}

/// The Gram matrix X'X, in parallel blocks.
fn gram(x: ArrayView2<f64>) -> Array2<f64> {
    let p = x.ncols();
    x.axis_chunks_iter(Axis(0), 8192)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|b| b.t().dot(&b))
        .reduce(|| Array2::zeros((p, p)), |a, b| a + b)
}

/// Fits a binary regression of `y` on `x` (whose first column is the intercept) by
/// Newton's method with step halving. Columns aliased with earlier ones are left out
/// (coefficient 0, flagged); a likelihood without a maximum (a column that separates the
/// outcomes) is an error naming the columns whose coefficients run away.
pub fn fit(
    x: ArrayView2<f64>,
    y: &[bool],
    names: &[String],
    link: Link,
    covariance: Covariance,
) -> Result<FittedGlm> {
    let n = x.nrows();
    let p_all = x.ncols();
    let positives = y.iter().filter(|&&v| v).count();
    if positives == 0 || positives == n {
        return Err(Error::Estimation {
            method: "profile",
            reason: format!(
                "the outcome is {} for all {n} persons: nothing to model",
                if positives == 0 { "0" } else { "1" }
            ),
        });
    }
    let g = gram(x);
    let keep = linalg::independent_in_gram(&g);
    let kept: Vec<usize> = (0..p_all).filter(|&j| keep[j]).collect();
    // Newton runs on columns scaled to unit root mean square: `age^2` next to a dummy
    // would otherwise make the information matrix too ill-conditioned for exact steps.
    let scale: Vec<f64> = kept
        .iter()
        .map(|&j| (g[[j, j]] / n as f64).sqrt().max(f64::MIN_POSITIVE))
        .collect();
    let mut xs = x.select(Axis(1), &kept);
    for (mut col, s) in xs.axis_iter_mut(Axis(1)).zip(&scale) {
        col.mapv_inplace(|v| v / s);
    }
    let p = kept.len();
    if n <= p {
        return Err(Error::Estimation {
            method: "profile",
            reason: format!("{n} persons for {p} coefficients: too few to fit the model"),
        });
    }
    // Start from the intercept-only fit (the null model's maximum).
    let rate = positives as f64 / n as f64;
    let mut beta = Array1::<f64>::zeros(p);
    beta[0] = scale[0]
        * match link {
            Link::Logit => (rate / (1.0 - rate)).ln(),
            Link::Probit => linalg::normal_quantile(rate),
        };
    let loglik_null = sums(xs.view(), y, &beta, link, false).0;
    let mut ll = loglik_null;
    let mut iterations = 0;
    const MAX_ITER: usize = 50;
    let mut converged = false;
    while iterations < MAX_ITER {
        iterations += 1;
        let (_, score, info, _) = sums(xs.view(), y, &beta, link, false);
        let step = linalg::solve_spd(&info, &score).ok_or_else(|| Error::Estimation {
            method: "profile",
            reason: "the information matrix is singular: a covariate separates the outcomes \
                     or is constant among those with it; pool rare levels or leave it out"
                .into(),
        })?;
        let mut t = 1.0;
        let mut next = &beta + &step;
        let mut next_ll = sums(xs.view(), y, &next, link, false).0;
        while (next_ll.is_nan() || next_ll < ll - 1e-12 * ll.abs()) && t > 1e-8 {
            t *= 0.5;
            next = &beta + &(&step * t);
            next_ll = sums(xs.view(), y, &next, link, false).0;
        }
        let change = step.iter().map(|v| (v * t).abs()).fold(0.0, f64::max);
        beta = next;
        let gain = next_ll - ll;
        ll = next_ll;
        if change < 1e-10 || (gain.abs() < 1e-13 * ll.abs().max(1.0) && change < 1e-6) {
            converged = true;
            break;
        }
    }
    // Separation: the likelihood keeps rising along a direction, so coefficients grow
    // without bound and the fitted probabilities reach 0 or 1.
    let runaway: Vec<&str> = kept
        .iter()
        .zip(beta.iter())
        .skip(1)
        .filter(|(_, b)| b.abs() > 30.0)
        .map(|(&j, _)| names[j].as_str())
        .collect();
    if !converged || !runaway.is_empty() && separated(xs.view(), &beta, link) {
        return Err(Error::Estimation {
            method: "profile",
            reason: format!(
                "the likelihood has no maximum (separation{}): the outcome is all 0 or all 1 \
                 for persons with {}; pool rare levels (raise min_level) or leave the column \
                 out",
                if converged { "" } else { ", no convergence" },
                if runaway.is_empty() {
                    "some combination of covariates".to_string()
                } else {
                    runaway.join(", ")
                }
            ),
        });
    }
    let (_, _, info, outer) = sums(xs.view(), y, &beta, link, covariance == Covariance::Robust);
    let inv = linalg::inverse(&info).ok_or_else(|| Error::Estimation {
        method: "profile",
        reason: "the information matrix is singular at the estimate".into(),
    })?;
    let cov_kept = match outer {
        Some(meat) => inv.dot(&meat).dot(&inv),
        None => inv,
    };
    let mut coef = vec![0.0; p_all];
    let mut cov = vec![vec![0.0; p_all]; p_all];
    for (a, &i) in kept.iter().enumerate() {
        coef[i] = beta[a] / scale[a];
        for (b, &j) in kept.iter().enumerate() {
            cov[i][j] = cov_kept[[a, b]] / (scale[a] * scale[b]);
        }
    }
    Ok(FittedGlm {
        link,
        coef,
        aliased: keep.iter().map(|k| !k).collect(),
        cov,
        covariance,
        loglik: ll,
        loglik_null,
        iterations,
        n,
    })
}

/// Whether fitted probabilities have reached 0 or 1 for some persons (R's warning
/// "fitted probabilities numerically 0 or 1 occurred").
fn separated(x: ArrayView2<f64>, beta: &Array1<f64>, link: Link) -> bool {
    x.dot(beta).iter().any(|&eta| {
        let p = link.inverse(eta);
        !(1e-10..=1.0 - 1e-10).contains(&p)
    })
}

impl FittedGlm {
    /// Standard errors (0 for aliased columns).
    pub fn se(&self) -> Vec<f64> {
        (0..self.coef.len())
            .map(|j| self.cov[j][j].max(0.0).sqrt())
            .collect()
    }

    /// The linear predictor of a design row.
    pub fn eta(&self, row: &[f64]) -> f64 {
        row.iter().zip(&self.coef).map(|(a, b)| a * b).sum()
    }

    /// P(y = 1) for a design row.
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        self.link.inverse(self.eta(row))
    }

    fn cov_quadratic(&self, g: &[f64]) -> f64 {
        let mut s = 0.0;
        for (i, gi) in g.iter().enumerate() {
            for (j, gj) in g.iter().enumerate() {
                s += gi * self.cov[i][j] * gj;
            }
        }
        s
    }
}

/// An average marginal effect on the probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginalEffect {
    /// The variable (column).
    pub variable: String,
    /// For a categorical variable, the level compared with `reference`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The reference level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `derivative` (dP/dx averaged) or `discrete` (P at 1, or at the level, minus P at 0,
    /// or at the reference, averaged).
    pub kind: &'static str,
    /// The average effect on the probability.
    pub effect: f64,
    /// Delta-method standard error.
    pub se: f64,
    /// effect / se.
    pub z: f64,
    /// Two-sided normal p-value.
    pub p_value: f64,
    /// effect ± 1.96 se.
    pub ci95: (f64, f64),
}

/// What one effect compares.
#[derive(Clone, Copy)]
enum Contrast {
    Derivative(usize),
    Discrete { v: usize, at: Raw, from: Raw },
}

/// Average marginal effects of every variable over the persons `pick` of `rows`, with
/// delta-method standard errors from the fit's covariance.
pub fn average_marginal_effects(
    fit: &FittedGlm,
    enc: &Encoding,
    rows: &Rows,
    pick: &[usize],
) -> Result<Vec<MarginalEffect>> {
    let mut contrasts: Vec<(Contrast, String, Option<String>, Option<String>)> = Vec::new();
    for (v, var) in enc.variables.iter().enumerate() {
        match var {
            Variable::Numeric { column, binary } => {
                let c = if *binary {
                    Contrast::Discrete {
                        v,
                        at: Raw::Number(1.0),
                        from: Raw::Number(0.0),
                    }
                } else {
                    Contrast::Derivative(v)
                };
                contrasts.push((c, column.clone(), None, None));
            }
            Variable::Categorical { column, levels, .. } => {
                for (k, l) in levels.iter().enumerate().skip(1) {
                    contrasts.push((
                        Contrast::Discrete {
                            v,
                            at: Raw::Level(k),
                            from: Raw::Level(0),
                        },
                        column.clone(),
                        Some(l.clone()),
                        Some(levels[0].clone()),
                    ));
                }
            }
        }
    }
    if pick.is_empty() {
        return Err(Error::Estimation {
            method: "marginal effects",
            reason: "no persons to average over".into(),
        });
    }
    let p = enc.width();
    let link = fit.link;
    let m = contrasts.len();
    // Per contrast: Σ effect and Σ gradient with respect to the coefficients.
    let zero = || (vec![0.0; m], vec![vec![0.0; p]; m]);
    let (eff, grad) = pick
        .par_chunks(4096)
        .map(|chunk| {
            let (mut eff, mut grad) = zero();
            let mut x = vec![0.0; p];
            let mut x1 = vec![0.0; p];
            let mut d = vec![0.0; p];
            for &i in chunk {
                let raw = |u: usize| rows.values[u][i];
                enc.encode(&raw, &mut x);
                let eta = fit.eta(&x);
                for (c, (contrast, ..)) in contrasts.iter().enumerate() {
                    match *contrast {
                        Contrast::Derivative(v) => {
                            enc.derivative(v, &raw, &mut d);
                            let g: f64 = d.iter().zip(&fit.coef).map(|(a, b)| a * b).sum();
                            let f = link.density(eta);
                            let fp = link.density_slope(eta);
                            eff[c] += f * g;
                            for j in 0..p {
                                grad[c][j] += fp * g * x[j] + f * d[j];
                            }
                        }
                        Contrast::Discrete { v, at, from } => {
                            let set = |val: Raw| move |u: usize| if u == v { val } else { raw(u) };
                            enc.encode(&set(at), &mut x1);
                            enc.encode(&set(from), &mut d);
                            let (e1, e0) = (fit.eta(&x1), fit.eta(&d));
                            eff[c] += link.inverse(e1) - link.inverse(e0);
                            let (f1, f0) = (link.density(e1), link.density(e0));
                            for j in 0..p {
                                grad[c][j] += f1 * x1[j] - f0 * d[j];
                            }
                        }
                    }
                }
            }
            (eff, grad)
        })
        .reduce(zero, |mut a, b| {
            for c in 0..m {
                a.0[c] += b.0[c];
                for j in 0..p {
                    a.1[c][j] += b.1[c][j];
                }
            }
            a
        });
    let n = pick.len() as f64;
    Ok(contrasts
        .into_iter()
        .enumerate()
        .map(|(c, (_, variable, level, reference))| {
            let g: Vec<f64> = grad[c].iter().map(|v| v / n).collect();
            let effect = eff[c] / n;
            let se = fit.cov_quadratic(&g).max(0.0).sqrt();
            let z = effect / se;
            MarginalEffect {
                kind: if level.is_some()
                    || matches!(
                        enc.variables.iter().find(|v| v.column() == variable),
                        Some(Variable::Numeric { binary: true, .. })
                    ) {
                    "discrete"
                } else {
                    "derivative"
                },
                variable,
                level,
                reference,
                effect,
                se,
                z,
                p_value: 2.0 * big_phi(-z.abs()),
                ci95: (
                    effect - 1.959_963_984_540_054 * se,
                    effect + 1.959_963_984_540_054 * se,
                ),
            }
        })
        .collect())
}
