//! The override audit: what operators do with the GOL assessment. For each operator and
//! section (A, B, C, C + D): how many persons' raw score lay within the adjustment
//! plafond of the threshold (the persons a ±3 adjustment can move across it), how many of
//! those the operator adjusted, how close to the threshold the adjusted scores were, how
//! many adjustments crossed it, and whether the operator's rate stands out from the other
//! operators' on the same section (exact binomial test, Holm's correction over every
//! operator and section). Path overrides per operator likewise. Then, per section, the
//! later outcome of the persons moved against similar persons near the threshold who
//! were not (inverse-probability weighting on the raw score and the person's traits), and,
//! given the employability index, the risk class against the final path.

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{Binomial, DiscreteCDF};

use crate::causal::runner::{Design, EvaluationOutput, EvaluationSpec};
use crate::columns::Table;
use crate::instruments::gol::{GolInstrument, Section};
use crate::{Error, Result};

/// One operator on one section.
#[derive(Debug, Clone, Serialize)]
pub struct SectionAudit {
    /// The operator (an identifier, never a name).
    pub operator: String,
    /// A, B, C or CD.
    pub section: String,
    /// Persons this operator assessed.
    pub assessed: usize,
    /// Of them, raw score within the plafond of the threshold.
    pub near: usize,
    /// Adjustments of this section (near the threshold or not).
    pub adjusted: usize,
    /// Adjustments of persons near the threshold.
    pub adjusted_near: usize,
    /// Adjustments that moved the score across the threshold.
    pub crossed: usize,
    /// Mean distance of the raw score from the threshold among the persons adjusted.
    pub mean_distance: Option<f64>,
    /// adjusted_near / near.
    pub rate: f64,
    /// The other operators' rate on the same section.
    pub others_rate: f64,
    /// P(at least this many | the others' rate), exact binomial.
    pub p_value: f64,
    /// Whether the rate stands out after Holm's correction (5 %).
    pub flagged: bool,
}

/// One operator's path overrides.
#[derive(Debug, Clone, Serialize)]
pub struct OverrideRow {
    /// The operator.
    pub operator: String,
    /// Persons assessed.
    pub assessed: usize,
    /// Final path different from the rules'.
    pub overridden: usize,
    /// overridden / assessed.
    pub rate: f64,
    /// The other operators' rate.
    pub others_rate: f64,
    /// Exact binomial upper tail.
    pub p_value: f64,
    /// After Holm's correction.
    pub flagged: bool,
}

/// The later outcome of the persons moved on one section.
#[derive(Debug, Clone, Serialize)]
pub struct MovedOutcome {
    /// The section.
    pub section: String,
    /// Persons near the threshold, outcome known, moved by an adjustment.
    pub moved: usize,
    /// Persons near the threshold, outcome known, not moved.
    pub not_moved: usize,
    /// Share with the outcome among the moved.
    pub moved_rate: f64,
    /// Among the similar persons not moved.
    pub not_moved_rate: f64,
    /// The effect of being moved on the moved (IPW ATT), with its interval; `None` with
    /// the reason when it cannot be estimated.
    pub effect: Option<(f64, f64, [f64; 2])>,
    /// Why there is no effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct OverrideAudit {
    /// The plafond of an adjustment.
    pub plafond: i64,
    /// Thresholds: A, B, C, CD.
    pub thresholds: BTreeMap<String, i32>,
    /// Per operator and section.
    pub sections: Vec<SectionAudit>,
    /// Per operator.
    pub overrides: Vec<OverrideRow>,
    /// Per section.
    pub outcomes: Vec<MovedOutcome>,
    /// Risk class × final path, when classes were given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub class_by_path: Vec<(u8, u8, usize)>,
    /// What was left out.
    pub notes: Vec<String>,
}

/// Holm's step-down correction: which of `p` are rejected at `alpha`.
fn holm(p: &[f64], alpha: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = p.len();
    let mut out = vec![false; m];
    for (rank, &i) in order.iter().enumerate() {
        if p[i] <= alpha / (m - rank) as f64 {
            out[i] = true;
        } else {
            break;
        }
    }
    out
}

/// P(X ≥ k) for X ~ Binomial(n, p).
fn upper_tail(k: usize, n: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    match Binomial::new(p.clamp(0.0, 1.0), n as u64) {
        Ok(b) => (1.0 - b.cdf(k as u64 - 1)).max(0.0),
        Err(_) => f64::NAN,
    }
}

const SECTIONS: [(&str, Section); 4] = [
    ("A", Section::A),
    ("B", Section::B),
    ("C", Section::C),
    ("CD", Section::D),
];

