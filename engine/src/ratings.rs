//! Operator ratings by indirect standardisation: each operator's observed number of
//! persons re-employed against the number expected from a logistic model of the persons'
//! characteristics fitted on every operator's persons (the intake mix), the ratio O/E with
//! its exact Poisson interval, and the funnel plot's control limits (Spiegelhalter 2005,
//! "Funnel plots for comparing institutional performance", Stat Med 24:1185), so that
//! small operators are not ranked on noise.
//!
//! The interval of O/E is the exact (Garwood) Poisson interval of O divided by E, as R's
//! `poisson.test(O, E)` gives it; the funnel limits at a level are the Poisson quantiles
//! around E interpolated as Spiegelhalter's appendix does.

use statrs::distribution::{ContinuousCDF, DiscreteCDF, Poisson};

use crate::causal::logit::{Logit, Separation, fit_propensity};
use crate::causal::table::SampleSpec;
use crate::columns::Table;
use crate::{Error, Result};

/// What to rate.
#[derive(Debug, Clone)]
pub struct RatingSpec {
    /// The outcome column, 0/1 (employed at 6 months).
    pub outcome: String,
    /// The case-mix covariates (terms as an evaluation takes them: `age^2`, `C(gol_path)`).
    pub covariates: Vec<String>,
    /// The column naming each row's operator.
    pub operator: String,
}

/// One operator's rating.
#[derive(Debug, Clone)]
pub struct Rating {
    /// The operator.
    pub operator: String,
    /// Persons rated (rows used), as unit keys.
    pub persons: Vec<u64>,
    /// Of those, with the outcome (unit keys): O.
    pub observed: Vec<u64>,
    /// Expected number with the outcome given the persons' characteristics: E.
    pub expected: f64,
    /// O / E.
    pub ratio: f64,
    /// Exact 95 % interval of O / E.
    pub ci95: (f64, f64),
    /// The funnel's 95 % and 99.8 % limits of O / E at this E for a ratio of 1.
    pub funnel95: (f64, f64),
    /// See `funnel95`.
    pub funnel998: (f64, f64),
}

/// Every operator's rating and the model behind the expected numbers.
#[derive(Debug, Clone)]
pub struct Ratings {
    /// By operator, in sorted order of the operator.
    pub operators: Vec<Rating>,
    /// Persons used by the model.
    pub persons: usize,
    /// Persons left out for a missing value (outcome, covariate or operator).
    pub dropped_missing: usize,
    /// Covariates left out as aliased (collinear with others).
    pub aliased: Vec<String>,
    /// Overall share with the outcome.
    pub rate: f64,
}

/// Exact (Garwood) interval of a Poisson count `o`, at `level` (0.95): the `a` and `1 − a`
/// quantiles of Gamma(o, 1) and Gamma(o + 1, 1).
pub fn poisson_interval(o: u64, level: f64) -> (f64, f64) {
    let a = (1.0 - level) / 2.0;
    let lo = if o == 0 {
        0.0
    } else {
        gamma_quantile(o as f64, a)
    };
    (lo, gamma_quantile((o + 1) as f64, 1.0 - a))
}

/// The `p` quantile of Gamma(shape, 1). statrs' inverse CDF stops at a relative error near
/// 1e-4 for large shapes (147.2375 for R's 147.2132 at shape 140): its answer is refined by
/// Newton's method on the regularised incomplete gamma function, which statrs computes to
/// full precision.
fn gamma_quantile(shape: f64, p: f64) -> f64 {
    use statrs::distribution::{Continuous, Gamma};
    let Ok(g) = Gamma::new(shape, 1.0) else {
        return f64::NAN;
    };
    let mut x = g.inverse_cdf(p);
    for _ in 0..50 {
        // The density in logs: statrs' `pdf` overflows to infinity for large shapes.
        let f = g.ln_pdf(x).exp();
        if f.is_nan() || f <= 0.0 {
            break;
        }
        let step = (g.cdf(x) - p) / f;
        let next = (x - step).max(x / 2.0);
        if (next - x).abs() <= 1e-15 * x.max(1.0) {
            x = next;
            break;
        }
        x = next;
    }
    x
}

