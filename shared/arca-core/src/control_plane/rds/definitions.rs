//! RDS backup definitions.

use crate::control_plane::{ControlPlane, retry_on_conflict};
use crate::ids::{OrgId, PolicyId, RdsBackupDefinitionId};
use crate::model::auth::{Operation, Principal};
use crate::model::cloud::account::CloudAccount;
use crate::model::policy::{Policy, ReferrerKind};
use crate::model::rds::{self, RdsBackupDefinition, RdsBackupDefinitionSpec};
use crate::model::schedule::{Schedule, schedules_for};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

use super::*;

impl ControlPlane {
    pub(in crate::control_plane) async fn check_rds_spec(
        &self,
        p: &Principal,
        spec: &RdsBackupDefinitionSpec,
    ) -> Result<()> {
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

    pub(in crate::control_plane) async fn existing_policy(
        &self,
        org: &OrgId,
        id: &PolicyId,
        field: &str,
    ) -> Result<Policy> {
        match self.store.get::<Policy>(org, id).await {
            Err(Error::NotFound { what }) => Err(Error::invalid(field, what)),
            other => other,
        }
    }

    /// The policies a definition refers to, with the kind of each reference.
    pub(in crate::control_plane) fn rds_policy_refs(spec: &RdsBackupDefinitionSpec) -> Vec<(PolicyId, ReferrerKind)> {
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
    pub(in crate::control_plane) async fn rds_policy_writes(
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
                    policy.upsert_referrer(referrer(def, kind))?;
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
        p.require(Operation::CreateRdsBackupDefinition)?;
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
        p.require(Operation::GetRdsBackupDefinition)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_rds_backup_definitions(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Listing<RdsBackupDefinition>> {
        p.require(Operation::ListRdsBackupDefinitions)?;
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
        p.require(Operation::UpdateRdsBackupDefinition)?;
        // Another org's id is NotFound before anything in the body is looked at.
        self.store.get::<RdsBackupDefinition>(&p.org_id, id).await?;
        let spec = &spec.validated()?;
        self.check_rds_spec(p, spec).await?;
        let def = self
            .retrying(|| async move {
                let mut def = self
                    .store
                    .get_at::<RdsBackupDefinition>(&p.org_id, id, expected_version)
                    .await?;
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
        p.require(Operation::DeleteRdsBackupDefinition)?;
        let def = self
            .retrying(|| async move {
                let def = self
                    .store
                    .get_at::<RdsBackupDefinition>(&p.org_id, id, expected_version)
                    .await?;
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
        p.require(Operation::SetRdsBackupPaused)?;
        let def = self
            .update_record(&p.org_id, id, expected_version, |def: &mut RdsBackupDefinition| {
                def.spec.paused = paused;
                def.updated_at = self.now();
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
        for (sched_id, desired) in self.rds_schedule_sets(def).await? {
            scheduler.sync(&sched_id, &desired).await?;
        }
        Ok(())
    }

    /// Both schedule sets' desired schedules, together (the reconciler compares them).
    pub(crate) async fn desired_rds_schedules(&self, def: &RdsBackupDefinition) -> Result<Vec<Schedule>> {
        Ok(self
            .rds_schedule_sets(def)
            .await?
            .into_iter()
            .flat_map(|(_, s)| s)
            .collect())
    }

    /// Each schedule set of the definition (backups, copies) with its desired schedules.
    async fn rds_schedule_sets(&self, def: &RdsBackupDefinition) -> Result<Vec<(String, Vec<Schedule>)>> {
        let mut sets = Vec::new();
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
            sets.push((sched_id, desired));
        }
        Ok(sets)
    }
}
