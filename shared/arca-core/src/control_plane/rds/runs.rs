//! RDS runs: run-now, scheduled dispatch, restores, recovery points.

use crate::control_plane::ControlPlane;
use crate::ids::{RdsBackupDefinitionId, RecoveryPointId};
use crate::model::auth::{Operation, Principal};
use crate::model::dispatch;
use crate::model::job::{Job, JobState, JobTrigger, JobType};
use crate::model::org::Org;
use crate::model::policy::Policy;
use crate::model::policy::Retention;
use crate::model::rds::{
    self, RdsBackupDefinition, RdsDatabaseRef, RdsJobWork, RdsRecoveryPoint, RdsRecoveryPointState,
    RdsRecoveryPointType, RdsRestoreSource, RdsRestoreSpec, RdsSnapshotRef, RdsWorkItem,
};
use crate::model::schedule::ScheduleInput;
use crate::ports::rds::{RdsOperationState, RdsWorkMessage};
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};
use std::time::Duration;

use super::*;

impl ControlPlane {
    /// Runs a definition now: a backup (a new snapshot of each database), or with
    /// `copyOnly` a copy of each database's latest existing snapshot.
    pub async fn run_rds_backup_now(
        &self,
        p: &Principal,
        id: &RdsBackupDefinitionId,
        request: RdsRunRequest,
    ) -> Result<Job> {
        p.require(Operation::RunRdsBackupNow)?;
        self.rds_wiring()?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
        if request.copy_only && def.spec.copy.is_none() {
            return Err(Error::invalid("copyOnly", "the definition has no copy settings"));
        }
        let pid = if request.copy_only {
            def.spec.copy.as_ref().and_then(|c| c.policy_id).or(def.spec.policy_id)
        } else {
            def.spec.policy_id
        };
        let retention = self.run_now_retention(&org, request.retention, pid).await?;
        self.account_role(&p.org_id, &def.spec.cloud_account_id, "cloudAccountId")
            .await?;
        let job = self
            .new_rds_run(&org, &def, JobTrigger::Manual, None, retention, request.copy_only)
            .await?;
        self.enqueue_rds(&job, Duration::ZERO).await?;
        Ok(job)
    }

    pub(in crate::control_plane) async fn new_rds_run(
        &self,
        org: &Org,
        def: &RdsBackupDefinition,
        trigger: JobTrigger,
        rule: Option<u32>,
        retention: Retention,
        copy_only: bool,
    ) -> Result<Job> {
        let now = self.now();
        let job_type = if copy_only {
            JobType::RdsCopy
        } else {
            JobType::RdsBackup
        };
        let mut job = Job::pending(org.id, job_type, trigger, now);
        job.retention = Some(retention);
        job.rule = rule;
        job.recovery_point_expires_at = Some(dispatch::expiry(
            &retention,
            self.limits.for_plan(org.plan).max_retain_days,
            now,
        ));
        job.rds = Some(RdsJobWork {
            cloud_account_id: def.spec.cloud_account_id,
            region: def.spec.region.clone(),
            definition_id: Some(def.id),
            copy: def.spec.copy.clone(),
            copy_only,
            restore: None,
            verifies: None,
            retention: Some(retention),
            items: def.spec.databases.iter().cloned().map(RdsWorkItem::new).collect(),
            checks: 0,
        });
        let what = if copy_only { "copy" } else { "backup" };
        job.log(now, format!("RDS {what} of definition {} ({})", def.id, def.spec.name));
        self.store.create(job).await
    }

    /// A schedule of an RDS definition fired (`<id>` for backups, `<id>.copy` for copies).
    pub async fn dispatch_rds_scheduled(&self, input: &ScheduleInput) -> Result<Job> {
        let (id_text, copy) = match input.definition_id.strip_suffix(".copy") {
            Some(id) => (id, true),
            None => (input.definition_id.as_str(), false),
        };
        let id: RdsBackupDefinitionId = id_text
            .parse()
            .map_err(|e: Error| Error::invalid("definitionId", e.to_string()))?;
        let org = self.store.get::<Org>(&input.org_id, &input.org_id).await?;
        let def = self.store.get::<RdsBackupDefinition>(&input.org_id, &id).await?;
        let pid = if copy {
            def.spec.copy.as_ref().and_then(|c| c.policy_id)
        } else {
            def.spec.policy_id
        };
        let policy = match pid {
            Some(pid) => self.store.find::<Policy>(&org.id, &pid).await?,
            None => None,
        };
        let row = policy
            .as_ref()
            .and_then(|p| p.spec.schedules.get(input.rule as usize).cloned());
        let retention = Retention {
            retain_days: row
                .as_ref()
                .map_or(self.config.default_run_now_retain_days, |r| r.retain_days),
            keep_last: row.as_ref().and_then(|r| r.keep_last),
        };
        let mut job = self
            .new_rds_run(&org, &def, JobTrigger::Scheduled, Some(input.rule), retention, copy)
            .await?;
        let skip = if def.spec.paused {
            Some("definition paused".to_string())
        } else {
            match &policy {
                None => Some("the definition has no policy (on demand only)".to_string()),
                Some(p) if p.spec.suspended => Some("policy suspended".to_string()),
                Some(_) if row.is_none() => Some(format!("schedule row {} no longer exists in the policy", input.rule)),
                Some(_) => None,
            }
        };
        if let Some(reason) = skip {
            let expected = job.version;
            job.transition(JobState::Skipped, Some(reason), self.now())?;
            return self.store.update(job, expected).await;
        }
        self.enqueue_rds(&job, Duration::ZERO).await?;
        Ok(job)
    }

