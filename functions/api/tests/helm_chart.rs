//! The agent's Helm chart (`agent/chart/`) against the install manifest the API serves
//! (`arca_api::manifest`), with the real `helm` that `scripts/testenv.sh` builds:
//!
//! - for the same cluster, URL, token, image and install time, `helm template` renders
//!   exactly the manifest's objects, object for object;
//! - the chart's own values (an existing Secret, scheduling, extra labels) keep every
//!   object labelled ours and the selector unchanged; missing values fail naming them;
//! - `helm install` on a real kube-apiserver creates the objects, and `helm uninstall`
//!   leaves nothing labelled `app.kubernetes.io/part-of=arca` behind.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use arca_api::manifest::{self, AgentRbac, ManifestInput, RestoreKind};
use arca_core::ids::ClusterId;
use arca_core::model::secret::Secret;
use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde::Deserialize;
use serde_json::{Value, json};

const SELECTOR: &str = "app.kubernetes.io/part-of=arca";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agent/chart")
}

/// helm with its own config, cache and data directories (nothing of the user's).
fn helm(bin: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

fn stdout_of(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `helm template` of the chart with these values (written to a file: no `--set`
/// escaping, so hostile characters reach the chart as they are).
fn render(bin: &Path, values: &Value) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.json");
    std::fs::write(&file, values.to_string()).unwrap();
    let out = helm(
        bin,
        dir.path(),
        &[
            "template",
            "arca-agent",
            chart().to_str().unwrap(),
            "--values",
            file.to_str().unwrap(),
        ],
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(parse_stream(&String::from_utf8(out.stdout).unwrap()))
}

/// Every document of a YAML stream, as JSON values (empty documents dropped).
fn parse_stream(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn key(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["kind"].as_str().unwrap(),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap()
    )
}

fn by_key(objects: &[Value]) -> BTreeMap<String, Value> {
    let map: BTreeMap<String, Value> = objects.iter().map(|o| (key(o), o.clone())).collect();
    assert_eq!(map.len(), objects.len(), "two objects share a kind and name");
    map
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {objects:#?}"))
}

struct Case {
    cluster_id: ClusterId,
    token: Secret,
    installed_at: DateTime<Utc>,
}

const API_URL: &str = "https://arca.example.com";
const REPOSITORY: &str = "registry.example.com/arca/arca-agent";
const TAG: &str = "1.2.3";

impl Case {
    fn new() -> Self {
        Case {
            cluster_id: ClusterId::new(),
            // Quotes, a newline and template syntax: none of it may leave its field.
            token: Secret::from_presented("arcagent_TOKEN\"with'quotes\n{{ .Values.apiUrl }}: x"),
            installed_at: Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 5).unwrap(),
        }
    }

    /// What the API serves for this cluster, parsed back from its YAML stream.
    fn manifest(&self) -> Vec<Value> {
        self.manifest_of(&format!("{REPOSITORY}:{TAG}"))
    }

    /// The same, naming this image.
    fn manifest_of(&self, image: &str) -> Vec<Value> {
        self.manifest_with(image, &AgentRbac::default())
    }

    /// The same, with these RBAC choices.
    fn manifest_with(&self, image: &str, rbac: &AgentRbac) -> Vec<Value> {
        let objects = manifest::objects(&ManifestInput {
            cluster_id: self.cluster_id,
            api_url: API_URL,
            agent_token: &self.token,
            image,
            installed_at: self.installed_at,
            rbac,
        });
        let yaml = manifest::to_yaml(&self.cluster_id, &objects).unwrap();
        let served = parse_stream(&yaml);
        assert_eq!(served, objects, "the served stream parses back to the objects");
        served
    }

    /// The chart values for the same cluster.
    fn values(&self) -> Value {
        json!({
            "apiUrl": API_URL,
            "clusterId": self.cluster_id.to_string(),
            "agentToken": self.token.expose(),
            "image": { "repository": REPOSITORY, "tag": TAG },
            "installedAt": self.installed_at.to_rfc3339(),
        })
    }
}

#[test]
fn the_chart_renders_the_served_manifest_object_for_object() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    let served = by_key(&case.manifest());
    let rendered = by_key(&render(&bin, &case.values()).unwrap());
    assert_eq!(
        served.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, object) in &served {
        assert_eq!(
            &rendered[key], object,
            "{key} differs:\nchart:    {}\nmanifest: {}",
            rendered[key], object
        );
    }
    // A trailing slash on the URL is dropped, as the API drops it.
    let mut values = case.values();
    values["apiUrl"] = json!(format!("{API_URL}/"));
    let secret = find(&render(&bin, &values).unwrap(), "Secret").clone();
    assert_eq!(secret["stringData"]["ARCA_API_URL"], API_URL);
}

#[test]
fn without_an_install_time_the_chart_stamps_a_deterministic_config_checksum() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    let mut values = case.values();
    values.as_object_mut().unwrap().remove("installedAt");
    values.as_object_mut().unwrap().remove("image");
    let first = render(&bin, &values).unwrap();
    assert_eq!(render(&bin, &values).unwrap(), first, "helm template is deterministic");
    let deployment = find(&first, "Deployment");
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["arca.dev/config-checksum"].is_string(), "{annotations}");
    assert!(annotations.get("arca.dev/installed-at").is_none(), "{annotations}");
    // The default image is the one the API's manifests name.
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        arca_api::state::DEFAULT_AGENT_IMAGE
    );
    // A new token (rotate-token) rolls the agent.
    values["agentToken"] = json!("arcagent_rotated");
    let rotated = render(&bin, &values).unwrap();
    assert_ne!(
        find(&rotated, "Deployment")["spec"]["template"]["metadata"]["annotations"],
        *annotations
    );
    // Apart from that stamp, the objects are the manifest's with the default image (the
    // agent's and, through ARCA_MOVER_IMAGE, its movers').
    let mut manifest = case.manifest_of(arca_api::state::DEFAULT_AGENT_IMAGE);
    let mut rendered = first.clone();
    for objects in [&mut manifest, &mut rendered] {
        for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
            o["spec"]["template"]["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        }
    }
    assert_eq!(by_key(&rendered), by_key(&manifest));
}

