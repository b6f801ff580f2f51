//! One entry to forecasting: a planner's request as a serialisable [`ForecastRequest`]
//! (what a study file or the command line says), checked once into a [`ValidForecast`],
//! run on a [`SeriesSet`] in memory, giving the summary (the JSON `occupa forecast`
//! prints) and the forecast rows, which [`ForecastOutput::write_csv`] writes in the
//! contract's columns `id,time,model,mean,lo_80,hi_80,…`.
//!
//! ```
//! use occupa_engine::forecast::runner::ForecastRequest;
//!
//! let request: ForecastRequest = toml::from_str(r#"
//!     horizon = 12
//!     id = ["provincia", "settore"]
//!     time = "mese"
//!     value = "assunzioni"
//!     hierarchy = "regione;settore"
//! "#)?;
//! let valid = request.check()?;
//! assert_eq!(valid.key_columns(), ["regione", "settore"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Forecast;
use super::backtest::{Batch, Method, Selection, forecast_batch};
use super::hierarchy::{Hierarchy, Reconciliation, clip_coherent, forecast_hierarchy};
use super::input::SeriesSet;
use crate::read::ReadOptions;
use crate::{Error, Result};

fn auto() -> String {
    "auto".into()
}
fn levels() -> Vec<f64> {
    vec![80.0, 95.0]
}
fn id() -> Vec<String> {
    vec!["id".into()]
}
fn date() -> String {
    "date".into()
}
fn value() -> String {
    "value".into()
}
fn group() -> String {
    "group".into()
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// Why the season is what it is, when it was not given and the periods say nothing of a
/// calendar: an integer index could be months, and a seasonal series forecast without its
/// season loses most of what the models can do.
fn season_note(given: Option<usize>, set: &SeriesSet) -> Option<String> {
    (given.is_none() && set.format == crate::forecast::input::TimeFormat::Index).then(|| {
        "the periods are an integer index, which has no calendar: no season was used; give \
         the season (12 for monthly data, 4 for quarterly) to model one"
            .to_string()
    })
}

/// A forecast request; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// Periods ahead (e.g. 6 or 12 months).
    pub horizon: usize,
    /// auto, ets, ets:MAdM, arima, theta, otm, autotheta, comb, median, snaive or naive.
    #[serde(default = "auto")]
    pub model: String,
    /// Season length (default: 12 monthly, 4 quarterly, else 1).
    #[serde(default)]
    pub season: Option<usize>,
    /// Interval levels in percent.
    #[serde(default = "levels")]
    pub levels: Vec<f64>,
    /// Column(s) of the series identifier.
    #[serde(default = "id")]
    pub id: Vec<String>,
    /// Aggregation levels above the series for forecasts that add up (`regione;settore`,
    /// `+` joins columns).
    #[serde(default)]
    pub hierarchy: Option<String>,
    /// With a hierarchy: auto, bu, ols, wls or mint.
    #[serde(default = "auto")]
    pub reconcile: String,
    /// Column of the period.
    #[serde(default = "date")]
    pub time: String,
    /// Column of the value.
    #[serde(default = "value")]
    pub value: String,
    /// auto chooses one method for all series (group) or per series (series).
    #[serde(default = "group")]
    pub select: String,
    /// Held-out windows per series for the choice and the calibration.
    #[serde(default = "one")]
    pub windows: usize,
    /// Calibrate the intervals on the held-out errors.
    #[serde(default = "yes")]
    pub calibrate: bool,
    /// The sheet of a workbook input.
    #[serde(default)]
    pub sheet: Option<String>,
}

impl ForecastRequest {
    /// A request for `horizon` periods with every other field at its default.
    pub fn new(horizon: usize) -> Self {
        ForecastRequest {
            horizon,
            model: auto(),
            season: None,
            levels: levels(),
            id: id(),
            hierarchy: None,
            reconcile: auto(),
            time: date(),
            value: value(),
            select: group(),
            windows: one(),
            calibrate: true,
            sheet: None,
        }
    }

