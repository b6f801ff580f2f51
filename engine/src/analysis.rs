//! Analysis tables: the one-row-per-person table a study runs on, built from the data
//! model instead of by hand.
//!
//! A [`AnalysisSpec`] names a **cohort** (persons taken in charge in a window, filtered by
//! any column of the table: attributes, territory, instrument scores, GOL path), an
//! **exposure** (a service started within N days of taking charge, or a GOL path) and the
//! **outcomes** (employed, on a permanent contract, and days employed, at each horizon after
//! a reference date). [`from_store`] builds it from one tenant's store; [`from_release`]
//! from a research release, whose person table already carries the release's versions of
//! the same variables. Every person left out is counted, by reason, as a set of persons so
//! that the counts can be protected together before they are published
//! ([`AnalysisCounts::steps`]).
//!
//! From a store, a person's row is their first intake in the window, with the first ASSO,
//! ISA and GOL of that intake (from 30 days before it) and the services started on or
//! after it; a release carries what `occupa anonymise` computed, from each person's latest
//! intake and last GOL assessment.
//!
//! Records are attached to persons with polars joins (each record gets its person's row),
//! then reduced per person in plain loops; the table is a [`crate::columns::Table`], the
//! input every method runner takes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{Datelike, Months, NaiveDate};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cluster::run::{ClusteringSpec, cluster_table};
use crate::columns::{Table, Values};
use crate::indicators::{UnitKind, unit_key};
use crate::schema::Table as StoreTable;
use crate::store::TenantScope;
use crate::territory::Territory;
use crate::value::{date_of, days};
use crate::{Error, Result};

/// Days before taking charge in which a questionnaire or assessment still counts as this
/// intake's (offices often assess a few days before the formal intake).
const ASSESSMENT_GRACE_DAYS: i32 = 30;

/// What a study's analysis table holds (the `[cohort]`, `[exposure]`, `[outcomes]` and
/// `[profiles]` sections of a study file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    /// Which persons.
    #[serde(default)]
    pub cohort: CohortSpec,
    /// The treatment.
    #[serde(default)]
    pub exposure: Option<ExposureSpec>,
    /// Horizons and reference date of the outcomes.
    #[serde(default)]
    pub outcomes: OutcomeSpec,
    /// Occupability profiles fitted on the cohort (a clustering of its columns), added as
    /// the column `profile_class`.
    #[serde(default)]
    pub profiles: Option<ClusteringSpec>,
    /// The employability index of each person, by the version of a scoring rule in effect
    /// on their intake day (a store's rules; `occupa profile fit --effective-from`): the
    /// columns `risk` (of not being employed), `risk_class` and `risk_version`, so that a
    /// design can estimate a service's effect by risk class (`by = "risk_class"`).
    #[serde(default)]
    pub risk: Option<RiskSpec>,
}

/// Which scoring rule gives the risk columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSpec {
    /// The rule's name (default `employed_12m`).
    #[serde(default = "default_rule")]
    pub rule: String,
}

fn default_rule() -> String {
    "employed_12m".into()
}

/// Which persons: taken in charge in a window, with every `where` column holding one of
/// its values and every `range` column within its bounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    /// First day of the intake window (`YYYY-MM-DD`), inclusive.
    #[serde(default)]
    pub intake_from: Option<String>,
    /// Last day of the intake window, inclusive.
    #[serde(default)]
    pub intake_to: Option<String>,
    /// Column → accepted values (as the table writes them).
    #[serde(default, rename = "where")]
    pub filters: BTreeMap<String, Vec<String>>,
    /// Column → `[low, high]`, inclusive.
    #[serde(default)]
    pub range: BTreeMap<String, [f64; 2]>,
}

/// The treatment: a service started within `within_days` of taking charge, or a GOL path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExposureSpec {
    /// The service code (`A.5`).
    #[serde(default)]
    pub service: Option<String>,
    /// Days after taking charge within which the service must start (default 90).
    #[serde(default)]
    pub within_days: Option<u32>,
    /// Or: the final GOL paths that count as exposed (`[4]`).
    #[serde(default)]
    pub gol_path: Option<Vec<u8>>,
    /// Persons who start the service only after the window: `exclude` (default: they are
    /// neither treated nor a clean comparison) or `control`.
    #[serde(default)]
    pub later: Later,
    /// Persons who start any of these services within the window are left out (to compare
    /// the service with no service rather than with the others).
    #[serde(default)]
    pub exclude_services: Vec<String>,
    /// The exposure column's name (default `exposed`).
    #[serde(default = "exposed")]
    pub name: String,
}

fn exposed() -> String {
    "exposed".into()
}

/// What to do with persons who start the service after the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Later {
    /// Leave them out (counted).
    #[default]
    Exclude,
    /// Count them as not exposed.
    Control,
}

/// The outcomes' horizons and reference date.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSpec {
    /// Months after the reference date (default 6 and 12).
    #[serde(default = "horizons")]
    pub months: Vec<u32>,
    /// `intake` (default) or `window_end` (the end of the exposure window, so that the
    /// treated and the controls are followed from the same day).
    #[serde(default)]
    pub reference: Reference,
    /// The last day the data cover (default: the latest date in the data). An outcome
    /// after it is unknown, not zero.
    #[serde(default)]
    pub observed_until: Option<String>,
}

impl Default for OutcomeSpec {
    fn default() -> Self {
        OutcomeSpec {
            months: horizons(),
            reference: Reference::Intake,
            observed_until: None,
        }
    }
}

fn horizons() -> Vec<u32> {
    vec![6, 12]
}

/// The day outcomes are measured from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The day of taking charge.
    #[default]
    Intake,
    /// The last day of the exposure window.
    WindowEnd,
}

/// Who was left out and why, as sets of persons, for table protection before anything
/// is published (no count here is safe to print as it is).
#[derive(Debug, Clone)]
pub struct AnalysisCounts {
    /// What the table was built from.
    pub source: String,
    /// The persons of each count: `("persons", all)`, then each exclusion in the order
    /// applied, then `("rows", kept)`; they partition the persons. From a store, as the
    /// reports' person keys ([`crate::indicators::unit_key`]), so that the store's ledger
    /// audits a study's counts and its reports' as one system.
    pub steps: Vec<(String, Vec<u64>)>,
    /// The last day the data cover (outcomes after it are unknown).
    pub observed_until: Option<String>,
    /// The outcome columns that are unknown for persons not observed long enough.
    pub outcomes: Vec<String>,
    /// What the builder did that the user should know (a date it capped).
    pub notes: Vec<String>,
}

