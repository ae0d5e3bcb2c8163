//! EBS snapshots and EKS metadata of Kubernetes backups on AWS.
//!
//! A cluster linked to an AWS account ([`ClusterAwsLink`]) has its EBS-backed PVs
//! snapshotted by the control plane: the agent reports the volume ids it found behind
//! the selected PVCs ([`EbsVolumeRef`], in-tree `awsElasticBlockStore` or the EBS CSI
//! driver), the control plane calls EC2 `CreateSnapshot` through the linked account's
//! role, tags each snapshot with the recovery point and its expiry, and keeps what it
//! did with the point ([`RecoveryPointAws`]); retention deletes the snapshots with the
//! point. The EKS cluster's metadata (from the inventory) is saved the same way, so a
//! restore can re-create the cluster.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::account::is_region;
use super::inventory::EksCluster;
use crate::ids::{CloudAccountId, ClusterId, EksRecreationId, OrgId, RecoveryPointId, RestoreId};
use crate::{Error, Result, validate};

/// The CSI driver of EBS volumes.
pub const EBS_CSI_DRIVER: &str = "ebs.csi.aws.com";

/// Where a Kubernetes cluster lives on AWS: the linked account, its region and (for EKS)
/// the EKS cluster's name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAwsLink {
    pub cloud_account_id: CloudAccountId,
    pub region: String,
    #[serde(default)]
    pub eks_cluster_name: Option<String>,
}

impl ClusterAwsLink {
    pub fn validate(&self, field: &str) -> Result<()> {
        if !is_region(&self.region) {
            return Err(Error::invalid(
                format!("{field}.region"),
                format!("{:?} is not an AWS region name such as us-east-1", self.region),
            ));
        }
        if let Some(name) = &self.eks_cluster_name {
            validate::name(&format!("{field}.eksClusterName"), name)?;
        }
        Ok(())
    }
}

/// An EBS volume behind a backed-up PV, as the agent found it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsVolumeRef {
    pub pv_name: String,
    pub volume_id: String,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The claim bound to it (source namespace and name): what a restore rebuilds onto a
    /// volume made from the snapshot. Absent in reports of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimName>,
    /// The file system the PV declares (`csi.fsType`, `awsElasticBlockStore.fsType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

/// A PersistentVolumeClaim's namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimName {
    pub namespace: String,
    pub name: String,
}

/// The EBS volume id of a PV spec's volume source: in-tree `awsElasticBlockStore`
/// (`vol-…` or `aws://<zone>/vol-…`) or a CSI volume of the EBS driver. `None` for
/// anything else. The zone comes with the in-tree URL form.
pub fn ebs_volume_of(pv_spec: &serde_json::Value) -> Option<(String, Option<String>)> {
    let (raw, zone_hint) = if let Some(id) = pv_spec
        .pointer("/awsElasticBlockStore/volumeID")
        .and_then(|v| v.as_str())
    {
        (id, None)
    } else if pv_spec.pointer("/csi/driver").and_then(|v| v.as_str()) == Some(EBS_CSI_DRIVER) {
        (pv_spec.pointer("/csi/volumeHandle").and_then(|v| v.as_str())?, None)
    } else {
        return None;
    };
    let (zone, id) = match raw.strip_prefix("aws://") {
        Some(rest) => match rest.rsplit_once('/') {
            Some((zone, id)) => (Some(zone.to_string()).filter(|z| !z.is_empty()), id),
            None => (zone_hint, rest),
        },
        None => (zone_hint, raw),
    };
    is_volume_id(id).then(|| (id.to_string(), zone))
}

