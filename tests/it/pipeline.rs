//! The whole pipeline on simulated data: simulate → ingest → indicators → report, with
//! indicators checked against counts computed independently from the raw exports.

use std::collections::HashSet;

use chrono::NaiveDate;
use occupa_anonymiser::MinCount;
use occupa_engine::indicators::{Quarter, tenant_quarter};
use occupa_engine::ingest::{NoProgress, ingest};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};
use occupa_engine::value::parse_date;
use occupa_reports::{Lang, Report};

#[test]
fn indicators_match_counts_from_the_raw_exports_and_the_report_is_protected() {
    let tmp = tempfile::tempdir().unwrap();
    let exports = tmp.path().join("exports");
    let inst = Instruments::builtin().unwrap();
    let cfg = SimConfig {
        persons: 3000,
        tenants: 3,
        seed: 11,
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    simulate(&cfg, &inst, &exports).unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let key = Key::from_bytes([5; 32]);
    for t in ["t01", "t02", "t03"] {
        for table in Table::ALL {
            ingest(
                &store,
                &inst,
                &key,
                &TenantId::new(t).unwrap(),
                table,
                &[exports.join(t).join(format!("{}.csv", table.name()))],
                &NoProgress,
            )
            .unwrap();
        }
    }
    let q = Quarter::parse("2026Q2").unwrap();
    let (qs, qe) = (q.start(), q.end());
    let mut tqs = Vec::new();
    for t in ["t01", "t02", "t03"] {
        let tq = tenant_quarter(&store.scope(&TenantId::new(t).unwrap()), q, 8).unwrap();
        // Independent count from the raw CSV (t02 is the semicolon, Latin-1, dd/mm/yyyy export).
        let raw = std::fs::read(exports.join(t).join("persons.csv")).unwrap();
        let text: String = raw.iter().map(|&b| b as char).collect();
        let sep = if t == "t02" { b';' } else { b',' };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(sep)
            .from_reader(text.as_bytes());
        let (mut stock_end, mut inflow) = (0u64, 0u64);
        for r in rdr.records() {
            let r = r.unwrap();
            let intake: NaiveDate = parse_date(&r[11]).unwrap();
            let exit: Option<NaiveDate> = (!r[12].is_empty()).then(|| parse_date(&r[12]).unwrap());
            if intake <= qe && exit.is_none_or(|x| x > qe) {
                stock_end += 1;
            }
            if intake >= qs && intake <= qe {
                inflow += 1;
            }
        }
        assert_eq!(tq.stock_flow.stock_end, stock_end, "{t}");
        assert_eq!(tq.stock_flow.inflow, inflow, "{t}");
        let sf = tq.stock_flow;
        assert_eq!(sf.stock_start + sf.inflow - sf.outflow, sf.stock_end);

        // Indicator 1.1: distinct persons with an A.1 starting in the quarter.
        let raw = std::fs::read(exports.join(t).join("services.csv")).unwrap();
        let text: String = raw.iter().map(|&b| b as char).collect();
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(sep)
            .from_reader(text.as_bytes());
        let mut informed = HashSet::new();
        for r in rdr.records() {
            let r = r.unwrap();
            let d = parse_date(&r[6]).unwrap();
            if &r[2] == "A.1" && d >= qs && d <= qe {
                informed.insert(r[0].to_string());
            }
        }
        assert_eq!(
            tq.indicators.iter().find(|i| i.id == "1.1").unwrap().count,
            informed.len() as u64,
            "{t}"
        );
        tqs.push(tq);
    }

    let rule = occupa_anonymiser::publication::Rule::new(MinCount::default());
    let published = Report::quarterly(q, &tqs, Lang::It, rule, &[], "pooled").unwrap();
    assert!(published.protection.audit.all_protected);
    let report = published.report;
    let out = tmp.path().join("out");
    let written = report.write_all(&out).unwrap();
    assert!(written.iter().any(|p| p.ends_with("report.pdf")));
    assert!(
        std::fs::read(out.join("report.pdf"))
            .unwrap()
            .starts_with(b"%PDF")
    );
    assert!(
        std::fs::read(out.join("report.xlsx"))
            .unwrap()
            .starts_with(b"PK")
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Rapporto trimestrale") && html.contains("<svg"));
    // Every published count is 0 or at least the threshold.
    for e in std::fs::read_dir(out.join("tables")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            for cell in line
                .rsplit(',')
                .take_while(|c| c.parse::<u64>().is_ok() || *c == "x")
            {
                if let Ok(n) = cell.parse::<u64>() {
                    assert!(n == 0 || n >= 5, "published small count {n} in {line}");
                }
            }
        }
    }
    let en = Report::quarterly(q, &tqs, Lang::En, rule, &[], "pooled").unwrap();
    assert!(en.report.title.starts_with("Quarterly report"));
}
