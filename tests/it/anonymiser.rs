//! Oracle tests of the anonymiser on public data (OCCUPA_DATA_DIR).

use std::path::Path;

use occupa_anonymiser::audit::audit;
use occupa_anonymiser::hierarchy::{Hierarchy, check_node};
use occupa_anonymiser::metric::{GsFactor, Metric};
use occupa_anonymiser::microdata::Microdata;
use occupa_anonymiser::privacy::PrivacyModel;
use occupa_anonymiser::search::Anonymisation;
use occupa_anonymiser::{Cell, CountTable, MinCount, protect};

use crate::data_dir;

struct Adult {
    golden: serde_json::Value,
    columns: Vec<String>,
    hierarchies: Vec<Hierarchy>,
    records: Vec<csv::StringRecord>,
    idx: Vec<usize>,
}

impl Adult {
    fn load(dir: &Path) -> Adult {
        let golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("adult/arx-golden.json")).unwrap())
                .unwrap();
        let columns: Vec<String> = golden["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let hierarchies: Vec<Hierarchy> = columns
            .iter()
            .map(|c| {
                Hierarchy::from_csv(c, &dir.join(format!("adult/hierarchies/{c}.csv"))).unwrap()
            })
            .collect();
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(b',')
            .from_path(dir.join("adult/adult.csv"))
            .unwrap();
        let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
        let idx: Vec<usize> = columns
            .iter()
            .map(|c| header.iter().position(|h| h == c).unwrap())
            .collect();
        let records: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 30_162);
        Adult {
            golden,
            columns,
            hierarchies,
            records,
            idx,
        }
    }

    fn rows(&self) -> Vec<Vec<&str>> {
        self.records
            .iter()
            .map(|r| self.idx.iter().map(|&i| r.get(i).unwrap()).collect())
            .collect()
    }

    /// (k, suppression limit, ARX's node, ARX's loss) per golden case.
    fn cases(&self) -> Vec<(usize, f64, Vec<usize>, f64)> {
        self.golden["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| {
                (
                    case["k"].as_u64().unwrap() as usize,
                    case["suppression_limit"].as_f64().unwrap(),
                    case["transformation"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| l.as_u64().unwrap() as usize)
                        .collect(),
                    case["information_loss"].as_f64().unwrap(),
                )
            })
            .collect()
    }
}

#[test]
fn arx_optimal_nodes_on_adult_are_k_anonymous_within_their_suppression_limit() {
    let Some(dir) = data_dir() else { return };
    let adult = Adult::load(&dir);
    let rows = adult.rows();
    for (k, limit, node, _) in adult.cases() {
        let at = check_node(&rows, &adult.hierarchies, &node, k, limit).unwrap();
        assert!(
            at.feasible,
            "k={k} limit={limit}: ARX's node {node:?} must be feasible, {} records below k",
            at.records_below_k
        );
        // The original data (every level 0) is far from k-anonymous.
        let raw = check_node(&rows, &adult.hierarchies, &vec![0; node.len()], k, limit).unwrap();
        assert!(!raw.feasible);
    }
}

/// The exact oracle of issue 3: ARX 3.9.2's optimal transformations and non-uniform
/// entropy on Adult, found by the lattice search.
#[test]
fn search_finds_arx_optimal_transformation_and_entropy_on_adult() {
    let Some(dir) = data_dir() else { return };
    let adult = Adult::load(&dir);
    let rows = adult.rows();
    let data = Microdata::new(adult.hierarchies.clone(), None, &rows, 2).unwrap();
    assert_eq!(data.names(), adult.columns.as_slice());
    for (k, limit, node, arx_loss) in adult.cases() {
        let spec = Anonymisation::new(PrivacyModel::k_anonymity(k).unwrap())
            .max_suppression(limit)
            .unwrap()
            .metric(Metric::Entropy);
        let found = spec.fit(&data).unwrap();
        let levels: Vec<usize> = found.node().iter().map(|&l| l as usize).collect();
        assert_eq!(levels, node, "k={k} limit={limit}");
        let rel = (found.loss() - arx_loss).abs() / arx_loss;
        assert!(
            rel < 1e-12,
            "k={k} limit={limit}: loss {} vs ARX {arx_loss}",
            found.loss()
        );
        // Cross-check the suppression with the independent class count.
        let at = check_node(&rows, &adult.hierarchies, &node, k, limit).unwrap();
        assert_eq!(found.suppressed_records(), at.records_below_k as u64);
        eprintln!(
            "k={k} limit={limit}: {:?} loss {} checked {} of {} nodes ({} groups) in {:.1} ms",
            found.node(),
            found.loss(),
            found.stats().checked,
            found.stats().nodes,
            found.stats().groups_read,
            found.stats().seconds * 1e3
        );
    }
}

