//! Hierarchical and grouped forecasts that add up: provinces → region → Italy, sectors →
//! total. Base forecasts of every node are reconciled by bottom-up, OLS, structural WLS
//! or MinT with a shrunk covariance (Wickramasuriya, Athanasopoulos and Hyndman 2019):
//! ỹ = S (S′W⁻¹S)⁻¹ S′W⁻¹ ŷ, so that every aggregate equals the sum of its parts.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2};

use super::Forecast;
use super::accuracy::mase;
use super::backtest::{Batch, forecast_batch};
use crate::causal::linalg::cholesky;
use crate::{Error, Result};

/// The nodes of a hierarchy (or grouped structure) over bottom series.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Labels: the total, then each aggregation level's nodes, then the bottom series.
    pub labels: Vec<String>,
    /// The level each node belongs to ("Total", a level name, or "bottom").
    pub levels: Vec<String>,
    /// The bottom series each node sums.
    pub members: Vec<Vec<usize>>,
    /// Number of bottom series.
    pub n_bottom: usize,
}

impl Hierarchy {
    /// Builds the nodes: the total, one node per distinct key of each level (a level may
    /// combine several key columns, e.g. state × purpose), and the bottom series.
    /// `keys[l].1[i]` is bottom series i's key at level l.
    pub fn new(bottom: &[String], keys: &[(String, Vec<String>)]) -> Result<Self> {
        let b = bottom.len();
        if b == 0 {
            return Err(Error::Param {
                name: "hierarchy",
                reason: "no bottom series".into(),
            });
        }
        let mut h = Hierarchy {
            labels: vec!["Total".into()],
            levels: vec!["Total".into()],
            members: vec![(0..b).collect()],
            n_bottom: b,
        };
        for (name, key) in keys {
            if key.len() != b {
                return Err(Error::Param {
                    name: "hierarchy",
                    reason: format!("level {name} has {} keys for {b} series", key.len()),
                });
            }
            let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, k) in key.iter().enumerate() {
                groups.entry(k).or_default().push(i);
            }
            for (k, m) in groups {
                h.labels.push(k.to_string());
                h.levels.push(name.clone());
                h.members.push(m);
            }
        }
        for (i, id) in bottom.iter().enumerate() {
            h.labels.push(id.clone());
            h.levels.push("bottom".into());
            h.members.push(vec![i]);
        }
        Ok(h)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no nodes (never, once built).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Index of the first bottom node.
    pub fn first_bottom(&self) -> usize {
        self.len() - self.n_bottom
    }

    /// Every node's series from the bottom ones (all of the same length).
    pub fn aggregate(&self, bottom: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let t = bottom.first().map_or(0, Vec::len);
        self.members
            .iter()
            .map(|m| {
                (0..t)
                    .map(|k| m.iter().map(|&i| bottom[i][k]).sum())
                    .collect()
            })
            .collect()
    }

    /// The summing matrix S (nodes × bottom series).
    fn summing(&self) -> Array2<f64> {
        let mut s = Array2::zeros((self.len(), self.n_bottom));
        for (r, m) in self.members.iter().enumerate() {
            for &i in m {
                s[[r, i]] = 1.0;
            }
        }
        s
    }
}

/// A reconciliation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reconciliation {
    /// Sum the bottom forecasts.
    BottomUp,
    /// Orthogonal projection onto coherent forecasts (W = I).
    Ols,
    /// W = diagonal of the number of bottom series under each node.
    WlsStruct,
    /// W = the in-sample one-step error covariance, shrunk towards its diagonal
    /// (Schäfer and Strimmer's intensity, as R's `hts` and `fable` use).
    MintShrink,
}

impl Reconciliation {
    /// All methods, in the order they are tried.
    pub const ALL: [Reconciliation; 4] = [
        Reconciliation::BottomUp,
        Reconciliation::Ols,
        Reconciliation::WlsStruct,
        Reconciliation::MintShrink,
    ];

    /// Parses `bu`, `ols`, `wls`, `mint`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bu" | "bottomup" | "bottom-up" => Reconciliation::BottomUp,
            "ols" => Reconciliation::Ols,
            "wls" | "wls_struct" => Reconciliation::WlsStruct,
            "mint" | "mint_shrink" | "mintshrink" => Reconciliation::MintShrink,
            other => {
                return Err(Error::Param {
                    name: "reconcile",
                    reason: format!("{other:?}: choose auto, bu, ols, wls or mint"),
                });
            }
        })
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Reconciliation::BottomUp => "bu",
            Reconciliation::Ols => "ols",
            Reconciliation::WlsStruct => "wls",
            Reconciliation::MintShrink => "mint",
        }
    }
}

