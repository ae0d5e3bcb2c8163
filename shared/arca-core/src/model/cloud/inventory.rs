//! What Arca found in a linked account, one item per account and region.
//!
//! Each run is merged into the previous one ([`AwsInventory::merge`]): a resource seen
//! again is updated, a new one is added with `firstSeenAt`, and one no longer there is
//! kept with `vanishedAt` (the user sees that a database disappeared instead of it
//! silently dropping out of the list). Vanished entries are dropped after
//! [`VANISHED_KEPT_DAYS`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CloudAccountId, ClusterId, OrgId};

/// How long a vanished resource stays listed.
pub const VANISHED_KEPT_DAYS: i64 = 30;

/// An RDS DB instance (Aurora members name their cluster).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsInstance {
    pub identifier: String,
    pub arn: String,
    pub engine: String,
    pub engine_version: Option<String>,
    pub instance_class: Option<String>,
    pub status: Option<String>,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub multi_az: bool,
    pub cluster_identifier: Option<String>,
    pub subnet_group: Option<String>,
    pub security_group_ids: Vec<String>,
    pub parameter_groups: Vec<String>,
    pub option_groups: Vec<String>,
    pub backup_retention_days: Option<i32>,
    pub earliest_restorable_time: Option<DateTime<Utc>>,
    pub latest_restorable_time: Option<DateTime<Utc>>,
    pub tags: BTreeMap<String, String>,
}

/// An Aurora (or Multi-AZ) DB cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsCluster {
    pub identifier: String,
    pub arn: String,
    pub engine: String,
    pub engine_version: Option<String>,
    pub status: Option<String>,
    pub storage_encrypted: bool,
    pub kms_key_id: Option<String>,
    pub members: Vec<String>,
    pub subnet_group: Option<String>,
    pub security_group_ids: Vec<String>,
    pub parameter_group: Option<String>,
    pub backup_retention_days: Option<i32>,
    pub earliest_restorable_time: Option<DateTime<Utc>>,
    pub latest_restorable_time: Option<DateTime<Utc>>,
    pub tags: BTreeMap<String, String>,
}

