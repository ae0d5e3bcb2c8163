//! Arca's core: the domain model, the ports the domain talks through, and the pure
//! rules over them. Nothing here calls an SDK or a Kubernetes client; adapters live in
//! `arca-aws` (AWS) and `arca-embedded` (one machine).

pub mod agent;
mod agent_service;
pub mod archive_key;
pub mod auth;
pub mod backup;
pub mod cloud;
#[cfg(feature = "testing")]
pub mod cloud_contract;
mod cloud_service;
pub mod cluster;
pub mod credentials;
pub mod destination;
pub mod dispatch;
pub mod error;
pub mod ids;
pub mod install;
pub mod job;
pub mod org;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod queue;
#[cfg(feature = "testing")]
pub mod queue_contract;
pub mod rds;
#[cfg(feature = "testing")]
pub mod rds_contract;
#[cfg(feature = "testing")]
pub mod rds_fake;
mod rds_service;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod scheduler;
#[cfg(feature = "testing")]
pub mod scheduler_contract;
pub mod secret;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

pub use agent_service::RetentionReport;
pub use cloud_service::{EKS_CREATE_TIMEOUT, EKS_RECHECK_DELAY, InventoryReport, RegionReport};
pub use error::{ConflictKind, Error, Result};
pub use rds_service::{RdsRetentionReport, RdsRunRequest};
