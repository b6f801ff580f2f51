//! `occupa anonymise`: a research release of the pooled store.
//!
//! **The unit is the person with all their records.** The release holds one row per
//! person (`persons.csv`) with the variables studies need, computed from the store
//! *before* anonymisation ([`data`]: employment at 6 and 12 months, days employed in the
//! first year, time to the first contract and its type, when each service first started,
//! profile scores), and their jobs (`employment.csv`) and services (`services.csv`) with
//! dates as months relative to taking charge.
//!
//! **Every released column has a role**, set by the policy: a *quasi-identifier*,
//! generalised by a hierarchy (ages to bands, municipalities to provinces and regions,
//! ATECO codes to divisions and sections, occupations to groups, months to spans, contract
//! types to stable/fixed-term); a *sensitive attribute*, released as recorded and
//! l-diverse in every class; or it is not released. Free text (providers, programmes,
//! operators, funding) has no role and never leaves. Person ids are random, drawn per
//! release, and the rows of every file are shuffled, so two releases of the same store
//! cannot be lined up.
//!
//! **The attacker** knows a person's quasi-identifiers and up to `m` of their released
//! records, and looks for them in the release (the prosecutor model). The release is
//! k^m-anonymous and l-diverse for that attacker ([`kanon`]): every person is one of at
//! least `k` who share their attributes and any `m` of their records, with bounded
//! suppression of whole persons. The risk report states this model and measures the risk
//! under it, before and after, with the information loss of every column.
//!
//! Nothing is written unless the release meets the policy; the release is staged and
//! renamed into place, and its audit line is part of that commit.

pub mod data;
pub(crate) mod kanon;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use occupa_engine::store::Store;
use serde::{Deserialize, Serialize};

use crate::builtin::Builtin;
use crate::csvtable::io;
use crate::{Error, Result};
use data::{RECORD_TABLES, ReleaseData};
use kanon::{Dim, Owner, Problem};

/// The release policy (a TOML file; see `anonymiser/policies/research.toml`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Smallest class of persons.
    pub k: usize,
    /// Records an attacker may know besides the person's attributes (0–3).
    #[serde(default = "one")]
    pub m: usize,
    /// Distinct values of each sensitive attribute in every class.
    #[serde(default)]
    pub l: Option<usize>,
    /// Largest share of persons that may be left out, with all their records.
    #[serde(default)]
    pub max_suppression: f64,
    /// Highest prosecutor risk allowed (default 1/k).
    #[serde(default)]
    pub max_risk: Option<f64>,
    /// The last day the data cover (default: the last date in the store).
    #[serde(default)]
    pub observed_until: Option<String>,
    /// Person columns released as recorded and l-diverse; `prefix*` takes every column
    /// with that prefix (`asso_*`).
    #[serde(default)]
    pub sensitive: Vec<String>,
    /// Person columns to generalise, with their hierarchy (see [`crate::builtin`]).
    pub quasi_identifiers: BTreeMap<String, String>,
    /// Record tables to release: column → hierarchy, per table (`employment`, `services`).
    #[serde(default)]
    pub records: BTreeMap<String, BTreeMap<String, String>>,
    /// How much each column's detail matters to the studies (default 1): the search
    /// gives up detail where it weighs least.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

