//! Resource backup and restore (arca-agent `resources`) against the real API servers:
//! every selection mode object by object, restores into renamed namespaces and into the
//! second cluster, existing-object policies, the CSI driver precheck, ownerReference
//! relinking.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arca_agent::resources::archive::{IndexEntry, ReadFilter};
use arca_agent::resources::clean::{CleanOptions, NamespaceMap, RESTORE_ID_LABEL, clean};
use arca_agent::resources::restore::{ExistingPolicy, Outcome, RestoreStatus};
use arca_agent::resources::{
    BackupOptions, BackupReport, Error, ObjectStoreArchive, ResourceArchive, RestoreOptions, Selection, backup, restore,
};
use arca_embedded::LocalFsObjectStore;
use arca_testenv::unique;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// (kind, plural, namespaced) of what the fixture creates.
const KINDS: &[(&str, &str, bool)] = &[
    ("Namespace", "namespaces", false),
    ("CustomResourceDefinition", "customresourcedefinitions", false),
    ("StorageClass", "storageclasses", false),
    ("PersistentVolume", "persistentvolumes", false),
    ("PriorityClass", "priorityclasses", false),
    ("IngressClass", "ingressclasses", false),
    ("ClusterRole", "clusterroles", false),
    ("ClusterRoleBinding", "clusterrolebindings", false),
    ("VolumeSnapshotClass", "volumesnapshotclasses", false),
    ("VolumeSnapshotContent", "volumesnapshotcontents", false),
    ("CSIDriver", "csidrivers", false),
    ("Node", "nodes", false),
    ("ServiceAccount", "serviceaccounts", true),
    ("Secret", "secrets", true),
    ("ConfigMap", "configmaps", true),
    ("Deployment", "deployments", true),
    ("StatefulSet", "statefulsets", true),
    ("Service", "services", true),
    ("Role", "roles", true),
    ("RoleBinding", "rolebindings", true),
    ("PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("Ingress", "ingresses", true),
    ("VolumeSnapshot", "volumesnapshots", true),
    ("Pod", "pods", true),
    ("Event", "events", true),
    ("Widget", "widgets", true),
];

fn resource_of(obj: &Value) -> (ApiResource, bool) {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let kind = obj["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (_, plural, namespaced) = KINDS.iter().find(|(k, _, _)| *k == kind).expect("kind in KINDS");
    (
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: (*plural).into(),
        },
        *namespaced,
    )
}

fn api(client: &Client, obj: &Value) -> Api<DynamicObject> {
    let (ar, namespaced) = resource_of(obj);
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) if namespaced => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

async fn create(client: &Client, obj: Value) -> DynamicObject {
    let desired: DynamicObject = serde_json::from_value(obj.clone()).expect("fixture object");
    api(client, &obj)
        .create(&PostParams::default(), &desired)
        .await
        .unwrap_or_else(|e| panic!("creating {} {}: {e}", obj["kind"], obj["metadata"]["name"]))
}

async fn wait_established(client: &Client, crd: &Value) {
    let api = api(client, crd);
    let name = crd["metadata"]["name"].as_str().expect("name");
    for _ in 0..100 {
        let live = api.get(name).await.expect("get CRD");
        let ok = live.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if ok {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("CRD {name} never Established");
}

/// A realistic application spread over three namespaces, with the cluster-scoped objects
/// it uses and some it does not.
struct Fixture {
    id: String,
    a: String,
    b: String,
    c: String,
    driver: String,
    group: String,
    node_port: i64,
}

impl Fixture {
    fn n(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }
}

async fn seed(client: &Client) -> Fixture {
    let id = unique("rs");
    let f = Fixture {
        a: format!("{id}-a"),
        b: format!("{id}-b"),
        c: format!("{id}-c"),
        driver: format!("csi.{id}.example.com"),
        group: format!("{id}.example.com"),
        node_port: 0,
        id,
    };
    let mut f = f;
    let run = json!({"arca-test/run": f.id});
    let gold = json!({"arca-test/run": f.id, "tier": "gold"});
    let (a_name, b_name, c_name) = (f.a.clone(), f.b.clone(), f.c.clone());
    let (a, b, c) = (&a_name, &b_name, &c_name);

    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{}", f.group), "labels": run},
        "spec": {"group": f.group, "scope": "Namespaced", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    create(client, crd.clone()).await;
    for (name, labels) in [(a, &gold), (b, &run), (c, &run)] {
        create(
            client,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}),
        )
        .await;
    }
    for (name, labels) in [(f.n("fast"), &run), (f.n("db"), &run), (f.n("unused"), &run)] {
        create(
            client,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "labels": labels}, "provisioner": f.driver, "reclaimPolicy": "Retain"}),
        )
        .await;
    }
    for (name, ns, claim, labels) in [(f.n("pv-data"), a, "data", &gold), (f.n("pv-other"), c, "claim", &run)] {
        create(client, json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": if ns == a { f.n("fast") } else { f.n("unused") },
                "claimRef": {"namespace": ns, "name": claim},
                "csi": {"driver": f.driver, "volumeHandle": format!("vol-{name}")}}}))
        .await;
    }
    for name in [f.n("high"), f.n("unused")] {
        create(
            client,
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name, "labels": run}, "value": 1000}),
        )
        .await;
    }
    for name in [f.n("ic"), f.n("ic-unused")] {
        create(
            client,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name, "labels": run}, "spec": {"controller": "example.com/ingress"}}),
        )
        .await;
    }
    for (name, labels) in [(f.n("cr-bound"), &run), (f.n("cr-rb"), &run), (f.n("cr-unused"), &gold)] {
        create(
            client,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        )
        .await;
    }
    for (name, ns) in [(f.n("crb"), a), (f.n("crb-other"), c)] {
        create(
            client,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": run},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f.n("cr-bound")},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]}),
        )
        .await;
    }
    for name in [f.n("vsc"), f.n("vsc-unused")] {
        create(
            client,
            json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name, "labels": run}, "driver": f.driver, "deletionPolicy": "Retain"}),
        )
        .await;
    }
    create(
        client,
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": f.n("content"), "labels": run},
        "spec": {"driver": f.driver, "deletionPolicy": "Retain", "volumeSnapshotClassName": f.n("vsc"),
            "source": {"snapshotHandle": "snap-handle-1"}, "volumeSnapshotRef": {"namespace": a, "name": "snap"}}}),
    )
    .await;
    create(
        client,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f.n("node"), "labels": gold}}),
    )
    .await;
    wait_established(client, &crd).await;

    // Namespace a: the application.
    let pod_template = json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"priorityClassName": f.n("high"), "containers": [{"name": "web", "image": "nginx:1.27"}]}});
    let ns_objects = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": a, "labels": run}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": a, "labels": gold},
            "type": "Opaque", "stringData": {"password": "not-logged"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-token-abcde", "namespace": a, "labels": gold,
            "annotations": {"kubernetes.io/service-account.name": "app"}}, "type": "kubernetes.io/service-account-token"}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": a, "labels": gold},
            "data": {"mode": "prod"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain", "namespace": a, "labels": run},
            "data": {"x": "1"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": a, "labels": gold},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": pod_template}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": a, "labels": run},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:17"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "pgdata"}, "spec": {"accessModes": ["ReadWriteOnce"],
                    "storageClassName": f.n("db"), "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": a, "labels": run},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": a, "labels": run},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader", "namespace": a, "labels": run},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader", "namespace": a, "labels": run},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": a},
                {"kind": "ServiceAccount", "name": "monitor", "namespace": "kube-system"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "uses-cr", "namespace": a, "labels": run},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f.n("cr-rb")},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": a}]}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": a, "labels": run},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": f.n("fast"), "volumeName": f.n("pv-data"),
                "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": a, "labels": run},
            "spec": {"ingressClassName": f.n("ic"), "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "snap", "namespace": a, "labels": run},
            "spec": {"volumeSnapshotClassName": f.n("vsc"), "source": {"persistentVolumeClaimName": "data"}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "standalone", "namespace": a, "labels": run},
            "spec": {"priorityClassName": f.n("high"), "containers": [{"name": "c", "image": "busybox:1.37"}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-6d4f9-x2x7q", "namespace": a, "labels": run,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6d4f9",
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1", "namespace": a, "labels": run},
            "involvedObject": {"kind": "Pod", "name": "standalone", "namespace": a}, "reason": "Test", "message": "m"}),
        json!({"apiVersion": format!("{}/v1", f.group), "kind": "Widget", "metadata": {"name": "w1", "namespace": a, "labels": gold},
            "spec": {"size": 3}}),
        // ns b: one gold object (label mode), one not.
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gold-cm", "namespace": b, "labels": gold}, "data": {}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other", "namespace": b, "labels": run},
            "spec": {"selector": {"matchLabels": {"app": "o"}}, "template": {"metadata": {"labels": {"app": "o"}},
                "spec": {"containers": [{"name": "o", "image": "nginx:1.27"}]}}}}),
        // ns c: its own claim on an unrelated PV.
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim", "namespace": c, "labels": run},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": f.n("unused"), "volumeName": f.n("pv-other"),
                "resources": {"requests": {"storage": "1Gi"}}}}),
    ];
    // An explicit nodePort, free in both clusters (they keep what earlier runs left).
    let seed_port = f.id.bytes().fold(0i64, |h, b| (h * 31 + i64::from(b)) % 2000);
    for attempt in 0..50 {
        let port = 30000 + (seed_port + attempt * 13) % 2700;
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np", "namespace": a, "labels": run},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": port}]}});
        let desired: DynamicObject = serde_json::from_value(svc.clone()).expect("svc");
        match api(client, &svc).create(&PostParams::default(), &desired).await {
            Ok(_) => {
                f.node_port = port;
                break;
            }
            Err(kube::Error::Api(e)) if e.message.contains("already allocated") => continue,
            Err(e) => panic!("creating np: {e}"),
        }
    }
    assert_ne!(f.node_port, 0, "no free nodePort");
    let mut uids = BTreeMap::new();
    for obj in ns_objects {
        let created = create(client, obj).await;
        uids.insert(
            format!(
                "{}/{}",
                created.types.map(|t| t.kind).unwrap_or_default(),
                created.metadata.name.unwrap_or_default()
            ),
            created.metadata.uid.unwrap_or_default(),
        );
    }
    // Ownership: one owner restored earlier (Secret), one later (Widget, after ConfigMaps),
    // one not in the backup at all.
    let widget_api_version = format!("{}/v1", f.group);
    let owned = [
        ("owned-by-secret", "v1", "Secret", "creds"),
        ("owned-by-widget", widget_api_version.as_str(), "Widget", "w1"),
    ];
    for (name, api_version, kind, owner) in owned {
        create(client, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": a, "labels": run,
            "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": owner, "uid": uids[&format!("{kind}/{owner}")]}]},
            "data": {}}))
        .await;
    }
    create(client, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan", "namespace": a, "labels": run,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-00000000dead"}]},
        "data": {}}))
    .await;

    // Play the PV controller: bind the claims.
    let pvcs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        a,
        &ApiResource::erase::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&()),
    );
    pvcs.patch_status(
        "data",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Bound",
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}})),
    )
    .await
    .expect("bind PVC");
    f
}

