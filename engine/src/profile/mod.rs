//! The employability index (profiling of re-employment): a binary regression (logit or
//! probit, with average marginal effects) or a gradient-boosted tree ensemble fitted on
//! one period's persons and validated on a later one; how well a risk score separates and
//! calibrates, by the definitions of the reference tools.

pub mod audit;
pub mod design;
pub mod ensemble;
pub mod fairness;
pub mod glm;
pub mod metrics;
pub mod model;
pub mod rules;
