//! The employability index (profiling of re-employment): how well a risk score separates
//! and calibrates on a later period, by the definitions of the reference tools.

pub mod metrics;
