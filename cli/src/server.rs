//! `arca server`: the whole control plane in one process on the embedded adapters.
//!
//! The API is the `arca-api` crate's router, wired as the local API is (`AppState::local`); the background loops call the same functions
//! the Lambdas run: `arca_fn_dispatch::on_schedule` for every schedule the embedded scheduler
//! says is due, `arca_fn_retention::sweep` on an interval, and `drain_dead_letters` (which both
//! of those also do) on its own shorter interval, so lapsed jobs do not wait an hour
//! for the next sweep when no schedule fires. Linked AWS accounts are reached with
//! `AwsCloudConnector` over the standard AWS configuration, and inventoried on the
//! inventory function's fixed schedule (`ControlPlane::inventory_everything`).
//!
//! State is the redb file in the data directory and survives restarts. The queue and
//! the scheduler are in memory, so start-up rebuilds what they held from the store
//! ([`recover`]): every cluster's queue, every definition's schedules, and a message for
//! every unfinished job, whose message was lost with the old process. Re-sending is what
//! a lapsed lease does on AWS, and the poll already handles each state: a PENDING job is
//! leased, a RUNNING one is handed out again (its lease died with the process, so the
//! agent that held it gets `lease_lost` and stops), a CANCELLING one becomes CANCELED.
//! Schedules are synced as new, then caught up: the scheduler loop writes when it last
//! evaluated the schedules ([`WATERMARK_FILE`]), and at start every schedule with a fire
//! time between then and now runs once (missed runs coalesce, as one backup covers them).

pub mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arca_core::control_plane::ControlPlane;
use arca_core::ids::OrgId;
use arca_core::model::backup::BackupDefinition;
use arca_core::model::cloud::ebs::{EksRecreation, EksRecreationState};
use arca_core::model::cluster::Cluster;
use arca_core::model::job::{Job, JobState, JobType};
use arca_core::model::policy::Policy;
use arca_core::model::schedule::schedules_for;
use arca_core::ports::queue::{JobMessage, Queue};
use arca_core::ports::rds::{AwsWorkMessage, EksRecreationWorkMessage, RdsWorkMessage, RdsWorkQueue};
use arca_core::ports::scheduler::Scheduler;
use arca_embedded::EmbeddedScheduler;
use arca_embedded::wiring::LocalPorts;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What `arca server` is started with.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// How often the retention sweep runs (hourly on AWS).
    pub retention_interval: Duration,
    /// How often dead letters are drained.
    pub dead_letter_interval: Duration,
    /// The longest the scheduler loop sleeps: a schedule created meanwhile may fire
    /// earlier than the one it was waiting for, and nothing wakes it.
    pub scheduler_tick: Duration,
    /// How often every linked AWS account is inventoried (12 hours on AWS); the first
    /// run is one interval after the start.
    pub inventory_interval: Duration,
}

impl ServerOptions {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerOptions {
            data_dir,
            listen,
            retention_interval: Duration::from_secs(60 * 60),
            dead_letter_interval: Duration::from_secs(60),
            scheduler_tick: Duration::from_secs(15),
            inventory_interval: Duration::from_secs(12 * 60 * 60),
        }
    }
}

/// What start-up rebuilt from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub orgs: usize,
    pub queues: usize,
    /// Definitions whose schedules were synced (with or without a policy).
    pub definitions: usize,
    /// Unfinished jobs whose message was sent again.
    pub requeued_jobs: usize,
    /// Schedules that missed a fire time while the server was down and run at start.
    pub caught_up_schedules: usize,
}

/// A started server: its address, its control plane and scheduler (tests look at
/// them), and the handles that stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub control_plane: ControlPlane,
    pub scheduler: Arc<EmbeddedScheduler>,
    pub recovered: Recovered,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    store: arca_embedded::StoreLease,
}

