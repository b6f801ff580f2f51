//! `occupa study run` and `occupa study log`: a study is a TOML file that names who asks
//! and why, the data (a research release made by `occupa anonymise`), the cohort, and one
//! design run by the engine's runners (an evaluation, a clustering, a forecast request).
//! The run writes `results.json`, one CSV per table and `manifest.json` into a new folder,
//! all at once (nothing on refusal), and appends an audit line to the data's `audit.jsonl`.
//! The same spec on the same data gives the same bytes, on 1 or 2 threads: timings live in
//! the manifest only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
use clap::{Args, Subcommand};
use occupa_engine::analysis::{
    AnalysisCounts, AnalysisSpec, AnalysisTable, CohortSpec, ExposureSpec, OutcomeSpec,
};
use occupa_engine::causal::runner::EvaluationSpec;
use occupa_engine::cluster::run::{ClusteringSpec, cluster_table};
use occupa_engine::columns::Table;
use occupa_engine::forecast::runner::ForecastRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Returns a refusal with a formatted message.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(Error::Refused(format!($($arg)*)))
    };
}

/// A refusal with a formatted message.
macro_rules! refusal {
    ($($arg:tt)*) => {
        Error::Refused(format!($($arg)*))
    };
}

/// File errors named by what was being done and where.
trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// `occupa study`'s subcommands.
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

/// One study run: the spec, the data, where the results go, and who runs it.
#[derive(Args)]
pub struct RunArgs {
    /// The study file (TOML).
    pub spec: PathBuf,
    /// The research release folder (written by `occupa anonymise`).
    #[arg(long)]
    pub data: PathBuf,
    /// A new folder for the results.
    #[arg(long)]
    pub out: PathBuf,
    /// Who runs it, for the audit trail (default: the OS user).
    #[arg(long = "as")]
    pub who: Option<String>,
    /// The authority the caller works for: a study on a store reads this tenant only, and
    /// only a spec naming this tenant runs.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Language of the study report: it or en.
    #[arg(long, default_value = "it")]
    pub lang: String,
    /// Print nothing on success (the demo lists what it wrote instead).
    #[arg(skip)]
    pub quiet: bool,
}

/// The example studies (`studies/examples/`), run by `occupa demo`: (file stem, text).
pub const EXAMPLES: [(&str, &str); 7] = [
    (
        "a5-employment",
        include_str!("../examples/a5-employment.toml"),
    ),
    (
        "a5-by-profile",
        include_str!("../examples/a5-by-profile.toml"),
    ),
    (
        "inclusion-rdd",
        include_str!("../examples/inclusion-rdd.toml"),
    ),
    (
        "asso-profiles",
        include_str!("../examples/asso-profiles.toml"),
    ),
    (
        "demand-forecast",
        include_str!("../examples/demand-forecast.toml"),
    ),
    (
        "intake-tables",
        include_str!("../examples/intake-tables.toml"),
    ),
    (
        "employability-index",
        include_str!("../examples/employability-index.toml"),
    ),
];

/// Runs every example study: those on a release on `release`, the others on `store` for
/// tenant `t01`, each into `out/<stem>` (replaced), the specs written to `out/specs/`.
/// Returns each study's folder and a one-line summary.
pub fn run_examples(store: &Path, release: &Path, out: &Path) -> Result<Vec<(PathBuf, String)>> {
    let specs = out.join("specs");
    std::fs::create_dir_all(&specs).at("creating", &specs)?;
    let mut done = Vec::new();
    for (stem, text) in EXAMPLES {
        let spec = specs.join(format!("{stem}.toml"));
        write(&spec, text.as_bytes())?;
        let dir = out.join(stem);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).at("replacing", &dir)?;
        }
        let on_release = toml::from_str::<StudySpec>(text)
            .map(|s| s.data.source == "release")
            .map_err(|e| refusal!("the example {stem}: {e}"))?;
        let args = RunArgs {
            spec,
            data: if on_release {
                release.to_path_buf()
            } else {
                store.to_path_buf()
            },
            out: dir.clone(),
            who: Some("occupa demo".into()),
            tenant: (!on_release).then(|| "t01".to_string()),
            lang: "it".into(),
            quiet: true,
        };
        // A study the data cannot support (too few persons at a threshold) is refused and
        // audited like any other; the demo says why and goes on.
        let line = match run_study(&args) {
            Ok(()) => {
                let results: serde_json::Value =
                    serde_json::from_slice(&read(&dir.join("results.json"))?)?;
                summary_line(&results)
            }
            Err(e) => format!("not run: {e}"),
        };
        done.push((dir, line));
    }
    Ok(done)
}

/// What a study found, in one line.
fn summary_line(r: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.3}"));
    let ci = |v: &serde_json::Value| format!("[{}, {}]", f(&v[0]), f(&v[1]));
    match r["design"].as_str().unwrap_or("") {
        "evaluation" if r.get("robust").is_some() => format!(
            "RDD effect {} (robust 95 % CI {})",
            f(&r["robust"]["estimate"]),
            ci(&r["robust"]["ci95"])
        ),
        "evaluation" => format!(
            "{} {} {} (95 % CI {}), {} treated, {} controls",
            r["method"].as_str().unwrap_or(""),
            r["estimand"].as_str().unwrap_or("").to_uppercase(),
            f(&r["estimate"]),
            ci(&r["ci95"]),
            r["n_treated"],
            r["n_control"]
        ),
        "clustering" => format!(
            "{} profiles ({})",
            r["k"],
            r["method"].as_str().unwrap_or("")
        ),
        "forecast" => format!("{} series forecast", r["series"]),
        "profile" => format!(
            "{} index, AUC {} {} and calibration slope {} on the later persons",
            r["model"].as_str().unwrap_or(""),
            f(&r["auc"]),
            ci(&r["auc_ci95"]),
            f(&r["calibration_slope"])
        ),
        "descriptive" => format!(
            "{} tables, {} cells suppressed",
            r["tables"].as_array().map_or(0, Vec::len),
            r["primary"].as_u64().unwrap_or(0) + r["secondary"].as_u64().unwrap_or(0)
        ),
        other => other.to_string(),
    }
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
    /// Which persons (or, for a forecast from a store, which series).
    #[serde(default)]
    pub cohort: CohortSpec,
    /// The treatment, for an evaluation: a service started within N days, or a GOL path.
    #[serde(default)]
    pub exposure: Option<ExposureSpec>,
    /// Horizons and reference date of the outcomes.
    #[serde(default)]
    pub outcomes: Option<OutcomeSpec>,
    /// Occupability profiles fitted on the cohort, added as `profile_class`.
    #[serde(default)]
    pub profiles: Option<ClusteringSpec>,
    /// The employability index by the store's scoring rule in effect at each intake,
    /// added as `risk`, `risk_class`, `risk_version` (a design's `by = "risk_class"`
    /// estimates a service's effect for each risk class).
    #[serde(default)]
    pub risk: Option<occupa_engine::analysis::RiskSpec>,
    /// The seed of every random choice the study makes: a design or `[profiles]` whose own
    /// seed is 0 (the default) takes this one.
    #[serde(default)]
    pub seed: Option<u64>,
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
    /// An employability index fitted on the cohort's earlier persons and checked on the
    /// later ones (`validate_from`), with its tables by group protected as counts.
    #[serde(default)]
    pub profile: Option<occupa_engine::profile::model::ProfileSpec>,
}

/// Tables of counts: each one or two columns of the release, with margins; every count
/// passes the threshold rule with secondary suppression audited as the reports' are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptiveSpec {
    /// Each table's columns (one or two).
    pub tables: Vec<Vec<String>>,
}

