//! One run of `occupa cluster`: read the columns, fit the method for each k asked,
//! choose k, and describe the chosen clustering (sizes, fit statistics, profiles,
//! stability, each row's cluster).

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::gmm::{Covariance, Gmm};
use super::items::Items;
use super::kmeans::{KMeans, standardise};
use super::kprototypes::KPrototypes;
use super::lca::{FittedLca, Lca, LcaErrors};
use super::model::SavedModel;
use super::profiles::{Profile, lca_profiles, numeric_profiles};
use super::quality::{silhouette, silhouette_with};
use super::stability::{Stability, stability};
use crate::columns::Table;
use crate::{Error, Result};

/// Rows beyond which the silhouette is computed on a seeded sample of this many (it
/// costs n² distances), as scikit-learn's `sample_size` does.
pub const SILHOUETTE_SAMPLE: usize = 10_000;

/// Which method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// k-means on numeric columns.
    #[serde(alias = "k-means")]
    Kmeans,
    /// Gaussian mixture on numeric columns.
    #[serde(alias = "mixture")]
    Gmm,
    /// Latent class analysis on categorical columns (missing answers kept).
    Lca,
    /// k-prototypes on numeric and categorical columns.
    #[serde(alias = "k-prototypes")]
    Kprototypes,
}

fn yes() -> bool {
    true
}
fn full() -> String {
    "full".into()
}

/// A clustering as a study file or the command line states it; unknown fields are
/// refused and [`ClusteringSpec::check`] turns it into the [`ClusterSpec`] that runs.
///
/// ```
/// use occupa_engine::cluster::run::ClusteringSpec;
///
/// let spec: ClusteringSpec = toml::from_str(r#"
///     method = "lca"
///     columns = ["q01", "q02", "q03"]
///     k_range = "1..6"
///     seed = 3
/// "#)?;
/// assert_eq!(spec.check()?.k, (1, 6));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusteringSpec {
    /// kmeans, gmm, lca or kprototypes.
    pub method: Method,
    /// The columns to cluster on.
    pub columns: Vec<String>,
    /// k-prototypes: which of the columns are categorical.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// One number of clusters…
    #[serde(default)]
    pub k: Option<usize>,
    /// …or a range `A..B` (BIC or silhouette chooses).
    #[serde(default)]
    pub k_range: Option<String>,
    /// Seed of every random choice.
    #[serde(default)]
    pub seed: u64,
    /// Random starts per k.
    #[serde(default)]
    pub starts: Option<usize>,
    /// k-means, mixtures: cluster z-scores.
    #[serde(default)]
    pub standardise: bool,
    /// Mixtures: full or diag.
    #[serde(default = "full")]
    pub covariance: String,
    /// Bootstrap samples for stability.
    #[serde(default)]
    pub stability: Option<usize>,
    /// LCA: standard errors (of the chosen k's model only).
    #[serde(default = "yes")]
    pub standard_errors: bool,
    /// The sheet of a workbook input.
    #[serde(default)]
    pub sheet: Option<String>,
}

impl ClusteringSpec {
    /// Checks every field once into a runnable [`ClusterSpec`].
    pub fn check(&self) -> Result<ClusterSpec> {
        let k = match (self.k, &self.k_range) {
            (Some(k), None) => (k, k),
            (None, Some(r)) => {
                let bad = || Error::Param {
                    name: "k_range",
                    reason: format!("{r}: write it as A..B, e.g. 2..8"),
                };
                let (lo, hi) = r.split_once("..").ok_or_else(bad)?;
                (
                    lo.trim().parse().map_err(|_| bad())?,
                    hi.trim().parse().map_err(|_| bad())?,
                )
            }
            (Some(_), Some(_)) => {
                return Err(Error::Param {
                    name: "k",
                    reason: "give k or k_range, not both".into(),
                });
            }
            (None, None) => {
                return Err(Error::Param {
                    name: "k",
                    reason: "give k (e.g. 4) or k_range (e.g. 2..8)".into(),
                });
            }
        };
        let covariance = match self.covariance.as_str() {
            "full" => Covariance::Full,
            "diag" => Covariance::Diag,
            other => {
                return Err(Error::Param {
                    name: "covariance",
                    reason: format!("{other}: use full or diag"),
                });
            }
        };
        let spec = ClusterSpec {
            columns: self.columns.clone(),
            categorical: self.categorical.clone(),
            method: self.method,
            k,
            seed: self.seed,
            starts: self.starts,
            standardise: self.standardise,
            covariance,
            stability: self.stability,
            standard_errors: self.standard_errors,
            sheet: self.sheet.clone(),
        };
        spec.check()?;
        Ok(spec)
    }
}

