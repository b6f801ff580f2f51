//! The one reader of every command: a file into raw text records.
//!
//! - CSV and text: the separator (`,` `;` tab `|`) sniffed from the first records, with
//!   quotes respected; UTF-8 with or without a byte-order mark, UTF-16 by its mark (or by
//!   its zero bytes), and rows that are not UTF-8 decoded as Windows-1252, row by row.
//!   Quotes follow the CSV rules of R, Excel and the `csv` crate: a quote opens a quoted
//!   field only at the start of a field, anywhere else it is a character. The chunker
//!   that splits a file for parallel parsing follows the same rule, so a stray quote in
//!   an unquoted field cannot make them disagree.
//! - XLSX, XLS, ODS: any sheet (`sheet`: name or 1-based number; the first by default).
//! - Parquet: every column as text (typed readers take the numbers directly).
//!
//! Nothing here judges values; [`crate::schema`] and [`crate::columns`] do.

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
    /// Header names as written (trimmed, without a byte-order mark).
    pub header_raw: Vec<String>,
    /// Data records.
    pub rows: Vec<RawRow>,
    /// Records decoded as Windows-1252 because they were not valid UTF-8.
    pub legacy_encoded_rows: usize,
    /// How the file was read.
    pub format: Format,
}

impl RawTable {
    /// A table read from a typed source (spreadsheet, Parquet): no separator, no legacy encoding.
    fn decoded(path: &Path, header_raw: Vec<String>, rows: Vec<RawRow>, format: Format) -> Self {
        RawTable {
            path: path.to_path_buf(),
            header: header_raw.iter().map(|h| normalise_header(h)).collect(),
            header_raw,
            rows,
            legacy_encoded_rows: 0,
            format,
        }
    }

    /// The separator detected (CSV only).
    pub fn separator(&self) -> Option<char> {
        match &self.format {
            Format::Csv { separator, .. } => Some(*separator as char),
            _ => None,
        }
    }
}

/// How a file was read: what the commands report, and what errors name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum Format {
    /// Delimited text.
    Csv {
        /// The separator detected.
        #[serde(serialize_with = "as_char")]
        separator: u8,
        /// The encoding detected.
        encoding: Encoding,
    },
    /// A workbook sheet.
    Spreadsheet {
        /// The sheet read.
        sheet: String,
    },
    /// Apache Parquet.
    Parquet,
    /// An Arrow table in memory (a pandas, polars or pyarrow frame from Python).
    Arrow,
    /// Built in memory from a store or a release (an analysis table).
    Analysis {
        /// What it was built from.
        source: String,
    },
}

fn as_char<S: serde::Serializer>(b: &u8, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&separator_name(*b))
}

/// A separator as people name it.
pub fn separator_name(b: u8) -> String {
    match b {
        b'\t' => "tab".into(),
        other => (other as char).to_string(),
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Csv {
                separator,
                encoding,
            } => write!(
                f,
                "read as CSV separated by '{}', {}",
                separator_name(*separator),
                encoding.describe()
            ),
            Format::Spreadsheet { sheet } => write!(f, "read from sheet {sheet:?}"),
            Format::Parquet => write!(f, "read as Parquet"),
            Format::Arrow => write!(f, "read from an Arrow table"),
            Format::Analysis { source } => write!(f, "built from {source}"),
        }
    }
}

/// The text encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 without a byte-order mark (rows that are not UTF-8 are read as Windows-1252).
    Utf8,
    /// UTF-8 with a byte-order mark.
    Utf8Bom,
    /// UTF-16, little-endian (Excel's "Unicode text").
    Utf16Le,
    /// UTF-16, big-endian.
    Utf16Be,
}

impl Encoding {
    /// In words, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8 (rows that are not UTF-8 read as Windows-1252)",
            Encoding::Utf8Bom => "UTF-8 with a byte-order mark",
            Encoding::Utf16Le => "UTF-16 little-endian",
            Encoding::Utf16Be => "UTF-16 big-endian",
        }
    }
}

/// Options of a read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The sheet of a workbook: its name, or its number from 1. The first by default.
    pub sheet: Option<String>,
}

/// Normalises a header: trims, drops a BOM, lower-cases, turns spaces and dashes into `_`.
pub fn normalise_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .trim()
        .to_lowercase()
        .replace([' ', '-', '.'], "_")
}

