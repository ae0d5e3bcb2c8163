//! The [`Queue`] port in process: what SQS does for the AWS deployment, for
//! single-machine mode and fast tests.
//!
//! Same semantics as SQS with a RedrivePolicy: per-cluster queues, visibility timeouts
//! (leases) in whole seconds, receive counts, dead-lettering into one shared queue on the
//! receive after `max_receives` deliveries, long polls that wake on send. Messages live
//! in memory: a restart loses them, which single-machine mode accepts because the
//! dispatcher re-derives pending jobs from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arca_core::ids::ClusterId;
use arca_core::model::agent::QueueRef;
use arca_core::ports::queue::{
    DeadLetter, Delivery, JobMessage, MAX_VISIBILITY, MAX_WAIT, Queue, Receipt, whole_seconds,
};
use arca_core::{Error, Result};
use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

struct Message {
    seq: u64,
    body: JobMessage,
    receive_count: u32,
    visible_at: Instant,
    /// The receipt of the latest delivery; only it acts on the message.
    receipt: Option<Receipt>,
}

/// One queue's messages in send order, and the long-pollers waiting on it.
#[derive(Default)]
struct Messages {
    list: Vec<Message>,
    arrived: Arc<Notify>,
}

impl Messages {
    fn push(&mut self, message: Message) {
        self.list.push(message);
        self.arrived.notify_waiters();
    }

    /// Leases the first visible message, first moving any that already had
    /// `max_receives` deliveries into `dead` (as SQS does on receive).
    fn take(
        &mut self,
        now: Instant,
        lease: Duration,
        max_receives: Option<u32>,
        dead: &mut Vec<Message>,
    ) -> Option<(JobMessage, Receipt, u32)> {
        loop {
            let i = self.list.iter().position(|m| m.visible_at <= now)?;
            if max_receives.is_some_and(|max| self.list[i].receive_count >= max) {
                let mut m = self.list.remove(i);
                m.receipt = None;
                m.visible_at = now;
                dead.push(m);
                continue;
            }
            let m = &mut self.list[i];
            m.receive_count += 1;
            m.visible_at = now + lease;
            let receipt = Receipt(format!("{}.{}", m.seq, m.receive_count));
            m.receipt = Some(receipt.clone());
            return Some((m.body.clone(), receipt, m.receive_count));
        }
    }

    fn next_visible(&self) -> Option<Instant> {
        self.list.iter().map(|m| m.visible_at).min()
    }

    fn extend(&mut self, receipt: &Receipt, now: Instant, lease: Duration) -> Result<()> {
        let m = self
            .list
            .iter_mut()
            .find(|m| m.receipt.as_ref() == Some(receipt))
            .ok_or_else(|| Error::conflict("lease lost: the message was acknowledged or delivered again"))?;
        // SQS refuses to extend a message that is no longer in flight (MessageNotInflight).
        if m.visible_at <= now {
            return Err(Error::conflict("lease lost: it lapsed before it was extended"));
        }
        m.visible_at = now + lease;
        Ok(())
    }

