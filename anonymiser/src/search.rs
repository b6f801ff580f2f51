//! The optimal full-domain generalisation: the lattice node, with records suppressed up to
//! a limit, that satisfies the privacy model at the least loss of the chosen metric.
//!
//! Two facts make the search exact without visiting every node, as in ARX's Flash and
//! El Emam's OLA:
//!
//! * **Predictive tagging.** For models that are monotonic with suppression (k-anonymity,
//!   distinct l-diversity, any model when nothing may be suppressed), a node that
//!   satisfies the model makes all its generalisations satisfy it, and a node that fails
//!   makes all its specialisations fail. With a level bound (entropy, loss, precision)
//!   only the maximal undecided nodes whose bound is under the best loss found need a
//!   check (they form an antichain: independent checks, run on all cores); otherwise
//!   binary search along chains from the bottom to the top classifies the lattice.
//! * **Lower bounds.** Every metric has a bound that holds at a node and at all its
//!   generalisations: from the levels alone for entropy, loss and precision, from the
//!   classes of an evaluated node for discernibility and average class size. Candidates
//!   are visited in the order of their bound and the search stops (or skips) once the
//!   bound exceeds the best loss found: nothing it skips could have been better.
//!
//! A node's classes are computed by rolling up the classes of the most general node
//! already computed below it, not from the records: generalisation only merges classes.

use std::cmp::Ordering;
use std::time::Instant;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::lattice::Lattice;
use crate::metric::{ClassView, GsFactor, Metric, MetricTables};
use crate::microdata::Microdata;
use crate::privacy::PrivacyModel;
use crate::{Error, Result};

/// What to search for: the spec of an anonymisation.
///
/// ```
/// use occupa_anonymiser::hierarchy::Hierarchy;
/// use occupa_anonymiser::microdata::Microdata;
/// use occupa_anonymiser::privacy::PrivacyModel;
/// use occupa_anonymiser::search::Anonymisation;
/// use occupa_anonymiser::metric::Metric;
///
/// let age = Hierarchy::from_rows(
///     "age",
///     (20..30).map(|a| vec![a.to_string(), format!("{}-{}", a / 5 * 5, a / 5 * 5 + 4), "*".into()]).collect(),
/// )?;
/// let rows: Vec<Vec<String>> = [21, 22, 23, 26, 27, 27, 29].iter().map(|a| vec![a.to_string()]).collect();
/// let data = Microdata::new(vec![age], None, &rows, 1)?;
/// let release = Anonymisation::new(PrivacyModel::k_anonymity(3)?)
///     .metric(Metric::Loss)
///     .fit(&data)?;
/// assert_eq!(release.node(), &[1]); // 5-year bands: {21,22,23} and {26,27,27,29}
/// assert_eq!(release.row(&data, 0), Some(vec!["20-24"]));
/// # Ok::<(), occupa_anonymiser::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Anonymisation {
    privacy: PrivacyModel,
    max_suppression: f64,
    metric: Metric,
    gs: GsFactor,
}

impl Anonymisation {
    /// No suppression, ARX's loss metric, generalisation and suppression weighing the same.
    pub fn new(privacy: PrivacyModel) -> Self {
        Anonymisation {
            privacy,
            max_suppression: 0.0,
            metric: Metric::Loss,
            gs: GsFactor::default(),
        }
    }

    /// The largest fraction of records that may be suppressed, in [0, 1].
    pub fn max_suppression(mut self, fraction: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::Param {
                name: "max_suppression",
                reason: format!("{fraction} is outside [0, 1]"),
            });
        }
        self.max_suppression = fraction;
        Ok(self)
    }

    /// The utility metric to optimise.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// ARX's generalisation/suppression factor.
    pub fn gs_factor(mut self, gs: GsFactor) -> Self {
        self.gs = gs;
        self
    }

    /// The privacy model.
    pub fn privacy(&self) -> &PrivacyModel {
        &self.privacy
    }

    /// The suppression limit as a fraction.
    pub fn suppression_limit(&self) -> f64 {
        self.max_suppression
    }

    /// The metric.
    pub fn chosen_metric(&self) -> Metric {
        self.metric
    }

    /// The generalisation/suppression factor.
    pub fn gs(&self) -> GsFactor {
        self.gs
    }

    /// Finds the optimal node.
    pub fn fit(&self, data: &Microdata) -> Result<Anonymised> {
        Engine::new(self, data)?.run(false)
    }

    /// Every metric's loss at `node` (levels per quasi-identifier), with the records
    /// this spec would suppress there: the utility figures of a report.
    pub fn utility(&self, data: &Microdata, node: &[u8]) -> Result<Vec<(Metric, f64)>> {
        let mut engine = Engine::new(self, data)?;
        let index = engine.lattice.index(node).ok_or_else(|| Error::Param {
            name: "node",
            reason: format!("{node:?} is not a node of the lattice"),
        })?;
        let fs = engine.freq_set(index, false)?.ok_or_else(|| Error::Param {
            name: "node",
            reason: "internal: a full roll-up stopped early".into(),
        })?;
        let a = engine.assess(&fs);
        Ok(Metric::ALL
            .iter()
            .map(|&m| {
                let tables = MetricTables::new(m, self.gs, data);
                (m, tables.evaluate(data, node, a.classes.iter().copied()))
            })
            .collect())
    }

    /// Evaluates every node of the lattice: the reference the search is tested against.
    /// Exponential in the number of quasi-identifiers; for small inputs only.
    pub fn fit_exhaustive(&self, data: &Microdata) -> Result<Anonymised> {
        Engine::new(self, data)?.run(true)
    }
}

/// Work done by a search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchStats {
    /// Nodes in the lattice.
    pub nodes: usize,
    /// Nodes whose classes were computed.
    pub checked: usize,
    /// Nodes classified by predictive tagging without computing their classes.
    pub tagged: usize,
    /// Groups read while rolling classes up (the search's work).
    pub groups_read: u64,
    /// Seconds spent searching.
    pub seconds: f64,
}

/// The optimal generalisation of a table: the fitted model.
#[derive(Debug, Clone)]
pub struct Anonymised {
    node: Vec<u8>,
    loss: f64,
    suppressed_records: u64,
    released_classes: usize,
    /// Per distinct record of the input: whether it is suppressed.
    suppressed: Vec<bool>,
    /// Per distinct record: the column whose value local suppression replaced by `*`.
    value_suppressed: Vec<Option<u8>>,
    stats: SearchStats,
}

impl Anonymised {
    /// The chosen level of each quasi-identifier.
    pub fn node(&self) -> &[u8] {
        &self.node
    }

    /// The loss of the chosen metric at the node.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Records suppressed whole.
    pub fn suppressed_records(&self) -> u64 {
        self.suppressed_records
    }

    /// Equivalence classes released.
    pub fn released_classes(&self) -> usize {
        self.released_classes
    }

    /// Work done.
    pub fn stats(&self) -> &SearchStats {
        &self.stats
    }

    /// Whether input row `row` is suppressed.
    pub fn is_suppressed(&self, data: &Microdata, row: usize) -> bool {
        self.suppressed[data.row_tuple[row] as usize]
    }

