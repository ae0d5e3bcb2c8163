//! The work an RDS job carries from one check to the next.

use super::*;
use crate::ids::{CloudAccountId, RdsBackupDefinitionId, RecoveryPointId};
use crate::model::policy::Retention;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an RDS job waits before it checks a running AWS operation again.
pub const RECHECK_DELAY: Duration = Duration::from_secs(60);

/// Checks after which a job stops waiting (three days of [`RECHECK_DELAY`]).
pub const MAX_CHECKS: u32 = 3 * 24 * 60;

/// Where one database of an RDS job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RdsPhase {
    /// Not started.
    Start,
    /// The snapshot is being created.
    Snapshotting,
    /// The copy is being made in the destination region.
    Copying,
    /// The new instance or cluster is being created.
    Restoring,
    /// A verification's temporary database is being deleted.
    Removing,
    Done,
    Failed,
    /// Left out (a copy of it was in progress).
    Skipped,
}

impl RdsPhase {
    pub fn is_final(self) -> bool {
        matches!(self, RdsPhase::Done | RdsPhase::Failed | RdsPhase::Skipped)
    }
}

/// One database's part of an RDS job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsWorkItem {
    pub database: RdsDatabaseRef,
    pub phase: RdsPhase,
    /// The snapshot taken (backup) or copied from (copy) or restored from (restore).
    #[serde(default)]
    pub snapshot: Option<RdsSnapshotRef>,
    #[serde(default)]
    pub recovery_point_id: Option<RecoveryPointId>,
    #[serde(default)]
    pub copy: Option<RdsSnapshotRef>,
    #[serde(default)]
    pub copy_recovery_point_id: Option<RecoveryPointId>,
    #[serde(default)]
    pub error: Option<String>,
}

impl RdsWorkItem {
    pub fn new(database: RdsDatabaseRef) -> Self {
        RdsWorkItem {
            database,
            phase: RdsPhase::Start,
            snapshot: None,
            recovery_point_id: None,
            copy: None,
            copy_recovery_point_id: None,
            error: None,
        }
    }
}

/// What an RDS job carries between checks (kept in the job item).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsJobWork {
    pub cloud_account_id: CloudAccountId,
    /// The databases' region (for restores: where the new database is created).
    pub region: String,
    #[serde(default)]
    pub definition_id: Option<RdsBackupDefinitionId>,
    /// The definition's copy settings when the job was created.
    #[serde(default)]
    pub copy: Option<RdsCopySpec>,
    /// Copy-only run: copy each database's latest existing snapshot.
    #[serde(default)]
    pub copy_only: bool,
    #[serde(default)]
    pub restore: Option<RdsRestoreSpec>,
    /// A restore that verifies this recovery point: its database is temporary (deleted
    /// once `available`) and the outcome goes on the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifies: Option<RecoveryPointId>,
    /// For restores from a recovery point: its snapshot.
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub items: Vec<RdsWorkItem>,
    /// Checks made so far (bounded by [`MAX_CHECKS`]).
    #[serde(default)]
    pub checks: u32,
}
