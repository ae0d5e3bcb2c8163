//! The control plane's side of the agent protocol: authentication and sessions,
//! heartbeats, and the lease of a job from delivery through progress to its outcome
//! (the access a job gets to its destination is in `credentials.rs`).

use crate::control_plane::{ControlPlane, retry_on_conflict, retry_on_stale};
use crate::error::ConflictKind;
use crate::ids::{JobId, OrgId};
use crate::model::agent::{
    AgentJob, AgentPrincipal, AgentState, CompletionReport, ConnectRequest, Connected, LeaseRequest, ProgressReport,
};
use crate::model::backup::{BackupDefinition, PvMode};
use crate::model::cluster::{Cluster, Heartbeat};
use crate::model::destination::{Destination, DestinationTarget, effective_destination};
use crate::model::job::{Job, JobState, JobType};
use crate::model::org::Org;
use crate::model::recovery::{RecoveryPoint, RecoveryPointLocation, RecoveryPointState, RecoveryPointType};
use crate::model::secret::{AGENT_TOKEN_PREFIX, Secret};
use crate::ports::queue::Receipt;
use crate::store::Tx;
use crate::{Error, Result};
use std::time::{Duration, Instant};

fn superseded() -> Error {
    Error::conflict_of(
        ConflictKind::Superseded,
        "a newer agent connected with this cluster's token: this session is over, stop this agent",
    )
}

pub(in crate::control_plane) fn lease_lost(what: impl std::fmt::Display) -> Error {
    Error::conflict_of(
        ConflictKind::LeaseLost,
        format!("{what}: the job is no longer leased to you"),
    )
}

impl ControlPlane {
    // ---- agent authentication and sessions ------------------------------------------

    /// The cluster whose agent token this is. Any failure is `Unauthenticated`.
    pub async fn authenticate_agent(&self, token: &Secret) -> Result<AgentPrincipal> {
        let text = token.expose();
        if !text.starts_with(AGENT_TOKEN_PREFIX) || text.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        let hash = token.hash();
        match self.store.find_cluster_by_agent_token_hash_cross_tenant(&hash).await? {
            Some(c) => Ok(AgentPrincipal {
                org_id: c.org_id,
                cluster_id: c.id,
            }),
            None => self.adopt_pending_token(&hash).await,
        }
    }

    /// The first call with the token of a fetched install link's manifest: it becomes the
    /// cluster's agent token, and the previous one stops working (one transaction, so of
    /// two racing first calls both succeed and the token is adopted once).
    async fn adopt_pending_token(&self, hash: &crate::model::secret::SecretHash) -> Result<AgentPrincipal> {
        use crate::model::install::PendingAgentToken;
        self.retrying(|| async move {
            if let Some(c) = self.store.find_cluster_by_agent_token_hash_cross_tenant(hash).await? {
                return Ok(AgentPrincipal {
                    org_id: c.org_id,
                    cluster_id: c.id,
                });
            }
            let Some(pending) = self.store.find_pending_agent_token_by_hash_cross_tenant(hash).await? else {
                return Err(Error::Unauthenticated);
            };
            if pending.expires_at <= self.now() {
                return Err(Error::Unauthenticated);
            }
            let Some(mut cluster) = self.store.find::<Cluster>(&pending.org_id, &pending.cluster_id).await? else {
                return Err(Error::Unauthenticated);
            };
            let expected = cluster.version;
            cluster.agent_token_hash = Some(hash.clone());
            cluster.updated_at = self.now();
            let mut tx = Tx::new();
            tx.delete::<PendingAgentToken>(&pending.org_id, &pending.cluster_id, pending.version);
            tx.update(&mut cluster, expected)?;
            self.store.commit(tx).await.map_err(retry_on_conflict)?;
            Ok(AgentPrincipal {
                org_id: cluster.org_id,
                cluster_id: cluster.id,
            })
        })
        .await
    }

    /// The agent item, created if missing (clusters registered before it existed).
    pub(in crate::control_plane) async fn agent_state(&self, agent: &AgentPrincipal) -> Result<AgentState> {
        if let Some(state) = self.store.find::<AgentState>(&agent.org_id, &agent.cluster_id).await? {
            return Ok(state);
        }
        let queue = match &self.queue {
            Some(q) => Some(q.create_queue(agent.cluster_id).await?),
            None => None,
        };
        let state = AgentState::new(agent.org_id, agent.cluster_id, queue, self.now());
        match self.store.create(state).await {
            Ok(s) => Ok(s),
            // Created concurrently: read the winner's.
            Err(Error::Conflict { .. }) => self.store.get::<AgentState>(&agent.org_id, &agent.cluster_id).await,
            Err(e) => Err(e),
        }
    }

