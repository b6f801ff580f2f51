//! Generalisation hierarchies, as ARX and anjana write them: one CSV row per original
//! value, level 0 (the value itself) first, then ever coarser labels, usually ending in
//! `*`. A value absent from the file is an error naming the value and the column, never
//! a silent pass-through (it would leave a rare value ungeneralised).

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// A validated hierarchy for one column: every row has the same number of levels.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    column: String,
    rows: HashMap<String, usize>,
    /// `labels[row][level]`.
    labels: Vec<Vec<String>>,
}

impl Hierarchy {
    /// Builds a hierarchy from rows (level 0 first).
    pub fn from_rows(column: &str, rows: Vec<Vec<String>>) -> Result<Self> {
        let bad = |reason: String| Error::Hierarchy {
            column: column.to_string(),
            reason,
        };
        let height = rows.first().map_or(0, Vec::len);
        if height == 0 {
            return Err(bad("the hierarchy is empty".into()));
        }
        let mut index = HashMap::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            if r.len() != height {
                return Err(bad(format!(
                    "row {} has {} levels, the first row {height}",
                    i + 1,
                    r.len()
                )));
            }
            if index.insert(r[0].clone(), i).is_some() {
                return Err(bad(format!(
                    "value {:?} appears twice (row {})",
                    r[0],
                    i + 1
                )));
            }
        }
        // A generalisation must be a tree: a label has one parent at the next level, or
        // two records equal at level l could differ at level l + 1 and the lattice's
        // monotonicity (on which the search's pruning rests) would not hold.
        for level in 1..height.saturating_sub(1) {
            let mut parent: HashMap<&str, &str> = HashMap::new();
            for r in &rows {
                let p = parent.entry(&r[level]).or_insert(&r[level + 1]);
                if *p != r[level + 1] {
                    return Err(bad(format!(
                        "label {:?} at level {level} generalises to both {:?} and {:?} at level {}",
                        r[level],
                        p,
                        r[level + 1],
                        level + 1
                    )));
                }
            }
        }
        Ok(Hierarchy {
            column: column.to_string(),
            rows: index,
            labels: rows,
        })
    }

    /// Reads `DIR/<column>.csv` style files (`,` or `;` separated, no header).
    pub fn from_csv(column: &str, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::Hierarchy {
            column: column.to_string(),
            reason: format!("{}: {e}", path.display()),
        })?;
        let text = occupa_engine::read::text_utf8_or_1252(&bytes);
        let first = text.lines().next().unwrap_or("");
        let sep = if first.matches(';').count() > first.matches(',').count() {
            b';'
        } else {
            b','
        };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(sep)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| Error::Hierarchy {
                column: column.to_string(),
                reason: format!("{}: {e}", path.display()),
            })?;
            rows.push(rec.iter().map(|f| f.trim().to_string()).collect());
        }
        Hierarchy::from_rows(column, rows)
    }

    /// The column it generalises.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Number of levels, the original values included.
    pub fn height(&self) -> usize {
        self.labels[0].len()
    }

    /// Number of original values (rows of the hierarchy).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the hierarchy has no values (never true for a built one).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The row of an original value.
    pub fn row_of(&self, value: &str) -> Option<usize> {
        self.rows.get(value).copied()
    }

    /// The label of hierarchy row `row` at `level`.
    pub fn label(&self, row: usize, level: usize) -> &str {
        &self.labels[row][level]
    }

    /// The label of `value` at `level`.
    pub fn generalise(&self, value: &str, level: usize) -> Result<&str> {
        let row = self.rows.get(value).ok_or_else(|| Error::Hierarchy {
            column: self.column.clone(),
            reason: format!("value {value:?} is not in the hierarchy"),
        })?;
        self.labels[*row]
            .get(level)
            .map(String::as_str)
            .ok_or_else(|| Error::Hierarchy {
                column: self.column.clone(),
                reason: format!(
                    "level {level} beyond the hierarchy's {} levels",
                    self.height()
                ),
            })
    }
}

