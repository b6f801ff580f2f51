//! Nearest-neighbour matching for the effect on the treated (ATT), on the controls (ATC)
//! or on everyone (ATE, matching in both directions): 1:k on the logit of
//! the propensity score (or Mahalanobis distance on the covariates), with or without
//! replacement, a caliper, and exact matching within strata; Abadie–Imbens standard
//! errors.
//!
//! Ties are part of the method, not an accident of row order: with replacement every
//! control as close as the k-th nearest is a match (weights split among them, as in
//! Abadie–Imbens and R's Matching with `ties = TRUE`); without replacement, treated units
//! are served from the largest propensity down (MatchIt's default order) and equal
//! distances go to the control on the lower-score side. Shuffled input therefore gives
//! the same matches. With replacement a treated unit needs all k controls within the
//! caliper (as in R's Matching); without, it keeps the ones it got (as in MatchIt).

use ndarray::{Array1, Array2};

use super::logit::{FittedLogit, Logit, Separation, fit_propensity};
use super::ols::dense_labels;
use super::sample::Sample;
use super::{Effect, Estimand, linalg};
use crate::{Error, Result};

/// A matched unit and its matches in the other group, with weights summing to 1.
type Matched = (usize, Vec<(usize, f64)>);

/// How closeness is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// |logit(p̂ᵢ) − logit(p̂ⱼ)|.
    PropensityLogit,
    /// Mahalanobis distance on the covariates (their covariance over all units).
    Mahalanobis,
}

/// A matching estimator of the ATT.
///
/// ```
/// use ndarray::Array2;
/// use occupa_engine::causal::matching::MatchingSpec;
/// use occupa_engine::causal::sample::Sample;
///
/// let n = 400;
/// let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect();
/// let d: Vec<bool> = (0..n).map(|i| ((i * 104_729) % 997) as f64 / 997.0 < 0.3 + 0.1 * x[i]).collect();
/// let y: Vec<f64> = (0..n).map(|i| x[i] + 3.0 * f64::from(d[i])).collect();
/// let sample = Sample::new(y, d, Array2::from_shape_vec((n, 1), x).unwrap(), vec!["x".into()])?;
/// let fit = MatchingSpec::new().fit(&sample)?;
/// assert!((fit.effect.estimate - 3.0).abs() < 0.1);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MatchingSpec {
    estimand: Estimand,
    separation: Separation,
    ratio: usize,
    replace: bool,
    caliper: Option<f64>,
    distance: Distance,
    variance_matches: usize,
    tie_tolerance: f64,
}

impl Default for MatchingSpec {
    fn default() -> Self {
        MatchingSpec::new()
    }
}

/// A fitted matching estimator.
#[derive(Debug, Clone)]
pub struct FittedMatching {
    /// The effect, its Abadie–Imbens standard error and interval.
    pub effect: Effect,
    /// The propensity model.
    pub propensity: FittedLogit,
    /// Each unit's weight in the matched comparison (canonical order): 1 if it is matched,
    /// plus the number of times (shares of) it serves as a match.
    pub weights: Array1<f64>,
    /// Treated units without a control within the caliper (left out of the ATT or ATE).
    pub unmatched_treated: usize,
    /// Controls without a treated unit within the caliper (left out of the ATC or ATE).
    pub unmatched_controls: usize,
    /// Controls in the matched comparison (matched, or used as a match).
    pub controls_used: usize,
    /// Treated units in the matched comparison (matched, or used as a match).
    pub treated_used: usize,
    /// Each matched unit's outcome against its matches' mean, treated minus control (in
    /// the order of `matches`).
    pub pair_diffs: Vec<f64>,
    /// The caliper as a distance on the logit of the propensity score, and the standard
    /// deviation it is a multiple of.
    pub caliper: Option<Caliper>,
    /// Matches of each matched unit: (unit, [(match in the other group, weight)]),
    /// canonical indices, weights summing to 1.
    pub matches: Vec<(usize, Vec<(usize, f64)>)>,
}

/// The caliper actually applied.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Caliper {
    /// Width in standard deviations of the logit of the propensity score.
    pub sds: f64,
    /// That standard deviation (all units, n − 1).
    pub sd: f64,
    /// The width on the logit scale.
    pub width: f64,
}

