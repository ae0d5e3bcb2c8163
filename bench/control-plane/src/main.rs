//! `arca-bench-control-plane`: the control plane's scale bench (issue #23).
//!
//! For each store (the embedded redb store on a temp dir; DynamoDB on moto) and each size it
//! seeds synthetic data straight through `arca_core::store`, serves the real API router
//! (`arca_api::router`) on a loopback port in this process and measures, over HTTP, the
//! main routes at a fixed concurrency; then one dispatch burst through the dispatch function
//! (`arca_fn_dispatch::on_schedule`, what `arca server`'s scheduler loop and the dispatch
//! Lambda call per due schedule) and one retention sweep (`ControlPlane::retention_sweep`).
//! Item reads and writes are counted by a wrapper around the store adapter. It prints one
//! markdown table and writes it to `--out`.
//!
//! Why a binary of its own crate (`bench/control-plane`, `publish = false`) and not a
//! `[[bench]]`: the test command (`cargo test --workspace --all-targets`) runs bench targets,
//! and a bench with `harness = false` runs as a plain program, so this would run in CI for
//! minutes. A binary target with `test = false` is only compiled by `--all-targets`
//! (clippy and the test build keep it honest) and run by `scripts/bench-control-plane.sh`.
//! Its own crate, because it needs the API, the dispatch function and both adapters, which
//! no existing crate has together as dependencies.
//!
//! The queue and the scheduler are the in-process ones for both stores: what is measured is
//! the control plane over its item store. The API's background loops do not run.

mod counting;
mod load;
mod seed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arca_core::control_plane::ControlPlaneConfig;
use arca_core::model::plan::PlanLimits;
use arca_core::ports::item_store::ItemStore;
use arca_core::store::Store;
use arca_embedded::{EmbeddedQueue, EmbeddedScheduler, RedbItemStore};
use clap::{Parser, ValueEnum};

use crate::counting::{CountingItemStore, Counts};
use crate::load::{Route, Row};
use crate::seed::{Size, seconds, thousands};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Embedded,
    Dynamo,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded (redb)",
            StoreKind::Dynamo => "DynamoDB (moto)",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SizeName {
    /// A few seconds: for trying the bench out, not in the default set.
    Tiny,
    Small,
    Medium,
    Large,
}

/// The sizes. The embedded store gets the sizes; moto (one Python process, every
/// item in its memory, every call slower as the table grows) gets sizes it serves in
/// minutes.
fn size(store: StoreKind, name: SizeName) -> Size {
    let s = |name, orgs, clusters, points, measured_points, other_clusters| Size {
        name,
        orgs,
        clusters,
        points,
        measured_points,
        other_clusters,
    };
    match (store, name) {
        (_, SizeName::Tiny) => s("tiny", 3, 5, 300, 200, 2),
        (_, SizeName::Small) => s("small", 1, 10, 1_000, 1_000, 0),
        (StoreKind::Embedded, SizeName::Medium) => s("medium", 10, 1_000, 100_000, 50_000, 10),
        (StoreKind::Embedded, SizeName::Large) => s("large", 10_000, 1_000, 1_000_000, 100_000, 1),
        // moto answers one DynamoDB call at a time (scripts/moto_server.py), and a query, a
        // GSI query above all, costs it time in proportion to the partition or the table;
        // a transaction copies the tables it touches. Its times grow with the table, not
        // with what a call reads; its read and write counts are the adapter's, exact.
        (StoreKind::Dynamo, SizeName::Medium) => s("medium", 10, 100, 3_000, 1_500, 2),
        (StoreKind::Dynamo, SizeName::Large) => s("large", 100, 300, 6_000, 3_000, 1),
    }
}

