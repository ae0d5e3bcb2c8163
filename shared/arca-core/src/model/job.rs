//! Jobs and their state machine. Every state change in Arca goes through
//! [`JobState::transition`], so an illegal move (a finished job starting again, a
//! cancel that resurrects a failed job) is rejected in one place.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, ClusterId, JobId, OrgId, RecoveryPointId, RestoreId};
use crate::model::policy::Retention;
use crate::{Error, Result};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobType {
    K8sBackup,
    K8sCopy,
    K8sRestore,
    DeleteBackup,
    /// Garbage collection of one cluster's repositories in one destination, after
    /// deletions ([`crate::model::maintenance`]).
    RepositoryMaintenance,
    Inventory,
    RdsBackup,
    RdsCopy,
    RdsRestore,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Partial,
    Failed,
    Skipped,
    Cancelling,
    Canceled,
}

impl JobState {
    /// A terminal state is final: nothing moves a job out of it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Partial | JobState::Failed | JobState::Skipped | JobState::Canceled
        )
    }

    /// Whether `self -> to` is a legal move.
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::*;
        match self {
            // Not started yet: it may start, be skipped (e.g. the previous run is still
            // going), fail to be handed out, or be canceled outright (nothing to stop).
            Pending => matches!(to, Running | Skipped | Failed | Canceled),
            Running => matches!(to, Completed | Partial | Failed | Cancelling),
            // The agent may finish before it sees the cancel request; its outcome stands.
            Cancelling => matches!(to, Canceled | Completed | Partial | Failed),
            Completed | Partial | Failed | Skipped | Canceled => false,
        }
    }

    /// Moves to `to`, or explains why that move is illegal.
    pub fn transition(self, to: JobState) -> Result<JobState> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(Error::conflict_of(
                crate::error::ConflictKind::IllegalJobTransition,
                format!("a job cannot go from {self:?} to {to:?}"),
            ))
        }
    }
}

/// How many log lines a job keeps; older lines are dropped (and counted).
pub const MAX_ACTIVITY_LINES: usize = 200;
/// Longest log line kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_LINE_BYTES: usize = 1024;
/// Longest reason kept, in bytes.
pub const MAX_REASON_BYTES: usize = 2048;
/// The most log bytes a job keeps: with the reason and everything else a job holds, the
/// item stays far below DynamoDB's 400 KB whatever agents send.
pub const MAX_ACTIVITY_BYTES: usize = 128 * 1024;

pub use super::cut_to_bytes;

/// Why a job was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobTrigger {
    /// By a policy schedule.
    Scheduled,
    /// By a user (run now, restore).
    Manual,
}

/// Work counters reported by the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCounters {
    pub resources: u64,
    pub snapshots_attempted: u64,
    pub snapshots_completed: u64,
    pub copies_attempted: u64,
    pub copies_completed: u64,
    pub errors: u64,
    pub warnings: u64,
}

/// Progress of the data movement, where there is any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    pub estimated_bytes: u64,
    pub transferred_bytes: u64,
    pub total_pvs: u64,
    pub completed_pvs: u64,
    pub failed_pvs: u64,
}

