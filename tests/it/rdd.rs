//! Regression discontinuity against rdrobust 2.1.1 (`tests/fixtures/rdd/`, written by
//! `reference.py` there, which also checks an independent numpy version of the algorithm).

use std::path::Path;

use occupa_engine::causal::rdd::{FittedRd, RdSpec, Vce};
use serde_json::Value;

fn fixture() -> (Value, Vec<[f64; 5]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rdd");
    let exp: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let mut rdr = csv::Reader::from_path(dir.join("rdd.csv")).unwrap();
    let h: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let idx = [col("x"), col("y"), col("d"), col("t"), col("yf")];
    let rows = rdr
        .records()
        .map(|r| {
            let r = r.unwrap();
            idx.map(|i| r[i].parse::<f64>().unwrap())
        })
        .collect();
    (exp, rows)
}

#[track_caller]
fn close(what: &str, ours: f64, theirs: f64, rel: f64) {
    let err = (ours - theirs).abs() / theirs.abs().max(1e-300);
    assert!(
        err <= rel,
        "{what}: ours {ours}, rdrobust {theirs}, relative error {err:.2e}"
    );
}

fn check(name: &str, fit: &FittedRd, e: &Value, rel: f64) {
    let num = |v: &Value| v.as_f64().unwrap();
    close(&format!("{name} h"), fit.h[1], num(&e["h"]["right"]), rel);
    close(&format!("{name} b"), fit.b[1], num(&e["b"]["right"]), rel);
    close(
        &format!("{name} conventional"),
        fit.conventional.estimate,
        num(&e["coef"]["Conventional"]),
        rel,
    );
    close(
        &format!("{name} bias-corrected"),
        fit.robust.estimate,
        num(&e["coef"]["Robust"]),
        rel,
    );
    close(
        &format!("{name} conventional SE"),
        fit.conventional.se,
        num(&e["se"]["Conventional"]),
        rel,
    );
    close(
        &format!("{name} robust SE"),
        fit.robust.se,
        num(&e["se"]["Robust"]),
        rel,
    );
    assert_eq!(
        fit.n_h[0] as u64,
        e["N_h"][0].as_u64().unwrap(),
        "{name} N_h left"
    );
    assert_eq!(
        fit.n_b[1] as u64,
        e["N_b"][1].as_u64().unwrap(),
        "{name} N_b right"
    );
}

#[test]
fn sharp_and_fuzzy_designs_match_rdrobust() {
    let (exp, rows) = fixture();
    let x: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    let y: Vec<f64> = rows.iter().map(|r| r[1]).collect();
    let t: Vec<f64> = rows.iter().map(|r| r[3]).collect();
    let yf: Vec<f64> = rows.iter().map(|r| r[4]).collect();
    let cases = &exp["cases"];
    let fixed = RdSpec::new(0.0)
        .bandwidth(0.3, None)
        .unwrap()
        .fit(&x, &y)
        .unwrap();
    check("h=0.3 nn", &fixed, &cases["sharp_h0.3_nn"], 1e-8);
    let fixed = RdSpec::new(0.0)
        .vce(Vce::Hc0)
        .bandwidth(0.3, Some(0.5))
        .unwrap()
        .fit(&x, &y)
        .unwrap();
    check(
        "h=0.3 b=0.5 hc0",
        &fixed,
        &cases["sharp_h0.3_b0.5_hc0"],
        1e-8,
    );
    check(
        "mserd nn",
        &RdSpec::new(0.0).fit(&x, &y).unwrap(),
        &cases["sharp_default"],
        1e-6,
    );
    check(
        "mserd hc1",
        &RdSpec::new(0.0).vce(Vce::Hc1).fit(&x, &y).unwrap(),
        &cases["sharp_hc1"],
        1e-6,
    );
    check(
        "mserd hc2",
        &RdSpec::new(0.0).vce(Vce::Hc2).fit(&x, &y).unwrap(),
        &cases["sharp_hc2"],
        1e-6,
    );
    check(
        "mserd hc3",
        &RdSpec::new(0.0).vce(Vce::Hc3).fit(&x, &y).unwrap(),
        &cases["sharp_hc3"],
        1e-6,
    );
    check(
        "fuzzy",
        &RdSpec::new(0.0).fit_fuzzy(&x, &yf, &t).unwrap(),
        &cases["fuzzy_default"],
        1e-6,
    );
}

