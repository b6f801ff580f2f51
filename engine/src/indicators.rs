//! Indicators of a tenant for a period: the stock and flow of persons in charge, their
//! breakdowns, the physical monitoring indicators of the Piemonte standards (seed 003)
//! and GOL path counts. Counts here are exact; suppression of small cells happens when
//! they are published (anonymiser), never here.
//!
//! Every count is kept as the set of [`Units`] it counts (persons, companies or
//! assessments, as 64-bit keys): two published counts are related exactly as their sets
//! are (a total is the union of its parts; this quarter's end stock is next quarter's
//! start), which is what lets the anonymiser protect a whole publication, and every
//! earlier one, jointly.

use std::collections::{BTreeMap, HashSet};

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use serde::Serialize;

use crate::schema::Table;
use crate::store::TenantScope;
use crate::territory::{CitizenshipGroup, Territory};
use crate::value::days;
use crate::{Error, Result};

/// A calendar quarter such as 2026Q3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Quarter {
    /// Year.
    pub year: i32,
    /// 1..=4.
    pub q: u32,
}

impl Quarter {
    /// Parses `2026Q3` (also `2026-Q3`, `2026q3`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Param {
            name: "period",
            reason: format!("{s:?} is not a quarter like 2026Q3"),
        };
        let up = s.trim().to_ascii_uppercase().replace('-', "");
        let (y, q) = up.split_once('Q').ok_or_else(bad)?;
        let (year, q): (i32, u32) = (y.parse().map_err(|_| bad())?, q.parse().map_err(|_| bad())?);
        if !(1..=4).contains(&q) || !(1990..=2100).contains(&year) {
            return Err(bad());
        }
        Ok(Quarter { year, q })
    }
    /// First day.
    pub fn start(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, 3 * self.q - 2, 1).unwrap_or_default()
    }
    /// Last day.
    pub fn end(self) -> NaiveDate {
        self.next().start().pred_opt().unwrap_or_default()
    }
    /// The following quarter.
    pub fn next(self) -> Quarter {
        if self.q == 4 {
            Quarter {
                year: self.year + 1,
                q: 1,
            }
        } else {
            Quarter {
                year: self.year,
                q: self.q + 1,
            }
        }
    }
    /// The previous quarter.
    pub fn prev(self) -> Quarter {
        if self.q == 1 {
            Quarter {
                year: self.year - 1,
                q: 4,
            }
        } else {
            Quarter {
                year: self.year,
                q: self.q - 1,
            }
        }
    }
    /// The quarter containing a date.
    pub fn of(d: NaiveDate) -> Quarter {
        Quarter {
            year: d.year(),
            q: d.month0() / 3 + 1,
        }
    }
}

impl std::fmt::Display for Quarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}Q{}", self.year, self.q)
    }
}

/// Stock and flow of persons in charge over a quarter. Always
/// `stock_start + inflow - outflow == stock_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct StockFlow {
    /// In charge on the day before the quarter starts.
    pub stock_start: u64,
    /// Taken in charge during the quarter.
    pub inflow: u64,
    /// Left during the quarter.
    pub outflow: u64,
    /// In charge on the last day of the quarter.
    pub stock_end: u64,
}

/// The units a count counts: keys of (tenant, kind, identifier), sorted, unique.
pub type Units = Vec<u64>;

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A person (pseudonym).
    Person,
    /// A company (employer pseudonym).
    Company,
    /// An assessment or other event (its row key).
    Event,
}

