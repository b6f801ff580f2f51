//! The covariates of a profiling model as a frozen encoding: which columns, which terms,
//! which levels of each categorical column, learnt once on the training persons and kept
//! in the scoring rule, so that a person scored a year later gets exactly the columns the
//! model was fitted on (a level the model never saw is a reason not to score, never a
//! silent zero).
//!
//! Terms are written as in the evaluation runner: a column, `col^k` (k = 2..4), a product
//! `a*b` (or `a:b`), `C(col)` for a column of numbers taken as categories; a column of text
//! is categorical. Dummies are against the first level in sorted order (R's and patsy's
//! treatment coding), so coefficients read as in `glm` and statsmodels.

use std::collections::{BTreeMap, BTreeSet};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::causal::table::{as_factor, factor_power};
use crate::columns::Table;
use crate::{Error, Result};

/// A base variable of the design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Variable {
    /// A number; `binary` when every training value was 0 or 1 (its average marginal
    /// effect is then the discrete change from 0 to 1, as Stata's `i.` and statsmodels'
    /// `dummy=True` compute it).
    Numeric {
        /// The column.
        column: String,
        /// Only 0 and 1 in the training data.
        binary: bool,
    },
    /// Categories: one dummy per level but the first.
    Categorical {
        /// The column.
        column: String,
        /// The levels seen in training, in sorted order; the first is the reference.
        levels: Vec<String>,
        /// How many levels were pooled because too few training persons had them: into
        /// `(other)` when they are at least two and together reach the minimum, otherwise
        /// into the most frequent level (`catch_all`). Their names are not kept: a rare
        /// value is the most identifying one, and a scoring rule outlives the data; any
        /// level the model does not know joins the same level.
        #[serde(default)]
        pooled: usize,
        /// The level pooled and unseen levels join when it is not `(other)` (the most
        /// frequent one); `None` with `(other)`, or when nothing was pooled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch_all: Option<usize>,
        /// The pooled levels' names, for the fit's notes (never saved).
        #[serde(skip)]
        pooled_names: Vec<String>,
    },
}

/// The label of the level that gathers rare categories.
pub const OTHER: &str = "(other)";

impl Variable {
    /// The column this variable reads.
    pub fn column(&self) -> &str {
        match self {
            Variable::Numeric { column, .. } | Variable::Categorical { column, .. } => column,
        }
    }
}

/// One term: a product of numeric variables raised to powers, or one categorical
/// variable (a block of dummies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Term {
    /// `Π x_v^k` over (variable index, power).
    Product {
        /// The term as written.
        name: String,
        /// (index into the variables, power).
        factors: Vec<(usize, i32)>,
    },
    /// The dummies of a categorical variable.
    Dummies {
        /// Index into the variables.
        variable: usize,
    },
}

/// The frozen encoding: variables, terms, and the names of the design's columns
/// (intercept first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    /// The variables, in order of first mention.
    pub variables: Vec<Variable>,
    /// The terms, as given.
    pub terms: Vec<Term>,
    /// Names of the design's columns: `(intercept)`, then each term's columns.
    pub names: Vec<String>,
}

/// One person's values of the variables: a number, or the index of a level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    /// A numeric variable's value.
    Number(f64),
    /// A categorical variable's level (index into its levels).
    Level(usize),
}

/// The variables of a table's rows, with why a row cannot be encoded.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Per variable, per row; `None` where the row cannot be encoded.
    pub values: Vec<Vec<Raw>>,
    /// Per row: `None` if usable, else why not (a missing value, an unseen level).
    pub unusable: Vec<Option<String>>,
}

