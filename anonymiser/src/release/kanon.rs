//! k^m-anonymity over persons and their records, with l-diversity and bounded suppression.
//!
//! The unit is the person with all their records. A person's **classes** are: the persons
//! with the same generalised attributes (the person class), and, for every combination of
//! up to `m` of their records (in any released table), the persons of that class who have
//! records generalised alike. An attacker who knows someone's attributes and `m` of their
//! records (as released) finds the person in each such class, so every class must hold at
//! least `k` persons, and every sensitive attribute must take at least `l` distinct values
//! among them. Persons in a class that fails are suppressed with all their records (up to
//! a budget); suppression shrinks other classes, so it is repeated until nothing fails.
//!
//! The generalisation is full-domain (one level per column, as in the lattice search of
//! [`crate::search`]), for person columns and record columns alike. The lattice of all
//! these columns is far too large to walk, so the search is a greedy top-down
//! specialisation (Fung, Wang and Yu's TDS): from the most general release, lower the one
//! column whose specialisation loses least information while the suppression stays within
//! budget; a column whose specialisation fails the budget once is fixed, since a more
//! specialised node can only suppress more (the model is monotonic). It ends at a node
//! none of whose specialisations is admissible. Information loss is ARX's loss metric
//! (Iyengar's LM) per column, averaged over the columns, a suppressed value counting 1.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::hierarchy::Hierarchy;
use crate::{Error, Result};

/// Who owns a column: the person, or the records of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Person,
    Table(usize),
}

/// One generalisable column, encoded.
#[derive(Debug, Clone)]
pub(crate) struct Dim {
    pub name: String,
    pub owner: Owner,
    pub hierarchy: Hierarchy,
    /// `codes[level][entity]`: dense label number of the entity's value at that level.
    codes: Vec<Vec<u32>>,
    /// `loss[level][code]`: (leaves under the label − 1) / (leaves − 1).
    loss: Vec<Vec<f64>>,
    /// `labels[level][code]`.
    labels: Vec<Vec<u32>>,
    pub weight: f64,
}

impl Dim {
    /// Encodes `values` (one per person or per record) with `hierarchy`.
    pub fn new(
        name: &str,
        owner: Owner,
        hierarchy: Hierarchy,
        values: &[&str],
        weight: f64,
    ) -> Result<Dim> {
        let height = hierarchy.height();
        let rows = hierarchy.len();
        // Dense codes per level over the hierarchy's rows (its whole domain).
        let mut row_code: Vec<Vec<u32>> = Vec::with_capacity(height);
        let mut leaves: Vec<Vec<u32>> = Vec::with_capacity(height);
        let mut labels: Vec<Vec<u32>> = Vec::with_capacity(height);
        for level in 0..height {
            let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
            let mut codes = Vec::with_capacity(rows);
            let mut count: Vec<u32> = Vec::new();
            let mut first: Vec<u32> = Vec::new();
            for r in 0..rows {
                let next = ids.len() as u32;
                let c = *ids.entry(hierarchy.label(r, level)).or_insert(next);
                if c as usize == count.len() {
                    count.push(0);
                    first.push(r as u32);
                }
                count[c as usize] += 1;
                codes.push(c);
            }
            row_code.push(codes);
            leaves.push(count);
            labels.push(first);
        }
        let domain = rows.max(2) as f64 - 1.0;
        let loss = leaves
            .iter()
            .map(|l| l.iter().map(|&n| (n as f64 - 1.0) / domain).collect())
            .collect();
        let mut codes = vec![Vec::with_capacity(values.len()); height];
        for v in values {
            let r = hierarchy.row_of(v).ok_or_else(|| Error::Hierarchy {
                column: name.to_string(),
                reason: format!("value {v:?} is not in the hierarchy"),
            })?;
            for (level, c) in codes.iter_mut().enumerate() {
                c.push(row_code[level][r]);
            }
        }
        Ok(Dim {
            name: name.to_string(),
            owner,
            hierarchy,
            codes,
            loss,
            labels,
            weight,
        })
    }

    /// Number of levels (the original included).
    pub fn height(&self) -> usize {
        self.codes.len()
    }

    /// Distinct labels among the entities at each level.
    fn distinct(&self) -> Vec<usize> {
        self.codes
            .iter()
            .map(|c| {
                let mut v = c.clone();
                v.sort_unstable();
                v.dedup();
                v.len()
            })
            .collect()
    }

    /// The released label of entity `i` at `level`.
    pub fn label(&self, i: usize, level: usize) -> &str {
        let code = self.codes[level][i];
        let row = self.labels[level][code as usize] as usize;
        self.hierarchy.label(row, level)
    }
}