type Key = (String, Option<String>, String);

async fn archived(archive: &ObjectStoreArchive, report: &BackupReport) -> Vec<IndexEntry> {
    let reader = archive.open(&report.archive_id).await.expect("open archive");
    reader.entries(&ReadFilter::everything()).await.expect("index")
}

fn keys(entries: &[IndexEntry], f: &Fixture) -> BTreeSet<Key> {
    all_keys(entries)
        .into_iter()
        .filter(|(_, ns, name)| name.contains(&f.id) || ns.as_deref().is_some_and(|ns| ns.contains(&f.id)))
        .collect()
}

fn all_keys(entries: &[IndexEntry]) -> BTreeSet<Key> {
    entries
        .iter()
        .map(|e| (e.resource.group_resource(), e.namespace.clone(), e.name.clone()))
        .collect()
}

fn k(gr: &str, ns: Option<&str>, name: &str) -> Key {
    (gr.to_string(), ns.map(str::to_string), name.to_string())
}

fn new_archive(dir: &tempfile::TempDir) -> ObjectStoreArchive {
    ObjectStoreArchive::new(Arc::new(LocalFsObjectStore::new(dir.path())), "resources", &[9; 32]).expect("archive")
}

/// A seeded fixture whose namespace a is backed up into a new archive: the fixture, the
/// archive's directory, the archive and the backup's report.
async fn seed_and_back_up_a(client: &Client) -> (Fixture, tempfile::TempDir, ObjectStoreArchive, BackupReport) {
    let f = seed(client).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = new_archive(&dir);
    let selection = Selection {
        namespaces: [f.a.clone()].into(),
        ..Default::default()
    };
    let backup = backup(client, &selection, &archive, &BackupOptions::default())
        .await
        .expect("backup");
    (f, dir, archive, backup)
}

