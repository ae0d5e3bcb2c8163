//! Proves the Kubernetes side of the test environment is real: two independent
//! kube-apiservers with RBAC, and the real CSI snapshot CRDs with their validation.

use arca_e2e::{create_namespace, delete_namespace, volume_snapshot_resource};
use arca_testenv::{Cluster, unique};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::json;

async fn configmap_round_trip(cluster: &Cluster, namespace: &str, name: &str) {
    let names: Vec<_> = Api::<Namespace>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == namespace), "{namespace} in {names:?}");

    let api = Api::<ConfigMap>::namespaced(cluster.client.clone(), namespace);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}, "data": {"greeting": "hello"}}))
        .expect("a valid ConfigMap");
    api.create(&PostParams::default(), &cm).await.expect("create configmap");
    let read = api.get(name).await.expect("read configmap");
    assert_eq!(read.data.expect("configmap data")["greeting"], "hello");
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete configmap");
    assert!(api.get_opt(name).await.expect("get after delete").is_none());
}

#[tokio::test]
async fn both_clusters_serve_configmaps_independently() {
    let (Some(a), Some(b)) = (arca_testenv::cluster_a().await, arca_testenv::cluster_b().await) else {
        return;
    };
    let ns = unique("smoke");
    create_namespace(&a.client, &ns).await.expect("namespace on a");
    configmap_round_trip(&a, &ns, "cm-a").await;

    // The same namespace does not exist on b until created there: separate etcd, separate state.
    let on_b = Api::<Namespace>::all(b.client.clone())
        .get_opt(&ns)
        .await
        .expect("get on b");
    assert!(on_b.is_none(), "cluster b must not see cluster a's namespace");
    create_namespace(&b.client, &ns).await.expect("namespace on b");
    configmap_round_trip(&b, &ns, "cm-b").await;

    let version_a = a.client.apiserver_version().await.expect("version a");
    let version_b = b.client.apiserver_version().await.expect("version b");
    eprintln!(
        "kube-apiserver a: {}, b: {}",
        version_a.git_version, version_b.git_version
    );
    assert!(version_a.git_version.starts_with("v1."), "{version_a:?}");
    delete_namespace(&a.client, &ns).await;
    delete_namespace(&b.client, &ns).await;
}

#[tokio::test]
async fn the_reader_identity_can_read_but_not_write() {
    let (Some(admin), Some(reader)) = (arca_testenv::cluster_a().await, arca_testenv::cluster_a_reader().await) else {
        return;
    };
    let ns = unique("reader");
    create_namespace(&admin.client, &ns).await.expect("namespace");
    let api = Api::<ConfigMap>::namespaced(reader.client.clone(), &ns);
    api.list(&ListParams::default())
        .await
        .expect("a reader can list configmaps");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "nope"}})).unwrap();
    match api.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("a reader must be forbidden to create, got {other:?}"),
    }
    delete_namespace(&admin.client, &ns).await;
}

#[tokio::test]
async fn volume_snapshots_are_validated_by_the_real_crd() {
    let Some(a) = arca_testenv::cluster_a().await else {
        return;
    };
    let ns = unique("snap");
    create_namespace(&a.client, &ns).await.expect("namespace");
    let api = Api::<DynamicObject>::namespaced_with(a.client.clone(), &ns, &volume_snapshot_resource());

    let snapshot: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "data-snap"},
        "spec": {"volumeSnapshotClassName": "csi-snapclass", "source": {"persistentVolumeClaimName": "data"}}
    }))
    .unwrap();
    let created = api
        .create(&PostParams::default(), &snapshot)
        .await
        .expect("create VolumeSnapshot");
    assert!(created.metadata.uid.is_some());
    let read = api.get("data-snap").await.expect("read VolumeSnapshot");
    assert_eq!(read.data["spec"]["source"]["persistentVolumeClaimName"], "data");

    // The upstream CRD requires exactly one source: a stand-in schema would accept both.
    let both: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "two-sources"},
        "spec": {"source": {"persistentVolumeClaimName": "data", "volumeSnapshotContentName": "c"}}
    }))
    .unwrap();
    match api.create(&PostParams::default(), &both).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("the CRD must reject a snapshot with two sources, got {other:?}"),
    }
    api.delete("data-snap", &DeleteParams::default())
        .await
        .expect("delete VolumeSnapshot");
    delete_namespace(&a.client, &ns).await;
}
