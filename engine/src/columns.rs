//! Columns of a data file, parsed once: numbers where the cells are numbers, codes into
//! the distinct texts where they are not. Used by `evaluate`, `cluster` and `forecast`.
//! Files are read by [`crate::read`], the reader of every command (CSV in any separator
//! and encoding, workbooks, Parquet). In a CSV separated by `;`, tab or `|`, a column whose
//! texts are all numbers with a decimal comma (`1,5`) is numeric, as R's `read.csv2` and
//! Stata's `import delimited, decimalseparator(,)` read it. Bad values are errors naming
//! the file, line and column.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::read::{self, Format, ReadOptions, RecordView};
use crate::{Error, Result};

/// Some columns of a data file, parsed once.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) path: PathBuf,
    pub(crate) headers: Vec<String>,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: usize,
    /// The line (CSV) or row (sheet) of each data row, for messages.
    lines: Vec<u32>,
    source: SourceInfo,
}

/// How a table was read: what the commands report.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// Format, separator, encoding or sheet.
    #[serde(flatten)]
    pub format: Format,
    /// Rows decoded as Windows-1252 because they were not UTF-8.
    pub windows_1252_rows: usize,
    /// Columns read with a decimal comma.
    pub decimal_comma: Vec<String>,
    /// Columns whose numbers group thousands with a point (`1.700`, `1.234,56`), read as
    /// Italian Excel writes them in a file separated by `;`, tab or `|`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thousands_separator: Vec<String>,
    /// Cells read as missing because they hold a mark of a missing value (`n.d.`, `-`,
    /// `N/A`, `#N/D`, `null`, `?`), by mark.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub missing_marks: std::collections::BTreeMap<String, usize>,
    /// Rows with every field empty (as spreadsheets export them), skipped.
    #[serde(skip_serializing_if = "is_zero")]
    pub empty_rows_skipped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl std::fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.format)?;
        if self.windows_1252_rows > 0 {
            write!(f, "; {} rows in Windows-1252", self.windows_1252_rows)?;
        }
        if !self.decimal_comma.is_empty() {
            write!(f, "; decimal commas in {}", self.decimal_comma.join(", "))?;
        }
        if !self.thousands_separator.is_empty() {
            write!(
                f,
                "; thousands grouped with a point in {}",
                self.thousands_separator.join(", ")
            )?;
        }
        for (mark, n) in &self.missing_marks {
            write!(f, "; {n} cells '{mark}' read as missing")?;
        }
        if self.empty_rows_skipped > 0 {
            write!(f, "; {} empty rows skipped", self.empty_rows_skipped)?;
        }
        Ok(())
    }
}

