//! Published tables attacked: an interval audit written here, apart from the protection
//! code (its own reading of what was published, its own atoms, microlp instead of
//! lp_solve), over every report a store has published, and over random tables.

use std::collections::HashMap;
use std::path::Path;

use occupa_anonymiser::MinCount;
use occupa_anonymiser::publication::ledger::Ledger;
use occupa_anonymiser::publication::{Draft, Rule, protect};
use occupa_engine::indicators::{Quarter, TenantQuarter, Units, tenant_quarter};
use occupa_engine::store::{Store, TenantId};
use occupa_reports::{Lang, Report};

use crate::attacks::{ingest_all, simulate_small};

/// The range a hidden count `v` below `min` must cover, restated from the issue: up to
/// the threshold at least and 30 % of it above the value; down by as much, or to 1.
fn required(v: u64, min: u64) -> (u64, u64) {
    let r = ((0.3 * min as f64).ceil() as u64).max(1);
    (v - r.min(v - 1), v + (min - v).max(r))
}

fn union<'a>(sets: impl IntoIterator<Item = &'a Units>) -> Units {
    let mut v: Units = sets.into_iter().flat_map(|s| s.iter().copied()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Everything an attacker has seen: unit sets with the value shown (`None`: hidden).
#[derive(Default)]
struct Seen {
    cells: Vec<(Units, Option<u64>)>,
}

impl Seen {
    /// Reads a report's `report.json` and ties each published figure to the persons it
    /// counts, from the store's indicators (not from the protection code).
    fn read_report(
        &mut self,
        out: &Path,
        tenants: &[TenantQuarter],
        history: &HashMap<String, Units>,
    ) {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let by_label: HashMap<&str, &TenantQuarter> =
            tenants.iter().map(|t| (t.tenant.as_str(), t)).collect();
        for table in r["tables"].as_array().unwrap() {
            let id = table["id"].as_str().unwrap();
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
                    if let Some(v) = shown {
                        assert_eq!(
                            v,
                            units.len() as u64,
                            "{id} {label} {col}: a published figure is wrong"
                        );
                    }
                    self.cells.push((units, shown));
                }
            }
        }
        for chart in r["charts"].as_array().unwrap() {
            for p in chart["points"].as_array().unwrap() {
                let label = p[0].as_str().unwrap();
                self.cells.push((history[label].clone(), p[1].as_u64()));
            }
        }
    }

    /// The intervals of every count never shown and below `min`: (value, lower, upper).
    /// Each bound is certified by a feasible point of the attacker's system, found by
    /// maximising (or minimising) the sum of the counts not yet certified, then one by one.
    fn audit(&self, min: u64) -> Vec<(u64, u64, u64, bool)> {
        // Distinct sets: fixed if shown anywhere.
        let mut index: HashMap<&Units, usize> = HashMap::new();
        let mut sets: Vec<&Units> = Vec::new();
        let mut fixed: Vec<bool> = Vec::new();
        for (u, shown) in &self.cells {
            if u.is_empty() {
                continue;
            }
            let i = *index.entry(u).or_insert_with(|| {
                sets.push(u);
                fixed.push(false);
                sets.len() - 1
            });
            fixed[i] |= shown.is_some();
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
        let targets: Vec<usize> = (0..sets.len())
            .filter(|&i| !fixed[i] && (sets[i].len() as u64) < min)
            .collect();
        let solve = |objective: &[usize], maximise: bool| -> Option<Vec<f64>> {
            use microlp::{ComparisonOp, OptimizationDirection, Problem};
            let dir = if maximise {
                OptimizationDirection::Maximize
            } else {
                OptimizationDirection::Minimize
            };
            let mut p = Problem::new(dir);
            let in_obj: Vec<bool> = (0..sets.len()).map(|i| objective.contains(&i)).collect();
            let vars: Vec<_> = atoms
                .iter()
                .map(|a| {
                    let w = a.iter().filter(|&&i| in_obj[i]).count() as f64;
                    p.add_var(w, (0.0, 1e7))
                })
                .collect();
            let mut rows: Vec<Vec<(microlp::Variable, f64)>> = vec![Vec::new(); sets.len()];
            for (a, members) in atoms.iter().enumerate() {
                for &i in members {
                    rows[i].push((vars[a], 1.0));
                }
            }
            for (i, r) in rows.into_iter().enumerate() {
                if fixed[i] {
                    p.add_constraint(r, ComparisonOp::Eq, sets[i].len() as f64);
                }
            }
            let s = p.solve().ok()?.into_solution().ok()?;
            Some(vars.iter().map(|&v| s.var_value(v)).collect())
        };
        let value_at = |x: &[f64], i: usize| -> f64 {
            atoms
                .iter()
                .enumerate()
                .filter(|(_, m)| m.contains(&i))
                .map(|(a, _)| x[a])
                .sum()
        };
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
                let (need_lo, need_hi) = required(v, min);
                let ok = hi >= need_hi as f64 - 1e-6 && lo <= need_lo as f64 + 1e-6;
                (v, lo.max(0.0).round() as u64, hi.round() as u64, ok)
            })
            .collect()
    }
}

