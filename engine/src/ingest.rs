//! Ingestion: an authority's files → validated, pseudonymised rows in the tenant's store.
//!
//! Guarantees, each tested in `tests/it/ingest.rs`:
//! - **conservation**: rows read = rows stored + rows quarantined, and every quarantined
//!   row is in the quarantine file with its file, row, column and reason;
//! - **privacy**: the tax code is replaced by its keyed pseudonym before anything is
//!   written; names and contact columns are dropped; tax codes typed into free text are
//!   removed; the quarantine file never holds an identifier;
//! - **atomicity**: the new Parquet part and quarantine file are staged, synced and then
//!   renamed, so a crash at any point leaves the store as it was (leftover staging files
//!   are invisible to readers and cleaned up by the next ingest);
//! - **idempotence**: a row whose key is already stored (or seen earlier in the same run)
//!   is quarantined as a duplicate, so ingesting a file twice stores nothing twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::instruments::Instruments;
use crate::pseudonym::{Key, Pseudonymiser};
use crate::read::{self, CsvFile, RawTable, RecordView};
use crate::schema::{IDENTIFYING_HEADERS, Kind, Reject, RowContext, Schema, Table};
use crate::store::{self, FrameBuilder, Store, TenantId, TenantScope};
use crate::{Error, Result};
use polars::prelude::DataFrame;

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
    /// Identifying columns read and dropped (names, contacts, birth date).
    pub dropped_columns: Vec<String>,
    /// Columns not in the schema, ignored.
    pub ignored_columns: Vec<String>,
    /// Tenant and table.
    pub tenant: String,
    /// Table name.
    pub table: String,
}

/// Receives progress: total rows once known, then increments.
pub trait Progress: Sync {
    /// Total rows to process.
    fn start(&self, total: u64);
    /// Rows processed since the last call.
    fn advance(&self, n: u64);
}

/// Progress that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

struct Lock(PathBuf);

