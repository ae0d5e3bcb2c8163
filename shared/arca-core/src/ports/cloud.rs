//! The port the domain reaches linked AWS accounts through.

use crate::Error;
use crate::model::cloud::inventory::{AwsResource, EbsVolume, EksCluster, EksNodegroup};
use async_trait::async_trait;
use std::collections::BTreeMap;

pub use crate::model::cloud::account::RoleRef;

/// Why a call into a linked account failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudFailure {
    /// The role does not work (deleted, trust policy changed, wrong ExternalId, access
    /// denied): the account becomes `DISCONNECTED` with this AWS error.
    #[error("{0}")]
    RoleRejected(String),
    /// Anything else (throttling, network, a service error in one region): the account's
    /// state is left alone.
    #[error(transparent)]
    Other(#[from] Error),
}

impl From<CloudFailure> for Error {
    fn from(f: CloudFailure) -> Self {
        match f {
            CloudFailure::RoleRejected(message) => Error::Forbidden { message },
            CloudFailure::Other(e) => e,
        }
    }
}

/// An EBS volume to create from a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEbsVolume {
    pub snapshot_id: String,
    pub availability_zone: String,
    /// `gp3`, `io2`, ...; EC2's default when `None`.
    pub volume_type: Option<String>,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub tags: BTreeMap<String, String>,
    pub client_token: String,
}

/// Linked accounts, through their cross-account roles. Implementations cache each role's
/// credentials and refresh them before they expire.
#[async_trait]
pub trait CloudConnector: Send + Sync {
    /// Assumes the role with its ExternalId; the account the credentials belong to.
    async fn verify(&self, role: &RoleRef) -> Result<String, CloudFailure>;

    /// Every RDS instance and cluster, their snapshots, EKS clusters with node groups and
    /// EBS volumes of one region.
    async fn discover(&self, role: &RoleRef, region: &str) -> Result<Vec<AwsResource>, CloudFailure>;

    /// What the SecurityAudit describe/list/get calls say about one region, for the
    /// security scan; with `global`, also S3 buckets and IAM (read once per account).
    /// A service that cannot be read (its permission set off, not offered in the region)
    /// is an `Err` inside the facts; only a rejected role fails the call.
    async fn security_facts(
        &self,
        role: &RoleRef,
        region: &str,
        global: bool,
    ) -> Result<crate::model::cloud::security::SecurityFacts, CloudFailure>;

    /// The EBS volumes among `volume_ids` that exist in the region, as EC2 describes them
    /// now (the inventory may be hours old); absent ones are left out.
    async fn describe_volumes(
        &self,
        role: &RoleRef,
        region: &str,
        volume_ids: &[String],
    ) -> Result<Vec<EbsVolume>, CloudFailure>;

    /// Starts an EBS snapshot of `volume_id` with `tags`; its id (EC2 completes it later).
    async fn snapshot_volume(
        &self,
        role: &RoleRef,
        region: &str,
        volume_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudFailure>;

    /// Starts creating an EBS volume from a snapshot in `zone` (same type as the original
    /// when known), tagged; its id (EC2 makes it available shortly after). The same
    /// `client_token` returns the same volume, so a retried request creates no second one.
    async fn create_volume_from_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        volume: &NewEbsVolume,
    ) -> Result<String, CloudFailure>;

    /// Deletes an EBS snapshot; one already gone is not an error.
    async fn delete_volume_snapshot(&self, role: &RoleRef, region: &str, snapshot_id: &str)
    -> Result<(), CloudFailure>;

    /// Starts creating an EKS cluster named `name` like `like` (version, role, subnets,
    /// security groups, endpoint access, logging, tags).
    async fn create_eks_cluster(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
        like: &EksCluster,
    ) -> Result<(), CloudFailure>;

    /// The EKS cluster's status (`CREATING`, `ACTIVE`, `FAILED`, ...), `None` if absent.
    async fn eks_cluster_status(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
    ) -> Result<Option<String>, CloudFailure>;

    /// Creates a node group like `like` in the (ACTIVE) cluster `cluster`.
    async fn create_eks_nodegroup(
        &self,
        role: &RoleRef,
        region: &str,
        cluster: &str,
        like: &EksNodegroup,
    ) -> Result<(), CloudFailure>;

    /// Where the EKS cluster's Kubernetes API is (DescribeCluster's endpoint and
    /// certificate authority); `None` if the cluster is absent or EKS gives no endpoint yet.
    async fn eks_cluster_access(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
    ) -> Result<Option<crate::model::cloud::ebs::EksAccess>, CloudFailure>;
}
