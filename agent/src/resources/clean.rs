//! What a backed-up object becomes before it is created in the target cluster: skipped or
//! cleaned, its namespace and storage class mapped, its namespace references rewritten,
//! and labelled with the restore. Pure functions, tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::ResourceType;
use super::selection::pod_spec;

/// Label put on every restored object.
pub const RESTORE_ID_LABEL: &str = "arca.io/restore-id";
/// Annotation on a Service: its nodePorts are kept on restore (see [`CleanOptions::preserve_node_ports`]).
pub const PRESERVE_NODE_PORTS_ANNOTATION: &str = "arca.io/preserve-node-ports";

/// Source namespace -> target namespace: explicit map first, else prefix + name + suffix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceMap {
    pub prefix: String,
    pub suffix: String,
    pub explicit: BTreeMap<String, String>,
    /// The source namespaces this restore brings; only references to these are rewritten
    /// (a RoleBinding subject in `kube-system` keeps pointing there).
    pub restored: BTreeSet<String>,
}

impl NamespaceMap {
    pub fn target(&self, source: &str) -> String {
        match self.explicit.get(source) {
            Some(mapped) => mapped.clone(),
            None => format!("{}{source}{}", self.prefix, self.suffix),
        }
    }

    /// The new value of a field that refers to namespace `source`, if it changes.
    pub fn reference(&self, source: &str) -> Option<String> {
        let target = self.target(source);
        (self.restored.contains(source) && target != source).then_some(target)
    }
}

#[derive(Clone, Debug, Default)]
pub struct CleanOptions {
    pub namespaces: NamespaceMap,
    pub storage_classes: BTreeMap<String, String>,
    /// `plural.group` of the types whose `status` is restored (all others lose it).
    pub restore_status: BTreeSet<String>,
    /// Keep every Service's nodePorts. Without it, a nodePort is kept only if it was set
    /// explicitly: by the Service's `arca.io/preserve-node-ports: "true"` annotation, in
    /// its `kubectl.kubernetes.io/last-applied-configuration`, or owned by a field
    /// manager in `managedFields` (an allocated port has no manager but the API server).
    pub preserve_node_ports: bool,
    pub restore_id: String,
}

/// Namespace-valued fields, by type: `*` walks every element of an array. Rewritten when
/// they name a restored namespace.
pub const NAMESPACE_REFERENCES: &[(&str, &str)] = &[
    ("persistentvolumes", "spec.claimRef.namespace"),
    ("persistentvolumes", "spec.csi.nodePublishSecretRef.namespace"),
    ("persistentvolumes", "spec.csi.nodeStageSecretRef.namespace"),
    ("persistentvolumes", "spec.csi.nodeExpandSecretRef.namespace"),
    ("persistentvolumes", "spec.csi.controllerPublishSecretRef.namespace"),
    ("persistentvolumes", "spec.csi.controllerExpandSecretRef.namespace"),
    ("persistentvolumes", "spec.cephfs.secretRef.namespace"),
    ("persistentvolumes", "spec.rbd.secretRef.namespace"),
    ("persistentvolumes", "spec.iscsi.secretRef.namespace"),
    ("persistentvolumes", "spec.azureFile.secretNamespace"),
    ("persistentvolumeclaims", "spec.dataSourceRef.namespace"),
    ("rolebindings.rbac.authorization.k8s.io", "subjects.*.namespace"),
    ("clusterrolebindings.rbac.authorization.k8s.io", "subjects.*.namespace"),
    (
        "volumesnapshotcontents.snapshot.storage.k8s.io",
        "spec.volumeSnapshotRef.namespace",
    ),
    ("apiservices.apiregistration.k8s.io", "spec.service.namespace"),
    (
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
        "webhooks.*.clientConfig.service.namespace",
    ),
    (
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "webhooks.*.clientConfig.service.namespace",
    ),
    (
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
        "spec.paramRef.namespace",
    ),
    (
        "customresourcedefinitions.apiextensions.k8s.io",
        "spec.conversion.webhook.clientConfig.service.namespace",
    ),
    ("ingressclasses.networking.k8s.io", "spec.parameters.namespace"),
    ("endpoints", "subsets.*.addresses.*.targetRef.namespace"),
    ("endpoints", "subsets.*.notReadyAddresses.*.targetRef.namespace"),
    ("endpointslices.discovery.k8s.io", "endpoints.*.targetRef.namespace"),
];

