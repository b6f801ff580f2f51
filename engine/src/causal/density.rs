//! The manipulation test of a regression-discontinuity design: is the density of the
//! running variable continuous at the cut-off? Cattaneo, Jansson and Ma's local
//! polynomial density estimator with jackknife standard errors and their data-driven
//! bandwidths, as `rddensity` computes them (p = 2, triangular kernel, unrestricted fit,
//! bandwidths "comb").
//!
//! On each side the empirical distribution function of the whole sample is regressed on
//! powers of x − c with kernel weights; the slope at c is the density. The test compares
//! the two sides with the cubic fit (q = p + 1) at the same bandwidths.

use ndarray::{Array1, Array2};
use serde::Serialize;
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

use super::linalg;
use crate::{Error, Result};

/// The density test's result.
#[derive(Debug, Clone, Serialize)]
pub struct DensityTest {
    /// Bandwidths (left, right).
    pub h: [f64; 2],
    /// Density just left and right of the cut-off (cubic fit).
    pub density: [f64; 2],
    /// Their jackknife standard errors.
    pub se: [f64; 2],
    /// (right − left) / SE of the difference.
    pub t: f64,
    /// Two-sided p-value: a small one suggests sorting around the threshold.
    pub p_value: f64,
    /// Observations on each side, and within the bandwidths.
    pub n: [usize; 2],
    /// Observations within the bandwidths.
    pub n_effective: [usize; 2],
}

/// Runs the test at cut-off `c`, with bandwidths chosen by "comb" unless given.
pub fn density_test(x: &[f64], c: f64, h: Option<[f64; 2]>) -> Result<DensityTest> {
    const P: usize = 2;
    let fail = |reason: String| Error::Estimation {
        method: "density test",
        reason,
    };
    if x.iter().any(|v| !v.is_finite()) {
        return Err(fail(
            "a value of the running variable is missing or not finite".into(),
        ));
    }
    let mut xs: Vec<f64> = x.iter().map(|v| v - c).collect();
    xs.sort_by(f64::total_cmp);
    let nl = xs.iter().filter(|&&v| v < 0.0).count();
    let nr = xs.len() - nl;
    if nl < 30 || nr < 30 {
        return Err(fail(format!(
            "{nl} observations left of the cut-off and {nr} right; the test needs at least 30 on each side"
        )));
    }
    let h = match h {
        Some(h) => h,
        None => comb_bandwidths(&xs, P)?,
    };
    let fit = fv(&xs, h, P + 1)?;
    let var_diff = fit.var_l + fit.var_r - 2.0 * fit.cov_lr;
    let t = (fit.f[1] - fit.f[0]) / var_diff.sqrt();
    let normal = Normal::standard();
    Ok(DensityTest {
        h,
        density: fit.f,
        se: [fit.var_l.sqrt(), fit.var_r.sqrt()],
        t,
        p_value: 2.0 * (1.0 - normal.cdf(t.abs())),
        n: [nl, nr],
        n_effective: [
            xs.iter().filter(|&&v| v < 0.0 && v >= -h[0]).count(),
            xs.iter().filter(|&&v| v >= 0.0 && v <= h[1]).count(),
        ],
    })
}

/// One local-polynomial density fit of order `o` with bandwidths (left, right).
struct Fv {
    /// Coefficients per side after dividing by h^j (β_s,j estimates F_s^{(j)}(c)/j!).
    beta: [Vec<f64>; 2],
    /// Densities (β_s,1).
    f: [f64; 2],
    var_l: f64,
    var_r: f64,
    cov_lr: f64,
}

fn fv(xs: &[f64], h: [f64; 2], o: usize) -> Result<Fv> {
    let n = xs.len();
    let k = o + 1;
    // Empirical CDF on the whole sample, (i − 1)/(n − 1); tied values take the last one's.
    let mut y = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && xs[j + 1] == xs[i] {
            j += 1;
        }
        for v in &mut y[i..=j] {
            *v = j as f64 / (n as f64 - 1.0);
        }
        i = j + 1;
    }
    let window: Vec<usize> = (0..n)
        .filter(|&i| xs[i] >= -h[0] && xs[i] <= h[1])
        .collect();
    // Block design: one polynomial per side.
    let side = |i: usize| usize::from(xs[i] >= 0.0);
    let row = |i: usize| -> (Array1<f64>, f64) {
        let s = side(i);
        let u = xs[i] / h[s];
        let mut z = Array1::<f64>::zeros(2 * k);
        for j in 0..k {
            z[s * k + j] = u.powi(j as i32);
        }
        (z, (1.0 - u.abs()) / h[s])
    };
    let mut a = Array2::<f64>::zeros((2 * k, 2 * k));
    let mut zy = Array1::<f64>::zeros(2 * k);
    for &i in &window {
        let (z, w) = row(i);
        for p in 0..2 * k {
            zy[p] += w * z[p] * y[i];
            for q in 0..2 * k {
                a[[p, q]] += w * z[p] * z[q];
            }
        }
    }
    let ainv = linalg::inverse(&a).ok_or_else(|| Error::Estimation {
        method: "density test",
        reason: "too few distinct values of the running variable near the cut-off".into(),
    })?;
    let mut beta = ainv.dot(&zy);
    for s in 0..2 {
        for j in 0..k {
            beta[s * k + j] /= h[s].powi(j as i32);
        }
    }
    // Jackknife: L_i = (1/(n−1)) Σ_{j>i in the window} W_j Z_j; a tie group shares its
    // first member's L.
    let mut l_rows: Vec<Array1<f64>> = vec![Array1::zeros(2 * k); window.len()];
    let mut tail = Array1::<f64>::zeros(2 * k);
    for (pos, &i) in window.iter().enumerate().rev() {
        l_rows[pos] = &tail / (n as f64 - 1.0);
        let (z, w) = row(i);
        tail = tail + z * w;
    }
    let mut pos = 0;
    while pos < window.len() {
        let mut end = pos;
        while end + 1 < window.len() && xs[window[end + 1]] == xs[window[pos]] {
            end += 1;
        }
        for q in pos + 1..=end {
            l_rows[q] = l_rows[pos].clone();
        }
        pos = end + 1;
    }
    let mut m = Array2::<f64>::zeros((2 * k, 2 * k));
    for l in &l_rows {
        for p in 0..2 * k {
            for q in 0..2 * k {
                m[[p, q]] += l[p] * l[q];
            }
        }
    }
    let mut v = ainv.dot(&m).dot(&ainv);
    for p in 0..2 * k {
        for q in 0..2 * k {
            let hp = h[p / k].powi((p % k) as i32);
            let hq = h[q / k].powi((q % k) as i32);
            v[[p, q]] /= hp * hq;
        }
    }
    let (il, ir) = (1, k + 1);
    Ok(Fv {
        beta: [
            (0..k).map(|j| beta[j]).collect(),
            (0..k).map(|j| beta[k + j]).collect(),
        ],
        f: [beta[il], beta[ir]],
        var_l: v[[il, il]],
        var_r: v[[ir, ir]],
        cov_lr: v[[il, ir]],
    })
}

