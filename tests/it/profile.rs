//! The profiling metrics against scikit-learn and statsmodels
//! (`tests/fixtures/profile/metrics.py` → `metrics.json`).

use occupa_engine::profile::metrics::{Bins, auc_delong, brier, calibration, reliability};

fn cases() -> Vec<serde_json::Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/profile/metrics.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: {got} against {want}");
}

#[test]
fn discrimination_brier_and_calibration_equal_the_reference_tools() {
    let cases = cases();
    assert_eq!(cases.len(), 3);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let p = floats(&c["p"]);
        let y: Vec<bool> = c["y"].as_array().unwrap().iter().map(|v| v == 1).collect();
        let d = auc_delong(&p, &y).unwrap();
        close(
            d.auc,
            c["auc"].as_f64().unwrap(),
            1e-12,
            &format!("{name} auc"),
        );
        close(
            d.se,
            c["auc_se"].as_f64().unwrap(),
            1e-12,
            &format!("{name} se"),
        );
        let ci = floats(&c["auc_ci95"]);
        close(d.ci95.0, ci[0], 1e-9, &format!("{name} ci low"));
        close(d.ci95.1, ci[1], 1e-9, &format!("{name} ci high"));
        close(
            brier(&p, &y).unwrap(),
            c["brier"].as_f64().unwrap(),
            1e-14,
            name,
        );
        let cal = calibration(&p, &y).unwrap();
        close(
            cal.slope,
            c["slope"].as_f64().unwrap(),
            1e-8,
            &format!("{name} slope"),
        );
        close(
            cal.intercept_joint,
            c["intercept_joint"].as_f64().unwrap(),
            1e-8,
            &format!("{name} joint intercept"),
        );
        close(
            cal.intercept,
            c["intercept"].as_f64().unwrap(),
            1e-9,
            &format!("{name} in the large"),
        );
        for (kind, bins, key) in [
            (Bins::Uniform, 10, "reliability_uniform"),
            (Bins::Quantile, 5, "reliability_quantile"),
        ] {
            let got = reliability(&p, &y, bins, kind).unwrap();
            let obs = floats(&c[key]["observed"]);
            let pred = floats(&c[key]["predicted"]);
            assert_eq!(got.len(), obs.len(), "{name} {key}");
            for (g, (o, pr)) in got.iter().zip(obs.iter().zip(&pred)) {
                close(g.observed, *o, 1e-12, &format!("{name} {key} observed"));
                close(g.predicted, *pr, 1e-12, &format!("{name} {key} predicted"));
            }
        }
    }
    // The over-fitted score is seen as such: a slope well below 1.
    let over = cases.iter().find(|c| c["name"] == "too_extreme").unwrap();
    assert!(over["slope"].as_f64().unwrap() < 0.7);
}

fn glm_fixture() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/profile/glm.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// statsmodels' coefficient names in the engine's spelling.
fn engine_name(sm: &str) -> String {
    if sm == "Intercept" {
        return "(intercept)".into();
    }
    if let Some(rest) = sm.strip_prefix("C(") {
        let (col, level) = rest.split_once(")[T.").unwrap();
        return format!("{col}={}", level.trim_end_matches(']'));
    }
    sm.replace("I(age ** 2)", "age^2").replace(':', "*")
}

fn fit_fixture(
    terms: &[&str],
    link: occupa_engine::profile::glm::Link,
    cov: occupa_engine::profile::glm::Covariance,
) -> (
    occupa_engine::profile::design::Encoding,
    occupa_engine::profile::design::Rows,
    occupa_engine::profile::glm::FittedGlm,
) {
    use occupa_engine::columns::Table;
    use occupa_engine::profile::{design::Encoding, glm};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/profile/glm-data.csv");
    let table = Table::read_all(std::path::Path::new(path)).unwrap();
    let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
    let all = vec![true; table.len()];
    let enc = Encoding::learn(&table, &terms, &all, 1).unwrap();
    let rows = enc.rows(&table).unwrap();
    let pick: Vec<usize> = (0..table.len()).collect();
    let x = enc.matrix(&rows, &pick);
    let y: Vec<bool> = table
        .numeric("y")
        .unwrap()
        .iter()
        .map(|&v| v == 1.0)
        .collect();
    let fit = glm::fit(x.view(), &y, &enc.names, link, cov).unwrap();
    (enc, rows, fit)
}

