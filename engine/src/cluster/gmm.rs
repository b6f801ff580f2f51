//! Gaussian mixtures by EM, with full or diagonal covariances (as scikit-learn's
//! `GaussianMixture`): for numeric scores such as the ISA dimensions or GOL sections.
//!
//! Each start is initialised from a one-start k-means, or for every other start from
//! k-means++ seeds alone (the labels as hard responsibilities, then an M-step), `reg_covar` is added to every variance so that no
//! component collapses onto a point, and EM stops when the mean log-likelihood per
//! point rises by less than `tol`. Rows are processed in fixed chunks added in order, so
//! a seed gives the same fit whatever the number of threads.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::Serialize;

use super::kmeans::KMeans;
use crate::causal::linalg;
use crate::{Error, Result};

const CHUNK: usize = 2048;
/// EM steps of every start before the best quarter are run on to convergence.
const INITIAL_STEPS: usize = 100;

/// A start's end: parameters, log-likelihood, EM steps, converged.
type Outcome = super::Outcome<Params>;

/// The shape of the components' covariance matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Covariance {
    /// A full covariance matrix per component.
    Full,
    /// A diagonal covariance matrix per component (independent columns within it).
    Diag,
}

/// A Gaussian mixture with `k` components.
///
/// ```
/// use ndarray::Array2;
/// use occupa_engine::cluster::gmm::{Covariance, Gmm};
///
/// // Two well-separated groups of 100 points.
/// let x = Array2::from_shape_fn((200, 2), |(i, j)| {
///     let centre = if i < 100 { 0.0 } else { 6.0 };
///     centre + ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5
/// });
/// let fit = Gmm::new(2, Covariance::Full)?.fit(x.view())?;
/// assert_eq!(fit.sizes, vec![100, 100]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gmm {
    k: usize,
    covariance: Covariance,
    starts: usize,
    max_iter: usize,
    tol: f64,
    reg_covar: f64,
    seed: u64,
}

/// A fitted Gaussian mixture; components in decreasing order of weight.
#[derive(Debug, Clone, Serialize)]
pub struct FittedGmm {
    /// Number of components.
    pub k: usize,
    /// Covariance shape.
    pub covariance: Covariance,
    /// Log-likelihood of the data.
    pub loglik: f64,
    /// Free parameters: k·d + k·d(d+1)/2 (full) or 2k·d (diagonal), plus k − 1.
    pub npar: usize,
    /// −2 log L + npar · ln n.
    pub bic: f64,
    /// −2 log L + 2 npar.
    pub aic: f64,
    /// Mixing weights.
    pub weights: Vec<f64>,
    /// Component means (k × d).
    #[serde(skip)]
    pub means: Array2<f64>,
    /// Component covariances (d × d each; diagonal ones as full matrices).
    #[serde(skip)]
    pub covariances: Vec<Array2<f64>>,
    /// Points whose most probable component is each one.
    pub sizes: Vec<usize>,
    /// Most probable component of each point.
    #[serde(skip)]
    pub labels: Vec<usize>,
    /// EM steps of the best start.
    pub iterations: usize,
    /// Whether the best start converged.
    pub converged: bool,
    /// Log-likelihood of each start.
    pub start_logliks: Vec<f64>,
    /// The fitted parameters, components in the order above.
    #[serde(skip)]
    params: Params,
}

/// Parameters during EM: weights, means, and per component the Cholesky factor of
/// its covariance with its log-determinant.
#[derive(Debug, Clone)]
struct Params {
    log_w: Vec<f64>,
    means: Vec<f64>,
    chol: Vec<Array2<f64>>,
    log_det: Vec<f64>,
}

impl Gmm {
    /// `k` components (at least 1): 20 starts (100 EM steps each, then the best half
    /// to convergence), at most 1,000 EM steps, tol 1e-8, reg_covar 1e-6, seed 0.
    pub fn new(k: usize, covariance: Covariance) -> Result<Self> {
        if k == 0 {
            return Err(Error::Param {
                name: "k",
                reason: "at least one component".into(),
            });
        }
        Ok(Gmm {
            k,
            covariance,
            starts: 20,
            max_iter: 1000,
            tol: 1e-8,
            reg_covar: 1e-6,
            seed: 0,
        })
    }

