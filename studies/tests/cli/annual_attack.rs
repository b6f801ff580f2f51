//! The annual report attacked from the command line, as an office publishes: quarterly
//! reports (pooled and per authority) of two quarters, then the annual report pooled and
//! for one authority, each protected by the binary against the store's ledger. The
//! attacker reads every `report.json`, ties each printed count (and each hidden one) to
//! the persons it counts, re-derived here from the store with the engine's indicators,
//! analysis tables and latent classes (never from the protection's draft), and solves its
//! own interval programmes with microlp (tests/it/interval_attack.rs, shared with the
//! library's quarterly attack). Every printed count is checked to be the size of the set
//! derived here.
//!
//! What the attacker reads as counts of persons, report by report:
//! - quarterly: every table of the library's quarterly report (the shared reader), plus
//!   the binary's sections: `intake_gol_paths`, `gol_adjustments` (a share of the assessed
//!   with a count under it gives the assessed), `occupability_profiles` (the classes
//!   refitted here; shares give the class totals), `intake_scores`, `outcomes`,
//!   `operators` (persons and re-employed, from the rating cohort's complete rows) and
//!   `operator_shifts` (as the annual audit, over the window the report records);
//! - annual: `year_flows` and its chart, `year_indicators`, `service_effects` and
//!   `effects_by_profile` (treated and controls: the cohorts' complete rows, the profiles
//!   refitted here with the engine's LCA and the spec the quarterly reports record; the
//!   annual report records none, but fits with the same), `isa_before_after`,
//!   `isa_change`, `adjustment_audit` (a share printed beside the assessed gives its count:
//!   count = share × assessed / 100) and its funnel flags (an operator flagged for its
//!   overrides, or not, bounds its overridden count: an inequality of the programme),
//!   and the profiling section (`profile_quality`, `profile_calibration_by_group`,
//!   `profile_fairness`, `profile_reliability`: the index refitted here with the spec the
//!   report records, each group's persons, not employed and flagged, and the equal
//!   groups of predicted risk).
//!
//! Left out, as they are no counts of the publication's persons: labour demand (counts of
//! hires, published only by the series threshold and pooling), data quality (records in
//! files), and the figures computed from counts (rates, means, effects, O/E), which are
//! shown only when their counts are. Not modelled, as they are no linear facts: the
//! sudden-shift flags (they compare with the earlier window's counts, never published),
//! the funnel flags of `operator_shifts` (the window's total share is not printed) and
//! which operators that table lists (the others were not flagged).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use occupa_engine::analysis::{AnalysisSpec, AnalysisTable, CohortSpec, OutcomeSpec, from_store};
use occupa_engine::cluster::run::{ClusteringSpec, cluster_table};
use occupa_engine::columns::{Table, Values};
use occupa_engine::indicators::{
    PeriodFigures, Quarter, TenantQuarter, Units, age_band, quarter_figures, tenant_quarter,
};
use occupa_engine::instruments::Instruments;
use occupa_engine::profile::model::{ProfileSpec, group_labels};
use occupa_engine::store::{Store, TenantId};
use occupa_engine::territory::CitizenshipGroup;
use serde_json::Value;

#[path = "../../../tests/it/interval_attack.rs"]
mod interval_attack;
use interval_attack::{Range, Seen, union};

use super::occupa;

/// The quarterly tables that are not the library's (read here, not by the shared reader).
const BINARY_SECTIONS: [&str; 11] = [
    "intake_gol_paths",
    "operator_shifts",
    "operator_outcome_shifts",
    "gol_adjustments",
    "occupability_profiles",
    "intake_scores",
    "outcomes",
    "operators",
    "demand_forecast",
    "demand_forecast_vs_actual",
    "data_quality",
];

fn sorted(mut v: Units) -> Units {
    v.sort_unstable();
    v.dedup();
    v
}

fn report_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// A table of a report.json: its column keys and rows (label first).
struct Json<'a> {
    id: &'a str,
    columns: Vec<&'a str>,
    rows: Vec<&'a [Value]>,
}

fn tables(r: &Value) -> Vec<Json<'_>> {
    r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Json {
            id: t["id"].as_str().unwrap(),
            columns: t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect(),
            rows: t["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_array().unwrap().as_slice())
                .collect(),
        })
        .collect()
}

/// A printed count: `None` when hidden (null), or a whole number.
fn count(v: &Value) -> Option<u64> {
    v.as_f64().map(|x| {
        assert!(
            x >= 0.0 && x.fract() == 0.0,
            "a count that is not whole: {x}"
        );
        x as u64
    })
}

/// The count a printed share reveals: `share` % of `base` (both printed), a whole number.
fn revealed(share: &Value, base: &Value, what: &str) -> Option<u64> {
    let s = share.as_f64()?;
    let b = base
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: a share of a hidden count"));
    let x = s * b / 100.0;
    assert!(
        (x - x.round()).abs() < 1e-6,
        "{what}: {s} % of {b} is no count"
    );
    Some(x.round() as u64)
}

/// The base a printed share of a printed count reveals: `part` is `share` % of it.
fn base_of(share: &Value, part: &Value) -> Option<u64> {
    let (s, p) = (share.as_f64()?, part.as_f64()?);
    (s > 0.0).then(|| {
        let b = 100.0 * p / s;
        assert!((b - b.round()).abs() < 1e-6, "{p} is not {s} % of a count");
        b.round() as u64
    })
}

fn numbers(t: &Table, col: &str) -> Vec<f64> {
    t.numeric(col)
        .map(<[f64]>::to_vec)
        .unwrap_or_else(|_| vec![f64::NAN; t.len()])
}

/// A column's values as texts (numbers printed), `None` where missing or absent.
fn texts(t: &Table, col: &str) -> Vec<Option<String>> {
    match t.categories(col) {
        Ok((levels, codes)) => codes
            .iter()
            .map(|c| c.map(|c| levels[c as usize].clone()))
            .collect(),
        Err(_) => vec![None; t.len()],
    }
}

/// Whether each row has a value in every column a model term reads.
fn complete(t: &Table, terms: &[String]) -> Vec<bool> {
    let mut keep = vec![true; t.len()];
    for term in terms {
        let col = term
            .strip_prefix("C(")
            .and_then(|x| x.strip_suffix(')'))
            .unwrap_or(term);
        let v = texts(t, col);
        for (k, x) in keep.iter_mut().zip(v) {
            *k &= x.is_some();
        }
    }
    keep
}

fn quarter_of_month(m: &str) -> Option<Quarter> {
    let (y, mo) = m.split_once('-')?;
    let mo: u32 = mo.get(..2)?.parse().ok()?;
    Quarter::parse(&format!("{y}Q{}", mo.div_ceil(3))).ok()
}

