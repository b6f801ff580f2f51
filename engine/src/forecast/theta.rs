//! The Theta method (Assimakopoulos and Nikolopoulos 2000, the best method of M3) in the
//! state-space forms of Fiorucci et al. (2016), as statsforecast's `AutoTheta` offers
//! them: the standard theta model (STM, θ = 2), the optimised theta model (OTM, θ
//! estimated) and their dynamic versions (DSTM, DOTM) whose trend line is updated
//! recursively. Seasonal series are first adjusted by a classical multiplicative
//! decomposition when the M3 seasonality test finds a season.
//!
//! The one-step forecast of period t+1 is
//! μ = ℓ_t + (1 − 1/θ)·(A (1−α)^t + B (1 − (1−α)^{t+1})/α),
//! where ℓ is simple exponential smoothing of the data and A, B the intercept and slope of
//! a straight line fitted to them. Parameters (ℓ₀, α, and θ for OTM/DOTM) minimise the
//! in-sample one-step squared errors (the first three left out), as in statsforecast.

use super::decompose::{self, Adjustment};
use super::optim::NelderMead;
use super::{Forecast, Interval};
use crate::{Error, Result};

/// Which theta model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ThetaModel {
    /// Standard theta model, θ = 2 (the classic Theta method).
    Stm,
    /// Optimised θ.
    Otm,
    /// Dynamic standard theta model.
    Dstm,
    /// Dynamic optimised theta model.
    Dotm,
}

impl ThetaModel {
    fn dynamic(self) -> bool {
        matches!(self, ThetaModel::Dstm | ThetaModel::Dotm)
    }
    fn optimised(self) -> bool {
        matches!(self, ThetaModel::Otm | ThetaModel::Dotm)
    }
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            ThetaModel::Stm => "STM",
            ThetaModel::Otm => "OTM",
            ThetaModel::Dstm => "DSTM",
            ThetaModel::Dotm => "DOTM",
        }
    }
}

/// Specification: one theta model, or the one of the four with the smallest in-sample
/// mean squared error (`auto`).
///
/// ```
/// use occupa_engine::forecast::theta::{Theta, ThetaModel};
/// let y: Vec<f64> = (0..40).map(|t| 10.0 + 0.5 * t as f64 + (t % 3) as f64).collect();
/// let fc = Theta::new(1, Some(ThetaModel::Stm)).fit(&y)?.predict(6, &[95.0])?;
/// assert!(fc.mean[5] > fc.mean[0]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Theta {
    season: usize,
    model: Option<ThetaModel>,
}

impl Theta {
    /// A theta model for season length `m` (1 for none); `None` chooses among all four.
    pub fn new(m: usize, model: Option<ThetaModel>) -> Self {
        Self {
            season: m.max(1),
            model,
        }
    }

    /// Fits to `y`.
    pub fn fit(&self, y: &[f64]) -> Result<FittedTheta> {
        if y.len() < 4 {
            return Err(Error::Estimation {
                method: "theta",
                reason: format!(
                    "{} observations; the theta method needs at least 4",
                    y.len()
                ),
            });
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Estimation {
                method: "theta",
                reason: format!("value {} is missing or not finite; fill gaps first", i + 1),
            });
        }
        let (adjusted, season) = decompose::seasonally_adjust(y, self.season);
        let models: Vec<ThetaModel> = match self.model {
            Some(m) => vec![m],
            None => vec![
                ThetaModel::Stm,
                ThetaModel::Otm,
                ThetaModel::Dstm,
                ThetaModel::Dotm,
            ],
        };
        let mut best: Option<Core> = None;
        for model in models {
            let core = fit_core(&adjusted, model);
            if core.mse.is_finite() && best.as_ref().is_none_or(|b| core.mse < b.mse) {
                best = Some(core);
            }
        }
        let core = best.ok_or(Error::Estimation {
            method: "theta",
            reason: "no theta model could be fitted".into(),
        })?;
        let mut fitted: Vec<f64> = adjusted
            .iter()
            .zip(&core.residuals)
            .map(|(a, e)| a - e)
            .collect();
        if let Some(s) = &season {
            s.reseasonalise_in_sample(&mut fitted);
        }
        Ok(FittedTheta {
            core,
            season,
            fitted,
        })
    }
}

/// States of the recursion: smoothed level, running mean, A, B, and the forecast μ.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct State {
    level: f64,
    mean: f64,
    a: f64,
    b: f64,
    mu: f64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Core {
    model: ThetaModel,
    alpha: f64,
    theta: f64,
    initial_level: f64,
    last: State,
    n: usize,
    residuals: Vec<f64>,
    mse: f64,
}

