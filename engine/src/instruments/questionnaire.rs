//! Multiple-choice questionnaires scored by groups of items (ASSO areas, ISA dimensions).

use serde::Deserialize;

use super::bad;
use crate::Result;

/// A group of items scored together (an ASSO area or an ISA dimension).
#[derive(Debug, Clone, Deserialize)]
pub struct Group {
    /// Stable identifier, used as a column suffix in the store (`score_<id>`).
    pub id: String,
    /// Italian label for reports.
    pub label_it: String,
    /// English label for reports.
    pub label_en: String,
    /// 1-based item numbers.
    pub items: Vec<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    name: String,
    version: String,
    effective_from: String,
    column_prefix: String,
    n_items: usize,
    allowed: Vec<i64>,
    min_answered_share: f64,
    reverse: Vec<usize>,
    weights: Vec<f64>,
    groups: Vec<Group>,
}

/// A validated questionnaire definition. Only [`Questionnaire::from_toml`] builds one, so
/// every instance has items covered by exactly one group, positive weights and a
/// non-trivial ordered answer scale.
#[derive(Debug, Clone)]
pub struct Questionnaire {
    /// Identifier (`asso`, `isa`).
    pub id: String,
    /// Full name.
    pub name: String,
    /// Version of the scoring rule.
    pub version: String,
    /// Date from which this scoring rule applies (ISO).
    pub effective_from: chrono::NaiveDate,
    column_prefix: String,
    n_items: usize,
    allowed: Vec<i64>,
    min_answered_share: f64,
    reverse: Vec<bool>,
    weights: Vec<f64>,
    /// The scored groups, in file order.
    pub groups: Vec<Group>,
}

