//! k-means: k-means++ seeding (the greedy variant scikit-learn uses), then Hamerly's
//! exact algorithm (2010), from several starts in parallel.
//!
//! Hamerly's bounds (an upper bound on each point's distance to its own centre, a lower
//! bound on the distance to any other) let most points skip the distance computations
//! once the centres settle, and centre sums are updated only for points that move: each
//! iteration is exactly a Lloyd iteration, at a fraction of the cost. It stops on
//! scikit-learn's rule (centre shifts below `tol` of the data's variance) or, with
//! `tol(0.0)`, at Lloyd's fixed point. Seeding computes its distances between data
//! points, in integers when the values are small whole numbers (questionnaire answers).
//! linfa's k-means is plain Lloyd on f64; hence our own here.
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
    tol: f64,
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
    /// Whether the best start met the stopping rule (rather than the iteration limit).
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
            tol: 1e-4,
            seed: 0,
            standardise: false,
        })
    }

    /// Stop when the centres' squared shifts in an iteration add up to at most `tol`
    /// times the mean column variance (scikit-learn's rule and default, 1e-4); 0 runs
    /// to Lloyd's fixed point, where no point changes cluster. With many clusters on
    /// large data the fixed point can take hundreds of iterations that each move a
    /// handful of points and change the inertia by less than a millionth.
    pub fn tol(mut self, tol: f64) -> Result<Self> {
        if !(tol >= 0.0 && tol.is_finite()) {
            return Err(Error::Param {
                name: "tol",
                reason: format!("{tol} must be zero or positive"),
            });
        }
        self.tol = tol;
        Ok(self)
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
            (ndarray::CowArray::from(z), Some((mean, sd)))
        } else {
            (x.as_standard_layout(), None)
        };
        // The stopping threshold on the centres' total squared shift.
        let shift_tol = self.tol * mean_variance(data.view());
        let xs = data.as_slice().unwrap_or(&[]);
        // Small whole numbers are stored as bytes (exactly: the distances are the same).
        let bytes: Option<Vec<u8>> = xs
            .iter()
            .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0)
            .then(|| xs.iter().map(|&v| v as u8).collect());
        let runs: Vec<Run> = (0..self.starts)
            .into_par_iter()
            .map(|s| {
                let mut rng = ChaCha8Rng::seed_from_u64(super::start_seed(self.seed, s));
                match &bytes {
                    Some(b) => {
                        let init = seed_plus_plus(b, n, p, self.k, &mut rng);
                        elkan(b, n, p, self.k, init, self.max_iter, shift_tol)
                    }
                    None => {
                        let init = seed_plus_plus(xs, n, p, self.k, &mut rng);
                        elkan(xs, n, p, self.k, init, self.max_iter, shift_tol)
                    }
                }
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
        // The best start alone is run on to Lloyd's fixed point: the stopping rule
        // saves time on every start, and the winner still ends at a local optimum.
        let best = if self.tol > 0.0 {
            let polished = match &bytes {
                Some(b) => {
                    let s = seed_from(b, n, p, self.k, best.centres.clone());
                    elkan(b, n, p, self.k, s, self.max_iter, 0.0)
                }
                None => {
                    let s = seed_from(xs, n, p, self.k, best.centres.clone());
                    elkan(xs, n, p, self.k, s, self.max_iter, 0.0)
                }
            };
            if polished.inertia <= best.inertia {
                Run {
                    iterations: best.iterations + polished.iterations,
                    ..polished
                }
            } else {
                best
            }
        } else {
            best
        };
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
    /// A model from saved centres (k × columns, on the data's scale) and the column
    /// means and SDs if the fit clustered z-scores.
    pub fn from_parts(centres: Array2<f64>, scale: Option<(Vec<f64>, Vec<f64>)>) -> Result<Self> {
        let (k, p) = centres.dim();
        if k == 0
            || scale
                .as_ref()
                .is_some_and(|(m, s)| m.len() != p || s.len() != p)
        {
            return Err(Error::Param {
                name: "model",
                reason: "no centres, or a standardisation of another width".into(),
            });
        }
        Ok(FittedKMeans {
            k,
            inertia: f64::NAN,
            sizes: Vec::new(),
            centres,
            labels: Vec::new(),
            iterations: 0,
            converged: true,
            start_inertias: Vec::new(),
            scale,
        })
    }

    /// Column means and SDs, if the fit clustered z-scores.
    pub fn scale(&self) -> Option<&(Vec<f64>, Vec<f64>)> {
        self.scale.as_ref()
    }

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

/// Mean over columns of their population variance.
fn mean_variance(x: ArrayView2<f64>) -> f64 {
    let (n, p) = x.dim();
    if n == 0 || p == 0 {
        return 0.0;
    }
    let total: f64 = x
        .columns()
        .into_iter()
        .map(|c| {
            let m = c.sum() / n as f64;
            c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64
        })
        .sum();
    total / p as f64
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

/// A stored coordinate: f64, or u8 when every value is a small whole number (Likert
/// answers, counts): a million rows of 75 answers are then 75 MB instead of 600, and the
/// passes over them are bound by arithmetic rather than memory bandwidth.
pub(crate) trait Coord: Copy + Send + Sync + Into<f64> {
    /// Squared distance between two stored points.
    fn point_dist(a: &[Self], b: &[Self]) -> f64;
}

impl Coord for f64 {
    fn point_dist(a: &[f64], b: &[f64]) -> f64 {
        sq_dist(a, b)
    }
}

impl Coord for u8 {
    /// Exact in integers, which vectorise freely (no rounding order to keep): 16-bit
    /// differences, squared and summed in 32-bit lanes.
    fn point_dist(a: &[u8], b: &[u8]) -> f64 {
        let n = a.len().min(b.len());
        let body = n - n % 16;
        let mut acc = [0i32; 16];
        for (x, y) in a[..body].chunks_exact(16).zip(b[..body].chunks_exact(16)) {
            for l in 0..16 {
                let d = i32::from(i16::from(x[l]) - i16::from(y[l]));
                acc[l] += d * d;
            }
        }
        let mut s: i64 = acc.iter().map(|&v| i64::from(v)).sum();
        for i in body..n {
            let d = i64::from(a[i]) - i64::from(b[i]);
            s += d * d;
        }
        s as f64
    }
}

/// Squared distance, with four running sums so that the loop vectorises (one sum would
/// force strict left-to-right order).
fn sq_dist<T: Coord>(a: &[T], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let body = n - n % 4;
    let mut acc = [0.0f64; 4];
    for (x, y) in a[..body].chunks_exact(4).zip(b[..body].chunks_exact(4)) {
        for l in 0..4 {
            let d = x[l].into() - y[l];
            acc[l] += d * d;
        }
    }
    let mut tail = 0.0;
    for i in body..n {
        let d = a[i].into() - b[i];
        tail += d * d;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// The nearest of the centres (k × p, flat) to `x`, and its squared distance.
fn nearest<T: Coord>(x: &[T], centres: &[f64], p: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (c, centre) in centres.chunks_exact(p).enumerate() {
        let d = sq_dist(x, centre);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// What seeding leaves: the centres, every point's nearest centre, and its distance to
/// every centre (Elkan's starting bounds, exact: no separate first assignment pass).
struct Seeded {
    centres: Vec<f64>,
    label: Vec<usize>,
    /// n × k distances (not squared), rounded down to f32.
    dist: Vec<f32>,
    /// The exact distance to the nearest centre.
    nearest: Vec<f64>,
}

/// The largest f32 not above `v`: a lower bound stays one in single precision, which
/// halves the memory the bounds take and the bytes each iteration reads.
fn down(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) > v { f.next_down() } else { f }
}

/// Elkan's starting state from given centres: every distance computed once.
fn seed_from<T: Coord>(x: &[T], n: usize, p: usize, k: usize, centres: Vec<f64>) -> Seeded {
    let mut dist = vec![0.0f32; n * k];
    let mut label = vec![0usize; n];
    let mut nearest = vec![0.0f64; n];
    dist.par_chunks_mut(k)
        .zip(label.par_iter_mut())
        .zip(nearest.par_iter_mut())
        .enumerate()
        .with_min_len(CHUNK)
        .for_each(|(i, ((row, l), near))| {
            let xi = &x[i * p..(i + 1) * p];
            let mut best = f64::INFINITY;
            for c in 0..k {
                let d = sq_dist(xi, &centres[c * p..(c + 1) * p]).sqrt();
                row[c] = down(d);
                if d < best {
                    best = d;
                    *l = c;
                }
            }
            *near = best;
        });
    Seeded {
        centres,
        label,
        dist,
        nearest,
    }
}

/// Greedy k-means++ (Arthur and Vassilvitskii 2007, with scikit-learn's 2 + ⌊ln k⌋
/// candidates per centre, keeping the one that lowers the potential most). Candidates
/// are data points, so their distances are computed between stored points (in integers
/// for small whole numbers); one pass per centre evaluates every candidate.
fn seed_plus_plus<T: Coord>(x: &[T], n: usize, p: usize, k: usize, rng: &mut impl Rng) -> Seeded {
    let trials = 2 + (k as f64).ln().floor() as usize;
    let row = |i: usize| &x[i * p..(i + 1) * p];
    let first = rng.random_range(0..n);
    let mut chosen = vec![first];
    let mut d1: Vec<f64> = (0..n)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| T::point_dist(row(i), row(first)))
        .collect();
    let mut dist = vec![0.0f32; n * k];
    for (i, d) in d1.iter().enumerate() {
        dist[i * k] = down(d.sqrt());
    }
    let mut label = vec![0usize; n];
    let mut cum = vec![0.0f64; n];
    let mut raw = vec![0.0f64; trials * n];
    for c in 1..k {
        // Candidates drawn with probability proportional to the squared distance.
        let mut acc = 0.0;
        for (s, &d) in cum.iter_mut().zip(&d1) {
            acc += d;
            *s = acc;
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let u = rng.random::<f64>() * acc;
                cum.partition_point(|&s| s <= u).min(n - 1)
            })
            .collect();
        // Per chunk: each candidate's potential; its distances go to `raw`.
        let potentials: Vec<Vec<f64>> = raw
            .par_chunks_mut(CHUNK * trials)
            .enumerate()
            .map(|(chunk, out)| {
                let mut pot = vec![0.0f64; trials];
                for (t, o) in out.chunks_exact_mut(trials).enumerate() {
                    let i = chunk * CHUNK + t;
                    for (j, v) in o.iter_mut().enumerate() {
                        *v = T::point_dist(row(i), row(candidates[j]));
                        pot[j] += d1[i].min(*v);
                    }
                }
                pot
            })
            .collect();
        let mut best = 0;
        let mut best_pot = f64::INFINITY;
        for j in 0..trials {
            let pot: f64 = potentials.iter().map(|v| v[j]).sum();
            if pot < best_pot {
                best_pot = pot;
                best = j;
            }
        }
        chosen.push(candidates[best]);
        d1.par_iter_mut()
            .zip(dist.par_chunks_mut(k))
            .zip(label.par_iter_mut())
            .enumerate()
            .with_min_len(CHUNK)
            .for_each(|(i, ((a, row), l))| {
                let r = raw[i * trials + best];
                row[c] = down(r.sqrt());
                if r < *a {
                    *a = r;
                    *l = c;
                }
            });
    }
    let centres = chosen
        .iter()
        .flat_map(|&i| row(i).iter().map(|&v| v.into()))
        .collect();
    Seeded {
        centres,
        label,
        dist,
        nearest: d1.iter().map(|d| d.sqrt()).collect(),
    }
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

/// Elkan's algorithm (2003) from the seeding: per point an upper bound on the distance
/// to its centre and a lower bound on the distance to every other centre. Each bound
/// moves only by its own centre's shift, so once the centres settle almost every point
/// is settled by one comparison (Hamerly's single lower bound falls by the largest shift
/// of any centre, which with many clusters rescans most points every iteration).
///
/// Bounds are stored relative to each centre's cumulative shift D: the upper bound as
/// u − D[own centre], the lower bounds as l + D[centre]. The current bounds are then
/// u_base + D and l_base − D, and an iteration's shifts update k numbers instead of n·k.
fn elkan<T: Coord>(
    x: &[T],
    n: usize,
    p: usize,
    k: usize,
    seeded: Seeded,
    max_iter: usize,
    shift_tol: f64,
) -> Run {
    let Seeded {
        mut centres,
        mut label,
        dist: mut lower,
        nearest: seeded_upper,
    } = seeded;
    // The exact distances to the nearest seed (the stored ones are rounded down).
    let mut upper: Vec<f64> = seeded_upper;
    let mut drift = vec![0.0f64; k];
    let (mut sums, mut counts) = cluster_sums(x, p, k, &label);
    let mut iterations = 0;
    let mut converged = false;
    let mut half_cc = vec![0.0f64; k * k];
    let mut half_gap = vec![0.0f64; k];
    for it in 1..=max_iter {
        iterations = it;
        fill_empty(x, p, k, &mut label, &mut upper, &mut sums, &mut counts);
        // New centres and how far each moved.
        let mut shift = vec![0.0f64; k];
        for c in 0..k {
            let cnt = counts[c] as f64;
            let old = centres[c * p..(c + 1) * p].to_vec();
            for j in 0..p {
                centres[c * p + j] = sums[c * p + j] / cnt;
            }
            shift[c] = sq_dist(&old, &centres[c * p..(c + 1) * p]).sqrt();
            drift[c] += shift[c];
        }
        if it > 1 && shift.iter().map(|s| s * s).sum::<f64>() <= shift_tol {
            converged = true;
            break;
        }
        for c in 0..k {
            let mut m = f64::INFINITY;
            for o in 0..k {
                let d = if o == c {
                    0.0
                } else {
                    0.5 * sq_dist(&centres[c * p..(c + 1) * p], &centres[o * p..(o + 1) * p]).sqrt()
                };
                half_cc[c * k + o] = d;
                if o != c {
                    m = m.min(d);
                }
            }
            half_gap[c] = m;
        }
        let moves = assign(
            x,
            p,
            k,
            &centres,
            &mut label,
            &mut upper,
            &mut lower,
            &Geometry {
                half_cc: &half_cc,
                half_gap: &half_gap,
                drift: &drift,
            },
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
    let (mut exact, cnt) = cluster_sums(x, p, k, &label);
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

/// The centres' layout in an iteration: half the distances between centres, half the
/// distance from each to its nearest other, and each one's cumulative shift.
struct Geometry<'a> {
    half_cc: &'a [f64],
    half_gap: &'a [f64],
    drift: &'a [f64],
}

/// Per-cluster coordinate sums and counts of an assignment, over fixed chunks.
fn cluster_sums<T: Coord>(x: &[T], p: usize, k: usize, label: &[usize]) -> (Vec<f64>, Vec<i64>) {
    let parts: Vec<(Vec<f64>, Vec<i64>)> = label
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(chunk, lab)| {
            let mut sums = vec![0.0f64; k * p];
            let mut counts = vec![0i64; k];
            for (t, &c) in lab.iter().enumerate() {
                let i = chunk * CHUNK + t;
                counts[c] += 1;
                for (s, &v) in sums[c * p..(c + 1) * p]
                    .iter_mut()
                    .zip(&x[i * p..(i + 1) * p])
                {
                    *s += v.into();
                }
            }
            (sums, counts)
        })
        .collect();
    let mut sums = vec![0.0f64; k * p];
    let mut counts = vec![0i64; k];
    for (s, c) in parts {
        sums.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
        counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
    }
    (sums, counts)
}

/// The assignment pass: a point is looked at only when its bounds do not prove its
/// centre is still the nearest, and another centre's distance is computed only when
/// its lower bound and the centres' separation leave it in contention.
#[allow(clippy::too_many_arguments)]
fn assign<T: Coord>(
    x: &[T],
    p: usize,
    k: usize,
    centres: &[f64],
    label: &mut [usize],
    upper: &mut [f64],
    lower: &mut [f32],
    g: &Geometry<'_>,
) -> Moves {
    let parts: Vec<Moves> = label
        .par_chunks_mut(CHUNK)
        .zip(upper.par_chunks_mut(CHUNK))
        .zip(lower.par_chunks_mut(CHUNK * k))
        .enumerate()
        .map(|(chunk, ((lab, up), lo))| {
            let mut m = Moves {
                sums: vec![0.0; k * p],
                counts: vec![0; k],
                moved: 0,
            };
            for t in 0..lab.len() {
                let old = lab[t];
                let mut a = old;
                let mut u = up[t] + g.drift[a];
                if u <= g.half_gap[a] {
                    continue;
                }
                let l = &mut lo[t * k..(t + 1) * k];
                // The tightest bound on any other centre, without branches: most points
                // have no centre left in contention and stop here.
                let cc = &g.half_cc[a * k..(a + 1) * k];
                let mut floor = f64::INFINITY;
                for c in 0..k {
                    let b = (f64::from(l[c]) - g.drift[c]).max(cc[c]);
                    floor = floor.min(if c == a { f64::INFINITY } else { b });
                }
                if u <= floor {
                    continue;
                }
                let i = chunk * CHUNK + t;
                let xi = &x[i * p..(i + 1) * p];
                let mut tight = false;
                for c in 0..k {
                    if c == a || u <= f64::from(l[c]) - g.drift[c] || u <= g.half_cc[a * k + c] {
                        continue;
                    }
                    if !tight {
                        u = sq_dist(xi, &centres[a * p..(a + 1) * p]).sqrt();
                        l[a] = down(u + g.drift[a]);
                        tight = true;
                        if u <= f64::from(l[c]) - g.drift[c] || u <= g.half_cc[a * k + c] {
                            continue;
                        }
                    }
                    let d = sq_dist(xi, &centres[c * p..(c + 1) * p]).sqrt();
                    l[c] = down(d + g.drift[c]);
                    if d < u {
                        a = c;
                        u = d;
                    }
                }
                up[t] = u - g.drift[a];
                if a != old {
                    lab[t] = a;
                    m.moved += 1;
                    m.counts[old] -= 1;
                    m.counts[a] += 1;
                    for j in 0..p {
                        let v: f64 = xi[j].into();
                        m.sums[old * p + j] -= v;
                        m.sums[a * p + j] += v;
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
fn fill_empty<T: Coord>(
    x: &[T],
    p: usize,
    k: usize,
    label: &mut [usize],
    upper: &mut [f64],
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
            let v: f64 = x[i * p + j].into();
            sums[old * p + j] -= v;
            sums[c * p + j] += v;
        }
        label[i] = c;
        // Its new centre will be the point itself; the next pass rechecks it.
        upper[i] = f64::INFINITY;
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
                .tol(0.0)
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
