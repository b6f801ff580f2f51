//! Series in long format (one row per series and period) read from CSV: the period is a
//! date, a month such as `2026-03`, a quarter such as `2026Q1`, or an integer index.

use std::collections::HashMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate};

use crate::columns::Table;
use crate::{Error, Result};

/// How the file writes its periods (outputs are written the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// Integer index 1, 2, 3, …
    Index,
    /// `YYYY-MM`.
    Month,
    /// `YYYYQn`.
    Quarter,
    /// `YYYY-MM-DD`, one value per month or per quarter; `month_end` if every date is the
    /// last day of its month.
    Date {
        /// Whether dates are month ends.
        month_end: bool,
    },
}

/// Series read from one file, on one regular grid of periods.
#[derive(Debug, Clone)]
pub struct SeriesSet {
    /// Series identifiers, in order of first appearance.
    pub ids: Vec<String>,
    /// Values on the regular grid, gaps filled (see `filled`).
    pub values: Vec<Vec<f64>>,
    /// Each series' first period, in steps (months for calendar data).
    pub start: Vec<i64>,
    /// Periods missing in each series and filled by linear interpolation.
    pub filled: Vec<usize>,
    /// Per key column asked for (e.g. the region of a province), each series' value.
    pub keys: Vec<Vec<String>>,
    /// Columns of the file that were not used (no method here takes regressors, so they
    /// are reported rather than silently dropped).
    pub unused_columns: Vec<String>,
    /// The time format.
    pub format: TimeFormat,
    /// Step between periods: 1 (index or monthly), 3 (quarterly) or 12 (yearly) months.
    pub step: i64,
    /// How the file was read.
    pub source: crate::columns::SourceInfo,
    /// Series left out, with why (no value in any period).
    pub left_out: Vec<(String, String)>,
}

