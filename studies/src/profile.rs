//! `occupa profile fit|score`: the employability index. `fit` learns a logit, probit or
//! tree ensemble of re-employment on the earlier persons and validates it on the later
//! ones; with `--effective-from` it becomes a new version of a scoring rule (in the
//! tenant's store, or in a folder for a file). `score` scores persons with the version in
//! effect on the day each was taken in charge, and every score carries its rule, version,
//! model and instrument versions.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use occupa_engine::analysis::{AnalysisSpec, from_release, from_store};
use occupa_engine::columns::Table;
use occupa_engine::profile::glm::Covariance;
use occupa_engine::profile::model::{
    FittedProfile, ModelKind, ProfileReport, ProfileSpec, default_covariates, validation,
};
use occupa_engine::profile::rules::{DriftReport, RuleBook, RuleValidation, ScoringRule};
use occupa_engine::store::{Store, TenantId};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Fit a profiling model on the earlier persons, validate it on the later ones, and
    /// (with --effective-from) keep it as a new version of a scoring rule.
    Fit(Box<FitArgs>),
    /// Score persons with the scoring rule in effect when each was taken in charge.
    Score(Box<ScoreArgs>),
    /// Audit the operators' GOL adjustments and path overrides: rates per operator and
    /// section near the thresholds, against the other operators; the later outcomes of
    /// the persons moved; the risk class against the final path.
    Audit(Box<AuditArgs>),
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The later outcome compared for the persons moved.
    #[arg(long, default_value = "employed_12m")]
    outcome: String,
    /// What makes persons similar, beside the raw section score.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "age,sex,C(education),disability_l68"
    )]
    covariates: Vec<String>,
    /// The scoring rule whose latest version gives the risk classes (skipped if absent).
    #[arg(long, default_value = "employed_12m")]
    rule: String,
    /// With --input: the folder of the rule's versions.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Print the audit as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the audit as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Where the persons come from.
#[derive(Args, Clone)]
pub struct SourceArgs {
    /// A store (with --tenant: your authority's persons) or a research release folder.
    #[arg(long, conflicts_with = "input")]
    data: Option<PathBuf>,
    /// Your authority, for a store.
    #[arg(long)]
    tenant: Option<String>,
    /// Or a table with one row per person: CSV (any separator and encoding, decimal
    /// commas), XLSX/ODS or Parquet.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The sheet of a workbook input.
    #[arg(long)]
    sheet: Option<String>,
}

#[derive(Args)]
pub struct FitArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The 0/1 outcome column (employed_12m, employed_6m, ...).
    #[arg(long, default_value = "employed_12m")]
    outcome: String,
    /// Covariate terms, comma-separated: a column, COL^2, A*B, C(COL) for numbers as
    /// categories; text columns enter as dummies. Default for a store or release: age,
    /// age^2, sex, citizenship group, education, the vulnerability flags, the GOL section
    /// scores and the ASSO and ISA scale scores.
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// logit, probit or boosting (gradient-boosted trees).
    #[arg(long, default_value = "logit")]
    model: String,
    /// Robust (HC0 sandwich) standard errors for the regression.
    #[arg(long)]
    robust: bool,
    /// The column that orders persons in time: a date, a month (2025-01) or a number.
    #[arg(long, default_value = "intake_month")]
    period: String,
    /// First period of the training persons (default: the earliest).
    #[arg(long)]
    train_from: Option<String>,
    /// First period of the validation persons; training uses the persons before it.
    #[arg(long)]
    validate_from: String,
    /// Last period of the validation persons (default: the latest).
    #[arg(long)]
    validate_to: Option<String>,
    /// Pool the levels of a categorical covariate held by fewer training persons.
    #[arg(long, default_value_t = 20)]
    min_level: usize,
    /// Columns to validate by, comma-separated (age_band is made from age).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sex,citizenship_group,age_band"
    )]
    groups: Vec<String>,
    /// Cut-offs of the risk of not being employed that make the risk classes.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75")]
    classes: Vec<f64>,
    /// The risk of not being employed from which a person is flagged, for the fairness
    /// tables (error rates by group, and with a threshold per group).
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Boosting: number of trees.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// Boosting: learning rate.
    #[arg(long, default_value_t = 0.1)]
    learning_rate: f32,
    /// Boosting: leaves per tree.
    #[arg(long, default_value_t = 31)]
    max_leaves: usize,
    /// Keep the model as a new version of the scoring rule, in effect for persons taken in
    /// charge from this day (YYYY-MM-DD); earlier versions are never replaced.
    #[arg(long)]
    effective_from: Option<String>,
    /// The scoring rule's name (default: the outcome).
    #[arg(long)]
    rule: Option<String>,
    /// With --input: the folder of the rule's versions.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// A folder for the results: report.json, coefficients.csv, marginal-effects.csv,
    /// by-group.csv, fairness.csv, reliability.csv, drift.csv, model.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The scoring rule's name (default: employed_12m).
    #[arg(long, default_value = "employed_12m")]
    rule: String,
    /// With --input: the folder of the rule's versions.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Use this version for everyone instead of the one in effect at each intake.
    #[arg(long)]
    version: Option<u32>,
    /// With --input: the column of the day each person was taken in charge (YYYY-MM-DD),
    /// which picks the version; without it, the version in effect on --on.
    #[arg(long)]
    date: Option<String>,
    /// With --input and no --date: the day whose version scores everyone (default today).
    #[arg(long)]
    on: Option<String>,
    /// With --input: the column identifying each row in the output.
    #[arg(long)]
    id: Option<String>,
    /// The CSV of scores to write.
    #[arg(long)]
    out: PathBuf,
}

