//! Methods by name, rolling-origin backtests, the automatic choice and calibrated
//! intervals.
//!
//! A backtest refits a method on the series cut at an earlier origin and scores its
//! forecast of what followed (MASE, sMAPE, and where each value fell relative to the
//! interval). `--model auto` runs every candidate on the same origins and keeps, per
//! series, the one with the lowest mean MASE. The same held-out errors calibrate the
//! intervals (split conformal prediction with the model's own width as the scale): if
//! the 95 % intervals held 88 % of the held-out values across the series, they are
//! widened until they would have held 95 %.

use rayon::prelude::*;

use super::accuracy::{mase, smape};
use super::arima::Arima;
use super::baseline::{comb, seasonal_naive};
use super::ets::{Ets, EtsType};
use super::theta::{Theta, ThetaModel};
use super::{Forecast, Interval};
use crate::{Error, Result};

/// A forecasting method by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Last value.
    Naive,
    /// Value one season back.
    SeasonalNaive,
    /// ETS: the AICc choice (`None`) or one model.
    Ets(Option<EtsType>),
    /// Theta: one model, or the best in-sample of the four (`None`).
    Theta(Option<ThetaModel>),
    /// The M4 Comb of SES, Holt and damped.
    Comb,
    /// Seasonal ARIMA with automatic orders.
    Arima,
    /// The median, period by period, of ETS, ARIMA and Theta (their intervals' bounds
    /// likewise): a combination that no single model's failure can drag far.
    Median,
}

impl Method {
    /// Parses a command-line name: `naive`, `snaive`, `ets`, `ets:MAdM`, `theta`
    /// (standard theta), `autotheta`, `otm`, `comb`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "naive" => Method::Naive,
            "snaive" => Method::SeasonalNaive,
            "ets" => Method::Ets(None),
            "theta" => Method::Theta(Some(ThetaModel::Stm)),
            "otm" => Method::Theta(Some(ThetaModel::Otm)),
            "autotheta" => Method::Theta(None),
            "comb" => Method::Comb,
            "arima" => Method::Arima,
            "median" => Method::Median,
            other => match other.strip_prefix("ets:") {
                Some(code) => {
                    Method::Ets(Some(EtsType::parse(&s[4..]).map_err(|_| Error::Param {
                        name: "model",
                        reason: format!("{code:?} is not an ETS model such as ets:MAdM"),
                    })?))
                }
                None => {
                    return Err(Error::Param {
                        name: "model",
                        reason: format!(
                            "{s:?}: choose auto, ets, ets:MAdM (one ETS model), arima, theta, \
                             otm, autotheta, comb, median, snaive or naive"
                        ),
                    });
                }
            },
        })
    }

    /// Name as printed in outputs.
    pub fn name(&self) -> String {
        match self {
            Method::Naive => "naive".into(),
            Method::SeasonalNaive => "snaive".into(),
            Method::Ets(None) => "ets".into(),
            Method::Ets(Some(t)) => format!("ets:{}", t.code()),
            Method::Theta(Some(ThetaModel::Stm)) => "theta".into(),
            Method::Theta(Some(ThetaModel::Otm)) => "otm".into(),
            Method::Theta(Some(t)) => t.name().to_ascii_lowercase(),
            Method::Theta(None) => "autotheta".into(),
            Method::Comb => "comb".into(),
            Method::Arima => "arima".into(),
            Method::Median => "median".into(),
        }
    }

    /// Fits to `y` (season length `m`) and forecasts `h` periods with intervals.
    pub fn forecast(&self, y: &[f64], m: usize, h: usize, levels: &[f64]) -> Result<Forecast> {
        match self {
            Method::Naive => seasonal_naive(y, 1, h, levels),
            Method::SeasonalNaive => seasonal_naive(y, m, h, levels),
            Method::Ets(model) => {
                let spec = match model {
                    Some(t) => Ets::model(m, *t),
                    None => Ets::auto(m),
                };
                spec.fit(y)?.predict(h, levels)
            }
            Method::Theta(model) => Theta::new(m, *model).fit(y)?.predict(h, levels),
            Method::Comb => comb(y, m, h, levels),
            Method::Arima => Arima::auto(m).fit(y)?.predict(h, levels),
            Method::Median => {
                let parts = [
                    Method::Ets(None).forecast(y, m, h, levels)?,
                    Method::Arima.forecast(y, m, h, levels)?,
                    Method::Theta(Some(ThetaModel::Stm)).forecast(y, m, h, levels)?,
                ];
                let med = |f: &dyn Fn(&Forecast) -> &Vec<f64>| -> Vec<f64> {
                    (0..h)
                        .map(|k| {
                            let mut v = [f(&parts[0])[k], f(&parts[1])[k], f(&parts[2])[k]];
                            v.sort_by(f64::total_cmp);
                            v[1]
                        })
                        .collect()
                };
                let n = y.len();
                Ok(Forecast {
                    mean: med(&|p| &p.mean),
                    intervals: (0..levels.len())
                        .map(|j| Interval {
                            level: levels[j],
                            lower: med(&|p| &p.intervals[j].lower),
                            upper: med(&|p| &p.intervals[j].upper),
                        })
                        .collect(),
                    model: "Median(ETS,ARIMA,Theta)".into(),
                    // ARIMA exposes no fitted values: the mean of ETS and Theta's.
                    fitted: (0..n)
                        .map(|t| (parts[0].fitted[t] + parts[2].fitted[t]) / 2.0)
                        .collect(),
                })
            }
        }
    }
}

