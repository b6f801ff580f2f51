//! Ingestion guarantees: conservation, privacy, atomicity, idempotence, tenant isolation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};
use polars::prelude::*;

fn key() -> Key {
    Key::from_bytes([9; 32])
}

fn small_dirty(dir: &Path, persons: usize, rate: f64) -> (Instruments, serde_json::Value) {
    let inst = Instruments::builtin().unwrap();
    let cfg = SimConfig {
        persons,
        tenants: 2,
        seed: 7,
        dirty_rate: rate,
        ..SimConfig::default()
    };
    simulate(&cfg, &inst, dir).unwrap();
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
    (inst, truth)
}

/// Every string cell of every table, read back from Parquet.
fn all_strings(store: &Store, tenant: &TenantId) -> Vec<String> {
    let scope = store.scope(tenant);
    let mut out = Vec::new();
    for table in Table::ALL {
        let df = scope.read(table).unwrap();
        for c in df.get_columns() {
            if c.dtype() == &DataType::String {
                out.extend(c.str().unwrap().into_iter().flatten().map(str::to_string));
            }
        }
        // Column names too: no identifying header may survive.
        out.extend(df.get_column_names().iter().map(|n| n.to_string()));
    }
    out
}

#[test]
fn dirty_files_conserve_rows_and_quarantine_exactly_the_planted_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, truth) = small_dirty(&exports, 1500, 0.05);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let mut quarantined: BTreeMap<String, usize> = BTreeMap::new();
    for t in ["t01", "t02"] {
        let tenant = TenantId::new(t).unwrap();
        for table in Table::ALL {
            let file = exports.join(t).join(format!("{}.csv", table.name()));
            let s = ingest(
                &store,
                &inst,
                &key(),
                &tenant,
                table,
                std::slice::from_ref(&file),
                &NoProgress,
            )
            .unwrap();
            assert_eq!(
                s.read,
                s.stored + s.quarantined,
                "{t}/{}: rows read = stored + quarantined",
                table.name()
            );
            // The quarantine file holds exactly the quarantined rows.
            if let Some(q) = &s.quarantine_file {
                let n = csv::Reader::from_path(q).unwrap().records().count();
                assert_eq!(n, s.quarantined);
            }
            // The store holds exactly the stored rows.
            let stored_rows = store.scope(&tenant).read(table).unwrap().height();
            assert_eq!(stored_rows, s.stored);
            *quarantined.entry(table.name().to_string()).or_default() += s.quarantined;
        }
    }
    // Oracle: the simulator's planted errors and duplicates, table by table.
    for (table, n) in truth["dirty"]["expected_quarantined"].as_object().unwrap() {
        assert_eq!(
            quarantined[table],
            n.as_u64().unwrap() as usize,
            "table {table}"
        );
    }
    assert!(
        quarantined.values().sum::<usize>() > 100,
        "the dirty files must exercise the quarantine"
    );
}