/// Reconciled point forecasts and, for MinT, the shrinkage intensity used.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// Per node, per horizon.
    pub mean: Vec<Vec<f64>>,
    /// MinT's shrinkage intensity λ.
    pub lambda: Option<f64>,
}

/// Reconciles base forecasts `base[node][k]`. MinT needs each node's in-sample one-step
/// errors `errors[node][t]` over the same periods (time points where any is missing are
/// left out).
pub fn reconcile(
    h: &Hierarchy,
    base: &[Vec<f64>],
    errors: Option<&[Vec<f64>]>,
    method: Reconciliation,
) -> Result<Reconciled> {
    let n = h.len();
    if base.len() != n {
        return Err(Error::Param {
            name: "reconcile",
            reason: format!("{} base forecasts for {n} nodes", base.len()),
        });
    }
    let horizon = base.first().map_or(0, Vec::len);
    let s = h.summing();
    let fb = h.first_bottom();
    if method == Reconciliation::BottomUp {
        let bottom: Vec<Vec<f64>> = base[fb..].to_vec();
        return Ok(Reconciled {
            mean: h.aggregate(&bottom),
            lambda: None,
        });
    }
    let (w, lambda) = match method {
        Reconciliation::Ols => (Array2::eye(n), None),
        Reconciliation::WlsStruct => {
            let mut w = Array2::zeros((n, n));
            for (i, m) in h.members.iter().enumerate() {
                w[[i, i]] = m.len() as f64;
            }
            (w, None)
        }
        _ => {
            let errors = errors.ok_or(Error::Estimation {
                method: "MinT",
                reason: "needs the in-sample errors of every node; use ols or wls".into(),
            })?;
            let (w, lambda) = shrunk_covariance(errors)?;
            (w, Some(lambda))
        }
    };
    // ỹ = S (S′W⁻¹S)⁻¹ S′W⁻¹ ŷ through the Cholesky factor L of W: with A = L⁻¹S and
    // z = L⁻¹ŷ, the bottom forecasts solve (A′A) x = A′z.
    let l = cholesky(&w).ok_or(Error::Estimation {
        method: "reconciliation",
        reason: "the error covariance is not positive definite; use ols or wls".into(),
    })?;
    let a = forward_solve(&l, &s);
    let yhat = Array2::from_shape_fn((n, horizon), |(i, k)| base[i][k]);
    let z = forward_solve(&l, &yhat);
    let ata = a.t().dot(&a);
    let atz = a.t().dot(&z);
    let lb = cholesky(&ata).ok_or(Error::Estimation {
        method: "reconciliation",
        reason: "S′W⁻¹S is singular".into(),
    })?;
    let x = back_solve_t(&lb, &forward_solve(&lb, &atz));
    let coherent = s.dot(&x);
    Ok(Reconciled {
        mean: (0..n).map(|i| coherent.row(i).to_vec()).collect(),
        lambda,
    })
}

/// L⁻¹ B for lower-triangular L.
fn forward_solve(l: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let (n, c) = b.dim();
    let mut x = Array2::zeros((n, c));
    for j in 0..c {
        for i in 0..n {
            let mut v = b[[i, j]];
            for k in 0..i {
                v -= l[[i, k]] * x[[k, j]];
            }
            x[[i, j]] = v / l[[i, i]];
        }
    }
    x
}

/// L′⁻¹ B for lower-triangular L.
fn back_solve_t(l: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let (n, c) = b.dim();
    let mut x = Array2::zeros((n, c));
    for j in 0..c {
        for i in (0..n).rev() {
            let mut v = b[[i, j]];
            for k in i + 1..n {
                v -= l[[k, i]] * x[[k, j]];
            }
            x[[i, j]] = v / l[[i, i]];
        }
    }
    x
}

