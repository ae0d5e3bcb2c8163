//! Restore verification: on demand, after each backup, weekly; and how it ends.
//! What a verification is lives in [`crate::model::verification`].

use crate::error::ConflictKind;
use crate::ids::{ClusterId, RecoveryPointId};
use crate::model::auth::{Operation, Principal};
use crate::model::backup::BackupDefinition;
use crate::model::job::{Job, JobState};
use crate::model::recovery::{CLUSTER_SCOPED, OTHER_KEYS, RecoveryPoint, RecoveryPointState};
use crate::model::restore::{Restore, RestoreSpec};
use crate::model::verification::{
    PointVerification, RestoreVerification, VerificationReport, VerificationState, VerifyWhen, scratch_namespace,
    weekly_due,
};
use crate::store::Tx;
use crate::store::page::PageRequest;
use crate::{Error, Result};

use super::{ControlPlane, RestoreCreated};

/// What one weekly-verification sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerificationSweepReport {
    /// Definitions with a weekly verification.
    pub examined: usize,
    /// Verifications started.
    pub started: Vec<RecoveryPointId>,
    /// Those that could not start, with why (tried again at the next sweep).
    pub failed: Vec<(RecoveryPointId, String)>,
}

impl ControlPlane {
    /// Restores `id` into scratch namespaces of `target` (default: the definition's
    /// verification cluster, else the point's own), checks it and records the outcome
    /// on the point. 409 `restore_not_possible` when the point is not READY or holds no
    /// resources archive, or the target is not ACTIVE; 409 `recovery_point_busy` while a
    /// verification of it runs.
    pub async fn verify_recovery_point(
        &self,
        p: &Principal,
        id: &RecoveryPointId,
        target: Option<ClusterId>,
    ) -> Result<RestoreCreated> {
        p.require(Operation::VerifyRecoveryPoint)?;
        let rp = self.get_recovery_point(p, id).await?;
        let spec = self
            .store
            .find::<BackupDefinition>(&p.org_id, &rp.definition_id)
            .await?
            .and_then(|d| d.spec.verification);
        let (target, field) = match (target, spec.as_ref().and_then(|s| s.target_cluster_id)) {
            (Some(t), _) => (t, "targetClusterId"),
            (None, Some(t)) => (t, "verification.targetClusterId"),
            (None, None) => (rp.cluster_id, "clusterId"),
        };
        self.active_target(p, &target, field).await?;
        self.start_verification(p, rp, target, spec.and_then(|s| s.probe)).await
    }

    /// Queues the verification's restore (the point marked RUNNING with it).
    async fn start_verification(
        &self,
        p: &Principal,
        rp: RecoveryPoint,
        target: ClusterId,
        probe: Option<crate::model::verification::VerificationProbe>,
    ) -> Result<RestoreCreated> {
        if rp.state != RecoveryPointState::Ready {
            return Err(Error::conflict_of(
                ConflictKind::RestoreNotPossible,
                format!("recovery point {} is {:?}, not READY", rp.id, rp.state),
            ));
        }
        if rp.location.is_none() {
            return Err(Error::conflict_of(
                ConflictKind::RestoreNotPossible,
                format!("recovery point {} holds no resources archive to restore", rp.id),
            ));
        }
        if let Some(v) = rp
            .verification
            .as_ref()
            .filter(|v| v.state == VerificationState::Running)
            && self
                .store
                .find::<Job>(&p.org_id, &v.job_id)
                .await?
                .is_some_and(|j| !j.state.is_terminal())
        {
            return Err(Error::conflict_of(
                ConflictKind::RecoveryPointBusy,
                format!("recovery point {} is being verified by job {}", rp.id, v.job_id),
            ));
        }
        let Some(spec) = verification_restore(&rp, target) else {
            return Err(Error::conflict_of(
                ConflictKind::RestoreNotPossible,
                format!("recovery point {} holds no namespaced objects to verify", rp.id),
            ));
        };
        self.queue_restore(p, spec, Some(RestoreVerification { probe })).await
    }

    /// After a backup's point is made: its verification, when the definition asks for one
    /// after each backup. A failure to start is recorded on the point (FAILED, with why),
    /// never on the backup, which succeeded.
    pub(in crate::control_plane) async fn verify_after_backup(&self, job: &Job) -> Result<()> {
        let (Some(def_id), Some(rp_id)) = (job.definition_id, job.recovery_point_id) else {
            return Ok(());
        };
        if !matches!(job.state, JobState::Completed | JobState::Partial) {
            return Ok(());
        }
        let Some(def) = self.store.find::<BackupDefinition>(&job.org_id, &def_id).await? else {
            return Ok(());
        };
        let Some(spec) = def.spec.verification.filter(|s| s.when == VerifyWhen::AfterBackup) else {
            return Ok(());
        };
        let Some(rp) = self.store.find::<RecoveryPoint>(&job.org_id, &rp_id).await? else {
            return Ok(());
        };
        if rp.verification.is_some() {
            // Started by an earlier delivery of this completion.
            return Ok(());
        }
        let system = Principal::system(job.org_id);
        let target = spec.target_cluster_id.unwrap_or(rp.cluster_id);
        match self.start_verification(&system, rp, target, spec.probe).await {
            Ok(_) => Ok(()),
            Err(e) => self.verification_not_started(&rp_id, job, target, &e.to_string()).await,
        }
    }

