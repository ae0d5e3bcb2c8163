//! RDS protection: the part of [`ControlPlane`] that works through the [`RdsOperations`]
//! and [`RdsWorkQueue`] ports.
//!
//! A run never waits for AWS. Creating an RDS job sends its id to the work queue; each
//! delivery runs [`ControlPlane::rds_step`], which starts what has not started, checks
//! what is in flight, records the outcome and, while anything is still in progress,
//! sends the id again with [`RECHECK_DELAY`]. Each database of a job moves
//! `START → SNAPSHOTTING → (COPYING) → DONE` (backups), `START → COPYING → DONE` (copies),
//! `START → RESTORING → DONE` (restores; verifications `START → RESTORING → REMOVING →
//! DONE`), or to `FAILED`/`SKIPPED`.

mod definitions;
mod retention;
mod runs;
mod step;
mod verification;

use crate::control_plane::ControlPlane;
use crate::ids::{OrgId, RecoveryPointId};
use crate::model::cloud::account::{CloudAccount, RoleRef};
use crate::model::policy::Retention;
use crate::model::policy::{PolicyReferrer, ReferrerKind};
use crate::model::rds::{RdsBackupDefinition, RdsDatabaseKey, RdsDatabaseRef, RdsJobWork};
use crate::ports::rds::{RdsOperations, RdsWorkQueue};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The RDS part of the deployment.
#[derive(Clone)]
pub(super) struct RdsWiring {
    pub(in crate::control_plane) ops: Arc<dyn RdsOperations>,
    /// `None`: jobs are stepped by whoever calls [`ControlPlane::rds_step`] (tests).
    pub(in crate::control_plane) queue: Option<Arc<dyn RdsWorkQueue>>,
}

/// Options of an RDS run-now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsRunRequest {
    /// Copy each database's latest existing snapshot (automated ones included) to the
    /// copy region, without taking a new one.
    #[serde(default)]
    pub copy_only: bool,
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// What one RDS retention sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsRetentionReport {
    pub examined: usize,
    /// Snapshots and copies deleted in AWS (and their records).
    pub deleted: Vec<RecoveryPointId>,
    /// Points kept for now, and why (still creating, among the newest `keepLast`, no
    /// role, AWS refused).
    pub kept: Vec<(RecoveryPointId, String)>,
}

fn referrer(def: &RdsBackupDefinition, kind: ReferrerKind) -> PolicyReferrer {
    PolicyReferrer {
        kind,
        id: def.id.to_string(),
        name: def.spec.name.clone(),
    }
}

fn db_key(work: &RdsJobWork, db: &RdsDatabaseRef) -> RdsDatabaseKey {
    RdsDatabaseKey {
        cloud_account_id: work.cloud_account_id,
        region: work.region.clone(),
        database: db.clone(),
    }
}

fn kind_word(db: &RdsDatabaseRef) -> &'static str {
    if db.cluster { "cluster" } else { "instance" }
}

impl ControlPlane {
    /// Wires RDS: the operations in linked accounts and the queue that re-checks them.
    pub fn with_rds(mut self, ops: Arc<dyn RdsOperations>, queue: Option<Arc<dyn RdsWorkQueue>>) -> Self {
        self.rds = Some(RdsWiring { ops, queue });
        self
    }

    pub(in crate::control_plane) fn rds_wiring(&self) -> Result<&RdsWiring> {
        self.rds.as_ref().ok_or_else(|| Error::Forbidden {
            message: "this deployment cannot reach RDS (no RDS adapter is configured)".into(),
        })
    }

    pub(in crate::control_plane) async fn account_role(
        &self,
        org: &OrgId,
        account: &crate::ids::CloudAccountId,
        field: &str,
    ) -> Result<RoleRef> {
        let account = match self.store.get::<CloudAccount>(org, account).await {
            Err(Error::NotFound { what }) => return Err(Error::invalid(field, what)),
            other => other?,
        };
        account.role().ok_or_else(|| {
            Error::conflict(format!(
                "cloud account {} has no role yet: create its role stack first",
                account.id
            ))
        })
    }
}