#[test]
fn chart_values_keep_every_object_ours() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    let mut values = case.values();
    let values_map = values.as_object_mut().unwrap();
    values_map.remove("agentToken");
    values_map.insert(
        "existingSecret".into(),
        json!({ "name": "my-agent-token", "key": "token" }),
    );
    values_map.insert("nodeSelector".into(), json!({ "kubernetes.io/os": "linux" }));
    values_map.insert(
        "tolerations".into(),
        json!([{ "key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule" }]),
    );
    values_map.insert(
        "labels".into(),
        json!({ "team": "platform", "app.kubernetes.io/part-of": "not-arca" }),
    );
    values_map.insert(
        "resources".into(),
        json!({ "requests": { "cpu": "50m", "memory": "64Mi" }, "limits": { "memory": "256Mi" } }),
    );
    let objects = render(&bin, &values).unwrap();

    assert!(
        objects.iter().all(|o| o["kind"] != "Secret"),
        "an existing Secret is used, none rendered"
    );
    for o in &objects {
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/part-of"], "arca", "ours win: {o}");
        assert_eq!(labels["team"], "platform", "{o}");
    }
    let deployment = find(&objects, "Deployment");
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({ "app.kubernetes.io/part-of": "arca", "app.kubernetes.io/name": "arca-agent" })
    );
    assert_eq!(pod["metadata"]["labels"]["team"], "platform");
    assert_eq!(pod["spec"]["nodeSelector"], json!({ "kubernetes.io/os": "linux" }));
    assert_eq!(pod["spec"]["tolerations"][0]["value"], "backup");
    let container = &pod["spec"]["containers"][0];
    // Helm merges values into the defaults (a key is removed with null).
    assert_eq!(
        container["resources"]["limits"],
        json!({ "cpu": "1", "memory": "256Mi" })
    );
    assert_eq!(
        container["resources"]["requests"],
        json!({ "cpu": "50m", "memory": "64Mi" })
    );
    assert!(container.get("envFrom").is_none(), "{container}");
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(env["ARCA_API_URL"]["value"], API_URL);
    assert_eq!(env["ARCA_CLUSTER_ID"]["value"], case.cluster_id.to_string());
    assert_eq!(
        env["ARCA_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"],
        json!({ "name": "my-agent-token", "key": "token" })
    );
    assert_eq!(env["ARCA_HEALTH_ADDR"]["value"], "0.0.0.0:8081");
    assert_eq!(env["ARCA_MOVER_IMAGE"]["value"], container["image"]);

    // Without the namespace (installed with --create-namespace), the rest is the same.
    let mut values = case.values();
    values["createNamespace"] = json!(false);
    let objects = render(&bin, &values).unwrap();
    assert!(objects.iter().all(|o| o["kind"] != "Namespace"));
    assert_eq!(objects.len(), 11);
}