    /// The released quasi-identifiers of input row `row`, or `None` if it is suppressed.
    pub fn row<'d>(&self, data: &'d Microdata, row: usize) -> Option<Vec<&'d str>> {
        if self.is_suppressed(data, row) {
            return None;
        }
        let hidden = self.value_suppressed[data.row_tuple[row] as usize];
        Some(
            (0..data.dims())
                .map(|c| {
                    if hidden == Some(c as u8) {
                        SUPPRESSED
                    } else {
                        data.generalised(row, c, self.node[c])
                    }
                })
                .collect(),
        )
    }

    /// Values suppressed by local suppression (one per record it released).
    pub fn suppressed_values(&self, data: &Microdata) -> u64 {
        self.value_suppressed
            .iter()
            .zip(&data.counts)
            .filter(|(v, _)| v.is_some())
            .map(|(_, &n)| n as u64)
            .sum()
    }

    /// Local suppression, after the search: records that the node would suppress whole
    /// are released instead with one quasi-identifier replaced by `*`, wherever those
    /// records then form classes that satisfy the privacy model on their own. The
    /// column that releases the most records goes first, then the next among the rest.
    /// Returns the number of records released this way.
    pub fn suppress_values(&mut self, data: &Microdata, spec: &Anonymisation) -> u64 {
        let d = data.dims();
        let global = global_shares(data);
        let mut pending: Vec<u32> = (0..data.distinct() as u32)
            .filter(|&t| self.suppressed[t as usize])
            .collect();
        let mut released = 0u64;
        let mut columns: Vec<usize> = (0..d)
            .filter(|&c| (self.node[c] as usize) + 1 < data.hierarchies[c].height())
            .collect();
        while !columns.is_empty() && !pending.is_empty() {
            // For each remaining column, the classes the pending records would form
            // with that column hidden.
            let mut best: Option<(u64, usize, Vec<u32>)> = None;
            for (ci, &c) in columns.iter().enumerate() {
                let mut groups: FxHashMap<Vec<u32>, Vec<u32>> = FxHashMap::default();
                for &t in &pending {
                    let key: Vec<u32> = (0..d)
                        .map(|j| {
                            if j == c {
                                u32::MAX
                            } else {
                                data.code(t, j, self.node[j])
                            }
                        })
                        .collect();
                    groups.entry(key).or_default().push(t);
                }
                let mut ok: Vec<u32> = Vec::new();
                let mut records = 0u64;
                let mut keys: Vec<&Vec<u32>> = groups.keys().collect();
                keys.sort();
                for key in keys {
                    let members = &groups[key];
                    let (size, hist, present) = class_histogram(data, members);
                    if spec.privacy.class_passes(size, &hist, &present, &global) {
                        ok.extend_from_slice(members);
                        records += size;
                    }
                }
                if records > 0 && best.as_ref().is_none_or(|(r, _, _)| records > *r) {
                    best = Some((records, ci, ok));
                }
            }
            let Some((records, ci, ok)) = best else { break };
            let c = columns.remove(ci);
            for &t in &ok {
                self.suppressed[t as usize] = false;
                self.value_suppressed[t as usize] = Some(c as u8);
            }
            released += records;
            pending.retain(|t| self.suppressed[*t as usize]);
        }
        self.suppressed_records -= released;
        released
    }
}

/// The label of a value hidden by suppression.
pub const SUPPRESSED: &str = "*";

/// The share of each sensitive value in the whole table.
pub(crate) fn global_shares(data: &Microdata) -> Vec<f64> {
    let mut global = vec![0.0; data.sens_values.len()];
    for (t, &s) in data.sens.iter().enumerate() {
        global[s as usize] += data.counts[t] as f64;
    }
    for g in &mut global {
        *g /= data.len().max(1) as f64;
    }
    global
}

/// Size, sensitive-value counts and which values they are, of a set of distinct records.
pub(crate) fn class_histogram(data: &Microdata, members: &[u32]) -> (u64, Vec<u64>, Vec<u32>) {
    let mut size = 0u64;
    let mut by_value: FxHashMap<u32, u64> = FxHashMap::default();
    for &t in members {
        let n = data.counts[t as usize] as u64;
        size += n;
        if !data.sens.is_empty() {
            *by_value.entry(data.sens[t as usize]).or_default() += n;
        }
    }
    let mut pairs: Vec<(u32, u64)> = by_value.into_iter().collect();
    pairs.sort_unstable();
    let present = pairs.iter().map(|p| p.0).collect();
    let hist = pairs.iter().map(|p| p.1).collect();
    (size, hist, present)
}

/// The classes of one node: groups of distinct records with the same generalised
/// quasi-identifiers (and sensitive value, when the model looks at one).
struct FreqSet {
    node: usize,
    levels: Vec<u8>,
    /// When it was last used as a source (for eviction).
    used: u64,
    /// Group keys: the sensitive code in the lowest digit, then the quasi-identifiers.
    keys: Vec<u128>,
    rep: Vec<u32>,
    count: Vec<u64>,
}

/// What a node's classes say.
struct Assessment {
    suppressed: u64,
    anonymous: bool,
    classes: Vec<ClassView>,
    sum_sq: f64,
}

/// The search's knowledge of the lattice.
struct State {
    /// Lower bound of the loss at each node.
    lb: Vec<f64>,
    status: Vec<u8>,
    evaluated: Vec<bool>,
    rank: Vec<usize>,
    best: Option<(f64, usize)>,
    tagged: usize,
}

impl State {
    /// Offers a node that passes, with its loss; ties go to the lower, then the first.
    fn offer(&mut self, loss: f64, node: usize) {
        let better = match self.best {
            None => true,
            Some((bl, bn)) => {
                loss.total_cmp(&bl)
                    .then(self.rank[node].cmp(&self.rank[bn]))
                    .then(node.cmp(&bn))
                    == Ordering::Less
            }
        };
        if better {
            self.best = Some((loss, node));
        }
    }

    /// Whether no node at or above `node` can beat (or tie) the best found. A bound and
    /// a loss computed in different orders can differ in the last bits, so a node is only
    /// pruned when its bound is clearly above: a tie must be evaluated to be broken the
    /// same way as everywhere else.
    fn pruned(&self, node: usize) -> bool {
        self.best
            .is_some_and(|(bl, _)| self.lb[node] > bl + 1e-9 * bl.abs().max(1e-300))
    }
}

/// Integer group keys: u64 when the combinations fit, u128 otherwise.
trait KeyInt: Copy + Eq + std::hash::Hash {
    const ZERO: Self;
    fn from_u128(v: u128) -> Self;
    fn to_u128(self) -> u128;
    fn add(self, other: Self) -> Self;
}

impl KeyInt for u64 {
    const ZERO: Self = 0;
    fn from_u128(v: u128) -> Self {
        v as u64
    }
    fn to_u128(self) -> u128 {
        self as u128
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
}

impl KeyInt for u128 {
    const ZERO: Self = 0;
    fn from_u128(v: u128) -> Self {
        v
    }
    fn to_u128(self) -> u128 {
        self
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
}

/// Largest array of combinations used by [`Engine::group_by_runs`] (1 MB of slots).
const RUN_SLOTS: u64 = 1 << 16;

/// Most freq sets kept at once (the source scan is linear).
const MAX_CACHED: usize = 2048;

const UNKNOWN: u8 = 0;
const PASS: u8 = 1;
const FAIL: u8 = 2;

/// A reusable array of group slots, empty between uses: a roll-up clears the slots it
/// touched instead of allocating and filling a fresh array (up to megabytes, and a
/// check is often over in a few thousand groups).
#[derive(Default)]
struct Slots {
    slot: Vec<u32>,
    touched: Vec<u32>,
}

impl Slots {
    /// Empties the slots and makes at least `len` of them.
    fn prepare(&mut self, len: usize) {
        self.clear();
        if self.slot.len() < len {
            self.slot.resize(len, u32::MAX);
        }
    }

