//! A fitted clustering saved as JSON, to assign new people to the same profiles later
//! (the next quarter's intake) without refitting: `occupa cluster --save-model FILE`,
//! then `occupa cluster --model FILE --input NEW.csv`.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::gmm::FittedGmm;
use super::items::Items;
use super::kmeans::FittedKMeans;
use super::kprototypes::FittedKPrototypes;
use super::lca::FittedLca;
use crate::columns::Table;
use crate::{Error, Result};

/// Each row's cluster (`None` if it could not be assigned) and the posterior
/// probabilities of the assigned rows, for methods that have them.
pub type Assigned = (Vec<Option<usize>>, Option<Array2<f64>>);

/// The parameters of a fitted clustering, by method.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum SavedModel {
    /// k-means: centres on the data's scale, and the standardisation if one was used.
    Kmeans {
        /// Numeric columns, in order.
        columns: Vec<String>,
        /// One centre per cluster.
        centres: Vec<Vec<f64>>,
        /// Column means and SDs when the fit clustered z-scores.
        scale: Option<(Vec<f64>, Vec<f64>)>,
    },
    /// Gaussian mixture, fitted on the columns as given or on their z-scores.
    Gmm {
        /// Numeric columns, in order.
        columns: Vec<String>,
        /// Mixing weights.
        weights: Vec<f64>,
        /// Component means (in the space fitted).
        means: Vec<Vec<f64>>,
        /// Component covariance matrices (in the space fitted).
        covariances: Vec<Vec<Vec<f64>>>,
        /// Column means and SDs when the fit used z-scores.
        scale: Option<(Vec<f64>, Vec<f64>)>,
    },
    /// Latent classes: shares and, per item, class × category probabilities.
    Lca {
        /// Items, in order.
        items: Vec<String>,
        /// Category labels per item.
        categories: Vec<Vec<String>>,
        /// Class shares.
        shares: Vec<f64>,
        /// Per item, per class, per category.
        probs: Vec<Vec<Vec<f64>>>,
    },
    /// k-prototypes: numeric means, categorical modes and γ.
    Kprototypes {
        /// Numeric columns, in order.
        numeric: Vec<String>,
        /// Categorical columns, in order.
        categorical: Vec<String>,
        /// Category labels per categorical column.
        categories: Vec<Vec<String>>,
        /// Weight of a mismatch.
        gamma: f64,
        /// Numeric part of each prototype.
        means: Vec<Vec<f64>>,
        /// Categorical part of each prototype (labels).
        modes: Vec<Vec<String>>,
    },
}

fn rows(a: &Array2<f64>) -> Vec<Vec<f64>> {
    a.rows().into_iter().map(|r| r.to_vec()).collect()
}

fn matrix(v: &[Vec<f64>], what: &str) -> Result<Array2<f64>> {
    let c = v.first().map_or(0, Vec::len);
    let flat: Vec<f64> = v.iter().flatten().copied().collect();
    Array2::from_shape_vec((v.len(), c), flat).map_err(|_| Error::Param {
        name: "model",
        reason: format!("{what}: rows of unequal length"),
    })
}

impl SavedModel {
    /// From a fitted k-means on `columns`.
    pub fn kmeans(columns: &[String], fit: &FittedKMeans) -> Self {
        SavedModel::Kmeans {
            columns: columns.to_vec(),
            centres: rows(&fit.centres),
            scale: fit.scale().cloned(),
        }
    }

    /// From a fitted mixture on `columns` (z-scores with `scale`).
    pub fn gmm(columns: &[String], fit: &FittedGmm, scale: Option<(Vec<f64>, Vec<f64>)>) -> Self {
        SavedModel::Gmm {
            columns: columns.to_vec(),
            weights: fit.weights.clone(),
            means: rows(&fit.means),
            covariances: fit.covariances.iter().map(rows).collect(),
            scale,
        }
    }

    /// From a fitted latent class model.
    pub fn lca(fit: &FittedLca) -> Self {
        let items = fit.items();
        SavedModel::Lca {
            items: items.names().to_vec(),
            categories: (0..items.len()).map(|j| items.labels(j).to_vec()).collect(),
            shares: fit.shares.clone(),
            probs: fit.probs.iter().map(rows).collect(),
        }
    }

