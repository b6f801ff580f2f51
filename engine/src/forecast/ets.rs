//! Exponential smoothing in state-space form (ETS): Hyndman, Koehler, Ord and Snyder
//! (2002, 2008), fitted by likelihood and chosen by AICc as R's `forecast::ets` and
//! statsforecast's AutoETS do.
//!
//! A model is named by its error, trend and season: ETS(A,N,N) is simple exponential
//! smoothing, ETS(A,Ad,N) the damped trend, ETS(M,A,M) multiplicative Holt–Winters. The
//! smoothing parameters and the initial states are estimated together by Nelder–Mead on
//! −2 log-likelihood (concentrated over σ²) within the "usual" bounds
//! (0 < β < α < 1, 0 < γ < 1 − α, 0.8 ≤ φ ≤ 0.98) and the admissible region of the
//! characteristic equation. Prediction intervals are analytic for the linear models
//! (additive error) and for multiplicative error with additive components (Hyndman et
//! al. 2008, ch. 6, classes 1 and 2), and simulated from the fitted model otherwise.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::optim::NelderMead;
use super::{Forecast, Interval, decompose};
use crate::{Error, Result};

/// One component of a model: none, additive or multiplicative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Component {
    /// Absent (N).
    None,
    /// Additive (A).
    Additive,
    /// Multiplicative (M).
    Multiplicative,
}

impl Component {
    fn letter(self) -> char {
        match self {
            Component::None => 'N',
            Component::Additive => 'A',
            Component::Multiplicative => 'M',
        }
    }
    fn from_letter(c: char) -> Option<Self> {
        match c.to_ascii_uppercase() {
            'N' => Some(Component::None),
            'A' => Some(Component::Additive),
            'M' => Some(Component::Multiplicative),
            _ => None,
        }
    }
}

/// The structure of an ETS model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EtsType {
    /// Error: additive or multiplicative (never `None`).
    pub error: Component,
    /// Trend.
    pub trend: Component,
    /// Whether the trend is damped (only with a trend).
    pub damped: bool,
    /// Season.
    pub season: Component,
}

impl EtsType {
    /// Parses R's notation, e.g. `"MAM"`, `"AAdN"`, `"ANN"`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Param {
            name: "ets model",
            reason: format!("{s:?}: give error, trend and season letters such as ANN, AAdN, MAM"),
        };
        let chars: Vec<char> = s.chars().collect();
        let (e, t, d, se) = match chars.as_slice() {
            [e, t, se] => (*e, *t, false, *se),
            [e, t, 'd', se] => (*e, *t, true, *se),
            _ => return Err(bad()),
        };
        let ty = EtsType {
            error: Component::from_letter(e).ok_or_else(bad)?,
            trend: Component::from_letter(t).ok_or_else(bad)?,
            damped: d,
            season: Component::from_letter(se).ok_or_else(bad)?,
        };
        if ty.error == Component::None || (ty.damped && ty.trend == Component::None) {
            return Err(bad());
        }
        Ok(ty)
    }

    /// R's short form, e.g. `"MAdM"`.
    pub fn code(&self) -> String {
        let mut s = String::new();
        s.push(self.error.letter());
        s.push(self.trend.letter());
        if self.damped {
            s.push('d');
        }
        s.push(self.season.letter());
        s
    }

    /// Models that R restricts by default because they are numerically unstable:
    /// additive error with a multiplicative trend or season, and a multiplicative trend
    /// with additive season under multiplicative error.
    fn restricted(&self) -> bool {
        (self.error == Component::Additive
            && (self.trend == Component::Multiplicative
                || self.season == Component::Multiplicative))
            || (self.error == Component::Multiplicative
                && self.trend == Component::Multiplicative
                && self.season == Component::Additive)
    }
}

impl std::fmt::Display for EtsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ETS({},{}{},{})",
            self.error.letter(),
            self.trend.letter(),
            if self.damped { "d" } else { "" },
            self.season.letter()
        )
    }
}

/// Information criterion used to choose among models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Criterion {
    /// Akaike's criterion corrected for small samples (the default, as in R).
    #[default]
    Aicc,
    /// Akaike's criterion.
    Aic,
    /// Schwarz's Bayesian criterion.
    Bic,
}

/// Specification of an ETS fit: one model, or the automatic choice among all admissible
/// ones.
///
/// ```
/// use occupa_engine::forecast::ets::Ets;
/// let y: Vec<f64> = (0..48)
///     .map(|t| 100.0 + t as f64 + 10.0 * ((t % 12) as f64 - 5.5).abs())
///     .collect();
/// let fit = Ets::auto(12).fit(&y)?;
/// let fc = fit.predict(12, &[80.0, 95.0])?;
/// assert_eq!(fc.mean.len(), 12);
/// assert!(fc.intervals[1].lower[0] < fc.intervals[0].lower[0]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ets {
    season: usize,
    model: Option<EtsType>,
    criterion: Criterion,
    allow_multiplicative_trend: bool,
    admissible: bool,
    optimiser: NelderMead,
}

/// Lower and upper bounds of α, β, γ, φ (R's defaults).
const LOWER: [f64; 4] = [1e-4, 1e-4, 1e-4, 0.8];
const UPPER: [f64; 4] = [0.9999, 0.9999, 0.9999, 0.98];
/// Seasonal periods above this are not modelled by ETS (R's limit).
pub const MAX_SEASON: usize = 24;

impl Ets {
    /// Automatic choice for a season of length `m` (1 for none).
    pub fn auto(m: usize) -> Self {
        Self {
            season: m.max(1),
            model: None,
            criterion: Criterion::Aicc,
            allow_multiplicative_trend: false,
            admissible: true,
            optimiser: NelderMead::default(),
        }
    }

    /// One given model.
    pub fn model(m: usize, model: EtsType) -> Self {
        Self {
            model: Some(model),
            ..Self::auto(m)
        }
    }

    /// Choose by `criterion` (default AICc).
    pub fn criterion(mut self, criterion: Criterion) -> Self {
        self.criterion = criterion;
        self
    }

