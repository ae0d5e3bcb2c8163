//! `arca-agent run`, the real binary, against the real API router on a loopback port and
//! the real kube-apiserver: it connects and heartbeats (the cluster turns ACTIVE), serves
//! the kubelet probes, backs up a namespace of the cluster (the job COMPLETED, a READY
//! recovery point whose archive is in the local destination), and SIGTERM stops it cleanly.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_command_connects_and_backs_up_a_namespace() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The org's archive key is handed to the agent with the job (no ARCA_ARCHIVE_KEY).
    let config = common::quick_config();
    let admin = common::serve_and_sign_up(
        common::embedded_state(dir.path(), config),
        &arca_testenv::unique("agent-bin"),
    )
    .await;
    let registered = admin
        .register_cluster_a(
            json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": dir.path().join("dest") } }),
        )
        .await;
    let cluster_id = registered["id"].as_str().unwrap().to_owned();

    let common::RunningAgent {
        process: mut agent,
        health_addr,
    } = common::run_agent(&admin, &registered, &cluster.kubeconfig, Stdio::piped()).await;
    for probe in ["healthz", "readyz"] {
        let resp = admin
            .http
            .get(format!("http://{health_addr}/{probe}"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "/{probe}: {}", resp.status());
    }

    // A namespace of our own with a ConfigMap in it.
    let ns = arca_testenv::unique("runcmd");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cluster.client.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({ "metadata": { "name": ns } })).unwrap(),
        )
        .await
        .unwrap();
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &ns);
    config_maps
        .create(
            &Default::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "settings" }, "data": { "k": "v" } })).unwrap(),
        )
        .await
        .unwrap();

    let def = admin
        .post(
            "/v1/backups",
            json!({ "name": "ns", "clusterId": cluster_id, "pvMode": "none", "selection": { "namespaces": [ns] } }),
        )
        .await;
    let done = admin.run_backup(&def).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    // The namespace, its ConfigMap, and what the API server put there (default
    // ServiceAccount, kube-root-ca.crt) at least.
    assert!(done["counters"]["resources"].as_u64().unwrap() >= 2, "{done}");
    let log = done["activity"].to_string();
    assert!(log.contains("backed up"), "{log}");
    let points = admin.get("/v1/recoverypoints").await;
    let items = points["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{points}");
    let point = &items[0];
    assert_eq!(point["state"], "READY", "{point}");
    assert_eq!(point["resourceCount"], done["counters"]["resources"], "{point}");
    let prefix = point["location"]["prefix"].as_str().unwrap();
    assert!(prefix.contains(&cluster_id) && prefix.contains("/archives/"), "{point}");
    let manifest = dir.path().join("dest").join(prefix).join("manifest");
    assert!(
        manifest.is_file(),
        "the archive's manifest is at {}",
        manifest.display()
    );
    namespaces.delete(&ns, &Default::default()).await.unwrap();

    // Kubernetes stops pods with SIGTERM: the agent exits cleanly.
    let pid = agent.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), agent.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}
