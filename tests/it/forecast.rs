//! Forecasting against references: statsforecast 2.1.1 on 100 M3 monthly and 100 M3
//! quarterly series (`tests/fixtures/forecast/statsforecast_m3.py` wrote the fixture), and
//! interval calibration against planted truth.

use std::collections::BTreeMap;
use std::path::Path;

use occupa_engine::forecast::accuracy::smape;
use occupa_engine::forecast::backtest::{Batch, Method, Selection, forecast_batch};
use occupa_engine::forecast::ets::Ets;
use occupa_engine::forecast::theta::{Theta, ThetaModel};
use proptest::prelude::*;

type Series = BTreeMap<String, Vec<f64>>;

fn read_m3(dir: &Path, file: &str) -> Series {
    let mut out: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(dir.join("m3").join(file)).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        out.entry(rec[0].to_string())
            .or_default()
            .push((rec[1].parse().unwrap(), rec[2].parse().unwrap()));
    }
    out.into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|p| p.0);
            (k, v.into_iter().map(|p| p.1).collect())
        })
        .collect()
}

struct Reference {
    ets_model: String,
    ets_mean: Vec<f64>,
    ets_lo95: Vec<f64>,
    ets_hi95: Vec<f64>,
    theta_mean: Vec<f64>,
}

fn fixture(freq: &str) -> BTreeMap<String, Reference> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/forecast/statsforecast_m3.csv");
    let mut out: BTreeMap<String, Reference> = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(path).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        if &rec[0] != freq {
            continue;
        }
        let r = out.entry(rec[1].to_string()).or_insert_with(|| Reference {
            ets_model: rec[3].to_string(),
            ets_mean: Vec::new(),
            ets_lo95: Vec::new(),
            ets_hi95: Vec::new(),
            theta_mean: Vec::new(),
        });
        r.ets_mean.push(rec[4].parse().unwrap());
        r.ets_lo95.push(rec[5].parse().unwrap());
        r.ets_hi95.push(rec[6].parse().unwrap());
        r.theta_mean.push(rec[7].parse().unwrap());
    }
    out
}

/// Theta (STM) is the same model fitted the same way: the forecasts agree closely.
#[test]
fn theta_agrees_with_statsforecast_series_by_series() {
    let Some(dir) = crate::data_dir() else { return };
    for (freq, m, h) in [("monthly", 12, 18), ("quarterly", 4, 8)] {
        let train = read_m3(&dir, &format!("m3_{freq}_train.csv"));
        let reference = fixture(freq);
        assert_eq!(reference.len(), 100);
        let mut close = 0;
        for (id, r) in &reference {
            let fc = Theta::new(m, Some(ThetaModel::Stm))
                .fit(&train[id])
                .unwrap()
                .predict(h, &[])
                .unwrap();
            let worst = fc
                .mean
                .iter()
                .zip(&r.theta_mean)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0.0, f64::max);
            if worst < 1e-3 {
                close += 1;
            }
        }
        // Nelder–Mead stops at slightly different points on a few flat objectives.
        assert!(close >= 95, "{freq}: {close}/100 series within 0.1 %");
    }
}

/// AutoETS: the same choice on most series, and on the 200 series an sMAPE within 1 %
/// (relative) of statsforecast's, which is the bar for the full M3.
#[test]
fn ets_agrees_with_statsforecast_autoets() {
    let Some(dir) = crate::data_dir() else { return };
    for (freq, m, h) in [("monthly", 12, 18), ("quarterly", 4, 8)] {
        let train = read_m3(&dir, &format!("m3_{freq}_train.csv"));
        let test = read_m3(&dir, &format!("m3_{freq}_test.csv"));
        let reference = fixture(freq);
        let (mut same_model, mut ours, mut theirs) = (0, 0.0, 0.0);
        for (id, r) in &reference {
            let fit = Ets::auto(m).fit(&train[id]).unwrap();
            if fit.model.to_string() == r.ets_model {
                same_model += 1;
            }
            let mut fc = fit.predict(h, &[95.0]).unwrap();
            fc.clip_at_zero();
            ours += smape(&test[id], &fc.mean);
            let clipped: Vec<f64> = r.ets_mean.iter().map(|v| v.max(0.0)).collect();
            theirs += smape(&test[id], &clipped);
            // Same model, same data: the 95 % interval's width agrees to a few percent
            // where the variance is analytic in both (additive error).
            if fit.model.to_string() == r.ets_model && r.ets_model.starts_with("ETS(A") {
                let w_ours = fc.intervals[0].upper[0] - fc.intervals[0].lower[0];
                let w_ref = r.ets_hi95[0] - r.ets_lo95[0];
                assert!(
                    (w_ours / w_ref - 1.0).abs() < 0.25,
                    "{id} {}: width {w_ours} vs {w_ref}",
                    r.ets_model
                );
            }
        }
        let (ours, theirs) = (ours / 100.0, theirs / 100.0);
        eprintln!("{freq}: same model {same_model}/100, sMAPE {ours:.3} vs {theirs:.3}");
        assert!(same_model >= 60, "{freq}: same model on {same_model}/100");
        assert!(
            ours <= theirs * 1.02,
            "{freq}: sMAPE {ours} vs statsforecast {theirs}"
        );
    }
}

