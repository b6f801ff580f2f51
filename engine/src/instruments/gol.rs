//! The GOL assessment: section scores, the operator's ±3 adjustment, the system path and
//! the override rule (seed 004). Thresholds come from the instrument file, which carries
//! its version and effective date, never from `if` statements here.

use serde::Deserialize;

use super::bad;
use crate::Result;

/// A questionnaire section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Work condition.
    A,
    /// Skills.
    B,
    /// Personal condition.
    C,
    /// Deep dive on the personal condition, read together with C.
    D,
}

impl Section {
    /// All sections in order.
    pub const ALL: [Section; 4] = [Section::A, Section::B, Section::C, Section::D];
    fn from_id(id: &str) -> Option<Self> {
        match id {
            "A" => Some(Section::A),
            "B" => Some(Section::B),
            "C" => Some(Section::C),
            "D" => Some(Section::D),
            _ => None,
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What the operator's professional evaluation may move: one section, or C + D together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustTarget {
    /// Section A.
    A,
    /// Section B.
    B,
    /// Section C.
    C,
    /// The deep-dive composite C + D.
    CD,
}

impl AdjustTarget {
    /// Parses `A`, `B`, `C` or `CD` (also `C+D`), case-insensitive.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "A" => Some(AdjustTarget::A),
            "B" => Some(AdjustTarget::B),
            "C" => Some(AdjustTarget::C),
            "CD" | "C+D" => Some(AdjustTarget::CD),
            _ => None,
        }
    }
    /// The code written to the store.
    pub fn code(self) -> &'static str {
        match self {
            AdjustTarget::A => "A",
            AdjustTarget::B => "B",
            AdjustTarget::C => "C",
            AdjustTarget::CD => "CD",
        }
    }
}

/// The operator's adjustment: a target and a number of points that cannot exceed the
/// instrument's plafond (±3). Build it with [`GolInstrument::adjustment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment {
    target: AdjustTarget,
    points: i8,
}

impl Adjustment {
    /// What was adjusted.
    pub fn target(&self) -> AdjustTarget {
        self.target
    }
    /// By how many points (never beyond the plafond).
    pub fn points(&self) -> i8 {
        self.points
    }
}

/// A GOL path, 1..=4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(u8);

impl Path {
    /// Checks the range.
    pub fn new(n: i64) -> Result<Self, GolError> {
        if (1..=4).contains(&n) {
            Ok(Path(n as u8))
        } else {
            Err(GolError::PathOutOfRange(n))
        }
    }
    /// 1..=4.
    pub fn number(self) -> u8 {
        self.0
    }
}

/// The three categories for whom the operator may choose another path (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideReason {
    /// Persons with a disability, L. 68/1999 art. 1 c. 1.
    DisabilityL68,
    /// Persons in the care of the professional social services or social-health services.
    SocialServices,
    /// Persons serving a sentence outside prison or leaving prison.
    PenalSystem,
}

impl OverrideReason {
    /// Parses the codes used in exports (Italian or English).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabilita_l68" | "disabilità_l68" | "disabilita" | "l68" | "disability" => {
                Some(Self::DisabilityL68)
            }
            "servizi_sociali" | "social_services" => Some(Self::SocialServices),
            "esecuzione_penale" | "penale" | "penal" | "penal_system" => Some(Self::PenalSystem),
            _ => None,
        }
    }
    /// The code written to the store.
    pub fn code(self) -> &'static str {
        match self {
            Self::DisabilityL68 => "disabilita_l68",
            Self::SocialServices => "servizi_sociali",
            Self::PenalSystem => "esecuzione_penale",
        }
    }
}