/// The key of a unit: FNV-1a over (tenant, kind, identifier), then a 64-bit finaliser.
/// Stable across runs and versions (the publication ledger keeps these keys), and the
/// same person in two tenants gives two units, as the tables count them.
pub fn unit_key(tenant: &str, kind: UnitKind, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tag = match kind {
        UnitKind::Person => b'p',
        UnitKind::Company => b'c',
        UnitKind::Event => b'e',
    };
    for &b in tenant
        .as_bytes()
        .iter()
        .chain([0u8, tag, 0u8].iter())
        .chain(id.as_bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV's low bits are weak.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn units(mut v: Vec<u64>) -> Units {
    v.sort_unstable();
    v.dedup();
    v
}

/// One physical indicator of seed 003.
#[derive(Debug, Clone, Serialize)]
pub struct Indicator {
    /// Its number in the standards (1.1, 2.2…).
    pub id: &'static str,
    /// Italian label.
    pub label_it: &'static str,
    /// English label.
    pub label_en: &'static str,
    /// Distinct persons or companies in the quarter.
    pub count: u64,
    /// Whether the count is of companies.
    pub companies: bool,
    /// Who they are.
    #[serde(skip)]
    pub units: Units,
}

/// Definition: indicator → (service code, required outcome, counts companies).
const INDICATORS: &[(&str, &str, &str, &str, Option<&str>)] = &[
    ("1.1", "Utenti informati", "Users informed", "A.1", None),
    ("2.1", "Utenti accolti", "Users received", "A.2", None),
    (
        "2.2",
        "Utenti che hanno sottoscritto il patto di servizio",
        "Users who signed the service pact",
        "A.2",
        Some("patto_firmato"),
    ),
    (
        "3.1",
        "Utenti in orientamento di base e PAI",
        "Users in guidance and individual action plan",
        "A.3",
        None,
    ),
    (
        "3.2",
        "PAI sottoscritti",
        "Individual action plans signed",
        "A.3",
        Some("pai_firmato"),
    ),
    (
        "3.3",
        "Utenti che non hanno sottoscritto il PAI",
        "Users who did not sign the PAI",
        "A.3",
        Some("pai_non_firmato"),
    ),
    (
        "3.4",
        "Utenti inviati a formazione",
        "Users sent to training",
        "A.3",
        Some("inviato_formazione"),
    ),
    (
        "3.5",
        "Utenti iscritti a formazione",
        "Users enrolled in training",
        "A.3",
        Some("iscritto_formazione"),
    ),
    (
        "3.6",
        "Utenti che hanno completato la formazione",
        "Users who completed training",
        "A.3",
        Some("formazione_completata"),
    ),
    (
        "4.1",
        "Utenti in orientamento specialistico",
        "Users in guidance counselling",
        "A.4",
        None,
    ),
    (
        "5.1",
        "Utenti in accompagnamento al lavoro",
        "Users in job accompaniment",
        "A.5",
        None,
    ),
    (
        "5.2",
        "Tirocini avviati",
        "Traineeships started",
        "A.5",
        Some("tirocinio_avviato"),
    ),
    (
        "6.1",
        "Utenti preselezionati",
        "Users pre-selected",
        "A.6",
        Some("preselezionato"),
    ),
    (
        "6.2",
        "Utenti inviati a colloquio",
        "Users sent to job interviews",
        "A.6",
        Some("inviato_colloquio"),
    ),
    (
        "6.3",
        "Utenti inseriti al lavoro",
        "Users placed in a job",
        "A.6",
        Some("assunto"),
    ),
    (
        "7.1",
        "Aziende contattate",
        "Companies contacted",
        "B.1",
        None,
    ),
    (
        "7.2",
        "Aziende che hanno espresso fabbisogni",
        "Companies expressing needs",
        "B.1",
        Some("fabbisogno_espresso"),
    ),
    ("8.1", "Aziende accolte", "Companies received", "B.2", None),
    (
        "8.2",
        "Patti di servizio con aziende",
        "Service pacts with companies",
        "B.2",
        Some("patto_azienda"),
    ),
    (
        "8.3",
        "Aziende che richiedono profili",
        "Companies requesting profiles",
        "B.2",
        Some("profili_richiesti"),
    ),
    (
        "8.4",
        "Vacancy registrate (aziende)",
        "Companies with vacancies recorded",
        "B.2",
        Some("vacancy_registrata"),
    ),
    (
        "9.1",
        "Aziende in consulenza",
        "Companies in consultancy",
        "B.3",
        None,
    ),
    (
        "10.1",
        "Aziende in incontro domanda/offerta",
        "Companies in demand/offer matching",
        "B.4",
        None,
    ),
    (
        "10.2",
        "Aziende che dichiarano di assumere",
        "Companies declaring they will hire",
        "B.4",
        Some("disponibile_assumere"),
    ),
    (
        "10.3",
        "Aziende che hanno assunto",
        "Companies that hired",
        "B.4",
        Some("assunto"),
    ),
];

/// Stock and flow as sets of persons.
#[derive(Debug, Clone, Default)]
pub struct StockFlowUnits {
    /// In charge on the day before the quarter starts.
    pub stock_start: Units,
    /// Taken in charge during the quarter.
    pub inflow: Units,
    /// Left during the quarter.
    pub outflow: Units,
    /// In charge on the last day of the quarter.
    pub stock_end: Units,
}

/// Everything the quarterly report needs from one tenant, each count with its units.
#[derive(Debug, Clone)]
pub struct TenantQuarter {
    /// Tenant.
    pub tenant: String,
    /// Period.
    pub quarter: Quarter,
    /// Stock and flow in the quarter.
    pub stock_flow: StockFlow,
    /// The same, as persons.
    pub flow_units: StockFlowUnits,
    /// Stock at the end of each of the last quarters, oldest first.
    pub stock_history: Vec<(Quarter, Units)>,
    /// Stock at the end by sex (M, F).
    pub stock_by_sex: BTreeMap<String, Units>,
    /// Stock at the end by citizenship group.
    pub stock_by_citizenship: BTreeMap<String, Units>,
    /// Stock at the end by province.
    pub stock_by_province: BTreeMap<String, Units>,
    /// Assessments dated in the quarter, by final GOL path.
    pub gol_paths: BTreeMap<u8, Units>,
    /// Physical indicators.
    pub indicators: Vec<Indicator>,
    /// Persons in charge whose first job started in the quarter.
    pub placed: Units,
    /// Of those, on a permanent contract.
    pub placed_permanent: Units,
    /// Stock at the end by age band at the quarter's end ([`age_band`]).
    pub stock_by_age: BTreeMap<String, Units>,
    /// Stock at the end by education ([`education_level`]).
    pub stock_by_education: BTreeMap<String, Units>,
    /// Stock at the end in each vulnerable group the data records (`disability`,
    /// `income_support`, `social_services`); groups overlap, and a person may be in none.
    pub stock_vulnerable: BTreeMap<String, Units>,
    /// Each physical indicator's count in the 8 quarters before this one, oldest first
    /// (what the report's anomalies compare the quarter with; never published).
    pub indicator_history: Vec<Vec<u64>>,
    /// Persons placed in the quarter (`placed`) by province of residence, named as in
    /// `stock_by_province`.
    pub placed_by_province: BTreeMap<String, Units>,
    /// The same figures for the quarters a report compares with: the same quarter a year
    /// before, then the previous quarter.
    pub earlier: Vec<PeriodFigures>,
}

/// The flow, indicators and placements of one earlier quarter, as sets.
#[derive(Debug, Clone)]
pub struct PeriodFigures {
    /// The quarter.
    pub quarter: Quarter,
    /// Stock and flow.
    pub flow_units: StockFlowUnits,
    /// Physical indicators.
    pub indicators: Vec<Indicator>,
    /// Persons whose first job started in the quarter.
    pub placed: Units,
    /// Of those, permanent.
    pub placed_permanent: Units,
}

/// The age band of an age in years: `15-29`, `30-49`, `50+`, or `missing` (the bands
/// of the GOL target groups' youth cut-off and the over-50s).
pub fn age_band(age: f64) -> &'static str {
    match age {
        a if a < 30.0 => "15-29",
        a if a < 50.0 => "30-49",
        a if a >= 50.0 => "50+",
        _ => "missing",
    }
}

