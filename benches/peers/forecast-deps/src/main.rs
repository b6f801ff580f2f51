//! Measures anofox-forecast and augurs-ets on M3 monthly/quarterly.
//! Usage: forecast-deps <monthly|quarterly> <model> [subset_n] [seed]
//! Models: anofox_autoets, anofox_theta, anofox_otm, anofox_autotheta,
//!         anofox_autoarima, augurs_autoets, augurs_mstl_ets,
//!         anofox_autoets_nomt, snaive (seasonal naive sanity check)
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use anofox_forecast::core::TimeSeries;
use anofox_forecast::models::arima::AutoARIMA;
use anofox_forecast::models::exponential::{AutoETS as AnoAutoETS, AutoETSConfig, ModelPool};
use anofox_forecast::models::theta::{AutoTheta, OptimizedTheta, Theta};
use anofox_forecast::models::Forecaster;
use augurs_core::{Fit, Predict};
use chrono::{Months, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;


fn read_long(path: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let txt = std::fs::read_to_string(path).expect("read csv");
    let mut m: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in txt.lines().skip(1) {
        let mut it = line.split(',');
        let id = it.next().unwrap().to_string();
        let t: i64 = it.next().unwrap().trim().parse().unwrap();
        let y: f64 = it.next().unwrap().trim().parse().unwrap();
        m.entry(id).or_default().push((t, y));
    }
    for v in m.values_mut() {
        v.sort_by_key(|p| p.0);
    }
    m
}

fn anofox_fit<F: Forecaster>(mut m: F, y: &[f64], step_months: u32, h: usize) -> Result<Vec<f64>, String> {
    let t0 = Utc.with_ymd_and_hms(1980, 1, 1, 0, 0, 0).unwrap();
    let ts: Vec<_> = (0..y.len()).map(|i| t0 + Months::new(step_months * i as u32)).collect();
    let series = TimeSeries::univariate(ts, y.to_vec()).map_err(|e| format!("{e:?}"))?;
    m.fit(&series).map_err(|e| format!("{e:?}"))?;
    let f = m.predict(h).map_err(|e| format!("{e:?}"))?;
    Ok(f.primary().to_vec())
}

fn forecast(model: &str, y: &[f64], m: usize, h: usize) -> Result<Vec<f64>, String> {
    let step = (12 / m) as u32;
    match model {
        "anofox_autoets" => anofox_fit(AnoAutoETS::with_period(m), y, step, h),
        "anofox_theta" => anofox_fit(Theta::seasonal(m), y, step, h),
        "anofox_otm" => anofox_fit(OptimizedTheta::seasonal(m), y, step, h),
        "anofox_autotheta" => anofox_fit(AutoTheta::seasonal(m), y, step, h),
        "anofox_autoarima" => anofox_fit(AutoARIMA::seasonal(m), y, step, h),
        "augurs_autoets" => {
            let s = augurs_ets::AutoETS::new(1, "ZZN").map_err(|e| e.to_string())?;
            let fitted = s.fit(y).map_err(|e| e.to_string())?;
            let f = fitted.predict(h, None).map_err(|e| e.to_string())?;
            Ok(f.point)
        }
        "anofox_autoets_nomt" => {
            // closer to statsforecast defaults: no multiplicative trend, no spike guard
            let cfg = AutoETSConfig {
                seasonal_period: Some(m),
                model_pool: ModelPool::NoMultiplicativeTrend,
                spike_trend_guard: false,
                ..Default::default()
            };
            anofox_fit(AnoAutoETS::with_config(cfg), y, step, h)
        }
        "augurs_mstl_ets" => {
            let ets = augurs_ets::AutoETS::non_seasonal().into_trend_model();
            let mstl = augurs_mstl::MSTLModel::new(vec![m], ets);
            let fitted = mstl.fit(y).map_err(|e| e.to_string())?;
            let f = fitted.predict(h, None).map_err(|e| e.to_string())?;
            Ok(f.point)
        }
        "snaive" => Ok((0..h).map(|i| y[y.len() - m + (i % m)]).collect()),
        _ => Err(format!("unknown model {model}")),
    }
}

fn smape(y: &[f64], f: &[f64]) -> f64 {
    y.iter().zip(f).map(|(a, b)| {
        let d = a.abs() + b.abs();
        if d == 0.0 { 0.0 } else { 200.0 * (a - b).abs() / d }
    }).sum::<f64>() / y.len() as f64
}

fn mase_scale(x: &[f64], m: usize) -> Option<f64> {
    let lag = if x.len() > m { m } else { 1 };
    if x.len() <= lag { return None; }
    let s = (lag..x.len()).map(|i| (x[i] - x[i - lag]).abs()).sum::<f64>() / (x.len() - lag) as f64;
    if s > 0.0 { Some(s) } else { None }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let freq = args.get(1).expect("freq").as_str();
    let model = args.get(2).expect("model").clone();
    let subset: Option<usize> = args.get(3).and_then(|s| s.parse().ok()).filter(|&n| n > 0);
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(42);
    let (m, h) = match freq { "monthly" => (12usize, 18usize), "quarterly" => (4, 8), _ => panic!("freq") };
    // The public datasets folder, as the tests read it (OCCUPA_DATA_DIR), then m3/.
    let data = std::env::var("OCCUPA_DATA_DIR").unwrap_or_else(|_| "../../../../shared/data".into());
    let train = read_long(&format!("{data}/m3/m3_{freq}_train.csv"));
    let test = read_long(&format!("{data}/m3/m3_{freq}_test.csv"));
    let mut ids: Vec<&String> = train.keys().collect();
    let n_all = ids.len();
    if let Some(n) = subset {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        ids.shuffle(&mut rng);
        ids.truncate(n);
        ids.sort();
    }
    let jobs: Vec<(Vec<f64>, Vec<f64>)> = ids.iter().map(|id| {
        let x: Vec<f64> = train[*id].iter().map(|p| p.1).collect();
        let y: Vec<f64> = test[*id].iter().map(|p| p.1).collect();
        assert_eq!(y.len(), h, "{id}");
        (x, y)
    }).collect();

    let start = Instant::now();
    let fc: Vec<Result<Vec<f64>, String>> = jobs.par_iter().map(|(x, _)| {
        match catch_unwind(AssertUnwindSafe(|| forecast(&model, x, m, h))) {
            Ok(Ok(f)) if f.len() == h && f.iter().all(|v| v.is_finite()) => Ok(f),
            Ok(Ok(f)) => Err(format!("bad forecast len={} nonfinite", f.len())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("panic".to_string()),
        }
    }).collect();
    let secs = start.elapsed().as_secs_f64();

    let (mut s_sum, mut sc_sum, mut ms_sum, mut ms_n) = (0.0, 0.0, 0.0, 0usize);
    let (mut failed, mut neg_series, mut neg_values) = (0usize, 0usize, 0usize);
    let mut first_err: Option<String> = None;
    for ((x, y), r) in jobs.iter().zip(&fc) {
        // failed fits are scored with the seasonal naive forecast (and counted)
        let f: Vec<f64> = match r {
            Ok(f) => f.clone(),
            Err(e) => {
                failed += 1;
                if first_err.is_none() { first_err = Some(e.clone()); }
                (0..h).map(|i| x[x.len() - m.min(x.len()) + (i % m.min(x.len()))]).collect()
            }
        };
        if r.is_ok() {
            let k = f.iter().filter(|v| **v < 0.0).count();
            if k > 0 { neg_series += 1; neg_values += k; }
        }
        s_sum += smape(y, &f);
        let fc0: Vec<f64> = f.iter().map(|v| v.max(0.0)).collect();
        sc_sum += smape(y, &fc0);
        if let Some(sc) = mase_scale(x, m) {
            ms_sum += y.iter().zip(&f).map(|(a, b)| (a - b).abs()).sum::<f64>() / h as f64 / sc;
            ms_n += 1;
        }
    }
    let n = jobs.len();
    println!(
        "freq={freq} model={model} n={n}/{n_all} smape={:.3} smape_clip0={:.3} mase={:.3} secs={:.2} est_full_secs={:.1} failed={failed} neg_series={neg_series} neg_values={neg_values} threads={} first_err={:?}",
        s_sum / n as f64, sc_sum / n as f64, ms_sum / ms_n as f64, secs, secs * n_all as f64 / n as f64,
        rayon::current_num_threads(), first_err
    );
}