/// The `p` quantile of a Poisson count with mean `e`, interpolated between integers as
/// Spiegelhalter (2005, appendix A.1.1) does for funnel limits: `r − α`, with `r` the
/// quantile and `α = (F(r) − p) / (F(r) − F(r − 1))`.
pub fn poisson_limit(e: f64, p: f64) -> f64 {
    let Ok(pois) = Poisson::new(e.max(1e-12)) else {
        return f64::NAN;
    };
    // The smallest r with F(r) ≥ p, from below the mean (a few steps for any e).
    let mut r = (e - 10.0 * e.sqrt() - 10.0).max(0.0).floor() as u64;
    while pois.cdf(r) < p {
        r += 1;
    }
    let f = pois.cdf(r);
    let below = if r == 0 { 0.0 } else { pois.cdf(r - 1) };
    let alpha = if f > below {
        (f - p) / (f - below)
    } else {
        0.0
    };
    r as f64 - alpha
}

/// Rates every operator of `table` (rows with a unit key each in `keys`).
pub fn rate(table: &Table, keys: &[u64], spec: &RatingSpec) -> Result<Ratings> {
    // Rows with every column present, as the model uses them.
    let n = table.len();
    let mut columns: Vec<&str> = vec![spec.outcome.as_str(), spec.operator.as_str()];
    for t in &spec.covariates {
        columns.extend(crate::causal::table::term_columns(t));
    }
    let used = table.complete_rows(columns)?;
    let y = table.numeric(&spec.outcome)?;
    if let Some(r) = (0..n).find(|&r| used[r] && y[r] != 0.0 && y[r] != 1.0) {
        return Err(table.bad(
            r,
            &spec.outcome,
            "the outcome of a rating must be 0 or 1".into(),
        ));
    }
    // The model: P(outcome | case mix), fitted on every operator's persons, with the
    // operator as the sample's cluster label so that its units can be summed by operator.
    let loaded = table.sample(&SampleSpec {
        treatment: spec.outcome.clone(),
        outcome: spec.outcome.clone(),
        covariates: spec.covariates.clone(),
        cluster: Some(spec.operator.clone()),
        ..SampleSpec::default()
    })?;
    // Covariates aliased with the intercept or with others are left out, as R's glm does.
    let (sample, aliased) = match loaded.sample.without_aliased()? {
        Some((s, dropped)) => (s, dropped),
        None => (loaded.sample.clone(), Vec::new()),
    };
    let sample = &sample;
    // A level held by persons all re-employed (or none) separates: Firth's penalised
    // likelihood then gives finite coefficients, as the evaluations do.
    let fitted = fit_propensity(
        &Logit::new(),
        sample.x(),
        sample.d(),
        Some(sample.names()),
        Separation::Auto,
    )?;
    // The expected numbers add up to the observed (exactly so for the maximum likelihood
    // with an intercept; Firth's estimates are calibrated to it).
    let (sum_p, sum_d) = fitted
        .fitted()
        .iter()
        .zip(sample.d())
        .fold((0.0, 0.0), |(a, b), (&p, &d)| {
            (a + p, b + f64::from(u8::from(d)))
        });
    let scale = if sum_p > 0.0 { sum_d / sum_p } else { 1.0 };
    let p = fitted.fitted().mapv(|v| v * scale);
    let labels = sample.cluster().ok_or_else(|| Error::Param {
        name: "operator",
        reason: "no operator labels".into(),
    })?;
    let (levels, codes) = table.categories(&spec.operator)?;
    // The sample numbers its labels by their text, in sorted order, among the rows used.
    let named: std::collections::BTreeSet<&str> = (0..n)
        .filter(|&r| used[r])
        .filter_map(|r| codes[r].map(|c| levels[c as usize].as_str()))
        .collect();
    let level_of: Vec<usize> = named
        .iter()
        .map(|l| levels.iter().position(|x| x == l))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Estimation {
            method: "operator ratings",
            reason: "the model's operators are not the table's".into(),
        })?;
    let mut expected = vec![0.0; levels.len()];
    let mut observed_n = vec![0u64; levels.len()];
    for ((&l, &pi), &d) in labels.iter().zip(p.iter()).zip(sample.d()) {
        let Some(&k) = level_of.get(l as usize) else {
            return Err(Error::Estimation {
                method: "operator ratings",
                reason: "an operator label out of range".into(),
            });
        };
        expected[k] += pi;
        observed_n[k] += u64::from(d);
    }
    let mut operators = Vec::new();
    for (k, name) in levels.iter().enumerate() {
        let in_k = |r: usize| used[r] && codes[r] == Some(k as u32);
        let mut persons: Vec<u64> = (0..n).filter(|&r| in_k(r)).map(|r| keys[r]).collect();
        let mut observed: Vec<u64> = (0..n)
            .filter(|&r| in_k(r) && y[r] == 1.0)
            .map(|r| keys[r])
            .collect();
        persons.sort_unstable();
        observed.sort_unstable();
        if persons.is_empty() {
            continue;
        }
        // Never quote the counts: they are not protected yet.
        if observed.len() as u64 != observed_n[k] {
            return Err(Error::Estimation {
                method: "operator ratings",
                reason: format!("operator {name}: the table and the model disagree on its persons"),
            });
        }
        let e = expected[k];
        let o = observed.len() as u64;
        if e.is_nan() || e <= 0.0 {
            continue;
        }
        let (lo, hi) = poisson_interval(o, 0.95);
        let limit = |p: f64| poisson_limit(e, p) / e;
        operators.push(Rating {
            operator: name.clone(),
            persons,
            observed,
            expected: e,
            ratio: o as f64 / e,
            ci95: (lo / e, hi / e),
            funnel95: (limit(0.025), limit(0.975)),
            funnel998: (limit(0.001), limit(0.999)),
        });
    }
    let total: f64 = sample.d().iter().map(|&d| f64::from(u8::from(d))).sum();
    Ok(Ratings {
        operators,
        persons: sample.d().len(),
        dropped_missing: loaded.dropped_missing,
        aliased,
        rate: total / sample.d().len().max(1) as f64,
    })
}

