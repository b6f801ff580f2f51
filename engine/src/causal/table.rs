//! Reading an evaluation's units from a CSV file: the treatment, outcome and covariate
//! columns, covariate terms (`age^2`, `educ*re74`), text columns as dummies, and cluster
//! labels. Bad values are errors naming the file, line and column; rows with a missing
//! value in a used column are left out and counted (listwise deletion, as R and Stata do).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::sample::Sample;
use crate::{Error, Result};

/// What to take from the table.
#[derive(Debug, Clone, Default)]
pub struct SampleSpec {
    /// The treatment column: 0/1 or false/true.
    pub treatment: String,
    /// The outcome column.
    pub outcome: String,
    /// Covariate terms: a column, `col^k` (k = 2..4), or a product `a*b` (or `a:b`). A
    /// column of text becomes one dummy per value but the first (in sorted order).
    pub covariates: Vec<String>,
    /// A column of cluster labels for cluster-robust standard errors.
    pub cluster: Option<String>,
    /// Columns whose combinations are strata (matching happens within a stratum).
    pub strata: Vec<String>,
    /// A column whose values define subgroups (each gets a sample of its own; a row
    /// without a value stays in the whole sample only).
    pub by: Option<String>,
}

/// The columns of a CSV file that a [`SampleSpec`] uses, parsed once.
#[derive(Debug, Clone)]
pub struct Table {
    path: PathBuf,
    headers: Vec<String>,
    columns: Vec<Column>,
    rows: usize,
}

/// One parsed column: numbers (NaN where missing or text) and, if any cell is text, the
/// text cells as codes into their distinct values.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    num: Vec<f64>,
    text: Option<TextCells>,
}

#[derive(Debug, Clone, Default)]
struct TextCells {
    /// Per row: index into `levels`, or `u32::MAX` where the cell is not text.
    code: Vec<u32>,
    levels: Vec<String>,
    index: std::collections::HashMap<String, u32>,
}

impl TextCells {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.index.get(s) {
            return c;
        }
        let c = self.levels.len() as u32;
        self.levels.push(s.to_string());
        self.index.insert(s.to_string(), c);
        c
    }
}

impl Column {
    /// Adds the cell of row `row` (the rows before it are already in).
    fn push(&mut self, cell: Cell<'_>, row: usize) {
        match cell {
            Cell::Missing | Cell::Number(_) => {
                self.num.push(match cell {
                    Cell::Number(v) => v,
                    _ => f64::NAN,
                });
                if let Some(t) = &mut self.text {
                    t.code.push(u32::MAX);
                }
            }
            Cell::Text(s) => {
                self.num.push(f64::NAN);
                let t = self.text.get_or_insert_with(|| TextCells {
                    code: vec![u32::MAX; row],
                    ..TextCells::default()
                });
                let code = t.intern(s);
                t.code.push(code);
            }
        }
    }

    /// Appends the next block's cells, `before` rows being in already.
    fn append(&mut self, other: Column, before: usize) {
        self.num.extend(other.num);
        match other.text {
            None => {
                if let Some(t) = &mut self.text {
                    t.code.resize(self.num.len(), u32::MAX);
                }
            }
            Some(o) => {
                let t = self.text.get_or_insert_with(|| TextCells {
                    code: vec![u32::MAX; before],
                    ..TextCells::default()
                });
                let map: Vec<u32> = o.levels.iter().map(|l| t.intern(l)).collect();
                t.code.extend(o.code.iter().map(
                    |&c| {
                        if c == u32::MAX { c } else { map[c as usize] }
                    },
                ));
            }
        }
    }

    fn is_missing(&self, i: usize) -> bool {
        self.num[i].is_nan() && self.text.as_ref().is_none_or(|t| t.code[i] == u32::MAX)
    }

    /// The cell as text (numbers formatted), `None` if missing.
    fn label(&self, i: usize) -> Option<String> {
        if let Some(t) = &self.text
            && t.code[i] != u32::MAX
        {
            return Some(t.levels[t.code[i] as usize].clone());
        }
        let v = self.num[i];
        (!v.is_nan()).then(|| format!("{v}"))
    }
}