    fn clear(&mut self) {
        for &t in &self.touched {
            self.slot[t as usize] = u32::MAX;
        }
        self.touched.clear();
    }

    /// The group in slot `key`, or `None` after giving the slot to group `next`.
    #[inline]
    fn find_or_insert(&mut self, key: u32, next: u32) -> Option<u32> {
        let s = &mut self.slot[key as usize];
        if *s == u32::MAX {
            *s = next;
            self.touched.push(key);
            None
        } else {
            Some(*s)
        }
    }
}

struct Engine<'a> {
    data: &'a Microdata,
    lattice: Lattice,
    privacy: &'a PrivacyModel,
    max_suppressed: u64,
    tables: MetricTables,
    global: Vec<f64>,
    sens_card: u128,
    /// Freq sets of checked nodes, by node; the bottom's is the distinct records.
    cache: FxHashMap<usize, FreqSet>,
    cached_groups: usize,
    cache_budget: usize,
    clock: u64,
    /// The node checked last.
    last: Option<usize>,
    /// Whether a check may stop once the node fails (the metric needs no classes of
    /// failing nodes for its bounds).
    early_exit: bool,
    checked: usize,
    groups_read: u64,
    /// Slot arrays for the workers, kept between checks.
    scratch: Vec<Slots>,
}

impl<'a> Engine<'a> {
    fn new(spec: &'a Anonymisation, data: &'a Microdata) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::Param {
                name: "rows",
                reason: "the table has no records".into(),
            });
        }
        if spec.privacy.needs_sensitive() && data.sensitive().is_none() {
            return Err(Error::Param {
                name: "sensitive",
                reason: "l-diversity and t-closeness need a sensitive attribute".into(),
            });
        }
        let heights: Vec<usize> = data.hierarchies.iter().map(|h| h.height()).collect();
        let lattice = Lattice::new(&heights)?;
        // ARX: at most floor(limit · N) records may be suppressed.
        let max_suppressed = (spec.max_suppression * data.len() as f64 + 1e-9).floor() as u64;
        let global = global_shares(data);
        let sens_card = if data.sensitive().is_some() && spec.privacy.needs_sensitive() {
            data.sens_values.len().max(1) as u128
        } else {
            1
        };
        let base = FreqSet {
            node: 0,
            levels: vec![0; data.dims()],
            used: 0,
            keys: Vec::new(),
            rep: (0..data.distinct() as u32).collect(),
            count: data.counts.iter().map(|&c| c as u64).collect(),
        };
        // Cached classes: up to 64 times the distinct records, within ~256 MB.
        let cache_budget = (64 * data.distinct() + 100_000).min(8 << 20);
        let mut cache = FxHashMap::default();
        cache.insert(0, base);
        Ok(Engine {
            data,
            lattice,
            privacy: &spec.privacy,
            max_suppressed,
            tables: MetricTables::new(spec.metric, spec.gs, data),
            global,
            sens_card,
            cache,
            cached_groups: 0,
            cache_budget,
            clock: 0,
            last: None,
            early_exit: false,
            groups_read: 0,
            checked: 0,
            scratch: Vec::new(),
        })
    }

    /// Multipliers of each column's code in a group key at `levels`.
    fn radices(&self, levels: &[u8]) -> Result<Vec<u128>> {
        let mut mult = Vec::with_capacity(levels.len());
        let mut m = self.sens_card;
        for (c, &l) in levels.iter().enumerate() {
            mult.push(m);
            m = m
                .checked_mul(self.data.card[c][l as usize] as u128)
                .ok_or_else(|| Error::Param {
                    name: "quasi_identifiers",
                    reason: "too many combinations of values to key (over 2^128); use \
                             fewer quasi-identifiers"
                        .into(),
                })?;
        }
        Ok(mult)
    }

    fn key(&self, t: u32, levels: &[u8], mult: &[u128]) -> u128 {
        let mut k = if self.sens_card > 1 {
            self.data.sens[t as usize] as u128
        } else {
            0
        };
        for (c, (&l, &m)) in levels.iter().zip(mult).enumerate() {
            k += self.data.code(t, c, l) as u128 * m;
        }
        k
    }

    /// The classes of `node`, rolled up from the cache (see [`Worker::freq_set`]); `None`
    /// if `early_exit` allowed stopping as soon as the node was known to fail.
    fn freq_set(&mut self, node: usize, early_exit: bool) -> Result<Option<FreqSet>> {
        let slots = self.scratch.pop().unwrap_or_default();
        let mut w = Worker::new(self, self.last, slots);
        let fs = w.freq_set(node, early_exit);
        let done = w.finish();
        self.absorb(done);
        fs
    }

    /// Takes in what a worker learnt: its statistics, the sources it used (for
    /// eviction) and the meets it built.
    fn absorb(&mut self, done: WorkerDone) {
        self.scratch.push(done.slots);
        self.last = done.last;
        self.checked += done.checked;
        self.groups_read += done.groups_read;
        for m in done.used {
            self.clock += 1;
            if let Some(f) = self.cache.get_mut(&m) {
                f.used = self.clock;
            }
        }
        for fs in done.meets {
            if !self.cache.contains_key(&fs.node) {
                self.remember(fs);
            }
        }
    }

    /// The classes of `node` rolled up from the classes `src` of a node below it.
    fn roll_up(
        &self,
        node: usize,
        src: &FreqSet,
        early_exit: bool,
        slots: &mut Slots,
    ) -> Result<Option<FreqSet>> {
        let levels = self.lattice.levels(node);
        let mult = self.radices(&levels)?;
        let product = mult.last().copied().unwrap_or(1)
            * self.data.card[levels.len() - 1][levels[levels.len() - 1] as usize] as u128;
        let mut out = FreqSet {
            node,
            levels: levels.clone(),
            used: 0,
            keys: Vec::new(),
            rep: Vec::new(),
            count: Vec::new(),
        };
        let complete = if product <= u64::MAX as u128 {
            let contrib = self.contributions::<u64>(&levels, &mult);
            self.group(src, &contrib, product, early_exit, &mut out, slots)
        } else {
            let contrib = self.contributions::<u128>(&levels, &mult);
            self.group(src, &contrib, product, early_exit, &mut out, slots)
        };
        Ok(complete.then_some(out))
    }

    /// `(c, contrib)` with `contrib[row]` what hierarchy row `row` of column `c` adds to
    /// a group key; columns with a single label at their level (fully generalised) add
    /// nothing and are left out, which spares a lookup per column per group.
    fn contributions<K: KeyInt>(&self, levels: &[u8], mult: &[u128]) -> Vec<(usize, Vec<K>)> {
        levels
            .iter()
            .enumerate()
            .filter(|&(c, &l)| self.data.card[c][l as usize] > 1)
            .map(|(c, &l)| {
                let contrib = self.data.up[c][l as usize]
                    .iter()
                    .map(|&code| K::from_u128(code as u128 * mult[c]))
                    .collect();
                (c, contrib)
            })
            .collect()
    }

    /// Groups the source's groups by their key at the new node. Keys below a small
    /// bound index a plain array (high nodes, few combinations); others are hashed.
    fn group<K: KeyInt>(
        &self,
        src: &FreqSet,
        contrib: &[(usize, Vec<K>)],
        product: u128,
        early_exit: bool,
        out: &mut FreqSet,
        slots: &mut Slots,
    ) -> bool {
        let d = self.data.dims();
        let tuples = &self.data.tuples;
        let with_sens = self.sens_card > 1;
        let key_of = |rep: u32| {
            let base = &tuples[rep as usize * d..rep as usize * d + d];
            let mut k = if with_sens {
                K::from_u128(self.data.sens[rep as usize] as u128)
            } else {
                K::ZERO
            };
            for (c, col) in contrib {
                k = k.add(col[base[*c] as usize]);
            }
            k
        };
        // The distinct records are sorted so that each label of the chunking column, at
        // any level, is one contiguous run, and roll-ups keep that order. A class never
        // spans two runs, so when the run changes the classes of the last one are
        // final: a node can be declared failed as soon as they suppress too much.
        let chunk_col = self.data.chunk_col;
        let chunk_level = out.levels[chunk_col];
        let runs = (chunk_level as usize) + 1 < self.data.hierarchies[chunk_col].height();
        let chunking = early_exit && !with_sens && runs;
        let k = self.privacy.k() as u64;
        let (mut chunk, mut chunk_start, mut suppressed) = (u32::MAX, 0, 0u64);
        let chunk_up = &self.data.up[chunk_col][chunk_level as usize];
        // Whether the classes finished so far suppress too much.
        let mut run_fails = |rep: u32, out: &FreqSet| {
            let c = chunk_up[tuples[rep as usize * d + chunk_col] as usize];
            if c != chunk {
                suppressed += out.count[chunk_start..]
                    .iter()
                    .filter(|&&n| n < k)
                    .sum::<u64>();
                chunk = c;
                chunk_start = out.rep.len();
                return suppressed > self.max_suppressed;
            }
            false
        };
        let dense_limit = (4 * src.rep.len()).max(1 << 16) as u128;
        if product <= dense_limit {
            slots.prepare(product as usize);
            for (&rep, &count) in src.rep.iter().zip(&src.count) {
                if chunking && run_fails(rep, out) {
                    return false;
                }
                let key = key_of(rep);
                match slots.find_or_insert(key.to_u128() as u32, out.rep.len() as u32) {
                    Some(g) => out.count[g as usize] += count,
                    None => {
                        if with_sens {
                            out.keys.push(key.to_u128());
                        }
                        out.rep.push(rep);
                        out.count.push(count);
                    }
                }
            }
            return true;
        }
        if runs
            && !with_sens
            && let Some(done) = self.group_by_runs(src, early_exit, out, slots)
        {
            return done;
        }
        let mut index: FxHashMap<K, u32> = FxHashMap::default();
        index.reserve(src.rep.len().min(1 << 20));
        for (&rep, &count) in src.rep.iter().zip(&src.count) {
            if chunking && run_fails(rep, out) {
                return false;
            }
            let key = key_of(rep);
            match index.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    out.count[*e.get() as usize] += count;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(out.rep.len() as u32);
                    if with_sens {
                        out.keys.push(key.to_u128());
                    }
                    out.rep.push(rep);
                    out.count.push(count);
                }
            }
        }
        true
    }

    /// Grouping run by run of the chunking column: within a run that column is fixed,
    /// so a class is told apart by the other columns alone, whose combinations, when
    /// few enough, index a plain array (reset run by run) instead of a hash map.
    /// `None` if they are too many; otherwise whether the roll-up completed.
    fn group_by_runs(
        &self,
        src: &FreqSet,
        early_exit: bool,
        out: &mut FreqSet,
        slots: &mut Slots,
    ) -> Option<bool> {
        let levels = &out.levels;
        let chunk_col = self.data.chunk_col;
        let chunk_level = levels[chunk_col];
        let mut contrib: Vec<(usize, Vec<u32>)> = Vec::new();
        let mut m: u64 = 1;
        for (c, &l) in levels.iter().enumerate() {
            let card = self.data.card[c][l as usize] as u64;
            if c == chunk_col || card == 1 {
                continue;
            }
            let col = self.data.up[c][l as usize]
                .iter()
                .map(|&code| (code as u64 * m) as u32)
                .collect();
            contrib.push((c, col));
            m = m.checked_mul(card).filter(|&m| m <= RUN_SLOTS)?;
        }
        let d = self.data.dims();
        let tuples = &self.data.tuples;
        let k = self.privacy.k() as u64;
        slots.prepare(m as usize);
        let (mut chunk, mut chunk_start, mut suppressed) = (u32::MAX, 0, 0u64);
        for (&rep, &count) in src.rep.iter().zip(&src.count) {
            let base = &tuples[rep as usize * d..rep as usize * d + d];
            let c = self.data.up[chunk_col][chunk_level as usize][base[chunk_col] as usize];
            if c != chunk {
                if early_exit {
                    suppressed += out.count[chunk_start..]
                        .iter()
                        .filter(|&&n| n < k)
                        .sum::<u64>();
                    if suppressed > self.max_suppressed {
                        return Some(false);
                    }
                }
                slots.clear();
                chunk = c;
                chunk_start = out.rep.len();
            }
            let mut r = 0u32;
            for (c, col) in &contrib {
                r += col[base[*c] as usize];
            }
            match slots.find_or_insert(r, out.rep.len() as u32) {
                Some(g) => out.count[g as usize] += count,
                None => {
                    out.rep.push(rep);
                    out.count.push(count);
                }
            }
        }
        Some(true)
    }

    fn remember(&mut self, mut fs: FreqSet) {
        if fs.node == 0 || fs.rep.len() > self.cache_budget / 4 {
            return;
        }
        if self.cached_groups + fs.rep.len() > self.cache_budget || self.cache.len() >= MAX_CACHED {
            // Evict the least recently used half (never the bottom).
            let mut used: Vec<(u64, usize)> = self
                .cache
                .iter()
                .filter(|(m, _)| **m != 0)
                .map(|(&m, f)| (f.used, m))
                .collect();
            used.sort_unstable();
            for &(_, m) in &used[..used.len() / 2 + 1] {
                if let Some(f) = self.cache.remove(&m) {
                    self.cached_groups -= f.rep.len();
                }
            }
        }
        self.clock += 1;
        fs.used = self.clock;
        self.cached_groups += fs.rep.len();
        self.cache.insert(fs.node, fs);
    }

    /// Checks the privacy model class by class.
    fn assess(&self, fs: &FreqSet) -> Assessment {
        let mut suppressed = 0u64;
        let mut classes = Vec::new();
        let mut sum_sq = 0.0;
        let mut push = |size: u64, rep: u32, pass: bool, suppressed: &mut u64| {
            if !pass {
                *suppressed += size;
            }
            sum_sq += (size as f64) * (size as f64);
            classes.push(ClassView {
                size,
                suppressed: !pass,
                rep,
            });
        };
        if self.sens_card > 1 {
            // The sensitive code is the lowest digit: sorting by key puts each class's
            // groups next to each other.
            let mut order: Vec<u32> = (0..fs.keys.len() as u32).collect();
            order.sort_unstable_by_key(|&g| fs.keys[g as usize]);
            let mut hist = Vec::new();
            let mut present = Vec::new();
            let mut i = 0;
            while i < order.len() {
                let class = fs.keys[order[i] as usize] / self.sens_card;
                let rep = fs.rep[order[i] as usize];
                hist.clear();
                present.clear();
                let mut size = 0;
                while i < order.len() && fs.keys[order[i] as usize] / self.sens_card == class {
                    let g = order[i] as usize;
                    hist.push(fs.count[g]);
                    present.push((fs.keys[g] % self.sens_card) as u32);
                    size += fs.count[g];
                    i += 1;
                }
                let pass = self
                    .privacy
                    .class_passes(size, &hist, &present, &self.global);
                push(size, rep, pass, &mut suppressed);
            }
        } else {
            for (&rep, &size) in fs.rep.iter().zip(&fs.count) {
                let pass = self.privacy.class_passes(size, &[], &[], &self.global);
                push(size, rep, pass, &mut suppressed);
            }
        }
        Assessment {
            suppressed,
            anonymous: suppressed <= self.max_suppressed,
            classes,
            sum_sq,
        }
    }

    /// The assessment of a node from its classes (`None`: the roll-up stopped early
    /// because the node fails); the classes are kept as a source for later roll-ups.
    fn assessed(&mut self, fs: Option<FreqSet>) -> Assessment {
        match fs {
            Some(fs) => {
                let a = self.assess(&fs);
                self.remember(fs);
                a
            }
            None => Assessment {
                suppressed: self.max_suppressed + 1,
                anonymous: false,
                classes: Vec::new(),
                sum_sq: 0.0,
            },
        }
    }

    fn run(mut self, exhaustive: bool) -> Result<Anonymised> {
        let start = Instant::now();
        let n = self.lattice.len();
        let level_bounds: Option<Vec<f64>> = (0..n)
            .map(|i| self.tables.level_bound(&self.lattice.levels(i)))
            .collect();
        self.early_exit = level_bounds.is_some();
        let mut st = State {
            lb: level_bounds.clone().unwrap_or_else(|| vec![0.0; n]),
            status: vec![UNKNOWN; n],
            evaluated: vec![false; n],
            rank: (0..n).map(|i| self.lattice.rank(i)).collect(),
            best: None,
            tagged: 0,
        };
        let monotonic = self.privacy.monotonic_with_suppression() || self.max_suppressed == 0;
        if monotonic && !exhaustive {
            if self.sens_card == 1 {
                st.tagged += self.projection_certificates(&mut st.status);
            }
            if level_bounds.is_some() {
                self.descend(&mut st)?;
            } else {
                self.classify(&mut st)?;
            }
        }
        // What classification left: nodes that pass but were tagged rather than
        // evaluated (or, for a model without tagging, every node), cheapest bound first.
        let mut order: Vec<usize> = (0..n)
            .filter(|&i| st.status[i] != FAIL && !st.evaluated[i])
            .collect();
        if level_bounds.is_some() && !exhaustive {
            order.sort_by(|&a, &b| {
                st.lb[a]
                    .total_cmp(&st.lb[b])
                    .then(st.rank[a].cmp(&st.rank[b]))
                    .then(a.cmp(&b))
            });
        } else {
            order.sort_by_key(|&i| (st.rank[i], i));
        }
        for node in order {
            if !exhaustive && st.pruned(node) {
                if level_bounds.is_some() {
                    // Sorted by bound: nothing after this can do better either.
                    break;
                }
                let b = st.lb[node];
                for s in self.lattice.successors(node) {
                    st.lb[s] = st.lb[s].max(b);
                }
                continue;
            }
            if st.status[node] == PASS && self.tables.levels_only() {
                st.offer(st.lb[node], node);
                continue;
            }
            self.visit(&mut st, node)?;
        }
        let Some((loss, node)) = st.best else {
            return Err(Error::NoSolution(format!(
                "no generalisation satisfies {} with at most {} suppressed records; allow \
                 more suppression or lower the requirements",
                describe(self.privacy),
                self.max_suppressed
            )));
        };
        let seconds = start.elapsed().as_secs_f64();
        self.release(node, loss, st.tagged, seconds)
    }

    /// Checks a node, evaluates the metric if it passes, and passes bounds upwards.
    /// Returns whether it passes.
    fn visit(&mut self, st: &mut State, node: usize) -> Result<bool> {
        let fs = self.freq_set(node, self.early_exit)?;
        Ok(self.visit_with(st, node, fs))
    }

    /// [`Engine::visit`] with the node's classes already rolled up.
    fn visit_with(&mut self, st: &mut State, node: usize, fs: Option<FreqSet>) -> bool {
        let a = self.assessed(fs);
        st.evaluated[node] = true;
        if a.anonymous {
            let loss = self.tables.evaluate(
                self.data,
                &self.lattice.levels(node),
                a.classes.iter().copied(),
            );
            st.offer(loss, node);
        }
        let bound = st.lb[node].max(self.tables.successor_bound(a.classes.len(), a.sum_sq));
        for s in self.lattice.successors(node) {
            st.lb[s] = st.lb[s].max(bound);
        }
        a.anonymous
    }

    /// Incognito's subset property: a record in a class smaller than k on some columns is
    /// in a class smaller than k on all of them, so a node fails if the projection of the
    /// table on any two (or three) of its columns, at the node's levels, suppresses more
    /// than the limit. Projections are small, so this classifies many failing nodes
    /// without rolling up their classes; they are independent, so they run on all cores.
    /// Returns the number of nodes it tagged.
    fn projection_certificates(&self, status: &mut [u8]) -> usize {
        let d = self.data.dims();
        let heights: Vec<usize> = self.lattice.heights().iter().map(|&h| h as usize).collect();
        let mut projections: Vec<Vec<usize>> = Vec::new();
        for i in 0..d {
            for j in i + 1..d {
                projections.push(vec![i, j]);
            }
        }
        // Triples of the columns with the most distinct values, where pairs are too
        // coarse to fail.
        let mut wide: Vec<usize> = (0..d).collect();
        wide.sort_by_key(|&c| {
            std::cmp::Reverse(self.data.freq[c].iter().filter(|&&f| f > 0).count())
        });
        wide.truncate(4);
        wide.sort_unstable();
        for x in 0..wide.len() {
            for y in x + 1..wide.len() {
                for z in y + 1..wide.len() {
                    projections.push(vec![wide[x], wide[y], wide[z]]);
                }
            }
        }
        let failing: Vec<(Vec<usize>, Vec<bool>)> = projections
            .into_par_iter()
            .filter_map(|cols| {
                let fails = self.projection_failures(&cols, &heights)?;
                Some((cols, fails))
            })
            .collect();
        let mut tagged = 0;
        let mut levels = vec![0u8; d];
        for (n, st) in status.iter_mut().enumerate() {
            if *st != UNKNOWN {
                continue;
            }
            for (c, l) in levels.iter_mut().enumerate() {
                *l = self.lattice.level(n, c);
            }
            if failing.iter().any(|(cols, fails)| {
                let idx = cols
                    .iter()
                    .fold(0, |acc, &c| acc * heights[c] + levels[c] as usize);
                fails[idx]
            }) {
                *st = FAIL;
                tagged += 1;
            }
        }
        tagged
    }

    /// Which level combinations of the projection on `cols` suppress more than the
    /// limit (index: levels in mixed radix, first column most significant); `None` if
    /// none does. Sparse histograms, levels visited from the top down so that a failing
    /// combination marks those below it without being aggregated.
    fn projection_failures(&self, cols: &[usize], heights: &[usize]) -> Option<Vec<bool>> {
        let k = self.privacy.k() as u64;
        // The level-0 histogram, dense (projections with more combinations are skipped:
        // they would rarely fail and cost as much as the checks they spare).
        let cards0: Vec<usize> = cols
            .iter()
            .map(|&c| self.data.card[c][0] as usize)
            .collect();
        let cells0 = cards0
            .iter()
            .try_fold(1usize, |acc, &c| acc.checked_mul(c))
            .filter(|&n| n <= 1 << 22)?;
        let mut dense = vec![0u64; cells0];
        let d = self.data.dims();
        for (t, &n) in self.data.counts.iter().enumerate() {
            let row = &self.data.tuples[t * d..t * d + d];
            let idx = cols
                .iter()
                .zip(&cards0)
                .fold(0, |acc, (&c, &card)| acc * card + row[c] as usize);
            dense[idx] += n as u64;
        }
        // The non-empty combinations, flat: codes of `cols` for each, then its count.
        let w = cols.len();
        let mut base_codes: Vec<u32> = Vec::new();
        let mut base_n: Vec<u64> = Vec::new();
        for (mut i, &n) in dense.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let at = base_codes.len();
            base_codes.resize(at + w, 0);
            for (j, &card) in cards0.iter().enumerate().rev() {
                base_codes[at + j] = (i % card) as u32;
                i /= card;
            }
            base_n.push(n);
        }
        drop(dense);
        let size: usize = cols.iter().map(|&c| heights[c]).product();
        let mut fails = vec![false; size];
        let mut any = false;
        let mut l = vec![0usize; w];
        let mut agg: Vec<u64> = Vec::new();
        for i in (0..size).rev() {
            let mut rest = i;
            for (j, &c) in cols.iter().enumerate().rev() {
                l[j] = rest % heights[c];
                rest /= heights[c];
            }
            // A failing generalisation means this one fails too: the index of the
            // generalisation by one level of column j is i plus column j's stride.
            let mut stride = 1;
            let mut above = false;
            for (j, &c) in cols.iter().enumerate().rev() {
                if l[j] + 1 < heights[c] && fails[i + stride] {
                    above = true;
                    break;
                }
                stride *= heights[c];
            }
            if above {
                fails[i] = true;
                continue;
            }
            // Dense aggregation over the combinations at these levels; too many of them
            // and the combination is left unclassified (never a wrong tag).
            let ups: Vec<&[u32]> = cols
                .iter()
                .zip(&l)
                .map(|(&c, &lv)| self.data.up[c][lv].as_slice())
                .collect();
            let cards: Vec<usize> = cols
                .iter()
                .zip(&l)
                .map(|(&c, &lv)| self.data.card[c][lv] as usize)
                .collect();
            let cells: usize = cards.iter().product();
            if cells > 1 << 20 {
                continue;
            }
            agg.clear();
            agg.resize(cells, 0);
            for (key, &n) in base_codes.chunks_exact(w).zip(&base_n) {
                let mut idx = 0;
                for ((&code, up), &card) in key.iter().zip(&ups).zip(&cards) {
                    idx = idx * card + up[code as usize] as usize;
                }
                agg[idx] += n;
            }
            let suppressed: u64 = agg.iter().filter(|&&n| n > 0 && n < k).sum();
            if suppressed > self.max_suppressed {
                fails[i] = true;
                any = true;
            }
        }
        any.then_some(fails)
    }

    /// Flash-style classification: binary search for the lowest passing node along
    /// chains of unclassified nodes, tagging generalisations of passing nodes and
    /// specialisations of failing ones. Chains only run through nodes whose bound is
    /// below the best loss found so far: the others cannot be optimal, and as better
    /// nodes are found the region left to classify shrinks.
    fn classify(&mut self, st: &mut State) -> Result<()> {
        let n = self.lattice.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (st.rank[i], i));
        for start in order {
            if st.status[start] != UNKNOWN || st.pruned(start) {
                continue;
            }
            // Climb by the step with the lowest bound, so the chain stays near the
            // nodes the metric prefers.
            let mut path = vec![start];
            let mut cur = start;
            while let Some(s) = self
                .lattice
                .successors(cur)
                .filter(|&s| st.status[s] == UNKNOWN && !st.pruned(s))
                .min_by(|&a, &b| st.lb[a].total_cmp(&st.lb[b]).then(a.cmp(&b)))
            {
                path.push(s);
                cur = s;
            }
            let (mut lo, mut hi) = (0, path.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                let node = path[mid];
                let pass = match st.status[node] {
                    PASS => true,
                    FAIL => false,
                    _ => {
                        let pass = self.visit(st, node)?;
                        st.tagged += self.tag(&mut st.status, node, pass);
                        pass
                    }
                };
                if pass {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        }
        Ok(())
    }

    /// Top-down classification for metrics with level bounds. The nodes still to decide
    /// are the untagged ones whose bound is below the best loss found, and only the
    /// maximal ones among them (the front) need checking: one that fails fails all its
    /// specialisations, one that passes lowers the best loss. The front is an antichain,
    /// so its checks are independent: contiguous parts of it (in node order, where
    /// neighbours share sources) run on all cores, and their results are applied in
    /// node order, which keeps the outcome independent of the number of cores.
    fn descend(&mut self, st: &mut State) -> Result<()> {
        let n = self.lattice.len();
        let open = |st: &State, v: usize| st.status[v] == UNKNOWN && !st.pruned(v);
        let cores = rayon::current_num_threads().max(1);
        loop {
            let front: Vec<usize> = (0..n)
                .filter(|&v| open(st, v) && self.lattice.successors(v).all(|s| !open(st, s)))
                .collect();
            if front.is_empty() {
                return Ok(());
            }
            // Cheapest bound first: a pass there prunes most of the rest.
            let mut front = front;
            front.sort_by(|&a, &b| st.lb[a].total_cmp(&st.lb[b]).then(a.cmp(&b)));
            // One check at a time on one core (each pass prunes at once); on more, a few
            // per core, at the price of some checks a pass would have spared.
            let wave = if cores == 1 { 1 } else { 4 * cores };
            let mut rest = &front[..];
            while !rest.is_empty() {
                let mut batch: Vec<usize> = Vec::with_capacity(wave);
                let mut used = 0;
                for &v in rest {
                    used += 1;
                    if open(st, v) {
                        batch.push(v);
                        if batch.len() == wave {
                            break;
                        }
                    }
                }
                rest = &rest[used..];
                batch.sort_unstable();
                self.check_batch(st, &batch, cores)?;
            }
        }
    }

    /// Checks the nodes of an antichain, split in contiguous parts across the cores, and
    /// applies the results in order.
    fn check_batch(&mut self, st: &mut State, batch: &[usize], cores: usize) -> Result<()> {
        // Fewer checks than this per core are not worth waking another thread for.
        const MIN_PART: usize = 4;
        let open = |st: &State, v: usize| st.status[v] == UNKNOWN && !st.pruned(v);
        let parts = cores.min(batch.len() / MIN_PART).max(1);
        let size = batch.len().div_ceil(parts).max(1);
        let (early_exit, last) = (self.early_exit, self.last);
        let pool: Vec<Slots> = (0..batch.len().div_ceil(size))
            .map(|_| self.scratch.pop().unwrap_or_default())
            .collect();
        type Part = (Vec<(usize, Option<FreqSet>)>, WorkerDone);
        let results: Vec<Result<Part>> = {
            let eng = &*self;
            batch
                .par_chunks(size)
                .zip(pool)
                .enumerate()
                .map(|(i, (chunk, slots))| {
                    let mut w = Worker::new(eng, if i == 0 { last } else { None }, slots);
                    let mut out = Vec::with_capacity(chunk.len());
                    for &v in chunk {
                        out.push((v, w.freq_set(v, early_exit)?));
                    }
                    Ok((out, w.finish()))
                })
                .collect()
        };
        for part in results {
            let (checked, done) = part?;
            self.absorb(done);
            for (v, fs) in checked {
                // A pass earlier in this batch may have pruned it.
                if open(st, v) {
                    let pass = self.visit_with(st, v, fs);
                    st.tagged += self.tag(&mut st.status, v, pass);
                }
            }
        }
        Ok(())
    }

    /// Marks `node` and its generalisations (if it passes) or specialisations (if it
    /// fails); returns how many nodes were marked besides `node`.
    fn tag(&self, status: &mut [u8], node: usize, pass: bool) -> usize {
        let mark = if pass { PASS } else { FAIL };
        status[node] = mark;
        let mut stack = vec![node];
        let mut marked = 0;
        while let Some(m) = stack.pop() {
            let next: Vec<usize> = if pass {
                self.lattice.successors(m).collect()
            } else {
                self.lattice.predecessors(m).collect()
            };
            for s in next {
                if status[s] != mark {
                    status[s] = mark;
                    marked += 1;
                    stack.push(s);
                }
            }
        }
        marked
    }

    fn release(
        mut self,
        node: usize,
        loss: f64,
        tagged: usize,
        seconds: f64,
    ) -> Result<Anonymised> {
        let fs = self.freq_set(node, false)?.ok_or_else(|| Error::Param {
            name: "search",
            reason: "internal: a full roll-up stopped early".into(),
        })?;
        let a = self.assess(&fs);
        let levels = self.lattice.levels(node);
        let qi_mult = self.radices(&levels)?;
        // Which classes are suppressed, by their quasi-identifier key.
        let mut class_suppressed: FxHashMap<u128, bool> = FxHashMap::default();
        let class_key = |k: u128| k / self.sens_card;
        if self.sens_card > 1 {
            let mut order: Vec<u32> = (0..fs.keys.len() as u32).collect();
            order.sort_unstable_by_key(|&g| fs.keys[g as usize]);
            let mut ci = 0;
            let mut i = 0;
            while i < order.len() {
                let k = class_key(fs.keys[order[i] as usize]);
                while i < order.len() && class_key(fs.keys[order[i] as usize]) == k {
                    i += 1;
                }
                class_suppressed.insert(k, a.classes[ci].suppressed);
                ci += 1;
            }
        } else {
            for (g, &rep) in fs.rep.iter().enumerate() {
                class_suppressed.insert(self.key(rep, &levels, &qi_mult), a.classes[g].suppressed);
            }
        }
        let suppressed: Vec<bool> = (0..self.data.distinct() as u32)
            .map(|t| class_suppressed[&class_key(self.key(t, &levels, &qi_mult))])
            .collect();
        let stats = SearchStats {
            nodes: self.lattice.len(),
            checked: self.checked,
            tagged,
            groups_read: self.groups_read,
            seconds,
        };
        Ok(Anonymised {
            node: levels,
            loss,
            suppressed_records: a.suppressed,
            released_classes: a.classes.iter().filter(|c| !c.suppressed).count(),
            value_suppressed: vec![None; suppressed.len()],
            suppressed,
            stats,
        })
    }
}

