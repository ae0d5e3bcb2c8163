//! EBS-backed claims. At backup, the EBS volumes behind the selected PVCs are reported so
//! the control plane can snapshot them through the cluster's linked AWS account (see
//! `arca_core::model::cloud::ebs`). At restore, [`EbsRestore`] rebuilds each such claim on
//! a new volume the control plane creates from its snapshot, bound to the claim as a
//! static PV of the EBS CSI driver. The agent never calls AWS itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use arca_core::ids::JobId;
use arca_core::model::cloud::ebs::{
    ClaimName, EBS_CSI_DRIVER, EbsSnapshotRef, EbsVolumeCreated, EbsVolumeRef, EbsVolumeRequest, ebs_volume_of,
};
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::protocol::AgentClient;
use crate::resources::archive::PvcRef;
use crate::resources::restore::ClaimSource;
use crate::volumes::restore::Target;
use crate::volumes::{already_exists, object_name};

/// Looks up each PVC's bound PV and keeps the EBS-backed ones (in-tree
/// `awsElasticBlockStore` or the `ebs.csi.aws.com` driver), in PVC order. A PV that
/// cannot be read is reported as a message, not an error: the resources are backed up.
pub async fn ebs_volumes(kube: &kube::Client, pvcs: &[PvcRef]) -> (Vec<EbsVolumeRef>, Vec<String>) {
    let pvs: Api<PersistentVolume> = Api::all(kube.clone());
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for pvc in pvcs {
        let Some(pv_name) = &pvc.volume_name else { continue };
        let pv = match pvs.get_opt(pv_name).await {
            Ok(Some(pv)) => pv,
            Ok(None) => {
                problems.push(format!("PV {pv_name} of PVC {}/{} is gone", pvc.namespace, pvc.name));
                continue;
            }
            Err(e) => {
                problems.push(format!("reading PV {pv_name}: {e}"));
                continue;
            }
        };
        let spec = pv.spec.and_then(|s| serde_json::to_value(s).ok()).unwrap_or_default();
        if let Some((volume_id, zone)) = ebs_volume_of(&spec) {
            // The zone of a CSI volume is in its node affinity; the label is the same either way.
            let zone = zone.or_else(|| zone_of(&spec));
            let fs_type = ["/csi/fsType", "/awsElasticBlockStore/fsType"]
                .iter()
                .find_map(|p| spec.pointer(p).and_then(|v| v.as_str()))
                .map(str::to_string);
            found.push(EbsVolumeRef {
                pv_name: pv_name.clone(),
                volume_id,
                availability_zone: zone,
                claim: Some(ClaimName {
                    namespace: pvc.namespace.clone(),
                    name: pvc.name.clone(),
                }),
                fs_type,
            });
        }
    }
    (found, problems)
}

