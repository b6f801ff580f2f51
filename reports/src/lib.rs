//! # occupa-reports
//!
//! The quarterly report: a [`Report`] model built from the engine's indicators, every
//! count protected by the anonymiser's threshold rule, rendered to HTML, PDF (typst),
//! XLSX and CSV. Italian is the default language; English with [`Lang::En`].
//!
//! ```
//! use occupa_engine::indicators::{Quarter, TenantQuarter};
//! use occupa_reports::{Lang, Report};
//!
//! let q = Quarter::parse("2026Q3")?;
//! let report = Report::quarterly(q, &[], Lang::It, Default::default());
//! assert!(report.title.contains("2026Q3"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod causal_plots;
pub mod cluster_plots;
pub mod pdf;
mod render;

use std::path::{Path, PathBuf};

use occupa_anonymiser::{Cell, CountTable, MinCount, Status, protect, protect_lines};
use occupa_engine::indicators::{Quarter, TenantQuarter};
use serde::Serialize;

pub use render::{chart_svg, html, markup};

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

fn from_protected(
    id: &str,
    title: String,
    label_header: String,
    total_label: &str,
    p: &occupa_anonymiser::ProtectedTable,
    with_row_totals: bool,
    total_col: &str,
) -> PubTable {
    let mut columns = p.cols.clone();
    if with_row_totals {
        columns.push(total_col.to_string());
    }
    let mut rows: Vec<(String, Vec<Option<u64>>)> = p
        .rows
        .iter()
        .enumerate()
        .map(|(r, l)| {
            let mut v: Vec<Option<u64>> = p.cells[r].iter().map(Cell::value).collect();
            if with_row_totals {
                v.push(p.row_totals[r].value());
            }
            (l.clone(), v)
        })
        .collect();
    let mut tot: Vec<Option<u64>> = p.col_totals.iter().map(Cell::value).collect();
    if with_row_totals {
        tot.push(p.total.value());
    }
    rows.push((total_label.to_string(), tot));
    PubTable {
        id: id.into(),
        title,
        label_header,
        columns,
        rows,
        has_total: true,
        suppressed: p.suppressed_count(),
    }
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
    /// An SVG chart.
    pub chart: Option<String>,
}

/// The report model, independent of the output format.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Title.
    pub title: String,
    /// Subtitle (scope and date).
    pub subtitle: String,
    /// Language.
    pub lang: Lang,
    /// Sections in order.
    pub sections: Vec<Section>,
    /// Note on confidentiality.
    pub privacy_note: String,
    /// Threshold used.
    pub min_count: u64,
}

fn two_way(
    lang: Lang,
    id: &str,
    title: String,
    tenants: &[TenantQuarter],
    cols: &[String],
    get: impl Fn(&TenantQuarter, &str) -> u64,
    min: MinCount,
) -> PubTable {
    let rows: Vec<String> = tenants.iter().map(|t| t.tenant.clone()).collect();
    let cells = tenants
        .iter()
        .map(|t| cols.iter().map(|c| get(t, c)).collect())
        .collect();
    let table = CountTable::new(rows, cols.to_vec(), cells).unwrap_or_else(|_| {
        CountTable::new(vec![], vec!["-".into()], vec![]).expect("empty table")
    });
    let p = protect(&table, min);
    from_protected(
        id,
        title,
        lang.t("Ente", "Authority").into(),
        lang.t("Totale", "Total"),
        &p,
        cols.len() > 1,
        lang.t("Totale", "Total"),
    )
}

