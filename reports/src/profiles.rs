//! The intake's profiles: GOL paths as the rule assigned them and as operators finally set
//! them, each operator's ±3 adjustments and path overrides, the distribution of every
//! ASSO, ISA and GOL score, and the occupability profiles (latent classes of the ASSO
//! answers, fitted by the engine's clustering runner) with their sizes this quarter and
//! the one before. Every count is a count of the publication; a share, a change or a
//! score summary is shown only when the counts under it are.

use occupa_anonymiser::publication::{Draft, Protection};
use occupa_engine::analysis::AnalysisTable;
use occupa_engine::cluster::run::{ClusteringSpec, cluster_table};
use occupa_engine::columns::{Table, Values};
use occupa_engine::indicators::Quarter;
use occupa_engine::instruments::Instruments;

use crate::{FigureTable, Lang, Section, pooled_count};

/// The clustering spec of the report's occupability profiles: latent classes of every
/// ASSO answer, 2 to 5 classes chosen by BIC, a fixed seed so a report is reproducible.
pub fn profile_spec(columns: Vec<String>) -> ClusteringSpec {
    ClusteringSpec {
        method: occupa_engine::cluster::run::Method::Lca,
        columns,
        categorical: Vec::new(),
        k: None,
        k_range: Some("2..5".into()),
        seed: 20_260_101,
        starts: Some(4),
        standardise: false,
        covariance: "full".into(),
        stability: None,
        standard_errors: false,
        sheet: None,
    }
}

/// Smallest mean standardised difference on an ASSO dimension that a profile's label names.
const DIMENSION_NAMED: f64 = 0.25;
/// From this difference the label says "molto" / "very".
const DIMENSION_STRONG: f64 = 0.8;

