//! How good and how stable a clustering is: silhouette, adjusted Rand index, Jaccard.

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::{Error, Result};

/// Mean silhouette width (Rousseeuw 1987) with Euclidean distances, and each point's
/// width: s = (b − a) / max(a, b), where a is the mean distance to the other members of
/// the point's cluster and b the smallest mean distance to another cluster's members; 0
/// for a point alone in its cluster (as scikit-learn). Exact: O(n²) distances.
///
/// ```
/// use ndarray::array;
/// use occupa_engine::cluster::quality::silhouette;
///
/// let x = array![[0.0], [1.0], [10.0], [11.0]];
/// let (mean, _) = silhouette(x.view(), &[0, 0, 1, 1])?;
/// // Point 0: a = 1, b = (10 + 11) / 2, s = 1 − 1/10.5; the others alike.
/// let exact = (2.0 * (1.0 - 1.0 / 10.5) + 2.0 * (1.0 - 1.0 / 9.5)) / 4.0;
/// assert!((mean - exact).abs() < 1e-12);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
pub fn silhouette(x: ArrayView2<f64>, labels: &[usize]) -> Result<(f64, Vec<f64>)> {
    let x = x.as_standard_layout();
    let p = x.ncols();
    let xs = x.as_slice().unwrap_or(&[]);
    silhouette_with(x.nrows(), labels, |i, j| {
        xs[i * p..(i + 1) * p]
            .iter()
            .zip(&xs[j * p..(j + 1) * p])
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
    })
}

/// [`silhouette`] with any dissimilarity `dist(i, j)` between points i and j (e.g.
/// k-prototypes' mixed numeric and categorical one).
pub fn silhouette_with<D>(n: usize, labels: &[usize], dist: D) -> Result<(f64, Vec<f64>)>
where
    D: Fn(usize, usize) -> f64 + Sync,
{
    if labels.len() != n {
        return Err(Error::Param {
            name: "labels",
            reason: format!("{} labels for {n} rows", labels.len()),
        });
    }
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    if sizes.iter().filter(|&&s| s > 0).count() < 2 {
        return Err(Error::Estimation {
            method: "silhouette",
            reason: "it needs at least two clusters".into(),
        });
    }
    let widths: Vec<f64> = (0..n)
        .into_par_iter()
        .with_min_len(64)
        .map(|i| {
            let mut sum = vec![0.0f64; k];
            for j in 0..n {
                if j != i {
                    sum[labels[j]] += dist(i, j);
                }
            }
            let own = labels[i];
            if sizes[own] < 2 {
                return 0.0;
            }
            let a = sum[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| sum[c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            let m = a.max(b);
            if m > 0.0 { (b - a) / m } else { 0.0 }
        })
        .collect();
    let mean = widths.iter().sum::<f64>() / n as f64;
    Ok((mean, widths))
}

/// Pair counts of two labellings of the same points: (pairs together in both, pairs
/// together in the first, pairs together in the second, all pairs).
fn pair_counts(a: &[usize], b: &[usize]) -> (f64, f64, f64, f64) {
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![0u64; ka * kb];
    for (&x, &y) in a.iter().zip(b) {
        table[x * kb + y] += 1;
    }
    let c2 = |v: u64| (v as f64) * (v as f64 - 1.0) / 2.0;
    let both: f64 = table.iter().map(|&v| c2(v)).sum();
    let rows: f64 = (0..ka)
        .map(|x| c2((0..kb).map(|y| table[x * kb + y]).sum()))
        .sum();
    let cols: f64 = (0..kb)
        .map(|y| c2((0..ka).map(|x| table[x * kb + y]).sum()))
        .sum();
    (both, rows, cols, c2(a.len() as u64))
}

/// Adjusted Rand index (Hubert and Arabie 1985): 1 for identical partitions, about 0
/// for independent ones.
///
/// ```
/// use occupa_engine::cluster::quality::adjusted_rand;
/// assert_eq!(adjusted_rand(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
/// ```
pub fn adjusted_rand(a: &[usize], b: &[usize]) -> f64 {
    let (both, ra, rb, all) = pair_counts(a, b);
    let expected = ra * rb / all;
    let max = 0.5 * (ra + rb);
    if max == expected {
        return 1.0;
    }
    (both - expected) / (max - expected)
}

/// Jaccard index of the pairs put together: together in both / together in either.
pub fn pair_jaccard(a: &[usize], b: &[usize]) -> f64 {
    let (both, ra, rb, _) = pair_counts(a, b);
    let either = ra + rb - both;
    if either == 0.0 { 1.0 } else { both / either }
}
