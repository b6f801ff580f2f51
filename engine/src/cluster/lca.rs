//! Latent class analysis of polytomous items by EM (Goodman 1974; poLCA's model): people
//! belong to one of R unobserved classes; within a class, answers to different items are
//! independent, with class-specific probabilities for each category.
//!
//! Missing answers are handled by full-information likelihood: a person contributes the
//! items they answered, so nobody is dropped for a missing answer and the estimates use
//! every answer given (valid when answers are missing at random).
//!
//! People with the same answers share every computation, so rows are first collapsed to
//! distinct answer patterns with counts. Each EM step is one pass over the patterns, in
//! fixed blocks on all cores whose sums are added in block order: a start gives the same
//! numbers whatever the number of threads.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::items::{Items, MISSING};
use crate::{Error, Result};

/// Patterns per block of the ordered sums.
const BLOCK: usize = 1024;
/// E-steps of every start before the best quarter are run on to convergence.
const INITIAL_STEPS: usize = 10;
/// The first stage's stopping rule (log-likelihood gain per person).
const INITIAL_TOL: f64 = 1e-7;

/// A latent class model with `classes` classes, fitted from several random starts.
///
/// ```
/// use occupa_engine::cluster::items::Items;
/// use occupa_engine::cluster::lca::Lca;
///
/// // Two kinds of people: those who tend to answer "yes" to six items, and those who
/// // tend to answer "no" (about one answer in eleven goes the other way).
/// let mut cols = vec![Vec::new(); 6];
/// for i in 0..400usize {
///     let kind = i % 2;
///     for (j, col) in cols.iter_mut().enumerate() {
///         let flip = (i * 31 + j * 17) % 11 == 0;
///         col.push(Some((kind ^ usize::from(flip)) as u32));
///     }
/// }
/// let labels = vec![vec!["no".to_string(), "yes".to_string()]; 6];
/// let names = ["a", "b", "c", "d", "e", "f"].map(String::from).to_vec();
/// let items = Items::from_codes(names, labels, cols)?;
/// let fit = Lca::new(2)?.seed(1).fit(&items)?;
/// assert!((fit.shares[0] - 0.5).abs() < 0.05);
/// // Everyone is put with their own kind (class numbers are arbitrary).
/// let agree = fit.labels().iter().enumerate().filter(|(i, c)| i % 2 == **c).count();
/// assert!(agree == 400 || agree == 0, "{agree}");
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lca {
    classes: usize,
    starts: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
}

/// A fitted latent class model, classes in decreasing order of size.
#[derive(Debug, Clone, Serialize)]
pub struct FittedLca {
    /// Number of classes.
    pub classes: usize,
    /// People in the fit (rows with at least one answer).
    pub n: usize,
    /// Log-likelihood at the best start.
    pub loglik: f64,
    /// Free parameters: (R − 1) + R Σⱼ (Kⱼ − 1).
    pub npar: usize,
    /// −2 log L + npar · ln n.
    pub bic: f64,
    /// −2 log L + 2 npar.
    pub aic: f64,
    /// Relative entropy of the classification, 1 − Σᵢ Σᵣ −pᵢᵣ ln pᵢᵣ / (n ln R): 1 when
    /// everyone's class is certain (undefined, `None`, for one class).
    pub entropy: Option<f64>,
    /// Class shares (prior probabilities).
    pub shares: Vec<f64>,
    /// Per item, class × category probabilities of each answer.
    #[serde(skip)]
    pub probs: Vec<Array2<f64>>,
    /// EM steps of the best start.
    pub iterations: usize,
    /// Whether the best start converged (rather than stopping at the step limit).
    pub converged: bool,
    /// Log-likelihood reached by each start, in start order (after the first stage for
    /// the starts that were not continued).
    pub start_logliks: Vec<f64>,
    /// Starts run to convergence that reached the best log-likelihood (within 1e-6 per
    /// person): when it is 1, the optimum may be local and more starts are advisable.
    pub best_found: usize,
    /// Item names and category labels (for prediction and profiles).
    #[serde(skip)]
    pub(crate) items: Items,
    /// Posterior class probabilities of each row fitted, in row order.
    #[serde(skip)]
    pub posterior: Array2<f64>,
}

