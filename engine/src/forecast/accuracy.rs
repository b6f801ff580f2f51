//! Accuracy as the M competitions score it.

/// Symmetric MAPE in percent (M3/M4 definition): mean of 200·|y − f| / (|y| + |f|);
/// a pair of zeros counts as 0.
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let n = actual.len().min(forecast.len());
    if n == 0 {
        return f64::NAN;
    }
    actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| {
            let d = y.abs() + f.abs();
            if d == 0.0 {
                0.0
            } else {
                200.0 * (y - f).abs() / d
            }
        })
        .sum::<f64>()
        / n as f64
}

/// Mean absolute scaled error: the forecast's mean absolute error over the in-sample
/// mean absolute error of the seasonal naive forecast at lag `m` (Hyndman and Koehler
/// 2006). NaN when the in-sample scale is zero or undefined.
pub fn mase(train: &[f64], actual: &[f64], forecast: &[f64], m: usize) -> f64 {
    let m = m.max(1);
    if train.len() <= m {
        return f64::NAN;
    }
    let scale = (m..train.len())
        .map(|t| (train[t] - train[t - m]).abs())
        .sum::<f64>()
        / (train.len() - m) as f64;
    let n = actual.len().min(forecast.len());
    if scale == 0.0 || n == 0 {
        return f64::NAN;
    }
    actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| (y - f).abs())
        .sum::<f64>()
        / n as f64
        / scale
}

/// Share of `actual` values inside `[lower, upper]`.
pub fn coverage(actual: &[f64], lower: &[f64], upper: &[f64]) -> f64 {
    let n = actual.len().min(lower.len()).min(upper.len());
    if n == 0 {
        return f64::NAN;
    }
    (0..n)
        .filter(|&i| actual[i] >= lower[i] && actual[i] <= upper[i])
        .count() as f64
        / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_scores() {
        // |10−8|/(10+8)·200 = 22.22…, |20−25|/(45)·200 = 22.22…
        let s = smape(&[10.0, 20.0], &[8.0, 25.0]);
        assert!((s - 200.0 / 9.0).abs() < 1e-12);
        // In-sample naive MAE at lag 1 of [1, 3, 6] is (2 + 3)/2 = 2.5; forecast MAE 1.
        assert!((mase(&[1.0, 3.0, 6.0], &[7.0, 9.0], &[8.0, 8.0], 1) - 0.4).abs() < 1e-12);
        assert_eq!(coverage(&[1.0, 5.0], &[0.0, 0.0], &[2.0, 2.0]), 0.5);
    }
}
