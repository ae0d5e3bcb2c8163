//! The agent protocol's data: what the control plane keeps about a cluster's agent, and
//! what crosses the wire between the agent and the API (`/v1/agent/...`).
//!
//! The agent's liveness, session and facts live in their own item ([`AgentState`], SK
//! `AGENT#<clusterId>`), not in the cluster item: heartbeats arrive every 30 s, and if
//! they bumped the cluster's version a user's edit (`If-Match`) would keep failing with
//! 412. The cluster item holds only what a user edits; reads join the two.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, ClusterId, JobId, OrgId};
use crate::model::cluster::{Capabilities, Inventory};
use crate::model::job::{Job, JobCounters, JobProgress, JobState};
use crate::model::recovery::RecoveryPoint;

/// Where a cluster's queue is: returned by [`Queue::create_queue`] and kept with the
/// cluster, so later calls need no lookup. `address` is the adapter's own locator (the
/// queue URL for SQS) and means nothing to other adapters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueRef {
    pub cluster_id: ClusterId,
    pub address: String,
}

/// What the control plane knows of a cluster's agent (one item per cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    /// The cluster's job queue, created at registration.
    pub queue: Option<QueueRef>,
    /// The current session: only the agent that connected last may act. `None` until the
    /// first connect.
    pub session_id: Option<String>,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub kubernetes_version: Option<String>,
    pub agent_version: Option<String>,
    pub node_count: Option<u32>,
    #[serde(default)]
    pub inventory: Inventory,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl AgentState {
    pub fn new(org_id: OrgId, cluster_id: ClusterId, queue: Option<QueueRef>, now: DateTime<Utc>) -> Self {
        AgentState {
            cluster_id,
            org_id,
            queue,
            session_id: None,
            connected_at: None,
            last_heartbeat_at: None,
            kubernetes_version: None,
            agent_version: None,
            node_count: None,
            inventory: Inventory::default(),
            capabilities: None,
            updated_at: now,
            version: 0,
        }
    }
}

/// The one unfinished (PENDING/RUNNING/CANCELLING) job of a backup definition. Created
/// with `NotExists` in the transaction that creates the job and deleted in the one that
/// ends it, so two dispatches racing for a definition cannot both create a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveJob {
    pub definition_id: BackupDefinitionId,
    pub org_id: OrgId,
    pub job_id: JobId,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

/// An authenticated agent: the cluster whose token it presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentPrincipal {
    pub org_id: OrgId,
    pub cluster_id: ClusterId,
}

/// What an agent says when it connects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// The answer to a connect: the session to present on every later call, and the timing
/// the agent should keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub session_id: String,
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub heartbeat_interval_seconds: u64,
    /// How long a poll waits for a job at most.
    pub poll_wait_seconds: u64,
    /// How long a job's lease lasts; the agent extends it well before.
    pub lease_seconds: u64,
}

/// A job handed to the agent by a poll.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentJob {
    pub job: Job,
    /// Opaque proof of this delivery: sent back with lease, progress and complete.
    pub lease_token: String,
    pub lease_seconds: u64,
    /// How many times the job was handed out (more than 1: an earlier lease lapsed).
    pub delivery: u32,
    /// For backups: what to back up.
    #[serde(default)]
    pub definition: Option<crate::model::backup::BackupDefinition>,
    /// For deletions and restores: the recovery point concerned.
    #[serde(default)]
    pub recovery_point: Option<RecoveryPoint>,
    /// For restores: the restore request (mapping, policy, selection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::model::restore::Restore>,
    /// For backups: the control plane takes EC2 snapshots of the EBS volumes behind the
    /// selected claims (the cluster is linked to an active AWS account), so the agent
    /// reports those claims instead of capturing them itself. False (and for an older
    /// control plane), EBS-backed claims go through CSI like any other.
    #[serde(default)]
    pub ebs_by_control_plane: bool,
    /// For restores of a point with EBS snapshots: those this cluster can create its
    /// claims' volumes from (`POST /v1/agent/jobs/{id}/ebs-volumes`), or why it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs: Option<crate::model::cloud::ebs::EbsRestoreSources>,
}

/// A lease renewal or progress report of a running job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRequest {
    pub lease_token: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    pub lease_token: String,
    #[serde(default)]
    pub counters: Option<JobCounters>,
    #[serde(default)]
    pub progress: Option<JobProgress>,
    /// Lines appended to the job's activity log.
    #[serde(default)]
    pub messages: Vec<String>,
}

