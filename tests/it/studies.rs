//! Studies against the simulator's planted truth: the analysis table built from a store,
//! the method runners on it, and the effects, profiles and demand the simulator planted,
//! over several seeds (coverage near nominal, not one lucky seed).

use std::collections::HashMap;

use occupa_engine::analysis::{AnalysisSpec, AnalysisTable, from_store, series_table};
use occupa_engine::causal::runner::EvaluationSpec;
use occupa_engine::cluster::quality::adjusted_rand;
use occupa_engine::forecast::runner::ForecastRequest;
use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::{Domain, Key, Pseudonymiser};
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};

/// A simulated population of one authority, ingested.
struct World {
    _dir: tempfile::TempDir,
    store: Store,
    tenant: TenantId,
    truth: serde_json::Value,
    /// Truth per person pseudonym: class, p12 without service and with A.5.
    people: HashMap<String, (usize, f64, f64)>,
    /// Realised employment at 6 and 12 months per pseudonym (the drawn job spell).
    employed: HashMap<String, [bool; 2]>,
}

fn world(seed: u64, persons: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let inst = Instruments::builtin().unwrap();
    let cfg = SimConfig {
        persons,
        tenants: 1,
        seed,
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    simulate(&cfg, &inst, &exports).unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let key = Key::from_bytes([seed as u8; 32]);
    let tenant = TenantId::new("t01").unwrap();
    for table in Table::ALL {
        ingest(
            &store,
            &inst,
            &key,
            &tenant,
            table,
            &[exports.join("t01").join(format!("{}.csv", table.name()))],
            &NoProgress,
        )
        .unwrap();
    }
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exports.join("truth.json")).unwrap()).unwrap();
    let p = Pseudonymiser::new(&key);
    let mut rdr = csv::Reader::from_path(exports.join("truth-persons.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let at = |n: &str| h.iter().position(|c| c == n).unwrap();
    let (tax, class, none, a5) = (at("tax_code"), at("class"), at("p12_none"), at("p12_a5"));
    let (e6, e12) = (at("employed_6m"), at("employed_12m"));
    let mut people = HashMap::new();
    let mut employed = HashMap::new();
    for r in rdr.records() {
        let r = r.unwrap();
        let id = p.pseudonym(Domain::Person, &r[tax]);
        people.insert(
            id.clone(),
            (
                r[class].parse().unwrap(),
                r[none].parse().unwrap(),
                r[a5].parse().unwrap(),
            ),
        );
        employed.insert(id, [&r[e6] == "1", &r[e12] == "1"]);
    }
    World {
        _dir: dir,
        store,
        tenant,
        truth,
        people,
        employed,
    }
}

impl World {
    fn table(&self, spec: &str) -> AnalysisTable {
        let spec: AnalysisSpec = toml::from_str(spec).unwrap();
        from_store(&self.store.scope(&self.tenant), &spec.check().unwrap()).unwrap()
    }

    /// Each analysis row's pseudonym.
    fn ids(&self, built: &AnalysisTable) -> Vec<String> {
        let persons = self.store.scope(&self.tenant).read(Table::Persons).unwrap();
        let ids: Vec<String> = persons
            .column("person_id")
            .unwrap()
            .str()
            .unwrap()
            .into_iter()
            .map(|s| s.unwrap_or("").to_string())
            .collect();
        built.source_rows.iter().map(|&r| ids[r].clone()).collect()
    }

    /// The truth of each analysis row (`None` where a pseudonym is not in the truth).
    fn truth_of(&self, built: &AnalysisTable) -> Vec<Option<(usize, f64, f64)>> {
        self.ids(built)
            .iter()
            .map(|id| self.people.get(id).copied())
            .collect()
    }
}

const A5: &str = r#"
[cohort]
intake_from = "2023-01-01"
[exposure]
service = "A.5"
within_days = 90
exclude_services = ["A.4", "A.6"]
[profiles]
method = "lca"
columns = ["asso_q01", "asso_q02", "asso_q03", "asso_q04", "asso_q05", "asso_q06",
           "asso_q07", "asso_q08", "asso_q09", "asso_q10", "asso_q11", "asso_q12"]
k = 4
starts = 6
seed = 3
standard_errors = false
"#;

fn covered(v: &serde_json::Value, truth: f64) -> bool {
    let ci = v["ci95"].as_array().unwrap();
    ci[0].as_f64().unwrap() <= truth && truth <= ci[1].as_f64().unwrap()
}

#[test]
fn the_a5_study_recovers_the_planted_effect_overall_and_by_profile_over_seeds() {
    let evaluation: EvaluationSpec = toml::from_str(
        r#"
method = "ipw"
estimand = "att"
treatment = "exposed"
outcome = "employed_12m"
covariates = ["age", "C(education)", "citizenship", "disability_l68", "social_services_care",
              "C(gol_path)", "gol_a", "gol_b", "gol_cd"]
by = "profile_class"
"#,
    )
    .unwrap();
    let valid = evaluation.check().unwrap();
    let (mut hits, mut total, mut overall_hits) = (0, 0, 0);
    let mut aris = Vec::new();
    let seeds = [101u64, 102, 103, 104, 105, 106];
    for &seed in &seeds {
        let w = world(seed, 6000);
        let built = w.table(A5);
        let truth = w.truth_of(&built);
        let n = built.table.len();
        let exposed = built.table.numeric("exposed").unwrap();
        let outcome = built.table.numeric("employed_12m").unwrap();
        let (levels, codes) = built.table.categories("profile_class").unwrap();
        // Every treated row is an A.5 recipient of the simulation (the exclusions removed
        // A.4 and A.6), so the truth of the ATT is its mean p12(A.5) − p12(none) over the
        // treated rows the evaluation uses (those observed 12 months).
        let att = |class: Option<usize>| -> f64 {
            let d: Vec<f64> = (0..n)
                .filter(|&r| exposed[r] == 1.0 && !outcome[r].is_nan())
                .filter(|&r| class.is_none_or(|k| codes[r] == Some(k as u32)))
                .filter_map(|r| truth[r].map(|(_, none, a5)| a5 - none))
                .collect();
            d.iter().sum::<f64>() / d.len() as f64
        };
        let out = serde_json::to_value(valid.run(&built.table).unwrap()).unwrap();
        let t = att(None);
        let hit = covered(&out, t);
        eprintln!(
            "seed {seed}: ATT {:.4} ci95 {} truth {t:.4} {}",
            out["estimate"].as_f64().unwrap(),
            out["ci95"],
            if hit { "covered" } else { "MISSED" }
        );
        overall_hits += usize::from(hit);
        hits += usize::from(hit);
        total += 1;
        for g in out["subgroups"].as_array().unwrap() {
            let label = g["group"]
                .as_str()
                .unwrap()
                .trim_start_matches("profile_class=");
            let k = levels.iter().position(|l| l == label).unwrap();
            let t = att(Some(k));
            let hit = covered(&g["result"], t);
            eprintln!(
                "  class {label}: {:.4} ci95 {} truth {t:.4} {}",
                g["result"]["estimate"].as_f64().unwrap_or(f64::NAN),
                g["result"]["ci95"],
                if hit { "covered" } else { "MISSED" }
            );
            hits += usize::from(hit);
            total += 1;
        }
        // The profiles against the planted classes, on the rows the LCA assigned.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in 0..n {
            if let (Some(c), Some((class, _, _))) = (codes[r], truth[r]) {
                a.push(c as usize);
                b.push(class);
            }
        }
        aris.push(adjusted_rand(&a, &b));
    }
    let coverage = hits as f64 / total as f64;
    eprintln!(
        "coverage {hits}/{total} = {coverage:.3}; overall {overall_hits}/{}; ARI {aris:?}",
        seeds.len()
    );
    // 30 intervals at 95 %: 26 or more covered has probability 0.98 under nominal
    // coverage; 25 or fewer says the intervals are too narrow or biased.
    assert!(hits > total * 85 / 100, "coverage {hits}/{total}");
    assert!(
        overall_hits >= seeds.len() - 1,
        "overall {overall_hits}/{}",
        seeds.len()
    );
    let mean_ari = aris.iter().sum::<f64>() / aris.len() as f64;
    assert!(mean_ari > 0.6, "profiles vs planted classes: ARI {aris:?}");
}

