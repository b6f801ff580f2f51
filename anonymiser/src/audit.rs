//! The attacker's view of a protected table: for each hidden cell, the smallest and
//! largest values consistent with everything published (non-negative counts adding up
//! to the published totals), as Tau-Argus's audit computes them.
//!
//! On the circulation of [`crate::protect`], raising hidden cell `e` by δ means pushing
//! δ from its head back to its tail through the other hidden cells: forward without limit,
//! backward by at most their value. So the bounds are maximum flows in that residual
//! network: `upper = a + maxflow(head → tail)`, `lower = a − maxflow(tail → head)` (at most
//! `a`), both without `e` itself. The true values are a feasible point, which is why the
//! audit needs the table as well as its protection.

use serde::Serialize;

use crate::{Circulation, CountTable, ProtectedTable};

/// The range an attacker can derive for one hidden cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CellInterval {
    /// Row (`rows.len()` for the total row).
    pub row: usize,
    /// Column (`cols.len()` for the total column).
    pub col: usize,
    /// The true value.
    pub value: u64,
    /// Smallest feasible value.
    pub lower: u64,
    /// Largest feasible value; `None` if unbounded.
    pub upper: Option<u64>,
}

impl CellInterval {
    /// Whether the published figures give the value away.
    pub fn is_exact(&self) -> bool {
        self.upper == Some(self.lower)
    }
}

const INF: u64 = u64::MAX / 4;

/// Bounds of every hidden cell of `protected`, the protection of `table`.
pub fn audit(table: &CountTable, protected: &ProtectedTable) -> Vec<CellInterval> {
    let (nr, nc) = (table.rows.len(), table.cols.len());
    let graph = Circulation::new(nr, nc);
    let w = nc + 1;
    let value = |e: usize| -> u64 {
        let (r, c) = (e / w, e % w);
        match (r == nr, c == nc) {
            (false, false) => table.cells[r][c],
            (false, true) => table.cells[r].iter().sum(),
            (true, false) => table.cells.iter().map(|row| row[c]).sum(),
            (true, true) => table.cells.iter().flatten().sum(),
        }
    };
    let hidden: Vec<usize> = (0..graph.cells())
        .filter(|&e| protected.grid_cell(e / w, e % w).is_suppressed())
        .collect();
    hidden
        .iter()
        .map(|&e| {
            let a = value(e);
            let (tail, head) = graph.ends(e);
            // Residual arcs (from, to, capacity) of the other hidden cells.
            let arcs: Vec<(usize, usize, u64)> = hidden
                .iter()
                .filter(|&&f| f != e)
                .flat_map(|&f| {
                    let (x, y) = graph.ends(f);
                    [(x, y, INF), (y, x, value(f))]
                })
                .collect();
            let up = max_flow(graph.nodes(), &arcs, head, tail);
            let down = max_flow(graph.nodes(), &arcs, tail, head).min(a);
            CellInterval {
                row: e / w,
                col: e % w,
                value: a,
                lower: a - down,
                upper: (up < INF).then(|| a + up),
            }
        })
        .collect()
}