    /// Fails with `Superseded` unless `session` is the cluster's current session.
    pub(in crate::control_plane) async fn current_session(
        &self,
        agent: &AgentPrincipal,
        session: &str,
    ) -> Result<AgentState> {
        let state = self.agent_state(agent).await?;
        if state.session_id.as_deref() != Some(session) {
            return Err(superseded());
        }
        Ok(state)
    }

    /// Starts a session; every earlier session of the cluster is superseded (its next
    /// call gets 409 `superseded`).
    pub async fn agent_connect(&self, agent: &AgentPrincipal, request: ConnectRequest) -> Result<Connected> {
        let session_id = format!("ses_{}", ulid::Ulid::new());
        let request = &request;
        let session = session_id.as_str();
        self.retrying(|| async move {
            let mut state = self.agent_state(agent).await?;
            let expected = state.version;
            state.session_id = Some(session.to_string());
            state.connected_at = Some(self.now());
            if request.agent_version.is_some() {
                state.agent_version = request.agent_version.clone();
            }
            state.updated_at = self.now();
            self.store.update(state, expected).await.map_err(retry_on_stale)
        })
        .await?;
        Ok(Connected {
            session_id,
            cluster_id: agent.cluster_id,
            org_id: agent.org_id,
            heartbeat_interval_seconds: self.config.heartbeat_interval.as_secs(),
            poll_wait_seconds: self.config.poll_wait.as_secs(),
            lease_seconds: self.config.lease.as_secs(),
        })
    }

    /// A heartbeat of the current session: liveness and facts, written to the agent
    /// item only (the cluster's ETag does not move).
    pub async fn agent_heartbeat(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        heartbeat: Heartbeat,
    ) -> Result<Cluster> {
        self.write_heartbeat(agent, Some(session), heartbeat).await
    }

    pub(crate) async fn write_heartbeat(
        &self,
        agent: &AgentPrincipal,
        session: Option<&str>,
        heartbeat: Heartbeat,
    ) -> Result<Cluster> {
        let heartbeat = &heartbeat;
        let state = self
            .retrying(|| async move {
                let mut state = self.agent_state(agent).await?;
                if let Some(session) = session
                    && state.session_id.as_deref() != Some(session)
                {
                    return Err(superseded());
                }
                let expected = state.version;
                let now = self.now();
                state.last_heartbeat_at = Some(now);
                let hb = heartbeat.clone();
                if hb.kubernetes_version.is_some() {
                    state.kubernetes_version = hb.kubernetes_version;
                }
                if hb.agent_version.is_some() {
                    state.agent_version = hb.agent_version;
                }
                if hb.node_count.is_some() {
                    state.node_count = hb.node_count;
                }
                if let Some(inventory) = hb.inventory {
                    state.inventory = inventory;
                }
                if hb.capabilities.is_some() {
                    state.capabilities = hb.capabilities;
                }
                state.updated_at = now;
                self.store.update(state, expected).await.map_err(retry_on_stale)
            })
            .await?;
        let cluster = self.store.get::<Cluster>(&agent.org_id, &agent.cluster_id).await?;
        Ok(self.presented(cluster, Some(&state)))
    }

    /// One of the agent's jobs, running (or cancelling), asked about in its current
    /// session: what an agent reports on.
    pub(in crate::control_plane) async fn running_job(
        &self,
        agent: &AgentPrincipal,
        session: &str,
        id: &JobId,
    ) -> Result<Job> {
        self.current_session(agent, session).await?;
        let job = self.agent_job(agent, id).await?;
        if !matches!(job.state, JobState::Running | JobState::Cancelling) {
            return Err(lease_lost(format!("job {id} is {:?}", job.state)));
        }
        Ok(job)
    }

    /// A job of this agent's cluster (another cluster's job is NotFound).
    pub(in crate::control_plane) async fn agent_job(&self, agent: &AgentPrincipal, id: &JobId) -> Result<Job> {
        let job = self.store.get::<Job>(&agent.org_id, id).await?;
        if job.cluster_id != Some(agent.cluster_id) {
            return Err(Error::not_found(format!("job {id}")));
        }
        Ok(job)
    }