/// Why an assessment cannot be scored or a path cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GolError {
    /// An item answer off the scale.
    #[error("section {section:?} item {item}: answer {value} is not one of {allowed:?}")]
    AnswerOffScale {
        /// Section.
        section: Section,
        /// 1-based item within the section.
        item: usize,
        /// The answer found.
        value: i64,
        /// The allowed answers.
        allowed: Vec<i64>,
    },
    /// A section of A–C has unanswered items.
    #[error("section {0:?} is incomplete")]
    IncompleteSection(Section),
    /// D is needed when C reaches its threshold.
    #[error("section D (deep dive) is required when C reaches {threshold} (C = {c})")]
    DeepDiveMissing {
        /// C after adjustment.
        c: i32,
        /// C's threshold.
        threshold: i32,
    },
    /// The adjustment is beyond the plafond.
    #[error("adjustment of {points} points exceeds the plafond of ±{max}")]
    AdjustmentTooLarge {
        /// Points asked.
        points: i64,
        /// Plafond.
        max: i64,
    },
    /// The adjustment names something that cannot be adjusted.
    #[error("adjustment target {0:?} is not one of A, B, C, CD")]
    BadAdjustTarget(String),
    /// A path outside 1..=4.
    #[error("path {0} is not between 1 and 4")]
    PathOutOfRange(i64),
    /// The operator chose another path without an admissible reason.
    #[error(
        "path {chosen} differs from the system path {system} without an admissible override reason (disabilita_l68, servizi_sociali, esecuzione_penale)"
    )]
    OverrideNotAllowed {
        /// System path.
        system: u8,
        /// Path chosen.
        chosen: u8,
    },
    /// An unknown override reason.
    #[error(
        "override reason {0:?} is not one of disabilita_l68, servizi_sociali, esecuzione_penale"
    )]
    UnknownOverrideReason(String),
}

/// Raw section scores (sums of item answers). D is `None` when the deep dive was not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GolAnswers {
    scores: [i32; 3],
    d: Option<i32>,
}

impl GolAnswers {
    /// From section totals already computed (as some regional systems export them).
    pub fn from_section_scores(a: i32, b: i32, c: i32, d: Option<i32>) -> Self {
        GolAnswers {
            scores: [a, b, c],
            d,
        }
    }
    /// A section's raw score (D counts 0 when not asked).
    pub fn get(&self, s: Section) -> i32 {
        match s {
            Section::D => self.d.unwrap_or(0),
            s => self.scores[s.index()],
        }
    }
    /// D, if asked.
    pub fn d(&self) -> Option<i32> {
        self.d
    }
}

/// The result of scoring an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GolOutcome {
    /// Raw scores.
    pub scores: GolAnswers,
    /// A, B, C after the adjustment.
    pub adjusted: [i32; 3],
    /// C + D after the adjustment.
    pub adjusted_cd: i32,
    /// Which thresholds are reached: A, B, C, C + D.
    pub flags: [bool; 4],
    /// The path the rules assign.
    pub system_path: Path,
}

