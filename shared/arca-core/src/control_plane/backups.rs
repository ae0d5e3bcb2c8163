//! Backup definitions and run-now.

use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, OrgId, PolicyId};
use crate::model::auth::{Operation, Principal};
use crate::model::backup::{BackupDefinition, BackupDefinitionSpec, BackupDefinitionView, PvMode};
use crate::model::cluster::Cluster;
use crate::model::destination::{Destination, EffectiveDestination, effective_destination};
use crate::model::dispatch::DispatchRequest;
use crate::model::job::{Job, JobTrigger};
use crate::model::org::Org;
use crate::model::policy::Retention;
use crate::model::policy::{self, Policy, PolicyReferrer, ReferrerKind};
use crate::store::page::{Listing, PageRequest};
use crate::store::{Record, Tx};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

use super::{ControlPlane, retry_on_conflict};

/// Options of a run-now; without a retention, the first schedule row of the
/// definition's policy decides, else the configured default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunNowRequest {
    #[serde(default)]
    pub retention: Option<Retention>,
}

fn referrer(def: &BackupDefinition) -> PolicyReferrer {
    PolicyReferrer {
        kind: ReferrerKind::K8sBackup,
        id: def.id.to_string(),
        name: def.spec.name.clone(),
    }
}

impl ControlPlane {
    /// Reads a referenced record, turning NotFound into `Invalid` on the referencing
    /// field: the request is wrong, not the URL.
    pub(in crate::control_plane) async fn existing<T: Record>(
        &self,
        org: &OrgId,
        id: &T::Id,
        field: &str,
    ) -> Result<T> {
        match self.store.get::<T>(org, id).await {
            Err(Error::NotFound { what }) => Err(Error::invalid(field, what)),
            other => other,
        }
    }

    pub(in crate::control_plane) async fn effective_for(
        &self,
        org: &Org,
        def: &BackupDefinition,
    ) -> Result<Option<EffectiveDestination>> {
        let cluster_default = match self.store.find::<Cluster>(&org.id, &def.spec.cluster_id).await? {
            Some(c) => c.spec.default_destination_id,
            None => None,
        };
        Ok(effective_destination(
            def.spec.destination_id,
            cluster_default,
            org.default_destination_id,
        ))
    }

    pub(in crate::control_plane) async fn copying_definitions(&self, org: &OrgId) -> Result<Vec<BackupDefinition>> {
        Ok(self
            .store
            .list_all::<BackupDefinition>(org)
            .await?
            .into_iter()
            .filter(|d| d.spec.pv_mode == PvMode::SnapshotAndCopy)
            .collect())
    }

    /// The destination rules of a definition: one must resolve, it must exist, and the
    /// org's plan must allow copying PV data there (snapshotAndCopy).
    pub(in crate::control_plane) async fn check_destination(
        &self,
        org: &Org,
        spec: &BackupDefinitionSpec,
        cluster: &Cluster,
    ) -> Result<EffectiveDestination> {
        if let Some(id) = &spec.destination_id {
            self.existing::<Destination>(&org.id, id, "destinationId").await?;
        }
        let effective = effective_destination(
            spec.destination_id,
            cluster.spec.default_destination_id,
            org.default_destination_id,
        )
        .ok_or_else(|| {
            Error::invalid(
                "destinationId",
                "no destination: set one on the definition, its cluster or the org",
            )
        })?;
        let dest = self
            .store
            .get::<Destination>(&org.id, &effective.destination_id)
            .await?;
        if spec.pv_mode == PvMode::SnapshotAndCopy {
            self.limits.check_pv_copy(org.plan, &dest.spec.target, "pvMode")?;
        }
        Ok(effective)
    }

    pub async fn create_backup_definition(
        &self,
        p: &Principal,
        spec: BackupDefinitionSpec,
    ) -> Result<BackupDefinitionView> {
        p.require(Operation::CreateBackupDefinition)?;
        let spec = &spec.validated()?;
        let id = BackupDefinitionId::new();
        let view = self
            .retrying(|| async move {
                let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
                let mut cluster = self
                    .existing::<Cluster>(&p.org_id, &spec.cluster_id, "clusterId")
                    .await?;
                let effective = self.check_destination(&org, spec, &cluster).await?;
                let now = self.now();
                let mut def = BackupDefinition {
                    id,
                    org_id: p.org_id,
                    spec: spec.clone(),
                    created_at: now,
                    updated_at: now,
                    version: 0,
                };
                let mut tx = Tx::new();
                tx.create(&mut def)?;
                let cluster_version = cluster.version;
                cluster.attach_definition(id)?;
                tx.update(&mut cluster, cluster_version)?;
                if let Some(policy_id) = &spec.policy_id {
                    let mut policy = self.existing::<Policy>(&p.org_id, policy_id, "policyId").await?;
                    let version = policy.version;
                    policy.upsert_referrer(referrer(&def))?;
                    tx.update(&mut policy, version)?;
                }
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(BackupDefinitionView {
                    definition: def,
                    effective_destination: Some(effective),
                })
            })
            .await?;
        self.sync_schedules(&view.definition).await?;
        Ok(view)
    }

