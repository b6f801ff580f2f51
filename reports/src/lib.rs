//! # occupa-reports
//!
//! The quarterly report: a [`Report`] model built from the engine's indicators, every
//! count protected by the anonymiser's threshold rule, rendered to HTML, PDF (typst),
//! XLSX and CSV. Italian is the default language; English with [`Lang::En`].
//!
//! ```
//! use occupa_anonymiser::{MinCount, publication::Rule};
//! use occupa_engine::indicators::Quarter;
//! use occupa_reports::{Lang, Report};
//!
//! let q = Quarter::parse("2026Q3")?;
//! let published = Report::quarterly(q, &[], Lang::It, Rule::new(MinCount::default()), &[], "pooled")?;
//! assert!(published.report.title.contains("2026Q3"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod annual;
pub mod causal_plots;
pub mod cluster_plots;
pub mod demand;
pub mod map;
pub mod pdf;
pub mod profiles;
pub mod profiling;
mod render;
pub mod study;
mod trend;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use occupa_anonymiser::publication::{Draft, Prior, Protection, Rule, protect};
use occupa_engine::indicators::{Quarter, TenantQuarter, Units};
use serde::Serialize;

pub use render::{chart_svg, html, json, markup};

/// Two-sided p-value under which an operator's outcomes are flagged as shifted: the
/// 99.8 % of the adjustments' flags (|z| ≥ 3.09).
const SHIFT_P: f64 = 0.002;

/// Errors of the reports crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing an output failed.
    #[error("{path}: {reason}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The PDF could not be typeset.
    #[error("PDF: {0}")]
    Pdf(String),
    /// Table protection failed.
    #[error(transparent)]
    Anonymiser(#[from] occupa_anonymiser::Error),
}

/// Result with the reports' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Report language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Lang {
    /// Italian (default).
    #[default]
    It,
    /// English.
    En,
}

impl Lang {
    /// Parses `it` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "it" | "ita" | "italiano" => Some(Lang::It),
            "en" | "eng" | "english" => Some(Lang::En),
            _ => None,
        }
    }
    fn t<'a>(self, it: &'a str, en: &'a str) -> &'a str {
        if self == Lang::It { it } else { en }
    }
}

/// A published table: labels and protected cells; `None` marks a suppressed value.
#[derive(Debug, Clone, Serialize)]
pub struct PubTable {
    /// Sheet-safe identifier.
    pub id: String,
    /// Title.
    pub title: String,
    /// Header of the label column.
    pub label_header: String,
    /// Column headers (values only).
    pub columns: Vec<String>,
    /// Rows: label and values; the last row is the total when `has_total`.
    pub rows: Vec<(String, Vec<Option<u64>>)>,
    /// Whether the last row is a total.
    pub has_total: bool,
    /// Values hidden by the threshold rule.
    pub suppressed: usize,
}

/// One section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Heading.
    pub heading: String,
    /// Paragraphs of text.
    pub text: Vec<String>,
    /// Tables.
    pub tables: Vec<PubTable>,
    /// Tables of figures other than counts (ratios, expected numbers), after `tables`.
    pub figures: Vec<FigureTable>,
    /// SVG charts (a chart for each message), each with an accessible title.
    pub charts: Vec<String>,
    /// The chart's data, as published.
    pub chart_data: Option<ChartData>,
}

/// A published table whose cells are numbers of any kind (counts, expected numbers,
/// ratios), each column with its decimals; a row whose counts protection hid has every
/// figure hidden (a ratio would give its count back).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FigureTable {
    /// Sheet-safe identifier.
    pub id: String,
    /// Title.
    pub title: String,
    /// Stable English column ids, the label's first (what JSON and CSV name them).
    pub keys: Vec<String>,
    /// Column headers in the report's language, the label's first.
    pub headers: Vec<String>,
    /// Decimals of each value column (0 for a count).
    pub decimals: Vec<usize>,
    /// Rows: label and values (`None` hidden).
    pub rows: Vec<(String, Vec<Option<f64>>)>,
    /// A text per row after the values (a grade, why an estimate is withheld), when the
    /// table has them: `keys` and `headers` then end with the note's.
    pub notes: Vec<String>,
}

impl FigureTable {
    /// The table as CSV (`x` for a hidden value), as the reports write it.
    pub fn csv(&self) -> String {
        render::figure_csv(self)
    }
}

/// A chart's id and points (label, value; `None` hidden).
pub type ChartData = (String, Vec<(String, Option<u64>)>);

/// What the protection of a report established, as the report states it (no value of a
/// hidden count, only how many there are and that each is protected).
#[derive(Debug, Clone, Serialize)]
pub struct ProtectionSummary {
    /// Smallest count shown.
    pub min_count: u64,
    /// Protection range, as a share of the threshold.
    pub range: f64,
    /// Counts hidden, of which below the threshold.
    pub hidden: usize,
    /// Of the hidden, below the threshold.
    pub primary: usize,
    /// Earlier publications of the store this one was protected against.
    pub prior_publications: usize,
    /// Small counts of earlier publications checked again.
    pub prior_checked: usize,
    /// Whether the interval audit proved every small count covers its range.
    pub all_protected: bool,
    /// Linear programmes the audit solved.
    pub audit_solves: usize,
    /// Seconds the protection took.
    pub seconds: f64,
}

impl ProtectionSummary {
    /// What a report states of its protection: the rule and the audit's figures.
    pub(crate) fn new(rule: Rule, a: &occupa_anonymiser::publication::AuditReport) -> Self {
        ProtectionSummary {
            min_count: rule.min,
            range: rule.range,
            hidden: a.hidden,
            primary: a.primary,
            prior_publications: a.prior_publications,
            prior_checked: a.prior_checked,
            all_protected: a.all_protected,
            audit_solves: a.solves,
            seconds: a.seconds,
        }
    }
}

/// The report model, independent of the output format.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Stable id of the publication (`quarterly/2026Q3/pooled`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Subtitle (scope and date).
    pub subtitle: String,
    /// The period.
    pub period: String,
    /// Language.
    pub lang: Lang,
    /// Sections in order.
    pub sections: Vec<Section>,
    /// Note on confidentiality.
    pub privacy_note: String,
    /// Threshold used.
    pub min_count: u64,
    /// What the protection established.
    pub protection: ProtectionSummary,
    /// Where the tables come from.
    pub provenance: Provenance,
}

/// The analysis each table of a quarterly report comes from (its spec in
/// [`Provenance::specs`]).
pub(crate) fn spec_of(table: &str) -> &'static str {
    match table {
        "outcomes" => "outcomes",
        "operators" | "operator_outcome_shifts" => "operators",
        "data_quality" => "audit",
        "service_effects" | "effects_by_profile" => "effects",
        "isa_before_after" | "isa_change" | "adjustment_audit" | "operator_shifts" => "intake",
        t if t.starts_with("demand") => "demand",
        t if t.starts_with("intake") || t == "gol_adjustments" || t == "occupability_profiles" => {
            "intake"
        }
        _ => "indicators",
    }
}

/// A report with what it publishes and how it was protected: what the ledger records.
#[derive(Debug, Clone)]
pub struct Published {
    /// The report.
    pub report: Report,
    /// Every count it shows or hides.
    pub draft: Draft,
    /// Their protection.
    pub protection: Protection,
}

/// A table laid out by count indices (`None`: no value at that place).
struct Layout {
    id: String,
    title: String,
    label_header: String,
    columns: Vec<String>,
    rows: Vec<(String, Vec<Option<usize>>)>,
    has_total: bool,
}

impl Layout {
    fn publish(&self, draft: &Draft, p: &Protection) -> PubTable {
        let rows: Vec<(String, Vec<Option<u64>>)> = self
            .rows
            .iter()
            .map(|(l, v)| {
                (
                    l.clone(),
                    v.iter()
                        .map(|c| c.and_then(|c| p.shown(draft, c)))
                        .collect(),
                )
            })
            .collect();
        let suppressed = self
            .rows
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .filter(|&&c| p.shown(draft, c).is_none())
            .count();
        PubTable {
            id: self.id.clone(),
            title: self.title.clone(),
            label_header: self.label_header.clone(),
            columns: self.columns.clone(),
            rows,
            has_total: self.has_total,
            suppressed,
        }
    }
}