/// The persons' table and, for a store, each row's pseudonym and intake day.
struct Loaded {
    table: Table,
    store: Option<(Store, TenantId)>,
    ids: Option<Vec<String>>,
    intake: Option<Vec<Option<chrono::NaiveDate>>>,
}

fn load(s: &SourceArgs) -> Result<Loaded> {
    match (&s.data, &s.input) {
        (Some(dir), None) => {
            let analysis = AnalysisSpec::default().check()?;
            if dir.join("store.json").is_file() {
                let Some(t) = &s.tenant else {
                    bail!(
                        "{} is a store: give --tenant (your authority); pooled data leaves a \
                         store only through occupa anonymise",
                        dir.display()
                    );
                };
                let store = Store::open(dir)?;
                let tenant = TenantId::new(t)?;
                if !store.tenants()?.contains(&tenant) {
                    bail!("the store {} has no tenant {t}", dir.display());
                }
                let scope = store.scope(&tenant);
                let built = from_store(&scope, &analysis)?;
                let (ids, intake) = occupa_engine::analysis::persons_of(&scope, &built)?
                    .into_iter()
                    .unzip();
                Ok(Loaded {
                    table: built.table,
                    store: Some((store, tenant)),
                    ids: Some(ids),
                    intake: Some(intake),
                })
            } else if dir.join("risk-report.json").is_file() {
                Ok(Loaded {
                    table: from_release(dir, &analysis)?.table,
                    store: None,
                    ids: None,
                    intake: None,
                })
            } else {
                bail!(
                    "{} is neither a store (store.json) nor a research release \
                     (risk-report.json); for a table use --input",
                    dir.display()
                )
            }
        }
        (None, Some(file)) => {
            if s.tenant.is_some() {
                bail!("--tenant goes with a store (--data), not with --input");
            }
            let table = Table::read_all_with(
                file,
                &occupa_engine::read::ReadOptions {
                    sheet: s.sheet.clone(),
                },
            )?;
            Ok(Loaded {
                table,
                store: None,
                ids: None,
                intake: None,
            })
        }
        _ => bail!("give the persons: --data (a store with --tenant, or a release) or --input"),
    }
}

fn book(loaded: &Loaded, rules: &Option<PathBuf>, name: &str) -> Result<RuleBook> {
    Ok(match (&loaded.store, rules) {
        (Some((store, tenant)), None) => RuleBook::in_store(&store.scope(tenant), name)?,
        (_, Some(dir)) => RuleBook::in_dir(dir, name)?,
        (None, None) => bail!(
            "a scoring rule read from a file or release is kept in a folder: give --rules DIR"
        ),
    })
}

