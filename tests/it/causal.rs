//! Oracle tests of the causal estimators on the Dehejia–Wahba LaLonde data
//! (OCCUPA_DATA_DIR), against `tests/fixtures/causal/expected.json`, written by
//! `tests/fixtures/causal/reference.py` (statsmodels 0.15 and an independent numpy
//! M-estimation; see the README there).

use std::path::Path;

use ndarray::Array1;
use occupa_engine::causal::Estimand;
use occupa_engine::causal::balance::{balance, effective_sample_size};
use occupa_engine::causal::logit::Logit;
use occupa_engine::causal::ols::{CovType, Ols};
use occupa_engine::causal::sample::Sample;
use occupa_engine::causal::table::{SampleSpec, load_csv};
use occupa_engine::causal::weighting::{Weighting, WeightingSpec};
use proptest::prelude::*;
use serde_json::Value;

use crate::data_dir;

const COVARIATES: [&str; 12] = [
    "age", "age^2", "educ", "educ^2", "black", "hisp", "marr", "nodegree", "re74", "re75", "u74",
    "u75",
];

fn expected() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/causal/expected.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[track_caller]
fn close(what: &str, ours: f64, theirs: f64, rel: f64) {
    let err = (ours - theirs).abs() / theirs.abs().max(1e-300);
    assert!(
        err <= rel,
        "{what}: ours {ours}, reference {theirs}, relative error {err:.2e}"
    );
}

fn psid(dir: &Path, cluster: bool) -> Sample {
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "re78".into(),
        covariates: COVARIATES.iter().map(|s| s.to_string()).collect(),
        cluster: cluster.then(|| "educ".into()),
        ..SampleSpec::default()
    };
    let loaded = load_csv(&dir.join("lalonde/nsw_psid.csv"), &spec).unwrap();
    assert_eq!(loaded.dropped_missing, 0);
    loaded.sample
}

#[test]
fn experimental_difference_in_means_is_dehejia_wahba_s() {
    let Some(dir) = data_dir() else { return };
    let exp = &expected()["experimental"];
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "re78".into(),
        covariates: vec!["age".into()],
        ..SampleSpec::default()
    };
    let s = load_csv(&dir.join("lalonde/nsw_dw_experimental.csv"), &spec)
        .unwrap()
        .sample;
    let (n1, n0) = (s.n_treated(), s.n_control());
    assert_eq!((n1, n0), (185, 260));
    // OLS of y on [1, D]: the coefficient is the difference in means; HC2 is Neyman's
    // (Welch's) standard error exactly.
    let x = ndarray::Array2::from_shape_fn((s.len(), 2), |(i, j)| {
        if j == 0 { 1.0 } else { f64::from(s.d()[i]) }
    });
    let fit = Ols::new(CovType::Hc2).fit(x.view(), s.y().view()).unwrap();
    close(
        "difference in means",
        fit.coef()[1],
        num(&exp["estimate"]),
        1e-12,
    );
    close("Neyman SE (HC2)", fit.se()[1], num(&exp["se"]), 1e-10);
    assert!((fit.coef()[1] - 1794.34).abs() < 0.01);
}

#[test]
fn propensity_logit_matches_statsmodels() {
    let Some(dir) = data_dir() else { return };
    let exp = &expected()["logit"];
    let s = psid(&dir, false);
    let fit = Logit::new()
        .fit_named(s.x(), s.d(), Some(s.names()))
        .unwrap();
    for (j, (c, se)) in fit.coef().iter().zip(fit.se()).enumerate() {
        close("logit coefficient", *c, num(&exp["coef"][j]), 1e-9);
        close("logit SE", se, num(&exp["se"][j]), 1e-9);
    }
    close("log-likelihood", fit.loglik(), num(&exp["llf"]), 1e-12);
    let pmin = fit.fitted().iter().cloned().fold(f64::INFINITY, f64::min);
    close("smallest propensity", pmin, num(&exp["p_min"]), 1e-5);
}

#[test]
fn regression_adjustment_ols_matches_statsmodels_for_every_covariance() {
    let Some(dir) = data_dir() else { return };
    let exp = &expected()["ols"];
    let s = psid(&dir, true);
    // Design [1, D, X] in the reference's column order.
    let (n, p) = s.x().dim();
    let x = ndarray::Array2::from_shape_fn((n, p + 2), |(i, j)| match j {
        0 => 1.0,
        1 => f64::from(s.d()[i]),
        _ => s.x()[[i, j - 2]],
    });
    for (cov, key) in [
        (CovType::Classical, "nonrobust"),
        (CovType::Hc0, "HC0"),
        (CovType::Hc1, "HC1"),
        (CovType::Hc2, "HC2"),
        (CovType::Hc3, "HC3"),
    ] {
        let fit = Ols::new(cov).fit(x.view(), s.y().view()).unwrap();
        close("OLS effect", fit.coef()[1], num(&exp["coef_treat"]), 1e-9);
        close(key, fit.se()[1], num(&exp["se_treat"][key]), 1e-8);
    }
    let labels = s.cluster().unwrap().to_vec();
    let fit = Ols::new(CovType::Hc1)
        .clusters(labels)
        .fit(x.view(), s.y().view())
        .unwrap();
    assert_eq!(fit.clusters(), Some(17));
    close(
        "cluster CR1",
        fit.se()[1],
        num(&exp["se_treat"]["cluster"]),
        1e-8,
    );
}

#[test]
fn ipw_ra_aipw_match_the_m_estimation_reference() {
    let Some(dir) = data_dir() else { return };
    let own = &expected()["own"];
    let plain = psid(&dir, false);
    let clustered = psid(&dir, true);
    for (method, estimand, key) in [
        (Weighting::Ipw, Estimand::Ate, "ipw_ate"),
        (Weighting::Ipw, Estimand::Att, "ipw_att"),
        (Weighting::Ra, Estimand::Ate, "ra_ate"),
        (Weighting::Ra, Estimand::Att, "ra_att"),
        (Weighting::Aipw, Estimand::Ate, "aipw_ate"),
    ] {
        let exp = &own[key];
        let fit = WeightingSpec::new(method, estimand).fit(&plain).unwrap();
        close(
            &format!("{key} estimate"),
            fit.effect.estimate,
            num(&exp["effect"]["estimate"]),
            1e-9,
        );
        close(
            &format!("{key} SE"),
            fit.effect.se,
            num(&exp["effect"]["se"]),
            1e-9,
        );
        close(
            &format!("{key} POM1"),
            fit.pom[0],
            num(&exp["pom1"]["estimate"]),
            1e-9,
        );
        close(
            &format!("{key} POM0"),
            fit.pom[1],
            num(&exp["pom0"]["estimate"]),
            1e-9,
        );
        let fit = WeightingSpec::new(method, estimand)
            .fit(&clustered)
            .unwrap();
        close(
            &format!("{key} cluster SE"),
            fit.effect.se,
            num(&exp["effect"]["se_cluster_gg1"]),
            1e-9,
        );
    }
}