/// The shrunk covariance of one-step errors (nodes × time):
/// W = λ·diag(Σ̂) + (1 − λ)·Σ̂ with λ = Σ_{i≠j} Var(r̂ᵢⱼ) / Σ_{i≠j} r̂ᵢⱼ².
/// Σ̂ is the uncentred second moment, as in R's `hts`: MinT's W is the mean squared
/// error matrix of the base forecasts, bias included. (hierarchicalforecast centres the
/// errors first; on centred errors the two agree, which the oracle test checks.)
fn shrunk_covariance(errors: &[Vec<f64>]) -> Result<(Array2<f64>, f64)> {
    let n = errors.len();
    let t_all = errors.first().map_or(0, Vec::len);
    if errors.iter().any(|e| e.len() != t_all) {
        return Err(Error::Estimation {
            method: "MinT",
            reason: "the nodes' errors cover different periods".into(),
        });
    }
    let times: Vec<usize> = (0..t_all)
        .filter(|&t| errors.iter().all(|e| e[t].is_finite()))
        .collect();
    let t = times.len();
    if t < 3 {
        return Err(Error::Estimation {
            method: "MinT",
            reason: format!("{t} periods with every node's error; needs at least 3"),
        });
    }
    let x = Array2::from_shape_fn((t, n), |(r, i)| errors[i][times[r]]);
    let tf = t as f64;
    let cov = x.t().dot(&x) / tf;
    let sd: Array1<f64> = cov.diag().mapv(|v| v.sqrt());
    if sd.iter().any(|&v| v <= 0.0 || !v.is_finite()) {
        return Err(Error::Estimation {
            method: "MinT",
            reason: "a node has no in-sample error variance; use ols or wls".into(),
        });
    }
    let xs = Array2::from_shape_fn((t, n), |(r, i)| x[[r, i]] / sd[i]);
    let xs2 = xs.mapv(|v| v * v);
    let cross = xs.t().dot(&xs);
    let cross2 = xs2.t().dot(&xs2);
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let v = (cross2[[i, j]] - cross[[i, j]] * cross[[i, j]] / tf) / (tf * (tf - 1.0));
            num += v;
            let r = cov[[i, j]] / (sd[i] * sd[j]);
            den += r * r;
        }
    }
    let lambda = if den > 0.0 {
        (num / den).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let mut w = cov.mapv(|v| v * (1.0 - lambda));
    for i in 0..n {
        w[[i, i]] = cov[[i, i]];
    }
    Ok((w, lambda))
}

/// Above this many nodes only bottom-up is offered (the others are dense solves).
pub const MAX_DENSE_NODES: usize = 3_000;

/// Backtest scores of one way of producing the hierarchy's forecasts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HierarchyScore {
    /// `base` (unreconciled) or a reconciliation method.
    pub method: String,
    /// Mean MASE of the nodes of each level, in the hierarchy's level order.
    pub by_level: Vec<(String, f64)>,
    /// Mean over levels (each level counts once, however many nodes it has).
    pub overall: f64,
}

/// Forecasts of every node, reconciled.
#[derive(Debug)]
pub struct HierarchyForecast {
    /// Per node: reconciled means; the base intervals moved with their means.
    pub forecasts: Vec<Forecast>,
    /// The reconciliation used.
    pub method: Reconciliation,
    /// MinT's shrinkage intensity, if MinT was used.
    pub lambda: Option<f64>,
    /// Held-out scores of the base and of every reconciliation (empty if the series
    /// were too short to hold out a horizon).
    pub backtest: Vec<HierarchyScore>,
    /// Base forecasting methods used, by node.
    pub base_models: Vec<String>,
}

fn errors_of(nodes: &[Vec<f64>], fc: &[Forecast]) -> Vec<Vec<f64>> {
    nodes
        .iter()
        .zip(fc)
        .map(|(y, f)| {
            y.iter()
                .enumerate()
                .map(|(t, v)| f.fitted.get(t).map_or(f64::NAN, |fit| v - fit))
                .collect()
        })
        .collect()
}

fn base_forecasts(nodes: &[Vec<f64>], batch: &Batch) -> Result<Vec<Forecast>> {
    let out = forecast_batch(nodes, batch, &|| {})?;
    out.series
        .into_iter()
        .map(|r| r.map(|s| s.outcome.forecast))
        .collect()
}

