//! Ingestion: an authority's files → validated, pseudonymised rows in the tenant's store.
//!
//! Guarantees, each tested in `tests/it/ingest.rs`:
//! - **conservation**: rows read = rows stored + rows quarantined, and every quarantined
//!   row is in the quarantine file with its file, row, column and reason;
//! - **privacy**: the tax code is replaced by its keyed pseudonym before anything is
//!   written; names and contact columns are dropped (their name tokens, as keyed hashes,
//!   join the tenant's name registry); identifiers typed into free text (tax codes in any
//!   shape, long numbers, e-mail addresses, the row's and the tenant's names, listed
//!   names) are removed; the quarantine file never quotes a free-text or identifying
//!   column, nor any value that looks like an identifier, in its records or its reasons;
//! - **one writer, one key**: a real file lock per tenant and table; the store's key
//!   fingerprint must match, and the key file must live outside the store;
//! - **atomicity**: the new Parquet part and quarantine file are staged, synced and then
//!   renamed, so a crash at any point leaves the store as it was (leftover staging files
//!   are invisible to readers and cleaned up by the next ingest);
//! - **idempotence**: a row whose key is already stored (or seen earlier in the same run)
//!   is quarantined as a duplicate, so ingesting a file twice stores nothing twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::export::spreadsheet_safe;
use crate::identifiers::{NameRegistry, Redactions, Scanner, name_tokens};
use crate::instruments::Instruments;
use crate::pseudonym::{Key, Pseudonymiser};
use crate::read::{self, CsvFile, RawTable, RecordView};
use crate::schema::{
    IDENTIFYING_HEADERS, Kind, NAME_HEADERS, Reject, RowContext, RowScratch, Schema, Table,
};
use crate::store::{self, FileLock, FrameBuilder, Store, TenantId, TenantScope};
use crate::{Error, Result};
use polars::prelude::BatchedWriter;

/// What an ingest did: the contract's JSON plus details.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    /// Data rows read from all files.
    pub read: usize,
    /// Rows written to the store.
    pub stored: usize,
    /// Rows rejected (including duplicates).
    pub quarantined: usize,
    /// The quarantine file, when any row was rejected.
    pub quarantine_file: Option<PathBuf>,
    /// Identifier of this ingest (names the Parquet part and the quarantine file).
    pub ingest_id: String,
    /// Of the quarantined rows, how many were duplicates.
    pub duplicates: usize,
    /// Rows decoded as Windows-1252/Latin-1 because they were not valid UTF-8.
    pub legacy_encoded_rows: usize,
    /// Tax codes removed from free-text fields.
    pub redacted_tax_codes: usize,
    /// Every identifier removed from free-text fields, by kind.
    pub redacted: Redactions,
    /// How each file was read (format, separator, encoding, sheet).
    pub files: Vec<FileRead>,
    /// Identifying columns read and dropped (names, contacts, birth date).
    pub dropped_columns: Vec<String>,
    /// Columns not in the schema, ignored.
    pub ignored_columns: Vec<String>,
    /// Tenant and table.
    pub tenant: String,
    /// Table name.
    pub table: String,
}

/// How one file was read.
#[derive(Debug, Clone, Serialize)]
pub struct FileRead {
    /// The file.
    pub file: PathBuf,
    /// Format, separator, encoding or sheet.
    #[serde(flatten)]
    pub how: read::Format,
}

/// Receives progress: total rows once known, then increments.
pub trait Progress: Sync {
    /// Total rows to process.
    fn start(&self, total: u64);
    /// Rows processed since the last call.
    fn advance(&self, n: u64);
    /// Something the user should know while waiting (another writer holds the lock).
    fn message(&self, _msg: &str) {}
}

