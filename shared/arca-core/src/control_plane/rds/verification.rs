//! Restore verification of RDS recovery points: on demand and after each backup; the
//! temporary database's removal; the outcome on the point. What a verification is lives
//! in [`crate::model::rds::verification`].

use crate::control_plane::ControlPlane;
use crate::error::ConflictKind;
use crate::ids::{OrgId, RecoveryPointId};
use crate::model::auth::{Operation, Principal};
use crate::model::cloud::account::RoleRef;
use crate::model::job::{Job, JobState, JobTrigger, JobType};
use crate::model::rds::{
    DEFAULT_VERIFICATION_CLASS, RdsBackupDefinition, RdsDatabaseRef, RdsJobWork, RdsPhase, RdsPointVerification,
    RdsRecoveryPoint, RdsRecoveryPointState, RdsRecoveryPointType, RdsRestoreSource, RdsRestoreSpec, RdsRestoreTarget,
    RdsVerificationSpec, RdsWorkItem, TAG_VERIFICATION, verification_identifier,
};
use crate::model::verification::{VerificationState, VerifyWhen};
use crate::ports::rds::RdsOperations;
use crate::{Error, Result};
use std::time::Duration;

use super::kind_word;

impl ControlPlane {
    /// Restores the point's snapshot to a temporary database (the definition's
    /// verification settings, else a [`DEFAULT_VERIFICATION_CLASS`] in the default VPC),
    /// waits for it to be `available`, deletes it and records the outcome on the point.
    /// 409 `restore_not_possible` when the point is not AVAILABLE (or is a copy and the
    /// definition names no subnet group of its region); 409 `recovery_point_busy` while a
    /// verification of it runs.
    pub async fn verify_rds_recovery_point(&self, p: &Principal, id: &RecoveryPointId) -> Result<Job> {
        p.require(Operation::VerifyRecoveryPoint)?;
        self.rds_wiring()?;
        let rp = self.store.get::<RdsRecoveryPoint>(&p.org_id, id).await?;
        let spec = match rp.definition_id {
            Some(def) => self
                .store
                .find::<RdsBackupDefinition>(&p.org_id, &def)
                .await?
                .and_then(|d| d.spec.verification),
            None => None,
        };
        self.start_rds_verification(&p.org_id, rp, spec.as_ref(), JobTrigger::Manual)
            .await
    }

    /// Creates the verification's RDS_RESTORE job and marks the point RUNNING with it.
    async fn start_rds_verification(
        &self,
        org: &OrgId,
        rp: RdsRecoveryPoint,
        spec: Option<&RdsVerificationSpec>,
        trigger: JobTrigger,
    ) -> Result<Job> {
        if rp.state != RdsRecoveryPointState::Available {
            return Err(Error::conflict_of(
                ConflictKind::RestoreNotPossible,
                format!("recovery point {} is {:?}, not AVAILABLE", rp.id, rp.state),
            ));
        }
        let subnet_group = spec.and_then(|s| s.subnet_group.clone());
        if rp.rp_type == RdsRecoveryPointType::Copy && subnet_group.is_none() {
            return Err(Error::conflict_of(
                ConflictKind::RestoreNotPossible,
                format!(
                    "recovery point {} is a copy in {}: verifying it needs verification.subnetGroup, a DB subnet \
                     group of that region, on its definition",
                    rp.id, rp.snapshot.region
                ),
            ));
        }
        if let Some(v) = rp
            .verification
            .as_ref()
            .filter(|v| v.state == VerificationState::Running)
            && self.job_unfinished(org, &v.job_id).await?
        {
            return Err(Error::conflict_of(
                ConflictKind::RecoveryPointBusy,
                format!("recovery point {} is being verified by job {}", rp.id, v.job_id),
            ));
        }
        self.account_role(org, &rp.cloud_account_id, "cloudAccountId").await?;
        let now = self.now();
        let mut job = Job::pending(*org, JobType::RdsRestore, trigger, now);
        job.recovery_point_id = Some(rp.id);
        let target = RdsRestoreTarget {
            identifier: verification_identifier(&job.id),
            instance_class: Some(
                spec.and_then(|s| s.instance_class.clone())
                    .unwrap_or_else(|| DEFAULT_VERIFICATION_CLASS.to_string()),
            ),
            subnet_group,
            security_group_ids: spec.map(|s| s.security_group_ids.clone()).unwrap_or_default(),
            multi_az: Some(false),
            engine: rp.engine.clone(),
            ..RdsRestoreTarget::default()
        };
        let database = RdsDatabaseRef {
            identifier: target.identifier.clone(),
            cluster: rp.database.cluster,
        };
        let restore = RdsRestoreSpec {
            cloud_account_id: rp.cloud_account_id,
            source: RdsRestoreSource::RecoveryPoint {
                recovery_point_id: rp.id,
            },
            target,
        };
        job.log(
            now,
            format!(
                "verification of recovery point {} ({} {}): restoring its snapshot {} to the temporary {}",
                rp.id,
                kind_word(&rp.database),
                rp.database.identifier,
                rp.snapshot.identifier,
                database.identifier
            ),
        );
        let mut item = RdsWorkItem::new(database.clone());
        item.snapshot = Some(rp.snapshot.clone());
        job.rds = Some(RdsJobWork {
            cloud_account_id: rp.cloud_account_id,
            region: rp.snapshot.region.clone(),
            definition_id: rp.definition_id,
            copy: None,
            copy_only: false,
            restore: Some(restore),
            verifies: Some(rp.id),
            retention: None,
            items: vec![item],
            checks: 0,
        });
        let job = self.store.create(job).await?;
        let running = RdsPointVerification::running(job.id, database, now);
        self.update_record::<RdsRecoveryPoint>(org, &rp.id, None, |p| {
            p.verification = Some(running.clone());
            p.updated_at = now;
        })
        .await?;
        self.enqueue_rds(&job, Duration::ZERO).await?;
        Ok(job)
    }