/// The control plane's scale bench: seeds each store at each size and prints one table of
/// API latencies (over HTTP), one dispatch burst and one retention sweep, with the item
/// reads and writes of each operation. DynamoDB needs moto's endpoint in the environment
/// (`AWS_ENDPOINT_URL`, as `scripts/testenv.sh env` prints it).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Stores to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "embedded,dynamo")]
    stores: Vec<StoreKind>,
    /// Sizes to measure (tiny is for trying it out).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "small,medium,large")]
    sizes: Vec<SizeName>,
    /// Requests per route on the embedded store.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Requests per route on DynamoDB (moto serves one request at a time).
    #[arg(long, default_value_t = 100)]
    dynamo_requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Longest a route or the dispatch burst is driven on the embedded store (nothing new
    /// is sent after it; the row says so).
    #[arg(long, default_value_t = 180)]
    max_route_seconds: u64,
    /// The same on DynamoDB.
    #[arg(long, default_value_t = 60)]
    dynamo_max_route_seconds: u64,
    /// Due schedules in the dispatch burst on the embedded store.
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// Due schedules in the dispatch burst on DynamoDB.
    #[arg(long, default_value_t = 200)]
    dynamo_burst: usize,
    /// Dispatches in flight at once on the embedded store (1: one after another, as
    /// `arca server`'s scheduler loop does).
    #[arg(long, default_value_t = 1)]
    dispatch_concurrency: usize,
    /// Dispatches in flight at once on DynamoDB (each schedule is its own Lambda
    /// invocation on AWS).
    #[arg(long, default_value_t = 8)]
    dynamo_dispatch_concurrency: usize,
    /// Where the embedded stores are made (a temporary directory inside it per size).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the table (with its notes) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    if args.stores.contains(&StoreKind::Dynamo) && std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        bail!(
            "DynamoDB is measured on moto: set AWS_ENDPOINT_URL (eval \"$(ARCA_TESTENV_NODES=0 scripts/testenv.sh \
             env)\"), or pass --stores embedded"
        );
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &store in &args.stores {
        for &name in &args.sizes {
            let size = size(store, name);
            eprintln!("== {} / {}: {}", store.name(), size.name, size.describe());
            let first = rows.len();
            let outcome = run(&args, store, &size, &mut rows).await;
            eprint!("{}", load::table(&rows[first..]));
            match outcome {
                Ok(note) => notes.push(note),
                // A size that fails (moto gone, say) is reported, and the others still run.
                Err(e) => {
                    eprintln!("   FAILED: {e:#}");
                    notes.push(format!(
                        "{} / {}: {}; FAILED (the rows before the failure are kept): {e:#}",
                        store.name(),
                        size.name,
                        size.describe()
                    ));
                }
            }
            // The table so far, so an interrupted run still leaves what it measured.
            if let Some(out) = &args.out {
                let report = render(&args, &rows, &notes, started.elapsed());
                std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
            }
        }
    }
    let report = render(&args, &rows, &notes, started.elapsed());
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("written to {}", out.display());
    }
    if notes.iter().any(|n| n.contains("FAILED")) {
        bail!("some sizes failed (see the notes above the table)");
    }
    Ok(())
}

/// The adapter of `store` for one size: a fresh redb file or a fresh DynamoDB table, and
/// what removes it afterwards.
async fn open_store(
    args: &Args,
    store: StoreKind,
    size: &Size,
) -> anyhow::Result<(
    Arc<dyn ItemStore>,
    Option<tempfile::TempDir>,
    Option<(aws_sdk_dynamodb::Client, String)>,
)> {
    match store {
        StoreKind::Embedded => {
            let dir = match &args.dir {
                Some(base) => {
                    std::fs::create_dir_all(base)?;
                    tempfile::Builder::new().prefix("arca-bench-").tempdir_in(base)?
                }
                None => tempfile::Builder::new().prefix("arca-bench-").tempdir()?,
            };
            let items = RedbItemStore::open(dir.path().join(arca_embedded::wiring::DB_FILE))?;
            Ok((Arc::new(items), Some(dir), None))
        }
        StoreKind::Dynamo => {
            let client = aws_sdk_dynamodb::Client::new(&arca_aws::config::load().await);
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let table = format!("arca-bench-{}-{stamp}", size.name);
            arca_aws::dynamo::create_table(&client, &table)
                .await
                .with_context(|| format!("creating table {table} on moto"))?;
            let items = arca_aws::DynamoItemStore::new(client.clone(), &table);
            Ok((Arc::new(items), None, Some((client, table))))
        }
    }
}