    /// Number of starts (at least 1).
    pub fn starts(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "starts",
                reason: "at least one start".into(),
            });
        }
        self.starts = n;
        Ok(self)
    }

    /// Most EM steps per start.
    pub fn max_iter(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "max_iter",
                reason: "at least one step".into(),
            });
        }
        self.max_iter = n;
        Ok(self)
    }

    /// Stop when the mean log-likelihood per point rises by less than this.
    pub fn tol(mut self, tol: f64) -> Result<Self> {
        if !(tol > 0.0 && tol.is_finite()) {
            return Err(Error::Param {
                name: "tol",
                reason: format!("{tol} must be a positive number"),
            });
        }
        self.tol = tol;
        Ok(self)
    }

    /// Added to every variance (non-negative).
    pub fn reg_covar(mut self, v: f64) -> Result<Self> {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(Error::Param {
                name: "reg_covar",
                reason: format!("{v} must be zero or positive"),
            });
        }
        self.reg_covar = v;
        Ok(self)
    }

    /// Seed of the starts.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits the mixture to the rows of `x` (no missing values).
    pub fn fit(&self, x: ArrayView2<f64>) -> Result<FittedGmm> {
        let (n, d) = x.dim();
        if n < 2 * self.k {
            return Err(Error::Estimation {
                method: "Gaussian mixture",
                reason: format!("{n} rows for {} components; use fewer components", self.k),
            });
        }
        let x = x.as_standard_layout().into_owned();
        let xs = x.as_slice().unwrap_or(&[]);
        // Two stages: every start runs 100 EM steps, then the better half run to
        // convergence (mixtures have many local optima; more short starts find the
        // good ones more often than a few long ones).
        let ((params, loglik, iterations, converged), start_logliks) = super::two_stage(
            self.starts,
            self.starts.div_ceil(2),
            "Gaussian mixture",
            |s| {
                // Half the starts from a k-means partition, half from k-means++ seeds
                // alone (one assignment): different basins of the likelihood.
                let km = KMeans::new(self.k)?
                    .starts(1)?
                    .seed(super::start_seed(self.seed, s));
                let km = if s % 2 == 0 {
                    km
                } else {
                    km.max_iter(1)?.tol(0.0)?
                };
                let km = km.fit(x.view())?;
                let mut resp = vec![0.0; n * self.k];
                for (i, &l) in km.labels.iter().enumerate() {
                    resp[i * self.k + l] = 1.0;
                }
                let params = self.m_step(xs, n, d, &resp)?;
                self.em(xs, n, d, params, INITIAL_STEPS.min(self.max_iter))
            },
            |(p, ll, steps, done)| {
                if done {
                    return Ok((p, ll, steps, true));
                }
                let more = self.max_iter.saturating_sub(steps).max(1);
                self.em(xs, n, d, p, more)
                    .map(|(p, ll, it, c)| (p, ll, steps + it, c))
            },
        )?;
        let k = self.k;
        let (_, resp) = e_step(xs, n, d, k, &params);
        let mut labels: Vec<usize> = (0..n)
            .map(|i| {
                let r = &resp[i * k..(i + 1) * k];
                (0..k).fold(0, |b, c| if r[c] > r[b] { c } else { b })
            })
            .collect();
        // Components in decreasing order of weight.
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| params.log_w[b].total_cmp(&params.log_w[a]).then(a.cmp(&b)));
        let mut new_of = vec![0; k];
        for (new, &old) in order.iter().enumerate() {
            new_of[old] = new;
        }
        for l in &mut labels {
            *l = new_of[*l];
        }
        let mut sizes = vec![0usize; k];
        for &l in &labels {
            sizes[l] += 1;
        }
        let means = Array2::from_shape_fn((k, d), |(c, j)| params.means[order[c] * d + j]);
        let covariances = order
            .iter()
            .map(|&o| params.chol[o].dot(&params.chol[o].t()))
            .collect();
        let cov_par = match self.covariance {
            Covariance::Full => d * (d + 1) / 2,
            Covariance::Diag => d,
        };
        let npar = k * d + k * cov_par + k - 1;
        Ok(FittedGmm {
            k,
            covariance: self.covariance,
            loglik,
            npar,
            bic: -2.0 * loglik + npar as f64 * (n as f64).ln(),
            aic: -2.0 * loglik + 2.0 * npar as f64,
            weights: order.iter().map(|&o| params.log_w[o].exp()).collect(),
            means,
            covariances,
            sizes,
            labels,
            iterations,
            converged,
            start_logliks,
            params: Params {
                log_w: order.iter().map(|&o| params.log_w[o]).collect(),
                means: order
                    .iter()
                    .flat_map(|&o| params.means[o * d..(o + 1) * d].to_vec())
                    .collect(),
                chol: order.iter().map(|&o| params.chol[o].clone()).collect(),
                log_det: order.iter().map(|&o| params.log_det[o]).collect(),
            },
        })
    }

    /// EM for at most `max_steps` steps: (parameters, log-likelihood, steps, converged).
    fn em(
        &self,
        x: &[f64],
        n: usize,
        d: usize,
        mut params: Params,
        max_steps: usize,
    ) -> Result<Outcome> {
        let mut prev = f64::NEG_INFINITY;
        for it in 1..=max_steps {
            let (ll, resp) = e_step(x, n, d, self.k, &params);
            if !ll.is_finite() {
                return Err(Error::Estimation {
                    method: "Gaussian mixture",
                    reason: "the likelihood is not finite; rescale the columns".into(),
                });
            }
            if (ll - prev).abs() / (n as f64) < self.tol {
                return Ok((params, ll, it, true));
            }
            prev = ll;
            if it == max_steps {
                return Ok((params, ll, it, false));
            }
            params = self.m_step(x, n, d, &resp)?;
        }
        unreachable!("the loop returns at its last step")
    }

    /// Weights, means and (regularised) covariances from responsibilities.
    fn m_step(&self, x: &[f64], n: usize, d: usize, resp: &[f64]) -> Result<Params> {
        let k = self.k;
        // Per chunk: Σ r, Σ r x, Σ r x xᵀ.
        let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
        let parts: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = starts
            .par_iter()
            .map(|&a| {
                let mut nk = vec![0.0; k];
                let mut sx = vec![0.0; k * d];
                let mut sxx = vec![0.0; k * d * d];
                for i in a..(a + CHUNK).min(n) {
                    let xi = &x[i * d..(i + 1) * d];
                    for c in 0..k {
                        let r = resp[i * k + c];
                        if r == 0.0 {
                            continue;
                        }
                        nk[c] += r;
                        for j in 0..d {
                            sx[c * d + j] += r * xi[j];
                            for l in 0..=j {
                                sxx[(c * d + j) * d + l] += r * xi[j] * xi[l];
                            }
                        }
                    }
                }
                (nk, sx, sxx)
            })
            .collect();
        let mut nk = vec![0.0; k];
        let mut sx = vec![0.0; k * d];
        let mut sxx = vec![0.0; k * d * d];
        for (a, b, c) in parts {
            nk.iter_mut().zip(&a).for_each(|(o, v)| *o += v);
            sx.iter_mut().zip(&b).for_each(|(o, v)| *o += v);
            sxx.iter_mut().zip(&c).for_each(|(o, v)| *o += v);
        }
        let mut means = vec![0.0; k * d];
        let mut chol = Vec::with_capacity(k);
        let mut log_det = Vec::with_capacity(k);
        for c in 0..k {
            // A component nobody belongs to: a tiny weight keeps the logs finite.
            let w = nk[c].max(10.0 * f64::EPSILON);
            for j in 0..d {
                means[c * d + j] = sx[c * d + j] / w;
            }
            let mut cov = Array2::<f64>::zeros((d, d));
            for j in 0..d {
                for l in 0..=j {
                    let v = sxx[(c * d + j) * d + l] / w - means[c * d + j] * means[c * d + l];
                    let v = if self.covariance == Covariance::Diag && j != l {
                        0.0
                    } else {
                        v
                    };
                    cov[[j, l]] = v;
                    cov[[l, j]] = v;
                }
                cov[[j, j]] += self.reg_covar;
            }
            let l = linalg::cholesky(&cov).ok_or_else(|| Error::Estimation {
                method: "Gaussian mixture",
                reason: format!(
                    "component {} has a singular covariance (points on a line or a point); \
                     raise reg_covar or use fewer components",
                    c + 1
                ),
            })?;
            log_det.push(2.0 * (0..d).map(|j| l[[j, j]].ln()).sum::<f64>());
            chol.push(l);
        }
        Ok(Params {
            log_w: nk
                .iter()
                .map(|v| (v.max(10.0 * f64::EPSILON) / n as f64).ln())
                .collect(),
            means,
            chol,
            log_det,
        })
    }
}