    async fn verification_not_started(
        &self,
        rp_id: &RecoveryPointId,
        job: &Job,
        target: ClusterId,
        why: &str,
    ) -> Result<()> {
        let now = self.now();
        let (org, rp_id) = (job.org_id, *rp_id);
        let why = format!("the verification could not start: {why}");
        self.retrying(|| {
            let why = why.clone();
            async move {
                let Some(mut rp) = self.store.find::<RecoveryPoint>(&org, &rp_id).await? else {
                    return Ok(());
                };
                let expected = rp.version;
                let mut v = PointVerification::running(job.id, crate::ids::RestoreId::new(), target, now);
                v.ended(None, Some(&why), now);
                rp.verification = Some(v);
                rp.updated_at = now;
                self.store
                    .update(rp, expected)
                    .await
                    .map(|_| ())
                    .map_err(super::retry_on_stale)
            }
        })
        .await
    }

    /// A verification's restore job ended: its findings go on the point (in the job's
    /// transaction), when the point still names that job.
    pub(in crate::control_plane) async fn record_verification(
        &self,
        tx: &mut Tx,
        job: &Job,
        report: Option<&VerificationReport>,
    ) -> Result<()> {
        let (Some(restore_id), Some(rp_id)) = (job.restore_id, job.recovery_point_id) else {
            return Ok(());
        };
        let Some(restore) = self.store.find::<Restore>(&job.org_id, &restore_id).await? else {
            return Ok(());
        };
        if restore.verification.is_none() {
            return Ok(());
        }
        let Some(mut rp) = self.store.find::<RecoveryPoint>(&job.org_id, &rp_id).await? else {
            return Ok(());
        };
        let Some(v) = rp.verification.as_mut().filter(|v| v.job_id == job.id) else {
            return Ok(());
        };
        let now = self.now();
        v.ended(report, job.reason.as_deref(), now);
        let expected = rp.version;
        rp.updated_at = now;
        tx.update(&mut rp, expected)?;
        Ok(())
    }

    /// Starts the weekly verifications that are due: for each definition verified
    /// weekly, its newest READY point when none of its points was verified in the last
    /// week. Runs with the retention sweep (hourly).
    pub async fn verification_sweep(&self) -> Result<VerificationSweepReport> {
        let now = self.now();
        let mut report = VerificationSweepReport::default();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .backup_definitions_cross_tenant(&PageRequest::after(cursor, 100))
                .await?;
            for def in page.items {
                let Some(spec) = def.spec.verification.clone().filter(|s| s.when == VerifyWhen::Weekly) else {
                    continue;
                };
                report.examined += 1;
                let points = self.points_of_definition(&def).await?;
                let last_started = points
                    .iter()
                    .filter_map(|p| p.verification.as_ref().map(|v| v.started_at))
                    .max();
                let Some(newest) = points
                    .into_iter()
                    .filter(|p| p.state == RecoveryPointState::Ready && p.location.is_some())
                    .max_by_key(|p| p.created_at)
                else {
                    continue;
                };
                if !weekly_due(newest.verification.is_some(), last_started, now) {
                    continue;
                }
                let system = Principal::system(def.org_id);
                let target = spec.target_cluster_id.unwrap_or(newest.cluster_id);
                let id = newest.id;
                match self.start_verification(&system, newest, target, spec.probe).await {
                    Ok(_) => report.started.push(id),
                    Err(e) => report.failed.push((id, e.to_string())),
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(report)
    }

    async fn points_of_definition(&self, def: &BackupDefinition) -> Result<Vec<RecoveryPoint>> {
        let mut points = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .recovery_points_of_cluster(
                    &def.org_id,
                    &def.spec.cluster_id,
                    &PageRequest::after(cursor, 100),
                    true,
                    |rp: &RecoveryPoint| rp.definition_id == def.id,
                )
                .await?;
            points.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(points),
            }
        }
    }
}

/// The restore a verification runs: the point's namespaces, each into its scratch
/// namespace (those the point's counts do not list get the scratch prefix), PVs
/// included, whatever exists left alone. Cluster-scoped objects come only as the
/// namespaces' own (as in a backup), and one that exists is left alone: a
/// verification reads the live cluster, it does not change it.
fn verification_restore(rp: &RecoveryPoint, target: ClusterId) -> Option<RestoreSpec> {
    let mut spec = RestoreSpec::everything(rp.id, target);
    // The scratch names need the restore's id, which the namespaces' map is made from
    // before it exists: the job's restore id comes from a fresh id here.
    let tag = crate::ids::RestoreId::new();
    let namespaces: Vec<String> = rp
        .details
        .counts_by_namespace
        .keys()
        .filter(|ns| ns.as_str() != CLUSTER_SCOPED && ns.as_str() != OTHER_KEYS)
        .cloned()
        .collect();
    if namespaces.is_empty() {
        return None;
    }
    spec.namespace_map = namespaces
        .iter()
        .map(|ns| (ns.clone(), scratch_namespace(&tag, ns)))
        .collect();
    spec.namespace_prefix = scratch_namespace(&tag, "");
    spec.selection.namespaces = namespaces;
    Some(spec)
}
