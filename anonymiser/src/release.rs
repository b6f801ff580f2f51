//! `occupa anonymise`: a research release of the pooled store.
//!
//! The unit is the person (one pseudonym, whatever the authorities that hold them; the
//! latest intake's record when several do). What an attacker could know about a person
//! is their quasi-identifiers *and* the dates of their questionnaires, assessments,
//! services and contracts, which the release links to them. So the dates of a person's
//! joined records form one more quasi-identifier, the person's **profile** (the sorted
//! list of `table:start/end` dates), with its own hierarchy: months → quarters → years
//! → only the number of records per table (which linkage always shows). The search
//! generalises it together with the person's quasi-identifiers, and the joined tables'
//! dates are released at the level it chooses, so k-anonymity and l-diversity hold for
//! the person and what is joined to them at once. Suppressed persons are left out with
//! all their records.
//!
//! Every person gets a random id drawn for this release (no pseudonym survives, and two
//! releases cannot be linked through their ids); employer pseudonyms, operators, row keys
//! and the authority are not released. Nothing is written unless the release meets the
//! risk policy.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use occupa_engine::schema::Table;
use occupa_engine::store::Store;
use polars::prelude::{DataFrame, DataType};
use serde::{Deserialize, Serialize};

use crate::builtin::Builtin;
use crate::csvtable::io;
use crate::hierarchy::Hierarchy;
use crate::metric::{GsFactor, Metric};
use crate::microdata::Microdata;
use crate::privacy::{LDiversity, PrivacyModel};
use crate::risk::{RiskPolicy, RiskProfile};
use crate::search::Anonymisation;
use crate::{Error, Result};

/// The release policy (a TOML file).
///
/// ```toml
/// k = 5
/// l = 2
/// sensitive = "income_support"
/// max_suppression = 0.05
/// metric = "loss"
///
/// [quasi_identifiers]
/// birth_year = "ordinal:1900-2030:5,10,20"
/// sex = "flat"
/// citizenship = "citizenship"
/// municipality = "municipality"
/// education = "ordinal:0-8:3,9"
/// intake_date = "date"
/// exit_date = "date"
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Smallest class of persons.
    pub k: usize,
    /// Distinct l-diversity of `sensitive`.
    #[serde(default)]
    pub l: Option<usize>,
    /// A person column whose value must vary within each class.
    #[serde(default)]
    pub sensitive: Option<String>,
    /// Largest fraction of persons that may be left out.
    #[serde(default)]
    pub max_suppression: f64,
    /// Utility metric (ARX's names).
    #[serde(default = "default_metric")]
    pub metric: String,
    /// ARX's generalisation/suppression factor.
    #[serde(default = "default_gs")]
    pub gs_factor: f64,
    /// Highest prosecutor risk allowed (default 1/k).
    #[serde(default)]
    pub max_risk: Option<f64>,
    /// Person columns to generalise, with their built-in hierarchy.
    pub quasi_identifiers: BTreeMap<String, String>,
    /// Further columns to leave out, as `table.column` or `column` (every table).
    #[serde(default)]
    pub drop: Vec<String>,
}

fn default_metric() -> String {
    "loss".into()
}

fn default_gs() -> f64 {
    0.5
}

/// Columns never released: identifiers, staff and store internals.
const NEVER: [&str; 4] = ["employer_id", "operator", "row_key", "person_id"];

/// The joined tables and their date columns, in the order of the profile.
const JOINED: [(Table, &[&str]); 5] = [
    (Table::Asso, &["date"]),
    (Table::Isa, &["date"]),
    (Table::Gol, &["date"]),
    (Table::Services, &["start_date", "end_date"]),
    (Table::Employment, &["start_date", "end_date"]),
];

/// Date levels of the profile hierarchy.
const PROFILE_LEVELS: [&str; 4] = ["month", "quarter", "year", "hidden"];

impl Policy {
    /// Reads and checks a policy file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        let p: Policy =
            toml::from_str(&text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        p.spec()?;
        for kind in p.quasi_identifiers.values() {
            kind.parse::<Builtin>()?;
        }
        Ok(p)
    }

    /// The search this policy asks for.
    pub fn spec(&self) -> Result<Anonymisation> {
        let mut privacy = PrivacyModel::k_anonymity(self.k)?;
        if let Some(l) = self.l {
            if self.sensitive.is_none() {
                return Err(Error::Param {
                    name: "l",
                    reason: "l-diversity needs `sensitive = \"column\"`".into(),
                });
            }
            privacy = privacy.with_l_diversity(LDiversity::Distinct { l })?;
        }
        Ok(Anonymisation::new(privacy)
            .max_suppression(self.max_suppression)?
            .metric(self.metric.parse::<Metric>()?)
            .gs_factor(GsFactor::new(self.gs_factor)?))
    }