/// A forecast with the method that made it and, if the asked one could not, why.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The forecast.
    pub forecast: Forecast,
    /// The method that produced it.
    pub method: Method,
    /// Why the asked method was replaced by a simpler one, if it was.
    pub fallback: Option<String>,
}

/// Forecasts with `method`, falling back to simpler methods when it cannot fit (too
/// short a series, values it cannot model): theta, then seasonal naive, then naive, then
/// the mean. Says so in [`Outcome::fallback`].
pub fn forecast_with_fallback(
    method: Method,
    y: &[f64],
    m: usize,
    h: usize,
    levels: &[f64],
) -> Result<Outcome> {
    let mut chain = vec![method];
    for next in [
        Method::Theta(Some(ThetaModel::Stm)),
        Method::SeasonalNaive,
        Method::Naive,
    ] {
        if !chain.contains(&next) {
            chain.push(next);
        }
    }
    let mut first_error: Option<String> = None;
    for candidate in chain {
        match candidate.forecast(y, m, h, levels) {
            Ok(forecast) if forecast.mean.iter().all(|v| v.is_finite()) => {
                return Ok(Outcome {
                    forecast,
                    method: candidate,
                    fallback: first_error.map(|e| {
                        format!(
                            "{} could not be used ({e}); used {}",
                            method.name(),
                            candidate.name()
                        )
                    }),
                });
            }
            Ok(_) => {
                first_error.get_or_insert_with(|| "non-finite forecasts".into());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    // One value or a constant: the mean, with no interval width to estimate.
    if y.is_empty() {
        return Err(Error::Estimation {
            method: "forecast",
            reason: "the series has no values".into(),
        });
    }
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let sd = super::sample_variance(y).sqrt();
    Ok(Outcome {
        forecast: Forecast {
            mean: vec![mean; h],
            intervals: levels
                .iter()
                .map(|&lv| {
                    let z = super::normal_quantile(0.5 + lv / 200.0);
                    Interval {
                        level: lv,
                        lower: vec![mean - z * sd; h],
                        upper: vec![mean + z * sd; h],
                    }
                })
                .collect(),
            model: "Mean".into(),
            fitted: vec![mean; y.len()],
        },
        method: Method::Naive,
        fallback: Some(format!(
            "{} could not be used ({}); {} value(s) only: used their mean",
            method.name(),
            first_error.unwrap_or_default(),
            y.len()
        )),
    })
}

/// One held-out window of one method on one series.
#[derive(Debug, Clone)]
pub struct Window {
    /// MASE of the window's forecast.
    pub mase: f64,
    /// sMAPE of the window's forecast.
    pub smape: f64,
    /// Per horizon: |actual − mean| over the half-width of each level's interval on the
    /// actual's side (≤ 1 means covered). `scores[level][k]`.
    pub scores: Vec<Vec<f64>>,
}

/// Rolling-origin evaluation: for origins n − h·w, w = 1…`windows` (latest first), cut
/// the series, forecast `h` ahead and score. Origins that leave fewer than `min_train`
/// values are skipped.
pub fn backtest(
    method: Method,
    y: &[f64],
    m: usize,
    h: usize,
    levels: &[f64],
    windows: usize,
    min_train: usize,
) -> Vec<Window> {
    let mut out = Vec::new();
    for w in 1..=windows {
        let Some(origin) = y.len().checked_sub(h * w) else {
            break;
        };
        if origin < min_train.max(3) {
            break;
        }
        let train = &y[..origin];
        let actual = &y[origin..origin + h];
        let Ok(fc) = method.forecast(train, m, h, levels) else {
            continue;
        };
        if fc.mean.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let scale_m = if train.len() > m { m } else { 1 };
        let scores = fc
            .intervals
            .iter()
            .map(|iv| {
                (0..h)
                    .map(|k| side_score(actual[k], fc.mean[k], iv.lower[k], iv.upper[k]))
                    .collect()
            })
            .collect();
        out.push(Window {
            mase: mase(train, actual, &fc.mean, scale_m),
            smape: smape(actual, &fc.mean),
            scores,
        });
    }
    out
}

/// Distance of `y` from the point forecast in units of the interval's half-width on
/// that side.
fn side_score(y: f64, mean: f64, lower: f64, upper: f64) -> f64 {
    let half = if y >= mean {
        upper - mean
    } else {
        mean - lower
    };
    if half > 0.0 {
        (y - mean).abs() / half
    } else if y == mean {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Interval multipliers by level and horizon from pooled held-out scores: the conformal
/// quantile ⌈(n+1)·level⌉ / n of the scores. A multiplier of 1.3 widens the interval's
/// half-widths by 30 %.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// `factors[level][k]`.
    pub factors: Vec<Vec<f64>>,
    /// Scores behind each factor (the smallest over horizons).
    pub n_scores: usize,
}

/// Fewer pooled scores than this per horizon and the horizons are pooled together.
const MIN_SCORES_PER_HORIZON: usize = 40;

impl Calibration {
    /// From the windows of many series (or many windows of one). `None` with fewer than
    /// 20 scores per level in all: too few to move the model's own intervals.
    pub fn from_windows<'a>(
        windows: impl IntoIterator<Item = &'a Window>,
        levels: &[f64],
        h: usize,
    ) -> Option<Self> {
        let mut pooled: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); h]; levels.len()];
        for w in windows {
            for (j, per_h) in w.scores.iter().enumerate().take(levels.len()) {
                for (k, &s) in per_h.iter().enumerate().take(h) {
                    if !s.is_nan() {
                        pooled[j][k].push(s);
                    }
                }
            }
        }
        let per_h = pooled.first()?.iter().map(Vec::len).min().unwrap_or(0);
        let total: usize = pooled.first()?.iter().map(Vec::len).sum();
        if total < 20 {
            return None;
        }
        let factors = levels
            .iter()
            .zip(pooled.iter_mut())
            .map(|(&lv, by_h)| {
                let q = lv / 100.0;
                if per_h >= MIN_SCORES_PER_HORIZON {
                    by_h.iter_mut().map(|s| conformal_quantile(s, q)).collect()
                } else {
                    let mut all: Vec<f64> = by_h.iter().flatten().copied().collect();
                    vec![conformal_quantile(&mut all, q); h]
                }
            })
            .collect();
        Some(Self {
            factors,
            n_scores: if per_h >= MIN_SCORES_PER_HORIZON {
                per_h
            } else {
                total
            },
        })
    }

    /// Widens (or narrows) a forecast's intervals around its point forecasts.
    pub fn apply(&self, fc: &mut Forecast) {
        for (iv, f) in fc.intervals.iter_mut().zip(&self.factors) {
            for k in 0..fc.mean.len().min(f.len()) {
                let c = f[k];
                if !c.is_finite() {
                    continue;
                }
                let mu = fc.mean[k];
                iv.lower[k] = mu - c * (mu - iv.lower[k]);
                iv.upper[k] = mu + c * (iv.upper[k] - mu);
            }
        }
        // Factors estimated level by level could let a narrower level poke out of a wider
        // one; keep them nested.
        let mut order: Vec<usize> = (0..fc.intervals.len()).collect();
        order.sort_by(|&a, &b| fc.intervals[a].level.total_cmp(&fc.intervals[b].level));
        for w in order.windows(2) {
            let (inner, outer) = (w[0], w[1]);
            for k in 0..fc.mean.len() {
                let lo = fc.intervals[inner].lower[k].min(fc.intervals[outer].lower[k]);
                let hi = fc.intervals[inner].upper[k].max(fc.intervals[outer].upper[k]);
                fc.intervals[outer].lower[k] = lo;
                fc.intervals[outer].upper[k] = hi;
            }
        }
    }
}

