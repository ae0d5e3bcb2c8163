//! Repository maintenance jobs ([`crate::model::maintenance`]): a completed deletion
//! makes its repositories due, the retention sweep issues a REPOSITORY_MAINTENANCE job
//! to an agent that can reach them, and the job's end records what it freed and when the
//! next run is due.

use crate::control_plane::ControlPlane;
use crate::ids::{ClusterId, DestinationId, JobId, OrgId};
use crate::model::auth::{Operation, Principal};
use crate::model::destination::Destination;
use crate::model::job::{Job, JobState, JobTrigger, JobType};
use crate::model::maintenance::{MaintenanceResult, MaintenanceWork, RepositoryKey, RepositoryUpkeep};
use crate::model::recovery::RecoveryPoint;
use crate::store::Tx;
use crate::store::page::PageRequest;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one maintenance sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceSweepReport {
    /// REPOSITORY_MAINTENANCE jobs issued.
    pub jobs: Vec<JobId>,
    /// Due repositories with no agent to run their maintenance (their cluster is gone and
    /// no other cluster of the org is ACTIVE): tried again at every sweep.
    pub awaiting_agent: Vec<RepositoryKey>,
    /// Such repositories in Arca-managed storage that the control plane purged itself.
    pub purged: Vec<RepositoryKey>,
    /// Such purges that failed, with why: tried again at the next sweep.
    pub purge_failed: Vec<(RepositoryKey, String)>,
}

