//! The propensity score: logistic regression by iteratively reweighted least squares
//! (Newton–Raphson on the log-likelihood), with convergence and separation checks, or
//! Firth's penalised likelihood (Firth 1993; R's `logistf`, `brglm2` with `AS_mean`), which
//! has a finite maximum even when a covariate separates the groups: the log-likelihood plus
//! ½ log det I(β), maximised by the modified score Z'(y − p + h(½ − p)), h the leverages.

use ndarray::{Array1, Array2, ArrayView2};

use super::linalg;
use crate::{Error, Result};

/// A logistic regression of a binary outcome on covariates (an intercept is added).
///
/// ```
/// use ndarray::array;
/// use occupa_engine::causal::logit::Logit;
///
/// let x = array![[1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0], [8.0]];
/// let d = [false, false, true, false, true, false, true, true];
/// let fit = Logit::new().fit(x.view(), &d)?;
/// assert!(fit.converged_in() < 10);
/// assert!(fit.coef()[1] > 0.0); // treatment more likely as x grows
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Logit {
    max_iter: usize,
    tol: f64,
    start: Option<Array1<f64>>,
    weights: Option<Array1<f64>>,
    firth: bool,
}

impl Default for Logit {
    fn default() -> Self {
        Logit::new()
    }
}

/// A fitted logistic regression.
#[derive(Debug, Clone)]
pub struct FittedLogit {
    /// Intercept first, then one coefficient per covariate, on the covariates' own scale.
    coef: Array1<f64>,
    /// Inverse information matrix (model-based covariance) of `coef`.
    cov: Array2<f64>,
    /// `[1, z]`: intercept and standardised covariates (the parametrisation the stacked
    /// estimating equations use: better conditioned, same fitted values).
    pub(crate) design_std: std::sync::Arc<Array2<f64>>,
    /// The coefficients on `design_std`'s scale.
    pub(crate) coef_std: Array1<f64>,
    /// The inverse information on `design_std`'s scale.
    pub(crate) cov_std: Array2<f64>,
    fitted: Array1<f64>,
    linear: Array1<f64>,
    loglik: f64,
    iterations: usize,
    /// Firth's fit: each unit's leverage h, which enters the modified score.
    pub(crate) firth_h: Option<Array1<f64>>,
    /// Why Firth's penalised likelihood was used, if it was.
    pub(crate) penalised: Option<String>,
    /// Whether the likelihood had no maximum (separation), so that Firth was needed.
    pub(crate) separated: bool,
}

/// What to do when the likelihood of the propensity model has no maximum (a covariate,
/// often a rare category, separates the treated from the controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Separation {
    /// Maximum likelihood where it exists, Firth's penalised likelihood where it does
    /// not, and say so (the default: R's `glm` would warn and return infinite-ish
    /// coefficients instead).
    #[default]
    Auto,
    /// Firth's penalised likelihood always (`logistf`).
    Firth,
    /// Maximum likelihood only: a separated design is an error naming the covariate.
    Refuse,
    /// Merge the levels of categorical (and 0/1) covariates that fewer than a minimum
    /// number of treated or controls hold, then fit as `Auto` does.
    Merge,
    /// Drop the units outside the overlap of the two groups' propensities (Crump et al.'s
    /// optimal bounds for the ATE, the common support for the ATT and ATC), refit on the
    /// rest, and estimate the effect on them.
    Trim,
}

impl Separation {
    /// Parses `auto`, `firth`, `merge`, `trim` or `refuse`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Separation::Auto),
            "firth" => Ok(Separation::Firth),
            "refuse" => Ok(Separation::Refuse),
            "merge" => Ok(Separation::Merge),
            "trim" => Ok(Separation::Trim),
            other => Err(Error::Param {
                name: "separation",
                reason: format!("unknown choice '{other}'; use auto, firth, merge, trim or refuse"),
            }),
        }
    }
}

