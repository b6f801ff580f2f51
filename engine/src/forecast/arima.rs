//! Seasonal ARIMA with automatic order selection (Hyndman and Khandakar 2008: KPSS and
//! seasonal tests for the differencing, a stepwise search over p, q, P, Q with and without
//! a constant or drift, AICc).
//!
//! The estimation and search are anofox-forecast's `AutoARIMA` (a port of R's
//! `auto.arima`), which met the issue's bar on M3 quarterly (sMAPE 10.09 against
//! statsforecast's 10.09, 14× faster; `benches/RESULTS.md`). It is the one model taken from
//! a dependency: writing the exact likelihood, the parameter transforms and the search
//! again would add nothing the measurement asked for. The crate is young, so it is pinned
//! exactly, a panic inside it becomes an error, and forecasts are checked for finiteness.

use anofox_forecast::core::TimeSeries;
use anofox_forecast::models::Forecaster;
use anofox_forecast::models::arima::AutoARIMA;
use chrono::{Months, TimeZone, Utc};

use super::{Forecast, Interval};
use crate::{Error, Result};

/// Automatic ARIMA for a season of length `m` (1 for none).
///
/// ```
/// use occupa_engine::forecast::arima::Arima;
/// let y: Vec<f64> = (0..40).map(|t| 50.0 + t as f64 + ((t * 7) % 5) as f64).collect();
/// let fc = Arima::auto(4).fit(&y)?.predict(8, &[95.0])?;
/// assert!(fc.mean[7] > fc.mean[0]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Arima {
    season: usize,
}

/// A fitted automatic ARIMA.
pub struct FittedArima {
    inner: AutoARIMA,
    name: String,
    n: usize,
}

impl std::fmt::Debug for FittedArima {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FittedArima({})", self.name)
    }
}

fn failed(reason: String) -> Error {
    Error::Estimation {
        method: "arima",
        reason,
    }
}

impl Arima {
    /// Automatic choice of orders for a season of length `m`.
    pub fn auto(m: usize) -> Self {
        Self { season: m.max(1) }
    }

    /// Fits to `y` (at least 2 full seasons plus a few values, or 8 values without one).
    pub fn fit(&self, y: &[f64]) -> Result<FittedArima> {
        let m = self.season;
        let min = if m > 1 { 2 * m + 3 } else { 8 };
        if y.len() < min {
            return Err(failed(format!(
                "{} observations; ARIMA needs at least {min} here",
                y.len()
            )));
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(failed(format!(
                "value {} is missing or not finite; fill gaps first",
                i + 1
            )));
        }
        // The crate wants timestamps; a calendar of m periods a year carries the season.
        let step = if m > 1 && 12 % m == 0 { 12 / m } else { 1 } as u32;
        let t0 = Utc
            .with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
            .single()
            .ok_or_else(|| failed("calendar".into()))?;
        let stamps: Vec<_> = (0..y.len())
            .map(|i| t0 + Months::new(step * i as u32))
            .collect();
        let series =
            TimeSeries::univariate(stamps, y.to_vec()).map_err(|e| failed(format!("{e}")))?;
        let mut inner = if m > 1 {
            AutoARIMA::seasonal(m)
        } else {
            AutoARIMA::new()
        };
        // A panic in the dependency must not take a batch of thousands of series down.
        let fit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.fit(&series).map(|_| inner)
        }));
        let inner = match fit {
            Ok(Ok(inner)) => inner,
            Ok(Err(e)) => return Err(failed(format!("{e}"))),
            Err(_) => return Err(failed("the ARIMA search failed on these data".into())),
        };
        let name = match inner.selected_full_order() {
            Some(o) if o.s > 1 && (o.cap_p + o.cap_d + o.cap_q) > 0 => format!(
                "ARIMA({},{},{})({},{},{})[{}]",
                o.p, o.d, o.q, o.cap_p, o.cap_d, o.cap_q, o.s
            ),
            Some(o) => format!("ARIMA({},{},{})", o.p, o.d, o.q),
            None => "ARIMA".into(),
        };
        Ok(FittedArima {
            inner,
            name,
            n: y.len(),
        })
    }
}

impl FittedArima {
    /// The model chosen, e.g. `ARIMA(0,1,1)(0,1,1)[12]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Forecasts `h` periods with intervals at `levels` (percent).
    pub fn predict(&self, h: usize, levels: &[f64]) -> Result<Forecast> {
        super::check_levels(levels)?;
        let run = |f: &dyn Fn() -> anofox_forecast::Result<anofox_forecast::core::Forecast>| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(Ok(fc)) => Ok(fc),
                Ok(Err(e)) => Err(failed(format!("{e}"))),
                Err(_) => Err(failed("the ARIMA forecast failed".into())),
            }
        };
        let point = run(&|| self.inner.predict(h))?;
        let mean = point.primary().to_vec();
        if mean.len() != h || mean.iter().any(|v| !v.is_finite()) {
            return Err(failed("the forecasts are not finite".into()));
        }
        let mut intervals = Vec::with_capacity(levels.len());
        for &lv in levels {
            let fc = run(&|| self.inner.predict_with_intervals(h, lv / 100.0))?;
            let (lower, upper) = match (fc.lower_series(0), fc.upper_series(0)) {
                (Ok(l), Ok(u)) if l.len() == h && u.len() == h => (l.to_vec(), u.to_vec()),
                _ => return Err(failed("no prediction intervals".into())),
            };
            intervals.push(Interval {
                level: lv,
                lower,
                upper,
            });
        }
        Ok(Forecast {
            mean,
            intervals,
            model: self.name.clone(),
            // In-sample fitted values on the data's scale are not exposed by the crate
            // for seasonal models; MinT then falls back to the other reconciliations.
            fitted: vec![f64::NAN; self.n],
        })
    }
}
