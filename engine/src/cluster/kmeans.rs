//! k-means: k-means++ seeding (the greedy variant scikit-learn uses), then Hamerly's
//! exact algorithm (2010) until no point changes cluster, from several starts in parallel.
//!
//! Hamerly's bounds (an upper bound on each point's distance to its own centre, a lower
//! bound on the distance to any other) let most points skip the distance computations
//! once the centres settle, and centre sums are updated only for points that move: the
//! result is Lloyd's fixed point, reached at a fraction of the cost. We run to that fixed
//! point (no tolerance on centre shifts), so a start stops at a local optimum of the
//! inertia rather than near one. linfa's k-means is plain Lloyd; hence our own here.
//!
//! Points are processed in fixed chunks whose results are combined in chunk order, and
//! start s draws from a generator seeded by (seed, s): the same seed gives the same
//! clusters whatever the number of threads.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::{Error, Result};

/// Points per chunk of the ordered parallel passes.
const CHUNK: usize = 4096;

/// k-means with `k` clusters.
///
/// ```
/// use ndarray::array;
/// use occupa_engine::cluster::kmeans::KMeans;
///
/// let x = array![[1.0, 1.0], [1.2, 0.8], [0.9, 1.1], [8.0, 8.0], [8.2, 7.9], [7.9, 8.1]];
/// let fit = KMeans::new(2)?.seed(3).fit(x.view())?;
/// assert_eq!(fit.sizes, vec![3, 3]);
/// assert_eq!(fit.predict(array![[7.5, 8.0]].view())?, vec![fit.labels[3]]);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct KMeans {
    k: usize,
    starts: usize,
    max_iter: usize,
    seed: u64,
    standardise: bool,
}

/// A fitted k-means clustering; clusters in decreasing order of size.
#[derive(Debug, Clone, Serialize)]
pub struct FittedKMeans {
    /// Number of clusters.
    pub k: usize,
    /// Sum of squared distances of the points to their centres (in the space clustered:
    /// standardised when asked).
    pub inertia: f64,
    /// Points per cluster.
    pub sizes: Vec<usize>,
    /// Centres on the data's own scale (k × columns).
    #[serde(skip)]
    pub centres: Array2<f64>,
    /// Cluster of each point.
    #[serde(skip)]
    pub labels: Vec<usize>,
    /// Iterations of the best start.
    pub iterations: usize,
    /// Whether the best start reached a fixed point (rather than the iteration limit).
    pub converged: bool,
    /// Inertia reached by each start, in start order.
    pub start_inertias: Vec<f64>,
    /// Column means and standard deviations used to standardise, if the data were.
    #[serde(skip)]
    scale: Option<(Vec<f64>, Vec<f64>)>,
}

