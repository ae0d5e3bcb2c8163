//! `arca-agent run`, the real binary, against the real API router on a loopback port and
//! the real kube-apiserver: it connects and heartbeats (the cluster turns ACTIVE), and
//! since this agent version cannot yet do the work of a backup it fails the job with the
//! reason instead of reporting a backup that did not happen; it serves the kubelet probes;
//! SIGTERM stops it cleanly.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use arca_core::service::ControlPlaneConfig;
use serde_json::{Value, json};

async fn call(http: &reqwest::Client, key: &str, method: reqwest::Method, url: String, body: Value) -> Value {
    let resp = http
        .request(method, url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_command_connects_and_refuses_work_it_cannot_do() {
    let Some(cluster) = arca_testenv::cluster_a().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
    let config = ControlPlaneConfig {
        signup_open: true,
        local_destinations: true,
        heartbeat_interval: Duration::from_secs(1),
        poll_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let scheduler = Arc::new(arca_embedded::EmbeddedScheduler::new(Arc::new(
        arca_core::ports::SystemClock,
    )));
    let state = api::AppState::with_ports(
        items,
        Arc::new(arca_embedded::EmbeddedQueue::new(3)),
        scheduler,
        Default::default(),
        config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });

    let http = reqwest::Client::new();
    let signup: Value = http
        .post(format!("{base}/v1/signup"))
        .json(&json!({ "orgName": arca_testenv::unique("agent-bin") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = signup["adminKey"]["secret"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value| call(&http, &key, reqwest::Method::POST, format!("{base}{path}"), body);
    let dest = post(
        "/v1/destinations",
        json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": dir.path().join("dest") } }),
    )
    .await;
    let registered = post(
        "/v1/clusters",
        json!({ "name": "a", "defaultDestinationId": dest["id"] }),
    )
    .await;
    let cluster_id = registered["id"].as_str().unwrap().to_owned();

    let health_addr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca-agent"))
        .args(["run", "--api-url", &base, "--health-addr", &health_addr, "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .env("ARCA_AGENT_TOKEN", registered["agentToken"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let get = |path: String| call(&http, &key, reqwest::Method::GET, format!("{base}{path}"), Value::Null);
    let mut active = Value::Null;
    for _ in 0..100 {
        active = get(format!("/v1/clusters/{cluster_id}")).await;
        if active["state"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(active["state"], "ACTIVE", "the agent never connected: {active}");
    for probe in ["healthz", "readyz"] {
        let resp = http.get(format!("http://{health_addr}/{probe}")).send().await.unwrap();
        assert!(resp.status().is_success(), "/{probe}: {}", resp.status());
    }

    let def = post(
        "/v1/backups",
        json!({ "name": "all", "clusterId": cluster_id, "selection": { "fullCluster": true } }),
    )
    .await;
    let job = post(&format!("/v1/backups/{}/run", def["id"].as_str().unwrap()), json!({})).await;
    let mut done = Value::Null;
    for _ in 0..150 {
        done = get(format!("/v1/jobs/{}", job["id"].as_str().unwrap())).await;
        if done["state"] == "FAILED" || done["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["state"], "FAILED", "{done}");
    assert!(done["reason"].as_str().unwrap().contains("cannot run"), "{done}");
    let points = get("/v1/recoverypoints".to_owned()).await;
    assert_eq!(points["items"], json!([]), "no recovery point for work not done");

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
