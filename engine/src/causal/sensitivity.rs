//! How strong would an unmeasured confounder have to be to explain the effect away?
//!
//! * [`rosenbaum_wilcoxon`]: Rosenbaum's bounds on the one-sided p-value of Wilcoxon's
//!   signed-rank test for matched pairs, when the odds of treatment within a pair may
//!   differ by a factor Γ (as R's `rbounds::psens`).
//! * [`e_value`]: VanderWeele and Ding's E-value, the minimum strength of association (risk
//!   ratio) a confounder would need with both treatment and outcome.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::{Error, Result};

/// The p-value bounds at one Γ.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RosenbaumBound {
    /// Odds ratio of treatment within a pair allowed by the hidden bias.
    pub gamma: f64,
    /// Smallest one-sided p-value consistent with Γ.
    pub lower_p: f64,
    /// Largest one-sided p-value consistent with Γ: the result is robust to Γ while
    /// this stays below the test level.
    pub upper_p: f64,
}

/// Rosenbaum bounds for the signed-rank test of matched-pair differences (treated minus
/// control) being positive. Zero differences are dropped and ties get average ranks;
/// the normal approximation is used, as `psens` does.
///
/// ```
/// use occupa_engine::causal::sensitivity::rosenbaum_wilcoxon;
/// let d = [2.0, 3.5, -1.0, 4.0, 0.5, 2.5, 3.0, -0.5, 1.5, 2.0];
/// let b = rosenbaum_wilcoxon(&d, &[1.0, 2.0])?;
/// assert!((b[0].lower_p - b[0].upper_p).abs() < 1e-15); // no bias: one p-value
/// assert!(b[1].upper_p > b[0].upper_p);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
pub fn rosenbaum_wilcoxon(diffs: &[f64], gammas: &[f64]) -> Result<Vec<RosenbaumBound>> {
    let ranks = SignedRanks::new(diffs)?;
    gammas.iter().map(|&g| ranks.bound(g)).collect()
}

/// The signed-rank statistic of matched differences, ranked once so that bounds at any
/// Γ cost nothing more.
#[derive(Debug, Clone, Copy)]
pub struct SignedRanks {
    t: f64,
    sum_r: f64,
    sum_r2: f64,
}

impl SignedRanks {
    /// Ranks the non-zero differences (average ranks over ties).
    pub fn new(diffs: &[f64]) -> Result<Self> {
        let mut abs: Vec<(f64, bool)> = diffs
            .iter()
            .filter(|d| **d != 0.0 && d.is_finite())
            .map(|&d| (d.abs(), d > 0.0))
            .collect();
        if abs.is_empty() {
            return Err(Error::Estimation {
                method: "Rosenbaum bounds",
                reason: "every matched difference is zero".into(),
            });
        }
        abs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut t, mut sum_r, mut sum_r2) = (0.0, 0.0, 0.0);
        let mut i = 0;
        while i < abs.len() {
            let mut j = i;
            while j + 1 < abs.len() && abs[j + 1].0 == abs[i].0 {
                j += 1;
            }
            let r = (i + j) as f64 / 2.0 + 1.0;
            for a in &abs[i..=j] {
                sum_r += r;
                sum_r2 += r * r;
                if a.1 {
                    t += r;
                }
            }
            i = j + 1;
        }
        Ok(SignedRanks { t, sum_r, sum_r2 })
    }

    /// The p-value bounds at Γ ≥ 1.
    pub fn bound(&self, gamma: f64) -> Result<RosenbaumBound> {
        if !(gamma.is_finite() && gamma >= 1.0) {
            return Err(Error::Param {
                name: "gamma",
                reason: format!("{gamma} is not a number ≥ 1"),
            });
        }
        let normal = Normal::standard();
        let p_plus = gamma / (1.0 + gamma);
        let p_minus = 1.0 / (1.0 + gamma);
        let var = p_plus * (1.0 - p_plus) * self.sum_r2;
        let tail = |p: f64| 1.0 - normal.cdf((self.t - p * self.sum_r) / var.sqrt());
        Ok(RosenbaumBound {
            gamma,
            lower_p: tail(p_minus),
            upper_p: tail(p_plus),
        })
    }
}

/// The E-value of a risk ratio: RR + √(RR(RR − 1)), with RR < 1 inverted first
/// (VanderWeele and Ding 2017). 1 means no confounding is needed.
pub fn e_value(rr: f64) -> f64 {
    let rr = if rr < 1.0 { 1.0 / rr } else { rr };
    rr + (rr * (rr - 1.0)).sqrt()
}

/// E-values of an effect on a continuous outcome, through the standardised difference
/// d = estimate / SD(outcome) and RR ≈ exp(0.91·d) (VanderWeele and Ding 2017), for the
/// estimate and for the confidence limit nearer to no effect (1 when the interval
/// contains it).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EValue {
    /// For the point estimate.
    pub estimate: f64,
    /// For the confidence limit closer to the null.
    pub ci_limit: f64,
}

/// [`EValue`] for an effect with its 95 % interval on an outcome with standard
/// deviation `sd`.
pub fn e_value_continuous(estimate: f64, ci95: [f64; 2], sd: f64) -> EValue {
    let rr = |v: f64| (0.91 * v / sd).exp();
    let limit = if ci95[0] <= 0.0 && ci95[1] >= 0.0 {
        1.0
    } else if estimate > 0.0 {
        e_value(rr(ci95[0]))
    } else {
        e_value(rr(ci95[1]))
    };
    EValue {
        estimate: e_value(rr(estimate)),
        ci_limit: limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_values_of_the_published_examples() {
        // VanderWeele & Ding (2017, Ann Intern Med): RR 3.9 → E-value 7.26; its lower
        // limit 1.8 → 3.0.
        assert!((e_value(3.9) - 7.26).abs() < 0.005);
        assert!((e_value(1.8) - 3.0).abs() < 0.005);
        assert_eq!(e_value(1.0), 1.0);
        assert!((e_value(1.0 / 3.9) - e_value(3.9)).abs() < 1e-12);
    }
}