#[test]
fn the_charts_rbac_values_render_the_manifests_rbac_choices() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    let image = format!("{REPOSITORY}:{TAG}");
    for (rbac_values, rbac) in [
        (json!({ "restore": true, "restoreKinds": [] }), AgentRbac::default()),
        (
            json!({ "restore": false }),
            AgentRbac {
                backup_only: true,
                ..AgentRbac::default()
            },
        ),
        (
            json!({ "hooks": false }),
            AgentRbac {
                without_hooks: true,
                ..AgentRbac::default()
            },
        ),
        (
            json!({ "restoreKinds": ["apps/deployments", "configmaps", "rbac.authorization.k8s.io/roles", "configmaps"] }),
            AgentRbac {
                restore_kinds: RestoreKind::parse_list("apps/deployments,configmaps,rbac.authorization.k8s.io/roles")
                    .unwrap(),
                ..AgentRbac::default()
            },
        ),
    ] {
        let mut values = case.values();
        values["rbac"] = rbac_values.clone();
        let rendered = by_key(&render(&bin, &values).unwrap());
        let served = by_key(&case.manifest_with(&image, &rbac));
        assert_eq!(
            rendered.keys().collect::<Vec<_>>(),
            served.keys().collect::<Vec<_>>(),
            "{rbac_values}"
        );
        for (key, object) in &served {
            assert_eq!(&rendered[key], object, "{rbac_values}: {key}");
        }
        let restore_role = format!("ClusterRole//{}", manifest::RESTORE_NAME);
        assert_eq!(served.contains_key(&restore_role), !rbac.backup_only, "{rbac_values}");
        let hooks_role = format!("ClusterRole//{}", manifest::HOOKS_NAME);
        assert_eq!(served.contains_key(&hooks_role), !rbac.without_hooks, "{rbac_values}");
    }
    // Bad values fail naming them, as the API refuses them.
    for (rbac_values, expected) in [
        (json!({ "restoreKinds": ["apps/*"] }), "\"apps/*\" is not a kind"),
        (
            json!({ "restore": false, "restoreKinds": ["configmaps"] }),
            "backup-only",
        ),
    ] {
        let mut values = case.values();
        values["rbac"] = rbac_values;
        let err = render(&bin, &values).unwrap_err();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn an_image_digest_names_the_image_by_digest_for_the_agent_and_its_movers() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let mut values = case.values();
    values["image"]["digest"] = json!(digest);
    let objects = render(&bin, &values).unwrap();
    // Exactly the manifest the API serves with ARCA_AGENT_IMAGE=<repository>@<digest>
    // (the stack's ECR repository and AgentImageDigest): the tag is ignored.
    let served = by_key(&case.manifest_of(&format!("{REPOSITORY}@{digest}")));
    assert_eq!(by_key(&objects), served);
    let container = &find(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), &e["value"]))
        .collect();
    assert_eq!(container["image"], json!(format!("{REPOSITORY}@{digest}")));
    assert_eq!(*env["ARCA_MOVER_IMAGE"], container["image"]);
    // Anything but a sha256 digest fails, naming the value.
    values["image"]["digest"] = json!("latest");
    let err = render(&bin, &values).unwrap_err();
    assert!(err.contains("image.digest must be sha256:"), "{err}");
}

