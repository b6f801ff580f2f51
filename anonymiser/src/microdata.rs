//! A table encoded for the lattice search: each quasi-identifier value becomes its row in
//! the column's hierarchy, rows with the same quasi-identifiers (and sensitive value)
//! are counted once, and every level of every hierarchy gets dense integer codes, so that
//! generalising a record is a table lookup and an equivalence class is an integer key.

use rustc_hash::FxHashMap;

use crate::hierarchy::Hierarchy;
use crate::{Error, Result};

/// The quasi-identifiers (and optionally one sensitive attribute) of a table, encoded.
#[derive(Debug, Clone)]
pub struct Microdata {
    pub(crate) names: Vec<String>,
    pub(crate) hierarchies: Vec<Hierarchy>,
    /// `up[c][level][row]`: the code at `level` of hierarchy row `row` of column `c`
    /// (level-0 labels are unique, so a level-0 code is the hierarchy row itself).
    pub(crate) up: Vec<Vec<Vec<u32>>>,
    /// `card[c][level]`: number of distinct labels of column `c` at `level`.
    pub(crate) card: Vec<Vec<u32>>,
    /// `label_row[c][level][code]`: a hierarchy row carrying that label.
    label_row: Vec<Vec<Vec<u32>>>,
    /// Distinct records: `tuples[t * d + c]` is the hierarchy row of column `c`.
    pub(crate) tuples: Vec<u32>,
    /// Sensitive value code per distinct record (empty without a sensitive attribute).
    pub(crate) sens: Vec<u32>,
    pub(crate) sens_values: Vec<String>,
    /// Records per distinct record.
    pub(crate) counts: Vec<u32>,
    /// The distinct record of each input row.
    pub(crate) row_tuple: Vec<u32>,
    /// `freq[c][row]`: how many records carry hierarchy row `row` in column `c`.
    pub(crate) freq: Vec<Vec<u64>>,
    pub(crate) sensitive_name: Option<String>,
    /// The column the distinct records are sorted by (see [`Microdata::new`]).
    pub(crate) chunk_col: usize,
}

