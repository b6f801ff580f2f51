//! Scores Occupa's forecasting methods on the M3 competition as the competition did:
//! each series' training part is fitted, the official horizon forecast, and sMAPE, MASE
//! (seasonal-naive scale) and the coverage of the 80 % and 95 % intervals averaged over
//! series.
//!
//! `OCCUPA_DATA_DIR=../shared/data cargo run --release -p occupa-benches --bin m3-forecast --
//!  monthly|quarterly MODEL[,MODEL…] [--limit N] [--windows W] [--out FILE.csv]`
//!
//! MODEL: auto, snaive, ets, ets:MAdM, arima, theta (STM), otm, autotheta, comb, median;
//! a `+cal` suffix
//! calibrates the intervals on the last `h` values of each training part (`--windows W`:
//! on the last W horizons; auto always calibrates). Prints one line per model; `--out` writes every forecast
//! (unique_id,h,model,mean,lo/hi).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use occupa_engine::forecast::Forecast;
use occupa_engine::forecast::accuracy::{coverage, mase, smape};
use occupa_engine::forecast::backtest::{Batch, Method, Selection, forecast_batch};
use occupa_engine::forecast::baseline::seasonal_naive;

type Series = BTreeMap<String, Vec<(usize, f64)>>;

fn read(path: &std::path::Path) -> Result<Series, Box<dyn std::error::Error>> {
    let mut out: Series = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(path)?;
    for rec in rdr.records() {
        let rec = rec?;
        let t: usize = rec[1].parse()?;
        let y: f64 = rec[2].parse()?;
        out.entry(rec[0].to_string()).or_default().push((t, y));
    }
    for v in out.values_mut() {
        v.sort_by_key(|p| p.0);
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err(
            "usage: m3-forecast monthly|quarterly MODEL[,MODEL…] [--limit N] [--out FILE]".into(),
        );
    }
    let (m, h) = match args[0].as_str() {
        "monthly" => (12, 18),
        "quarterly" => (4, 8),
        other => return Err(format!("unknown frequency {other}").into()),
    };
    let limit = args
        .iter()
        .position(|a| a == "--limit")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<usize>())
        .transpose()?;
    let windows = args
        .iter()
        .position(|a| a == "--windows")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<usize>())
        .transpose()?
        .unwrap_or(1);
    let out_path = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let dir = std::path::PathBuf::from(
        std::env::var("OCCUPA_DATA_DIR").map_err(|_| "set OCCUPA_DATA_DIR to shared/data")?,
    )
    .join("m3");
    let train = read(&dir.join(format!("m3_{}_train.csv", args[0])))?;
    let test = read(&dir.join(format!("m3_{}_test.csv", args[0])))?;
    let mut ids: Vec<&String> = train.keys().collect();
    if let Some(l) = limit {
        ids.truncate(l);
    }
    let mut out = match &out_path {
        Some(p) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
            writeln!(f, "unique_id,h,model,mean,lo_80,hi_80,lo_95,hi_95")?;
            Some(f)
        }
        None => None,
    };
    println!(
        "{:<10} {:>6} {:>8} {:>7} {:>7} {:>7} {:>8} {:>6}",
        "model", "series", "sMAPE", "MASE", "cov80", "cov95", "seconds", "failed"
    );
    for model in args[1].split(',') {
        let (name, calibrate) = match model.strip_suffix("+cal") {
            Some(n) => (n, true),
            None => (model, model == "auto" || model == "auto-series"),
        };
        let selection = if name == "auto-series" {
            Selection::Series
        } else {
            Selection::Group
        };
        let method = if name == "auto" || name == "auto-series" {
            None
        } else {
            Some(Method::parse(name)?)
        };
        let ys: Vec<Vec<f64>> = ids
            .iter()
            .map(|id| train[*id].iter().map(|p| p.1).collect())
            .collect();
        let batch = Batch {
            method,
            selection,
            season: m,
            horizon: h,
            levels: vec![80.0, 95.0],
            windows,
            calibrate,
        };
        let start = Instant::now();
        let done = forecast_batch(&ys, &batch, &|| {})?;
        if method.is_none() {
            let g: Vec<String> = done
                .group_mase
                .iter()
                .map(|(m, v)| format!("{} {v:.3}", m.name()))
                .collect();
            eprintln!("  backtest MASE: {}", g.join(", "));
        }
        let results: Vec<(String, Result<Forecast, String>)> = ids
            .iter()
            .zip(done.series)
            .map(|(id, r)| {
                (
                    id.to_string(),
                    r.map(|s| s.outcome.forecast).map_err(|e| e.to_string()),
                )
            })
            .collect();
        let secs = start.elapsed().as_secs_f64();
        let (mut s, mut ma, mut c80, mut c95, mut failed) = (0.0, 0.0, 0.0, 0.0, 0usize);
        let mut nm = 0usize;
        for (id, r) in &results {
            let y: Vec<f64> = train[id].iter().map(|p| p.1).collect();
            let actual: Vec<f64> = test[id].iter().map(|p| p.1).collect();
            let fc = match r {
                Ok(f) => {
                    let mut f = f.clone();
                    // M3 data are positive: a negative forecast is clipped, as for counts.
                    f.clip_at_zero();
                    f
                }
                Err(_) => {
                    failed += 1;
                    seasonal_naive(&y, m, h, &[80.0, 95.0])
                        .or_else(|_| seasonal_naive(&y, 1, h, &[80.0, 95.0]))?
                }
            };
            s += smape(&actual, &fc.mean);
            let v = mase(&y, &actual, &fc.mean, m);
            if v.is_finite() {
                ma += v;
                nm += 1;
            }
            c80 += coverage(&actual, &fc.intervals[0].lower, &fc.intervals[0].upper);
            c95 += coverage(&actual, &fc.intervals[1].lower, &fc.intervals[1].upper);
            if let Some(f) = out.as_mut() {
                for k in 0..h {
                    writeln!(
                        f,
                        "{id},{},{},{},{},{},{},{}",
                        k + 1,
                        fc.model,
                        fc.mean[k],
                        fc.intervals[0].lower[k],
                        fc.intervals[0].upper[k],
                        fc.intervals[1].lower[k],
                        fc.intervals[1].upper[k]
                    )?;
                }
            }
        }
        let n = results.len() as f64;
        println!(
            "{:<10} {:>6} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {:>8.2} {:>6}",
            model,
            results.len(),
            s / n,
            ma / nm as f64,
            c80 / n,
            c95 / n,
            secs,
            failed
        );
        if let Some((id, Err(e))) = results.iter().find(|r| r.1.is_err()) {
            eprintln!("  first failure: {id}: {e}");
        }
    }
    Ok(())
}