impl SeriesSet {
    /// The series that take a single value in every period, with that value: they are
    /// forecast as that value, with intervals of zero width, which the caller should say.
    pub fn constant_series(&self) -> Vec<(usize, f64)> {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, y)| y.len() > 1 && y.iter().all(|v| *v == y[0]))
            .map(|(i, y)| (i, y[0]))
            .collect()
    }

    /// The season length the calendar implies: 12 for monthly, 4 for quarterly, else 1.
    pub fn natural_season(&self) -> usize {
        match (self.format, self.step) {
            (TimeFormat::Index, _) => 1,
            (_, 1) => 12,
            (_, 3) => 4,
            _ => 1,
        }
    }

    /// The label of period `p` (in steps since the format's origin).
    pub fn label(&self, p: i64) -> String {
        match self.format {
            TimeFormat::Index => p.to_string(),
            TimeFormat::Month => format!("{}-{:02}", p.div_euclid(12), p.rem_euclid(12) + 1),
            TimeFormat::Quarter => {
                format!("{}Q{}", p.div_euclid(12), p.rem_euclid(12) / 3 + 1)
            }
            TimeFormat::Date { month_end } => {
                let (y, m) = (p.div_euclid(12) as i32, p.rem_euclid(12) as u32 + 1);
                let first = NaiveDate::from_ymd_opt(y, m, 1);
                let date = if month_end {
                    first
                        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
                        .and_then(|d| d.pred_opt())
                } else {
                    first
                };
                date.map_or_else(
                    || format!("{y}-{m:02}"),
                    |d| d.format("%Y-%m-%d").to_string(),
                )
            }
        }
    }

    /// Reads `path`: columns `id`, `time` and `value`. A value that is not a number, a
    /// period that cannot be read or that repeats within a series is an error naming the
    /// line; missing periods and empty values are filled by linear interpolation and
    /// counted.
    pub fn read(path: &Path, id: &str, time: &str, value: &str) -> Result<Self> {
        Self::read_with_keys(path, &[id], time, value, &[])
    }

    /// As [`SeriesSet::read`], with a series identified by several columns (joined by
    /// `/` in its name) and the values of `keys` columns, which must be constant within a
    /// series (the region of a province, the sector of an occupation).
    pub fn read_with_keys(
        path: &Path,
        id_columns: &[&str],
        time: &str,
        value: &str,
        keys: &[&str],
    ) -> Result<Self> {
        Self::read_file(
            path,
            id_columns,
            time,
            value,
            keys,
            &crate::read::ReadOptions::default(),
        )
    }

    /// [`SeriesSet::read_with_keys`] for any file the reader takes (the sheet of a
    /// workbook in `options`).
    pub fn read_file(
        path: &Path,
        id_columns: &[&str],
        time: &str,
        value: &str,
        keys: &[&str],
        options: &crate::read::ReadOptions,
    ) -> Result<Self> {
        let mut wanted: Vec<&str> = id_columns.to_vec();
        wanted.extend([time, value]);
        wanted.extend(keys);
        let table = Table::read_with(path, &wanted, options)?;
        Self::from_table(&table, id_columns, time, value, keys)
    }

    /// The series of a table already read (a file, or a series table built from a store).
    pub fn from_table(
        table: &Table,
        id_columns: &[&str],
        time: &str,
        value: &str,
        keys: &[&str],
    ) -> Result<Self> {
        let path = table.path.as_path();
        let mut wanted: Vec<&str> = id_columns.to_vec();
        wanted.extend([time, value]);
        wanted.extend(keys);
        let id = id_columns.join("/");
        let id = id.as_str();
        let id_parts: Vec<(Vec<String>, Vec<Option<u32>>)> = id_columns
            .iter()
            .map(|c| table.categories(c))
            .collect::<Result<_>>()?;
        let key_parts: Vec<(Vec<String>, Vec<Option<u32>>)> = keys
            .iter()
            .map(|c| table.categories(c))
            .collect::<Result<_>>()?;
        // One code per row for the (possibly composite) identifier.
        let mut id_levels: Vec<String> = Vec::new();
        let mut composite: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut id_codes: Vec<Option<u32>> = Vec::with_capacity(table.len());
        for row in 0..table.len() {
            let parts: Option<Vec<u32>> = id_parts.iter().map(|p| p.1[row]).collect();
            id_codes.push(parts.map(|parts| {
                let next = composite.len() as u32;
                *composite.entry(parts.clone()).or_insert_with(|| {
                    let label: Vec<&str> = parts
                        .iter()
                        .zip(&id_parts)
                        .map(|(&c, p)| p.0[c as usize].as_str())
                        .collect();
                    id_levels.push(label.join("/"));
                    next
                })
            }));
        }
        let (time_levels, time_codes) = table.categories(time)?;
        let values = table.numeric(value)?;
        // Parse each distinct time label once.
        let mut format: Option<TimeFormat> = None;
        let mut all_month_end = true;
        let mut parsed: Vec<i64> = Vec::with_capacity(time_levels.len());
        for label in &time_levels {
            let (f, p, month_end) = parse_period(label).ok_or_else(|| {
                let row = time_codes
                    .iter()
                    .position(|c| c.map(|c| &time_levels[c as usize]) == Some(label))
                    .unwrap_or(0);
                table.bad(
                    row,
                    time,
                    format!(
                        "'{label}' is not a period: write dates as 2026-03-31, months as 2026-03, \
                         quarters as 2026Q1, or integer indices"
                    ),
                )
            })?;
            all_month_end &= month_end;
            let f = match f {
                TimeFormat::Date { .. } => TimeFormat::Date { month_end: false },
                other => other,
            };
            match format {
                None => format = Some(f),
                Some(g) if g == f => {}
                Some(g) => {
                    return Err(Error::BadFile {
                        path: path.to_path_buf(),
                        reason: format!(
                            "column '{time}' mixes period formats ({g:?} and {f:?} in '{label}'); \
                             write every period the same way"
                        ),
                    });
                }
            }
            parsed.push(p);
        }
        let mut format = format.ok_or_else(|| Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("column '{time}' has no periods"),
        })?;
        if let TimeFormat::Date { .. } = format {
            format = TimeFormat::Date {
                month_end: all_month_end,
            };
        }
        // Months written as YYYYMM (202301, as many offices export them) look like
        // integers; read as indices they would leave 88 empty periods a year to invent.
        if format == TimeFormat::Index
            && time_levels.iter().all(|l| {
                let l = l.trim();
                l.len() == 6
                    && l.bytes().all(|b| b.is_ascii_digit())
                    && (1900..=2100).contains(&l[..4].parse::<i64>().unwrap_or(0))
                    && (1..=12).contains(&l[4..].parse::<i64>().unwrap_or(0))
            })
        {
            format = TimeFormat::Month;
            for p in parsed.iter_mut() {
                *p = (*p / 100) * 12 + (*p % 100) - 1;
            }
        }
        // Rows per series, by first appearance.
        let mut order: Vec<u32> = Vec::new();
        let mut rows_of: HashMap<u32, Vec<usize>> = HashMap::new();
        for (row, code) in id_codes.iter().enumerate() {
            let Some(code) = code else {
                return Err(table.bad(row, id, "the series identifier is empty".into()));
            };
            rows_of
                .entry(*code)
                .or_insert_with(|| {
                    order.push(*code);
                    Vec::new()
                })
                .push(row);
        }
        // The step: the greatest common divisor of the gaps between periods.
        let mut step = 0i64;
        for rows in rows_of.values() {
            let mut ps: Vec<i64> = rows
                .iter()
                .filter_map(|&r| time_codes[r].map(|c| parsed[c as usize]))
                .collect();
            ps.sort_unstable();
            for w in ps.windows(2) {
                step = gcd(step, w[1] - w[0]);
            }
        }
        if step == 0 {
            step = match format {
                TimeFormat::Index | TimeFormat::Month | TimeFormat::Date { .. } => 1,
                TimeFormat::Quarter => 3,
            };
        }
        let mut set = SeriesSet {
            source: table.source().clone(),
            unused_columns: table
                .headers()
                .iter()
                .filter(|h| {
                    let h = crate::read::normalise_header(h);
                    !wanted.iter().any(|w| crate::read::normalise_header(w) == h)
                })
                .cloned()
                .collect(),
            keys: vec![Vec::new(); keys.len()],
            ids: Vec::new(),
            values: Vec::new(),
            start: Vec::new(),
            filled: Vec::new(),
            format,
            step,
            left_out: Vec::new(),
        };
        for code in order {
            let rows = &rows_of[&code];
            let mut points: Vec<(i64, f64, usize)> = Vec::with_capacity(rows.len());
            for &r in rows {
                let Some(tc) = time_codes[r] else {
                    return Err(table.bad(r, time, "the period is empty".into()));
                };
                points.push((parsed[tc as usize], values[r], r));
            }
            points.sort_by_key(|p| p.0);
            for w in points.windows(2) {
                if w[0].0 == w[1].0 {
                    return Err(table.bad(
                        w[1].2,
                        time,
                        format!(
                            "series '{}' has period '{}' twice (also on line {}); aggregate first",
                            id_levels[code as usize],
                            time_levels[time_codes[w[1].2].unwrap_or(0) as usize],
                            w[0].2 + 2
                        ),
                    ));
                }
            }
            let first = points[0].0;
            let last = points[points.len() - 1].0;
            let span = (last - first) / step + 1;
            // A mistyped period (20260101 among 1, 2, 3) would open a gap of millions of
            // periods to fill: refuse rather than allocate it.
            if span > 100_000 || span > 20 * points.len() as i64 + 1_000 {
                return Err(table.bad(
                    points[points.len() - 1].2,
                    time,
                    format!(
                        "series '{}' spans {span} periods with only {} values; check the \
                         periods (a mistyped year or index?)",
                        id_levels[code as usize],
                        points.len()
                    ),
                ));
            }
            let len = span as usize;
            let mut y = vec![f64::NAN; len];
            for (p, v, _) in &points {
                y[((p - first) / step) as usize] = *v;
            }
            let filled = fill_gaps(&mut y);
            // A series whose periods are mostly absent from the file is a misread of its
            // periods (or of the step), not data to interpolate.
            let absent = len - points.len();
            if absent * 2 > len {
                return Err(table.bad(
                    points[0].2,
                    time,
                    format!(
                        "series '{}' has no row for {absent} of the {len} periods between its \
                         first and last; check how the periods are written (a step of {step} \
                         is assumed)",
                        id_levels[code as usize]
                    ),
                ));
            }
            if y.iter().all(|v| !v.is_finite()) {
                // Nothing to forecast from: named, not forecast as NaN.
                set.left_out.push((
                    id_levels[code as usize].clone(),
                    format!("no value in any of its {len} period(s)"),
                ));
                continue;
            }
            for (j, (levels, codes)) in key_parts.iter().enumerate() {
                let first_row = points[0].2;
                let k = codes[first_row];
                if let Some(&(_, _, r)) = points.iter().find(|p| codes[p.2] != k) {
                    return Err(table.bad(
                        r,
                        keys[j],
                        format!(
                            "series '{}' changes its {} (also line {}); a series must sit in one \
                             place of the hierarchy",
                            id_levels[code as usize],
                            keys[j],
                            first_row + 2
                        ),
                    ));
                }
                set.keys[j].push(k.map_or_else(String::new, |k| levels[k as usize].clone()));
            }
            set.ids.push(id_levels[code as usize].clone());
            set.values.push(y);
            set.start.push(first);
            set.filled.push(filled);
        }
        if set.ids.is_empty() {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "no series has a value in column '{value}' ({} series, all empty)",
                    set.left_out.len()
                ),
            });
        }
        Ok(set)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// Linear interpolation inside, the nearest value at the ends; returns how many were
