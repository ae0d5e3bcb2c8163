//! The agent's RBAC (issue #17, "Least privilege") on the real kube-apiserver: the
//! manifest's objects (`arca_api::manifest`, which the chart renders the same:
//! functions/api/tests/helm_chart.rs) applied under names of the test's own, and the
//! agent's ServiceAccount impersonated:
//!
//! - the backup role lists everything but creates nothing outside volume snapshots and
//!   its movers' objects in its own namespace;
//! - the restore role may create; an install limited to some kinds may not create others;
//! - a restore the agent is not allowed fails before it creates anything, naming the
//!   missing permission; with the permission the same restore goes through.
//!
//! Needs only an apiserver (`ARCA_TESTENV_NODES=0 scripts/testenv.sh up`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arca_agent::resources::restore::RestoreStatus;
use arca_agent::resources::{
    BackupOptions, Error, ObjectStoreArchive, ResourceArchive, RestoreOptions, Selection, backup, restore,
};
use arca_api::manifest::{self, AgentRbac, ManifestInput, RestoreKind};
use arca_core::ids::ClusterId;
use arca_core::model::secret::Secret;
use arca_embedded::LocalFsObjectStore;
use arca_testenv::{Cluster, unique};
use chrono::DateTime;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret as KubeSecret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// One install of the agent's RBAC: its namespace (and ServiceAccount `arca-agent` in
/// it), its cluster-scoped objects' names, and a client acting as that ServiceAccount.
struct Install {
    namespace: String,
    cluster_roles: Vec<String>,
    agent: Client,
}

fn unwrap<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A client for `cluster` that impersonates `user` (the admin kubeconfig may).
async fn impersonating(cluster: &Cluster, user: &str) -> Client {
    let parsed = unwrap("kubeconfig", Kubeconfig::read_from(&cluster.kubeconfig));
    let mut config = unwrap(
        "kube config",
        kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await,
    );
    config.auth_info.impersonate = Some(user.to_string());
    unwrap("kube client", Client::try_from(config))
}

/// Applies the manifest's RBAC for `rbac`: the Namespace, ServiceAccount, Roles and
/// bindings, renamed after the test (ClusterRoles are cluster-wide: another test's
/// install must not be touched), without the Secret and Deployment (no agent runs).
async fn install(cluster: &Cluster, rbac: &AgentRbac) -> Install {
    let token = Secret::from_presented("arcagent_rbac_test");
    let objects = manifest::objects(&ManifestInput {
        cluster_id: ClusterId::new(),
        api_url: "https://arca.example.com",
        agent_token: &token,
        image: "arca.local/arca-agent:test",
        installed_at: DateTime::UNIX_EPOCH,
        rbac,
    });
    let namespace = unique("arca-rbac");
    let rename = |name: &str| name.replacen(manifest::NAME, &namespace, 1);
    let client = &cluster.client;
    let mut cluster_roles = Vec::new();
    for mut o in objects {
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        if o["metadata"].get("namespace").is_some() {
            o["metadata"]["namespace"] = json!(namespace);
        }
        // Not `part-of: arca`: other tests' uninstalls select that label cluster-wide.
        o["metadata"]["labels"][manifest::PART_OF_LABEL] = json!("arca-rbac-test");
        if let Some(subjects) = o["subjects"].as_array_mut() {
            for s in subjects {
                s["namespace"] = json!(namespace);
            }
        }
        let pp = PostParams::default();
        match kind.as_str() {
            "Namespace" => {
                o["metadata"]["name"] = json!(namespace);
                let ns: Namespace = unwrap("Namespace", serde_json::from_value(o));
                unwrap(
                    "create Namespace",
                    Api::<Namespace>::all(client.clone()).create(&pp, &ns).await,
                );
            }
            "ServiceAccount" => {
                let sa: ServiceAccount = unwrap("ServiceAccount", serde_json::from_value(o));
                let api = Api::<ServiceAccount>::namespaced(client.clone(), &namespace);
                unwrap("create ServiceAccount", api.create(&pp, &sa).await);
            }
            "Role" => {
                let role: Role = unwrap("Role", serde_json::from_value(o));
                let api = Api::<Role>::namespaced(client.clone(), &namespace);
                unwrap("create Role", api.create(&pp, &role).await);
            }
            "RoleBinding" => {
                let b: RoleBinding = unwrap("RoleBinding", serde_json::from_value(o));
                let api = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
                unwrap("create RoleBinding", api.create(&pp, &b).await);
            }
            "ClusterRole" => {
                let name = rename(o["metadata"]["name"].as_str().unwrap_or_default());
                o["metadata"]["name"] = json!(name);
                let role: ClusterRole = unwrap("ClusterRole", serde_json::from_value(o));
                unwrap(
                    "create ClusterRole",
                    Api::<ClusterRole>::all(client.clone()).create(&pp, &role).await,
                );
                cluster_roles.push(name);
            }
            "ClusterRoleBinding" => {
                let name = rename(o["metadata"]["name"].as_str().unwrap_or_default());
                o["metadata"]["name"] = json!(name);
                let role = rename(o["roleRef"]["name"].as_str().unwrap_or_default());
                o["roleRef"]["name"] = json!(role);
                let b: ClusterRoleBinding = unwrap("ClusterRoleBinding", serde_json::from_value(o));
                unwrap(
                    "create ClusterRoleBinding",
                    Api::<ClusterRoleBinding>::all(client.clone()).create(&pp, &b).await,
                );
            }
            "Secret" | "Deployment" => {}
            other => panic!("the manifest has an object of kind {other} this test does not know"),
        }
    }
    let agent = impersonating(
        cluster,
        &format!("system:serviceaccount:{namespace}:{}", manifest::NAME),
    )
    .await;
    let install = Install {
        namespace,
        cluster_roles,
        agent,
    };
    install.wait_for_bindings(rbac).await;
    install
}

