//! Privacy models checked on each equivalence class: k-anonymity, l-diversity (distinct,
//! entropy, recursive (c,l)) and t-closeness with the equal ground distance.

use serde::Serialize;

use crate::{Error, Result};

/// The l-diversity variants of Machanavajjhala et al. (2007).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "variant", rename_all = "lowercase")]
pub enum LDiversity {
    /// At least `l` distinct sensitive values per class.
    Distinct {
        /// l.
        l: usize,
    },
    /// The entropy of the sensitive values in each class is at least log(l).
    Entropy {
        /// l.
        l: f64,
    },
    /// Recursive (c,l): the most frequent value is less frequent than c times the sum of
    /// the l-th and later ones.
    Recursive {
        /// c.
        c: f64,
        /// l.
        l: usize,
    },
}

/// What every released equivalence class must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyModel {
    k: usize,
    l: Option<LDiversity>,
    t: Option<f64>,
}

impl PrivacyModel {
    /// k-anonymity (k ≥ 1; 1 imposes nothing).
    pub fn k_anonymity(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::Param {
                name: "k",
                reason: "must be at least 1".into(),
            });
        }
        Ok(PrivacyModel {
            k,
            l: None,
            t: None,
        })
    }

    /// Adds l-diversity of the sensitive attribute.
    pub fn with_l_diversity(mut self, l: LDiversity) -> Result<Self> {
        let bad = |reason: &str| Error::Param {
            name: "l",
            reason: reason.into(),
        };
        match l {
            LDiversity::Distinct { l } if l < 1 => return Err(bad("must be at least 1")),
            LDiversity::Entropy { l } if !(l >= 1.0 && l.is_finite()) => {
                return Err(bad("must be a number of at least 1"));
            }
            LDiversity::Recursive { c, l } if l < 1 || !(c > 0.0 && c.is_finite()) => {
                return Err(bad("recursive (c,l) needs l ≥ 1 and c > 0"));
            }
            _ => {}
        }
        self.l = Some(l);
        Ok(self)
    }

    /// Adds t-closeness (equal ground distance) of the sensitive attribute.
    pub fn with_t_closeness(mut self, t: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&t) {
            return Err(Error::Param {
                name: "t",
                reason: format!("{t} is outside [0, 1]"),
            });
        }
        self.t = Some(t);
        Ok(self)
    }

    /// k.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The l-diversity requirement, if any.
    pub fn l_diversity(&self) -> Option<LDiversity> {
        self.l
    }

    /// The t-closeness requirement, if any.
    pub fn t_closeness(&self) -> Option<f64> {
        self.t
    }

    /// Whether the model looks at a sensitive attribute.
    pub fn needs_sensitive(&self) -> bool {
        self.l.is_some() || self.t.is_some()
    }

    /// Whether "satisfied with at most S records suppressed" carries over to every
    /// generalisation. It does when a class that passes still passes after absorbing any
    /// other class: true of size and of the number of distinct values, false of entropy,
    /// of recursive (c,l) and of t-closeness (a homogeneous class can drag a merged one
    /// below the bar). Without suppression every model here is monotonic.
    pub(crate) fn monotonic_with_suppression(&self) -> bool {
        self.t.is_none() && matches!(self.l, None | Some(LDiversity::Distinct { .. }))
    }

    /// Whether a class passes. `hist` holds the counts of the sensitive values present
    /// in the class (any order), `global` the share of every sensitive value in the
    /// whole table, and `present` the indices of `hist`'s values in `global`.
    pub(crate) fn class_passes(
        &self,
        size: u64,
        hist: &[u64],
        present: &[u32],
        global: &[f64],
    ) -> bool {
        if size < self.k as u64 {
            return false;
        }
        match self.l {
            None => {}
            Some(LDiversity::Distinct { l }) if hist.len() < l => return false,
            Some(LDiversity::Distinct { .. }) => {}
            Some(LDiversity::Entropy { l }) => {
                let n = size as f64;
                let h: f64 = hist
                    .iter()
                    .map(|&c| {
                        let p = c as f64 / n;
                        -p * p.ln()
                    })
                    .sum();
                // A tolerance for the last bits: l distinct equally frequent values
                // have entropy exactly ln(l).
                if h < l.ln() - 1e-12 {
                    return false;
                }
            }
            Some(LDiversity::Recursive { c, l }) => {
                if hist.len() < l {
                    return false;
                }
                let mut sorted = hist.to_vec();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                let tail: u64 = sorted[l - 1..].iter().sum();
                if (sorted[0] as f64) >= c * tail as f64 {
                    return false;
                }
            }
        }
        if let Some(t) = self.t {
            // Earth mover's distance with equal ground distance = half the L1 distance.
            let n = size as f64;
            let mut l1 = 0.0;
            let mut covered = 0.0;
            for (&cnt, &v) in hist.iter().zip(present) {
                let q = global[v as usize];
                l1 += (cnt as f64 / n - q).abs();
                covered += q;
            }
            l1 += (1.0 - covered).max(0.0);
            if l1 / 2.0 > t + 1e-12 {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert!(PrivacyModel::k_anonymity(0).is_err());
        let m = PrivacyModel::k_anonymity(2).unwrap();
        assert!(
            m.clone()
                .with_l_diversity(LDiversity::Entropy { l: 0.5 })
                .is_err()
        );
        assert!(m.clone().with_t_closeness(1.5).is_err());
        assert!(
            m.with_l_diversity(LDiversity::Recursive { c: 0.0, l: 2 })
                .is_err()
        );
    }

    #[test]
    fn l_diversity_variants_follow_their_definitions() {
        let global = [0.25; 4];
        let distinct = PrivacyModel::k_anonymity(1)
            .unwrap()
            .with_l_diversity(LDiversity::Distinct { l: 2 })
            .unwrap();
        assert!(distinct.class_passes(10, &[9, 1], &[0, 1], &global));
        assert!(!distinct.class_passes(10, &[10], &[0], &global));
        let entropy = PrivacyModel::k_anonymity(1)
            .unwrap()
            .with_l_diversity(LDiversity::Entropy { l: 2.0 })
            .unwrap();
        // {9, 1}: H = 0.325 nats < ln 2; {5, 5}: exactly ln 2.
        assert!(!entropy.class_passes(10, &[9, 1], &[0, 1], &global));
        assert!(entropy.class_passes(10, &[5, 5], &[0, 1], &global));
        let recursive = PrivacyModel::k_anonymity(1)
            .unwrap()
            .with_l_diversity(LDiversity::Recursive { c: 2.0, l: 2 })
            .unwrap();
        // r1 = 5 < 2·(3 + 2) = 10 passes; r1 = 8 ≥ 2·(1 + 1) fails.
        assert!(recursive.class_passes(10, &[5, 3, 2], &[0, 1, 2], &global));
        assert!(!recursive.class_passes(10, &[8, 1, 1], &[0, 1, 2], &global));
    }

    #[test]
    fn t_closeness_is_half_the_l1_distance_to_the_table() {
        let global = [0.5, 0.5];
        let m = PrivacyModel::k_anonymity(1)
            .unwrap()
            .with_t_closeness(0.3)
            .unwrap();
        // Class {0: 8, 1: 2}: ½(|0.8 − 0.5| + |0.2 − 0.5|) = 0.3 passes; all of one: 0.5.
        assert!(m.class_passes(10, &[8, 2], &[0, 1], &global));
        assert!(!m.class_passes(10, &[10], &[0], &global));
    }
}
