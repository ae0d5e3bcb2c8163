//! What an agent reports about the job it leased: lease renewals, progress, a restore's
//! per-object results, and the outcome (which makes the recovery point and ends the job).

use super::*;

impl ControlPlane {
    /// Renews the job's lease. The answer is the job: CANCELLING tells the agent to stop.
    pub async fn agent_extend_lease(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
        request: LeaseRequest,
    ) -> Result<Job> {
        let state = self.current_session(agent, session).await?;
        let job = self.agent_job(agent, id).await?;
        if job.state.is_terminal() || job.state == JobState::Pending {
            return Err(lease_lost(format!("job {id} is {:?}", job.state)));
        }
        if let (Some(q), Some(queue)) = (&self.queue, state.queue) {
            q.extend(&queue, &Receipt(request.lease_token), self.config.lease)
                .await
                .map_err(|e| match e {
                    Error::Conflict { .. } | Error::NotFound { .. } => lease_lost(format!("job {id}")),
                    other => other,
                })?;
        }
        Ok(job)
    }

    /// Records progress (counters, bytes, log lines) of a running job.
    pub async fn agent_progress(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
        report: ProgressReport,
    ) -> Result<Job> {
        self.current_session(agent, session).await?;
        let report = &report;
        self.retrying(|| async move {
            let mut job = self.agent_job(agent, id).await?;
            if !matches!(job.state, JobState::Running | JobState::Cancelling) {
                return Err(lease_lost(format!("job {id} is {:?}", job.state)));
            }
            let expected = job.version;
            let now = self.now();
            if let Some(c) = &report.counters {
                job.counters = c.clone();
            }
            if let Some(p) = &report.progress {
                job.progress = p.clone();
            }
            for line in report.messages.iter().take(50) {
                job.log(now, line.as_str());
            }
            job.updated_at = now;
            self.store.update(job, expected).await.map_err(retry_on_stale)
        })
        .await
    }

    /// Stores one batch of a restore job's per-object results (replacing an earlier
    /// batch of the same `seq`, so a retried call is harmless).
    pub async fn agent_restore_results(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
        batch: crate::model::agent::RestoreResultsBatch,
    ) -> Result<()> {
        use crate::model::restore::{
            MAX_OBJECTS_PER_BATCH, MAX_RESULT_BATCHES, RestoreObjectsPage, RestoreObjectsPageId,
        };
        let job = self.running_job(agent, session, id).await?;
        let (JobType::K8sRestore, Some(restore_id)) = (job.job_type, job.restore_id) else {
            return Err(Error::invalid("id", "object results belong to K8S_RESTORE jobs"));
        };
        if batch.objects.len() > MAX_OBJECTS_PER_BATCH {
            return Err(Error::invalid(
                "objects",
                format!("at most {MAX_OBJECTS_PER_BATCH} objects per batch"),
            ));
        }
        if batch.seq >= MAX_RESULT_BATCHES {
            return Err(Error::invalid("seq", format!("below {MAX_RESULT_BATCHES}")));
        }
        let page_id = RestoreObjectsPageId {
            restore_id,
            seq: batch.seq,
        };
        let page = RestoreObjectsPage {
            id: page_id,
            org_id: agent.org_id,
            objects: batch.objects.into_iter().map(|o| o.bounded()).collect(),
            version: 0,
        };
        let page = &page;
        self.retrying(|| async move {
            match self.store.find::<RestoreObjectsPage>(&agent.org_id, &page_id).await? {
                Some(existing) => self
                    .store
                    .update(page.clone(), existing.version)
                    .await
                    .map(|_| ())
                    .map_err(retry_on_stale),
                None => self
                    .store
                    .create(page.clone())
                    .await
                    .map(|_| ())
                    .map_err(retry_on_conflict),
            }
        })
        .await
    }