impl Method {
    /// Parses `kmeans`, `gmm`, `lca`, `kprototypes`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "kmeans" | "k-means" => Method::Kmeans,
            "gmm" | "mixture" => Method::Gmm,
            "lca" => Method::Lca,
            "kprototypes" | "k-prototypes" => Method::Kprototypes,
            other => {
                return Err(Error::Param {
                    name: "method",
                    reason: format!("'{other}'; use kmeans, gmm, lca or kprototypes"),
                });
            }
        })
    }
}

/// What to cluster and how.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The columns to cluster on.
    pub columns: Vec<String>,
    /// k-prototypes: which of `columns` are categorical (the others are numeric).
    pub categorical: Vec<String>,
    /// The method.
    pub method: Method,
    /// Smallest and largest k (equal for a single k).
    pub k: (usize, usize),
    /// Seed of every random choice.
    pub seed: u64,
    /// Starts per k (the method's default when `None`).
    pub starts: Option<usize>,
    /// k-means and mixtures: cluster z-scores instead of raw values.
    pub standardise: bool,
    /// Mixtures: covariance shape.
    pub covariance: Covariance,
    /// Bootstrap samples for stability (none when `None`).
    pub stability: Option<usize>,
    /// LCA: compute standard errors (of the chosen k's model only).
    pub standard_errors: bool,
    /// The sheet of a workbook input (name or number from 1; the first by default).
    pub sheet: Option<String>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            columns: Vec::new(),
            categorical: Vec::new(),
            method: Method::Kmeans,
            k: (2, 2),
            seed: 0,
            starts: None,
            standardise: false,
            covariance: Covariance::Full,
            stability: None,
            standard_errors: true,
            sheet: None,
        }
    }
}

/// One k's fit, for choosing among them.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Number of clusters.
    pub k: usize,
    /// Log-likelihood (mixtures, LCA).
    pub loglik: Option<f64>,
    /// BIC (mixtures, LCA).
    pub bic: Option<f64>,
    /// AIC (mixtures, LCA).
    pub aic: Option<f64>,
    /// Within-cluster sum of squares (k-means) or cost (k-prototypes).
    pub inertia: Option<f64>,
    /// Mean silhouette width (k-means, mixtures, k-prototypes).
    pub silhouette: Option<f64>,
    /// Relative entropy of the classification (mixtures, LCA).
    pub entropy: Option<f64>,
    /// Cluster sizes.
    pub sizes: Vec<usize>,
}

/// The result of `occupa cluster`, as its JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// How the input file was read (format, separator, encoding, decimal commas).
    pub input: crate::columns::SourceInfo,
    /// Columns left out because they cannot tell rows apart (all missing, one value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// The method.
    pub method: Method,
    /// The chosen number of clusters.
    pub k: usize,
    /// Rows read.
    pub rows: usize,
    /// Rows clustered.
    pub used: usize,
    /// Rows left out: a numeric value missing (k-means, mixtures, k-prototypes) or no
    /// answer at all (LCA keeps rows with some answers missing).
    pub dropped_missing: usize,
    /// The chosen fit's statistics.
    #[serde(flatten)]
    pub chosen: Candidate,
    /// Every k tried, and the rule that chose among them.
    pub selection: Vec<Candidate>,
    /// The rule: lowest BIC (mixtures, LCA) or highest silhouette (others).
    pub chosen_by: String,
    /// How the silhouette was computed.
    pub silhouette_note: Option<String>,
    /// Random starts per k.
    pub starts: usize,
    /// The seed.
    pub seed: u64,
    /// Each cluster's profile.
    pub profiles: Vec<Profile>,
    /// The columns of the profiles' `means` and `z`, in order.
    pub profile_columns: Vec<String>,
    /// LCA: standard errors of the class shares and answer probabilities.
    pub standard_errors: Option<LcaSe>,
    /// Bootstrap stability of the chosen clustering.
    pub stability: Option<Stability>,
    /// Each row's cluster (from 0; `None` if left out), in file order.
    #[serde(skip)]
    pub labels: Vec<Option<usize>>,
    /// Posterior probabilities of the used rows (mixtures, LCA).
    #[serde(skip)]
    pub posterior: Option<Array2<f64>>,
    /// The chosen model's parameters, to assign new rows later.
    #[serde(skip)]
    pub model: SavedModel,
    /// Where the time went.
    pub seconds: Timings,
}