/// rddensity's "comb" bandwidths: per side the median of that side's, the difference's
/// and the sum's MSE-optimal bandwidths.
fn comb_bandwidths(xs: &[f64], p: usize) -> Result<[f64; 2]> {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    let z = mean / sd;
    let phi = Normal::standard().pdf(z);
    let he2 = z * z - 1.0;
    let he4 = z.powi(4) - 6.0 * z * z + 3.0;
    // rddensity's constants for p = 2 (triangular kernel).
    const CB: f64 = 3_430_865.455_123_618;
    const CC: f64 = 548.571_428_571_554_6;
    let fb = 1.0 / (he4 * he4 * phi);
    let fc = 1.0 / (he2 * he2 * phi);
    let pf = p as f64;
    let mut bn = ((2.0 * pf + 1.0) / 4.0 * fb * CB / n).powf(1.0 / (2.0 * pf + 5.0)) * sd;
    let mut cn = (1.0 / (2.0 * pf) * fc * CC / n).powf(1.0 / (2.0 * pf + 1.0)) * sd;
    let left: Vec<f64> = xs.iter().filter(|&&v| v < 0.0).map(|v| -v).rev().collect();
    let right: Vec<f64> = xs.iter().filter(|&&v| v >= 0.0).copied().collect();
    let mut uleft = left.clone();
    uleft.dedup();
    let mut uright = right.clone();
    uright.dedup();
    let kth = |v: &[f64], k: usize| v[k.min(v.len()) - 1];
    let range = xs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let floor = |k: usize| {
        kth(&left, k)
            .max(kth(&right, k))
            .max(kth(&uleft, k))
            .max(kth(&uright, k))
    };
    bn = bn.min(range).max(floor(20 + p + 3));
    cn = cn.min(range).max(floor(20 + p + 1));
    let fb_fit = fv(xs, [bn, bn], p + 2)?;
    let fc_fit = fv(xs, [cn, cn], p)?;
    // Bias constant k_B = (S⁻¹C)₁ with S_ab = ∫(1−u)u^{a+b}, C_a = ∫(1−u)u^{a+p+1}.
    let mom = |m: usize| 1.0 / ((m + 1) * (m + 2)) as f64;
    let s = Array2::from_shape_fn((p + 1, p + 1), |(a, b)| mom(a + b));
    let cvec = Array1::from_shape_fn(p + 1, |a| mom(a + p + 1));
    let kb = linalg::inverse(&s)
        .ok_or_else(|| Error::Estimation {
            method: "density test",
            reason: "internal: singular kernel moment matrix".into(),
        })?
        .dot(&cvec)[1];
    let sign = if p.is_multiple_of(2) { 1.0 } else { -1.0 };
    let bl = fb_fit.beta[0][p + 1] * kb * sign;
    let br = fb_fit.beta[1][p + 1] * kb;
    let var = [
        fc_fit.var_l,
        fc_fit.var_r,
        fc_fit.var_l + fc_fit.var_r - 2.0 * fc_fit.cov_lr,
        fc_fit.var_l + fc_fit.var_r + 2.0 * fc_fit.cov_lr,
    ];
    let bias = [bl, br, br - bl, br + bl];
    let hk: Vec<f64> = (0..4)
        .map(|j| {
            let vk = n * cn * var[j];
            let h = (vk / (2.0 * pf * n * bias[j] * bias[j])).powf(1.0 / (2.0 * pf + 1.0));
            if h.is_finite() { h } else { 0.0 }
        })
        .collect();
    let (hlmax, hrmax) = (
        left.last().copied().unwrap_or(0.0),
        right.last().copied().unwrap_or(0.0),
    );
    let hlmin = kth(&left, 20 + p + 1).max(kth(&uleft, 20 + p + 1));
    let hrmin = kth(&right, 20 + p + 1).max(kth(&uright, 20 + p + 1));
    let hl = hk[0].min(hlmax).max(hlmin);
    let hr = hk[1].min(hrmax).max(hrmin);
    let hd = hk[2].min(hlmax.max(hrmax)).max(hlmin.max(hrmin));
    let hs = hk[3].min(hlmax.max(hrmax)).max(hlmin.max(hrmin));
    let median = |a: f64, b: f64, c: f64| a.max(b).min(a.min(b).max(c));
    Ok([median(hl, hd, hs), median(hr, hd, hs)])
}
