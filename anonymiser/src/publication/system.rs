//! The attacker's linear system: atoms (groups of units that every count contains whole
//! or not at all) as non-negative variables, every distinct count as a row, fixed to its
//! value when it is shown and free when it is hidden; bounds of a hidden count are two
//! linear programmes, solved by lp_solve from the last basis (the rows stay, only the
//! objective changes, so each bound after the first costs a few pivots).

use std::collections::HashMap;

use occupa_engine::indicators::Units;

use super::{Draft, Prior, set_hash};
use crate::{Error, Result, Status};

/// lp_solve reports an unbounded variable's objective as its "infinity".
const LP_INFINITY: f64 = 1e29;

/// How far a local programme reaches around its row (`System::local_bound`).
#[derive(Debug, Clone, Copy)]
pub struct Neighbourhood {
    /// Atoms of a large row that join.
    pub wide: usize,
    /// Most atoms in all.
    pub budget: usize,
    /// Rings of rows around the row.
    pub depth: usize,
}

/// The system of one protection run.
pub struct System {
    /// Value of each distinct count.
    value: Vec<u64>,
    /// Row of each draft count.
    row_of_count: Vec<usize>,
    /// The draft count of each row, if it is one.
    count_of_row: Vec<Option<usize>>,
    /// Rows shown by an earlier publication: fixed whatever this one does.
    shown_before: Vec<bool>,
    /// Rows fixed now.
    shown: Vec<bool>,
    by_units: HashMap<u64, Vec<usize>>,
    units_of_row: Vec<Units>,
    row_atoms: Vec<Vec<u32>>,
    atom_rows: Vec<Vec<u32>>,
    /// Units in each atom (its true value).
    atom_size: Vec<u64>,
    lp: lpsolve::Problem,
    solves: usize,
}

fn lp_err(e: impl std::fmt::Display) -> Error {
    Error::Input(format!("the interval audit's linear programme failed: {e}"))
}

/// Row `r` fixed to `value`, or free. (lp_solve turns a free row back into `<=` when its
/// right-hand side is set, so a fixed row gets its type first and its value after.)
fn set_row(lp: &mut lpsolve::Problem, r: usize, fixed: bool, value: u64) -> Result<()> {
    let row = r as i32 + 1;
    if fixed {
        lp.set_constraint_type(row, lpsolve::ConstraintType::Eq)
            .map_err(lp_err)?;
        lp.set_rh(row, value as f64).map_err(lp_err)
    } else {
        lp.set_constraint_type(row, lpsolve::ConstraintType::Free)
            .map_err(lp_err)
    }
}