/// Seconds spent on each part of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reading and preparing the data.
    pub read: f64,
    /// Fitting the method for every k (all starts).
    pub fit: f64,
    /// Silhouettes, profiles and standard errors.
    pub diagnostics: f64,
    /// The stability bootstrap.
    pub stability: f64,
    /// Everything.
    pub total: f64,
}

/// LCA standard errors in JSON-friendly form.
#[derive(Debug, Clone, Serialize)]
pub struct LcaSe {
    /// Of the class shares.
    pub shares: Vec<f64>,
    /// Per item, per class, per category.
    pub probs: Vec<Vec<Vec<f64>>>,
    /// Rank and dimension of the information matrix.
    pub rank: usize,
    /// Free parameters in the information matrix.
    pub parameters: usize,
}

impl From<LcaErrors> for LcaSe {
    fn from(e: LcaErrors) -> Self {
        LcaSe {
            shares: e.shares,
            probs: e
                .probs
                .iter()
                .map(|m| m.rows().into_iter().map(|r| r.to_vec()).collect())
                .collect(),
            rank: e.rank,
            parameters: e.parameters,
        }
    }
}

/// Column means and population SDs.
type Scale = (Vec<f64>, Vec<f64>);

/// The data of a run: numeric columns of the complete rows and categorical items.
struct Data {
    num: Array2<f64>,
    num_names: Vec<String>,
    /// z-scores of `num` and the means and SDs behind them, when asked for.
    z: Option<(Array2<f64>, Scale)>,
    cat: Option<Items>,
    /// Input row of each used row.
    rows: Vec<usize>,
    total: usize,
    /// Columns left out, with why (all missing, or a single value).
    left_out: Vec<String>,
}

/// Reads `path` and runs the clustering `spec` describes.
pub fn cluster_csv(path: &Path, spec: &ClusterSpec) -> Result<ClusterReport> {
    let start = std::time::Instant::now();
    spec.check()?;
    let wanted: Vec<&str> = spec.columns.iter().map(String::as_str).collect();
    let table = Table::read_with(
        path,
        &wanted,
        &crate::read::ReadOptions {
            sheet: spec.sheet.clone(),
        },
    )?;
    let read = start.elapsed().as_secs_f64();
    let mut report = cluster_table(&table, spec)?;
    report.seconds.read += read;
    report.seconds.total += read;
    Ok(report)
}

impl ClusterSpec {
    /// Checks the spec once: columns named, 1 ≤ A ≤ B, categorical columns among them.
    pub fn check(&self) -> Result<()> {
        let spec = self;
        if spec.columns.is_empty() {
            return Err(Error::Param {
                name: "columns",
                reason: "name the columns to cluster on".into(),
            });
        }
        let (k0, k1) = spec.k;
        if k0 == 0 || k1 < k0 {
            return Err(Error::Param {
                name: "k",
                reason: format!("{k0}..{k1}: give 1 ≤ A ≤ B"),
            });
        }
        for c in &spec.categorical {
            if !spec.columns.contains(c) {
                return Err(Error::Param {
                    name: "categorical",
                    reason: format!("{c} is not among the columns to cluster on"),
                });
            }
        }
        Ok(())
    }
}