fn instrument_versions() -> Result<BTreeMap<String, String>> {
    let inst = occupa_engine::instruments::Instruments::builtin()?;
    Ok(BTreeMap::from([
        ("asso".to_string(), inst.asso.version.clone()),
        ("isa".to_string(), inst.isa.version.clone()),
        ("gol".to_string(), inst.gol.version.clone()),
    ]))
}

pub fn run(c: ProfileCommand) -> Result<()> {
    match c {
        ProfileCommand::Fit(a) => fit(*a),
        ProfileCommand::Score(a) => score(*a),
        ProfileCommand::Audit(a) => audit(*a),
    }
}

fn fit(a: FitArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let loaded = load(&a.source)?;
    let read_s = t0.elapsed().as_secs_f64();
    let covariates = if a.covariates.is_empty() {
        let d = default_covariates(&loaded.table);
        if d.is_empty() {
            bail!("name the covariates: --covariates age,sex,...");
        }
        d
    } else {
        a.covariates.clone()
    };
    let spec = ProfileSpec {
        outcome: a.outcome.clone(),
        covariates,
        model: ModelKind::parse(&a.model)?,
        covariance: if a.robust {
            Covariance::Robust
        } else {
            Covariance::Model
        },
        period: a.period.clone(),
        train_from: a.train_from.clone(),
        validate_from: Some(a.validate_from.clone()),
        validate_to: a.validate_to.clone(),
        min_level: a.min_level,
        boosting: occupa_engine::profile::ensemble::BoostingSpec {
            iterations: a.trees,
            learning_rate: a.learning_rate,
            max_leaves: a.max_leaves,
            ..Default::default()
        },
        groups: a.groups.clone(),
        classes: a.classes.clone(),
        bins: 10,
        threshold: a.threshold,
    };
    let (fitted, mut report) = spec.fit(&loaded.table)?;
    report.timings.insert("read_s".into(), read_s);
    let mut saved: Option<ScoringRule> = None;
    if let Some(day) = &a.effective_from {
        let name = a.rule.clone().unwrap_or_else(|| a.outcome.clone());
        let book = book(&loaded, &a.rules, &name)?;
        let previous = book.versions()?.pop();
        let drift = match previous {
            Some(prev) => Some(drift_against(&prev, &fitted, &report, &loaded.table)?),
            None => None,
        };
        let periods = BTreeMap::from([
            ("period_column".to_string(), a.period.clone()),
            (
                "train_from".to_string(),
                a.train_from.clone().unwrap_or_else(|| "(earliest)".into()),
            ),
            ("validate_from".to_string(), a.validate_from.clone()),
            (
                "validate_to".to_string(),
                a.validate_to.clone().unwrap_or_else(|| "(latest)".into()),
            ),
        ]);
        saved = Some(book.add(
            fitted.clone(),
            &report,
            day,
            instrument_versions()?,
            periods,
            drift,
        )?);
    }
    let json = result_json(&report, saved.as_ref())?;
    if let Some(out) = &a.out {
        write_outputs(out, &json, &report, &fitted)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_summary(&report, saved.as_ref());
    }
    Ok(())
}

