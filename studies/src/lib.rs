//! Occupa's study runner: a TOML study file (who asks and why, the data, the cohort and one
//! design) run on a research release or on one tenant's own store, protected as one
//! publication and audited. The `occupa` binary and the Python package (`occupa.study.run`)
//! both call [`study::run_study`].

pub mod study;

use std::path::PathBuf;

/// What can go wrong in a study run. Every refusal writes nothing but the audit line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec, the data or the caller's rights do not allow the study; the message says
    /// which and what to do.
    #[error("{0}")]
    Refused(String),
    /// A file or folder that could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "writing", "creating", "replacing").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The engine's error (a table, a method's parameter, the store).
    #[error(transparent)]
    Engine(#[from] occupa_engine::Error),
    /// The anonymiser's error (the protection of what the study publishes).
    #[error(transparent)]
    Anonymiser(#[from] occupa_anonymiser::Error),
    /// The report's error (HTML, PDF).
    #[error(transparent)]
    Reports(#[from] occupa_reports::Error),
    /// Results that could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A table that could not be written as CSV.
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

/// Result with the study runner's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
