//! `occupa forecast`: forecasts of many series (hires, vacancies by sector and
//! territory) with intervals, from a long CSV file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use occupa_engine::forecast::backtest::{Batch, Method, Selection, forecast_batch};
use occupa_engine::forecast::input::SeriesSet;

#[derive(Args)]
pub struct ForecastArgs {
    /// Input CSV in long format: one row per series and period.
    #[arg(long)]
    input: PathBuf,
    /// Periods to forecast (e.g. 12 months).
    #[arg(long)]
    horizon: usize,
    /// auto (chosen by backtest), ets, ets:MAdM (one ETS model), theta, otm, autotheta,
    /// comb (M4's SES/Holt/damped), snaive or naive.
    #[arg(long, default_value = "auto")]
    model: String,
    /// Season length (default: 12 for monthly periods, 4 for quarterly, 1 otherwise).
    #[arg(long)]
    season: Option<usize>,
    /// Interval levels in percent, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "80,95")]
    levels: Vec<f64>,
    /// Column of the series identifier.
    #[arg(long, default_value = "id")]
    id: String,
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
    if a.horizon == 0 {
        bail!("--horizon must be at least 1 period");
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
    let set = SeriesSet::read(&a.input, &a.id, &a.time, &a.value)?;
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
    let pb = crate::bar(format!("forecast {} series", set.ids.len()));
    pb.set_length(set.ids.len() as u64);
    if a.quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let result = forecast_batch(&set.values, &batch, &|| pb.inc(1))?;
    pb.finish_and_clear();

    let tmp = a.out.with_extension("csv.tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?,
    );
    let mut header = String::from("id,time,model,mean");
    for l in &a.levels {
        let l = fmt_level(*l);
        header.push_str(&format!(",lo_{l},hi_{l}"));
    }
    writeln!(f, "{header}")?;
    let mut notes = Vec::new();
    let mut methods: std::collections::BTreeMap<String, usize> = Default::default();
    let mut failed = Vec::new();
    let mut clipped = 0usize;
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
            let before = fc.mean.iter().filter(|&&v| v < 0.0).count();
            fc.clip_at_zero();
            clipped += before;
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
        for k in 0..a.horizon {
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
    std::fs::rename(&tmp, &a.out).with_context(|| format!("{}", a.out.display()))?;
    if !failed.is_empty() && failed.len() == set.ids.len() {
        bail!("no series could be forecast; first: {}", failed[0]);
    }
    let summary = serde_json::json!({
        "series": set.ids.len(),
        "forecast": set.ids.len() - failed.len(),
        "horizon": a.horizon,
        "season": season,
        "model_asked": a.model,
        "models_used": methods,
        "backtest_mase": result.group_mase.iter().map(|(m, v)| (m.name(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "calibration": result.calibration.iter().map(|(m, c)| serde_json::json!({
            "model": m.name(),
            "held_out_values": c.n_scores,
            "factors": c.factors.iter().zip(&a.levels).map(|(f, l)| (fmt_level(*l), f.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        })).collect::<Vec<_>>(),
        "negative_means_clipped": clipped,
        "notes": notes,
        "failed": failed,
        "out": a.out,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
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
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