/// The previous version on the new validation persons, beside the new one.
fn drift_against(
    prev: &ScoringRule,
    fitted: &FittedProfile,
    report: &ProfileReport,
    table: &Table,
) -> Result<DriftReport> {
    let old = prev.profile.clone().loaded()?.predict(table)?;
    let new = fitted.predict(table)?;
    let y = table.numeric(&fitted.spec.outcome)?;
    let rows: Vec<usize> = report
        .validation_rows
        .iter()
        .copied()
        .filter(|&i| !old.p[i].is_nan())
        .collect();
    let unscored = report.validation_rows.len() - rows.len();
    if rows.len() < 20 {
        bail!(
            "version {} cannot score the new validation persons ({unscored} have a value it \
             was not fitted on): the drift report needs them",
            prev.version
        );
    }
    let yy: Vec<bool> = rows.iter().map(|&i| y[i] == 1.0).collect();
    let pick = |p: &[f64]| rows.iter().map(|&i| p[i]).collect::<Vec<f64>>();
    // The previous version's scores on its own validation persons (its recorded window of
    // this table) against its scores on the new ones: how far the population it scores
    // has moved. None when its window holds fewer than 20 scored persons here.
    let psi = table
        .categories(&prev.profile.spec.period)
        .ok()
        .and_then(|(levels, codes)| {
            let window = |k: &str| {
                prev.periods
                    .get(k)
                    .filter(|v| !v.starts_with('('))
                    .map(String::as_str)
            };
            let own: Vec<f64> = (0..table.len())
                .filter(|&i| {
                    !old.p[i].is_nan()
                        && codes[i].is_some_and(|c| {
                            occupa_engine::profile::model::in_period(
                                &levels[c as usize],
                                window("validate_from"),
                                window("validate_to"),
                            )
                        })
                })
                .map(|i| old.p[i])
                .collect();
            (own.len() >= 20 && window("validate_from").is_some())
                .then(|| occupa_engine::profile::model::psi(&own, &pick(&old.p)))
        });
    Ok(DriftReport {
        previous_version: prev.version,
        previous: RuleValidation::from(&validation(&pick(&old.p), &yy, 10)?),
        current: RuleValidation::from(&validation(&pick(&new.p), &yy, 10)?),
        psi,
        unscored_by_previous: unscored,
    })
}

fn result_json(report: &ProfileReport, saved: Option<&ScoringRule>) -> Result<serde_json::Value> {
    let mut json = report.to_json()?;
    if let (Some(obj), Some(rule)) = (json.as_object_mut(), saved) {
        obj.insert(
            "rule".into(),
            serde_json::json!({
                "name": rule.name,
                "version": rule.version,
                "effective_from": rule.effective_from,
                "instruments": rule.instruments,
                "drift": rule.drift,
            }),
        );
    }
    Ok(json)
}

fn csv_line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| occupa_engine::export::csv_field(f).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

fn num(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v}")
    }
}

fn write_outputs(
    out: &Path,
    json: &serde_json::Value,
    report: &ProfileReport,
    fitted: &FittedProfile,
) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists: give a new folder for the results",
            out.display()
        );
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".profile-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a folder in {}", parent.display()))?;
    let put = |name: &str, text: String| -> Result<()> {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    put("report.json", serde_json::to_string_pretty(json)?)?;
    put("model.json", serde_json::to_string_pretty(fitted)?)?;
    let mut t = csv_line(&[
        "name".into(),
        "estimate".into(),
        "se".into(),
        "aliased".into(),
    ]);
    for c in &report.coefficients {
        t += &csv_line(&[
            c.name.clone(),
            num(c.estimate),
            num(c.se),
            c.aliased.to_string(),
        ]);
    }
    put("coefficients.csv", t)?;
    let mut t = csv_line(
        &[
            "variable",
            "level",
            "reference",
            "kind",
            "effect",
            "se",
            "lo95",
            "hi95",
            "p_value",
        ]
        .map(String::from),
    );
    for m in &report.marginal_effects {
        t += &csv_line(&[
            m.variable.clone(),
            m.level.clone().unwrap_or_default(),
            m.reference.clone().unwrap_or_default(),
            m.kind.to_string(),
            num(m.effect),
            num(m.se),
            num(m.ci95.0),
            num(m.ci95.1),
            num(m.p_value),
        ]);
    }
    put("marginal-effects.csv", t)?;
    let mut t = csv_line(
        &[
            "column",
            "group",
            "n",
            "observed",
            "predicted",
            "brier",
            "auc",
            "calibration_intercept",
            "calibration_slope",
        ]
        .map(String::from),
    );
    for g in &report.by_group {
        let o = |v: Option<f64>| v.map(num).unwrap_or_default();
        t += &csv_line(&[
            g.column.clone(),
            g.group.clone(),
            g.n.to_string(),
            num(g.observed),
            num(g.predicted),
            num(g.brier),
            o(g.auc),
            o(g.calibration_intercept),
            o(g.calibration_slope),
        ]);
    }
    put("by-group.csv", t)?;
    let mut t = csv_line(
        &[
            "column",
            "group",
            "thresholds",
            "threshold",
            "n",
            "selection_rate",
            "true_positive_rate",
            "false_positive_rate",
            "false_negative_rate",
            "positive_predictive_value",
            "accuracy",
        ]
        .map(String::from),
    );
    for f in &report.fairness {
        for (kind, rates) in [("common", &f.groups), ("group-aware", &f.group_aware)] {
            for r in rates {
                let th = if kind == "common" {
                    f.threshold
                } else {
                    f.group_aware_thresholds
                        .get(&r.group)
                        .copied()
                        .unwrap_or(f64::NAN)
                };
                t += &csv_line(&[
                    f.column.clone(),
                    r.group.clone(),
                    kind.to_string(),
                    num(th),
                    r.n.to_string(),
                    num(r.selection_rate),
                    num(r.true_positive_rate),
                    num(r.false_positive_rate),
                    num(r.false_negative_rate),
                    num(r.positive_predictive_value),
                    num(r.accuracy),
                ]);
            }
        }
    }
    put("fairness.csv", t)?;
    let mut t = csv_line(&["predicted", "observed", "n"].map(String::from));
    for b in &report.validation.reliability {
        t += &csv_line(&[num(b.predicted), num(b.observed), b.n.to_string()]);
    }
    put("reliability.csv", t)?;
    let mut t = csv_line(&["period", "n", "observed", "predicted"].map(String::from));
    for d in &report.drift.by_period {
        t += &csv_line(&[
            d.period.clone(),
            d.n.to_string(),
            num(d.observed),
            num(d.predicted),
        ]);
    }
    put("drift.csv", t)?;
    let tmp = tmp.keep();
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving the results to {}", out.display()))?;
    Ok(())
}

