//! Indicators of a tenant for a period: the stock and flow of persons in charge, their
//! breakdowns, the physical monitoring indicators of the Piemonte standards (seed 003)
//! and GOL path counts. Counts here are exact; suppression of small cells happens when
//! they are published (anonymiser), never here.

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

/// Everything the quarterly report needs from one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantQuarter {
    /// Tenant.
    pub tenant: String,
    /// Period.
    pub quarter: Quarter,
    /// Stock and flow in the quarter.
    pub stock_flow: StockFlow,
    /// Stock at the end of each of the last quarters, oldest first.
    pub stock_history: Vec<(Quarter, u64)>,
    /// Stock at the end by sex (M, F).
    pub stock_by_sex: BTreeMap<String, u64>,
    /// Stock at the end by citizenship group.
    pub stock_by_citizenship: BTreeMap<String, u64>,
    /// Stock at the end by province.
    pub stock_by_province: BTreeMap<String, u64>,
    /// Inflow by final GOL path (of assessments dated in the quarter).
    pub gol_paths: BTreeMap<u8, u64>,
    /// Physical indicators.
    pub indicators: Vec<Indicator>,
    /// Persons in charge whose first job started in the quarter.
    pub placed: u64,
    /// Of those, on a permanent contract.
    pub placed_permanent: u64,
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
    let persons = scope.read(Table::Persons)?;
    let intake = dates(&persons, "intake_date")?;
    let exit = dates(&persons, "exit_date")?;
    let sf = stock_flow(&intake, &exit, q);
    let mut stock_history = Vec::new();
    let mut hq = q;
    for _ in 0..history {
        stock_history.push((hq, stock_flow(&intake, &exit, hq).stock_end));
        hq = hq.prev();
    }
    stock_history.reverse();

    let end = days(q.end());
    let in_stock: Vec<bool> = intake
        .iter()
        .zip(&exit)
        .map(|(i, x)| i.is_some_and(|i| i <= end) && x.is_none_or(|x| x > end))
        .collect();
    let mut by_sex = BTreeMap::new();
    let mut by_cit = BTreeMap::new();
    let mut by_prov = BTreeMap::new();
    if persons.height() > 0 {
        let sex = strings(&persons, "sex")?;
        let cit = strings(&persons, "citizenship")?;
        let mun = strings(&persons, "municipality")?;
        let territory = Territory::get();
        for i in 0..persons.height() {
            if !in_stock[i] {
                continue;
            }
            *by_sex
                .entry(sex[i].clone().unwrap_or_default())
                .or_insert(0) += 1;
            let g = match CitizenshipGroup::of(cit[i].as_deref().unwrap_or("")) {
                CitizenshipGroup::Italian => "italiana",
                CitizenshipGroup::OtherEu => "UE",
                CitizenshipGroup::NonEu => "extra UE",
            };
            *by_cit.entry(g.to_string()).or_insert(0) += 1;
            let p = mun[i]
                .as_deref()
                .and_then(|m| territory.province_of(m))
                .map_or("?".to_string(), |p| p.name.clone());
            *by_prov.entry(p).or_insert(0) += 1;
        }
    }

    let (s, e) = (days(q.start()), days(q.end()));
    let in_q = |d: Option<i32>| d.is_some_and(|d| d >= s && d <= e);

    let gol = scope.read_columns(Table::Gol, Some(&["date", "path"]))?;
    let mut gol_paths = BTreeMap::new();
    if gol.height() > 0 {
        let gd = dates(&gol, "date")?;
        let gp: Vec<Option<i64>> = gol.column("path")?.i64()?.into_iter().collect();
        for (d, p) in gd.into_iter().zip(gp) {
            if let (true, Some(p)) = (in_q(d), p) {
                *gol_paths.entry(p as u8).or_insert(0) += 1;
            }
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
    let mut indicators = Vec::new();
    {
        let (pid, eid, code, start, outcome) = if services.height() > 0 {
            (
                strings(&services, "person_id")?,
                strings(&services, "employer_id")?,
                strings(&services, "service_code")?,
                dates(&services, "start_date")?,
                strings(&services, "outcome")?,
            )
        } else {
            Default::default()
        };
        for (id, it, en, svc, oc) in INDICATORS {
            let companies = svc.starts_with('B');
            let mut who: HashSet<&str> = HashSet::new();
            for i in 0..code.len() {
                if code[i].as_deref() == Some(*svc)
                    && in_q(start[i])
                    && oc.is_none_or(|o| outcome[i].as_deref() == Some(o))
                {
                    let subject = if companies {
                        eid[i].as_deref()
                    } else {
                        pid[i].as_deref()
                    };
                    if let Some(sub) = subject {
                        who.insert(sub);
                    }
                }
            }
            indicators.push(Indicator {
                id,
                label_it: it,
                label_en: en,
                count: who.len() as u64,
                companies,
            });
        }
    }

    // Placements: first job start in the quarter of persons of this tenant.
    let emp = scope.read_columns(
        Table::Employment,
        Some(&["person_id", "start_date", "contract_type"]),
    )?;
    let (mut placed, mut placed_permanent) = (0, 0);
    if emp.height() > 0 {
        let known: HashSet<String> = strings(&persons, "person_id")?
            .into_iter()
            .flatten()
            .collect();
        let pid = strings(&emp, "person_id")?;
        let sd = dates(&emp, "start_date")?;
        let ct = strings(&emp, "contract_type")?;
        let mut first: BTreeMap<&str, (i32, bool)> = BTreeMap::new();
        for i in 0..emp.height() {
            if let (Some(p), Some(d)) = (pid[i].as_deref(), sd[i]) {
                if !known.contains(p) {
                    continue;
                }
                let perm = ct[i].as_deref() == Some("indeterminato");
                let entry = first.entry(p).or_insert((d, perm));
                if d < entry.0 {
                    *entry = (d, perm);
                }
            }
        }
        for (d, perm) in first.values() {
            if in_q(Some(*d)) {
                placed += 1;
                placed_permanent += *perm as u64;
            }
        }
    }
    Ok(TenantQuarter {
        tenant: scope.tenant().to_string(),
        quarter: q,
        stock_flow: sf,
        stock_history,
        stock_by_sex: by_sex,
        stock_by_citizenship: by_cit,
        stock_by_province: by_prov,
        gol_paths,
        indicators,
        placed,
        placed_permanent,
    })
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
        }
    }
}