impl Lock {
    fn acquire(dir: &Path) -> Result<Lock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(".lock");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                let _ = writeln!(f, "{}", std::process::id());
                Ok(Lock(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let alive = pid
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive && Path::new("/proc/self").exists() {
                    // The process that held it died (a crash): the lock is stale.
                    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                    return Lock::acquire(dir);
                }
                Err(Error::Store {
                    path,
                    reason: "another ingest into this tenant and table is running; if none is, delete this lock file".into(),
                })
            }
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
            if !id.starts_with(table.name()) {
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

fn new_ingest_id(table: Table, files_digest: &[u8]) -> Result<String> {
    let mut salt = [0u8; 3];
    getrandom::fill(&mut salt).map_err(|e| Error::Key(format!("no system randomness: {e}")))?;
    let ts = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
    Ok(format!(
        "{}-{ts}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        table.name(),
        files_digest[0],
        files_digest[1],
        files_digest[2],
        salt[0],
        salt[1],
        salt[2]
    ))
}

/// Maps the schema's columns onto a file's header.
struct ColumnMap {
    /// For each schema column, the index of its field in the file.
    fields: Vec<Option<usize>>,
    dropped: Vec<String>,
    ignored: Vec<String>,
    /// Fields whose raw text must never be written anywhere (identifiers).
    sensitive: Vec<bool>,
}

fn map_columns(schema: &Schema, path: &Path, header: &[String]) -> Result<ColumnMap> {
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
                    "missing required column {:?} for table {} (accepted headers: {}); see engine/DATA.md",
                    c.name,
                    schema.table.name(),
                    accepted.join(", ")
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
    for (ci, c) in schema.columns.iter().enumerate() {
        if let (Some(hi), Kind::PersonId | Kind::EmployerId) = (fields[ci], &c.kind) {
            sensitive[hi] = true;
        }
    }
    Ok(ColumnMap {
        fields,
        dropped,
        ignored,
        sensitive,
    })
}

struct Quarantined {
    file: usize,
    row: usize,
    reject: Reject,
    record: String,
}

fn masked_record(rec: &RecordView<'_>, sensitive: &[bool]) -> String {
    (0..rec.len())
        .map(|i| {
            let f = rec.get(i).unwrap_or("");
            if sensitive.get(i).copied().unwrap_or(true) {
                "<rimosso>".to_string()
            } else {
                // Free text may hold a tax code typed by an operator.
                f.split_inclusive(|c: char| !c.is_ascii_alphanumeric())
                    .map(|tok| {
                        let w = tok.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                        if w.len() >= 11
                            && w.bytes().any(|b| b.is_ascii_digit())
                            && w.bytes().any(|b| b.is_ascii_uppercase())
                        {
                            format!("<rimosso>{}", &tok[w.len()..])
                        } else {
                            tok.to_string()
                        }
                    })
                    .collect()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Test hook: `OCCUPA_FAILPOINT=ingest-abort` kills the process after staging and before
/// the commit; `ingest-error` fails the ingest there with an error.
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
    fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
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

struct ConvertedFiles {
    chunks: Vec<(usize, ChunkOut)>,
    quarantined: Vec<Quarantined>,
    legacy: usize,
    dropped: Vec<String>,
    ignored: Vec<String>,
    total: usize,
}

struct ChunkOut {
    frame: FrameBuilder,
    lines: Vec<usize>,
    rejects: Vec<(usize, Reject, String)>,
    legacy: usize,
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
    if files.is_empty() {
        return Err(Error::Param {
            name: "FILE",
            reason: "give at least one file to ingest".into(),
        });
    }
    let scope = store.scope(tenant);
    let tdir = scope.table_dir(table);
    let _lock = Lock::acquire(&tdir)?;
    recover(&scope, table)?;

    let schema = Schema::of(table, instruments);
    let pseudonymiser = Pseudonymiser::new(key);
    let ctx = RowContext {
        schema: &schema,
        instruments,
        pseudonymiser: &pseudonymiser,
        redacted: AtomicUsize::new(0),
    };

    // Read and map every file before writing anything: a file-level error aborts cleanly.
    let mut sources = Vec::new();
    let mut hasher = Sha256::new();
    let mut file_digests = Vec::new();
    for f in files {
        let source = match f
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv" | "txt" | "tsv") => Source::Csv(read::open_csv(f)?),
            _ => Source::Table(read::read_file(f)?),
        };
        let map = map_columns(&schema, source.path(), source.header())?;
        sources.push((source, map));
    }
    progress.start(sources.iter().map(|(s, _)| s.size_hint()).sum::<usize>() as u64);

    // The files' digests (for the audit log) are computed alongside the conversion.
    let digest_all = || -> Vec<[u8; 32]> {
        sources
            .iter()
            .map(|(src, _)| Sha256::digest(&src.bytes()).into())
            .collect()
    };
    let convert_all = || -> Result<ConvertedFiles> {
        let mut chunks: Vec<(usize, ChunkOut)> = Vec::new();
        let mut quarantined: Vec<Quarantined> = Vec::new();
        let mut dropped = Vec::new();
        let mut ignored = Vec::new();
        let mut legacy = 0usize;
        let mut total = 0usize;

        for (fi, (source, map)) in sources.iter().enumerate() {
            dropped.extend(map.dropped.iter().cloned());
            ignored.extend(map.ignored.iter().cloned());
            // Convert in parallel, one chunk per task, straight into columns; order is kept.
            let convert_chunk = |rows: &mut dyn FnMut(
                &mut dyn FnMut(usize, std::result::Result<RecordView<'_>, String>, bool),
            )|
             -> ChunkOut {
                let mut out = ChunkOut {
                    frame: FrameBuilder::new(&schema, 16_384),
                    lines: Vec::with_capacity(16_384),
                    rejects: Vec::new(),
                    legacy: 0,
                };
                let mut values = Vec::new();
                rows(&mut |line, rec, legacy| {
                    out.legacy += legacy as usize;
                    let res = match &rec {
                        Err(reason) => Err(Reject {
                            column: "*".into(),
                            reason: reason.clone(),
                        }),
                        Ok(view) => ctx.convert_into(
                            |ci| map.fields[ci].and_then(|i| view.get(i)),
                            &mut values,
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
                                .map(|v| masked_record(v, &map.sensitive))
                                .unwrap_or_default();
                            out.rejects.push((line, rej, record));
                        }
                    }
                });
                out
            };
            let outs: Vec<ChunkOut> = match source {
                // Enough chunks to keep every core busy, large enough to amortise per-chunk work.
                Source::Csv(file) => file
                    .chunks(
                        (file.body_len() / (4 * rayon::current_num_threads()))
                            .clamp(1 << 18, 1 << 23),
                    )
                    .into_par_iter()
                    .map(|(line, chunk)| {
                        let out = convert_chunk(&mut |f| file.parse_chunk(line, chunk, &mut *f));
                        progress.advance(chunk.len() as u64);
                        out
                    })
                    .collect(),
                Source::Table(t) => {
                    legacy += t.legacy_encoded_rows;
                    t.rows
                        .par_chunks(8192)
                        .map(|rows| {
                            let out = convert_chunk(&mut |f| {
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
                            progress.advance(rows.len() as u64);
                            out
                        })
                        .collect()
                }
            };
            for mut out in outs {
                legacy += out.legacy;
                total += out.lines.len() + out.rejects.len();
                for (line, reject, record) in out.rejects.drain(..) {
                    quarantined.push(Quarantined {
                        file: fi,
                        row: line,
                        reject,
                        record,
                    });
                }
                chunks.push((fi, out));
            }
        }

        Ok(ConvertedFiles {
            chunks,
            quarantined,
            legacy,
            dropped,
            ignored,
            total,
        })
    };
    let (digests, converted) = rayon::join(digest_all, convert_all);
    let ConvertedFiles {
        chunks,
        mut quarantined,
        legacy,
        mut dropped,
        mut ignored,
        total,
    } = converted?;
    for (d, (src, _)) in digests.iter().zip(&sources) {
        hasher.update(d);
        file_digests.push(serde_json::json!({
            "file": file_name(src.path()),
            "sha256": d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        }));
    }
    let ingest_id = new_ingest_id(table, &hasher.finalize())?;
    let existing = scope.keys(table)?;
    let mut frame: Option<DataFrame> = None;
    let mut stored = 0usize;
    let mut duplicates = 0usize;

    // Duplicates, in one sort rather than a hash map over every row: the first occurrence
    // (in file and row order) is kept unless the store already holds the key.
    let mut order: Vec<(u64, u32)> = Vec::new();
    let mut at: Vec<(u32, u32)> = Vec::new(); // (chunk, position in chunk) by sequence number
    for (c, (_, out)) in chunks.iter().enumerate() {
        for (i, &key) in out.frame.keys().iter().enumerate() {
            order.push((key, at.len() as u32));
            at.push((c as u32, i as u32));
        }
    }
    order.par_sort_unstable();
    let mut keep: Vec<Vec<bool>> = chunks
        .iter()
        .map(|(_, out)| vec![true; out.lines.len()])
        .collect();
    let mut dup_of: Vec<(u32, Option<u32>)> = Vec::new(); // (sequence, first sequence or None = store)
    let mut i = 0;
    while i < order.len() {
        let key = order[i].0;
        let mut j = i + 1;
        while j < order.len() && order[j].0 == key {
            j += 1;
        }
        let in_store = existing.binary_search(&key).is_ok();
        for (k, &(_, seq)) in order[i..j].iter().enumerate() {
            if in_store {
                dup_of.push((seq, None));
            } else if k > 0 {
                dup_of.push((seq, Some(order[i].1)));
            }
        }
        i = j;
    }
    dup_of.sort_unstable();
    let column = if schema.key_columns.is_empty() {
        "*".to_string()
    } else {
        schema.key_columns.join("+")
    };
    for (seq, first) in dup_of {
        let (c, pos) = at[seq as usize];
        keep[c as usize][pos as usize] = false;
        let (fi, out) = &chunks[c as usize];
        let reason = match first {
            None => "duplicate of a row already in the store".to_string(),
            Some(f) => {
                let (c0, p0) = at[f as usize];
                let (f0, out0) = &chunks[c0 as usize];
                format!(
                    "duplicate of row {} of {}",
                    out0.lines[p0 as usize],
                    file_name(sources[*f0].0.path())
                )
            }
        };
        duplicates += 1;
        quarantined.push(Quarantined {
            file: *fi,
            row: out.lines[pos as usize],
            reject: Reject {
                column: column.clone(),
                reason,
            },
            record: String::new(),
        });
    }
    drop((order, at));
    for ((_, out), keep) in chunks.into_iter().zip(keep) {
        stored += keep.iter().filter(|k| **k).count();
        let df = out.frame.finish(&keep)?;
        match frame.as_mut() {
            None => frame = Some(df),
            Some(acc) => {
                acc.vstack_mut_owned(df)?;
            }
        }
    }
    // Quarantine rows in file and row order, whatever the stage that rejected them.
    quarantined.sort_by_key(|q| (q.file, q.row));
    drop(existing);
    let nq = quarantined.len();
    debug_assert_eq!(stored + nq, total);

    // Stage everything, then commit: the Parquet part is the commit point.
    let part = tdir.join(format!("{ingest_id}.parquet"));
    let qfile = scope.quarantine_dir().join(format!("{ingest_id}.csv"));
    let part_staging = store::staging_path(&part);
    let q_staging = store::staging_path(&qfile);
    if stored > 0 {
        // Chunks are written as they are (row groups): a rechunk would copy every column.
        let mut df = frame.take().unwrap_or_default();
        store::stage(&part_staging, |f| store::write_parquet(f, &mut df))?;
    }
    if nq > 0 {
        store::stage(&q_staging, |f| {
            let mut w = csv::Writer::from_writer(f);
            let io = |e: csv::Error| Error::io(&q_staging, std::io::Error::other(e));
            w.write_record(["file", "row", "column", "reason", "record"])
                .map_err(io)?;
            for q in &quarantined {
                let name = file_name(sources[q.file].0.path());
                w.write_record([
                    name.as_str(),
                    &q.row.to_string(),
                    &q.reject.column,
                    &q.reject.reason,
                    &q.record,
                ])
                .map_err(io)?;
            }
            w.flush().map_err(|e| Error::io(&q_staging, e))
        })?;
    }
    if let Err(e) = failpoint() {
        let _ = std::fs::remove_file(&part_staging);
        let _ = std::fs::remove_file(&q_staging);
        return Err(e);
    }
    if stored > 0 {
        store::commit(&part_staging, &part)?;
    }
    if nq > 0 {
        store::commit(&q_staging, &qfile)?;
    }

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
        redacted_tax_codes: ctx.redacted.load(Ordering::Relaxed),
        dropped_columns: dropped,
        ignored_columns: ignored,
        tenant: tenant.to_string(),
        table: table.name().to_string(),
    };
    store.audit(serde_json::json!({
        "command": "ingest",
        "tenant": tenant.as_str(),
        "table": table.name(),
        "ingest_id": ingest_id,
        "files": file_digests,
        "read": total,
        "stored": stored,
        "quarantined": nq,
    }))?;
    Ok(summary)
}