impl FittedGmm {
    /// A model from saved weights, means (k × d) and covariance matrices.
    pub fn from_parts(
        weights: Vec<f64>,
        means: Array2<f64>,
        covariances: Vec<Array2<f64>>,
    ) -> Result<Self> {
        let (k, d) = means.dim();
        if k == 0 || weights.len() != k || covariances.len() != k {
            return Err(Error::Param {
                name: "model",
                reason: format!(
                    "{} weights, {k} means and {} covariances: give one of each per component",
                    weights.len(),
                    covariances.len()
                ),
            });
        }
        let mut chol = Vec::with_capacity(k);
        let mut log_det = Vec::with_capacity(k);
        for (c, cov) in covariances.iter().enumerate() {
            let l = linalg::cholesky(cov)
                .filter(|_| cov.dim() == (d, d))
                .ok_or_else(|| Error::Param {
                    name: "model",
                    reason: format!(
                        "component {}: not a positive definite {d} × {d} covariance",
                        c + 1
                    ),
                })?;
            log_det.push(2.0 * (0..d).map(|j| l[[j, j]].ln()).sum::<f64>());
            chol.push(l);
        }
        let params = Params {
            log_w: weights.iter().map(|w| w.ln()).collect(),
            means: means.iter().copied().collect(),
            chol,
            log_det,
        };
        Ok(FittedGmm {
            k,
            covariance: Covariance::Full,
            loglik: f64::NAN,
            npar: 0,
            bic: f64::NAN,
            aic: f64::NAN,
            weights,
            means,
            covariances,
            sizes: Vec::new(),
            labels: Vec::new(),
            iterations: 0,
            converged: true,
            start_logliks: Vec::new(),
            params,
        })
    }

