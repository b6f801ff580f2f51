//! The units of an evaluation: outcome, treatment, covariates and optional cluster labels,
//! checked and put in a canonical order.
//!
//! Every estimator reads the units in that order, which depends on their values only
//! (treatment, covariates, outcome, cluster), never on the input's row order: shuffled
//! input gives bit-for-bit the same sums, so the same estimates, standard errors and
//! matches (ties between identical units are ties between interchangeable units).

use ndarray::{Array1, Array2, ArrayView2};

use crate::{Error, Result};

/// Units ready for estimation.
#[derive(Debug, Clone)]
pub struct Sample {
    y: Array1<f64>,
    d: Vec<bool>,
    x: Array2<f64>,
    names: Vec<String>,
    cluster: Option<Vec<u32>>,
    strata: Option<Vec<u32>>,
    /// For each covariate, the level of a categorical column it is the dummy of.
    levels: Vec<Option<Level>>,
}

/// A covariate that is the dummy of one level of a categorical column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The categorical column.
    pub factor: String,
    /// The level this dummy marks.
    pub level: String,
    /// The reference level (the one with no dummy).
    pub reference: String,
}

impl Sample {
    /// Checks the units and puts them in canonical order. `x` holds one column per
    /// covariate (no intercept), named by `names`.
    pub fn new(y: Vec<f64>, d: Vec<bool>, x: Array2<f64>, names: Vec<String>) -> Result<Self> {
        Sample::build(y, d, x, names, None, None)
    }

    /// [`Sample::new`] with a cluster label per unit (in the same order as the units), for
    /// cluster-robust standard errors.
    pub fn clustered(
        y: Vec<f64>,
        d: Vec<bool>,
        x: Array2<f64>,
        names: Vec<String>,
        labels: Vec<u32>,
    ) -> Result<Self> {
        Sample::build(y, d, x, names, Some(labels), None)
    }

    /// [`Sample::new`] with optional cluster labels and optional strata (units are only
    /// matched within their stratum: exact matching on, say, tenant and sex). Labels
    /// must not depend on the input's row order (number them by sorted value).
    pub fn grouped(
        y: Vec<f64>,
        d: Vec<bool>,
        x: Array2<f64>,
        names: Vec<String>,
        cluster: Option<Vec<u32>>,
        strata: Option<Vec<u32>>,
    ) -> Result<Self> {
        Sample::build(y, d, x, names, cluster, strata)
    }

