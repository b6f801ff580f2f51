//! Publications protected as a whole: every count of a report (its tables, charts and
//! sentences, in every format) and every count published earlier from the same store.
//!
//! Each count is the set of units it counts ([`Units`]). Two counts are related exactly
//! as their sets are: a total is the union of its parts, this quarter's end stock is the
//! next quarter's start stock, a tenant's row in the pooled report is the same set as in
//! its own report. The attacker's knowledge is therefore a linear system over the
//! **atoms**, the groups of units that every count either contains whole or not at all:
//! each published count fixes the sum of its atoms, and atoms are non-negative. What the
//! attacker can derive about a hidden count is the interval between the least and the
//! greatest sum of its atoms over that system, two linear programmes ([`system`]), as
//! Tau-Argus's audit computes them for linked tables.
//!
//! A count anyone can derive without its being printed (a row's total less a cell), and the
//! few units by which two counts differ (in this publication, or between it and an earlier
//! one), join the draft as **derived** counts: never printed, never fixed in the system,
//! and, when small, checked by the audit like any small count ([`Draft::derived`],
//! [`Draft::add_differences`], which a study applies to its whole draft and a report to its
//! profiling section). A count anyone can compute whatever is hidden (the size of
//! ten equal groups) is **public** ([`Draft::public`]): never hidden to protect another.
//!
//! [`protect`] applies the threshold rule (primary suppression of counts from 1 to the
//! threshold less one), a first secondary pattern on the tables' lines (no line with a
//! single hidden value; cells hidden by earlier publications hidden again), then the
//! audit: every primary count, of this publication and of every earlier one in the
//! ledger, must have an interval reaching its protection range ([`Rule::interval`]).
//! Where one does not, the audit hides one more count of this publication, the one that
//! restores the range at the least cost, and checks again. Hiding only widens intervals,
//! so the loop ends; what it returns is proved by the audit it ran.

pub mod ledger;
pub mod system;

use std::collections::HashMap;
use std::time::Instant;

use occupa_engine::indicators::Units;
use serde::{Deserialize, Serialize};

use crate::{Error, MinCount, Result, Status};
use system::{Neighbourhood, System};

/// The protection rule: the threshold, and how far an attacker's interval for a hidden
/// small count must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Smallest count published.
    pub min: u64,
    /// The protection range, as a share of the threshold (Tau-Argus's "safety range").
    pub range: f64,
}

impl Rule {
    /// The threshold rule with a protection range of 30 % of the threshold.
    pub fn new(min: MinCount) -> Rule {
        Rule {
            min: min.get(),
            range: 0.3,
        }
    }

    /// The interval `[lo, hi]` an attacker's feasible range must cover for a count `v`
    /// below the threshold: up to the threshold at least (they cannot tell that it is
    /// small) and `range × threshold` above it; down by as much, or to 1.
    ///
    /// ```
    /// use occupa_anonymiser::{MinCount, publication::Rule};
    /// let r = Rule::new(MinCount::new(5)?);
    /// assert_eq!(r.interval(1), (1, 5));
    /// assert_eq!(r.interval(4), (2, 6));
    /// # Ok::<(), occupa_anonymiser::Error>(())
    /// ```
    pub fn interval(&self, v: u64) -> (u64, u64) {
        let r = ((self.range * self.min as f64).ceil() as u64).max(1);
        let up = self.min.saturating_sub(v).max(r);
        let down = r.min(v.saturating_sub(1));
        (v - down, v + up)
    }

    /// Whether `v` is a primary (small, non-zero) count.
    pub fn is_primary(&self, v: u64) -> bool {
        v > 0 && v < self.min
    }
}

/// A count to publish.
#[derive(Debug, Clone)]
pub struct Count {
    /// A stable key (table, row, column, period): what the ledger records.
    pub key: String,
    /// What it counts.
    pub units: Units,
    /// A total (its parts are preferred for secondary suppression).
    pub margin: bool,
    /// Shown when safe. A derived count ([`Draft::derived`]) is not: it is what anyone can
    /// compute from the printed ones, registered so that the audit checks it when it is
    /// small, and it tells the attacker nothing the printed counts do not.
    pub printed: bool,
    /// Known to anyone whatever is hidden ([`Draft::public`]): always shown, never hidden.
    pub public: bool,
}

