//! The employability index as a publication: the annual report's section, and a study's
//! `[profile]` design. The index is estimated on the earlier persons and checked on the
//! later ones (in the annual report: the three years before the cohort year, and the
//! cohort, the persons taken in charge the year before the report's, whose 12 months are
//! over), with its discrimination and calibration, observed against predicted in tenths
//! of the predicted risk, calibration and error rates by sex, citizenship and age band with
//! the threshold per group that would equalise the true positive rates, and which traits
//! make re-employment easier (average marginal effects).
//!
//! Every group's persons, not employed, flagged at risk and flagged among the not employed
//! is a count of the publication; every count a row implies without printing it (the
//! employed, the false positives and negatives, the persons without a group) and the few
//! persons by which two of the section's counts differ (the lowest tenth of risk and the
//! persons below the threshold) are derived counts, which the protection keeps protected
//! when small; the tenths' sizes, which anyone computes from the total, are public. A rate
//! is shown only when the counts under it are; the model's AUC, Brier score and calibration are not counts and are shown. The
//! counts under a group's own threshold are not published: they would differ from the
//! common threshold's by a few persons. The model, its coefficients and the names of
//! pooled levels are never published: levels held by fewer training persons than the
//! larger of 20 and the publication's threshold are pooled before the fit, so no effect
//! speaks for a handful of persons.

use std::collections::BTreeMap;

use occupa_anonymiser::publication::Draft;
use occupa_engine::analysis::AnalysisTable;
use occupa_engine::columns::Table;
use occupa_engine::indicators::Units;
use occupa_engine::profile::model::{
    GroupValidation, ProfileReport, ProfileSpec, Validation, default_covariates, group_labels,
};

use crate::render::fmt_figure;
use crate::{FigureTable, Lang, Section};

/// The columns the fairness tables compare.
pub const GROUPS: [&str; 3] = ["sex", "citizenship_group", "age_band"];

/// Years of intake before the cohort year the index is estimated on.
pub const TRAINING_YEARS: i32 = 3;

/// The index of the annual report of `year`, on the persons of `table` (every authority's
/// analysis table stacked, with a `tenant` column when there are several): trained on the
/// intake of the [`TRAINING_YEARS`] before `year - 1`, validated on the intake of
/// `year - 1`, employment at 12 months.
pub fn spec(table: &Table, year: i32, min_count: u64) -> ProfileSpec {
    let cohort = year - 1;
    let mut covariates = default_covariates(table);
    if table.headers().iter().any(|h| h == "tenant") {
        covariates.push("tenant".into());
    }
    ProfileSpec {
        covariates,
        train_from: Some(format!("{}-01", cohort - TRAINING_YEARS)),
        validate_from: Some(format!("{cohort}-01")),
        validate_to: Some(format!("{cohort}-12")),
        min_level: (min_count as usize).max(20),
        groups: GROUPS.map(String::from).to_vec(),
        ..ProfileSpec::default()
    }
}

/// The authorities' tables stacked into one (a `tenant` column when there are several),
/// with each row's unit key.
pub fn stacked(tables: &[(String, AnalysisTable)]) -> Option<(Table, Vec<u64>)> {
    let parts: Vec<&Table> = tables.iter().map(|(_, b)| &b.table).collect();
    let mut table = Table::stack("the persons of every authority", &parts).ok()?;
    if tables.len() > 1 {
        let tenant = tables
            .iter()
            .flat_map(|(t, b)| std::iter::repeat_n(Some(t.clone()), b.table.len()))
            .collect();
        table = table.with_text_column("tenant", tenant).ok()?;
    }
    let keys = tables
        .iter()
        .flat_map(|(_, b)| b.unit_keys.iter().copied())
        .collect();
    Some((table, keys))
}

/// One row of the fairness tables: everyone, or one group.
struct GroupRow {
    label: String,
    persons: usize,
    not_employed: usize,
    flagged: usize,
    flagged_not_employed: usize,
    predicted_risk: f64,
    auc: Option<f64>,
    slope: Option<f64>,
    /// Under the group's own threshold: the threshold and the two counts.
    aware: Option<f64>,
}

/// One group of equal size by predicted risk.
struct ClassRow {
    label: String,
    persons: usize,
    not_employed: usize,
    predicted_risk: f64,
}

/// An index fitted for a publication, its counts registered in the publication's draft.
pub struct Profiling {
    periods: Periods,
    spec: ProfileSpec,
    outcome: Result<Fitted, String>,
}

struct Fitted {
    report: ProfileReport,
    training: usize,
    groups: Vec<GroupRow>,
    classes: Vec<ClassRow>,
}

