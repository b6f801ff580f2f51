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
        match cell {
            Cell::Missing | Cell::Number(..) => {
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

impl Table {
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
                let mut block = Block::new(&positions);
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
        let mut block = Block::new(&positions);
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
        use polars::prelude::DataType;
        let bad = |reason: String| Error::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let df = read::open_parquet(path)?;
        let headers: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        let positions = resolve(path, &headers, wanted, &Format::Parquet)?;
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
                    col.push(v.map_or(Cell::Missing, parse_cell), i);
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
                format: Format::Parquet,
                windows_1252_rows: 0,
                decimal_comma: Vec::new(),
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
            })
            .collect();
        let mut rows = 0usize;
        let mut lines = Vec::new();
        let mut legacy = 0usize;
        for part in parts {
            let block = part?;
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
            },
        };
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
            let values: Option<Vec<f64>> = t.levels.iter().map(|l| decimal_comma(l)).collect();
            let Some(values) = values else {
                continue;
            };
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
            let col = &mut self.columns[c];
            col.num = num;
            col.text = None;
            self.source.decimal_comma.push(name);
        }
        // In the file's order of columns.
        let at = |n: &String| {
            self.headers
                .iter()
                .position(|h| read::normalise_header(h) == read::normalise_header(n))
                .unwrap_or(usize::MAX)
        };
        self.source.decimal_comma.sort_by_key(at);
        Ok(())
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
            // A tax code is never echoed, not even in an error on the terminal.
            let shown = if crate::codice_fiscale::TaxCode::parse(value).is_ok() {
                "a tax code".to_string()
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
}

impl Block {
    fn new(positions: &[(usize, String)]) -> Self {
        Block {
            columns: positions
                .iter()
                .map(|(_, name)| Column {
                    name: name.clone(),
                    num: Vec::new(),
                    text: None,
                    dot_row: None,
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
        let row = self.lines.len();
        for ((p, _), col) in positions.iter().zip(&mut self.columns) {
            col.push(parse_cell(rec.get(*p).unwrap_or("")), row);
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
    /// The value, and whether it was written with a decimal point.
    Number(f64, bool),
    Text(&'a str),
}

fn parse_cell(raw: &str) -> Cell<'_> {
    let t = raw.trim();
    if t.is_empty() || t == "NA" || t == "." || t.eq_ignore_ascii_case("nan") {
        return Cell::Missing;
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
        std::fs::write(&p, "a;b\n1,5;1\n1.234;2\n").unwrap();
        let err = Table::read(&p, &["a", "b"]).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("line 3"), "{err}");
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
}