impl Count {
    /// Its value.
    pub fn value(&self) -> u64 {
        self.units.len() as u64
    }
}

/// Everything one publication would show, before protection.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The publication's id (`quarterly/2026Q3/pooled`).
    pub id: String,
    /// Its counts, one per distinct set of units: a count shown twice (a tenant's end
    /// stock in four tables) is one count, hidden or shown everywhere alike.
    pub counts: Vec<Count>,
    /// Lines: groups of counts one of which is determined by the others (a row with its
    /// total), for the first secondary pattern. The audit does not need them.
    pub lines: Vec<Vec<usize>>,
    by_units: HashMap<u64, Vec<usize>>,
}

fn set_hash(units: &[u64]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ units.len() as u64;
    for &u in units {
        h = (h ^ u).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    h
}

impl Draft {
    /// An empty publication.
    pub fn new(id: &str) -> Draft {
        Draft {
            id: id.to_string(),
            counts: Vec::new(),
            lines: Vec::new(),
            by_units: HashMap::new(),
        }
    }

    /// Adds a count (or finds the one with the same units) and returns its index.
    pub fn count(&mut self, key: &str, units: Units, margin: bool) -> usize {
        let i = self.derived(key, units);
        self.counts[i].margin |= margin;
        self.counts[i].printed = true;
        i
    }

    /// Adds a count that is never printed but that anyone can derive from the printed ones
    /// (a row's total less one of its cells), or finds the count with the same units.
    /// When it is small it is a primary count like any other: the audit proves that the
    /// printed counts, this publication's and the earlier ones', leave it a wide enough
    /// interval, and hides more of them where they do not. It is never fixed in the
    /// attacker's system: what it says, the printed counts say already (had it been fixed,
    /// hiding the cells it derives from would protect nothing).
    pub fn derived(&mut self, key: &str, units: Units) -> usize {
        let h = set_hash(&units);
        if let Some(found) = self
            .by_units
            .get(&h)
            .and_then(|v| v.iter().copied().find(|&i| self.counts[i].units == units))
        {
            return found;
        }
        let i = self.counts.len();
        self.counts.push(Count {
            key: key.to_string(),
            units,
            margin: false,
            printed: false,
            public: false,
        });
        self.by_units.entry(h).or_default().push(i);
        i
    }

    /// Adds a count anyone can compute whatever the publication hides (the size of each
    /// of ten equal groups, given the total), or marks the count with the same units so.
    /// It is shown and fixed in the attacker's system, and never hidden to protect
    /// another: hiding it would be a protection only on paper.
    pub fn public(&mut self, key: &str, units: Units) -> usize {
        let i = self.count(key, units, false);
        self.counts[i].public = true;
        i
    }

    /// Differencing: two counts whose sets differ by a few units give those units away as
    /// the difference of the two, whether both are this publication's (the lowest tenth of
    /// predicted risk and the persons below the risk threshold) or one is an earlier
    /// publication's (a cohort one day shorter than an earlier study's). Each such
    /// difference, on either side, joins the draft as a derived count, so the threshold
    /// rule and the audit protect it like any small count. A study calls it on its whole
    /// draft before [`protect`]; a report, on the sections it knows to hold such pairs
    /// ([`Draft::add_differences_among`]).
    ///
    /// Pairs are only compared when their sizes differ by less than `min`; each comparison
    /// stops at `min` differing units.
    pub fn add_differences(&mut self, prior: &[Prior], min: u64) {
        let all: Vec<usize> = (0..self.counts.len()).collect();
        self.differences_of(&all, prior, min);
    }

    /// [`Draft::add_differences`] among `counts` only, and not against earlier publications.
    pub fn add_differences_among(&mut self, counts: &[usize], min: u64) {
        self.differences_of(counts, &[], min);
    }

    fn differences_of(&mut self, counts: &[usize], prior: &[Prior], min: u64) {
        if min <= 1 {
            return;
        }
        let mut order: Vec<usize> = counts
            .iter()
            .copied()
            .filter(|&i| !self.counts[i].units.is_empty())
            .collect();
        order.sort_by_key(|&i| (self.counts[i].units.len(), i));
        order.dedup();
        let sizes: Vec<usize> = order.iter().map(|&i| self.counts[i].units.len()).collect();
        let near = |len: usize| -> std::ops::Range<usize> {
            let reach = min as usize - 1;
            sizes.partition_point(|&s| s + reach < len)
                ..sizes.partition_point(|&s| s <= len + reach)
        };
        let mut found: Vec<(String, Units)> = Vec::new();
        for (pos, &a) in order.iter().enumerate() {
            let range = near(sizes[pos]);
            for &b in &order[(pos + 1).max(range.start)..range.end] {
                let (ca, cb) = (&self.counts[a], &self.counts[b]);
                if let Some((only_a, only_b)) = differences(&ca.units, &cb.units, min) {
                    found.push((format!("{} less {}", ca.key, cb.key), only_a));
                    found.push((format!("{} less {}", cb.key, ca.key), only_b));
                }
            }
        }
        for p in prior {
            for cell in p.cells.iter().filter(|c| !c.units.is_empty()) {
                for &b in &order[near(cell.units.len())] {
                    let c = &self.counts[b];
                    if let Some((before, now)) = differences(&cell.units, &c.units, min) {
                        found.push((format!("{}/{} less {}", p.id, cell.key, c.key), before));
                        found.push((format!("{} less {}/{}", c.key, p.id, cell.key), now));
                    }
                }
            }
        }
        for (key, units) in found.into_iter().filter(|(_, u)| !u.is_empty()) {
            self.derived(&key, units);
        }
    }

    /// Adds a line.
    pub fn line(&mut self, members: Vec<usize>) {
        let mut m = members;
        m.sort_unstable();
        m.dedup();
        if m.len() > 1 {
            self.lines.push(m);
        }
    }
}

/// The units only in `a` and only in `b` (both sorted), when there are some and together
/// fewer than `min` (a difference an attacker could read off two totals).
pub(crate) fn differences(a: &[u64], b: &[u64], min: u64) -> Option<(Vec<u64>, Vec<u64>)> {
    let min = min as usize;
    if a.len().abs_diff(b.len()) >= min {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x > y => {
                only_b.push(*y);
                j += 1;
            }
            (Some(x), _) => {
                only_a.push(*x);
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(*y);
                j += 1;
            }
        }
        if only_a.len() + only_b.len() >= min {
            return None;
        }
    }
    (!only_a.is_empty() || !only_b.is_empty()).then_some((only_a, only_b))
}

