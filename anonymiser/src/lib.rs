//! # occupa-anonymiser
//!
//! What leaves the store leaves through here.
//!
//! * Tables for reports: the threshold rule with primary and secondary suppression on
//!   one- and two-way tables with margins ([`protect`]), so that no hidden cell can be
//!   recovered exactly from the published totals ([`audit`] computes what an attacker can
//!   derive), with a pattern kept from one quarter to the next ([`protect_consistent`]).
//! * Microdata releases: the optimal full-domain generalisation for k-anonymity,
//!   l-diversity or t-closeness with record and value suppression ([`search`]), ARX's
//!   utility metrics ([`metric`]), re-identification risk ([`risk`]) and the
//!   `anonymise-table` job on CSV files ([`csvtable`]).
//!
//! ```
//! use occupa_anonymiser::{CountTable, MinCount, protect};
//!
//! let t = CountTable::new(
//!     vec!["Torino".into(), "Cuneo".into()],
//!     vec!["M".into(), "F".into()],
//!     vec![vec![120, 3], vec![40, 51]],
//! )?;
//! let p = protect(&t, MinCount::new(5)?);
//! // The 3 is below the threshold; its row and column partners are hidden too, or the
//! // 3 could be recovered as total − partner.
//! assert!(p.cell(0, 1).is_suppressed());
//! assert_eq!(p.suppressed_count(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::Serialize;

pub mod audit;
pub mod builtin;
pub mod csvtable;
pub mod hierarchy;
pub mod lattice;
pub mod metric;
pub mod microdata;
pub mod privacy;
pub mod publication;
pub mod release;
pub mod risk;
pub mod search;