#[derive(Debug, Deserialize)]
struct RawSection {
    id: String,
    label_it: String,
    label_en: String,
    threshold: Option<i32>,
    items: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawCombined {
    id: String,
    sections: Vec<String>,
    threshold: i32,
}

#[derive(Debug, Deserialize)]
struct RawAdjustment {
    max_points: i64,
    targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawPaths {
    inclusion: i64,
    none_flagged: i64,
    one_flagged: i64,
    both_flagged: i64,
    labels_it: Vec<String>,
    labels_en: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawOverride {
    reasons: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    name: String,
    version: String,
    effective_from: String,
    allowed: Vec<i64>,
    sections: Vec<RawSection>,
    combined: RawCombined,
    adjustment: RawAdjustment,
    paths: RawPaths,
    #[serde(rename = "override")]
    override_: RawOverride,
}

/// Labels and items of a section.
#[derive(Debug, Clone)]
pub struct SectionDef {
    /// Which section.
    pub section: Section,
    /// Italian label.
    pub label_it: String,
    /// English label.
    pub label_en: String,
    /// Threshold (none for D, which is read through C + D).
    pub threshold: Option<i32>,
    /// Item identifiers, in order; columns are `<section>_<item>` in lower case.
    pub items: Vec<String>,
}

/// A validated GOL instrument.
#[derive(Debug, Clone)]
pub struct GolInstrument {
    /// Name.
    pub name: String,
    /// Version of the scoring rule.
    pub version: String,
    /// Date from which the rule applies.
    pub effective_from: chrono::NaiveDate,
    allowed: Vec<i64>,
    /// Sections A, B, C, D in this order.
    pub sections: Vec<SectionDef>,
    cd_threshold: i32,
    max_adjust: i64,
    paths: [Path; 4],
    /// Path labels, Italian.
    pub labels_it: Vec<String>,
    /// Path labels, English.
    pub labels_en: Vec<String>,
    override_reasons: Vec<OverrideReason>,
}

impl GolInstrument {
    /// Parses and validates a definition.
    pub fn from_toml(text: &str) -> Result<Self> {
        let raw: Raw = toml::from_str(text).map_err(|e| bad("gol", e.to_string()))?;
        if raw.id != "gol" {
            return Err(bad("gol", format!("file declares id {:?}", raw.id)));
        }
        let effective_from = chrono::NaiveDate::parse_from_str(&raw.effective_from, "%Y-%m-%d")
            .map_err(|_| bad("gol", "effective_from must be a date YYYY-MM-DD"))?;
        if raw.allowed.len() < 2
            || raw.allowed.windows(2).any(|w| w[0] >= w[1])
            || raw.allowed[0] < 0
        {
            return Err(bad(
                "gol",
                "allowed answers must be non-negative and strictly increasing",
            ));
        }
        let mut sections = Vec::new();
        for (expected, rs) in Section::ALL.iter().zip(&raw.sections) {
            let s = Section::from_id(&rs.id)
                .filter(|s| s == expected)
                .ok_or_else(|| {
                    bad(
                        "gol",
                        format!("sections must be A, B, C, D in order; found {:?}", rs.id),
                    )
                })?;
            if rs.items.is_empty() {
                return Err(bad("gol", format!("section {} has no items", rs.id)));
            }
            let max = rs.items.len() as i64 * raw.allowed[raw.allowed.len() - 1];
            match (s, rs.threshold) {
                (Section::D, Some(_)) => {
                    return Err(bad(
                        "gol",
                        "section D has no threshold of its own: use [combined]",
                    ));
                }
                (Section::D, None) => {}
                (_, None) => {
                    return Err(bad("gol", format!("section {} needs a threshold", rs.id)));
                }
                (_, Some(t)) if t <= 0 || t as i64 > max => {
                    return Err(bad(
                        "gol",
                        format!("threshold {t} of section {} is outside 1..={max}", rs.id),
                    ));
                }
                _ => {}
            }
            sections.push(SectionDef {
                section: s,
                label_it: rs.label_it.clone(),
                label_en: rs.label_en.clone(),
                threshold: rs.threshold,
                items: rs.items.clone(),
            });
        }
        if sections.len() != 4 || raw.sections.len() != 4 {
            return Err(bad("gol", "exactly four sections A, B, C, D are required"));
        }
        if raw.combined.id != "CD"
            || raw.combined.sections != ["C", "D"]
            || raw.combined.threshold <= 0
        {
            return Err(bad(
                "gol",
                "[combined] must be id = \"CD\" over sections C and D with a positive threshold",
            ));
        }
        if !(0..=10).contains(&raw.adjustment.max_points) {
            return Err(bad("gol", "adjustment.max_points must be within 0..=10"));
        }
        let mut targets: Vec<_> = raw
            .adjustment
            .targets
            .iter()
            .map(|t| AdjustTarget::parse(t))
            .collect();
        if targets.iter().any(Option::is_none) || targets.len() != 4 {
            return Err(bad("gol", "adjustment.targets must be A, B, C, CD"));
        }
        targets.dedup();
        let p = |n: i64| Path::new(n).map_err(|e| bad("gol", e.to_string()));
        let paths = [
            p(raw.paths.none_flagged)?,
            p(raw.paths.one_flagged)?,
            p(raw.paths.both_flagged)?,
            p(raw.paths.inclusion)?,
        ];
        if raw.paths.labels_it.len() != 4 || raw.paths.labels_en.len() != 4 {
            return Err(bad(
                "gol",
                "paths need four Italian and four English labels",
            ));
        }
        let override_reasons = raw
            .override_
            .reasons
            .iter()
            .map(|r| {
                OverrideReason::parse(r)
                    .ok_or_else(|| bad("gol", format!("unknown override reason {r:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GolInstrument {
            name: raw.name,
            version: raw.version,
            effective_from,
            allowed: raw.allowed,
            sections,
            cd_threshold: raw.combined.threshold,
            max_adjust: raw.adjustment.max_points,
            paths,
            labels_it: raw.paths.labels_it,
            labels_en: raw.paths.labels_en,
            override_reasons,
        })
    }

    /// The allowed item answers.
    pub fn allowed(&self) -> &[i64] {
        &self.allowed
    }

    /// Threshold of A, B or C; for D, the C + D threshold.
    pub fn threshold(&self, s: Section) -> i32 {
        match s {
            Section::D => self.cd_threshold,
            s => self.sections[s.index()].threshold.unwrap_or(i32::MAX),
        }
    }

    /// The plafond of the operator's adjustment.
    pub fn max_adjustment(&self) -> i64 {
        self.max_adjust
    }

    /// The largest possible score of a section.
    pub fn max_score(&self, s: Section) -> i32 {
        self.sections[s.index()].items.len() as i32 * *self.allowed.last().unwrap_or(&0) as i32
    }

    /// Item column names of a section, e.g. `a_istruzione`.
    pub fn item_columns(&self, s: Section) -> Vec<String> {
        let prefix = format!("{s:?}").to_ascii_lowercase();
        self.sections[s.index()]
            .items
            .iter()
            .map(|i| format!("{prefix}_{i}"))
            .collect()
    }

    /// Builds a checked adjustment.
    pub fn adjustment(&self, target: &str, points: i64) -> Result<Adjustment, GolError> {
        let t = AdjustTarget::parse(target)
            .ok_or_else(|| GolError::BadAdjustTarget(target.to_string()))?;
        if points.abs() > self.max_adjust {
            return Err(GolError::AdjustmentTooLarge {
                points,
                max: self.max_adjust,
            });
        }
        Ok(Adjustment {
            target: t,
            points: points as i8,
        })
    }

    /// Sums item answers into section scores. `items[s]` are the answers of section s;
    /// A–C must be complete; D may be entirely missing (not asked) but not partly.
    pub fn answers_from_items(&self, items: [&[Option<i64>]; 4]) -> Result<GolAnswers, GolError> {
        let mut totals = [0i32; 4];
        let mut d_asked = true;
        for s in Section::ALL {
            let answers = items[s.index()];
            let answered = answers.iter().filter(|a| a.is_some()).count();
            if s == Section::D && answered == 0 {
                d_asked = false;
                continue;
            }
            if answered != answers.len() || answers.len() != self.sections[s.index()].items.len() {
                return Err(GolError::IncompleteSection(s));
            }
            for (k, a) in answers.iter().enumerate() {
                let v = a.unwrap_or(0);
                if self.allowed.binary_search(&v).is_err() {
                    return Err(GolError::AnswerOffScale {
                        section: s,
                        item: k + 1,
                        value: v,
                        allowed: self.allowed.clone(),
                    });
                }
                totals[s.index()] += v as i32;
            }
        }
        Ok(GolAnswers {
            scores: [totals[0], totals[1], totals[2]],
            d: d_asked.then_some(totals[3]),
        })
    }

    /// Applies the adjustment and the path rule.
    pub fn assess(
        &self,
        answers: &GolAnswers,
        adjustment: Option<Adjustment>,
    ) -> Result<GolOutcome, GolError> {
        let mut adjusted = answers.scores;
        let mut cd_shift = 0;
        if let Some(adj) = adjustment {
            let p = adj.points as i32;
            match adj.target {
                AdjustTarget::A => adjusted[0] += p,
                AdjustTarget::B => adjusted[1] += p,
                AdjustTarget::C => adjusted[2] += p,
                AdjustTarget::CD => cd_shift = p,
            }
        }
        let (ta, tb, tc) = (
            self.threshold(Section::A),
            self.threshold(Section::B),
            self.threshold(Section::C),
        );
        let c_flag = adjusted[2] >= tc;
        if c_flag && answers.d.is_none() {
            return Err(GolError::DeepDiveMissing {
                c: adjusted[2],
                threshold: tc,
            });
        }
        let adjusted_cd = adjusted[2] + answers.d.unwrap_or(0) + cd_shift;
        let cd_flag = c_flag && adjusted_cd >= self.cd_threshold;
        let flags = [adjusted[0] >= ta, adjusted[1] >= tb, c_flag, cd_flag];
        let system_path = if cd_flag {
            self.paths[3]
        } else {
            self.paths[flags[0] as usize + flags[1] as usize]
        };
        Ok(GolOutcome {
            scores: *answers,
            adjusted,
            adjusted_cd,
            flags,
            system_path,
        })
    }

    /// Accepts the operator's final path: equal to the system path, or different only
    /// with one of the admissible override reasons.
    pub fn final_path(
        &self,
        system: Path,
        chosen: Path,
        reason: Option<OverrideReason>,
    ) -> Result<Path, GolError> {
        if chosen == system {
            return Ok(chosen);
        }
        match reason {
            Some(r) if self.override_reasons.contains(&r) => Ok(chosen),
            _ => Err(GolError::OverrideNotAllowed {
                system: system.number(),
                chosen: chosen.number(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::Instruments;
    use proptest::prelude::*;

    fn gol() -> GolInstrument {
        Instruments::builtin().unwrap().gol
    }

    fn path(a: i32, b: i32, c: i32, d: Option<i32>, adj: Option<(&str, i64)>) -> u8 {
        let g = gol();
        let adj = adj.map(|(t, p)| g.adjustment(t, p).unwrap());
        g.assess(&GolAnswers::from_section_scores(a, b, c, d), adj)
            .unwrap()
            .system_path
            .number()
    }

    #[test]
    fn thresholds_are_those_of_the_seed() {
        let g = gol();
        assert_eq!(g.threshold(Section::A), 7);
        assert_eq!(g.threshold(Section::B), 8);
        assert_eq!(g.threshold(Section::C), 6);
        assert_eq!(g.threshold(Section::D), 12);
        assert_eq!(g.max_adjustment(), 3);
    }

    #[test]
    fn section_a_threshold_is_inclusive_at_7() {
        assert_eq!(path(6, 0, 0, None, None), 1);
        assert_eq!(path(7, 0, 0, None, None), 2);
    }

    #[test]
    fn section_b_threshold_is_inclusive_at_8() {
        assert_eq!(path(0, 7, 0, None, None), 1);
        assert_eq!(path(0, 8, 0, None, None), 2);
        assert_eq!(path(7, 8, 0, None, None), 3);
    }

    #[test]
    fn inclusion_needs_c_at_6_and_c_plus_d_at_12() {
        assert_eq!(path(0, 0, 6, Some(6), None), 4);
        assert_eq!(path(0, 0, 6, Some(5), None), 1);
        // C + D = 12 but C below its threshold: no deep-dive path.
        assert_eq!(path(0, 0, 5, Some(7), None), 1);
    }

    #[test]
    fn deep_dive_is_required_when_c_reaches_threshold() {
        let g = gol();
        let err = g
            .assess(&GolAnswers::from_section_scores(0, 0, 6, None), None)
            .unwrap_err();
        assert!(matches!(err, GolError::DeepDiveMissing { .. }));
    }

    #[test]
    fn adjustment_moves_a_section_across_its_threshold() {
        assert_eq!(path(5, 0, 0, None, Some(("A", 2))), 2);
        assert_eq!(path(8, 0, 0, None, Some(("A", -3))), 1);
        assert_eq!(path(0, 0, 6, Some(4), Some(("CD", 2))), 4);
    }

    #[test]
    fn adjustment_beyond_plafond_is_rejected() {
        assert!(matches!(
            gol().adjustment("A", 4),
            Err(GolError::AdjustmentTooLarge { .. })
        ));
        assert!(matches!(
            gol().adjustment("A", -4),
            Err(GolError::AdjustmentTooLarge { .. })
        ));
        assert!(matches!(
            gol().adjustment("E", 1),
            Err(GolError::BadAdjustTarget(_))
        ));
    }

    #[test]
    fn override_only_for_the_three_categories() {
        let g = gol();
        let (s, c) = (Path::new(1).unwrap(), Path::new(4).unwrap());
        assert!(g.final_path(s, c, None).is_err());
        for r in [
            OverrideReason::DisabilityL68,
            OverrideReason::SocialServices,
            OverrideReason::PenalSystem,
        ] {
            assert_eq!(g.final_path(s, c, Some(r)).unwrap(), c);
        }
        assert_eq!(g.final_path(s, s, None).unwrap(), s);
        assert!(OverrideReason::parse("amicizia").is_none());
    }

    #[test]
    fn items_sum_to_section_scores() {
        let g = gol();
        let a = [Some(3), Some(3), Some(1), Some(0), Some(0)];
        let b = [Some(0); 5];
        let c = [Some(2), Some(2), Some(2), Some(0), Some(0)];
        let d = [Some(3), Some(3), Some(0), Some(0), Some(0)];
        let ans = g.answers_from_items([&a, &b, &c, &d]).unwrap();
        assert_eq!(
            (ans.get(Section::A), ans.get(Section::C), ans.d()),
            (7, 6, Some(6))
        );
        assert_eq!(g.assess(&ans, None).unwrap().system_path.number(), 4);
        let none = [None; 5];
        assert_eq!(
            g.answers_from_items([&a, &b, &[Some(0); 5], &none])
                .unwrap()
                .d(),
            None
        );
        let off = [Some(4), Some(0), Some(0), Some(0), Some(0)];
        assert!(matches!(
            g.answers_from_items([&off, &b, &c, &d]),
            Err(GolError::AnswerOffScale { .. })
        ));
    }

    #[test]
    fn threshold_file_errors_are_reported() {
        let bad =
            include_str!("../../instruments/gol.toml").replace("threshold = 7", "threshold = 99");
        let err = GolInstrument::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("threshold 99"), "{err}");
    }

    proptest! {
        // The adjustment never moves a score by more than the plafond, and the path only
        // changes when a threshold lies within reach of the adjustment.
        #[test]
        fn adjustment_never_moves_more_than_three(a in 0i32..=15, b in 0i32..=15, c in 0i32..=15,
                                                   d in 0i32..=15, t in 0usize..4, p in -10i64..=10) {
            let g = gol();
            let target = ["A", "B", "C", "CD"][t];
            let answers = GolAnswers::from_section_scores(a, b, c, Some(d));
            match g.adjustment(target, p) {
                Err(_) => prop_assert!(p.abs() > 3),
                Ok(adj) => {
                    let o = g.assess(&answers, Some(adj)).unwrap();
                    let base = g.assess(&answers, None).unwrap();
                    let moved: i32 = o.adjusted.iter().zip(base.adjusted.iter()).map(|(x, y)| (x - y).abs()).sum::<i32>()
                        + if target == "CD" { (o.adjusted_cd - base.adjusted_cd).abs() } else { 0 };
                    prop_assert!(moved <= 3);
                    if o.system_path != base.system_path {
                        let near = |v: i32, thr: i32| (v - thr).abs() <= 3 || (v + 3 >= thr && v < thr);
                        prop_assert!(near(a, 7) || near(b, 8) || near(c, 6) || near(c + d, 12));
                    }
                }
            }
        }
    }
}
