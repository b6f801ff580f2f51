//! `occupa anonymise` attacked: what leaves, checked from the released files alone, and
//! what the release is still good for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use occupa_anonymiser::release::data::from_store;
use occupa_anonymiser::release::{Policy, research_release};
use occupa_engine::causal::Estimand;
use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
use occupa_engine::causal::table::SampleSpec;
use occupa_engine::schema::Table;
use occupa_engine::store::Store;

use crate::attacks::{ingest_all, plant, simulate_small, texts_under};

fn read(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let header = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn shipped(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../anonymiser/policies")
        .join(name);
    Policy::from_file(&path).unwrap()
}

/// The attacker's check, written from the files alone: every column of `persons.csv`
/// that the risk report does not call sensitive is assumed known; a person's classes are
/// the persons sharing all of those, and those of them with a record that reads the same
/// in one record file. Returns the smallest class seen.
fn smallest_class_seen_by_an_attacker(out: &Path, k: usize, l: usize) -> usize {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("risk-report.json")).unwrap()).unwrap();
    let sensitive: HashSet<String> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "sensitive")
        .map(|c| c["column"].as_str().unwrap().to_string())
        .collect();
    let (ph, persons) = read(&out.join("persons.csv"));
    let known: Vec<usize> = (1..ph.len())
        .filter(|&i| !sensitive.contains(&ph[i]))
        .collect();
    let sens: Vec<usize> = (1..ph.len())
        .filter(|&i| sensitive.contains(&ph[i]))
        .collect();
    assert!(!known.is_empty() && !sens.is_empty());
    let class_of: HashMap<&str, Vec<&str>> = persons
        .iter()
        .map(|p| {
            (
                p[0].as_str(),
                known.iter().map(|&i| p[i].as_str()).collect(),
            )
        })
        .collect();
    let values_of: HashMap<&str, &Vec<String>> =
        persons.iter().map(|p| (p[0].as_str(), p)).collect();
    // Class → persons (ids).
    let mut classes: BTreeMap<Vec<String>, HashSet<&str>> = BTreeMap::new();
    for p in &persons {
        classes
            .entry(
                class_of[p[0].as_str()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            )
            .or_default()
            .insert(p[0].as_str());
    }
    let files: Vec<String> = report["rows"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|f| *f != "persons")
        .cloned()
        .collect();
    let mut record_files = Vec::new();
    for f in &files {
        record_files.push((f.clone(), read(&out.join(format!("{f}.csv")))));
    }
    for (f, (h, rows)) in &record_files {
        assert_eq!(h[0], "id");
        for r in rows {
            let mut key: Vec<String> = class_of
                .get(r[0].as_str())
                .unwrap_or_else(|| panic!("a {f} record of a person not released"))
                .iter()
                .map(|s| s.to_string())
                .collect();
            key.push(f.clone());
            key.extend(r[1..].iter().cloned());
            classes.entry(key).or_default().insert(
                persons
                    .iter()
                    .find(|p| p[0] == r[0])
                    .map(|p| p[0].as_str())
                    .unwrap(),
            );
        }
    }
    let mut smallest = usize::MAX;
    for (key, ids) in &classes {
        smallest = smallest.min(ids.len());
        assert!(ids.len() >= k, "{} persons in class {key:?}", ids.len());
        for &s in &sens {
            let distinct: HashSet<&str> = ids.iter().map(|id| values_of[id][s].as_str()).collect();
            assert!(
                distinct.len() >= l,
                "{} takes {distinct:?} in {key:?}",
                ph[s]
            );
        }
    }
    smallest
}

