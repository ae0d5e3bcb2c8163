//! Jobs: what users see of them, and the queue bookkeeping every job type shares.

use crate::Result;
use crate::ids::{BackupDefinitionId, ClusterId, JobId, OrgId};
use crate::model::agent::AgentState;
use crate::model::auth::{Operation, Principal};
use crate::model::job::{Job, JobState, JobType};
use crate::model::recovery::{RecoveryPoint, RecoveryPointState};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use serde::{Deserialize, Serialize};

use crate::control_plane::{ControlPlane, retry_on_conflict, retry_on_stale};
use crate::model::agent::ActiveJob;
use crate::model::agent::QueueRef;
use crate::ports::queue::JobMessage;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFilter {
    #[serde(default)]
    pub cluster_id: Option<ClusterId>,
    #[serde(default)]
    pub definition_id: Option<BackupDefinitionId>,
    #[serde(default)]
    pub state: Option<JobState>,
    #[serde(default)]
    pub job_type: Option<JobType>,
}

impl ControlPlane {
    pub async fn get_job(&self, p: &Principal, id: &JobId) -> Result<Job> {
        p.require(Operation::GetJob)?;
        self.store.get(&p.org_id, id).await
    }

    /// Jobs, newest first, optionally filtered.
    pub async fn list_jobs(&self, p: &Principal, filter: &JobFilter, page: &PageRequest) -> Result<Listing<Job>> {
        p.require(Operation::ListJobs)?;
        let keep = |j: &Job| {
            filter.cluster_id.is_none_or(|c| j.cluster_id == Some(c))
                && filter.definition_id.is_none_or(|d| j.definition_id == Some(d))
                && filter.state.is_none_or(|s| j.state == s)
                && filter.job_type.is_none_or(|t| j.job_type == t)
        };
        // One cluster's jobs (named, or the cluster of the named definition) come from its
        // index; the rest is a filtered page of the org's jobs, bounded per call.
        let cluster = match (filter.cluster_id, filter.definition_id) {
            (Some(c), _) => Some(c),
            (None, Some(d)) => self
                .store
                .find::<crate::model::backup::BackupDefinition>(&p.org_id, &d)
                .await?
                .map(|def| def.spec.cluster_id),
            (None, None) => None,
        };
        match cluster {
            Some(c) => self.store.jobs_of_cluster(&p.org_id, &c, page, false, keep).await,
            None => self.store.list_where(&p.org_id, page, false, keep).await,
        }
    }

    /// Cancels a job: PENDING becomes CANCELED, RUNNING becomes CANCELLING; a finished
    /// job refuses (`Conflict`).
    pub async fn cancel_job(&self, p: &Principal, id: &JobId, expected_version: Option<u64>) -> Result<Job> {
        p.require(Operation::CancelJob)?;
        self.retrying(|| async move {
            let mut job = self.store.get::<Job>(&p.org_id, id).await?;
            let expected = expected_version.unwrap_or(job.version);
            if job.version != expected {
                let e = self.store.version_failure::<Job>(&p.org_id, id, expected).await;
                return Err(if expected_version.is_none() {
                    retry_on_stale(e)
                } else {
                    e
                });
            }
            job.cancel(self.now())?;
            let mut tx = Tx::new();
            tx.update(&mut job, expected)?;
            // A job canceled outright no longer holds its definition.
            self.release_active(&mut tx, &job).await?;
            self.store.commit(tx).await.map_err(retry_on_conflict)?;
            Ok(job)
        })
        .await
    }

    // ---- jobs, as the agent sees them ------------------------------------------------

    pub(in crate::control_plane) async fn queue_ref(
        &self,
        org: &OrgId,
        cluster: &ClusterId,
    ) -> Result<Option<QueueRef>> {
        let Some(q) = &self.queue else {
            return Ok(None);
        };
        if let Some(state) = self.store.find::<AgentState>(org, cluster).await?
            && let Some(r) = state.queue
        {
            return Ok(Some(r));
        }
        q.queue(*cluster).await.map(Some)
    }

