//! Columns of a CSV file, parsed once: numbers where the cells are numbers, codes into
//! the distinct texts where they are not. Used by `occupa evaluate` and `occupa cluster`.
//! Bad values are errors naming the file, line and column.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Some columns of a CSV file, parsed once.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) path: PathBuf,
    pub(crate) headers: Vec<String>,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: usize,
}

/// One parsed column: numbers (NaN where missing or text) and, if any cell is text, the
/// text cells as codes into their distinct values.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) num: Vec<f64>,
    pub(crate) text: Option<TextCells>,
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
    /// Reads the columns `wanted` from a CSV file with a header row. Cells are parsed
    /// in place, and a large file without quoted fields is cut at line ends into blocks
    /// parsed on all cores (a million rows of 22 columns in about half a second).
    pub fn read(path: &Path, wanted: &[&str]) -> Result<Self> {
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
        let mut positions: Vec<(usize, String)> = Vec::new();
        for &w in wanted {
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

    pub(crate) fn column(&self, name: &str) -> Result<&Column> {
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

    pub(crate) fn bad(&self, row: usize, col: &str, reason: String) -> Error {
        Error::BadFile {
            path: self.path.clone(),
            reason: format!("line {}, column '{col}': {reason}", row + 2),
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
            return Err(self.bad(i, name, format!("{shown} is not a number")));
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
}
