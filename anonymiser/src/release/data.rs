//! The research data of a store before anonymisation: one row per person, with the
//! person-level variables studies need computed from *all* their records (employment at 6
//! and 12 months, time to the first contract and its type, when each service first
//! started, profile scores), and their job and service records with dates as months
//! relative to taking charge. Free text (providers, programmes, operators) never enters.
//!
//! The same table, read from a release, is what a study runs on; read from the store, it
//! is the yardstick the release's utility is measured against.

use std::collections::{BTreeMap, HashMap};

use chrono::{Months, NaiveDate};
use occupa_engine::analysis::{days_employed, employed_on};
use occupa_engine::schema::Table;
use occupa_engine::store::Store;
use occupa_engine::value::{date_of, days};
use polars::prelude::{DataFrame, DataType};

use crate::builtin::timing_band;
use crate::{Error, Result};

/// Days in a month, on average: months relative to taking charge are `floor(days / 30.4375)`.
const MONTH_DAYS: f64 = 30.4375;

/// Months from `from` to `to` (days since 1970), floor.
pub fn months_between(from: i32, to: i32) -> i64 {
    ((to - from) as f64 / MONTH_DAYS).floor() as i64
}

/// The service standards to persons, whose first start is a person-level variable.
pub const PERSON_SERVICES: [&str; 6] = ["A.1", "A.2", "A.3", "A.4", "A.5", "A.6"];

/// The record tables a release may carry.
pub const RECORD_TABLES: [&str; 2] = ["employment", "services"];

/// One person's variables, by column.
#[derive(Debug, Clone)]
pub struct PersonRow {
    /// Values aligned with [`ReleaseData::person_columns`] (`""` when unknown).
    pub values: Vec<String>,
}

/// Records of one table, each with its person.
#[derive(Debug, Clone, Default)]
pub struct RecordSet {
    /// Column names.
    pub columns: Vec<String>,
    /// (person index, values).
    pub rows: Vec<(usize, Vec<String>)>,
}

/// The store's research data.
#[derive(Debug, Clone)]
pub struct ReleaseData {
    /// Columns of [`PersonRow::values`].
    pub person_columns: Vec<String>,
    /// One row per person (distinct pseudonym; the latest intake when several
    /// authorities took them in charge).
    pub persons: Vec<PersonRow>,
    /// Records by table name (`employment`, `services`).
    pub records: BTreeMap<String, RecordSet>,
    /// The last day the data cover: outcomes later than this are unknown, not zero.
    pub observed_until: NaiveDate,
    /// Persons whose outcome at 6 or 12 months is unknown because they were taken in
    /// charge too recently, by variable.
    pub not_observed: BTreeMap<String, u64>,
}

