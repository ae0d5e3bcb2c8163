//! The install manifest against a REAL kube-apiserver (cluster b): what the API renders
//! for a cluster is applied object by object (server-side apply through discovery, as
//! `kubectl apply` would), every object exists and carries `app.kubernetes.io/part-of:
//! arca`, and the documented uninstall selection leaves no cluster-scoped object of ours.
//!
//! The bare apiserver has no namespace controller, so the deleted `arca-system` stays
//! Terminating: the test asserts its deletionTimestamp, then plays the controller
//! (deletes what is inside, clears the finalizer) so the next run starts clean.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use arca_api::AppState;
use axum::body::Body;
use axum::http::{Method, Request, header};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMESPACE: &str = "arca-system";
const SELECTOR: &str = "app.kubernetes.io/part-of=arca";
const IMAGE: &str = "registry.example.com/arca/arca-agent:install-test";

async fn call(router: &axum::Router, method: Method, path: &str, key: Option<&str>) -> (u16, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The dynamic API of an object's kind, found through discovery.
async fn api_for(client: &kube::Client, object: &Value) -> Api<DynamicObject> {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let (resource, caps) = discovery::pinned_kind(client, &gvk).await.unwrap();
    match caps.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            object["metadata"]["namespace"].as_str().unwrap(),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    }
}

async fn cluster_scoped(client: &kube::Client, api_version: &str, kind: &str) -> Api<DynamicObject> {
    api_for(client, &json!({ "apiVersion": api_version, "kind": kind })).await
}

/// What the namespace controller would do: empty the namespace and finalize it.
async fn finish_namespace_deletion(client: &kube::Client, manifest: &[Value]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = namespaces.get_opt(NAMESPACE).await.unwrap() else {
        return;
    };
    for object in manifest.iter().filter(|o| o["metadata"]["namespace"] == NAMESPACE) {
        let api = api_for(client, object).await;
        let name = object["metadata"]["name"].as_str().unwrap();
        if api.get_opt(name).await.unwrap().is_some() {
            api.delete(name, &DeleteParams::default()).await.unwrap();
        }
    }
    if ns.metadata.deletion_timestamp.is_none() {
        namespaces.delete(NAMESPACE, &DeleteParams::default()).await.unwrap();
    }
    let mut finalized = namespaces.get(NAMESPACE).await.unwrap();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(Vec::new());
    }
    namespaces
        .replace_subresource("finalize", NAMESPACE, &PostParams::default(), &finalized)
        .await
        .unwrap();
    for _ in 0..100 {
        if namespaces.get_opt(NAMESPACE).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace {NAMESPACE} never went away after finalizing");
}

