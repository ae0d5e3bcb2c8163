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
/// The name of the restore ClusterRole(Binding): the write verbs a restore needs.
pub const RESTORE_NAME: &str = "arca-agent-restore";
/// The ClusterRole that lets backup hooks run commands in Pods.
pub const HOOKS_NAME: &str = "arca-agent-hooks";
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
    /// What a restore may write (the backup role is always there).
    pub rbac: &'a AgentRbac,
}

/// The agent's RBAC choices (issue #17, "Least privilege"). A backup needs to read every
/// kind and write only its volume snapshots and, in its own namespace, its movers; a
/// restore needs to write whatever it recreates. So the restore's write verbs are a
/// ClusterRole of their own ([`RESTORE_NAME`]), which an install can leave out
/// (backup-only clusters) or limit to some kinds. The agent checks, before a restore
/// creates anything, that it may write every kind the restore holds, and fails the job
/// naming the missing permission otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentRbac {
    /// No restore role (`?restore=false`; chart `rbac.restore: false`).
    pub backup_only: bool,
    /// The kinds a restore may write (`?restoreKinds=apps/deployments,configmaps`; chart
    /// `rbac.restoreKinds`); empty: every kind.
    pub restore_kinds: Vec<RestoreKind>,
    /// No hooks role (`?hooks=false`; chart `rbac.hooks: false`): backup hooks cannot
    /// exec in Pods, and a backup that has any fails naming the missing permission.
    pub without_hooks: bool,
}

/// A kind a restore may write: an API group (empty for the core group) and a resource
/// (the plural, as RBAC names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreKind {
    pub group: String,
    pub resource: String,
}

/// How many kinds a limited restore role may list (a longer list is a mistake, and
/// the manifest and the ClusterRole stay small).
pub const MAX_RESTORE_KINDS: usize = 100;

impl RestoreKind {
    /// `group/resource`, or `resource` for the core group: lower-case, as RBAC rules name
    /// them (`apps/deployments`, `configmaps`, `rbac.authorization.k8s.io/roles`). No
    /// wildcard: leave the list empty for every kind.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (group, resource) = text.rsplit_once('/').unwrap_or(("", text));
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        let group_ok = group.is_empty() || (group.len() <= 253 && group.split('.').all(label));
        if !group_ok || !label(resource) || (text.contains('/') && group.is_empty()) {
            return Err(format!(
                "{text:?} is not a kind a restore may write: give group/resource in lower case, e.g. apps/deployments, \
                 or the resource alone for the core group, e.g. configmaps"
            ));
        }
        Ok(RestoreKind {
            group: group.to_string(),
            resource: resource.to_string(),
        })
    }

    /// Comma-separated kinds (blanks around them ignored); duplicates are dropped.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let mut kinds: Vec<RestoreKind> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let kind = Self::parse(item)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.len() > MAX_RESTORE_KINDS {
            return Err(format!("{} kinds; at most {MAX_RESTORE_KINDS}", kinds.len()));
        }
        Ok(kinds)
    }
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

/// What a backup does to every kind: read it.
pub const READ: [&str; 3] = ["get", "list", "watch"];
/// What a restore does to the kinds it recreates (update and patch: the `update`
/// policy and re-linking owners; delete: a volume it failed to bind).
pub const RESTORE_VERBS: [&str; 4] = ["create", "update", "patch", "delete"];

/// The backup ClusterRole's rules: read everything; write only the volume snapshots a
/// backup takes (next to each claim, and their contents) and deletes with its backups.
fn backup_rules() -> Value {
    json!([
        { "apiGroups": ["*"], "resources": ["*"], "verbs": READ },
        {
            "apiGroups": ["snapshot.storage.k8s.io"],
            "resources": ["volumesnapshots", "volumesnapshotcontents"],
            "verbs": ["create", "delete"],
        },
        { "nonResourceURLs": ["/version", "/healthz"], "verbs": ["get"] },
    ])
}

/// The Role in the agent's own namespace: the volume movers (a Job, its Secret with the
/// repository's credentials, renewed in place, and the claim it reads or fills). These
/// never go to application namespaces.
fn mover_rules() -> Value {
    json!([
        { "apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete"] },
        { "apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch", "delete"] },
        { "apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create", "delete"] },
    ])
}

/// The hooks ClusterRole's rules: exec in Pods (`create`, and `get` for API servers
/// that still authorize a WebSocket exec as a GET).
fn hooks_rules() -> Value {
    json!([{ "apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"] }])
}