/// Audits the GOL assessments of an analysis table (one row per person: `gol_a`, `gol_b`,
/// `gol_c`, `gol_cd`, `gol_adjust_target`, `gol_adjust_points`, `gol_path`,
/// `gol_path_system`, `gol_operator`). `outcome` names the later outcome compared for the
/// persons moved; `covariates` what makes persons similar (beside the raw score);
/// `classes`, if given, each row's risk class of the employability index.
pub fn audit(
    table: &Table,
    gol: &GolInstrument,
    outcome: &str,
    covariates: &[String],
    classes: Option<&[u8]>,
) -> Result<OverrideAudit> {
    let n = table.len();
    let (a, b, c, cd) = (
        table.numeric("gol_a")?,
        table.numeric("gol_b")?,
        table.numeric("gol_c")?,
        table.numeric("gol_cd")?,
    );
    let points = table.numeric("gol_adjust_points")?;
    let target_col = table.categories("gol_adjust_target")?;
    let target: Vec<Option<&str>> = target_col
        .1
        .iter()
        .map(|k| k.map(|k| target_col.0[k as usize].as_str()))
        .collect();
    let (path, system) = (
        table.numeric("gol_path")?,
        table.numeric("gol_path_system")?,
    );
    let (op_levels, op_codes) = table.categories("gol_operator")?;
    let plafond = gol.max_adjustment();
    let mut thresholds = BTreeMap::new();
    for (name, s) in SECTIONS {
        thresholds.insert(name.to_string(), gol.threshold(s));
    }
    // Raw and adjusted score of each section, per row.
    let score = |k: usize, r: usize| -> (f64, f64) {
        let p = points[r];
        let t = target[r];
        match k {
            0 => (a[r], a[r] + if t == Some("A") { p } else { 0.0 }),
            1 => (b[r], b[r] + if t == Some("B") { p } else { 0.0 }),
            2 => (c[r], c[r] + if t == Some("C") { p } else { 0.0 }),
            _ => {
                let moved = if matches!(t, Some("C") | Some("CD")) {
                    p
                } else {
                    0.0
                };
                (cd[r] - moved, cd[r])
            }
        }
    };
    let moved_on = |k: usize, r: usize| -> bool {
        let name = SECTIONS[k].0;
        target[r] == Some(name) && points[r] != 0.0
    };
    let assessed: Vec<bool> = (0..n)
        .map(|r| op_codes[r].is_some() && !path[r].is_nan() && !a[r].is_nan())
        .collect();
    let skipped = n - assessed.iter().filter(|&&x| x).count();
    let mut notes = Vec::new();
    if skipped > 0 {
        notes.push(format!(
            "{skipped} persons without a GOL assessment or operator"
        ));
    }
    // Per operator × section: [assessed, near, adjusted, adjusted_near, crossed], Σ distance.
    let mut cells: BTreeMap<(usize, usize), ([usize; 5], f64)> = BTreeMap::new();
    for r in (0..n).filter(|&r| assessed[r]) {
        let op = op_codes[r].unwrap_or(0) as usize;
        for (k, (_, section)) in SECTIONS.iter().enumerate() {
            let th = f64::from(gol.threshold(*section));
            let (raw, adj) = score(k, r);
            let e = cells.entry((op, k)).or_default();
            if raw.is_nan() {
                continue;
            }
            e.0[0] += 1;
            let near = (raw - th).abs() <= plafond as f64;
            e.0[1] += usize::from(near);
            if moved_on(k, r) {
                e.0[2] += 1;
                e.0[3] += usize::from(near);
                e.0[4] += usize::from((raw >= th) != (adj >= th));
                e.1 += (raw - th).abs();
            }
        }
    }
    let mut totals = [[0usize; 2]; 4];
    for ((_, k), (v, _)) in &cells {
        totals[*k][0] += v[1];
        totals[*k][1] += v[3];
    }
    let mut sections = Vec::new();
    for ((op, k), (v, dist)) in &cells {
        let (near_o, adj_o) = (totals[*k][0] - v[1], totals[*k][1] - v[3]);
        let others = if near_o == 0 {
            0.0
        } else {
            adj_o as f64 / near_o as f64
        };
        sections.push(SectionAudit {
            operator: op_levels[*op].clone(),
            section: SECTIONS[*k].0.to_string(),
            assessed: v[0],
            near: v[1],
            adjusted: v[2],
            adjusted_near: v[3],
            crossed: v[4],
            mean_distance: (v[2] > 0).then(|| dist / v[2] as f64),
            rate: if v[1] == 0 {
                0.0
            } else {
                v[3] as f64 / v[1] as f64
            },
            others_rate: others,
            p_value: upper_tail(v[3], v[1], others),
            flagged: false,
        });
    }
    let flags = holm(
        &sections.iter().map(|s| s.p_value).collect::<Vec<_>>(),
        0.05,
    );
    for (s, f) in sections.iter_mut().zip(flags) {
        s.flagged = f;
    }
    // Path overrides.
    let mut ov: BTreeMap<usize, [usize; 2]> = BTreeMap::new();
    for r in (0..n).filter(|&r| assessed[r] && !system[r].is_nan()) {
        let e = ov.entry(op_codes[r].unwrap_or(0) as usize).or_default();
        e[0] += 1;
        e[1] += usize::from(path[r] != system[r]);
    }
    let (all_n, all_o) = ov
        .values()
        .fold((0, 0), |acc, v| (acc.0 + v[0], acc.1 + v[1]));
    let mut overrides: Vec<OverrideRow> = ov
        .iter()
        .map(|(op, v)| {
            let others = if all_n == v[0] {
                0.0
            } else {
                (all_o - v[1]) as f64 / (all_n - v[0]) as f64
            };
            OverrideRow {
                operator: op_levels[*op].clone(),
                assessed: v[0],
                overridden: v[1],
                rate: v[1] as f64 / v[0] as f64,
                others_rate: others,
                p_value: upper_tail(v[1], v[0], others),
                flagged: false,
            }
        })
        .collect();
    let flags = holm(
        &overrides.iter().map(|o| o.p_value).collect::<Vec<_>>(),
        0.05,
    );
    for (o, f) in overrides.iter_mut().zip(flags) {
        o.flagged = f;
    }
    // Outcomes of the persons moved, against persons near the threshold not moved.
    let y = table.numeric(outcome)?;
    let mut outcomes = Vec::new();
    for (k, (name, section)) in SECTIONS.iter().enumerate() {
        let th = f64::from(gol.threshold(*section));
        let keep: Vec<bool> = (0..n)
            .map(|r| {
                let (raw, _) = score(k, r);
                assessed[r] && !y[r].is_nan() && !raw.is_nan() && (raw - th).abs() <= plafond as f64
            })
            .collect();
        let rows: Vec<usize> = (0..n).filter(|&r| keep[r]).collect();
        let moved: Vec<f64> = (0..n)
            .map(|r| f64::from(u8::from(moved_on(k, r))))
            .collect();
        let raw_score: Vec<f64> = (0..n).map(|r| score(k, r).0).collect();
        let m: Vec<usize> = rows.iter().copied().filter(|&r| moved[r] == 1.0).collect();
        let u: Vec<usize> = rows.iter().copied().filter(|&r| moved[r] == 0.0).collect();
        let mean = |s: &[usize]| {
            if s.is_empty() {
                f64::NAN
            } else {
                s.iter().map(|&r| y[r]).sum::<f64>() / s.len() as f64
            }
        };
        let mut row = MovedOutcome {
            section: name.to_string(),
            moved: m.len(),
            not_moved: u.len(),
            moved_rate: mean(&m),
            not_moved_rate: mean(&u),
            effect: None,
            note: None,
        };
        if m.len() < 20 || u.len() < 20 {
            row.note = Some("fewer than 20 persons moved or not moved near the threshold".into());
            outcomes.push(row);
            continue;
        }
        let sub = table
            .filter(&keep)
            .with_numeric_column("moved_on_section", rows.iter().map(|&r| moved[r]).collect())?
            .with_numeric_column(
                "raw_section_score",
                rows.iter().map(|&r| raw_score[r]).collect(),
            )?;
        let mut spec = EvaluationSpec::new(Design::Ipw, Some("moved_on_section"), outcome);
        spec.estimand = Some("att".into());
        spec.covariates = std::iter::once("raw_section_score".to_string())
            .chain(covariates.iter().cloned())
            .collect();
        match spec.check().and_then(|v| v.run(&sub)) {
            Ok(EvaluationOutput::Adjusted(e)) => {
                row.effect = Some((e.effect.estimate, e.effect.se, e.effect.ci95));
            }
            Ok(_) => {}
            Err(e) => row.note = Some(e.to_string()),
        }
        outcomes.push(row);
    }
    let mut class_by_path = Vec::new();
    if let Some(cls) = classes {
        if cls.len() != n {
            return Err(Error::Param {
                name: "classes",
                reason: format!("{} classes for {n} persons", cls.len()),
            });
        }
        let mut t: BTreeMap<(u8, u8), usize> = BTreeMap::new();
        for r in (0..n).filter(|&r| assessed[r] && cls[r] > 0) {
            *t.entry((cls[r], path[r] as u8)).or_default() += 1;
        }
        class_by_path = t.into_iter().map(|((c, p), k)| (c, p, k)).collect();
    }
    Ok(OverrideAudit {
        plafond,
        thresholds,
        sections,
        overrides,
        outcomes,
        class_by_path,
        notes,
    })
}