fn print_summary(r: &ProfileReport, saved: Option<&ScoringRule>) {
    let v = &r.validation;
    eprintln!(
        "{:?} of {} on {} persons, validated on {} later persons:",
        r.model, r.outcome, r.n_train, r.n_validate
    );
    eprintln!(
        "  AUC {:.3} [{:.3}, {:.3}] (training {:.3}); Brier {:.4}; calibration slope {:.3}, \
         intercept {:.3}; observed {:.3}, predicted {:.3}; PSI {:.3}",
        v.discrimination.auc,
        v.discrimination.ci95.0,
        v.discrimination.ci95.1,
        r.training.discrimination.auc,
        v.brier,
        v.calibration.slope,
        v.calibration.intercept,
        v.calibration.observed,
        v.calibration.expected,
        r.drift.psi
    );
    for (why, n) in &r.left_out {
        eprintln!("  left out: {n} ({why})");
    }
    if !(0.8..=1.2).contains(&v.calibration.slope) {
        eprintln!(
            "  warning: a calibration slope of {:.2} on the later persons: {}",
            v.calibration.slope,
            if v.calibration.slope < 0.8 {
                "the predictions are too extreme there (over-fitted: fewer covariates or more \
                 training persons)"
            } else {
                "the predictions are too timid there (the risk differs more between persons \
                 than the model says)"
            }
        );
    }
    for n in &r.notes {
        eprintln!("  note: {n}");
    }
    if let Some(rule) = saved {
        eprintln!(
            "  kept as version {} of the scoring rule '{}', in effect from {}",
            rule.version, rule.name, rule.effective_from
        );
        if let Some(d) = &rule.drift {
            eprintln!(
                "  version {} on the same later persons: AUC {:.3}, Brier {:.4}, calibration \
                 slope {:.3}, intercept {:.3}",
                d.previous_version,
                d.previous.auc,
                d.previous.brier,
                d.previous.calibration_slope,
                d.previous.calibration_intercept
            );
            if let Some(psi) = d.psi {
                eprintln!(
                    "  version {}'s scores moved from its own validation persons to these:                      PSI {psi:.3}{}",
                    d.previous_version,
                    if psi > 0.25 {
                        " (a shift that calls for recalibration)"
                    } else if psi > 0.1 {
                        " (a shift to watch)"
                    } else {
                        " (stable)"
                    }
                );
            }
            if d.previous.brier < d.current.brier {
                eprintln!(
                    "  warning: the new version predicts these persons less well than version \
                     {} (Brier {:.4} against {:.4}); both are kept, the new one takes effect \
                     on {}",
                    d.previous_version, d.current.brier, d.previous.brier, rule.effective_from
                );
            }
        }
    }
}

