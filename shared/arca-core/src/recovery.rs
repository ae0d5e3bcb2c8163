//! Recovery points: the restorable result of a backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, JobId, OrgId, RecoveryPointId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryPointType {
    /// Resources plus CSI snapshots left in the cluster's storage.
    Snapshot,
    /// Resources plus PV data copied to a destination.
    Copy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecoveryPointState {
    /// Being written by its job.
    Pending,
    /// Complete and restorable.
    Ready,
    /// Expired or deleted; its data is being removed.
    Deleting,
}

/// Where the recovery point's data is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPointLocation {
    pub destination_id: DestinationId,
    /// The key prefix of this recovery point inside the destination.
    pub prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    pub id: RecoveryPointId,
    pub org_id: OrgId,
    pub cluster_id: ClusterId,
    pub definition_id: BackupDefinitionId,
    /// The job that produced it.
    pub job_id: JobId,
    #[serde(rename = "type")]
    pub rp_type: RecoveryPointType,
    pub state: RecoveryPointState,
    /// When retention lets it go; `None` keeps it until deleted by hand.
    pub expires_at: Option<DateTime<Utc>>,
    /// Locked points are never removed by retention.
    #[serde(default)]
    pub locked: bool,
    /// The policy schedule row that produced it (`None`: a manual run). Points of one
    /// (definition, rule) share a `keepLast`.
    #[serde(default)]
    pub rule: Option<u32>,
    /// The newest this-many points of the same (definition, rule) are kept whatever
    /// their age.
    #[serde(default)]
    pub keep_last: Option<u32>,
    pub location: Option<RecoveryPointLocation>,
    #[serde(default)]
    pub resource_count: u64,
    #[serde(default)]
    pub pv_count: u64,
    #[serde(default)]
    pub snapshot_bytes: u64,
    #[serde(default)]
    pub copy_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl RecoveryPoint {
    /// Whether retention may remove it at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        !self.locked && self.expires_at.is_some_and(|at| at <= now)
    }
}