/// Stable group keys as the Italian report prints them.
fn italian(key: &str) -> String {
    match key {
        "missing" => "non indicato",
        "15-29" => "15–29 anni",
        "30-49" => "30–49 anni",
        "50+" => "50 anni e oltre",
        "ITA" => "italiana",
        "EU" => "UE",
        "non-EU" => "extra UE",
        other => other,
    }
    .to_string()
}

/// Each tenant's analysis table for `spec` (tenants whose table cannot be built are left
/// out, as the binary leaves them out).
fn analysis(
    store: &Store,
    tenants: &[String],
    spec: &AnalysisSpec,
) -> Vec<(String, AnalysisTable)> {
    let valid = spec.check().unwrap();
    tenants
        .iter()
        .filter_map(|t| {
            from_store(&store.scope(&TenantId::new(t).unwrap()), &valid)
                .ok()
                .map(|b| (t.clone(), b))
        })
        .collect()
}

/// Latent classes of the ASSO answers of `rows` ((table, row) pairs), 2 to 5 classes with
/// the range narrowed until one fits, as the reports fit their profiles (the spec is the
/// one the quarterly report records). Each row's class and the classes' labels.
fn classes(
    spec: &ClusteringSpec,
    tables: &[&Table],
    answers: &[String],
    rows: &[(usize, usize)],
) -> Option<(Vec<Option<usize>>, Vec<String>)> {
    let columns: Vec<(String, Values)> = answers
        .iter()
        .map(|c| {
            let v: Vec<f64> = rows
                .iter()
                .map(|&(t, r)| tables[t].numeric(c).map_or(f64::NAN, |x| x[r]))
                .collect();
            (c.clone(), Values::Numbers(v))
        })
        .collect();
    let table = Table::from_values("the attacker's ASSO answers", columns).ok()?;
    for top in (2..=5).rev() {
        let mut s = spec.clone();
        s.columns = answers.to_vec();
        s.k_range = Some(format!("2..{top}"));
        if let Ok(report) = s.check().and_then(|s| cluster_table(&table, &s)) {
            let labels = report
                .profiles
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    // The report names a class by the ASSO dimensions it stands out on.
                    let label = occupa_reports::profiles::dimension_label(
                        &p.z,
                        answers,
                        occupa_reports::Lang::It,
                    )
                    .unwrap_or_else(|| p.label.clone());
                    format!("Profilo {}: {label}", i + 1)
                })
                .collect();
            return Some((report.labels, labels));
        }
    }
    None
}

/// Everything published, as the attacker reads it.
struct Attacker<'a> {
    store: &'a Store,
    seen: Seen,
    /// The profiles' clustering spec, as the quarterly reports record it.
    profile_spec: Option<ClusteringSpec>,
}