    /// Waits up to the configured poll wait for one job of the agent's cluster. The job
    /// becomes RUNNING and is leased to the caller; a job whose earlier lease lapsed is
    /// handed out again. Canceled and finished jobs still queued are dropped here.
    pub async fn agent_poll(&self, agent: &AgentPrincipal, session: &str) -> Result<Option<AgentJob>> {
        let state = self.current_session(agent, session).await?;
        let (Some(q), Some(queue)) = (&self.queue, state.queue.clone()) else {
            return Err(Error::permanent("this control plane has no job queue configured"));
        };
        let deadline = Instant::now() + self.config.poll_wait.min(crate::ports::queue::MAX_WAIT);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Some(delivery) = q.receive(&queue, wait, self.config.lease).await? else {
                return Ok(None);
            };
            let msg = &delivery.message;
            if msg.org_id != agent.org_id || msg.cluster_id != agent.cluster_id {
                // Never hand out another cluster's job, whatever a queue holds.
                q.ack(&queue, &delivery.receipt).await?;
                continue;
            }
            // A newer session may have connected while this poll waited: give the job
            // back at once instead of leasing it to an agent that must stop.
            let now_state = self.agent_state(agent).await?;
            if now_state.session_id.as_deref() != Some(session) {
                q.extend(&queue, &delivery.receipt, Duration::ZERO).await?;
                return Err(superseded());
            }
            let delivered = self.take_delivered(agent, &msg.job_id, delivery.receive_count).await?;
            match delivered {
                Some(job) => {
                    let definition = match job.definition_id {
                        Some(d) => self.store.find::<BackupDefinition>(&agent.org_id, &d).await?,
                        None => None,
                    };
                    let recovery_point = match job.recovery_point_id {
                        Some(rp) => self.store.find::<RecoveryPoint>(&agent.org_id, &rp).await?,
                        None => None,
                    };
                    let restore = match job.restore_id {
                        Some(r) => {
                            self.store
                                .find::<crate::model::restore::Restore>(&agent.org_id, &r)
                                .await?
                        }
                        None => None,
                    };
                    let ebs_by_control_plane = job.job_type == JobType::K8sBackup
                        && self.ebs_by_control_plane(&agent.org_id, &agent.cluster_id).await;
                    let ebs = self.ebs_restore_sources(&job, restore.as_ref()).await?;
                    return Ok(Some(AgentJob {
                        job,
                        ebs_by_control_plane,
                        ebs,
                        lease_token: delivery.receipt.0,
                        lease_seconds: self.config.lease.as_secs(),
                        delivery: delivery.receive_count,
                        definition,
                        recovery_point,
                        restore,
                    }));
                }
                None => {
                    q.ack(&queue, &delivery.receipt).await?;
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Moves a delivered job to RUNNING, or says (`None`) it is not to be run.
    pub(in crate::control_plane) async fn take_delivered(
        &self,
        agent: &AgentPrincipal,
        id: &JobId,
        delivery: u32,
    ) -> Result<Option<Job>> {
        self.retrying(|| async move {
            let Some(mut job) = self.store.find::<Job>(&agent.org_id, id).await? else {
                return Ok(None);
            };
            let expected = job.version;
            let now = self.now();
            let mut tx = Tx::new();
            match job.state {
                JobState::Pending => {
                    job.transition(JobState::Running, None, now)?;
                    job.log(now, format!("taken by the agent (delivery {delivery})"));
                }
                JobState::Running => {
                    job.log(
                        now,
                        format!("handed out again after a lapsed lease (delivery {delivery})"),
                    );
                    job.updated_at = now;
                }
                JobState::Cancelling => {
                    job.transition(JobState::Canceled, None, now)?;
                    job.log(now, "canceled before the agent resumed it");
                    tx.update(&mut job, expected)?;
                    self.release_active(&mut tx, &job).await?;
                    self.store.commit(tx).await.map_err(retry_on_conflict)?;
                    return Ok(None);
                }
                _ => return Ok(None),
            }
            tx.update(&mut job, expected)?;
            self.store.commit(tx).await.map_err(retry_on_conflict)?;
            Ok(Some(job))
        })
        .await
    }

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