/// Forecasts every node of `h` from the bottom series (all over the same periods) with the
/// batch's method, and reconciles them. With `method: None` the reconciliation is chosen
/// by a backtest: the last `horizon` periods are held out, every method is scored by the
/// MASE of each level, and the lowest mean over levels wins.
pub fn forecast_hierarchy(
    h: &Hierarchy,
    bottom: &[Vec<f64>],
    batch: &Batch,
    method: Option<Reconciliation>,
) -> Result<HierarchyForecast> {
    let len = bottom.first().map_or(0, Vec::len);
    if bottom.len() != h.n_bottom || bottom.iter().any(|b| b.len() != len) {
        return Err(Error::Param {
            name: "hierarchy",
            reason: "reconciliation needs every bottom series over the same periods".into(),
        });
    }
    // OLS, WLS and MinT solve dense systems of the nodes' size: O(n³) time, O(n²) memory.
    if h.len() > MAX_DENSE_NODES {
        match method {
            None | Some(Reconciliation::BottomUp) => {}
            Some(r) => {
                return Err(Error::Param {
                    name: "reconcile",
                    reason: format!(
                        "{} nodes: {} needs a dense {}×{} system; use bu (bottom-up) or fewer levels",
                        h.len(),
                        r.name(),
                        h.len(),
                        h.len()
                    ),
                });
            }
        }
    }
    let dense_ok = h.len() <= MAX_DENSE_NODES;
    let nodes = h.aggregate(bottom);
    let hz = batch.horizon;
    let m = batch.season.max(1);
    // Backtest on the held-out last horizon.
    let mut backtest = Vec::new();
    if len > hz + (2 * m).max(8) {
        let cut = len - hz;
        let train: Vec<Vec<f64>> = nodes.iter().map(|y| y[..cut].to_vec()).collect();
        let held = Batch {
            calibrate: false,
            ..batch.clone()
        };
        let base = base_forecasts(&train, &held)?;
        let errors = errors_of(&train, &base);
        let score = |name: &str, means: &[Vec<f64>]| {
            let mut by_level: Vec<(String, f64)> = Vec::new();
            let mut sums: Vec<(String, f64, usize)> = Vec::new();
            for (i, mean) in means.iter().enumerate() {
                let v = mase(
                    &train[i],
                    &nodes[i][cut..],
                    mean,
                    if cut > m { m } else { 1 },
                );
                if !v.is_finite() {
                    continue;
                }
                match sums.iter_mut().find(|s| s.0 == h.levels[i]) {
                    Some(s) => {
                        s.1 += v;
                        s.2 += 1;
                    }
                    None => sums.push((h.levels[i].clone(), v, 1)),
                }
            }
            for (l, sum, n) in sums {
                by_level.push((l, sum / n as f64));
            }
            let overall = by_level.iter().map(|l| l.1).sum::<f64>() / by_level.len().max(1) as f64;
            HierarchyScore {
                method: name.to_string(),
                by_level,
                overall,
            }
        };
        let base_means: Vec<Vec<f64>> = base.iter().map(|f| f.mean.clone()).collect();
        backtest.push(score("base", &base_means));
        for r in Reconciliation::ALL {
            if !dense_ok && r != Reconciliation::BottomUp {
                continue;
            }
            if let Ok(rec) = reconcile(h, &base_means, Some(&errors), r) {
                backtest.push(score(r.name(), &rec.mean));
            }
        }
    }
    let chosen = match method {
        Some(r) => r,
        None => backtest
            .iter()
            .filter(|s| s.method != "base" && s.overall.is_finite())
            .min_by(|a, b| a.overall.total_cmp(&b.overall))
            .and_then(|s| Reconciliation::parse(&s.method).ok())
            .unwrap_or(if dense_ok {
                Reconciliation::MintShrink
            } else {
                Reconciliation::BottomUp
            }),
    };
    let base = base_forecasts(&nodes, batch)?;
    let errors = errors_of(&nodes, &base);
    let base_means: Vec<Vec<f64>> = base.iter().map(|f| f.mean.clone()).collect();
    let rec = match reconcile(h, &base_means, Some(&errors), chosen) {
        Ok(r) => r,
        // MinT can fail on degenerate errors (a constant node); WLS always works.
        Err(_) if method.is_none() => reconcile(h, &base_means, None, Reconciliation::WlsStruct)?,
        Err(e) => return Err(e),
    };
    let base_models = base.iter().map(|f| f.model.clone()).collect();
    let forecasts = base
        .into_iter()
        .zip(&rec.mean)
        .map(|(mut f, r)| {
            for iv in f.intervals.iter_mut() {
                for k in 0..r.len() {
                    let shift = r[k] - f.mean[k];
                    iv.lower[k] += shift;
                    iv.upper[k] += shift;
                }
            }
            f.mean = r.clone();
            f
        })
        .collect();
    Ok(HierarchyForecast {
        forecasts,
        method: chosen,
        lambda: rec.lambda,
        backtest,
        base_models,
    })
}

