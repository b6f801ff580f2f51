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

// The attacker (what was seen, its atoms, the interval programmes), shared with the binary's
// attack on the annual report (studies/tests/cli/annual_attack.rs).
#[path = "interval_attack.rs"]
mod interval_attack;
use interval_attack::{Seen, union};

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