impl KMeans {
    /// `k` clusters (at least 1), 10 starts, at most 300 iterations each, raw data,
    /// seed 0.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::Param {
                name: "k",
                reason: "at least one cluster".into(),
            });
        }
        Ok(KMeans {
            k,
            starts: 10,
            max_iter: 300,
            seed: 0,
            standardise: false,
        })
    }

    /// Number of k-means++ starts (at least 1); the lowest inertia wins.
    pub fn starts(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "starts",
                reason: "at least one start".into(),
            });
        }
        self.starts = n;
        Ok(self)
    }

    /// Most iterations per start.
    pub fn max_iter(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "max_iter",
                reason: "at least one iteration".into(),
            });
        }
        self.max_iter = n;
        Ok(self)
    }

    /// Seed of the starts.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Cluster z-scores (each column minus its mean, over its population standard
    /// deviation) instead of the raw values.
    pub fn standardise(mut self, on: bool) -> Self {
        self.standardise = on;
        self
    }

    /// Clusters the rows of `x` (no missing values).
    pub fn fit(&self, x: ArrayView2<f64>) -> Result<FittedKMeans> {
        let (n, p) = x.dim();
        if n < self.k {
            return Err(Error::Estimation {
                method: "k-means",
                reason: format!("{n} rows for {} clusters; use fewer clusters", self.k),
            });
        }
        if let Some((i, j)) = x
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(ij, _)| ij)
        {
            return Err(Error::Estimation {
                method: "k-means",
                reason: format!("row {}, column {}: not a finite number", i + 1, j + 1),
            });
        }
        let (data, scale) = if self.standardise {
            let (z, mean, sd) = standardise(x)?;
            (z, Some((mean, sd)))
        } else {
            (x.as_standard_layout().into_owned(), None)
        };
        let xs = data.as_slice().unwrap_or(&[]);
        let runs: Vec<Run> = (0..self.starts)
            .into_par_iter()
            .map(|s| {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    self.seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let init = seed_plus_plus(xs, n, p, self.k, &mut rng);
                hamerly(xs, n, p, self.k, init, self.max_iter)
            })
            .collect();
        let start_inertias: Vec<f64> = runs.iter().map(|r| r.inertia).collect();
        let best = runs
            .into_iter()
            .reduce(|a, b| if b.inertia < a.inertia { b } else { a })
            .ok_or_else(|| Error::Estimation {
                method: "k-means",
                reason: "no start".into(),
            })?;
        let (centres, labels, sizes) = canonical(best.centres, best.labels, self.k, p);
        let centres = match &scale {
            Some((mean, sd)) => {
                Array2::from_shape_fn((self.k, p), |(c, j)| centres[c * p + j] * sd[j] + mean[j])
            }
            None => {
                Array2::from_shape_vec((self.k, p), centres).map_err(|e| Error::Estimation {
                    method: "k-means",
                    reason: e.to_string(),
                })?
            }
        };
        Ok(FittedKMeans {
            k: self.k,
            inertia: best.inertia,
            sizes,
            centres,
            labels,
            iterations: best.iterations,
            converged: best.converged,
            start_inertias,
            scale,
        })
    }
}

impl FittedKMeans {
    /// The nearest centre of each row of `x` (same columns as the fit).
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<usize>> {
        let p = self.centres.ncols();
        if x.ncols() != p {
            return Err(Error::Param {
                name: "x",
                reason: format!("{} columns; the model has {p}", x.ncols()),
            });
        }
        let centres: Vec<f64> = match &self.scale {
            Some((mean, sd)) => self
                .centres
                .indexed_iter()
                .map(|((_, j), v)| (v - mean[j]) / sd[j])
                .collect(),
            None => self.centres.iter().copied().collect(),
        };
        Ok(x.rows()
            .into_iter()
            .map(|r| {
                let z: Vec<f64> = match &self.scale {
                    Some((mean, sd)) => r
                        .iter()
                        .enumerate()
                        .map(|(j, v)| (v - mean[j]) / sd[j])
                        .collect(),
                    None => r.to_vec(),
                };
                nearest(&z, &centres, p).0
            })
            .collect())
    }
}

/// Column z-scores with population standard deviations.
pub(crate) fn standardise(x: ArrayView2<f64>) -> Result<(Array2<f64>, Vec<f64>, Vec<f64>)> {
    let (n, p) = x.dim();
    let mut mean = vec![0.0; p];
    let mut sd = vec![0.0; p];
    for j in 0..p {
        let col = x.column(j);
        let m = col.sum() / n as f64;
        let v = col.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n as f64;
        if v <= 0.0 || !v.is_finite() {
            return Err(Error::Estimation {
                method: "standardisation",
                reason: format!("column {} is constant; leave it out", j + 1),
            });
        }
        mean[j] = m;
        sd[j] = v.sqrt();
    }
    let z = Array2::from_shape_fn((n, p), |(i, j)| (x[[i, j]] - mean[j]) / sd[j]);
    Ok((z, mean, sd))
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The nearest of the centres (k × p, flat) to `x`, and its squared distance.
fn nearest(x: &[f64], centres: &[f64], p: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, centre) in centres.chunks_exact(p).enumerate() {
        let d = sq_dist(x, centre);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// Greedy k-means++ (Arthur and Vassilvitskii 2007, with scikit-learn's 2 + ⌊ln k⌋
/// candidates per centre, keeping the one that lowers the potential most).
fn seed_plus_plus(x: &[f64], n: usize, p: usize, k: usize, rng: &mut impl Rng) -> Vec<f64> {
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = Vec::with_capacity(k * p);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(&x[first * p..(first + 1) * p]);
    let mut closest: Vec<f64> = (0..n)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| sq_dist(&x[i * p..(i + 1) * p], &centres[..p]))
        .collect();
    for _ in 1..k {
        // Candidates drawn with probability proportional to the squared distance.
        let mut cum = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &d in &closest {
            acc += d;
            cum.push(acc);
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let u = rng.random::<f64>() * acc;
                cum.partition_point(|&c| c <= u).min(n - 1)
            })
            .collect();
        let mut best: Option<(f64, usize)> = None;
        for &c in &candidates {
            let cand = &x[c * p..(c + 1) * p];
            let potential = chunk_sums(n, |a, b| {
                (a..b)
                    .map(|i| closest[i].min(sq_dist(&x[i * p..(i + 1) * p], cand)))
                    .sum()
            });
            if best.is_none_or(|(pot, _)| potential < pot) {
                best = Some((potential, c));
            }
        }
        let c = best.map_or(candidates[0], |b| b.1);
        let cand = x[c * p..(c + 1) * p].to_vec();
        closest
            .par_iter_mut()
            .with_min_len(CHUNK)
            .enumerate()
            .for_each(|(i, d)| *d = d.min(sq_dist(&x[i * p..(i + 1) * p], &cand)));
        centres.extend_from_slice(&cand);
    }
    centres
}