/// Planted truth: local-level series with heavy-tailed shocks, for which the Gaussian
/// intervals of ETS are too narrow at 95 %. Calibrated on one held-out year per series,
/// the intervals cover the next (unseen) year within 3 points of nominal.
#[test]
fn calibrated_intervals_cover_what_they_claim_on_planted_series() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StudentT};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let t = StudentT::new(3.0).unwrap();
    let h = 12;
    let (mut train, mut future) = (Vec::new(), Vec::new());
    for _ in 0..400 {
        let mut level = 100.0;
        let y: Vec<f64> = (0..72 + h)
            .map(|_| {
                let e: f64 = 2.0 * t.sample(&mut rng);
                let v = level + e;
                level += 0.3 * e;
                v
            })
            .collect();
        train.push(y[..72].to_vec());
        future.push(y[72..].to_vec());
    }
    let coverage = |calibrate: bool| {
        let batch = Batch {
            method: Some(Method::Ets(None)),
            selection: Selection::Group,
            season: 1,
            horizon: h,
            levels: vec![80.0, 95.0],
            windows: 1,
            calibrate,
        };
        let out = forecast_batch(&train, &batch, &|| {}).unwrap();
        let mut hit = [0usize; 2];
        for (r, y) in out.series.iter().zip(&future) {
            let fc = &r.as_ref().unwrap().outcome.forecast;
            for (j, iv) in fc.intervals.iter().enumerate() {
                hit[j] += (0..h)
                    .filter(|&k| y[k] >= iv.lower[k] && y[k] <= iv.upper[k])
                    .count();
            }
        }
        let n = (train.len() * h) as f64;
        (hit[0] as f64 / n, hit[1] as f64 / n)
    };
    let (raw80, raw95) = coverage(false);
    let (c80, c95) = coverage(true);
    eprintln!("coverage 80/95: model's own {raw80:.3}/{raw95:.3}, calibrated {c80:.3}/{c95:.3}");
    // The planted tails matter: the model's own 95 % intervals miss the bar.
    assert!(0.95 - raw95 > 0.03, "uncalibrated 95 %: {raw95}");
    assert!((c80 - 0.80).abs() <= 0.03, "calibrated 80 %: {c80}");
    assert!((c95 - 0.95).abs() <= 0.03, "calibrated 95 %: {c95}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// For any positive series, every method's intervals nest around the point forecast
    /// (80 % inside 95 %), and a count series is never forecast below zero once clipped.
    #[test]
    fn intervals_nest_and_counts_stay_non_negative(
        y in proptest::collection::vec(0.0f64..200.0, 30..60),
        method in prop::sample::select(vec!["ets", "arima", "theta", "comb", "median", "snaive", "naive"]),
    ) {
        let batch = Batch {
            method: Some(Method::parse(method).unwrap()),
            selection: Selection::Group,
            season: 4,
            horizon: 6,
            levels: vec![80.0, 95.0],
            windows: 1,
            calibrate: true,
        };
        let out = forecast_batch(std::slice::from_ref(&y), &batch, &|| {}).unwrap();
        let mut fc = out.series[0].as_ref().unwrap().outcome.forecast.clone();
        fc.clip_at_zero();
        for k in 0..6 {
            let (l80, h80) = (fc.intervals[0].lower[k], fc.intervals[0].upper[k]);
            let (l95, h95) = (fc.intervals[1].lower[k], fc.intervals[1].upper[k]);
            prop_assert!(l95 <= l80 && l80 <= fc.mean[k] && fc.mean[k] <= h80 && h80 <= h95,
                "{method} k={k}: {l95} {l80} {} {h80} {h95}", fc.mean[k]);
            prop_assert!(l95 >= 0.0);
        }
    }
}