/// The data a study reads: a research release (the only way pooled data leaves the
/// store), or one tenant's own store for that tenant's staff.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// `release` or `store`.
    pub source: String,
    /// The store's tenant (`source = "store"`): the caller's own (`--tenant`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// A file of the release to read as it is (a series file for a forecast); by default
    /// the analysis table is built from the release's persons.
    #[serde(default)]
    pub table: Option<String>,
}

fn min_count() -> u64 {
    5
}

/// A forecast request in a study.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastStudy {
    /// The request.
    #[serde(flatten)]
    pub request: ForecastRequest,
}

/// Runs `occupa study run` or `occupa study log`.
pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run(a) => run_study(&a),
        StudyCommand::Log { data } => log(&data),
    }
}

/// Runs one study and audits it (refusals too). The results are in `a.out`.
pub fn run_study(a: &RunArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let spec_bytes = std::fs::read(&a.spec).at("reading", &a.spec)?;
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
        if a.data.join("store.json").is_file() {
            // The store's own log: its lines carry the key's fingerprint.
            occupa_engine::store::Store::open(&a.data)?.audit(line)?;
        } else {
            // As the store appends its own lines: never through a link, private, one write.
            let path = a.data.join("audit.jsonl");
            occupa_engine::store::append_line(&path, format!("{line}\n").as_bytes())?;
        }
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
        .map_err(|_| refusal!("{}: not UTF-8 text", a.spec.display()))?;
    // toml's messages give the line, the column and the field.
    let spec: StudySpec = toml::from_str(text)
        .map_err(|e| refusal!("{}: {}", a.spec.display(), one_line(&e.to_string())))?;
    if spec.id.is_empty()
        || !spec
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        refuse!(
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
        spec.profile.is_some(),
    ];
    if designs.iter().filter(|&&d| d).count() != 1 {
        refuse!(
            "{}: give exactly one design: [evaluation], [clustering], [forecast], \
             [descriptive] or [profile]",
            a.spec.display()
        );
    }
    if spec.min_count < 3 {
        refuse!(
            "{}: min_count {}: publish no group of fewer than 3 persons",
            a.spec.display(),
            spec.min_count
        );
    }
    // Access: pooled data leaves the store only through the anonymiser; a store is read
    // one tenant at a time, by that tenant's staff.
    let source = access(a, &spec)?;
    if a.out.exists()
        && a.out
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        refuse!(
            "{} exists and is not empty: give a new folder",
            a.out.display()
        );
    }
    let check = |e: occupa_engine::Error| refusal!("{}: {e}", a.spec.display());
    if spec.forecast.is_some()
        && (spec.exposure.is_some() || spec.outcomes.is_some() || spec.profiles.is_some())
    {
        refuse!(
            "{}: a forecast request takes no [exposure], [outcomes] or [profiles]",
            a.spec.display()
        );
    }
    if spec.exposure.is_none()
        && spec
            .outcomes
            .as_ref()
            .is_some_and(|o| o.reference != Default::default())
    {
        refuse!(
            "{}: outcomes.reference = \"window_end\" needs an [exposure]",
            a.spec.display()
        );
    }
    let mut profiles = spec.profiles.clone();
    if let (Some(p), Some(seed)) = (profiles.as_mut(), spec.seed)
        && p.seed == 0
    {
        p.seed = seed;
    }
    let analysis = AnalysisSpec {
        cohort: spec.cohort.clone(),
        exposure: spec.exposure.clone(),
        outcomes: spec.outcomes.clone().unwrap_or_default(),
        profiles,
        risk: spec.risk.clone(),
    }
    .check()
    .map_err(check)?;

    // Everything is written into a temporary folder beside --out, renamed at the end.
    let parent = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).at("creating", parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".study-")
        .tempdir_in(parent)
        .at("creating a folder in", parent)?;
    let compute = std::time::Instant::now();
    // The analysis table of the persons (evaluation, clustering, descriptive).
    let analysis_seconds = std::cell::Cell::new(0.0);
    let persons_table = |source: &Source| -> Result<AnalysisTable> {
        let t0 = std::time::Instant::now();
        let built = match source {
            Source::Store { store, tenant } => {
                occupa_engine::analysis::from_store(&store.scope(tenant), &analysis).map_err(check)
            }
            Source::Release { dir, table: None } => {
                occupa_engine::analysis::from_release(dir, &analysis).map_err(check)
            }
            Source::Release {
                table: Some(file), ..
            } => {
                if spec.exposure.is_some()
                    || spec.outcomes.is_some()
                    || spec.profiles.is_some()
                    || spec.cohort.intake_from.is_some()
                    || spec.cohort.intake_to.is_some()
                {
                    refuse!(
                        "{}: data.table {file:?} is read as it is: [exposure], [outcomes], \
                         [profiles] and an intake window need the release's persons (leave \
                         data.table out)",
                        a.spec.display()
                    );
                }
                let table = Table::read(&a.data.join(file), &[]).and_then(|t| {
                    let all: Vec<&str> = t.headers().iter().map(String::as_str).collect();
                    Table::read(&a.data.join(file), &all)
                });
                let table = table.map_err(check)?;
                occupa_engine::analysis::from_table(
                    table,
                    &analysis,
                    &format!("{file} of the release"),
                )
                .map_err(check)
            }
        };
        analysis_seconds.set(t0.elapsed().as_secs_f64());
        built
    };
    let analysis_json;
    let mut chart: Option<String> = None;
    let mut guard = Guard::new(&source, &spec.id, spec.min_count)?;
    let min = spec.min_count;
    let (results, tables): (serde_json::Value, Vec<(String, String)>) = if let Some(ev) =
        &spec.evaluation
    {
        let valid = ev.check().map_err(check)?;
        let built = persons_table(&source)?;
        let out = valid.run(&built.table).map_err(check)?;
        if let occupa_engine::causal::runner::EvaluationOutput::Adjusted(e) = &out
            && !e.balance.is_empty()
        {
            chart = Some(occupa_reports::causal_plots::love_plot_svg(&e.balance, 0.1));
        }
        let mut v = serde_json::to_value(&out)?;
        scrub_timings(&mut v);
        // Every count the evaluation shows joins the publication: the groups it
        // compares, overall and by subgroup, as the rows they hold.
        let chain = guard.add_analysis(&built, spec.exposure.as_ref().map(|e| e.name.as_str()));
        let groups = compared_groups(&built, ev, &valid.columns())?;
        let group_ids: Vec<(String, usize, usize)> = groups
            .into_iter()
            .map(|(label, t, c)| {
                let ti =
                    guard
                        .draft
                        .count(&format!("{}/treated/{label}", guard.draft.id), t, false);
                let ci =
                    guard
                        .draft
                        .count(&format!("{}/controls/{label}", guard.draft.id), c, false);
                (label, ti, ci)
            })
            .collect();
        guard.protect()?;
        let (draft, protection) = guard.published()?;
        analysis_json = chain.json(&built.counts, draft, protection, min);
        protect_evaluation(&mut v, &group_ids, draft, protection, &chain, min)?;
        (flatten("evaluation", v), Vec::new())
    } else if let Some(cl) = &spec.clustering {
        let mut cl = cl.clone();
        if let Some(seed) = spec.seed
            && cl.seed == 0
        {
            cl.seed = seed;
        }
        let valid = cl.check().map_err(check)?;
        let built = persons_table(&source)?;
        let report = cluster_table(&built.table, &valid).map_err(check)?;
        if let Some(p) = report.profiles.iter().find(|p| (p.size as u64) < min) {
            refuse!(
                "cluster {} has fewer than {min} persons: it cannot be published; ask for \
                     fewer clusters or a larger cohort (nothing written)",
                p.cluster
            );
        }
        let chain = guard.add_analysis(&built, None);
        let mut sizes = Vec::new();
        for p in &report.profiles {
            let units = row_units(&built.unit_keys, |r| {
                report.labels.get(r) == Some(&Some(p.cluster - 1))
            });
            let id = guard.draft.count(
                &format!("{}/cluster/{}", guard.draft.id, p.cluster),
                units,
                false,
            );
            sizes.push((p.cluster, id));
        }
        guard.protect()?;
        let (draft, protection) = guard.published()?;
        analysis_json = chain.json(&built.counts, draft, protection, min);
        let mut v = serde_json::to_value(&report)?;
        scrub_timings(&mut v);
        chain.replace_totals(&mut v, draft, protection);
        let mut csv = String::from("cluster,persons,status\n");
        for (cluster, id) in &sizes {
            let shown = protection.shown(draft, *id);
            csv.push_str(&format!(
                "{cluster},{},{}\n",
                shown.map_or(String::new(), |x| x.to_string()),
                if shown.is_some() {
                    "shown"
                } else {
                    "suppressed"
                }
            ));
            if shown.is_none() {
                hide_cluster_size(&mut v, *cluster);
            }
        }
        sweep_small_counts(&mut v, min);
        (
            flatten("clustering", v),
            vec![("cluster_sizes.csv".into(), csv)],
        )
    } else if let Some(fc) = &spec.forecast {
        let valid = fc.request.check().map_err(check)?;
        let series = match &source {
            Source::Store { store, tenant } => {
                occupa_engine::analysis::series_table(&store.scope(tenant)).map_err(check)?
            }
            Source::Release { dir, table } => {
                let Some(file) = table else {
                    refuse!(
                        "{}: a forecast on a release reads a series file: name it in \
                             data.table",
                        a.spec.display()
                    );
                };
                Table::read_all(&dir.join(file)).map_err(check)?
            }
        };
        let only_where = AnalysisSpec {
            cohort: CohortSpec {
                filters: spec.cohort.filters.clone(),
                ..CohortSpec::default()
            },
            ..AnalysisSpec::default()
        }
        .check()
        .map_err(check)?;
        let series = occupa_engine::analysis::from_table(series, &only_where, "the series")
            .map_err(check)?
            .table;
        let set = valid.series(&series).map_err(check)?;
        let out = valid.run(&set, &|| {}).map_err(check)?;
        let csv = tmp.path().join("forecast.csv");
        out.write_csv(&csv, &set, &fc.request.levels, fc.request.horizon)
            .map_err(check)?;
        let mut v = serde_json::Value::Object(out.summary);
        scrub_timings(&mut v);
        // Counts of positions and contracts by month, sector and province: no person.
        analysis_json = serde_json::json!({"series_rows": series.len()});
        (flatten("forecast", v), Vec::new())
    } else if let Some(d) = &spec.descriptive {
        if d.tables.is_empty() || d.tables.iter().any(|t| t.is_empty() || t.len() > 2) {
            refuse!(
                "{}: [descriptive] tables: give each table one or two columns",
                a.spec.display()
            );
        }
        let built = persons_table(&source)?;
        let chain = guard.add_analysis(&built, spec.exposure.as_ref().map(|e| e.name.as_str()));
        let layouts =
            descriptive_counts(&built.table, &built.unit_keys, &d.tables, &mut guard.draft)?;
        guard.protect()?;
        let (draft, protection) = guard.published()?;
        analysis_json = chain.json(&built.counts, draft, protection, min);
        let (summary, files) = descriptive_files(&d.tables, &layouts, draft, protection, min);
        (flatten("descriptive", summary), files)
    } else if let Some(ps) = &spec.profile {
        let built = persons_table(&source)?;
        let mut ps = ps.clone();
        if ps.covariates.is_empty() {
            ps.covariates = occupa_engine::profile::model::default_covariates(&built.table);
        }
        // No level of a covariate speaks for fewer persons than the study may publish.
        ps.min_level = ps.min_level.max(min as usize);
        if ps.model == occupa_engine::profile::model::ModelKind::Boosting
            && ps.boosting.seed == 0
            && let Some(seed) = spec.seed
        {
            ps.boosting.seed = seed;
        }
        ps.check().map_err(check)?;
        let chain = guard.add_analysis(&built, None);
        let prefix = format!("{}/profile", guard.draft.id);
        let fitted = occupa_reports::profiling::Profiling::fit(
            &built.table,
            &built.unit_keys,
            ps,
            None,
            &prefix,
            &mut guard.draft,
        );
        if let Some(e) = fitted.error() {
            refuse!("{}: {e} (nothing written)", a.spec.display());
        }
        guard.protect()?;
        let (draft, protection) = guard.published()?;
        analysis_json = chain.json(&built.counts, draft, protection, min);
        let shown = |i: usize| protection.shown(draft, i);
        let lang = occupa_reports::Lang::parse(&a.lang).unwrap_or(occupa_reports::Lang::It);
        let figures = fitted.tables(&shown, lang);
        let mut v = serde_json::json!({
            "model": fitted.spec_json()["spec"]["model"],
            "outcome": fitted.spec_json()["spec"]["outcome"],
            "periods": {
                "training": fitted.spec_json()["training"],
                "check": fitted.spec_json()["check"],
            },
            "spec": fitted.spec_json()["spec"],
            "tables": figures,
        });
        // The headline figures of the later persons (not counts: shown with the count hidden).
        if let (Some((auc, lo, hi, slope)), Some(m)) = (fitted.headline(), v.as_object_mut()) {
            m.insert("auc".into(), auc.into());
            m.insert("auc_ci95".into(), serde_json::json!([lo, hi]));
            m.insert("calibration_slope".into(), slope.into());
        }
        let files = figures
            .iter()
            .map(|f| (format!("{}.csv", f.id), f.csv()))
            .collect();
        scrub_timings(&mut v);
        (flatten("profile", v), files)
    } else {
        refuse!("{}: give exactly one design", a.spec.display());
    };
    let mut inputs = source.inputs()?;
    let compute_s = compute.elapsed().as_secs_f64();
    inputs.sort();
    for (name, text) in &tables {
        write(&tmp.path().join(name), text.as_bytes())?;
    }
    let mut results = results;
    if let serde_json::Value::Object(m) = &mut results {
        m.insert("study".into(), spec.id.clone().into());
        m.insert("title".into(), spec.title.clone().into());
        m.insert("analysis".into(), analysis_json);
    }
    let results_text = serde_json::to_string_pretty(&results)? + "\n";
    write(&tmp.path().join("results.json"), results_text.as_bytes())?;
    let report_started = std::time::Instant::now();
    let lang = occupa_reports::Lang::parse(&a.lang)
        .ok_or_else(|| refusal!("--lang {:?}: it or en", a.lang))?;
    let report = study_report(&spec, &results, spec_hash, tmp.path(), lang, chart)?;
    write(&tmp.path().join("report.html"), report.html().as_bytes())?;
    write(&tmp.path().join("report.pdf"), &report.pdf()?)?;
    let report_s = report_started.elapsed().as_secs_f64();
    let mut files = BTreeMap::new();
    for i in &inputs {
        let bytes = std::fs::read(i).at("reading", i)?;
        let name = i
            .strip_prefix(&a.data)
            .unwrap_or(i)
            .to_string_lossy()
            .into_owned();
        files.insert(name, sha256(&bytes));
    }
    // Not in results.json: a rerun has one more earlier publication and the same results.
    let earlier_publications = guard.prior.len();
    guard.record()?;
    let manifest = serde_json::json!({
        "study": spec.id,
        "title": spec.title,
        "partner": spec.partner,
        "purpose": spec.purpose,
        "legal_basis": spec.legal_basis,
        "spec_sha256": spec_hash,
        "data": a.data,
        "inputs_sha256": files,
        "seed": spec.seed,
        "earlier_publications_of_the_store": earlier_publications,
        "results_sha256": sha256(results_text.as_bytes()),
        "engine_version": env!("CARGO_PKG_VERSION"),
        "git_commit": option_env!("OCCUPA_GIT_COMMIT"),
        "threads": rayon::current_num_threads(),
        "seconds": {
            "analysis_table": analysis_seconds.get(),
            "design": compute_s - analysis_seconds.get(),
            "report": report_s,
            "total": started.elapsed().as_secs_f64(),
        },
    });
    write(
        &tmp.path().join("manifest.json"),
        (serde_json::to_string_pretty(&manifest)? + "\n").as_bytes(),
    )?;
    if a.out.exists() {
        std::fs::remove_dir(&a.out).at("replacing", &a.out)?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &a.out).at("writing", &a.out)?;
    if !a.quiet {
        println!("{}", results_text.trim_end());
    }
    Ok(())
}

