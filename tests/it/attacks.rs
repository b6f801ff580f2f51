//! The store attacked: each test is named after an attack that worked on an earlier
//! version (issue 13) and must not work now.

use std::path::{Path, PathBuf};

use occupa_engine::codice_fiscale::make_temporary;
use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::read::read_file;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};
use polars::prelude::*;

fn key() -> Key {
    Key::from_bytes(std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a))
}

/// A comma-separated UTF-8 copy of an export, with `edit` applied to its rows.
fn rewrite(path: &Path, edit: impl Fn(usize, &[String], &mut Vec<String>)) {
    let t = read_file(path).unwrap();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(&t.header).unwrap();
    for (i, r) in t.rows.iter().enumerate() {
        let mut fields: Vec<String> = r
            .fields
            .as_ref()
            .unwrap()
            .iter()
            .map(String::from)
            .collect();
        edit(i, &t.header, &mut fields);
        w.write_record(&fields).unwrap();
    }
    w.flush().unwrap();
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

/// Upper-case letters and digits only: how a code is searched for, whatever its spacing.
fn compact(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Every text a store or an output folder holds: string cells of Parquet files, and the
/// contents of text files (CSV, JSON, JSON lines, Markdown, HTML).
pub(crate) fn texts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
                "parquet" => {
                    let df = ParquetReader::new(std::fs::File::open(&p).unwrap())
                        .finish()
                        .unwrap();
                    for c in df.get_columns() {
                        out.push((p.clone(), c.name().to_string()));
                        if c.dtype() == &DataType::String {
                            for v in c.str().unwrap().into_iter().flatten() {
                                out.push((p.clone(), v.to_string()));
                            }
                        }
                    }
                }
                "csv" | "json" | "jsonl" | "md" | "html" | "txt" | "typ" | "svg" => {
                    out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
                }
                _ => {}
            }
        }
    }
    out
}

/// What was planted, and how to look for it.
pub(crate) struct Planted {
    /// Tax codes (16 or 11 characters), searched compacted and upper case.
    pub codes: Vec<String>,
    /// Words searched case-insensitively (rare names, e-mail local parts).
    pub words: Vec<String>,
    /// Digit runs (phone numbers), searched among the digits.
    pub digits: Vec<String>,
}

impl Planted {
    /// Fails naming the file if any planted identifier is found in `texts`.
    pub(crate) fn assert_absent(&self, texts: &[(PathBuf, String)]) {
        for (path, t) in texts {
            let c = compact(t);
            for code in &self.codes {
                assert!(
                    !c.contains(code.as_str()),
                    "a planted tax code in {}",
                    path.display()
                );
                // Its first 11 characters identify the person as well.
                if code.len() == 16 {
                    assert!(
                        !c.contains(&code[..11]),
                        "part of a planted tax code in {}",
                        path.display()
                    );
                }
            }
            let lower = t.to_lowercase();
            for w in &self.words {
                assert!(
                    !lower.contains(w.as_str()),
                    "planted {w:?} in {}",
                    path.display()
                );
            }
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            for d in &self.digits {
                assert!(
                    !digits.contains(d.as_str()),
                    "planted number in {}",
                    path.display()
                );
            }
        }
    }
}

/// Simulated exports of two tenants with identifiers planted in every free-text column of
/// t01's services and questionnaires, in every shape seen in real files, and in columns
/// where they do not belong (a tax code as citizenship, a surname as sex).
pub(crate) fn plant(exports: &Path) -> Planted {
    let persons = exports.join("t01/persons.csv");
    let t = read_file(&persons).unwrap();
    let h = &t.header;
    let first = t.rows[0].fields.as_ref().unwrap();
    let code = first.get(col(h, "codice_fiscale")).unwrap().to_string();
    assert_eq!(
        code.len(),
        16,
        "the first simulated person has a personal code"
    );
    // A rare name, in no shipped list: only the tenant's own registry can know it.
    let (surname, name) = ("Quaglierini", "Ottorino");
    let temporary = make_temporary(4_815_162_342);
    let wrong_check = {
        let last = code.as_bytes()[15];
        format!(
            "{}{}",
            &code[..15],
            if last == b'Z' {
                'A'
            } else {
                (last + 1) as char
            }
        )
    };
    let omocodic = format!(
        "{}{}{}",
        &code[..14],
        "LMNPQRSTUV".as_bytes()[(code.as_bytes()[14] - b'0') as usize] as char,
        &code[15..]
    );
    let spaced = format!(
        "{} {} {} {}",
        &code[..3],
        &code[3..6],
        &code[6..11],
        &code[11..]
    );
    rewrite(&persons, |i, h, f| {
        if i == 0 {
            f[col(h, "cognome")] = surname.into();
            f[col(h, "nome")] = name.into();
        }
        // Identifiers in the wrong column: quarantined, never echoed.
        if i == 1 {
            f[col(h, "cittadinanza")] = wrong_check.clone();
        }
        if i == 2 {
            f[col(h, "sesso")] = "Quaglierini".into();
        }
        if i == 3 {
            f[col(h, "comune_istat")] = "=HYPERLINK(\"http://x\")".into();
        }
    });
    let shapes = [
        format!("CF {spaced}"),
        code.to_lowercase(),
        format!("rif{code}ok"),
        wrong_check.clone(),
        code[..15].to_string(),
        omocodic.clone(),
        format!("provv. {temporary}"),
        format!(
            "colloquio con {} {}",
            name.to_lowercase(),
            surname.to_lowercase()
        ),
        format!("{} {}", surname.to_uppercase(), name.to_uppercase()),
        format!("sig. {surname}"),
        "scrivere a ottorino.q@example.it".into(),
        "tel 333 765 4321".into(),
    ];
    rewrite(&exports.join("t01/services.csv"), |i, h, f| {
        let s = &shapes[i % shapes.len()];
        f[col(h, "ente")] = format!("Centro per l'impiego 001 {s}");
        f[col(h, "finanziamento")] = s.chars().take(60).collect();
        if i % 3 == 0 {
            f[col(h, "operatore")] = format!("{name} {surname}");
        }
        if i % 5 == 0 {
            f[col(h, "programma")] = format!("GOL {}", code.to_lowercase());
        }
    });
    rewrite(&exports.join("t01/asso.csv"), |i, h, f| {
        if i % 4 == 0 {
            f[col(h, "operatore")] = format!("{} {}", surname.to_lowercase(), &spaced);
        }
    });
    Planted {
        codes: vec![code.clone(), wrong_check, omocodic, temporary],
        words: vec![
            surname.to_lowercase(),
            name.to_lowercase(),
            "ottorino.q".into(),
        ],
        digits: vec!["3337654321".into()],
    }
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
