//! # occupa-anonymiser
//!
//! What leaves the store leaves through here. This crate holds the protection of
//! published tables: the threshold rule with primary and secondary suppression on one-
//! and two-way tables with margins, so that no hidden cell can be recovered exactly from
//! the published totals of its row or column.
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

pub mod csvtable;
pub mod hierarchy;
pub mod lattice;
pub mod metric;
pub mod microdata;
pub mod privacy;
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

/// Protects a one- or two-way table with its margins (see [`protect_lines`]): every row
/// with its total and every column with its total is a line. A one-column table's row
/// totals are its cells, so only the column line is used.
pub fn protect(table: &CountTable, min: MinCount) -> ProtectedTable {
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
    let margin: Vec<bool> = (0..v.len()).map(|i| i / w == nr || i % w == nc).collect();
    let mut lines: Vec<Vec<usize>> = Vec::new();
    if nc > 1 {
        for r in 0..=nr {
            lines.push((0..=nc).map(|c| r * w + c).collect());
        }
    }
    for c in 0..=nc {
        if nc == 1 && c == nc {
            continue;
        }
        lines.push((0..=nr).map(|r| r * w + c).collect());
    }
    let mut status = protect_lines(&v, &lines, &margin, min);
    if nc == 1 {
        // The total column mirrors the single column.
        for r in 0..=nr {
            status[r * w + 1] = status[r * w];
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