/// The ⌈(n+1)q⌉-th smallest score (split conformal), the largest if that exceeds n.
fn conformal_quantile(scores: &mut [f64], q: f64) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.sort_by(f64::total_cmp);
    let n = scores.len();
    let rank = (((n + 1) as f64) * q).ceil() as usize;
    scores[rank.clamp(1, n) - 1]
}

/// The candidates of `--model auto`.
pub const AUTO_CANDIDATES: [Method; 3] = [
    Method::Ets(None),
    Method::Theta(Some(ThetaModel::Stm)),
    Method::Comb,
];

/// The candidates for a season of length `m`: ETS, Theta and Comb always; ARIMA and the
/// median of ETS, ARIMA and Theta too for seasons of up to 4 periods (quarterly data),
/// where the ARIMA search is quick (15 ms a series on M3 quarterly, against about a
/// second for monthly series, which would break the 10,000-series budget).
pub fn auto_candidates(m: usize) -> Vec<Method> {
    let mut c = AUTO_CANDIDATES.to_vec();
    if m <= 4 {
        c.extend([Method::Arima, Method::Median]);
    }
    c
}

/// Result of the automatic choice on one series.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The method kept.
    pub method: Method,
    /// Mean backtest MASE of each candidate (NaN if it could not be scored).
    pub mase: Vec<(Method, f64)>,
    /// The chosen method's held-out windows (for calibration).
    pub windows: Vec<Window>,
}