/// Progress that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// Finishes or discards what a crashed ingest left: a quarantine file whose Parquet part
/// was committed is committed too; every other staging file is removed.
fn recover(scope: &TenantScope, table: Table) -> Result<()> {
    let tdir = scope.table_dir(table);
    let qdir = scope.quarantine_dir();
    if let Ok(entries) = std::fs::read_dir(&tdir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(".staging-") {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&qdir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_prefix(".staging-")
                .and_then(|n| n.strip_suffix(".csv"))
            else {
                continue;
            };
            if !id.starts_with(&format!("{}-", table.name())) {
                continue;
            }
            let part = tdir.join(format!("{id}.parquet"));
            if part.exists() {
                store::commit(&e.path(), &qdir.join(format!("{id}.csv")))?;
            } else {
                std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
    }
    Ok(())
}

/// `<table>-<UTC time to the millisecond>-<12 random hex digits>`: sortable, unique.
fn new_ingest_id(table: Table) -> Result<String> {
    let mut salt = [0u8; 6];
    getrandom::fill(&mut salt).map_err(|e| Error::Key(format!("no system randomness: {e}")))?;
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
    let hex: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{ts}-{hex}", table.name()))
}

/// Maps the schema's columns onto a file's header.
struct ColumnMap {
    /// For each schema column, the index of its field in the file.
    fields: Vec<Option<usize>>,
    dropped: Vec<String>,
    ignored: Vec<String>,
    /// Fields whose raw text must never be written anywhere (identifiers).
    sensitive: Vec<bool>,
    /// Fields of free text: never quoted in the quarantine.
    free_text: Vec<bool>,
    /// Fields with the person's name (dropped, but looked for in the row's free text).
    names: Vec<usize>,
}

fn map_columns(
    schema: &Schema,
    path: &Path,
    header: &[String],
    format: &read::Format,
) -> Result<ColumnMap> {
    let mut fields = vec![None; schema.columns.len()];
    let mut used = vec![false; header.len()];
    for (ci, c) in schema.columns.iter().enumerate() {
        for (hi, h) in header.iter().enumerate() {
            if *h == c.name || c.aliases.iter().any(|a| a == h) {
                if let Some(prev) = fields[ci] {
                    return Err(Error::BadFile {
                        path: path.to_path_buf(),
                        reason: format!(
                            "columns {:?} and {:?} both map to {}; keep one",
                            header[prev], h, c.name
                        ),
                    });
                }
                fields[ci] = Some(hi);
                used[hi] = true;
            }
        }
        if fields[ci].is_none() && c.required {
            let mut accepted = vec![c.name.clone()];
            accepted.extend(c.aliases.iter().cloned());
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "missing required column {:?} for table {} (accepted headers: {}); the file, \
                     {format}, has the columns {}; see engine/DATA.md",
                    c.name,
                    schema.table.name(),
                    accepted.join(", "),
                    header.join(", ")
                ),
            });
        }
    }
    let mut dropped = Vec::new();
    let mut ignored = Vec::new();
    let mut sensitive = vec![false; header.len()];
    for (hi, h) in header.iter().enumerate() {
        if used[hi] {
            continue;
        }
        if IDENTIFYING_HEADERS.contains(&h.as_str()) {
            dropped.push(h.clone());
        } else {
            ignored.push(h.clone());
        }
        // Unknown columns may hold anything: never echo them.
        sensitive[hi] = true;
    }
    let mut free_text = vec![false; header.len()];
    for (ci, c) in schema.columns.iter().enumerate() {
        match (fields[ci], &c.kind) {
            (Some(hi), Kind::PersonId | Kind::EmployerId) => sensitive[hi] = true,
            (Some(hi), Kind::Text { .. }) => free_text[hi] = true,
            _ => {}
        }
    }
    let names = (0..header.len())
        .filter(|&i| !used[i] && NAME_HEADERS.contains(&header[i].as_str()))
        .collect();
    Ok(ColumnMap {
        fields,
        dropped,
        ignored,
        sensitive,
        free_text,
        names,
    })
}

struct Quarantined {
    file: usize,
    row: usize,
    reject: Reject,
    /// The raw fields, kept in memory only until the file's names are all known.
    record: Vec<String>,
}

