//! The quarter against the previous quarter and the same quarter a year before, and the
//! summary: sentences written from the protected figures (what rose, what fell, by how
//! much, what is unusual), never from the raw counts.

use occupa_anonymiser::publication::{Draft, Protection};
use occupa_engine::indicators::{Quarter, TenantQuarter, Units};

use crate::render::{fmt_count, fmt_figure};
use crate::{FigureTable, Lang, union};

/// One measure's counts in the draft: a year before, the previous quarter, this quarter.
pub(crate) struct TrendRow {
    key: String,
    label: String,
    counts: [usize; 3],
}

/// A trend row as published: its label and the three values (`None` hidden).
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    pub key: String,
    pub label: String,
    pub values: [Option<u64>; 3],
}

impl Shown {
    /// Change in percent from `then` (0: a year before, 1: the previous quarter) to now,
    /// when both are shown and the base is not zero.
    pub fn change(&self, then: usize) -> Option<f64> {
        match (self.values[then], self.values[2]) {
            (Some(a), Some(b)) if a > 0 => Some(100.0 * (b as f64 - a as f64) / a as f64),
            _ => None,
        }
    }
}

/// Adds the measures of the three quarters to the draft (the pooled totals of every
/// tenant): inflow, outflow, the end stock, placements and each physical indicator.
/// Empty when a tenant lacks the earlier quarters.
pub(crate) fn trend_counts(
    tenants: &[TenantQuarter],
    draft: &mut Draft,
    lang: Lang,
    min: u64,
) -> Vec<TrendRow> {
    if tenants.is_empty() || tenants.iter().any(|t| t.earlier.len() != 2) {
        return Vec::new();
    }
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    // (key, label, the set of a tenant in period k: 0, 1 earlier, 2 this quarter)
    type Get = Box<dyn Fn(&TenantQuarter, usize) -> Units>;
    let measures: Vec<(String, String, Get)> = vec![
        (
            "inflow".into(),
            t("Ingressi (prese in carico)", "Inflow (taken in charge)"),
            Box::new(|tq: &TenantQuarter, k: usize| {
                if k == 2 {
                    tq.flow_units.inflow.clone()
                } else {
                    tq.earlier[k].flow_units.inflow.clone()
                }
            }),
        ),
        (
            "outflow".into(),
            t("Uscite", "Outflow"),
            Box::new(|tq: &TenantQuarter, k: usize| {
                if k == 2 {
                    tq.flow_units.outflow.clone()
                } else {
                    tq.earlier[k].flow_units.outflow.clone()
                }
            }),
        ),
        (
            "stock_end".into(),
            t("In carico a fine trimestre", "In charge at the end"),
            Box::new(|tq: &TenantQuarter, k: usize| {
                if k == 2 {
                    tq.flow_units.stock_end.clone()
                } else {
                    tq.earlier[k].flow_units.stock_end.clone()
                }
            }),
        ),
        (
            "placed".into(),
            t(
                "Avviati al lavoro (primo rapporto)",
                "Placed (first contract)",
            ),
            Box::new(|tq: &TenantQuarter, k: usize| {
                if k == 2 {
                    tq.placed.clone()
                } else {
                    tq.earlier[k].placed.clone()
                }
            }),
        ),
        (
            "placed_permanent".into(),
            t("di cui a tempo indeterminato", "of whom permanent"),
            Box::new(|tq: &TenantQuarter, k: usize| {
                if k == 2 {
                    tq.placed_permanent.clone()
                } else {
                    tq.earlier[k].placed_permanent.clone()
                }
            }),
        ),
    ];
    // The physical indicators are not compared here: their earlier quarters' counts by
    // authority, published beside the pooled report's and each authority's own, pinned
    // hidden counts of the quarter in the store tests (a consistent design is open).
    let quarters = [
        tenants[0].earlier[0].quarter,
        tenants[0].earlier[1].quarter,
        tenants[0].quarter,
    ];
    measures
        .into_iter()
        .filter_map(|(key, label, get)| {
            // Earlier quarters' counts are new publications of sets that each authority's
            // own report publishes too: a measure is compared only when every authority's
            // count reaches three times the threshold in each quarter, so no small count is
            // published or left to be found by subtraction between the pooled report and
            // the authorities' (a measure with a small part is left out, and the note says so).
            let parts: Vec<Vec<Units>> = [0, 1, 2]
                .iter()
                .map(|&k| tenants.iter().map(|tq| get(tq, k)).collect())
                .collect();
            if parts.iter().flatten().any(|u| (u.len() as u64) < 3 * min) {
                return None;
            }
            let counts = [0, 1, 2].map(|k| {
                draft.count(
                    &format!("trend/{key}@{}", quarters[k]),
                    union(&parts[k]),
                    true,
                )
            });
            Some(TrendRow { key, label, counts })
        })
        .collect()
}

