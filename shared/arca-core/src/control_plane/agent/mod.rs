//! The control plane's side of the agent protocol: authentication and sessions,
//! heartbeats, and the lease of a job from delivery through progress to its outcome
//! (the access a job gets to its destination is in `credentials.rs`). A leased job's
//! reports (lease renewals, progress, restore results, the outcome): `reports.rs`.

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

mod reports;

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
}