/// Reconciliation against Nixtla hierarchicalforecast 1.5.3 (`reconcile_hf.py` wrote the
/// fixture): bottom-up, OLS, structural WLS and MinT-shrink on the same base forecasts and
/// in-sample errors. hierarchicalforecast centres the errors before estimating their
/// covariance; ours, like R's `hts`, uses the uncentred second moment (MinT's W is a
/// mean squared error matrix), so the test hands us centred errors to compare like with
/// like.
#[test]
fn reconciliation_matches_hierarchicalforecast() {
    use occupa_engine::forecast::hierarchy::{Hierarchy, Reconciliation, reconcile};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/forecast/reconcile_hf.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rows = |v: &serde_json::Value| -> Vec<Vec<f64>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let bottom: Vec<String> = ["a1", "a2", "a3", "b1", "b2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let groups = vec!["A", "A", "A", "B", "B"]
        .into_iter()
        .map(String::from)
        .collect();
    let h = Hierarchy::new(&bottom, &[("group".into(), groups)]).unwrap();
    let y_hat = rows(&fx["y_hat"]);
    let errors: Vec<Vec<f64>> = rows(&fx["errors"])
        .into_iter()
        .map(|e| {
            let mean = e.iter().sum::<f64>() / e.len() as f64;
            e.iter().map(|v| v - mean).collect()
        })
        .collect();
    for (name, method) in [
        ("bu", Reconciliation::BottomUp),
        ("ols", Reconciliation::Ols),
        ("wls", Reconciliation::WlsStruct),
        ("mint", Reconciliation::MintShrink),
    ] {
        let expected = rows(&fx["reconciled"][name]);
        let got = reconcile(&h, &y_hat, Some(&errors), method).unwrap();
        for (g, e) in got.mean.iter().zip(&expected) {
            for (a, b) in g.iter().zip(e) {
                assert!(
                    (a - b).abs() < 1e-6 * b.abs().max(1.0),
                    "{name}: {a} vs {b}"
                );
            }
        }
    }
}

/// The Australian tourism hierarchy (8 states > 76 regions × 4 purposes, 425 nodes):
/// every method's forecasts add up exactly, and the backtest reproduces what the issue
/// measured (bottom-up misses the national total badly; MinT-shrink is best at the bottom).
#[test]
fn tourism_forecasts_add_up_and_the_backtest_shows_the_trade_off() {
    use occupa_engine::forecast::hierarchy::{Hierarchy, Reconciliation, forecast_hierarchy};
    use occupa_engine::forecast::input::SeriesSet;
    let Some(dir) = crate::data_dir() else { return };
    let set = SeriesSet::read_with_keys(
        &dir.join("tourism/tourism_state_region_purpose_quarterly.csv"),
        &["Region", "Purpose"],
        "Quarter",
        "Trips",
        &["State", "Region", "Purpose"],
    )
    .unwrap();
    assert_eq!(set.ids.len(), 304);
    let key = |j: usize| set.keys[j].clone();
    let combo: Vec<String> = (0..304)
        .map(|i| format!("{}/{}", set.keys[0][i], set.keys[2][i]))
        .collect();
    let h = Hierarchy::new(
        &set.ids,
        &[
            ("State".into(), key(0)),
            ("Region".into(), key(1)),
            ("Purpose".into(), key(2)),
            ("State+Purpose".into(), combo),
        ],
    )
    .unwrap();
    assert_eq!(h.len(), 1 + 8 + 76 + 4 + 32 + 304);
    let batch = Batch {
        method: Some(Method::Ets(None)),
        selection: Selection::Group,
        season: 4,
        horizon: 8,
        levels: vec![95.0],
        windows: 1,
        calibrate: false,
    };
    let mut scores = None;
    for r in Reconciliation::ALL {
        let out = forecast_hierarchy(&h, &set.values, &batch, Some(r)).unwrap();
        let fb = h.first_bottom();
        for (node, members) in h.members.iter().enumerate() {
            for k in 0..8 {
                let sum: f64 = members.iter().map(|&i| out.forecasts[fb + i].mean[k]).sum();
                let v = out.forecasts[node].mean[k];
                assert!(
                    (v - sum).abs() <= 1e-9 * sum.abs().max(1.0),
                    "{r:?} node {node}: {v} vs {sum}"
                );
            }
        }
        scores = Some(out.backtest);
    }
    let scores = scores.unwrap();
    let get = |m: &str, level: &str| {
        scores
            .iter()
            .find(|s| s.method == m)
            .unwrap()
            .by_level
            .iter()
            .find(|l| l.0 == level)
            .unwrap()
            .1
    };
    eprintln!(
        "total MASE: base {:.3}, bu {:.3}; bottom: base {:.3}, mint {:.3}",
        get("base", "Total"),
        get("bu", "Total"),
        get("base", "bottom"),
        get("mint", "bottom")
    );
    // As measured in the issue: base 1.53, bottom-up 3.09 at the total.
    assert!((get("base", "Total") - 1.53).abs() < 0.05);
    assert!(get("bu", "Total") > 2.0 * get("base", "Total"));
    for m in ["base", "bu", "ols", "wls"] {
        assert!(
            get("mint", "bottom") < get(m, "bottom"),
            "mint vs {m} at the bottom"
        );
    }
}

/// The simulator's planted labour demand (monthly hires by sector and province since 2019:
/// level × growth × season × gamma-Poisson noise): `--model auto`'s calibrated intervals
/// cover outcomes drawn from the planted process for the next 12 months within 3 points of
/// nominal.
#[test]
fn intervals_cover_the_simulators_planted_demand() {
    use chrono::Datelike;
    use occupa_engine::instruments::Instruments;
    use occupa_engine::simulate::{SimConfig, simulate};
    use occupa_engine::value::parse_date;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Gamma, Poisson};

    let tmp = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        persons: 200,
        tenants: 12,
        seed: 5,
        ..SimConfig::default()
    };
    simulate(&cfg, &Instruments::builtin().unwrap(), tmp.path()).unwrap();
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("truth.json")).unwrap())
            .unwrap();
    let demand = truth["demand"].as_array().unwrap();
    let sectors = demand.len() / cfg.tenants;
    let months = (cfg.end.year() - 2019) as usize * 12 + cfg.end.month() as usize;
    let sector_names: Vec<&str> = demand[..sectors]
        .iter()
        .map(|d| d["sector"].as_str().unwrap())
        .collect();
    // Observed series from the raw exports (any of the tenants' date styles and layouts).
    let mut series = Vec::new();
    for t in 0..cfg.tenants {
        let raw = std::fs::read(
            tmp.path()
                .join(format!("t{:02}", t + 1))
                .join("vacancies.csv"),
        )
        .unwrap();
        let text: String = raw.iter().map(|&b| b as char).collect();
        let sep = if text.lines().next().unwrap().contains(';') {
            b';'
        } else {
            b','
        };
        let mut counts = vec![vec![0.0; months]; sectors];
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(sep)
            .from_reader(text.as_bytes());
        for r in rdr.records() {
            let r = r.unwrap();
            let d = parse_date(&r[1]).unwrap();
            let k = (d.year() - 2019) as usize * 12 + d.month0() as usize;
            let s = sector_names.iter().position(|s| *s == &r[3]).unwrap();
            counts[s][k] += r[5].parse::<f64>().unwrap();
        }
        series.extend(counts);
    }
    let batch = Batch {
        method: None,
        selection: Selection::Group,
        season: 12,
        horizon: 12,
        levels: vec![80.0, 95.0],
        windows: 1,
        calibrate: true,
    };
    let out = forecast_batch(&series, &batch, &|| {}).unwrap();
    // Outcomes drawn from the planted process: Poisson(μ · Gamma(40, 1/40)).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let gamma = Gamma::new(40.0, 1.0 / 40.0).unwrap();
    let (mut hit, mut n) = ([0usize; 2], 0usize);
    for (i, r) in out.series.iter().enumerate() {
        let mut fc = r.as_ref().unwrap().outcome.forecast.clone();
        fc.clip_at_zero();
        let means = demand[i]["monthly_mean"].as_object().unwrap();
        let future: Vec<f64> = means
            .values()
            .skip(months)
            .take(12)
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(future.len(), 12);
        for (k, mu) in future.iter().enumerate() {
            let lam: f64 = mu * gamma.sample(&mut rng);
            let y: f64 = Poisson::new(lam.max(1e-9)).unwrap().sample(&mut rng);
            for (j, iv) in fc.intervals.iter().enumerate() {
                hit[j] += usize::from(y >= iv.lower[k] && y <= iv.upper[k]);
            }
            n += 1;
        }
    }
    let (c80, c95) = (hit[0] as f64 / n as f64, hit[1] as f64 / n as f64);
    eprintln!(
        "simulator demand, {} series: coverage {c80:.3} / {c95:.3}",
        series.len()
    );
    assert!((c80 - 0.80).abs() <= 0.03, "80 %: {c80}");
    assert!((c95 - 0.95).abs() <= 0.03, "95 %: {c95}");
}