/// Errors of the anonymiser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter outside its domain.
    #[error("invalid parameter {name}: {reason}")]
    Param {
        /// Which.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A generalisation hierarchy that is malformed or lacks a value.
    #[error("hierarchy of column {column}: {reason}")]
    Hierarchy {
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// No generalisation satisfies the privacy model within the suppression limit.
    #[error("no release possible: {0}")]
    NoSolution(String),
    /// Unreadable or malformed input.
    #[error("{0}")]
    Input(String),
    /// The release would exceed the risk policy; nothing was written.
    #[error("release refused, nothing written: {0}")]
    Policy(String),
    /// A table whose shape does not match its labels.
    #[error("table shape: {0}")]
    Shape(String),
}

/// Result with the anonymiser's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The smallest count that may be published (the threshold rule). At least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinCount(u64);

impl MinCount {
    /// Checks the value.
    pub fn new(n: u64) -> Result<Self> {
        if n == 0 {
            return Err(Error::Param {
                name: "min_count",
                reason: "must be at least 1".into(),
            });
        }
        Ok(MinCount(n))
    }
    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl Default for MinCount {
    /// The threshold of DESIGN.md: 5.
    fn default() -> Self {
        MinCount(5)
    }
}

/// A table of counts without margins; margins are computed, never trusted from input.
#[derive(Debug, Clone, PartialEq)]
pub struct CountTable {
    rows: Vec<String>,
    cols: Vec<String>,
    cells: Vec<Vec<u64>>,
}

impl CountTable {
    /// Checks that `cells` is `rows.len() × cols.len()`.
    pub fn new(rows: Vec<String>, cols: Vec<String>, cells: Vec<Vec<u64>>) -> Result<Self> {
        if cells.len() != rows.len() || cells.iter().any(|r| r.len() != cols.len()) {
            return Err(Error::Shape(format!(
                "{} row labels and {} column labels for a {}-row table",
                rows.len(),
                cols.len(),
                cells.len()
            )));
        }
        if cols.is_empty() {
            return Err(Error::Shape("a table needs at least one column".into()));
        }
        Ok(CountTable { rows, cols, cells })
    }

    /// A one-way table (a single column of counts).
    pub fn one_way(rows: Vec<String>, col: String, counts: Vec<u64>) -> Result<Self> {
        let cells = counts.into_iter().map(|c| vec![c]).collect();
        CountTable::new(rows, vec![col], cells)
    }
}

/// Status of a published cell, with tau-argus's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "value")]
pub enum Cell {
    /// Safe: published.
    Safe(u64),
    /// Primary suppression: below the threshold.
    Primary,
    /// Secondary suppression: hidden so that a primary cell cannot be recovered.
    Secondary,
}

impl Cell {
    /// Whether the value is hidden.
    pub fn is_suppressed(&self) -> bool {
        !matches!(self, Cell::Safe(_))
    }
    /// A rate `num / den`, published only if both are: a rate over a hidden count
    /// would give the count away.
    pub fn rate(num: Cell, den: Cell) -> Option<f64> {
        match (num.value(), den.value()) {
            (Some(n), Some(d)) if d > 0 => Some(n as f64 / d as f64),
            _ => None,
        }
    }

    /// The value, if published.
    pub fn value(&self) -> Option<u64> {
        if let Cell::Safe(v) = self {
            Some(*v)
        } else {
            None
        }
    }
}

/// A protected table: interior cells, row totals, column totals and the grand total.
#[derive(Debug, Clone, Serialize)]
pub struct ProtectedTable {
    /// Row labels.
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// Interior cells.
    pub cells: Vec<Vec<Cell>>,
    /// Row totals.
    pub row_totals: Vec<Cell>,
    /// Column totals.
    pub col_totals: Vec<Cell>,
    /// Grand total.
    pub total: Cell,
    /// The threshold applied.
    pub min_count: MinCount,
}

impl ProtectedTable {
    /// An interior cell.
    pub fn cell(&self, r: usize, c: usize) -> Cell {
        self.cells[r][c]
    }
    /// A cell of the grid with margins: `r == rows.len()` is the total row, `c ==
    /// cols.len()` the total column.
    pub fn grid_cell(&self, r: usize, c: usize) -> Cell {
        match (r == self.rows.len(), c == self.cols.len()) {
            (false, false) => self.cells[r][c],
            (false, true) => self.row_totals[r],
            (true, false) => self.col_totals[c],
            (true, true) => self.total,
        }
    }

    /// How many cells (interior and margins) are hidden.
    pub fn suppressed_count(&self) -> usize {
        self.cells
            .iter()
            .flatten()
            .chain(&self.row_totals)
            .chain(&self.col_totals)
            .chain(std::iter::once(&self.total))
            .filter(|c| c.is_suppressed())
            .count()
    }
}

/// Status of each value after [`protect_lines`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Published.
    Safe,
    /// Below the threshold.
    Primary,
    /// Hidden to protect a primary cell.
    Secondary,
}

/// The general mechanism: `values` linked by `lines`, each a set of values any one of
/// which is determined by the others (a row with its total; stock, inflow, outflow and
/// end stock). Applies the threshold rule (0 < n < min is primary; zeros are published,
/// as empty cells disclose nothing about an individual), then, while some line has exactly
/// one hidden value, hides the smallest published non-zero value of that line, preferring
/// non-margin values, since a lone hidden value equals the line's relation solved for it.
/// Choosing the smallest keeps the information loss low, as tau-argus's heuristics do.
pub fn protect_lines(
    values: &[u64],
    lines: &[Vec<usize>],
    is_margin: &[bool],
    min: MinCount,
) -> Vec<Status> {
    let mut status: Vec<Status> = values
        .iter()
        .map(|&v| {
            if v > 0 && v < min.get() {
                Status::Primary
            } else {
                Status::Safe
            }
        })
        .collect();
    loop {
        let mut changed = false;
        for line in lines {
            if line.iter().filter(|&&i| status[i] != Status::Safe).count() != 1 {
                continue;
            }
            let pick = line
                .iter()
                .copied()
                .filter(|&i| status[i] == Status::Safe && values[i] > 0)
                .min_by_key(|&i| (is_margin.get(i).copied().unwrap_or(false) as u8, values[i]));
            if let Some(i) = pick {
                status[i] = Status::Secondary;
                changed = true;
            }
        }
        if !changed {
            return status;
        }
    }
}

/// Protects a one- or two-way table with its margins, so that no hidden cell can be
/// recovered exactly from what is published.
///
/// A table with margins is a circulation: rows, the total row, columns and the total
/// column are nodes; an interior cell is a flow from its row to its column, a row total
/// from the total column to its row, a column total from its column to the total row, the
/// grand total from the total row to the total column. The published cells fix some
/// flows; a hidden cell's value can move only if flow can be pushed round a cycle of
/// hidden cells through it. So a hidden cell is exactly recoverable if and only if it is
/// a bridge of the graph of hidden cells (all hidden values are positive, so a cycle moves
/// them in one direction or the other). Primary cells are `0 < n < min`; then, while
/// some hidden cell is a bridge, the cheapest cycle through it is hidden too: the
/// shortest path between its ends over the other cells, a cell costing its value (what
/// Tau-Argus's optimal suppression minimises), hidden cells nothing.
pub fn protect(table: &CountTable, min: MinCount) -> ProtectedTable {
    protect_consistent(table, min, None)
}

/// [`protect`], preferring as secondary suppressions the cells (by row and column label)
/// that `previous` hid, so that the same table next quarter keeps the same pattern and
/// the two releases cannot be differenced against each other.
pub fn protect_consistent(
    table: &CountTable,
    min: MinCount,
    previous: Option<&ProtectedTable>,
) -> ProtectedTable {
    let (nr, nc) = (table.rows.len(), table.cols.len());
    let w = nc + 1;
    let mut v = vec![0u64; (nr + 1) * w];
    for r in 0..nr {
        for c in 0..nc {
            let x = table.cells[r][c];
            v[r * w + c] = x;
            v[r * w + nc] += x;
            v[nr * w + c] += x;
            v[nr * w + nc] += x;
        }
    }
    let mut status: Vec<Status> = v
        .iter()
        .map(|&x| {
            if x > 0 && x < min.get() {
                Status::Primary
            } else {
                Status::Safe
            }
        })
        .collect();
    // Cells the previous release hid, by label.
    let was_hidden: Vec<bool> = match previous {
        None => vec![false; v.len()],
        Some(p) => {
            let prev_r = |r: usize| {
                if r == nr {
                    Some(p.rows.len())
                } else {
                    p.rows.iter().position(|x| *x == table.rows[r])
                }
            };
            let prev_c = |c: usize| {
                if c == nc {
                    Some(p.cols.len())
                } else {
                    p.cols.iter().position(|x| *x == table.cols[c])
                }
            };
            (0..v.len())
                .map(|i| match (prev_r(i / w), prev_c(i % w)) {
                    (Some(r), Some(c)) => p.grid_cell(r, c).is_suppressed(),
                    _ => false,
                })
                .collect()
        }
    };
    let graph = Circulation::new(nr, nc);
    while let Some(e) =
        (0..v.len()).find(|&e| status[e] != Status::Safe && graph.is_bridge(e, &status))
    {
        // Published cells cost their value; zeros (no one to protect, but a cycle
        // through them still moves) only as a last resort; cells hidden last quarter
        // next to nothing, so the pattern stays.
        let cost = |f: usize| -> u64 {
            if status[f] != Status::Safe {
                0
            } else if was_hidden[f] && v[f] > 0 {
                1
            } else if v[f] == 0 {
                1 << 40
            } else {
                2 * v[f] + 2
            }
        };
        match graph.cheapest_path(e, cost) {
            Some(path) => {
                for f in path {
                    if status[f] == Status::Safe {
                        status[f] = Status::Secondary;
                    }
                }
            }
            None => {
                // No cycle exists (a table of one cell): hide everything.
                for (f, st) in status.iter_mut().enumerate() {
                    if *st == Status::Safe && v[f] > 0 {
                        *st = Status::Secondary;
                    }
                }
                break;
            }
        }
    }
    let cell = |r: usize, c: usize| match status[r * w + c] {
        Status::Safe => Cell::Safe(v[r * w + c]),
        Status::Primary => Cell::Primary,
        Status::Secondary => Cell::Secondary,
    };
    ProtectedTable {
        rows: table.rows.clone(),
        cols: table.cols.clone(),
        cells: (0..nr)
            .map(|r| (0..nc).map(|c| cell(r, c)).collect())
            .collect(),
        row_totals: (0..nr).map(|r| cell(r, nc)).collect(),
        col_totals: (0..nc).map(|c| cell(nr, c)).collect(),
        total: cell(nr, nc),
        min_count: min,
    }
}

/// The graph of a table with margins (see [`protect`]): grid index `r * (nc + 1) + c`,
/// `r == nr` the total row and `c == nc` the total column.
pub(crate) struct Circulation {
    nr: usize,
    nc: usize,
}

impl Circulation {
    pub(crate) fn new(nr: usize, nc: usize) -> Self {
        Circulation { nr, nc }
    }

    pub(crate) fn cells(&self) -> usize {
        (self.nr + 1) * (self.nc + 1)
    }

    pub(crate) fn nodes(&self) -> usize {
        self.nr + self.nc + 2
    }

    /// (tail, head) of cell `e`: row nodes `0..=nr`, column nodes after them.
    pub(crate) fn ends(&self, e: usize) -> (usize, usize) {
        let (r, c) = (e / (self.nc + 1), e % (self.nc + 1));
        let (row, col) = (r, self.nr + 1 + c);
        if (r == self.nr) != (c == self.nc) {
            (col, row)
        } else {
            (row, col)
        }
    }

    /// Whether hidden cell `e` is on no cycle of hidden cells.
    fn is_bridge(&self, e: usize, status: &[Status]) -> bool {
        let (a, b) = self.ends(e);
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); self.nodes()];
        for f in (0..self.cells()).filter(|&f| f != e && status[f] != Status::Safe) {
            let (x, y) = self.ends(f);
            adj[x].push(y);
            adj[y].push(x);
        }
        let mut seen = vec![false; self.nodes()];
        let mut stack = vec![a];
        seen[a] = true;
        while let Some(x) = stack.pop() {
            if x == b {
                return false;
            }
            for &y in &adj[x] {
                if !seen[y] {
                    seen[y] = true;
                    stack.push(y);
                }
            }
        }
        true
    }

    /// The cells of the cheapest path between the ends of `e` that avoids `e` (Dijkstra).
    fn cheapest_path(&self, e: usize, cost: impl Fn(usize) -> u64) -> Option<Vec<usize>> {
        let (a, b) = self.ends(e);
        let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.nodes()];
        for f in (0..self.cells()).filter(|&f| f != e) {
            let (x, y) = self.ends(f);
            adj[x].push((y, f));
            adj[y].push((x, f));
        }
        let mut dist = vec![u64::MAX; self.nodes()];
        let mut via: Vec<Option<(usize, usize)>> = vec![None; self.nodes()];
        let mut heap = std::collections::BinaryHeap::new();
        dist[a] = 0;
        heap.push(std::cmp::Reverse((0u64, a)));
        while let Some(std::cmp::Reverse((d, x))) = heap.pop() {
            if d > dist[x] {
                continue;
            }
            if x == b {
                break;
            }
            for &(y, f) in &adj[x] {
                let nd = d.saturating_add(cost(f));
                if nd < dist[y] {
                    dist[y] = nd;
                    via[y] = Some((x, f));
                    heap.push(std::cmp::Reverse((nd, y)));
                }
            }
        }
        if dist[b] == u64::MAX {
            return None;
        }
        let mut path = Vec::new();
        let mut x = b;
        while let Some((p, f)) = via[x] {
            path.push(f);
            x = p;
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grid(p: &ProtectedTable) -> Vec<Vec<Cell>> {
        let mut g: Vec<Vec<Cell>> = p
            .cells
            .iter()
            .zip(&p.row_totals)
            .map(|(r, t)| r.iter().copied().chain([*t]).collect())
            .collect();
        g.push(p.col_totals.iter().copied().chain([p.total]).collect());
        g
    }

    #[test]
    fn min_count_must_be_positive() {
        assert!(MinCount::new(0).is_err());
        assert_eq!(MinCount::default().get(), 5);
    }

    #[test]
    fn shape_is_checked() {
        assert!(CountTable::new(vec!["a".into()], vec!["x".into()], vec![vec![1, 2]]).is_err());
    }

    #[test]
    fn safe_tables_are_untouched() {
        let t = CountTable::new(
            vec!["a".into(), "b".into()],
            vec!["x".into(), "y".into()],
            vec![vec![10, 20], vec![0, 7]],
        )
        .unwrap();
        let p = protect(&t, MinCount::default());
        assert_eq!(p.suppressed_count(), 0);
        assert_eq!(p.total, Cell::Safe(37));
        assert_eq!(p.cell(1, 0), Cell::Safe(0));
    }

    #[test]
    fn one_way_table_hides_a_partner() {
        let t = CountTable::one_way(
            vec!["a".into(), "b".into(), "c".into()],
            "n".into(),
            vec![2, 50, 30],
        )
        .unwrap();
        let p = protect(&t, MinCount::default());
        assert_eq!(p.cell(0, 0), Cell::Primary);
        assert_eq!(p.cell(2, 0), Cell::Secondary, "the smallest partner");
        assert_eq!(p.cell(1, 0), Cell::Safe(50));
        assert_eq!(p.total, Cell::Safe(82));
    }

    #[test]
    fn small_margin_is_primary() {
        let t = CountTable::new(
            vec!["a".into(), "b".into()],
            vec!["x".into(), "y".into()],
            vec![vec![2, 1], vec![30, 40]],
        )
        .unwrap();
        let p = protect(&t, MinCount::default());
        assert_eq!(p.row_totals[0], Cell::Primary);
    }

    #[test]
    fn next_quarter_keeps_last_quarters_pattern() {
        let t = |cells: Vec<Vec<u64>>| {
            CountTable::new(
                vec!["a".into(), "b".into()],
                vec!["x".into(), "y".into(), "z".into()],
                cells,
            )
            .unwrap()
        };
        let hidden = |p: &ProtectedTable| -> Vec<bool> {
            p.cells.iter().flatten().map(Cell::is_suppressed).collect()
        };
        let q1 = protect(
            &t(vec![vec![2, 10, 11], vec![30, 40, 50]]),
            MinCount::default(),
        );
        // The 2 is protected by the cheapest cycle, through y (10 + 30 + 40 < 11 + 30 + 50).
        assert_eq!(hidden(&q1), [true, true, false, true, true, false]);
        // Next quarter the cycle through z is cheaper (11 + 30 + 50 < 10 + 30 + 60): alone,
        // the protection would move, and differencing the two releases would expose cells.
        let q2 = t(vec![vec![2, 10, 11], vec![30, 60, 50]]);
        assert_eq!(
            hidden(&protect(&q2, MinCount::default())),
            [true, false, true, true, false, true]
        );
        let kept = protect_consistent(&q2, MinCount::default(), Some(&q1));
        assert_eq!(hidden(&kept), hidden(&q1));
        assert!(
            crate::audit::audit(&q2, &kept)
                .iter()
                .all(|i| !i.is_exact())
        );
    }

    #[test]
    fn rates_over_hidden_counts_are_hidden() {
        assert_eq!(Cell::rate(Cell::Safe(5), Cell::Safe(20)), Some(0.25));
        assert_eq!(Cell::rate(Cell::Primary, Cell::Safe(20)), None);
        assert_eq!(Cell::rate(Cell::Safe(5), Cell::Secondary), None);
        assert_eq!(Cell::rate(Cell::Safe(0), Cell::Safe(0)), None);
    }

    proptest! {
        // No published value lies strictly between 0 and the threshold, and no line of the
        // table has exactly one hidden cell (which would be total minus the others).
        #[test]
        fn no_small_cell_and_no_lonely_suppression(
            cells in proptest::collection::vec(proptest::collection::vec(0u64..30, 1..5), 1..6),
            min in 1u64..8,
        ) {
            let nc = cells[0].len();
            let cells: Vec<Vec<u64>> = cells.into_iter().map(|mut r| { r.resize(nc, 0); r }).collect();
            let t = CountTable::new((0..cells.len()).map(|i| i.to_string()).collect(), (0..nc).map(|i| i.to_string()).collect(), cells).unwrap();
            let p = protect(&t, MinCount::new(min).unwrap());
            let g = grid(&p);
            for row in &g {
                for c in row {
                    if let Cell::Safe(v) = c { prop_assert!(*v == 0 || *v >= min); }
                }
                prop_assert!(row.iter().filter(|c| c.is_suppressed()).count() != 1);
            }
            for c in 0..g[0].len() {
                let hidden = g.iter().filter(|r| r[c].is_suppressed()).count();
                prop_assert!(hidden != 1);
            }
        }
    }
}