/// One parsed column: numbers (NaN where missing or text) and, if any cell is text, the
/// text cells as codes into their distinct values.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) num: Vec<f64>,
    pub(crate) text: Option<TextCells>,
    /// The first row whose number was written with a decimal point (a decimal comma
    /// elsewhere in the column would make it ambiguous).
    dot_row: Option<usize>,
    /// Missing-value marks met, with their counts.
    marks: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TextCells {
    /// Per row: index into `levels`, or `u32::MAX` where the cell is not text.
    pub(crate) code: Vec<u32>,
    pub(crate) levels: Vec<String>,
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
        if let Cell::Marked(m) = cell {
            match self.marks.iter_mut().find(|(k, _)| k == m) {
                Some((_, n)) => *n += 1,
                None => self.marks.push((m.to_string(), 1)),
            }
        }
        match cell {
            Cell::Missing | Cell::Marked(_) | Cell::Number(..) => {
                self.num.push(match cell {
                    Cell::Number(v, dot) => {
                        if dot && self.dot_row.is_none() {
                            self.dot_row = Some(row);
                        }
                        v
                    }
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
        if self.dot_row.is_none() {
            self.dot_row = other.dot_row.map(|r| r + before);
        }
        for (m, n) in other.marks {
            match self.marks.iter_mut().find(|(k, _)| *k == m) {
                Some((_, c)) => *c += n,
                None => self.marks.push((m, n)),
            }
        }
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

    pub(crate) fn is_missing(&self, i: usize) -> bool {
        self.num[i].is_nan() && self.text.as_ref().is_none_or(|t| t.code[i] == u32::MAX)
    }

    /// The cell as text (numbers formatted), `None` if missing.
    pub(crate) fn label(&self, i: usize) -> Option<String> {
        if let Some(t) = &self.text
            && t.code[i] != u32::MAX
        {
            return Some(t.levels[t.code[i] as usize].clone());
        }
        let v = self.num[i];
        (!v.is_nan()).then(|| format!("{v}"))
    }
}

/// The values of one column of a table built in memory.
#[derive(Debug, Clone)]
pub enum Values {
    /// Numbers, NaN where missing.
    Numbers(Vec<f64>),
    /// Texts, `None` where missing.
    Texts(Vec<Option<String>>),
}

impl Table {
    /// A table built in memory (an analysis table): `source` says from what, and names the
    /// table in messages, whose rows are numbered from 1.
    pub fn from_values(source: &str, columns: Vec<(String, Values)>) -> Result<Self> {
        let rows = columns.first().map_or(0, |(_, v)| match v {
            Values::Numbers(x) => x.len(),
            Values::Texts(x) => x.len(),
        });
        let mut headers = Vec::with_capacity(columns.len());
        let mut cols = Vec::with_capacity(columns.len());
        for (name, values) in columns {
            let len = match &values {
                Values::Numbers(x) => x.len(),
                Values::Texts(x) => x.len(),
            };
            if len != rows || headers.contains(&name) {
                return Err(Error::Param {
                    name: "columns",
                    reason: format!("column '{name}' is repeated or has {len} rows, not {rows}"),
                });
            }
            let mut column = Column {
                name: name.clone(),
                num: Vec::new(),
                text: None,
                dot_row: None,
                marks: Vec::new(),
            };
            match values {
                Values::Numbers(x) => column.num = x,
                Values::Texts(x) => {
                    let mut t = TextCells::default();
                    column.num = vec![f64::NAN; rows];
                    t.code = x
                        .iter()
                        .map(|v| v.as_deref().map_or(u32::MAX, |s| t.intern(s)))
                        .collect();
                    column.text = Some(t);
                }
            }
            headers.push(name);
            cols.push(column);
        }
        Ok(Table {
            path: PathBuf::from(source),
            headers,
            columns: cols,
            rows,
            lines: (0..rows).map(|i| (i + 1) as u32).collect(),
            source: SourceInfo {
                format: Format::Analysis {
                    source: source.to_string(),
                },
                windows_1252_rows: 0,
                decimal_comma: Vec::new(),
                thousands_separator: Vec::new(),
                missing_marks: Default::default(),
                empty_rows_skipped: 0,
            },
        })
    }

    /// The table with one more column of numbers (NaN where missing).
    pub fn with_numeric_column(mut self, name: &str, values: Vec<f64>) -> Result<Self> {
        self.push_column(name, Values::Numbers(values))?;
        Ok(self)
    }

    /// The table with one more column of texts.
    pub fn with_text_column(mut self, name: &str, values: Vec<Option<String>>) -> Result<Self> {
        self.push_column(name, Values::Texts(values))?;
        Ok(self)
    }

    fn push_column(&mut self, name: &str, values: Values) -> Result<()> {
        let mut one = Table::from_values(name, vec![(name.to_string(), values)])?;
        if one.rows != self.rows || self.headers.iter().any(|h| h == name) {
            return Err(Error::Param {
                name: "columns",
                reason: format!(
                    "column '{name}' is repeated or has {} rows, not {}",
                    one.rows, self.rows
                ),
            });
        }
        self.headers.push(name.to_string());
        self.columns.append(&mut one.columns);
        Ok(())
    }

    /// Reads every column of a file.
    pub fn read_all(path: &Path) -> Result<Self> {
        Self::read_all_with(path, &ReadOptions::default())
    }

    /// [`Table::read_all`] with options (the sheet of a workbook).
    pub fn read_all_with(path: &Path, options: &ReadOptions) -> Result<Self> {
        let probe = Self::read_with(path, &[], options)?;
        let all: Vec<&str> = probe.headers.iter().map(String::as_str).collect();
        Self::read_with(path, &all, options)
    }

    /// Reads the columns `wanted` from a file with a header row (CSV, workbook's first
    /// sheet, Parquet). A CSV is cut into chunks at record ends and parsed on all cores
    /// (a million rows of 22 columns in about half a second).
    pub fn read(path: &Path, wanted: &[&str]) -> Result<Self> {
        Self::read_with(path, wanted, &ReadOptions::default())
    }

    /// [`Table::read`] with options (the sheet of a workbook).
    pub fn read_with(path: &Path, wanted: &[&str], options: &ReadOptions) -> Result<Self> {
        match read::kind_of(path)? {
            read::Kind::Text => Self::from_csv(path, wanted),
            read::Kind::Spreadsheet => Self::from_raw(read::read_file_with(path, options)?, wanted),
            read::Kind::Parquet => Self::from_parquet(path, wanted),
        }
    }

    fn from_csv(path: &Path, wanted: &[&str]) -> Result<Self> {
        let file = read::open_csv(path)?;
        let format = file.format();
        let positions = resolve(path, &file.header_raw, wanted, &format)?;
        let width = file.header.len();
        let chunks = file
            .chunks((file.body_len() / (4 * rayon::current_num_threads())).clamp(1 << 20, 1 << 24));
        let parts: Vec<Result<Block>> = chunks
            .into_par_iter()
            .map(|(line, chunk)| {
                let mut block = Block::new(&positions, file.separator != b',');
                let mut failed = None;
                file.parse_chunk(line, chunk, |line, rec, legacy| {
                    if failed.is_some() {
                        return;
                    }
                    match rec {
                        Ok(view) => block.push(&view, &positions, line, legacy),
                        Err(reason) => {
                            failed = Some(Error::BadFile {
                                path: path.to_path_buf(),
                                reason: format!(
                                    "line {line}: {reason} (the header has {width}; {format})"
                                ),
                            })
                        }
                    }
                });
                match failed {
                    Some(e) => Err(e),
                    None => Ok(block),
                }
            })
            .collect();
        let decimal_comma_allowed = file.separator != b',';
        Self::assemble(
            path,
            file.header_raw.clone(),
            &positions,
            parts,
            format,
            decimal_comma_allowed,
        )
    }

    /// From a workbook sheet (or any text records).
    fn from_raw(raw: read::RawTable, wanted: &[&str]) -> Result<Self> {
        let positions = resolve(&raw.path, &raw.header_raw, wanted, &raw.format)?;
        let mut block = Block::new(&positions, false);
        for r in &raw.rows {
            let fields = r.fields.as_ref().map_err(|reason| Error::BadFile {
                path: raw.path.clone(),
                reason: format!("row {}: {reason}", r.row),
            })?;
            block.push(&RecordView::Text(fields), &positions, r.row, false);
        }
        let path = raw.path.clone();
        Self::assemble(
            &path,
            raw.header_raw,
            &positions,
            vec![Ok(block)],
            raw.format,
            false,
        )
    }

    /// From Parquet: numeric and boolean columns are taken as numbers directly.
    fn from_parquet(path: &Path, wanted: &[&str]) -> Result<Self> {
        let df = read::open_parquet(path)?;
        Self::from_frame(path, &df, wanted, Format::Parquet)
    }

    /// A table from a data frame in memory, as the Python package hands one over from
    /// pandas, polars or pyarrow through Arrow: read exactly as a Parquet file of the same
    /// columns is (numeric and boolean columns as numbers, the rest as text cells), so
    /// that a frame and its file give the same numbers. `source` names it in errors;
    /// `wanted` are the columns to read (all when empty).
    ///
    /// ```
    /// use polars::prelude::*;
    /// use occupa_engine::columns::Table;
    /// let df = df!("age" => [30.0, 41.0], "sex" => ["F", "M"]).unwrap();
    /// let t = Table::from_dataframe("a DataFrame", &df, &[]).unwrap();
    /// assert_eq!(t.numeric("age").unwrap(), &[30.0, 41.0]);
    /// ```
    pub fn from_dataframe(
        source: &str,
        df: &polars::prelude::DataFrame,
        wanted: &[&str],
    ) -> Result<Self> {
        let all: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        let wanted: Vec<&str> = if wanted.is_empty() {
            all.iter().map(String::as_str).collect()
        } else {
            wanted.to_vec()
        };
        Self::from_frame(Path::new(source), df, &wanted, Format::Arrow)
    }

    fn from_frame(
        path: &Path,
        df: &polars::prelude::DataFrame,
        wanted: &[&str],
        format: Format,
    ) -> Result<Self> {
        use polars::prelude::DataType;
        let bad = |reason: String| Error::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let headers: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        let positions = resolve(path, &headers, wanted, &format)?;
        let n = df.height();
        let mut columns = Vec::with_capacity(positions.len());
        for (p, name) in &positions {
            let c = &df.get_columns()[*p];
            let series = c.as_materialized_series();
            let mut col = Column {
                name: name.clone(),
                num: Vec::with_capacity(n),
                text: None,
                dot_row: None,
                marks: Vec::new(),
            };
            let dtype = series.dtype();
            if dtype.is_primitive_numeric() || dtype.is_bool() {
                let f = series
                    .cast(&DataType::Float64)
                    .map_err(|e| bad(format!("column {name}: {e}")))?;
                let f = f.f64().map_err(|e| bad(e.to_string()))?;
                col.num.extend(f.iter().map(|v| v.unwrap_or(f64::NAN)));
            } else {
                let t = series
                    .cast(&DataType::String)
                    .map_err(|e| bad(format!("column {name}: {e}")))?;
                let t = t.str().map_err(|e| bad(e.to_string()))?;
                for (i, v) in t.iter().enumerate() {
                    col.push(v.map_or(Cell::Missing, |v| parse_cell(v, false)), i);
                }
            }
            columns.push(col);
        }
        if n == 0 {
            return Err(bad("no data rows".into()));
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            columns,
            rows: n,
            lines: (0..n).map(|i| (i + 2) as u32).collect(),
            source: SourceInfo {
                format,
                windows_1252_rows: 0,
                decimal_comma: Vec::new(),
                thousands_separator: Vec::new(),
                missing_marks: Default::default(),
                empty_rows_skipped: 0,
            },
        })
    }

    fn assemble(
        path: &Path,
        headers: Vec<String>,
        positions: &[(usize, String)],
        parts: Vec<Result<Block>>,
        format: Format,
        decimal_comma_allowed: bool,
    ) -> Result<Self> {
        let mut columns: Vec<Column> = positions
            .iter()
            .map(|(_, name)| Column {
                name: name.clone(),
                num: Vec::new(),
                text: None,
                dot_row: None,
                marks: Vec::new(),
            })
            .collect();
        let mut rows = 0usize;
        let mut lines = Vec::new();
        let mut legacy = 0usize;
        let mut empty = 0usize;
        for part in parts {
            let block = part?;
            empty += block.empty;
            for (col, c) in columns.iter_mut().zip(block.columns) {
                col.append(c, rows);
            }
            rows += block.lines.len();
            lines.extend(block.lines);
            legacy += block.legacy;
        }
        if rows == 0 {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!("no data rows ({format})"),
            });
        }
        let mut table = Table {
            path: path.to_path_buf(),
            headers,
            columns,
            rows,
            lines,
            source: SourceInfo {
                format,
                windows_1252_rows: legacy,
                decimal_comma: Vec::new(),
                thousands_separator: Vec::new(),
                missing_marks: Default::default(),
                empty_rows_skipped: empty,
            },
        };
        for c in &table.columns {
            for (m, n) in &c.marks {
                *table.source.missing_marks.entry(m.clone()).or_insert(0) += n;
            }
        }
        if decimal_comma_allowed {
            table.read_decimal_commas()?;
        }
        Ok(table)
    }

    /// Turns the columns whose texts are all numbers with a decimal comma into numbers.
    fn read_decimal_commas(&mut self) -> Result<()> {
        for c in 0..self.columns.len() {
            let col = &self.columns[c];
            let Some(t) = &col.text else {
                continue;
            };
            let values: Option<Vec<(f64, bool)>> =
                t.levels.iter().map(|l| italian_number(l)).collect();
            let Some(values) = values else {
                continue;
            };
            let grouped = values.iter().any(|v| v.1);
            let values: Vec<f64> = values.into_iter().map(|v| v.0).collect();
            if let Some(r) = col.dot_row {
                let first_comma = t.code.iter().position(|&k| k != u32::MAX).unwrap_or(0);
                return Err(Error::BadFile {
                    path: self.path.clone(),
                    reason: format!(
                        "column '{}' has numbers with a decimal comma (line {}) and with a point \
                         (line {}): a point may be a thousands separator there; write every \
                         number of the column one way",
                        col.name, self.lines[first_comma], self.lines[r]
                    ),
                });
            }
            let code = &t.code;
            let num: Vec<f64> = col
                .num
                .iter()
                .zip(code)
                .map(|(&v, &k)| if k == u32::MAX { v } else { values[k as usize] })
                .collect();
            let name = col.name.clone();
            let has_comma = t.levels.iter().any(|l| l.contains(','));
            let col = &mut self.columns[c];
            col.num = num;
            col.text = None;
            if has_comma {
                self.source.decimal_comma.push(name.clone());
            }
            if grouped {
                self.source.thousands_separator.push(name);
            }
        }
        // In the file's order of columns.
        let at = |n: &String| {
            self.headers
                .iter()
                .position(|h| read::normalise_header(h) == read::normalise_header(n))
                .unwrap_or(usize::MAX)
        };
        self.source.decimal_comma.sort_by_key(at);
        self.source.thousands_separator.sort_by_key(at);
        Ok(())
    }

    /// The rows where `keep` is true, in order (a cohort of a table).
    pub fn filter(&self, keep: &[bool]) -> Table {
        let rows: Vec<usize> = (0..self.rows)
            .filter(|&i| keep.get(i) == Some(&true))
            .collect();
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                num: rows.iter().map(|&i| c.num[i]).collect(),
                text: c.text.as_ref().map(|t| TextCells {
                    code: rows.iter().map(|&i| t.code[i]).collect(),
                    levels: t.levels.clone(),
                    index: t.index.clone(),
                }),
                dot_row: None,
                marks: c.marks.clone(),
            })
            .collect();
        Table {
            path: self.path.clone(),
            headers: self.headers.clone(),
            columns,
            rows: rows.len(),
            lines: rows.iter().map(|&i| self.lines[i]).collect(),
            source: self.source.clone(),
        }
    }

    /// The rows of `parts` one after the other, as one table built in memory (the
    /// analysis tables of several authorities, pooled for an estimate and never written):
    /// the columns every part has, in the first part's order.
    pub fn stack(source: &str, parts: &[&Table]) -> Result<Table> {
        let Some(first) = parts.first() else {
            return Table::from_values(source, Vec::new());
        };
        let headers: Vec<String> = first
            .headers
            .iter()
            .filter(|h| parts.iter().all(|p| p.headers.contains(h)))
            .cloned()
            .collect();
        let mut columns = Vec::with_capacity(headers.len());
        for h in &headers {
            let mut column: Option<Column> = None;
            let mut before = 0;
            for p in parts {
                let c = p.column(h)?.clone();
                match &mut column {
                    None => column = Some(c),
                    Some(acc) => acc.append(c, before),
                }
                before += p.rows;
            }
            if let Some(mut c) = column {
                c.dot_row = None;
                columns.push(c);
            }
        }
        let rows: usize = parts.iter().map(|p| p.rows).sum();
        let mut t = Table::from_values(source, Vec::new())?;
        t.headers = headers;
        t.columns = columns;
        t.rows = rows;
        t.lines = (0..rows).map(|i| (i + 1) as u32).collect();
        Ok(t)
    }

    /// Whether the table was built in memory from a store or a release (its cells are
    /// never quoted in messages).
    fn is_built(&self) -> bool {
        matches!(self.source.format, Format::Analysis { .. })
    }

    /// How the file was read.
    pub fn source(&self) -> &SourceInfo {
        &self.source
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

    pub(crate) fn column(&self, name: &str) -> Result<&Column> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "no column '{name}' ({}); the columns are: {}",
                    self.source.format,
                    self.headers.join(", ")
                ),
            })
    }

    pub(crate) fn bad(&self, row: usize, col: &str, reason: String) -> Error {
        let line = self.lines.get(row).map_or(row + 2, |&l| l as usize);
        let at = match self.source.format {
            Format::Csv { .. } => "line",
            _ => "row",
        };
        Error::BadFile {
            path: self.path.clone(),
            reason: format!("{at} {line}, column '{col}': {reason}"),
        }
    }

    /// The values of a column as numbers (booleans as 0/1), NaN where missing; `Err` at
    /// the first value that is neither.
    pub fn numeric(&self, name: &str) -> Result<&[f64]> {
        let c = self.column(name)?;
        if let Some(t) = &c.text
            && let Some(i) = t.code.iter().position(|&k| k != u32::MAX)
        {
            let value = &t.levels[t.code[i] as usize];
            // A tax code is never echoed, not even in an error on the terminal; nor is a
            // cell of a table built from a store (the error reaches the audit log).
            let shown = if crate::codice_fiscale::TaxCode::parse(value).is_ok() {
                "a tax code".to_string()
            } else if self.is_built() {
                "a text value".to_string()
            } else {
                format!("'{value}'")
            };
            let hint = if decimal_comma(value).is_some() {
                " (decimal commas are read in files separated by ';', tab or '|', not ',')"
            } else {
                ""
            };
            return Err(self.bad(i, name, format!("{shown} is not a number{hint}")));
        }
        Ok(&c.num)
    }

    /// Whether a column holds text (any present value that is not a number).
    pub(crate) fn is_text(&self, name: &str) -> Result<bool> {
        Ok(self.column(name)?.text.is_some())
    }

    /// A column read as text whose cells are mostly numbers: a few stray marks (`n.d.`,
    /// `1 700`, `>5`) in a numeric column, which as a categorical covariate would turn every
    /// number into a dummy. `Err` naming the first such cell and the count.
    pub(crate) fn refuse_stray_text(&self, name: &str) -> Result<()> {
        let c = self.column(name)?;
        let Some(t) = &c.text else {
            return Ok(());
        };
        // Texts that are numbers with a decimal comma or grouped thousands count as numbers
        // (the column stayed text only because of the stray cells).
        let numeric_level: Vec<bool> = t
            .levels
            .iter()
            .map(|l| italian_number(l).is_some())
            .collect();
        let numbers = (0..self.rows)
            .filter(|&i| match t.code[i] {
                u32::MAX => !c.num[i].is_nan(),
                k => numeric_level[k as usize],
            })
            .count();
        let texts: Vec<usize> = (0..self.rows)
            .filter(|&i| t.code[i] != u32::MAX && !numeric_level[t.code[i] as usize])
            .collect();
        if numbers >= texts.len() && numbers > 0 && !texts.is_empty() {
            let i = texts[0];
            let value = if self.is_built() {
                "a text value".to_string()
            } else {
                format!("'{}'", t.levels[t.code[i] as usize])
            };
            return Err(self.bad(
                i,
                name,
                format!(
                    "{value} is not a number, in a column of numbers ({} cells of {} are \
                     not numbers); write a missing value as an empty cell or NA, or correct \
                     the cells",
                    texts.len(),
                    texts.len() + numbers
                ),
            ));
        }
        Ok(())
    }

    /// Whether each row has a value in every one of `columns` (listwise deletion, as the
    /// method runners apply it).
    pub fn complete_rows<'a>(
        &self,
        columns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<bool>> {
        let mut keep = vec![true; self.rows];
        for name in columns {
            let c = self.column(name)?;
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= !c.is_missing(i);
            }
        }
        Ok(keep)
    }

    /// Whether a column has no value at all.
    pub(crate) fn all_missing(&self, name: &str) -> Result<bool> {
        Ok((0..self.rows).all(|i| self.column(name).map(|c| c.is_missing(i)).unwrap_or(true)))
    }

    /// The values of a column as categories: the distinct values (numbers in numeric
    /// order, then texts in sorted order) and, per row, the index of its value (`None`
    /// where missing).
    pub fn categories(&self, name: &str) -> Result<(Vec<String>, Vec<Option<u32>>)> {
        let c = self.column(name)?;
        let mut numbers: Vec<f64> = c.num.iter().copied().filter(|v| !v.is_nan()).collect();
        numbers.sort_by(f64::total_cmp);
        numbers.dedup();
        let mut texts: Vec<(String, u32)> = c
            .text
            .as_ref()
            .map(|t| t.levels.iter().cloned().zip(0..).collect())
            .unwrap_or_default();
        texts.sort();
        let mut text_code = vec![0u32; texts.len()];
        for (k, (_, old)) in texts.iter().enumerate() {
            text_code[*old as usize] = (numbers.len() + k) as u32;
        }
        let codes = (0..self.rows)
            .map(|i| {
                let v = c.num[i];
                if !v.is_nan() {
                    return numbers
                        .binary_search_by(|x| x.total_cmp(&v))
                        .ok()
                        .map(|k| k as u32);
                }
                c.text
                    .as_ref()
                    .map(|t| t.code[i])
                    .filter(|&k| k != u32::MAX)
                    .map(|k| text_code[k as usize])
            })
            .collect();
        let labels = numbers
            .iter()
            .map(|v| format!("{v}"))
            .chain(texts.into_iter().map(|(t, _)| t))
            .collect();
        Ok((labels, codes))
    }
}

