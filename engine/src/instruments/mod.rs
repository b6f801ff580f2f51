//! Instruments as data: ASSO, ISA and the GOL assessment are defined in TOML files
//! (items, allowed answers, scoring, dimensions/areas, thresholds), validated when loaded.
//!
//! The shipped defaults live in `engine/instruments/`; a deployment may load its own
//! definitions with [`Instruments::from_dir`]. Where the public sources do not give a rule
//! (item weights, the exact GOL path mapping) the file says so in its header.

pub mod gol;
pub mod questionnaire;

use std::path::Path;

use crate::{Error, Result};
pub use gol::GolInstrument;
pub use questionnaire::Questionnaire;

/// The three instruments, loaded and validated.
#[derive(Debug, Clone)]
pub struct Instruments {
    /// ASSO: 25 items, three areas.
    pub asso: Questionnaire,
    /// ISA: 50 items, five dimensions, repeated over time.
    pub isa: Questionnaire,
    /// The GOL assessment: sections A–D, thresholds, adjustment, paths.
    pub gol: GolInstrument,
}

const ASSO_TOML: &str = include_str!("../../instruments/asso.toml");
const ISA_TOML: &str = include_str!("../../instruments/isa.toml");
const GOL_TOML: &str = include_str!("../../instruments/gol.toml");

impl Instruments {
    /// The definitions shipped with Occupa (`engine/instruments/*.toml`).
    pub fn builtin() -> Result<Self> {
        Ok(Instruments {
            asso: Questionnaire::from_toml("asso", ASSO_TOML)?,
            isa: Questionnaire::from_toml("isa", ISA_TOML)?,
            gol: GolInstrument::from_toml(GOL_TOML)?,
        })
    }

    /// Loads `asso.toml`, `isa.toml` and `gol.toml` from a folder; a file that is absent
    /// falls back to the shipped default, so a deployment can override one instrument.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str, fallback: &str| -> Result<String> {
            let path = dir.join(name);
            if path.exists() {
                std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
            } else {
                Ok(fallback.to_string())
            }
        };
        Ok(Instruments {
            asso: Questionnaire::from_toml("asso", &read("asso.toml", ASSO_TOML)?)?,
            isa: Questionnaire::from_toml("isa", &read("isa.toml", ISA_TOML)?)?,
            gol: GolInstrument::from_toml(&read("gol.toml", GOL_TOML)?)?,
        })
    }
}

pub(crate) fn bad(instrument: &str, reason: impl Into<String>) -> Error {
    Error::Instrument {
        instrument: instrument.to_string(),
        reason: reason.into(),
    }
}
