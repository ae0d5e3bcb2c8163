//! The step: one check of an RDS job against AWS, re-queued until it ends.

use crate::control_plane::ControlPlane;
use crate::ids::{JobId, OrgId, RecoveryPointId};
use crate::model::cloud::account::{CloudAccount, RoleRef};
use crate::model::job::{Job, JobState, JobType};
use crate::model::rds::{
    self, MAX_CHECKS, RECHECK_DELAY, RdsBackupDefinition, RdsCopyInProgress, RdsDatabaseKey, RdsDatabaseRef,
    RdsJobWork, RdsPhase, RdsRecoveryPoint, RdsRecoveryPointState, RdsRecoveryPointType, RdsRestoreSource,
    RdsSnapshotRef, RdsWorkItem,
};
use crate::ports::rds::{RdsOperationState, RdsOperations, RdsRestoreRequest};
use crate::{Error, Result};
use std::time::Duration;

use super::*;

impl ControlPlane {
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
            if work.verifies.is_some()
                && let Some(role) = self
                    .store
                    .find::<CloudAccount>(org, &work.cloud_account_id)
                    .await?
                    .and_then(|a| a.role())
            {
                for i in 0..work.items.len() {
                    let item = work.items[i].clone();
                    let left = self
                        .discard_verification_database(wiring.ops.as_ref(), &role, &mut job, &work, &item)
                        .await;
                    work.items[i].error = left.or(item.error);
                }
            }
            job.transition(
                JobState::Canceled,
                Some("canceled; operations already started in AWS finish there".into()),
                now,
            )?;
            Box::pin(self.record_rds_verification(&job, &work)).await?;
            job.rds = Some(work);
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
            // Boxed (as are the verification's record and start below): their futures are
            // large, and the step's own future is held on its caller's stack.
            match Box::pin(self.advance(&wiring, &role, &mut job, &work, &mut item)).await {
                Ok(()) => {}
                // Throttling or a network hiccup: try again at the next check.
                Err(e) if e.is_retryable() => job.log(now, format!("{}: will retry: {e}", item.database.identifier)),
                Err(e) => {
                    if item.phase == RdsPhase::Copying {
                        self.release_copy(org, &work, &item.database, &job.id).await?;
                    }
                    let left = self
                        .discard_verification_database(wiring.ops.as_ref(), &role, &mut job, &work, &item)
                        .await;
                    self.fail_item(&mut job, &mut item, with_left(e.to_string(), left))
                        .await?;
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
                    let left = self
                        .discard_verification_database(wiring.ops.as_ref(), &role, &mut job, &work, &item)
                        .await;
                    self.fail_item(
                        &mut job,
                        &mut item,
                        with_left(format!("still in progress after {MAX_CHECKS} checks"), left),
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
            Box::pin(self.record_rds_verification(&job, &work)).await?;
        }
        job.rds = Some(work);
        job.updated_at = self.now();
        let job = self.store.update(job, expected).await?;
        if open > 0 {
            self.enqueue_rds(&job, RECHECK_DELAY).await?;
        } else {
            Box::pin(self.rds_verify_after_backup(&job)).await?;
        }
        Ok(job)
    }

    pub(in crate::control_plane) async fn job_unfinished(&self, org: &OrgId, id: &JobId) -> Result<bool> {
        Ok(match self.store.find::<Job>(org, id).await? {
            Some(j) => !j.state.is_terminal(),
            None => false,
        })
    }

    /// Fills the job's databases when the definition chooses them by tag.
    pub(in crate::control_plane) async fn resolve_items(
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

    pub(in crate::control_plane) async fn fail_item(
        &self,
        job: &mut Job,
        item: &mut RdsWorkItem,
        reason: String,
    ) -> Result<()> {
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
    pub(in crate::control_plane) async fn advance(
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
                            verification: None,
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
                    if !snapshot_available(ops.as_ref(), role, &snap, "snapshot").await? {
                        return Ok(());
                    }
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
                    if !snapshot_available(ops.as_ref(), role, &copy, "copy").await? {
                        return Ok(());
                    }
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
                    if delete_source && let (Some(source), Some(source_rp)) = (&item.snapshot, item.recovery_point_id) {
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
                    if work.verifies.is_some() {
                        // What allows the verification to delete it, and nothing else.
                        tags.insert(rds::TAG_VERIFICATION.to_string(), job.id.to_string());
                    }
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
                            if work.verifies.is_some() {
                                self.remove_verification_database(ops.as_ref(), role, job, work, item)
                                    .await?;
                            } else {
                                item.phase = RdsPhase::Done;
                            }
                        }
                    }
                }
                (JobType::RdsRestore, RdsPhase::Removing) => {
                    match ops.describe_database(role, &work.region, &item.database).await {
                        Err(Error::NotFound { .. }) => {
                            job.log(now, format!("{}: deleted", item.database.identifier));
                            item.phase = RdsPhase::Done;
                        }
                        // Still `deleting`.
                        Ok(_) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
                (_, phase) if phase.is_final() => return Ok(()),
                (t, phase) => {
                    return Err(Error::permanent(format!("an {t:?} job has nothing to do in {phase:?}")));
                }
            }
        }
    }

    pub(in crate::control_plane) async fn mark_available(&self, job: &Job, rp: Option<RecoveryPointId>) -> Result<()> {
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
    pub(in crate::control_plane) async fn start_copy(
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
                verification: None,
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

    pub(in crate::control_plane) async fn release_copy(
        &self,
        org: &OrgId,
        work: &RdsJobWork,
        db: &RdsDatabaseRef,
        job: &JobId,
    ) -> Result<()> {
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
}

/// A failure's reason, with what a verification could not clean up after it.
fn with_left(reason: String, left: Option<String>) -> String {
    match left {
        Some(left) => format!("{reason}; {left}"),
        None => reason,
    }
}

/// Whether a snapshot (or copy) the step waits for is available: `false` while AWS is still
/// making it, a `Conflict` when it failed or vanished.
async fn snapshot_available(
    ops: &dyn RdsOperations,
    role: &RoleRef,
    snapshot: &RdsSnapshotRef,
    what: &str,
) -> Result<bool> {
    let state = match ops.describe_snapshot(role, snapshot).await? {
        Some(info) => info.state,
        None => RdsOperationState::Failed(format!("{what} {} vanished", snapshot.identifier)),
    };
    match state {
        RdsOperationState::InProgress => Ok(false),
        RdsOperationState::Failed(why) => Err(Error::conflict(why)),
        RdsOperationState::Available => Ok(true),
    }
}