/// An analysis table and how it was made.
#[derive(Debug, Clone)]
pub struct AnalysisTable {
    /// One row per person of the cohort.
    pub table: Table,
    /// The counts.
    pub counts: AnalysisCounts,
    /// Each row's position in the source's person table (never published; tests join the
    /// simulator's truth through it).
    pub source_rows: Vec<usize>,
    /// Each row's unit key, as [`AnalysisCounts::steps`] counts it (tables of the rows are
    /// protected together with the steps).
    pub unit_keys: Vec<u64>,
}

/// A checked [`AnalysisSpec`].
#[derive(Debug, Clone)]
pub struct ValidAnalysis {
    spec: AnalysisSpec,
    profiles: Option<crate::cluster::run::ClusterSpec>,
    from: Option<i32>,
    to: Option<i32>,
    until: Option<i32>,
    within: i32,
}

impl AnalysisSpec {
    /// Checks every field once.
    pub fn check(&self) -> Result<ValidAnalysis> {
        let date = |name: &'static str, v: &Option<String>| -> Result<Option<i32>> {
            v.as_deref()
                .map(|s| {
                    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                        .map(days)
                        .map_err(|_| Error::Param {
                            name,
                            reason: format!("{s:?} is not a date: write it as 2024-01-31"),
                        })
                })
                .transpose()
        };
        let from = date("cohort.intake_from", &self.cohort.intake_from)?;
        let to = date("cohort.intake_to", &self.cohort.intake_to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(Error::Param {
                name: "cohort.intake_to",
                reason: "the intake window ends before it starts".into(),
            });
        }
        for (col, [lo, hi]) in &self.cohort.range {
            if lo.partial_cmp(hi) != Some(std::cmp::Ordering::Less) && lo != hi {
                return Err(Error::Param {
                    name: "cohort.range",
                    reason: format!("{col}: [{lo}, {hi}] is not a range (low ≤ high)"),
                });
            }
        }
        let until = date("outcomes.observed_until", &self.outcomes.observed_until)?;
        if self.outcomes.months.is_empty()
            || self.outcomes.months.iter().any(|&m| !(1..=60).contains(&m))
        {
            return Err(Error::Param {
                name: "outcomes.months",
                reason: "give horizons between 1 and 60 months".into(),
            });
        }
        let mut within = 0;
        if let Some(e) = &self.exposure {
            match (&e.service, &e.gol_path) {
                (Some(s), None) => {
                    if s.trim().is_empty() {
                        return Err(Error::Param {
                            name: "exposure.service",
                            reason: "name a service code such as \"A.5\"".into(),
                        });
                    }
                    within = e.within_days.unwrap_or(90) as i32;
                    if !(1..=730).contains(&within) {
                        return Err(Error::Param {
                            name: "exposure.within_days",
                            reason: "between 1 and 730 days".into(),
                        });
                    }
                }
                (None, Some(p)) => {
                    if p.is_empty() || p.iter().any(|x| !(1..=4).contains(x)) {
                        return Err(Error::Param {
                            name: "exposure.gol_path",
                            reason: "list GOL paths 1 to 4".into(),
                        });
                    }
                    if e.within_days.is_some() || !e.exclude_services.is_empty() {
                        return Err(Error::Param {
                            name: "exposure",
                            reason: "within_days and exclude_services go with a service, not \
                                     a GOL path"
                                .into(),
                        });
                    }
                }
                _ => {
                    return Err(Error::Param {
                        name: "exposure",
                        reason: "give either service (with within_days) or gol_path".into(),
                    });
                }
            }
            if e.name.trim().is_empty() {
                return Err(Error::Param {
                    name: "exposure.name",
                    reason: "the exposure column needs a name".into(),
                });
            }
        }
        if self.outcomes.reference == Reference::WindowEnd && within == 0 {
            return Err(Error::Param {
                name: "outcomes.reference",
                reason: "window_end needs an exposure to a service with within_days".into(),
            });
        }
        let profiles = self.profiles.as_ref().map(|p| p.check()).transpose()?;
        Ok(ValidAnalysis {
            spec: self.clone(),
            profiles,
            from,
            to,
            until,
            within,
        })
    }
}

fn polars_err(e: PolarsError) -> Error {
    Error::Param {
        name: "analysis table",
        reason: e.to_string(),
    }
}

/// A column as day numbers (dates), `None` where missing or absent.
fn day_col(df: &DataFrame, name: &str) -> Result<Vec<Option<i32>>> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![None; df.height()]);
    };
    let c = c.cast(&DataType::Int32).map_err(polars_err)?;
    Ok(c.i32().map_err(polars_err)?.into_iter().collect())
}

/// A column as numbers (booleans 0/1), NaN where missing or absent.
fn num_col(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![f64::NAN; df.height()]);
    };
    let c = c.cast(&DataType::Float64).map_err(polars_err)?;
    Ok(c.f64()
        .map_err(polars_err)?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// A column as texts, `None` where missing or absent.
fn text_col(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![None; df.height()]);
    };
    let c = c.cast(&DataType::String).map_err(polars_err)?;
    Ok(c.str()
        .map_err(polars_err)?
        .into_iter()
        .map(|v| v.filter(|s| !s.is_empty()).map(str::to_string))
        .collect())
}

/// The pseudonym and intake day of each row of an analysis table built from `scope`
/// (what a tenant's own scores are keyed by; never a tax code).
pub fn persons_of(
    scope: &TenantScope,
    built: &AnalysisTable,
) -> Result<Vec<(String, Option<NaiveDate>)>> {
    let persons = scope.read(StoreTable::Persons)?;
    let ids = text_col(&persons, "person_id")?;
    let days = day_col(&persons, "intake_date")?;
    Ok(built
        .source_rows
        .iter()
        .map(|&r| {
            (
                ids.get(r).cloned().flatten().unwrap_or_default(),
                days.get(r).copied().flatten().map(date_of),
            )
        })
        .collect())
}

