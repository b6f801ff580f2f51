//! Oracle tests of the anonymiser on public data (OCCUPA_DATA_DIR).

use std::path::PathBuf;

use occupa_anonymiser::hierarchy::{Hierarchy, check_node};

/// The public-data folder, or `None` (test skipped) on a user's machine without it; under
/// CI the data must be there.
fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("OCCUPA_DATA_DIR")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("OCCUPA_DATA_DIR must point to shared/data under CI")
        }
        None => {
            eprintln!(
                "skipped: set OCCUPA_DATA_DIR to the public datasets folder to run this oracle test"
            );
            None
        }
    }
}

#[test]
fn arx_optimal_nodes_on_adult_are_k_anonymous_within_their_suppression_limit() {
    let Some(dir) = data_dir() else { return };
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("adult/arx-golden.json")).unwrap()).unwrap();
    let columns: Vec<String> = golden["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let hierarchies: Vec<Hierarchy> = columns
        .iter()
        .map(|c| Hierarchy::from_csv(c, &dir.join(format!("adult/hierarchies/{c}.csv"))).unwrap())
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
    let rows: Vec<Vec<&str>> = records
        .iter()
        .map(|r| idx.iter().map(|&i| r.get(i).unwrap()).collect())
        .collect();
    for case in golden["cases"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let limit = case["suppression_limit"].as_f64().unwrap();
        let node: Vec<usize> = case["transformation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_u64().unwrap() as usize)
            .collect();
        let at = check_node(&rows, &hierarchies, &node, k, limit).unwrap();
        assert!(
            at.feasible,
            "k={k} limit={limit}: ARX's node {node:?} must be feasible, {} records below k",
            at.records_below_k
        );
        // The original data (every level 0) is far from k-anonymous.
        let raw = check_node(&rows, &hierarchies, &vec![0; node.len()], k, limit).unwrap();
        assert!(!raw.feasible);
    }
}