#[test]
fn the_inclusion_rdd_covers_the_planted_effect_over_seeds() {
    let spec: EvaluationSpec = toml::from_str(
        r#"
method = "rdd"
outcome = "employed_12m"
running = "gol_cd"
cutoff = 12
fuzzy = "inclusion"
"#,
    )
    .unwrap();
    let valid = spec.check().unwrap();
    let mut hits = 0;
    let seeds = [201u64, 202, 203, 204, 205, 206];
    for &seed in &seeds {
        let w = world(seed, 8000);
        let built = w.table(
            r#"
[cohort.range]
gol_cd = [6, 30]
[exposure]
gol_path = [4]
name = "inclusion"
"#,
        );
        let out = serde_json::to_value(valid.run(&built.table).unwrap()).unwrap();
        let truth = w.truth["inclusion_path"]["late_employed_12m"]
            .as_f64()
            .unwrap();
        let hit = covered(&out["robust"], truth);
        eprintln!(
            "seed {seed}: {:.4} robust ci95 {} truth {truth:.4} {}",
            out["robust"]["estimate"].as_f64().unwrap(),
            out["robust"]["ci95"],
            if hit { "covered" } else { "MISSED" }
        );
        hits += usize::from(hit);
    }
    // Six intervals at 95 %: five or more covered has probability 0.97.
    assert!(hits >= seeds.len() - 1, "covered {hits}/{}", seeds.len());
}

