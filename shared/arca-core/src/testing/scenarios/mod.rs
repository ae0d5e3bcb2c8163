//! Scenarios: the control plane's behaviour over any item store, run by every item-store
//! adapter (each part creates its own orgs, so runs may share a table).

pub mod alerts;
pub mod cloud;
pub mod clusters;
pub mod jobs;
pub mod plan;
pub mod policies;
pub mod rds;
pub mod relations;
pub mod tenancy;
