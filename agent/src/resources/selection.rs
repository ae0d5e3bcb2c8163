//! Which objects a backup takes: the product's four selection modes and the rules that
//! associate cluster-scoped objects with selected namespaces (docs/resource-selection.md).
//!
//! The logic is pure: [`Associations`] is fed the namespace-scoped objects a backup keeps,
//! then asked about each cluster-scoped object, in the stages of [`cluster_stage`] (a
//! PersistentVolume must be decided before the StorageClass it names).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ResourceType;

/// What a backup takes. Mirrors `arca_core::model::backup::Selection` (converted with `From`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// Every namespace-scoped and every cluster-scoped resource.
    #[serde(default)]
    pub full_cluster: bool,
    /// Namespace-scoped resources of these namespaces, plus the cluster-scoped resources
    /// associated with them. Ignored with `full_cluster`.
    #[serde(default)]
    pub namespaces: BTreeSet<String>,
    /// Every pair must be present (AND), on namespace- and cluster-scoped objects alike.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Only these types (`deployments`, `deployments.apps`, `Deployment`); empty: all.
    #[serde(default)]
    pub include_kinds: Vec<String>,
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
}

impl From<&arca_core::model::backup::Selection> for Selection {
    fn from(s: &arca_core::model::backup::Selection) -> Self {
        Selection {
            full_cluster: s.full_cluster,
            namespaces: s.namespaces.iter().cloned().collect(),
            labels: s.labels.clone(),
            include_kinds: s.include_kinds.clone(),
            exclude_kinds: s.exclude_kinds.clone(),
        }
    }
}

impl Selection {
    /// Namespace mode ("Select namespaces", alone or with labels). Without it, every
    /// namespace and every cluster-scoped object is a candidate ("Full cluster", or
    /// "Select labels" alone), filtered by the labels if any.
    pub fn by_namespace(&self) -> bool {
        !self.full_cluster && !self.namespaces.is_empty()
    }

    /// The labels as a server-side label selector, so unmatched objects never leave the
    /// API server.
    pub fn label_selector(&self) -> Option<String> {
        (!self.labels.is_empty()).then(|| {
            self.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    pub fn matches_labels(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.labels.iter().all(|(k, v)| labels[k].as_str() == Some(v.as_str()))
    }

    /// Whether the include/exclude lists let this type in. A name matches by plural,
    /// `plural.group` or Kind (case-insensitive).
    pub fn type_allowed(&self, rt: &ResourceType) -> bool {
        let names = |list: &[String]| {
            list.iter().any(|k| {
                k.eq_ignore_ascii_case(&rt.plural)
                    || k.eq_ignore_ascii_case(&rt.group_resource())
                    || k.eq_ignore_ascii_case(&rt.kind)
            })
        };
        (self.include_kinds.is_empty() || names(&self.include_kinds)) && !names(&self.exclude_kinds)
    }
}

/// Cluster-scoped types are decided in two stages: stage 0 objects name stage 1 objects
/// (a PV its StorageClass, a ClusterRoleBinding its ClusterRole, a VolumeSnapshotContent
/// its VolumeSnapshotClass).
pub fn cluster_stage(rt: &ResourceType) -> u8 {
    match rt.group_resource().as_str() {
        "persistentvolumes"
        | "clusterrolebindings.rbac.authorization.k8s.io"
        | "volumesnapshotcontents.snapshot.storage.k8s.io" => 0,
        _ => 1,
    }
}

/// Names of cluster-scoped objects that selected namespace-scoped objects refer to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Associations {
    pub namespaces: BTreeSet<String>,
    /// `namespace/name` of every selected PVC.
    pub pvcs: BTreeSet<String>,
    pub pvs: BTreeSet<String>,
    pub storage_classes: BTreeSet<String>,
    pub snapshot_classes: BTreeSet<String>,
    pub snapshot_contents: BTreeSet<String>,
    /// CRD names (`plural.group`) of the custom resources found.
    pub crds: BTreeSet<String>,
    pub cluster_roles: BTreeSet<String>,
    pub priority_classes: BTreeSet<String>,
    pub ingress_classes: BTreeSet<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn insert(set: &mut BTreeSet<String>, value: Option<&str>) {
    if let Some(v) = value {
        set.insert(v.to_string());
    }
}

/// The pod spec of a Pod or of a workload's pod template.
pub fn pod_spec<'a>(group_resource: &str, obj: &'a Value) -> Option<&'a Value> {
    let spec = match group_resource {
        "pods" => obj.get("spec"),
        "cronjobs.batch" => obj.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => obj.pointer("/spec/template/spec"),
    };
    spec.filter(|s| s.is_object())
}

/// Custom resource groups always contain a dot; built-in groups without one (core,
/// `apps`, `batch`) cannot be served by a CRD. Groups with a dot are noted whatever they
/// are: only a CRD of that exact name is associated, and `snapshot.storage.k8s.io` is one.
fn may_be_custom(group: &str) -> bool {
    group.contains('.')
}

impl Associations {
    pub fn new(namespaces: &BTreeSet<String>) -> Self {
        Associations {
            namespaces: namespaces.clone(),
            ..Default::default()
        }
    }