    fn dropped(&self, table: Table, column: &str) -> bool {
        NEVER.contains(&column)
            || self
                .drop
                .iter()
                .any(|d| d == column || *d == format!("{}.{column}", table.name()))
    }
}

/// A table as text: column names and rows (empty string for a missing value).
struct TextTable {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    fn from_frame(df: &DataFrame) -> Result<Self> {
        let columns: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut rows = vec![Vec::with_capacity(columns.len()); df.height()];
        for c in df.get_columns() {
            let s = c
                .cast(&DataType::String)
                .map_err(|e| Error::Input(format!("column {}: {e}", c.name())))?;
            let s = s
                .str()
                .map_err(|e| Error::Input(format!("column {}: {e}", c.name())))?;
            for (row, v) in rows.iter_mut().zip(s) {
                row.push(v.unwrap_or("").to_string());
            }
        }
        Ok(TextTable { columns, rows })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A joined table's columns and rows, each row with its person.
struct Joined {
    cols: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

/// What a release did, as its `risk-report.json` says.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    /// Random id of this release.
    pub release_id: String,
    /// Persons in the store (distinct pseudonyms).
    pub persons: u64,
    /// Persons released.
    pub released_persons: u64,
    /// Persons left out (suppressed), with all their records.
    pub suppressed_persons: u64,
    /// Rows released per table.
    pub rows: BTreeMap<String, u64>,
    /// Level per quasi-identifier (the profile last).
    pub levels: BTreeMap<String, String>,
    /// Date level of the joined tables.
    pub joined_dates: String,
    /// The optimised metric and its loss.
    pub metric: Metric,
    /// Loss at the chosen node.
    pub information_loss: f64,
    /// Every metric's loss at the node.
    pub utility: BTreeMap<String, f64>,
    /// Risk of the persons with their profiles, before and after.
    pub risk_before: RiskProfile,
    /// See `risk_before`.
    pub risk_after: RiskProfile,
    /// The policy applied.
    pub policy: Policy,
}

/// Builds a release of the whole store into `out` (a new folder).
pub fn research_release(store: &Store, policy: &Policy, out: &Path) -> Result<ReleaseReport> {
    if out.exists()
        && out
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Input(format!(
            "{} exists and is not empty; name a new folder for the release",
            out.display()
        )));
    }
    let spec = policy.spec()?;
    let err = |e: occupa_engine::Error| Error::Input(e.to_string());
    let tenants = store.tenants().map_err(err)?;
    let read = |table: Table| -> Result<Vec<TextTable>> {
        tenants
            .iter()
            .map(|t| {
                let df = store.scope(t).read(table).map_err(err)?;
                TextTable::from_frame(&df)
            })
            .collect()
    };

    // Persons: one record per pseudonym, the latest intake's.
    let mut person_of: HashMap<String, usize> = HashMap::new();
    let mut persons: Vec<Vec<String>> = Vec::new();
    let mut person_cols: Vec<String> = Vec::new();
    for t in read(Table::Persons)? {
        if t.rows.is_empty() {
            continue;
        }
        if person_cols.is_empty() {
            person_cols = t.columns.clone();
        }
        let (Some(id), Some(intake)) = (t.col("person_id"), t.col("intake_date")) else {
            return Err(Error::Input(
                "the persons table lacks person_id or intake_date".into(),
            ));
        };
        let order: Vec<usize> = person_cols
            .iter()
            .map(|c| {
                t.col(c)
                    .ok_or_else(|| Error::Input(format!("persons: tenants differ in column {c}")))
            })
            .collect::<Result<_>>()?;
        let kept_intake = person_cols
            .iter()
            .position(|c| c == "intake_date")
            .unwrap_or(0);
        for r in &t.rows {
            let row: Vec<String> = order.iter().map(|&i| r[i].clone()).collect();
            match person_of.get(&r[id]) {
                Some(&p) if persons[p][kept_intake] >= r[intake] => {}
                Some(&p) => persons[p] = row,
                None => {
                    person_of.insert(r[id].clone(), persons.len());
                    persons.push(row);
                }
            }
        }
    }
    if persons.is_empty() {
        return Err(Error::Input(
            "the store holds no persons; ingest data first".into(),
        ));
    }
    let pcol = |name: &str| person_cols.iter().position(|c| c == name);
    let qi: Vec<(String, usize, Builtin)> = policy
        .quasi_identifiers
        .iter()
        .map(|(c, kind)| {
            let i = pcol(c).ok_or_else(|| {
                Error::Input(format!(
                    "policy: quasi-identifier {c:?} is not a persons column ({})",
                    person_cols.join(", ")
                ))
            })?;
            Ok((c.clone(), i, kind.parse::<Builtin>()?))
        })
        .collect::<Result<_>>()?;
    let sensitive = match &policy.sensitive {
        Some(s) => Some(pcol(s).ok_or_else(|| {
            Error::Input(format!(
                "policy: sensitive column {s:?} is not a persons column"
            ))
        })?),
        None => None,
    };
    // A person date that is not generalised would be released exact.
    for c in ["intake_date", "exit_date"] {
        if pcol(c).is_some()
            && !policy.quasi_identifiers.contains_key(c)
            && !policy.dropped(Table::Persons, c)
        {
            return Err(Error::Input(format!(
                "policy: {c} is a date; list it under [quasi_identifiers] (e.g. {c} = \"date\") \
                 or in drop"
            )));
        }
    }