    /// Checks every field once.
    pub fn check(&self) -> Result<ValidForecast> {
        if self.horizon == 0 || self.horizon > 1_000 {
            return Err(Error::Param {
                name: "horizon",
                reason: format!("{}: give between 1 and 1000 periods", self.horizon),
            });
        }
        super::check_levels(&self.levels)?;
        let method = if self.model.eq_ignore_ascii_case("auto") {
            None
        } else {
            Some(Method::parse(&self.model)?)
        };
        let selection = match self.select.as_str() {
            "group" => Selection::Group,
            "series" => Selection::Series,
            other => {
                return Err(Error::Param {
                    name: "select",
                    reason: format!("{other:?}: use group or series"),
                });
            }
        };
        let reconcile = match self.reconcile.as_str() {
            "auto" => None,
            other => Some(Reconciliation::parse(other)?),
        };
        // Aggregation levels: each a list of key columns.
        let levels: Vec<Vec<String>> = self
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
        let mut key_columns: Vec<String> = Vec::new();
        for c in levels.iter().flatten() {
            if !key_columns.contains(c) {
                key_columns.push(c.clone());
            }
        }
        Ok(ValidForecast {
            request: self.clone(),
            method,
            selection,
            reconcile,
            levels,
            key_columns,
        })
    }
}

/// A checked forecast request.
#[derive(Debug, Clone)]
pub struct ValidForecast {
    request: ForecastRequest,
    method: Option<Method>,
    selection: Selection,
    reconcile: Option<Reconciliation>,
    levels: Vec<Vec<String>>,
    key_columns: Vec<String>,
}

/// The forecasts and their summary.
#[derive(Debug, Clone)]
pub struct ForecastOutput {
    /// The summary `occupa forecast` prints (without the output path).
    pub summary: Map<String, Value>,
    /// Per series (or node), its label, forecast and last observed period.
    pub rows: Vec<(String, Forecast, i64)>,
}

impl ValidForecast {
    /// The request as given.
    pub fn request(&self) -> &ForecastRequest {
        &self.request
    }

    /// The columns the hierarchy needs besides the identifier.
    pub fn key_columns(&self) -> Vec<&str> {
        self.key_columns.iter().map(String::as_str).collect()
    }

    /// Reads the series the request names from a file (any format the reader takes).
    pub fn read(&self, path: &Path) -> Result<SeriesSet> {
        let r = &self.request;
        let ids: Vec<&str> = r.id.iter().map(String::as_str).collect();
        SeriesSet::read_file(
            path,
            &ids,
            &r.time,
            &r.value,
            &self.key_columns(),
            &ReadOptions {
                sheet: r.sheet.clone(),
            },
        )
    }

    /// The series the request names from a table already in memory (a series table
    /// built from a store: [`crate::analysis::series_table`]).
    pub fn series(&self, table: &crate::columns::Table) -> Result<SeriesSet> {
        let r = &self.request;
        let ids: Vec<&str> = r.id.iter().map(String::as_str).collect();
        SeriesSet::from_table(table, &ids, &r.time, &r.value, &self.key_columns())
    }

    /// Whether the forecasts must add up over a hierarchy.
    pub fn is_hierarchical(&self) -> bool {
        self.request.hierarchy.is_some()
    }

