//! Restore requests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, JobId, OrgId, RecoveryPointId, RestoreId};
use crate::model::backup::Selection;
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
    /// Commands run in the restored workloads' Pods once they are Ready (besides those
    /// their Pod templates ask for by annotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::model::hooks::RestoreHook>,
}

fn yes() -> bool {
    true
}

impl RestoreSpec {
    /// Everything `recovery_point_id` holds, PVs included, into `target_cluster_id` under
    /// the same names, leaving what already exists there alone.
    pub fn everything(recovery_point_id: RecoveryPointId, target_cluster_id: ClusterId) -> Self {
        RestoreSpec {
            recovery_point_id,
            target_cluster_id,
            selection: Selection::default(),
            namespace_prefix: String::new(),
            namespace_suffix: String::new(),
            namespace_map: BTreeMap::new(),
            storage_class_map: BTreeMap::new(),
            existing_resource_policy: ExistingResourcePolicy::default(),
            restore_pvs: true,
            hooks: Vec::new(),
        }
    }

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
        crate::model::hooks::validate_restore_hooks("hooks", &self.hooks)?;
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
    /// Set on a verification's restore: into scratch namespaces, checked, then removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::model::verification::RestoreVerification>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// At most this many objects per results batch (one stored item each: with the bounds
/// of [`RestoreObjectResult::bounded`], ~120 KB at worst, far below DynamoDB's 400 KB).
pub const MAX_OBJECTS_PER_BATCH: usize = 100;
/// Batch sequence numbers run from 0 to below this (10 million objects).
pub const MAX_RESULT_BATCHES: u32 = 100_000;
const MAX_OBJECT_REASON_CHARS: usize = 500;
const MAX_OBJECT_NAME_CHARS: usize = 320;

/// How one object of a restore ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectOutcome {
    Created,
    Updated,
    Skipped,
    Failed,
}

/// One object of a restore, named as in the target cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObjectResult {
    /// `plural.group`.
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub outcome: ObjectOutcome,
    /// Why it was skipped, or the error it failed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn truncated(text: &str, max: usize) -> String {
    super::cut_to_bytes(text.to_string(), max)
}

impl RestoreObjectResult {
    /// With every string within its stored bound.
    pub fn bounded(self) -> Self {
        RestoreObjectResult {
            resource: truncated(&self.resource, MAX_OBJECT_NAME_CHARS),
            namespace: self.namespace.map(|n| truncated(&n, MAX_OBJECT_NAME_CHARS)),
            name: truncated(&self.name, MAX_OBJECT_NAME_CHARS),
            outcome: self.outcome,
            reason: self.reason.map(|r| truncated(&r, MAX_OBJECT_REASON_CHARS)),
        }
    }
}

/// Identifies one stored batch of a restore's object results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObjectsPageId {
    pub restore_id: RestoreId,
    pub seq: u32,
}

impl std::fmt::Display for RestoreObjectsPageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.restore_id, self.seq)
    }
}

/// One batch of a restore's per-object results, as stored (SK
/// `RSTOBJ#<restoreId>#<seq>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObjectsPage {
    pub id: RestoreObjectsPageId,
    pub org_id: OrgId,
    pub objects: Vec<RestoreObjectResult>,
    pub version: u64,
}

/// A position in a restore's object results: the opaque `cursor` of
/// `GET /v1/restores/{id}/objects` (`<seq>.<index>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCursor {
    pub seq: u32,
    pub index: usize,
}

impl ObjectCursor {
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = || Error::invalid("cursor", "not a cursor of this listing");
        let (seq, index) = text.split_once('.').ok_or_else(invalid)?;
        let seq: u32 = seq.parse().map_err(|_| invalid())?;
        let index: usize = index.parse().map_err(|_| invalid())?;
        if seq >= MAX_RESULT_BATCHES || index >= MAX_OBJECTS_PER_BATCH {
            return Err(invalid());
        }
        Ok(ObjectCursor { seq, index })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.seq, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_cursors_round_trip_and_reject_garbage() {
        let c = ObjectCursor { seq: 12, index: 34 };
        assert_eq!(ObjectCursor::parse(&c.encode()).unwrap(), c);
        for bad in ["", "1", "a.b", "1.-1", "100000.0", "0.100"] {
            assert!(ObjectCursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_results_are_bounded() {
        let r = RestoreObjectResult {
            resource: "configmaps".into(),
            namespace: Some("ns".into()),
            name: "n".repeat(1_000),
            outcome: ObjectOutcome::Failed,
            reason: Some("é".repeat(5_000)),
        }
        .bounded();
        assert!(r.name.chars().count() <= MAX_OBJECT_NAME_CHARS + 1);
        assert!(r.reason.unwrap().chars().count() <= MAX_OBJECT_REASON_CHARS + 1);
        assert_eq!(serde_json::to_value(ObjectOutcome::Skipped).unwrap(), "skipped");
    }

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