/// Namespace lists of pod (anti-)affinity terms, relative to a pod spec.
const POD_SPEC_NAMESPACE_REFERENCES: &[&str] = &[
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution.*.namespaces.*",
    "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution.*.podAffinityTerm.namespaces.*",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution.*.namespaces.*",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.*.podAffinityTerm.namespaces.*",
];

/// Applies `f` to every string at `path` (dot-separated, `*` for array elements).
pub fn rewrite_strings(value: &mut Value, path: &[&str], f: &dyn Fn(&str) -> Option<String>) {
    match path.split_first() {
        None => {
            if let Some(new) = value.as_str().and_then(f) {
                *value = Value::String(new);
            }
        }
        Some((&"*", rest)) => {
            if let Some(items) = value.as_array_mut() {
                for item in items {
                    rewrite_strings(item, rest, f);
                }
            }
        }
        Some((key, rest)) => {
            if let Some(child) = value.get_mut(*key) {
                rewrite_strings(child, rest, f);
            }
        }
    }
}

fn obj_mut<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    value.get_mut(key).and_then(Value::as_object_mut)
}

fn true_condition(obj: &Value, types: &[&str]) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["status"] == "True" && c["type"].as_str().is_some_and(|t| types.contains(&t)))
}

/// Why an object is not restored at all, if it is not.
pub fn restore_skip_reason(rt: &ResourceType, obj: &Value) -> Option<String> {
    match rt.group_resource().as_str() {
        "pods" => {
            let owned = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == true);
            if let Some(owner) = owned {
                return Some(format!(
                    "owned by {} {}: its controller makes its pods",
                    owner["kind"].as_str().unwrap_or("a controller"),
                    owner["name"].as_str().unwrap_or_default()
                ));
            }
            match obj.pointer("/status/phase").and_then(Value::as_str) {
                Some(phase @ ("Succeeded" | "Failed")) => Some(format!("completed pod (phase {phase})")),
                _ => None,
            }
        }
        "jobs.batch" => (obj.pointer("/status/completionTime").is_some_and(|t| !t.is_null())
            || true_condition(obj, &["Complete", "Failed"]))
        .then(|| "completed Job".to_string()),
        _ => None,
    }
}

/// Cleans one object for creation in the target cluster (the caller has checked
/// [`restore_skip_reason`]). ownerReferences are left for the restore to relink.
pub fn clean(rt: &ResourceType, mut obj: Value, opts: &CleanOptions) -> Value {
    let gr = rt.group_resource();
    // Decided before managedFields, which tell it, are dropped.
    let node_ports = (gr == "services").then(|| explicit_node_ports(&obj, opts.preserve_node_ports));
    if let Some(meta) = obj_mut(&mut obj, "metadata") {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(field);
        }
    }
    if !opts.restore_status.contains(&gr)
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }

    match gr.as_str() {
        "services" => {
            if let Some(explicit) = node_ports {
                clean_service(&mut obj, &explicit);
            }
        }
        "pods" => {
            if let Some(spec) = obj_mut(&mut obj, "spec") {
                // The node and the admission-computed priority belong to the source cluster.
                spec.remove("nodeName");
                spec.remove("priority");
            }
        }
        "jobs.batch" => {
            let manual = obj.pointer("/spec/manualSelector") == Some(&Value::Bool(true));
            if !manual {
                // The generated selector names the old Job's uid; the API server refuses a
                // Job that brings a selector it did not generate.
                if let Some(spec) = obj_mut(&mut obj, "spec") {
                    spec.remove("selector");
                }
                if let Some(labels) = obj
                    .pointer_mut("/spec/template/metadata/labels")
                    .and_then(Value::as_object_mut)
                {
                    labels.remove("controller-uid");
                    labels.remove("batch.kubernetes.io/controller-uid");
                }
            }
        }
        "secrets" if obj["type"] == "kubernetes.io/service-account-token" => {
            // The token is signed by the source cluster's key; the target's token
            // controller fills in a fresh one.
            if let Some(ann) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                ann.remove("kubernetes.io/service-account.uid");
            }
            if let Some(data) = obj_mut(&mut obj, "data") {
                data.remove("token");
                data.remove("ca.crt");
            }
        }
        "serviceaccounts" => {
            let prefix = format!(
                "{}-token-",
                obj.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            if let Some(secrets) = obj.get_mut("secrets").and_then(Value::as_array_mut) {
                secrets.retain(|s| !s["name"].as_str().is_some_and(|n| n.starts_with(&prefix)));
            }
        }
        "persistentvolumes" => {
            if let Some(claim) = obj.pointer_mut("/spec/claimRef").and_then(Value::as_object_mut) {
                claim.remove("uid");
                claim.remove("resourceVersion");
            }
            if let Some(ann) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                ann.remove("pv.kubernetes.io/bound-by-controller");
            }
        }
        "persistentvolumeclaims" => {
            if let Some(ann) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                ann.remove("volume.kubernetes.io/selected-node");
            }
        }
        _ => {}
    }

    map_namespaces(rt, &mut obj, &opts.namespaces);
    map_storage_classes(&gr, &mut obj, &opts.storage_classes);
    if !opts.restore_id.is_empty()
        && let Some(meta) = obj_mut(&mut obj, "metadata")
    {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(RESTORE_ID_LABEL.to_string(), Value::String(opts.restore_id.clone()));
        }
    }
    obj
}