    /// Include multiplicative trends in the automatic choice (R's default leaves them out:
    /// they forecast explosively).
    pub fn allow_multiplicative_trend(mut self, yes: bool) -> Self {
        self.allow_multiplicative_trend = yes;
        self
    }

    /// Whether the parameters must also lie in the admissible (forecastable) region;
    /// `false` keeps only the usual bounds, as statsforecast does.
    pub fn admissible(mut self, yes: bool) -> Self {
        self.admissible = yes;
        self
    }

    /// The candidate models for data `y`.
    fn candidates(&self, y: &[f64]) -> Result<Vec<EtsType>> {
        let positive = y.iter().all(|&v| v > 0.0);
        let seasonal_ok = self.season > 1 && self.season <= MAX_SEASON && y.len() > self.season;
        if let Some(model) = self.model {
            if model.season != Component::None && self.season <= 1 {
                return Err(Error::Param {
                    name: "ets model",
                    reason: format!(
                        "{model} has a season but the season length is 1; give --season"
                    ),
                });
            }
            if model.season != Component::None && self.season > MAX_SEASON {
                return Err(Error::Param {
                    name: "ets model",
                    reason: format!(
                        "{model}: a season of {} periods is longer than ETS handles ({MAX_SEASON}); \
                         use a non-seasonal model or theta",
                        self.season
                    ),
                });
            }
            if model.season != Component::None && y.len() <= self.season {
                return Err(Error::Estimation {
                    method: "ets",
                    reason: format!(
                        "{model} needs more than one full season of data ({} points for a season of {})",
                        y.len(),
                        self.season
                    ),
                });
            }
            let multiplicative = model.error == Component::Multiplicative
                || model.trend == Component::Multiplicative
                || model.season == Component::Multiplicative;
            if multiplicative && !positive {
                return Err(Error::Estimation {
                    method: "ets",
                    reason: format!(
                        "{model} has multiplicative components, which need all values above 0"
                    ),
                });
            }
            return Ok(vec![model]);
        }
        let mut out = Vec::new();
        let trends: &[Component] = if self.allow_multiplicative_trend {
            &[
                Component::None,
                Component::Additive,
                Component::Multiplicative,
            ]
        } else {
            &[Component::None, Component::Additive]
        };
        let seasons: &[Component] = if seasonal_ok {
            &[
                Component::None,
                Component::Additive,
                Component::Multiplicative,
            ]
        } else {
            &[Component::None]
        };
        for &error in &[Component::Additive, Component::Multiplicative] {
            for &trend in trends {
                for &season in seasons {
                    for damped in [false, true] {
                        let ty = EtsType {
                            error,
                            trend,
                            damped,
                            season,
                        };
                        if (damped && trend == Component::None) || ty.restricted() {
                            continue;
                        }
                        let multiplicative = error == Component::Multiplicative
                            || trend == Component::Multiplicative
                            || season == Component::Multiplicative;
                        if multiplicative && !positive {
                            continue;
                        }
                        out.push(ty);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Fits the model (or every candidate, keeping the best by the criterion).
    pub fn fit(&self, y: &[f64]) -> Result<FittedEts> {
        if y.len() < 3 {
            return Err(Error::Estimation {
                method: "ets",
                reason: format!("{} observations; ETS needs at least 3", y.len()),
            });
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Estimation {
                method: "ets",
                reason: format!("value {} is missing or not finite; fill gaps first", i + 1),
            });
        }
        if self.model.is_none() && y.iter().all(|&v| v == y[0]) {
            // A constant series: the level is the value (R fits ANN with α fixed).
            return Ok(FittedEts::constant(y));
        }
        let mut best: Option<FittedEts> = None;
        let mut last_reason = String::from("no model could be fitted");
        for ty in self.candidates(y)? {
            match fit_model(y, self.season, ty, self.admissible, &self.optimiser) {
                Ok(fit) => {
                    let ic = fit.criterion(self.criterion);
                    if ic.is_finite()
                        && best
                            .as_ref()
                            .is_none_or(|b| ic < b.criterion(self.criterion))
                    {
                        best = Some(fit);
                    }
                }
                Err(e) => last_reason = e.to_string(),
            }
        }
        best.ok_or(Error::Estimation {
            method: "ets",
            reason: last_reason,
        })
    }
}

/// A fitted ETS model.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FittedEts {
    /// The model.
    pub model: EtsType,
    /// Season length used (1 for non-seasonal models).
    pub m: usize,
    /// Smoothing parameter of the level.
    pub alpha: f64,
    /// Smoothing parameter of the trend (0 without one).
    pub beta: f64,
    /// Smoothing parameter of the season (0 without one).
    pub gamma: f64,
    /// Damping (1 when undamped).
    pub phi: f64,
    /// Initial states: level, trend (if any), then the m seasonal states, the one of the
    /// first observation first.
    pub initial: Vec<f64>,
    /// Final level.
    pub level: f64,
    /// Final trend (0 or 1 without one, by trend form).
    pub slope: f64,
    /// Final seasonal states; `season[j]` applies to the (j+1)-th period ahead.
    pub season: Vec<f64>,
    /// −2 log-likelihood up to a constant (R's `lik`).
    pub lik: f64,
    /// Number of parameters including σ².
    pub n_params: usize,
    /// Number of observations.
    pub n: usize,
    /// Innovation variance (sum of squared residuals over n − parameters).
    pub sigma2: f64,
    /// One-step residuals (relative errors for multiplicative error).
    pub residuals: Vec<f64>,
    /// One-step fitted values.
    pub fitted: Vec<f64>,
}

impl FittedEts {
    fn constant(y: &[f64]) -> Self {
        Self {
            model: EtsType {
                error: Component::Additive,
                trend: Component::None,
                damped: false,
                season: Component::None,
            },
            m: 1,
            alpha: 0.9999,
            beta: 0.0,
            gamma: 0.0,
            phi: 1.0,
            initial: vec![y[0]],
            level: y[0],
            slope: 0.0,
            season: Vec::new(),
            lik: f64::NEG_INFINITY,
            n_params: 2,
            n: y.len(),
            sigma2: 0.0,
            residuals: vec![0.0; y.len()],
            fitted: y.to_vec(),
        }
    }

    /// Akaike's criterion.
    pub fn aic(&self) -> f64 {
        self.lik + 2.0 * self.n_params as f64
    }
    /// Akaike's criterion corrected for small samples (∞ when n ≤ k + 1).
    pub fn aicc(&self) -> f64 {
        let k = self.n_params as f64;
        let n = self.n as f64;
        if n - k - 1.0 <= 0.0 {
            return f64::INFINITY;
        }
        self.aic() + 2.0 * k * (k + 1.0) / (n - k - 1.0)
    }
    /// Schwarz's criterion.
    pub fn bic(&self) -> f64 {
        self.lik + (self.n as f64).ln() * self.n_params as f64
    }
    fn criterion(&self, c: Criterion) -> f64 {
        match c {
            Criterion::Aicc => self.aicc(),
            Criterion::Aic => self.aic(),
            Criterion::Bic => self.bic(),
        }
    }

    fn params(&self) -> Params {
        Params {
            ty: self.model,
            m: self.m,
            alpha: self.alpha,
            beta: self.beta,
            gamma: self.gamma,
            phi: self.phi,
        }
    }

    /// Point forecasts 1…h ahead.
    pub fn point(&self, h: usize) -> Vec<f64> {
        let p = self.params();
        (1..=h)
            .map(|k| p.forecast(self.level, self.slope, &self.season, 0, k))
            .collect()
    }

    /// Forecasts `h` periods ahead with intervals at `levels` (in percent).
    pub fn predict(&self, h: usize, levels: &[f64]) -> Result<Forecast> {
        super::check_levels(levels)?;
        let mean = self.point(h);
        let intervals = if levels.is_empty() {
            Vec::new()
        } else if let Some(var) = self.analytic_variance(&mean) {
            levels
                .iter()
                .map(|&lv| {
                    let z = super::normal_quantile(0.5 + lv / 200.0);
                    Interval {
                        level: lv,
                        lower: mean
                            .iter()
                            .zip(&var)
                            .map(|(f, v)| f - z * v.sqrt())
                            .collect(),
                        upper: mean
                            .iter()
                            .zip(&var)
                            .map(|(f, v)| f + z * v.sqrt())
                            .collect(),
                    }
                })
                .collect()
        } else {
            self.simulated_intervals(h, levels)
        };
        Ok(Forecast {
            mean,
            intervals,
            model: self.model.to_string(),
            fitted: self.fitted.clone(),
        })
    }

    /// Forecast variances of the linear models (class 1) and of multiplicative error with
    /// additive components (class 2); `None` for the others.
    fn analytic_variance(&self, mean: &[f64]) -> Option<Vec<f64>> {
        let ty = self.model;
        if ty.trend == Component::Multiplicative || ty.season == Component::Multiplicative {
            return None;
        }
        let h = mean.len();
        // c_j = w′F^{j−1}g for the linear structure: state (ℓ, b, s₁…s_m), s₁ newest.
        let m = self.m;
        let has_trend = ty.trend != Component::None;
        let has_season = ty.season != Component::None;
        let (mut l, mut b) = (self.alpha, if has_trend { self.beta } else { 0.0 });
        let mut s = vec![0.0; if has_season { m } else { 0 }];
        if has_season {
            s[0] = self.gamma;
        }
        let mut c = Vec::with_capacity(h);
        for _ in 1..h {
            let sm = if has_season { s[m - 1] } else { 0.0 };
            c.push(l + self.phi * b + sm);
            // x ← F x
            l += self.phi * b;
            b *= self.phi;
            if has_season {
                s.rotate_right(1);
            }
        }
        let sigma2 = self.sigma2;
        match ty.error {
            Component::Multiplicative => {
                // θ_h = μ_h² + σ² Σ_{j<h} c_j² θ_{h−j};  v_h = (1 + σ²) θ_h − μ_h².
                let mut theta = Vec::with_capacity(h);
                for k in 0..h {
                    let mut t = mean[k] * mean[k];
                    for j in 1..=k {
                        t += sigma2 * c[j - 1] * c[j - 1] * theta[k - j];
                    }
                    theta.push(t);
                }
                Some(
                    (0..h)
                        .map(|k| ((1.0 + sigma2) * theta[k] - mean[k] * mean[k]).max(0.0))
                        .collect(),
                )
            }
            _ => {
                let mut acc = 0.0;
                let mut out = Vec::with_capacity(h);
                out.push(sigma2);
                for cj in &c {
                    acc += cj * cj;
                    out.push(sigma2 * (1.0 + acc));
                }
                Some(out)
            }
        }
    }

    /// Quantiles of 5,000 simulated paths (seeded: the same fit gives the same intervals).
    fn simulated_intervals(&self, h: usize, levels: &[f64]) -> Vec<Interval> {
        const PATHS: usize = 5_000;
        let p = self.params();
        let sd = self.sigma2.max(0.0).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(0x0cc0_9a5e);
        let mut paths = vec![Vec::with_capacity(PATHS); h];
        let mut s = self.season.clone();
        for _ in 0..PATHS {
            let (mut l, mut b) = (self.level, self.slope);
            s.copy_from_slice(&self.season);
            let mut head = 0;
            for path in paths.iter_mut() {
                let f = p.forecast(l, b, &s, head, 1);
                let z: f64 = StandardNormal.sample(&mut rng);
                let e = sd * z;
                let y = match p.ty.error {
                    Component::Multiplicative => f * (1.0 + e),
                    _ => f + e,
                };
                path.push(y);
                (l, b) = p.update(l, b, &mut s, &mut head, y);
            }
        }
        super::intervals_from_paths(&mut paths, levels)
    }
}

/// The smoothing parameters of one evaluation.
#[derive(Debug, Clone, Copy)]
struct Params {
    ty: EtsType,
    m: usize,
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

/// Tiny values below which divisions are guarded, as in R's C code.
const TOL: f64 = 1e-10;
const HUGE: f64 = 1e10;

impl Params {
    /// The k-step forecast (k ≥ 1) from state (ℓ, b) and the seasonal ring `s` whose
    /// entry at `head` applies to the next period.
    #[inline]
    fn forecast(&self, l: f64, b: f64, s: &[f64], head: usize, k: usize) -> f64 {
        let phistar = if self.phi == 1.0 {
            k as f64
        } else {
            // φ + φ² + … + φ^k
            self.phi * (1.0 - self.phi.powi(k as i32)) / (1.0 - self.phi)
        };
        let base = match self.ty.trend {
            Component::None => l,
            Component::Additive => l + phistar * b,
            Component::Multiplicative => {
                if b < 0.0 {
                    f64::NAN
                } else {
                    l * b.powf(phistar)
                }
            }
        };
        match self.ty.season {
            Component::None => base,
            Component::Additive => base + s[(head + k - 1) % self.m],
            Component::Multiplicative => base * s[(head + k - 1) % self.m],
        }
    }

    /// One step of the state recursion given observation `y` (the same for additive and
    /// multiplicative errors). Returns the new level and trend; writes the new seasonal
    /// state into the ring and advances `head`.
    #[inline]
    fn update(&self, l: f64, b: f64, s: &mut [f64], head: &mut usize, y: f64) -> (f64, f64) {
        let (q, phib) = match self.ty.trend {
            Component::None => (l, 0.0),
            Component::Additive => {
                let pb = self.phi * b;
                (l + pb, pb)
            }
            Component::Multiplicative => {
                let pb = if self.phi == 1.0 { b } else { b.powf(self.phi) };
                (l * pb, pb)
            }
        };
        let old_s = if self.ty.season == Component::None {
            0.0
        } else {
            s[*head]
        };
        let p = match self.ty.season {
            Component::None => y,
            Component::Additive => y - old_s,
            Component::Multiplicative => {
                if old_s.abs() < TOL {
                    HUGE
                } else {
                    y / old_s
                }
            }
        };
        let new_l = q + self.alpha * (p - q);
        let new_b = match self.ty.trend {
            Component::None => b,
            Component::Additive => phib + (self.beta / self.alpha) * (new_l - l - phib),
            Component::Multiplicative => {
                let r = if l.abs() < TOL { HUGE } else { new_l / l };
                phib + (self.beta / self.alpha) * (r - phib)
            }
        };
        if self.ty.season != Component::None {
            let t = match self.ty.season {
                Component::Additive => y - q,
                _ => {
                    if q.abs() < TOL {
                        HUGE
                    } else {
                        y / q
                    }
                }
            };
            s[*head] = old_s + self.gamma * (t - old_s);
            *head = (*head + 1) % self.m;
        }
        (new_l, new_b)
    }

    /// The usual bounds: each parameter in its box, β ≤ α, γ ≤ 1 − α.
    fn usual(&self) -> bool {
        let in_box = |v: f64, i: usize| v >= LOWER[i] && v <= UPPER[i];
        if !in_box(self.alpha, 0) {
            return false;
        }
        if self.ty.trend != Component::None && (!in_box(self.beta, 1) || self.beta > self.alpha) {
            return false;
        }
        if self.ty.season != Component::None
            && (!in_box(self.gamma, 2) || self.gamma > 1.0 - self.alpha)
        {
            return false;
        }
        if self.ty.damped && !in_box(self.phi, 3) {
            return false;
        }
        true
    }

    /// The admissible (forecastable) region of Hyndman et al. (2008), ch. 10: simple
    /// inequalities, then the roots of the characteristic polynomial inside the unit
    /// circle.
    fn admissible(&self) -> bool {
        let phi = if self.ty.damped { self.phi } else { 1.0 };
        let alpha = self.alpha;
        let has_trend = self.ty.trend != Component::None;
        if !(0.0..=1.0 + 1e-8).contains(&phi) {
            return false;
        }
        if self.ty.season == Component::None {
            if alpha < 1.0 - 1.0 / phi || alpha > 1.0 + 1.0 / phi {
                return false;
            }
            if has_trend
                && (self.beta < alpha * (phi - 1.0) || self.beta > (1.0 + phi) * (2.0 - alpha))
            {
                return false;
            }
            return true;
        }
        let m = self.m as f64;
        let beta = if has_trend { self.beta } else { 0.0 };
        let gamma = self.gamma;
        if gamma < (1.0 - 1.0 / phi - alpha).max(0.0) || gamma > 1.0 + 1.0 / phi - alpha {
            return false;
        }
        if alpha < 1.0 - 1.0 / phi - gamma * (1.0 - m + phi + phi * m) / (2.0 * phi * m) {
            return false;
        }
        if beta < -(1.0 - phi) * (gamma / m + alpha) {
            return false;
        }
        roots_within(
            &characteristic(alpha, beta, gamma, phi, self.m),
            1.0 + 1e-10,
        )
    }
}

/// The characteristic polynomial of a seasonal ETS model, lowest power first:
/// φ(1−α−γ) + (α+β−αφ+γ−1) z + (α+β−αφ)(z² + … + z^{m−1}) + (α+β−φ) z^m + z^{m+1}.
fn characteristic(alpha: f64, beta: f64, gamma: f64, phi: f64, m: usize) -> Vec<f64> {
    let mut p = vec![0.0; m + 2];
    p[0] = phi * (1.0 - alpha - gamma);
    p[1] = alpha + beta - alpha * phi + gamma - 1.0;
    for c in p.iter_mut().take(m).skip(2) {
        *c = alpha + beta - alpha * phi;
    }
    p[m] = alpha + beta - phi;
    p[m + 1] = 1.0;
    p
}

/// Whether every root of the polynomial Σ pᵢ zⁱ (leading coefficient non-zero) has
/// modulus at most `radius`: the Schur–Cohn test on the polynomial rescaled by `radius`,
/// which needs no root finding.
fn roots_within(p: &[f64], radius: f64) -> bool {
    // On the stack: this runs at every objective evaluation of a seasonal model.
    let mut a = [0.0f64; MAX_SEASON + 2];
    let mut b = [0.0f64; MAX_SEASON + 2];
    if p.len() > a.len() {
        return false;
    }
    // q(w) = p(radius·w): roots of q are roots of p divided by radius.
    let mut scale = 1.0;
    for (i, c) in p.iter().enumerate() {
        a[i] = c * scale;
        scale *= radius;
    }
    let mut len = p.len();
    while len > 1 {
        let n = len - 1;
        let lead = a[n];
        if lead == 0.0 {
            return false;
        }
        // Reflection coefficient: constant over leading coefficient.
        let k = a[0] / lead;
        if !k.is_finite() || k.abs() >= 1.0 {
            return false;
        }
        // Step down to degree n − 1 (the Levinson recursion run backwards), which keeps
        // the roots-inside property; rescaled to a unit leading coefficient, without
        // which the coefficients shrink by lead² − a₀² each step and underflow on
        // seasonal polynomials.
        for i in 0..n {
            b[i] = lead * a[i + 1] - a[0] * a[n - 1 - i];
        }
        let top = b[n - 1];
        for i in 0..n {
            a[i] = b[i] / top;
        }
        len = n;
    }
    true
}

/// R's starting values of the smoothing parameters (`initparam`).
fn initial_params(ty: EtsType, m: usize) -> Vec<f64> {
    let mut par = Vec::with_capacity(4);
    let mut alpha = LOWER[0] + 0.2 * (UPPER[0] - LOWER[0]) / m as f64;
    if !(0.0..=1.0).contains(&alpha) {
        alpha = LOWER[0] + 2e-3;
    }
    par.push(alpha);
    if ty.trend != Component::None {
        let upper = UPPER[1].min(alpha);
        let mut beta = LOWER[1] + 0.1 * (upper - LOWER[1]);
        if beta < 0.0 || beta > alpha {
            beta = alpha - 1e-3;
        }
        par.push(beta);
    }
    if ty.season != Component::None {
        let upper = UPPER[2].min(1.0 - alpha);
        let mut gamma = LOWER[2] + 0.05 * (upper - LOWER[2]);
        if gamma < 0.0 || gamma > 1.0 - alpha {
            gamma = 1.0 - alpha - 1e-3;
        }
        par.push(gamma);
    }
    if ty.damped {
        let mut phi = LOWER[3] + 0.99 * (UPPER[3] - LOWER[3]);
        if !(0.0..=1.0).contains(&phi) {
            phi = UPPER[3] - 1e-3;
        }
        par.push(phi);
    }
    par
}

/// R's starting states (`initstate`): the seasonal indices of a classical decomposition
/// (or of a linear trend plus one Fourier pair for fewer than three seasons), then level
/// and trend from a regression on the first max(10, 2m) seasonally adjusted values. The
/// seasonal part holds m − 1 free states, most recent first; the last is implied.
fn initial_states(y: &[f64], m: usize, ty: EtsType) -> Result<Vec<f64>> {
    let n = y.len();
    let mut states = Vec::new();
    let (adjusted, seas): (Vec<f64>, Vec<f64>) = if ty.season != Component::None {
        if n < 4 {
            return Err(Error::Estimation {
                method: "ets",
                reason: "a seasonal model needs at least 4 observations".into(),
            });
        }
        let form = if ty.season == Component::Additive {
            decompose::SeasonalForm::Additive
        } else {
            decompose::SeasonalForm::Multiplicative
        };
        let seasonal = if n < 3 * m {
            fourier_seasonal(y, m, ty.season)?
        } else {
            decompose::seasonal_component(y, m, form).ok_or(Error::Estimation {
                method: "ets",
                reason: "the seasonal decomposition failed".into(),
            })?
        };
        // s₀ … s_{m−2} = seasonal[m−1], …, seasonal[1] (R: rev(seasonal[2:m])).
        let mut init: Vec<f64> = (1..m).rev().map(|t| seasonal[t]).collect();
        let adjusted = if ty.season == Component::Additive {
            y.iter().zip(&seasonal).map(|(v, s)| v - s).collect()
        } else {
            init.iter_mut().for_each(|v| *v = v.max(1e-2));
            let sum: f64 = init.iter().sum();
            if sum > m as f64 {
                let d: f64 = init.iter().map(|v| v + 1e-2).sum();
                init.iter_mut().for_each(|v| *v /= d);
            }
            y.iter()
                .zip(&seasonal)
                .map(|(v, s)| v / s.max(1e-2))
                .collect()
        };
        (adjusted, init)
    } else {
        (y.to_vec(), Vec::new())
    };
    let period = if ty.season == Component::None { 1 } else { m };
    let maxn = (10usize.max(2 * period)).min(n);
    let head = &adjusted[..maxn];
    match ty.trend {
        Component::None => states.push(head.iter().sum::<f64>() / maxn as f64),
        trend => {
            // Least squares on t = 1…maxn: the intercept is the level at t = 0.
            let tm = (maxn as f64 + 1.0) / 2.0;
            let ym = head.iter().sum::<f64>() / maxn as f64;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for (i, v) in head.iter().enumerate() {
                let d = i as f64 + 1.0 - tm;
                sxy += d * (v - ym);
                sxx += d * d;
            }
            let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            let intercept = ym - slope * tm;
            if trend == Component::Additive {
                let (mut l0, mut b0) = (intercept, slope);
                if (l0 + b0).abs() < 1e-8 {
                    l0 *= 1.0 + 1e-3;
                    b0 *= 1.0 - 1e-3;
                }
                states.push(l0);
                states.push(b0);
            } else {
                let mut l0 = intercept + slope;
                if l0.abs() < 1e-8 {
                    l0 = 1e-7;
                }
                let mut b0 = (intercept + 2.0 * slope) / l0;
                l0 /= if b0.abs() < 1e-8 { 1e-8 } else { b0 };
                if b0.abs() > 1e10 {
                    b0 = b0.signum() * 1e10;
                }
                if l0 < 1e-8 || b0 < 1e-8 {
                    l0 = adjusted[0].max(1e-3);
                    let d = if adjusted[0].abs() < 1e-8 {
                        1e-8
                    } else {
                        adjusted[0]
                    };
                    b0 = (adjusted[1] / d).max(1e-3);
                }
                states.push(l0);
                states.push(b0);
            }
        }
    }
    states.extend(seas);
    Ok(states)
}

/// Seasonal indices from a regression on a linear trend and one Fourier pair, for series
/// shorter than three seasons.
fn fourier_seasonal(y: &[f64], m: usize, season: Component) -> Result<Vec<f64>> {
    let n = y.len();
    let w = 2.0 * std::f64::consts::PI / m as f64;
    // Columns: 1, t, sin, cos (cos only when m = 2, where sin vanishes).
    let cols: usize = if m == 2 { 3 } else { 4 };
    let row = |t: usize| -> [f64; 4] {
        let tt = t as f64 + 1.0;
        [1.0, tt, (w * tt).cos(), (w * tt).sin()]
    };
    let mut xtx = vec![0.0; cols * cols];
    let mut xty = vec![0.0; cols];
    for (t, &v) in y.iter().enumerate() {
        let r = row(t);
        for i in 0..cols {
            xty[i] += r[i] * v;
            for j in 0..cols {
                xtx[i * cols + j] += r[i] * r[j];
            }
        }
    }
    let coef = super::solve_spd(&mut xtx, &mut xty, cols).ok_or(Error::Estimation {
        method: "ets",
        reason: "too few observations for starting seasonal values".into(),
    })?;
    Ok((0..n)
        .map(|t| {
            let trend = coef[0] + coef[1] * (t as f64 + 1.0);
            match season {
                Component::Additive => y[t] - trend,
                _ => y[t] / trend,
            }
        })
        .collect())
}

/// One pass of the model over the data: −2 log-likelihood up to a constant
/// (n ln Σe² + 2 Σ ln|ŷ| for multiplicative error), or NaN when a forecast is undefined.
/// `ring` holds the m seasonal states, the one for the first observation first.
fn likelihood(
    p: &Params,
    y: &[f64],
    l0: f64,
    b0: f64,
    ring: &mut [f64],
    residuals: Option<&mut Vec<f64>>,
) -> (f64, f64, f64, usize) {
    let (mut l, mut b) = (l0, b0);
    let mut head = 0;
    let mut sse = 0.0;
    let mut logs = 0.0;
    let multiplicative = p.ty.error == Component::Multiplicative;
    let mut res = residuals;
    for &obs in y {
        let f = p.forecast(l, b, ring, head, 1);
        if !f.is_finite() {
            return (f64::NAN, l, b, head);
        }
        let e = if multiplicative {
            let d = if f.abs() < TOL { f + TOL } else { f };
            (obs - f) / d
        } else {
            obs - f
        };
        if let Some(r) = res.as_deref_mut() {
            r.push(e);
        }
        sse += e * e;
        if multiplicative {
            let a = f.abs();
            logs += if a > 0.0 { a.ln() } else { (a + 1e-8).ln() };
        }
        (l, b) = p.update(l, b, ring, &mut head, obs);
    }
    let n = y.len() as f64;
    let mut lik = n * if sse > 0.0 {
        sse.ln()
    } else {
        (sse + 1e-8).ln()
    };
    if multiplicative {
        lik += 2.0 * logs;
    }
    (lik, l, b, head)
}

/// Component codes of the specialised likelihood kernel.
const N: u8 = 0;
const A: u8 = 1;
const M: u8 = 2;

fn code(c: Component) -> u8 {
    match c {
        Component::None => N,
        Component::Additive => A,
        Component::Multiplicative => M,
    }
}

/// −2 log-likelihood only, specialised at compile time for the error (`E`), trend (`T`)
/// and season (`S`) forms: the objective runs thousands of times per fit, and without
/// the per-step branches and the general k-step forecast it runs about three times
/// faster. Same arithmetic as [`likelihood`] (a unit test holds them equal).
fn likelihood_kernel<const E: u8, const T: u8, const S: u8>(
    p: &Params,
    y: &[f64],
    l0: f64,
    b0: f64,
    ring: &mut [f64],
) -> f64 {
    let (alpha, beta, gamma, phi) = (p.alpha, p.beta, p.gamma, p.phi);
    let beta_star = beta / alpha;
    let m = ring.len();
    let (mut l, mut b) = (l0, b0);
    let mut head = 0;
    let mut sse = 0.0;
    let mut logs = 0.0;
    // |ŷ| multiplied in blocks of 8 and logged once per block: one ln per 8 steps.
    let mut prod = 1.0;
    for (t, &obs) in y.iter().enumerate() {
        let (q, phib) = match T {
            N => (l, 0.0),
            A => {
                let pb = phi * b;
                (l + pb, pb)
            }
            _ => {
                if b < 0.0 {
                    return f64::NAN;
                }
                let pb = if phi == 1.0 { b } else { b.powf(phi) };
                (l * pb, pb)
            }
        };
        let old_s = if S == N { 0.0 } else { ring[head] };
        let f = match S {
            N => q,
            A => q + old_s,
            _ => q * old_s,
        };
        let e = if E == M {
            let d = if f.abs() < TOL { f + TOL } else { f };
            (obs - f) / d
        } else {
            obs - f
        };
        sse += e * e;
        if E == M {
            let a = f.abs();
            prod *= if a > 0.0 { a } else { a + 1e-8 };
            if t % 8 == 7 {
                logs += prod.ln();
                prod = 1.0;
            }
        }
        let pv = match S {
            N => obs,
            A => obs - old_s,
            _ => {
                if old_s.abs() < TOL {
                    HUGE
                } else {
                    obs / old_s
                }
            }
        };
        let new_l = q + alpha * (pv - q);
        match T {
            N => {}
            A => b = phib + beta_star * (new_l - l - phib),
            _ => {
                let r = if l.abs() < TOL { HUGE } else { new_l / l };
                b = phib + beta_star * (r - phib);
            }
        }
        if S != N {
            let tv = match S {
                A => obs - q,
                _ => {
                    if q.abs() < TOL {
                        HUGE
                    } else {
                        obs / q
                    }
                }
            };
            ring[head] = old_s + gamma * (tv - old_s);
            head += 1;
            if head == m {
                head = 0;
            }
        }
        l = new_l;
    }
    if !(sse.is_finite() && l.is_finite()) {
        return f64::NAN;
    }
    let n = y.len() as f64;
    let mut lik = n * if sse > 0.0 {
        sse.ln()
    } else {
        (sse + 1e-8).ln()
    };
    if E == M {
        logs += prod.ln();
        lik += 2.0 * logs;
    }
    lik
}

/// Dispatches to the kernel specialised for the model's forms.
fn fast_likelihood(p: &Params, y: &[f64], l0: f64, b0: f64, ring: &mut [f64]) -> f64 {
    macro_rules! go {
        ($($e:ident $t:ident $s:ident),*) => {
            match (code(p.ty.error), code(p.ty.trend), code(p.ty.season)) {
                $(($e, $t, $s) => likelihood_kernel::<$e, $t, $s>(p, y, l0, b0, ring),)*
                _ => likelihood(p, y, l0, b0, ring, None).0,
            }
        };
    }
    go!(A N N, A N A, A A N, A A A, M N N, M N A, M N M, M A N, M A A, M A M, M M N, M M M,
        A M N, A M A, A N M, A A M, A M M, M M A)
}

/// Builds the seasonal ring from the m − 1 free states (most recent first) as R does:
/// the implied state makes them sum to 0 (additive) or m (multiplicative).
fn ring_from_free(free: &[f64], m: usize, season: Component, ring: &mut [f64]) {
    let target = if season == Component::Multiplicative {
        m as f64
    } else {
        0.0
    };
    let implied = target - free.iter().sum::<f64>();
    // R's order: s₀ (lag 1) … s_{m−2}, then the implied s_{m−1} (lag m), which applies to
    // the first observation.
    ring[0] = implied;
    for j in 1..m {
        ring[j] = free[m - 1 - j];
    }
}

/// Fits one model by likelihood.
fn fit_model(
    y: &[f64],
    season: usize,
    ty: EtsType,
    admissible: bool,
    optimiser: &NelderMead,
) -> Result<FittedEts> {
    let m = if ty.season == Component::None {
        1
    } else {
        season
    };
    let par0 = initial_params(ty, m);
    let states0 = initial_states(y, m, ty)?;
    let n_smooth = par0.len();
    let n_state = states0.len();
    let n_par = n_smooth + n_state;
    if n_par + 1 >= y.len() {
        return Err(Error::Estimation {
            method: "ets",
            reason: format!(
                "{ty} has {n_par} parameters for {} observations; use a simpler model",
                y.len()
            ),
        });
    }
    let has_trend = ty.trend != Component::None;
    let has_season = ty.season != Component::None;
    let unpack = |x: &[f64]| -> Params {
        let mut i = 0;
        let mut next = || {
            i += 1;
            x[i - 1]
        };
        let alpha = next();
        let beta = if has_trend { next() } else { 0.0 };
        let gamma = if has_season { next() } else { 0.0 };
        let phi = if ty.damped { next() } else { 1.0 };
        Params {
            ty,
            m,
            alpha,
            beta,
            gamma,
            phi,
        }
    };
    let mut x0 = par0.clone();
    x0.extend_from_slice(&states0);
    let mut lower = vec![f64::NEG_INFINITY; n_par];
    let mut upper = vec![f64::INFINITY; n_par];
    {
        let mut j = 0;
        for (i, used) in [true, has_trend, has_season, ty.damped]
            .into_iter()
            .enumerate()
        {
            if used {
                lower[j] = LOWER[i];
                upper[j] = UPPER[i];
                j += 1;
            }
        }
    }
    let mut ring = vec![0.0; m];
    let objective = |x: &[f64]| -> f64 {
        let p = unpack(x);
        if !p.usual() || (admissible && !p.admissible()) {
            return f64::INFINITY;
        }
        let st = &x[n_smooth..];
        let l0 = st[0];
        let b0 = if has_trend { st[1] } else { 0.0 };
        if has_season {
            ring_from_free(&st[1 + has_trend as usize..], m, ty.season, &mut ring);
            if ty.season == Component::Multiplicative && ring.iter().any(|&v| v < 0.0) {
                return f64::INFINITY;
            }
        }
        let lik = fast_likelihood(&p, y, l0, b0, &mut ring);
        if lik.is_nan() {
            f64::INFINITY
        } else {
            lik.max(-1e10)
        }
    };
    let best = optimiser.minimise(objective, &x0, &lower, &upper);
    if !best.value.is_finite() {
        return Err(Error::Estimation {
            method: "ets",
            reason: format!("{ty}: no admissible parameters found"),
        });
    }
    let p = unpack(&best.x);
    let st = &best.x[n_smooth..];
    let l0 = st[0];
    let b0 = if has_trend { st[1] } else { 0.0 };
    let mut ring = vec![0.0; m];
    if has_season {
        ring_from_free(&st[1 + has_trend as usize..], m, ty.season, &mut ring);
    }
    let initial: Vec<f64> = {
        let mut v = vec![l0];
        if has_trend {
            v.push(b0);
        }
        if has_season {
            v.extend_from_slice(&ring);
        }
        v
    };
    let mut residuals = Vec::with_capacity(y.len());
    let (lik, l, b, head) = likelihood(&p, y, l0, b0, &mut ring, Some(&mut residuals));
    if !lik.is_finite() {
        return Err(Error::Estimation {
            method: "ets",
            reason: format!("{ty}: the likelihood is not finite at the optimum"),
        });
    }
    let n_params = n_par + 1;
    let sse: f64 = residuals.iter().map(|e| e * e).sum();
    let sigma2 = sse / (y.len() as f64 - n_params as f64);
    let season: Vec<f64> = if has_season {
        (0..m).map(|j| ring[(head + j) % m]).collect()
    } else {
        Vec::new()
    };
    Ok(FittedEts {
        model: ty,
        m,
        alpha: p.alpha,
        beta: p.beta,
        gamma: p.gamma,
        phi: p.phi,
        initial,
        level: l,
        slope: b,
        season,
        lik,
        n_params,
        n: y.len(),
        sigma2,
        fitted: y
            .iter()
            .zip(&residuals)
            .map(|(v, e)| match ty.error {
                Component::Multiplicative => v / (1.0 + e),
                _ => v - e,
            })
            .collect(),
        residuals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schur_cohn_agrees_with_known_roots() {
        // (z − 0.5)(z + 0.9) = z² + 0.4z − 0.45: inside.
        assert!(roots_within(&[-0.45, 0.4, 1.0], 1.0));
        // (z − 1.1)(z + 0.2) = z² − 0.9z − 0.22: outside.
        assert!(!roots_within(&[-0.22, -0.9, 1.0], 1.0));
        // Complex pair 0.95·e^{±iπ/3}: z² − 0.95z + 0.9025: inside.
        assert!(roots_within(&[0.9025, -0.95, 1.0], 1.0));
        // Modulus 1.05: z² − 1.05z + 1.1025: outside, inside a radius of 1.06.
        assert!(!roots_within(&[1.1025, -1.05, 1.0], 1.0));
        assert!(roots_within(&[1.1025, -1.05, 1.0], 1.06));
    }

    #[test]
    fn schur_cohn_survives_degree_thirteen() {
        // ETS(A,A,A), m = 12, α = 0.637, β = 0.172, γ = 0.0149 (φ = 1): the largest root
        // has modulus 0.99997 (numpy), which an unscaled step-down loses to underflow.
        let (alpha, beta, gamma, phi, m) = (0.636_961_687, 0.171_843_800, 0.014_874_959, 1.0, 12);
        let p = characteristic(alpha, beta, gamma, phi, m);
        assert!(roots_within(&p, 1.0 + 1e-10));
    }

    #[test]
    fn the_specialised_kernel_equals_the_general_pass() {
        let y: Vec<f64> = (0..50)
            .map(|t| 100.0 + t as f64 + 15.0 * ((t % 4) as f64 - 1.5) + ((t * 7) % 5) as f64)
            .collect();
        for code in [
            "ANN", "AAN", "AAdN", "ANA", "AAA", "AAdA", "MNN", "MAN", "MAdN", "MNA", "MAA", "MNM",
            "MAM", "MAdM", "MMN", "MMdM",
        ] {
            let ty = EtsType::parse(code).unwrap();
            let p = Params {
                ty,
                m: 4,
                alpha: 0.3,
                beta: 0.05,
                gamma: 0.1,
                phi: if ty.damped { 0.9 } else { 1.0 },
            };
            let l0 = 100.0;
            let b0 = if ty.trend == Component::Multiplicative {
                1.01
            } else {
                1.0
            };
            let init: Vec<f64> = if ty.season == Component::Multiplicative {
                vec![1.1, 0.9, 1.05, 0.95]
            } else {
                vec![10.0, -10.0, 5.0, -5.0]
            };
            let m = if ty.season == Component::None { 1 } else { 4 };
            let mut r1 = init[..m].to_vec();
            let mut r2 = init[..m].to_vec();
            let a = likelihood(&p, &y, l0, b0, &mut r1, None).0;
            let b = fast_likelihood(&p, &y, l0, b0, &mut r2);
            assert!(
                (a - b).abs() < 1e-9 * a.abs().max(1.0),
                "{code}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn parses_and_prints_model_codes() {
        let t = EtsType::parse("MAdM").unwrap();
        assert_eq!(t.to_string(), "ETS(M,Ad,M)");
        assert_eq!(t.code(), "MAdM");
        assert!(EtsType::parse("NNN").is_err());
        assert!(EtsType::parse("ANdN").is_err());
        assert!(EtsType::parse("AX").is_err());
    }

    #[test]
    fn recovers_a_simulated_local_level() {
        // ETS(A,N,N) with α = 0.3, σ = 1.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut l = 50.0;
        let y: Vec<f64> = (0..400)
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                let v = l + e;
                l += 0.3 * e;
                v
            })
            .collect();
        let fit = Ets::model(1, EtsType::parse("ANN").unwrap())
            .fit(&y)
            .unwrap();
        assert!((fit.alpha - 0.3).abs() < 0.08, "alpha {}", fit.alpha);
        assert!((fit.sigma2 - 1.0).abs() < 0.2, "sigma2 {}", fit.sigma2);
    }

    #[test]
    fn analytic_and_simulated_intervals_agree_for_a_linear_model() {
        let y: Vec<f64> = (0..60)
            .map(|t| 20.0 + 0.5 * t as f64 + 3.0 * ((t * 7 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let fit = Ets::model(1, EtsType::parse("AAN").unwrap())
            .fit(&y)
            .unwrap();
        let mean = fit.point(6);
        let var = fit.analytic_variance(&mean).unwrap();
        let sim = fit.simulated_intervals(6, &[95.0]);
        for k in 0..6 {
            let half = 1.959_964 * var[k].sqrt();
            let sim_half = (sim[0].upper[k] - sim[0].lower[k]) / 2.0;
            assert!(
                (sim_half / half - 1.0).abs() < 0.05,
                "h={k}: {sim_half} vs {half}"
            );
        }
    }
}
