//! The in-process control plane the agent end-to-end tests share: the real API router on
//! a loopback port over an embedded store, queue and scheduler, with a clock the test
//! moves, a signed-up org, and a real agent worker (the real [`ResourceRunner`]) per
//! cluster, each against its kube-apiserver.

use std::sync::Arc;
use std::time::Duration;

use arca_agent::runner::{ArchiveKey, ResourceRunner};
use arca_agent::worker::{self, WorkerConfig};
use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::store::Store;
use arca_embedded::{EmbeddedQueue, EmbeddedScheduler};
use serde_json::{Value, json};

use crate::{TestClock, User};

pub struct Harness {
    pub cp: ControlPlane,
    pub clock: Arc<TestClock>,
    /// The org's admin.
    pub user: User,
    pub base: String,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts the API with `config`, made quick for tests (sign-up open, local
    /// destinations allowed, 1 s heartbeats and polls, 30 s leases, an archive master key
    /// so every agent of the org gets the org's key), and signs an org up.
    pub async fn start(config: ControlPlaneConfig) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).expect("redb"));
        let clock = Arc::new(TestClock::starting_now());
        let config = ControlPlaneConfig {
            signup_open: true,
            local_destinations: true,
            heartbeat_interval: Duration::from_secs(1),
            poll_wait: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            archive_keyring: Some(arca_core::model::archive_key::ArchiveKeyring::new(
                arca_core::model::archive_key::ArchiveMasterKey::generate().expect("master key"),
                vec![],
            )),
            ..config
        };
        let cp = ControlPlane::new(Store::new(items), Default::default(), clock.clone(), config)
            .with_queue(Arc::new(EmbeddedQueue::new(3)))
            .with_scheduler(Arc::new(EmbeddedScheduler::new(clock.clone())));
        let cp = arca_aws::wiring::with_alert_senders(cp);
        let state = arca_api::AppState {
            control_plane: cp.clone(),
            agent: Default::default(),
        };
        let base = arca_testenv::api::serve_on_loopback(arca_api::router(state)).await;
        let user = User::sign_up(&base).await;
        Harness {
            cp,
            clock,
            user,
            base,
            stops: Vec::new(),
            _dir: dir,
        }
    }

    /// Registers cluster `name` (with `registration`'s other fields) and runs its agent
    /// worker against `client`; returns the cluster's id once it is ACTIVE.
    pub async fn agent(&mut self, name: &str, client: &kube::Client, registration: Value) -> String {
        let mut body = json!({ "name": name });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), registration.as_object()) {
            b.extend(extra.clone());
        }
        let registered = self.user.post("/v1/clusters", body).await;
        let id = registered["id"].as_str().expect("cluster id").to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = ResourceRunner::new(client.clone(), ArchiveKey::FromControlPlane)
            .with_progress_every(Duration::from_millis(200));
        tokio::spawn(worker::run_until(
            WorkerConfig {
                api_url: self.base.clone(),
                token: registered["agentToken"].as_str().expect("agent token").to_owned(),
                agent_version: "0.1.0-e2e".into(),
            },
            client.clone(),
            Arc::new(runner),
            async move {
                let _ = stopped.await;
            },
        ));
        self.user
            .wait_for(&format!("/v1/clusters/{id}"), |c| c["state"] == "ACTIVE")
            .await;
        self.stops.push(stop);
        id
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}
