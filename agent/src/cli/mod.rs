//! Command line of `arca-agent`. Names are fixed: the mover Jobs and `bench/peers.sh` call them.

mod credentials;
mod progress;
mod ranges;
mod store;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use arca_repo::{
    GcOptions, KdfParams, PassphraseWrapper, Repository, RestoreOptions, VolumeBackup, backup_volume, gc, restore,
    verify,
};
use clap::{Args as ClapArgs, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "arca-agent", version, about = "Arca's in-cluster backup agent")]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the cluster and print its facts (the default without a subcommand).
    Facts {
        /// A kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Run the agent: connect to the Arca API, heartbeat, and work the cluster's jobs
    /// until stopped (SIGTERM/SIGINT) or superseded by a newer agent with the same token.
    Run {
        /// The Arca API's URL.
        #[arg(long, env = "ARCA_API_URL")]
        api_url: String,
        /// The cluster's agent token (from the install manifest's Secret).
        #[arg(long, env = "ARCA_AGENT_TOKEN", hide_env_values = true)]
        token: String,
        /// A kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Where to serve the kubelet's liveness and readiness probes (`/healthz`, `/readyz`)
        /// and the Prometheus metrics (`/metrics`, docs/metrics.md).
        #[arg(long, env = "ARCA_HEALTH_ADDR", default_value = "127.0.0.1:8081")]
        health_addr: std::net::SocketAddr,
        /// The key resource archives are sealed with (64 hex digits; every agent that
        /// restores them needs the same one). Without it, the org's key that the control
        /// plane hands out with each job is used; with neither, jobs fail saying so.
        #[arg(long, env = "ARCA_ARCHIVE_KEY", hide_env_values = true)]
        archive_key: Option<String>,
    },
    /// Repository maintenance.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Volume backups and restores.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// EBS snapshots into the repository and back, through the EBS direct APIs (AWS
    /// credentials, region and endpoint from the environment).
    #[command(subcommand)]
    Ebs(EbsCommand),
    /// CSI changed block tracking (the Kubernetes SnapshotMetadata service).
    #[command(subcommand)]
    Csi(CsiCommand),
}

#[derive(Subcommand)]
enum CsiCommand {
    /// Print the byte ranges that changed between two VolumeSnapshots of a volume, from the
    /// driver's snapshot-metadata sidecar (GetMetadataDelta), as the JSON array `volume
    /// backup --changed-ranges` reads.
    Delta {
        /// The SnapshotMetadataService object's `address`, as `https://host:port`.
        #[arg(long)]
        address: String,
        /// The object's `caCert`, as a PEM file.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// A file holding a ServiceAccount token of the object's `audience`.
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        namespace: String,
        /// The older VolumeSnapshot.
        #[arg(long)]
        base: String,
        /// The newer VolumeSnapshot.
        #[arg(long)]
        target: String,
    },
}

