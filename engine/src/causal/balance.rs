//! Covariate balance between treated and controls, before and after adjustment.

use ndarray::ArrayView1;
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
    let x = sample.x();
    let p = x.ncols();
    // Row by row (rows are contiguous): first the sums for the means, then the squares.
    let mut acc = vec![[[Acc::default(); 2]; 2]; p];
    for (i, r) in x.rows().into_iter().enumerate() {
        let g = usize::from(d[i]);
        for (a, &v) in acc.iter_mut().zip(r) {
            a[g][0].add(v, 1.0);
            a[g][1].add(v, weights[i]);
        }
    }
    let means: Vec<[[f64; 2]; 2]> = acc.iter().map(|a| a.map(|m| m.map(Acc::mean))).collect();
    let mut ss = vec![[[0.0f64; 2]; 2]; p];
    for (i, r) in x.rows().into_iter().enumerate() {
        let g = usize::from(d[i]);
        let w = weights[i];
        for ((s, m), &v) in ss.iter_mut().zip(&means).zip(r) {
            let (u, t) = (v - m[g][0], v - m[g][1]);
            s[g][0] += u * u;
            s[g][1] += w * t * t;
        }
    }
    (0..p)
        .map(|j| {
            let var = |g: usize, k: usize| {
                let m = acc[j][g][k];
                ss[j][g][k] / (m.sw - m.sw2 / m.sw)
            };
            let sd = ((var(1, 0) + var(0, 0)) / 2.0).sqrt();
            let smd = |a: f64, b: f64| if sd > 0.0 { (a - b) / sd } else { 0.0 };
            Balance {
                covariate: sample.names()[j].clone(),
                smd_before: smd(means[j][1][0], means[j][0][0]),
                smd_after: smd(means[j][1][1], means[j][0][1]),
                var_ratio_before: var(1, 0) / var(0, 0),
                var_ratio_after: var(1, 1) / var(0, 1),
            }
        })
        .collect()
}

/// Running sums for a weighted mean. With unit weights the variance built from them is
/// the sample variance (n − 1); with others the reliability-weighted version
/// Σw(x − m)² / (Σw − Σw²/Σw), which reduces to it.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    sw: f64,
    sw2: f64,
    swx: f64,
}

impl Acc {
    fn add(&mut self, x: f64, w: f64) {
        self.sw += w;
        self.sw2 += w * w;
        self.swx += w * x;
    }

    fn mean(self) -> f64 {
        self.swx / self.sw
    }
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