impl System {
    /// The system of `draft` (with `status`) and every prior publication.
    pub fn build(draft: &Draft, status: &[Status], prior: &[Prior]) -> Result<System> {
        let mut by_units: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut units_of_row: Vec<Units> = Vec::new();
        let mut shown_before: Vec<bool> = Vec::new();
        let mut shown: Vec<bool> = Vec::new();
        let mut count_of_row: Vec<Option<usize>> = Vec::new();
        let row_for = |units: &Units,
                       by_units: &mut HashMap<u64, Vec<usize>>,
                       units_of_row: &mut Vec<Units>,
                       flags: (&mut Vec<bool>, &mut Vec<bool>, &mut Vec<Option<usize>>)|
         -> usize {
            let h = set_hash(units);
            if let Some(&r) = by_units
                .get(&h)
                .and_then(|v| v.iter().find(|&&r| units_of_row[r] == *units))
            {
                return r;
            }
            let r = units_of_row.len();
            units_of_row.push(units.clone());
            flags.0.push(false);
            flags.1.push(false);
            flags.2.push(None);
            by_units.entry(h).or_default().push(r);
            r
        };
        for p in prior {
            for c in &p.cells {
                if c.units.is_empty() {
                    continue;
                }
                let r = row_for(
                    &c.units,
                    &mut by_units,
                    &mut units_of_row,
                    (&mut shown_before, &mut shown, &mut count_of_row),
                );
                if c.published {
                    shown_before[r] = true;
                    shown[r] = true;
                }
            }
        }
        let mut row_of_count = Vec::with_capacity(draft.counts.len());
        for (i, c) in draft.counts.iter().enumerate() {
            let r = row_for(
                &c.units,
                &mut by_units,
                &mut units_of_row,
                (&mut shown_before, &mut shown, &mut count_of_row),
            );
            row_of_count.push(r);
            if count_of_row[r].is_none() {
                count_of_row[r] = Some(i);
            }
            if status[i] == Status::Safe && c.printed {
                shown[r] = true;
            }
        }
        // Atoms: units grouped by the rows they are in.
        let mut pairs: Vec<(u64, u32)> = Vec::new();
        for (r, u) in units_of_row.iter().enumerate() {
            pairs.extend(u.iter().map(|&x| (x, r as u32)));
        }
        pairs.sort_unstable();
        let mut atom_of: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut atom_rows: Vec<Vec<u32>> = Vec::new();
        let mut atom_size: Vec<u64> = Vec::new();
        let mut i = 0;
        while i < pairs.len() {
            let mut j = i;
            let mut sig = Vec::new();
            while j < pairs.len() && pairs[j].0 == pairs[i].0 {
                sig.push(pairs[j].1);
                j += 1;
            }
            sig.dedup();
            match atom_of.get(&sig) {
                Some(&a) => atom_size[a as usize] += 1,
                None => {
                    atom_of.insert(sig.clone(), atom_rows.len() as u32);
                    atom_rows.push(sig);
                    atom_size.push(1);
                }
            }
            i = j;
        }
        let mut row_atoms: Vec<Vec<u32>> = vec![Vec::new(); units_of_row.len()];
        for (a, rows) in atom_rows.iter().enumerate() {
            for &r in rows {
                row_atoms[r as usize].push(a as u32);
            }
        }
        let value: Vec<u64> = units_of_row.iter().map(|u| u.len() as u64).collect();
        let nrows = units_of_row.len();
        let mut lp = lpsolve::Problem::new(nrows as i32, 0)
            .ok_or_else(|| lp_err("cannot allocate the model"))?;
        lp.set_verbose(lpsolve::Verbosity::Critical);
        // Shadow prices after each solve: they name the shown counts that hold a bound
        // (see `binding`), so a repair tries those instead of every neighbour.
        lp.set_presolve(lpsolve::PresolveMode::DUALS);
        for r in 0..nrows {
            set_row(&mut lp, r, shown[r], value[r])?;
        }
        for rows in &atom_rows {
            let mut idx: Vec<i32> = rows.iter().map(|&r| r as i32 + 1).collect();
            let mut vals = vec![1.0; idx.len()];
            lp.add_column_scatter(&mut vals, &mut idx).map_err(lp_err)?;
        }
        Ok(System {
            value,
            row_of_count,
            count_of_row,
            shown_before,
            shown,
            by_units,
            units_of_row,
            row_atoms,
            atom_rows,
            atom_size,
            lp,
            solves: 0,
        })
    }

    /// The row of draft count `i`.
    pub fn row_of_count(&self, i: usize) -> usize {
        self.row_of_count[i]
    }

    /// The row counting exactly `units`, if any.
    pub fn row_of_units(&self, units: &Units) -> Option<usize> {
        self.by_units
            .get(&set_hash(units))
            .and_then(|v| v.iter().copied().find(|&r| self.units_of_row[r] == *units))
    }

    /// Atoms in the system.
    pub fn atoms(&self) -> usize {
        self.atom_rows.len()
    }

    /// Distinct counts in the system.
    pub fn rows(&self) -> usize {
        self.value.len()
    }

    /// Linear programmes solved so far.
    pub fn solves(&self) -> usize {
        self.solves
    }

    /// Shows (fixes) or hides a draft count. A count an earlier publication showed stays
    /// fixed.
    pub fn set_shown(&mut self, count: usize, shown: bool) -> Result<()> {
        let r = self.row_of_count[count];
        let fixed = shown || self.shown_before[r];
        self.shown[r] = fixed;
        set_row(&mut self.lp, r, fixed, self.value[r])
    }

