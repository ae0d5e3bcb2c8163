//! The load: API routes over HTTP at a fixed concurrency, the dispatch burst, and the table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use arca_core::control_plane::ControlPlane;
use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::counting::{CountingItemStore, Counts};
use crate::seed::{SESSION, Seeded, seconds, thousands};

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub store: &'static str,
    pub size: &'static str,
    pub operation: String,
    /// Requests (or items, dispatches, deletion jobs) per second.
    pub rate: Option<f64>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub reads: Option<f64>,
    pub writes: Option<f64>,
    pub wall: Option<Duration>,
    /// Something that makes the numbers suspect (errors, skips): listed under the table.
    pub problem: Option<String>,
}

impl Row {
    pub fn new(store: &'static str, size: &'static str, operation: String) -> Self {
        Row {
            store,
            size,
            operation,
            rate: None,
            p50: None,
            p99: None,
            reads: None,
            writes: None,
            wall: None,
            problem: None,
        }
    }
}

/// The page the list routes ask for: one every size fills (the smallest org has 10
/// clusters), so sizes compare like for like; `ClustersDefaultPage` shows the default's cost.
const LIST_PAGE: u32 = 10;

/// The routes measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The default page (50): what a page of that size costs at every size.
    ClustersDefaultPage,
    Clusters,
    Backups,
    RecoveryPoints,
    RecoveryPointsOfCluster,
    Jobs,
    RecoveryPoint,
    Heartbeat,
}

impl Route {
    pub const ALL: [Route; 8] = [
        Route::ClustersDefaultPage,
        Route::Clusters,
        Route::Backups,
        Route::RecoveryPoints,
        Route::RecoveryPointsOfCluster,
        Route::Jobs,
        Route::RecoveryPoint,
        Route::Heartbeat,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::ClustersDefaultPage => "GET /v1/clusters (default page: 50)",
            Route::Clusters => "GET /v1/clusters?limit=10",
            Route::Backups => "GET /v1/backups?limit=10",
            Route::RecoveryPoints => "GET /v1/recoverypoints?limit=10",
            Route::RecoveryPointsOfCluster => "GET /v1/recoverypoints?clusterId=&limit=10",
            Route::Jobs => "GET /v1/jobs?limit=10",
            Route::RecoveryPoint => "GET /v1/recoverypoints/{id}",
            Route::Heartbeat => "POST /v1/agent/heartbeat",
        }
    }

    /// The `i`th request of this route (clusters and points taken in turn), the `k`th of
    /// worker `w` of `workers`. A worker heartbeats for its own agents only (clusters `w`,
    /// `w + workers`, ...), as agents do not heartbeat twice at once; with fewer clusters
    /// than workers, some share.
    fn request(
        self,
        client: &reqwest::Client,
        base: &str,
        seeded: &Seeded,
        i: usize,
        (w, k, workers): (usize, usize, usize),
    ) -> reqwest::RequestBuilder {
        let key = format!("Bearer {}", seeded.api_key.expose());
        let get = |path: String| client.get(format!("{base}{path}")).header("authorization", &key);
        match self {
            Route::ClustersDefaultPage => get("/v1/clusters".into()),
            Route::Clusters => get(format!("/v1/clusters?limit={LIST_PAGE}")),
            Route::Backups => get(format!("/v1/backups?limit={LIST_PAGE}")),
            Route::RecoveryPoints => get(format!("/v1/recoverypoints?limit={LIST_PAGE}")),
            Route::RecoveryPointsOfCluster => get(format!(
                "/v1/recoverypoints?clusterId={}&limit={LIST_PAGE}",
                seeded.clusters[i % seeded.clusters.len()]
            )),
            Route::Jobs => get(format!("/v1/jobs?limit={LIST_PAGE}")),
            Route::RecoveryPoint => get(format!(
                "/v1/recoverypoints/{}",
                seeded.point_sample[i % seeded.point_sample.len()]
            )),
            Route::Heartbeat => client
                .post(format!("{base}/v1/agent/heartbeat"))
                .header(
                    "authorization",
                    format!("Bearer {}", {
                        let agents = seeded.agent_tokens.len();
                        let own = (agents / workers).max(1);
                        seeded.agent_tokens[(w + workers * (k % own)) % agents].expose()
                    }),
                )
                .header("x-arca-agent-session", SESSION)
                .json(&json!({
                    "kubernetesVersion": "v1.33.2",
                    "agentVersion": env!("CARGO_PKG_VERSION"),
                    "nodeCount": 3,
                })),
        }
    }
}

/// Latencies sorted, and what to make of them.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Latencies(all)
    }

    /// The nearest-rank percentile.
    fn percentile(&self, p: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        Some(self.0[rank.clamp(1, self.0.len()) - 1])
    }
}

