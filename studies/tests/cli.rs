//! The `occupa` binary end to end, as a user runs it from the README.

use std::process::Command;

fn occupa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_occupa"))
}

#[test]
fn demo_writes_the_report_and_prints_what_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let out = occupa()
        .current_dir(tmp.path())
        .args(["demo", "--persons", "1500", "--tenants", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = &summary["rows"];
    assert_eq!(
        rows["read"].as_u64().unwrap(),
        rows["stored"].as_u64().unwrap() + rows["quarantined"].as_u64().unwrap()
    );
    for f in ["report.html", "report.pdf", "report.xlsx"] {
        let p = tmp.path().join("occupa-out").join(f);
        assert!(std::fs::metadata(&p).unwrap().len() > 1000, "{f}");
    }
    // The key lives beside the store, never inside it, and only its owner may read it.
    let key = tmp.path().join("occupa-data.key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Running it again stores nothing twice.
    let again = occupa()
        .current_dir(tmp.path())
        .args(["demo", "--persons", "1500", "--tenants", "3"])
        .output()
        .unwrap();
    assert!(again.status.success());
    let s2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(s2["rows"]["stored"], 0);
}

#[test]
fn ingest_prints_the_contract_json_and_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = occupa()
        .args(["simulate", "--out"])
        .arg(tmp.path().join("x"))
        .args(["--persons", "200", "--tenants", "1", "--dirty", "0.05"])
        .output()
        .unwrap();
    assert!(sim.status.success());
    let key = tmp.path().join("k");
    assert!(
        occupa()
            .args(["key", "new", "--out"])
            .arg(&key)
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = occupa()
        .args(["ingest", "--data"])
        .arg(tmp.path().join("store"))
        .args(["--tenant", "t01", "--table", "persons", "--key-file"])
        .arg(&key)
        .arg(tmp.path().join("x/t01/persons.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["read", "stored", "quarantined", "quarantine_file"] {
        assert!(j.get(k).is_some(), "missing {k}");
    }
    assert_eq!(
        j["read"].as_u64(),
        Some(j["stored"].as_u64().unwrap() + j["quarantined"].as_u64().unwrap())
    );

    // Bad input: the user sees one line that says what to do.
    let no_key = occupa()
        .args([
            "ingest", "--data", "s", "--tenant", "t01", "--table", "persons", "f.csv",
        ])
        .env_remove("OCCUPA_KEY_FILE")
        .output()
        .unwrap();
    assert!(!no_key.status.success());
    let msg = String::from_utf8_lossy(&no_key.stderr);
    assert!(
        msg.contains("--key-file") && msg.lines().count() == 1,
        "{msg}"
    );
    let bad_table = occupa()
        .args([
            "ingest",
            "--data",
            "s",
            "--tenant",
            "t01",
            "--table",
            "people",
            "--key-file",
        ])
        .arg(&key)
        .arg("f.csv")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_table.stderr).contains("use one of persons"));
    let bad_tenant = occupa()
        .args([
            "ingest",
            "--data",
            "s",
            "--tenant",
            "../t02",
            "--table",
            "persons",
            "--key-file",
        ])
        .arg(&key)
        .arg("f.csv")
        .output()
        .unwrap();
    assert!(!bad_tenant.status.success());
    assert!(String::from_utf8_lossy(&bad_tenant.stderr).contains("tenant"));
}

#[test]
fn report_refuses_a_bad_period_and_an_empty_store() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = occupa()
        .args(["report", "quarterly", "--data"])
        .arg(tmp.path())
        .args(["--period", "2026Q5", "--out"])
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a quarter like 2026Q3"));
    let empty = occupa()
        .args(["report", "quarterly", "--data"])
        .arg(tmp.path())
        .args(["--period", "2026Q3", "--out"])
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&empty.stderr).contains("holds no tenant"));
}
