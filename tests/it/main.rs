//! Integration tests: one binary, a module per area.

mod anonymiser;
mod attacks;
mod causal;
mod cluster;
mod forecast;
mod ingest;
mod pipeline;
mod profile;
mod publication;
mod rdd;
mod release;
mod studies;

use std::path::PathBuf;

/// The public-data folder, or `None` (test skipped) on a user's machine without it; under
/// CI the data must be there.
pub(crate) fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("OCCUPA_DATA_DIR")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("OCCUPA_DATA_DIR must point to shared/data under CI")
        }
        None => {
            eprintln!(
                "skipped: set OCCUPA_DATA_DIR to the public datasets folder to run this oracle test"
            );
            None
        }
    }
}
