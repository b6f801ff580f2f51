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
    /// Relative periods left out of the event study because their dummy is collinear
    /// with the fixed effects and the dummies before it (without never-treated units the
    /// most distant leads or lags are not identified), as R's `lm` and `fixest` leave them
    /// out and name them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_study_aliased: Vec<i64>,
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
            event_study_aliased: Vec::new(),
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
    // A dummy in the span of the fixed effects and the dummies before it is aliased: after
    // the fixed effects are absorbed (Frisch–Waugh), it is in the span of the earlier
    // absorbed dummies, which R's rule on the absorbed columns decides.
    let mut absorbed = xe.clone();
    demean_two_way(&mut absorbed, &unit_idx, &t_idx, fe.0, fe.1);
    let keep = linalg::independent_columns_given(absorbed.view(), xe.view());
    let kept: Vec<usize> = (0..ks.len()).filter(|&j| keep[j]).collect();
    let event_study_aliased: Vec<i64> =
        (0..ks.len()).filter(|&j| !keep[j]).map(|j| ks[j]).collect();
    let xe = xe.select(Axis(1), &kept);
    let event_study = match twfe(&xe, y, &unit_idx, &t_idx, fe) {
        Ok((b, se, _)) => kept
            .iter()
            .enumerate()
            .map(|(j, &c)| {
                let z = z_quantile(0.975);
                EventCoef {
                    k: ks[c],
                    estimate: b[j],
                    se: se[j],
                    ci95: [b[j] - z * se[j], b[j] + z * se[j]],
                }
            })
            .collect(),
        // Nothing identified beyond what was left out: the static effect still is.
        Err(_) => Vec::new(),
    };
    Ok(FittedDid {
        effect,
        event_study,
        event_study_aliased,
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

/// One group-time average treatment effect of Callaway and Sant'Anna (2021).
#[derive(Debug, Clone, Serialize)]
pub struct AttGt {
    /// The cohort: first treated period.
    pub group: i64,
    /// The period.
    pub time: i64,
    /// ATT(g, t).
    pub estimate: f64,
    /// Analytical standard error (influence function).
    pub se: f64,
}

/// An aggregate of the group-time effects.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    /// Event time (periods since first treatment), cohort, or `None` for the overall one.
    pub at: Option<i64>,
    /// The aggregated effect.
    pub estimate: f64,
    /// Analytical standard error, including the estimation of the cohort weights.
    pub se: f64,
}

/// Callaway and Sant'Anna's staggered-adoption estimator: never-treated units as the
/// comparison group, no covariates, "varying" base period (a pre-period is compared
/// with the period before it, a post-period with the period before treatment), and
/// the simple, dynamic (event-time) and group aggregations.
#[derive(Debug, Clone, Serialize)]
pub struct CallawaySantAnna {
    /// Every ATT(g, t).
    pub att_gt: Vec<AttGt>,
    /// The average over post-treatment (g, t), weighted by cohort size.
    pub simple: Aggregate,
    /// By event time e = t − g.
    pub dynamic: Vec<Aggregate>,
    /// The average of the dynamic effects for e ≥ 0.
    pub dynamic_overall: Aggregate,
    /// By cohort (average over its post-treatment periods).
    pub group: Vec<Aggregate>,
    /// Cohort effects averaged with cohort-size weights.
    pub group_overall: Aggregate,
}

/// Callaway–Sant'Anna on a balanced panel (see [`did`] for how the sample is laid out).
pub fn callaway_santanna(sample: &Sample) -> Result<CallawaySantAnna> {
    let fail = |reason: String| Error::Estimation {
        method: "Callaway-Sant'Anna",
        reason,
    };
    let units = sample
        .cluster()
        .ok_or_else(|| fail("the panel needs a unit column (--unit)".into()))?;
    let (uidx, nu) = dense_labels(units);
    let time: Vec<i64> = sample.x().column(0).iter().map(|&t| t as i64).collect();
    let mut periods = time.clone();
    periods.sort_unstable();
    periods.dedup();
    let tp: BTreeMap<i64, usize> = periods.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let nt = periods.len();
    let mut wide = vec![f64::NAN; nu * nt];
    let mut first: Vec<Option<i64>> = vec![None; nu];
    for i in 0..sample.len() {
        wide[uidx[i] * nt + tp[&time[i]]] = sample.y()[i];
        if sample.d()[i] {
            let f = &mut first[uidx[i]];
            *f = Some(f.map_or(time[i], |v: i64| v.min(time[i])));
        }
    }
    if wide.iter().any(|v| v.is_nan()) {
        return Err(fail(
            "the panel is unbalanced (a unit misses a period); this estimator needs every \
             unit in every period"
                .into(),
        ));
    }
    let never: Vec<usize> = (0..nu).filter(|&u| first[u].is_none()).collect();
    if never.is_empty() {
        return Err(fail(
            "no never-treated units to compare with; this estimator uses them as controls".into(),
        ));
    }
    // Cohorts treated after the first period (earlier ones have no pre-period).
    let mut cohorts: Vec<i64> = first
        .iter()
        .flatten()
        .copied()
        .filter(|&g| g > periods[0])
        .collect();
    cohorts.sort_unstable();
    cohorts.dedup();
    let n = nu as f64;
    let y = |u: usize, t: usize| wide[u * nt + t];
    let mut att = Vec::new();
    let mut ifs: Vec<Vec<f64>> = Vec::new();
    for &g in &cohorts {
        let members: Vec<usize> = (0..nu).filter(|&u| first[u] == Some(g)).collect();
        let gi = tp[&g];
        for ti in 1..nt {
            let base = if ti >= gi { gi - 1 } else { ti - 1 };
            let mean_diff = |us: &[usize]| {
                us.iter().map(|&u| y(u, ti) - y(u, base)).sum::<f64>() / us.len() as f64
            };
            let (mg, mc) = (mean_diff(&members), mean_diff(&never));
            let mut inf = vec![0.0; nu];
            let (ng, nc) = (members.len() as f64, never.len() as f64);
            for &u in &members {
                inf[u] = n / ng * (y(u, ti) - y(u, base) - mg);
            }
            for &u in &never {
                inf[u] = -n / nc * (y(u, ti) - y(u, base) - mc);
            }
            att.push(AttGt {
                group: g,
                time: periods[ti],
                estimate: mg - mc,
                se: se_of(&inf),
            });
            ifs.push(inf);
        }
    }
    // Cohort shares among all units, and each unit's cohort.
    let pg: BTreeMap<i64, f64> = cohorts
        .iter()
        .map(|&g| {
            (
                g,
                first.iter().filter(|f| **f == Some(g)).count() as f64 / n,
            )
        })
        .collect();
    // A cohort-share-weighted aggregate of the cells `keep` selects, with its influence
    // function (kept: the overall dynamic effect averages them).
    let weighted = |cells: &[AttGt], cell_ifs: &[Vec<f64>], keep: &dyn Fn(&AttGt) -> bool| {
        let total: f64 = cells.iter().filter(|a| keep(a)).map(|a| pg[&a.group]).sum();
        let estimate: f64 = cells
            .iter()
            .filter(|a| keep(a))
            .map(|a| pg[&a.group] / total * a.estimate)
            .sum();
        (
            estimate,
            aggregate_inf(cells, cell_ifs, &first, &pg, nu, keep),
        )
    };
    let (estimate, inf) = weighted(&att, &ifs, &|a: &AttGt| a.time >= a.group);
    let simple = Aggregate {
        at: None,
        estimate,
        se: se_of(&inf),
    };
    let mut events: Vec<i64> = att.iter().map(|a| event_time(a, &tp)).collect();
    events.sort_unstable();
    events.dedup();
    let by_event: Vec<(Aggregate, Vec<f64>)> = events
        .iter()
        .map(|&e| {
            let (estimate, inf) = weighted(&att, &ifs, &|a: &AttGt| event_time(a, &tp) == e);
            let se = se_of(&inf);
            (
                Aggregate {
                    at: Some(e),
                    estimate,
                    se,
                },
                inf,
            )
        })
        .collect();
    // Overall of the dynamic effects: the plain mean over e ≥ 0, and of their influence
    // functions.
    let post: Vec<&(Aggregate, Vec<f64>)> = by_event
        .iter()
        .filter(|(a, _)| a.at.is_some_and(|e| e >= 0))
        .collect();
    let m = post.len() as f64;
    let dynamic_overall = Aggregate {
        at: None,
        estimate: post.iter().map(|(a, _)| a.estimate).sum::<f64>() / m,
        se: se_of(
            &(0..nu)
                .map(|u| post.iter().map(|(_, f)| f[u]).sum::<f64>() / m)
                .collect::<Vec<_>>(),
        ),
    };
    let dynamic: Vec<Aggregate> = by_event.into_iter().map(|(a, _)| a).collect();
    // Cohort effects: equal weights over each cohort's post-treatment periods (no weight
    // term); overall, cohort-share weights with their influence term, as for the cells.
    let mut cohort_cells = Vec::new();
    let mut cohort_ifs = Vec::new();
    for &g in &cohorts {
        let keepers: Vec<usize> = (0..att.len())
            .filter(|&k| att[k].group == g && att[k].time >= g)
            .collect();
        let m = keepers.len() as f64;
        let inf: Vec<f64> = (0..nu)
            .map(|u| keepers.iter().map(|&k| ifs[k][u]).sum::<f64>() / m)
            .collect();
        cohort_cells.push(AttGt {
            group: g,
            time: g,
            estimate: keepers.iter().map(|&k| att[k].estimate).sum::<f64>() / m,
            se: se_of(&inf),
        });
        cohort_ifs.push(inf);
    }
    let group: Vec<Aggregate> = cohort_cells
        .iter()
        .map(|c| Aggregate {
            at: Some(c.group),
            estimate: c.estimate,
            se: c.se,
        })
        .collect();
    let (estimate, inf) = weighted(&cohort_cells, &cohort_ifs, &|_: &AttGt| true);
    let group_overall = Aggregate {
        at: None,
        estimate,
        se: se_of(&inf),
    };
    Ok(CallawaySantAnna {
        att_gt: att,
        simple,
        dynamic,
        dynamic_overall,
        group,
        group_overall,
    })
}

/// Periods since first treatment, counted in positions of the period list.
fn event_time(a: &AttGt, tp: &BTreeMap<i64, usize>) -> i64 {
    tp[&a.time] as i64 - tp[&a.group] as i64
}

/// The influence function of an aggregate of the ATT(g, t) that `keep` selects, weighted
/// by cohort shares: the weighted effects' plus that of the weights themselves (the
/// shares are estimated), as in the `did` package's aggregation.
fn aggregate_inf(
    att: &[AttGt],
    ifs: &[Vec<f64>],
    first: &[Option<i64>],
    pg: &BTreeMap<i64, f64>,
    nu: usize,
    keep: &dyn Fn(&AttGt) -> bool,
) -> Vec<f64> {
    let keepers: Vec<usize> = (0..att.len()).filter(|&k| keep(&att[k])).collect();
    let total: f64 = keepers.iter().map(|&k| pg[&att[k].group]).sum();
    (0..nu)
        .map(|u| {
            let in_g = |g: i64| f64::from(first[u] == Some(g));
            let if2: f64 = keepers
                .iter()
                .map(|&k| {
                    let g = att[k].group;
                    (in_g(g) - pg[&g]) * pg[&g] / (total * total)
                })
                .sum();
            keepers
                .iter()
                .map(|&k| {
                    let g = att[k].group;
                    pg[&g] / total * ifs[k][u]
                        + ((in_g(g) - pg[&g]) / total - if2) * att[k].estimate
                })
                .sum()
        })
        .collect()
}

/// √(Σ ψᵢ²) / n: the analytical standard error from a per-unit influence function.
fn se_of(inf: &[f64]) -> f64 {
    inf.iter().map(|v| v * v).sum::<f64>().sqrt() / inf.len() as f64
}