/// Where a study's data comes from, once access is granted.
enum Source {
    /// A research release folder; `table` a file of it read as it is.
    Release { dir: PathBuf, table: Option<String> },
    /// One tenant of a store.
    Store {
        store: occupa_engine::store::Store,
        tenant: occupa_engine::store::TenantId,
    },
}

impl Source {
    /// The files the study reads, for the manifest's hashes.
    fn inputs(&self) -> Result<Vec<PathBuf>> {
        Ok(match self {
            Source::Release { dir, table } => vec![
                dir.join(table.as_deref().unwrap_or("persons.csv")),
                dir.join("risk-report.json"),
            ],
            Source::Store { store, tenant } => {
                use occupa_engine::schema::Table as T;
                let scope = store.scope(tenant);
                let mut v = Vec::new();
                for t in [
                    T::Persons,
                    T::Asso,
                    T::Isa,
                    T::Gol,
                    T::Services,
                    T::Employment,
                    T::Vacancies,
                ] {
                    v.extend(scope.parts(t)?);
                }
                v
            }
        })
    }
}

/// The access rules: a release for pooled data, a store only for one tenant's own staff.
fn access(a: &RunArgs, spec: &StudySpec) -> Result<Source> {
    let is_store = a.data.join("store.json").exists();
    match spec.data.source.as_str() {
        "release" => {
            if spec.data.tenant.is_some() {
                refuse!(
                    "{}: data.tenant goes with source = \"store\"; a release has no tenants",
                    a.spec.display()
                );
            }
            if is_store {
                refuse!(
                    "{} is a store (identifiable, pooled data): a study reads a research \
                     release; make one with occupa anonymise --data {} --policy POLICY.toml \
                     --out DIR",
                    a.data.display(),
                    a.data.display()
                );
            }
            if !a.data.join("risk-report.json").is_file() {
                refuse!(
                    "{} is not a research release (no risk-report.json): make one with occupa \
                     anonymise",
                    a.data.display()
                );
            }
            if let Some(t) = &spec.data.table {
                if t.contains(['/', '\\']) || t.starts_with('.') {
                    refuse!(
                        "{}: data.table {t:?}: name a file of the release",
                        a.spec.display()
                    );
                }
                if !a.data.join(t).is_file() {
                    refuse!("{}: the release has no {t}", a.data.display());
                }
            } else if !a.data.join("persons.csv").is_file() {
                refuse!("{}: the release has no persons.csv", a.data.display());
            }
            Ok(Source::Release {
                dir: a.data.clone(),
                table: spec.data.table.clone(),
            })
        }
        "store" => {
            let Some(named) = &spec.data.tenant else {
                refuse!(
                    "{}: source = \"store\" reads one tenant's data: name it in data.tenant \
                     (pooled data leaves the store only through occupa anonymise)",
                    a.spec.display()
                );
            };
            let Some(caller) = &a.tenant else {
                refuse!(
                    "a study on a store runs for the authority that owns the data: give \
                     --tenant (yours)"
                );
            };
            if named != caller {
                refuse!(
                    "{}: the spec reads the store of {named}, but you run it for {caller}: a \
                     tenant's staff read only their own data; for pooled data use a release",
                    a.spec.display()
                );
            }
            if spec.data.table.is_some() {
                refuse!(
                    "{}: data.table is a file of a release, not of a store",
                    a.spec.display()
                );
            }
            if !is_store {
                refuse!(
                    "{} is not a store (no store.json): source = \"store\" needs the folder \
                     occupa ingest writes",
                    a.data.display()
                );
            }
            let store = occupa_engine::store::Store::open(&a.data)?;
            let tenant = occupa_engine::store::TenantId::new(named)?;
            if !store.tenants()?.contains(&tenant) {
                refuse!("the store {} has no tenant {named}", a.data.display());
            }
            Ok(Source::Store { store, tenant })
        }
        other => refuse!(
            "{}: data.source {other:?}: \"release\" (pooled, anonymised) or \"store\" (one \
             tenant's own data)",
            a.spec.display()
        ),
    }
}