/// ARX's other metrics at the golden nodes, against an independent Python reading of
/// ARX's sources (tests/fixtures/arx-metrics: the script and what it printed).
#[test]
fn all_metrics_at_the_golden_nodes_match_the_reference_script() {
    let Some(dir) = data_dir() else { return };
    let adult = Adult::load(&dir);
    let rows = adult.rows();
    let data = Microdata::new(adult.hierarchies.clone(), None, &rows, 2).unwrap();
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/arx-metrics/expected.json")).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let node: Vec<u8> = case["transformation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_u64().unwrap() as u8)
            .collect();
        for (gs, expected) in case["metrics"].as_object().unwrap() {
            let spec = Anonymisation::new(PrivacyModel::k_anonymity(k).unwrap())
                .max_suppression(case["suppression_limit"].as_f64().unwrap())
                .unwrap()
                .gs_factor(GsFactor::new(gs.parse().unwrap()).unwrap());
            for (metric, value) in spec.utility(&data, &node).unwrap() {
                let want = expected[metric.name()].as_f64().unwrap();
                assert!(
                    (value - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "k={k} gs={gs} {metric}: {value} vs {want}"
                );
            }
        }
    }
}

/// Tau-Argus (pytauargus 0.6.0) on a municipality × citizenship table: every cell it
/// finds unsafe we hide, and we hide at most 20 % more cells than its optimal secondary
/// suppression; our audit finds no hidden cell that can be derived exactly.
#[test]
fn table_protection_against_tau_argus_optimal_suppression() {
    let Some(dir) = data_dir() else { return };
    let tables = dir.join("tables");
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let mut rdr = csv::Reader::from_path(tables.join("micro_mun_x_citgrp.csv")).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        *counts
            .entry((rec[0].trim().to_string(), rec[1].trim().to_string()))
            .or_default() += 1;
    }
    let read = |name: &str| -> Vec<(String, String, u64, String)> {
        csv::Reader::from_path(tables.join(name))
            .unwrap()
            .records()
            .map(|r| {
                let r = r.unwrap();
                (
                    r[0].trim().to_string(),
                    r[1].trim().to_string(),
                    r[3].parse().unwrap(),
                    r[5].to_string(),
                )
            })
            .collect()
    };
    let argus = read("out_FREQ_3_10_OPT.csv");
    let rows: Vec<String> = argus
        .iter()
        .map(|c| c.0.clone())
        .filter(|m| m != "Total")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let cols: Vec<String> = argus
        .iter()
        .map(|c| c.1.clone())
        .filter(|m| m != "Total")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let cells: Vec<Vec<u64>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| counts.get(&(r.clone(), c.clone())).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    let table = CountTable::new(rows.clone(), cols.clone(), cells).unwrap();
    for (file, threshold) in [
        ("out_FREQ_3_10_OPT.csv", 3),
        ("out_FREQ_3_10_MOD.csv", 3),
        ("out_FREQ_5_10_OPT.csv", 5),
    ] {
        let argus = read(file);
        let p = protect(&table, MinCount::new(threshold).unwrap());
        let index = |label: &str, labels: &[String]| {
            labels
                .iter()
                .position(|l| l == label)
                .unwrap_or(labels.len())
        };
        let (mut ours, mut theirs, mut our_cost, mut their_cost) = (0, 0, 0, 0);
        for (r, c, freq, status) in &argus {
            let cell = p.grid_cell(index(r, &rows), index(c, &cols));
            // The same table: the frequencies agree cell by cell.
            if let Cell::Safe(v) = cell {
                assert_eq!(v, *freq, "{file} {r} {c}");
            }
            if status == "U" {
                assert_eq!(cell, Cell::Primary, "{file}: {r} × {c} ({freq}) is unsafe");
            }
            if status == "M" {
                theirs += 1;
                their_cost += freq;
            }
            if cell == Cell::Secondary {
                ours += 1;
                our_cost += freq;
            }
            if cell == Cell::Primary {
                assert_eq!(
                    status, "U",
                    "{file}: {r} × {c} ({freq}) is safe for Tau-Argus"
                );
            }
        }
        eprintln!(
            "{file}: secondary suppressions Occupa {ours} (cost {our_cost}), Tau-Argus {theirs} (cost {their_cost})"
        );
        assert!(
            ours as f64 <= theirs as f64 * 1.2,
            "{file}: {ours} secondary suppressions against Tau-Argus's {theirs}"
        );
        assert!(audit(&table, &p).iter().all(|i| !i.is_exact()));
    }
}

