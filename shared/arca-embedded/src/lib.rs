//! Embedded adapters: Arca's ports implemented on the local machine, so the whole
//! system runs in one process with no AWS (single-machine mode) and tests run fast.

mod local_fs;
mod queue;
mod rds_queue;
mod redb_store;
mod scheduler;
pub mod wiring;

pub use local_fs::LocalFsObjectStore;
pub use queue::EmbeddedQueue;
pub use rds_queue::EmbeddedRdsWorkQueue;
pub use redb_store::{RedbItemStore, StoreLease};
pub use scheduler::EmbeddedScheduler;
