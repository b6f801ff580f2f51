//! Reading an authority's export into raw text records: CSV (`,` `;` or tab, UTF-8 or
//! Latin-1/Windows-1252, decided row by row), XLSX (first sheet) and Parquet.
//! Nothing here judges values; [`crate::schema`] does.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One data record with its position in the source.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// 1-based line (CSV) or row (spreadsheet) where the record starts; the header is 1.
    pub row: usize,
    /// Field texts; `Err` when the record is malformed as a whole.
    pub fields: std::result::Result<csv::StringRecord, String>,
}

/// A file read into text records.
#[derive(Debug)]
pub struct RawTable {
    /// The source file.
    pub path: PathBuf,
    /// Header names, trimmed, lower case, spaces as underscores.
    pub header: Vec<String>,
    /// Data records.
    pub rows: Vec<RawRow>,
    /// Records decoded as Windows-1252 because they were not valid UTF-8.
    pub legacy_encoded_rows: usize,
    /// The separator detected (CSV only).
    pub separator: Option<char>,
}

/// Normalises a header: trims, drops a BOM, lower-cases, turns spaces and dashes into `_`.
pub fn normalise_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}').trim().to_lowercase().replace([' ', '-', '.'], "_")
}

/// Reads a file by its extension.
pub fn read_file(path: &Path) -> Result<RawTable> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "txt" | "tsv" => read_csv(path),
        "xlsx" | "xlsm" | "xls" | "ods" => read_spreadsheet(path),
        "parquet" | "pq" => read_parquet(path),
        other => Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("unknown file type {other:?}: use .csv, .txt, .xlsx, .xls, .ods or .parquet"),
        }),
    }
}

/// Windows-1252 differs from Latin-1 only in 0x80–0x9F, where Italian exports from
/// Excel carry the euro sign, curly quotes and dashes.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’',
        '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    if (0x80..0xA0).contains(&b) { HIGH[(b - 0x80) as usize] } else { b as char }
}

fn detect_separator(bytes: &[u8]) -> u8 {
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut counts = [0usize; 3];
    let mut in_quotes = false;
    for &b in first_line {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => counts[0] += 1,
            b';' if !in_quotes => counts[1] += 1,
            b'\t' if !in_quotes => counts[2] += 1,
            _ => {}
        }
    }
    let seps = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], 2 - i)).unwrap_or(0);
    seps[best]
}

fn read_csv(path: &Path) -> Result<RawTable> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::BadFile { path: path.to_path_buf(), reason: "the file is empty".into() });
    }
    let sep = detect_separator(bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(sep).flexible(true).has_headers(false).from_reader(bytes);
    let mut legacy = 0usize;
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        let position_line = reader.position().line() as usize;
        match reader.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // A malformed quote or similar: csv stops here, so does the file.
                return Err(Error::BadFile { path: path.to_path_buf(), reason: format!("unreadable CSV near line {}: {e}", position_line) });
            }
        }
        let line = rec.position().map_or(position_line, |p| p.line() as usize) + 1;
        let string_rec = match csv::StringRecord::from_byte_record(rec.clone()) {
            Ok(s) => s,
            Err(e) => {
                legacy += 1;
                let fields: Vec<String> = e.into_byte_record().iter().map(|f| f.iter().map(|&b| cp1252(b)).collect()).collect();
                csv::StringRecord::from(fields)
            }
        };
        if header.is_none() {
            header = Some(string_rec.iter().map(normalise_header).collect());
            continue;
        }
        let n = header.as_ref().map_or(0, Vec::len);
        let fields = if string_rec.len() == n {
            Ok(string_rec)
        } else if string_rec.len() == 1 && string_rec.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue; // blank line
        } else {
            Err(format!("expected {n} fields, found {}", string_rec.len()))
        };
        // The line where the record starts: what a text editor or a spreadsheet shows.
        rows.push(RawRow { row: line, fields });
    }
    let header = header.ok_or_else(|| Error::BadFile { path: path.to_path_buf(), reason: "no header row".into() })?;
    Ok(RawTable { path: path.to_path_buf(), header, rows, legacy_encoded_rows: legacy, separator: Some(sep as char) })
}

fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => if *b { "1".into() } else { "0".into() },
        Data::DateTime(dt) => {
            // Excel serial days count from 1899-12-30 (the 1900 leap-year bug included).
            let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
            base.checked_add_signed(chrono::Duration::days(dt.as_f64().floor() as i64)).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

fn read_spreadsheet(path: &Path) -> Result<RawTable> {
    use calamine::Reader;
    let bad = |reason: String| Error::BadFile { path: path.to_path_buf(), reason };
    let mut wb = calamine::open_workbook_auto(path).map_err(|e| bad(format!("cannot open spreadsheet: {e}")))?;
    let sheet = wb.sheet_names().first().cloned().ok_or_else(|| bad("the workbook has no sheet".into()))?;
    let range = wb.worksheet_range(&sheet).map_err(|e| bad(format!("cannot read sheet {sheet:?}: {e}")))?;
    let mut it = range.rows();
    let header: Vec<String> = it.next().ok_or_else(|| bad(format!("sheet {sheet:?} is empty")))?.iter().map(|c| normalise_header(&cell_text(c))).collect();
    let start_row = range.start().map_or(0, |(r, _)| r as usize);
    let mut rows = Vec::new();
    for (i, r) in it.enumerate() {
        let fields: Vec<String> = r.iter().map(cell_text).collect();
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(RawRow { row: start_row + i + 2, fields: Ok(csv::StringRecord::from(fields)) });
    }
    Ok(RawTable { path: path.to_path_buf(), header, rows, legacy_encoded_rows: 0, separator: None })
}

fn read_parquet(path: &Path) -> Result<RawTable> {
    use polars::prelude::*;
    let bad = |reason: String| Error::BadFile { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file).finish().map_err(|e| bad(format!("cannot read Parquet: {e}")))?;
    let header: Vec<String> = df.get_column_names().iter().map(|n| normalise_header(n.as_str())).collect();
    let mut text_columns = Vec::with_capacity(df.width());
    for c in df.get_columns() {
        let s = c.as_materialized_series().cast(&DataType::String).map_err(|e| bad(format!("column {}: {e}", c.name())))?;
        text_columns.push(s);
    }
    let cols: Vec<&StringChunked> = text_columns.iter().map(|s| s.str()).collect::<PolarsResult<_>>().map_err(|e| bad(e.to_string()))?;
    let rows = (0..df.height())
        .map(|i| {
            let fields: Vec<&str> = cols.iter().map(|c| c.get(i).unwrap_or("")).collect();
            RawRow { row: i + 2, fields: Ok(csv::StringRecord::from(fields)) }
        })
        .collect();
    Ok(RawTable { path: path.to_path_buf(), header, rows, legacy_encoded_rows: 0, separator: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolon_latin1_rows_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        let mut bytes = b"Nome;Citt\xe0\r\nA;Forl\xec\r\nB;ok\r\n".to_vec();
        bytes.extend_from_slice("C;città\n".as_bytes());
        std::fs::write(&p, bytes).unwrap();
        let t = read_file(&p).unwrap();
        assert_eq!(t.separator, Some(';'));
        assert_eq!(t.header, vec!["nome", "città"]);
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[0].fields.as_ref().unwrap().get(1), Some("Forlì"));
        assert_eq!(t.rows[2].fields.as_ref().unwrap().get(1), Some("città"));
        assert_eq!(t.rows[0].row, 2);
        assert_eq!(t.legacy_encoded_rows, 2);
    }

    #[test]
    fn ragged_rows_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a,b\n1,2\n1,2,3\n\n4,5\n").unwrap();
        let t = read_file(&p).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert!(t.rows[1].fields.as_ref().unwrap_err().contains("expected 2 fields, found 3"));
        assert_eq!(t.rows[2].row, 5);
    }

    #[test]
    fn unknown_extension_names_the_fix() {
        let err = read_file(Path::new("data.json")).unwrap_err().to_string();
        assert!(err.contains("use .csv"), "{err}");
    }
}
