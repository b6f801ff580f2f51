//! Reading an evaluation's units from a CSV file: the treatment, outcome and covariate
//! columns, covariate terms (`age^2`, `educ*re74`), text columns as dummies, and cluster
//! labels. Bad values are errors naming the file, line and column; rows with a missing
//! value in a used column are left out and counted (listwise deletion, as R and Stata do).

use std::collections::BTreeSet;
use std::path::Path;

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
    /// The sheet of a workbook input (name or number from 1; the first by default).
    pub sheet: Option<String>,
}
use crate::columns::Column;
pub use crate::columns::Table;

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
    /// How the file was read.
    pub source: crate::columns::SourceInfo,
}

/// The columns a term names: `a`, `a^2`, `a*b`, `a:b^2`, `C(a)`.
pub(crate) fn term_columns(term: &str) -> impl Iterator<Item = &str> {
    term.split(['*', ':'])
        .map(|f| f.split('^').next().unwrap_or("").trim())
        .map(|f| as_factor(f).unwrap_or(f))
        .filter(|c| !c.is_empty())
}

/// The column of a term written `C(col)` (patsy, statsmodels) or `factor(col)` (R): a
/// column of numbers taken as categories, such as a GOL path or a profile class.
pub(crate) fn as_factor(term: &str) -> Option<&str> {
    let t = term.trim();
    t.strip_prefix("C(")
        .or_else(|| t.strip_prefix("factor("))
        .and_then(|r| r.strip_suffix(')'))
        .map(str::trim)
}
/// One factor of a product term, `col` or `col^k` (k = 2..4), as (column, power).
pub(crate) fn factor_power<'a>(term: &str, factor: &'a str) -> Result<(&'a str, i32)> {
    match factor.split_once('^') {
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
            Ok((c.trim(), k))
        }
        None => Ok((factor.trim(), 1)),
    }
}

impl Table {
    /// Reads the columns `spec` uses from a CSV file with a header row.
    pub fn read_csv(path: &Path, spec: &SampleSpec) -> Result<Self> {
        let mut wanted: Vec<&str> = vec![spec.treatment.as_str(), spec.outcome.as_str()];
        for t in &spec.covariates {
            wanted.extend(term_columns(t));
        }
        wanted.extend(spec.cluster.iter().map(String::as_str));
        wanted.extend(spec.strata.iter().map(String::as_str));
        wanted.extend(spec.by.iter().map(String::as_str));
        Table::read_with(
            path,
            &wanted,
            &crate::read::ReadOptions {
                sheet: spec.sheet.clone(),
            },
        )
    }

