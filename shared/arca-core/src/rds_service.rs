//! RDS protection: the part of [`ControlPlane`] that works through the [`RdsOperations`]
//! and [`RdsWorkQueue`] ports.
//!
//! A run never waits for AWS. Creating an RDS job sends its id to the work queue; each
//! delivery runs [`ControlPlane::rds_step`], which starts what has not started, checks
//! what is in flight, records the outcome and, while anything is still in progress,
//! sends the id again with [`RECHECK_DELAY`]. Each database of a job moves
//! `START → SNAPSHOTTING → (COPYING) → DONE` (backups), `START → COPYING → DONE` (copies),
//! `START → RESTORING → DONE` (restores), or to `FAILED`/`SKIPPED`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};
use crate::cloud::{CloudAccount, RoleRef};
use crate::dispatch;
use crate::ids::{JobId, OrgId, PolicyId, RdsBackupDefinitionId, RecoveryPointId};
use crate::job::{Job, JobState, JobTrigger, JobType, Retention};
use crate::org::Org;
use crate::policy::{self, Policy, PolicyReferrer, ReferrerKind};
use crate::rds::{
    self, MAX_CHECKS, RECHECK_DELAY, RdsBackupDefinition, RdsBackupDefinitionSpec, RdsCopyInProgress, RdsDatabaseKey,
    RdsDatabaseRef, RdsJobWork, RdsOperationState, RdsOperations, RdsPhase, RdsRecoveryPoint, RdsRecoveryPointState,
    RdsRecoveryPointType, RdsRestoreRequest, RdsRestoreSource, RdsRestoreSpec, RdsSnapshotRef, RdsWorkItem,
    RdsWorkMessage, RdsWorkQueue,
};
use crate::scheduler::{ScheduleInput, schedules_for};
use crate::service::{ControlPlane, retry_on_conflict, retry_on_stale};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

/// The RDS part of the deployment.
#[derive(Clone)]
pub(crate) struct RdsWiring {
    pub ops: Arc<dyn RdsOperations>,
    /// `None`: jobs are stepped by whoever calls [`ControlPlane::rds_step`] (tests).
    pub queue: Option<Arc<dyn RdsWorkQueue>>,
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

    fn rds_wiring(&self) -> Result<&RdsWiring> {
        self.rds.as_ref().ok_or_else(|| Error::Forbidden {
            message: "this deployment cannot reach RDS (no RDS adapter is configured)".into(),
        })
    }