    /// Forecasts the series; `progress` is called once per series done (flat requests).
    ///
    /// Without `season`, the season is the calendar's (12 for months, 4 for quarters); an
    /// integer period index has none, which the summary's `season_note` says.
    pub fn run(&self, set: &SeriesSet, progress: &(dyn Fn() + Sync)) -> Result<ForecastOutput> {
        let r = &self.request;
        let season = r.season.unwrap_or_else(|| set.natural_season());
        let batch = Batch {
            method: self.method,
            selection: self.selection,
            season,
            horizon: r.horizon,
            levels: r.levels.clone(),
            windows: r.windows.max(1),
            calibrate: r.calibrate,
        };
        if self.is_hierarchical() {
            return self.run_hierarchy(set, &batch);
        }
        let result = forecast_batch(&set.values, &batch, progress)?;
        let mut notes = Vec::new();
        let mut methods: std::collections::BTreeMap<String, usize> = Default::default();
        let mut failed = Vec::new();
        let mut clipped = 0usize;
        let mut rows = Vec::new();
        for (i, s) in result.series.iter().enumerate() {
            let id = &set.ids[i];
            let s = match s {
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
            rows.push((id.clone(), fc, last));
        }
        if !failed.is_empty() && failed.len() == set.ids.len() {
            return Err(Error::Estimation {
                method: "forecast",
                reason: format!("no series could be forecast; first: {}", failed[0]),
            });
        }
        let summary = json!({
            "input": set.source,
            "left_out": left_out(set),
            "constant": constant(set),
            "series": set.ids.len(),
            "forecast": set.ids.len() - failed.len(),
            "horizon": r.horizon,
            "season": season,
            "season_note": season_note(r.season, set),
            "model_asked": r.model,
            "models_used": methods,
            "backtest_mase": result.group_mase.iter().map(|(m, v)| (m.name(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
            "backtest": result.scores,
            "calibration": result.calibration.iter().map(|(m, c)| json!({
                "model": m.name(),
                "held_out_values": c.n_scores,
                "factors": c.factors.iter().zip(&r.levels).map(|(f, l)| (fmt_level(*l), f.clone())).collect::<std::collections::BTreeMap<_, _>>(),
            })).collect::<Vec<_>>(),
            "negative_means_clipped": clipped,
            "columns_not_used": set.unused_columns,
            "notes": notes,
            "failed": failed,
        });
        Ok(ForecastOutput {
            summary: into_map(summary),
            rows,
        })
    }

    fn run_hierarchy(&self, set: &SeriesSet, batch: &Batch) -> Result<ForecastOutput> {
        let r = &self.request;
        let (len, start) = (set.values[0].len(), set.start[0]);
        if let Some(i) =
            (0..set.ids.len()).find(|&i| set.values[i].len() != len || set.start[i] != start)
        {
            return Err(Error::Param {
                name: "hierarchy",
                reason: format!(
                    "series '{}' covers {} periods from {} but '{}' covers {} from {}: \
                     reconciliation needs every series over the same periods",
                    set.ids[i],
                    set.values[i].len(),
                    set.label(set.start[i]),
                    set.ids[0],
                    len,
                    set.label(start)
                ),
            });
        }
        let keys: Vec<(String, Vec<String>)> = self
            .levels
            .iter()
            .map(|cols| {
                let per_series = (0..set.ids.len())
                    .map(|i| {
                        cols.iter()
                            .map(|c| {
                                let j = self.key_columns.iter().position(|k| k == c).unwrap_or(0);
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
        let mut out = forecast_hierarchy(&h, &set.values, batch, self.reconcile)?;
        let counts = set.values.iter().flatten().all(|&v| v >= 0.0);
        if counts {
            clip_coherent(&h, &mut out.forecasts);
        }
        let last = start + (len as i64 - 1) * set.step;
        let rows = h
            .labels
            .iter()
            .zip(&out.forecasts)
            .map(|(l, f)| (l.clone(), f.clone(), last))
            .collect();
        let summary = json!({
            "input": set.source,
            "left_out": left_out(set),
            "constant": constant(set),
            "series": set.ids.len(),
            "nodes": h.len(),
            "horizon": r.horizon,
            "season": batch.season,
            "season_note": season_note(r.season, set),
            "model_asked": r.model,
            "reconciliation": out.method.name(),
            "reconciliation_asked": r.reconcile,
            "mint_shrinkage": out.lambda,
            "backtest_mase": out.backtest,
            "counts_clipped_at_zero": counts,
            "columns_not_used": set.unused_columns,
        });
        Ok(ForecastOutput {
            summary: into_map(summary),
            rows,
        })
    }
}

impl ForecastOutput {
    /// The forecasts as the columns of the contract's CSV (`id`, `time`, `model`, `mean`,
    /// then `lo_L` and `hi_L` per level), one entry per series and period ahead: what the
    /// Python package turns into a DataFrame, with the numbers `write_csv` prints.
    pub fn columns(&self, set: &SeriesSet, levels: &[f64], horizon: usize) -> Map<String, Value> {
        let (mut id, mut time, mut model, mut mean) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut bounds: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); levels.len()];
        for (sid, fc, last) in &self.rows {
            for k in 0..horizon {
                id.push(json!(sid));
                time.push(json!(set.label(last + (k as i64 + 1) * set.step)));
                model.push(json!(fc.model));
                mean.push(json!(fc.mean[k]));
                for (b, iv) in bounds.iter_mut().zip(&fc.intervals) {
                    b.0.push(iv.lower[k]);
                    b.1.push(iv.upper[k]);
                }
            }
        }
        let mut out = Map::new();
        out.insert("id".into(), Value::Array(id));
        out.insert("time".into(), Value::Array(time));
        out.insert("model".into(), Value::Array(model));
        out.insert("mean".into(), Value::Array(mean));
        for (l, (lo, hi)) in levels.iter().zip(bounds) {
            let l = fmt_level(*l);
            out.insert(format!("lo_{l}"), json!(lo));
            out.insert(format!("hi_{l}"), json!(hi));
        }
        out
    }

    /// Writes the rows atomically (temporary file, then rename) in the contract's
    /// columns, one `lo_L,hi_L` pair per level.
    pub fn write_csv(
        &self,
        out: &Path,
        set: &SeriesSet,
        levels: &[f64],
        horizon: usize,
    ) -> Result<()> {
        crate::store::write_atomic(out, |f| {
            let io = |e: std::io::Error| Error::io(out, e);
            let mut f = std::io::BufWriter::new(f);
            let mut header = String::from("id,time,model,mean");
            for l in levels {
                let l = fmt_level(*l);
                header.push_str(&format!(",lo_{l},hi_{l}"));
            }
            writeln!(f, "{header}").map_err(io)?;
            for (id, fc, last) in &self.rows {
                for k in 0..horizon {
                    let mut line = format!(
                        "{},{},{},{}",
                        crate::export::csv_field(id),
                        set.label(last + (k as i64 + 1) * set.step),
                        crate::export::csv_field(&fc.model),
                        fc.mean[k]
                    );
                    for iv in &fc.intervals {
                        line.push_str(&format!(",{},{}", iv.lower[k], iv.upper[k]));
                    }
                    writeln!(f, "{line}").map_err(io)?;
                }
            }
            f.flush().map_err(io)
        })
    }
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The series with no value, named with why (they are not forecast).
fn left_out(set: &SeriesSet) -> Vec<Value> {
    set.left_out
        .iter()
        .map(|(id, why)| json!({"id": id, "reason": why}))
        .collect()
}

/// The series that never varied: forecast as their value, with intervals of zero width.
fn constant(set: &SeriesSet) -> Vec<Value> {
    set.constant_series()
        .into_iter()
        .map(|(i, v)| {
            json!({
                "id": set.ids[i],
                "value": v,
                "note": "the same value in every period: forecast as that value, with intervals of zero width",
            })
        })
        .collect()
}

/// `80` for 80, `99_5` for 99.5: the level as it appears in column names.
pub fn fmt_level(l: f64) -> String {
    if l.fract() == 0.0 {
        format!("{}", l as i64)
    } else {
        format!("{l}").replace('.', "_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(toml::from_str::<ForecastRequest>("horizon = 12\nhorizn = 3").is_err());
        for (text, field) in [
            ("horizon = 0", "horizon"),
            ("horizon = 6\nmodel = \"prophet\"", "model"),
            ("horizon = 6\nselect = \"all\"", "select"),
            ("horizon = 6\nreconcile = \"magic\"", "reconcil"),
            ("horizon = 6\nlevels = [120.0]", "levels"),
        ] {
            let r: ForecastRequest = toml::from_str(text).unwrap();
            let e = r.check().unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
