//! The agent's install manifest: every object built as a JSON value (no text templating,
//! so nothing a user typed can break out of its field), written as a YAML stream of JSON
//! documents. JSON is a subset of YAML 1.2, so `kubectl apply -f` reads it as is.
//!
//! Every object carries `app.kubernetes.io/part-of: arca`, which is what the documented
//! uninstall selects:
//!
//! ```sh
//! kubectl delete namespace arca-system
//! kubectl delete clusterrole,clusterrolebinding,crd -l app.kubernetes.io/part-of=arca
//! ```

use arca_core::ids::ClusterId;
use arca_core::model::secret::Secret;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "arca-system";
/// The name of the ServiceAccount, ClusterRole(Binding), Secret and Deployment.
pub const NAME: &str = "arca-agent";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const PART_OF: &str = "arca";
/// The port of the agent's `/healthz` and `/readyz` (the probes).
pub const HEALTH_PORT: u16 = 8081;

/// What one cluster's manifest is made of.
pub struct ManifestInput<'a> {
    pub cluster_id: ClusterId,
    /// The Arca API the agent calls (no trailing slash).
    pub api_url: &'a str,
    pub agent_token: &'a Secret,
    pub image: &'a str,
    /// Stamped on the pod template, so re-applying (with its new token) rolls the agent.
    pub installed_at: DateTime<Utc>,
}

fn labels(component: &str) -> Value {
    json!({
        PART_OF_LABEL: PART_OF,
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": component,
    })
}

fn metadata(name: &str, namespaced: bool, component: &str) -> Value {
    let mut m = json!({ "name": name, "labels": labels(component) });
    if namespaced {
        m["namespace"] = json!(NAMESPACE);
    }
    m
}

/// The verbs a restore needs on anything it recreates; a backup only reads.
const READ_WRITE: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The objects, in apply order (the namespace before what lives in it).
pub fn objects(input: &ManifestInput<'_>) -> Vec<Value> {
    let selector = json!({ PART_OF_LABEL: PART_OF, "app.kubernetes.io/name": NAME });
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": metadata(NAMESPACE, false, "namespace"),
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(NAME, true, "agent"),
        }),
        // Broad on purpose, like Velero's and CloudCasa's agents: a backup reads every
        // kind (including CRDs nobody knows in advance) and a restore must recreate any
        // of them. `bind`/`escalate` let a restore recreate RBAC objects that grant
        // more than the verbs above. What the volume work uses is covered by `*` and
        // listed anyway so a reader sees it: snapshots and their contents (the movers'
        // `Retain` imports), PersistentVolumes (a restored volume's reclaim policy and
        // claimRef) and Jobs (the movers, in the agent's own namespace only: their
        // Secrets never go to application namespaces; the `*` rule still lets a restore
        // recreate the application's own Jobs and Secrets there).
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(NAME, false, "rbac"),
            "rules": [
                { "apiGroups": ["*"], "resources": ["*"], "verbs": READ_WRITE },
                {
                    "apiGroups": ["snapshot.storage.k8s.io"],
                    "resources": ["volumesnapshots", "volumesnapshotcontents", "volumesnapshotclasses"],
                    "verbs": READ_WRITE,
                },
                { "apiGroups": [""], "resources": ["persistentvolumes"], "verbs": READ_WRITE },
                { "apiGroups": ["batch"], "resources": ["jobs"], "verbs": READ_WRITE },
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles", "clusterroles"],
                    "verbs": ["bind", "escalate"],
                },
                { "nonResourceURLs": ["/version", "/healthz"], "verbs": ["get"] },
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(NAME, false, "rbac"),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME },
            "subjects": [{ "kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE }],
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(NAME, true, "agent"),
            "type": "Opaque",
            "stringData": {
                "ARCA_API_URL": input.api_url,
                "ARCA_AGENT_TOKEN": input.agent_token.expose(),
                "ARCA_CLUSTER_ID": input.cluster_id.to_string(),
            },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(NAME, true, "agent"),
            "spec": {
                "replicas": 1,
                // One agent per cluster: a second one would supersede the first, so the
                // old pod goes before the new one starts.
                "strategy": { "type": "Recreate" },
                "selector": { "matchLabels": selector },
                "template": {
                    "metadata": {
                        "labels": labels("agent"),
                        "annotations": { "arca.dev/installed-at": input.installed_at.to_rfc3339() },
                    },
                    "spec": {
                        "serviceAccountName": NAME,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "seccompProfile": { "type": "RuntimeDefault" },
                        },
                        "containers": [{
                            "name": "agent",
                            "image": input.image,
                            "args": ["run"],
                            "envFrom": [{ "secretRef": { "name": NAME } }],
                            "env": [
                                { "name": "ARCA_HEALTH_ADDR", "value": format!("0.0.0.0:{HEALTH_PORT}") },
                                // Mover Jobs run the agent's own image (pulled by the same
                                // digest, so agent and movers are one build).
                                { "name": "ARCA_MOVER_IMAGE", "value": input.image },
                            ],
                            "ports": [{ "name": "health", "containerPort": HEALTH_PORT }],
                            "resources": {
                                "requests": { "cpu": "100m", "memory": "128Mi" },
                                "limits": { "cpu": "1", "memory": "512Mi" },
                            },
                            "livenessProbe": {
                                "httpGet": { "path": "/healthz", "port": "health" },
                                "initialDelaySeconds": 10,
                                "periodSeconds": 20,
                            },
                            "readinessProbe": {
                                "httpGet": { "path": "/readyz", "port": "health" },
                                "periodSeconds": 10,
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": { "drop": ["ALL"] },
                            },
                        }],
                    },
                },
            },
        }),
    ]
}

