//! Categorical answers (questionnaire items) as compact codes, with missing answers.

use crate::columns::Table;
use crate::{Error, Result};

/// The code of a missing answer.
pub const MISSING: u8 = u8::MAX;

/// Answers of n people to J categorical items: item j's categories are coded 0..Kⱼ, a
/// missing answer is [`MISSING`]. Rows are contiguous (one person's answers side by side).
///
/// ```
/// use occupa_engine::cluster::items::Items;
///
/// let items = Items::from_codes(
///     vec!["q1".into(), "q2".into()],
///     vec![vec!["no".into(), "yes".into()], vec!["1".into(), "2".into(), "3".into()]],
///     vec![vec![Some(0), Some(1), None], vec![Some(2), None, Some(0)]],
/// )?;
/// assert_eq!((items.rows(), items.len(), items.categories(1)), (3, 2, 3));
/// assert_eq!(items.missing(), 2);
/// # Ok::<(), occupa_engine::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Items {
    names: Vec<String>,
    labels: Vec<Vec<String>>,
    codes: Vec<u8>,
    rows: usize,
}

impl Items {
    /// Items from their names, category labels and, per item, each row's category (`None`
    /// where missing). Every item needs at least two categories and at most 254.
    pub fn from_codes(
        names: Vec<String>,
        labels: Vec<Vec<String>>,
        columns: Vec<Vec<Option<u32>>>,
    ) -> Result<Self> {
        let j = names.len();
        if j == 0 || labels.len() != j || columns.len() != j {
            return Err(Error::Param {
                name: "items",
                reason: format!(
                    "{} names, {} label lists and {} columns: give one of each per item, at \
                     least one item",
                    j,
                    labels.len(),
                    columns.len()
                ),
            });
        }
        let rows = columns[0].len();
        let mut codes = vec![MISSING; rows * j];
        for (c, (col, lab)) in columns.iter().zip(&labels).enumerate() {
            if lab.len() < 2 || lab.len() > usize::from(MISSING) {
                return Err(Error::Param {
                    name: "items",
                    reason: format!(
                        "{} has {} categories; an item needs 2 to {} (a constant item tells \
                         nothing: leave it out)",
                        names[c],
                        lab.len(),
                        MISSING
                    ),
                });
            }
            if col.len() != rows {
                return Err(Error::Param {
                    name: "items",
                    reason: format!(
                        "{} has {} rows, {} has {rows}",
                        names[c],
                        col.len(),
                        names[0]
                    ),
                });
            }
            for (i, v) in col.iter().enumerate() {
                if let Some(k) = *v {
                    if k as usize >= lab.len() {
                        return Err(Error::Param {
                            name: "items",
                            reason: format!("{} row {}: code {k} has no label", names[c], i + 1),
                        });
                    }
                    codes[i * j + c] = k as u8;
                }
            }
        }
        Ok(Items {
            names,
            labels,
            codes,
            rows,
        })
    }

    /// The columns `names` of a table, each value a category.
    pub fn from_table(table: &Table, names: &[String]) -> Result<Self> {
        let mut labels = Vec::with_capacity(names.len());
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let (l, c) = table.categories(name)?;
            labels.push(l);
            columns.push(c);
        }
        Items::from_codes(names.to_vec(), labels, columns)
    }

    /// Number of people (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no items (never: construction refuses it).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Item names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of categories of item `j`.
    pub fn categories(&self, j: usize) -> usize {
        self.labels[j].len()
    }

    /// Category labels of item `j`.
    pub fn labels(&self, j: usize) -> &[String] {
        &self.labels[j]
    }

    /// Row i's codes, one per item.
    pub fn row(&self, i: usize) -> &[u8] {
        let j = self.len();
        &self.codes[i * j..(i + 1) * j]
    }

    /// Number of missing answers.
    pub fn missing(&self) -> usize {
        self.codes.iter().filter(|&&c| c == MISSING).count()
    }

    /// The rows with every item answered, and their positions.
    pub fn complete_cases(&self) -> (Items, Vec<usize>) {
        self.select(|r| !r.contains(&MISSING))
    }

    /// The rows with at least one answer, and their positions.
    pub fn answered(&self) -> (Items, Vec<usize>) {
        self.select(|r| r.iter().any(|&c| c != MISSING))
    }

    fn select(&self, keep: impl Fn(&[u8]) -> bool) -> (Items, Vec<usize>) {
        let kept: Vec<usize> = (0..self.rows).filter(|&i| keep(self.row(i))).collect();
        (self.subset(&kept), kept)
    }

    /// The rows at `rows` (in that order; a row may repeat, as in a bootstrap sample).
    pub fn subset(&self, rows: &[usize]) -> Items {
        Items {
            names: self.names.clone(),
            labels: self.labels.clone(),
            codes: rows
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
            rows: rows.len(),
        }
    }

    /// These answers recoded to `other`'s items and categories (matched by name and
    /// label), e.g. a new quarter's intake to the categories of a fitted model. An item
    /// of `other` absent here, or a category `other` does not know, is an error.
    pub fn recode_to(&self, other: &Items) -> Result<Items> {
        let mut columns = Vec::with_capacity(other.len());
        for (oj, name) in other.names.iter().enumerate() {
            let j = self
                .names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| Error::Param {
                    name: "items",
                    reason: format!("the model uses item {name}, which these data lack"),
                })?;
            let map: Vec<Option<u32>> = self.labels[j]
                .iter()
                .map(|l| {
                    other.labels[oj]
                        .iter()
                        .position(|m| m == l)
                        .map(|k| k as u32)
                })
                .collect();
            let mut col = Vec::with_capacity(self.rows);
            for i in 0..self.rows {
                let c = self.codes[i * self.len() + j];
                if c == MISSING {
                    col.push(None);
                    continue;
                }
                match map[c as usize] {
                    Some(k) => col.push(Some(k)),
                    None => {
                        return Err(Error::Param {
                            name: "items",
                            reason: format!(
                                "row {}: {name} = {} is not a category the model knows ({})",
                                i + 1,
                                self.labels[j][c as usize],
                                other.labels[oj].join(", ")
                            ),
                        });
                    }
                }
            }
            columns.push(col);
        }
        Items::from_codes(other.names.clone(), other.labels.clone(), columns)
    }
}