    /// Posterior component probabilities of the rows of `x` (same columns as the fit).
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let d = self.means.ncols();
        if x.ncols() != d {
            return Err(Error::Param {
                name: "x",
                reason: format!("{} columns; the model has {d}", x.ncols()),
            });
        }
        let x = x.as_standard_layout().into_owned();
        let n = x.nrows();
        let (_, resp) = e_step(x.as_slice().unwrap_or(&[]), n, d, self.k, &self.params);
        Array2::from_shape_vec((n, self.k), resp).map_err(|e| Error::Estimation {
            method: "Gaussian mixture",
            reason: e.to_string(),
        })
    }

    /// The most probable component of each row of `x`.
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<usize>> {
        Ok(super::most_probable(&self.predict_proba(x)?))
    }
}

/// Log-likelihood and responsibilities (n × k).
fn e_step(x: &[f64], n: usize, d: usize, k: usize, p: &Params) -> (f64, Vec<f64>) {
    let norm = d as f64 * (2.0 * std::f64::consts::PI).ln();
    let mut resp = vec![0.0; n * k];
    let lls: Vec<f64> = resp
        .par_chunks_mut(CHUNK * k)
        .enumerate()
        .map(|(chunk, out)| {
            let mut ll = 0.0;
            let mut z = vec![0.0; d];
            for (t, r) in out.chunks_exact_mut(k).enumerate() {
                let i = chunk * CHUNK + t;
                let xi = &x[i * d..(i + 1) * d];
                for c in 0..k {
                    // Mahalanobis distance by forward substitution with the factor.
                    let l = &p.chol[c];
                    let mut q = 0.0;
                    for j in 0..d {
                        let mut s = xi[j] - p.means[c * d + j];
                        for m in 0..j {
                            s -= l[[j, m]] * z[m];
                        }
                        z[j] = s / l[[j, j]];
                        q += z[j] * z[j];
                    }
                    r[c] = p.log_w[c] - 0.5 * (norm + p.log_det[c] + q);
                }
                let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
                let lse = m + s.ln();
                for v in r.iter_mut() {
                    *v = (*v - lse).exp();
                }
                ll += lse;
            }
            ll
        })
        .collect();
    (lls.iter().sum(), resp)
}
