//! `occupa`: the command-line tool. See `occupa --help` and DESIGN.md's contract.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use occupa_anonymiser::MinCount;
use occupa_engine::indicators::{Quarter, TenantQuarter, tenant_quarter};
use occupa_engine::ingest::{self, IngestSummary, Progress};
use occupa_engine::instruments::Instruments;
use occupa_engine::pseudonym::Key;
use occupa_engine::schema::Table;
use occupa_engine::simulate::{SimConfig, simulate};
use occupa_engine::store::{Store, TenantId};
use occupa_reports::{Lang, Report};
use rayon::prelude::*;

mod cluster;
mod evaluate;
mod forecast;
mod profile;
use occupa_studies::study;

// Ingestion allocates millions of small strings across threads; mimalloc halves the time
// glibc's allocator spends there (benches/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "occupa",
    version,
    about = "Research analytics for Italian public employment and social services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a pooled population, ingest it for every tenant and write the quarterly report.
    Demo(DemoArgs),
    /// Write CSV files as authorities would export them, plus truth.json.
    Simulate(SimulateArgs),
    /// Validate, pseudonymise and store files for one tenant; prints a JSON summary.
    Ingest(IngestArgs),
    /// Render a report from the store.
    #[command(subcommand)]
    Report(ReportCommand),
    /// A research release of the pooled store: random ids, generalised persons and dates,
    /// k-anonymity and l-diversity over each person and their records, risk-report.json.
    Anonymise {
        /// The store.
        #[arg(long, default_value = "occupa-data")]
        data: PathBuf,
        /// Release policy (TOML: k, l, sensitive, max_suppression, metric, [quasi_identifiers]).
        #[arg(long)]
        policy: PathBuf,
        /// A new folder for the release.
        #[arg(long)]
        out: PathBuf,
    },
    /// Anonymise any CSV table: optimal generalisation for k-anonymity (and l-diversity or
    /// t-closeness), record suppression, a released CSV and a risk report.
    AnonymiseTable(Box<AnonymiseTableArgs>),
    /// Counterfactual impact evaluation: matching, weighting, doubly robust or regression,
    /// with balance, overlap and effective-sample-size diagnostics.
    Evaluate(Box<evaluate::EvaluateArgs>),
    /// Profiles of people: k-means, Gaussian mixtures, latent class analysis or
    /// k-prototypes, with model selection, stability and readable profiles.
    Cluster(Box<cluster::ClusterArgs>),
    /// Forecasts of many series (hires, vacancies) with intervals: ETS, Theta, Comb or the
    /// method that did best in a backtest, with intervals calibrated on held-out errors.
    Forecast(Box<forecast::ForecastArgs>),
    /// The employability index: a logit, probit or tree ensemble of re-employment, fitted
    /// on earlier persons and validated on later ones, kept as versioned scoring rules.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Studies: a TOML file naming who asks and why, a research release, a cohort and one
    /// design; run reproducibly with a manifest and an audit trail.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Manage the pseudonymisation key.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Args)]
struct AnonymiseTableArgs {
    /// Input with a header line: CSV (any separator and encoding), XLSX/ODS or Parquet.
    #[arg(long)]
    input: PathBuf,
    /// The sheet of a workbook input (name or number from 1; the first by default).
    #[arg(long)]
    sheet: Option<String>,
    /// Quasi-identifier columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    qi: Vec<String>,
    /// Sensitive column (needed by --l and --t).
    #[arg(long)]
    sensitive: Option<String>,
    /// Smallest equivalence class released.
    #[arg(long)]
    k: usize,
    /// l-diversity of the sensitive column (a number; see --l-variant).
    #[arg(long)]
    l: Option<f64>,
    /// distinct, entropy or recursive (recursive needs --c).
    #[arg(long, default_value = "distinct")]
    l_variant: String,
    /// c of recursive (c,l)-diversity.
    #[arg(long)]
    c: Option<f64>,
    /// t-closeness of the sensitive column (equal ground distance).
    #[arg(long)]
    t: Option<f64>,
    /// Folder of hierarchy files, DIR/<column>.csv, one row per value, level 0 first.
    #[arg(long)]
    hierarchies: Option<PathBuf>,
    /// A built-in hierarchy, COL=KIND, repeatable; KIND is age, date, municipality,
    /// citizenship, flat (value or *) or ordinal:MIN-MAX:W1,W2 (e.g. --builtin eta=age --builtin
    /// score=ordinal:0-30:5,10).
    #[arg(long)]
    builtin: Vec<String>,
    /// Largest fraction of records that may be suppressed whole.
    #[arg(long, default_value_t = 0.0)]
    max_suppression: f64,
    /// Utility metric to optimise (ARX's definitions): loss, entropy, discernibility,
    /// aecs or precision.
    #[arg(long, default_value = "loss")]
    metric: String,
    /// ARX's generalisation/suppression factor (0.5: both weigh the same).
    #[arg(long, default_value_t = 0.5)]
    gs_factor: f64,
    /// Columns to leave out of the release, comma-separated (identifiers, free text).
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
    /// Release suppressed records with one value hidden, where that keeps the model.
    #[arg(long)]
    local_suppression: bool,
    /// Highest prosecutor risk allowed (default 1/k); a release above it writes nothing.
    #[arg(long)]
    max_risk: Option<f64>,
    /// Risk above which a record counts as at risk in the report (default 1/k).
    #[arg(long)]
    risk_threshold: Option<f64>,
    /// Released CSV.
    #[arg(long)]
    out: PathBuf,
    /// Risk report (JSON).
    #[arg(long)]
    report: PathBuf,
    /// Leave out the rows with a value a built-in hierarchy cannot place (an impossible
    /// date, an unknown municipality) and list them here by line, column and reason (no
    /// values); without it such rows are an error.
    #[arg(long)]
    quarantine: Option<PathBuf>,
    /// Columns released as they are, comma-separated. Every column must be declared:
    /// --qi, --sensitive, --drop or --keep.
    #[arg(long, value_delimiter = ',')]
    keep: Vec<String>,
}