/// Fits a propensity model as `policy` says (see [`Separation`]).
pub fn fit_propensity(
    logit: &Logit,
    x: ArrayView2<f64>,
    d: &[bool],
    names: Option<&[String]>,
    policy: Separation,
) -> Result<FittedLogit> {
    match policy {
        Separation::Refuse => logit.fit_named(x, d, names),
        Separation::Firth => {
            let mut f = logit.clone().firth(true).fit_named(x, d, names)?;
            f.penalised = Some("asked for (--separation firth)".into());
            // Whether the likelihood has a maximum still decides the overlap grade.
            f.separated = logit.fit_named(x, d, names).is_err();
            Ok(f)
        }
        // Merging and trimming happen before the fit; what is left is fitted as by `Auto`.
        Separation::Auto | Separation::Merge | Separation::Trim => {
            match logit.fit_named(x, d, names) {
                Ok(f) => Ok(f),
                Err(mle) => match logit.clone().firth(true).fit_named(x, d, names) {
                    Ok(mut f) => {
                        f.penalised = Some(format!("maximum likelihood failed: {mle}"));
                        f.separated = true;
                        Ok(f)
                    }
                    Err(_) => Err(mle),
                },
            }
        }
    }
}

impl Logit {
    /// Newton–Raphson with at most 100 iterations, stopping when no standardised
    /// coefficient moves by more than 1e-10.
    pub fn new() -> Self {
        Logit {
            max_iter: 100,
            tol: 1e-10,
            start: None,
            weights: None,
            firth: false,
        }
    }

    /// Firth's penalised likelihood instead of the likelihood.
    pub fn firth(mut self, on: bool) -> Self {
        self.firth = on;
        self
    }