fn namespace_a_objects(f: &Fixture) -> BTreeSet<Key> {
    let a = Some(f.a.as_str());
    let w = format!("widgets.{}", f.group);
    [
        ("serviceaccounts", "app"),
        ("secrets", "creds"),
        ("configmaps", "settings"),
        ("configmaps", "plain"),
        ("configmaps", "owned-by-secret"),
        ("configmaps", "owned-by-widget"),
        ("configmaps", "orphan"),
        ("deployments.apps", "web"),
        ("statefulsets.apps", "db"),
        ("services", "web"),
        ("services", "db"),
        ("services", "np"),
        ("roles.rbac.authorization.k8s.io", "reader"),
        ("rolebindings.rbac.authorization.k8s.io", "reader"),
        ("rolebindings.rbac.authorization.k8s.io", "uses-cr"),
        ("persistentvolumeclaims", "data"),
        ("ingresses.networking.k8s.io", "web"),
        ("volumesnapshots.snapshot.storage.k8s.io", "snap"),
        ("pods", "standalone"),
        ("pods", "web-6d4f9-x2x7q"),
        (w.as_str(), "w1"),
    ]
    .into_iter()
    .map(|(gr, name)| k(gr, a, name))
    .collect()
}

fn cluster_objects_of_a(f: &Fixture) -> BTreeSet<Key> {
    [
        ("namespaces", f.a.clone()),
        ("persistentvolumes", f.n("pv-data")),
        ("storageclasses.storage.k8s.io", f.n("fast")),
        ("storageclasses.storage.k8s.io", f.n("db")),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            format!("widgets.{}", f.group),
        ),
        ("clusterroles.rbac.authorization.k8s.io", f.n("cr-bound")),
        ("clusterroles.rbac.authorization.k8s.io", f.n("cr-rb")),
        ("clusterrolebindings.rbac.authorization.k8s.io", f.n("crb")),
        ("priorityclasses.scheduling.k8s.io", f.n("high")),
        ("ingressclasses.networking.k8s.io", f.n("ic")),
        ("volumesnapshotcontents.snapshot.storage.k8s.io", f.n("content")),
        ("volumesnapshotclasses.snapshot.storage.k8s.io", f.n("vsc")),
    ]
    .into_iter()
    .map(|(gr, name)| k(gr, None, &name))
    .collect()
}

