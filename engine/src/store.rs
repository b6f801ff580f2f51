//! The embedded store: a folder, no server.
//!
//! ```text
//! <root>/tenants/<tenant>/<table>/<ingest-id>.parquet   pseudonymised records
//! <root>/quarantine/<tenant>/<ingest-id>.csv            rejected rows and reasons
//! <root>/releases/<release-id>/                         anonymised research releases
//! <root>/audit.jsonl                                    append-only log of what ran
//! ```
//!
//! A tenant's data is reached only through a [`TenantScope`], which is built from a
//! validated [`TenantId`] and can only list and read files under its own folder: the
//! isolation between authorities is a property of the type, not of every caller's care.
//! Files become visible by an atomic rename, so readers never see half a write.

use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::schema::{OutType, Schema, Table};
use crate::value::Value;
use crate::{Error, Result};

/// An authority's identifier: 1–64 characters of `a-z 0-9 _ -`, starting with a letter
/// or digit. The restriction makes it impossible to name a path outside the tenant folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates an identifier.
    pub fn new(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && id.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(TenantId(id.to_string()))
        } else {
            Err(Error::Param {
                name: "tenant",
                reason: format!(
                    "{id:?} must be 1–64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
                ),
            })
        }
    }
    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A store folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) a store folder.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["tenants", "quarantine", "releases"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tenants that have data, sorted.
    pub fn tenants(&self) -> Result<Vec<TenantId>> {
        let dir = self.root.join("tenants");
        let mut v = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            if let Some(name) = e.file_name().to_str()
                && let Ok(t) = TenantId::new(name)
            {
                v.push(t);
            }
        }
        v.sort();
        Ok(v)
    }

    /// The scope through which one tenant's data is read and written.
    pub fn scope(&self, tenant: &TenantId) -> TenantScope {
        TenantScope {
            root: self.root.clone(),
            tenant: tenant.clone(),
        }
    }

    /// Appends one JSON line to `audit.jsonl` (who ran what, on which data, when).
    pub fn audit(&self, event: serde_json::Value) -> Result<()> {
        let path = self.root.join("audit.jsonl");
        let mut entry = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "user": std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        });
        if let (Some(e), serde_json::Value::Object(extra)) = (entry.as_object_mut(), event) {
            e.extend(extra);
        }
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::io(&path, e))
    }
}

/// One tenant's view of the store.
#[derive(Debug, Clone)]
pub struct TenantScope {
    root: PathBuf,
    tenant: TenantId,
}

impl TenantScope {
    /// Whose scope this is.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The folder of a table.
    pub fn table_dir(&self, table: Table) -> PathBuf {
        self.root
            .join("tenants")
            .join(self.tenant.as_str())
            .join(table.name())
    }

    /// The tenant's quarantine folder.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine").join(self.tenant.as_str())
    }

    /// Committed Parquet parts of a table, sorted (staging files are invisible).
    pub fn parts(&self, table: Table) -> Result<Vec<PathBuf>> {
        let dir = self.table_dir(table);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut v = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let p = e.map_err(|e| Error::io(&dir, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".parquet") && !name.starts_with('.') {
                v.push(p);
            }
        }
        v.sort();
        Ok(v)
    }

    /// All rows of a table (an empty frame with no columns when nothing is stored).
    pub fn read(&self, table: Table) -> Result<DataFrame> {
        self.read_columns(table, None)
    }

    /// Selected columns of a table.
    pub fn read_columns(&self, table: Table, columns: Option<&[&str]>) -> Result<DataFrame> {
        let mut out: Option<DataFrame> = None;
        for p in self.parts(table)? {
            let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            let df = ParquetReader::new(f)
                .with_columns(columns.map(|c| c.iter().map(|s| s.to_string()).collect()))
                .finish()
                .map_err(|e| Error::Store {
                    path: p.clone(),
                    reason: format!("unreadable part: {e}"),
                })?;
            match out.as_mut() {
                None => out = Some(df),
                Some(acc) => {
                    acc.vstack_mut_owned(df).map_err(|e| Error::Store {
                        path: p.clone(),
                        reason: format!("part does not match the table's columns: {e}"),
                    })?;
                }
            }
        }
        Ok(out.unwrap_or_default())
    }

    /// The duplicate-detection keys already stored for a table, sorted.
    pub fn keys(&self, table: Table) -> Result<Vec<u64>> {
        let df = self.read_columns(table, Some(&["row_key"]))?;
        let mut keys = Vec::with_capacity(df.height());
        if df.height() > 0 {
            keys.extend(df.column("row_key")?.u64()?.into_no_null_iter());
        }
        keys.sort_unstable();
        Ok(keys)
    }
}

enum ColBuilder {
    Str(StringChunkedBuilder),
    Int(PrimitiveChunkedBuilder<Int64Type>),
    Float(PrimitiveChunkedBuilder<Float64Type>),
    Bool(BooleanChunkedBuilder),
    Date(PrimitiveChunkedBuilder<Int32Type>),
}

/// Accumulates converted rows straight into Arrow columns: no per-row allocation survives
/// the row, which keeps a million-row ingest within a few hundred megabytes.
pub struct FrameBuilder {
    cols: Vec<ColBuilder>,
    keys: Vec<u64>,
}