    async fn account_role(&self, org: &OrgId, account: &crate::ids::CloudAccountId, field: &str) -> Result<RoleRef> {
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

    // ---- definitions ------------------------------------------------------------------

    async fn check_rds_spec(&self, p: &Principal, spec: &RdsBackupDefinitionSpec) -> Result<()> {
        let account = match self.store.get::<CloudAccount>(&p.org_id, &spec.cloud_account_id).await {
            Err(Error::NotFound { what }) => return Err(Error::invalid("cloudAccountId", what)),
            other => other?,
        };
        if !account.spec.regions.contains(&spec.region) {
            return Err(Error::invalid(
                "region",
                format!("{} is not one of the account's regions", spec.region),
            ));
        }
        if let Some(pid) = &spec.policy_id {
            self.existing_policy(&p.org_id, pid, "policyId").await?;
        }
        if let Some(copy) = &spec.copy
            && let Some(pid) = &copy.policy_id
        {
            self.check_policy_for_rds_copy(p, pid).await.map_err(|e| match e {
                Error::Invalid { message, .. } => Error::invalid("copy.policyId", message),
                other => other,
            })?;
        }
        Ok(())
    }

    async fn existing_policy(&self, org: &OrgId, id: &PolicyId, field: &str) -> Result<Policy> {
        match self.store.get::<Policy>(org, id).await {
            Err(Error::NotFound { what }) => Err(Error::invalid(field, what)),
            other => other,
        }
    }

    /// The policies a definition refers to, with the kind of each reference.
    fn rds_policy_refs(spec: &RdsBackupDefinitionSpec) -> Vec<(PolicyId, ReferrerKind)> {
        let mut refs = Vec::new();
        if let Some(pid) = spec.policy_id {
            refs.push((pid, ReferrerKind::RdsBackup));
        }
        if let Some(pid) = spec.copy.as_ref().and_then(|c| c.policy_id) {
            refs.push((pid, ReferrerKind::RdsCopy));
        }
        refs
    }

    /// Adds the policy changes of moving `def` from `old` references to its current ones
    /// to `tx` (each policy written once, under its version).
    async fn rds_policy_writes(
        &self,
        tx: &mut Tx,
        def: &RdsBackupDefinition,
        old: &[(PolicyId, ReferrerKind)],
        new: &[(PolicyId, ReferrerKind)],
    ) -> Result<()> {
        let mut ids: Vec<PolicyId> = old.iter().chain(new).map(|(id, _)| *id).collect();
        ids.sort();
        ids.dedup();
        for pid in ids {
            let policy = if new.iter().any(|(id, _)| *id == pid) {
                Some(self.existing_policy(&def.org_id, &pid, "policyId").await?)
            } else {
                self.store.find::<Policy>(&def.org_id, &pid).await?
            };
            let Some(mut policy) = policy else { continue };
            let before = policy.used_by.clone();
            for kind in [ReferrerKind::RdsBackup, ReferrerKind::RdsCopy] {
                if new.contains(&(pid, kind)) {
                    policy.upsert_referrer(referrer(def, kind));
                } else {
                    policy.remove_referrer(kind, &def.id.to_string());
                }
            }
            let v = policy.version;
            if policy.used_by != before {
                tx.update(&mut policy, v)?;
            } else {
                tx.check::<Policy>(&def.org_id, &pid, v);
            }
        }
        Ok(())
    }

    pub async fn create_rds_backup_definition(
        &self,
        p: &Principal,
        spec: RdsBackupDefinitionSpec,
    ) -> Result<RdsBackupDefinition> {
        p.require(Role::Admin)?;
        let spec = &spec.validated()?;
        self.check_rds_spec(p, spec).await?;
        let id = RdsBackupDefinitionId::new();
        let def = self
            .retrying(|| async move {
                let now = self.now();
                let mut def = RdsBackupDefinition {
                    id,
                    org_id: p.org_id,
                    spec: spec.clone(),
                    created_at: now,
                    updated_at: now,
                    version: 0,
                };
                let mut tx = Tx::new();
                tx.create(&mut def)?;
                self.rds_policy_writes(&mut tx, &def, &[], &Self::rds_policy_refs(spec))
                    .await?;
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(def)
            })
            .await?;
        self.sync_rds_schedules(&def).await?;
        Ok(def)
    }

    pub async fn get_rds_backup_definition(
        &self,
        p: &Principal,
        id: &RdsBackupDefinitionId,
    ) -> Result<RdsBackupDefinition> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_rds_backup_definitions(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Listing<RdsBackupDefinition>> {
        p.require(Role::Viewer)?;
        self.store.list(&p.org_id, page).await
    }

    /// Replaces a definition's spec; the policies' `usedBy` follow in the same transaction.
    pub async fn update_rds_backup_definition(
        &self,
        p: &Principal,
        id: &RdsBackupDefinitionId,
        spec: RdsBackupDefinitionSpec,
        expected_version: u64,
    ) -> Result<RdsBackupDefinition> {
        p.require(Role::Admin)?;
        // Another org's id is NotFound before anything in the body is looked at.
        self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
        let spec = &spec.validated()?;
        self.check_rds_spec(p, spec).await?;
        let def = self
            .retrying(|| async move {
                let mut def = self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
                if def.version != expected_version {
                    return Err(self
                        .store
                        .version_failure::<RdsBackupDefinition>(&p.org_id, id, expected_version)
                        .await);
                }
                let old = Self::rds_policy_refs(&def.spec);
                def.spec = spec.clone();
                def.updated_at = self.now();
                let mut tx = Tx::new();
                tx.update(&mut def, expected_version)?;
                self.rds_policy_writes(&mut tx, &def, &old, &Self::rds_policy_refs(spec))
                    .await?;
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(def)
            })
            .await?;
        self.sync_rds_schedules(&def).await?;
        Ok(def)
    }

    /// Deletes a definition, releasing its policies in the same transaction. Its
    /// recovery points stay until they expire.
    pub async fn delete_rds_backup_definition(
        &self,
        p: &Principal,
        id: &RdsBackupDefinitionId,
        expected_version: u64,
    ) -> Result<()> {
        p.require(Role::Admin)?;
        let def = self
            .retrying(|| async move {
                let def = self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
                if def.version != expected_version {
                    return Err(self
                        .store
                        .version_failure::<RdsBackupDefinition>(&p.org_id, id, expected_version)
                        .await);
                }
                let mut tx = Tx::new();
                tx.delete::<RdsBackupDefinition>(&p.org_id, id, expected_version);
                self.rds_policy_writes(&mut tx, &def, &Self::rds_policy_refs(&def.spec), &[])
                    .await?;
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(def)
            })
            .await?;
        if let Some(s) = &self.scheduler {
            s.sync(&def.id.to_string(), &[]).await?;
            s.sync(&rds::copy_schedule_id(&def.id), &[]).await?;
        }
        Ok(())
    }

    pub async fn set_rds_backup_paused(
        &self,
        p: &Principal,
        id: &RdsBackupDefinitionId,
        expected_version: Option<u64>,
        paused: bool,
    ) -> Result<RdsBackupDefinition> {
        p.require(Role::Operator)?;
        let def = self
            .retrying(|| async {
                let mut def = self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
                let expected = expected_version.unwrap_or(def.version);
                def.spec.paused = paused;
                def.updated_at = self.now();
                let result = self.store.update(def, expected).await;
                if expected_version.is_none() {
                    result.map_err(retry_on_stale)
                } else {
                    result
                }
            })
            .await?;
        self.sync_rds_schedules(&def).await?;
        Ok(def)
    }

    /// One schedule per policy row for the backups (`<id>-<rule>`) and, with a copy
    /// policy, for the copies (`<id>.copy-<rule>`).
    pub(crate) async fn sync_rds_schedules(&self, def: &RdsBackupDefinition) -> Result<()> {
        let Some(scheduler) = &self.scheduler else {
            return Ok(());
        };
        for (sched_id, pid) in [
            (def.id.to_string(), def.spec.policy_id),
            (
                rds::copy_schedule_id(&def.id),
                def.spec.copy.as_ref().and_then(|c| c.policy_id),
            ),
        ] {
            let desired = match pid {
                Some(pid) => match self.store.find::<Policy>(&def.org_id, &pid).await? {
                    Some(policy) => schedules_for(def.org_id, &sched_id, &policy.spec, def.spec.paused)?,
                    None => Vec::new(),
                },
                None => Vec::new(),
            };
            scheduler.sync(&sched_id, &desired).await?;
        }
        Ok(())
    }

    // ---- runs -------------------------------------------------------------------------

    /// Runs a definition now: a backup (a new snapshot of each database), or with
    /// `copyOnly` a copy of each database's latest existing snapshot.
    pub async fn run_rds_backup_now(
        &self,
        p: &Principal,
        id: &RdsBackupDefinitionId,
        request: RdsRunRequest,
    ) -> Result<Job> {
        p.require(Role::Operator)?;
        self.rds_wiring()?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
        if request.copy_only && def.spec.copy.is_none() {
            return Err(Error::invalid("copyOnly", "the definition has no copy settings"));
        }
        let retention = match request.retention {
            Some(r) => r,
            None => {
                let pid = if request.copy_only {
                    def.spec.copy.as_ref().and_then(|c| c.policy_id).or(def.spec.policy_id)
                } else {
                    def.spec.policy_id
                };
                self.first_row_retention(&p.org_id, pid).await?
            }
        };
        if retention.retain_days == 0 || retention.retain_days > policy::MAX_RETAIN_DAYS {
            return Err(Error::invalid(
                "retention.retainDays",
                format!("must be between 1 and {}", policy::MAX_RETAIN_DAYS),
            ));
        }
        self.limits
            .check_retain_days(org.plan, "retention.retainDays", retention.retain_days)?;
        self.account_role(&p.org_id, &def.spec.cloud_account_id, "cloudAccountId")
            .await?;
        let job = self
            .new_rds_run(&org, &def, JobTrigger::Manual, None, retention, request.copy_only)
            .await?;
        self.enqueue_rds(&job, Duration::ZERO).await?;
        Ok(job)
    }

    async fn first_row_retention(&self, org: &OrgId, pid: Option<PolicyId>) -> Result<Retention> {
        let row = match pid {
            Some(pid) => self
                .store
                .find::<Policy>(org, &pid)
                .await?
                .and_then(|p| p.spec.schedules.first().cloned()),
            None => None,
        };
        Ok(match row {
            Some(row) => Retention {
                retain_days: row.retain_days,
                keep_last: row.keep_last,
            },
            None => Retention {
                retain_days: self.config.default_run_now_retain_days,
                keep_last: None,
            },
        })
    }

    async fn new_rds_run(
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
        p.require(Role::Operator)?;
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
        p.require(Role::Viewer)?;
        self.store
            .list_where(&p.org_id, page, false, |rp: &RdsRecoveryPoint| {
                definition.is_none() || rp.definition_id == definition
            })
            .await
    }

    pub async fn get_rds_recovery_point(&self, p: &Principal, id: &RecoveryPointId) -> Result<RdsRecoveryPoint> {
        p.require(Role::Viewer)?;
        self.store.get(&p.org_id, id).await
    }

    async fn enqueue_rds(&self, job: &Job, delay: Duration) -> Result<()> {
        if let Some(q) = &self.rds_wiring()?.queue {
            q.send(
                &RdsWorkMessage {
                    org_id: job.org_id,
                    job_id: job.id,
                }
                .into(),
                delay.min(rds::MAX_DELAY),
            )
            .await?;
        }
        Ok(())
    }

    // ---- the step ---------------------------------------------------------------------

    /// Starts or re-checks an RDS job (one delivery of its work message): moves every
    /// database as far as AWS allows now, records the outcome and asks to be called
    /// again while anything is in progress. A finished job is returned as it is.
    pub async fn rds_step(&self, org: &OrgId, job_id: &JobId) -> Result<Job> {
        let wiring = self.rds_wiring()?.clone();
        let mut job = self.store.get::<Job>(org, job_id).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        let expected = job.version;
        let now = self.now();
        let mut work = job
            .rds
            .clone()
            .ok_or_else(|| Error::permanent(format!("job {job_id} is not an RDS job")))?;
        if job.state == JobState::Cancelling {
            for item in work.items.iter().filter(|i| i.phase == RdsPhase::Copying) {
                self.release_copy(org, &work, &item.database, &job.id).await?;
            }
            job.transition(
                JobState::Canceled,
                Some("canceled; operations already started in AWS finish there".into()),
                now,
            )?;
            return self.store.update(job, expected).await;
        }
        let role = match self.store.find::<CloudAccount>(org, &work.cloud_account_id).await? {
            Some(a) => a.role(),
            None => None,
        };
        let Some(role) = role else {
            if job.state == JobState::Pending {
                job.transition(JobState::Running, None, now)?;
            }
            job.transition(
                JobState::Failed,
                Some(format!(
                    "cloud account {} is gone or has no role",
                    work.cloud_account_id
                )),
                now,
            )?;
            return self.store.update(job, expected).await;
        };
        if job.state == JobState::Pending {
            if let Err(e) = self.resolve_items(&wiring, &role, &mut job, &mut work).await {
                job.transition(JobState::Running, None, now)?;
                job.transition(JobState::Failed, Some(e.to_string()), now)?;
                job.rds = Some(work);
                return self.store.update(job, expected).await;
            }
            // AWS does not snapshot a database while a copy of it is made.
            if job.job_type == JobType::RdsBackup {
                let mut reasons = Vec::new();
                let (account, region) = (work.cloud_account_id, work.region.clone());
                for item in work.items.iter_mut() {
                    let key = RdsDatabaseKey {
                        cloud_account_id: account,
                        region: region.clone(),
                        database: item.database.clone(),
                    };
                    if let Some(copy) = self.store.find::<RdsCopyInProgress>(org, &key).await?
                        && copy.job_id != job.id
                        && self.job_unfinished(org, &copy.job_id).await?
                    {
                        let reason = format!(
                            "a copy of {} {} is in progress (job {})",
                            kind_word(&item.database),
                            item.database.identifier,
                            copy.job_id
                        );
                        item.phase = RdsPhase::Skipped;
                        item.error = Some(reason.clone());
                        reasons.push(reason);
                    }
                }
                if !work.items.is_empty() && reasons.len() == work.items.len() {
                    job.transition(JobState::Skipped, Some(reasons.join("; ")), now)?;
                    job.rds = Some(work);
                    return self.store.update(job, expected).await;
                }
                for r in reasons {
                    job.log(now, format!("skipped: {r}"));
                }
            }
            job.transition(JobState::Running, None, now)?;
        }
        work.checks += 1;
        for i in 0..work.items.len() {
            if work.items[i].phase.is_final() {
                continue;
            }
            let mut item = work.items[i].clone();
            match self.advance(&wiring, &role, &mut job, &work, &mut item).await {
                Ok(()) => {}
                // Throttling or a network hiccup: try again at the next check.
                Err(e) if e.is_retryable() => job.log(now, format!("{}: will retry: {e}", item.database.identifier)),
                Err(e) => {
                    if item.phase == RdsPhase::Copying {
                        self.release_copy(org, &work, &item.database, &job.id).await?;
                    }
                    self.fail_item(&mut job, &mut item, e.to_string()).await?;
                }
            }
            work.items[i] = item;
        }
        let open = work.items.iter().filter(|i| !i.phase.is_final()).count();
        if open > 0 && work.checks >= MAX_CHECKS {
            for i in 0..work.items.len() {
                if !work.items[i].phase.is_final() {
                    let mut item = work.items[i].clone();
                    if item.phase == RdsPhase::Copying {
                        self.release_copy(org, &work, &item.database, &job.id).await?;
                    }
                    self.fail_item(
                        &mut job,
                        &mut item,
                        format!("still in progress after {MAX_CHECKS} checks"),
                    )
                    .await?;
                    work.items[i] = item;
                }
            }
        }
        let open = work.items.iter().filter(|i| !i.phase.is_final()).count();
        if open == 0 {
            let done = work.items.iter().filter(|i| i.phase == RdsPhase::Done).count();
            let (state, reason) = if done == work.items.len() {
                (JobState::Completed, None)
            } else if done == 0 {
                let why: Vec<String> = work.items.iter().filter_map(|i| i.error.clone()).collect();
                (
                    JobState::Failed,
                    Some(if why.is_empty() {
                        "no database to work on".to_string()
                    } else {
                        why.join("; ")
                    }),
                )
            } else {
                (
                    JobState::Partial,
                    Some(format!("{} of {} databases done", done, work.items.len())),
                )
            };
            job.transition(state, reason, self.now())?;
        }
        job.rds = Some(work);
        job.updated_at = self.now();
        let job = self.store.update(job, expected).await?;
        if open > 0 {
            self.enqueue_rds(&job, RECHECK_DELAY).await?;
        }
        Ok(job)
    }

    async fn job_unfinished(&self, org: &OrgId, id: &JobId) -> Result<bool> {
        Ok(match self.store.find::<Job>(org, id).await? {
            Some(j) => !j.state.is_terminal(),
            None => false,
        })
    }

    /// Fills the job's databases when the definition chooses them by tag.
    async fn resolve_items(
        &self,
        wiring: &RdsWiring,
        role: &RoleRef,
        job: &mut Job,
        work: &mut RdsJobWork,
    ) -> Result<()> {
        if !work.items.is_empty() || work.restore.is_some() {
            return Ok(());
        }
        let Some(def_id) = work.definition_id else {
            return Ok(());
        };
        let def = self.store.get::<RdsBackupDefinition>(&job.org_id, &def_id).await?;
        if let Some(tag) = &def.spec.tag {
            let found = wiring.ops.databases_with_tag(role, &work.region, tag).await?;
            job.log(
                self.now(),
                format!("{} databases carry the tag {}={}", found.len(), tag.key, tag.value),
            );
            work.items = found.into_iter().map(RdsWorkItem::new).collect();
        }
        Ok(())
    }

    async fn fail_item(&self, job: &mut Job, item: &mut RdsWorkItem, reason: String) -> Result<()> {
        let now = self.now();
        job.log(now, format!("{}: failed: {reason}", item.database.identifier));
        job.counters.errors += 1;
        for rp in [item.recovery_point_id, item.copy_recovery_point_id]
            .into_iter()
            .flatten()
        {
            if let Some(mut p) = self.store.find::<RdsRecoveryPoint>(&job.org_id, &rp).await?
                && p.state == RdsRecoveryPointState::Creating
            {
                let v = p.version;
                p.state = RdsRecoveryPointState::Failed;
                p.updated_at = now;
                self.store.update(p, v).await?;
            }
        }
        item.phase = RdsPhase::Failed;
        item.error = Some(reason);
        Ok(())
    }

    /// Moves one database as far as it goes now.
    async fn advance(
        &self,
        wiring: &RdsWiring,
        role: &RoleRef,
        job: &mut Job,
        work: &RdsJobWork,
        item: &mut RdsWorkItem,
    ) -> Result<()> {
        let ops = &wiring.ops;
        let now = self.now();
        loop {
            match (job.job_type, item.phase) {
                (JobType::RdsBackup, RdsPhase::Start) => {
                    let rp_id = RecoveryPointId::new();
                    let expires = job.recovery_point_expires_at;
                    let name = rds::snapshot_identifier(&item.database.identifier, now.into())?;
                    let info = ops
                        .create_snapshot(
                            role,
                            &work.region,
                            &item.database,
                            &name,
                            &rds::snapshot_tags(&rp_id, expires),
                        )
                        .await?;
                    job.counters.snapshots_attempted += 1;
                    self.store
                        .create(RdsRecoveryPoint {
                            id: rp_id,
                            org_id: job.org_id,
                            definition_id: work.definition_id,
                            job_id: job.id,
                            cloud_account_id: work.cloud_account_id,
                            rp_type: RdsRecoveryPointType::Snapshot,
                            state: RdsRecoveryPointState::Creating,
                            database: item.database.clone(),
                            snapshot: info.snapshot.clone(),
                            source_recovery_point_id: None,
                            engine: info.engine.clone(),
                            encrypted: info.encrypted,
                            expires_at: expires,
                            keep_last: job.retention.and_then(|r| r.keep_last),
                            created_at: now,
                            updated_at: now,
                            version: 0,
                        })
                        .await?;
                    job.log(now, format!("{}: snapshot {name} started", item.database.identifier));
                    item.snapshot = Some(info.snapshot);
                    item.recovery_point_id = Some(rp_id);
                    item.phase = RdsPhase::Snapshotting;
                }
                (JobType::RdsBackup, RdsPhase::Snapshotting) => {
                    let snap = item
                        .snapshot
                        .clone()
                        .ok_or_else(|| Error::permanent("snapshotting without a snapshot"))?;
                    let state = match ops.describe_snapshot(role, &snap).await? {
                        Some(info) => info.state,
                        None => RdsOperationState::Failed(format!("snapshot {} vanished", snap.identifier)),
                    };
                    match state {
                        RdsOperationState::InProgress => return Ok(()),
                        RdsOperationState::Failed(why) => return Err(Error::conflict(why)),
                        RdsOperationState::Available => {
                            job.counters.snapshots_completed += 1;
                            self.mark_available(job, item.recovery_point_id).await?;
                            job.log(
                                now,
                                format!("{}: snapshot {} available", item.database.identifier, snap.identifier),
                            );
                            let chained = work.copy.as_ref().is_some_and(|c| c.policy_id.is_none());
                            if chained {
                                let source_rp = item.recovery_point_id;
                                self.start_copy(ops.as_ref(), role, job, work, item, snap, source_rp)
                                    .await?;
                            } else {
                                item.phase = RdsPhase::Done;
                            }
                        }
                    }
                }
                (JobType::RdsCopy, RdsPhase::Start) => {
                    let latest = ops
                        .latest_snapshot(role, &work.region, &item.database)
                        .await?
                        .ok_or_else(|| {
                            Error::conflict(format!(
                                "{} has no available snapshot to copy",
                                item.database.identifier
                            ))
                        })?;
                    job.log(
                        now,
                        format!(
                            "{}: copying its latest snapshot {} ({})",
                            item.database.identifier,
                            latest.snapshot.identifier,
                            latest.snapshot_type.as_deref().unwrap_or("manual")
                        ),
                    );
                    let source_rp = latest
                        .tags
                        .get(rds::TAG_RECOVERY_POINT)
                        .and_then(|t| t.parse::<RecoveryPointId>().ok());
                    self.start_copy(ops.as_ref(), role, job, work, item, latest.snapshot, source_rp)
                        .await?;
                }
                (JobType::RdsBackup | JobType::RdsCopy, RdsPhase::Copying) => {
                    let copy = item
                        .copy
                        .clone()
                        .ok_or_else(|| Error::permanent("copying without a copy"))?;
                    let state = match ops.describe_snapshot(role, &copy).await? {
                        Some(info) => info.state,
                        None => RdsOperationState::Failed(format!("copy {} vanished", copy.identifier)),
                    };
                    match state {
                        RdsOperationState::InProgress => return Ok(()),
                        RdsOperationState::Failed(why) => return Err(Error::conflict(why)),
                        RdsOperationState::Available => {
                            job.counters.copies_completed += 1;
                            self.mark_available(job, item.copy_recovery_point_id).await?;
                            job.log(
                                now,
                                format!(
                                    "{}: copy {} available in {}",
                                    item.database.identifier, copy.identifier, copy.region
                                ),
                            );
                            let delete_source = work.copy.as_ref().is_some_and(|c| c.delete_source_after_copy);
                            // Only Arca's own snapshots are deleted (never automated ones).
                            if delete_source
                                && let (Some(source), Some(source_rp)) = (&item.snapshot, item.recovery_point_id)
                            {
                                ops.delete_snapshot(role, source).await?;
                                if let Some(rp) = self.store.find::<RdsRecoveryPoint>(&job.org_id, &source_rp).await? {
                                    self.store
                                        .delete::<RdsRecoveryPoint>(&job.org_id, &source_rp, rp.version)
                                        .await?;
                                }
                                job.log(
                                    now,
                                    format!(
                                        "{}: source snapshot {} deleted",
                                        item.database.identifier, source.identifier
                                    ),
                                );
                            }
                            self.release_copy(&job.org_id, work, &item.database, &job.id).await?;
                            item.phase = RdsPhase::Done;
                        }
                    }
                }
                (JobType::RdsRestore, RdsPhase::Start) => {
                    let spec = work
                        .restore
                        .as_ref()
                        .ok_or_else(|| Error::permanent("a restore job without its request"))?;
                    let (source_database, restore_time, use_latest) = match &spec.source {
                        RdsRestoreSource::PointInTime {
                            database,
                            restore_time,
                            use_latest_restorable_time,
                            ..
                        } => (
                            Some(database.identifier.clone()),
                            *restore_time,
                            *use_latest_restorable_time,
                        ),
                        _ => (None, None, false),
                    };
                    let mut tags = std::collections::BTreeMap::new();
                    tags.insert("arca:restore-job".to_string(), job.id.to_string());
                    let request = RdsRestoreRequest {
                        cluster: item.database.cluster,
                        target: spec.target.clone(),
                        // The restore runs in the snapshot's region: its identifier names it.
                        snapshot: item.snapshot.as_ref().map(|s| s.identifier.clone()),
                        source_database,
                        restore_time,
                        use_latest_restorable_time: use_latest,
                        tags,
                    };
                    ops.restore(role, &work.region, &request).await?;
                    job.log(
                        now,
                        format!("{}: restore started in {}", item.database.identifier, work.region),
                    );
                    item.phase = RdsPhase::Restoring;
                }
                (JobType::RdsRestore, RdsPhase::Restoring) => {
                    let info = ops.describe_database(role, &work.region, &item.database).await?;
                    match info.state {
                        RdsOperationState::InProgress => return Ok(()),
                        RdsOperationState::Failed(why) => return Err(Error::conflict(why)),
                        RdsOperationState::Available => {
                            job.log(now, format!("{}: available", item.database.identifier));
                            item.phase = RdsPhase::Done;
                        }
                    }
                }
                (_, phase) if phase.is_final() => return Ok(()),
                (t, phase) => {
                    return Err(Error::permanent(format!("an {t:?} job has nothing to do in {phase:?}")));
                }
            }
        }
    }

    async fn mark_available(&self, job: &Job, rp: Option<RecoveryPointId>) -> Result<()> {
        let Some(rp) = rp else { return Ok(()) };
        if let Some(mut p) = self.store.find::<RdsRecoveryPoint>(&job.org_id, &rp).await? {
            let v = p.version;
            p.state = RdsRecoveryPointState::Available;
            p.updated_at = self.now();
            self.store.update(p, v).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_copy(
        &self,
        ops: &dyn RdsOperations,
        role: &RoleRef,
        job: &mut Job,
        work: &RdsJobWork,
        item: &mut RdsWorkItem,
        source: RdsSnapshotRef,
        source_rp: Option<RecoveryPointId>,
    ) -> Result<()> {
        let copy = work
            .copy
            .as_ref()
            .ok_or_else(|| Error::invalid("copy", "the definition has no copy settings"))?;
        let now = self.now();
        let key = db_key(work, &item.database);
        let marker = RdsCopyInProgress {
            key: key.clone(),
            org_id: job.org_id,
            job_id: job.id,
            started_at: now,
            version: 0,
        };
        match self.store.create(marker).await {
            Ok(_) => {}
            Err(Error::Conflict { .. }) => {
                let held = self.store.get::<RdsCopyInProgress>(&job.org_id, &key).await?;
                if held.job_id != job.id && self.job_unfinished(&job.org_id, &held.job_id).await? {
                    item.phase = RdsPhase::Skipped;
                    item.error = Some(format!("a copy of it is already in progress (job {})", held.job_id));
                    return Ok(());
                }
                // A stale marker (its job ended without releasing it): take it over.
                let v = held.version;
                let mut mine = held;
                mine.job_id = job.id;
                mine.started_at = now;
                self.store.update(mine, v).await?;
            }
            Err(e) => return Err(e),
        }
        let rp_id = RecoveryPointId::new();
        let expires = match copy.retain_days {
            Some(days) => Some(now + Duration::from_secs(u64::from(days) * 86_400)),
            None => job.recovery_point_expires_at,
        };
        let target = rds::copy_identifier(&source.identifier, now.into())?;
        job.counters.copies_attempted += 1;
        let info = match ops
            .copy_snapshot(
                role,
                &source,
                &copy.destination_region,
                &target,
                copy.kms_key_id.as_deref(),
                &rds::snapshot_tags(&rp_id, expires),
            )
            .await
        {
            Ok(info) => info,
            Err(e) => {
                self.release_copy(&job.org_id, work, &item.database, &job.id).await?;
                return Err(e);
            }
        };
        self.store
            .create(RdsRecoveryPoint {
                id: rp_id,
                org_id: job.org_id,
                definition_id: work.definition_id,
                job_id: job.id,
                cloud_account_id: work.cloud_account_id,
                rp_type: RdsRecoveryPointType::Copy,
                state: RdsRecoveryPointState::Creating,
                database: item.database.clone(),
                snapshot: info.snapshot.clone(),
                source_recovery_point_id: source_rp,
                engine: info.engine.clone(),
                encrypted: info.encrypted,
                expires_at: expires,
                keep_last: job.retention.and_then(|r| r.keep_last),
                created_at: now,
                updated_at: now,
                version: 0,
            })
            .await?;
        job.log(
            now,
            format!(
                "{}: copy of {} to {} started as {target}",
                item.database.identifier, source.identifier, copy.destination_region
            ),
        );
        item.snapshot = Some(source);
        if item.recovery_point_id.is_none() {
            // Arca's own snapshot (tagged): deletable once copied, if so configured.
            item.recovery_point_id = source_rp;
        }
        item.copy = Some(info.snapshot);
        item.copy_recovery_point_id = Some(rp_id);
        item.phase = RdsPhase::Copying;
        Ok(())
    }

    async fn release_copy(&self, org: &OrgId, work: &RdsJobWork, db: &RdsDatabaseRef, job: &JobId) -> Result<()> {
        let key = db_key(work, db);
        if let Some(marker) = self.store.find::<RdsCopyInProgress>(org, &key).await?
            && marker.job_id == *job
        {
            match self
                .store
                .delete::<RdsCopyInProgress>(&marker.org_id, &key, marker.version)
                .await
            {
                Ok(()) | Err(Error::NotFound { .. }) | Err(Error::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // ---- retention --------------------------------------------------------------------

    /// Deletes the RDS snapshots and copies whose expiry has passed, in AWS through the
    /// adapter, then their records. A point still creating, among the newest `keepLast`
    /// of its group ([`crate::retention::plan_rds`]), or whose account has no working role, is
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
        // `keepLast` counts every point of a definition, expired or not: read the orgs'
        // points once each (only orgs with a due point of some definition).
        let mut siblings = Vec::new();
        let orgs: std::collections::BTreeSet<OrgId> = expired
            .iter()
            .filter(|rp| rp.definition_id.is_some())
            .map(|rp| rp.org_id)
            .collect();
        for org in orgs {
            siblings.extend(self.store.list_all::<RdsRecoveryPoint>(&org).await?);
        }
        let plan = crate::retention::plan_rds(&expired, &siblings);
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