/// What kind of file a path names, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.csv`, `.txt`, `.tsv`.
    Text,
    /// `.xlsx`, `.xlsm`, `.xls`, `.ods`.
    Spreadsheet,
    /// `.parquet`, `.pq`.
    Parquet,
}

/// The kind of `path`, or an error that lists the kinds read.
pub fn kind_of(path: &Path) -> Result<Kind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "txt" | "tsv" => Ok(Kind::Text),
        "xlsx" | "xlsm" | "xls" | "ods" => Ok(Kind::Spreadsheet),
        "parquet" | "pq" => Ok(Kind::Parquet),
        // No extension (a temporary file, a pipe): by the first bytes.
        "" => {
            let mut head = [0u8; 8];
            let n = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                .map_err(|e| Error::io(path, e))?;
            Ok(match &head[..n] {
                [b'P', b'A', b'R', b'1', ..] => Kind::Parquet,
                [b'P', b'K', 3, 4, ..] | [0xD0, 0xCF, 0x11, 0xE0, ..] => Kind::Spreadsheet,
                _ => Kind::Text,
            })
        }
        other => Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "unknown file type {other:?}: use .csv, .tsv, .txt, .xlsx, .xls, .ods or .parquet"
            ),
        }),
    }
}

/// Reads a file by its extension (a workbook's first sheet).
pub fn read_file(path: &Path) -> Result<RawTable> {
    read_file_with(path, &ReadOptions::default())
}

/// Reads a file by its extension, with options.
pub fn read_file_with(path: &Path, options: &ReadOptions) -> Result<RawTable> {
    match kind_of(path)? {
        Kind::Text => read_csv(path),
        Kind::Spreadsheet => read_spreadsheet(path, options.sheet.as_deref()),
        Kind::Parquet => read_parquet(path),
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

/// Candidate separators, in the order that breaks ties.
const SEPARATORS: [u8; 4] = [b';', b',', b'\t', b'|'];

/// Field counts of the first `max` records of `bytes` split by `sep`, quotes respected
/// (see [`Records`]).
fn field_counts(bytes: &[u8], sep: u8, max: usize) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut fields = 1usize;
    let mut record_start = 0usize;
    let blank = |r: &[u8]| r.iter().all(u8::is_ascii_whitespace);
    for (pos, event) in Scanner::new(sep).events(bytes, true) {
        match event {
            Event::Separator => fields += 1,
            Event::RecordEnd => {
                if fields > 1 || !blank(&bytes[record_start..pos]) {
                    counts.push(fields);
                    if counts.len() >= max {
                        return counts;
                    }
                }
                fields = 1;
                record_start = pos + 1;
            }
            Event::Other => {}
        }
    }
    if fields > 1 || !blank(&bytes[record_start..]) {
        counts.push(fields);
    }
    counts
}

/// The separator of a delimited file: the candidate that splits the header into the most
/// fields and every following record into as many (R's `read.table` and Python's
/// `csv.Sniffer` judge by the same consistency). A single column has no separator; `,`
/// is then as good as any.
fn detect_separator(bytes: &[u8]) -> u8 {
    let sample = &bytes[..bytes.len().min(1 << 16)];
    let mut best = (0usize, 0usize, b',');
    for &sep in &SEPARATORS {
        let counts = field_counts(sample, sep, 50);
        let Some(&head) = counts.first() else {
            continue;
        };
        if head < 2 {
            continue;
        }
        // The last record of a cut sample may be cut short.
        let end = if sample.len() < bytes.len() {
            counts.len().saturating_sub(1).max(1)
        } else {
            counts.len()
        };
        let body = &counts[1..end];
        let consistent = body.iter().filter(|&&n| n == head).count();
        let score = (consistent, head);
        if score > (best.0, best.1) {
            best = (consistent, head, sep);
        }
    }
    best.2
}

/// What the scanner reports at each byte that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// A separator outside quotes.
    Separator,
    /// A line feed that ends a record (not inside a quoted field).
    RecordEnd,
    /// A quote or a line feed that changed nothing at the record level.
    Other,
}

/// The CSV quoting rules of the `csv` crate (and of R and Excel) at the level of records:
/// a quote opens a quoted field only as the first byte of a field; in a quoted field `""`
/// is a quote and a single `"` closes it; after it, and in unquoted fields, quotes are
/// plain characters. Separators and line feeds inside quoted fields belong to the field.
struct Scanner {
    sep: u8,
}