/// Registers the persons of `rows` as one count. Each set is the pooled one alone: an
/// authority's part of a group is no count of this publication (its own report fits its
/// own index on its own persons, so its sets are others), and the interval audit finds
/// what any earlier part and this total say together from the persons themselves.
fn register(keys: &[u64], draft: &mut Draft, key: &str, rows: &[usize], margin: bool) -> usize {
    draft.count(key, units_of(keys, rows), margin)
}

/// The persons of `rows`, sorted, each once.
fn units_of(keys: &[u64], rows: &[usize]) -> Units {
    let mut s: Units = rows.iter().map(|&i| keys[i]).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The annual report's index: fitted on the authorities' tables stacked and registered in
/// `draft`; `None` when no authority has persons.
/// `by_group`: the groups' tables (the pooled report's; an authority's report shows the
/// index's quality and calibration only, see [`crate::annual`]).
pub(crate) fn profiling_counts(
    tables: &[(String, AnalysisTable)],
    year: i32,
    min_count: u64,
    by_group: bool,
    draft: &mut Draft,
) -> Option<Profiling> {
    let (table, keys) = stacked(tables)?;
    if table.is_empty() {
        return None;
    }
    let cohort = year - 1;
    let periods = Periods {
        training: format!("{}–{}", cohort - TRAINING_YEARS, cohort - 1),
        check: cohort.to_string(),
    };
    let mut spec = spec(&table, year, min_count);
    if !by_group {
        spec.groups.clear();
    }
    let first = draft.counts.len();
    let profiling = Profiling::fit(
        &table,
        &keys,
        spec,
        Some(periods),
        &format!("profiling/{cohort}"),
        draft,
    );
    // The section's counts a few persons apart (the lowest tenth of risk and the persons
    // below the threshold) give those persons away: their differences are counts too.
    // (A study differences its whole draft; a report's other sections are built so that
    // their relations are lines and totals.)
    let mut mine: Vec<usize> = (first..draft.counts.len()).collect();
    mine.extend(profiling.counts());
    draft.add_differences_among(&mine, min_count);
    Some(profiling)
}

/// The periods as the tables name them: the training persons' and the checked persons'
/// (`2021–2023`, `2024`).
#[derive(Debug, Clone)]
pub struct Periods {
    /// The training persons' period.
    pub training: String,
    /// The checked (later) persons' period.
    pub check: String,
}

impl Profiling {
    /// The draft's counts the tables print (each group's and each tenth's).
    fn counts(&self) -> Vec<usize> {
        let Ok(f) = &self.outcome else {
            return Vec::new();
        };
        let mut v = vec![f.training];
        for g in &f.groups {
            v.extend([g.persons, g.not_employed, g.flagged, g.flagged_not_employed]);
        }
        for c in &f.classes {
            v.extend([c.persons, c.not_employed]);
        }
        v
    }

    /// Fits `spec` on `table` (each row a person with the unit key in `keys`) and registers
    /// every count the tables publish in `draft`, keyed under `prefix`, with the counts they
    /// let anyone derive. `periods` names
    /// the training and checked persons' periods; by default, the first and last period
    /// of each. A fit that fails is kept with its reason (the tables then say the index
    /// was not estimated).
    pub fn fit(
        table: &Table,
        keys: &[u64],
        spec: ProfileSpec,
        periods: Option<Periods>,
        prefix: &str,
        draft: &mut Draft,
    ) -> Profiling {
        let named = periods.clone().unwrap_or_else(|| Periods {
            training: format!("{}…", spec.train_from.as_deref().unwrap_or("")),
            check: spec.validate_from.clone().unwrap_or_default(),
        });
        let failed = |spec: ProfileSpec, e: String| Profiling {
            periods: named.clone(),
            spec,
            outcome: Err(e),
        };
        let (model, report) = match spec.fit(table) {
            Ok(f) => f,
            Err(e) => return failed(spec, e.to_string()),
        };
        let scores = match model.predict(table) {
            Ok(s) => s,
            Err(e) => return failed(spec, e.to_string()),
        };
        let y = match table.numeric(&spec.outcome) {
            Ok(y) => y,
            Err(e) => return failed(spec, e.to_string()),
        };
        let fitted = register_all(table, keys, &spec, &report, &scores.p, y, prefix, draft);
        let periods = periods.unwrap_or_else(|| {
            // The first and last period label of the rows, as the table writes them.
            let span = |rows: &[usize]| -> String {
                let labels: Vec<String> = table
                    .categories(&spec.period)
                    .map(|(levels, codes)| {
                        rows.iter()
                            .filter_map(|&i| codes[i].map(|c| levels[c as usize].clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                match (labels.iter().min(), labels.iter().max()) {
                    (Some(a), Some(b)) if a == b => a.clone(),
                    (Some(a), Some(b)) => format!("{a}–{b}"),
                    _ => String::new(),
                }
            };
            Periods {
                training: span(&report.training_rows),
                check: span(&report.validation_rows),
            }
        });
        Profiling {
            periods,
            spec,
            outcome: Ok(Fitted {
                report,
                training: fitted.0,
                groups: fitted.1,
                classes: fitted.2,
            }),
        }
    }
}

/// Registers the training persons, the groups and the equal groups of predicted risk.
#[allow(clippy::too_many_arguments)]
fn register_all(
    table: &Table,
    keys: &[u64],
    spec: &ProfileSpec,
    report: &ProfileReport,
    p: &[f64],
    y: &[f64],
    prefix: &str,
    draft: &mut Draft,
) -> (usize, Vec<GroupRow>, Vec<ClassRow>) {
    let val = &report.validation_rows;
    let risk = |i: usize| 1.0 - p[i];
    let event = |i: usize| y[i] == 0.0;
    let flag = |i: usize| risk(i) >= spec.threshold;
    let training = register(
        keys,
        draft,
        &format!("{prefix}/training/persons"),
        &report.training_rows,
        false,
    );
    let register_group = |draft: &mut Draft,
                          key: &str,
                          label: String,
                          rows: &[usize],
                          aware: Option<f64>,
                          fit: Option<&GroupValidation>|
     -> GroupRow {
        let ev: Vec<usize> = rows.iter().copied().filter(|&i| event(i)).collect();
        let fl: Vec<usize> = rows.iter().copied().filter(|&i| flag(i)).collect();
        let tp: Vec<usize> = fl.iter().copied().filter(|&i| event(i)).collect();
        let row = GroupRow {
            label,
            persons: register(keys, draft, &format!("{prefix}/{key}/persons"), rows, true),
            not_employed: register(
                keys,
                draft,
                &format!("{prefix}/{key}/not_employed"),
                &ev,
                false,
            ),
            flagged: register(keys, draft, &format!("{prefix}/{key}/flagged"), &fl, false),
            flagged_not_employed: register(
                keys,
                draft,
                &format!("{prefix}/{key}/flagged_not_employed"),
                &tp,
                false,
            ),
            predicted_risk: rows.iter().map(|&i| risk(i)).sum::<f64>() / rows.len().max(1) as f64,
            auc: fit.and_then(|g| g.auc),
            slope: fit.and_then(|g| g.calibration_slope),
            aware,
        };
        draft.line(vec![row.flagged_not_employed, row.flagged]);
        row
    };
    let mut groups = vec![register_group(draft, "all", String::new(), val, None, None)];
    for column in &spec.groups {
        let Ok(labels) = group_labels(table, column) else {
            continue;
        };
        let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in val {
            if let Some(l) = &labels[i] {
                members.entry(l.clone()).or_default().push(i);
            }
        }
        if members.len() < 2 {
            continue;
        }
        let thresholds = report
            .fairness
            .iter()
            .find(|f| &f.column == column)
            .map(|f| f.group_aware_thresholds.clone())
            .unwrap_or_default();
        let mut line = Vec::new();
        for (level, rows) in &members {
            let fit = report
                .by_group
                .iter()
                .find(|g| &g.column == column && &g.group == level);
            let r = register_group(
                draft,
                &format!("{column}/{level}"),
                format!("{column}\u{1f}{level}"),
                rows,
                thresholds.get(level).copied().filter(|t| t.is_finite()),
                fit,
            );
            line.push(r.persons);
            groups.push(r);
        }
        if members.values().map(Vec::len).sum::<usize>() == val.len() {
            line.push(groups[0].persons);
            draft.line(line);
        }
    }
    // Calibration by equal groups of predicted risk (tenths, fewer when the cohort is
    // small): each group holds an equal share of the cohort by construction, so none is
    // small, where fixed risk classes can be nearly empty and cost the protection dearly.
    let mut by_risk: Vec<usize> = val.clone();
    by_risk.sort_by(|&a, &b| risk(a).total_cmp(&risk(b)).then(a.cmp(&b)));
    // Each part holds at least `min_level` persons (at least the publication's threshold):
    // its size is public, so it must not be a small count.
    let floor = spec.min_level.max(1);
    let parts_n = if by_risk.len() >= 1000 && by_risk.len() / 10 >= floor {
        10
    } else {
        (by_risk.len() / floor).clamp(1, 5)
    };
    let mut classes = Vec::new();
    let mut class_line = Vec::new();
    for g in 0..parts_n {
        let rows = &by_risk[g * by_risk.len() / parts_n..(g + 1) * by_risk.len() / parts_n];
        if rows.is_empty() {
            continue;
        }
        let ev: Vec<usize> = rows.iter().copied().filter(|&i| event(i)).collect();
        let row = ClassRow {
            label: format!(
                "{}\u{1f}{parts_n}\u{1f}{}\u{1f}{}",
                g + 1,
                risk(rows[0]),
                risk(rows[rows.len() - 1])
            ),
            // Anyone computes a tenth's size from the total: public, never hidden for
            // another count's sake (that would protect on paper only).
            persons: draft.public(
                &format!("{prefix}/risk_group/{g}/persons"),
                units_of(keys, rows),
            ),
            not_employed: register(
                keys,
                draft,
                &format!("{prefix}/risk_group/{g}/not_employed"),
                &ev,
                false,
            ),
            predicted_risk: rows.iter().map(|&i| risk(i)).sum::<f64>() / rows.len() as f64,
        };
        class_line.push(row.persons);
        classes.push(row);
    }
    class_line.push(groups[0].persons);
    draft.line(class_line);
    register_derivable(draft, prefix, &groups, &classes);
    (training, groups, classes)
}

/// Counts anyone can derive from the tables without their being printed: within a row, the
/// employed, the false positives and negatives and the true negatives (a printed count
/// less another); each dimension's persons without a group (everyone less the groups). Each
/// joins the draft as a derived count ([`Draft::derived`]): never printed, never fixed in
/// the attacker's system, and when small, protected by the audit like any small count.
/// (The counts with a threshold per group are not published for the same reason: they
/// differ from the common threshold's by a few persons.)
fn register_derivable(draft: &mut Draft, prefix: &str, groups: &[GroupRow], classes: &[ClassRow]) {
    let mut found: Vec<(String, Units)> = Vec::new();
    let minus = |d: &Draft, a: usize, b: usize| -> Units {
        let drop: std::collections::HashSet<u64> = d.counts[b].units.iter().copied().collect();
        d.counts[a]
            .units
            .iter()
            .copied()
            .filter(|u| !drop.contains(u))
            .collect()
    };
    // Within a row: the employed (persons less not employed), the false positives (flagged
    // less flagged not employed), the false negatives and the true negatives.
    for (k, g) in groups.iter().enumerate() {
        let employed = minus(draft, g.persons, g.not_employed);
        let not_flagged = minus(draft, g.persons, g.flagged);
        let tn: Units = {
            let ne: std::collections::HashSet<u64> =
                draft.counts[g.not_employed].units.iter().copied().collect();
            not_flagged
                .iter()
                .copied()
                .filter(|u| !ne.contains(u))
                .collect()
        };
        for (m, u) in [
            ("employed", employed),
            (
                "false_positive",
                minus(draft, g.flagged, g.flagged_not_employed),
            ),
            (
                "false_negative",
                minus(draft, g.not_employed, g.flagged_not_employed),
            ),
            ("not_flagged", not_flagged),
            ("true_negative", tn),
        ] {
            found.push((format!("{prefix}/row/{k}/{m}"), u));
        }
    }
    for (k, c) in classes.iter().enumerate() {
        found.push((
            format!("{prefix}/risk_group/{k}/employed"),
            minus(draft, c.persons, c.not_employed),
        ));
    }
    // Everyone less the groups of one dimension (persons without a value of it).
    if let Some(all) = groups.first() {
        let mut dims: Vec<&str> = Vec::new();
        for g in &groups[1..] {
            let d = g.label.split('\u{1f}').next().unwrap_or_default();
            if !dims.contains(&d) {
                dims.push(d);
            }
        }
        for dim in dims {
            let members: Vec<&GroupRow> = groups[1..]
                .iter()
                .filter(|g| g.label.split('\u{1f}').next() == Some(dim))
                .collect();
            let pick: [fn(&GroupRow) -> usize; 4] = [
                |g| g.persons,
                |g| g.not_employed,
                |g| g.flagged,
                |g| g.flagged_not_employed,
            ];
            for (m, f) in pick.iter().enumerate() {
                let covered: std::collections::HashSet<u64> = members
                    .iter()
                    .flat_map(|g| draft.counts[f(g)].units.iter().copied())
                    .collect();
                let rest: Units = draft.counts[f(all)]
                    .units
                    .iter()
                    .copied()
                    .filter(|u| !covered.contains(u))
                    .collect();
                if !rest.is_empty() {
                    found.push((format!("{prefix}/{dim}/no_group/{m}"), rest));
                }
            }
        }
    }
    for (key, mut u) in found.into_iter().filter(|(_, u)| !u.is_empty()) {
        u.sort_unstable();
        draft.derived(&key, u);
    }
}

fn pct(x: f64) -> f64 {
    100.0 * x
}

fn group_label(label: &str, lang: Lang) -> String {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    if label.is_empty() {
        return t("Tutte le persone", "Everyone");
    }
    let (column, level) = label.split_once('\u{1f}').unwrap_or(("", label));
    let dim = match column {
        "sex" => t("Sesso", "Sex"),
        "citizenship_group" => t("Cittadinanza", "Citizenship"),
        "age_band" => t("Età", "Age"),
        other => other.to_string(),
    };
    let value = match (column, level) {
        ("sex", "F") => t("donne", "women"),
        ("sex", "M") => t("uomini", "men"),
        ("citizenship_group", "ITA") => t("italiana", "Italian"),
        ("citizenship_group", "EU") => t("altro Paese UE", "other EU"),
        ("citizenship_group", "non-EU") => t("extra UE", "non-EU"),
        _ => level.to_string(),
    };
    format!("{dim}: {value}")
}

impl Profiling {
    /// Why the index could not be estimated, if it could not.
    pub fn error(&self) -> Option<&str> {
        self.outcome.as_ref().err().map(String::as_str)
    }

    /// The spec the index was fitted with (the report's provenance).
    pub fn spec_json(&self) -> serde_json::Value {
        serde_json::json!({
            "computation": "occupa_engine::profile::ProfileSpec::fit on the stacked analysis tables",
            "spec": self.spec,
            "training": self.periods.training,
            "check": self.periods.check,
        })
    }

    /// The index's AUC with its interval and its calibration slope on the checked persons.
    pub fn headline(&self) -> Option<(f64, f64, f64, f64)> {
        let f = self.outcome.as_ref().ok()?;
        // Not a count: a rank statistic and a slope say nothing of how many persons there
        // are (the validation holds at least 20), so they are shown with the count hidden.
        let v = &f.report.validation;
        Some((
            v.discrimination.auc,
            v.discrimination.ci95.0,
            v.discrimination.ci95.1,
            v.calibration.slope,
        ))
    }

    /// The section, with the counts as protection left them.
    pub(crate) fn section(&self, shown: &dyn Fn(usize) -> Option<u64>, lang: Lang) -> Section {
        let t = |it: &str, en: &str| lang.t(it, en).to_string();
        let (training, cohort) = (&self.periods.training, &self.periods.check);
        let mut text = vec![if lang == Lang::It {
            format!(
                "L'indice di occupabilità è la probabilità di essere occupati 12 mesi dopo la presa in carico, stimata con un modello logistico sulle persone prese in carico nel periodo {training} a partire da ciò che si sa il giorno della presa in carico (età, sesso, cittadinanza, titolo di studio, disabilità, sostegno al reddito, presa in carico dei servizi sociali, punteggi GOL, scale ASSO e ISA{}). È verificato sulle persone prese in carico nel periodo {cohort}, che il modello non ha visto: un periodo successivo, non un campione casuale, come accadrebbe usandolo. Il rischio è la probabilità di non essere occupati; una persona è segnalata a rischio quando supera il {} %.",
                if self.spec.covariates.iter().any(|c| c == "tenant") {
                    ", ente"
                } else {
                    ""
                },
                fmt_figure(Some(pct(self.spec.threshold)), 0, lang)
            )
        } else {
            format!(
                "The employability index is the probability of being employed 12 months after taking charge, estimated by a logistic model on the persons taken in charge in {training} from what is known on the day of taking charge (age, sex, citizenship, education, disability, income support, social services' care, GOL scores, ASSO and ISA scales{}). It is checked on the persons taken in charge in {cohort}, whom the model did not see: a later period, not a random sample, as in use. The risk is the probability of not being employed; a person is flagged at risk above {} %.",
                if self.spec.covariates.iter().any(|c| c == "tenant") {
                    ", authority"
                } else {
                    ""
                },
                fmt_figure(Some(pct(self.spec.threshold)), 0, lang)
            )
        }];
        let heading = t("Indice di occupabilità", "Employability index");
        if self.outcome.is_err() {
            {
                text.push(if lang == Lang::It {
                    format!("L'indice non è stato stimato: i dati non bastano per stimarlo sulle persone prese in carico nel periodo {training} e verificarlo su quelle del periodo {cohort} (servono almeno 20 persone per periodo con l'esito a 12 mesi osservato e le variabili del modello).")
                } else {
                    format!("The index was not estimated: the data do not suffice to fit it on the persons taken in charge in {training} and check it on those of {cohort} (at least 20 persons per period with the 12-month outcome observed and the model's variables are needed).")
                });
                return Section {
                    heading,
                    text,
                    tables: Vec::new(),
                    figures: Vec::new(),
                    charts: Vec::new(),
                    chart_data: None,
                };
            }
        };
        text.push(t(
            "Discriminazione: l'AUC è la probabilità che una persona poi non occupata abbia un rischio più alto di una poi occupata (0,5 = a caso; intervallo di DeLong). Calibrazione: la pendenza vale 1 quando i rischi previsti non sono né troppo estremi (sotto 1) né troppo timidi (sopra 1); l'intercetta (calibrazione complessiva) vale 0 quando il rischio medio previsto è quello osservato. L'indice di Brier è lo scarto quadratico medio tra probabilità ed esito.",
            "Discrimination: the AUC is the probability that a person later not employed has a higher risk than one later employed (0.5 = chance; DeLong's interval). Calibration: the slope is 1 when the predicted risks are neither too extreme (below 1) nor too timid (above 1); the intercept (calibration-in-the-large) is 0 when the mean predicted risk is the observed one. The Brier score is the mean squared gap between probability and outcome.",
        ));
        if self.spec.groups.is_empty() {
            text.push(t(
                "Le tabelle per sesso, cittadinanza ed età sono nel rapporto complessivo di tutti gli enti: in un solo ente i gruppi sono piccoli e i loro tassi d'errore rumore. Il personale dell'ente le vede per i propri dati con occupa profile fit, che non pubblica nulla.",
                "The tables by sex, citizenship and age are in the pooled report of every authority: within one authority the groups are small and their error rates noise. The authority's staff see them for their own data with occupa profile fit, which publishes nothing.",
            ));
        }
        text.push(t(
            "Equità: per gruppo, la quota osservata di non occupati accanto al rischio medio previsto (calibrazione per gruppo), e tra le persone poi non occupate la quota segnalata (tasso di veri positivi), tra quelle poi occupate la quota segnalata per errore (falsi positivi). A destra, la soglia di rischio che darebbe al gruppo il tasso di veri positivi di tutti: quanto si discosta dalla soglia comune misura quanto l'indice tratta il gruppo diversamente; è il compromesso tra accuratezza ed equità, non una raccomandazione. I conteggi con le soglie per gruppo non sono pubblicati: differirebbero da quelli con la soglia comune di poche persone, ricavabili per differenza; occupa profile fit li mostra al personale dell'ente.",
            "Fairness: by group, the observed share not employed beside the mean predicted risk (calibration by group), and among the persons later not employed the share flagged (true positive rate), among those later employed the share flagged in error (false positives). On the right, the risk threshold that would give the group everyone's true positive rate: how far it is from the common threshold measures how differently the index treats the group; the accuracy–equity trade-off, not a recommendation. The counts with the thresholds per group are not published: they would differ from those with the common threshold by a few persons, recoverable by difference; occupa profile fit shows them to the authority's staff.",
        ));
        let figures = self.tables(shown, lang);
        if figures.iter().any(|f| f.id == "profile_marginal_effects") {
            text.push(t(
                "Gli effetti marginali medi dicono di quanto cambia in media la probabilità di essere occupati a 12 mesi per un anno d'età in più, un punto in più di un punteggio o il passaggio da una categoria a quella di riferimento, a parità delle altre caratteristiche del modello. Sono associazioni, non effetti causali. Le categorie con meno di 20 persone (o meno della soglia di pubblicazione) sono riunite in «(other)» o, se anche insieme sono poche, nella categoria più frequente.",
                "The average marginal effects say how much, on average, the probability of being employed at 12 months changes for one more year of age, one more point of a score, or a category against the reference one, the model's other characteristics held equal. They are associations, not causal effects. Categories with fewer than 20 persons (or fewer than the publication threshold) are pooled into «(other)» or, when even together they are few, into the most frequent category.",
            ));
        }
        Section {
            heading,
            text,
            tables: Vec::new(),
            figures,
            charts: Vec::new(),
            chart_data: None,
        }
    }
    /// The tables, with the counts as protection left them (none when the index could
    /// not be estimated): discrimination and calibration, calibration by group, fairness,
    /// equal groups of predicted risk, and the average marginal effects of a regression.
    pub fn tables(&self, shown: &dyn Fn(usize) -> Option<u64>, lang: Lang) -> Vec<FigureTable> {
        let t = |it: &str, en: &str| lang.t(it, en).to_string();
        let (training, cohort) = (&self.periods.training, &self.periods.check);
        let Ok(f) = &self.outcome else {
            return Vec::new();
        };
        let r = &f.report;
        let count = |i: usize| shown(i).map(|v| v as f64);
        let ratio = |a: usize, b: usize| match (shown(a), shown(b)) {
            (Some(a), Some(b)) if b > 0 => Some(pct(a as f64 / b as f64)),
            _ => None,
        };
        let all = &f.groups[0];
        // The model's figures on the training and checked persons are shown even when
        // their counts are hidden (see `headline`); a group's only with its count.
        let val_shown = true;
        let train_shown = true;
        let quality_row = |label: String, n: usize, v: &Validation, ok: bool| {
            (
                label,
                vec![
                    count(n),
                    ok.then_some(v.discrimination.auc),
                    ok.then_some(v.discrimination.ci95.0),
                    ok.then_some(v.discrimination.ci95.1),
                    ok.then_some(v.brier),
                    ok.then_some(v.calibration.slope),
                    ok.then_some(v.calibration.intercept),
                ],
            )
        };
        let quality = FigureTable {
            id: "profile_quality".into(),
            title: t(
                "Indice di occupabilità: discriminazione e calibrazione",
                "Employability index: discrimination and calibration",
            ),
            keys: [
                "persons_of",
                "persons",
                "auc",
                "auc_lo95",
                "auc_hi95",
                "brier",
                "calibration_slope",
                "calibration_intercept",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Persone", "Persons"),
                t("Numero", "Number"),
                t("AUC", "AUC"),
                t("IC 95% inf.", "95% low"),
                t("IC 95% sup.", "95% high"),
                t("Brier", "Brier"),
                t("Pendenza di calibrazione", "Calibration slope"),
                t("Intercetta di calibrazione", "Calibration intercept"),
            ],
            decimals: vec![0, 3, 3, 3, 3, 2, 2],
            rows: vec![
                quality_row(
                    format!(
                        "{} {training} ({})",
                        t("prese in carico nel", "taken in charge in"),
                        t("stima, in sample", "fit, in sample")
                    ),
                    f.training,
                    &r.training,
                    train_shown,
                ),
                quality_row(
                    format!(
                        "{} {cohort} ({})",
                        t("prese in carico nel", "taken in charge in"),
                        t("verifica", "check")
                    ),
                    all.persons,
                    &r.validation,
                    val_shown,
                ),
            ],
            notes: Vec::new(),
        };
        let calibration_rows = f
            .groups
            .iter()
            .map(|g| {
                let ok = shown(g.persons).is_some();
                (
                    group_label(&g.label, lang),
                    vec![
                        count(g.persons),
                        count(g.not_employed),
                        ratio(g.not_employed, g.persons),
                        ok.then_some(pct(g.predicted_risk)),
                        if g.label.is_empty() {
                            val_shown.then_some(r.validation.discrimination.auc)
                        } else {
                            g.auc.filter(|_| ok)
                        },
                        if g.label.is_empty() {
                            val_shown.then_some(r.validation.calibration.slope)
                        } else {
                            g.slope.filter(|_| ok)
                        },
                    ],
                )
            })
            .collect();
        let calibration = FigureTable {
            id: "profile_calibration_by_group".into(),
            title: format!(
                "{} {cohort}",
                t(
                    "Calibrazione per gruppo: non occupati a 12 mesi osservati e previsti, persone prese in carico nel",
                    "Calibration by group: not employed at 12 months observed and predicted, persons taken in charge in"
                )
            ),
            keys: [
                "group",
                "persons",
                "not_employed",
                "not_employed_pct",
                "predicted_risk_pct",
                "auc",
                "calibration_slope",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Gruppo", "Group"),
                t("Persone", "Persons"),
                t("Non occupate a 12 mesi", "Not employed at 12 months"),
                t("Osservato (%)", "Observed (%)"),
                t("Rischio medio previsto (%)", "Mean predicted risk (%)"),
                t("AUC", "AUC"),
                t("Pendenza di calibrazione", "Calibration slope"),
            ],
            decimals: vec![0, 0, 1, 1, 3, 2],
            rows: calibration_rows,
            notes: Vec::new(),
        };
        // False positives: the flagged less the flagged among the not employed, over the
        // employed (persons less not employed); all four counts must be shown.
        let fpr = |flagged: usize, tp: usize, persons: usize, events: usize| match (
            shown(flagged),
            shown(tp),
            shown(persons),
            shown(events),
        ) {
            (Some(f), Some(tp), Some(n), Some(e)) if n > e => {
                Some(pct(f.saturating_sub(tp) as f64 / (n - e) as f64))
            }
            _ => None,
        };
        let fairness_rows = f
            .groups
            .iter()
            .map(|g| {
                let mut v = vec![
                    count(g.flagged),
                    count(g.flagged_not_employed),
                    ratio(g.flagged, g.persons),
                    ratio(g.flagged_not_employed, g.not_employed),
                    fpr(g.flagged, g.flagged_not_employed, g.persons, g.not_employed),
                ];
                v.push(g.aware.filter(|_| shown(g.persons).is_some()).map(pct));
                (group_label(&g.label, lang), v)
            })
            .collect();
        let mut fairness_notes = vec![String::new(); f.groups.len()];
        fairness_notes[0] = t(
            "soglia comune; le soglie per gruppo sono nelle righe dei gruppi",
            "common threshold; the thresholds per group are on the groups' rows",
        );
        let fairness = FigureTable {
            id: "profile_fairness".into(),
            title: format!(
                "{} {} %{}",
                t(
                    "Persone segnalate a rischio ed errori per gruppo, alla soglia comune del",
                    "Persons flagged at risk and errors by group, at the common threshold of"
                ),
                fmt_figure(Some(pct(self.spec.threshold)), 0, lang),
                t(
                    " e con una soglia per gruppo",
                    " and with a threshold per group"
                )
            ),
            keys: [
                "group",
                "flagged",
                "flagged_not_employed",
                "flagged_pct",
                "true_positive_rate_pct",
                "false_positive_rate_pct",
                "own_threshold_pct",
                "note",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Gruppo", "Group"),
                t("Segnalate", "Flagged"),
                t("di cui non occupate", "of whom not employed"),
                t("Segnalate (%)", "Flagged (%)"),
                t("Veri positivi (%)", "True positive rate (%)"),
                t("Falsi positivi (%)", "False positive rate (%)"),
                t(
                    "Soglia per i veri positivi di tutti (%)",
                    "Threshold for everyone's true positive rate (%)",
                ),
                t("Nota", "Note"),
            ],
            decimals: vec![0, 0, 1, 1, 1, 1],
            rows: fairness_rows,
            notes: fairness_notes,
        };
        let class_rows = f
            .classes
            .iter()
            .map(|c| {
                let mut it = c.label.split('\u{1f}');
                let (k, of, lo, hi) = (
                    it.next().unwrap_or_default(),
                    it.next().unwrap_or_default(),
                    it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0),
                    it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(1.0),
                );
                (
                    format!(
                        "{k}/{of} ({} {}–{} %)",
                        t("rischio", "risk"),
                        fmt_figure(Some(pct(lo)), 0, lang),
                        fmt_figure(Some(pct(hi)), 0, lang)
                    ),
                    vec![
                        count(c.persons),
                        count(c.not_employed),
                        ratio(c.not_employed, c.persons),
                        shown(c.persons).map(|_| pct(c.predicted_risk)),
                    ],
                )
            })
            .collect();
        let classes = FigureTable {
            id: "profile_reliability".into(),
            title: format!(
                "{} {cohort}",
                t(
                    "Calibrazione: persone in gruppi uguali per rischio previsto di non essere occupate a 12 mesi, quota osservata e rischio medio previsto, persone prese in carico nel",
                    "Calibration: persons in equal groups by predicted risk of not being employed at 12 months, observed share and mean predicted risk, persons taken in charge in"
                )
            ),
            keys: [
                "risk_group",
                "persons",
                "not_employed",
                "not_employed_pct",
                "predicted_risk_pct",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Gruppo di rischio", "Risk group"),
                t("Persone", "Persons"),
                t("Non occupate a 12 mesi", "Not employed at 12 months"),
                t("Osservato (%)", "Observed (%)"),
                t("Rischio medio previsto (%)", "Mean predicted risk (%)"),
            ],
            decimals: vec![0, 0, 1, 1],
            rows: class_rows,
            notes: Vec::new(),
        };
        let mut figures = vec![quality, calibration, fairness, classes];
        if !r.marginal_effects.is_empty() && train_shown {
            let rows = r
                .marginal_effects
                .iter()
                .filter(|m| m.variable != "tenant")
                .map(|m| {
                    let label = match (&m.level, &m.reference) {
                        (Some(l), Some(rf)) => {
                            format!("{}: {l} ({} {rf})", m.variable, t("rispetto a", "against"))
                        }
                        _ => m.variable.clone(),
                    };
                    (
                        label,
                        vec![
                            Some(pct(m.effect)),
                            Some(pct(m.ci95.0)),
                            Some(pct(m.ci95.1)),
                            Some(m.p_value),
                        ],
                    )
                })
                .collect();
            figures.push(FigureTable {
                id: "profile_marginal_effects".into(),
                title: format!(
                    "{} {training}",
                    t(
                        "Cosa rende più facile il reinserimento: effetti marginali medi sulla probabilità di essere occupati a 12 mesi (punti %), persone prese in carico nel",
                        "What makes re-employment easier: average marginal effects on the probability of being employed at 12 months (% points), persons taken in charge in"
                    )
                ),
                keys: ["variable", "effect_pp", "lo95_pp", "hi95_pp", "p_value"]
                    .map(String::from)
                    .to_vec(),
                headers: vec![
                    t("Variabile", "Variable"),
                    t("Effetto (punti %)", "Effect (% points)"),
                    t("IC 95% inf.", "95% low"),
                    t("IC 95% sup.", "95% high"),
                    t("p", "p"),
                ],
                decimals: vec![2, 2, 2, 3],
                rows,
                notes: Vec::new(),
            });
        }
        figures
    }
}