/// A DB snapshot or DB cluster snapshot, automated or manual.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsSnapshot {
    pub identifier: String,
    pub arn: String,
    /// The instance or cluster it was taken of.
    pub source_identifier: String,
    /// True for a cluster snapshot (Aurora).
    pub cluster: bool,
    /// `automated`, `manual`, `shared`, ...
    pub snapshot_type: Option<String>,
    pub status: Option<String>,
    pub engine: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// An EKS cluster with everything needed to re-create it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksCluster {
    pub name: String,
    pub arn: String,
    pub version: Option<String>,
    pub status: Option<String>,
    pub role_arn: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub public_access_cidrs: Vec<String>,
    pub service_ipv4_cidr: Option<String>,
    pub enabled_log_types: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub nodegroups: Vec<EksNodegroup>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksNodegroup {
    pub name: String,
    pub node_role: Option<String>,
    pub subnets: Vec<String>,
    pub instance_types: Vec<String>,
    pub ami_type: Option<String>,
    pub capacity_type: Option<String>,
    pub disk_size: Option<i32>,
    pub min_size: Option<i32>,
    pub max_size: Option<i32>,
    pub desired_size: Option<i32>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<EksTaint>,
    pub launch_template: Option<EksLaunchTemplate>,
    pub release_version: Option<String>,
    pub version: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksTaint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksLaunchTemplate {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsVolume {
    pub volume_id: String,
    pub size_gib: Option<i32>,
    pub volume_type: Option<String>,
    /// Provisioned IOPS and throughput (MiB/s) where the type has them: what a volume
    /// restored from its snapshot is created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i32>,
    pub availability_zone: Option<String>,
    pub state: Option<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub attached_instance_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl EbsVolume {
    /// Whether the volume's tags show it is the volume of PV `pv_name` in cluster `cluster`
    /// (EKS cluster `eks_cluster` when the link names one): an agent's report alone must
    /// not make Arca snapshot another cluster's volume in the same account. A volume
    /// Arca restored for this cluster is its; one tagged for clusters must be tagged for
    /// this one; an untagged one must carry the PV name the provisioners tag it with.
    /// `Err`: why not, and what tag would do.
    pub fn check_owner(&self, cluster: &ClusterId, pv_name: &str, eks_cluster: Option<&str>) -> Result<(), String> {
        let restored_for = self.tags.get(super::ebs::RESTORED_FOR_CLUSTER_TAG);
        if restored_for.is_some_and(|c| *c == cluster.to_string()) {
            return Ok(());
        }
        const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";
        let clusters: Vec<&str> = self
            .tags
            .iter()
            .filter_map(|(k, v)| match k.strip_prefix(CLUSTER_TAG_PREFIX) {
                Some(name) if v == "owned" || v == "shared" => Some(name),
                Some(_) => None,
                None if k == "KubernetesCluster" || k == "eks:cluster-name" => Some(v.as_str()),
                None => None,
            })
            .collect();
        let pv_tag = self.tags.get("kubernetes.io/created-for/pv/name").map(String::as_str);
        match eks_cluster {
            Some(eks) if clusters.contains(&eks) => Ok(()),
            Some(eks) if !clusters.is_empty() => Err(format!(
                "tagged for cluster(s) {}, not for EKS cluster {eks}",
                clusters.join(", ")
            )),
            _ if pv_tag == Some(pv_name) => Ok(()),
            Some(eks) => Err(format!(
                "its tags name neither EKS cluster {eks} nor PV {pv_name}: tag it {CLUSTER_TAG_PREFIX}{eks}=owned"
            )),
            None => Err(format!(
                "its tags do not name PV {pv_name} (kubernetes.io/created-for/pv/name) and the cluster's AWS link names \
                 no EKS cluster to check against"
            )),
        }
    }
}

/// One discovered resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AwsResource {
    RdsInstance(RdsInstance),
    RdsCluster(RdsCluster),
    RdsSnapshot(RdsSnapshot),
    EksCluster(EksCluster),
    EbsVolume(EbsVolume),
}

impl AwsResource {
    /// What identifies the resource across runs: its kind and its id (a snapshot's
    /// identifier is unique per kind of snapshot, not across instance and cluster ones).
    pub fn key(&self) -> (&'static str, String) {
        match self {
            AwsResource::RdsInstance(r) => ("RDS_INSTANCE", r.identifier.clone()),
            AwsResource::RdsCluster(r) => ("RDS_CLUSTER", r.identifier.clone()),
            AwsResource::RdsSnapshot(s) if s.cluster => ("RDS_CLUSTER_SNAPSHOT", s.identifier.clone()),
            AwsResource::RdsSnapshot(s) => ("RDS_SNAPSHOT", s.identifier.clone()),
            AwsResource::EksCluster(c) => ("EKS_CLUSTER", c.name.clone()),
            AwsResource::EbsVolume(v) => ("EBS_VOLUME", v.volume_id.clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    #[serde(flatten)]
    pub resource: AwsResource,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Set by the first run that no longer found it.
    #[serde(default)]
    pub vanished_at: Option<DateTime<Utc>>,
}

/// Identifies the inventory of one linked account in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsInventoryId {
    pub cloud_account_id: CloudAccountId,
    pub region: String,
}

impl std::fmt::Display for AwsInventoryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.cloud_account_id, self.region)
    }
}

/// Identifies one stored part of an inventory's entries: parts are written with the
/// inventory's version, so a new run's parts never overwrite the ones being read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsInventoryPartId {
    #[serde(flatten)]
    pub inventory: AwsInventoryId,
    /// The version of the inventory these entries belong to.
    pub of_version: u64,
    pub part: u32,
}