/// A release problem: persons, their records, the columns and the privacy model.
pub(crate) struct Problem {
    pub persons: usize,
    pub dims: Vec<Dim>,
    /// `distinct[d][level]`: labels in use; levels with as many as the next one split
    /// nothing more and are stepped over.
    distinct: Vec<Vec<usize>>,
    /// Person of each record, per table.
    pub record_person: Vec<Vec<u32>>,
    /// Records of each person: `rec_off[p]..rec_off[p + 1]` into `rec_list`.
    rec_off: Vec<u32>,
    rec_list: Vec<(u16, u32)>,
    /// Sensitive attributes: name, value code per person.
    pub sensitive: Vec<(String, Vec<u32>)>,
    pub k: usize,
    pub m: usize,
    pub l: Option<usize>,
    /// Largest number of persons that may be suppressed.
    pub budget: usize,
}

/// A class key: the person class, then up to three record classes (`u32::MAX` = none).
type Key = [u32; 4];
const NONE: u32 = u32::MAX;

/// What a node gives.
#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub suppressed: Vec<bool>,
    pub n_suppressed: usize,
    /// Persons in some class smaller than 2k before suppression: how close the node is
    /// to needing suppression, which the search spends with care.
    pub pressure: usize,
    /// Weighted mean of the columns' losses.
    pub loss: f64,
    /// Each column's loss.
    pub dim_loss: Vec<f64>,
}