/// Standard errors of a latent class model, as poLCA computes them: the outer product of
/// each person's score on the baseline-category log-odds parametrisation, its
/// Moore–Penrose inverse, and the delta method back to probabilities.
#[derive(Debug, Clone, Serialize)]
pub struct LcaErrors {
    /// Standard errors of the class shares.
    pub shares: Vec<f64>,
    /// Per item, class × category standard errors of the answer probabilities.
    #[serde(skip)]
    pub probs: Vec<Array2<f64>>,
    /// Rank of the information matrix against its dimension: below it, some parameters
    /// are not identified (often probabilities at 0 or 1).
    pub rank: usize,
    /// Dimension of the information matrix.
    pub parameters: usize,
}

/// Where each item's categories sit in the flat parameter arrays.
#[derive(Debug, Clone)]
struct Layout {
    classes: usize,
    offsets: Vec<usize>,
    cats: Vec<usize>,
    total: usize,
}

impl Layout {
    fn new(items: &Items, classes: usize) -> Self {
        let cats: Vec<usize> = (0..items.len()).map(|j| items.categories(j)).collect();
        let mut offsets = Vec::with_capacity(cats.len());
        let mut total = 0;
        for &k in &cats {
            offsets.push(total);
            total += k;
        }
        Layout {
            classes,
            offsets,
            cats,
            total,
        }
    }
}

/// Distinct answer patterns with their counts.
struct Patterns {
    codes: Vec<u8>,
    weight: Vec<f64>,
    /// Row → pattern.
    of_row: Vec<u32>,
    items: usize,
    /// Per pattern, the flat index (item offset + category) of each answer given, in
    /// `cells[start[p]..start[p + 1]]`: the E-step's inner loop without lookups.
    cells: Vec<u32>,
    start: Vec<usize>,
}

impl Patterns {
    fn new(items: &Items) -> Self {
        let j = items.len();
        let mut index: std::collections::HashMap<&[u8], u32> = Default::default();
        let mut codes = Vec::new();
        let mut weight: Vec<f64> = Vec::new();
        let mut of_row = Vec::with_capacity(items.rows());
        for i in 0..items.rows() {
            let r = items.row(i);
            let k = *index.entry(r).or_insert_with(|| {
                codes.extend_from_slice(r);
                weight.push(0.0);
                (weight.len() - 1) as u32
            });
            weight[k as usize] += 1.0;
            of_row.push(k);
        }
        let mut offsets = Vec::with_capacity(j);
        let mut total = 0u32;
        for c in 0..j {
            offsets.push(total);
            total += items.categories(c) as u32;
        }
        let mut cells = Vec::with_capacity(codes.len());
        let mut start = Vec::with_capacity(weight.len() + 1);
        start.push(0);
        for row in codes.chunks_exact(j.max(1)) {
            for (c, &y) in row.iter().enumerate() {
                if y != MISSING {
                    cells.push(offsets[c] + u32::from(y));
                }
            }
            start.push(cells.len());
        }
        Patterns {
            codes,
            weight,
            of_row,
            items: j,
            cells,
            start,
        }
    }

    fn cells(&self, p: usize) -> &[u32] {
        &self.cells[self.start[p]..self.start[p + 1]]
    }

    fn len(&self) -> usize {
        self.weight.len()
    }

    fn row(&self, p: usize) -> &[u8] {
        &self.codes[p * self.items..(p + 1) * self.items]
    }
}

/// A start's end: parameters, log-likelihood, E-steps, converged.
type Outcome = super::Outcome<Params>;

/// Log class shares and log answer probabilities, ρ at `(offset[j] + k) · R + r`.
#[derive(Debug, Clone)]
struct Params {
    log_pi: Vec<f64>,
    log_rho: Vec<f64>,
}

/// What one pass over the patterns adds up.
struct Sums {
    loglik: f64,
    pi: Vec<f64>,
    rho: Vec<f64>,
}