fn anonymise_table(a: AnonymiseTableArgs) -> Result<()> {
    use occupa_anonymiser::csvtable::{TableJob, TableRequest, anonymise_csv};
    let request = TableRequest {
        qi: a.qi,
        sensitive: a.sensitive,
        k: a.k,
        l: a.l,
        l_variant: a.l_variant,
        c: a.c,
        t: a.t,
        hierarchies: a.hierarchies,
        builtin: a.builtin,
        max_suppression: a.max_suppression,
        metric: a.metric,
        gs_factor: a.gs_factor,
        drop: a.drop,
        local_suppression: a.local_suppression,
        max_risk: a.max_risk,
        risk_threshold: a.risk_threshold,
        keep: a.keep,
    };
    let job = TableJob {
        input: a.input,
        sheet: a.sheet,
        rules: request.rules()?,
        out: a.out,
        report: a.report,
        quarantine: a.quarantine,
    };
    let r = anonymise_csv(&job)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "node": r.levels,
            "information_loss": r.information_loss,
            "metric": r.metric,
            "records": r.records,
            "quarantined": r.quarantined,
            "quarantine_file": job.quarantine,
            "suppressed": r.suppressed,
            "suppressed_values": r.suppressed_values,
            "highest_risk": r.risk_after.highest,
            "out": job.out,
            "report": job.report,
            "seconds": r.timings.total_s,
        }))?
    );
    Ok(())
}

