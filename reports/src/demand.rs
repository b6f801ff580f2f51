//! Labour demand: hires and vacancies forecast 6 and 12 months ahead by sector and
//! province (the engine's forecast runner on the store's monthly series), fan charts, and
//! last quarter's forecast against what happened.
//!
//! Protection: the monthly counts behind a chart are published. A series is shown only
//! when every month of it reaches the threshold; the sectors (or provinces) that do not
//! are pooled into one "other" series, and when that still has a small month the smallest
//! shown one joins it, until every published month reaches the threshold. No cell is then
//! hidden, so nothing can be recovered by subtraction: the published series of a level
//! add up to the total exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use occupa_engine::forecast::Forecast;

use crate::render::fmt_figure;
use crate::{FigureTable, Lang, Section};

/// What is forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Contracts started (compulsory notifications).
    Hires,
    /// Positions notified by employers.
    Vacancies,
}

impl Kind {
    fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Kind::Hires, Lang::It) => "Assunzioni",
            (Kind::Hires, Lang::En) => "Hires",
            (Kind::Vacancies, Lang::It) => "Posti vacanti",
            (Kind::Vacancies, Lang::En) => "Vacancies",
        }
    }
}

/// The level a series sits at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Everything.
    Total,
    /// One ATECO section (or the pooled others).
    Sector(String),
    /// One province (or the pooled others).
    Province(String),
}

/// Monthly counts of one kind: (month `YYYY-MM`, sector, province) → count.
pub type Cells = BTreeMap<(String, String, String), f64>;

/// One published series: its history and forecasts.
#[derive(Debug, Clone)]
pub struct DemandSeries {
    /// Hires or vacancies.
    pub kind: Kind,
    /// Total, a sector or a province.
    pub level: Level,
    /// Shown name.
    pub label: String,
    /// Months and counts, oldest first, up to the quarter's end.
    pub history: Vec<(String, f64)>,
    /// The forecast from the quarter's end, 12 months.
    pub forecast: Option<Forecast>,
    /// The forecast made at the previous quarter's end for this quarter's three months,
    /// and what happened.
    pub past: Option<(Forecast, Vec<f64>)>,
}

/// The section's input.
#[derive(Debug, Clone, Default)]
pub struct Demand {
    /// Published series (every month at or above the threshold).
    pub series: Vec<DemandSeries>,
    /// Interval levels of the forecasts (80, 95).
    pub levels: Vec<f64>,
    /// The months forecast.
    pub months: Vec<String>,
    /// Sectors or provinces pooled into "other" for protection, by kind and level name.
    pub pooled: Vec<String>,
    /// The model choice and request, for provenance.
    pub spec: serde_json::Value,
    /// How many months the past forecast covers: 3 (the quarter, in the quarterly report)
    /// or 12 (the year, in the annual report).
    pub past_months: usize,
}