/// Clusters the rows of a table in memory as `spec` says.
pub fn cluster_table(table: &Table, spec: &ClusterSpec) -> Result<ClusterReport> {
    let start = std::time::Instant::now();
    spec.check()?;
    let (k0, k1) = spec.k;
    let data = read_data(table, spec, &table.path)?;
    let source = table.source().clone();
    let mut timings = Timings {
        read: start.elapsed().as_secs_f64(),
        ..Timings::default()
    };
    let mut selection = Vec::new();
    let mut fits = Vec::new();
    let mut silhouette_note = None;
    for k in k0..=k1 {
        let (cand, fit) = fit_one(&data, spec, k, &mut silhouette_note, &mut timings)?;
        selection.push(cand);
        fits.push(fit);
    }
    let before_stability = std::time::Instant::now();
    let (chosen_by, best) = match spec.method {
        Method::Lca | Method::Gmm => (
            "lowest BIC".to_string(),
            argbest(&selection, |c| c.bic.map(|b| -b)),
        ),
        _ if k0 == k1 => ("the only k asked".to_string(), 0),
        _ => (
            "highest mean silhouette".to_string(),
            argbest(&selection, |c| c.silhouette),
        ),
    };
    let fit = fits.swap_remove(best);
    drop(fits);
    let chosen = selection[best].clone();
    let k = chosen.k;
    let errors = match (&fit.lca, spec.standard_errors) {
        (Some(lca), true) => {
            let t0 = std::time::Instant::now();
            let errors = lca.standard_errors()?.into();
            timings.diagnostics += t0.elapsed().as_secs_f64();
            Some(errors)
        }
        _ => None,
    };
    let stability = match spec.stability {
        Some(b) => Some(stability(&fit.labels, k, b, spec.seed, |rows| {
            refit_predict(&data, spec, k, rows)
        })?),
        None => None,
    };
    timings.stability = before_stability.elapsed().as_secs_f64();
    let mut labels = vec![None; data.total];
    for (i, &r) in data.rows.iter().enumerate() {
        labels[r] = Some(fit.labels[i]);
    }
    Ok(ClusterReport {
        input: source,
        left_out: data.left_out.clone(),
        method: spec.method,
        k,
        rows: data.total,
        used: data.rows.len(),
        dropped_missing: data.total - data.rows.len(),
        chosen,
        selection,
        chosen_by,
        silhouette_note,
        starts: starts_of(spec),
        seed: spec.seed,
        profiles: fit.profiles,
        profile_columns: match spec.method {
            Method::Lca => data
                .cat
                .as_ref()
                .map(|c| c.names().to_vec())
                .unwrap_or_default(),
            _ => data.num_names.clone(),
        },
        standard_errors: errors,
        stability,
        labels,
        posterior: fit.posterior,
        model: fit.model,
        seconds: Timings {
            total: start.elapsed().as_secs_f64(),
            ..timings
        },
    })
}

fn starts_of(spec: &ClusterSpec) -> usize {
    spec.starts.unwrap_or(match spec.method {
        Method::Lca => 20,
        _ => 10,
    })
}

fn argbest(c: &[Candidate], score: impl Fn(&Candidate) -> Option<f64>) -> usize {
    let mut best = 0;
    for (i, x) in c.iter().enumerate() {
        if let (Some(s), b) = (score(x), score(&c[best]))
            && b.is_none_or(|b| s > b)
        {
            best = i;
        }
    }
    best
}

