//! Repository maintenance: reclaiming the storage of deleted recovery points.
//!
//! Deleting a point removes what only it names (its archive manifest and index, its
//! volume snapshots in the repository), but the packs it shared with other points stay:
//! each cluster's resource archive store and volume repository in a destination are
//! deduplicated across that cluster's points. A maintenance job collects what no
//! remaining point needs, in two phases separated by a grace period (docs/data-model.md,
//! "What deletes what"), so one repository needs two runs to free a deleted point's data:
//! one soon after the deletions, one once the grace period has passed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, DestinationId, JobId, OrgId};

/// How long after a point's deletion its repository's maintenance runs: the deletions
/// of one retention sweep end up in one run.
pub const SETTLE: Duration = Duration::from_secs(10 * 60);
/// How long after a failed maintenance it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60 * 60);
/// The grace period unless the deployment sets one (`ARCA_GC_GRACE_SECONDS`): longer
/// than any backup's final check against gc and than clock skew between machines.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// One cluster's repositories (resource archive store and volume repository) in one
/// destination: what a maintenance job works on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryKey {
    pub destination_id: DestinationId,
    /// The cluster whose prefix the repositories lie under (possibly deleted since).
    pub cluster_id: ClusterId,
}

impl std::fmt::Display for RepositoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "repositories of cluster {} in destination {}",
            self.cluster_id, self.destination_id
        )
    }
}

/// What a maintenance job is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWork {
    pub repository: RepositoryKey,
    /// Time between condemning data and deleting it.
    pub grace_seconds: u64,
}

/// What a maintenance job did, as the agent reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceResult {
    /// Bytes deleted from the destination by this run (packs of both repositories).
    pub bytes_freed: u64,
    pub packs_deleted: u64,
    /// Data condemned by this or an earlier run and deleted at a later one, once the
    /// grace period has passed: the control plane schedules that run.
    pub markers_pending: u64,
}

/// The maintenance state of one [`RepositoryKey`]: when it is due, what it freed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryUpkeep {
    pub org_id: OrgId,
    pub repository: RepositoryKey,
    /// When the retention sweep should look at it next (derived from the fields below,
    /// kept for the due-time index); `None`: nothing to reclaim.
    pub due_at: Option<DateTime<Utc>>,
    /// The first deletion since the last job was issued.
    pub dirty_since: Option<DateTime<Utc>>,
    /// When condemned data can be swept, or a failed run is tried again.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The maintenance job issued and not yet ended, and when it was issued.
    pub job_id: Option<JobId>,
    pub issued_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<JobId>,
    /// Why the last run failed, if it did.
    pub last_error: Option<String>,
    pub bytes_freed_last: u64,
    pub bytes_freed_total: u64,
    pub markers_pending: u64,
    /// Set while the repositories' cluster is deleted and no agent of the org is ACTIVE
    /// to delete its expired points or run this maintenance: an admin's
    /// `arca destinations purge` does it, or the next agent to connect.
    #[serde(default)]
    pub awaiting_agent: Option<AwaitingAgent>,
    /// When an admin's purge of the whole cluster prefix began (its points DELETING, the
    /// CLI deleting the objects); cleared by its completion, which removes this record.
    #[serde(default)]
    pub purge_begun_at: Option<DateTime<Utc>>,
    /// The newest archive key generation of the points deleted here: the repositories a
    /// deleted cluster may have left under each key up to it are collected.
    #[serde(default = "first_key_generation")]
    pub latest_key_generation: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// Work on a deleted cluster's repositories that no agent can do (see
/// [`RepositoryUpkeep::awaiting_agent`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwaitingAgent {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Expired points of the cluster in this destination waiting for their deletion, as
    /// the last retention sweep counted them.
    pub expired_points: u64,
    /// The command that does it without an agent, with the user's credentials.
    pub action: String,
}

impl AwaitingAgent {
    pub fn new(repository: &RepositoryKey, expired_points: u64, now: DateTime<Utc>) -> Self {
        AwaitingAgent {
            since: now,
            expired_points,
            action: format!(
                "arca destinations purge {} --cluster {}",
                repository.destination_id, repository.cluster_id
            ),
        }
    }
}

/// A job in flight is looked at again after this long: if it ended without its end being
/// recorded (the store failed at that moment), the repository is not forgotten.
pub const WATCHDOG: Duration = Duration::from_secs(6 * 60 * 60);

fn first_key_generation() -> u32 {
    1
}