/// filled. A series with no value at all stays empty of numbers (NaN).
fn fill_gaps(y: &mut [f64]) -> usize {
    let known: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    let missing = y.len() - known.len();
    if known.is_empty() || missing == 0 {
        return missing;
    }
    for i in 0..known[0] {
        y[i] = y[known[0]];
    }
    for i in known[known.len() - 1] + 1..y.len() {
        y[i] = y[known[known.len() - 1]];
    }
    for w in known.windows(2) {
        let (a, b) = (w[0], w[1]);
        for i in a + 1..b {
            let t = (i - a) as f64 / (b - a) as f64;
            y[i] = y[a] + t * (y[b] - y[a]);
        }
    }
    missing
}

/// Reads one period label: its format, its position (months since year 0 for calendar
/// formats, the integer itself for indices) and whether a date is a month end.
fn parse_period(s: &str) -> Option<(TimeFormat, i64, bool)> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some((TimeFormat::Index, i, false));
    }
    if let Ok(v) = s.parse::<f64>()
        && v.fract() == 0.0
        && v.abs() < 1e15
    {
        return Some((TimeFormat::Index, v as i64, false));
    }
    let upper = s.to_ascii_uppercase();
    if let Some((y, q)) = upper.split_once('Q') {
        let y: i64 = y.trim_end_matches(['-', ' ']).parse().ok()?;
        let q: i64 = q.parse().ok()?;
        return (1..=4)
            .contains(&q)
            .then_some((TimeFormat::Quarter, y * 12 + (q - 1) * 3, false));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let month_end = d.succ_opt().is_some_and(|n| n.month() != d.month());
        return Some((
            TimeFormat::Date { month_end: false },
            d.year() as i64 * 12 + d.month0() as i64,
            month_end,
        ));
    }
    let (y, m) = s.split_once(['-', '/'])?;
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12)
        .contains(&m)
        .then_some((TimeFormat::Month, y * 12 + m - 1, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn a_series_with_no_value_is_left_out_and_named_and_a_constant_one_is_found() {
        let f = write(
            "id;month;value\na;2026-01;1,5\na;2026-02;2\nb;2026-01;\nb;2026-02;NA\n\
             c;2026-01;7\nc;2026-02;7\n",
        );
        let s = SeriesSet::read(f.path(), "id", "month", "value").unwrap();
        assert_eq!(s.ids, vec!["a", "c"]);
        assert_eq!(s.values.len(), 2);
        assert_eq!(s.left_out.len(), 1);
        assert_eq!(s.left_out[0].0, "b");
        assert!(s.left_out[0].1.contains("no value"), "{:?}", s.left_out);
        assert_eq!(s.constant_series(), vec![(1, 7.0)]);
        // Nothing to forecast at all is an error naming the column.
        let f = write("id,month,value\na,2026-01,\na,2026-02,\n");
        let e = SeriesSet::read(f.path(), "id", "month", "value").unwrap_err();
        assert!(e.to_string().contains("'value'"), "{e}");
    }

    #[test]
    fn months_with_a_gap_are_filled_and_counted() {
        let f = write("id,date,value\na,2025-11,10\na,2026-01,14\nb,2025-12,1\nb,2026-01,2\n");
        let s = SeriesSet::read(f.path(), "id", "date", "value").unwrap();
        assert_eq!(s.ids, vec!["a", "b"]);
        assert_eq!(s.values[0], vec![10.0, 12.0, 14.0]);
        assert_eq!(s.filled, vec![1, 0]);
        assert_eq!(s.natural_season(), 12);
        assert_eq!(s.label(s.start[0] + 3), "2026-02");
    }

    #[test]
    fn quarters_and_quarterly_dates_are_recognised() {
        let f = write("id,date,value\nx,2025Q4,1\nx,2026Q1,2\n");
        let s = SeriesSet::read(f.path(), "id", "date", "value").unwrap();
        assert_eq!((s.step, s.natural_season()), (3, 4));
        assert_eq!(s.label(s.start[0] + 2 * s.step), "2026Q2");
        let f = write("id,date,value\nx,2025-12-31,1\nx,2026-03-31,2\n");
        let s = SeriesSet::read(f.path(), "id", "date", "value").unwrap();
        assert_eq!(s.natural_season(), 4);
        assert_eq!(s.label(s.start[0] + 2 * s.step), "2026-06-30");
    }

    #[test]
    fn a_mistyped_period_is_refused_not_filled() {
        let f = write("id,t,value\nx,1,5\nx,2,6\nx,20260101,7\n");
        let e = SeriesSet::read(f.path(), "id", "t", "value")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("spans"), "{e}");
    }

    #[test]
    fn bad_periods_and_repeats_name_the_line() {
        let f = write("id,date,value\nx,2026-01,1\nx,March,2\n");
        let e = SeriesSet::read(f.path(), "id", "date", "value")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("'March'"), "{e}");
        let f = write("id,date,value\nx,2026-01,1\nx,2026-01,2\n");
        let e = SeriesSet::read(f.path(), "id", "date", "value")
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        let f = write("id,date,value\nx,2026-01,1\nx,2026-02,many\n");
        let e = SeriesSet::read(f.path(), "id", "date", "value")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("not a number"), "{e}");
    }

    #[test]
    fn months_written_as_yyyymm_are_months_and_a_mostly_absent_series_is_refused() {
        let mut text = String::from("id,m,v\n");
        for y in [2023, 2024] {
            for m in 1..=12 {
                text.push_str(&format!("a,{y}{m:02},{}\n", y + m));
            }
        }
        let f = write(&text);
        let s = SeriesSet::read(f.path(), "id", "m", "v").unwrap();
        assert_eq!(s.values[0].len(), 24, "no invented periods");
        assert_eq!(s.natural_season(), 12);
        assert_eq!(s.filled, vec![0]);
        // Indices 1, 2, 50: mostly absent periods are a misread, not data to invent.
        let f = write("id,t,v\na,1,1\na,2,2\na,50,3\n");
        let e = SeriesSet::read(f.path(), "id", "t", "v")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no row for 47 of the 50 periods"), "{e}");
    }
}