/// The published trend rows.
pub(crate) fn shown(rows: &[TrendRow], draft: &Draft, p: &Protection) -> Vec<Shown> {
    rows.iter()
        .map(|r| Shown {
            key: r.key.clone(),
            label: r.label.clone(),
            values: r.counts.map(|i| p.shown(draft, i)),
        })
        .collect()
}

/// The comparison table: the three quarters and the changes, a change only between shown
/// counts.
pub(crate) fn trend_table(rows: &[Shown], q: Quarter, lang: Lang) -> FigureTable {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let year_before = q.prev().prev().prev().prev();
    FigureTable {
        id: "indicators_trend".into(),
        title: t(
            "Il trimestre a confronto con il precedente e con lo stesso trimestre dell'anno prima",
            "The quarter against the previous one and the same quarter a year before",
        ),
        keys: [
            "measure",
            "year_before",
            "previous",
            "current",
            "change_on_previous_pct",
            "change_on_year_pct",
        ]
        .map(String::from)
        .to_vec(),
        headers: vec![
            t("Misura", "Measure"),
            year_before.to_string(),
            q.prev().to_string(),
            q.to_string(),
            t(
                "Var. % sul trimestre precedente",
                "% change on previous quarter",
            ),
            t("Var. % sull'anno prima", "% change on a year before"),
        ],
        decimals: vec![0, 0, 0, 1, 1],
        notes: Vec::new(),
        rows: rows
            .iter()
            .map(|r| {
                let mut v: Vec<Option<f64>> =
                    r.values.iter().map(|x| x.map(|n| n as f64)).collect();
                v.push(r.change(1));
                v.push(r.change(0));
                (r.label.clone(), v)
            })
            .collect(),
    }
}

/// What the summary is written from: only figures as published.
pub(crate) struct SummaryFacts<'a> {
    pub quarter: Quarter,
    /// The trend rows.
    pub trend: &'a [Shown],
    /// The employment outcome cohort: persons, employed at 12 months (as shown).
    pub outcome: Option<(Option<u64>, Option<u64>)>,
    /// Operators shown in the funnel, and those below / above its 99.8% limits.
    pub operators: Option<(usize, usize, usize)>,
    /// Anomalies listed.
    pub anomalies: usize,
    /// Rows read and quarantined in the period's files.
    pub quality: Option<(u64, u64)>,
}