    /// Draft counts shown now that share units with row `row`, not fixed by an earlier
    /// publication: the candidates for hiding.
    pub fn neighbours(&self, row: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for &a in &self.row_atoms[row] {
            for &r in &self.atom_rows[a as usize] {
                let r = r as usize;
                if r != row
                    && self.shown[r]
                    && !self.shown_before[r]
                    && let Some(c) = self.count_of_row[r]
                {
                    out.push(c);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Solves the programme as set. The true counts are always a feasible point, so an
    /// "infeasible" answer is lp_solve losing its way from a warm basis after many changes:
    /// it is asked again from the slack basis before the answer is believed.
    fn solve(&mut self) -> lpsolve::SolveStatus {
        self.solves += 1;
        match guarded_solve(&mut self.lp) {
            lpsolve::SolveStatus::Infeasible | lpsolve::SolveStatus::NumericalFailure => {
                self.lp.default_basis();
                self.solves += 1;
                guarded_solve(&mut self.lp)
            }
            status => status,
        }
    }

    /// Sets the objective: the sum of `rows` (an atom counted once per row it is in).
    fn objective(&mut self, rows: &[usize], maximize: bool) -> Result<()> {
        let mut obj = vec![0.0; self.atom_rows.len() + 1];
        for &r in rows {
            for &a in &self.row_atoms[r] {
                obj[a as usize + 1] += 1.0;
            }
        }
        self.lp.set_objective_function(&mut obj).map_err(lp_err)?;
        if maximize {
            self.lp.set_maximize();
        } else {
            self.lp.set_minimize();
        }
        Ok(())
    }

    /// After a bound's solve: the draft counts shown now (not fixed by an earlier
    /// publication) whose constraints hold the bound, the strongest first (largest shadow
    /// price): hiding one of them is what can move the bound.
    pub fn binding(&self) -> Vec<usize> {
        let nrows = self.value.len();
        let mut duals = vec![0.0; nrows + self.atom_rows.len() + 1];
        let Some(d) = self.lp.get_dual_solution(&mut duals) else {
            return Vec::new();
        };
        let mut out: Vec<(f64, usize)> = (0..nrows)
            .filter(|&r| self.shown[r] && !self.shown_before[r])
            .filter_map(|r| {
                let v = d.get(r).copied().unwrap_or(0.0).abs();
                (v > 1e-9).then_some((v, self.count_of_row[r]?))
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// A sufficient certificate, from a small programme: the bound of `row` when every atom
    /// outside a neighbourhood of the row is held at its true value. Holding variables
    /// only shrinks the attacker's feasible set, so the maximum found here is at most the
    /// attacker's true maximum (the minimum at least the true minimum): when it already
    /// reaches the protection range, the full programme would too, and need not be solved.
    /// When it does not, nothing follows, and the caller solves the full programme.
    ///
    /// The neighbourhood: the row's atoms, then, `n.depth` times, the atoms of every fixed
    /// row that shares one with it (rows of at most `n.wide` atoms whole, larger ones by
    /// their first `n.wide` atoms), up to `n.budget` atoms.
    pub fn local_bound(
        &mut self,
        row: usize,
        maximize: bool,
        n: Neighbourhood,
    ) -> Result<Option<f64>> {
        let Neighbourhood {
            wide,
            budget,
            depth,
        } = n;
        if maximize && self.free_above(row) {
            return Ok(None);
        }
        let fixed = |r: usize| self.shown[r] || self.shown_before[r];
        let mut in_n: HashMap<u32, usize> = HashMap::new();
        let mut order: Vec<u32> = Vec::new();
        let push = |a: u32, in_n: &mut HashMap<u32, usize>, order: &mut Vec<u32>| {
            if let std::collections::hash_map::Entry::Vacant(e) = in_n.entry(a) {
                e.insert(order.len());
                order.push(a);
            }
        };
        for &a in &self.row_atoms[row] {
            push(a, &mut in_n, &mut order);
        }
        let mut frontier_start = 0;
        for _depth in 0..depth {
            let frontier: Vec<u32> = order[frontier_start..].to_vec();
            frontier_start = order.len();
            let mut rows: Vec<u32> = frontier
                .iter()
                .flat_map(|&a| self.atom_rows[a as usize].iter().copied())
                .filter(|&r| fixed(r as usize))
                .collect();
            rows.sort_unstable();
            rows.dedup();
            // Small rows first: they are the ones that can trade units with the row.
            rows.sort_by_key(|&r| self.row_atoms[r as usize].len());
            for r in rows {
                for &a in self.row_atoms[r as usize].iter().take(wide) {
                    if order.len() >= budget {
                        break;
                    }
                    push(a, &mut in_n, &mut order);
                }
            }
        }
        // The fixed rows over the neighbourhood, each less its atoms held outside.
        let mut rows: Vec<u32> = order
            .iter()
            .flat_map(|&a| self.atom_rows[a as usize].iter().copied())
            .filter(|&r| fixed(r as usize))
            .collect();
        rows.sort_unstable();
        rows.dedup();
        let mut local_row: HashMap<u32, i32> = HashMap::new();
        let mut lp = lpsolve::Problem::new(rows.len() as i32, 0)
            .ok_or_else(|| lp_err("cannot allocate the model"))?;
        lp.set_verbose(lpsolve::Verbosity::Critical);
        for (k, &r) in rows.iter().enumerate() {
            local_row.insert(r, k as i32 + 1);
            let outside: u64 = self.row_atoms[r as usize]
                .iter()
                .filter(|a| !in_n.contains_key(a))
                .map(|&a| self.atom_size[a as usize])
                .sum();
            let rhs = self.value[r as usize].saturating_sub(outside);
            set_row(&mut lp, k, true, rhs)?;
        }
        for &a in &order {
            let mut idx: Vec<i32> = self.atom_rows[a as usize]
                .iter()
                .filter_map(|r| local_row.get(r).copied())
                .collect();
            let mut vals = vec![1.0; idx.len()];
            lp.add_column_scatter(&mut vals, &mut idx).map_err(lp_err)?;
        }
        let mut obj = vec![0.0; order.len() + 1];
        for &a in &self.row_atoms[row] {
            if let Some(&k) = in_n.get(&a) {
                obj[k + 1] = 1.0;
            }
        }
        lp.set_objective_function(&mut obj).map_err(lp_err)?;
        if maximize {
            lp.set_maximize();
        } else {
            lp.set_minimize();
        }
        self.solves += 1;
        let t0 = std::time::Instant::now();
        let status = guarded_solve(&mut lp);
        if std::env::var_os("OCCUPA_PROTECT_TRACE").is_some() && t0.elapsed().as_secs_f64() > 0.2 {
            eprintln!(
                "      local programme: {} atoms, {} rows, depth {}, {:.2}s, {status:?}",
                order.len(),
                rows.len(),
                depth,
                t0.elapsed().as_secs_f64()
            );
        }
        match status {
            lpsolve::SolveStatus::Optimal | lpsolve::SolveStatus::Presolved => {
                let v = lp.get_objective();
                Ok((v < LP_INFINITY).then_some(v))
            }
            lpsolve::SolveStatus::Unbounded => Ok(None),
            // No certificate (a numerical failure proves nothing either way).
            _ => Ok(Some(if maximize {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })),
        }
    }

    /// Whether row `row` is unbounded above for want of a fixed row over one of its atoms.
    pub fn free_above(&self, row: usize) -> bool {
        self.row_atoms[row].iter().any(|&a| {
            self.atom_rows[a as usize]
                .iter()
                .all(|&r| !(self.shown[r as usize] || self.shown_before[r as usize]))
        })
    }

    /// One programme for many rows: the values the rows take at a feasible point that
    /// maximises (or minimises) their sum. Any feasible point certifies each row's bound
    /// as at least (at most) its value there, so one solve can settle many hidden counts.
    /// `None` when the sum is unbounded (a row free above is left out by the caller).
    pub fn joint(&mut self, rows: &[usize], maximize: bool) -> Result<Option<Vec<f64>>> {
        let ncols = self.atom_rows.len();
        self.objective(rows, maximize)?;
        match self.solve() {
            lpsolve::SolveStatus::Optimal | lpsolve::SolveStatus::Presolved => {
                if self.lp.get_objective() >= LP_INFINITY {
                    return Ok(None);
                }
                let mut x = vec![0.0; ncols];
                if self.lp.get_solution_variables(&mut x).is_none() {
                    return Ok(None);
                }
                Ok(Some(
                    rows.iter()
                        .map(|&r| self.row_atoms[r].iter().map(|&a| x[a as usize]).sum())
                        .collect(),
                ))
            }
            lpsolve::SolveStatus::Unbounded => Ok(None),
            other => Err(lp_err(format!("solver status {other:?}"))),
        }
    }

    /// The greatest (`maximize`) or least value row `row` can take given every fixed row;
    /// `None` when unbounded.
    pub fn bound(&mut self, row: usize, maximize: bool) -> Result<Option<f64>> {
        // An atom of the row in no fixed row can grow without limit: the row is unbounded
        // above, no programme needed (most small counts of a report have one).
        if maximize && self.free_above(row) {
            return Ok(None);
        }
        self.objective(&[row], maximize)?;
        match self.solve() {
            lpsolve::SolveStatus::Optimal | lpsolve::SolveStatus::Presolved => {
                let v = self.lp.get_objective();
                Ok((v < LP_INFINITY).then_some(v))
            }
            lpsolve::SolveStatus::Unbounded => Ok(None),
            other => Err(lp_err(format!("solver status {other:?}"))),
        }
    }
}

/// `Problem::solve`, with lp_solve's statuses that the `lpsolve` crate does not know read
/// as a numerical failure. The crate panics on them after lp_solve has returned (status
/// 25, ACCURACYERROR, was seen on a report's local programme), so the model is intact
/// and the panic is caught here: a numerical failure certifies nothing, and the caller
/// hides more or retries from the slack basis. The binary's panic hook keeps the caught
/// panic's message off the terminal.
fn guarded_solve(lp: &mut lpsolve::Problem) -> lpsolve::SolveStatus {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.solve()))
        .unwrap_or(lpsolve::SolveStatus::NumericalFailure)
}

/// The message of the `lpsolve` crate's panic on a status it does not know, which
/// [`guarded_solve`] catches: a binary's panic hook may leave it unprinted.
pub const UNKNOWN_STATUS_PANIC: &str = "unknown solve status";

/// Installs a panic hook that leaves [`UNKNOWN_STATUS_PANIC`] unprinted (it is caught and
/// read as a failure) and prints every other panic as before. For the binary and the
/// Python module, whose users should not see a caught panic.
pub fn quiet_caught_solver_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !message.starts_with(UNKNOWN_STATUS_PANIC) {
            default_hook(info);
        }
    }));
}