impl Report {
    /// Builds the quarterly report from the tenants' indicators.
    pub fn quarterly(q: Quarter, tenants: &[TenantQuarter], lang: Lang, min: MinCount) -> Report {
        let t = |it: &str, en: &str| lang.t(it, en).to_string();
        let mut sections = Vec::new();

        // 1. Stock and flow: stock_start + inflow − outflow = stock_end is a line per tenant.
        {
            let cols = [
                t("In carico a inizio trimestre", "In charge at start"),
                t("Ingressi", "Inflow"),
                t("Uscite", "Outflow"),
                t("In carico a fine trimestre", "In charge at end"),
            ];
            let n = tenants.len();
            let mut values = Vec::new();
            for tq in tenants {
                let sf = tq.stock_flow;
                values.extend([sf.stock_start, sf.inflow, sf.outflow, sf.stock_end]);
            }
            let totals: Vec<u64> = (0..4)
                .map(|c| (0..n).map(|r| values[r * 4 + c]).sum())
                .collect();
            values.extend(&totals);
            let mut lines: Vec<Vec<usize>> = (0..=n)
                .map(|r| (0..4).map(|c| r * 4 + c).collect())
                .collect();
            for c in 0..4 {
                lines.push((0..=n).map(|r| r * 4 + c).collect());
            }
            let margin: Vec<bool> = (0..values.len()).map(|i| i / 4 == n).collect();
            let status = protect_lines(&values, &lines, &margin, min);
            let shown = |i: usize| (status[i] == Status::Safe).then_some(values[i]);
            let mut rows: Vec<(String, Vec<Option<u64>>)> = tenants
                .iter()
                .enumerate()
                .map(|(r, tq)| {
                    (
                        tq.tenant.clone(),
                        (0..4).map(|c| shown(r * 4 + c)).collect(),
                    )
                })
                .collect();
            rows.push((
                t("Totale", "Total"),
                (0..4).map(|c| shown(n * 4 + c)).collect(),
            ));
            let suppressed = status.iter().filter(|s| **s != Status::Safe).count();
            let stock_table = PubTable {
                id: "stock_flussi".into(),
                title: t(
                    "Stock e flussi delle persone in carico",
                    "Stock and flow of persons in charge",
                ),
                label_header: t("Ente", "Authority"),
                columns: cols.to_vec(),
                rows,
                has_total: true,
                suppressed,
            };
            // History of the total stock for the chart (totals over tenants, each ≥ threshold or hidden).
            let mut hist: Vec<(String, Option<u64>)> = Vec::new();
            if let Some(first) = tenants.first() {
                for (k, (hq, _)) in first.stock_history.iter().enumerate() {
                    let total: u64 = tenants
                        .iter()
                        .map(|tq| tq.stock_history.get(k).map_or(0, |h| h.1))
                        .sum();
                    hist.push((
                        hq.to_string(),
                        (total == 0 || total >= min.get()).then_some(total),
                    ));
                }
            }
            // The narrative quotes the protected totals, never the raw ones: a hidden total
            // stays hidden in the text too.
            let tot: Vec<String> = stock_table.rows.last().map_or_else(Vec::new, |r| {
                r.1.iter().map(|v| render::fmt_count(*v)).collect()
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
            sections.push(Section {
                heading: t("Persone in carico", "Persons in charge"),
                text,
                tables: vec![stock_table],
                chart: (!hist.is_empty()).then(|| {
                    chart_svg(
                        &t(
                            "Persone in carico a fine trimestre",
                            "Persons in charge at the end of each quarter",
                        ),
                        &hist,
                    )
                }),
            });
        }

        // 2. Who is in charge.
        {
            let sexes = vec!["F".to_string(), "M".to_string()];
            let cits = vec![
                "italiana".to_string(),
                "UE".to_string(),
                "extra UE".to_string(),
            ];
            let mut provinces: Vec<String> = tenants
                .iter()
                .flat_map(|tq| tq.stock_by_province.keys().cloned())
                .collect();
            provinces.sort();
            provinces.dedup();
            let cit_cols: Vec<String> = cits
                .iter()
                .map(|c| match (lang, c.as_str()) {
                    (Lang::En, "italiana") => "Italian".into(),
                    (Lang::En, "UE") => "other EU".into(),
                    (Lang::En, _) => "non-EU".into(),
                    _ => c.clone(),
                })
                .collect();
            let mut by_cit = two_way(
                lang,
                "cittadinanza",
                t(
                    "In carico a fine trimestre per cittadinanza",
                    "In charge at the end by citizenship",
                ),
                tenants,
                &cits,
                |tq, c| tq.stock_by_citizenship.get(c).copied().unwrap_or(0),
                min,
            );
            by_cit.columns.splice(0..3, cit_cols);
            sections.push(Section {
                heading: t("Chi è in carico", "Who is in charge"),
                text: vec![t(
                    "Composizione delle persone in carico all'ultimo giorno del trimestre.",
                    "Composition of the persons in charge on the last day of the quarter.",
                )],
                tables: vec![
                    two_way(
                        lang,
                        "sesso",
                        t(
                            "In carico a fine trimestre per sesso",
                            "In charge at the end by sex",
                        ),
                        tenants,
                        &sexes,
                        |tq, c| tq.stock_by_sex.get(c).copied().unwrap_or(0),
                        min,
                    ),
                    by_cit,
                    two_way(
                        lang,
                        "provincia",
                        t(
                            "In carico a fine trimestre per provincia di residenza",
                            "In charge at the end by province of residence",
                        ),
                        tenants,
                        &provinces,
                        |tq, c| tq.stock_by_province.get(c).copied().unwrap_or(0),
                        min,
                    ),
                ],
                chart: None,
            });
        }

        // 3. GOL paths and physical indicators.
        {
            let paths: Vec<String> = (1..=4).map(|p| format!("GOL {p}")).collect();
            let gol = two_way(
                lang,
                "percorsi_gol",
                t(
                    "Assessment GOL del trimestre per percorso assegnato",
                    "GOL assessments in the quarter by final path",
                ),
                tenants,
                &paths,
                |tq, c| {
                    let p: u8 = c[4..].parse().unwrap_or(0);
                    tq.gol_paths.get(&p).copied().unwrap_or(0)
                },
                min,
            );
            let ids: Vec<String> = tenants
                .first()
                .map(|tq| {
                    tq.indicators
                        .iter()
                        .map(|i| format!("{} {}", i.id, lang.t(i.label_it, i.label_en)))
                        .collect()
                })
                .unwrap_or_default();
            // Indicators are rows (persons or companies), tenants columns: each row with its total is a line.
            let cells: Vec<Vec<u64>> = (0..ids.len())
                .map(|k| tenants.iter().map(|tq| tq.indicators[k].count).collect())
                .collect();
            let tenant_names: Vec<String> = tenants.iter().map(|tq| tq.tenant.clone()).collect();
            let mut tables = vec![gol];
            if !tenant_names.is_empty()
                && let Ok(table) = CountTable::new(ids, tenant_names, cells)
            {
                let mut p = protect(&table, min);
                // Different indicators are not additive: the column totals are not published.
                for c in p.col_totals.iter_mut() {
                    *c = Cell::Secondary;
                }
                p.total = Cell::Secondary;
                let mut pt = from_protected(
                    "indicatori",
                    t(
                        "Indicatori fisici (standard dei servizi, allegato indicatori)",
                        "Physical indicators (service standards)",
                    ),
                    t("Indicatore", "Indicator"),
                    "",
                    &p,
                    true,
                    lang.t("Totale", "Total"),
                );
                pt.rows.pop();
                pt.has_total = false;
                tables.push(pt);
            }
            let placed = two_way(
                lang,
                "inserimenti",
                t(
                    "Persone in carico avviate al lavoro nel trimestre (primo rapporto)",
                    "Persons in charge starting a job in the quarter (first contract)",
                ),
                tenants,
                &[
                    t("Avviati", "Placed"),
                    t("di cui a tempo indeterminato", "of whom permanent"),
                ],
                |tq, c| {
                    if c.starts_with("Avv") || c.starts_with("Pla") {
                        tq.placed
                    } else {
                        tq.placed_permanent
                    }
                },
                min,
            );
            let mut placed = placed;
            // "of whom" is a subset, not an addend: drop the meaningless row totals column.
            for r in placed.rows.iter_mut() {
                r.1.pop();
            }
            placed.columns.pop();
            tables.push(placed);
            sections.push(Section {
                heading: t("Servizi erogati e risultati", "Services and results"),
                text: vec![t(
                    "Gli indicatori contano persone (o aziende) distinte con un servizio avviato nel trimestre; la definizione di ogni indicatore segue gli standard regionali dei servizi per il lavoro.",
                    "Indicators count distinct persons (or companies) with a service started in the quarter, as defined by the regional service standards.",
                )],
                tables,
                chart: None,
            });
        }

        let privacy_note = if lang == Lang::It {
            format!(
                "x = dato oscurato a tutela della riservatezza: i valori compresi tra 1 e {} non sono pubblicati (soppressione primaria) e, dove servirebbe a ricostruirli dai totali, lo è anche un valore della stessa riga o colonna (soppressione secondaria).",
                min.get() - 1
            )
        } else {
            format!(
                "x = value hidden for confidentiality: counts from 1 to {} are not published (primary suppression) and, where they could be recovered from the totals, neither is another value of the same row or column (secondary suppression).",
                min.get() - 1
            )
        };
        Report {
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
            lang,
            sections,
            privacy_note,
            min_count: min.get(),
        }
    }

    /// Writes report.html, report.pdf, report.xlsx and one CSV per table under `tables/`.
    pub fn write_all(&self, out: &Path) -> Result<Vec<PathBuf>> {
        let werr = |p: &Path, e: String| Error::Write {
            path: p.to_path_buf(),
            reason: e,
        };
        std::fs::create_dir_all(out).map_err(|e| werr(out, e.to_string()))?;
        let mut written = Vec::new();
        let h = out.join("report.html");
        write_atomic(&h, html(self).as_bytes())?;
        written.push(h);
        let (m, assets) = markup(self);
        let pdf_bytes = pdf::render_pdf(&m, &assets).map_err(|e| Error::Pdf(e.to_string()))?;
        let p = out.join("report.pdf");
        write_atomic(&p, &pdf_bytes)?;
        written.push(p);
        let x = out.join("report.xlsx");
        let bytes = render::xlsx(self).map_err(|e| werr(&x, e.to_string()))?;
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
        }
        Ok(written)
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
    use occupa_engine::indicators::StockFlow;

    fn tenant(name: &str, sf: StockFlow) -> TenantQuarter {
        TenantQuarter {
            tenant: name.into(),
            quarter: Quarter::parse("2026Q3").unwrap(),
            stock_flow: sf,
            stock_history: vec![],
            stock_by_sex: Default::default(),
            stock_by_citizenship: Default::default(),
            stock_by_province: Default::default(),
            gol_paths: Default::default(),
            indicators: vec![],
            placed: 0,
            placed_permanent: 0,
        }
    }

    #[test]
    fn the_narrative_never_quotes_a_suppressed_count() {
        let sf = StockFlow {
            stock_start: 100,
            inflow: 3,
            outflow: 2,
            stock_end: 101,
        };
        let r = Report::quarterly(
            Quarter::parse("2026Q3").unwrap(),
            &[tenant("t01", sf)],
            Lang::It,
            MinCount::default(),
        );
        let text = &r.sections[0].text[0];
        assert!(text.contains("preso in carico x persone"), "{text}");
        assert!(!text.contains(" 3 ") && !text.contains(" 2;"), "{text}");
        // stock_start + inflow − outflow = stock_end links the four values: two published
        // stocks would reveal inflow − outflow, so the stock line hides more than the primaries.
        let row = &r.sections[0].tables[0].rows[0].1;
        assert!(row.iter().filter(|v| v.is_none()).count() >= 2);
    }

    #[test]
    fn english_labels() {
        let sf = StockFlow {
            stock_start: 100,
            inflow: 30,
            outflow: 20,
            stock_end: 110,
        };
        let r = Report::quarterly(
            Quarter::parse("2026Q3").unwrap(),
            &[tenant("t01", sf)],
            Lang::En,
            MinCount::default(),
        );
        assert!(r.sections[0].text[0].starts_with("In 2026Q3 the authorities took 30 persons"));
        assert_eq!(r.sections[0].tables[0].columns[1], "Inflow");
    }
}