impl Questionnaire {
    /// Parses and validates a definition.
    pub fn from_toml(expected_id: &str, text: &str) -> Result<Self> {
        let raw: Raw = toml::from_str(text).map_err(|e| bad(expected_id, e.to_string()))?;
        let id = raw.id.clone();
        if id != expected_id {
            return Err(bad(expected_id, format!("file declares id {id:?}")));
        }
        let effective_from = chrono::NaiveDate::parse_from_str(&raw.effective_from, "%Y-%m-%d")
            .map_err(|_| bad(&id, "effective_from must be a date YYYY-MM-DD"))?;
        if raw.n_items == 0 || raw.n_items > 999 {
            return Err(bad(&id, "n_items must be between 1 and 999"));
        }
        if raw.allowed.len() < 2 || raw.allowed.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(
                &id,
                "allowed answers must be at least two, strictly increasing",
            ));
        }
        if !(0.0..=1.0).contains(&raw.min_answered_share) {
            return Err(bad(&id, "min_answered_share must be within 0..=1"));
        }
        if raw.weights.len() != raw.n_items {
            return Err(bad(
                &id,
                format!("{} weights for {} items", raw.weights.len(), raw.n_items),
            ));
        }
        if raw.weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(bad(&id, "weights must be positive and finite"));
        }
        let mut reverse = vec![false; raw.n_items];
        for &r in &raw.reverse {
            if r == 0 || r > raw.n_items {
                return Err(bad(&id, format!("reverse item {r} is not an item number")));
            }
            reverse[r - 1] = true;
        }
        let mut seen = vec![0u32; raw.n_items];
        for g in &raw.groups {
            if g.items.is_empty() {
                return Err(bad(&id, format!("group {} has no items", g.id)));
            }
            for &i in &g.items {
                if i == 0 || i > raw.n_items {
                    return Err(bad(
                        &id,
                        format!("group {} names item {i}, not an item number", g.id),
                    ));
                }
                seen[i - 1] += 1;
            }
        }
        if let Some(i) = seen.iter().position(|&c| c != 1) {
            return Err(bad(
                &id,
                format!(
                    "item {} belongs to {} groups (must be exactly one)",
                    i + 1,
                    seen[i]
                ),
            ));
        }
        Ok(Questionnaire {
            id,
            name: raw.name,
            version: raw.version,
            effective_from,
            column_prefix: raw.column_prefix,
            n_items: raw.n_items,
            allowed: raw.allowed,
            min_answered_share: raw.min_answered_share,
            reverse,
            weights: raw.weights,
            groups: raw.groups,
        })
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The allowed answers, ordered.
    pub fn allowed(&self) -> &[i64] {
        &self.allowed
    }

    /// Whether `answer` is on the scale.
    pub fn is_allowed(&self, answer: i64) -> bool {
        self.allowed.binary_search(&answer).is_ok()
    }

    /// +1 when a higher answer to item `i` (1-based) raises its group's score, −1 for a
    /// reversed item; 0 when `i` is not an item.
    pub fn item_direction(&self, i: usize) -> f64 {
        match self.reverse.get(i.wrapping_sub(1)) {
            Some(true) => -1.0,
            Some(false) => 1.0,
            None => 0.0,
        }
    }

    /// Weight of item `i` (1-based) in its group's score; 0 when `i` is not an item.
    pub fn item_weight(&self, i: usize) -> f64 {
        self.weights.get(i.wrapping_sub(1)).copied().unwrap_or(0.0)
    }

    /// Column name of item `i` (1-based), e.g. `q07`.
    pub fn item_column(&self, i: usize) -> String {
        format!("{}{:02}", self.column_prefix, i)
    }

    /// Scores every group: the weighted mean of answered items rescaled to 0–100, or
    /// `None` when fewer than the required share of the group's items are answered.
    /// `answers[i]` is item i+1; an answer off the scale is treated as missing (the
    /// ingestion quarantines such rows before they are stored).
    pub fn score(&self, answers: &[Option<i64>]) -> Vec<Option<f64>> {
        let lo = self.allowed[0] as f64;
        let hi = *self.allowed.last().unwrap_or(&self.allowed[0]) as f64;
        self.groups
            .iter()
            .map(|g| {
                let (mut num, mut den, mut answered) = (0.0, 0.0, 0usize);
                for &i in &g.items {
                    if let Some(Some(a)) = answers.get(i - 1) {
                        if !self.is_allowed(*a) {
                            continue;
                        }
                        let mut x = (*a as f64 - lo) / (hi - lo);
                        if self.reverse[i - 1] {
                            x = 1.0 - x;
                        }
                        num += self.weights[i - 1] * x;
                        den += self.weights[i - 1];
                        answered += 1;
                    }
                }
                let share = answered as f64 / g.items.len() as f64;
                (answered > 0 && share + 1e-12 >= self.min_answered_share)
                    .then(|| 100.0 * num / den)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::Instruments;

    #[test]
    fn builtin_asso_has_three_areas_over_25_items() {
        let q = Instruments::builtin().unwrap().asso;
        assert_eq!(q.n_items(), 25);
        assert_eq!(q.groups.len(), 3);
        assert_eq!(q.item_column(7), "q07");
    }

    #[test]
    fn builtin_isa_has_five_dimensions_over_50_items() {
        let q = Instruments::builtin().unwrap().isa;
        assert_eq!(q.n_items(), 50);
        assert_eq!(q.groups.len(), 5);
    }

    #[test]
    fn scores_are_rescaled_weighted_means() {
        let q = Instruments::builtin().unwrap().asso;
        // All answers at the top of the scale give 100, at the bottom 0.
        let top = vec![Some(4); 25];
        assert!(
            q.score(&top)
                .iter()
                .all(|s| (s.unwrap() - 100.0).abs() < 1e-9)
        );
        let mut mixed = vec![Some(1); 25];
        // Occupability: five items at 4 and five at 1 → mean 0.5 → 50.
        for a in mixed.iter_mut().take(5) {
            *a = Some(4);
        }
        assert!((q.score(&mixed)[0].unwrap() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn too_many_missing_answers_give_no_score() {
        let q = Instruments::builtin().unwrap().asso;
        let mut answers = vec![Some(2); 25];
        for a in answers.iter_mut().take(6) {
            *a = None; // 4 of 10 occupability items answered < 50 %
        }
        let s = q.score(&answers);
        assert!(s[0].is_none());
        assert!(s[1].is_some());
    }

    #[test]
    fn item_in_two_groups_is_rejected() {
        let text = ASSO_LIKE.replace("items = [3, 4]", "items = [2, 3, 4]");
        let err = Questionnaire::from_toml("asso", &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 2 belongs to 2 groups"), "{err}");
    }

    #[test]
    fn uncovered_item_is_rejected() {
        let text = ASSO_LIKE.replace("items = [3, 4]", "items = [3]");
        let err = Questionnaire::from_toml("asso", &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 4 belongs to 0 groups"), "{err}");
    }

    #[test]
    fn weights_must_be_positive() {
        let text = ASSO_LIKE.replace(
            "weights = [1.0, 1.0, 1.0, 1.0]",
            "weights = [1.0, 0.0, 1.0, 1.0]",
        );
        assert!(Questionnaire::from_toml("asso", &text).is_err());
    }

    #[test]
    fn allowed_answers_must_increase() {
        let text = ASSO_LIKE.replace("allowed = [1, 2, 3]", "allowed = [1, 3, 2]");
        assert!(Questionnaire::from_toml("asso", &text).is_err());
    }

    #[test]
    fn reverse_items_are_flipped() {
        let text = ASSO_LIKE.replace("reverse = []", "reverse = [2]");
        let q = Questionnaire::from_toml("asso", &text).unwrap();
        // item 1 = 3 (top → 1.0), item 2 = 3 reversed (→ 0.0): mean 0.5
        assert!((q.score(&[Some(3), Some(3), None, None])[0].unwrap() - 50.0).abs() < 1e-9);
    }

    const ASSO_LIKE: &str = r#"
id = "asso"
name = "test"
version = "1"
effective_from = "2020-01-01"
column_prefix = "q"
n_items = 4
allowed = [1, 2, 3]
min_answered_share = 0.5
reverse = []
weights = [1.0, 1.0, 1.0, 1.0]
[[groups]]
id = "a"
label_it = "a"
label_en = "a"
items = [1, 2]
[[groups]]
id = "b"
label_it = "b"
label_en = "b"
items = [3, 4]
"#;
}
