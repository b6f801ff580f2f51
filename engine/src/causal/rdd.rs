//! Regression discontinuity at a cut-off (the GOL thresholds): local-polynomial
//! estimates with a triangular kernel, bias correction and robust standard errors as
//! Calonico, Cattaneo and Titiunik's `rdrobust` computes them, sharp and fuzzy, with the
//! MSE-optimal common bandwidth (`mserd`).
//!
//! Per side of the cut-off: `G_p = R_p'W_hR_p`, `β_p = G_p⁻¹R_p'W_hY`; the bias-corrected
//! fit uses `Q = R_p'W_h − h^{p+1}·L·e_{p+1}'G_q⁻¹R_q'W_b` with `L = R_p'W_h u^{p+1}`;
//! variances are sandwiches with nearest-neighbour (3 neighbours) or HC residuals.

use ndarray::{Array1, Array2};
use serde::Serialize;

use super::linalg;
use super::z_quantile;
use crate::{Error, Result};

/// How residuals enter the variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vce {
    /// Nearest-neighbour residuals with this many neighbours (rdrobust's default, 3).
    Nn(usize),
    /// Fitted residuals.
    Hc0,
    /// × √(n/(n − k)).
    Hc1,
    /// ÷ √(1 − hᵢᵢ).
    Hc2,
    /// ÷ (1 − hᵢᵢ).
    Hc3,
}

/// A regression-discontinuity design: cut-off, polynomial orders, variance, bandwidths.
#[derive(Debug, Clone)]
pub struct RdSpec {
    cutoff: f64,
    p: usize,
    q: usize,
    vce: Vce,
    h: Option<f64>,
    b: Option<f64>,
}

/// One estimate with its standard error, interval and p-value.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RdEstimate {
    /// The jump at the cut-off.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// 95 % interval.
    pub ci95: [f64; 2],
    /// Two-sided p-value.
    pub p_value: f64,
}

/// rdrobust's three rows.
#[derive(Debug, Clone, Serialize)]
pub struct FittedRd {
    /// Local-polynomial estimate with its conventional SE.
    pub conventional: RdEstimate,
    /// Bias-corrected estimate with the conventional SE.
    pub bias_corrected: RdEstimate,
    /// Bias-corrected estimate with the robust SE: the interval to report.
    pub robust: RdEstimate,
    /// Bandwidths (left, right) of the estimate and of the bias correction.
    pub h: [f64; 2],
    /// Bias-correction bandwidths (left, right).
    pub b: [f64; 2],
    /// Observations within h (left, right).
    pub n_h: [usize; 2],
    /// Observations within b (left, right).
    pub n_b: [usize; 2],
    /// Observations on each side.
    pub n: [usize; 2],
    /// Distinct values of the running variable on each side.
    pub distinct: [usize; 2],
    /// Whether the running variable has mass points (on a side, at least a fifth of the
    /// observations repeat a value: integer scores), in which case the pilot and bias
    /// bandwidths hold at least 10 distinct values per side (rdrobust's default
    /// `masspoints = "adjust"`, `bwcheck = 10`).
    pub mass_points: bool,
}

impl RdSpec {
    /// Local linear (p = 1) with quadratic bias correction (q = 2), nearest-neighbour
    /// variance with 3 neighbours, bandwidths chosen by `mserd`: rdrobust's defaults.
    pub fn new(cutoff: f64) -> Self {
        RdSpec {
            cutoff,
            p: 1,
            q: 2,
            vce: Vce::Nn(3),
            h: None,
            b: None,
        }
    }

    /// The cut-off.
    pub fn cutoff(&self) -> f64 {
        self.cutoff
    }

    /// The variance estimator.
    pub fn vce(mut self, vce: Vce) -> Self {
        self.vce = vce;
        self
    }