fn one() -> usize {
    1
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        let p: Policy =
            toml::from_str(&text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        p.check()?;
        Ok(p)
    }

    /// Checks what can be checked without the data.
    pub fn check(&self) -> Result<()> {
        let bad = |name: &'static str, reason: String| Err(Error::Param { name, reason });
        if self.k < 2 {
            return bad(
                "k",
                format!("{}: a class must hold at least 2 persons", self.k),
            );
        }
        if self.m > 3 {
            return bad(
                "m",
                format!("{}: up to 3 known records are supported", self.m),
            );
        }
        if self.l.is_some_and(|l| l < 2) {
            return bad("l", "l-diversity needs l ≥ 2".into());
        }
        if self.l.is_some() && self.sensitive.is_empty() {
            return bad("l", "l-diversity needs sensitive = [\"column\", …]".into());
        }
        if !(0.0..1.0).contains(&self.max_suppression) {
            return bad(
                "max_suppression",
                format!("{} is outside [0, 1)", self.max_suppression),
            );
        }
        for kind in self
            .quasi_identifiers
            .values()
            .chain(self.records.values().flat_map(|t| t.values()))
        {
            kind.parse::<Builtin>()?;
        }
        for t in self.records.keys() {
            if !RECORD_TABLES.contains(&t.as_str()) {
                return bad(
                    "records",
                    format!(
                        "{t:?}: the tables with records are {}",
                        RECORD_TABLES.join(", ")
                    ),
                );
            }
        }
        if let Some(d) = &self.observed_until {
            occupa_engine::value::parse_date(d).map_err(|e| Error::Param {
                name: "observed_until",
                reason: e,
            })?;
        }
        Ok(())
    }

    /// The sensitive columns the policy names, with notes on the families (`gol_*`) the
    /// data has none of: a general policy may name scores of an instrument this store
    /// never recorded, which is not an error; a plain name that matches nothing is (a typo).
    fn expand_sensitive(&self, columns: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        for s in &self.sensitive {
            let matched: Vec<&String> = match s.strip_suffix('*') {
                Some(prefix) => columns.iter().filter(|c| c.starts_with(prefix)).collect(),
                None => columns.iter().filter(|c| *c == s).collect(),
            };
            if matched.is_empty() && s.ends_with('*') {
                notes.push(format!(
                    "policy: no column matches the sensitive family {s:?} (the store has no \
                     such scores); nothing of it is released"
                ));
                continue;
            }
            if matched.is_empty() {
                return Err(Error::Input(format!(
                    "policy: sensitive column {s:?} is not a person column ({})",
                    columns.join(", ")
                )));
            }
            for c in matched {
                if self.quasi_identifiers.contains_key(c) {
                    return Err(Error::Input(format!(
                        "policy: {c} is both a quasi-identifier and sensitive; give it one role"
                    )));
                }
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        Ok((out, notes))
    }
}

/// The risk of the persons of a release under the attacker model.
#[derive(Debug, Clone, Serialize)]
pub struct PersonRisk {
    /// Persons considered.
    pub persons: u64,
    /// Highest prosecutor risk: 1 / the smallest class any person is in.
    pub highest: f64,
    /// Average over persons of their highest risk.
    pub average: f64,
    /// Persons whose risk is above the threshold.
    pub persons_above_threshold: u64,
    /// Persons alone in some class.
    pub unique: u64,
    /// The threshold (1/k).
    pub threshold: f64,
}

impl PersonRisk {
    fn from_smallest(smallest: &[u32], threshold: f64) -> Self {
        let sizes: Vec<u32> = smallest.iter().copied().filter(|&n| n > 0).collect();
        let n = sizes.len() as u64;
        let risk = |s: u32| 1.0 / s as f64;
        PersonRisk {
            persons: n,
            highest: sizes.iter().map(|&s| risk(s)).fold(0.0, f64::max),
            average: if n == 0 {
                0.0
            } else {
                sizes.iter().map(|&s| risk(s)).sum::<f64>() / n as f64
            },
            persons_above_threshold: sizes
                .iter()
                .filter(|&&s| risk(s) > threshold + 1e-12)
                .count() as u64,
            unique: sizes.iter().filter(|&&s| s == 1).count() as u64,
            threshold,
        }
    }
}

/// How one column was released.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnRelease {
    /// The file: `persons`, `employment` or `services`.
    pub file: String,
    /// The column.
    pub column: String,
    /// `quasi-identifier` or `sensitive`.
    pub role: String,
    /// The hierarchy (quasi-identifiers).
    pub hierarchy: Option<String>,
    /// Level released (0 = as recorded) and the hierarchy's top level.
    pub level: Option<(u8, u8)>,
    /// Its information loss (0 = as recorded, 1 = hidden).
    pub information_loss: Option<f64>,
}

/// What a release did, as its `risk-report.json` says.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseReport {
    /// Random id of this release.
    pub release_id: String,
    /// Who the release protects against, in words.
    pub attacker_model: String,
    /// k, m, l as applied.
    pub k: usize,
    /// Records known to the attacker.
    pub m: usize,
    /// l of every sensitive attribute.
    pub l: Option<usize>,
    /// Persons in the store (distinct pseudonyms).
    pub persons: u64,
    /// Persons released.
    pub released_persons: u64,
    /// Persons left out, with all their records.
    pub suppressed_persons: u64,
    /// Rows released per file.
    pub rows: BTreeMap<String, u64>,
    /// Records left out with their persons, per table.
    pub suppressed_records: BTreeMap<String, u64>,
    /// Every released column.
    pub columns: Vec<ColumnRelease>,
    /// The information loss over the quasi-identifiers (weighted mean, 0–1).
    pub information_loss: f64,
    /// Risk of the persons at the most detailed release (nothing generalised or left out).
    pub risk_before: PersonRisk,
    /// Risk of the released persons.
    pub risk_after: PersonRisk,
    /// The last day the data cover.
    pub observed_until: String,
    /// Persons whose outcome is unknown (taken in charge too recently), by variable.
    pub not_observed: BTreeMap<String, u64>,
    /// How the node was found.
    pub search: SearchReport,
    /// The policy applied.
    pub policy: Policy,
    /// What the policy named and the data does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The search's work.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// `greedy top-down specialisation` or `optimal lattice search`.
    pub method: String,
    /// Nodes evaluated.
    pub nodes_evaluated: usize,
    /// Seconds spent searching.
    pub seconds: f64,
}