    pub(in crate::control_plane) async fn view(
        &self,
        org: &Org,
        def: BackupDefinition,
    ) -> Result<BackupDefinitionView> {
        let effective_destination = self.effective_for(org, &def).await?;
        Ok(BackupDefinitionView {
            definition: def,
            effective_destination,
        })
    }

    pub async fn get_backup_definition(&self, p: &Principal, id: &BackupDefinitionId) -> Result<BackupDefinitionView> {
        p.require(Operation::GetBackupDefinition)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self.store.get(&p.org_id, id).await?;
        self.view(&org, def).await
    }

    pub async fn list_backup_definitions(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Listing<BackupDefinitionView>> {
        p.require(Operation::ListBackupDefinitions)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let listing = self.store.list::<BackupDefinition>(&p.org_id, page).await?;
        // The page's clusters only (each once, in one batch), whatever the org holds.
        let ids: Vec<ClusterId> = listing
            .items
            .iter()
            .map(|d| d.spec.cluster_id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let found = self.store.find_many::<Cluster>(&p.org_id, &ids).await?;
        let clusters: std::collections::BTreeMap<ClusterId, Option<DestinationId>> = ids
            .into_iter()
            .zip(found)
            .map(|(id, c)| (id, c.and_then(|c| c.spec.default_destination_id)))
            .collect();
        Ok(listing.map(|definition| {
            let cluster_default = clusters.get(&definition.spec.cluster_id).copied().flatten();
            let effective_destination = effective_destination(
                definition.spec.destination_id,
                cluster_default,
                org.default_destination_id,
            );
            BackupDefinitionView {
                definition,
                effective_destination,
            }
        }))
    }

    /// Replaces a definition's spec. The cluster is fixed; a policy change moves the
    /// definition between the two policies' `usedBy` in the same transaction.
    pub async fn update_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        spec: BackupDefinitionSpec,
        expected_version: u64,
    ) -> Result<BackupDefinitionView> {
        p.require(Operation::UpdateBackupDefinition)?;
        let spec = &spec.validated()?;
        let view = self
            .retrying(|| async move {
                let mut def = self
                    .store
                    .get_at::<BackupDefinition>(&p.org_id, id, expected_version)
                    .await?;
                if def.spec.cluster_id != spec.cluster_id {
                    return Err(Error::invalid(
                        "clusterId",
                        "a backup definition's cluster cannot change; create a new definition",
                    ));
                }
                let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
                let cluster = self.store.get::<Cluster>(&p.org_id, &spec.cluster_id).await?;
                let effective = self.check_destination(&org, spec, &cluster).await?;
                let old_policy = def.spec.policy_id;
                def.spec = spec.clone();
                def.updated_at = self.now();
                let mut tx = Tx::new();
                tx.update(&mut def, expected_version)?;
                // The old policy lets go, the new one takes it (the same one: just renamed).
                if old_policy != spec.policy_id
                    && let Some(pid) = old_policy
                    && let Some(mut policy) = self.store.find::<Policy>(&p.org_id, &pid).await?
                {
                    let v = policy.version;
                    policy.remove_referrer(ReferrerKind::K8sBackup, &id.to_string());
                    tx.update(&mut policy, v)?;
                }
                if let Some(pid) = spec.policy_id {
                    let mut policy = self.existing::<Policy>(&p.org_id, &pid, "policyId").await?;
                    let before = policy.used_by.clone();
                    policy.upsert_referrer(referrer(&def))?;
                    if policy.used_by != before || old_policy != spec.policy_id {
                        let v = policy.version;
                        tx.update(&mut policy, v)?;
                    } else {
                        // Unchanged, but it must still exist when the definition is written.
                        tx.check::<Policy>(&p.org_id, &pid, policy.version);
                    }
                }
                self.store.commit(tx).await.map_err(retry_on_conflict)?;
                Ok(BackupDefinitionView {
                    definition: def,
                    effective_destination: Some(effective),
                })
            })
            .await?;
        self.sync_schedules(&view.definition).await?;
        Ok(view)
    }

    /// Deletes a definition, releasing its policy and cluster in the same transaction.
    pub async fn delete_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: u64,
    ) -> Result<()> {
        p.require(Operation::DeleteBackupDefinition)?;
        self.retrying(|| async move {
            let def = self
                .store
                .get_at::<BackupDefinition>(&p.org_id, id, expected_version)
                .await?;
            let mut tx = Tx::new();
            tx.delete::<BackupDefinition>(&p.org_id, id, expected_version);
            if let Some(mut cluster) = self.store.find::<Cluster>(&p.org_id, &def.spec.cluster_id).await? {
                let v = cluster.version;
                cluster.backup_definition_ids.remove(id);
                tx.update(&mut cluster, v)?;
            }
            if let Some(pid) = def.spec.policy_id
                && let Some(mut policy) = self.store.find::<Policy>(&p.org_id, &pid).await?
            {
                let v = policy.version;
                policy.remove_referrer(ReferrerKind::K8sBackup, &id.to_string());
                tx.update(&mut policy, v)?;
            }
            self.store.commit(tx).await.map_err(retry_on_conflict)
        })
        .await?;
        self.sync_schedules_to_nothing(id).await
    }

