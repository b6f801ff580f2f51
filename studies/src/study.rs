//! `occupa study run` and `occupa study log`: a study is a TOML file that names who asks
//! and why, the data (a research release made by `occupa anonymise`), the cohort, and one
//! design run by the engine's runners (an evaluation, a clustering, a forecast request).
//! The run writes `results.json`, one CSV per table and `manifest.json` into a new folder,
//! all at once (nothing on refusal), and appends an audit line to the data's `audit.jsonl`.
//! The same spec on the same data gives the same bytes, on 1 or 2 threads: timings live in
//! the manifest only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use occupa_engine::causal::runner::EvaluationSpec;
use occupa_engine::cluster::run::{ClusteringSpec, cluster_table};
use occupa_engine::columns::Table;
use occupa_engine::forecast::runner::ForecastRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Run a study file on a research release.
    Run(RunArgs),
    /// List the study runs recorded with the data (refused ones too).
    Log {
        /// The release (or store) folder whose audit.jsonl to list.
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The study file (TOML).
    spec: PathBuf,
    /// The research release folder (written by `occupa anonymise`).
    #[arg(long)]
    data: PathBuf,
    /// A new folder for the results.
    #[arg(long)]
    out: PathBuf,
    /// Who runs it, for the audit trail (default: the OS user).
    #[arg(long = "as")]
    who: Option<String>,
}

/// A study file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// A stable identifier (letters, digits, `-`, `_`).
    pub id: String,
    /// What the study asks.
    pub title: String,
    /// Who asks (the research partner or office).
    pub partner: String,
    /// Why.
    pub purpose: String,
    /// The legal basis of the processing.
    pub legal_basis: String,
    /// Where the data comes from.
    pub data: DataSpec,
    /// Which persons.
    #[serde(default)]
    pub cohort: CohortSpec,
    /// The smallest group published (the threshold rule, at least 3): a subgroup with
    /// fewer treated or controls is reported as suppressed, a whole study with fewer, or a
    /// cluster with fewer persons, is refused.
    #[serde(default = "min_count")]
    pub min_count: u64,
    /// The design: exactly one of the three.
    #[serde(default)]
    pub evaluation: Option<EvaluationSpec>,
    /// A clustering of the cohort's persons.
    #[serde(default)]
    pub clustering: Option<ClusteringSpec>,
    /// A planner's forecast request on a series file of the release.
    #[serde(default)]
    pub forecast: Option<ForecastStudy>,
    /// Protected tables of counts of the cohort.
    #[serde(default)]
    pub descriptive: Option<DescriptiveSpec>,
}

/// Tables of counts: each one or two columns of the release, with margins; every count
/// passes the threshold rule with secondary suppression audited as the reports' are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptiveSpec {
    /// Each table's columns (one or two).
    pub tables: Vec<Vec<String>>,
}

/// The data a study reads: a research release, the only way pooled data leaves the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// `release`.
    pub source: String,
    /// The release's file the design reads (default `persons.csv`).
    #[serde(default = "persons")]
    pub table: String,
}

fn persons() -> String {
    "persons.csv".into()
}

fn min_count() -> u64 {
    5
}

/// Which rows: every listed column must hold one of its listed values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    /// Column → accepted values (as written in the file).
    #[serde(default, rename = "where")]
    pub filters: BTreeMap<String, Vec<String>>,
}

/// A forecast request in a study.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastStudy {
    /// The request.
    #[serde(flatten)]
    pub request: ForecastRequest,
}

pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run(a) => run_study(&a),
        StudyCommand::Log { data } => log(&data),
    }
}

fn run_study(a: &RunArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let spec_bytes =
        std::fs::read(&a.spec).with_context(|| format!("reading {}", a.spec.display()))?;
    let spec_hash = sha256(&spec_bytes);
    let who = a
        .who
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let outcome = prepare_and_run(a, &spec_bytes, &spec_hash, started);
    // Every run is audited, refused ones too; the data folder must exist to hold it.
    if a.data.is_dir() {
        // The store's own fields (command, time, user), so one log reads the same.
        let line = serde_json::json!({
            "command": "study run",
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "user": who,
            "study": spec_id(&spec_bytes),
            "spec_sha256": spec_hash,
            "data": a.data,
            "outcome": match &outcome {
                Ok(()) => "done".to_string(),
                Err(e) => format!("refused: {e}"),
            },
        });
        let path = a.data.join("audit.jsonl");
        // As the store appends its own lines: never through a link, private, one write.
        occupa_engine::store::append_line(&path, format!("{line}\n").as_bytes())?;
    }
    outcome
}