    fn build(
        y: Vec<f64>,
        d: Vec<bool>,
        x: Array2<f64>,
        names: Vec<String>,
        cluster: Option<Vec<u32>>,
        strata: Option<Vec<u32>>,
    ) -> Result<Self> {
        let n = y.len();
        let bad = |reason: String| Error::Param {
            name: "sample",
            reason,
        };
        if d.len() != n || x.nrows() != n {
            return Err(bad(format!(
                "{n} outcomes, {} treatments and {} covariate rows",
                d.len(),
                x.nrows()
            )));
        }
        if names.len() != x.ncols() {
            return Err(bad(format!(
                "{} names for {} covariates",
                names.len(),
                x.ncols()
            )));
        }
        if let Some(c) = &cluster
            && c.len() != n
        {
            return Err(bad(format!("{} cluster labels for {n} units", c.len())));
        }
        if let Some(c) = &strata
            && c.len() != n
        {
            return Err(bad(format!("{} stratum labels for {n} units", c.len())));
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "outcome of unit {} is not a finite number",
                i + 1
            )));
        }
        if let Some(((i, j), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(bad(format!(
                "{} of unit {} is not a finite number",
                names[j],
                i + 1
            )));
        }
        let treated = d.iter().filter(|&&t| t).count();
        if treated == 0 || treated == n {
            return Err(bad(format!(
                "{treated} treated and {} controls: an effect needs both groups",
                n - treated
            )));
        }
        let levels = vec![None; names.len()];
        let mut s = Sample {
            y: Array1::from(y),
            d,
            x,
            names,
            cluster,
            strata,
            levels,
        };
        s.canonicalise();
        Ok(s)
    }

    fn canonicalise(&mut self) {
        let n = self.y.len();
        let mut order: Vec<usize> = (0..n).collect();
        let strata = self.strata.as_ref();
        // Unstable is enough: units equal in every key are interchangeable.
        use rayon::slice::ParallelSliceMut;
        order.par_sort_unstable_by(|&a, &b| {
            strata
                .map(|s| s[a])
                .cmp(&strata.map(|s| s[b]))
                .then(self.d[a].cmp(&self.d[b]))
                .then_with(|| {
                    self.x
                        .row(a)
                        .iter()
                        .zip(self.x.row(b))
                        .map(|(u, v)| u.total_cmp(v))
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .then_with(|| self.y[a].total_cmp(&self.y[b]))
                .then_with(|| {
                    let c = self.cluster.as_ref();
                    c.map(|c| c[a]).cmp(&c.map(|c| c[b]))
                })
        });
        self.y = order.iter().map(|&i| self.y[i]).collect();
        self.d = order.iter().map(|&i| self.d[i]).collect();
        let mut x = Array2::<f64>::zeros(self.x.dim());
        for (mut row, &i) in x.rows_mut().into_iter().zip(&order) {
            row.assign(&self.x.row(i));
        }
        self.x = x;
        if let Some(c) = &self.cluster {
            self.cluster = Some(order.iter().map(|&i| c[i]).collect());
        }
        if let Some(c) = &self.strata {
            self.strata = Some(order.iter().map(|&i| c[i]).collect());
        }
    }

    /// The sample without the covariates aliased with the intercept and the covariates
    /// before them (a constant column, a dummy no unit holds, dummies adding up to
    /// another), as R's `lm` and `glm` drop them and report `NA`; with their names.
    /// `None` when no covariate is aliased. What is identified is estimated unchanged:
    /// the fitted values and the treatment effect do not depend on an aliased column.
    pub fn without_aliased(&self) -> Result<Option<(Sample, Vec<String>)>> {
        let (n, p) = self.x.dim();
        let mut design = Array2::<f64>::ones((n, p + 1));
        design.slice_mut(ndarray::s![.., 1..]).assign(&self.x);
        let keep = super::linalg::independent_columns(design.view());
        let kept: Vec<usize> = (0..p).filter(|&j| keep[j + 1]).collect();
        if kept.len() == p {
            return Ok(None);
        }
        let dropped = (0..p)
            .filter(|&j| !keep[j + 1])
            .map(|j| self.names[j].clone())
            .collect();
        Ok(Some((self.with_columns(&kept), dropped)))
    }

    /// The sample with only the covariates at `cols`, units in the same order (an order
    /// that still depends on the values only).
    pub(crate) fn with_columns(&self, cols: &[usize]) -> Sample {
        Sample {
            y: self.y.clone(),
            d: self.d.clone(),
            x: self.x.select(ndarray::Axis(1), cols),
            names: cols.iter().map(|&j| self.names[j].clone()).collect(),
            cluster: self.cluster.clone(),
            strata: self.strata.clone(),
            levels: cols.iter().map(|&j| self.levels[j].clone()).collect(),
        }
    }

    /// The sample with new covariates, units in the same order.
    pub(crate) fn with_covariates(
        &self,
        x: Array2<f64>,
        names: Vec<String>,
        levels: Vec<Option<Level>>,
    ) -> Sample {
        Sample {
            y: self.y.clone(),
            d: self.d.clone(),
            x,
            names,
            cluster: self.cluster.clone(),
            strata: self.strata.clone(),
            levels,
        }
    }

    /// Marks covariates as dummies of a categorical column's levels (one entry per
    /// covariate), so that rare levels can be merged (`--separation merge`).
    pub fn with_levels(mut self, levels: Vec<Option<Level>>) -> Result<Self> {
        if levels.len() != self.names.len() {
            return Err(Error::Param {
                name: "sample",
                reason: format!(
                    "{} level labels for {} covariates",
                    levels.len(),
                    self.names.len()
                ),
            });
        }
        self.levels = levels;
        Ok(self)
    }

    /// Which level of which categorical column each covariate is the dummy of.
    pub fn levels(&self) -> &[Option<Level>] {
        &self.levels
    }

    /// The units at `rows` (repeats allowed), in that order: a bootstrap resample or a
    /// subgroup. Fails if one group would be empty.
    pub fn subset(&self, rows: &[usize]) -> Result<Sample> {
        let treated = rows.iter().filter(|&&i| self.d[i]).count();
        if treated == 0 || treated == rows.len() {
            return Err(Error::Param {
                name: "sample",
                reason: format!(
                    "{treated} treated and {} controls: an effect needs both groups",
                    rows.len() - treated
                ),
            });
        }
        let mut x = Array2::<f64>::zeros((rows.len(), self.x.ncols()));
        for (mut row, &i) in x.rows_mut().into_iter().zip(rows) {
            row.assign(&self.x.row(i));
        }
        let pick = |v: &Option<Vec<u32>>| v.as_ref().map(|c| rows.iter().map(|&i| c[i]).collect());
        Ok(Sample {
            y: rows.iter().map(|&i| self.y[i]).collect(),
            d: rows.iter().map(|&i| self.d[i]).collect(),
            x,
            names: self.names.clone(),
            cluster: pick(&self.cluster),
            strata: pick(&self.strata),
            levels: self.levels.clone(),
        })
    }

    /// Number of units.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no units (never, once built).
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Outcomes, in canonical order.
    pub fn y(&self) -> &Array1<f64> {
        &self.y
    }

    /// Treatment indicators.
    pub fn d(&self) -> &[bool] {
        &self.d
    }

    /// Covariates (no intercept).
    pub fn x(&self) -> ArrayView2<'_, f64> {
        self.x.view()
    }

    /// Covariate names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Cluster labels, if any.
    pub fn cluster(&self) -> Option<&[u32]> {
        self.cluster.as_deref()
    }

    /// Stratum labels for exact matching, if any.
    pub fn strata(&self) -> Option<&[u32]> {
        self.strata.as_deref()
    }

    /// Number of treated units.
    pub fn n_treated(&self) -> usize {
        self.d.iter().filter(|&&t| t).count()
    }

    /// Number of controls.
    pub fn n_control(&self) -> usize {
        self.len() - self.n_treated()
    }
}