    /// Records what a selected namespace-scoped object refers to.
    pub fn note_namespaced(&mut self, rt: &ResourceType, obj: &Value) {
        let gr = rt.group_resource();
        if may_be_custom(&rt.group) {
            self.crds.insert(gr.clone());
        }
        if let Some(spec) = pod_spec(&gr, obj) {
            insert(&mut self.priority_classes, str_at(spec, &["priorityClassName"]));
        }
        match gr.as_str() {
            "persistentvolumeclaims" => {
                let ns = str_at(obj, &["metadata", "namespace"]).unwrap_or_default();
                let name = str_at(obj, &["metadata", "name"]).unwrap_or_default();
                self.pvcs.insert(format!("{ns}/{name}"));
                insert(&mut self.pvs, str_at(obj, &["spec", "volumeName"]));
                self.note_pvc_spec_class(obj);
            }
            "statefulsets.apps" => {
                for template in obj
                    .pointer("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.note_pvc_spec_class(template);
                }
            }
            "ingresses.networking.k8s.io" => {
                insert(&mut self.ingress_classes, str_at(obj, &["spec", "ingressClassName"]));
                insert(
                    &mut self.ingress_classes,
                    str_at(obj, &["metadata", "annotations", "kubernetes.io/ingress.class"]),
                );
            }
            "volumesnapshots.snapshot.storage.k8s.io" => {
                insert(
                    &mut self.snapshot_classes,
                    str_at(obj, &["spec", "volumeSnapshotClassName"]),
                );
                insert(
                    &mut self.snapshot_contents,
                    str_at(obj, &["status", "boundVolumeSnapshotContentName"]),
                );
                insert(
                    &mut self.snapshot_contents,
                    str_at(obj, &["spec", "source", "volumeSnapshotContentName"]),
                );
            }
            "rolebindings.rbac.authorization.k8s.io" if str_at(obj, &["roleRef", "kind"]) == Some("ClusterRole") => {
                insert(&mut self.cluster_roles, str_at(obj, &["roleRef", "name"]));
            }
            _ => {}
        }
    }

    fn note_pvc_spec_class(&mut self, pvc: &Value) {
        insert(&mut self.storage_classes, str_at(pvc, &["spec", "storageClassName"]));
        insert(
            &mut self.storage_classes,
            str_at(
                pvc,
                &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"],
            ),
        );
    }

    /// Whether a cluster-scoped object is associated with the selected namespaces; if it
    /// is, what it refers to is recorded for the next stage. Call for every stage-0 object
    /// before any stage-1 object ([`cluster_stage`]).
    pub fn associate_cluster(&mut self, rt: &ResourceType, obj: &Value) -> bool {
        let name = str_at(obj, &["metadata", "name"]).unwrap_or_default();
        match rt.group_resource().as_str() {
            "namespaces" => self.namespaces.contains(name),
            "persistentvolumes" => {
                let claim = match (
                    str_at(obj, &["spec", "claimRef", "namespace"]),
                    str_at(obj, &["spec", "claimRef", "name"]),
                ) {
                    (Some(ns), Some(claim)) => self.pvcs.contains(&format!("{ns}/{claim}")),
                    _ => false,
                };
                let associated = claim || self.pvs.contains(name);
                if associated {
                    insert(&mut self.storage_classes, str_at(obj, &["spec", "storageClassName"]));
                }
                associated
            }
            "storageclasses.storage.k8s.io" => self.storage_classes.contains(name),
            "volumesnapshotcontents.snapshot.storage.k8s.io" => {
                let associated = self.snapshot_contents.contains(name)
                    || str_at(obj, &["spec", "volumeSnapshotRef", "namespace"])
                        .is_some_and(|ns| self.namespaces.contains(ns));
                if associated {
                    insert(
                        &mut self.snapshot_classes,
                        str_at(obj, &["spec", "volumeSnapshotClassName"]),
                    );
                }
                associated
            }
            "volumesnapshotclasses.snapshot.storage.k8s.io" => self.snapshot_classes.contains(name),
            "customresourcedefinitions.apiextensions.k8s.io" => self.crds.contains(name),
            "clusterrolebindings.rbac.authorization.k8s.io" => {
                let binds_ours = obj["subjects"].as_array().into_iter().flatten().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["namespace"].as_str().is_some_and(|ns| self.namespaces.contains(ns))
                });
                if binds_ours && str_at(obj, &["roleRef", "kind"]) == Some("ClusterRole") {
                    insert(&mut self.cluster_roles, str_at(obj, &["roleRef", "name"]));
                }
                binds_ours
            }
            "clusterroles.rbac.authorization.k8s.io" => self.cluster_roles.contains(name),
            "priorityclasses.scheduling.k8s.io" => self.priority_classes.contains(name),
            "ingressclasses.networking.k8s.io" => self.ingress_classes.contains(name),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::test_type as rt;