impl Scanner {
    fn new(sep: u8) -> Self {
        Scanner { sep }
    }

    /// `(position, event)` for every quote and line feed of `bytes`, in order, and for
    /// every separator when `separators` is set (the chunker needs none: whether a quote
    /// opens a field is told by the byte before it, which is faster than stopping at every
    /// separator).
    fn events<'b>(
        &self,
        bytes: &'b [u8],
        separators: bool,
    ) -> Box<dyn Iterator<Item = (usize, Event)> + 'b> {
        let sep = self.sep;
        let mut in_quotes = false;
        let mut step = move |pos: usize, it: &mut dyn Iterator<Item = usize>| -> (usize, Event) {
            let b = bytes[pos];
            if in_quotes {
                if b == b'"' {
                    if bytes.get(pos + 1) == Some(&b'"') {
                        // An escaped quote: skip its second half.
                        it.next();
                    } else {
                        in_quotes = false;
                    }
                }
                return (pos, Event::Other);
            }
            if b == b'"' {
                if pos == 0 || bytes[pos - 1] == sep || bytes[pos - 1] == b'\n' {
                    in_quotes = true;
                }
                (pos, Event::Other)
            } else if b == b'\n' {
                (pos, Event::RecordEnd)
            } else {
                (pos, Event::Separator)
            }
        };
        if separators {
            let mut it = memchr::memchr3_iter(sep, b'"', b'\n', bytes);
            Box::new(std::iter::from_fn(move || {
                let pos = it.next()?;
                Some(step(pos, &mut it))
            }))
        } else {
            let mut it = memchr::memchr2_iter(b'"', b'\n', bytes);
            Box::new(std::iter::from_fn(move || {
                let pos = it.next()?;
                Some(step(pos, &mut it))
            }))
        }
    }
}

/// A CSV file held in memory (as UTF-8 where it was UTF-16), split into chunks that parse
/// independently (in parallel): a chunk ends at a line feed that ends a record, by the same
/// quoting rules as the parser, so quoted line breaks stay whole and a stray quote in an
/// unquoted field changes nothing.
#[derive(Debug)]
pub struct CsvFile {
    /// The source file.
    pub path: PathBuf,
    bytes: Vec<u8>,
    /// The separator detected.
    pub separator: u8,
    /// The encoding detected.
    pub encoding: Encoding,
    /// Normalised header.
    pub header: Vec<String>,
    /// Header as written (trimmed).
    pub header_raw: Vec<String>,
    body: usize,
    body_line: usize,
}

/// UTF-16 text to UTF-8 bytes; an unpaired surrogate is an error naming the line.
fn utf16_to_utf8(path: &Path, bytes: &[u8], little: bool) -> Result<Vec<u8>> {
    let units = bytes.chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let mut out = String::with_capacity(bytes.len() / 2 + 16);
    let mut line = 1usize;
    for ch in char::decode_utf16(units) {
        match ch {
            Ok(c) => {
                line += (c == '\n') as usize;
                out.push(c);
            }
            Err(_) => {
                return Err(Error::BadFile {
                    path: path.to_path_buf(),
                    reason: format!(
                        "line {line}: not valid UTF-16 (an unpaired surrogate); save the file \
                         again as UTF-8 or UTF-16"
                    ),
                });
            }
        }
    }
    Ok(out.into_bytes())
}

/// UTF-16 without a byte-order mark, told by its zero bytes: text of Latin letters in
/// UTF-16 has a zero in every other byte, which no 8-bit text has.
fn unmarked_utf16(bytes: &[u8]) -> Option<bool> {
    let sample = &bytes[..bytes.len().min(512) & !1];
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let zero_odd = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&b| b == 0)
        .count();
    let zero_even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    if zero_odd * 10 >= pairs * 9 && zero_even == 0 {
        Some(true)
    } else if zero_even * 10 >= pairs * 9 && zero_odd == 0 {
        Some(false)
    } else {
        None
    }
}