fn score(a: ScoreArgs) -> Result<()> {
    let loaded = load(&a.source)?;
    let book = book(&loaded, &a.rules, &a.rule)?;
    let versions = book.versions()?;
    if versions.is_empty() {
        bail!(
            "no version of the scoring rule '{}' in {}: fit one with occupa profile fit \
             --effective-from DAY",
            a.rule,
            book.dir().display()
        );
    }
    let table = &loaded.table;
    let n = table.len();
    // Each row's day, which picks the version in effect.
    let days: Vec<Option<chrono::NaiveDate>> = match (&loaded.intake, &a.date) {
        (Some(d), _) => d.clone(),
        (None, Some(col)) => {
            let (levels, codes) = table.categories(col)?;
            codes
                .iter()
                .map(|c| {
                    c.and_then(|k| {
                        chrono::NaiveDate::parse_from_str(levels[k as usize].trim(), "%Y-%m-%d")
                            .ok()
                    })
                })
                .collect()
        }
        (None, None) => {
            let on = match &a.on {
                Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| anyhow!("--on {d}: write YYYY-MM-DD"))?,
                None => chrono::Utc::now().date_naive(),
            };
            vec![Some(on); n]
        }
    };
    let ids: Vec<String> = match (&loaded.ids, &a.id) {
        (Some(ids), _) => ids.clone(),
        (None, Some(col)) => {
            let (levels, codes) = table.categories(col)?;
            let ids: Vec<String> = codes
                .iter()
                .map(|c| c.map(|k| levels[k as usize].clone()).unwrap_or_default())
                .collect();
            if ids
                .iter()
                .any(|v| occupa_engine::codice_fiscale::TaxCode::parse(v).is_ok())
            {
                bail!(
                    "column {col} holds tax codes: scores never carry one; ingest the persons \
                     (pseudonyms) or give another identifier"
                );
            }
            ids
        }
        (None, None) => (1..=n).map(|i| i.to_string()).collect(),
    };
    // The versions each row needs, each loaded and run once on the whole table.
    let chosen: Vec<Option<u32>> = days
        .iter()
        .map(|d| match a.version {
            Some(v) => Some(v),
            None => d.and_then(|d| RuleBook::effective_on(&versions, d).map(|r| r.version)),
        })
        .collect();
    if let Some(v) = a.version
        && !versions.iter().any(|r| r.version == v)
    {
        bail!("the scoring rule '{}' has no version {v}", a.rule);
    }
    let mut scores: BTreeMap<u32, occupa_engine::profile::model::Scores> = BTreeMap::new();
    for v in chosen.iter().flatten() {
        if !scores.contains_key(v) {
            let rule = versions
                .iter()
                .find(|r| r.version == *v)
                .ok_or_else(|| anyhow!("no version {v}"))?;
            scores.insert(*v, rule.profile.clone().loaded()?.predict(table)?);
        }
    }
    let outcome = &versions[0].profile.spec.outcome;
    let mut text = csv_line(
        &[
            "person_id",
            "intake_date",
            &format!("p_{outcome}"),
            "risk",
            "class",
            "rule",
            "version",
            "model",
            "instruments",
            "not_scored",
        ]
        .map(String::from),
    );
    let mut by_class: BTreeMap<u8, usize> = BTreeMap::new();
    let mut unscored: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..n {
        let day = days[i].map(|d| d.to_string()).unwrap_or_default();
        let (fields, why) = match chosen[i] {
            None => (
                vec![String::new(); 7],
                Some(if days[i].is_none() {
                    "no intake day".to_string()
                } else {
                    "no version in effect on the intake day".to_string()
                }),
            ),
            Some(v) => {
                let rule = versions
                    .iter()
                    .find(|r| r.version == v)
                    .ok_or_else(|| anyhow!("no version {v}"))?;
                let s = &scores[&v];
                let instruments = rule
                    .instruments
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let model = format!("{:?}", rule.profile.spec.model).to_lowercase();
                match &s.unscored[i] {
                    Some(why) => (
                        vec![
                            String::new(),
                            String::new(),
                            String::new(),
                            rule.name.clone(),
                            v.to_string(),
                            model,
                            instruments,
                        ],
                        Some(why.clone()),
                    ),
                    None => {
                        *by_class.entry(s.class[i]).or_default() += 1;
                        (
                            vec![
                                num(s.p[i]),
                                num(1.0 - s.p[i]),
                                s.class[i].to_string(),
                                rule.name.clone(),
                                v.to_string(),
                                model,
                                instruments,
                            ],
                            None,
                        )
                    }
                }
            }
        };
        if let Some(w) = &why {
            *unscored.entry(w.clone()).or_default() += 1;
        }
        let mut row = vec![ids[i].clone(), day];
        row.extend(fields);
        row.push(why.unwrap_or_default());
        text += &csv_line(&row);
    }
    occupa_engine::store::write_atomic(&a.out, |f| {
        f.write_all(text.as_bytes())
            .map_err(|e| occupa_engine::Error::io(&a.out, e))
    })?;
    eprintln!(
        "{} persons scored into {} ({} versions used); by risk class: {}",
        by_class.values().sum::<usize>(),
        a.out.display(),
        scores.len(),
        by_class
            .iter()
            .map(|(c, k)| format!("{c}: {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (why, k) in unscored {
        eprintln!("  not scored: {k} ({why})");
    }
    Ok(())
}

fn audit(a: AuditArgs) -> Result<()> {
    let loaded = load(&a.source)?;
    let inst = occupa_engine::instruments::Instruments::builtin()?;
    let classes = match book(&loaded, &a.rules, &a.rule) {
        Ok(b) => match b.versions()?.pop() {
            Some(rule) => Some(rule.profile.loaded()?.predict(&loaded.table)?.class),
            None => None,
        },
        Err(_) => None,
    };
    let audit = occupa_engine::profile::audit::audit(
        &loaded.table,
        &inst.gol,
        &a.outcome,
        &a.covariates,
        classes.as_deref(),
    )?;
    let json = serde_json::to_value(&audit)?;
    if let Some(out) = &a.out {
        let text = serde_json::to_vec_pretty(&json)?;
        occupa_engine::store::write_atomic(out, |f| {
            f.write_all(&text)
                .map_err(|e| occupa_engine::Error::io(out, e))
        })?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let flagged: Vec<_> = audit.sections.iter().filter(|s| s.flagged).collect();
    eprintln!(
        "{} operator × section cells audited (plafond ±{}); {} stand out:",
        audit.sections.len(),
        audit.plafond,
        flagged.len()
    );
    for s in flagged {
        eprintln!(
            "  {} section {}: {} of {} persons near the threshold adjusted ({:.1} % against \
             {:.1} % for the others; p = {:.1e}), {} across it, mean distance {:.1}",
            s.operator,
            s.section,
            s.adjusted_near,
            s.near,
            100.0 * s.rate,
            100.0 * s.others_rate,
            s.p_value,
            s.crossed,
            s.mean_distance.unwrap_or(f64::NAN)
        );
    }
    for o in audit.overrides.iter().filter(|o| o.flagged) {
        eprintln!(
            "  {} overrides the path for {} of {} persons ({:.1} % against {:.1} %)",
            o.operator,
            o.overridden,
            o.assessed,
            100.0 * o.rate,
            100.0 * o.others_rate
        );
    }
    for m in &audit.outcomes {
        match m.effect {
            Some((e, _, ci)) => eprintln!(
                "  section {}: {} moved, {} not moved near the threshold; effect of being moved \
                 on {}: {:+.3} [{:+.3}, {:+.3}]",
                m.section, m.moved, m.not_moved, a.outcome, e, ci[0], ci[1]
            ),
            None => eprintln!(
                "  section {}: {} moved, {} not moved: {}",
                m.section,
                m.moved,
                m.not_moved,
                m.note.as_deref().unwrap_or("")
            ),
        }
    }
    Ok(())
}
