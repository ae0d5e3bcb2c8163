//! Dispatch (scheduled and run-now), schedule sync and dead letters.

use crate::control_plane::ControlPlane;
use crate::ids::{BackupDefinitionId, JobId};
use crate::model::agent::ActiveJob;
use crate::model::backup::BackupDefinition;
use crate::model::dispatch::{self, Decision, DispatchFacts, DispatchRequest, SkipReason};
use crate::model::job::{Job, JobState, JobTrigger, JobType};
use crate::model::org::Org;
use crate::model::policy::Policy;
use crate::model::policy::Retention;
use crate::model::schedule::{Schedule, ScheduleInput, schedules_for};
use crate::store::Tx;
use crate::{Error, Result};
use std::time::Duration;

impl ControlPlane {
    // ---- dispatch ----------------------------------------------------------------------

    /// A schedule fired: runs or skips its definition's backup.
    pub async fn dispatch_scheduled(&self, input: &ScheduleInput) -> Result<Job> {
        if input.definition_id.starts_with(concat!("rdsbkp", "_")) {
            return self.dispatch_rds_scheduled(input).await;
        }
        let definition_id = input
            .definition_id
            .parse::<BackupDefinitionId>()
            .map_err(|e| Error::invalid("definitionId", e.to_string()))?;
        self.dispatch(DispatchRequest {
            org_id: input.org_id,
            definition_id,
            trigger: JobTrigger::Scheduled,
            rule: Some(input.rule),
            retention: None,
        })
        .await
    }