#[test]
fn no_tax_code_or_name_reaches_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 400, 0.05);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let tenant = TenantId::new("t01").unwrap();
    for table in Table::ALL {
        let file = exports.join("t01").join(format!("{}.csv", table.name()));
        ingest(&store, &inst, &key(), &tenant, table, &[file], &NoProgress).unwrap();
    }
    // The identifiers and names in the source files, valid or not.
    let mut codes = Vec::new();
    let mut names = Vec::new();
    let mut rdr = csv::Reader::from_path(exports.join("t01/persons.csv")).unwrap();
    for r in rdr.records() {
        let r = r.unwrap();
        codes.push(r.get(0).unwrap().to_string());
        names.push(r.get(2).unwrap().to_string());
    }
    assert!(codes.len() > 150);
    let stored = all_strings(&store, &tenant);
    let text = stored.join("\n");
    for c in &codes {
        assert!(!text.contains(c.as_str()), "a tax code reached the store");
    }
    for n in names.iter().filter(|n| n.len() >= 4) {
        assert!(
            !stored.iter().any(|s| s == n),
            "a name reached the store: {n}"
        );
    }
    for h in ["cognome", "nome", "codice_fiscale"] {
        assert!(
            !stored.iter().any(|s| s == h),
            "identifying column {h} stored"
        );
    }
    // Nor the quarantine files, which live in the store too.
    for e in std::fs::read_dir(store.scope(&tenant).quarantine_dir()).unwrap() {
        let q = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for c in &codes {
            assert!(
                !q.contains(c.as_str()),
                "a tax code reached the quarantine file"
            );
        }
    }
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !matches!(
                p.file_name().unwrap().to_str(),
                Some("audit.jsonl" | ".lock" | ".store.lock")
            ) {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Runs `child_ingest_for_crash_test` in a child process with a failpoint set.
fn run_child_ingest(store: &Path, file: &Path, failpoint: &str) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ingest::child_ingest_for_crash_test",
            "--nocapture",
        ])
        .env("OCCUPA_TEST_STORE", store)
        .env("OCCUPA_TEST_FILE", file)
        .env("OCCUPA_FAILPOINT", failpoint)
        .output()
        .unwrap()
        .status
}

/// Run by `an_ingest_killed_before_commit_leaves_the_store_unchanged` in a child process.
#[test]
fn child_ingest_for_crash_test() {
    let (Ok(store), Ok(file)) = (
        std::env::var("OCCUPA_TEST_STORE"),
        std::env::var("OCCUPA_TEST_FILE"),
    ) else {
        return;
    };
    let inst = Instruments::builtin().unwrap();
    let store = Store::open(Path::new(&store)).unwrap();
    let _ = ingest(
        &store,
        &inst,
        &key(),
        &TenantId::new("t01").unwrap(),
        Table::Persons,
        &[PathBuf::from(file)],
        &NoProgress,
    );
    panic!("the failpoint should have aborted this process");
}

#[test]
fn an_ingest_killed_before_commit_leaves_the_store_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 600, 0.05);
    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let tenant = TenantId::new("t01").unwrap();
    // Some data already there, so "unchanged" is a real claim.
    ingest(
        &store,
        &inst,
        &key(),
        &tenant,
        Table::Asso,
        &[exports.join("t01/asso.csv")],
        &NoProgress,
    )
    .unwrap();
    let before = snapshot(&store_dir);

    // 1. A real crash: the process aborts between staging and commit.
    let status = run_child_ingest(&store_dir, &exports.join("t01/persons.csv"), "ingest-abort");
    assert!(!status.success(), "the child must have died");
    // Readers see nothing new; leftover staging files are hidden and then cleaned up.
    assert_eq!(
        store.scope(&tenant).read(Table::Persons).unwrap().height(),
        0
    );
    // The next open drops the audit line of the commit that never happened.
    let store = Store::open(&store_dir).unwrap();
    let after_crash: BTreeMap<_, _> = snapshot(&store_dir)
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains(".staging-"))
        .collect();
    assert_eq!(after_crash, before, "a crash changed committed files");

    // 2. A failure reported as an error: same outcome, and nothing left behind.
    let status = run_child_ingest(&store_dir, &exports.join("t01/persons.csv"), "ingest-error");
    assert!(!status.success());
    assert_eq!(
        snapshot(&store_dir),
        before,
        "a failed ingest changed the store"
    );

    // 3. The next ingest recovers and commits normally.
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
    assert_eq!(
        store.scope(&tenant).read(Table::Persons).unwrap().height(),
        s.stored
    );
    assert!(
        !snapshot(&store_dir)
            .keys()
            .any(|p| p.to_string_lossy().contains(".staging-"))
    );
}

