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

/// A borrowed view of one record's fields, without copying them when they are UTF-8.
#[derive(Debug, Clone, Copy)]
pub enum RecordView<'a> {
    /// A record whose bytes were checked to be UTF-8 (`text` is its buffer as `str`).
    Utf8 {
        /// The record.
        record: &'a csv::ByteRecord,
        /// The record's buffer, validated once.
        text: &'a str,
    },
    /// A decoded record (spreadsheets, Parquet, Windows-1252 rows).
    Text(&'a csv::StringRecord),
}

impl<'a> RecordView<'a> {
    /// Field `i` as text.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            // Slicing the validated buffer checks only the two char boundaries.
            RecordView::Utf8 { record, text } => record.range(i).and_then(|r| text.get(r)),
            RecordView::Text(r) => r.get(i),
        }
    }
    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            RecordView::Utf8 { record, .. } => record.len(),
            RecordView::Text(r) => r.len(),
        }
    }
    /// Whether the record has no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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

impl RawTable {
    /// A table read from a typed source (spreadsheet, Parquet): no separator, no legacy encoding.
    fn decoded(path: &Path, header: Vec<String>, rows: Vec<RawRow>) -> Self {
        RawTable {
            path: path.to_path_buf(),
            header,
            rows,
            legacy_encoded_rows: 0,
            separator: None,
        }
    }
}

/// Normalises a header: trims, drops a BOM, lower-cases, turns spaces and dashes into `_`.
pub fn normalise_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .trim()
        .to_lowercase()
        .replace([' ', '-', '.'], "_")
}

/// Reads a file by its extension.
pub fn read_file(path: &Path) -> Result<RawTable> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "txt" | "tsv" => read_csv(path),
        "xlsx" | "xlsm" | "xls" | "ods" => read_spreadsheet(path),
        "parquet" | "pq" => read_parquet(path),
        other => Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "unknown file type {other:?}: use .csv, .txt, .xlsx, .xls, .ods or .parquet"
            ),
        }),
    }
}

/// Windows-1252 differs from Latin-1 only in 0x80–0x9F, where Italian exports from
/// Excel carry the euro sign, curly quotes and dashes.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    if (0x80..0xA0).contains(&b) {
        HIGH[(b - 0x80) as usize]
    } else {
        b as char
    }
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

/// A CSV file held in memory, split into chunks that parse independently (in parallel):
/// a chunk ends at a newline outside quotes, so quoted fields with line breaks stay whole.
#[derive(Debug)]
pub struct CsvFile {
    /// The source file.
    pub path: PathBuf,
    bytes: Vec<u8>,
    /// The separator detected.
    pub separator: u8,
    /// Normalised header.
    pub header: Vec<String>,
    body: usize,
    body_line: usize,
}

/// Reads a CSV file and its header.
pub fn open_csv(path: &Path) -> Result<CsvFile> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    let sep = detect_separator(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sep)
        .flexible(true)
        .has_headers(false)
        .from_reader(bytes.as_slice());
    let mut rec = csv::ByteRecord::new();
    match reader.read_byte_record(&mut rec) {
        Ok(true) => {}
        _ => {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: "no header row".into(),
            });
        }
    }
    let header = decode(&rec).0.iter().map(normalise_header).collect();
    let body = reader.position().byte() as usize;
    let body_line = 1 + bytes[..body].iter().filter(|&&b| b == b'\n').count();
    Ok(CsvFile {
        path: path.to_path_buf(),
        bytes,
        separator: sep,
        header,
        body,
        body_line,
    })
}

fn decode(rec: &csv::ByteRecord) -> (csv::StringRecord, bool) {
    match csv::StringRecord::from_byte_record(rec.clone()) {
        Ok(s) => (s, false),
        Err(e) => {
            let fields: Vec<String> = e
                .into_byte_record()
                .iter()
                .map(|f| f.iter().map(|&b| cp1252(b)).collect())
                .collect();
            (csv::StringRecord::from(fields), true)
        }
    }
}

impl CsvFile {
    /// The file's bytes (without a byte-order mark).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes after the header.
    pub fn body_len(&self) -> usize {
        self.bytes.len() - self.body
    }