/// The wanted columns of a run of records.
struct Block {
    columns: Vec<Column>,
    lines: Vec<u32>,
    legacy: usize,
    /// Whether points may group thousands (a file not separated by commas).
    grouping: bool,
    /// Rows with every field empty, skipped.
    empty: usize,
}

impl Block {
    fn new(positions: &[(usize, String)], grouping: bool) -> Self {
        Block {
            grouping,
            empty: 0,
            columns: positions
                .iter()
                .map(|(_, name)| Column {
                    name: name.clone(),
                    num: Vec::new(),
                    text: None,
                    dot_row: None,
                    marks: Vec::new(),
                })
                .collect(),
            lines: Vec::new(),
            legacy: 0,
        }
    }

    fn push(
        &mut self,
        rec: &RecordView<'_>,
        positions: &[(usize, String)],
        line: usize,
        legacy: bool,
    ) {
        if (0..rec.len()).all(|i| rec.get(i).is_none_or(|f| f.trim().is_empty())) {
            self.empty += 1;
            return;
        }
        let row = self.lines.len();
        for ((p, _), col) in positions.iter().zip(&mut self.columns) {
            col.push(parse_cell(rec.get(*p).unwrap_or(""), self.grouping), row);
        }
        self.lines.push(line as u32);
        self.legacy += legacy as usize;
    }
}