/// Publishes the quarterly report of `tenant` (or pooled) for `q` as `occupa report` does:
/// protected against the ledger, recorded in it, written.
fn publish(store: &Store, q: Quarter, tenant: Option<&str>, out: &Path) -> Vec<TenantQuarter> {
    let ids: Vec<TenantId> = match tenant {
        Some(t) => vec![TenantId::new(t).unwrap()],
        None => store.tenants().unwrap(),
    };
    let tqs: Vec<TenantQuarter> = ids
        .iter()
        .map(|t| tenant_quarter(&store.scope(t), q, 8).unwrap())
        .collect();
    let ledger = Ledger::open(store.root()).unwrap();
    let prior = ledger.priors().unwrap();
    let rule = Rule::new(MinCount::default());
    let p = Report::quarterly(q, &tqs, Lang::It, rule, &prior, tenant.unwrap_or("pooled")).unwrap();
    assert!(
        p.protection.audit.all_protected,
        "{:?}",
        p.protection.audit.ranges
    );
    ledger.record(&p.draft, &p.protection, rule).unwrap();
    p.report.write_all(out).unwrap();
    tqs
}

#[test]
fn attack_every_report_over_four_quarters_per_tenant_and_pooled_leaves_no_narrow_hidden_count() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 6000, 3);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01", "t02", "t03"]);
    let mut seen = Seen::default();
    let mut q = Quarter::parse("2025Q4").unwrap();
    let mut n = 0;
    for _ in 0..4 {
        for scope in [None, Some("t01"), Some("t02"), Some("t03")] {
            let out = tmp
                .path()
                .join(format!("out-{q}-{}", scope.unwrap_or("pooled")));
            let tqs = publish(&store, q, scope, &out);
            // The chart's points: each quarter's end stock over the report's tenants.
            let mut history: HashMap<String, Units> = HashMap::new();
            for (k, (hq, _)) in tqs[0].stock_history.iter().enumerate() {
                history.insert(
                    hq.to_string(),
                    union(tqs.iter().map(|t| &t.stock_history[k].1)),
                );
            }
            seen.read_report(&out, &tqs, &history);
            n += 1;
        }
        q = q.next();
    }
    assert_eq!(
        Ledger::open(store.root()).unwrap().priors().unwrap().len(),
        n
    );
    let ranges = seen.audit(5);
    assert!(
        ranges.len() > 20,
        "too few hidden counts to make the point: {}",
        ranges.len()
    );
    let narrow: Vec<_> = ranges.iter().filter(|r| !r.3).collect();
    assert!(
        narrow.is_empty(),
        "hidden counts narrower than their range: {narrow:?}"
    );
}