#[test]
fn trimmed_ipw_counts_what_it_drops_and_matches_the_reference() {
    let Some(dir) = data_dir() else { return };
    let exp = &expected()["ipw_trimmed"];
    let s = psid(&dir, false);
    let fit = WeightingSpec::new(Weighting::Ipw, Estimand::Ate)
        .trim(0.05, 0.95)
        .unwrap()
        .fit(&s)
        .unwrap();
    assert_eq!(fit.trimmed, exp["n_dropped"].as_u64().unwrap() as usize);
    assert_eq!(
        fit.effect.n_treated,
        exp["n_kept_treated"].as_u64().unwrap() as usize
    );
    close(
        "trimmed IPW",
        fit.effect.estimate,
        num(&exp["estimate"]),
        1e-9,
    );
    close("trimmed IPW SE", fit.effect.se, num(&exp["se"]), 1e-9);
}

#[test]
fn balance_before_and_after_att_weighting_matches_the_reference() {
    let Some(dir) = data_dir() else { return };
    let exp = &expected()["balance"];
    let s = psid(&dir, false);
    let fit = WeightingSpec::new(Weighting::Ipw, Estimand::Att)
        .fit(&s)
        .unwrap();
    let rows = balance(&s, fit.weights.view());
    let keys = [
        "age", "age2", "educ", "educ2", "black", "hisp", "marr", "nodegree", "re74", "re75", "u74",
        "u75",
    ];
    for (b, key) in rows.iter().zip(keys) {
        let e = &exp["covariates"][key];
        close(
            &format!("SMD before {key}"),
            b.smd_before,
            num(&e["smd_before"]),
            1e-9,
        );
        close(
            &format!("SMD after {key}"),
            b.smd_after,
            num(&e["smd_after_att"]),
            1e-9,
        );
        close(
            &format!("variance ratio {key}"),
            b.var_ratio_before,
            num(&e["var_ratio_before"]),
            1e-9,
        );
    }
    let ess = effective_sample_size(&s, fit.weights.view(), false);
    close("ESS of controls", ess, num(&exp["ess_control_att"]), 1e-9);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Shuffled input rows give bit-for-bit the same estimate and standard error.
    #[test]
    fn estimates_do_not_depend_on_row_order(seed in any::<u64>()) {
        let n = 300;
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let rows: Vec<(f64, f64, bool, f64, u32)> = (0..n)
            .map(|_| {
                let x1 = next() * 4.0 - 2.0;
                let x2 = (next() * 3.0).floor();
                let d = next() < 1.0 / (1.0 + (-0.8 * x1).exp());
                let y = 1.0 + x1 + 0.5 * x2 + 2.0 * f64::from(d) + next();
                (x1, x2, d, y, (next() * 8.0) as u32)
            })
            .collect();
        let build = |order: &[usize]| {
            let x = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| {
                let r = rows[order[i]];
                if j == 0 { r.0 } else { r.1 }
            });
            Sample::clustered(
                order.iter().map(|&i| rows[i].3).collect(),
                order.iter().map(|&i| rows[i].2).collect(),
                x,
                vec!["x1".into(), "x2".into()],
                order.iter().map(|&i| rows[i].4).collect(),
            )
            .unwrap()
        };
        let forward: Vec<usize> = (0..n).collect();
        let mut shuffled = forward.clone();
        for i in (1..n).rev() {
            let j = (next() * (i + 1) as f64) as usize;
            shuffled.swap(i, j);
        }
        let (a, b) = (build(&forward), build(&shuffled));
        for method in [Weighting::Ipw, Weighting::Ra, Weighting::Aipw] {
            let fa = WeightingSpec::new(method, Estimand::Ate).fit(&a).unwrap();
            let fb = WeightingSpec::new(method, Estimand::Ate).fit(&b).unwrap();
            prop_assert_eq!(fa.effect.estimate.to_bits(), fb.effect.estimate.to_bits());
            prop_assert_eq!(fa.effect.se.to_bits(), fb.effect.se.to_bits());
        }
        let wa: Array1<f64> = WeightingSpec::new(Weighting::Ipw, Estimand::Att).fit(&a).unwrap().weights;
        prop_assert!(wa.iter().all(|w| w.is_finite() && *w >= 0.0));
    }
}

/// Our Abadie–Imbens SE as R Matching reports it: Matching keeps caliper-dropped
/// treated units in N₁ with a zero difference; we leave them out (they are not in the
/// estimate).
fn se_as_matching_reports_it(effect: &occupa_engine::causal::Effect, drops: usize) -> f64 {
    let (n1m, n1) = (effect.n_treated as f64, (effect.n_treated + drops) as f64);
    let tau = effect.estimate;
    ((effect.se.powi(2) * n1m * n1m + drops as f64 * tau * tau) / (n1 * n1)).sqrt()
}