/// A publication already made, as the ledger keeps it.
#[derive(Debug, Clone)]
pub struct Prior {
    /// Its id.
    pub id: String,
    /// The rule it was protected with.
    pub rule: Rule,
    /// Its counts.
    pub cells: Vec<PriorCell>,
}

/// One count of a prior publication.
#[derive(Debug, Clone)]
pub struct PriorCell {
    /// Its key.
    pub key: String,
    /// What it counts.
    pub units: Units,
    /// Whether it was shown.
    pub published: bool,
    /// Whether it was a primary (small) count.
    pub primary: bool,
}

/// The interval an attacker has for one hidden primary count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellRange {
    /// The publication.
    pub publication: String,
    /// The count's key.
    pub key: String,
    /// Its value.
    pub value: u64,
    /// The least value consistent with everything published.
    pub lower: f64,
    /// The greatest (`None`: unbounded).
    pub upper: Option<f64>,
    /// The range it had to cover.
    pub required: (u64, u64),
}

/// What the audit established.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// Counts of this publication hidden (primary + secondary).
    pub hidden: usize,
    /// Of which primary.
    pub primary: usize,
    /// Primary counts of this publication whose interval was computed.
    pub checked: usize,
    /// Primary counts of earlier publications checked again against this one.
    pub prior_checked: usize,
    /// Earlier publications taken into account.
    pub prior_publications: usize,
    /// Counts hidden by the audit beyond the first pattern.
    pub added_by_audit: usize,
    /// Atoms and distinct counts of the linear system.
    pub atoms: usize,
    /// Distinct counts (rows) of the system.
    pub rows: usize,
    /// Linear programmes solved.
    pub solves: usize,
    /// Every primary count covers its protection range.
    pub all_protected: bool,
    /// Small counts of this publication already shown by an earlier one (they cannot be
    /// protected any more and are hidden here only for consistency).
    pub already_published: usize,
    /// Seconds.
    pub seconds: f64,
    /// The intervals of every checked primary count (kept in the ledger, never in a report).
    pub ranges: Vec<CellRange>,
}