    /// A fixed bandwidth h (then b = h unless given).
    pub fn bandwidth(mut self, h: f64, b: Option<f64>) -> Result<Self> {
        for v in std::iter::once(h).chain(b) {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Param {
                    name: "bandwidth",
                    reason: format!("{v} is not a positive number"),
                });
            }
        }
        self.h = Some(h);
        self.b = b;
        Ok(self)
    }

    /// Sharp design: `y` jumps at the cut-off of `x`.
    pub fn fit(&self, x: &[f64], y: &[f64]) -> Result<FittedRd> {
        self.fit_inner(x, y, None)
    }

    /// Fuzzy design: the jump in `y` divided by the jump in take-up `t`.
    pub fn fit_fuzzy(&self, x: &[f64], y: &[f64], t: &[f64]) -> Result<FittedRd> {
        self.fit_inner(x, y, Some(t))
    }

    fn fit_inner(&self, x: &[f64], y: &[f64], t: Option<&[f64]>) -> Result<FittedRd> {
        let fail = |reason: String| Error::Estimation {
            method: "regression discontinuity",
            reason,
        };
        if x.len() != y.len() || t.is_some_and(|t| t.len() != x.len()) {
            return Err(fail(
                "running variable, outcome and take-up differ in length".into(),
            ));
        }
        if x.iter()
            .chain(y)
            .chain(t.unwrap_or(&[]))
            .any(|v| !v.is_finite())
        {
            return Err(fail("a value is missing or not finite".into()));
        }
        // Sides, each sorted by the running variable (centred at the cut-off).
        let mut sides: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for i in 0..x.len() {
            let s = usize::from(x[i] >= self.cutoff);
            sides[s].push((x[i] - self.cutoff, y[i], t.map_or(0.0, |t| t[i])));
        }
        for s in &mut sides {
            s.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }
        if sides.iter().any(|s| s.len() < self.q + 2) {
            return Err(fail(format!(
                "{} observations left of the cut-off and {} right; each side needs at least {}",
                sides[0].len(),
                sides[1].len(),
                self.q + 2
            )));
        }
        // Distinct values per side, nearest the cut-off first (the cut-off itself belongs
        // to the right side, at distance 0).
        let uniq: [Vec<f64>; 2] = [0, 1].map(|s| {
            let mut d: Vec<f64> = sides[s].iter().map(|o| o.0.abs()).collect();
            d.sort_by(f64::total_cmp);
            d.dedup();
            d
        });
        let distinct = [uniq[0].len(), uniq[1].len()];
        let mass_points = (0..2).any(|s| 1.0 - distinct[s] as f64 / sides[s].len() as f64 >= 0.2);
        let (h, b) = match self.h {
            Some(h) => ([h; 2], [self.b.unwrap_or(h); 2]),
            None => {
                let bw_min = mass_points.then(|| {
                    let floor = |s: usize| {
                        let k = MASS_POINT_VALUES.min(uniq[s].len());
                        uniq[s][k - 1] * (1.0 + f64::EPSILON.sqrt())
                    };
                    floor(0).max(floor(1))
                });
                let (h, b) = mserd(&sides, self.p, self.q, self.vce, t.is_some(), bw_min)?;
                ([h; 2], [b; 2])
            }
        };
        let cols = if t.is_some() { 2 } else { 1 };
        let fits: Vec<SideFit> = (0..2)
            .map(|s| side_fit(&sides[s], h[s], b[s], self.p, self.q, self.vce, cols))
            .collect::<Result<_>>()?;
        // τ for each outcome column (y, and take-up when fuzzy).
        let tau_cl: Vec<f64> = (0..cols)
            .map(|c| fits[1].beta_p[c] - fits[0].beta_p[c])
            .collect();
        let tau_bc: Vec<f64> = (0..cols)
            .map(|c| fits[1].beta_bc[c] - fits[0].beta_bc[c])
            .collect();
        // Residual weights: 1 (sharp), or the delta method's (1/τ_T, −τ_Y/τ_T²).
        let (est_cl, est_bc, wts) = if cols == 2 {
            if tau_cl[1].abs() < 1e-12 {
                return Err(fail(
                    "take-up does not jump at the cut-off; the fuzzy design has no first stage"
                        .into(),
                ));
            }
            let s = [1.0 / tau_cl[1], -tau_cl[0] / (tau_cl[1] * tau_cl[1])];
            let cl = tau_cl[0] / tau_cl[1];
            let bias_y = tau_cl[0] - tau_bc[0];
            let bias_t = tau_cl[1] - tau_bc[1];
            (cl, cl - (s[0] * bias_y + s[1] * bias_t), s.to_vec())
        } else {
            (tau_cl[0], tau_bc[0], vec![1.0])
        };
        let (mut v_cl, mut v_rb) = (0.0, 0.0);
        for f in &fits {
            v_cl += f.variance(&f.a_h, &f.eps_h, &wts);
            v_rb += f.variance(&f.a_q, &f.eps_b, &wts);
        }
        let z = z_quantile(0.975);
        let row = |est: f64, var: f64| {
            let se = var.max(0.0).sqrt();
            let normal = statrs::distribution::Normal::standard();
            use statrs::distribution::ContinuousCDF;
            RdEstimate {
                estimate: est,
                se,
                ci95: [est - z * se, est + z * se],
                p_value: 2.0 * normal.cdf(-(est / se).abs()),
            }
        };
        let count = |s: usize, bw: f64| sides[s].iter().filter(|o| kernel(o.0, bw) > 0.0).count();
        Ok(FittedRd {
            conventional: row(est_cl, v_cl),
            bias_corrected: row(est_bc, v_cl),
            robust: row(est_bc, v_rb),
            h,
            b,
            n_h: [count(0, h[0]), count(1, h[1])],
            n_b: [count(0, b[0]), count(1, b[1])],
            n: [sides[0].len(), sides[1].len()],
            distinct,
            mass_points,
        })
    }
}