fn union<'a>(sets: impl IntoIterator<Item = &'a Units>) -> Units {
    let mut v: Units = sets.into_iter().flat_map(|s| s.iter().copied()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Registers a pooled count and, when it pools several authorities, each authority's
/// part with the line tying them: an authority's own report publishes its part, so the
/// pooled total and the parts are protected as one system (a pooled total less the
/// other authorities' published parts would otherwise give a hidden part back).
pub(crate) fn pooled_count(
    draft: &mut Draft,
    key: &str,
    parts: Vec<(String, Units)>,
    margin: bool,
) -> usize {
    let total = draft.count(key, union(parts.iter().map(|p| &p.1)), margin);
    if parts.len() > 1 {
        let mut line: Vec<usize> = parts
            .into_iter()
            .map(|(tenant, set)| draft.count(&format!("{key}/{tenant}"), set, false))
            .collect();
        line.push(total);
        draft.line(line);
    }
    total
}

/// Registers a tenant × category table with row totals (when `row_totals`) and column
/// totals, and its lines.
#[allow(clippy::too_many_arguments)]
fn two_way(
    draft: &mut Draft,
    lang: Lang,
    id: &str,
    title: String,
    tenants: &[TenantQuarter],
    cols: &[String],
    col_labels: &[String],
    get: impl Fn(&TenantQuarter, &str) -> Units,
    row_totals: bool,
) -> Layout {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let mut rows = Vec::new();
    let mut grid: Vec<Vec<usize>> = Vec::new();
    let mut sets: Vec<Vec<Units>> = Vec::new();
    for tq in tenants {
        let row_sets: Vec<Units> = cols.iter().map(|c| get(tq, c)).collect();
        let mut idx: Vec<usize> = cols
            .iter()
            .zip(&row_sets)
            .map(|(c, u)| draft.count(&format!("{id}/{}/{c}", tq.tenant), u.clone(), false))
            .collect();
        if row_totals {
            let tot = draft.count(&format!("{id}/{}/total", tq.tenant), union(&row_sets), true);
            idx.push(tot);
            draft.line(idx.clone());
        }
        rows.push((tq.tenant.clone(), idx.iter().map(|&i| Some(i)).collect()));
        grid.push(idx);
        sets.push(row_sets);
    }
    let ncol = cols.len() + row_totals as usize;
    let mut total_row = Vec::with_capacity(ncol);
    for c in 0..ncol {
        let u = if c < cols.len() {
            union(sets.iter().map(|r| &r[c]))
        } else {
            union(sets.iter().flatten())
        };
        let key = if c < cols.len() {
            cols[c].as_str()
        } else {
            "total"
        };
        let tot = draft.count(&format!("{id}/total/{key}"), u, true);
        let mut line: Vec<usize> = grid.iter().map(|r| r[c]).collect();
        line.push(tot);
        draft.line(line);
        total_row.push(tot);
    }
    if row_totals {
        draft.line(total_row.clone());
    }
    rows.push((
        t("Totale", "Total"),
        total_row.into_iter().map(Some).collect(),
    ));
    let mut columns = col_labels.to_vec();
    if row_totals {
        columns.push(t("Totale", "Total"));
    }
    Layout {
        id: id.into(),
        title,
        label_header: t("Ente", "Authority"),
        columns,
        rows,
        has_total: true,
    }
}

impl Report {
    /// Builds the quarterly report from the tenants' indicators, and protects everything
    /// it publishes (tables, chart and sentences) jointly, against `prior` publications
    /// too. `scope` names the report (`pooled`, or the tenant of a tenant's report).
    pub fn quarterly(
        q: Quarter,
        tenants: &[TenantQuarter],
        lang: Lang,
        rule: Rule,
        prior: &[Prior],
        scope: &str,
    ) -> Result<Published> {
        Self::quarterly_with(q, tenants, lang, rule, prior, scope, &Analyses::default())
    }

    /// [`Report::quarterly`] with the operator ratings of each tenant (its operators'
    /// re-employment against the expected from their intake mix), shown as the
    /// `operators` table and a funnel plot; persons and observed counts are counts of the
    /// publication, and a row whose counts are hidden shows no figure.
    pub fn quarterly_with(
        q: Quarter,
        tenants: &[TenantQuarter],
        lang: Lang,
        rule: Rule,
        prior: &[Prior],
        scope: &str,
        analyses: &Analyses,
    ) -> Result<Published> {
        let operators = &analyses.operators;
        let t = |it: &str, en: &str| lang.t(it, en).to_string();
        let id = format!("quarterly/{q}/{scope}");
        let mut draft = Draft::new(&id);

        // 1. Stock and flow: start + inflow − outflow = end, a line per tenant and total.
        let flow_cols = ["stock_start", "inflow", "outflow", "stock_end"];
        let flow_layout = {
            let mut rows = Vec::new();
            let mut grid = Vec::new();
            for tq in tenants {
                let f = &tq.flow_units;
                let sets = [&f.stock_start, &f.inflow, &f.outflow, &f.stock_end];
                let idx: Vec<usize> = flow_cols
                    .iter()
                    .zip(sets)
                    .map(|(c, u)| draft.count(&format!("flow/{}/{c}", tq.tenant), u.clone(), false))
                    .collect();
                draft.line(idx.clone());
                rows.push((tq.tenant.clone(), idx.iter().map(|&i| Some(i)).collect()));
                grid.push(idx);
            }
            let mut total = Vec::new();
            for (c, col) in flow_cols.iter().enumerate() {
                let u = union(tenants.iter().map(|tq| match c {
                    0 => &tq.flow_units.stock_start,
                    1 => &tq.flow_units.inflow,
                    2 => &tq.flow_units.outflow,
                    _ => &tq.flow_units.stock_end,
                }));
                let i = draft.count(&format!("flow/total/{col}"), u, true);
                let mut line: Vec<usize> = grid.iter().map(|r| r[c]).collect();
                line.push(i);
                draft.line(line);
                total.push(i);
            }
            draft.line(total.clone());
            rows.push((t("Totale", "Total"), total.into_iter().map(Some).collect()));
            Layout {
                id: "stock_flow".into(),
                title: t(
                    "Stock e flussi delle persone in carico",
                    "Stock and flow of persons in charge",
                ),
                label_header: t("Ente", "Authority"),
                columns: vec![
                    t("In carico a inizio trimestre", "In charge at start"),
                    t("Ingressi", "Inflow"),
                    t("Uscite", "Outflow"),
                    t("In carico a fine trimestre", "In charge at end"),
                ],
                rows,
                has_total: true,
            }
        };
        // The chart: the total end stock of the last quarters.
        let mut history: Vec<(String, usize)> = Vec::new();
        if let Some(first) = tenants.first() {
            for (k, (hq, _)) in first.stock_history.iter().enumerate() {
                let u = union(
                    tenants
                        .iter()
                        .filter_map(|tq| tq.stock_history.get(k).map(|h| &h.1)),
                );
                history.push((
                    hq.to_string(),
                    draft.count(&format!("stock_end/total@{hq}"), u, true),
                ));
            }
        }

        // 2. Who is in charge.
        let sexes = vec!["F".to_string(), "M".to_string()];
        let by_sex = two_way(
            &mut draft,
            lang,
            "by_sex",
            t(
                "In carico a fine trimestre per sesso",
                "In charge at the end by sex",
            ),
            tenants,
            &sexes,
            &sexes,
            |tq, c| tq.stock_by_sex.get(c).cloned().unwrap_or_default(),
            true,
        );
        let cits = vec![
            "italiana".to_string(),
            "UE".to_string(),
            "extra UE".to_string(),
        ];
        let cit_labels: Vec<String> = if lang == Lang::En {
            vec!["Italian".into(), "other EU".into(), "non-EU".into()]
        } else {
            cits.clone()
        };
        let by_cit = two_way(
            &mut draft,
            lang,
            "by_citizenship",
            t(
                "In carico a fine trimestre per cittadinanza",
                "In charge at the end by citizenship",
            ),
            tenants,
            &cits,
            &cit_labels,
            |tq, c| tq.stock_by_citizenship.get(c).cloned().unwrap_or_default(),
            true,
        );
        let mut provinces: Vec<String> = tenants
            .iter()
            .flat_map(|tq| tq.stock_by_province.keys().cloned())
            .collect();
        provinces.sort();
        provinces.dedup();
        let by_prov = two_way(
            &mut draft,
            lang,
            "by_province",
            t(
                "In carico a fine trimestre per provincia di residenza",
                "In charge at the end by province of residence",
            ),
            tenants,
            &provinces,
            &provinces,
            |tq, c| tq.stock_by_province.get(c).cloned().unwrap_or_default(),
            true,
        );

        // Age band, education and the vulnerable groups the data records.
        let keys_of = |get: &dyn Fn(&TenantQuarter) -> Vec<String>| -> Vec<String> {
            let mut k: Vec<String> = tenants.iter().flat_map(get).collect();
            k.sort();
            k.dedup();
            k
        };
        let ages = keys_of(&|tq| tq.stock_by_age.keys().cloned().collect());
        let age_labels: Vec<String> = ages.iter().map(|k| group_label(k, lang)).collect();
        let by_age = two_way(
            &mut draft,
            lang,
            "by_age",
            t(
                "In carico a fine trimestre per classe di età",
                "In charge at the end by age band",
            ),
            tenants,
            &ages,
            &age_labels,
            |tq, c| tq.stock_by_age.get(c).cloned().unwrap_or_default(),
            true,
        );
        let levels = keys_of(&|tq| tq.stock_by_education.keys().cloned().collect());
        let level_labels: Vec<String> = levels.iter().map(|k| group_label(k, lang)).collect();
        let by_edu = two_way(
            &mut draft,
            lang,
            "by_education",
            t(
                "In carico a fine trimestre per titolo di studio",
                "In charge at the end by education",
            ),
            tenants,
            &levels,
            &level_labels,
            |tq, c| tq.stock_by_education.get(c).cloned().unwrap_or_default(),
            true,
        );
        // The groups overlap and leave persons out: no row totals.
        let groups: Vec<String> = ["disability", "income_support", "social_services"]
            .map(String::from)
            .to_vec();
        let group_labels: Vec<String> = groups.iter().map(|k| group_label(k, lang)).collect();
        let vulnerable = two_way(
            &mut draft,
            lang,
            "vulnerable_groups",
            t(
                "In carico a fine trimestre nei gruppi vulnerabili (non esclusivi)",
                "In charge at the end in the vulnerable groups (overlapping)",
            ),
            tenants,
            &groups,
            &group_labels,
            |tq, c| tq.stock_vulnerable.get(c).cloned().unwrap_or_default(),
            false,
        );

        // 3. GOL paths, physical indicators and placements.
        let paths: Vec<String> = (1..=4).map(|p| format!("GOL {p}")).collect();
        let gol = two_way(
            &mut draft,
            lang,
            "gol_paths",
            t(
                "Assessment GOL del trimestre per percorso assegnato",
                "GOL assessments in the quarter by final path",
            ),
            tenants,
            &paths,
            &paths,
            |tq, c| {
                let p: u8 = c[4..].parse().unwrap_or(0);
                tq.gol_paths.get(&p).cloned().unwrap_or_default()
            },
            true,
        );
        // Indicators are rows, tenants columns; each row with its total is a line. Different
        // indicators are not additive: no column totals.
        let indicators = tenants.first().map(|first| {
            let mut rows = Vec::new();
            for (k, ind) in first.indicators.iter().enumerate() {
                let sets: Vec<&Units> = tenants.iter().map(|tq| &tq.indicators[k].units).collect();
                let mut idx: Vec<usize> = tenants
                    .iter()
                    .zip(&sets)
                    .map(|(tq, u)| {
                        draft.count(
                            &format!("indicator/{}/{}", ind.id, tq.tenant),
                            (*u).clone(),
                            false,
                        )
                    })
                    .collect();
                idx.push(draft.count(&format!("indicator/{}/total", ind.id), union(sets), true));
                draft.line(idx.clone());
                rows.push((
                    format!("{} {}", ind.id, lang.t(ind.label_it, ind.label_en)),
                    idx.into_iter().map(Some).collect(),
                ));
            }
            let mut columns: Vec<String> = tenants.iter().map(|tq| tq.tenant.clone()).collect();
            columns.push(t("Totale", "Total"));
            Layout {
                id: "indicators".into(),
                title: t(
                    "Indicatori fisici (standard dei servizi, allegato indicatori)",
                    "Physical indicators (service standards)",
                ),
                label_header: t("Indicatore", "Indicator"),
                columns,
                rows,
                has_total: false,
            }
        });
        // "Of whom permanent" is a subset, not an addend: no row totals.
        let placed_cols = vec!["placed".to_string(), "permanent".to_string()];
        let placed = two_way(
            &mut draft,
            lang,
            "placements",
            t(
                "Persone in carico avviate al lavoro nel trimestre (primo rapporto)",
                "Persons in charge starting a job in the quarter (first contract)",
            ),
            tenants,
            &placed_cols,
            &[
                t("Avviati", "Placed"),
                t("di cui a tempo indeterminato", "of whom permanent"),
            ],
            |tq, c| {
                if c == "placed" {
                    tq.placed.clone()
                } else {
                    tq.placed_permanent.clone()
                }
            },
            false,
        );

        // The map: persons in charge at the end (the province table's totals) and placed in
        // the quarter, by province of residence.
        let map_counts: Vec<(String, usize, usize)> = provinces
            .iter()
            .filter(|name| name.as_str() != "?")
            .map(|name| {
                let stock = union(
                    tenants
                        .iter()
                        .filter_map(|tq| tq.stock_by_province.get(name)),
                );
                let placed: Vec<(String, Units)> = tenants
                    .iter()
                    .map(|tq| {
                        let set = tq.placed_by_province.get(name).cloned().unwrap_or_default();
                        (tq.tenant.clone(), set)
                    })
                    .collect();
                (
                    name.clone(),
                    draft.count(&format!("by_province/total/{name}"), stock, true),
                    pooled_count(&mut draft, &format!("map/placed/{name}"), placed, false),
                )
            })
            .collect();
        if !provinces.iter().any(|p| p == "?") && !map_counts.is_empty() {
            let all = union(tenants.iter().map(|tq| &tq.placed));
            let mut line = vec![draft.count("placements/total/placed", all, true)];
            line.extend(map_counts.iter().map(|m| m.2));
            draft.line(line);
        }

        // The intake's profiles.
        let profile_layout = profiles::profile_counts(&analyses.intake, q, &mut draft, lang);
        // The operators' adjustments and overrides over the last four quarters against the
        // four before (per quarter they are too few to flag anything but noise).
        let last_four: Vec<Quarter> = std::iter::successors(Some(q), |x| Some(x.prev()))
            .take(8)
            .collect();
        let operator_audit = annual::audit_counts(
            &analyses.intake,
            &|t| {
                let Ok((levels, codes)) = t.table.categories("intake_month") else {
                    return [vec![false; t.table.len()], vec![false; t.table.len()]];
                };
                let at = |k: std::ops::Range<usize>| -> Vec<bool> {
                    codes
                        .iter()
                        .map(|c| {
                            c.and_then(|c| profiles::quarter_of_month(&levels[c as usize]))
                                .is_some_and(|iq| last_four[k.clone()].contains(&iq))
                        })
                        .collect()
                };
                [at(4..8), at(0..4)]
            },
            &format!("{}-{q}", last_four[3]),
            false,
            rule.min,
            &mut draft,
        );

        // This quarter against the previous one and a year before.
        let trend_rows = trend::trend_counts(tenants, &mut draft, lang, rule.min);

        // Operator ratings: each operator's persons and those re-employed.
        let mut rated: Vec<(&occupa_engine::ratings::Rating, String, usize, usize)> = Vec::new();
        // (tenant, operator) → index in `rated`, for the outcome shifts.
        let mut rated_at: HashMap<(String, String), usize> = HashMap::new();
        for (tenant, r) in operators {
            // An identifier that ingestion redacted as a name is no operator.
            for o in r.operators.iter().filter(|o| !o.operator.starts_with('[')) {
                let key = format!("operators/{tenant}/{}", o.operator);
                let pi = draft.count(&format!("{key}/persons"), o.persons.clone(), true);
                let oi = draft.count(&format!("{key}/observed"), o.observed.clone(), false);
                // The persons not re-employed are persons − observed: a count too.
                let ni = draft.count(
                    &format!("{key}/not observed"),
                    complement(&o.persons, &o.observed),
                    false,
                );
                draft.line(vec![pi, oi, ni]);
                let label = if operators.len() > 1 {
                    format!("{tenant} / {}", o.operator)
                } else {
                    o.operator.clone()
                };
                rated_at.insert((tenant.clone(), o.operator.clone()), rated.len());
                rated.push((o, label, pi, oi));
            }
        }
        // Outcomes of the persons taken in charge a year before, by group.
        let outcome_layout = (!analyses.outcomes.is_empty())
            .then(|| outcome_counts(&analyses.outcomes, &mut draft, lang));
        let protection = protect(&draft, prior, rule)?;
        let p = &protection;
        let stock_table = flow_layout.publish(&draft, p);
        // The narrative quotes the protected totals, never the raw ones.
        let tot: Vec<String> = stock_table.rows.last().map_or_else(Vec::new, |r| {
            r.1.iter().map(|v| render::fmt_count(*v, lang)).collect()
        });
        let g = |i: usize| tot.get(i).cloned().unwrap_or_default();
        let text = vec![if lang == Lang::It {
            format!(
                "Nel trimestre {q} gli enti hanno preso in carico {} persone e ne hanno concluso la presa in carico di {}; a fine trimestre risultano in carico {} persone (erano {} all'inizio).",
                g(1),
                g(2),
                g(3),
                g(0)
            )
        } else {
            format!(
                "In {q} the authorities took {} persons in charge and closed {}; {} persons were in charge at the end of the quarter ({} at the start).",
                g(1),
                g(2),
                g(3),
                g(0)
            )
        }];
        let hist: Vec<(String, Option<u64>)> = history
            .iter()
            .map(|(label, c)| (label.clone(), p.shown(&draft, *c)))
            .collect();
        let chart_title = t(
            "Persone in carico a fine trimestre",
            "Persons in charge at the end of each quarter",
        );
        let trend_shown = trend::shown(&trend_rows, &draft, p);
        let mut sections = vec![Section {
            heading: t("Persone in carico", "Persons in charge"),
            text,
            tables: vec![stock_table],
            figures: Vec::new(),
            charts: (!hist.is_empty())
                .then(|| chart_svg(&chart_title, &hist))
                .into_iter()
                .collect(),
            chart_data: (!hist.is_empty()).then(|| ("stock_end_history".to_string(), hist.clone())),
        }];
        sections.push(Section {
            heading: t("Chi è in carico", "Who is in charge"),
            text: vec![t(
                "Composizione delle persone in carico all'ultimo giorno del trimestre.",
                "Composition of the persons in charge on the last day of the quarter.",
            )],
            tables: vec![
                by_sex.publish(&draft, p),
                by_age.publish(&draft, p),
                by_cit.publish(&draft, p),
                by_edu.publish(&draft, p),
                vulnerable.publish(&draft, p),
                by_prov.publish(&draft, p),
            ],
            figures: Vec::new(),
            charts: Vec::new(),
            chart_data: None,
        });
        let mut tables = vec![gol.publish(&draft, p)];
        if let Some(ind) = &indicators {
            tables.push(ind.publish(&draft, p));
        }
        tables.push(placed.publish(&draft, p));
        sections.push(Section {
            heading: t("Servizi erogati e risultati", "Services and results"),
            text: vec![t(
                "Gli indicatori contano persone (o aziende) distinte con un servizio avviato nel trimestre; la definizione di ogni indicatore segue gli standard regionali dei servizi per il lavoro. Il confronto con il trimestre precedente e con lo stesso trimestre dell'anno prima riguarda ingressi, uscite, persone in carico e avviamenti al lavoro, quando ogni ente ne conta in ciascun trimestre almeno il triplo della soglia di riservatezza.",
                "Indicators count distinct persons (or companies) with a service started in the quarter, as defined by the regional service standards. The comparison with the previous quarter and the same quarter a year before covers inflow, outflow, persons in charge and placements, when every authority counts at least three times the confidentiality threshold of them in each quarter.",
            )],
            tables,
            figures: if trend_shown.is_empty() {
                Vec::new()
            } else {
                vec![trend::trend_table(&trend_shown, q, lang)]
            },
            charts: Vec::new(),
            chart_data: None,
        });

        if let Some(c) = &profile_layout {
            let gol_labels = occupa_engine::instruments::Instruments::builtin()
                .map(|i| {
                    if lang == Lang::It {
                        i.gol.labels_it.clone()
                    } else {
                        i.gol.labels_en.clone()
                    }
                })
                .unwrap_or_default();
            sections.push(profiles::profiles_section(c, &gol_labels, &draft, p, lang));
        }
        if !map_counts.is_empty() {
            sections.push(map_section(&map_counts, &draft, p, lang));
        }
        if let Some(layout) = &outcome_layout {
            sections.push(outcomes_section(layout, &draft, p, lang));
        }
        if let Some(d) = analyses.demand.as_ref().filter(|d| !d.series.is_empty()) {
            sections.push(demand::demand_section(d, lang));
        }
        if !rated.is_empty() {
            sections.push(operators_section(&rated, &draft, p, lang));
        }
        let anomalies = indicators
            .as_ref()
            .map(|layout| anomalies(tenants, layout, &draft, p, lang))
            .unwrap_or_default();
        // Operators flagged in the audit of the last four quarters.
        let shifts = {
            let shown = |i: usize| p.shown(&draft, i);
            let (mut table, _) = operator_audit.table(
                "operator_shifts",
                if lang == Lang::It {
                    format!(
                        "Operatori segnalati: rettifiche ±3 e cambi di percorso, {} – {q} (%)",
                        last_four[3]
                    )
                } else {
                    format!(
                        "Operators flagged: ±3 adjustments and path overrides, {} – {q} (%)",
                        last_four[3]
                    )
                },
                &shown,
                rule.min,
                false,
                t("sui 4 trimestri prima", "on the four quarters before").as_str(),
                lang,
            );
            // Only the flagged: an operator registered for its raw flags whose counts were
            // hidden has none printed.
            let (rows, notes) = table
                .rows
                .into_iter()
                .zip(table.notes)
                .filter(|(_, n)| !n.is_empty())
                .unzip();
            table.rows = rows;
            table.notes = notes;
            table
        };
        // Operators whose outcomes shifted: the rating's published counts beside a flag.
        let outcome_shifts = {
            let mut rows = Vec::new();
            let mut notes = Vec::new();
            for (tenant, list) in &analyses.operator_shifts {
                for s in list {
                    let Some(&k) = rated_at.get(&(tenant.clone(), s.operator.clone())) else {
                        continue;
                    };
                    let (o, label, pi, oi) = &rated[k];
                    let (Some(n), Some(x)) = (p.shown(&draft, *pi), p.shown(&draft, *oi)) else {
                        continue;
                    };
                    // The earlier window is never published: a flag (or its absence) is an
                    // inequality on its counts, so the test runs only when they are not
                    // small. It also needs that window's expected number, which no report
                    // gives (each report fits its own model).
                    let (n0, o0) = (
                        s.earlier.persons.len() as u64,
                        s.earlier.observed.len() as u64,
                    );
                    if n < rule.min
                        || o0 < rule.min
                        || n0 - o0 < rule.min
                        || s.p_value >= SHIFT_P
                        || s.later.persons.len() as u64 != n
                    {
                        continue;
                    }
                    let fell = s.later.ratio() < s.earlier.ratio();
                    rows.push((
                        label.clone(),
                        vec![
                            Some(n as f64),
                            Some(x as f64),
                            Some(o.expected),
                            Some(o.ratio),
                        ],
                    ));
                    notes.push(format!(
                        "{}: {} {}",
                        t("occupate a 6 mesi", "employed at 6 months"),
                        if fell {
                            t("calo brusco", "sudden fall")
                        } else {
                            t("aumento brusco", "sudden rise")
                        },
                        t("sui 12 mesi prima", "on the 12 months before")
                    ));
                }
            }
            FigureTable {
                id: "operator_outcome_shifts".into(),
                title: t(
                    "Operatori segnalati: esiti a 6 mesi osservati su attesi",
                    "Operators flagged: outcomes at 6 months, observed over expected",
                ),
                keys: [
                    "operator", "persons", "observed", "expected", "ratio", "flags",
                ]
                .map(String::from)
                .to_vec(),
                headers: vec![
                    t("Operatore", "Operator"),
                    t("Persone", "Persons"),
                    t("Occupate a 6 mesi (O)", "Employed at 6 months (O)"),
                    t("Attese (E)", "Expected (E)"),
                    "O/E".into(),
                    t("Segnalazioni", "Flags"),
                ],
                decimals: vec![0, 0, 1, 2],
                rows,
                notes,
            }
        };
        let anomaly_count = anomalies.rows.len() + shifts.rows.len() + outcome_shifts.rows.len();
        if anomaly_count > 0 {
            let mut text = Vec::new();
            let mut figures = Vec::new();
            if !anomalies.rows.is_empty() {
                text.push(t(
                    "Indicatori fisici di un ente lontani dalla propria storia: il valore del trimestre confrontato con gli 8 trimestri precedenti dello stesso ente, con uno scarto robusto (distanza dalla mediana in unità di deviazione assoluta mediana, ×1,4826); sono elencati i valori pubblicati con scarto di almeno 3,5 in valore assoluto. I valori dei trimestri precedenti non sono pubblicati qui.",
                    "An authority's physical indicators far from their own history: the quarter's value against the authority's 8 previous quarters, as a robust score (distance from the median in median absolute deviations, ×1.4826); published values scoring at least 3.5 either way are listed. The earlier quarters' values are not published here.",
                ));
                figures.push(anomalies);
            }
            if !shifts.rows.is_empty() {
                text.push(if lang == Lang::It {
                    format!("Operatori le cui rettifiche di ±3 punti o i cui cambi di percorso GOL, sulle persone prese in carico da {} a {q}, sono fuori dai limiti al 99,8% attorno alla quota di tutti gli operatori o cambiano bruscamente rispetto ai quattro trimestri prima (test z a due proporzioni oltre 3,09). Le quote dei trimestri prima non sono pubblicate; una segnalazione è una domanda da porre, non una prova. L'audit completo è nel rapporto annuale.", last_four[3])
                } else {
                    format!("Operators whose ±3-point adjustments or GOL path overrides, over the persons taken in charge from {} to {q}, are outside the 99.8% limits around all operators' share or shift suddenly from the four quarters before (two-proportion z beyond 3.09). The earlier quarters' shares are not published; a flag is a question to ask, not proof. The full audit is in the annual report.", last_four[3])
                });
                figures.push(shifts);
            }
            if !outcome_shifts.rows.is_empty() {
                text.push(t(
                    "Operatori i cui esiti cambiano bruscamente: la quota di persone occupate 6 mesi dopo la presa in carico, osservata su attesa (O/E) come nella valutazione degli operatori, per le persone prese in carico nei 12 mesi terminati 6 mesi prima della fine del trimestre, confrontata con i 12 mesi precedenti. Gli attesi dei due periodi vengono da un solo modello delle caratteristiche delle persone con un termine per il periodo, e il cambiamento di un operatore è misurato rispetto a quello mediano degli altri operatori dello stesso ente, così che un cambiamento comune a tutti (il mercato del lavoro) non sia attribuito a uno; il confronto è il test esatto di Poisson condizionato (p < 0,002, come 3,09 deviazioni standard). I valori dei 12 mesi precedenti non sono pubblicati.",
                    "Operators whose outcomes shift suddenly: the share employed 6 months after being taken in charge, observed over expected (O/E) as in the operator ratings, for the persons taken in charge in the 12 months ending 6 months before the end of the quarter, against the 12 months before. Both periods' expected numbers come from one model of the persons' characteristics with a term for the period, and an operator's change is measured against the median change of the authority's other operators, so that a change shared by all (the labour market) is not put on one; the comparison is the exact conditional Poisson test (p < 0.002, as 3.09 standard deviations). The earlier 12 months' values are not published.",
                ));
                figures.push(outcome_shifts);
            }
            sections.push(Section {
                heading: t("Anomalie", "Anomalies"),
                text,
                tables: Vec::new(),
                figures,
                charts: Vec::new(),
                chart_data: None,
            });
        }
        if !analyses.quality.is_empty() {
            sections.push(quality_section(&analyses.quality, lang));
        }
        // The summary, written from the figures as published, goes first.
        let outcome_total = outcome_layout
            .as_ref()
            .and_then(|rows| rows.first())
            .map(|r| (p.shown(&draft, r.counts[0]), p.shown(&draft, r.counts[2])));
        let operator_counts = (!rated.is_empty()).then(|| {
            let shown: Vec<_> = rated
                .iter()
                .filter(|(_, _, pi, oi)| {
                    p.shown(&draft, *pi).is_some() && p.shown(&draft, *oi).is_some()
                })
                .collect();
            let below = shown
                .iter()
                .filter(|(o, ..)| o.ratio < o.funnel998.0)
                .count();
            let above = shown
                .iter()
                .filter(|(o, ..)| o.ratio > o.funnel998.1)
                .count();
            (shown.len(), below, above)
        });
        let quality = (!analyses.quality.is_empty()).then(|| {
            (
                analyses.quality.iter().map(|s| s.rows[0]).sum::<u64>(),
                analyses.quality.iter().map(|s| s.rows[2]).sum::<u64>(),
            )
        });
        let summary = trend::summary(
            &trend::SummaryFacts {
                quarter: q,
                trend: &trend_shown,
                outcome: outcome_total,
                operators: operator_counts,
                anomalies: anomaly_count,
                quality,
            },
            lang,
        );
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
                "x = dato oscurato a tutela della riservatezza: i valori compresi tra 1 e {} non sono pubblicati (soppressione primaria) e, dove servirebbe a ricostruirli dai totali, dalle altre tabelle, dal grafico o dai rapporti già pubblicati, non lo è neppure un altro valore (soppressione secondaria). Una verifica per programmazione lineare su tutto ciò che è stato pubblicato ({} pubblicazioni precedenti) accerta che nessun valore oscurato sia ricostruibile entro ±{:.0}% della soglia.",
                rule.min - 1,
                a.prior_publications,
                rule.range * 100.0
            )
        } else {
            format!(
                "x = value hidden for confidentiality: counts from 1 to {} are not published (primary suppression) and, where they could be recovered from totals, other tables, the chart or reports already published, neither is another value (secondary suppression). A linear-programming audit of everything published ({} earlier publications) checks that no hidden count can be narrowed to within ±{:.0}% of the threshold.",
                rule.min - 1,
                a.prior_publications,
                rule.range * 100.0
            )
        };
        let report = Report {
            id,
            title: format!(
                "{} {q}",
                t(
                    "Rapporto trimestrale sulle politiche attive del lavoro",
                    "Quarterly report on active labour-market policies"
                )
            ),
            subtitle: format!(
                "{}: {} · {} {}",
                t("Enti", "Authorities"),
                tenants.len(),
                t("generato il", "generated on"),
                chrono::Utc::now().format("%Y-%m-%d")
            ),
            period: q.to_string(),
            lang,
            sections,
            privacy_note,
            min_count: rule.min,
            provenance: analyses.provenance.clone(),
            protection: ProtectionSummary::new(rule, a),
        };
        Ok(Published {
            report,
            draft,
            protection,
        })
    }

    /// Writes report.html, report.pdf, report.xlsx and one CSV per table under `tables/`.
    pub fn write_all(&self, out: &Path) -> Result<Vec<PathBuf>> {
        let werr = |p: &Path, e: String| Error::Write {
            path: p.to_path_buf(),
            reason: e,
        };
        std::fs::create_dir_all(out).map_err(|e| werr(out, e.to_string()))?;
        let mut written = Vec::new();
        // Typesetting the PDF is the longest part: it runs beside the other formats.
        let (pdf_bytes, html_text) = rayon::join(
            || {
                let (m, assets) = markup(self);
                pdf::render_pdf(&m, &assets).map_err(|e| Error::Pdf(e.to_string()))
            },
            || (html(self), render::xlsx(self)),
        );
        let (html_text, xlsx_bytes) = html_text;
        let pdf_bytes = pdf_bytes?;
        let h = out.join("report.html");
        write_atomic(&h, html_text.as_bytes())?;
        written.push(h);
        let p = out.join("report.pdf");
        write_atomic(&p, &pdf_bytes)?;
        written.push(p);
        let x = out.join("report.xlsx");
        let bytes = xlsx_bytes.map_err(|e| werr(&x, e.to_string()))?;
        write_atomic(&x, &bytes)?;
        written.push(x);
        let dir = out.join("tables");
        std::fs::create_dir_all(&dir).map_err(|e| werr(&dir, e.to_string()))?;
        for s in &self.sections {
            for tb in &s.tables {
                let path = dir.join(format!("{}.csv", tb.id));
                write_atomic(&path, render::csv(tb).as_bytes())?;
                written.push(path);
            }
            for f in &s.figures {
                let path = dir.join(format!("{}.csv", f.id));
                write_atomic(&path, render::figure_csv(f).as_bytes())?;
                written.push(path);
            }
        }
        let j = out.join("report.json");
        write_atomic(&j, render::json(self).as_bytes())?;
        written.push(j);
        Ok(written)
    }
}