/// One window's part of an operator's rating in [`shifts`].
#[derive(Debug, Clone)]
pub struct WindowRating {
    /// Persons rated in the window, as unit keys.
    pub persons: Vec<u64>,
    /// Of those, with the outcome: O.
    pub observed: Vec<u64>,
    /// Expected number with the outcome: E.
    pub expected: f64,
}

impl WindowRating {
    /// O / E.
    pub fn ratio(&self) -> f64 {
        self.observed.len() as f64 / self.expected
    }
}

/// An operator's outcomes in an earlier and a later window, against the expected from one
/// case-mix model of both, and the exact test that its O / E did not change.
#[derive(Debug, Clone)]
pub struct Shift {
    /// The operator.
    pub operator: String,
    /// The earlier window.
    pub earlier: WindowRating,
    /// The later window.
    pub later: WindowRating,
    /// The other operators' median ratio of O / E, later over earlier.
    pub market: f64,
    /// Two-sided exact p-value that this operator's O / E changed as the others' did
    /// ([`poisson_ratio_test`], the later expected number scaled by `market`).
    pub p_value: f64,
}

/// Each operator's O / E in two windows and whether it shifted against the others: one
/// logistic model of the outcome on the case mix and the window (so a change that every
/// operator shares, a better labour market, moves the expected numbers, not the
/// operator), fitted on every operator's persons of both windows; then, per operator, the
/// exact conditional test of its two counts against their expected numbers, the later one
/// scaled by the other operators' median change of O / E. Without that scaling an
/// operator's own fall would be shared with the period term (a fifth of it with five
/// operators) and hidden from its test; with a mean instead of the median, one operator's
/// fall would make the others look as if they rose. The median is taken as known: with
/// few operators the test is a little too ready to flag. `window` names a 0/1 column: 1 in the later
/// window. Operators present in only one window, or alone, are left out.
pub fn shifts(table: &Table, keys: &[u64], spec: &RatingSpec, window: &str) -> Result<Vec<Shift>> {
    Ok(rate_with_shifts(table, keys, spec, window)?.1)
}

