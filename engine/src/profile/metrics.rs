//! Validation of a predicted probability against what happened, on held-out persons:
//! discrimination (AUC with DeLong's interval, as R's `pROC::ci.auc(method = "delong")`),
//! the Brier score (scikit-learn's `brier_score_loss`), calibration (slope and intercepts
//! as in R's `rms::val.prob` and the `CalibrationCurves` package) and the reliability
//! curve (scikit-learn's `calibration_curve`).

use ndarray::Array2;

use crate::causal::logit::Logit;
use crate::{Error, Result};

/// The area under the ROC curve with DeLong's standard error.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Discrimination {
    /// P(score of a positive > score of a negative), ties counted one half.
    pub auc: f64,
    /// DeLong's standard error.
    pub se: f64,
    /// `auc ± z·se`, clipped to [0, 1] (pROC's interval).
    pub ci95: (f64, f64),
    /// Persons with the outcome.
    pub positives: usize,
    /// Persons without it.
    pub negatives: usize,
}

fn check(p: &[f64], y: &[bool]) -> Result<()> {
    if p.len() != y.len() {
        return Err(Error::Param {
            name: "predictions",
            reason: format!("{} predictions for {} outcomes", p.len(), y.len()),
        });
    }
    if let Some(i) = p.iter().position(|v| !v.is_finite()) {
        return Err(Error::Param {
            name: "predictions",
            reason: format!("prediction {i} is {}", p[i]),
        });
    }
    Ok(())
}

/// Midranks (1-based; ties share their mean rank) of `v`.
fn midranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the mean of ranks i+1..=j+1.
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

fn variance(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

/// AUC of `score` for `y` (higher score, more likely positive) with DeLong's variance, by
/// Sun and Xu's (2014) midrank algorithm: O(n log n) instead of the pairwise O(m·n).
pub fn auc_delong(score: &[f64], y: &[bool]) -> Result<Discrimination> {
    check(score, y)?;
    let pos: Vec<f64> = score
        .iter()
        .zip(y)
        .filter(|(_, y)| **y)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = score
        .iter()
        .zip(y)
        .filter(|(_, y)| !**y)
        .map(|(s, _)| *s)
        .collect();
    let (m, n) = (pos.len(), neg.len());
    if m < 2 || n < 2 {
        return Err(Error::Param {
            name: "outcomes",
            reason: format!(
                "{m} with the outcome and {n} without: the AUC's variance needs at least two \
                 of each"
            ),
        });
    }
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let r_all = midranks(&all);
    let r_pos = midranks(&pos);
    let r_neg = midranks(&neg);
    // Each positive's share of negatives below it (ties one half), and each negative's
    // share of positives above it: the structural components of the AUC.
    let v10: Vec<f64> = (0..m).map(|i| (r_all[i] - r_pos[i]) / n as f64).collect();
    let v01: Vec<f64> = (0..n)
        .map(|j| 1.0 - (r_all[m + j] - r_neg[j]) / m as f64)
        .collect();
    let auc = v10.iter().sum::<f64>() / m as f64;
    let se = (variance(&v10) / m as f64 + variance(&v01) / n as f64).sqrt();
    let z = crate::linalg::normal_quantile(0.975);
    Ok(Discrimination {
        auc,
        se,
        ci95: ((auc - z * se).max(0.0), (auc + z * se).min(1.0)),
        positives: m,
        negatives: n,
    })
}

/// The mean squared difference between the predicted probability and the outcome.
pub fn brier(p: &[f64], y: &[bool]) -> Result<f64> {
    check(p, y)?;
    if p.is_empty() {
        return Err(Error::Param {
            name: "predictions",
            reason: "no prediction".into(),
        });
    }
    Ok(p.iter()
        .zip(y)
        .map(|(p, &y)| (p - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / p.len() as f64)
}

/// How predicted probabilities match what happened.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Calibration-in-the-large: `a` in `logit P(y) = a + logit(p)` (the slope held at 1,
    /// `CalibrationCurves`' intercept). 0 when the predictions are right on average.
    pub intercept: f64,
    /// `b` in `logit P(y) = a + b·logit(p)`: 1 when the spread is right, below 1 when the
    /// predictions are too extreme (over-fitting).
    pub slope: f64,
    /// `a` of the same joint fit (`rms::val.prob`'s "Intercept").
    pub intercept_joint: f64,
    /// Mean outcome.
    pub observed: f64,
    /// Mean prediction.
    pub expected: f64,
}

/// Calibration of `p` against `y`: logistic recalibration on `logit(p)`. Predictions of
/// exactly 0 or 1 have no logit and are refused with their count.
pub fn calibration(p: &[f64], y: &[bool]) -> Result<Calibration> {
    check(p, y)?;
    let extreme = p.iter().filter(|&&v| v <= 0.0 || v >= 1.0).count();
    if extreme > 0 {
        return Err(Error::Param {
            name: "predictions",
            reason: format!(
                "{extreme} prediction(s) are 0 or 1 (or outside): calibration works on the \
                 logit of probabilities strictly between 0 and 1"
            ),
        });
    }
    let lp: Vec<f64> = p.iter().map(|&v| (v / (1.0 - v)).ln()).collect();
    let x = Array2::from_shape_vec((lp.len(), 1), lp.clone()).map_err(|e| Error::Param {
        name: "predictions",
        reason: e.to_string(),
    })?;
    let joint = Logit::new()
        .fit(x.view(), y)
        .map_err(|e| Error::Estimation {
            method: "calibration slope",
            reason: e.to_string(),
        })?;
    // The intercept with logit(p) as an offset: the root of the one score equation
    // sum(y - expit(a + lp)) = 0, increasing in nothing but a, by Newton's method.
    let mut a = 0.0f64;
    for _ in 0..100 {
        let (mut score, mut info) = (0.0, 0.0);
        for (&l, &yi) in lp.iter().zip(y) {
            let q = 1.0 / (1.0 + (-(a + l)).exp());
            score += f64::from(u8::from(yi)) - q;
            info += q * (1.0 - q);
        }
        let step = score / info;
        a += step;
        if step.abs() < 1e-12 {
            break;
        }
    }
    let n = p.len() as f64;
    Ok(Calibration {
        intercept: a,
        slope: joint.coef()[1],
        intercept_joint: joint.coef()[0],
        observed: y.iter().filter(|&&v| v).count() as f64 / n,
        expected: p.iter().sum::<f64>() / n,
    })
}

/// How the reliability curve's bins are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bins {
    /// Equal widths on [0, 1].
    Uniform,
    /// Equal counts (quantiles of the predictions).
    Quantile,
}

/// One point of the reliability curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReliabilityBin {
    /// Mean prediction in the bin.
    pub predicted: f64,
    /// Share with the outcome in the bin.
    pub observed: f64,
    /// Persons in the bin.
    pub n: usize,
}

