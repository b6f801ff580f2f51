//! Bootstrap replicates of the weighting estimators, computed from the full sample's fit.
//!
//! A replicate is the same estimator on the data reweighted by how often each unit was
//! drawn. Refitting it from scratch ([`WeightingSpec::frequency_weights`]) costs about ten
//! passes over the design, most of them weighted cross-products (k² per row): at a
//! million units, 200 replicates took two minutes. Here a replicate costs about five
//! passes of k per row, and reaches the same numbers:
//!
//! * the propensity logit is solved by Newton's method with the *full sample's*
//!   information matrix (a chord iteration). A replicate's information differs from it by
//!   O(n^-½), so each step shrinks the error by about that factor, and the iteration stops
//!   at the replicate's own maximum-likelihood estimate (its score is zero there) to the
//!   tolerance of [`Logit`](super::logit::Logit). If the steps stop shrinking quickly (small
//!   samples), the replicate's own information is computed and used instead (plain Newton).
//! * the outcome regressions are solved exactly from the replicate's cross-products, in
//!   one pass (fused into the logit's first pass when nothing is trimmed);
//! * one last pass evaluates the estimator at the replicate's fitted models.
//!
//! Sums run over fixed blocks of rows in order, so a replicate's value does not depend on
//! threads. If the shortcut fails (no convergence, a singular system, an arm emptied by
//! trimming), the caller refits the replicate the ordinary way, which gives the reason.

use std::sync::Arc;

use ndarray::{Array1, Array2};

use super::Estimand;
use super::linalg;
use super::logit::FittedLogit;
use super::logit::sigmoid;
use super::sample::Sample;
use super::weighting::{Weighting, WeightingSpec, standardised};
use crate::Result;

/// Rows per block of the ordered sums.
const BLOCK: usize = 4096;
/// The logit's stopping rule: no standardised coefficient moves by more (as in `Logit`).
const TOL: f64 = 1e-10;
/// Chord steps before giving up on a replicate (plain Newton takes over long before).
const MAX_STEPS: usize = 60;

/// What one replicate needs from the full sample's fit.
pub(crate) struct Replicates<'s> {
    method: Weighting,
    estimand: Estimand,
    trim: Option<(f64, f64)>,
    /// Intercept and standardised covariates, rows contiguous.
    z: Arc<Array2<f64>>,
    d: &'s [bool],
    y: &'s [f64],
    /// Full-sample logit coefficients and inverse information (standardised scale).
    beta: Option<(Array1<f64>, Array2<f64>)>,
}

/// The logit's score and, when asked, information at one β; the arms' cross-products.
struct Pass {
    grad: Vec<f64>,
    info: Option<Vec<f64>>,
    /// Per arm (treated, control): upper triangle of Σ w zzᵀ and Σ w y z.
    arms: Option<[(Vec<f64>, Vec<f64>); 2]>,
}

impl<'s> Replicates<'s> {
    /// From the full-sample fit of `method` on `sample` (its propensity logit, which
    /// regression adjustment does not use).
    pub(crate) fn new(
        spec: &WeightingSpec,
        sample: &'s Sample,
        propensity: Option<&FittedLogit>,
    ) -> Result<Self> {
        let method = spec.method;
        let (z, beta) = match propensity.filter(|_| method != Weighting::Ra) {
            Some(ps) => (
                ps.design_std.clone(),
                Some((ps.coef_std.clone(), ps.cov_std.clone())),
            ),
            None => (Arc::new(standardised(sample)?), None),
        };
        // The row loops read the design as one slice.
        let z = if z.is_standard_layout() {
            z
        } else {
            Arc::new(z.as_standard_layout().into_owned())
        };
        let y = sample.y().as_slice().ok_or(crate::Error::Param {
            name: "outcome",
            reason: "not contiguous".into(),
        })?;
        Ok(Replicates {
            method,
            estimand: spec.estimand,
            trim: spec.trim,
            z,
            d: sample.d(),
            y,
            beta,
        })
    }