/// The design's JSON with the study's fields beside it (the evaluate JSON's `estimate`,
/// `se`, `ci95` at the top, as the CLI contract says).
fn flatten(design: &str, v: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("design".into(), design.into());
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                m.insert(k, x);
            }
        }
        other => {
            m.insert("result".into(), other);
        }
    }
    serde_json::Value::Object(m)
}

/// The analysis table's counts, protected together: every count below `min` hidden, and
/// enough others that none can be solved from the rest (the chain persons = exclusions +
/// rows, rows = exposed + not exposed, the profiles).
/// What a run publishes about persons, protected as one publication: against itself, and,
/// on a store, against everything the store published before (its reports and studies),
/// then recorded in the store's ledger.
struct Guard {
    ledger: Option<occupa_anonymiser::publication::ledger::Ledger>,
    prior: Vec<occupa_anonymiser::publication::Prior>,
    draft: occupa_anonymiser::publication::Draft,
    rule: occupa_anonymiser::publication::Rule,
    protection: Option<occupa_anonymiser::publication::Protection>,
}

impl Guard {
    fn new(source: &Source, study: &str, min: u64) -> Result<Guard> {
        use occupa_anonymiser::publication::ledger::Ledger;
        use occupa_anonymiser::publication::{Draft, Rule};
        let (ledger, prior) = match source {
            Source::Store { store, .. } => {
                let ledger = Ledger::open(store.root())?;
                let prior = ledger.priors()?;
                (Some(ledger), prior)
            }
            // A release's studies count rows the partner holds anyway.
            Source::Release { .. } => (None, Vec::new()),
        };
        Ok(Guard {
            ledger,
            prior,
            draft: Draft::new(&format!("study/{study}")),
            rule: Rule::new(occupa_anonymiser::MinCount::new(min)?),
            protection: None,
        })
    }