fn step(
    prev: &State,
    i: usize,
    model: ThetaModel,
    alpha: f64,
    theta: f64,
    observe: impl FnOnce(f64) -> f64,
) -> State {
    let decay = (1.0 - alpha).powi(i as i32);
    let mu = prev.level
        + (1.0 - 1.0 / theta) * (prev.a * decay + prev.b * (1.0 - decay * (1.0 - alpha)) / alpha);
    // The value the recursion continues with, given the forecast μ: the observation in
    // sample, μ itself when forecasting, μ plus a shock when simulating.
    let obs = observe(mu);
    let level = alpha * obs + (1.0 - alpha) * prev.level;
    let i_f = i as f64;
    let mean = (i_f * prev.mean + obs) / (i_f + 1.0);
    let (a, b) = if model.dynamic() {
        let b = ((i_f - 1.0) * prev.b + 6.0 * (obs - prev.mean) / (i_f + 1.0)) / (i_f + 2.0);
        (mean - b * (i_f + 2.0) / 2.0, b)
    } else {
        (prev.a, prev.b)
    };
    State {
        level,
        mean,
        a,
        b,
        mu,
    }
}

fn initial_state(y: &[f64], model: ThetaModel, l0: f64, alpha: f64, theta: f64) -> State {
    let (a, b, mu) = if model.dynamic() {
        (y[0], 0.0, y[0])
    } else {
        // The least-squares line through (1, y₁) … (n, y_n).
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let weighted = y
            .iter()
            .enumerate()
            .map(|(t, v)| (t as f64 + 1.0) * v)
            .sum::<f64>()
            / n;
        let b = 6.0 * (2.0 * weighted - (n + 1.0) * mean) / (n * n - 1.0);
        let a = mean - (n + 1.0) * b / 2.0;
        (a, b, l0 + (1.0 - 1.0 / theta) * (a + b))
    };
    State {
        level: alpha * y[0] + (1.0 - alpha) * l0,
        mean: y[0],
        a,
        b,
        mu,
    }
}

/// In-sample pass: one-step residuals and the last state.
fn pass(
    y: &[f64],
    model: ThetaModel,
    l0: f64,
    alpha: f64,
    theta: f64,
    residuals: &mut Vec<f64>,
) -> State {
    residuals.clear();
    let mut s = initial_state(y, model, l0, alpha, theta);
    residuals.push(y[0] - s.mu);
    for (i, &obs) in y.iter().enumerate().skip(1) {
        let next = step(&s, i, model, alpha, theta, |_| obs);
        residuals.push(obs - next.mu);
        s = next;
    }
    s
}

fn objective(residuals: &[f64]) -> f64 {
    let v: f64 = residuals.iter().skip(3).map(|e| e * e).sum();
    if v.is_finite() { v } else { f64::INFINITY }
}

fn fit_core(y: &[f64], model: ThetaModel) -> Core {
    let scale = (y.iter().map(|v| v.abs()).sum::<f64>() / y.len() as f64).max(1e-10);
    let mut x0 = vec![y[0] / 2.0, 0.5];
    let mut lower = vec![-1e10, 0.1];
    let mut upper = vec![1e10, 0.99];
    if model.optimised() {
        x0.push(2.0);
        lower.push(1.0);
        upper.push(1e10);
    }
    let mut buf = Vec::with_capacity(y.len());
    // statsforecast's stopping rule for theta (its objective is a scaled sum of squares,
    // not a log-likelihood).
    let nm = NelderMead {
        tol_std: 1e-4,
        ..NelderMead::default()
    };
    let best = nm.minimise(
        |x| {
            let theta = if model.optimised() { x[2] } else { 2.0 };
            pass(y, model, x[0], x[1], theta, &mut buf);
            objective(&buf) / scale
        },
        &x0,
        &lower,
        &upper,
    );
    let (l0, alpha) = (best.x[0], best.x[1]);
    let theta = if model.optimised() { best.x[2] } else { 2.0 };
    let mut residuals = Vec::with_capacity(y.len());
    let last = pass(y, model, l0, alpha, theta, &mut residuals);
    let mse = objective(&residuals) / (y.len().saturating_sub(3)).max(1) as f64;
    Core {
        model,
        alpha,
        theta,
        initial_level: l0,
        last,
        n: y.len(),
        residuals,
        mse,
    }
}

/// A fitted theta model.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FittedTheta {
    core: Core,
    season: Option<Adjustment>,
    /// One-step in-sample fitted values on the data's scale.
    fitted: Vec<f64>,
}

