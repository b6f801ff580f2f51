//! Utility metrics of a generalisation, defined as ARX defines them (package
//! `org.deidentifier.arx.metric.v2` of ARX 3.9), so that figures can be compared with
//! ARX's and the Adult golden cases reproduce its information loss.
//!
//! All metrics are losses: lower is better. The generalisation/suppression factor `gs`
//! (ARX's default 0.5) weighs the two: `gs < 0.5` makes suppression cheaper
//! (`s = 2·gs`), `gs > 0.5` generalisation cheaper (`g = 1 − 2·(gs − 0.5)`).
//!
//! | name | ARX class | value |
//! |---|---|---|
//! | `entropy` | `MetricMDNUEntropyPrecomputed` (monotonic) | Σ over columns of the conditional entropy of the original values given the generalised ones, in bits × record |
//! | `loss` | `MetricMDNMLoss` | geometric mean over columns of Iyengar's normalised loss |
//! | `precision` | `MetricMDNMPrecision` | mean over columns of level/height, suppressed records counting as fully generalised |
//! | `discernibility` | `MetricSDNMDiscernability` | Σ over classes of size², a suppressed record costing N |
//! | `aecs` | `MetricSDAECS` | records / classes (the suppressed records forming one class) |

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::microdata::Microdata;
use crate::{Error, Result};

/// A utility metric (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Non-uniform entropy (monotonic variant).
    Entropy,
    /// Iyengar's loss metric.
    Loss,
    /// Sweeney's precision.
    Precision,
    /// Discernibility.
    Discernibility,
    /// Average equivalence-class size.
    Aecs,
}

impl Metric {
    /// Every metric, in the order of the CLI's help.
    pub const ALL: [Metric; 5] = [
        Metric::Loss,
        Metric::Entropy,
        Metric::Discernibility,
        Metric::Aecs,
        Metric::Precision,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Entropy => "entropy",
            Metric::Loss => "loss",
            Metric::Precision => "precision",
            Metric::Discernibility => "discernibility",
            Metric::Aecs => "aecs",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| Error::Param {
                name: "metric",
                reason: format!(
                    "{s:?} is not one of {}",
                    Metric::ALL.map(Metric::name).join(", ")
                ),
            })
    }
}

/// ARX's generalisation/suppression factor, in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GsFactor(f64);

impl GsFactor {
    /// Checks the value.
    pub fn new(gs: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&gs) {
            return Err(Error::Param {
                name: "gs_factor",
                reason: format!("{gs} is outside [0, 1]"),
            });
        }
        Ok(GsFactor(gs))
    }
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
    /// Weight of generalised records.
    fn g(self) -> f64 {
        if self.0 <= 0.5 {
            1.0
        } else {
            1.0 - 2.0 * (self.0 - 0.5)
        }
    }
    /// Weight of suppressed records.
    fn s(self) -> f64 {
        if self.0 < 0.5 { 2.0 * self.0 } else { 1.0 }
    }
}

impl Default for GsFactor {
    /// ARX's default, 0.5: generalisation and suppression weigh the same.
    fn default() -> Self {
        GsFactor(0.5)
    }
}

/// ARX rounds per-column losses down to 10 decimals before aggregating them.
fn arx_round(x: f64) -> f64 {
    (x * 1e10).floor() / 1e10
}

/// One equivalence class at a node, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassView {
    /// Records in the class.
    pub size: u64,
    /// Whether the class is suppressed.
    pub suppressed: bool,
    /// A distinct record of the class (its generalised values are the class's).
    pub rep: u32,
}

/// Per-column tables of a metric, computed once per table.
#[derive(Debug, Clone)]
pub(crate) struct MetricTables {
    metric: Metric,
    gs: GsFactor,
    n: f64,
    /// `entropy[c][level]` (rounded, per ARX), for the entropy metric.
    entropy: Vec<Vec<f64>>,
    /// `under[c][level][code]`: how many of the hierarchy's values that label covers.
    under: Vec<Vec<Vec<u64>>>,
    /// `loss_free[c][level]`: the loss accumulator if no record were suppressed.
    loss_free: Vec<Vec<f64>>,
    domain: Vec<f64>,
    heights: Vec<usize>,
}