fn read_data(table: &Table, spec: &ClusterSpec, path: &Path) -> Result<Data> {
    let n = table.len();
    // A column with no value, or with one value only, cannot tell rows apart: it is left
    // out and named (it would otherwise drop every row, or divide by a zero spread).
    let mut left_out = Vec::new();
    let mut informative = |c: &String| -> Result<bool> {
        let (levels, _) = table.categories(c)?;
        let why = match levels.len() {
            0 => Some("all missing"),
            1 => Some("a single value"),
            _ => None,
        };
        if let Some(why) = why {
            left_out.push(format!("{c} ({why})"));
            return Ok(false);
        }
        Ok(true)
    };
    let mut columns = Vec::new();
    for c in &spec.columns {
        if informative(c)? {
            columns.push(c.clone());
        }
    }
    if columns.is_empty() {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("no column can tell rows apart: {}", left_out.join(", ")),
        });
    }
    let cat_names: Vec<String> = match spec.method {
        Method::Lca => columns.clone(),
        Method::Kprototypes => spec
            .categorical
            .iter()
            .filter(|c| columns.contains(c))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    if spec.method == Method::Kprototypes && cat_names.is_empty() {
        return Err(Error::Param {
            name: "categorical",
            reason: "k-prototypes needs categorical columns (--categorical); for numeric \
                     columns only use kmeans"
                .into(),
        });
    }
    let num_names: Vec<String> = columns
        .iter()
        .filter(|c| !cat_names.contains(c) && !spec.categorical.contains(c))
        .cloned()
        .collect();
    let num_cols: Vec<&[f64]> = num_names
        .iter()
        .map(|c| table.numeric(c))
        .collect::<Result<_>>()?;
    let cat = if cat_names.is_empty() {
        None
    } else {
        Some(Items::from_table(table, &cat_names)?)
    };
    // Rows kept: numbers all present; for LCA at least one answer; for k-prototypes
    // every category present too.
    let rows: Vec<usize> = (0..n)
        .filter(|&i| num_cols.iter().all(|c| !c[i].is_nan()))
        .filter(|&i| match (&cat, spec.method) {
            (Some(items), Method::Lca) => items.row(i).iter().any(|&v| v != super::items::MISSING),
            (Some(items), _) => !items.row(i).contains(&super::items::MISSING),
            _ => true,
        })
        .collect();
    if rows.is_empty() {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: "no row has every value needed; check for empty columns".into(),
        });
    }
    let num = Array2::from_shape_fn((rows.len(), num_names.len()), |(i, j)| num_cols[j][rows[i]]);
    let cat = cat.map(|items| items.subset(&rows));
    // z-scores once, for every k and bootstrap sample.
    let z = match spec.method {
        Method::Kmeans | Method::Gmm if spec.standardise => {
            let (z, m, s) = standardise(num.view())?;
            Some((z, (m, s)))
        }
        _ => None,
    };
    Ok(Data {
        num,
        num_names,
        cat,
        z,
        rows,
        total: n,
        left_out,
    })
}

/// A fitted model of the run, reduced to what the report needs.
struct Fit {
    labels: Vec<usize>,
    profiles: Vec<Profile>,
    posterior: Option<Array2<f64>>,
    /// The latent class model, kept for its standard errors: they cost n·p² and are
    /// computed for the chosen k only.
    lca: Option<Box<FittedLca>>,
    model: SavedModel,
}

impl Data {
    /// The numbers the numeric methods cluster: the raw values or their z-scores.
    fn space(&self) -> &Array2<f64> {
        self.z.as_ref().map_or(&self.num, |(z, _)| z)
    }
}

fn fit_one(
    data: &Data,
    spec: &ClusterSpec,
    k: usize,
    note: &mut Option<String>,
    timings: &mut Timings,
) -> Result<(Candidate, Fit)> {
    let t0 = std::time::Instant::now();
    let (cand, fit, fitted) = fit_method(data, spec, k, note)?;
    timings.fit += fitted;
    timings.diagnostics += t0.elapsed().as_secs_f64() - fitted;
    Ok((cand, fit))
}

