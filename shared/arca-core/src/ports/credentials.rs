//! The credential-vending port: what an agent gets to reach a job's destination.
//!
//! - ARCA_MANAGED (AWS): short-lived STS credentials whose session policy allows only
//!   this cluster's prefix in the managed bucket: `arca_aws::StsCredentialVendor`
//!   (`AssumeRole` with an inline session policy). [`ConfigVendor`] refuses these.
//! - S3 (the user's bucket) and LOCAL_FILESYSTEM: the destination's configuration; the
//!   agent uses its own identity or the referenced secret in its cluster.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, OrgId};
use crate::model::destination::{Destination, DestinationTarget};
use crate::model::layout::cluster_prefix;
use crate::{Error, Result};

/// Temporary AWS credentials. Never logged: `Debug` hides the secret parts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// What the agent needs to write to (or read from) a destination for one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationAccess {
    pub destination_id: crate::ids::DestinationId,
    pub target: DestinationTarget,
    /// Where this cluster's data goes inside the destination: `<prefix>/<org>/<cluster>/`
    /// ([`crate::model::layout`]).
    pub cluster_prefix: String,
    /// Present for Arca-managed storage only.
    #[serde(default)]
    pub credentials: Option<TemporaryCredentials>,
    /// The key of this job's repositories ([`crate::model::archive_key`]): the cluster's
    /// current key for backups, the point's for restores and deletions. Absent when the
    /// deployment has no master key (agents then hold a key of their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_key: Option<crate::model::archive_key::ArchiveKeyHex>,
    /// Which key [`Self::archive_key`] is: the repositories' folders carry it
    /// ([`crate::model::layout::resources_folder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<crate::model::archive_key::KeyId>,
    /// Maintenance only: the cluster's other keys, one per repository pair it may have
    /// left under earlier generations or master keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_keys: Vec<KeyedArchiveKey>,
    /// The destination is immutable (S3 Object Lock): how this job writes and deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockWrite>,
    /// The destination's customer-held key: the keys without an [`Self::archive_key`]
    /// (this job's, and each of [`Self::earlier_keys`] without one) are kept in the
    /// destination wrapped by it, and the agent unwraps them through KMS
    /// ([`crate::model::layout::customer_key_file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_key: Option<crate::model::destination::CustomerKey>,
}

/// How a job treats an immutable destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockWrite {
    pub mode: crate::model::destination::LockMode,
    /// Backups: the date every object they write, or reuse, is retained until (their
    /// point's lock). Other jobs write nothing that must outlive them: `None`, and their
    /// writes (gc's index files and markers) are not retained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl DestinationAccess {
    /// This access once per key it carries: its own, then each of [`Self::earlier_keys`]
    /// (what a maintenance run collects, one repository pair per key).
    pub fn each_key(&self) -> Vec<DestinationAccess> {
        let mut all = vec![DestinationAccess {
            earlier_keys: Vec::new(),
            ..self.clone()
        }];
        all.extend(self.earlier_keys.iter().map(|k| DestinationAccess {
            archive_key: k.archive_key.clone(),
            key_id: Some(k.key_id.clone()),
            earlier_keys: Vec::new(),
            ..self.clone()
        }));
        all
    }
}

/// A key and its id, as [`DestinationAccess::earlier_keys`] lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyedArchiveKey {
    pub key_id: crate::model::archive_key::KeyId,
    /// `None`: a key the destination's customer key wraps, which only the agent unwraps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_key: Option<crate::model::archive_key::ArchiveKeyHex>,
}

/// What one job may do in its destination, and under which cluster's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Backups and deletions: read, write and delete under this cluster's prefix.
    ReadWrite(ClusterId),
    /// Restores: read only, under the prefix of the cluster the recovery point was taken in
    /// (possibly another cluster than the one restoring). A point's archive and volume
    /// repository are deduplicated across that cluster's points, so that prefix is the
    /// smallest one holding a point's data; nothing is writable.
    ReadOnly(ClusterId),
}

impl Grant {
    /// The cluster whose prefix the grant covers.
    pub fn cluster(&self) -> &ClusterId {
        match self {
            Grant::ReadWrite(c) | Grant::ReadOnly(c) => c,
        }
    }

    pub fn writes(&self) -> bool {
        matches!(self, Grant::ReadWrite(_))
    }
}

#[async_trait]
pub trait CredentialVendor: Send + Sync {
    /// Access to `destination` for one job of `org`, as `grant` allows.
    async fn access(&self, org: &OrgId, grant: Grant, destination: &Destination) -> Result<DestinationAccess>;
}

/// Hands out configuration for user storage and local directories; refuses managed
/// storage (a deployment with it wires the STS vendor).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigVendor;

#[async_trait]
impl CredentialVendor for ConfigVendor {
    async fn access(&self, org: &OrgId, grant: Grant, destination: &Destination) -> Result<DestinationAccess> {
        let base = match &destination.spec.target {
            DestinationTarget::S3 { prefix, .. } => prefix.as_str(),
            DestinationTarget::LocalFilesystem { .. } => "",
            DestinationTarget::ArcaManaged { .. } => {
                // The caller's request, not a fault of the service: this deployment cannot
                // serve the destination it names (a 409, not a 500).
                return Err(Error::conflict_of(
                    crate::error::ConflictKind::ManagedStorageUnavailable,
                    "this deployment has no Arca-managed storage (ARCA_MANAGED_*), so nothing can reach this \
                     destination here",
                ));
            }
        };
        Ok(DestinationAccess {
            destination_id: destination.id,
            target: destination.spec.target.clone(),
            cluster_prefix: cluster_prefix(base, org, grant.cluster()),
            credentials: None,
            // Added by the control plane, which holds the master key.
            archive_key: None,
            key_id: None,
            earlier_keys: Vec::new(),
            // Added by the control plane, which knows the job's point.
            object_lock: None,
            // Added by the control plane with the job's key.
            customer_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = TemporaryCredentials {
            access_key_id: "ASIA1".into(),
            secret_access_key: "very-secret".into(),
            session_token: "tok-secret".into(),
            expiration: chrono::DateTime::UNIX_EPOCH,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }
}