    /// Pauses (stops scheduled runs of) a definition. `expected_version` `None` means
    /// "whatever the current version is" (an action, not an edit).
    pub async fn pause_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: Option<u64>,
    ) -> Result<BackupDefinitionView> {
        self.set_paused(p, id, expected_version, true).await
    }

    pub async fn resume_backup_definition(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: Option<u64>,
    ) -> Result<BackupDefinitionView> {
        self.set_paused(p, id, expected_version, false).await
    }

    pub(in crate::control_plane) async fn set_paused(
        &self,
        p: &Principal,
        id: &BackupDefinitionId,
        expected_version: Option<u64>,
        paused: bool,
    ) -> Result<BackupDefinitionView> {
        p.require(Operation::SetBackupPaused)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self
            .update_record(&p.org_id, id, expected_version, |def: &mut BackupDefinition| {
                def.spec.paused = paused;
                def.updated_at = self.now();
            })
            .await?;
        self.sync_schedules(&def).await?;
        self.view(&org, def).await
    }

    /// Runs a definition now: a PENDING K8S_BACKUP job. Paused definitions may still be
    /// run by hand (pause stops the schedule). The destination and plan rules are checked
    /// again, since defaults may have changed since the definition was saved.
    pub async fn run_backup_now(&self, p: &Principal, id: &BackupDefinitionId, request: RunNowRequest) -> Result<Job> {
        p.require(Operation::RunBackupNow)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let def = self.store.get::<BackupDefinition>(&p.org_id, id).await?;
        let cluster = self.store.get::<Cluster>(&p.org_id, &def.spec.cluster_id).await?;
        self.check_destination(&org, &def.spec, &cluster).await?;
        let retention = self
            .run_now_retention(&org, request.retention, def.spec.policy_id)
            .await?;
        // The same path as a schedule firing: the decision, the race-safe active-job
        // write and the enqueue all happen there.
        self.dispatch(DispatchRequest {
            org_id: p.org_id,
            definition_id: def.id,
            trigger: JobTrigger::Manual,
            rule: None,
            retention: Some(retention),
        })
        .await
    }

    /// A run-now's retention: the request's, else the first schedule row's of its policy,
    /// else the configured default; within the bounds and the org's plan.
    pub(in crate::control_plane) async fn run_now_retention(
        &self,
        org: &Org,
        requested: Option<Retention>,
        pid: Option<PolicyId>,
    ) -> Result<Retention> {
        let retention = match requested {
            Some(r) => r,
            None => match pid {
                Some(pid) => self
                    .store
                    .find::<Policy>(&org.id, &pid)
                    .await?
                    .and_then(|p| p.spec.schedules.first().cloned()),
                None => None,
            }
            .map_or(
                Retention {
                    retain_days: self.config.default_run_now_retain_days,
                    keep_last: None,
                },
                |row| Retention {
                    retain_days: row.retain_days,
                    keep_last: row.keep_last,
                },
            ),
        };
        if retention.retain_days == 0 || retention.retain_days > policy::MAX_RETAIN_DAYS {
            return Err(Error::invalid(
                "retention.retainDays",
                format!("must be between 1 and {}", policy::MAX_RETAIN_DAYS),
            ));
        }
        self.limits
            .check_retain_days(org.plan, "retention.retainDays", retention.retain_days)?;
        Ok(retention)
    }
}