#[tokio::test]
async fn selection_modes_give_exactly_the_expected_objects() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let client = &cluster.client;
    let f = seed(client).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = new_archive(&dir);
    let opts = BackupOptions {
        concurrency: 4,
        // Small pages, so pagination is exercised.
        page_size: 3,
        list_cluster_wide: Some(false),
        own_namespace: None,
    };

    // Select namespaces: a's objects, and exactly the cluster-scoped objects a uses.
    let by_ns = Selection {
        namespaces: [f.a.clone()].into(),
        ..Default::default()
    };
    let report = backup(client, &by_ns, &archive, &opts)
        .await
        .expect("backup by namespace");
    // Exact: nothing else of the (shared) cluster comes along.
    let got = all_keys(&archived(&archive, &report).await);
    let mut expected: BTreeSet<Key> = namespace_a_objects(&f)
        .union(&cluster_objects_of_a(&f))
        .cloned()
        .collect();
    // The VolumeSnapshot in a is a custom resource too: its CRD comes along.
    expected.insert(k(
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
        "volumesnapshots.snapshot.storage.k8s.io",
    ));
    assert_eq!(
        got.difference(&expected).collect::<Vec<_>>(),
        Vec::<&Key>::new(),
        "unexpected objects"
    );
    assert_eq!(
        expected.difference(&got).collect::<Vec<_>>(),
        Vec::<&Key>::new(),
        "missing objects"
    );
    let m = &report.manifest;
    assert_eq!(
        m.objects,
        got.len(),
        "nothing outside the fixture in a namespace backup"
    );
    assert!(
        m.skipped
            .iter()
            .any(|s| s.resource == "secrets" && s.name == "app-token-abcde"),
        "token Secret skipped with a reason: {:?}",
        m.skipped
    );
    assert!(m.skipped.iter().any(|s| s.resource == "events" && s.name.is_empty()));
    assert!(m.skipped.iter().any(|s| s.resource == "nodes"));
    assert!(
        m.skipped
            .iter()
            .any(|s| s.resource == "tokenreviews.authentication.k8s.io"),
        "non-listable types recorded"
    );
    let pvcs: Vec<_> = m.pvcs.iter().map(|p| (p.namespace.as_str(), p.name.as_str())).collect();
    assert_eq!(pvcs, vec![(f.a.as_str(), "data")], "PVCs to snapshot");
    assert_eq!(m.csi_drivers, [f.driver.clone()].into());
    // Listing each type across the cluster and filtering in the agent selects the same.
    let wide = BackupOptions {
        list_cluster_wide: Some(true),
        page_size: 500,
        ..opts.clone()
    };
    let report = backup(client, &by_ns, &archive, &wide)
        .await
        .expect("backup by namespace, cluster-wide lists");
    assert_eq!(
        all_keys(&archived(&archive, &report).await),
        got,
        "cluster-wide listing"
    );

    // Select labels: every object carrying both labels, namespace- or cluster-scoped.
    let labels: BTreeMap<String, String> = [
        ("arca-test/run".to_string(), f.id.clone()),
        ("tier".to_string(), "gold".to_string()),
    ]
    .into();
    let by_labels = Selection {
        labels: labels.clone(),
        ..Default::default()
    };
    let report = backup(client, &by_labels, &archive, &opts)
        .await
        .expect("backup by labels");
    let got = all_keys(&archived(&archive, &report).await);
    let a = Some(f.a.as_str());
    let gold_in_a: BTreeSet<Key> = [
        k("namespaces", None, &f.a),
        k("secrets", a, "creds"),
        k("configmaps", a, "settings"),
        k("deployments.apps", a, "web"),
        k(&format!("widgets.{}", f.group), a, "w1"),
        k("persistentvolumes", None, &f.n("pv-data")),
    ]
    .into();
    let mut expected = gold_in_a.clone();
    expected.insert(k("configmaps", Some(&f.b), "gold-cm"));
    expected.insert(k("clusterroles.rbac.authorization.k8s.io", None, &f.n("cr-unused")));
    assert_eq!(got, expected, "label selection");
    assert_eq!(report.manifest.objects, expected.len());

    // Both: in namespace a (or associated with it) AND gold.
    let both = Selection {
        namespaces: [f.a.clone()].into(),
        labels,
        ..Default::default()
    };
    let report = backup(client, &both, &archive, &opts).await.expect("backup both");
    let got = all_keys(&archived(&archive, &report).await);
    assert_eq!(got, gold_in_a, "namespaces and labels");

    // Full cluster: everything of the fixture, in every namespace, and no skipped kinds.
    let full = Selection {
        full_cluster: true,
        ..Default::default()
    };
    let report = backup(client, &full, &archive, &opts).await.expect("full backup");
    let got = keys(&archived(&archive, &report).await, &f);
    let mut expected: BTreeSet<Key> = namespace_a_objects(&f)
        .union(&cluster_objects_of_a(&f))
        .cloned()
        .collect();
    for key in [
        k("namespaces", None, &f.b),
        k("namespaces", None, &f.c),
        k("configmaps", Some(&f.b), "gold-cm"),
        k("deployments.apps", Some(&f.b), "other"),
        k("persistentvolumeclaims", Some(&f.c), "claim"),
        k("persistentvolumes", None, &f.n("pv-other")),
        k("storageclasses.storage.k8s.io", None, &f.n("unused")),
        k("priorityclasses.scheduling.k8s.io", None, &f.n("unused")),
        k("ingressclasses.networking.k8s.io", None, &f.n("ic-unused")),
        k("clusterroles.rbac.authorization.k8s.io", None, &f.n("cr-unused")),
        k("clusterrolebindings.rbac.authorization.k8s.io", None, &f.n("crb-other")),
        k(
            "volumesnapshotclasses.snapshot.storage.k8s.io",
            None,
            &f.n("vsc-unused"),
        ),
    ] {
        expected.insert(key);
    }
    assert_eq!(got, expected, "full cluster (fixture objects)");
    let all = archived(&archive, &report).await;
    assert!(
        !all.iter()
            .any(|e| e.resource.plural == "nodes" || e.resource.plural == "events")
    );
    assert!(
        report
            .manifest
            .pvcs
            .iter()
            .any(|p| p.namespace == f.c && p.name == "claim")
    );

    // Unchanged objects cost nothing the second time.
    let again = backup(client, &full, &archive, &opts)
        .await
        .expect("second full backup");
    assert!(
        again.manifest.new_objects * 10 < again.manifest.objects,
        "{} new of {}",
        again.manifest.new_objects,
        again.manifest.objects
    );
}