/// Rolls up nodes from the engine's cache (read only) and from the meets it builds
/// itself, so that several workers can check nodes of one front at the same time.
struct Worker<'e, 'a> {
    eng: &'e Engine<'a>,
    slots: Slots,
    meets: Vec<FreqSet>,
    /// The node checked last.
    last: Option<usize>,
    used: Vec<usize>,
    checked: usize,
    groups_read: u64,
}

/// What a worker hands back to the engine.
struct WorkerDone {
    slots: Slots,
    meets: Vec<FreqSet>,
    last: Option<usize>,
    used: Vec<usize>,
    checked: usize,
    groups_read: u64,
}

impl<'e, 'a> Worker<'e, 'a> {
    fn new(eng: &'e Engine<'a>, last: Option<usize>, slots: Slots) -> Self {
        Worker {
            eng,
            slots,
            meets: Vec::new(),
            last,
            used: Vec::new(),
            checked: 0,
            groups_read: 0,
        }
    }

    fn source(&self, node: usize) -> &FreqSet {
        source_in(self.eng, &self.meets, node)
    }

    fn knows(&self, node: usize) -> bool {
        self.eng.cache.contains_key(&node) || self.meets.iter().any(|f| f.node == node)
    }

    /// The classes of `node`; `None` if `early_exit` allowed stopping as soon as the
    /// node was known to fail.
    fn freq_set(&mut self, node: usize, early_exit: bool) -> Result<Option<FreqSet>> {
        let lattice = &self.eng.lattice;
        let src = self.source(node).node;
        // Checks come in neighbourhoods: when only the distinct records lie below, build
        // and keep the meet of this node and the previous one, a coarser source that the
        // following checks of the neighbourhood can share.
        let previous = self.last.replace(node);
        let large = self.source(node).rep.len() * 2 > self.eng.data.distinct();
        if large && let Some(prev) = previous {
            let meet = lattice.meet(node, prev);
            if meet != src
                && meet != node
                && lattice.le(src, meet)
                && !self.knows(meet)
                && let Some(fs) = self.roll_up_counted(meet, false)?
            {
                self.meets.push(fs);
            }
        }
        self.roll_up_counted(node, early_exit)
    }