#[test]
fn ingesting_the_same_file_twice_stores_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 300, 0.0);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let tenant = TenantId::new("t02").unwrap();
    for table in Table::ALL {
        let f = exports.join("t02").join(format!("{}.csv", table.name()));
        let first = ingest(
            &store,
            &inst,
            &key(),
            &tenant,
            table,
            std::slice::from_ref(&f),
            &NoProgress,
        )
        .unwrap();
        let second = ingest(&store, &inst, &key(), &tenant, table, &[f], &NoProgress).unwrap();
        assert_eq!(first.quarantined, 0, "{}: clean files", table.name());
        assert_eq!(second.stored, 0, "{}", table.name());
        assert_eq!(second.duplicates, second.read);
        assert_eq!(
            store.scope(&tenant).read(table).unwrap().height(),
            first.stored
        );
    }
}

#[test]
fn a_tenant_scoped_read_cannot_return_another_tenants_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 400, 0.0);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let (t1, t2) = (TenantId::new("t01").unwrap(), TenantId::new("t02").unwrap());
    let s1 = ingest(
        &store,
        &inst,
        &key(),
        &t1,
        Table::Persons,
        &[exports.join("t01/persons.csv")],
        &NoProgress,
    )
    .unwrap();
    let s2 = ingest(
        &store,
        &inst,
        &key(),
        &t2,
        Table::Persons,
        &[exports.join("t02/persons.csv")],
        &NoProgress,
    )
    .unwrap();
    let ids = |t: &TenantId| -> std::collections::HashSet<String> {
        let df = store.scope(t).read(Table::Persons).unwrap();
        df.column("person_id")
            .unwrap()
            .str()
            .unwrap()
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (ids(&t1), ids(&t2));
    assert_eq!((a.len(), b.len()), (s1.stored, s2.stored));
    assert!(a.is_disjoint(&b), "t01's scope returned t02's persons");
    // A tenant that has ingested nothing sees nothing, and no id can reach a sibling folder.
    assert_eq!(
        store
            .scope(&TenantId::new("t03").unwrap())
            .read(Table::Persons)
            .unwrap()
            .height(),
        0
    );
    assert!(TenantId::new("../t02").is_err());
    assert!(TenantId::new("t01/../t02").is_err());
}

#[test]
fn xlsx_and_parquet_inputs_are_ingested_like_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 100, 0.0);
    // Re-export the persons CSV as XLSX and Parquet.
    let mut rdr = csv::Reader::from_path(exports.join("t01/persons.csv")).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let xlsx = tmp.path().join("persons.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in header.iter().enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            // Years and flags as numbers, as a spreadsheet would hold them.
            match v.parse::<f64>() {
                Ok(n) if c == 3 => ws.write_number(r as u32 + 1, c as u16, n).unwrap(),
                _ => ws.write_string(r as u32 + 1, c as u16, v).unwrap(),
            };
        }
    }
    wb.save(&xlsx).unwrap();
    let cols: Vec<Column> = header
        .iter()
        .enumerate()
        .map(|(c, h)| {
            Series::new(
                h.as_str().into(),
                rows.iter().map(|r| r[c].clone()).collect::<Vec<_>>(),
            )
            .into()
        })
        .collect();
    let mut df = DataFrame::new(cols).unwrap();
    let pq = tmp.path().join("persons.parquet");
    ParquetWriter::new(std::fs::File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();

    for (t, f) in [
        ("a", exports.join("t01/persons.csv")),
        ("b", xlsx),
        ("c", pq),
    ] {
        let store = Store::open(&tmp.path().join(format!("store-{t}"))).unwrap();
        let s = ingest(
            &store,
            &inst,
            &key(),
            &TenantId::new("t01").unwrap(),
            Table::Persons,
            &[f],
            &NoProgress,
        )
        .unwrap();
        assert_eq!(
            (s.read, s.stored, s.quarantined),
            (rows.len(), rows.len(), 0),
            "input {t}"
        );
        assert_eq!(
            s.dropped_columns,
            vec!["cognome".to_string(), "nome".to_string()]
        );
    }
}