#[tokio::test]
async fn the_rendered_manifest_applies_to_a_real_apiserver_and_uninstalls_by_label() {
    let Some(kube) = arca_testenv::cluster_b().await else {
        return;
    };
    let client = kube.client.clone();

    // The API on an embedded store, with the image and public URL a deployment sets.
    let dir = tempfile::tempdir().unwrap();
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
    let mut state = AppState::new(items, true, Default::default(), true);
    state.agent.image = IMAGE.to_owned();
    state.agent.public_url = Some("https://arca.example.com".to_owned());
    let router = arca_api::router(state);

    let response = router
        .clone()
        .oneshot(
            Request::post("/v1/signup")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({ "orgName": "install-test" }).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let signup: Value = serde_json::from_slice(&bytes).unwrap();
    let key = signup["adminKey"]["secret"].as_str().unwrap().to_owned();
    let response = router
        .clone()
        .oneshot(
            Request::post("/v1/clusters")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({ "name": "cluster-b" }).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let cluster: Value = serde_json::from_slice(&bytes).unwrap();
    let cluster_id = cluster["id"].as_str().unwrap().to_owned();

    // The link, fetched as kubectl would (no key).
    let (status, link) = call(
        &router,
        Method::POST,
        &format!("/v1/clusters/{cluster_id}/install"),
        Some(&key),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let link: Value = serde_json::from_str(&link).unwrap();
    let url = link["url"].as_str().unwrap();
    let path = url.strip_prefix("https://arca.example.com").unwrap();
    let (status, yaml) = call(&router, Method::GET, path, None).await;
    assert_eq!(status, 200, "{yaml}");
    let manifest: Vec<Value> = yaml
        .split("\n---\n")
        .skip(1)
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    // Namespace, ServiceAccount, backup, hooks and restore ClusterRole(Binding)s, the
    // movers' Role(Binding), Secret, Deployment.
    assert_eq!(manifest.len(), 12);

    // kubectl itself reads the stream (JSON documents are YAML), when it is installed.
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, &yaml).unwrap();
    match std::process::Command::new("kubectl")
        .args(["apply", "--dry-run=client", "-o", "name", "-f"])
        .arg(&file)
        .env("KUBECONFIG", &kube.kubeconfig)
        .output()
    {
        Ok(out) => {
            let names = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{names} {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(names.lines().count(), 12, "{names}");
            assert!(names.contains("deployment.apps/arca-agent"), "{names}");
        }
        Err(e) => eprintln!("kubectl not runnable ({e}): the stream is checked by the API client only"),
    }

    // A namespace left Terminating by an earlier run would refuse new objects.
    finish_namespace_deletion(&client, &manifest).await;

    // Apply every object, in order, as `kubectl apply --server-side` would.
    let apply = PatchParams::apply("arca-install-test").force();
    for object in &manifest {
        let api = api_for(&client, object).await;
        let name = object["metadata"]["name"].as_str().unwrap();
        api.patch(name, &apply, &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("applying {} {name}: {e}", object["kind"]));
    }

    // Every object is there, labelled ours, with what the API put in it.
    for object in &manifest {
        let api = api_for(&client, object).await;
        let name = object["metadata"]["name"].as_str().unwrap();
        let live = api.get(name).await.unwrap();
        assert_eq!(
            live.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/part-of")),
            Some(&"arca".to_owned()),
            "{} {name}",
            object["kind"]
        );
        match object["kind"].as_str().unwrap() {
            "Deployment" => {
                let container = &live.data["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["image"], IMAGE);
                assert_eq!(
                    live.data["spec"]["template"]["spec"]["serviceAccountName"],
                    "arca-agent"
                );
                assert!(container["livenessProbe"]["httpGet"].is_object(), "{container}");
                assert!(container["resources"]["requests"]["cpu"].is_string(), "{container}");
            }
            "Secret" => {
                let stored = live.data["data"]["ARCA_AGENT_TOKEN"].as_str().unwrap();
                let token = base64::engine::general_purpose::STANDARD.decode(stored).unwrap();
                let token = String::from_utf8(token).unwrap();
                assert!(token.starts_with("arcagent_"), "the Secret holds the agent token");
                assert_eq!(
                    token.as_str(),
                    object["stringData"]["ARCA_AGENT_TOKEN"].as_str().unwrap()
                );
                let api_url = base64::engine::general_purpose::STANDARD
                    .decode(live.data["data"]["ARCA_API_URL"].as_str().unwrap())
                    .unwrap();
                assert_eq!(api_url, b"https://arca.example.com");
            }
            "ClusterRoleBinding" => {
                assert_eq!(live.data["subjects"][0]["namespace"], NAMESPACE);
            }
            _ => {}
        }
    }

    // The documented uninstall:
    //   kubectl delete namespace arca-system
    //   kubectl delete clusterrole,clusterrolebinding,crd -l app.kubernetes.io/part-of=arca
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(NAMESPACE, &DeleteParams::default()).await.unwrap();
    let labelled = ListParams::default().labels(SELECTOR);
    let kinds = [
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ];
    let mut deleted = 0;
    for (api_version, kind) in kinds {
        let api = cluster_scoped(&client, api_version, kind).await;
        for object in api.list(&labelled).await.unwrap() {
            api.delete(&object.metadata.name.clone().unwrap(), &DeleteParams::default())
                .await
                .unwrap();
            deleted += 1;
        }
    }
    assert!(
        deleted >= 4,
        "the backup and restore ClusterRoles and their bindings were selected by the label"
    );

    // Nothing cluster-scoped of ours is left; the namespace is on its way out.
    for (api_version, kind) in kinds {
        let api = cluster_scoped(&client, api_version, kind).await;
        let left = api.list(&labelled).await.unwrap();
        assert!(
            left.items.is_empty(),
            "{kind} left: {:?}",
            left.items.iter().map(|o| &o.metadata.name).collect::<Vec<_>>()
        );
    }
    let other_namespaces = namespaces.list(&labelled).await.unwrap();
    for ns in &other_namespaces.items {
        assert_eq!(ns.metadata.name.as_deref(), Some(NAMESPACE), "only arca-system is ours");
    }
    let ns = namespaces.get(NAMESPACE).await.unwrap();
    assert!(
        ns.metadata.deletion_timestamp.is_some(),
        "arca-system is Terminating (no namespace controller on this apiserver)"
    );

    finish_namespace_deletion(&client, &manifest).await;
}
