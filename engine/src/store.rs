//! The embedded store: a folder, no server.
//!
//! ```text
//! <root>/tenants/<tenant>/<table>/<ingest-id>.parquet   pseudonymised records
//! <root>/quarantine/<tenant>/<ingest-id>.csv            rejected rows and reasons
//! <root>/releases/<release-id>/                         anonymised research releases
//! <root>/tenants/<tenant>/names.bin                      keyed hashes of the tenant's names
//! <root>/quarantine/<tenant>/<ingest-id>.csv            rejected rows and reasons
//! <root>/releases/<release-id>/                         anonymised research releases
//! <root>/ledger/                                        what reports have published
//! <root>/audit.jsonl                                    append-only log of what ran
//! <root>/audit.pending/                                 audit lines of commits in flight
//! <root>/store.json                                     format and the key's fingerprint
//! ```
//!
//! A tenant's data is reached only through a [`TenantScope`], which is built from a
//! validated [`TenantId`] and can only list and read files under its own folder: the
//! isolation between authorities is a property of the type, not of every caller's care.
//! Files become visible by an atomic rename, so readers never see half a write.
//!
//! The store defends itself: files are created `0600` and folders `0700` (and tightened
//! when an older store is opened); a symbolic link anywhere inside is refused, since a
//! link is how one tenant's folder could be made to read another's; writers take real
//! file locks ([`FileLock`], `flock`), which hold across processes and PID namespaces;
//! the store records the fingerprint of the key that pseudonymised it and refuses any
//! other key ([`Store::bind_key`]); and an audit line is part of the commit it describes
//! ([`Store::audit_intent`]): a crash after the commit completes the line at the next open.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use polars::prelude::*;

use crate::pseudonym::Key;
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
    /// The fingerprint of the store's key, once known (from `store.json` or a first ingest).
    fingerprint: Arc<OnceLock<String>>,
}

/// Creates a folder and its missing parents, each readable by its owner only.
pub fn private_dir_all(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| Error::io(dir, e))
}

/// Creates (or truncates) a file readable and writable by its owner only.
pub fn create_private(path: &Path) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| Error::io(path, e))
}

fn refuse_link(path: &Path) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        reason: "is a symbolic link; links are refused inside a store (a link could make one \
                 tenant read another's data): replace it with the real folder or file"
            .into(),
    }
}

/// Fails if `path` exists and is a symbolic link.
pub fn no_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refuse_link(path)),
        _ => Ok(()),
    }
}

/// Appends `line` (ending in a newline) to an audit log as the store writes its own: never
/// through a link, created private (0600), one write of the whole line to an `O_APPEND`
/// file (concurrent writers never interleave), synced.
pub fn append_line(path: &Path, line: &[u8]) -> Result<()> {
    let path = path.to_path_buf();
    no_link(&path)?;
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&path).map_err(|e| Error::io(&path, e))?;
    // One write of a whole line to an O_APPEND file: lines of concurrent writers never
    // interleave.
    f.write_all(line)
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io(&path, e))
}

