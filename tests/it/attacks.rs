//! The store attacked: each test is named after an attack that worked on an earlier
//! version (issue 13) and must not work now.

use std::path::{Path, PathBuf};

use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};

// The planting and the search, shared with the binary's report test
// (studies/tests/cli/identifiers.rs).
#[path = "planting.rs"]
mod planting;
pub(crate) use planting::{plant, texts_under};

fn key() -> Key {
    Key::from_bytes(std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a))
}

pub(crate) fn simulate_small(dir: &Path, persons: usize, tenants: usize) -> Instruments {
    let inst = Instruments::builtin().unwrap();
    let cfg = SimConfig {
        persons,
        tenants,
        seed: 11,
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    simulate(&cfg, &inst, dir).unwrap();
    inst
}

pub(crate) fn ingest_all(store: &Store, inst: &Instruments, exports: &Path, tenants: &[&str]) {
    for t in tenants {
        let tenant = TenantId::new(t).unwrap();
        for table in Table::ALL {
            let file = exports.join(t).join(format!("{}.csv", table.name()));
            let s = ingest(store, inst, &key(), &tenant, table, &[file], &NoProgress).unwrap();
            assert_eq!(s.read, s.stored + s.quarantined);
        }
    }
}

#[test]
fn attack_planted_identifiers_never_reach_the_store_quarantine_or_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 400, 2);
    let planted = plant(&exports);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01", "t02"]);
    let texts = texts_under(store.root());
    assert!(
        texts
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("quarantine"))
    );
    planted.assert_absent(&texts);
    // The free text is kept, only the identifiers go.
    let services = store
        .scope(&TenantId::new("t01").unwrap())
        .read(Table::Services)
        .unwrap();
    let provider: Vec<String> = services
        .column("provider")
        .unwrap()
        .str()
        .unwrap()
        .into_iter()
        .flatten()
        .map(String::from)
        .collect();
    assert!(
        provider
            .iter()
            .all(|p| p.starts_with("Centro per l'impiego 001"))
    );
    for marker in [
        "[codice fiscale rimosso]",
        "[nome rimosso]",
        "[email rimossa]",
        "[numero rimosso]",
    ] {
        assert!(provider.iter().any(|p| p.contains(marker)), "{marker}");
    }
}

#[test]
fn attack_a_quarantine_file_never_quotes_an_identifier_or_a_formula() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 200, 1);
    let planted = plant(&exports);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let tenant = TenantId::new("t01").unwrap();
    let s = ingest(
        &store,
        &inst,
        &key(),
        &tenant,
        Table::Persons,
        &[exports.join("t01/persons.csv")],
        &NoProgress,
    )
    .unwrap();
    let q = s.quarantine_file.expect("the planted rows are quarantined");
    let text = std::fs::read_to_string(&q).unwrap();
    planted.assert_absent(&[(q.clone(), text.clone())]);
    let mut rdr = csv::Reader::from_path(&q).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    for (column, shown) in [
        ("citizenship", false),
        ("sex", false),
        ("municipality", true),
    ] {
        let r = rows
            .iter()
            .find(|r| &r[2] == column)
            .unwrap_or_else(|| panic!("no rejection on {column}: {text}"));
        assert_eq!(r[3].contains("not shown"), !shown, "{column}: {}", &r[3]);
    }
    // No cell a spreadsheet would run.
    for r in &rows {
        for f in r.iter() {
            assert!(!f.starts_with(['=', '+', '@']), "formula cell {f:?}");
        }
    }
}

/// The store, its files and folders, as they must be: private, no links.
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            assert!(!ft.is_symlink());
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                let m = e.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(m, 0o600, "{}", e.path().display());
            }
        }
    }
}

#[test]
fn attack_store_files_readable_by_others_are_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 150, 1);
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    ingest_all(&store, &inst, &exports, &["t01"]);
    assert_private(&root);
    // A store copied with lax permissions (an older version, a careless copy) is
    // tightened when opened.
    let part = store
        .scope(&TenantId::new("t01").unwrap())
        .parts(Table::Persons)
        .unwrap()
        .remove(0);
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&root).unwrap();
    assert_private(&root);
}

#[test]
fn attack_a_symlinked_tenant_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 150, 1);
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    ingest_all(&store, &inst, &exports, &["t01"]);
    // "t02" made to read t01's data.
    std::os::unix::fs::symlink(root.join("tenants/t01"), root.join("tenants/t02")).unwrap();
    let err = Store::open(&root).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert!(store.tenants().is_err());
    let scope = store.scope(&TenantId::new("t02").unwrap());
    assert!(
        scope.read(Table::Persons).is_err(),
        "a linked tenant was read"
    );
}