/// What one side contributes.
struct SideFit {
    /// Intercepts of the order-p fit, one per outcome column.
    beta_p: Vec<f64>,
    /// Intercepts of the bias-corrected fit.
    beta_bc: Vec<f64>,
    /// Row 0 of G_p⁻¹ applied to each observation's (R_p W_h)ᵢ and Qᵢ: the intercept's
    /// linear weights, so that its variance is Σ (weight · residual)².
    a_h: Vec<f64>,
    a_q: Vec<f64>,
    /// Residuals per observation and column.
    eps_h: Vec<Vec<f64>>,
    eps_b: Vec<Vec<f64>>,
}

impl SideFit {
    /// Σᵢ (aᵢ · Σ_c w_c εᵢ,c)²: the intercept's variance with combined residuals.
    fn variance(&self, a: &[f64], eps: &[Vec<f64>], w: &[f64]) -> f64 {
        a.iter()
            .zip(eps)
            .map(|(ai, e)| {
                let r: f64 = e.iter().zip(w).map(|(e, w)| e * w).sum();
                (ai * r) * (ai * r)
            })
            .sum()
    }
}

fn kernel(u: f64, h: f64) -> f64 {
    let a = (u / h).abs();
    if a <= 1.0 { (1.0 - a) / h } else { 0.0 }
}

/// Weighted polynomial fit of order `o` with bandwidth `bw` on observations `obs`
/// (centred x, outcome columns): G⁻¹, coefficients per column, design and weights.
struct PolyFit {
    ginv: Array2<f64>,
    beta: Vec<Array1<f64>>,
    r: Array2<f64>,
    w: Vec<f64>,
}

fn poly_fit(obs: &[(f64, [f64; 2])], o: usize, bw: f64, cols: usize) -> Result<PolyFit> {
    let n = obs.len();
    let r = Array2::from_shape_fn((n, o + 1), |(i, j)| obs[i].0.powi(j as i32));
    let w: Vec<f64> = obs.iter().map(|o| kernel(o.0, bw)).collect();
    let mut g = Array2::<f64>::zeros((o + 1, o + 1));
    for i in 0..n {
        for a in 0..=o {
            for c in 0..=o {
                g[[a, c]] += w[i] * r[[i, a]] * r[[i, c]];
            }
        }
    }
    let ginv = linalg::inverse(&g).ok_or_else(|| Error::Estimation {
        method: "regression discontinuity",
        reason: "too few distinct values of the running variable within the bandwidth".into(),
    })?;
    let beta = (0..cols)
        .map(|c| {
            let mut rhs = Array1::<f64>::zeros(o + 1);
            for i in 0..n {
                for a in 0..=o {
                    rhs[a] += w[i] * r[[i, a]] * obs[i].1[c];
                }
            }
            ginv.dot(&rhs)
        })
        .collect();
    Ok(PolyFit { ginv, beta, r, w })
}