/// The education group of an ISCED 2011 level: `isced_0_2` (up to lower secondary),
/// `isced_3_4` (upper secondary), `isced_5_8` (tertiary), or `missing`.
pub fn education_level(isced: Option<i64>) -> &'static str {
    match isced {
        Some(0..=2) => "isced_0_2",
        Some(3..=4) => "isced_3_4",
        Some(5..=8) => "isced_5_8",
        _ => "missing",
    }
}

fn dates(df: &DataFrame, col: &str) -> Result<Vec<Option<i32>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let c = df.column(col)?.cast(&DataType::Int32)?;
    Ok(c.i32()?.into_iter().collect())
}

fn strings(df: &DataFrame, col: &str) -> Result<Vec<Option<String>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    Ok(df
        .column(col)?
        .str()?
        .into_iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

fn ints(df: &DataFrame, col: &str) -> Result<Vec<Option<i64>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let c = df.column(col)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.into_iter().collect())
}

fn bools(df: &DataFrame, col: &str) -> Result<Vec<Option<bool>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let c = df.column(col)?.cast(&DataType::Boolean)?;
    Ok(c.bool()?.into_iter().collect())
}

/// A tenant's services and first jobs, read once, from which any quarter's indicators
/// and placements are counted.
struct Period {
    tenant: String,
    person: Vec<Option<String>>,
    employer: Vec<Option<String>>,
    code: Vec<Option<String>>,
    start: Vec<Option<i32>>,
    outcome: Vec<Option<String>>,
    /// Each known person's first job: day and whether permanent.
    first_job: BTreeMap<String, (i32, bool)>,
}

