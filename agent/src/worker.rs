//! The agent's main loop: connect, heartbeat with facts from the cluster's API server,
//! poll for jobs, and run each one under a lease that is extended while it runs.
//!
//! What a job *does* is a [`JobRunner`] (`crate::runner::ResourceRunner` in the agent);
//! the worker owns the protocol around it.

use std::sync::Arc;
use std::time::Duration;

use arca_core::model::agent::{AgentJob, BackupResult, CompletionReport, ProgressReport};
use arca_core::model::cluster::{
    Capabilities, Heartbeat, Inventory, PvcInfo, StorageClassInfo, VolumeSnapshotClassInfo,
};
use arca_core::model::job::{JobCounters, JobState};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use kube::api::{Api, ListParams};

use crate::facts;
use crate::metrics::{self, ErrorKind, PollResult};
use crate::protocol::{AgentClient, ProtocolError};

/// How the worker is set up (from the agent's Secret and flags).
#[derive(Clone)]
pub struct WorkerConfig {
    /// The Arca API's URL.
    pub api_url: String,
    /// The cluster's agent token. Never logged.
    pub token: String,
    pub agent_version: String,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("api_url", &self.api_url)
            .field("agent_version", &self.agent_version)
            .finish_non_exhaustive()
    }
}

/// Why [`run_until`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Another agent connected with the same token; this one stopped.
    Superseded,
    /// The shutdown signal came.
    Shutdown,
}

/// What running one job produced: the state it ends in and what it made.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub state: Option<JobState>,
    pub reason: Option<String>,
    pub counters: Option<JobCounters>,
    pub backup: Option<BackupResult>,
    /// REPOSITORY_MAINTENANCE jobs: what was reclaimed.
    pub maintenance: Option<arca_core::model::maintenance::MaintenanceResult>,
    /// A verification's restore: what it found.
    pub verification: Option<arca_core::model::verification::VerificationReport>,
    pub messages: Vec<String>,
}

/// Does the work of a job. Implementations report progress through `client` as they go;
/// the worker keeps the lease alive meanwhile.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync {
    async fn run(&self, job: &AgentJob, client: &AgentClient) -> Outcome;
}

/// The agent's facts as a heartbeat: versions, node count, inventory, capabilities.
pub async fn collect_heartbeat(kube: &kube::Client, agent_version: &str) -> anyhow::Result<Heartbeat> {
    let f = facts::collect(kube).await?;
    let storage_classes = Api::<StorageClass>::all(kube.clone())
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|sc| StorageClassInfo {
                    is_default: sc
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                        .is_some_and(|v| v == "true"),
                    name: sc.metadata.name.unwrap_or_default(),
                    provisioner: sc.provisioner,
                })
                .collect()
        })
        .unwrap_or_default();
    let csi_drivers = Api::<CSIDriver>::all(kube.clone())
        .list_metadata(&ListParams::default())
        .await
        .map(|l| l.items.into_iter().filter_map(|d| d.metadata.name).collect())
        .unwrap_or_default();
    let volume_snapshot_classes = if f.capabilities.csi_snapshots {
        crate::volumes::snapshot::list_classes(kube)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|c| VolumeSnapshotClassInfo {
                is_default: c.is_default,
                name: c.name,
                driver: c.driver,
            })
            .collect()
    } else {
        Vec::new()
    };
    let pvcs = Api::<PersistentVolumeClaim>::all(kube.clone())
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|p| PvcInfo {
                    namespace: p.metadata.namespace.unwrap_or_default(),
                    name: p.metadata.name.unwrap_or_default(),
                    storage_class: p.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
                    driver: None,
                    size_bytes: None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Heartbeat {
        kubernetes_version: Some(f.kubernetes_version),
        agent_version: Some(agent_version.to_owned()),
        node_count: u32::try_from(f.node_count).ok(),
        inventory: Some(Inventory {
            namespaces: f.namespaces,
            storage_classes,
            csi_drivers,
            volume_snapshot_classes,
            pvcs,
        }),
        capabilities: Some(Capabilities {
            resource_backup: f.capabilities.resource_backup,
            csi_snapshots: f.capabilities.csi_snapshots,
        }),
    })
}

/// Runs the agent with `runner` doing the jobs until it is superseded or `shutdown`
/// completes (`arca-agent run` passes the resource runner and its signal handler).
pub async fn run_until(
    config: WorkerConfig,
    kube: kube::Client,
    runner: Arc<dyn JobRunner>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Exit> {
    let client = Arc::new(AgentClient::new(&config.api_url, &config.token)?);
    tokio::select! {
        exit = session(&config, &kube, &client, runner) => exit,
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(Exit::Shutdown)
        }
    }
}