    /// Records how a job ended. A completed backup becomes a READY recovery point, a
    /// completed deletion removes its point, all in the job's transaction; then the
    /// message is acknowledged. Repeating the same completion is harmless.
    pub async fn agent_complete(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
        report: CompletionReport,
    ) -> Result<Job> {
        let state = self.current_session(agent, session).await?;
        if !matches!(
            report.state,
            JobState::Completed | JobState::Partial | JobState::Failed | JobState::Canceled
        ) {
            return Err(Error::invalid(
                "state",
                "a job ends COMPLETED, PARTIAL, FAILED or CANCELED",
            ));
        }
        let report = &report;
        let (job, deleted) = self
            .retrying(|| async move {
                let mut job = self.agent_job(agent, id).await?;
                if job.state.is_terminal() {
                    // The same completion again (its answer was lost); a COMPLETED backup
                    // may since have become PARTIAL for EBS volumes AWS would not snapshot.
                    if job.state == report.state
                        || (report.state == JobState::Completed && job.state == JobState::Partial)
                    {
                        return Ok((job, None));
                    }
                    // Ended without this agent (dead-lettered, canceled): the agent's
                    // answer to that is the same as to a lapsed lease, so say so.
                    return Err(lease_lost(format!("job {id} already ended {:?}", job.state)));
                }
                let expected = job.version;
                let now = self.now();
                job.transition(report.state, report.reason.clone(), now)?;
                if let Some(c) = &report.counters {
                    job.counters = c.clone();
                }
                if let Some(p) = &report.progress {
                    job.progress = p.clone();
                }
                job.log(now, format!("ended {:?}", report.state));
                let mut tx = Tx::new();
                let deleted = self.record_outcome(&mut tx, &mut job, report).await?;
                tx.update(&mut job, expected)?;
                self.release_active(&mut tx, &job).await?;
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok((job, deleted))
            })
            .await?;
        if let (Some(q), Some(queue)) = (&self.queue, state.queue) {
            // The outcome is recorded; a failed ack only means one more delivery, which
            // `take_delivered` drops because the job has ended.
            let _ = q.ack(&queue, &Receipt(report.lease_token.clone())).await;
        }
        // FAILED and PARTIAL are alerted once (the event id is the job's): a store failure
        // fails the call, and the agent's retried completion comes back here.
        self.alert_job_outcome(&job).await?;
        match deleted {
            // A failure (the linked role refused, AWS throttled) leaves the point DELETING:
            // retention retries it and lists it in `awsCleanupFailed`. The job's own
            // work, the data in the destination, is done.
            Some(rp) if rp.data_deleted => {
                let _ = self.finish_point_deletion(rp).await;
            }
            // Gone: a retiring destination goes after its last point.
            Some(rp) => {
                if let Some(location) = &rp.location {
                    self.finish_retiring(&agent.org_id, &location.destination_id).await?;
                }
            }
            None => {}
        }
        // EBS snapshots taken during a backup that made no point go; a failure fails the
        // call, and the agent's retried completion comes back here.
        if job.job_type == JobType::K8sBackup && !matches!(job.state, JobState::Completed | JobState::Partial) {
            self.discard_ebs_snapshots(&job).await?;
        }
        // What the agent found on the bucket goes on the destination; a store failure
        // fails the call, and the agent's retried completion comes back here.
        if let Some(found) = report.backup.as_ref().and_then(|b| b.bucket_lock) {
            self.note_bucket_lock(&job, found).await?;
        }
        // EBS snapshots and EKS metadata of a linked cluster, once the point exists. AWS
        // refusals are recorded with the point; a store failure fails the call, and the
        // agent's retried completion (the job has ended the same way) comes back here.
        let unprotected = self.protect_on_aws(&job, report).await?;
        // Its verification, when the definition asks for one after each backup; a store
        // failure fails the call, and the agent's retried completion comes back here.
        if job.job_type == JobType::K8sBackup {
            self.verify_after_backup(&job).await?;
        }
        if unprotected.is_empty() || job.state != JobState::Completed {
            return Ok(job);
        }
        let job = self.ebs_unprotected(&job, unprotected).await?;
        // Volumes AWS would not snapshot made it PARTIAL: that is alerted too.
        self.alert_job_outcome(&job).await?;
        Ok(job)
    }

    /// Records on the job's destination the Object Lock configuration its agent found on
    /// the bucket, when it differs from what the destination says.
    async fn note_bucket_lock(&self, job: &Job, found: crate::model::destination::BucketLock) -> Result<()> {
        let Some(rp) = job.recovery_point_id else {
            return Ok(());
        };
        let Some(location) = self
            .store
            .find::<RecoveryPoint>(&job.org_id, &rp)
            .await?
            .and_then(|rp| rp.location)
        else {
            return Ok(());
        };
        let (org, dest_id, now) = (job.org_id, location.destination_id, self.now());
        self.retrying(|| async move {
            let Some(mut dest) = self.store.find::<Destination>(&org, &dest_id).await? else {
                return Ok(());
            };
            if dest.bucket_lock.as_ref().is_some_and(|r| r.lock == found) {
                return Ok(());
            }
            let expected = dest.version;
            dest.bucket_lock = Some(crate::model::destination::BucketLockReport {
                lock: found,
                reported_at: now,
                job_id: job.id,
            });
            self.store
                .update(dest, expected)
                .await
                .map(|_| ())
                .map_err(retry_on_stale)
        })
        .await
    }