#[test]
fn attack_a_second_key_would_store_everyone_twice_and_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 150, 1);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01"]);
    let other = Key::from_bytes(std::array::from_fn(|i| (i as u8).wrapping_mul(91) ^ 0x33));
    let err = ingest(
        &store,
        &inst,
        &other,
        &TenantId::new("t01").unwrap(),
        Table::Persons,
        &[exports.join("t01/persons.csv")],
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another key"), "{err}");
    // Even through a fresh handle on the store.
    let again = Store::open(store.root()).unwrap();
    assert_eq!(again.key_fingerprint(), Some(key().fingerprint().as_str()));
    // Every audit line names the key that wrote.
    let audit = std::fs::read_to_string(store.root().join("audit.jsonl")).unwrap();
    for line in audit.lines() {
        assert!(line.contains(&key().fingerprint()), "{line}");
    }
}

#[test]
fn attack_a_key_kept_inside_the_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 100, 1);
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    let path = root.join("my.key");
    Key::generate().unwrap().save_new(&path).unwrap();
    let k = Key::load(&path).unwrap();
    let err = ingest(
        &store,
        &inst,
        &k,
        &TenantId::new("t01").unwrap(),
        Table::Persons,
        &[exports.join("t01/persons.csv")],
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("inside the store"), "{err}");
}

/// Run by the PID-namespace test in a child process: one ingest of the file given.
#[test]
fn child_concurrent_ingest() {
    let (Ok(store), Ok(file)) = (
        std::env::var("OCCUPA_TEST_STORE"),
        std::env::var("OCCUPA_TEST_FILE"),
    ) else {
        return;
    };
    let inst = Instruments::builtin().unwrap();
    let store = Store::open(Path::new(&store)).unwrap();
    ingest(
        &store,
        &inst,
        &key(),
        &TenantId::new("t01").unwrap(),
        Table::Persons,
        &[PathBuf::from(file)],
        &NoProgress,
    )
    .unwrap();
}

fn child(store: &Path, file: &Path, hold_ms: u64, new_pid_namespace: bool) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if new_pid_namespace {
        let mut c = std::process::Command::new("unshare");
        c.args(["--user", "--map-root-user", "--pid", "--fork"])
            .arg(&exe);
        c
    } else {
        std::process::Command::new(&exe)
    };
    cmd.args(["--exact", "attacks::child_concurrent_ingest", "--nocapture"])
        .env("OCCUPA_TEST_STORE", store)
        .env("OCCUPA_TEST_FILE", file)
        .env("OCCUPA_HOLD_LOCK_MS", hold_ms.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.spawn().unwrap()
}

#[test]
fn attack_two_ingests_from_different_pid_namespaces_store_each_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    simulate_small(&exports, 300, 1);
    let root = tmp.path().join("store");
    Store::open(&root).unwrap();
    let file = exports.join("t01/persons.csv");
    // A PID namespace of its own, when this kernel lets us make one: a lock that trusted
    // /proc/<pid> saw this holder as dead and broke its lock.
    let unshare = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unshare {
        eprintln!("no user/PID namespaces here: both ingests run in this namespace");
    }
    let mut a = child(&root, &file, 1500, unshare);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let mut b = child(&root, &file, 0, false);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let store = Store::open(&root).unwrap();
    let df = store
        .scope(&TenantId::new("t01").unwrap())
        .read(Table::Persons)
        .unwrap();
    let ids = df.column("person_id").unwrap().str().unwrap();
    let distinct: std::collections::HashSet<&str> = ids.into_iter().flatten().collect();
    assert!(df.height() > 200);
    assert_eq!(distinct.len(), df.height(), "a person was stored twice");
    // Both ingests are in the audit log, each once.
    let audit = std::fs::read_to_string(root.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"command\":\"ingest\"").count(), 2);
}

#[test]
fn attack_a_crash_after_the_commit_does_not_lose_the_audit_line() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    simulate_small(&exports, 150, 1);
    let root = tmp.path().join("store");
    Store::open(&root).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "attacks::child_concurrent_ingest", "--nocapture"])
        .env("OCCUPA_TEST_STORE", &root)
        .env("OCCUPA_TEST_FILE", exports.join("t01/persons.csv"))
        .env("OCCUPA_FAILPOINT", "ingest-after-commit")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the child must have died after its commit"
    );
    let count = || {
        std::fs::read_to_string(root.join("audit.jsonl"))
            .unwrap_or_default()
            .matches("\"command\":\"ingest\"")
            .count()
    };
    assert_eq!(count(), 0, "the crash came before the line was appended");
    let store = Store::open(&root).unwrap();
    assert!(
        store
            .scope(&TenantId::new("t01").unwrap())
            .read(Table::Persons)
            .unwrap()
            .height()
            > 0
    );
    assert_eq!(
        count(),
        1,
        "the next open completes the committed ingest's line"
    );
    Store::open(&root).unwrap();
    assert_eq!(count(), 1, "and only once");
}

#[test]
fn attack_a_tenant_name_registry_holds_no_name() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = simulate_small(&exports, 150, 1);
    let planted = plant(&exports);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    ingest_all(&store, &inst, &exports, &["t01"]);
    let bytes = std::fs::read(store.root().join("tenants/t01/names.bin")).unwrap();
    assert!(bytes.len() >= 8 * 20 && bytes.len().is_multiple_of(8));
    let as_text = String::from_utf8_lossy(&bytes).to_lowercase();
    for w in &planted.words {
        assert!(!as_text.contains(w.as_str()));
    }
}