async fn session(
    config: &WorkerConfig,
    kube: &kube::Client,
    client: &Arc<AgentClient>,
    runner: Arc<dyn JobRunner>,
) -> anyhow::Result<Exit> {
    let connected = loop {
        match client.connect(&config.agent_version).await {
            Ok(c) => break c,
            Err(e) if e.is_transient() => {
                metrics::global().error(ErrorKind::Connect);
                tracing::warn!(error = %e, "connect failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    tracing::info!(cluster_id = %connected.cluster_id, "connected to Arca");
    let interval = Duration::from_secs(connected.heartbeat_interval_seconds.max(1));
    let lease = Duration::from_secs(connected.lease_seconds.max(3));
    let beats = heartbeats(config.agent_version.clone(), kube.clone(), client.clone(), interval);
    let jobs = jobs(client.clone(), runner, lease);
    let exit = tokio::select! {
        r = beats => r,
        r = jobs => r,
    };
    if let Ok(Exit::Superseded) = exit {
        tracing::error!(
            "superseded: another agent connected with this cluster's token; this agent stops (remove the duplicate \
             deployment, or re-install if this one is meant to run)"
        );
    }
    exit
}

/// Heartbeats until superseded. A failed fact collection still heartbeats (liveness
/// matters more than a fresh inventory).
async fn heartbeats(
    agent_version: String,
    kube: kube::Client,
    client: Arc<AgentClient>,
    interval: Duration,
) -> anyhow::Result<Exit> {
    loop {
        let beat = match collect_heartbeat(&kube, &agent_version).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "collecting cluster facts failed");
                Heartbeat {
                    agent_version: Some(agent_version.clone()),
                    ..Default::default()
                }
            }
        };
        let sent = client.heartbeat(&beat).await;
        metrics::global().heartbeat(sent.is_ok());
        match sent {
            Ok(_) => {}
            Err(ProtocolError::Superseded) => return Ok(Exit::Superseded),
            Err(e) if e.is_transient() => tracing::warn!(error = %e, "heartbeat failed"),
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Polls and runs jobs one at a time until superseded.
async fn jobs(client: Arc<AgentClient>, runner: Arc<dyn JobRunner>, lease: Duration) -> anyhow::Result<Exit> {
    loop {
        let polled = client.poll().await;
        metrics::global().poll(match &polled {
            Ok(Some(_)) => PollResult::Message,
            Ok(None) => PollResult::Empty,
            Err(_) => PollResult::Error,
        });
        let job = match polled {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(ProtocolError::Superseded) => return Ok(Exit::Superseded),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "poll failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(exit) = run_one(&client, runner.as_ref(), &job, lease).await? {
            return Ok(exit);
        }
    }
}

/// Runs one job with its lease kept alive (extended every third of its length), then
/// reports how it ended.
async fn run_one(
    client: &Arc<AgentClient>,
    runner: &dyn JobRunner,
    job: &AgentJob,
    lease: Duration,
) -> anyhow::Result<Option<Exit>> {
    let id = job.job.id;
    tracing::info!(job_id = %id, job_type = ?job.job.job_type, delivery = job.delivery, "job started");
    let keeper = {
        let client = client.clone();
        let token = job.lease_token.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match client.lease(&id, &token).await {
                    Ok(j) if j.state == JobState::Cancelling => return Some(JobState::Cancelling),
                    Ok(_) => {}
                    Err(ProtocolError::Superseded) => return None,
                    Err(e) => {
                        metrics::global().error(ErrorKind::Lease);
                        tracing::warn!(job_id = %id, error = %e, "lease extension failed");
                    }
                }
            }
        })
    };
    let started = std::time::Instant::now();
    metrics::global().job_started(job.job.job_type);
    let outcome = runner.run(job, client).await;
    keeper.abort();
    metrics::global().job_finished(
        job.job.job_type,
        outcome.state.unwrap_or(JobState::Failed),
        started.elapsed(),
    );
    if !outcome.messages.is_empty() {
        let report = ProgressReport {
            lease_token: job.lease_token.clone(),
            counters: outcome.counters.clone(),
            progress: None,
            messages: outcome.messages.clone(),
        };
        match client.progress(&id, &report).await {
            Ok(_) => {}
            Err(ProtocolError::Superseded) => return Ok(Some(Exit::Superseded)),
            Err(e) => {
                metrics::global().error(ErrorKind::Progress);
                tracing::warn!(job_id = %id, error = %e, "progress report failed");
            }
        }
    }
    let report = CompletionReport {
        lease_token: job.lease_token.clone(),
        state: outcome.state.unwrap_or(JobState::Failed),
        reason: outcome.reason,
        counters: outcome.counters,
        progress: None,
        backup: outcome.backup,
        maintenance: outcome.maintenance,
        verification: outcome.verification,
    };
    match client.complete(&id, &report).await {
        Ok(j) => tracing::info!(job_id = %id, state = ?j.state, "job ended"),
        Err(ProtocolError::Superseded) => return Ok(Some(Exit::Superseded)),
        // The job will be redelivered after its lease lapses; nothing else to do here.
        Err(e) => {
            metrics::global().error(ErrorKind::Completion);
            tracing::warn!(job_id = %id, error = %e, "completion report failed");
        }
    }
    Ok(None)
}
