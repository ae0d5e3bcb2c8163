//! `arca-agent run`, the real binary, against the real API router on a loopback port and
//! the real kube-apiserver: it connects and heartbeats (the cluster turns ACTIVE), serves
//! the kubelet probes, backs up a namespace of the cluster (the job COMPLETED, a READY
//! recovery point whose archive is in the local destination), and SIGTERM stops it cleanly.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

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
    let base = &admin.base;
    let registered = admin
        .register_cluster_a(
            json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": dir.path().join("dest") } }),
        )
        .await;
    let cluster_id = registered["id"].as_str().unwrap().to_owned();

    let health_addr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca-agent"))
        .args(["run", "--api-url", base, "--health-addr", &health_addr, "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .env("ARCA_AGENT_TOKEN", registered["agentToken"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut active = Value::Null;
    for _ in 0..100 {
        active = admin.get(&format!("/v1/clusters/{cluster_id}")).await;
        if active["state"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(active["state"], "ACTIVE", "the agent never connected: {active}");
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
    let job = admin
        .post(&format!("/v1/backups/{}/run", def["id"].as_str().unwrap()), json!({}))
        .await;
    let mut done = Value::Null;
    for _ in 0..600 {
        done = admin.get(&format!("/v1/jobs/{}", job["id"].as_str().unwrap())).await;
        if ["FAILED", "COMPLETED", "PARTIAL"].contains(&done["state"].as_str().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
