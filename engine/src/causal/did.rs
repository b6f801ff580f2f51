//! Difference-in-differences on a panel of units observed over periods: the 2×2
//! comparison, the two-way fixed-effects regression, and the event study (leads and lags
//! relative to each unit's first treated period), with standard errors clustered by unit.
//!
//! The panel comes as a [`Sample`] whose first covariate is the period (a number), whose
//! cluster labels are the units and whose treatment is "treated in this period"
//! (absorbing: once treated, always treated). Fixed effects are absorbed by alternating
//! projections (exact in one sweep for a balanced panel), so the estimates equal the
//! dummy-variable regression's; the cluster-robust covariance uses that regression's
//! small-sample factor G/(G−1)·(N−1)/(N−K), K counting every dummy (statsmodels' and
//! Stata `regress`'s convention, the conservative one).

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, Axis};
use serde::Serialize;

use super::linalg;
use super::ols::dense_labels;
use super::sample::Sample;
use super::z_quantile;
use crate::{Error, Result};

/// One event-study coefficient.
#[derive(Debug, Clone, Serialize)]
pub struct EventCoef {
    /// Periods since first treatment (negative: leads).
    pub k: i64,
    /// The coefficient (effect relative to the period before treatment).
    pub estimate: f64,
    /// Cluster-robust standard error.
    pub se: f64,
    /// Normal 95 % interval.
    pub ci95: [f64; 2],
}

/// A coefficient with its cluster-robust standard error.
#[derive(Debug, Clone, Serialize)]
pub struct DidEffect {
    /// Which regression: `2x2` or `twfe`.
    pub design: String,
    /// The coefficient.
    pub estimate: f64,
    /// Cluster-robust standard error.
    pub se: f64,
    /// Normal 95 % interval.
    pub ci95: [f64; 2],
    /// Observations, clusters (units) and regressors counted for the small-sample factor.
    pub n: usize,
    /// Units.
    pub clusters: usize,
    /// Regressors including every dummy.
    pub k: usize,
}

/// The difference-in-differences results on a panel.
#[derive(Debug, Clone, Serialize)]
pub struct FittedDid {
    /// The 2×2 estimate when the panel has two periods, otherwise the static TWFE one.
    pub effect: DidEffect,
    /// Event-study coefficients (k = −1 is the reference and is left out); empty for a
    /// 2×2 panel.
    pub event_study: Vec<EventCoef>,
    /// Units and periods.
    pub units: usize,
    /// Distinct periods.
    pub periods: usize,
    /// Units by first treated period (`never` for units never treated).
    pub cohorts: BTreeMap<String, usize>,
}

/// Runs the 2×2 (two periods) or TWFE and event-study regressions.
pub fn did(sample: &Sample) -> Result<FittedDid> {
    let fail = |reason: String| Error::Estimation {
        method: "difference-in-differences",
        reason,
    };
    let units = sample
        .cluster()
        .ok_or_else(|| fail("the panel needs a unit column (--unit)".into()))?;
    if sample.x().ncols() == 0 {
        return Err(fail("the panel needs a time column (--time)".into()));
    }
    let n = sample.len();
    let time: Vec<f64> = sample.x().column(0).to_vec();
    if let Some(t) = time.iter().find(|t| t.fract() != 0.0) {
        return Err(fail(format!(
            "periods must be whole numbers (e.g. 202603 or a month index), not {t}"
        )));
    }
    let (unit_idx, n_units) = dense_labels(units);
    let mut periods: Vec<i64> = time.iter().map(|&t| t as i64).collect();
    periods.sort_unstable();
    periods.dedup();
    let period_idx: BTreeMap<i64, usize> =
        periods.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let t_idx: Vec<usize> = time.iter().map(|&t| period_idx[&(t as i64)]).collect();
    // One row per unit and period; treatment absorbing; first treated period per unit.
    let mut seen = vec![false; n_units * periods.len()];
    let mut first: Vec<Option<i64>> = vec![None; n_units];
    for i in 0..n {
        let cell = unit_idx[i] * periods.len() + t_idx[i];
        if seen[cell] {
            return Err(fail(format!(
                "a unit appears twice in period {}; give one row per unit and period",
                time[i]
            )));
        }
        seen[cell] = true;
        if sample.d()[i] {
            let t = time[i] as i64;
            let f = &mut first[unit_idx[i]];
            *f = Some(f.map_or(t, |v: i64| v.min(t)));
        }
    }
    for i in 0..n {
        if let Some(f) = first[unit_idx[i]]
            && (time[i] as i64) >= f
            && !sample.d()[i]
        {
            return Err(fail(format!(
                "a unit treated from period {f} is untreated in period {}: treatment must be \
                 absorbing (once treated, always treated)",
                time[i]
            )));
        }
    }
    let mut cohorts = BTreeMap::new();
    for f in &first {
        *cohorts
            .entry(f.map_or("never".to_string(), |v| v.to_string()))
            .or_insert(0) += 1;
    }
    let y = sample.y();
    let d: Array1<f64> = sample.d().iter().map(|&t| f64::from(t)).collect();
    if periods.len() == 2 {
        // y ~ 1 + g + post + g·post.
        let x = Array2::from_shape_fn((n, 4), |(i, j)| {
            let g = f64::from(first[unit_idx[i]].is_some());
            let post = f64::from(t_idx[i] == 1);
            [1.0, g, post, g * post][j]
        });
        let (b, se, k) = clustered_ols(&x, y, &unit_idx, n_units, 0)?;
        let effect = effect("2x2", b[3], se[3], n, n_units, k);
        return Ok(FittedDid {
            effect,
            event_study: Vec::new(),
            units: n_units,
            periods: 2,
            cohorts,
        });
    }
    // Static TWFE: y ~ unit + period + treated.
    let fe = (n_units, periods.len());
    let xs = d.clone().insert_axis(Axis(1));
    let (b, se, k) = twfe(&xs, y, &unit_idx, &t_idx, fe)?;
    let effect = effect("twfe", b[0], se[0], n, n_units, k);
    // Event study: one dummy per relative period seen among treated units, but k = −1.
    let rel: Vec<Option<i64>> = (0..n)
        .map(|i| first[unit_idx[i]].map(|f| time[i] as i64 - f))
        .collect();
    let mut ks: Vec<i64> = rel.iter().flatten().copied().filter(|&k| k != -1).collect();
    ks.sort_unstable();
    ks.dedup();
    let xe = Array2::from_shape_fn((n, ks.len()), |(i, j)| f64::from(rel[i] == Some(ks[j])));
    let event_study = match twfe(&xe, y, &unit_idx, &t_idx, fe) {
        Ok((b, se, _)) => ks
            .iter()
            .enumerate()
            .map(|(j, &k)| {
                let z = z_quantile(0.975);
                EventCoef {
                    k,
                    estimate: b[j],
                    se: se[j],
                    ci95: [b[j] - z * se[j], b[j] + z * se[j]],
                }
            })
            .collect(),
        // Without never-treated units the most distant leads and lags are not all
        // identified; the static effect still is.
        Err(_) => Vec::new(),
    };
    Ok(FittedDid {
        effect,
        event_study,
        units: n_units,
        periods: periods.len(),
        cohorts,
    })
}

