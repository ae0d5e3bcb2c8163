//! The [`RdsWorkQueue`] port in process: what SQS `DelaySeconds` does for the AWS
//! deployment. Messages wait in memory until their time (read from a [`Clock`], so tests
//! move time instead of sleeping); the single-machine loop takes the due ones with
//! [`EmbeddedRdsWorkQueue::due`] and runs `ControlPlane::rds_step` or
//! `ControlPlane::eks_recreation_step` for each. Lost on restart: the server re-sends the
//! unfinished RDS jobs and EKS re-creations at start-up.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arca_core::Result;
use arca_core::ports::Clock;
use arca_core::ports::rds::{AwsWorkMessage, MAX_DELAY, RdsWorkQueue};
use async_trait::async_trait;

/// Delayed work messages (RDS jobs, EKS re-creations) in memory.
pub struct EmbeddedRdsWorkQueue {
    clock: Arc<dyn Clock>,
    waiting: Mutex<Vec<(SystemTime, AwsWorkMessage)>>,
}

impl EmbeddedRdsWorkQueue {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        EmbeddedRdsWorkQueue {
            clock,
            waiting: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(SystemTime, AwsWorkMessage)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The messages whose delay has passed, oldest due first; each is returned once.
    pub fn due(&self) -> Vec<AwsWorkMessage> {
        let now = self.clock.now();
        let mut waiting = self.lock();
        waiting.sort_by_key(|(at, _)| *at);
        let split = waiting.iter().position(|(at, _)| *at > now).unwrap_or(waiting.len());
        waiting.drain(..split).map(|(_, m)| m).collect()
    }

    /// When the next message falls due.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.lock().iter().map(|(at, _)| *at).min()
    }
}

#[async_trait]
impl RdsWorkQueue for EmbeddedRdsWorkQueue {
    async fn send(&self, message: &AwsWorkMessage, delay: Duration) -> Result<()> {
        let at = self.clock.now() + delay.min(MAX_DELAY);
        self.lock().push((at, message.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use arca_core::ids::{EksRecreationId, JobId, OrgId};
    use arca_core::ports::rds::{EksRecreationWorkMessage, RdsWorkMessage};

    use super::*;

    struct Moving(StdMutex<SystemTime>);
    impl Clock for Moving {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    #[tokio::test]
    async fn messages_fall_due_after_their_delay() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = Arc::new(Moving(StdMutex::new(t0)));
        let q = EmbeddedRdsWorkQueue::new(clock.clone());
        let m = |_: u8| -> AwsWorkMessage {
            RdsWorkMessage {
                org_id: OrgId::new(),
                job_id: JobId::new(),
            }
            .into()
        };
        let now = m(0);
        let later: AwsWorkMessage = EksRecreationWorkMessage {
            org_id: OrgId::new(),
            eks_recreation_id: EksRecreationId::new(),
        }
        .into();
        q.send(&later, Duration::from_secs(60)).await.unwrap();
        q.send(&now, Duration::ZERO).await.unwrap();
        assert_eq!(q.due(), vec![now]);
        assert!(q.due().is_empty(), "each message once");
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(60)));
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(61);
        assert_eq!(q.due(), vec![later]);
        q.send(&m(2), Duration::from_secs(3600)).await.unwrap();
        assert_eq!(
            q.next_due(),
            Some(t0 + Duration::from_secs(61) + MAX_DELAY),
            "capped like SQS"
        );
    }
}
