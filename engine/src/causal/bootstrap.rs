//! The nonparametric bootstrap for any estimator: seeded, parallel, with percentile and
//! normal intervals.
//!
//! Units are resampled within treatment arms (each replicate keeps the numbers of treated
//! and controls), or whole clusters when the sample has clusters. Replicate r draws from
//! its own generator seeded by (seed, r), so the result does not depend on the number of
//! threads or the order they run in.

use ndarray::Array1;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::ols::dense_labels;
use super::sample::Sample;
use super::z_quantile;
use crate::{Error, Result};

/// A bootstrap: how many replicates, from which seed.
///
/// ```
/// use ndarray::Array2;
/// use occupa_engine::causal::bootstrap::Bootstrap;
/// use occupa_engine::causal::sample::Sample;
///
/// let n = 200;
/// let y: Vec<f64> = (0..n).map(|i| (i % 7) as f64 + if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
/// let d: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
/// let x = Array2::from_shape_fn((n, 1), |(i, _)| (i % 5) as f64);
/// let s = Sample::new(y, d, x, vec!["x".into()])?;
/// let diff = |s: &Sample| -> occupa_engine::Result<f64> {
///     let (mut a, mut b, mut na, mut nb) = (0.0, 0.0, 0.0, 0.0);
///     for (yi, &t) in s.y().iter().zip(s.d()) {
///         if t { a += yi; na += 1.0 } else { b += yi; nb += 1.0 }
///     }
///     Ok(a / na - b / nb)
/// };
/// let b = Bootstrap::new(200, 7)?.run(&s, diff)?;
/// assert!(b.se > 0.0 && b.percentile[0] < b.percentile[1]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    replicates: usize,
    seed: u64,
}

/// What the replicates say.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapResult {
    /// Replicates asked for.
    pub replicates: usize,
    /// Replicates whose estimator failed (e.g. a resample without overlap); left out.
    pub failed: usize,
    /// The seed.
    pub seed: u64,
    /// Standard deviation of the replicate estimates.
    pub se: f64,
    /// 2.5 % and 97.5 % quantiles of the replicate estimates.
    pub percentile: [f64; 2],
    /// Estimate ± 1.96 bootstrap SE (filled in by the caller, who has the estimate).
    pub normal: [f64; 2],
    /// How units were resampled.
    pub resampling: String,
    /// A caution about this estimator's bootstrap, when there is one.
    pub caution: Option<String>,
}

impl Bootstrap {
    /// `replicates` resamples (at least 2) from `seed`.
    pub fn new(replicates: usize, seed: u64) -> Result<Self> {
        if replicates < 2 {
            return Err(Error::Param {
                name: "bootstrap",
                reason: "at least 2 replicates (200 or more for intervals)".into(),
            });
        }
        Ok(Bootstrap { replicates, seed })
    }

    /// Runs `estimate` on every replicate of `sample` (a resampled copy).
    pub fn run<F>(&self, sample: &Sample, estimate: F) -> Result<BootstrapResult>
    where
        F: Fn(&Sample) -> Result<f64> + Sync,
    {
        self.replicate(sample, |rows| {
            let s = sample.subset(rows).ok()?;
            estimate(&s).ok()
        })
    }

    /// Runs `estimate` on every replicate given as frequency weights (how often each unit
    /// of `sample`, in its order, was drawn): the same replicates as [`Bootstrap::run`],
    /// without copying the data, for estimators that take weights.
    pub fn run_weighted<F>(&self, sample: &Sample, estimate: F) -> Result<BootstrapResult>
    where
        F: Fn(&Array1<f64>) -> Result<f64> + Sync,
    {
        let n = sample.len();
        self.replicate(sample, |rows| {
            let mut w = Array1::<f64>::zeros(n);
            for &i in rows {
                w[i] += 1.0;
            }
            estimate(&w).ok()
        })
    }

