//! Ordinary least squares with classical, heteroskedasticity-robust (HC0–HC3) and
//! cluster-robust covariance, as statsmodels and Stata define them.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::linalg;
use crate::{Error, Result};

/// How the covariance of the coefficients is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CovType {
    /// σ̂²(X'X)⁻¹ with σ̂² = RSS/(n − k).
    Classical,
    /// White's sandwich, no correction.
    Hc0,
    /// HC0 · n/(n − k) (Stata's `robust`).
    Hc1,
    /// Squared residuals divided by 1 − hᵢ.
    Hc2,
    /// Squared residuals divided by (1 − hᵢ)².
    Hc3,
}

impl CovType {
    /// Parses `classical`, `hc0`, `hc1`, `hc2`, `hc3`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "classical" | "nonrobust" => CovType::Classical,
            "hc0" => CovType::Hc0,
            "hc1" | "robust" => CovType::Hc1,
            "hc2" => CovType::Hc2,
            "hc3" => CovType::Hc3,
            other => {
                return Err(Error::Param {
                    name: "se",
                    reason: format!(
                        "unknown covariance '{other}'; use classical, hc0, hc1, hc2 or hc3"
                    ),
                });
            }
        })
    }

    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            CovType::Classical => "classical",
            CovType::Hc0 => "HC0",
            CovType::Hc1 => "HC1",
            CovType::Hc2 => "HC2",
            CovType::Hc3 => "HC3",
        }
    }
}

/// An OLS regression; the design must include the intercept column if one is wanted.
///
/// ```
/// use ndarray::array;
/// use occupa_engine::causal::ols::{CovType, Ols};
///
/// let x = array![[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]];
/// let y = array![1.0, 3.1, 4.9, 7.0];
/// let fit = Ols::new(CovType::Hc1).fit(x.view(), y.view())?;
/// assert!((fit.coef()[1] - 1.98).abs() < 1e-12);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ols {
    cov: CovType,
    clusters: Option<Vec<u32>>,
}

/// A fitted OLS regression.
#[derive(Debug, Clone)]
pub struct FittedOls {
    coef: Array1<f64>,
    cov: Array2<f64>,
    resid: Array1<f64>,
    /// Clusters used, if any.
    groups: Option<usize>,
    cov_name: String,
}

impl Ols {
    /// OLS with the given covariance.
    pub fn new(cov: CovType) -> Self {
        Ols {
            cov,
            clusters: None,
        }
    }

    /// Cluster-robust covariance by these labels (one per row), with Stata's CR1
    /// correction G/(G−1)·(n−1)/(n−k); replaces the row-level covariance.
    pub fn clusters(mut self, labels: Vec<u32>) -> Self {
        self.clusters = Some(labels);
        self
    }

    /// Fits `y ≈ x b`.
    pub fn fit(&self, x: ArrayView2<f64>, y: ArrayView1<f64>) -> Result<FittedOls> {
        let (n, k) = x.dim();
        let fail = |reason: String| Error::Estimation {
            method: "least squares",
            reason,
        };
        if y.len() != n {
            return Err(fail(format!(
                "{n} rows of covariates but {} outcomes",
                y.len()
            )));
        }
        if n <= k {
            return Err(fail(format!(
                "{n} rows for {k} coefficients; more rows are needed"
            )));
        }
        let Some((coef, xtx_inv)) = linalg::least_squares(x, y) else {
            let c = linalg::collinear_column(x).unwrap_or(0);
            return Err(fail(format!(
                "column {} of the design is a linear combination of the others",
                c + 1
            )));
        };
        let resid = &y - &x.dot(&coef);
        let (nf, kf) = (n as f64, k as f64);
        let sandwich = |u: &Array1<f64>| {
            let xu = &x * &u.view().insert_axis(Axis(1));
            let meat = xu.t().dot(&xu);
            xtx_inv.dot(&meat).dot(&xtx_inv)
        };
        let (cov, groups, cov_name) = if let Some(labels) = &self.clusters {
            if labels.len() != n {
                return Err(fail(format!(
                    "{} cluster labels for {n} rows",
                    labels.len()
                )));
            }
            let (sums, g) = cluster_sums(x, resid.view(), labels);
            if g < 2 {
                return Err(fail(
                    "cluster-robust errors need at least two clusters".into(),
                ));
            }
            let meat = sums.t().dot(&sums);
            let gf = g as f64;
            let c = gf / (gf - 1.0) * (nf - 1.0) / (nf - kf);
            let cov = xtx_inv.dot(&meat).dot(&xtx_inv) * c;
            (cov, Some(g), format!("cluster ({g} clusters, CR1)"))
        } else {
            let hat = || -> Array1<f64> {
                // hᵢ = xᵢ (X'X)⁻¹ xᵢ'.
                let xa = x.dot(&xtx_inv);
                (&xa * &x).sum_axis(Axis(1))
            };
            let cov = match self.cov {
                CovType::Classical => {
                    let s2 = resid.dot(&resid) / (nf - kf);
                    &xtx_inv * s2
                }
                CovType::Hc0 => sandwich(&resid),
                CovType::Hc1 => sandwich(&resid) * (nf / (nf - kf)),
                CovType::Hc2 => {
                    let h = hat();
                    let u = Array1::from_shape_fn(n, |i| resid[i] / (1.0 - h[i]).sqrt());
                    sandwich(&u)
                }
                CovType::Hc3 => {
                    let h = hat();
                    let u = Array1::from_shape_fn(n, |i| resid[i] / (1.0 - h[i]));
                    sandwich(&u)
                }
            };
            (cov, None, self.cov.name().to_string())
        };
        Ok(FittedOls {
            coef,
            cov,
            resid,
            groups,
            cov_name,
        })
    }
}

/// Per-cluster sums of the rows of `x` weighted by `u`, and the number of clusters.
pub(crate) fn cluster_sums(
    x: ArrayView2<f64>,
    u: ArrayView1<f64>,
    labels: &[u32],
) -> (Array2<f64>, usize) {
    let (dense, g) = dense_labels(labels);
    let mut sums = Array2::<f64>::zeros((g, x.ncols()));
    for (i, &c) in dense.iter().enumerate() {
        sums.row_mut(c).scaled_add(u[i], &x.row(i));
    }
    (sums, g)
}

/// Labels renumbered 0.. in order of first appearance (rows come in a canonical order,
/// so the numbering does not depend on the input's order), and how many there are.
pub(crate) fn dense_labels(labels: &[u32]) -> (Vec<usize>, usize) {
    let mut seen = std::collections::HashMap::new();
    let dense = labels
        .iter()
        .map(|&l| {
            let next = seen.len();
            *seen.entry(l).or_insert(next)
        })
        .collect();
    (dense, seen.len())
}

impl FittedOls {
    /// The coefficients, in the design's column order.
    pub fn coef(&self) -> &Array1<f64> {
        &self.coef
    }

    /// Standard errors under the chosen covariance.
    pub fn se(&self) -> Array1<f64> {
        self.cov.diag().mapv(f64::sqrt)
    }

    /// The covariance matrix of the coefficients.
    pub fn cov(&self) -> &Array2<f64> {
        &self.cov
    }

    /// The residuals.
    pub fn resid(&self) -> &Array1<f64> {
        &self.resid
    }

    /// Number of clusters, for cluster-robust covariance.
    pub fn clusters(&self) -> Option<usize> {
        self.groups
    }

    /// Which covariance was used, for outputs.
    pub fn cov_name(&self) -> &str {
        &self.cov_name
    }
}