/// The record as the quarantine file shows it: identifying, unknown and free-text fields
/// are never quoted; any other field only when [`Scanner::may_echo`] allows it.
fn masked_record(rec: &[String], map: &ColumnMap, scanner: &Scanner<'_>) -> String {
    (0..rec.len())
        .map(|i| {
            let f = rec[i].trim();
            if f.is_empty() {
                String::new()
            } else if map.sensitive.get(i).copied().unwrap_or(true) {
                "<rimosso>".to_string()
            } else if map.free_text.get(i).copied().unwrap_or(true) {
                "<testo omesso>".to_string()
            } else if scanner.may_echo(f) {
                f.to_string()
            } else {
                "<omesso>".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Test hook: `OCCUPA_FAILPOINT=ingest-abort` kills the process after staging and before
/// the commit; `ingest-error` fails the ingest there with an error; `ingest-after-commit`
/// kills it after the commit, before the audit line is appended.
fn failpoint() -> Result<()> {
    match std::env::var("OCCUPA_FAILPOINT").as_deref() {
        Ok("ingest-abort") => std::process::abort(),
        Ok("ingest-error") => Err(Error::Store {
            path: PathBuf::from("<failpoint>"),
            reason: "simulated failure before commit".into(),
        }),
        _ => Ok(()),
    }
}

enum Source {
    Csv(CsvFile),
    Table(RawTable),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Csv(f) => &f.path,
            Source::Table(t) => &t.path,
        }
    }
    fn header(&self) -> &[String] {
        match self {
            Source::Csv(f) => &f.header,
            Source::Table(t) => &t.header,
        }
    }
    fn format(&self) -> read::Format {
        match self {
            Source::Csv(f) => f.format(),
            Source::Table(t) => t.format.clone(),
        }
    }
    fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            // The digest is of the file as delivered, not of its UTF-8 transcoding.
            Source::Csv(f)
                if matches!(
                    f.encoding,
                    read::Encoding::Utf16Le | read::Encoding::Utf16Be
                ) =>
            {
                std::borrow::Cow::Owned(std::fs::read(&f.path).unwrap_or_default())
            }
            Source::Csv(f) => std::borrow::Cow::Borrowed(f.bytes()),
            Source::Table(t) => std::borrow::Cow::Owned(std::fs::read(&t.path).unwrap_or_default()),
        }
    }
    /// Progress units: bytes for CSV, rows otherwise.
    fn size_hint(&self) -> usize {
        match self {
            Source::Csv(f) => f.body_len(),
            Source::Table(t) => t.rows.len(),
        }
    }
}

/// Receives each record of a chunk: its line, its fields (or why it is malformed), and
/// whether it was decoded as Windows-1252.
type RecordSink<'r> = dyn FnMut(usize, std::result::Result<RecordView<'_>, String>, bool) + 'r;

/// Row keys are already uniformly distributed (bits of SHA-256 or HMAC outputs), so the
/// de-duplication table uses them as their own hash instead of hashing them again.
#[derive(Clone, Copy, Default)]
struct KeyHash;

#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; any other input still hashes deterministically.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct ChunkOut {
    frame: FrameBuilder,
    lines: Vec<usize>,
    rejects: Vec<(usize, Reject, Vec<String>)>,
    legacy: usize,
    /// Keyed hashes of the name tokens seen in name columns.
    names: Vec<u64>,
}