impl Microdata {
    /// Encodes `rows`: each row holds the quasi-identifier values in the order of
    /// `hierarchies`, then the sensitive value if `sensitive` names one. `first_row` is
    /// the number given to the first row in errors (e.g. 2 for a CSV with a header).
    pub fn new<R, S>(
        hierarchies: Vec<Hierarchy>,
        sensitive: Option<&str>,
        rows: &[R],
        first_row: usize,
    ) -> Result<Self>
    where
        R: AsRef<[S]>,
        S: AsRef<str>,
    {
        let d = hierarchies.len();
        if d == 0 {
            return Err(Error::Param {
                name: "quasi_identifiers",
                reason: "at least one quasi-identifier is needed".into(),
            });
        }
        if rows.len() >= u32::MAX as usize {
            return Err(Error::Param {
                name: "rows",
                reason: format!(
                    "{} rows; at most {} are supported",
                    rows.len(),
                    u32::MAX - 1
                ),
            });
        }
        let names: Vec<String> = hierarchies.iter().map(|h| h.column().to_string()).collect();
        let mut up = Vec::with_capacity(d);
        let mut card = Vec::with_capacity(d);
        let mut label_row = Vec::with_capacity(d);
        for h in &hierarchies {
            let mut col_up = Vec::with_capacity(h.height());
            let mut col_card = Vec::with_capacity(h.height());
            let mut col_rows = Vec::with_capacity(h.height());
            for level in 0..h.height() {
                let mut codes: FxHashMap<&str, u32> = FxHashMap::default();
                let mut first_rows = Vec::new();
                let mut map = Vec::with_capacity(h.len());
                for row in 0..h.len() {
                    let next = codes.len() as u32;
                    let code = *codes.entry(h.label(row, level)).or_insert_with(|| {
                        first_rows.push(row as u32);
                        next
                    });
                    map.push(code);
                }
                col_card.push(codes.len() as u32);
                col_up.push(map);
                col_rows.push(first_rows);
            }
            up.push(col_up);
            card.push(col_card);
            label_row.push(col_rows);
        }

        let width = d + usize::from(sensitive.is_some());
        let mut sens_codes: FxHashMap<String, u32> = FxHashMap::default();
        let mut sens_values = Vec::new();
        let mut index: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let mut tuples = Vec::new();
        let mut sens = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut row_tuple = Vec::with_capacity(rows.len());
        let mut freq: Vec<Vec<u64>> = hierarchies.iter().map(|h| vec![0; h.len()]).collect();
        let mut key = Vec::with_capacity(width);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != width {
                return Err(Error::Param {
                    name: "rows",
                    reason: format!(
                        "row {} has {} values, expected {width}",
                        i + first_row,
                        r.len()
                    ),
                });
            }
            key.clear();
            for (c, h) in hierarchies.iter().enumerate() {
                let v = r[c].as_ref();
                let row = h.row_of(v).ok_or_else(|| Error::Hierarchy {
                    column: h.column().to_string(),
                    reason: format!(
                        "row {}: value {v:?} is not in the hierarchy; add it to the \
                         hierarchy file",
                        i + first_row
                    ),
                })?;
                key.push(row as u32);
            }
            if sensitive.is_some() {
                let v = r[d].as_ref();
                let next = sens_codes.len() as u32;
                let code = *sens_codes.entry(v.to_string()).or_insert_with(|| {
                    sens_values.push(v.to_string());
                    next
                });
                key.push(code);
            }
            for (c, &row) in key[..d].iter().enumerate() {
                freq[c][row as usize] += 1;
            }
            let next = counts.len() as u32;
            let t = *index.entry(key.clone()).or_insert_with(|| {
                tuples.extend_from_slice(&key[..d]);
                if sensitive.is_some() {
                    sens.push(key[d]);
                }
                counts.push(0);
                next
            });
            counts[t as usize] += 1;
            row_tuple.push(t);
        }
        // Sort the distinct records by the hierarchy path (top label first) of the column
        // with the most distinct values, so that every label of it, at any level, is a
        // contiguous run: the search uses the runs to stop early on failing nodes.
        let chunk_col = (0..d)
            .max_by_key(|&c| {
                (
                    freq[c].iter().filter(|&&f| f > 0).count(),
                    std::cmp::Reverse(c),
                )
            })
            .unwrap_or(0);
        let h = &hierarchies[chunk_col];
        // Rare labels first at every level: their records are the ones suppressed, so a
        // failing node reaches the suppression limit within the first runs.
        let label_records: Vec<Vec<u64>> = (0..h.height())
            .map(|l| {
                let mut n = vec![0u64; card[chunk_col][l] as usize];
                for (row, &f) in freq[chunk_col].iter().enumerate() {
                    n[up[chunk_col][l][row] as usize] += f;
                }
                n
            })
            .collect();
        let path = |row: u32| -> Vec<(u64, u32)> {
            (0..h.height())
                .rev()
                .map(|l| {
                    let code = up[chunk_col][l][row as usize];
                    (label_records[l][code as usize], code)
                })
                .collect()
        };
        let paths: Vec<Vec<(u64, u32)>> = (0..h.len() as u32).map(path).collect();
        let mut order: Vec<u32> = (0..counts.len() as u32).collect();
        order.sort_by(|&a, &b| {
            paths[tuples[a as usize * d + chunk_col] as usize]
                .cmp(&paths[tuples[b as usize * d + chunk_col] as usize])
                .then(a.cmp(&b))
        });
        let mut new_id = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        let tuples: Vec<u32> = order
            .iter()
            .flat_map(|&t| tuples[t as usize * d..(t as usize + 1) * d].iter().copied())
            .collect();
        let sens: Vec<u32> = if sens.is_empty() {
            sens
        } else {
            order.iter().map(|&t| sens[t as usize]).collect()
        };
        let counts: Vec<u32> = order.iter().map(|&t| counts[t as usize]).collect();
        for t in &mut row_tuple {
            *t = new_id[*t as usize];
        }
        Ok(Microdata {
            chunk_col,
            names,
            hierarchies,
            up,
            card,
            label_row,
            tuples,
            sens,
            sens_values,
            counts,
            row_tuple,
            freq,
            sensitive_name: sensitive.map(str::to_string),
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.row_tuple.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.row_tuple.is_empty()
    }

    /// Number of quasi-identifiers.
    pub fn dims(&self) -> usize {
        self.hierarchies.len()
    }

    /// The quasi-identifiers' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The hierarchies, in column order.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The sensitive attribute's name, if there is one.
    pub fn sensitive(&self) -> Option<&str> {
        self.sensitive_name.as_deref()
    }

    /// Number of distinct records (quasi-identifiers and sensitive value).
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// The hierarchy row of column `c` of distinct record `t`.
    pub(crate) fn value(&self, t: u32, c: usize) -> u32 {
        self.tuples[t as usize * self.dims() + c]
    }

    /// The code at `level` of column `c` of distinct record `t`.
    pub(crate) fn code(&self, t: u32, c: usize, level: u8) -> u32 {
        self.up[c][level as usize][self.value(t, c) as usize]
    }

    /// The label of code `code` of column `c` at `level`.
    pub(crate) fn label(&self, c: usize, level: u8, code: u32) -> &str {
        let row = self.label_row[c][level as usize][code as usize];
        self.hierarchies[c].label(row as usize, level as usize)
    }

    /// The released label of column `c` of input row `row` at `level`.
    pub fn generalised(&self, row: usize, c: usize, level: u8) -> &str {
        let t = self.row_tuple[row];
        self.label(c, level, self.code(t, c, level))
    }
}