impl MetricTables {
    pub(crate) fn new(metric: Metric, gs: GsFactor, data: &Microdata) -> Self {
        let n = data.len() as f64;
        let d = data.dims();
        let mut entropy = Vec::with_capacity(d);
        let mut under = Vec::with_capacity(d);
        let mut loss_free = Vec::with_capacity(d);
        let mut domain = Vec::with_capacity(d);
        let mut heights = Vec::with_capacity(d);
        for c in 0..d {
            let h = &data.hierarchies[c];
            let freq = &data.freq[c];
            let rows = h.len();
            domain.push(rows as f64);
            heights.push(h.height());
            let mut col_entropy = Vec::with_capacity(h.height());
            let mut col_under = Vec::with_capacity(h.height());
            let mut col_free = Vec::with_capacity(h.height());
            for level in 0..h.height() {
                let up = &data.up[c][level];
                let card = data.card[c][level] as usize;
                let mut records = vec![0u64; card];
                let mut values = vec![0u64; card];
                for (row, &code) in up.iter().enumerate() {
                    records[code as usize] += freq[row];
                    values[code as usize] += 1;
                }
                // Conditional entropy of the original value given the generalised one,
                // over the records: −Σ_v a_v·log2(a_v / b_g(v)). ARX computes log2 as
                // ln(x)/ln(2); the same here, so the figures agree to the last digits.
                let mut e = 0.0;
                for (row, &code) in up.iter().enumerate() {
                    let a = freq[row];
                    if a > 0 {
                        let a = a as f64;
                        e += a * ((a / records[code as usize] as f64).ln() / 2f64.ln());
                    }
                }
                e *= gs.g();
                col_entropy.push(arx_round(if e == 0.0 { 0.0 } else { -e }));
                // As `evaluate` computes it for a node with nothing suppressed.
                let covered: u128 = up
                    .iter()
                    .enumerate()
                    .map(|(row, &code)| freq[row] as u128 * values[code as usize] as u128)
                    .sum();
                let free = covered as f64 / rows as f64 * gs.g();
                col_under.push(values);
                col_free.push(free);
            }
            entropy.push(col_entropy);
            under.push(col_under);
            loss_free.push(col_free);
        }
        MetricTables {
            metric,
            gs,
            n,
            entropy,
            under,
            loss_free,
            domain,
            heights,
        }
    }

    /// Whether the loss depends on the levels only (not on which classes are
    /// suppressed): then the lower bound is the loss and no data pass is needed.
    pub(crate) fn levels_only(&self) -> bool {
        self.metric == Metric::Entropy
    }

    /// A lower bound of the loss at a node and at every generalisation of it, from the
    /// levels alone; `None` if the metric has none cheaper than evaluating the node.
    pub(crate) fn level_bound(&self, levels: &[u8]) -> Option<f64> {
        let (g, s) = (self.gs.g(), self.gs.s());
        match self.metric {
            Metric::Entropy => Some(
                levels
                    .iter()
                    .enumerate()
                    .map(|(c, &l)| self.entropy[c][l as usize])
                    .sum(),
            ),
            // A suppressed record costs at least what it would generalised (share ≤ 1,
            // g ≤ 1), so the loss with nothing suppressed bounds it from below; shares
            // only grow with the level, so the bound holds for every generalisation.
            Metric::Loss => Some(
                self.loss_aggregate(
                    levels
                        .iter()
                        .enumerate()
                        .map(|(c, &l)| self.loss_normalise(c, self.loss_free[c][l as usize])),
                ),
            ),
            // Each record costs level/height·g if released, s if suppressed.
            Metric::Precision => Some(
                levels
                    .iter()
                    .enumerate()
                    .map(|(c, &l)| (self.precision_level(c, l) * g).min(s))
                    .sum::<f64>()
                    / levels.len() as f64,
            ),
            Metric::Discernibility | Metric::Aecs => None,
        }
    }

    fn precision_level(&self, c: usize, level: u8) -> f64 {
        let h = self.heights[c] - 1;
        if h == 0 { 0.0 } else { level as f64 / h as f64 }
    }