/// The series of one kind to publish: the total, sectors and provinces; those with a
/// small month pooled into "other" (see the module's note). `months`: the window shown.
pub fn publishable(
    cells: &Cells,
    months: &[String],
    min: f64,
    other: &str,
) -> (Vec<(Level, Vec<f64>)>, Vec<String>) {
    let series_of = |f: &dyn Fn(&(String, String, String)) -> bool| -> Vec<f64> {
        months
            .iter()
            .map(|m| {
                cells
                    .range((m.clone(), String::new(), String::new())..)
                    .take_while(|(k, _)| &k.0 == m)
                    .filter(|(k, _)| f(k))
                    .map(|(_, v)| *v)
                    .sum()
            })
            .collect()
    };
    let total = series_of(&|_| true);
    let mut out = Vec::new();
    let mut pooled_names = Vec::new();
    let small = |v: &[f64]| v.iter().any(|x| *x < min);
    if small(&total) {
        return (out, pooled_names);
    }
    out.push((Level::Total, total));
    for by_sector in [true, false] {
        let mut names: Vec<String> = cells
            .keys()
            .map(|k| if by_sector { k.1.clone() } else { k.2.clone() })
            .collect();
        names.sort();
        names.dedup();
        let mut parts: Vec<(String, Vec<f64>)> = names
            .into_iter()
            .map(|n| {
                let v = series_of(&|k| (if by_sector { &k.1 } else { &k.2 }) == &n);
                (n, v)
            })
            .collect();
        let mut rest: Vec<(String, Vec<f64>)> = Vec::new();
        parts.retain(|p| {
            if small(&p.1) {
                rest.push(p.clone());
                false
            } else {
                true
            }
        });
        // The pooled rest must itself reach the threshold each month: the smallest shown
        // part joins it until it does (or nothing is left to show at this level).
        while !rest.is_empty() {
            let sum: Vec<f64> = (0..months.len())
                .map(|i| rest.iter().map(|r| r.1[i]).sum())
                .collect();
            if !small(&sum) {
                break;
            }
            let Some(k) = (0..parts.len()).min_by(|&a, &b| {
                parts[a]
                    .1
                    .iter()
                    .sum::<f64>()
                    .total_cmp(&parts[b].1.iter().sum::<f64>())
            }) else {
                break;
            };
            rest.push(parts.remove(k));
        }
        if parts.is_empty() {
            continue;
        }
        let wrap = |n: String| {
            if by_sector {
                Level::Sector(n)
            } else {
                Level::Province(n)
            }
        };
        for (n, v) in parts {
            out.push((wrap(n), v));
        }
        if !rest.is_empty() {
            let sum: Vec<f64> = (0..months.len())
                .map(|i| rest.iter().map(|r| r.1[i]).sum())
                .collect();
            pooled_names.extend(rest.iter().map(|r| r.0.clone()));
            out.push((wrap(other.to_string()), sum));
        }
    }
    (out, pooled_names)
}

/// A fan chart: the history, the forecast's point line and its bands (the widest
/// lightest), hand-written SVG like the map.
pub fn fan_svg(title: &str, s: &DemandSeries, months: &[String], lang: Lang) -> String {
    let Some(f) = &s.forecast else {
        return String::new();
    };
    let hist = &s.history;
    let n = hist.len() + f.mean.len();
    let (w, h, left, top, bottom) = (700.0, 260.0, 60.0, 30.0, 40.0);
    let max = hist
        .iter()
        .map(|x| x.1)
        .chain(f.intervals.iter().flat_map(|i| i.upper.iter().copied()))
        .chain(f.mean.iter().copied())
        .fold(1.0_f64, f64::max)
        * 1.08;
    let px = |i: usize| left + (w - left - 10.0) * i as f64 / (n.max(2) - 1) as f64;
    let py = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"ft\" font-family=\"sans-serif\" font-size=\"10\"><title id=\"ft\">{}</title><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc(title),
        esc(title)
    );
    // Grid and y labels.
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - 10.0,
            left - 4.0,
            py(v) + 3.0,
            fmt_figure(Some(v), 0, lang),
            y = py(v)
        );
    }
    // Bands, widest first.
    let start = hist.len();
    let mut bands: Vec<&occupa_engine::forecast::Interval> = f.intervals.iter().collect();
    bands.sort_by(|a, b| b.level.total_cmp(&a.level));
    for (b, iv) in bands.iter().enumerate() {
        let fill = if b == 0 { "#c6dbef" } else { "#6baed6" };
        let mut d = format!(
            "M{:.1} {:.1}",
            px(start - 1),
            py(hist.last().map_or(0.0, |x| x.1))
        );
        for (i, u) in iv.upper.iter().enumerate() {
            let _ = write!(d, "L{:.1} {:.1}", px(start + i), py(*u));
        }
        for (i, l) in iv.lower.iter().enumerate().rev() {
            let _ = write!(d, "L{:.1} {:.1}", px(start + i), py(*l));
        }
        d.push('Z');
        let _ = write!(
            svg,
            "<path d=\"{d}\" fill=\"{fill}\" stroke=\"none\"><title>{} {}%</title></path>",
            lang_t(lang, "Intervallo", "Interval"),
            fmt_figure(Some(iv.level), 0, lang)
        );
    }
    // History and point forecast.
    let mut d = String::new();
    for (i, (_, v)) in hist.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1} {:.1}",
            if i == 0 { "M" } else { "L" },
            px(i),
            py(*v)
        );
    }
    let _ = write!(
        svg,
        "<path d=\"{d}\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.6\"/>"
    );
    let mut d = format!(
        "M{:.1} {:.1}",
        px(start - 1),
        py(hist.last().map_or(0.0, |x| x.1))
    );
    for (i, v) in f.mean.iter().enumerate() {
        let _ = write!(d, "L{:.1} {:.1}", px(start + i), py(*v));
    }
    let _ = write!(
        svg,
        "<path d=\"{d}\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"1.6\" stroke-dasharray=\"5 3\"/>"
    );
    // Month labels every 6 months.
    let all: Vec<&str> = hist
        .iter()
        .map(|x| x.0.as_str())
        .chain(months.iter().map(String::as_str))
        .collect();
    for (i, m) in all.iter().enumerate().filter(|(i, _)| i % 6 == 0) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{m}</text>",
            px(i),
            h - bottom + 14.0
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{top}\" y2=\"{1:.0}\" stroke=\"#999\" stroke-dasharray=\"2 2\"/>",
        px(start - 1),
        h - bottom
    );
    // Legend.
    let _ = write!(
        svg,
        "<g transform=\"translate({left},{:.0})\"><line x1=\"0\" x2=\"18\" y1=\"0\" y2=\"0\" stroke=\"#222\" stroke-width=\"1.6\"/><text x=\"22\" y=\"3\">{}</text><line x1=\"110\" x2=\"128\" y1=\"0\" y2=\"0\" stroke=\"#08519c\" stroke-dasharray=\"5 3\" stroke-width=\"1.6\"/><text x=\"132\" y=\"3\">{}</text><rect x=\"220\" y=\"-5\" width=\"14\" height=\"10\" fill=\"#6baed6\"/><text x=\"238\" y=\"3\">80%</text><rect x=\"280\" y=\"-5\" width=\"14\" height=\"10\" fill=\"#c6dbef\"/><text x=\"298\" y=\"3\">95%</text></g>",
        h - 8.0,
        lang_t(lang, "Osservato", "Observed"),
        lang_t(lang, "Previsione", "Forecast")
    );
    svg.push_str("</svg>");
    svg
}

