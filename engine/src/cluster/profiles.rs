//! Readable profiles: for each cluster, what stands out against everyone (items and
//! scores far from the overall mean), a short generated label, and the profile table
//! that the reports chart.
//!
//! "Far" is measured in standard deviations of the whole: a cluster whose mean on a
//! column is at least half a standard deviation from the overall mean stands out on it
//! (Cohen's "medium" difference). For a nominal item, a category whose share in the
//! cluster exceeds its overall share by at least 20 points stands out.

use ndarray::ArrayView2;
use serde::Serialize;

use super::items::Items;
use super::lca::FittedLca;

/// Smallest |difference| in overall SDs that stands out.
const STANDOUT_SD: f64 = 0.5;
/// Smallest rise in a category's share (nominal items) that stands out.
const STANDOUT_SHARE: f64 = 0.2;
/// Standouts named in a label.
const IN_LABEL: usize = 3;

/// One cluster's profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// Cluster number, from 1.
    pub cluster: usize,
    /// People in it (most probable cluster).
    pub size: usize,
    /// Share of everyone (the model's class share for mixtures and LCA).
    pub share: f64,
    /// A short label in Italian from the strongest standouts, e.g. "N1 alto, C2 basso".
    pub label: String,
    /// The same in English, e.g. "high N1, low C2".
    pub label_en: String,
    /// Per column: the cluster's mean (or expected answer), in the columns' order.
    pub means: Vec<f64>,
    /// Per column: the difference from the overall mean in overall SDs.
    pub z: Vec<f64>,
    /// What stands out, strongest first.
    pub standouts: Vec<Standout>,
}

/// A column on which a cluster differs from everyone.
#[derive(Debug, Clone, Serialize)]
pub struct Standout {
    /// The column (item or score).
    pub column: String,
    /// For a nominal item, the category that is more frequent in the cluster.
    pub category: Option<String>,
    /// The cluster's value: mean, expected answer, or the category's share.
    pub value: f64,
    /// The same over everyone.
    pub overall: f64,
    /// Difference in overall SDs (numeric and ordinal columns) or in share (nominal).
    pub difference: f64,
}

/// Profiles of a partition of numeric data (k-means, mixtures, the numeric part of
/// k-prototypes): means per cluster against the overall mean and SD.
pub fn numeric_profiles(
    x: ArrayView2<f64>,
    names: &[String],
    labels: &[usize],
    k: usize,
    shares: Option<&[f64]>,
) -> Vec<Profile> {
    let (n, p) = x.dim();
    let mut sizes = vec![0usize; k];
    let mut sums = vec![0.0; k * p];
    for (i, &l) in labels.iter().enumerate() {
        sizes[l] += 1;
        for j in 0..p {
            sums[l * p + j] += x[[i, j]];
        }
    }
    let mean: Vec<f64> = (0..p).map(|j| x.column(j).sum() / n as f64).collect();
    let sd: Vec<f64> = (0..p)
        .map(|j| {
            (x.column(j)
                .iter()
                .map(|v| (v - mean[j]) * (v - mean[j]))
                .sum::<f64>()
                / n as f64)
                .sqrt()
        })
        .collect();
    (0..k)
        .map(|c| {
            let means: Vec<f64> = (0..p)
                .map(|j| {
                    if sizes[c] > 0 {
                        sums[c * p + j] / sizes[c] as f64
                    } else {
                        f64::NAN
                    }
                })
                .collect();
            let z: Vec<f64> = (0..p)
                .map(|j| {
                    if sd[j] > 0.0 {
                        (means[j] - mean[j]) / sd[j]
                    } else {
                        0.0
                    }
                })
                .collect();
            let standouts = (0..p)
                .filter(|&j| z[j].abs() >= STANDOUT_SD)
                .map(|j| Standout {
                    column: names[j].clone(),
                    category: None,
                    value: means[j],
                    overall: mean[j],
                    difference: z[j],
                })
                .collect();
            finish(
                c,
                sizes[c],
                shares.map_or(sizes[c] as f64 / n as f64, |s| s[c]),
                means,
                z,
                standouts,
            )
        })
        .collect()
}