/// Subset comparison: every field of `expected` is in `actual` with the same value (the
/// API server adds defaults).
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                let child = a.get(key).unwrap_or_else(|| panic!("{path}.{key} missing in {actual}"));
                assert_contains(child, value, &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{path}: {actual} vs {expected}");
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                assert_contains(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

/// Every restored object of the archive matches the backed-up one after the cleaning rules.
async fn assert_reproduced(
    target: &Client,
    archive: &ObjectStoreArchive,
    archive_id: &str,
    clean_opts: &CleanOptions,
    report: &arca_agent::resources::RestoreReport,
) {
    let reader = archive.open(archive_id).await.expect("open");
    let mut checked = 0;
    for entry in reader.entries(&ReadFilter::everything()).await.expect("entries") {
        let gr = entry.resource.group_resource();
        let target_ns = entry.namespace.as_deref().map(|ns| clean_opts.namespaces.target(ns));
        let target_name = if gr == "namespaces" {
            clean_opts.namespaces.target(&entry.name)
        } else {
            entry.name.clone()
        };
        let Some(outcome) = report.item(&gr, target_ns.as_deref(), &target_name) else {
            panic!("no outcome for {gr} {target_ns:?} {target_name}");
        };
        if !matches!(outcome, Outcome::Created | Outcome::Updated) {
            continue;
        }
        let mut expected = clean(
            &entry.resource,
            reader.object(&entry).await.expect("object"),
            clean_opts,
        );
        let ar = entry.resource.api_resource();
        let api: Api<DynamicObject> = match &target_ns {
            Some(ns) => Api::namespaced_with(target.clone(), ns, &ar),
            None => Api::all_with(target.clone(), &ar),
        };
        let live = serde_json::to_value(api.get(&target_name).await.expect("restored object")).expect("json");
        // Fields the restore itself changes or the server owns are checked elsewhere.
        if let Some(meta) = expected["metadata"].as_object_mut() {
            meta.remove("ownerReferences");
        }
        if gr == "persistentvolumeclaims"
            && let Some(spec) = expected["spec"].as_object_mut()
        {
            spec.remove("volumeName");
        }
        if gr == "services" {
            // A nodePort taken in the target falls back to an allocated one; the test of
            // the second cluster checks the explicit port is kept where it is free.
            for port in expected["spec"]["ports"].as_array_mut().into_iter().flatten() {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
        if gr == "secrets"
            && let Some(obj) = expected.as_object_mut()
        {
            // Secrets are compared by key only: nothing of their content goes to the test log.
            let keys: Vec<String> = obj
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            obj.remove("data");
            let live_keys: Vec<String> = live["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(keys, live_keys, "secret keys of {target_name}");
            assert!(
                live["data"] == reader.object(&entry).await.expect("object")["data"],
                "secret data of {target_name} differs"
            );
        }
        assert_contains(&live, &expected, &format!("{gr}/{target_name}"));
        assert_eq!(live["metadata"]["labels"][RESTORE_ID_LABEL], report.restore_id.as_str());
        checked += 1;
    }
    assert!(checked > 10, "only {checked} objects compared");
}

fn clean_options(archive_ns: &[&str], map: &BTreeMap<String, String>, restore_id: &str) -> CleanOptions {
    CleanOptions {
        namespaces: NamespaceMap {
            explicit: map.clone(),
            restored: archive_ns.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        restore_id: restore_id.to_string(),
        ..Default::default()
    }
}

fn outcome_of<'a>(
    report: &'a arca_agent::resources::RestoreReport,
    gr: &str,
    ns: Option<&str>,
    name: &str,
) -> &'a Outcome {
    report
        .item(gr, ns, name)
        .unwrap_or_else(|| panic!("no outcome for {gr} {ns:?} {name}: {:#?}", report.items))
}

#[tokio::test]
async fn restore_into_renamed_namespace_with_existing_object_policies() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let client = &cluster.client;
    let (f, _dir, archive, backup) = seed_and_back_up_a(client).await;
    let renamed = f.n("a2");
    let map: BTreeMap<String, String> = [(f.a.clone(), renamed.clone())].into();

    let restore_id = unique("r1");
    let mut opts = RestoreOptions::new(&backup.archive_id, &restore_id);
    opts.namespace_map = map.clone();
    let report = restore(client, &archive, &opts).await.expect("restore");
    let r = Some(renamed.as_str());
    assert_eq!(outcome_of(&report, "namespaces", None, &renamed), &Outcome::Created);
    assert_eq!(outcome_of(&report, "configmaps", r, "settings"), &Outcome::Created);
    assert!(
        matches!(outcome_of(&report, "pods", r, "web-6d4f9-x2x7q"), Outcome::Skipped { reason } if reason.contains("ReplicaSet"))
    );
    assert_eq!(outcome_of(&report, "pods", r, "standalone"), &Outcome::Created);
    // Cluster-scoped objects are the originals' and exist already.
    assert!(
        matches!(outcome_of(&report, "persistentvolumes", None, &f.n("pv-data")), Outcome::Skipped { reason } if reason == "already exists")
    );
    assert_eq!(report.status, RestoreStatus::Completed, "{:#?}", report.items);
    assert_reproduced(
        client,
        &archive,
        &backup.archive_id,
        &clean_options(&[&f.a], &map, &restore_id),
        &report,
    )
    .await;

    // References were rewritten to the new namespace, and only those.
    let rbs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &renamed,
        &ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&()),
    );
    let rb = rbs.get("reader").await.expect("rolebinding");
    assert_eq!(rb.data["subjects"][0]["namespace"], renamed.as_str());
    assert_eq!(rb.data["subjects"][1]["namespace"], "kube-system");
    // The existing PV belongs to the original claim: the renamed claim does not take it.
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), &renamed);
    let pvc = pvcs.get("data").await.expect("pvc");
    assert_eq!(pvc.spec.and_then(|s| s.volume_name), None);
    // A Service got a fresh cluster IP; the headless one stayed headless.
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &renamed);
    let original: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &f.a);
    let ip = |s: k8s_openapi::api::core::v1::Service| s.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    assert_ne!(
        ip(svcs.get("web").await.expect("svc")),
        ip(original.get("web").await.expect("svc"))
    );
    assert_eq!(ip(svcs.get("db").await.expect("svc")), "None");
    // ownerReferences point at the restored owners; the dangling one is gone.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &renamed);
    let secret_uid = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &renamed)
        .get("creds")
        .await
        .expect("secret")
        .metadata
        .uid;
    let owners = |cm: k8s_openapi::api::core::v1::ConfigMap| cm.metadata.owner_references.unwrap_or_default();
    let by_secret = owners(cms.get("owned-by-secret").await.expect("cm"));
    assert_eq!(by_secret.len(), 1);
    assert_eq!(Some(by_secret[0].uid.clone()), secret_uid);
    assert!(owners(cms.get("orphan").await.expect("cm")).is_empty());

    // Policy skip (default): everything exists now.
    cms.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"mode": "changed"}})),
    )
    .await
    .expect("edit");
    let again = restore(
        client,
        &archive,
        &RestoreOptions::new(&backup.archive_id, &unique("r2")).with_map(&map),
    )
    .await
    .expect("restore skip");
    assert!(
        matches!(outcome_of(&again, "configmaps", r, "settings"), Outcome::Skipped { reason } if reason == "already exists")
    );
    assert_eq!(
        cms.get("settings").await.expect("cm").data.unwrap_or_default()["mode"],
        "changed"
    );

    // Policy fail: refused before anything is touched.
    cms.delete("plain", &DeleteParams::default()).await.expect("delete");
    let mut fail = RestoreOptions::new(&backup.archive_id, &unique("r3")).with_map(&map);
    fail.existing = ExistingPolicy::Fail;
    let err = restore(client, &archive, &fail).await.expect_err("policy fail");
    assert!(
        matches!(&err, Error::Precheck(m) if m.contains("configmaps settings")),
        "{err}"
    );
    assert!(
        cms.get_opt("plain").await.expect("get").is_none(),
        "nothing was created"
    );

    // Policy update: the backed-up content wins, the deleted one comes back.
    let mut update = RestoreOptions::new(&backup.archive_id, &unique("r4")).with_map(&map);
    update.existing = ExistingPolicy::Update;
    let updated = restore(client, &archive, &update).await.expect("restore update");
    assert_eq!(outcome_of(&updated, "configmaps", r, "settings"), &Outcome::Updated);
    assert_eq!(outcome_of(&updated, "configmaps", r, "plain"), &Outcome::Created);
    assert_eq!(outcome_of(&updated, "services", r, "web"), &Outcome::Updated);
    assert_eq!(
        cms.get("settings").await.expect("cm").data.unwrap_or_default()["mode"],
        "prod"
    );
    let relabelled = cms
        .get("settings")
        .await
        .expect("cm")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(relabelled[RESTORE_ID_LABEL], update.restore_id);
    assert_eq!(updated.status, RestoreStatus::Completed, "{:#?}", updated.items);
}

