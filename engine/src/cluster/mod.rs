//! Clustering of occupability profiles: which kinds of people do the services serve?
//!
//! * [`items::Items`]: categorical answers (ASSO, ISA, GOL items) with missing answers;
//! * [`lca::Lca`]: latent class analysis by EM, with full-information handling of
//!   missing answers, several random starts, information criteria and poLCA's standard
//!   errors;
//! * [`kmeans::KMeans`], [`gmm::Gmm`], [`kprototypes::KPrototypes`] for numeric scores
//!   and mixed data;
//! * [`quality`] (silhouette, adjusted Rand, Jaccard), [`stability`] (bootstrap),
//!   [`profiles`] (what stands out in each cluster, and a label);
//! * [`run`]: one run of `occupa cluster` over a range of k.
//!
//! Each method follows the vocabulary spec → `fit` → fitted model → `predict`, and is
//! checked against a reference tool's output in `tests/fixtures/` (poLCA, scikit-learn).

// Numerical code indexes several arrays in step; index loops read like the formulas.
#![allow(clippy::needless_range_loop)]

pub mod gmm;
pub mod items;
pub mod kmeans;
pub mod kprototypes;
pub mod lca;
pub mod model;
pub mod profiles;
pub mod quality;
pub mod run;
pub mod stability;

use ndarray::Array2;
use rayon::prelude::*;

/// The seed of start (or bootstrap sample) `s` under a run's `seed`: each start draws
/// from its own generator, so results do not depend on threads or on the order starts
/// run in.
pub(crate) fn start_seed(seed: u64, s: usize) -> u64 {
    seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The most probable cluster of each row of posterior probabilities (the first on ties).
pub(crate) fn most_probable(post: &Array2<f64>) -> Vec<usize> {
    post.rows()
        .into_iter()
        .map(|r| (0..r.len()).fold(0, |b, c| if r[c] > r[b] { c } else { b }))
        .collect()
}

/// Relative entropy of a classification, 1 − Σᵢ Σᵣ −pᵢᵣ ln pᵢᵣ / (n ln k): 1 when every
/// row's cluster is certain; `None` for a single cluster.
pub(crate) fn relative_entropy(post: &Array2<f64>) -> Option<f64> {
    let (n, k) = post.dim();
    (k > 1).then(|| {
        let h: f64 = post
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| -p * p.ln())
            .sum();
        1.0 - h / (n as f64 * (k as f64).ln())
    })
}

/// How a start ended: parameters, log-likelihood, steps taken, converged.
pub(crate) type Outcome<P> = (P, f64, usize, bool);

/// Two-stage random starts, as Mplus runs them: every start's `first` stage runs in
/// parallel, then the `keep` with the highest log-likelihood are handed to `more`
/// (which continues them, or keeps a finished one as it is) and the best of those wins.
/// Returns the winner and every start's log-likelihood (its final one if continued).
pub(crate) fn two_stage<P, F, M>(
    starts: usize,
    keep: usize,
    method: &'static str,
    first: F,
    more: M,
) -> crate::Result<(Outcome<P>, Vec<f64>)>
where
    P: Send + Sync,
    F: Fn(usize) -> crate::Result<Outcome<P>> + Sync,
    M: Fn(Outcome<P>) -> crate::Result<Outcome<P>> + Sync,
{
    let first: Vec<crate::Result<Outcome<P>>> = (0..starts).into_par_iter().map(&first).collect();
    let mut logliks: Vec<f64> = first
        .iter()
        .map(|r| r.as_ref().map_or(f64::NAN, |r| r.1))
        .collect();
    let mut order: Vec<usize> = (0..first.len()).filter(|&i| first[i].is_ok()).collect();
    order.sort_by(|&a, &b| logliks[b].total_cmp(&logliks[a]).then(a.cmp(&b)));
    order.truncate(keep.max(1));
    let mut error = None;
    let mut kept: Vec<(usize, Outcome<P>)> = Vec::with_capacity(order.len());
    for (i, r) in first.into_iter().enumerate() {
        match r {
            Ok(o) if order.contains(&i) => kept.push((i, o)),
            Ok(_) => {}
            Err(e) => error = Some(e),
        }
    }
    let finals: Vec<(usize, crate::Result<Outcome<P>>)> =
        kept.into_par_iter().map(|(i, o)| (i, more(o))).collect();
    let mut best: Option<Outcome<P>> = None;
    for (i, r) in finals {
        match r {
            Ok(r) => {
                logliks[i] = r.1;
                if best.as_ref().is_none_or(|b| r.1 > b.1) {
                    best = Some(r);
                }
            }
            Err(e) => error = Some(e),
        }
    }
    match best {
        Some(b) => Ok((b, logliks)),
        None => Err(error.unwrap_or(crate::Error::Estimation {
            method,
            reason: "no start succeeded".into(),
        })),
    }
}