/// Mean of the finite values; NaN if there are none.
fn finite_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Mean MASE of a method's held-out windows.
fn mean_mase(windows: &[Window]) -> f64 {
    finite_mean(windows.iter().map(|w| w.mase))
}

/// Index of the lowest finite score (the first on ties).
fn lowest(scores: impl Iterator<Item = f64>) -> Option<usize> {
    scores
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Chooses per series the candidate with the lowest mean MASE over `windows` origins.
/// Series too short to hold out `h` values keep the first candidate that fits.
pub fn choose(
    candidates: &[Method],
    y: &[f64],
    m: usize,
    h: usize,
    levels: &[f64],
    windows: usize,
) -> Choice {
    let min_train = (2 * m).max(8);
    let runs: Vec<(Method, Vec<Window>)> = candidates
        .iter()
        .map(|&c| (c, backtest(c, y, m, h, levels, windows, min_train)))
        .collect();
    let scored: Vec<(Method, f64)> = runs.iter().map(|(c, w)| (*c, mean_mase(w))).collect();
    let best = lowest(scored.iter().map(|s| s.1));
    match best {
        Some(i) => Choice {
            method: runs[i].0,
            mase: scored,
            windows: runs[i].1.clone(),
        },
        None => Choice {
            method: candidates[0],
            mase: scored,
            windows: Vec::new(),
        },
    }
}

/// One series' forecast in a batch.
#[derive(Debug, Clone)]
pub struct SeriesForecast {
    /// The outcome (forecast, method, fallback).
    pub outcome: Outcome,
    /// Backtest MASE by candidate (auto only).
    pub backtest: Vec<(Method, f64)>,
    /// Whether the intervals were calibrated.
    pub calibrated: bool,
}

/// How `--model auto` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// One method for the whole batch: the lowest mean backtest MASE over the series.
    /// A single held-out window per series is a noisy judge of that series; pooled over
    /// the batch it is not (on M3 the group choice beat the per-series one).
    #[default]
    Group,
    /// Per series, the lowest backtest MASE.
    Series,
}

