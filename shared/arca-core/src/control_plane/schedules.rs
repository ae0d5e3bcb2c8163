//! Scheduler drift repair. A definition's schedules are written to the scheduler after
//! the store commit that changed them; a failed write answers 503, and anything can
//! change schedules behind Arca's back (a console edit, a deleted group). The reconciler
//! compares every definition's schedules with what its policy and pause say, repairs the
//! missing, extra and stale ones, and removes schedules of definitions that no longer
//! exist. It runs with retention (hourly on AWS; `arca server`'s loop locally).

use std::collections::BTreeSet;

use crate::Result;
use crate::control_plane::ControlPlane;
use crate::ids::{BackupDefinitionId, RdsBackupDefinitionId};
use crate::model::backup::BackupDefinition;
use crate::model::rds::RdsBackupDefinition;
use crate::model::schedule::Schedule;
use crate::store::page::PageRequest;

/// What one reconciliation found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleReconcileReport {
    /// Definitions compared.
    pub checked: usize,
    /// Definitions whose schedules differed from the desired set, now repaired.
    pub repaired: Vec<BackupDefinitionId>,
    /// Definitions that no longer exist whose schedules were deleted.
    pub orphans_removed: Vec<String>,
    /// What could not be repaired, with why: tried again at the next run.
    pub failed: Vec<(String, String)>,
    /// RDS backup definitions whose schedules (backups, and copies) differed, now repaired.
    pub rds_repaired: Vec<RdsBackupDefinitionId>,
    /// Definitions written before the definitions' index (GSI2 `BKPDEF`) existed, found
    /// through their schedules and indexed now. One whose schedules are all gone as well
    /// is found at its next write.
    pub reindexed: Vec<BackupDefinitionId>,
}