#[test]
fn density_test_matches_rddensity() {
    use occupa_engine::causal::density::density_test;
    let (_, rows) = fixture();
    let x: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rdd");
    let exp: Value =
        serde_json::from_slice(&std::fs::read(dir.join("density_expected.json")).unwrap()).unwrap();
    let num = |v: &Value| v.as_f64().unwrap();
    for (key, h) in [("default_comb", None), ("h_0.4_0.4", Some([0.4, 0.4]))] {
        let e = &exp["cases"][key];
        let t = density_test(&x, 0.0, h).unwrap();
        close(&format!("{key} h left"), t.h[0], num(&e["h"]["left"]), 1e-8);
        close(
            &format!("{key} h right"),
            t.h[1],
            num(&e["h"]["right"]),
            1e-8,
        );
        close(
            &format!("{key} density left"),
            t.density[0],
            num(&e["hat"]["left"]),
            1e-8,
        );
        close(
            &format!("{key} density right"),
            t.density[1],
            num(&e["hat"]["right"]),
            1e-8,
        );
        close(
            &format!("{key} se left"),
            t.se[0],
            num(&e["sd_jk"]["left"]),
            1e-8,
        );
        close(&format!("{key} T"), t.t, num(&e["test"]["t_jk"]), 1e-8);
        close(
            &format!("{key} p"),
            t.p_value,
            num(&e["test"]["p_jk"]),
            1e-8,
        );
        assert_eq!(
            t.n_effective[0] as u64,
            e["n"]["eff_left"].as_u64().unwrap()
        );
        assert_eq!(
            t.n_effective[1] as u64,
            e["n"]["eff_right"].as_u64().unwrap()
        );
    }
}

/// A discrete running variable (integer scores, as the GOL assessment gives): rdrobust's
/// default `masspoints = "adjust"` keeps the pilot and first-step bandwidths to at least
/// 10 distinct values per side. Against rdrobust 2.1.1 on integers −20..20, −8..8 (where
/// the unadjusted selection fails) and a nearly continuous variable
/// (`tests/fixtures/rdd/masspoints_reference.py`).
#[test]
fn mass_points_in_the_running_variable_are_handled_as_rdrobust_adjusts_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rdd");
    let exp: Value =
        serde_json::from_slice(&std::fs::read(dir.join("masspoints_expected.json")).unwrap())
            .unwrap();
    let mut rdr = csv::Reader::from_path(dir.join("masspoints_data.csv")).unwrap();
    let rows: Vec<Vec<f64>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(|v| v.parse().unwrap()).collect())
        .collect();
    let data = |k: usize| -> (Vec<f64>, Vec<f64>) {
        (
            rows.iter().map(|r| r[2 * k]).collect(),
            rows.iter().map(|r| r[2 * k + 1]).collect(),
        )
    };
    for (case, k, spec, detected) in [
        ("d1_adjust", 0, RdSpec::new(0.0), true),
        ("d2_adjust", 1, RdSpec::new(0.0), true),
        ("d3_adjust", 2, RdSpec::new(0.0), false),
        ("d1_adjust_hc1", 0, RdSpec::new(0.0).vce(Vce::Hc1), true),
        ("d2_adjust_hc1", 1, RdSpec::new(0.0).vce(Vce::Hc1), true),
        (
            "d2_h3.5_nn",
            1,
            RdSpec::new(0.0).bandwidth(3.5, None).unwrap(),
            true,
        ),
    ] {
        let (x, y) = data(k);
        let fit = spec.fit(&x, &y).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(fit.mass_points, detected, "{case}");
        let e = &exp["cases"][case];
        check(case, &fit, e, 1e-8);
        let n_h: Vec<usize> = e["N_h"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(fit.n_h.to_vec(), n_h, "{case} N_h");
    }
    // rdrobust refuses h = 3 on −8..8 (x = −3 gets weight 0, too few values left): so do we.
    let (x, y) = data(1);
    assert!(
        RdSpec::new(0.0)
            .bandwidth(3.0, None)
            .unwrap()
            .fit(&x, &y)
            .is_err()
    );
}
