//! The annual report (`occupa report annual --year`): the year in review (flows,
//! placements and physical indicators by quarter), the impact of the main services
//! (A.3–A.6) on employment at 6 and 12 months with graded diagnostics and effects by
//! occupability profile, ISA before and after for the persons assessed twice, the audit of
//! the operators' ±3 adjustments and path overrides, the employability index checked on
//! the year before (`crate::profiling`), and last year's labour-demand forecast against
//! what happened.
//!
//! Every count (persons in a flow, the treated and controls of a comparison, the persons
//! assessed twice, an operator's assessments) is a count of one publication, protected
//! with the store's earlier publications; a figure computed from counts (a share, a mean,
//! an effect) is shown only when the counts under it are, and an effect only when its
//! groups are large enough and its diagnostics do not fail.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use occupa_anonymiser::publication::{Draft, Prior, Rule, protect};
use occupa_engine::analysis::AnalysisTable;
use occupa_engine::causal::evaluate::{Check, Evaluation, Grade};
use occupa_engine::causal::runner::{Design, EvaluationOutput, EvaluationSpec};
use occupa_engine::cluster::run::cluster_table;
use occupa_engine::columns::{Table, Values};
use occupa_engine::indicators::{PeriodFigures, Quarter, Units};

use crate::render::{fmt_count, fmt_figure};
use crate::{
    FigureTable, Lang, Layout, ProtectionSummary, Provenance, Published, Report, Section,
    SourceQuality, pooled_count, union,
};

/// The services whose impact the report estimates (seed 003: guidance, counselling,
/// accompaniment and traineeships, matching).
pub const SERVICES: [&str; 4] = ["A.3", "A.4", "A.5", "A.6"];

/// What the effects adjust for: the intake's characteristics, its GOL scores and path.
pub const EFFECT_COVARIATES: [&str; 11] = [
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
    "C(gol_path)",
];

/// Fewest treated, and fewest controls, for an effect to be estimated: below it the
/// propensity model and the interval are not reliable, whatever the threshold of
/// publication.
pub const MIN_EFFECT_GROUP: usize = 30;

/// Months after taking charge at which employment is compared.
pub const HORIZONS: [u32; 2] = [6, 12];

/// z of the two-sided 99.8 % limits (the funnel's outer limits, Spiegelhalter 2005).
const Z998: f64 = 3.090_232;

/// What the annual report is built from: the studies crate reads the store, this module
/// estimates, lays out and protects.
#[derive(Debug, Clone, Default)]
pub struct AnnualInputs {
    /// The year.
    pub year: i32,
    /// Each tenant's four quarters of the year (flows, indicators, placements).
    pub quarters: Vec<(String, Vec<PeriodFigures>)>,
    /// Each service with each tenant's analysis table: the persons taken in charge in the
    /// year before, `exposed` when the service started within 90 days of taking charge,
    /// the persons with another of the services in that window left out, employment at 6
    /// and 12 months.
    pub services: Vec<(String, Vec<(String, AnalysisTable)>)>,
    /// Each tenant's intake of the year before and of the year (first ISA and follow-up,
    /// GOL path, adjustment, override, operator).
    pub intake: Vec<(String, AnalysisTable)>,
    /// Each tenant's persons taken in charge from three years before the year before to
    /// the year before, with employment at 12 months: the employability index is fitted on
    /// the earlier years and checked on the last (see [`crate::profiling`]).
    pub profiling: Vec<(String, AnalysisTable)>,
    /// Labour demand, with the forecast made a year before the year's end.
    pub demand: Option<crate::demand::Demand>,
    /// What ingestion did.
    pub quality: Vec<SourceQuality>,
    /// Where the tables come from.
    pub provenance: Provenance,
}

/// One estimated comparison: service, horizon, profile (none overall), the counts of its
/// treated and controls in the draft, and the estimate or why there is none.
struct EffectRow {
    service: String,
    horizon: u32,
    profile: Option<String>,
    counts: Option<(usize, usize)>,
    estimate: Result<EffectFigures, Withheld>,
}

struct EffectFigures {
    att: f64,
    lo: f64,
    hi: f64,
    p: f64,
    grade: Grade,
    /// The checks that warned (name, value).
    warned: Vec<(&'static str, f64)>,
}

/// Why an effect is not shown.
enum Withheld {
    /// Fewer than [`MIN_EFFECT_GROUP`] treated or controls.
    Small,
    /// The diagnostics failed: the checks that did, with their values.
    Failed(Vec<(&'static str, f64)>),
    /// The estimator could not run.
    Error,
    /// No person of the cohort had the service.
    NoData,
}

fn check_name(key: &str, lang: Lang) -> String {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    match key {
        "balance" => t("bilanciamento (|SMD| max)", "balance (max |SMD|)"),
        "overlap" => t("sovrapposizione", "overlap"),
        "effective_sample_size" => t(
            "ampiezza effettiva dei controlli",
            "controls' effective size",
        ),
        _ => t(
            "quota stimata della popolazione",
            "share of the population estimated",
        ),
    }
}

fn graded(
    d: &occupa_engine::causal::evaluate::Diagnostics,
    grade: Grade,
) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, c: &Check| {
        if c.grade == grade {
            out.push((name, c.value));
        }
    };
    add("balance", &d.balance);
    if let Some(o) = &d.overlap {
        add("overlap", o);
    }
    add("effective_sample_size", &d.effective_sample_size);
    add("kept", &d.kept);
    out
}

fn figures_of(ev: &Evaluation) -> Result<EffectFigures, Withheld> {
    let d = &ev.diagnostics;
    if d.overall == Grade::Fail {
        return Err(Withheld::Failed(graded(d, Grade::Fail)));
    }
    let e = &ev.effect;
    if !e.estimate.is_finite() || !e.se.is_finite() {
        return Err(Withheld::Error);
    }
    Ok(EffectFigures {
        att: e.estimate,
        lo: e.ci95[0],
        hi: e.ci95[1],
        p: e.p_value,
        grade: d.overall,
        warned: graded(d, Grade::Warn),
    })
}

/// The column a model term reads (`C(education)` reads `education`).
fn column_of(term: &str) -> &str {
    term.strip_prefix("C(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(term)
}

/// The occupability profile of each person of the cohorts (by unit key): latent classes of
/// the ASSO answers of every distinct person across the services' tables, 2 to 5 classes
/// by BIC, narrowing when the larger numbers are not identified. With the labels of the
/// classes in the report's language.
fn fit_profiles(
    services: &[(String, Vec<(String, AnalysisTable)>)],
    lang: Lang,
) -> Option<(HashMap<u64, usize>, Vec<String>)> {
    let first = services.iter().flat_map(|s| &s.1).next()?;
    let answers: Vec<String> = first
        .1
        .table
        .headers()
        .iter()
        .filter(|h| h.starts_with("asso_q"))
        .cloned()
        .collect();
    if answers.is_empty() {
        return None;
    }
    let mut seen: HashMap<u64, ()> = HashMap::new();
    let mut keys = Vec::new();
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); answers.len()];
    for (_, tables) in services {
        for (_, built) in tables {
            let values: Vec<&[f64]> = answers
                .iter()
                .filter_map(|c| built.table.numeric(c).ok())
                .collect();
            if values.len() != answers.len() {
                continue;
            }
            for (row, &key) in built.unit_keys.iter().enumerate() {
                if seen.insert(key, ()).is_some() || values.iter().all(|v| v[row].is_nan()) {
                    continue;
                }
                keys.push(key);
                for (c, v) in cols.iter_mut().zip(&values) {
                    c.push(v[row]);
                }
            }
        }
    }
    if keys.len() < 50 {
        return None;
    }
    let table = Table::from_values(
        "the cohort's ASSO answers",
        answers
            .iter()
            .cloned()
            .zip(cols.into_iter().map(Values::Numbers))
            .collect(),
    )
    .ok()?;
    for top in (2..=5).rev() {
        let mut spec = crate::profiles::profile_spec(answers.clone());
        spec.k_range = Some(format!("2..{top}"));
        if let Ok(report) = spec.check().and_then(|s| cluster_table(&table, &s)) {
            let map = keys
                .iter()
                .zip(&report.labels)
                .filter_map(|(k, l)| l.map(|l| (*k, l)))
                .collect();
            let labels = report
                .profiles
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "{} {}: {}",
                        lang.t("Profilo", "Profile"),
                        i + 1,
                        crate::profiles::dimension_label(&p.z, &answers, lang).unwrap_or_else(
                            || if lang == Lang::It {
                                p.label.clone()
                            } else {
                                p.label_en.clone()
                            }
                        )
                    )
                })
                .collect();
            return Some((map, labels));
        }
    }
    None
}