fn lang_t<'a>(lang: Lang, it: &'a str, en: &'a str) -> &'a str {
    if lang == Lang::It { it } else { en }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn level_label(s: &DemandSeries, lang: Lang) -> String {
    match &s.level {
        Level::Total => lang_t(lang, "Totale", "Total").to_string(),
        Level::Sector(_) => format!("{}: {}", lang_t(lang, "Settore", "Sector"), s.label),
        Level::Province(_) => format!("{}: {}", lang_t(lang, "Provincia", "Province"), s.label),
    }
}

/// The section: a fan chart per kind for the total, the forecast table, last quarter's
/// forecast against what happened.
pub(crate) fn demand_section(d: &Demand, lang: Lang) -> Section {
    let t = |it: &str, en: &str| lang_t(lang, it, en).to_string();
    let mut charts = Vec::new();
    for s in d.series.iter().filter(|s| s.level == Level::Total) {
        charts.push(fan_svg(
            &format!(
                "{}: {}",
                s.kind.label(lang),
                t(
                    "osservato e previsto, 12 mesi",
                    "observed and forecast, 12 months"
                )
            ),
            s,
            &d.months,
            lang,
        ));
    }
    let hi = d.levels.iter().copied().fold(0.0_f64, f64::max);
    let iv = |f: &Forecast, h: usize| -> (Option<f64>, Option<f64>) {
        f.intervals
            .iter()
            .find(|i| i.level == hi)
            .map_or((None, None), |i| {
                (i.lower.get(h).copied(), i.upper.get(h).copied())
            })
    };
    let mut rows = Vec::new();
    for s in &d.series {
        let Some(f) = &s.forecast else { continue };
        let last12: f64 = s.history.iter().rev().take(12).map(|x| x.1).sum();
        let next6: f64 = f.mean.iter().take(6).sum();
        let next12: f64 = f.mean.iter().take(12).sum();
        let (lo6, hi6) = iv(f, 5);
        let (lo12, hi12) = iv(f, 11);
        rows.push((
            format!("{} · {}", s.kind.label(lang), level_label(s, lang)),
            vec![
                Some(last12),
                Some(next6),
                Some(next12),
                (last12 > 0.0).then(|| 100.0 * (next12 - last12) / last12),
                f.mean.get(5).copied(),
                lo6,
                hi6,
                f.mean.get(11).copied(),
                lo12,
                hi12,
            ],
        ));
    }
    let m6 = d.months.get(5).cloned().unwrap_or_default();
    let m12 = d.months.get(11).cloned().unwrap_or_default();
    let forecast_table = FigureTable {
        id: "demand_forecast".into(),
        title: t(
            "Domanda di lavoro: ultimi 12 mesi e previsione a 6 e 12 mesi",
            "Labour demand: the last 12 months and the forecast 6 and 12 months ahead",
        ),
        keys: [
            "series",
            "last_12_months",
            "next_6_months",
            "next_12_months",
            "change_12_months_pct",
            "month_6",
            "month_6_lo95",
            "month_6_hi95",
            "month_12",
            "month_12_lo95",
            "month_12_hi95",
        ]
        .map(String::from)
        .to_vec(),
        headers: vec![
            t("Serie", "Series"),
            t("Ultimi 12 mesi", "Last 12 months"),
            t("Prossimi 6 mesi", "Next 6 months"),
            t("Prossimi 12 mesi", "Next 12 months"),
            t("Var. %", "% change"),
            m6.clone(),
            t("IC 95% inf.", "95% low"),
            t("IC 95% sup.", "95% high"),
            m12.clone(),
            t("IC 95% inf.", "95% low"),
            t("IC 95% sup.", "95% high"),
        ],
        decimals: vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        notes: Vec::new(),
        rows,
    };
    let mut back_rows = Vec::new();
    for s in &d.series {
        let Some((f, actual)) = &s.past else { continue };
        let forecast: f64 = f.mean.iter().sum();
        let happened: f64 = actual.iter().sum();
        let inside = |level: f64| -> Option<f64> {
            f.intervals.iter().find(|i| i.level == level).map(|i| {
                actual
                    .iter()
                    .enumerate()
                    .filter(|(h, a)| {
                        i.lower.get(*h).is_some_and(|l| *a >= l)
                            && i.upper.get(*h).is_some_and(|u| *a <= u)
                    })
                    .count() as f64
            })
        };
        back_rows.push((
            format!("{} · {}", s.kind.label(lang), level_label(s, lang)),
            vec![
                Some(forecast),
                Some(happened),
                (happened > 0.0).then(|| 100.0 * (forecast - happened) / happened),
                inside(80.0),
                inside(95.0),
                Some(actual.len() as f64),
            ],
        ));
    }
    let mut figures = vec![forecast_table];
    if !back_rows.is_empty() {
        figures.push(FigureTable {
            id: "demand_forecast_vs_actual".into(),
            title: if d.past_months >= 12 {
                t(
                    "La previsione di un anno fa e ciò che è accaduto nei 12 mesi",
                    "Last year's forecast against what happened in the 12 months",
                )
            } else {
                t(
                    "La previsione del trimestre scorso e ciò che è accaduto",
                    "Last quarter's forecast against what happened",
                )
            },
            keys: [
                "series",
                "forecast",
                "actual",
                "error_pct",
                "months_inside_80",
                "months_inside_95",
                "months",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Serie", "Series"),
                t("Previsto", "Forecast"),
                t("Osservato", "Actual"),
                t("Errore %", "Error %"),
                t("Mesi nell'intervallo 80%", "Months inside 80%"),
                t("Mesi nell'intervallo 95%", "Months inside 95%"),
                t("Mesi", "Months"),
            ],
            decimals: vec![0, 0, 1, 0, 0, 0],
            notes: Vec::new(),
            rows: back_rows,
        });
    }
    let mut text = vec![if d.past_months >= 12 {
        t(
            "Assunzioni (comunicazioni obbligatorie) e posti vacanti notificati dalle aziende, per mese: previsione dei prossimi 12 mesi con intervalli all'80% e al 95% (metodo scelto per ogni serie dal confronto su periodi già osservati, intervalli calibrati sugli errori passati), e la previsione fatta alla fine dell'anno precedente confrontata con i 12 mesi dell'anno. Una serie è pubblicata solo se ogni suo mese raggiunge la soglia di riservatezza; le altre sono riunite in «altri».",
            "Hires (compulsory notifications) and vacancies notified by employers, by month: the forecast of the next 12 months with 80% and 95% intervals (the method chosen for each series on periods already observed, intervals calibrated on past errors), and the forecast made at the end of the previous year against the year's 12 months. A series is published only when each of its months reaches the confidentiality threshold; the others are pooled into 'other'.",
        )
    } else {
        t(
            "Assunzioni (comunicazioni obbligatorie) e posti vacanti notificati dalle aziende, per mese: previsione dei prossimi 12 mesi con intervalli all'80% e al 95% (metodo scelto per ogni serie dal confronto su periodi già osservati, intervalli calibrati sugli errori passati), e la previsione fatta alla fine del trimestre precedente confrontata con i tre mesi osservati. Una serie è pubblicata solo se ogni suo mese raggiunge la soglia di riservatezza; le altre sono riunite in «altri».",
            "Hires (compulsory notifications) and vacancies notified by employers, by month: the forecast of the next 12 months with 80% and 95% intervals (the method chosen for each series on periods already observed, intervals calibrated on past errors), and the forecast made at the end of the previous quarter against the three months observed. A series is published only when each of its months reaches the confidentiality threshold; the others are pooled into 'other'.",
        )
    }];
    if !d.pooled.is_empty() {
        text.push(format!(
            "{} {}.",
            t(
                "Riuniti in «altri» per riservatezza:",
                "Pooled into 'other' for confidentiality:"
            ),
            d.pooled.join(", ")
        ));
    }
    Section {
        heading: t("Domanda di lavoro", "Labour demand"),
        text,
        tables: Vec::new(),
        figures,
        charts,
        chart_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[(&str, &str, &str, f64)]) -> Cells {
        v.iter()
            .map(|(m, s, p, x)| ((m.to_string(), s.to_string(), p.to_string()), *x))
            .collect()
    }

    /// A sector with a small month is pooled with the others; when the pooled rest is
    /// itself small, the smallest shown sector joins it; the published parts add up to
    /// the total every month.
    #[test]
    fn small_series_are_pooled_until_every_published_month_reaches_the_threshold() {
        let months = vec!["2026-01".to_string(), "2026-02".to_string()];
        let c = cells(&[
            ("2026-01", "C", "001", 50.0),
            ("2026-02", "C", "001", 60.0),
            ("2026-01", "F", "001", 9.0),
            ("2026-02", "F", "001", 8.0),
            ("2026-01", "G", "001", 2.0),
            ("2026-02", "G", "001", 7.0),
        ]);
        let (s, pooled) = publishable(&c, &months, 5.0, "altri");
        let sectors: Vec<(&Level, &Vec<f64>)> = s
            .iter()
            .filter(|x| matches!(x.0, Level::Sector(_)))
            .map(|(l, v)| (l, v))
            .collect();
        // G has a month of 2: pooled; alone it is still small, so F (the smallest) joins.
        assert_eq!(sectors.len(), 2, "{sectors:?}");
        assert_eq!(sectors[0], (&Level::Sector("C".into()), &vec![50.0, 60.0]));
        assert_eq!(
            sectors[1],
            (&Level::Sector("altri".into()), &vec![11.0, 15.0])
        );
        assert_eq!(pooled, vec!["G".to_string(), "F".to_string()]);
        for (l, v) in &s {
            assert!(v.iter().all(|x| *x >= 5.0), "{l:?} {v:?}");
        }
        // One province holds everything: it is the total, published as such.
        assert!(s.iter().any(|x| x.0 == Level::Province("001".into())));
        // A total with a small month publishes nothing.
        let tiny = cells(&[("2026-01", "C", "001", 3.0), ("2026-02", "C", "001", 9.0)]);
        assert!(publishable(&tiny, &months, 5.0, "altri").0.is_empty());
    }
}