/// The records of `df` that belong to a cohort person: for each, its position in `df` and
/// its person's row (`cohort` holds `person_id` and `row`). Only the identifier takes part
/// in the join; values are then read from `df` at those positions.
fn attach(df: &DataFrame, cohort: &DataFrame) -> Result<Vec<(usize, usize)>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let ids = DataFrame::new(vec![
        df.column("person_id").map_err(polars_err)?.clone(),
        Column::new("rec".into(), (0..df.height() as u32).collect::<Vec<u32>>()),
    ])
    .map_err(polars_err)?;
    let j = ids
        .inner_join(cohort, ["person_id"], ["person_id"])
        .map_err(polars_err)?;
    let idx = |name: &str| -> Result<Vec<u32>> {
        j.column(name)
            .and_then(|c| c.u32().map(|c| c.into_no_null_iter().collect()))
            .map_err(polars_err)
    };
    let (rec, row) = (idx("rec")?, idx("row")?);
    let mut pairs: Vec<(usize, usize)> = rec
        .into_iter()
        .zip(row)
        .map(|(a, b)| (a as usize, b as usize))
        .collect();
    // The join's order is not specified; the records' is.
    pairs.sort_unstable();
    Ok(pairs)
}

/// Whether each cell of a column holds a value.
fn present_col(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    let Ok(c) = df.column(name) else {
        return Ok(vec![false; df.height()]);
    };
    Ok(c.is_not_null().into_no_null_iter().collect())
}

/// Whether one of the spells (start, end; `None` = open-ended) covers `day`.
pub fn employed_on(spells: impl IntoIterator<Item = (i32, Option<i32>)>, day: i32) -> bool {
    spells
        .into_iter()
        .any(|(s, e)| s <= day && e.is_none_or(|e| e >= day))
}

/// Days from `from` to `to` (inclusive) covered by at least one spell, overlaps counted
/// once.
pub fn days_employed(
    spells: impl IntoIterator<Item = (i32, Option<i32>)>,
    from: i32,
    to: i32,
) -> i64 {
    let mut spans: Vec<(i32, i32)> = spells
        .into_iter()
        .map(|(s, e)| (s.max(from), e.unwrap_or(to).min(to)))
        .filter(|(a, b)| a <= b)
        .collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0i64, i32::MIN);
    for (a, b) in spans {
        let a = a.max(reach);
        if b >= a {
            total += i64::from(b - a + 1);
            reach = b + 1;
        }
    }
    total
}

/// Day `d` plus `m` calendar months.
fn plus_months(d: i32, m: u32) -> Option<i32> {
    date_of(d).checked_add_months(Months::new(m)).map(days)
}