#[derive(Subcommand)]
enum EbsCommand {
    /// Copy an EBS snapshot into the repository as a snapshot of --volume, reading its
    /// blocks with GetSnapshotBlock (no volume attached). With --parent (the EBS snapshot
    /// the volume's latest copy was made from) only the blocks ListChangedBlocks reports
    /// are read; if the latest copy is of another snapshot, every written block is.
    Backup {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        volume: String,
        /// The EBS snapshot (snap-…).
        #[arg(long)]
        snapshot: String,
        #[arg(long)]
        parent: Option<String>,
        /// Where the blocks read are staged (a sparse file of the volume's size).
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        scratch: PathBuf,
        /// Print the snapshot, what was read from EBS and the statistics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a snapshot of --volume to a new EBS snapshot (StartSnapshot, PutSnapshotBlock
    /// for each non-zero block, CompleteSnapshot): a volume can then be created from it in
    /// this account and region. Prints the new snapshot's id.
    ToSnapshot {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        volume: String,
        /// A snapshot id (or unique prefix), or `latest`.
        #[arg(long)]
        snapshot: String,
        #[arg(long, default_value = "restored by Arca")]
        description: String,
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        scratch: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ClapArgs)]
struct RepoArgs {
    /// `file:///path` or `s3://bucket/prefix` (endpoint and credentials from the AWS
    /// environment, or credentials from the JSON file $ARCA_S3_CREDENTIALS_FILE names).
    #[arg(long)]
    repo: String,
    /// A file holding the passphrase (else $ARCA_REPO_PASSWORD). Mover Jobs name the one
    /// their Secret mounts.
    #[arg(long, env = "ARCA_REPO_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create a repository.
    Init {
        #[command(flatten)]
        repo: RepoArgs,
        /// argon2id memory of the new key file, KiB (default 65536). For constrained hosts and tests.
        #[arg(long, hide = true)]
        kdf_memory_kib: Option<u32>,
    },
    /// Check the repository's structure; with --read-data, every blob's content too.
    Verify {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        json: bool,
    },
    /// Condemn unreferenced packs, and delete those condemned at least the grace period ago.
    Gc {
        #[command(flatten)]
        repo: RepoArgs,
        /// Grace period between condemning and deleting a pack (at least 3600).
        #[arg(long, default_value_t = 86400)]
        grace_secs: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VolumeCommand {
    /// Back up a block device or disk image; prints the new snapshot's id.
    Backup {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        volume: String,
        #[arg(long)]
        source: PathBuf,
        /// Byte ranges changed since the previous snapshot: lines `OFFSET LENGTH`, or a JSON
        /// array of {"offset","length"} (or CSI's {"byte_offset","size_bytes"}).
        #[arg(long)]
        changed_ranges: Option<PathBuf>,
        /// Print the snapshot and its statistics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot to a file or block device.
    Restore {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        volume: String,
        /// A snapshot id (or unique prefix), or `latest`.
        #[arg(long)]
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
        /// fsync the target before exiting.
        #[arg(long)]
        sync: bool,
        /// Read the target back once restored and compare every block with the
        /// snapshot's record (keyed hashes); exit non-zero when any differs.
        #[arg(long)]
        verify: bool,
    },
    /// Compare a file or block device with a snapshot's record, block by block (nothing
    /// but the block maps is fetched); exit non-zero when any block differs.
    Compare {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        volume: String,
        /// A snapshot id (or unique prefix), or `latest`.
        #[arg(long)]
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
    },
    /// List snapshots, oldest first.
    Snapshots {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        volume: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot's manifest; its data is reclaimed by `repo gc`.
    Forget {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        snapshot: String,
    },
}

fn passphrase(args: &RepoArgs) -> anyhow::Result<String> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let pass = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if pass.is_empty() {
            bail!("the password file {} is empty", path.display());
        }
        return Ok(pass.to_owned());
    }
    match std::env::var("ARCA_REPO_PASSWORD") {
        Ok(pass) if !pass.is_empty() => Ok(pass),
        _ => bail!("no passphrase: set ARCA_REPO_PASSWORD or pass --password-file"),
    }
}

async fn open(args: &RepoArgs) -> anyhow::Result<Repository> {
    let wrapper = PassphraseWrapper::new(passphrase(args)?);
    let store = store::open(&args.repo).await?;
    Ok(Repository::open(store, &args.repo, &wrapper).await?)
}

/// Compares `target` with the snapshot's record; an error names the first differing
/// ranges. Prints one line saying what was compared.
async fn compared(
    repo: &Repository,
    id: &arca_repo::Id,
    snap: &arca_repo::Snapshot,
    target: &Path,
) -> anyhow::Result<()> {
    let report = arca_repo::compare(repo, id, snap, target).await?;
    if !report.equal() {
        let first: Vec<String> = report
            .differences
            .iter()
            .map(|(at, len)| format!("{at}+{len}"))
            .collect();
        bail!(
            "{} of {} bytes of {} differ from snapshot {id} (first blocks at {})",
            report.bytes_differing,
            report.bytes_compared,
            target.display(),
            first.join(", ")
        );
    }
    println!(
        "verified: {} bytes of {} equal snapshot {id}",
        report.bytes_compared,
        target.display()
    );
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        None => facts(None).await,
        Some(Command::Facts { kubeconfig }) => facts(kubeconfig).await,
        Some(Command::Run {
            api_url,
            token,
            kubeconfig,
            health_addr,
            archive_key,
        }) => run_agent(api_url, token, kubeconfig, health_addr, archive_key).await,
        Some(Command::Repo(cmd)) => repo_command(cmd).await,
        Some(Command::Volume(cmd)) => volume_command(cmd).await,
        Some(Command::Ebs(cmd)) => ebs_command(cmd).await,
        Some(Command::Csi(CsiCommand::Delta {
            address,
            ca_file,
            token_file,
            namespace,
            base,
            target,
        })) => {
            use arca_agent::volumes::snapshot_metadata;
            let ca = match &ca_file {
                Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
                None => None,
            };
            let token =
                std::fs::read_to_string(&token_file).with_context(|| format!("reading {}", token_file.display()))?;
            let channel = snapshot_metadata::connect(&address, ca.as_deref())
                .await
                .map_err(anyhow::Error::msg)?;
            let delta = snapshot_metadata::metadata_delta(channel, token.trim(), &namespace, &base, &target)
                .await
                .map_err(anyhow::Error::msg)?;
            let ranges: Vec<_> = delta
                .ranges
                .iter()
                .map(|r| serde_json::json!({ "offset": r.start, "length": r.end - r.start }))
                .collect();
            println!("{}", serde_json::to_string(&ranges)?);
            Ok(())
        }
    }
}

async fn ebs_command(cmd: EbsCommand) -> anyhow::Result<()> {
    use arca_agent::volumes::ebs_direct;
    let ebs = aws_sdk_ebs::Client::new(&aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await);
    match cmd {
        EbsCommand::Backup {
            repo,
            volume,
            snapshot,
            parent,
            scratch,
            json,
        } => {
            let repository = open(&repo).await?;
            let (id, manifest, read) =
                ebs_direct::backup(&repository, &ebs, &volume, &snapshot, parent.as_deref(), &scratch).await?;
            if json {
                let out = serde_json::json!({ "snapshot": id.to_hex(), "ebs": read, "manifest": manifest });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{id}");
            }
        }
        EbsCommand::ToSnapshot {
            repo,
            volume,
            snapshot,
            description,
            scratch,
            json,
        } => {
            let repository = open(&repo).await?;
            let (id, snap) = repository.find_snapshot(&snapshot, Some(&volume)).await?;
            let (ebs_id, blocks) =
                ebs_direct::to_ebs_snapshot(&repository, &ebs, &id, &snap, &description, &scratch).await?;
            if json {
                let out = serde_json::json!({ "ebsSnapshot": ebs_id, "blocksWritten": blocks, "from": id.to_hex() });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{ebs_id}");
            }
        }
    }
    Ok(())
}

/// A client for the cluster: the given kubeconfig, else $KUBECONFIG or the in-cluster
/// service account.
async fn kube_client(kubeconfig: Option<PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match &kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster config and no kubeconfig")?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn run_agent(
    api_url: String,
    token: String,
    kubeconfig: Option<PathBuf>,
    health_addr: std::net::SocketAddr,
    archive_key: Option<String>,
) -> anyhow::Result<()> {
    arca_runtime::init_tracing();
    let key = match archive_key.as_deref() {
        Some(hex) => arca_agent::runner::ArchiveKey::from_hex(hex).map_err(anyhow::Error::msg)?,
        None => arca_agent::runner::ArchiveKey::FromControlPlane,
    };
    let client = kube_client(kubeconfig).await?;
    // The probes only say the process is up and serving: whether the agent is connected
    // shows on the cluster's state in Arca, and restarting the pod would not fix the network.
    let probes = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(|| async {
                let metrics = arca_agent::metrics::global();
                (
                    [(axum::http::header::CONTENT_TYPE, arca_agent::metrics::CONTENT_TYPE)],
                    metrics.encode(),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(health_addr)
        .await
        .with_context(|| format!("binding the probe and metrics address {health_addr}"))?;
    tokio::spawn(async move { axum::serve(listener, probes).await });
    let config = arca_agent::worker::WorkerConfig {
        api_url,
        token,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let shutdown = async {
        // Kubernetes stops a pod with SIGTERM; Ctrl-C by hand.
        #[cfg(unix)]
        {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    };
    // K8S_BACKUP, K8S_RESTORE and DELETE_BACKUP; other job types fail with the reason.
    let runner = std::sync::Arc::new(arca_agent::runner::ResourceRunner::new(client.clone(), key));
    match arca_agent::worker::run_until(config, client, runner, shutdown).await? {
        arca_agent::worker::Exit::Shutdown => Ok(()),
        arca_agent::worker::Exit::Superseded => {
            bail!("superseded: another agent connected with this cluster's token; this one stopped")
        }
    }
}

async fn facts(kubeconfig: Option<PathBuf>) -> anyhow::Result<()> {
    arca_runtime::init_tracing();
    let client = kube_client(kubeconfig).await?;
    let facts = arca_agent::facts::collect(&client)
        .await
        .context("reading the cluster's facts")?;
    println!("{}", serde_json::to_string_pretty(&facts)?);
    Ok(())
}

async fn repo_command(cmd: RepoCommand) -> anyhow::Result<()> {
    match cmd {
        RepoCommand::Init { repo, kdf_memory_kib } => {
            let mut params = KdfParams::default();
            if let Some(kib) = kdf_memory_kib {
                params.memory_kib = kib;
            }
            let wrapper = PassphraseWrapper::with_params(passphrase(&repo)?, params);
            let store = store::open(&repo.repo).await?;
            let created = Repository::init(store, &repo.repo, &wrapper, None).await?;
            println!("created repository {} at {}", created.config().repo_id, repo.repo);
        }
        RepoCommand::Verify { repo, read_data, json } => {
            let repository = open(&repo).await?;
            let report = verify(&repository, read_data).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for error in &report.errors {
                    println!("ERROR {error}");
                }
                println!(
                    "{} snapshots, {} packs, {} blobs, {} unindexed packs (garbage), {} bytes read",
                    report.snapshots, report.packs, report.blobs, report.unindexed_packs, report.bytes_read
                );
            }
            if !report.errors.is_empty() {
                bail!(
                    "verify found {} problem(s); first: {}",
                    report.errors.len(),
                    report.errors[0]
                );
            }
        }
        RepoCommand::Gc { repo, grace_secs, json } => {
            if grace_secs < 3600 {
                bail!("--grace-secs must be at least 3600: shorter grace periods are unsafe with concurrent backups");
            }
            let repository = open(&repo).await?;
            let options = GcOptions {
                grace: Duration::from_secs(grace_secs),
                ..GcOptions::default()
            };
            let report = gc(&repository, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} live blobs; condemned {} packs ({} repacked); deleted {} packs ({} bytes), spared {}; {} markers waiting for their grace period",
                    report.live_blobs,
                    report.packs_condemned,
                    report.packs_repacked,
                    report.packs_deleted,
                    report.bytes_deleted,
                    report.packs_spared,
                    report.markers_pending
                );
            }
        }
    }
    Ok(())
}

async fn volume_command(cmd: VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Backup {
            repo,
            volume,
            source,
            changed_ranges,
            json,
        } => {
            let repository = open(&repo).await?;
            let mut job = VolumeBackup::new(volume, source);
            if let Some(path) = changed_ranges {
                job.changed_ranges = Some(ranges::read(&path)?);
            }
            let bar = progress::Bar::new("backup");
            job.progress = bar.callback();
            let (id, snapshot) = backup_volume(&repository, job).await?;
            bar.finish();
            // Immutable destination: what the snapshot reuses is retained as long as it.
            if let Some(until) = store::object_lock()?.and_then(|l| l.retain_until) {
                let retained = arca_repo::immutability::retain_snapshot(&repository, &snapshot, until).await?;
                tracing::info!(packs = retained.checked, extended = retained.extended, until = %until, "snapshot retained");
            }
            if json {
                let out = serde_json::json!({ "snapshot": id.to_hex(), "manifest": snapshot });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{id}");
            }
        }
        VolumeCommand::Restore {
            repo,
            volume,
            snapshot,
            target,
            sync,
            verify,
        } => {
            let repository = open(&repo).await?;
            let (id, snap) = repository.find_snapshot(&snapshot, Some(&volume)).await?;
            let bar = progress::Bar::new("restore");
            let options = RestoreOptions {
                sync,
                progress: bar.callback(),
                ..RestoreOptions::default()
            };
            restore(&repository, &id, &snap, &target, options).await?;
            bar.finish();
            if std::io::stderr().is_terminal() {
                eprintln!("restored snapshot {id} ({} bytes) to {}", snap.size, target.display());
            }
            if verify {
                compared(&repository, &id, &snap, &target).await?;
            }
        }
        VolumeCommand::Compare {
            repo,
            volume,
            snapshot,
            target,
        } => {
            let repository = open(&repo).await?;
            let (id, snap) = repository.find_snapshot(&snapshot, Some(&volume)).await?;
            compared(&repository, &id, &snap, &target).await?;
        }
        VolumeCommand::Snapshots { repo, volume, json } => {
            let repository = open(&repo).await?;
            let snapshots: Vec<_> = repository
                .snapshots()
                .await?
                .into_iter()
                .filter(|(_, s)| volume.as_ref().is_none_or(|v| &s.name == v))
                .collect();
            if json {
                let list: Vec<_> = snapshots
                    .iter()
                    .map(|(id, s)| serde_json::json!({ "id": id.to_hex(), "manifest": s }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for (id, s) in &snapshots {
                    let time = chrono::DateTime::from_timestamp_millis(s.created_ms as i64)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_default();
                    println!("{id}  {time}  {:?}  {}  {} bytes", s.kind, s.name, s.size);
                }
            }
        }
        VolumeCommand::Forget { repo, snapshot } => {
            let repository = open(&repo).await?;
            let (id, _) = repository.find_snapshot(&snapshot, None).await?;
            repository.forget(&id).await?;
            println!("forgot {id}");
        }
    }
    Ok(())
}