/// What the quarterly report shows beyond the indicators, computed from each tenant's
/// analysis tables: operator ratings, and the employment outcomes of a cohort.
#[derive(Debug, Clone, Default)]
pub struct Analyses {
    /// Each tenant's operator ratings.
    pub operators: Vec<(String, occupa_engine::ratings::Ratings)>,
    /// Each tenant's operators' outcomes in the ratings' window against the 12 months
    /// before ([`occupa_engine::ratings::shifts`]), for the anomalies.
    pub operator_shifts: Vec<(String, Vec<occupa_engine::ratings::Shift>)>,
    /// Each tenant's outcome cohort: persons taken in charge in the 12 months ending 12
    /// months before the quarter's end, with `employed_6m`, `employed_12m`,
    /// `permanent_12m`, `sex`, `citizenship`, `age` and `province` (an analysis table).
    pub outcomes: Vec<(String, occupa_engine::analysis::AnalysisTable)>,
    /// What ingestion did with each source file of the period: rows read, stored and
    /// quarantined, and the quarantined rows by reason.
    pub quality: Vec<SourceQuality>,
    /// Each tenant's intake of the quarter and the seven before (analysis tables with the
    /// first ASSO, ISA and GOL of each person): the profiles section takes the last two
    /// quarters, the operators' audit all eight.
    pub intake: Vec<(String, occupa_engine::analysis::AnalysisTable)>,
    /// Labour demand: the publishable series and their forecasts.
    pub demand: Option<demand::Demand>,
    /// Where the figures come from: a hash of every stored file read, the engine's
    /// version, and each analysis's spec by name (`outcomes`, `operators`, `intake`,
    /// `demand`), for the provenance of every table.
    pub provenance: Provenance,
}

