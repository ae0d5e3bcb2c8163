//! The port the domain reaches linked AWS accounts through.

use async_trait::async_trait;

use super::inventory::AwsResource;
use crate::Error;

/// A role to assume and the ExternalId its trust policy requires. `Debug` leaves the
/// ExternalId out: it is not a secret to AWS, but it is what stops a confused deputy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleRef {
    pub role_arn: String,
    pub external_id: String,
}

impl std::fmt::Debug for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleRef")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

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

/// Linked accounts, through their cross-account roles. Implementations cache each role's
/// credentials and refresh them before they expire.
#[async_trait]
pub trait CloudConnector: Send + Sync {
    /// Assumes the role with its ExternalId; the account the credentials belong to.
    async fn verify(&self, role: &RoleRef) -> Result<String, CloudFailure>;

    /// Every RDS instance and cluster, their snapshots, EKS clusters with node groups and
    /// EBS volumes of one region.
    async fn discover(&self, role: &RoleRef, region: &str) -> Result<Vec<AwsResource>, CloudFailure>;
}