/// [`shifts`], and the later window's ratings from the same model: the ratings a report
/// prints beside the shifts, for one fit of the case mix instead of two (and twice the
/// persons behind its coefficients). `Ratings::persons`, `rate` and `dropped_missing`
/// are of the later window; `aliased` of the model.
pub fn rate_with_shifts(
    table: &Table,
    keys: &[u64],
    spec: &RatingSpec,
    window: &str,
) -> Result<(Ratings, Vec<Shift>)> {
    let w = table.numeric(window)?;
    if let Some(r) = (0..table.len()).find(|&r| !w[r].is_nan() && w[r] != 0.0 && w[r] != 1.0) {
        return Err(table.bad(r, window, "a window column must be 0 or 1".into()));
    }
    let (levels, codes) = table.categories(&spec.operator)?;
    // The operator and the window as one label, so that `rate` sums each pair.
    const SEP: char = '\u{1f}';
    let labels: Vec<Option<String>> = (0..table.len())
        .map(|r| {
            let c = codes[r]?;
            (!w[r].is_nan()).then(|| format!("{}{SEP}{}", levels[c as usize], w[r] as u8))
        })
        .collect();
    let label_column = "operator and window";
    let with = table.clone().with_text_column(label_column, labels)?;
    let mut covariates = spec.covariates.clone();
    covariates.push(window.to_string());
    let rated = rate(
        &with,
        keys,
        &RatingSpec {
            outcome: spec.outcome.clone(),
            covariates,
            operator: label_column.into(),
        },
    )?;
    let mut by: std::collections::BTreeMap<String, [Option<WindowRating>; 2]> =
        std::collections::BTreeMap::new();
    let mut later_ratings = Vec::new();
    for r in rated.operators {
        let Some((op, k)) = r.operator.rsplit_once(SEP) else {
            continue;
        };
        let part = WindowRating {
            persons: r.persons.clone(),
            observed: r.observed.clone(),
            expected: r.expected,
        };
        by.entry(op.to_string()).or_default()[usize::from(k == "1")] = Some(part);
        if k == "1" {
            later_ratings.push(Rating {
                operator: op.to_string(),
                ..r
            });
        }
    }
    // The later window's persons, as the model used them.
    let later_used: usize = later_ratings.iter().map(|r| r.persons.len()).sum();
    let later_observed: usize = later_ratings.iter().map(|r| r.observed.len()).sum();
    let in_later = (0..table.len()).filter(|&r| w[r] == 1.0).count();
    let later_window = Ratings {
        operators: later_ratings,
        persons: later_used,
        dropped_missing: in_later.saturating_sub(later_used),
        aliased: rated.aliased.clone(),
        rate: later_observed as f64 / later_used.max(1) as f64,
    };
    let both: Vec<(String, WindowRating, WindowRating)> = by
        .into_iter()
        .filter_map(|(operator, [earlier, later])| Some((operator, earlier?, later?)))
        .collect();
    // Each operator's change of O / E between the windows, in logs (half a person added
    // to each count, so that a window with none is finite).
    let change: Vec<f64> = both
        .iter()
        .map(|(_, earlier, later)| {
            let r = |w: &WindowRating| (w.observed.len() as f64 + 0.5) / w.expected;
            (r(later) / r(earlier)).ln()
        })
        .collect();
    let found = both
        .iter()
        .enumerate()
        .filter_map(|(k, (operator, earlier, later))| {
            // The other operators' median change: what the period term missed of the
            // market, and the part of this operator's own change that the period term
            // took in (a fifth of it with five operators). The median, so that another
            // operator's shift does not move it.
            let mut rest: Vec<f64> = change
                .iter()
                .enumerate()
                .filter(|(j, c)| *j != k && c.is_finite())
                .map(|(_, c)| *c)
                .collect();
            if rest.is_empty() {
                return None;
            }
            rest.sort_by(f64::total_cmp);
            let market = crate::linalg::quantile_sorted(&rest, 0.5).exp();
            if !(market.is_finite() && market > 0.0) {
                return None;
            }
            let p_value = poisson_ratio_test(
                later.observed.len() as u64,
                later.expected * market,
                earlier.observed.len() as u64,
                earlier.expected,
            );
            Some(Shift {
                operator: operator.clone(),
                earlier: earlier.clone(),
                later: later.clone(),
                market,
                p_value,
            })
        })
        .collect();
    Ok((later_window, found))
}

