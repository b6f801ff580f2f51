//! Integration tests: one binary, a module per area.

mod anonymiser;
mod ingest;
mod pipeline;
mod release;