/// The fit for one k, and the seconds its fitting alone took.
fn fit_method(
    data: &Data,
    spec: &ClusterSpec,
    k: usize,
    note: &mut Option<String>,
) -> Result<(Candidate, Fit, f64)> {
    let starts = starts_of(spec);
    let clock = std::time::Instant::now();
    let empty = Candidate {
        k,
        loglik: None,
        bic: None,
        aic: None,
        inertia: None,
        silhouette: None,
        entropy: None,
        sizes: Vec::new(),
    };
    match spec.method {
        Method::Kmeans => {
            // k-means standardises itself, so that its centres (and a saved model) are
            // on the data's scale.
            let fit = KMeans::new(k)?
                .starts(starts)?
                .seed(spec.seed)
                .standardise(spec.standardise)
                .fit(data.num.view())?;
            let fitted = clock.elapsed().as_secs_f64();
            let x = data.space();
            let sil = sampled_silhouette(x.view(), &fit.labels, k, spec.seed, note);
            Ok((
                Candidate {
                    inertia: Some(fit.inertia),
                    silhouette: sil,
                    sizes: fit.sizes.clone(),
                    ..empty
                },
                Fit {
                    profiles: numeric_profiles(
                        data.num.view(),
                        &data.num_names,
                        &fit.labels,
                        k,
                        None,
                    ),
                    model: SavedModel::kmeans(&data.num_names, &fit),
                    labels: fit.labels,
                    posterior: None,
                    lca: None,
                },
                fitted,
            ))
        }
        Method::Gmm => {
            let x = data.space();
            let fit = Gmm::new(k, spec.covariance)?
                .starts(starts)?
                .seed(spec.seed)
                .fit(x.view())?;
            let fitted = clock.elapsed().as_secs_f64();
            let post = fit.predict_proba(x.view())?;
            let sil = sampled_silhouette(x.view(), &fit.labels, k, spec.seed, note);
            Ok((
                Candidate {
                    loglik: Some(fit.loglik),
                    bic: Some(fit.bic),
                    aic: Some(fit.aic),
                    silhouette: sil,
                    entropy: super::relative_entropy(&post),
                    sizes: fit.sizes.clone(),
                    ..empty
                },
                Fit {
                    profiles: numeric_profiles(
                        data.num.view(),
                        &data.num_names,
                        &fit.labels,
                        k,
                        Some(&fit.weights),
                    ),
                    model: SavedModel::gmm(
                        &data.num_names,
                        &fit,
                        data.z.as_ref().map(|(_, scale)| scale.clone()),
                    ),
                    labels: fit.labels,
                    posterior: Some(post),
                    lca: None,
                },
                fitted,
            ))
        }
        Method::Lca => {
            let items = data.cat.as_ref().ok_or(Error::Param {
                name: "columns",
                reason: "no categorical columns".into(),
            })?;
            let fit = Lca::new(k)?.starts(starts)?.seed(spec.seed).fit(items)?;
            let fitted = clock.elapsed().as_secs_f64();
            let labels = fit.labels();
            let mut sizes = vec![0usize; k];
            for &l in &labels {
                sizes[l] += 1;
            }
            Ok((
                Candidate {
                    loglik: Some(fit.loglik),
                    bic: Some(fit.bic),
                    aic: Some(fit.aic),
                    entropy: fit.entropy,
                    sizes,
                    ..empty
                },
                Fit {
                    profiles: lca_profiles(&fit),
                    model: SavedModel::lca(&fit),
                    labels,
                    posterior: Some(fit.posterior.clone()),
                    lca: Some(Box::new(fit)),
                },
                fitted,
            ))
        }
        Method::Kprototypes => {
            let items = data.cat.as_ref().ok_or(Error::Param {
                name: "categorical",
                reason: "no categorical columns".into(),
            })?;
            let fit = KPrototypes::new(k)?
                .starts(starts)?
                .seed(spec.seed)
                .fit(data.num.view(), items)?;
            let fitted = clock.elapsed().as_secs_f64();
            let n = data.num.nrows();
            let sil = if k < 2 {
                None
            } else {
                let rows = sample_rows(n, spec.seed, note);
                let num = data.num.view();
                let ls: Vec<usize> = rows.iter().map(|&i| fit.labels[i]).collect();
                silhouette_with(rows.len(), &ls, |a, b| {
                    fit.dissimilarity(num, items, rows[a], rows[b])
                })
                .ok()
                .map(|s| s.0)
            };
            Ok((
                Candidate {
                    inertia: Some(fit.cost),
                    silhouette: sil,
                    sizes: fit.sizes.clone(),
                    ..empty
                },
                Fit {
                    profiles: numeric_profiles(
                        data.num.view(),
                        &data.num_names,
                        &fit.labels,
                        k,
                        None,
                    ),
                    model: SavedModel::kprototypes(&data.num_names, items, &fit),
                    labels: fit.labels,
                    posterior: None,
                    lca: None,
                },
                fitted,
            ))
        }
    }
}

