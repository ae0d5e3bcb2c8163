//! Arca's core: the domain model, the ports the domain talks through, and the pure
//! rules over them. Nothing here calls an SDK or a Kubernetes client; adapters live in
//! `arca-aws` (AWS) and `arca-embedded` (one machine).

pub mod auth;
pub mod cluster;
pub mod destination;
pub mod error;
pub mod ids;
pub mod job;
pub mod org;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod secret;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

pub use error::{Error, Result};