impl Period {
    fn read(
        tenant: &str,
        services: &DataFrame,
        emp: &DataFrame,
        person_ids: &[Option<String>],
    ) -> Result<Period> {
        let (person, employer, code, start, outcome) = if services.height() > 0 {
            (
                strings(services, "person_id")?,
                strings(services, "employer_id")?,
                strings(services, "service_code")?,
                dates(services, "start_date")?,
                strings(services, "outcome")?,
            )
        } else {
            Default::default()
        };
        let mut first_job: BTreeMap<String, (i32, bool)> = BTreeMap::new();
        if emp.height() > 0 {
            let known: HashSet<&str> = person_ids.iter().flatten().map(String::as_str).collect();
            let pid = strings(emp, "person_id")?;
            let sd = dates(emp, "start_date")?;
            let ct = strings(emp, "contract_type")?;
            for i in 0..emp.height() {
                if let (Some(p), Some(d)) = (pid[i].as_deref(), sd[i]) {
                    if !known.contains(p) {
                        continue;
                    }
                    let perm = ct[i].as_deref() == Some("indeterminato");
                    let entry = first_job.entry(p.to_string()).or_insert((d, perm));
                    if d < entry.0 {
                        *entry = (d, perm);
                    }
                }
            }
        }
        Ok(Period {
            tenant: tenant.to_string(),
            person,
            employer,
            code,
            start,
            outcome,
            first_job,
        })
    }

    /// The physical indicators of quarter `q`, the persons whose first job started in it
    /// and those of them on a permanent contract.
    fn figures(&self, q: Quarter) -> (Vec<Indicator>, Units, Units) {
        let (s, e) = (days(q.start()), days(q.end()));
        let in_q = |d: Option<i32>| d.is_some_and(|d| d >= s && d <= e);
        let mut indicators = Vec::new();
        for (id, it, en, svc, oc) in INDICATORS {
            let companies = svc.starts_with('B');
            let mut who: HashSet<&str> = HashSet::new();
            for i in 0..self.code.len() {
                if self.code[i].as_deref() == Some(*svc)
                    && in_q(self.start[i])
                    && oc.is_none_or(|o| self.outcome[i].as_deref() == Some(o))
                {
                    let subject = if companies {
                        self.employer[i].as_deref()
                    } else {
                        self.person[i].as_deref()
                    };
                    if let Some(sub) = subject {
                        who.insert(sub);
                    }
                }
            }
            let kind = if companies {
                UnitKind::Company
            } else {
                UnitKind::Person
            };
            let set = units(
                who.iter()
                    .map(|w| unit_key(&self.tenant, kind, w))
                    .collect(),
            );
            indicators.push(Indicator {
                id,
                label_it: it,
                label_en: en,
                count: set.len() as u64,
                companies,
                units: set,
            });
        }
        let (mut placed, mut permanent) = (Vec::new(), Vec::new());
        for (p, (d, perm)) in &self.first_job {
            if in_q(Some(*d)) {
                let u = unit_key(&self.tenant, UnitKind::Person, p);
                placed.push(u);
                if *perm {
                    permanent.push(u);
                }
            }
        }
        (indicators, units(placed), units(permanent))
    }
}