#[derive(Args)]
struct KeyArg {
    /// Pseudonymisation key file (64 hex characters); also OCCUPA_KEY_FILE.
    #[arg(long, env = "OCCUPA_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args)]
struct PopulationArgs {
    /// Persons to simulate.
    #[arg(long, default_value_t = 20_000)]
    persons: usize,
    /// Authorities to simulate.
    #[arg(long, default_value_t = 6)]
    tenants: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl PopulationArgs {
    fn config(&self, dirty_rate: f64) -> SimConfig {
        SimConfig {
            persons: self.persons,
            tenants: self.tenants,
            seed: self.seed,
            dirty_rate,
            ..SimConfig::default()
        }
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Store folder.
    #[arg(long, default_value = "occupa-data")]
    data: PathBuf,
    /// Output folder for the report.
    #[arg(long, default_value = "occupa-out")]
    out: PathBuf,
    #[command(flatten)]
    population: PopulationArgs,
    /// Share of dirty rows in the simulated exports.
    #[arg(long, default_value_t = 0.01)]
    dirty: f64,
    /// Report language: it or en.
    #[arg(long, default_value = "it")]
    lang: String,
    #[command(flatten)]
    key: KeyArg,
}

#[derive(Args)]
struct SimulateArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    population: PopulationArgs,
    /// Share of rows made dirty (bad tax codes, dates, answers, duplicates, encodings).
    #[arg(long, default_value_t = 0.0)]
    dirty: f64,
}

#[derive(Args)]
struct IngestArgs {
    /// Store folder.
    #[arg(long)]
    data: PathBuf,
    /// Tenant (authority) identifier.
    #[arg(long)]
    tenant: String,
    /// Table: persons, asso, isa, gol, services, employment, vacancies.
    #[arg(long)]
    table: String,
    /// Files: CSV (any separator and encoding), XLSX/ODS or Parquet.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The sheet of workbook files (name or number from 1; the first by default).
    #[arg(long)]
    sheet: Option<String>,
    /// Folder with instrument definitions overriding the shipped ones.
    #[arg(long)]
    instruments: Option<PathBuf>,
    #[command(flatten)]
    key: KeyArg,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The quarterly report (HTML, PDF, XLSX, CSV tables).
    Quarterly {
        /// Store folder.
        #[arg(long)]
        data: PathBuf,
        /// Quarter, e.g. 2026Q3.
        #[arg(long)]
        period: String,
        /// Only this tenant (default: every tenant, each read through its own scope).
        #[arg(long)]
        tenant: Option<String>,
        /// it or en.
        #[arg(long, default_value = "it")]
        lang: String,
        /// Smallest count published (at least 3 unless --allow-min-count-below-3).
        #[arg(long, default_value_t = 5)]
        min_count: u64,
        /// Accept --min-count 1 or 2: counts of one or two persons would be published,
        /// which statistical offices never do. Only for internal, non-published checks.
        #[arg(long)]
        allow_min_count_below_3: bool,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// The annual report: the year in review, the impact of services A.3–A.6 at 6 and 12
    /// months (by profile), ISA before and after, the audit of adjustments and overrides,
    /// last year's demand forecast against what happened.
    Annual {
        /// Store folder.
        #[arg(long)]
        data: PathBuf,
        /// Year, e.g. 2025.
        #[arg(long)]
        year: i32,
        /// Only this tenant (default: every tenant, each read through its own scope).
        #[arg(long)]
        tenant: Option<String>,
        /// it or en.
        #[arg(long, default_value = "it")]
        lang: String,
        /// Smallest count published (at least 3 unless --allow-min-count-below-3).
        #[arg(long, default_value_t = 5)]
        min_count: u64,
        /// Accept --min-count 1 or 2 (internal checks only).
        #[arg(long)]
        allow_min_count_below_3: bool,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a new random key file (mode 0600); refuses to overwrite.
    New {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

fn bar(msg: String) -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

fn load_key(arg: &KeyArg) -> Result<Key> {
    let path = arg.key_file.as_ref().ok_or_else(|| anyhow!("no pseudonymisation key: pass --key-file FILE or set OCCUPA_KEY_FILE (create one with `occupa key new --out FILE`)"))?;
    Ok(Key::load(path)?)
}

fn parse_lang(s: &str) -> Result<Lang> {
    Lang::parse(s).ok_or_else(|| anyhow!("--lang {s:?}: use it or en"))
}

#[allow(clippy::too_many_arguments)]
fn run_ingest(
    store: &Store,
    inst: &Instruments,
    key: &Key,
    tenant: &TenantId,
    table: Table,
    files: &[PathBuf],
    options: &occupa_engine::read::ReadOptions,
    quiet: bool,
) -> Result<IngestSummary> {
    let pb = bar(format!("{tenant}/{}", table.name()));
    if quiet {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let s = ingest::ingest_with(
        store,
        inst,
        key,
        tenant,
        table,
        files,
        options,
        &Bar(pb.clone()),
    )?;
    pb.finish_and_clear();
    Ok(s)
}

/// The persons taken in charge in the 12 months ending `lag` months before the end of
/// quarter `q` (whole months: for 2026Q3 and a lag of 6, April 2025 to March 2026), with
/// their outcomes at `months`, observed up to the quarter's end.
fn cohort_before(q: Quarter, lag: u32, months: &[u32]) -> occupa_engine::analysis::AnalysisSpec {
    use occupa_engine::analysis::{AnalysisSpec, CohortSpec, OutcomeSpec};
    let after = q.next().start();
    let sub = |m: u32| {
        after
            .checked_sub_months(chrono::Months::new(m))
            .unwrap_or(after)
    };
    AnalysisSpec {
        cohort: CohortSpec {
            intake_from: Some(sub(lag + 12).to_string()),
            intake_to: Some((sub(lag) - chrono::Duration::days(1)).to_string()),
            ..CohortSpec::default()
        },
        outcomes: OutcomeSpec {
            months: months.to_vec(),
            observed_until: Some(q.end().to_string()),
            ..OutcomeSpec::default()
        },
        ..AnalysisSpec::default()
    }
}

/// The case mix the operator ratings adjust for.
const RATING_COVARIATES: [&str; 10] = [
    "age",
    "sex",
    "citizenship_group",
    "C(education)",
    "disability_l68",
    "income_support",
    "social_services_care",
    "gol_a",
    "gol_b",
    "gol_cd",
];

/// Each tenant's operator ratings, and its operators' outcome shifts.
type OperatorAnalyses = (
    Vec<(String, occupa_engine::ratings::Ratings)>,
    Vec<(String, Vec<occupa_engine::ratings::Shift>)>,
);

/// Each tenant's operator ratings and outcome shifts for quarter `q`. One cohort of two
/// years is read: persons taken in charge in the 24 months ending 6 months before the
/// quarter's end, employed 6 months after, and one case-mix model fitted on both years
/// with a term for the year. The ratings are the later 12 months'; the shifts compare
/// them with the 12 months before. A tenant whose data cannot support it is named and
/// left out of the section.
fn operator_ratings(store: &Store, tenants: &[TenantId], q: Quarter) -> OperatorAnalyses {
    use occupa_engine::analysis::from_store;
    use occupa_engine::ratings::{RatingSpec, rate_with_shifts};
    let rating = RatingSpec {
        outcome: "employed_6m".into(),
        covariates: RATING_COVARIATES.map(String::from).to_vec(),
        operator: "gol_operator".into(),
    };
    let (mut rated, mut shifted) = (Vec::new(), Vec::new());
    let mut spec = cohort_before(q, 6, &[6]);
    let later_from = spec.cohort.intake_from.clone().unwrap_or_default();
    spec.cohort.intake_from = cohort_before(q, 18, &[6]).cohort.intake_from;
    let Ok(spec) = spec.check() else {
        return (rated, shifted);
    };
    // The intake month of the later window's first month, as the table writes it.
    let later_month = later_from.get(..7).unwrap_or_default().to_string();
    for t in tenants {
        let built = match from_store(&store.scope(t), &spec) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("operator ratings of {t} left out: {e}");
                continue;
            }
        };
        let Ok((levels, codes)) = built.table.categories("intake_month") else {
            eprintln!("operator ratings of {t} left out: no intake month");
            continue;
        };
        let later: Vec<f64> = codes
            .iter()
            .map(|c| match c {
                Some(c) => f64::from(u8::from(levels[*c as usize] >= later_month)),
                None => f64::NAN,
            })
            .collect();
        // One model of both windows: the later window's ratings and every shift.
        match built
            .table
            .clone()
            .with_numeric_column("later_window", later)
            .and_then(|w| rate_with_shifts(&w, &built.unit_keys, &rating, "later_window"))
        {
            Ok((r, s)) => {
                rated.push((t.to_string(), r));
                shifted.push((t.to_string(), s));
            }
            Err(e) => eprintln!("operator ratings of {t} left out: {e}"),
        }
    }
    (rated, shifted)
}

/// What ingestion did with each tenant's files, every ingestion recorded when the report is
/// made (the quarter's data arrive after it ends): from the store's audit (rows read,
/// stored, quarantined) and its quarantine files (why).
fn source_quality(store: &Store, tenants: &[TenantId]) -> Vec<occupa_reports::SourceQuality> {
    use std::collections::BTreeMap;
    let names: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
    let mut by: BTreeMap<(String, String), occupa_reports::SourceQuality> = BTreeMap::new();
    let audit = std::fs::read_to_string(store.root().join("audit.jsonl")).unwrap_or_default();
    for line in audit.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(t), Some(table)) = (v["tenant"].as_str(), v["table"].as_str()) else {
            continue;
        };
        if v["command"] != "ingest" || !names.contains(&t) {
            continue;
        }
        let e =
            by.entry((t.into(), table.into()))
                .or_insert_with(|| occupa_reports::SourceQuality {
                    tenant: t.into(),
                    table: table.into(),
                    ..Default::default()
                });
        for (k, f) in ["read", "stored", "quarantined"].iter().enumerate() {
            e.rows[k] += v[*f].as_u64().unwrap_or(0);
        }
    }
    // Reasons, from the quarantine files (`table-….csv`: file,row,column,reason,record).
    for t in tenants {
        let Ok(entries) = std::fs::read_dir(store.scope(t).quarantine_dir()) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(table) = name.split('-').next() else {
                continue;
            };
            let Ok(mut rdr) = csv::Reader::from_path(&path) else {
                continue;
            };
            let Some(e) = by.get_mut(&(t.to_string(), table.to_string())) else {
                continue;
            };
            for rec in rdr.records().flatten() {
                let reason = rec.get(3).unwrap_or("").to_lowercase();
                let kind = if reason.contains("duplicate") {
                    "duplicate"
                } else if reason.contains("tax code") || reason.contains("codice fiscale") {
                    "tax_code"
                } else if reason.contains("date") {
                    "date"
                } else if ["not one of", "out of", "outside", "range"]
                    .iter()
                    .any(|w| reason.contains(w))
                {
                    "range"
                } else {
                    "other"
                };
                *e.reasons.entry(kind.into()).or_insert(0) += 1;
            }
        }
    }
    by.into_values().collect()
}

/// Each tenant's outcome cohort for quarter `q`: persons taken in charge in the 12 months
/// ending 12 months before the quarter's end, with their outcomes at 6 and 12 months.
fn outcome_cohorts(
    store: &Store,
    tenants: &[TenantId],
    q: Quarter,
) -> Vec<(String, occupa_engine::analysis::AnalysisTable)> {
    use occupa_engine::analysis::from_store;
    let mut out = Vec::new();
    let Ok(spec) = cohort_before(q, 12, &[6, 12]).check() else {
        return out;
    };
    for t in tenants {
        match from_store(&store.scope(t), &spec) {
            Ok(built) => out.push((t.to_string(), built)),
            Err(e) => eprintln!("employment outcomes of {t} left out: {e}"),
        }
    }
    out
}

/// Labour demand for the quarterly report: each tenant's monthly hires and vacancies by
/// sector and province (the store's series table) up to the quarter's end, pooled; the
/// series that may be published (every month at the threshold, small ones pooled); each
/// forecast 12 months from the quarter's end and 3 months from the previous quarter's
/// end, by the engine's forecast runner (method chosen per series by backtest, intervals
/// calibrated).
fn demand_forecasts(
    store: &Store,
    tenants: &[TenantId],
    period_end: chrono::NaiveDate,
    past_months: usize,
    min: u64,
    lang: Lang,
) -> Option<occupa_reports::demand::Demand> {
    use occupa_engine::columns::{Table, Values};
    use occupa_engine::forecast::runner::ForecastRequest;
    use occupa_reports::demand::{Cells, Demand, DemandSeries, Kind, Level, publishable};
    let month = |d: chrono::NaiveDate| d.format("%Y-%m").to_string();
    let end = month(period_end);
    // The past forecast was made `past_months` before the period's end.
    let prev_end = month(
        (period_end + chrono::Duration::days(1))
            .checked_sub_months(chrono::Months::new(past_months as u32))
            .unwrap_or(period_end)
            - chrono::Duration::days(1),
    );
    let (mut hires, mut vacancies): (Cells, Cells) = Default::default();
    for t in tenants {
        let table = match occupa_engine::analysis::series_table(&store.scope(t)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("the labour demand of {t} left out: {e}");
                continue;
            }
        };
        let (Ok((ml, mc)), Ok((sl, sc)), Ok((pl, pc)), Ok(h), Ok(v)) = (
            table.categories("month"),
            table.categories("sector"),
            table.categories("province"),
            table.numeric("hires"),
            table.numeric("vacancies"),
        ) else {
            continue;
        };
        for r in 0..table.len() {
            let (Some(m), Some(s), Some(p)) = (mc[r], sc[r], pc[r]) else {
                continue;
            };
            let key = (
                ml[m as usize].clone(),
                sl[s as usize].clone(),
                pl[p as usize].clone(),
            );
            if key.0 > end {
                continue;
            }
            *hires.entry(key.clone()).or_default() += h[r];
            *vacancies.entry(key).or_default() += v[r];
        }
    }
    // The months from the first whose totals reach the threshold to the quarter's end.
    let all: std::collections::BTreeSet<String> = hires.keys().map(|k| k.0.clone()).collect();
    let total =
        |c: &Cells, m: &str| -> f64 { c.iter().filter(|(k, _)| k.0 == m).map(|(_, v)| *v).sum() };
    let months: Vec<String> = all
        .into_iter()
        .skip_while(|m| total(&hires, m) < min as f64 || total(&vacancies, m) < min as f64)
        .collect();
    if months.len() < 24 {
        return None;
    }
    let other = if lang == Lang::It { "altri" } else { "other" };
    let mut list: Vec<(Kind, Level, Vec<f64>)> = Vec::new();
    let mut pooled = Vec::new();
    for (kind, cells) in [(Kind::Hires, &hires), (Kind::Vacancies, &vacancies)] {
        let (series, names) = publishable(cells, &months, min as f64, other);
        pooled.extend(names);
        list.extend(series.into_iter().map(|(l, v)| (kind, l, v)));
    }
    pooled.sort();
    pooled.dedup();
    let request = ForecastRequest {
        levels: vec![80.0, 95.0],
        id: vec!["series".into()],
        time: "month".into(),
        value: "value".into(),
        ..ForecastRequest::new(12)
    };
    // One run over every series up to `last` (a month), `horizon` ahead.
    let run = |last: &str, horizon: usize| -> Option<Vec<occupa_engine::forecast::Forecast>> {
        let (mut ids, mut ms, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (_, _, values)) in list.iter().enumerate() {
            for (m, v) in months.iter().zip(values) {
                if m.as_str() <= last {
                    ids.push(Some(format!("s{i:04}")));
                    ms.push(Some(m.clone()));
                    vs.push(*v);
                }
            }
        }
        let table = Table::from_values(
            "the labour demand series",
            vec![
                ("series".into(), Values::Texts(ids)),
                ("month".into(), Values::Texts(ms)),
                ("value".into(), Values::Numbers(vs)),
            ],
        )
        .ok()?;
        let valid = ForecastRequest {
            horizon,
            ..request.clone()
        }
        .check()
        .ok()?;
        let set = valid.series(&table).ok()?;
        let out = valid.run(&set, &|| {}).ok()?;
        // Rows come back by series id.
        let by: std::collections::HashMap<String, occupa_engine::forecast::Forecast> =
            out.rows.into_iter().map(|(id, f, _)| (id, f)).collect();
        (0..list.len())
            .map(|i| by.get(&format!("s{i:04}")).cloned())
            .collect()
    };
    let now = run(&end, 12)?;
    let past = months
        .iter()
        .filter(|m| **m <= prev_end)
        .count()
        .ge(&24)
        .then(|| run(&prev_end, past_months))
        .flatten();
    let next: Vec<String> = (1..=12)
        .filter_map(|k| {
            period_end
                .checked_add_months(chrono::Months::new(k))
                .map(month)
        })
        .collect();
    let series = list
        .into_iter()
        .enumerate()
        .map(|(i, (kind, level, values))| {
            let label = match &level {
                Level::Total => String::new(),
                Level::Sector(s) | Level::Province(s) => s.clone(),
            };
            let actual: Vec<f64> = months
                .iter()
                .zip(&values)
                .filter(|(m, _)| m.as_str() > prev_end.as_str())
                .map(|(_, v)| *v)
                .collect();
            DemandSeries {
                kind,
                level,
                label,
                history: months.iter().cloned().zip(values).collect(),
                forecast: now.get(i).cloned(),
                past: past
                    .as_ref()
                    .and_then(|p| p.get(i).cloned())
                    .map(|f| (f, actual)),
            }
        })
        .collect();
    Some(Demand {
        series,
        levels: vec![80.0, 95.0],
        months: next,
        pooled,
        spec: serde_json::to_value(&request).unwrap_or_default(),
        past_months,
    })
}

/// A fingerprint of the data a report reads: SHA-256 over each stored file's place and
/// SHA-256, in order.
fn data_snapshot(store: &Store, tenants: &[TenantId]) -> Option<String> {
    use occupa_engine::schema::Table as T;
    use sha2::{Digest, Sha256};
    let mut lines = String::new();
    for t in tenants {
        let scope = store.scope(t);
        for table in T::ALL {
            for part in scope.parts(table).ok()? {
                let bytes = std::fs::read(&part).ok()?;
                let name = part.strip_prefix(store.root()).unwrap_or(&part);
                let hash: String = Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                lines.push_str(&format!("{} {hash}\n", name.display()));
            }
        }
    }
    Some(
        Sha256::digest(lines.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Each tenant's intake of quarter `q` and the quarter before, with the first assessments.
fn intake_tables(
    store: &Store,
    tenants: &[TenantId],
    q: Quarter,
) -> Vec<(String, occupa_engine::analysis::AnalysisTable)> {
    use occupa_engine::analysis::{AnalysisSpec, CohortSpec, OutcomeSpec, from_store};
    // Eight quarters: the profiles take the last two, the operators' audit all eight.
    let first = (0..7).fold(q, |x, _| x.prev());
    let spec = AnalysisSpec {
        cohort: CohortSpec {
            intake_from: Some(first.start().to_string()),
            intake_to: Some(q.end().to_string()),
            ..CohortSpec::default()
        },
        outcomes: OutcomeSpec {
            months: vec![6],
            observed_until: Some(q.end().to_string()),
            ..OutcomeSpec::default()
        },
        ..AnalysisSpec::default()
    };
    let Ok(spec) = spec.check() else {
        return Vec::new();
    };
    tenants
        .par_iter()
        .filter_map(|t| match from_store(&store.scope(t), &spec) {
            Ok(built) => Some((t.to_string(), built)),
            Err(e) => {
                eprintln!("the intake of {t} left out: {e}");
                None
            }
        })
        .collect()
}

/// Runs `f`, and with `OCCUPA_TIMING` set says on stderr how long it took (where a
/// report's time goes, for benches/RESULTS.md).
fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    if std::env::var_os("OCCUPA_TIMING").is_some() {
        eprintln!("{name}: {:.2} s", t.elapsed().as_secs_f64());
    }
    out
}

fn write_report(
    store: &Store,
    q: Quarter,
    tenant: Option<&str>,
    lang: Lang,
    min: MinCount,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    use occupa_anonymiser::publication::Rule;
    use occupa_anonymiser::publication::ledger::Ledger;
    let tenants = match tenant {
        Some(t) => vec![TenantId::new(t)?],
        None => store.tenants()?,
    };
    if tenants.is_empty() {
        bail!(
            "the store {} holds no tenant: ingest data first (occupa ingest …) or run occupa demo",
            store.root().display()
        );
    }
    let tq: Vec<TenantQuarter> = timed("indicators", || {
        tenants
            .par_iter()
            .map(|t| tenant_quarter(&store.scope(t), q, 8))
            .collect::<std::result::Result<_, _>>()
    })?;
    // Everything this store has published before: the report is protected against it.
    let ledger = Ledger::open(store.root())?;
    let prior = ledger.priors()?;
    let spin = ProgressBar::new_spinner();
    spin.set_message(format!(
        "protecting the report against itself and {} earlier publications",
        prior.len()
    ));
    spin.enable_steady_tick(std::time::Duration::from_millis(120));
    let scope = tenant.unwrap_or("pooled");
    // The analyses read the store independently: two at a time on two cores.
    let ((demand, (operators, operator_shifts)), (outcomes, (quality, intake))) = rayon::join(
        || {
            rayon::join(
                || {
                    timed("demand", || {
                        demand_forecasts(store, &tenants, q.end(), 3, min.get(), lang)
                    })
                },
                || timed("operators", || operator_ratings(store, &tenants, q)),
            )
        },
        || {
            rayon::join(
                || timed("outcomes", || outcome_cohorts(store, &tenants, q)),
                || {
                    rayon::join(
                        || source_quality(store, &tenants),
                        || timed("intake", || intake_tables(store, &tenants, q)),
                    )
                },
            )
        },
    );
    let mut specs = std::collections::BTreeMap::new();
    let names: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
    specs.insert(
        "indicators".to_string(),
        serde_json::json!({
            "computation": "occupa_engine::indicators::tenant_quarter",
            "quarter": q.to_string(),
            "compared_with": [q.prev().prev().prev().prev().to_string(), q.prev().to_string()],
            "history_quarters": 8,
            "tenants": names,
            "population": occupa_engine::territory::POPULATION_DATE,
        }),
    );
    specs.insert(
        "outcomes".to_string(),
        serde_json::to_value(cohort_before(q, 12, &[6, 12])).unwrap_or_default(),
    );
    specs.insert(
        "operators".to_string(),
        serde_json::json!({
            "cohort": cohort_before(q, 6, &[6]),
            "outcome": "employed_6m",
            "covariates": RATING_COVARIATES,
            "operator": "gol_operator",
            "model": "logit (Firth when a level separates) on this cohort and the 12 months before it, with a term for the window; expected calibrated to the observed total; O/E exact Poisson 95% interval",
            "shifts": {"earlier_cohort": cohort_before(q, 18, &[6]).cohort, "market": "the other operators' median change of O/E", "test": "exact conditional Poisson test of equal O/E (R's poisson.test of two counts)", "flag": "p < 0.002, when the earlier window's persons employed and not employed both reach the threshold"},
        }),
    );
    specs.insert(
        "intake".to_string(),
        serde_json::json!({
            "cohort": {"intake_from": (0..7).fold(q, |x, _| x.prev()).start().to_string(), "intake_to": q.end().to_string()},
            "profiles": occupa_reports::profiles::profile_spec(vec!["asso_q01..asso_q25".into()]),
            "profiles_quarters": [q.prev().to_string(), q.to_string()],
            "operator_audit": {"later": [(0..3).fold(q, |x, _| x.prev()).to_string(), q.to_string()], "earlier": [(0..7).fold(q, |x, _| x.prev()).to_string(), (0..4).fold(q, |x, _| x.prev()).to_string()], "flags": "outside the 99.8% funnel around all operators' share; two-proportion z >= 3.09 on the earlier window"},
        }),
    );
    specs.insert(
        "audit".to_string(),
        serde_json::json!({"source": "the store's audit.jsonl (ingest lines) and quarantine files"}),
    );
    if let Some(d) = &demand {
        specs.insert("demand".to_string(), d.spec.clone());
    }
    let analyses = occupa_reports::Analyses {
        operators,
        operator_shifts,
        outcomes,
        quality,
        intake,
        demand,
        provenance: occupa_reports::Provenance {
            data_snapshot: data_snapshot(store, &tenants),
            engine: format!(
                "occupa {} ({})",
                env!("CARGO_PKG_VERSION"),
                option_env!("OCCUPA_GIT_COMMIT").unwrap_or("commit unknown")
            ),
            specs,
        },
    };
    let published = timed("report (profiles, protection)", || {
        Report::quarterly_with(q, &tq, lang, Rule::new(min), &prior, scope, &analyses)
    })?;
    spin.finish_and_clear();
    commit_report(
        store,
        &published,
        &tenants,
        out,
        "report quarterly",
        &q.to_string(),
        min,
        prior.len(),
    )
}

/// Writes a protected report: refused (nothing written) unless the audit proved every
/// small count protected; then the ledger (first: a crash leaves it claiming a publication
/// that did not happen, never the reverse), the files, and the audit line.
#[allow(clippy::too_many_arguments)]
fn commit_report(
    store: &Store,
    published: &occupa_reports::Published,
    tenants: &[TenantId],
    out: &Path,
    command: &str,
    period: &str,
    min: MinCount,
    priors: usize,
) -> Result<Vec<PathBuf>> {
    use occupa_anonymiser::publication::Rule;
    use occupa_anonymiser::publication::ledger::Ledger;
    let ledger = Ledger::open(store.root())?;
    let audit = &published.protection.audit;
    if !audit.all_protected {
        // Which counts (their keys, never their values), so the breakdown can be found.
        let failing: Vec<String> = audit
            .ranges
            .iter()
            .filter(|r| {
                r.upper.is_some_and(|u| u < r.required.1 as f64 - 1e-6)
                    || r.lower > r.required.0 as f64 + 1e-6
            })
            .map(|r| format!("{} in {}", r.key, r.publication))
            .collect();
        // An earlier report fixes what this one can no longer hide. Seen on a
        // three-authority store (2,500 persons, seed 7): an authority's quarterly report
        // refused after the pooled one of the same quarter was accepted before it.
        let hint = if priors > 0 {
            " An earlier report of the store fixes counts this one cannot hide: reports of \
             single authorities published before the pooled report of the same period \
             leave more to hide."
        } else {
            ""
        };
        bail!(
            "the interval audit could not protect every small count (with the {priors} earlier \
             publications of this store); nothing was written. Raise --min-count or publish \
             fewer breakdowns.{hint} The counts: {}",
            failing
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let staged = ledger.stage(&published.draft, &published.protection, Rule::new(min))?;
    let intent = store.audit_intent(
        &format!("report-{}", staged.name),
        serde_json::json!({
            "command": command,
            "publication": published.report.id,
            "period": period,
            "tenants": tenants.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "out": out,
            "hidden": audit.hidden,
            "prior_publications": audit.prior_publications,
            "all_protected": audit.all_protected,
            "ledger": staged.name,
        }),
        Some(&staged.path),
    )?;
    ledger.commit(staged)?;
    let written = published.report.write_all(out)?;
    store.complete_audit(intent)?;
    Ok(written)
}

/// The services' cohorts of the annual report: each tenant's persons taken in charge in
/// `cohort_year`, exposed to `service` when it started within 90 days of taking charge,
/// persons with another of the report's services in that window left out.
fn service_cohort(cohort_year: i32, service: &str) -> occupa_engine::analysis::AnalysisSpec {
    use occupa_engine::analysis::{AnalysisSpec, CohortSpec, ExposureSpec, Later, OutcomeSpec};
    AnalysisSpec {
        cohort: CohortSpec {
            intake_from: Some(format!("{cohort_year}-01-01")),
            intake_to: Some(format!("{cohort_year}-12-31")),
            ..CohortSpec::default()
        },
        exposure: Some(ExposureSpec {
            service: Some(service.to_string()),
            within_days: Some(90),
            gol_path: None,
            later: Later::Exclude,
            // Against persons with none of the other services: A.3 (the individual action
            // plan) comes with most of the others, so it is left in their comparisons;
            // A.3's own comparison excludes the others.
            exclude_services: occupa_reports::annual::SERVICES
                .iter()
                .filter(|s| **s != service && **s != "A.3")
                .map(|s| s.to_string())
                .collect(),
            name: "exposed".into(),
        }),
        outcomes: OutcomeSpec {
            months: occupa_reports::annual::HORIZONS.to_vec(),
            ..OutcomeSpec::default()
        },
        ..AnalysisSpec::default()
    }
}

/// The persons of the annual report's employability index: taken in charge from
/// [`occupa_reports::profiling::TRAINING_YEARS`] years before the year before `year` to
/// the end of the year before, with employment at 12 months.
fn profiling_cohort(year: i32) -> occupa_engine::analysis::AnalysisSpec {
    use occupa_engine::analysis::{AnalysisSpec, CohortSpec, OutcomeSpec};
    let cohort = year - 1;
    AnalysisSpec {
        cohort: CohortSpec {
            intake_from: Some(format!(
                "{}-01-01",
                cohort - occupa_reports::profiling::TRAINING_YEARS
            )),
            intake_to: Some(format!("{cohort}-12-31")),
            ..CohortSpec::default()
        },
        outcomes: OutcomeSpec {
            months: vec![12],
            ..OutcomeSpec::default()
        },
        ..AnalysisSpec::default()
    }
}

/// The annual report of `year` (see `occupa report annual --help`).
fn write_annual(
    store: &Store,
    year: i32,
    tenant: Option<&str>,
    lang: Lang,
    min: MinCount,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    use occupa_anonymiser::publication::Rule;
    use occupa_anonymiser::publication::ledger::Ledger;
    use occupa_engine::analysis::{AnalysisSpec, CohortSpec, OutcomeSpec, from_store};
    let tenants = match tenant {
        Some(t) => vec![TenantId::new(t)?],
        None => store.tenants()?,
    };
    if tenants.is_empty() {
        bail!(
            "the store {} holds no tenant: ingest data first (occupa ingest …) or run occupa demo",
            store.root().display()
        );
    }
    if !(1990..=2100).contains(&year) {
        bail!("--year {year}: give a calendar year such as 2025");
    }
    let t0 = Instant::now();
    let pb = ProgressBar::new(4 + 3 * tenants.len() as u64 + (tenants.len() * 4) as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message("reading the year");
    let quarters: Vec<Quarter> = (1..=4)
        .map(|k| Quarter::parse(&format!("{year}Q{k}")))
        .collect::<std::result::Result<_, _>>()?;
    // Each authority's data are read apart from the others': in parallel, in order.
    let figures = tenants
        .par_iter()
        .map(|t| -> Result<_> {
            let f = occupa_engine::indicators::quarter_figures(&store.scope(t), &quarters)?;
            pb.inc(1);
            Ok((t.to_string(), f))
        })
        .collect::<Result<Vec<_>>>()?;
    let anyone = figures.iter().any(|(_, fs)| {
        fs.iter().any(|f| {
            !(f.flow_units.inflow.is_empty()
                && f.flow_units.outflow.is_empty()
                && f.placed.is_empty())
        })
    });
    if !anyone {
        pb.finish_and_clear();
        bail!(
            "the store {} records no one taken in charge, leaving or starting a job in \
             {year}: its data do not cover that year; check --year (nothing written)",
            store.root().display()
        );
    }
    pb.set_message("building the cohorts");
    let mut services = Vec::new();
    for service in occupa_reports::annual::SERVICES {
        let spec = service_cohort(year - 1, service).check()?;
        let tables: Vec<_> = tenants
            .par_iter()
            .filter_map(|t| {
                let built = match from_store(&store.scope(t), &spec) {
                    Ok(built) if !built.table.is_empty() => Some((t.to_string(), built)),
                    Ok(_) => None,
                    Err(e) => {
                        pb.suspend(|| eprintln!("the {service} cohort of {t} left out: {e}"));
                        None
                    }
                };
                pb.inc(1);
                built
            })
            .collect();
        services.push((service.to_string(), tables));
    }
    let intake_spec = AnalysisSpec {
        cohort: CohortSpec {
            intake_from: Some(format!("{}-01-01", year - 1)),
            intake_to: Some(format!("{year}-12-31")),
            ..CohortSpec::default()
        },
        outcomes: OutcomeSpec {
            months: vec![6],
            ..OutcomeSpec::default()
        },
        ..AnalysisSpec::default()
    }
    .check()?;
    let year_end = quarters[3].end();
    let profiling_spec = profiling_cohort(year).check()?;
    let read_all = |spec: &occupa_engine::analysis::ValidAnalysis, what: &str| {
        tenants
            .par_iter()
            .filter_map(|t| {
                let built = match from_store(&store.scope(t), spec) {
                    Ok(built) => Some((t.to_string(), built)),
                    Err(e) => {
                        pb.suspend(|| eprintln!("the {what} of {t} left out: {e}"));
                        None
                    }
                };
                pb.inc(1);
                built
            })
            .collect::<Vec<_>>()
    };
    // The labour-demand forecasts beside the intake's reading.
    let ((intake, profiling), demand) = rayon::join(
        || {
            (
                read_all(&intake_spec, "intake"),
                read_all(&profiling_spec, "profiling cohort"),
            )
        },
        || {
            let d = demand_forecasts(store, &tenants, year_end, 12, min.get(), lang);
            pb.inc(2);
            d
        },
    );
    let names: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
    let mut specs = std::collections::BTreeMap::new();
    specs.insert(
        "indicators".to_string(),
        serde_json::json!({
            "computation": "occupa_engine::indicators::quarter_figures",
            "quarters": quarters.iter().map(|q| q.to_string()).collect::<Vec<_>>(),
            "tenants": names,
        }),
    );
    specs.insert(
        "cohorts".to_string(),
        serde_json::json!(
            occupa_reports::annual::SERVICES
                .iter()
                .map(|s| (s.to_string(), service_cohort(year - 1, s)))
                .collect::<std::collections::BTreeMap<_, _>>()
        ),
    );
    specs.insert(
        "intake".to_string(),
        serde_json::to_value(intake_spec_json(year))?,
    );
    specs.insert(
        "profiling_cohort".to_string(),
        serde_json::to_value(profiling_cohort(year))?,
    );
    specs.insert(
        "audit".to_string(),
        serde_json::json!({"source": "the store's audit.jsonl (ingest lines) and quarantine files"}),
    );
    if let Some(d) = &demand {
        specs.insert("demand".to_string(), d.spec.clone());
    }
    let inputs = occupa_reports::annual::AnnualInputs {
        year,
        quarters: figures,
        services,
        intake,
        profiling,
        demand,
        quality: source_quality(store, &tenants),
        provenance: occupa_reports::Provenance {
            data_snapshot: data_snapshot(store, &tenants),
            engine: format!(
                "occupa {} ({})",
                env!("CARGO_PKG_VERSION"),
                option_env!("OCCUPA_GIT_COMMIT").unwrap_or("commit unknown")
            ),
            specs,
        },
    };
    let ledger = Ledger::open(store.root())?;
    let prior = ledger.priors()?;
    pb.set_message(format!(
        "estimating and protecting against {} earlier publications",
        prior.len()
    ));
    let scope = tenant.unwrap_or("pooled");
    let published = Report::annual(&inputs, lang, Rule::new(min), &prior, scope)?;
    pb.inc(1);
    pb.finish_and_clear();
    let written = commit_report(
        store,
        &published,
        &tenants,
        out,
        "report annual",
        &year.to_string(),
        min,
        prior.len(),
    )?;
    eprintln!(
        "annual report {year}: {:.1} s (protection {:.1} s, {} counts hidden)",
        t0.elapsed().as_secs_f64(),
        published.protection.audit.seconds,
        published.protection.audit.hidden
    );
    Ok(written)
}

fn intake_spec_json(year: i32) -> serde_json::Value {
    serde_json::json!({
        "cohort": {"intake_from": format!("{}-01-01", year - 1), "intake_to": format!("{year}-12-31")},
        "isa_follow_up": "each person's last ISA of the intake at least 60 days after the first",
        "adjustments": "gol_adjusted, gol_override, gol_operator of the first GOL assessment",
    })
}

fn demo(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let lang = parse_lang(&a.lang)?;
    let inst = Instruments::builtin()?;
    let key_path = match &a.key.key_file {
        Some(p) => p.clone(),
        None => {
            let name = a
                .data
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "occupa-data".into());
            a.data.with_file_name(format!("{name}.key"))
        }
    };
    let key = if key_path.exists() {
        Key::load(&key_path)?
    } else {
        let k = Key::generate()?;
        if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        k.save_new(&key_path)?;
        eprintln!(
            "created pseudonymisation key {} (mode 0600; keep it outside the store)",
            key_path.display()
        );
        // Read back, so the store sees where the key lives.
        Key::load(&key_path)?
    };
    let exports = a.out.join("simulated-exports");
    let cfg = a.population.config(a.dirty);
    let spin = ProgressBar::new_spinner();
    spin.set_message(format!(
        "simulating {} persons in {} authorities",
        a.population.persons, a.population.tenants
    ));
    spin.enable_steady_tick(std::time::Duration::from_millis(120));
    let sim = simulate(&cfg, &inst, &exports)?;
    spin.finish_and_clear();
    eprintln!(
        "simulated {} persons in {} authorities → {}",
        sim.persons,
        sim.tenants.len(),
        exports.display()
    );

    let store = Store::open(&a.data)?;
    let (mut read, mut stored, mut quarantined) = (0, 0, 0);
    for t in &sim.tenants {
        let tenant = TenantId::new(t)?;
        for table in Table::ALL {
            let file = exports.join(t).join(format!("{}.csv", table.name()));
            let s = run_ingest(
                &store,
                &inst,
                &key,
                &tenant,
                table,
                &[file],
                &Default::default(),
                false,
            )?;
            read += s.read;
            stored += s.stored;
            quarantined += s.quarantined;
        }
    }
    eprintln!(
        "ingested {read} rows: {stored} stored, {quarantined} quarantined (see {}/quarantine/)",
        a.data.display()
    );

    let q = Quarter::of(cfg.end);
    let mut written = write_report(&store, q, None, lang, MinCount::default(), &a.out)?;

    // The example studies: a research release for the pooled one, t01's store for the
    // authority's own.
    eprintln!("making a research release and running the example studies");
    let release = a.out.join("release");
    if release.exists() {
        std::fs::remove_dir_all(&release)
            .with_context(|| format!("replacing {}", release.display()))?;
    }
    let policy: occupa_anonymiser::release::Policy =
        toml::from_str(include_str!("../../anonymiser/policies/research.toml"))?;
    policy.check()?;
    occupa_anonymiser::release::research_release(&store, &policy, &release, &|_, _| {})?;
    for (dir, line) in study::run_examples(&a.data, &release, &a.out.join("studies"))? {
        eprintln!("  {}: {line}", dir.display());
        if dir.exists() {
            written.push(dir);
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "store": a.data,
            "key_file": key_path,
            "period": q.to_string(),
            "rows": {"read": read, "stored": stored, "quarantined": quarantined},
            "written": written,
            "seconds": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        }))?
    );
    Ok(())
}

/// `--min-count` below 3 only with `--allow-min-count-below-3`.
fn check_min_count(min_count: u64, allow_below_3: bool) -> Result<()> {
    if min_count < 3 && !allow_below_3 {
        bail!(
            "--min-count {min_count}: a threshold below 3 publishes counts of one or two \
             persons; use 3 or more (the default is 5), or add \
             --allow-min-count-below-3 for an internal check that will not be published"
        );
    }
    Ok(())
}

fn main() {
    // The protection's LP solver reports some numerical statuses by a panic that the
    // anonymiser catches and reads as a failure (it hides more): not for the terminal.
    occupa_anonymiser::publication::system::quiet_caught_solver_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Simulate(a) => (|| {
            let inst = Instruments::builtin()?;
            let cfg = a.population.config(a.dirty);
            let s = simulate(&cfg, &inst, &a.out)?;
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        })(),
        Command::Ingest(a) => (|| {
            let inst = match &a.instruments {
                Some(d) => Instruments::from_dir(d)?,
                None => Instruments::builtin()?,
            };
            let key = load_key(&a.key)?;
            let table = Table::parse(&a.table).ok_or_else(|| anyhow!("--table {:?}: use one of persons, asso, isa, gol, services, employment, vacancies", a.table))?;
            let tenant = TenantId::new(&a.tenant)?;
            let store = Store::open(&a.data)?;
            let options = occupa_engine::read::ReadOptions {
                sheet: a.sheet.clone(),
            };
            let s = run_ingest(
                &store, &inst, &key, &tenant, table, &a.files, &options, false,
            )?;
            println!("{}", serde_json::to_string(&s)?);
            Ok(())
        })(),
        Command::Report(ReportCommand::Quarterly {
            data,
            period,
            tenant,
            lang,
            min_count,
            allow_min_count_below_3,
            out,
        }) => (|| {
            check_min_count(min_count, allow_min_count_below_3)?;
            let q = Quarter::parse(&period)?;
            let store = Store::open(&data)?;
            let written = write_report(
                &store,
                q,
                tenant.as_deref(),
                parse_lang(&lang)?,
                MinCount::new(min_count)?,
                &out,
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"period": q.to_string(), "written": written})
                )?
            );
            Ok(())
        })(),
        Command::Report(ReportCommand::Annual {
            data,
            year,
            tenant,
            lang,
            min_count,
            allow_min_count_below_3,
            out,
        }) => (|| {
            check_min_count(min_count, allow_min_count_below_3)?;
            let store = Store::open(&data)?;
            let written = write_annual(
                &store,
                year,
                tenant.as_deref(),
                parse_lang(&lang)?,
                MinCount::new(min_count)?,
                &out,
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"year": year, "written": written})
                )?
            );
            Ok(())
        })(),
        Command::AnonymiseTable(a) => anonymise_table(*a),
        Command::Evaluate(a) => evaluate::run(*a),
        Command::Cluster(a) => cluster::run(*a),
        Command::Forecast(a) => forecast::run(*a),
        Command::Profile(c) => profile::run(c),
        Command::Study(c) => study::run(c).map_err(Into::into),
        Command::Anonymise { data, policy, out } => (|| {
            use occupa_anonymiser::release::{Policy, research_release};
            let policy = Policy::from_file(&policy)?;
            let store = Store::open(&data)?;
            let spin = ProgressBar::new_spinner();
            spin.set_message("reading the store");
            spin.enable_steady_tick(std::time::Duration::from_millis(120));
            let r = research_release(&store, &policy, &out, &|nodes, loss| {
                spin.set_message(format!(
                    "searching: {nodes} generalisations tried, information loss {loss:.3}"
                ));
            })?;
            spin.finish_and_clear();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "release_id": r.release_id,
                    "out": out,
                    "persons": r.persons,
                    "released_persons": r.released_persons,
                    "suppressed_persons": r.suppressed_persons,
                    "rows": r.rows,
                    "information_loss": r.information_loss,
                    "highest_risk": r.risk_after.highest,
                    "risk_before": r.risk_before.highest,
                    "k": r.k, "m": r.m, "l": r.l,
                    "seconds": r.search.seconds,
                }))?
            );
            Ok(())
        })(),
        Command::Key(KeyCommand::New { out }) => (|| {
            Key::generate()?.save_new(&out)?;
            println!("{}", out.display());
            Ok(())
        })(),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