/// Residuals of observations `obs` for the variance: nearest-neighbour (computed on the
/// sorted running variable within the side) or those of `fit`, HC-scaled.
fn residuals(obs: &[(f64, [f64; 2])], fit: &PolyFit, vce: Vce, cols: usize) -> Vec<Vec<f64>> {
    let n = obs.len();
    match vce {
        Vce::Nn(j) => (0..n).map(|i| nn_residual(obs, i, j, cols)).collect(),
        _ => {
            let k = fit.r.ncols() as f64;
            let lev = |i: usize| -> f64 {
                let ri = fit.r.row(i);
                fit.w[i] * ri.dot(&fit.ginv.dot(&ri))
            };
            (0..n)
                .map(|i| {
                    let scale = match vce {
                        Vce::Hc1 => (n as f64 / (n as f64 - k)).sqrt(),
                        Vce::Hc2 => 1.0 / (1.0 - lev(i)).max(1e-8).sqrt(),
                        Vce::Hc3 => 1.0 / (1.0 - lev(i)).max(1e-8),
                        _ => 1.0,
                    };
                    (0..cols)
                        .map(|c| scale * (obs[i].1[c] - fit.r.row(i).dot(&fit.beta[c])))
                        .collect()
                })
                .collect()
        }
    }
}

/// rdrobust's nearest-neighbour residual of observation `i`: neighbours taken outwards on
/// the sorted running variable, both when equally distant, whole tie groups at once,
/// until at least min(j, n − 1); ε = √(J/(J+1))·(yᵢ − mean of their y).
fn nn_residual(obs: &[(f64, [f64; 2])], i: usize, j: usize, cols: usize) -> Vec<f64> {
    let n = obs.len();
    let want = j.min(n - 1);
    let xi = obs[i].0;
    // The tie group of i: its equal-x neighbours count first.
    let (mut lo, mut hi) = (i, i);
    while lo > 0 && obs[lo - 1].0 == xi {
        lo -= 1;
    }
    while hi + 1 < n && obs[hi + 1].0 == xi {
        hi += 1;
    }
    let mut members: Vec<usize> = (lo..=hi).filter(|&m| m != i).collect();
    let (mut l, mut r) = (lo, hi + 1); // next candidates: l − 1 and r
    while members.len() < want {
        let dl = (l > 0).then(|| xi - obs[l - 1].0);
        let dr = (r < n).then(|| obs[r].0 - xi);
        let tol = dl.unwrap_or(0.0).max(dr.unwrap_or(0.0)) * f64::EPSILON.sqrt();
        let (take_l, take_r) = match (dl, dr) {
            (Some(a), Some(b)) if a - b > tol => (false, true),
            (Some(a), Some(b)) if b - a > tol => (true, false),
            (Some(_), Some(_)) => (true, true),
            (Some(_), None) => (true, false),
            (None, Some(_)) => (false, true),
            (None, None) => break,
        };
        if take_l {
            let v = obs[l - 1].0;
            while l > 0 && obs[l - 1].0 == v {
                l -= 1;
                members.push(l);
            }
        }
        if take_r {
            let v = obs[r].0;
            while r < n && obs[r].0 == v {
                members.push(r);
                r += 1;
            }
        }
    }
    let jn = members.len() as f64;
    (0..cols)
        .map(|c| {
            let mean = members.iter().map(|&m| obs[m].1[c]).sum::<f64>() / jn;
            (jn / (jn + 1.0)).sqrt() * (obs[i].1[c] - mean)
        })
        .collect()
}