    /// From a fitted k-prototypes on `numeric` and the categorical columns of `cat`.
    pub fn kprototypes(numeric: &[String], cat: &Items, fit: &FittedKPrototypes) -> Self {
        SavedModel::Kprototypes {
            numeric: numeric.to_vec(),
            categorical: cat.names().to_vec(),
            categories: (0..cat.len()).map(|j| cat.labels(j).to_vec()).collect(),
            gamma: fit.gamma,
            means: rows(&fit.means),
            modes: fit
                .modes
                .rows()
                .into_iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(j, &code)| cat.labels(j)[usize::from(code)].clone())
                        .collect()
                })
                .collect(),
        }
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        match self {
            SavedModel::Kmeans { .. } => "kmeans",
            SavedModel::Gmm { .. } => "gmm",
            SavedModel::Lca { .. } => "lca",
            SavedModel::Kprototypes { .. } => "kprototypes",
        }
    }

    /// Number of clusters.
    pub fn k(&self) -> usize {
        match self {
            SavedModel::Kmeans { centres, .. } => centres.len(),
            SavedModel::Gmm { weights, .. } => weights.len(),
            SavedModel::Lca { shares, .. } => shares.len(),
            SavedModel::Kprototypes { means, .. } => means.len(),
        }
    }

    /// The columns a table must have.
    pub fn columns(&self) -> Vec<String> {
        match self {
            SavedModel::Kmeans { columns, .. } | SavedModel::Gmm { columns, .. } => columns.clone(),
            SavedModel::Lca { items, .. } => items.clone(),
            SavedModel::Kprototypes {
                numeric,
                categorical,
                ..
            } => numeric.iter().chain(categorical).cloned().collect(),
        }
    }

    /// Each row's cluster (`None` where a value the model needs is missing; for LCA a
    /// row needs one answer) and, for mixtures and LCA, the posterior probabilities of
    /// the assigned rows.
    pub fn assign(&self, table: &Table) -> Result<Assigned> {
        let n = table.len();
        let numeric = |cols: &[String]| -> Result<(Array2<f64>, Vec<usize>)> {
            let values: Vec<&[f64]> = cols
                .iter()
                .map(|c| table.numeric(c))
                .collect::<Result<_>>()?;
            let keep: Vec<usize> = (0..n)
                .filter(|&i| values.iter().all(|v| !v[i].is_nan()))
                .collect();
            let x = Array2::from_shape_fn((keep.len(), cols.len()), |(i, j)| values[j][keep[i]]);
            Ok((x, keep))
        };
        let place = |keep: &[usize], labels: Vec<usize>| {
            let mut out = vec![None; n];
            for (&i, l) in keep.iter().zip(labels) {
                out[i] = Some(l);
            }
            out
        };
        match self {
            SavedModel::Kmeans {
                columns,
                centres,
                scale,
            } => {
                let fit = FittedKMeans::from_parts(matrix(centres, "centres")?, scale.clone())?;
                let (x, keep) = numeric(columns)?;
                Ok((place(&keep, fit.predict(x.view())?), None))
            }
            SavedModel::Gmm {
                columns,
                weights,
                means,
                covariances,
                scale,
            } => {
                let covs = covariances
                    .iter()
                    .map(|c| matrix(c, "covariances"))
                    .collect::<Result<Vec<_>>>()?;
                let fit = FittedGmm::from_parts(weights.clone(), matrix(means, "means")?, covs)?;
                let (mut x, keep) = numeric(columns)?;
                if let Some((m, s)) = scale {
                    for mut r in x.rows_mut() {
                        for j in 0..r.len() {
                            r[j] = (r[j] - m[j]) / s[j];
                        }
                    }
                }
                let post = fit.predict_proba(x.view())?;
                let labels = super::most_probable(&post);
                Ok((place(&keep, labels), Some(post)))
            }
            SavedModel::Lca {
                items,
                categories,
                shares,
                probs,
            } => {
                let template = Items::from_codes(
                    items.clone(),
                    categories.clone(),
                    vec![Vec::new(); items.len()],
                )?;
                let probs = probs
                    .iter()
                    .map(|p| matrix(p, "probs"))
                    .collect::<Result<Vec<_>>>()?;
                let fit = FittedLca::from_parts(template, shares.clone(), probs)?;
                let data = Items::from_table(table, items)?;
                let (answered, keep) = data.answered();
                let post = fit.predict_proba(&answered)?;
                let labels = super::most_probable(&post);
                Ok((place(&keep, labels), Some(post)))
            }
            SavedModel::Kprototypes {
                numeric: num_cols,
                categorical,
                categories,
                gamma,
                means,
                modes,
            } => {
                let fit = FittedKPrototypes::from_parts(
                    categorical.clone(),
                    categories.clone(),
                    *gamma,
                    matrix(means, "means")?,
                    modes,
                )?;
                let (x, keep_num) = numeric(num_cols)?;
                let cat = Items::from_table(table, categorical)?;
                // Rows with every number (positions in `x`) and every category too.
                let pos: Vec<usize> = (0..keep_num.len())
                    .filter(|&r| !cat.row(keep_num[r]).contains(&super::items::MISSING))
                    .collect();
                let complete: Vec<usize> = pos.iter().map(|&r| keep_num[r]).collect();
                let xs = x.select(ndarray::Axis(0), &pos);
                let cs = cat.subset(&complete);
                Ok((place(&complete, fit.predict(xs.view(), &cs)?), None))
            }
        }
    }
}