fn effect(design: &str, b: f64, se: f64, n: usize, clusters: usize, k: usize) -> DidEffect {
    let z = z_quantile(0.975);
    DidEffect {
        design: design.into(),
        estimate: b,
        se,
        ci95: [b - z * se, b + z * se],
        n,
        clusters,
        k,
    }
}

/// Regression of `y` on `x` with unit and period fixed effects absorbed; coefficients,
/// cluster-robust SEs and the LSDV regressor count.
fn twfe(
    x: &Array2<f64>,
    y: &Array1<f64>,
    unit: &[usize],
    time: &[usize],
    (nu, nt): (usize, usize),
) -> Result<(Array1<f64>, Array1<f64>, usize)> {
    let mut xt = x.clone();
    let mut yt = y.clone().insert_axis(Axis(1));
    demean_two_way(&mut xt, unit, time, nu, nt);
    demean_two_way(&mut yt, unit, time, nu, nt);
    // Intercept + (units − 1) + (periods − 1) dummies.
    clustered_ols(&xt, &yt.column(0).to_owned(), unit, nu, nu + nt - 1)
}

/// Subtracts unit and period means in turn until nothing moves (alternating projections;
/// one sweep is exact for a balanced panel).
fn demean_two_way(m: &mut Array2<f64>, unit: &[usize], time: &[usize], nu: usize, nt: usize) {
    let n = m.nrows();
    let mut cu = vec![0.0f64; nu];
    let mut ct = vec![0.0f64; nt];
    for i in 0..n {
        cu[unit[i]] += 1.0;
        ct[time[i]] += 1.0;
    }
    for mut col in m.columns_mut() {
        let scale = col.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
        for _ in 0..10_000 {
            let mut su = vec![0.0f64; nu];
            for i in 0..n {
                su[unit[i]] += col[i];
            }
            for i in 0..n {
                col[i] -= su[unit[i]] / cu[unit[i]];
            }
            let mut st = vec![0.0f64; nt];
            for i in 0..n {
                st[time[i]] += col[i];
            }
            let mut moved = 0.0f64;
            for i in 0..n {
                let d = st[time[i]] / ct[time[i]];
                col[i] -= d;
                moved = moved.max(d.abs());
            }
            if moved <= 1e-14 * scale {
                break;
            }
        }
    }
}

/// OLS with cluster-robust covariance, factor G/(G−1)·(N−1)/(N−K) with K = columns of
/// `x` plus `absorbed` fixed-effect dummies.
fn clustered_ols(
    x: &Array2<f64>,
    y: &Array1<f64>,
    cluster: &[usize],
    g: usize,
    absorbed: usize,
) -> Result<(Array1<f64>, Array1<f64>, usize)> {
    let (n, m) = x.dim();
    let Some((b, xtx_inv)) = linalg::least_squares(x.view(), y.view()) else {
        return Err(Error::Estimation {
            method: "difference-in-differences",
            reason: "the regressors are collinear with the fixed effects (e.g. every unit \
                     treated at once, or a relative period that only one cohort reaches)"
                .into(),
        });
    };
    let e = y - &x.dot(&b);
    let mut sums = Array2::<f64>::zeros((g, m));
    for i in 0..n {
        sums.row_mut(cluster[i]).scaled_add(e[i], &x.row(i));
    }
    let k = m + absorbed;
    let (nf, gf, kf) = (n as f64, g as f64, k as f64);
    let c = gf / (gf - 1.0) * (nf - 1.0) / (nf - kf);
    let v = xtx_inv.dot(&sums.t().dot(&sums)).dot(&xtx_inv) * c;
    Ok((b, v.diag().mapv(f64::sqrt), k))
}
