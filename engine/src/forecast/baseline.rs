//! Benchmarks every other method must beat: the naive and seasonal naive forecasts, and
//! the M4 competition's "Comb" (the average of simple, Holt's and damped exponential
//! smoothing on seasonally adjusted data).

use super::decompose;
use super::ets::{Ets, EtsType};
use super::{Forecast, Interval};
use crate::{Error, Result};

/// The last value (`m = 1`) or the value one season back (`m > 1`), with the intervals
/// of the random walk (seasonal random walk): σ²·⌈h/m⌉, σ² from the in-sample
/// m-differences.
pub fn seasonal_naive(y: &[f64], m: usize, h: usize, levels: &[f64]) -> Result<Forecast> {
    super::check_levels(levels)?;
    let m = m.max(1);
    if y.len() <= m {
        return Err(Error::Estimation {
            method: "seasonal naive",
            reason: format!("{} observations; needs more than one season ({m})", y.len()),
        });
    }
    let n = y.len();
    let mean: Vec<f64> = (0..h).map(|k| y[n - m + k % m]).collect();
    let diffs: Vec<f64> = (m..n).map(|t| y[t] - y[t - m]).collect();
    let sigma2 = diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64;
    let intervals = levels
        .iter()
        .map(|&lv| {
            let z = super::normal_quantile(0.5 + lv / 200.0);
            let half: Vec<f64> = (0..h)
                .map(|k| z * (sigma2 * (k / m + 1) as f64).sqrt())
                .collect();
            Interval {
                level: lv,
                lower: mean.iter().zip(&half).map(|(f, d)| f - d).collect(),
                upper: mean.iter().zip(&half).map(|(f, d)| f + d).collect(),
            }
        })
        .collect();
    let fitted = (0..n)
        .map(|t| if t >= m { y[t - m] } else { f64::NAN })
        .collect();
    Ok(Forecast {
        mean,
        intervals,
        model: if m == 1 {
            "Naive".into()
        } else {
            "SNaive".into()
        },
        fitted,
    })
}

/// The M4 "Comb" benchmark: seasonally adjust by the M4 rule (multiplicative classical
/// decomposition when the lag-m autocorrelation is significant at 90 %), fit ETS(A,N,N),
/// ETS(A,A,N) and ETS(A,Ad,N) to the adjusted data, average their forecasts, and put the
/// season back. Intervals average the three models' bounds (Comb has no model of its
/// own; calibrate them by backtest).
pub fn comb(y: &[f64], m: usize, h: usize, levels: &[f64]) -> Result<Forecast> {
    super::check_levels(levels)?;
    let (adjusted, season) = decompose::seasonally_adjust(y, m);
    let mut parts = Vec::with_capacity(3);
    let mut fitted = vec![0.0; y.len()];
    for code in ["ANN", "AAN", "AAdN"] {
        let ty = EtsType::parse(code)?;
        match Ets::model(1, ty).fit(&adjusted) {
            Ok(fit) => {
                for (f, v) in fitted.iter_mut().zip(&fit.fitted) {
                    *f += v;
                }
                parts.push(fit.predict(h, levels)?)
            }
            // Holt and damped need a few more points than SES; Comb uses what fits.
            Err(e) if !parts.is_empty() => {
                let _ = e;
            }
            Err(e) => return Err(e),
        }
    }
    let k = parts.len() as f64;
    let avg = |f: &dyn Fn(&Forecast) -> &Vec<f64>| -> Vec<f64> {
        (0..h)
            .map(|i| parts.iter().map(|p| f(p)[i]).sum::<f64>() / k)
            .collect()
    };
    let mut mean = avg(&|p| &p.mean);
    let mut intervals: Vec<Interval> = (0..levels.len())
        .map(|j| Interval {
            level: levels[j],
            lower: avg(&|p| &p.intervals[j].lower),
            upper: avg(&|p| &p.intervals[j].upper),
        })
        .collect();
    fitted.iter_mut().for_each(|f| *f /= k);
    if let Some(season) = &season {
        season.reseasonalise_forecast(&mut mean, &mut intervals);
        season.reseasonalise_in_sample(&mut fitted);
    }
    Ok(Forecast {
        mean,
        intervals,
        model: "Comb(SES,Holt,Damped)".into(),
        fitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let fc = seasonal_naive(&y, 4, 6, &[95.0]).unwrap();
        assert_eq!(fc.mean, vec![5.0, 6.0, 7.0, 8.0, 5.0, 6.0]);
        // σ² = 16 (every difference is 4): half-width 1.96·4 in the first season,
        // 1.96·4·√2 in the second.
        let w0 = fc.intervals[0].upper[0] - fc.mean[0];
        let w4 = fc.intervals[0].upper[4] - fc.mean[4];
        assert!((w0 - 1.959_964 * 4.0).abs() < 1e-4);
        assert!((w4 / w0 - 2f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn comb_lies_between_its_parts_on_a_trend() {
        let y: Vec<f64> = (0..40)
            .map(|t| 5.0 + t as f64 + ((t * 5) % 3) as f64)
            .collect();
        let fc = comb(&y, 1, 4, &[]).unwrap();
        let ses = Ets::model(1, EtsType::parse("ANN").unwrap())
            .fit(&y)
            .unwrap()
            .point(4);
        let holt = Ets::model(1, EtsType::parse("AAN").unwrap())
            .fit(&y)
            .unwrap()
            .point(4);
        for i in 0..4 {
            assert!(fc.mean[i] > ses[i].min(holt[i]) && fc.mean[i] < ses[i].max(holt[i]));
        }
    }
}