/// The reliability curve: mean prediction against observed share in `bins` bins, empty
/// bins left out (scikit-learn's `calibration_curve`, whose bin edges and assignment this
/// follows: edges `i · (1/bins)` as `numpy.linspace` makes them, and
/// `searchsorted(edges[1:-1], p)`, which puts a prediction on an edge in the lower bin).
pub fn reliability(p: &[f64], y: &[bool], bins: usize, kind: Bins) -> Result<Vec<ReliabilityBin>> {
    check(p, y)?;
    if bins == 0 || p.is_empty() {
        return Err(Error::Param {
            name: "bins",
            reason: "give at least one bin and one prediction".into(),
        });
    }
    if let Some(v) = p.iter().find(|v| **v < 0.0 || **v > 1.0) {
        return Err(Error::Param {
            name: "predictions",
            reason: format!("{v} is not a probability"),
        });
    }
    // numpy.linspace's points: i times the step (0.30000000000000004, not 0.3).
    let step = 1.0 / bins as f64;
    let edges: Vec<f64> = match kind {
        Bins::Uniform => (0..=bins).map(|i| i as f64 * step).collect(),
        Bins::Quantile => {
            let mut sorted = p.to_vec();
            sorted.sort_by(f64::total_cmp);
            (0..=bins)
                .map(|i| crate::linalg::quantile_sorted(&sorted, (i as f64 * step).min(1.0)))
                .collect()
        }
    };
    let inner = &edges[1..edges.len() - 1];
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&v, &yi) in p.iter().zip(y) {
        // The number of inner edges strictly below v.
        let b = inner.partition_point(|&e| e < v);
        sum_p[b] += v;
        sum_y[b] += f64::from(u8::from(yi));
        count[b] += 1;
    }
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| ReliabilityBin {
            predicted: sum_p[b] / count[b] as f64,
            observed: sum_y[b] / count[b] as f64,
            n: count[b],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairwise definition, O(m·n): the oracle of the midrank algorithm.
    fn auc_pairs(s: &[f64], y: &[bool]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (i, &yi) in y.iter().enumerate() {
            for (j, &yj) in y.iter().enumerate() {
                if yi && !yj {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn the_midrank_auc_is_the_pairwise_one_with_ties() {
        let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.2, 0.9, 0.35];
        let y = [
            false, true, false, true, false, true, true, false, true, false,
        ];
        let d = auc_delong(&s, &y).unwrap();
        assert!((d.auc - auc_pairs(&s, &y)).abs() < 1e-15);
        assert!(d.ci95.0 <= d.auc && d.auc <= d.ci95.1 && d.ci95.1 <= 1.0);
    }

    #[test]
    fn perfect_predictions_are_refused_by_calibration_and_too_few_by_the_auc() {
        assert!(calibration(&[0.0, 0.5], &[false, true]).is_err());
        assert!(auc_delong(&[0.2, 0.3, 0.4], &[true, false, false]).is_err());
        assert!(brier(&[0.5], &[true, false]).is_err());
    }
}
