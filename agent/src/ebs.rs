//! The EBS volumes behind the PVCs a backup selected: reported with the backup so the
//! control plane can snapshot them through the cluster's linked AWS account (see
//! `arca_core::model::cloud::ebs`). The agent never calls AWS itself.

use arca_core::model::cloud::ebs::{EbsVolumeRef, ebs_volume_of};
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;

use crate::resources::archive::PvcRef;

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
            found.push(EbsVolumeRef {
                pv_name: pv_name.clone(),
                volume_id,
                availability_zone: zone,
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