/// pycanon's verdict on our releases (tests/fixtures/pycanon: the script and what it
/// printed) holds for what the code produces today: the same bytes, and pycanon found the
/// k and l asked for.
#[test]
fn releases_verified_by_pycanon_are_reproduced_byte_for_byte() {
    use occupa_anonymiser::csvtable::{TableJob, TableRules, anonymise_csv};
    use occupa_anonymiser::privacy::LDiversity;
    use occupa_anonymiser::risk::RiskPolicy;
    use sha2::{Digest, Sha256};

    let Some(dir) = data_dir() else { return };
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/pycanon/expected.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let strs = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let mut privacy = PrivacyModel::k_anonymity(k).unwrap();
        if let Some(l) = case["l"].as_u64() {
            privacy = privacy
                .with_l_diversity(LDiversity::Distinct { l: l as usize })
                .unwrap();
        }
        let spec = Anonymisation::new(privacy)
            .max_suppression(case["suppression"].as_f64().unwrap())
            .unwrap()
            .metric(case["metric"].as_str().unwrap().parse().unwrap());
        let job = TableJob {
            input: dir.join("adult/adult.csv"),
            sheet: None,
            rules: TableRules {
                qi: strs(&case["qi"]),
                sensitive: case["sensitive"].as_str().map(str::to_string),
                hierarchies: Some(dir.join("adult/hierarchies")),
                builtins: Vec::new(),
                drop: Vec::new(),
                spec,
                local_suppression: false,
                policy: RiskPolicy::for_k(k),
                keep: None,
            },
            out: tmp.path().join("release.csv"),
            quarantine: None,
            report: tmp.path().join("risk-report.json"),
        };
        anonymise_csv(&job).unwrap();
        let bytes = std::fs::read(&job.out).unwrap();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = case["name"].as_str().unwrap();
        assert_eq!(digest, case["release_sha256"].as_str().unwrap(), "{name}");
        let verdict = &case["released"];
        assert!(verdict["k"].as_u64().unwrap() >= k as u64, "{name}");
        if let Some(l) = case["l"].as_u64() {
            assert!(verdict["l"].as_u64().unwrap() >= l, "{name}");
        }
    }
}

/// The Python that has pycanon (`OCCUPA_PYTHON`; `.ci/run` makes one), or `None` (the
/// test is skipped) on a user's machine without it; under CI it must be there.
pub(crate) fn pycanon_python() -> Option<std::path::PathBuf> {
    match std::env::var_os("OCCUPA_PYTHON").map(std::path::PathBuf::from) {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("OCCUPA_PYTHON must name a Python with pycanon under CI")
        }
        None => {
            eprintln!(
                "skipped: set OCCUPA_PYTHON to a Python with pycanon 1.3.5 to run this check"
            );
            None
        }
    }
}

