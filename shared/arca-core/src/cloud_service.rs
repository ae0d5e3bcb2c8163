//! Linked AWS accounts and their inventory: the part of [`ControlPlane`] that works
//! through the [`CloudConnector`] port.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::agent::CompletionReport;
use crate::auth::{Principal, Role};
use crate::cloud::account::{LinkEvent, new_external_id, role_account_id};
use crate::cloud::ebs::{EbsSnapshotRef, EksRecreation, EksRecreationState, RecoveryPointAws, snapshot_tags};
use crate::cloud::inventory::{AwsInventory, AwsInventoryId, AwsResource};
use crate::cloud::{
    AccountLinkNotification, CloudAccount, CloudAccountSpec, CloudAccountState, CloudAccountView, CloudConnector,
    CloudFailure, ROLE_STACK_VERSION, RoleStackConfig,
};
use crate::cluster::{Cluster, ClusterSpec};
use crate::ids::{CloudAccountId, OrgId};
use crate::ids::{EksRecreationId, RecoveryPointId};
use crate::job::{Job, JobType};
use crate::rds::{EksRecreationWorkMessage, RdsWorkQueue};
use crate::recovery::RecoveryPoint;
use crate::restore::RestoreSpec;
use crate::service::{CONCURRENCY_RETRIES, ControlPlane};
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};

/// What one inventory run of one account did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReport {
    pub cloud_account_id: CloudAccountId,
    pub state: CloudAccountState,
    pub regions: Vec<RegionReport>,
    /// Why the run stopped early: the role was rejected (the account is now DISCONNECTED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionReport {
    pub region: String,
    /// Resources present after this run.
    pub present: usize,
    /// Resources this run no longer found (newly vanished).
    pub vanished: usize,
    /// The region could not be read; its previous inventory is kept as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The linked accounts part of the deployment: how to reach them and how the role stack
/// is offered.
#[derive(Clone)]
pub(crate) struct CloudWiring {
    pub connector: Arc<dyn CloudConnector>,
    pub role_stack: RoleStackConfig,
}

impl ControlPlane {
    /// Wires linked AWS accounts: the connector that assumes their roles and where the
    /// role stack is published. Without it, linking accounts is refused.
    pub fn with_cloud(mut self, connector: Arc<dyn CloudConnector>, role_stack: RoleStackConfig) -> Self {
        self.cloud = Some(CloudWiring { connector, role_stack });
        self
    }

    fn cloud(&self) -> Result<&CloudWiring> {
        self.cloud.as_ref().ok_or_else(|| Error::Forbidden {
            message: "this deployment cannot reach AWS accounts (no cloud connector is configured)".into(),
        })
    }

    fn cloud_view(&self, account: CloudAccount) -> CloudAccountView {
        let quick_create_link = self
            .cloud
            .as_ref()
            .and_then(|c| c.role_stack.quick_create_link(&account));
        CloudAccountView {
            update_available: account.update_available(),
            current_role_stack_version: ROLE_STACK_VERSION,
            quick_create_link,
            account,
        }
    }