impl MatchingSpec {
    /// 1:1 nearest neighbour on the logit of the propensity score, with replacement,
    /// caliper 0.2 standard deviations of the logit (Austin 2011), one same-group match
    /// for the conditional variances of the standard error.
    pub fn new() -> Self {
        MatchingSpec {
            estimand: Estimand::Att,
            separation: Separation::Auto,
            ratio: 1,
            replace: true,
            caliper: Some(0.2),
            distance: Distance::PropensityLogit,
            variance_matches: 1,
            tie_tolerance: 0.0,
        }
    }

    /// What to estimate: the effect on the treated (each treated unit matched to
    /// controls), on the controls (each control matched to treated units), or on everyone
    /// (both; with replacement), as R's Matching and Stata's `teffects psmatch`.
    pub fn estimand(mut self, e: Estimand) -> Self {
        self.estimand = e;
        self
    }

    /// What to do when the propensity model's likelihood has no maximum.
    pub fn separation(mut self, s: Separation) -> Self {
        self.separation = s;
        self
    }

    /// Matches per unit (k of 1:k).
    pub fn ratio(mut self, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::Param {
                name: "ratio",
                reason: "at least one control per treated unit".into(),
            });
        }
        self.ratio = k;
        Ok(self)
    }

    /// Whether a control may serve several treated units.
    pub fn replace(mut self, on: bool) -> Self {
        self.replace = on;
        self
    }

    /// Caliper in standard deviations of the logit of the propensity score; `None` for
    /// no caliper.
    pub fn caliper(mut self, sds: Option<f64>) -> Result<Self> {
        if let Some(c) = sds
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Param {
                name: "caliper",
                reason: format!("{c} is not a positive number of standard deviations"),
            });
        }
        self.caliper = sds;
        Ok(self)
    }

    /// The distance.
    pub fn distance(mut self, d: Distance) -> Self {
        self.distance = d;
        self
    }

    /// Same-group neighbours used to estimate each unit's conditional variance in the
    /// Abadie–Imbens standard error (R Matching's `Var.calc`); 0 assumes one common
    /// variance (homoskedasticity, Matching's default).
    pub fn variance_matches(mut self, j: usize) -> Self {
        self.variance_matches = j;
        self
    }

    /// Controls farther than the k-th nearest by at most this much, on the squared
    /// distance between standardised logits, count as ties too (R Matching's
    /// `distance.tolerance`, 1e-5 there; 0 here, exact ties only).
    pub fn tie_tolerance(mut self, tol: f64) -> Result<Self> {
        if !(tol.is_finite() && tol >= 0.0) {
            return Err(Error::Param {
                name: "tie_tolerance",
                reason: format!("{tol} is not a non-negative number"),
            });
        }
        self.tie_tolerance = tol;
        Ok(self)
    }

    /// Matches and estimates the effect.
    pub fn fit(&self, sample: &Sample) -> Result<FittedMatching> {
        let ps = fit_propensity(
            &Logit::new(),
            sample.x(),
            sample.d(),
            Some(sample.names()),
            self.separation,
        )?;
        let lp = ps.linear_predictor().clone();
        let n = sample.len();
        let sd = {
            let m = lp.sum() / n as f64;
            (lp.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n as f64 - 1.0)).sqrt()
        };
        let caliper = self.caliper.map(|sds| Caliper {
            sds,
            sd,
            width: sds * sd,
        });
        let ties = Ties {
            sd,
            tol: self.tie_tolerance,
        };
        let width = caliper.map(|c| c.width);
        let mahalanobis = match self.distance {
            Distance::Mahalanobis => Some(whitened(sample)?),
            Distance::PropensityLogit => None,
        };
        let d = sample.d();
        let strata: Vec<usize> = match sample.strata() {
            Some(s) => dense_labels(s).0,
            None => vec![0; n],
        };
        if self.estimand == Estimand::Ate && !self.replace {
            return Err(Error::Param {
                name: "estimand",
                reason: "the ATE matches every unit to the other group, which needs \
                         replacement (as in R's Matching and Stata's teffects psmatch); drop \
                         --no-replacement, or estimate the ATT or the ATC"
                    .into(),
            });
        }
        // The directions the estimand needs: treated to controls (their missing Y(0)),
        // controls to treated (their missing Y(1)).
        let directions: &[bool] = match self.estimand {
            Estimand::Att => &[true],
            Estimand::Atc => &[false],
            Estimand::Ate => &[true, false],
        };
        let mut matches: Vec<(usize, Vec<(usize, f64)>)> = Vec::new();
        let mut unmatched = [0usize; 2];
        for &from_treated in directions {
            let (found, lost) = self.match_direction(
                from_treated,
                &lp,
                d,
                &strata,
                width,
                mahalanobis.as_ref(),
                ties,
            );
            matches.extend(found);
            unmatched[usize::from(!from_treated)] += lost;
        }
        matches.sort_by_key(|m| m.0);
        if matches.is_empty() {
            return Err(Error::Estimation {
                method: "matching",
                reason: "no unit has a match within the caliper; widen the caliper or check \
                         the overlap of the propensity scores"
                    .into(),
            });
        }
        // K: the (shares of) times each unit serves as a match; K': the same squared.
        let mut k1 = Array1::<f64>::zeros(n);
        let mut k2 = Array1::<f64>::zeros(n);
        let mut matched = vec![false; n];
        for (i, near) in &matches {
            matched[*i] = true;
            for &(j, w) in near {
                k1[j] += w;
                k2[j] += w * w;
            }
        }
        let weights = Array1::from_shape_fn(n, |i| f64::from(u8::from(matched[i])) + k1[i]);
        let y = sample.y();
        // Each matched unit's effect, treated minus control whichever side is imputed.
        let diffs: Vec<f64> = matches
            .iter()
            .map(|(i, near)| {
                let imputed = near.iter().map(|&(j, w)| w * y[j]).sum::<f64>();
                if d[*i] {
                    y[*i] - imputed
                } else {
                    imputed - y[*i]
                }
            })
            .collect();
        let nm = matches.len() as f64;
        let tau = diffs.iter().sum::<f64>() / nm;
        let sigma2 = if self.variance_matches == 0 {
            // One variance for all: half the weighted variance of the matched pair
            // differences around the estimate (R Matching, Var.calc = 0).
            let (mut sw, mut ss) = (0.0, 0.0);
            for (i, near) in &matches {
                for &(j, w) in near {
                    let r = if d[*i] { y[*i] - y[j] } else { y[j] - y[*i] } - tau;
                    sw += w;
                    ss += w * r * r;
                }
            }
            Array1::from_elem(n, 0.5 * ss / sw)
        } else {
            conditional_variances(sample, &lp, &strata, self.variance_matches, ties)
        };
        // Abadie–Imbens (2006) with ties: V = (1/N²) [Σ_matched (τᵢ − τ)² + Σⱼ cⱼ σ̂²ⱼ]. A
        // unit's outcome enters the estimate with weight (1{matched} + Kⱼ)/N, and the first
        // sum already holds 1{matched} + K'ⱼ of its variance: cⱼ = Kⱼ² + 2 Kⱼ 1{matched}
        // − K'ⱼ (for the ATT, Kⱼ² − K'ⱼ on the controls; for the ATE without ties and M
        // matches, (K/M)² + (2M−1)/M · K/M, their equation (14)).
        let mut v = diffs.iter().map(|t| (t - tau) * (t - tau)).sum::<f64>();
        for j in 0..n {
            if k1[j] > 0.0 {
                let own = if matched[j] { 2.0 * k1[j] } else { 0.0 };
                v += (k1[j] * k1[j] + own - k2[j]) * sigma2[j];
            }
        }
        let se = (v / (nm * nm)).max(0.0).sqrt();
        let used = |treated: bool| {
            (0..n)
                .filter(|&j| d[j] == treated && weights[j] > 0.0)
                .count()
        };
        let (treated_used, controls_used) = (used(true), used(false));
        let effect = Effect::new(
            "psm",
            self.estimand,
            tau,
            se,
            match self.variance_matches {
                0 => "Abadie-Imbens (2006), homoskedastic; propensity score treated as known"
                    .to_string(),
                j => format!(
                    "Abadie-Imbens (2006), conditional variances from {j} same-group \
                     match{}; propensity score treated as known",
                    if j == 1 { "" } else { "es" }
                ),
            },
            treated_used,
            controls_used,
        );
        Ok(FittedMatching {
            effect,
            propensity: ps,
            weights,
            unmatched_treated: unmatched[0],
            unmatched_controls: unmatched[1],
            controls_used,
            treated_used,
            caliper,
            pair_diffs: diffs,
            matches,
        })
    }

    /// Matches the units of one group (the treated when `from_treated`) to the other,
    /// stratum by stratum: the matches of each matched unit, and how many found none
    /// within the caliper.
    #[allow(clippy::too_many_arguments)]
    fn match_direction(
        &self,
        from_treated: bool,
        lp: &Array1<f64>,
        d: &[bool],
        strata: &[usize],
        width: Option<f64>,
        mahalanobis: Option<&Array2<f64>>,
        ties: Ties,
    ) -> (Vec<Matched>, usize) {
        let n = d.len();
        let groups = strata.iter().max().map_or(1, |m| m + 1);
        let mut out = Vec::new();
        let mut unmatched = 0;
        for g in 0..groups {
            let sources: Vec<usize> = (0..n)
                .filter(|&i| strata[i] == g && d[i] == from_treated)
                .collect();
            let mut targets: Vec<usize> = (0..n)
                .filter(|&i| strata[i] == g && d[i] != from_treated)
                .collect();
            targets.sort_by(|&a, &b| lp[a].total_cmp(&lp[b]).then(a.cmp(&b)));
            if sources.is_empty() {
                continue;
            }
            if targets.is_empty() {
                unmatched += sources.len();
                continue;
            }
            // The targets' scores side by side: the searches then stay in cache.
            let tlp: Vec<f64> = targets.iter().map(|&c| lp[c]).collect();
            let found = if self.replace {
                sources
                    .iter()
                    .map(|&t| {
                        let near = nearest_with_ties(
                            lp,
                            &tlp,
                            &targets,
                            t,
                            self.ratio,
                            width,
                            mahalanobis,
                            ties,
                        );
                        (t, near)
                    })
                    .collect::<Vec<_>>()
            } else {
                greedy_without_replacement(lp, &targets, &sources, self.ratio, width, mahalanobis)
            };
            for (t, near) in found {
                if near.is_empty() {
                    unmatched += 1;
                } else {
                    let w = 1.0 / near.len() as f64;
                    out.push((t, near.into_iter().map(|c| (c, w)).collect()));
                }
            }
        }
        (out, unmatched)
    }
}