impl Lca {
    /// `classes` classes (at least 1), 20 random starts (each runs 10 accelerated EM
    /// steps; the best quarter then run to convergence), at most 5,000 E-steps per
    /// start, stopping when the log-likelihood per person rises by less than 1e-10,
    /// seed 0.
    pub fn new(classes: usize) -> Result<Self> {
        if classes == 0 {
            return Err(Error::Param {
                name: "classes",
                reason: "at least one class".into(),
            });
        }
        Ok(Lca {
            classes,
            starts: 20,
            max_iter: 5000,
            tol: 1e-10,
            seed: 0,
        })
    }

    /// Random starts (at least 1); the best log-likelihood wins.
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

    /// Most EM steps per start.
    pub fn max_iter(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "max_iter",
                reason: "at least one step".into(),
            });
        }
        self.max_iter = n;
        Ok(self)
    }

    /// Stop when the log-likelihood per person rises by less than this.
    pub fn tol(mut self, tol: f64) -> Result<Self> {
        if !(tol > 0.0 && tol.is_finite()) {
            return Err(Error::Param {
                name: "tol",
                reason: format!("{tol} must be a positive number"),
            });
        }
        self.tol = tol;
        Ok(self)
    }

    /// Seed of the random starts: start s draws from its own generator seeded by
    /// (seed, s), so results do not depend on threads.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fits the model to the rows with at least one answer.
    pub fn fit(&self, items: &Items) -> Result<FittedLca> {
        let (items, _) = items.answered();
        let n = items.rows();
        if n < 2 {
            return Err(Error::Estimation {
                method: "latent class analysis",
                reason: format!("{n} rows with an answer; at least 2 are needed"),
            });
        }
        let layout = Layout::new(&items, self.classes);
        // Identification: fewer free parameters than the table of answer patterns has
        // free cells (poLCA warns with a negative residual df; we refuse).
        let cells = layout
            .cats
            .iter()
            .fold(1usize, |acc, &k| acc.saturating_mul(k))
            .min(n);
        let npar =
            (self.classes - 1) + self.classes * layout.cats.iter().map(|k| k - 1).sum::<usize>();
        if npar + 1 > cells {
            return Err(Error::Estimation {
                method: "latent class analysis",
                reason: format!(
                    "{} classes on {} item(s) are not identified: {npar} parameters for {} \
                     free cells of the answer table; use more items or fewer classes",
                    self.classes,
                    items.len(),
                    cells.saturating_sub(1)
                ),
            });
        }
        let patterns = Patterns::new(&items);
        let nf = n as f64;
        // Two stages, as Mplus does: every start runs a short while, then only the best
        // quarter run to convergence. A start stuck on a plateau can crawl for
        // thousands of steps towards an optimum others have long beaten.
        let ((params, loglik, iterations, converged), start_logliks) = super::two_stage(
            self.starts,
            self.starts.div_ceil(4),
            "latent class analysis",
            |s| {
                let mut rng = ChaCha8Rng::seed_from_u64(super::start_seed(self.seed, s));
                let start = random_start(&layout, &mut rng);
                let steps = INITIAL_STEPS.min(self.max_iter);
                self.run(
                    &patterns,
                    &layout,
                    start,
                    nf,
                    steps,
                    INITIAL_TOL.max(self.tol),
                )
            },
            |(p, _, steps, _)| {
                let left = self.max_iter.saturating_sub(steps).max(1);
                self.run(&patterns, &layout, p, nf, left, self.tol)
                    .map(|(p, ll, more, conv)| (p, ll, steps + more, conv))
            },
        )?;
        let best_found = start_logliks
            .iter()
            .filter(|&&l| (l - loglik).abs() <= 1e-6 * n as f64)
            .count();
        Ok(finish(
            items,
            &layout,
            &patterns,
            canonical(&layout, params),
            loglik,
            iterations,
            converged,
            start_logliks,
            best_found,
        ))
    }

    /// EM from one start, accelerated by SQUAREM (Varadhan and Roland 2008, scheme S3):
    /// two EM steps θ₀ → θ₁ → θ₂ give r = θ₁ − θ₀ and v = θ₂ − 2θ₁ + θ₀, the point
    /// θ₀ − 2αr + α²v with α = −‖r‖/‖v‖ jumps along the path EM is crawling, and one EM
    /// step from it follows. Parameters are extrapolated as log-probabilities and then
    /// renormalised, so they stay valid; a jump that does worse than θ₁ is replaced by
    /// θ₂, which keeps the log-likelihood rising. It converges to the same points as EM
    /// in a fraction of the steps (EM for latent classes often needs thousands).
    /// Runs at most `max_steps` E-steps, stopping when the log-likelihood per person
    /// rises by less than `tol`; returns (parameters, log-likelihood, E-steps,
    /// converged).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        patterns: &Patterns,
        layout: &Layout,
        mut params: Params,
        n: f64,
        max_steps: usize,
        tol: f64,
    ) -> Result<Outcome> {
        let mut prev = f64::NEG_INFINITY;
        let mut steps = 0;
        loop {
            let s0 = e_step(patterns, layout, &params, true)?;
            steps += 1;
            if (s0.loglik - prev).abs() < tol * n {
                return Ok((params, s0.loglik, steps, true));
            }
            if steps >= max_steps {
                return Ok((params, s0.loglik, steps, false));
            }
            prev = s0.loglik;
            let p1 = m_step(layout, &s0, n);
            let s1 = e_step(patterns, layout, &p1, true)?;
            steps += 1;
            let p2 = m_step(layout, &s1, n);
            let jump = extrapolate(layout, &params, &p1, &p2);
            params = match jump {
                Some(p) => match e_step(patterns, layout, &p, true) {
                    Ok(sj) if sj.loglik >= s1.loglik => {
                        steps += 1;
                        m_step(layout, &sj, n)
                    }
                    _ => p2,
                },
                None => p2,
            };
        }
    }
}