#[test]
fn the_demand_forecast_from_a_store_covers_held_out_months_at_95_percent() {
    let mut inside = 0;
    let mut points = 0;
    let mut request = ForecastRequest::new(12);
    request.id = vec!["province".into(), "sector".into()];
    request.time = "month".into();
    request.value = "vacancies".into();
    let valid = request.check().unwrap();
    for seed in [301u64, 302, 303] {
        let w = world(seed, 200);
        let series = series_table(&w.store.scope(&w.tenant)).unwrap();
        // The last 12 months are held out: the forecast sees the months before them.
        let (months, codes) = series.categories("month").unwrap();
        let cut = months.len() - 12;
        let keep: Vec<bool> = codes.iter().map(|c| (c.unwrap() as usize) < cut).collect();
        let set = valid.series(&series.filter(&keep)).unwrap();
        let out = valid.run(&set, &|| {}).unwrap();
        let values = series.numeric("vacancies").unwrap();
        let (labels, ids) = {
            let (p, pc) = series.categories("province").unwrap();
            let (s, sc) = series.categories("sector").unwrap();
            let ids: Vec<String> = (0..series.len())
                .map(|r| {
                    format!(
                        "{}/{}",
                        p[pc[r].unwrap() as usize],
                        s[sc[r].unwrap() as usize]
                    )
                })
                .collect();
            (months, ids)
        };
        for (label, f, _) in &out.rows {
            let i95 = f.intervals.iter().find(|i| i.level == 95.0).unwrap();
            for h in 0..12 {
                let month = &labels[cut + h];
                let r = (0..series.len())
                    .find(|&r| &ids[r] == label && codes[r] == Some((cut + h) as u32))
                    .unwrap_or_else(|| panic!("{label} {month}"));
                points += 1;
                inside += usize::from(i95.lower[h] <= values[r] && values[r] <= i95.upper[h]);
            }
        }
    }
    let coverage = inside as f64 / points as f64;
    eprintln!("95 % intervals cover {inside}/{points} = {coverage:.3} held-out months");
    assert!(points >= 3 * 8 * 12, "{points}");
    assert!((0.88..=0.995).contains(&coverage), "coverage {coverage}");
}