/// Covariates centred and whitened by their covariance over all units (as R's Matching
/// does with `Weight = 2`), so that Euclidean distance between rows is Mahalanobis
/// distance. (MatchIt uses the pooled within-group covariance instead; its matches also
/// depend on the row order, which ours must not.)
fn whitened(sample: &Sample) -> Result<Array2<f64>> {
    let x = sample.x();
    let (n, p) = x.dim();
    let mut mean = vec![0.0; p];
    for r in x.rows() {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let mut cov = Array2::<f64>::zeros((p, p));
    for r in x.rows() {
        for a in 0..p {
            let da = r[a] - mean[a];
            for b in 0..=a {
                cov[[a, b]] += da * (r[b] - mean[b]);
            }
        }
    }
    for a in 0..p {
        for b in 0..=a {
            cov[[a, b]] /= n as f64 - 1.0;
            cov[[b, a]] = cov[[a, b]];
        }
    }
    let l = linalg::cholesky(&cov).ok_or_else(|| Error::Estimation {
        method: "Mahalanobis matching",
        reason: "the covariates' covariance is singular (a constant or collinear covariate); \
                 leave it out"
            .into(),
    })?;
    // u = L⁻¹ x by forward substitution, row by row.
    let mut u = Array2::<f64>::zeros((n, p));
    for i in 0..n {
        for a in 0..p {
            let s: f64 = (0..a).map(|b| l[[a, b]] * u[[i, b]]).sum();
            u[[i, a]] = (x[[i, a]] - s) / l[[a, a]];
        }
    }
    Ok(u)
}

fn sq_dist(u: &Array2<f64>, a: usize, b: usize) -> f64 {
    u.row(a)
        .iter()
        .zip(u.row(b))
        .map(|(x, y)| (x - y) * (x - y))
        .sum()
}

/// The `k` nearest controls of treated unit `t` and every control tied with the k-th,
/// within the caliper on the logit; none if fewer than `k` are within it. `controls` is
/// sorted by `lp`.
#[allow(clippy::too_many_arguments)]
fn nearest_with_ties(
    lp: &Array1<f64>,
    clp: &[f64],
    controls: &[usize],
    t: usize,
    k: usize,
    width: Option<f64>,
    maha: Option<&Array2<f64>>,
    ties: Ties,
) -> Vec<usize> {
    let target = lp[t];
    let within = |c: usize| width.is_none_or(|w| (lp[c] - target).abs() <= w);
    if let Some(u) = maha {
        // Candidates: the caliper window on the logit, or every control.
        let lo = controls.partition_point(|&c| width.is_some_and(|w| lp[c] < target - w));
        let hi = controls.partition_point(|&c| width.is_none_or(|w| lp[c] <= target + w));
        let mut cand: Vec<(f64, usize)> = controls[lo..hi]
            .iter()
            .filter(|&&c| within(c))
            .map(|&c| (sq_dist(u, t, c), c))
            .collect();
        cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Integer-valued covariates make distinct controls exactly equidistant (one year
        // older or younger); rounding must not break those ties, so distances within a
        // relative 1e-9 of the k-th count as tied.
        let kth = cand.get(k.saturating_sub(1)).map_or(0.0, |c| c.0);
        // (`Ties` compares squares of what it is given, here squared distances.)
        let tol = 2e-9 * kth * kth;
        return take_with_ties(cand.into_iter(), k, Ties { sd: 1.0, tol });
    }
    let pos = clp.partition_point(|&v| v < target);
    let (mut l, mut r) = (pos, pos);
    let mut ordered = Vec::new();
    // Walk outwards from the insertion point, always to the closer side; stop once k are
    // taken and the next is farther than the k-th.
    let mut kth = f64::INFINITY;
    loop {
        let left = (l > 0).then(|| (target - clp[l - 1], controls[l - 1]));
        let right = (r < controls.len()).then(|| (clp[r] - target, controls[r]));
        let next = match (left, right) {
            (Some(a), Some(b)) => {
                if (a.0, a.1) <= (b.0, b.1) {
                    l -= 1;
                    a
                } else {
                    r += 1;
                    b
                }
            }
            (Some(a), None) => {
                l -= 1;
                a
            }
            (None, Some(b)) => {
                r += 1;
                b
            }
            (None, None) => break,
        };
        if ties.beyond(next.0, kth) || width.is_some_and(|w| next.0 > w) {
            break;
        }
        ordered.push(next.1);
        if ordered.len() == k {
            kth = next.0;
        }
    }
    // Fewer than k controls within the caliper: no support for this unit (with
    // replacement nothing is used up, so the gap is in the data), as in R's Matching.
    if ordered.len() < k {
        ordered.clear();
    }
    ordered
}

/// When a farther candidate still ties with the k-th nearest.
#[derive(Debug, Clone, Copy)]
struct Ties {
    /// Standard deviation of the logit (the tolerance is on standardised distances).
    sd: f64,
    /// Tolerance on the squared standardised distance.
    tol: f64,
}

impl Ties {
    /// Whether a candidate at `dist` is beyond the k-th nearest at `kth` (infinite
    /// until k are taken).
    fn beyond(self, dist: f64, kth: f64) -> bool {
        if kth.is_infinite() || self.tol == 0.0 {
            return dist > kth;
        }
        let (a, b) = (dist / self.sd, kth / self.sd);
        a * a > b * b + self.tol
    }
}

/// The first `k` of candidates sorted by distance, plus those tied with the k-th; none
/// if there are fewer than `k`.
fn take_with_ties(sorted: impl Iterator<Item = (f64, usize)>, k: usize, ties: Ties) -> Vec<usize> {
    let mut out = Vec::new();
    let mut kth = f64::INFINITY;
    for (dist, c) in sorted {
        if ties.beyond(dist, kth) {
            break;
        }
        out.push(c);
        if out.len() == k {
            kth = dist;
        }
    }
    if out.len() < k {
        out.clear();
    }
    out
}

/// Greedy matching without replacement: treated units from the largest propensity down,
/// in `k` rounds of one control each (so every treated unit gets a first match before
/// any gets a second), each taking the nearest control still available.
fn greedy_without_replacement(
    lp: &Array1<f64>,
    controls: &[usize],
    treated: &[usize],
    k: usize,
    width: Option<f64>,
    maha: Option<&Array2<f64>>,
) -> Vec<(usize, Vec<usize>)> {
    let mut order: Vec<usize> = treated.to_vec();
    order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]).then(a.cmp(&b)));
    let m = controls.len();
    // Skip links over taken controls (positions in `controls`): `right[i]` is the first
    // free position ≥ i (m if none), `left[i]` one past the last free position < i... kept
    // as "first free ≤ i" with offsets by one so that 0 means none.
    let mut right: Vec<usize> = (0..=m).collect();
    let mut left: Vec<usize> = (0..=m).collect();
    fn find(links: &mut [usize], mut i: usize) -> usize {
        let mut root = i;
        while links[root] != root {
            root = links[root];
        }
        while links[i] != root {
            let next = links[i];
            links[i] = root;
            i = next;
        }
        root
    }
    let mut out: Vec<(usize, Vec<usize>)> = order.iter().map(|&t| (t, Vec::new())).collect();
    let mut exhausted = vec![false; order.len()];
    for _round in 0..k {
        for (slot, &t) in order.iter().enumerate() {
            if exhausted[slot] {
                continue;
            }
            let target = lp[t];
            let pick = if let Some(u) = maha {
                let lo = controls.partition_point(|&c| width.is_some_and(|w| lp[c] < target - w));
                let hi = controls.partition_point(|&c| width.is_none_or(|w| lp[c] <= target + w));
                let mut best: Option<(f64, usize, usize)> = None;
                let mut p = find(&mut right, lo);
                while p < hi {
                    let c = controls[p];
                    let cand = (sq_dist(u, t, c), c, p);
                    if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                        best = Some(cand);
                    }
                    p = find(&mut right, p + 1);
                }
                best.map(|b| b.2)
            } else {
                let pos = controls.partition_point(|&c| lp[c] < target);
                let r = find(&mut right, pos);
                // left links are stored shifted by one: left[i + 1] = i + 1 if free.
                let l = find(&mut left, pos);
                let lpos = (l > 0).then(|| l - 1);
                let rpos = (r < m).then_some(r);
                let cand = |p: usize| ((lp[controls[p]] - target).abs(), controls[p], p);
                // Equal distances go to the left (lower score), as in MatchIt.
                match (lpos.map(cand), rpos.map(cand)) {
                    (Some(a), Some(b)) => Some(if a.0 <= b.0 { a.2 } else { b.2 }),
                    (Some(a), None) => Some(a.2),
                    (None, Some(b)) => Some(b.2),
                    (None, None) => None,
                }
                .filter(|&p| width.is_none_or(|w| (lp[controls[p]] - target).abs() <= w))
            };
            match pick {
                Some(p) => {
                    out[slot].1.push(controls[p]);
                    right[p] = p + 1;
                    left[p + 1] = p;
                }
                None => exhausted[slot] = true,
            }
        }
    }
    out
}