    /// Splits the body into chunks of about `target` bytes: (first line number, bytes).
    pub fn chunks(&self, target: usize) -> Vec<(usize, &[u8])> {
        let body = &self.bytes[self.body..];
        let mut out = Vec::new();
        let (mut start, mut line, mut start_line, mut in_quotes) =
            (0usize, self.body_line, self.body_line, false);
        for pos in memchr::memchr2_iter(b'"', b'\n', body) {
            if body[pos] == b'"' {
                in_quotes = !in_quotes;
                continue;
            }
            line += 1;
            if !in_quotes && pos + 1 - start >= target {
                out.push((start_line, &body[start..=pos]));
                start = pos + 1;
                start_line = line;
            }
        }
        if start < body.len() {
            out.push((start_line, &body[start..]));
        }
        out
    }

    /// Parses one chunk, calling `f(line, record, decoded_as_windows_1252)` with each
    /// record (blank lines skipped); a record with the wrong number of fields comes as
    /// `Err(reason)`. UTF-8 records are passed without copying.
    pub fn parse_chunk(
        &self,
        first_line: usize,
        chunk: &[u8],
        mut f: impl FnMut(usize, std::result::Result<RecordView<'_>, String>, bool),
    ) {
        let n = self.header.len();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.separator)
            .flexible(true)
            .has_headers(false)
            .from_reader(chunk);
        let mut rec = csv::ByteRecord::new();
        loop {
            let at = reader.position().byte() as usize;
            match reader.read_byte_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let line = first_line + reader.position().line() as usize - 1;
                    f(line, Err(format!("unreadable record: {e}")), false);
                    continue;
                }
            }
            // csv counts lines from the chunk's start; after skipped blank lines the reported
            // start is the first blank line, so those are added.
            let (mut start, mut line) = rec.position().map_or((at, first_line), |p| {
                (p.byte() as usize, first_line + p.line() as usize - 1)
            });
            while start < chunk.len() && (chunk[start] == b'\n' || chunk[start] == b'\r') {
                line += (chunk[start] == b'\n') as usize;
                start += 1;
            }
            if rec.len() == 1
                && rec
                    .get(0)
                    .is_some_and(|x| x.iter().all(u8::is_ascii_whitespace))
            {
                continue;
            }
            if rec.len() != n {
                f(
                    line,
                    Err(format!("expected {n} fields, found {}", rec.len())),
                    false,
                );
                continue;
            }
            if let Ok(text) = std::str::from_utf8(rec.as_slice()) {
                f(line, Ok(RecordView::Utf8 { record: &rec, text }), false);
            } else {
                let (text, _) = decode(&rec);
                f(line, Ok(RecordView::Text(&text)), true);
            }
        }
    }
}

fn read_csv(path: &Path) -> Result<RawTable> {
    let file = open_csv(path)?;
    let mut rows = Vec::new();
    let mut legacy = 0;
    for (line, chunk) in file.chunks(usize::MAX) {
        file.parse_chunk(line, chunk, |row, r, l| {
            legacy += l as usize;
            let fields = r.map(|v| {
                csv::StringRecord::from(
                    (0..v.len())
                        .map(|i| v.get(i).unwrap_or(""))
                        .collect::<Vec<_>>(),
                )
            });
            rows.push(RawRow { row, fields });
        });
    }
    Ok(RawTable {
        path: path.to_path_buf(),
        header: file.header.clone(),
        rows,
        legacy_encoded_rows: legacy,
        separator: Some(file.separator as char),
    })
}

fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => {
            if *b {
                "1".into()
            } else {
                "0".into()
            }
        }
        Data::DateTime(dt) => {
            // Excel serial days count from 1899-12-30 (the 1900 leap-year bug included).
            let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
            base.checked_add_signed(chrono::Duration::days(dt.as_f64().floor() as i64))
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

fn read_spreadsheet(path: &Path) -> Result<RawTable> {
    use calamine::Reader;
    let bad = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut wb = calamine::open_workbook_auto(path)
        .map_err(|e| bad(format!("cannot open spreadsheet: {e}")))?;
    let sheet = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| bad("the workbook has no sheet".into()))?;
    let range = wb
        .worksheet_range(&sheet)
        .map_err(|e| bad(format!("cannot read sheet {sheet:?}: {e}")))?;
    let mut it = range.rows();
    let header: Vec<String> = it
        .next()
        .ok_or_else(|| bad(format!("sheet {sheet:?} is empty")))?
        .iter()
        .map(|c| normalise_header(&cell_text(c)))
        .collect();
    let start_row = range.start().map_or(0, |(r, _)| r as usize);
    let mut rows = Vec::new();
    for (i, r) in it.enumerate() {
        let fields: Vec<String> = r.iter().map(cell_text).collect();
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(RawRow {
            row: start_row + i + 2,
            fields: Ok(csv::StringRecord::from(fields)),
        });
    }
    Ok(RawTable::decoded(path, header, rows))
}

fn read_parquet(path: &Path) -> Result<RawTable> {
    use polars::prelude::*;
    let bad = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| bad(format!("cannot read Parquet: {e}")))?;
    let header: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| normalise_header(n.as_str()))
        .collect();
    let mut text_columns = Vec::with_capacity(df.width());
    for c in df.get_columns() {
        let s = c
            .as_materialized_series()
            .cast(&DataType::String)
            .map_err(|e| bad(format!("column {}: {e}", c.name())))?;
        text_columns.push(s);
    }
    let cols: Vec<&StringChunked> = text_columns
        .iter()
        .map(|s| s.str())
        .collect::<PolarsResult<_>>()
        .map_err(|e| bad(e.to_string()))?;
    let rows = (0..df.height())
        .map(|i| {
            let fields: Vec<&str> = cols.iter().map(|c| c.get(i).unwrap_or("")).collect();
            RawRow {
                row: i + 2,
                fields: Ok(csv::StringRecord::from(fields)),
            }
        })
        .collect();
    Ok(RawTable::decoded(path, header, rows))
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
        // The header is not a data row: one data row was Windows-1252.
        assert_eq!(t.legacy_encoded_rows, 1);
    }

    #[test]
    fn chunks_never_split_a_quoted_line_break_and_keep_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        let mut text = String::from("a,b\n");
        for i in 0..200 {
            if i % 7 == 0 {
                text.push_str(&format!("{i},\"two\nlines, \"\"quoted\"\"\"\n"));
            } else {
                text.push_str(&format!("{i},x\n"));
            }
        }
        std::fs::write(&p, &text).unwrap();
        let f = open_csv(&p).unwrap();
        let whole = read_file(&p).unwrap();
        for target in [1, 10, 64, 1000] {
            let mut rows = Vec::new();
            for (line, chunk) in f.chunks(target) {
                f.parse_chunk(line, chunk, |row, r, _| {
                    rows.push((
                        row,
                        r.map(|v| {
                            (0..v.len())
                                .map(|i| v.get(i).unwrap_or("").to_string())
                                .collect::<Vec<_>>()
                        }),
                    ))
                });
            }
            assert_eq!(rows.len(), 200, "target {target}");
            for (a, b) in rows.iter().zip(&whole.rows) {
                assert_eq!(a.0, b.row);
                let want: Vec<&str> = b.fields.as_ref().unwrap().iter().collect();
                assert_eq!(a.1.as_ref().unwrap(), &want);
            }
        }
        // Row 0 is on line 2; row 1 follows a two-line record, so it is on line 4.
        assert_eq!((whole.rows[0].row, whole.rows[1].row), (2, 4));
        assert_eq!(
            whole.rows[0].fields.as_ref().unwrap().get(1),
            Some("two\nlines, \"quoted\"")
        );
    }

    #[test]
    fn ragged_rows_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a,b\n1,2\n1,2,3\n\n4,5\n").unwrap();
        let t = read_file(&p).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert!(
            t.rows[1]
                .fields
                .as_ref()
                .unwrap_err()
                .contains("expected 2 fields, found 3")
        );
        assert_eq!(t.rows[2].row, 5);
    }

    #[test]
    fn unknown_extension_names_the_fix() {
        let err = read_file(Path::new("data.json")).unwrap_err().to_string();
        assert!(err.contains("use .csv"), "{err}");
    }
}