/// Stock and flow as sets: `ids[i]` is the unit of person `i`.
pub fn stock_flow_units(
    intake: &[Option<i32>],
    exit: &[Option<i32>],
    ids: &[u64],
    q: Quarter,
) -> StockFlowUnits {
    let (s, e) = (days(q.start()), days(q.end()));
    let pick = |f: &dyn Fn(Option<i32>, Option<i32>) -> bool| -> Units {
        units(
            (0..intake.len())
                .filter(|&i| f(intake[i], exit[i]))
                .map(|i| ids[i])
                .collect(),
        )
    };
    let in_charge = |day: i32| {
        move |i: Option<i32>, x: Option<i32>| {
            i.is_some_and(|i| i <= day) && x.is_none_or(|x| x > day)
        }
    };
    StockFlowUnits {
        stock_start: pick(&in_charge(s - 1)),
        inflow: pick(&|i, _| i.is_some_and(|i| i >= s && i <= e)),
        outflow: pick(&|i, x| i.is_some() && x.is_some_and(|x| x >= s && x <= e)),
        stock_end: pick(&in_charge(e)),
    }
}

/// Stock and flow from intake and exit day numbers.
pub fn stock_flow(intake: &[Option<i32>], exit: &[Option<i32>], q: Quarter) -> StockFlow {
    let (s, e) = (days(q.start()), days(q.end()));
    let in_charge = |day: i32| {
        intake
            .iter()
            .zip(exit)
            .filter(|(i, x)| i.is_some_and(|i| i <= day) && x.is_none_or(|x| x > day))
            .count() as u64
    };
    let inflow = intake
        .iter()
        .filter(|i| i.is_some_and(|i| i >= s && i <= e))
        .count() as u64;
    let outflow = intake
        .iter()
        .zip(exit)
        .filter(|(i, x)| i.is_some() && x.is_some_and(|x| x >= s && x <= e))
        .count() as u64;
    StockFlow {
        stock_start: in_charge(s - 1),
        inflow,
        outflow,
        stock_end: in_charge(e),
    }
}