    /// Sends a job's message to its cluster's queue. If that fails the job cannot reach
    /// an agent, so it is marked FAILED (and its definition released) before the error
    /// is returned. Without a wired queue (store-level tests) nothing is sent.
    pub(crate) async fn enqueue(&self, job: &Job) -> Result<()> {
        let (Some(q), Some(cluster)) = (&self.queue, job.cluster_id) else {
            return Ok(());
        };
        let message = JobMessage {
            org_id: job.org_id,
            cluster_id: cluster,
            job_id: job.id,
        };
        let sent = match self.queue_ref(&job.org_id, &cluster).await {
            Ok(Some(r)) => q.send(&r, &message).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            let reason = format!("could not be queued for the agent: {e}");
            // Best effort: the original error is what the caller needs to see.
            let _ = self.fail_job(&job.org_id, &job.id, &reason).await;
            return Err(e);
        }
        Ok(())
    }

    /// Adds to `tx` what frees the job's definition once the job has ended.
    pub(crate) async fn release_active(&self, tx: &mut Tx, job: &Job) -> Result<()> {
        if !job.state.is_terminal() || job.job_type != JobType::K8sBackup {
            return Ok(());
        }
        let Some(def) = job.definition_id else {
            return Ok(());
        };
        if let Some(active) = self.store.find::<ActiveJob>(&job.org_id, &def).await?
            && active.job_id == job.id
        {
            tx.delete::<ActiveJob>(&job.org_id, &def, active.version);
        }
        Ok(())
    }

    /// Ends a job as FAILED (if it has not ended), releasing what it held.
    pub(in crate::control_plane) async fn fail_job(&self, org: &OrgId, id: &JobId, reason: &str) -> Result<Job> {
        let job = self
            .retrying(|| async move {
                let mut job = self.store.get::<Job>(org, id).await?;
                if job.state.is_terminal() {
                    return Ok(job);
                }
                let expected = job.version;
                job.transition(JobState::Failed, Some(reason.to_string()), self.now())?;
                job.log(self.now(), reason);
                if job.job_type == JobType::K8sBackup {
                    // No point: the id chosen for its EBS snapshots names nothing.
                    job.recovery_point_id = None;
                }
                let mut tx = Tx::new();
                tx.update(&mut job, expected)?;
                self.release_active(&mut tx, &job).await?;
                self.restore_point_after_failed_delete(&mut tx, &job).await?;
                if job.job_type == JobType::RepositoryMaintenance {
                    self.maintenance_ended(&mut tx, &job, JobState::Failed, None, Some(reason))
                        .await?;
                }
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(job)
            })
            .await?;
        // EBS snapshots it took go (a failure fails the call: the dead letter comes again).
        if job.job_type == JobType::K8sBackup && job.state == JobState::Failed {
            self.discard_ebs_snapshots(&job).await?;
        }
        // A lapsed lease or a dead letter is a failure on-call hears of (once per job).
        self.alert_job_outcome(&job).await?;
        Ok(job)
    }

    /// A failed deletion leaves its point READY, so the next sweep tries again.
    pub(in crate::control_plane) async fn restore_point_after_failed_delete(
        &self,
        tx: &mut Tx,
        job: &Job,
    ) -> Result<()> {
        if job.job_type != JobType::DeleteBackup || job.state == JobState::Completed {
            return Ok(());
        }
        if let Some(rp_id) = job.recovery_point_id
            && let Some(mut rp) = self.store.find::<RecoveryPoint>(&job.org_id, &rp_id).await?
            && rp.state == RecoveryPointState::Deleting
        {
            let v = rp.version;
            rp.state = RecoveryPointState::Ready;
            rp.updated_at = self.now();
            tx.update(&mut rp, v)?;
        }
        Ok(())
    }
}