impl FittedTheta {
    /// The model chosen.
    pub fn model(&self) -> ThetaModel {
        self.core.model
    }
    /// Smoothing parameter.
    pub fn alpha(&self) -> f64 {
        self.core.alpha
    }
    /// θ (2 for the standard models).
    pub fn theta(&self) -> f64 {
        self.core.theta
    }
    /// Whether the series was seasonally adjusted first.
    pub fn seasonal(&self) -> bool {
        self.season.is_some()
    }

    /// Point forecasts of the adjusted series.
    fn adjusted_point(&self, h: usize) -> Vec<f64> {
        let c = &self.core;
        let mut s = c.last;
        (0..h)
            .map(|j| {
                s = step(&s, c.n + j, c.model, c.alpha, c.theta, |mu| mu);
                s.mu
            })
            .collect()
    }

    /// Forecasts `h` periods ahead with intervals at `levels` (percent). The variance of
    /// the h-step error of the standard models is σ²(1 + (h−1)α²), as for simple
    /// exponential smoothing; the dynamic models, whose line moves with each value, are
    /// widened by simulation.
    pub fn predict(&self, h: usize, levels: &[f64]) -> Result<Forecast> {
        super::check_levels(levels)?;
        let c = &self.core;
        let mut mean = self.adjusted_point(h);
        let tail = &c.residuals[3.min(c.residuals.len())..];
        let sigma2 = if tail.len() >= 2 {
            super::sample_variance(tail)
        } else {
            super::sample_variance(&c.residuals)
        };
        let mut intervals: Vec<Interval> = if c.model.dynamic() {
            self.simulate(h, sigma2.sqrt(), levels)
        } else {
            levels
                .iter()
                .map(|&lv| {
                    let z = super::normal_quantile(0.5 + lv / 200.0);
                    let half: Vec<f64> = (0..h)
                        .map(|k| z * (sigma2 * (1.0 + k as f64 * c.alpha * c.alpha)).sqrt())
                        .collect();
                    Interval {
                        level: lv,
                        lower: mean.iter().zip(&half).map(|(f, d)| f - d).collect(),
                        upper: mean.iter().zip(&half).map(|(f, d)| f + d).collect(),
                    }
                })
                .collect()
        };
        if let Some(season) = &self.season {
            season.reseasonalise_forecast(&mut mean, &mut intervals);
        }
        Ok(Forecast {
            mean,
            intervals,
            model: format!("Theta({})", c.model.name()),
            fitted: self.fitted.clone(),
        })
    }

    fn simulate(&self, h: usize, sd: f64, levels: &[f64]) -> Vec<Interval> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        const PATHS: usize = 5_000;
        let c = &self.core;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x7e7a);
        let mut paths = vec![Vec::with_capacity(PATHS); h];
        for _ in 0..PATHS {
            let mut s = c.last;
            for (j, path) in paths.iter_mut().enumerate() {
                let e: f64 = StandardNormal.sample(&mut rng);
                s = step(&s, c.n + j, c.model, c.alpha, c.theta, |mu| mu + sd * e);
                path.push(s.mu + sd * e);
            }
        }
        super::intervals_from_paths(&mut paths, levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_theta_extrapolates_half_the_trend_of_a_line() {
        // On an exact line the smoothed level lags, and STM's forecast continues the line
        // with the drift B/2 per period after the first step: the theta line θ = 2
        // doubles the curvature and θ = 0 is the regression line, averaged 50/50.
        let y: Vec<f64> = (1..=50).map(|t| 3.0 + 2.0 * t as f64).collect();
        let fit = Theta::new(1, Some(ThetaModel::Stm)).fit(&y).unwrap();
        let fc = fit.predict(3, &[]).unwrap();
        let step1 = fc.mean[1] - fc.mean[0];
        let step2 = fc.mean[2] - fc.mean[1];
        assert!((step1 - step2).abs() < 1e-6, "{step1} {step2}");
        assert!(fc.mean[0] > 100.0 && fc.mean[0] < 106.0, "{:?}", fc.mean);
    }

    #[test]
    fn seasonal_series_are_adjusted_and_reseasonalised() {
        let y: Vec<f64> = (0..72)
            .map(|t| (100.0 + t as f64) * if t % 12 == 11 { 1.5 } else { 1.0 })
            .collect();
        let fit = Theta::new(12, Some(ThetaModel::Stm)).fit(&y).unwrap();
        assert!(fit.seasonal());
        let fc = fit.predict(12, &[95.0]).unwrap();
        // The December peak is forecast in December (index 11 of the next year).
        let peak = (0..12)
            .max_by(|&a, &b| fc.mean[a].total_cmp(&fc.mean[b]))
            .unwrap();
        assert_eq!(peak, 11);
        assert!(fc.intervals[0].lower[11] < fc.mean[11] && fc.mean[11] < fc.intervals[0].upper[11]);
    }
}