impl Install {
    /// Removes what [`install`] made (the namespace is left Terminating: the bare
    /// apiserver has no namespace controller; nothing in it grants anything).
    async fn remove(self, admin: &Client) {
        let dp = DeleteParams::default();
        for name in &self.cluster_roles {
            let _ = Api::<ClusterRoleBinding>::all(admin.clone()).delete(name, &dp).await;
            let _ = Api::<ClusterRole>::all(admin.clone()).delete(name, &dp).await;
        }
        let _ = Api::<Namespace>::all(admin.clone()).delete(&self.namespace, &dp).await;
    }
}

/// Whether the agent may `verb` `group/resource` in `namespace`, as the API server
/// answers the agent itself (SelfSubjectAccessReview, what the agent's precheck asks).
async fn may(agent: &Client, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                // `pods/exec`: a resource and its subresource.
                resource: Some(resource.split('/').next().unwrap_or(resource).into()),
                subresource: resource.split_once('/').map(|(_, sub)| sub.to_string()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = unwrap(
        "SelfSubjectAccessReview",
        Api::<SelfSubjectAccessReview>::all(agent.clone())
            .create(&PostParams::default(), &review)
            .await,
    );
    answer.status.is_some_and(|s| s.allowed)
}

impl Install {
    /// The authorizer sees new bindings a moment after they are created: wait until each
    /// of this install's bindings shows (what every install allows, and the restore
    /// role's first kind).
    async fn wait_for_bindings(&self, rbac: &AgentRbac) {
        let own = Some(self.namespace.as_str());
        let restore = rbac
            .restore_kinds
            .first()
            .map(|k| (k.group.clone(), k.resource.clone()))
            .unwrap_or_else(|| (String::new(), "configmaps".to_string()));
        for _ in 0..100 {
            if may(&self.agent, "list", "", "configmaps", None).await
                && may(&self.agent, "create", "batch", "jobs", own).await
                && (rbac.backup_only || may(&self.agent, "create", &restore.0, &restore.1, own).await)
                && (rbac.without_hooks || may(&self.agent, "create", "", "pods/exec", own).await)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the agent's bindings never took effect");
    }
}

fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// The label of what the restore test backs up (and nothing else a full environment's
/// controllers put in a namespace, such as the default ServiceAccount).
const SEEDED: &str = "arca.test/agent-rbac";

fn config_map(name: &str) -> ConfigMap {
    unwrap(
        "ConfigMap",
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {SEEDED: "yes"}}, "data": {"k": "v"}})),
    )
}

/// A namespace for objects the agent is asked to write.
async fn scratch_namespace(admin: &Client) -> String {
    let name = unique("arca-rbac-app");
    let ns: Namespace = unwrap("Namespace", serde_json::from_value(json!({"metadata": {"name": name}})));
    unwrap(
        "create Namespace",
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await,
    );
    name
}

