//! `occupa forecast`: forecasts of many series (hires, vacancies by sector and
//! territory) with intervals, from a long CSV file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use occupa_engine::forecast::Forecast;
use occupa_engine::forecast::backtest::{Batch, Method, Selection, forecast_batch};
use occupa_engine::forecast::hierarchy::{
    Hierarchy, Reconciliation, clip_coherent, forecast_hierarchy,
};
use occupa_engine::forecast::input::SeriesSet;
use occupa_engine::read::ReadOptions;

#[derive(Args)]
pub struct ForecastArgs {
    /// Input in long format, one row per series and period: CSV (any separator and
    /// encoding, decimal commas), XLSX/ODS or Parquet.
    #[arg(long)]
    input: PathBuf,
    /// The sheet of a workbook input (name or number from 1; the first by default).
    #[arg(long)]
    sheet: Option<String>,
    /// Periods to forecast (e.g. 12 months).
    #[arg(long)]
    horizon: usize,
    /// auto (chosen by backtest), ets, ets:MAdM (one ETS model), arima, theta, otm,
    /// autotheta, comb (M4's SES/Holt/damped), median (of ETS, ARIMA and Theta), snaive or
    /// naive.
    #[arg(long, default_value = "auto")]
    model: String,
    /// Season length (default: 12 for monthly periods, 4 for quarterly, 1 otherwise).
    #[arg(long)]
    season: Option<usize>,
    /// Interval levels in percent, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "80,95")]
    levels: Vec<f64>,
    /// Column(s) of the series identifier, comma-separated (e.g. Region,Purpose).
    #[arg(long, default_value = "id", value_delimiter = ',')]
    id: Vec<String>,
    /// Forecasts that add up: the aggregation levels above the series, separated by `;`,
    /// each a column or columns joined by `+` (e.g. "regione" for provinces → regions →
    /// Italy; "State;Region;Purpose;State+Purpose" for a grouped structure). The total is
    /// always included. Every series must cover the same periods.
    #[arg(long)]
    hierarchy: Option<String>,
    /// With --hierarchy: auto (chosen by backtest), bu, ols, wls or mint.
    #[arg(long, default_value = "auto")]
    reconcile: String,
    /// Column of the period: a date (2026-03-31), a month (2026-03), a quarter (2026Q1)
    /// or an integer index.
    #[arg(long, default_value = "date")]
    time: String,
    /// Column of the value.
    #[arg(long, default_value = "value")]
    value: String,
    /// auto: choose one method for all series (group) or per series (series).
    #[arg(long, default_value = "group")]
    select: String,
    /// Held-out windows of `horizon` periods per series for the choice and the
    /// calibration of intervals.
    #[arg(long, default_value_t = 1)]
    windows: usize,
    /// Keep the models' own intervals (by default they are calibrated on the held-out
    /// errors, so that a 95 % interval holds about 95 % of outcomes).
    #[arg(long)]
    no_calibration: bool,
    /// Output CSV: id,time,model,mean,lo_80,hi_80,lo_95,hi_95.
    #[arg(long)]
    out: PathBuf,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(a: ForecastArgs) -> Result<()> {
    if a.horizon == 0 || a.horizon > 1_000 {
        bail!("--horizon {}: give between 1 and 1000 periods", a.horizon);
    }
    let method = if a.model.eq_ignore_ascii_case("auto") {
        None
    } else {
        Some(Method::parse(&a.model)?)
    };
    let selection = match a.select.as_str() {
        "group" => Selection::Group,
        "series" => Selection::Series,
        other => bail!("--select {other:?}: use group or series"),
    };
    // Aggregation levels: each a list of key columns.
    let levels: Vec<Vec<String>> = a
        .hierarchy
        .as_deref()
        .map(|h| {
            h.split(';')
                .map(|l| {
                    l.split('+')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect::<Vec<_>>()
                })
                .filter(|l: &Vec<String>| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut key_columns: Vec<&str> = Vec::new();
    for c in levels.iter().flatten() {
        if !key_columns.contains(&c.as_str()) {
            key_columns.push(c);
        }
    }
    let ids: Vec<&str> = a.id.iter().map(String::as_str).collect();
    let set = SeriesSet::read_file(
        &a.input,
        &ids,
        &a.time,
        &a.value,
        &key_columns,
        &ReadOptions {
            sheet: a.sheet.clone(),
        },
    )?;
    if !set.unused_columns.is_empty() {
        eprintln!(
            "note: column(s) {} not used: the methods here take no regressors; only the \
             series' own past is used",
            set.unused_columns.join(", ")
        );
    }
    for (id, why) in &set.left_out {
        eprintln!("note: series '{id}' left out: {why}");
    }
    for (i, v) in set.constant_series() {
        eprintln!(
            "note: series '{}' is {v} in every period: forecast as {v}, with intervals of zero width",
            set.ids[i]
        );
    }
    let season = a.season.unwrap_or_else(|| set.natural_season());
    let batch = Batch {
        method,
        selection,
        season,
        horizon: a.horizon,
        levels: a.levels.clone(),
        windows: a.windows.max(1),
        calibrate: !a.no_calibration,
    };
    if a.hierarchy.is_some() {
        return run_hierarchy(&a, &set, &levels, &key_columns, &batch);
    }
    let pb = crate::bar(format!("forecast {} series", set.ids.len()));
    pb.set_length(set.ids.len() as u64);
    if a.quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let result = forecast_batch(&set.values, &batch, &|| pb.inc(1))?;
    pb.finish_and_clear();

    let mut notes = Vec::new();
    let mut methods: std::collections::BTreeMap<String, usize> = Default::default();
    let mut failed = Vec::new();
    let mut clipped = 0usize;
    let mut rows: Vec<(&String, Forecast, i64)> = Vec::new();
    for (i, r) in result.series.iter().enumerate() {
        let id = &set.ids[i];
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                failed.push(format!("{id}: {e}"));
                continue;
            }
        };
        let mut fc = s.outcome.forecast.clone();
        // Counts (no negative value observed) are never forecast below zero.
        if set.values[i].iter().all(|&v| v >= 0.0) {
            clipped += fc.mean.iter().filter(|&&v| v < 0.0).count();
            fc.clip_at_zero();
        }
        *methods.entry(fc.model.clone()).or_default() += 1;
        if let Some(why) = &s.outcome.fallback {
            notes.push(format!("{id}: {why}"));
        }
        if set.filled[i] > 0 {
            notes.push(format!(
                "{id}: {} missing period(s) filled by linear interpolation",
                set.filled[i]
            ));
        }
        let last = set.start[i] + (set.values[i].len() as i64 - 1) * set.step;
        rows.push((id, fc, last));
    }
    write_rows(
        &a.out,
        &a.levels,
        a.horizon,
        &set,
        rows.iter().map(|(id, f, last)| (*id, f, *last)),
    )?;
    if !failed.is_empty() && failed.len() == set.ids.len() {
        bail!("no series could be forecast; first: {}", failed[0]);
    }
    let summary = serde_json::json!({
        "input": set.source,
        "left_out": left_out(&set),
        "constant": constant(&set),
        "series": set.ids.len(),
        "forecast": set.ids.len() - failed.len(),
        "horizon": a.horizon,
        "season": season,
        "model_asked": a.model,
        "models_used": methods,
        "backtest_mase": result.group_mase.iter().map(|(m, v)| (m.name(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "backtest": result.scores,
        "calibration": result.calibration.iter().map(|(m, c)| serde_json::json!({
            "model": m.name(),
            "held_out_values": c.n_scores,
            "factors": c.factors.iter().zip(&a.levels).map(|(f, l)| (fmt_level(*l), f.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        })).collect::<Vec<_>>(),
        "negative_means_clipped": clipped,
        "columns_not_used": set.unused_columns,
        "notes": notes,
        "failed": failed,
        "out": a.out,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn run_hierarchy(
    a: &ForecastArgs,
    set: &SeriesSet,
    levels: &[Vec<String>],
    key_columns: &[&str],
    batch: &Batch,
) -> Result<()> {
    let reconcile = match a.reconcile.as_str() {
        "auto" => None,
        other => Some(Reconciliation::parse(other)?),
    };
    let (len, start) = (set.values[0].len(), set.start[0]);
    if let Some(i) =
        (0..set.ids.len()).find(|&i| set.values[i].len() != len || set.start[i] != start)
    {
        bail!(
            "series '{}' covers {} periods from {} but '{}' covers {} from {}: reconciliation \
             needs every series over the same periods",
            set.ids[i],
            set.values[i].len(),
            set.label(set.start[i]),
            set.ids[0],
            len,
            set.label(start)
        );
    }
    let keys: Vec<(String, Vec<String>)> = levels
        .iter()
        .map(|cols| {
            let per_series = (0..set.ids.len())
                .map(|i| {
                    cols.iter()
                        .map(|c| {
                            let j = key_columns.iter().position(|k| k == c).unwrap_or(0);
                            format!("{c}={}", set.keys[j][i])
                        })
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            (cols.join("+"), per_series)
        })
        .collect();
    let h = Hierarchy::new(&set.ids, &keys)?;
    let pb = crate::bar(format!("forecast {} nodes", h.len()));
    if a.quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut out = forecast_hierarchy(&h, &set.values, batch, reconcile)?;
    pb.finish_and_clear();
    let counts = set.values.iter().flatten().all(|&v| v >= 0.0);
    if counts {
        clip_coherent(&h, &mut out.forecasts);
    }
    let last = start + (len as i64 - 1) * set.step;
    write_rows(
        &a.out,
        &a.levels,
        a.horizon,
        set,
        h.labels
            .iter()
            .zip(&out.forecasts)
            .map(|(l, f)| (l, f, last)),
    )?;
    let summary = serde_json::json!({
        "input": set.source,
        "left_out": left_out(set),
        "constant": constant(set),
        "series": set.ids.len(),
        "nodes": h.len(),
        "horizon": a.horizon,
        "season": batch.season,
        "model_asked": a.model,
        "reconciliation": out.method.name(),
        "reconciliation_asked": a.reconcile,
        "mint_shrinkage": out.lambda,
        "backtest_mase": out.backtest,
        "counts_clipped_at_zero": counts,
        "columns_not_used": set.unused_columns,
        "out": a.out,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// The series with no value, named with why (they are not forecast).
fn left_out(set: &SeriesSet) -> Vec<serde_json::Value> {
    set.left_out
        .iter()
        .map(|(id, why)| serde_json::json!({"id": id, "reason": why}))
        .collect()
}

/// The series that never varied: forecast as their value, with intervals of zero width
/// (nothing in their past says how they could vary).
fn constant(set: &SeriesSet) -> Vec<serde_json::Value> {
    set.constant_series()
        .into_iter()
        .map(|(i, v)| {
            serde_json::json!({
                "id": set.ids[i],
                "value": v,
                "note": "the same value in every period: forecast as that value, with intervals of zero width",
            })
        })
        .collect()
}

/// Writes the forecast rows atomically (temporary file, then rename).
fn write_rows<'a>(
    out: &std::path::Path,
    levels: &[f64],
    horizon: usize,
    set: &SeriesSet,
    rows: impl Iterator<Item = (&'a String, &'a Forecast, i64)>,
) -> Result<()> {
    let tmp = out.with_extension("csv.tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?,
    );
    let mut header = String::from("id,time,model,mean");
    for l in levels {
        let l = fmt_level(*l);
        header.push_str(&format!(",lo_{l},hi_{l}"));
    }
    writeln!(f, "{header}")?;
    for (id, fc, last) in rows {
        for k in 0..horizon {
            let mut line = format!(
                "{},{},{},{}",
                csv_field(id),
                set.label(last + (k as i64 + 1) * set.step),
                csv_field(&fc.model),
                fc.mean[k]
            );
            for iv in &fc.intervals {
                line.push_str(&format!(",{},{}", iv.lower[k], iv.upper[k]));
            }
            writeln!(f, "{line}")?;
        }
    }
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, out).with_context(|| format!("{}", out.display()))?;
    Ok(())
}

fn fmt_level(l: f64) -> String {
    if l.fract() == 0.0 {
        format!("{}", l as i64)
    } else {
        format!("{l}").replace('.', "_")
    }
}

fn csv_field(s: &str) -> String {
    occupa_engine::export::csv_field(s).into_owned()
}