/// Builds a release of the whole store into `out` (a new folder), reporting progress as
/// (nodes evaluated, current loss).
pub fn research_release(
    store: &Store,
    policy: &Policy,
    out: &Path,
    progress: &dyn Fn(usize, f64),
) -> Result<ReleaseReport> {
    policy.check()?;
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
    let until = match &policy.observed_until {
        Some(d) => Some(
            occupa_engine::value::parse_date(d).map_err(|e| Error::Param {
                name: "observed_until",
                reason: e,
            })?,
        ),
        None => None,
    };
    let data = data::from_store(store, until)?;
    let prepared = prepare(&data, policy)?;
    let t0 = Instant::now();
    let (node, eval, evaluated, method) = match optimal_persons_only(&data, &prepared, policy)? {
        Some((node, eval, n)) => (node, eval, n, "optimal lattice search (persons only)"),
        None => {
            let (node, eval, n) = prepared.problem.search(progress)?;
            let method = if prepared.problem.large() {
                "greedy top-down specialisation column by column, then trades and repairs \
                 (one start and fewer trades above 200,000 persons)"
            } else {
                "greedy top-down specialisation from two starts, then trades and repairs"
            };
            (node, eval, n, method)
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let problem = &prepared.problem;

    let threshold = 1.0 / policy.k as f64;
    let bottom = vec![0u8; problem.dims.len()];
    let risk_before = PersonRisk::from_smallest(
        &problem.smallest_class(&bottom, &vec![false; problem.persons]),
        threshold,
    );
    let smallest = problem.smallest_class(&node, &eval.suppressed);
    let risk_after = PersonRisk::from_smallest(&smallest, threshold);
    let max_risk = policy.max_risk.unwrap_or(threshold);
    if risk_after.highest > max_risk + 1e-12 {
        return Err(Error::Policy(format!(
            "the highest risk {:.3} exceeds {max_risk:.3}",
            risk_after.highest
        )));
    }

    let release_id = random_hex()?;
    let staging = out.with_file_name(format!(
        ".{}.staging",
        out.file_name()
            .map_or("release".into(), |n| n.to_string_lossy())
    ));
    let _ = std::fs::remove_dir_all(&staging);
    occupa_engine::store::private_dir_all(&staging).map_err(|e| Error::Input(e.to_string()))?;
    let written = write_files(&data, policy, &prepared, &node, &eval, &staging)?;
    let suppressed_records = prepared
        .tables
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let n = problem.record_person[t]
                .iter()
                .filter(|&&p| eval.suppressed[p as usize])
                .count() as u64;
            (name.clone(), n)
        })
        .collect();
    let mut columns: Vec<ColumnRelease> = problem
        .dims
        .iter()
        .enumerate()
        .map(|(d, dim)| ColumnRelease {
            file: match dim.owner {
                Owner::Person => "persons".into(),
                Owner::Table(t) => prepared.tables[t].clone(),
            },
            column: dim.name.clone(),
            role: "quasi-identifier".into(),
            hierarchy: Some(prepared.kinds[d].clone()),
            level: Some((node[d], (dim.height() - 1) as u8)),
            information_loss: Some(eval.dim_loss[d]),
        })
        .collect();
    columns.extend(prepared.sensitive.iter().map(|s| ColumnRelease {
        file: "persons".into(),
        column: s.clone(),
        role: "sensitive".into(),
        hierarchy: None,
        level: None,
        information_loss: None,
    }));
    let persons_released = (problem.persons - eval.n_suppressed) as u64;
    let report = ReleaseReport {
        release_id: release_id.clone(),
        attacker_model: format!(
            "prosecutor: the attacker knows that a person is in the release, knows their \
             quasi-identifiers ({}) and up to {} of their jobs or services as released, and \
             looks for them; they do not know questionnaire answers or scores. Every person is \
             one of at least {} sharing all of that{}. Knowledge that someone never had a job \
             or a service is outside the model.",
            problem
                .dims
                .iter()
                .filter(|d| d.owner == Owner::Person)
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            policy.m,
            policy.k,
            policy.l.map_or(String::new(), |l| format!(
                ", among whom each sensitive attribute takes at least {l} values"
            )),
        ),
        k: policy.k,
        m: policy.m,
        l: policy.l,
        persons: problem.persons as u64,
        released_persons: persons_released,
        suppressed_persons: eval.n_suppressed as u64,
        rows: written,
        suppressed_records,
        columns,
        information_loss: eval.loss,
        risk_before,
        risk_after,
        observed_until: data.observed_until.to_string(),
        not_observed: data.not_observed.clone(),
        search: SearchReport {
            method: method.into(),
            nodes_evaluated: evaluated,
            seconds,
        },
        policy: policy.clone(),
        notes: prepared.notes.clone(),
    };
    let mut f = occupa_engine::store::create_private(&staging.join("risk-report.json"))
        .map_err(|e| Error::Input(e.to_string()))?;
    serde_json::to_writer_pretty(&mut f, &report).map_err(|e| io(&staging, e))?;
    f.write_all(b"\n").map_err(|e| io(&staging, e))?;
    f.sync_all().map_err(|e| io(&staging, e))?;
    if out.exists() {
        std::fs::remove_dir(out).map_err(|e| io(out, e))?;
    }
    let intent = store
        .audit_intent(
            &format!("anonymise-{release_id}"),
            serde_json::json!({
                "command": "anonymise",
                "release_id": release_id,
                "out": out.display().to_string(),
                "persons_released": report.released_persons,
                "persons_suppressed": report.suppressed_persons,
                "k": policy.k,
                "m": policy.m,
                "l": policy.l,
            }),
            Some(out),
        )
        .map_err(|e| Error::Input(e.to_string()))?;
    std::fs::rename(&staging, out).map_err(|e| io(out, e))?;
    store
        .complete_audit(intent)
        .map_err(|e| Error::Input(e.to_string()))?;
    Ok(report)
}