impl RunningServer {
    /// Stops serving and the loops, and waits for them and for the redb file to close
    /// (its lock released), so the same data directory can be opened again at once.
    pub async fn stop(self) -> anyhow::Result<()> {
        let RunningServer {
            stop,
            tasks,
            serve,
            control_plane,
            scheduler,
            store,
            ..
        } = self;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        let served = serve.await.context("the API task")?;
        drop((control_plane, scheduler));
        // axum reports the shutdown once every connection task has let go of its
        // shutdown signal, which each does just before dropping its copy of the router
        // (and the state in it): the file closes a moment later.
        let deadline = tokio::time::Instant::now() + STORE_CLOSE_WAIT;
        while !store.is_released() {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("the state is still open {STORE_CLOSE_WAIT:?} after the server stopped");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        served.context("serving the API")
    }
}

/// Starts the control plane on `options.data_dir` and returns once it listens.
pub async fn start(options: ServerOptions) -> anyhow::Result<RunningServer> {
    let config = arca_api::Config::from_env()?;
    // The same composition as the local API (`arca_embedded::wiring` for the state and the
    // in-process ports, `arca_aws::wiring` for what the machine reaches in AWS).
    let (state, ports) = arca_api::AppState::local(&config, &options.data_dir).await?;
    let LocalPorts {
        items,
        queue,
        scheduler,
        rds_queue,
    } = ports;
    // The item-store port has no cross-tenant listing (DynamoDB would need a scan); the
    // embedded store can list its partitions, and the key module says which are orgs.
    let orgs: Vec<OrgId> = items
        .partition_keys()
        .await?
        .iter()
        .filter_map(|pk| arca_core::store::keys::org_of_pk(pk))
        .collect();
    let store = items.lease();
    drop(items);
    let cp = state.control_plane.clone();
    // Unfinished RDS jobs and EKS re-creations lost their (in-memory) messages with the
    // old process.
    // A data directory from an earlier version lacks the newer indexes' keys.
    if let Some(reindexed) = cp.store().reindex_all().await? {
        tracing::info!(reindexed, "records given this version's index keys");
    }
    for org in &orgs {
        for job in cp.store().list_all::<Job>(org).await? {
            let rds = matches!(
                job.job_type,
                JobType::RdsBackup | JobType::RdsCopy | JobType::RdsRestore
            );
            if rds && !job.state.is_terminal() {
                let message = RdsWorkMessage {
                    org_id: *org,
                    job_id: job.id,
                };
                RdsWorkQueue::send(rds_queue.as_ref(), &message.into(), Duration::ZERO).await?;
            }
        }
        for r in cp.store().list_all::<EksRecreation>(org).await? {
            if r.state == EksRecreationState::CreatingCluster {
                let message = EksRecreationWorkMessage {
                    org_id: *org,
                    eks_recreation_id: r.id,
                };
                RdsWorkQueue::send(rds_queue.as_ref(), &message.into(), Duration::ZERO).await?;
            }
        }
    }
    let mut recovered = recover(&cp, queue.as_ref(), scheduler.as_ref(), &orgs).await?;
    let watermark = options.data_dir.join(WATERMARK_FILE);
    if let Some(since) = read_watermark(&watermark)? {
        for (input, due) in scheduler.missed_since(since)? {
            if let Err(e) = cp.alert_missed_run(&input, due).await {
                tracing::warn!(error = %e, definition_id = %input.definition_id, "alerting a missed run");
            }
        }
        recovered.caught_up_schedules = scheduler.catch_up_from(since)?.len();
    }
    tracing::info!(?recovered, "state recovered from the store");

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    // Prometheus metrics on this listener only: the router is the Lambda's too.
    let metrics = Arc::new(metrics::ServerMetrics::new());
    let app = arca_api::router(state)
        .layer(axum::middleware::from_fn_with_state(metrics.clone(), metrics::track))
        .route(
            "/metrics",
            axum::routing::get(metrics::serve).with_state(metrics.clone()),
        );
    let mut serve_stop = stopped.clone();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = serve_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let tasks = vec![
        tokio::spawn(scheduler_loop(
            cp.clone(),
            scheduler.clone(),
            options.scheduler_tick,
            watermark,
            stopped.clone(),
            metrics.clone(),
        )),
        tokio::spawn(every(options.retention_interval, true, stopped.clone(), {
            let cp = cp.clone();
            let metrics = metrics.clone();
            move || {
                let cp = cp.clone();
                let metrics = metrics.clone();
                async move {
                    let swept = arca_fn_retention::sweep(&cp).await;
                    metrics.retention_sweep(swept.is_ok());
                    if let Err(e) = swept {
                        tracing::warn!(error = %e, "retention sweep failed; the next one retries");
                    }
                }
            }
        })),
        // What the inventory function's fixed schedule does on AWS.
        tokio::spawn(every(options.inventory_interval, false, stopped.clone(), {
            let cp = cp.clone();
            move || {
                let cp = cp.clone();
                async move {
                    match cp.inventory_everything().await {
                        Ok(reports) => {
                            let failed = reports
                                .iter()
                                .filter(|r| r.as_ref().map_or(true, |r| r.error.is_some()))
                                .count();
                            tracing::info!(accounts = reports.len(), failed, "inventory of every linked account");
                        }
                        Err(e) => tracing::warn!(error = %e, "the inventory run failed; the next one retries"),
                    }
                }
            }
        })),
        // What SQS delivering the RDS work queue to the RDS function does on AWS.
        tokio::spawn(every(RDS_TICK, true, stopped.clone(), {
            let cp = cp.clone();
            let rds_queue = rds_queue.clone();
            move || {
                let cp = cp.clone();
                let due = rds_queue.due();
                async move {
                    for m in due {
                        step_work(&cp, &m).await;
                    }
                }
            }
        })),
        // What the retention function's `alerts` schedule does on AWS: alert retries and
        // silent agents.
        tokio::spawn(every(ALERT_TICK, false, stopped.clone(), {
            let cp = cp.clone();
            move || {
                let cp = cp.clone();
                async move {
                    if let Err(e) = cp.alert_sweep().await {
                        tracing::warn!(error = %e, "the alert sweep failed; the next one retries");
                    }
                }
            }
        })),
        tokio::spawn(every(options.dead_letter_interval, true, stopped, {
            let cp = cp.clone();
            move || {
                let cp = cp.clone();
                async move {
                    match cp.drain_dead_letters(100).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(count = n, "dead-lettered jobs marked FAILED"),
                        Err(e) => tracing::warn!(error = %e, "draining the dead-letter queue failed"),
                    }
                }
            }
        })),
    ];
    Ok(RunningServer {
        addr,
        control_plane: cp,
        scheduler,
        recovered,
        stop,
        tasks,
        serve,
        store,
    })
}

