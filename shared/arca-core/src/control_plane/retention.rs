//! The retention sweep of Kubernetes recovery points.

use crate::control_plane::ControlPlane;
use crate::ids::{BackupDefinitionId, ClusterId, JobId, OrgId, RecoveryPointId};
use crate::model::agent::AgentState;
use crate::model::cluster::{Cluster, ClusterState};
use crate::model::job::{Job, JobTrigger, JobType};
use crate::model::maintenance::RepositoryKey;
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};
use crate::model::retention;
use crate::store::Tx;
use crate::store::page::PageRequest;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one retention sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Points whose data is deleted but whose AWS artifacts (EBS snapshots) could not be
    /// deleted yet, with why: they stay DELETING and are tried again at every sweep.
    pub aws_cleanup_failed: Vec<(RecoveryPointId, String)>,
    /// Expired points read from the index.
    pub examined: usize,
    /// DELETE_BACKUP jobs issued (one per point).
    pub deletion_jobs: Vec<JobId>,
    /// Expired points kept (locked, keepLast, not READY).
    pub kept: usize,
    /// Points with no agent to delete them (their cluster is gone and no other cluster
    /// of the org is ACTIVE): they are tried again at every sweep, and their repository's
    /// upkeep says so (`awaitingAgent`, with the `arca destinations purge` that deletes
    /// them with the user's credentials).
    pub awaiting_direct_deletion: Vec<RecoveryPointId>,
    /// Deleted clusters' prefixes in Arca-managed storage that the control plane purged
    /// itself, no agent being left (`ControlPlane::with_managed_purge`).
    pub purged: Vec<crate::control_plane::PurgeDone>,
    /// Such purges that failed, with why: tried again at the next sweep.
    pub purge_failed: Vec<(RepositoryKey, String)>,
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
        let mut groups: BTreeMap<(OrgId, ClusterId, BackupDefinitionId), Vec<RecoveryPoint>> = BTreeMap::new();
        for rp in expired {
            groups
                .entry((rp.org_id, rp.cluster_id, rp.definition_id))
                .or_default()
                .push(rp);
        }
        let mut active_by_org: BTreeMap<OrgId, Option<ClusterId>> = BTreeMap::new();
        // Deleted clusters' repositories: how many expired points wait for an agent
        // there (0: an agent was found for them this time).
        let mut orphaned: BTreeMap<(OrgId, RepositoryKey), u64> = BTreeMap::new();
        for ((org, cluster, def), due) in groups {
            let siblings = self.keep_last_siblings(&org, &cluster, &def, due).await?;
            // Points whose data is deleted but whose AWS artifacts were not: again.
            for rp in siblings.iter().filter(|p| p.data_deleted && p.is_expired(now)) {
                if let Err(e) = self.finish_point_deletion(rp.clone()).await {
                    report.aws_cleanup_failed.push((rp.id, e.to_string()));
                }
            }
            let plan = retention::plan(&siblings, now);
            report.kept += plan.kept.len();
            for id in plan.delete {
                let Some(rp) = siblings.iter().find(|p| p.id == id).cloned() else {
                    continue;
                };
                let by = self.agent_for_data(&org, rp.cluster_id, &mut active_by_org).await?;
                if by != Some(rp.cluster_id)
                    && let Some(location) = &rp.location
                {
                    let key = RepositoryKey {
                        destination_id: location.destination_id,
                        cluster_id: rp.cluster_id,
                    };
                    *orphaned.entry((org, key)).or_default() += u64::from(by.is_none());
                }
                match by {
                    Some(by) => {
                        if let Some(job) = self
                            .issue_deletion(rp, by, JobTrigger::Scheduled, "retention: the recovery point expired")
                            .await?
                        {
                            report.deletion_jobs.push(job);
                        }
                    }
                    None => report.awaiting_direct_deletion.push(rp.id),
                }
            }
        }
        for ((org, key), waiting) in orphaned {
            self.note_orphaned(&org, &key, waiting).await?;
            if waiting > 0 {
                match self.purge_unattended(&org, &key).await {
                    Ok(Some(done)) => {
                        report
                            .awaiting_direct_deletion
                            .retain(|id| !done.recovery_points_deleted.contains(id));
                        report.purged.push(done);
                    }
                    Ok(None) => {}
                    // Tried again at the next sweep; one repository does not stop the rest.
                    Err(e) => {
                        self.alert_purge_failed(&org, &key, &e).await;
                        report.purge_failed.push((key, e.to_string()));
                    }
                }
            }
        }
        Ok(report)
    }

    /// The last step of a point's deletion, once its data is deleted: what Arca made on
    /// AWS for it (EBS snapshots), then the point. A failure leaves the point DELETING
    /// with `dataDeleted` for the next sweep.
    pub(in crate::control_plane) async fn finish_point_deletion(&self, rp: RecoveryPoint) -> Result<()> {
        self.delete_aws_artifacts(&rp).await?;
        match self.store.delete::<RecoveryPoint>(&rp.org_id, &rp.id, rp.version).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            // Changed meanwhile: the next sweep sees it again.
            Err(Error::PreconditionFailed { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(location) = &rp.location {
            self.finish_retiring(&rp.org_id, &location.destination_id).await?;
        }
        Ok(())
    }

    /// The cluster whose agent works on `cluster`'s data in a destination: that cluster
    /// while it exists, else another ACTIVE cluster of the org (looked up once per org and
    /// sweep, through `active_by_org`); `None` when no agent can.
    pub(in crate::control_plane) async fn agent_for_data(
        &self,
        org: &OrgId,
        cluster: ClusterId,
        active_by_org: &mut std::collections::BTreeMap<OrgId, Option<ClusterId>>,
    ) -> Result<Option<ClusterId>> {
        if self.store.find::<Cluster>(org, &cluster).await?.is_some() {
            return Ok(Some(cluster));
        }
        if let Some(found) = active_by_org.get(org) {
            return Ok(*found);
        }
        let active = self.active_cluster(org).await?;
        active_by_org.insert(*org, active);
        Ok(active)
    }

    /// An ACTIVE cluster of the org (agent heard from lately), the first by id: the agent
    /// that deletes the data of a deleted cluster's points. Reads clusters in id order
    /// until the first ACTIVE one.
    async fn active_cluster(&self, org: &OrgId) -> Result<Option<ClusterId>> {
        let mut cursor = None;
        loop {
            let page = self.store.list::<Cluster>(org, &PageRequest::after(cursor, 20)).await?;
            for c in page.items {
                let agent = self.store.find::<AgentState>(org, &c.id).await?;
                if self.presented(c.clone(), agent.as_ref()).state == ClusterState::Active {
                    return Ok(Some(c.id));
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// The points keepLast weighs `due` (expired points of one definition) against:
    /// `due` and the definition's newest points, read newest first through the cluster's
    /// index until each rule among `due` has as many READY complete points as the largest
    /// keepLast asked. So a sweep reads what expires and a keepLast window, not the org.
    async fn keep_last_siblings(
        &self,
        org: &OrgId,
        cluster: &ClusterId,
        def: &BackupDefinitionId,
        due: Vec<RecoveryPoint>,
    ) -> Result<Vec<RecoveryPoint>> {
        let mut wanted: BTreeMap<Option<u32>, u32> = BTreeMap::new();
        for p in &due {
            if let Some(k) = p.keep_last {
                let slot = wanted.entry(p.rule).or_default();
                *slot = (*slot).max(k);
            }
        }
        let mut points: BTreeMap<RecoveryPointId, RecoveryPoint> = due.into_iter().map(|p| (p.id, p)).collect();
        let mut found: BTreeMap<Option<u32>, u32> = BTreeMap::new();
        let mut cursor = None;
        while !wanted.is_empty() {
            let page = self
                .store
                .recovery_points_of_cluster(org, cluster, &PageRequest::after(cursor, 100), false, |p| {
                    p.definition_id == *def
                })
                .await?;
            for p in page.items {
                if let (Some(k), Some(slot)) = (p.keep_last, wanted.get_mut(&p.rule)) {
                    *slot = (*slot).max(k);
                }
                if p.state == RecoveryPointState::Ready && !p.partial {
                    *found.entry(p.rule).or_default() += 1;
                }
                points.insert(p.id, p);
            }
            let enough = wanted
                .iter()
                .all(|(rule, k)| found.get(rule).copied().unwrap_or(0) >= *k);
            match page.next_cursor {
                Some(next) if !enough => cursor = Some(next),
                _ => break,
            }
        }
        Ok(points.into_values().collect())
    }

    /// Marks the point DELETING and creates its DELETE_BACKUP job for the agent of
    /// cluster `by` (the point's own, or another of the org when that one is deleted) in
    /// one transaction, then queues the job. `None` if the point changed meanwhile (the
    /// next sweep sees it).
    pub(in crate::control_plane) async fn issue_deletion(
        &self,
        mut rp: RecoveryPoint,
        by: ClusterId,
        trigger: JobTrigger,
        why: &str,
    ) -> Result<Option<JobId>> {
        let now = self.now();
        let expected = rp.version;
        rp.state = RecoveryPointState::Deleting;
        rp.updated_at = now;
        let mut job = Job::pending(rp.org_id, JobType::DeleteBackup, trigger, now);
        job.cluster_id = Some(by);
        job.definition_id = Some(rp.definition_id);
        job.recovery_point_id = Some(rp.id);
        job.log(now, why);
        if by != rp.cluster_id {
            job.log(
                now,
                format!(
                    "its cluster {} is deleted: this cluster's agent deletes its data in the destination (the CSI \
                     snapshots left in the deleted cluster went with it)",
                    rp.cluster_id
                ),
            );
        }
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