/// SQUAREM's jump from θ₀ through θ₁, θ₂ (log-probabilities, floored so that zeros do
/// not make infinities), renormalised; `None` when EM has stopped moving.
fn extrapolate(layout: &Layout, p0: &Params, p1: &Params, p2: &Params) -> Option<Params> {
    const FLOOR: f64 = -700.0;
    let f = |v: f64| v.max(FLOOR);
    let mut rr = 0.0;
    let mut vv = 0.0;
    let pairs = p0
        .log_pi
        .iter()
        .zip(&p1.log_pi)
        .zip(&p2.log_pi)
        .chain(p0.log_rho.iter().zip(&p1.log_rho).zip(&p2.log_rho));
    for ((&a, &b), &c) in pairs {
        let r = f(b) - f(a);
        let v = f(c) - 2.0 * f(b) + f(a);
        rr += r * r;
        vv += v * v;
    }
    if !(vv > 0.0 && rr.is_finite() && vv.is_finite()) {
        return None;
    }
    let alpha = (-(rr / vv).sqrt()).min(-1.0);
    let jump = |a: f64, b: f64, c: f64| {
        let (a, b, c) = (f(a), f(b), f(c));
        let r = b - a;
        let v = c - 2.0 * b + a;
        (a - 2.0 * alpha * r + alpha * alpha * v).max(FLOOR)
    };
    let mut log_pi: Vec<f64> = (0..p0.log_pi.len())
        .map(|i| jump(p0.log_pi[i], p1.log_pi[i], p2.log_pi[i]))
        .collect();
    let classes = log_pi.len();
    normalise_logs(&mut log_pi, 1, 0, classes);
    let mut log_rho: Vec<f64> = (0..p0.log_rho.len())
        .map(|i| jump(p0.log_rho[i], p1.log_rho[i], p2.log_rho[i]))
        .collect();
    let r = layout.classes;
    for (&off, &k) in layout.offsets.iter().zip(&layout.cats) {
        for c in 0..r {
            normalise_logs(&mut log_rho, r, off * r + c, k);
        }
    }
    (log_pi.iter().chain(&log_rho).all(|v| v.is_finite())).then_some(Params { log_pi, log_rho })
}

/// Makes the `count` log-probabilities at `start`, `start + stride`, … sum to one.
fn normalise_logs(v: &mut [f64], stride: usize, start: usize, count: usize) {
    let idx = |i: usize| start + i * stride;
    let m = (0..count)
        .map(|i| v[idx(i)])
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = m + (0..count).map(|i| (v[idx(i)] - m).exp()).sum::<f64>().ln();
    for i in 0..count {
        v[idx(i)] -= lse;
    }
}