/// pycanon's k and l of a released table (tests/fixtures/pycanon/verify.py).
pub(crate) fn pycanon_verdict(
    python: &Path,
    release: &Path,
    qi: &[String],
    sensitive: &[String],
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pycanon/verify.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(release)
        .arg(qi.join(","))
        .arg(sensitive.join(","))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pycanon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every `anonymise-table` release the tests make is checked by pycanon, live: Adult with
/// its ARX hierarchies (k, l, every metric, with and without local suppression) and a
/// simulated persons export with the built-in hierarchies.
#[test]
fn every_anonymise_table_release_passes_pycanon() {
    use occupa_anonymiser::builtin::Builtin;
    use occupa_anonymiser::csvtable::{TableJob, TableRules, anonymise_csv};
    use occupa_anonymiser::privacy::LDiversity;
    use occupa_anonymiser::risk::RiskPolicy;
    let Some(python) = pycanon_python() else {
        return;
    };
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    occupa_engine::simulate::simulate(
        &occupa_engine::simulate::SimConfig {
            persons: 3000,
            tenants: 1,
            ..Default::default()
        },
        &occupa_engine::instruments::Instruments::builtin().unwrap(),
        &exports,
    )
    .unwrap();
    let adult_qi: Vec<String> = [
        "sex",
        "age",
        "race",
        "marital-status",
        "education",
        "native-country",
        "workclass",
        "occupation",
    ]
    .map(String::from)
    .to_vec();
    let persons_qi: Vec<String> = [
        "anno_nascita",
        "sesso",
        "cittadinanza",
        "comune_istat",
        "titolo_studio",
    ]
    .map(String::from)
    .to_vec();
    let builtins: Vec<(String, Builtin)> = [
        ("anno_nascita", "ordinal:1900-2030:5,10,20"),
        ("sesso", "flat"),
        ("cittadinanza", "citizenship"),
        ("comune_istat", "municipality"),
        ("titolo_studio", "ordinal:0-8:3,9"),
    ]
    .iter()
    .map(|(c, k)| (c.to_string(), k.parse().unwrap()))
    .collect();
    struct Case {
        input: std::path::PathBuf,
        qi: Vec<String>,
        sensitive: Option<String>,
        k: usize,
        l: Option<usize>,
        metric: &'static str,
        local: bool,
        adult: bool,
    }
    let adult = dir.join("adult/adult.csv");
    let persons = exports.join("t01/persons.csv");
    let cases = [
        Case {
            input: adult.clone(),
            qi: adult_qi.clone(),
            sensitive: None,
            k: 5,
            l: None,
            metric: "entropy",
            local: false,
            adult: true,
        },
        Case {
            input: adult.clone(),
            qi: adult_qi.clone(),
            sensitive: Some("salary-class".into()),
            k: 10,
            l: Some(2),
            metric: "loss",
            local: false,
            adult: true,
        },
        Case {
            input: adult.clone(),
            qi: adult_qi[..6].to_vec(),
            sensitive: None,
            k: 3,
            l: None,
            metric: "precision",
            local: true,
            adult: true,
        },
        Case {
            input: persons.clone(),
            qi: persons_qi.clone(),
            sensitive: None,
            k: 5,
            l: None,
            metric: "loss",
            local: false,
            adult: false,
        },
        Case {
            input: persons.clone(),
            qi: persons_qi.clone(),
            sensitive: Some("sostegno_reddito".into()),
            k: 5,
            l: Some(2),
            metric: "discernibility",
            local: true,
            adult: false,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let mut privacy = PrivacyModel::k_anonymity(c.k).unwrap();
        if let Some(l) = c.l {
            privacy = privacy
                .with_l_diversity(LDiversity::Distinct { l })
                .unwrap();
        }
        let job = TableJob {
            input: c.input.clone(),
            sheet: None,
            rules: TableRules {
                qi: c.qi.clone(),
                sensitive: c.sensitive.clone(),
                hierarchies: c.adult.then(|| dir.join("adult/hierarchies")),
                builtins: if c.adult {
                    Vec::new()
                } else {
                    builtins.clone()
                },
                drop: if c.adult {
                    Vec::new()
                } else {
                    ["codice_fiscale", "cognome", "nome"]
                        .map(String::from)
                        .to_vec()
                },
                spec: Anonymisation::new(privacy)
                    .max_suppression(0.05)
                    .unwrap()
                    .metric(c.metric.parse().unwrap()),
                local_suppression: c.local,
                policy: RiskPolicy::for_k(c.k),
                keep: None,
            },
            out: tmp.path().join(format!("release{i}.csv")),
            quarantine: None,
            report: tmp.path().join(format!("report{i}.json")),
        };
        anonymise_csv(&job).unwrap();
        let sensitive: Vec<String> = c.sensitive.iter().cloned().collect();
        let v = pycanon_verdict(&python, &job.out, &c.qi, &sensitive);
        // Local suppression releases records with one value `*`: pycanon sees them as
        // their own classes, and they must still hold k records.
        assert!(v["k"].as_u64().unwrap() >= c.k as u64, "case {i}: {v}");
        if let Some(l) = c.l {
            assert!(v["l"].as_u64().unwrap() >= l as u64, "case {i}: {v}");
        }
    }
}
