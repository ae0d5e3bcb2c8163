//! Kubernetes clusters registered with Arca.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, ClusterId, DestinationId, OrgId};
use crate::model::secret::SecretHash;
use crate::{Error, Result, validate};

/// Where a cluster's agent is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterState {
    /// Registered; no agent has connected yet.
    Registered,
    /// The agent is connected: its last heartbeat is recent.
    Active,
    /// The agent connected once and has since gone quiet.
    Pending,
}

/// What a user sends to register or edit a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Arca's own metadata, not Kubernetes labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub default_destination_id: Option<DestinationId>,
    /// Where the cluster lives on AWS (EKS): then its EBS-backed PVs are snapshotted
    /// through that account's role and its EKS metadata is kept with every backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<crate::model::cloud::ebs::ClusterAwsLink>,
}

impl ClusterSpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        validate::description("description", &self.description)?;
        validate::tags("tags", &self.tags)?;
        if let Some(aws) = &self.aws {
            aws.validate("aws")?;
        }
        Ok(self)
    }
}

/// What the agent reports about the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub namespaces: Vec<String>,
    pub storage_classes: Vec<StorageClassInfo>,
    pub csi_drivers: Vec<String>,
    pub volume_snapshot_classes: Vec<VolumeSnapshotClassInfo>,
    pub pvcs: Vec<PvcInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageClassInfo {
    pub name: String,
    pub provisioner: String,
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotClassInfo {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcInfo {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

/// What Arca can do on the cluster, as the agent found it (product FAQ: resource backup
/// from Kubernetes 1.13; CSI snapshots from 1.17 with `snapshot.storage.k8s.io/v1` served).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub resource_backup: bool,
    pub csi_snapshots: bool,
}

/// One heartbeat of the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub kubernetes_version: Option<String>,
    pub agent_version: Option<String>,
    pub node_count: Option<u32>,
    /// Present when the agent sends a fresh inventory; `None` keeps the previous one.
    #[serde(default)]
    pub inventory: Option<Inventory>,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub id: ClusterId,
    pub org_id: OrgId,
    #[serde(flatten)]
    pub spec: ClusterSpec,
    /// As stored; readers should use [`Cluster::state_at`], which ages `ACTIVE` out.
    pub state: ClusterState,
    pub kubernetes_version: Option<String>,
    pub agent_version: Option<String>,
    pub node_count: Option<u32>,
    pub inventory: Inventory,
    /// `None` until the agent reported them.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// The backup definitions that protect this cluster, kept in the same transaction
    /// as the definitions, so "cluster in use" cannot be raced.
    pub backup_definition_ids: BTreeSet<BackupDefinitionId>,
    /// The generation of the cluster's archive key (`model::archive_key`): raised by a
    /// rotation, after which its backups go to new repositories under the new key.
    #[serde(default = "first_key_generation")]
    pub archive_key_generation: u32,
    /// When the archive key was last rotated.
    #[serde(default)]
    pub archive_key_rotated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// Kept only in the GSI1 entry (`AGENT#<hash>`), never in the body or the API.
    #[serde(skip)]
    pub agent_token_hash: Option<SecretHash>,
}

fn first_key_generation() -> u32 {
    1
}

/// The most backup definitions one cluster holds: their ids live in the cluster's item, and
/// each is a schedule set and a job queue's share.
pub const MAX_DEFINITIONS: usize = 500;

impl Cluster {
    /// Records a new definition of this cluster; one past [`MAX_DEFINITIONS`] is refused.
    pub fn attach_definition(&mut self, id: BackupDefinitionId) -> Result<()> {
        if !self.backup_definition_ids.contains(&id) && self.backup_definition_ids.len() >= MAX_DEFINITIONS {
            return Err(Error::invalid(
                "clusterId",
                format!(
                    "cluster {:?} already has {MAX_DEFINITIONS} backup definitions, the most one cluster may: \
                     select more namespaces in fewer definitions",
                    self.spec.name
                ),
            ));
        }
        self.backup_definition_ids.insert(id);
        Ok(())
    }

    /// A newly registered cluster (REGISTERED: no agent heard from yet) whose agent
    /// token hashes to `agent_token_hash`, at key generation 1.
    pub fn registered(
        id: ClusterId,
        org_id: OrgId,
        spec: ClusterSpec,
        agent_token_hash: Option<SecretHash>,
        now: DateTime<Utc>,
    ) -> Self {
        Cluster {
            id,
            org_id,
            spec,
            state: ClusterState::Registered,
            kubernetes_version: None,
            agent_version: None,
            node_count: None,
            inventory: Inventory::default(),
            capabilities: None,
            last_heartbeat_at: None,
            backup_definition_ids: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            version: 0,
            agent_token_hash,
            archive_key_generation: 1,
            archive_key_rotated_at: None,
        }
    }

    /// The state as of `now`: an `ACTIVE` cluster whose agent has not been heard from
    /// for `heartbeat_timeout` is `PENDING` (connection lost), even before anything
    /// writes that down.
    pub fn state_at(&self, now: DateTime<Utc>, heartbeat_timeout: Duration) -> ClusterState {
        match (self.state, self.last_heartbeat_at) {
            (ClusterState::Active, Some(last)) => {
                let quiet = now.signed_duration_since(last).to_std().unwrap_or_default();
                if quiet > heartbeat_timeout {
                    ClusterState::Pending
                } else {
                    ClusterState::Active
                }
            }
            (ClusterState::Active, None) => ClusterState::Pending,
            (state, _) => state,
        }
    }

    /// Applies a heartbeat: the agent is connected, so the cluster is `ACTIVE`.
    pub fn apply_heartbeat(&mut self, heartbeat: Heartbeat, now: DateTime<Utc>) {
        self.state = ClusterState::Active;
        self.last_heartbeat_at = Some(now);
        if heartbeat.kubernetes_version.is_some() {
            self.kubernetes_version = heartbeat.kubernetes_version;
        }
        if heartbeat.agent_version.is_some() {
            self.agent_version = heartbeat.agent_version;
        }
        if heartbeat.node_count.is_some() {
            self.node_count = heartbeat.node_count;
        }
        if let Some(inventory) = heartbeat.inventory {
            self.inventory = inventory;
        }
        if heartbeat.capabilities.is_some() {
            self.capabilities = heartbeat.capabilities;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let spec = ClusterSpec {
            name: "prod".into(),
            ..Default::default()
        };
        Cluster {
            version: 1,
            ..Cluster::registered(ClusterId::new(), OrgId::new(), spec, None, DateTime::UNIX_EPOCH)
        }
    }

    #[test]
    fn a_cluster_holds_at_most_max_definitions() {
        let mut c = cluster();
        for _ in 0..MAX_DEFINITIONS {
            c.attach_definition(BackupDefinitionId::new()).unwrap();
        }
        let known = *c.backup_definition_ids.iter().next().unwrap();
        c.attach_definition(known).unwrap();
        let err = c.attach_definition(BackupDefinitionId::new()).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "clusterId"),
            "{err:?}"
        );
        assert!(err.to_string().contains("500 backup definitions"), "{err}");
        assert_eq!(c.backup_definition_ids.len(), MAX_DEFINITIONS);
    }

    #[test]
    fn registered_then_active_then_pending_when_quiet() {
        let timeout = Duration::from_secs(300);
        let t0 = DateTime::UNIX_EPOCH + chrono::Duration::days(10_000);
        let mut c = cluster();
        assert_eq!(c.state_at(t0, timeout), ClusterState::Registered);
        c.apply_heartbeat(
            Heartbeat {
                node_count: Some(3),
                ..Default::default()
            },
            t0,
        );
        assert_eq!(
            c.state_at(t0 + chrono::Duration::seconds(299), timeout),
            ClusterState::Active
        );
        assert_eq!(
            c.state_at(t0 + chrono::Duration::seconds(301), timeout),
            ClusterState::Pending
        );
        assert_eq!(c.node_count, Some(3));
        c.apply_heartbeat(Heartbeat::default(), t0 + chrono::Duration::seconds(400));
        assert_eq!(c.node_count, Some(3), "a heartbeat without a count keeps the last one");
        assert_eq!(
            c.state_at(t0 + chrono::Duration::seconds(500), timeout),
            ClusterState::Active
        );
    }

    #[test]
    fn the_agent_token_hash_never_reaches_json() {
        let mut c = cluster();
        c.agent_token_hash = Some(crate::model::secret::Secret::from_presented("arcagent_x").hash());
        let json = serde_json::to_value(&c).unwrap();
        assert!(!json.to_string().contains(c.agent_token_hash.as_ref().unwrap().as_str()));
        assert_eq!(json["state"], "REGISTERED");
        assert_eq!(json["name"], "prod");
    }
}