#[tokio::test]
async fn the_backup_role_reads_everything_and_writes_only_snapshots_and_its_movers() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let admin = cluster.client.clone();
    let app = scratch_namespace(&admin).await;
    let backup_only = AgentRbac {
        backup_only: true,
        restore_kinds: vec![],
        without_hooks: false,
    };
    let i = install(&cluster, &backup_only).await;
    let own = i.namespace.as_str();

    // Reads: any kind, any namespace, Secrets included (a backup archives them).
    unwrap(
        "list ConfigMaps as the agent",
        Api::<ConfigMap>::all(i.agent.clone())
            .list(&ListParams::default())
            .await,
    );
    unwrap(
        "list Secrets as the agent",
        Api::<KubeSecret>::namespaced(i.agent.clone(), &app)
            .list(&ListParams::default())
            .await,
    );
    // No restore role: creating an application object is refused by the API server.
    let err = Api::<ConfigMap>::namespaced(i.agent.clone(), &app)
        .create(&PostParams::default(), &config_map("nope"))
        .await
        .expect_err("a backup-only agent created a ConfigMap");
    assert!(forbidden(&err), "{err}");
    // Backup hooks: exec in any Pod (the hooks role), and create only: no Pod is written.
    assert!(may(&i.agent, "create", "", "pods/exec", Some(&app)).await);
    assert!(!may(&i.agent, "create", "", "pods", Some(&app)).await);
    // What a backup writes: volume snapshots next to any claim, their contents, and the
    // movers' Jobs, Secrets and claims in its own namespace only.
    assert!(
        may(
            &i.agent,
            "create",
            "snapshot.storage.k8s.io",
            "volumesnapshots",
            Some(&app)
        )
        .await
    );
    assert!(
        may(
            &i.agent,
            "delete",
            "snapshot.storage.k8s.io",
            "volumesnapshotcontents",
            None
        )
        .await
    );
    for (group, resource) in [("batch", "jobs"), ("", "secrets"), ("", "persistentvolumeclaims")] {
        assert!(
            may(&i.agent, "create", group, resource, Some(own)).await,
            "{resource} in {own}"
        );
        assert!(
            !may(&i.agent, "create", group, resource, Some(&app)).await,
            "{resource} in {app}"
        );
    }
    for (verb, group, resource) in [
        ("create", "", "persistentvolumes"),
        ("patch", "apps", "deployments"),
        ("update", "", "configmaps"),
        ("delete", "", "namespaces"),
        ("bind", "rbac.authorization.k8s.io", "clusterroles"),
    ] {
        assert!(
            !may(&i.agent, verb, group, resource, Some(&app)).await,
            "{verb} {resource}"
        );
    }
    i.remove(&admin).await;
}

#[tokio::test]
async fn the_restore_role_may_create_and_a_limited_one_only_its_kinds() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let admin = cluster.client.clone();
    let app = scratch_namespace(&admin).await;

    let full = install(&cluster, &AgentRbac::default()).await;
    let api = Api::<ConfigMap>::namespaced(full.agent.clone(), &app);
    unwrap(
        "create a ConfigMap with the restore role",
        api.create(&PostParams::default(), &config_map("restored")).await,
    );
    assert!(may(&full.agent, "create", "apps", "deployments", Some(&app)).await);
    assert!(may(&full.agent, "bind", "rbac.authorization.k8s.io", "clusterroles", None).await);
    full.remove(&admin).await;

    let limited = AgentRbac {
        backup_only: false,
        restore_kinds: unwrap("kinds", RestoreKind::parse_list("configmaps,apps/deployments")),
        without_hooks: false,
    };
    let only = install(&cluster, &limited).await;
    unwrap(
        "create a listed kind",
        Api::<ConfigMap>::namespaced(only.agent.clone(), &app)
            .create(&PostParams::default(), &config_map("limited"))
            .await,
    );
    let secret: KubeSecret = unwrap(
        "Secret",
        serde_json::from_value(json!({"metadata": {"name": "not-listed"}, "stringData": {"k": "v"}})),
    );
    let err = Api::<KubeSecret>::namespaced(only.agent.clone(), &app)
        .create(&PostParams::default(), &secret)
        .await
        .expect_err("a limited agent created a kind it does not list");
    assert!(forbidden(&err), "{err}");
    assert!(may(&only.agent, "update", "apps", "deployments", Some(&app)).await);
    assert!(!may(&only.agent, "create", "apps", "statefulsets", Some(&app)).await);
    assert!(!may(&only.agent, "bind", "rbac.authorization.k8s.io", "clusterroles", None).await);
    only.remove(&admin).await;
}

