//! The ports: every trait the domain calls out through, one file each, with the
//! message types that cross it. Each has an AWS adapter (`arca-aws`) and an embedded one
//! (`arca-embedded`); the contract suites every adapter runs are in `testing::contracts`.
//! Ports depend on `model`, never the other way round.

pub mod clock;
pub mod cloud;
pub mod credentials;
pub mod item_store;
pub mod notify;
pub mod object_store;
pub mod queue;
pub mod rds;
pub mod scheduler;

// The two ports every adapter crate and Lambda names: re-exported here so `ports::Clock`
// reads like the vocabulary it is.
pub use clock::{Clock, FixedClock, SystemClock};
pub use object_store::{DestinationOpener, ObjectMeta, ObjectStore};
