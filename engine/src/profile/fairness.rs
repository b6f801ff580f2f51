//! Fairness of a risk classification: error rates by group at a threshold, the gaps
//! fairlearn reports (demographic parity and equalised odds, as differences and ratios),
//! and what a group-aware threshold would change.
//!
//! The decision is *flagged as at risk* (risk = 1 − P(employed) at or above the
//! threshold), the event is *not employed* at the horizon: a false positive is a person
//! flagged who found work anyway (help not needed), a false negative a person not flagged
//! who did not (help missed). Rates follow fairlearn's `MetricFrame` with scikit-learn's
//! definitions: a rate whose denominator is empty is 0, as scikit-learn returns it (with
//! a warning) and fairlearn reports it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Error, Result};

/// Error rates of one group (or of everyone).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// The group.
    pub group: String,
    /// Persons.
    pub n: usize,
    /// Persons with the event (not employed).
    pub events: usize,
    /// Share flagged.
    pub selection_rate: f64,
    /// Flagged among those with the event (sensitivity, recall).
    pub true_positive_rate: f64,
    /// Flagged among those without it.
    pub false_positive_rate: f64,
    /// Not flagged among those with it.
    pub false_negative_rate: f64,
    /// With the event among the flagged (precision).
    pub positive_predictive_value: f64,
    /// Share classified right.
    pub accuracy: f64,
}

fn rate(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Rates of `flag` (decision) against `event` over `idx`.
fn rates_of(group: &str, idx: &[usize], flag: &[bool], event: &[bool]) -> Rates {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for &i in idx {
        match (flag[i], event[i]) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let n = idx.len();
    Rates {
        group: group.to_string(),
        n,
        events: tp + fn_,
        selection_rate: rate(tp + fp, n),
        true_positive_rate: rate(tp, tp + fn_),
        false_positive_rate: rate(fp, fp + tn),
        false_negative_rate: rate(fn_, tp + fn_),
        positive_predictive_value: rate(tp, tp + fp),
        accuracy: rate(tp + tn, n),
    }
}

/// Gaps between groups, as fairlearn's `demographic_parity_difference`/`_ratio` and
/// `equalized_odds_difference`/`_ratio` (method `between_groups`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gaps {
    /// Largest minus smallest selection rate.
    pub demographic_parity_difference: f64,
    /// Smallest over largest selection rate.
    pub demographic_parity_ratio: f64,
    /// The larger of the TPR and FPR differences.
    pub equalized_odds_difference: f64,
    /// The smaller of the TPR and FPR ratios.
    pub equalized_odds_ratio: f64,
    /// Largest minus smallest true positive rate (equal opportunity).
    pub true_positive_rate_difference: f64,
}

/// A classification's fairness by one grouping column.
#[derive(Debug, Clone, Serialize)]
pub struct Fairness {
    /// The grouping column.
    pub column: String,
    /// The risk threshold.
    pub threshold: f64,
    /// Everyone.
    pub overall: Rates,
    /// Each group, in sorted order.
    pub groups: Vec<Rates>,
    /// The gaps.
    pub gaps: Gaps,
    /// With a threshold per group chosen so that each group's true positive rate is the
    /// overall one (equal opportunity): the thresholds, the rates and the gaps. The price
    /// in accuracy is `overall.accuracy` against `group_aware_overall.accuracy`.
    pub group_aware_thresholds: BTreeMap<String, f64>,
    /// The rates under the group-aware thresholds.
    pub group_aware: Vec<Rates>,
    /// Everyone under the group-aware thresholds.
    pub group_aware_overall: Rates,
    /// The gaps under the group-aware thresholds.
    pub group_aware_gaps: Gaps,
}

fn gaps(groups: &[Rates]) -> Gaps {
    let span = |f: &dyn Fn(&Rates) -> f64| -> (f64, f64) {
        let v: Vec<f64> = groups.iter().map(f).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (hi - lo, if hi == 0.0 { 1.0 } else { lo / hi })
    };
    let sel = span(&|r| r.selection_rate);
    let tpr = span(&|r| r.true_positive_rate);
    let fpr = span(&|r| r.false_positive_rate);
    Gaps {
        demographic_parity_difference: sel.0,
        demographic_parity_ratio: sel.1,
        equalized_odds_difference: tpr.0.max(fpr.0),
        equalized_odds_ratio: tpr.1.min(fpr.1),
        true_positive_rate_difference: tpr.0,
    }
}

/// The threshold on `risk` over `idx` whose true positive rate is closest to `target`
/// (flagged: risk ≥ threshold; candidates are the group's own risks).
fn threshold_for_tpr(idx: &[usize], risk: &[f64], event: &[bool], target: f64) -> f64 {
    let mut ev: Vec<f64> = idx
        .iter()
        .filter(|&&i| event[i])
        .map(|&i| risk[i])
        .collect();
    if ev.is_empty() {
        return f64::INFINITY;
    }
    ev.sort_by(|a, b| b.total_cmp(a));
    // Flagging the k highest-risk persons with the event gives TPR k/m (ties aside).
    let m = ev.len() as f64;
    let k = ((target * m).round() as usize).clamp(1, ev.len());
    ev[k - 1]
}

/// Fairness of flagging `risk ≥ threshold` against `event`, by the groups in `labels`
/// (rows without a label count in `overall` only).
pub fn fairness(
    column: &str,
    labels: &[Option<String>],
    risk: &[f64],
    event: &[bool],
    threshold: f64,
) -> Result<Fairness> {
    if labels.len() != risk.len() || risk.len() != event.len() {
        return Err(Error::Param {
            name: "fairness",
            reason: "groups, risks and events differ in length".into(),
        });
    }
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::Param {
            name: "threshold",
            reason: format!("{threshold} is not a probability"),
        });
    }
    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        if let Some(l) = l {
            members.entry(l.clone()).or_default().push(i);
        }
    }
    if members.len() < 2 {
        return Err(Error::Param {
            name: "groups",
            reason: format!(
                "{column} has {} group(s): nothing to compare",
                members.len()
            ),
        });
    }
    let all: Vec<usize> = (0..risk.len()).collect();
    let flag: Vec<bool> = risk.iter().map(|&r| r >= threshold).collect();
    let overall = rates_of("(all)", &all, &flag, event);
    let groups: Vec<Rates> = members
        .iter()
        .map(|(g, idx)| rates_of(g, idx, &flag, event))
        .collect();
    let mut thresholds = BTreeMap::new();
    let mut aware = flag.clone();
    for (g, idx) in &members {
        let t = threshold_for_tpr(idx, risk, event, overall.true_positive_rate);
        for &i in idx {
            aware[i] = risk[i] >= t;
        }
        thresholds.insert(g.clone(), t);
    }
    let group_aware: Vec<Rates> = members
        .iter()
        .map(|(g, idx)| rates_of(g, idx, &aware, event))
        .collect();
    Ok(Fairness {
        column: column.to_string(),
        threshold,
        gaps: gaps(&groups),
        overall,
        groups,
        group_aware_overall: rates_of("(all)", &all, &aware, event),
        group_aware_gaps: gaps(&group_aware),
        group_aware,
        group_aware_thresholds: thresholds,
    })
}