    /// The largest number of Newton steps.
    pub fn max_iter(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "max_iter",
                reason: "at least one iteration is needed".into(),
            });
        }
        self.max_iter = n;
        Ok(self)
    }

    /// Starts Newton's method from these coefficients (intercept first, covariates'
    /// own scale), e.g. the full sample's fit for a bootstrap replicate: a couple of
    /// steps then suffice. The fit it converges to is the same.
    pub fn start(mut self, coef: Array1<f64>) -> Self {
        self.start = Some(coef);
        self
    }

    /// Frequency weights, one per row (a bootstrap replicate's counts): the fit is that
    /// of the data with each row repeated that many times.
    pub fn weights(mut self, w: Array1<f64>) -> Self {
        self.weights = Some(w);
        self
    }

    /// Fits `P(d = 1 | x)`. Fails with a reason naming the covariate when the design is
    /// collinear, when a covariate separates the two groups (the likelihood has no
    /// maximum), or when Newton's method does not converge.
    pub fn fit(&self, x: ArrayView2<f64>, d: &[bool]) -> Result<FittedLogit> {
        self.fit_named(x, d, None)
    }

    /// [`Logit::fit`] with covariate names for the error messages.
    pub fn fit_named(
        &self,
        x: ArrayView2<f64>,
        d: &[bool],
        names: Option<&[String]>,
    ) -> Result<FittedLogit> {
        let (n, p) = x.dim();
        let name = |j: usize| {
            names
                .and_then(|v| v.get(j).cloned())
                .unwrap_or_else(|| format!("covariate {}", j + 1))
        };
        let fail = |reason: String| Error::Estimation {
            method: "propensity score (logit)",
            reason,
        };
        if d.len() != n {
            return Err(fail(format!(
                "{} rows of covariates but {} of treatment",
                n,
                d.len()
            )));
        }
        let treated = d.iter().filter(|&&t| t).count();
        if treated == 0 || treated == n {
            return Err(fail(
                "everyone is in one group; a propensity score needs both".into(),
            ));
        }
        // Standardise: the Newton system is then well conditioned whatever the units.
        // Means and standard deviations, row by row (the rows are contiguous).
        let mut mean = vec![0.0; p];
        for r in x.rows() {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v;
            }
        }
        for m in &mut mean {
            *m /= n as f64;
        }
        let mut sd = vec![0.0; p];
        for r in x.rows() {
            for ((s, v), m) in sd.iter_mut().zip(r).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        for (j, s) in sd.iter_mut().enumerate() {
            let v = *s / n as f64;
            if v.is_nan() || v <= 0.0 || !v.is_finite() {
                return Err(fail(format!(
                    "{} takes a single value (or is not finite); leave it out",
                    name(j)
                )));
            }
            *s = v.sqrt();
        }
        let mut z = Array2::<f64>::ones((n, p + 1));
        for (mut zr, xr) in z.rows_mut().into_iter().zip(x.rows()) {
            for j in 0..p {
                zr[j + 1] = (xr[j] - mean[j]) / sd[j];
            }
        }
        let y: Array1<f64> = d.iter().map(|&t| f64::from(t)).collect();
        let mut beta = Array1::<f64>::zeros(p + 1);
        let share = treated as f64 / n as f64;
        beta[0] = (share / (1.0 - share)).ln();
        if let Some(c) = self.start.as_ref().filter(|c| c.len() == p + 1) {
            // b_std,j = b_j·sd_j; intercept b₀ + Σ b_j·mean_j.
            beta[0] = c[0] + (0..p).map(|j| c[j + 1] * mean[j]).sum::<f64>();
            for j in 0..p {
                beta[j + 1] = c[j + 1] * sd[j];
            }
        }
        // One pass over the rows gives the log-likelihood, score and information (for
        // Firth's fit: penalised, modified, and the leverages).
        let terms = |b: &Array1<f64>| {
            let t = newton_terms(&z, &y, b, self.weights.as_ref());
            if self.firth {
                firth_terms(&z, b, self.weights.as_ref(), t)
            } else {
                (t, None)
            }
        };
        let (mut cur, mut h) = terms(&beta);
        let mut converged = None;
        // Firth's steps use the Fisher information, not the penalised Hessian: near a
        // quasi-separated optimum they converge linearly, so they get more iterations.
        let max_iter = if self.firth {
            self.max_iter * 10
        } else {
            self.max_iter
        };
        // A step that reverses the previous one is a 2-cycle around the optimum (Firth's
        // quasi-Newton steps overshoot where the penalty curves): from then on steps are
        // damped, halved at each reversal, which keeps the fixed point and converges.
        let mut damp = 1.0f64;
        let mut previous: Option<Array1<f64>> = None;
        for it in 1..=max_iter {
            let Some(step) = linalg::solve_spd(&cur.info, &cur.grad) else {
                // At the start the weights are all equal: a singular information matrix
                // is a collinear design; later, a sign of separation.
                if it == 1
                    && let Some(c) = linalg::collinear_column(z.view())
                {
                    return Err(fail(format!(
                        "{} is a linear combination of the other covariates; leave it out",
                        name(c.saturating_sub(1))
                    )));
                }
                return Err(fail(separation_hint(
                    x,
                    d,
                    &beta,
                    &name,
                    "the information matrix became singular",
                )));
            };
            if let Some(p) = &previous
                && p.dot(&step) < 0.0
            {
                damp = (damp * 0.5).max(1.0 / 1024.0);
            }
            previous = Some(step.clone());
            let step = step * damp;
            // Step halving keeps every iteration an ascent step.
            let mut t = 1.0;
            let mut next_beta = &beta + &step;
            let (mut next, mut next_h) = terms(&next_beta);
            while (next.ll.is_nan() || next.ll < cur.ll - 1e-12 * cur.ll.abs()) && t > 1e-6 {
                t *= 0.5;
                next_beta = &beta + &(&step * t);
                (next, next_h) = terms(&next_beta);
            }
            let moved = (&next_beta - &beta)
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            beta = next_beta;
            cur = next;
            h = next_h;
            let ll = cur.ll;
            if !self.firth && ll > -1e-9 {
                return Err(fail(separation_hint(
                    x,
                    d,
                    &beta,
                    &name,
                    "the covariates separate treated from controls completely",
                )));
            }
            if moved <= self.tol {
                converged = Some(it);
                break;
            }
        }
        let Some(iterations) = converged else {
            return Err(fail(separation_hint(
                x,
                d,
                &beta,
                &name,
                &format!("Newton's method did not converge in {max_iter} iterations"),
            )));
        };
        // The log-likelihood itself (without the penalty) is what is reported.
        let ll = if self.firth {
            newton_terms(&z, &y, &beta, self.weights.as_ref()).ll
        } else {
            cur.ll
        };
        let cov_std = linalg::inverse(&cur.info).ok_or_else(|| {
            fail(separation_hint(
                x,
                d,
                &beta,
                &name,
                "the information matrix is singular at the fit",
            ))
        })?;
        // Back to the covariates' scale: b = T b_std.
        let mut t = Array2::<f64>::zeros((p + 1, p + 1));
        t[[0, 0]] = 1.0;
        for j in 0..p {
            t[[0, j + 1]] = -mean[j] / sd[j];
            t[[j + 1, j + 1]] = 1.0 / sd[j];
        }
        let coef = t.dot(&beta);
        let cov = t.dot(&cov_std).dot(&t.t());
        let linear = z.dot(&beta);
        let fitted = linear.mapv(sigmoid);
        Ok(FittedLogit {
            coef,
            cov,
            design_std: std::sync::Arc::new(z),
            coef_std: beta,
            cov_std,
            fitted,
            linear,
            loglik: ll,
            iterations,
            firth_h: h,
            penalised: None,
            separated: false,
        })
    }
}

