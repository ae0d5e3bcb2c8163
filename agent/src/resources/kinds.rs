//! Data tables about resource kinds: what is never backed up, which objects are skipped
//! and why, and the default restore order. Kept as data so a reader sees every rule in one
//! place and a restore can override the order.

use serde_json::Value;

use super::ResourceType;

/// Resource types never backed up (`plural.group`), with the reason recorded in the
/// backup report. Types the API server does not let us `list` (TokenReview,
/// SubjectAccessReview, Binding, ...) are skipped too, with reason [`NOT_LISTABLE`].
pub const NEVER_BACKED_UP: &[(&str, &str)] = &[
    (
        "nodes",
        "Nodes belong to the cluster's machines; the target registers its own",
    ),
    ("events", "Events are a transient log, not desired state"),
    ("events.events.k8s.io", "Events are a transient log, not desired state"),
    (
        "volumeattachments.storage.k8s.io",
        "attachments of volumes to nodes are made by the attach/detach controller",
    ),
    ("csinodes.storage.k8s.io", "CSINodes are written by each node's kubelet"),
    ("componentstatuses", "computed by the API server on read"),
    (
        "ipaddresses.networking.k8s.io",
        "Service cluster-IP allocations; new ones are made when Services are created",
    ),
];

pub const NOT_LISTABLE: &str = "the API server does not allow listing this type";

/// Why a whole type is not backed up, if it is not.
pub fn never_backed_up(group_resource: &str) -> Option<&'static str> {
    NEVER_BACKED_UP
        .iter()
        .find(|(gr, _)| *gr == group_resource)
        .map(|(_, reason)| *reason)
}

/// The label every object of the agent's install carries (manifest and Helm chart).
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const PART_OF: &str = "arca";

/// Why the agent's own objects are never backed up nor restored.
pub const AGENT_OWN: &str = "the Arca agent's own object: never backed up or restored (its token would let \
                             another cluster act as this one)";

/// Why one object of a backed-up type is left out, if it is.
pub fn skip_object(rt: &ResourceType, obj: &Value) -> Option<&'static str> {
    let gr = rt.group_resource();
    let meta = &obj["metadata"];
    if meta["labels"][PART_OF_LABEL] == PART_OF {
        return Some(AGENT_OWN);
    }
    match gr.as_str() {
        "secrets" if obj["type"] == "kubernetes.io/service-account-token" => {
            // The legacy token controller names the Secrets it generates `<sa>-token-<suffix>`
            // and fills them with a token signed by this cluster's key: useless elsewhere and
            // re-made on demand. A token Secret a user created by hand is kept (its token
            // data is dropped on restore, see clean.rs).
            let sa = meta["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .unwrap_or_default();
            let name = meta["name"].as_str().unwrap_or_default();
            (!sa.is_empty() && name.starts_with(&format!("{sa}-token-")))
                .then_some("auto-generated service-account token Secret")
        }
        "leases.coordination.k8s.io" => {
            if meta["namespace"] == "kube-node-lease" {
                Some("node heartbeat Lease")
            } else if meta["labels"]["apiserver.kubernetes.io/identity"].is_string() {
                Some("API server identity heartbeat Lease")
            } else {
                None
            }
        }
        "apiservices.apiregistration.k8s.io" if obj["spec"]["service"].is_null() => {
            Some("local APIService, served by the API server itself")
        }
        "endpointslices.discovery.k8s.io"
            if meta["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io" =>
        {
            Some("managed by the EndpointSlice controller, re-made from the Service")
        }
        _ => None,
    }
}

/// Marks the place of every type not named in an order table.
pub const EVERYTHING_ELSE: &str = "*";

/// Default restore order, first to last. CRDs first (custom resources need them, and the
/// restore waits until each is Established); then what others refer to; workload
/// controllers last, so that what their pods mount exists when they start.
pub const DEFAULT_RESTORE_ORDER: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "secrets",
    "configmaps",
    "limitranges",
    "resourcequotas",
    "priorityclasses.scheduling.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    // Pods before controllers: a controller would otherwise create its own pods first.
    "pods",
    // Endpoints before Services, as Velero does, so a selector-less Service keeps its endpoints.
    "endpoints",
    "services",
    EVERYTHING_ELSE,
    "cronjobs.batch",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    // A StatefulSet's or DaemonSet's revision history after its owner: created with the
    // owner's new uid in place, never patched later (a ControllerRevision's `data` is
    // immutable, and the API server compares it byte for byte after any patch's round trip).
    "controllerrevisions.apps",
    "replicationcontrollers",
    "replicasets.apps",
    "jobs.batch",
];

