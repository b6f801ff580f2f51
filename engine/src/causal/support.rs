//! Two ways to restore overlap before estimating, for `--separation merge` and
//! `--separation trim`: merge the levels of a categorical covariate that too few treated or
//! controls hold (the usual cause of separation: a category no treated unit has), or drop
//! the units outside the region where both groups have a propensity, and estimate the
//! effect on the rest (a population the report then names).

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use super::Estimand;
use super::sample::{Level, Sample};

/// Levels of one categorical covariate merged because they were rare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Merged {
    /// The categorical column (or a 0/1 covariate).
    pub covariate: String,
    /// The rare levels, each with (treated, controls) holding it.
    pub rare: Vec<(String, [usize; 2])>,
    /// The level they became: the rare levels pooled (`a|b`), pooled with the largest
    /// level when the pool is still rare, or nothing when every level was rare (then the
    /// covariate is constant and leaves the model).
    pub into: Option<String>,
}

/// A level is rare when fewer than `min` treated or fewer than `min` controls hold it.
///
/// The levels of each categorical covariate (its dummies and the reference level) and the
/// two values of each 0/1 covariate are counted by arm. Rare levels are pooled into one
/// level; if the pool is itself rare (or is a single level) it joins the most frequent
/// level that is not rare. The covariate is rebuilt with one dummy per remaining level
/// but the first in sorted order. Units keep their order, so every estimate stays a
/// function of the values only.
pub fn merge_rare_levels(sample: &Sample, min: usize) -> (Sample, Vec<Merged>) {
    let (n, _) = sample.x().dim();
    let x = sample.x();
    let d = sample.d();
    let (groups, plain) = discrete_groups(sample);
    let mut merged = Vec::new();
    // Covariates in their original order: a rebuilt group takes its first column's place.
    let mut out: Vec<(usize, Vec<f64>, String, Option<Level>)> = Vec::new();
    for &j in &plain {
        out.push((j, x.column(j).to_vec(), sample.names()[j].clone(), None));
    }
    for group in &groups {
        let Group {
            factor,
            cols,
            reference,
            names,
        } = group;
        let level_of = |i: usize| group.level_of(x, i);
        let counts = group.counts(x, d);
        let rare: Vec<(&str, [usize; 2])> = counts
            .iter()
            .filter(|(_, c)| c[0] < min || c[1] < min)
            .map(|(l, c)| (*l, *c))
            .collect();
        let is_binary = sample.levels()[cols[0]].is_none();
        let (factor, reference) = (factor.clone(), reference.clone());
        let keep_as_is = |out: &mut Vec<(usize, Vec<f64>, String, Option<Level>)>| {
            for (&c, l) in cols.iter().zip(names.iter()) {
                let level = (!is_binary).then(|| Level {
                    factor: factor.clone(),
                    level: l.clone(),
                    reference: reference.clone(),
                });
                out.push((c, x.column(c).to_vec(), sample.names()[c].clone(), level));
            }
        };
        if rare.is_empty() {
            keep_as_is(&mut out);
            continue;
        }
        let pool: [usize; 2] = rare
            .iter()
            .fold([0, 0], |a, (_, c)| [a[0] + c[0], a[1] + c[1]]);
        let common: Vec<(&str, [usize; 2])> = counts
            .iter()
            .filter(|(_, c)| c[0] >= min && c[1] >= min)
            .map(|(l, c)| (*l, *c))
            .collect();
        let rare_names: Vec<&str> = rare.iter().map(|(l, _)| *l).collect();
        // The new label of each old level.
        let (rename, into): (BTreeMap<&str, String>, Option<String>) =
            if rare.len() >= 2 && pool[0] >= min && pool[1] >= min {
                let label = rare_names.join("|");
                (
                    rare_names.iter().map(|l| (*l, label.clone())).collect(),
                    Some(label),
                )
            } else if let Some((big, _)) = common
                .iter()
                .max_by(|a, b| (a.1[0] + a.1[1]).cmp(&(b.1[0] + b.1[1])).then(b.0.cmp(a.0)))
            {
                let mut members: Vec<&str> = rare_names.clone();
                members.push(big);
                members.sort_unstable();
                let label = members.join("|");
                (
                    members.iter().map(|l| (*l, label.clone())).collect(),
                    Some(label),
                )
            } else {
                (BTreeMap::new(), None)
            };
        let label = |i: usize| -> String {
            let l = level_of(i);
            rename.get(l).cloned().unwrap_or_else(|| l.to_string())
        };
        let labels: Vec<String> = (0..n).map(label).collect();
        let mut new_levels: Vec<&String> = labels.iter().collect();
        new_levels.sort_unstable();
        new_levels.dedup();
        merged.push(Merged {
            covariate: factor.clone(),
            rare: rare.iter().map(|(l, c)| (l.to_string(), *c)).collect(),
            // A single level left: the covariate is constant and leaves the model.
            into: into.filter(|_| new_levels.len() >= 2),
        });
        if new_levels.len() < 2 {
            continue;
        }
        let reference = new_levels[0].clone();
        for l in new_levels.iter().skip(1) {
            let values: Vec<f64> = labels.iter().map(|v| f64::from(v == *l)).collect();
            let (name, level) = if is_binary {
                // Two levels left of a 0/1 covariate means nothing was merged.
                (factor.clone(), None)
            } else {
                (
                    format!("{factor}={l}"),
                    Some(Level {
                        factor: factor.clone(),
                        level: (*l).clone(),
                        reference: reference.clone(),
                    }),
                )
            };
            out.push((cols[0], values, name, level));
        }
    }
    out.sort_by_key(|c| c.0);
    let x = Array2::from_shape_fn((n, out.len()), |(i, j)| out[j].1[i]);
    let names = out.iter().map(|c| c.2.clone()).collect();
    let levels = out.into_iter().map(|c| c.3).collect();
    (sample.with_covariates(x, names, levels), merged)
}

