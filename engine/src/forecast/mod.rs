//! Labour-demand forecasting: many short monthly or quarterly series (hires, vacancies by
//! sector and territory), 6–12 months ahead, with intervals.
//!
//! * [`ets`]: exponential smoothing in state-space form, chosen by AICc (R's `ets`,
//!   statsforecast's AutoETS);
//! * [`theta`]: the Theta method and its optimised and dynamic forms (Fiorucci et al.);
//! * [`baseline`]: naive, seasonal naive and the M4 "Comb";
//! * [`accuracy`]: sMAPE, MASE and interval coverage as the M competitions score them.
//!
//! Each method follows spec → `fit` → fitted model → `predict(h, levels)`, and is scored
//! on the M3 competition against statsforecast and the published results
//! (`benches/RESULTS.md`).

// Numerical code indexes several arrays in step; index loops read like the formulas.
#![allow(clippy::needless_range_loop)]

pub mod accuracy;
pub mod arima;
pub mod backtest;
pub mod baseline;
pub mod decompose;
pub mod ets;
pub mod hierarchy;
pub mod input;
mod optim;
pub mod runner;
pub mod theta;

use crate::{Error, Result};

/// Prediction interval at one level.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Nominal coverage in percent (e.g. 95).
    pub level: f64,
    /// Lower bounds, one per horizon.
    pub lower: Vec<f64>,
    /// Upper bounds, one per horizon.
    pub upper: Vec<f64>,
}

/// Point forecasts 1…h ahead with intervals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Forecast {
    /// Point forecasts.
    pub mean: Vec<f64>,
    /// One interval per asked level, in the order asked.
    pub intervals: Vec<Interval>,
    /// The model that produced them, e.g. `ETS(M,Ad,M)`.
    pub model: String,
    /// One-step in-sample fitted values on the data's scale (NaN where the method has
    /// none, e.g. the first season of the seasonal naive); their errors feed MinT.
    #[serde(default)]
    pub fitted: Vec<f64>,
}

impl Forecast {
    /// Clips point forecasts and bounds at zero: for counts (hires, vacancies) a negative
    /// value is impossible, and clipping never worsens a forecast of a non-negative value.
    pub fn clip_at_zero(&mut self) {
        let clip = |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x = x.max(0.0));
        clip(&mut self.mean);
        for iv in self.intervals.iter_mut() {
            clip(&mut iv.lower);
            clip(&mut iv.upper);
        }
    }
}

/// Levels must lie strictly between 0 and 100.
pub(crate) fn check_levels(levels: &[f64]) -> Result<()> {
    match levels.iter().find(|&&l| !(l > 0.0 && l < 100.0)) {
        Some(l) => Err(Error::Param {
            name: "levels",
            reason: format!("{l}: give coverage levels in percent, between 0 and 100 (e.g. 80,95)"),
        }),
        None => Ok(()),
    }
}

pub(crate) use crate::linalg::{normal_quantile, quantile_sorted, solve_spd_flat as solve_spd};

/// Sample variance (n − 1 denominator), 0 for fewer than two values.
pub(crate) fn sample_variance(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (x.len() - 1) as f64
}

/// Intervals from simulated paths (`paths[k]` holds the values k+1 steps ahead).
pub(crate) fn intervals_from_paths(paths: &mut [Vec<f64>], levels: &[f64]) -> Vec<Interval> {
    let mut out: Vec<Interval> = levels
        .iter()
        .map(|&lv| Interval {
            level: lv,
            lower: Vec::with_capacity(paths.len()),
            upper: Vec::with_capacity(paths.len()),
        })
        .collect();
    for path in paths.iter_mut() {
        path.retain(|v| v.is_finite());
        path.sort_by(f64::total_cmp);
        for iv in out.iter_mut() {
            let a = (100.0 - iv.level) / 200.0;
            iv.lower.push(quantile_sorted(path, a));
            iv.upper.push(quantile_sorted(path, 1.0 - a));
        }
    }
    out
}