    /// Adds the analysis table's counts: the chain (persons = exclusions + rows), the
    /// exposed and the others, the persons whose outcomes are not yet observed, and the
    /// profiles, each as the persons it counts, with the lines that tie them to the rows.
    fn add_analysis(&mut self, built: &AnalysisTable, exposure: Option<&str>) -> Chain {
        let id = self.draft.id.clone();
        let mut chain = Chain::default();
        for (i, (name, units)) in built.counts.steps.iter().enumerate() {
            chain.steps.push(
                self.draft
                    .count(&format!("{id}/{i}/{name}"), units.clone(), i == 0),
            );
        }
        self.draft.line(chain.steps.clone());
        let rows = *chain.steps.last().unwrap_or(&0);
        let keys = &built.unit_keys;
        let table = &built.table;
        if let Some(x) = exposure.and_then(|e| table.numeric(e).ok()) {
            let exposed = row_units(keys, |r| x[r] == 1.0);
            let others = row_units(keys, |r| x[r] == 0.0);
            let e = self.draft.count(&format!("{id}/exposed"), exposed, false);
            let o = self
                .draft
                .count(&format!("{id}/not exposed"), others, false);
            self.draft.line(vec![rows, e, o]);
            chain.exposed = Some(e);
        }
        for outcome in &built.counts.outcomes {
            if let Ok(v) = table.numeric(outcome) {
                let units = row_units(keys, |r| v[r].is_nan());
                let i = self
                    .draft
                    .count(&format!("{id}/not observed/{outcome}"), units, false);
                chain.not_observed.push((outcome.clone(), i));
            }
        }
        if let Ok((levels, codes)) = table.categories("profile_class") {
            let mut line = vec![rows];
            for (k, level) in levels.iter().enumerate() {
                let units = row_units(keys, |r| codes[r] == Some(k as u32));
                let i = self
                    .draft
                    .count(&format!("{id}/profile/{level}"), units, false);
                chain.profiles.push((level.clone(), i));
                line.push(i);
            }
            let unassigned = row_units(keys, |r| codes[r].is_none());
            line.push(
                self.draft
                    .count(&format!("{id}/profile/none"), unassigned, false),
            );
            self.draft.line(line);
        }
        chain
    }

    /// Protects the draft; refuses when the audit cannot.
    fn protect(&mut self) -> Result<()> {
        // Two counts a few persons apart, in this study or against an earlier publication
        // (a cohort one day shorter than an earlier study's), give those persons away.
        self.draft.add_differences(&self.prior, self.rule.min);
        let p = occupa_anonymiser::publication::protect(&self.draft, &self.prior, self.rule)?;
        if !p.audit.all_protected {
            // Which counts (their keys, never their values), so the breakdown can be found.
            let failing: Vec<&str> = p
                .audit
                .ranges
                .iter()
                .filter(|r| {
                    r.upper.is_some_and(|u| u < r.required.1 as f64 - 1e-6)
                        || r.lower > r.required.0 as f64 + 1e-6
                })
                .map(|r| r.key.as_str())
                .take(5)
                .collect();
            let hint = if self.prior.is_empty() {
                "a breakdown holds a few persons the study's other counts give away: raise \
                 min_count or publish fewer breakdowns (in a [profile] study, fewer groups)"
            } else {
                "raise min_count, publish fewer breakdowns, or drop a filter that differs from \
                 an earlier study's by a few persons"
            };
            refuse!(
                "the interval audit could not protect every small count against the {} earlier \
                 publications of this store (nothing written): {hint}. The counts: {}",
                self.prior.len(),
                failing.join("; ")
            );
        }
        self.protection = Some(p);
        Ok(())
    }

    /// The draft and its protection, once protected.
    fn published(
        &self,
    ) -> Result<(
        &occupa_anonymiser::publication::Draft,
        &occupa_anonymiser::publication::Protection,
    )> {
        match &self.protection {
            Some(p) => Ok((&self.draft, p)),
            None => refuse!("internal: the study's counts were not protected"),
        }
    }

    /// Records what was published in the store's ledger, before the files appear (as the
    /// reports do: the ledger may claim a publication a crash left unwritten, never the
    /// reverse).
    fn record(self) -> Result<()> {
        if let (Some(ledger), Some(protection)) = (self.ledger, self.protection) {
            let staged = ledger.stage(&self.draft, &protection, self.rule)?;
            ledger.commit(staged)?;
        }
        Ok(())
    }
}

/// The draft's indices of an analysis table's counts.
#[derive(Default)]
struct Chain {
    /// Persons, each exclusion, rows.
    steps: Vec<usize>,
    exposed: Option<usize>,
    not_observed: Vec<(String, usize)>,
    profiles: Vec<(String, usize)>,
}

impl Chain {
    /// The indices of the counts [`Chain::json`] prints.
    fn printed(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps
            .iter()
            .copied()
            .chain(self.exposed)
            .chain(self.not_observed.iter().map(|(_, i)| *i))
            .chain(self.profiles.iter().map(|(_, i)| *i))
    }

    /// The counts as published: each shown, or `null` where protection hid it.
    fn json(
        &self,
        c: &AnalysisCounts,
        draft: &occupa_anonymiser::publication::Draft,
        protection: &occupa_anonymiser::publication::Protection,
        min: u64,
    ) -> serde_json::Value {
        let shown = |i: usize| -> serde_json::Value {
            protection
                .shown(draft, i)
                .map_or(serde_json::Value::Null, serde_json::Value::from)
        };
        let last = self.steps.len() - 1;
        let excluded: Vec<serde_json::Value> = c.steps[1..last]
            .iter()
            .zip(&self.steps[1..last])
            .map(|((reason, _), &i)| serde_json::json!({"reason": reason, "persons": shown(i)}))
            .collect();
        let named = |v: &[(String, usize)]| -> BTreeMap<String, serde_json::Value> {
            v.iter().map(|(k, i)| (k.clone(), shown(*i))).collect()
        };
        serde_json::json!({
            "source": c.source,
            "persons": shown(self.steps[0]),
            "excluded": excluded,
            "rows": shown(self.steps[last]),
            "exposed": self.exposed.map(shown),
            "observed_until": c.observed_until,
            "not_observed": named(&self.not_observed),
            "profiles": named(&self.profiles),
            "notes": c.notes,
            "suppressed_counts": self.printed().filter(|&i| protection.shown(draft, i).is_none()).count(),
            "min_count": min,
        })
    }

    /// The design's own `rows` (the analysis table's) as the chain publishes it.
    fn replace_totals(
        &self,
        v: &mut serde_json::Value,
        draft: &occupa_anonymiser::publication::Draft,
        protection: &occupa_anonymiser::publication::Protection,
    ) {
        if let Some(rows) = self.steps.last()
            && v.get("rows").is_some()
        {
            v["rows"] = protection
                .shown(draft, *rows)
                .map_or(serde_json::Value::Null, serde_json::Value::from);
        }
    }
}

