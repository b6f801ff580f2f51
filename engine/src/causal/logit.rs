//! The propensity score: logistic regression by iteratively reweighted least squares
//! (Newton–Raphson on the log-likelihood), with convergence and separation checks.

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
    pub(crate) design_std: Array2<f64>,
    fitted: Array1<f64>,
    linear: Array1<f64>,
    loglik: f64,
    iterations: usize,
}

impl Logit {
    /// Newton–Raphson with at most 100 iterations, stopping when no standardised
    /// coefficient moves by more than 1e-10.
    pub fn new() -> Self {
        Logit {
            max_iter: 100,
            tol: 1e-10,
        }
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
        let mut mean = vec![0.0; p];
        let mut sd = vec![0.0; p];
        for j in 0..p {
            let col = x.column(j);
            let m = col.sum() / n as f64;
            let v = col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
            if v.is_nan() || v <= 0.0 || !v.is_finite() {
                return Err(fail(format!(
                    "{} takes a single value (or is not finite); leave it out",
                    name(j)
                )));
            }
            mean[j] = m;
            sd[j] = v.sqrt();
        }
        let z = Array2::from_shape_fn((n, p + 1), |(i, j)| {
            if j == 0 {
                1.0
            } else {
                (x[[i, j - 1]] - mean[j - 1]) / sd[j - 1]
            }
        });
        if let Some(c) = linalg::collinear_column(z.view()) {
            return Err(fail(format!(
                "{} is a linear combination of the other covariates; leave it out",
                name(c.saturating_sub(1))
            )));
        }
        let y: Array1<f64> = d.iter().map(|&t| f64::from(t)).collect();
        let mut beta = Array1::<f64>::zeros(p + 1);
        let share = treated as f64 / n as f64;
        beta[0] = (share / (1.0 - share)).ln();
        let mut ll = loglik(&z, &y, &beta);
        let mut converged = None;
        for it in 1..=self.max_iter {
            let (grad, info) = score_and_information(&z, &y, &beta);
            let Some(step) = linalg::solve_spd(&info, &grad) else {
                return Err(fail(separation_hint(
                    x,
                    d,
                    &beta,
                    &name,
                    "the information matrix became singular",
                )));
            };
            // Step halving keeps every iteration an ascent step.
            let mut t = 1.0;
            let mut next = &beta + &step;
            let mut ll_next = loglik(&z, &y, &next);
            while (ll_next.is_nan() || ll_next < ll - 1e-12 * ll.abs()) && t > 1e-6 {
                t *= 0.5;
                next = &beta + &(&step * t);
                ll_next = loglik(&z, &y, &next);
            }
            let moved = (&next - &beta).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            beta = next;
            ll = ll_next;
            if ll > -1e-9 {
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
                &format!(
                    "Newton's method did not converge in {} iterations",
                    self.max_iter
                ),
            )));
        };
        let (_, info) = score_and_information(&z, &y, &beta);
        let cov_std = linalg::inverse(&info).ok_or_else(|| {
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
            design_std: z,
            fitted,
            linear,
            loglik: ll,
            iterations,
        })
    }
}

impl FittedLogit {
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

fn loglik(z: &Array2<f64>, y: &Array1<f64>, beta: &Array1<f64>) -> f64 {
    z.dot(beta)
        .iter()
        .zip(y)
        .map(|(&eta, &yi)| yi * eta - softplus(eta))
        .sum()
}

fn score_and_information(
    z: &Array2<f64>,
    y: &Array1<f64>,
    beta: &Array1<f64>,
) -> (Array1<f64>, Array2<f64>) {
    let eta = z.dot(beta);
    let p = eta.mapv(sigmoid);
    let resid = y - &p;
    let grad = z.t().dot(&resid);
    let w = p.mapv(|v| v * (1.0 - v));
    let zw = z * &w.view().insert_axis(ndarray::Axis(1));
    let info = z.t().dot(&zw);
    (grad, info)
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