/// A sample read from a table, with what was left out.
#[derive(Debug)]
pub struct Loaded {
    /// The units.
    pub sample: Sample,
    /// Rows left out because a used column was empty (or `NA`, `.`).
    pub dropped_missing: usize,
    /// Rows read.
    pub rows: usize,
    /// One sample per value of the `by` column, in sorted order of the values, or why
    /// that subgroup has none (e.g. no controls).
    pub subgroups: Vec<(String, Result<Sample>)>,
}

/// The columns a term names: `a`, `a^2`, `a*b`, `a:b^2`.
fn term_columns(term: &str) -> impl Iterator<Item = &str> {
    term.split(['*', ':'])
        .map(|f| f.split('^').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty())
}

impl Table {
    /// Reads the columns `spec` uses from a CSV file with a header row. Cells are parsed
    /// in place, and a large file without quoted fields is cut at line ends into blocks
    /// parsed on all cores (a million rows of 22 columns in about half a second).
    pub fn read_csv(path: &Path, spec: &SampleSpec) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let header_end = memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1);
        let headers: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&bytes[..header_end])
            .byte_records()
            .next()
            .transpose()
            .map_err(|e| csv_error(path, e))?
            .map(|r| {
                r.iter()
                    .map(|h| {
                        String::from_utf8_lossy(h)
                            .trim()
                            .trim_start_matches('\u{feff}')
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut wanted: Vec<&str> = vec![spec.treatment.as_str(), spec.outcome.as_str()];
        for t in &spec.covariates {
            wanted.extend(term_columns(t));
        }
        wanted.extend(spec.cluster.iter().map(String::as_str));
        wanted.extend(spec.strata.iter().map(String::as_str));
        wanted.extend(spec.by.iter().map(String::as_str));
        let mut positions: Vec<(usize, String)> = Vec::new();
        for w in wanted {
            let Some(p) = headers.iter().position(|h| h == w) else {
                return Err(Error::BadFile {
                    path: path.to_path_buf(),
                    reason: format!("no column '{w}'; the columns are: {}", headers.join(", ")),
                });
            };
            if !positions.iter().any(|(q, _)| *q == p) {
                positions.push((p, w.to_string()));
            }
        }
        let body = &bytes[header_end..];
        // Blocks start after a line end; quoted fields could hold line ends, so a file
        // with quotes is read in one block.
        let blocks = if body.len() < (4 << 20) || memchr::memchr(b'"', body).is_some() {
            1
        } else {
            4 * rayon::current_num_threads()
        };
        let mut cuts = vec![0usize];
        for k in 1..blocks {
            let at = body.len() * k / blocks;
            let at = memchr::memchr(b'\n', &body[at..]).map_or(body.len(), |i| at + i + 1);
            if at > *cuts.last().unwrap_or(&0) && at < body.len() {
                cuts.push(at);
            }
        }
        cuts.push(body.len());
        // The line number each block starts at, for error messages.
        let mut first_line = vec![2usize];
        for w in cuts.windows(2).take(cuts.len() - 2) {
            let lines = memchr::memchr_iter(b'\n', &body[w[0]..w[1]]).count();
            first_line.push(first_line.last().unwrap_or(&2) + lines);
        }
        use rayon::prelude::*;
        let parts: Vec<Result<(Vec<Column>, usize)>> = cuts
            .par_windows(2)
            .zip(first_line.par_iter())
            .map(|(w, &line)| parse_block(&body[w[0]..w[1]], &positions, headers.len(), line, path))
            .collect();
        let mut columns: Vec<Column> = positions
            .iter()
            .map(|(_, name)| Column {
                name: name.clone(),
                num: Vec::new(),
                text: None,
            })
            .collect();
        let mut rows = 0usize;
        for part in parts {
            let (cols, n) = part?;
            for (col, c) in columns.iter_mut().zip(cols) {
                col.append(c, rows);
            }
            rows += n;
        }
        if rows == 0 {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: "no data rows".into(),
            });
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            columns,
            rows,
        })
    }

    /// The column names of the file.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no data rows (never, once read).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn column(&self, name: &str) -> Result<&Column> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "no column '{name}'; the columns are: {}",
                    self.headers.join(", ")
                ),
            })
    }

    fn bad(&self, row: usize, col: &str, reason: String) -> Error {
        Error::BadFile {
            path: self.path.clone(),
            reason: format!("line {}, column '{col}': {reason}", row + 2),
        }
    }

    /// The values of a column as numbers (booleans as 0/1), NaN where missing; `Err` at
    /// the first value that is neither.
    fn numeric(&self, name: &str) -> Result<&[f64]> {
        let c = self.column(name)?;
        if let Some(t) = &c.text
            && let Some(i) = t.code.iter().position(|&k| k != u32::MAX)
        {
            return Err(self.bad(
                i,
                name,
                format!("'{}' is not a number", t.levels[t.code[i] as usize]),
            ));
        }
        Ok(&c.num)
    }

    /// Whether a column holds text (any present value that is not a number).
    fn is_text(&self, name: &str) -> Result<bool> {
        Ok(self.column(name)?.text.is_some())
    }

    /// Builds the sample `spec` asks for (the spec the table was read with, or one
    /// using fewer columns).
    pub fn sample(&self, spec: &SampleSpec) -> Result<Loaded> {
        let n = self.rows;
        let mut present = vec![true; n];
        let treat = self.numeric(&spec.treatment)?;
        for (i, &t) in treat.iter().enumerate() {
            if t.is_nan() {
                present[i] = false;
            } else if t != 0.0 && t != 1.0 {
                return Err(self.bad(
                    i,
                    &spec.treatment,
                    format!("treatment must be 0 or 1 (or false/true), not {t}"),
                ));
            }
        }
        let outcome = self.numeric(&spec.outcome)?;
        for (i, v) in outcome.iter().enumerate() {
            if v.is_nan() {
                present[i] = false;
            }
        }
        // Covariate columns, term by term; NaN marks a missing value.
        let mut names = Vec::new();
        let mut cols: Vec<Vec<f64>> = Vec::new();
        for term in &spec.covariates {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let factors: Vec<&str> = term.split(['*', ':']).map(str::trim).collect();
            if factors.len() == 1 && !term.contains('^') && self.is_text(term)? {
                let c = self.column(term)?;
                let labels: Vec<Option<String>> = (0..n).map(|i| c.label(i)).collect();
                let levels: BTreeSet<&str> = labels.iter().flatten().map(String::as_str).collect();
                for level in levels.iter().skip(1) {
                    names.push(format!("{term}={level}"));
                    cols.push(
                        labels
                            .iter()
                            .map(|l| match l {
                                None => f64::NAN,
                                Some(l) => f64::from(l == level),
                            })
                            .collect(),
                    );
                }
                continue;
            }
            let mut values: Vec<f64> = vec![1.0; n];
            for f in factors {
                let (col, power) = match f.split_once('^') {
                    Some((c, k)) => {
                        let k: i32 = k
                            .trim()
                            .parse()
                            .ok()
                            .filter(|k| (2..=4).contains(k))
                            .ok_or_else(|| Error::Param {
                                name: "covariates",
                                reason: format!("in '{term}': powers from 2 to 4 are supported"),
                            })?;
                        (c.trim(), k)
                    }
                    None => (f, 1),
                };
                if self.is_text(col)? {
                    return Err(Error::Param {
                        name: "covariates",
                        reason: format!(
                            "'{col}' holds text; it can enter as a term of its own (dummies) \
                             but not in a power or a product"
                        ),
                    });
                }
                for (v, x) in values.iter_mut().zip(self.numeric(col)?) {
                    *v *= if power == 1 { *x } else { x.powi(power) };
                }
            }
            names.push(term.to_string());
            cols.push(values);
        }
        for col in &cols {
            for (i, v) in col.iter().enumerate() {
                if v.is_nan() {
                    present[i] = false;
                }
            }
        }
        let mut label_cols: Vec<&Column> = Vec::new();
        for name in spec.cluster.iter().chain(&spec.strata) {
            let c = self.column(name)?;
            for (i, p) in present.iter_mut().enumerate() {
                if c.is_missing(i) {
                    *p = false;
                }
            }
            label_cols.push(c);
        }
        let keep: Vec<usize> = (0..n).filter(|&i| present[i]).collect();
        let dropped_missing = n - keep.len();
        let y: Vec<f64> = keep.iter().map(|&i| outcome[i]).collect();
        let d: Vec<bool> = keep.iter().map(|&i| treat[i] == 1.0).collect();
        let x = Array2::from_shape_fn((keep.len(), cols.len()), |(r, j)| cols[j][keep[r]]);
        // Labels numbered in sorted order, so they do not depend on row order.
        let number = |cs: &[&Column]| -> Vec<u32> {
            let key = |i: usize| -> Vec<String> {
                cs.iter().map(|c| c.label(i).unwrap_or_default()).collect()
            };
            let levels: BTreeSet<Vec<String>> = keep.iter().map(|&i| key(i)).collect();
            let index: std::collections::HashMap<Vec<String>, u32> = levels
                .into_iter()
                .enumerate()
                .map(|(k, l)| (l, k as u32))
                .collect();
            keep.iter().map(|&i| index[&key(i)]).collect()
        };
        let n_cluster = usize::from(spec.cluster.is_some());
        let cluster = spec.cluster.as_ref().map(|_| number(&label_cols[..1]));
        let strata = (!spec.strata.is_empty()).then(|| number(&label_cols[n_cluster..]));
        let mut subgroups = Vec::new();
        if let Some(by) = &spec.by {
            let c = self.column(by)?;
            let labels: Vec<Option<String>> = keep.iter().map(|&i| c.label(i)).collect();
            let values: BTreeSet<&String> = labels.iter().flatten().collect();
            for v in values {
                let idx: Vec<usize> = (0..keep.len())
                    .filter(|&r| labels[r].as_ref() == Some(v))
                    .collect();
                let pick =
                    |o: &Option<Vec<u32>>| o.as_ref().map(|c| idx.iter().map(|&r| c[r]).collect());
                // Covariates constant within the subgroup (the `by` column itself, or
                // its dummies) carry no information there and are left out.
                let rows = x.select(ndarray::Axis(0), &idx);
                let varying: Vec<usize> = (0..rows.ncols())
                    .filter(|&j| {
                        let c = rows.column(j);
                        c.iter().any(|v| *v != c[0])
                    })
                    .collect();
                let sub = Sample::grouped(
                    idx.iter().map(|&r| y[r]).collect(),
                    idx.iter().map(|&r| d[r]).collect(),
                    rows.select(ndarray::Axis(1), &varying),
                    varying.iter().map(|&j| names[j].clone()).collect(),
                    pick(&cluster),
                    pick(&strata),
                );
                subgroups.push((format!("{by}={v}"), sub));
            }
        }
        let sample = Sample::grouped(y, d, x, names, cluster, strata)?;
        Ok(Loaded {
            sample,
            dropped_missing,
            rows: n,
            subgroups,
        })
    }
}

