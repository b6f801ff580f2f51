//! The attacker's side of the interval audit, written apart from the protection code: what
//! a reader of the reports has seen (each published or hidden count tied to the persons it
//! counts), its own atoms, and its own interval programmes solved with microlp (the
//! protection uses lp_solve). Shared by the library's attack (tests/it/publication.rs) and
//! the binary's (studies/tests/cli/annual_attack.rs), which include this file by path.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use occupa_engine::indicators::{TenantQuarter, Units};

/// The range a hidden count `v` below `min` must cover, restated from the issue: up to
/// the threshold at least and 30 % of it above the value; down by as much, or to 1.
pub fn required(v: u64, min: u64) -> (u64, u64) {
    let r = ((0.3 * min as f64).ceil() as u64).max(1);
    (v - r.min(v - 1), v + (min - v).max(r))
}

pub fn union<'a>(sets: impl IntoIterator<Item = &'a Units>) -> Units {
    let mut v: Units = sets.into_iter().flat_map(|s| s.iter().copied()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Everything an attacker has seen: unit sets with the value shown (`None`: hidden).
#[derive(Default)]
pub struct Seen {
    pub cells: Vec<(Units, Option<u64>)>,
    /// What a cell is (publication, table, row, column), where the reader said.
    pub names: HashMap<usize, String>,
    /// What else was seen of a set's size: `lower ≤ |set| ≤ upper` (a flag printed from a
    /// count, say), with what it is.
    pub bounds: Vec<(String, Units, f64, f64)>,
}

/// The interval the attacker's system leaves to one hidden count below the threshold.
#[derive(Debug, Clone)]
pub struct Range {
    /// The cells counting this set (indices into [`Seen::cells`]).
    pub cells: Vec<usize>,
    pub value: u64,
    pub lower: u64,
    pub upper: u64,
    /// The range the count must cover ([`required`]).
    pub required: (u64, u64),
    /// Whether the interval covers it.
    pub covered: bool,
}

impl Seen {
    /// Adds a cell: `units` counted, `shown` its published value (checked against the
    /// set's size: a report that printed another set than it protected fails here).
    pub fn push(&mut self, name: String, units: Units, shown: Option<u64>) {
        if let Some(v) = shown {
            assert_eq!(
                v,
                units.len() as u64,
                "{name}: the published figure is not the size of its set"
            );
        }
        self.names.insert(self.cells.len(), name);
        self.cells.push((units, shown));
    }

    /// Adds a bound on a set's size (checked against the set: a bound that excludes the
    /// truth is a wrong reading).
    pub fn bound(&mut self, name: String, units: Units, lower: f64, upper: f64) {
        let n = units.len() as f64;
        assert!(
            lower <= n + 1e-9 && n <= upper + 1e-9,
            "{name}: [{lower}, {upper}] excludes the set's size {n}"
        );
        self.bounds.push((name, units, lower, upper));
    }

    /// The names of the cells of a range, joined.
    pub fn name_of(&self, r: &Range) -> String {
        r.cells
            .iter()
            .map(|i| self.names.get(i).map_or("?", String::as_str))
            .collect::<Vec<_>>()
            .join(" = ")
    }

    /// Reads a report's `report.json` and ties each published figure to the persons it
    /// counts, from the store's indicators (not from the protection code).
    pub fn read_report(
        &mut self,
        out: &Path,
        tenants: &[TenantQuarter],
        history: &HashMap<String, Units>,
    ) {
        self.read_report_except(out, tenants, history, &[]);
    }

    /// [`Seen::read_report`] leaving the tables named in `others` to the caller (the
    /// binary's report has sections the library's quarterly report has not).
    pub fn read_report_except(
        &mut self,
        out: &Path,
        tenants: &[TenantQuarter],
        history: &HashMap<String, Units>,
        others: &[&str],
    ) {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let publication = r["provenance"]["publication"]
            .as_str()
            .map_or_else(|| out.display().to_string(), String::from);
        let by_label: HashMap<&str, &TenantQuarter> =
            tenants.iter().map(|t| (t.tenant.as_str(), t)).collect();
        for table in r["tables"].as_array().unwrap() {
            let id = table["id"].as_str().unwrap();
            if others.contains(&id) {
                continue;
            }
            let cols: Vec<&str> = table["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            for row in table["rows"].as_array().unwrap() {
                let row = row.as_array().unwrap();
                let label = row[0].as_str().unwrap();
                let row_index = table["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .position(|r| r.as_array().unwrap() == row)
                    .unwrap();
                for (c, v) in row.iter().enumerate().skip(1) {
                    let shown = v.as_u64();
                    let col = cols[c];
                    // Rates and public figures (population) are not counts of persons: a rate
                    // is checked to come from shown counts below.
                    if matches!(
                        col,
                        "robust_score"
                            | "population"
                            | "in_charge_per_1000"
                            | "placed_per_100"
                            | "change_on_previous_pct"
                            | "change_on_year_pct"
                    ) {
                        if !v.is_null() {
                            let bases: &[usize] = match col {
                                "in_charge_per_1000" => &[2],
                                "placed_per_100" => &[2, 4],
                                "change_on_previous_pct" => &[2, 3],
                                "change_on_year_pct" => &[1, 3],
                                "robust_score" => &[1],
                                _ => &[],
                            };
                            for &b in bases {
                                assert!(
                                    !row[b].is_null(),
                                    "{id} {label}: a rate of a hidden count"
                                );
                            }
                        }
                        continue;
                    }
                    let units = if id == "anomalies" {
                        // "t02 · 6.3 label": that authority's indicator this quarter.
                        let (tenant, rest) = label.split_once(" · ").unwrap();
                        let ind = rest.split(' ').next().unwrap();
                        by_label[tenant]
                            .indicators
                            .iter()
                            .find(|i| i.id == ind)
                            .unwrap()
                            .units
                            .clone()
                    } else if id == "indicators_trend" {
                        // Rows in the report's order: inflow, outflow, end stock, placed, of
                        // whom permanent, then each indicator; columns a year before, the
                        // previous quarter, this one.
                        let of = |t: &TenantQuarter| -> Units {
                            let k = c - 1;
                            let (flow, inds, placed, perm) = if k == 2 {
                                (&t.flow_units, &t.indicators, &t.placed, &t.placed_permanent)
                            } else {
                                let e = &t.earlier[k];
                                (&e.flow_units, &e.indicators, &e.placed, &e.placed_permanent)
                            };
                            match row_index {
                                0 => flow.inflow.clone(),
                                1 => flow.outflow.clone(),
                                2 => flow.stock_end.clone(),
                                3 => placed.clone(),
                                4 => perm.clone(),
                                j => inds[j - 5].units.clone(),
                            }
                        };
                        union(&tenants.iter().map(of).collect::<Vec<_>>())
                    } else if id == "provinces" {
                        let get = |m: &dyn Fn(&TenantQuarter) -> Option<&Units>| {
                            union(tenants.iter().filter_map(m))
                        };
                        if col == "in_charge" {
                            get(&|t| t.stock_by_province.get(label))
                        } else {
                            get(&|t| t.placed_by_province.get(label))
                        }
                    } else if id == "indicators" {
                        let ind = label.split(' ').next().unwrap();
                        let of = |t: &TenantQuarter| {
                            t.indicators
                                .iter()
                                .find(|i| i.id == ind)
                                .unwrap()
                                .units
                                .clone()
                        };
                        match by_label.get(col) {
                            Some(t) => of(t),
                            None => union(&tenants.iter().map(of).collect::<Vec<_>>()),
                        }
                    } else {
                        let of = |t: &TenantQuarter| -> Option<Units> {
                            Some(match id {
                                "stock_flow" => match c {
                                    1 => t.flow_units.stock_start.clone(),
                                    2 => t.flow_units.inflow.clone(),
                                    3 => t.flow_units.outflow.clone(),
                                    _ => t.flow_units.stock_end.clone(),
                                },
                                "by_sex" => match col {
                                    "F" | "M" => {
                                        t.stock_by_sex.get(col).cloned().unwrap_or_default()
                                    }
                                    _ => union(t.stock_by_sex.values()),
                                },
                                // Labels to the stable keys, restated here.
                                "by_age" => {
                                    let key = match col {
                                        "15–29 anni" => "15-29",
                                        "30–49 anni" => "30-49",
                                        "50 anni e oltre" => "50+",
                                        "non indicato" => "missing",
                                        _ => return Some(union(t.stock_by_age.values())),
                                    };
                                    t.stock_by_age.get(key).cloned().unwrap_or_default()
                                }
                                "by_education" => {
                                    let key = match col {
                                        "fino alla licenza media" => "isced_0_2",
                                        "diploma" => "isced_3_4",
                                        "laurea e oltre" => "isced_5_8",
                                        "non indicato" => "missing",
                                        _ => return Some(union(t.stock_by_education.values())),
                                    };
                                    t.stock_by_education.get(key).cloned().unwrap_or_default()
                                }
                                "vulnerable_groups" => {
                                    let key = match col {
                                        "con disabilità (L. 68/1999)" => "disability",
                                        "con sostegno al reddito" => "income_support",
                                        "in carico ai servizi sociali" => "social_services",
                                        other => panic!("vulnerable group {other}"),
                                    };
                                    t.stock_vulnerable.get(key).cloned().unwrap_or_default()
                                }
                                "by_citizenship" => {
                                    let key = match col {
                                        "italiana" | "Italian" => "italiana",
                                        "UE" | "other EU" => "UE",
                                        "extra UE" | "non-EU" => "extra UE",
                                        _ => return Some(union(t.stock_by_citizenship.values())),
                                    };
                                    t.stock_by_citizenship.get(key).cloned().unwrap_or_default()
                                }
                                "by_province" => match t.stock_by_province.get(col) {
                                    Some(u) => u.clone(),
                                    None if matches!(col, "Totale" | "Total") => {
                                        union(t.stock_by_province.values())
                                    }
                                    None => Units::new(),
                                },
                                "gol_paths" => match col.strip_prefix("GOL ") {
                                    Some(p) => t
                                        .gol_paths
                                        .get(&p.parse::<u8>().unwrap())
                                        .cloned()
                                        .unwrap_or_default(),
                                    None => union(t.gol_paths.values()),
                                },
                                "placements" => {
                                    if c == 1 {
                                        t.placed.clone()
                                    } else {
                                        t.placed_permanent.clone()
                                    }
                                }
                                other => panic!("table {other} is not known to the audit"),
                            })
                        };
                        match by_label.get(label) {
                            Some(t) => of(t).unwrap(),
                            None => union(&tenants.iter().filter_map(of).collect::<Vec<_>>()),
                        }
                    };
                    self.push(format!("{publication} {id} {label} {col}"), units, shown);
                }
            }
        }
        for chart in r["charts"].as_array().unwrap() {
            for p in chart["points"].as_array().unwrap() {
                let label = p[0].as_str().unwrap();
                self.push(
                    format!("{publication} chart {label}"),
                    history[label].clone(),
                    p[1].as_u64(),
                );
            }
        }
    }

    /// The intervals of every count never shown and below `min`: (value, lower, upper,
    /// covered).
    pub fn audit(&self, min: u64) -> Vec<(u64, u64, u64, bool)> {
        self.ranges(min)
            .into_iter()
            .map(|r| (r.value, r.lower, r.upper, r.covered))
            .collect()
    }

    /// The intervals of every count never shown and below `min`. Each bound is certified
    /// by a feasible point of the attacker's system, found by maximising (or minimising)
    /// the sum of the counts not yet certified, then one by one.
    pub fn ranges(&self, min: u64) -> Vec<Range> {
        // Distinct sets: fixed if shown anywhere.
        let mut index: HashMap<&Units, usize> = HashMap::new();
        let mut sets: Vec<&Units> = Vec::new();
        let mut fixed: Vec<bool> = Vec::new();
        let mut cells_of: Vec<Vec<usize>> = Vec::new();
        for (k, (u, shown)) in self.cells.iter().enumerate() {
            if u.is_empty() {
                continue;
            }
            let i = *index.entry(u).or_insert_with(|| {
                sets.push(u);
                fixed.push(false);
                cells_of.push(Vec::new());
                sets.len() - 1
            });
            fixed[i] |= shown.is_some();
            cells_of[i].push(k);
        }
        let mut bounded: Vec<(usize, f64, f64)> = Vec::new();
        for (_, u, lo, hi) in &self.bounds {
            if u.is_empty() {
                continue;
            }
            let i = *index.entry(u).or_insert_with(|| {
                sets.push(u);
                fixed.push(false);
                cells_of.push(Vec::new());
                sets.len() - 1
            });
            bounded.push((i, *lo, *hi));
        }
        // Atoms: units with the same sets.
        let mut memberships: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in sets.iter().enumerate() {
            for &u in s.iter() {
                memberships.entry(u).or_default().push(i);
            }
        }
        let mut atoms: HashMap<Vec<usize>, u64> = HashMap::new();
        for (_, mut m) in memberships {
            m.sort_unstable();
            *atoms.entry(m).or_default() += 1;
        }
        let atoms: Vec<Vec<usize>> = atoms.into_keys().collect();
        // Each set's atoms.
        let mut atoms_of: Vec<Vec<usize>> = vec![Vec::new(); sets.len()];
        for (a, members) in atoms.iter().enumerate() {
            for &i in members {
                atoms_of[i].push(a);
            }
        }
        // Counts never shown, below the threshold (a set only bounded is no count).
        let targets: Vec<usize> = (0..sets.len())
            .filter(|&i| !fixed[i] && !cells_of[i].is_empty() && (sets[i].len() as u64) < min)
            .collect();
        let solve = |objective: &[usize], maximise: bool| -> Option<Vec<f64>> {
            use microlp::{ComparisonOp, OptimizationDirection, Problem};
            let dir = if maximise {
                OptimizationDirection::Maximize
            } else {
                OptimizationDirection::Minimize
            };
            let mut p = Problem::new(dir);
            let mut weight = vec![0.0; atoms.len()];
            for &i in objective {
                for &a in &atoms_of[i] {
                    weight[a] += 1.0;
                }
            }
            let vars: Vec<_> = weight.iter().map(|&w| p.add_var(w, (0.0, 1e7))).collect();
            for (i, of) in atoms_of.iter().enumerate() {
                if fixed[i] {
                    let row: Vec<(microlp::Variable, f64)> =
                        of.iter().map(|&a| (vars[a], 1.0)).collect();
                    p.add_constraint(row, ComparisonOp::Eq, sets[i].len() as f64);
                }
            }
            for &(i, lo, hi) in &bounded {
                let row: Vec<(microlp::Variable, f64)> =
                    atoms_of[i].iter().map(|&a| (vars[a], 1.0)).collect();
                p.add_constraint(row.clone(), ComparisonOp::Ge, lo);
                p.add_constraint(row, ComparisonOp::Le, hi);
            }
            let s = p.solve().ok()?.into_solution().ok()?;
            Some(vars.iter().map(|&v| s.var_value(v)).collect())
        };
        let value_at = |x: &[f64], i: usize| -> f64 { atoms_of[i].iter().map(|&a| x[a]).sum() };
        let mut result: HashMap<usize, (f64, f64)> = targets
            .iter()
            .map(|&i| (i, (f64::INFINITY, f64::NEG_INFINITY)))
            .collect();
        for maximise in [true, false] {
            let goal = |i: usize| {
                let (lo, hi) = required(sets[i].len() as u64, min);
                if maximise { hi as f64 } else { lo as f64 }
            };
            let mut open: Vec<usize> = targets.clone();
            // Together first: one point often certifies many counts.
            while !open.is_empty() {
                let Some(x) = solve(&open, maximise) else {
                    break;
                };
                let before = open.len();
                open.retain(|&i| {
                    let v = value_at(&x, i);
                    let e = result.get_mut(&i).unwrap();
                    if maximise {
                        e.1 = e.1.max(v);
                        v < goal(i) - 1e-6
                    } else {
                        e.0 = e.0.min(v);
                        v > goal(i) + 1e-6
                    }
                });
                if open.len() == before {
                    break;
                }
            }
            // Then each on its own: its own optimum.
            for &i in &open {
                if let Some(x) = solve(&[i], maximise) {
                    let v = value_at(&x, i);
                    let e = result.get_mut(&i).unwrap();
                    if maximise {
                        e.1 = e.1.max(v);
                    } else {
                        e.0 = e.0.min(v);
                    }
                }
            }
        }
        targets
            .iter()
            .map(|&i| {
                let v = sets[i].len() as u64;
                let (lo, hi) = result[&i];
                let need = required(v, min);
                Range {
                    cells: cells_of[i].clone(),
                    value: v,
                    lower: lo.max(0.0).round() as u64,
                    upper: hi.round() as u64,
                    required: need,
                    covered: hi >= need.1 as f64 - 1e-6 && lo <= need.0 as f64 + 1e-6,
                }
            })
            .collect()
    }
}