    /// The estimate on the sample weighted by `w` (draw counts, in the sample's order);
    /// `None` when the shortcut does not apply and the replicate must be refitted.
    pub(crate) fn estimate(&self, w: &[f64]) -> Option<f64> {
        let k = self.z.ncols();
        let uses_arms = self.method != Weighting::Ipw;
        // Without trimming the arms' weights are the draw counts: their cross-products
        // come with the logit's first pass.
        let early_arms = uses_arms && self.trim.is_none();
        let mut arms = None;
        let beta = match &self.beta {
            Some((b0, hinv)) => {
                let mut beta = b0.to_vec();
                let mut hinv = hinv.clone();
                let (mut prev, mut refresh, mut converged) = (f64::INFINITY, false, false);
                for it in 0..MAX_STEPS {
                    let pass = self.pass(w, Some(&beta), refresh, early_arms && it == 0)?;
                    if let Some(info) = pass.info {
                        hinv = linalg::inverse(&full_symmetric(&info, k))?;
                    }
                    if pass.arms.is_some() {
                        arms = pass.arms;
                    }
                    let step = hinv.dot(&Array1::from(pass.grad));
                    let moved = step.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    if !moved.is_finite() {
                        return None;
                    }
                    for (b, s) in beta.iter_mut().zip(&step) {
                        *b += s;
                    }
                    if moved <= TOL {
                        converged = true;
                        break;
                    }
                    // Slow contraction: the full sample's information is too far from
                    // this replicate's; use its own from the next step on.
                    refresh = moved > 0.25 * prev;
                    prev = moved;
                }
                if !converged {
                    return None;
                }
                Some(beta)
            }
            None => None,
        };
        let gammas = if uses_arms {
            let arms = match arms {
                Some(a) => a,
                None => self.pass(w, beta.as_deref(), false, true)?.arms?,
            };
            // Aliased covariates of a resampled arm are left out of it, as in the fit.
            let solve = |(g, b): &(Vec<f64>, Vec<f64>)| {
                let a = full_symmetric(g, k);
                let kept = linalg::independent_in_gram(&a);
                linalg::solve_spd_kept(&a, &Array1::from(b.clone()), &kept)
            };
            Some([solve(&arms[0])?, solve(&arms[1])?])
        } else {
            None
        };
        self.evaluate(w, beta.as_deref(), gammas.as_ref())
    }

    /// Whether unit i, with score p, is kept by the trimming bounds.
    fn kept(&self, p: f64) -> bool {
        self.trim.is_none_or(|(lo, hi)| p >= lo && p <= hi)
    }

    /// One pass: the logit's score (and information) at `beta`, and the arms' weighted
    /// cross-products (with trimming decided by `beta`'s scores).
    fn pass(&self, w: &[f64], beta: Option<&[f64]>, info: bool, arms: bool) -> Option<Pass> {
        let k = self.z.ncols();
        let zs = self.z.as_slice()?;
        let n = self.d.len();
        let mut out = Pass {
            grad: vec![0.0; k],
            info: info.then(|| vec![0.0; k * k]),
            arms: arms.then(|| {
                [
                    (vec![0.0; k * k], vec![0.0; k]),
                    (vec![0.0; k * k], vec![0.0; k]),
                ]
            }),
        };
        let mut grad = vec![0.0; k];
        let mut inf = vec![0.0; if info { k * k } else { 0 }];
        let mut gram = [vec![0.0; k * k], vec![0.0; k * k]];
        let mut xty = [vec![0.0; k], vec![0.0; k]];
        for a in (0..n).step_by(BLOCK) {
            grad.fill(0.0);
            inf.fill(0.0);
            for g in &mut gram {
                g.fill(0.0);
            }
            for v in &mut xty {
                v.fill(0.0);
            }
            for i in a..(a + BLOCK).min(n) {
                let wi = w[i];
                if wi == 0.0 {
                    continue;
                }
                let zr = &zs[i * k..(i + 1) * k];
                let mut keep = wi;
                if let Some(b) = beta {
                    let p = sigmoid(dot(zr, b));
                    let r = wi * (f64::from(u8::from(self.d[i])) - p);
                    axpy(&mut grad, r, zr);
                    if info {
                        upper_rank1(&mut inf, wi * p * (1.0 - p), zr);
                    }
                    if !self.kept(p) {
                        keep = 0.0;
                    }
                }
                if arms && keep > 0.0 {
                    let arm = usize::from(!self.d[i]);
                    upper_rank1(&mut gram[arm], keep, zr);
                    axpy(&mut xty[arm], keep * self.y[i], zr);
                }
            }
            add(&mut out.grad, &grad);
            if let Some(o) = &mut out.info {
                add(o, &inf);
            }
            if let Some(o) = &mut out.arms {
                for arm in 0..2 {
                    add(&mut o[arm].0, &gram[arm]);
                    add(&mut o[arm].1, &xty[arm]);
                }
            }
        }
        Some(out)
    }