/// Test hook: `OCCUPA_HOLD_LOCK_MS=N` keeps the lock N milliseconds before working, so a
/// test can start a second writer while the first holds it.
fn hold_lock_for_test() {
    if let Some(ms) = std::env::var("OCCUPA_HOLD_LOCK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Ingests files into one tenant's table.
pub fn ingest(
    store: &Store,
    instruments: &Instruments,
    key: &Key,
    tenant: &TenantId,
    table: Table,
    files: &[PathBuf],
    progress: &dyn Progress,
) -> Result<IngestSummary> {
    ingest_with(
        store,
        instruments,
        key,
        tenant,
        table,
        files,
        &read::ReadOptions::default(),
        progress,
    )
}

/// [`ingest`] with read options (the sheet of a workbook).
#[allow(clippy::too_many_arguments)]
pub fn ingest_with(
    store: &Store,
    instruments: &Instruments,
    key: &Key,
    tenant: &TenantId,
    table: Table,
    files: &[PathBuf],
    options: &read::ReadOptions,
    progress: &dyn Progress,
) -> Result<IngestSummary> {
    if files.is_empty() {
        return Err(Error::Param {
            name: "FILE",
            reason: "give at least one file to ingest".into(),
        });
    }
    store.bind_key(key)?;
    let scope = store.scope(tenant);
    let tdir = scope.table_dir(table);
    let _lock = FileLock::acquire(&tdir.join(".lock"), || {
        progress.message(&format!(
            "waiting for another ingest into {tenant}/{} to finish",
            table.name()
        ))
    })?;
    hold_lock_for_test();
    recover(&scope, table)?;

    let schema = Schema::of(table, instruments);
    let pseudonymiser = Pseudonymiser::new(key);
    let registry = NameRegistry::new(pseudonymiser.clone(), scope.name_hashes()?);
    let ctx = RowContext::new(
        &schema,
        instruments,
        &pseudonymiser,
        Scanner::with_registry(&registry),
    );

    // Read and map every file before writing anything: a file-level error aborts cleanly.
    let mut sources = Vec::new();
    let mut files_read = Vec::new();
    for f in files {
        let source = match read::kind_of(f)? {
            read::Kind::Text => Source::Csv(read::open_csv(f)?),
            _ => Source::Table(read::read_file_with(f, options)?),
        };
        let map = map_columns(&schema, source.path(), source.header(), &source.format())?;
        files_read.push(FileRead {
            file: f.to_path_buf(),
            how: source.format(),
        });
        sources.push((source, map));
    }
    progress.start(sources.iter().map(|(s, _)| s.size_hint()).sum::<usize>() as u64);

    let ingest_id = new_ingest_id(table)?;
    let existing = scope.keys(table)?;
    let part = tdir.join(format!("{ingest_id}.parquet"));
    let qfile = scope.quarantine_dir().join(format!("{ingest_id}.csv"));
    let part_staging = store::staging_path(&part);
    let q_staging = store::staging_path(&qfile);
    let key_label = if schema.key_columns.is_empty() {
        "*".to_string()
    } else {
        schema.key_columns.join("+")
    };

    // A pipeline: rayon workers convert chunks straight into columns; this thread takes
    // them in file order, removes duplicates (the first occurrence is kept unless the store
    // holds the key) and streams them into the staged Parquet part, so writing overlaps
    // converting. The files' digests, for the audit log, are computed alongside.
    let expected_rows = sources
        .iter()
        .map(|(s, _)| s.size_hint())
        .sum::<usize>()
        .min(50_000_000)
        / 32;
    let mut seen: HashMap<u64, (u32, u32), KeyHash> =
        HashMap::with_capacity_and_hasher(expected_rows, KeyHash);
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut new_names: Vec<u64> = Vec::new();
    let (mut legacy, mut total, mut stored, mut duplicates) = (0usize, 0usize, 0usize, 0usize);
    let mut dropped: Vec<String> = sources
        .iter()
        .flat_map(|(_, m)| m.dropped.iter().cloned())
        .collect();
    let mut ignored: Vec<String> = sources
        .iter()
        .flat_map(|(_, m)| m.ignored.iter().cloned())
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, usize, ChunkOut)>();
    let (sources, schema, ctx) = (&sources, &schema, &ctx);
    let digests: Result<Vec<[u8; 32]>> = std::thread::scope(|sc| {
        let producer = sc.spawn(move || {
            let digest_all = || -> Vec<[u8; 32]> {
                sources
                    .iter()
                    .map(|(src, _)| Sha256::digest(src.bytes()).into())
                    .collect()
            };
            let convert_all = move || {
                let mut seq = 0usize;
                for (fi, (source, map)) in sources.iter().enumerate() {
                    // In a file separated by `;`, tab or `|` a point groups thousands.
                    let grouping = matches!(source, Source::Csv(f) if f.separator != b',');
                    // Convert in parallel, one chunk per task, straight into columns; order is kept.
                    let convert_chunk = |rows: &mut dyn FnMut(&mut RecordSink<'_>)| -> ChunkOut {
                        let mut out = ChunkOut {
                            frame: FrameBuilder::new(schema, 16_384),
                            lines: Vec::with_capacity(16_384),
                            rejects: Vec::new(),
                            legacy: 0,
                            names: Vec::new(),
                        };
                        let mut values = Vec::new();
                        let mut scratch = RowScratch::default();
                        let mut row_names: Vec<String> = Vec::new();
                        // Names repeat from row to row: each distinct field is split into
                        // tokens once per chunk, and each distinct token hashed once.
                        let mut chunk_names: HashSet<String> = HashSet::new();
                        let mut tokens_of: HashMap<String, Vec<String>> = HashMap::new();
                        rows(&mut |line, rec, legacy| {
                            out.legacy += legacy as usize;
                            row_names.clear();
                            if let Ok(view) = &rec {
                                for &i in &map.names {
                                    let field = view.get(i).unwrap_or("");
                                    if let Some(tokens) = tokens_of.get(field) {
                                        row_names.extend(tokens.iter().cloned());
                                        continue;
                                    }
                                    let tokens = name_tokens(field, 2);
                                    for t in &tokens {
                                        if t.chars().count() >= 3 {
                                            chunk_names.insert(t.clone());
                                        }
                                    }
                                    row_names.extend(tokens.iter().cloned());
                                    if tokens_of.len() < 100_000 {
                                        tokens_of.insert(field.to_string(), tokens);
                                    }
                                }
                            }
                            let res = match &rec {
                                Err(reason) => Err(Reject {
                                    column: "*".into(),
                                    reason: reason.clone(),
                                    plain: None,
                                }),
                                Ok(view) => ctx.convert_into(
                                    |ci| map.fields[ci].and_then(|i| view.get(i)),
                                    &row_names,
                                    &mut values,
                                    &mut scratch,
                                    grouping,
                                ),
                            };
                            match res {
                                Ok(key) => {
                                    out.frame.push(&values, key);
                                    out.lines.push(line);
                                }
                                Err(rej) => {
                                    let record = rec
                                        .as_ref()
                                        .map(|v| {
                                            (0..v.len())
                                                .map(|i| v.get(i).unwrap_or("").to_string())
                                                .collect()
                                        })
                                        .unwrap_or_default();
                                    out.rejects.push((line, rej, record));
                                }
                            }
                        });
                        scratch.flush(ctx);
                        out.names = chunk_names
                            .iter()
                            .map(|t| ctx.pseudonymiser.name_hash(t))
                            .collect();
                        out
                    };
                    match source {
                        // Enough chunks to keep every core busy, large enough to amortise per-chunk work.
                        Source::Csv(file) => {
                            let chunks = file.chunks(
                                (file.body_len() / (4 * rayon::current_num_threads()))
                                    .clamp(1 << 18, 1 << 23),
                            );
                            let n = chunks.len();
                            chunks.into_par_iter().enumerate().for_each_with(
                                tx.clone(),
                                |tx, (i, (line, chunk))| {
                                    let out = convert_chunk(&mut |f| {
                                        file.parse_chunk(line, chunk, &mut *f)
                                    });
                                    progress.advance(chunk.len() as u64);
                                    // A closed channel means the consumer failed; its error is reported.
                                    let _ = tx.send((seq + i, fi, out));
                                },
                            );
                            seq += n;
                        }
                        Source::Table(t) => {
                            let n = t.rows.len().div_ceil(8192);
                            t.rows.par_chunks(8192).enumerate().for_each_with(
                                tx.clone(),
                                |tx, (i, rows)| {
                                    let mut out = convert_chunk(&mut |f| {
                                        for r in rows {
                                            f(
                                                r.row,
                                                r.fields
                                                    .as_ref()
                                                    .map(RecordView::Text)
                                                    .map_err(String::clone),
                                                false,
                                            );
                                        }
                                    });
                                    if i == 0 {
                                        out.legacy += t.legacy_encoded_rows;
                                    }
                                    progress.advance(rows.len() as u64);
                                    let _ = tx.send((seq + i, fi, out));
                                },
                            );
                            seq += n;
                        }
                    }
                }
                drop(tx);
            };
            rayon::join(digest_all, convert_all).0
        });

        let mut pending: BTreeMap<usize, (usize, ChunkOut)> = BTreeMap::new();
        let mut next = 0usize;
        let mut part_out = store::create_staging(&part_staging)?;
        let mut writer = store::part_writer(&mut part_out, schema)?;
        let mut consume = |fi: usize,
                           mut out: ChunkOut,
                           writer: &mut BatchedWriter<&mut std::io::BufWriter<std::fs::File>>|
         -> Result<()> {
            legacy += out.legacy;
            new_names.append(&mut out.names);
            total += out.lines.len() + out.rejects.len();
            for (line, reject, record) in out.rejects.drain(..) {
                quarantined.push(Quarantined {
                    file: fi,
                    row: line,
                    reject,
                    record,
                });
            }
            let mut keep = Vec::with_capacity(out.lines.len());
            for (&key, &line) in out.frame.keys().iter().zip(&out.lines) {
                let reason = if existing.binary_search(&key).is_ok() {
                    Some("duplicate of a row already in the store".to_string())
                } else {
                    seen.get(&key).map(|(f0, r0)| {
                        format!(
                            "duplicate of row {r0} of {}",
                            file_name(sources[*f0 as usize].0.path())
                        )
                    })
                };
                match reason {
                    Some(reason) => {
                        duplicates += 1;
                        quarantined.push(Quarantined {
                            file: fi,
                            row: line,
                            reject: Reject {
                                column: key_label.clone(),
                                reason,
                                plain: None,
                            },
                            record: Vec::new(),
                        });
                        keep.push(false);
                    }
                    None => {
                        seen.insert(key, (fi as u32, line as u32));
                        keep.push(true);
                    }
                }
            }
            let df = out.frame.finish(&keep)?;
            if df.height() == 0 {
                return Ok(());
            }
            stored += df.height();
            writer.write_batch(&df)?;
            Ok(())
        };
        let mut failure: Option<Error> = None;
        for (seq, fi, out) in rx.iter() {
            pending.insert(seq, (fi, out));
            while let Some((fi, out)) = pending.remove(&next) {
                next += 1;
                if let Err(e) = consume(fi, out, &mut writer) {
                    failure = Some(e);
                    break;
                }
            }
            if failure.is_some() {
                break;
            }
        }
        drop(rx);
        let digests = producer.join().map_err(|_| Error::Store {
            path: tdir.clone(),
            reason: "a conversion thread panicked".into(),
        })?;
        if let Some(e) = failure {
            let _ = std::fs::remove_file(&part_staging);
            return Err(e);
        }
        let finished = writer.finish().map(|_| ()).map_err(Error::from);
        drop(writer);
        let finished = finished.and_then(|()| store::sync_staging(part_out, &part_staging));
        if let Err(e) = finished {
            let _ = std::fs::remove_file(&part_staging);
            return Err(e);
        }
        Ok(digests)
    });
    let digests = digests?;
    if stored == 0 {
        // Nothing new: no part at all rather than an empty one.
        std::fs::remove_file(&part_staging).map_err(|e| Error::io(&part_staging, e))?;
    }
    let mut hasher = Sha256::new();
    let mut file_digests = Vec::new();
    for (d, (src, _)) in digests.iter().zip(sources) {
        hasher.update(d);
        file_digests.push(serde_json::json!({
            "file": file_name(src.path()),
            "sha256": d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        }));
    }
    // Quarantine rows in file and row order, whatever the stage that rejected them.
    quarantined.sort_by_key(|q| (q.file, q.row));
    let nq = quarantined.len();
    debug_assert_eq!(stored + nq, total);

    // The Parquet part is staged; stage the quarantine file, then commit both. The part's
    // rename is the commit point.
    // Only now are all the file's names known: a value is quoted in the quarantine only
    // if the scanner, with every name of the tenant and of these files, lets it be.
    let redacted = ctx.redactions();
    let mut all_names = registry.hashes().to_vec();
    all_names.extend(new_names);
    all_names.sort_unstable();
    all_names.dedup();
    let final_registry = NameRegistry::new(pseudonymiser.clone(), all_names);
    let final_scanner = Scanner::with_registry(&final_registry);
    let masked: Vec<String> = quarantined
        .iter_mut()
        .map(|q| {
            let map = &sources[q.file].1;
            if let Some((ci, _)) = &q.reject.plain {
                let raw = map.fields[*ci]
                    .and_then(|i| q.record.get(i))
                    .map_or("", |f| f.trim());
                if !final_scanner.may_echo(raw) {
                    q.reject.without_value();
                }
            }
            masked_record(&q.record, map, &final_scanner)
        })
        .collect();
    if nq > 0 {
        store::stage(&q_staging, |f| {
            let mut w = csv::Writer::from_writer(f);
            let io = |e: csv::Error| Error::io(&q_staging, std::io::Error::other(e));
            w.write_record(["file", "row", "column", "reason", "record"])
                .map_err(io)?;
            for (q, record) in quarantined.iter().zip(&masked) {
                let name = file_name(sources[q.file].0.path());
                let row = q.row.to_string();
                w.write_record(
                    [
                        name.as_str(),
                        &row,
                        &q.reject.column,
                        &q.reject.reason,
                        record,
                    ]
                    .map(|f| spreadsheet_safe(f).into_owned()),
                )
                .map_err(io)?;
            }
            w.flush().map_err(|e| Error::io(&q_staging, e))
        })?;
    }
    let names = if final_registry.len() > registry.len() {
        Some(scope.stage_name_hashes(final_registry.hashes())?)
    } else {
        None
    };
    // The audit line is written before the commit, with what proves the commit (the part,
    // or the quarantine file when nothing is stored), and appended after it.
    let evidence = if stored > 0 {
        Some(part.as_path())
    } else if nq > 0 {
        Some(qfile.as_path())
    } else {
        None
    };
    let intent = store.audit_intent(
        &ingest_id,
        serde_json::json!({
            "command": "ingest",
            "tenant": tenant.as_str(),
            "table": table.name(),
            "ingest_id": ingest_id,
            "files": file_digests,
            "read": total,
            "stored": stored,
            "quarantined": nq,
            "redacted": redacted,
        }),
        evidence,
    )?;
    if let Err(e) = failpoint() {
        let _ = std::fs::remove_file(&part_staging);
        let _ = std::fs::remove_file(&q_staging);
        if let Some((staging, _)) = &names {
            let _ = std::fs::remove_file(staging);
        }
        let _ = store.abandon_audit(intent);
        return Err(e);
    }
    if let Some((staging, path)) = &names {
        store::commit(staging, path)?;
    }
    if stored > 0 {
        store::commit(&part_staging, &part)?;
    }
    if nq > 0 {
        store::commit(&q_staging, &qfile)?;
    }
    if std::env::var("OCCUPA_FAILPOINT").as_deref() == Ok("ingest-after-commit") {
        std::process::abort();
    }
    store.complete_audit(intent)?;

    dropped.sort();
    dropped.dedup();
    ignored.sort();
    ignored.dedup();
    let summary = IngestSummary {
        read: total,
        stored,
        quarantined: nq,
        quarantine_file: (nq > 0).then_some(qfile),
        ingest_id: ingest_id.clone(),
        duplicates,
        legacy_encoded_rows: legacy,
        redacted_tax_codes: redacted.tax_codes,
        redacted,
        files: files_read,
        dropped_columns: dropped,
        ignored_columns: ignored,
        tenant: tenant.to_string(),
        table: table.name().to_string(),
    };
    Ok(summary)
}