    // Joined records per person, and the profile of their dates.
    let mut joined: Vec<Joined> = Vec::new();
    let mut profile: Vec<Vec<(String, Vec<String>)>> = vec![Vec::new(); persons.len()];
    for (table, dates) in JOINED {
        let mut cols: Vec<String> = Vec::new();
        let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
        for t in read(table)? {
            if t.rows.is_empty() {
                continue;
            }
            if cols.is_empty() {
                cols = t.columns.clone();
            }
            let id = t
                .col("person_id")
                .ok_or_else(|| Error::Input(format!("{}: no person_id", table.name())))?;
            let order: Vec<usize> = cols
                .iter()
                .map(|c| {
                    t.col(c).ok_or_else(|| {
                        Error::Input(format!("{}: tenants differ in column {c}", table.name()))
                    })
                })
                .collect::<Result<_>>()?;
            let date_cols: Vec<usize> = dates.iter().filter_map(|d| t.col(d)).collect();
            for r in &t.rows {
                // Employer services have no person; they are not part of this release.
                let Some(&p) = person_of.get(&r[id]) else {
                    continue;
                };
                profile[p].push((
                    table.name().to_string(),
                    date_cols.iter().map(|&i| r[i].clone()).collect(),
                ));
                rows.push((p, order.iter().map(|&i| r[i].clone()).collect()));
            }
        }
        joined.push(Joined { cols, rows });
    }
    // Exactly what the joined files will show at each level (an ongoing service's empty
    // end date stays empty even when the others become `*`), or classes could split.
    let profile_at = |p: usize, level: usize| -> String {
        let mut items: Vec<String> = profile[p]
            .iter()
            .map(|(t, ds)| {
                let ds: Vec<String> = ds.iter().map(|d| date_at(d, level)).collect();
                format!("{t}:{}", ds.join("/"))
            })
            .collect();
        items.sort();
        items.join(";")
    };

    // The person microdata: quasi-identifiers, the profile, the sensitive value.
    let rows: Vec<Vec<String>> = (0..persons.len())
        .map(|p| {
            let mut r: Vec<String> = qi.iter().map(|(_, i, _)| persons[p][*i].clone()).collect();
            r.push(profile_at(p, 0));
            if let Some(s) = sensitive {
                r.push(persons[p][s].clone());
            }
            r
        })
        .collect();
    let mut hierarchies: Vec<Hierarchy> = qi
        .iter()
        .enumerate()
        .map(|(j, (c, _, b))| {
            let mut values: Vec<&str> = rows.iter().map(|r| r[j].as_str()).collect();
            values.sort_unstable();
            values.dedup();
            b.build(c, &values)
        })
        .collect::<Result<_>>()?;
    let mut profile_rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in 0..persons.len() {
        profile_rows
            .entry(profile_at(p, 0))
            .or_insert_with(|| (0..4).map(|l| profile_at(p, l)).collect());
    }
    hierarchies.push(Hierarchy::from_rows(
        "profile",
        profile_rows.into_values().collect(),
    )?);
    let d = hierarchies.len();
    let data = Microdata::new(hierarchies, policy.sensitive.as_deref(), &rows, 1)?;
    let fit = spec.fit(&data)?;
    let node = fit.node().to_vec();
    let date_level = node[d - 1] as usize;

