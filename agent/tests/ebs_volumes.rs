//! The EBS volumes behind selected PVCs, looked up on the real kube-apiserver: in-tree
//! `awsElasticBlockStore` (with its zone in the URL), the EBS CSI driver (zone from the
//! node affinity), and a non-EBS PV that is left out.

use arca_agent::ebs::ebs_volumes;
use arca_agent::resources::archive::PvcRef;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn ebs_backed_pvs_are_found_behind_their_claims() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let pvs: Api<PersistentVolume> = Api::all(cluster.client.clone());
    let tag = arca_testenv::unique("ebs");
    let names = [format!("{tag}-intree"), format!("{tag}-csi"), format!("{tag}-host")];
    let sources = [
        json!({"awsElasticBlockStore": {"volumeID": "aws://us-east-1b/vol-0aaa111", "fsType": "ext4"}}),
        json!({"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0bbb222"},
               "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                   {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1c"]}]}]}}}),
        json!({"hostPath": {"path": "/data"}}),
    ];
    for (name, source) in names.iter().zip(&sources) {
        let mut spec = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
        for (k, v) in source.as_object().expect("object") {
            spec[k] = v.clone();
        }
        let pv: PersistentVolume = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}),
        )
        .expect("pv");
        pvs.create(&PostParams::default(), &pv).await.expect("create pv");
    }
    let claim = |pv: Option<&str>| PvcRef {
        namespace: "shop".into(),
        name: "data".into(),
        volume_name: pv.map(str::to_string),
        storage_class: None,
    };
    let pvcs = vec![
        claim(Some(&names[0])),
        claim(Some(&names[1])),
        claim(Some(&names[2])),
        claim(None),
        claim(Some("no-such-pv")),
    ];
    let (found, problems) = ebs_volumes(&cluster.client, &pvcs).await;
    let got: Vec<_> = found
        .iter()
        .map(|v| (v.pv_name.as_str(), v.volume_id.as_str(), v.availability_zone.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (names[0].as_str(), "vol-0aaa111", Some("us-east-1b")),
            (names[1].as_str(), "vol-0bbb222", Some("us-east-1c")),
        ]
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("no-such-pv"), "{problems:?}");
    for name in &names {
        pvs.delete(name, &DeleteParams::default()).await.expect("delete pv");
    }
}