impl Problem {
    /// Builds the problem; `sensitive` values are any strings (one per person).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        persons: usize,
        dims: Vec<Dim>,
        record_person: Vec<Vec<u32>>,
        sensitive: Vec<(String, Vec<&str>)>,
        k: usize,
        m: usize,
        l: Option<usize>,
        budget: usize,
    ) -> Result<Problem> {
        if m > 3 {
            return Err(Error::Param {
                name: "m",
                reason: format!("{m}: up to 3 records known to an attacker are supported"),
            });
        }
        let mut per: Vec<Vec<(u16, u32)>> = vec![Vec::new(); persons];
        for (t, rp) in record_person.iter().enumerate() {
            for (i, &p) in rp.iter().enumerate() {
                per[p as usize].push((t as u16, i as u32));
            }
        }
        let mut rec_off = Vec::with_capacity(persons + 1);
        let mut rec_list = Vec::new();
        rec_off.push(0);
        for v in per {
            rec_list.extend(v);
            rec_off.push(rec_list.len() as u32);
        }
        let sensitive = sensitive
            .into_iter()
            .map(|(name, vals)| {
                let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
                let codes = vals
                    .iter()
                    .map(|v| {
                        let next = ids.len() as u32;
                        *ids.entry(v).or_insert(next)
                    })
                    .collect();
                (name, codes)
            })
            .collect();
        let distinct = dims.iter().map(Dim::distinct).collect();
        Ok(Problem {
            persons,
            dims,
            distinct,
            record_person,
            rec_off,
            rec_list,
            sensitive,
            k,
            m,
            l,
            budget,
        })
    }

    fn records_of(&self, p: usize) -> &[(u16, u32)] {
        &self.rec_list[self.rec_off[p] as usize..self.rec_off[p + 1] as usize]
    }

    /// Dense class numbers of the entities of `owner` at `node`.
    ///
    /// Columns are combined as mixed-radix numbers (their label counts are known), so a
    /// class is one `u64` and one hash per entity is enough, not one per column; when the
    /// radix product would overflow, the combination so far is made dense first.
    fn classes(&self, owner: Owner, node: &[u8], n: usize) -> Vec<u32> {
        let mut key = vec![0u64; n];
        let mut radix: u64 = 1;
        for (d, dim) in self.dims.iter().enumerate() {
            if dim.owner != owner {
                continue;
            }
            let level = node[d] as usize;
            let codes = &dim.codes[level];
            let card = dim.loss[level].len().max(1) as u64;
            if radix.checked_mul(card).is_none_or(|r| r > u64::MAX / 2) {
                radix = densify(&mut key);
            }
            for (k, &c) in key.iter_mut().zip(codes) {
                *k = *k * card + u64::from(c);
            }
            radix *= card;
        }
        densify(&mut key);
        key.into_iter().map(|k| k as u32).collect()
    }

    /// Every class key of person `p` (its person class, then each combination of up to
    /// `m` of its distinct record classes), into `out`.
    fn keys_of(&self, p: usize, pc: u32, rc: &[Vec<u32>], out: &mut Vec<Key>) {
        out.clear();
        out.push([pc, NONE, NONE, NONE]);
        if self.m == 0 {
            return;
        }
        let mut mine: Vec<u32> = self
            .records_of(p)
            .iter()
            .map(|&(t, i)| rc[t as usize][i as usize])
            .collect();
        mine.sort_unstable();
        // Two records in the same class are a combination too (the attacker may know both).
        let distinct: Vec<u32> = {
            let mut d = mine.clone();
            d.dedup();
            d
        };
        for (a, &x) in distinct.iter().enumerate() {
            out.push([pc, x, NONE, NONE]);
            if self.m < 2 {
                continue;
            }
            let twice = mine.iter().filter(|&&v| v == x).count() >= 2;
            if twice {
                out.push([pc, x, x, NONE]);
            }
            for &y in &distinct[a + 1..] {
                out.push([pc, x, y, NONE]);
                if self.m >= 3 {
                    for &z in distinct.iter().skip_while(|&&z| z <= y) {
                        out.push([pc, x, y, z]);
                    }
                }
            }
        }
    }

    /// Record classes of every table at `node`, numbered apart across tables.
    fn record_classes(&self, node: &[u8]) -> Vec<Vec<u32>> {
        let mut offset = 0u32;
        (0..self.record_person.len())
            .map(|t| {
                let n = self.record_person[t].len();
                let mut c = self.classes(Owner::Table(t), node, n);
                let max = c.iter().copied().max().map_or(0, |m| m + 1);
                for x in c.iter_mut() {
                    *x += offset;
                }
                offset += max;
                c
            })
            .collect()
    }

    /// Suppression and loss at `node`. With `all_sensitive` false, l-diversity is checked
    /// only for the sensitive attributes with few values (the ones that fail; scores
    /// almost never do), which makes comparing candidate nodes cheap.
    pub fn evaluate(&self, node: &[u8], all_sensitive: bool) -> Eval {
        let pc = self.classes(Owner::Person, node, self.persons);
        let rc = self.record_classes(node);
        let checked: Vec<usize> = (0..self.sensitive.len())
            .filter(|&s| all_sensitive || self.low_cardinality(s))
            .collect();
        // Every person's classes as dense ids, flat: one hash per key, then arrays.
        let mut off: Vec<u32> = Vec::with_capacity(self.persons + 1);
        let mut ids: Vec<u32> = Vec::with_capacity(self.persons * 3);
        off.push(0);
        let nk = {
            // Person classes are dense already and keep their numbers; the combinations
            // with records are numbered after them.
            let npc = pc.iter().copied().max().map_or(0, |m| m + 1);
            let mut index: FxHashMap<Key, u32> = FxHashMap::default();
            let mut buf = Vec::new();
            for (p, &c) in pc.iter().enumerate() {
                self.keys_of(p, c, &rc, &mut buf);
                ids.push(c);
                for k in &buf[1..] {
                    let next = npc + index.len() as u32;
                    ids.push(*index.entry(*k).or_insert(next));
                }
                off.push(ids.len() as u32);
            }
            npc as usize + index.len()
        };
        let keys = |p: usize| &ids[off[p] as usize..off[p + 1] as usize];
        let mut count = vec![0u32; nk];
        for &id in &ids {
            count[id as usize] += 1;
        }
        let near = 2 * self.k as u32;
        let pressure = (0..self.persons)
            .filter(|&p| keys(p).iter().any(|&id| count[id as usize] < near))
            .count();
        // Where each class begins among the entries sorted by class.
        let mut start = vec![0u32; nk + 1];
        for &id in &ids {
            start[id as usize + 1] += 1;
        }
        for i in 0..nk {
            start[i + 1] += start[i];
        }
        let l = self.l.unwrap_or(0);
        let diverse: Vec<&[u32]> = if l > 1 {
            checked.iter().map(|&s| &self.sensitive[s].1[..]).collect()
        } else {
            Vec::new()
        };
        // The checked attributes' values of each person packed into one word where their
        // bits fit (almost always: they have few values), so that the counting sort below
        // carries them along with the person and they are read in order afterwards.
        let widths: Vec<usize> = diverse
            .iter()
            .map(|v| v.iter().copied().max().map_or(1, |m| m as usize + 1))
            .collect();
        let bits: Vec<u32> = widths
            .iter()
            .map(|&w| usize::BITS - (w - 1).leading_zeros())
            .collect();
        let packed = !diverse.is_empty() && bits.iter().sum::<u32>() <= 64;
        let word = |p: usize| -> u64 {
            let mut w = 0u64;
            if packed {
                for (vals, &b) in diverse.iter().zip(&bits) {
                    w = (w << b) | u64::from(vals[p]);
                }
            }
            w
        };
        // Counting sort of the entries by class: the person (and packed values) at each
        // position, and where each entry went.
        let mut member = vec![(0u32, 0u64); ids.len()];
        let mut position = vec![0u32; ids.len()];
        {
            let mut cursor = start.clone();
            for p in 0..self.persons {
                let w = word(p);
                for j in off[p] as usize..off[p + 1] as usize {
                    let id = ids[j] as usize;
                    let pos = cursor[id] as usize;
                    cursor[id] += 1;
                    member[pos] = (p as u32, w);
                    position[j] = pos as u32;
                }
            }
        }
        // l-diversity per checked attribute: how many persons of each class hold each
        // value (a pair number per position), and the distinct values per class, counted
        // class by class with a stamp per value (no hash of pairs: it missed the cache).
        let mut diversity: Vec<Diversity> = Vec::with_capacity(diverse.len());
        let mut shift: u32 = bits.iter().sum();
        for ((vals, &width), &b) in diverse.iter().zip(&widths).zip(&bits) {
            shift -= b;
            let mask = if b == 0 { 0 } else { u64::MAX >> (64 - b) };
            let value_at = |pos: usize| -> usize {
                let (p, w) = member[pos];
                if packed {
                    ((w >> shift) & mask) as usize
                } else {
                    vals[p as usize] as usize
                }
            };
            let mut stamp = vec![u32::MAX; width];
            let mut local = vec![0u32; width];
            let mut d = Diversity {
                pair: vec![0u32; ids.len()],
                held: Vec::new(),
                distinct: vec![0u32; nk],
            };
            for id in 0..nk {
                let base = d.held.len() as u32;
                let mut n = 0u32;
                for pos in start[id] as usize..start[id + 1] as usize {
                    let v = value_at(pos);
                    if stamp[v] != id as u32 {
                        stamp[v] = id as u32;
                        local[v] = n;
                        n += 1;
                        d.held.push(0);
                    }
                    let pid = base + local[v];
                    d.held[pid as usize] += 1;
                    d.pair[pos] = pid;
                }
                d.distinct[id] = n;
            }
            diversity.push(d);
        }
        let fails = |id: usize, count: &[u32], diversity: &[Diversity]| {
            count[id] > 0
                && ((count[id] as usize) < self.k
                    || diversity.iter().any(|d| (d.distinct[id] as usize) < l))
        };
        // Suppressing a person shrinks their other classes, which may then fail in turn:
        // a work list of failing classes until none is left (each person and each class
        // is handled once; failing only grows as persons leave, so this is the fixpoint).
        let mut suppressed = vec![false; self.persons];
        let mut failing = vec![false; nk];
        let mut queue: Vec<u32> = Vec::new();
        for (id, f) in failing.iter_mut().enumerate() {
            if fails(id, &count, &diversity) {
                *f = true;
                queue.push(id as u32);
            }
        }
        while let Some(id) = queue.pop() {
            let id = id as usize;
            for &(p, _) in &member[start[id] as usize..start[id + 1] as usize] {
                let p = p as usize;
                if suppressed[p] {
                    continue;
                }
                suppressed[p] = true;
                for j in off[p] as usize..off[p + 1] as usize {
                    let q = ids[j] as usize;
                    count[q] -= 1;
                    for d in diversity.iter_mut() {
                        let h = &mut d.held[d.pair[position[j] as usize] as usize];
                        *h -= 1;
                        if *h == 0 {
                            d.distinct[q] -= 1;
                        }
                    }
                    if !failing[q] && fails(q, &count, &diversity) {
                        failing[q] = true;
                        queue.push(q as u32);
                    }
                }
            }
        }
        let n_suppressed = suppressed.iter().filter(|&&s| s).count();
        let dim_loss: Vec<f64> = self
            .dims
            .iter()
            .enumerate()
            .map(|(d, dim)| {
                let codes = &dim.codes[node[d] as usize];
                let loss = &dim.loss[node[d] as usize];
                let (mut sum, mut n) = (0.0, 0usize);
                match dim.owner {
                    Owner::Person => {
                        for (p, &c) in codes.iter().enumerate() {
                            sum += if suppressed[p] { 1.0 } else { loss[c as usize] };
                            n += 1;
                        }
                    }
                    Owner::Table(t) => {
                        for (i, &c) in codes.iter().enumerate() {
                            let p = self.record_person[t][i] as usize;
                            sum += if suppressed[p] { 1.0 } else { loss[c as usize] };
                            n += 1;
                        }
                    }
                }
                if n == 0 { 0.0 } else { sum / n as f64 }
            })
            .collect();
        let wsum: f64 = self.dims.iter().map(|d| d.weight).sum();
        let loss = if wsum > 0.0 {
            self.dims
                .iter()
                .zip(&dim_loss)
                .map(|(d, l)| d.weight * l)
                .sum::<f64>()
                / wsum
        } else {
            0.0
        };
        Eval {
            suppressed,
            n_suppressed,
            pressure,
            loss,
            dim_loss,
        }
    }

    fn low_cardinality(&self, s: usize) -> bool {
        let distinct = self.sensitive[s]
            .1
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m + 1);
        distinct <= 12
    }

    /// The smallest class each person is in at `node`, among the persons not suppressed
    /// (0 for a suppressed person): their re-identification risk is its inverse.
    pub fn smallest_class(&self, node: &[u8], suppressed: &[bool]) -> Vec<u32> {
        let pc = self.classes(Owner::Person, node, self.persons);
        let rc = self.record_classes(node);
        let mut keys: Vec<Vec<Key>> = vec![Vec::new(); self.persons];
        let mut buf = Vec::new();
        let mut count: FxHashMap<Key, u32> = FxHashMap::default();
        for p in (0..self.persons).filter(|&p| !suppressed[p]) {
            self.keys_of(p, pc[p], &rc, &mut buf);
            for k in &buf {
                *count.entry(*k).or_default() += 1;
            }
            keys[p] = buf.clone();
        }
        keys.iter()
            .enumerate()
            .map(|(p, ks)| {
                if suppressed[p] {
                    0
                } else {
                    ks.iter().map(|k| count[k]).min().unwrap_or(0)
                }
            })
            .collect()
    }

    /// The next more detailed level of `d` below `level` that splits some class (the
    /// levels in between release nothing more), if any.
    fn down(&self, d: usize, level: u8) -> Option<u8> {
        let dist = &self.distinct[d];
        (0..level)
            .rev()
            .find(|&l| dist[l as usize] > dist[level as usize])
    }

    /// The next coarser level of `d` above `level` that merges some classes, if any.
    fn up(&self, d: usize, level: u8) -> Option<u8> {
        let dist = &self.distinct[d];
        (level + 1..dist.len() as u8).find(|&l| dist[l as usize] < dist[level as usize])
    }

    /// The most detailed level releasing the same partition as `level` (its labels say
    /// more at no cost: `0-8` rather than `*`).
    fn settle(&self, d: usize, level: u8) -> u8 {
        let dist = &self.distinct[d];
        let mut l = level;
        while l > 0 && dist[l as usize - 1] == dist[level as usize] {
            l -= 1;
        }
        l
    }

    /// The most general node: every column at its top level.
    pub fn top(&self) -> Vec<u8> {
        self.dims.iter().map(|d| (d.height() - 1) as u8).collect()
    }

    /// Greedy top-down specialisation (see the module's documentation), then local
    /// trades. Returns the node, its evaluation (every sensitive attribute checked) and
    /// the nodes evaluated.
    pub fn search(&self, progress: &dyn Fn(usize, f64)) -> Result<(Vec<u8>, Eval, usize)> {
        // Two starts: by gain per slack spent, and column by column in order of weight
        // (what the study values most, as detailed as it can be, then the next); each is
        // improved by trades, and the release with less loss is kept.
        // On large data one start only: the column-by-column one, which gave the lower
        // loss on every release tried (see `benches/RESULTS.md`), at half the cost.
        if self.large() {
            return self.search_from(true, progress);
        }
        let (a, ea, na) = self.search_from(false, progress)?;
        let (b, eb, nb) = self.search_from(true, progress)?;
        Ok(if eb.loss < ea.loss {
            (b, eb, na + nb)
        } else {
            (a, ea, na + nb)
        })
    }

    fn search_from(
        &self,
        by_weight: bool,
        progress: &dyn Fn(usize, f64),
    ) -> Result<(Vec<u8>, Eval, usize)> {
        let mut node: Vec<u8> = self
            .top()
            .iter()
            .enumerate()
            .map(|(d, &l)| self.settle(d, l))
            .collect();
        let mut current = self.evaluate(&node, true);
        let mut evaluated = 1;
        if current.n_suppressed > self.budget {
            return Err(Error::NoSolution(format!(
                "even with every column fully generalised, {} of {} persons would have to be \
                 suppressed (at most {} allowed): raise max_suppression, lower k, l or m, or \
                 release fewer columns",
                current.n_suppressed, self.persons, self.budget
            )));
        }
        let cheap_differs = (0..self.sensitive.len()).any(|s| !self.low_cardinality(s));
        // A candidate, fully checked when the cheap evaluation skipped attributes.
        let confirm = |n: &[u8], e: Eval, evaluated: &mut usize| -> Eval {
            if cheap_differs {
                *evaluated += 1;
                self.evaluate(n, true)
            } else {
                e
            }
        };
        let mut frozen = vec![false; self.dims.len()];
        if by_weight {
            let mut order: Vec<usize> = (0..self.dims.len()).collect();
            order.sort_by(|&a, &b| {
                self.dims[b]
                    .weight
                    .total_cmp(&self.dims[a].weight)
                    .then(
                        (self.dims[a].owner != Owner::Person)
                            .cmp(&(self.dims[b].owner != Owner::Person)),
                    )
                    .then(a.cmp(&b))
            });
            // Round robin: one level per column per round, heaviest first, so no column
            // takes all the slack before the next has had a level.
            let mut stuck = vec![false; self.dims.len()];
            while !stuck.iter().all(|&s| s) {
                for &d in &order {
                    if stuck[d] {
                        continue;
                    }
                    let Some(to) = self.down(d, node[d]) else {
                        stuck[d] = true;
                        continue;
                    };
                    let mut n = node.clone();
                    n[d] = self.settle(d, to);
                    evaluated += 1;
                    let e = self.evaluate(&n, true);
                    if e.n_suppressed > self.budget || e.loss > current.loss + 1e-12 {
                        stuck[d] = true;
                        continue;
                    }
                    node = n;
                    current = e;
                    progress(evaluated, current.loss);
                }
            }
        }
        loop {
            let cands: Vec<(usize, Vec<u8>)> = (0..self.dims.len())
                .filter(|&d| !frozen[d])
                .filter_map(|d| {
                    let to = self.down(d, node[d])?;
                    let mut n = node.clone();
                    n[d] = self.settle(d, to);
                    Some((d, n))
                })
                .collect();
            if cands.is_empty() {
                break;
            }
            let evals: Vec<(usize, Vec<u8>, Eval)> = cands
                .into_par_iter()
                .map(|(d, n)| {
                    let e = self.evaluate(&n, false);
                    (d, n, e)
                })
                .collect();
            evaluated += evals.len();
            // Best gain per person brought near the threshold: the slack before suppression
            // is what every later step needs, so the cheap gains in it come first.
            let score = |e: &Eval| {
                let gain = current.loss - e.loss;
                let cost = e.pressure.saturating_sub(current.pressure) as f64
                    + self.persons as f64
                        * (e.n_suppressed.saturating_sub(current.n_suppressed)) as f64
                        / (self.budget.max(1) as f64);
                gain / (1.0 + cost)
            };
            let mut feasible: Vec<(usize, Vec<u8>, Eval)> = Vec::new();
            for (d, n, e) in evals {
                if e.n_suppressed > self.budget {
                    frozen[d] = true;
                } else if e.loss <= current.loss + 1e-12 {
                    feasible.push((d, n, e));
                }
            }
            feasible.sort_by(|a, b| score(&b.2).total_cmp(&score(&a.2)).then(a.0.cmp(&b.0)));
            let mut chosen = None;
            for (d, n, e) in feasible {
                let full = confirm(&n, e, &mut evaluated);
                if full.n_suppressed <= self.budget && full.loss <= current.loss + 1e-12 {
                    chosen = Some((n, full));
                    break;
                }
                frozen[d] = true;
            }
            match chosen {
                Some((n, e)) => {
                    node = n;
                    current = e;
                    progress(evaluated, current.loss);
                }
                None => break,
            }
        }
        // Local improvement: coarsen one column to refine another, while that lowers the
        // loss within the budget (the greedy pass cannot undo an early step that later
        // blocks a more valuable one); then refine whatever became admissible.
        for _ in 0..self.max_swaps() {
            let mut moves: Vec<Vec<u8>> = Vec::new();
            for up in 0..self.dims.len() {
                let Some(u) = self.up(up, node[up]) else {
                    continue;
                };
                for down in 0..self.dims.len() {
                    if down == up {
                        continue;
                    }
                    if let Some(l) = self.down(down, node[down]) {
                        let mut n = node.clone();
                        n[up] = self.settle(up, u);
                        n[down] = self.settle(down, l);
                        moves.push(n);
                    }
                }
            }
            let evals: Vec<(Vec<u8>, Eval)> = moves
                .into_par_iter()
                .map(|n| {
                    let e = self.evaluate(&n, false);
                    (n, e)
                })
                .collect();
            evaluated += evals.len();
            let mut better: Vec<(Vec<u8>, Eval)> = evals
                .into_iter()
                .filter(|(_, e)| e.n_suppressed <= self.budget && e.loss < current.loss - 1e-9)
                .collect();
            better.sort_by(|a, b| a.1.loss.total_cmp(&b.1.loss).then(a.0.cmp(&b.0)));
            let mut taken = false;
            for (n, e) in better {
                let full = confirm(&n, e, &mut evaluated);
                if full.n_suppressed <= self.budget && full.loss < current.loss - 1e-9 {
                    node = n;
                    current = full;
                    progress(evaluated, current.loss);
                    taken = true;
                    break;
                }
            }
            if !taken {
                break;
            }
            loop {
                let steps: Vec<(Vec<u8>, Eval)> = (0..self.dims.len())
                    .filter_map(|d| {
                        let to = self.down(d, node[d])?;
                        let mut n = node.clone();
                        n[d] = self.settle(d, to);
                        Some(n)
                    })
                    .collect::<Vec<_>>()
                    .into_par_iter()
                    .map(|n| {
                        let e = self.evaluate(&n, true);
                        (n, e)
                    })
                    .collect();
                evaluated += steps.len();
                let best = steps
                    .into_iter()
                    .filter(|(_, e)| e.n_suppressed <= self.budget && e.loss < current.loss - 1e-9)
                    .min_by(|a, b| a.1.loss.total_cmp(&b.1.loss));
                match best {
                    Some((n, e)) => {
                        node = n;
                        current = e;
                    }
                    None => break,
                }
            }
        }
        // Repairs: give one valuable column a more detailed level, then coarsen others,
        // each time the one that frees most suppression per loss added, until the budget
        // holds again; keep it if the loss fell. This reaches nodes two trades away.
        let mut order: Vec<usize> = (0..self.dims.len()).collect();
        order.sort_by(|&a, &b| {
            self.dims[b]
                .weight
                .total_cmp(&self.dims[a].weight)
                .then(a.cmp(&b))
        });
        let mut attempts = 0;
        'outer: while attempts < self.max_repairs() {
            for &d in &order {
                let Some(to) = self.down(d, node[d]) else {
                    continue;
                };
                attempts += 1;
                let mut n = node.clone();
                n[d] = self.settle(d, to);
                let mut e = self.evaluate(&n, false);
                evaluated += 1;
                let mut steps = 0;
                while e.n_suppressed > self.budget && steps < 6 {
                    steps += 1;
                    let ups: Vec<(Vec<u8>, Eval)> = (0..self.dims.len())
                        .filter(|&u| u != d)
                        .filter_map(|u| {
                            let l = self.up(u, n[u])?;
                            let mut m = n.clone();
                            m[u] = self.settle(u, l);
                            Some(m)
                        })
                        .collect::<Vec<_>>()
                        .into_par_iter()
                        .map(|m| {
                            let x = self.evaluate(&m, false);
                            (m, x)
                        })
                        .collect();
                    evaluated += ups.len();
                    let freed = |x: &Eval| e.n_suppressed.saturating_sub(x.n_suppressed) as f64;
                    let Some(best) = ups
                        .into_iter()
                        .filter(|(_, x)| x.n_suppressed < e.n_suppressed)
                        .max_by(|a, b| {
                            let ra = freed(&a.1) / (1e-6 + (a.1.loss - e.loss).max(0.0));
                            let rb = freed(&b.1) / (1e-6 + (b.1.loss - e.loss).max(0.0));
                            ra.total_cmp(&rb)
                        })
                    else {
                        break;
                    };
                    n = best.0;
                    e = best.1;
                }
                if e.n_suppressed <= self.budget && e.loss < current.loss - 1e-9 {
                    let full = confirm(&n, e, &mut evaluated);
                    if full.n_suppressed <= self.budget && full.loss < current.loss - 1e-9 {
                        node = n;
                        current = full;
                        progress(evaluated, current.loss);
                        continue 'outer;
                    }
                }
                if attempts >= self.max_repairs() {
                    break 'outer;
                }
            }
            break;
        }
        Ok((node, current, evaluated))
    }

    /// Above this many persons an evaluation takes a large fraction of a second, and the
    /// search is shortened: one start, fewer trades and repairs.
    pub fn large(&self) -> bool {
        self.persons > 200_000
    }

    /// Repair attempts: each may evaluate every column a few times.
    fn max_repairs(&self) -> usize {
        if self.large() { 8 } else { 60 }
    }

    /// Passes of local improvement: each evaluates every pair of columns, so fewer on
    /// large data.
    fn max_swaps(&self) -> usize {
        if self.large() { 3 } else { 12 }
    }
}