/// Whether `id` reads as an EBS volume id: `vol-` and up to 32 letters or digits (AWS's
/// are 8 or 17 hex digits; emulators' differ). The agent reads PVs by it, and the control
/// plane checks reported volumes by it.
pub fn is_volume_id(id: &str) -> bool {
    id.strip_prefix("vol-")
        .is_some_and(|rest| (1..=32).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// One EBS snapshot Arca took for a recovery point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsSnapshotRef {
    pub pv_name: String,
    pub volume_id: String,
    pub snapshot_id: String,
    /// The zone the volume was in: where a restore puts the new volume when the target
    /// cluster has nodes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

impl EbsSnapshotRef {
    pub fn of(volume: &EbsVolumeRef, snapshot_id: String) -> Self {
        EbsSnapshotRef {
            pv_name: volume.pv_name.clone(),
            volume_id: volume.volume_id.clone(),
            snapshot_id,
            availability_zone: volume.availability_zone.clone(),
            claim: volume.claim.clone(),
            fs_type: volume.fs_type.clone(),
        }
    }
}

/// What an agent asks of `POST /v1/agent/jobs/{id}/ebs-snapshots`: snapshots of these
/// volumes now, while its pre hooks hold the applications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsSnapshotsRequest {
    #[serde(default)]
    pub volumes: Vec<EbsVolumeRef>,
}

/// EC2 snapshots the control plane took while a backup job ran, between its pre and post
/// hooks, when its agent asked (`POST /v1/agent/jobs/{id}/ebs-snapshots`): for the point the
/// job will make (the job carries its id from then on, the snapshots' tags name it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsSnapshotsTaken {
    /// The account and region they were taken in: where a failed job's are deleted.
    pub cloud_account_id: crate::ids::CloudAccountId,
    pub region: String,
    /// The volumes asked for (their ids), snapshotted or not.
    pub volumes: Vec<String>,
    pub snapshots: Vec<EbsSnapshotRef>,
    /// What could not be snapshotted, for the point's AWS record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The same, as the job's lines: the job ends PARTIAL for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unprotected: Vec<String>,
}

/// What a restore job may build claims from: the point's EBS snapshots the target
/// cluster can create volumes from (linked to the same account and region), or why it
/// cannot. Sent with K8S_RESTORE jobs ([`crate::model::agent::AgentJob::ebs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsRestoreSources {
    #[serde(default)]
    pub snapshots: Vec<EbsSnapshotRef>,
    /// Why the point's snapshots cannot be used in this cluster (then `snapshots` is
    /// empty): the claims are restored from another source or empty, and the job says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
}

/// An agent's request for a new EBS volume from one of its restore job's snapshots
/// (`POST /v1/agent/jobs/{id}/ebs-volumes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EbsVolumeRequest {
    pub snapshot_id: String,
    /// The zone to create it in (a zone of the snapshot's region where the target
    /// cluster has nodes).
    pub availability_zone: String,
}

/// The volume the control plane created for an [`EbsVolumeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsVolumeCreated {
    pub volume_id: String,
    pub availability_zone: String,
}

/// Whether `zone` names an availability zone of `region` (`us-east-1a`, or a Local Zone
/// such as `us-west-2-lax-1a`).
pub fn is_zone_of(zone: &str, region: &str) -> bool {
    zone.strip_prefix(region).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 16
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && rest.bytes().last().is_some_and(|b| b.is_ascii_lowercase())
    })
}

/// The idempotency token of the volume a restore creates from a snapshot: a retried
/// request (a redelivered job, a lost response) gets the same volume from EC2, not a
/// second one. EC2 allows 64 ASCII characters.
pub fn restore_volume_token(restore: &RestoreId, snapshot_id: &str) -> String {
    let token = format!("arca-{restore}-{snapshot_id}");
    token.chars().take(64).collect()
}

/// Tags of a volume a restore creates: traceable to the restore, point and PV.
/// The tag naming the cluster a volume Arca restored belongs to.
pub const RESTORED_FOR_CLUSTER_TAG: &str = "arca:cluster";

pub fn restore_volume_tags(
    restore: &RestoreId,
    rp: &RecoveryPointId,
    snapshot: &EbsSnapshotRef,
    cluster: &crate::ids::ClusterId,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        // Whose volume it now is: that cluster's backups may snapshot it
        // (`EbsVolume::check_owner`).
        (RESTORED_FOR_CLUSTER_TAG.to_string(), cluster.to_string()),
        ("arca:restore".to_string(), restore.to_string()),
        ("arca:recovery-point".to_string(), rp.to_string()),
        ("arca:source-pv".to_string(), snapshot.pv_name.clone()),
        ("arca:snapshot".to_string(), snapshot.snapshot_id.clone()),
    ]);
    let name = match &snapshot.claim {
        Some(c) => format!("arca restore {} {}/{}", restore, c.namespace, c.name),
        None => format!("arca restore {} {}", restore, snapshot.pv_name),
    };
    tags.insert("Name".to_string(), name);
    tags
}