/// The restore ClusterRole's rules: the write verbs on every kind, or on the listed ones.
/// `bind`/`escalate` let a restore recreate RBAC objects that grant more than the agent
/// has; they come only with every kind, or when the list has RBAC kinds.
fn restore_rules(kinds: &[RestoreKind]) -> Value {
    let rbac = json!({
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "clusterroles"],
        "verbs": ["bind", "escalate"],
    });
    if kinds.is_empty() {
        return json!([{ "apiGroups": ["*"], "resources": ["*"], "verbs": RESTORE_VERBS }, rbac]);
    }
    let mut rules: Vec<Value> = kinds
        .iter()
        .map(|k| json!({ "apiGroups": [k.group], "resources": [k.resource], "verbs": RESTORE_VERBS }))
        .collect();
    if kinds.iter().any(|k| k.group == "rbac.authorization.k8s.io") {
        rules.push(rbac);
    }
    Value::Array(rules)
}

/// A `ClusterRole` or (in the agent's namespace) `Role` named `name`, and its binding to
/// the agent's ServiceAccount.
fn role_with_binding(kind: &str, name: &str, rules: Value) -> [Value; 2] {
    let namespaced = kind == "Role";
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": metadata(name, namespaced, "rbac"),
            "rules": rules,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": format!("{kind}Binding"),
            "metadata": metadata(name, namespaced, "rbac"),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name },
            "subjects": [{ "kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE }],
        }),
    ]
}