fn matching_expected() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/matching/expected.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn nearest_neighbour_matching_matches_r_matching_in_all_sixteen_settings() {
    use occupa_engine::causal::matching::MatchingSpec;
    let Some(dir) = data_dir() else { return };
    let runs = matching_expected()["A_Match"].clone();
    let s = psid(&dir, false);
    let runs = runs.as_object().unwrap();
    assert_eq!(runs.len(), 16);
    for (name, r) in runs {
        let caliper = r["caliper"].as_f64();
        let fit = MatchingSpec::new()
            .ratio(num(&r["M"]) as usize)
            .unwrap()
            .variance_matches(num(&r["Var_calc"]) as usize)
            .tie_tolerance(num(&r["distance_tolerance"]))
            .unwrap()
            .caliper(caliper)
            .unwrap()
            .fit(&s)
            .unwrap();
        let drops = num(&r["ndrops"]) as usize;
        assert_eq!(
            fit.unmatched_treated, drops,
            "{name}: treated dropped by the caliper"
        );
        assert_eq!(
            fit.controls_used,
            num(&r["n_distinct_controls"]) as usize,
            "{name}: controls used"
        );
        close(
            &format!("{name} estimate"),
            fit.effect.estimate,
            num(&r["est"]),
            1e-9,
        );
        // Matching also applies the caliper to the same-group matches behind each σ̂²
        // and sets σ̂² = 0 when none is within it; we do not (a unit without a close
        // neighbour still has a variance), so with a caliper only the homoskedastic SE
        // is comparable.
        if caliper.is_some() && num(&r["Var_calc"]) > 0.0 {
            continue;
        }
        let theirs = se_as_matching_reports_it(&fit.effect, drops);
        close(
            &format!("{name} Abadie-Imbens SE"),
            theirs,
            num(&r["se"]),
            1e-9,
        );
        if drops == 0 {
            close(
                &format!("{name} SE as reported"),
                fit.effect.se,
                num(&r["se"]),
                1e-9,
            );
        }
    }
}

#[test]
fn greedy_matching_without_replacement_matches_matchit() {
    use occupa_engine::causal::matching::MatchingSpec;
    let Some(dir) = data_dir() else { return };
    let exp = matching_expected()["C_MatchIt"].clone();
    let s = psid(&dir, false);
    for (key, caliper) in [("no_caliper", None), ("caliper_0.2", Some(0.2))] {
        // MatchIt 4.5.1 as installed truncates distances to integers (fixed upstream in
        // 4.5.3); the fixture's "corrected" run is its algorithm with a real |·|.
        let e = &exp[key]["corrected"];
        let fit = MatchingSpec::new()
            .replace(false)
            .caliper(caliper)
            .unwrap()
            .fit(&s)
            .unwrap();
        assert_eq!(
            fit.effect.n_treated,
            num(&e["n_matched_treated"]) as usize,
            "{key}"
        );
        assert_eq!(
            fit.controls_used,
            num(&e["n_matched_controls"]) as usize,
            "{key}"
        );
        assert_eq!(
            fit.unmatched_treated,
            num(&e["n_unmatched_treated"]) as usize,
            "{key}"
        );
        close(
            &format!("{key} ATT"),
            fit.effect.estimate,
            num(&e["att_diff_means"]),
            1e-9,
        );
        if let Some(c) = fit.caliper {
            close(
                "caliper on the logit",
                c.width,
                num(&e["caliper_lp_units"]),
                1e-9,
            );
        }
    }
}

#[test]
fn matching_on_the_experimental_sample_matches_r_matching() {
    use occupa_engine::causal::matching::MatchingSpec;
    let Some(dir) = data_dir() else { return };
    let e = matching_expected()["D_dw_experimental"].clone();
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "re78".into(),
        covariates: COVARIATES.iter().map(|s| s.to_string()).collect(),
        ..SampleSpec::default()
    };
    let s = load_csv(&dir.join("lalonde/nsw_dw_experimental.csv"), &spec)
        .unwrap()
        .sample;
    let fit = MatchingSpec::new()
        .variance_matches(0)
        .tie_tolerance(1e-5)
        .unwrap()
        .caliper(None)
        .unwrap()
        .fit(&s)
        .unwrap();
    close(
        "log-likelihood",
        fit.propensity.loglik(),
        num(&e["ps_loglik"]),
        1e-10,
    );
    close(
        "experimental-sample ATT",
        fit.effect.estimate,
        num(&e["est"]),
        1e-9,
    );
    close("experimental-sample SE", fit.effect.se, num(&e["se"]), 1e-9);
    assert_eq!(fit.controls_used, num(&e["n_distinct_controls"]) as usize);
}

#[test]
fn rosenbaum_bounds_match_rbounds_psens_on_the_matchit_pairs() {
    use occupa_engine::causal::sensitivity::rosenbaum_wilcoxon;
    let Some(dir) = data_dir() else { return };
    let exp = matching_expected();
    let pairs = exp["C_MatchIt"]["no_caliper"]["corrected"]["pairs"]
        .as_array()
        .unwrap();
    let mut rdr = csv::Reader::from_path(dir.join("lalonde/nsw_psid.csv")).unwrap();
    let col = rdr
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "re78")
        .unwrap();
    let y: Vec<f64> = rdr
        .records()
        .map(|r| r.unwrap()[col].parse().unwrap())
        .collect();
    let diffs: Vec<f64> = pairs
        .iter()
        .map(|p| {
            let (t, c) = (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            );
            y[t - 1] - y[c - 1]
        })
        .collect();
    let bounds = exp["E_rosenbaum_wilcoxon"]["corrected_matchit_pairs"]["bounds"]
        .as_array()
        .unwrap();
    let gammas: Vec<f64> = bounds.iter().map(|b| num(&b["gamma"])).collect();
    let ours = rosenbaum_wilcoxon(&diffs, &gammas).unwrap();
    for (o, e) in ours.iter().zip(bounds) {
        close(
            &format!("lower p at Γ={}", o.gamma),
            o.lower_p,
            num(&e["lower_bound_p"]),
            1e-9,
        );
        close(
            &format!("upper p at Γ={}", o.gamma),
            o.upper_p,
            num(&e["upper_bound_p"]),
            1e-9,
        );
    }
}

/// The DiD fixture's panel as a sample: period as the first covariate, units as clusters.
fn panel(keep: impl Fn(u32, i64, i64) -> bool) -> Sample {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/did/panel.csv");
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (cu, ct, cf, cy, cd) = (
        col("unit"),
        col("time"),
        col("first_treated"),
        col("y"),
        col("treated"),
    );
    let (mut y, mut d, mut t, mut u) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rdr.records() {
        let r = r.unwrap();
        let (unit, time, first): (u32, i64, i64) = (
            r[cu].parse().unwrap(),
            r[ct].parse().unwrap(),
            r[cf].parse().unwrap(),
        );
        if keep(unit, time, first) {
            y.push(r[cy].parse::<f64>().unwrap());
            d.push(&r[cd] == "1");
            t.push(time as f64);
            u.push(unit);
        }
    }
    let x = ndarray::Array2::from_shape_vec((t.len(), 1), t).unwrap();
    Sample::clustered(y, d, x, vec!["time".into()], u).unwrap()
}