/// Clips the bottom forecasts at zero and re-sums the aggregates, so that forecasts of
/// counts are both non-negative and coherent; interval bounds are clipped at zero.
pub fn clip_coherent(h: &Hierarchy, forecasts: &mut [Forecast]) {
    let fb = h.first_bottom();
    for f in forecasts[fb..].iter_mut() {
        f.mean.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    let bottom: Vec<Vec<f64>> = forecasts[fb..].iter().map(|f| f.mean.clone()).collect();
    let sums = h.aggregate(&bottom);
    for (f, s) in forecasts.iter_mut().zip(sums) {
        f.mean = s;
        for iv in f.intervals.iter_mut() {
            iv.lower.iter_mut().for_each(|v| *v = v.max(0.0));
            iv.upper.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_level() -> Hierarchy {
        let bottom: Vec<String> = ["a1", "a2", "b1"].iter().map(|s| s.to_string()).collect();
        let keys = vec![(
            "group".to_string(),
            vec!["A".into(), "A".into(), "B".into()],
        )];
        Hierarchy::new(&bottom, &keys).unwrap()
    }

    #[test]
    fn every_method_adds_up() {
        let h = two_level();
        assert_eq!(h.labels, vec!["Total", "A", "B", "a1", "a2", "b1"]);
        // Incoherent base forecasts.
        let base = vec![
            vec![100.0, 110.0],
            vec![55.0, 60.0],
            vec![40.0, 41.0],
            vec![30.0, 31.0],
            vec![20.0, 22.0],
            vec![42.0, 40.0],
        ];
        let errors: Vec<Vec<f64>> = (0..6)
            .map(|i| {
                (0..20)
                    .map(|t| ((t * (i + 3)) % 7) as f64 - 3.0 + 0.1 * i as f64)
                    .collect()
            })
            .collect();
        for m in Reconciliation::ALL {
            let r = reconcile(&h, &base, Some(&errors), m).unwrap();
            for k in 0..2 {
                let y = |i: usize| r.mean[i][k];
                assert!((y(0) - (y(3) + y(4) + y(5))).abs() < 1e-9, "{m:?}");
                assert!((y(1) - (y(3) + y(4))).abs() < 1e-9, "{m:?}");
                assert!((y(2) - y(5)).abs() < 1e-9, "{m:?}");
            }
        }
    }

    #[test]
    fn ols_is_the_orthogonal_projection() {
        // One parent, two children: ŷ = (10, 4, 4). OLS moves each node by the same
        // amount against the incoherence 10 − 8 = 2: children +2/3, total −2/3.
        let bottom: Vec<String> = vec!["x".into(), "y".into()];
        let h = Hierarchy::new(&bottom, &[]).unwrap();
        let r = reconcile(
            &h,
            &[vec![10.0], vec![4.0], vec![4.0]],
            None,
            Reconciliation::Ols,
        )
        .unwrap();
        assert!((r.mean[0][0] - (10.0 - 2.0 / 3.0)).abs() < 1e-12);
        assert!((r.mean[1][0] - (4.0 + 2.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn very_large_hierarchies_fall_back_to_bottom_up() {
        use crate::forecast::backtest::{Method, Selection};
        let b = MAX_DENSE_NODES;
        let bottom: Vec<String> = (0..b).map(|i| format!("s{i}")).collect();
        let h = Hierarchy::new(&bottom, &[]).unwrap();
        let series: Vec<Vec<f64>> = (0..b)
            .map(|i| (0..12).map(|t| (i + t) as f64).collect())
            .collect();
        let batch = Batch {
            method: Some(Method::Naive),
            selection: Selection::Group,
            season: 1,
            horizon: 2,
            levels: vec![],
            windows: 1,
            calibrate: false,
        };
        let e = forecast_hierarchy(&h, &series, &batch, Some(Reconciliation::Ols)).unwrap_err();
        assert!(e.to_string().contains("use bu"), "{e}");
        let out = forecast_hierarchy(&h, &series, &batch, None).unwrap();
        assert_eq!(out.method, Reconciliation::BottomUp);
    }

    #[test]
    fn coherent_forecasts_are_left_alone() {
        let h = two_level();
        let base = vec![
            vec![9.0],
            vec![5.0],
            vec![4.0],
            vec![2.0],
            vec![3.0],
            vec![4.0],
        ];
        for m in [Reconciliation::Ols, Reconciliation::WlsStruct] {
            let r = reconcile(&h, &base, None, m).unwrap();
            for (a, b) in r.mean.iter().zip(&base) {
                assert!((a[0] - b[0]).abs() < 1e-12);
            }
        }
    }
}