    fn loss_normalise(&self, c: usize, acc: f64) -> f64 {
        let min = self.gs.g() * self.n / self.domain[c];
        let r = (acc - min) / (self.n - min);
        arx_round(if r >= 0.0 { r } else { 0.0 })
    }

    /// ARX's geometric mean of per-column losses (all weights 1).
    fn loss_aggregate(&self, values: impl Iterator<Item = f64>) -> f64 {
        let mut prod = 1.0;
        let mut n = 0;
        for v in values {
            prod *= v + 1.0;
            n += 1;
        }
        prod.powf(1.0 / n as f64) - 1.0
    }

    /// The loss at a node from its classes.
    pub(crate) fn evaluate(
        &self,
        data: &Microdata,
        levels: &[u8],
        classes: impl Iterator<Item = ClassView>,
    ) -> f64 {
        let (g, s) = (self.gs.g(), self.gs.s());
        match self.metric {
            Metric::Entropy => self.level_bound(levels).unwrap_or(0.0),
            Metric::Loss => {
                // ARX's accumulator, per column: Σ_released n·share·g + Σ_suppressed
                // (share·n + s·(n − share·n)) with share = under / rows. Summed as
                // integers (Σ n·under, Σ n) and scaled once at the end, so the value does
                // not depend on the order of the classes, hence not on the row order.
                let d = levels.len();
                let (mut released, mut suppressed, mut suppressed_n) =
                    (vec![0u128; d], vec![0u128; d], 0u128);
                for cl in classes {
                    let n = cl.size as u128;
                    if cl.suppressed {
                        suppressed_n += n;
                    }
                    for (c, &l) in levels.iter().enumerate() {
                        let code = data.code(cl.rep, c, l);
                        let nu = n * self.under[c][l as usize][code as usize] as u128;
                        if cl.suppressed {
                            suppressed[c] += nu;
                        } else {
                            released[c] += nu;
                        }
                    }
                }
                self.loss_aggregate((0..d).map(|c| {
                    let rows = self.domain[c];
                    let acc = released[c] as f64 / rows * g
                        + if s == 1.0 {
                            suppressed_n as f64
                        } else {
                            suppressed[c] as f64 / rows * (1.0 - s) + s * suppressed_n as f64
                        };
                    self.loss_normalise(c, acc)
                }))
            }
            Metric::Precision => {
                let (mut released, mut suppressed) = (0.0, 0.0);
                for cl in classes {
                    if cl.suppressed {
                        suppressed += cl.size as f64;
                    } else {
                        released += cl.size as f64;
                    }
                }
                levels
                    .iter()
                    .enumerate()
                    .map(|(c, &l)| {
                        (released * self.precision_level(c, l) * g + suppressed * s) / self.n
                    })
                    .sum::<f64>()
                    / levels.len() as f64
            }
            Metric::Discernibility => classes
                .map(|cl| {
                    let n = cl.size as f64;
                    if cl.suppressed { self.n * n } else { n * n }
                })
                .sum(),
            Metric::Aecs => {
                let (mut released, mut any_suppressed) = (0.0, false);
                for cl in classes {
                    if cl.suppressed {
                        any_suppressed = true;
                    } else {
                        released += 1.0;
                    }
                }
                // ARX weighs released classes by s and the suppressed class by g (sic).
                let c = released * s + if any_suppressed { g } else { 0.0 };
                if c == 0.0 { self.n } else { self.n / c }
            }
        }
    }

    /// A lower bound of the loss at every generalisation of a node, from its classes
    /// before suppression: generalising only merges classes.
    pub(crate) fn successor_bound(&self, classes: usize, sum_sq: f64) -> f64 {
        match self.metric {
            // A released record of a class of size m costs m ≤ N, a suppressed one N, so
            // Σ m² over all classes bounds the metric; merging classes only raises it.
            Metric::Discernibility => sum_sq,
            // Classes only merge, so there are never more than now; with suppressed
            // records the count is at most released·s + g.
            Metric::Aecs => {
                let c = classes as f64 * self.gs.s() + self.gs.g();
                if c == 0.0 { self.n } else { self.n / c }
            }
            _ => 0.0,
        }
    }
}