#[test]
fn attack_knowing_a_persons_attributes_and_one_job_or_service_finds_at_least_k() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 5000, 2);
    let planted = plant(&exports);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01", "t02"]);
    let policy = shipped("research.toml");
    let out = tmp.path().join("release");
    let report = research_release(&store, &policy, &out, &|_, _| {}).unwrap();
    assert_eq!(
        report.released_persons + report.suppressed_persons,
        report.persons
    );
    assert!(report.suppressed_persons as f64 <= policy.max_suppression * report.persons as f64);
    assert!(report.risk_after.highest <= 1.0 / policy.k as f64 + 1e-12);
    assert!(report.risk_before.highest > report.risk_after.highest);
    assert!(report.attacker_model.contains("jobs or services"));
    let smallest = smallest_class_seen_by_an_attacker(&out, policy.k, policy.l.unwrap());
    assert!(smallest >= policy.k);
    // pycanon agrees on the person file (k over every column not declared sensitive, l
    // over the sensitive ones).
    if let Some(python) = crate::anonymiser::pycanon_python() {
        let (h, _) = read(&out.join("persons.csv"));
        let report_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("risk-report.json")).unwrap()).unwrap();
        let sensitive: Vec<String> = report_json["columns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["role"] == "sensitive")
            .map(|c| c["column"].as_str().unwrap().to_string())
            .collect();
        let qi: Vec<String> = h[1..]
            .iter()
            .filter(|c| !sensitive.contains(c))
            .cloned()
            .collect();
        let v =
            crate::anonymiser::pycanon_verdict(&python, &out.join("persons.csv"), &qi, &sensitive);
        assert!(v["k"].as_u64().unwrap() >= policy.k as u64, "{v}");
        assert!(v["l"].as_u64().unwrap() >= policy.l.unwrap() as u64, "{v}");
    }
    assert_eq!(report.rows["persons"], report.released_persons);

    // Nothing identifying leaves: no planted identifier, pseudonym, employer id, tax code
    // or free text.
    let texts = texts_under(&out);
    planted.assert_absent(&texts);
    let mut secrets: HashSet<String> = HashSet::new();
    for t in store.tenants().unwrap() {
        for table in [Table::Persons, Table::Services, Table::Employment] {
            let df = store.scope(&t).read(table).unwrap();
            for col in ["person_id", "employer_id"] {
                if let Ok(c) = df.column(col) {
                    secrets.extend(c.str().unwrap().into_iter().flatten().map(str::to_string));
                }
            }
        }
    }
    for (path, text) in &texts {
        for field in text.split([',', '\n', '"', ' ', ';', '|']) {
            assert!(
                !secrets.contains(field),
                "a pseudonym in {}",
                path.display()
            );
        }
        if path.extension().is_some_and(|e| e == "csv") {
            for free in ["Centro per l'impiego", "PNRR", "OP-0", "GOL"] {
                assert!(
                    !text.contains(free),
                    "free text {free:?} in {}",
                    path.display()
                );
            }
        }
    }
    for f in ["persons", "employment", "services"] {
        let (h, _) = read(&out.join(format!("{f}.csv")));
        for c in [
            "provider",
            "operator",
            "programme",
            "funding",
            "person_id",
            "employer_id",
        ] {
            assert!(!h.iter().any(|x| x == c), "{f}.csv has {c}");
        }
    }
    assert!(!out.join("asso.csv").exists() && !out.join("vacancies.csv").exists());

    // A second release cannot be lined up with the first: no id in common, another order.
    let out2 = tmp.path().join("release2");
    research_release(&store, &policy, &out2, &|_, _| {}).unwrap();
    let (_, first) = read(&out.join("persons.csv"));
    let (_, second) = read(&out2.join("persons.csv"));
    let ids: HashSet<&String> = first.iter().map(|p| &p[0]).collect();
    assert!(second.iter().all(|p| !ids.contains(&p[0])));
    let strip = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter().map(|r| r[1..].to_vec()).collect()
    };
    assert_eq!(first.len(), second.len());
    assert_ne!(
        strip(&first),
        strip(&second),
        "the two releases list persons in the same order"
    );
    let mut a = strip(&first);
    let mut b = strip(&second);
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same store and policy release the same persons");

    // A policy the data cannot meet writes nothing.
    let mut impossible = policy.clone();
    impossible.k = 100_000;
    let out3 = tmp.path().join("release3");
    let err = research_release(&store, &impossible, &out3, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no release possible"), "{err}");
    assert!(!out3.exists());
    let audit = std::fs::read_to_string(store.root().join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"command\":\"anonymise\"").count(), 2);
}

#[test]
fn two_known_records_are_covered_when_the_policy_says_m_2() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 3000, 1);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01"]);
    let mut policy = shipped("service-effect.toml");
    policy.m = 2;
    let out = tmp.path().join("release");
    research_release(&store, &policy, &out, &|_, _| {}).unwrap();
    // Pairs of services of one person, as the attacker would line them up.
    let (ph, persons) = read(&out.join("persons.csv"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("risk-report.json")).unwrap()).unwrap();
    let sensitive: HashSet<String> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "sensitive")
        .map(|c| c["column"].as_str().unwrap().to_string())
        .collect();
    let known: Vec<usize> = (1..ph.len())
        .filter(|&i| !sensitive.contains(&ph[i]))
        .collect();
    let class: HashMap<String, Vec<String>> = persons
        .iter()
        .map(|p| (p[0].clone(), known.iter().map(|&i| p[i].clone()).collect()))
        .collect();
    let (_, services) = read(&out.join("services.csv"));
    let mut per: HashMap<String, Vec<String>> = HashMap::new();
    for s in &services {
        per.entry(s[0].clone()).or_default().push(s[1..].join("|"));
    }
    let mut pairs: HashMap<(Vec<String>, String, String), HashSet<String>> = HashMap::new();
    for (id, recs) in &per {
        let mut recs = recs.clone();
        recs.sort();
        for i in 0..recs.len() {
            for j in i + 1..recs.len() {
                pairs
                    .entry((class[id].clone(), recs[i].clone(), recs[j].clone()))
                    .or_default()
                    .insert(id.clone());
            }
        }
    }
    assert!(!pairs.is_empty());
    for (key, ids) in &pairs {
        assert!(ids.len() >= policy.k, "{} persons share {key:?}", ids.len());
    }
}