    /// What a job's end writes besides the job. Returns the point a completed deletion
    /// removed (or marked `dataDeleted`), for what follows the commit.
    pub(in crate::control_plane) async fn record_outcome(
        &self,
        tx: &mut Tx,
        job: &mut Job,
        report: &CompletionReport,
    ) -> Result<Option<RecoveryPoint>> {
        let succeeded = matches!(report.state, JobState::Completed | JobState::Partial);
        match job.job_type {
            JobType::K8sBackup if succeeded => {
                let Some(def_id) = job.definition_id else {
                    return Ok(None);
                };
                if let Some(result) = &report.backup {
                    result.check()?;
                }
                let def = self.store.find::<BackupDefinition>(&job.org_id, &def_id).await?;
                let location = match &def {
                    Some(d) => {
                        let cluster = job.cluster_id.unwrap_or(d.spec.cluster_id);
                        self.location_of(&job.org_id, d, &cluster, report).await?
                    }
                    None => None,
                };
                let result = report.backup.clone().unwrap_or_default();
                let now = self.now();
                let mut rp = RecoveryPoint {
                    // Chosen earlier when EBS snapshots were taken during the job (their
                    // tags name it); else a new one (`Default` makes a fresh id).
                    id: job.recovery_point_id.unwrap_or_default(),
                    org_id: job.org_id,
                    cluster_id: job.cluster_id.unwrap_or_default(),
                    definition_id: def_id,
                    job_id: job.id,
                    rp_type: if def.is_some_and(|d| d.spec.pv_mode == PvMode::SnapshotAndCopy) {
                        RecoveryPointType::Copy
                    } else {
                        RecoveryPointType::Snapshot
                    },
                    state: RecoveryPointState::Ready,
                    partial: report.state == JobState::Partial,
                    data_deleted: false,
                    expires_at: job.recovery_point_expires_at,
                    locked: false,
                    // What the agent wrote with: an agent that did not lock reports none,
                    // and the point does not claim it.
                    object_lock: result.object_lock.filter(|_| location.is_some()),
                    rule: job.rule,
                    keep_last: job.retention.and_then(|r| r.keep_last),
                    location,
                    resource_count: result.resource_count,
                    pv_count: result.pv_count,
                    snapshot_bytes: result.snapshot_bytes,
                    copy_bytes: result.copy_bytes,
                    // Bounded here too: the agent's word is not trusted with the item size.
                    details: result.details.bounded(),
                    verification: None,
                    created_at: now,
                    updated_at: now,
                    version: 0,
                };
                job.recovery_point_id = Some(rp.id);
                tx.create(&mut rp)?;
            }
            // A failed backup makes no point: the id chosen for its EBS snapshots (which
            // are deleted) names nothing.
            JobType::K8sBackup => job.recovery_point_id = None,
            JobType::DeleteBackup => {
                if let Some(rp_id) = job.recovery_point_id
                    && let Some(mut rp) = self.store.find::<RecoveryPoint>(&job.org_id, &rp_id).await?
                {
                    if report.state == JobState::Completed {
                        self.point_data_deleted(tx, &rp).await?;
                        if self
                            .store
                            .find::<crate::model::cloud::ebs::RecoveryPointAws>(&job.org_id, &rp_id)
                            .await?
                            .is_some()
                        {
                            // Its EBS snapshots go before the point does
                            // (`finish_point_deletion`): never a point without its parts.
                            let v = rp.version;
                            rp.data_deleted = true;
                            rp.updated_at = self.now();
                            tx.update(&mut rp, v)?;
                        } else {
                            // The point disappears only now that its data is gone.
                            tx.delete::<RecoveryPoint>(&job.org_id, &rp_id, rp.version);
                        }
                        return Ok(Some(rp));
                    } else if rp.state == RecoveryPointState::Deleting {
                        let v = rp.version;
                        rp.state = RecoveryPointState::Ready;
                        rp.updated_at = self.now();
                        tx.update(&mut rp, v)?;
                    }
                }
            }
            JobType::K8sRestore => self.record_verification(tx, job, report.verification.as_ref()).await?,
            JobType::RepositoryMaintenance if report.state.is_terminal() => {
                self.maintenance_ended(
                    tx,
                    job,
                    report.state,
                    report.maintenance.as_ref(),
                    report.reason.as_deref(),
                )
                .await?;
            }
            _ => {}
        }
        Ok(None)
    }

    pub(in crate::control_plane) async fn location_of(
        &self,
        org_id: &OrgId,
        def: &BackupDefinition,
        cluster: &crate::ids::ClusterId,
        report: &CompletionReport,
    ) -> Result<Option<RecoveryPointLocation>> {
        let org = self.store.get::<Org>(org_id, org_id).await?;
        let cluster_default = self
            .store
            .find::<Cluster>(org_id, &def.spec.cluster_id)
            .await?
            .and_then(|c| c.spec.default_destination_id);
        let Some(effective) =
            effective_destination(def.spec.destination_id, cluster_default, org.default_destination_id)
        else {
            return Ok(None);
        };
        let prefix = report.backup.as_ref().map(|b| b.prefix.clone()).unwrap_or_default();
        if report.backup.is_some() {
            // The destination's own prefix where the control plane knows it; Arca-managed
            // storage's is the deployment's.
            let base = match self
                .store
                .find::<Destination>(org_id, &effective.destination_id)
                .await?
            {
                Some(d) => match d.spec.target {
                    DestinationTarget::S3 { prefix, .. } => Some(prefix),
                    DestinationTarget::LocalFilesystem { .. } => Some(String::new()),
                    DestinationTarget::ArcaManaged { .. } => None,
                },
                None => None,
            };
            crate::model::layout::check_reported_location(&prefix, base.as_deref(), org_id, cluster)?;
        }
        Ok(Some(RecoveryPointLocation {
            destination_id: effective.destination_id,
            prefix,
        }))
    }
}
