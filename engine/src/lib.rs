//! # occupa-engine
//!
//! The data model, the embedded store and the methods of Occupa, a research analytics
//! engine for Italian public employment and social services.
//!
//! Data flows one way: files exported by an authority are read by [`ingest`], which
//! validates every value against the table's [`schema`], replaces the tax code by a keyed
//! pseudonym ([`pseudonym`]) and writes the rows atomically into the tenant's folder of the
//! [`store`]; rejected rows go to a quarantine file with their row, column and reason.
//! Instruments (ASSO, ISA, GOL) are data files loaded and validated by [`instruments`].
//! The [`simulate`] module produces realistic pooled populations with planted truth, and
//! [`indicators`] computes the stock and flow of persons in charge and the physical
//! monitoring indicators.
//!
//! ```
//! use occupa_engine::instruments::Instruments;
//! use occupa_engine::instruments::gol::{GolAnswers, Section};
//!
//! let instruments = Instruments::builtin()?;
//! let gol = &instruments.gol;
//! // A person far from the labour market (A = 9 ≥ 7) without skill gaps (B = 4 < 8)
//! // and without personal obstacles (C = 2 < 6) is assigned GOL 2 (upskilling).
//! let answers = GolAnswers::from_section_scores(9, 4, 2, None);
//! let outcome = gol.assess(&answers, None)?;
//! assert_eq!(outcome.system_path.number(), 2);
//! assert_eq!(outcome.scores.get(Section::A), 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod analysis;
pub mod causal;
pub mod cluster;
pub mod codice_fiscale;
pub mod columns;
pub mod error;
pub mod export;
pub mod forecast;
pub mod identifiers;
pub mod indicators;
pub mod ingest;
pub mod instruments;
pub mod linalg;
pub mod profile;
pub mod pseudonym;
pub mod ratings;
pub mod read;
pub mod schema;
pub mod simulate;
pub mod store;
pub mod territory;
pub mod value;

pub use error::{Error, Result};
