//! Clustering of occupability profiles: which kinds of people do the services serve?
//!
//! * [`items::Items`]: categorical answers (ASSO, ISA, GOL items) with missing answers;
//! * [`lca::Lca`]: latent class analysis by EM, with full-information handling of
//!   missing answers, several random starts, information criteria and poLCA's standard
//!   errors;
//! * [`kmeans::KMeans`], [`gmm::Gmm`], [`kprototypes::KPrototypes`] for numeric scores
//!   and mixed data;
//! * [`quality`] (silhouette, adjusted Rand, Jaccard), [`stability`] (bootstrap),
//!   [`profiles`] (what stands out in each cluster, and a label);
//! * [`run`]: one run of `occupa cluster` over a range of k.
//!
//! Each method follows the vocabulary spec → `fit` → fitted model → `predict`, and is
//! checked against a reference tool's output in `tests/fixtures/` (poLCA, scikit-learn).

// Numerical code indexes several arrays in step; index loops read like the formulas.
#![allow(clippy::needless_range_loop)]

pub mod gmm;
pub mod items;
pub mod kmeans;
pub mod kprototypes;
pub mod lca;
pub mod model;
pub mod profiles;
pub mod quality;
pub mod run;
pub mod stability;