/// The search problem built from the data and the policy.
pub(crate) struct Prepared {
    pub problem: Problem,
    /// Record tables in problem order.
    pub tables: Vec<String>,
    /// Hierarchy kind per dim.
    pub kinds: Vec<String>,
    /// Sensitive person columns, expanded.
    pub sensitive: Vec<String>,
    /// What the policy named and the data does not have.
    pub notes: Vec<String>,
}

pub(crate) fn prepare(data: &ReleaseData, policy: &Policy) -> Result<Prepared> {
    let mut dims = Vec::new();
    let mut kinds = Vec::new();
    let weight = |c: &str| policy.weights.get(c).copied().unwrap_or(1.0);
    for (c, kind) in &policy.quasi_identifiers {
        let i = data.person_column(c).ok_or_else(|| {
            Error::Input(format!(
                "policy: quasi-identifier {c:?} is not a person column ({})",
                data.person_columns.join(", ")
            ))
        })?;
        let values: Vec<&str> = data.persons.iter().map(|p| p.values[i].as_str()).collect();
        dims.push(build_dim(c, Owner::Person, kind, &values, weight(c))?);
        kinds.push(kind.clone());
    }
    let mut tables = Vec::new();
    let mut record_person = Vec::new();
    for (t, cols) in &policy.records {
        let set = data
            .records
            .get(t)
            .ok_or_else(|| Error::Input(format!("policy: no table {t:?} in the data")))?;
        let ti = tables.len();
        tables.push(t.clone());
        record_person.push(
            set.rows
                .iter()
                .map(|(p, _)| *p as u32)
                .collect::<Vec<u32>>(),
        );
        for (c, kind) in cols {
            let i = set.columns.iter().position(|x| x == c).ok_or_else(|| {
                Error::Input(format!(
                    "policy: {t}.{c} is not a column of the {t} records ({})",
                    set.columns.join(", ")
                ))
            })?;
            let values: Vec<&str> = set.rows.iter().map(|(_, v)| v[i].as_str()).collect();
            let key = format!("{t}.{c}");
            dims.push(build_dim(c, Owner::Table(ti), kind, &values, weight(&key))?);
            kinds.push(kind.clone());
        }
    }
    let (sensitive, notes) = policy.expand_sensitive(&data.person_columns)?;
    let sens_values: Vec<(String, Vec<&str>)> = sensitive
        .iter()
        .map(|s| {
            let i = data.person_column(s).unwrap_or(0);
            (
                s.clone(),
                data.persons.iter().map(|p| p.values[i].as_str()).collect(),
            )
        })
        .collect();
    let persons = data.persons.len();
    let budget = (policy.max_suppression * persons as f64).floor() as usize;
    let problem = Problem::new(
        persons,
        dims,
        record_person,
        sens_values,
        policy.k,
        if tables.is_empty() { 0 } else { policy.m },
        policy.l,
        budget,
    )?;
    Ok(Prepared {
        problem,
        tables,
        kinds,
        sensitive,
        notes,
    })
}