trait WithMap {
    fn with_map(self, map: &BTreeMap<String, String>) -> Self;
}

impl WithMap for RestoreOptions {
    fn with_map(mut self, map: &BTreeMap<String, String>) -> Self {
        self.namespace_map = map.clone();
        self
    }
}

#[tokio::test]
async fn restore_into_second_cluster_checks_csi_drivers_and_relinks_owners() {
    let (Some(a), Some(b)) = (arca_testenv::cluster_a().await, arca_testenv::cluster_b().await) else {
        return;
    };
    let (f, _dir, archive, backup) = seed_and_back_up_a(&a.client).await;
    let restore_id = unique("rb");
    let opts = RestoreOptions::new(&backup.archive_id, &restore_id);

    // Cluster b has no such CSI driver: refused, nothing created.
    let err = restore(&b.client, &archive, &opts).await.expect_err("precheck");
    assert!(matches!(&err, Error::Precheck(m) if m.contains(&f.driver)), "{err}");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(b.client.clone());
    assert!(namespaces.get_opt(&f.a).await.expect("get").is_none());

    create(
        &b.client,
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": f.driver},
        "spec": {"attachRequired": false}}),
    )
    .await;
    let report = restore(&b.client, &archive, &opts).await.expect("restore into b");
    assert_eq!(report.status, RestoreStatus::Completed, "{:#?}", report.items);
    for (gr, name) in cluster_objects_of_a(&f)
        .iter()
        .map(|(gr, _, name)| (gr.clone(), name.clone()))
    {
        assert_eq!(outcome_of(&report, &gr, None, &name), &Outcome::Created, "{gr} {name}");
    }
    assert_reproduced(
        &b.client,
        &archive,
        &backup.archive_id,
        &clean_options(&[&f.a], &BTreeMap::new(), &restore_id),
        &report,
    )
    .await;

    // The PV came along, so the claim keeps its volume.
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(b.client.clone(), &f.a);
    assert_eq!(
        pvcs.get("data").await.expect("pvc").spec.and_then(|s| s.volume_name),
        Some(f.n("pv-data"))
    );
    // The explicitly set nodePort is kept; the allocated one was not carried over.
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(b.client.clone(), &f.a);
    let ports = svcs
        .get("np")
        .await
        .expect("svc")
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default();
    assert_eq!(
        ports.iter().find(|p| p.port == 443).and_then(|p| p.node_port),
        Some(f.node_port as i32)
    );
    let reader = archive.open(&backup.archive_id).await.expect("open");
    let np_entry = reader
        .entries(&ReadFilter::everything())
        .await
        .expect("entries")
        .into_iter()
        .find(|e| e.resource.plural == "services" && e.name == "np")
        .expect("np archived");
    let cleaned = clean(
        &np_entry.resource,
        reader.object(&np_entry).await.expect("np"),
        &CleanOptions::default(),
    );
    assert_eq!(
        cleaned["spec"]["ports"][0].get("nodePort"),
        None,
        "allocated nodePort dropped: {cleaned}"
    );

    // The owner restored after its dependent (Widget after ConfigMaps) is relinked at the end.
    let widget_ar = ApiResource {
        group: f.group.clone(),
        version: "v1".into(),
        api_version: format!("{}/v1", f.group),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widget = Api::<DynamicObject>::namespaced_with(b.client.clone(), &f.a, &widget_ar)
        .get("w1")
        .await
        .expect("widget");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(b.client.clone(), &f.a);
    let owners = cms
        .get("owned-by-widget")
        .await
        .expect("cm")
        .metadata
        .owner_references
        .unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(Some(owners[0].uid.clone()), widget.metadata.uid);
    let source_uid = Api::<DynamicObject>::namespaced_with(a.client.clone(), &f.a, &widget_ar)
        .get("w1")
        .await
        .expect("source widget")
        .metadata
        .uid;
    assert_ne!(widget.metadata.uid, source_uid, "a new uid in the other cluster");
}