/// What every table of a report is traced to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Provenance {
    /// SHA-256 over the names and SHA-256 of every stored file the report read.
    pub data_snapshot: Option<String>,
    /// The engine's version (and commit, when known).
    pub engine: String,
    /// Each analysis's spec, by name.
    pub specs: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One tenant's table as ingested (records, not persons: these counts describe files).
#[derive(Debug, Clone, Default)]
pub struct SourceQuality {
    /// The tenant.
    pub tenant: String,
    /// The table (persons, asso…).
    pub table: String,
    /// Rows read, stored, quarantined.
    pub rows: [u64; 3],
    /// Quarantined rows by reason (duplicate, invalid date, invalid tax code, value out of
    /// range, other).
    pub reasons: std::collections::BTreeMap<String, u64>,
}

/// One group's counts in the draft: persons observed 12 months, employed at 6 and 12
/// months, on a permanent contract at 12 months.
struct OutcomeRow {
    label: String,
    counts: [usize; 4],
}

/// The outcome table's rows (a total, then by sex, citizenship, age band, province), their
/// counts added to the draft with lines tying each breakdown to the total.
fn outcome_counts(
    tables: &[(String, occupa_engine::analysis::AnalysisTable)],
    draft: &mut Draft,
    lang: Lang,
) -> Vec<OutcomeRow> {
    use occupa_engine::territory::CitizenshipGroup;
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    // (group label, unit key, employed 6m, employed 12m, permanent 12m) per person observed.
    let mut people: Vec<([String; 4], u64, bool, bool, bool)> = Vec::new();
    for (_, built) in tables {
        let tb = &built.table;
        let (Ok(e6), Ok(e12), Ok(p12), Ok(age)) = (
            tb.numeric("employed_6m"),
            tb.numeric("employed_12m"),
            tb.numeric("permanent_12m"),
            tb.numeric("age"),
        ) else {
            continue;
        };
        let label = |c: &str| -> Vec<Option<String>> {
            tb.categories(c).map_or_else(
                |_| vec![None; tb.len()],
                |(levels, codes)| {
                    codes
                        .iter()
                        .map(|k| k.map(|k| levels[k as usize].clone()))
                        .collect()
                },
            )
        };
        let (sex, cit, prov) = (label("sex"), label("citizenship"), label("province"));
        for r in 0..tb.len() {
            if e12[r].is_nan() || e6[r].is_nan() {
                continue;
            }
            // Stable English keys (the ledger's), labelled when printed.
            let band = occupa_engine::indicators::age_band(age[r]);
            let area = match cit[r].as_deref().map(CitizenshipGroup::of) {
                Some(CitizenshipGroup::Italian) => "ITA",
                Some(CitizenshipGroup::OtherEu) => "EU",
                Some(CitizenshipGroup::NonEu) => "non-EU",
                None => "missing",
            };
            let missing = || "missing".to_string();
            people.push((
                [
                    sex[r].clone().unwrap_or_else(missing),
                    area.to_string(),
                    band.to_string(),
                    prov[r].clone().unwrap_or_else(missing),
                ],
                built.unit_keys[r],
                e6[r] == 1.0,
                e12[r] == 1.0,
                p12[r] == 1.0,
            ));
        }
    }
    let counts_of = |draft: &mut Draft, key: &str, rows: &[usize]| -> [usize; 4] {
        let set = |f: &dyn Fn(usize) -> bool| -> Vec<u64> {
            let mut v: Vec<u64> = rows
                .iter()
                .filter(|&&i| f(i))
                .map(|&i| people[i].1)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let c = [
            draft.count(&format!("outcomes/{key}/persons"), set(&|_| true), false),
            draft.count(
                &format!("outcomes/{key}/employed_6m"),
                set(&|i| people[i].2),
                false,
            ),
            draft.count(
                &format!("outcomes/{key}/employed_12m"),
                set(&|i| people[i].3),
                false,
            ),
            draft.count(
                &format!("outcomes/{key}/permanent_12m"),
                set(&|i| people[i].4),
                false,
            ),
        ];
        // What the table gives by subtraction is a count too: the persons not employed
        // (at 6 and at 12 months) and the employed not on a permanent contract.
        let not6 = draft.count(
            &format!("outcomes/{key}/not_employed_6m"),
            set(&|i| !people[i].2),
            false,
        );
        let not12 = draft.count(
            &format!("outcomes/{key}/not_employed_12m"),
            set(&|i| !people[i].3),
            false,
        );
        let temp = draft.count(
            &format!("outcomes/{key}/employed_12m_not_permanent"),
            set(&|i| people[i].3 && !people[i].4),
            false,
        );
        draft.line(vec![c[0], c[1], not6]);
        draft.line(vec![c[0], c[2], not12]);
        draft.line(vec![c[2], c[3], temp]);
        c
    };
    let all: Vec<usize> = (0..people.len()).collect();
    let total = counts_of(draft, "total", &all);
    let mut out = vec![OutcomeRow {
        label: t("Totale", "Total"),
        counts: total,
    }];
    let dimensions = [
        ("sex", t("Sesso", "Sex")),
        ("citizenship", t("Cittadinanza", "Citizenship")),
        ("age", t("Età", "Age")),
        ("province", t("Provincia", "Province")),
    ];
    for (g, (name, heading)) in dimensions.iter().enumerate() {
        let values: std::collections::BTreeSet<String> =
            people.iter().map(|p| p.0[g].clone()).collect();
        // Italians first, then other EU, then non-EU, as the other tables read.
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort_by_key(|v| match v.as_str() {
            "ITA" => 0,
            "EU" => 1,
            "non-EU" => 2,
            _ => 3,
        });
        let mut parts: Vec<[usize; 4]> = Vec::new();
        for v in values {
            let rows: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&i| people[i].0[g] == v)
                .collect();
            let c = counts_of(draft, &format!("{name}/{v}"), &rows);
            parts.push(c);
            let shown = group_label(&v, lang);
            out.push(OutcomeRow {
                label: format!("{heading}: {shown}"),
                counts: c,
            });
        }
        // Each breakdown adds up to the total, column by column.
        for k in 0..4 {
            let mut line = vec![total[k]];
            line.extend(parts.iter().map(|c| c[k]));
            draft.line(line);
        }
    }
    out
}

