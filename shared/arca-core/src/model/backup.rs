//! Kubernetes backup definitions: what to back up, how, when and where.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, OrgId, PolicyId};
use crate::model::destination::EffectiveDestination;
use crate::model::hooks::BackupHook;
use crate::{Error, Result, validate};

/// What part of the cluster a backup (or a restore) takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// Every namespace, and cluster-scoped resources. Excludes `namespaces`.
    #[serde(default)]
    pub full_cluster: bool,
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Label selector terms, ANDed (`app=web` and `tier=db`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Only these resource kinds (`deployments`, `certificates.cert-manager.io`).
    #[serde(default)]
    pub include_kinds: Vec<String>,
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
}

impl Selection {
    /// Validates under the JSON path `field`; `allow_empty` is for restores, where no
    /// namespace means "whatever the recovery point holds".
    pub fn validate(&self, field: &str, allow_empty: bool) -> Result<()> {
        if self.full_cluster && !self.namespaces.is_empty() {
            return Err(Error::invalid(
                format!("{field}.namespaces"),
                "give either fullCluster or namespaces, not both",
            ));
        }
        if !self.full_cluster && self.namespaces.is_empty() && !allow_empty {
            return Err(Error::invalid(
                format!("{field}.namespaces"),
                "select fullCluster or at least one namespace",
            ));
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            validate::dns_label(&format!("{field}.namespaces[{i}]"), ns)?;
        }
        validate::labels(&format!("{field}.labels"), &self.labels)?;
        for (i, kind) in self.include_kinds.iter().enumerate() {
            validate::resource_kind(&format!("{field}.includeKinds[{i}]"), kind)?;
        }
        for (i, kind) in self.exclude_kinds.iter().enumerate() {
            validate::resource_kind(&format!("{field}.excludeKinds[{i}]"), kind)?;
            if self.include_kinds.contains(kind) {
                return Err(Error::invalid(
                    format!("{field}.excludeKinds[{i}]"),
                    format!("{kind:?} is also included"),
                ));
            }
        }
        Ok(())
    }
}

/// What happens to persistent volumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PvMode {
    /// Resources only.
    None,
    /// CSI snapshots, left in the cluster's storage.
    #[default]
    Snapshot,
    /// Snapshots, then their data copied to the destination.
    SnapshotAndCopy,
}

/// What a user sends to create or replace a backup definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupDefinitionSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Fixed at creation: a definition protects one cluster for life.
    pub cluster_id: ClusterId,
    pub selection: Selection,
    #[serde(default)]
    pub pv_mode: PvMode,
    /// With `snapshotAndCopy`: remove the snapshot once its copy is done.
    #[serde(default)]
    pub delete_snapshot_after_copy: bool,
    /// `None`: runs on demand only.
    #[serde(default)]
    pub policy_id: Option<PolicyId>,
    /// Overrides the cluster's and the org's default destination.
    #[serde(default)]
    pub destination_id: Option<DestinationId>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Commands run in selected Pods around the volume snapshots (besides the hooks
    /// Pods ask for by annotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<BackupHook>,
    /// Restore verification of its points: after each backup, or weekly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::model::verification::VerificationSpec>,
}

impl BackupDefinitionSpec {
    /// The checks that need nothing but the spec; references and plan rules are checked
    /// by the service, which can read what they point at.
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        validate::description("description", &self.description)?;
        self.selection.validate("selection", false)?;
        validate::tags("tags", &self.tags)?;
        crate::model::hooks::validate_hooks("hooks", &self.hooks)?;
        if let Some(v) = &self.verification {
            v.validate("verification")?;
        }
        for (i, hook) in self.hooks.iter().enumerate() {
            // A hook quiesces what the backup takes: its namespaces are the backup's.
            if let Some((j, ns)) = hook
                .namespaces
                .iter()
                .enumerate()
                .find(|(_, ns)| !self.selection.full_cluster && !self.selection.namespaces.contains(ns))
            {
                return Err(Error::invalid(
                    format!("hooks[{i}].namespaces[{j}]"),
                    format!("{ns:?} is not a namespace this backup selects"),
                ));
            }
        }
        if !self.hooks.is_empty() && self.pv_mode == PvMode::None {
            return Err(Error::invalid(
                "hooks",
                "hooks run around volume snapshots: they need pvMode snapshot or snapshotAndCopy",
            ));
        }
        if self.delete_snapshot_after_copy && self.pv_mode != PvMode::SnapshotAndCopy {
            return Err(Error::invalid(
                "deleteSnapshotAfterCopy",
                "only applies with pvMode snapshotAndCopy",
            ));
        }
        Ok(self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupDefinition {
    pub id: BackupDefinitionId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: BackupDefinitionSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// A definition as the API shows it: with the destination it resolves to now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupDefinitionView {
    #[serde(flatten)]
    pub definition: BackupDefinition,
    pub effective_destination: Option<EffectiveDestination>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BackupDefinitionSpec {
        serde_json::from_value(serde_json::json!({
            "name": " nightly ",
            "clusterId": ClusterId::new().to_string(),
            "selection": {"namespaces": ["shop", "db"], "labels": {"app": "web"}},
            "pvMode": "snapshotAndCopy",
            "deleteSnapshotAfterCopy": true
        }))
        .unwrap()
    }

    #[test]
    fn specs_parse_as_the_api_spells_them_and_normalise() {
        let s = spec().validated().unwrap();
        assert_eq!(s.name, "nightly");
        assert_eq!(s.pv_mode, PvMode::SnapshotAndCopy);
        assert_eq!(serde_json::to_value(PvMode::None).unwrap(), "none");
        assert!(s.policy_id.is_none(), "no policy means on demand");
    }

    #[test]
    fn selections_are_either_full_or_some_namespaces() {
        let mut s = spec();
        s.selection.full_cluster = true;
        assert!(matches!(s.clone().validated(), Err(Error::Invalid { field, .. }) if field == "selection.namespaces"));
        s.selection.namespaces.clear();
        assert!(s.clone().validated().is_ok());
        s.selection.full_cluster = false;
        assert!(s.clone().validated().is_err());
        s.selection.namespaces = vec!["Bad_NS".into()];
        assert!(matches!(s.validated(), Err(Error::Invalid { field, .. }) if field == "selection.namespaces[0]"));
    }

    #[test]
    fn hooks_need_snapshots_and_stay_in_the_backups_namespaces() {
        let mut s = spec();
        s.hooks = vec![
            serde_json::from_value(serde_json::json!({"name": "flush", "namespaces": ["db"], "pre": ["sync"]}))
                .unwrap(),
        ];
        assert!(s.clone().validated().is_ok());
        s.hooks[0].namespaces = vec!["elsewhere".into()];
        assert!(
            matches!(s.clone().validated(), Err(Error::Invalid { field, .. }) if field == "hooks[0].namespaces[0]")
        );
        s.selection.namespaces.clear();
        s.selection.full_cluster = true;
        assert!(
            s.clone().validated().is_ok(),
            "a full cluster backup selects every namespace"
        );
        s.pv_mode = PvMode::None;
        s.delete_snapshot_after_copy = false;
        assert!(matches!(s.validated(), Err(Error::Invalid { field, .. }) if field == "hooks"));
    }

    #[test]
    fn delete_after_copy_needs_a_copy() {
        let mut s = spec();
        s.pv_mode = PvMode::Snapshot;
        assert!(matches!(s.validated(), Err(Error::Invalid { field, .. }) if field == "deleteSnapshotAfterCopy"));
    }
}