#[tokio::test]
async fn order_override_partial_failure_prefix_and_storage_class_map() {
    let (Some(a), Some(b)) = (arca_testenv::cluster_a().await, arca_testenv::cluster_b().await) else {
        return;
    };
    let (f, _dir, archive, backup) = seed_and_back_up_a(&a.client).await;
    create(
        &b.client,
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": f.driver},
        "spec": {"attachRequired": false}}),
    )
    .await;

    let mut opts = RestoreOptions::new(&backup.archive_id, &unique("ro"));
    opts.namespace_prefix = "p-".into();
    opts.storage_class_map = [(f.n("fast"), f.n("gold"))].into();
    // CRDs last: the custom resource comes before its CRD and fails.
    opts.order = Some(vec![
        "namespaces".into(),
        "*".into(),
        "customresourcedefinitions.apiextensions.k8s.io".into(),
    ]);
    let report = restore(&b.client, &archive, &opts).await.expect("restore");
    let target = format!("p-{}", f.a);
    let t = Some(target.as_str());
    assert_eq!(report.status, RestoreStatus::Partial, "{:#?}", report.items);
    let widgets = format!("widgets.{}", f.group);
    assert!(
        matches!(outcome_of(&report, &widgets, t, "w1"), Outcome::Failed { .. }),
        "{:?}",
        outcome_of(&report, &widgets, t, "w1")
    );
    assert_eq!(
        outcome_of(
            &report,
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            &widgets
        ),
        &Outcome::Created
    );
    assert_eq!(outcome_of(&report, "configmaps", t, "settings"), &Outcome::Created);
    let failed = report
        .items
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Failed { .. }))
        .count();
    assert_eq!(failed, 1, "only the custom resource fails: {:#?}", report.items);

    // Storage classes mapped on the claim and on its volume.
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(b.client.clone(), &target);
    let pvc = pvcs.get("data").await.expect("pvc").spec.expect("spec");
    assert_eq!(pvc.storage_class_name, Some(f.n("gold")));
    assert_eq!(pvc.volume_name, Some(f.n("pv-data")));
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(b.client.clone());
    let pv = pvs.get(&f.n("pv-data")).await.expect("pv").spec.expect("spec");
    assert_eq!(pv.storage_class_name, Some(f.n("gold")));
    assert_eq!(pv.claim_ref.and_then(|c| c.namespace), Some(target.clone()));
    // The owner never came: the dependent keeps no dangling reference.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(b.client.clone(), &target);
    let owners = cms.get("owned-by-widget").await.expect("cm").metadata.owner_references;
    assert!(owners.unwrap_or_default().is_empty());
}