/// Two-sided exact p-value that two Poisson counts `o1` and `o2` have the same ratio to
/// their expected numbers `e1` and `e2`, as R's `poisson.test(c(o1, o2), c(e1, e2))`
/// computes it: conditional on `o1 + o2`, `o1` is binomial with `p = e1 / (e1 + e2)`, and
/// the p-value sums the probabilities of the outcomes no more likely than the one seen
/// (`binom.test`'s rule, with its relative tolerance of 1e-7).
pub fn poisson_ratio_test(o1: u64, e1: f64, o2: u64, e2: f64) -> f64 {
    use statrs::distribution::{Binomial, Discrete};
    let n = o1 + o2;
    if n == 0 || !(e1 > 0.0 && e2 > 0.0) {
        return 1.0;
    }
    let p = e1 / (e1 + e2);
    let Ok(b) = Binomial::new(p, n) else {
        return f64::NAN;
    };
    let d = b.pmf(o1) * (1.0 + 1e-7);
    let total: f64 = (0..=n).map(|k| b.pmf(k)).filter(|&q| q <= d).sum();
    total.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::Values;

    fn fixture(name: &str) -> Vec<Vec<f64>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ratings")
            .join(name);
        let mut rdr = csv::Reader::from_path(path).unwrap();
        rdr.records()
            .map(|r| r.unwrap().iter().map(|v| v.parse().unwrap()).collect())
            .collect()
    }

    /// Uniform draws in [0, 1) from a seeded linear congruential generator: test data
    /// that do not depend on a random crate's version.
    fn uniforms(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn intervals_and_funnel_limits_are_r_s() {
        for row in fixture("interval.csv") {
            let (o, e) = (row[0] as u64, row[1]);
            let (lo, hi) = poisson_interval(o, 0.95);
            assert!(
                (lo / e - row[2]).abs() <= 1e-9 * row[2].max(1.0),
                "{row:?}: {}",
                lo / e
            );
            assert!(
                (hi / e - row[3]).abs() <= 1e-9 * row[3],
                "{row:?}: {}",
                hi / e
            );
        }
        for row in fixture("funnel.csv") {
            let got = poisson_limit(row[0], row[1]);
            assert!((got - row[2]).abs() < 1e-9, "{row:?}: {got}");
        }
    }

    #[test]
    fn the_shift_test_is_r_s_two_sample_poisson_test() {
        let rows = fixture("shift.csv");
        assert_eq!(rows.len(), 135);
        for row in rows {
            let got = poisson_ratio_test(row[0] as u64, row[1], row[2] as u64, row[3]);
            let want = row[4];
            assert!(
                (got - want).abs() <= 1e-9 * want.max(1e-300) + 1e-300,
                "{row:?}: {got}"
            );
        }
    }

    /// Four operators in two windows; everyone does better in the later one (the market),
    /// one operator does much worse there. The window absorbs the market: only the one
    /// operator's O / E shifts.
    #[test]
    fn a_sudden_fall_is_found_and_a_shared_rise_is_not() {
        let n = 8000;
        let (mut x, mut y, mut op, mut win) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut uniform = uniforms(777);
        for i in 0..n {
            let xi = uniform() * 2.0 - 1.0;
            let k = i % 4;
            let later = (i / 4) % 2 == 1;
            let eta = -0.4
                + 1.0 * xi
                + if later { 0.5 } else { 0.0 }
                + if later && k == 3 { -1.0 } else { 0.0 };
            let p = 1.0 / (1.0 + (-eta).exp());
            x.push(xi);
            y.push(f64::from(u8::from(uniform() < p)));
            op.push(Some(format!("OP-{k}")));
            win.push(f64::from(u8::from(later)));
        }
        let table = Table::from_values(
            "test",
            vec![
                ("x".into(), Values::Numbers(x)),
                ("y".into(), Values::Numbers(y)),
                ("op".into(), Values::Texts(op)),
                ("later".into(), Values::Numbers(win)),
            ],
        )
        .unwrap();
        let keys: Vec<u64> = (0..n as u64).collect();
        let found = shifts(
            &table,
            &keys,
            &RatingSpec {
                outcome: "y".into(),
                covariates: vec!["x".into()],
                operator: "op".into(),
            },
            "later",
        )
        .unwrap();
        assert_eq!(found.len(), 4);
        for s in &found {
            assert_eq!(s.earlier.persons.len() + s.later.persons.len(), 2000);
            let fell = s.later.ratio() < s.earlier.ratio();
            if s.operator == "OP-3" {
                assert!(s.p_value < 1e-6 && fell, "{s:?}");
            } else {
                // The others share the market's rise, which the window absorbs.
                assert!(s.p_value > 0.002, "{}: {}", s.operator, s.p_value);
            }
        }
        // Per window, the expected numbers add up to the observed.
        for k in 0..2 {
            let (o, e) = found.iter().fold((0.0, 0.0), |(o, e), s| {
                let w = if k == 0 { &s.earlier } else { &s.later };
                (o + w.observed.len() as f64, e + w.expected)
            });
            assert!((o - e).abs() < 1e-6 * o, "{o} {e}");
        }
    }

    /// Three operators, the same case mix, one better: its O/E is above 1 and outside the
    /// funnel; the expected numbers add up to the observed (a logit with an intercept fits
    /// the total exactly).
    #[test]
    fn a_better_operator_stands_out_and_expected_adds_up_to_observed() {
        let n = 3000;
        let (mut x, mut y, mut op) = (Vec::new(), Vec::new(), Vec::new());
        let mut uniform = uniforms(12345);
        for i in 0..n {
            let xi = uniform() * 2.0 - 1.0;
            let k = i % 3;
            let eta = -0.5 + 1.2 * xi + if k == 2 { 0.8 } else { 0.0 };
            let p = 1.0 / (1.0 + (-eta).exp());
            x.push(xi);
            y.push(f64::from(u8::from(uniform() < p)));
            op.push(Some(format!("OP-{k}")));
        }
        let table = Table::from_values(
            "test",
            vec![
                ("x".into(), Values::Numbers(x)),
                ("y".into(), Values::Numbers(y.clone())),
                ("op".into(), Values::Texts(op)),
            ],
        )
        .unwrap();
        let keys: Vec<u64> = (0..n as u64).collect();
        let r = rate(
            &table,
            &keys,
            &RatingSpec {
                outcome: "y".into(),
                covariates: vec!["x".into()],
                operator: "op".into(),
            },
        )
        .unwrap();
        assert_eq!(r.operators.len(), 3);
        let total_e: f64 = r.operators.iter().map(|o| o.expected).sum();
        let total_o: f64 = y.iter().sum();
        assert!((total_e - total_o).abs() < 1e-6, "{total_e} vs {total_o}");
        let best = &r.operators[2];
        assert!(best.ratio > 1.1 && best.ratio > best.funnel95.1, "{best:?}");
        assert!(r.operators[0].ratio < 1.0 && r.operators[1].ratio < 1.0);
        assert_eq!(best.persons.len(), 1000);
    }
}