impl ControlPlane {
    /// One reconciliation of the scheduler with the store (module doc). A failure on one
    /// definition is reported and the others are still done.
    pub async fn reconcile_schedules(&self) -> Result<ScheduleReconcileReport> {
        let mut report = ScheduleReconcileReport::default();
        let Some(scheduler) = &self.scheduler else {
            return Ok(report);
        };
        let started = self.now();
        let mut definitions = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .backup_definitions_cross_tenant(&PageRequest::after(cursor, 100))
                .await?;
            definitions.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut known = BTreeSet::new();
        for def in definitions {
            known.insert(def.id.to_string());
            report.checked += 1;
            match self.reconcile_definition(&def).await {
                Ok(true) => report.repaired.push(def.id),
                Ok(false) => {}
                Err(e) => report.failed.push((def.id.to_string(), e.to_string())),
            }
        }
        // RDS definitions: their backup and copy schedule sets (all indexed in GSI2
        // `RDSBKPDEF` since `Store::reindex_all`, which the retention run does first).
        let mut cursor = None;
        loop {
            let page = self
                .store
                .rds_backup_definitions_cross_tenant(&PageRequest::after(cursor, 100))
                .await?;
            for def in page.items {
                known.insert(def.id.to_string());
                known.insert(crate::model::rds::copy_schedule_id(&def.id));
                report.checked += 1;
                match self.reconcile_rds_definition(&def).await {
                    Ok(true) => report.rds_repaired.push(def.id),
                    Ok(false) => {}
                    Err(e) => report.failed.push((def.id.to_string(), e.to_string())),
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // Schedules of definitions the store no longer has (deleted while the scheduler
        // failed). Only ids that parse as definition ids are touched.
        for id in scheduler.definitions().await? {
            if known.contains(&id) {
                continue;
            }
            if let Some(rds_id) = rds_definition_of(&id) {
                // One created since the listing above is left alone.
                if self.rds_definition_of_schedules(&id, &rds_id).await?.is_some() {
                    continue;
                }
                match scheduler.sync(&id, &[]).await {
                    Ok(()) => report.orphans_removed.push(id),
                    Err(e) => report.failed.push((id, e.to_string())),
                }
                continue;
            }
            if id.parse::<BackupDefinitionId>().is_err() {
                continue;
            }
            match self.definition_of_schedules(&id).await? {
                // Written before the definitions' index existed (or, rarely, created since
                // the listing above: left alone, it is indexed): index it by writing it
                // again, then repair it like the others.
                Some(def) if def.updated_at < started => {
                    report.checked += 1;
                    let def_id = def.id;
                    let expected = def.version;
                    let outcome = match self.store.update(def, expected).await {
                        Ok(def) => {
                            report.reindexed.push(def_id);
                            self.reconcile_definition(&def).await
                        }
                        // Edited meanwhile: that write indexed it.
                        Err(crate::Error::PreconditionFailed { .. }) => Ok(false),
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(true) => report.repaired.push(def_id),
                        Ok(false) => {}
                        Err(e) => report.failed.push((id, e.to_string())),
                    }
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            match scheduler.sync(&id, &[]).await {
                Ok(()) => report.orphans_removed.push(id),
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        Ok(report)
    }

    /// Repairs one definition's schedules; true when they differed. A definition edited
    /// meanwhile is synced again from its new version, so the reconciler never leaves an
    /// older policy's schedules behind a user's edit.
    async fn reconcile_definition(&self, def: &BackupDefinition) -> Result<bool> {
        let Some(scheduler) = &self.scheduler else {
            return Ok(false);
        };
        let id = def.id.to_string();
        let desired = sorted(self.desired_schedules(def).await?);
        let actual = sorted(scheduler.list(&id).await?);
        // The adapter's sync also repairs what `list` does not show (a schedule whose
        // target is another stack's): run it always, it writes only differences.
        self.sync_schedules(def).await?;
        match self.store.find::<BackupDefinition>(&def.org_id, &def.id).await? {
            Some(now) if now.version != def.version => self.sync_schedules(&now).await?,
            None => scheduler.sync(&id, &[]).await?,
            Some(_) => {}
        }
        Ok(desired != actual)
    }

    /// Repairs one RDS definition's two schedule sets; true when either differed.
    async fn reconcile_rds_definition(&self, def: &RdsBackupDefinition) -> Result<bool> {
        let Some(scheduler) = &self.scheduler else {
            return Ok(false);
        };
        let mut actual = Vec::new();
        for set in [def.id.to_string(), crate::model::rds::copy_schedule_id(&def.id)] {
            actual.extend(scheduler.list(&set).await?);
        }
        let desired = sorted(self.desired_rds_schedules(def).await?);
        self.sync_rds_schedules(def).await?;
        Ok(desired != sorted(actual))
    }

    /// The RDS definition a schedule set (`<id>` or `<id>.copy`) belongs to, if it exists
    /// now: its schedules' input names the org.
    async fn rds_definition_of_schedules(
        &self,
        set: &str,
        id: &RdsBackupDefinitionId,
    ) -> Result<Option<RdsBackupDefinition>> {
        let Some(scheduler) = &self.scheduler else {
            return Ok(None);
        };
        for schedule in scheduler.list(set).await? {
            if let Some(def) = self
                .store
                .find::<RdsBackupDefinition>(&schedule.input.org_id, id)
                .await?
            {
                return Ok(Some(def));
            }
        }
        Ok(None)
    }

    /// Whether the definition a schedule set belongs to exists now: its schedules' input
    /// names the org, where the definition is looked up.
    async fn definition_of_schedules(&self, id: &str) -> Result<Option<BackupDefinition>> {
        let (Ok(def_id), Some(scheduler)) = (id.parse::<BackupDefinitionId>(), &self.scheduler) else {
            return Ok(None);
        };
        for schedule in scheduler.list(id).await? {
            if let Some(def) = self
                .store
                .find::<BackupDefinition>(&schedule.input.org_id, &def_id)
                .await?
            {
                return Ok(Some(def));
            }
        }
        Ok(None)
    }
}

/// The RDS definition id of an RDS schedule set's name (`<id>` or `<id>.copy`).
fn rds_definition_of(set: &str) -> Option<RdsBackupDefinitionId> {
    set.strip_suffix(".copy").unwrap_or(set).parse().ok()
}

fn sorted(mut schedules: Vec<Schedule>) -> Vec<Schedule> {
    schedules.sort_by(|a, b| a.name.cmp(&b.name));
    schedules
}