/// The spec's id, for the audit line even when the spec does not parse.
fn spec_id(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "id").then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

fn prepare_and_run(
    a: &RunArgs,
    spec_bytes: &[u8],
    spec_hash: &str,
    started: std::time::Instant,
) -> Result<()> {
    let text = std::str::from_utf8(spec_bytes)
        .map_err(|_| anyhow!("{}: not UTF-8 text", a.spec.display()))?;
    // toml's messages give the line, the column and the field.
    let spec: StudySpec = toml::from_str(text)
        .map_err(|e| anyhow!("{}: {}", a.spec.display(), one_line(&e.to_string())))?;
    if spec.id.is_empty()
        || !spec
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "{}: id {:?}: use letters, digits, - and _",
            a.spec.display(),
            spec.id
        );
    }
    let designs = [
        spec.evaluation.is_some(),
        spec.clustering.is_some(),
        spec.forecast.is_some(),
        spec.descriptive.is_some(),
    ];
    if designs.iter().filter(|&&d| d).count() != 1 {
        bail!(
            "{}: give exactly one design: [evaluation], [clustering], [forecast] or \
             [descriptive]",
            a.spec.display()
        );
    }
    if spec.min_count < 3 {
        bail!(
            "{}: min_count {}: publish no group of fewer than 3 persons",
            a.spec.display(),
            spec.min_count
        );
    }
    // Access: pooled data leaves the store only through the anonymiser.
    if spec.data.source != "release" {
        bail!(
            "{}: data.source {:?}: a pooled study reads only a research release \
             (source = \"release\", made by occupa anonymise)",
            a.spec.display(),
            spec.data.source
        );
    }
    if a.data.join("store.json").exists() {
        bail!(
            "{} is a store (identifiable, pooled data): a study reads a research release; make \
             one with occupa anonymise --data {} --policy POLICY.toml --out DIR",
            a.data.display(),
            a.data.display()
        );
    }
    if !a.data.join("risk-report.json").is_file() {
        bail!(
            "{} is not a research release (no risk-report.json): make one with occupa anonymise",
            a.data.display()
        );
    }
    let table_name = &spec.data.table;
    if table_name.contains(['/', '\\']) || table_name.starts_with('.') {
        bail!(
            "{}: data.table {table_name:?}: name a file of the release",
            a.spec.display()
        );
    }
    let input = a.data.join(table_name);
    if !input.is_file() {
        bail!("{}: the release has no {table_name}", a.data.display());
    }
    if a.out.exists()
        && a.out
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: give a new folder",
            a.out.display()
        );
    }
    let check = |e: occupa_engine::Error| anyhow!("{}: {e}", a.spec.display());

    // Everything is written into a temporary folder beside --out, renamed at the end.
    let parent = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".study-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a folder in {}", parent.display()))?;
    let mut inputs = vec![input.clone()];
    let compute = std::time::Instant::now();
    let (results, tables): (serde_json::Value, Vec<(String, String)>) =
        if let Some(ev) = &spec.evaluation {
            let valid = ev.check().map_err(check)?;
            let mut cols = valid.columns();
            cols.extend(spec.cohort.filters.keys().cloned());
            let (table, cohort) = cohort_table(&input, &cols, &spec.cohort)?;
            let out = valid.run(&table).map_err(check)?;
            let mut v = serde_json::to_value(&out)?;
            scrub_timings(&mut v);
            protect_evaluation(&mut v, spec.min_count)?;
            let mut results = serde_json::Map::new();
            results.insert("design".into(), "evaluation".into());
            results.insert("cohort".into(), serde_json::to_value(&cohort)?);
            results.insert("result".into(), v);
            (serde_json::Value::Object(results), Vec::new())
        } else if let Some(cl) = &spec.clustering {
            let valid = cl.check().map_err(check)?;
            let mut cols = valid.columns.clone();
            cols.extend(spec.cohort.filters.keys().cloned());
            let (table, cohort) = cohort_table(&input, &cols, &spec.cohort)?;
            let report = cluster_table(&table, &valid).map_err(check)?;
            if let Some(p) = report
                .profiles
                .iter()
                .find(|p| (p.size as u64) < spec.min_count)
            {
                bail!(
                    "cluster {} has fewer than {} persons: it cannot be published; ask for fewer \
                     clusters or a larger cohort (nothing written)",
                    p.cluster,
                    spec.min_count
                );
            }
            let mut v = serde_json::to_value(&report)?;
            scrub_timings(&mut v);
            let sizes = report
                .profiles
                .iter()
                .map(|p| format!("{},{}", p.cluster, p.size))
                .collect::<Vec<_>>()
                .join("\n");
            (
                serde_json::json!({"design": "clustering", "cohort": cohort, "result": v}),
                vec![(
                    "cluster_sizes.csv".into(),
                    format!("cluster,persons\n{sizes}\n"),
                )],
            )
        } else if let Some(fc) = &spec.forecast {
            if !spec.cohort.filters.is_empty() {
                bail!("{}: a forecast request takes no [cohort]", a.spec.display());
            }
            let valid = fc.request.check().map_err(check)?;
            let set = valid.read(&input).map_err(check)?;
            let out = valid.run(&set, &|| {}).map_err(check)?;
            let csv = tmp.path().join("forecast.csv");
            out.write_csv(&csv, &set, &fc.request.levels, fc.request.horizon)
                .map_err(check)?;
            let mut v = serde_json::Value::Object(out.summary);
            scrub_timings(&mut v);
            (
                serde_json::json!({"design": "forecast", "result": v}),
                Vec::new(),
            )
        } else if let Some(d) = &spec.descriptive {
            if d.tables.is_empty() || d.tables.iter().any(|t| t.is_empty() || t.len() > 2) {
                bail!(
                    "{}: [descriptive] tables: give each table one or two columns",
                    a.spec.display()
                );
            }
            let mut cols: Vec<String> = d.tables.iter().flatten().cloned().collect();
            cols.extend(spec.cohort.filters.keys().cloned());
            let (table, cohort) = cohort_table(&input, &cols, &spec.cohort)?;
            let (summary, files) = descriptive(&table, &d.tables, spec.min_count)?;
            (
                serde_json::json!({"design": "descriptive", "cohort": cohort, "result": summary}),
                files,
            )
        } else {
            bail!("{}: give exactly one design", a.spec.display());
        };
    let compute_s = compute.elapsed().as_secs_f64();
    inputs.sort();
    for (name, text) in &tables {
        write(&tmp.path().join(name), text.as_bytes())?;
    }
    let mut results = results;
    if let serde_json::Value::Object(m) = &mut results {
        m.insert("study".into(), spec.id.clone().into());
        m.insert("title".into(), spec.title.clone().into());
    }
    let results_text = serde_json::to_string_pretty(&results)? + "\n";
    write(&tmp.path().join("results.json"), results_text.as_bytes())?;
    let mut files = BTreeMap::new();
    for i in &inputs {
        let bytes = std::fs::read(i).with_context(|| format!("reading {}", i.display()))?;
        let name = i
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        files.insert(name, sha256(&bytes));
    }
    let risk = std::fs::read(a.data.join("risk-report.json"))?;
    files.insert("risk-report.json".into(), sha256(&risk));
    let manifest = serde_json::json!({
        "study": spec.id,
        "title": spec.title,
        "partner": spec.partner,
        "purpose": spec.purpose,
        "legal_basis": spec.legal_basis,
        "spec_sha256": spec_hash,
        "data": a.data,
        "inputs_sha256": files,
        "results_sha256": sha256(results_text.as_bytes()),
        "engine_version": env!("CARGO_PKG_VERSION"),
        "git_commit": option_env!("OCCUPA_GIT_COMMIT"),
        "threads": rayon::current_num_threads(),
        "seconds": {"compute": compute_s, "total": started.elapsed().as_secs_f64()},
    });
    write(
        &tmp.path().join("manifest.json"),
        (serde_json::to_string_pretty(&manifest)? + "\n").as_bytes(),
    )?;
    if a.out.exists() {
        std::fs::remove_dir(&a.out).with_context(|| format!("replacing {}", a.out.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    println!("{}", results_text.trim_end());
    Ok(())
}

/// The columns `wanted` of the release table, restricted to the cohort, with the counts
/// of the restriction.
fn cohort_table(
    input: &Path,
    wanted: &[String],
    cohort: &CohortSpec,
) -> Result<(Table, serde_json::Value)> {
    let mut cols: Vec<&str> = Vec::new();
    for c in wanted {
        if !cols.contains(&c.as_str()) {
            cols.push(c);
        }
    }
    let table = Table::read(input, &cols)?;
    let n = table.len();
    let mut keep = vec![true; n];
    let mut excluded = BTreeMap::new();
    for (col, values) in &cohort.filters {
        let (levels, codes) = table.categories(col)?;
        let mut out = 0usize;
        for (i, k) in keep.iter_mut().enumerate() {
            let ok = codes[i].is_some_and(|c| values.iter().any(|v| *v == levels[c as usize]));
            if *k && !ok {
                *k = false;
                out += 1;
            }
        }
        excluded.insert(col.clone(), out);
    }
    let kept = keep.iter().filter(|&&k| k).count();
    if kept == 0 {
        bail!(
            "the cohort is empty: no row of {} meets every [cohort] condition",
            input.display()
        );
    }
    let table = table.filter(&keep);
    Ok((
        table,
        serde_json::json!({"rows": n, "kept": kept, "excluded_by": excluded}),
    ))
}

/// Counts of each table (cells and margins) as sets of rows, protected together by the
/// reports' rule (primary suppression below `min`, lines with their margins, then the
/// interval audit); a suppressed count is written as an empty cell with status
/// `suppressed`.
fn descriptive(
    table: &Table,
    specs: &[Vec<String>],
    min: u64,
) -> Result<(serde_json::Value, Vec<(String, String)>)> {
    use occupa_anonymiser::publication::{Draft, Rule, protect};
    let n = table.len();
    let all = "(all)".to_string();
    let mut draft = Draft::new("study/descriptive");
    // Per table: its cells (labels, count index).
    let mut layouts: Vec<Vec<(Vec<String>, usize)>> = Vec::new();
    for cols in specs {
        let mut labels_of: Vec<(Vec<String>, Vec<Option<u32>>)> = Vec::new();
        for c in cols {
            labels_of.push(table.categories(c)?);
        }
        let label = |j: usize, i: usize| -> Option<String> {
            labels_of[j].1[i].map(|k| labels_of[j].0[k as usize].clone())
        };
        let mut cells: BTreeMap<Vec<String>, Vec<u64>> = BTreeMap::new();
        for i in 0..n {
            let key: Option<Vec<String>> = (0..cols.len()).map(|j| label(j, i)).collect();
            let Some(key) = key else { continue };
            // The cell, its row and column margins, and the total.
            let mut keys = vec![key.clone(), vec![all.clone(); cols.len()]];
            if cols.len() == 2 {
                keys.push(vec![key[0].clone(), all.clone()]);
                keys.push(vec![all.clone(), key[1].clone()]);
            }
            for k in keys {
                cells.entry(k).or_default().push(i as u64);
            }
        }
        let name = cols.join("_by_");
        let mut layout = Vec::new();
        for (k, units) in cells {
            let margin = k.contains(&all);
            let idx = draft.count(&format!("{name}/{}", k.join("/")), units, margin);
            layout.push((k, idx));
        }
        // Lines: each row with its margin, each column with its margin.
        if cols.len() == 2 {
            for fixed in 0..2 {
                let values: std::collections::BTreeSet<String> =
                    layout.iter().map(|(k, _)| k[fixed].clone()).collect();
                for v in &values {
                    draft.line(
                        layout
                            .iter()
                            .filter(|(k, _)| &k[fixed] == v)
                            .map(|(_, i)| *i)
                            .collect(),
                    );
                }
            }
        } else {
            draft.line(layout.iter().map(|(_, i)| *i).collect());
        }
        layouts.push(layout);
    }
    let rule = Rule::new(occupa_anonymiser::MinCount::new(min)?);
    let protection = protect(&draft, &[], rule)?;
    let mut files = Vec::new();
    let mut summary = Vec::new();
    for (cols, layout) in specs.iter().zip(&layouts) {
        let name = cols.join("_by_");
        let mut text = cols
            .iter()
            .map(|c| occupa_engine::export::csv_field(c).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        text.push_str(",persons,status\n");
        let mut hidden = 0;
        for (k, i) in layout {
            let shown = protection.shown(&draft, *i);
            hidden += usize::from(shown.is_none());
            let fields: Vec<String> = k
                .iter()
                .map(|v| occupa_engine::export::csv_field(v).into_owned())
                .collect();
            text.push_str(&format!(
                "{},{},{}\n",
                fields.join(","),
                shown.map_or(String::new(), |v| v.to_string()),
                if shown.is_some() {
                    "shown"
                } else {
                    "suppressed"
                }
            ));
        }
        summary.push(serde_json::json!({
            "table": format!("{name}.csv"),
            "columns": cols,
            "cells": layout.len(),
            "suppressed": hidden,
        }));
        files.push((format!("{name}.csv"), text));
    }
    let count =
        |s: occupa_anonymiser::Status| protection.status.iter().filter(|x| **x == s).count();
    Ok((
        serde_json::json!({
            "tables": summary,
            "min_count": min,
            "primary": count(occupa_anonymiser::Status::Primary),
            "secondary": count(occupa_anonymiser::Status::Secondary),
        }),
        files,
    ))
}

/// The threshold rule on an evaluation's groups: the whole comparison must have at least
/// `min` treated and `min` controls (else nothing is published); a subgroup with fewer is
/// replaced by a note, its estimate and counts withheld.
fn protect_evaluation(v: &mut serde_json::Value, min: u64) -> Result<()> {
    let small = |r: &serde_json::Value| {
        ["n_treated", "n_control"]
            .iter()
            .any(|k| r[*k].as_u64().is_some_and(|n| n < min))
    };
    if small(v) {
        bail!(
            "the comparison has fewer than {min} treated or controls: its results cannot be \
             published (nothing written)"
        );
    }
    if let Some(groups) = v.get_mut("subgroups").and_then(|g| g.as_array_mut()) {
        for g in groups {
            // A reason may quote counts ("3 treated and 0 controls"): one below the
            // threshold is not published either.
            if let Some(e) = g["result"]["error"].as_str()
                && e.split(|c: char| !c.is_ascii_digit())
                    .filter_map(|t| t.parse::<u64>().ok())
                    .any(|n| n > 0 && n < min)
            {
                g["result"] = serde_json::json!({
                    "suppressed": format!("not estimated; the reason would show a count below {min}")
                });
                continue;
            }
            if small(&g["result"]) {
                g["result"] = serde_json::json!({
                    "suppressed": format!("fewer than {min} treated or controls: not published")
                });
            }
        }
    }
    Ok(())
}

fn scrub_timings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| k != "seconds");
            m.values_mut().for_each(scrub_timings);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub_timings),
        _ => {}
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn log(data: &Path) -> Result<()> {
    let path = data.join("audit.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no study has been run on {}", data.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: a bad line", path.display()))?;
        // The store's log holds its other commands too; only the studies are listed.
        if v["command"] != "study run" {
            continue;
        }
        println!(
            "{}  {}  {}  {}  {}",
            v["time"].as_str().unwrap_or(""),
            v["user"].as_str().unwrap_or(""),
            v["study"].as_str().unwrap_or(""),
            &v["spec_sha256"].as_str().unwrap_or("")
                [..12.min(v["spec_sha256"].as_str().unwrap_or("").len())],
            v["outcome"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptive_tables_hide_a_small_cell_and_enough_others_that_it_cannot_be_solved() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("persons.csv");
        let mut text = String::from("sex,area\n");
        for (sex, area, n) in [
            ("F", "nord", 20),
            ("F", "sud", 2),
            ("M", "nord", 30),
            ("M", "sud", 25),
        ] {
            for _ in 0..n {
                text.push_str(&format!("{sex},{area}\n"));
            }
        }
        std::fs::write(&p, text).unwrap();
        let table = Table::read(&p, &["sex", "area"]).unwrap();
        let (summary, files) =
            descriptive(&table, &[vec!["sex".into(), "area".into()]], 5).unwrap();
        assert_eq!(summary["primary"], 1);
        assert!(summary["secondary"].as_u64().unwrap() >= 1);
        let csv = &files[0].1;
        assert!(csv.contains("F,sud,,suppressed"), "{csv}");
        assert!(!csv.contains(",2,"), "{csv}");
        // The row F and the column sud each keep at least two hidden counts.
        for fixed in ["F,", ",sud,"] {
            let hidden = csv
                .lines()
                .filter(|l| l.contains(fixed) && l.ends_with("suppressed"))
                .count();
            assert!(hidden >= 2, "{fixed}: {csv}");
        }
    }

    #[test]
    fn small_subgroups_and_counts_in_reasons_are_suppressed_and_a_small_study_refused() {
        let mut v = serde_json::json!({
            "n_treated": 40, "n_control": 90, "estimate": 0.1,
            "subgroups": [
                {"group": "a", "result": {"n_treated": 30, "n_control": 50, "estimate": 0.2}},
                {"group": "b", "result": {"n_treated": 4, "n_control": 50, "estimate": 0.9}},
                {"group": "c", "result": {"error": "3 treated and 0 controls: an effect needs both groups"}},
                {"group": "d", "result": {"error": "0 treated and 948 controls: an effect needs both groups"}},
            ]
        });
        protect_evaluation(&mut v, 5).unwrap();
        let g = v["subgroups"].as_array().unwrap();
        assert_eq!(g[0]["result"]["estimate"], 0.2);
        assert!(g[1]["result"]["suppressed"].is_string());
        assert!(g[1]["result"].get("estimate").is_none());
        assert!(g[2]["result"]["suppressed"].is_string());
        assert!(
            g[3]["result"]["error"].is_string(),
            "no count below 5 in it"
        );
        let mut small = serde_json::json!({"n_treated": 4, "n_control": 90});
        assert!(protect_evaluation(&mut small, 5).is_err());
    }
}
