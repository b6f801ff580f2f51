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
}

/// A CSV table held as text, read once.
#[derive(Debug, Clone)]
pub struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<csv::StringRecord>,
}

/// A sample read from a table, with what was left out.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The units.
    pub sample: Sample,
    /// Rows left out because a used column was empty (or `NA`, `.`).
    pub dropped_missing: usize,
    /// Rows read.
    pub rows: usize,
}

impl Table {
    /// Reads a CSV file with a header row.
    pub fn read_csv(path: &Path) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| csv_error(path, e))?;
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            rows.push(rec.map_err(|e| csv_error(path, e))?);
        }
        if rows.is_empty() {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: "no data rows".into(),
            });
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// The column names.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows (never, once read).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn column(&self, name: &str) -> Result<usize> {
        self.headers
            .iter()
            .position(|h| h == name)
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

    /// The values of a column as numbers (booleans as 0/1), `None` where missing; `Err`
    /// at the first value that is neither.
    fn numeric(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let c = self.column(name)?;
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| match parse_cell(r.get(c).unwrap_or("")) {
                Cell::Missing => Ok(None),
                Cell::Number(v) => Ok(Some(v)),
                Cell::Text(t) => Err(self.bad(i, name, format!("'{t}' is not a number"))),
            })
            .collect()
    }

    /// Whether a column holds text (any present value that is not a number).
    fn is_text(&self, name: &str) -> Result<bool> {
        let c = self.column(name)?;
        Ok(self
            .rows
            .iter()
            .any(|r| matches!(parse_cell(r.get(c).unwrap_or("")), Cell::Text(_))))
    }

    /// Builds the sample `spec` asks for.
    pub fn sample(&self, spec: &SampleSpec) -> Result<Loaded> {
        let n = self.rows.len();
        let mut present = vec![true; n];
        let treat = self.numeric(&spec.treatment)?;
        for (i, t) in treat.iter().enumerate() {
            match t {
                None => present[i] = false,
                Some(v) if *v == 0.0 || *v == 1.0 => {}
                Some(v) => {
                    return Err(self.bad(
                        i,
                        &spec.treatment,
                        format!("treatment must be 0 or 1 (or false/true), not {v}"),
                    ));
                }
            }
        }
        let outcome = self.numeric(&spec.outcome)?;
        for (i, v) in outcome.iter().enumerate() {
            if v.is_none() {
                present[i] = false;
            }
        }
        // Covariate columns, term by term.
        let mut names = Vec::new();
        let mut cols: Vec<Vec<Option<f64>>> = Vec::new();
        for term in &spec.covariates {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let factors: Vec<&str> = term.split(['*', ':']).map(str::trim).collect();
            if factors.len() == 1 && !term.contains('^') && self.is_text(term)? {
                let c = self.column(term)?;
                let levels: BTreeSet<&str> = self
                    .rows
                    .iter()
                    .filter_map(|r| match parse_cell(r.get(c).unwrap_or("")) {
                        Cell::Missing => None,
                        _ => r.get(c).map(str::trim),
                    })
                    .collect();
                for level in levels.iter().skip(1) {
                    names.push(format!("{term}={level}"));
                    cols.push(
                        self.rows
                            .iter()
                            .map(|r| match parse_cell(r.get(c).unwrap_or("")) {
                                Cell::Missing => None,
                                _ => Some(f64::from(r.get(c).map(str::trim) == Some(level))),
                            })
                            .collect(),
                    );
                }
                continue;
            }
            let mut values: Vec<Option<f64>> = vec![Some(1.0); n];
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
                    *v = match (*v, x) {
                        (Some(a), Some(b)) => Some(a * b.powi(power)),
                        _ => None,
                    };
                }
            }
            names.push(term.to_string());
            cols.push(values);
        }
        for col in &cols {
            for (i, v) in col.iter().enumerate() {
                if v.is_none() {
                    present[i] = false;
                }
            }
        }
        let cluster_raw: Option<Vec<&str>> = match &spec.cluster {
            Some(name) => {
                let c = self.column(name)?;
                let vals: Vec<&str> = self
                    .rows
                    .iter()
                    .map(|r| r.get(c).unwrap_or("").trim())
                    .collect();
                for (i, v) in vals.iter().enumerate() {
                    if matches!(parse_cell(v), Cell::Missing) {
                        present[i] = false;
                    }
                }
                Some(vals)
            }
            None => None,
        };
        let strata_raw: Vec<Vec<&str>> = spec
            .strata
            .iter()
            .map(|name| {
                let c = self.column(name)?;
                Ok(self
                    .rows
                    .iter()
                    .map(|r| r.get(c).unwrap_or("").trim())
                    .collect())
            })
            .collect::<Result<_>>()?;
        for col in &strata_raw {
            for (i, v) in col.iter().enumerate() {
                if matches!(parse_cell(v), Cell::Missing) {
                    present[i] = false;
                }
            }
        }
        let keep: Vec<usize> = (0..n).filter(|&i| present[i]).collect();
        let dropped_missing = n - keep.len();
        let y: Vec<f64> = keep
            .iter()
            .map(|&i| outcome[i].unwrap_or_default())
            .collect();
        let d: Vec<bool> = keep.iter().map(|&i| treat[i] == Some(1.0)).collect();
        let x = Array2::from_shape_fn((keep.len(), cols.len()), |(r, j)| {
            cols[j][keep[r]].unwrap_or_default()
        });
        // Labels numbered in sorted order, so they do not depend on row order.
        let number = |key: &dyn Fn(usize) -> Vec<String>| -> Vec<u32> {
            let levels: BTreeSet<Vec<String>> = keep.iter().map(|&i| key(i)).collect();
            let index: std::collections::HashMap<Vec<String>, u32> = levels
                .into_iter()
                .enumerate()
                .map(|(k, l)| (l, k as u32))
                .collect();
            keep.iter().map(|&i| index[&key(i)]).collect()
        };
        let cluster = cluster_raw.map(|vals| number(&|i| vec![vals[i].to_string()]));
        let strata = (!strata_raw.is_empty())
            .then(|| number(&|i| strata_raw.iter().map(|c| c[i].to_string()).collect()));
        let sample = Sample::grouped(y, d, x, names, cluster, strata)?;
        Ok(Loaded {
            sample,
            dropped_missing,
            rows: n,
        })
    }
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
