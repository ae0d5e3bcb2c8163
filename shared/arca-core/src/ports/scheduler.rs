//! The scheduler port: declarative, [`Scheduler::sync`] makes a definition's schedules
//! exactly the set `model::schedule::schedules_for` computed.

use async_trait::async_trait;

use crate::Result;
pub use crate::model::schedule::{Schedule, ScheduleInput};

/// Keeps each definition's schedules equal to a desired set.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Creates, updates and deletes schedules so that the schedules of `definition_id`
    /// are exactly `desired` (checked with [`check_desired`]; an empty set deletes them
    /// all). Other definitions' schedules are never touched. Idempotent.
    async fn sync(&self, definition_id: &str, desired: &[Schedule]) -> Result<()>;

    /// The schedules of `definition_id` as they exist, sorted by name.
    async fn list(&self, definition_id: &str) -> Result<Vec<Schedule>>;

    /// Every definition id that has at least one schedule here (`<id>-<rule>` names),
    /// sorted: what the reconciler compares with the store to find orphans.
    async fn definitions(&self) -> Result<Vec<String>>;
}