    fn replicate<F>(&self, sample: &Sample, one: F) -> Result<BootstrapResult>
    where
        F: Fn(&[usize]) -> Option<f64> + Sync,
    {
        let n = sample.len();
        let d = sample.d();
        // Resampling units: whole clusters, or units within each arm.
        let (pools, resampling): (Vec<Vec<Vec<usize>>>, String) = match sample.cluster() {
            Some(c) => {
                let (dense, g) = dense_labels(c);
                let mut members = vec![Vec::new(); g];
                for (i, &k) in dense.iter().enumerate() {
                    members[k].push(i);
                }
                (vec![members], format!("{g} clusters, resampled whole"))
            }
            None => {
                let arm = |t: bool| -> Vec<Vec<usize>> {
                    (0..n).filter(|&i| d[i] == t).map(|i| vec![i]).collect()
                };
                (
                    vec![arm(true), arm(false)],
                    "units, within treatment arms".to_string(),
                )
            }
        };
        let draws: Vec<Option<f64>> = (0..self.replicates)
            .into_par_iter()
            .map(|r| {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    self.seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let mut rows = Vec::with_capacity(n);
                for pool in &pools {
                    for _ in 0..pool.len() {
                        rows.extend_from_slice(&pool[rng.random_range(0..pool.len())]);
                    }
                }
                one(&rows).filter(|v| v.is_finite())
            })
            .collect();
        let mut est: Vec<f64> = draws.iter().flatten().copied().collect();
        let failed = self.replicates - est.len();
        if est.len() < 2 {
            return Err(Error::Estimation {
                method: "bootstrap",
                reason: format!("{failed} of {} replicates failed", self.replicates),
            });
        }
        let m = est.iter().sum::<f64>() / est.len() as f64;
        let se =
            (est.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (est.len() as f64 - 1.0)).sqrt();
        est.sort_by(f64::total_cmp);
        Ok(BootstrapResult {
            replicates: self.replicates,
            failed,
            seed: self.seed,
            se,
            percentile: [quantile(&est, 0.025), quantile(&est, 0.975)],
            normal: [f64::NAN, f64::NAN],
            resampling,
            caution: None,
        })
    }
}

impl BootstrapResult {
    /// Fills the normal interval around `estimate`.
    pub fn with_estimate(mut self, estimate: f64) -> Self {
        let z = z_quantile(0.975);
        self.normal = [estimate - z * self.se, estimate + z * self.se];
        self
    }
}

pub use crate::linalg::quantile_sorted as quantile;

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn sample() -> Sample {
        let n = 120;
        let y: Vec<f64> = (0..n).map(|i| ((i * 37) % 11) as f64).collect();
        let d: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let x = Array2::from_shape_fn((n, 1), |(i, _)| (i % 4) as f64);
        Sample::new(y, d, x, vec!["x".into()]).unwrap()
    }

    fn mean_diff(s: &Sample) -> Result<f64> {
        let (mut a, mut b, mut na, mut nb) = (0.0, 0.0, 0.0, 0.0);
        for (yi, &t) in s.y().iter().zip(s.d()) {
            if t {
                a += yi;
                na += 1.0;
            } else {
                b += yi;
                nb += 1.0;
            }
        }
        Ok(a / na - b / nb)
    }

    #[test]
    fn replicates_do_not_depend_on_the_thread_count() {
        let s = sample();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = one.install(|| Bootstrap::new(300, 11).unwrap().run(&s, mean_diff).unwrap());
        let b = Bootstrap::new(300, 11).unwrap().run(&s, mean_diff).unwrap();
        assert_eq!(a.se.to_bits(), b.se.to_bits());
        assert_eq!(a.percentile, b.percentile);
    }

    #[test]
    fn weighted_replicates_are_the_copied_ones() {
        let s = sample();
        let weighted = |w: &Array1<f64>| -> Result<f64> {
            let (mut a, mut b, mut na, mut nb) = (0.0, 0.0, 0.0, 0.0);
            for ((yi, &t), wi) in s.y().iter().zip(s.d()).zip(w) {
                if t {
                    a += wi * yi;
                    na += wi;
                } else {
                    b += wi * yi;
                    nb += wi;
                }
            }
            Ok(a / na - b / nb)
        };
        let x = Bootstrap::new(300, 5).unwrap().run(&s, mean_diff).unwrap();
        let y = Bootstrap::new(300, 5)
            .unwrap()
            .run_weighted(&s, weighted)
            .unwrap();
        assert!((x.se - y.se).abs() < 1e-12 * x.se);
        assert!((x.percentile[0] - y.percentile[0]).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_se_of_a_mean_difference_is_close_to_the_analytic_one() {
        // Resampling within arms, the bootstrap variance of a difference of means is
        // σ̂₁²/n₁ + σ̂₀²/n₀ with the plug-in (divide-by-n) variances; with 4,000
        // replicates the Monte Carlo error of the SE is about 1 %.
        let s = sample();
        let b = Bootstrap::new(4000, 3).unwrap().run(&s, mean_diff).unwrap();
        let arm = |t: bool| {
            let v: Vec<f64> = s
                .y()
                .iter()
                .zip(s.d())
                .filter(|p| *p.1 == t)
                .map(|p| *p.0)
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
            var / v.len() as f64
        };
        let analytic = (arm(true) + arm(false)).sqrt();
        assert!(
            (b.se / analytic - 1.0).abs() < 0.05,
            "{} vs {}",
            b.se,
            analytic
        );
    }
}