impl ControlPlane {
    /// Issues a maintenance job for every repository whose upkeep is due, to the agent
    /// of its cluster, or of another ACTIVE cluster of the org when that one is deleted.
    pub async fn maintenance_sweep(&self) -> Result<MaintenanceSweepReport> {
        let now = self.now();
        let mut report = MaintenanceSweepReport::default();
        let mut due = Vec::new();
        let mut cursor = None;
        let bound = now + Duration::from_secs(1);
        loop {
            let page = self
                .store
                .repositories_due_before_cross_tenant(bound, &PageRequest::after(cursor, 100))
                .await?;
            due.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut active_by_org: BTreeMap<OrgId, Option<ClusterId>> = BTreeMap::new();
        for mut upkeep in due {
            let org = upkeep.org_id;
            let key = upkeep.repository.clone();
            if let Some(job_id) = upkeep.job_id {
                match self.store.find::<Job>(&org, &job_id).await? {
                    Some(job) if !job.state.is_terminal() => continue,
                    // Ended without its end being recorded: record it as failed, so the
                    // repository is tried again.
                    _ => {
                        let expected = upkeep.version;
                        upkeep.ran(job_id, Err("its job ended without a result"), self.config.gc_grace, now);
                        let mut tx = Tx::new();
                        tx.update(&mut upkeep, expected)?;
                        self.commit_or_skip(tx).await?;
                        continue;
                    }
                }
            }
            if upkeep.purge_begun_at.is_some() {
                // An admin is deleting the whole prefix (`begin_purge`): nothing to collect.
                continue;
            }
            if self
                .store
                .find::<Destination>(&org, &key.destination_id)
                .await?
                .is_none()
            {
                // The destination is gone, and with it what there was to reclaim.
                let mut tx = Tx::new();
                tx.delete::<RepositoryUpkeep>(&org, &key, upkeep.version);
                self.commit_or_skip(tx).await?;
                continue;
            }
            let Some(by) = self.agent_for_data(&org, key.cluster_id, &mut active_by_org).await? else {
                // Arca-managed storage: the control plane empties the prefix itself when
                // no point there is left to wait for.
                match self.purge_unattended(&org, &key).await {
                    Ok(Some(_)) => {
                        report.purged.push(key);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.alert_purge_failed(&org, &key, &e).await;
                        report.purge_failed.push((key, e.to_string()));
                        continue;
                    }
                }
                if upkeep.awaiting_agent.is_none() {
                    let expected = upkeep.version;
                    upkeep.no_agent(None, now);
                    let mut tx = Tx::new();
                    tx.update(&mut upkeep, expected)?;
                    self.commit_or_skip(tx).await?;
                }
                report.awaiting_agent.push(key);
                continue;
            };
            if let Some(job) = self.issue_maintenance(upkeep, by).await? {
                report.jobs.push(job);
            }
        }
        Ok(report)
    }

    /// Creates the maintenance job for `upkeep`'s repositories, run by cluster `by`'s
    /// agent, and marks the upkeep issued, in one transaction; then queues the job.
    /// `None` if the upkeep changed meanwhile (the next sweep sees it).
    async fn issue_maintenance(&self, mut upkeep: RepositoryUpkeep, by: ClusterId) -> Result<Option<JobId>> {
        let now = self.now();
        let expected = upkeep.version;
        let mut job = Job::pending(
            upkeep.org_id,
            JobType::RepositoryMaintenance,
            JobTrigger::Scheduled,
            now,
        );
        job.cluster_id = Some(by);
        job.maintenance = Some(MaintenanceWork {
            repository: upkeep.repository.clone(),
            grace_seconds: self.config.gc_grace.as_secs(),
        });
        job.log(
            now,
            format!(
                "maintenance of the {}: data no remaining recovery point needs is condemned, and what was \
                 condemned at least {} s ago is deleted",
                upkeep.repository,
                self.config.gc_grace.as_secs()
            ),
        );
        if by != upkeep.repository.cluster_id {
            job.log(
                now,
                format!(
                    "its cluster {} is deleted: this cluster's agent runs it",
                    upkeep.repository.cluster_id
                ),
            );
        }
        upkeep.issued(job.id, now);
        let mut tx = Tx::new();
        tx.update(&mut upkeep, expected)?.create(&mut job)?;
        if !self.commit_or_skip(tx).await? {
            return Ok(None);
        }
        self.enqueue(&job).await?;
        Ok(Some(job.id))
    }

    /// Records what the retention sweep found for a deleted cluster's repository: `waiting`
    /// expired points with no agent to delete them, or (0) that an agent was found.
    pub(in crate::control_plane) async fn note_orphaned(
        &self,
        org: &OrgId,
        key: &RepositoryKey,
        waiting: u64,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = Tx::new();
        match self.store.find::<RepositoryUpkeep>(org, key).await? {
            Some(mut upkeep) => {
                let expected = upkeep.version;
                let before = upkeep.awaiting_agent.clone();
                if waiting > 0 {
                    upkeep.no_agent(Some(waiting), now);
                } else {
                    upkeep.awaiting_agent = None;
                }
                if upkeep.awaiting_agent == before {
                    return Ok(());
                }
                tx.update(&mut upkeep, expected)?;
            }
            None if waiting > 0 => {
                let mut upkeep = RepositoryUpkeep::new(*org, key.clone(), now);
                upkeep.no_agent(Some(waiting), now);
                tx.create(&mut upkeep)?;
            }
            None => return Ok(()),
        }
        // Lost to a concurrent writer: the next sweep counts again.
        self.commit_or_skip(tx).await.map(|_| ())
    }

    /// Commits `tx`; false when a condition failed (something changed meanwhile).
    pub(in crate::control_plane) async fn commit_or_skip(&self, tx: Tx) -> Result<bool> {
        match self.store.commit(tx).await {
            Ok(()) => Ok(true),
            Err(Error::Conflict { .. } | Error::PreconditionFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds to `tx` what a completed deletion of `rp`'s data changes: its repositories
    /// have data to reclaim.
    pub(in crate::control_plane) async fn point_data_deleted(&self, tx: &mut Tx, rp: &RecoveryPoint) -> Result<()> {
        let Some(location) = &rp.location else {
            return Ok(());
        };
        let key = RepositoryKey {
            destination_id: location.destination_id,
            cluster_id: rp.cluster_id,
        };
        let now = self.now();
        let generation = crate::model::layout::key_of_location(&location.prefix).map_or(1, |k| k.generation);
        match self.store.find::<RepositoryUpkeep>(&rp.org_id, &key).await? {
            Some(mut upkeep) => {
                let expected = upkeep.version;
                upkeep.points_deleted(now);
                upkeep.latest_key_generation = upkeep.latest_key_generation.max(generation);
                tx.update(&mut upkeep, expected)?;
            }
            None => {
                let mut upkeep = RepositoryUpkeep::new(rp.org_id, key, now);
                upkeep.points_deleted(now);
                upkeep.latest_key_generation = generation;
                tx.create(&mut upkeep)?;
            }
        }
        Ok(())
    }

    /// Adds to `tx` the end of a maintenance job: what it freed, or why it failed.
    pub(in crate::control_plane) async fn maintenance_ended(
        &self,
        tx: &mut Tx,
        job: &Job,
        state: JobState,
        result: Option<&MaintenanceResult>,
        reason: Option<&str>,
    ) -> Result<()> {
        let Some(work) = &job.maintenance else {
            return Ok(());
        };
        let Some(mut upkeep) = self
            .store
            .find::<RepositoryUpkeep>(&job.org_id, &work.repository)
            .await?
        else {
            return Ok(());
        };
        let empty = MaintenanceResult::default();
        let outcome = match state {
            JobState::Completed => Ok(result.unwrap_or(&empty)),
            _ => Err(reason.unwrap_or("the maintenance job did not complete")),
        };
        let expected = upkeep.version;
        // The grace the job ran with: the API that records the end need not know the
        // deployment's setting.
        upkeep.ran(job.id, outcome, Duration::from_secs(work.grace_seconds), self.now());
        tx.update(&mut upkeep, expected)?;
        Ok(())
    }

    /// What maintenance reclaimed in a destination, per cluster repository.
    pub async fn destination_maintenance(&self, p: &Principal, id: &DestinationId) -> Result<DestinationMaintenance> {
        p.require(Operation::DestinationMaintenance)?;
        self.store.get::<Destination>(&p.org_id, id).await?;
        let repositories: Vec<RepositoryUpkeep> = self.store.upkeeps_in(&p.org_id, id).await?;
        Ok(DestinationMaintenance {
            destination_id: *id,
            bytes_freed_total: repositories.iter().map(|u| u.bytes_freed_total).sum(),
            repositories,
        })
    }
}

/// A destination's maintenance: bytes freed in all, and each cluster repository's state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationMaintenance {
    pub destination_id: DestinationId,
    pub bytes_freed_total: u64,
    pub repositories: Vec<RepositoryUpkeep>,
}