#[test]
fn difference_in_differences_matches_statsmodels_lsdv_with_cluster_errors() {
    use occupa_engine::causal::did::did;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/did/expected.json");
    let exp: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    // 2×2: cohort 4 against never treated, periods 3 and 5.
    let s = panel(|_, t, f| (t == 3 || t == 5) && (f == 4 || f == 0));
    let fit = did(&s).unwrap();
    let e = &exp["did_2x2"];
    assert_eq!(fit.effect.design, "2x2");
    close("2x2 estimate", fit.effect.estimate, num(&e["coef"]), 1e-9);
    close("2x2 cluster SE", fit.effect.se, num(&e["se"]), 1e-9);
    // Static TWFE and the event study on the whole panel.
    let fit = did(&panel(|_, _, _| true)).unwrap();
    let e = &exp["twfe_static"];
    assert_eq!(fit.effect.k, num(&e["K"]) as usize);
    close("TWFE estimate", fit.effect.estimate, num(&e["coef"]), 1e-9);
    close("TWFE cluster SE", fit.effect.se, num(&e["se"]), 1e-9);
    let ev = exp["event_study"]["coefs"].as_array().unwrap();
    assert_eq!(fit.event_study.len(), ev.len());
    for (o, e) in fit.event_study.iter().zip(ev) {
        assert_eq!(o.k, e["k"].as_i64().unwrap());
        close(
            &format!("event k={}", o.k),
            o.estimate,
            num(&e["coef"]),
            1e-9,
        );
        close(&format!("event k={} SE", o.k), o.se, num(&e["se"]), 1e-9);
    }
}

/// Without never-treated units some leads and lags are collinear with the fixed effects:
/// they are left out and named as R's `lm` leaves them out, and the others equal lm's
/// (`tests/fixtures/did/aliased.R`), where the event study used to come out empty.
#[test]
fn an_event_study_without_never_treated_units_drops_and_names_the_aliased_periods_as_r() {
    use occupa_engine::causal::did::did;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/did/aliased_expected.json");
    let exp: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let fit = did(&panel(|_, _, f| f != 0)).unwrap();
    let ints = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as i64)
            .collect()
    };
    assert_eq!(fit.event_study_aliased, ints(&exp["aliased"]));
    let ks: Vec<i64> = fit.event_study.iter().map(|c| c.k).collect();
    assert_eq!(ks, ints(&exp["k"]));
    for (j, c) in fit.event_study.iter().enumerate() {
        close(
            &format!("k={}", c.k),
            c.estimate,
            num(&exp["estimate"][j]),
            1e-9,
        );
        close(&format!("k={} SE", c.k), c.se, num(&exp["se"][j]), 1e-9);
    }
}

#[test]
fn callaway_santanna_matches_csdid() {
    use occupa_engine::causal::did::callaway_santanna;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/did/cs_expected.json");
    let exp: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let cs = callaway_santanna(&panel(|_, _, _| true)).unwrap();
    let cells = exp["att_gt"].as_array().unwrap();
    assert_eq!(cs.att_gt.len(), cells.len());
    for (o, e) in cs.att_gt.iter().zip(cells) {
        assert_eq!(
            (o.group, o.time),
            (e["g"].as_i64().unwrap(), e["t"].as_i64().unwrap())
        );
        close(
            &format!("ATT({},{})", o.group, o.time),
            o.estimate,
            num(&e["att"]),
            1e-9,
        );
        close(
            &format!("SE({},{})", o.group, o.time),
            o.se,
            num(&e["se"]),
            1e-9,
        );
    }
    close(
        "simple",
        cs.simple.estimate,
        num(&exp["simple"]["att"]),
        1e-9,
    );
    close("simple SE", cs.simple.se, num(&exp["simple"]["se"]), 1e-9);
    let dynamic = exp["dynamic"]["by_e"].as_array().unwrap();
    assert_eq!(cs.dynamic.len(), dynamic.len());
    for (o, e) in cs.dynamic.iter().zip(dynamic) {
        assert_eq!(o.at, e["e"].as_i64());
        close(
            &format!("dynamic e={:?}", o.at),
            o.estimate,
            num(&e["att"]),
            1e-9,
        );
        close(
            &format!("dynamic SE e={:?}", o.at),
            o.se,
            num(&e["se"]),
            1e-9,
        );
    }
    close(
        "dynamic overall",
        cs.dynamic_overall.estimate,
        num(&exp["dynamic"]["overall_att"]),
        1e-9,
    );
    close(
        "dynamic overall SE",
        cs.dynamic_overall.se,
        num(&exp["dynamic"]["overall_se"]),
        1e-9,
    );
    for (o, e) in cs
        .group
        .iter()
        .zip(exp["group"]["by_g"].as_array().unwrap())
    {
        assert_eq!(o.at, e["g"].as_i64());
        close("group", o.estimate, num(&e["att"]), 1e-9);
        close("group SE", o.se, num(&e["se"]), 1e-9);
    }
    close(
        "group overall",
        cs.group_overall.estimate,
        num(&exp["group"]["overall_att"]),
        1e-9,
    );
    close(
        "group overall SE",
        cs.group_overall.se,
        num(&exp["group"]["overall_se"]),
        1e-9,
    );
}