#[test]
fn attack_publishing_without_the_ledger_would_leave_hidden_counts_exposed() {
    // The same audit catches what the ledger prevents: a tenant's report made without the
    // pooled one shows what the pooled one hid.
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 3000, 3);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01", "t02", "t03"]);
    let q = Quarter::parse("2026Q3").unwrap();
    let mut seen = Seen::default();
    let pooled = tmp.path().join("pooled");
    let tqs = publish(&store, q, None, &pooled);
    let mut history: HashMap<String, Units> = HashMap::new();
    for (k, (hq, _)) in tqs[0].stock_history.iter().enumerate() {
        history.insert(
            hq.to_string(),
            union(tqs.iter().map(|t| &t.stock_history[k].1)),
        );
    }
    seen.read_report(&pooled, &tqs, &history);
    // Each tenant's report protected alone, as before the ledger existed.
    for t in ["t01", "t02", "t03"] {
        let tq = vec![tenant_quarter(&store.scope(&TenantId::new(t).unwrap()), q, 8).unwrap()];
        let p =
            Report::quarterly(q, &tq, Lang::It, Rule::new(MinCount::default()), &[], t).unwrap();
        let out = tmp.path().join(t);
        p.report.write_all(&out).unwrap();
        let mut h: HashMap<String, Units> = HashMap::new();
        for (hq, u) in &tq[0].stock_history {
            h.insert(hq.to_string(), u.clone());
        }
        seen.read_report(&out, &tq, &h);
    }
    let ranges = seen.audit(5);
    assert!(
        ranges.iter().any(|r| !r.3),
        "without the ledger some hidden count should be exposed: {ranges:?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    // Random linked tables (two breakdowns of the same persons, with margins): protected by
    // the publication code, audited here.
    #[test]
    fn random_linked_tables_pass_the_independent_audit(
        people in proptest::collection::vec((0usize..3, 0usize..3, 0usize..2), 10..120),
    ) {
        // Tenant × sex and tenant × group: the same persons in two tables.
        let mut d = Draft::new("random");
        let mut seen_sets: Vec<Units> = Vec::new();
        let unit = |i: usize| i as u64 * 7919 + 13;
        for (name, pick) in [("sex", 2usize), ("group", 1usize)] {
            let ncat = if pick == 2 { 2 } else { 3 };
            let mut totals_col: Vec<Units> = vec![Units::new(); ncat + 1];
            for t in 0..3 {
                let mut row: Vec<Units> = vec![Units::new(); ncat];
                for (i, p) in people.iter().enumerate() {
                    if p.0 == t {
                        let c = if pick == 2 { p.2 } else { p.1 };
                        row[c].push(unit(i));
                    }
                }
                let total = union(row.iter());
                let mut line = Vec::new();
                for (c, u) in row.iter().enumerate() {
                    line.push(d.count(&format!("{name}/{t}/{c}"), u.clone(), false));
                    totals_col[c].extend(u.iter().copied());
                    seen_sets.push(u.clone());
                }
                line.push(d.count(&format!("{name}/{t}/total"), total.clone(), true));
                totals_col[ncat].extend(total.iter().copied());
                seen_sets.push(total);
                d.line(line);
            }
            for (c, u) in totals_col.iter_mut().enumerate() {
                u.sort_unstable();
                let idx = d.count(&format!("{name}/total/{c}"), u.clone(), true);
                let _ = idx;
                seen_sets.push(u.clone());
            }
        }
        let p = protect(&d, &[], Rule::new(MinCount::default())).unwrap();
        proptest::prop_assert!(p.audit.all_protected);
        let mut seen = Seen::default();
        for (i, c) in d.counts.iter().enumerate() {
            seen.cells.push((c.units.clone(), p.shown(&d, i)));
        }
        for r in seen.audit(5) {
            proptest::prop_assert!(r.3, "{r:?}");
        }
    }
}