/// Runs `work` every `interval` until stopped: the first time at once when `now`, else
/// one interval after the start.
async fn every<F, Fut>(interval: Duration, now: bool, mut stopped: watch::Receiver<bool>, work: F)
where
    F: Fn() -> Fut + Send,
    Fut: std::future::Future<Output = ()> + Send,
{
    let period = interval.max(Duration::from_millis(10));
    let first = if now {
        tokio::time::Instant::now()
    } else {
        tokio::time::Instant::now() + period
    };
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The select only decides; the work runs outside it, where no watch guard lives.
        let stop = tokio::select! {
            _ = stopped.wait_for(|s| *s) => true,
            _ = ticks.tick() => false,
        };
        if stop {
            return;
        }
        work().await;
    }
}

/// Fires what is due through the dispatch function, then sleeps until the next fire
/// time (at most `tick`).
async fn scheduler_loop(
    cp: ControlPlane,
    scheduler: Arc<EmbeddedScheduler>,
    tick: Duration,
    watermark: PathBuf,
    mut stopped: watch::Receiver<bool>,
    metrics: Arc<metrics::ServerMetrics>,
) {
    loop {
        metrics.scheduler_tick();
        let evaluated_at = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        match scheduler.due() {
            Ok(fired) => {
                for input in fired {
                    match serde_json::to_value(&input) {
                        Ok(event) => {
                            let answer = arca_fn_dispatch::on_schedule(&cp, event).await;
                            metrics.dispatch(metrics::dispatch_result(&answer));
                            if let Err(e) = answer {
                                tracing::warn!(error = %e, definition_id = %input.definition_id, "dispatch failed");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "encoding a schedule input"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "evaluating the schedules"),
        }
        // Only after the due runs were dispatched: a crash in between catches them up.
        if let Err(e) = write_watermark(&watermark, evaluated_at) {
            tracing::warn!(error = %e, "recording when the schedules were evaluated");
        }
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        let wait = scheduler
            .next_due()
            .and_then(|next| (next - now).to_std().ok())
            .map_or(tick, |d| d.min(tick))
            .max(Duration::from_millis(50));
        let stop = tokio::select! {
            _ = stopped.wait_for(|s| *s) => true,
            () = tokio::time::sleep(wait) => false,
        };
        if stop {
            return;
        }
    }
}

/// One delivery of a work message, as the RDS function steps it. A failure is logged
/// and the message dropped (the step sends the next one itself; a restart re-sends
/// what is unfinished).
async fn step_work(cp: &ControlPlane, m: &AwsWorkMessage) {
    match m {
        AwsWorkMessage::Rds(m) => {
            if let Err(e) = cp.rds_step(&m.org_id, &m.job_id).await {
                tracing::warn!(error = %e, job_id = %m.job_id, "RDS step failed");
            }
        }
        AwsWorkMessage::EksRecreation(m) => {
            if let Err(e) = cp.eks_recreation_step(&m.org_id, &m.eks_recreation_id).await {
                tracing::warn!(error = %e, eks_recreation_id = %m.eks_recreation_id, "EKS re-creation step failed");
            }
        }
    }
}

/// How often the RDS loop looks for due work messages.
const RDS_TICK: Duration = Duration::from_secs(2);
/// How often `arca server` retries due alert deliveries and looks for silent agents.
const ALERT_TICK: Duration = Duration::from_secs(60);
/// How long `RunningServer::stop` waits for the last copy of the state to go.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// When the scheduler loop last evaluated the schedules (RFC 3339), in the data directory.
pub const WATERMARK_FILE: &str = "scheduler-watermark";

fn read_watermark(path: &std::path::Path) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).with_context(|| {
            format!(
                "{} does not hold an RFC 3339 time; delete it to skip catching up",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written to a temporary file and renamed, so a crash never leaves half a time behind.
fn write_watermark(path: &std::path::Path, at: chrono::DateTime<chrono::Utc>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, at.to_rfc3339())?;
    std::fs::rename(tmp, path)
}

/// Rebuilds the in-memory queue and scheduler from the store (see the module doc).
pub async fn recover(
    cp: &ControlPlane,
    queue: &dyn Queue,
    scheduler: &dyn Scheduler,
    orgs: &[OrgId],
) -> anyhow::Result<Recovered> {
    let store = cp.store();
    let mut done = Recovered {
        orgs: orgs.len(),
        ..Recovered::default()
    };
    for org in orgs {
        for cluster in store.list_all::<Cluster>(org).await? {
            queue.create_queue(cluster.id).await?;
            done.queues += 1;
        }
        for def in store.list_all::<BackupDefinition>(org).await? {
            // What `ControlPlane::sync_schedules` does on every definition change.
            let desired = match def.spec.policy_id {
                Some(pid) => match store.find::<Policy>(org, &pid).await? {
                    Some(policy) => schedules_for(*org, &def.id.to_string(), &policy.spec, def.spec.paused)?,
                    None => Vec::new(),
                },
                None => Vec::new(),
            };
            scheduler.sync(&def.id.to_string(), &desired).await?;
            done.definitions += 1;
        }
        for job in store.list_all::<Job>(org).await? {
            if !matches!(job.state, JobState::Pending | JobState::Running | JobState::Cancelling) {
                continue;
            }
            let Some(cluster_id) = job.cluster_id else { continue };
            // A cluster deleted since: its job can reach no agent (the queue is gone).
            let Ok(queue_ref) = queue.queue(cluster_id).await else {
                continue;
            };
            let message = JobMessage {
                org_id: *org,
                cluster_id,
                job_id: job.id,
            };
            queue.send(&queue_ref, &message).await?;
            done.requeued_jobs += 1;
        }
    }
    Ok(done)
}
