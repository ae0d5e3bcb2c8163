//! Arca's core: the domain model, the ports the domain talks through, and the pure
//! rules over them. Nothing here calls an SDK or a Kubernetes client; adapters live in
//! `arca-aws` (AWS) and `arca-embedded` (one machine).
//!
//! The layers, each depending only on those above it (docs/architecture.md):
//! - [`error`], [`ids`] and `validate`: the vocabulary every layer shares;
//! - [`model`]: entities and pure rules (`decide`, `plan`, schedules, names);
//! - [`ports`]: every trait the domain calls out through, with its message types;
//! - [`store`]: the typed, tenant-scoped store over the item-store port;
//! - [`control_plane`]: [`control_plane::ControlPlane`], every business rule of the API
//!   and the functions, over the store and the ports;
//! - `testing` (feature `testing`): contract suites, scenarios and fakes.

pub mod control_plane;
pub mod error;
pub mod ids;
pub mod model;
pub mod ports;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

pub use error::{ConflictKind, Error, Result};
