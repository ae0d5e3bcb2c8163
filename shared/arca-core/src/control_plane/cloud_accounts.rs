//! Linked AWS accounts and their inventory: the part of [`ControlPlane`] that works
//! through the [`CloudConnector`] port.

use crate::control_plane::{CONCURRENCY_RETRIES, ControlPlane};
use crate::ids::{CloudAccountId, OrgId};
use crate::model::auth::{Operation, Principal};
use crate::model::cloud::account::{
    AccountLinkNotification, CloudAccount, CloudAccountSpec, CloudAccountState, CloudAccountView, ROLE_STACK_VERSION,
    RoleStackConfig,
};
use crate::model::cloud::account::{LinkEvent, new_external_id, role_account_id};
use crate::model::cloud::inventory::{AwsInventory, AwsInventoryId};
use crate::ports::cloud::{CloudConnector, CloudFailure};
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result};
use serde::Serialize;
use std::sync::Arc;

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
    /// The security scan that ran with the inventory (absent when the run stopped early).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::model::cloud::security::SecurityScan>,
    /// Why the security scan failed (the inventory itself is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_error: Option<String>,
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
pub(super) struct CloudWiring {
    pub(super) connector: Arc<dyn CloudConnector>,
    pub(super) role_stack: RoleStackConfig,
}

impl ControlPlane {
    /// Wires linked AWS accounts: the connector that assumes their roles and where the
    /// role stack is published. Without it, linking accounts is refused.
    pub fn with_cloud(mut self, connector: Arc<dyn CloudConnector>, role_stack: RoleStackConfig) -> Self {
        self.cloud = Some(CloudWiring { connector, role_stack });
        self
    }

    pub(in crate::control_plane) fn cloud(&self) -> Result<&CloudWiring> {
        self.cloud.as_ref().ok_or_else(|| Error::Forbidden {
            message: "this deployment cannot reach AWS accounts (no cloud connector is configured)".into(),
        })
    }

    pub(in crate::control_plane) fn cloud_view(&self, account: CloudAccount) -> CloudAccountView {
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
        p.require(Operation::LinkCloudAccount)?;
        self.cloud()?;
        let spec = spec.validated()?;
        let now = self.now();
        let account = CloudAccount::pending(p.org_id, spec, new_external_id()?, now);
        let account = self.store.create(account).await?;
        Ok(self.cloud_view(account))
    }

    pub async fn get_cloud_account(&self, p: &Principal, id: &CloudAccountId) -> Result<CloudAccountView> {
        p.require(Operation::GetCloudAccount)?;
        Ok(self.cloud_view(self.store.get::<CloudAccount>(&p.org_id, id).await?))
    }

    pub async fn list_cloud_accounts(&self, p: &Principal, page: &PageRequest) -> Result<Listing<CloudAccountView>> {
        p.require(Operation::ListCloudAccounts)?;
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
        p.require(Operation::UpdateCloudAccount)?;
        let spec = spec.validated()?;
        let mut account = self.store.get::<CloudAccount>(&p.org_id, id).await?;
        account.spec = spec;
        account.updated_at = self.now();
        Ok(self.cloud_view(self.store.update(account, expected_version).await?))
    }

    /// Forgets an account and its inventory. The role stack stays in the user's account
    /// (deleting it is theirs to do; `cfn/README.md`).
    pub async fn delete_cloud_account(&self, p: &Principal, id: &CloudAccountId, expected_version: u64) -> Result<()> {
        p.require(Operation::DeleteCloudAccount)?;
        self.store
            .delete::<CloudAccount>(&p.org_id, id, expected_version)
            .await?;
        // Inventories after the account, one by one: any number of regions fits, and one
        // left behind by an interruption is invisible (read only through its account).
        for inv in self.store.aws_inventories(&p.org_id, id).await? {
            match self.store.delete_inventory(&p.org_id, &inv).await {
                // Gone or rewritten meanwhile: what is left is read only through the
                // account, which is gone.
                Ok(()) | Err(Error::NotFound { .. } | Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.forget_findings(&p.org_id, id).await
    }

    /// The user pasted the role ARN (instead of the stack's notification): verify it.
    pub async fn set_cloud_account_role(
        &self,
        p: &Principal,
        id: &CloudAccountId,
        role_arn: &str,
        expected_version: u64,
    ) -> Result<CloudAccountView> {
        p.require(Operation::SetCloudAccountRole)?;
        let cloud = self.cloud()?;
        let owner = role_account_id(role_arn)?;
        let mut account = self
            .store
            .get_at::<CloudAccount>(&p.org_id, id, expected_version)
            .await?;
        account.role_arn = Some(role_arn.to_string());
        account.aws_account_id = Some(owner);
        let outcome = verification(cloud, &account).await?;
        account.record_verification(outcome, self.now());
        Ok(self.cloud_view(self.store.update(account, expected_version).await?))
    }

    /// Tries the account's role again now (the user fixed the trust policy, say).
    pub async fn verify_cloud_account(&self, p: &Principal, id: &CloudAccountId) -> Result<CloudAccountView> {
        p.require(Operation::VerifyCloudAccount)?;
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
        p.require(Operation::InventoryCloudAccount)?;
        self.run_inventory(&p.org_id, id).await
    }

    /// What the last inventory runs found, one entry per region (or just `region`).
    pub async fn get_cloud_inventory(
        &self,
        p: &Principal,
        id: &CloudAccountId,
        region: Option<&str>,
    ) -> Result<Vec<AwsInventory>> {
        p.require(Operation::GetCloudInventory)?;
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
        // The security scan rides every inventory run that got through the role.
        let (scan, scan_error) = if rejected.is_none() {
            match self.scan_account(&account, &role).await {
                Ok(scan) => (Some(scan), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
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
        self.alert_account_findings(&account, rejected.as_deref()).await;
        Ok(InventoryReport {
            cloud_account_id: *id,
            state: account.state,
            regions,
            error: rejected,
            scan,
            scan_error,
        })
    }

    pub(in crate::control_plane) async fn store_region_inventory(
        &self,
        org: &OrgId,
        id: &CloudAccountId,
        region: &str,
        found: Vec<crate::model::cloud::AwsResource>,
    ) -> Result<RegionReport> {
        let key = AwsInventoryId {
            cloud_account_id: *id,
            region: region.to_string(),
        };
        let previous = self.store.find_inventory(org, &key).await?;
        let mut inventory = previous
            .clone()
            .unwrap_or_else(|| AwsInventory::empty(*org, *id, region));
        let now = self.now();
        inventory.merge(found, now);
        let present = inventory.present().count();
        let vanished = inventory.entries.iter().filter(|e| e.vanished_at == Some(now)).count();
        let error = match self.store.save_inventory(inventory, previous.as_ref()).await {
            Ok(()) => None,
            // Too large to keep: this region says so and keeps its last inventory.
            Err(Error::LimitExceeded { message, .. }) => Some(message),
            Err(e) => return Err(e),
        };
        Ok(RegionReport {
            region: region.to_string(),
            present,
            vanished,
            error,
        })
    }

    /// Read, change, write the account at the version read; again when a concurrent
    /// writer (a user edit, another run) got there first.
    pub(in crate::control_plane) async fn mutate_account(
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
pub(super) fn check_eks_name(name: &str) -> Result<()> {
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