/// A group's stable key as printed in the report's language.
pub(crate) fn group_label(key: &str, lang: Lang) -> String {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    match key {
        "missing" => t("non indicato", "not stated"),
        "15-29" => t("15–29 anni", "15–29"),
        "30-49" => t("30–49 anni", "30–49"),
        "50+" => t("50 anni e oltre", "50 and over"),
        "isced_0_2" => t("fino alla licenza media", "up to lower secondary"),
        "isced_3_4" => t("diploma", "upper secondary"),
        "isced_5_8" => t("laurea e oltre", "tertiary"),
        "disability" => t(
            "con disabilità (L. 68/1999)",
            "with a disability (L. 68/1999)",
        ),
        "income_support" => t("con sostegno al reddito", "on income support"),
        "social_services" => t(
            "in carico ai servizi sociali",
            "in the care of social services",
        ),
        "ITA" => t("italiana", "Italian"),
        "EU" => t("UE", "other EU"),
        "non-EU" => t("extra UE", "non-EU"),
        other => other.to_string(),
    }
}

/// The data-quality section: what ingestion read, stored and quarantined, by source and
/// reason. Counts of records in files, not of persons: no protection applies.
fn quality_section(sources: &[SourceQuality], lang: Lang) -> Section {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let reasons: Vec<&str> = ["duplicate", "date", "tax_code", "range", "other"].to_vec();
    let label = |r: &str| match r {
        "duplicate" => t("duplicati", "duplicates"),
        "date" => t("date non valide", "invalid dates"),
        "tax_code" => t("codici fiscali non validi", "invalid tax codes"),
        "range" => t("valori fuori dominio", "values out of range"),
        _ => t("altro", "other"),
    };
    let mut keys: Vec<String> = ["source", "read", "stored", "quarantined"]
        .map(String::from)
        .to_vec();
    keys.extend(reasons.iter().map(|r| format!("quarantined_{r}")));
    let mut headers = vec![
        t("Fonte", "Source"),
        t("Righe lette", "Rows read"),
        t("Memorizzate", "Stored"),
        t("In quarantena", "Quarantined"),
    ];
    headers.extend(reasons.iter().map(|r| label(r)));
    // Per authority, the files in the order of a person's path: who, assessed, served,
    // employed; then the companies' vacancies: the schema's order of its tables.
    let rank = |table: &str| {
        occupa_engine::schema::Table::ALL
            .iter()
            .position(|t| t.name() == table)
            .unwrap_or(usize::MAX)
    };
    let mut sources: Vec<&SourceQuality> = sources.iter().collect();
    sources.sort_by(|a, b| {
        (a.tenant.as_str(), rank(&a.table), a.table.as_str()).cmp(&(
            b.tenant.as_str(),
            rank(&b.table),
            b.table.as_str(),
        ))
    });
    let rows = sources
        .iter()
        .map(|q| {
            let mut v: Vec<Option<f64>> = q.rows.iter().map(|&n| Some(n as f64)).collect();
            v.extend(
                reasons
                    .iter()
                    .map(|r| Some(q.reasons.get(*r).copied().unwrap_or(0) as f64)),
            );
            let source = match q.table.as_str() {
                "asso" => "ASSO".to_string(),
                "isa" => "ISA".to_string(),
                "gol" => "GOL".to_string(),
                "persons" => t("anagrafiche", "persons"),
                "services" => t("servizi", "services"),
                "employment" => t("rapporti di lavoro", "employment"),
                "vacancies" => t("posti vacanti", "vacancies"),
                other => other.to_string(),
            };
            (format!("{} / {source}", q.tenant), v)
        })
        .collect();
    let read: u64 = sources.iter().map(|q| q.rows[0]).sum();
    let quarantined: u64 = sources.iter().map(|q| q.rows[2]).sum();
    Section {
        heading: t("Qualità dei dati", "Data quality"),
        text: vec![format!(
            "{} {}; {} {} ({}%). {}",
            t(
                "Righe lette dai file degli enti:",
                "Rows read from the authorities' files:"
            ),
            render::fmt_figure(Some(read as f64), 0, lang),
            t("in quarantena:", "quarantined:"),
            render::fmt_figure(Some(quarantined as f64), 0, lang),
            render::fmt_figure(
                Some(100.0 * quarantined as f64 / read.max(1) as f64),
                1,
                lang
            ),
            t(
                "Le righe in quarantena non entrano nelle statistiche; il file di quarantena di ogni caricamento ne indica riga, colonna e motivo. I conteggi sono di righe dei file, non di persone.",
                "Quarantined rows enter no statistic; each ingestion's quarantine file gives their line, column and reason. Counts are of file rows, not of persons.",
            )
        )],
        tables: Vec::new(),
        figures: vec![FigureTable {
            id: "data_quality".into(),
            title: t(
                "Righe lette, memorizzate e in quarantena per fonte",
                "Rows read, stored and quarantined by source",
            ),
            keys,
            headers,
            decimals: vec![0; 3 + reasons.len()],
            notes: Vec::new(),
            rows,
        }],
        charts: Vec::new(),
        chart_data: None,
    }
}

