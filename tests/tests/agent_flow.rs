//! End to end: the real API router served on a loopback port (embedded store, queue and
//! scheduler), the real agent worker heartbeating with facts from the real
//! kube-apiserver of cluster a, a schedule fired by the embedded scheduler's clock, and
//! the job travelling to the agent and back. Also: the reasons a run is SKIPPED, and a
//! second agent with the same token making the first one stop.
//!
//! The worker completes the K8S_BACKUP job with its STUB runner (resource backup is
//! another issue); the job log says so.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arca_agent::protocol::AgentClient;
use arca_agent::worker::{self, Exit, JobRunner, Outcome, WorkerConfig};
use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::agent::{AgentJob, BackupResult};
use arca_core::model::job::{JobCounters, JobState, JobType};
use arca_core::ports::scheduler::Scheduler;
use arca_e2e::{TestClock, User};
use arca_embedded::{EmbeddedQueue, EmbeddedScheduler};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_travels_to_the_agent_and_back() {
    let Some(kube) = arca_testenv::cluster_a().await else {
        return;
    };
    // The control plane on the embedded adapters, served on a loopback port.
    let dir = tempfile::tempdir().unwrap();
    let items = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
    let clock = Arc::new(TestClock::starting_now());
    let scheduler = Arc::new(EmbeddedScheduler::new(clock.clone()));
    let config = ControlPlaneConfig {
        signup_open: true,
        local_destinations: true,
        heartbeat_interval: Duration::from_secs(1),
        poll_wait: Duration::from_secs(1),
        lease: Duration::from_secs(6),
        ..Default::default()
    };
    let state = arca_api::AppState::with_ports(
        items,
        Arc::new(EmbeddedQueue::new(3)),
        scheduler.clone(),
        Default::default(),
        config,
    );
    let cp = state.control_plane.clone();
    let base = arca_testenv::api::serve_on_loopback(arca_api::router(state)).await;

    // A user signs up and registers the cluster.
    let user = User::sign_up(&base).await;
    let dest = user
        .post(
            "/v1/destinations",
            json!({ "name": "local", "target": { "kind": "LOCAL_FILESYSTEM", "path": "/tmp/arca-e2e" } }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let registered = user
        .post(
            "/v1/clusters",
            json!({ "name": "cluster-a", "defaultDestinationId": dest }),
        )
        .await;
    let cluster = registered["id"].as_str().unwrap().to_owned();
    let token = registered["agentToken"].as_str().unwrap().to_owned();
    let etag_before = registered["version"].clone();

    // The agent connects and heartbeats with the real API server's facts.
    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_config = WorkerConfig {
        api_url: base.clone(),
        token: token.clone(),
        agent_version: "0.1.0-e2e".into(),
    };
    let first = tokio::spawn(worker::run_until(
        agent_config.clone(),
        kube.client.clone(),
        Arc::new(StubRunner),
        async move {
            let _ = first_stopped.await;
        },
    ));
    let active = user
        .wait_for(&format!("/v1/clusters/{cluster}"), |c| c["state"] == "ACTIVE")
        .await;
    assert!(
        active["kubernetesVersion"].as_str().unwrap().starts_with("v1."),
        "{active}"
    );
    assert_eq!(active["agentVersion"], "0.1.0-e2e");
    let namespaces = active["inventory"]["namespaces"].as_array().unwrap();
    assert!(namespaces.iter().any(|n| n == "kube-system"), "{active}");
    assert_eq!(active["capabilities"]["csiSnapshots"], true, "{active}");
    assert_eq!(
        active["version"], etag_before,
        "heartbeats leave the cluster's ETag alone"
    );

    // A policy and a definition: the schedule exists, exactly one per row. The daily row
    // is twelve hours from now, so it never fires in the test's minute (a fixed 03:00 did,
    // for a run at 02:59 UTC).
    let hours_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 3600;
    let daily = format!("0 {} * * *", (hours_now + 12) % 24);
    let policy = user
        .post(
            "/v1/policies",
            json!({ "name": "every-minute", "schedules": [
                { "cron": "* * * * *", "retainDays": 3, "keepLast": 2 },
                { "cron": daily, "retainDays": 30 } ] }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let def = user
        .post(
            "/v1/backups",
            json!({ "name": "all", "clusterId": cluster, "selection": { "fullCluster": true }, "policyId": policy }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let schedules = scheduler.list(&def).await.unwrap();
    assert_eq!(
        schedules
            .iter()
            .map(|s| (s.name.clone(), s.enabled))
            .collect::<Vec<_>>(),
        vec![(format!("{def}-0"), true), (format!("{def}-1"), true)]
    );

    // Time passes a minute: row 0 fires; dispatch runs it.
    clock.advance(Duration::from_secs(61));
    let due = scheduler.due().unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].rule, 0);
    let job = cp.dispatch_scheduled(&due[0]).await.unwrap();
    assert_eq!(format!("{:?}", job.state), "Pending", "{job:?}");
    // A concurrent duplicate of the same fire is SKIPPED, naming the running job.
    let dup = cp.dispatch_scheduled(&due[0]).await.unwrap();
    assert_eq!(format!("{:?}", dup.state), "Skipped");
    let reason = dup.reason.clone().unwrap();
    assert!(reason.contains("another job of this definition is still"), "{reason}");
    assert!(reason.contains(&job.id.to_string()), "{reason}");

    // The agent takes it, reports and completes it; a recovery point appears.
    let done = user
        .wait_for(&format!("/v1/jobs/{}", job.id), |j| j["state"] == "COMPLETED")
        .await;
    assert_eq!(done["trigger"], "SCHEDULED");
    assert!(done["startedAt"].is_string() && done["endedAt"].is_string(), "{done}");
    let log: Vec<&str> = done["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(log.iter().any(|l| l.starts_with("taken by the agent")), "{log:?}");
    assert!(
        log.iter().any(|l| l.starts_with("STUB:")),
        "the stub says what it did not do: {log:?}"
    );
    let rp_id = done["recoveryPointId"].as_str().unwrap();
    let rp = user.get(&format!("/v1/recoverypoints/{rp_id}")).await;
    assert_eq!(rp["state"], "READY");
    assert_eq!(rp["keepLast"], 2);
    assert!(rp["expiresAt"].is_string(), "{rp}");

    // A paused definition's schedule is SKIPPED, and its schedules are disabled.
    user.post(&format!("/v1/backups/{def}/pause"), json!({})).await;
    assert!(scheduler.list(&def).await.unwrap().iter().all(|s| !s.enabled));
    let paused = cp.dispatch_scheduled(&due[0]).await.unwrap();
    assert_eq!(paused.reason.as_deref(), Some("definition paused"));
    user.post(&format!("/v1/backups/{def}/resume"), json!({})).await;

    // Run now takes the same path, with a retention override.
    let run = user
        .post(
            &format!("/v1/backups/{def}/run"),
            json!({ "retention": { "retainDays": 1 } }),
        )
        .await;
    assert_eq!(run["state"], "PENDING", "{run}");
    user.wait_for(&format!("/v1/jobs/{}", run["id"].as_str().unwrap()), |j| {
        j["state"] == "COMPLETED"
    })
    .await;

    // A disconnected cluster: one whose agent never connected skips with its reason.
    let idle = user
        .post("/v1/clusters", json!({ "name": "idle", "defaultDestinationId": dest }))
        .await;
    let idle_def = user
        .post(
            "/v1/backups",
            json!({ "name": "idle", "clusterId": idle["id"], "selection": { "fullCluster": true }, "policyId": policy }),
        )
        .await;
    let skipped = user
        .post(
            &format!("/v1/backups/{}/run", idle_def["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(skipped["state"], "SKIPPED");
    assert!(
        skipped["reason"].as_str().unwrap().starts_with("cluster not active"),
        "{skipped}"
    );

    // A second agent with the same token: the first one stops by itself.
    let second = tokio::spawn(worker::run_until(
        agent_config,
        kube.client.clone(),
        Arc::new(StubRunner),
        std::future::pending(),
    ));
    let exit = tokio::time::timeout(Duration::from_secs(15), first)
        .await
        .expect("the first agent stops within a few heartbeats")
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Superseded);
    drop(stop_first);
    // The second one works: the next run reaches it.
    let run = user.post(&format!("/v1/backups/{def}/run"), json!({})).await;
    user.wait_for(&format!("/v1/jobs/{}", run["id"].as_str().unwrap()), |j| {
        j["state"] == "COMPLETED"
    })
    .await;
    second.abort();
}

/// Completes jobs without doing their work (labelled so in the job's log): this test is
/// about the protocol between the worker and the API, not what a job does.
struct StubRunner;

#[async_trait::async_trait]
impl JobRunner for StubRunner {
    async fn run(&self, job: &AgentJob, _client: &AgentClient) -> Outcome {
        match job.job.job_type {
            JobType::K8sBackup => Outcome {
                state: Some(JobState::Completed),
                reason: None,
                counters: Some(JobCounters::default()),
                backup: Some(BackupResult {
                    // Where a real backup's archive would be, in a destination without a
                    // prefix of its own (an archive id is alphanumeric).
                    prefix: arca_core::model::layout::archive_location(
                        &arca_core::model::layout::cluster_folder(
                            &arca_core::model::layout::cluster_prefix(
                                "",
                                &job.job.org_id,
                                &job.job.cluster_id.unwrap_or_default(),
                            ),
                            arca_core::model::layout::RESOURCES_FOLDER,
                        ),
                        &job.job.id.to_string().replace('_', ""),
                    ),
                    ..Default::default()
                }),
                messages: vec![
                    "STUB: resource backup is not implemented in this agent yet; nothing was backed up".into(),
                ],
                maintenance: None,
                verification: None,
            },
            JobType::DeleteBackup => Outcome {
                state: Some(JobState::Completed),
                messages: vec!["STUB: no stored data was deleted (the data path arrives with its issue)".into()],
                ..Default::default()
            },
            other => Outcome {
                state: Some(JobState::Failed),
                reason: Some(format!("this agent cannot run {other:?} jobs yet")),
                ..Default::default()
            },
        }
    }
}