/// One sensitive attribute's values within the classes of a node.
struct Diversity {
    /// Pair (class, value) at each position of the entries sorted by class.
    pair: Vec<u32>,
    /// Persons not suppressed holding each pair.
    held: Vec<u32>,
    /// Values held in each class.
    distinct: Vec<u32>,
}

/// Renumbers `key` densely (0, 1, ... in order of first appearance); returns how many
/// distinct values there are. Small key ranges use an array, large ones a hash map.
fn densify(key: &mut [u64]) -> u64 {
    let max = key.iter().copied().max().unwrap_or(0);
    if max < 4 * key.len() as u64 + 1024 {
        let mut id = vec![u32::MAX; max as usize + 1];
        let mut next = 0u32;
        for k in key.iter_mut() {
            let slot = &mut id[*k as usize];
            if *slot == u32::MAX {
                *slot = next;
                next += 1;
            }
            *k = u64::from(*slot);
        }
        u64::from(next)
    } else {
        let mut ids: FxHashMap<u64, u32> = FxHashMap::default();
        for k in key.iter_mut() {
            let next = ids.len() as u32;
            *k = u64::from(*ids.entry(*k).or_insert(next));
        }
        ids.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::Builtin;

    fn dim(name: &str, owner: Owner, kind: &str, values: &[&str]) -> Dim {
        let mut distinct: Vec<&str> = values.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let h = kind
            .parse::<Builtin>()
            .unwrap()
            .build(name, &distinct)
            .unwrap();
        Dim::new(name, owner, h, values, 1.0).unwrap()
    }

    /// Six persons; two records each for some. Every class of a released node must have
    /// k persons, with one record known.
    #[test]
    fn one_known_record_needs_k_persons_per_record_class() {
        let ages = ["30", "31", "32", "33", "34", "36"];
        let sectors = ["47.11", "47.19", "47.11", "10.1", "10.1", "10.2"];
        let owner_of = [0u32, 1, 2, 3, 4, 5];
        let dims = vec![
            dim("age", Owner::Person, "age", &ages),
            dim("sector", Owner::Table(0), "ateco", &sectors),
        ];
        let p = Problem::new(6, dims, vec![owner_of.to_vec()], vec![], 3, 1, None, 0).unwrap();
        let (node, e, _) = p.search(&|_, _| {}).unwrap();
        assert_eq!(e.n_suppressed, 0);
        // Ages 30–34 and 36 fall in two 5-year bands (5 and 1 persons): the age must go to
        // 10-year bands at least; sectors may stay at the division (47: 3, 10: 3).
        assert!(node[0] >= 2, "{node:?}");
        assert!(node[1] <= 1, "{node:?}");
        let smallest = p.smallest_class(&node, &e.suppressed);
        assert!(smallest.iter().all(|&n| n >= 3), "{smallest:?}");
    }

    #[test]
    fn a_class_too_small_is_suppressed_within_the_budget_and_not_beyond() {
        let sex = ["M", "M", "M", "F"];
        let dims = vec![dim("sex", Owner::Person, "flat", &sex)];
        let ok = Problem::new(4, dims.clone(), vec![], vec![], 3, 1, None, 1).unwrap();
        let (node, e, _) = ok.search(&|_, _| {}).unwrap();
        assert_eq!((node[0], e.n_suppressed), (0, 1));
        let strict = Problem::new(4, dims, vec![], vec![], 3, 1, None, 0).unwrap();
        let (node, e, _) = strict.search(&|_, _| {}).unwrap();
        assert_eq!((node[0], e.n_suppressed), (1, 0));
    }

    #[test]
    fn l_diversity_holds_in_record_classes_too() {
        // Three persons share a record class; all three have the same sensitive value.
        let sex = ["M", "M", "M", "M", "M", "M"];
        let svc = ["A.5", "A.5", "A.5", "A.4", "A.4", "A.4"];
        let flag = vec!["1", "1", "1", "0", "1", "0"];
        let dims = vec![
            dim("sex", Owner::Person, "flat", &sex),
            dim("code", Owner::Table(0), "service", &svc),
        ];
        let p = Problem::new(
            6,
            dims,
            vec![vec![0, 1, 2, 3, 4, 5]],
            vec![("flag".into(), flag)],
            3,
            1,
            Some(2),
            0,
        )
        .unwrap();
        let (node, e, _) = p.search(&|_, _| {}).unwrap();
        assert_eq!(e.n_suppressed, 0);
        assert_eq!(node[1], 1, "A.5 alone would reveal the flag");
    }
}