/// The territory section: persons in charge per 1,000 residents and placements per 100
/// in charge by province, as a table and two choropleths; a rate only from shown counts.
fn map_section(
    counts: &[(String, usize, usize)],
    draft: &Draft,
    p: &Protection,
    lang: Lang,
) -> Section {
    use occupa_engine::territory::{POPULATION_DATE, Territory};
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let territory = Territory::get();
    let code_of = |name: &str| {
        territory
            .provinces()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| p.code.clone())
    };
    let mut rows = Vec::new();
    let (mut per_1000, mut placement) = (Vec::new(), Vec::new());
    for (name, si, pi) in counts {
        let code = code_of(name);
        let pop = code.as_deref().and_then(|c| territory.population(c));
        let (stock, placed) = (p.shown(draft, *si), p.shown(draft, *pi));
        let rate = stock
            .zip(pop)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| 1000.0 * s as f64 / n as f64);
        let prate = placed
            .zip(stock)
            .filter(|(_, s)| *s > 0)
            .map(|(a, s)| 100.0 * a as f64 / s as f64);
        if let Some(code) = &code {
            per_1000.push(map::MapValue {
                code: code.clone(),
                value: rate,
            });
            placement.push(map::MapValue {
                code: code.clone(),
                value: prate,
            });
        }
        rows.push((
            name.clone(),
            vec![
                pop.map(|n| n as f64),
                stock.map(|n| n as f64),
                rate,
                placed.map(|n| n as f64),
                prate,
            ],
        ));
    }
    let title1 = t(
        "Persone in carico a fine trimestre ogni 1.000 residenti",
        "Persons in charge at the end per 1,000 residents",
    );
    let title2 = t(
        "Avviati al lavoro nel trimestre ogni 100 persone in carico",
        "Placed in the quarter per 100 persons in charge",
    );
    let charts: Vec<String> = [
        map::choropleth_svg(&title1, &per_1000, 1, lang),
        map::choropleth_svg(&title2, &placement, 1, lang),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect();
    Section {
        heading: t("Territorio", "Territory"),
        text: vec![format!(
            "{} {POPULATION_DATE}. {}",
            t(
                "Province di residenza delle persone in carico. Popolazione residente ISTAT al",
                "Provinces of residence of the persons in charge. ISTAT resident population at",
            ),
            t(
                "Confini: ISTAT, confini delle unità amministrative 2022 (generalizzati), licenza CC BY; elaborazione Occupa. Un tasso è mostrato solo se i conteggi da cui deriva sono pubblicati.",
                "Boundaries: ISTAT, administrative boundaries 2022 (generalised), CC BY licence; processed by Occupa. A rate is shown only when the counts it comes from are published.",
            )
        )],
        tables: Vec::new(),
        figures: vec![FigureTable {
            id: "provinces".into(),
            title: t(
                "Persone in carico e avviamenti per provincia di residenza",
                "Persons in charge and placements by province of residence",
            ),
            keys: [
                "province",
                "population",
                "in_charge",
                "in_charge_per_1000",
                "placed",
                "placed_per_100",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Provincia", "Province"),
                t("Residenti", "Residents"),
                t("In carico a fine trimestre", "In charge at the end"),
                t("Ogni 1.000 residenti", "Per 1,000 residents"),
                t("Avviati nel trimestre", "Placed in the quarter"),
                t("Ogni 100 in carico", "Per 100 in charge"),
            ],
            decimals: vec![0, 0, 1, 0, 1],
            notes: Vec::new(),
            rows,
        }],
        charts,
        chart_data: None,
    }
}