/// Computes a tenant's quarter.
pub fn tenant_quarter(scope: &TenantScope, q: Quarter, history: usize) -> Result<TenantQuarter> {
    let tenant = scope.tenant().to_string();
    let persons = scope.read(Table::Persons)?;
    let intake = dates(&persons, "intake_date")?;
    let exit = dates(&persons, "exit_date")?;
    let person_ids = strings(&persons, "person_id")?;
    let ids: Vec<u64> = person_ids
        .iter()
        .map(|p| unit_key(&tenant, UnitKind::Person, p.as_deref().unwrap_or("")))
        .collect();
    let sf = stock_flow(&intake, &exit, q);
    let flow_units = stock_flow_units(&intake, &exit, &ids, q);
    let mut stock_history = Vec::new();
    let mut hq = q;
    for _ in 0..history {
        stock_history.push((hq, stock_flow_units(&intake, &exit, &ids, hq).stock_end));
        hq = hq.prev();
    }
    stock_history.reverse();

    let end = days(q.end());
    let in_stock: Vec<bool> = intake
        .iter()
        .zip(&exit)
        .map(|(i, x)| i.is_some_and(|i| i <= end) && x.is_none_or(|x| x > end))
        .collect();
    let mut by_sex: BTreeMap<String, Units> = BTreeMap::new();
    let mut by_cit: BTreeMap<String, Units> = BTreeMap::new();
    let mut by_prov: BTreeMap<String, Units> = BTreeMap::new();
    let mut by_age: BTreeMap<String, Units> = BTreeMap::new();
    let mut by_edu: BTreeMap<String, Units> = BTreeMap::new();
    let mut vulnerable: BTreeMap<String, Units> = BTreeMap::new();
    let mut province_of: std::collections::HashMap<u64, String> = Default::default();
    if persons.height() > 0 {
        let birth = ints(&persons, "birth_year")?;
        let edu = ints(&persons, "education")?;
        let flags = [
            ("disability", bools(&persons, "disability_l68")?),
            ("income_support", bools(&persons, "income_support")?),
            ("social_services", bools(&persons, "social_services_care")?),
        ];
        let sex = strings(&persons, "sex")?;
        let cit = strings(&persons, "citizenship")?;
        let mun = strings(&persons, "municipality")?;
        let territory = Territory::get();
        for i in 0..persons.height() {
            let p = mun[i]
                .as_deref()
                .and_then(|m| territory.province_of(m))
                .map_or("?".to_string(), |p| p.name.clone());
            province_of.insert(ids[i], p);
            if !in_stock[i] {
                continue;
            }
            by_sex
                .entry(sex[i].clone().unwrap_or_default())
                .or_default()
                .push(ids[i]);
            let g = match CitizenshipGroup::of(cit[i].as_deref().unwrap_or("")) {
                CitizenshipGroup::Italian => "italiana",
                CitizenshipGroup::OtherEu => "UE",
                CitizenshipGroup::NonEu => "extra UE",
            };
            by_cit.entry(g.to_string()).or_default().push(ids[i]);
            by_prov
                .entry(province_of[&ids[i]].clone())
                .or_default()
                .push(ids[i]);
            let age = birth[i].map_or(f64::NAN, |b| f64::from(q.end().year()) - b as f64);
            by_age.entry(age_band(age).into()).or_default().push(ids[i]);
            by_edu
                .entry(education_level(edu[i]).into())
                .or_default()
                .push(ids[i]);
            for (name, v) in &flags {
                if v[i] == Some(true) {
                    vulnerable.entry((*name).into()).or_default().push(ids[i]);
                }
            }
        }
    }
    for m in [
        &mut by_sex,
        &mut by_cit,
        &mut by_prov,
        &mut by_age,
        &mut by_edu,
        &mut vulnerable,
    ] {
        for v in m.values_mut() {
            *v = units(std::mem::take(v));
        }
    }

    let in_q = |d: Option<i32>| d.is_some_and(|d| d >= days(q.start()) && d <= days(q.end()));

    let gol = scope.read_columns(Table::Gol, Some(&["date", "path", "row_key"]))?;
    let mut gol_paths: BTreeMap<u8, Units> = BTreeMap::new();
    if gol.height() > 0 {
        let gd = dates(&gol, "date")?;
        let gp: Vec<Option<i64>> = gol.column("path")?.i64()?.into_iter().collect();
        let keys: Vec<Option<u64>> = gol.column("row_key")?.u64()?.into_iter().collect();
        for ((d, p), k) in gd.into_iter().zip(gp).zip(keys) {
            if let (true, Some(p)) = (in_q(d), p) {
                let id = k.unwrap_or(0).to_string();
                gol_paths
                    .entry(p as u8)
                    .or_default()
                    .push(unit_key(&tenant, UnitKind::Event, &id));
            }
        }
        for v in gol_paths.values_mut() {
            *v = units(std::mem::take(v));
        }
    }

    let services = scope.read_columns(
        Table::Services,
        Some(&[
            "person_id",
            "employer_id",
            "service_code",
            "start_date",
            "outcome",
        ]),
    )?;
    let emp = scope.read_columns(
        Table::Employment,
        Some(&["person_id", "start_date", "contract_type"]),
    )?;
    let period = Period::read(&tenant, &services, &emp, &person_ids)?;
    let (indicators, placed, placed_permanent) = period.figures(q);
    let mut placed_by_province: BTreeMap<String, Units> = BTreeMap::new();
    for u in &placed {
        let p = province_of.get(u).cloned().unwrap_or_else(|| "?".into());
        placed_by_province.entry(p).or_default().push(*u);
    }
    let mut indicator_history: Vec<Vec<u64>> = vec![Vec::new(); indicators.len()];
    let mut hq = q;
    for _ in 0..8 {
        hq = hq.prev();
        for (k, i) in period.figures(hq).0.iter().enumerate() {
            if let Some(h) = indicator_history.get_mut(k) {
                h.push(i.count);
            }
        }
    }
    for h in &mut indicator_history {
        h.reverse();
    }
    let earlier = [q.prev().prev().prev().prev(), q.prev()]
        .into_iter()
        .map(|eq| {
            let (indicators, placed, placed_permanent) = period.figures(eq);
            PeriodFigures {
                quarter: eq,
                flow_units: stock_flow_units(&intake, &exit, &ids, eq),
                indicators,
                placed,
                placed_permanent,
            }
        })
        .collect();
    Ok(TenantQuarter {
        tenant,
        quarter: q,
        stock_flow: sf,
        flow_units,
        stock_history,
        stock_by_sex: by_sex,
        stock_by_citizenship: by_cit,
        stock_by_province: by_prov,
        gol_paths,
        indicators,
        placed,
        placed_permanent,
        stock_by_age: by_age,
        stock_by_education: by_edu,
        stock_vulnerable: vulnerable,
        placed_by_province,
        indicator_history,
        earlier,
    })
}