/// The zone a PV is pinned to by its node affinity (`topology.ebs.csi.aws.com/zone` or
/// `topology.kubernetes.io/zone`).
fn zone_of(spec: &serde_json::Value) -> Option<String> {
    let terms = spec.pointer("/nodeAffinity/required/nodeSelectorTerms")?.as_array()?;
    terms
        .iter()
        .flat_map(|t| {
            t.get("matchExpressions")
                .and_then(|m| m.as_array())
                .into_iter()
                .flatten()
        })
        .find(|e| {
            matches!(
                e.get("key").and_then(|k| k.as_str()),
                Some("topology.ebs.csi.aws.com/zone" | "topology.kubernetes.io/zone")
            )
        })
        .and_then(|e| e.pointer("/values/0"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// The zone label of nodes and of EBS CSI topology.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The zone for a volume restored from a snapshot taken in `original`: that zone when the
/// cluster has nodes there (or no node says its zone), otherwise the zone with the most
/// nodes (the first by name of equals): a volume can only be attached in its own zone.
pub fn choose_zone(original: Option<&str>, node_zones: &[String]) -> Option<String> {
    if node_zones.is_empty() || original.is_some_and(|z| node_zones.iter().any(|n| n == z)) {
        return original.map(str::to_string);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for z in node_zones {
        *counts.entry(z.as_str()).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    counts.into_iter().find(|(_, n)| *n == most).map(|(z, _)| z.to_string())
}

/// A static PV of the EBS CSI driver for `volume`, pre-bound to the target claim, pinned
/// to the volume's zone. `Delete`: the volume was made for this claim, as a provisioned
/// one would be.
pub fn static_volume(
    name: &str,
    volume: &EbsVolumeCreated,
    target: &Target,
    capacity: &str,
    fs_type: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Value {
    let mut csi = json!({"driver": EBS_CSI_DRIVER, "volumeHandle": volume.volume_id});
    if target.volume_mode != "Block" {
        csi["fsType"] = json!(fs_type.unwrap_or("ext4"));
    }
    let mut spec = json!({
        "capacity": {"storage": capacity},
        "accessModes": target.access_modes,
        "volumeMode": target.volume_mode,
        "persistentVolumeReclaimPolicy": "Delete",
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "namespace": target.namespace, "name": target.name},
        "csi": csi,
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": ZONE_LABEL, "operator": "In", "values": [volume.availability_zone]}]}]}},
    });
    if let Some(class) = &target.storage_class {
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    })
}

/// The EBS part of one restore job: the claims whose volume has a snapshot this cluster
/// can create volumes from.
pub struct EbsRestore {
    kube: kube::Client,
    api: AgentClient,
    job: JobId,
    restore_id: String,
    by_claim: HashMap<(String, String), EbsSnapshotRef>,
    pvs: HashSet<String>,
    labels: BTreeMap<String, String>,
    node_zones: OnceCell<Vec<String>>,
}

impl EbsRestore {
    /// Snapshots without their claim (reported by an older agent) cannot be matched to a
    /// claim and are left out.
    pub fn new(
        kube: kube::Client,
        api: AgentClient,
        job: JobId,
        restore_id: &str,
        snapshots: &[EbsSnapshotRef],
        labels: BTreeMap<String, String>,
    ) -> Self {
        let by_claim: HashMap<_, _> = snapshots
            .iter()
            .filter_map(|s| {
                let c = s.claim.as_ref()?;
                Some(((c.namespace.clone(), c.name.clone()), s.clone()))
            })
            .collect();
        EbsRestore {
            kube,
            api,
            job,
            restore_id: restore_id.to_string(),
            pvs: by_claim.values().map(|s| s.pv_name.clone()).collect(),
            by_claim,
            labels,
            node_zones: OnceCell::new(),
        }
    }

    pub fn provides(&self, source_namespace: &str, name: &str) -> bool {
        self.by_claim
            .contains_key(&(source_namespace.to_string(), name.to_string()))
    }

    pub fn provides_pv(&self, pv: &str) -> bool {
        self.pvs.contains(pv)
    }

    async fn node_zones(&self) -> Result<&Vec<String>, String> {
        self.node_zones
            .get_or_try_init(|| async {
                let nodes: Api<Node> = Api::all(self.kube.clone());
                let list = nodes
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| format!("listing nodes for their zones: {e}"))?;
                Ok(list
                    .items
                    .iter()
                    .filter_map(|n| n.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned())
                    .collect())
            })
            .await
    }

    /// Creates the claim's volume from its snapshot (through the control plane) and its
    /// PV, pre-bound to the claim as it will be created. A redelivered job finds the PV
    /// its earlier delivery made. Returns the claim's source and a line for the job log.
    pub async fn prepare(&self, source_namespace: &str, claim: &Value) -> Result<(ClaimSource, String), String> {
        let (name, target_ns) = crate::resources::restore::claim_name_and_namespace(claim);
        let snapshot = self
            .by_claim
            .get(&(source_namespace.to_string(), name.to_string()))
            .ok_or("no EBS snapshot recorded")?;
        let target = Target::of(claim, target_ns);
        let capacity = claim
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .ok_or("the claim requests no storage size")?;
        let key = format!("{}/{source_namespace}/{name}/{target_ns}", self.restore_id);
        let pv_name = object_name("arca-ebs", name, &key);
        let pvs: Api<PersistentVolume> = Api::all(self.kube.clone());
        let existing = pvs
            .get_opt(&pv_name)
            .await
            .map_err(|e| format!("reading PersistentVolume {pv_name}: {e}"))?;
        if existing.is_some() {
            return Ok((
                ClaimSource::Volume(pv_name.clone()),
                format!("PVC {target_ns}/{name}: onto volume {pv_name} made by an earlier delivery of this job"),
            ));
        }
        let zone = choose_zone(snapshot.availability_zone.as_deref(), self.node_zones().await?).ok_or_else(|| {
            format!(
                "no zone to create the volume in: snapshot {} does not say where its volume was and no node has a {ZONE_LABEL} label",
                snapshot.snapshot_id
            )
        })?;
        let request = EbsVolumeRequest {
            snapshot_id: snapshot.snapshot_id.clone(),
            availability_zone: zone,
        };
        let created = self
            .api
            .ebs_volume(&self.job, &request)
            .await
            .map_err(|e| format!("creating an EBS volume from snapshot {}: {e}", snapshot.snapshot_id))?;
        let manifest = static_volume(
            &pv_name,
            &created,
            &target,
            capacity,
            snapshot.fs_type.as_deref(),
            &self.labels,
        );
        let pv: PersistentVolume = serde_json::from_value(manifest).map_err(|e| e.to_string())?;
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(_) => {}
            Err(e) if already_exists(&e) => {}
            Err(e) => {
                return Err(format!(
                    "creating PersistentVolume {pv_name} for EBS volume {}: {e}",
                    created.volume_id
                ));
            }
        }
        Ok((
            ClaimSource::Volume(pv_name.clone()),
            format!(
                "PVC {target_ns}/{name}: from EBS snapshot {} onto new volume {} in {} (PV {pv_name})",
                snapshot.snapshot_id, created.volume_id, created.availability_zone
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_go_where_the_nodes_are() {
        let zones = |z: &[&str]| z.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Nodes in the original zone, or no zone labels at all: the original zone.
        assert_eq!(
            choose_zone(Some("us-east-1b"), &zones(&["us-east-1a", "us-east-1b"])).as_deref(),
            Some("us-east-1b")
        );
        assert_eq!(choose_zone(Some("us-east-1b"), &[]).as_deref(), Some("us-east-1b"));
        // No node there: the zone with most nodes, the first by name of equals.
        assert_eq!(
            choose_zone(Some("us-east-1b"), &zones(&["us-east-1c", "us-east-1a", "us-east-1c"])).as_deref(),
            Some("us-east-1c")
        );
        assert_eq!(
            choose_zone(None, &zones(&["us-east-1c", "us-east-1a"])).as_deref(),
            Some("us-east-1a")
        );
        assert_eq!(choose_zone(None, &[]), None);
    }

    #[test]
    fn the_static_volume_is_pinned_bound_and_typed() {
        let target = Target {
            namespace: "shop-restored".into(),
            name: "data".into(),
            storage_class: Some("gp3".into()),
            access_modes: vec!["ReadWriteOnce".into()],
            volume_mode: "Filesystem".into(),
            size_bytes: 1 << 30,
        };
        let created = EbsVolumeCreated {
            volume_id: "vol-0123".into(),
            availability_zone: "us-east-1c".into(),
        };
        let pv = static_volume(
            "arca-ebs-data-1",
            &created,
            &target,
            "1Gi",
            Some("xfs"),
            &BTreeMap::new(),
        );
        assert_eq!(
            pv["spec"]["csi"],
            json!({"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0123", "fsType": "xfs"})
        );
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "shop-restored");
        assert_eq!(pv["spec"]["claimRef"]["name"], "data");
        assert_eq!(pv["spec"]["storageClassName"], "gp3");
        assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(
            pv.pointer("/spec/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions/0/values/0"),
            Some(&json!("us-east-1c"))
        );
        let block = Target {
            volume_mode: "Block".into(),
            storage_class: None,
            ..target
        };
        let pv = static_volume("b", &created, &block, "1Gi", Some("xfs"), &BTreeMap::new());
        assert!(pv["spec"]["csi"].get("fsType").is_none(), "{pv}");
        assert!(pv["spec"].get("storageClassName").is_none(), "{pv}");
    }
}
