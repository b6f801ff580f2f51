//! The one error type of the engine.

use std::path::PathBuf;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Each variant carries enough context for a
/// one-line message that tells the user what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A whole input file is unusable (not a single row can be judged on its own).
    #[error("{path}: {reason}")]
    BadFile {
        /// The input file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An instrument definition is invalid.
    #[error("instrument {instrument}: {reason}")]
    Instrument {
        /// Which instrument (asso, isa, gol).
        instrument: String,
        /// What is wrong.
        reason: String,
    },
    /// A parameter given by the caller is out of its domain.
    #[error("invalid parameter {name}: {reason}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The pseudonymisation key is missing or unusable.
    #[error("pseudonymisation key: {0}")]
    Key(String),
    /// The store is in a state that prevents the operation.
    #[error("store {path}: {reason}")]
    Store {
        /// The store folder or file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An estimator could not produce a result from these data.
    #[error("{method}: {reason}")]
    Estimation {
        /// The estimator or model.
        method: &'static str,
        /// Why, and what to change.
        reason: String,
    },
    /// A columnar operation failed.
    #[error("data frame: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
