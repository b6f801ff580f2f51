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

fn cluster_expected() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cluster/expected.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// bfi's 25 items, complete cases (the fixture's rows).
fn bfi_items(dir: &Path) -> (ndarray::Array2<f64>, Vec<usize>) {
    let names: Vec<String> = ["A", "C", "E", "N", "O"]
        .iter()
        .flat_map(|d| (1..=5).map(move |i| format!("{d}{i}")))
        .collect();
    let cols: Vec<&str> = names.iter().map(String::as_str).collect();
    let table = Table::read(&dir.join("questionnaires/bfi.csv"), &cols).unwrap();
    let values: Vec<&[f64]> = cols.iter().map(|c| table.numeric(c).unwrap()).collect();
    let rows: Vec<usize> = (0..table.len())
        .filter(|&i| values.iter().all(|v| !v[i].is_nan()))
        .collect();
    let x = ndarray::Array2::from_shape_fn((rows.len(), 25), |(i, j)| values[j][rows[i]]);
    (x, rows)
}

#[test]
fn kmeans_inertia_is_within_a_thousandth_of_scikit_learns_best_of_ten() {
    use occupa_engine::cluster::kmeans::KMeans;
    let Some(dir) = data_dir() else { return };
    let exp = &cluster_expected()["kmeans"];
    let (x, rows) = bfi_items(&dir);
    let want: Vec<usize> = exp["row_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(rows, want, "complete cases");
    assert_eq!(x.sum(), exp["checksum_raw_sum"].as_f64().unwrap());
    for (variant, standardise) in [("raw", false), ("standardised", true)] {
        for k in 2..=8 {
            let sk = exp[variant][k.to_string()]["inertia"].as_f64().unwrap();
            let fit = KMeans::new(k)
                .unwrap()
                .standardise(standardise)
                .fit(x.view())
                .unwrap();
            assert!(fit.converged);
            assert!(
                fit.inertia <= sk * 1.001,
                "{variant} k={k}: {} against scikit-learn's {sk}",
                fit.inertia
            );
        }
    }
}

/// poLCA 1.6.0.2's fits (`tests/fixtures/lca/polca_expected.json`, see its README).
#[test]
fn lca_estimates_and_standard_errors_match_polca() {
    let Some(dir) = data_dir() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lca/polca_expected.json");
    let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let fits = exp["fits"].as_object().unwrap();
    let mut compared = 0;
    for (id, f) in fits {
        if !f["covariates"].is_null() && f["covariates"].as_array().is_some_and(|c| !c.is_empty()) {
            continue;
        }
        let file = match f["dataset"].as_str().unwrap() {
            d if d.contains("carcinoma") => "polca_carcinoma.csv",
            d if d.contains("election") => "polca_election.csv",
            _ => "bfi.csv",
        };
        let cols: Vec<&str> = f["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut data = items(&dir, file, &cols);
        if f["na_rm"].as_bool().unwrap() {
            data = data.complete_cases().0;
        }
        assert_eq!(data.rows() as u64, f["n"].as_u64().unwrap(), "{id}: rows");
        let r = f["nclass"].as_u64().unwrap() as usize;
        let fit = Lca::new(r)
            .unwrap()
            .starts(if r == 4 { 40 } else { 20 })
            .unwrap()
            .tol(1e-14)
            .unwrap()
            .fit(&data)
            .unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        assert!(
            (fit.loglik - num(&f["llik"])).abs() < 1e-7,
            "{id}: log-likelihood {} against {}",
            fit.loglik,
            f["llik"]
        );
        assert_eq!(fit.npar as u64, f["npar"].as_u64().unwrap(), "{id}: npar");
        assert!((fit.bic - num(&f["bic"])).abs() < 1e-6, "{id}: BIC");
        assert!((fit.aic - num(&f["aic"])).abs() < 1e-6, "{id}: AIC");
        let se = fit.standard_errors().unwrap();
        // Carcinoma's four classes are barely identified (the likelihood is flat along
        // some directions: poLCA and we stop at points 1e-10 apart in log-likelihood but
        // 1e-5 apart in probabilities); elsewhere the optimum is sharp.
        let loose = if id == "carcinoma_R4" { 1000.0 } else { 1.0 };
        for c in 0..r {
            // Probabilities to 1e-6 absolute; standard errors to 1e-4 relative.
            let close = |what: &str, ours: f64, theirs: f64, tol: f64| {
                let scale = if what.contains("SE") {
                    theirs.abs().max(1e-3)
                } else {
                    1.0
                };
                assert!(
                    (ours - theirs).abs() <= loose * tol * scale,
                    "{id} class {}: {what} {ours} against poLCA's {theirs}",
                    c + 1
                );
            };
            close("share", fit.shares[c], num(&f["P"][c]), 1e-6);
            close("share SE", se.shares[c], num(&f["P_se"][c]), 1e-4);
            for (j, item) in cols.iter().enumerate() {
                for k in 0..data.categories(j) {
                    let what = format!("{item} = {}", k + 1);
                    close(
                        &what,
                        fit.probs[j][[c, k]],
                        num(&f["probs"][item][c][k]),
                        1e-6,
                    );
                    close(
                        &format!("SE of {what}"),
                        se.probs[j][[c, k]],
                        num(&f["probs_se"][item][c][k]),
                        1e-4,
                    );
                }
            }
        }
        compared += 1;
    }
    assert_eq!(compared, 7);
}

#[test]
fn gaussian_mixtures_reach_scikit_learns_likelihood_with_its_parameter_count() {
    use occupa_engine::cluster::gmm::{Covariance, Gmm};
    let Some(dir) = data_dir() else { return };
    let exp = &cluster_expected()["gmm"];
    let (x, _) = bfi_items(&dir);
    // Scale scores: reverse-keyed items as 7 − x, then the mean of each scale's five.
    let reversed = [0, 8, 9, 10, 11, 21, 24]; // A1, C4, C5, E1, E2, O2, O5
    let scores = ndarray::Array2::from_shape_fn((x.nrows(), 5), |(i, s)| {
        (0..5)
            .map(|t| {
                let j = s * 5 + t;
                if reversed.contains(&j) {
                    7.0 - x[[i, j]]
                } else {
                    x[[i, j]]
                }
            })
            .sum::<f64>()
            / 5.0
    });
    assert!((scores.sum() - exp["checksum_sum_all"].as_f64().unwrap()).abs() < 1e-8);
    for (name, cov) in [("full", Covariance::Full), ("diag", Covariance::Diag)] {
        for k in 1..=6 {
            let e = &exp[name][k.to_string()];
            // Where scikit-learn stopped at its iteration limit, its warm-started
            // continuation is the reference.
            let theirs = e["continued_warm_start"]["loglik_total"]
                .as_f64()
                .unwrap_or_else(|| e["loglik_total"].as_f64().unwrap());
            let fit = Gmm::new(k, cov)
                .unwrap()
                .max_iter(10_000)
                .unwrap()
                .fit(scores.view())
                .unwrap();
            assert_eq!(
                fit.npar as u64,
                e["n_parameters"].as_u64().unwrap(),
                "{name} k={k}"
            );
            // Mixtures have local optima: ours may be better, never worse than 1e-6
            // relative.
            assert!(
                fit.loglik >= theirs - 1e-6 * theirs.abs(),
                "{name} k={k}: log-likelihood {} against scikit-learn's {theirs}",
                fit.loglik
            );
            let bic = -2.0 * fit.loglik + fit.npar as f64 * (x.nrows() as f64).ln();
            assert!((fit.bic - bic).abs() < 1e-9);
        }
    }
}

#[test]
fn silhouette_adjusted_rand_and_jaccard_match_scikit_learn() {
    use occupa_engine::cluster::quality::{adjusted_rand, pair_jaccard, silhouette};
    let Some(dir) = data_dir() else { return };
    let exp = cluster_expected();
    let (x, _) = bfi_items(&dir);
    let labels = |k: &str| -> Vec<usize> {
        exp["kmeans"]["raw"][k]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let (l3, l4) = (labels("3"), labels("4"));
    let v = &exp["validity"];
    let (mean, widths) = silhouette(x.view(), &l3).unwrap();
    let want = v["silhouette_k3_raw"]["score_sklearn"].as_f64().unwrap();
    assert!((mean - want).abs() < 1e-12, "{mean} against {want}");
    for (i, w) in v["silhouette_k3_raw"]["samples_first20_sklearn"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert!((widths[i] - w.as_f64().unwrap()).abs() < 1e-12, "row {i}");
    }
    let ari = v["k3_vs_k4_raw"]["adjusted_rand_sklearn"].as_f64().unwrap();
    assert!((adjusted_rand(&l3, &l4) - ari).abs() < 1e-12);
    let jac = v["k3_vs_k4_raw"]["jaccard_pairs"].as_f64().unwrap();
    assert!((pair_jaccard(&l3, &l4) - jac).abs() < 1e-12);
}

#[test]
fn kprototypes_reaches_kmodes_cost_with_its_default_gamma() {
    use occupa_engine::cluster::kprototypes::KPrototypes;
    let Some(dir) = data_dir() else { return };
    let exp = &cluster_expected()["kprototypes"];
    let items_names: Vec<String> = ["A", "C", "E", "N", "O"]
        .iter()
        .flat_map(|d| (1..=5).map(move |i| format!("{d}{i}")))
        .collect();
    let mut cols: Vec<&str> = vec!["age", "gender", "education"];
    cols.extend(items_names.iter().map(String::as_str));
    let table = Table::read(&dir.join("questionnaires/bfi.csv"), &cols).unwrap();
    let rows: Vec<usize> = exp["row_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let value = |c: &str, i: usize| table.numeric(c).unwrap()[i];
    let reversed = ["A1", "C4", "C5", "E1", "E2", "O2", "O5"];
    let num = ndarray::Array2::from_shape_fn((rows.len(), 6), |(r, j)| {
        let i = rows[r];
        if j == 0 {
            return value("age", i);
        }
        let scale = ["A", "C", "E", "N", "O"][j - 1];
        (1..=5)
            .map(|t| {
                let name = format!("{scale}{t}");
                let v = value(&name, i);
                if reversed.contains(&name.as_str()) {
                    7.0 - v
                } else {
                    v
                }
            })
            .sum::<f64>()
            / 5.0
    });
    assert!((num.sum() - exp["checksum_numeric_sum"].as_f64().unwrap()).abs() < 1e-8);
    let mut cat_names = vec!["gender".to_string(), "education".to_string()];
    cat_names.extend(items_names.iter().cloned());
    let all = Items::from_table(&table, &cat_names).unwrap();
    let cat = Items::from_codes(
        cat_names.clone(),
        (0..all.len()).map(|j| all.labels(j).to_vec()).collect(),
        (0..all.len())
            .map(|j| {
                rows.iter()
                    .map(|&i| Some(u32::from(all.row(i)[j])))
                    .collect()
            })
            .collect(),
    )
    .unwrap();
    let fit = KPrototypes::new(3).unwrap().fit(num.view(), &cat).unwrap();
    let gamma = exp["gamma_default_exact"].as_f64().unwrap();
    assert!((fit.gamma - gamma).abs() < 1e-12 * gamma);
    let theirs = exp["Cao"]["cost"].as_f64().unwrap();
    assert!(
        fit.cost <= theirs * (1.0 + 1e-9),
        "cost {} against kmodes' {theirs}",
        fit.cost
    );
    let sizes: Vec<u64> = exp["Cao"]["sizes_sorted_desc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        fit.sizes.iter().map(|&s| s as u64).collect::<Vec<_>>(),
        sizes
    );
}

/// The simulator plants four latent classes (engine/src/simulate.rs) that drive the 25
/// ASSO answers: within a class each answer is round(1 + 3p + 0.8 z) on 1..4, with the
/// class's level p for the item's area (0.85/0.85/0.80, 0.35/0.70/0.35, 0.55/0.30/0.55
/// and 0.25/0.25/0.30 over the three areas) and 2 % of answers missing. Neighbouring
/// classes thus differ by 0.6 to 1.8 points (0.75 to 2.2 noise SDs) on every item of at
/// least one area: separated enough for a near-perfect recovery from 25 items.
#[test]
fn lca_recovers_the_simulators_planted_classes() {
    use occupa_engine::cluster::kmeans::KMeans;
    use occupa_engine::cluster::quality::adjusted_rand;
    use occupa_engine::instruments::Instruments;
    use occupa_engine::simulate::{SimConfig, simulate};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        persons: 4000,
        tenants: 1,
        seed: 7,
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    simulate(&cfg, &Instruments::builtin().unwrap(), tmp.path()).unwrap();
    let truth = Table::read(
        &tmp.path().join("truth-persons.csv"),
        &["tax_code", "class"],
    )
    .unwrap();
    let (codes, code_of) = truth.categories("tax_code").unwrap();
    let class_of: std::collections::HashMap<&str, usize> = code_of
        .iter()
        .zip(truth.numeric("class").unwrap())
        .map(|(c, &k)| (codes[c.unwrap() as usize].as_str(), k as usize))
        .collect();
    let names: Vec<String> = (1..=25).map(|i| format!("q{i:02}")).collect();
    let mut cols: Vec<&str> = vec!["codice_fiscale"];
    cols.extend(names.iter().map(String::as_str));
    let asso = Table::read(&tmp.path().join("t01/asso.csv"), &cols).unwrap();
    let (ids, id_of) = asso.categories("codice_fiscale").unwrap();
    let planted: Vec<usize> = id_of
        .iter()
        .map(|c| class_of[ids[c.unwrap() as usize].as_str()])
        .collect();
    let items = Items::from_table(&asso, &names).unwrap();
    assert!(items.missing() > 0, "the simulator leaves answers missing");
    let fit = Lca::new(4).unwrap().seed(3).fit(&items).unwrap();
    assert_eq!(fit.n, items.rows(), "every person answered something");
    let ari = adjusted_rand(&planted, &fit.labels());
    assert!(
        ari >= 0.9,
        "LCA: adjusted Rand {ari} against the planted classes"
    );
    // k-means on the complete cases sees the same structure.
    let (complete, rows) = items.complete_cases();
    let x = ndarray::Array2::from_shape_fn((complete.rows(), 25), |(i, j)| {
        complete.labels(j)[complete.row(i)[j] as usize]
            .parse::<f64>()
            .unwrap()
    });
    let km = KMeans::new(4).unwrap().fit(x.view()).unwrap();
    let planted_complete: Vec<usize> = rows.iter().map(|&i| planted[i]).collect();
    let ari_km = adjusted_rand(&planted_complete, &km.labels);
    assert!(ari_km >= 0.9, "k-means: adjusted Rand {ari_km}");
}

#[test]
fn the_same_seed_gives_the_same_result_on_one_thread_or_two() {
    use occupa_engine::cluster::gmm::{Covariance, Gmm};
    use occupa_engine::cluster::kprototypes::KPrototypes;
    let Some(dir) = data_dir() else { return };
    let election = items(&dir, "polca_election.csv", &ELECTION);
    let (x, _) = bfi_items(&dir);
    let small = x.slice(ndarray::s![.., ..5]).to_owned();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let lca = Lca::new(3)
                    .unwrap()
                    .starts(4)
                    .unwrap()
                    .seed(8)
                    .fit(&election)
                    .unwrap();
                let gmm = Gmm::new(3, Covariance::Full)
                    .unwrap()
                    .seed(8)
                    .fit(small.view())
                    .unwrap();
                let cat = election.complete_cases().0;
                let num = ndarray::Array2::from_shape_fn((cat.rows(), 1), |(i, _)| (i % 7) as f64);
                let kp = KPrototypes::new(3)
                    .unwrap()
                    .seed(8)
                    .fit(num.view(), &cat)
                    .unwrap();
                (
                    lca.loglik.to_bits(),
                    lca.labels(),
                    gmm.loglik.to_bits(),
                    gmm.labels,
                    kp.cost.to_bits(),
                    kp.labels,
                )
            })
    };
    assert!(
        run(1) == run(2),
        "results differ between one and two threads"
    );
}

#[test]
fn a_saved_model_assigns_its_own_rows_to_the_same_clusters() {
    use occupa_engine::cluster::gmm::Covariance;
    use occupa_engine::cluster::model::SavedModel;
    use occupa_engine::cluster::run::{ClusterSpec, Method, assign_csv, cluster_csv};
    let Some(dir) = data_dir() else { return };
    let path = dir.join("questionnaires/bfi.csv");
    let items: Vec<String> = ["A1", "A2", "C1", "C2", "E1", "N1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut with_age = items.clone();
    with_age.push("age".into());
    for (method, columns, categorical, standardise) in [
        (Method::Kmeans, items.clone(), vec![], true),
        (Method::Gmm, items.clone(), vec![], true),
        (Method::Lca, items.clone(), vec![], false),
        (Method::Kprototypes, with_age, items.clone(), false),
    ] {
        let spec = ClusterSpec {
            columns,
            categorical,
            method,
            k: (3, 3),
            standardise,
            covariance: Covariance::Diag,
            standard_errors: false,
            ..ClusterSpec::default()
        };
        let report = cluster_csv(&path, &spec).unwrap();
        // Through JSON, as `--save-model` writes it.
        let json = serde_json::to_string(&report.model).unwrap();
        let model: SavedModel = serde_json::from_str(&json).unwrap();
        assert_eq!(model, report.model);
        let got = assign_csv(&path, &model).unwrap();
        assert_eq!(got.labels, report.labels, "{method:?}");
        if let (Some(a), Some(b)) = (&got.posterior, &report.posterior) {
            let diff = (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(diff < 1e-9, "{method:?}: posteriors differ by {diff}");
        }
    }
}

#[test]
fn an_unidentified_latent_class_model_is_refused_with_the_reason() {
    // One binary item cannot identify two classes: 3 parameters for 1 free cell.
    let items = Items::from_codes(
        vec!["q".into()],
        vec![vec!["no".into(), "yes".into()]],
        vec![(0..50).map(|i| Some(i % 2)).collect()],
    )
    .unwrap();
    let err = Lca::new(2).unwrap().fit(&items).unwrap_err().to_string();
    assert!(
        err.contains("not identified") && err.contains("fewer classes"),
        "{err}"
    );
    // One class is a plain table of margins: fine.
    assert!(Lca::new(1).unwrap().fit(&items).is_ok());
}

#[test]
fn a_constant_and_an_empty_column_are_left_out_named_and_change_nothing() {
    use occupa_engine::cluster::run::{ClusterSpec, Method, cluster_csv};
    let tmp = tempfile::tempdir().unwrap();
    let mut plain = String::from("a,b\n");
    let mut extra = String::from("a,b,region,notes\n");
    for i in 0..200 {
        let g = if i % 2 == 0 { 0.0 } else { 5.0 };
        let (a, b) = (g + (i % 7) as f64 / 10.0, g + (i % 5) as f64 / 10.0);
        plain.push_str(&format!("{a},{b}\n"));
        extra.push_str(&format!("{a},{b},1,\n"));
    }
    let (p, q) = (tmp.path().join("p.csv"), tmp.path().join("q.csv"));
    std::fs::write(&p, plain).unwrap();
    std::fs::write(&q, extra).unwrap();
    for method in [Method::Kmeans, Method::Gmm] {
        let spec = |cols: &[&str]| ClusterSpec {
            columns: cols.iter().map(|s| s.to_string()).collect(),
            method,
            k: (2, 2),
            standardise: true,
            standard_errors: false,
            ..ClusterSpec::default()
        };
        let a = cluster_csv(&p, &spec(&["a", "b"])).unwrap();
        let b = cluster_csv(&q, &spec(&["a", "region", "b", "notes"])).unwrap();
        assert_eq!(
            b.left_out,
            vec!["region (a single value)", "notes (all missing)"],
            "{method:?}"
        );
        assert_eq!(b.used, 200, "{method:?}: no row lost to the empty column");
        assert_eq!(a.labels, b.labels, "{method:?}");
    }
}