/// The position of a type in `order`; unknown types take the place of [`EVERYTHING_ELSE`]
/// (or go last if the table has no such marker).
pub fn restore_rank(order: &[String], group_resource: &str) -> usize {
    order
        .iter()
        .position(|gr| gr == group_resource)
        .or_else(|| order.iter().position(|gr| gr == EVERYTHING_ELSE))
        .unwrap_or(order.len())
}

pub fn default_restore_order() -> Vec<String> {
    DEFAULT_RESTORE_ORDER.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::test_type as rt;

    #[test]
    fn non_restorable_types_are_named() {
        for gr in [
            "nodes",
            "events",
            "events.events.k8s.io",
            "volumeattachments.storage.k8s.io",
            "csinodes.storage.k8s.io",
        ] {
            assert!(never_backed_up(gr).is_some(), "{gr}");
        }
        assert_eq!(never_backed_up("configmaps"), None);
        assert_eq!(never_backed_up("deployments.apps"), None);
    }

    #[test]
    fn the_agents_own_objects_are_never_backed_up() {
        let labelled = json!({"metadata": {"name": "arca-agent", "labels": {"app.kubernetes.io/part-of": "arca"}}});
        for r in [
            rt("", "secrets", "Secret", true),
            rt("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false),
            rt("apps", "deployments", "Deployment", true),
        ] {
            assert_eq!(skip_object(&r, &labelled), Some(AGENT_OWN), "{}", r.plural);
        }
        let other = json!({"metadata": {"name": "web", "labels": {"app.kubernetes.io/part-of": "shop"}}});
        assert_eq!(
            skip_object(&rt("apps", "deployments", "Deployment", true), &other),
            None
        );
    }

    #[test]
    fn only_generated_token_secrets_and_heartbeats_are_skipped() {
        let secrets = rt("", "secrets", "Secret", true);
        let generated = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "build-token-x7k2p", "annotations": {"kubernetes.io/service-account.name": "build"}}});
        assert!(skip_object(&secrets, &generated).is_some());
        let by_hand = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "ci-long-lived", "annotations": {"kubernetes.io/service-account.name": "build"}}});
        assert_eq!(skip_object(&secrets, &by_hand), None);
        let opaque = json!({"type": "Opaque", "metadata": {"name": "build-token-x7k2p"}});
        assert_eq!(skip_object(&secrets, &opaque), None);

        let leases = rt("coordination.k8s.io", "leases", "Lease", true);
        assert!(
            skip_object(
                &leases,
                &json!({"metadata": {"namespace": "kube-node-lease", "name": "n1"}})
            )
            .is_some()
        );
        assert_eq!(
            skip_object(&leases, &json!({"metadata": {"namespace": "app", "name": "leader"}})),
            None
        );
        let apiservices = rt("apiregistration.k8s.io", "apiservices", "APIService", false);
        assert!(skip_object(&apiservices, &json!({"metadata": {"name": "v1.apps"}, "spec": {}})).is_some());
        assert_eq!(
            skip_object(
                &apiservices,
                &json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"service": {"name": "m", "namespace": "x"}}})
            ),
            None
        );
    }

    #[test]
    fn order_puts_crds_first_controllers_last_and_unknowns_in_between() {
        let order = default_restore_order();
        let rank = |gr: &str| restore_rank(&order, gr);
        assert!(rank("customresourcedefinitions.apiextensions.k8s.io") < rank("namespaces"));
        assert!(rank("namespaces") < rank("storageclasses.storage.k8s.io"));
        assert!(rank("persistentvolumes") < rank("persistentvolumeclaims"));
        assert!(rank("persistentvolumeclaims") < rank("serviceaccounts"));
        assert!(rank("limitranges") < rank("widgets.example.com"));
        assert!(rank("widgets.example.com") < rank("deployments.apps"));
        assert_eq!(rank("widgets.example.com"), rank("ingresses.networking.k8s.io"));
        // Revision history follows the controllers that own it (found on a real node).
        assert!(rank("statefulsets.apps") < rank("controllerrevisions.apps"));
        assert!(rank("daemonsets.apps") < rank("controllerrevisions.apps"));
        // An override without the marker sends unknown types last.
        let custom = vec!["configmaps".to_string(), "namespaces".to_string()];
        assert_eq!(restore_rank(&custom, "configmaps"), 0);
        assert_eq!(restore_rank(&custom, "secrets"), 2);
    }
}