impl Encoding {
    /// Learns the encoding of `terms` on the rows of `table` where `train` is true: the
    /// levels of each categorical column (those held by fewer than `min_level` training
    /// rows pooled into `(other)` when there are at least two such levels and together they
    /// reach `min_level`, otherwise into the most frequent level), and whether each numeric
    /// column is 0/1.
    pub fn learn(
        table: &Table,
        terms: &[String],
        train: &[bool],
        min_level: usize,
    ) -> Result<Self> {
        let mut variables: Vec<Variable> = Vec::new();
        let mut out_terms = Vec::new();
        let mut seen = BTreeSet::new();
        let index_of =
            |variables: &Vec<Variable>, col: &str| variables.iter().position(|v| v.column() == col);
        for term in terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if !seen.insert(term.to_string()) {
                return Err(Error::Param {
                    name: "covariates",
                    reason: format!("'{term}' is given twice"),
                });
            }
            let factors: Vec<&str> = term.split(['*', ':']).map(str::trim).collect();
            let forced = as_factor(term).filter(|_| factors.len() == 1);
            let text = forced.is_none()
                && factors.len() == 1
                && !term.contains('^')
                && table.is_text(term)?;
            if forced.is_some() || text {
                let col = forced.unwrap_or(term);
                if text {
                    table.refuse_stray_text(col)?;
                }
                if let Some(v) = index_of(&variables, col) {
                    if !matches!(variables[v], Variable::Categorical { .. }) {
                        return Err(categorical_and_numeric(col));
                    }
                    out_terms.push(Term::Dummies { variable: v });
                    continue;
                }
                let c = table.column(col)?;
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for i in (0..table.len()).filter(|&i| train[i]) {
                    if let Some(l) = c.label(i) {
                        *counts.entry(l).or_default() += 1;
                    }
                }
                // An identifier is no covariate, and its values must not reach a model
                // file: tax codes, or nearly one value per person.
                if counts
                    .keys()
                    .any(|l| crate::codice_fiscale::TaxCode::parse(l).is_ok())
                {
                    return Err(Error::Param {
                        name: "covariates",
                        reason: format!(
                            "'{col}' holds tax codes: an identifier cannot be a covariate"
                        ),
                    });
                }
                let seen: usize = counts.values().sum();
                if counts.len() > 100 && counts.len() * 2 > seen {
                    return Err(Error::Param {
                        name: "covariates",
                        reason: format!(
                            "'{col}' has {} values for {seen} training persons: it looks like an \
                             identifier, not a covariate; group it (e.g. province instead of \
                             municipality) or leave it out",
                            counts.len()
                        ),
                    });
                }
                // `C(col)` of numbers: levels in numeric order, as R's factor() sorts.
                let mut levels: Vec<String> = counts.keys().cloned().collect();
                if forced.is_some() {
                    levels.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                        (Ok(x), Ok(y)) => x.total_cmp(&y),
                        _ => a.cmp(b),
                    });
                }
                let rare: Vec<String> = levels
                    .iter()
                    .filter(|l| counts[*l] < min_level)
                    .cloned()
                    .collect();
                // A level of fewer than `min_level` persons gives a coefficient that speaks
                // for a handful of persons (and runs away when they share the outcome). The
                // rare levels are pooled into `(other)` when they are at least two and
                // together reach the minimum (one alone would only be renamed); otherwise
                // they join the most frequent level, as a modal-category collapse does.
                let rare_n: usize = rare.iter().map(|l| counts[l]).sum();
                let pooled = rare;
                levels.retain(|l| !pooled.contains(l));
                let mut catch_all = None;
                if !pooled.is_empty() {
                    if pooled.len() >= 2 && rare_n >= min_level {
                        levels.push(OTHER.into());
                    } else {
                        catch_all = levels
                            .iter()
                            .enumerate()
                            .max_by(|a, b| counts[a.1].cmp(&counts[b.1]).then(b.0.cmp(&a.0)))
                            .map(|(k, _)| k);
                    }
                }
                if levels.len() < 2 {
                    return Err(Error::Param {
                        name: "covariates",
                        reason: format!(
                            "'{col}' has {} value among the training persons: a model cannot \
                             learn from it; leave it out",
                            levels.len()
                        ),
                    });
                }
                variables.push(Variable::Categorical {
                    column: col.to_string(),
                    levels,
                    pooled: pooled.len(),
                    catch_all,
                    pooled_names: pooled,
                });
                out_terms.push(Term::Dummies {
                    variable: variables.len() - 1,
                });
                continue;
            }
            let mut fs = Vec::new();
            for f in factors {
                let (col, power) = factor_power(term, f)?;
                let col = col.to_string();
                if table.is_text(&col)? {
                    return Err(Error::Param {
                        name: "covariates",
                        reason: format!(
                            "'{col}' holds text; it can enter as a term of its own (dummies) \
                             but not in a power or a product"
                        ),
                    });
                }
                let v = match index_of(&variables, &col) {
                    Some(v) => {
                        if !matches!(variables[v], Variable::Numeric { .. }) {
                            return Err(categorical_and_numeric(&col));
                        }
                        v
                    }
                    None => {
                        let x = table.numeric(&col)?;
                        let binary = (0..table.len())
                            .filter(|&i| train[i] && !x[i].is_nan())
                            .all(|i| x[i] == 0.0 || x[i] == 1.0);
                        variables.push(Variable::Numeric {
                            column: col.clone(),
                            binary,
                        });
                        variables.len() - 1
                    }
                };
                fs.push((v, power));
            }
            out_terms.push(Term::Product {
                name: term.to_string(),
                factors: fs,
            });
        }
        if out_terms.is_empty() {
            return Err(Error::Param {
                name: "covariates",
                reason: "name at least one covariate".into(),
            });
        }
        let mut names = vec!["(intercept)".to_string()];
        for t in &out_terms {
            match t {
                Term::Product { name, .. } => names.push(name.clone()),
                Term::Dummies { variable } => {
                    if let Variable::Categorical { column, levels, .. } = &variables[*variable] {
                        names.extend(levels.iter().skip(1).map(|l| format!("{column}={l}")));
                    }
                }
            }
        }
        Ok(Encoding {
            variables,
            terms: out_terms,
            names,
        })
    }

    /// Number of design columns, the intercept included.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Reads the variables of every row of `table`. A row with a missing value, or with a
    /// level the model was not fitted on, is unusable (and says why).
    pub fn rows(&self, table: &Table) -> Result<Rows> {
        let n = table.len();
        let mut unusable: Vec<Option<String>> = vec![None; n];
        let mut values = Vec::with_capacity(self.variables.len());
        for v in &self.variables {
            match v {
                Variable::Numeric { column, .. } => {
                    let x = table.numeric(column)?;
                    for (i, u) in unusable.iter_mut().enumerate() {
                        if x[i].is_nan() && u.is_none() {
                            *u = Some(format!("no value of {column}"));
                        }
                    }
                    values.push(x.iter().map(|&x| Raw::Number(x)).collect());
                }
                Variable::Categorical {
                    column,
                    levels,
                    catch_all,
                    ..
                } => {
                    let c = table.column(column)?;
                    let index: BTreeMap<&str, usize> = levels
                        .iter()
                        .enumerate()
                        .map(|(k, l)| (l.as_str(), k))
                        .collect();
                    let other = index.get(OTHER).copied().or(*catch_all);
                    let mut col = Vec::with_capacity(n);
                    for (i, u) in unusable.iter_mut().enumerate() {
                        let level = match c.label(i) {
                            None => {
                                if u.is_none() {
                                    *u = Some(format!("no value of {column}"));
                                }
                                None
                            }
                            Some(l) => match index.get(l.as_str()) {
                                Some(&k) if l != OTHER || other.is_some() => Some(k),
                                // A pooled level, or one never seen in training
                                // (rarer still), joins `(other)` or the most frequent
                                // level when either gathers the rare ones.
                                _ if other.is_some() => other,
                                _ => {
                                    if u.is_none() {
                                        *u = Some(format!(
                                            "a value of {column} the model was not fitted on"
                                        ));
                                    }
                                    None
                                }
                            },
                        };
                        col.push(Raw::Level(level.unwrap_or(0)));
                    }
                    values.push(col);
                }
            }
        }
        Ok(Rows { values, unusable })
    }

    /// Writes the design row of one person's variables into `out` (`width()` long).
    pub fn encode(&self, raw: &dyn Fn(usize) -> Raw, out: &mut [f64]) {
        out[0] = 1.0;
        let mut j = 1;
        for t in &self.terms {
            match t {
                Term::Product { factors, .. } => {
                    out[j] = factors.iter().fold(1.0, |acc, &(v, k)| match raw(v) {
                        Raw::Number(x) => acc * x.powi(k),
                        Raw::Level(_) => f64::NAN,
                    });
                    j += 1;
                }
                Term::Dummies { variable } => {
                    let levels = match &self.variables[*variable] {
                        Variable::Categorical { levels, .. } => levels.len(),
                        Variable::Numeric { .. } => 1,
                    };
                    let at = match raw(*variable) {
                        Raw::Level(k) => k,
                        Raw::Number(_) => 0,
                    };
                    for k in 1..levels {
                        out[j] = f64::from(u8::from(k == at));
                        j += 1;
                    }
                }
            }
        }
    }

    /// The derivative of each design column with respect to numeric variable `v`, at one
    /// person's values (zero for columns without `v`).
    pub fn derivative(&self, v: usize, raw: &dyn Fn(usize) -> Raw, out: &mut [f64]) {
        out.fill(0.0);
        let mut j = 1;
        for t in &self.terms {
            match t {
                Term::Product { factors, .. } => {
                    if factors.iter().any(|&(u, _)| u == v) {
                        // d/dv Π x_u^k_u: the power rule on v's factors (v may appear in
                        // several, as in `age*age`), the rest as they are.
                        let num = |u: usize| match raw(u) {
                            Raw::Number(x) => x,
                            Raw::Level(_) => f64::NAN,
                        };
                        let kv: i32 = factors.iter().filter(|f| f.0 == v).map(|f| f.1).sum();
                        let rest: f64 = factors
                            .iter()
                            .filter(|f| f.0 != v)
                            .fold(1.0, |acc, &(u, k)| acc * num(u).powi(k));
                        out[j] = f64::from(kv) * num(v).powi(kv - 1) * rest;
                    }
                    j += 1;
                }
                Term::Dummies { variable } => {
                    if let Variable::Categorical { levels, .. } = &self.variables[*variable] {
                        j += levels.len() - 1;
                    }
                }
            }
        }
    }

    /// The design matrix of the usable rows of `rows` (their indices returned beside it).
    pub fn matrix(&self, rows: &Rows, pick: &[usize]) -> Array2<f64> {
        let p = self.width();
        let mut x = Array2::<f64>::zeros((pick.len(), p));
        let mut buf = vec![0.0; p];
        for (r, &i) in pick.iter().enumerate() {
            self.encode(&|v| rows.values[v][i], &mut buf);
            x.row_mut(r).iter_mut().zip(&buf).for_each(|(a, b)| *a = *b);
        }
        x
    }
}

fn categorical_and_numeric(col: &str) -> Error {
    Error::Param {
        name: "covariates",
        reason: format!("'{col}' is used both as categories and as a number; choose one"),
    }
}
