//! Kubernetes resource backup and restore.
//!
//! - [`backup`] discovers every served, listable resource type (preferred version of each
//!   group), lists them page by page with bounded concurrency, applies the selection
//!   ([`Selection`], rules in `docs/resource-selection.md`) and the skip rules
//!   ([`kinds`]), and streams each kept object into a [`archive::ResourceArchive`].
//! - [`restore`] reads an archive back, cleans and maps each object ([`clean`]), and
//!   creates it in the target cluster in the order of a priority table ([`kinds::DEFAULT_RESTORE_ORDER`]).
//!
//! Nothing here holds the whole cluster in memory: objects go to the archive as pages
//! arrive; what is kept is the index (a few names per object) and the small sets of names
//! that decide which cluster-scoped objects are associated with the selected namespaces.

pub mod archive;
pub mod backup;
pub mod clean;
pub mod kinds;
pub mod restore;
pub mod selection;

use serde::{Deserialize, Serialize};

pub use archive::{ArchiveReader, ArchiveWriter, ObjectStoreArchive, ResourceArchive};
pub use backup::{BackupOptions, BackupReport, backup};
pub use restore::{RestoreOptions, RestoreReport, restore};
pub use selection::Selection;

/// Errors of resource backup and restore. Per-object failures of a restore are not
/// errors: they are outcomes in the [`RestoreReport`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("archive storage: {0}")]
    Store(#[from] arca_core::Error),
    #[error("archive format: {0}")]
    Format(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A restore refused before touching the target cluster (missing CSI driver,
    /// existing objects under policy `fail`, ...).
    #[error("restore precheck failed: {0}")]
    Precheck(String),
    #[error("invalid option: {0}")]
    Invalid(String),
    /// Another process's maintenance got in the way (a gc holds the lock, or collected a
    /// pack this backup relied on): nothing was lost, run it again.
    #[error("{0}")]
    Concurrent(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One served resource type, at the version it is stored under in an archive.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceType {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

/// A `v1` type for unit tests: `test_type("apps", "deployments", "Deployment", true)`.
#[cfg(test)]
pub(crate) fn test_type(group: &str, plural: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
    }
}

impl ResourceType {
    /// `plural.group` (`deployments.apps`), or the plural alone for the core group: the
    /// name kubectl, Velero and our priority table use.
    pub fn group_resource(&self) -> String {
        group_resource(&self.group, &self.plural)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn api_resource(&self) -> kube::discovery::ApiResource {
        kube::discovery::ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
}

pub fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// An object that was left out, and why: reported by backup and restore alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// `plural.group`; for a whole type, `name` is empty.
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub reason: String,
}