/// Edmonds–Karp on a small graph; returns `INF` or more when unbounded.
fn max_flow(n: usize, arcs: &[(usize, usize, u64)], s: usize, t: usize) -> u64 {
    // Arc i and its reverse i ^ 1.
    let mut to = Vec::with_capacity(arcs.len() * 2);
    let mut cap = Vec::with_capacity(arcs.len() * 2);
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(x, y, c) in arcs {
        adj[x].push(to.len());
        to.push(y);
        cap.push(c);
        adj[y].push(to.len());
        to.push(x);
        cap.push(0);
    }
    let mut flow = 0u64;
    loop {
        let mut via: Vec<Option<usize>> = vec![None; n];
        let mut queue = std::collections::VecDeque::from([s]);
        let mut seen = vec![false; n];
        seen[s] = true;
        while let Some(x) = queue.pop_front() {
            for &i in &adj[x] {
                if cap[i] > 0 && !seen[to[i]] {
                    seen[to[i]] = true;
                    via[to[i]] = Some(i);
                    queue.push_back(to[i]);
                }
            }
        }
        if !seen[t] {
            return flow;
        }
        let mut push = INF;
        let mut x = t;
        while let Some(i) = via[x] {
            push = push.min(cap[i]);
            x = to[i ^ 1];
        }
        let mut x = t;
        while let Some(i) = via[x] {
            cap[i] -= push;
            cap[i ^ 1] += push;
            x = to[i ^ 1];
        }
        flow = flow.saturating_add(push);
        if flow >= INF {
            return INF;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Cell, MinCount, protect};

    fn table(cells: Vec<Vec<u64>>) -> CountTable {
        CountTable::new(
            (0..cells.len()).map(|i| format!("r{i}")).collect(),
            (0..cells[0].len()).map(|i| format!("c{i}")).collect(),
            cells,
        )
        .unwrap()
    }

    /// A protection given by hand: these interior cells hidden, margins published.
    fn hide(t: &CountTable, hidden: &[(usize, usize)]) -> ProtectedTable {
        let mut p = protect(t, MinCount::new(1).unwrap());
        for &(r, c) in hidden {
            p.cells[r][c] = Cell::Secondary;
        }
        p
    }

    #[test]
    fn a_hidden_block_gives_the_transportation_bounds() {
        // All four interior cells hidden, margins 7, 11 and 8, 10 published:
        // x00 ∈ [max(0, 7 − 10), min(7, 8)] = [0, 7].
        let t = table(vec![vec![3, 4], vec![5, 6]]);
        let a = audit(&t, &hide(&t, &[(0, 0), (0, 1), (1, 0), (1, 1)]));
        let x00 = a.iter().find(|i| (i.row, i.col) == (0, 0)).unwrap();
        assert_eq!((x00.lower, x00.upper), (0, Some(7)));
        let x11 = a.iter().find(|i| (i.row, i.col) == (1, 1)).unwrap();
        assert_eq!((x11.lower, x11.upper), (3, Some(10)));
    }

    #[test]
    fn two_hidden_cells_in_one_row_are_given_away_by_the_columns() {
        let t = table(vec![vec![3, 4], vec![5, 6]]);
        let a = audit(&t, &hide(&t, &[(0, 0), (0, 1)]));
        assert!(a.iter().all(CellInterval::is_exact), "{a:?}");
    }

    #[test]
    fn hidden_totals_can_leave_a_cell_unbounded() {
        let t = table(vec![vec![3, 4], vec![5, 6]]);
        let mut p = hide(&t, &[(0, 0)]);
        p.row_totals[0] = Cell::Secondary;
        p.col_totals[0] = Cell::Secondary;
        p.total = Cell::Secondary;
        let a = audit(&t, &p);
        let x00 = a.iter().find(|i| (i.row, i.col) == (0, 0)).unwrap();
        assert_eq!((x00.lower, x00.upper), (0, None));
    }

    proptest! {
        // Tau-Argus's audit on random tables: after protection no hidden cell is exact.
        #[test]
        fn no_hidden_cell_can_be_derived_exactly(
            cells in prop::collection::vec(prop::collection::vec(0u64..25, 1..6), 1..7),
            min in 2u64..8,
        ) {
            let nc = cells[0].len();
            let cells: Vec<Vec<u64>> = cells.into_iter().map(|mut r| { r.resize(nc, 0); r }).collect();
            let t = table(cells);
            let p = protect(&t, MinCount::new(min).unwrap());
            for i in audit(&t, &p) {
                prop_assert!(!i.is_exact(), "{i:?} in {t:?}");
                prop_assert!(i.lower <= i.value && i.upper.is_none_or(|u| u >= i.value));
            }
        }
    }
}