/// The flow, physical indicators and placements of each of `quarters` for one tenant,
/// as sets (the annual report's quarters), reading the store once.
pub fn quarter_figures(scope: &TenantScope, quarters: &[Quarter]) -> Result<Vec<PeriodFigures>> {
    let tenant = scope.tenant().to_string();
    let persons = scope.read(Table::Persons)?;
    let intake = dates(&persons, "intake_date")?;
    let exit = dates(&persons, "exit_date")?;
    let person_ids = strings(&persons, "person_id")?;
    let ids: Vec<u64> = person_ids
        .iter()
        .map(|p| unit_key(&tenant, UnitKind::Person, p.as_deref().unwrap_or("")))
        .collect();
    let services = scope.read_columns(
        Table::Services,
        Some(&[
            "person_id",
            "employer_id",
            "service_code",
            "start_date",
            "outcome",
        ]),
    )?;
    let emp = scope.read_columns(
        Table::Employment,
        Some(&["person_id", "start_date", "contract_type"]),
    )?;
    let period = Period::read(&tenant, &services, &emp, &person_ids)?;
    Ok(quarters
        .iter()
        .map(|&q| {
            let (indicators, placed, placed_permanent) = period.figures(q);
            PeriodFigures {
                quarter: q,
                flow_units: stock_flow_units(&intake, &exit, &ids, q),
                indicators,
                placed,
                placed_permanent,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quarters_parse_and_bound() {
        let q = Quarter::parse("2026q3").unwrap();
        assert_eq!(q.to_string(), "2026Q3");
        assert_eq!(q.start(), NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(q.end(), NaiveDate::from_ymd_opt(2026, 9, 30).unwrap());
        assert_eq!(
            Quarter::parse("2026Q1").unwrap().prev().to_string(),
            "2025Q4"
        );
        assert!(Quarter::parse("2026Q5").is_err());
        assert!(Quarter::parse("Q3").is_err());
    }

    proptest! {
        // The identity that every stock-and-flow table must satisfy.
        #[test]
        fn stock_start_plus_inflow_minus_outflow_is_stock_end(
            spells in proptest::collection::vec((0i32..1500, proptest::option::of(0i32..800)), 0..200),
            qi in 0u32..12,
        ) {
            let base = days(NaiveDate::from_ymd_opt(2023, 1, 1).unwrap());
            let intake: Vec<Option<i32>> = spells.iter().map(|(i, _)| Some(base + i)).collect();
            let exit: Vec<Option<i32>> = spells.iter().map(|(i, x)| x.map(|x| base + i + x)).collect();
            let q = Quarter { year: 2023 + (qi / 4) as i32, q: qi % 4 + 1 };
            let sf = stock_flow(&intake, &exit, q);
            prop_assert_eq!(sf.stock_start + sf.inflow - sf.outflow, sf.stock_end);
            // The sets agree with the counts, and the end stock is the start stock plus the
            // inflow less the outflow as sets too.
            let ids: Vec<u64> = (0..intake.len() as u64).collect();
            let u = stock_flow_units(&intake, &exit, &ids, q);
            prop_assert_eq!(u.stock_end.len() as u64, sf.stock_end);
            prop_assert_eq!(u.stock_start.len() as u64, sf.stock_start);
            let mut end: Vec<u64> = u.stock_start.iter().chain(&u.inflow).copied()
                .filter(|x| u.outflow.binary_search(x).is_err()).collect();
            end.sort_unstable();
            end.dedup();
            prop_assert_eq!(end, u.stock_end);
        }
    }
}