/// Where the existing optimal search applies (persons only, at most one sensitive
/// attribute, the plain loss metric, a lattice it can walk), its optimum; evaluated again
/// by the release's own model, which must agree.
fn optimal_persons_only(
    data: &ReleaseData,
    prep: &Prepared,
    policy: &Policy,
) -> Result<Option<(Vec<u8>, kanon::Eval, usize)>> {
    use crate::metric::Metric;
    use crate::microdata::Microdata;
    use crate::privacy::{LDiversity, PrivacyModel};
    use crate::search::Anonymisation;
    let problem = &prep.problem;
    let persons_only = problem.dims.iter().all(|d| d.owner == Owner::Person);
    let plain = problem.dims.iter().all(|d| d.weight == 1.0);
    let lattice: f64 = problem.dims.iter().map(|d| d.height() as f64).product();
    if !persons_only || !plain || prep.sensitive.len() > 1 || lattice > (1 << 22) as f64 {
        return Ok(None);
    }
    let mut privacy = PrivacyModel::k_anonymity(policy.k)?;
    if let (Some(l), Some(_)) = (policy.l, prep.sensitive.first()) {
        privacy = privacy.with_l_diversity(LDiversity::Distinct { l })?;
    }
    let sens = prep.sensitive.first().and_then(|s| data.person_column(s));
    let rows: Vec<Vec<&str>> = (0..problem.persons)
        .map(|p| {
            let mut r: Vec<&str> = problem.dims.iter().map(|d| d.label(p, 0)).collect();
            if let Some(i) = sens {
                r.push(data.persons[p].values[i].as_str());
            }
            r
        })
        .collect();
    let microdata = Microdata::new(
        problem.dims.iter().map(|d| d.hierarchy.clone()).collect(),
        prep.sensitive.first().map(String::as_str),
        &rows,
        1,
    )?;
    let fit = Anonymisation::new(privacy)
        .max_suppression(policy.max_suppression)?
        .metric(Metric::Loss)
        .fit(&microdata)?;
    let node = fit.node().to_vec();
    let eval = problem.evaluate(&node, true);
    if eval.n_suppressed > problem.budget {
        return Ok(None);
    }
    Ok(Some((node, eval, fit.stats().checked)))
}