impl FittedLogit {
    /// Whether the likelihood had no maximum (separation).
    pub fn separated(&self) -> bool {
        self.separated
    }

    /// Why Firth's penalised likelihood was used, if it was.
    pub fn penalised(&self) -> Option<&str> {
        self.penalised.as_deref()
    }

    /// Intercept, then one coefficient per covariate.
    pub fn coef(&self) -> &Array1<f64> {
        &self.coef
    }

    /// Model-based standard errors (square roots of the inverse information's diagonal).
    pub fn se(&self) -> Array1<f64> {
        self.cov.diag().mapv(f64::sqrt)
    }

    /// The inverse information matrix.
    pub fn cov(&self) -> &Array2<f64> {
        &self.cov
    }

    /// The fitted probabilities (propensity scores), in the rows' order.
    pub fn fitted(&self) -> &Array1<f64> {
        &self.fitted
    }

    /// The linear predictor (log odds of treatment), computed directly rather than from
    /// the probabilities, so it keeps its precision where they are close to 0 or 1.
    pub fn linear_predictor(&self) -> &Array1<f64> {
        &self.linear
    }

    /// The log-likelihood at the fit.
    pub fn loglik(&self) -> f64 {
        self.loglik
    }

    /// Newton steps taken.
    pub fn converged_in(&self) -> usize {
        self.iterations
    }
}

pub(crate) fn sigmoid(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^η), without overflow.
fn softplus(eta: f64) -> f64 {
    if eta > 0.0 {
        eta + (-eta).exp().ln_1p()
    } else {
        eta.exp().ln_1p()
    }
}

/// Log-likelihood, score and information at one β.
struct NewtonTerms {
    ll: f64,
    grad: Array1<f64>,
    info: Array2<f64>,
}

/// Log-likelihood Σ yη − log(1 + e^η), score Z'(y − p) and information Z'WZ, summed over
/// blocks of rows on all cores (the blocks are fixed, so the sums do not depend on the
/// number of threads).
fn newton_terms(
    z: &Array2<f64>,
    y: &Array1<f64>,
    beta: &Array1<f64>,
    weights: Option<&Array1<f64>>,
) -> NewtonTerms {
    use rayon::prelude::*;
    // Small blocks: their temporaries come from the allocator's pools instead of fresh
    // pages that the kernel must zero (that cost more than the products).
    const BLOCK: usize = 4096;
    let (n, k) = z.dim();
    let blocks: Vec<(usize, usize)> = (0..n)
        .step_by(BLOCK)
        .map(|a| (a, (a + BLOCK).min(n)))
        .collect();
    let parts: Vec<(f64, Array1<f64>, Array2<f64>)> = blocks
        .par_iter()
        .map(|&(a, b)| {
            let zb = z.slice(ndarray::s![a..b, ..]);
            let yb = y.slice(ndarray::s![a..b]);
            let eta = zb.dot(beta);
            let wb = weights.map(|w| w.slice(ndarray::s![a..b]));
            let wt = |i: usize| wb.as_ref().map_or(1.0, |w| w[i]);
            let ll: f64 = eta
                .iter()
                .zip(yb)
                .enumerate()
                .map(|(i, (&e, &yi))| wt(i) * (yi * e - softplus(e)))
                .sum();
            let p = eta.mapv(sigmoid);
            let resid = Array1::from_shape_fn(b - a, |i| wt(i) * (yb[i] - p[i]));
            let grad = zb.t().dot(&resid);
            let sw = Array1::from_shape_fn(b - a, |i| (wt(i) * p[i] * (1.0 - p[i])).sqrt());
            let zw = &zb * &sw.view().insert_axis(ndarray::Axis(1));
            (ll, grad, zw.t().dot(&zw))
        })
        .collect();
    let mut out = NewtonTerms {
        ll: 0.0,
        grad: Array1::zeros(k),
        info: Array2::zeros((k, k)),
    };
    for (l, g, i) in parts {
        out.ll += l;
        out.grad += &g;
        out.info += &i;
    }
    out
}