/// The anomalies table: each authority's indicators whose published value is far from
/// the authority's own previous 8 quarters (robust score |z| ≥ 3.5, at least 6 quarters
/// with activity). Only the quarter's published value and the score are printed.
fn anomalies(
    tenants: &[TenantQuarter],
    layout: &Layout,
    draft: &Draft,
    p: &Protection,
    lang: Lang,
) -> FigureTable {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let mut rows = Vec::new();
    for (k, (label, cells)) in layout.rows.iter().enumerate() {
        for (ti, tq) in tenants.iter().enumerate() {
            let Some(x) = cells
                .get(ti)
                .copied()
                .flatten()
                .and_then(|i| p.shown(draft, i))
            else {
                continue;
            };
            let Some(hist) = tq.indicator_history.get(k) else {
                continue;
            };
            if hist.iter().filter(|&&h| h > 0).count() < 6 {
                continue;
            }
            let mut v: Vec<f64> = hist.iter().map(|&h| h as f64).collect();
            v.sort_by(f64::total_cmp);
            let med = occupa_engine::linalg::quantile_sorted(&v, 0.5);
            let mut dev: Vec<f64> = v.iter().map(|h| (h - med).abs()).collect();
            dev.sort_by(f64::total_cmp);
            // A flat history has no spread: the Poisson scale of its level stands in.
            let scale = (1.4826 * occupa_engine::linalg::quantile_sorted(&dev, 0.5))
                .max(med.sqrt())
                .max(1.0);
            let z = (x as f64 - med) / scale;
            if z.abs() >= 3.5 {
                rows.push((
                    format!("{} · {label}", tq.tenant),
                    vec![Some(x as f64), Some(z)],
                ));
            }
        }
    }
    FigureTable {
        id: "anomalies".into(),
        title: t(
            "Valori del trimestre lontani dalla storia dell'ente",
            "Values of the quarter far from the authority's history",
        ),
        keys: ["authority_indicator", "value", "robust_score"]
            .map(String::from)
            .to_vec(),
        headers: vec![
            t("Ente · indicatore", "Authority · indicator"),
            t("Valore del trimestre", "Value this quarter"),
            t("Scarto robusto", "Robust score"),
        ],
        decimals: vec![0, 1],
        notes: Vec::new(),
        rows,
    }
}

/// The units of `all` not in `part` (both sorted).
fn complement(all: &[u64], part: &[u64]) -> Vec<u64> {
    all.iter()
        .copied()
        .filter(|u| part.binary_search(u).is_err())
        .collect()
}

/// The outcomes section: counts and rates by group; a rate is shown only with its counts.
fn outcomes_section(rows: &[OutcomeRow], draft: &Draft, p: &Protection, lang: Lang) -> Section {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let pct = |num: Option<u64>, den: Option<u64>| -> Option<f64> {
        match (num, den) {
            (Some(n), Some(d)) if d > 0 => Some(100.0 * n as f64 / d as f64),
            _ => None,
        }
    };
    let table_rows = rows
        .iter()
        .map(|r| {
            let [persons, e6, e12, p12] = r.counts.map(|i| p.shown(draft, i));
            (
                r.label.clone(),
                vec![
                    persons.map(|n| n as f64),
                    e6.map(|n| n as f64),
                    pct(e6, persons),
                    e12.map(|n| n as f64),
                    pct(e12, persons),
                    p12.map(|n| n as f64),
                    pct(p12, e12),
                ],
            )
        })
        .collect();
    Section {
        heading: t("Esiti occupazionali", "Employment outcomes"),
        text: vec![t(
            "Persone prese in carico nei 12 mesi terminati un anno prima della fine del trimestre, osservate per 12 mesi: quante erano occupate 6 e 12 mesi dopo la presa in carico, e quante a 12 mesi con un contratto a tempo indeterminato (sul totale degli occupati). Le quote sono mostrate solo con i conteggi da cui derivano.",
            "Persons taken in charge in the 12 months ending one year before the end of the quarter, observed for 12 months: how many were employed 6 and 12 months after, and how many at 12 months on a permanent contract (share of those employed). Shares are shown only with the counts they come from.",
        )],
        tables: Vec::new(),
        figures: vec![FigureTable {
            id: "outcomes".into(),
            title: t(
                "Esiti a 6 e 12 mesi dalla presa in carico per gruppo",
                "Outcomes 6 and 12 months after taking charge, by group",
            ),
            keys: [
                "group",
                "persons",
                "employed_6m",
                "employed_6m_pct",
                "employed_12m",
                "employed_12m_pct",
                "permanent_12m",
                "permanent_12m_pct_of_employed",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Gruppo", "Group"),
                t("Persone", "Persons"),
                t("Occupate a 6 mesi", "Employed at 6 months"),
                "%".into(),
                t("Occupate a 12 mesi", "Employed at 12 months"),
                "%".into(),
                t("A tempo indeterminato", "Permanent"),
                t("% degli occupati", "% of employed"),
            ],
            decimals: vec![0, 0, 1, 0, 1, 0, 1],
            notes: Vec::new(),
            rows: table_rows,
        }],
        charts: Vec::new(),
        chart_data: None,
    }
}