/// One timestamped line of a job's activity log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityLine {
    pub at: DateTime<Utc>,
    pub message: String,
}
/// A unit of work. Its id is a ULID minted at creation, so `JOB#<ulid>` keys list
/// jobs in time order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: JobId,
    pub org_id: OrgId,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub state: JobState,
    /// Why the job was SKIPPED, FAILED or CANCELED.
    pub reason: Option<String>,
    pub trigger: JobTrigger,
    pub cluster_id: Option<ClusterId>,
    pub definition_id: Option<BackupDefinitionId>,
    pub recovery_point_id: Option<RecoveryPointId>,
    pub restore_id: Option<RestoreId>,
    /// For backups: how long the resulting recovery point is kept.
    pub retention: Option<Retention>,
    /// For scheduled backups: the policy schedule row that fired (its retention group).
    #[serde(default)]
    pub rule: Option<u32>,
    /// For backups: when the resulting recovery point expires (the retention, capped by
    /// the plan, from the moment the job was dispatched).
    #[serde(default)]
    pub recovery_point_expires_at: Option<DateTime<Utc>>,
    pub counters: JobCounters,
    pub progress: JobProgress,
    pub activity: Vec<ActivityLine>,
    /// Lines dropped from the head of `activity` to keep it bounded.
    #[serde(default)]
    pub activity_dropped: u64,
    /// RDS jobs: the account, region and databases, and where each one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rds: Option<crate::model::rds::RdsJobWork>,
    /// REPOSITORY_MAINTENANCE jobs: which repositories, with which grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::model::maintenance::MaintenanceWork>,
    /// K8S_BACKUP jobs of a linked cluster: the EC2 snapshots taken while it ran, between
    /// its hooks (the point it makes keeps them; a failed job's are deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_snapshots: Option<crate::model::cloud::ebs::EbsSnapshotsTaken>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl Job {
    /// A new PENDING job of `job_type`, created at `now`.
    pub fn pending(org_id: OrgId, job_type: JobType, trigger: JobTrigger, now: DateTime<Utc>) -> Self {
        Job {
            id: JobId::at(now.into()),
            org_id,
            job_type,
            state: JobState::Pending,
            reason: None,
            trigger,
            cluster_id: None,
            definition_id: None,
            recovery_point_id: None,
            restore_id: None,
            retention: None,
            rule: None,
            recovery_point_expires_at: None,
            counters: JobCounters::default(),
            progress: JobProgress::default(),
            activity: Vec::new(),
            activity_dropped: 0,
            rds: None,
            maintenance: None,
            ebs_snapshots: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
            version: 0,
        }
    }

    /// Moves the job through the state machine, stamping start and end times.
    pub fn transition(&mut self, to: JobState, reason: Option<String>, now: DateTime<Utc>) -> Result<()> {
        self.state = self.state.transition(to)?;
        if to == JobState::Running && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if to.is_terminal() {
            self.ended_at = Some(now);
        }
        if let Some(reason) = reason {
            self.set_reason(reason);
        }
        self.updated_at = now;
        Ok(())
    }

    /// What a cancel request does: a job not yet started is canceled outright, a
    /// running one is asked to stop (CANCELLING), anything else refuses.
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<()> {
        let to = match self.state {
            JobState::Pending => JobState::Canceled,
            _ => JobState::Cancelling,
        };
        self.transition(to, Some("canceled by a user".to_string()), now)?;
        self.log(now, "cancel requested");
        Ok(())
    }

    /// The job's reason, cut to [`MAX_REASON_BYTES`].
    pub fn set_reason(&mut self, reason: String) {
        self.reason = Some(cut_to_bytes(reason, MAX_REASON_BYTES));
    }

    /// Appends a log line (cut to [`MAX_LINE_BYTES`]), dropping the oldest beyond
    /// [`MAX_ACTIVITY_LINES`] or [`MAX_ACTIVITY_BYTES`] (and counting them).
    pub fn log(&mut self, at: DateTime<Utc>, message: impl Into<String>) {
        let message = cut_to_bytes(message.into(), MAX_LINE_BYTES);
        self.activity.push(ActivityLine { at, message });
        let mut bytes: usize = self.activity.iter().map(|l| l.message.len()).sum();
        let mut excess = self.activity.len().saturating_sub(MAX_ACTIVITY_LINES);
        for line in &self.activity[..excess] {
            bytes -= line.message.len();
        }
        while bytes > MAX_ACTIVITY_BYTES && excess < self.activity.len() - 1 {
            bytes -= self.activity[excess].message.len();
            excess += 1;
        }
        if excess > 0 {
            self.activity.drain(..excess);
            self.activity_dropped += excess as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    const ALL: [JobState; 8] = [
        Pending, Running, Completed, Partial, Failed, Skipped, Cancelling, Canceled,
    ];

    #[test]
    fn the_happy_paths_are_legal() {
        assert_eq!(Pending.transition(Running).unwrap(), Running);
        assert_eq!(Running.transition(Completed).unwrap(), Completed);
        assert_eq!(Running.transition(Partial).unwrap(), Partial);
        assert_eq!(Pending.transition(Skipped).unwrap(), Skipped);
        assert_eq!(Running.transition(Cancelling).unwrap(), Cancelling);
        assert_eq!(Cancelling.transition(Canceled).unwrap(), Canceled);
    }

    #[test]
    fn terminal_states_never_move() {
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(from.transition(to).is_err(), "{from:?} -> {to:?} must be rejected");
            }
        }
    }

    #[test]
    fn a_pending_job_cannot_complete_without_running() {
        let err = Pending.transition(Completed).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }));
        assert!(err.to_string().contains("Pending to Completed"), "{err}");
    }

    #[test]
    fn states_serialise_as_the_api_spells_them() {
        assert_eq!(serde_json::to_string(&Cancelling).unwrap(), "\"CANCELLING\"");
        assert_eq!(serde_json::to_string(&JobType::K8sBackup).unwrap(), "\"K8S_BACKUP\"");
        assert_eq!(serde_json::to_string(&JobType::RdsRestore).unwrap(), "\"RDS_RESTORE\"");
    }

    fn job() -> Job {
        Job::pending(
            OrgId::new(),
            JobType::K8sBackup,
            JobTrigger::Manual,
            DateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn cancel_stops_pending_jobs_and_asks_running_ones() {
        let t = DateTime::UNIX_EPOCH + chrono::Duration::seconds(5);
        let mut pending = job();
        pending.cancel(t).unwrap();
        assert_eq!(pending.state, Canceled);
        assert_eq!(pending.ended_at, Some(t));
        let mut running = job();
        running.transition(Running, None, t).unwrap();
        assert_eq!(running.started_at, Some(t));
        running.cancel(t).unwrap();
        assert_eq!(running.state, Cancelling);
        assert_eq!(running.ended_at, None);
        assert!(
            running.cancel(t).is_err(),
            "a second cancel is refused by the state machine"
        );
        let mut done = job();
        done.transition(Skipped, Some("previous run still going".into()), t)
            .unwrap();
        assert_eq!(done.reason.as_deref(), Some("previous run still going"));
        assert!(matches!(done.cancel(t), Err(Error::Conflict { .. })));
    }

    #[test]
    fn the_activity_log_is_bounded() {
        let mut j = job();
        for i in 0..(MAX_ACTIVITY_LINES + 5) {
            j.log(DateTime::UNIX_EPOCH, format!("line {i}"));
        }
        assert_eq!(j.activity.len(), MAX_ACTIVITY_LINES);
        assert_eq!(j.activity_dropped, 5);
        assert_eq!(j.activity[0].message, "line 5");
        let json = serde_json::to_value(&j).unwrap();
        assert_eq!(json["type"], "K8S_BACKUP");
        assert_eq!(json["state"], "PENDING");
    }

    #[test]
    fn whatever_agents_send_a_job_stays_far_below_an_items_400_kb() {
        let mut j = job();
        // Four-byte characters: a bound in characters would let these through four-fold.
        let huge = "𝄞".repeat(100_000);
        j.transition(Running, None, DateTime::UNIX_EPOCH).unwrap();
        for _ in 0..(MAX_ACTIVITY_LINES * 3) {
            j.log(DateTime::UNIX_EPOCH, huge.clone());
        }
        j.transition(Failed, Some(huge.clone()), DateTime::UNIX_EPOCH).unwrap();
        let reason = j.reason.clone().unwrap();
        assert!(
            reason.len() <= MAX_REASON_BYTES && reason.ends_with('…'),
            "{}",
            reason.len()
        );
        assert!(j.activity.iter().all(|l| l.message.len() <= MAX_LINE_BYTES));
        let kept: usize = j.activity.iter().map(|l| l.message.len()).sum();
        assert!(kept <= MAX_ACTIVITY_BYTES, "{kept}");
        assert_eq!(j.activity_dropped as usize + j.activity.len(), MAX_ACTIVITY_LINES * 3);
        let bytes = serde_json::to_vec(&j).unwrap().len();
        assert!(bytes < 200_000, "{bytes} bytes");
        // Short lines are kept whole, the newest last.
        j.log(DateTime::UNIX_EPOCH, "done");
        assert_eq!(j.activity.last().map(|l| l.message.as_str()), Some("done"));
        assert_eq!(cut_to_bytes("short".into(), 10), "short");
        assert_eq!(cut_to_bytes("abcdef".into(), 5), "ab…");
    }
}
