//! The generalisation lattice: one node per combination of hierarchy levels, ordered
//! componentwise. Nodes are numbered in mixed radix (the first column varies fastest), so
//! a node's successors are `index + stride[c]` for every column not yet at its top.

use crate::{Error, Result};

/// Nodes beyond this many would make the per-node state arrays (a few bytes each)
/// larger than the data; ARX's own limit is of the same order.
const MAX_NODES: usize = 1 << 28;

/// A lattice of full-domain generalisations.
#[derive(Debug, Clone)]
pub struct Lattice {
    heights: Vec<u8>,
    strides: Vec<usize>,
    size: usize,
}

impl Lattice {
    /// The lattice for hierarchies of these heights (levels, the original included).
    pub fn new(heights: &[usize]) -> Result<Self> {
        if heights.is_empty() {
            return Err(Error::Param {
                name: "quasi_identifiers",
                reason: "at least one quasi-identifier is needed".into(),
            });
        }
        let mut strides = Vec::with_capacity(heights.len());
        let mut size: usize = 1;
        for &h in heights {
            if h == 0 || h > u8::MAX as usize {
                return Err(Error::Param {
                    name: "hierarchy height",
                    reason: format!("{h} levels (1 to 255 are allowed)"),
                });
            }
            strides.push(size);
            size = size
                .checked_mul(h)
                .filter(|&s| s <= MAX_NODES)
                .ok_or_else(|| Error::Param {
                    name: "quasi_identifiers",
                    reason: format!(
                        "the lattice would have more than {MAX_NODES} nodes; use fewer \
                         quasi-identifiers or shorter hierarchies"
                    ),
                })?;
        }
        Ok(Lattice {
            heights: heights.iter().map(|&h| h as u8).collect(),
            strides,
            size,
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Always false: a lattice has at least its bottom node.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of columns.
    pub fn dims(&self) -> usize {
        self.heights.len()
    }

    /// Levels per column (the original values included).
    pub fn heights(&self) -> &[u8] {
        &self.heights
    }

    /// The level of column `c` at node `n`.
    pub fn level(&self, n: usize, c: usize) -> u8 {
        ((n / self.strides[c]) % self.heights[c] as usize) as u8
    }

    /// The levels of node `n`.
    pub fn levels(&self, n: usize) -> Vec<u8> {
        (0..self.dims()).map(|c| self.level(n, c)).collect()
    }

    /// The node with these levels, if they are within the heights.
    pub fn index(&self, levels: &[u8]) -> Option<usize> {
        if levels.len() != self.dims() {
            return None;
        }
        let mut n = 0;
        for ((&l, &h), &s) in levels.iter().zip(&self.heights).zip(&self.strides) {
            if l >= h {
                return None;
            }
            n += l as usize * s;
        }
        Some(n)
    }

    /// Sum of the levels: the node's height in the lattice.
    pub fn rank(&self, n: usize) -> usize {
        (0..self.dims()).map(|c| self.level(n, c) as usize).sum()
    }

    /// The direct generalisations of `n` (one column one level up).
    pub fn successors(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.dims())
            .filter(move |&c| self.level(n, c) + 1 < self.heights[c])
            .map(move |c| n + self.strides[c])
    }

    /// The direct specialisations of `n` (one column one level down).
    pub fn predecessors(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.dims())
            .filter(move |&c| self.level(n, c) > 0)
            .map(move |c| n - self.strides[c])
    }

    /// Whether `a` is a specialisation of (or equal to) `b`, column by column.
    pub fn le(&self, a: usize, b: usize) -> bool {
        (0..self.dims()).all(|c| self.level(a, c) <= self.level(b, c))
    }

    /// The most general node below both `a` and `b` (the lower level of each column).
    pub fn meet(&self, a: usize, b: usize) -> usize {
        (0..self.dims())
            .map(|c| self.level(a, c).min(self.level(b, c)) as usize * self.strides[c])
            .sum()
    }

    /// The top node (everything fully generalised).
    pub fn top(&self) -> usize {
        self.size - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexing_round_trips_and_neighbours_differ_by_one_level() {
        let l = Lattice::new(&[2, 3, 4]).unwrap();
        assert_eq!(l.len(), 24);
        for n in 0..l.len() {
            assert_eq!(l.index(&l.levels(n)), Some(n));
            for s in l.successors(n) {
                assert_eq!(l.rank(s), l.rank(n) + 1);
                assert!(l.le(n, s) && !l.le(s, n));
                assert!(l.predecessors(s).any(|p| p == n));
            }
        }
        assert_eq!(l.successors(l.top()).count(), 0);
        assert_eq!(l.predecessors(0).count(), 0);
        assert_eq!(l.index(&[2, 0, 0]), None);
    }

    #[test]
    fn absurd_lattices_are_refused() {
        assert!(Lattice::new(&[]).is_err());
        assert!(Lattice::new(&[0]).is_err());
        assert!(Lattice::new(&[255; 40]).is_err());
    }
}
