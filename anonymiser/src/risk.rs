//! Re-identification risk of a table, measured on what is actually released (the label
//! strings), not on the search's internal classes: an independent check of the release.
//!
//! The prosecutor model (as ARX and sdcMicro use it): an attacker who knows a person is
//! in the table and knows their quasi-identifiers picks one record of the matching class
//! at random, so a record's risk is 1 / (size of its class).

use serde::Serialize;

use crate::{Error, Result};

/// Risk figures of one table (before or after anonymisation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskProfile {
    /// Records considered (released ones only, after anonymisation).
    pub records: u64,
    /// Equivalence classes.
    pub classes: u64,
    /// Records alone in their class.
    pub sample_uniques: u64,
    /// Highest prosecutor risk of a record: 1 / smallest class.
    pub highest: f64,
    /// Average prosecutor risk over records: classes / records.
    pub average: f64,
    /// Records whose risk exceeds the threshold.
    pub records_above_threshold: u64,
    /// The threshold used.
    pub threshold: f64,
}

impl RiskProfile {
    /// The profile of a table from the sizes of its equivalence classes.
    pub fn from_class_sizes(sizes: impl IntoIterator<Item = u64>, threshold: f64) -> Self {
        let (mut records, mut classes, mut uniques, mut above, mut smallest) =
            (0u64, 0u64, 0u64, 0u64, u64::MAX);
        for n in sizes {
            if n == 0 {
                continue;
            }
            records += n;
            classes += 1;
            smallest = smallest.min(n);
            if n == 1 {
                uniques += 1;
            }
            if 1.0 / n as f64 > threshold {
                above += n;
            }
        }
        RiskProfile {
            records,
            classes,
            sample_uniques: uniques,
            highest: if records == 0 {
                0.0
            } else {
                1.0 / smallest as f64
            },
            average: if records == 0 {
                0.0
            } else {
                classes as f64 / records as f64
            },
            records_above_threshold: above,
            threshold,
        }
    }
}

/// The most risk a release may carry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RiskPolicy {
    /// Highest prosecutor risk allowed for any record.
    pub max_highest: f64,
    /// Average prosecutor risk allowed.
    pub max_average: f64,
    /// Risk above which a record counts as "at risk".
    pub threshold: f64,
    /// Largest share of released records allowed above the threshold.
    pub max_share_above: f64,
}

impl RiskPolicy {
    /// The policy implied by k-anonymity: no record above 1/k.
    pub fn for_k(k: usize) -> Self {
        let r = 1.0 / k.max(1) as f64;
        RiskPolicy {
            max_highest: r,
            max_average: r,
            threshold: r,
            max_share_above: 0.0,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("max_highest", self.max_highest),
            ("max_average", self.max_average),
            ("threshold", self.threshold),
            ("max_share_above", self.max_share_above),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Param {
                    name,
                    reason: format!("{v} is outside [0, 1]"),
                });
            }
        }
        Ok(())
    }

    /// Whether a released table complies; the reason if it does not.
    pub fn check(&self, after: &RiskProfile) -> std::result::Result<(), String> {
        let eps = 1e-12;
        if after.highest > self.max_highest + eps {
            return Err(format!(
                "the highest re-identification risk is {:.4}, above the policy's {:.4}",
                after.highest, self.max_highest
            ));
        }
        if after.average > self.max_average + eps {
            return Err(format!(
                "the average re-identification risk is {:.4}, above the policy's {:.4}",
                after.average, self.max_average
            ));
        }
        let share = if after.records == 0 {
            0.0
        } else {
            after.records_above_threshold as f64 / after.records as f64
        };
        if share > self.max_share_above + eps {
            return Err(format!(
                "{} released records ({:.2} %) have a risk above {:.4}, more than the \
                 policy's {:.2} %",
                after.records_above_threshold,
                share * 100.0,
                self.threshold,
                self.max_share_above * 100.0
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_follows_the_prosecutor_model() {
        // Classes of 1, 2 and 5 records: 8 records, 3 classes.
        let p = RiskProfile::from_class_sizes([1, 2, 5], 0.3);
        assert_eq!((p.records, p.classes, p.sample_uniques), (8, 3, 1));
        assert_eq!(p.highest, 1.0);
        assert!((p.average - 3.0 / 8.0).abs() < 1e-15);
        // 1 and 1/2 exceed 0.3; 1/5 does not.
        assert_eq!(p.records_above_threshold, 3);
    }

    #[test]
    fn policy_names_what_it_refuses() {
        let policy = RiskPolicy::for_k(5);
        assert!(
            policy
                .check(&RiskProfile::from_class_sizes([5, 7], 0.2))
                .is_ok()
        );
        let err = policy
            .check(&RiskProfile::from_class_sizes([4, 7], 0.2))
            .unwrap_err();
        assert!(err.contains("highest") && err.contains("0.2500"), "{err}");
        assert!(
            RiskPolicy {
                max_highest: 2.0,
                ..policy
            }
            .validate()
            .is_err()
        );
    }
}
