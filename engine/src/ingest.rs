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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::instruments::Instruments;
use crate::pseudonym::{Key, Pseudonymiser};
use crate::read::{self, RawTable};
use crate::schema::{IDENTIFYING_HEADERS, Kind, Reject, RowContext, Schema, Table};
use crate::store::{self, Store, TenantId, TenantScope};
use crate::{Error, Result};

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
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                let _ = writeln!(f, "{}", std::process::id());
                Ok(Lock(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let alive = pid.trim().parse::<u32>().is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
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
            let Some(id) = name.strip_prefix(".staging-").and_then(|n| n.strip_suffix(".csv")) else { continue };
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

fn map_columns(schema: &Schema, t: &RawTable) -> Result<ColumnMap> {
    let mut fields = vec![None; schema.columns.len()];
    let mut used = vec![false; t.header.len()];
    for (ci, c) in schema.columns.iter().enumerate() {
        for (hi, h) in t.header.iter().enumerate() {
            if *h == c.name || c.aliases.iter().any(|a| a == h) {
                if let Some(prev) = fields[ci] {
                    return Err(Error::BadFile {
                        path: t.path.clone(),
                        reason: format!("columns {:?} and {:?} both map to {}; keep one", t.header[prev], h, c.name),
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
                path: t.path.clone(),
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
    let mut sensitive = vec![false; t.header.len()];
    for (hi, h) in t.header.iter().enumerate() {
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
    Ok(ColumnMap { fields, dropped, ignored, sensitive })
}

struct Quarantined {
    file: usize,
    row: usize,
    reject: Reject,
    record: String,
}

fn masked_record(rec: &csv::StringRecord, sensitive: &[bool]) -> String {
    rec.iter()
        .enumerate()
        .map(|(i, f)| {
            if sensitive.get(i).copied().unwrap_or(true) {
                "<rimosso>".to_string()
            } else {
                // Free text may hold a tax code typed by an operator.
                f.split_inclusive(|c: char| !c.is_ascii_alphanumeric())
                    .map(|tok| {
                        let w = tok.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                        if w.len() >= 11 && w.bytes().any(|b| b.is_ascii_digit()) && w.bytes().any(|b| b.is_ascii_uppercase()) {
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
        Ok("ingest-error") => Err(Error::Store { path: PathBuf::from("<failpoint>"), reason: "simulated failure before commit".into() }),
        _ => Ok(()),
    }
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
        return Err(Error::Param { name: "FILE", reason: "give at least one file to ingest".into() });
    }
    let scope = store.scope(tenant);
    let tdir = scope.table_dir(table);
    let _lock = Lock::acquire(&tdir)?;
    recover(&scope, table)?;

    let schema = Schema::of(table, instruments);
    let pseudonymiser = Pseudonymiser::new(key);
    let ctx = RowContext { schema: &schema, instruments, pseudonymiser: &pseudonymiser, redacted: AtomicUsize::new(0) };

    // Read and map every file before writing anything: a file-level error aborts cleanly.
    let mut tables = Vec::new();
    let mut hasher = Sha256::new();
    let mut file_digests = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        let d = Sha256::digest(&bytes);
        hasher.update(d);
        file_digests.push(serde_json::json!({
            "file": f.file_name().map(|n| n.to_string_lossy().to_string()),
            "sha256": d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        }));
        drop(bytes);
        let t = read::read_file(f)?;
        let map = map_columns(&schema, &t)?;
        tables.push((t, map));
    }
    let total: usize = tables.iter().map(|(t, _)| t.rows.len()).sum();
    progress.start(total as u64);
    let ingest_id = new_ingest_id(table, &hasher.finalize())?;

    let mut existing = scope.keys(table)?;
    let mut seen: HashMap<u64, (usize, usize)> = HashMap::new();
    let mut accepted = Vec::with_capacity(total);
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut duplicates = 0usize;
    let mut dropped = Vec::new();
    let mut ignored = Vec::new();
    let mut legacy = 0usize;

    for (fi, (t, map)) in tables.iter().enumerate() {
        legacy += t.legacy_encoded_rows;
        dropped.extend(map.dropped.iter().cloned());
        ignored.extend(map.ignored.iter().cloned());
        let converted: Vec<_> = t
            .rows
            .par_chunks(8192)
            .flat_map_iter(|chunk| {
                let out: Vec<_> = chunk
                    .iter()
                    .map(|r| match &r.fields {
                        Err(reason) => Err(Reject { column: "*".into(), reason: reason.clone() }),
                        Ok(rec) => {
                            let cells: Vec<Option<&str>> = map.fields.iter().map(|f| f.and_then(|i| rec.get(i))).collect();
                            ctx.convert(&cells)
                        }
                    })
                    .collect();
                progress.advance(chunk.len() as u64);
                out
            })
            .collect();
        for (raw, res) in t.rows.iter().zip(converted) {
            let record = || raw.fields.as_ref().map(|r| masked_record(r, &map.sensitive)).unwrap_or_default();
            match res {
                Err(reject) => quarantined.push(Quarantined { file: fi, row: raw.row, reject, record: record() }),
                Ok(row) => {
                    let dup = if existing.contains(&row.key) {
                        Some("duplicate of a row already in the store".to_string())
                    } else if let Some((f0, r0)) = seen.get(&row.key) {
                        let name = tables[*f0].0.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                        Some(format!("duplicate of row {r0} of {name}"))
                    } else {
                        None
                    };
                    if let Some(reason) = dup {
                        duplicates += 1;
                        let column = if schema.key_columns.is_empty() { "*".to_string() } else { schema.key_columns.join("+") };
                        quarantined.push(Quarantined { file: fi, row: raw.row, reject: Reject { column, reason }, record: record() });
                    } else {
                        seen.insert(row.key, (fi, raw.row));
                        accepted.push(row);
                    }
                }
            }
        }
    }
    existing.clear();
    let stored = accepted.len();
    let nq = quarantined.len();
    debug_assert_eq!(stored + nq, total);

    // Stage everything, then commit: the Parquet part is the commit point.
    let part = tdir.join(format!("{ingest_id}.parquet"));
    let qfile = scope.quarantine_dir().join(format!("{ingest_id}.csv"));
    let part_staging = store::staging_path(&part);
    let q_staging = store::staging_path(&qfile);
    if stored > 0 {
        let mut df = store::frame(&schema, accepted, &ingest_id)?;
        store::stage(&part_staging, |f| store::write_parquet(f, &mut df))?;
    }
    if nq > 0 {
        store::stage(&q_staging, |f| {
            let mut w = csv::Writer::from_writer(f);
            let io = |e: csv::Error| Error::io(&q_staging, std::io::Error::other(e));
            w.write_record(["file", "row", "column", "reason", "record"]).map_err(io)?;
            for q in &quarantined {
                let name = tables[q.file].0.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                w.write_record([name.as_str(), &q.row.to_string(), &q.reject.column, &q.reject.reason, &q.record]).map_err(io)?;
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