    /// The estimator at the replicate's fitted models.
    fn evaluate(
        &self,
        w: &[f64],
        beta: Option<&[f64]>,
        gammas: Option<&[Array1<f64>; 2]>,
    ) -> Option<f64> {
        let k = self.z.ncols();
        let zs = self.z.as_slice()?;
        let n = self.d.len();
        // Sums: [numerator, denominator] for the treated and control means, and the
        // kept units per arm.
        let mut tot = [0.0f64; 4];
        let mut kept = [0usize; 2];
        let mut part = [0.0f64; 4];
        for a in (0..n).step_by(BLOCK) {
            part.fill(0.0);
            for i in a..(a + BLOCK).min(n) {
                let wi = w[i];
                if wi == 0.0 {
                    continue;
                }
                let zr = &zs[i * k..(i + 1) * k];
                let p = beta.map_or(0.5, |b| sigmoid(dot(zr, b)));
                if !self.kept(p) {
                    continue;
                }
                let (t, y) = (self.d[i], self.y[i]);
                kept[usize::from(!t)] += 1;
                match (self.method, gammas) {
                    (Weighting::Ipw, _) => {
                        let wt = match (self.estimand, t) {
                            (Estimand::Ate, true) => 1.0 / p,
                            (Estimand::Ate, false) => 1.0 / (1.0 - p),
                            (Estimand::Att, true) => 1.0,
                            (Estimand::Att, false) => p / (1.0 - p),
                            (Estimand::Atc, true) => (1.0 - p) / p,
                            (Estimand::Atc, false) => 1.0,
                        };
                        let j = if t { 0 } else { 2 };
                        part[j] += wi * wt * y;
                        part[j + 1] += wi * wt;
                    }
                    (Weighting::Ra, Some([g1, g0])) => {
                        if (self.estimand == Estimand::Att && !t)
                            || (self.estimand == Estimand::Atc && t)
                        {
                            continue;
                        }
                        part[0] += wi * dot(zr, g1.as_slice()?);
                        part[2] += wi * dot(zr, g0.as_slice()?);
                        part[1] += wi;
                        part[3] += wi;
                    }
                    (Weighting::Aipw, Some([g1, g0])) => {
                        let (m1, m0) = (dot(zr, g1.as_slice()?), dot(zr, g0.as_slice()?));
                        let (dt, dc) = if t { (1.0, 0.0) } else { (0.0, 1.0) };
                        part[0] += wi * (m1 + dt * (y - m1) / p);
                        part[2] += wi * (m0 + dc * (y - m0) / (1.0 - p));
                        part[1] += wi;
                        part[3] += wi;
                    }
                    _ => return None,
                }
            }
            for (t, p) in tot.iter_mut().zip(&part) {
                *t += p;
            }
        }
        if kept[0] == 0 || kept[1] == 0 {
            return None;
        }
        let est = tot[0] / tot[1] - tot[2] / tot[3];
        est.is_finite().then_some(est)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(acc: &mut [f64], s: f64, x: &[f64]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += s * v;
    }
}

fn add(acc: &mut [f64], x: &[f64]) {
    axpy(acc, 1.0, x);
}

/// Adds s·x xᵀ to the upper triangle of a k×k row-major matrix.
fn upper_rank1(m: &mut [f64], s: f64, x: &[f64]) {
    let k = x.len();
    for a in 0..k {
        let sa = s * x[a];
        let row = &mut m[a * k + a..(a + 1) * k];
        for (r, v) in row.iter_mut().zip(&x[a..]) {
            *r += sa * v;
        }
    }
}

/// The symmetric matrix whose upper triangle `m` holds.
fn full_symmetric(m: &[f64], k: usize) -> Array2<f64> {
    Array2::from_shape_fn(
        (k, k),
        |(a, b)| {
            if a <= b { m[a * k + b] } else { m[b * k + a] }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Treatment from a logit in three covariates, outcome linear in them plus 1.5 d.
    fn sample(n: usize, seed: u64) -> Sample {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::<f64>::zeros((n, 3));
        let (mut y, mut d) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let (a, b): (f64, f64) = (rng.random::<f64>() * 4.0 - 2.0, rng.random());
            let c = f64::from(u8::from(rng.random::<f64>() < 0.4));
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            x[[i, 2]] = c;
            let p = sigmoid(-0.5 + 0.8 * a - 1.0 * b + 0.6 * c);
            let t = rng.random::<f64>() < p;
            d.push(t);
            y.push(1.0 + a + 2.0 * b - c + 1.5 * f64::from(u8::from(t)) + rng.random::<f64>());
        }
        Sample::new(y, d, x, vec!["a".into(), "b".into(), "c".into()]).unwrap()
    }

    /// Draw counts of a resample within arms.
    fn counts(s: &Sample, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = vec![0.0; s.len()];
        for arm in [true, false] {
            let units: Vec<usize> = (0..s.len()).filter(|&i| s.d()[i] == arm).collect();
            for _ in 0..units.len() {
                w[units[rng.random_range(0..units.len())]] += 1.0;
            }
        }
        w
    }

    #[test]
    fn replicates_equal_refits_from_scratch() {
        // A large sample (the chord iteration alone) and a small one (where it hands
        // over to plain Newton).
        for (n, seed) in [(20_000, 1), (150, 2)] {
            let s = sample(n, seed);
            for method in [Weighting::Ipw, Weighting::Ra, Weighting::Aipw] {
                for estimand in [Estimand::Ate, Estimand::Att, Estimand::Atc] {
                    if method == Weighting::Aipw && estimand != Estimand::Ate {
                        continue;
                    }
                    for trim in [None, Some((0.1, 0.9))] {
                        let mut spec = WeightingSpec::new(method, estimand);
                        if let Some((lo, hi)) = trim {
                            spec = spec.trim(lo, hi).unwrap();
                        }
                        let full = spec.fit(&s).unwrap();
                        let fast = Replicates::new(&spec, &s, full.propensity.as_ref()).unwrap();
                        for r in 0..5 {
                            let w = counts(&s, 100 + r);
                            let got = fast.estimate(&w).expect("the shortcut applies");
                            let want = spec
                                .clone()
                                .frequency_weights(Array1::from(w.clone()))
                                .estimate(&s)
                                .unwrap();
                            assert!(
                                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                                "{method:?} {estimand:?} {trim:?} n={n} r={r}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_full_samples_weights_give_the_full_estimate() {
        let s = sample(5_000, 3);
        let spec = WeightingSpec::new(Weighting::Aipw, Estimand::Ate);
        let full = spec.fit(&s).unwrap();
        let fast = Replicates::new(&spec, &s, full.propensity.as_ref()).unwrap();
        let got = fast.estimate(&vec![1.0; s.len()]).unwrap();
        assert!((got - full.effect.estimate).abs() < 1e-10, "{got}");
    }
}