/// Reads a release-like person table and keeps the comparison of A.5 with no service
/// (no A.4 or A.6 in the first 90 days), observed for 12 months.
fn a5_sample(header: &[String], rows: &[Vec<String>], out: &Path, columns: &[&str]) {
    let col = |c: &str| {
        header
            .iter()
            .position(|h| h == c)
            .unwrap_or_else(|| panic!("no {c}"))
    };
    let mut w = csv::Writer::from_path(out).unwrap();
    w.write_record(columns).unwrap();
    let within = |band: &str| match band {
        "0-29" | "30-89" | "0-89" => Some("1"),
        "90-179" | "180+" | "never" | "90+" => Some("0"),
        _ => None,
    };
    for r in rows {
        let (Some(a4), Some(a5), Some(a6)) = (
            within(&r[col("first_a4")]),
            within(&r[col("first_a5")]),
            within(&r[col("first_a6")]),
        ) else {
            continue;
        };
        if a4 == "1" || a6 == "1" || !matches!(r[col("employed_12m")].as_str(), "0" | "1") {
            continue;
        }
        let rec: Vec<&str> = columns
            .iter()
            .map(|c| if *c == "a5" { a5 } else { r[col(c)].as_str() })
            .collect();
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn a_release_keeps_the_effect_of_a5_on_employment_at_12_months() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 20_000, 6);
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exports.join("truth.json")).unwrap()).unwrap();
    let planted = truth["effects"]["A.5"]["att_employed_12m"]
        .as_f64()
        .unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let tenants: Vec<String> = (1..=6).map(|i| format!("t{i:02}")).collect();
    let tenants: Vec<&str> = tenants.iter().map(String::as_str).collect();
    ingest_all(&store, &inst, &exports, &tenants);
    let policy = shipped("service-effect.toml");
    let out = tmp.path().join("release");
    let report = research_release(&store, &policy, &out, &|_, _| {}).unwrap();
    smallest_class_seen_by_an_attacker(&out, policy.k, policy.l.unwrap());

    let covariates = [
        "age",
        "sex",
        "citizenship",
        "education",
        "municipality",
        "gol_path",
        "gol_a",
        "gol_b",
        "gol_cd",
    ];
    let mut columns = vec!["a5", "employed_12m"];
    columns.extend(covariates);
    let estimate = |file: &Path| {
        let spec = EvaluateSpec {
            columns: SampleSpec {
                treatment: "a5".into(),
                outcome: "employed_12m".into(),
                covariates: covariates.iter().map(|c| c.to_string()).collect(),
                ..SampleSpec::default()
            },
            method: Method::Ipw,
            estimand: Estimand::Att,
            ..EvaluateSpec::default()
        };
        evaluate_csv(file, &spec).unwrap().effect
    };
    // From the release's person file, as a research partner would.
    let (h, rows) = read(&out.join("persons.csv"));
    let released = tmp.path().join("released-a5.csv");
    a5_sample(&h, &rows, &released, &columns);
    let from_release = estimate(&released);
    // From the store's own data, before anonymisation (ages in years, municipalities).
    let data = from_store(&store, None).unwrap();
    let rows: Vec<Vec<String>> = data.persons.iter().map(|p| p.values.clone()).collect();
    let stored = tmp.path().join("stored-a5.csv");
    a5_sample(&data.person_columns, &rows, &stored, &columns);
    let from_store_est = estimate(&stored);

    let inside = |x: f64, ci: [f64; 2]| ci[0] <= x && x <= ci[1];
    eprintln!(
        "A.5 on employment at 12 months (ATT): release {:.4} {:?}, store {:.4} {:?}, planted {planted:.4}; \
         suppressed {} of {}",
        from_release.estimate,
        from_release.ci95,
        from_store_est.estimate,
        from_store_est.ci95,
        report.suppressed_persons,
        report.persons
    );
    assert!(
        inside(from_release.estimate, from_store_est.ci95),
        "the release's estimate leaves the store's interval"
    );
    assert!(
        inside(planted, from_release.ci95),
        "the planted effect leaves the release's interval"
    );
}

#[test]
fn a_persons_only_release_is_the_optimum_of_the_lattice_search() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 2000, 1);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01"]);
    let policy: Policy = toml::from_str(
        r#"
k = 5
l = 2
max_suppression = 0.04
sensitive = ["income_support"]
[quasi_identifiers]
age = "age"
sex = "flat"
citizenship = "citizenship"
education = "ordinal:0-8:3,9"
employed_12m = "flat"
"#,
    )
    .unwrap();
    let out = tmp.path().join("release");
    let report = research_release(&store, &policy, &out, &|_, _| {}).unwrap();
    assert!(
        report.search.method.starts_with("optimal"),
        "{}",
        report.search.method
    );
    assert!(!out.join("employment.csv").exists() && !out.join("services.csv").exists());
    smallest_class_seen_by_an_attacker(&out, 5, 2);
}
