//! Restore requests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::Selection;
use crate::ids::{ClusterId, JobId, OrgId, RecoveryPointId, RestoreId};
use crate::{Error, Result, validate};

/// What happens when a restored resource already exists in the target cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicy {
    /// Leave the existing resource alone.
    #[default]
    Skip,
    /// Overwrite it with the backed-up one.
    Update,
    /// Fail the restore.
    Fail,
}

/// What a user sends to restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    pub recovery_point_id: RecoveryPointId,
    /// Must be ACTIVE; may differ from the source cluster (migration).
    pub target_cluster_id: ClusterId,
    /// Empty: everything the recovery point holds.
    #[serde(default)]
    pub selection: Selection,
    #[serde(default)]
    pub namespace_prefix: String,
    #[serde(default)]
    pub namespace_suffix: String,
    /// Source namespace -> target namespace; wins over prefix and suffix.
    #[serde(default)]
    pub namespace_map: BTreeMap<String, String>,
    /// Source storage class -> target storage class.
    #[serde(default)]
    pub storage_class_map: BTreeMap<String, String>,
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicy,
    #[serde(default = "yes")]
    pub restore_pvs: bool,
}

fn yes() -> bool {
    true
}

impl RestoreSpec {
    pub fn validated(self) -> Result<Self> {
        self.selection.validate("selection", true)?;
        for (field, affix) in [
            ("namespacePrefix", &self.namespace_prefix),
            ("namespaceSuffix", &self.namespace_suffix),
        ] {
            if affix.len() > 30
                || !affix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(Error::invalid(
                    field,
                    "lower-case letters, digits and '-', at most 30 characters",
                ));
            }
        }
        for (from, to) in &self.namespace_map {
            validate::dns_label(&format!("namespaceMap.{from}"), from)?;
            validate::dns_label(&format!("namespaceMap.{from}"), to)?;
        }
        for (from, to) in &self.storage_class_map {
            validate::dns_subdomain(&format!("storageClassMap.{from}"), from)?;
            validate::dns_subdomain(&format!("storageClassMap.{from}"), to)?;
        }
        Ok(self)
    }

    /// The name a source namespace gets in the target cluster.
    pub fn target_namespace(&self, source: &str) -> String {
        match self.namespace_map.get(source) {
            Some(mapped) => mapped.clone(),
            None => format!("{}{source}{}", self.namespace_prefix, self.namespace_suffix),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restore {
    pub id: RestoreId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: RestoreSpec,
    /// The cluster the recovery point came from.
    pub source_cluster_id: ClusterId,
    /// The K8S_RESTORE job created with the request.
    pub job_id: JobId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_mapped_or_decorated() {
        let spec: RestoreSpec = serde_json::from_value(serde_json::json!({
            "recoveryPointId": RecoveryPointId::new().to_string(),
            "targetClusterId": ClusterId::new().to_string(),
            "namespacePrefix": "r-",
            "namespaceMap": {"db": "db-copy"},
            "existingResourcePolicy": "update"
        }))
        .unwrap();
        let spec = spec.validated().unwrap();
        assert!(spec.restore_pvs, "PVs are restored unless asked otherwise");
        assert_eq!(spec.existing_resource_policy, ExistingResourcePolicy::Update);
        assert_eq!(spec.target_namespace("db"), "db-copy");
        assert_eq!(spec.target_namespace("shop"), "r-shop");
        let mut bad = spec.clone();
        bad.namespace_suffix = "_X".into();
        assert!(matches!(bad.validated(), Err(Error::Invalid { field, .. }) if field == "namespaceSuffix"));
    }
}