    // Risk on the released strings (persons with their profiles).
    let mut policy_risk = RiskPolicy::for_k(policy.k);
    if let Some(r) = policy.max_risk {
        policy_risk.max_highest = r;
        policy_risk.max_average = policy_risk.max_average.min(r);
    }
    policy_risk.validate()?;
    let mut before: HashMap<&[String], u64> = HashMap::new();
    let mut after: HashMap<Vec<&str>, u64> = HashMap::new();
    for (p, r) in rows.iter().enumerate() {
        *before.entry(&r[..d]).or_default() += 1;
        if let Some(v) = fit.row(&data, p) {
            *after.entry(v).or_default() += 1;
        }
    }
    let threshold = policy_risk.threshold;
    let risk_before = RiskProfile::from_class_sizes(before.values().copied(), threshold);
    let risk_after = RiskProfile::from_class_sizes(after.values().copied(), threshold);
    policy_risk.check(&risk_after).map_err(Error::Policy)?;

    // Random ids, drawn for this release.
    let mut ids: Vec<Option<String>> = vec![None; persons.len()];
    let mut used = std::collections::HashSet::new();
    for (p, id) in ids.iter_mut().enumerate() {
        if fit.is_suppressed(&data, p) {
            continue;
        }
        loop {
            let candidate = random_hex()?;
            if used.insert(candidate.clone()) {
                *id = Some(candidate);
                break;
            }
        }
    }
    let release_id = random_hex()?;