    fn selected() -> Associations {
        Associations::new(&["shop".to_string()].into())
    }

    #[test]
    fn modes_and_label_selector() {
        let mut s = Selection::default();
        assert!(!s.by_namespace());
        assert_eq!(s.label_selector(), None);
        s.namespaces.insert("shop".into());
        assert!(s.by_namespace());
        s.full_cluster = true;
        assert!(!s.by_namespace(), "full cluster wins");
        s.labels.insert("env".into(), "prod".into());
        s.labels.insert("app".into(), "web".into());
        assert_eq!(s.label_selector().as_deref(), Some("app=web,env=prod"));
        assert!(s.matches_labels(&json!({"metadata": {"labels": {"app": "web", "env": "prod", "x": "y"}}})));
        assert!(
            !s.matches_labels(&json!({"metadata": {"labels": {"app": "web"}}})),
            "AND, not OR"
        );
        assert!(!s.matches_labels(&json!({"metadata": {"labels": {"app": "web", "env": "dev"}}})));
        assert!(!s.matches_labels(&json!({"metadata": {}})));
    }

    #[test]
    fn include_and_exclude_kinds() {
        let deploy = rt("apps", "deployments", "Deployment", true);
        let cm = rt("", "configmaps", "ConfigMap", true);
        let s = Selection {
            include_kinds: vec!["deployments.apps".into(), "ConfigMap".into()],
            ..Default::default()
        };
        assert!(s.type_allowed(&deploy) && s.type_allowed(&cm));
        assert!(!s.type_allowed(&rt("", "secrets", "Secret", true)));
        let s = Selection {
            exclude_kinds: vec!["configmaps".into()],
            ..Default::default()
        };
        assert!(s.type_allowed(&deploy) && !s.type_allowed(&cm));
    }

    #[test]
    fn pvs_and_their_storage_classes_follow_selected_pvcs() {
        let mut a = selected();
        a.note_namespaced(
            &rt("", "persistentvolumeclaims", "PersistentVolumeClaim", true),
            &json!({"metadata": {"namespace": "shop", "name": "data"}, "spec": {"volumeName": "pv-a", "storageClassName": "fast"}}),
        );
        let pv = rt("", "persistentvolumes", "PersistentVolume", false);
        let sc = rt("storage.k8s.io", "storageclasses", "StorageClass", false);
        assert_eq!(cluster_stage(&pv), 0);
        assert_eq!(cluster_stage(&sc), 1);
        // Bound by name, and by claimRef alone (a PVC whose volumeName is not yet set).
        assert!(a.associate_cluster(
            &pv,
            &json!({"metadata": {"name": "pv-a"}, "spec": {"storageClassName": "fast"}})
        ));
        assert!(a.associate_cluster(
            &pv,
            &json!({"metadata": {"name": "pv-b"}, "spec": {"claimRef": {"namespace": "shop", "name": "data"}, "storageClassName": "slow"}})
        ));
        assert!(!a.associate_cluster(
            &pv,
            &json!({"metadata": {"name": "pv-c"}, "spec": {"claimRef": {"namespace": "other", "name": "data"}, "storageClassName": "cold"}})
        ));
        assert!(a.associate_cluster(&sc, &json!({"metadata": {"name": "fast"}})));
        assert!(
            a.associate_cluster(&sc, &json!({"metadata": {"name": "slow"}})),
            "class of an associated PV"
        );
        assert!(!a.associate_cluster(&sc, &json!({"metadata": {"name": "cold"}})));
    }

    #[test]
    fn statefulset_claim_templates_bring_their_storage_class() {
        let mut a = selected();
        a.note_namespaced(
            &rt("apps", "statefulsets", "StatefulSet", true),
            &json!({"spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "db-class"}}],
                "template": {"spec": {"priorityClassName": "critical"}}}}),
        );
        assert!(a.storage_classes.contains("db-class"));
        assert!(a.priority_classes.contains("critical"));
    }

