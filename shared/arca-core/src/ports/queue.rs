//! The job queue port: one queue per cluster, from which that cluster's agent takes its
//! jobs (through the Arca API), plus one dead-letter queue shared by every cluster.
//!
//! Delivery is at least once. A receive hides the message for a *visibility timeout*,
//! the agent's lease on the job; the agent keeps it by [`Queue::extend`]ing before it
//! lapses and ends it with [`Queue::ack`] once the job's outcome is recorded. A lease
//! that lapses makes the message visible again, so another poll gets it with a higher
//! [`Delivery::receive_count`]. A message already delivered [`Queue::max_receives`] times
//! is moved to the dead-letter queue instead of being delivered again; the control plane
//! drains that queue ([`Queue::receive_dead_letter`]) and marks those jobs FAILED with
//! [`DeadLetter::failure_reason`].
//!
//! Adapters: `SqsQueue` (arca-aws, a RedrivePolicy does the dead-lettering) and
//! `EmbeddedQueue` (arca-embedded, in process). Both pass `queue_contract`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::ids::{ClusterId, JobId, OrgId};

pub use crate::model::agent::QueueRef;

/// The body of every queued message. It carries only ids: the job itself lives in the
/// store, so a message can never disagree with it. The org and cluster are in it so the
/// dead-letter drain can find the job (jobs are keyed by org) without a scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMessage {
    pub org_id: OrgId,
    pub cluster_id: ClusterId,
    pub job_id: JobId,
}

/// Proof of one delivery, needed to extend or acknowledge it. Each delivery of a message
/// gets a new receipt; only the latest one is sure to act on the message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Receipt(pub String);

/// A message handed to a consumer, invisible to others until its lease lapses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub message: JobMessage,
    pub receipt: Receipt,
    /// How many times this message has been delivered, this delivery included (1 on the
    /// first). More than 1 means an earlier lease lapsed.
    pub receive_count: u32,
}

/// A message that was delivered [`Queue::max_receives`] times without being
/// acknowledged, taken from the shared dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub message: JobMessage,
    pub receipt: Receipt,
    /// How many leases lapsed before the message was dead-lettered.
    pub deliveries: u32,
}

impl DeadLetter {
    /// The reason the job is marked FAILED with.
    pub fn failure_reason(&self) -> String {
        format!(
            "lease lapsed {} times: the agent never finished the job",
            self.deliveries
        )
    }
}

/// The longest lease one call may ask for: SQS's limit on a visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// The longest a receive may wait for a message: SQS's limit on a long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// Per-cluster job queues with leases and a shared dead-letter queue.
///
/// Errors: an operation on a queue that does not exist (never created, or deleted) is
/// [`crate::Error::NotFound`]; extending a lease that is no longer held may be
/// [`crate::Error::Conflict`] (SQS and the embedded queue say so; moto does not).
/// Durations are rounded up to whole seconds, SQS's unit.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Creates the cluster's queue, wired to the dead-letter queue. Idempotent: calling
    /// it again returns the same reference and keeps the queued messages.
    async fn create_queue(&self, cluster: ClusterId) -> Result<QueueRef>;

    /// The reference of an existing queue; [`crate::Error::NotFound`] if there is none.
    async fn queue(&self, cluster: ClusterId) -> Result<QueueRef>;

    /// Deletes the queue and every message in it. Deleting an absent queue is not an
    /// error, so a half-done cluster deletion can simply be retried.
    async fn delete_queue(&self, queue: &QueueRef) -> Result<()>;

    /// Enqueues a message, visible at once.
    async fn send(&self, queue: &QueueRef, message: &JobMessage) -> Result<()>;

    /// Takes one visible message, waiting up to `wait` (at most [`MAX_WAIT`]) for one to
    /// arrive, and hides it for `visibility` (the lease; at most [`MAX_VISIBILITY`]).
    /// `None` when none came in time. A message that already had `max_receives`
    /// deliveries is moved to the dead-letter queue here instead of being returned.
    async fn receive(&self, queue: &QueueRef, wait: Duration, visibility: Duration) -> Result<Option<Delivery>>;

    /// Renews the lease: the message stays hidden for `visibility` from now.
    async fn extend(&self, queue: &QueueRef, receipt: &Receipt, visibility: Duration) -> Result<()>;

    /// Removes the delivered message for good: the job's outcome is recorded.
    async fn ack(&self, queue: &QueueRef, receipt: &Receipt) -> Result<()>;

    /// Deliveries after which a message is dead-lettered.
    fn max_receives(&self) -> u32;

    /// Takes one message from the shared dead-letter queue, as [`Queue::receive`] does.
    async fn receive_dead_letter(&self, wait: Duration, visibility: Duration) -> Result<Option<DeadLetter>>;

    /// Removes a dead letter once its job is marked FAILED.
    async fn ack_dead_letter(&self, receipt: &Receipt) -> Result<()>;
}

/// Checks a lease or wait duration against its limit and returns it in whole seconds,
/// rounded up (a lease must never be shorter than asked for).
pub fn whole_seconds(field: &str, duration: Duration, max: Duration) -> Result<u32> {
    if duration > max {
        return Err(crate::Error::invalid(
            field,
            format!("{duration:?} exceeds the limit of {max:?}"),
        ));
    }
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(secs).map_err(|_| crate::Error::invalid(field, format!("{duration:?} is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds_within_the_limit() {
        assert_eq!(whole_seconds("wait", Duration::ZERO, MAX_WAIT).unwrap(), 0);
        assert_eq!(whole_seconds("wait", Duration::from_millis(1), MAX_WAIT).unwrap(), 1);
        assert_eq!(whole_seconds("wait", Duration::from_millis(1500), MAX_WAIT).unwrap(), 2);
        assert_eq!(whole_seconds("wait", MAX_WAIT, MAX_WAIT).unwrap(), 20);
        let err = whole_seconds("wait", Duration::from_secs(21), MAX_WAIT).unwrap_err();
        assert!(err.to_string().starts_with("invalid wait:"), "{err}");
    }

    #[test]
    fn messages_are_camel_case_json_and_name_the_reason_for_failure() {
        let msg = JobMessage {
            org_id: OrgId::new(),
            cluster_id: ClusterId::new(),
            job_id: JobId::new(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["jobId"], msg.job_id.to_string());
        assert_eq!(json["clusterId"], msg.cluster_id.to_string());
        assert_eq!(serde_json::from_value::<JobMessage>(json).unwrap(), msg);
        let dead = DeadLetter {
            message: msg,
            receipt: Receipt("r".into()),
            deliveries: 3,
        };
        assert!(
            dead.failure_reason().starts_with("lease lapsed 3 times"),
            "{}",
            dead.failure_reason()
        );
    }
}