impl RepositoryUpkeep {
    pub fn new(org_id: OrgId, repository: RepositoryKey, now: DateTime<Utc>) -> Self {
        RepositoryUpkeep {
            org_id,
            repository,
            due_at: None,
            dirty_since: None,
            next_run_at: None,
            job_id: None,
            issued_at: None,
            last_run_at: None,
            last_job_id: None,
            last_error: None,
            bytes_freed_last: 0,
            bytes_freed_total: 0,
            markers_pending: 0,
            awaiting_agent: None,
            purge_begun_at: None,
            latest_key_generation: 1,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// A point's data in these repositories was deleted: run within [`SETTLE`].
    pub fn points_deleted(&mut self, now: DateTime<Utc>) {
        self.dirty_since.get_or_insert(now);
        self.touch(now);
    }

    /// A maintenance job was issued: it covers every deletion until now.
    pub fn issued(&mut self, job: JobId, now: DateTime<Utc>) {
        self.awaiting_agent = None;
        self.job_id = Some(job);
        self.issued_at = Some(now);
        self.dirty_since = None;
        self.next_run_at = None;
        self.touch(now);
    }

    /// Its job `job` ended: with what it did, or failed with `error` (tried again after
    /// [`RETRY_AFTER`]). Condemned data left pending brings the next run a little after
    /// the grace period; deletions meanwhile make it due sooner.
    pub fn ran(&mut self, job: JobId, result: Result<&MaintenanceResult, &str>, grace: Duration, now: DateTime<Utc>) {
        if self.job_id == Some(job) {
            self.job_id = None;
            self.issued_at = None;
        }
        self.last_run_at = Some(now);
        self.last_job_id = Some(job);
        match result {
            Ok(r) => {
                self.last_error = None;
                self.bytes_freed_last = r.bytes_freed;
                self.bytes_freed_total = self.bytes_freed_total.saturating_add(r.bytes_freed);
                self.markers_pending = r.markers_pending;
                self.next_run_at = (r.markers_pending > 0).then(|| now + grace + Duration::from_secs(60));
            }
            Err(error) => {
                self.last_error = Some(crate::model::cut_to_bytes(error.to_string(), 2048));
                self.next_run_at = Some(now + RETRY_AFTER);
            }
        }
        self.touch(now);
    }

    /// Whether the last look found no agent for it (`expired_points` waiting, counted
    /// by the retention sweep; `None`: the count is not known here and stays).
    pub fn no_agent(&mut self, expired_points: Option<u64>, now: DateTime<Utc>) {
        match &mut self.awaiting_agent {
            Some(a) => {
                if let Some(n) = expired_points {
                    a.expired_points = n;
                }
            }
            None => self.awaiting_agent = Some(AwaitingAgent::new(&self.repository, expired_points.unwrap_or(0), now)),
        }
        self.updated_at = now;
    }

    /// Whether a job is in flight (issued, its end not recorded).
    pub fn in_flight(&self) -> bool {
        self.job_id.is_some()
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.due_at = match self.issued_at {
            Some(issued) if self.job_id.is_some() => Some(issued + WATCHDOG),
            _ => [self.dirty_since.map(|d| d + SETTLE), self.next_run_at]
                .into_iter()
                .flatten()
                .min(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upkeep() -> (RepositoryUpkeep, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").unwrap().to_utc();
        let key = RepositoryKey {
            destination_id: DestinationId::new(),
            cluster_id: ClusterId::new(),
        };
        (RepositoryUpkeep::new(OrgId::new(), key, now), now)
    }

    #[test]
    fn deletions_make_it_due_and_a_pending_mark_brings_a_second_run_after_the_grace() {
        let (mut u, now) = upkeep();
        assert_eq!(u.due_at, None);
        u.points_deleted(now);
        assert_eq!(u.due_at, Some(now + SETTLE));
        // A later deletion does not push the run back.
        u.points_deleted(now + Duration::from_secs(300));
        assert_eq!(u.due_at, Some(now + SETTLE));

        let job = JobId::new();
        u.issued(job, now + SETTLE);
        assert_eq!(u.job_id, Some(job));
        assert_eq!(
            u.due_at,
            Some(now + SETTLE + WATCHDOG),
            "a job in flight is only watched"
        );
        let grace = Duration::from_secs(3600);
        let at = now + SETTLE + Duration::from_secs(60);
        let marked = MaintenanceResult {
            bytes_freed: 0,
            packs_deleted: 0,
            markers_pending: 1,
        };
        u.ran(job, Ok(&marked), grace, at);
        assert_eq!(u.job_id, None);
        assert_eq!(u.due_at, Some(at + grace + Duration::from_secs(60)));

        let second = JobId::new();
        u.issued(second, at + grace);
        let swept = MaintenanceResult {
            bytes_freed: 5000,
            packs_deleted: 2,
            markers_pending: 0,
        };
        u.ran(second, Ok(&swept), grace, at + grace);
        assert_eq!(u.due_at, None, "nothing left to reclaim");
        assert_eq!((u.bytes_freed_last, u.bytes_freed_total), (5000, 5000));
    }

    #[test]
    fn a_failed_run_is_retried_and_deletions_during_a_run_are_not_lost() {
        let (mut u, now) = upkeep();
        let job = JobId::new();
        u.issued(job, now);
        u.points_deleted(now + Duration::from_secs(5));
        u.ran(job, Err("AccessDenied"), DEFAULT_GRACE, now + Duration::from_secs(10));
        assert_eq!(u.last_error.as_deref(), Some("AccessDenied"));
        assert_eq!(
            u.due_at,
            Some(now + Duration::from_secs(5) + SETTLE),
            "the deletion during the run keeps it due soon"
        );
        // Without a deletion meanwhile, a failure is tried again after RETRY_AFTER.
        let again = JobId::new();
        let at = now + Duration::from_secs(700);
        u.issued(again, at);
        u.ran(again, Err("throttled"), DEFAULT_GRACE, at);
        assert_eq!(u.due_at, Some(at + RETRY_AFTER));
    }
}
