//! `occupa forecast`: forecasts of many series (hires, vacancies by sector and
//! territory) with intervals, from a long CSV file.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use occupa_engine::forecast::runner::ForecastRequest;

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
    // The flags as a forecast request: the one mapping from the command line to the engine.
    let request = ForecastRequest {
        horizon: a.horizon,
        model: a.model.clone(),
        season: a.season,
        levels: a.levels.clone(),
        id: a.id.clone(),
        hierarchy: a.hierarchy.clone(),
        reconcile: a.reconcile.clone(),
        time: a.time.clone(),
        value: a.value.clone(),
        select: a.select.clone(),
        windows: a.windows,
        calibrate: !a.no_calibration,
        sheet: a.sheet.clone(),
    };
    let valid = request.check().map_err(|e| match e {
        occupa_engine::Error::Param { name, reason } => anyhow!("--{name} {reason}"),
        other => other.into(),
    })?;
    let set = valid.read(&a.input)?;
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
    let pb = if valid.is_hierarchical() {
        let pb = crate::bar("forecast the hierarchy".to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        pb
    } else {
        let pb = crate::bar(format!("forecast {} series", set.ids.len()));
        pb.set_length(set.ids.len() as u64);
        pb
    };
    if a.quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let out = valid.run(&set, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if let Some(note) = out.summary.get("season_note").and_then(|n| n.as_str()) {
        eprintln!("note: {note} (--season)");
    }
    out.write_csv(&a.out, &set, &a.levels, a.horizon)?;
    let mut summary = out.summary;
    summary.insert("out".into(), serde_json::to_value(&a.out)?);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