impl std::fmt::Display for AwsInventoryPartId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (version {}, part {})",
            self.inventory, self.of_version, self.part
        )
    }
}

/// Some of an inventory's entries, as stored: an account region with thousands of
/// resources does not fit in one DynamoDB item (400 KB), so its entries are kept in parts
/// beside it (`Store::save_inventory`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsInventoryPart {
    pub id: AwsInventoryPartId,
    pub org_id: OrgId,
    pub entries: Vec<InventoryEntry>,
    pub version: u64,
}

/// The inventory of one linked account in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsInventory {
    #[serde(flatten)]
    pub id: AwsInventoryId,
    pub org_id: OrgId,
    pub taken_at: DateTime<Utc>,
    pub entries: Vec<InventoryEntry>,
    pub version: u64,
}

impl AwsInventory {
    pub fn empty(org_id: OrgId, cloud_account_id: CloudAccountId, region: &str) -> Self {
        AwsInventory {
            id: AwsInventoryId {
                cloud_account_id,
                region: region.to_string(),
            },
            org_id,
            taken_at: DateTime::UNIX_EPOCH,
            entries: Vec::new(),
            version: 0,
        }
    }

    /// Folds one run's findings in (see the module docs). Entries come out sorted by
    /// kind and id, so a listing is stable.
    pub fn merge(&mut self, found: Vec<AwsResource>, now: DateTime<Utc>) {
        let mut previous: BTreeMap<(&'static str, String), InventoryEntry> =
            self.entries.drain(..).map(|e| (e.resource.key(), e)).collect();
        let mut merged: BTreeMap<(&'static str, String), InventoryEntry> = BTreeMap::new();
        for resource in found {
            let key = resource.key();
            let first_seen_at = match previous.remove(&key) {
                // Back after vanishing: a new life, seen from now.
                Some(old) if old.vanished_at.is_none() => old.first_seen_at,
                _ => now,
            };
            merged.insert(
                key,
                InventoryEntry {
                    resource,
                    first_seen_at,
                    last_seen_at: now,
                    vanished_at: None,
                },
            );
        }
        let keep_after = now - chrono::Duration::days(VANISHED_KEPT_DAYS);
        for (key, mut old) in previous {
            let vanished_at = *old.vanished_at.get_or_insert(now);
            if vanished_at > keep_after {
                merged.insert(key, old);
            }
        }
        self.entries = merged.into_values().collect();
        self.taken_at = now;
    }

    /// Entries still there, of one kind (`RDS_INSTANCE`, ...).
    pub fn present(&self) -> impl Iterator<Item = &InventoryEntry> {
        self.entries.iter().filter(|e| e.vanished_at.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_snapshotted_only_for_the_cluster_its_tags_name() {
        let volume = |tags: &[(&str, &str)]| EbsVolume {
            volume_id: "vol-0abc".into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        let csi = [
            ("kubernetes.io/created-for/pv/name", "pvc-1"),
            ("ebs.csi.aws.com/cluster", "true"),
        ];
        let (ours, other) = (ClusterId::new(), ClusterId::new());
        let restored = volume(&[("arca:cluster", &ours.to_string())]);
        assert!(
            restored.check_owner(&ours, "arca-ebs-x", Some("prod")).is_ok(),
            "restored here by Arca"
        );
        assert!(restored.check_owner(&other, "arca-ebs-x", Some("prod")).is_err());
        assert!(
            volume(&[("kubernetes.io/cluster/prod", "owned")])
                .check_owner(&ours, "pvc-1", Some("prod"))
                .is_ok()
        );
        assert!(
            volume(&[("eks:cluster-name", "prod")])
                .check_owner(&ours, "x", Some("prod"))
                .is_ok()
        );
        assert!(
            volume(&[("KubernetesCluster", "prod")])
                .check_owner(&ours, "x", Some("prod"))
                .is_ok()
        );
        assert!(
            volume(&csi).check_owner(&ours, "pvc-1", Some("prod")).is_ok(),
            "CSI without a cluster id"
        );
        assert!(volume(&csi).check_owner(&ours, "pvc-1", None).is_ok());

        let theirs = volume(&[("kubernetes.io/cluster/staging", "owned"), csi[0]]);
        let err = theirs.check_owner(&ours, "pvc-1", Some("prod")).unwrap_err();
        assert!(err.contains("staging") && err.contains("prod"), "{err}");
        assert!(
            volume(&csi).check_owner(&ours, "pvc-2", Some("prod")).is_err(),
            "another PV's volume"
        );
        assert!(volume(&csi).check_owner(&ours, "pvc-2", None).is_err());
        let err = volume(&[]).check_owner(&ours, "pvc-1", Some("prod")).unwrap_err();
        assert!(err.contains("kubernetes.io/cluster/prod=owned"), "{err}");
        assert!(
            volume(&[("kubernetes.io/cluster/prod", "elsewhere")])
                .check_owner(&ours, "x", Some("prod"))
                .is_err(),
            "only owned or shared count"
        );
    }

    fn db(id: &str, status: &str) -> AwsResource {
        AwsResource::RdsInstance(RdsInstance {
            identifier: id.into(),
            engine: "postgres".into(),
            status: Some(status.into()),
            ..Default::default()
        })
    }

    #[test]
    fn vanished_resources_are_marked_then_dropped() {
        let t0 = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let mut inv = AwsInventory::empty(OrgId::new(), CloudAccountId::new(), "us-east-1");
        inv.merge(vec![db("a", "available"), db("b", "available")], t0);
        assert_eq!(inv.present().count(), 2);

        let t1 = t0 + chrono::Duration::hours(12);
        inv.merge(vec![db("a", "backing-up")], t1);
        let a = &inv.entries[0];
        assert_eq!((a.first_seen_at, a.last_seen_at, a.vanished_at), (t0, t1, None));
        assert!(matches!(&a.resource, AwsResource::RdsInstance(r) if r.status.as_deref() == Some("backing-up")));
        let b = &inv.entries[1];
        assert_eq!(
            (b.last_seen_at, b.vanished_at),
            (t0, Some(t1)),
            "b vanished at t1, kept"
        );

        let t2 = t1 + chrono::Duration::hours(12);
        inv.merge(vec![db("a", "available")], t2);
        assert_eq!(
            inv.entries[1].vanished_at,
            Some(t1),
            "the first run that missed it says when"
        );

        let t3 = t1 + chrono::Duration::days(VANISHED_KEPT_DAYS + 1);
        inv.merge(vec![db("a", "available"), db("c", "creating")], t3);
        let ids: Vec<_> = inv.entries.iter().map(|e| e.resource.key().1).collect();
        assert_eq!(ids, ["a", "c"], "b dropped after the keep period");
        assert_eq!(inv.taken_at, t3);
    }

    #[test]
    fn a_resource_that_returns_starts_a_new_life() {
        let t0 = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let mut inv = AwsInventory::empty(OrgId::new(), CloudAccountId::new(), "us-east-1");
        inv.merge(vec![db("a", "available")], t0);
        inv.merge(vec![], t0 + chrono::Duration::hours(1));
        let t2 = t0 + chrono::Duration::hours(2);
        inv.merge(vec![db("a", "available")], t2);
        assert_eq!((inv.entries[0].first_seen_at, inv.entries[0].vanished_at), (t2, None));
    }

    #[test]
    fn instance_and_cluster_snapshots_do_not_collide() {
        let snap = |cluster| {
            AwsResource::RdsSnapshot(RdsSnapshot {
                identifier: "s1".into(),
                cluster,
                ..Default::default()
            })
        };
        assert_ne!(snap(true).key(), snap(false).key());
        let json = serde_json::to_value(snap(true)).unwrap();
        assert_eq!(json["kind"], "RDS_SNAPSHOT");
        assert_eq!(json["cluster"], true);
    }
}