#[test]
fn mahalanobis_matching_matches_r_matching() {
    use occupa_engine::causal::matching::{Distance, MatchingSpec};
    let Some(dir) = data_dir() else { return };
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/matching/mahalanobis_expected.json");
    let exp: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "re78".into(),
        covariates: [
            "age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..SampleSpec::default()
    };
    let s = load_csv(&dir.join("lalonde/nsw_psid.csv"), &spec)
        .unwrap()
        .sample;
    for (m, key) in [(1, "Matching_M1"), (3, "Matching_M3")] {
        let e = &exp[key];
        let fit = MatchingSpec::new()
            .ratio(m)
            .unwrap()
            .distance(Distance::Mahalanobis)
            .variance_matches(0)
            .caliper(None)
            .unwrap()
            .fit(&s)
            .unwrap();
        close(
            &format!("{key} estimate"),
            fit.effect.estimate,
            num(&e["est"]),
            1e-9,
        );
        close(&format!("{key} SE"), fit.effect.se, num(&e["se"]), 1e-9);
        assert_eq!(
            fit.controls_used,
            num(&e["n_distinct_controls"]) as usize,
            "{key}"
        );
    }
}

#[test]
fn exact_matching_within_strata_matches_r_matching() {
    use occupa_engine::causal::matching::MatchingSpec;
    let Some(dir) = data_dir() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/matching/exact_expected.json");
    let exp: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "re78".into(),
        covariates: COVARIATES.iter().map(|s| s.to_string()).collect(),
        strata: vec!["black".into(), "hisp".into()],
        ..SampleSpec::default()
    };
    let s = load_csv(&dir.join("lalonde/nsw_psid.csv"), &spec)
        .unwrap()
        .sample;
    let runs = exp["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8);
    for r in runs {
        let name = format!(
            "M={} Var.calc={} caliper={}",
            r["M"], r["Var_calc"], r["caliper"]
        );
        let caliper = r["caliper"].as_f64();
        let fit = MatchingSpec::new()
            .ratio(num(&r["M"]) as usize)
            .unwrap()
            .variance_matches(num(&r["Var_calc"]) as usize)
            .tie_tolerance(num(&r["distance_tolerance"]))
            .unwrap()
            .caliper(caliper)
            .unwrap()
            .fit(&s)
            .unwrap();
        let drops = num(&r["ndrops"]) as usize;
        assert_eq!(fit.unmatched_treated, drops, "{name}: dropped");
        assert_eq!(
            fit.controls_used,
            num(&r["n_distinct_controls"]) as usize,
            "{name}: controls used"
        );
        close(
            &format!("{name} estimate"),
            fit.effect.estimate,
            num(&r["est"]),
            1e-9,
        );
        // As in the sixteen settings above: with a caliper only the homoskedastic SE is
        // defined alike, and Matching counts dropped treated units in N₁.
        if caliper.is_some() && num(&r["Var_calc"]) > 0.0 {
            continue;
        }
        let theirs = se_as_matching_reports_it(&fit.effect, drops);
        close(
            &format!("{name} Abadie-Imbens SE"),
            theirs,
            num(&r["se"]),
            1e-9,
        );
    }
}

#[test]
fn each_subgroup_is_the_evaluation_of_its_own_rows() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    let Some(dir) = data_dir() else { return };
    let src = dir.join("lalonde/nsw_psid.csv");
    // The oracle: the file cut into one file per value of `marr`, each evaluated alone.
    let text = std::fs::read_to_string(&src).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let col = header.split(',').position(|c| c == "marr").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut parts: std::collections::BTreeMap<String, String> = Default::default();
    for l in lines {
        let v = l.split(',').nth(col).unwrap().to_string();
        parts
            .entry(format!("marr={v}"))
            .or_insert_with(|| format!("{header}\n"))
            .push_str(&format!("{l}\n"));
    }
    let covariates: Vec<String> = ["age", "educ", "black", "hisp", "nodegree", "re74", "re75"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut compared = 0;
    for method in [Method::Aipw, Method::Psm, Method::Ipw] {
        let spec = EvaluateSpec {
            columns: SampleSpec {
                treatment: "treat".into(),
                outcome: "re78".into(),
                covariates: covariates.clone(),
                ..SampleSpec::default()
            },
            method,
            estimand: if method == Method::Aipw {
                Estimand::Ate
            } else {
                Estimand::Att
            },
            by: Some("marr".into()),
            ..EvaluateSpec::default()
        };
        let ev = evaluate_csv(&src, &spec).unwrap();
        assert_eq!(ev.subgroups.len(), parts.len());
        for g in &ev.subgroups {
            let file = tmp.path().join(format!("{}.csv", g.group));
            std::fs::write(&file, &parts[&g.group]).unwrap();
            let alone = evaluate_csv(
                &file,
                &EvaluateSpec {
                    by: None,
                    ..spec.clone()
                },
            );
            match (&g.result, alone) {
                (Ok(sub), Ok(alone)) => {
                    assert_eq!(
                        sub.effect.estimate.to_bits(),
                        alone.effect.estimate.to_bits()
                    );
                    assert_eq!(sub.effect.se.to_bits(), alone.effect.se.to_bits());
                    assert_eq!(sub.rows, alone.rows, "{method:?} {}", g.group);
                    compared += 1;
                }
                (Err(a), Err(b)) => assert_eq!(a, &b.to_string()),
                (a, b) => panic!("{method:?} {}: {a:?} against {b:?}", g.group),
            }
        }
    }
    // Both groups of all three methods have an estimate: nothing compared errors only.
    assert_eq!(compared, 6);
}

#[test]
fn the_bootstrap_agrees_with_the_sandwich_and_cautions_against_matching() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate};
    let Some(dir) = data_dir() else { return };
    let s = psid(&dir, false);
    let spec = |method, estimand| EvaluateSpec {
        method,
        estimand,
        bootstrap: Some((400, 11)),
        ..EvaluateSpec::default()
    };
    // IPW for the ATT on LaLonde's PSID sample: its few, heavily weighted controls make
    // this a hard case for both variances; 400 replicates estimate an SE to about ±4 %.
    for (method, estimand) in [(Method::Ipw, Estimand::Att), (Method::Ra, Estimand::Ate)] {
        let ev = evaluate(&s, &spec(method, estimand), s.len(), 0).unwrap();
        let b = ev.bootstrap.unwrap();
        assert_eq!(b.failed, 0);
        assert!(b.caution.is_none());
        let ratio = b.se / ev.effect.se;
        assert!(
            (0.8..1.25).contains(&ratio),
            "{method:?}: bootstrap/sandwich SE {ratio}"
        );
        assert!(b.percentile[0] < ev.effect.estimate && ev.effect.estimate < b.percentile[1]);
    }
    let ev = evaluate(&s, &spec(Method::Psm, Estimand::Att), s.len(), 0).unwrap();
    let caution = ev.bootstrap.unwrap().caution.unwrap();
    assert!(caution.contains("Abadie and Imbens 2008"), "{caution}");
}