fn build_dim(name: &str, owner: Owner, kind: &str, values: &[&str], weight: f64) -> Result<Dim> {
    let b: Builtin = kind.parse()?;
    let mut distinct: Vec<&str> = values.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let h = b.build(name, &distinct)?;
    Dim::new(name, owner, h, values, weight)
}

/// The flags a timing label determines: started within 30, 90, 180 days.
fn timing_flags(label: &str) -> [&'static str; 3] {
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "1",
        Some(false) => "0",
        None => "",
    };
    let (d30, d90, d180) = match label {
        "0-29" => (Some(true), Some(true), Some(true)),
        "30-89" => (Some(false), Some(true), Some(true)),
        "90-179" => (Some(false), Some(false), Some(true)),
        "180+" | "never" => (Some(false), Some(false), Some(false)),
        "0-89" => (None, Some(true), Some(true)),
        "90+" => (Some(false), Some(false), None),
        _ => (None, None, None),
    };
    [yes_no(d30), yes_no(d90), yes_no(d180)]
}

/// Writes the release's CSV files and DICTIONARY.md into `dir`; returns rows per file.
fn write_files(
    data: &ReleaseData,
    policy: &Policy,
    prep: &Prepared,
    node: &[u8],
    eval: &kanon::Eval,
    dir: &Path,
) -> Result<BTreeMap<String, u64>> {
    use occupa_engine::export::spreadsheet_safe;
    let problem = &prep.problem;
    let mut counts = BTreeMap::new();
    // Random ids, and a random order of every file.
    let mut ids: Vec<Option<String>> = vec![None; problem.persons];
    let mut used = std::collections::HashSet::new();
    for (p, id) in ids.iter_mut().enumerate() {
        if eval.suppressed[p] {
            continue;
        }
        loop {
            let c = random_hex()?;
            if used.insert(c.clone()) {
                *id = Some(c);
                break;
            }
        }
    }
    let mut dictionary = String::from(
        "# Data dictionary of the release\n\nOne row per person in `persons.csv`; their jobs in \
         `employment.csv` and services in `services.csv`, joined by `id`, a random id drawn \
         for this release (it cannot be linked to the store or to other releases). Rows are \
         in random order. Months are counted from the day the person was taken in charge \
         (month 0 = its first 30 days; negative = before). `*` means a value generalised \
         away; an empty cell, unknown or not applicable.\n",
    );
    let person_dims: Vec<usize> = (0..problem.dims.len())
        .filter(|&d| problem.dims[d].owner == Owner::Person)
        .collect();
    let timing: Vec<usize> = person_dims
        .iter()
        .copied()
        .filter(|&d| prep.kinds[d] == "timing")
        .collect();
    let sens_idx: Vec<usize> = prep
        .sensitive
        .iter()
        .map(|s| data.person_column(s).unwrap_or(0))
        .collect();

    // persons.csv
    let mut header = vec!["id".to_string()];
    dictionary.push_str("\n## persons.csv\n\n| column | role | released as |\n|---|---|---|\n| `id` | — | random release id |\n");
    for &d in &person_dims {
        let dim = &problem.dims[d];
        header.push(dim.name.clone());
        dictionary.push_str(&format!(
            "| `{}` | quasi-identifier | level {} of {} of `{}` ({}) |\n",
            dim.name,
            node[d],
            dim.height() - 1,
            prep.kinds[d],
            describe(&dim.name)
        ));
    }
    for &d in &timing {
        let stem = problem.dims[d]
            .name
            .trim_start_matches("first_")
            .to_string();
        for days in [30, 90, 180] {
            header.push(format!("{stem}_{days}d"));
            dictionary.push_str(&format!(
                "| `{stem}_{days}d` | derived from `{}` | 1 if the first {} started within {days} days of taking charge, 0 if not, empty if the released level does not tell |\n",
                problem.dims[d].name,
                stem.to_uppercase().replace('A', "A.")
            ));
        }
    }
    for (s, _) in prep.sensitive.iter().zip(&sens_idx) {
        header.push(s.clone());
        dictionary.push_str(&format!(
            "| `{s}` | sensitive | as recorded; at least {} distinct values in every class ({}) |\n",
            policy.l.unwrap_or(1),
            describe(s)
        ));
    }
    let mut order: Vec<usize> = (0..problem.persons)
        .filter(|&p| !eval.suppressed[p])
        .collect();
    shuffle(&mut order)?;
    let mut rows = Vec::with_capacity(order.len());
    for &p in &order {
        let mut r: Vec<String> = vec![ids[p].clone().unwrap_or_default()];
        for &d in &person_dims {
            r.push(problem.dims[d].label(p, node[d] as usize).to_string());
        }
        for &d in &timing {
            r.extend(
                timing_flags(problem.dims[d].label(p, node[d] as usize))
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        for &i in &sens_idx {
            r.push(data.persons[p].values[i].clone());
        }
        rows.push(r);
    }
    write_csv(&dir.join("persons.csv"), &header, &rows, spreadsheet_safe)?;
    counts.insert("persons".to_string(), rows.len() as u64);

    // One file per record table.
    for (t, name) in prep.tables.iter().enumerate() {
        let dims: Vec<usize> = (0..problem.dims.len())
            .filter(|&d| problem.dims[d].owner == Owner::Table(t))
            .collect();
        let mut header = vec!["id".to_string()];
        dictionary.push_str(&format!(
            "\n## {name}.csv\n\n| column | role | released as |\n|---|---|---|\n| `id` | — | the person's release id |\n"
        ));
        for &d in &dims {
            let dim = &problem.dims[d];
            header.push(dim.name.clone());
            dictionary.push_str(&format!(
                "| `{}` | quasi-identifier | level {} of {} of `{}` ({}) |\n",
                dim.name,
                node[d],
                dim.height() - 1,
                prep.kinds[d],
                describe(&dim.name)
            ));
        }
        let mut order: Vec<usize> = (0..problem.record_person[t].len())
            .filter(|&i| !eval.suppressed[problem.record_person[t][i] as usize])
            .collect();
        shuffle(&mut order)?;
        let rows: Vec<Vec<String>> = order
            .iter()
            .map(|&i| {
                let p = problem.record_person[t][i] as usize;
                let mut r = vec![ids[p].clone().unwrap_or_default()];
                r.extend(
                    dims.iter()
                        .map(|&d| problem.dims[d].label(i, node[d] as usize).to_string()),
                );
                r
            })
            .collect();
        write_csv(
            &dir.join(format!("{name}.csv")),
            &header,
            &rows,
            spreadsheet_safe,
        )?;
        counts.insert(name.clone(), rows.len() as u64);
    }
    dictionary.push_str(
        "\nNot released: pseudonyms, tax codes, names, employer ids, operators, providers, \
         programmes, funding and every other free text, questionnaire answers, vacancies, \
         and the persons left out by suppression with all their records (see \
         `risk-report.json`).\n",
    );
    let mut f = occupa_engine::store::create_private(&dir.join("DICTIONARY.md"))
        .map_err(|e| Error::Input(e.to_string()))?;
    f.write_all(dictionary.as_bytes()).map_err(|e| io(dir, e))?;
    Ok(counts)
}

/// What a column means, for the dictionary.
fn describe(column: &str) -> String {
    let fixed = match column {
        "authority" => "the authority that took the person in charge",
        "age" => "age in years at taking charge",
        "sex" => "sex as registered",
        "citizenship" => "citizenship",
        "municipality" => "municipality (of residence for persons, of the workplace for jobs)",
        "education" => "ISCED 2011 level",
        "disability_l68" => "disability under L. 68/1999 (1/0)",
        "income_support" => "receives income support (1/0)",
        "social_services_care" => "in the care of social services (1/0)",
        "intake_date" => "date taken in charge",
        "months_in_charge" => "months from taking charge to leaving it (empty: still in charge)",
        "employed_6m" => {
            "employed 6 months after taking charge (1/0; empty: not observed that long)"
        }
        "employed_12m" => {
            "employed 12 months after taking charge (1/0; empty: not observed that long)"
        }
        "days_employed_12m" => "days employed in the 12 months after taking charge",
        "months_to_first_contract" => {
            "months from taking charge to the first contract (`none`: no contract yet)"
        }
        "first_contract_type" => "type of that first contract",
        "start_month" => "months from taking charge to the start",
        "duration_months" => "months from start to end (empty: ongoing or open-ended)",
        "contract_type" => "contract type",
        "sector" => "ATECO 2007 sector",
        "occupation" => "CP2011 occupation",
        "service_code" => "service standard (A.1–A.6)",
        "hours" => "hours delivered",
        "outcome" => "recorded outcome of the service",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.into();
    }
    if let Some(code) = column.strip_prefix("first_") {
        return format!(
            "days from taking charge to the first {} (bands)",
            code.to_uppercase().replacen('A', "A.", 1)
        );
    }
    if let Some(s) = column.strip_prefix("asso_") {
        return format!("ASSO score {s} (first questionnaire, 0–100)");
    }
    if let Some(s) = column.strip_prefix("isa_first_") {
        return format!("ISA score {s}, first questionnaire");
    }
    if let Some(s) = column.strip_prefix("isa_last_") {
        return format!("ISA score {s}, last questionnaire");
    }
    if let Some(s) = column.strip_prefix("gol_") {
        return format!("GOL assessment, {s} (latest assessment)");
    }
    String::new()
}

fn write_csv(
    path: &Path,
    header: &[String],
    rows: &[Vec<String>],
    safe: fn(&str) -> std::borrow::Cow<'_, str>,
) -> Result<()> {
    let f = occupa_engine::store::create_private(path).map_err(|e| Error::Input(e.to_string()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(f));
    w.write_record(header.iter().map(|h| safe(h).into_owned()))
        .map_err(|e| io(path, e))?;
    for r in rows {
        w.write_record(r.iter().map(|v| safe(v).into_owned()))
            .map_err(|e| io(path, e))?;
    }
    w.flush().map_err(|e| io(path, e))
}

/// Fisher–Yates with the operating system's randomness: the order of a release says
/// nothing about the store's.
fn shuffle<T>(v: &mut [T]) -> Result<()> {
    let mut buf = vec![0u8; 8 * v.len().max(1)];
    getrandom::fill(&mut buf).map_err(|e| Error::Input(format!("no randomness: {e}")))?;
    for i in (1..v.len()).rev() {
        let r = u64::from_le_bytes(buf[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
        let j = (r % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    Ok(())
}

/// 128 random bits as hex, from the operating system.
fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Input(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_parses() {
        let p: Policy = toml::from_str(include_str!("../../policies/research.toml")).unwrap();
        p.check().unwrap();
        assert!(p.records.contains_key("employment") && p.m == 1);
    }

    #[test]
    fn policy_is_checked() {
        let p: Policy =
            toml::from_str("k = 5\nl = 2\n[quasi_identifiers]\nsex = \"flat\"\n").unwrap();
        assert!(p.check().unwrap_err().to_string().contains("sensitive"));
        assert!(toml::from_str::<Policy>("k = 5\nkk = 1\n[quasi_identifiers]\n").is_err());
        let p: Policy = toml::from_str("k = 1\n[quasi_identifiers]\n").unwrap();
        assert!(p.check().is_err());
        let p: Policy =
            toml::from_str("k = 5\n[quasi_identifiers]\n[records.vacancies]\nsector = \"ateco\"\n")
                .unwrap();
        assert!(p.check().unwrap_err().to_string().contains("employment"));
    }

    #[test]
    fn timing_flags_follow_the_released_level() {
        assert_eq!(timing_flags("30-89"), ["0", "1", "1"]);
        assert_eq!(timing_flags("0-89"), ["", "1", "1"]);
        assert_eq!(timing_flags("90+"), ["0", "0", ""]);
        assert_eq!(timing_flags("never"), ["0", "0", "0"]);
        assert_eq!(timing_flags("*"), ["", "", ""]);
    }

    #[test]
    fn shuffling_keeps_every_element() {
        let mut v: Vec<u32> = (0..1000).collect();
        shuffle(&mut v).unwrap();
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_ne!(v, s, "1000 elements left in order: the shuffle did nothing");
    }
}