    /// Builds the sample `spec` asks for (the spec the table was read with, or one
    /// using fewer columns).
    pub fn sample(&self, spec: &SampleSpec) -> Result<Loaded> {
        let n = self.rows;
        let mut present = vec![true; n];
        // A column with no value would leave no row; say which.
        let mut used: Vec<&str> = vec![spec.treatment.as_str(), spec.outcome.as_str()];
        for t in &spec.covariates {
            used.extend(term_columns(t));
        }
        used.extend(spec.cluster.iter().map(String::as_str));
        used.extend(spec.strata.iter().map(String::as_str));
        for c in &used {
            if self.all_missing(c)? {
                return Err(Error::BadFile {
                    path: self.path.clone(),
                    reason: format!(
                        "column '{c}' has no value in any of its {n} rows; fill it or leave it out"
                    ),
                });
            }
        }
        let treat_words = self.treatment_words(&spec.treatment)?;
        let treat = match &treat_words {
            Some(v) => v.as_slice(),
            None => self.numeric(&spec.treatment)?,
        };
        for (i, &t) in treat.iter().enumerate() {
            if t.is_nan() {
                present[i] = false;
            } else if t != 0.0 && t != 1.0 {
                return Err(self.bad(
                    i,
                    &spec.treatment,
                    format!(
                        "treatment must be 0 or 1 (or true/false, sì/no, vero/falso, yes/no), \
                         not {t}"
                    ),
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
        let mut levels_of: Vec<Option<super::sample::Level>> = Vec::new();
        let mut cols: Vec<Vec<f64>> = Vec::new();
        for term in &spec.covariates {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let factors: Vec<&str> = term.split(['*', ':']).map(str::trim).collect();
            let forced = as_factor(term).filter(|_| factors.len() == 1);
            if forced.is_some()
                || factors.len() == 1 && !term.contains('^') && self.is_text(term)?
            {
                // Text: levels in sorted order; `C(col)`: numbers in numeric order.
                let (labels, levels): (Vec<Option<String>>, Vec<String>) = match forced {
                    Some(col) => {
                        let (levels, codes) = self.categories(col)?;
                        let labels = codes
                            .iter()
                            .map(|c| c.map(|c| levels[c as usize].clone()))
                            .collect();
                        (labels, levels)
                    }
                    None => {
                        self.refuse_stray_text(term)?;
                        let c = self.column(term)?;
                        let labels: Vec<Option<String>> = (0..n).map(|i| c.label(i)).collect();
                        let levels: BTreeSet<String> = labels.iter().flatten().cloned().collect();
                        (labels, levels.into_iter().collect())
                    }
                };
                let reference = levels.first().cloned().unwrap_or_default();
                if levels.len() < 2 {
                    // One value (a column generalised to `*` in a release): no dummy can
                    // vary. A zero column keeps it visible: it is left out as aliased, by
                    // name, instead of vanishing.
                    names.push(format!("{term}={reference} (the only value)"));
                    levels_of.push(None);
                    cols.push(
                        labels
                            .iter()
                            .map(|l| if l.is_some() { 0.0 } else { f64::NAN })
                            .collect(),
                    );
                    continue;
                }
                for level in levels.iter().skip(1) {
                    names.push(format!("{term}={level}"));
                    levels_of.push(Some(super::sample::Level {
                        factor: term.to_string(),
                        level: level.to_string(),
                        reference: reference.clone(),
                    }));
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
                let (col, power) = factor_power(term, f)?;
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
            levels_of.push(None);
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
        if keep.is_empty() {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "no row has a value in every column used ({}); each of its {n} rows misses \
                     at least one",
                    used.join(", ")
                ),
            });
        }
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
                )
                .and_then(|s| {
                    s.with_levels(varying.iter().map(|&j| levels_of[j].clone()).collect())
                });
                subgroups.push((format!("{by}={v}"), sub));
            }
            let unlabelled = labels.iter().filter(|l| l.is_none()).count();
            if unlabelled > 0 {
                subgroups.push((
                    format!("{by}=(missing)"),
                    Err(Error::Param {
                        name: "by",
                        reason: format!(
                            "{unlabelled} rows have no value of {by}: they count in the whole \
                             sample's estimate only"
                        ),
                    }),
                ));
            }
        }
        let sample = Sample::grouped(y, d, x, names, cluster, strata)?.with_levels(levels_of)?;
        Ok(Loaded {
            sample,
            dropped_missing,
            rows: n,
            subgroups,
            source: self.source().clone(),
        })
    }
}

impl Table {
    /// A treatment written in words (`sì`/`no`, `vero`/`falso` as Italian Excel writes
    /// booleans, `yes`/`no`, `true`/`false`) as 1/0, when every value of the column is one
    /// of them; `None` otherwise (the column is then read as numbers).
    fn treatment_words(&self, name: &str) -> Result<Option<Vec<f64>>> {
        let c = self.column(name)?;
        let Some(t) = &c.text else {
            return Ok(None);
        };
        let word = |s: &str| -> Option<f64> {
            match s.trim().to_lowercase().as_str() {
                "sì" | "si" | "vero" | "yes" | "true" => Some(1.0),
                "no" | "falso" | "false" => Some(0.0),
                _ => None,
            }
        };
        let levels: Option<Vec<f64>> = t.levels.iter().map(|l| word(l)).collect();
        let Some(levels) = levels else {
            return Ok(None);
        };
        // Words throughout, or numbers throughout: a `yes` among 0/1 is an error below.
        if c.num.iter().any(|v| !v.is_nan()) {
            return Ok(None);
        }
        Ok(Some(
            (0..self.rows)
                .map(|i| match t.code[i] {
                    u32::MAX => c.num[i],
                    k => levels[k as usize],
                })
                .collect(),
        ))
    }
}

/// Reads `path` and builds the sample `spec` asks for.
pub fn load_csv(path: &Path, spec: &SampleSpec) -> Result<Loaded> {
    Table::read_csv(path, spec)?.sample(spec)
}