/// The objects as one YAML stream (`---` between JSON documents).
pub fn to_yaml(cluster_id: &ClusterId, objects: &[Value]) -> Result<String, serde_json::Error> {
    let mut out = format!(
        "# The Arca agent of cluster {cluster_id}. Apply with `kubectl apply -f`; re-apply a new manifest to \
         upgrade.\n# Uninstall:\n#   kubectl delete namespace {NAMESPACE}\n#   kubectl delete \
         clusterrole,clusterrolebinding,crd -l {PART_OF_LABEL}={PART_OF}\n"
    );
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(object)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render() -> (Secret, Vec<Value>) {
        let token = Secret::from_presented("arcagent_TOKEN\"with'quotes\n");
        let objects = objects(&ManifestInput {
            cluster_id: ClusterId::new(),
            api_url: "https://arca.example.com",
            agent_token: &token,
            image: "registry.example.com/arca-agent:1.2.3",
            installed_at: DateTime::UNIX_EPOCH,
        });
        (token, objects)
    }

    #[test]
    fn every_object_is_labelled_and_the_kinds_are_these() {
        let (_, objects) = render();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Secret",
                "Deployment"
            ]
        );
        for o in &objects {
            assert_eq!(o["metadata"]["labels"][PART_OF_LABEL], PART_OF, "{o}");
        }
        let deployment = &objects[5];
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example.com/arca-agent:1.2.3");
        // Movers run the agent's image.
        let mover = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "ARCA_MOVER_IMAGE");
        assert_eq!(mover.unwrap()["value"], "registry.example.com/arca-agent:1.2.3");
        assert!(container["resources"]["limits"]["memory"].is_string());
        assert!(container["livenessProbe"]["httpGet"].is_object());
        assert!(container["readinessProbe"]["httpGet"].is_object());
        // The selector matches the pod template's labels.
        for (k, v) in deployment["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&deployment["spec"]["template"]["metadata"]["labels"][k], v);
        }
    }

    #[test]
    fn the_token_is_only_in_the_secret_and_survives_hostile_characters() {
        let (token, objects) = render();
        let yaml = to_yaml(&ClusterId::new(), &objects).unwrap();
        assert_eq!(yaml.matches("arcagent_TOKEN").count(), 1, "{yaml}");
        // Each document parses back to the same object: nothing leaked out of its field.
        let docs: Vec<Value> = yaml
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(docs, objects);
        assert_eq!(docs[4]["stringData"]["ARCA_AGENT_TOKEN"], token.expose());
        assert_eq!(docs[4]["stringData"]["ARCA_API_URL"], "https://arca.example.com");
    }
}