/// R's `lm` on a design with aliased terms (`tests/fixtures/aliasing/make.R`).
fn aliasing_fixture() -> (std::path::PathBuf, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/aliasing");
    let expected =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    (dir.join("data.csv"), expected)
}

#[test]
fn aliased_covariates_are_dropped_and_named_as_r_lm_does() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    let (data, want) = aliasing_fixture();
    let spec = EvaluateSpec {
        columns: SampleSpec {
            treatment: "treat".into(),
            outcome: "y".into(),
            covariates: ["x1", "x2", "x3", "empty", "area"]
                .map(String::from)
                .to_vec(),
            ..SampleSpec::default()
        },
        method: Method::Ols,
        estimand: Estimand::Ate,
        cov: CovType::Hc1,
        ..EvaluateSpec::default()
    };
    let ev = evaluate_csv(&data, &spec).unwrap();
    let names: Vec<&str> = want["ols_aliased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ev.aliased, names);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(
        close(ev.effect.estimate, want["ols_estimate"].as_f64().unwrap()),
        "{} against R's {}",
        ev.effect.estimate,
        want["ols_estimate"]
    );
    assert!(
        close(ev.effect.se, want["ols_se_hc1"].as_f64().unwrap()),
        "{} against R's {}",
        ev.effect.se,
        want["ols_se_hc1"]
    );
}

#[test]
fn a_covariate_aliased_among_the_treated_leaves_their_outcome_model_as_r_lm_does() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    let (data, want) = aliasing_fixture();
    let spec = EvaluateSpec {
        columns: SampleSpec {
            treatment: "treat".into(),
            outcome: "y".into(),
            covariates: ["x1", "x2", "z", "area"].map(String::from).to_vec(),
            ..SampleSpec::default()
        },
        method: Method::Aipw,
        estimand: Estimand::Ate,
        ..EvaluateSpec::default()
    };
    let ev = evaluate_csv(&data, &spec).unwrap();
    assert!(ev.aliased.is_empty());
    assert_eq!(
        ev.aliased_in_outcome_models,
        vec!["z (treated)".to_string()]
    );
    let r = want["aipw_estimate"].as_f64().unwrap();
    assert!(
        (ev.effect.estimate - r).abs() < 1e-7,
        "{} against R's {r}",
        ev.effect.estimate
    );
    assert!(ev.effect.se.is_finite() && ev.effect.se > 0.0);
}

#[test]
fn matching_for_the_ate_and_the_atc_and_weighting_for_the_atc_match_r() {
    use occupa_engine::causal::matching::MatchingSpec;
    let Some(dir) = data_dir() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/matching/ate_expected.json");
    let exp: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "re78".into(),
        covariates: COVARIATES.iter().map(|s| s.to_string()).collect(),
        ..SampleSpec::default()
    };
    let s = load_csv(&dir.join("lalonde/nsw_psid.csv"), &spec)
        .unwrap()
        .sample;
    let runs = exp["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 10);
    for r in runs {
        let estimand = Estimand::parse(r["estimand"].as_str().unwrap()).unwrap();
        let method = r["method"].as_str().unwrap();
        if method != "psm" {
            // The ATC by weighting, the mirror of the ATT.
            let m = if method == "ipw" {
                Weighting::Ipw
            } else {
                Weighting::Ra
            };
            let fit = WeightingSpec::new(m, estimand).fit(&s).unwrap();
            close(
                &format!("{method} ATC"),
                fit.effect.estimate,
                num(&r["est"]),
                1e-7,
            );
            continue;
        }
        let name = format!("{} M={} Var.calc={}", r["estimand"], r["M"], r["Var_calc"]);
        let fit = MatchingSpec::new()
            .estimand(estimand)
            .ratio(num(&r["M"]) as usize)
            .unwrap()
            .variance_matches(num(&r["Var_calc"]) as usize)
            .tie_tolerance(1e-5)
            .unwrap()
            .caliper(None)
            .unwrap()
            .fit(&s)
            .unwrap();
        close(
            &format!("{name} estimate"),
            fit.effect.estimate,
            num(&r["est"]),
            1e-9,
        );
        close(
            &format!("{name} Abadie-Imbens SE"),
            fit.effect.se,
            num(&r["se"]),
            1e-9,
        );
    }
}

/// Firth's logit against brglm2 (`tests/fixtures/firth/make.R`).
fn firth_fixture() -> (std::path::PathBuf, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/firth");
    let expected =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    (dir.join("data.csv"), expected)
}

