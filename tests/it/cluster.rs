//! Clustering against its references: poLCA's documented log-likelihoods and fixtures
//! from poLCA and scikit-learn (`tests/fixtures/lca`, `tests/fixtures/cluster`).

use std::path::Path;

use occupa_engine::cluster::items::Items;
use occupa_engine::cluster::lca::Lca;
use occupa_engine::columns::Table;

use crate::data_dir;

const ELECTION: [&str; 12] = [
    "MORALG", "CARESG", "KNOWG", "LEADG", "DISHONG", "INTELG", "MORALB", "CARESB", "KNOWB",
    "LEADB", "DISHONB", "INTELB",
];

fn items(dir: &Path, file: &str, cols: &[&str]) -> Items {
    let names: Vec<String> = cols.iter().map(|s| s.to_string()).collect();
    let table = Table::read(&dir.join("questionnaires").join(file), cols).unwrap();
    Items::from_table(&table, &names).unwrap()
}

#[test]
fn lca_reaches_polcas_documented_log_likelihoods_with_the_default_starts() {
    let Some(dir) = data_dir() else { return };
    let carcinoma = items(
        &dir,
        "polca_carcinoma.csv",
        &["A", "B", "C", "D", "E", "F", "G"],
    );
    assert_eq!(carcinoma.rows(), 118);
    for (r, golden) in [(2, -317.2568), (3, -293.705), (4, -289.2858)] {
        let fit = Lca::new(r).unwrap().fit(&carcinoma).unwrap();
        assert!(
            (fit.loglik - golden).abs() < 1e-3,
            "carcinoma, {r} classes: {} against poLCA's {golden}",
            fit.loglik
        );
        // (R − 1) + R Σ (Kⱼ − 1): 7 binary items.
        assert_eq!(fit.npar, (r - 1) + r * 7, "carcinoma, {r} classes");
    }
    let (election, _) = items(&dir, "polca_election.csv", &ELECTION).complete_cases();
    assert_eq!(election.rows(), 1311);
    for (r, golden) in [(2, -17344.92), (3, -16714.66)] {
        let fit = Lca::new(r).unwrap().fit(&election).unwrap();
        assert!(
            // The documentation prints two decimals: half a unit of the last one.
            (fit.loglik - golden).abs() <= 5e-3,
            "election, {r} classes: {} against poLCA's {golden}",
            fit.loglik
        );
        // 12 items of 4 categories.
        assert_eq!(fit.npar, (r - 1) + r * 12 * 3);
        let bic = -2.0 * fit.loglik + fit.npar as f64 * 1311f64.ln();
        assert!((fit.bic - bic).abs() < 1e-9);
    }
}
