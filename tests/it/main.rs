//! Integration tests: one binary, a module per area.

mod ingest;
mod pipeline;
