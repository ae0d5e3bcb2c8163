//! Linked AWS accounts: the cross-account role Arca works through, what Arca found in
//! each account (inventory), and the port the domain reaches AWS by.
//!
//! - [`account`]: a linked account, its ExternalId, its state and the quick-create link.
//! - [`inventory`]: RDS, EKS and EBS resources per account and region, merged run by run
//!   so a resource that vanished is marked, not silently dropped.
//! - [`ebs`]: EBS snapshots of EKS clusters' PVs and the EKS metadata kept with a backup.
//! - [`security`]: security scanning: the facts a scan reads, the rules over them as
//!   data, and findings kept across scans.
//! - [`connector`]: the [`CloudConnector`] port (AssumeRole with the ExternalId, discovery);
//!   `arca_aws::AwsCloudConnector` is the AWS adapter, `testing::FakeCloud` the fake.

pub mod account;
pub mod ebs;
pub mod inventory;
pub mod security;

pub use account::RoleRef;
pub use account::{
    AccountLinkNotification, CloudAccount, CloudAccountSpec, CloudAccountState, CloudAccountView, PermissionSets,
    ROLE_STACK_VERSION, RoleStackConfig,
};
pub use inventory::{AwsInventory, AwsResource, InventoryEntry};