/// One store at one size: seed, serve, measure; the rows of the table and a line of notes.
/// Rows go into `rows` as they are measured, so a failure keeps those before it.
async fn run(args: &Args, store: StoreKind, size: &Size, rows: &mut Vec<Row>) -> anyhow::Result<String> {
    let (requests, burst, dispatch_concurrency, cap) = match store {
        StoreKind::Embedded => (
            args.requests,
            args.burst,
            args.dispatch_concurrency,
            args.max_route_seconds,
        ),
        StoreKind::Dynamo => (
            args.dynamo_requests,
            args.dynamo_burst,
            args.dynamo_dispatch_concurrency,
            args.dynamo_max_route_seconds,
        ),
    };
    let cap = Duration::from_secs(cap);
    // What else the machine was doing (the 1-minute load average before this size).
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let (adapter, dir, table) = open_store(args, store, size).await?;
    let counting = Arc::new(CountingItemStore::new(adapter));
    let queue = Arc::new(EmbeddedQueue::new(arca_aws::wiring::DEFAULT_MAX_RECEIVES));
    let scheduler = Arc::new(EmbeddedScheduler::new(Arc::new(arca_core::ports::SystemClock)));
    let config = ControlPlaneConfig {
        signup_open: false,
        local_destinations: true,
        // Seeding and the load take minutes: agents stay ACTIVE throughout (their last
        // heartbeat is the seeding's), so dispatch runs rather than skips.
        heartbeat_timeout: Duration::from_secs(30 * 86_400),
        ..ControlPlaneConfig::default()
    };
    let state = arca_api::AppState::with_ports(
        counting.clone(),
        queue.clone(),
        scheduler,
        PlanLimits::default(),
        config,
    );
    let cp = state.control_plane.clone();

    let row = |operation: String| Row::new(store.name(), size.name, operation);

    // ---- seed
    let seed_started = Instant::now();
    // moto deep-copies every table a transaction touches (moto/dynamodb/models/__init__.py,
    // transact_write_items): seeding in transactions grew quadratically and took moto past
    // 20 GB at ~8,000 items. On moto the seed is one conditional put per item instead.
    let (single, in_flight) = match store {
        StoreKind::Embedded => (false, 2),
        StoreKind::Dynamo => (true, 8),
    };
    let seeded = seed::seed(
        &Store::new(counting.clone()),
        queue.as_ref(),
        size,
        burst,
        (single, in_flight),
        chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()),
    )
    .await?;
    let seed_time = seed_started.elapsed();
    eprintln!(
        "   seeded {} items in {} s ({} expired points)",
        thousands(seeded.items),
        seconds(seed_time),
        thousands(seeded.expired as u64)
    );
    let mut seed_row = row(format!(
        "seed: {} items, {}, {in_flight} in flight",
        thousands(seeded.items),
        if single { "one put each" } else { "transactions of 100" }
    ));
    seed_row.rate = Some(seeded.items as f64 / seed_time.as_secs_f64());
    seed_row.wall = Some(seed_time);
    rows.push(seed_row);

    // ---- the API over HTTP
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, arca_api::router(state)).into_future());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    for route in Route::ALL {
        eprintln!("   {}", route.label());
        let r = load::drive(
            &client,
            &base,
            route,
            &seeded,
            requests,
            args.concurrency,
            cap,
            &counting,
            row(route.label().to_string()),
        )
        .await?;
        rows.push(r);
    }
    server.abort();

    // ---- one dispatch burst of due schedules
    eprintln!("   dispatch burst of {}", seeded.burst_definitions.len());
    rows.push(load::dispatch_burst(&cp, &seeded, dispatch_concurrency, cap, &counting, row(String::new())).await?);

    // ---- one retention sweep
    eprintln!("   retention sweep");
    let before = counting.counts();
    let t = Instant::now();
    let report = cp.retention_sweep().await.context("the retention sweep")?;
    let wall = t.elapsed();
    let used: Counts = counting.counts() - before;
    let issued = report.deletion_jobs.len();
    let mut sweep = row(format!(
        "retention sweep: {} expired of {} points, {} deletion jobs ({} reads per expired point)",
        thousands(seeded.expired as u64),
        thousands(seeded.points as u64),
        thousands(issued as u64),
        if seeded.expired == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", used.reads as f64 / seeded.expired as f64)
        },
    ));
    sweep.rate = Some(issued as f64 / wall.as_secs_f64());
    sweep.reads = Some(used.reads as f64);
    sweep.writes = Some(used.writes as f64);
    sweep.wall = Some(wall);
    if issued != seeded.expired {
        sweep.problem = Some(format!(
            "{issued} deletion jobs for {} expired points (examined {}, kept {}, awaiting {})",
            seeded.expired,
            report.examined,
            report.kept,
            report.awaiting_direct_deletion.len()
        ));
    }
    rows.push(sweep);

    drop(cp);
    if let Some((client, table)) = table {
        // moto keeps every table in memory: free it for the next size.
        if let Err(e) = client.delete_table().table_name(&table).send().await {
            eprintln!("   could not delete table {table}: {e}");
        }
    }
    drop(dir);
    let note = format!(
        "{} / {}: {}; seeded in {} s; load average before: {load_before}",
        store.name(),
        size.name,
        size.describe(),
        seconds(seed_time)
    );
    Ok(note)
}

fn render(args: &Args, rows: &[Row], notes: &[String], total: Duration) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Control-plane scale bench (arca-bench-control-plane {}), {} CPUs, total wall time {} s.\n",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        seconds(total)
    ));
    out.push_str(&format!(
        "API: {} requests per route on the embedded store, {} on DynamoDB, {} in flight, over HTTP/1.1 on \
         loopback to the API router in the same process (after a warm-up of a tenth of that; nothing new is sent \
         after {} s per route or burst, {} s on DynamoDB). Dispatch burst: {} \
         due schedules on the embedded store ({} at a time), {} on DynamoDB ({} at a time), through \
         arca_fn_dispatch::on_schedule; they belong to one extra org (10 definitions per cluster) at every size. \
         Retention: one ControlPlane::retention_sweep, 1 in 100 points expired. Reads/writes: items, per request \
         (API, dispatch) or for the whole operation (seed, sweep); a get is 1 read, a query the items it returned \
         (at least 1), a transaction check 1 read.\n",
        args.requests,
        args.dynamo_requests,
        args.concurrency,
        args.max_route_seconds,
        args.dynamo_max_route_seconds,
        thousands(args.burst as u64),
        args.dispatch_concurrency,
        thousands(args.dynamo_burst as u64),
        args.dynamo_dispatch_concurrency,
    ));
    for note in notes {
        out.push_str(&format!("- {note}\n"));
    }
    out.push('\n');
    out.push_str(&load::table(rows));
    let problems: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.problem
                .as_ref()
                .map(|p| format!("- {} / {} / {}: {p}\n", r.store, r.size, r.operation))
        })
        .collect();
    if !problems.is_empty() {
        out.push_str("\nProblems:\n");
        for p in problems {
            out.push_str(&p);
        }
    }
    out
}
