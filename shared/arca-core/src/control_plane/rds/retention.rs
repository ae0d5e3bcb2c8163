//! RDS retention: expired snapshots are deleted, the newest keepLast survive.

use crate::control_plane::ControlPlane;
use crate::ids::{OrgId, RecoveryPointId};
use crate::model::cloud::account::CloudAccount;
use crate::model::rds::{RdsRecoveryPoint, RdsRecoveryPointState};
use crate::store::page::PageRequest;
use crate::{Error, Result};
use std::time::Duration;

use super::*;

impl ControlPlane {
    /// Deletes the RDS snapshots and copies whose expiry has passed, in AWS through the
    /// adapter, then their records. A point still creating, among the newest `keepLast`
    /// of its group ([`crate::model::retention::plan_rds`]), or whose account has no working role, is
    /// kept for the next sweep.
    pub async fn rds_retention_sweep(&self) -> Result<RdsRetentionReport> {
        let wiring = self.rds_wiring()?.clone();
        let now = self.now();
        let bound = now + Duration::from_secs(1);
        let mut expired = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .rds_recovery_points_expiring_before_cross_tenant(bound, &PageRequest::after(cursor, 100))
                .await?;
            expired.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // `keepLast` counts every point of a definition, expired or not: read the points
        // of each definition with a due point, through its index (not the org's points).
        let mut siblings = Vec::new();
        let definitions: std::collections::BTreeSet<(OrgId, crate::ids::RdsBackupDefinitionId)> = expired
            .iter()
            .filter_map(|rp| rp.definition_id.map(|d| (rp.org_id, d)))
            .collect();
        for (org, definition) in definitions {
            siblings.extend(self.store.rds_recovery_points_of_definition(&org, &definition).await?);
        }
        let plan = crate::model::retention::plan_rds(&expired, &siblings);
        let mut report = RdsRetentionReport {
            examined: expired.len(),
            kept: plan.kept,
            ..Default::default()
        };
        let doomed: std::collections::BTreeSet<RecoveryPointId> = plan.delete.into_iter().collect();
        for rp in expired.into_iter().filter(|rp| doomed.contains(&rp.id)) {
            let role = match self
                .store
                .find::<CloudAccount>(&rp.org_id, &rp.cloud_account_id)
                .await?
            {
                Some(a) => a.role(),
                None => None,
            };
            let Some(role) = role else {
                report
                    .kept
                    .push((rp.id, "its cloud account is gone or has no role".into()));
                continue;
            };
            if rp.state != RdsRecoveryPointState::Failed
                && let Err(e) = wiring.ops.delete_snapshot(&role, &rp.snapshot).await
            {
                report.kept.push((rp.id, e.to_string()));
                continue;
            }
            match self
                .store
                .delete::<RdsRecoveryPoint>(&rp.org_id, &rp.id, rp.version)
                .await
            {
                Ok(()) | Err(Error::NotFound { .. }) => report.deleted.push(rp.id),
                Err(Error::PreconditionFailed { .. }) => report.kept.push((rp.id, "changed meanwhile".into())),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