#[test]
fn the_metrics_values_render_a_pod_monitor_and_drop_the_scrape_annotations() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    // By default: no PodMonitor (its CRD may not be installed), scrape annotations on.
    let objects = render(&bin, &case.values()).unwrap();
    assert!(objects.iter().all(|o| o["kind"] != "PodMonitor"));
    let mut values = case.values();
    values["metrics"] = json!({
        "scrapeAnnotations": false,
        "podMonitor": { "enabled": true, "interval": "15s", "labels": { "release": "prom" } },
    });
    let objects = render(&bin, &values).unwrap();
    let monitor = find(&objects, "PodMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], "arca-system");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(monitor["metadata"]["labels"]["app.kubernetes.io/part-of"], "arca");
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"],
        json!([{ "port": "health", "path": "/metrics", "interval": "15s" }])
    );
    // It selects the agent's pod, by the pod's own labels, and names its port.
    let deployment = find(&objects, "Deployment");
    let pod = &deployment["spec"]["template"];
    for (label, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][label], value, "{label}");
    }
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["name"], "health");
    let annotations = &pod["metadata"]["annotations"];
    assert!(annotations.get("prometheus.io/scrape").is_none(), "{annotations}");
}

#[test]
fn missing_values_fail_naming_them() {
    let Some(bin) = arca_testenv::helm() else { return };
    let case = Case::new();
    for (remove, expected) in [
        ("apiUrl", "apiUrl is required"),
        ("clusterId", "clusterId is required"),
        ("agentToken", "agentToken or existingSecret.name is required"),
    ] {
        let mut values = case.values();
        values.as_object_mut().unwrap().remove(remove);
        let err = render(&bin, &values).unwrap_err();
        assert!(err.contains(expected), "without {remove}: {err}");
    }
    let mut values = case.values();
    values["existingSecret"] = json!({ "name": "also" });
    let err = render(&bin, &values).unwrap_err();
    assert!(err.contains("not both"), "{err}");
}