/// The estimate's and the bias correction's pieces on one side.
fn side_fit(
    side: &[(f64, f64, f64)],
    h: f64,
    b: f64,
    p: usize,
    q: usize,
    vce: Vce,
    cols: usize,
) -> Result<SideFit> {
    let reach = h.max(b);
    let obs: Vec<(f64, [f64; 2])> = side
        .iter()
        .filter(|o| o.0.abs() <= reach && kernel(o.0, reach) > 0.0)
        .map(|o| (o.0, [o.1, o.2]))
        .collect();
    let fp = poly_fit(&obs, p, h, cols)?;
    let fq = poly_fit(&obs, q, b, cols)?;
    let n = obs.len();
    // L = R_p'W_h u^{p+1}, u = x/h.
    let mut l = Array1::<f64>::zeros(p + 1);
    for i in 0..n {
        let u = obs[i].0 / h;
        for a in 0..=p {
            l[a] += fp.w[i] * fp.r[[i, a]] * u.powi(p as i32 + 1);
        }
    }
    let hp = h.powi(p as i32 + 1);
    // Row p+1 of G_q⁻¹ applied to each (R_q W_b)ᵢ.
    let gq_row = fq.ginv.row(p + 1).to_owned();
    let gp0 = fp.ginv.row(0).to_owned();
    let mut a_h = vec![0.0; n];
    let mut a_q = vec![0.0; n];
    let mut beta_bc = vec![0.0; cols];
    for i in 0..n {
        let rp: Array1<f64> = fp.r.row(i).mapv(|v| v * fp.w[i]);
        let cq = gq_row.dot(&fq.r.row(i)) * fq.w[i];
        let qi = &rp - &(&l * (hp * cq));
        a_h[i] = gp0.dot(&rp);
        a_q[i] = gp0.dot(&qi);
        for (c, bc) in beta_bc.iter_mut().enumerate() {
            *bc += a_q[i] * obs[i].1[c];
        }
    }
    Ok(SideFit {
        beta_p: (0..cols).map(|c| fp.beta[c][0]).collect(),
        beta_bc,
        a_h,
        a_q,
        eps_h: residuals(&obs, &fp, vce, cols),
        eps_b: residuals(&obs, &fq, vce, cols),
    })
}

/// rdrobust's `mserd`: one MSE-optimal bandwidth h for both sides and one b for the bias
/// correction, computed on the standardised running variable and outcome.
/// With mass points, the pilot and bias-correction bandwidths reach at least this many
/// distinct values of the running variable on each side (rdrobust's `bwcheck` default).
const MASS_POINT_VALUES: usize = 10;

/// `bw_min`: with mass points, the distance (unstandardised) to the 10th distinct value on
/// the side where it is farther; rdrobust raises the pilot `c_bw` and the first step `d`
/// to it (never `b` or `h`).
fn mserd(
    sides: &[Vec<(f64, f64, f64)>; 2],
    p: usize,
    q: usize,
    vce: Vce,
    fuzzy: bool,
    bw_min: Option<f64>,
) -> Result<(f64, f64)> {
    let all_x: Vec<f64> = sides.iter().flatten().map(|o| o.0).collect();
    let all_y: Vec<f64> = sides.iter().flatten().map(|o| o.1).collect();
    let sd = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt()
    };
    let (sx, sy) = (sd(&all_x), sd(&all_y));
    let scaled: [Vec<(f64, [f64; 2])>; 2] = [0, 1].map(|s| {
        sides[s]
            .iter()
            .map(|o| (o.0 / sx, [o.1 / sy, o.2]))
            .collect::<Vec<_>>()
    });
    let mut sorted = all_x.clone();
    sorted.sort_by(f64::total_cmp);
    let mut distinct = sorted.clone();
    distinct.dedup();
    let iqr = type2_quantile(&sorted, 0.75) - type2_quantile(&sorted, 0.25);
    let bwp = (iqr / sx / 1.349).min(1.0);
    let bw_max_side = [
        scaled[0].iter().map(|o| o.0.abs()).fold(0.0, f64::max),
        scaled[1].iter().map(|o| o.0.abs()).fold(0.0, f64::max),
    ];
    let bw_max = bw_max_side[0].max(bw_max_side[1]);
    // The pilot uses the number of distinct values (rdrobust's masspoints = "adjust"), then
    // the floor, after the cap, as rdrobust orders them.
    let bw_min = bw_min.map(|m| m / sx);
    let c_bw = (2.576 * bwp * (distinct.len() as f64).powf(-0.2)).min(bw_max);
    let c_bw = bw_min.map_or(c_bw, |m| c_bw.max(m));
    let cols = if fuzzy { 2 } else { 1 };
    let step = |o: usize, nu: usize, ob: usize, hb: [f64; 2], scale: f64| -> Result<f64> {
        let mut parts = [(0.0, 0.0, 0.0); 2];
        let mut rate = 0.0;
        for s in 0..2 {
            let (v, bias, reg, r) = bw_piece(&scaled[s], o, nu, ob, c_bw, hb[s], scale, vce, cols)?;
            parts[s] = (v, bias, reg);
            rate = r;
        }
        let num = parts[0].0 + parts[1].0;
        let den = (parts[1].1 - parts[0].1).powi(2) + parts[0].2 + parts[1].2;
        Ok((num / den).powf(rate).min(bw_max))
    };
    let range = [
        bw_max_side[0] * (1.0 + f64::EPSILON.sqrt()),
        bw_max_side[1] * (1.0 + f64::EPSILON.sqrt()),
    ];
    let d = step(q + 1, q + 1, q + 2, range, 0.0)?;
    let d = bw_min.map_or(d, |m| d.max(m));
    let b = step(q, p + 1, q + 1, [d, d], 1.0)?;
    let h = step(p, 0, q, [b, b], 1.0)?;
    Ok((h * sx, b * sx))
}