/// The positions of the `wanted` columns among `headers`: the name as written, or else
/// the one header equal to it but for case, spaces and dashes (`Età` for `età`).
fn resolve(
    path: &Path,
    headers: &[String],
    wanted: &[&str],
    format: &Format,
) -> Result<Vec<(usize, String)>> {
    let mut positions: Vec<(usize, String)> = Vec::new();
    for &w in wanted {
        // A name given twice in the header is ambiguous: R would rename the second, a
        // command here would silently read the first.
        let same: Vec<usize> = (0..headers.len())
            .filter(|&i| read::normalise_header(&headers[i]) == read::normalise_header(w))
            .collect();
        if same.len() > 1 && same.iter().filter(|&&i| headers[i] == w).count() != 1 {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "column '{w}' appears {} times in the header (columns {}); rename all \
                     but one ({format})",
                    same.len(),
                    same.iter()
                        .map(|i| (i + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            });
        }
        let p = headers.iter().position(|h| h == w).or_else(|| {
            let nw = read::normalise_header(w);
            let mut it = headers
                .iter()
                .enumerate()
                .filter(|(_, h)| read::normalise_header(h) == nw);
            match (it.next(), it.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        });
        let Some(p) = p else {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "no column '{w}' ({format}); the columns are: {}",
                    headers.join(", ")
                ),
            });
        };
        if !positions.iter().any(|(q, _)| *q == p) {
            positions.push((p, w.to_string()));
        }
    }
    Ok(positions)
}