/// The summary's sentences. Each sentence is written only when its figures are shown;
/// rises and falls are named with their size, and the largest moves among the physical
/// indicators against a year before (bases of at least 20) are singled out.
pub(crate) fn summary(f: &SummaryFacts<'_>, lang: Lang) -> Vec<String> {
    let it = lang == Lang::It;
    let pct = |x: f64| format!("{}%", fmt_figure(Some(x.abs()), 1, lang));
    let n = |v: u64| fmt_count(Some(v), lang);
    // "up 4.5%" / "in aumento del 4,5%"; a change under 0.05% is "stable".
    let moved = |x: f64| -> String {
        if x.abs() < 0.05 {
            lang.t("stabile", "unchanged").to_string()
        } else if lang == Lang::It {
            // "in aumento (+4,5%)": no article to agree with the number.
            let sign = if x > 0.0 {
                "in aumento (+"
            } else {
                "in calo (−"
            };
            format!("{sign}{})", pct(x))
        } else {
            format!("{} {}", if x > 0.0 { "up" } else { "down" }, pct(x))
        }
    };
    let mut out = Vec::new();
    let q = f.quarter;
    let row = |k: &str| f.trend.iter().find(|r| r.key == k);
    if let Some(r) = row("stock_end")
        && let Some(now) = r.values[2]
    {
        let mut s = if it {
            format!("A fine {q} risultano in carico {} persone", n(now))
        } else {
            format!("At the end of {q}, {} persons were in charge", n(now))
        };
        if let (Some(c), Some(prev)) = (r.change(1), r.values[1]) {
            s.push_str(&if it {
                format!(
                    ", {} rispetto al trimestre precedente ({})",
                    moved(c),
                    n(prev)
                )
            } else {
                format!(", {} on the previous quarter ({})", moved(c), n(prev))
            });
        }
        if let Some(c) = r.change(0) {
            s.push_str(&if it {
                format!(" e {} rispetto a un anno prima", moved(c))
            } else {
                format!(" and {} on a year before", moved(c))
            });
        }
        s.push('.');
        out.push(s);
    }
    if let (Some(inf), Some(outf)) = (row("inflow"), row("outflow"))
        && let (Some(a), Some(b)) = (inf.values[2], outf.values[2])
    {
        let mut s = if it {
            format!(
                "Nel trimestre le prese in carico sono state {} e le uscite {}",
                n(a),
                n(b)
            )
        } else {
            format!(
                "In the quarter {} persons were taken in charge and {} left",
                n(a),
                n(b)
            )
        };
        if let Some(c) = inf.change(0) {
            s.push_str(&if it {
                format!(
                    "; gli ingressi sono {} rispetto allo stesso trimestre dell'anno prima",
                    moved(c)
                )
            } else {
                format!(
                    "; the inflow is {} on the same quarter a year before",
                    moved(c)
                )
            });
        }
        s.push('.');
        out.push(s);
    }
    if let Some(r) = row("placed")
        && let Some(now) = r.values[2]
    {
        let mut s = if it {
            format!(
                "Le persone in carico avviate al lavoro per la prima volta sono {}",
                n(now)
            )
        } else {
            format!("{} persons in charge started their first job", n(now))
        };
        if let Some(c) = r.change(0) {
            s.push_str(&if it {
                format!(", {} rispetto a un anno prima", moved(c))
            } else {
                format!(", {} on a year before", moved(c))
            });
        }
        if let Some(p) = row("placed_permanent").and_then(|p| p.values[2])
            && now > 0
        {
            s.push_str(&if it {
                format!(
                    ", il {} con un contratto a tempo indeterminato",
                    pct(100.0 * p as f64 / now as f64)
                )
            } else {
                format!(
                    ", {} of them on a permanent contract",
                    pct(100.0 * p as f64 / now as f64)
                )
            });
        }
        s.push('.');
        out.push(s);
    }
    // The indicators that moved most on a year before, on bases large enough to mean it.
    let mut moves: Vec<(&Shown, f64)> = f
        .trend
        .iter()
        .filter(|r| r.key.starts_with("indicator_") && r.values[0].is_some_and(|b| b >= 20))
        .filter_map(|r| r.change(0).map(|c| (r, c)))
        .collect();
    moves.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.key.cmp(&b.0.key)));
    let signed = |x: f64| format!("{}{}", if x >= 0.0 { "+" } else { "−" }, pct(x));
    let describe = |(r, c): &(&Shown, f64)| -> String {
        let (a, b) = (r.values[0].unwrap_or(0), r.values[2].unwrap_or(0));
        if it {
            format!("«{}» ({}, da {} a {})", r.label, signed(*c), n(a), n(b))
        } else {
            format!("'{}' ({}, from {} to {})", r.label, signed(*c), n(a), n(b))
        }
    };
    match (moves.first(), moves.last()) {
        (Some(up), Some(down)) if up.1 >= 0.05 && down.1 <= -0.05 => out.push(if it {
            format!(
                "Rispetto allo stesso trimestre dell'anno prima, l'indicatore cresciuto di più è {}, quello calato di più {}.",
                describe(up),
                describe(down)
            )
        } else {
            format!(
                "Against the same quarter a year before, the indicator that rose most is {}, the one that fell most {}.",
                describe(up),
                describe(down)
            )
        }),
        (Some(up), _) if up.1 >= 0.05 => out.push(if it {
            format!("Rispetto a un anno prima l'indicatore cresciuto di più è {}; nessuno è calato.", describe(up))
        } else {
            format!("Against a year before the indicator that rose most is {}; none fell.", describe(up))
        }),
        (_, Some(down)) if down.1 <= -0.05 => out.push(if it {
            format!("Rispetto a un anno prima l'indicatore calato di più è {}; nessuno è cresciuto.", describe(down))
        } else {
            format!("Against a year before the indicator that fell most is {}; none rose.", describe(down))
        }),
        _ => {}
    }
    if let Some((Some(persons), Some(e12))) = f.outcome
        && persons > 0
    {
        out.push(if it {
            format!(
                "Delle {} persone prese in carico un anno prima e osservate per 12 mesi, il {} era occupato 12 mesi dopo.",
                n(persons),
                pct(100.0 * e12 as f64 / persons as f64)
            )
        } else {
            format!(
                "Of the {} persons taken in charge a year earlier and observed for 12 months, {} were employed 12 months later.",
                n(persons),
                pct(100.0 * e12 as f64 / persons as f64)
            )
        });
    }
    if let Some((shown, below, above)) = f.operators
        && shown > 0
    {
        out.push(if it {
            format!(
                "Su {shown} operatori valutati, gli esiti sono sotto l'atteso oltre i limiti di controllo al 99,8% per {below} e sopra per {above}; gli altri non si distinguono dal caso."
            )
        } else {
            format!(
                "Of the {shown} operators rated, outcomes are below the expected beyond the 99.8% control limits for {below} and above them for {above}; the others are not distinguishable from chance."
            )
        });
    }
    match (f.anomalies, it) {
        (0, _) => {}
        (1, true) => out.push("È segnalato un valore insolito, rispetto alla propria storia o agli altri operatori (sezione Anomalie).".to_string()),
        (1, false) => out.push("One value unusual against its own history or against the other operators is listed (section Anomalies).".to_string()),
        (n, true) => out.push(format!("Sono segnalati {n} valori insoliti, rispetto alla propria storia o agli altri operatori (sezione Anomalie).")),
        (n, false) => out.push(format!("{n} values unusual against their own history or against the other operators are listed (section Anomalies).")),
    }
    if let Some((read, quarantined)) = f.quality
        && read > 0
    {
        out.push(if it {
            format!(
                "Dei file caricati sono state lette {} righe; {} ({}) sono in quarantena per errori.",
                n(read),
                n(quarantined),
                pct(100.0 * quarantined as f64 / read as f64)
            )
        } else {
            format!(
                "{} rows were read from the files loaded; {} ({}) were quarantined for errors.",
                n(read),
                n(quarantined),
                pct(100.0 * quarantined as f64 / read as f64)
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, label: &str, v: [Option<u64>; 3]) -> Shown {
        Shown {
            key: key.into(),
            label: label.into(),
            values: v,
        }
    }

    #[test]
    fn sentences_follow_the_figures_and_skip_hidden_ones() {
        let q = Quarter::parse("2026Q3").unwrap();
        let trend = vec![
            row("stock_end", "stock", [Some(1000), Some(1100), Some(1210)]),
            row("inflow", "in", [Some(200), Some(300), Some(250)]),
            row("outflow", "out", [Some(100), Some(140), None]),
            row(
                "indicator_1.1",
                "1.1 informed",
                [Some(100), Some(90), Some(150)],
            ),
            row(
                "indicator_2.1",
                "2.1 received",
                [Some(50), Some(60), Some(40)],
            ),
            row("indicator_3.1", "3.1 tiny", [Some(4), Some(9), Some(40)]),
        ];
        let f = SummaryFacts {
            quarter: q,
            trend: &trend,
            outcome: Some((Some(400), Some(190))),
            operators: Some((12, 1, 2)),
            anomalies: 0,
            quality: None,
        };
        let it = summary(&f, Lang::It).join(" ");
        assert!(it.contains("risultano in carico 1.210 persone, in aumento (+10,0%) rispetto al trimestre precedente (1.100) e in aumento (+21,0%)"), "{it}");
        // The outflow is hidden: no sentence quotes the inflow with it.
        assert!(!it.contains("le uscite"), "{it}");
        // Largest rise and fall among indicators with a base of at least 20; 3.1 (base 4) left out.
        assert!(it.contains("«1.1 informed» (+50,0%, da 100 a 150)"), "{it}");
        assert!(it.contains("«2.1 received» (−20,0%, da 50 a 40)"), "{it}");
        assert!(!it.contains("tiny"), "{it}");
        assert!(it.contains("il 47,5% era occupato"), "{it}");
        let en = summary(&f, Lang::En).join(" ");
        assert!(
            en.contains("1,210 persons were in charge, up 10.0% on the previous quarter (1,100)"),
            "{en}"
        );
        assert!(en.contains("Of the 12 operators rated, outcomes are below the expected beyond the 99.8% control limits for 1 and above them for 2"), "{en}");
    }
}