impl ReleaseData {
    /// The position of a person column.
    pub fn person_column(&self, name: &str) -> Option<usize> {
        self.person_columns.iter().position(|c| c == name)
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Input(e.to_string())
}

/// Text values of a column (dates as `YYYY-MM-DD`, booleans as `1`/`0`), empty when absent.
fn texts(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let Ok(c) = df.column(name) else {
        return Ok(vec![String::new(); df.height()]);
    };
    if c.dtype() == &DataType::Boolean {
        return Ok(c
            .bool()
            .map_err(err)?
            .into_iter()
            .map(|b| b.map_or(String::new(), |b| if b { "1" } else { "0" }.into()))
            .collect());
    }
    let s = c.cast(&DataType::String).map_err(err)?;
    Ok(s.str()
        .map_err(err)?
        .into_iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

/// Day numbers of a date column.
fn day_numbers(df: &DataFrame, name: &str) -> Result<Vec<Option<i32>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let Ok(c) = df.column(name) else {
        return Ok(vec![None; df.height()]);
    };
    let c = c.cast(&DataType::Int32).map_err(err)?;
    Ok(c.i32().map_err(err)?.into_iter().collect())
}

fn score_columns(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.starts_with("score_"))
        .collect()
}

/// A person's record of a questionnaire or assessment: date and scores.
struct Scored {
    date: i32,
    scores: Vec<String>,
}

/// Reads the whole store into research data (every tenant; the unit is the person).
pub fn from_store(store: &Store, observed_until: Option<NaiveDate>) -> Result<ReleaseData> {
    let e = |x: occupa_engine::Error| Error::Input(x.to_string());
    let tenants = store.tenants().map_err(e)?;
    let read =
        |t: &occupa_engine::store::TenantId, table: Table| store.scope(t).read(table).map_err(e);

    // Persons: one per pseudonym, the latest intake's record.
    struct Base {
        tenant: String,
        birth_year: i64,
        sex: String,
        citizenship: String,
        municipality: String,
        education: String,
        flags: [String; 3],
        intake: i32,
        exit: Option<i32>,
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut base: Vec<Base> = Vec::new();
    let mut last_day = i32::MIN;
    for t in &tenants {
        let df = read(t, Table::Persons)?;
        if df.height() == 0 {
            continue;
        }
        let id = texts(&df, "person_id")?;
        let by = texts(&df, "birth_year")?;
        let sex = texts(&df, "sex")?;
        let cit = texts(&df, "citizenship")?;
        let mun = texts(&df, "municipality")?;
        let edu = texts(&df, "education")?;
        let dis = texts(&df, "disability_l68")?;
        let inc = texts(&df, "income_support")?;
        let soc = texts(&df, "social_services_care")?;
        let intake = day_numbers(&df, "intake_date")?;
        let exit = day_numbers(&df, "exit_date")?;
        for i in 0..df.height() {
            let Some(d) = intake[i] else { continue };
            last_day = last_day.max(d).max(exit[i].unwrap_or(d));
            let row = Base {
                tenant: t.to_string(),
                birth_year: by[i].parse().unwrap_or(0),
                sex: sex[i].clone(),
                citizenship: cit[i].clone(),
                municipality: mun[i].clone(),
                education: edu[i].clone(),
                flags: [dis[i].clone(), inc[i].clone(), soc[i].clone()],
                intake: d,
                exit: exit[i],
            };
            match index.get(&id[i]) {
                Some(&p) if base[p].intake >= d => {}
                Some(&p) => base[p] = row,
                None => {
                    index.insert(id[i].clone(), base.len());
                    base.push(row);
                }
            }
        }
    }
    if base.is_empty() {
        return Err(Error::Input(
            "the store holds no persons; ingest data first".into(),
        ));
    }
    let n = base.len();

    // Questionnaires and assessments: the first ASSO, the first and last ISA, the last GOL.
    let mut scored: BTreeMap<&str, (Vec<String>, Vec<Vec<Scored>>)> = BTreeMap::new();
    for (name, table, extra) in [
        ("asso", Table::Asso, &[][..]),
        ("isa", Table::Isa, &[][..]),
        ("gol", Table::Gol, &["path", "path_system"][..]),
    ] {
        let mut cols: Vec<String> = Vec::new();
        let mut per: Vec<Vec<Scored>> = (0..n).map(|_| Vec::new()).collect();
        for t in &tenants {
            let df = read(t, table)?;
            if df.height() == 0 {
                continue;
            }
            if cols.is_empty() {
                cols = score_columns(&df);
                cols.extend(extra.iter().map(|s| s.to_string()));
            }
            let id = texts(&df, "person_id")?;
            let date = day_numbers(&df, "date")?;
            let values: Vec<Vec<String>> =
                cols.iter().map(|c| texts(&df, c)).collect::<Result<_>>()?;
            for i in 0..df.height() {
                let (Some(&p), Some(d)) = (index.get(&id[i]), date[i]) else {
                    continue;
                };
                last_day = last_day.max(d);
                per[p].push(Scored {
                    date: d,
                    scores: values.iter().map(|v| round_score(&v[i])).collect(),
                });
            }
        }
        for v in per.iter_mut() {
            v.sort_by_key(|s| s.date);
        }
        scored.insert(name, (cols, per));
    }

    // Services to persons and contracts.
    struct Service {
        code: String,
        start: i32,
        end: Option<i32>,
        hours: String,
        outcome: String,
        tenant: String,
    }
    struct Contract {
        start: i32,
        end: Option<i32>,
        kind: String,
        sector: String,
        occupation: String,
        municipality: String,
    }
    let mut services: Vec<Vec<Service>> = (0..n).map(|_| Vec::new()).collect();
    let mut contracts: Vec<Vec<Contract>> = (0..n).map(|_| Vec::new()).collect();
    for t in &tenants {
        let df = read(t, Table::Services)?;
        if df.height() > 0 {
            let id = texts(&df, "person_id")?;
            let code = texts(&df, "service_code")?;
            let start = day_numbers(&df, "start_date")?;
            let end = day_numbers(&df, "end_date")?;
            let hours = texts(&df, "hours")?;
            let outcome = texts(&df, "outcome")?;
            for i in 0..df.height() {
                let (Some(&p), Some(s)) = (index.get(&id[i]), start[i]) else {
                    continue; // employer services, or a person no authority took in charge
                };
                // End dates of contracts are often planned ones: only starts say what
                // the data have seen.
                last_day = last_day.max(s);
                services[p].push(Service {
                    code: code[i].clone(),
                    start: s,
                    end: end[i],
                    hours: hours[i]
                        .parse::<f64>()
                        .map_or(String::new(), |h| format!("{}", h.round() as i64)),
                    outcome: outcome[i].clone(),
                    tenant: t.to_string(),
                });
            }
        }
        let df = read(t, Table::Employment)?;
        if df.height() > 0 {
            let id = texts(&df, "person_id")?;
            let start = day_numbers(&df, "start_date")?;
            let end = day_numbers(&df, "end_date")?;
            let kind = texts(&df, "contract_type")?;
            let sector = texts(&df, "sector")?;
            let occupation = texts(&df, "occupation")?;
            let municipality = texts(&df, "municipality")?;
            for i in 0..df.height() {
                let (Some(&p), Some(s)) = (index.get(&id[i]), start[i]) else {
                    continue;
                };
                // End dates of contracts are often planned ones: only starts say what
                // the data have seen.
                last_day = last_day.max(s);
                contracts[p].push(Contract {
                    start: s,
                    end: end[i],
                    kind: kind[i].clone(),
                    sector: sector[i].clone(),
                    occupation: occupation[i].clone(),
                    municipality: municipality[i].clone(),
                });
            }
        }
    }
    let observed_until = observed_until.unwrap_or_else(|| date_of(last_day));
    let until = days(observed_until);

    // Person-level variables.
    let mut person_columns: Vec<String> = [
        "authority",
        "age",
        "sex",
        "citizenship",
        "municipality",
        "education",
        "disability_l68",
        "income_support",
        "social_services_care",
        "intake_date",
        "months_in_charge",
        "employed_6m",
        "employed_12m",
        "days_employed_12m",
        "months_to_first_contract",
        "first_contract_type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for code in PERSON_SERVICES {
        person_columns.push(first_service_column(code));
    }
    let (asso_cols, _) = &scored["asso"];
    let (isa_cols, _) = &scored["isa"];
    let (gol_cols, _) = &scored["gol"];
    person_columns.extend(asso_cols.iter().map(|c| format!("asso_{}", strip(c))));
    person_columns.extend(isa_cols.iter().map(|c| format!("isa_first_{}", strip(c))));
    person_columns.extend(isa_cols.iter().map(|c| format!("isa_last_{}", strip(c))));
    person_columns.extend(gol_cols.iter().map(|c| format!("gol_{}", strip(c))));

    let mut not_observed: BTreeMap<String, u64> = BTreeMap::new();
    let mut persons = Vec::with_capacity(n);
    for (p, b) in base.iter().enumerate() {
        let intake_date = date_of(b.intake);
        let at = |months: u32| {
            intake_date
                .checked_add_months(Months::new(months))
                .map(days)
                .filter(|&d| d <= until)
        };
        let spells = || contracts[p].iter().map(|c| (c.start, c.end));
        let employed_at = |d: i32| employed_on(spells(), d);
        let mut v: Vec<String> = vec![
            b.tenant.clone(),
            (intake_date
                .format("%Y")
                .to_string()
                .parse::<i64>()
                .unwrap_or(0)
                - b.birth_year)
                .to_string(),
            b.sex.clone(),
            b.citizenship.clone(),
            b.municipality.clone(),
            b.education.clone(),
            b.flags[0].clone(),
            b.flags[1].clone(),
            b.flags[2].clone(),
            intake_date.format("%Y-%m-%d").to_string(),
            b.exit
                .map_or(String::new(), |x| months_between(b.intake, x).to_string()),
        ];
        for (name, m) in [("employed_6m", 6), ("employed_12m", 12)] {
            match at(m) {
                Some(d) => v.push(if employed_at(d) { "1" } else { "0" }.into()),
                None => {
                    *not_observed.entry(name.into()).or_default() += 1;
                    v.push(String::new());
                }
            }
        }
        // Days employed in the year after taking charge (contracts clipped to it).
        match at(12) {
            Some(end) => v.push(days_employed(spells(), b.intake, end).to_string()),
            None => v.push(String::new()),
        }
        let first = contracts[p]
            .iter()
            .filter(|c| c.start >= b.intake && c.start <= until)
            .min_by_key(|c| c.start);
        match first {
            Some(c) => {
                v.push(months_between(b.intake, c.start).to_string());
                v.push(c.kind.clone());
            }
            None => {
                v.push("none".into());
                v.push("none".into());
            }
        }
        for code in PERSON_SERVICES {
            let first = services[p]
                .iter()
                .filter(|s| s.code == code)
                .map(|s| (s.start - b.intake).max(0) as i64)
                .min();
            v.push(timing_band(first).to_string());
        }
        let (_, asso) = &scored["asso"];
        let (_, isa) = &scored["isa"];
        let (_, gol) = &scored["gol"];
        let pick = |list: &[Scored], last: bool, width: usize| -> Vec<String> {
            let s = if last { list.last() } else { list.first() };
            s.map_or(vec![String::new(); width], |s| s.scores.clone())
        };
        v.extend(pick(&asso[p], false, asso_cols.len()));
        v.extend(pick(&isa[p], false, isa_cols.len()));
        v.extend(pick(&isa[p], true, isa_cols.len()));
        v.extend(pick(&gol[p], true, gol_cols.len()));
        persons.push(PersonRow { values: v });
    }

    // Records, with dates relative to taking charge.
    let rel = |intake: i32, d: i32| months_between(intake, d).to_string();
    let duration =
        |s: i32, e: Option<i32>| e.map_or(String::new(), |e| months_between(s, e).to_string());
    let mut records = BTreeMap::new();
    let mut emp = RecordSet {
        columns: [
            "start_month",
            "duration_months",
            "contract_type",
            "sector",
            "occupation",
            "municipality",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    let mut srv = RecordSet {
        columns: [
            "service_code",
            "start_month",
            "duration_months",
            "hours",
            "outcome",
            "authority",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    for p in 0..n {
        let intake = base[p].intake;
        for c in &contracts[p] {
            emp.rows.push((
                p,
                vec![
                    rel(intake, c.start),
                    duration(c.start, c.end),
                    c.kind.clone(),
                    c.sector.clone(),
                    c.occupation.clone(),
                    c.municipality.clone(),
                ],
            ));
        }
        for s in &services[p] {
            srv.rows.push((
                p,
                vec![
                    s.code.clone(),
                    rel(intake, s.start),
                    duration(s.start, s.end),
                    s.hours.clone(),
                    s.outcome.clone(),
                    s.tenant.clone(),
                ],
            ));
        }
    }
    records.insert("employment".to_string(), emp);
    records.insert("services".to_string(), srv);
    Ok(ReleaseData {
        person_columns,
        persons,
        records,
        observed_until,
        not_observed,
    })
}

fn strip(c: &str) -> &str {
    c.strip_prefix("score_").unwrap_or(c)
}

/// The person column of a service's first start (`first_a5` for A.5).
pub fn first_service_column(code: &str) -> String {
    format!("first_{}", code.to_ascii_lowercase().replace('.', ""))
}

/// Scores are released to two decimals: finer digits only make records unique.
fn round_score(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(x) if x.fract() != 0.0 => format!("{:.2}", x),
        _ => v.to_string(),
    }
}
