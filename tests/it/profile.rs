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