/// The operators section: the contract's `operators` table and the funnel plot.
fn operators_section(
    rated: &[(&occupa_engine::ratings::Rating, String, usize, usize)],
    draft: &Draft,
    p: &Protection,
    lang: Lang,
) -> Section {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let mut rows = Vec::new();
    let mut points = Vec::new();
    let mut e_max: f64 = 1.0;
    for (o, label, pi, oi) in rated {
        let (persons, observed) = (p.shown(draft, *pi), p.shown(draft, *oi));
        let shown = persons.is_some() && observed.is_some();
        let f = |x: f64| shown.then_some(x);
        rows.push((
            label.clone(),
            vec![
                persons.filter(|_| shown).map(|n| n as f64),
                observed.filter(|_| shown).map(|n| n as f64),
                f(o.expected),
                f(o.ratio),
                f(o.ci95.0),
                f(o.ci95.1),
            ],
        ));
        if shown {
            points.push((label.clone(), o.expected, o.ratio));
            e_max = e_max.max(o.expected);
        }
    }
    let limits: Vec<(f64, [f64; 4])> = (1..=200)
        .map(|k| {
            let e = e_max * 1.1 * k as f64 / 200.0;
            let l = |q: f64| occupa_engine::ratings::poisson_limit(e, q) / e;
            (e, [l(0.025), l(0.975), l(0.001), l(0.999)])
        })
        .collect();
    let title = t(
        "Operatori: reinserimenti osservati su attesi (funnel plot)",
        "Operators: observed re-employment over expected (funnel plot)",
    );
    Section {
        heading: t("Valutazione degli operatori", "Operator ratings"),
        text: vec![t(
            "Per ogni operatore: persone prese in carico nei 12 mesi terminati 6 mesi prima della fine del trimestre, quante erano occupate 6 mesi dopo la presa in carico (O) e quante lo sarebbero state attese (E) secondo un modello logistico delle loro caratteristiche (età, sesso, cittadinanza, istruzione, disabilità, sostegno al reddito, servizi sociali, punteggi GOL) stimato su tutte le persone dell'ente prese in carico in quei 12 mesi e nei 12 precedenti, con un termine per il periodo. Il rapporto O/E ha un intervallo esatto di Poisson al 95%; nel grafico le curve delimitano le variazioni attese per il solo caso al 95% e al 99,8%, così che gli operatori piccoli non siano classificati sul rumore.",
            "For each operator: persons taken in charge in the 12 months ending 6 months before the end of the quarter, how many were employed 6 months after (O) and how many would be expected (E) from a logistic model of their characteristics (age, sex, citizenship, education, disability, income support, social services, GOL scores) fitted on all the authority's persons taken in charge in those 12 months and the 12 before, with a term for the period. O/E has an exact Poisson 95% interval; in the chart the curves bound the variation expected by chance at 95% and 99.8%, so that small operators are not ranked on noise.",
        )],
        tables: Vec::new(),
        figures: vec![FigureTable {
            id: "operators".into(),
            title: t(
                "Operatori: osservati e attesi",
                "Operators: observed and expected",
            ),
            keys: [
                "operator", "persons", "observed", "expected", "ratio", "lo95", "hi95",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Operatore", "Operator"),
                t("Persone", "Persons"),
                t("Occupate a 6 mesi (O)", "Employed at 6 months (O)"),
                t("Attese (E)", "Expected (E)"),
                "O/E".into(),
                t("IC 95% inf.", "95% CI low"),
                t("IC 95% sup.", "95% CI high"),
            ],
            decimals: vec![0, 0, 1, 2, 2, 2],
            notes: Vec::new(),
            rows,
        }],
        charts: (!points.is_empty())
            .then(|| render::funnel_svg(&title, &points, &limits))
            .into_iter()
            .collect(),
        chart_data: None,
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    // The engine's staging: a half-written report is never left under its final name.
    occupa_engine::store::write_atomic(path, |f| {
        f.write_all(bytes)
            .map_err(|e| occupa_engine::Error::io(path, e))
    })
    .map_err(|e| Error::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use occupa_anonymiser::MinCount;
    use occupa_engine::indicators::{StockFlow, StockFlowUnits};

    /// A tenant whose stock and flow are the given counts (persons numbered apart).
    fn tenant(
        name: &str,
        start_stay: u64,
        start_left: u64,
        new_stay: u64,
        new_left: u64,
    ) -> TenantQuarter {
        let mut next = 0u64;
        let mut take = |n: u64| -> Units {
            let v: Units = (next..next + n).collect();
            next += n;
            v
        };
        let (a, b, c, d) = (
            take(start_stay),
            take(start_left),
            take(new_stay),
            take(new_left),
        );
        let u = |x: &[&Units]| union(x.iter().copied());
        let flow = StockFlowUnits {
            stock_start: u(&[&a, &b]),
            inflow: u(&[&c, &d]),
            outflow: u(&[&b, &d]),
            stock_end: u(&[&a, &c]),
        };
        TenantQuarter {
            tenant: name.into(),
            quarter: Quarter::parse("2026Q3").unwrap(),
            stock_flow: StockFlow {
                stock_start: flow.stock_start.len() as u64,
                inflow: flow.inflow.len() as u64,
                outflow: flow.outflow.len() as u64,
                stock_end: flow.stock_end.len() as u64,
            },
            flow_units: flow,
            stock_history: vec![],
            stock_by_sex: Default::default(),
            stock_by_citizenship: Default::default(),
            stock_by_province: Default::default(),
            gol_paths: Default::default(),
            indicators: vec![],
            placed: vec![],
            placed_permanent: vec![],
            stock_by_age: Default::default(),
            stock_by_education: Default::default(),
            stock_vulnerable: Default::default(),
            placed_by_province: Default::default(),
            indicator_history: vec![],
            earlier: vec![],
        }
    }

    fn report(tenants: &[TenantQuarter], lang: Lang) -> Report {
        Report::quarterly(
            Quarter::parse("2026Q3").unwrap(),
            tenants,
            lang,
            Rule::new(MinCount::default()),
            &[],
            "pooled",
        )
        .unwrap()
        .report
    }

    #[test]
    fn the_narrative_never_quotes_a_suppressed_count() {
        // 100 at the start, 3 in, 2 out, 101 at the end.
        let r = report(&[tenant("t01", 98, 2, 3, 0)], Lang::It);
        let text = &r.sections[0].text[0];
        assert!(text.contains("preso in carico x persone"), "{text}");
        assert!(!text.contains(" 3 ") && !text.contains(" 2;"), "{text}");
        // stock_start + inflow − outflow = stock_end links the four values: two published
        // stocks would reveal inflow − outflow, so the stock line hides more than the primaries.
        let row = &r.sections[0].tables[0].rows[0].1;
        assert!(row.iter().filter(|v| v.is_none()).count() >= 2);
        assert!(r.protection.all_protected);
    }

    /// The operators table keeps the contract's columns; an operator with fewer persons
    /// than the threshold shows no figure at all (its ratio would give its count back).
    #[test]
    fn operators_table_has_the_contract_columns_and_hides_a_small_operator() {
        use occupa_engine::ratings::{Rating, Ratings};
        let op = |name: &str, persons: std::ops::Range<u64>, employed: u64| {
            let persons: Vec<u64> = persons.collect();
            let observed: Vec<u64> = persons.iter().copied().take(employed as usize).collect();
            Rating {
                operator: name.into(),
                expected: persons.len() as f64 * 0.4,
                ratio: employed as f64 / (persons.len() as f64 * 0.4),
                ci95: (0.5, 1.5),
                funnel95: (0.6, 1.4),
                funnel998: (0.5, 1.6),
                persons,
                observed,
            }
        };
        let ratings = Ratings {
            operators: vec![op("OP-A", 1000..1100, 45), op("OP-B", 2000..2003, 2)],
            persons: 103,
            dropped_missing: 0,
            aliased: Vec::new(),
            rate: 0.45,
        };
        let q = Quarter::parse("2026Q3").unwrap();
        let published = Report::quarterly_with(
            q,
            &[tenant("t01", 80, 20, 30, 0)],
            Lang::It,
            Rule::new(MinCount::default()),
            &[],
            "pooled",
            &Analyses {
                operators: vec![("t01".into(), ratings)],
                ..Analyses::default()
            },
        )
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&render::json(&published.report)).unwrap();
        let t = json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "operators")
            .unwrap();
        assert_eq!(
            t["columns"],
            serde_json::json!([
                "operator", "persons", "observed", "expected", "ratio", "lo95", "hi95"
            ])
        );
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows[0][1], 100);
        assert_eq!(rows[0][2], 45);
        assert!(
            rows[1].as_array().unwrap()[1..].iter().all(|v| v.is_null()),
            "{}",
            rows[1]
        );
        // Italian figures: a decimal comma; hidden ones as x.
        let html = render::html(&published.report);
        assert!(
            html.contains("<td>1,12</td>")
                && html.contains("<td>40,0</td>")
                && html.contains(">x</td>"),
            "{html}"
        );
        assert!(
            render::figure_csv(&published.report.sections.last().unwrap().figures[0])
                .starts_with("operator,persons,observed,expected,ratio,lo95,hi95\n")
        );
    }

    #[test]
    fn english_labels() {
        let r = report(&[tenant("t01", 80, 20, 30, 0)], Lang::En);
        assert!(r.sections[0].text[0].starts_with("In 2026Q3 the authorities took 30 persons"));
        assert_eq!(r.sections[0].tables[0].columns[1], "Inflow");
    }
}