/// σ̂²ᵢ for every unit: matched to its `j` nearest units of the same group and stratum
/// on the logit (ties included); the variance of its outcome and theirs.
fn conditional_variances(
    sample: &Sample,
    lp: &Array1<f64>,
    strata: &[usize],
    j: usize,
    ties: Ties,
) -> Array1<f64> {
    let n = sample.len();
    let d = sample.d();
    let y = sample.y();
    let mut out = Array1::<f64>::zeros(n);
    let groups = strata.iter().max().map_or(1, |m| m + 1);
    let mut members_of: Vec<[Vec<usize>; 2]> = vec![[Vec::new(), Vec::new()]; groups];
    for i in 0..n {
        members_of[strata[i]][usize::from(d[i])].push(i);
    }
    for arms in &mut members_of {
        for members in arms.iter_mut() {
            members.sort_by(|&a, &b| lp[a].total_cmp(&lp[b]).then(a.cmp(&b)));
            if members.len() < 2 {
                continue;
            }
            for (pos, &i) in members.iter().enumerate() {
                // Walk outwards from i's own position, skipping i.
                let target = lp[i];
                let (mut l, mut r) = (pos, pos + 1);
                let mut near: Vec<usize> = Vec::new();
                let mut kth = f64::INFINITY;
                loop {
                    let left = (l > 0).then(|| (target - lp[members[l - 1]], members[l - 1]));
                    let right = (r < members.len()).then(|| (lp[members[r]] - target, members[r]));
                    let next = match (left, right) {
                        (Some(a), Some(b)) if (a.0, a.1) <= (b.0, b.1) => {
                            l -= 1;
                            a
                        }
                        (Some(a), None) => {
                            l -= 1;
                            a
                        }
                        (_, Some(b)) => {
                            r += 1;
                            b
                        }
                        (None, None) => break,
                    };
                    if ties.beyond(next.0, kth) {
                        break;
                    }
                    near.push(next.1);
                    if near.len() == j {
                        kth = next.0;
                    }
                }
                // The sample variance of the unit and its neighbours (n − 1), as R's
                // Matching computes it; with one neighbour and no ties it is
                // Abadie–Imbens' J/(J+1)·(yᵢ − ȳ)².
                near.push(i);
                let m = near.len() as f64;
                let mean = near.iter().map(|&c| y[c]).sum::<f64>() / m;
                out[i] = near
                    .iter()
                    .map(|&c| (y[c] - mean) * (y[c] - mean))
                    .sum::<f64>()
                    / (m - 1.0);
            }
        }
    }
    out
}