/// The services' tables pooled over tenants (a `tenant` column, adjusted for when there
/// are several), with each person's profile as `profile_class`.
fn pooled_table(
    tables: &[(String, AnalysisTable)],
    profiles: Option<&HashMap<u64, usize>>,
) -> Option<(Table, Vec<u64>, bool)> {
    let parts: Vec<&Table> = tables.iter().map(|(_, b)| &b.table).collect();
    let mut table = Table::stack("the services' cohorts of every authority", &parts).ok()?;
    let tenant: Vec<Option<String>> = tables
        .iter()
        .flat_map(|(t, b)| std::iter::repeat_n(Some(t.clone()), b.table.len()))
        .collect();
    let keys: Vec<u64> = tables
        .iter()
        .flat_map(|(_, b)| b.unit_keys.clone())
        .collect();
    table = table.with_text_column("tenant", tenant).ok()?;
    let class: Vec<Option<String>> = keys
        .iter()
        .map(|k| profiles.and_then(|m| m.get(k)).map(|c| (c + 1).to_string()))
        .collect();
    let with_profiles = profiles.is_some();
    table = table.with_text_column("profile_class", class).ok()?;
    Some((table, keys, with_profiles))
}

fn sorted(mut v: Units) -> Units {
    v.sort_unstable();
    v.dedup();
    v
}

/// Estimates every service's effect at each horizon, overall and by profile, and adds the
/// compared groups to the draft (as each authority's parts, since an authority's own
/// annual report publishes them).
fn effects(
    inputs: &AnnualInputs,
    draft: &mut Draft,
    lang: Lang,
) -> (Vec<EffectRow>, Vec<String>, serde_json::Value) {
    let profiles = fit_profiles(&inputs.services, lang);
    let labels = profiles.as_ref().map(|p| p.1.clone()).unwrap_or_default();
    let mut rows = Vec::new();
    let mut specs = Vec::new();
    for (service, tables) in &inputs.services {
        let pooled = pooled_table(tables, profiles.as_ref().map(|p| &p.0));
        for h in HORIZONS {
            let outcome = format!("employed_{h}m");
            let mut covariates: Vec<String> = EFFECT_COVARIATES.map(String::from).to_vec();
            if tables.len() > 1 {
                covariates.push("C(tenant)".into());
            }
            let mut spec = EvaluationSpec::new(Design::Ipw, Some("exposed"), &outcome);
            spec.covariates = covariates.clone();
            spec.estimand = Some("att".into());
            spec.by = profiles.as_ref().map(|_| "profile_class".to_string());
            specs.push(
                serde_json::json!({"service": service, "horizon_months": h, "evaluation": &spec}),
            );
            let Some((table, keys, _)) = &pooled else {
                rows.push(EffectRow {
                    service: service.clone(),
                    horizon: h,
                    profile: None,
                    counts: None,
                    estimate: Err(Withheld::NoData),
                });
                continue;
            };
            // The rows the estimator uses (listwise deletion on every column it reads),
            // as the persons of each group and each authority.
            let mut used: Vec<&str> = vec!["exposed", &outcome];
            used.extend(covariates.iter().map(|c| column_of(c)));
            let complete = table
                .complete_rows(used.iter().copied())
                .unwrap_or_default();
            let exposed = table
                .numeric("exposed")
                .map(<[f64]>::to_vec)
                .unwrap_or_default();
            let (plevels, pcodes) = table.categories("profile_class").unwrap_or_default();
            let (tlevels, tcodes) = table.categories("tenant").unwrap_or_default();
            let group = |treated: bool, class: Option<&str>| -> Vec<(String, Units)> {
                tlevels
                    .iter()
                    .enumerate()
                    .map(|(ti, tname)| {
                        let units = (0..keys.len())
                            .filter(|&r| {
                                complete.get(r) == Some(&true)
                                    && tcodes.get(r).copied().flatten() == Some(ti as u32)
                                    && (exposed.get(r) == Some(&1.0)) == treated
                                    && class.is_none_or(|c| {
                                        pcodes
                                            .get(r)
                                            .copied()
                                            .flatten()
                                            .map(|k| plevels[k as usize].as_str())
                                            == Some(c)
                                    })
                            })
                            .map(|r| keys[r])
                            .collect();
                        (tname.clone(), sorted(units))
                    })
                    .collect()
            };
            let size = |parts: &[(String, Units)]| parts.iter().map(|p| p.1.len()).sum::<usize>();
            let register = |draft: &mut Draft,
                            class: &str,
                            t: Vec<(String, Units)>,
                            c: Vec<(String, Units)>| {
                (
                    pooled_count(
                        draft,
                        &format!("effects/{service}/{h}m/{class}/treated"),
                        t,
                        false,
                    ),
                    pooled_count(
                        draft,
                        &format!("effects/{service}/{h}m/{class}/controls"),
                        c,
                        false,
                    ),
                )
            };
            let treated = group(true, None);
            let controls = group(false, None);
            let small = size(&treated) < MIN_EFFECT_GROUP || size(&controls) < MIN_EFFECT_GROUP;
            let no_data = size(&treated) == 0;
            let counts = register(draft, "all", treated, controls);
            let result = if small {
                None
            } else {
                match spec.check().and_then(|v| v.run(table)) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // The engine's messages name columns and reasons, never a value of
                        // a table built from a store.
                        eprintln!("the effect of {service} at {h} months was not estimated: {e}");
                        None
                    }
                }
            };
            let ev = match &result {
                Some(EvaluationOutput::Adjusted(e)) => Some(e.as_ref()),
                _ => None,
            };
            rows.push(EffectRow {
                service: service.clone(),
                horizon: h,
                profile: None,
                counts: Some(counts),
                estimate: match ev {
                    _ if no_data => Err(Withheld::NoData),
                    _ if small => Err(Withheld::Small),
                    Some(e) => figures_of(e),
                    None => Err(Withheld::Error),
                },
            });
            // By profile: each class's groups (the classes partition the compared rows).
            let mut class_counts = Vec::new();
            for (k, label) in labels.iter().enumerate() {
                let class = (k + 1).to_string();
                let t = group(true, Some(&class));
                let c = group(false, Some(&class));
                let small = size(&t) < MIN_EFFECT_GROUP || size(&c) < MIN_EFFECT_GROUP;
                // The classes are fitted on the pooled cohort: no authority's own report
                // publishes these groups, so they are counted whole, without parts.
                let whole = |parts: Vec<(String, Units)>| union(parts.iter().map(|p| &p.1));
                let counts = (
                    draft.count(
                        &format!("effects/{service}/{h}m/profile {class}/treated"),
                        whole(t),
                        false,
                    ),
                    draft.count(
                        &format!("effects/{service}/{h}m/profile {class}/controls"),
                        whole(c),
                        false,
                    ),
                );
                class_counts.push(counts);
                let sub = ev.and_then(|e| {
                    e.subgroups
                        .iter()
                        .find(|s| s.group == format!("profile_class={class}"))
                });
                rows.push(EffectRow {
                    service: service.clone(),
                    horizon: h,
                    profile: Some(label.clone()),
                    counts: Some(counts),
                    estimate: match sub.map(|s| &s.result) {
                        _ if small => Err(Withheld::Small),
                        Some(Ok(e)) => figures_of(e),
                        _ => Err(Withheld::Error),
                    },
                });
            }
            if !class_counts.is_empty() {
                for pick in [0, 1] {
                    let mut line: Vec<usize> = class_counts
                        .iter()
                        .map(|c| if pick == 0 { c.0 } else { c.1 })
                        .collect();
                    line.push(if pick == 0 { counts.0 } else { counts.1 });
                    draft.line(line);
                }
            }
        }
    }
    (rows, labels, serde_json::Value::Array(specs))
}

/// Persons of the year's intake assessed with ISA twice: per dimension, the persons with
/// both scores (a count) and the sums behind the means and the paired interval.
struct IsaRow {
    label: String,
    count: usize,
    n: usize,
    before: f64,
    after: f64,
    diff: f64,
    sd: f64,
}

struct IsaCounts {
    rows: Vec<IsaRow>,
    /// Improved, unchanged, worsened, total (mean of the dimensions).
    change: [usize; 4],
}

fn in_year(table: &AnalysisTable, year: i32) -> Vec<bool> {
    let Ok((levels, codes)) = table.table.categories("intake_month") else {
        return vec![false; table.table.len()];
    };
    let y = format!("{year}-");
    codes
        .iter()
        .map(|c| c.is_some_and(|c| levels[c as usize].starts_with(&y)))
        .collect()
}