/// The unit keys of the rows `mask` selects, sorted.
fn row_units(keys: &[u64], mask: impl Fn(usize) -> bool) -> Vec<u64> {
    let mut v: Vec<u64> = (0..keys.len())
        .filter(|&r| mask(r))
        .map(|r| keys[r])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A group an evaluation compares: its label, its treated and its controls (unit keys).
type Compared = (String, Vec<u64>, Vec<u64>);

/// The treated and the controls an adjusted evaluation compares, overall (label `""`)
/// and by subgroup (`by=value`, as its JSON names them): the rows with every column it
/// reads present (listwise deletion, as the runner does), a subgroup also its `by` value.
fn compared_groups(
    built: &AnalysisTable,
    ev: &EvaluationSpec,
    columns: &[String],
) -> Result<Vec<Compared>> {
    let Some(treatment) = ev.treatment.as_deref().filter(|_| {
        !matches!(
            ev.method,
            occupa_engine::causal::runner::Design::Did | occupa_engine::causal::runner::Design::Rdd
        )
    }) else {
        return Ok(Vec::new());
    };
    let t = &built.table;
    let used = t.complete_rows(
        columns
            .iter()
            .map(String::as_str)
            .filter(|c| Some(*c) != ev.by.as_deref()),
    )?;
    let x = t.numeric(treatment)?;
    let keys = &built.unit_keys;
    let mut out = vec![(
        String::new(),
        row_units(keys, |r| used[r] && x[r] == 1.0),
        row_units(keys, |r| used[r] && x[r] == 0.0),
    )];
    if let Some(by) = &ev.by {
        let (levels, codes) = t.categories(by)?;
        for (k, level) in levels.iter().enumerate() {
            let in_group = |r: usize| used[r] && codes[r] == Some(k as u32);
            out.push((
                format!("{by}={level}"),
                row_units(keys, |r| in_group(r) && x[r] == 1.0),
                row_units(keys, |r| in_group(r) && x[r] == 0.0),
            ));
        }
    }
    Ok(out)
}

/// Fields of the methods' JSON that hold counts of persons: a value from 1 to the
/// threshold less one is not published wherever it appears.
const COUNT_FIELDS: [&str; 12] = [
    "n",
    "n_h",
    "n_b",
    "n_effective",
    "distinct",
    "n_treated",
    "n_control",
    "rows",
    "dropped_missing",
    "dropped_by_design",
    "size",
    "used",
];

/// The threshold rule on every count field left (a backstop for counts no draft holds:
/// an RDD's observations within its bandwidth, a cluster's rows).
fn sweep_small_counts(v: &mut serde_json::Value, min: u64) {
    let small = |x: &serde_json::Value| x.as_u64().is_some_and(|n| n > 0 && n < min);
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if COUNT_FIELDS.contains(&k.as_str()) {
                    if small(x) {
                        *x = serde_json::Value::Null;
                    } else if let serde_json::Value::Array(a) = x {
                        for e in a.iter_mut().filter(|e| small(e)) {
                            *e = serde_json::Value::Null;
                        }
                    }
                }
                sweep_small_counts(x, min);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| sweep_small_counts(x, min)),
        _ => {}
    }
}

/// A cluster whose size protection hid: its size and share withheld.
fn hide_cluster_size(v: &mut serde_json::Value, cluster: usize) {
    if let Some(ps) = v["profiles"].as_array_mut() {
        for p in ps
            .iter_mut()
            .filter(|p| p["cluster"].as_u64() == Some(cluster as u64))
        {
            p["size"] = serde_json::Value::Null;
            p["share"] = serde_json::Value::Null;
        }
    }
    if let Some(sizes) = v["sizes"].as_array_mut()
        && let Some(x) = sizes.get_mut(cluster.saturating_sub(1))
    {
        *x = serde_json::Value::Null;
    }
}

/// Counts of each table (cells and margins) as sets of rows, protected together by the
/// reports' rule (primary suppression below `min`, lines with their margins, then the
/// interval audit); a suppressed count is written as an empty cell with status
/// `suppressed`.
#[cfg(test)]
fn descriptive(
    table: &Table,
    specs: &[Vec<String>],
    min: u64,
) -> Result<(serde_json::Value, Vec<(String, String)>)> {
    use occupa_anonymiser::publication::{Draft, Rule, protect};
    let mut draft = Draft::new("study/descriptive");
    let keys: Vec<u64> = (0..table.len() as u64).collect();
    let layouts = descriptive_counts(table, &keys, specs, &mut draft)?;
    let protection = protect(
        &draft,
        &[],
        Rule::new(occupa_anonymiser::MinCount::new(min)?),
    )?;
    Ok(descriptive_files(specs, &layouts, &draft, &protection, min))
}

/// Each table's cells (labels and the draft's count) added to `draft`; row `i` counts as
/// unit `unit_keys[i]`.
type Layout = Vec<(Vec<String>, usize)>;