impl Attacker<'_> {
    fn push(
        &mut self,
        publication: &str,
        t: &Json,
        label: &str,
        col: &str,
        u: Units,
        v: Option<u64>,
    ) {
        self.seen
            .push(format!("{publication} {} {label} {col}", t.id), u, v);
    }

    /// An audit of the operators' adjustments and overrides (the annual report's, or the
    /// quarterly report's flagged operators): each operator's first GOL assessments of the
    /// intake in the window, assessed, adjusted ±3, path overridden (an operator redacted
    /// as a name is none); a share printed beside the assessed gives its count.
    fn adjustments(
        &mut self,
        publication: &str,
        t: &Json,
        intake: &[(String, AnalysisTable)],
        window: &dyn Fn(&AnalysisTable) -> Vec<bool>,
    ) {
        let mut by_op: BTreeMap<(String, String), [Units; 3]> = BTreeMap::new();
        let mut total: [Units; 3] = Default::default();
        for (tenant, b) in intake {
            let tb = &b.table;
            let (path, adj, ovr, op) = (
                numbers(tb, "gol_path"),
                numbers(tb, "gol_adjusted"),
                numbers(tb, "gol_override"),
                texts(tb, "gol_operator"),
            );
            let inside = window(b);
            for r in 0..tb.len() {
                let Some(op) = &op[r] else { continue };
                if op.starts_with('[') || path[r].is_nan() || !inside[r] {
                    continue;
                }
                let e = by_op.entry((tenant.clone(), op.clone())).or_default();
                for (k, f) in [true, adj[r] == 1.0, ovr[r] == 1.0].into_iter().enumerate() {
                    if f {
                        e[k].push(b.unit_keys[r]);
                        total[k].push(b.unit_keys[r]);
                    }
                }
            }
        }
        let total_row = t.rows.iter().find(|r| r[0] == "Totale");
        for row in &t.rows {
            let label = row[0].as_str().unwrap();
            let sets = if label == "Totale" {
                total.clone()
            } else {
                // "t01 / OP-01-1" when the operators are of several authorities, else the
                // operator; one with assessments only in the earlier window has none here.
                let found: Vec<&[Units; 3]> = by_op
                    .iter()
                    .filter(|((tn, op), _)| match label.split_once(" / ") {
                        Some((t, o)) => tn == t && op == o,
                        None => op == label,
                    })
                    .map(|(_, s)| s)
                    .collect();
                assert!(found.len() <= 1, "{publication}: operator {label}");
                found.first().map(|s| (*s).clone()).unwrap_or_default()
            };
            let what = format!("{publication} {} {label}", t.id);
            let shown = [
                count(&row[1]),
                revealed(&row[2], &row[1], &what),
                revealed(&row[3], &row[1], &what),
            ];
            for (k, col) in ["assessed", "adjusted", "overridden"].iter().enumerate() {
                self.push(
                    publication,
                    t,
                    label,
                    col,
                    sorted(sets[k].clone()),
                    shown[k],
                );
            }
            // The funnel's flags for the overrides are printed only beside a printed
            // overridden share (the report's rule since the attack found that a flag, or its
            // absence, beside a hidden count bounds it): flagged above (or below) the 99.8 %
            // limits around the total's share, or not, bounds the count. Where the total's
            // share is printed, the attacker knows p0.
            let (Some(n), Some(p0)) = (
                row[1].as_f64(),
                total_row.and_then(|r| r[3].as_f64()).map(|x| x / 100.0),
            ) else {
                continue;
            };
            if label == "Totale" || row[3].is_null() || n == 0.0 {
                continue;
            }
            let flags = row[4].as_str().unwrap_or("");
            let lim = 3.090_232 * (p0 * (1.0 - p0) / n).sqrt();
            let (above, below) = (n * (p0 + lim), n * (p0 - lim));
            let (lo, hi) = if flags.contains("cambi di percorso: sopra il limite") {
                ((above + 1e-9).floor() + 1.0, n)
            } else if flags.contains("cambi di percorso: sotto il limite") {
                (0.0, (below - 1e-9).ceil() - 1.0)
            } else {
                ((below - 1e-9).ceil().max(0.0), (above + 1e-9).floor())
            };
            self.seen.bound(
                format!("{what} overridden (funnel flags: {flags:?})"),
                sorted(sets[2].clone()),
                lo,
                hi,
            );
        }
    }

    /// A quarterly report of the binary: the library's tables through the shared reader,
    /// the binary's sections here.
    fn quarterly(&mut self, dir: &Path) {
        let r = report_json(dir);
        let publication = r["provenance"]["publication"].as_str().unwrap().to_string();
        let ind = &r["provenance"]["specs"]["indicators"];
        let q = Quarter::parse(ind["quarter"].as_str().unwrap()).unwrap();
        let tenants: Vec<String> = ind["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let history_quarters = ind["history_quarters"].as_u64().unwrap() as usize;
        let tqs: Vec<TenantQuarter> = tenants
            .iter()
            .map(|t| {
                tenant_quarter(
                    &self.store.scope(&TenantId::new(t).unwrap()),
                    q,
                    history_quarters,
                )
                .unwrap()
            })
            .collect();
        let mut history: HashMap<String, Units> = HashMap::new();
        for (k, (hq, _)) in tqs[0].stock_history.iter().enumerate() {
            history.insert(
                hq.to_string(),
                union(tqs.iter().map(|t| &t.stock_history[k].1)),
            );
        }
        self.seen
            .read_report_except(dir, &tqs, &history, &BINARY_SECTIONS);
        let specs = &r["provenance"]["specs"];
        if self.profile_spec.is_none() {
            self.profile_spec =
                Some(serde_json::from_value(specs["intake"]["profiles"].clone()).unwrap());
        }
        let all = tables(&r);
        let find = |id: &str| all.iter().find(|t| t.id == id);

        // The intake the report reads (the window it records): the profiles take this
        // quarter and the one before, the operators' audit the window it records.
        let intake_spec = AnalysisSpec {
            cohort: CohortSpec {
                intake_from: specs["intake"]["cohort"]["intake_from"]
                    .as_str()
                    .map(String::from),
                intake_to: specs["intake"]["cohort"]["intake_to"]
                    .as_str()
                    .map(String::from),
                ..CohortSpec::default()
            },
            outcomes: OutcomeSpec {
                months: vec![6],
                observed_until: Some(q.end().to_string()),
                ..OutcomeSpec::default()
            },
            ..AnalysisSpec::default()
        };
        let intake = analysis(self.store, &tenants, &intake_spec);
        // (table, row, period: 0 the quarter before, 1 this one)
        let mut people: Vec<(usize, usize, usize)> = Vec::new();
        for (ti, (_, b)) in intake.iter().enumerate() {
            for (row, m) in texts(&b.table, "intake_month").iter().enumerate() {
                let Some(iq) = m.as_deref().and_then(quarter_of_month) else {
                    continue;
                };
                if let Some(period) = [q.prev(), q].iter().position(|x| *x == iq) {
                    people.push((ti, row, period));
                }
            }
        }
        let num = |p: &(usize, usize, usize), col: &str| -> f64 {
            intake[p.0]
                .1
                .table
                .numeric(col)
                .map_or(f64::NAN, |v| v[p.1])
        };
        let set = |f: &dyn Fn(&(usize, usize, usize)) -> bool| -> Units {
            sorted(
                people
                    .iter()
                    .filter(|p| f(p))
                    .map(|p| intake[p.0].1.unit_keys[p.1])
                    .collect(),
            )
        };
        if let Some(t) = find("intake_gol_paths") {
            assert_eq!(t.rows.len(), 4, "{publication}: four GOL paths");
            for (i, row) in t.rows.iter().enumerate() {
                let path = (i + 1) as f64;
                for (c, col) in t.columns.iter().enumerate().skip(1) {
                    let period = match *col {
                        "previous" => 0,
                        "current" => 1,
                        _ => continue,
                    };
                    let u = set(&|p| p.2 == period && num(p, "gol_path") == path);
                    self.push(
                        &publication,
                        t,
                        &format!("GOL {}", i + 1),
                        col,
                        u,
                        count(&row[c]),
                    );
                }
            }
        }
        if let Some(t) = find("gol_adjustments") {
            let assessed = set(&|p| p.2 == 1 && !num(p, "gol_path").is_nan());
            let mut base = None;
            for (i, row) in t.rows.iter().enumerate() {
                let col = ["gol_adjusted", "gol_override"][i];
                let u = set(&|p| p.2 == 1 && !num(p, "gol_path").is_nan() && num(p, col) == 1.0);
                self.push(&publication, t, col, "persons", u, count(&row[1]));
                base = base.or_else(|| base_of(&row[2], &row[1]));
            }
            // The assessed: printed nowhere, given by a share of a printed count.
            self.push(
                &publication,
                t,
                "assessed",
                "(share's base)",
                assessed,
                base,
            );
        }
        if let Some(t) = find("occupability_profiles") {
            let answers: Vec<String> = intake
                .first()
                .map(|(_, b)| {
                    b.table
                        .headers()
                        .iter()
                        .filter(|h| h.starts_with("asso_q"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let with_asso: Vec<usize> = (0..people.len())
                .filter(|&i| answers.iter().any(|c| !num(&people[i], c).is_nan()))
                .collect();
            let rows: Vec<(usize, usize)> = with_asso
                .iter()
                .map(|&i| (people[i].0, people[i].1))
                .collect();
            let refs: Vec<&Table> = intake.iter().map(|(_, b)| &b.table).collect();
            let (labels, names) =
                classes(self.profile_spec.as_ref().unwrap(), &refs, &answers, &rows)
                    .unwrap_or_else(|| panic!("{publication}: the profiles could not be refitted"));
            let mut class_of: Vec<Option<usize>> = vec![None; people.len()];
            for (&i, l) in with_asso.iter().zip(&labels) {
                class_of[i] = *l;
            }
            let idx: HashMap<(usize, usize), usize> = people
                .iter()
                .enumerate()
                .map(|(i, p)| ((p.0, p.1), i))
                .collect();
            let class_set = |period: usize, k: Option<usize>| -> Units {
                set(&|p| {
                    p.2 == period
                        && match (k, class_of[idx[&(p.0, p.1)]]) {
                            (Some(k), c) => c == Some(k),
                            (None, c) => c.is_some(),
                        }
                })
            };
            assert_eq!(
                t.rows.len(),
                names.len(),
                "{publication}: the profiles refitted"
            );
            let mut totals: [Option<u64>; 2] = [None, None];
            for (k, row) in t.rows.iter().enumerate() {
                assert_eq!(
                    row[0].as_str().unwrap(),
                    names[k],
                    "{publication}: profile {}",
                    k + 1
                );
                for (period, (c, s)) in [(1, 2), (3, 4)].into_iter().enumerate() {
                    self.push(
                        &publication,
                        t,
                        &names[k],
                        t.columns[c],
                        class_set(period, Some(k)),
                        count(&row[c]),
                    );
                    totals[period] = totals[period].or_else(|| base_of(&row[s], &row[c]));
                }
            }
            for (period, total) in totals.into_iter().enumerate() {
                self.push(
                    &publication,
                    t,
                    "total",
                    &format!("period {period} (shares' base)"),
                    class_set(period, None),
                    total,
                );
            }
        }
        if let Some(t) = find("intake_scores") {
            let inst = Instruments::builtin().unwrap();
            let mut columns: HashMap<String, String> = HashMap::new();
            for (letter, s) in ["a", "b", "c", "d"].iter().zip(&inst.gol.sections) {
                let thr = s.threshold.map_or(String::new(), |t| format!(" (≥ {t})"));
                columns.insert(
                    format!("GOL {}: {}{thr}", letter.to_uppercase(), s.label_it),
                    format!("gol_{letter}"),
                );
            }
            columns.insert("GOL C + D (≥ 12)".into(), "gol_cd".into());
            for (prefix, qn) in [("asso", &inst.asso), ("isa", &inst.isa)] {
                for g in &qn.groups {
                    columns.insert(
                        format!("{}: {}", prefix.to_uppercase(), g.label_it),
                        format!("{prefix}_{}", g.id),
                    );
                }
            }
            for row in &t.rows {
                let label = row[0].as_str().unwrap();
                let col = &columns[label];
                let u = set(&|p| p.2 == 1 && !num(p, col).is_nan());
                self.push(&publication, t, label, "persons", u, count(&row[1]));
            }
        }

        // The operators flagged over the last four quarters (the window the report
        // records).
        if let Some(t) = find("operator_shifts") {
            let later = &specs["intake"]["operator_audit"]["later"];
            let (from, to) = (
                Quarter::parse(later[0].as_str().unwrap()).unwrap(),
                Quarter::parse(later[1].as_str().unwrap()).unwrap(),
            );
            let window = |b: &AnalysisTable| -> Vec<bool> {
                texts(&b.table, "intake_month")
                    .iter()
                    .map(|m| {
                        m.as_deref()
                            .and_then(quarter_of_month)
                            .is_some_and(|x| from <= x && x <= to)
                    })
                    .collect()
            };
            self.adjustments(&publication, t, &intake, &window);
        }

        // Employment outcomes of the cohort a year before.
        if let Some(t) = find("outcomes") {
            let spec: AnalysisSpec = serde_json::from_value(specs["outcomes"].clone()).unwrap();
            let cohort = analysis(self.store, &tenants, &spec);
            // (groups: sex, citizenship, age band, province; unit; e6, e12, p12)
            let mut persons: Vec<([String; 4], u64, [bool; 3])> = Vec::new();
            for (_, b) in &cohort {
                let tb = &b.table;
                let (e6, e12, p12, age) = (
                    numbers(tb, "employed_6m"),
                    numbers(tb, "employed_12m"),
                    numbers(tb, "permanent_12m"),
                    numbers(tb, "age"),
                );
                let (sex, cit, prov) = (
                    texts(tb, "sex"),
                    texts(tb, "citizenship"),
                    texts(tb, "province"),
                );
                for r in 0..tb.len() {
                    if e6[r].is_nan() || e12[r].is_nan() {
                        continue;
                    }
                    let area = match cit[r].as_deref().map(CitizenshipGroup::of) {
                        Some(CitizenshipGroup::Italian) => "ITA",
                        Some(CitizenshipGroup::OtherEu) => "EU",
                        Some(CitizenshipGroup::NonEu) => "non-EU",
                        None => "missing",
                    };
                    let or_missing =
                        |x: &Option<String>| x.clone().unwrap_or_else(|| "missing".into());
                    persons.push((
                        [
                            or_missing(&sex[r]),
                            area.into(),
                            age_band(age[r]).into(),
                            or_missing(&prov[r]),
                        ],
                        b.unit_keys[r],
                        [e6[r] == 1.0, e12[r] == 1.0, p12[r] == 1.0],
                    ));
                }
            }
            let headings = ["Sesso", "Cittadinanza", "Età", "Provincia"];
            for row in &t.rows {
                let label = row[0].as_str().unwrap();
                // The total, or one group of one breakdown.
                let group: Option<(usize, &str)> = label
                    .split_once(": ")
                    .map(|(h, v)| (headings.iter().position(|x| *x == h).unwrap(), v));
                assert!(
                    group.is_some() || label == "Totale",
                    "{publication}: {label}"
                );
                let member = |k: &[String; 4]| group.is_none_or(|(g, v)| italian(&k[g]) == v);
                for (c, col) in t.columns.iter().enumerate().skip(1) {
                    let pick: Option<usize> = match *col {
                        "persons" => None,
                        "employed_6m" => Some(0),
                        "employed_12m" => Some(1),
                        "permanent_12m" => Some(2),
                        _ => continue,
                    };
                    let u = sorted(
                        persons
                            .iter()
                            .filter(|p| member(&p.0) && pick.is_none_or(|k| p.2[k]))
                            .map(|p| p.1)
                            .collect(),
                    );
                    self.push(&publication, t, label, col, u, count(&row[c]));
                }
            }
        }

        // Operators: persons rated (the cohort's rows complete in the outcome, the operator
        // and the case mix) and those with the outcome.
        if let Some(t) = find("operators") {
            let o = &specs["operators"];
            let spec: AnalysisSpec = serde_json::from_value(o["cohort"].clone()).unwrap();
            let outcome = o["outcome"].as_str().unwrap().to_string();
            let operator = o["operator"].as_str().unwrap().to_string();
            let mut terms: Vec<String> = vec![outcome.clone(), operator.clone()];
            terms.extend(
                o["covariates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string()),
            );
            let mut rated: BTreeMap<(String, String), [Units; 2]> = BTreeMap::new();
            for (tenant, b) in analysis(self.store, &tenants, &spec) {
                let keep = complete(&b.table, &terms);
                let (y, op) = (numbers(&b.table, &outcome), texts(&b.table, &operator));
                for r in 0..b.table.len() {
                    if !keep[r] {
                        continue;
                    }
                    let e = rated
                        .entry((tenant.clone(), op[r].clone().unwrap()))
                        .or_default();
                    e[0].push(b.unit_keys[r]);
                    if y[r] == 1.0 {
                        e[1].push(b.unit_keys[r]);
                    }
                }
            }
            // The anomalies' operators whose outcomes shifted print the same two counts.
            let shifted = find("operator_outcome_shifts");
            for (t, row) in t.rows.iter().map(|r| (t, r)).chain(
                shifted
                    .iter()
                    .flat_map(|s| s.rows.iter().map(move |r| (*s, r))),
            ) {
                let label = row[0].as_str().unwrap();
                // "t01 / OP-01-1" when several authorities are rated, else the operator.
                let found: Vec<&[Units; 2]> = rated
                    .iter()
                    .filter(|((tn, op), _)| match label.split_once(" / ") {
                        Some((t, o)) => tn == t && op == o,
                        None => op == label,
                    })
                    .map(|(_, s)| s)
                    .collect();
                assert_eq!(found.len(), 1, "{publication}: operator {label}");
                let sets = found[0];
                for (k, col) in ["persons", "observed"].iter().enumerate() {
                    self.push(
                        &publication,
                        t,
                        label,
                        col,
                        sorted(sets[k].clone()),
                        count(&row[k + 1]),
                    );
                }
            }
        }
    }

    /// An annual report of the binary.
    fn annual(&mut self, dir: &Path) {
        let r = report_json(dir);
        let publication = r["provenance"]["publication"].as_str().unwrap().to_string();
        let specs = &r["provenance"]["specs"];
        let tenants: Vec<String> = specs["indicators"]["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let quarters: Vec<Quarter> = specs["indicators"]["quarters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| Quarter::parse(q.as_str().unwrap()).unwrap())
            .collect();
        let year = quarters[0].year;
        let figures: Vec<(String, Vec<PeriodFigures>)> = tenants
            .iter()
            .map(|t| {
                let scope = self.store.scope(&TenantId::new(t).unwrap());
                (t.clone(), quarter_figures(&scope, &quarters).unwrap())
            })
            .collect();
        let all = tables(&r);
        let find = |id: &str| all.iter().find(|t| t.id == id);

        // The year by quarter, and the year (its start, everyone in it, its end).
        let flow = |f: &PeriodFigures, c: usize| -> Units {
            match c {
                0 => f.flow_units.stock_start.clone(),
                1 => f.flow_units.inflow.clone(),
                2 => f.flow_units.outflow.clone(),
                3 => f.flow_units.stock_end.clone(),
                4 => f.placed.clone(),
                _ => f.placed_permanent.clone(),
            }
        };
        let t = find("year_flows").unwrap();
        assert_eq!(t.rows.len(), quarters.len() + 1);
        for (k, row) in t.rows.iter().enumerate() {
            let label = row[0].as_str().unwrap();
            for c in 0..6 {
                let u = if k < quarters.len() {
                    assert_eq!(label, quarters[k].to_string());
                    union(
                        &figures
                            .iter()
                            .map(|(_, fs)| flow(&fs[k], c))
                            .collect::<Vec<_>>(),
                    )
                } else {
                    let per: Vec<Units> = figures
                        .iter()
                        .map(|(_, fs)| match c {
                            0 => flow(&fs[0], 0),
                            3 => flow(&fs[fs.len() - 1], 3),
                            _ => union(&fs.iter().map(|f| flow(f, c)).collect::<Vec<_>>()),
                        })
                        .collect();
                    union(&per)
                };
                self.push(
                    &publication,
                    t,
                    label,
                    t.columns[c + 1],
                    u,
                    count(&row[c + 1]),
                );
            }
        }
        for chart in r["charts"].as_array().unwrap() {
            assert_eq!(chart["id"], "stock_end_by_quarter");
            for p in chart["points"].as_array().unwrap() {
                let k = quarters
                    .iter()
                    .position(|q| q.to_string() == p[0].as_str().unwrap())
                    .unwrap();
                let u = union(
                    &figures
                        .iter()
                        .map(|(_, fs)| flow(&fs[k], 3))
                        .collect::<Vec<_>>(),
                );
                self.seen
                    .push(format!("{publication} chart {}", p[0]), u, count(&p[1]));
            }
        }
        // Physical indicators: distinct units in the year, each authority's and the total.
        if let Some(t) = find("year_indicators") {
            for row in &t.rows {
                let label = row[0].as_str().unwrap();
                let id = label.split(' ').next().unwrap();
                let of = |fs: &[PeriodFigures]| -> Units {
                    union(
                        fs.iter()
                            .map(|f| &f.indicators.iter().find(|i| i.id == id).unwrap().units),
                    )
                };
                for (c, col) in t.columns.iter().enumerate().skip(1) {
                    let u = match figures.iter().find(|(tn, _)| tn == col) {
                        Some((_, fs)) => of(fs),
                        None => union(&figures.iter().map(|(_, fs)| of(fs)).collect::<Vec<_>>()),
                    };
                    self.push(&publication, t, label, col, u, count(&row[c]));
                }
            }
        }

        // The effects' compared groups: each service's cohort (the spec the report
        // records), the rows complete in every column the estimator reads.
        let cohorts: BTreeMap<String, AnalysisSpec> =
            serde_json::from_value(specs["cohorts"].clone()).unwrap();
        let mut services: Vec<String> = Vec::new();
        let mut terms: HashMap<(String, u64), Vec<String>> = HashMap::new();
        for e in specs["effects"].as_array().unwrap() {
            let service = e["service"].as_str().unwrap().to_string();
            let ev = &e["evaluation"];
            let mut used: Vec<String> = vec![
                ev["treatment"].as_str().unwrap().to_string(),
                ev["outcome"].as_str().unwrap().to_string(),
            ];
            // The authority is a column of the pooled table: always known.
            used.extend(
                ev["covariates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .filter(|c| c != "C(tenant)"),
            );
            terms.insert(
                (service.clone(), e["horizon_months"].as_u64().unwrap()),
                used,
            );
            if !services.contains(&service) {
                services.push(service);
            }
        }
        let cohort_tables: Vec<(String, Vec<(String, AnalysisTable)>)> = services
            .iter()
            .map(|s| {
                let built = analysis(self.store, &tenants, &cohorts[s])
                    .into_iter()
                    .filter(|(_, b)| !b.table.is_empty())
                    .collect();
                (s.clone(), built)
            })
            .collect();
        // The profiles: latent classes of the ASSO answers of every distinct person of the
        // cohorts, refitted here.
        let mut profile: HashMap<u64, usize> = HashMap::new();
        let mut profile_names: Vec<String> = Vec::new();
        if let Some(first) = cohort_tables.iter().flat_map(|s| &s.1).next() {
            let answers: Vec<String> = first
                .1
                .table
                .headers()
                .iter()
                .filter(|h| h.starts_with("asso_q"))
                .cloned()
                .collect();
            let mut refs: Vec<&Table> = Vec::new();
            let mut keys: Vec<u64> = Vec::new();
            let mut rows: Vec<(usize, usize)> = Vec::new();
            let mut seen_keys: HashSet<u64> = HashSet::new();
            for (_, built) in &cohort_tables {
                for (_, b) in built {
                    let cols: Vec<&[f64]> = answers
                        .iter()
                        .filter_map(|c| b.table.numeric(c).ok())
                        .collect();
                    if cols.len() != answers.len() {
                        continue;
                    }
                    refs.push(&b.table);
                    for (r, &key) in b.unit_keys.iter().enumerate() {
                        if !seen_keys.insert(key) || cols.iter().all(|v| v[r].is_nan()) {
                            continue;
                        }
                        keys.push(key);
                        rows.push((refs.len() - 1, r));
                    }
                }
            }
            if !answers.is_empty() && keys.len() >= 50 {
                let (labels, names) = classes(
                    self.profile_spec
                        .as_ref()
                        .expect("a quarterly report first"),
                    &refs,
                    &answers,
                    &rows,
                )
                .unwrap_or_else(|| panic!("{publication}: the profiles could not be refitted"));
                for (k, l) in keys.iter().zip(labels) {
                    if let Some(l) = l {
                        profile.insert(*k, l);
                    }
                }
                profile_names = names;
            }
        }
        for id in ["service_effects", "effects_by_profile"] {
            let Some(t) = find(id) else { continue };
            for row in &t.rows {
                let label = row[0].as_str().unwrap();
                let mut parts = label.split(" · ");
                let service = parts.next().unwrap().to_string();
                let h: u64 = parts
                    .next()
                    .unwrap()
                    .trim_end_matches(" mesi")
                    .parse()
                    .unwrap();
                let class = parts.next().map(|p| {
                    profile_names
                        .iter()
                        .position(|n| n == p)
                        .unwrap_or_else(|| panic!("{publication}: {p} is not a refitted profile"))
                });
                let used = &terms[&(service.clone(), h)];
                let built = &cohort_tables.iter().find(|s| s.0 == service).unwrap().1;
                let mut groups: [Units; 2] = Default::default();
                for (_, b) in built {
                    let keep = complete(&b.table, used);
                    let exposed = numbers(&b.table, &used[0]);
                    for r in 0..b.table.len() {
                        let key = b.unit_keys[r];
                        if keep[r] && class.is_none_or(|k| profile.get(&key) == Some(&k)) {
                            groups[usize::from(exposed[r] != 1.0)].push(key);
                        }
                    }
                }
                for (k, col) in ["treated", "controls"].iter().enumerate() {
                    let c = t.columns.iter().position(|x| x == col).unwrap();
                    self.push(
                        &publication,
                        t,
                        label,
                        col,
                        sorted(groups[k].clone()),
                        count(&row[c]),
                    );
                }
            }
        }

        // The intake of the year and the year before: ISA twice, the adjustments' audit.
        let ic = &specs["intake"]["cohort"];
        let intake = analysis(
            self.store,
            &tenants,
            &AnalysisSpec {
                cohort: CohortSpec {
                    intake_from: ic["intake_from"].as_str().map(String::from),
                    intake_to: ic["intake_to"].as_str().map(String::from),
                    ..CohortSpec::default()
                },
                outcomes: OutcomeSpec {
                    months: vec![6],
                    ..OutcomeSpec::default()
                },
                ..AnalysisSpec::default()
            },
        );
        let in_year = |b: &AnalysisTable, y: i32| -> Vec<bool> {
            texts(&b.table, "intake_month")
                .iter()
                .map(|m| {
                    m.as_deref()
                        .is_some_and(|m| m.starts_with(&format!("{y}-")))
                })
                .collect()
        };
        let inst = Instruments::builtin().unwrap();
        if let Some(t) = find("isa_before_after") {
            for row in &t.rows {
                let label = row[0].as_str().unwrap();
                let g = inst
                    .isa
                    .groups
                    .iter()
                    .find(|g| g.label_it == label)
                    .unwrap();
                let mut u = Units::new();
                for (_, b) in &intake {
                    let (a, z) = (
                        numbers(&b.table, &format!("isa_{}", g.id)),
                        numbers(&b.table, &format!("isa2_{}", g.id)),
                    );
                    let yr = in_year(b, year);
                    u.extend(
                        (0..b.table.len())
                            .filter(|&r| yr[r] && a[r].is_finite() && z[r].is_finite())
                            .map(|r| b.unit_keys[r]),
                    );
                }
                self.push(&publication, t, label, "persons", sorted(u), count(&row[1]));
            }
        }
        if let Some(t) = find("isa_change") {
            // The mean change over the dimensions with both scores: improved beyond half a
            // point, worse beyond half a point, unchanged between.
            let mut sets: [Units; 3] = Default::default();
            for (_, b) in &intake {
                let yr = in_year(b, year);
                let pairs: Vec<(Vec<f64>, Vec<f64>)> = inst
                    .isa
                    .groups
                    .iter()
                    .map(|g| {
                        (
                            numbers(&b.table, &format!("isa_{}", g.id)),
                            numbers(&b.table, &format!("isa2_{}", g.id)),
                        )
                    })
                    .collect();
                for r in 0..b.table.len() {
                    let d: Vec<f64> = pairs
                        .iter()
                        .filter(|(a, z)| a[r].is_finite() && z[r].is_finite())
                        .map(|(a, z)| z[r] - a[r])
                        .collect();
                    if !yr[r] || d.is_empty() {
                        continue;
                    }
                    let m = d.iter().sum::<f64>() / d.len() as f64;
                    let k = if m > 0.5 {
                        0
                    } else if m < -0.5 {
                        2
                    } else {
                        1
                    };
                    sets[k].push(b.unit_keys[r]);
                }
            }
            let row = t.rows[0];
            for (k, set) in sets.iter().enumerate() {
                self.push(
                    &publication,
                    t,
                    "all",
                    t.columns[k + 1],
                    sorted(set.clone()),
                    count(&row[k + 1]),
                );
            }
            self.push(
                &publication,
                t,
                "all",
                t.columns[4],
                union(&sets),
                count(&row[4]),
            );
        }
        if let Some(t) = find("adjustment_audit") {
            let yr = |b: &AnalysisTable| in_year(b, year);
            self.adjustments(&publication, t, &intake, &yr);
        }
        if find("profile_quality").is_some() {
            self.profiling(&publication, &r, &tenants, &all);
        }
        for t in &all {
            assert!(
                [
                    "year_flows",
                    "year_indicators",
                    "service_effects",
                    "effects_by_profile",
                    "isa_before_after",
                    "isa_change",
                    "adjustment_audit",
                    "profile_quality",
                    "profile_calibration_by_group",
                    "profile_fairness",
                    "profile_reliability",
                    "profile_marginal_effects",
                    "demand_forecast",
                    "demand_forecast_vs_actual",
                    "data_quality",
                ]
                .contains(&t.id),
                "{publication}: table {} is not known to the attack",
                t.id
            );
        }
    }
}

impl Attacker<'_> {
    /// The profiling section: the persons of the recorded cohort, the index refitted with
    /// the recorded spec on the authorities' tables stacked, and every printed count tied
    /// to its persons: the training and checked persons, each group's persons and not
    /// employed, flagged and flagged among the not employed, and the equal groups of
    /// predicted risk. Groups are read from the printed labels (Italian).
    fn profiling(&mut self, publication: &str, r: &Value, tenants: &[String], all: &[Json]) {
        let specs = &r["provenance"]["specs"];
        let cohort: AnalysisSpec =
            serde_json::from_value(specs["profiling_cohort"].clone()).unwrap();
        let spec: ProfileSpec = serde_json::from_value(specs["profiling"]["spec"].clone()).unwrap();
        let built = analysis(self.store, tenants, &cohort);
        let parts: Vec<&Table> = built.iter().map(|(_, b)| &b.table).collect();
        let mut table = Table::stack("attacker", &parts).unwrap();
        if built.len() > 1 {
            let tn = built
                .iter()
                .flat_map(|(t, b)| std::iter::repeat_n(Some(t.clone()), b.table.len()))
                .collect();
            table = table.with_text_column("tenant", tn).unwrap();
        }
        let keys: Vec<u64> = built
            .iter()
            .flat_map(|(_, b)| b.unit_keys.iter().copied())
            .collect();
        let (model, report) = spec.fit(&table).unwrap();
        let p = model.predict(&table).unwrap().p;
        let y = numbers(&table, &spec.outcome);
        let val = &report.validation_rows;
        let risk = |i: usize| 1.0 - p[i];
        let event = |i: usize| y[i] == 0.0;
        let set = |rows: &mut dyn Iterator<Item = usize>| -> Units {
            sorted(rows.map(|i| keys[i]).collect())
        };
        let find = |id: &str| all.iter().find(|t| t.id == id).unwrap();
        let t = find("profile_quality");
        let (months, codes) = table.categories(&spec.period).unwrap();
        let from = spec.train_from.clone().unwrap();
        let to = spec.validate_from.clone().unwrap();
        let training = set(&mut (0..table.len()).filter(|&i| {
            let m = codes[i]
                .map(|c| months[c as usize].clone())
                .unwrap_or_default();
            !y[i].is_nan() && p[i].is_finite() && m >= from && m < to
        }));
        assert_eq!(training.len(), report.n_train);
        self.push(
            publication,
            t,
            "training",
            "persons",
            training,
            count(&t.rows[0][1]),
        );
        self.push(
            publication,
            t,
            "check",
            "persons",
            set(&mut val.iter().copied()),
            count(&t.rows[1][1]),
        );
        // The groups as the report prints them.
        let names: BTreeMap<&str, (&str, &str)> = [
            ("Sesso: donne", ("sex", "F")),
            ("Sesso: uomini", ("sex", "M")),
            ("Cittadinanza: italiana", ("citizenship_group", "ITA")),
            ("Cittadinanza: altro Paese UE", ("citizenship_group", "EU")),
            ("Cittadinanza: extra UE", ("citizenship_group", "non-EU")),
            ("Età: 15-24", ("age_band", "15-24")),
            ("Età: 25-34", ("age_band", "25-34")),
            ("Età: 35-49", ("age_band", "35-49")),
            ("Età: 50+", ("age_band", "50+")),
        ]
        .into_iter()
        .collect();
        let members = |label: &str| -> Vec<usize> {
            if label == "Tutte le persone" {
                return val.clone();
            }
            let (column, level) = names
                .get(label)
                .unwrap_or_else(|| panic!("{publication}: profiling group {label}"));
            let labels = group_labels(&table, column).unwrap();
            val.iter()
                .copied()
                .filter(|&i| labels[i].as_deref() == Some(*level))
                .collect()
        };
        let t = find("profile_calibration_by_group");
        for row in &t.rows {
            let label = row[0].as_str().unwrap();
            let m = members(label);
            self.push(
                publication,
                t,
                label,
                "persons",
                set(&mut m.iter().copied()),
                count(&row[1]),
            );
            self.push(
                publication,
                t,
                label,
                "not_employed",
                set(&mut m.iter().copied().filter(|&i| event(i))),
                count(&row[2]),
            );
        }
        let t = find("profile_fairness");
        for row in &t.rows {
            let label = row[0].as_str().unwrap();
            let m = members(label);
            let flagged = |th: f64| m.iter().copied().filter(move |&i| risk(i) >= th);
            self.push(
                publication,
                t,
                label,
                "flagged",
                set(&mut flagged(spec.threshold)),
                count(&row[1]),
            );
            self.push(
                publication,
                t,
                label,
                "flagged_not_employed",
                set(&mut flagged(spec.threshold).filter(|&i| event(i))),
                count(&row[2]),
            );
        }
        let t = find("profile_reliability");
        let mut by_risk = val.clone();
        by_risk.sort_by(|&a, &b| risk(a).total_cmp(&risk(b)).then(a.cmp(&b)));
        let g = t.rows.len();
        assert_eq!(g, if by_risk.len() >= 1000 { 10 } else { 5 });
        for (k, row) in t.rows.iter().enumerate() {
            let label = row[0].as_str().unwrap();
            let rows = &by_risk[k * by_risk.len() / g..(k + 1) * by_risk.len() / g];
            self.push(
                publication,
                t,
                label,
                "persons",
                set(&mut rows.iter().copied()),
                count(&row[1]),
            );
            self.push(
                publication,
                t,
                label,
                "not_employed",
                set(&mut rows.iter().copied().filter(|&i| event(i))),
                count(&row[2]),
            );
        }
    }
}

/// Runs the binary; `Ok` with its stderr, or `Err` with it when it refused.
fn run(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = occupa()
        .current_dir(dir)
        .env("OCCUPA_KEY_FILE", dir.join("k.key"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(err)
    } else {
        Err(err)
    }
}

fn describe(seen: &Seen, r: &Range) -> String {
    format!(
        "{} = {}: found [{}, {}], must cover [{}, {}]",
        seen.name_of(r),
        r.value,
        r.lower,
        r.upper,
        r.required.0,
        r.required.1
    )
}

#[test]
fn attack_the_annual_report_with_every_earlier_report_leaves_no_narrow_hidden_count() {
    let t0 = std::time::Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(dir, &["key", "new", "--out", "k.key"]).unwrap();
    run(
        dir,
        &[
            "simulate",
            "--out",
            "ex",
            "--persons",
            "3000",
            "--tenants",
            "2",
            "--seed",
            "4",
        ],
    )
    .unwrap();
    // (Two authorities and this seed: the reports protect in seconds, and the one
    // authority's annual report hides a small group of a profile, which the attacker can
    // difference against the service's overall groups and the other profiles.)
    let tenants = ["t01", "t02"];
    for t in tenants {
        for table in [
            "persons",
            "asso",
            "isa",
            "gol",
            "services",
            "employment",
            "vacancies",
        ] {
            let file = format!("ex/{t}/{table}.csv");
            run(
                dir,
                &[
                    "ingest", "--data", "store", "--tenant", t, "--table", table, &file,
                ],
            )
            .unwrap_or_else(|e| panic!("ingest {file}: {e}"));
        }
    }
    eprintln!("store: {:.1} s", t0.elapsed().as_secs_f64());
    // Published in order, as an office does: each quarter pooled and per authority, then
    // the year pooled and for one authority.
    let mut published: Vec<(bool, std::path::PathBuf)> = Vec::new();
    let mut refused = Vec::new();
    for q in ["2025Q2", "2025Q3"] {
        for scope in [None, Some("t01"), Some("t02")] {
            let out = dir.join(format!("q-{q}-{}", scope.unwrap_or("pooled")));
            let mut args = vec!["report", "quarterly", "--data", "store", "--period", q];
            args.extend(scope.map(|t| ["--tenant", t]).into_iter().flatten());
            args.extend(["--out", out.to_str().unwrap()]);
            let t1 = std::time::Instant::now();
            match run(dir, &args) {
                Ok(_) => published.push((false, out)),
                // A report the protection cannot make safe is refused whole: nothing
                // published, nothing to attack.
                Err(e) if e.contains("could not protect every small count") => {
                    refused.push(format!("{q} {scope:?}"));
                }
                Err(e) => panic!("report {q} {scope:?}: {e}"),
            }
            eprintln!(
                "quarterly {q} {scope:?}: {:.1} s",
                t1.elapsed().as_secs_f64()
            );
        }
    }
    for scope in [None, Some("t01")] {
        let out = dir.join(format!("y-2025-{}", scope.unwrap_or("pooled")));
        let mut args = vec!["report", "annual", "--data", "store", "--year", "2025"];
        args.extend(scope.map(|t| ["--tenant", t]).into_iter().flatten());
        args.extend(["--out", out.to_str().unwrap()]);
        let t1 = std::time::Instant::now();
        run(dir, &args).unwrap_or_else(|e| panic!("annual report {scope:?}: {e}"));
        eprintln!("annual {scope:?}: {:.1} s", t1.elapsed().as_secs_f64());
        published.push((true, out));
    }
    assert!(refused.len() <= 2, "too many reports refused: {refused:?}");
    // The ledger holds exactly what was published: the attacker sees all of it.
    let store = Store::open(&dir.join("store")).unwrap();
    let ledger = std::fs::read_dir(store.root().join("ledger"))
        .unwrap()
        .count();
    assert_eq!(
        ledger,
        published.len(),
        "the ledger against what was published"
    );

    let t1 = std::time::Instant::now();
    let mut attacker = Attacker {
        store: &store,
        seen: Seen::default(),
        profile_spec: None,
    };
    for (annual, out) in &published {
        if *annual {
            attacker.annual(out);
        } else {
            attacker.quarterly(out);
        }
    }
    let seen = attacker.seen;
    let min =
        report_json(&published[published.len() - 1].1)["provenance"]["protection"]["min_count"]
            .as_u64()
            .unwrap();
    eprintln!(
        "read {} cells of {} reports ({refused:?} refused) in {:.1} s",
        seen.cells.len(),
        published.len(),
        t1.elapsed().as_secs_f64()
    );
    let t2 = std::time::Instant::now();
    let ranges = seen.ranges(min);
    let annual_of = |r: &Range| r.cells.iter().any(|c| seen.names[c].starts_with("annual/"));
    let in_annual = ranges.iter().filter(|r| annual_of(r)).count();
    eprintln!(
        "{} hidden counts below {min} ({in_annual} in the annual reports), audited in {:.1} s",
        ranges.len(),
        t2.elapsed().as_secs_f64()
    );
    for r in &ranges {
        eprintln!("  {}", describe(&seen, r));
    }
    // The true values are a solution of the attacker's system: no interval may exclude
    // them (a bound past the truth would be a wrong model, not a finding).
    for r in &ranges {
        assert!(
            r.lower <= r.value && r.value <= r.upper,
            "the audit excluded the truth: {}",
            describe(&seen, r)
        );
    }
    let narrow: Vec<String> = ranges
        .iter()
        .filter(|r| !r.covered)
        .map(|r| describe(&seen, r))
        .collect();
    assert!(
        narrow.is_empty(),
        "hidden counts narrower than their range:\n{}",
        narrow.join("\n")
    );
    assert!(
        ranges.len() > 10,
        "too few hidden counts to make the point: {}",
        ranges.len()
    );
    let by_table: BTreeMap<String, usize> =
        ranges
            .iter()
            .filter(|r| annual_of(r))
            .fold(BTreeMap::new(), |mut m, r| {
                let name = r
                    .cells
                    .iter()
                    .map(|c| &seen.names[c])
                    .find(|n| n.starts_with("annual/"))
                    .unwrap();
                *m.entry(name.split(' ').take(2).collect::<Vec<_>>().join(" "))
                    .or_default() += 1;
                m
            });
    eprintln!("hidden small counts of the annual reports by table: {by_table:?}");
    // The pooled annual report estimates effects (their groups are shown).
    let pooled = report_json(&dir.join("y-2025-pooled"));
    let estimated = tables(&pooled)
        .iter()
        .filter(|t| t.id == "service_effects")
        .flat_map(|t| t.rows.iter().filter(|r| !r[3].is_null()))
        .count();
    assert!(estimated > 0, "the annual report estimates no effect");
    assert!(
        in_annual > 10,
        "too few hidden counts in the annual reports to make the point: {in_annual}"
    );

    // The audit has teeth: the same reports with their small counts hidden and nothing
    // else (the threshold rule alone: no secondary suppression, no ledger) leave hidden
    // counts narrow.
    let mut naive = Seen::default();
    let mut secondary = 0;
    for (k, (u, shown)) in seen.cells.iter().enumerate() {
        let n = u.len() as u64;
        secondary += usize::from(shown.is_none() && (n == 0 || n >= min));
        naive.push(
            seen.names[&k].clone(),
            u.clone(),
            (n == 0 || n >= min).then_some(n),
        );
    }
    naive.bounds = seen.bounds.clone();
    // (The cells are in the same order: `annual_of` reads the names of both.)
    let naive_ranges = naive.ranges(min);
    let exposed: Vec<&Range> = naive_ranges.iter().filter(|r| !r.covered).collect();
    eprintln!(
        "the threshold rule alone (showing the {secondary} other hidden cells) exposes {} counts, {} of the annual reports:",
        exposed.len(),
        exposed.iter().filter(|r| annual_of(r)).count()
    );
    for r in &exposed {
        eprintln!("  {}", describe(&naive, r));
    }
    assert!(
        !exposed.is_empty(),
        "the audit should find counts exposed by the threshold rule alone"
    );
    eprintln!("attack: {:.1} s in all", t0.elapsed().as_secs_f64());
}