fn map_namespaces(rt: &ResourceType, obj: &mut Value, map: &NamespaceMap) {
    let gr = rt.group_resource();
    if rt.namespaced
        && let Some(ns) = obj.pointer_mut("/metadata/namespace")
        && let Some(source) = ns.as_str()
    {
        *ns = Value::String(map.target(source));
    }
    if gr == "namespaces"
        && let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str)
    {
        let target = map.target(name);
        obj["metadata"]["name"] = Value::String(target.clone());
        if let Some(labels) = obj.pointer_mut("/metadata/labels").and_then(Value::as_object_mut)
            && labels.contains_key("kubernetes.io/metadata.name")
        {
            labels.insert("kubernetes.io/metadata.name".into(), Value::String(target));
        }
    }
    let rewrite = |s: &str| map.reference(s);
    for (_, path) in NAMESPACE_REFERENCES.iter().filter(|(t, _)| *t == gr) {
        rewrite_strings(obj, &path.split('.').collect::<Vec<_>>(), &rewrite);
    }
    if gr == "storageclasses.storage.k8s.io"
        && let Some(params) = obj.get_mut("parameters").and_then(Value::as_object_mut)
    {
        for (key, value) in params.iter_mut() {
            if key.starts_with("csi.storage.k8s.io/") && key.ends_with("-secret-namespace") {
                rewrite_strings(value, &[], &rewrite);
            }
        }
    }
    if pod_spec(&gr, obj).is_some() {
        let spec_path: &[&str] = match gr.as_str() {
            "pods" => &["spec"],
            "cronjobs.batch" => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        };
        for path in POD_SPEC_NAMESPACE_REFERENCES {
            let full: Vec<&str> = spec_path.iter().copied().chain(path.split('.')).collect();
            rewrite_strings(obj, &full, &rewrite);
        }
    }
}

fn map_storage_classes(gr: &str, obj: &mut Value, map: &BTreeMap<String, String>) {
    if map.is_empty() {
        return;
    }
    let rewrite = |s: &str| map.get(s).cloned();
    let paths: &[&[&str]] = match gr {
        "persistentvolumeclaims" => &[
            &["spec", "storageClassName"],
            &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"],
        ],
        "persistentvolumes" => &[&["spec", "storageClassName"]],
        "statefulsets.apps" => &[&["spec", "volumeClaimTemplates", "*", "spec", "storageClassName"]],
        _ => &[],
    };
    for path in paths {
        rewrite_strings(obj, path, &rewrite);
    }
}