/// The levels of one categorical covariate (its dummies and the reference level), or the
/// two values of a 0/1 covariate.
struct Group {
    factor: String,
    cols: Vec<usize>,
    reference: String,
    names: Vec<String>,
}

impl Group {
    /// Unit `i`'s level.
    fn level_of<'a>(&'a self, x: ArrayView2<f64>, i: usize) -> &'a str {
        self.cols
            .iter()
            .zip(&self.names)
            .find(|(c, _)| x[[i, **c]] == 1.0)
            .map_or(self.reference.as_str(), |(_, l)| l.as_str())
    }

    /// (treated, controls) holding each level.
    fn counts(&self, x: ArrayView2<f64>, d: &[bool]) -> BTreeMap<&str, [usize; 2]> {
        let mut counts: BTreeMap<&str, [usize; 2]> = BTreeMap::new();
        counts.insert(self.reference.as_str(), [0, 0]);
        for l in &self.names {
            counts.insert(l.as_str(), [0, 0]);
        }
        for (i, &t) in d.iter().enumerate() {
            counts.entry(self.level_of(x, i)).or_default()[usize::from(!t)] += 1;
        }
        counts
    }
}

/// The sample's categorical covariates (from their level labels) and 0/1 covariates, and
/// the other covariates' indices.
fn discrete_groups(sample: &Sample) -> (Vec<Group>, Vec<usize>) {
    let x = sample.x();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut plain: Vec<usize> = Vec::new();
    for j in 0..x.ncols() {
        match &sample.levels()[j] {
            Some(Level {
                factor,
                level,
                reference,
            }) => {
                let g = *index.entry(factor.clone()).or_insert_with(|| {
                    groups.push(Group {
                        factor: factor.clone(),
                        cols: Vec::new(),
                        reference: reference.clone(),
                        names: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[g].cols.push(j);
                groups[g].names.push(level.clone());
            }
            None if x.column(j).iter().all(|&v| v == 0.0 || v == 1.0) => groups.push(Group {
                factor: sample.names()[j].clone(),
                cols: vec![j],
                reference: "0".into(),
                names: vec!["1".into()],
            }),
            None => plain.push(j),
        }
    }
    (groups, plain)
}

/// The units holding a level of a categorical (or 0/1) covariate that only one group
/// holds: nothing in the other group resembles them, so they are outside the overlap
/// whatever the propensity model says (Firth's fit keeps their score finite and
/// moderate). With a description of each such level.
pub fn one_group_levels(sample: &Sample) -> (Vec<bool>, Vec<String>) {
    let x = sample.x();
    let d = sample.d();
    let (groups, _) = discrete_groups(sample);
    let mut out = vec![false; sample.len()];
    let mut said = Vec::new();
    for g in &groups {
        let counts = g.counts(x, d);
        let lonely: Vec<&str> = counts
            .iter()
            .filter(|(_, c)| (c[0] == 0) != (c[1] == 0))
            .map(|(l, _)| *l)
            .collect();
        for l in &lonely {
            let c = counts[l];
            said.push(format!(
                "{}={l} (held by {} only)",
                g.factor,
                if c[0] > 0 {
                    format!("{} treated", c[0])
                } else {
                    format!("{} controls", c[1])
                }
            ));
        }
        for (i, o) in out.iter_mut().enumerate() {
            if lonely.contains(&g.level_of(x, i)) {
                *o = true;
            }
        }
    }
    (out, said)
}

/// Units dropped because their propensity lies outside the region of overlap.
#[derive(Debug, Clone, Serialize)]
pub struct Trimmed {
    /// The rule that set the bounds.
    pub rule: String,
    /// Units with a propensity in these bounds were kept.
    pub bounds: [f64; 2],
    /// Treated units dropped.
    pub treated: usize,
    /// Controls dropped.
    pub controls: usize,
    /// The population the estimate then describes.
    pub population: String,
}

/// Crump, Hotz, Imbens and Mitnik (2009): the α that minimises the variance of the
/// efficient ATE estimator on the units with a propensity in [α, 1 − α]. With
/// g = 1/(p(1 − p)), no unit is dropped when max g ≤ 2·mean g (their theorem); otherwise
/// γ = 1/(α(1 − α)) solves γ = 2·mean(g | g ≤ γ). On a sample that equation can have
/// several roots (each a local minimum of the variance bound Σ_{g ≤ γ} g / k², k units
/// kept); the one with the smallest bound is taken.
pub fn crump_alpha(ps: &[f64]) -> f64 {
    let mut g: Vec<f64> = ps
        .iter()
        .map(|&p| 1.0 / (p * (1.0 - p)))
        .map(|v| if v.is_finite() { v } else { f64::MAX })
        .collect();
    g.sort_unstable_by(f64::total_cmp);
    let n = g.len();
    let total: f64 = g.iter().sum();
    if n == 0 || g[n - 1] <= 2.0 * total / n as f64 {
        return 0.0;
    }
    let mut best: Option<(f64, f64)> = None; // (bound, γ)
    let mut sum = 0.0;
    for k in 0..n - 1 {
        sum += g[k];
        let kept = (k + 1) as f64;
        let gamma = 2.0 * sum / kept;
        // Between g[k] and g[k + 1] the conditional mean is that of the k + 1 smallest.
        if gamma >= g[k] && gamma < g[k + 1] {
            let bound = sum / (kept * kept);
            if best.is_none_or(|(b, _)| bound < b) {
                best = Some((bound, gamma));
            }
        }
    }
    // α(1 − α) = 1/γ, the root below ½ (γ ≥ 4 since every g is).
    best.map_or(0.0, |(_, gamma)| 0.5 - (0.25 - 1.0 / gamma).max(0.0).sqrt())
}

/// The bounds units are kept within: Crump et al.'s optimal [α, 1 − α] for the ATE, the
/// common support [max of the two minima, min of the two maxima] of the propensity in the
/// two groups for the ATT and the ATC (MatchIt's `discard = "both"`), or the bounds given.
pub fn support_bounds(
    ps: &[f64],
    d: &[bool],
    estimand: Estimand,
    given: Option<(f64, f64)>,
) -> ([f64; 2], String) {
    if let Some((lo, hi)) = given {
        return (
            [lo, hi],
            format!("propensity in the given bounds [{lo}, {hi}]"),
        );
    }
    match estimand {
        Estimand::Ate => {
            let a = crump_alpha(ps);
            (
                [a, 1.0 - a],
                format!(
                    "Crump, Hotz, Imbens and Mitnik (2009) optimal bounds: propensity in \
                     [{a:.4}, {:.4}]",
                    1.0 - a
                ),
            )
        }
        Estimand::Att | Estimand::Atc => {
            let range = |arm: bool| {
                ps.iter()
                    .zip(d)
                    .filter(|(_, t)| **t == arm)
                    .fold([f64::INFINITY, f64::NEG_INFINITY], |r, (&p, _)| {
                        [r[0].min(p), r[1].max(p)]
                    })
            };
            let (t, c) = (range(true), range(false));
            let b = [t[0].max(c[0]), t[1].min(c[1])];
            (
                b,
                format!(
                    "common support of the propensity in both groups (MatchIt's discard = \
                     \"both\"): [{:.4}, {:.4}]",
                    b[0], b[1]
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_with_factor(levels: &[(&str, bool)]) -> Sample {
        let mut names: Vec<&str> = levels.iter().map(|l| l.0).collect();
        names.sort_unstable();
        names.dedup();
        let dummies = &names[1..];
        let n = levels.len();
        let x = Array2::from_shape_fn((n, dummies.len()), |(i, j)| {
            f64::from(levels[i].0 == dummies[j])
        });
        let y: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let d: Vec<bool> = levels.iter().map(|l| l.1).collect();
        let s = Sample::new(
            y,
            d,
            x,
            dummies.iter().map(|l| format!("area={l}")).collect(),
        )
        .unwrap();
        let lv = dummies
            .iter()
            .map(|l| {
                Some(Level {
                    factor: "area".into(),
                    level: (*l).into(),
                    reference: names[0].into(),
                })
            })
            .collect();
        s.with_levels(lv).unwrap()
    }

    fn repeat(level: &'static str, treated: usize, controls: usize) -> Vec<(&'static str, bool)> {
        let mut v = vec![(level, true); treated];
        v.extend(vec![(level, false); controls]);
        v
    }

    #[test]
    fn two_rare_levels_are_pooled_and_a_lone_rare_level_joins_the_largest() {
        let mut units = repeat("A", 20, 30);
        units.extend(repeat("B", 10, 60));
        units.extend(repeat("E", 3, 2));
        units.extend(repeat("F", 4, 6));
        let s = sample_with_factor(&units);
        let (m, report) = merge_rare_levels(&s, 5);
        assert_eq!(m.names(), ["area=B", "area=E|F"]);
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].into.as_deref(), Some("E|F"));
        assert_eq!(
            report[0].rare,
            vec![("E".into(), [3, 2]), ("F".into(), [4, 6])]
        );
        // Each unit's new dummies agree with its old level.
        for i in 0..m.len() {
            let old = s.x().row(i).to_vec();
            let new = m.x().row(i).to_vec();
            assert_eq!(new[0], old[0]);
            assert_eq!(new[1], old[1] + old[2]);
        }
        // A single rare level (held by 2 controls and no treated unit) joins the largest.
        let mut units = repeat("A", 20, 30);
        units.extend(repeat("B", 10, 60));
        units.extend(repeat("Z", 0, 2));
        let (m, report) = merge_rare_levels(&sample_with_factor(&units), 5);
        assert_eq!(m.names(), ["area=B|Z"]);
        assert_eq!(report[0].rare, vec![("Z".into(), [0, 2])]);
        assert_eq!(m.x().column(0).sum(), 72.0);
    }

    #[test]
    fn a_rare_reference_level_is_merged_too_and_nothing_changes_without_rare_levels() {
        let mut units = repeat("A", 1, 1);
        units.extend(repeat("B", 10, 60));
        units.extend(repeat("C", 20, 30));
        let (m, report) = merge_rare_levels(&sample_with_factor(&units), 5);
        assert_eq!(report[0].rare, vec![("A".into(), [1, 1])]);
        assert_eq!(m.names(), ["area=C"]);
        let units = repeat("B", 10, 60)
            .into_iter()
            .chain(repeat("C", 20, 30))
            .collect::<Vec<_>>();
        let s = sample_with_factor(&units);
        let (m, report) = merge_rare_levels(&s, 5);
        assert!(report.is_empty());
        assert_eq!(m.x(), s.x());
    }

    #[test]
    fn a_rare_value_of_a_zero_one_covariate_leaves_it_out_and_other_columns_stay() {
        let n = 60;
        let d: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let x = Array2::from_shape_fn((n, 2), |(i, j)| match j {
            0 => (i as f64).sin(),
            _ => f64::from(i == 1 || i == 2), // held by two controls only
        });
        let s = Sample::new(vec![0.0; n], d, x, vec!["age".into(), "rare".into()]).unwrap();
        let (m, report) = merge_rare_levels(&s, 5);
        assert_eq!(m.names(), ["age"]);
        assert_eq!(report[0].covariate, "rare");
        assert_eq!(report[0].into, None);
    }

    proptest! {
        /// α solves Crump et al.'s equation: γ = 1/(α(1 − α)) equals twice the mean of the
        /// g = 1/(p(1 − p)) not above γ, with the smallest variance bound among its roots;
        /// α = 0 exactly when max g ≤ 2 mean g.
        #[test]
        fn crump_alpha_solves_its_equation(ps in prop::collection::vec(0.001f64..0.999, 2..300)) {
            let g: Vec<f64> = ps.iter().map(|p| 1.0 / (p * (1.0 - p))).collect();
            let mean = g.iter().sum::<f64>() / g.len() as f64;
            let max = g.iter().cloned().fold(0.0, f64::max);
            let a = crump_alpha(&ps);
            if max <= 2.0 * mean {
                prop_assert_eq!(a, 0.0);
            } else {
                prop_assert!(a > 0.0 && a < 0.5);
                let gamma = 1.0 / (a * (1.0 - a));
                let kept: Vec<f64> = g.iter().cloned().filter(|&v| v <= gamma * (1.0 + 1e-9)).collect();
                let m = kept.iter().sum::<f64>() / kept.len() as f64;
                prop_assert!((gamma - 2.0 * m).abs() <= 1e-7 * gamma, "γ {} vs 2·mean {}", gamma, 2.0 * m);
                // No other root keeps a set with a smaller variance bound Σg / k².
                let bound = kept.iter().sum::<f64>() / (kept.len() * kept.len()) as f64;
                let mut sorted = g.clone();
                sorted.sort_by(f64::total_cmp);
                let mut sum = 0.0;
                for k in 0..sorted.len() - 1 {
                    sum += sorted[k];
                    let root = 2.0 * sum / (k + 1) as f64;
                    if root >= sorted[k] && root < sorted[k + 1] {
                        prop_assert!(bound <= sum / ((k + 1) * (k + 1)) as f64 * (1.0 + 1e-12));
                    }
                }
            }
        }
    }

    #[test]
    fn common_support_is_the_overlap_of_the_two_ranges() {
        let ps = [0.05, 0.2, 0.5, 0.9, 0.1, 0.3, 0.95];
        let d = [false, false, false, false, true, true, true];
        let (b, _) = support_bounds(&ps, &d, Estimand::Att, None);
        assert_eq!(b, [0.1, 0.9]);
    }
}