    // Files, staged in a sibling folder and renamed into place.
    let staging = out.with_file_name(format!(
        ".{}.staging",
        out.file_name()
            .map_or("release".into(), |n| n.to_string_lossy())
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
    let mut dictionary = String::from(
        "# Data dictionary of the release\n\nEvery person has a random id drawn for this \
         release (`id`), the same in every file; it cannot be linked to the store or to \
         other releases.\n",
    );
    let mut counts = BTreeMap::new();

    // persons.csv
    let qi_pos: HashMap<usize, usize> = qi
        .iter()
        .enumerate()
        .map(|(j, (_, i, _))| (*i, j))
        .collect();
    let kept: Vec<usize> = (0..person_cols.len())
        .filter(|&i| qi_pos.contains_key(&i) || !policy.dropped(Table::Persons, &person_cols[i]))
        .collect();
    let mut w = csv::Writer::from_path(staging.join("persons.csv")).map_err(|e| io(&staging, e))?;
    let mut header = vec!["id".to_string()];
    header.extend(kept.iter().map(|&i| person_cols[i].clone()));
    w.write_record(&header).map_err(|e| io(&staging, e))?;
    dictionary.push_str(
        "\n## persons.csv\n\n| column | released as |\n|---|---|\n| `id` | random release id |\n",
    );
    for &i in &kept {
        let how = match qi_pos.get(&i) {
            Some(&j) => format!(
                "quasi-identifier, generalised to level {} of {} (`{}`)",
                node[j],
                data.hierarchies()[j].height() - 1,
                policy.quasi_identifiers[&person_cols[i]]
            ),
            None if Some(i) == sensitive => {
                "sensitive attribute, as recorded (l-diverse in every class)".into()
            }
            None => "as recorded".into(),
        };
        dictionary.push_str(&format!("| `{}` | {how} |\n", person_cols[i]));
    }
    let mut released_persons = 0u64;
    for p in 0..persons.len() {
        let Some(id) = &ids[p] else { continue };
        let generalised = fit.row(&data, p).unwrap_or_default();
        let mut rec = vec![id.as_str()];
        rec.extend(kept.iter().map(|&i| match qi_pos.get(&i) {
            Some(&j) => generalised.get(j).copied().unwrap_or("*"),
            None => persons[p][i].as_str(),
        }));
        w.write_record(&rec).map_err(|e| io(&staging, e))?;
        released_persons += 1;
    }
    w.flush().map_err(|e| io(&staging, e))?;
    counts.insert("persons".to_string(), released_persons);

    // The joined tables.
    for ((table, dates), Joined { cols, rows }) in JOINED.iter().zip(&joined) {
        let kept: Vec<usize> = (0..cols.len())
            .filter(|&i| !policy.dropped(*table, &cols[i]))
            .collect();
        let file = format!("{}.csv", table.name());
        let mut w = csv::Writer::from_path(staging.join(&file)).map_err(|e| io(&staging, e))?;
        let mut header = vec!["id".to_string()];
        header.extend(kept.iter().map(|&i| cols[i].clone()));
        w.write_record(&header).map_err(|e| io(&staging, e))?;
        dictionary.push_str(&format!(
            "\n## {file}\n\n| column | released as |\n|---|---|\n| `id` | the person's release id |\n"
        ));
        for &i in &kept {
            let how = if dates.contains(&cols[i].as_str()) {
                match date_level {
                    3 => "date, hidden (`*`; empty when there is none)".to_string(),
                    l => format!("date, generalised to the {}", PROFILE_LEVELS[l]),
                }
            } else {
                "as recorded".into()
            };
            dictionary.push_str(&format!("| `{}` | {how} |\n", cols[i]));
        }
        let mut n = 0u64;
        for (p, r) in rows {
            let Some(id) = &ids[*p] else { continue };
            let mut rec = vec![id.clone()];
            rec.extend(kept.iter().map(|&i| {
                if dates.contains(&cols[i].as_str()) {
                    date_at(&r[i], date_level)
                } else {
                    r[i].clone()
                }
            }));
            w.write_record(&rec).map_err(|e| io(&staging, e))?;
            n += 1;
        }
        w.flush().map_err(|e| io(&staging, e))?;
        counts.insert(table.name().to_string(), n);
    }
    dictionary.push_str(&format!(
        "\nNot released: the pseudonyms, employer ids, operators, row keys, the authority, \
         employer services (no person) and vacancies; persons left out by suppression ({}), \
         with all their records.\n",
        fit.suppressed_records()
    ));
    std::fs::write(staging.join("DICTIONARY.md"), dictionary).map_err(|e| io(&staging, e))?;

    let mut levels: BTreeMap<String, String> = qi
        .iter()
        .zip(&node)
        .map(|((c, _, _), l)| (c.clone(), l.to_string()))
        .collect();
    levels.insert("profile".into(), PROFILE_LEVELS[date_level].into());
    let report = ReleaseReport {
        release_id: release_id.clone(),
        persons: persons.len() as u64,
        released_persons,
        suppressed_persons: fit.suppressed_records(),
        rows: counts,
        levels,
        joined_dates: PROFILE_LEVELS[date_level].into(),
        metric: spec.chosen_metric(),
        information_loss: fit.loss(),
        utility: spec
            .utility(&data, &node)?
            .into_iter()
            .map(|(m, v)| (m.name().to_string(), v))
            .collect(),
        risk_before,
        risk_after,
        policy: policy.clone(),
    };
    let mut f =
        std::fs::File::create(staging.join("risk-report.json")).map_err(|e| io(&staging, e))?;
    serde_json::to_writer_pretty(&mut f, &report).map_err(|e| io(&staging, e))?;
    f.write_all(b"\n").map_err(|e| io(&staging, e))?;
    f.sync_all().map_err(|e| io(&staging, e))?;
    if out.exists() {
        std::fs::remove_dir(out).map_err(|e| io(out, e))?;
    }
    std::fs::rename(&staging, out).map_err(|e| io(out, e))?;
    store
        .audit(serde_json::json!({
            "event": "anonymise",
            "release_id": release_id,
            "out": out.display().to_string(),
            "persons_released": report.released_persons,
            "persons_suppressed": report.suppressed_persons,
            "k": policy.k,
            "l": policy.l,
        }))
        .map_err(err)?;
    Ok(report)
}

/// 128 random bits as hex, from the operating system.
fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Input(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A date (`YYYY-MM-DD`, or empty) at a profile level: month, quarter, year, or `*`.
fn date_at(d: &str, level: usize) -> String {
    if d.is_empty() {
        return String::new();
    }
    let (y, m) = (d.get(..4).unwrap_or(d), d.get(5..7).unwrap_or(""));
    match level {
        0 => format!("{y}-{m}"),
        1 => {
            let q = m.parse::<u32>().map_or(0, |m| m.div_ceil(3));
            format!("{y}Q{q}")
        }
        2 => y.to_string(),
        _ => "*".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_generalise_by_level() {
        assert_eq!(date_at("2026-05-17", 0), "2026-05");
        assert_eq!(date_at("2026-05-17", 1), "2026Q2");
        assert_eq!(date_at("2026-12-01", 1), "2026Q4");
        assert_eq!(date_at("2026-05-17", 2), "2026");
        assert_eq!(date_at("2026-05-17", 3), "*");
        assert_eq!(date_at("", 1), "");
    }

    #[test]
    fn the_shipped_policy_parses() {
        let p: Policy = toml::from_str(include_str!("../policies/research.toml")).unwrap();
        assert!(p.spec().is_ok() && p.quasi_identifiers.len() == 7);
        for kind in p.quasi_identifiers.values() {
            kind.parse::<Builtin>().unwrap();
        }
    }

    #[test]
    fn policy_is_checked() {
        let p: Policy =
            toml::from_str("k = 5\nl = 2\n[quasi_identifiers]\nsex = \"flat\"\n").unwrap();
        assert!(p.spec().unwrap_err().to_string().contains("sensitive"));
        assert!(toml::from_str::<Policy>("k = 5\nkk = 1\n[quasi_identifiers]\n").is_err());
    }
}