fn isa_counts(inputs: &AnnualInputs, draft: &mut Draft, lang: Lang) -> Option<IsaCounts> {
    let inst = occupa_engine::instruments::Instruments::builtin().ok()?;
    let mut rows = Vec::new();
    let mut change_parts: [Vec<(String, Units)>; 3] = Default::default();
    let mut any = false;
    for g in &inst.isa.groups {
        let (c0, c1) = (format!("isa_{}", g.id), format!("isa2_{}", g.id));
        let mut parts = Vec::new();
        let mut d = Vec::new();
        let (mut s0, mut s1) = (0.0, 0.0);
        for (tenant, built) in &inputs.intake {
            let (Ok(a), Ok(b)) = (built.table.numeric(&c0), built.table.numeric(&c1)) else {
                parts.push((tenant.clone(), Vec::new()));
                continue;
            };
            let year = in_year(built, inputs.year);
            let mut units = Vec::new();
            for r in 0..a.len() {
                if year[r] && a[r].is_finite() && b[r].is_finite() {
                    units.push(built.unit_keys[r]);
                    d.push(b[r] - a[r]);
                    s0 += a[r];
                    s1 += b[r];
                }
            }
            parts.push((tenant.clone(), sorted(units)));
        }
        let n = d.len();
        any |= n > 0;
        let diff = d.iter().sum::<f64>() / n.max(1) as f64;
        let sd = if n > 1 {
            (d.iter().map(|x| (x - diff).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        let count = pooled_count(draft, &format!("isa/{}/assessed_twice", g.id), parts, false);
        rows.push(IsaRow {
            label: if lang == Lang::It {
                g.label_it.clone()
            } else {
                g.label_en.clone()
            },
            count,
            n,
            before: s0 / n.max(1) as f64,
            after: s1 / n.max(1) as f64,
            diff,
            sd,
        });
    }
    if !any {
        return None;
    }
    // Improved, unchanged or worsened on the mean of the dimensions.
    for (tenant, built) in &inputs.intake {
        let year = in_year(built, inputs.year);
        let mut sets: [Units; 3] = Default::default();
        let cols: Vec<(&[f64], &[f64])> = inst
            .isa
            .groups
            .iter()
            .filter_map(|g| {
                Some((
                    built.table.numeric(&format!("isa_{}", g.id)).ok()?,
                    built.table.numeric(&format!("isa2_{}", g.id)).ok()?,
                ))
            })
            .collect();
        for r in 0..built.table.len() {
            let pairs: Vec<(f64, f64)> = cols
                .iter()
                .map(|(a, b)| (a[r], b[r]))
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .collect();
            if !year[r] || pairs.is_empty() {
                continue;
            }
            let m = pairs.iter().map(|(a, b)| b - a).sum::<f64>() / pairs.len() as f64;
            // Half a point on the 0–100 scale: the scores move by 2.5 per answer step.
            let k = if m > 0.5 {
                0
            } else if m < -0.5 {
                2
            } else {
                1
            };
            sets[k].push(built.unit_keys[r]);
        }
        for (k, s) in sets.into_iter().enumerate() {
            change_parts[k].push((tenant.clone(), sorted(s)));
        }
    }
    let all: Vec<(String, Units)> = (0..inputs.intake.len())
        .map(|i| {
            let t = change_parts[0][i].0.clone();
            (t, union(change_parts.iter().map(|p| &p[i].1)))
        })
        .collect();
    let names = ["improved", "unchanged", "worsened"];
    let mut change = [0usize; 4];
    for (k, parts) in change_parts.into_iter().enumerate() {
        change[k] = pooled_count(draft, &format!("isa/mean/{}", names[k]), parts, false);
    }
    change[3] = pooled_count(draft, "isa/mean/assessed_twice", all, true);
    draft.line(change.to_vec());
    Some(IsaCounts { rows, change })
}

/// One operator's assessments, adjusted and overridden, in the year and the year before.
struct AuditRow {
    tenant: String,
    operator: String,
    /// [year before, year] × [assessed, adjusted, overridden] as counts.
    counts: [[usize; 3]; 2],
    raw: [[u64; 3]; 2],
}

/// Each operator's GOL assessments, adjusted and overridden, in two windows of the intake
/// (`window` gives, for a table, which rows fall in the earlier one and in the later one).
/// The later window's counts are registered in the draft (`period` names it in the keys):
/// every operator's with the totals and their lines when `all` (the annual audit), else
/// only the operators flagged on the raw counts ([`raw_flags`]: the quarterly report lists
/// those alone, and a count registered is a count the ledger holds as published). The
/// earlier window drives the sudden-shift flag alone, which names no figure.
pub(crate) fn audit_counts(
    intake: &[(String, AnalysisTable)],
    window: &dyn Fn(&AnalysisTable) -> [Vec<bool>; 2],
    period: &str,
    all: bool,
    min: u64,
    draft: &mut Draft,
) -> AuditCounts {
    let kinds = ["assessed", "adjusted", "overridden"];
    let mut totals_parts: [[Vec<(String, Units)>; 3]; 2] = Default::default();
    let mut raw_total = [[0u64; 3]; 2];
    let mut found: Vec<(String, String, [[Units; 3]; 2])> = Vec::new();
    for (tenant, built) in intake {
        let t = &built.table;
        let (Ok(path), Ok(adj), Ok(ovr), Ok((olevels, ocodes))) = (
            t.numeric("gol_path"),
            t.numeric("gol_adjusted"),
            t.numeric("gol_override"),
            t.categories("gol_operator"),
        ) else {
            continue;
        };
        let years = window(built);
        let mut by_op: BTreeMap<String, [[Units; 3]; 2]> = BTreeMap::new();
        let mut tenant_sets: [[Units; 3]; 2] = Default::default();
        for r in 0..t.len() {
            let Some(o) = ocodes[r] else { continue };
            let op = &olevels[o as usize];
            // An identifier that ingestion redacted as a name is no operator.
            if op.starts_with('[') || path[r].is_nan() {
                continue;
            }
            for (y, inside) in years.iter().enumerate() {
                if !inside[r] {
                    continue;
                }
                let e = by_op.entry(op.clone()).or_default();
                let flags = [true, adj[r] == 1.0, ovr[r] == 1.0];
                for (k, f) in flags.iter().enumerate() {
                    if *f {
                        e[y][k].push(built.unit_keys[r]);
                        tenant_sets[y][k].push(built.unit_keys[r]);
                    }
                }
            }
        }
        for (y, sets) in tenant_sets.into_iter().enumerate() {
            for (k, s) in sets.into_iter().enumerate() {
                raw_total[y][k] += s.len() as u64;
                totals_parts[y][k].push((tenant.clone(), sorted(s)));
            }
        }
        found.extend(
            by_op
                .into_iter()
                .map(|(op, sets)| (tenant.clone(), op, sets)),
        );
    }
    let p0 = pooled_shares(&raw_total);
    let mut rows = Vec::new();
    for (tenant, op, sets) in found {
        let raw = sets.clone().map(|ys| ys.map(|s| s.len() as u64));
        if !all && raw_flags(&raw, p0, min).is_empty() {
            continue;
        }
        let mut counts = [[0usize; 3]; 2];
        for (k, s) in sets[1].iter().enumerate() {
            counts[1][k] = draft.count(
                &format!("adjustments/{tenant}/{op}/{period}/{}", kinds[k]),
                sorted(s.clone()),
                k == 0,
            );
        }
        rows.push(AuditRow {
            tenant,
            operator: op,
            counts,
            raw,
        });
    }
    if !all {
        return AuditCounts {
            rows,
            totals: None,
            raw_total,
            several: intake.len() > 1,
        };
    }
    let mut totals = [[0usize; 3]; 2];
    // Each authority's part of the year's totals, as the draft registers it.
    let mut tenant_parts: [Vec<(String, usize)>; 3] = Default::default();
    for (y, ys) in totals_parts.into_iter().enumerate().skip(1) {
        for (k, parts) in ys.into_iter().enumerate() {
            let key = format!("adjustments/total/{period}/{}", kinds[k]);
            let own = parts.clone();
            totals[y][k] = pooled_count(draft, &key, parts, k == 0);
            let single = own.len() == 1;
            for (tenant, set) in own {
                // The count `pooled_count` registered for the part (the same units are the
                // same count), or the total itself for a single authority.
                let part = if single {
                    totals[y][k]
                } else {
                    draft.count(&format!("{key}/{tenant}"), set, false)
                };
                tenant_parts[k].push((tenant, part));
            }
        }
    }
    // Each operator's counts add up to the authority's, and the authorities' to the total
    // (the first pattern's lines): an authority whose part is shown must not have a single
    // hidden operator, which the part would give away.
    for (k, &total) in totals[1].iter().enumerate() {
        let mut line: Vec<usize> = rows.iter().map(|r| r.counts[1][k]).collect();
        line.push(total);
        draft.line(line);
        for (tenant, part) in &tenant_parts[k] {
            let mut line: Vec<usize> = rows
                .iter()
                .filter(|r| r.tenant == *tenant)
                .map(|r| r.counts[1][k])
                .collect();
            line.push(*part);
            draft.line(line);
        }
    }
    AuditCounts {
        rows,
        totals: Some(totals),
        raw_total,
        several: intake.len() > 1,
    }
}

/// All operators' shares of the later window: adjusted and overridden among the assessed.
fn pooled_shares(raw_total: &[[u64; 3]; 2]) -> [Option<f64>; 3] {
    let n = raw_total[1][0];
    [1, 1, 2].map(|k| (n > 0).then(|| raw_total[1][k] as f64 / n as f64))
}

/// Why an operator stands out in a pair of windows, for adjustments (`k` = 1) or
/// overrides (2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Flag {
    /// Above the funnel's 99.8 % limit around all operators' share.
    Above(usize),
    /// Below it.
    Below(usize),
    /// A sudden rise on the earlier window (two-proportion z ≥ 3.09).
    Rise(usize),
    /// A sudden fall.
    Fall(usize),
}

/// The flags of an operator's raw counts ([earlier, later] × [assessed, adjusted,
/// overridden]) against all operators' shares `p0`: only with at least `min` assessments
/// in the later window, and for a shift with at least `min` assessments and `min` of the
/// compared kind in the earlier one (the earlier window is never published, and a flag
/// would bound a small count there).
pub(crate) fn raw_flags(raw: &[[u64; 3]; 2], p0: [Option<f64>; 3], min: u64) -> Vec<Flag> {
    let mut out = Vec::new();
    if raw[1][0] < min {
        return out;
    }
    let nn = raw[1][0] as f64;
    for k in [1, 2] {
        let x = raw[1][k] as f64 / nn;
        if let Some(p0) = p0[k] {
            let lim = Z998 * (p0 * (1.0 - p0) / nn).sqrt();
            if x > p0 + lim {
                out.push(Flag::Above(k));
            } else if x < p0 - lim {
                out.push(Flag::Below(k));
            }
        }
        if raw[0][0] >= min && raw[0][k] >= min {
            let n0 = raw[0][0] as f64;
            let x0 = raw[0][k] as f64 / n0;
            let pp = (raw[0][k] + raw[1][k]) as f64 / (n0 + nn);
            let se = (pp * (1.0 - pp) * (1.0 / n0 + 1.0 / nn)).sqrt();
            if se > 0.0 && ((x - x0) / se).abs() >= Z998 {
                out.push(if x > x0 { Flag::Rise(k) } else { Flag::Fall(k) });
            }
        }
    }
    out
}

/// What [`audit_counts`] registered.
pub(crate) struct AuditCounts {
    rows: Vec<AuditRow>,
    /// [earlier, later] × [assessed, adjusted, overridden]: counts of the total (later
    /// only), when registered.
    totals: Option<[[usize; 3]; 2]>,
    /// The same, raw.
    raw_total: [[u64; 3]; 2],
    /// More than one authority: rows are labelled with theirs.
    several: bool,
}

impl AuditCounts {
    /// Whether any operator was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The audit table's rows, once protected: per operator (and a total when `total`),
    /// assessments, % adjusted and % overridden (each share only when the counts under it
    /// are shown and the assessments reach `min`), and the flags: outside the 99.8 % funnel
    /// around all operators' share, or a sudden shift from the earlier window
    /// (two-proportion z ≥ 3.09 with at least `min` assessments then). `before` names the
    /// earlier window in the flag. Returns the table (`id`, `title`) with the flags as its
    /// notes, and the operators flagged.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn table(
        &self,
        id: &str,
        title: String,
        shown: &dyn Fn(usize) -> Option<u64>,
        min: u64,
        total: bool,
        before: &str,
        lang: Lang,
    ) -> (FigureTable, usize) {
        let t = |it: &str, en: &str| lang.t(it, en).to_string();
        let share = |c: &[usize; 3], k: usize| -> Option<f64> {
            let n = shown(c[0])?;
            let x = shown(c[k])?;
            (n >= min).then(|| 100.0 * x as f64 / n as f64)
        };
        // The centre of the funnel: the published total's shares where the total is
        // registered (the annual audit), else all operators' raw shares, never published
        // and large (the quarterly list of flagged operators).
        let p0 = match self.totals {
            Some(tot) => [1, 1, 2].map(|k| {
                let n = shown(tot[1][0])?;
                let x = shown(tot[1][k])?;
                (n > 0).then(|| x as f64 / n as f64)
            }),
            None => pooled_shares(&self.raw_total),
        };
        let several = self.several;
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let mut flagged = 0;
        for r in &self.rows {
            let now = &r.counts[1];
            let n = shown(now[0]);
            let what = |k: usize| {
                if k == 1 {
                    t("rettifiche", "adjustments")
                } else {
                    t("cambi di percorso", "path overrides")
                }
            };
            // A flag, or its absence, bounds the count under it: only a published count is
            // flagged (a hidden one would be narrowed by the funnel).
            let flags: Vec<String> = raw_flags(&r.raw, p0, min)
                .into_iter()
                .filter_map(|f| {
                    let (k, text) = match f {
                        Flag::Above(k) => {
                            (k, t("sopra il limite del 99,8%", "above the 99.8% limit"))
                        }
                        Flag::Below(k) => {
                            (k, t("sotto il limite del 99,8%", "below the 99.8% limit"))
                        }
                        Flag::Rise(k) => (
                            k,
                            format!("{} {before}", t("aumento brusco", "sudden rise")),
                        ),
                        Flag::Fall(k) => {
                            (k, format!("{} {before}", t("calo brusco", "sudden fall")))
                        }
                    };
                    share(now, k).map(|_| format!("{}: {text}", what(k)))
                })
                .collect();
            flagged += usize::from(!flags.is_empty());
            let label = if several {
                format!("{} / {}", r.tenant, r.operator)
            } else {
                r.operator.clone()
            };
            rows.push((
                label,
                vec![n.map(|x| x as f64), share(now, 1), share(now, 2)],
            ));
            notes.push(flags.join("; "));
        }
        if let (true, Some(tot)) = (total, self.totals) {
            let tot = &tot[1];
            rows.push((
                t("Totale", "Total"),
                vec![
                    shown(tot[0]).map(|x| x as f64),
                    share(tot, 1),
                    share(tot, 2),
                ],
            ));
            notes.push(String::new());
        }
        let table = FigureTable {
            id: id.into(),
            title,
            keys: [
                "operator",
                "assessed",
                "adjusted_pct",
                "overridden_pct",
                "flags",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Operatore", "Operator"),
                t("Assessment", "Assessments"),
                t("Rettificati %", "Adjusted %"),
                t("Percorso cambiato %", "Overridden %"),
                t("Segnalazioni", "Flags"),
            ],
            decimals: vec![0, 1, 1],
            rows,
            notes,
        };
        (table, flagged)
    }
}

fn fmt_pp(x: f64, lang: Lang) -> String {
    let s = fmt_figure(Some(x.abs()), 1, lang);
    if x < 0.0 {
        format!("−{s}")
    } else {
        format!("+{s}")
    }
}

/// A forest plot's row: label and, when shown, the estimate with its interval.
pub type ForestRow = (String, Option<(f64, f64, f64)>);

/// A forest plot of effects in percentage points with their 95 % intervals (withheld
/// ones listed without a mark). Written by hand as the other charts: labels need a
/// column of their own.
pub fn forest_svg(title: &str, rows: &[ForestRow], lang: Lang) -> String {
    let label_w = 230.0;
    let plot_w = 380.0;
    let row_h = 18.0;
    let top = 40.0;
    let height = top + row_h * rows.len() as f64 + 34.0;
    let width = label_w + plot_w + 30.0;
    let (mut lo, mut hi) = (0.0_f64, 0.0_f64);
    for (_, v) in rows {
        if let Some((_, l, h)) = v {
            lo = lo.min(*l);
            hi = hi.max(*h);
        }
    }
    let pad = ((hi - lo) * 0.08).max(1.0);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |v: f64| label_w + (v - lo) / (hi - lo) * plot_w;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-labelledby=\"ft\" font-family=\"sans-serif\" font-size=\"11\"><title id=\"ft\">{}</title><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        crate::render::esc_html(title),
        crate::render::esc_html(title)
    );
    let bottom = top + row_h * rows.len() as f64;
    let _ = write!(
        s,
        "<line x1=\"{0:.1}\" y1=\"{1:.0}\" x2=\"{0:.1}\" y2=\"{2:.0}\" stroke=\"#555\" stroke-dasharray=\"3,3\"/>",
        x(0.0),
        top - 6.0,
        bottom
    );
    // Axis ticks at round steps.
    let span = hi - lo;
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
        .into_iter()
        .find(|st| span / st <= 8.0)
        .unwrap_or(100.0);
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1:.0}\" x2=\"{0:.1}\" y2=\"{2:.0}\" stroke=\"#333\"/><text x=\"{0:.1}\" y=\"{3:.0}\" text-anchor=\"middle\" font-size=\"10\">{4}</text>",
            x(t),
            bottom,
            bottom + 4.0,
            bottom + 15.0,
            fmt_figure(Some(t), 0, lang)
        );
        t += step;
    }
    let _ = write!(
        s,
        "<line x1=\"{label_w:.0}\" y1=\"{bottom:.0}\" x2=\"{:.0}\" y2=\"{bottom:.0}\" stroke=\"#333\"/><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
        label_w + plot_w,
        label_w + plot_w / 2.0,
        bottom + 29.0,
        lang.t(
            "effetto sugli occupati (punti percentuali), IC 95%",
            "effect on the employed (percentage points), 95% CI"
        )
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64 + row_h / 2.0;
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 4.0,
            crate::render::esc_html(label)
        );
        match v {
            Some((e, l, h)) => {
                let _ = write!(
                    s,
                    "<g><title>{}: {} ({} – {})</title><line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#3182bd\" stroke-width=\"2\"/><rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"#08519c\"/></g>",
                    crate::render::esc_html(label),
                    fmt_figure(Some(*e), 1, lang),
                    fmt_figure(Some(*l), 1, lang),
                    fmt_figure(Some(*h), 1, lang),
                    x(*l),
                    x(*h),
                    x(*e) - 3.5,
                    y - 3.5
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<text x=\"{:.0}\" y=\"{:.1}\" fill=\"#777\" font-style=\"italic\">{}</text>",
                    label_w + 6.0,
                    y + 4.0,
                    lang.t("non pubblicato", "withheld")
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

impl Report {
    /// Builds the annual report of `inputs.year` and protects everything it publishes
    /// jointly with the `prior` publications. `scope`: `pooled` or the tenant.
    pub fn annual(
        inputs: &AnnualInputs,
        lang: Lang,
        rule: Rule,
        prior: &[Prior],
        scope: &str,
    ) -> crate::Result<Published> {
        let t = |it: &str, en: &str| lang.t(it, en).to_string();
        let year = inputs.year;
        let id = format!("annual/{year}/{scope}");
        let mut draft = Draft::new(&id);
        let quarters: Vec<Quarter> = (1..=4)
            .filter_map(|q| Quarter::parse(&format!("{year}Q{q}")).ok())
            .collect();

        // 1. The year in review: flows and placements by quarter, and the year.
        let cols = [
            "stock_start",
            "inflow",
            "outflow",
            "stock_end",
            "placed",
            "permanent",
        ];
        let pick = |f: &PeriodFigures, c: usize| -> Units {
            match c {
                0 => f.flow_units.stock_start.clone(),
                1 => f.flow_units.inflow.clone(),
                2 => f.flow_units.outflow.clone(),
                3 => f.flow_units.stock_end.clone(),
                4 => f.placed.clone(),
                _ => f.placed_permanent.clone(),
            }
        };
        let mut flow_rows = Vec::new();
        for (k, q) in quarters.iter().enumerate() {
            let idx: Vec<Option<usize>> = (0..cols.len())
                .map(|c| {
                    let parts = inputs
                        .quarters
                        .iter()
                        .filter_map(|(tn, fs)| fs.get(k).map(|f| (tn.clone(), pick(f, c))))
                        .collect();
                    Some(pooled_count(
                        &mut draft,
                        &format!("year_flows/{q}/{}", cols[c]),
                        parts,
                        false,
                    ))
                })
                .collect();
            flow_rows.push((q.to_string(), idx));
        }
        // The year: in charge at its start and end; everyone who entered, left, started
        // a first job in it.
        let year_idx: Vec<Option<usize>> = (0..cols.len())
            .map(|c| {
                let parts: Vec<(String, Units)> = inputs
                    .quarters
                    .iter()
                    .map(|(tn, fs)| {
                        let u = match c {
                            0 => fs.first().map(|f| pick(f, 0)).unwrap_or_default(),
                            3 => fs.last().map(|f| pick(f, 3)).unwrap_or_default(),
                            _ => union(fs.iter().map(|f| match c {
                                1 => &f.flow_units.inflow,
                                2 => &f.flow_units.outflow,
                                4 => &f.placed,
                                _ => &f.placed_permanent,
                            })),
                        };
                        (tn.clone(), u)
                    })
                    .collect();
                Some(pooled_count(
                    &mut draft,
                    &format!("year_flows/{year}/{}", cols[c]),
                    parts,
                    true,
                ))
            })
            .collect();
        flow_rows.push((t("Anno", "Year"), year_idx));
        let flow_layout = Layout {
            id: "year_flows".into(),
            title: t(
                "Persone in carico, ingressi, uscite e avviamenti al lavoro per trimestre",
                "Persons in charge, inflow, outflow and placements by quarter",
            ),
            label_header: t("Periodo", "Period"),
            columns: vec![
                t("In carico a inizio periodo", "In charge at start"),
                t("Ingressi", "Inflow"),
                t("Uscite", "Outflow"),
                t("In carico a fine periodo", "In charge at end"),
                t("Avviati al lavoro", "Placed"),
                t("di cui a tempo indeterminato", "of whom permanent"),
            ],
            rows: flow_rows,
            has_total: true,
        };
        // Physical indicators of the year (distinct units in the year), each authority's
        // and the total: the quarters' values are in the quarterly reports.
        let indicator_layout = inputs
            .quarters
            .first()
            .and_then(|(_, fs)| fs.first())
            .map(|f0| {
                let mut rows = Vec::new();
                for (i, ind) in f0.indicators.iter().enumerate() {
                    let mut idx = Vec::new();
                    let mut sets = Vec::new();
                    for (tn, fs) in &inputs.quarters {
                        let u = union(
                            fs.iter()
                                .filter_map(|f| f.indicators.get(i))
                                .map(|x| &x.units),
                        );
                        idx.push(draft.count(
                            &format!("year_indicators/{}/{tn}", ind.id),
                            u.clone(),
                            false,
                        ));
                        sets.push(u);
                    }
                    idx.push(draft.count(
                        &format!("year_indicators/{}/total", ind.id),
                        union(&sets),
                        true,
                    ));
                    draft.line(idx.clone());
                    rows.push((
                        format!("{} {}", ind.id, lang.t(ind.label_it, ind.label_en)),
                        idx.into_iter().map(Some).collect(),
                    ));
                }
                let mut columns: Vec<String> =
                    inputs.quarters.iter().map(|(tn, _)| tn.clone()).collect();
                columns.push(t("Totale", "Total"));
                Layout {
                    id: "year_indicators".into(),
                    title: format!(
                        "{} {year} {}",
                        t("Indicatori fisici del", "Physical indicators of"),
                        t("(unità distinte nell'anno)", "(distinct units in the year)")
                    ),
                    label_header: t("Indicatore", "Indicator"),
                    columns,
                    rows,
                    has_total: false,
                }
            });

        // 2. Effects, 3. ISA, 4. the adjustments' audit.
        let (effect_rows, profile_labels, effect_specs) = effects(inputs, &mut draft, lang);
        let isa = isa_counts(inputs, &mut draft, lang);
        let audit = audit_counts(
            &inputs.intake,
            &|t| [in_year(t, year - 1), in_year(t, year)],
            &year.to_string(),
            true,
            rule.min,
            &mut draft,
        );
        let profiling =
            // By group only in the pooled report: an authority's groups are small (a few
            // dozen persons of another EU country), their error rates noise, and their
            // counts, beside the pooled report's, cost its protection dearly (seen: an
            // authority's report refused, or protected in two minutes instead of ten
            // seconds, on a 3,000-person store). Its staff see them with `occupa profile
            // fit`, which publishes nothing.
            crate::profiling::profiling_counts(
                &inputs.profiling,
                year,
                rule.min,
                scope == "pooled",
                &mut draft,
            );

        let protection = protect(&draft, prior, rule)?;
        let p = &protection;
        let shown = |i: usize| p.shown(&draft, i);

        let flows = flow_layout.publish(&draft, p);
        let mut sections = Vec::new();
        // The stock at each quarter's end, as published.
        let stock_points: Vec<(String, Option<u64>)> = flows
            .rows
            .iter()
            .take(quarters.len())
            .map(|(l, v)| (l.clone(), v.get(3).copied().flatten()))
            .collect();
        let mut year_tables = vec![flows.clone()];
        if let Some(l) = &indicator_layout {
            year_tables.push(l.publish(&draft, p));
        }
        sections.push(Section {
            heading: t("L'anno in cifre", "The year in figures"),
            text: vec![t(
                "Persone in carico, ingressi e uscite per trimestre; gli avviamenti sono le persone in carico il cui primo rapporto di lavoro è iniziato nel periodo. La riga dell'anno conta persone distinte: chi è entrato due volte è contato una volta, quindi non è la somma dei trimestri.",
                "Persons in charge, inflow and outflow by quarter; placements are the persons in charge whose first contract started in the period. The year's row counts distinct persons: someone who entered twice counts once, so it is not the sum of the quarters.",
            )],
            tables: year_tables,
            figures: Vec::new(),
            charts: vec![crate::render::chart_svg(
                &t("Persone in carico a fine trimestre", "Persons in charge at the end of each quarter"),
                &stock_points,
            )],
            chart_data: Some(("stock_end_by_quarter".into(), stock_points.clone())),
        });

        // Effects.
        let cohort = year - 1;
        let horizon_label = |h: u32| format!("{h} {}", lang.t("mesi", "months"));
        let effect_table = |id: &str,
                            title: String,
                            by_profile: bool|
         -> (FigureTable, Vec<ForestRow>) {
            let mut rows = Vec::new();
            let mut notes = Vec::new();
            let mut chart = Vec::new();
            for r in effect_rows
                .iter()
                .filter(|r| r.profile.is_some() == by_profile)
            {
                let mut label = format!("{} · {}", r.service, horizon_label(r.horizon));
                if let Some(pl) = &r.profile {
                    label = format!("{label} · {pl}");
                }
                let counts = r.counts.map(|(a, b)| (shown(a), shown(b)));
                let hidden = counts.is_none_or(|(a, b)| a.is_none() || b.is_none());
                let (vals, note) = match (&r.estimate, hidden) {
                    (Err(Withheld::NoData), _) => (
                        None,
                        t(
                            "nessuna persona con il servizio nella coorte",
                            "no person of the cohort had the service",
                        ),
                    ),
                    (_, true) => (
                        None,
                        t(
                            "non pubblicato: i gruppi confrontati sono oscurati per riservatezza",
                            "withheld: the compared groups are hidden for confidentiality",
                        ),
                    ),
                    (Err(Withheld::Small), _) => (
                        None,
                        format!(
                            "{} {MIN_EFFECT_GROUP} {}",
                            t("non stimato: meno di", "not estimated: fewer than"),
                            t("trattati o controlli", "treated or controls")
                        ),
                    ),
                    (Err(Withheld::Error), _) => (
                        None,
                        t(
                            "non stimato: il modello non è stimabile su questi dati",
                            "not estimated: the model cannot be fitted on these data",
                        ),
                    ),
                    (Err(Withheld::Failed(checks)), _) => (
                        None,
                        format!(
                            "{}: {}",
                            t(
                                "non pubblicato, diagnostica non superata",
                                "withheld, diagnostics failed"
                            ),
                            checks
                                .iter()
                                .map(|(c, v)| format!(
                                    "{} {}",
                                    check_name(c, lang),
                                    fmt_figure(Some(*v), 2, lang)
                                ))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ),
                    (Ok(f), false) => (
                        Some(f),
                        match f.grade {
                            Grade::Warn => format!(
                                "{}: {}",
                                t("da leggere con cautela", "read with care"),
                                f.warned
                                    .iter()
                                    .map(|(c, v)| format!(
                                        "{} {}",
                                        check_name(c, lang),
                                        fmt_figure(Some(*v), 2, lang)
                                    ))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            ),
                            _ => t("diagnostica superata", "diagnostics passed"),
                        },
                    ),
                };
                let (nt, nc) = counts.unwrap_or((None, None));
                rows.push((
                    label.clone(),
                    vec![
                        nt.map(|x| x as f64),
                        nc.map(|x| x as f64),
                        vals.map(|f| 100.0 * f.att),
                        vals.map(|f| 100.0 * f.lo),
                        vals.map(|f| 100.0 * f.hi),
                        vals.map(|f| f.p),
                    ],
                ));
                notes.push(note);
                chart.push((
                    label,
                    vals.map(|f| (100.0 * f.att, 100.0 * f.lo, 100.0 * f.hi)),
                ));
            }
            let mut keys: Vec<String> = [
                "comparison",
                "treated",
                "controls",
                "att_pp",
                "lo95_pp",
                "hi95_pp",
                "p_value",
                "note",
            ]
            .map(String::from)
            .to_vec();
            let mut headers = vec![
                t("Confronto", "Comparison"),
                t("Trattati", "Treated"),
                t("Controlli", "Controls"),
                t("Effetto (punti %)", "Effect (% points)"),
                t("IC 95% inf.", "95% low"),
                t("IC 95% sup.", "95% high"),
                t("p", "p"),
                t("Nota", "Note"),
            ];
            if rows.is_empty() {
                keys.pop();
                headers.pop();
            }
            (
                FigureTable {
                    id: id.into(),
                    title,
                    keys,
                    headers,
                    decimals: vec![0, 0, 1, 1, 1, 3],
                    rows,
                    notes,
                },
                chart,
            )
        };
        if !inputs.services.is_empty() {
            let (overall, chart) = effect_table(
                "service_effects",
                format!(
                    "{} {cohort}",
                    t(
                        "Effetto dei servizi sull'essere occupati a 6 e 12 mesi (ATT, ponderazione IPW), persone prese in carico nel",
                        "Effect of the services on being employed at 6 and 12 months (ATT, IPW), persons taken in charge in"
                    )
                ),
                false,
            );
            let (by_profile, _) = effect_table(
                "effects_by_profile",
                t(
                    "Effetto dei servizi per profilo di occupabilità",
                    "Effect of the services by occupability profile",
                ),
                true,
            );
            let mut text = vec![if lang == Lang::It {
                format!(
                    "Per ogni servizio, le persone prese in carico nel {cohort} che lo hanno iniziato entro 90 giorni (trattati) sono confrontate con quelle che nello stesso periodo non lo hanno avuto né hanno avuto gli altri servizi A.4–A.6 (controlli); chi ha avuto un altro di questi servizi è escluso. Il piano d'azione individuale (A.3), che accompagna quasi sempre gli altri servizi, non esclude nessuno dai loro confronti; nel confronto di A.3 sono esclusi A.4–A.6. L'effetto è la differenza nella quota di occupati a 6 e a 12 mesi dalla presa in carico tra i trattati e ciò che sarebbe accaduto loro senza il servizio (ATT), stimata ponderando i controlli con la propensione (IPW: modello logistico della probabilità di ricevere il servizio; errori standard che tengono conto della stima della propensione) che tiene conto di età, sesso, cittadinanza, titolo di studio, disabilità, sostegno al reddito, presa in carico dei servizi sociali, punteggi e percorso GOL{}. Un effetto è pubblicato solo con almeno {MIN_EFFECT_GROUP} trattati e {MIN_EFFECT_GROUP} controlli e se la diagnostica (bilanciamento, sovrapposizione, ampiezza effettiva, quota stimata) non fallisce; altrimenti la tabella dice perché non lo è.",
                    if inputs.services.first().is_some_and(|s| s.1.len() > 1) {
                        " ed ente"
                    } else {
                        ""
                    }
                )
            } else {
                format!(
                    "For each service, the persons taken in charge in {cohort} who started it within 90 days (treated) are compared with those who had neither it nor the other services A.4–A.6 in that window (controls); persons with another of these services are left out. The individual action plan (A.3), which comes with nearly every other service, leaves no one out of their comparisons; A.3's own comparison leaves out A.4–A.6. The effect is the difference in the share employed 6 and 12 months after taking charge between the treated and what would have happened to them without the service (ATT), estimated by weighting the controls by the propensity (IPW: a logistic model of the probability of receiving the service; standard errors that account for its estimation) adjusting for age, sex, citizenship, education, disability, income support, social services' care, the GOL scores and path{}. An effect is published only with at least {MIN_EFFECT_GROUP} treated and {MIN_EFFECT_GROUP} controls and when its diagnostics (balance, overlap, effective size, share estimated) do not fail; otherwise the table says why.",
                    if inputs.services.first().is_some_and(|s| s.1.len() > 1) {
                        " and authority"
                    } else {
                        ""
                    }
                )
            }];
            if !profile_labels.is_empty() {
                text.push(t(
                    "I profili di occupabilità sono classi latenti delle risposte ASSO della coorte (numero di classi scelto per BIC tra 2 e 5); l'effetto per profilo è stimato separatamente in ogni classe.",
                    "The occupability profiles are latent classes of the cohort's ASSO answers (the number of classes chosen by BIC from 2 to 5); the effect by profile is estimated separately within each class.",
                ));
            }
            let mut figures = vec![overall];
            if !profile_labels.is_empty() {
                figures.push(by_profile);
            }
            sections.push(Section {
                heading: t("Impatto dei servizi", "Impact of the services"),
                text,
                tables: Vec::new(),
                figures,
                charts: vec![forest_svg(
                    &t(
                        "Effetto sugli occupati, per servizio e orizzonte",
                        "Effect on the employed, by service and horizon",
                    ),
                    &chart,
                    lang,
                )],
                chart_data: None,
            });
        }

        // ISA before and after.
        let mut isa_summary: Option<(f64, Option<u64>)> = None;
        if let Some(isa) = &isa {
            let tq = |n: usize| -> f64 {
                use statrs::distribution::{ContinuousCDF, StudentsT};
                StudentsT::new(0.0, 1.0, (n.max(2) - 1) as f64)
                    .map(|d| d.inverse_cdf(0.975))
                    .unwrap_or(1.96)
            };
            let mut rows = Vec::new();
            for r in &isa.rows {
                let n = shown(r.count);
                let ok = n.is_some_and(|n| n >= rule.min) && r.n > 1;
                let half = tq(r.n) * r.sd / (r.n as f64).sqrt();
                rows.push((
                    r.label.clone(),
                    vec![
                        n.map(|x| x as f64),
                        ok.then_some(r.before),
                        ok.then_some(r.after),
                        ok.then_some(r.diff),
                        ok.then_some(r.diff - half),
                        ok.then_some(r.diff + half),
                    ],
                ));
            }
            if let Some(first) = isa.rows.first() {
                isa_summary = Some((
                    isa.rows.iter().map(|r| r.diff).sum::<f64>() / isa.rows.len() as f64,
                    shown(first.count),
                ));
            }
            let change = isa.change.map(&shown);
            let change_table = crate::PubTable {
                id: "isa_change".into(),
                title: t(
                    "Persone valutate due volte con ISA: media delle dimensioni migliorata, invariata o peggiorata (±0,5 punti)",
                    "Persons assessed twice with ISA: mean of the dimensions improved, unchanged or worse (±0.5 points)",
                ),
                label_header: t("Ambito", "Scope"),
                columns: vec![
                    t("Migliorata", "Improved"),
                    t("Invariata", "Unchanged"),
                    t("Peggiorata", "Worse"),
                    t("Totale", "Total"),
                ],
                rows: vec![(t("Tutti gli enti", "All authorities"), change.to_vec())],
                has_total: false,
                suppressed: change.iter().filter(|c| c.is_none()).count(),
            };
            sections.push(Section {
                heading: t("ISA prima e dopo", "ISA before and after"),
                text: vec![if lang == Lang::It {
                    format!("Persone prese in carico nel {year} valutate con ISA una seconda volta almeno 60 giorni dopo la prima: punteggio medio di ogni dimensione (0–100, più alto = più autonomia) alla prima valutazione e all'ultima, la differenza media e il suo intervallo al 95% (t per dati appaiati). È un confronto prima e dopo, non un effetto: chi viene rivalutato non è scelto a caso.")
                } else {
                    format!("Persons taken in charge in {year} assessed with ISA a second time at least 60 days after the first: each dimension's mean score (0–100, higher = more autonomy) at the first assessment and the last, the mean difference and its 95% interval (paired t). It is a before/after comparison, not an effect: who is re-assessed is not chosen at random.")
                }],
                tables: vec![change_table],
                figures: vec![FigureTable {
                    id: "isa_before_after".into(),
                    title: t("ISA prima e dopo, per dimensione", "ISA before and after, by dimension"),
                    keys: ["dimension", "persons", "mean_before", "mean_after", "mean_change", "lo95", "hi95"]
                        .map(String::from)
                        .to_vec(),
                    headers: vec![
                        t("Dimensione", "Dimension"),
                        t("Persone", "Persons"),
                        t("Media prima", "Mean before"),
                        t("Media dopo", "Mean after"),
                        t("Differenza", "Change"),
                        t("IC 95% inf.", "95% low"),
                        t("IC 95% sup.", "95% high"),
                    ],
                    decimals: vec![0, 1, 1, 1, 1, 1],
                    rows,
                    notes: Vec::new(),
                }],
                charts: Vec::new(),
                chart_data: None,
            });
        }

        // The audit of adjustments and overrides.
        let mut flagged = 0usize;
        if !audit.is_empty() {
            let (table, n) = audit.table(
                "adjustment_audit",
                t(
                    "Rettifiche ±3 e cambi di percorso per operatore (%)",
                    "±3 adjustments and path overrides by operator (%)",
                ),
                &shown,
                rule.min,
                true,
                t("sull'anno prima", "on the year before").as_str(),
                lang,
            );
            flagged = n;
            sections.push(Section {
                heading: t("Audit delle rettifiche e dei cambi di percorso", "Audit of adjustments and path overrides"),
                text: vec![if lang == Lang::It {
                    format!("Per ogni operatore, gli assessment GOL delle persone prese in carico nel {year}: quota con una rettifica di ±3 punti e quota con il percorso cambiato rispetto a quello della regola. È segnalato l'operatore la cui quota è fuori dai limiti al 99,8% attorno alla quota di tutti gli operatori (funnel: gli operatori piccoli non sono segnalati per il solo rumore), o cambia bruscamente rispetto al {} (test z a due proporzioni oltre 3,09, solo quando gli assessment di quell'anno e il conteggio confrontato raggiungono entrambi la soglia; le quote del {} non sono pubblicate). Una segnalazione è una domanda da porre, non una prova di comportamento opportunistico. Le quote sono pubblicate, e segnalate, solo quando lo sono i conteggi sotto di esse.", year - 1, year - 1)
                } else {
                    format!("For each operator, the GOL assessments of the persons taken in charge in {year}: the share with a ±3-point adjustment and the share whose path differs from the rule's. An operator is flagged when its share is outside the 99.8% limits around all operators' share (a funnel: small operators are not flagged for noise alone), or shifts suddenly from {} (two-proportion z beyond 3.09, only when that year's assessments and the count compared both reach the threshold; the shares of {} are not published). A flag is a question to ask, not proof of opportunistic behaviour. Shares are published, and flagged, only when the counts under them are.", year - 1, year - 1)
                }],
                tables: Vec::new(),
                figures: vec![table],
                charts: Vec::new(),
                chart_data: None,
            });
        }

        if let Some(p) = &profiling {
            sections.push(p.section(&shown, lang));
        }
        if let Some(d) = inputs.demand.as_ref().filter(|d| !d.series.is_empty()) {
            sections.push(crate::demand::demand_section(d, lang));
        }
        if !inputs.quality.is_empty() {
            sections.push(crate::quality_section(&inputs.quality, lang));
        }

        // The summary, from the figures as published.
        let mut summary = Vec::new();
        let yr = flows.rows.last().map(|r| r.1.clone()).unwrap_or_default();
        let g = |i: usize| yr.get(i).copied().flatten();
        if let (Some(s0), Some(s1)) = (g(0), g(3)) {
            let change = if s0 > 0 {
                100.0 * (s1 as f64 - s0 as f64) / s0 as f64
            } else {
                0.0
            };
            summary.push(if lang == Lang::It {
                format!(
                    "Nel {year} le persone in carico sono passate da {} a {} ({}%).",
                    fmt_count(Some(s0), lang),
                    fmt_count(Some(s1), lang),
                    fmt_pp(change, lang)
                )
            } else {
                format!(
                    "In {year} the persons in charge went from {} to {} ({}%).",
                    fmt_count(Some(s0), lang),
                    fmt_count(Some(s1), lang),
                    fmt_pp(change, lang)
                )
            });
        }
        if let (Some(i), Some(o)) = (g(1), g(2)) {
            summary.push(if lang == Lang::It {
                format!(
                    "Sono entrate {} persone e ne sono uscite {}.",
                    fmt_count(Some(i), lang),
                    fmt_count(Some(o), lang)
                )
            } else {
                format!(
                    "{} persons entered and {} left.",
                    fmt_count(Some(i), lang),
                    fmt_count(Some(o), lang)
                )
            });
        }
        if let (Some(pl), Some(pm)) = (g(4), g(5))
            && pl > 0
        {
            summary.push(if lang == Lang::It {
                format!(
                    "{} persone in carico hanno iniziato il primo rapporto di lavoro, il {}% a tempo indeterminato.",
                    fmt_count(Some(pl), lang),
                    fmt_figure(Some(100.0 * pm as f64 / pl as f64), 1, lang)
                )
            } else {
                format!(
                    "{} persons in charge started their first job, {}% of them on a permanent contract.",
                    fmt_count(Some(pl), lang),
                    fmt_figure(Some(100.0 * pm as f64 / pl as f64), 1, lang)
                )
            });
        }
        // Effects at 12 months, overall, as published.
        let published_12: Vec<(&str, &EffectFigures)> = effect_rows
            .iter()
            .filter(|r| r.profile.is_none() && r.horizon == 12)
            .filter(|r| {
                r.counts
                    .is_some_and(|(a, b)| shown(a).is_some() && shown(b).is_some())
            })
            .filter_map(|r| r.estimate.as_ref().ok().map(|f| (r.service.as_str(), f)))
            .collect();
        if !published_12.is_empty() {
            let positive: Vec<String> = published_12
                .iter()
                .filter(|(_, f)| f.lo > 0.0)
                .map(|(s, f)| {
                    format!(
                        "{s} ({} {})",
                        fmt_pp(100.0 * f.att, lang),
                        lang.t("punti", "points")
                    )
                })
                .collect();
            summary.push(if positive.is_empty() {
                if lang == Lang::It {
                    format!("Nessuno dei servizi stimati aumenta in modo chiaro la quota di occupati a 12 mesi per le persone prese in carico nel {cohort}.")
                } else {
                    format!("None of the services estimated clearly raises the share employed at 12 months for the persons taken in charge in {cohort}.")
                }
            } else if lang == Lang::It {
                format!(
                    "Per le persone prese in carico nel {cohort}, aumentano la quota di occupati a 12 mesi (intervallo al 95% sopra zero): {}.",
                    positive.join(", ")
                )
            } else {
                format!(
                    "For the persons taken in charge in {cohort}, these raise the share employed at 12 months (95% interval above zero): {}.",
                    positive.join(", ")
                )
            });
        }
        let withheld = effect_rows
            .iter()
            .filter(|r| r.profile.is_none() && matches!(r.estimate, Err(Withheld::Failed(_))))
            .count();
        if withheld > 0 {
            summary.push(if lang == Lang::It {
                format!("{withheld} stime complessive non sono pubblicate perché la loro diagnostica non è superata.")
            } else {
                format!("{withheld} overall estimates are withheld because their diagnostics failed.")
            });
        }
        if let Some((d, Some(n))) = isa_summary {
            summary.push(if lang == Lang::It {
                format!(
                    "Tra le {} persone valutate due volte con ISA, il punteggio medio delle dimensioni è cambiato di {} punti su 100.",
                    fmt_count(Some(n), lang),
                    fmt_pp(d, lang)
                )
            } else {
                format!(
                    "Among the {} persons assessed twice with ISA, the dimensions' mean score changed by {} points out of 100.",
                    fmt_count(Some(n), lang),
                    fmt_pp(d, lang)
                )
            });
        }
        if !audit.is_empty() {
            summary.push(match (flagged, lang) {
                (0, Lang::It) => "Nessun operatore è segnalato nell'audit delle rettifiche e dei cambi di percorso.".to_string(),
                (0, Lang::En) => "No operator is flagged in the audit of adjustments and path overrides.".to_string(),
                (1, Lang::It) => "Un operatore è segnalato nell'audit delle rettifiche e dei cambi di percorso.".to_string(),
                (1, Lang::En) => "One operator is flagged in the audit of adjustments and path overrides.".to_string(),
                (n, Lang::It) => format!("{n} operatori sono segnalati nell'audit delle rettifiche e dei cambi di percorso."),
                (n, Lang::En) => format!("{n} operators are flagged in the audit of adjustments and path overrides."),
            });
        }
        if let Some((auc, lo, hi, slope)) = profiling.as_ref().and_then(|p| p.headline()) {
            let [auc, lo, hi] = [auc, lo, hi].map(|x| fmt_figure(Some(x), 3, lang));
            let slope = fmt_figure(Some(slope), 2, lang);
            summary.push(if lang == Lang::It {
                format!(
                    "L'indice di occupabilità, verificato sulle persone prese in carico nel {cohort}, ha un'AUC di {auc} (IC 95% {lo}–{hi}) e una pendenza di calibrazione di {slope}."
                )
            } else {
                format!(
                    "The employability index, checked on the persons taken in charge in {cohort}, has an AUC of {auc} (95% CI {lo}–{hi}) and a calibration slope of {slope}."
                )
            });
        }
        if let Some(d) = &inputs.demand {
            let total: Vec<(f64, f64)> = d
                .series
                .iter()
                .filter(|s| {
                    s.level == crate::demand::Level::Total && s.kind == crate::demand::Kind::Hires
                })
                .filter_map(|s| {
                    s.past
                        .as_ref()
                        .map(|(f, a)| (f.mean.iter().sum::<f64>(), a.iter().sum::<f64>()))
                })
                .collect();
            if let Some((f, a)) = total.first().filter(|(_, a)| *a > 0.0) {
                summary.push(if lang == Lang::It {
                    format!(
                        "Le assunzioni previste un anno fa per il {year} erano {}; ne sono avvenute {} (errore {}%).",
                        fmt_figure(Some(*f), 0, lang),
                        fmt_figure(Some(*a), 0, lang),
                        fmt_pp(100.0 * (f - a) / a, lang)
                    )
                } else {
                    format!(
                        "The hires forecast a year ago for {year} were {}; {} happened (error {}%).",
                        fmt_figure(Some(*f), 0, lang),
                        fmt_figure(Some(*a), 0, lang),
                        fmt_pp(100.0 * (f - a) / a, lang)
                    )
                });
            }
        }
        if !summary.is_empty() {
            sections.insert(
                0,
                Section {
                    heading: t("Sintesi", "Summary"),
                    text: summary,
                    tables: Vec::new(),
                    figures: Vec::new(),
                    charts: Vec::new(),
                    chart_data: None,
                },
            );
        }

        let a = &protection.audit;
        let privacy_note = if lang == Lang::It {
            format!(
                "x = dato oscurato a tutela della riservatezza: i valori compresi tra 1 e {} non sono pubblicati e, dove servirebbe a ricostruirli dai totali, dalle altre tabelle o dalle {} pubblicazioni precedenti, non lo è neppure un altro valore; una verifica per programmazione lineare accerta che nessun valore oscurato sia ricostruibile entro ±{:.0}% della soglia. Quote, medie ed effetti sono pubblicati solo quando lo sono i conteggi sotto di essi.",
                rule.min - 1,
                a.prior_publications,
                rule.range * 100.0
            )
        } else {
            format!(
                "x = value hidden for confidentiality: counts from 1 to {} are not published and, where they could be recovered from totals, other tables or the {} earlier publications, neither is another value; a linear-programming audit checks that no hidden count can be narrowed to within ±{:.0}% of the threshold. Shares, means and effects are published only when the counts under them are.",
                rule.min - 1,
                a.prior_publications,
                rule.range * 100.0
            )
        };
        let mut provenance = inputs.provenance.clone();
        provenance.specs.insert("effects".into(), effect_specs);
        if let Some(p) = &profiling {
            provenance.specs.insert("profiling".into(), p.spec_json());
        }
        let report = Report {
            id,
            title: format!(
                "{} {year}",
                t(
                    "Rapporto annuale sulle politiche attive del lavoro",
                    "Annual report on active labour-market policies"
                )
            ),
            subtitle: format!(
                "{}: {} · {} {}",
                t("Enti", "Authorities"),
                inputs.quarters.len(),
                t("generato il", "generated on"),
                chrono::Utc::now().format("%Y-%m-%d")
            ),
            period: year.to_string(),
            lang,
            sections,
            privacy_note,
            min_count: rule.min,
            provenance,
            protection: ProtectionSummary::new(rule, a),
        };
        Ok(Published {
            report,
            draft,
            protection,
        })
    }
}