/// poLCA's start: shares equal, each class's answer probabilities uniform draws
/// normalised per item.
fn random_start(layout: &Layout, rng: &mut impl Rng) -> Params {
    let r = layout.classes;
    let mut rho = vec![0.0; layout.total * r];
    for (j, &off) in layout.offsets.iter().enumerate() {
        for c in 0..r {
            let draws: Vec<f64> = (0..layout.cats[j]).map(|_| rng.random::<f64>()).collect();
            let sum: f64 = draws.iter().sum();
            for (k, v) in draws.iter().enumerate() {
                rho[(off + k) * r + c] = (v / sum).ln();
            }
        }
    }
    Params {
        log_pi: vec![-(r as f64).ln(); r],
        log_rho: rho,
    }
}

/// Log of the joint probability of pattern `row` and each class, into `lp`.
fn joint(layout: &Layout, params: &Params, row: &[u8], lp: &mut [f64]) {
    let r = layout.classes;
    lp.copy_from_slice(&params.log_pi);
    for (j, &y) in row.iter().enumerate() {
        if y != MISSING {
            let at = (layout.offsets[j] + usize::from(y)) * r;
            for (l, v) in lp.iter_mut().zip(&params.log_rho[at..at + r]) {
                *l += v;
            }
        }
    }
}

/// Turns log joints into posteriors in place; returns the log of their sum.
fn normalise(lp: &mut [f64]) -> f64 {
    let m = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for l in lp.iter_mut() {
        *l = (*l - m).exp();
        s += *l;
    }
    for l in lp.iter_mut() {
        *l /= s;
    }
    m + s.ln()
}

/// A block's log-likelihood and expected counts (shares, answers), classes in lanes.
type BlockSums = (f64, Vec<[f64; 4]>, Vec<[f64; 4]>);

/// Below this a product of probabilities is recomputed in logs (it may have lost
/// precision to underflow); with tens of items it never is.
const TINY: f64 = 1e-250;

/// The E-step: log-likelihood and (if `accumulate`) the expected counts.
///
/// A person's joint probabilities are products of their answers' probabilities, not
/// sums of logs: no exponential per class and person, which is what dominated the time.
fn e_step(patterns: &Patterns, layout: &Layout, params: &Params, accumulate: bool) -> Result<Sums> {
    let r = layout.classes;
    // Classes in lanes of four, padded with a zero share and answer probabilities of
    // one: fixed-width inner loops that the compiler vectorises.
    let q = r.div_ceil(4);
    let mut pi = vec![[0.0f64; 4]; q];
    for (c, v) in params.log_pi.iter().enumerate() {
        pi[c / 4][c % 4] = v.exp();
    }
    let mut rho = vec![[1.0f64; 4]; layout.total * q];
    for cell in 0..layout.total {
        for c in 0..r {
            rho[cell * q + c / 4][c % 4] = params.log_rho[cell * r + c].exp();
        }
    }
    let size = if accumulate { layout.total * q } else { 0 };
    let blocks: Vec<usize> = (0..patterns.len()).step_by(BLOCK).collect();
    let parts: Vec<Option<BlockSums>> = blocks
        .par_iter()
        .map(|&a| {
            let mut loglik = 0.0;
            let mut acc_pi = vec![[0.0f64; 4]; q];
            let mut acc_rho = vec![[0.0f64; 4]; size];
            let mut lp = vec![[0.0f64; 4]; q];
            let mut odd = vec![[1.0f64; 4]; q];
            let mut slow = vec![0.0f64; r];
            for p in a..(a + BLOCK).min(patterns.len()) {
                let w = patterns.weight[p];
                let cells = patterns.cells(p);
                // Two running products (even and odd answers): half the chain of
                // dependent multiplications, which is what bounds this loop.
                lp.copy_from_slice(&pi);
                odd.fill([1.0; 4]);
                let mut pairs = cells.chunks_exact(2);
                for pair in &mut pairs {
                    let (a0, a1) = (pair[0] as usize * q, pair[1] as usize * q);
                    for t in 0..q {
                        for lane in 0..4 {
                            lp[t][lane] *= rho[a0 + t][lane];
                            odd[t][lane] *= rho[a1 + t][lane];
                        }
                    }
                }
                for &cell in pairs.remainder() {
                    let at = cell as usize * q;
                    for t in 0..q {
                        for lane in 0..4 {
                            lp[t][lane] *= rho[at + t][lane];
                        }
                    }
                }
                for (l, o) in lp.iter_mut().zip(&odd) {
                    for lane in 0..4 {
                        l[lane] *= o[lane];
                    }
                }
                let total: f64 = lp.iter().map(|l| (l[0] + l[1]) + (l[2] + l[3])).sum();
                let l = if total > TINY && total.is_finite() {
                    let scale = w / total;
                    for l in lp.iter_mut() {
                        for lane in 0..4 {
                            l[lane] *= scale;
                        }
                    }
                    total.ln()
                } else {
                    joint(layout, params, patterns.row(p), &mut slow);
                    let l = normalise(&mut slow);
                    for (c, v) in slow.iter().enumerate() {
                        lp[c / 4][c % 4] = w * v;
                    }
                    l
                };
                if !l.is_finite() {
                    return None;
                }
                loglik += w * l;
                if accumulate {
                    for (acc, v) in acc_pi.iter_mut().zip(&lp) {
                        for lane in 0..4 {
                            acc[lane] += v[lane];
                        }
                    }
                    for &cell in cells {
                        let at = cell as usize * q;
                        for (acc, v) in acc_rho[at..at + q].iter_mut().zip(&lp) {
                            for lane in 0..4 {
                                acc[lane] += v[lane];
                            }
                        }
                    }
                }
            }
            Some((loglik, acc_pi, acc_rho))
        })
        .collect();
    let mut out = Sums {
        loglik: 0.0,
        pi: vec![0.0; r],
        rho: vec![0.0; if accumulate { layout.total * r } else { 0 }],
    };
    for part in parts {
        let Some((ll, acc_pi, acc_rho)) = part else {
            return Err(Error::Estimation {
                method: "latent class analysis",
                reason: "an answer pattern has probability zero under every class".into(),
            });
        };
        out.loglik += ll;
        for c in 0..r {
            out.pi[c] += acc_pi[c / 4][c % 4];
        }
        if accumulate {
            for cell in 0..layout.total {
                for c in 0..r {
                    out.rho[cell * r + c] += acc_rho[cell * q + c / 4][c % 4];
                }
            }
        }
    }
    Ok(out)
}