/// Everyone's cluster under the model refitted on `rows` (a bootstrap sample).
fn refit_predict(data: &Data, spec: &ClusterSpec, k: usize, rows: &[usize]) -> Result<Vec<usize>> {
    let starts = starts_of(spec);
    let pick = |x: ArrayView2<f64>| {
        Array2::from_shape_fn((rows.len(), x.ncols()), |(i, j)| x[[rows[i], j]])
    };
    match spec.method {
        Method::Kmeans => {
            let x = data.space();
            let fit = KMeans::new(k)?
                .starts(starts)?
                .seed(spec.seed)
                .fit(pick(x.view()).view())?;
            fit.predict(x.view())
        }
        Method::Gmm => {
            let x = data.space();
            let fit = Gmm::new(k, spec.covariance)?
                .starts(starts)?
                .seed(spec.seed)
                .fit(pick(x.view()).view())?;
            fit.predict(x.view())
        }
        Method::Lca => {
            let items = data.cat.as_ref().ok_or(Error::Param {
                name: "columns",
                reason: "no categorical columns".into(),
            })?;
            let sample = items.subset(rows);
            let fit = Lca::new(k)?.starts(starts)?.seed(spec.seed).fit(&sample)?;
            fit.predict(items)
        }
        Method::Kprototypes => {
            let items = data.cat.as_ref().ok_or(Error::Param {
                name: "categorical",
                reason: "no categorical columns".into(),
            })?;
            let sample = items.subset(rows);
            let fit = KPrototypes::new(k)?
                .starts(starts)?
                .seed(spec.seed)
                .fit(pick(data.num.view()).view(), &sample)?;
            fit.predict(data.num.view(), items)
        }
    }
}

/// New rows assigned to a saved model's clusters.
#[derive(Debug, Clone, Serialize)]
pub struct Assignment {
    /// The saved model's method.
    pub method: String,
    /// Its number of clusters.
    pub k: usize,
    /// Rows read.
    pub rows: usize,
    /// Rows assigned (the others miss a value the model needs).
    pub assigned: usize,
    /// Rows assigned to each cluster.
    pub sizes: Vec<usize>,
    /// Each row's cluster (from 0), in file order.
    #[serde(skip)]
    pub labels: Vec<Option<usize>>,
    /// Posterior probabilities of the assigned rows (mixtures, LCA).
    #[serde(skip)]
    pub posterior: Option<Array2<f64>>,
}

/// Assigns the rows of `path` to the clusters of a saved model (e.g. the next
/// quarter's intake to last year's profiles).
pub fn assign_csv(path: &Path, model: &SavedModel) -> Result<Assignment> {
    assign_file(path, model, &crate::read::ReadOptions::default())
}

/// [`assign_csv`] for any file the reader takes (the sheet of a workbook in `options`).
pub fn assign_file(
    path: &Path,
    model: &SavedModel,
    options: &crate::read::ReadOptions,
) -> Result<Assignment> {
    let columns = model.columns();
    let wanted: Vec<&str> = columns.iter().map(String::as_str).collect();
    let table = Table::read_with(path, &wanted, options)?;
    let (labels, posterior) = model.assign(&table)?;
    let k = model.k();
    let mut sizes = vec![0usize; k];
    for l in labels.iter().flatten() {
        sizes[*l] += 1;
    }
    Ok(Assignment {
        method: model.method().to_string(),
        k,
        rows: table.len(),
        assigned: sizes.iter().sum(),
        sizes,
        labels,
        posterior,
    })
}

/// All rows, or a seeded sample of [`SILHOUETTE_SAMPLE`] of them (sorted), for the
/// silhouette; `note` says which.
fn sample_rows(n: usize, seed: u64, note: &mut Option<String>) -> Vec<usize> {
    if n <= SILHOUETTE_SAMPLE {
        *note = Some("exact, on every row".into());
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(&mut rng);
    rows.truncate(SILHOUETTE_SAMPLE);
    rows.sort_unstable();
    *note = Some(format!(
        "on a random sample of {SILHOUETTE_SAMPLE} of the {n} rows (seeded; exact \
         silhouettes cost n² dissimilarities)"
    ));
    rows
}

/// The Euclidean silhouette on all rows or a seeded sample (see [`sample_rows`]).
fn sampled_silhouette(
    x: ArrayView2<f64>,
    labels: &[usize],
    k: usize,
    seed: u64,
    note: &mut Option<String>,
) -> Option<f64> {
    if k < 2 {
        return None;
    }
    let rows = sample_rows(x.nrows(), seed, note);
    let xs = Array2::from_shape_fn((rows.len(), x.ncols()), |(i, j)| x[[rows[i], j]]);
    let ls: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    silhouette(xs.view(), &ls).ok().map(|s| s.0)
}