    #[test]
    fn rbac_association() {
        let mut a = selected();
        a.note_namespaced(
            &rt("rbac.authorization.k8s.io", "rolebindings", "RoleBinding", true),
            &json!({"roleRef": {"kind": "ClusterRole", "name": "via-rolebinding"}}),
        );
        let crb = rt(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        );
        let cr = rt("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false);
        assert!(a.associate_cluster(
            &crb,
            &json!({"metadata": {"name": "b1"}, "roleRef": {"kind": "ClusterRole", "name": "bound"},
                "subjects": [{"kind": "User", "name": "x"}, {"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]})
        ));
        assert!(!a.associate_cluster(
            &crb,
            &json!({"metadata": {"name": "b2"}, "roleRef": {"kind": "ClusterRole", "name": "elsewhere"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "other"}, {"kind": "Group", "name": "shop"}]})
        ));
        assert!(a.associate_cluster(&cr, &json!({"metadata": {"name": "bound"}})));
        assert!(a.associate_cluster(&cr, &json!({"metadata": {"name": "via-rolebinding"}})));
        assert!(!a.associate_cluster(&cr, &json!({"metadata": {"name": "elsewhere"}})));
    }

    #[test]
    fn crds_priority_ingress_and_snapshot_classes() {
        let mut a = selected();
        a.note_namespaced(&rt("shop.example.com", "widgets", "Widget", true), &json!({}));
        a.note_namespaced(&rt("apps", "deployments", "Deployment", true), &json!({}));
        a.note_namespaced(
            &rt("", "pods", "Pod", true),
            &json!({"spec": {"priorityClassName": "high"}}),
        );
        a.note_namespaced(
            &rt("batch", "cronjobs", "CronJob", true),
            &json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"priorityClassName": "nightly"}}}}}}),
        );
        a.note_namespaced(
            &rt("networking.k8s.io", "ingresses", "Ingress", true),
            &json!({"spec": {"ingressClassName": "nginx"}}),
        );
        a.note_namespaced(
            &rt("snapshot.storage.k8s.io", "volumesnapshots", "VolumeSnapshot", true),
            &json!({"spec": {"volumeSnapshotClassName": "snap"}, "status": {"boundVolumeSnapshotContentName": "content-1"}}),
        );
        let crd = rt(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        );
        assert!(a.associate_cluster(&crd, &json!({"metadata": {"name": "widgets.shop.example.com"}})));
        assert!(!a.associate_cluster(&crd, &json!({"metadata": {"name": "gadgets.shop.example.com"}})));
        assert!(
            !a.crds.contains("deployments.apps"),
            "built-in groups are not custom resources"
        );
        let pc = rt("scheduling.k8s.io", "priorityclasses", "PriorityClass", false);
        assert!(a.associate_cluster(&pc, &json!({"metadata": {"name": "high"}})));
        assert!(a.associate_cluster(&pc, &json!({"metadata": {"name": "nightly"}})));
        assert!(!a.associate_cluster(&pc, &json!({"metadata": {"name": "low"}})));
        let ic = rt("networking.k8s.io", "ingressclasses", "IngressClass", false);
        assert!(a.associate_cluster(&ic, &json!({"metadata": {"name": "nginx"}})));
        assert!(!a.associate_cluster(&ic, &json!({"metadata": {"name": "traefik"}})));
        let content = rt(
            "snapshot.storage.k8s.io",
            "volumesnapshotcontents",
            "VolumeSnapshotContent",
            false,
        );
        let class = rt(
            "snapshot.storage.k8s.io",
            "volumesnapshotclasses",
            "VolumeSnapshotClass",
            false,
        );
        assert!(a.associate_cluster(
            &content,
            &json!({"metadata": {"name": "content-2"}, "spec": {"volumeSnapshotRef": {"namespace": "shop"}, "volumeSnapshotClassName": "snap-2"}})
        ));
        assert!(a.associate_cluster(&content, &json!({"metadata": {"name": "content-1"}, "spec": {}})));
        assert!(!a.associate_cluster(
            &content,
            &json!({"metadata": {"name": "content-3"}, "spec": {"volumeSnapshotRef": {"namespace": "other"}}})
        ));
        assert!(a.associate_cluster(&class, &json!({"metadata": {"name": "snap"}})));
        assert!(a.associate_cluster(&class, &json!({"metadata": {"name": "snap-2"}})));
        assert!(!a.associate_cluster(&class, &json!({"metadata": {"name": "snap-3"}})));
        let ns = rt("", "namespaces", "Namespace", false);
        assert!(a.associate_cluster(&ns, &json!({"metadata": {"name": "shop"}})));
        assert!(!a.associate_cluster(&ns, &json!({"metadata": {"name": "other"}})));
        let node_like = rt("example.com", "clusterthings", "ClusterThing", false);
        assert!(!a.associate_cluster(&node_like, &json!({"metadata": {"name": "shop"}})));
    }
}