#[tokio::test]
async fn a_restore_without_the_permission_fails_before_creating_anything() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let admin = cluster.client.clone();
    // A source namespace with a ConfigMap and a Secret, backed up as an admin.
    let source = scratch_namespace(&admin).await;
    unwrap(
        "seed ConfigMap",
        Api::<ConfigMap>::namespaced(admin.clone(), &source)
            .create(&PostParams::default(), &config_map("settings"))
            .await,
    );
    let secret: KubeSecret = unwrap(
        "Secret",
        serde_json::from_value(
            json!({"metadata": {"name": "password", "labels": {SEEDED: "yes"}}, "stringData": {"k": "v"}}),
        ),
    );
    unwrap(
        "seed Secret",
        Api::<KubeSecret>::namespaced(admin.clone(), &source)
            .create(&PostParams::default(), &secret)
            .await,
    );
    let dir = unwrap("tempdir", tempfile::tempdir());
    let archive = unwrap(
        "archive",
        ObjectStoreArchive::new(Arc::new(LocalFsObjectStore::new(dir.path())), "resources", &[7; 32]),
    );
    let selection = Selection {
        namespaces: BTreeSet::from([source.clone()]),
        labels: BTreeMap::from([(SEEDED.to_string(), "yes".to_string())]),
        ..Selection::default()
    };
    let report = unwrap(
        "backup",
        backup(&admin, &selection, &archive, &BackupOptions::default()).await,
    );
    let archived: BTreeSet<String> = {
        let reader = unwrap("open", archive.open(&report.archive_id).await);
        let entries = unwrap(
            "entries",
            reader
                .entries(&arca_agent::resources::archive::ReadFilter {
                    namespaces: None,
                    cluster_scoped: true,
                    resources: None,
                })
                .await,
        );
        entries
            .iter()
            .map(|e| format!("{}/{}", e.resource.group_resource(), e.name))
            .collect()
    };
    assert_eq!(
        archived,
        BTreeSet::from(["configmaps/settings".to_string(), "secrets/password".to_string()])
    );

    // An agent limited to ConfigMaps (and namespaces) restores into a new namespace.
    let limited = AgentRbac {
        backup_only: false,
        restore_kinds: unwrap("kinds", RestoreKind::parse_list("configmaps,namespaces")),
        without_hooks: false,
    };
    let i = install(&cluster, &limited).await;
    let target = unique("arca-rbac-restored");
    let mut opts = RestoreOptions::new(&report.archive_id, &unique("rst"));
    opts.namespace_map = BTreeMap::from([(source.clone(), target.clone())]);
    opts.own_namespace = Some(i.namespace.clone());
    let err = restore(&i.agent, &archive, &opts)
        .await
        .expect_err("a restore of a kind the agent may not create");
    let Error::Precheck(message) = &err else {
        panic!("not a precheck failure: {err}");
    };
    assert!(
        message.contains(&format!("may not create secrets in namespace {target}")),
        "{message}"
    );
    assert!(message.ends_with(": secrets"), "the kind to allow: {message}");
    assert!(!message.contains("configmaps"), "ConfigMaps are allowed: {message}");
    // Refused before anything was written: not even the namespace.
    assert!(
        unwrap("get", Api::<Namespace>::all(admin.clone()).get_opt(&target).await).is_none(),
        "the target namespace was created"
    );
    i.remove(&admin).await;

    // A backup-only agent is told it has no restore role at all.
    let i = install(
        &cluster,
        &AgentRbac {
            backup_only: true,
            restore_kinds: vec![],
            without_hooks: true,
        },
    )
    .await;
    assert!(
        !may(&i.agent, "create", "", "pods/exec", Some(&target)).await,
        "an install without hooks never execs"
    );
    opts.own_namespace = Some(i.namespace.clone());
    let err = restore(&i.agent, &archive, &opts)
        .await
        .expect_err("a backup-only agent restored");
    let message = err.to_string();
    for part in [
        "create namespaces",
        &format!("create configmaps in namespace {target}"),
        &format!("create secrets in namespace {target}"),
        "configmaps,namespaces,secrets",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    i.remove(&admin).await;

    // With the restore role the same restore goes through, as the agent.
    let i = install(&cluster, &AgentRbac::default()).await;
    opts.own_namespace = Some(i.namespace.clone());
    let done = unwrap(
        "restore with the restore role",
        restore(&i.agent, &archive, &opts).await,
    );
    assert_eq!(done.status, RestoreStatus::Completed, "{:?}", done.items);
    let restored: Value = json!(
        unwrap(
            "get restored Secret",
            Api::<KubeSecret>::namespaced(admin.clone(), &target)
                .get("password")
                .await
        )
        .metadata
        .name
    );
    assert_eq!(restored, json!("password"));
    i.remove(&admin).await;
}