#[test]
fn a_file_missing_a_required_column_is_refused_whole_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("p.csv");
    std::fs::write(&f, "codice_fiscale;anno_nascita\nRSSMRA85T10A562S;1985\n").unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let err = ingest(
        &store,
        &Instruments::builtin().unwrap(),
        &key(),
        &TenantId::new("t01").unwrap(),
        Table::Persons,
        std::slice::from_ref(&f),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("p.csv") && err.contains("missing required column \"sex\""),
        "{err}"
    );
    assert!(
        store
            .scope(&TenantId::new("t01").unwrap())
            .parts(Table::Persons)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_crash_between_the_two_commits_is_completed_by_the_next_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 300, 0.1);
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let tenant = TenantId::new("t01").unwrap();
    let s = ingest(
        &store,
        &inst,
        &key(),
        &tenant,
        Table::Asso,
        &[exports.join("t01/asso.csv")],
        &NoProgress,
    )
    .unwrap();
    let q = s
        .quarantine_file
        .clone()
        .expect("dirty rows were quarantined");
    // As if the process died after committing the Parquet part, before the quarantine file.
    let staged = q.with_file_name(format!(
        ".staging-{}",
        q.file_name().unwrap().to_string_lossy()
    ));
    std::fs::rename(&q, &staged).unwrap();
    let again = ingest(
        &store,
        &inst,
        &key(),
        &tenant,
        Table::Asso,
        &[exports.join("t01/asso.csv")],
        &NoProgress,
    )
    .unwrap();
    assert_eq!(again.stored, 0);
    assert!(
        q.exists() && !staged.exists(),
        "recovery must commit the orphaned quarantine file"
    );
    assert_eq!(
        csv::Reader::from_path(&q).unwrap().records().count(),
        s.quarantined
    );
}

#[test]
fn a_stray_quote_in_an_unquoted_field_loses_no_row() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let (inst, _) = small_dirty(&exports, 3000, 0.0);
    // The services file as an office writes it by hand: some notes quoted over two lines,
    // and inches typed as `"` in three unquoted fields (an odd number of stray quotes,
    // which used to turn the chunker's idea of "inside quotes" upside down).
    let text = std::fs::read_to_string(exports.join("t01/services.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let ente = header.split(',').position(|h| h == "ente").unwrap();
    let mut out = format!("{header}\n");
    let mut rows = 0usize;
    for (i, line) in lines.enumerate() {
        assert!(!line.contains('"'));
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        match i {
            100 => f[ente] = "Sportello 5\" piano".into(),
            2000 => f[ente] = "Centro \"Nord".into(),
            5000 => f[ente] = "schermo 24\"".into(),
            _ if i % 37 == 0 => f[ente] = format!("\"{}\nsede 2\"", f[ente]),
            _ => {}
        }
        out.push_str(&f.join(","));
        out.push('\n');
        rows += 1;
    }
    let file = tmp.path().join("services.csv");
    std::fs::write(&file, out).unwrap();
    assert!(
        std::fs::metadata(&file).unwrap().len() > 600_000,
        "several chunks"
    );
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let tenant = TenantId::new("t01").unwrap();
    let s = ingest(
        &store,
        &inst,
        &key(),
        &tenant,
        Table::Services,
        &[file],
        &NoProgress,
    )
    .unwrap();
    assert_eq!(s.read, rows);
    assert_eq!(s.read, s.stored + s.quarantined);
    assert_eq!(s.quarantined, 0, "every row is good");
    let stored = store.scope(&tenant).read(Table::Services).unwrap();
    assert_eq!(stored.height(), rows);
    let ente: Vec<String> = stored
        .column("provider")
        .unwrap()
        .str()
        .unwrap()
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect();
    assert!(ente.iter().any(|e| e == "Centro \"Nord"));
    assert!(ente.iter().any(|e| e.ends_with("\nsede 2")));
}
