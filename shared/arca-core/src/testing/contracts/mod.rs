//! Contract suites: one test body per port, run by every adapter against its real
//! backend (a temporary directory, moto's S3, ...). An adapter passes when its suite does.

pub mod item_store;
pub mod object_store;
pub mod queue;
pub mod scheduler;