    /// After an RDS backup ended: a verification of each snapshot it took, when the
    /// definition asks for one after each backup. One that cannot start is recorded on
    /// its point (FAILED, with why), never on the backup, which succeeded.
    pub(in crate::control_plane) async fn rds_verify_after_backup(&self, job: &Job) -> Result<()> {
        let Some(work) = job.rds.as_ref().filter(|_| job.job_type == JobType::RdsBackup) else {
            return Ok(());
        };
        if !matches!(job.state, JobState::Completed | JobState::Partial) {
            return Ok(());
        }
        let Some(def_id) = work.definition_id else {
            return Ok(());
        };
        let Some(spec) = self
            .store
            .find::<RdsBackupDefinition>(&job.org_id, &def_id)
            .await?
            .and_then(|d| d.spec.verification)
            .filter(|s| s.when == VerifyWhen::AfterBackup)
        else {
            return Ok(());
        };
        for item in work.items.iter().filter(|i| i.phase == RdsPhase::Done) {
            let Some(rp_id) = item.recovery_point_id else { continue };
            let Some(rp) = self.store.find::<RdsRecoveryPoint>(&job.org_id, &rp_id).await? else {
                continue;
            };
            if rp.verification.is_some() {
                // Started by an earlier delivery of this job's end.
                continue;
            }
            let database = rp.database.clone();
            if let Err(e) = self
                .start_rds_verification(&job.org_id, rp, Some(&spec), JobTrigger::Scheduled)
                .await
            {
                let now = self.now();
                let mut failed = RdsPointVerification::running(job.id, database, now);
                failed.ended(vec![format!("the verification could not start: {e}")], now);
                self.update_record::<RdsRecoveryPoint>(&job.org_id, &rp_id, None, |p| {
                    p.verification = Some(failed.clone());
                    p.updated_at = now;
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Starts deleting a verification's temporary database (only one carrying this job's
    /// verification tag) and moves the item to REMOVING.
    pub(in crate::control_plane) async fn remove_verification_database(
        &self,
        ops: &dyn RdsOperations,
        role: &RoleRef,
        job: &mut Job,
        work: &RdsJobWork,
        item: &mut RdsWorkItem,
    ) -> Result<()> {
        let tag = job.id.to_string();
        ops.delete_verification_database(role, &work.region, &item.database, (TAG_VERIFICATION, &tag))
            .await?;
        job.log(
            self.now(),
            format!("{}: deleting the temporary database", item.database.identifier),
        );
        item.phase = RdsPhase::Removing;
        Ok(())
    }

    /// A verification job that fails or is canceled still deletes what it created: the
    /// item's database when it may exist (RESTORING, REMOVING). Returns what to add to the
    /// item's error when that fails (the database is then left for the user).
    pub(in crate::control_plane) async fn discard_verification_database(
        &self,
        ops: &dyn RdsOperations,
        role: &RoleRef,
        job: &mut Job,
        work: &RdsJobWork,
        item: &RdsWorkItem,
    ) -> Option<String> {
        if work.verifies.is_none() || !matches!(item.phase, RdsPhase::Restoring | RdsPhase::Removing) {
            return None;
        }
        let tag = job.id.to_string();
        let now = self.now();
        match ops
            .delete_verification_database(role, &work.region, &item.database, (TAG_VERIFICATION, &tag))
            .await
        {
            Ok(()) => {
                job.log(
                    now,
                    format!("{}: deleting the temporary database", item.database.identifier),
                );
                None
            }
            Err(e) => {
                let left = format!(
                    "the temporary database {} could not be deleted ({e}): delete it yourself",
                    item.database.identifier
                );
                job.log(now, left.clone());
                Some(left)
            }
        }
    }

    /// A verification job ended: the outcome goes on its point, when the point still
    /// names that job.
    pub(in crate::control_plane) async fn record_rds_verification(&self, job: &Job, work: &RdsJobWork) -> Result<()> {
        let Some(rp_id) = work.verifies else {
            return Ok(());
        };
        let errors = work.items.iter().filter_map(|i| i.error.clone());
        let reasons: Vec<String> = match job.state {
            JobState::Completed => Vec::new(),
            JobState::Canceled => std::iter::once("the verification was canceled".to_string())
                .chain(errors)
                .collect(),
            _ => {
                let why: Vec<String> = errors.collect();
                if why.is_empty() {
                    vec![
                        job.reason
                            .clone()
                            .unwrap_or_else(|| format!("the verification job {:?}", job.state)),
                    ]
                } else {
                    why
                }
            }
        };
        let now = self.now();
        match self
            .update_record::<RdsRecoveryPoint>(&job.org_id, &rp_id, None, |p| {
                if let Some(v) = p.verification.as_mut().filter(|v| v.job_id == job.id) {
                    v.ended(reasons.clone(), now);
                    p.updated_at = now;
                }
            })
            .await
        {
            // The point expired meanwhile: nothing to record on.
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