impl FrameBuilder {
    /// Columns of [`Schema::stored_columns`].
    pub fn new(schema: &Schema, capacity: usize) -> Self {
        let cols = schema
            .stored_columns()
            .into_iter()
            .map(|(name, t)| {
                let name = PlSmallStr::from(name);
                match t {
                    OutType::Str => ColBuilder::Str(StringChunkedBuilder::new(name, capacity)),
                    OutType::Int => ColBuilder::Int(PrimitiveChunkedBuilder::new(name, capacity)),
                    OutType::Float => {
                        ColBuilder::Float(PrimitiveChunkedBuilder::new(name, capacity))
                    }
                    OutType::Bool => ColBuilder::Bool(BooleanChunkedBuilder::new(name, capacity)),
                    OutType::Date => ColBuilder::Date(PrimitiveChunkedBuilder::new(name, capacity)),
                }
            })
            .collect();
        FrameBuilder {
            cols,
            keys: Vec::with_capacity(capacity),
        }
    }

    /// Appends one converted row.
    pub fn push(&mut self, values: &[Value], key: u64) {
        self.keys.push(key);
        for (b, v) in self
            .cols
            .iter_mut()
            .zip(values.iter().chain(std::iter::repeat(&Value::Null)))
        {
            match (b, v) {
                (ColBuilder::Str(c), Value::Str(s)) => c.append_value(s),
                (ColBuilder::Str(c), Value::Code(s)) => c.append_value(s),
                (ColBuilder::Str(c), _) => c.append_null(),
                (ColBuilder::Int(c), Value::Int(x)) => c.append_value(*x),
                (ColBuilder::Int(c), _) => c.append_null(),
                (ColBuilder::Float(c), Value::Float(x)) => c.append_value(*x),
                (ColBuilder::Float(c), _) => c.append_null(),
                (ColBuilder::Bool(c), Value::Bool(x)) => c.append_value(*x),
                (ColBuilder::Bool(c), _) => c.append_null(),
                (ColBuilder::Date(c), Value::Date(x)) => c.append_value(*x),
                (ColBuilder::Date(c), _) => c.append_null(),
            }
        }
    }

    /// Duplicate-detection keys of the rows pushed, in order.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// The frame with `row_key`, keeping only rows where `keep` is true. (The ingest that
    /// wrote a row is the name of its Parquet part, so it is not repeated in every row.)
    pub fn finish(self, keep: &[bool]) -> Result<DataFrame> {
        let mut columns: Vec<Column> = Vec::with_capacity(self.cols.len() + 2);
        for b in self.cols {
            let s = match b {
                ColBuilder::Str(c) => c.finish().into_series(),
                ColBuilder::Int(c) => c.finish().into_series(),
                ColBuilder::Float(c) => c.finish().into_series(),
                ColBuilder::Bool(c) => c.finish().into_series(),
                ColBuilder::Date(c) => c.finish().into_series().cast(&DataType::Date)?,
            };
            columns.push(s.into());
        }
        columns.push(Series::new("row_key".into(), self.keys).into());
        let df = DataFrame::new(columns)?;
        if keep.iter().all(|k| *k) {
            return Ok(df);
        }
        let mask = BooleanChunked::from_slice("keep".into(), keep);
        Ok(df.filter(&mask)?)
    }
}

/// Writes bytes produced by `write` to `path` atomically: into a hidden staging file in
/// the same folder, flushed to disk, then renamed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let staging = staging_path(path);
    stage(&staging, write)?;
    commit(&staging, path)
}

/// The hidden staging name of a final path.
pub fn staging_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".staging-{name}"))
}

/// Writes and syncs a staging file.
pub fn stage(staging: &Path, write: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    if let Some(dir) = staging.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = std::fs::File::create(staging).map_err(|e| Error::io(staging, e))?;
    write(&mut f)?;
    f.sync_all().map_err(|e| Error::io(staging, e))
}

/// Makes a staged file visible under its final name (atomic on POSIX file systems) and
/// syncs the folder so the rename survives a power cut.
pub fn commit(staging: &Path, path: &Path) -> Result<()> {
    std::fs::rename(staging, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates a staging file with a large write buffer (the Parquet writer emits many small
/// pieces; unbuffered, that is thousands of system calls).
pub fn create_staging(staging: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    if let Some(dir) = staging.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let f = std::fs::File::create(staging).map_err(|e| Error::io(staging, e))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

/// A Parquet writer taking a table's frames batch by batch (zstd level 1: nearly LZ4's
/// speed at two thirds of its size on our data; statistics on).
pub fn part_writer<'a>(
    out: &'a mut std::io::BufWriter<std::fs::File>,
    schema: &Schema,
) -> Result<BatchedWriter<&'a mut std::io::BufWriter<std::fs::File>>> {
    let empty = FrameBuilder::new(schema, 0).finish(&[])?;
    Ok(ParquetWriter::new(out)
        .with_compression(ParquetCompression::Zstd(ZstdLevel::try_new(1).ok()))
        .batched(empty.schema())?)
}

/// Flushes a staging file and syncs it to disk.
pub fn sync_staging(mut out: std::io::BufWriter<std::fs::File>, staging: &Path) -> Result<()> {
    out.flush().map_err(|e| Error::io(staging, e))?;
    out.get_ref().sync_all().map_err(|e| Error::io(staging, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_escape_their_folder() {
        for bad in ["", "../t2", "t/2", "T1", ".hidden", "a b", &"x".repeat(65)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::new("comune-pordenone_01").is_ok());
    }

    #[test]
    fn staging_files_are_invisible_to_readers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scope = store.scope(&TenantId::new("t1").unwrap());
        let tdir = scope.table_dir(Table::Persons);
        std::fs::create_dir_all(&tdir).unwrap();
        std::fs::write(tdir.join(".staging-x.parquet"), b"half a write").unwrap();
        assert!(scope.parts(Table::Persons).unwrap().is_empty());
        assert_eq!(scope.read(Table::Persons).unwrap().height(), 0);
    }
}
