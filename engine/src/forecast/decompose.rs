//! Classical seasonal decomposition and the seasonality test of the M competitions.

/// How a seasonal component combines with the rest of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeasonalForm {
    /// y = trend + seasonal + remainder.
    Additive,
    /// y = trend × seasonal × remainder.
    Multiplicative,
}

/// The seasonal component of a classical decomposition (R's `decompose`, statsmodels'
/// `seasonal_decompose`): a centred moving average of order `m` (2×m for even `m`) as
/// trend, the detrended values averaged by position in the cycle, normalised to sum 0
/// (additive) or to average 1 (multiplicative), and repeated over the series. Position
/// 0 of the cycle is the first observation. Needs at least two full cycles.
pub(crate) fn seasonal_component(y: &[f64], m: usize, form: SeasonalForm) -> Option<Vec<f64>> {
    let n = y.len();
    if m < 2 || n < 2 * m {
        return None;
    }
    // Centred moving average; defined from index half to n − 1 − half.
    let half = m / 2;
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for t in half..n - half {
        let trend = if m.is_multiple_of(2) {
            let inner: f64 = y[t + 1 - half..t + half].iter().sum();
            (0.5 * y[t - half] + inner + 0.5 * y[t + half]) / m as f64
        } else {
            y[t - half..=t + half].iter().sum::<f64>() / m as f64
        };
        let d = match form {
            SeasonalForm::Additive => y[t] - trend,
            SeasonalForm::Multiplicative => y[t] / trend,
        };
        if d.is_finite() {
            sums[t % m] += d;
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    let mut figure: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect();
    let mean = figure.iter().sum::<f64>() / m as f64;
    match form {
        SeasonalForm::Additive => figure.iter_mut().for_each(|v| *v -= mean),
        SeasonalForm::Multiplicative => {
            if mean.abs() < f64::MIN_POSITIVE {
                return None;
            }
            figure.iter_mut().for_each(|v| *v /= mean)
        }
    }
    Some((0..n).map(|t| figure[t % m]).collect())
}

/// Sample autocorrelations r₁…r_k (denominator n, as R's `acf`).
pub(crate) fn acf(y: &[f64], k: usize) -> Vec<f64> {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let denom: f64 = y.iter().map(|v| (v - mean) * (v - mean)).sum();
    (1..=k)
        .map(|lag| {
            if lag >= n || denom == 0.0 {
                return 0.0;
            }
            (0..n - lag)
                .map(|t| (y[t] - mean) * (y[t + lag] - mean))
                .sum::<f64>()
                / denom
        })
        .collect()
}

/// The seasonality test of the M3/M4 benchmarks (Assimakopoulos and Nikolopoulos'
/// Theta, the M4 "Comb"): the lag-`m` autocorrelation is significant at 90 % two-sided,
/// with Bartlett's standard error from the lower lags. Needs `m ≥ 4` and two full cycles.
pub(crate) fn is_seasonal(y: &[f64], m: usize) -> bool {
    if m < 4 || y.len() < 2 * m {
        return false;
    }
    let r = acf(y, m);
    let lower: f64 = r[..m - 1].iter().map(|v| v * v).sum();
    let se = ((1.0 + 2.0 * lower) / y.len() as f64).sqrt();
    // Φ⁻¹(0.95).
    r[m - 1].abs() / se > 1.644_853_626_951_472_2
}

/// A seasonal adjustment: its form, the seasonal component over the data, and the next
/// cycle of indices (the first applies to the observation after the last).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Adjustment {
    pub form: SeasonalForm,
    pub seasonal: Vec<f64>,
    pub next: Vec<f64>,
}

impl Adjustment {
    /// Puts the season back into values 1, 2, … periods after the data.
    pub fn reseasonalise(&self, values: &mut [f64]) {
        for (i, v) in values.iter_mut().enumerate() {
            self.apply(v, self.next[i % self.next.len()]);
        }
    }

    /// Puts the season back into point forecasts and their intervals.
    pub fn reseasonalise_forecast(&self, mean: &mut [f64], intervals: &mut [super::Interval]) {
        self.reseasonalise(mean);
        for iv in intervals.iter_mut() {
            self.reseasonalise(&mut iv.lower);
            self.reseasonalise(&mut iv.upper);
        }
    }

    /// Puts the season back into values over the data (fitted values).
    pub fn reseasonalise_in_sample(&self, values: &mut [f64]) {
        for (v, &s) in values.iter_mut().zip(&self.seasonal) {
            self.apply(v, s);
        }
    }

    fn apply(&self, v: &mut f64, s: f64) {
        match self.form {
            SeasonalForm::Additive => *v += s,
            SeasonalForm::Multiplicative => *v *= s,
        }
    }
}

/// Seasonal adjustment as the M benchmarks do it: if [`is_seasonal`], divide by the
/// multiplicative classical seasonal component (subtract the additive one if the data
/// are not all positive or a multiplicative index falls below 0.01). Returns the
/// adjusted series and the adjustment, if one was made.
pub(crate) fn seasonally_adjust(y: &[f64], m: usize) -> (Vec<f64>, Option<Adjustment>) {
    if !is_seasonal(y, m) {
        return (y.to_vec(), None);
    }
    let positive = y.iter().all(|&v| v > 0.0);
    let mut form = if positive {
        SeasonalForm::Multiplicative
    } else {
        SeasonalForm::Additive
    };
    let mut seasonal = match seasonal_component(y, m, form) {
        Some(s) => s,
        None => return (y.to_vec(), None),
    };
    if form == SeasonalForm::Multiplicative && seasonal.iter().any(|&s| s < 0.01) {
        form = SeasonalForm::Additive;
        seasonal = match seasonal_component(y, m, form) {
            Some(s) => s,
            None => return (y.to_vec(), None),
        };
    }
    let adjusted = y
        .iter()
        .zip(&seasonal)
        .map(|(v, s)| match form {
            SeasonalForm::Additive => v - s,
            SeasonalForm::Multiplicative => v / s,
        })
        .collect();
    let n = y.len();
    let next: Vec<f64> = (0..m).map(|j| seasonal[n - m + j]).collect();
    (
        adjusted,
        Some(Adjustment {
            form,
            seasonal,
            next,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_planted_additive_season() {
        let m = 4;
        let pattern = [3.0, -1.0, -4.0, 2.0];
        let y: Vec<f64> = (0..24)
            .map(|t| 10.0 + 0.5 * t as f64 + pattern[t % m])
            .collect();
        let s = seasonal_component(&y, m, SeasonalForm::Additive).unwrap();
        for t in 0..24 {
            assert!((s[t] - pattern[t % m]).abs() < 1e-12, "{t}: {}", s[t]);
        }
    }

    #[test]
    fn multiplicative_indices_average_one_and_odd_periods_work() {
        let m = 3;
        let pattern = [1.2, 0.9, 0.9];
        let y: Vec<f64> = (0..30).map(|t| 50.0 * pattern[t % m]).collect();
        let s = seasonal_component(&y, m, SeasonalForm::Multiplicative).unwrap();
        for t in 0..30 {
            assert!((s[t] - pattern[t % m]).abs() < 1e-12);
        }
    }

    #[test]
    fn the_test_sees_strong_seasons_and_not_white_trends() {
        let seasonal: Vec<f64> = (0..72)
            .map(|t| 100.0 + 20.0 * (t as f64 * std::f64::consts::PI / 6.0).sin())
            .collect();
        assert!(is_seasonal(&seasonal, 12));
        let trend: Vec<f64> = (0..72).map(|t| 100.0 + t as f64).collect();
        assert!(!is_seasonal(&trend, 12));
        assert!(!is_seasonal(&seasonal[..20], 12));
    }
}