/// AutoARIMA (anofox-forecast's port of R's auto.arima) against statsforecast's on the
/// first 100 M3 quarterly series: mostly the same orders, and a subset sMAPE within 2 %.
#[test]
fn arima_agrees_with_statsforecast_autoarima() {
    use occupa_engine::forecast::arima::Arima;
    let Some(dir) = crate::data_dir() else { return };
    let train = read_m3(&dir, "m3_quarterly_train.csv");
    let test = read_m3(&dir, "m3_quarterly_test.csv");
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/forecast/statsforecast_m3_arima.csv");
    let mut reference: BTreeMap<String, (String, Vec<f64>)> = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(path).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let e = reference
            .entry(rec[0].to_string())
            .or_insert_with(|| (rec[2].to_string(), Vec::new()));
        e.1.push(rec[3].parse().unwrap());
    }
    assert_eq!(reference.len(), 100);
    let (mut same, mut ours, mut theirs) = (0, 0.0, 0.0);
    for (id, (orders, mean)) in &reference {
        let fit = Arima::auto(4).fit(&train[id]).unwrap();
        // "ARIMA(p,d,q)(P,D,Q)[4]" or "ARIMA(p,d,q)" → "p,d,q,P,D,Q".
        let digits: Vec<&str> = fit
            .name()
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        let mine = if digits.len() >= 6 {
            digits[..6].join(",")
        } else {
            format!("{},0,0,0", digits.join(","))
        };
        same += usize::from(&mine == orders);
        let mut fc = fit.predict(8, &[]).unwrap();
        fc.clip_at_zero();
        ours += smape(&test[id], &fc.mean);
        let clipped: Vec<f64> = mean.iter().map(|v| v.max(0.0)).collect();
        theirs += smape(&test[id], &clipped);
    }
    let (ours, theirs) = (ours / 100.0, theirs / 100.0);
    eprintln!("quarterly ARIMA: same orders {same}/100, sMAPE {ours:.3} vs {theirs:.3}");
    assert!(same >= 70, "same orders on {same}/100");
    assert!(
        ours <= theirs * 1.02,
        "sMAPE {ours} vs statsforecast {theirs}"
    );
}

/// A level shift (a new hiring scheme doubles the hires halfway) does not leave the
/// forecasts behind: every method ends near the new level, not the old one or the mean.
#[test]
fn forecasts_follow_a_level_shift() {
    let y: Vec<f64> = (0..72)
        .map(|t| {
            let level = if t < 48 { 100.0 } else { 200.0 };
            level + 10.0 * ((t % 12) as f64 / 2.0).sin() + ((t * 7) % 5) as f64
        })
        .collect();
    for name in ["ets", "arima", "theta", "comb", "median", "snaive"] {
        let fc = Method::parse(name)
            .unwrap()
            .forecast(&y, 12, 12, &[95.0])
            .unwrap();
        let mean = fc.mean.iter().sum::<f64>() / 12.0;
        assert!((mean - 202.0).abs() < 25.0, "{name}: mean forecast {mean}");
    }
}
