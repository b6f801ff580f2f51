//! Covariate balance between treated and controls, before and after adjustment.

use ndarray::{Array1, ArrayView1};
use serde::Serialize;

use super::sample::Sample;

/// Balance of one covariate.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    /// The covariate.
    pub covariate: String,
    /// Standardised mean difference before adjustment.
    pub smd_before: f64,
    /// After adjustment (weighted means; the same unweighted pooled SD as before, so the
    /// two are comparable: cobalt's and MatchIt's convention).
    pub smd_after: f64,
    /// Variance ratio treated / controls, before.
    pub var_ratio_before: f64,
    /// After (weighted variances).
    pub var_ratio_after: f64,
}

/// Balance of every covariate given each unit's weight after adjustment (matching counts
/// or inverse probability weights; 0 drops a unit).
///
/// SMD = (mean₁ − mean₀) / √((s₁² + s₀²)/2) with the sample variances (n − 1) before
/// adjustment in the denominator, before and after.
pub fn balance(sample: &Sample, weights: ArrayView1<f64>) -> Vec<Balance> {
    let d = sample.d();
    let ones = Array1::<f64>::ones(sample.len());
    let x = sample.x();
    (0..x.ncols())
        .map(|j| {
            let col = x.column(j);
            let (m1, v1) = moments(col, d, true, ones.view());
            let (m0, v0) = moments(col, d, false, ones.view());
            let (w1, wv1) = moments(col, d, true, weights);
            let (w0, wv0) = moments(col, d, false, weights);
            let sd = ((v1 + v0) / 2.0).sqrt();
            let smd = |a: f64, b: f64| if sd > 0.0 { (a - b) / sd } else { 0.0 };
            Balance {
                covariate: sample.names()[j].clone(),
                smd_before: smd(m1, m0),
                smd_after: smd(w1, w0),
                var_ratio_before: v1 / v0,
                var_ratio_after: wv1 / wv0,
            }
        })
        .collect()
}

/// Weighted mean and variance of `x` in one arm. With unit weights the variance is the
/// sample variance (n − 1); with others the reliability-weighted version
/// Σw(x − m)² / (Σw − Σw²/Σw), which reduces to it.
fn moments(x: ArrayView1<f64>, d: &[bool], arm: bool, w: ArrayView1<f64>) -> (f64, f64) {
    let (mut sw, mut sw2, mut swx) = (0.0, 0.0, 0.0);
    for i in 0..x.len() {
        if d[i] == arm {
            sw += w[i];
            sw2 += w[i] * w[i];
            swx += w[i] * x[i];
        }
    }
    let m = swx / sw;
    let ss: f64 = (0..x.len())
        .filter(|&i| d[i] == arm)
        .map(|i| w[i] * (x[i] - m) * (x[i] - m))
        .sum();
    (m, ss / (sw - sw2 / sw))
}

/// Kish's effective sample size (Σw)²/Σw² of the units of one arm.
pub fn effective_sample_size(sample: &Sample, weights: ArrayView1<f64>, arm: bool) -> f64 {
    let (mut s, mut s2) = (0.0, 0.0);
    for (i, &t) in sample.d().iter().enumerate() {
        if t == arm {
            s += weights[i];
            s2 += weights[i] * weights[i];
        }
    }
    if s2 > 0.0 { s * s / s2 } else { 0.0 }
}