/// An exclusive lock on a file, held until dropped (`flock` on Unix: released by the
/// kernel when the process dies, whatever its PID namespace, so it is never stale).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock on `path` (created if missing), waiting for its holder if another
    /// process has it; `waiting` is called once before waiting.
    pub fn acquire(path: &Path, waiting: impl FnOnce()) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            private_dir_all(dir)?;
        }
        no_link(path)?;
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o.open(path).map_err(|e| Error::io(path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().map_err(|e| Error::io(path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        Ok(FileLock { _file: file })
    }

    /// Takes the lock only if it is free.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}

/// What `store.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoreMeta {
    format: String,
    key_fingerprint: String,
}

const STORE_FORMAT: &str = "occupa-store/1";

/// An audit line written before the commit it describes (see [`Store::audit_intent`]).
#[derive(Debug)]
pub struct AuditIntent {
    pending: PathBuf,
    line: Vec<u8>,
    _lock: FileLock,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PendingAudit {
    id: String,
    line: String,
    /// The file or folder whose existence proves the commit happened.
    evidence: Option<PathBuf>,
}

impl Store {
    /// Opens (creating if needed) a store folder. Tightens the permissions of an older
    /// store, refuses one with links inside, and completes the audit lines of commits a
    /// crash interrupted.
    pub fn open(root: &Path) -> Result<Self> {
        private_dir_all(root)?;
        for sub in ["tenants", "quarantine", "releases"] {
            let p = root.join(sub);
            no_link(&p)?;
            private_dir_all(&p)?;
        }
        let store = Store {
            root: root.to_path_buf(),
            fingerprint: Arc::new(OnceLock::new()),
        };
        store.check_tree()?;
        if let Some(meta) = store.meta()? {
            let _ = store.fingerprint.set(meta.key_fingerprint);
        }
        store.recover_audit()?;
        Ok(store)
    }

    /// Walks the store: no link anywhere, files 0600 and folders 0700.
    fn check_tree(&self) -> Result<()> {
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let e = e.map_err(|e| Error::io(&dir, e))?;
                let path = e.path();
                let ft = e.file_type().map_err(|err| Error::io(&path, err))?;
                if ft.is_symlink() {
                    return Err(refuse_link(&path));
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let meta = e.metadata().map_err(|err| Error::io(&path, err))?;
                    let mode = meta.permissions().mode() & 0o777;
                    let want = if ft.is_dir() { 0o700 } else { 0o600 };
                    if mode & 0o077 != 0 {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))
                            .map_err(|err| Error::io(&path, err))?;
                    }
                }
                if ft.is_dir() {
                    stack.push(path);
                }
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&self.root)
                .map_err(|e| Error::io(&self.root, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io(&self.root, e))?;
            }
        }
        Ok(())
    }

    fn meta(&self) -> Result<Option<StoreMeta>> {
        let path = self.root.join("store.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Store {
                    path,
                    reason: format!("unreadable store description: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Accepts `key` for writing into this store: it must live outside the store, and be
    /// the key the store was created with (its fingerprint is recorded in `store.json` by
    /// the first ingest). A second key would store every person again under other
    /// pseudonyms, so it is refused.
    pub fn bind_key(&self, key: &Key) -> Result<()> {
        if let Some(src) = key.source() {
            let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            if abs(src).starts_with(abs(&self.root)) {
                return Err(Error::Key(format!(
                    "{} is inside the store {}; keep the key outside it (whoever copies the \
                     store must not get the key with it)",
                    src.display(),
                    self.root.display()
                )));
            }
        }
        let fp = key.fingerprint();
        let _lock = FileLock::acquire(&self.root.join(".store.lock"), || {})?;
        match self.meta()? {
            Some(meta) if meta.key_fingerprint == fp => {}
            Some(meta) => {
                return Err(Error::Key(format!(
                    "this store was pseudonymised with another key (fingerprint {}; this key is \
                     {fp}); use the store's own key: a second key would store every person \
                     again under different pseudonyms",
                    meta.key_fingerprint
                )));
            }
            None => {
                let meta = StoreMeta {
                    format: STORE_FORMAT.into(),
                    key_fingerprint: fp.clone(),
                };
                write_atomic(&self.root.join("store.json"), |f| {
                    serde_json::to_writer_pretty(&mut *f, &meta)?;
                    f.write_all(b"\n").map_err(|e| Error::io(&self.root, e))
                })?;
            }
        }
        let _ = self.fingerprint.set(fp);
        Ok(())
    }

    /// The fingerprint of the store's key, once a key has been bound.
    pub fn key_fingerprint(&self) -> Option<&str> {
        self.fingerprint.get().map(String::as_str)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tenants that have data, sorted. A link among the tenant folders is an error.
    pub fn tenants(&self) -> Result<Vec<TenantId>> {
        let dir = self.root.join("tenants");
        let mut v = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            if e.file_type()
                .map_err(|err| Error::io(e.path(), err))?
                .is_symlink()
            {
                return Err(refuse_link(&e.path()));
            }
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

    fn audit_line(&self, event: serde_json::Value) -> Result<Vec<u8>> {
        let mut entry = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "user": std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            "key_fingerprint": self.key_fingerprint(),
        });
        if let (Some(e), serde_json::Value::Object(extra)) = (entry.as_object_mut(), event) {
            e.extend(extra);
        }
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        Ok(line)
    }

    fn append_audit(&self, line: &[u8]) -> Result<()> {
        append_line(&self.root.join("audit.jsonl"), line)
    }

    /// Appends one JSON line to `audit.jsonl` (who ran what, on which data, when, with
    /// which key) for an action that commits nothing else.
    pub fn audit(&self, event: serde_json::Value) -> Result<()> {
        let line = self.audit_line(event)?;
        self.append_audit(&line)
    }

    /// The audit line of a commit, written (and locked) *before* the commit: `evidence`
    /// is the file or folder whose appearance is the commit. [`Store::complete_audit`]
    /// appends the line after it; if the process dies in between, the next
    /// [`Store::open`] appends it when the evidence exists and drops it otherwise, so the
    /// log never misses a commit nor records one that did not happen.
    pub fn audit_intent(
        &self,
        id: &str,
        mut event: serde_json::Value,
        evidence: Option<&Path>,
    ) -> Result<AuditIntent> {
        if let serde_json::Value::Object(m) = &mut event {
            m.insert("intent".into(), id.into());
        }
        let line = self.audit_line(event)?;
        let dir = self.root.join("audit.pending");
        private_dir_all(&dir)?;
        let pending = dir.join(format!("{id}.json"));
        let staging = staging_path(&pending);
        stage(&staging, |f| {
            let p = PendingAudit {
                id: id.to_string(),
                line: String::from_utf8_lossy(&line).into_owned(),
                evidence: evidence.map(Path::to_path_buf),
            };
            serde_json::to_writer(&mut *f, &p)?;
            Ok(())
        })?;
        // Locked before it becomes visible, so a recovery never mistakes it for a crash's.
        let lock = FileLock::acquire(&staging, || {})?;
        commit(&staging, &pending)?;
        Ok(AuditIntent {
            pending,
            line,
            _lock: lock,
        })
    }

    /// Appends an intent's line (the commit happened) and forgets the intent.
    pub fn complete_audit(&self, intent: AuditIntent) -> Result<()> {
        self.append_audit(&intent.line)?;
        std::fs::remove_file(&intent.pending).map_err(|e| Error::io(&intent.pending, e))
    }

    /// Forgets an intent whose commit will not happen (the operation failed before it).
    pub fn abandon_audit(&self, intent: AuditIntent) -> Result<()> {
        std::fs::remove_file(&intent.pending).map_err(|e| Error::io(&intent.pending, e))
    }

    /// Completes or drops the intents of processes that died (their locks are free).
    fn recover_audit(&self) -> Result<()> {
        let dir = self.root.join("audit.pending");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(".staging-") {
                if let Some(_l) = FileLock::try_acquire(&path)? {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Some(_held) = FileLock::try_acquire(&path)? else {
                continue; // its commit is still running
            };
            let bytes = std::fs::read(&path).map_err(|err| Error::io(&path, err))?;
            let Ok(p) = serde_json::from_slice::<PendingAudit>(&bytes) else {
                std::fs::remove_file(&path).map_err(|err| Error::io(&path, err))?;
                continue;
            };
            let committed = p.evidence.as_ref().is_none_or(|ev| ev.exists());
            let log = std::fs::read_to_string(self.root.join("audit.jsonl")).unwrap_or_default();
            let marker = format!("\"intent\":\"{}\"", p.id);
            if committed && !log.contains(&marker) {
                self.append_audit(p.line.as_bytes())?;
            }
            std::fs::remove_file(&path).map_err(|err| Error::io(&path, err))?;
        }
        Ok(())
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

    /// The tenant's folder.
    pub fn dir(&self) -> PathBuf {
        self.root.join("tenants").join(self.tenant.as_str())
    }

    /// The keyed hashes of the names this tenant's files carried (see
    /// [`crate::identifiers::NameRegistry`]); empty when none was seen.
    pub fn name_hashes(&self) -> Result<Vec<u64>> {
        let path = self.dir().join("names.bin");
        no_link(&path)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Stages the name hashes (sorted, unique) for [`commit`]; returns (staging, final).
    pub fn stage_name_hashes(&self, hashes: &[u64]) -> Result<(PathBuf, PathBuf)> {
        let path = self.dir().join("names.bin");
        let staging = staging_path(&path);
        stage(&staging, |f| {
            let mut buf = Vec::with_capacity(hashes.len() * 8);
            for h in hashes {
                buf.extend_from_slice(&h.to_le_bytes());
            }
            f.write_all(&buf).map_err(|e| Error::io(&path, e))
        })?;
        Ok((staging, path))
    }

    /// Committed Parquet parts of a table, sorted (staging files are invisible). A link
    /// for the tenant's folder, the table's or a part is an error.
    pub fn parts(&self, table: Table) -> Result<Vec<PathBuf>> {
        no_link(&self.dir())?;
        let dir = self.table_dir(table);
        no_link(&dir)?;
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut v = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            if e.file_type()
                .map_err(|err| Error::io(e.path(), err))?
                .is_symlink()
            {
                return Err(refuse_link(&e.path()));
            }
            let p = e.path();
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
/// the same folder (readable by its owner only), flushed to disk, then renamed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let staging = staging_path(path);
    stage(&staging, write)?;
    commit(&staging, path)
}

/// As [`write_atomic`], for a product meant to be shared (a report, a release copied to
/// a partner): the file gets the user's default permissions.
pub fn write_atomic_shared(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let staging = staging_path(path);
    if let Some(dir) = staging.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = std::fs::File::create(&staging).map_err(|e| Error::io(&staging, e))?;
    write(&mut f)?;
    f.sync_all().map_err(|e| Error::io(&staging, e))?;
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
        private_dir_all(dir)?;
    }
    let mut f = create_private(staging)?;
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
        private_dir_all(dir)?;
    }
    let f = create_private(staging)?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

/// A Parquet writer taking a table's frames batch by batch (LZ4, statistics on). Not
/// zstd: its files are two thirds of LZ4's, but every page read creates a decompression
/// context, 7 % of a quarterly report's time at 100,000 persons; with LZ4 the report
/// takes 4.4 s instead of 4.9 s for a store half as large again (benches/RESULTS.md).
pub fn part_writer<'a>(
    out: &'a mut std::io::BufWriter<std::fs::File>,
    schema: &Schema,
) -> Result<BatchedWriter<&'a mut std::io::BufWriter<std::fs::File>>> {
    let empty = FrameBuilder::new(schema, 0).finish(&[])?;
    Ok(ParquetWriter::new(out)
        .with_compression(ParquetCompression::Lz4Raw)
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