/// The M-step: shares are mean posteriors; an item's answer probabilities in a class
/// are the class's expected counts of each answer over its expected number of people
/// who answered that item.
fn m_step(layout: &Layout, sums: &Sums, n: f64) -> Params {
    let r = layout.classes;
    let mut log_rho = vec![0.0; layout.total * r];
    for (j, &off) in layout.offsets.iter().enumerate() {
        for c in 0..r {
            let denom: f64 = (0..layout.cats[j])
                .map(|k| sums.rho[(off + k) * r + c])
                .sum();
            for k in 0..layout.cats[j] {
                let at = (off + k) * r + c;
                // A class nobody who answered this item belongs to keeps uniform answers.
                log_rho[at] = if denom > 0.0 {
                    (sums.rho[at] / denom).ln()
                } else {
                    -(layout.cats[j] as f64).ln()
                };
            }
        }
    }
    Params {
        log_pi: sums.pi.iter().map(|v| (v / n).ln()).collect(),
        log_rho,
    }
}

/// Classes in decreasing order of share (then by their first answer probabilities),
/// so that results do not depend on which start found them.
fn canonical(layout: &Layout, p: Params) -> Params {
    let r = layout.classes;
    let mut order: Vec<usize> = (0..r).collect();
    order.sort_by(|&a, &b| {
        p.log_pi[b].total_cmp(&p.log_pi[a]).then_with(|| {
            (0..layout.total)
                .map(|i| p.log_rho[i * r + b].total_cmp(&p.log_rho[i * r + a]))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    let mut log_rho = vec![0.0; p.log_rho.len()];
    for i in 0..layout.total {
        for (new, &old) in order.iter().enumerate() {
            log_rho[i * r + new] = p.log_rho[i * r + old];
        }
    }
    Params {
        log_pi: order.iter().map(|&o| p.log_pi[o]).collect(),
        log_rho,
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    items: Items,
    layout: &Layout,
    patterns: &Patterns,
    params: Params,
    loglik: f64,
    iterations: usize,
    converged: bool,
    start_logliks: Vec<f64>,
    best_found: usize,
) -> FittedLca {
    let r = layout.classes;
    let n = items.rows();
    let mut post_pattern = Array2::<f64>::zeros((patterns.len(), r));
    let mut lp = vec![0.0; r];
    for p in 0..patterns.len() {
        joint(layout, &params, patterns.row(p), &mut lp);
        normalise(&mut lp);
        post_pattern
            .row_mut(p)
            .assign(&ndarray::ArrayView1::from(&lp[..]));
    }
    let posterior = Array2::from_shape_fn((n, r), |(i, c)| {
        post_pattern[[patterns.of_row[i] as usize, c]]
    });
    let entropy = super::relative_entropy(&posterior);
    let npar = (r - 1) + r * layout.cats.iter().map(|k| k - 1).sum::<usize>();
    let probs = layout
        .offsets
        .iter()
        .zip(&layout.cats)
        .map(|(&off, &k)| {
            Array2::from_shape_fn((r, k), |(c, cat)| params.log_rho[(off + cat) * r + c].exp())
        })
        .collect();
    FittedLca {
        classes: r,
        n,
        loglik,
        npar,
        bic: -2.0 * loglik + npar as f64 * (n as f64).ln(),
        aic: -2.0 * loglik + 2.0 * npar as f64,
        entropy,
        shares: params.log_pi.iter().map(|v| v.exp()).collect(),
        probs,
        iterations,
        converged,
        start_logliks,
        best_found,
        items,
        posterior,
    }
}

impl FittedLca {
    /// A model from saved parameters: the items (names and categories; no rows needed),
    /// the class shares and, per item, class × category probabilities.
    pub fn from_parts(items: Items, shares: Vec<f64>, probs: Vec<Array2<f64>>) -> Result<Self> {
        let r = shares.len();
        let fits = probs.len() == items.len()
            && probs
                .iter()
                .enumerate()
                .all(|(j, p)| p.dim() == (r, items.categories(j)));
        if r == 0 || !fits {
            return Err(Error::Param {
                name: "model",
                reason: "the probabilities do not match the items and classes".into(),
            });
        }
        Ok(FittedLca {
            classes: r,
            n: 0,
            loglik: f64::NAN,
            npar: 0,
            bic: f64::NAN,
            aic: f64::NAN,
            entropy: None,
            shares,
            probs,
            iterations: 0,
            converged: true,
            start_logliks: Vec::new(),
            best_found: 0,
            items,
            posterior: Array2::zeros((0, r)),
        })
    }

    /// The items the model was fitted on (names, categories, the rows used).
    pub fn items(&self) -> &Items {
        &self.items
    }

    fn params(&self) -> (Layout, Params) {
        let layout = Layout::new(&self.items, self.classes);
        let r = self.classes;
        let mut log_rho = vec![0.0; layout.total * r];
        for (j, &off) in layout.offsets.iter().enumerate() {
            for c in 0..r {
                for k in 0..layout.cats[j] {
                    log_rho[(off + k) * r + c] = self.probs[j][[c, k]].ln();
                }
            }
        }
        let log_pi = self.shares.iter().map(|v| v.ln()).collect();
        (layout, Params { log_pi, log_rho })
    }

    /// Posterior class probabilities of new people (their items recoded to the model's
    /// by name and label); a row without answers gets the class shares.
    pub fn predict_proba(&self, items: &Items) -> Result<Array2<f64>> {
        let items = items.recode_to(&self.items)?;
        let (layout, params) = self.params();
        let r = self.classes;
        let mut out = Array2::<f64>::zeros((items.rows(), r));
        let mut lp = vec![0.0; r];
        for i in 0..items.rows() {
            joint(&layout, &params, items.row(i), &mut lp);
            let l = normalise(&mut lp);
            if !l.is_finite() {
                return Err(Error::Estimation {
                    method: "latent class prediction",
                    reason: format!(
                        "row {}: answers that no class gives (a category with probability \
                         zero in every class)",
                        i + 1
                    ),
                });
            }
            out.row_mut(i).assign(&ndarray::ArrayView1::from(&lp[..]));
        }
        Ok(out)
    }

    /// The most probable class of each new person (the first on ties).
    pub fn predict(&self, items: &Items) -> Result<Vec<usize>> {
        Ok(super::most_probable(&self.predict_proba(items)?))
    }

    /// Standard errors of the shares and answer probabilities (poLCA's method, see
    /// [`LcaErrors`]). The information matrix has one row per free parameter, so this
    /// costs about n·p² for n distinct answer patterns and p parameters.
    pub fn standard_errors(&self) -> Result<LcaErrors> {
        use crate::causal::linalg::{pinv_psd, symmetric_eigen};
        let (layout, params) = self.params();
        let patterns = Patterns::new(&self.items);
        let r = self.classes;
        let free: Vec<usize> = layout.cats.iter().map(|k| k - 1).collect();
        let mut off1 = Vec::with_capacity(free.len());
        let mut per_class = 0;
        for &f in &free {
            off1.push(per_class);
            per_class += f;
        }
        let dim = r * per_class + (r - 1);
        let blocks: Vec<usize> = (0..patterns.len()).step_by(BLOCK).collect();
        let parts: Vec<Array2<f64>> = blocks
            .par_iter()
            .map(|&a| {
                let b = (a + BLOCK).min(patterns.len());
                let mut scores = Array2::<f64>::zeros((b - a, dim));
                let mut lp = vec![0.0; r];
                for p in a..b {
                    let row = patterns.row(p);
                    joint(&layout, &params, row, &mut lp);
                    normalise(&mut lp);
                    let sw = patterns.weight[p].sqrt();
                    let mut s = scores.row_mut(p - a);
                    for c in 0..r {
                        for (j, &y) in row.iter().enumerate() {
                            if y == MISSING {
                                continue;
                            }
                            for k in 1..layout.cats[j] {
                                let pi = params.log_rho[(layout.offsets[j] + k) * r + c].exp();
                                let ind = if usize::from(y) == k { 1.0 } else { 0.0 };
                                s[c * per_class + off1[j] + k - 1] = sw * lp[c] * (ind - pi);
                            }
                        }
                        if c > 0 {
                            s[r * per_class + c - 1] = sw * (lp[c] - self.shares[c]);
                        }
                    }
                }
                scores.t().dot(&scores)
            })
            .collect();
        let mut info = Array2::<f64>::zeros((dim, dim));
        for part in parts {
            info += &part;
        }
        let v = pinv_psd(&info);
        let (vals, _) = symmetric_eigen(&info);
        let top = vals.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let rank = vals
            .iter()
            .filter(|&&l| l > f64::EPSILON.sqrt() * top)
            .count();
        let probs = (0..layout.cats.len())
            .map(|j| {
                let kj = layout.cats[j];
                let mut se = Array2::<f64>::zeros((r, kj));
                for c in 0..r {
                    let pi: Vec<f64> = self.probs[j].row(c).to_vec();
                    let base = c * per_class + off1[j];
                    // J[k][m] = π_k (δ_km − π_m), m = 1..K−1 (category 0 is the base).
                    for k in 0..kj {
                        let jac = |m: usize| pi[k] * (f64::from(u8::from(k == m)) - pi[m]);
                        let mut var = 0.0;
                        for m1 in 1..kj {
                            for m2 in 1..kj {
                                var += jac(m1) * v[[base + m1 - 1, base + m2 - 1]] * jac(m2);
                            }
                        }
                        se[[c, k]] = var.max(0.0).sqrt();
                    }
                }
                se
            })
            .collect();
        let bb = r * per_class;
        let shares = (0..r)
            .map(|s| {
                let g = |c: usize| self.shares[s] * (f64::from(u8::from(s == c)) - self.shares[c]);
                let mut var = 0.0;
                for c1 in 1..r {
                    for c2 in 1..r {
                        var += g(c1) * v[[bb + c1 - 1, bb + c2 - 1]] * g(c2);
                    }
                }
                var.max(0.0).sqrt()
            })
            .collect();
        Ok(LcaErrors {
            shares,
            probs,
            rank,
            parameters: dim,
        })
    }

    /// The most probable class of each fitted row.
    pub fn labels(&self) -> Vec<usize> {
        super::most_probable(&self.posterior)
    }
}