/// Σ over fixed chunks of `f(start, end)`, added in chunk order.
fn chunk_sums(n: usize, f: impl Fn(usize, usize) -> f64 + Sync) -> f64 {
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let parts: Vec<f64> = starts
        .par_iter()
        .map(|&a| f(a, (a + CHUNK).min(n)))
        .collect();
    parts.iter().sum()
}

/// One start's result.
struct Run {
    centres: Vec<f64>,
    labels: Vec<usize>,
    inertia: f64,
    iterations: usize,
    converged: bool,
}

/// What a chunk of the assignment pass changed: per-cluster sums and counts.
struct Moves {
    sums: Vec<f64>,
    counts: Vec<i64>,
    moved: usize,
}

/// Hamerly's algorithm from `centres` until no point moves.
fn hamerly(x: &[f64], n: usize, p: usize, k: usize, mut centres: Vec<f64>, max_iter: usize) -> Run {
    let mut label = vec![0usize; n];
    let mut upper = vec![0.0f64; n];
    let mut lower = vec![0.0f64; n];
    // Everyone's first assignment is a full scan.
    let first = assign(x, p, k, &centres, &mut label, &mut upper, &mut lower, None);
    let mut sums = first.sums;
    let mut counts = first.counts;
    let mut iterations = 0;
    let mut converged = false;
    let mut half_gap = vec![0.0f64; k];
    for it in 1..=max_iter {
        iterations = it;
        fill_empty(
            x,
            p,
            k,
            &mut label,
            &mut upper,
            &mut lower,
            &mut sums,
            &mut counts,
        );
        // New centres and how far each moved.
        let mut shift = vec![0.0f64; k];
        for c in 0..k {
            let cnt = counts[c] as f64;
            let old = centres[c * p..(c + 1) * p].to_vec();
            for j in 0..p {
                centres[c * p + j] = sums[c * p + j] / cnt;
            }
            shift[c] = sq_dist(&old, &centres[c * p..(c + 1) * p]).sqrt();
        }
        let (mut r1, mut r2) = (0usize, usize::MAX);
        for c in 1..k {
            if shift[c] > shift[r1] {
                r2 = r1;
                r1 = c;
            } else if r2 == usize::MAX || shift[c] > shift[r2] {
                r2 = c;
            }
        }
        let second = if r2 == usize::MAX { 0.0 } else { shift[r2] };
        upper
            .par_iter_mut()
            .zip(lower.par_iter_mut())
            .zip(label.par_iter())
            .with_min_len(CHUNK)
            .for_each(|((u, l), &a)| {
                *u += shift[a];
                *l -= if a == r1 { second } else { shift[r1] };
            });
        // Half the distance from each centre to its nearest other centre.
        for c in 0..k {
            let mut m = f64::INFINITY;
            for o in 0..k {
                if o != c {
                    m = m.min(sq_dist(
                        &centres[c * p..(c + 1) * p],
                        &centres[o * p..(o + 1) * p],
                    ));
                }
            }
            half_gap[c] = 0.5 * m.sqrt();
        }
        let moves = assign(
            x,
            p,
            k,
            &centres,
            &mut label,
            &mut upper,
            &mut lower,
            Some(&half_gap),
        );
        if moves.moved == 0 {
            converged = true;
            break;
        }
        for (s, d) in sums.iter_mut().zip(&moves.sums) {
            *s += d;
        }
        for (c, d) in counts.iter_mut().zip(&moves.counts) {
            *c += d;
        }
    }
    // Exact means and inertia of the final assignment (the running sums drift).
    let mut exact = vec![0.0f64; k * p];
    let mut cnt = vec![0usize; k];
    for i in 0..n {
        let c = label[i];
        cnt[c] += 1;
        for j in 0..p {
            exact[c * p + j] += x[i * p + j];
        }
    }
    for c in 0..k {
        if cnt[c] > 0 {
            for j in 0..p {
                exact[c * p + j] /= cnt[c] as f64;
            }
        } else {
            exact[c * p..(c + 1) * p].copy_from_slice(&centres[c * p..(c + 1) * p]);
        }
    }
    let inertia = chunk_sums(n, |a, b| {
        (a..b)
            .map(|i| {
                sq_dist(
                    &x[i * p..(i + 1) * p],
                    &exact[label[i] * p..(label[i] + 1) * p],
                )
            })
            .sum()
    });
    Run {
        centres: exact,
        labels: label,
        inertia,
        iterations,
        converged,
    }
}

