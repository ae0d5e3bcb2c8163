//! What the agent's integration tests share: the real API in-process (embedded adapters,
//! served on a loopback port, an org signed up) and the argument lists of the real
//! `arca-agent` binary's volume commands.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::archive_key::{ArchiveKeyring, ArchiveMasterKey};
use serde_json::Value;

/// A keyring with a fresh master key: the control plane then hands the org's archive key
/// to the agent with each job (no ARCA_ARCHIVE_KEY).
pub fn fresh_keyring() -> Option<ArchiveKeyring> {
    Some(ArchiveKeyring::new(ArchiveMasterKey::generate().unwrap(), vec![]))
}

/// The control plane as the agent tests run it: sign-up open, local destinations allowed,
/// 1 s heartbeats and polls, and [`fresh_keyring`].
pub fn quick_config() -> ControlPlaneConfig {
    ControlPlaneConfig {
        signup_open: true,
        local_destinations: true,
        heartbeat_interval: Duration::from_secs(1),
        poll_wait: Duration::from_secs(1),
        archive_keyring: fresh_keyring(),
        ..Default::default()
    }
}

/// The API's state over a redb file in `dir`, an embedded queue and a scheduler on the
/// system clock, with `config`.
pub fn embedded_state(dir: &Path, config: ControlPlaneConfig) -> arca_api::AppState {
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.join("arca.redb")).unwrap());
    let scheduler = Arc::new(arca_embedded::EmbeddedScheduler::new(Arc::new(
        arca_core::ports::SystemClock,
    )));
    arca_api::AppState::with_ports(
        items,
        Arc::new(arca_embedded::EmbeddedQueue::new(3)),
        scheduler,
        Default::default(),
        config,
    )
}

/// Serves `state` on a loopback port and signs up the org `org_name` there.
pub async fn serve_and_sign_up(state: arca_api::AppState, org_name: &str) -> Admin {
    let base = arca_testenv::api::serve_on_loopback(arca_api::router(state)).await;
    let http = reqwest::Client::new();
    let key = arca_testenv::api::sign_up(&http, &base, org_name).await;
    Admin { http, base, key }
}

/// An org's admin on the API: calls that must succeed.
pub struct Admin {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Admin {
    /// `method path` with `body` (none when null); asserts a 2xx, returns the JSON answer.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{status}: {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, Value::Null).await
    }

    /// Runs the backup definition `definition` now and waits (≤ 60 s) for its job to end;
    /// the job as it ended.
    pub async fn run_backup(&self, definition: &Value) -> Value {
        let job = self
            .post(
                &format!("/v1/backups/{}/run", definition["id"].as_str().unwrap()),
                serde_json::json!({}),
            )
            .await;
        let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
        let mut seen = Value::Null;
        for _ in 0..600 {
            seen = self.get(&path).await;
            if ["FAILED", "COMPLETED", "PARTIAL"].contains(&seen["state"].as_str().unwrap()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    }

    /// Creates `destination` (its `name` and `target`) and registers cluster `a` with it as
    /// its default; the registration (`id`, `agentToken`, ...).
    pub async fn register_cluster_a(&self, destination: Value) -> Value {
        let dest = self.post("/v1/destinations", destination).await;
        self.post(
            "/v1/clusters",
            serde_json::json!({ "name": "a", "defaultDestinationId": dest["id"] }),
        )
        .await
    }
}

/// A running `arca-agent run` of the cluster `registered` (the registration's answer):
/// its process (killed when dropped) and the loopback address of its probe and metrics
/// port.
pub struct RunningAgent {
    pub process: tokio::process::Child,
    pub health_addr: String,
}

/// Starts the real agent binary against `admin`'s API with `kubeconfig` and waits until the
/// control plane sees the cluster ACTIVE. `stderr`: where its log goes.
pub async fn run_agent(admin: &Admin, registered: &Value, kubeconfig: &Path, stderr: Stdio) -> RunningAgent {
    let health_addr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_arca-agent"))
        .args([
            "run",
            "--api-url",
            &admin.base,
            "--health-addr",
            &health_addr,
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .env("ARCA_AGENT_TOKEN", registered["agentToken"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let cluster = format!("/v1/clusters/{}", registered["id"].as_str().unwrap());
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = admin.get(&cluster).await;
        if seen["state"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["state"], "ACTIVE", "the agent never connected: {seen}");
    RunningAgent { process, health_addr }
}

/// `repo init` of `repo`, with a cheap key derivation.
pub fn repo_init(repo: &str) -> Vec<&str> {
    vec!["repo", "init", "--repo", repo, "--kdf-memory-kib", "64"]
}

/// `volume backup` of `source` into `repo`'s volume `volume`.
pub fn volume_backup<'a>(repo: &'a str, volume: &'a str, source: &'a str) -> Vec<&'a str> {
    vec![
        "volume", "backup", "--repo", repo, "--volume", volume, "--source", source,
    ]
}

/// `volume restore` of `repo`'s volume `volume` at `snapshot` onto `target`.
pub fn volume_restore<'a>(repo: &'a str, volume: &'a str, snapshot: &'a str, target: &'a Path) -> Vec<&'a str> {
    vec![
        "volume",
        "restore",
        "--repo",
        repo,
        "--volume",
        volume,
        "--snapshot",
        snapshot,
        "--target",
        target.to_str().unwrap(),
    ]
}