/// What Arca did on AWS for one recovery point (kept beside the point, `RPAWS#<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPointAws {
    pub recovery_point_id: RecoveryPointId,
    pub org_id: OrgId,
    pub cloud_account_id: CloudAccountId,
    pub region: String,
    #[serde(default)]
    pub ebs_snapshots: Vec<EbsSnapshotRef>,
    /// The EKS cluster as it was at backup time (from the inventory): what a re-creation
    /// builds.
    #[serde(default)]
    pub eks: Option<EksCluster>,
    /// What could not be done (a volume that could not be snapshotted, ...).
    #[serde(default)]
    pub errors: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EksRecreationState {
    /// CreateCluster was accepted; EKS is building the control plane (10-15 minutes).
    CreatingCluster,
    /// The cluster is ACTIVE, its node groups were created, a cluster is registered in
    /// Arca and the restore is queued for it: install the agent there.
    WaitingForAgent,
    Failed,
}

/// The re-creation of a backed-up EKS cluster (`POST /v1/recoverypoints/{id}/recreate-eks`).
/// Nothing waits inside a function: a message of the AWS work queue checks EKS once a
/// minute and moves it on (`ControlPlane::eks_recreation_step`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksRecreation {
    pub id: EksRecreationId,
    pub org_id: OrgId,
    pub recovery_point_id: RecoveryPointId,
    pub cloud_account_id: CloudAccountId,
    pub region: String,
    /// The new EKS cluster's name.
    pub name: String,
    pub state: EksRecreationState,
    /// The Arca cluster registered for it once it is ACTIVE.
    pub cluster_id: Option<ClusterId>,
    /// The restore queued for that cluster: it runs when the agent connects.
    pub restore_id: Option<RestoreId>,
    /// What the user does next (install the agent), once there is something to do.
    pub next_step: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// Where the new cluster's Kubernetes API is, read from EKS once it is ACTIVE: what
    /// `arca eks install-agent` builds a kubeconfig from. `None` before, or if EKS did
    /// not say (older records too).
    #[serde(default)]
    pub access: Option<EksAccess>,
}

impl EksRecreation {
    /// A re-creation whose EKS cluster `name` was just asked for: CREATING_CLUSTER,
    /// nothing registered or restored yet.
    pub fn creating_cluster(
        id: EksRecreationId,
        org_id: OrgId,
        recovery_point_id: RecoveryPointId,
        cloud_account_id: CloudAccountId,
        region: String,
        name: String,
        now: DateTime<Utc>,
    ) -> Self {
        EksRecreation {
            id,
            org_id,
            recovery_point_id,
            cloud_account_id,
            region,
            name,
            state: EksRecreationState::CreatingCluster,
            cluster_id: None,
            restore_id: None,
            next_step: None,
            error: None,
            created_at: now,
            updated_at: now,
            version: 0,
            access: None,
        }
    }
}

/// How to reach an EKS cluster's Kubernetes API, as DescribeCluster gives it: a
/// kubeconfig's `server` and `certificate-authority-data`. No credential: clients
/// authenticate with their own AWS identity (`aws eks get-token`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EksAccess {
    /// The API server's URL (`https://<id>.<zone>.<region>.eks.amazonaws.com`).
    pub endpoint: String,
    /// The cluster's certificate authority: base64 of its PEM, as EKS returns it.
    pub certificate_authority_data: String,
}