/// Profiles of latent classes: per item, the class's expected answer (items whose
/// categories are all numbers are ordinal) or, for nominal items, the category whose
/// share rises most, against the whole sample's.
pub fn lca_profiles(fit: &FittedLca) -> Vec<Profile> {
    let items: &Items = &fit.items;
    let r = fit.classes;
    let labels = fit.labels();
    let mut sizes = vec![0usize; r];
    for &l in &labels {
        sizes[l] += 1;
    }
    let mut per_class: Vec<(Vec<f64>, Vec<f64>, Vec<Standout>)> =
        vec![(Vec::new(), Vec::new(), Vec::new()); r];
    for j in 0..items.len() {
        let cats = items.categories(j);
        // Overall distribution: the mixture of the classes' answer probabilities.
        let overall: Vec<f64> = (0..cats)
            .map(|k| (0..r).map(|c| fit.shares[c] * fit.probs[j][[c, k]]).sum())
            .collect();
        let values: Option<Vec<f64>> = items.labels(j).iter().map(|l| l.parse().ok()).collect();
        for c in 0..r {
            let pr = fit.probs[j].row(c);
            match &values {
                Some(v) => {
                    let m_all: f64 = (0..cats).map(|k| overall[k] * v[k]).sum();
                    let sd = (0..cats)
                        .map(|k| overall[k] * (v[k] - m_all) * (v[k] - m_all))
                        .sum::<f64>()
                        .sqrt();
                    let m: f64 = (0..cats).map(|k| pr[k] * v[k]).sum();
                    let z = if sd > 0.0 { (m - m_all) / sd } else { 0.0 };
                    per_class[c].0.push(m);
                    per_class[c].1.push(z);
                    if z.abs() >= STANDOUT_SD {
                        per_class[c].2.push(Standout {
                            column: items.names()[j].clone(),
                            category: None,
                            value: m,
                            overall: m_all,
                            difference: z,
                        });
                    }
                }
                None => {
                    let (k, rise) = (0..cats)
                        .map(|k| (k, pr[k] - overall[k]))
                        .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
                    per_class[c].0.push(pr[k]);
                    per_class[c].1.push(rise);
                    if rise >= STANDOUT_SHARE {
                        per_class[c].2.push(Standout {
                            column: items.names()[j].clone(),
                            category: Some(items.labels(j)[k].clone()),
                            value: pr[k],
                            overall: overall[k],
                            difference: rise,
                        });
                    }
                }
            }
        }
    }
    per_class
        .into_iter()
        .enumerate()
        .map(|(c, (means, z, standouts))| finish(c, sizes[c], fit.shares[c], means, z, standouts))
        .collect()
}

fn finish(
    c: usize,
    size: usize,
    share: f64,
    means: Vec<f64>,
    z: Vec<f64>,
    mut standouts: Vec<Standout>,
) -> Profile {
    standouts.sort_by(|a, b| {
        b.difference
            .abs()
            .total_cmp(&a.difference.abs())
            .then_with(|| a.column.cmp(&b.column))
    });
    let words = |high: &str, low: &str, it: bool| -> String {
        let parts: Vec<String> = standouts
            .iter()
            .take(IN_LABEL)
            .map(|s| match &s.category {
                Some(cat) if it => format!("{} = {cat} più frequente", s.column),
                Some(cat) => format!("more often {} = {cat}", s.column),
                None if it => {
                    format!(
                        "{} {}",
                        s.column,
                        if s.difference > 0.0 { high } else { low }
                    )
                }
                None => format!(
                    "{} {}",
                    if s.difference > 0.0 { high } else { low },
                    s.column
                ),
            })
            .collect();
        if parts.is_empty() {
            if it {
                "nella media".into()
            } else {
                "average".into()
            }
        } else {
            parts.join(", ")
        }
    };
    Profile {
        cluster: c + 1,
        size,
        share,
        label: words("alto", "basso", true),
        label_en: words("high", "low", false),
        means,
        z,
        standouts,
    }
}