/// The assignment pass. With `half_gap`, a point is rescanned only when its bounds do
/// not prove its centre is still the nearest; without, every point is scanned and the
/// sums and counts returned are totals rather than changes.
#[allow(clippy::too_many_arguments)]
fn assign(
    x: &[f64],
    p: usize,
    k: usize,
    centres: &[f64],
    label: &mut [usize],
    upper: &mut [f64],
    lower: &mut [f64],
    half_gap: Option<&[f64]>,
) -> Moves {
    let parts: Vec<Moves> = label
        .par_chunks_mut(CHUNK)
        .zip(upper.par_chunks_mut(CHUNK))
        .zip(lower.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(chunk, ((lab, up), lo))| {
            let mut m = Moves {
                sums: vec![0.0; k * p],
                counts: vec![0; k],
                moved: 0,
            };
            for t in 0..lab.len() {
                let i = chunk * CHUNK + t;
                let xi = &x[i * p..(i + 1) * p];
                let a = lab[t];
                if let Some(gap) = half_gap {
                    let bound = gap[a].max(lo[t]);
                    if up[t] <= bound {
                        continue;
                    }
                    up[t] = sq_dist(xi, &centres[a * p..(a + 1) * p]).sqrt();
                    if up[t] <= bound {
                        continue;
                    }
                }
                // Nearest and second nearest centres.
                let (mut b1, mut d1, mut d2) = (0usize, f64::INFINITY, f64::INFINITY);
                for c in 0..k {
                    let d = sq_dist(xi, &centres[c * p..(c + 1) * p]);
                    if d < d1 {
                        d2 = d1;
                        d1 = d;
                        b1 = c;
                    } else if d < d2 {
                        d2 = d;
                    }
                }
                up[t] = d1.sqrt();
                lo[t] = d2.sqrt();
                if half_gap.is_none() {
                    lab[t] = b1;
                    m.counts[b1] += 1;
                    for j in 0..p {
                        m.sums[b1 * p + j] += xi[j];
                    }
                } else if b1 != a {
                    lab[t] = b1;
                    m.moved += 1;
                    m.counts[a] -= 1;
                    m.counts[b1] += 1;
                    for j in 0..p {
                        m.sums[a * p + j] -= xi[j];
                        m.sums[b1 * p + j] += xi[j];
                    }
                }
            }
            m
        })
        .collect();
    let mut out = Moves {
        sums: vec![0.0; k * p],
        counts: vec![0; k],
        moved: 0,
    };
    for m in parts {
        out.moved += m.moved;
        for (o, v) in out.sums.iter_mut().zip(&m.sums) {
            *o += v;
        }
        for (o, v) in out.counts.iter_mut().zip(&m.counts) {
            *o += v;
        }
    }
    out
}