/// A number as Italian Excel writes it: a decimal comma (`-1,5`), thousands grouped with
/// points or spaces (`1.700`, `1.234,56`, `1 700,33`), or both; with whether it was
/// grouped.
fn italian_number(s: &str) -> Option<(f64, bool)> {
    let t = s.trim();
    let (int, frac) = match t.split_once(',') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    let sep = if int.contains('.') {
        Some('.')
    } else if int.contains([' ', '\u{a0}', '\u{202f}']) {
        Some(' ')
    } else {
        None
    };
    let plain_int = match sep {
        Some(sep) => {
            let norm: String = int
                .chars()
                .map(|c| {
                    if c == '\u{a0}' || c == '\u{202f}' {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            let dotted = norm.replace(sep, ".");
            if !grouped_integer(&dotted) {
                return None;
            }
            dotted.replace('.', "")
        }
        None => int.to_string(),
    };
    let text = match frac {
        Some(f) => format!("{plain_int},{f}"),
        None if sep.is_some() => plain_int.clone(),
        None => return None,
    };
    let v = match frac {
        Some(_) => decimal_comma(&text)?,
        None => text.parse::<f64>().ok().filter(|v| v.is_finite())?,
    };
    Some((v, sep.is_some()))
}

/// A number written with a decimal comma and no point (`-1,5`, `3,0`, `,5`).
fn decimal_comma(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.contains('.') || t.matches(',').count() != 1 {
        return None;
    }
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = body.split_once(',')?;
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    t.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

enum Cell<'a> {
    Missing,
    /// A mark of a missing value other than an empty cell or `NA`.
    Marked(&'a str),
    /// The value, and whether it was written with a decimal point.
    Number(f64, bool),
    Text(&'a str),
}

/// Marks of a missing value that offices' exports and Italian Excel write (`#N/D` is
/// Excel's `#N/A` in Italian), compared without case.
const MISSING_MARKS: [&str; 11] = [
    "n.d.", "n.d", "nd", "n/d", "n/a", "#n/d", "#n/a", "null", "-", "?", "na",
];

use crate::value::grouped_integer;

/// A cell. `grouping`: in a file separated by `;`, tab or `|` (Italian Excel's), an
/// integer grouped by thousands with points stays text, to be read by
/// [`italian_number`] with its column, never as a decimal number (`1.700` is 1700 there).
fn parse_cell(raw: &str, grouping: bool) -> Cell<'_> {
    let t = raw.trim();
    if t.is_empty() || t == "NA" || t == "." || t.eq_ignore_ascii_case("nan") {
        return Cell::Missing;
    }
    if MISSING_MARKS.iter().any(|m| t.eq_ignore_ascii_case(m)) {
        return Cell::Marked(t);
    }
    if grouping && grouped_integer(t) {
        return Cell::Text(t);
    }
    if t.eq_ignore_ascii_case("true") {
        return Cell::Number(1.0, false);
    }
    if t.eq_ignore_ascii_case("false") {
        return Cell::Number(0.0, false);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Cell::Number(v, t.contains('.')),
        _ => Cell::Text(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tax_code_in_a_numeric_column_is_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "cf,x\nRSSMRA85T10A562S,1\n").unwrap();
        let t = Table::read(&path, &["cf", "x"]).unwrap();
        let err = t.numeric("cf").unwrap_err().to_string();
        assert!(err.contains("a tax code is not a number"), "{err}");
        assert!(!err.contains("RSSMRA"), "{err}");
        std::fs::write(&path, "cf,x\nabc,1\n").unwrap();
        let t = Table::read(&path, &["cf", "x"]).unwrap();
        assert!(
            t.numeric("cf")
                .unwrap_err()
                .to_string()
                .contains("'abc' is not a number")
        );
    }

    #[test]
    fn an_italian_excel_csv_gives_the_numbers_of_the_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.csv");
        let italian = dir.path().join("italian.csv");
        std::fs::write(
            &plain,
            "treat,y,età,area\n1,2.5,30,Forlì\n0,-0.125,41,Roma\n1,3,,Forlì\n",
        )
        .unwrap();
        // `;`, decimal commas, Windows-1252 (à = E0, ì = EC), CRLF, as Excel saves it.
        std::fs::write(
            &italian,
            b"treat;y;Et\xe0;area\r\n1;2,5;30;Forl\xec\r\n0;-0,125;41;Roma\r\n1;3;;Forl\xec\r\n",
        )
        .unwrap();
        let a = Table::read(&plain, &["treat", "y", "età", "area"]).unwrap();
        let b = Table::read(&italian, &["treat", "y", "età", "area"]).unwrap();
        for c in ["treat", "y", "età"] {
            let (x, y) = (a.numeric(c).unwrap(), b.numeric(c).unwrap());
            assert_eq!(x.len(), y.len());
            for (u, v) in x.iter().zip(y) {
                assert!(
                    u.to_bits() == v.to_bits() || (u.is_nan() && v.is_nan()),
                    "{c}"
                );
            }
        }
        assert_eq!(a.categories("area").unwrap(), b.categories("area").unwrap());
        let src = b.source();
        assert_eq!(src.decimal_comma, vec!["y".to_string()]);
        assert_eq!(src.windows_1252_rows, 2);
        let said = src.to_string();
        assert!(
            said.contains("';'") && said.contains("decimal commas in y"),
            "{said}"
        );
    }

    #[test]
    fn a_column_mixing_decimal_commas_and_points_is_refused_naming_both_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a;b\n1,5;1\n1.25;2\n").unwrap();
        let err = Table::read(&p, &["a", "b"]).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("line 3"), "{err}");
        // `1.234` beside `1,5` is Italian throughout: a thousands point.
        std::fs::write(&p, "a;b\n1,5;1\n1.234;2\n").unwrap();
        let t = Table::read(&p, &["a", "b"]).unwrap();
        assert_eq!(t.numeric("a").unwrap(), [1.5, 1234.0]);
        // With `,` as the separator a decimal comma can only be quoted, and is not read.
        std::fs::write(&p, "a,b\n\"1,5\",1\n").unwrap();
        let t = Table::read(&p, &["a", "b"]).unwrap();
        let err = t.numeric("a").unwrap_err().to_string();
        assert!(
            err.contains("decimal commas are read in files separated by"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_column_error_says_how_the_file_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "treat;y;x\n1;2;3\n").unwrap();
        let err = Table::read(&p, &["w"]).unwrap_err().to_string();
        assert!(
            err.contains("no column 'w'") && err.contains("separated by ';'"),
            "{err}"
        );
    }

    #[test]
    fn thousands_grouped_with_points_are_read_as_italian_excel_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.csv");
        // The grouped values only start late (a chunk of their own would not know).
        let mut text = String::from("prov;v;w\n");
        for i in 0..50 {
            text.push_str(&format!("TO;{};{}\n", 900 + i, "0,5"));
        }
        text.push_str("TO;1.010;1.234,5\nTO;12.345.678;-2,25\n;;\n");
        std::fs::write(&p, text).unwrap();
        let t = Table::read(&p, &["v", "w"]).unwrap();
        assert_eq!(t.len(), 52, "the empty row is skipped");
        assert_eq!(t.source().empty_rows_skipped, 1);
        let v = t.numeric("v").unwrap();
        assert_eq!(v[50], 1010.0);
        assert_eq!(v[51], 12_345_678.0);
        assert_eq!(t.numeric("w").unwrap()[50], 1234.5);
        assert_eq!(t.source().thousands_separator, ["v", "w"]);
        // In a comma-separated file a point is a decimal point.
        let p = dir.path().join("c.csv");
        std::fs::write(&p, "v\n1.010\n2\n").unwrap();
        assert_eq!(
            Table::read(&p, &["v"]).unwrap().numeric("v").unwrap()[0],
            1.01
        );
        // Grouped thousands and decimal points in one column: refused, not guessed.
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "v;x\n1.010;1\n2.5;2\n").unwrap();
        assert!(Table::read(&p, &["v"]).is_err());
    }

    #[test]
    fn marks_of_missing_values_are_missing_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "a;b\n1,5;2\nn.d.;3\n#N/D;-\n4;?\n").unwrap();
        let t = Table::read(&p, &["a", "b"]).unwrap();
        let a = t.numeric("a").unwrap();
        assert_eq!(a[0], 1.5);
        assert!(a[1].is_nan() && a[2].is_nan());
        assert!(t.numeric("b").unwrap()[2].is_nan());
        let marks = &t.source().missing_marks;
        assert_eq!(marks.get("n.d."), Some(&1));
        assert_eq!(marks.get("#N/D"), Some(&1));
        assert_eq!(marks.get("-"), Some(&1));
        assert_eq!(marks.get("?"), Some(&1));
    }

    #[test]
    fn a_column_named_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "id;esito;esito\n1;2;3\n").unwrap();
        let e = Table::read(&p, &["esito"]).unwrap_err().to_string();
        assert!(
            e.contains("appears 2 times") && e.contains("columns 2 and 3"),
            "{e}"
        );
        // A column not asked for may repeat.
        assert!(Table::read(&p, &["id"]).is_ok());
    }

    #[test]
    fn a_stray_text_in_a_numeric_column_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "x;k\n1,5;a\n2,5;b\n>5;c\n3,5;d\n").unwrap();
        let t = Table::read(&p, &["x"]).unwrap();
        let e = t.refuse_stray_text("x").unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("'>5'"), "{e}");
        // A text column is text.
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "x;k\nnord;a\nsud;b\n5;c\n").unwrap();
        assert!(
            Table::read(&p, &["x"])
                .unwrap()
                .refuse_stray_text("x")
                .is_ok()
        );
    }
}