/// Reads `path` and builds the sample `spec` asks for.
pub fn load_csv(path: &Path, spec: &SampleSpec) -> Result<Loaded> {
    Table::read_csv(path, spec)?.sample(spec)
}

/// Parses one block of data lines (no header) into the wanted columns.
fn parse_block(
    block: &[u8],
    positions: &[(usize, String)],
    width: usize,
    first_line: usize,
    path: &Path,
) -> Result<(Vec<Column>, usize)> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(block);
    let mut columns: Vec<Column> = positions
        .iter()
        .map(|(_, name)| Column {
            name: name.clone(),
            num: Vec::new(),
            text: None,
        })
        .collect();
    let mut rec = csv::ByteRecord::new();
    let mut rows = 0usize;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = rec
            .position()
            .map_or(first_line + rows, |p| first_line + p.line() as usize - 1);
        if rec.len() != width {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "line {line}: {} fields where the header has {width}",
                    rec.len()
                ),
            });
        }
        for ((p, _), col) in positions.iter().zip(&mut columns) {
            let raw = rec.get(*p).unwrap_or(b"");
            let cell = std::str::from_utf8(raw).map_err(|_| Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "line {line}, column '{}': not UTF-8 text; save the file as UTF-8",
                    col.name
                ),
            })?;
            col.push(parse_cell(cell), rows);
        }
        rows += 1;
    }
    Ok((columns, rows))
}

enum Cell<'a> {
    Missing,
    Number(f64),
    Text(&'a str),
}

fn parse_cell(raw: &str) -> Cell<'_> {
    let t = raw.trim();
    if t.is_empty() || t == "NA" || t == "." || t.eq_ignore_ascii_case("nan") {
        return Cell::Missing;
    }
    if t.eq_ignore_ascii_case("true") {
        return Cell::Number(1.0);
    }
    if t.eq_ignore_ascii_case("false") {
        return Cell::Number(0.0);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Cell::Number(v),
        _ => Cell::Text(t),
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        reason: match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        },
    }
}