/// What a backup produced, reported with its completion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    /// The key prefix of the recovery point inside its destination.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub resource_count: u64,
    #[serde(default)]
    pub pv_count: u64,
    #[serde(default)]
    pub snapshot_bytes: u64,
    #[serde(default)]
    pub copy_bytes: u64,
    /// Counts per kind and namespace, warnings and errors; absent from older agents.
    #[serde(flatten)]
    pub details: crate::model::recovery::BackupDetails,
    /// EBS volumes behind the selected PVs, for the control plane to snapshot (clusters
    /// linked to an AWS account, snapshot PV modes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ebs_volumes: Vec<crate::model::cloud::ebs::EbsVolumeRef>,
    /// The Object Lock every object of the point was written (or extended) with, when
    /// the job's access asked for one: what the point then records as its immutability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<crate::model::recovery::PointLock>,
    /// The destination bucket's Object Lock configuration, as the agent found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_lock: Option<crate::model::destination::BucketLock>,
}

/// The most EBS volumes one backup may ask the control plane to snapshot: as many as a
/// point records volumes ([`crate::model::recovery::MAX_VOLUMES`]).
pub const MAX_EBS_VOLUMES: usize = crate::model::recovery::MAX_VOLUMES;

impl BackupResult {
    /// What the control plane acts on from an agent's report, checked before it does:
    /// the EBS volumes it will snapshot in the linked account (bounded, each an EBS volume
    /// id, each once). The location is checked against the destination
    /// ([`crate::model::layout::check_reported_location`]).
    pub fn check(&self) -> crate::Result<()> {
        if self.ebs_volumes.len() > MAX_EBS_VOLUMES {
            return Err(crate::Error::invalid(
                "backup.ebsVolumes",
                format!(
                    "{} volumes: at most {MAX_EBS_VOLUMES} per backup",
                    self.ebs_volumes.len()
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in self.ebs_volumes.iter().enumerate() {
            if !crate::model::cloud::ebs::is_volume_id(&v.volume_id) {
                return Err(crate::Error::invalid(
                    format!("backup.ebsVolumes[{i}].volumeId"),
                    format!(
                        "{:?} is not an EBS volume id",
                        v.volume_id.chars().take(64).collect::<String>()
                    ),
                ));
            }
            if !seen.insert(v.volume_id.as_str()) {
                return Err(crate::Error::invalid(
                    format!("backup.ebsVolumes[{i}].volumeId"),
                    format!("{} is reported twice", v.volume_id),
                ));
            }
        }
        Ok(())
    }
}

/// One batch of a restore's per-object results (`POST /v1/agent/jobs/{id}/results`):
/// batch `seq` holds objects `seq * 100 ..`; sending a batch again replaces it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResultsBatch {
    pub lease_token: String,
    #[serde(default)]
    pub seq: u32,
    /// At most [`crate::model::restore::MAX_OBJECTS_PER_BATCH`].
    #[serde(default)]
    pub objects: Vec<crate::model::restore::RestoreObjectResult>,
}

/// How a job ended, as the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionReport {
    pub lease_token: String,
    /// COMPLETED, PARTIAL, FAILED or CANCELED.
    pub state: JobState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub counters: Option<JobCounters>,
    #[serde(default)]
    pub progress: Option<JobProgress>,
    #[serde(default)]
    pub backup: Option<BackupResult>,
    /// REPOSITORY_MAINTENANCE jobs: what was reclaimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::model::maintenance::MaintenanceResult>,
    /// A verification's restore: what the agent found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::model::verification::VerificationReport>,
}

/// The header that carries the session id on every agent call but connect.
pub const SESSION_HEADER: &str = "x-arca-agent-session";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cloud::ebs::EbsVolumeRef;

    fn with_volumes(ids: &[&str]) -> BackupResult {
        BackupResult {
            ebs_volumes: ids
                .iter()
                .map(|id| EbsVolumeRef {
                    pv_name: format!("pv-{id}"),
                    volume_id: (*id).to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn reported_ebs_volumes_are_bounded_well_formed_and_distinct() {
        assert!(with_volumes(&["vol-0123456789abcdef0", "vol-0aaa"]).check().is_ok());
        let many: Vec<String> = (0..=MAX_EBS_VOLUMES).map(|i| format!("vol-{i:08x}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = with_volumes(&many).check().unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        for bad in ["vol-../../x", "snap-0123", "vol-", "i-0123"] {
            let err = with_volumes(&[bad]).check().unwrap_err();
            assert!(err.to_string().contains("volumeId"), "{bad}: {err}");
        }
        let err = with_volumes(&["vol-0aaa", "vol-0aaa"]).check().unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