/// Equivalence classes of a table at one node of the generalisation lattice, and what
/// k-anonymity with record suppression would cost there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCheck {
    /// Number of equivalence classes.
    pub classes: usize,
    /// Records in classes smaller than k, which would have to be suppressed.
    pub records_below_k: usize,
    /// Whether those fit within the suppression limit.
    pub feasible: bool,
}

/// Checks k-anonymity of `rows` (quasi-identifier values, one column per hierarchy) at
/// `node` (a level per hierarchy) allowing `max_suppression` (a fraction of the records).
pub fn check_node(
    rows: &[Vec<&str>],
    hierarchies: &[Hierarchy],
    node: &[usize],
    k: usize,
    max_suppression: f64,
) -> Result<NodeCheck> {
    if node.len() != hierarchies.len() {
        return Err(Error::Param {
            name: "node",
            reason: format!(
                "{} levels for {} hierarchies",
                node.len(),
                hierarchies.len()
            ),
        });
    }
    let mut classes: HashMap<Vec<&str>, usize> = HashMap::new();
    for r in rows {
        let key = r
            .iter()
            .zip(hierarchies)
            .zip(node)
            .map(|((v, h), &l)| h.generalise(v, l))
            .collect::<Result<Vec<_>>>()?;
        *classes.entry(key).or_insert(0) += 1;
    }
    let below: usize = classes.values().filter(|&&n| n < k).sum();
    Ok(NodeCheck {
        classes: classes.len(),
        records_below_k: below,
        feasible: below as f64 <= max_suppression * rows.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age() -> Hierarchy {
        let rows = (15..=20)
            .map(|a: u32| {
                vec![
                    a.to_string(),
                    format!("{}-{}", a / 5 * 5, a / 5 * 5 + 4),
                    "*".into(),
                ]
            })
            .collect();
        Hierarchy::from_rows("age", rows).unwrap()
    }

    #[test]
    fn generalises_by_level() {
        let h = age();
        assert_eq!(h.height(), 3);
        assert_eq!(h.generalise("17", 1).unwrap(), "15-19");
        assert_eq!(h.generalise("17", 2).unwrap(), "*");
    }

    #[test]
    fn unknown_values_name_the_value_and_column() {
        let err = age().generalise("99", 1).unwrap_err().to_string();
        assert!(err.contains("age") && err.contains("\"99\""), "{err}");
    }

    #[test]
    fn ragged_and_duplicate_rows_are_rejected() {
        assert!(
            Hierarchy::from_rows("x", vec![vec!["a".into(), "*".into()], vec!["b".into()]])
                .is_err()
        );
        assert!(
            Hierarchy::from_rows(
                "x",
                vec![vec!["a".into(), "*".into()], vec!["a".into(), "*".into()]]
            )
            .is_err()
        );
    }

    #[test]
    fn a_label_with_two_parents_is_rejected() {
        let row = |v: &str, a: &str, b: &str| vec![v.to_string(), a.to_string(), b.to_string()];
        let err = Hierarchy::from_rows("x", vec![row("1", "A", "X"), row("2", "A", "Y")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"A\"") && err.contains("both"), "{err}");
    }

    #[test]
    fn node_check_counts_records_in_small_classes() {
        let h = vec![age()];
        let rows: Vec<Vec<&str>> = ["15", "16", "17", "20"].iter().map(|v| vec![*v]).collect();
        let at0 = check_node(&rows, &h, &[0], 2, 0.0).unwrap();
        assert_eq!(
            (at0.classes, at0.records_below_k, at0.feasible),
            (4, 4, false)
        );
        let at1 = check_node(&rows, &h, &[1], 2, 0.25).unwrap();
        // {15,16,17} form one class of 3; {20} alone: 1 record = 25 % may be suppressed.
        assert_eq!(
            (at1.classes, at1.records_below_k, at1.feasible),
            (2, 1, true)
        );
        assert!(!check_node(&rows, &h, &[1], 2, 0.2).unwrap().feasible);
    }
}
