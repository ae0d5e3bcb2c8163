//! The retention sweep of Kubernetes recovery points.

use crate::control_plane::ControlPlane;
use crate::ids::{BackupDefinitionId, JobId, OrgId, RecoveryPointId};
use crate::model::cluster::Cluster;
use crate::model::job::{Job, JobTrigger, JobType};
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};
use crate::model::retention;
use crate::store::Tx;
use crate::store::page::PageRequest;
use crate::{Error, Result};
use std::time::Duration;

/// What one retention sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Points kept because what Arca made on AWS for them (EBS snapshots) could not be
    /// deleted yet, with why.
    pub aws_cleanup_failed: Vec<(RecoveryPointId, String)>,
    /// Expired points read from the index.
    pub examined: usize,
    /// DELETE_BACKUP jobs issued (one per point).
    pub deletion_jobs: Vec<JobId>,
    /// Expired points kept (locked, keepLast, not READY).
    pub kept: usize,
    /// Points with no agent to delete them (their cluster is gone): they wait for the
    /// direct-deletion path (RDS/EBS and orphaned data), not written yet.
    pub awaiting_direct_deletion: Vec<RecoveryPointId>,
}

/// How a recovery point's data is removed. Only the agent route exists today; direct
/// deletion by the control plane (RDS snapshots, EBS, data of deleted clusters) is the
/// seam for later.
enum DeletionRoute {
    Agent,
    Direct,
}

impl ControlPlane {
    // ---- retention ---------------------------------------------------------------------

    /// One retention sweep at `now`: plans over the expired points (and their
    /// definitions' other points, for keepLast) and issues a DELETE_BACKUP job per point
    /// to delete, marking it DELETING in the same transaction.
    pub async fn retention_sweep(&self) -> Result<RetentionReport> {
        let now = self.now();
        let mut report = RetentionReport::default();
        let mut expired = Vec::new();
        let mut cursor = None;
        // "Before now + 1 s": the index is to the second, and a point expiring at `now`
        // is due.
        let bound = now + Duration::from_secs(1);
        loop {
            let page = self
                .store
                .recovery_points_expiring_before_cross_tenant(bound, &PageRequest::after(cursor, 100))
                .await?;
            expired.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        report.examined = expired.len();
        let mut groups: std::collections::BTreeSet<(OrgId, BackupDefinitionId)> = std::collections::BTreeSet::new();
        for rp in &expired {
            groups.insert((rp.org_id, rp.definition_id));
        }
        let mut by_org: std::collections::BTreeMap<OrgId, Vec<RecoveryPoint>> = std::collections::BTreeMap::new();
        for (org, def) in groups {
            if let std::collections::btree_map::Entry::Vacant(slot) = by_org.entry(org) {
                slot.insert(self.store.list_all::<RecoveryPoint>(&org).await?);
            }
            let siblings: Vec<RecoveryPoint> = by_org
                .get(&org)
                .map(|all| all.iter().filter(|p| p.definition_id == def).cloned().collect())
                .unwrap_or_default();
            let plan = retention::plan(&siblings, now);
            report.kept += plan.kept.len();
            for id in plan.delete {
                let Some(rp) = siblings.iter().find(|p| p.id == id).cloned() else {
                    continue;
                };
                // EBS snapshots go first; if they cannot, the point waits for the next sweep.
                if let Err(e) = self.delete_aws_artifacts(&rp).await {
                    report.aws_cleanup_failed.push((rp.id, e.to_string()));
                    continue;
                }
                let cluster_alive = self.store.find::<Cluster>(&org, &rp.cluster_id).await?.is_some();
                let route = if cluster_alive {
                    DeletionRoute::Agent
                } else {
                    DeletionRoute::Direct
                };
                match route {
                    DeletionRoute::Agent => {
                        if let Some(job) = self.issue_deletion(rp).await? {
                            report.deletion_jobs.push(job);
                        }
                    }
                    DeletionRoute::Direct => report.awaiting_direct_deletion.push(rp.id),
                }
            }
        }
        Ok(report)
    }

    /// Marks the point DELETING and creates its DELETE_BACKUP job in one transaction,
    /// then queues the job. `None` if the point changed meanwhile (the next sweep sees it).
    pub(in crate::control_plane) async fn issue_deletion(&self, mut rp: RecoveryPoint) -> Result<Option<JobId>> {
        let now = self.now();
        let expected = rp.version;
        rp.state = RecoveryPointState::Deleting;
        rp.updated_at = now;
        let mut job = Job::pending(rp.org_id, JobType::DeleteBackup, JobTrigger::Scheduled, now);
        job.cluster_id = Some(rp.cluster_id);
        job.definition_id = Some(rp.definition_id);
        job.recovery_point_id = Some(rp.id);
        job.log(now, "retention: the recovery point expired");
        let mut tx = Tx::new();
        tx.update(&mut rp, expected)?.create(&mut job)?;
        match self.store.commit(tx).await {
            Ok(()) => {}
            Err(Error::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        self.enqueue(&job).await?;
        Ok(Some(job.id))
    }
}