/// One side's (V, B, R, rate) of rdrobust's bandwidth helper.
#[allow(clippy::too_many_arguments)]
fn bw_piece(
    obs: &[(f64, [f64; 2])],
    o: usize,
    nu: usize,
    ob: usize,
    h_v: f64,
    h_b: f64,
    scale: f64,
    vce: Vce,
    cols: usize,
) -> Result<(f64, f64, f64, f64)> {
    let within = |bw: f64| -> Vec<(f64, [f64; 2])> {
        obs.iter()
            .filter(|x| kernel(x.0, bw) > 0.0)
            .copied()
            .collect()
    };
    let ov = within(h_v);
    let fv = poly_fit(&ov, o, h_v, cols)?;
    // The residual combination: 1 (sharp), delta-method weights of the o-fit (fuzzy).
    let s: Vec<f64> = if cols == 2 {
        let (ty, tt) = (fv.beta[0][nu], fv.beta[1][nu]);
        vec![1.0 / tt, -ty / (tt * tt)]
    } else {
        vec![1.0]
    };
    let sandwich_nn = |fit: &PolyFit, sub: &[(f64, [f64; 2])], idx: usize| -> f64 {
        let eps = residuals(sub, fit, vce, cols);
        let k = fit.r.ncols();
        let mut meat = Array2::<f64>::zeros((k, k));
        for i in 0..sub.len() {
            let r: f64 = eps[i].iter().zip(&s).map(|(e, w)| e * w).sum();
            let rw: Array1<f64> = fit.r.row(i).mapv(|v| v * fit.w[i] * r);
            for a in 0..k {
                for c in 0..k {
                    meat[[a, c]] += rw[a] * rw[c];
                }
            }
        }
        fit.ginv.dot(&meat).dot(&fit.ginv)[[idx, idx]]
    };
    let v_v = sandwich_nn(&fv, &ov, nu);
    let mut lv = Array1::<f64>::zeros(o + 1);
    for i in 0..ov.len() {
        let u = ov[i].0 / h_v;
        for a in 0..=o {
            lv[a] += fv.w[i] * fv.r[[i, a]] * u.powi(o as i32 + 1);
        }
    }
    let bconst = h_v.powi(nu as i32) * fv.ginv.dot(&lv)[nu];
    let obb = within(h_b);
    let fb = poly_fit(&obb, ob, h_b, cols)?;
    let reg = if scale > 0.0 {
        3.0 * bconst * bconst * sandwich_nn(&fb, &obb, ob)
    } else {
        0.0
    };
    let last: f64 = (0..cols).map(|c| s[c] * fb.beta[c][ob]).sum();
    let bias = (2.0 * (o + 1 - nu) as f64).sqrt() * bconst * last;
    let v = (2 * nu + 1) as f64 * h_v.powi(2 * nu as i32 + 1) * v_v;
    let r = scale * 2.0 * (o + 1 - nu) as f64 * reg;
    Ok((v, bias, r, 1.0 / (2 * o + 3) as f64))
}

/// Sample quantile of type 2 (averaging at discontinuities), as rdrobust's IQR uses.
fn type2_quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len() as f64;
    let np = n * p;
    let j = np.floor();
    let g = np - j;
    let at = |k: f64| sorted[(k.max(1.0).min(n) - 1.0) as usize];
    if g > 0.0 {
        at(j + 1.0)
    } else {
        (at(j) + at(j + 1.0)) / 2.0
    }
}