/// A profile's label in the questionnaire's own terms: how the class stands on each ASSO
/// dimension (occupability, socio-occupability, trainability) against everyone, from
/// the class's standardised item means (`z`, in the order of `columns`, the `asso_qNN`
/// answers) averaged with the items' scoring weights and directions, so a reversed item
/// counts the way the score counts it. Item names ("asso_q07 basso") mean nothing to a
/// planner; the dimensions are what the office's staff read on the assessment itself.
pub fn dimension_label(z: &[f64], columns: &[String], lang: Lang) -> Option<String> {
    let inst = Instruments::builtin().ok()?;
    let q = &inst.asso;
    let mut named: Vec<(f64, String)> = Vec::new();
    for g in &q.groups {
        let (mut num, mut den) = (0.0, 0.0);
        for &i in &g.items {
            let col = format!("asso_{}", q.item_column(i));
            if let Some(j) = columns.iter().position(|c| *c == col)
                && let Some(zj) = z.get(j).filter(|v| v.is_finite())
            {
                num += q.item_weight(i) * q.item_direction(i) * zj;
                den += q.item_weight(i);
            }
        }
        if den == 0.0 {
            continue;
        }
        let d = num / den;
        if d.abs() < DIMENSION_NAMED {
            continue;
        }
        let strong = d.abs() >= DIMENSION_STRONG;
        let words = match (lang, d > 0.0, strong) {
            (Lang::It, true, false) => format!("{} alta", g.label_it.to_lowercase()),
            (Lang::It, true, true) => format!("{} molto alta", g.label_it.to_lowercase()),
            (Lang::It, false, false) => format!("{} bassa", g.label_it.to_lowercase()),
            (Lang::It, false, true) => format!("{} molto bassa", g.label_it.to_lowercase()),
            (Lang::En, true, false) => format!("high {}", g.label_en.to_lowercase()),
            (Lang::En, true, true) => format!("very high {}", g.label_en.to_lowercase()),
            (Lang::En, false, false) => format!("low {}", g.label_en.to_lowercase()),
            (Lang::En, false, true) => format!("very low {}", g.label_en.to_lowercase()),
        };
        named.push((d.abs(), words));
    }
    named.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(if named.is_empty() {
        lang.t(
            "nella media su tutte le dimensioni",
            "average on every dimension",
        )
        .to_string()
    } else {
        named
            .into_iter()
            .map(|n| n.1)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// One person of the intake: unit key, 0 the previous quarter or 1 this one, and the row.
struct Person {
    index: usize,
    unit: u64,
    period: usize,
    table: usize,
    row: usize,
}

/// The section's counts in the draft, and the figures computed beside them.
pub(crate) struct ProfileCounts {
    quarters: [Quarter; 2],
    /// GOL path → final this quarter, final the quarter before.
    gol: Vec<(u8, [usize; 2])>,
    /// The assessed of this quarter with a ±3 adjustment, with a path override.
    adjustments: [usize; 2],
    /// The assessed of this quarter.
    assessed: usize,
    /// Latent class: label, persons the quarter before, this quarter.
    classes: Vec<(String, [usize; 2])>,
    class_totals: [usize; 2],
    /// Score: label, persons with it (count), and mean, Q1, median, Q3 of this quarter.
    scores: Vec<(String, usize, [f64; 4])>,
    /// How the profiles were fitted (k, BIC, persons), for the text.
    lca_note: Option<String>,
}

pub(crate) fn quarter_of_month(m: &str) -> Option<Quarter> {
    let d = chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok()?;
    Some(Quarter::of(d))
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    // Type 7, R's default, as the engine's linalg.
    occupa_engine::linalg::quantile_sorted(sorted, p)
}

/// Adds the section's counts to the draft. `tables`: each tenant's analysis table of the
/// persons taken in charge in the quarter before `q` and in `q`.
pub(crate) fn profile_counts(
    tables: &[(String, AnalysisTable)],
    q: Quarter,
    draft: &mut Draft,
    lang: Lang,
) -> Option<ProfileCounts> {
    let quarters = [q.prev(), q];
    let mut people: Vec<Person> = Vec::new();
    for (ti, (_, built)) in tables.iter().enumerate() {
        let Ok((levels, codes)) = built.table.categories("intake_month") else {
            continue;
        };
        for (row, c) in codes.iter().enumerate() {
            let Some(iq) = c.and_then(|c| quarter_of_month(&levels[c as usize])) else {
                continue;
            };
            if let Some(period) = quarters.iter().position(|x| *x == iq) {
                people.push(Person {
                    index: people.len(),
                    unit: built.unit_keys[row],
                    period,
                    table: ti,
                    row,
                });
            }
        }
    }
    if people.iter().all(|p| p.period == 0) {
        return None;
    }
    let num = |p: &Person, col: &str| -> f64 {
        tables[p.table]
            .1
            .table
            .numeric(col)
            .map_or(f64::NAN, |v| v[p.row])
    };
    // A pooled count is registered with each authority's part (`pooled_count`).
    let set = |f: &dyn Fn(&Person) -> bool| -> Vec<(String, Vec<u64>)> {
        tables
            .iter()
            .enumerate()
            .map(|(ti, (tenant, _))| {
                let mut v: Vec<u64> = people
                    .iter()
                    .filter(|p| p.table == ti && f(p))
                    .map(|p| p.unit)
                    .collect();
                v.sort_unstable();
                v.dedup();
                (tenant.clone(), v)
            })
            .collect()
    };

    // GOL paths: by the rule and final, this quarter; final the quarter before.
    let mut gol = Vec::new();
    let mut columns: [Vec<usize>; 2] = Default::default();
    for path in 1..=4u8 {
        let p = f64::from(path);
        // Final paths only: the rule's paths beside them, with the overrides' count, would
        // bound how many moved between each pair of paths.
        let c = [1, 0].map(|period| {
            pooled_count(
                draft,
                &format!("intake_gol/{}/final/{path}", quarters[period]),
                set(&|x| x.period == period && num(x, "gol_path") == p),
                false,
            )
        });
        for k in 0..2 {
            columns[k].push(c[k]);
        }
        gol.push((path, c));
    }
    let assessed_now = set(&|x| x.period == 1 && !num(x, "gol_path").is_nan());
    let assessed_before = set(&|x| x.period == 0 && !num(x, "gol_path").is_nan());
    let now_total = pooled_count(
        draft,
        &format!("intake_gol/{}/assessed", quarters[1]),
        assessed_now,
        true,
    );
    let totals = [
        now_total,
        pooled_count(
            draft,
            &format!("intake_gol/{}/assessed", quarters[0]),
            assessed_before,
            true,
        ),
    ];
    for k in 0..2 {
        let mut line = columns[k].clone();
        line.push(totals[k]);
        draft.line(line);
    }

    // The operators' ±3 adjustments and path overrides, by authority: shares of the
    // assessed with the counts under them. (Per operator they are rare and nearly every
    // cell falls below the threshold in a quarter; the override audit takes them over a
    // year.)
    let assessed = |x: &Person| x.period == 1 && !num(x, "gol_path").is_nan();
    let adjustments = [
        (
            "adjusted",
            set(&|x| assessed(x) && num(x, "gol_adjusted") == 1.0),
        ),
        (
            "overridden",
            set(&|x| assessed(x) && num(x, "gol_override") == 1.0),
        ),
    ]
    .map(|(name, parts)| {
        pooled_count(
            draft,
            &format!("intake_gol/{}/{name}", quarters[1]),
            parts,
            false,
        )
    });

    // Occupability profiles: latent classes of the ASSO answers of both quarters.
    let answer_cols: Vec<String> = tables
        .first()
        .map(|(_, b)| {
            b.table
                .headers()
                .iter()
                .filter(|h| h.starts_with("asso_q"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut classes = Vec::new();
    let mut class_totals = [0usize; 2];
    let mut lca_note = None;
    let mut lca_failed: Option<String> = None;
    // Each person's profile (index into `people`).
    let mut class_of: Vec<Option<usize>> = vec![None; people.len()];
    let with_asso: Vec<usize> = (0..people.len())
        .filter(|&i| answer_cols.iter().any(|c| !num(&people[i], c).is_nan()))
        .collect();
    if !answer_cols.is_empty() && with_asso.len() >= 50 {
        let columns: Vec<(String, Values)> = answer_cols
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    Values::Numbers(with_asso.iter().map(|&i| num(&people[i], c)).collect()),
                )
            })
            .collect();
        // From 2 to 5 classes; with few persons the larger numbers are not identified
        // (more parameters than answer patterns), so the range narrows until one is.
        let table = Table::from_values("intake", columns).ok();
        let mut fitted = None;
        let mut range_top = 5;
        for top in (2..=5).rev() {
            range_top = top;
            let Some(t) = &table else { break };
            let mut spec = profile_spec(answer_cols.clone());
            spec.k_range = Some(format!("2..{top}"));
            match spec.check().and_then(|s| cluster_table(t, &s)) {
                Ok(r) => {
                    fitted = Some(r);
                    lca_failed = None;
                    break;
                }
                Err(e) => lca_failed = Some(e.to_string()),
            }
        }
        if let Some(report) = fitted {
            class_of = vec![None; people.len()];
            for (i, l) in with_asso.iter().zip(&report.labels) {
                class_of[*i] = *l;
            }
            let mut parts: [Vec<usize>; 2] = Default::default();
            for (k, prof) in report.profiles.iter().enumerate() {
                let c = [0, 1].map(|period| {
                    pooled_count(
                        draft,
                        &format!("intake_profiles/{}/class {}", quarters[period], k + 1),
                        set(&|x| x.period == period && class_of[x.index] == Some(k)),
                        false,
                    )
                });
                parts[0].push(c[0]);
                parts[1].push(c[1]);
                let label = dimension_label(&prof.z, &answer_cols, lang).unwrap_or_else(|| {
                    if lang == Lang::It {
                        prof.label.clone()
                    } else {
                        prof.label_en.clone()
                    }
                });
                classes.push((
                    format!("{} {}: {label}", lang.t("Profilo", "Profile"), k + 1),
                    c,
                ));
            }
            for period in 0..2 {
                class_totals[period] = pooled_count(
                    draft,
                    &format!("intake_profiles/{}/total", quarters[period]),
                    set(&|x| x.period == period && class_of[x.index].is_some()),
                    true,
                );
                let mut line = parts[period].clone();
                line.push(class_totals[period]);
                draft.line(line);
            }
            lca_note = Some(if lang == Lang::It {
                format!(
                    "Profili di occupabilità: classi latenti delle {} risposte ASSO delle persone prese in carico nei due trimestri, numero di classi ({}) scelto per BIC tra 2 e {range_top} (seme {}).",
                    answer_cols.len(),
                    report.k,
                    report.seed
                )
            } else {
                format!(
                    "Occupability profiles: latent classes of the {} ASSO answers of the persons taken in charge in the two quarters, the number of classes ({}) chosen by BIC from 2 to {range_top} (seed {}).",
                    answer_cols.len(),
                    report.k,
                    report.seed
                )
            });
        }
    }

    if lca_note.is_none() {
        // Said in the report, in its language; the engine's reason goes to the log.
        if let Some(e) = &lca_failed {
            eprintln!("the occupability profiles of the report were not fitted: {e}");
        }
        lca_note = Some(if lang == Lang::It {
            format!(
                "Profili di occupabilità non stimati: {} persone con risposte ASSO nei due trimestri{}.",
                with_asso.len(),
                if lca_failed.is_some() {
                    ", la stima delle classi latenti non è riuscita"
                } else {
                    ", ne servono almeno 50"
                }
            )
        } else {
            format!(
                "Occupability profiles not fitted: {} persons with ASSO answers in the two quarters{}.",
                with_asso.len(),
                if lca_failed.is_some() {
                    ", the latent class fit failed"
                } else {
                    ", at least 50 are needed"
                }
            )
        });
    }

    // Score distributions this quarter.
    let inst = Instruments::builtin().ok();
    let mut score_cols: Vec<(String, String)> = Vec::new();
    if let Some(inst) = &inst {
        for (letter, s) in ["a", "b", "c", "d"].iter().zip(&inst.gol.sections) {
            let thr = s.threshold.map_or(String::new(), |t| format!(" (≥ {t})"));
            score_cols.push((
                format!("gol_{letter}"),
                format!(
                    "GOL {}: {}{thr}",
                    letter.to_uppercase(),
                    lang.t(&s.label_it, &s.label_en)
                ),
            ));
        }
        score_cols.push((
            "gol_cd".into(),
            lang.t("GOL C + D (≥ 12)", "GOL C + D (≥ 12)").into(),
        ));
        for (prefix, qn) in [("asso", &inst.asso), ("isa", &inst.isa)] {
            for g in &qn.groups {
                score_cols.push((
                    format!("{prefix}_{}", g.id),
                    format!(
                        "{}: {}",
                        prefix.to_uppercase(),
                        lang.t(&g.label_it, &g.label_en)
                    ),
                ));
            }
        }
    }
    let mut scores = Vec::new();
    for (col, label) in score_cols {
        let now: Vec<usize> = (0..people.len())
            .filter(|&i| people[i].period == 1 && !num(&people[i], &col).is_nan())
            .collect();
        if now.is_empty() {
            continue;
        }
        let mut v: Vec<f64> = now.iter().map(|&i| num(&people[i], &col)).collect();
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let stats = [
            mean,
            quantile(&v, 0.25),
            quantile(&v, 0.5),
            quantile(&v, 0.75),
        ];
        let c = pooled_count(
            draft,
            &format!("intake_scores/{}/{col}", quarters[1]),
            set(&|x| x.period == 1 && !num(x, &col).is_nan()),
            false,
        );
        scores.push((label, c, stats));
    }
    Some(ProfileCounts {
        quarters,
        gol,
        adjustments,
        assessed: now_total,
        classes,
        class_totals,
        scores,
        lca_note,
    })
}

fn pct(num: Option<u64>, den: Option<u64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0 => Some(100.0 * n as f64 / d as f64),
        _ => None,
    }
}

/// The section, from the protected counts.
pub(crate) fn profiles_section(
    c: &ProfileCounts,
    gol_labels: &[String],
    draft: &Draft,
    p: &Protection,
    lang: Lang,
) -> Section {
    let t = |it: &str, en: &str| lang.t(it, en).to_string();
    let shown = |i: usize| p.shown(draft, i);
    let f = |v: Option<u64>| v.map(|n| n as f64);
    let [before, now] = c.quarters;
    let mut figures = Vec::new();
    let mut charts = Vec::new();

    // GOL paths.
    let gol_rows: Vec<(String, Vec<Option<f64>>)> = c
        .gol
        .iter()
        .map(|(path, idx)| {
            let [fin, prev] = idx.map(shown);
            let label = gol_labels
                .get(*path as usize - 1)
                .cloned()
                .unwrap_or_else(|| format!("GOL {path}"));
            (
                label,
                vec![f(prev), f(fin), pct(fin, prev).map(|x| x - 100.0)],
            )
        })
        .collect();
    charts.push(crate::render::bars_svg(
        &t(
            "Percorsi GOL assegnati all'ingresso",
            "GOL paths of the intake",
        ),
        &gol_rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        &[
            (
                before.to_string(),
                gol_rows.iter().map(|r| r.1[0]).collect(),
            ),
            (now.to_string(), gol_rows.iter().map(|r| r.1[1]).collect()),
        ],
        lang,
    ));
    figures.push(FigureTable {
        id: "intake_gol_paths".into(),
        title: t(
            "Persone prese in carico per percorso GOL finale",
            "Persons taken in charge by final GOL path",
        ),
        keys: ["path", "previous", "current", "change_pct"]
            .map(String::from)
            .to_vec(),
        headers: vec![
            t("Percorso", "Path"),
            before.to_string(),
            now.to_string(),
            t("Var. %", "% change"),
        ],
        decimals: vec![0, 0, 1],
        notes: Vec::new(),
        rows: gol_rows,
    });

    // Operators' adjustments and overrides.
    let assessed = shown(c.assessed);
    figures.push(FigureTable {
        id: "gol_adjustments".into(),
        title: t(
            "Assessment GOL del trimestre con aggiustamento dell'operatore (±3 punti) o cambio di percorso",
            "GOL assessments of the quarter with an operator's adjustment (±3 points) or a path override",
        ),
        keys: ["change", "persons", "share_of_assessed_pct"].map(String::from).to_vec(),
        headers: vec![t("Modifica", "Change"), t("Persone", "Persons"), t("% dei valutati", "% of assessed")],
        decimals: vec![0, 1],
        notes: Vec::new(),
        rows: [
            (t("Aggiustamento ±3 punti", "±3-point adjustment"), c.adjustments[0]),
            (t("Cambio di percorso motivato", "Justified path override"), c.adjustments[1]),
        ]
        .into_iter()
        .map(|(label, i)| {
            let n = shown(i);
            (label, vec![f(n), pct(n, assessed)])
        })
        .collect(),
    });

    // Occupability profiles.
    if !c.classes.is_empty() {
        let totals = c.class_totals.map(shown);
        let rows: Vec<(String, Vec<Option<f64>>)> = c
            .classes
            .iter()
            .map(|(label, idx)| {
                let [b, n] = idx.map(shown);
                let (sb, sn) = (pct(b, totals[0]), pct(n, totals[1]));
                (
                    label.clone(),
                    vec![f(b), sb, f(n), sn, sn.zip(sb).map(|(x, y)| x - y)],
                )
            })
            .collect();
        charts.push(crate::render::bars_svg(
            &t(
                "Profili di occupabilità: quote dell'ingresso",
                "Occupability profiles: shares of the intake",
            ),
            &rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            &[
                (before.to_string(), rows.iter().map(|r| r.1[1]).collect()),
                (now.to_string(), rows.iter().map(|r| r.1[3]).collect()),
            ],
            lang,
        ));
        figures.push(FigureTable {
            id: "occupability_profiles".into(),
            title: t(
                "Profili di occupabilità (classi latenti ASSO): persone e quote",
                "Occupability profiles (ASSO latent classes): persons and shares",
            ),
            keys: [
                "profile",
                "persons_previous",
                "share_previous_pct",
                "persons",
                "share_pct",
                "change_points",
            ]
            .map(String::from)
            .to_vec(),
            headers: vec![
                t("Profilo", "Profile"),
                before.to_string(),
                "%".into(),
                now.to_string(),
                "%".into(),
                t("Var. punti %", "Change (points)"),
            ],
            decimals: vec![0, 1, 0, 1, 1],
            notes: Vec::new(),
            rows,
        });
    }

    // Score distributions.
    if !c.scores.is_empty() {
        figures.push(FigureTable {
            id: "intake_scores".into(),
            title: t(
                "Punteggi ASSO, ISA e GOL dell'ingresso del trimestre: media e quartili",
                "ASSO, ISA and GOL scores of the quarter's intake: mean and quartiles",
            ),
            keys: ["score", "persons", "mean", "q1", "median", "q3"]
                .map(String::from)
                .to_vec(),
            headers: vec![
                t("Punteggio", "Score"),
                t("Persone", "Persons"),
                t("Media", "Mean"),
                t("1° quartile", "1st quartile"),
                t("Mediana", "Median"),
                t("3° quartile", "3rd quartile"),
            ],
            decimals: vec![0, 1, 1, 1, 1],
            notes: Vec::new(),
            rows: c
                .scores
                .iter()
                .map(|(label, i, s)| {
                    let n = shown(*i);
                    let mut v = vec![f(n)];
                    v.extend(s.iter().map(|x| n.map(|_| *x)));
                    (label.clone(), v)
                })
                .collect(),
        });
    }
    let mut text = vec![t(
        "Persone prese in carico nel trimestre (e in quello precedente, per il confronto) con il loro primo assessment: il percorso GOL finale, quante valutazioni hanno un aggiustamento dell'operatore (fino a ±3 punti per sezione) o un cambio di percorso motivato rispetto a quello assegnato dalla regola, la distribuzione dei punteggi e i profili di occupabilità.",
        "Persons taken in charge in the quarter (and in the one before, for comparison) with their first assessment: the final GOL path, how many assessments carry an operator's adjustment (up to ±3 points per section) or a justified override of the path the rule assigned, the distribution of the scores and the occupability profiles.",
    )];
    if let Some(note) = &c.lca_note {
        text.push(note.clone());
    }
    Section {
        heading: t(
            "Profili delle persone prese in carico",
            "Profiles of the intake",
        ),
        text,
        tables: Vec::new(),
        figures,
        charts,
        chart_data: None,
    }
}