/// `n` requests of `route`, `concurrency` at a time, after a warm-up of a tenth of that;
/// no new request is sent after `cap` (a route far slower than expected still ends).
#[allow(clippy::too_many_arguments)]
pub async fn drive(
    client: &reqwest::Client,
    base: &str,
    route: Route,
    seeded: &Seeded,
    n: usize,
    concurrency: usize,
    cap: Duration,
    counting: &CountingItemStore,
    mut row: Row,
) -> anyhow::Result<Row> {
    let warm_up = (n / 10).max(1);
    run(client, base, route, seeded, warm_up, concurrency, cap / 10).await?;
    let before = counting.counts();
    let started = Instant::now();
    let (latencies, failures) = run(client, base, route, seeded, n, concurrency, cap).await?;
    let wall = started.elapsed();
    let used: Counts = counting.counts() - before;
    let done = latencies.len().max(1);
    let latencies = Latencies::new(latencies);
    row.rate = Some(done as f64 / wall.as_secs_f64());
    row.p50 = latencies.percentile(50.0);
    row.p99 = latencies.percentile(99.0);
    row.reads = Some(used.reads as f64 / done as f64);
    row.writes = Some(used.writes as f64 / done as f64);
    row.wall = Some(wall);
    let mut problems = Vec::new();
    if done < n {
        problems.push(format!("stopped after {} s: {done} of {n} requests sent", seconds(cap)));
    }
    if let Some((count, first)) = failures {
        problems.push(format!("{count} of {done} requests failed; the first: {first}"));
    }
    if !problems.is_empty() {
        row.problem = Some(problems.join("; "));
    }
    Ok(row)
}

/// The latencies of `n` requests, and the failures (how many, the first one).
async fn run(
    client: &reqwest::Client,
    base: &str,
    route: Route,
    seeded: &Seeded,
    n: usize,
    concurrency: usize,
    cap: Duration,
) -> anyhow::Result<(Vec<Duration>, Option<(usize, String)>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + cap;
    let count = concurrency.max(1);
    let workers = (0..count).map(|w| {
        let next = next.clone();
        async move {
            let mut latencies = Vec::new();
            let mut failures: Option<(usize, String)> = None;
            for k in 0.. {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || Instant::now() > deadline {
                    break;
                }
                let request = route.request(client, base, seeded, i, (w, k, count));
                let t = Instant::now();
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.bytes().await;
                        match body {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                latencies.push(t.elapsed());
                if let Err(e) = outcome {
                    let f = failures.get_or_insert((0, e));
                    f.0 += 1;
                }
            }
            (latencies, failures)
        }
    });
    let results = futures::future::join_all(workers).await;
    let mut latencies = Vec::with_capacity(n);
    let mut failures: Option<(usize, String)> = None;
    for (l, f) in results {
        latencies.extend(l);
        if let Some((count, first)) = f {
            let all = failures.get_or_insert((0, first));
            all.0 += count;
        }
    }
    Ok((latencies, failures))
}

/// One burst: every burst definition's schedule (rule 0) fires at once and goes through
/// the dispatch function, `concurrency` at a time.
pub async fn dispatch_burst(
    cp: &ControlPlane,
    seeded: &Seeded,
    concurrency: usize,
    cap: Duration,
    counting: &CountingItemStore,
    mut row: Row,
) -> anyhow::Result<Row> {
    let n = seeded.burst_definitions.len();
    let before = counting.counts();
    let started = Instant::now();
    let deadline = started + cap;
    // `None`: not sent, the cap having passed.
    let outcomes: Vec<Option<(Duration, Result<String, String>)>> = stream::iter(seeded.burst_definitions.iter())
        .map(|def| async move {
            if Instant::now() > deadline {
                return None;
            }
            let event = json!({ "orgId": seeded.burst_org, "definitionId": def.to_string(), "rule": 0 });
            let t = Instant::now();
            let result = arca_fn_dispatch::on_schedule(cp, event).await;
            let state = result
                .map(|v| v["state"].as_str().unwrap_or("?").to_string())
                .map_err(|e| e.to_string());
            Some((t.elapsed(), state))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let wall = started.elapsed();
    let used: Counts = counting.counts() - before;
    let sent: Vec<_> = outcomes.into_iter().flatten().collect();
    let done = sent.len();
    let pending = sent.iter().filter(|(_, s)| s.as_deref() == Ok("PENDING")).count();
    let latencies = Latencies::new(sent.iter().map(|(d, _)| *d).collect());
    row.operation = format!(
        "dispatch burst: {} due schedules, {} at a time ({} s in all)",
        thousands(n as u64),
        concurrency.max(1),
        seconds(wall)
    );
    row.rate = Some(done as f64 / wall.as_secs_f64());
    row.p50 = latencies.percentile(50.0);
    row.p99 = latencies.percentile(99.0);
    row.reads = Some(used.reads as f64 / done.max(1) as f64);
    row.writes = Some(used.writes as f64 / done.max(1) as f64);
    row.wall = Some(wall);
    let mut problems = Vec::new();
    if done < n {
        problems.push(format!("stopped after {} s: {done} of {n} dispatched", seconds(cap)));
    }
    if pending != done {
        let first = sent
            .iter()
            .find(|(_, s)| s.as_deref() != Ok("PENDING"))
            .map(|(_, s)| format!("{s:?}"))
            .context("a dispatch that did not run")?;
        problems.push(format!(
            "{} of {done} dispatches made no PENDING job; the first: {first}",
            done - pending
        ));
    }
    if !problems.is_empty() {
        row.problem = Some(problems.join("; "));
    }
    Ok(row)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 100.0 => thousands(v.round() as u64),
        Some(v) => format!("{v:.1}"),
    }
}

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| store | size | operation | req/s | p50 ms | p99 ms | reads/op | writes/op | wall s |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.store,
            r.size,
            r.operation,
            num(r.rate),
            ms(r.p50),
            ms(r.p99),
            num(r.reads),
            num(r.writes),
            r.wall.map_or("-".into(), seconds),
        ));
    }
    out
}