/// The agent's own namespace (its token Secret) and anything labelled as the agent's
/// install are never archived; and a restore, even of an archive an older agent wrote
/// with them, creates none of them, so no other cluster's agent can act as this one.
#[tokio::test]
async fn the_agents_own_objects_are_never_backed_up_or_restored() {
    let (Some(a), Some(b)) = (arca_testenv::cluster_a().await, arca_testenv::cluster_b().await) else {
        return;
    };
    let own = unique("arca-own");
    let app = unique("app");
    for ns in [&own, &app] {
        create(
            &a.client,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
    create(
        &a.client,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "arca-agent", "namespace": own},
        "stringData": {"token": "arcagent_not-for-other-clusters"}}),
    )
    .await;
    create(
        &a.client,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": app},
        "data": {"mode": "prod"}}),
    )
    .await;
    create(
        &a.client,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "arca-agent",
        "namespace": app, "labels": {"app.kubernetes.io/part-of": "arca"}}}),
    )
    .await;
    let selection = Selection {
        namespaces: [own.clone(), app.clone()].into(),
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = new_archive(&dir);

    // This agent's backup: neither its namespace nor its labelled objects.
    let opts = BackupOptions {
        own_namespace: Some(own.clone()),
        ..BackupOptions::default()
    };
    let report = backup(&a.client, &selection, &archive, &opts).await.expect("backup");
    let keys = all_keys(&archived(&archive, &report).await);
    assert!(
        keys.iter()
            .any(|(gr, ns, n)| gr == "configmaps" && ns.as_deref() == Some(app.as_str()) && n == "settings"),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|(gr, ns, n)| ns.as_deref() == Some(own.as_str()) || (gr == "namespaces" && *n == own)),
        "the agent's namespace is not archived: {keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|(gr, ns, _)| gr == "serviceaccounts" && ns.as_deref() == Some(app.as_str())),
        "nor its labelled objects: {keys:?}"
    );
    let skipped: Vec<_> = report
        .manifest
        .skipped
        .iter()
        .filter(|s| s.reason.contains("Arca agent's own"))
        .collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.namespace.as_deref() == Some(own.as_str()) && s.name == "arca-agent"),
        "{skipped:?}"
    );

    // An archive an older agent wrote with them: the restore in b skips them all.
    let old = backup(&a.client, &selection, &archive, &BackupOptions::default())
        .await
        .expect("old backup");
    let old_keys = all_keys(&archived(&archive, &old).await);
    assert!(
        old_keys
            .iter()
            .any(|(_, ns, n)| ns.as_deref() == Some(own.as_str()) && n == "arca-agent"),
        "{old_keys:?}"
    );
    let mut restore_opts = RestoreOptions::new(&old.archive_id, &unique("r-own"));
    restore_opts.own_namespace = Some(own.clone());
    let restored = restore(&b.client, &archive, &restore_opts).await.expect("restore");
    assert_eq!(
        outcome_of(&restored, "configmaps", Some(&app), "settings"),
        &Outcome::Created
    );
    assert!(
        matches!(outcome_of(&restored, "secrets", Some(&own), "arca-agent"), Outcome::Skipped { reason } if reason.contains("Arca agent's own"))
    );
    // The labelled object is left out by every agent that knows the label.
    assert!(
        !old_keys
            .iter()
            .any(|(gr, ns, _)| gr == "serviceaccounts" && ns.as_deref() == Some(app.as_str())),
        "{old_keys:?}"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(b.client.clone(), &own);
    assert!(
        secrets.get_opt("arca-agent").await.expect("read").is_none(),
        "no agent token in b"
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(b.client.clone());
    assert!(
        namespaces.get_opt(&own).await.expect("read").is_none(),
        "nor its namespace"
    );
}
