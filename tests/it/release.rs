//! `occupa anonymise` on a simulated, ingested store: what leaves, and what it guarantees,
//! checked from the released files alone.

use std::collections::{BTreeMap, HashMap, HashSet};

use occupa_anonymiser::release::{Policy, research_release};
use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};

const POLICY: &str = r#"
k = 5
l = 2
sensitive = "income_support"
max_suppression = 0.08
metric = "loss"
drop = ["exit_date"]

[quasi_identifiers]
birth_year = "ordinal:1900-2030:5,10,20"
sex = "flat"
citizenship = "citizenship"
municipality = "municipality"
intake_date = "date"
"#;

fn read(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let header = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

#[test]
fn research_release_is_jointly_k_anonymous_l_diverse_and_unlinkable() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = Instruments::builtin().unwrap();
    let cfg = SimConfig {
        persons: 4000,
        tenants: 2,
        seed: 5,
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    simulate(&cfg, &inst, &exports).unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let key = Key::from_bytes([9; 32]);
    for t in ["t01", "t02"] {
        for table in Table::ALL {
            ingest(
                &store,
                &inst,
                &key,
                &TenantId::new(t).unwrap(),
                table,
                &[exports.join(t).join(format!("{}.csv", table.name()))],
                &NoProgress,
            )
            .unwrap();
        }
    }
    let policy: Policy = toml::from_str(POLICY).unwrap();
    let out = tmp.path().join("release");
    let report = research_release(&store, &policy, &out).unwrap();
    assert_eq!(
        report.released_persons + report.suppressed_persons,
        report.persons
    );
    assert!(report.suppressed_persons as f64 <= 0.08 * report.persons as f64);

    // No pseudonym, employer id or tax code leaves.
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
    let (_, raw) = read(&exports.join("t01/persons.csv"));
    secrets.extend(raw.iter().map(|r| r[0].clone()));
    for entry in std::fs::read_dir(&out).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for field in text.split([',', '\n', '"', ' ', ';']) {
            assert!(!secrets.contains(field), "{field} left the store");
        }
    }

    // Joint k-anonymity and l-diversity, from the files alone: a person's class is their
    // released quasi-identifiers plus the released dates of all their records.
    let (ph, persons) = read(&out.join("persons.csv"));
    let mut profile: HashMap<String, Vec<String>> = HashMap::new();
    for table in ["asso", "isa", "gol", "services", "employment"] {
        let (h, rows) = read(&out.join(format!("{table}.csv")));
        let dates: Vec<usize> = h
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ends_with("date"))
            .map(|(i, _)| i)
            .collect();
        for r in rows {
            let ds: Vec<&str> = dates.iter().map(|&i| r[i].as_str()).collect();
            profile
                .entry(r[0].clone())
                .or_default()
                .push(format!("{table}:{}", ds.join("/")));
        }
    }
    let col = |c: &str| ph.iter().position(|h| h == c).unwrap();
    let qi: Vec<usize> = policy.quasi_identifiers.keys().map(|c| col(c)).collect();
    let sens = col("income_support");
    let mut classes: BTreeMap<Vec<String>, (usize, HashSet<String>)> = BTreeMap::new();
    for p in &persons {
        let mut key: Vec<String> = qi.iter().map(|&i| p[i].clone()).collect();
        let mut prof = profile.remove(&p[0]).unwrap_or_default();
        prof.sort();
        key.push(prof.join(";"));
        let e = classes.entry(key).or_default();
        e.0 += 1;
        e.1.insert(p[sens].clone());
    }
    assert!(profile.is_empty(), "records of persons not released");
    for (key, (n, values)) in &classes {
        assert!(
            *n >= 5 && values.len() >= 2,
            "{key:?}: {n} persons, {values:?}"
        );
    }
    let ids: HashSet<String> = persons.iter().map(|p| p[0].clone()).collect();
    assert_eq!(ids.len(), persons.len());

    // A second release: no id in common with the first.
    let out2 = tmp.path().join("release2");
    research_release(&store, &policy, &out2).unwrap();
    let (_, persons2) = read(&out2.join("persons.csv"));
    assert!(persons2.iter().all(|p| !ids.contains(&p[0])));

    // A policy the data cannot meet writes nothing.
    let strict: Policy = toml::from_str(&format!("max_risk = 0.1\n{POLICY}")).unwrap();
    let out3 = tmp.path().join("release3");
    let err = research_release(&store, &strict, &out3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing written"), "{err}");
    assert!(!out3.exists());
}