    fn roll_up_counted(&mut self, node: usize, early_exit: bool) -> Result<Option<FreqSet>> {
        let src = source_in(self.eng, &self.meets, node);
        let (src_node, read) = (src.node, src.rep.len() as u64);
        let fs = self.eng.roll_up(node, src, early_exit, &mut self.slots);
        self.used.push(src_node);
        self.groups_read += read;
        self.checked += 1;
        fs
    }

    fn finish(self) -> WorkerDone {
        WorkerDone {
            slots: self.slots,
            meets: self.meets,
            last: self.last,
            used: self.used,
            checked: self.checked,
            groups_read: self.groups_read,
        }
    }
}

/// The smallest freq set at `node` or below it, among the engine's cache and a worker's
/// meets (the bottom, always cached, is the fallback). A scan of the cache costs far less
/// than one roll-up.
fn source_in<'x>(eng: &'x Engine<'_>, meets: &'x [FreqSet], node: usize) -> &'x FreqSet {
    let levels = eng.lattice.levels(node);
    let below = |f: &&FreqSet| f.levels.iter().zip(&levels).all(|(a, b)| a <= b);
    eng.cache
        .values()
        .chain(meets)
        .filter(below)
        .min_by_key(|f| (f.rep.len(), f.node))
        .unwrap_or(&eng.cache[&0])
}