/// Settings of a batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// A method, or `None` for the automatic choice.
    pub method: Option<Method>,
    /// How auto chooses.
    pub selection: Selection,
    /// Season length.
    pub season: usize,
    /// Horizon.
    pub horizon: usize,
    /// Interval levels in percent.
    pub levels: Vec<f64>,
    /// Backtest origins per series (for auto and for calibration).
    pub windows: usize,
    /// Calibrate the intervals from the backtests.
    pub calibrate: bool,
}

/// The batch's forecasts and the calibrations applied.
#[derive(Debug)]
pub struct BatchResult {
    /// One per input series, in order.
    pub series: Vec<Result<SeriesForecast>>,
    /// Interval calibration by method, where enough held-out values existed.
    pub calibration: Vec<(Method, Calibration)>,
    /// Mean backtest MASE by candidate over the series where all could be scored.
    pub group_mase: Vec<(Method, f64)>,
    /// Backtest scores by candidate: mean MASE and sMAPE over its held-out windows, and
    /// the coverage of its own (uncalibrated) intervals at each level.
    pub scores: Vec<BacktestScore>,
}

/// One candidate's backtest over a batch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BacktestScore {
    /// The method's name.
    pub method: String,
    /// Held-out windows scored.
    pub windows: usize,
    /// Mean MASE.
    pub mase: f64,
    /// Mean sMAPE.
    pub smape: f64,
    /// (level, share of held-out values inside the model's own interval).
    pub coverage: Vec<(f64, f64)>,
}