    /// Starts linking an account: mints its ExternalId; the view carries the quick-create
    /// link that creates the role stack.
    pub async fn link_cloud_account(&self, p: &Principal, spec: CloudAccountSpec) -> Result<CloudAccountView> {
        p.require(Role::Admin)?;
        self.cloud()?;
        let spec = spec.validated()?;
        let now = self.now();
        let account = CloudAccount {
            id: CloudAccountId::new(),
            org_id: p.org_id,
            spec,
            external_id: new_external_id()?,
            state: CloudAccountState::Pending,
            aws_account_id: None,
            role_arn: None,
            role_stack_version: None,
            permission_sets: None,
            last_error: None,
            verified_at: None,
            last_inventory_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let account = self.store.create(account).await?;
        Ok(self.cloud_view(account))
    }

    pub async fn get_cloud_account(&self, p: &Principal, id: &CloudAccountId) -> Result<CloudAccountView> {
        p.require(Role::Viewer)?;
        Ok(self.cloud_view(self.store.get::<CloudAccount>(&p.org_id, id).await?))
    }

    pub async fn list_cloud_accounts(&self, p: &Principal, page: &PageRequest) -> Result<Listing<CloudAccountView>> {
        p.require(Role::Viewer)?;
        let listing = self.store.list::<CloudAccount>(&p.org_id, page).await?;
        Ok(Listing {
            items: listing.items.into_iter().map(|a| self.cloud_view(a)).collect(),
            next_cursor: listing.next_cursor,
        })
    }

    /// Replaces name, description and regions. Inventories of regions no longer listed
    /// are kept until the account is deleted (they say what was there).
    pub async fn update_cloud_account(
        &self,
        p: &Principal,
        id: &CloudAccountId,
        spec: CloudAccountSpec,
        expected_version: u64,
    ) -> Result<CloudAccountView> {
        p.require(Role::Admin)?;
        let spec = spec.validated()?;
        let mut account = self.store.get::<CloudAccount>(&p.org_id, id).await?;
        account.spec = spec;
        account.updated_at = self.now();
        Ok(self.cloud_view(self.store.update(account, expected_version).await?))
    }

    /// Forgets an account and its inventory. The role stack stays in the user's account
    /// (deleting it is theirs to do; `cfn/README.md`).
    pub async fn delete_cloud_account(&self, p: &Principal, id: &CloudAccountId, expected_version: u64) -> Result<()> {
        p.require(Role::Admin)?;
        self.store
            .delete::<CloudAccount>(&p.org_id, id, expected_version)
            .await?;
        // Inventories after the account, one by one: any number of regions fits, and one
        // left behind by an interruption is invisible (read only through its account).
        for inv in self.store.aws_inventories(&p.org_id, id).await? {
            match self.store.delete::<AwsInventory>(&p.org_id, &inv.id, inv.version).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The user pasted the role ARN (instead of the stack's notification): verify it.
    pub async fn set_cloud_account_role(
        &self,
        p: &Principal,
        id: &CloudAccountId,
        role_arn: &str,
        expected_version: u64,
    ) -> Result<CloudAccountView> {
        p.require(Role::Admin)?;
        let cloud = self.cloud()?;
        let owner = role_account_id(role_arn)?;
        let mut account = self.store.get::<CloudAccount>(&p.org_id, id).await?;
        if account.version != expected_version {
            return Err(self
                .store
                .version_failure::<CloudAccount>(&p.org_id, id, expected_version)
                .await);
        }
        account.role_arn = Some(role_arn.to_string());
        account.aws_account_id = Some(owner);
        let outcome = verification(cloud, &account).await?;
        account.record_verification(outcome, self.now());
        Ok(self.cloud_view(self.store.update(account, expected_version).await?))
    }

    /// Tries the account's role again now (the user fixed the trust policy, say).
    pub async fn verify_cloud_account(&self, p: &Principal, id: &CloudAccountId) -> Result<CloudAccountView> {
        p.require(Role::Admin)?;
        let cloud = self.cloud()?;
        let account = self.store.get::<CloudAccount>(&p.org_id, id).await?;
        if account.role_arn.is_none() {
            return Err(Error::conflict(format!(
                "cloud account {id} has no role yet: create the role stack or set roleArn"
            )));
        }
        let outcome = verification(cloud, &account).await?;
        let now = self.now();
        let account = self
            .mutate_account(&p.org_id, id, |a| a.record_verification(outcome.clone(), now))
            .await?;
        Ok(self.cloud_view(account))
    }

    /// The role stack's custom resource reported in (through SNS, so anyone could have
    /// sent it): it counts only if it names an account Arca is linking and carries that
    /// account's ExternalId, and the role is then verified like a pasted one.
    pub async fn apply_account_link(&self, n: &AccountLinkNotification) -> Result<CloudAccount> {
        let cloud = self.cloud()?;
        let (org, id) = n.target()?;
        let unknown = || Error::Forbidden {
            message: "the notification does not match a cloud account being linked".into(),
        };
        let account = match self.store.find::<CloudAccount>(&org, &id).await? {
            Some(a) if a.external_id == n.external_id => a,
            _ => return Err(unknown()),
        };
        let now = self.now();
        if n.kind == LinkEvent::Delete {
            return self
                .mutate_account(&org, &id, |a| {
                    if a.role_arn.as_deref() == Some(n.role_arn.as_str()) {
                        a.record_verification(Err("the role stack was deleted".into()), now);
                    }
                })
                .await;
        }
        let owner = role_account_id(&n.role_arn)?;
        let mut candidate = account;
        candidate.role_arn = Some(n.role_arn.clone());
        let outcome = verification(cloud, &candidate).await?;
        self.mutate_account(&org, &id, |a| {
            a.role_arn = Some(n.role_arn.clone());
            a.aws_account_id = Some(owner.clone());
            a.role_stack_version = Some(n.role_stack_version.clone());
            a.permission_sets = Some(n.permission_sets);
            a.record_verification(outcome.clone(), now);
        })
        .await
    }

    /// "Inventory now" for one account.
    pub async fn inventory_cloud_account(&self, p: &Principal, id: &CloudAccountId) -> Result<InventoryReport> {
        p.require(Role::Operator)?;
        self.run_inventory(&p.org_id, id).await
    }

    /// What the last inventory runs found, one entry per region (or just `region`).
    pub async fn get_cloud_inventory(
        &self,
        p: &Principal,
        id: &CloudAccountId,
        region: Option<&str>,
    ) -> Result<Vec<AwsInventory>> {
        p.require(Role::Viewer)?;
        self.store.get::<CloudAccount>(&p.org_id, id).await?;
        let mut all = self.store.aws_inventories(&p.org_id, id).await?;
        if let Some(region) = region {
            all.retain(|i| i.id.region == region);
        }
        Ok(all)
    }

    /// The fixed 12-hour run: every linked account of every org with a role. One
    /// account's failure does not stop the others; each report says what happened.
    pub async fn inventory_everything(&self) -> Result<Vec<Result<InventoryReport>>> {
        let mut reports = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .cloud_accounts_cross_tenant(&PageRequest::after(cursor, crate::store::page::MAX_PAGE_SIZE))
                .await?;
            for account in page.items.iter().filter(|a| a.role_arn.is_some()) {
                reports.push(self.run_inventory(&account.org_id, &account.id).await);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(reports),
            }
        }
    }

    /// Discovers every enabled region of one account and merges each into its stored
    /// inventory. A rejected role ends the run and disconnects the account; any other
    /// failure in a region is reported and leaves that region's inventory as it was.
    pub async fn run_inventory(&self, org: &OrgId, id: &CloudAccountId) -> Result<InventoryReport> {
        let cloud = self.cloud()?;
        let account = self.store.get::<CloudAccount>(org, id).await?;
        let role = account.role().ok_or_else(|| {
            Error::conflict(format!(
                "cloud account {id} has no role yet: create the role stack or set roleArn"
            ))
        })?;
        let owner = role_account_id(&role.role_arn)?;
        let mut regions = Vec::new();
        let mut rejected = None;
        let mut worked = false;
        for region in &account.spec.regions {
            let found = match cloud.connector.discover(&role, region).await {
                Ok(found) => found,
                Err(CloudFailure::RoleRejected(message)) => {
                    rejected = Some(message);
                    break;
                }
                Err(CloudFailure::Other(e)) => {
                    regions.push(RegionReport {
                        region: region.clone(),
                        present: 0,
                        vanished: 0,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
            };
            worked = true;
            regions.push(self.store_region_inventory(org, id, region, found).await?);
        }
        let now = self.now();
        // Discovery through the role is as good a verification as AssumeRole alone.
        let outcome = match (&rejected, worked) {
            (Some(message), _) => Some(Err(message.clone())),
            (None, true) => Some(Ok(owner)),
            (None, false) => None,
        };
        let account = self
            .mutate_account(org, id, |a| {
                if let Some(outcome) = outcome.clone() {
                    a.record_verification(outcome, now);
                }
                if rejected.is_none() && worked {
                    a.last_inventory_at = Some(now);
                }
            })
            .await?;
        Ok(InventoryReport {
            cloud_account_id: *id,
            state: account.state,
            regions,
            error: rejected,
        })
    }

    async fn store_region_inventory(
        &self,
        org: &OrgId,
        id: &CloudAccountId,
        region: &str,
        found: Vec<crate::cloud::AwsResource>,
    ) -> Result<RegionReport> {
        let key = AwsInventoryId {
            cloud_account_id: *id,
            region: region.to_string(),
        };
        let previous = self.store.find::<AwsInventory>(org, &key).await?;
        let mut inventory = previous
            .clone()
            .unwrap_or_else(|| AwsInventory::empty(*org, *id, region));
        let now = self.now();
        inventory.merge(found, now);
        let present = inventory.present().count();
        let vanished = inventory.entries.iter().filter(|e| e.vanished_at == Some(now)).count();
        match previous {
            Some(p) => self.store.update(inventory, p.version).await?,
            None => self.store.create(inventory).await?,
        };
        Ok(RegionReport {
            region: region.to_string(),
            present,
            vanished,
            error: None,
        })
    }

    /// Read, change, write the account at the version read; again when a concurrent
    /// writer (a user edit, another run) got there first.
    async fn mutate_account(
        &self,
        org: &OrgId,
        id: &CloudAccountId,
        change: impl Fn(&mut CloudAccount),
    ) -> Result<CloudAccount> {
        let mut last = None;
        for _ in 0..CONCURRENCY_RETRIES {
            let mut account = self.store.get::<CloudAccount>(org, id).await?;
            let version = account.version;
            change(&mut account);
            match self.store.update(account, version).await {
                Err(e @ Error::PreconditionFailed { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::conflict("cloud account kept changing; retry")))
    }
}

/// Assumes the account's role: `Ok(Ok(account))` when it works (and belongs to the
/// account its ARN names), `Ok(Err(why))` when the role is rejected, `Err` when AWS
/// could not be asked.
async fn verification(cloud: &CloudWiring, account: &CloudAccount) -> Result<std::result::Result<String, String>> {
    let Some(role) = account.role() else {
        return Ok(Err("no role".into()));
    };
    match cloud.connector.verify(&role).await {
        Ok(owner) => {
            let expected = role_account_id(&role.role_arn)?;
            if owner == expected {
                Ok(Ok(owner))
            } else {
                Ok(Err(format!(
                    "the role's credentials belong to account {owner}, not {expected}"
                )))
            }
        }
        Err(CloudFailure::RoleRejected(message)) => Ok(Err(message)),
        Err(CloudFailure::Other(e)) => Err(e),
    }
}

/// EKS cluster names: 1-100 letters, digits, hyphens and underscores, starting with a
/// letter or digit.
fn check_eks_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!("{name:?} is not an EKS cluster name (1-100 letters, digits, - and _)"),
        ))
    }
}

impl ControlPlane {
    /// The linked account and role of a cluster's AWS link.
    async fn linked_role(&self, org: &OrgId, account: &CloudAccountId) -> Result<crate::cloud::RoleRef> {
        let account = self.store.get::<CloudAccount>(org, account).await?;
        match (account.state, account.role()) {
            (CloudAccountState::Active, Some(role)) => Ok(role),
            (state, _) => Err(Error::conflict(format!(
                "cloud account {} is {state:?}, so Arca cannot act in it",
                account.id
            ))),
        }
    }

    /// After a K8S_BACKUP's recovery point is stored: EBS snapshots of the volumes the
    /// agent found and the EKS cluster's metadata, through the cluster's linked account,
    /// kept beside the point. Runs once per point (a repeated completion finds the record).
    /// Failures are recorded on it, not raised: the resource backup itself succeeded.
    pub(crate) async fn protect_on_aws(&self, job: &Job, report: &CompletionReport) -> Result<()> {
        let (JobType::K8sBackup, Some(rp_id), Some(cluster_id)) = (job.job_type, job.recovery_point_id, job.cluster_id)
        else {
            return Ok(());
        };
        let Some(cloud) = &self.cloud else { return Ok(()) };
        let cluster = self.store.get::<Cluster>(&job.org_id, &cluster_id).await?;
        let Some(link) = cluster.spec.aws else { return Ok(()) };
        if self
            .store
            .find::<RecoveryPointAws>(&job.org_id, &rp_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let rp = self.store.get::<RecoveryPoint>(&job.org_id, &rp_id).await?;
        let volumes = report
            .backup
            .as_ref()
            .map(|b| b.ebs_volumes.clone())
            .unwrap_or_default();
        let mut record = RecoveryPointAws {
            recovery_point_id: rp_id,
            org_id: job.org_id,
            cloud_account_id: link.cloud_account_id,
            region: link.region.clone(),
            ebs_snapshots: Vec::new(),
            eks: None,
            errors: Vec::new(),
            created_at: self.now(),
            version: 0,
        };
        match self.linked_role(&job.org_id, &link.cloud_account_id).await {
            Ok(role) => {
                for volume in &volumes {
                    let tags = snapshot_tags(&rp_id, rp.expires_at, volume);
                    match cloud
                        .connector
                        .snapshot_volume(&role, &link.region, &volume.volume_id, &tags)
                        .await
                    {
                        Ok(snapshot_id) => record.ebs_snapshots.push(EbsSnapshotRef {
                            pv_name: volume.pv_name.clone(),
                            volume_id: volume.volume_id.clone(),
                            snapshot_id,
                        }),
                        Err(e) => record.errors.push(format!(
                            "EBS snapshot of {} (PV {}): {}",
                            volume.volume_id,
                            volume.pv_name,
                            Error::from(e)
                        )),
                    }
                }
            }
            Err(e) if !volumes.is_empty() => record.errors.push(format!("EBS volumes not snapshotted: {e}")),
            Err(_) => {}
        }
        if let Some(name) = &link.eks_cluster_name {
            let key = AwsInventoryId {
                cloud_account_id: link.cloud_account_id,
                region: link.region.clone(),
            };
            let saved = self
                .store
                .find::<AwsInventory>(&job.org_id, &key)
                .await?
                .and_then(|inv| {
                    inv.present().find_map(|e| match &e.resource {
                        AwsResource::EksCluster(c) if c.name == *name => Some(c.clone()),
                        _ => None,
                    })
                });
            match saved {
                Some(eks) => record.eks = Some(eks),
                None => record.errors.push(format!(
                    "EKS cluster {name} is not in the inventory of {} in {}: its metadata was not saved (run the inventory)",
                    link.cloud_account_id, link.region
                )),
            }
        }
        match self.store.create(record).await {
            Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What Arca made on AWS for a point, removed before the point goes (retention).
    /// Snapshots already gone count as deleted; an error leaves the record for the next try.
    pub(crate) async fn delete_aws_artifacts(&self, rp: &RecoveryPoint) -> Result<()> {
        let Some(record) = self.store.find::<RecoveryPointAws>(&rp.org_id, &rp.id).await? else {
            return Ok(());
        };
        if !record.ebs_snapshots.is_empty() {
            let cloud = self.cloud()?;
            let role = self.linked_role(&rp.org_id, &record.cloud_account_id).await?;
            for s in &record.ebs_snapshots {
                cloud
                    .connector
                    .delete_volume_snapshot(&role, &record.region, &s.snapshot_id)
                    .await
                    .map_err(Error::from)?;
            }
        }
        self.store
            .delete::<RecoveryPointAws>(&rp.org_id, &rp.id, record.version)
            .await
    }

    /// The EBS snapshots and EKS metadata Arca keeps for a recovery point, if any.
    pub async fn get_recovery_point_aws(
        &self,
        p: &Principal,
        id: &RecoveryPointId,
    ) -> Result<Option<RecoveryPointAws>> {
        p.require(Role::Viewer)?;
        self.get_recovery_point(p, id).await?;
        self.store.find::<RecoveryPointAws>(&p.org_id, id).await
    }

    /// Starts re-creating the EKS cluster a recovery point was taken of, under `name`, in
    /// the same account and region, from the metadata saved with the point. The AWS work
    /// queue then checks EKS every [`EKS_RECHECK_DELAY`] ([`ControlPlane::eks_recreation_step`]).
    pub async fn recreate_eks(&self, p: &Principal, rp_id: &RecoveryPointId, name: &str) -> Result<EksRecreation> {
        p.require(Role::Admin)?;
        check_eks_name(name)?;
        let cloud = self.cloud()?;
        self.get_recovery_point(p, rp_id).await?;
        let saved = self.store.find::<RecoveryPointAws>(&p.org_id, rp_id).await?;
        let Some((record, eks)) = saved.and_then(|r| r.eks.clone().map(|e| (r, e))) else {
            return Err(Error::conflict(format!(
                "recovery point {rp_id} has no saved EKS metadata (its cluster was not linked to an EKS cluster)"
            )));
        };
        let role = self.linked_role(&p.org_id, &record.cloud_account_id).await?;
        cloud
            .connector
            .create_eks_cluster(&role, &record.region, name, &eks)
            .await
            .map_err(Error::from)?;
        let now = self.now();
        let id = EksRecreationId::new();
        // The message goes before the record: if storing fails, its delivery finds
        // nothing and is dropped; the other way round a stored re-creation could be left
        // with no message to move it.
        self.enqueue_eks(&p.org_id, &id, EKS_RECHECK_DELAY).await?;
        self.store
            .create(EksRecreation {
                id,
                org_id: p.org_id,
                recovery_point_id: *rp_id,
                cloud_account_id: record.cloud_account_id,
                region: record.region,
                name: name.to_string(),
                state: EksRecreationState::CreatingCluster,
                cluster_id: None,
                restore_id: None,
                next_step: Some(
                    "EKS is creating the cluster (10-15 minutes); Arca checks it every minute and moves on when it is ACTIVE"
                        .into(),
                ),
                error: None,
                created_at: now,
                updated_at: now,
                version: 0,
            })
            .await
    }

    /// A re-creation as stored. Where no work queue is wired (nothing would step it), a
    /// read of one still creating checks EKS once, as [`ControlPlane::eks_recreation_step`].
    pub async fn get_eks_recreation(&self, p: &Principal, id: &EksRecreationId) -> Result<EksRecreation> {
        p.require(Role::Viewer)?;
        let r = self.store.get::<EksRecreation>(&p.org_id, id).await?;
        if r.state == EksRecreationState::CreatingCluster && self.work_queue().is_none() {
            return self.check_eks_recreation(r).await;
        }
        Ok(r)
    }

    /// The org's re-creations, newest first.
    pub async fn list_eks_recreations(&self, p: &Principal, page: &PageRequest) -> Result<Listing<EksRecreation>> {
        p.require(Role::Viewer)?;
        self.store
            .list_where(&p.org_id, page, false, |_: &EksRecreation| true)
            .await
    }

    /// One delivery of a re-creation's work message: checks EKS once. Once the cluster is
    /// ACTIVE its node groups are created, an Arca cluster is registered for it and the
    /// restore of the point is queued there (it runs when the agent, installed by the
    /// user, connects). While EKS is still creating it the message is sent again. A
    /// finished re-creation is returned as it is, so a duplicate message does nothing.
    pub async fn eks_recreation_step(&self, org: &OrgId, id: &EksRecreationId) -> Result<EksRecreation> {
        let r = self.store.get::<EksRecreation>(org, id).await?;
        if r.state != EksRecreationState::CreatingCluster {
            return Ok(r);
        }
        let r = self.check_eks_recreation(r).await?;
        if r.state == EksRecreationState::CreatingCluster {
            self.enqueue_eks(org, id, EKS_RECHECK_DELAY).await?;
        }
        Ok(r)
    }

    /// The AWS work queue, when the deployment has one (it is wired with RDS).
    fn work_queue(&self) -> Option<Arc<dyn RdsWorkQueue>> {
        self.rds.as_ref().and_then(|w| w.queue.clone())
    }

    async fn enqueue_eks(&self, org: &OrgId, id: &EksRecreationId, delay: Duration) -> Result<()> {
        if let Some(q) = self.work_queue() {
            let message = EksRecreationWorkMessage {
                org_id: *org,
                eks_recreation_id: *id,
            };
            q.send(&message.into(), delay.min(crate::rds::MAX_DELAY)).await?;
        }
        Ok(())
    }

    /// One check of EKS for a re-creation still creating its cluster, stored. EKS that
    /// cannot be asked (throttled, the account's role broken for a while) is recorded in
    /// `error` and tried again at the next check; only a cluster that is gone or failed,
    /// or still creating after [`EKS_CREATE_TIMEOUT`], fails the re-creation.
    async fn check_eks_recreation(&self, mut r: EksRecreation) -> Result<EksRecreation> {
        let expected = r.version;
        let now = self.now();
        r.updated_at = now;
        let timed_out = (now - r.created_at)
            .to_std()
            .is_ok_and(|creating| creating > EKS_CREATE_TIMEOUT);
        let checked = async {
            let cloud = self.cloud()?;
            let role = self.linked_role(&r.org_id, &r.cloud_account_id).await?;
            let status = cloud
                .connector
                .eks_cluster_status(&role, &r.region, &r.name)
                .await
                .map_err(Error::from)?;
            Ok::<_, Error>((role, status))
        }
        .await;
        match checked {
            Ok((role, Some(status))) if status == "ACTIVE" => {
                r.error = None;
                // Claimed first: of two deliveries racing here, only the one whose write
                // lands creates the node groups, the Arca cluster and the restore.
                let mut r = self.store.update(r, expected).await?;
                let expected = r.version;
                if let Err(e) = self.finish_eks_recreation(&mut r, &role).await {
                    fail(&mut r, e.to_string());
                }
                return self.store.update(r, expected).await;
            }
            Ok((_, Some(status))) if status == "CREATING" => {
                r.error = None;
                if timed_out {
                    fail(&mut r, timeout_message());
                }
            }
            Ok((_, Some(status))) => fail(&mut r, format!("EKS reports the cluster {status}")),
            Ok((_, None)) => fail(&mut r, "the EKS cluster no longer exists".into()),
            Err(e) if timed_out => fail(&mut r, format!("{} (last check: {e})", timeout_message())),
            Err(e) => r.error = Some(format!("checking EKS failed, retried at the next check: {e}")),
        }
        self.store.update(r, expected).await
    }

    async fn finish_eks_recreation(&self, r: &mut EksRecreation, role: &crate::cloud::RoleRef) -> Result<()> {
        let cloud = self.cloud()?;
        let saved = self
            .store
            .get::<RecoveryPointAws>(&r.org_id, &r.recovery_point_id)
            .await?
            .eks
            .unwrap_or_default();
        for ng in &saved.nodegroups {
            cloud
                .connector
                .create_eks_nodegroup(role, &r.region, &r.name, ng)
                .await
                .map_err(|e| Error::permanent(format!("node group {}: {}", ng.name, Error::from(e))))?;
        }
        let system = Principal::system(r.org_id);
        let registered = self
            .register_cluster(
                &system,
                ClusterSpec {
                    name: r.name.clone(),
                    description: format!("re-created from recovery point {}", r.recovery_point_id),
                    aws: Some(crate::cloud::ebs::ClusterAwsLink {
                        cloud_account_id: r.cloud_account_id,
                        region: r.region.clone(),
                        eks_cluster_name: Some(r.name.clone()),
                    }),
                    ..ClusterSpec::default()
                },
            )
            .await?;
        let cluster_id = registered.cluster.id;
        let created = self
            .queue_restore(
                &system,
                RestoreSpec {
                    recovery_point_id: r.recovery_point_id,
                    target_cluster_id: cluster_id,
                    selection: Default::default(),
                    namespace_prefix: String::new(),
                    namespace_suffix: String::new(),
                    namespace_map: Default::default(),
                    storage_class_map: Default::default(),
                    existing_resource_policy: Default::default(),
                    restore_pvs: true,
                },
            )
            .await?;
        r.state = EksRecreationState::WaitingForAgent;
        r.cluster_id = Some(cluster_id);
        r.restore_id = Some(created.restore.id);
        r.next_step = Some(format!(
            "install the agent in the new cluster: `arca clusters install {cluster_id}` (POST /v1/clusters/{cluster_id}/install) prints the one kubectl command; restore {} runs when the agent connects",
            created.restore.id
        ));
        Ok(())
    }
}

/// How long a re-creation waits before it checks EKS again.
pub const EKS_RECHECK_DELAY: Duration = Duration::from_secs(60);
/// How long EKS may stay CREATING before the re-creation fails (it takes 10-15 minutes):
/// about 60 checks of [`EKS_RECHECK_DELAY`]. Measured from the start rather than counted
/// in checks, so a duplicated message cannot shorten it.
pub const EKS_CREATE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

fn timeout_message() -> String {
    format!(
        "EKS was still creating the cluster {} minutes after the re-creation started; look at the cluster in the EKS console",
        EKS_CREATE_TIMEOUT.as_secs() / 60
    )
}

fn fail(r: &mut EksRecreation, error: String) {
    r.state = EksRecreationState::Failed;
    r.error = Some(error);
    r.next_step = None;
}