/// A protected publication.
#[derive(Debug, Clone)]
pub struct Protection {
    /// Status of each count of the draft.
    pub status: Vec<Status>,
    /// What the audit established.
    pub audit: AuditReport,
}

impl Protection {
    /// The published value of count `i`, if shown (never for a derived count).
    pub fn shown(&self, draft: &Draft, i: usize) -> Option<u64> {
        (self.status[i] == Status::Safe && draft.counts[i].printed).then(|| draft.counts[i].value())
    }
}

/// The first pattern: while some line has exactly one hidden count, hide its smallest
/// shown non-zero count, preferring parts to totals, among those no earlier publication
/// has shown (`fixed`).
fn line_pattern(draft: &Draft, status: &mut [Status], fixed: &[bool]) {
    loop {
        let mut changed = false;
        for line in &draft.lines {
            if line.iter().filter(|&&i| status[i] != Status::Safe).count() != 1 {
                continue;
            }
            let pick = line
                .iter()
                .copied()
                .filter(|&i| hideable(draft, status, i) && !fixed[i])
                .min_by_key(|&i| (draft.counts[i].margin as u8, draft.counts[i].value()));
            if let Some(i) = pick {
                status[i] = Status::Secondary;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Local programmes' neighbourhoods, smallest first. The first two are cheap (a few to
/// 200 milliseconds) and are what repairs try for each candidate; the third (about a
/// second at 6,400 atoms) settles counts the small ones cannot, before a full programme
/// (seconds at a report's size) is considered. A fourth of 25,600 atoms was measured at
/// 3.4 s on the demo's annual report, more than the full programme there: dropped.
const TIERS: [Neighbourhood; 3] = [
    Neighbourhood {
        wide: 24,
        budget: 400,
        depth: 2,
    },
    Neighbourhood {
        wide: 96,
        budget: 1_600,
        depth: 2,
    },
    Neighbourhood {
        wide: 384,
        budget: 6_400,
        depth: 3,
    },
];
/// Up to this many atoms a repair asks the full programme which counts hold the bound.
const DUAL_GUIDED_ATOMS: usize = 8_000;
/// The cheap tiers.
const CHEAP: usize = 2;
/// Above this many atoms a full programme costs tens of seconds a solve: counts are then
/// certified and repaired with local programmes only (which can only hide more), and the
/// full programme is the last word only where nothing is left to hide.
const FULL_PROGRAMME_ATOMS: usize = 40_000;

/// Protects `draft` against itself and every prior publication.
pub fn protect(draft: &Draft, prior: &[Prior], rule: Rule) -> Result<Protection> {
    let t0 = Instant::now();
    if rule.min == 0 {
        return Err(Error::Param {
            name: "min_count",
            reason: "must be at least 1".into(),
        });
    }
    let mut status: Vec<Status> = draft
        .counts
        .iter()
        .map(|c| {
            if c.public {
                Status::Safe
            } else if rule.is_primary(c.value()) {
                Status::Primary
            } else {
                Status::Safe
            }
        })
        .collect();
    // Consistency: what an earlier publication hid stays hidden.
    let mut hidden_before: HashMap<u64, Vec<&Units>> = HashMap::new();
    let mut shown_before: HashMap<u64, Vec<&Units>> = HashMap::new();
    for p in prior {
        for c in &p.cells {
            let m = if c.published {
                &mut shown_before
            } else {
                &mut hidden_before
            };
            m.entry(set_hash(&c.units)).or_default().push(&c.units);
        }
    }
    let seen = |m: &HashMap<u64, Vec<&Units>>, u: &Units| {
        m.get(&set_hash(u)).is_some_and(|v| v.contains(&u))
    };
    for (i, c) in draft.counts.iter().enumerate() {
        if status[i] == Status::Safe
            && c.printed
            && !c.public
            && c.value() > 0
            && seen(&hidden_before, &c.units)
        {
            status[i] = Status::Secondary;
        }
    }
    // What an earlier publication showed is fixed whatever this one hides: hiding it again
    // to complete a line protects nothing (and a rerun of the same publication would hide
    // more than the first run).
    let fixed: Vec<bool> = draft
        .counts
        .iter()
        .map(|c| seen(&shown_before, &c.units))
        .collect();
    line_pattern(draft, &mut status, &fixed);
    let first_pattern: Vec<Status> = status.clone();

    let mut sys = System::build(draft, &status, prior)?;
    let mut ranges = Vec::new();
    let mut already_published = 0;
    // Every primary to check: this publication's, then the earlier ones'.
    struct Target {
        row: usize,
        publication: String,
        key: String,
        value: u64,
        required: (u64, u64),
        current: bool,
    }
    let mut targets: Vec<Target> = Vec::new();
    for (i, c) in draft.counts.iter().enumerate() {
        if status[i] != Status::Primary {
            continue;
        }
        if seen(&shown_before, &c.units) {
            already_published += 1;
            continue;
        }
        targets.push(Target {
            row: sys.row_of_count(i),
            publication: draft.id.clone(),
            key: c.key.clone(),
            value: c.value(),
            required: rule.interval(c.value()),
            current: true,
        });
    }
    let mut prior_checked = 0;
    for p in prior {
        for c in &p.cells {
            if c.primary
                && !c.published
                && !seen(&shown_before, &c.units)
                && let Some(row) = sys.row_of_units(&c.units)
            {
                {
                    prior_checked += 1;
                    targets.push(Target {
                        row,
                        publication: p.id.clone(),
                        key: c.key.clone(),
                        value: c.units.len() as u64,
                        required: p.rule.interval(c.units.len() as u64),
                        current: false,
                    });
                }
            }
        }
    }
    let checked = targets.iter().filter(|t| t.current).count();
    let trace = std::env::var_os("OCCUPA_PROTECT_TRACE").is_some();
    if trace {
        eprintln!(
            "protect {}: {} counts, {} primary targets ({} prior), {} rows, {} atoms, first pattern hides {}, {:.2}s",
            draft.id,
            draft.counts.len(),
            targets.len(),
            prior_checked,
            sys.rows(),
            sys.atoms(),
            status.iter().filter(|s| **s != Status::Safe).count(),
            t0.elapsed().as_secs_f64()
        );
    }
    let mut added = 0;
    let mut all_protected = true;
    // Certify first what small programmes can (`certify_local`), then what joint
    // programmes can: a feasible point of the full system where a hidden count reaches
    // the top (bottom) of its range proves the attacker cannot rule that value out, and
    // the point that maximises (minimises) the sum of every uncertified count settles
    // most of them in one solve. The rest one by one below.
    let mut up_seen: Vec<Option<f64>> = vec![None; targets.len()];
    let mut down_seen: Vec<Option<f64>> = vec![None; targets.len()];
    for (k, t) in targets.iter().enumerate() {
        if !sys.free_above(t.row)
            && let Some(v) = sys.local_bound(t.row, true, TIERS[0])?
            && v >= t.required.1 as f64 - 1e-6
        {
            up_seen[k] = Some(v);
        }
        if t.required.0 < t.value
            && let Some(v) = sys.local_bound(t.row, false, TIERS[0])?
            && v <= t.required.0 as f64 + 1e-6
        {
            down_seen[k] = Some(v);
        }
    }
    for up in [true, false] {
        if sys.atoms() > FULL_PROGRAMME_ATOMS {
            break;
        }
        for _round in 0..4 {
            let open: Vec<usize> = (0..targets.len())
                .filter(|&k| {
                    let t = &targets[k];
                    if up {
                        up_seen[k].is_none() && !sys.free_above(t.row)
                    } else {
                        down_seen[k].is_none() && t.required.0 < t.value
                    }
                })
                .collect();
            if open.is_empty() {
                break;
            }
            let rows: Vec<usize> = open.iter().map(|&k| targets[k].row).collect();
            let Some(values) = sys.joint(&rows, up)? else {
                break;
            };
            let mut settled = 0;
            for (&k, v) in open.iter().zip(values) {
                let t = &targets[k];
                if up && v >= t.required.1 as f64 - 1e-6 {
                    up_seen[k] = Some(v);
                    settled += 1;
                } else if !up && v <= t.required.0 as f64 + 1e-6 {
                    down_seen[k] = Some(v);
                    settled += 1;
                }
            }
            if settled == 0 {
                break;
            }
        }
    }
    if trace {
        eprintln!(
            "  local and joint: up settled {}, down settled {}, {} programmes, {:.2}s",
            up_seen.iter().filter(|v| v.is_some()).count(),
            down_seen.iter().filter(|v| v.is_some()).count(),
            sys.solves(),
            t0.elapsed().as_secs_f64()
        );
    }
    for (k, t) in targets.iter().enumerate() {
        // Upward: the attacker must not rule out a value at the top of the range (a
        // bound found is what the attacker can at least reach: see `certify`).
        let goal = t.required.1 as f64;
        let mut upper = match up_seen[k] {
            Some(v) => Some(v),
            None => certify(&mut sys, t.row, true, goal)?,
        };
        while !meets(upper, true, goal) {
            match repair(&mut sys, draft, &mut status, t.row, true, goal)? {
                Some(u) => {
                    added += 1;
                    upper = u;
                }
                None => {
                    if trace {
                        eprintln!(
                            "    {} ({}): upper bound {upper:?}, needs {goal}",
                            t.key, t.value
                        );
                    }
                    all_protected = false;
                    break;
                }
            }
        }
        // Downward, where the range asks for it (a count of 1 needs nothing).
        let goal = t.required.0 as f64;
        let mut lower = if let Some(v) = down_seen[k] {
            Some(v)
        } else if t.required.0 < t.value {
            certify(&mut sys, t.row, false, goal)?
        } else {
            Some(t.value as f64)
        };
        while !meets(lower, false, goal) {
            match repair(&mut sys, draft, &mut status, t.row, false, goal)? {
                Some(l) => {
                    added += 1;
                    lower = l;
                }
                None => {
                    if trace {
                        eprintln!(
                            "    {} ({}): lower bound {lower:?}, needs {goal}",
                            t.key, t.value
                        );
                    }
                    all_protected = false;
                    break;
                }
            }
        }
        if trace && (up_seen[k].is_none() || (down_seen[k].is_none() && t.required.0 < t.value)) {
            eprintln!(
                "    {} ({}): {} programmes so far, {:.2}s",
                t.key,
                t.value,
                sys.solves(),
                t0.elapsed().as_secs_f64()
            );
        }
        ranges.push(CellRange {
            publication: t.publication.clone(),
            key: t.key.clone(),
            value: t.value,
            lower: lower.unwrap_or(0.0),
            upper,
            required: t.required,
        });
    }
    if trace {
        eprintln!(
            "  {} targets: {added} counts added, {} programmes, {:.2}s",
            targets.len(),
            sys.solves(),
            t0.elapsed().as_secs_f64()
        );
    }
    // No second pass: hiding a count frees its row, which only enlarges the attacker's
    // feasible set, so every interval found above can only widen afterwards; a range met
    // when its target was checked holds in the final pattern (which the ranges reported,
    // taken at that time, understate, never overstate).
    // Of the printed counts: a derived one is never shown, small or not.
    let printed = || {
        status
            .iter()
            .zip(&draft.counts)
            .filter(|(_, c)| c.printed)
            .map(|(s, _)| *s)
    };
    let hidden = printed().filter(|s| *s != Status::Safe).count();
    let primary = printed().filter(|s| *s == Status::Primary).count();
    debug_assert!(
        added
            >= status
                .iter()
                .zip(&first_pattern)
                .filter(|(a, b)| a != b)
                .count()
    );
    Ok(Protection {
        status,
        audit: AuditReport {
            hidden,
            primary,
            checked,
            prior_checked,
            prior_publications: prior.len(),
            added_by_audit: added,
            atoms: sys.atoms(),
            rows: sys.rows(),
            solves: sys.solves(),
            all_protected,
            already_published,
            seconds: t0.elapsed().as_secs_f64(),
            ranges,
        },
    })
}

/// Whether a bound reaches its goal: `None` is unbounded (above: met; below: never, a
/// count has no negative values and `None` is not returned downward).
fn meets(b: Option<f64>, up: bool, goal: f64) -> bool {
    const EPS: f64 = 1e-6;
    match (b, up) {
        (None, true) => true,
        (None, false) => false,
        (Some(v), true) => v >= goal - EPS,
        (Some(v), false) => v <= goal + EPS,
    }
}

/// What the attacker can at least reach for `row` (upward when `up`): the local
/// programme's bound (`System::local_bound`), from a small neighbourhood and, when that
/// does not reach `goal`, a larger one.
///
/// Why local programmes and not the full one: the full programme over every atom of a
/// publication and the store's earlier ones grows with the data (16,000 atoms for the
/// demo's annual report, 1–3 s per solve), and protecting a report takes thousands of
/// solves. A local programme holds every atom outside the neighbourhood at its true
/// value, which only shrinks the attacker's feasible set: a range it certifies, the
/// attacker truly has. It may fail to certify a count the full programme would; the count
/// is then protected by hiding more (never less), so the error is on the side of privacy.
fn certify_local(
    sys: &mut System,
    row: usize,
    up: bool,
    goal: f64,
    tiers: &[Neighbourhood],
) -> Result<Option<f64>> {
    let mut best = None;
    for &n in tiers {
        // A neighbourhood near the system's size might as well be the full programme, which
        // is exact and warm-started (a few milliseconds where a local one is built anew).
        if sys.atoms() <= 2 * n.budget {
            return sys.bound(row, up);
        }
        let b = sys.local_bound(row, up, n)?;
        if meets(b, up, goal) {
            return Ok(b);
        }
        // Each bound is a feasible point the attacker cannot rule out: the widest of them
        // is what is certified (a larger neighbourhood need not contain a smaller one).
        best = Some(better(best, b, up));
    }
    Ok(best.flatten())
}

/// The wider of two certified bounds (`None` above is unbounded; below it is no bound).
fn better(a: Option<Option<f64>>, b: Option<f64>, up: bool) -> Option<f64> {
    match (a, up) {
        (None, _) => b,
        (Some(None), true) => None,
        (Some(None), false) => b,
        (Some(Some(x)), true) => b.map(|y| x.max(y)),
        (Some(Some(x)), false) => Some(b.map_or(x, |y| x.min(y))),
    }
}

/// Every local tier, and when they fall short the full programme, which is exact: a
/// count is hidden for want of protection only when the whole system says so (above
/// [`FULL_PROGRAMME_ATOMS`], when the local programmes say so).
fn certify(sys: &mut System, row: usize, up: bool, goal: f64) -> Result<Option<f64>> {
    let b = certify_local(sys, row, up, goal, &TIERS)?;
    if meets(b, up, goal) || sys.atoms() > FULL_PROGRAMME_ATOMS {
        return Ok(b);
    }
    sys.bound(row, up)
}

/// Whether hiding count `i` could widen an interval: a shown, printed, non-zero count that
/// is not public (a derived count is never fixed, so hiding it changes nothing; a public
/// one is known whatever is hidden).
fn hideable(draft: &Draft, status: &[Status], i: usize) -> bool {
    let c = &draft.counts[i];
    status[i] == Status::Safe && c.printed && !c.public && c.value() > 0
}

/// Hides one more count of this publication so that the interval of `row` reaches
/// `goal` (upward when `up`): among the shown counts sharing units with it, smallest
/// first (parts before totals), the first whose hiding lets `certify` reach it, else the
/// one that moved the bound most, else the first. Returns the new bound, or `None` when no
/// count of this publication is left to hide.
fn repair(
    sys: &mut System,
    draft: &Draft,
    status: &mut [Status],
    row: usize,
    up: bool,
    goal: f64,
) -> Result<Option<Option<f64>>> {
    let mut candidates: Vec<usize> = sys
        .neighbours(row)
        .into_iter()
        .filter(|&i| hideable(draft, status, i))
        .collect();
    candidates.sort_by_key(|&i| (draft.counts[i].margin as u8, draft.counts[i].value(), i));
    // The sixteen smallest neighbours; in a small system, where the full programme costs
    // milliseconds, also the shown counts its duals name as holding the bound, and the
    // first of those is the fallback when no hiding moves a local bound (without it the
    // smallest neighbours were hidden one by one, a dozen for one count of a
    // three-authority report).
    candidates.truncate(16);
    let mut held_first = None;
    if sys.atoms() <= DUAL_GUIDED_ATOMS {
        sys.bound(row, up)?;
        let mut held: Vec<usize> = sys
            .binding()
            .into_iter()
            .filter(|&i| hideable(draft, status, i))
            .collect();
        held.sort_by_key(|&i| (draft.counts[i].margin as u8, draft.counts[i].value(), i));
        held_first = held.first().copied();
        let extra: Vec<usize> = held
            .into_iter()
            .filter(|c| !candidates.contains(c))
            .take(16)
            .collect();
        candidates.extend(extra);
    }
    // Each neighbour in turn: the first whose hiding lets a local programme reach the
    // goal is hidden; else the one that moved the local bound most. Local programmes
    // only (the full one costs seconds a solve at a report's size): a local bound
    // understates the attacker's range, so this may hide a count the full programme
    // would not have needed, never the reverse.
    let before = certify_local(sys, row, up, goal, &TIERS[..CHEAP])?;
    let gain = |b: Option<f64>| -> f64 {
        match (b, before, up) {
            (None, _, true) => f64::INFINITY,
            (Some(v), Some(w), true) => v - w,
            (Some(v), Some(w), false) => w - v,
            (None, _, false) => -1.0,
            (Some(_), None, _) => 0.0,
        }
    };
    let mut best: Option<(usize, Option<f64>, f64)> = None;
    for &c in &candidates {
        sys.set_shown(c, false)?;
        let b = certify_local(sys, row, up, goal, &TIERS[..CHEAP])?;
        if meets(b, up, goal) {
            status[c] = Status::Secondary;
            return Ok(Some(b));
        }
        let g = gain(b);
        if g > 1e-9 && best.is_none_or(|(_, _, bg)| g > bg) {
            best = Some((c, b, g));
        }
        sys.set_shown(c, true)?;
    }
    match best.map(|(c, b, _)| (c, b)).or_else(|| {
        held_first
            .or(candidates.first().copied())
            .map(|c| (c, None))
    }) {
        Some((c, b)) => {
            sys.set_shown(c, false)?;
            status[c] = Status::Secondary;
            // The hidden count may have opened a path only a larger neighbourhood sees.
            let b = if b.is_some() { b } else { before };
            Ok(Some(if meets(b, up, goal) {
                b
            } else {
                better(
                    Some(b),
                    certify_local(sys, row, up, goal, &TIERS[CHEAP..])?,
                    up,
                )
            }))
        }
        // Nothing of this publication left to hide around it: the full programme's exact
        // answer is the last word (the earlier publications may protect it already).
        None => {
            let local = certify_local(sys, row, up, goal, &TIERS[CHEAP..])?;
            if meets(local, up, goal) {
                return Ok(Some(local));
            }
            let exact = sys.bound(row, up)?;
            Ok(meets(exact, up, goal).then_some(exact))
        }
    }
}

#[cfg(test)]
mod tests;