/// Tags of a snapshot Arca takes: recognisable, traceable to its recovery point, and
/// telling anyone looking in the EC2 console when Arca will delete it.
pub fn snapshot_tags(
    rp: &RecoveryPointId,
    expires_at: Option<DateTime<Utc>>,
    volume: &EbsVolumeRef,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        ("arca:recovery-point".to_string(), rp.to_string()),
        ("arca:pv".to_string(), volume.pv_name.clone()),
        ("Name".to_string(), format!("arca {} {}", rp, volume.pv_name)),
    ]);
    if let Some(at) = expires_at {
        tags.insert("arca:expires-at".to_string(), at.to_rfc3339());
    }
    tags
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn volume_ids_come_from_in_tree_and_csi_sources() {
        assert_eq!(
            ebs_volume_of(&json!({"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-0abc123"}})),
            Some(("vol-0abc123".into(), Some("us-east-1a".into())))
        );
        assert_eq!(
            ebs_volume_of(&json!({"awsElasticBlockStore": {"volumeID": "vol-0abc123"}})),
            Some(("vol-0abc123".into(), None))
        );
        assert_eq!(
            ebs_volume_of(&json!({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0def456"}})),
            Some(("vol-0def456".into(), None))
        );
        for other in [
            json!({"csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": "vol-0def456"}}),
            json!({"hostPath": {"path": "/data"}}),
            json!({"awsElasticBlockStore": {"volumeID": "snap-1"}}),
            json!({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-"}}),
        ] {
            assert_eq!(ebs_volume_of(&other), None, "{other}");
        }
    }

    #[test]
    fn links_are_validated_with_their_paths() {
        let link = ClusterAwsLink {
            cloud_account_id: CloudAccountId::new(),
            region: "moon-1".into(),
            eks_cluster_name: None,
        };
        assert!(link.validate("aws").unwrap_err().to_string().contains("aws.region"));
    }

    #[test]
    fn snapshot_tags_name_point_pv_and_expiry() {
        let rp = RecoveryPointId::new();
        let at = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let tags = snapshot_tags(
            &rp,
            Some(at),
            &EbsVolumeRef {
                pv_name: "pv-data".into(),
                volume_id: "vol-1".into(),
                ..Default::default()
            },
        );
        assert_eq!(tags["arca:recovery-point"], rp.to_string());
        assert_eq!(tags["arca:pv"], "pv-data");
        assert_eq!(tags["arca:expires-at"], at.to_rfc3339());
    }

    #[test]
    fn zones_belong_to_their_region() {
        assert!(is_zone_of("us-east-1a", "us-east-1"));
        assert!(is_zone_of("us-west-2-lax-1a", "us-west-2"));
        for (zone, region) in [
            ("us-east-1", "us-east-1"),
            ("us-east-2a", "us-east-1"),
            ("us-east-1A", "us-east-1"),
            ("us-east-1a/../x", "us-east-1"),
            ("", "us-east-1"),
        ] {
            assert!(!is_zone_of(zone, region), "{zone} of {region}");
        }
    }

    #[test]
    fn a_restores_volume_is_one_per_snapshot_and_traceable() {
        let (a, b) = (RestoreId::new(), RestoreId::new());
        let snap = "snap-0123456789abcdef0";
        let token = restore_volume_token(&a, snap);
        assert!(token.len() <= 64 && token.is_ascii(), "{token}");
        assert_eq!(token, restore_volume_token(&a, snap));
        assert_ne!(token, restore_volume_token(&b, snap));
        assert_ne!(token, restore_volume_token(&a, "snap-0123456789abcdef1"));
        let rp = RecoveryPointId::new();
        let s = EbsSnapshotRef {
            pv_name: "pv-data".into(),
            snapshot_id: snap.into(),
            claim: Some(ClaimName {
                namespace: "shop".into(),
                name: "data".into(),
            }),
            ..Default::default()
        };
        let cluster = crate::ids::ClusterId::new();
        let tags = restore_volume_tags(&a, &rp, &s, &cluster);
        assert_eq!(tags[RESTORED_FOR_CLUSTER_TAG], cluster.to_string());
        assert_eq!(tags["arca:restore"], a.to_string());
        assert_eq!(tags["arca:recovery-point"], rp.to_string());
        assert_eq!(tags["arca:snapshot"], snap);
        assert_eq!(tags["Name"], format!("arca restore {a} shop/data"));
    }
}