fn descriptive_counts(
    table: &Table,
    unit_keys: &[u64],
    specs: &[Vec<String>],
    draft: &mut occupa_anonymiser::publication::Draft,
) -> Result<Vec<Layout>> {
    let n = table.len();
    let all = "(all)".to_string();
    // Per table: its cells (labels, count index).
    let mut layouts: Vec<Layout> = Vec::new();
    for cols in specs {
        let mut labels_of: Vec<(Vec<String>, Vec<Option<u32>>)> = Vec::new();
        for c in cols {
            labels_of.push(table.categories(c)?);
        }
        let label = |j: usize, i: usize| -> Option<String> {
            labels_of[j].1[i].map(|k| labels_of[j].0[k as usize].clone())
        };
        let mut cells: BTreeMap<Vec<String>, Vec<u64>> = BTreeMap::new();
        for (i, &unit) in unit_keys.iter().enumerate().take(n) {
            let key: Option<Vec<String>> = (0..cols.len()).map(|j| label(j, i)).collect();
            let Some(key) = key else { continue };
            // The cell, its row and column margins, and the total.
            let mut keys = vec![key.clone(), vec![all.clone(); cols.len()]];
            if cols.len() == 2 {
                keys.push(vec![key[0].clone(), all.clone()]);
                keys.push(vec![all.clone(), key[1].clone()]);
            }
            for k in keys {
                cells.entry(k).or_default().push(unit);
            }
        }
        let name = cols.join("_by_");
        let mut layout = Vec::new();
        for (k, mut units) in cells {
            units.sort_unstable();
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
    Ok(layouts)
}

/// The tables' CSV files and summary, each cell shown or suppressed as protected.
fn descriptive_files(
    specs: &[Vec<String>],
    layouts: &[Layout],
    draft: &occupa_anonymiser::publication::Draft,
    protection: &occupa_anonymiser::publication::Protection,
    min: u64,
) -> (serde_json::Value, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut summary = Vec::new();
    for (cols, layout) in specs.iter().zip(layouts) {
        let name = cols.join("_by_");
        let mut text = cols
            .iter()
            .map(|c| occupa_engine::export::csv_field(c).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        text.push_str(",persons,status\n");
        let mut hidden = 0;
        for (k, i) in layout {
            let shown = protection.shown(draft, *i);
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
    // The tables' own cells: the draft may hold other counts (the cohort's chain).
    let cells: std::collections::BTreeSet<usize> =
        layouts.iter().flatten().map(|(_, i)| *i).collect();
    let count =
        |s: occupa_anonymiser::Status| cells.iter().filter(|&&i| protection.status[i] == s).count();
    (
        serde_json::json!({
            "tables": summary,
            "min_count": min,
            "primary": count(occupa_anonymiser::Status::Primary),
            "secondary": count(occupa_anonymiser::Status::Secondary),
        }),
        files,
    )
}

/// An evaluation's counts as protected: the groups it compares (overall and by
/// subgroup) were counts of the publication; a comparison with fewer than `min` treated or
/// controls is refused, a subgroup whose groups protection hid is published as suppressed,
/// without its estimate; a reason quoting a small count is not published; the analysis
/// table's total is the chain's; every other count field passes the threshold.
fn protect_evaluation(
    v: &mut serde_json::Value,
    groups: &[(String, usize, usize)],
    draft: &occupa_anonymiser::publication::Draft,
    protection: &occupa_anonymiser::publication::Protection,
    chain: &Chain,
    min: u64,
) -> Result<()> {
    let small = |r: &serde_json::Value| {
        ["n_treated", "n_control"]
            .iter()
            .any(|k| r[*k].as_u64().is_some_and(|n| n < min))
    };
    if small(v) {
        refuse!(
            "the comparison has fewer than {min} treated or controls: its results cannot be \
             published (nothing written)"
        );
    }
    // The groups as the draft holds them: hidden ones are withheld, with every figure that
    // would give them back (the effective sample size of the ATT's treated is their count).
    let hidden = |label: &str, r: &serde_json::Value| -> bool {
        groups.iter().any(|(l, t, c)| {
            l == label
                && [(t, "n_treated"), (c, "n_control")].iter().any(|(i, k)| {
                    let shown = protection.shown(draft, **i);
                    shown.is_none() || r[*k].as_u64().is_some_and(|n| Some(n) != shown)
                })
        })
    };
    if hidden("", v) {
        for k in [
            "n_treated",
            "n_control",
            "effective_sample_size",
            "dropped_missing",
        ] {
            v[k] = serde_json::Value::Null;
        }
        v["diagnostics"]["effective_sample_size"]["value"] = serde_json::Value::Null;
    }
    chain.replace_totals(v, draft, protection);
    if let Some(list) = v.get_mut("subgroups").and_then(|g| g.as_array_mut()) {
        for g in list {
            let label = g["group"].as_str().unwrap_or("").to_string();
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
            } else if g["result"].get("n_treated").is_some() && hidden(&label, &g["result"]) {
                g["result"] = serde_json::json!({
                    "suppressed": "its counts are hidden to protect other counts: not published"
                });
            }
        }
    }
    sweep_small_counts(v, min);
    Ok(())
}

/// The study report: question, cohort, results and diagnostics, provenance; every number
/// taken from `results` (already protected) or the tables written beside it.
fn study_report(
    spec: &StudySpec,
    r: &serde_json::Value,
    spec_hash: &str,
    dir: &Path,
    lang: occupa_reports::Lang,
    chart: Option<String>,
) -> Result<occupa_reports::study::StudyReport> {
    use occupa_reports::study::{StudyReport, StudySection, TextTable};
    let it = lang == occupa_reports::Lang::It;
    let w = |i: &str, e: &str| if it { i.to_string() } else { e.to_string() };
    let num = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::Null => w("soppresso", "suppressed"),
            serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            serde_json::Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                let t = format!("{x:.4}");
                if it { t.replace('.', ",") } else { t }
            }
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    let ci = |v: &serde_json::Value| format!("[{}; {}]", num(&v[0]), num(&v[1]));
    let mut sections = vec![StudySection {
        heading: w("Domanda", "Question"),
        text: vec![
            spec.purpose.clone(),
            format!(
                "{}: {}",
                w("Base giuridica", "Legal basis"),
                spec.legal_basis
            ),
        ],
        ..Default::default()
    }];
    let a = &r["analysis"];
    if a.get("persons").is_some() {
        let mut rows = vec![vec![
            w("persone nei dati", "persons in the data"),
            num(&a["persons"]),
        ]];
        for e in a["excluded"].as_array().into_iter().flatten() {
            rows.push(vec![
                format!(
                    "{}: {}",
                    w("escluse", "left out"),
                    e["reason"].as_str().unwrap_or("")
                ),
                num(&e["persons"]),
            ]);
        }
        rows.push(vec![w("nell'analisi", "in the analysis"), num(&a["rows"])]);
        if spec.exposure.is_some() {
            rows.push(vec![w("esposte", "exposed"), num(&a["exposed"])]);
        }
        for (k, v) in a["profiles"].as_object().into_iter().flatten() {
            rows.push(vec![format!("{} {k}", w("profilo", "profile")), num(v)]);
        }
        for (k, v) in a["not_observed"].as_object().into_iter().flatten() {
            rows.push(vec![
                format!(
                    "{} {k}",
                    w("esito non ancora osservato:", "outcome not yet observed:")
                ),
                num(v),
            ]);
        }
        let mut text = vec![format!(
            "{} {}.",
            w("Fonte:", "Source:"),
            a["source"].as_str().unwrap_or("")
        )];
        for note in a["notes"].as_array().into_iter().flatten() {
            text.push(num(note));
        }
        if let Some(u) = a["observed_until"].as_str() {
            text.push(format!(
                "{} {u}.",
                w("Dati osservati fino al", "Data observed until")
            ));
        }
        text.push(format!(
            "{} {}.",
            w(
                "Ogni conteggio inferiore alla soglia è soppresso, con quanto basta perché non sia ricavabile dagli altri; soglia",
                "Every count below the threshold is suppressed, with enough others that it cannot be derived; threshold"
            ),
            spec.min_count
        ));
        sections.push(StudySection {
            heading: w("Coorte", "Cohort"),
            text,
            tables: vec![TextTable {
                title: w("Chi è nell'analisi", "Who is in the analysis"),
                header: vec![String::new(), w("persone", "persons")],
                rows,
            }],
            svg: None,
        });
    }
    let mut results = StudySection {
        heading: w("Risultati", "Results"),
        svg: chart,
        ..Default::default()
    };
    match r["design"].as_str().unwrap_or("") {
        "evaluation" if r.get("robust").is_some() => {
            let rows = ["conventional", "bias_corrected", "robust"]
                .iter()
                .map(|k| {
                    let x = &r[*k];
                    vec![
                        k.replace('_', " "),
                        num(&x["estimate"]),
                        num(&x["se"]),
                        ci(&x["ci95"]),
                        num(&x["p_value"]),
                    ]
                })
                .collect();
            results.text.push(format!(
                "{} {}; {} {}.",
                w("Larghezza di banda", "Bandwidth"),
                num(&r["h"][0]),
                w("osservazioni nella banda", "observations within it"),
                r["n_h"]
            ));
            if let Some(p) = r["density_test"]["p_value"].as_f64() {
                results.text.push(format!(
                    "{} p = {}.",
                    w(
                        "Test di manipolazione della variabile di assegnazione:",
                        "Manipulation test of the running variable:"
                    ),
                    num(&serde_json::json!(p))
                ));
            }
            results.tables.push(TextTable {
                title: w("Effetto alla soglia", "Effect at the cutoff"),
                header: vec![
                    String::new(),
                    w("stima", "estimate"),
                    "SE".into(),
                    w("IC 95 %", "95 % CI"),
                    "p".into(),
                ],
                rows,
            });
        }
        "evaluation" if r.get("estimate").is_some() => {
            results.tables.push(TextTable {
                title: w("Effetto stimato", "Estimated effect"),
                header: vec![
                    w("stimando", "estimand"),
                    w("stima", "estimate"),
                    "SE".into(),
                    w("IC 95 %", "95 % CI"),
                    "p".into(),
                    w("trattati", "treated"),
                    w("controlli", "controls"),
                ],
                rows: vec![vec![
                    format!(
                        "{} ({})",
                        r["estimand"].as_str().unwrap_or("").to_uppercase(),
                        r["method"].as_str().unwrap_or("")
                    ),
                    num(&r["estimate"]),
                    num(&r["se"]),
                    ci(&r["ci95"]),
                    num(&r["p_value"]),
                    num(&r["n_treated"]),
                    num(&r["n_control"]),
                ]],
            });
            let d = &r["diagnostics"];
            let rows = ["balance", "overlap", "effective_sample_size", "kept"]
                .iter()
                .filter(|k| d[**k].is_object())
                .map(|k| {
                    vec![
                        k.replace('_', " "),
                        num(&d[*k]["grade"]),
                        num(&d[*k]["value"]),
                        num(&d[*k]["rule"]),
                    ]
                })
                .collect();
            results.tables.push(TextTable {
                title: format!(
                    "{} ({}: {})",
                    w("Diagnostica", "Diagnostics"),
                    w("complessiva", "overall"),
                    num(&d["overall"])
                ),
                header: vec![
                    String::new(),
                    w("esito", "grade"),
                    w("valore", "value"),
                    w("regola", "rule"),
                ],
                rows,
            });
            let rows = r["balance"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    vec![
                        num(&b["covariate"]),
                        num(&b["smd_before"]),
                        num(&b["smd_after"]),
                    ]
                })
                .collect();
            results.tables.push(TextTable {
                title: w(
                    "Bilanciamento (differenze standardizzate)",
                    "Balance (standardised differences)",
                ),
                header: vec![
                    w("covariata", "covariate"),
                    w("prima", "before"),
                    w("dopo", "after"),
                ],
                rows,
            });
            let rows: Vec<Vec<String>> = r["subgroups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    let x = &g["result"];
                    if let Some(why) = x["suppressed"].as_str().or(x["error"].as_str()) {
                        vec![
                            num(&g["group"]),
                            why.to_string(),
                            String::new(),
                            String::new(),
                            String::new(),
                        ]
                    } else {
                        vec![
                            num(&g["group"]),
                            num(&x["estimate"]),
                            ci(&x["ci95"]),
                            num(&x["n_treated"]),
                            num(&x["n_control"]),
                        ]
                    }
                })
                .collect();
            if !rows.is_empty() {
                results.tables.push(TextTable {
                    title: w("Per sottogruppo", "By subgroup"),
                    header: vec![
                        w("gruppo", "group"),
                        w("stima", "estimate"),
                        w("IC 95 %", "95 % CI"),
                        w("trattati", "treated"),
                        w("controlli", "controls"),
                    ],
                    rows,
                });
            }
        }
        "clustering" => {
            results.text.push(format!(
                "{} {} ({}).",
                w("Profili:", "Profiles:"),
                r["k"],
                r["method"].as_str().unwrap_or("")
            ));
            let rows = r["profiles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        num(&p["cluster"]),
                        num(&p["size"]),
                        num(if it { &p["label"] } else { &p["label_en"] }),
                    ]
                })
                .collect();
            results.tables.push(TextTable {
                title: w("Profili e dimensioni", "Profiles and sizes"),
                header: vec![
                    w("profilo", "profile"),
                    w("persone", "persons"),
                    w("tratti distintivi", "what stands out"),
                ],
                rows,
            });
        }
        _ => {}
    }
    // Tables written beside the results (forecasts, protected counts), as they are.
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .at("reading", dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    for f in files {
        const SHOWN: usize = 60;
        let mut rdr = csv::Reader::from_path(&f)?;
        let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
        let all: Vec<Vec<String>> = rdr
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
            .collect::<std::result::Result<_, _>>()?;
        let name = f
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if all.len() > SHOWN {
            results.text.push(format!(
                "{name}: {} {SHOWN} {} {}.",
                w("le prime", "the first"),
                w("righe di", "rows of"),
                all.len()
            ));
        }
        results.tables.push(TextTable {
            title: name,
            header,
            rows: all.into_iter().take(SHOWN).collect(),
        });
    }
    sections.push(results);
    Ok(StudyReport {
        title: spec.title.clone(),
        subtitle: format!(
            "{} — {} ({})",
            spec.partner,
            spec.id,
            w("studio Occupa", "an Occupa study")
        ),
        lang,
        sections,
        provenance: vec![
            (
                w("specifica (SHA-256)", "spec (SHA-256)"),
                spec_hash.to_string(),
            ),
            (
                w("versione del motore", "engine version"),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                "commit".into(),
                option_env!("OCCUPA_GIT_COMMIT").unwrap_or("-").to_string(),
            ),
        ],
    })
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

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).at("reading", path)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).at("writing", path)
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
        Err(e) => return Err(e).at("reading", &path),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| refusal!("{}: a bad line: {e}", path.display()))?;
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

    /// A protection with nothing in it, for the threshold rule alone.
    fn nothing() -> (
        occupa_anonymiser::publication::Draft,
        occupa_anonymiser::publication::Protection,
    ) {
        use occupa_anonymiser::publication::{Draft, Rule, protect};
        let d = Draft::new("t");
        let p = protect(
            &d,
            &[],
            Rule::new(occupa_anonymiser::MinCount::new(5).unwrap()),
        )
        .unwrap();
        (d, p)
    }

    #[test]
    fn small_subgroups_and_counts_in_reasons_are_suppressed_and_a_small_study_refused() {
        let (d, p) = nothing();
        let mut v = serde_json::json!({
            "n_treated": 40, "n_control": 90, "estimate": 0.1,
            "subgroups": [
                {"group": "a", "result": {"n_treated": 30, "n_control": 50, "estimate": 0.2}},
                {"group": "b", "result": {"n_treated": 4, "n_control": 50, "estimate": 0.9}},
                {"group": "c", "result": {"error": "3 treated and 0 controls: an effect needs both groups"}},
                {"group": "d", "result": {"error": "0 treated and 948 controls: an effect needs both groups"}},
            ],
            "n_h": [3, 40],
        });
        protect_evaluation(&mut v, &[], &d, &p, &Chain::default(), 5).unwrap();
        let g = v["subgroups"].as_array().unwrap();
        assert_eq!(g[0]["result"]["estimate"], 0.2);
        assert!(g[1]["result"]["suppressed"].is_string());
        assert!(g[1]["result"].get("estimate").is_none());
        assert!(g[2]["result"]["suppressed"].is_string());
        assert!(
            g[3]["result"]["error"].is_string(),
            "no count below 5 in it"
        );
        // A count field no draft holds passes the threshold.
        assert_eq!(v["n_h"], serde_json::json!([null, 40]));
        let mut small = serde_json::json!({"n_treated": 4, "n_control": 90});
        assert!(protect_evaluation(&mut small, &[], &d, &p, &Chain::default(), 5).is_err());
    }

    /// The treated are a count of the publication: when protection hides them (a line
    /// holds a small count beside them), the evaluation withholds their number and the
    /// effective sample size that would give it back.
    #[test]
    fn treated_hidden_by_protection_are_withheld_from_the_evaluation() {
        use occupa_anonymiser::publication::{Draft, Rule, protect};
        let mut d = Draft::new("t");
        let t = d.count("treated", (0..40).collect(), false);
        let c = d.count("controls", (100..190).collect(), false);
        let o = d.count("other", (200..203).collect(), false);
        let mut all: Vec<u64> = (0..40).collect();
        all.extend(200..203);
        let a = d.count("all", all, true);
        d.line(vec![a, t, o]);
        let p = protect(
            &d,
            &[],
            Rule::new(occupa_anonymiser::MinCount::new(5).unwrap()),
        )
        .unwrap();
        assert!(
            p.shown(&d, t).is_none(),
            "the line hides the treated beside the small count"
        );
        let mut v = serde_json::json!({
            "n_treated": 40, "n_control": 90, "estimate": 0.1,
            "effective_sample_size": [40.0, 61.2],
        });
        protect_evaluation(
            &mut v,
            &[(String::new(), t, c)],
            &d,
            &p,
            &Chain::default(),
            5,
        )
        .unwrap();
        assert!(
            v["n_treated"].is_null() && v["effective_sample_size"].is_null(),
            "{v}"
        );
        assert_eq!(v["estimate"], 0.1);
    }
}