/// Forecasts many series in parallel: backtests of the candidates (or of the given
/// method), the choice, the final fits with fallbacks, then each method's intervals
/// calibrated on its pooled held-out errors across the batch. Calibrating a method on
/// all series, not only those it was chosen for, keeps the choice from flattering it.
/// `progress` is called once per finished series.
pub fn forecast_batch(
    series: &[Vec<f64>],
    batch: &Batch,
    progress: &(dyn Fn() + Sync),
) -> Result<BatchResult> {
    super::check_levels(&batch.levels)?;
    if batch.horizon == 0 {
        return Err(Error::Param {
            name: "horizon",
            reason: "give a horizon of at least 1 period".into(),
        });
    }
    let (m, h, levels) = (batch.season.max(1), batch.horizon, &batch.levels);
    let candidates: Vec<Method> = match batch.method {
        Some(method) => vec![method],
        None => auto_candidates(m),
    };
    let need_backtests = batch.method.is_none() || batch.calibrate;
    let min_train = (2 * m).max(8);
    // Phase 1: backtests, per series per candidate.
    let runs: Vec<Vec<Vec<Window>>> = series
        .par_iter()
        .map(|y| {
            candidates
                .iter()
                .map(|&c| {
                    if need_backtests {
                        backtest(c, y, m, h, levels, batch.windows, min_train)
                    } else {
                        Vec::new()
                    }
                })
                .collect()
        })
        .collect();
    let per_series: Vec<Vec<f64>> = runs
        .iter()
        .map(|r| r.iter().map(|w| mean_mase(w)).collect())
        .collect();
    // Group means over series where every candidate was scored.
    let complete: Vec<&Vec<f64>> = per_series
        .iter()
        .filter(|v| v.iter().all(|x| x.is_finite()))
        .collect();
    let group_mase: Vec<(Method, f64)> = candidates
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let v = if complete.is_empty() {
                f64::NAN
            } else {
                complete.iter().map(|s| s[i]).sum::<f64>() / complete.len() as f64
            };
            (c, v)
        })
        .collect();
    let scores: Vec<BacktestScore> = candidates
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let windows: Vec<&Window> = runs.iter().flat_map(|r| r[i].iter()).collect();
            let mean = |f: &dyn Fn(&Window) -> f64| finite_mean(windows.iter().map(|w| f(w)));
            let coverage = levels
                .iter()
                .enumerate()
                .map(|(j, &lv)| {
                    let all: Vec<f64> = windows
                        .iter()
                        .flat_map(|w| w.scores.get(j).into_iter().flatten().copied())
                        .filter(|s| !s.is_nan())
                        .collect();
                    let inside = all.iter().filter(|&&s| s <= 1.0).count();
                    (lv, inside as f64 / all.len().max(1) as f64)
                })
                .collect();
            BacktestScore {
                method: c.name(),
                windows: windows.len(),
                mase: mean(&|w| w.mase),
                smape: mean(&|w| w.smape),
                coverage,
            }
        })
        .collect();
    let group_best =
        lowest(group_mase.iter().map(|g| g.1)).map_or(candidates[0], |i| candidates[i]);
    // Phase 2: the choice per series.
    let chosen: Vec<Method> = per_series
        .iter()
        .map(|scores| match (batch.method, batch.selection) {
            (Some(m), _) => m,
            (None, Selection::Group) => group_best,
            (None, Selection::Series) => {
                lowest(scores.iter().copied()).map_or(group_best, |i| candidates[i])
            }
        })
        .collect();
    // Phase 3: final fits.
    let mut out: Vec<Result<SeriesForecast>> = series
        .par_iter()
        .zip(chosen.par_iter())
        .zip(per_series.par_iter())
        .map(|((y, &method), scores)| {
            let r = forecast_with_fallback(method, y, m, h, levels).map(|outcome| SeriesForecast {
                outcome,
                backtest: if batch.method.is_none() {
                    candidates
                        .iter()
                        .copied()
                        .zip(scores.iter().copied())
                        .collect()
                } else {
                    Vec::new()
                },
                calibrated: false,
            });
            progress();
            r
        })
        .collect();
    // Phase 4: calibration per method, from every series' windows of that method.
    let mut calibration = Vec::new();
    if batch.calibrate && !levels.is_empty() {
        for (i, &c) in candidates.iter().enumerate() {
            if let Some(cal) =
                Calibration::from_windows(runs.iter().flat_map(|r| r[i].iter()), levels, h)
            {
                calibration.push((c, cal));
            }
        }
        for r in out.iter_mut().flatten() {
            if r.outcome.fallback.is_some() {
                continue;
            }
            if let Some((_, cal)) = calibration.iter().find(|(c, _)| *c == r.outcome.method) {
                cal.apply(&mut r.outcome.forecast);
                r.calibrated = true;
            }
        }
    }
    Ok(BatchResult {
        series: out,
        calibration,
        group_mase,
        scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformal_quantile_is_the_ceiling_rank() {
        let mut s: Vec<f64> = (1..=19).map(f64::from).collect();
        // ⌈20 · 0.9⌉ = 18th smallest.
        assert_eq!(conformal_quantile(&mut s, 0.9), 18.0);
        assert_eq!(conformal_quantile(&mut s, 0.99), 19.0);
    }

    #[test]
    fn calibration_widens_intervals_that_were_too_narrow() {
        // Every held-out value fell at 1.5 half-widths: the 95 % factor is 1.5.
        let windows: Vec<Window> = (0..50)
            .map(|_| Window {
                mase: 1.0,
                smape: 10.0,
                scores: vec![vec![1.5; 2]],
            })
            .collect();
        let cal = Calibration::from_windows(&windows, &[95.0], 2).unwrap();
        assert_eq!(cal.factors, vec![vec![1.5, 1.5]]);
        let mut fc = Forecast {
            mean: vec![10.0, 10.0],
            intervals: vec![Interval {
                level: 95.0,
                lower: vec![8.0, 6.0],
                upper: vec![12.0, 14.0],
            }],
            model: "x".into(),
            fitted: Vec::new(),
        };
        cal.apply(&mut fc);
        assert_eq!(fc.intervals[0].lower, vec![7.0, 4.0]);
        assert_eq!(fc.intervals[0].upper, vec![13.0, 16.0]);
    }

    #[test]
    fn short_series_fall_back_and_say_so() {
        let y = [5.0, 6.0];
        let out = forecast_with_fallback(Method::Ets(None), &y, 12, 3, &[95.0]).unwrap();
        assert!(out.fallback.is_some(), "{out:?}");
        assert_eq!(out.forecast.mean.len(), 3);
    }

    #[test]
    fn auto_prefers_the_seasonal_method_on_a_seasonal_series() {
        let y: Vec<f64> = (0..96)
            .map(|t| 100.0 + 30.0 * if t % 12 < 3 { 1.0 } else { 0.0 } + ((t * 7) % 5) as f64)
            .collect();
        let c = choose(
            &[Method::Naive, Method::SeasonalNaive],
            &y,
            12,
            12,
            &[95.0],
            2,
        );
        assert_eq!(c.method, Method::SeasonalNaive);
        assert_eq!(c.windows.len(), 2);
    }
}