fn describe(p: &PrivacyModel) -> String {
    let mut s = format!("{}-anonymity", p.k());
    if let Some(l) = p.l_diversity() {
        s.push_str(&match l {
            crate::privacy::LDiversity::Distinct { l } => format!(", distinct {l}-diversity"),
            crate::privacy::LDiversity::Entropy { l } => format!(", entropy {l}-diversity"),
            crate::privacy::LDiversity::Recursive { c, l } => {
                format!(", recursive ({c},{l})-diversity")
            }
        });
    }
    if let Some(t) = p.t_closeness() {
        s.push_str(&format!(", {t}-closeness"));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::hierarchy::Hierarchy;
    use crate::privacy::LDiversity;

    fn hierarchies() -> Vec<Hierarchy> {
        let h = |name: &str, rows: &[[&str; 3]]| {
            Hierarchy::from_rows(
                name,
                rows.iter()
                    .map(|r| r.iter().map(|v| v.to_string()).collect())
                    .collect(),
            )
            .unwrap()
        };
        vec![
            h(
                "a",
                &[
                    ["a0", "A01", "*"],
                    ["a1", "A01", "*"],
                    ["a2", "A23", "*"],
                    ["a3", "A23", "*"],
                    ["a4", "A45", "*"],
                    ["a5", "A45", "*"],
                ],
            ),
            h(
                "b",
                &[
                    ["b0", "B01", "*"],
                    ["b1", "B01", "*"],
                    ["b2", "B23", "*"],
                    ["b3", "B23", "*"],
                ],
            ),
            Hierarchy::from_rows(
                "c",
                ["c0", "c1", "c2"]
                    .iter()
                    .map(|v| vec![v.to_string(), "*".into()])
                    .collect(),
            )
            .unwrap(),
        ]
    }

    fn table(raw: &[(u8, u8, u8, u8)]) -> Vec<Vec<String>> {
        raw.iter()
            .map(|&(a, b, c, s)| {
                vec![
                    format!("a{}", a % 6),
                    format!("b{}", b % 4),
                    format!("c{}", c % 3),
                    format!("s{}", s % 3),
                ]
            })
            .collect()
    }

    fn model(kind: u8, k: usize) -> PrivacyModel {
        let m = PrivacyModel::k_anonymity(k).unwrap();
        match kind % 5 {
            0 => m,
            1 => m.with_l_diversity(LDiversity::Distinct { l: 2 }).unwrap(),
            2 => m.with_l_diversity(LDiversity::Entropy { l: 1.5 }).unwrap(),
            3 => m
                .with_l_diversity(LDiversity::Recursive { c: 3.0, l: 2 })
                .unwrap(),
            _ => m.with_t_closeness(0.4).unwrap(),
        }
    }

    /// The released rows (quasi-identifiers, then the sensitive value), sorted, with
    /// suppressed rows as `None`.
    fn released(
        fit: &Anonymised,
        data: &Microdata,
        rows: &[Vec<String>],
    ) -> Vec<Option<Vec<String>>> {
        let mut out: Vec<Option<Vec<String>>> = (0..data.len())
            .map(|r| {
                fit.row(data, r).map(|mut v| {
                    v.push(&rows[r][3]);
                    v.into_iter().map(str::to_string).collect()
                })
            })
            .collect();
        out.sort();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn search_is_optimal_private_and_order_free(
            raw in prop::collection::vec((0u8..6, 0u8..4, 0u8..3, 0u8..3), 1..70),
            k in 1usize..6,
            limit in prop::sample::select(vec![0.0, 0.05, 0.1, 0.3]),
            metric in prop::sample::select(Metric::ALL.to_vec()),
            kind in 0u8..5,
            gs in prop::sample::select(vec![0.1, 0.5, 0.8]),
            shift in 0usize..70,
        ) {
            let rows = table(&raw);
            let data = Microdata::new(hierarchies(), Some("s"), &rows, 1).unwrap();
            let spec = Anonymisation::new(model(kind, k))
                .max_suppression(limit).unwrap()
                .metric(metric)
                .gs_factor(GsFactor::new(gs).unwrap());
            let (fast, slow) = (spec.fit(&data), spec.fit_exhaustive(&data));
            match (&fast, &slow) {
                (Err(Error::NoSolution(_)), Err(Error::NoSolution(_))) => return Ok(()),
                (Ok(f), Ok(s)) => {
                    // Optimality: the search's loss is the exhaustive minimum, at the
                    // same node (ties go to the same node in both).
                    prop_assert!((f.loss() - s.loss()).abs() <= 1e-9 * s.loss().abs().max(1.0),
                        "search {} at {:?}, exhaustive {} at {:?}", f.loss(), f.node(), s.loss(), s.node());
                    prop_assert_eq!(f.node(), s.node());
                }
                _ => prop_assert!(false, "search {:?} vs exhaustive {:?}", fast.is_ok(), slow.is_ok()),
            }
            let fit = fast.unwrap();
            // Suppression within the limit.
            let suppressed = (0..data.len()).filter(|&r| fit.is_suppressed(&data, r)).count();
            prop_assert_eq!(suppressed as u64, fit.suppressed_records());
            prop_assert!(suppressed as f64 <= limit * data.len() as f64 + 1e-9);
            // Every released class satisfies the model; every value is its hierarchy's
            // label at the node's level.
            let mut classes: HashMap<Vec<&str>, Vec<usize>> = HashMap::new();
            for (r, row) in rows.iter().enumerate() {
                if let Some(v) = fit.row(&data, r) {
                    for (c, h) in data.hierarchies().iter().enumerate() {
                        let at = h.row_of(&row[c]).unwrap();
                        prop_assert_eq!(v[c], h.label(at, fit.node()[c] as usize));
                    }
                    classes.entry(v).or_default().push(r);
                }
            }
            let m = model(kind, k);
            let mut global = vec![0.0; 3];
            for r in &rows {
                global[r[3][1..].parse::<usize>().unwrap()] += 1.0 / rows.len() as f64;
            }
            for members in classes.values() {
                let mut hist = [0u64; 3];
                for &r in members {
                    hist[rows[r][3][1..].parse::<usize>().unwrap()] += 1;
                }
                let present: Vec<u32> = (0..3).filter(|&v| hist[v] > 0).map(|v| v as u32).collect();
                let counts: Vec<u64> = present.iter().map(|&v| hist[v as usize]).collect();
                prop_assert!(m.class_passes(members.len() as u64, &counts, &present, &global));
            }
            // Another row order: the same release.
            let mut rotated = rows.clone();
            rotated.rotate_left(shift % rows.len());
            let data2 = Microdata::new(hierarchies(), Some("s"), &rotated, 1).unwrap();
            let fit2 = spec.fit(&data2).unwrap();
            prop_assert_eq!(fit2.node(), fit.node());
            prop_assert_eq!(released(&fit2, &data2, &rotated), released(&fit, &data, &rows));
        }
    }

    #[test]
    fn impossible_requirements_say_so() {
        let rows = table(&[(0, 0, 0, 0), (1, 1, 1, 1)]);
        let data = Microdata::new(hierarchies(), Some("s"), &rows, 1).unwrap();
        let err = Anonymisation::new(PrivacyModel::k_anonymity(3).unwrap())
            .fit(&data)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("3-anonymity") && err.contains("suppress"),
            "{err}"
        );
    }
}