/// The next 12 months forecast from all the data, against the demand the simulator planted
/// for them (its expected value): a 95 % prediction interval holds the expected value at
/// least as often as it holds a draw.
#[test]
fn the_demand_forecast_covers_the_planted_future_demand() {
    let territory = occupa_engine::territory::Territory::get();
    let mut request = ForecastRequest::new(12);
    request.id = vec!["province".into(), "sector".into()];
    request.time = "month".into();
    request.value = "vacancies".into();
    let valid = request.check().unwrap();
    let (mut inside, mut points, mut abs_err, mut level) = (0, 0, 0.0, 0.0);
    for seed in [311u64, 312] {
        let w = world(seed, 200);
        let series = series_table(&w.store.scope(&w.tenant)).unwrap();
        let set = valid.series(&series).unwrap();
        let out = valid.run(&set, &|| {}).unwrap();
        let (months, _) = series.categories("month").unwrap();
        let last = months.last().unwrap().clone();
        for d in w.truth["demand"].as_array().unwrap() {
            let province = territory
                .province(d["province"].as_str().unwrap())
                .unwrap()
                .name
                .clone();
            let label = format!("{province}/{}", d["sector"].as_str().unwrap());
            let (_, f, _) = out.rows.iter().find(|(l, _, _)| *l == label).unwrap();
            let i95 = f.intervals.iter().find(|i| i.level == 95.0).unwrap();
            let future: Vec<(&String, f64)> = d["monthly_mean"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(m, _)| **m > last)
                .map(|(m, v)| (m, v.as_f64().unwrap()))
                .collect();
            assert_eq!(future.len(), 12, "{label}");
            for (h, (_, mu)) in future.iter().enumerate() {
                points += 1;
                inside += usize::from(i95.lower[h] <= *mu && *mu <= i95.upper[h]);
                abs_err += (f.mean[h] - mu).abs();
                level += mu;
            }
        }
    }
    let coverage = inside as f64 / points as f64;
    eprintln!(
        "planted demand inside the 95 % interval {inside}/{points} = {coverage:.3}; mean \
         absolute error {:.1} % of the level",
        100.0 * abs_err / level
    );
    assert!(coverage >= 0.95, "coverage {coverage}");
    assert!(abs_err / level < 0.15, "error {}", abs_err / level);
}

/// The series table counts what the store holds: the vacancies of a month, sector and
/// province add up to the positions ingested.
#[test]
fn the_series_table_adds_up_to_the_vacancies_ingested() {
    let w = world(7, 100);
    let series = series_table(&w.store.scope(&w.tenant)).unwrap();
    let total: f64 = series.numeric("vacancies").unwrap().iter().sum();
    let stored = w.store.scope(&w.tenant).read(Table::Vacancies).unwrap();
    let count: f64 = stored
        .column("count")
        .unwrap()
        .cast(&polars::prelude::DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .into_iter()
        .flatten()
        .sum();
    assert_eq!(total, count);
}

/// Operator ratings on the simulator's persons: each operator's observed re-employment at
/// 6 months against the expected from the case mix; the ratios follow the operator quality
/// the simulator planted (a log-odds shift of the monthly job-finding hazard).
#[test]
fn operator_ratings_follow_the_planted_operator_quality() {
    use occupa_engine::ratings::{RatingSpec, rate};
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for seed in [401u64, 402, 403] {
        let w = world(seed, 12000);
        let built = w.table("[outcomes]\nmonths = [6]\n");
        let r = rate(
            &built.table,
            &built.unit_keys,
            &RatingSpec {
                outcome: "employed_6m".into(),
                covariates: [
                    "age",
                    "C(education)",
                    "citizenship",
                    "disability_l68",
                    "income_support",
                    "social_services_care",
                    "gol_a",
                    "gol_b",
                    "gol_cd",
                ]
                .map(String::from)
                .to_vec(),
                operator: "gol_operator".into(),
            },
        )
        .unwrap();
        let quality = &w.truth["operator_quality_log_odds"];
        for o in &r.operators {
            let q = quality[&o.operator].as_f64().unwrap();
            eprintln!(
                "seed {seed} {}: quality {q:+.3}, O/E {:.3} [{:.3}, {:.3}], {} persons",
                o.operator,
                o.ratio,
                o.ci95.0,
                o.ci95.1,
                o.persons.len()
            );
            pairs.push((q, o.ratio));
        }
    }
    let rank = |v: Vec<f64>| -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        for (k, &i) in idx.iter().enumerate() {
            r[i] = k as f64;
        }
        r
    };
    let (a, b) = (
        rank(pairs.iter().map(|p| p.0).collect()),
        rank(pairs.iter().map(|p| p.1).collect()),
    );
    let m = (a.len() as f64 - 1.0) / 2.0;
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - m) * (y - m)).sum();
    let var: f64 = a.iter().map(|x| (x - m) * (x - m)).sum();
    let spearman = cov / var;
    eprintln!("Spearman correlation of O/E with the planted quality: {spearman:.3}");
    assert_eq!(pairs.len(), 15);
    assert!(spearman > 0.8, "{spearman}");
}

