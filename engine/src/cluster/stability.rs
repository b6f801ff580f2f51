//! Stability of a clustering under resampling (Hennig 2007): refit on bootstrap
//! samples, assign everyone with the refitted model, and compare with the original
//! partition: the adjusted Rand index overall, and per original cluster the Jaccard
//! similarity of its best match. A cluster whose mean Jaccard is below about 0.6 is not
//! a stable pattern of the data; above 0.75 it is (Hennig's guidance).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::quality::adjusted_rand;
use crate::{Error, Result};

/// What the bootstrap says about each cluster and the whole.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    /// Bootstrap samples asked for.
    pub replicates: usize,
    /// Refits that failed (left out).
    pub failed: usize,
    /// Seed of the samples.
    pub seed: u64,
    /// Mean adjusted Rand index between the original and the refitted partitions.
    pub adjusted_rand: f64,
    /// Per original cluster, the mean over samples of the Jaccard similarity of its
    /// best-matching refitted cluster.
    pub jaccard: Vec<f64>,
}

/// Refits `fit_predict` (which gets the rows of a bootstrap sample and returns everyone's
/// cluster under the model fitted on them) `replicates` times and compares with `labels`
/// (k clusters). Sample b draws from its own generator seeded by (seed, b).
///
/// ```
/// use occupa_engine::cluster::stability::stability;
///
/// // A "model" that always finds the same two groups: perfectly stable.
/// let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 50)).collect();
/// let s = stability(&labels, 2, 20, 1, |_rows| Ok(labels.clone()))?;
/// assert_eq!(s.adjusted_rand, 1.0);
/// assert_eq!(s.jaccard, vec![1.0, 1.0]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
pub fn stability<F>(
    labels: &[usize],
    k: usize,
    replicates: usize,
    seed: u64,
    fit_predict: F,
) -> Result<Stability>
where
    F: Fn(&[usize]) -> Result<Vec<usize>> + Sync,
{
    let n = labels.len();
    if replicates == 0 || n == 0 {
        return Err(Error::Param {
            name: "stability",
            reason: "at least one bootstrap sample of at least one row".into(),
        });
    }
    let runs: Vec<Option<(f64, Vec<f64>)>> = (0..replicates)
        .into_par_iter()
        .map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(super::start_seed(seed, b));
            let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let new = fit_predict(&rows).ok()?;
            if new.len() != n {
                return None;
            }
            let ari = adjusted_rand(labels, &new);
            let kn = new.iter().max().map_or(0, |m| m + 1);
            // |C ∩ D| for every original C and new D.
            let mut both = vec![0usize; k * kn];
            let mut size_c = vec![0usize; k];
            let mut size_d = vec![0usize; kn];
            for (&c, &d) in labels.iter().zip(&new) {
                both[c * kn + d] += 1;
                size_c[c] += 1;
                size_d[d] += 1;
            }
            let jac = (0..k)
                .map(|c| {
                    (0..kn)
                        .map(|d| {
                            let i = both[c * kn + d] as f64;
                            let u = (size_c[c] + size_d[d]) as f64 - i;
                            if u > 0.0 { i / u } else { 0.0 }
                        })
                        .fold(0.0, f64::max)
                })
                .collect();
            Some((ari, jac))
        })
        .collect();
    let ok: Vec<&(f64, Vec<f64>)> = runs.iter().flatten().collect();
    if ok.is_empty() {
        return Err(Error::Estimation {
            method: "stability",
            reason: format!("all {replicates} refits failed"),
        });
    }
    let m = ok.len() as f64;
    Ok(Stability {
        replicates,
        failed: replicates - ok.len(),
        seed,
        adjusted_rand: ok.iter().map(|r| r.0).sum::<f64>() / m,
        jaccard: (0..k)
            .map(|c| ok.iter().map(|r| r.1[c]).sum::<f64>() / m)
            .collect(),
    })
}