/// The objects, in apply order (the namespace before what lives in it).
pub fn objects(input: &ManifestInput<'_>) -> Vec<Value> {
    let selector = json!({ PART_OF_LABEL: PART_OF, "app.kubernetes.io/name": NAME });
    let mut objects = vec![
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
    ];
    // Backups: read every kind (including CRDs nobody knows in advance), write only
    // volume snapshots (see `backup_rules`).
    objects.extend(role_with_binding("ClusterRole", NAME, backup_rules()));
    // The movers, in the agent's namespace only.
    objects.extend(role_with_binding("Role", NAME, mover_rules()));
    // Backup hooks: exec in Pods, unless the install leaves it out.
    if !input.rbac.without_hooks {
        objects.extend(role_with_binding("ClusterRole", HOOKS_NAME, hooks_rules()));
    }
    // Restores: the write verbs, unless this is a backup-only install.
    if !input.rbac.backup_only {
        objects.extend(role_with_binding(
            "ClusterRole",
            RESTORE_NAME,
            restore_rules(&input.rbac.restore_kinds),
        ));
    }
    objects.extend([
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
                        "annotations": {
                            "arca.dev/installed-at": input.installed_at.to_rfc3339(),
                            // /metrics is served on the probe port (docs/metrics.md), for
                            // Prometheus configurations that discover pods by annotation.
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": HEALTH_PORT.to_string(),
                            "prometheus.io/path": "/metrics",
                        },
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
    ]);
    objects
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
            rbac: &AgentRbac::default(),
        });
        (token, objects)
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
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
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
                "Secret",
                "Deployment"
            ]
        );
        for o in &objects {
            assert_eq!(o["metadata"]["labels"][PART_OF_LABEL], PART_OF, "{o}");
        }
        let deployment = find(&objects, "Deployment", NAME).unwrap();
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
        // Prometheus finds /metrics on the probe port.
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], HEALTH_PORT.to_string());
        assert_eq!(container["ports"][0]["containerPort"], HEALTH_PORT);
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
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
        let secret = find(&docs, "Secret", NAME).unwrap();
        assert_eq!(secret["stringData"]["ARCA_AGENT_TOKEN"], token.expose());
        assert_eq!(secret["stringData"]["ARCA_API_URL"], "https://arca.example.com");
    }

    fn with(rbac: &AgentRbac) -> Vec<Value> {
        let token = Secret::from_presented("arcagent_x");
        objects(&ManifestInput {
            cluster_id: ClusterId::new(),
            api_url: "https://arca.example.com",
            agent_token: &token,
            image: "i",
            installed_at: DateTime::UNIX_EPOCH,
            rbac,
        })
    }

    #[test]
    fn the_backup_role_only_reads_and_writes_snapshots() {
        let objects = with(&AgentRbac::default());
        let backup = find(&objects, "ClusterRole", NAME).unwrap();
        for rule in backup["rules"].as_array().unwrap() {
            let verbs: Vec<&str> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            if rule["resources"] == json!(["*"]) {
                assert_eq!(verbs, READ, "{rule}");
            } else if verbs.iter().any(|v| !READ.contains(v)) {
                assert_eq!(rule["apiGroups"], json!(["snapshot.storage.k8s.io"]), "{rule}");
            }
        }
        // The movers' writes are namespaced to the agent's namespace.
        let role = find(&objects, "Role", NAME).unwrap();
        assert_eq!(role["metadata"]["namespace"], NAMESPACE);
        let binding = find(&objects, "RoleBinding", NAME).unwrap();
        assert_eq!(binding["roleRef"]["name"], NAME);
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }

    #[test]
    fn restore_role_is_optional_and_limitable() {
        let every = with(&AgentRbac::default());
        let restore = find(&every, "ClusterRole", RESTORE_NAME).unwrap();
        assert_eq!(restore["rules"][0]["resources"], json!(["*"]));
        assert_eq!(restore["rules"][0]["verbs"], json!(RESTORE_VERBS));
        assert_eq!(
            find(&every, "ClusterRoleBinding", RESTORE_NAME).unwrap()["roleRef"]["name"],
            RESTORE_NAME
        );

        let backup_only = with(&AgentRbac {
            backup_only: true,
            ..AgentRbac::default()
        });
        assert!(find(&backup_only, "ClusterRole", RESTORE_NAME).is_none());
        assert!(find(&backup_only, "ClusterRoleBinding", RESTORE_NAME).is_none());

        let kinds = RestoreKind::parse_list(" apps/deployments,configmaps ,configmaps").unwrap();
        let limited = with(&AgentRbac {
            restore_kinds: kinds,
            ..AgentRbac::default()
        });
        let rules = &find(&limited, "ClusterRole", RESTORE_NAME).unwrap()["rules"];
        assert_eq!(
            rules,
            &json!([
                { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": RESTORE_VERBS },
                { "apiGroups": [""], "resources": ["configmaps"], "verbs": RESTORE_VERBS },
            ])
        );
        let rbac = with(&AgentRbac {
            restore_kinds: RestoreKind::parse_list("rbac.authorization.k8s.io/roles").unwrap(),
            ..AgentRbac::default()
        });
        let rules = find(&rbac, "ClusterRole", RESTORE_NAME).unwrap()["rules"].clone();
        assert_eq!(rules[1]["verbs"], json!(["bind", "escalate"]), "{rules}");
    }

    #[test]
    fn the_hooks_role_execs_in_pods_unless_left_out() {
        let every = with(&AgentRbac::default());
        let hooks = find(&every, "ClusterRole", HOOKS_NAME).unwrap();
        assert_eq!(
            hooks["rules"],
            json!([{ "apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"] }])
        );
        assert_eq!(
            find(&every, "ClusterRoleBinding", HOOKS_NAME).unwrap()["roleRef"]["name"],
            HOOKS_NAME
        );
        let backup = find(&every, "ClusterRole", NAME).unwrap();
        assert!(
            !backup["rules"].to_string().contains("pods/exec"),
            "the backup role itself never execs"
        );
        let without = with(&AgentRbac {
            without_hooks: true,
            ..AgentRbac::default()
        });
        assert!(find(&without, "ClusterRole", HOOKS_NAME).is_none());
        assert!(find(&without, "ClusterRoleBinding", HOOKS_NAME).is_none());
    }

    #[test]
    fn restore_kinds_are_checked() {
        assert_eq!(
            RestoreKind::parse("rbac.authorization.k8s.io/clusterroles").unwrap(),
            RestoreKind {
                group: "rbac.authorization.k8s.io".into(),
                resource: "clusterroles".into()
            }
        );
        assert_eq!(RestoreKind::parse("secrets").unwrap().group, "");
        for bad in [
            "*",
            "apps/*",
            "Deployments",
            "/deployments",
            "apps/",
            "a b",
            "apps/deployments/x",
            "-x",
        ] {
            let err = RestoreKind::parse(bad).unwrap_err();
            assert!(err.contains("apps/deployments"), "{bad}: {err}");
        }
        let many: Vec<String> = (0..=MAX_RESTORE_KINDS).map(|i| format!("k{i}")).collect();
        assert!(
            RestoreKind::parse_list(&many.join(","))
                .unwrap_err()
                .contains("at most")
        );
        assert!(RestoreKind::parse_list("").unwrap().is_empty());
    }
}