    /// Decides (with [`dispatch::decide`]) and writes the outcome: a SKIPPED job with its
    /// reason, or a PENDING job created together with the definition's active-job item
    /// (`NotExists`) and then queued. Of concurrent dispatches of one definition exactly
    /// one creates a PENDING job; the others are SKIPPED.
    pub async fn dispatch(&self, request: DispatchRequest) -> Result<Job> {
        let org_id = request.org_id;
        let org = self.store.get::<Org>(&org_id, &org_id).await?;
        let def = self
            .store
            .get::<BackupDefinition>(&org_id, &request.definition_id)
            .await?;
        let cluster = self.cluster_view(&org_id, &def.spec.cluster_id).await?;
        let policy = match def.spec.policy_id {
            Some(pid) => self.store.find::<Policy>(&org_id, &pid).await?,
            None => None,
        };
        let row = match (request.rule, &policy) {
            (Some(rule), Some(p)) => p.spec.schedules.get(rule as usize).cloned(),
            _ => None,
        };
        let retention = request.retention.or_else(|| {
            row.as_ref().map(|r| Retention {
                retain_days: r.retain_days,
                keep_last: r.keep_last,
            })
        });
        let active = self.store.find::<ActiveJob>(&org_id, &def.id).await?;
        let active_job = match &active {
            Some(a) => match self.store.find::<Job>(&org_id, &a.job_id).await? {
                Some(j) => Some((j.id, j.state)),
                // Its job is gone: as good as finished.
                None => Some((a.job_id, JobState::Failed)),
            },
            None => None,
        };
        let facts = DispatchFacts {
            trigger: request.trigger,
            definition_paused: def.spec.paused,
            policy_suspended: policy.as_ref().map(|p| p.spec.suspended),
            rule_exists: row.is_some(),
            rule: request.rule,
            cluster_state: cluster.state,
            active_job,
        };
        let now = self.now();
        let mut job = Job::pending(org_id, JobType::K8sBackup, request.trigger, now);
        job.cluster_id = Some(cluster.id);
        job.definition_id = Some(def.id);
        job.rule = request.rule;
        job.retention = retention;
        job.recovery_point_expires_at =
            retention.map(|r| dispatch::expiry(&r, self.limits.for_plan(org.plan).max_retain_days, now));
        match dispatch::decide(&facts) {
            Decision::Skip(reason) => self.skipped(job, &reason).await,
            Decision::Run => {
                job.log(
                    now,
                    match request.trigger {
                        JobTrigger::Scheduled => "scheduled run",
                        JobTrigger::Manual => "run requested",
                    },
                );
                let mut marker = ActiveJob {
                    definition_id: def.id,
                    org_id,
                    job_id: job.id,
                    created_at: now,
                    version: 0,
                };
                // The marker, whose condition decides the race, goes first: DynamoDB applies a
                // transaction atomically whatever the order, but moto has been seen to leave
                // the writes before a failed condition behind.
                let mut tx = Tx::new();
                match &active {
                    // A finished job's marker left behind: take it over at its version.
                    Some(stale) => tx.update(&mut marker, stale.version)?,
                    None => tx.create(&mut marker)?,
                };
                tx.create(&mut job)?;
                match self.store.commit(tx).await {
                    Ok(()) => {
                        self.enqueue(&job).await?;
                        Ok(job)
                    }
                    Err(Error::Conflict { .. }) => {
                        // Another dispatch of this definition got there first.
                        let winner = self.store.find::<ActiveJob>(&org_id, &def.id).await?;
                        let (job_id, state) = match winner {
                            Some(w) => {
                                let state = self
                                    .store
                                    .find::<Job>(&org_id, &w.job_id)
                                    .await?
                                    .map_or(JobState::Pending, |j| j.state);
                                (w.job_id, state)
                            }
                            None => (JobId::default(), JobState::Pending),
                        };
                        // A fresh id: nothing of the failed transaction may be reused.
                        let mut skipped = Job::pending(org_id, JobType::K8sBackup, request.trigger, now);
                        skipped.cluster_id = job.cluster_id;
                        skipped.definition_id = job.definition_id;
                        skipped.rule = job.rule;
                        skipped.retention = job.retention;
                        self.skipped(skipped, &SkipReason::AlreadyRunning { job_id, state })
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    pub(in crate::control_plane) async fn skipped(&self, mut job: Job, reason: &SkipReason) -> Result<Job> {
        let now = self.now();
        job.transition(JobState::Skipped, Some(reason.to_string()), now)?;
        job.log(now, format!("skipped: {reason}"));
        let job = self.store.create(job).await?;
        // The skip is written: a lost alert must not fail the dispatch (its retry would
        // only skip again).
        self.alert_job_outcome_quietly(&job).await;
        Ok(job)
    }

    // ---- schedules -------------------------------------------------------------------

    /// Makes the definition's schedules exactly what its policy and pause say.
    pub(crate) async fn sync_schedules(&self, def: &BackupDefinition) -> Result<()> {
        let Some(scheduler) = &self.scheduler else {
            return Ok(());
        };
        let desired = self.desired_schedules(def).await?;
        scheduler.sync(&def.id.to_string(), &desired).await
    }

    /// The schedules the definition should have: one per row of its policy, disabled
    /// while it is paused or the policy suspended; none without a policy.
    pub(crate) async fn desired_schedules(&self, def: &BackupDefinition) -> Result<Vec<Schedule>> {
        Ok(match def.spec.policy_id {
            Some(pid) => match self.store.find::<Policy>(&def.org_id, &pid).await? {
                Some(policy) => schedules_for(def.org_id, &def.id.to_string(), &policy.spec, def.spec.paused)?,
                None => Vec::new(),
            },
            None => Vec::new(),
        })
    }

    pub(crate) async fn sync_schedules_to_nothing(&self, id: &BackupDefinitionId) -> Result<()> {
        match &self.scheduler {
            Some(s) => s.sync(&id.to_string(), &[]).await,
            None => Ok(()),
        }
    }

    // ---- dead letters ------------------------------------------------------------------

    /// Marks FAILED (with the lapsed-lease reason) the jobs of up to `max` dead letters
    /// and removes the letters. Returns how many were handled. Called by the dispatch
    /// and retention functions on every run.
    pub async fn drain_dead_letters(&self, max: usize) -> Result<usize> {
        let Some(q) = &self.queue else {
            return Ok(0);
        };
        let mut handled = 0;
        while handled < max {
            let Some(letter) = q.receive_dead_letter(Duration::ZERO, Duration::from_secs(60)).await? else {
                break;
            };
            let m = &letter.message;
            match self.fail_job(&m.org_id, &m.job_id, &letter.failure_reason()).await {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            q.ack_dead_letter(&letter.receipt).await?;
            handled += 1;
        }
        Ok(handled)
    }
}