fn rel_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1e-3),
        "{what}: {got} against {want}"
    );
}

#[test]
fn logit_and_probit_with_marginal_effects_equal_statsmodels() {
    use occupa_engine::profile::glm::{self, Covariance, Link};
    let fx = glm_fixture();
    let terms = [
        "age",
        "age^2",
        "female",
        "age*female",
        "citizenship",
        "C(education)",
        "care",
    ];
    for case in fx["cases"].as_array().unwrap() {
        let link = match case["link"].as_str().unwrap() {
            "logit" => Link::Logit,
            _ => Link::Probit,
        };
        for (cov, se_key, ame_key) in [
            (Covariance::Model, "se", "ame"),
            (Covariance::Robust, "se_hc0", "ame_hc0"),
        ] {
            let (enc, rows, fit) = fit_fixture(&terms, link, cov);
            let what = format!("{link:?} {cov:?}");
            close(fit.loglik, case["loglik"].as_f64().unwrap(), 1e-8, &what);
            // statsmodels fits the null model with its default tolerance (its logit and
            // probit nulls differ by 2e-7); ours is the closed-form maximum.
            close(
                fit.loglik_null,
                case["loglik_null"].as_f64().unwrap(),
                1e-6,
                &what,
            );
            let se = fit.se();
            for (k, name) in case["names"].as_array().unwrap().iter().enumerate() {
                let ours = engine_name(name.as_str().unwrap());
                let j = enc
                    .names
                    .iter()
                    .position(|n| *n == ours)
                    .unwrap_or_else(|| {
                        panic!("{ours} not among {:?}", enc.names);
                    });
                rel_close(fit.coef[j], case["coef"][k].as_f64().unwrap(), 1e-7, &ours);
                rel_close(se[j], case[se_key][k].as_f64().unwrap(), 1e-6, &ours);
            }
            let pick: Vec<usize> = (0..rows.unusable.len()).collect();
            let ames = glm::average_marginal_effects(&fit, &enc, &rows, &pick).unwrap();
            let want = case[ame_key].as_array().unwrap();
            assert_eq!(ames.len(), want.len(), "{what}");
            for w in want {
                let var = w["variable"].as_str().unwrap();
                let level = w["level"].as_str();
                let got = ames
                    .iter()
                    .find(|a| a.variable == var && a.level.as_deref() == level)
                    .unwrap_or_else(|| panic!("no effect for {var} {level:?}"));
                rel_close(got.effect, w["effect"].as_f64().unwrap(), 1e-7, var);
                rel_close(got.se, w["se"].as_f64().unwrap(), 1e-5, var);
            }
        }
    }
    // statsmodels' own get_margeff on a model of plain columns.
    for case in fx["plain"].as_array().unwrap() {
        let link = match case["link"].as_str().unwrap() {
            "logit" => Link::Logit,
            _ => Link::Probit,
        };
        let (enc, rows, fit) = fit_fixture(
            &["age", "female", "care", "foreign"],
            link,
            Covariance::Model,
        );
        let pick: Vec<usize> = (0..rows.unusable.len()).collect();
        let ames = glm::average_marginal_effects(&fit, &enc, &rows, &pick).unwrap();
        for (k, var) in case["variables"].as_array().unwrap().iter().enumerate() {
            let got = ames
                .iter()
                .find(|a| a.variable == var.as_str().unwrap())
                .unwrap();
            rel_close(
                got.effect,
                case["effect"][k].as_f64().unwrap(),
                1e-8,
                "plain effect",
            );
            rel_close(got.se, case["se"][k].as_f64().unwrap(), 1e-5, "plain se");
        }
    }
}