/// Builds the analysis table of one tenant's store.
pub fn from_store(scope: &TenantScope, spec: &ValidAnalysis) -> Result<AnalysisTable> {
    let s = &spec.spec;
    let source = format!("the store of {}", scope.tenant());
    let persons = scope.read(StoreTable::Persons)?;
    if persons.height() == 0 {
        return Err(Error::Param {
            name: "data",
            reason: format!("{source} holds no persons: ingest the persons file first"),
        });
    }
    let n_source = persons.height();
    let tenant = scope.tenant().as_str().to_string();
    let unit_keys: Vec<u64> = text_col(&persons, "person_id")?
        .iter()
        .map(|id| unit_key(&tenant, UnitKind::Person, id.as_deref().unwrap_or("")))
        .collect();
    let intake_all = day_col(&persons, "intake_date")?;
    // Steps hold source rows; they become persons (distinct keys) in `finish`, where the
    // persons are exactly those outside the window, those left out, and the rows.
    let mut steps: Vec<(String, Vec<u64>)> =
        vec![("persons".into(), (0..n_source as u64).collect())];

    // The intake window, then one row per person (the first intake in the window).
    let in_window: Vec<bool> = intake_all
        .iter()
        .map(|d| {
            d.is_some_and(|d| spec.from.is_none_or(|f| d >= f) && spec.to.is_none_or(|t| d <= t))
        })
        .collect();
    let in_cohort: std::collections::HashSet<u64> = (0..n_source)
        .filter(|&i| in_window[i])
        .map(|i| unit_keys[i])
        .collect();
    steps.push((
        "taken in charge outside the window".into(),
        (0..n_source)
            .filter(|&i| !in_cohort.contains(&unit_keys[i]))
            .map(|i| i as u64)
            .collect(),
    ));
    let source_index = Column::new(
        "source_row".into(),
        (0..n_source as u32).collect::<Vec<u32>>(),
    );
    let mut with_index = persons.clone();
    with_index.with_column(source_index).map_err(polars_err)?;
    let mask = BooleanChunked::from_slice("window".into(), &in_window);
    let windowed = with_index.filter(&mask).map_err(polars_err)?;
    let first = windowed
        .sort(
            ["person_id", "intake_date", "source_row"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .map_err(polars_err)?
        .unique_stable(
            Some(&["person_id".to_string()]),
            UniqueKeepStrategy::First,
            None,
        )
        .map_err(polars_err)?
        .sort(["source_row"], SortMultipleOptions::default())
        .map_err(polars_err)?;
    let kept_rows: Vec<u32> = first
        .column("source_row")
        .and_then(|c| c.u32().map(|c| c.into_no_null_iter().collect()))
        .map_err(polars_err)?;
    let n = first.height();
    let cohort = DataFrame::new(vec![
        first.column("person_id").map_err(polars_err)?.clone(),
        Column::new("row".into(), (0..n as u32).collect::<Vec<u32>>()),
    ])
    .map_err(polars_err)?;
    let intake: Vec<i32> = day_col(&first, "intake_date")?
        .into_iter()
        .map(|d| d.unwrap_or(0))
        .collect();
    let mut last_day = intake_all.iter().flatten().copied().max().unwrap_or(0);
    for d in day_col(&persons, "exit_date")?.into_iter().flatten() {
        last_day = last_day.max(d);
    }

    let mut cols = person_columns(&first, &intake)?;
    cols.extend(assessment_columns(scope, &cohort, &intake)?);
    // Services: the first start of each code the exposure names, in days after taking
    // charge.
    let mut codes: Vec<&str> = Vec::new();
    if let Some(e) = &s.exposure {
        codes.extend(e.service.as_deref());
        codes.extend(e.exclude_services.iter().map(String::as_str));
    }
    let first_start = first_starts(scope, &cohort, &intake, &codes)?;
    // Contracts. The data cover up to the last intake, exit or contract start of the
    // whole tenant (contracts' end dates are often planned ones, services may be booked
    // ahead).
    let (contracts, last_start) = contracts_of(scope, &cohort, n)?;
    if let Some(d) = last_start {
        last_day = last_day.max(d);
    }
    // Outcomes past the data's end are unknown: a later `observed_until` would make them 0.
    let mut notes = Vec::new();
    let until = match spec.until {
        Some(u) if u > last_day => {
            notes.push(format!(
                "observed_until {} is after the last date in the data ({}): outcomes are \
                 measured up to the latter",
                date_of(u),
                date_of(last_day)
            ));
            last_day
        }
        Some(u) => u,
        None => last_day,
    };

    let reference_day = |d: i32| match s.outcomes.reference {
        Reference::Intake => d,
        Reference::WindowEnd => d + spec.within,
    };
    // Exposure.
    let mut exclude: Vec<Option<String>> = vec![None; n];
    let mut exposure_col: Option<(String, Vec<f64>)> = None;
    if let Some(e) = &s.exposure {
        let mut x = vec![0.0; n];
        if let Some(code) = &e.service {
            let starts = first_start.get(code.as_str());
            if let Some(starts) = starts {
                cols.push((
                    format!("days_to_{}", code.to_lowercase().replace('.', "")),
                    Values::Numbers(
                        starts
                            .iter()
                            .map(|d| d.map_or(f64::NAN, f64::from))
                            .collect(),
                    ),
                ));
            }
            // A later start before the last horizon is neither treated nor a clean control;
            // one after it cannot have changed the outcomes.
            let last = s.outcomes.months.iter().copied().max().unwrap_or(12);
            for r in 0..n {
                match starts.and_then(|v| v[r]) {
                    Some(d) if d <= spec.within => x[r] = 1.0,
                    Some(d)
                        if e.later == Later::Exclude
                            && plus_months(reference_day(intake[r]), last)
                                .is_none_or(|h| intake[r] + d <= h) =>
                    {
                        exclude[r] = Some(format!(
                            "started {code} after {} days, before the last horizon",
                            spec.within
                        ));
                    }
                    _ => {}
                }
            }
            for other in &e.exclude_services {
                if let Some(v) = first_start.get(other.as_str()) {
                    for r in 0..n {
                        if exclude[r].is_none() && v[r].is_some_and(|d| d <= spec.within) {
                            exclude[r] =
                                Some(format!("started {other} within {} days", spec.within));
                        }
                    }
                }
            }
        } else if let Some(paths) = &e.gol_path {
            let path = cols
                .iter()
                .find(|(c, _)| c == "gol_path")
                .and_then(|(_, v)| match v {
                    Values::Numbers(v) => Some(v.clone()),
                    Values::Texts(_) => None,
                })
                .unwrap_or_else(|| vec![f64::NAN; n]);
            for r in 0..n {
                if path[r].is_nan() {
                    exclude[r] = Some("no GOL assessment".into());
                } else if paths.iter().any(|&p| f64::from(p) == path[r]) {
                    x[r] = 1.0;
                }
            }
        }
        exposure_col = Some((e.name.clone(), x));
    }

    // Outcomes at each horizon after the reference date.
    let reference: Vec<i32> = intake.iter().map(|&d| reference_day(d)).collect();
    let (outcome_cols, outcomes) =
        outcome_columns(&contracts, &reference, until, &s.outcomes.months);
    if let Some((name, x)) = exposure_col {
        cols.push((name, Values::Numbers(x)));
    }
    cols.extend(outcome_cols);
    let source_rows: Vec<usize> = kept_rows.iter().map(|&r| r as usize).collect();
    let table = Table::from_values(&source, cols)?;
    let built = finish(
        table,
        spec,
        source,
        steps,
        unit_keys,
        source_rows,
        exclude,
        Some(date_of(until).to_string()),
        outcomes,
        notes,
    )?;
    match &s.risk {
        Some(r) => with_risk(scope, built, &r.rule),
        None => Ok(built),
    }
}

/// Adds `risk`, `risk_class` and `risk_version`: each person scored by the version of
/// the rule in effect on their intake day (empty before the first version, or when the
/// version cannot score the person).
fn with_risk(scope: &TenantScope, mut built: AnalysisTable, rule: &str) -> Result<AnalysisTable> {
    use crate::profile::rules::RuleBook;
    let book = RuleBook::in_store(scope, rule)?;
    let versions = book.versions()?;
    if versions.is_empty() {
        return Err(Error::Param {
            name: "risk.rule",
            reason: format!(
                "the store of {} has no version of the scoring rule '{rule}': fit one with \
                 occupa profile fit --effective-from DAY",
                scope.tenant()
            ),
        });
    }
    let persons = persons_of(scope, &built)?;
    let n = built.table.len();
    let chosen: Vec<Option<u32>> = persons
        .iter()
        .map(|(_, d)| d.and_then(|d| RuleBook::effective_on(&versions, d).map(|r| r.version)))
        .collect();
    let mut risk = vec![f64::NAN; n];
    let mut class: Vec<Option<String>> = vec![None; n];
    let mut version: Vec<Option<String>> = vec![None; n];
    for r in &versions {
        if !chosen.contains(&Some(r.version)) {
            continue;
        }
        let scores = r.profile.clone().loaded()?.predict(&built.table)?;
        for i in (0..n).filter(|&i| chosen[i] == Some(r.version) && !scores.p[i].is_nan()) {
            risk[i] = 1.0 - scores.p[i];
            class[i] = Some(scores.class[i].to_string());
            version[i] = Some(r.version.to_string());
        }
    }
    built.table = built
        .table
        .with_numeric_column("risk", risk)?
        .with_text_column("risk_class", class)?
        .with_text_column("risk_version", version)?;
    Ok(built)
}

/// The person's attributes at the intake: age, sex, citizenship, education, the
/// vulnerability flags, municipality with its province and region, the intake's month.
fn person_columns(first: &DataFrame, intake: &[i32]) -> Result<Vec<(String, Values)>> {
    let mut cols: Vec<(String, Values)> = Vec::new();
    let birth = num_col(first, "birth_year")?;
    cols.push((
        "age".into(),
        Values::Numbers(
            intake
                .iter()
                .zip(&birth)
                .map(|(&d, &b)| f64::from(date_of(d).year()) - b)
                .collect(),
        ),
    ));
    for c in ["sex", "citizenship"] {
        cols.push((c.into(), Values::Texts(text_col(first, c)?)));
    }
    // Italian, other EU, non-EU: the grouping the reports publish (ISO codes make dozens of
    // sparse dummies).
    cols.push((
        "citizenship_group".into(),
        Values::Texts(
            text_col(first, "citizenship")?
                .iter()
                .map(|c| {
                    c.as_deref().map(|c| {
                        match crate::territory::CitizenshipGroup::of(c) {
                            crate::territory::CitizenshipGroup::Italian => "ITA",
                            crate::territory::CitizenshipGroup::OtherEu => "EU",
                            crate::territory::CitizenshipGroup::NonEu => "non-EU",
                        }
                        .to_string()
                    })
                })
                .collect(),
        ),
    ));
    cols.push((
        "education".into(),
        Values::Numbers(num_col(first, "education")?),
    ));
    for c in ["disability_l68", "income_support", "social_services_care"] {
        cols.push((c.into(), Values::Numbers(num_col(first, c)?)));
    }
    let municipality = text_col(first, "municipality")?;
    let territory = Territory::get();
    let province: Vec<Option<String>> = municipality
        .iter()
        .map(|m| {
            m.as_deref()
                .and_then(|m| territory.province_of(m))
                .map(|p| p.name.clone())
        })
        .collect();
    let region: Vec<Option<String>> = municipality
        .iter()
        .map(|m| {
            m.as_deref()
                .and_then(|m| territory.region_of(m))
                .map(|r| r.name.clone())
        })
        .collect();
    cols.push(("municipality".into(), Values::Texts(municipality)));
    cols.push(("province".into(), Values::Texts(province)));
    cols.push(("region".into(), Values::Texts(region)));
    cols.push((
        "intake_month".into(),
        Values::Texts(
            intake
                .iter()
                .map(|&d| Some(date_of(d).format("%Y-%m").to_string()))
                .collect(),
        ),
    ));

    Ok(cols)
}

/// Days after the first ISA from which a later ISA is a follow-up (a re-assessment, not
/// a correction of the first).
const ISA_FOLLOW_UP_DAYS: i32 = 60;

/// Each person's first ASSO, ISA and GOL record of this intake: scores, ASSO answers,
/// GOL paths, adjustment and override.
fn assessment_columns(
    scope: &TenantScope,
    cohort: &DataFrame,
    intake: &[i32],
) -> Result<Vec<(String, Values)>> {
    let n = intake.len();
    let mut cols: Vec<(String, Values)> = Vec::new();
    for (prefix, table) in [
        ("asso", StoreTable::Asso),
        ("isa", StoreTable::Isa),
        ("gol", StoreTable::Gol),
    ] {
        let df = scope.read(table)?;
        let pairs = attach(&df, cohort)?;
        let names: Vec<String> = if df.height() == 0 {
            Vec::new()
        } else {
            df.get_column_names()
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        let dates = day_col(&df, "date")?;
        // Each person's first record (by date, then by position).
        let mut pick: Vec<Option<(i32, usize)>> = vec![None; n];
        for &(k, r) in &pairs {
            // Records of an earlier episode are not this intake's.
            let Some(d) = dates[k].filter(|&d| d >= intake[r] - ASSESSMENT_GRACE_DAYS) else {
                continue;
            };
            if pick[r].is_none_or(|(pd, pk)| (d, k) < (pd, pk)) {
                pick[r] = Some((d, k));
            }
        }
        let mut wanted: Vec<(String, String)> = Vec::new(); // (stored, analysis column)
        for c in &names {
            if let Some(g) = c.strip_prefix("score_") {
                wanted.push((c.clone(), format!("{prefix}_{g}")));
            }
        }
        if prefix == "asso" {
            for c in names.iter().filter(|c| c.starts_with('q')) {
                wanted.push((c.clone(), format!("asso_{c}")));
            }
        }
        if prefix == "gol" {
            wanted.push(("path".into(), "gol_path".into()));
            wanted.push(("path_system".into(), "gol_path_system".into()));
        }
        for (from, to) in &wanted {
            let v = num_col(&df, from)?;
            cols.push((
                to.clone(),
                Values::Numbers(
                    pick.iter()
                        .map(|p| p.map_or(f64::NAN, |(_, k)| v[k]))
                        .collect(),
                ),
            ));
        }
        // ISA is repeated along the care path: each person's last record of this intake
        // at least ISA_FOLLOW_UP_DAYS after the first (`isa2_*`, and the days between),
        // for the before/after comparison of the persons assessed twice.
        if prefix == "isa" {
            let mut follow: Vec<Option<(i32, usize)>> = vec![None; n];
            for &(k, r) in &pairs {
                let (Some(d), Some((d0, _))) = (dates[k], pick[r]) else {
                    continue;
                };
                if d >= d0 + ISA_FOLLOW_UP_DAYS
                    && follow[r].is_none_or(|(fd, fk)| (d, k) > (fd, fk))
                {
                    follow[r] = Some((d, k));
                }
            }
            for (from, to) in &wanted {
                let v = num_col(&df, from)?;
                cols.push((
                    to.replacen("isa_", "isa2_", 1),
                    Values::Numbers(
                        follow
                            .iter()
                            .map(|p| p.map_or(f64::NAN, |(_, k)| v[k]))
                            .collect(),
                    ),
                ));
            }
            cols.push((
                "isa2_days".into(),
                Values::Numbers(
                    follow
                        .iter()
                        .zip(&pick)
                        .map(|(f, p)| match (f, p) {
                            (Some((d, _)), Some((d0, _))) => f64::from(d - d0),
                            _ => f64::NAN,
                        })
                        .collect(),
                ),
            ));
        }
        if prefix == "gol" && df.height() > 0 {
            let target = present_col(&df, "adjust_target")?;
            let path = num_col(&df, "path")?;
            let system = num_col(&df, "path_system")?;
            let flag = |f: &dyn Fn(usize) -> bool| -> Values {
                Values::Numbers(
                    pick.iter()
                        .map(|p| p.map_or(f64::NAN, |(_, k)| f64::from(u8::from(f(k)))))
                        .collect(),
                )
            };
            cols.push(("gol_adjusted".into(), flag(&|k| target[k])));
            // Which section the operator moved, and by how much (the override audit).
            let section = text_col(&df, "adjust_target")?;
            let points = num_col(&df, "adjust_points")?;
            cols.push((
                "gol_adjust_target".into(),
                Values::Texts(
                    pick.iter()
                        .map(|p| p.and_then(|(_, k)| section[k].clone()))
                        .collect(),
                ),
            ));
            cols.push((
                "gol_adjust_points".into(),
                Values::Numbers(
                    pick.iter()
                        .map(|p| match p {
                            Some((_, k)) if target[*k] => points[*k],
                            Some(_) => 0.0,
                            None => f64::NAN,
                        })
                        .collect(),
                ),
            ));
            // The operator who assessed the person and follows them (an identifier, no
            // name): what the operator ratings group by.
            let operator = text_col(&df, "operator")?;
            cols.push((
                "gol_operator".into(),
                Values::Texts(
                    pick.iter()
                        .map(|p| p.and_then(|(_, k)| operator[k].clone()))
                        .collect(),
                ),
            ));
            cols.push((
                "gol_override".into(),
                Values::Numbers(
                    pick.iter()
                        .map(|p| match p {
                            Some((_, k)) if !path[*k].is_nan() && !system[*k].is_nan() => {
                                f64::from(u8::from(path[*k] != system[*k]))
                            }
                            _ => f64::NAN,
                        })
                        .collect(),
                ),
            ));
        }
    }

    Ok(cols)
}

/// For each code, each person's first start on or after the intake, in days after it.
fn first_starts<'a>(
    scope: &TenantScope,
    cohort: &DataFrame,
    intake: &[i32],
    codes: &[&'a str],
) -> Result<HashMap<&'a str, Vec<Option<i32>>>> {
    let n = intake.len();
    let mut first_start: HashMap<&str, Vec<Option<i32>>> = HashMap::new();
    if codes.is_empty() {
        return Ok(first_start);
    }
    let services = scope.read(StoreTable::Services)?;
    let pairs = attach(&services, cohort)?;
    let srv_start = day_col(&services, "start_date")?;
    let code_col = services
        .column("service_code")
        .and_then(|c| c.cast(&DataType::String))
        .and_then(|c| c.str().cloned())
        .map_err(polars_err)?;
    let srv_code: Vec<Option<&str>> = code_col.into_iter().collect();
    for (k, r) in pairs {
        let (Some(code), Some(st)) = (srv_code[k], srv_start[k]) else {
            continue;
        };
        let Some(&code) = codes.iter().find(|c| **c == code) else {
            continue;
        };
        // A service started before taking charge belongs to an earlier episode.
        if st < intake[r] {
            continue;
        }
        let delta = st - intake[r];
        let v = first_start.entry(code).or_insert_with(|| vec![None; n]);
        v[r] = Some(v[r].map_or(delta, |x: i32| x.min(delta)));
    }
    Ok(first_start)
}

/// A contract: start, end (`None`: open-ended or ongoing), permanent.
type Contract = (i32, Option<i32>, bool);

/// Each cohort person's contracts, and the last contract start of the whole tenant.
fn contracts_of(
    scope: &TenantScope,
    cohort: &DataFrame,
    n: usize,
) -> Result<(Vec<Vec<Contract>>, Option<i32>)> {
    let all_jobs = scope.read(StoreTable::Employment)?;
    let job_start = day_col(&all_jobs, "start_date")?;
    let last_start = job_start.iter().flatten().copied().max();
    let pairs = attach(&all_jobs, cohort)?;
    let job_end = day_col(&all_jobs, "end_date")?;
    let permanent: Vec<bool> = match all_jobs.column("contract_type") {
        Ok(c) => c
            .cast(&DataType::String)
            .and_then(|c| c.str().cloned())
            .map_err(polars_err)?
            .into_iter()
            .map(|v| v == Some("indeterminato"))
            .collect(),
        Err(_) => vec![false; all_jobs.height()],
    };
    let mut contracts: Vec<Vec<Contract>> = vec![Vec::new(); n];
    for (k, r) in pairs {
        let Some(st) = job_start[k] else { continue };
        contracts[r].push((st, job_end[k], permanent[k]));
    }
    Ok((contracts, last_start))
}

/// Employed, on a permanent contract, and days employed at each horizon after each
/// person's reference date; unknown (NaN) when the horizon is after `until`. Returns the
/// columns and the names of those that can be unknown.
fn outcome_columns(
    contracts: &[Vec<Contract>],
    reference: &[i32],
    until: i32,
    months: &[u32],
) -> (Vec<(String, Values)>, Vec<String>) {
    let n = reference.len();
    let mut cols = Vec::new();
    let mut names = Vec::new();
    for &m in months {
        let mut employed = vec![f64::NAN; n];
        let mut permanent = vec![f64::NAN; n];
        let mut worked = vec![f64::NAN; n];
        for r in 0..n {
            let Some(at) = plus_months(reference[r], m).filter(|&d| d <= until) else {
                continue;
            };
            let spells = || contracts[r].iter().map(|c| (c.0, c.1));
            employed[r] = f64::from(u8::from(employed_on(spells(), at)));
            permanent[r] = f64::from(u8::from(employed_on(
                contracts[r].iter().filter(|c| c.2).map(|c| (c.0, c.1)),
                at,
            )));
            worked[r] = days_employed(spells(), reference[r], at) as f64;
        }
        names.push(format!("employed_{m}m"));
        cols.push((format!("employed_{m}m"), Values::Numbers(employed)));
        cols.push((format!("permanent_{m}m"), Values::Numbers(permanent)));
        cols.push((format!("days_employed_{m}m"), Values::Numbers(worked)));
    }
    (cols, names)
}

/// Applies the exposure's exclusions and the cohort's filters, fits the profiles, counts.
#[allow(clippy::too_many_arguments)]
fn finish(
    table: Table,
    spec: &ValidAnalysis,
    source: String,
    mut steps: Vec<(String, Vec<u64>)>,
    unit_keys: Vec<u64>,
    source_rows: Vec<usize>,
    exclude: Vec<Option<String>>,
    observed_until: Option<String>,
    outcomes: Vec<String>,
    notes: Vec<String>,
) -> Result<AnalysisTable> {
    let s = &spec.spec;
    let n = table.len();
    let mut keep = vec![true; n];
    let unit = |r: usize| source_rows[r] as u64;
    let mut leave_out = |keep: &mut Vec<bool>, reason: String, out: &dyn Fn(usize) -> bool| {
        let units: Vec<u64> = (0..n).filter(|&r| keep[r] && out(r)).map(unit).collect();
        for (r, k) in keep.iter_mut().enumerate() {
            *k = *k && !out(r);
        }
        steps.push((reason, units));
    };
    for (col, values) in &s.cohort.filters {
        let (levels, codes) = table
            .categories(col)
            .map_err(|e| unknown_column(&table, col, e))?;
        leave_out(
            &mut keep,
            format!("{col} not in {}", values.join(", ")),
            &|r| !codes[r].is_some_and(|c| values.iter().any(|v| *v == levels[c as usize])),
        );
    }
    for (col, [lo, hi]) in &s.cohort.range {
        let v = table
            .numeric(col)
            .map_err(|e| unknown_column(&table, col, e))?;
        leave_out(&mut keep, format!("{col} outside {lo}–{hi}"), &|r| {
            !(v[r] >= *lo && v[r] <= *hi)
        });
    }
    let mut reasons: Vec<String> = exclude.iter().flatten().cloned().collect();
    reasons.sort();
    reasons.dedup();
    for reason in reasons {
        leave_out(&mut keep, reason.clone(), &|r| {
            exclude[r].as_deref() == Some(reason.as_str())
        });
    }
    if !keep.contains(&true) {
        return Err(Error::Param {
            name: "cohort",
            reason: format!("the cohort is empty: no person of {source} meets every condition"),
        });
    }
    let mut table = table.filter(&keep);
    let source_rows: Vec<usize> = (0..n)
        .filter(|&r| keep[r])
        .map(|r| source_rows[r])
        .collect();
    steps.push((
        "rows".into(),
        source_rows.iter().map(|&r| r as u64).collect(),
    ));
    let row_keys: Vec<u64> = source_rows.iter().map(|&r| unit_keys[r]).collect();
    // Source rows become the units the store's other publications count (sorted keys),
    // so that the ledger's audit sees a study's counts and the reports' as one system.
    for (_, units) in steps.iter_mut() {
        for u in units.iter_mut() {
            *u = unit_keys[*u as usize];
        }
        units.sort_unstable();
        units.dedup();
    }
    if let Some(p) = &spec.profiles {
        let report = cluster_table(&table, p)?;
        let labels: Vec<Option<String>> = report
            .labels
            .iter()
            .map(|l| l.map(|k| (k + 1).to_string()))
            .collect();
        table = table.with_text_column("profile_class", labels)?;
    }
    Ok(AnalysisTable {
        table,
        counts: AnalysisCounts {
            source,
            steps,
            observed_until,
            outcomes,
            notes,
        },
        source_rows,
        unit_keys: row_keys,
    })
}

fn unknown_column(table: &Table, col: &str, e: Error) -> Error {
    if table.headers().iter().any(|h| h == col) {
        return e;
    }
    Error::Param {
        name: "cohort",
        reason: format!(
            "no column '{col}' in the analysis table; its columns are: {}",
            table.headers().join(", ")
        ),
    }
}

/// An analysis table from a table read as it is (a file of a release): the cohort's
/// `where` and `range` filters only.
pub fn from_table(table: Table, spec: &ValidAnalysis, source: &str) -> Result<AnalysisTable> {
    let n = table.len();
    finish(
        table,
        spec,
        source.to_string(),
        vec![("persons".into(), (0..n as u64).collect())],
        (0..n as u64).collect(),
        (0..n).collect(),
        vec![None; n],
        None,
        Vec::new(),
        Vec::new(),
    )
}

/// Builds the analysis table of a research release (`persons.csv` of `occupa anonymise`):
/// its person variables as released, an exposure from its `aN_Dd` flags (a service started
/// within 30, 90 or 180 days), the cohort's filters on its columns. The release's outcomes
/// (`employed_6m`, `employed_12m`) are empty for persons not observed long enough.
pub fn from_release(dir: &Path, spec: &ValidAnalysis) -> Result<AnalysisTable> {
    let s = &spec.spec;
    if s.risk.is_some() {
        return Err(Error::Param {
            name: "risk",
            reason: "a release carries no scoring rule: the risk columns come from a store's \
                     rules (fit them on the release as a study instead)"
                .into(),
        });
    }
    if s.outcomes.reference != Reference::Intake
        || s.outcomes.months.iter().any(|m| ![6, 12].contains(m))
    {
        return Err(Error::Param {
            name: "outcomes",
            reason: "a release carries employment at 6 and 12 months after taking charge: \
                     give months = [6, 12] or a subset, from the intake"
                .into(),
        });
    }
    let table = Table::read_all(&dir.join("persons.csv"))?;
    let n = table.len();
    // Named by the folder only: the same release read from elsewhere gives the same bytes.
    let source = format!(
        "the release {}",
        dir.file_name().map_or_else(
            || dir.display().to_string(),
            |d| d.to_string_lossy().into_owned()
        )
    );
    let mut steps: Vec<(String, Vec<u64>)> = vec![("persons".into(), (0..n as u64).collect())];
    // The window first, as on a store.
    let mut in_window = vec![true; n];
    if spec.from.is_some() || spec.to.is_some() {
        let (levels, codes) = table.categories("intake_date")?;
        let day: Vec<Option<i32>> = levels
            .iter()
            .map(|l| NaiveDate::parse_from_str(l, "%Y-%m-%d").ok().map(days))
            .collect();
        if day.iter().any(Option::is_none) {
            return Err(Error::Param {
                name: "cohort.intake_from",
                reason: "the release generalises intake dates (months, years or *): it \
                         cannot select a window of days; filter on the released values with \
                         [cohort.where] intake_date = [...] instead"
                    .into(),
            });
        }
        for (r, w) in in_window.iter_mut().enumerate() {
            *w = codes[r].and_then(|c| day[c as usize]).is_some_and(|d| {
                spec.from.is_none_or(|f| d >= f) && spec.to.is_none_or(|t| d <= t)
            });
        }
    }
    steps.push((
        "taken in charge outside the window".into(),
        (0..n)
            .filter(|&r| !in_window[r])
            .map(|r| r as u64)
            .collect(),
    ));
    let source_rows: Vec<usize> = (0..n).filter(|&r| in_window[r]).collect();
    let n_source = n;
    let mut table = table.filter(&in_window);
    let n = table.len();
    let mut exclude: Vec<Option<String>> = vec![None; n];
    if let Some(e) = &s.exposure {
        let flag_of = |code: &str| -> Result<&[f64]> {
            let name = format!("{}_{}d", code.to_lowercase().replace('.', ""), spec.within);
            table.numeric(&name).map_err(|_| Error::Param {
                name: "exposure",
                reason: format!(
                    "the release has no column {name}: it flags services started within 30, \
                     90 or 180 days (a4_90d, a5_30d…), if its policy kept them"
                ),
            })
        };
        let x: Vec<f64> = if let Some(code) = &e.service {
            let flag = flag_of(code)?.to_vec();
            if e.later == Later::Exclude {
                let first = format!("first_{}", code.to_lowercase().replace('.', ""));
                if let Ok((levels, codes)) = table.categories(&first) {
                    for r in 0..n {
                        let never = codes[r].is_some_and(|c| levels[c as usize] == "never");
                        if flag[r] != 1.0 && !never {
                            exclude[r] = Some(format!(
                                "started {code} after {} days, or when is not released",
                                spec.within
                            ));
                        }
                    }
                }
            }
            for other in &e.exclude_services {
                let f = flag_of(other)?;
                for r in 0..n {
                    if exclude[r].is_none() && f[r] == 1.0 {
                        exclude[r] = Some(format!("started {other} within {} days", spec.within));
                    }
                }
            }
            flag
        } else {
            let paths = e.gol_path.clone().unwrap_or_default();
            let p = table.numeric("gol_path")?.to_vec();
            for r in 0..n {
                if p[r].is_nan() {
                    exclude[r] = Some("no GOL path released".into());
                }
            }
            p.iter()
                .map(|&v| {
                    if v.is_nan() {
                        f64::NAN
                    } else {
                        f64::from(u8::from(paths.iter().any(|&q| f64::from(q) == v)))
                    }
                })
                .collect()
        };
        table = table.with_numeric_column(&e.name, x)?;
    }
    let outcomes: Vec<String> = ["employed_6m", "employed_12m"]
        .iter()
        .filter(|c| table.headers().iter().any(|h| h == *c))
        .map(|c| c.to_string())
        .collect();
    finish(
        table,
        spec,
        source,
        steps,
        (0..n_source as u64).collect(),
        source_rows,
        exclude,
        None,
        outcomes,
        Vec::new(),
    )
}

/// The long series table a forecast reads: per month, sector (ATECO section) and province
/// of the workplace (with its region), the hires (contract starts) and the vacancies
/// (positions requested) recorded in one tenant's store.
pub fn series_table(scope: &TenantScope) -> Result<Table> {
    let territory = Territory::get();
    // (month, sector, province) → (hires, vacancies)
    let mut cells: BTreeMap<(String, String, String), (f64, f64)> = BTreeMap::new();
    let mut add = |df: &DataFrame, date: &str, count: Option<&str>, hires: bool| -> Result<()> {
        let d = day_col(df, date)?;
        let sector = text_col(df, "sector")?;
        let municipality = text_col(df, "municipality")?;
        let k = match count {
            Some(c) => num_col(df, c)?,
            None => vec![1.0; df.height()],
        };
        for i in 0..df.height() {
            let (Some(d), Some(sec), Some(m)) = (d[i], &sector[i], &municipality[i]) else {
                continue;
            };
            let Some(p) = territory.province_of(m) else {
                continue;
            };
            let section = crate::schema::ateco_section_of(sec)
                .unwrap_or(sec.as_str())
                .to_string();
            let e = cells
                .entry((
                    date_of(d).format("%Y-%m").to_string(),
                    section,
                    p.code.clone(),
                ))
                .or_insert((0.0, 0.0));
            let v = if k[i].is_nan() { 0.0 } else { k[i] };
            if hires {
                e.0 += v;
            } else {
                e.1 += v;
            }
        }
        Ok(())
    };
    add(
        &scope.read(StoreTable::Employment)?,
        "start_date",
        None,
        true,
    )?;
    add(
        &scope.read(StoreTable::Vacancies)?,
        "date",
        Some("count"),
        false,
    )?;
    if cells.is_empty() {
        return Err(Error::Param {
            name: "data",
            reason: format!(
                "the store of {} holds no contracts or vacancies with a date, sector and \
                 municipality: ingest the employment and vacancies files",
                scope.tenant()
            ),
        });
    }
    // Every month of the span for every series, so that a month without hires is a zero,
    // not a gap to interpolate.
    let months: Vec<String> = {
        let first = cells.keys().map(|k| k.0.clone()).min().unwrap_or_default();
        let last = cells.keys().map(|k| k.0.clone()).max().unwrap_or_default();
        let mut v = Vec::new();
        let mut d = NaiveDate::parse_from_str(&format!("{first}-01"), "%Y-%m-%d").map_err(|e| {
            Error::Param {
                name: "month",
                reason: e.to_string(),
            }
        })?;
        while d.format("%Y-%m").to_string() <= last {
            v.push(d.format("%Y-%m").to_string());
            d = d.checked_add_months(Months::new(1)).unwrap_or(d);
            if v.len() > 2400 {
                break;
            }
        }
        v
    };
    let series: std::collections::BTreeSet<(String, String)> =
        cells.keys().map(|k| (k.1.clone(), k.2.clone())).collect();
    let (mut mo, mut se, mut pr, mut re, mut hi, mut va) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (sector, province) in &series {
        let p = territory.province(province);
        let pname = p.map_or(province.clone(), |p| p.name.clone());
        let rname = p
            .and_then(|p| territory.region(&p.region_code))
            .map_or(String::new(), |r| r.name.clone());
        for m in &months {
            let (h, v) = cells
                .get(&(m.clone(), sector.clone(), province.clone()))
                .copied()
                .unwrap_or((0.0, 0.0));
            mo.push(Some(m.clone()));
            se.push(Some(sector.clone()));
            pr.push(Some(pname.clone()));
            re.push(Some(rname.clone()));
            hi.push(h);
            va.push(v);
        }
    }
    Table::from_values(
        &format!("the hires and vacancies of {}", scope.tenant()),
        vec![
            ("month".into(), Values::Texts(mo)),
            ("sector".into(), Values::Texts(se)),
            ("province".into(), Values::Texts(pr)),
            ("region".into(), Values::Texts(re)),
            ("hires".into(), Values::Numbers(hi)),
            ("vacancies".into(), Values::Numbers(va)),
        ],
    )
}