    /// Starts a restore into a new instance or cluster: validates the source (a READY
    /// recovery point, an existing snapshot, or a restore time inside the database's
    /// restorable window, asked live) and creates the RDS_RESTORE job.
    pub async fn create_rds_restore(&self, p: &Principal, spec: RdsRestoreSpec) -> Result<Job> {
        p.require(Operation::CreateRdsRestore)?;
        let wiring = self.rds_wiring()?;
        let mut spec = spec.validated()?;
        let role = self
            .account_role(&p.org_id, &spec.cloud_account_id, "cloudAccountId")
            .await?;
        let (region, database, snapshot) = match &spec.source {
            RdsRestoreSource::RecoveryPoint { recovery_point_id } => {
                let rp = match self.store.get::<RdsRecoveryPoint>(&p.org_id, recovery_point_id).await {
                    Err(Error::NotFound { what }) => return Err(Error::invalid("source.recoveryPointId", what)),
                    other => other?,
                };
                if rp.cloud_account_id != spec.cloud_account_id {
                    return Err(Error::invalid(
                        "source.recoveryPointId",
                        "the recovery point belongs to another cloud account",
                    ));
                }
                if rp.state != RdsRecoveryPointState::Available {
                    return Err(Error::conflict(format!(
                        "recovery point {} is {:?}, not AVAILABLE",
                        rp.id, rp.state
                    )));
                }
                if rp.rp_type == RdsRecoveryPointType::Copy && spec.target.subnet_group.is_none() {
                    return Err(Error::invalid(
                        "target.subnetGroup",
                        "restoring a copy in another region needs a subnet group of that region",
                    ));
                }
                if spec.target.engine.is_none() {
                    spec.target.engine = rp.engine.clone();
                }
                (
                    rp.snapshot.region.clone(),
                    rp.database.clone(),
                    Some(rp.snapshot.clone()),
                )
            }
            RdsRestoreSource::Snapshot {
                region,
                identifier,
                cluster,
            } => {
                let wanted = RdsSnapshotRef {
                    identifier: identifier.clone(),
                    arn: String::new(),
                    region: region.clone(),
                    cluster: *cluster,
                };
                let found = wiring.ops.describe_snapshot(&role, &wanted).await?.ok_or_else(|| {
                    Error::invalid("source.identifier", format!("no snapshot {identifier} in {region}"))
                })?;
                if found.state != RdsOperationState::Available {
                    return Err(Error::conflict(format!("snapshot {identifier} is not available yet")));
                }
                if spec.target.engine.is_none() {
                    spec.target.engine = found.engine.clone();
                }
                let db = RdsDatabaseRef {
                    identifier: found.source_identifier.clone(),
                    cluster: *cluster,
                };
                (region.clone(), db, Some(found.snapshot))
            }
            RdsRestoreSource::PointInTime {
                region,
                database,
                restore_time,
                ..
            } => {
                let info = wiring.ops.describe_database(&role, region, database).await?;
                if let Some(t) = restore_time {
                    rds::check_restore_time(*t, info.earliest_restorable_time, info.latest_restorable_time)?;
                }
                if spec.target.engine.is_none() {
                    spec.target.engine = info.engine.clone();
                }
                (region.clone(), database.clone(), None)
            }
        };
        let now = self.now();
        let mut job = Job::pending(p.org_id, JobType::RdsRestore, JobTrigger::Manual, now);
        let mut item = RdsWorkItem::new(RdsDatabaseRef {
            identifier: spec.target.identifier.clone(),
            cluster: database.cluster,
        });
        item.snapshot = snapshot;
        job.log(
            now,
            format!(
                "restore of {} {} into {} in {region}",
                kind_word(&database),
                database.identifier,
                spec.target.identifier
            ),
        );
        job.rds = Some(RdsJobWork {
            cloud_account_id: spec.cloud_account_id,
            region,
            definition_id: None,
            copy: None,
            copy_only: false,
            restore: Some(spec),
            verifies: None,
            retention: None,
            items: vec![item],
            checks: 0,
        });
        let job = self.store.create(job).await?;
        self.enqueue_rds(&job, Duration::ZERO).await?;
        Ok(job)
    }

    pub async fn list_rds_recovery_points(
        &self,
        p: &Principal,
        definition: Option<RdsBackupDefinitionId>,
        page: &PageRequest,
    ) -> Result<Listing<RdsRecoveryPoint>> {
        p.require(Operation::ListRdsRecoveryPoints)?;
        self.store
            .list_where(&p.org_id, page, false, |rp: &RdsRecoveryPoint| {
                definition.is_none() || rp.definition_id == definition
            })
            .await
    }

    pub async fn get_rds_recovery_point(&self, p: &Principal, id: &RecoveryPointId) -> Result<RdsRecoveryPoint> {
        p.require(Operation::GetRdsRecoveryPoint)?;
        self.store.get(&p.org_id, id).await
    }

    pub(in crate::control_plane) async fn enqueue_rds(&self, job: &Job, delay: Duration) -> Result<()> {
        if let Some(q) = &self.rds_wiring()?.queue {
            q.send(
                &RdsWorkMessage {
                    org_id: job.org_id,
                    job_id: job.id,
                }
                .into(),
                delay.min(crate::ports::rds::MAX_DELAY),
            )
            .await?;
        }
        Ok(())
    }
}
