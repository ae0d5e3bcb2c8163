//! Policies.

use crate::ids::{BackupDefinitionId, PolicyId};
use crate::model::auth::{Operation, Principal};
use crate::model::backup::BackupDefinition;
use crate::model::org::Org;
use crate::model::policy::{self, Policy, PolicySpec, ReferrerKind};
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

use super::ControlPlane;

impl ControlPlane {
    pub async fn create_policy(&self, p: &Principal, spec: PolicySpec) -> Result<Policy> {
        p.require(Operation::CreatePolicy)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let spec = spec.validated(org.plan, &self.limits)?;
        let now = self.now();
        let policy = Policy {
            id: PolicyId::new(),
            org_id: p.org_id,
            spec,
            used_by: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.store.create(policy).await
    }

    pub async fn get_policy(&self, p: &Principal, id: &PolicyId) -> Result<Policy> {
        p.require(Operation::GetPolicy)?;
        self.store.get(&p.org_id, id).await
    }

    pub async fn list_policies(&self, p: &Principal, page: &PageRequest) -> Result<Listing<Policy>> {
        p.require(Operation::ListPolicies)?;
        self.store.list(&p.org_id, page).await
    }

    /// Replaces a policy's spec; `usedBy` is kept. A policy used by an RDS copy must
    /// stay at most daily.
    pub async fn update_policy(
        &self,
        p: &Principal,
        id: &PolicyId,
        spec: PolicySpec,
        expected_version: u64,
    ) -> Result<Policy> {
        p.require(Operation::UpdatePolicy)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let spec = spec.validated(org.plan, &self.limits)?;
        let mut policy = self.store.get::<Policy>(&p.org_id, id).await?;
        if policy.is_used_by_rds_copy() {
            policy::ensure_at_most_daily(&spec, self.now())?;
        }
        // Renaming changes nothing elsewhere: definitions refer to the policy by id.
        policy.spec = spec;
        policy.updated_at = self.now();
        let policy = self.store.update(policy, expected_version).await?;
        // Every definition on this policy gets its schedules re-derived (rows, crons,
        // timezone and suspension may all have changed).
        for user in policy.used_by.iter().filter(|u| u.kind == ReferrerKind::K8sBackup) {
            let Ok(def_id) = user.id.parse::<BackupDefinitionId>() else {
                continue;
            };
            if let Some(def) = self.store.find::<BackupDefinition>(&p.org_id, &def_id).await? {
                self.sync_schedules(&def).await?;
            }
        }
        for user in policy
            .used_by
            .iter()
            .filter(|u| matches!(u.kind, ReferrerKind::RdsBackup | ReferrerKind::RdsCopy))
        {
            let Ok(def_id) = user.id.parse::<crate::ids::RdsBackupDefinitionId>() else {
                continue;
            };
            if let Some(def) = self
                .store
                .find::<crate::model::rds::RdsBackupDefinition>(&p.org_id, &def_id)
                .await?
            {
                self.sync_rds_schedules(&def).await?;
            }
        }
        Ok(policy)
    }

    /// Deletes a policy nothing uses. `usedBy` changes bump the version, so the version
    /// condition makes "in use" race-free.
    pub async fn delete_policy(&self, p: &Principal, id: &PolicyId, expected_version: u64) -> Result<()> {
        p.require(Operation::DeletePolicy)?;
        let policy = self.store.get_at::<Policy>(&p.org_id, id, expected_version).await?;
        policy.ensure_unused()?;
        self.store.delete::<Policy>(&p.org_id, id, expected_version).await
    }

    /// The attach check for RDS copy definitions (which arrive in a later issue): the
    /// policy exists and never runs more often than daily.
    pub async fn check_policy_for_rds_copy(&self, p: &Principal, id: &PolicyId) -> Result<Policy> {
        p.require(Operation::GetPolicy)?;
        let policy = self.existing::<Policy>(&p.org_id, id, "policyId").await?;
        policy::ensure_at_most_daily(&policy.spec, self.now()).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::invalid("policyId", message),
            other => other,
        })?;
        Ok(policy)
    }
}