/// The dynamic API of a kind, found through discovery.
async fn api_for(client: &kube::Client, api_version: &str, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (resource, caps) = discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .unwrap();
    match (caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// What the namespace controller (absent from the bare apiserver) would do: empty the
/// namespace and finalize it.
async fn finish_namespace_deletion(client: &kube::Client, namespace: &str, objects: &[Value]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = namespaces.get_opt(namespace).await.unwrap() else {
        return;
    };
    for object in objects.iter().filter(|o| o["metadata"]["namespace"] == namespace) {
        let api = api_for(
            client,
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
            Some(namespace),
        )
        .await;
        let name = object["metadata"]["name"].as_str().unwrap();
        if api.get_opt(name).await.unwrap().is_some() {
            api.delete(name, &DeleteParams::default()).await.unwrap();
        }
    }
    if ns.metadata.deletion_timestamp.is_none() {
        namespaces.delete(namespace, &DeleteParams::default()).await.unwrap();
    }
    let mut finalized = namespaces.get(namespace).await.unwrap();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(Vec::new());
    }
    namespaces
        .replace_subresource("finalize", namespace, &PostParams::default(), &finalized)
        .await
        .unwrap();
    for _ in 0..100 {
        if namespaces.get_opt(namespace).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace {namespace} never went away after finalizing");
}

#[tokio::test]
async fn helm_install_then_uninstall_leaves_nothing_of_ours_on_a_real_apiserver() {
    let Some(bin) = arca_testenv::helm() else { return };
    let Some(kube) = arca_testenv::cluster_a().await else {
        return;
    };
    let client = kube.client.clone();
    let home = tempfile::tempdir().unwrap();
    // Its own namespace, so a namespace left Terminating elsewhere cannot get in the way.
    let namespace = arca_testenv::unique("arca-helm");
    let release = "arca-agent-helm-test";
    let case = Case::new();
    let mut values = case.values();
    values["namespace"] = json!(namespace);
    let values_file = home.path().join("values.json");
    std::fs::write(&values_file, values.to_string()).unwrap();
    let kubeconfig = kube.kubeconfig.to_str().unwrap();
    let expected = render(&bin, &values).unwrap();
    assert_eq!(expected.len(), 12);

    // The documented install (README / docs/agent.md), the release kept in `default`.
    let out = helm(
        &bin,
        home.path(),
        &[
            "install",
            release,
            chart().to_str().unwrap(),
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            "default",
            "--values",
            values_file.to_str().unwrap(),
        ],
    );
    let installed = stdout_of("helm install", &out);
    assert!(installed.contains("STATUS: deployed"), "{installed}");

    // Every object is there, labelled ours, with what the chart put in it.
    for object in &expected {
        let api = api_for(
            &client,
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
            Some(&namespace),
        )
        .await;
        let name = object["metadata"]["name"].as_str().unwrap();
        let live = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{} {name}: {e}", object["kind"]));
        let labels = live.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("app.kubernetes.io/part-of").map(String::as_str),
            Some("arca")
        );
        if object["kind"] == "Deployment" {
            assert_eq!(
                live.data["spec"]["template"]["spec"]["containers"][0]["image"],
                format!("{REPOSITORY}:{TAG}")
            );
        }
    }

    // An upgrade (here: a new image tag, the rest reused) keeps the release deployed.
    let out = helm(
        &bin,
        home.path(),
        &[
            "upgrade",
            release,
            chart().to_str().unwrap(),
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            "default",
            "--reuse-values",
            "--set",
            "image.tag=1.2.4",
        ],
    );
    stdout_of("helm upgrade", &out);
    let deployments = api_for(&client, "apps/v1", "Deployment", Some(&namespace)).await;
    let live = deployments.get("arca-agent").await.unwrap();
    assert_eq!(
        live.data["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{REPOSITORY}:1.2.4")
    );

    // The documented uninstall.
    let out = helm(
        &bin,
        home.path(),
        &[
            "uninstall",
            release,
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            "default",
        ],
    );
    stdout_of("helm uninstall", &out);

    // Nothing labelled ours is left: no cluster-scoped object, no object in the
    // namespace, and the namespace itself is on its way out (no namespace controller
    // here to finish it).
    let labelled = ListParams::default().labels(SELECTOR);
    for (api_version, kind) in [
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ] {
        let left = api_for(&client, api_version, kind, None)
            .await
            .list(&labelled)
            .await
            .unwrap();
        assert!(
            left.items.is_empty(),
            "{kind} left: {:?}",
            left.items.iter().map(|o| &o.metadata.name).collect::<Vec<_>>()
        );
    }
    for (api_version, kind) in [("v1", "ServiceAccount"), ("v1", "Secret"), ("apps/v1", "Deployment")] {
        let api = api_for(&client, api_version, kind, Some(&namespace)).await;
        let left: Vec<_> = api
            .list(&labelled)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .collect();
        assert!(left.is_empty(), "{kind} left in {namespace}: {left:?}");
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces.get_opt(&namespace).await.unwrap();
    assert!(
        ns.as_ref().is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
        "namespace {namespace} was not deleted: {ns:?}"
    );
    // Helm's own release record went too.
    let out = helm(
        &bin,
        home.path(),
        &[
            "list",
            "--all",
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            "default",
            "--short",
        ],
    );
    let releases = stdout_of("helm list", &out);
    assert!(!releases.lines().any(|l| l.trim() == release), "{releases}");

    finish_namespace_deletion(&client, &namespace, &expected).await;
}