/// Firth's terms from the plain ones: the penalised log-likelihood ll + ½ log det I, the
/// modified score Z'(w(y − p) + h(½ − p)) with h the leverages of W^½ Z I⁻¹ Z' W^½, and
/// the information (the Newton step of `logistf`). `None` leverages if I is singular.
fn firth_terms(
    z: &Array2<f64>,
    beta: &Array1<f64>,
    weights: Option<&Array1<f64>>,
    plain: NewtonTerms,
) -> (NewtonTerms, Option<Array1<f64>>) {
    let Some(chol) = linalg::cholesky(&plain.info) else {
        return (plain, None);
    };
    let logdet: f64 = 2.0 * (0..chol.nrows()).map(|i| chol[[i, i]].ln()).sum::<f64>();
    let Some(inv) = linalg::inverse(&plain.info) else {
        return (plain, None);
    };
    let eta = z.dot(beta);
    let n = z.nrows();
    let mut h = Array1::<f64>::zeros(n);
    let mut grad = plain.grad.clone();
    for i in 0..n {
        let p = sigmoid(eta[i]);
        let w = weights.map_or(1.0, |w| w[i]) * p * (1.0 - p);
        let zi = z.row(i);
        let q = zi.dot(&inv.dot(&zi));
        h[i] = w * q;
        grad.scaled_add(h[i] * (0.5 - p), &zi);
    }
    (
        NewtonTerms {
            ll: plain.ll + 0.5 * logdet,
            grad,
            info: plain.info,
        },
        Some(h),
    )
}

/// What to say when the fit fails: a covariate whose values in one group all lie at or
/// beyond its values in the other separates them on its own (the usual cause, and easy
/// to check); otherwise the covariate with the largest standardised coefficient.
fn separation_hint(
    x: ArrayView2<f64>,
    d: &[bool],
    beta: &Array1<f64>,
    name: &dyn Fn(usize) -> String,
    what: &str,
) -> String {
    let advice = "coarsen it, drop it, or restrict the sample to where both groups occur";
    let separating = (0..x.ncols()).find(|&j| {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for (v, &t) in x.column(j).iter().zip(d) {
            lo[usize::from(t)] = lo[usize::from(t)].min(*v);
            hi[usize::from(t)] = hi[usize::from(t)].max(*v);
        }
        hi[0] <= lo[1] || hi[1] <= lo[0]
    });
    if let Some(j) = separating {
        return format!(
            "{what}; {} separates treated from controls on its own (their values do not \
             overlap): {advice}",
            name(j)
        );
    }
    let (j, b) = beta
        .iter()
        .enumerate()
        .skip(1)
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map_or((0, 0.0), |(j, &b)| (j - 1, b));
    format!(
        "{what}; {} has the largest coefficient ({b:.1} per standard deviation) and \
         probably predicts treatment (nearly) perfectly with the others: {advice}",
        name(j)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn complete_separation_is_an_error_naming_the_covariate() {
        let x = array![
            [1.0, 0.3],
            [2.0, 0.1],
            [3.0, 0.2],
            [4.0, 0.5],
            [5.0, 0.4],
            [6.0, 0.6]
        ];
        let d = [false, false, false, true, true, true];
        let names = vec!["age".to_string(), "noise".to_string()];
        let err = Logit::new()
            .fit_named(x.view(), &d, Some(&names))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("age"), "{msg}");
        assert!(msg.contains("separat") || msg.contains("converge"), "{msg}");
    }

    #[test]
    fn constant_and_collinear_covariates_are_named() {
        let x = array![[1.0, 2.0], [1.0, 3.0], [1.0, 1.0], [1.0, 5.0]];
        let names = vec!["one".to_string(), "b".to_string()];
        let d = [true, false, true, false];
        let e = Logit::new()
            .fit_named(x.view(), &d, Some(&names))
            .unwrap_err();
        assert!(e.to_string().contains("one"), "{e}");
        let x = array![[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]];
        let e = Logit::new()
            .fit_named(x.view(), &d, Some(&names))
            .unwrap_err();
        assert!(e.to_string().contains("b is a linear combination"), "{e}");
    }

    #[test]
    fn a_fit_without_covariates_gives_the_log_odds() {
        // With an uninformative covariate the intercept tends to the log odds; here
        // exactly: x is balanced across groups.
        let x = array![[1.0], [2.0], [1.0], [2.0], [1.0], [2.0], [1.0], [2.0]];
        let d = [true, true, false, false, false, false, false, false];
        let fit = Logit::new().fit(x.view(), &d).unwrap();
        assert!((fit.coef()[1]).abs() < 1e-12);
        assert!((fit.coef()[0] - (2.0f64 / 6.0).ln()).abs() < 1e-12);
        assert!(fit.fitted().iter().all(|&p| (p - 0.25).abs() < 1e-12));
    }
}