/// An empty cluster takes the point farthest from its centre (among clusters of more
/// than one point), as scikit-learn does.
#[allow(clippy::too_many_arguments)]
fn fill_empty(
    x: &[f64],
    p: usize,
    k: usize,
    label: &mut [usize],
    upper: &mut [f64],
    lower: &mut [f64],
    sums: &mut [f64],
    counts: &mut [i64],
) {
    for c in 0..k {
        if counts[c] > 0 {
            continue;
        }
        let far = (0..label.len())
            .filter(|&i| counts[label[i]] > 1)
            .max_by(|&a, &b| upper[a].total_cmp(&upper[b]).then(b.cmp(&a)));
        let Some(i) = far else { return };
        let old = label[i];
        counts[old] -= 1;
        counts[c] += 1;
        for j in 0..p {
            sums[old * p + j] -= x[i * p + j];
            sums[c * p + j] += x[i * p + j];
        }
        label[i] = c;
        // Its new centre will be the point itself; the next pass rechecks it.
        upper[i] = f64::INFINITY;
        lower[i] = 0.0;
    }
}

/// Clusters in decreasing order of size (then by centre), labels renumbered to match.
fn canonical(
    centres: Vec<f64>,
    labels: Vec<usize>,
    k: usize,
    p: usize,
) -> (Vec<f64>, Vec<usize>, Vec<usize>) {
    let mut sizes = vec![0usize; k];
    for &l in &labels {
        sizes[l] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| {
        sizes[b].cmp(&sizes[a]).then_with(|| {
            centres[a * p..(a + 1) * p]
                .iter()
                .zip(&centres[b * p..(b + 1) * p])
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    let mut new_of = vec![0usize; k];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new;
    }
    let c: Vec<f64> = order
        .iter()
        .flat_map(|&o| centres[o * p..(o + 1) * p].iter().copied())
        .collect();
    let labels = labels.into_iter().map(|l| new_of[l]).collect();
    let sizes = order.iter().map(|&o| sizes[o]).collect();
    (c, labels, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn blobs(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, 1.0).unwrap();
        Array2::from_shape_fn((n, 3), |(i, j)| {
            let centre = [
                (0.0, 0.0, 0.0),
                (4.0, 0.0, 1.0),
                (0.0, 5.0, -2.0),
                (3.0, 3.0, 3.0),
            ][i % 4];
            [centre.0, centre.1, centre.2][j] + noise.sample(&mut rng) * 1.5
        })
    }

    #[test]
    fn the_result_is_a_lloyd_fixed_point() {
        // Overlapping blobs: many points near boundaries, where bounds matter most.
        let x = blobs(5_000, 1);
        for k in [1, 2, 4, 7] {
            let fit = KMeans::new(k)
                .unwrap()
                .starts(3)
                .unwrap()
                .seed(5)
                .fit(x.view())
                .unwrap();
            assert!(fit.converged);
            let c = fit.centres.as_slice().unwrap();
            let mut inertia = 0.0;
            for (i, row) in x.rows().into_iter().enumerate() {
                let (near, d) = nearest(row.as_slice().unwrap(), c, 3);
                let own = sq_dist(
                    row.as_slice().unwrap(),
                    &c[fit.labels[i] * 3..fit.labels[i] * 3 + 3],
                );
                assert!(
                    own <= d + 1e-9,
                    "k={k} row {i}: nearest {near}, labelled {}",
                    fit.labels[i]
                );
                inertia += own;
            }
            assert!((inertia - fit.inertia).abs() < 1e-9 * inertia, "k={k}");
            for cl in 0..k {
                let members: Vec<usize> = (0..x.nrows()).filter(|&i| fit.labels[i] == cl).collect();
                assert_eq!(members.len(), fit.sizes[cl]);
                for j in 0..3 {
                    let m = members.iter().map(|&i| x[[i, j]]).sum::<f64>() / members.len() as f64;
                    assert!((m - fit.centres[[cl, j]]).abs() < 1e-9);
                }
            }
            assert!(fit.sizes.windows(2).all(|w| w[0] >= w[1]));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_clusters_on_one_thread_or_two() {
        let x = blobs(20_000, 2);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| KMeans::new(5).unwrap().seed(9).fit(x.view()).unwrap())
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.inertia.to_bits(), b.inertia.to_bits());
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.start_inertias, b.start_inertias);
    }
}