#[test]
fn firth_logit_equals_brglm2_with_and_without_separation() {
    let (data, want) = firth_fixture();
    for (key, covs) in [
        ("separated", vec!["x1", "x2", "rare"]),
        ("not_separated", vec!["x1", "x2"]),
    ] {
        let spec = SampleSpec {
            treatment: "treat".into(),
            outcome: "y".into(),
            covariates: covs.iter().map(|s| s.to_string()).collect(),
            ..SampleSpec::default()
        };
        let s = load_csv(&data, &spec).unwrap().sample;
        let fit = Logit::new().firth(true).fit(s.x(), s.d()).unwrap();
        let theirs: Vec<f64> = want[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(fit.coef().len(), theirs.len());
        for (j, (a, b)) in fit.coef().iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() < 1e-6,
                "{key} coefficient {j}: {a} against brglm2's {b}"
            );
        }
    }
    // Maximum likelihood refuses the separated design, naming the covariate.
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "y".into(),
        covariates: ["x1", "x2", "rare"].map(String::from).to_vec(),
        ..SampleSpec::default()
    };
    let s = load_csv(&data, &spec).unwrap().sample;
    let err = Logit::new()
        .fit_named(s.x(), s.d(), Some(s.names()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rare"), "{err}");
}

/// A level held by a single control among 550 units (what trimming leaves of a rare
/// category): full quasi-Newton steps on Firth's likelihood fell into a 2-cycle and never
/// converged; damped at each reversal they reach brglm2's estimate.
#[test]
fn firth_converges_where_one_unit_holds_a_level_and_equals_brglm2() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    use occupa_engine::causal::logit::Separation;
    let (data, want) = firth_fixture();
    let data = data.with_file_name("lone.csv");
    let mut covs: Vec<String> = (1..=22).map(|j| format!("x{j}")).collect();
    covs.push("lone".into());
    let spec = SampleSpec {
        treatment: "treat".into(),
        outcome: "y".into(),
        covariates: covs,
        ..SampleSpec::default()
    };
    // The fit is on the canonical order, which does not change the coefficients.
    let s = load_csv(&data, &spec).unwrap().sample;
    let fit = Logit::new().firth(true).fit(s.x(), s.d()).unwrap();
    let theirs = want["lone"].as_array().unwrap();
    assert_eq!(fit.coef().len(), theirs.len());
    for (j, (a, b)) in fit.coef().iter().zip(theirs).enumerate() {
        let b = b.as_f64().unwrap();
        assert!(
            (a - b).abs() < 1e-6,
            "coefficient {j}: {a} against brglm2's {b}"
        );
    }
    let ev = evaluate_csv(
        &data,
        &EvaluateSpec {
            columns: spec,
            method: Method::Ipw,
            estimand: Estimand::Ate,
            separation: Separation::Firth,
            ..EvaluateSpec::default()
        },
    )
    .unwrap();
    close(
        "IPW on Firth's score",
        ev.effect.estimate,
        num(&want["lone_ipw_ate"]),
        1e-8,
    );
}

#[test]
fn a_category_held_by_two_controls_runs_by_default_and_says_firth_was_used() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    use occupa_engine::causal::logit::Separation;
    let (data, want) = firth_fixture();
    for method in [Method::Ipw, Method::Aipw, Method::Psm] {
        let spec = EvaluateSpec {
            columns: SampleSpec {
                treatment: "treat".into(),
                outcome: "y".into(),
                covariates: ["x1", "x2", "rare"].map(String::from).to_vec(),
                ..SampleSpec::default()
            },
            method,
            estimand: if method == Method::Psm {
                Estimand::Att
            } else {
                Estimand::Ate
            },
            ..EvaluateSpec::default()
        };
        let ev = evaluate_csv(&data, &spec).unwrap();
        let why = ev.firth_propensity.as_deref().unwrap_or_default();
        assert!(why.contains("rare"), "{method:?}: {why}");
        // The weighting estimates on that propensity score are R's.
        let r = match method {
            Method::Ipw => want["ipw_ate"].as_f64(),
            Method::Aipw => want["aipw_ate"].as_f64(),
            _ => None,
        };
        if let Some(r) = r {
            assert!(
                (ev.effect.estimate - r).abs() < 1e-6,
                "{method:?}: {} against R's {r}",
                ev.effect.estimate
            );
        }
        assert!(ev.effect.se.is_finite() && ev.effect.se > 0.0);
        // Asked to refuse, it refuses.
        let refused = evaluate_csv(
            &data,
            &EvaluateSpec {
                separation: Separation::Refuse,
                ..spec.clone()
            },
        );
        assert!(refused.is_err(), "{method:?}");
    }
}

/// `--separation trim` against R (`tests/fixtures/support/make.R`): for the ATT the units
/// outside the common support are MatchIt's `discard = "both"`, for the ATE Crump et
/// al.'s optimal α; the propensity is refitted on the rest and the IPW estimate equals R's.
#[test]
fn trimming_to_the_overlap_equals_matchit_and_crumps_rule_in_r() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    use occupa_engine::causal::logit::Separation;
    let Some(dir) = data_dir() else { return };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/support/expected.json");
    let want: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for (key, estimand) in [("att", Estimand::Att), ("ate", Estimand::Ate)] {
        let spec = EvaluateSpec {
            columns: SampleSpec {
                treatment: "treat".into(),
                outcome: "re78".into(),
                covariates: COVARIATES.map(String::from).to_vec(),
                ..SampleSpec::default()
            },
            method: Method::Ipw,
            estimand,
            separation: Separation::Trim,
            ..EvaluateSpec::default()
        };
        let ev = evaluate_csv(&dir.join("lalonde/nsw_psid.csv"), &spec).unwrap();
        let t = ev.trimmed.as_ref().expect("trimming reported");
        let r = &want[key];
        assert_eq!(
            t.treated as f64,
            num(&r["treated"]),
            "{key}: treated dropped"
        );
        assert_eq!(
            t.controls as f64,
            num(&r["controls"]),
            "{key}: controls dropped"
        );
        if key == "ate" {
            close("Crump's alpha", t.bounds[0], num(&r["alpha"]), 1e-9);
            // The estimate describes 11 % of the units: the kept-share check fails.
            assert_eq!(
                ev.diagnostics.kept.grade,
                occupa_engine::causal::evaluate::Grade::Fail
            );
        }
        close(
            &format!("{key} IPW after trimming"),
            ev.effect.estimate,
            num(&r["ipw"]),
            1e-9,
        );
        assert_eq!(ev.dropped_by_design, t.treated + t.controls);
    }
}