/// Reads a CSV file and its header.
pub fn open_csv(path: &Path) -> Result<CsvFile> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (bytes, encoding) = if let Some(rest) = raw.strip_prefix(b"\xFF\xFE") {
        (utf16_to_utf8(path, rest, true)?, Encoding::Utf16Le)
    } else if let Some(rest) = raw.strip_prefix(b"\xFE\xFF") {
        (utf16_to_utf8(path, rest, false)?, Encoding::Utf16Be)
    } else if let Some(rest) = raw.strip_prefix(b"\xEF\xBB\xBF") {
        (rest.to_vec(), Encoding::Utf8Bom)
    } else if let Some(little) = unmarked_utf16(&raw) {
        let enc = if little {
            Encoding::Utf16Le
        } else {
            Encoding::Utf16Be
        };
        (utf16_to_utf8(path, &raw, little)?, enc)
    } else {
        (raw, Encoding::Utf8)
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    if bytes.contains(&0) {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: "the file holds zero bytes: it is not text (a spreadsheet renamed to .csv? \
                     an encoding other than UTF-8, UTF-16 or Windows-1252?); export it again as \
                     CSV in UTF-8"
                .into(),
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
    let header_raw: Vec<String> = decode(&rec)
        .0
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let header = header_raw.iter().map(|h| normalise_header(h)).collect();
    let body = reader.position().byte() as usize;
    let body_line = 1 + bytes[..body].iter().filter(|&&b| b == b'\n').count();
    Ok(CsvFile {
        path: path.to_path_buf(),
        bytes,
        separator: sep,
        encoding,
        header,
        header_raw,
        body,
        body_line,
    })
}

/// A small text file (a hierarchy, a list) as UTF-8, or as Windows-1252 where it is not
/// (what Excel saves in an Italian locale); a UTF-8 byte-order mark is dropped.
pub fn text_utf8_or_1252(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| cp1252(b)).collect(),
    }
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
    /// Chunks end where records end, by the parser's own quoting rules.
    pub fn chunks(&self, target: usize) -> Vec<(usize, &[u8])> {
        let body = &self.bytes[self.body..];
        let mut out = Vec::new();
        let (mut start, mut line, mut start_line) = (0usize, self.body_line, self.body_line);
        for (pos, event) in Scanner::new(self.separator).events(body, false) {
            // Line feeds inside quoted fields count as lines too.
            if body[pos] == b'\n' {
                line += 1;
            }
            if event == Event::RecordEnd && pos + 1 - start >= target {
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

    /// How the file was read.
    pub fn format(&self) -> Format {
        Format::Csv {
            separator: self.separator,
            encoding: self.encoding,
        }
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
        header_raw: file.header_raw.clone(),
        rows,
        legacy_encoded_rows: legacy,
        format: file.format(),
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

fn read_spreadsheet(path: &Path, sheet: Option<&str>) -> Result<RawTable> {
    use calamine::Reader;
    let bad = |reason: String| Error::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    // By content, not by extension: a workbook saved without one, or misnamed, still opens.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut wb = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("cannot open spreadsheet: {e}")))?;
    let names = wb.sheet_names();
    let sheet = match sheet {
        None => names
            .first()
            .cloned()
            .ok_or_else(|| bad("the workbook has no sheet".into()))?,
        Some(want) => names
            .iter()
            .find(|n| n.as_str() == want)
            .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(want)))
            .or_else(|| {
                want.parse::<usize>()
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| names.get(i))
            })
            .cloned()
            .ok_or_else(|| {
                bad(format!(
                    "no sheet {want:?}; the sheets are: {} (name one, or give its number from 1)",
                    names
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    let range = wb
        .worksheet_range(&sheet)
        .map_err(|e| bad(format!("cannot read sheet {sheet:?}: {e}")))?;
    let mut it = range.rows();
    let header_raw: Vec<String> = it
        .next()
        .ok_or_else(|| bad(format!("sheet {sheet:?} is empty")))?
        .iter()
        .map(|c| cell_text(c).trim().to_string())
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
    Ok(RawTable::decoded(
        path,
        header_raw,
        rows,
        Format::Spreadsheet { sheet },
    ))
}

/// A Parquet file as a data frame, errors naming the file.
pub(crate) fn open_parquet(path: &Path) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{ParquetReader, SerReader};
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("cannot read Parquet: {e}"),
        })
}

fn read_parquet(path: &Path) -> Result<RawTable> {
    let df = open_parquet(path)?;
    RawTable::from_dataframe(path, &df, Format::Parquet)
}

impl RawTable {
    /// A typed frame's text records, as a Parquet file of it is read: every cell as
    /// polars casts it to text, a missing one empty. The Python package reads an Arrow
    /// table through it, so that a frame and its Parquet file give the same records.
    /// `path` names the source in messages.
    pub fn from_dataframe(
        path: &Path,
        df: &polars::prelude::DataFrame,
        format: Format,
    ) -> Result<RawTable> {
        use polars::prelude::*;
        let bad = |reason: String| Error::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let header_raw: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.as_str().trim().to_string())
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
        Ok(RawTable::decoded(path, header_raw, rows, format))
    }
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
        assert_eq!(t.separator(), Some(';'));
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

    fn records_of(path: &Path, target: usize) -> Vec<(usize, Vec<String>)> {
        let f = open_csv(path).unwrap();
        let mut rows = Vec::new();
        for (line, chunk) in f.chunks(target) {
            f.parse_chunk(line, chunk, |row, r, _| {
                let fields = r
                    .map(|v| {
                        (0..v.len())
                            .map(|i| v.get(i).unwrap_or("").to_string())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_else(|e| vec![format!("ERR {e}")]);
                rows.push((row, fields));
            });
        }
        rows
    }

    #[test]
    fn a_stray_quote_in_an_unquoted_field_loses_no_row_whatever_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        let mut text = String::from("id,note,n\n");
        for i in 0..300 {
            match i {
                // A quote typed in the middle of a field: a character, not a quote.
                10 => text.push_str("10,Centro \"Nord,1\n"),
                11 => text.push_str("11,pollici 5\",2\n"),
                12 => text.push_str("12,schermo 24\" usato,3\n"),
                // Real quoted fields, some over two lines, some with escaped quotes.
                _ if i % 9 == 0 => text.push_str(&format!("{i},\"a, \"\"b\"\"\nc\",{i}\n")),
                _ => text.push_str(&format!("{i},x,{i}\n")),
            }
        }
        std::fs::write(&p, &text).unwrap();
        let whole = records_of(&p, usize::MAX);
        assert_eq!(whole.len(), 300);
        assert!(whole.iter().all(|(_, f)| f.len() == 3), "{whole:?}");
        assert_eq!(whole[10].1[1], "Centro \"Nord");
        assert_eq!(whole[11].1[1], "pollici 5\"");
        assert_eq!(whole[18].1[1], "a, \"b\"\nc");
        for target in [1, 7, 50, 333, 4096] {
            assert_eq!(records_of(&p, target), whole, "target {target}");
        }
    }

    #[test]
    fn separators_are_sniffed_with_quotes_respected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        for (text, sep) in [
            ("a;b;c\n1,5;2;\"x;y\"\n2,5;3;z\n", b';'),
            ("a|b\n1,5|2\n3|4\n", b'|'),
            ("a\tb\tc\n1\t2\t3\n", b'\t'),
            ("\"a,b\";c\n1;2\n", b';'),
            ("a,b\n\"1;2\",3\n4,5\n", b','),
            ("solo\n1\n2\n", b','),
        ] {
            std::fs::write(&p, text).unwrap();
            assert_eq!(open_csv(&p).unwrap().separator, sep, "{text:?}");
        }
    }

    #[test]
    fn utf16_files_are_read_by_their_mark_or_their_zero_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        let text = "età;città\n30;Forlì\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for (bytes, enc) in [
            ([&[0xFF, 0xFE][..], &le].concat(), Encoding::Utf16Le),
            ([&[0xFE, 0xFF][..], &be].concat(), Encoding::Utf16Be),
            (le.clone(), Encoding::Utf16Le),
        ] {
            std::fs::write(&p, &bytes).unwrap();
            let t = read_file(&p).unwrap();
            assert_eq!(t.header, vec!["età", "città"]);
            assert_eq!(t.rows[0].fields.as_ref().unwrap().get(1), Some("Forlì"));
            assert_eq!(
                t.format,
                Format::Csv {
                    separator: b';',
                    encoding: enc
                }
            );
        }
        // Zero bytes that are not UTF-16: refused with what to do.
        std::fs::write(&p, b"a,b\n1,\x00\x002\n").unwrap();
        let err = read_file(&p).unwrap_err().to_string();
        assert!(err.contains("zero bytes"), "{err}");
    }
}