/// The analysis table's outcomes, computed from the contracts in the store, against the
/// employment the simulator drew for each person (its job spell, known whether or not an
/// export shows it): they agree for persons observed long enough.
#[test]
fn outcomes_from_the_store_are_the_simulated_employment() {
    let w = world(501, 6000);
    let built = w.table("[outcomes]\nmonths = [6, 12]\n");
    let ids = w.ids(&built);
    let (e6, e12) = (
        built.table.numeric("employed_6m").unwrap(),
        built.table.numeric("employed_12m").unwrap(),
    );
    let (mut agree, mut total) = ([0usize; 2], [0usize; 2]);
    for (r, id) in ids.iter().enumerate() {
        let Some(truth) = w.employed.get(id) else {
            continue;
        };
        for (k, v) in [e6[r], e12[r]].into_iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            total[k] += 1;
            agree[k] += usize::from((v == 1.0) == truth[k]);
        }
    }
    eprintln!(
        "employed at 6 months: {}/{} agree; at 12: {}/{}",
        agree[0], total[0], agree[1], total[1]
    );
    for k in 0..2 {
        assert!(total[k] > 3000, "{total:?}");
        // A spell ending exactly on the horizon counts as employed in the data (end dates
        // are inclusive) and not in the simulator's month arithmetic: a handful.
        assert!(
            agree[k] as f64 >= 0.995 * total[k] as f64,
            "{agree:?} of {total:?}"
        );
    }
}

/// The quarterly report's outcomes table: rates only with their counts, and each count the
/// analysis table's.
#[test]
fn the_quarterly_outcomes_table_counts_the_analysis_table() {
    use occupa_anonymiser::MinCount;
    use occupa_anonymiser::publication::Rule;
    use occupa_engine::indicators::{Quarter, tenant_quarter};
    use occupa_reports::{Analyses, Lang, Report};
    let w = world(502, 4000);
    let q = Quarter::parse("2026Q3").unwrap();
    let built = w.table(
        "[cohort]\nintake_from = \"2024-10-01\"\nintake_to = \"2025-09-30\"\n[outcomes]\nmonths = [6, 12]\nobserved_until = \"2026-09-30\"\n",
    );
    let e12 = built.table.numeric("employed_12m").unwrap();
    let observed = e12.iter().filter(|v| !v.is_nan()).count();
    let employed = e12.iter().filter(|&&v| v == 1.0).count();
    let tq = tenant_quarter(&w.store.scope(&w.tenant), q, 8).unwrap();
    let published = Report::quarterly_with(
        q,
        &[tq],
        Lang::En,
        Rule::new(MinCount::default()),
        &[],
        "pooled",
        &Analyses {
            outcomes: vec![("t01".into(), built)],
            ..Analyses::default()
        },
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&occupa_reports::json(&published.report)).unwrap();
    let t = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "outcomes")
        .unwrap();
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows[0][1], observed as u64);
    assert_eq!(rows[0][4], employed as u64);
    let pct = rows[0][5].as_f64().unwrap();
    assert!((pct - 100.0 * employed as f64 / observed as f64).abs() < 1e-9);
    for r in rows {
        let r = r.as_array().unwrap();
        // A hidden count takes the share computed from it along.
        if r[1].is_null() || r[4].is_null() {
            assert!(r[5].is_null(), "{r:?}");
        }
    }
}