/// The three principled answers to a category held by two controls and no treated unit
/// all run, each saying what it did, and the grades tell the truth about it.
#[test]
fn separation_by_a_rare_category_is_handled_by_firth_merging_or_trimming_as_asked() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Grade, Method, evaluate_csv};
    use occupa_engine::causal::logit::Separation;
    let (data, _) = firth_fixture();
    let base = EvaluateSpec {
        columns: SampleSpec {
            treatment: "treat".into(),
            outcome: "y".into(),
            covariates: ["x1", "x2", "rare"].map(String::from).to_vec(),
            ..SampleSpec::default()
        },
        method: Method::Aipw,
        estimand: Estimand::Ate,
        ..EvaluateSpec::default()
    };
    // Auto: Firth's fit, and overlap cannot pass on a separated design.
    let auto = evaluate_csv(&data, &base).unwrap();
    assert!(auto.firth_propensity.is_some());
    assert_ne!(
        auto.diagnostics.overlap.as_ref().unwrap().grade,
        Grade::Pass
    );
    assert!(auto.merged.is_empty() && auto.trimmed.is_none());
    // Merge: the rare value joins the common one, so `rare` leaves the model, maximum
    // likelihood exists, and the balance table still shows `rare`.
    let merged = evaluate_csv(
        &data,
        &EvaluateSpec {
            separation: Separation::Merge,
            ..base.clone()
        },
    )
    .unwrap();
    assert_eq!(merged.merged.len(), 1);
    assert_eq!(merged.merged[0].covariate, "rare");
    assert_eq!(merged.merged[0].rare, vec![("1".to_string(), [0, 2])]);
    assert!(merged.firth_propensity.is_none());
    assert!(merged.balance.iter().any(|b| b.covariate == "rare"));
    // The same estimate as leaving `rare` out.
    let without = evaluate_csv(
        &data,
        &EvaluateSpec {
            columns: SampleSpec {
                covariates: ["x1", "x2"].map(String::from).to_vec(),
                ..base.columns.clone()
            },
            ..base.clone()
        },
    )
    .unwrap();
    assert_eq!(merged.effect.estimate, without.effect.estimate);
    // Trim: the two controls are dropped with the units outside Crump's bounds, and what
    // is left is fitted by maximum likelihood.
    let trimmed = evaluate_csv(
        &data,
        &EvaluateSpec {
            separation: Separation::Trim,
            ..base.clone()
        },
    )
    .unwrap();
    let t = trimmed.trimmed.as_ref().unwrap();
    assert!(
        t.rule.contains("rare=1 (held by 2 controls only)"),
        "{}",
        t.rule
    );
    assert!(t.controls >= 2);
    assert!(trimmed.firth_propensity.is_none());
    assert_eq!(
        trimmed.effect.n_treated + trimmed.effect.n_control + t.treated + t.controls,
        300
    );
    assert!(
        (trimmed.diagnostics.kept.value - (1.0 - (t.treated + t.controls) as f64 / 300.0)).abs()
            < 1e-12
    );
}

/// The simulator's data with planted sparse levels (a category two controls hold, one
/// that one treated unit and two controls hold, one that two treated units hold): by
/// default every estimator runs, says Firth's penalty was needed, and its interval covers
/// the planted effect of A.4 on employment at 6 months; merging runs and covers too.
#[test]
fn planted_sparse_levels_in_the_simulators_data_do_not_stop_the_default_and_it_covers() {
    use occupa_engine::causal::evaluate::{EvaluateSpec, Method, evaluate_csv};
    use occupa_engine::causal::logit::Separation;
    use occupa_engine::instruments::Instruments;
    use occupa_engine::simulate::{SimConfig, simulate};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        persons: 4000,
        tenants: 1,
        seed: 11,
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    simulate(&cfg, &Instruments::builtin().unwrap(), tmp.path()).unwrap();
    let mut rd = csv::Reader::from_path(tmp.path().join("truth-persons.csv")).unwrap();
    let head = rd.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let covs = [
        "age",
        "low_education",
        "italian",
        "disability",
        "social_care",
        "gol_a",
        "gol_b",
        "gol_cd",
    ];
    let mut out = String::from("treat,employed_6m,path,area,");
    out.push_str(&covs.join(","));
    out.push('\n');
    let (mut effects, mut planted) = (Vec::new(), [0usize; 2]);
    for r in rd.records() {
        let r = r.unwrap();
        let service = &r[col("service")];
        if !(service == "A.4" || service == "none")
            || r[col("months_observed")].parse::<u32>().unwrap() < 7
        {
            continue;
        }
        let treated = service == "A.4";
        // Four common areas, and the planted sparse ones on the first units met.
        let area = match (treated, planted) {
            (false, [_, 0..=1]) => "Z1",
            (false, [_, 2..=3]) | (true, [0, _]) => "Z2",
            (true, [1..=2, _]) => "Z3",
            _ => ["A", "B", "C", "D"][effects.len() % 4],
        };
        planted[usize::from(!treated)] += 1;
        effects.push(
            r[col("p6_a4")].parse::<f64>().unwrap() - r[col("p6_none")].parse::<f64>().unwrap(),
        );
        out.push_str(&format!(
            "{},{},p{},{area}",
            u8::from(treated),
            &r[col("employed_6m")],
            &r[col("gol_path")]
        ));
        for c in covs {
            out.push(',');
            out.push_str(&r[col(c)]);
        }
        out.push('\n');
    }
    let truth = effects.iter().sum::<f64>() / effects.len() as f64;
    let data = tmp.path().join("analysis.csv");
    std::fs::write(&data, out).unwrap();
    let mut covariates: Vec<String> = vec!["path".into(), "area".into()];
    covariates.extend(covs.iter().map(|c| c.to_string()));
    for (method, separation) in [
        (Method::Aipw, Separation::Auto),
        (Method::Ipw, Separation::Auto),
        (Method::Psm, Separation::Auto),
        (Method::Aipw, Separation::Merge),
    ] {
        let spec = EvaluateSpec {
            columns: SampleSpec {
                treatment: "treat".into(),
                outcome: "employed_6m".into(),
                covariates: covariates.clone(),
                ..SampleSpec::default()
            },
            method,
            estimand: Estimand::Ate,
            separation,
            caliper: None,
            ..EvaluateSpec::default()
        };
        let ev =
            evaluate_csv(&data, &spec).unwrap_or_else(|e| panic!("{method:?} {separation:?}: {e}"));
        match separation {
            Separation::Auto => assert!(
                ev.firth_propensity
                    .as_deref()
                    .unwrap_or("")
                    .contains("area"),
                "{:?}",
                ev.firth_propensity
            ),
            _ => {
                let m = &ev.merged[0];
                assert_eq!(m.covariate, "area");
                // The pool (3 treated, 4 controls) is still rare: it joins the largest level.
                let into = m.into.as_deref().unwrap_or_default();
                assert!(
                    ["Z1", "Z2", "Z3"].iter().all(|z| into.contains(z)) && into.len() > 8,
                    "{m:?}"
                );
            }
        }
        let [lo, hi] = ev.effect.ci95;
        assert!(
            lo <= truth && truth <= hi,
            "{method:?} {separation:?}: [{lo}, {hi}] misses the planted {truth} (estimate {})",
            ev.effect.estimate
        );
    }
}