fn clean_service(obj: &mut Value, explicit: &ExplicitPorts) {
    let Some(spec) = obj_mut(obj, "spec") else { return };
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if !headless {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            let number = port["port"].as_i64();
            let keep = number.is_some_and(|n| explicit.ports.contains(&n));
            if !keep && let Some(p) = port.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    if !explicit.health_check {
        spec.remove("healthCheckNodePort");
    }
}

struct ExplicitPorts {
    /// Service `port` numbers whose nodePort was set explicitly.
    ports: BTreeSet<i64>,
    health_check: bool,
}

/// Which nodePorts of a Service were chosen by a user rather than allocated.
fn explicit_node_ports(obj: &Value, preserve_all: bool) -> ExplicitPorts {
    let all_ports = || {
        obj.pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect()
    };
    let annotations = &obj["metadata"]["annotations"];
    if preserve_all || annotations[PRESERVE_NODE_PORTS_ANNOTATION] == "true" {
        return ExplicitPorts {
            ports: all_ports(),
            health_check: true,
        };
    }
    let mut explicit = ExplicitPorts {
        ports: BTreeSet::new(),
        health_check: false,
    };
    // kubectl apply records what the user wrote.
    if let Some(applied) = annotations["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        for port in applied
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if port.get("nodePort").is_some_and(|n| !n.is_null())
                && let Some(n) = port["port"].as_i64()
            {
                explicit.ports.insert(n);
            }
        }
        explicit.health_check |= applied.pointer("/spec/healthCheckNodePort").is_some();
    }
    // Field managers own what their requests set; an allocated port is set by the API
    // server's defaulting, which owns nothing.
    for entry in obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(spec) = entry.pointer("/fieldsV1/f:spec") else {
            continue;
        };
        explicit.health_check |= spec.get("f:healthCheckNodePort").is_some();
        for (key, fields) in spec.get("f:ports").and_then(Value::as_object).into_iter().flatten() {
            if fields.get("f:nodePort").is_none() {
                continue;
            }
            if let Some(port) = key
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str::<Value>(k).ok())
                .and_then(|k| k["port"].as_i64())
            {
                explicit.ports.insert(port);
            }
        }
    }
    explicit
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::test_type as rt;

    fn opts() -> CleanOptions {
        CleanOptions {
            namespaces: NamespaceMap {
                prefix: "r-".into(),
                suffix: String::new(),
                explicit: [("shop".to_string(), "store".to_string())].into(),
                restored: ["shop".to_string(), "db".to_string()].into(),
            },
            storage_classes: [("gp2".to_string(), "gp3".to_string())].into(),
            restore_status: BTreeSet::new(),
            preserve_node_ports: false,
            restore_id: "rst-1".into(),
        }
    }

    #[test]
    fn namespace_map_prefers_explicit_and_rewrites_only_restored_references() {
        let o = opts();
        assert_eq!(o.namespaces.target("shop"), "store");
        assert_eq!(o.namespaces.target("db"), "r-db");
        assert_eq!(o.namespaces.reference("db").as_deref(), Some("r-db"));
        assert_eq!(o.namespaces.reference("kube-system"), None);
    }

    #[test]
    fn metadata_and_status_are_dropped_and_restore_label_added() {
        let cm = rt("", "configmaps", "ConfigMap", true);
        let out = clean(
            &cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "db", "uid": "u",
                "resourceVersion": "5", "generation": 2, "creationTimestamp": "t", "managedFields": [], "selfLink": "/x",
                "deletionTimestamp": "t", "labels": {"app": "x"}, "annotations": {"a": "b"}}, "data": {"k": "v"}, "status": {"x": 1}}),
            &opts(),
        );
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "r-db",
                "labels": {"app": "x", RESTORE_ID_LABEL: "rst-1"}, "annotations": {"a": "b"}}, "data": {"k": "v"}})
        );
        let mut with_status = opts();
        with_status.restore_status.insert("configmaps".into());
        let out = clean(
            &cm,
            json!({"metadata": {"name": "c"}, "status": {"x": 1}}),
            &with_status,
        );
        assert_eq!(out["status"], json!({"x": 1}));
    }

    #[test]
    fn services_lose_allocated_ips_and_ports_only() {
        let svc = rt("", "services", "Service", true);
        let allocated = json!({"metadata": {"name": "s", "namespace": "db", "managedFields": [
                {"manager": "kubectl-create", "fieldsV1": {"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:port": {}}}}}}]},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"],
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 30443}]}});
        let out = clean(&svc, allocated.clone(), &opts());
        assert_eq!(out["spec"].get("clusterIP"), None);
        assert_eq!(out["spec"].get("clusterIPs"), None);
        assert_eq!(out["spec"]["ports"], json!([{"port": 80}, {"port": 443}]));

        // Owned by a manager: explicit.
        let mut managed = allocated.clone();
        managed["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:ports"]["k:{\"port\":443,\"protocol\":\"TCP\"}"] =
            json!({"f:nodePort": {}});
        let out = clean(&svc, managed, &opts());
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80}, {"port": 443, "nodePort": 30443}])
        );

        // last-applied-configuration, the annotation, and the restore option.
        let mut applied = allocated.clone();
        applied["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration":
            "{\"spec\":{\"ports\":[{\"port\":80,\"nodePort\":30080}]}}"});
        assert_eq!(clean(&svc, applied, &opts())["spec"]["ports"][0]["nodePort"], 30080);
        let mut annotated = allocated.clone();
        annotated["metadata"]["annotations"] = json!({PRESERVE_NODE_PORTS_ANNOTATION: "true"});
        assert_eq!(clean(&svc, annotated, &opts())["spec"]["ports"][1]["nodePort"], 30443);
        let mut keep_all = opts();
        keep_all.preserve_node_ports = true;
        assert_eq!(clean(&svc, allocated, &keep_all)["spec"]["ports"][0]["nodePort"], 30080);

        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}});
        assert_eq!(clean(&svc, headless, &opts())["spec"]["clusterIP"], "None");
    }

    #[test]
    fn restore_skips_owned_and_completed_pods_and_jobs() {
        let pods = rt("", "pods", "Pod", true);
        let jobs = rt("batch", "jobs", "Job", true);
        let owned =
            json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": true}]}});
        assert!(restore_skip_reason(&pods, &owned).is_some_and(|r| r.contains("ReplicaSet web-1")));
        let not_controller =
            json!({"metadata": {"ownerReferences": [{"kind": "Thing", "name": "t"}]}, "status": {"phase": "Running"}});
        assert_eq!(restore_skip_reason(&pods, &not_controller), None);
        assert!(restore_skip_reason(&pods, &json!({"status": {"phase": "Succeeded"}})).is_some());
        assert!(restore_skip_reason(&pods, &json!({"status": {"phase": "Failed"}})).is_some());
        assert!(restore_skip_reason(&jobs, &json!({"status": {"completionTime": "2026-01-01T00:00:00Z"}})).is_some());
        assert!(
            restore_skip_reason(
                &jobs,
                &json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}})
            )
            .is_some()
        );
        assert_eq!(restore_skip_reason(&jobs, &json!({"status": {"active": 1}})), None);
    }

    #[test]
    fn references_to_restored_namespaces_are_rewritten() {
        let o = opts();
        let pv = clean(
            &rt("", "persistentvolumes", "PersistentVolume", false),
            json!({"metadata": {"name": "pv1", "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
                "spec": {"storageClassName": "gp2", "claimRef": {"namespace": "shop", "name": "data", "uid": "u", "resourceVersion": "1"},
                "csi": {"driver": "d", "nodeStageSecretRef": {"namespace": "db", "name": "s"}}}}),
            &o,
        );
        assert_eq!(pv["spec"]["claimRef"], json!({"namespace": "store", "name": "data"}));
        assert_eq!(pv["spec"]["csi"]["nodeStageSecretRef"]["namespace"], "r-db");
        assert_eq!(pv["spec"]["storageClassName"], "gp3");
        assert_eq!(pv["metadata"]["annotations"], json!({}));
        assert_eq!(
            pv["metadata"].get("namespace"),
            None,
            "cluster-scoped objects get no namespace"
        );

        let crb = clean(
            &rt(
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
            ),
            json!({"metadata": {"name": "b"}, "subjects": [{"kind": "ServiceAccount", "name": "a", "namespace": "shop"},
                {"kind": "ServiceAccount", "name": "c", "namespace": "kube-system"}]}),
            &o,
        );
        assert_eq!(crb["subjects"][0]["namespace"], "store");
        assert_eq!(crb["subjects"][1]["namespace"], "kube-system");

        let ns = clean(
            &rt("", "namespaces", "Namespace", false),
            json!({"metadata": {"name": "db", "labels": {"kubernetes.io/metadata.name": "db", "team": "x"}}, "spec": {"finalizers": ["kubernetes"]}}),
            &o,
        );
        assert_eq!(ns["metadata"]["name"], "r-db");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "r-db");
        assert_eq!(ns["metadata"]["labels"]["team"], "x");

        let deploy = clean(
            &rt("apps", "deployments", "Deployment", true),
            json!({"metadata": {"name": "w", "namespace": "db"}, "spec": {"template": {"spec": {"affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{"namespaces": ["shop", "other"], "topologyKey": "k"}]}}}}}}),
            &o,
        );
        assert_eq!(
            deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                [0]["namespaces"],
            json!(["store", "other"])
        );

        let sc = clean(
            &rt("storage.k8s.io", "storageclasses", "StorageClass", false),
            json!({"metadata": {"name": "gp2"}, "provisioner": "d",
                "parameters": {"csi.storage.k8s.io/provisioner-secret-namespace": "db", "type": "db"}}),
            &o,
        );
        assert_eq!(
            sc["parameters"]["csi.storage.k8s.io/provisioner-secret-namespace"],
            "r-db"
        );
        assert_eq!(sc["parameters"]["type"], "db");
        assert_eq!(sc["metadata"]["name"], "gp2", "the class object keeps its name");
    }

    #[test]
    fn storage_classes_are_mapped_on_claims_and_templates() {
        let o = opts();
        let pvc = clean(
            &rt("", "persistentvolumeclaims", "PersistentVolumeClaim", true),
            json!({"metadata": {"name": "d", "namespace": "db", "annotations": {"volume.beta.kubernetes.io/storage-class": "gp2",
                "volume.kubernetes.io/selected-node": "node-1"}}, "spec": {"storageClassName": "gp2", "volumeName": "pv1"}}),
            &o,
        );
        assert_eq!(pvc["spec"]["storageClassName"], "gp3");
        assert_eq!(
            pvc["metadata"]["annotations"],
            json!({"volume.beta.kubernetes.io/storage-class": "gp3"})
        );
        let sts = clean(
            &rt("apps", "statefulsets", "StatefulSet", true),
            json!({"metadata": {"name": "s", "namespace": "db"}, "spec": {"volumeClaimTemplates": [
                {"spec": {"storageClassName": "gp2"}}, {"spec": {"storageClassName": "io1"}}]}}),
            &o,
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
            "gp3"
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][1]["spec"]["storageClassName"],
            "io1"
        );
    }

    #[test]
    fn jobs_tokens_and_service_accounts() {
        let o = opts();
        let job = clean(
            &rt("batch", "jobs", "Job", true),
            json!({"metadata": {"name": "j", "namespace": "db"}, "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u", "controller-uid": "u", "job-name": "j"}}}}}),
            &o,
        );
        assert_eq!(job["spec"].get("selector"), None);
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], json!({"job-name": "j"}));

        let token = clean(
            &rt("", "secrets", "Secret", true),
            json!({"metadata": {"name": "t", "namespace": "db", "annotations": {"kubernetes.io/service-account.name": "a",
                "kubernetes.io/service-account.uid": "u"}}, "type": "kubernetes.io/service-account-token",
                "data": {"token": "x", "ca.crt": "y", "extra": "z"}}),
            &o,
        );
        assert_eq!(token["data"], json!({"extra": "z"}));
        assert_eq!(
            token["metadata"]["annotations"],
            json!({"kubernetes.io/service-account.name": "a"})
        );

        let sa = clean(
            &rt("", "serviceaccounts", "ServiceAccount", true),
            json!({"metadata": {"name": "build", "namespace": "db"}, "secrets": [{"name": "build-token-abcde"}, {"name": "registry"}]}),
            &o,
        );
        assert_eq!(sa["secrets"], json!([{"name": "registry"}]));
    }

    #[test]
    fn pods_lose_node_and_priority() {
        let pod = clean(
            &rt("", "pods", "Pod", true),
            json!({"metadata": {"name": "p", "namespace": "db"}, "spec": {"nodeName": "n1", "priority": 1000, "priorityClassName": "high"}}),
            &opts(),
        );
        assert_eq!(pod["spec"], json!({"priorityClassName": "high"}));
    }
}