    /// Removes the message of `receipt`; a receipt that is not the latest is ignored, as
    /// SQS may ignore it (the lease passed to another consumer, who will ack it).
    fn ack(&mut self, receipt: &Receipt) {
        self.list.retain(|m| m.receipt.as_ref() != Some(receipt));
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<ClusterId, Messages>,
    dead: Messages,
    next_seq: u64,
}

/// Which queue a receive reads: a cluster's, or the shared dead-letter queue.
#[derive(Clone, Copy)]
enum Source {
    Cluster(ClusterId),
    DeadLetters,
}

/// In-process job queues with leases and a shared dead-letter queue.
pub struct EmbeddedQueue {
    state: Mutex<State>,
    max_receives: u32,
}

impl EmbeddedQueue {
    /// A message is dead-lettered on the receive after `max_receives` deliveries
    /// (at least 1).
    pub fn new(max_receives: u32) -> Self {
        EmbeddedQueue {
            state: Mutex::new(State::default()),
            max_receives: max_receives.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock with the state half-changed, so the
        // state behind a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn address(cluster: ClusterId) -> String {
        format!("embedded:{cluster}")
    }

    fn missing(queue: &QueueRef) -> Error {
        Error::not_found(format!("queue of cluster {}", queue.cluster_id))
    }

    async fn take(
        &self,
        source: Source,
        wait: Duration,
        lease: Duration,
    ) -> Result<Option<(JobMessage, Receipt, u32)>> {
        let wait = Duration::from_secs(whole_seconds("wait", wait, MAX_WAIT)?.into());
        let lease = Duration::from_secs(whole_seconds("visibility", lease, MAX_VISIBILITY)?.into());
        let deadline = Instant::now() + wait;
        loop {
            let arrived = {
                let state = self.lock();
                match source {
                    Source::Cluster(c) => state.queues.get(&c).map(|q| q.arrived.clone()),
                    Source::DeadLetters => Some(state.dead.arrived.clone()),
                }
            };
            let Some(arrived) = arrived else {
                return Err(Error::not_found("queue"));
            };
            // Registered before looking, so a send between the look and the wait wakes us.
            let notified = arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let now = Instant::now();
            let next_visible = {
                let mut guard = self.lock();
                let state = &mut *guard;
                let mut moved = Vec::new();
                let (queue, max) = match source {
                    Source::Cluster(c) => match state.queues.get_mut(&c) {
                        Some(q) => (q, Some(self.max_receives)),
                        None => return Err(Error::not_found("queue")),
                    },
                    Source::DeadLetters => (&mut state.dead, None),
                };
                let taken = queue.take(now, lease, max, &mut moved);
                let next_visible = queue.next_visible();
                for m in moved {
                    state.dead.push(m);
                }
                if taken.is_some() {
                    return Ok(taken);
                }
                next_visible
            };
            if now >= deadline {
                return Ok(None);
            }
            let until = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    fn with_queue<T>(&self, queue: &QueueRef, f: impl FnOnce(&mut Messages) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let messages = state
            .queues
            .get_mut(&queue.cluster_id)
            .ok_or_else(|| Self::missing(queue))?;
        f(messages)
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn create_queue(&self, cluster: ClusterId) -> Result<QueueRef> {
        self.lock().queues.entry(cluster).or_default();
        Ok(QueueRef {
            cluster_id: cluster,
            address: Self::address(cluster),
        })
    }

    async fn queue(&self, cluster: ClusterId) -> Result<QueueRef> {
        if self.lock().queues.contains_key(&cluster) {
            Ok(QueueRef {
                cluster_id: cluster,
                address: Self::address(cluster),
            })
        } else {
            Err(Error::not_found(format!("queue of cluster {cluster}")))
        }
    }

    async fn delete_queue(&self, queue: &QueueRef) -> Result<()> {
        if let Some(deleted) = self.lock().queues.remove(&queue.cluster_id) {
            // Long-pollers of the deleted queue wake and report it gone.
            deleted.arrived.notify_waiters();
        }
        Ok(())
    }

    async fn send(&self, queue: &QueueRef, message: &JobMessage) -> Result<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let messages = state
            .queues
            .get_mut(&queue.cluster_id)
            .ok_or_else(|| Self::missing(queue))?;
        state.next_seq += 1;
        messages.push(Message {
            seq: state.next_seq,
            body: message.clone(),
            receive_count: 0,
            visible_at: Instant::now(),
            receipt: None,
        });
        Ok(())
    }

    async fn receive(&self, queue: &QueueRef, wait: Duration, visibility: Duration) -> Result<Option<Delivery>> {
        let taken = self
            .take(Source::Cluster(queue.cluster_id), wait, visibility)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Self::missing(queue),
                other => other,
            })?;
        Ok(taken.map(|(message, receipt, receive_count)| Delivery {
            message,
            receipt,
            receive_count,
        }))
    }

    async fn extend(&self, queue: &QueueRef, receipt: &Receipt, visibility: Duration) -> Result<()> {
        let lease = Duration::from_secs(whole_seconds("visibility", visibility, MAX_VISIBILITY)?.into());
        self.with_queue(queue, |q| q.extend(receipt, Instant::now(), lease))
    }

    async fn ack(&self, queue: &QueueRef, receipt: &Receipt) -> Result<()> {
        self.with_queue(queue, |q| {
            q.ack(receipt);
            Ok(())
        })
    }

    fn max_receives(&self) -> u32 {
        self.max_receives
    }

    async fn receive_dead_letter(&self, wait: Duration, visibility: Duration) -> Result<Option<DeadLetter>> {
        let taken = self.take(Source::DeadLetters, wait, visibility).await?;
        Ok(taken.map(|(message, receipt, _)| DeadLetter {
            message,
            receipt,
            deliveries: self.max_receives,
        }))
    }

    async fn ack_dead_letter(&self, receipt: &Receipt) -> Result<()> {
        self.lock().dead.ack(receipt);
        Ok(())
    }
}
